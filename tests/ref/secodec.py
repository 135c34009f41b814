#!/usr/bin/env python3
"""PyTorch reference of the SECodec network: the SEANet encoder and decoder (SpeechTokenizer flavour).

This file is the oracle for the C codec's parity tests (tests/secodec_parity.py). It rebuilds
SEANet as ../shared/docs/secodec.md ("the spec") §1.3, §1.5, §5.1 and §5.2 describe it, with
SpeechTokenizer's module structure, so a state_dict has SpeechTokenizer's names:

    encoder.model.{i}.conv.conv.weight_g / weight_v / bias      Conv1d (weight norm, dim 0)
    encoder.model.{i}.block.{1,3}.conv.conv.*                    ResBlock branch convs
    encoder.model.{i}.shortcut.conv.conv.*                       ResBlock 1x1 shortcut
    encoder.model.{i}.lstm.weight_ih_l{k}[_reverse] ...          LSTM block (with skip)
    decoder.model.{i}.convtr.convtr.weight_g / weight_v / bias   ConvTranspose1d (norm per INPUT channel)
    quantizer.vq.layers.{l}._codebook.embed                      RVQ codebooks [K, D] (optional)

{i} numbers SEANet's nn.Sequential (spec tables §1.3/§1.5 for the default configuration). Weight
norm uses torch.nn.utils.weight_norm, so the names are weight_g/weight_v as in the released
checkpoints; tools/convert_secodec.py folds them (w = g v / ||v||).

Hyper-parameters are a SpeechTokenizer-style config dict (config.json keys): sample_rate,
n_filters, dimension, strides (in SpeechTokenizer's order, i.e. DECODER order: [8, 5, 4, 2];
the encoder runs them reversed), kernel_size, last_kernel_size, residual_kernel_size,
dilation_base, n_residual_layers, compress, lstm_layers, bidirectional (encoder LSTM only; the
decoder LSTM is always unidirectional), true_skip, causal (must be false), pad_mode
("reflect" or "constant"), elu_alpha, plus n_q and codebook_size for the quantiser. Missing
keys take SpeechTokenizer's values (DEFAULT_CONFIG).

Padding (§5.2, non-causal): Conv1d pads P = (k-1) d + 1 - s, right P//2 plus the extra that makes
the last window full, left the rest, in reflect mode with SpeechTokenizer's short-input rule
(pad1d); ConvTranspose1d drops P = k - s samples of its full output, P//2 at the end and the
rest at the start. Every stride-s stage gives ceil(L/s) frames, so T = ceil(L / hop).

Quantiser references: plain residual VQ (nearest codeword per level on the running residual,
ties to the lowest id) and its decode (the decoder input is the sum of the chosen codewords);
and a numpy reference of the structural-entropy node-game rule Delta_select (spec §2.7, §8.7,
§8.8) for one level of a frozen graph.

    python3 tests/ref/secodec.py make-checkpoint OUT.pt [--config-out CONFIG.json]
        [--n-filters C] [--dimension D] [--strides 8,5,4,2] [--lstm-layers N] [--no-bidirectional]
        [--true-skip] [--n-q L --codebook-size K] [--seed S]
    python3 tests/ref/secodec.py run CKPT.pt [--config CONFIG.json] IN.f32 [--latents Z.f32]
        [--audio Y.f32] [--tokens TOK.i32 --n-q L]

IN.f32 is raw little-endian float32 mono PCM; outputs are raw float32 (latents [T, D] row-major,
audio [T * hop]) or int32 tokens [T, L] time-major. All tensors are float32 on the CPU; batch 1.
Requires torch and numpy (/usr/bin/python3 here).
"""

import argparse
import json
import math
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULT_CONFIG = {
    "sample_rate": 16000,
    "n_filters": 64,
    "dimension": 1024,
    "strides": [8, 5, 4, 2],
    "kernel_size": 7,
    "last_kernel_size": 7,
    "residual_kernel_size": 3,
    "dilation_base": 2,
    "n_residual_layers": 1,
    "compress": 2,
    "lstm_layers": 2,
    "bidirectional": True,
    "true_skip": False,
    "causal": False,
    "pad_mode": "reflect",
    "activation": "ELU",
    "elu_alpha": 1.0,
    "n_q": 8,
    "codebook_size": 1024,
}


