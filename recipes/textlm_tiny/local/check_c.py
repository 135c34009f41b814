#!/usr/bin/env python3
"""check_c.py - the exported GGUF in the C runtime (src/lm), against tests/ref/llama.py reading
the same file (float64) and against python3-sentencepiece.

  1. `cochlea generate -m MODEL -p TEXT -n N --temp 0 --stats-json`: the prompt ids the C
     tokenizer (lm_vocab) made must equal sentencepiece's encode(TEXT) with BOS, and the greedy
     continuation must equal the reference's greedy decoding (stopping at EOS as C does); a
     difference is only tolerated at a near-tie (reference top-1/top-2 logit gap < 1e-3).
  2. with --vocab-driver (tests/test_lm_vocab --encode): each sentence's ids equal
     sentencepiece's and lm_vocab_decode gives the sentence back byte for byte.
  3. with --lm-driver (tests/test_lm logits): prefill logits of the prompt within 1e-3 of the
     reference.
Exit 1 on any failure.

    check_c.py MODEL.gguf SPM_MODEL --cochlea PATH [--vocab-driver PATH] [--lm-driver PATH] [-n 12]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import sentencepiece as spm
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import ref  # noqa: E402

SENTENCES = [
    "In the beginning God created the heaven and the earth.",
    "And the LORD said unto Moses, Go in unto Pharaoh: \"Let my people go.\"",
    "Vanity of vanities; all is vanity — 12 times, isn't it?",
    "Café naïve résumé 42 ☃ ok",
]

FAILS = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def ref_greedy(cfg, sd, prompt, n, eos):
    toks, out, gaps = list(prompt), [], []
    for _ in range(n):
        logits = ref.forward(cfg, sd, toks)[-1]
        top = torch.topk(logits, 2)
        t = int(top.indices[0])
        out.append(t)
        gaps.append(float(top.values[0] - top.values[1]))
        toks.append(t)
        if t == eos:
            break
    return out, gaps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("spm")
    ap.add_argument("--cochlea", required=True)
    ap.add_argument("--vocab-driver")
    ap.add_argument("--lm-driver")
    ap.add_argument("-n", type=int, default=12)
    ap.add_argument("--prompt", default="And God said")
    a = ap.parse_args()
    sp = spm.SentencePieceProcessor(model_file=a.spm)
    cfg, sd = ref.load_gguf(a.model)
    with tempfile.TemporaryDirectory() as tmp:
        js = os.path.join(tmp, "gen.json")
        r = subprocess.run([a.cochlea, "generate", "-m", a.model, "-p", a.prompt, "-n", str(a.n), "--temp", "0",
                            "-t", "1", "--no-stream", "--stats-json", js], capture_output=True, text=True)
        check(r.returncode == 0, "cochlea generate runs on %s%s" % (os.path.basename(a.model),
                                                                    "" if r.returncode == 0 else ": " + r.stderr.strip()))
        if r.returncode == 0:
            st = json.load(open(js))
            want_prompt = [sp.bos_id()] + sp.encode(a.prompt)
            check(st["prompt"] == want_prompt, "prompt ids %s == sentencepiece %s" % (st["prompt"], want_prompt))
            ref_out, gaps = ref_greedy(cfg, sd, want_prompt, a.n, sp.eos_id())
            got = st["tokens"]
            same = got == ref_out
            if not same:  # tolerated only at a near-tie at the first difference
                k = next((i for i in range(min(len(got), len(ref_out))) if got[i] != ref_out[i]), None)
                same = k is not None and gaps[k] < 1e-3
            check(same, "greedy continuation %s == reference %s" % (got, ref_out))
            text = r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout
            check(text == sp.decode(got), "generated text %r == sentencepiece decode of the ids" % text)
        if a.vocab_driver:
            p = subprocess.run([a.vocab_driver, "--encode", a.model], input="".join(s + "\n" for s in SENTENCES),
                               capture_output=True, text=True)
            check(p.returncode == 0, "test_lm_vocab --encode runs" + ("" if p.returncode == 0 else ": " + p.stderr))
            rows = p.stdout.split("\n")[:-1] if p.returncode == 0 else []
            for s, row in zip(SENTENCES, rows):
                ids, hexd = row.split("\t")
                ids = [int(x) for x in ids.split()]
                check(ids == sp.encode(s), "lm_vocab ids == sentencepiece for %r" % s)
                check(bytes.fromhex(hexd).decode("utf-8", "replace") == s, "lm_vocab round trip of %r" % s)
            check(len(rows) == len(SENTENCES), "one result per sentence")
        if a.lm_driver:
            toks = [sp.bos_id()] + sp.encode(SENTENCES[0])
            toks = toks[:cfg.ctx]
            out = os.path.join(tmp, "logits.bin")
            p = subprocess.run([a.lm_driver, "logits", a.model, "--tokens", ",".join(map(str, toks)), "--out", out],
                               capture_output=True, text=True)
            check(p.returncode == 0, "test_lm logits runs" + ("" if p.returncode == 0 else ": " + p.stderr))
            if p.returncode == 0:
                c = np.fromfile(out, dtype="<f4").reshape(len(toks), cfg.vocab)
                d = float(np.abs(c - ref.forward(cfg, sd, toks).numpy()).max())
                check(d <= 1e-3, "C prefill logits vs reference: max |diff| %.2e <= 1e-3" % d)
    if FAILS:
        print("check_c.py: %d failures" % len(FAILS))
        sys.exit(1)


if __name__ == "__main__":
    main()
