#!/usr/bin/env python3
"""Scoring for the owsm_ctc_tiny recipe: text normalisation, CER, WER, corpus BLEU (library + CLI).

    score.py HYP.jsonl [HYP.jsonl ...] [--json]
        score hypothesis files as evaluate.py writes them (or made by hand): one JSON object a
        line with "id", "lang", "task", "ref" and "hyp"; task "asr" -> CER/WER per language,
        "st" (with "target") -> corpus BLEU per language pair, "lid" (with "pred") -> accuracy.
    score.py --ref REF.txt --hyp HYP.txt --lang LANG [--bleu] [--json]
        line-aligned plain text files (one utterance a line) in language LANG.
    score.py --normalize
        print the scoring normalisation of each line of standard input.

Definitions (the numbers this recipe reports):
- normalise(text): Unicode NFKC, lower case, characters of the Unicode categories P* and S*
  (punctuation, symbols) removed, whitespace runs collapsed to one space, ends stripped.
- CER: character edit distance (Levenshtein: substitutions, deletions, insertions, each 1) of
  the normalised texts with spaces removed, divided by the reference characters. Corpus CER sums
  the edits and the reference characters over all utterances (not a mean of per-utterance rates).
  (sclite minimises a weighted cost instead, substitution 4, insertion and deletion 3, so its
  counts are sometimes a little higher; tests/score_check.sh compares the two.)
- WER: the same on whitespace tokens of the normalised text; only for languages written with
  spaces (zho and jpn have none: WER is n/a for them).
- BLEU: corpus BLEU as sacreBLEU 2.x computes it by default: 4-gram, one reference, brevity
  penalty, 'exp' smoothing, case-sensitive, on the raw (unnormalised) texts, tokenised with
  sacreBLEU's '13a' tokeniser, or character by character for zho/jpn targets ('char'); 0 when no
  n-gram of any order matches.
"""
import argparse
import json
import math
import re
import sys
import unicodedata
from collections import Counter

# languages written without spaces between words: no WER, character-level BLEU tokenisation
SPACELESS = frozenset({"zho", "jpn"})


def normalize(text):
    """NFKC, lower case, drop P*/S* characters, collapse whitespace."""
    s = unicodedata.normalize("NFKC", text).lower()
    s = "".join(ch for ch in s if unicodedata.category(ch)[0] not in "PS")
    return " ".join(s.split())


def has_wer(lang):
    """Whether WER is reported for a language (it is written with spaces between words)."""
    return lang not in SPACELESS


def cer_units(text):
    """The units CER counts: the characters of the normalised text, spaces removed."""
    return list(normalize(text).replace(" ", ""))


def wer_units(text):
    """The units WER counts: the whitespace tokens of the normalised text."""
    return normalize(text).split()


def align_counts(ref, hyp, sub=1, ins=1, dele=1):
    """(substitutions, deletions, insertions) of an alignment of two sequences with the least
    total cost (sub * S + dele * D + ins * I) and, among those, the fewest edits. With the
    default unit costs S + D + I is the Levenshtein distance; sub=4, ins=dele=3 are sclite's
    weights (its alignment, used by tests/score_check.sh)."""
    n, m = len(ref), len(hyp)
    # one integer per cell: cost * big + edits, so min() orders by cost, then by edits
    big = n + m + 1
    cs, ci, cd = sub * big + 1, ins * big + 1, dele * big + 1
    d = [[j * ci for j in range(m + 1)]]
    for i in range(1, n + 1):
        prev = d[i - 1]
        row = [i * cd] + [0] * m
        r = ref[i - 1]
        for j in range(1, m + 1):
            best = prev[j - 1] + (0 if r == hyp[j - 1] else cs)
            x = prev[j] + cd
            if x < best:
                best = x
            x = row[j - 1] + ci
            if x < best:
                best = x
            row[j] = best
        d.append(row)
    s = dl = ins_n = 0
    i, j = n, m
    while i > 0 or j > 0:  # backtrace, preferring a match or substitution
        if i > 0 and j > 0 and d[i][j] == d[i - 1][j - 1] + (0 if ref[i - 1] == hyp[j - 1] else cs):
            s += ref[i - 1] != hyp[j - 1]
            i -= 1
            j -= 1
        elif i > 0 and d[i][j] == d[i - 1][j] + cd:
            dl += 1
            i -= 1
        else:
            ins_n += 1
            j -= 1
    return s, dl, ins_n


def edit_distance(ref, hyp):
    """Levenshtein distance of two sequences (unit costs)."""
    return sum(align_counts(ref, hyp))