def make_config(cfg=None, **overrides):
    """DEFAULT_CONFIG updated with a (SpeechTokenizer config.json) dict and keyword overrides."""
    out = dict(DEFAULT_CONFIG)
    out.update(cfg or {})
    out.update(overrides)
    if out.get("causal"):
        raise ValueError("causal SEANet is not part of the SECodec reference")
    if out.get("activation", "ELU") != "ELU":
        raise ValueError("activation %r: only ELU is supported" % out["activation"])
    if out["pad_mode"] not in ("reflect", "constant"):
        raise ValueError("pad_mode %r: reflect or constant" % out["pad_mode"])
    out["strides"] = [int(s) for s in out["strides"]]
    return out


def hop_of(cfg):
    return int(np.prod(cfg["strides"]))


# ============================================================================================
# §5.2 padding
# ============================================================================================

def pad1d(x, left, right, mode):
    """SpeechTokenizer's pad1d: F.pad, except that reflect padding of a signal no longer than the
    larger pad first appends max_pad - L + 1 zeros, reflects, and drops them from the end."""
    if mode != "reflect":
        return F.pad(x, (left, right), mode="constant", value=0.0)
    length = x.shape[-1]
    max_pad = max(left, right)
    extra = 0
    if length <= max_pad:
        extra = max_pad - length + 1
        x = F.pad(x, (0, extra))
    y = F.pad(x, (left, right), mode="reflect")
    return y[..., :y.shape[-1] - extra]


def extra_padding(length, k_eff, stride, p_total):
    """Right padding so the last window is full: (ceil(f) - 1) s + (k - P) - L with
    f = (L - k + P) / s + 1."""
    n_frames = (length - k_eff + p_total) / stride + 1
    ideal = (math.ceil(n_frames) - 1) * stride + (k_eff - p_total)
    return ideal - length


# ============================================================================================
# Modules (SpeechTokenizer's nesting, so state_dict names match)
# ============================================================================================

class NormConv1d(nn.Module):
    def __init__(self, *args, **kw):
        super().__init__()
        self.conv = nn.utils.weight_norm(nn.Conv1d(*args, **kw))


class SConv1d(nn.Module):
    """Conv1d with §5.2 'same' padding."""

    def __init__(self, c_in, c_out, k, stride=1, dilation=1, pad_mode="reflect"):
        super().__init__()
        self.conv = NormConv1d(c_in, c_out, k, stride=stride, dilation=dilation)
        self.pad_mode = pad_mode

    def forward(self, x):
        conv = self.conv.conv
        k, s, d = conv.kernel_size[0], conv.stride[0], conv.dilation[0]
        k_eff = (k - 1) * d + 1
        p_total = k_eff - s
        extra = extra_padding(x.shape[-1], k_eff, s, p_total)
        right = p_total // 2
        left = p_total - right
        return conv(pad1d(x, left, right + extra, self.pad_mode))


class NormConvTranspose1d(nn.Module):
    def __init__(self, *args, **kw):
        super().__init__()
        # weight_norm's default dim=0 is the INPUT channel of a ConvTranspose1d [in, out, k]
        self.convtr = nn.utils.weight_norm(nn.ConvTranspose1d(*args, **kw))


class SConvTranspose1d(nn.Module):
    """ConvTranspose1d whose full output loses P = k - s samples: P//2 at the end, the rest at
    the start (non-causal)."""

    def __init__(self, c_in, c_out, k, stride):
        super().__init__()
        self.convtr = NormConvTranspose1d(c_in, c_out, k, stride=stride)

    def forward(self, x):
        conv = self.convtr.convtr
        k, s = conv.kernel_size[0], conv.stride[0]
        y = conv(x)
        p_total = k - s
        right = p_total // 2
        left = p_total - right
        return y[..., left:y.shape[-1] - right]


class ResBlock(nn.Module):
    """SEANetResnetBlock: shortcut(x) + Conv(hidden -> dim, 1)(ELU(Conv(dim -> hidden, k, d)(ELU(x))))."""

    def __init__(self, dim, k, dilation, compress, true_skip, alpha, pad_mode):
        super().__init__()
        hidden = dim // compress
        self.block = nn.Sequential(
            nn.ELU(alpha), SConv1d(dim, hidden, k, dilation=dilation, pad_mode=pad_mode),
            nn.ELU(alpha), SConv1d(hidden, dim, 1, pad_mode=pad_mode))
        self.shortcut = nn.Identity() if true_skip else SConv1d(dim, dim, 1, pad_mode=pad_mode)

    def forward(self, x):
        return self.shortcut(x) + self.block(x)


