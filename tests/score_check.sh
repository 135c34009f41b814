#!/bin/sh
# score_check.sh - the owsm_ctc_tiny recipe's scoring (recipes/owsm_ctc_tiny/local/score.py and
# the tables of evaluate.py) against hand-computed values and against NIST sclite:
#  1. normalisation, CER/WER and corpus BLEU on cases worked out by hand (identical corpus = 100,
#     disjoint = 0, n-gram precisions, brevity penalty, 13a / character tokenisation, corpus
#     pooling), score.py's CLI and evaluate.py's per-language summary on a hand-made hypothesis set;
#  2. CER and WER of 400 random reference/hypothesis pairs (14 languages, edited at random) against
#     sclite: for every pair the reference length must be sclite's (C + S + D); with sclite's weights
#     (substitution 4, insertion and deletion 3) score.py's alignment must cost exactly what sclite's
#     costs (where several alignments tie, sclite's split into S/D/I may differ: counted, not
#     failed); the Levenshtein distance the recipe reports must equal an independent DP and never
#     exceed sclite's S + D + I (sclite minimises its weighted cost, not the number of edits).
# Part 2 needs sclite (Debian: sctk); without it the test is skipped (77) after part 1.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${PYTHON:=/usr/bin/python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "FAIL: $PYTHON is not Python >= 3.10"
    exit 1
fi

# $SCLITE names the program; otherwise sclite on PATH, or where Debian's sctk puts it
if [ -n "${SCLITE:-}" ]; then
    [ -x "$SCLITE" ] || SCLITE=
elif command -v sclite >/dev/null 2>&1; then
    SCLITE=$(command -v sclite)
elif [ -x /usr/lib/sctk/bin/sclite ]; then
    SCLITE=/usr/lib/sctk/bin/sclite
else
    SCLITE=
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/score_check.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM

LOCAL="$top_srcdir/recipes/owsm_ctc_tiny/local" SENTENCES="$top_srcdir/recipes/owsm_ctc_tiny/sentences.tsv" \
WORK="$work" SCLITE="$SCLITE" "$PYTHON" - <<'EOF'
import json
import math
import os
import random
import re
import subprocess
import sys

sys.path.insert(0, os.environ["LOCAL"])
import score  # noqa: E402
import evaluate  # noqa: E402

work = os.environ["WORK"]
fails = 0


def check(cond, what):
    global fails
    if not cond:
        fails += 1
        print(f"FAIL: {what}")


def close(x, want, what, tol=1e-9):
    check(x is not None and abs(x - want) <= tol, f"{what}: got {x!r}, want {want!r}")


# ---- 1. hand-computed cases ----------------------------------------------------------------
N = score.normalize
check(N("Ｈｅｌｌｏ,  WORLD!") == "hello world", "NFKC + lower + punctuation")
check(N("L'été — c'est «super»!") == "lété cest super", "French punctuation removed")
check(N("مات كلب سامي.") == "مات كلب سامي", "Arabic: the full stop goes, letters stay")
check(N("わたしは、がくせいです。") == "わたしはがくせいです", "Japanese punctuation")
check(N("ｶﾀｶﾅ ①  x²\t$5 + 3€") == "カタカナ 1 x2 5 3", "NFKC forms, symbols (S*) removed")
check(N("  İstanbul\u00a0ÇOK güzel ") == "i̇stanbul çok güzel", "Turkish, no-break space")
check(score.cer_units("a b, c") == ["a", "b", "c"], "CER units drop spaces")
check(score.wer_units("Hello, World") == ["hello", "world"], "WER units")
check(score.align_counts("kitten", "sitting") == (2, 0, 1), "kitten/sitting: 2 S + 1 I")
check(score.align_counts("", "ab") == (0, 0, 2) and score.align_counts("ab", "") == (0, 2, 0), "empty sides")
check(score.align_counts("abcde", "defgh") == (5, 0, 0), "unit costs: 5 substitutions")
check(score.align_counts("abcde", "defgh", 4, 3, 3) == (0, 3, 3), "sclite costs: 3 D + 3 I")
w = score.corpus_wer(["The cat sat."], ["the bat sat on"])
check((w.sub, w.dele, w.ins, w.ref) == (1, 0, 1, 3), "WER counts of 'the cat sat' / 'the bat sat on'")
close(w.rate(), 200 / 3, "WER %")
c = score.corpus_cer(["The cat sat."], ["the bat sat on"])
check((c.errors, c.ref) == (3, 9), f"CER counts {c.errors}/{c.ref}, want 3/9")
w = score.corpus_wer(["a b c d", "e"], ["a b c d", "f"])
close(w.rate(), 20.0, "corpus WER pools counts (1 error / 5 words), not the mean of 0% and 100%")
check(score.corpus_cer([""], [""]).rate() is None, "CER of an empty reference is undefined")
check(not score.has_wer("zho") and not score.has_wer("jpn") and score.has_wer("kor"), "WER languages")

