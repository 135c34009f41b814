#!/usr/bin/env python3
"""speculative_torch.py - the driver of bench/speculative: Cochlea's greedy generation, plain and
with each speculative decoder (bench/speculative_bench), next to PyTorch plain greedy decoding with
a KV cache on the same model and the same prompt tokens, in one run (bench/README.md,
"Speculative decoding").

    speculative_torch.py EXE MODEL PROMPTS.txt [-n N] [-t THREADS] [--max-prompts P]
        [--prompt-chars C] [--methods LIST] [--ctx N] [--torch-reps R] [--draft-model M --draft-depth D]

EXE runs first (its table is printed as it comes) and writes the prompt tokens and plain
decoding's tokens and times; then the PyTorch side decodes every prompt with the weights of
MODEL (tests/ref/llama.py load_gguf: HF layout, cast to float32), the same number of new tokens
(fewer when EOS comes first, as in Cochlea), timed the same way: the first token's step runs the
prefill, the decode rate is (tokens after the first) / (time after the first). It uses one batched
prefill and then one row per step against a preallocated float32 cache (grouped-query attention
as matrix products per kv head), torch.inference_mode, torch.set_num_threads(THREADS): the
ordinary way to write cached decoding in eager PyTorch. Its greedy tokens are compared with
Cochlea's (equal except at float32 near-ties). The PyTorch figure is the median of R runs
(default 1) of the whole prompt set. Ratios printed: each method's tok/s over plain Cochlea, and
plain Cochlea over PyTorch ("plain decoding no slower than PyTorch": >= 1)."""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ref"))
import llama  # noqa: E402


