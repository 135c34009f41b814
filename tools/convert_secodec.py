#!/usr/bin/env python3
"""Convert a SECodec / SpeechTokenizer-style SEANet checkpoint to a "secodec" GGUF file.

    python3 tools/convert_secodec.py CKPT.pt OUT.gguf [--config CONFIG.json|.yaml]
        [--type f32|f16|bf16] [--no-codebooks] [--name NAME]
    python3 tools/convert_secodec.py --random-init OUT.gguf [--n-filters 4] [--dimension 32]
        [--strides 8,5,4,2] [--lstm-layers 2] [--no-bidirectional] [--true-skip]
        [--n-residual-layers 1] [--compress 2] [--kernel-size 7] [--last-kernel-size 7]
        [--residual-kernel-size 3] [--pad-mode reflect] [--n-q L --codebook-size K] [--seed S]
        [--save-checkpoint X.pt] [--save-config X.json] [--type ...]

CKPT.pt is a PyTorch state_dict (or a dict holding one under "state_dict" or "model") with
SpeechTokenizer's names (../shared/docs/secodec.md §5.1; tests/ref/secodec.py writes the same):
encoder.model.{i}.conv.conv.weight_g/weight_v/bias, ...block.{1,3}.conv.conv.*,
...shortcut.conv.conv.*, encoder.model.{i}.lstm.weight_ih_l{k}[_reverse] ..., and
decoder.model.{i}.convtr.convtr.* for the transposed convolutions. The config (SpeechTokenizer's
config.json keys: n_filters, dimension, strides in SpeechTokenizer's DECODER order [8, 5, 4, 2],
lstm_layers, bidirectional, dilation_base, residual_kernel_size, n_residual_layers, ...; YAML
works too) fixes every size; absent keys take SpeechTokenizer's values. Every tensor is checked
against it: a missing, mis-shaped or unexpected encoder./decoder. tensor is reported by name and
the conversion fails (exit status 1). Training-only entries (transform.*, the codebooks'
inited/cluster_size/embed_avg buffers) are skipped.

Weight norm is folded: w = g v / ||v||, the norm taken over every axis where g has size 1. With
PyTorch's default dim = 0 that is per OUTPUT channel of a Conv1d [out, in, k] and per INPUT
channel of a ConvTranspose1d [in, out, k] (§5.1). Already-folded ".weight" tensors are taken as
they are. Weights are stored in --type, biases and codebooks in F32.

Codebooks: quantizer.vq.layers.{l}._codebook.embed [K_l, D] (a SpeechTokenizer RVQ) are written
with secodec.quantizer = "nearest", secodec.n_levels and secodec.codebook_sizes, unless
--no-codebooks; without them the file is a "bare" network.

--random-init writes a model with seeded random weights and no checkpoint (test fixtures): the
same state_dict as above is generated with numpy (weight_v U(+-1/sqrt(fan_in)), weight_g =
||v|| U(1.5, 2.5), biases U(-0.1, 0.1), LSTM U(+-1/sqrt(H)), codebooks N(0, 1/D) scaled by
0.5^l) and converted; --save-checkpoint/--save-config also write it as a .pt (needs torch) and a
config.json that tests/ref/secodec.py loads.

Key table (general.architecture = "secodec"): secodec.sample_rate, n_filters, dimension (u32);
secodec.strides (i32 array, ENCODER order); kernel_size, last_kernel_size, residual_kernel_size,
dilation_base, n_residual_layers, compress, lstm_layers (u32); encoder_bidirectional, true_skip,
causal (bool); pad_mode (str); elu_alpha (f32); with codebooks n_levels (u32), codebook_sizes
(u32 array), quantizer (str). Needs numpy (and torch to read a .pt, PyYAML for a .yaml config).
"""

import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf import FILE_TYPES, GGUFError, GGUFWriter  # noqa: E402  (the project's writer, tools/gguf.py)

