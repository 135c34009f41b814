#!/usr/bin/env python3
"""text.py - stage 1 of recipes/textlm_tiny: public-domain English text from Debian packages,
normalised, one document (a Bible chapter) per line, split train / valid / test by book.

Sources (both public domain; the packages are installed by stage 0):
  kjv  King James Version, package bible-kjv-text, read with `bible` (package bible-kjv)
  web  World English Bible with Deuterocanon, package sword-text-web (module engWEB2015eb),
       read with `diatheke` (package diatheke); footnotes ("-o f") are removed

Split (by book, the same books for both translations, so no held-out chapter has a parallel
translation in the training text):
  test   Ruth, Ecclesiastes, Jonah, Philippians, James, 1 John   (held-out perplexity)
  valid  Obadiah, Philemon, Jude                                   (loss curve during training)
  train  every other book (and the WEB's deuterocanon and glossary)

Normalisation: Unicode NFC; curly quotes/apostrophes -> ASCII ' and "; dashes kept; verse numbers
and chapter headings removed; runs of whitespace -> one space. A document is one chapter: its
verses joined by single spaces on one line.

Outputs in OUT/: train.txt valid.txt test.txt (documents), spm_train.txt (training verses, one per
line, the tokenizer's input), stats.json.

    text.py OUT [--sources kjv,web] [--smoke]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import unicodedata

TEST_BOOKS = {"Ruth", "Ecclesiastes", "Jonah", "Philippians", "James", "1 John"}
VALID_BOOKS = {"Obadiah", "Philemon", "Jude"}

# KJV book names as `bible` prints them in chapter headings; aliases map other spellings
ALIASES = {"I John": "1 John", "1John": "1 John", "Song of Songs": "Song of Solomon", "Revelation of John": "Revelation",
           "Qohelet": "Ecclesiastes", "Psalm": "Psalms"}


def norm(s):
    s = unicodedata.normalize("NFC", s)
    s = s.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    s = s.replace("\u00b6", " ").replace("\u00a0", " ")
    return re.sub(r"\s+", " ", s).strip()


def book_name(b):
    b = b.strip()
    return ALIASES.get(b, b)


def read_kjv(smoke):
    """[(book, chapter, [verses])] from `bible -l0` (one verse per line: '  N text')."""
    spec = "gen1:1-gen3:24 ruth1:1-ruth1:22 jude1:1-jude1:25 exo1:1-exo3:22" if smoke else "gen1:1-rev22:21"
    out = subprocess.run(["bible", "-l0"] + spec.split(), check=True, capture_output=True, text=True).stdout
    docs, cur = [], None
    for line in out.split("\n"):
        m = re.match(r"^(\S.*?) (\d+)$", line)
        if m:
            cur = (book_name(m.group(1)), int(m.group(2)), [])
            docs.append(cur)
            continue
        m = re.match(r"^\s+(\d+) (.*)$", line)
        if m and cur is not None:
            cur[2].append(norm(m.group(2)))
        elif line.strip() and cur is not None and cur[2]:
            cur[2][-1] = norm(cur[2][-1] + " " + line)  # a wrapped verse (not with -l0, kept for safety)
    return docs


def read_web():
    """[(book, chapter, [verses])] from diatheke (plain text, footnotes shown then removed)."""
    out = subprocess.run(["diatheke", "-b", "engWEB2015eb", "-f", "plain", "-o", "f", "-k",
                          "Genesis 1:1-Revelation 22:21"], check=True, capture_output=True, text=True).stdout
    docs, key = [], None
    for line in out.split("\n"):
        m = re.match(r"^(.+?) (\d+):(\d+): ?(.*)$", line)
        if not m:
            if line.startswith("(engWEB2015eb)") or not line.strip() or not docs:
                continue
            docs[-1][2][-1] += " " + line  # continuation of a verse
            continue
        book, ch = book_name(m.group(1)), int(m.group(2))
        if key != (book, ch):
            key = (book, ch)
            docs.append((book, ch, []))
        docs[-1][2].append(m.group(4))
    res = []
    for book, ch, verses in docs:
        vs = []
        for v in verses:
            v = re.sub(r"\s*\[\d+:\d+[^\]]*\]", " ", v)  # footnotes "[1:1 ...]"
            v = norm(v)
            if v:
                vs.append(v)
        if vs:
            res.append((book, ch, vs))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--sources", default="kjv,web")
    ap.add_argument("--smoke", action="store_true", help="KJV only, a few chapters (CI)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    sources = ["kjv"] if a.smoke else a.sources.split(",")
    split = {"train": [], "valid": [], "test": []}
    stats = {"sources": sources, "test_books": sorted(TEST_BOOKS), "valid_books": sorted(VALID_BOOKS)}
    verses_train = []
    books_seen = set()
    for src in sources:
        docs = read_kjv(a.smoke) if src == "kjv" else read_web() if src == "web" else sys.exit("unknown source " + src)
        if not docs:
            sys.exit("text.py: no text from %s" % src)
        stats["%s_chapters" % src] = len(docs)
        for book, ch, verses in docs:
            books_seen.add(book)
            part = "test" if book in TEST_BOOKS else "valid" if book in VALID_BOOKS else "train"
            split[part].append(" ".join(verses))
            if part == "train":
                verses_train.extend(verses)
    missing = (TEST_BOOKS | VALID_BOOKS) - books_seen
    if missing and not a.smoke:
        sys.exit("text.py: held-out books not found: %s" % ", ".join(sorted(missing)))
    for part, docs in split.items():
        if not docs:
            sys.exit("text.py: the %s split is empty" % part)
        with open(os.path.join(a.out, part + ".txt"), "w", encoding="utf-8") as f:
            f.write("".join(d + "\n" for d in docs))
        stats[part] = {"documents": len(docs), "chars": sum(len(d) for d in docs),
                       "bytes": sum(len(d.encode("utf-8")) for d in docs), "words": sum(len(d.split()) for d in docs)}
    with open(os.path.join(a.out, "spm_train.txt"), "w", encoding="utf-8") as f:
        f.write("".join(v + "\n" for v in verses_train))
    with open(os.path.join(a.out, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    print("text.py: " + ", ".join("%s %d docs %d words" % (p, stats[p]["documents"], stats[p]["words"])
                                  for p in ("train", "valid", "test")), file=sys.stderr)


if __name__ == "__main__":
    main()