class ErrorRate:
    """Corpus error rate: edits and reference units summed over utterances."""

    def __init__(self):
        self.sub = self.dele = self.ins = self.ref = self.utts = 0

    def add(self, ref_units, hyp_units):
        s, d, i = align_counts(ref_units, hyp_units)
        self.sub += s
        self.dele += d
        self.ins += i
        self.ref += len(ref_units)
        self.utts += 1
        return s + d + i

    def merge(self, other):
        for k in ("sub", "dele", "ins", "ref", "utts"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        return self

    @property
    def errors(self):
        return self.sub + self.dele + self.ins

    def rate(self):
        """Percent; None when there is no reference unit (undefined)."""
        return 100.0 * self.errors / self.ref if self.ref else None

    def as_dict(self):
        return {"rate": self.rate(), "errors": self.errors, "sub": self.sub, "del": self.dele,
                "ins": self.ins, "ref_units": self.ref, "utterances": self.utts}


def corpus_cer(refs, hyps):
    er = ErrorRate()
    for r, h in zip(refs, hyps, strict=True):
        er.add(cer_units(r), cer_units(h))
    return er


def corpus_wer(refs, hyps):
    er = ErrorRate()
    for r, h in zip(refs, hyps, strict=True):
        er.add(wer_units(r), wer_units(h))
    return er


# ---- BLEU ---------------------------------------------------------------------------------

# sacreBLEU's 13a (mteval-v13a) rules, applied in this order
_RE_13A = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),  # punctuation except ' - . ,
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # . and , unless preceded by a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # . and , unless followed by a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # - after a digit
]


def tokenize_13a(line):
    """sacreBLEU's default '13a' tokenisation, as a list of tokens."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = (line.replace("&quot;", '"').replace("&amp;", "&")
                .replace("&lt;", "<").replace("&gt;", ">"))
    line = f" {line} "
    for rx, repl in _RE_13A:
        line = rx.sub(repl, line)
    return line.split()


def tokenize_char(line):
    """sacreBLEU's 'char' tokenisation: every non-space character is a token."""
    return [ch for ch in line if not ch.isspace()]


TOKENIZERS = {"13a": tokenize_13a, "char": tokenize_char}


def bleu_tokenizer(target_lang):
    """The tokenisation used for BLEU into a target language."""
    return "char" if target_lang in SPACELESS else "13a"


def _ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


class Bleu:
    """Corpus BLEU sufficient statistics (sacreBLEU's definition, one reference per segment)."""

    ORDER = 4

    def __init__(self, tokenize="13a"):
        self.tokenize = tokenize
        self._tok = TOKENIZERS[tokenize]
        self.correct = [0] * self.ORDER
        self.total = [0] * self.ORDER
        self.sys_len = self.ref_len = self.segments = 0

    def add(self, ref, hyp):
        # sacreBLEU strips trailing whitespace of each segment before tokenising
        r = self._tok(ref.rstrip())
        h = self._tok(hyp.rstrip())
        self.sys_len += len(h)
        self.ref_len += len(r)
        for n in range(1, self.ORDER + 1):
            hc = _ngrams(h, n)
            rc = _ngrams(r, n)
            self.correct[n - 1] += sum(min(c, rc[g]) for g, c in hc.items())
            self.total[n - 1] += max(0, len(h) - n + 1)
        self.segments += 1

    def precisions(self):
        """Smoothed n-gram precisions in percent ('exp': the k-th order without a match gets
        100 / (2^k * total)), as sacreBLEU reports them; orders after one with no n-gram: 0."""
        p = [0.0] * self.ORDER
        if not any(self.correct):
            return p
        smooth = 1.0
        for n in range(self.ORDER):
            if self.total[n] == 0:
                break
            if self.correct[n] == 0:
                smooth *= 2
                p[n] = 100.0 / (smooth * self.total[n])
            else:
                p[n] = 100.0 * self.correct[n] / self.total[n]
        return p

    def brevity_penalty(self):
        if self.sys_len >= self.ref_len:
            return 1.0
        return math.exp(1.0 - self.ref_len / self.sys_len) if self.sys_len > 0 else 0.0

    def score(self):
        """BLEU in percent (0..100); None for an empty corpus."""
        if self.segments == 0:
            return None
        if not any(self.correct):
            return 0.0
        p = self.precisions()
        if any(x == 0.0 for x in p):  # an order with no n-gram at all (very short output)
            return 0.0
        return self.brevity_penalty() * math.exp(sum(math.log(x / 100.0) for x in p) / self.ORDER) * 100.0

    def signature(self):
        return f"nrefs:1|case:mixed|eff:no|tok:{self.tokenize}|smooth:exp"

    def as_dict(self):
        return {"score": self.score(), "precisions": self.precisions(), "bp": self.brevity_penalty(),
                "sys_len": self.sys_len, "ref_len": self.ref_len, "correct": list(self.correct),
                "total": list(self.total), "segments": self.segments, "signature": self.signature()}


def corpus_bleu(refs, hyps, tokenize="13a"):
    b = Bleu(tokenize)
    for r, h in zip(refs, hyps, strict=True):
        b.add(r, h)
    return b


# ---- hypothesis files ---------------------------------------------------------------------