ARCH = "secodec"
DEFAULT_CONFIG = {
    "sample_rate": 16000, "n_filters": 64, "dimension": 1024, "strides": [8, 5, 4, 2],
    "kernel_size": 7, "last_kernel_size": 7, "residual_kernel_size": 3, "dilation_base": 2,
    "n_residual_layers": 1, "compress": 2, "lstm_layers": 2, "bidirectional": True,
    "true_skip": False, "causal": False, "pad_mode": "reflect", "activation": "ELU",
    "elu_alpha": 1.0,
}
MAX_LEVELS = 32


class ConvertError(Exception):
    pass


def load_config(path):
    cfg = dict(DEFAULT_CONFIG)
    if path:
        with open(path) as f:
            if path.endswith((".yaml", ".yml")):
                import yaml
                user = yaml.safe_load(f)
            else:
                user = json.load(f)
        if not isinstance(user, dict):
            raise ConvertError("%s: not a mapping of hyperparameters" % path)
        cfg.update(user)
    return check_config(cfg)


def check_config(cfg):
    def pos_int(key, lo=1):
        v = cfg.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ConvertError("config: %s = %r, expected an integer >= %d" % (key, v, lo))
    for k in ("sample_rate", "n_filters", "dimension", "kernel_size", "last_kernel_size",
              "residual_kernel_size", "dilation_base", "compress"):
        pos_int(k)
    pos_int("n_residual_layers", 0)
    pos_int("lstm_layers", 0)
    st = cfg.get("strides")
    if not isinstance(st, (list, tuple)) or not 1 <= len(st) <= 8 or \
            any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in st):
        raise ConvertError("config: strides = %r, expected 1 to 8 integers >= 1" % (st,))
    if cfg.get("causal"):
        raise ConvertError("config: causal = true: causal SEANet is not supported")
    if cfg.get("activation", "ELU") != "ELU":
        raise ConvertError("config: activation %r: only ELU is supported" % cfg["activation"])
    if cfg.get("pad_mode") not in ("reflect", "constant"):
        raise ConvertError("config: pad_mode %r: reflect or constant" % cfg.get("pad_mode"))
    if cfg["n_filters"] // cfg["compress"] < 1:
        raise ConvertError("config: compress %d leaves no ResBlock channels" % cfg["compress"])
    return cfg


