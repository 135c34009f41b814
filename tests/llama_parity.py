#!/usr/bin/env python3
"""C-vs-PyTorch parity of the decoder runtime (src/lm/model.c) on random llama GGUFs (run by
tests/llama_parity.sh).

Models are written by tests/ref/llama.py (llama.cpp's key and tensor names, Q/K permuted as
llama.cpp's converter does) and run by `tests/test_lm logits` (the C driver):
  mha-tied   MHA (H = Hkv = 4), tied head, context 64, 60 tokens
  gqa        GQA 8/2, untied, d 128, 3 layers, rope base 5e5, eps 1e-6, context 256, 200 tokens
  mqa        MQA 6/1 (head dim 16), untied, context 32, 32 tokens (the whole context)
  gqa-long   GQA 2/1 (head dim 32), tied, context 512, 300 tokens
Each is compared with the float64 reference in four ways: one prefill batch, token-by-token
decoding, chunks of 7 tokens, and a 12-node tree batch after a 10-token prefix (row i vs the
reference run on prefix + the root-to-node path of i); prefill also on 2 threads.
F32 files: max |logit diff| <= F32_TOL. F16/BF16/Q8_0 files (gqa; mha-tied also as Q8_0 with the
tied head in Q8_0): vs the reference on the file's own dequantised weights <= F32_TOL, and vs
the F32 model within the stated TYPE_TOL. The bf16/int8 matrix-product precisions: within
PREC_TOL of the F32 reference. A truncated file must fail with a message. Exit 1 on any failure.
"""

import os
import subprocess
import sys
import tempfile

SRC = os.environ.get("top_srcdir") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("top_builddir", ".")
DRIVER = os.environ.get("LM_DRIVER") or os.path.join(BUILD, "tests", "test_lm")

try:
    import numpy as np
    import torch  # noqa: F401
except ImportError as _e:
    print(f"SKIP: {sys.executable} cannot import {_e.name} (needed by the reference)")
    sys.exit(77)
if not os.access(DRIVER, os.X_OK):
    print(f"FAIL: {DRIVER} is not built")
    sys.exit(1)

sys.path[:0] = [os.path.join(SRC, "tests", "ref")]
import llama as ref  # noqa: E402
from checks import FAILS, check  # noqa: E402

F32_TOL = 1e-4      # the bound, fp32 C vs float64 reference
TYPE_TOL = {"f16": 0.05, "bf16": 0.4, "q8_0": 0.4}    # file type vs the F32 model (random weights)
PREC_TOL = {"bf16": 0.4, "int8": 1.5}                  # context precision vs the F32 reference
TREE_PARENTS = [-1, 0, 0, 1, 1, 2, 3, 3, 5, -1, 9, 6]

MODELS = {
    "mha-tied": (ref.Config(vocab=96, d=64, layers=2, heads=4, kv_heads=4, ff=160, ctx=64, tied=True), 60),
    "gqa": (ref.Config(vocab=128, d=128, layers=3, heads=8, kv_heads=2, ff=352, ctx=256, rope_base=5e5, eps=1e-6),
            200),
    "mqa": (ref.Config(vocab=80, d=96, layers=2, heads=6, kv_heads=1, ff=128, ctx=32), 32),
    "gqa-long": (ref.Config(vocab=64, d=64, layers=2, heads=2, kv_heads=1, ff=96, ctx=512, tied=True), 300),
}


def run_c(path, tokens, rows, vocab, mode="prefill", threads=1, precision="f32", prefix=0, parents=None):
    with tempfile.NamedTemporaryFile(suffix=".bin") as out:
        cmd = [DRIVER, "logits", path, "--tokens", ",".join(map(str, tokens)), "--mode", mode, "--threads",
               str(threads), "--precision", precision, "--out", out.name]
        if parents is not None:
            cmd += ["--prefix", str(prefix), "--parents", ",".join(map(str, parents))]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stderr)
            return None
        return np.fromfile(out.name, dtype="<f4").reshape(rows, vocab).astype(np.float64)


