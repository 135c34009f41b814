#!/usr/bin/env python3
"""Fresh sentences to speak for a continuation run: a seeded random choice, per language and
source, among the sentences of the LM's text (stage 1's text/lm.jsonl, never spoken) that no
earlier folder has spoken and that the tokenizer can write.

    pick_lm.py TEXT_DIR [--want eng:wn:8000,fra:dlg:6000,...] [--again kor,zho,fra:dlg]
               [--again-max N] [--word-strings zho:4000] [--spoken FILE ...] [--seed 24] [--out extra_lm.jsonl]

TEXT_DIR is stage 1's text folder (lm.jsonl, train.jsonl, dev.jsonl, test.jsonl). --want lists
LANG:SOURCE:N, SOURCE being the prefix of the sentence ids that debtext.py gives each source:
deb (package catalogs), fort (fortunes), man (manual pages), help (help pages), wn (WordNet
glosses, English), ding (Ding dictionary examples, English and German), dlg (game dialogue).
Kept: whole sentences (no LM-only fragments), not in dev or test, not already spoken (the texts
of every --spoken file: the jsonl files of the extra folders the run also trains on; default
TEXT_DIR's extra.jsonl, extra_rest.jsonl and extra_help.jsonl where present), made only of
characters that train.jsonl has in that language (the pieces come from it, so other characters
could only be learnt as <unk>). A source with fewer such sentences than N gives all it has.
--again LANGS adds, once each, every sentence of those languages that has been spoken already
(train.jsonl and the --spoken files; not dev or test), for one more rendition: synth.py with a
seed of its own gives it other voices, rates, pitches and noise (RESULTS.md, run 26). An item
LANG:SOURCE takes only that source's spoken sentences of LANG (fra:dlg; fra:train for the
sentences of train.jsonl), so --again fra:train,fra:dlg,zho re-speaks French core and dialogue
sentences and every Chinese one. --again-max N keeps a seeded random N of them (Random(seed)
shuffles them in file order) when there are more.
--word-strings LANG:N adds N strings of 3 to 6 words, drawn at random (as often as their counts
say) from the LM-only word fragments of that language (debtext.py's Chinese word list), with the
same character rule: not sentences, but new sequences of syllables and tones to hear for a
language whose fresh sentences have run out (ids words-LANGNNNNN).
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


def known_chars(train):
    """{language: the characters train.jsonl writes it in} (the pieces come from them)."""
    known = collections.defaultdict(set)
    for r in train:
        known[r["lang"]].update(r["text"])
    return known


def pick(lm, train, excluded, want, seed):
    known = known_chars(train)
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


def parse_again(s):
    """--again's items: {language: None (every source) or the set of sources to take}."""
    want = {}
    for item in s.split(","):
        lang, colon, src = item.strip().partition(":")
        if not lang.isalpha() or (colon and not src):
            raise ValueError(f"--again {s}: give LANG or LANG:SOURCE items separated by commas (kor,zho,fra:dlg)")
        if not colon:
            want[lang] = None
        elif want.get(lang, set()) is not None:
            want.setdefault(lang, set()).add(src)
    return want


def again(want, sources, excluded):
    """The already spoken sentences that want ({language: None or sources}, parse_again) names,
    once each (the first record of each text), in file order; sources[0] is train.jsonl, whose
    records are the source "train"."""
    out, seen = [], set()
    for i, recs in enumerate(sources):
        for r in recs:
            key = (r["lang"], r["text"])
            if r["lang"] not in want or key in seen or r["text"] in excluded:
                continue
            srcs = want[r["lang"]]
            if srcs is not None and ("train" if i == 0 else source_of(r)) not in srcs:
                continue
            seen.add(key)
            out.append(r)
    return out


def word_strings(lm, train, held, lang, n, rng):
    """n strings of 3-6 words of lang's fragments (made only of training characters), drawn by
    count; none is a dev or test sentence."""
    known = known_chars(train)[lang]
    words = [r for r in lm if r["lang"] == lang and r.get("fragment") and set(r["text"]) <= known]
    if not words:
        return None
    weights = [max(1, int(r.get("count", 1))) for r in words]
    out = []
    while len(out) < n:
        k = rng.randint(3, 6)
        text = "".join(r["text"] for r in rng.choices(words, weights=weights, k=k))
        if text not in held:
            out.append({"id": f"words-{lang}{len(out):05d}", "lang": lang, "text": text, "pair": {}})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("text_dir")
    ap.add_argument("--want", default="")
    ap.add_argument("--again", default="")
    ap.add_argument("--again-max", dest="again_max", type=int, default=None)
    ap.add_argument("--word-strings", dest="word_strings", default="")
    ap.add_argument("--spoken", nargs="*", default=None)
    ap.add_argument("--seed", type=int, default=24)
    ap.add_argument("--out", default="extra_lm.jsonl")
    a = ap.parse_args()
    if not a.want and not a.again and not a.word_strings:
        sys.exit("pick_lm.py: give --want, --again or --word-strings")
    if a.again_max is not None and (not a.again or a.again_max < 1):
        sys.exit("pick_lm.py: --again-max N: give N >= 1, with --again")
    try:
        want = parse_want(a.want) if a.want else {}
    except ValueError as e:
        sys.exit(f"pick_lm.py: {e}")
    try:
        again_want = parse_again(a.again) if a.again else {}
    except ValueError as e:
        sys.exit(f"pick_lm.py: {e}")
    ws_lang, _, ws_n = a.word_strings.partition(":")
    if a.word_strings and not (ws_lang.isalpha() and ws_n.isdigit()):
        sys.exit(f"pick_lm.py: --word-strings {a.word_strings}: give LANG:N (zho:4000)")
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
        spoken_recs = [read_jsonl(f) for f in spoken]
        held = set()
        for f in ("dev.jsonl", "test.jsonl"):
            held.update(r["text"] for r in read_jsonl(os.path.join(a.text_dir, f)))
        excluded = held.union(*({r["text"] for r in recs} for recs in spoken_recs))
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
    if again_want:
        more = again(again_want, [train] + spoken_recs, held)
        for lang, srcs in again_want.items():
            n = sum(r["lang"] == lang for r in more)
            if n == 0:
                what = lang if srcs is None else f"{lang}:{'+'.join(sorted(srcs))}"
                sys.exit(f"pick_lm.py: --again: no spoken sentence of {what}")
            print(f"pick_lm.py: {lang}: {n} spoken sentences again", file=sys.stderr)
        if a.again_max is not None and len(more) > a.again_max:
            random.Random(a.seed).shuffle(more)
            more = more[:a.again_max]
            print(f"pick_lm.py: --again-max: {a.again_max} of them kept", file=sys.stderr)
        out += more
    if a.word_strings:
        ws = word_strings(lm, train, held, ws_lang, int(ws_n), random.Random(a.seed + 1))
        if ws is None:
            sys.exit(f"pick_lm.py: --word-strings: lm.jsonl has no word fragment of {ws_lang}")
        print(f"pick_lm.py: {ws_lang}: {len(ws)} word strings", file=sys.stderr)
        out += ws
    path = os.path.join(a.text_dir, a.out)
    with open(path, "w", encoding="utf-8") as f:
        for r in out:
            f.write(json.dumps({"id": r["id"], "lang": r["lang"], "text": r["text"], "pair": r.get("pair", {})},
                               ensure_ascii=False) + "\n")
    print(f"pick_lm.py: {len(out)} sentences -> {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
