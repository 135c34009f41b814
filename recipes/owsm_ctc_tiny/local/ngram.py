#!/usr/bin/env python3
"""Token n-gram language model for `cochlea transcribe --beam-size` (stage 3b of run.sh).

    ngram.py --tok TOK_DIR --out LM.arpa [--order 4] [--prune 0,0,1,1] TEXT.jsonl...

Reads the sentences ("lang", "text") of the given JSON-lines files, skipping those in
--exclude files (the dev and test sentences) and repeats, cuts them into the model's
SentencePiece pieces (TOK_DIR/bpe.model; token id = SentencePiece id - 1 as in train.py) and
counts n-grams of "<s> <lang> piece ... </s>". Probabilities are interpolated Kneser-Ney with one
discount per order, D = n1 / (n1 + 2 n2) (n1, n2: the numbers of n-grams seen once and twice),
raw counts at the top order and for n-grams that start at the sentence start (<s> or the
language token), continuation counts (distinct words before) below. --prune K2,K3,... drops the
n-grams of order 2, 3... whose count is <= K (their probability mass goes to the back-off); a
kept n-gram keeps its prefix. Written as an ARPA file (log10) whose words are the pieces, with
back-off weights that make every context's distribution sum to one.

A record may carry "count" (an integer >= 1, default 1: the record counts that many times) and
"fragment": true: its text is a piece of a sentence (a word of a frequency list, stage 1's
--essay), counted without <s>, the language token and </s>. Its n-grams of orders 2 and up count
like a sentence's; those that start at its first piece have no left context, so below the top
order they add their raw count (like n-grams at a sentence start) to the continuation count.
"""
import argparse
import collections
import json
import math
import os
import sys

import sentencepiece as spm


def read_sentences(files, exclude):
    held = set()
    for f in exclude:
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                held.add(json.loads(line)["text"])
    seen = set()
    out = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for ln, line in enumerate(fh, 1):
                r = json.loads(line)
                frag = bool(r.get("fragment", False))
                key = (r["lang"], r["text"], frag)
                if r["text"] in held or key in seen:
                    continue
                count = r.get("count", 1)
                if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                    raise SystemExit(f"ngram.py: {f}:{ln}: count must be an integer >= 1, not {count!r}")
                seen.add(key)
                out.append(key + (count,))
    return out


def fragment_ids(sp, text):
    """SentencePiece ids of text as it is cut inside a sentence: without the word-start mark that
    SentencePiece puts before a text's first piece (a fragment of Chinese has none inside a
    sentence), unless the text starts with a space. None when a piece would cross the fragment's
    start."""
    if text.startswith(" "):
        return sp.EncodeAsIds(text)
    ids = sp.EncodeAsIds("a" + text)  # "a": a stand-in first word, cut away below
    acc = ""
    for k, i in enumerate(ids):
        acc += sp.IdToPiece(i)
        if acc == "\u2581a":
            return ids[k + 1:] or None
        if len(acc) >= 2:
            return None
    return None


def discount(counts):
    n1 = sum(1 for v in counts.values() if v == 1)
    n2 = sum(1 for v in counts.values() if v == 2)
    return n1 / (n1 + 2 * n2) if n1 + n2 > 0 and n1 > 0 else 0.5


