#!/usr/bin/env python3
"""PyTorch reference of OWSM-CTC (ESPnet ESPnetS2TCTCModel with EBranchformerCTCEncoder).

This file is the oracle for the C engine's parity tests. It rebuilds the whole network from an
ESPnet config.yaml with ESPnet's exact state_dict names (../shared/docs/owsm-ctc.md, "the spec"
below, section 6), loads a released or a generated checkpoint, and decodes audio greedily as
ESPnet's Speech2TextGreedySearch does. It also writes ESPnet-style checkpoint directories with
random weights at any size, including the real 1B geometry.

    python3 tests/ref/owsm_ctc.py run CKPT_DIR AUDIO.wav|FEATS.npy [--lang eng|nolang]
        [--task asr|st_deu] [--prompt TEXT] [--no-pad] [--context SEC]
        [--dump-encoder X.npy] [--dump-logits Y.npy] [--dump-feats F.npy]
        [--dump-layers L.npz] [--json OUT.json]
    python3 tests/ref/owsm_ctc.py make-checkpoint OUTDIR [--preset 1b] [--layers N]
        [--d-model D] [--heads H] [--ffn F] [--cgmlp U] [--prompt-layers N] [--prompt-d D]
        [--prompt-heads H] [--prompt-ffn F] [--cross-layers 3,6] [--interctc 2,4]
        [--n-mels 80|128] [--vocab-from CONFIG.yaml [--bpe-model bpe.model] | --vocab N]
        [--stats feats_stats.npz] [--seed S]
    python3 tests/ref/owsm_ctc.py count-params [--preset 1b] [... same size options]

Only what ESPnet computes at inference is modelled (no dropout, SpecAugment or losses). All
tensors are float32 and the model runs with batch 1 per 30 s window, as the spec recommends
(section 8 item 12). Requires torch, numpy, yaml and sentencepiece (/usr/bin/python3 here).
"""

import argparse
import json
import math
import os
import shutil
import struct
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import yaml

try:
    _YAML_LOADER = yaml.CSafeLoader
    _YAML_DUMPER = yaml.CSafeDumper
except AttributeError:  # pure-Python PyYAML
    _YAML_LOADER = yaml.SafeLoader
    _YAML_DUMPER = yaml.SafeDumper


# ============================================================================================
# Hyper-parameters from an ESPnet config.yaml
# ============================================================================================

class OwsmConfigError(ValueError):
    """A config.yaml that does not describe a model this reference implements."""


def _parse_fs(fs):
    """frontend_conf.fs as an int; ESPnet also accepts strings such as '16k'."""
    if isinstance(fs, str):
        s = fs.strip().lower()
        mult = 1
        if s.endswith("k"):
            s, mult = s[:-1], 1000
        return int(float(s) * mult)
    return int(fs)


class HParams:
    """Every hyper-parameter the network needs, read from an ESPnet config dict with the
    defaults of the ESPnet classes (DefaultFrontend, EBranchformerCTCEncoder,
    TransformerEncoder, ESPnetS2TCTCModel) for keys the config leaves out."""

    def __init__(self, cfg):
        def need(cond, msg):
            if not cond:
                raise OwsmConfigError(msg)

        need(isinstance(cfg, dict), "config.yaml: top level is not a mapping")
        tl = cfg.get("token_list")
        need(isinstance(tl, list) and len(tl) > 0 and all(isinstance(t, str) for t in tl),
             "config.yaml: token_list must be a non-empty list of strings")
        self.token_list = list(tl)
        self.vocab_size = len(tl)

        # ---- frontend (spec section 1; DefaultFrontend defaults) ----
        need(cfg.get("frontend", "default") == "default",
             f"config.yaml: frontend '{cfg.get('frontend')}' is not supported (need 'default')")
        need(cfg.get("input_size") is None, "config.yaml: input_size must be null (the model "
             "computes its own features)")
        fc = dict(cfg.get("frontend_conf") or {})
        self.fs = _parse_fs(fc.get("fs", 16000))
        self.n_fft = int(fc.get("n_fft", 512))
        wl = fc.get("win_length")
        self.win_length = int(wl) if wl is not None else self.n_fft
        self.hop_length = int(fc.get("hop_length", 128))
        self.n_mels = int(fc.get("n_mels", 80))
        fmin, fmax = fc.get("fmin"), fc.get("fmax")
        self.fmin = 0.0 if fmin is None else float(fmin)
        self.fmax = self.fs / 2 if fmax is None else float(fmax)
        need(fc.get("window", "hann") == "hann", "config.yaml: frontend_conf.window must be hann")
        need(fc.get("center", True) is True, "config.yaml: frontend_conf.center must be true")
        need(fc.get("normalized", False) is False,
             "config.yaml: frontend_conf.normalized must be false")
        need(fc.get("onesided", True) is True, "config.yaml: frontend_conf.onesided must be true")
        need(fc.get("htk", False) is False, "config.yaml: frontend_conf.htk must be false")
        need(fc.get("apply_stft", True) is True, "config.yaml: frontend_conf.apply_stft must be true")
        need(0 < self.win_length <= self.n_fft, "config.yaml: need 0 < win_length <= n_fft")
        need(self.hop_length > 0 and self.n_mels > 0, "config.yaml: hop_length and n_mels must be > 0")

        need(cfg.get("normalize") == "global_mvn",
             f"config.yaml: normalize '{cfg.get('normalize')}' is not supported (need global_mvn)")
        nc = dict(cfg.get("normalize_conf") or {})
        need(nc.get("norm_means", True) is True and nc.get("norm_vars", True) is True,
             "config.yaml: normalize_conf.norm_means/norm_vars must be true")
        self.stats_file = nc.get("stats_file")
        self.mvn_eps = float(nc.get("eps", 1.0e-20))

        # ---- encoder (EBranchformerCTCEncoder defaults) ----
        need(cfg.get("encoder") == "e_branchformer_ctc",
             f"config.yaml: encoder '{cfg.get('encoder')}' is not supported (need e_branchformer_ctc)")
        ec = dict(cfg.get("encoder_conf") or {})
        self.d_model = int(ec.get("output_size", 256))
        self.heads = int(ec.get("attention_heads", 4))
        need(ec.get("attention_layer_type", "rel_selfattn") == "selfattn",
             "config.yaml: encoder_conf.attention_layer_type must be selfattn")
        need(ec.get("pos_enc_layer_type", "rel_pos") == "abs_pos",
             "config.yaml: encoder_conf.pos_enc_layer_type must be abs_pos")
        need(ec.get("input_layer", "conv2d8") == "conv2d8",
             "config.yaml: encoder_conf.input_layer must be conv2d8")
        self.cgmlp_units = int(ec.get("cgmlp_linear_units", 2048))
        self.cgmlp_kernel = int(ec.get("cgmlp_conv_kernel", 31))
        need(ec.get("use_linear_after_conv", False) is False,
             "config.yaml: encoder_conf.use_linear_after_conv must be false")
        need(ec.get("gate_activation", "identity") == "identity",
             "config.yaml: encoder_conf.gate_activation must be identity")
        self.num_blocks = int(ec.get("num_blocks", 12))
        self.max_pos_emb_len = int(ec.get("max_pos_emb_len", 5000))
        self.use_ffn = bool(ec.get("use_ffn", False))
        self.macaron_ffn = bool(ec.get("macaron_ffn", False)) and self.use_ffn
        need(ec.get("ffn_activation_type", "swish") == "swish",
             "config.yaml: encoder_conf.ffn_activation_type must be swish")
        need(ec.get("positionwise_layer_type", "linear") == "linear",
             "config.yaml: encoder_conf.positionwise_layer_type must be linear")
        self.ffn_units = int(ec.get("linear_units", 2048))
        self.merge_kernel = int(ec.get("merge_conv_kernel", 3))
        need(ec.get("layer_drop_rate", 0.0) == 0.0, "config.yaml: layer_drop_rate must be 0")
        ica = ec.get("use_cross_attention", True)
        if isinstance(ica, bool):
            ica = [ica] * self.num_blocks
        need(isinstance(ica, list) and len(ica) == self.num_blocks,
             "config.yaml: encoder_conf.use_cross_attention must be a bool or one flag per block")
        self.cross_attention = [bool(v) for v in ica]
        ii = ec.get("interctc_layer_idx") or []
        need(all(isinstance(v, int) and 0 < v < self.num_blocks for v in ii),
             "config.yaml: interctc_layer_idx entries must be in 1..num_blocks-1")
        self.interctc_layer_idx = [int(v) for v in ii]  # ESPnet's 1-based layer counts
        self.interctc_use_conditioning = bool(ec.get("interctc_use_conditioning", False))
        need(self.d_model % self.heads == 0, "config.yaml: output_size % attention_heads != 0")
        need(self.cgmlp_units % 2 == 0, "config.yaml: cgmlp_linear_units must be even")
        need(self.cgmlp_kernel % 2 == 1 and self.merge_kernel % 2 == 1,
             "config.yaml: cgmlp_conv_kernel and merge_conv_kernel must be odd")

        # ---- prompt encoder (TransformerEncoder with input_layer=None) ----
        need(cfg.get("promptencoder", "transformer") == "transformer",
             "config.yaml: promptencoder must be transformer")
        pc = dict(cfg.get("promptencoder_conf") or {})
        self.p_d = int(pc.get("output_size", 256))
        self.p_heads = int(pc.get("attention_heads", 4))
        self.p_ffn = int(pc.get("linear_units", 2048))
        self.p_blocks = int(pc.get("num_blocks", 6))
        need(pc.get("normalize_before", True) is True,
             "config.yaml: promptencoder_conf.normalize_before must be true")
        need(pc.get("concat_after", False) is False,
             "config.yaml: promptencoder_conf.concat_after must be false")
        need(pc.get("positionwise_layer_type", "linear") == "linear",
             "config.yaml: promptencoder_conf.positionwise_layer_type must be linear")
        need(self.p_d % self.p_heads == 0, "config.yaml: prompt output_size % attention_heads != 0")

        # ---- model wrapper and special symbols ----
        need(cfg.get("model", "espnet_ctc") == "espnet_ctc", "config.yaml: model must be espnet_ctc")
        mc = dict(cfg.get("model_conf") or {})
        ppc = dict(cfg.get("preprocessor_conf") or {})
        syms = {
            "blank": mc.get("sym_blank", "<blank>"),
            "sos": mc.get("sym_sos", "<sos>"),
            "eos": mc.get("sym_eos", "<eos>"),
            "sop": mc.get("sym_sop", "<sop>"),
            "na": mc.get("sym_na", "<na>"),
            "nolang": ppc.get("nolang_symbol", "<nolang>"),
            "unk": "<unk>",
        }
        self.ids = {}
        for k, s in syms.items():
            need(s in self.token_list, f"config.yaml: token_list has no {s}")
            self.ids[k] = self.token_list.index(s)
        self.speech_length = float(ppc.get("speech_length", 30))
        self.bpemodel = cfg.get("bpemodel")
        self.token_type = cfg.get("token_type", "bpe")

    @property
    def freq_after_subsampling(self):
        """Mel bins left after the three 3x3/stride-2 convolutions (spec section 2)."""
        f = self.n_mels
        for _ in range(3):
            f = (f - 1) // 2
        return f

    @property
    def has_proj(self):
        """embed_proj and prompt_proj exist only when the two widths differ (spec 4.4)."""
        return self.d_model != self.p_d


