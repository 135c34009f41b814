#!/usr/bin/env python3
"""llama.py - PyTorch reference of llama.cpp's "llama" architecture and a writer of small random
llama GGUF files (the truth for tests/llama_parity.py and src/lm/model.c).

The model is the Hugging Face LlamaForCausalLM computation, in float64:
    h = RMSNorm(x) * w,  RMSNorm(x) = x / sqrt(mean(x^2) + eps)
    attention with RoPE "rotate_half" on q and k (HF order: pairs (i, i + Dh/2), angle
    pos * base^(-2i/Dh), computed in float64), grouped-query (query head h uses kv head
    h // (H / Hkv), HF repeat_kv), causal softmax(q k^T / sqrt(Dh)) v, o_proj;
    SwiGLU MLP down(silu(gate(h)) * up(h)); final RMSNorm; lm_head (or tied embed_tokens).

GGUF layout written (llama.cpp's convert_hf_to_gguf.py, LlamaModel): keys general.architecture
= "llama", llama.context_length, embedding_length, block_count, feed_forward_length,
attention.head_count, attention.head_count_kv, rope.dimension_count, rope.freq_base,
attention.layer_norm_rms_epsilon, vocab_size, general.file_type, a minimal tokenizer.ggml.*
(model "llama", tokens "<unk>" "<s>" "</s>" then "<0xNN>"-free "t<i>" pieces, scores, types);
tensors token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm,
ffn_gate, ffn_up, ffn_down}.weight, output_norm.weight, output.weight (absent when tied).
attn_q / attn_k are stored with llama.cpp's permute():
    w.reshape(n_head, 2, Dh/2, d).swapaxes(1, 2).reshape(w.shape)
(n_head = head_count for q, head_count_kv for k), which turns HF's rotate_half RoPE into ggml's
interleaved "normal" mode on the stored weights. load_gguf() undoes it, so a file written here
or by llama.cpp's converter gives the HF-layout weights back (dequantised from f16/bf16/q8_0).

    python3 tests/ref/llama.py make OUT.gguf [--vocab 96 --d 64 --layers 2 --heads 4
        --kv-heads 2 --ff 160 --ctx 128 --rope-base 10000 --eps 1e-5 --tied --type f32 --seed 0]
    python3 tests/ref/llama.py logits MODEL.gguf --tokens 1,2,3 [--out L.npy]
"""

import argparse
import os
import sys
from dataclasses import dataclass

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from gguf import FILE_TYPES, GGUFReader, GGUFWriter  # noqa: E402


@dataclass
class Config:
    vocab: int = 96
    d: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    ff: int = 160
    ctx: int = 128
    rope_base: float = 10000.0
    eps: float = 1e-5
    tied: bool = False

    @property
    def head_dim(self):
        return self.d // self.heads


def random_state_dict(cfg, seed=0):
    """HF-named float32 weights: uniform(-a, a) with a ~ 1/sqrt(fan_in) (clear logit margins),
    norm weights around 1."""
    g = torch.Generator().manual_seed(seed)
    Dh = cfg.head_dim

    def u(shape, scale):
        return (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1).mul(scale).float()

    def norm(n):
        return (1 + u((n,), 0.3)).float()

    ws = 1.0 / cfg.d ** 0.5
    sd = {"model.embed_tokens.weight": u((cfg.vocab, cfg.d), 3.4 * ws)}
    for i in range(cfg.layers):
        p = "model.layers.%d." % i
        sd[p + "input_layernorm.weight"] = norm(cfg.d)
        sd[p + "self_attn.q_proj.weight"] = u((cfg.heads * Dh, cfg.d), 2 * ws)
        sd[p + "self_attn.k_proj.weight"] = u((cfg.kv_heads * Dh, cfg.d), 2 * ws)
        sd[p + "self_attn.v_proj.weight"] = u((cfg.kv_heads * Dh, cfg.d), ws)
        sd[p + "self_attn.o_proj.weight"] = u((cfg.d, cfg.heads * Dh), ws)
        sd[p + "post_attention_layernorm.weight"] = norm(cfg.d)
        sd[p + "mlp.gate_proj.weight"] = u((cfg.ff, cfg.d), 1.7 * ws)
        sd[p + "mlp.up_proj.weight"] = u((cfg.ff, cfg.d), 1.7 * ws)
        sd[p + "mlp.down_proj.weight"] = u((cfg.d, cfg.ff), 1.7 / cfg.ff ** 0.5)
    sd["model.norm.weight"] = norm(cfg.d)
    if not cfg.tied:
        sd["lm_head.weight"] = u((cfg.vocab, cfg.d), 3 * ws)
    return sd