class SLSTM(nn.Module):
    """LSTM over time with skip: y = LSTM(x) + x (repeated per direction when bidirectional)."""

    def __init__(self, dim, num_layers, bidirectional):
        super().__init__()
        self.bidirectional = bidirectional
        self.lstm = nn.LSTM(dim, dim, num_layers, bidirectional=bidirectional)

    def forward(self, x):
        x = x.permute(2, 0, 1)  # (T, B, C)
        y, _ = self.lstm(x)
        if self.bidirectional:
            x = x.repeat(1, 1, 2)
        return (y + x).permute(1, 2, 0)


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, a, pm = cfg["n_filters"], cfg["elu_alpha"], cfg["pad_mode"]
        layers = [SConv1d(1, C, cfg["kernel_size"], pad_mode=pm)]
        mult = 1
        for s in reversed(cfg["strides"]):
            for j in range(cfg["n_residual_layers"]):
                layers.append(ResBlock(mult * C, cfg["residual_kernel_size"], cfg["dilation_base"] ** j,
                                       cfg["compress"], cfg["true_skip"], a, pm))
            layers += [nn.ELU(a), SConv1d(mult * C, 2 * mult * C, 2 * s, stride=s, pad_mode=pm)]
            mult *= 2
        bidir = bool(cfg["bidirectional"]) and cfg["lstm_layers"] > 0
        if cfg["lstm_layers"] > 0:
            layers.append(SLSTM(mult * C, cfg["lstm_layers"], bidir))
        width = 2 * mult * C if bidir else mult * C
        layers += [nn.ELU(a), SConv1d(width, cfg["dimension"], cfg["last_kernel_size"], pad_mode=pm)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, a, pm = cfg["n_filters"], cfg["elu_alpha"], cfg["pad_mode"]
        mult = 2 ** len(cfg["strides"])
        layers = [SConv1d(cfg["dimension"], mult * C, cfg["kernel_size"], pad_mode=pm)]
        if cfg["lstm_layers"] > 0:
            layers.append(SLSTM(mult * C, cfg["lstm_layers"], False))
        for s in cfg["strides"]:
            layers += [nn.ELU(a), SConvTranspose1d(mult * C, mult * C // 2, 2 * s, s)]
            for j in range(cfg["n_residual_layers"]):
                layers.append(ResBlock(mult * C // 2, cfg["residual_kernel_size"], cfg["dilation_base"] ** j,
                                       cfg["compress"], cfg["true_skip"], a, pm))
            mult //= 2
        layers += [nn.ELU(a), SConv1d(C, 1, cfg["last_kernel_size"], pad_mode=pm)]
        self.model = nn.Sequential(*layers)

    def forward(self, z):
        return self.model(z)


class _Codebook(nn.Module):
    def __init__(self, k, d):
        super().__init__()
        self.register_buffer("embed", torch.zeros(k, d))


class _VQLayer(nn.Module):
    def __init__(self, k, d):
        super().__init__()
        self._codebook = _Codebook(k, d)


class _VQ(nn.Module):
    def __init__(self, n_q, k, d):
        super().__init__()
        self.layers = nn.ModuleList([_VQLayer(k, d) for _ in range(n_q)])


class Quantizer(nn.Module):
    """Holds quantizer.vq.layers.{l}._codebook.embed [K, D]: plain residual VQ."""

    def __init__(self, n_q, k, d):
        super().__init__()
        self.vq = _VQ(n_q, k, d)

    def codebooks(self):
        return [layer._codebook.embed for layer in self.vq.layers]


class SECodecRef(nn.Module):
    def __init__(self, cfg, with_quantizer=False):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        if with_quantizer:
            self.quantizer = Quantizer(cfg["n_q"], cfg["codebook_size"], cfg["dimension"])

    @torch.no_grad()
    def encode_latents(self, pcm):
        """pcm [L] (numpy or tensor) -> z [T, D] numpy, T = ceil(L / hop)."""
        x = torch.as_tensor(np.asarray(pcm, dtype=np.float32)).reshape(1, 1, -1)
        return self.encoder(x)[0].transpose(0, 1).contiguous().numpy()

    @torch.no_grad()
    def decode_latents(self, z):
        """z [T, D] -> audio [T * hop] numpy (not trimmed)."""
        zt = torch.as_tensor(np.asarray(z, dtype=np.float32)).transpose(0, 1).unsqueeze(0)
        return self.decoder(zt)[0, 0].numpy()


# ============================================================================================
# Quantiser references
# ============================================================================================

def rvq_encode(z, codebooks, n_q=None):
    """Residual VQ: tokens [T, n_q] int32, level l picks the nearest codeword (Euclidean, lowest
    id on ties) to the residual z - sum of the earlier levels' codewords. float64 distances."""
    r = np.asarray(z, dtype=np.float64).copy()
    cbs = [np.asarray(c, dtype=np.float64) for c in codebooks][: n_q or len(codebooks)]
    toks = np.zeros((r.shape[0], len(cbs)), dtype=np.int32)
    for lvl, cb in enumerate(cbs):
        d = (r * r).sum(1)[:, None] - 2 * r @ cb.T + (cb * cb).sum(1)[None, :]
        toks[:, lvl] = np.argmin(d, axis=1)
        r -= cb[toks[:, lvl]]
    return toks


def rvq_decode(tokens, codebooks):
    """Decoder input [T, D] float32 = sum over levels of codebook_l[tokens[:, l]]."""
    tokens = np.asarray(tokens)
    out = np.zeros((tokens.shape[0], np.asarray(codebooks[0]).shape[1]), dtype=np.float64)
    for lvl in range(tokens.shape[1]):
        out += np.asarray(codebooks[lvl], dtype=np.float64)[tokens[:, lvl]]
    return out.astype(np.float32)


def se_select(x, nodes, community, k, vol, V, g, centroids, fallback="nearest_centroid"):
    """Spec §2.7 (frozen graph, §8.7/§8.8): the token of frame x [D] at one level.
    nodes [N, D] L2-normalised, community [N] in [0, K), V/g [K] community volume and cut, vol
    the graph volume. x joins its top-k cosine neighbours (positive similarities only; ties in
    similarity go to the lower node index); then for each candidate community alpha
      vol' = vol + 2 d_x, V' = V + a, g' = g + a, V+ = V' + d_x, g+ = g' + d_x - 2a,
      Delta = g'/vol' log2(V'/vol') - g+/vol' log2(V+/vol') + d_x/vol' log2(V+/vol')
              + V'/vol' log2(V+/V'),
    token = argmin Delta (lowest id on ties). No positive neighbour or min Delta >= 0: the nearest
    centroid (Euclidean, lowest id on ties) for fallback "nearest_centroid", the minimal Delta
    over the candidates for "min_delta" (nearest centroid when there is no candidate).
    Returns (token, deltas dict community -> Delta). All sums in float64."""
    x = np.asarray(x, dtype=np.float64)
    nrm = np.linalg.norm(x)
    xn = x / nrm if nrm > 0 else x
    s = np.asarray(nodes, dtype=np.float64) @ xn
    order = np.lexsort((np.arange(s.size), -s))[:k]
    nb = [j for j in order if s[j] > 0]
    a = {}
    for j in nb:
        c = int(community[j])
        a[c] = a.get(c, 0.0) + s[j]
    d_x = float(sum(s[j] for j in nb))
    deltas = {}
    if nb:
        volp = vol + 2 * d_x
        for c in sorted(a):
            Vp, gp = V[c] + a[c], g[c] + a[c]
            Vplus, gplus = Vp + d_x, gp + d_x - 2 * a[c]
            deltas[c] = (gp / volp * math.log2(Vp / volp) - gplus / volp * math.log2(Vplus / volp)
                         + d_x / volp * math.log2(Vplus / volp) + Vp / volp * math.log2(Vplus / Vp))
    if deltas:
        best = min(deltas, key=lambda c: (deltas[c], c))
        if deltas[best] < 0 or fallback == "min_delta":
            return best, deltas
    cb = np.asarray(centroids, dtype=np.float64)
    dist = ((cb - x[None, :]) ** 2).sum(1)
    return int(np.argmin(dist)), deltas


# ============================================================================================
# Checkpoints
# ============================================================================================

def build_model(cfg, seed=None, with_quantizer=False):
    """A SECodecRef; with a seed, random weights: PyTorch's default init, then each weight_g
    scaled by U(1.5, 2.5) (so g != ||v|| and the fold matters; the default init alone shrinks
    activations layer by layer, this keeps them of order 1), biases U(-0.1, 0.1), codebooks
    N(0, 1/sqrt(D)) scaled per level by 0.5^l."""
    if seed is not None:
        torch.manual_seed(seed)
    model = SECodecRef(cfg, with_quantizer=with_quantizer)
    if seed is not None:
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("weight_g"):
                    p.mul_(torch.rand(p.shape, generator=gen) + 1.5)
                elif name.endswith(".bias"):
                    p.copy_(torch.rand(p.shape, generator=gen) * 0.2 - 0.1)
            if with_quantizer:
                for lvl, cb in enumerate(model.quantizer.codebooks()):
                    cb.copy_(torch.randn(cb.shape, generator=gen) * (0.5 ** lvl) / math.sqrt(cb.shape[1]))
    model.eval()
    return model


def load_model(ckpt, cfg):
    """A SECodecRef from a state_dict (or a dict holding one under 'state_dict' / 'model')."""
    sd = torch.load(ckpt, map_location="cpu") if isinstance(ckpt, str) else ckpt
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    has_q = any(k.startswith("quantizer.vq.layers.") and k.endswith("._codebook.embed") for k in sd)
    if has_q:
        n_q = sum(1 for k in sd if k.startswith("quantizer.vq.layers.") and k.endswith("._codebook.embed"))
        cfg = dict(cfg, n_q=n_q, codebook_size=int(sd["quantizer.vq.layers.0._codebook.embed"].shape[0]))
    model = SECodecRef(cfg, with_quantizer=has_q)
    own = model.state_dict()
    sd = {k: v for k, v in sd.items() if k in own}
    model.load_state_dict(sd, strict=True)
    model.eval()
    return model


def _cli_config(a):
    cfg = make_config({k: v for k, v in {
        "n_filters": a.n_filters, "dimension": a.dimension,
        "strides": [int(s) for s in a.strides.split(",")] if a.strides else None,
        "lstm_layers": a.lstm_layers, "n_q": a.n_q, "codebook_size": a.codebook_size,
    }.items() if v is not None})
    if a.no_bidirectional:
        cfg["bidirectional"] = False
    if a.true_skip:
        cfg["true_skip"] = True
    return cfg


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make-checkpoint", help="random-weight state_dict (+ config.json)")
    mk.add_argument("out")
    mk.add_argument("--config-out")
    mk.add_argument("--n-filters", type=int)
    mk.add_argument("--dimension", type=int)
    mk.add_argument("--strides", help="SpeechTokenizer (decoder) order, e.g. 8,5,4,2")
    mk.add_argument("--lstm-layers", type=int)
    mk.add_argument("--no-bidirectional", action="store_true")
    mk.add_argument("--true-skip", action="store_true")
    mk.add_argument("--n-q", type=int)
    mk.add_argument("--codebook-size", type=int)
    mk.add_argument("--seed", type=int, default=0)
    rn = sub.add_parser("run", help="encode (and decode) raw float32 PCM")
    rn.add_argument("ckpt")
    rn.add_argument("input")
    rn.add_argument("--config")
    rn.add_argument("--latents")
    rn.add_argument("--audio")
    rn.add_argument("--tokens")
    rn.add_argument("--n-q", type=int)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.cmd == "make-checkpoint":
        cfg = _cli_config(a)
        model = build_model(cfg, seed=a.seed, with_quantizer=a.n_q is not None)
        torch.save(model.state_dict(), a.out)
        if a.config_out:
            with open(a.config_out, "w") as f:
                json.dump(cfg, f, indent=1)
        return 0
    cfg = DEFAULT_CONFIG
    if a.config:
        with open(a.config) as f:
            cfg = json.load(f)
    model = load_model(a.ckpt, make_config(cfg))
    pcm = np.fromfile(a.input, dtype="<f4")
    z = model.encode_latents(pcm)
    if a.latents:
        z.astype("<f4").tofile(a.latents)
    zq = z
    if a.tokens:
        if not hasattr(model, "quantizer"):
            print("secodec.py: the checkpoint has no codebooks", file=sys.stderr)
            return 1
        toks = rvq_encode(z, model.quantizer.codebooks(), a.n_q)
        toks.astype("<i4").tofile(a.tokens)
        zq = rvq_decode(toks, model.quantizer.codebooks())
    if a.audio:
        model.decode_latents(zq).astype("<f4").tofile(a.audio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
