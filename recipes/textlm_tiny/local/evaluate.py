#!/usr/bin/env python3
"""evaluate.py - stage 5 of recipes/textlm_tiny: held-out perplexity of the exported models.

The test split (local/text.py: Ruth, Ecclesiastes, Jonah, Philippians, James, 1 John, KJV and
WEB) is scored document by document ([BOS] chapter [EOS], every token after BOS predicted,
EOS included). A chapter longer than the context is scored with sliding windows of ctx tokens,
stride ctx/2: each token is scored once, with at least ctx/2 tokens of context after the first
window. Reported: perplexity per token exp(NLL / tokens), per character exp(NLL / characters),
bits per byte NLL / (bytes ln 2) (characters and bytes of the chapter text, without BOS/EOS).
The PyTorch numbers run local/model.py on the weights read back from the GGUF (so they include
the f16 rounding); with --lm-driver (tests/test_lm logits) the same windows run in the C runtime.

    evaluate.py --work WORK --out OUT [--lm-driver PATH] [--max-docs N] [--threads T]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402
from model import ref  # noqa: E402


def documents(stream, bos):
    starts = np.flatnonzero(stream == bos).tolist() + [stream.size]
    return [stream[a:b].astype(np.int64) for a, b in zip(starts[:-1], starts[1:])]


def windows(L, ctx):
    """(begin, end, first scored target index) covering targets 1..L-1 once each."""
    out, done, begin = [], 0, 0
    stride = max(1, ctx // 2)
    while True:
        end = min(begin + ctx, L)
        out.append((begin, end, max(begin + 1, done + 1)))
        done = end - 1
        if end == L:
            return out
        begin += stride


def nll_windows(doc, ctx, logits_fn):
    tot, n = 0.0, 0
    for b, e, first in windows(len(doc), ctx):
        logits = torch.as_tensor(logits_fn(doc[b:e].tolist()), dtype=torch.float64)  # [e-b, V]
        lp = torch.log_softmax(logits, dim=-1)
        tgt = torch.as_tensor(doc[first:e])
        rows = torch.arange(first - 1 - b, e - 1 - b)
        tot -= float(lp[rows, tgt].sum())
        n += e - first
    return tot, n


def torch_logits_fn(model):
    def f(toks):
        with torch.no_grad():
            return model(torch.as_tensor([toks]))[0].double()
    return f


def c_logits_fn(driver, path, vocab, threads, tmp):
    out = os.path.join(tmp, "logits.bin")

    def f(toks):
        subprocess.run([driver, "logits", path, "--tokens", ",".join(map(str, toks)), "--threads", str(threads),
                        "--out", out], check=True, capture_output=True)
        return np.fromfile(out, dtype="<f4").reshape(len(toks), vocab)
    return f


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--lm-driver")
    ap.add_argument("--max-docs", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    tok = os.path.join(a.work, "tok")
    tstats = json.load(open(os.path.join(tok, "stats.json")))
    xstats = json.load(open(os.path.join(a.work, "text", "stats.json")))
    docs = documents(np.load(os.path.join(tok, "test.npy")), tstats["bos"])
    text_docs = [d for d in open(os.path.join(a.work, "text", "test.txt"), encoding="utf-8").read().split("\n") if d]
    if len(docs) != len(text_docs):
        sys.exit("evaluate.py: %d token documents, %d text documents" % (len(docs), len(text_docs)))
    if a.max_docs:
        docs, text_docs = docs[:a.max_docs], text_docs[:a.max_docs]
    n_bytes = sum(len(d.encode("utf-8")) for d in text_docs)
    n_chars = sum(len(d) for d in text_docs)
    results = []
    for name, exp in (("textlm-tiny", "target"), ("textlm-tiny-draft", "draft")):
        path = os.path.join(a.work, "export", name + ".gguf")
        cfg, sd = ref.load_gguf(path)
        model = M.Llama(cfg)
        model.load_state_dict({k: v.float() for k, v in sd.items()})
        model.eval()
        done = json.load(open(os.path.join(a.work, "exp", exp, "done.json")))
        r = {"model": name, "params": M.n_params(model), "bytes": os.path.getsize(path),
             "config": "d %d, %d layers, %d/%d heads, ff %d, ctx %d, vocab %d%s" %
                       (cfg.d, cfg.layers, cfg.heads, cfg.kv_heads, cfg.ff, cfg.ctx, cfg.vocab,
                        ", tied" if cfg.tied else ""),
             "steps": done["step"], "minutes": done["minutes"], "tokens_seen": done["tokens_seen"]}
        nll = n = 0
        f = torch_logits_fn(model)
        for d in docs:
            t, k = nll_windows(d, cfg.ctx, f)
            nll, n = nll + t, n + k
        r.update(tokens=n, ppl_token=math.exp(nll / n), ppl_char=math.exp(nll / n_chars),
                 bits_per_byte=nll / (n_bytes * math.log(2)))
        if a.lm_driver:
            with tempfile.TemporaryDirectory() as tmp:
                cn = ck = 0
                f = c_logits_fn(a.lm_driver, path, cfg.vocab, a.threads, tmp)
                for d in docs:
                    t, k = nll_windows(d, cfg.ctx, f)
                    cn, ck = cn + t, ck + k
            r["c_ppl_token"] = math.exp(cn / ck)
            if abs(r["c_ppl_token"] / r["ppl_token"] - 1) > 1e-3:
                sys.exit("evaluate.py: %s: C perplexity %.4f differs from PyTorch %.4f" %
                         (name, r["c_ppl_token"], r["ppl_token"]))
        print("evaluate.py: %s: %d tokens, perplexity %.3f per token, %.4f per character, %.4f bits/byte%s" %
              (name, n, r["ppl_token"], r["ppl_char"], r["bits_per_byte"],
               ", C %.3f per token" % r["c_ppl_token"] if "c_ppl_token" in r else ""), file=sys.stderr)
        results.append(r)
    json.dump({"results": results, "test_docs": len(docs), "test_bytes": n_bytes, "test_chars": n_chars,
               "train_tokens": tstats["train"]["tokens"], "text": xstats}, open(os.path.join(a.out, "results.json"), "w"),
              indent=1)
    with open(os.path.join(a.out, "RESULTS.md"), "w") as f:
        f.write("# textlm_tiny results\n\n")
        f.write("Data: %s (Debian bible-kjv-text, sword-text-web), one chapter per document; training split "
                "%d documents, %d tokens (SentencePiece BPE, %d pieces, byte fallback). Held-out split: %s "
                "(both translations): %d chapters, %d tokens, %d characters, %d bytes%s.\n\n" %
                (" + ".join(s.upper() for s in xstats["sources"]), tstats["train"]["documents"],
                 tstats["train"]["tokens"], tstats["vocab"], ", ".join(xstats["test_books"]), len(docs),
                 results[0]["tokens"], n_chars, n_bytes, " (first %d chapters only)" % a.max_docs if a.max_docs else ""))
        c = any("c_ppl_token" in r for r in results)
        f.write("| model | config | params | GGUF bytes | train tokens seen | steps | minutes | ppl/token | "
                "ppl/char | bits/byte |%s\n" % (" C ppl/token |" if c else ""))
        f.write("|---|---|---|---|---|---|---|---|---|---|%s\n" % ("---|" if c else ""))
        for r in results:
            f.write("| %s | %s | %d | %d | %d | %d | %.1f | %.3f | %.4f | %.4f |%s\n" %
                    (r["model"], r["config"], r["params"], r["bytes"], r["tokens_seen"], r["steps"], r["minutes"],
                     r["ppl_token"], r["ppl_char"], r["bits_per_byte"],
                     " %.3f |" % r["c_ppl_token"] if "c_ppl_token" in r else (" n/a |" if c else "")))
        f.write("\nPerplexity: sliding windows of the model context, stride ctx/2, every token after BOS "
                "scored once (EOS included); per character and bits/byte divide the same NLL by the text's "
                "characters / bytes. PyTorch on the GGUF's weights%s.\n" %
                ("; C: tests/test_lm logits on the same windows" if c else ""))


if __name__ == "__main__":
    main()