# ============================================================================================
# Frontend: STFT, Slaney mel, log, global MVN (spec section 1)
# ============================================================================================

def _hz_to_mel_slaney(f):
    """librosa.hz_to_mel(f, htk=False) for a float64 scalar or array: f/(200/3) below 1 kHz,
    15 + ln(f/1000)/(ln(6.4)/27) from 1 kHz up."""
    f = np.asanyarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = (f - 0.0) / f_sp
    min_log_hz = 1000.0
    min_log_mel = (min_log_hz - 0.0) / f_sp
    logstep = np.log(6.4) / 27.0
    if f.ndim:
        hi = f >= min_log_hz
        mels[hi] = min_log_mel + np.log(f[hi] / min_log_hz) / logstep
    elif f >= min_log_hz:
        mels = min_log_mel + np.log(f / min_log_hz) / logstep
    return mels


def _mel_to_hz_slaney(m):
    """Inverse of _hz_to_mel_slaney (librosa.mel_to_hz, htk=False), float64."""
    m = np.asanyarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = 0.0 + f_sp * m
    min_log_hz = 1000.0
    min_log_mel = (min_log_hz - 0.0) / f_sp
    logstep = np.log(6.4) / 27.0
    if m.ndim:
        hi = m >= min_log_mel
        freqs[hi] = min_log_hz * np.exp(logstep * (m[hi] - min_log_mel))
    elif m >= min_log_mel:
        freqs = min_log_hz * np.exp(logstep * (m - min_log_mel))
    return freqs