B = score.corpus_bleu
T = score.tokenize_13a
check(T("It's 3.14, isn't it?") == ["It's", "3.14", ",", "isn't", "it", "?"], "13a: apostrophes, decimals")
tok = T('5-6 a-b (x) "q" a/b')
check(tok == ["5", "-", "6", "a-b", "(", "x", ")", '"', "q", '"', "a", "/", "b"], f"13a: dashes, brackets, quotes: {tok}")
check(T("&quot;A&amp;B&quot; &lt;x&gt;") == ['"', "A", "&", "B", '"', "<", "x", ">"], "13a: SGML entities")
check(T("U.S.A. 1,000.5 x,y") == ["U", ".", "S", ".", "A", ".", "1,000.5", "x", ",", "y"], "13a: . and , rules")
check(score.tokenize_char("我 爱你。") == ["我", "爱", "你", "。"], "char tokenisation")
check(score.bleu_tokenizer("zho") == "char" and score.bleu_tokenizer("jpn") == "char"
      and score.bleu_tokenizer("deu") == "13a", "tokeniser per target")
refs = ["The cat sat on the mat.", "Ich trinke gern Kaffee am Morgen.", "It's 3.14, isn't it?"]
close(B(refs, refs).score(), 100.0, "identical corpus")
close(B(["我爱你。", "わたしはがくせいです。"], ["我爱你。", "わたしはがくせいです。"], "char").score(), 100.0,
      "identical corpus, char")
close(B(["a b c d e", "f g"], ["h i j k l", "m n o"]).score(), 0.0, "disjoint corpus")
close(B(["a b c d e"], [""]).score(), 0.0, "empty hypothesis")
# p1 = 5/6, p2 = 3/5, p3 = 1/4, p4 = 0/3 -> 'exp' smoothing 1/(2*3); BP 1: (1/48)^(1/4)
close(B(["the cat is on the mat"], ["the cat sat on the mat"]).score(), 100 * (1 / 48) ** 0.25, "worked example")
bd = B(["the cat is on the mat"], ["the cat sat on the mat"]).as_dict()
check(bd["correct"] == [5, 3, 1, 0] and bd["total"] == [6, 5, 4, 3], f"n-gram counts {bd['correct']} {bd['total']}")
# every precision 1, 5 tokens for 6: BP = exp(1 - 6/5)
close(B(["the cat sat on the mat"], ["the cat sat on the"]).score(), 100 * math.exp(-0.2), "brevity penalty")
# pooled statistics: p_n = 4/8, 3/6, 2/4, 1/2 -> 50 (the mean of sentence BLEUs would differ)
close(B(["a b c d", "w x y z"], ["a b c d", "e f g h"]).score(), 50.0, "corpus pooling")
# 13a: [Hello , world !] vs [Hello world !]: 3/4, 1/3, 0/2 -> 1/4, 0/1 -> 1/4: (1/64)^(1/4)
close(B(["Hello world!"], ["Hello, world!"]).score(), 100 / 64 ** 0.25, "13a worked example")
close(B(["我爱你。"], ["我爱他。"], "char").score(), 100 / 64 ** 0.25, "char worked example")
close(B(["我爱你。"], ["我爱他。"], "13a").score(), 0.0, "13a sees one token per Chinese sentence")
# case-sensitive: [the cat .] vs [The cat .]: 2/3, 1/2, 0/1 -> 1/2, no 4-grams -> 0
close(B(["The cat."], ["the cat."]).score(), 0.0, "an order without n-grams gives 0 (sacreBLEU)")

