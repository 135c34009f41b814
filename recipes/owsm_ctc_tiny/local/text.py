#!/usr/bin/env python3
"""Stage 1 of the owsm_ctc_tiny recipe: the text.

    text.py DATA_DIR SENTENCES.tsv OUT_DIR [--max-pairs N] [--seed S]

Reads DATA_DIR/eng-XXX.tsv (Tatoeba pairs, English TAB translation) and the recipe's own
sentences, normalises the text, splits the pairs into train/dev/test by sentence pair and writes
OUT_DIR/{train,dev,test}.jsonl, one utterance text per line:
    {"id", "lang", "text", "pair": {lang: text} of its translations}
and OUT_DIR/own.jsonl (our sentences, used for training and for samples/).

Normalisation: Unicode NFKC and whitespace collapsing everywhere; Japanese is written in
hiragana (kakasi -JH -KH), because espeak-ng reads every kanji as the same "Chinese letter";
Chinese is converted to simplified characters (opencc t2s), which espeak-ng's Mandarin voice reads
better. Tatoeba's "cmn" is tagged <zho>, the code OWSM uses for Chinese and its <st_zho> target.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import unicodedata

LANG_OF_FILE = {"ara": "ara", "cmn": "zho", "deu": "deu", "fra": "fra", "ita": "ita",
                "jpn": "jpn", "kor": "kor", "nld": "nld", "pol": "pol", "por": "por",
                "rus": "rus", "spa": "spa", "tur": "tur"}


def cap_per_language(recs, n, seed):
    """At most n records of each language, drawn at random (random.Random(seed), so that the same
    seed draws the same ones: a resumed training run, a rerun of stage 1b), in their original order."""
    by = {}
    for i, m in enumerate(recs):
        by.setdefault(m["lang"], []).append(i)
    rng = random.Random(seed)
    keep = set()
    for lang in sorted(by):
        keep.update(by[lang] if len(by[lang]) <= n else rng.sample(by[lang], n))
    return [m for i, m in enumerate(recs) if i in keep]


def run_filter(cmd, lines, timeout=120):
    """Pipe lines through an external converter, one output line per input line. A converter
    that fails or runs past timeout seconds (kakasi can loop forever on some input, not
    always the same run to run) is a SystemExit, which debtext.py's convert() answers by
    converting line by line."""
    try:
        r = subprocess.run(cmd, input=("\n".join(lines) + "\n").encode(), capture_output=True,
                           check=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"{cmd[0]}: no answer in {timeout} s for {len(lines)} lines")
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"{cmd[0]}: exit status {e.returncode}: {e.stderr.decode(errors='replace')[-200:]}")
    out = r.stdout.decode("utf-8", errors="replace").split("\n")
    if len(out) < len(lines):
        raise SystemExit(f"{cmd[0]}: returned {len(out)} lines for {len(lines)}")
    return out[:len(lines)]


def norm(s):
    s = unicodedata.normalize("NFKC", s)
    return " ".join(s.split())


def convert(lang, texts):
    texts = [norm(t) for t in texts]  # NFKC first: kakasi mangles half-width katakana
    if lang == "jpn":
        texts = run_filter(["kakasi", "-i", "utf8", "-o", "utf8", "-JH", "-KH"], texts)
    elif lang == "zho":
        texts = run_filter(["opencc", "-c", "t2s"], texts)
    return [norm(t) for t in texts]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("sentences")
    ap.add_argument("out")
    ap.add_argument("--max-pairs", type=int, default=0, help="per language (0: all); for smoke runs")
    ap.add_argument("--dev", type=int, default=40, help="dev pairs per language")
    ap.add_argument("--test", type=int, default=60, help="test pairs per language")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    split = {"train": [], "dev": [], "test": []}
    for fn in sorted(os.listdir(a.data)):
        if not (fn.startswith("eng-") and fn.endswith(".tsv")):
            continue
        code = fn[4:-4]
        lang = LANG_OF_FILE.get(code)
        if lang is None:
            print(f"text: skipping {fn} (language {code} not in the recipe)", file=sys.stderr)
            continue
        pairs = []
        with open(os.path.join(a.data, fn), encoding="utf-8") as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 2 and parts[0].strip() and parts[1].strip():
                    pairs.append((parts[0], parts[1]))
        rng.shuffle(pairs)
        if a.max_pairs:
            pairs = pairs[:a.max_pairs]
        eng = convert("eng", [p[0] for p in pairs])
        oth = convert(lang, [p[1] for p in pairs])
        nd = min(a.dev, len(pairs) // 5)
        nt = min(a.test, len(pairs) // 5)
        # a converter may mangle what it cannot map (kakasi: full-width digits): drop those
        keep = [i for i, x in enumerate(oth) if "\ufffd" not in x]
        eng, oth = [eng[i] for i in keep], [oth[i] for i in keep]
        for i, (e, x) in enumerate(zip(eng, oth)):
            s = "dev" if i < nd else "test" if i < nd + nt else "train"
            uid = f"{code}{i:04d}"
            split[s].append({"id": f"{uid}-{lang}", "lang": lang, "text": x, "pair": {"eng": e}})
            split[s].append({"id": f"{uid}-eng", "lang": "eng", "text": e, "pair": {lang: x}})
    own = []
    with open(a.sentences, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            uid, lang, text = parts[0], parts[1], parts[2]
            eng = parts[3] if len(parts) > 3 else ""
            rec = {"id": f"own-{uid}", "lang": lang, "text": convert(lang, [text])[0], "pair": {}}
            if eng.strip():
                rec["pair"]["eng"] = norm(eng)
            own.append(rec)
    # an English sentence that is also a test/dev sentence must not be trained on
    held = {r["text"] for s in ("dev", "test") for r in split[s] if r["lang"] == "eng"}
    n0 = len(split["train"])
    split["train"] = [r for r in split["train"] if not (r["lang"] == "eng" and r["text"] in held)]
    for s, recs in split.items():
        with open(os.path.join(a.out, f"{s}.jsonl"), "w", encoding="utf-8") as f:
            for r in recs:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    with open(os.path.join(a.out, "own.jsonl"), "w", encoding="utf-8") as f:
        for r in own:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"text: train {len(split['train'])} ({n0 - len(split['train'])} English held out), "
          f"dev {len(split['dev'])}, test {len(split['test'])}, own {len(own)}")


if __name__ == "__main__":
    main()