def permute(w, n_head):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute (HF rotate_half order -> interleaved)."""
    w = np.asarray(w)
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w, n_head):
    """Inverse of permute()."""
    w = np.asarray(w)
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(sd, cfg, path, wtype="f32"):
    """Write the state dict as llama.cpp would: matrices in wtype, norms in f32."""
    w = GGUFWriter()
    w.add_string("general.architecture", "llama")
    w.add_string("general.name", "cochlea-random-llama")
    w.add_u32("llama.context_length", cfg.ctx)
    w.add_u32("llama.embedding_length", cfg.d)
    w.add_u32("llama.block_count", cfg.layers)
    w.add_u32("llama.feed_forward_length", cfg.ff)
    w.add_u32("llama.rope.dimension_count", cfg.head_dim)
    w.add_u32("llama.attention.head_count", cfg.heads)
    w.add_u32("llama.attention.head_count_kv", cfg.kv_heads)
    w.add_f32("llama.rope.freq_base", cfg.rope_base)
    w.add_f32("llama.attention.layer_norm_rms_epsilon", cfg.eps)
    w.add_u32("llama.vocab_size", cfg.vocab)
    w.add_u32("general.file_type", FILE_TYPES[wtype])
    w.add_string("tokenizer.ggml.model", "llama")
    tokens = ["<unk>", "<s>", "</s>"] + ["t%d" % i for i in range(3, cfg.vocab)]
    w.add_string_array("tokenizer.ggml.tokens", tokens)
    w.add_array("tokenizer.ggml.scores", [0.0] * 3 + [-float(i) for i in range(3, cfg.vocab)], "f32")
    w.add_array("tokenizer.ggml.token_type", [2, 3, 3] + [1] * (cfg.vocab - 3), "i32")
    w.add_u32("tokenizer.ggml.bos_token_id", 1)
    w.add_u32("tokenizer.ggml.eos_token_id", 2)

    def t(name):
        return sd[name].detach().cpu().numpy().astype(np.float32)

    w.add_tensor("token_embd.weight", t("model.embed_tokens.weight"), wtype)
    for i in range(cfg.layers):
        p, b = "model.layers.%d." % i, "blk.%d." % i
        w.add_tensor(b + "attn_norm.weight", t(p + "input_layernorm.weight"), "f32")
        w.add_tensor(b + "attn_q.weight", permute(t(p + "self_attn.q_proj.weight"), cfg.heads), wtype)
        w.add_tensor(b + "attn_k.weight", permute(t(p + "self_attn.k_proj.weight"), cfg.kv_heads), wtype)
        w.add_tensor(b + "attn_v.weight", t(p + "self_attn.v_proj.weight"), wtype)
        w.add_tensor(b + "attn_output.weight", t(p + "self_attn.o_proj.weight"), wtype)
        w.add_tensor(b + "ffn_norm.weight", t(p + "post_attention_layernorm.weight"), "f32")
        w.add_tensor(b + "ffn_gate.weight", t(p + "mlp.gate_proj.weight"), wtype)
        w.add_tensor(b + "ffn_up.weight", t(p + "mlp.up_proj.weight"), wtype)
        w.add_tensor(b + "ffn_down.weight", t(p + "mlp.down_proj.weight"), wtype)
    w.add_tensor("output_norm.weight", t("model.norm.weight"), "f32")
    if not cfg.tied:
        w.add_tensor("output.weight", t("lm_head.weight"), wtype)
    w.write(path)


def load_gguf(path):
    """(Config, HF-layout state dict of float64 tensors) from a llama GGUF (dequantised)."""
    r = GGUFReader(path)

    def kv(k, default=None):
        return r.kv[k].value if k in r.kv else default

    if kv("general.architecture") != "llama":
        raise ValueError("%s: not a llama file" % path)
    tied = "output.weight" not in {t.name for t in r.tensors}
    heads = int(kv("llama.attention.head_count"))
    cfg = Config(vocab=0, d=int(kv("llama.embedding_length")), layers=int(kv("llama.block_count")), heads=heads,
                 kv_heads=int(kv("llama.attention.head_count_kv", heads)), ff=int(kv("llama.feed_forward_length")),
                 ctx=int(kv("llama.context_length")), rope_base=float(kv("llama.rope.freq_base", 10000.0)),
                 eps=float(kv("llama.attention.layer_norm_rms_epsilon")), tied=tied)

    def t(name):
        return torch.from_numpy(np.array(r.tensor(name).numpy(), dtype=np.float64))

    sd = {"model.embed_tokens.weight": t("token_embd.weight")}
    cfg.vocab = sd["model.embed_tokens.weight"].shape[0]
    for i in range(cfg.layers):
        p, b = "model.layers.%d." % i, "blk.%d." % i
        sd[p + "input_layernorm.weight"] = t(b + "attn_norm.weight")
        sd[p + "self_attn.q_proj.weight"] = torch.from_numpy(unpermute(t(b + "attn_q.weight").numpy(), cfg.heads))
        sd[p + "self_attn.k_proj.weight"] = torch.from_numpy(unpermute(t(b + "attn_k.weight").numpy(), cfg.kv_heads))
        sd[p + "self_attn.v_proj.weight"] = t(b + "attn_v.weight")
        sd[p + "self_attn.o_proj.weight"] = t(b + "attn_output.weight")
        sd[p + "post_attention_layernorm.weight"] = t(b + "ffn_norm.weight")
        sd[p + "mlp.gate_proj.weight"] = t(b + "ffn_gate.weight")
        sd[p + "mlp.up_proj.weight"] = t(b + "ffn_up.weight")
        sd[p + "mlp.down_proj.weight"] = t(b + "ffn_down.weight")
    sd["model.norm.weight"] = t("output_norm.weight")
    if not tied:
        sd["lm_head.weight"] = t("output.weight")
    return cfg, sd


def _rms(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def _rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def forward(cfg, sd, tokens, positions=None):
    """Logits [T, vocab] (float64) of a causal forward over `tokens` at `positions` (0..T-1)."""
    sd = {k: v.double() for k, v in sd.items()}
    tok = torch.as_tensor(tokens, dtype=torch.long)
    T, H, Hkv, Dh = tok.shape[0], cfg.heads, cfg.kv_heads, cfg.head_dim
    pos = torch.arange(T, dtype=torch.float64) if positions is None else torch.as_tensor(positions, dtype=torch.float64)
    inv = torch.tensor([cfg.rope_base ** (-2.0 * i / Dh) for i in range(Dh // 2)], dtype=torch.float64)
    ang = pos[:, None] * inv[None, :]
    ang = torch.cat((ang, ang), dim=-1)  # HF: emb = cat(freqs, freqs)
    cos, sin = torch.cos(ang)[None], torch.sin(ang)[None]  # [1, T, Dh]
    x = sd["model.embed_tokens.weight"][tok]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for i in range(cfg.layers):
        p = "model.layers.%d." % i
        h = _rms(x, sd[p + "input_layernorm.weight"], cfg.eps)
        q = (h @ sd[p + "self_attn.q_proj.weight"].T).view(T, H, Dh).transpose(0, 1)
        k = (h @ sd[p + "self_attn.k_proj.weight"].T).view(T, Hkv, Dh).transpose(0, 1)
        v = (h @ sd[p + "self_attn.v_proj.weight"].T).view(T, Hkv, Dh).transpose(0, 1)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        k = k.repeat_interleave(H // Hkv, dim=0)
        v = v.repeat_interleave(H // Hkv, dim=0)
        att = torch.softmax(q @ k.transpose(1, 2) / Dh ** 0.5 + mask, dim=-1) @ v
        x = x + att.transpose(0, 1).reshape(T, H * Dh) @ sd[p + "self_attn.o_proj.weight"].T
        h = _rms(x, sd[p + "post_attention_layernorm.weight"], cfg.eps)
        g = h @ sd[p + "mlp.gate_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * (h @ sd[p + "mlp.up_proj.weight"].T)) @ sd[p + "mlp.down_proj.weight"].T
    x = _rms(x, sd["model.norm.weight"], cfg.eps)
    head = sd["model.embed_tokens.weight"] if cfg.tied else sd["lm_head.weight"]
    return x @ head.T


def tree_logits(cfg, sd, prefix, tokens, parents):
    """Reference for a tree batch: row i = last logits of prefix + the root-to-node path of i."""
    rows = []
    for i in range(len(tokens)):
        path, j = [], i
        while j >= 0:
            path.append(tokens[j])
            j = parents[j]
        rows.append(forward(cfg, sd, list(prefix) + path[::-1])[-1])
    return torch.stack(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("out")
    for name, default in (("vocab", 96), ("d", 64), ("layers", 2), ("heads", 4), ("kv-heads", 2), ("ff", 160),
                          ("ctx", 128), ("seed", 0)):
        mk.add_argument("--" + name, type=int, default=default)
    mk.add_argument("--rope-base", type=float, default=10000.0)
    mk.add_argument("--eps", type=float, default=1e-5)
    mk.add_argument("--tied", action="store_true")
    mk.add_argument("--type", default="f32", choices=sorted(FILE_TYPES))
    lg = sub.add_parser("logits")
    lg.add_argument("model")
    lg.add_argument("--tokens", required=True)
    lg.add_argument("--out")
    a = ap.parse_args()
    if a.cmd == "make":
        cfg = Config(vocab=a.vocab, d=a.d, layers=a.layers, heads=a.heads, kv_heads=a.kv_heads, ff=a.ff, ctx=a.ctx,
                     rope_base=a.rope_base, eps=a.eps, tied=a.tied)
        write_gguf(random_state_dict(cfg, a.seed), cfg, a.out, a.type)
    else:
        cfg, sd = load_gguf(a.model)
        logits = forward(cfg, sd, [int(t) for t in a.tokens.split(",")]).numpy()
        if a.out:
            np.save(a.out, logits.astype(np.float32))
        else:
            print(logits.argmax(-1).tolist())


if __name__ == "__main__":
    main()