def build(seqs, order, prune, vocab_words, starts):
    """seqs: (words, count, fragment) triples (words: a sentence with <s> ... </s>, or a fragment).
    Returns {ngram tuple: (log10 p, log10 bow)}."""
    raw = [None] + [collections.Counter() for _ in range(order)]
    head = [None] + [collections.Counter() for _ in range(order)]  # fragment-initial n-grams
    for s, k, frag in seqs:
        for n in range(1 if not frag else 2, order + 1):
            for i in range(len(s) - n + 1):
                raw[n][tuple(s[i:i + n])] += k
            if frag and n < order and len(s) >= n:
                head[n][tuple(s[:n])] += k
    # the counts each order's estimate uses
    cnt = [None] * (order + 1)
    cnt[order] = raw[order]
    for n in range(1, order):
        cc = collections.Counter()
        for g in raw[n + 1]:
            cc[g[1:]] += 1
        for g, v in raw[n].items():
            if g[0] in starts:
                cc[g] = v
        for g, v in head[n].items():
            cc[g] += v
        cnt[n] = cc
    cnt[1].pop(("<s>",), None)  # <s> is never predicted (log10 -99): no unigram mass for it
    disc = [None] + [discount(cnt[n]) for n in range(1, order + 1)]
    tot = [None] + [collections.Counter() for _ in range(order)]
    typ = [None] + [collections.Counter() for _ in range(order)]
    for n in range(1, order + 1):
        for g, v in cnt[n].items():
            tot[n][g[:-1]] += v
            typ[n][g[:-1]] += 1
    # pruning (a kept n-gram keeps its prefix)
    keep = [None] * (order + 1)
    for n in range(order, 0, -1):
        k = prune[n - 2] if n >= 2 and n - 2 < len(prune) else 0
        ks = {g for g, v in cnt[n].items() if v > k or g[0] == "<s>" and n <= 2}
        if n < order:
            ks |= {g[:-1] for g in keep[n + 1]}
        keep[n] = ks
    # every vocabulary word is a unigram
    words = set(vocab_words) | {"</s>"}
    model = {}

    def lnp_backoff(ctx, w):
        """log10 P(w | ctx) from the finished lower orders (ctx shorter than the current order)."""
        acc = 0.0
        for k in range(len(ctx), -1, -1):
            h = ctx[len(ctx) - k:]
            e = model.get(h + (w,))
            if e is not None:
                return acc + e[0]
            if k == 0:
                return acc - 99.0
            b = model.get(h)
            if b is not None:
                acc += b[1]
        return acc

    V = len(words)
    T1 = tot[1][()]
    D1 = disc[1]
    for w in sorted(words):
        c = cnt[1].get((w,), 0)
        p = (max(c - D1, 0) + D1 * typ[1][()] / V) / T1
        model[(w,)] = [math.log10(p), 0.0]
    model[("<s>",)] = [-99.0, 0.0]
    for n in range(2, order + 1):
        D = disc[n]
        for g in keep[n]:
            h, w = g[:-1], g[-1]
            t = tot[n][h]
            c = cnt[n][g]
            gamma = D * typ[n][h] / t
            lower = 10 ** lnp_backoff(h[1:], w)
            model[g] = [math.log10((max(c - D, 0)) / t + gamma * lower), 0.0]
        # back-off weights of the contexts (order n-1 entries)
        num = collections.defaultdict(float)
        den = collections.defaultdict(float)
        for g in keep[n]:
            h, w = g[:-1], g[-1]
            num[h] += 10 ** model[g][0]
            den[h] += 10 ** lnp_backoff(h[1:], w)
        for h in num:
            if h in model:
                a, b = max(1e-12, 1.0 - num[h]), max(1e-12, 1.0 - den[h])
                model[h][1] = math.log10(a / b)
    return model


def write_arpa(model, order, path):
    by = collections.defaultdict(list)
    for g in model:
        by[len(g)].append(g)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n\\data\\\n")
        for n in range(1, order + 1):
            f.write(f"ngram {n}={len(by[n])}\n")
        for n in range(1, order + 1):
            f.write(f"\n\\{n}-grams:\n")
            for g in sorted(by[n]):
                p, b = model[g]
                if n < order and b != 0.0:
                    f.write(f"{p:.6f}\t{' '.join(g)}\t{b:.6f}\n")
                else:
                    f.write(f"{p:.6f}\t{' '.join(g)}\n")
        f.write("\n\\end\\\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tok", required=True, help="tokenizer folder (bpe.model, tokens.txt)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--order", type=int, default=4)
    ap.add_argument("--prune", default="", help="count cut-offs for orders 2, 3, ... (e.g. 0,1,1)")
    ap.add_argument("--exclude", action="append", default=[], help="sentences never to use (dev, test)")
    ap.add_argument("text", nargs="+")
    a = ap.parse_args()
    if not 2 <= a.order <= 6:
        sys.exit("ngram.py: --order must be 2..6")
    prune = [int(x) for x in a.prune.split(",") if x.strip()]
    sp = spm.SentencePieceProcessor(model_file=os.path.join(a.tok, "bpe.model"))
    with open(os.path.join(a.tok, "tokens.txt"), encoding="utf-8") as fh:
        tokens = [ln.rstrip("\n") for ln in fh]
    special = {t for t in tokens if t.startswith("<") and t.endswith(">")}
    langs = sorted({t for t in tokens if t in special and len(t) == 5 and t[1:4].isalpha()
                    and t[1:4].islower()} - {"<asr>", "<unk>", "<sos>", "<eos>", "<sop>"})
    sents = read_sentences(a.text, a.exclude)
    seqs = []
    lost = 0
    for lang, text, frag, count in sents:
        if frag:
            ids = fragment_ids(sp, text)
            if not ids:
                lost += 1
                continue
            seqs.append(([tokens[1 if s == 0 else s - 1] for s in ids], count, True))
        else:
            ids = [1 if s == 0 else s - 1 for s in sp.EncodeAsIds(text)]
            pieces = [tokens[i] for i in ids]
            seqs.append((["<s>", f"<{lang}>"] + pieces + ["</s>"], count, False))
    vocab_words = [t for t in tokens if t not in special] + ["<unk>"] + \
        sorted({s[1] for s, _, frag in seqs if not frag})
    model = build(seqs, a.order, prune, vocab_words, {"<s>"} | set(langs))
    write_arpa(model, a.order, a.out)
    sizes = collections.Counter(len(g) for g in model)
    nfrag = sum(1 for _, _, frag in seqs if frag)
    if lost:
        print(f"ngram.py: {lost} fragments dropped (their first piece would join the text before them)",
              file=sys.stderr)
    print(f"ngram.py: {len(seqs) - nfrag} sentences, {nfrag} fragments, order {a.order}, "
          + ", ".join(f"{sizes[n]} {n}-grams" for n in sorted(sizes)) + f" -> {a.out}", flush=True)


if __name__ == "__main__":
    main()
