#!/usr/bin/env python3
"""Embed a token n-gram language model (ARPA) into an OWSM-CTC .gguf, for beam search.

    python3 tools/embed_lm.py MODEL.gguf LM.arpa OUT.gguf [--lm-weight W] [--insertion-bonus B]
                              [--beam-size N] [--flat]
    python3 tools/embed_lm.py MODEL.gguf --remove OUT.gguf

The ARPA file's words are the model's pieces (tokenizer.ggml.tokens), "<s>" (the model's <sos>),
"</s>" (<eos>) and "<unk>"; n-grams with other words are left out (and counted). `cochlea
transcribe` then decodes with CTC prefix beam search and this LM by default (README "Beam search
and language model"). Storage (asr/owsm_model.c read_lm): keys owsm_ctc.lm.order, lm.weight,
lm.insertion_bonus, lm.beam_size; per order N tensors lm.N.logp and, below the top order,
lm.N.bow (log10, F16), and the tokens as a trie: lm.N.ids (ne = {1, count}) holds each n-gram's
last token and lm.N.fanout (below the top order) how many (N+1)-grams extend each N-gram; the
n-grams of each order are sorted by their tokens, so the (N+1)-grams come grouped by the N-gram
they extend (I16 holding unsigned values when the vocabulary, and every fanout, is at most 65536,
else I32). An n-gram whose prefix the ARPA file lacks gets that prefix added with the
probability back-off gives it and back-off weight 0, which changes no score. --flat writes the
older layout instead: lm.N.ids with ne = {N, count}, every n-gram's N tokens (about a third
larger; both are read). F16 keeps about 3 significant digits of the log10 values (the ARPA's own
precision is what `--lm FILE.arpa` uses).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf import GGUFError, GGUFReader, GGUFWriter  # noqa: E402

A = "owsm_ctc."
MAX_ORDER = 6


class EmbedError(Exception):
    pass


def add_prefixes(d, order, unk):
    """Make every n-gram's prefix an n-gram of d ({order: {ids tuple: (log10 p, log10 bow)}}): a
    missing prefix is added with the log10 probability that back-off gives it (asr/ngram.h) and
    back-off weight 0, so that no score changes. Returns how many were added."""
    orig = {n: dict(d[n]) for n in d}
    unk_p = orig[1][(unk,)][0] if (unk,) in orig[1] else -99.0

    def backoff(g):
        acc = 0.0
        for k in range(len(g) - 1, -1, -1):
            h = g[len(g) - 1 - k:-1]
            e = orig[k + 1].get(h + g[-1:])
            if e:
                return acc + e[0]
            if k == 0:
                return acc + unk_p
            acc += orig[k].get(h, (0.0, 0.0))[1]
        return acc

    added = 0
    for n in range(order, 1, -1):
        for g in list(d[n]):
            if g[:-1] not in d[n - 1]:
                d[n - 1][g[:-1]] = (backoff(g[:-1]), 0.0)
                added += 1
    return added


def read_arpa(path, tid):
    """{order: [(ids, log10 p, log10 bow)]} and the number of n-grams left out."""
    grams, declared, section, skipped, ended = {}, {}, 0, 0, False
    with open(path, encoding="utf-8") as f:
        in_data = False
        for no, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if line == "\\data\\":
                in_data = True
                continue
            if line == "\\end\\":
                ended = True
                break
            if in_data and line.startswith("ngram "):
                n, c = line[6:].split("=")
                declared[int(n)] = int(c)
                continue
            if line.startswith("\\") and line.endswith("-grams:"):
                in_data = False
                section = int(line[1:-7])
                if not 1 <= section <= MAX_ORDER:
                    raise EmbedError(f"{path}:{no}: {section}-grams (orders 1..{MAX_ORDER} are supported)")
                grams.setdefault(section, [])
                continue
            if section == 0:
                continue
            parts = line.split()
            if len(parts) not in (section + 1, section + 2):
                raise EmbedError(f"{path}:{no}: a {section}-gram line needs {section + 1} or {section + 2} fields")
            ids = [tid.get(w, -1) for w in parts[1:1 + section]]
            if min(ids) < 0:
                skipped += 1
                continue
            bow = float(parts[section + 1]) if len(parts) == section + 2 else 0.0
            grams[section].append((ids, float(parts[0]), bow))
    if not ended:
        raise EmbedError(f"{path}: truncated (no \\end\\ line)")
    if not grams.get(1):
        raise EmbedError(f"{path}: none of its unigrams is a token of the model")
    order = max(grams)
    for n in range(1, order + 1):
        if n not in grams:
            raise EmbedError(f"{path}: no \\{n}-grams: section")
    return grams, order, skipped


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("arpa", nargs="?")
    ap.add_argument("out")
    ap.add_argument("--lm-weight", dest="weight", type=float, default=0.5)
    ap.add_argument("--insertion-bonus", dest="bonus", type=float, default=1.0)
    ap.add_argument("--beam-size", dest="beam", type=int, default=8)
    ap.add_argument("--remove", action="store_true", help="write the model without any embedded LM")
    ap.add_argument("--flat", action="store_true", help="the older, larger layout: every n-gram's tokens in full")
    a = ap.parse_args(argv)
    try:
        if bool(a.arpa) == a.remove:
            raise EmbedError("give either LM.arpa or --remove")
        if not (0 <= a.weight <= 100 and abs(a.bonus) <= 100 and 1 <= a.beam <= 1024):
            raise EmbedError("--lm-weight must be in [0, 100], --insertion-bonus in [-100, 100], --beam-size 1..1024")
        r = GGUFReader(a.model)
        if r.kv.get("general.architecture") is None or r.kv["general.architecture"].value != "owsm_ctc":
            raise EmbedError(f"{a.model}: not an OWSM-CTC model")
        tokens = r.kv["tokenizer.ggml.tokens"].value
        tid = {t: i for i, t in enumerate(tokens)}
        for w, t in (("<s>", "<sos>"), ("</s>", "<eos>")):
            if t not in tid:
                raise EmbedError(f"{a.model}: no {t} token")
            tid[w] = tid[t]
        w = GGUFWriter()
        w.copy_kv(r, skip=lambda k: k.startswith(A + "lm."))
        for t in r.tensors:
            if not t.name.startswith("lm."):
                w.add_tensor_raw(t.name, t.type, t.ne, t.raw)
        if a.arpa:
            grams, order, skipped = read_arpa(a.arpa, tid)
            w.add_u32(A + "lm.order", order)
            w.add_f32(A + "lm.weight", a.weight)
            w.add_f32(A + "lm.insertion_bonus", a.bonus)
            w.add_u32(A + "lm.beam_size", a.beam)
            small = len(tokens) <= 65536

            def ints(name, v):
                v = np.asarray(v, dtype=np.int64)
                if small and (v.size == 0 or v.max() < 65536):
                    w.add_tensor(name, v.astype(np.uint16).view(np.int16), "i16")
                else:
                    w.add_tensor(name, v.astype(np.int32), "i32")

            d = {n: {tuple(g): (p, b) for g, p, b in grams[n]} for n in range(1, order + 1)}
            added = 0 if a.flat else add_prefixes(d, order, tid.get("<unk>", -1))
            keys = {n: sorted(d[n]) for n in d}
            for n in range(1, order + 1):
                k = keys[n]
                ids = np.array(k, dtype=np.int64).reshape(len(k), n)
                ints(f"lm.{n}.ids", ids if a.flat else ids[:, -1:])
                w.add_tensor(f"lm.{n}.logp", np.array([d[n][g][0] for g in k], dtype=np.float32), "f16")
                if n < order:
                    w.add_tensor(f"lm.{n}.bow", np.array([d[n][g][1] for g in k], dtype=np.float32), "f16")
                    if not a.flat:
                        pos = {g: i for i, g in enumerate(k)}
                        fan = np.zeros(len(k), dtype=np.int64)
                        for g in keys[n + 1]:
                            fan[pos[g[:-1]]] += 1
                        ints(f"lm.{n}.fanout", fan)
            counts = ", ".join(f"{len(grams[n])} {n}-grams" for n in range(1, order + 1))
            print(f"embed_lm: {counts} ({skipped} left out: words that are not pieces of the model"
                  + (f"; {added} missing prefixes added" if added else "") + ")", file=sys.stderr)
        w.write(a.out)
    except (EmbedError, GGUFError, OSError, ValueError, KeyError) as e:
        print(f"embed_lm: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