class CachedLlama:
    """Float32 llama with a KV cache: prefill(tokens) then step(token), HF semantics (llama.py)."""

    def __init__(self, cfg, sd, capacity):
        self.cfg = cfg
        self.w = {k: v.float().contiguous() for k, v in sd.items()}
        self.head = self.w["model.embed_tokens.weight"] if cfg.tied else self.w["lm_head.weight"]
        Dh = cfg.head_dim
        inv = torch.tensor([cfg.rope_base ** (-2.0 * i / Dh) for i in range(Dh // 2)], dtype=torch.float64)
        ang = torch.arange(capacity, dtype=torch.float64)[:, None] * inv[None, :]
        ang = torch.cat((ang, ang), dim=-1)
        self.cos, self.sin = torch.cos(ang).float(), torch.sin(ang).float()  # [capacity, Dh]
        self.k = torch.zeros(cfg.layers, cfg.kv_heads, capacity, Dh)
        self.v = torch.zeros(cfg.layers, cfg.kv_heads, capacity, Dh)
        self.n = 0

    def _rope(self, x, pos):  # x [heads, T, Dh]
        c, s = self.cos[pos], self.sin[pos]
        h = x.shape[-1] // 2
        return x * c + torch.cat((-x[..., h:], x[..., :h]), dim=-1) * s

    def forward(self, tokens):
        """Logits of the last row after appending `tokens` to the cache."""
        cfg, w = self.cfg, self.w
        T, H, Hkv, Dh = len(tokens), cfg.heads, cfg.kv_heads, cfg.head_dim
        G = H // Hkv
        n0, n1 = self.n, self.n + T
        pos = slice(n0, n1)
        x = w["model.embed_tokens.weight"][torch.as_tensor(tokens, dtype=torch.long)]
        mask = None
        if T > 1:
            mask = torch.full((T, n1), float("-inf")).triu(n0 + 1)
        for i in range(cfg.layers):
            p = "model.layers.%d." % i
            h = llama._rms(x, w[p + "input_layernorm.weight"], cfg.eps)
            q = (h @ w[p + "self_attn.q_proj.weight"].T).view(T, H, Dh).transpose(0, 1)
            k = (h @ w[p + "self_attn.k_proj.weight"].T).view(T, Hkv, Dh).transpose(0, 1)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).view(T, Hkv, Dh).transpose(0, 1)
            self.k[i, :, pos] = self._rope(k, pos)
            self.v[i, :, pos] = v
            q = self._rope(q, pos).reshape(Hkv, G * T, Dh)  # query heads of one kv head together
            K, V = self.k[i, :, :n1], self.v[i, :, :n1]
            s = (q @ K.transpose(1, 2)) * (Dh ** -0.5)  # [Hkv, G*T, n1]
            if mask is not None:
                s = s.view(Hkv, G, T, n1) + mask
                s = s.view(Hkv, G * T, n1)
            a = torch.softmax(s, dim=-1) @ V  # [Hkv, G*T, Dh]
            a = a.view(H, T, Dh).transpose(0, 1).reshape(T, H * Dh)
            x = x + a @ w[p + "self_attn.o_proj.weight"].T
            h = llama._rms(x, w[p + "post_attention_layernorm.weight"], cfg.eps)
            g = torch.nn.functional.silu(h @ w[p + "mlp.gate_proj.weight"].T)
            x = x + (g * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
        self.n = n1
        x = llama._rms(x[-1:], w["model.norm.weight"], cfg.eps)
        return (x @ self.head.T)[0]


def torch_decode(cfg, sd, capacity, prompt, n_new, eos):
    """Greedy tokens and (tokens after the first, seconds after the first, total seconds)."""
    m = CachedLlama(cfg, sd, capacity)
    out = []
    t0 = time.perf_counter()
    t_first = None
    with torch.inference_mode():
        logits = m.forward(prompt)
        while len(out) < n_new:
            y = int(torch.argmax(logits))
            out.append(y)
            if t_first is None:
                t_first = time.perf_counter()
            if y == eos or len(out) == n_new or len(prompt) + len(out) >= capacity:
                break
            logits = m.forward([y])
    t1 = time.perf_counter()
    return out, max(len(out) - 1, 0), (t1 - t_first) if t_first else 0.0, t1 - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("exe")
    ap.add_argument("model")
    ap.add_argument("prompts")
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-t", type=int, default=1)
    ap.add_argument("--max-prompts", type=int, default=8)
    ap.add_argument("--prompt-chars", type=int, default=400)
    ap.add_argument("--methods", default="none,recycling,lookup")
    ap.add_argument("--ctx", type=int, default=0)
    ap.add_argument("--torch-reps", type=int, default=1)
    ap.add_argument("--draft-model", help="the draft model of the draft, draft-tree and rsd methods")
    ap.add_argument("--draft-depth", type=int, default=0, help="draft tokens per branch (default: draft.h's)")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tok_path = os.path.join(tmp, "tokens.json")
        cmd = [a.exe, a.model, a.prompts, "-n", str(a.n), "-t", str(a.t), "--max-prompts", str(a.max_prompts),
               "--prompt-chars", str(a.prompt_chars), "--methods", a.methods, "--tokens-out", tok_path]
        if a.ctx:
            cmd += ["--ctx", str(a.ctx)]
        if a.draft_model:
            cmd += ["--draft-model", a.draft_model]
        if a.draft_depth:
            cmd += ["--draft-depth", str(a.draft_depth)]
        print("$ " + " ".join(cmd), flush=True)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        sys.stdout.write(proc.stdout)
        sys.stdout.flush()
        if not os.path.exists(tok_path):
            print("speculative: %s failed (status %d)" % (a.exe, proc.returncode), file=sys.stderr)
            return 1
        ref = json.load(open(tok_path))
    rows = {}
    for line in proc.stdout.splitlines():
        if line.startswith("method="):
            kv = dict(f.split("=", 1) for f in line.split())
            rows.setdefault(kv["method"] + ":" + kv["nodes"], kv)
    plain = next((r for r in rows.values() if r["method"] == "none"), None)

    torch.set_num_threads(a.t)
    cfg, sd = llama.load_gguf(a.model)
    capacity = a.ctx or min(cfg.ctx, 4096)
    same, tps_runs = 0, []
    for rep in range(max(1, a.torch_reps)):
        dec_tok, dec_s = 0, 0.0
        for p in ref["prompts"]:
            out, n_after, t_after, _ = torch_decode(cfg, sd, capacity, p["prompt"], ref["max_new"], ref["eos"])
            dec_tok += n_after
            dec_s += t_after
            if rep == 0:
                same += out == p["tokens"]
        tps_runs.append(dec_tok / dec_s if dec_s > 0 else 0.0)
    tps_runs.sort()
    torch_tps = tps_runs[len(tps_runs) // 2]
    n_p = len(ref["prompts"])
    print("%-16s %6s %8s %9s %9.2f %7s %7s %8s %d/%d (greedy tokens equal to Cochlea plain)" % (
        "pytorch", "-", "-", "-", torch_tps, "-", "-", "-", same, n_p))
    print()
    print("summary (%d prompts, up to %d new tokens, %d thread(s)):" % (n_p, ref["max_new"], ref["threads"]))
    for r in rows.values():
        if r["method"] == "none":
            continue
        print("  %-12s nodes %4s: %6.2f tok/s = %.2fx plain, MAT %.3f, acceptance %.3f, identical %s" % (
            r["method"], r["nodes"], float(r["tok_s"]), float(r["speedup"]), float(r["mat"]), float(r["acceptance"]),
            r["identical"]))
    if plain:
        ratio = float(plain["tok_s"]) / torch_tps if torch_tps > 0 else float("inf")
        print("  plain Cochlea %.2f tok/s vs PyTorch %.2f tok/s: %.2fx (PyTorch runs: %s)" % (
            float(plain["tok_s"]), torch_tps, ratio, ", ".join("%.2f" % x for x in tps_runs)))
    if same != n_p:
        print("  note: PyTorch's greedy tokens differ from Cochlea's on %d prompt(s) (float32 near-ties)" % (n_p - same))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
