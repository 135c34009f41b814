#!/usr/bin/env python3
"""model.py - the trainable llama model of recipes/textlm_tiny.

The computation is tests/ref/llama.py's (Hugging Face LlamaForCausalLM, llama.cpp's "llama"):
RMSNorm x / sqrt(mean(x^2) + eps) * w; rotate_half RoPE on q and k (angle pos * base^(-2i/Dh));
grouped-query attention (query head h uses kv head h // (H / Hkv)); causal softmax(q k^T /
sqrt(Dh)) v; o_proj; SwiGLU down(silu(gate(h)) * up(h)); final RMSNorm; tied or separate head.
It uses the reference's Config and HF parameter names, so state_dict() is exactly what
tests/ref/llama.py's write_gguf()/forward() take, and check_parity() compares the two. This
module runs in float32 (or whatever dtype the parameters have) and batched, for training.
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tests", "ref"))
import llama as ref  # noqa: E402

Config = ref.Config

# model sizes of the recipe (see README.md for how they were chosen)
PRESETS = {
    "target": dict(d=256, layers=6, heads=8, kv_heads=4, ff=704, ctx=256, tied=True),
    "draft": dict(d=96, layers=2, heads=4, kv_heads=2, ff=256, ctx=256, tied=True),
    "smoke": dict(d=32, layers=2, heads=4, kv_heads=2, ff=64, ctx=64, tied=True),
    "smoke-draft": dict(d=16, layers=1, heads=2, kv_heads=1, ff=32, ctx=64, tied=True),
}


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        Dh = cfg.head_dim
        self.cfg = cfg
        self.q_proj = nn.Linear(cfg.d, cfg.heads * Dh, bias=False)
        self.k_proj = nn.Linear(cfg.d, cfg.kv_heads * Dh, bias=False)
        self.v_proj = nn.Linear(cfg.d, cfg.kv_heads * Dh, bias=False)
        self.o_proj = nn.Linear(cfg.heads * Dh, cfg.d, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        H, Hkv, Dh = self.cfg.heads, self.cfg.kv_heads, self.cfg.head_dim
        q = self.q_proj(x).view(B, T, H, Dh).transpose(1, 2)
        k = self.k_proj(x).view(B, T, Hkv, Dh).transpose(1, 2)
        v = self.v_proj(x).view(B, T, Hkv, Dh).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if Hkv != H:
            k = k.repeat_interleave(H // Hkv, dim=1)
            v = v.repeat_interleave(H // Hkv, dim=1)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(Dh)) + mask
        y = torch.softmax(att, dim=-1) @ v
        return self.o_proj(y.transpose(1, 2).reshape(B, T, H * Dh))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.d, cfg.ff, bias=False)
        self.up_proj = nn.Linear(cfg.d, cfg.ff, bias=False)
        self.down_proj = nn.Linear(cfg.ff, cfg.d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d, cfg.eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.d, cfg.eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Inner(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab, cfg.d)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.d, cfg.eps)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Llama(nn.Module):
    """Parameter names model.embed_tokens.weight, model.layers.N.*, model.norm.weight,
    lm_head.weight (absent when tied), as tests/ref/llama.py."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = Inner(cfg)
        if not cfg.tied:
            self.lm_head = nn.Linear(cfg.d, cfg.vocab, bias=False)
        self.reset_parameters()

    def reset_parameters(self):
        std = 0.02
        for name, p in self.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                nn.init.ones_(p)
            elif name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
                nn.init.normal_(p, std=std / math.sqrt(2 * self.cfg.layers))  # GPT-2 residual scaling
            else:
                nn.init.normal_(p, std=std)

    def rope(self, T, device, dtype):
        Dh = self.cfg.head_dim
        inv = torch.tensor([self.cfg.rope_base ** (-2.0 * i / Dh) for i in range(Dh // 2)], dtype=torch.float64)
        ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
        ang = torch.cat((ang, ang), dim=-1)
        return torch.cos(ang).to(device, dtype), torch.sin(ang).to(device, dtype)

    def forward(self, tokens):
        """tokens [B, T] -> logits [B, T, vocab] (positions 0..T-1, causal)."""
        B, T = tokens.shape
        x = self.model.embed_tokens(tokens)
        cos, sin = self.rope(T, x.device, x.dtype)
        mask = torch.full((T, T), float("-inf"), device=x.device, dtype=x.dtype).triu(1)
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        x = self.model.norm(x)
        w = self.model.embed_tokens.weight if self.cfg.tied else self.lm_head.weight
        return x @ w.t()


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def check_parity(model, tokens, tol=1e-3):
    """max |logit difference| between this module (float32) and tests/ref/llama.py's float64
    forward on the same weights; raises if above tol."""
    sd = {k: v.detach().double() for k, v in model.state_dict().items()}
    want = ref.forward(model.cfg, sd, tokens)
    with torch.no_grad():
        got = model(torch.as_tensor([tokens], dtype=torch.long))[0].double()
    d = float((got - want).abs().max())
    if not d <= tol:
        raise RuntimeError("training model and tests/ref/llama.py differ by %g (> %g)" % (d, tol))
    return d