def network_layout(cfg):
    """[(prefix, kind, shape)]: kind "conv" (shape [out, in, k]), "convtr" ([in, out, k]) or
    "lstm" (shape (layers, dirs, hidden)), at SEANet's nn.Sequential indices."""
    C, nr, st = cfg["n_filters"], cfg["n_residual_layers"], list(cfg["strides"])
    out = []

    def res(prefix, dim, j):
        hidden = dim // cfg["compress"]
        out.append((prefix + ".block.1.conv.conv", "conv", (hidden, dim, cfg["residual_kernel_size"])))
        out.append((prefix + ".block.3.conv.conv", "conv", (dim, hidden, 1)))
        if not cfg["true_skip"]:
            out.append((prefix + ".shortcut.conv.conv", "conv", (dim, dim, 1)))

    idx = 0
    out.append(("encoder.model.%d.conv.conv" % idx, "conv", (C, 1, cfg["kernel_size"])))
    idx += 1
    mult = 1
    for s in reversed(st):
        for j in range(nr):
            res("encoder.model.%d" % idx, mult * C, j)
            idx += 1
        idx += 1  # ELU
        out.append(("encoder.model.%d.conv.conv" % idx, "conv", (2 * mult * C, mult * C, 2 * s)))
        idx += 1
        mult *= 2
    bidir = bool(cfg["bidirectional"]) and cfg["lstm_layers"] > 0
    if cfg["lstm_layers"] > 0:
        out.append(("encoder.model.%d.lstm" % idx, "lstm", (cfg["lstm_layers"], 2 if bidir else 1, mult * C)))
        idx += 1
    idx += 1  # ELU
    out.append(("encoder.model.%d.conv.conv" % idx, "conv",
                (cfg["dimension"], (2 if bidir else 1) * mult * C, cfg["last_kernel_size"])))

    idx = 0
    out.append(("decoder.model.%d.conv.conv" % idx, "conv", (mult * C, cfg["dimension"], cfg["kernel_size"])))
    idx += 1
    if cfg["lstm_layers"] > 0:
        out.append(("decoder.model.%d.lstm" % idx, "lstm", (cfg["lstm_layers"], 1, mult * C)))
        idx += 1
    for s in st:
        idx += 1  # ELU
        out.append(("decoder.model.%d.convtr.convtr" % idx, "convtr", (mult * C, mult * C // 2, 2 * s)))
        idx += 1
        for j in range(nr):
            res("decoder.model.%d" % idx, mult * C // 2, j)
            idx += 1
        mult //= 2
    idx += 1  # ELU
    out.append(("decoder.model.%d.conv.conv" % idx, "conv", (1, C, cfg["last_kernel_size"])))
    return out


def lstm_names(prefix, layers, dirs, H):
    """{name: shape} of a torch.nn.LSTM's parameters."""
    out = {}
    for l in range(layers):
        I = H if l == 0 else dirs * H
        for d in range(dirs):
            sfx = "_l%d%s" % (l, "_reverse" if d else "")
            out[prefix + ".weight_ih" + sfx] = (4 * H, I)
            out[prefix + ".weight_hh" + sfx] = (4 * H, H)
            out[prefix + ".bias_ih" + sfx] = (4 * H,)
            out[prefix + ".bias_hh" + sfx] = (4 * H,)
    return out


def fold_weight_norm(g, v, name):
    """w = g v / ||v||, the norm over every axis where g has size 1 (float64, then float32)."""
    g = np.asarray(g, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if g.ndim != v.ndim or any(gs not in (1, vs) for gs, vs in zip(g.shape, v.shape)):
        raise ConvertError("%s.weight_g has shape %s, which does not broadcast against weight_v %s"
                           % (name, list(g.shape), list(v.shape)))
    axes = tuple(i for i, gs in enumerate(g.shape) if gs == 1)
    norm = np.sqrt((v * v).sum(axis=axes, keepdims=True))
    if np.any(norm == 0):
        raise ConvertError("%s.weight_v has an all-zero slice: weight norm is undefined" % name)
    return (g * v / norm).astype(np.float32)


def _numpy(t):
    if hasattr(t, "detach"):
        t = t.detach().cpu().float().numpy() if t.is_floating_point() else t.detach().cpu().numpy()
    return np.asarray(t)


def collect(sd, cfg):
    """The folded network tensors {name: float32 array} in layout order, after checking every
    name and shape; raises ConvertError listing every problem found."""
    errors, out, used = [], {}, set()

    def take(name, shape):
        if name not in sd:
            errors.append("missing tensor '%s' (expected shape %s)" % (name, list(shape)))
            return None
        a = _numpy(sd[name])
        used.add(name)
        if tuple(a.shape) != tuple(shape):
            errors.append("tensor '%s' has shape %s, expected %s" % (name, list(a.shape), list(shape)))
            return None
        return a.astype(np.float32)

    for prefix, kind, shape in network_layout(cfg):
        if kind == "lstm":
            for name, shp in lstm_names(prefix, *shape).items():
                a = take(name, shp)
                if a is not None:
                    out[name] = a
            continue
        wname = prefix + ".weight"
        if wname in sd:
            w = take(wname, shape)
        else:
            v = take(prefix + ".weight_v", shape)
            g = sd.get(prefix + ".weight_g")
            if g is None:
                errors.append("missing tensor '%s.weight_g' (or a folded '%s')" % (prefix, wname))
                w = None
            else:
                used.add(prefix + ".weight_g")
                try:
                    w = fold_weight_norm(_numpy(g), v, prefix) if v is not None else None
                except ConvertError as e:
                    errors.append(str(e))
                    w = None
        if w is not None:
            out[wname] = w
        c_out = shape[1] if kind == "convtr" else shape[0]
        b = take(prefix + ".bias", (c_out,))
        if b is not None:
            out[prefix + ".bias"] = b
    extra = sorted(k for k in sd if k.startswith(("encoder.", "decoder.")) and k not in used)
    for k in extra:
        errors.append("unexpected tensor '%s' (the config does not describe it)" % k)
    if errors:
        raise ConvertError("checkpoint does not match the config:\n  " + "\n  ".join(errors))
    return out


def collect_codebooks(sd, D):
    """[K_l, D] float32 arrays of quantizer.vq.layers.{l}._codebook.embed, l = 0, 1, ..."""
    cbs = []
    while True:
        name = "quantizer.vq.layers.%d._codebook.embed" % len(cbs)
        if name not in sd:
            break
        a = _numpy(sd[name]).astype(np.float32)
        if a.ndim != 2 or a.shape[1] != D or a.shape[0] < 1:
            raise ConvertError("tensor '%s' has shape %s, expected [K, %d]" % (name, list(a.shape), D))
        if not np.all(np.isfinite(a)):
            raise ConvertError("tensor '%s' has non-finite values" % name)
        cbs.append(a)
    stray = [k for k in sd if k.startswith("quantizer.vq.layers.") and k.endswith("._codebook.embed")
             and int(k.split(".")[3]) >= len(cbs)]
    if stray:
        raise ConvertError("codebook levels are not contiguous from 0: found %s but not level %d"
                           % (sorted(stray)[0], len(cbs)))
    if len(cbs) > MAX_LEVELS:
        raise ConvertError("%d codebook levels (at most %d)" % (len(cbs), MAX_LEVELS))
    return cbs


def write_gguf(path, cfg, tensors, codebooks, wtype="f32", name=None):
    if wtype not in ("f32", "f16", "bf16"):
        raise ConvertError("--type %s: f32, f16 or bf16" % wtype)
    w = GGUFWriter()
    w.add_string("general.architecture", ARCH)
    if name:
        w.add_string("general.name", name)
    w.add_u32("general.file_type", FILE_TYPES[wtype])
    w.add_u32("secodec.sample_rate", cfg["sample_rate"])
    w.add_u32("secodec.n_filters", cfg["n_filters"])
    w.add_u32("secodec.dimension", cfg["dimension"])
    w.add_array("secodec.strides", list(reversed(cfg["strides"])), "i32")
    for k in ("kernel_size", "last_kernel_size", "residual_kernel_size", "dilation_base",
              "n_residual_layers", "compress", "lstm_layers"):
        w.add_u32("secodec." + k, cfg[k])
    w.add_bool("secodec.encoder_bidirectional", bool(cfg["bidirectional"]))
    w.add_bool("secodec.true_skip", bool(cfg["true_skip"]))
    w.add_bool("secodec.causal", False)
    w.add_string("secodec.pad_mode", cfg["pad_mode"])
    w.add_f32("secodec.elu_alpha", float(cfg.get("elu_alpha", 1.0)))
    if codebooks:
        w.add_u32("secodec.n_levels", len(codebooks))
        w.add_array("secodec.codebook_sizes", [c.shape[0] for c in codebooks], "u32")
        w.add_string("secodec.quantizer", "nearest")
    for tname, a in tensors.items():
        w.add_tensor(tname, a, "f32" if a.ndim == 1 else wtype)
    for lvl, cb in enumerate(codebooks):
        w.add_tensor("quantizer.vq.layers.%d._codebook.embed" % lvl, cb, "f32")
    w.write(path)


def random_state_dict(cfg, seed, n_q=0, codebook_size=0):
    """A SpeechTokenizer-layout state_dict of seeded random numpy arrays (weight_g/weight_v)."""
    rng = np.random.default_rng(seed)
    sd = {}

    def uniform(shape, bound):  # U(-bound, bound) in float32 (103M values at the default size)
        a = rng.random(shape, dtype=np.float32)
        a *= np.float32(2 * bound)
        a -= np.float32(bound)
        return a

    for prefix, kind, shape in network_layout(cfg):
        if kind == "lstm":
            H = shape[2]
            for name, shp in lstm_names(prefix, *shape).items():
                sd[name] = uniform(shp, 1 / math.sqrt(H))
            continue
        fan_in = shape[1] * shape[2] if kind == "conv" else shape[0] * shape[2]
        v = uniform(shape, 1 / math.sqrt(fan_in))
        norm = np.sqrt(np.einsum("ijk,ijk->i", v, v, dtype=np.float64)).reshape(-1, 1, 1)
        sd[prefix + ".weight_v"] = v
        sd[prefix + ".weight_g"] = (norm * rng.uniform(1.5, 2.5, norm.shape)).astype(np.float32)
        c_out = shape[1] if kind == "convtr" else shape[0]
        sd[prefix + ".bias"] = rng.uniform(-0.1, 0.1, (c_out,)).astype(np.float32)
    D = cfg["dimension"]
    for lvl in range(n_q):
        sd["quantizer.vq.layers.%d._codebook.embed" % lvl] = (
            rng.standard_normal((codebook_size, D)) * 0.5 ** lvl / math.sqrt(D)).astype(np.float32)
    return sd


def load_checkpoint(path):
    import torch
    try:
        sd = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - report any unreadable file plainly
        raise ConvertError("%s: cannot read the checkpoint (%s)" % (path, e))
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ConvertError("%s: not a state_dict" % path)
    return sd


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+", help="CKPT.pt OUT.gguf, or OUT.gguf with --random-init")
    ap.add_argument("--config")
    ap.add_argument("--type", default="f32", choices=("f32", "f16", "bf16"))
    ap.add_argument("--no-codebooks", action="store_true")
    ap.add_argument("--name")
    ap.add_argument("--random-init", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-filters", type=int)
    ap.add_argument("--dimension", type=int)
    ap.add_argument("--strides", help="SpeechTokenizer (decoder) order, e.g. 8,5,4,2")
    ap.add_argument("--lstm-layers", type=int)
    ap.add_argument("--n-residual-layers", type=int)
    ap.add_argument("--compress", type=int)
    ap.add_argument("--kernel-size", type=int)
    ap.add_argument("--last-kernel-size", type=int)
    ap.add_argument("--residual-kernel-size", type=int)
    ap.add_argument("--dilation-base", type=int)
    ap.add_argument("--pad-mode", choices=("reflect", "constant"))
    ap.add_argument("--no-bidirectional", action="store_true")
    ap.add_argument("--true-skip", action="store_true")
    ap.add_argument("--n-q", type=int, default=0)
    ap.add_argument("--codebook-size", type=int, default=0)
    ap.add_argument("--save-checkpoint")
    ap.add_argument("--save-config")
    a = ap.parse_args(argv)
    try:
        if a.random_init:
            if len(a.paths) != 1:
                raise ConvertError("--random-init takes one path: OUT.gguf")
            out = a.paths[0]
            cfg = load_config(a.config)
            for k in ("n_filters", "dimension", "lstm_layers", "n_residual_layers", "compress", "kernel_size",
                      "last_kernel_size", "residual_kernel_size", "dilation_base", "pad_mode"):
                if getattr(a, k) is not None:
                    cfg[k] = getattr(a, k)
            if a.strides:
                cfg["strides"] = [int(s) for s in a.strides.split(",")]
            if a.no_bidirectional:
                cfg["bidirectional"] = False
            if a.true_skip:
                cfg["true_skip"] = True
            cfg = check_config(cfg)
            if a.n_q < 0 or a.n_q > MAX_LEVELS or (a.n_q and a.codebook_size < 1):
                raise ConvertError("--n-q must be 0..%d, with --codebook-size >= 1" % MAX_LEVELS)
            sd = random_state_dict(cfg, a.seed, a.n_q, a.codebook_size)
            if a.save_checkpoint:
                import torch
                torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, a.save_checkpoint)
            if a.save_config:
                with open(a.save_config, "w") as f:
                    json.dump(cfg, f, indent=1)
        else:
            if len(a.paths) != 2:
                raise ConvertError("expected CKPT.pt OUT.gguf")
            ckpt, out = a.paths
            cfg = load_config(a.config)
            sd = load_checkpoint(ckpt)
        tensors = collect(sd, cfg)
        cbs = [] if a.no_codebooks else collect_codebooks(sd, cfg["dimension"])
        write_gguf(out, cfg, tensors, cbs, a.type, a.name)
    except (ConvertError, GGUFError, OSError) as e:
        print("convert_secodec.py: error: %s" % e, file=sys.stderr)
        return 1
    n = sum(t.size for t in tensors.values())
    print("wrote %s: %d network tensors (%.2fM parameters, %s), %d codebook levels"
          % (out, len(tensors), n / 1e6, a.type, len(cbs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
