#!/usr/bin/env python3
"""Convert an ESPnet OWSM-CTC checkpoint directory to one GGUF file.

    python3 tools/convert_owsm_ctc.py DIR OUT.gguf [--type f32|f16|bf16|q8_0]
        [--config CONFIG.yaml] [--model MODEL.pth] [--bpe BPE.model] [--stats FEATS_STATS.npz]
        [--name NAME]

DIR is a released model (the Hugging Face layout of espnet/owsm_ctc_v3.1_1B, v3.2_ft_1B or
v4_1B: exp/.../config.yaml and *.pth, data/token_list/.../bpe.model, exp/.../feats_stats.npz)
or a flat directory as tests/ref/owsm_ctc.py make-checkpoint writes it. Files are found by name
under DIR unless given explicitly. The config fixes every size; the state_dict must match it
exactly: any missing, extra or mis-shaped tensor is reported by name and the conversion fails
(exit status 1). The only tolerated gaps are the three frontend buffers, which ESPnet derives
from the config: a missing frontend.logmel.melmat is recomputed (librosa's Slaney filterbank)
and missing normalize.mean/std are computed from feats_stats.npz.

The GGUF holds every hyper-parameter under owsm_ctc.* (the key table is in tests/ref/README.md),
the token list, the SentencePiece model bytes and all tensors under their ESPnet names. Weight
matrices are stored in --type (Q8_0 only where ne[0] % 32 == 0, else F16); norms, biases, 1-D
tensors and the frontend buffers (frontend.*, normalize.*) are always F32. Spec:
../shared/docs/owsm-ctc.md. Needs numpy, PyYAML and torch (to read the .pth).
"""

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf import FILE_TYPES, GGUFError, GGUFWriter  # noqa: E402  (the project's writer, tools/gguf.py)

ARCH = "owsm_ctc"
LN_EPS = 1e-12
LOG_FLOOR = 1e-10
BUFFERS = ("frontend.logmel.melmat", "normalize.mean", "normalize.std")

# llama.cpp token types
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED = 1, 2, 3, 4


class ConvertError(Exception):
    """A problem with the input; the message names the file, key or tensor."""


# ---- config -------------------------------------------------------------------------------

def load_yaml(path):
    """Parse a YAML file with the C loader when PyYAML has it (the token list is 50,002 lines)."""
    import yaml
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=loader)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConvertError(f"{path}: not valid YAML ({e})")


def _fs(v):
    """frontend_conf.fs as an int (ESPnet also accepts '16k')."""
    if isinstance(v, str):
        s = v.strip().lower()
        return int(float(s[:-1]) * 1000) if s.endswith("k") else int(float(s))
    return int(v)