def slaney_mel_matrix(fs, n_fft, n_mels, fmin, fmax):
    """librosa.filters.mel(sr=fs, n_fft, n_mels, fmin, fmax, htk=False, norm='slaney') as
    float32 (n_mels, n_fft//2+1), written from librosa's definition: triangles on Hz ramps
    between n_mels+2 points equally spaced on the Slaney mel scale, each row then scaled by
    2/(f[i+2]-f[i]). Like librosa the rows are stored in float32 before the (float64) area
    scale is applied in place."""
    n_bins = 1 + n_fft // 2
    fft_hz = np.fft.rfftfreq(n=n_fft, d=1.0 / fs)
    mel_pts = np.linspace(_hz_to_mel_slaney(float(fmin)), _hz_to_mel_slaney(float(fmax)), n_mels + 2)
    hz_pts = _mel_to_hz_slaney(mel_pts)
    fdiff = np.diff(hz_pts)
    ramps = np.subtract.outer(hz_pts, fft_hz)
    w = np.zeros((n_mels, n_bins), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        w[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (hz_pts[2:n_mels + 2] - hz_pts[:n_mels])
    w *= enorm[:, np.newaxis]
    return w


def global_mvn_stats(npz_path, eps=1.0e-20):
    """ESPnet GlobalMVN buffers from a feats_stats.npz (count, sum, sum_square): mean =
    sum/count, var = sum_square/count - mean^2, std = sqrt(max(var, eps)). numpy promotes the
    float32 sums divided by the int64 count to float64, so the arithmetic is float64; the
    buffers become float32 when ESPnet casts the model to float32 (train_dtype, inference)."""
    s = np.load(npz_path)
    for k in ("count", "sum", "sum_square"):
        if k not in s:
            raise OwsmConfigError(f"{npz_path}: missing array '{k}'")
    count = np.float64(s["count"])
    mean = np.asarray(s["sum"], dtype=np.float64) / count
    var = np.asarray(s["sum_square"], dtype=np.float64) / count - mean * mean
    std = np.sqrt(np.maximum(var, eps))
    return mean.astype(np.float32), std.astype(np.float32)


class LogMel(nn.Module):
    """ESPnet LogMel: holds the (n_fft/2+1, n_mels) filterbank buffer `melmat`."""

    def __init__(self, hp, device=None):
        super().__init__()
        m = torch.zeros(hp.n_fft // 2 + 1, hp.n_mels, device=device)
        self.register_buffer("melmat", m)


class Frontend(nn.Module):
    """ESPnet DefaultFrontend (no parameters besides logmel.melmat)."""

    def __init__(self, hp, device=None):
        super().__init__()
        self.hp = hp
        self.logmel = LogMel(hp, device)

    def forward(self, wav):
        """(B, N) float32 waveform in [-1, 1] -> (B, 1 + N//hop, n_mels) natural-log mel,
        spec section 1: torch.stft with a periodic Hann window of win_length centred in n_fft,
        reflect padding n_fft/2, no normalisation; power = re^2 + im^2; mel = power @ melmat;
        ln(max(mel, 1e-10))."""
        hp = self.hp
        if wav.size(1) <= hp.n_fft // 2:
            raise ValueError(f"input of {wav.size(1)} samples is too short for the STFT's "
                             f"reflect padding (needs more than {hp.n_fft // 2})")
        window = torch.hann_window(hp.win_length, dtype=wav.dtype)
        spec = torch.stft(wav, n_fft=hp.n_fft, win_length=hp.win_length, hop_length=hp.hop_length,
                          center=True, window=window, normalized=False, onesided=True,
                          pad_mode="reflect", return_complex=True)
        spec = torch.view_as_real(spec).transpose(1, 2)  # (B, T, F, 2) as espnet2 Stft
        power = spec[..., 0] ** 2 + spec[..., 1] ** 2
        mel = torch.matmul(power, self.logmel.melmat)
        return torch.clamp(mel, min=1e-10).log()


class GlobalMVN(nn.Module):
    """ESPnet GlobalMVN with its persistent buffers `mean` and `std`."""

    def __init__(self, hp, device=None):
        super().__init__()
        self.register_buffer("mean", torch.zeros(hp.n_mels, device=device))
        self.register_buffer("std", torch.ones(hp.n_mels, device=device))

    def forward(self, x):
        """(x - mean) / std per mel bin, subtraction then a true division (spec section 1).
        All frames are valid here (equal lengths), so the padded-frame zeroing is a no-op."""
        x = x - self.mean.to(x.dtype)
        return x / self.std.to(x.dtype)


# ============================================================================================
# Building blocks
# ============================================================================================

LN_EPS = 1e-12  # ESPnet LayerNorm subclass (spec section 3, section 8 item 5)


class LayerNorm(nn.LayerNorm):
    """espnet LayerNorm: torch LayerNorm over the last dim with eps 1e-12."""

    def __init__(self, n, device=None):
        super().__init__(n, eps=LN_EPS, device=device)


def sinusoid_table(length, d):
    """ESPnet PositionalEncoding table in float32: PE[p, 2i] = sin(p * exp(-2i ln(1e4)/d)),
    PE[p, 2i+1] = cos(same); position and frequency products are float32 (spec section 8
    item 15)."""
    pe = torch.zeros(length, d)
    pos = torch.arange(0, length, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * -(math.log(10000.0) / d))
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


class PositionalEncoding(nn.Module):
    """x * sqrt(d) + PE[0:T] (ESPnet PositionalEncoding, abs_pos); no state_dict entries.
    The table is built for max_len positions (5000, as ESPnet) and extended when needed."""

    def __init__(self, d, max_len=5000):
        super().__init__()
        self.d = d
        self.xscale = math.sqrt(d)
        self.max_len = max_len
        self._pe = None

    def forward(self, x):
        t = x.size(1)
        if self._pe is None or self._pe.size(0) < t:
            self._pe = sinusoid_table(max(self.max_len, t), self.d)
        return x * self.xscale + self._pe[:t].to(device=x.device, dtype=x.dtype).unsqueeze(0)


class MultiHeadedAttention(nn.Module):
    """ESPnet MultiHeadedAttention (no relative positions, no q/k norm): softmax(q k^T /
    sqrt(d_k)) v per head, masked keys filled with the dtype's minimum before the softmax and
    their weights zeroed after it, heads concatenated, then linear_out."""

    def __init__(self, heads, d, device=None):
        super().__init__()
        self.h = heads
        self.d_k = d // heads
        self.linear_q = nn.Linear(d, d, device=device)
        self.linear_k = nn.Linear(d, d, device=device)
        self.linear_v = nn.Linear(d, d, device=device)
        self.linear_out = nn.Linear(d, d, device=device)

    def forward(self, query, key, value, mask):
        b = query.size(0)
        q = self.linear_q(query).view(b, -1, self.h, self.d_k).transpose(1, 2)
        k = self.linear_k(key).view(b, -1, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(value).view(b, -1, self.h, self.d_k).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        if mask is not None:
            m = mask.unsqueeze(1).eq(0)  # (B, 1, *, T2)
            scores = scores.masked_fill(m, torch.finfo(scores.dtype).min)
            attn = torch.softmax(scores, dim=-1).masked_fill(m, 0.0)
        else:
            attn = torch.softmax(scores, dim=-1)
        x = torch.matmul(attn, v).transpose(1, 2).contiguous().view(b, -1, self.h * self.d_k)
        return self.linear_out(x)


class Swish(nn.Module):
    """espnet Swish: x * sigmoid(x)."""

    def forward(self, x):
        return x * torch.sigmoid(x)


class PositionwiseFeedForward(nn.Module):
    """w_2(act(w_1(x))): swish in the E-Branchformer FFNs, ReLU in the prompt encoder."""

    def __init__(self, d, units, act, device=None):
        super().__init__()
        self.w_1 = nn.Linear(d, units, device=device)
        self.w_2 = nn.Linear(units, d, device=device)
        self.activation = act

    def forward(self, x):
        return self.w_2(self.activation(self.w_1(x)))


class ConvolutionalSpatialGatingUnit(nn.Module):
    """CSGU (spec section 3 branch 2): x_r, x_g = split(x); x_g = dwconv(LN(x_g)) with zero
    padding (K-1)/2 over time; identity gate activation; returns x_r * x_g."""

    def __init__(self, units, kernel, device=None):
        super().__init__()
        n = units // 2
        self.norm = LayerNorm(n, device)
        self.conv = nn.Conv1d(n, n, kernel, 1, (kernel - 1) // 2, groups=n, device=device)

    def forward(self, x):
        x_r, x_g = x.chunk(2, dim=-1)
        x_g = self.norm(x_g)
        x_g = self.conv(x_g.transpose(1, 2)).transpose(1, 2)
        return x_r * x_g


class ConvolutionalGatingMLP(nn.Module):
    """cgMLP: channel_proj2(CSGU(GELU(channel_proj1.0(x)))) with exact (erf) GELU."""

    def __init__(self, d, units, kernel, device=None):
        super().__init__()
        self.channel_proj1 = nn.Sequential(nn.Linear(d, units, device=device), nn.GELU())
        self.csgu = ConvolutionalSpatialGatingUnit(units, kernel, device)
        self.channel_proj2 = nn.Linear(units // 2, d, device=device)

    def forward(self, x):
        return self.channel_proj2(self.csgu(self.channel_proj1(x)))


class EBranchformerLayer(nn.Module):
    """One E-Branchformer layer of the CTC encoder (spec section 3): macaron FFN half step,
    parallel MHSA and cgMLP branches merged through concat + depthwise conv + merge_proj,
    second FFN half step, optional cross-attention to the prompt memory, norm_final.
    Attribute order follows ESPnet's so state_dict() lists keys in the same order."""

    def __init__(self, hp, cross, device=None):
        super().__init__()
        d = hp.d_model
        self.attn = MultiHeadedAttention(hp.heads, d, device)
        self.cgmlp = ConvolutionalGatingMLP(d, hp.cgmlp_units, hp.cgmlp_kernel, device)
        self.feed_forward = (PositionwiseFeedForward(d, hp.ffn_units, Swish(), device)
                             if hp.use_ffn else None)
        self.feed_forward_macaron = (PositionwiseFeedForward(d, hp.ffn_units, Swish(), device)
                                     if hp.macaron_ffn else None)
        self.ff_scale = 0.5 if hp.macaron_ffn else 1.0
        if self.feed_forward is not None:
            self.norm_ff = LayerNorm(d, device)
        if self.feed_forward_macaron is not None:
            self.norm_ff_macaron = LayerNorm(d, device)
        self.norm_mha = LayerNorm(d, device)
        self.norm_mlp = LayerNorm(d, device)
        self.norm_final = LayerNorm(d, device)
        self.cross_attn = MultiHeadedAttention(hp.heads, d, device) if cross else None
        if self.cross_attn is not None:
            self.norm_cross_attn = LayerNorm(d, device)
        k = hp.merge_kernel
        self.depthwise_conv_fusion = nn.Conv1d(2 * d, 2 * d, k, 1, (k - 1) // 2, groups=2 * d,
                                               bias=True, device=device)
        self.merge_proj = nn.Linear(2 * d, d, device=device)

    def forward(self, x, mask, memory, memory_mask):
        if self.feed_forward_macaron is not None:
            x = x + self.ff_scale * self.feed_forward_macaron(self.norm_ff_macaron(x))
        x1 = self.norm_mha(x)
        x1 = self.attn(x1, x1, x1, mask)
        x2 = self.cgmlp(self.norm_mlp(x))  # the cgMLP ignores the mask (spec section 3)
        xc = torch.cat([x1, x2], dim=-1)
        t = self.depthwise_conv_fusion(xc.transpose(1, 2)).transpose(1, 2)
        x = x + self.merge_proj(xc + t)
        if self.feed_forward is not None:
            x = x + self.ff_scale * self.feed_forward(self.norm_ff(x))
        if self.cross_attn is not None and memory is not None:
            y = self.norm_cross_attn(x)
            x = x + self.cross_attn(y, memory, memory, memory_mask)
        return self.norm_final(x)


class Conv2dSubsampling8(nn.Module):
    """conv2d8 input layer with OWSM-CTC's prefix injection (spec section 2): three 3x3
    stride-2 unpadded Conv2d + ReLU over (time, mel), channel-major flatten (c * F' + f),
    Linear `out`, prefix embeddings concatenated in front, then x * sqrt(d) + PE."""

    def __init__(self, hp, device=None):
        super().__init__()
        d = hp.d_model
        self.conv = nn.Sequential(
            nn.Conv2d(1, d, 3, 2, device=device), nn.ReLU(),
            nn.Conv2d(d, d, 3, 2, device=device), nn.ReLU(),
            nn.Conv2d(d, d, 3, 2, device=device), nn.ReLU())
        self.out = nn.Linear(d * hp.freq_after_subsampling, d, device=device)
        self.pos_enc = PositionalEncoding(d, hp.max_pos_emb_len)

    def forward(self, x, prefix_embeds):
        x = self.conv(x.unsqueeze(1))
        b, c, t, f = x.size()
        x = self.out(x.transpose(1, 2).contiguous().view(b, t, c * f))
        if prefix_embeds is not None:
            x = torch.cat([prefix_embeds, x], dim=1)
        return self.pos_enc(x)


class CTC(nn.Module):
    """ESPnet CTC module: only ctc_lo carries weights."""

    def __init__(self, vocab, d, device=None):
        super().__init__()
        self.ctc_lo = nn.Linear(d, vocab, device=device)


class EBranchformerCTCEncoder(nn.Module):
    """The CTC encoder (spec section 4): embed, layers with inter-CTC self-conditioning after
    the 1-based layers in interctc_layer_idx, after_norm. conditioning_layer is attached last,
    as ESPnetS2TCTCModel does, so it follows after_norm in the state_dict."""

    def __init__(self, hp, device=None):
        super().__init__()
        self.hp = hp
        self.embed = Conv2dSubsampling8(hp, device)
        self.encoders = nn.ModuleList(
            [EBranchformerLayer(hp, hp.cross_attention[i], device) for i in range(hp.num_blocks)])
        self.after_norm = LayerNorm(hp.d_model, device)
        # ESPnetS2TCTCModel adds it whenever interctc_use_conditioning is set
        self.conditioning_layer = (nn.Linear(hp.vocab_size, hp.d_model, device=device)
                                   if hp.interctc_use_conditioning else None)

    def forward(self, feats, prefix_embeds, memory, memory_mask, ctc, trace=None):
        """feats (B, T, n_mels) normalised -> (B, 2 + T', d) after after_norm, plus the list
        of (1-based layer, pre-conditioning output) pairs. `trace`, when a dict, receives
        every intermediate tensor for debugging the C engine."""
        if feats.size(1) < 15:
            raise ValueError(f"has {feats.size(1)} frames and is too short for conv2d8 "
                             "subsampling (needs at least 15)")
        x = self.embed(feats, prefix_embeds)
        if trace is not None:
            trace["embed"] = x
        mask = torch.ones(x.size(0), 1, x.size(1), dtype=torch.bool, device=x.device)
        inter = []
        for i, layer in enumerate(self.encoders):
            x = layer(x, mask, memory, memory_mask)
            if i + 1 in self.hp.interctc_layer_idx:
                inter.append((i + 1, x))
                if trace is not None:
                    trace[f"inter{i + 1}"] = x
                if self.conditioning_layer is not None:
                    p = torch.softmax(ctc.ctc_lo(x), dim=2)
                    x = x + self.conditioning_layer(p)
            if trace is not None:
                trace[f"layer{i}"] = x
        return self.after_norm(x), inter


class TransformerEncoderLayer(nn.Module):
    """Pre-LN Transformer layer of the prompt encoder: x + MHA(norm1(x)); x + FFN(norm2(x))."""

    def __init__(self, hp, device=None):
        super().__init__()
        self.self_attn = MultiHeadedAttention(hp.p_heads, hp.p_d, device)
        self.feed_forward = PositionwiseFeedForward(hp.p_d, hp.p_ffn, nn.ReLU(), device)
        self.norm1 = LayerNorm(hp.p_d, device)
        self.norm2 = LayerNorm(hp.p_d, device)

    def forward(self, x, mask):
        y = self.norm1(x)
        x = x + self.self_attn(y, y, y, mask)
        return x + self.feed_forward(self.norm2(x))


class PromptEncoder(nn.Module):
    """ESPnet TransformerEncoder built with input_layer=None and input_size == output_size:
    no embed module, so the caller's single positional encoding is the only one (spec 4.3)."""

    def __init__(self, hp, device=None):
        super().__init__()
        self.encoders = nn.ModuleList([TransformerEncoderLayer(hp, device) for _ in range(hp.p_blocks)])
        self.after_norm = LayerNorm(hp.p_d, device)

    def forward(self, x, mask):
        for layer in self.encoders:
            x = layer(x, mask)
        return self.after_norm(x)


class OwsmCtcModel(nn.Module):
    """ESPnetS2TCTCModel at inference. Submodules are registered in ESPnet's order: frontend,
    normalize, encoder, prompt_encoder, embed, embed_proj, prompt_proj, ctc."""

    def __init__(self, hp, device=None):
        super().__init__()
        self.hp = hp
        self.frontend = Frontend(hp, device)
        self.normalize = GlobalMVN(hp, device)
        self.encoder = EBranchformerCTCEncoder(hp, device)
        self.prompt_encoder = PromptEncoder(hp, device)
        self.embed = nn.Embedding(hp.vocab_size, hp.p_d, device=device)
        self.pos_enc = PositionalEncoding(hp.p_d)
        if hp.has_proj:
            self.embed_proj = nn.Linear(hp.p_d, hp.d_model, device=device)
            self.prompt_proj = nn.Linear(hp.p_d, hp.d_model, device=device)
        else:
            self.embed_proj = nn.Identity()
            self.prompt_proj = nn.Identity()
        self.ctc = CTC(hp.vocab_size, hp.d_model, device)

    def features(self, wav):
        """(B, N) waveform -> (B, T, n_mels) normalised features (frontend + GlobalMVN)."""
        return self.normalize(self.frontend(wav))

    def prompt_memory(self, prompts):
        """List of B prompt id lists -> memory (B, Lmax, d) and memory_mask (B, 1, Lmax).
        Shorter prompts are padded with <eos> (ESPnet's collate pads with -1, which encode()
        replaces by eos); e * sqrt(p_d) + PE, prompt encoder, prompt_proj (spec 4.3)."""
        lmax = max(len(p) for p in prompts)
        eos = self.hp.ids["eos"]
        ids = torch.full((len(prompts), lmax), eos, dtype=torch.long)
        mask = torch.zeros(len(prompts), 1, lmax, dtype=torch.bool)
        for i, p in enumerate(prompts):
            ids[i, :len(p)] = torch.tensor(p, dtype=torch.long)
            mask[i, 0, :len(p)] = True
        dev = self.embed.weight.device
        ids, mask = ids.to(dev), mask.to(dev)
        x = self.pos_enc(self.embed(ids))
        mem = self.prompt_encoder(x, mask)
        return self.prompt_proj(mem), mask

    def encode(self, feats, prompts, prefix, trace=None):
        """Normalised feats (B, T, n_mels), B prompt id lists, prefix (B, 2) ids [lang, task]
        -> encoder output (B, 2 + T', d) and the inter-CTC outputs."""
        memory, memory_mask = self.prompt_memory(prompts)
        prefix_embeds = self.embed_proj(self.embed(prefix))
        if trace is not None:
            trace["memory"] = memory
            trace["prefix_embeds"] = prefix_embeds
        return self.encoder(feats, prefix_embeds, memory, memory_mask, self.ctc, trace)


# ============================================================================================
# Checkpoint directories
# ============================================================================================

def load_config(path):
    """Parse an ESPnet config.yaml (the real one holds a 50,002-entry token list)."""
    with open(path, encoding="utf-8") as f:
        cfg = yaml.load(f, Loader=_YAML_LOADER)
    tl = cfg.get("token_list") if isinstance(cfg, dict) else None
    if isinstance(tl, str):  # a token list file, one token per line
        tl_path = _resolve(os.path.dirname(path), tl)
        if tl_path is None:
            raise OwsmConfigError(f"{path}: token_list file {tl} not found")
        with open(tl_path, encoding="utf-8") as f:
            cfg["token_list"] = [line.rstrip("\n") for line in f]
    return cfg


def _resolve(ckpt_dir, rel, fallback_name=None):
    """Find a file a config refers to: as given, relative to the checkpoint directory, by its
    base name anywhere under the directory, then by fallback_name under the directory."""
    cands = []
    if rel:
        cands += [rel, os.path.join(ckpt_dir, rel)]
    names = [os.path.basename(rel)] if rel else []
    if fallback_name:
        names.append(fallback_name)
    for c in cands:
        if os.path.isfile(c):
            return c
    for root, _, files in sorted(os.walk(ckpt_dir)):
        for n in names:
            if n in files:
                return os.path.join(root, n)
    return None


def find_checkpoint_files(ckpt_dir):
    """config.yaml, *.pth and bpe.model inside an ESPnet checkpoint directory (flat, as
    make-checkpoint writes it, or the Hugging Face layout exp/.../config.yaml + .pth,
    data/token_list/.../bpe.model). Returns (config, model, bpe) paths; bpe may be None."""
    cfgs, pths = [], []
    for root, _, files in sorted(os.walk(ckpt_dir)):
        for n in sorted(files):
            if n == "config.yaml":
                cfgs.append(os.path.join(root, n))
            elif n.endswith(".pth"):
                pths.append(os.path.join(root, n))
    if not cfgs:
        raise FileNotFoundError(f"{ckpt_dir}: no config.yaml")
    if not pths:
        raise FileNotFoundError(f"{ckpt_dir}: no .pth model file")
    cfg_path = min(cfgs, key=lambda p: p.count(os.sep))
    # prefer model.pth, then the .pth beside the config, then the first one
    pth = next((p for p in pths if os.path.basename(p) == "model.pth"), None)
    if pth is None:
        side = [p for p in pths if os.path.dirname(p) == os.path.dirname(cfg_path)]
        pth = sorted(side)[0] if side else pths[0]
    return cfg_path, pth


def load_model(ckpt_dir):
    """Build the model from CKPT_DIR's config.yaml and load its .pth state_dict strictly
    (the checkpoint's melmat, mean and std replace the computed ones, as in ESPnet).
    Returns (model, hp, sentencepiece processor or None)."""
    cfg_path, pth = find_checkpoint_files(ckpt_dir)
    hp = HParams(load_config(cfg_path))
    model = OwsmCtcModel(hp)
    sd = torch.load(pth, map_location="cpu")
    if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    model.load_state_dict(sd, strict=True)
    model.eval()
    bpe = _resolve(os.path.dirname(cfg_path), hp.bpemodel, "bpe.model")
    if bpe is None:
        bpe = _resolve(ckpt_dir, None, "bpe.model")
    sp = None
    if bpe is not None:
        import sentencepiece
        sp = sentencepiece.SentencePieceProcessor()
        sp.Load(bpe)
    return model, hp, sp


# ============================================================================================
# Audio input
# ============================================================================================

def read_wav(path):
    """A RIFF/WAVE file as float32 mono in [-1, 1] and its rate. PCM 8/16/24/32-bit (scaled by
    1/2^(bits-1), as soundfile does) and IEEE float 32/64; channels are averaged."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    pos, fmt, pcm = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            if len(body) < 16:
                raise ValueError(f"{path}: fmt chunk too short")
            tag, ch, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: subformat GUID
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, ch, rate, bits)
        elif cid == b"data":
            pcm = body
        pos += 8 + size + (size & 1)
    if fmt is None or pcm is None:
        raise ValueError(f"{path}: missing fmt or data chunk")
    tag, ch, rate, bits = fmt
    if ch < 1:
        raise ValueError(f"{path}: {ch} channels")
    if tag == 1 and bits == 8:
        x = (np.frombuffer(pcm, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif tag == 1 and bits == 16:
        x = np.frombuffer(pcm[:len(pcm) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
    elif tag == 1 and bits == 24:
        b = np.frombuffer(pcm[:len(pcm) // 3 * 3], dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    elif tag == 1 and bits == 32:
        x = (np.frombuffer(pcm[:len(pcm) // 4 * 4], dtype="<i4").astype(np.float64)
             / 2147483648.0).astype(np.float32)
    elif tag == 3 and bits == 32:
        x = np.frombuffer(pcm[:len(pcm) // 4 * 4], dtype="<f4").astype(np.float32)
    elif tag == 3 and bits == 64:
        x = np.frombuffer(pcm[:len(pcm) // 8 * 8], dtype="<f8").astype(np.float32)
    else:
        raise ValueError(f"{path}: unsupported WAV format tag {tag} with {bits} bits")
    x = x[:len(x) // ch * ch].reshape(-1, ch)
    x = x.mean(axis=1, dtype=np.float32) if ch > 1 else x[:, 0]
    return np.ascontiguousarray(x, dtype=np.float32), rate


# ============================================================================================
# Decoding (spec section 5.6)
# ============================================================================================

def token_id(hp, sym, what):
    """Model id of a symbol given as 'eng' or '<eng>'."""
    s = sym if sym.startswith("<") else f"<{sym}>"
    if s not in hp.token_list:
        raise ValueError(f"unknown {what} symbol {s}")
    return hp.token_list.index(s)


def prompt_ids(hp, sp, text):
    """ESPnet's text_prev handling: SentencePiece EncodeAsPieces (a leading '▁' is kept),
    pieces -> ids by token-list lookup (unknown -> <unk>), and any prompt that contains <na>
    becomes [<na>] (spec 4.3)."""
    if text is None or text == hp.token_list[hp.ids["na"]]:
        return [hp.ids["na"]]
    if sp is None:
        raise ValueError("a text prompt needs the checkpoint's bpe.model")
    lut = {t: i for i, t in enumerate(hp.token_list)}
    ids = [lut.get(p, hp.ids["unk"]) for p in sp.EncodeAsPieces(text)]
    if hp.ids["na"] in ids or not ids:
        return [hp.ids["na"]]
    return ids


def ids_to_text(hp, sp, ids):
    """Token ids (already collapsed, blanks removed) -> (tokens, text, text_nospecial) as
    ESPnet: text keeps every piece, text_nospecial drops pieces of the form <...>; both are
    detokenised with SentencePiece DecodePieces."""
    tokens = [hp.token_list[i] for i in ids]
    nospecial = [t for t in tokens if not (t[0] == "<" and t[-1] == ">")]
    if sp is None:
        return tokens, None, None
    return tokens, sp.DecodePieces(tokens), sp.DecodePieces(nospecial)


def collapse(frame_ids, blank):
    """Greedy CTC: merge consecutive repeats, then drop blanks."""
    out, prev = [], None
    for i in frame_ids:
        if i != prev and i != blank:
            out.append(int(i))
        prev = i
    return out


def windows_for(hp, wav, pad, context):
    """Split a waveform into model inputs, as Speech2TextGreedySearch.batch_decode does:
    audio of at most speech_length seconds is zero-padded at the end to exactly that length
    (one window; with pad=False it is used as is); longer audio gets `context` seconds of zeros
    on both sides and is cut into windows of speech_length seconds every speech_length -
    2*context seconds, the last one zero-padded (spec 5.6, legacy long form)."""
    buf = int(hp.fs * hp.speech_length)
    if len(wav) <= buf:
        if not pad:
            return [wav], False
        out = np.zeros(buf, dtype=np.float32)
        out[:len(wav)] = wav
        return [out], False
    chunk = int(hp.fs * (hp.speech_length - 2 * context))
    if chunk <= 0:
        raise ValueError(f"context {context} s leaves no chunk in a {hp.speech_length} s window")
    c = int(hp.fs * context)
    padded = np.concatenate([np.zeros(c, np.float32), wav, np.zeros(c, np.float32)])
    wins = []
    for i in range(0, len(padded), chunk):
        cur = padded[i:i + buf]
        if len(cur) < buf:
            wins.append(np.concatenate([cur, np.zeros(buf - len(cur), np.float32)]))
            break
        wins.append(cur)
    return wins, True


@torch.no_grad()
def transcribe(model, hp, sp, inp, lang="nolang", task="asr", prompt=None, pad=True,
               context=4.0, trace=None):
    """Run the reference on a waveform (1-D float32 at hp.fs) or on normalised features
    (2-D (T, n_mels), `inp` given as ('feats', array)). Returns a dict with text,
    text_nospecial, token_int, tokens, feats, enc (W, T, d), logits (W, T, V) and the
    long-form flag. Each window runs with batch 1; the first window gets the prompt and the
    others <na>, as batch_decode does."""
    lang_id, task_id = token_id(hp, lang, "language"), token_id(hp, task, "task")
    pids = prompt_ids(hp, sp, prompt)
    if isinstance(inp, tuple) and inp[0] == "feats":
        feats_list, long_form = [torch.from_numpy(np.ascontiguousarray(inp[1], np.float32))[None]], False
    else:
        wins, long_form = windows_for(hp, inp, pad, context)
        feats_list = [model.features(torch.from_numpy(w)[None]) for w in wins]
    prefix = torch.tensor([[lang_id, task_id]], dtype=torch.long)
    encs, logits, argmaxes = [], [], []
    for wi, feats in enumerate(feats_list):
        tr = {} if (trace is not None and wi == 0) else None
        enc, _ = model.encode(feats, [pids if wi == 0 else [hp.ids["na"]]], prefix, tr)
        if tr is not None:
            trace.update(tr)
        lg = model.ctc.ctc_lo(enc)
        encs.append(enc[0])
        logits.append(lg[0])
        argmaxes.append(torch.argmax(lg[0], dim=-1))
    if long_form:
        # batch_decode keeps positions [ctx, buffer_frames - ctx) of each window (the 2 prefix
        # positions included, spec 5.6); with ctx = 0 ESPnet's [ctx:-ctx] slice would be empty,
        # here the whole buffer is kept instead.
        buffer_frames = int(hp.fs / hp.hop_length / 8 * hp.speech_length)
        cf = int(hp.fs / hp.hop_length / 8 * context)
        frame_ids = torch.cat([a[:buffer_frames][cf:-cf] if cf > 0 else a[:buffer_frames]
                               for a in argmaxes])
    else:
        frame_ids = argmaxes[0]
    ids = collapse(frame_ids.tolist(), hp.ids["blank"])
    tokens, text, text_ns = ids_to_text(hp, sp, ids)
    return {
        "text": text, "text_nospecial": text_ns, "token_int": ids, "tokens": tokens,
        "frame_argmax": [a.tolist() for a in argmaxes], "long_form": long_form,
        "feats": torch.cat(feats_list).numpy() if len(feats_list) > 0 else None,
        "enc": torch.stack(encs).numpy(), "logits": torch.stack(logits).numpy(),
        "prompt_ids": pids, "prefix": [lang_id, task_id],
    }


# ============================================================================================
# Random checkpoints
# ============================================================================================

LANG_SAMPLE = ["eng", "deu", "fra", "jpn", "spa", "zho"]
ST_SAMPLE = ["deu", "eng", "jpn"]
_SYNTH_TEXT = (
    "the quick brown fox jumps over the lazy dog while a cat sleeps by the warm fire\n"
    "she sells sea shells on the sea shore and the shells she sells are surely sea shells\n"
    "a journey of a thousand miles begins with a single step taken in the morning light\n"
    "speech recognition turns spoken words into written text for people and machines\n"
    "hello world this is a small synthetic corpus for a tiny sentencepiece model\n"
    "numbers like one two three four five six seven eight nine ten appear here too\n"
    "all work and no play makes jack a dull boy but all play and no work is not better\n"
)


def synthetic_vocab(outdir, n_pieces, seed):
    """Train a tiny SentencePiece unigram model with OWSM's special symbols as user-defined
    pieces and build the matching ESPnet token list (spec 5.1 layout: <blank>, <unk>, the
    sp pieces from id 3, then <sos> <eos> <sop>). Returns (token_list, bpe.model path)."""
    import sentencepiece
    specials = (["<na>", "<nolang>"] + [f"<{c}>" for c in LANG_SAMPLE] + ["<asr>"]
                + [f"<st_{c}>" for c in ST_SAMPLE])
    with tempfile.TemporaryDirectory() as td:
        corpus = os.path.join(td, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            for _ in range(20):
                f.write(_SYNTH_TEXT)
        prefix = os.path.join(td, "bpe")
        sentencepiece.SentencePieceTrainer.Train(
            input=corpus, model_prefix=prefix, vocab_size=n_pieces, model_type="unigram",
            character_coverage=1.0, user_defined_symbols=",".join(specials),
            num_threads=1, minloglevel=2, hard_vocab_limit=False)
        dst = os.path.join(outdir, "bpe.model")
        shutil.copyfile(prefix + ".model", dst)
    sp = sentencepiece.SentencePieceProcessor()
    sp.Load(dst)
    pieces = [sp.IdToPiece(i) for i in range(sp.GetPieceSize())]
    return ["<blank>", "<unk>"] + pieces[3:] + ["<sos>", "<eos>", "<sop>"], dst


def synthetic_stats(path, n_mels, seed):
    """A plausible feats_stats.npz: per-bin log-mel mean in [-20, -12], std in [3, 6]."""
    rng = np.random.RandomState(seed + 7)
    count = np.int64(100000)
    mean = rng.uniform(-20.0, -12.0, n_mels)
    std = rng.uniform(3.0, 6.0, n_mels)
    np.savez(path, count=count, sum=(mean * count).astype(np.float32),
             sum_square=((std * std + mean * mean) * count).astype(np.float32))


PRESET_1B = dict(layers=27, d_model=1024, heads=16, ffn=4096, cgmlp=4096, cgmlp_kernel=31,
                 merge_kernel=31, prompt_layers=4, prompt_d=512, prompt_heads=8, prompt_ffn=2048,
                 cross_layers=list(range(3, 28, 3)), interctc=[6, 12, 15, 21], n_mels=80)
PRESET_TINY = dict(layers=2, d_model=64, heads=4, ffn=256, cgmlp=256, cgmlp_kernel=31,
                   merge_kernel=31, prompt_layers=1, prompt_d=32, prompt_heads=2, prompt_ffn=64,
                   cross_layers=[2], interctc=[1], n_mels=80)


def build_config(a, token_list, bpe_rel, stats_rel, base=None):
    """An ESPnet-style config dict for the sizes in `a` (cross/interctc 1-based)."""
    cfg = {}
    if base:
        for k in ("preprocessor", "preprocessor_conf", "ctc_conf", "token_type", "version"):
            if k in base:
                cfg[k] = base[k]
    cross = [1 if (i + 1) in a.cross_layers else 0 for i in range(a.layers)]
    fc = {"fs": 16000, "hop_length": 160, "n_fft": 512, "win_length": 400}
    if a.n_mels != 80:
        fc["n_mels"] = a.n_mels
    cfg.update({
        "frontend": "default", "frontend_conf": fc,
        "specaug": None, "normalize": "global_mvn", "normalize_conf": {"stats_file": stats_rel},
        "model": "espnet_ctc",
        "model_conf": {"ctc_asr_only": [True] * len(a.interctc) + [False],
                       "interctc_weight": 0.8 if a.interctc else 0.0, "sym_na": "<na>"},
        "encoder": "e_branchformer_ctc",
        "encoder_conf": {
            "output_size": a.d_model, "attention_heads": a.heads,
            "attention_layer_type": "selfattn", "pos_enc_layer_type": "abs_pos",
            "rel_pos_type": "latest", "cgmlp_linear_units": a.cgmlp,
            "cgmlp_conv_kernel": a.cgmlp_kernel, "use_linear_after_conv": False,
            "gate_activation": "identity", "num_blocks": a.layers, "dropout_rate": 0.1,
            "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.1,
            "input_layer": "conv2d8", "layer_drop_rate": 0.0, "linear_units": a.ffn,
            "positionwise_layer_type": "linear", "use_ffn": True, "macaron_ffn": True,
            "merge_conv_kernel": a.merge_kernel, "interctc_layer_idx": list(a.interctc),
            "interctc_use_conditioning": bool(a.interctc), "use_cross_attention": cross,
            "use_flash_attn": False},
        "promptencoder": "transformer",
        "promptencoder_conf": {"output_size": a.prompt_d, "attention_heads": a.prompt_heads,
                               "linear_units": a.prompt_ffn, "num_blocks": a.prompt_layers},
        "input_size": None, "token_type": "bpe", "bpemodel": bpe_rel,
    })
    cfg.setdefault("preprocessor", "s2t_ctc")
    cfg.setdefault("preprocessor_conf", {"speech_length": 30, "speech_init_silence": 30,
                                         "na_symbol": "<na>", "nolang_symbol": "<nolang>",
                                         "text_prev_apply_prob": 0.5, "lang_apply_prob": 0.5})
    cfg["token_list"] = token_list
    return cfg


@torch.no_grad()
def randomize_(model, seed):
    """Random weights with sensible scales: PyTorch's default init for Linear, Conv and
    Embedding (done at construction under the same seed), LayerNorm gamma in [0.5, 1.5] and
    beta ~ N(0, 0.2) so misuse of either shows, a 4x larger ctc_lo so that per-frame argmaxes
    have clear margins, and a conditioning_layer ~ N(0, 1) so that self-conditioning moves the
    hidden state by a visible amount."""
    g = torch.Generator().manual_seed(seed + 1)
    for name, mod in model.named_modules():
        if isinstance(mod, nn.LayerNorm):
            mod.weight.copy_(torch.rand(mod.weight.shape, generator=g) + 0.5)
            mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.2)
    model.ctc.ctc_lo.weight.mul_(4.0)
    cl = model.encoder.conditioning_layer
    if cl is not None:
        cl.weight.copy_(torch.randn(cl.weight.shape, generator=g))


def size_args(a):
    """Fill unset size options from the preset; validate them."""
    preset = PRESET_1B if a.preset == "1b" else PRESET_TINY
    for k, v in preset.items():
        if getattr(a, k, None) is None:
            setattr(a, k, v)
    if a.vocab is None:
        a.vocab = 50002 if a.preset == "1b" else 400
    if a.cross_layers and (min(a.cross_layers) < 1 or max(a.cross_layers) > a.layers):
        raise SystemExit(f"--cross-layers must be within 1..{a.layers} (1-based)")
    if a.interctc and (min(a.interctc) < 1 or max(a.interctc) >= a.layers):
        raise SystemExit(f"--interctc must be within 1..{a.layers - 1} (1-based, ESPnet rule)")
    return a


def make_checkpoint(a):
    """Write OUTDIR/{model.pth, config.yaml, bpe.model, feats_stats.npz} with random weights."""
    size_args(a)
    if a.preset == "1b" and not a.vocab_from:
        raise SystemExit("--preset 1b needs --vocab-from CONFIG.yaml (the real 50,002-token list)")
    os.makedirs(a.outdir, exist_ok=True)
    base = None
    if a.vocab_from:
        base = load_config(a.vocab_from)
        token_list = list(base["token_list"])
        bpe_src = a.bpe_model or _resolve(os.path.dirname(a.vocab_from), None, "bpe.model")
        if bpe_src is None:
            raise SystemExit(f"no bpe.model beside {a.vocab_from}; give --bpe-model")
        dst = os.path.join(a.outdir, "bpe.model")
        if os.path.abspath(bpe_src) != os.path.abspath(dst):
            shutil.copyfile(bpe_src, dst)
    else:
        token_list, _ = synthetic_vocab(a.outdir, a.vocab, a.seed)
    stats_path = os.path.join(a.outdir, "feats_stats.npz")
    if a.stats:
        s = np.load(a.stats)
        if np.asarray(s["sum"]).shape != (a.n_mels,):
            raise SystemExit(f"{a.stats}: {np.asarray(s['sum']).shape[0]} bins, not {a.n_mels}")
        if os.path.abspath(a.stats) != os.path.abspath(stats_path):
            shutil.copyfile(a.stats, stats_path)
    else:
        synthetic_stats(stats_path, a.n_mels, a.seed)
    cfg = build_config(a, token_list, "bpe.model", "feats_stats.npz", base)
    hp = HParams(cfg)
    torch.manual_seed(a.seed)
    model = OwsmCtcModel(hp)
    randomize_(model, a.seed)
    mel = slaney_mel_matrix(hp.fs, hp.n_fft, hp.n_mels, hp.fmin, hp.fmax)
    model.frontend.logmel.melmat.copy_(torch.from_numpy(mel.T.copy()))
    mean, std = global_mvn_stats(stats_path, hp.mvn_eps)
    model.normalize.mean.copy_(torch.from_numpy(mean))
    model.normalize.std.copy_(torch.from_numpy(std))
    torch.save(model.state_dict(), os.path.join(a.outdir, "model.pth"))
    with open(os.path.join(a.outdir, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.dump(cfg, f, Dumper=_YAML_DUMPER, allow_unicode=True, default_flow_style=False)
    n = sum(v.numel() for k, v in model.state_dict().items()
            if k not in ("frontend.logmel.melmat", "normalize.mean", "normalize.std"))
    print(f"{a.outdir}: {len(model.state_dict())} tensors, {n} parameters, "
          f"vocab {hp.vocab_size}, {hp.n_mels} mels")


def count_params(a):
    """Build the model on the meta device (no memory) and report tensor and parameter counts."""
    size_args(a)
    vocab = ["<blank>", "<unk>", "<na>", "<nolang>", "<asr>"] + [f"p{i}" for i in range(a.vocab - 8)] \
        + ["<sos>", "<eos>", "<sop>"]
    if a.vocab_from:
        vocab = list(load_config(a.vocab_from)["token_list"])
    hp = HParams(build_config(a, vocab, "bpe.model", "feats_stats.npz"))
    model = OwsmCtcModel(hp, device="meta")
    sd = model.state_dict()
    n_params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"tensors": len(sd), "parameters": n_params,
                      "shapes": {k: list(v.shape) for k, v in sd.items()}}))


# ============================================================================================
# Command line
# ============================================================================================

def _ilist(s):
    return [int(v) for v in s.split(",") if v.strip()] if s else []


def _add_size_options(p):
    p.add_argument("--preset", choices=["tiny", "1b"], default="tiny",
                   help="defaults for unset sizes: tiny (2 layers, d 64) or 1b (the released geometry)")
    p.add_argument("--layers", type=int)
    p.add_argument("--d-model", dest="d_model", type=int)
    p.add_argument("--heads", type=int)
    p.add_argument("--ffn", type=int)
    p.add_argument("--cgmlp", type=int)
    p.add_argument("--cgmlp-kernel", dest="cgmlp_kernel", type=int)
    p.add_argument("--merge-kernel", dest="merge_kernel", type=int)
    p.add_argument("--prompt-layers", dest="prompt_layers", type=int)
    p.add_argument("--prompt-d", dest="prompt_d", type=int)
    p.add_argument("--prompt-heads", dest="prompt_heads", type=int)
    p.add_argument("--prompt-ffn", dest="prompt_ffn", type=int)
    p.add_argument("--cross-layers", dest="cross_layers", type=_ilist,
                   help="1-based layers with cross-attention, e.g. 3,6")
    p.add_argument("--interctc", type=_ilist, help="1-based inter-CTC layers, e.g. 2,4")
    p.add_argument("--n-mels", dest="n_mels", type=int)
    p.add_argument("--vocab-from", dest="vocab_from", help="take token_list from this config.yaml")
    p.add_argument("--vocab", type=int,
                   help="synthetic vocabulary size (default 400; 50002 for count-params --preset 1b)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="decode audio or features with a checkpoint directory")
    r.add_argument("ckpt")
    r.add_argument("input", help="16 kHz WAV, or .npy normalised features (T, n_mels)")
    r.add_argument("--lang", default="nolang")
    r.add_argument("--task", default="asr")
    r.add_argument("--prompt", default=None, help="previous-text prompt (default <na>)")
    r.add_argument("--no-pad", dest="pad", action="store_false",
                   help="do not pad audio shorter than 30 s (ESPnet's __call__ path)")
    r.add_argument("--context", type=float, default=4.0,
                   help="long-form context seconds (batch_decode default 4)")
    r.add_argument("--dump-encoder", help="encoder output (windows, T, d) float32 .npy")
    r.add_argument("--dump-logits", help="CTC logits (windows, T, vocab) float32 .npy")
    r.add_argument("--dump-feats", help="normalised features (windows, frames, n_mels) .npy")
    r.add_argument("--dump-layers", help="npz of intermediate tensors of the first window")
    r.add_argument("--json", help="write all outputs (text, ids, tokens, argmaxes) as JSON")
    r.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")

    m = sub.add_parser("make-checkpoint", help="write an ESPnet-style random checkpoint")
    m.add_argument("outdir")
    _add_size_options(m)
    m.add_argument("--bpe-model", dest="bpe_model", help="bpe.model to copy (with --vocab-from)")
    m.add_argument("--stats", help="feats_stats.npz to copy (default: synthetic)")
    m.add_argument("--seed", type=int, default=0)

    c = sub.add_parser("count-params", help="tensor/parameter counts via the meta device")
    _add_size_options(c)

    a = ap.parse_args(argv)
    if a.cmd == "make-checkpoint":
        make_checkpoint(a)
        return 0
    if a.cmd == "count-params":
        count_params(a)
        return 0

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    model, hp, sp = load_model(a.ckpt)
    if a.input.endswith(".npy"):
        feats = np.load(a.input)
        if feats.ndim == 3 and feats.shape[0] == 1:
            feats = feats[0]
        if feats.ndim != 2 or feats.shape[1] != hp.n_mels:
            raise SystemExit(f"{a.input}: expected (T, {hp.n_mels}) features, got {feats.shape}")
        inp = ("feats", feats)
    else:
        wav, rate = read_wav(a.input)
        if rate != hp.fs:
            raise SystemExit(f"{a.input}: {rate} Hz; the model needs {hp.fs} Hz (resample first)")
        inp = wav
    trace = {} if a.dump_layers else None
    res = transcribe(model, hp, sp, inp, a.lang, a.task, a.prompt, a.pad, a.context, trace)
    if a.dump_encoder:
        np.save(a.dump_encoder, res["enc"].astype(np.float32))
    if a.dump_logits:
        np.save(a.dump_logits, res["logits"].astype(np.float32))
    if a.dump_feats:
        np.save(a.dump_feats, res["feats"].astype(np.float32))
    if a.dump_layers:
        np.savez(a.dump_layers, **{k: v[0].numpy() for k, v in trace.items()})
    if a.json:
        out = {k: res[k] for k in ("text", "text_nospecial", "token_int", "tokens",
                                   "frame_argmax", "long_form", "prompt_ids", "prefix")}
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(out, f, ensure_ascii=False)
    print(res["text_nospecial"] if res["text_nospecial"] is not None
          else " ".join(res["tokens"]))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, OSError) as e:  # bad input: one line, no traceback
        print(f"owsm_ctc.py: error: {e}", file=sys.stderr)
        sys.exit(1)
