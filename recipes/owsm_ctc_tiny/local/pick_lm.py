#!/usr/bin/env python3
"""Fresh sentences to speak for a continuation run: a seeded random choice, per language and
source, among the sentences of the LM's text (stage 1's text/lm.jsonl, never spoken) that no
earlier folder has spoken and that the tokenizer can write.

    pick_lm.py TEXT_DIR --want eng:wn:8000,fra:dlg:6000,... [--spoken FILE ...] [--seed 24]
               [--out extra_lm.jsonl]

TEXT_DIR is stage 1's text folder (lm.jsonl, train.jsonl, dev.jsonl, test.jsonl). --want lists
LANG:SOURCE:N, SOURCE being the prefix of the sentence ids that debtext.py gives each source:
deb (package catalogs), fort (fortunes), man (manual pages), help (help pages), wn (WordNet
glosses, English), ding (Ding dictionary examples, English and German), dlg (game dialogue).
Kept: whole sentences (no LM-only fragments), not in dev or test, not already spoken (the texts
of every --spoken file: the jsonl files of the extra folders the run also trains on; default
TEXT_DIR's extra.jsonl, extra_rest.jsonl and extra_help.jsonl where present), made only of
characters that train.jsonl has in that language (the pieces come from it, so other characters
could only be learnt as <unk>). A source with fewer such sentences than N gives all it has.
The output (TEXT_DIR/OUT) has train.jsonl's records; synth.py speaks it (RESULTS.md, run 24).
"""
import argparse
import collections
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from score import read_jsonl  # noqa: E402


def parse_want(s):
    want = {}
    for item in s.split(","):
        parts = item.strip().split(":")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise ValueError(f"--want: '{item}' is not LANG:SOURCE:N")
        try:
            n = int(parts[2])
        except ValueError:
            raise ValueError(f"--want: '{item}': N must be a whole number") from None
        if n < 0:
            raise ValueError(f"--want: '{item}': N must not be negative")
        if (parts[0], parts[1]) in want:
            raise ValueError(f"--want: {parts[0]}:{parts[1]} given twice")
        want[(parts[0], parts[1])] = n
    return want


def source_of(rec):
    """debtext.py's ids are SOURCE-LANGNNNNN (deb-fra00012, wn-eng00001)."""
    return rec["id"].split("-", 1)[0]


def pick(lm, train, excluded, want, seed):
    known = collections.defaultdict(set)
    for r in train:
        known[r["lang"]].update(r["text"])
    pool = collections.defaultdict(list)
    for r in lm:
        key = (r["lang"], source_of(r))
        if key not in want or r.get("fragment") or r["text"] in excluded:
            continue
        if set(r["text"]) <= known[r["lang"]]:
            pool[key].append(r)
    rng = random.Random(seed)
    out, counts = [], {}
    for key, n in want.items():
        p = pool[key]
        rng.shuffle(p)
        out += p[:n]
        counts[key] = (len(p), min(n, len(p)))
    return out, counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("text_dir")
    ap.add_argument("--want", required=True)
    ap.add_argument("--spoken", nargs="*", default=None)
    ap.add_argument("--seed", type=int, default=24)
    ap.add_argument("--out", default="extra_lm.jsonl")
    a = ap.parse_args()
    try:
        want = parse_want(a.want)
    except ValueError as e:
        sys.exit(f"pick_lm.py: {e}")
    if os.sep in a.out or a.out in ("lm.jsonl", "train.jsonl", "dev.jsonl", "test.jsonl"):
        sys.exit(f"pick_lm.py: --out {a.out}: give a new file name inside TEXT_DIR")
    need = ["lm.jsonl", "train.jsonl", "dev.jsonl", "test.jsonl"]
    for f in need:
        if not os.path.isfile(os.path.join(a.text_dir, f)):
            sys.exit(f"pick_lm.py: no {f} in {a.text_dir} (run stage 1 with EXTRA=1 LM=1)")
    spoken = a.spoken
    if spoken is None:
        spoken = [os.path.join(a.text_dir, f) for f in ("extra.jsonl", "extra_rest.jsonl", "extra_help.jsonl")
                  if os.path.isfile(os.path.join(a.text_dir, f))]
    for f in spoken:
        if not os.path.isfile(f):
            sys.exit(f"pick_lm.py: --spoken {f}: no such file")
    try:
        excluded = set()
        for f in spoken + [os.path.join(a.text_dir, "dev.jsonl"), os.path.join(a.text_dir, "test.jsonl")]:
            excluded.update(r["text"] for r in read_jsonl(f))
        lm = read_jsonl(os.path.join(a.text_dir, "lm.jsonl"))
        train = read_jsonl(os.path.join(a.text_dir, "train.jsonl"))
    except ValueError as e:
        sys.exit(f"pick_lm.py: {e}")
    have = {(r["lang"], source_of(r)) for r in lm}
    missing = [f"{k[0]}:{k[1]}" for k in want if k not in have]
    if missing:
        sys.exit(f"pick_lm.py: lm.jsonl has no sentence of {', '.join(missing)}")
    out, counts = pick(lm, train, excluded, want, a.seed)
    for (lang, src), (avail, took) in counts.items():
        print(f"pick_lm.py: {lang}:{src}: {avail} candidates, {took} taken", file=sys.stderr)
    path = os.path.join(a.text_dir, a.out)
    with open(path, "w", encoding="utf-8") as f:
        for r in out:
            f.write(json.dumps({"id": r["id"], "lang": r["lang"], "text": r["text"], "pair": r.get("pair", {})},
                               ensure_ascii=False) + "\n")
    print(f"pick_lm.py: {len(out)} sentences -> {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