def diff(a, b):
    return float("inf") if a is None else float(np.abs(a - b).max())


def main():
    tmp = tempfile.mkdtemp(prefix="llama_parity.")
    rng = np.random.default_rng(7)
    for seed, (name, (cfg, T)) in enumerate(MODELS.items()):
        sd = ref.random_state_dict(cfg, seed + 1)
        path = os.path.join(tmp, name + ".gguf")
        ref.write_gguf(sd, cfg, path, "f32")
        fcfg, fsd = ref.load_gguf(path)
        same = all(abs(getattr(fcfg, k) - getattr(cfg, k)) <= 1e-6 * abs(getattr(cfg, k)) for k in vars(cfg))
        check(same, f"{name}: config read back from the GGUF ({fcfg})")
        tokens = rng.integers(0, cfg.vocab, T).tolist()
        want = ref.forward(fcfg, fsd, tokens).numpy()
        for mode, threads in (("prefill", 1), ("prefill", 2), ("decode", 1), ("chunk=7", 1)):
            d = diff(run_c(path, tokens, T, cfg.vocab, mode, threads), want)
            check(d <= F32_TOL, f"{name} f32 {mode} -t {threads}: max |diff| {d:.3g} <= {F32_TOL:g}")
        tree_tok = rng.integers(0, cfg.vocab, len(TREE_PARENTS)).tolist()
        twant = ref.tree_logits(fcfg, fsd, tokens[:10], tree_tok, TREE_PARENTS).numpy()
        got = run_c(path, tokens[:10] + tree_tok, len(TREE_PARENTS), cfg.vocab, "tree", prefix=10,
                    parents=TREE_PARENTS)
        d = diff(got, twant)
        check(d <= F32_TOL, f"{name} f32 tree ({len(TREE_PARENTS)} nodes after 10): max |diff| {d:.3g}")
        types = ("f16", "bf16", "q8_0") if name == "gqa" else ("q8_0",) if name == "mha-tied" else ()
        for ty in types:
            tpath = os.path.join(tmp, f"{name}-{ty}.gguf")
            ref.write_gguf(sd, cfg, tpath, ty)
            qcfg, qsd = ref.load_gguf(tpath)
            got = run_c(tpath, tokens, T, cfg.vocab)
            d_own = diff(got, ref.forward(qcfg, qsd, tokens).numpy())
            d_f32 = diff(got, want)
            check(d_own <= F32_TOL, f"{name} {ty} file vs reference on its dequantised weights: {d_own:.3g}")
            check(d_f32 <= TYPE_TOL[ty], f"{name} {ty} file vs the f32 model: {d_f32:.3g} <= {TYPE_TOL[ty]}")
        if name == "gqa":
            for prec, tol in PREC_TOL.items():
                d = diff(run_c(path, tokens, T, cfg.vocab, precision=prec), want)
                check(d <= tol, f"{name} --precision {prec} vs f32 reference: {d:.3g} <= {tol}")
    # a truncated file is refused with a message
    with open(os.path.join(tmp, "gqa.gguf"), "rb") as f:
        data = f.read()
    bad = os.path.join(tmp, "truncated.gguf")
    with open(bad, "wb") as f:
        f.write(data[: len(data) // 2])
    r = subprocess.run([DRIVER, "logits", bad, "--tokens", "1,2", "--out", os.path.join(tmp, "x.bin")],
                       capture_output=True, text=True)
    check(r.returncode == 1 and "truncated.gguf" in r.stderr, f"truncated file refused: {r.stderr.strip()}")
    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))
    os.rmdir(tmp)
    if FAILS:
        print(f"{len(FAILS)} check(s) failed")
        sys.exit(1)
    print("all llama parity checks passed")


if __name__ == "__main__":
    main()