# score.py's CLI and evaluate.py's summary on a hand-made hypothesis set
rows = [
    {"id": "e1", "lang": "eng", "task": "asr", "ref": "The cat sat.", "hyp": "the bat sat on"},
    {"id": "e2", "lang": "eng", "task": "asr", "ref": "Good morning!", "hyp": "good morning"},
    {"id": "z1", "lang": "zho", "task": "asr", "ref": "我爱你。", "hyp": "我爱他"},
    {"id": "e1", "lang": "eng", "task": "lid", "pred": "eng", "emitted": None, "hyp": "x"},
    {"id": "e2", "lang": "eng", "task": "lid", "pred": "deu", "emitted": "deu", "hyp": "<deu><asr>x"},
    {"id": "z1", "lang": "zho", "task": "lid", "pred": None, "emitted": "zho", "hyp": "<zho><asr>x"},
    {"id": "z1", "lang": "zho", "task": "st", "target": "eng", "ref": "the cat sat on the mat", "hyp": "the cat is on the mat"},
    {"id": "e1", "lang": "eng", "task": "st", "target": "zho", "ref": "我爱他。", "hyp": "我爱你。"},
]
hyp = os.path.join(work, "hyp.jsonl")
with open(hyp, "w", encoding="utf-8") as f:
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
p = subprocess.run([sys.executable, os.path.join(os.environ["LOCAL"], "score.py"), hyp, "--json"],
                   capture_output=True, text=True)
check(p.returncode == 0, f"score.py --json: exit {p.returncode}: {p.stderr}")
if p.returncode == 0:
    res = json.loads(p.stdout)
    # eng: words 2+0 errors / 3+2 words; chars 3+0 / 9+11; zho: 1 sub + 0 / 3 chars (。 removed)
    close(res["asr"]["eng"]["wer"]["rate"], 40.0, "CLI eng WER")
    close(res["asr"]["eng"]["cer"]["rate"], 15.0, "CLI eng CER")
    close(res["asr"]["zho"]["cer"]["rate"], 100 / 3, "CLI zho CER")
    check(res["asr"]["zho"]["wer"] is None, "CLI zho WER n/a")
    close(res["st"]["zho-eng"]["score"], 100 * (1 / 48) ** 0.25, "CLI BLEU zho-eng")
    close(res["st"]["eng-zho"]["score"], 100 / 64 ** 0.25, "CLI BLEU eng-zho (char)")
    close(res["lid"]["eng"]["accuracy"], 50.0, "CLI LID eng")
    close(res["lid"]["zho"]["accuracy"], 0.0, "CLI LID zho")
hyps = {"asr": [r for r in rows if r["task"] == "asr"], "lid": [r for r in rows if r["task"] == "lid"],
        "x2eng": [r for r in rows if r["task"] == "st" and r["target"] == "eng"],
        "eng2x": [r for r in rows if r["task"] == "st" and r["lang"] == "eng"]}