def parse_config(cfg, where="config.yaml"):
    """Hyper-parameters of an OWSM-CTC config as a dict, with the ESPnet class defaults for
    absent keys; raises ConvertError for anything this project's engine does not implement."""
    def need(cond, msg):
        if not cond:
            raise ConvertError(f"{where}: {msg}")

    need(isinstance(cfg, dict), "top level is not a mapping")
    tl = cfg.get("token_list")
    need(isinstance(tl, list) and tl and all(isinstance(t, str) and t for t in tl),
         "token_list must be a list of non-empty strings")
    h = {"token_list": list(tl), "vocab_size": len(tl)}

    need(cfg.get("frontend", "default") == "default", f"frontend {cfg.get('frontend')!r} is not 'default'")
    need(cfg.get("input_size") is None, "input_size must be null (features computed by the model)")
    fc = dict(cfg.get("frontend_conf") or {})
    h["sample_rate"] = _fs(fc.get("fs", 16000))
    h["n_fft"] = int(fc.get("n_fft", 512))
    h["win_length"] = int(fc["win_length"]) if fc.get("win_length") is not None else h["n_fft"]
    h["hop_length"] = int(fc.get("hop_length", 128))
    h["n_mels"] = int(fc.get("n_mels", 80))
    h["fmin"] = 0.0 if fc.get("fmin") is None else float(fc["fmin"])
    h["fmax"] = h["sample_rate"] / 2 if fc.get("fmax") is None else float(fc["fmax"])
    for k, want in (("window", "hann"), ("center", True), ("normalized", False),
                    ("onesided", True), ("htk", False), ("apply_stft", True)):
        need(fc.get(k, want) == want, f"frontend_conf.{k} = {fc.get(k)!r}, only {want!r} is supported")
    need(0 < h["win_length"] <= h["n_fft"] and h["hop_length"] > 0 and h["n_mels"] > 0,
         "frontend_conf sizes out of range")
    need(cfg.get("normalize") == "global_mvn", f"normalize {cfg.get('normalize')!r} is not global_mvn")
    nc = dict(cfg.get("normalize_conf") or {})
    need(nc.get("norm_means", True) and nc.get("norm_vars", True),
         "normalize_conf must normalise means and variances")
    h["stats_file"] = nc.get("stats_file")
    h["mvn_eps"] = float(nc.get("eps", 1.0e-20))

    need(cfg.get("encoder") == "e_branchformer_ctc",
         f"encoder {cfg.get('encoder')!r} is not e_branchformer_ctc")
    ec = dict(cfg.get("encoder_conf") or {})
    for k, default, want in (("attention_layer_type", "rel_selfattn", "selfattn"),
                             ("pos_enc_layer_type", "rel_pos", "abs_pos"),
                             ("input_layer", "conv2d8", "conv2d8"),
                             ("use_linear_after_conv", False, False),
                             ("gate_activation", "identity", "identity"),
                             ("ffn_activation_type", "swish", "swish"),
                             ("positionwise_layer_type", "linear", "linear"),
                             ("layer_drop_rate", 0.0, 0.0)):
        need(ec.get(k, default) == want,
             f"encoder_conf.{k} = {ec.get(k, default)!r}, only {want!r} is supported")
    h["d_model"] = int(ec.get("output_size", 256))
    h["heads"] = int(ec.get("attention_heads", 4))
    h["cgmlp_units"] = int(ec.get("cgmlp_linear_units", 2048))
    h["cgmlp_kernel"] = int(ec.get("cgmlp_conv_kernel", 31))
    h["blocks"] = int(ec.get("num_blocks", 12))
    h["use_ffn"] = bool(ec.get("use_ffn", False))
    h["macaron_ffn"] = bool(ec.get("macaron_ffn", False)) and h["use_ffn"]
    h["ffn_units"] = int(ec.get("linear_units", 2048))
    h["merge_kernel"] = int(ec.get("merge_conv_kernel", 3))
    h["max_pos_emb_len"] = int(ec.get("max_pos_emb_len", 5000))
    need(h["blocks"] > 0 and h["d_model"] > 0 and h["heads"] > 0 and h["d_model"] % h["heads"] == 0,
         "encoder_conf: output_size must be a positive multiple of attention_heads")
    need(h["cgmlp_units"] > 0 and h["cgmlp_units"] % 2 == 0, "encoder_conf.cgmlp_linear_units must be even")
    need(h["cgmlp_kernel"] % 2 == 1 and h["merge_kernel"] % 2 == 1,
         "encoder_conf: cgmlp_conv_kernel and merge_conv_kernel must be odd")
    ca = ec.get("use_cross_attention", True)
    if isinstance(ca, bool):
        ca = [ca] * h["blocks"]
    need(isinstance(ca, list) and len(ca) == h["blocks"],
         f"encoder_conf.use_cross_attention must have {h['blocks']} entries")
    h["cross_layers"] = [i for i, v in enumerate(ca) if v]  # 0-based
    ii = ec.get("interctc_layer_idx") or []
    need(all(isinstance(v, int) and 0 < v < h["blocks"] for v in ii),
         f"encoder_conf.interctc_layer_idx entries must lie in 1..{h['blocks'] - 1}")
    h["interctc_layers"] = sorted(set(v - 1 for v in ii))  # 0-based: after this layer
    h["conditioning"] = bool(ec.get("interctc_use_conditioning", False))

    need(cfg.get("promptencoder", "transformer") == "transformer", "promptencoder must be transformer")
    pc = dict(cfg.get("promptencoder_conf") or {})
    need(pc.get("normalize_before", True) is True and pc.get("concat_after", False) is False
         and pc.get("positionwise_layer_type", "linear") == "linear",
         "promptencoder_conf must be pre-LN, without concat_after, with linear FFNs")
    h["p_d"] = int(pc.get("output_size", 256))
    h["p_heads"] = int(pc.get("attention_heads", 4))
    h["p_ffn"] = int(pc.get("linear_units", 2048))
    h["p_blocks"] = int(pc.get("num_blocks", 6))
    need(h["p_d"] > 0 and h["p_heads"] > 0 and h["p_d"] % h["p_heads"] == 0,
         "promptencoder_conf: output_size must be a positive multiple of attention_heads")

    need(cfg.get("model", "espnet_ctc") == "espnet_ctc", "model must be espnet_ctc")
    mc = dict(cfg.get("model_conf") or {})
    ppc = dict(cfg.get("preprocessor_conf") or {})
    ids = {}
    for k, sym in (("blank", mc.get("sym_blank", "<blank>")), ("unk", "<unk>"),
                   ("na", mc.get("sym_na", "<na>")), ("nolang", ppc.get("nolang_symbol", "<nolang>")),
                   ("sos", mc.get("sym_sos", "<sos>")), ("eos", mc.get("sym_eos", "<eos>")),
                   ("sop", mc.get("sym_sop", "<sop>"))):
        need(sym in h["token_list"], f"token_list has no {sym}")
        ids[k] = h["token_list"].index(sym)
    dup = len(set(h["token_list"])) != len(h["token_list"])
    need(not dup, "token_list has duplicated entries")
    h["ids"] = ids
    h["speech_length"] = float(ppc.get("speech_length", 30))
    h["bpemodel"] = cfg.get("bpemodel")
    h["version"] = str(cfg.get("version", ""))
    f = h["n_mels"]
    for _ in range(3):
        f = (f - 1) // 2
    need(f >= 1, f"n_mels {h['n_mels']} is too small for conv2d8")
    h["freq_sub"] = f
    return h


