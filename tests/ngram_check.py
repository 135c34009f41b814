#!/usr/bin/env python3
"""Checks the counts of recipes/owsm_ctc_tiny/local/ngram.py: a record's "count", and "fragment"
records (word fragments without sentence boundaries, debtext.py --essay).

    ngram_check.py TOP_SRCDIR TOK_DIR

TOK_DIR: a tokenizer folder of the recipe (bpe.model, tokens.txt), for the end-to-end part.
"""
import json
import math
import os
import subprocess
import sys
import tempfile


def main():
    top, tok = sys.argv[1], sys.argv[2]
    sys.path[:0] = [os.path.join(top, "recipes", "owsm_ctc_tiny", "local"), os.path.join(top, "tests", "ref")]
    import ngram as N
    import ctc_beam as CB

    s1 = ["<s>", "<x>", "c", "a", "b", "</s>"]
    s2 = ["<s>", "<x>", "b", "a", "</s>"]
    vocab = ["a", "b", "c", "<x>"]
    starts = {"<s>", "<x>"}
    # a count of k is the same as k copies
    for order in (2, 3):
        m_k = N.build([(s1, 3, False), (s2, 1, False)], order, [], vocab, starts)
        m_c = N.build([(s1, 1, False)] * 3 + [(s2, 1, False)], order, [], vocab, starts)
        if m_k != m_c:
            print(f"FAIL: order {order}: a sentence with count 3 differs from three copies of it")
            return 1
    print("ok: a record's count is the same as that many copies")

    # order 2, fragment "a b" twice: at the top order its bigram adds its raw count, nothing else
    # changes. Interpolated Kneser-Ney by hand: bigram counts a b: 1 + 2, a </s>: 1 (tot(a) = 4,
    # two types); discount D2 = n1 / (n1 + 2 n2) over all bigram counts; lower order: the
    # unigram continuation counts (distinct words before), which the fragment does not change.
    frag = (["a", "b"], 2, True)
    base = N.build([(s1, 1, False), (s2, 1, False)], 2, [], vocab, starts)
    with_f = N.build([(s1, 1, False), (s2, 1, False), frag], 2, [], vocab, starts)
    if {g: v[0] for g, v in base.items() if len(g) == 1} != {g: v[0] for g, v in with_f.items() if len(g) == 1}:
        print("FAIL: a fragment changed the unigram distribution of an order-2 model")
        return 1
    big = {("<s>", "<x>"): 2, ("<x>", "c"): 1, ("c", "a"): 1, ("a", "b"): 3, ("b", "</s>"): 1,
           ("<x>", "b"): 1, ("b", "a"): 1, ("a", "</s>"): 1}
    n1 = sum(v == 1 for v in big.values())
    n2 = sum(v == 2 for v in big.values())
    d2 = n1 / (n1 + 2 * n2)
    p_b = 10 ** with_f[("b",)][0]
    want = (3 - d2) / 4 + d2 * 2 / 4 * p_b
    got = 10 ** with_f[("a", "b")][0]
    if abs(got - want) > 1e-5:
        print(f"FAIL: P(b | a) with the fragment is {got:.6f}, by hand {want:.6f}")
        return 1
    print(f"ok: order 2: a fragment's bigram adds its raw count (P(b | a) = {got:.5f} as by hand)")

    # order 3: the fragment's first bigram has no word before it: its raw count (2) adds to the
    # continuation count (1: "c" before "a b"); P(b | a) goes up, every distribution still sums
    # to one, and no n-gram with <s> or </s> comes from the fragment
    m3 = N.build([(s1, 1, False), (s2, 1, False)], 3, [], vocab, starts)
    f3 = N.build([(s1, 1, False), (s2, 1, False), (["a", "b", "c"], 2, True)], 3, [], vocab, starts)
    bos = lambda m: {g for g in m if "<s>" in g or "</s>" in g}  # noqa: E731
    if bos(m3) != bos(f3) or ("b", "c") not in f3 or ("a", "b", "c") not in f3:
        print("FAIL: order 3: the fragment's n-grams are not all there, or it added sentence boundaries")
        return 1
    if not 10 ** f3[("a", "b")][0] > 10 ** m3[("a", "b")][0]:
        print("FAIL: order 3: the fragment did not make b likelier after a")
        return 1
    words = vocab + ["</s>"]
    for m in (m3, f3):
        for h in [("a",), ("b",), ("c", "a"), ("a", "b"), ("<x>", "b")]:
            tot = 0.0
            for w in words:
                acc, k = 0.0, len(h)
                while True:
                    e = m.get(h[len(h) - k:] + (w,))
                    if e is not None:
                        tot += 10 ** (acc + e[0])
                        break
                    b = m.get(h[len(h) - k:])
                    acc += b[1] if b else 0.0
                    k -= 1
            if abs(tot - 1) > 1e-6:
                print(f"FAIL: order 3: the distribution after {h} sums to {tot}")
                return 1
    print("ok: order 3: a fragment's first bigram counts as having no word before it; "
          "distributions sum to one")

    # end to end on the recipe's tokenizer: a Chinese fragment is cut as inside a sentence (no
    # word-start mark), and makes its second character likelier after its first
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(tok, "bpe.model"))
    tokens = [ln.rstrip("\n") for ln in open(os.path.join(tok, "tokens.txt"), encoding="utf-8")]
    zh = [t for t in tokens if len(t) == 1 and "\u4e00" <= t <= "\u9fff"]
    if len(zh) < 2:
        print("ok: end-to-end part skipped: the tokenizer has fewer than two Chinese pieces")
        return 0
    x, y = zh[0], zh[1]
    ids = N.fragment_ids(sp, x + y)
    if ids is None or "".join(sp.IdToPiece(i) for i in ids) != x + y:
        print(f"FAIL: fragment {x + y} cut into {ids and [sp.IdToPiece(i) for i in ids]}")
        return 1
    tmp = tempfile.mkdtemp(prefix="cochlea_ngram")
    try:
        sents = os.path.join(tmp, "s.jsonl")
        frags = os.path.join(tmp, "f.jsonl")
        with open(sents, "w", encoding="utf-8") as f:
            for t in ("The cat sat.", "A dog ran.", y + x + "。"):
                f.write(json.dumps({"lang": "eng" if t[0].isascii() else "zho", "text": t}, ensure_ascii=False) + "\n")
        with open(frags, "w", encoding="utf-8") as f:
            f.write(json.dumps({"lang": "zho", "text": x + y, "fragment": True, "count": 5}, ensure_ascii=False) + "\n")
        script = os.path.join(top, "recipes", "owsm_ctc_tiny", "local", "ngram.py")
        lp = {}
        for name, files in (("plain", [sents]), ("frag", [sents, frags])):
            out = os.path.join(tmp, name + ".arpa")
            r = subprocess.run([sys.executable, script, "--tok", tok, "--out", out, "--order", "3", *files],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(f"FAIL: ngram.py exited {r.returncode}: {r.stderr.strip()[-300:]}")
                return 1
            lm = CB.NgramLM(out, tokens)
            lp[name] = lm.lnp([tokens.index(x)], tokens.index(y))
        if not lp["frag"] > lp["plain"] + math.log(2):
            print(f"FAIL: with the fragment {x + y}, ln P({y} | {x}) {lp['frag']:.3f} (without: {lp['plain']:.3f})")
            return 1
        bad = os.path.join(tmp, "bad.jsonl")
        with open(bad, "w", encoding="utf-8") as f:
            f.write(json.dumps({"lang": "zho", "text": x + y, "fragment": True, "count": 0}) + "\n")
        r = subprocess.run([sys.executable, script, "--tok", tok, "--out", os.path.join(tmp, "b.arpa"), bad],
                           capture_output=True, text=True)
        if r.returncode == 0 or "count must be an integer >= 1" not in r.stderr:
            print(f"FAIL: count 0 accepted (exit {r.returncode}): {r.stderr.strip()[-300:]}")
            return 1
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"ok: end to end: fragment {x + y} (count 5) raises ln P({y} | {x}) from {lp['plain']:.2f} "
          f"to {lp['frag']:.2f}; a count of 0 is refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