by_lang = {"eng": [{"id": "e1"}, {"id": "e2"}], "zho": [{"id": "z1"}]}
s = evaluate.summarise(["eng", "zho"], by_lang, hyps)
close(s["all"]["cer"]["rate"], 100 * 4 / 23, "evaluate: CER pooled over languages")
close(s["all"]["wer"]["rate"], 40.0, "evaluate: WER pooled over languages with WER only")
close(s["all"]["lid"]["accuracy"], 100 / 3, "evaluate: LID over all")
close(s["all"]["lid_emitted"]["accuracy"], 100 / 3, "evaluate: LID emitted over all")
close(s["languages"]["eng"]["lid_emitted"]["accuracy"], 0.0, "evaluate: LID emitted eng")
close(s["languages"]["zho"]["lid_emitted"]["accuracy"], 100.0, "evaluate: LID emitted zho")
close(s["languages"]["zho"]["bleu_x2eng"]["score"], 100 * (1 / 48) ** 0.25, "evaluate: BLEU zho->eng")
close(s["languages"]["zho"]["bleu_eng2x"]["score"], 100 / 64 ** 0.25, "evaluate: BLEU eng->zho")
check(s["languages"]["eng"]["bleu_x2eng"] is None and s["languages"]["zho"]["wer"] is None, "evaluate: n/a cells")
check(evaluate.first_language("x<asr><kam> y<eng>", {"eng", "kam"}) == "kam"
      and evaluate.first_language("<asr>x", {"eng"}) is None, "evaluate: first language token")
print(f"hand-computed cases: {'ok' if not fails else f'{fails} failed'}")
if fails:
    sys.exit(1)

# ---- 2. against sclite ---------------------------------------------------------------------
sclite = os.environ["SCLITE"]
if not sclite:
    print("SKIP: sclite (Debian package sctk) is not installed; the comparison with it did not run")
    sys.exit(77)

rng = random.Random(20261126)
texts = []
with open(os.environ["SENTENCES"], encoding="utf-8") as f:
    for line in f:
        if line.startswith("#") or line.startswith("id\t") or not line.strip():
            continue
        cols = line.rstrip("\n").split("\t")
        texts += [c for c in cols[2:] if c.strip()]
extra = ["Der schnelle braune Fuchs springt über den faulen Hund.", "Où est la gare ? Je ne sais pas.",
         "Я не знаю, где он живёт.", "Bugün hava çok güzel, değil mi?", "私は毎朝コーヒーを飲みます。",
         "我们明天去北京。", "저는 학생입니다. 만나서 반갑습니다.", "Czy możesz mi pomóc?", "هل تتكلم العربية؟",
         "Ik woon in een klein huis.", "O gato dorme no sofá.", "Il treno è in ritardo di dieci minuti."]
texts += extra


def mutate(text, rate):
    """Random edits at the character or word level, with the alphabet of the text itself."""
    if rng.random() < 0.5:
        units, sep = text.split(), " "
    else:
        units, sep = list(text), ""
    pool = units or ["x"]
    out = []
    for u in units:
        x = rng.random()
        if x < rate / 3:
            continue  # deletion
        if x < 2 * rate / 3:
            out.append(rng.choice(pool))  # substitution (or a match by chance)
        else:
            out.append(u)
        if rng.random() < rate / 3:
            out.append(rng.choice(pool))  # insertion
    h = sep.join(out)
    if rng.random() < 0.3:
        h = h.upper() if rng.random() < 0.5 else h.replace(",", "").replace(".", " .")
    return h


pairs = []
for k in range(400):
    kind = k % 8
    if kind == 7:  # short random strings over a tiny alphabet: many tied alignments
        ref = "".join(rng.choice("ab c") for _ in range(rng.randrange(0, 14)))
        hyp = "".join(rng.choice("ab c") for _ in range(rng.randrange(0, 14)))
    elif kind == 6:  # unrelated sentences
        ref, hyp = rng.choice(texts), rng.choice(texts)
    else:
        ref = rng.choice(texts)
        hyp = mutate(ref, rng.choice([0.0, 0.05, 0.15, 0.3, 0.6]))
    pairs.append((ref, hyp))