def expected_tensors(h):
    """The state_dict an ESPnetS2TCTCModel built from these hyper-parameters has, as an
    ordered list of (name, shape) in registration order (owsm-ctc.md section 6)."""
    d, V, P, M = h["d_model"], h["vocab_size"], h["p_d"], h["n_mels"]
    U, F = h["cgmlp_units"], h["ffn_units"]
    out = [("frontend.logmel.melmat", (h["n_fft"] // 2 + 1, M)), ("normalize.mean", (M,)),
           ("normalize.std", (M,))]

    def lin(name, o, i):
        out.extend([(name + ".weight", (o, i)), (name + ".bias", (o,))])

    def norm(name, n):
        out.extend([(name + ".weight", (n,)), (name + ".bias", (n,))])

    def conv(name, shape):
        out.extend([(name + ".weight", shape), (name + ".bias", (shape[0],))])

    conv("encoder.embed.conv.0", (d, 1, 3, 3))
    conv("encoder.embed.conv.2", (d, d, 3, 3))
    conv("encoder.embed.conv.4", (d, d, 3, 3))
    lin("encoder.embed.out", d, d * h["freq_sub"])
    for i in range(h["blocks"]):
        p = f"encoder.encoders.{i}."
        for k in "qkv":
            lin(p + f"attn.linear_{k}", d, d)
        lin(p + "attn.linear_out", d, d)
        lin(p + "cgmlp.channel_proj1.0", U, d)
        norm(p + "cgmlp.csgu.norm", U // 2)
        conv(p + "cgmlp.csgu.conv", (U // 2, 1, h["cgmlp_kernel"]))
        lin(p + "cgmlp.channel_proj2", d, U // 2)
        if h["use_ffn"]:
            lin(p + "feed_forward.w_1", F, d)
            lin(p + "feed_forward.w_2", d, F)
        if h["macaron_ffn"]:
            lin(p + "feed_forward_macaron.w_1", F, d)
            lin(p + "feed_forward_macaron.w_2", d, F)
        if h["use_ffn"]:
            norm(p + "norm_ff", d)
        if h["macaron_ffn"]:
            norm(p + "norm_ff_macaron", d)
        norm(p + "norm_mha", d)
        norm(p + "norm_mlp", d)
        norm(p + "norm_final", d)
        if i in h["cross_layers"]:
            for k in "qkv":
                lin(p + f"cross_attn.linear_{k}", d, d)
            lin(p + "cross_attn.linear_out", d, d)
            norm(p + "norm_cross_attn", d)
        conv(p + "depthwise_conv_fusion", (2 * d, 1, h["merge_kernel"]))
        lin(p + "merge_proj", d, 2 * d)
    norm("encoder.after_norm", d)
    if h["conditioning"]:
        lin("encoder.conditioning_layer", d, V)
    for j in range(h["p_blocks"]):
        p = f"prompt_encoder.encoders.{j}."
        for k in "qkv":
            lin(p + f"self_attn.linear_{k}", P, P)
        lin(p + "self_attn.linear_out", P, P)
        lin(p + "feed_forward.w_1", h["p_ffn"], P)
        lin(p + "feed_forward.w_2", P, h["p_ffn"])
        norm(p + "norm1", P)
        norm(p + "norm2", P)
    norm("prompt_encoder.after_norm", P)
    out.append(("embed.weight", (V, P)))
    if d != P:
        lin("embed_proj", d, P)
        lin("prompt_proj", d, P)
    lin("ctc.ctc_lo", V, d)
    return out


# ---- frontend buffers ---------------------------------------------------------------------

_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = (_MIN_LOG_HZ - 0.0) / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(f):
    """Slaney mel of Hz (librosa.hz_to_mel, htk=False, same float64 operations): f / (200/3)
    below 1 kHz, 15 + ln(f / 1000) / (ln 6.4 / 27) from 1 kHz up."""
    f = np.atleast_1d(np.asarray(f, dtype=np.float64))
    m = (f - 0.0) / _F_SP
    hi = f >= _MIN_LOG_HZ
    m[hi] = _MIN_LOG_MEL + np.log(f[hi] / _MIN_LOG_HZ) / _LOGSTEP
    return m


def _mel_to_hz(m):
    """Inverse of _hz_to_mel (librosa.mel_to_hz, htk=False)."""
    m = np.atleast_1d(np.asarray(m, dtype=np.float64))
    f = 0.0 + _F_SP * m
    hi = m >= _MIN_LOG_MEL
    f[hi] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (m[hi] - _MIN_LOG_MEL))
    return f


def slaney_melmat(sr, n_fft, n_mels, fmin, fmax):
    """librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax) (Slaney scale and area norm) as
    ESPnet's LogMel buffer: float32 (n_fft//2+1, n_mels). Triangles on Hz ramps between
    n_mels+2 mel-spaced points, rows stored as float32, then scaled by 2/(f[i+2]-f[i]) in
    float64 as librosa does. Used only when a checkpoint lacks frontend.logmel.melmat."""
    fft_hz = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    hz = _mel_to_hz(np.linspace(_hz_to_mel(float(fmin))[0], _hz_to_mel(float(fmax))[0], n_mels + 2))
    fdiff = np.diff(hz)
    ramps = np.subtract.outer(hz, fft_hz)
    w = np.zeros((n_mels, len(fft_hz)), dtype=np.float32)
    for i in range(n_mels):
        w[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    w *= (2.0 / (hz[2:n_mels + 2] - hz[:n_mels]))[:, np.newaxis]
    return np.ascontiguousarray(w.T)


def mvn_from_stats(path, eps):
    """ESPnet GlobalMVN: mean = sum/count, std = sqrt(max(sum_square/count - mean^2, eps)),
    computed in float64 (numpy's promotion of float32 sums by an int64 count), stored float32."""
    s = np.load(path)
    for k in ("count", "sum", "sum_square"):
        if k not in s:
            raise ConvertError(f"{path}: missing array '{k}'")
    count = float(np.asarray(s["count"]).reshape(-1)[0])
    if not count > 0:
        raise ConvertError(f"{path}: count is {count}")
    mean = np.asarray(s["sum"], dtype=np.float64).reshape(-1) / count
    var = np.asarray(s["sum_square"], dtype=np.float64).reshape(-1) / count - mean * mean
    return mean.astype(np.float32), np.sqrt(np.maximum(var, eps)).astype(np.float32)


# ---- files ----------------------------------------------------------------------------------

def _walk(root):
    for r, dirs, files in os.walk(root):
        dirs.sort()
        for n in sorted(files):
            yield os.path.join(r, n)


def find_inputs(a):
    """Resolve config.yaml, the .pth, bpe.model and feats_stats.npz under DIR (explicit
    options win). Several .pth files without --model is an error that lists them."""
    if not os.path.isdir(a.dir):
        raise ConvertError(f"{a.dir}: not a directory")
    files = list(_walk(a.dir))
    cfg = a.config
    if cfg is None:
        cands = [f for f in files if os.path.basename(f) == "config.yaml"]
        if not cands:
            raise ConvertError(f"{a.dir}: no config.yaml found")
        cfg = min(cands, key=lambda p: (p.count(os.sep), p))
    pth = a.model
    if pth is None:
        cands = [f for f in files if f.endswith(".pth")]
        if not cands:
            raise ConvertError(f"{a.dir}: no .pth model file found")
        if len(cands) > 1:
            named = [f for f in cands if os.path.basename(f) == "model.pth"]
            if len(named) != 1:
                raise ConvertError(f"{a.dir}: several model files, choose one with --model: "
                                   + ", ".join(os.path.relpath(f, a.dir) for f in cands))
            cands = named
        pth = cands[0]

    def by_name(explicit, rel, name):
        if explicit:
            return explicit
        for c in ([rel, os.path.join(a.dir, rel), os.path.join(os.path.dirname(cfg), rel)] if rel else []):
            if os.path.isfile(c):
                return c
        for base in ([os.path.basename(rel)] if rel else []) + [name]:
            hits = [f for f in files if os.path.basename(f) == base]
            if hits:
                return hits[0]
        return None

    return cfg, pth, by_name, files


def load_state_dict(path):
    """torch.load a .pth (a plain state_dict, or one under a 'model' key) on the CPU."""
    import torch
    try:
        sd = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - torch raises many types for bad files
        raise ConvertError(f"{path}: cannot load as a PyTorch checkpoint ({e})")
    if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    if not isinstance(sd, dict):
        raise ConvertError(f"{path}: not a state_dict (got {type(sd).__name__})")
    for k, v in sd.items():
        if not hasattr(v, "shape"):
            raise ConvertError(f"{path}: entry '{k}' is not a tensor")
    return sd


def check_state_dict(sd, expected, pth):
    """All problems between a state_dict and the expected (name, shape) list: one message per
    missing, extra or mis-shaped tensor. Absent frontend buffers are not problems (they are
    rebuilt); everything else is."""
    problems = []
    exp = dict(expected)
    for name, shape in expected:
        if name not in sd:
            if name not in BUFFERS:
                problems.append(f"{pth}: missing tensor '{name}' (expected shape {list(shape)})")
        elif tuple(sd[name].shape) != tuple(shape):
            problems.append(f"{pth}: tensor '{name}' has shape {list(sd[name].shape)}, "
                            f"the config needs {list(shape)}")
    for name in sd:
        if name not in exp:
            problems.append(f"{pth}: unexpected tensor '{name}' with shape {list(sd[name].shape)} "
                            "(not part of the model the config describes)")
    return problems


# ---- GGUF ---------------------------------------------------------------------------------

def choose_type(name, shape, target):
    """Storage type of one tensor (the rule of gguf_quantize_choose in src/gguf.h, plus F32
    for the frontend buffers): a weight matrix (at least two dims > 1, name not ending in
    'bias' and not containing 'norm') gets the target, except Q8_0 with ne[0] % 32 != 0 ->
    F16; everything else is F32."""
    if name in BUFFERS or target == "f32":
        return "f32"
    if sum(1 for s in shape if s > 1) < 2 or name.endswith("bias") or "norm" in name:
        return "f32"
    if target == "q8_0" and shape[-1] % 32 != 0:
        return "f16"
    return target


def token_types(tokens, ids):
    """llama.cpp token types: <unk> unknown; <blank>, <sos>, <eos>, <sop> control; other
    <...> symbols (no-prompt, languages, tasks) user-defined; the rest normal."""
    control = {ids["blank"], ids["sos"], ids["eos"], ids["sop"]}
    out = []
    for i, t in enumerate(tokens):
        if i == ids["unk"]:
            out.append(TOKEN_UNKNOWN)
        elif i in control:
            out.append(TOKEN_CONTROL)
        elif len(t) > 1 and t[0] == "<" and t[-1] == ">":
            out.append(TOKEN_USER_DEFINED)
        else:
            out.append(TOKEN_NORMAL)
    return out


def add_hparams(w, h, name):
    """All owsm_ctc.* keys (see tests/ref/README.md)."""
    A = ARCH + "."
    w.add_string("general.architecture", ARCH)
    w.add_string("general.name", name)
    if h["version"]:
        w.add_string(A + "espnet_version", h["version"])
    w.add_u32(A + "sample_rate", h["sample_rate"])
    w.add_u32(A + "n_fft", h["n_fft"])
    w.add_u32(A + "win_length", h["win_length"])
    w.add_u32(A + "hop_length", h["hop_length"])
    w.add_string(A + "window", "hann")
    w.add_u32(A + "n_mels", h["n_mels"])
    w.add_f32(A + "fmin", h["fmin"])
    w.add_f32(A + "fmax", h["fmax"])
    w.add_f32(A + "log_floor", LOG_FLOOR)
    w.add_string(A + "normalize", "global_mvn")
    w.add_f32(A + "normalize.var_floor", h["mvn_eps"])
    w.add_f32(A + "speech_length", h["speech_length"])
    w.add_string(A + "input_layer", "conv2d8")
    w.add_u32(A + "subsampling", 8)
    w.add_u32(A + "embedding_length", h["d_model"])
    w.add_u32(A + "block_count", h["blocks"])
    w.add_u32(A + "attention.head_count", h["heads"])
    w.add_f32(A + "attention.layer_norm_epsilon", LN_EPS)
    w.add_string(A + "pos_enc", "abs_pos")
    w.add_bool(A + "use_ffn", h["use_ffn"])
    w.add_bool(A + "macaron_ffn", h["macaron_ffn"])
    w.add_f32(A + "ffn_scale", 0.5 if h["macaron_ffn"] else 1.0)
    w.add_u32(A + "feed_forward_length", h["ffn_units"])
    w.add_string(A + "ffn_activation", "swish")
    w.add_u32(A + "cgmlp.linear_units", h["cgmlp_units"])
    w.add_u32(A + "cgmlp.conv_kernel", h["cgmlp_kernel"])
    w.add_string(A + "cgmlp.activation", "gelu")
    w.add_string(A + "cgmlp.gate_activation", "identity")
    w.add_u32(A + "merge_conv_kernel", h["merge_kernel"])
    w.add_array(A + "cross_attention_layers", np.array(h["cross_layers"], dtype=np.int32), "i32")
    w.add_array(A + "interctc_layers", np.array(h["interctc_layers"], dtype=np.int32), "i32")
    w.add_bool(A + "interctc_use_conditioning", h["conditioning"])
    w.add_u32(A + "prompt.embedding_length", h["p_d"])
    w.add_u32(A + "prompt.block_count", h["p_blocks"])
    w.add_u32(A + "prompt.attention.head_count", h["p_heads"])
    w.add_u32(A + "prompt.feed_forward_length", h["p_ffn"])
    w.add_string(A + "prompt.ffn_activation", "relu")
    w.add_u32(A + "vocab_size", h["vocab_size"])
    for k in ("blank", "unk", "na", "nolang", "sos", "eos", "sop"):
        w.add_u32(A + k + "_id", h["ids"][k])


def convert(a):
    """Run the conversion; returns the list of (name, storage type) written."""
    out_dir = os.path.dirname(os.path.abspath(a.out))
    if not os.path.isdir(out_dir):
        raise ConvertError(f"{a.out}: directory {out_dir} does not exist")
    cfg_path, pth, by_name, _ = find_inputs(a)
    h = parse_config(load_yaml(cfg_path), cfg_path)
    bpe = by_name(a.bpe, h["bpemodel"], "bpe.model")
    if bpe is None or not os.path.isfile(bpe):
        raise ConvertError(f"{a.dir}: no SentencePiece model (bpe.model) found; give --bpe")
    with open(bpe, "rb") as f:
        spm = f.read()
    if not spm:
        raise ConvertError(f"{bpe}: empty file")

    expected = expected_tensors(h)
    sd = load_state_dict(pth)
    problems = check_state_dict(sd, expected, pth)
    if problems:
        raise ConvertError("\n".join(problems) + f"\n{len(problems)} problem(s): the state_dict "
                           f"does not match {cfg_path}")

    # frontend buffers: from the checkpoint, else rebuilt as ESPnet would
    if "frontend.logmel.melmat" not in sd:
        print(f"note: {pth} has no frontend.logmel.melmat; computing librosa's Slaney filterbank",
              file=sys.stderr)
        sd["frontend.logmel.melmat"] = slaney_melmat(h["sample_rate"], h["n_fft"], h["n_mels"],
                                                     h["fmin"], h["fmax"])
    if "normalize.mean" not in sd or "normalize.std" not in sd:
        stats = by_name(a.stats, h["stats_file"], "feats_stats.npz")
        if stats is None:
            raise ConvertError(f"{pth}: no normalize.mean/std and no feats_stats.npz to compute them")
        print(f"note: {pth} has no normalize.mean/std; computing them from {stats}", file=sys.stderr)
        mean, std = mvn_from_stats(stats, h["mvn_eps"])
        if mean.shape != (h["n_mels"],):
            raise ConvertError(f"{stats}: {mean.shape[0]} bins, the config has {h['n_mels']} mels")
        sd["normalize.mean"], sd["normalize.std"] = mean, std

    w = GGUFWriter()
    add_hparams(w, h, a.name or os.path.basename(os.path.normpath(a.dir)))
    w.add_u32("general.file_type", FILE_TYPES[a.type])
    w.add_string("tokenizer.ggml.model", "sentencepiece")
    w.add_string_array("tokenizer.ggml.tokens", h["token_list"])
    w.add_array("tokenizer.ggml.token_type",
                np.array(token_types(h["token_list"], h["ids"]), dtype=np.int32), "i32")
    w.add_u32("tokenizer.ggml.unknown_token_id", h["ids"]["unk"])
    w.add_u32("tokenizer.ggml.bos_token_id", h["ids"]["sos"])
    w.add_u32("tokenizer.ggml.eos_token_id", h["ids"]["eos"])
    w.add_u32("tokenizer.ggml.padding_token_id", h["ids"]["eos"])
    w.add_array("tokenizer.sentencepiece.model", np.frombuffer(spm, dtype=np.uint8), "u8")

    written = []
    for name, shape in expected:
        v = sd.pop(name)
        arr = v.detach().cpu().float().numpy() if hasattr(v, "detach") else np.asarray(v, np.float32)
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if not np.all(np.isfinite(arr)):
            raise ConvertError(f"{pth}: tensor '{name}' has NaN or infinite values")
        t = choose_type(name, shape, a.type)
        w.add_tensor(name, arr, t)
        written.append((name, t))
        del v, arr
    w.write(a.out)
    n_params = sum(math.prod(s) for n, s in expected if n not in BUFFERS)
    print(f"{a.out}: {len(written)} tensors, {n_params} parameters, {a.type}, "
          f"vocab {h['vocab_size']}, {h['n_mels']} mels, {h['blocks']} layers", file=sys.stderr)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", help="ESPnet checkpoint directory")
    ap.add_argument("out", help="output .gguf")
    ap.add_argument("--type", choices=["f32", "f16", "bf16", "q8_0"], default="f32",
                    help="storage of weight matrices (default f32)")
    ap.add_argument("--config", help="config.yaml (default: found under DIR)")
    ap.add_argument("--model", help=".pth state_dict (default: the one under DIR)")
    ap.add_argument("--bpe", help="SentencePiece model (default: bpe.model under DIR)")
    ap.add_argument("--stats", help="feats_stats.npz (only used when the checkpoint lacks normalize.*)")
    ap.add_argument("--name", help="general.name (default: DIR's name)")
    a = ap.parse_args(argv)
    try:
        convert(a)
    except (ConvertError, GGUFError, OSError) as e:
        print(f"convert_owsm_ctc: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