def read_jsonl(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{no}: not JSON: {e}") from e
    return rows


def score_rows(rows):
    """Scores of hypothesis rows (dicts with task, lang, ref, hyp, and target / pred):
    {"asr": {lang: {"cer", "wer"}}, "st": {"SRC-TGT": bleu}, "lid": {lang: {correct, total}}}."""
    out = {"asr": {}, "st": {}, "lid": {}}
    asr, st, lid = {}, {}, {}
    for r in rows:
        task, lang = r.get("task"), r.get("lang")
        if task == "asr":
            c, w = asr.setdefault(lang, (ErrorRate(), ErrorRate()))
            c.add(cer_units(r["ref"]), cer_units(r["hyp"]))
            w.add(wer_units(r["ref"]), wer_units(r["hyp"]))
        elif task == "st":
            tgt = r["target"]
            b = st.setdefault(f"{lang}-{tgt}", Bleu(bleu_tokenizer(tgt)))
            b.add(r["ref"], r["hyp"])
        elif task == "lid":
            c = lid.setdefault(lang, [0, 0])
            c[0] += r.get("pred") == lang
            c[1] += 1
        else:
            raise ValueError(f"{r.get('id')}: unknown task {task!r}")
    for lang, (c, w) in asr.items():
        out["asr"][lang] = {"cer": c.as_dict(), "wer": w.as_dict() if has_wer(lang) else None}
    for k, b in st.items():
        out["st"][k] = b.as_dict()
    for lang, (ok, n) in lid.items():
        out["lid"][lang] = {"correct": ok, "total": n, "accuracy": 100.0 * ok / n}
    return out


def fmt(x, digits=1):
    return "n/a" if x is None else f"{x:.{digits}f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description="CER / WER / BLEU / LID accuracy for owsm_ctc_tiny")
    ap.add_argument("files", nargs="*", help="hypothesis .jsonl files (evaluate.py's hyp_*.jsonl)")
    ap.add_argument("--ref", help="line-aligned reference text file")
    ap.add_argument("--hyp", help="line-aligned hypothesis text file")
    ap.add_argument("--lang", help="language of --ref/--hyp (3-letter code)")
    ap.add_argument("--bleu", action="store_true", help="--ref/--hyp: also corpus BLEU (--lang is the target)")
    ap.add_argument("--normalize", action="store_true", help="print normalised stdin lines")
    ap.add_argument("--json", action="store_true", help="print the scores as JSON")
    a = ap.parse_args(argv)

    if a.normalize:
        for line in sys.stdin:
            print(normalize(line))
        return 0
    if a.ref or a.hyp:
        if not (a.ref and a.hyp and a.lang):
            ap.error("--ref, --hyp and --lang go together")
        with open(a.ref, encoding="utf-8") as f:
            refs = f.read().splitlines()
        with open(a.hyp, encoding="utf-8") as f:
            hyps = f.read().splitlines()
        if len(refs) != len(hyps):
            ap.error(f"{a.ref} has {len(refs)} lines, {a.hyp} has {len(hyps)}")
        res = {"lang": a.lang, "utterances": len(refs), "cer": corpus_cer(refs, hyps).as_dict(),
               "wer": corpus_wer(refs, hyps).as_dict() if has_wer(a.lang) else None}
        if a.bleu:
            res["bleu"] = corpus_bleu(refs, hyps, bleu_tokenizer(a.lang)).as_dict()
        if a.json:
            print(json.dumps(res, ensure_ascii=False, indent=1))
        else:
            print(f"{a.lang}: {len(refs)} utterances  CER {fmt(res['cer']['rate'], 2)}%  "
                  + (f"WER {fmt(res['wer']['rate'], 2)}%" if res["wer"] else "WER n/a")
                  + (f"  BLEU {fmt(res['bleu']['score'], 2)}" if a.bleu else ""))
        return 0
    if not a.files:
        ap.error("give hypothesis .jsonl files, or --ref/--hyp/--lang, or --normalize")
    rows = []
    for p in a.files:
        rows.extend(read_jsonl(p))
    res = score_rows(rows)
    if a.json:
        print(json.dumps(res, ensure_ascii=False, indent=1))
        return 0
    for lang, s in sorted(res["asr"].items()):
        print(f"asr {lang}: {s['cer']['utterances']} utterances  CER {fmt(s['cer']['rate'], 2)}% "
              f"({s['cer']['errors']}/{s['cer']['ref_units']})  "
              + (f"WER {fmt(s['wer']['rate'], 2)}% ({s['wer']['errors']}/{s['wer']['ref_units']})"
                 if s["wer"] else "WER n/a"))
    for k, b in sorted(res["st"].items()):
        print(f"st {k}: {b['segments']} segments  BLEU {fmt(b['score'], 2)}  ({b['signature']})")
    for lang, s in sorted(res["lid"].items()):
        print(f"lid {lang}: {s['correct']}/{s['total']} = {s['accuracy']:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