def lev(a, b):
    """Levenshtein distance (independent of score.py)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def run_sclite(name, seqs):
    """sclite's per-utterance (C, S, D, I) of units sequences [(ref, hyp)], and its Sum/Avg line."""
    ref, hyp = os.path.join(work, name + ".ref.trn"), os.path.join(work, name + ".hyp.trn")
    with open(ref, "w", encoding="utf-8") as fr, open(hyp, "w", encoding="utf-8") as fh:
        for k, (r, h) in enumerate(seqs):
            fr.write(" ".join(r) + f" (u{k:04d})\n")
            fh.write(" ".join(h) + f" (u{k:04d})\n")
    p = subprocess.run([sclite, "-r", ref, "trn", "-h", hyp, "trn", "-i", "rm", "-e", "utf-8", "-s",
                        "-O", work, "-n", name, "-o", "sum", "pralign"], capture_output=True, text=True)
    if p.returncode != 0:
        print(f"FAIL: sclite exit {p.returncode}: {p.stderr[-2000:]}")
        sys.exit(1)
    counts = {}
    with open(os.path.join(work, name + ".pra"), encoding="utf-8") as f:
        uid = None
        for line in f:
            m = re.match(r"id: \(u(\d+)\)", line)
            if m:
                uid = int(m.group(1))
            m = re.match(r"Scores: \(#C #S #D #I\) (\d+) (\d+) (\d+) (\d+)", line)
            if m:
                counts[uid] = tuple(int(x) for x in m.groups())
    with open(os.path.join(work, name + ".sys"), encoding="utf-8") as f:
        total = [line for line in f if "Sum/Avg" in line]
    return counts, total[0] if total else "?"


for name, units in (("cer", score.cer_units), ("wer", score.wer_units)):
    seqs = [(units(r), units(h)) for r, h in pairs]
    counts, total = run_sclite(name, seqs)
    check(len(counts) == len(seqs), f"{name}: sclite scored {len(counts)} of {len(seqs)} pairs")
    lib, sc, n_ref, n_more, more, bad, same = score.ErrorRate(), [0, 0, 0, 0], 0, 0, 0, 0, 0
    for k, (r, h) in enumerate(seqs):
        if k not in counts:
            continue
        C, S, D, I = counts[k]
        sc = [a + b for a, b in zip(sc, (C, S, D, I))]
        n_ref += len(r)
        mine_w = score.align_counts(r, h, sub=4, ins=3, dele=3)
        e = lib.add(r, h)
        ok = (C + S + D == len(r) and 4 * mine_w[0] + 3 * (mine_w[1] + mine_w[2]) == 4 * S + 3 * (D + I)
              and e == lev(r, h) and e <= S + D + I)
        same += mine_w == (S, D, I)
        if not ok:
            bad += 1
            if bad <= 5:
                print(f"FAIL: {name} pair {k}: sclite C/S/D/I {counts[k]}, score.py with sclite weights "
                      f"{mine_w}, Levenshtein {e} (independent {lev(r, h)}), {len(r)} reference units\n"
                      f"  ref {pairs[k][0]!r}\n  hyp {pairs[k][1]!r}")
        n_more += e < S + D + I
        more += S + D + I - e
    check(bad == 0, f"{name}: {bad} pairs disagree")
    sc_rate = 100.0 * (sc[1] + sc[2] + sc[3]) / n_ref
    print(f"{name.upper()} over {len(seqs)} pairs, {n_ref} reference units: score.py {lib.rate():.2f}% "
          f"(Levenshtein, S/D/I {lib.sub}/{lib.dele}/{lib.ins}); sclite {sc_rate:.2f}% (S/D/I "
          f"{sc[1]}/{sc[2]}/{sc[3]}: its weighted alignment has {more} edits more than the minimum, on "
          f"{n_more} pairs); same weighted cost on every pair, same S/D/I split on {same}; "
          f"sclite's Sum/Avg line: {' '.join(total.split())}")
    check(lib.ref == n_ref, f"{name}: reference units {lib.ref} != sclite's {n_ref}")
if fails:
    sys.exit(1)
print("PASS")
EOF
