#!/bin/sh
# End-to-end tests of the embedded default model (models/owsm-ctc-tiny.gguf) on the committed
# samples (samples/*.wav, written by recipes/owsm_ctc_tiny stage 7 from our own sentences, spoken
# by voice variants that were never used in training). `cochlea transcribe` runs without -m, so
# the default-model lookup is part of what is tested. Each sample is decoded with its language
# given and with --lang auto (language identification).
#
# The issue's goal is every sample exact, the language right and the translation right. The
# shipped model is not there yet (recipes/owsm_ctc_tiny/RESULTS.md), so until it is, the test
# holds the model to what it measurably does, and fails when the engine, the frontend, the lookup
# or the model file get worse:
#   - every run exits 0 and prints text;
#   - at least MIN_EXACT samples come out exactly as samples/expected.tsv says (language given);
#   - the character error rate over the recognition samples (recipes' score.py: normalised,
#     spaces removed, edits summed over samples) is at most MAX_CER percent, language given;
#   - --lang auto names the right language for at least MIN_LID samples.
# The bounds are the shipped model's measurements with a small margin (see RESULTS.md); raise
# them whenever a better model is shipped, up to "all exact" (MIN_EXACT = number of samples).
# Environment (from make check): top_srcdir, COCHLEA, PYTHON.
: "${top_srcdir:=.}" "${COCHLEA:=./cochlea}" "${PYTHON:=/usr/bin/python3}"

# the shipped model (2026-11-28, recipe run 14): 5 of 7 exact (eng, deu, fra, spa, jpn), CER 0.8 %
# over the six recognition samples, language right for 6 of 7 (Spanish is taken for
# Italian), translation wrong. zh-school.wav is now spoken by espeak-ng's cmn-latn-pinyin voice
# (Mandarin syllables; the old cmn voice read the pinyin as English), and the model gets it to
# within one character. Earlier models: run 12 4 of 7 (CER 2.5 %), run 11 5 of 7; which of the
# seven is off by a character has changed from run to run, so the CER bound is the finer guard.
# Since 2026-11-28 (session 20) the model carries a token 4-gram LM and decodes with beam search
# by default (test-set CER 18.4 -> 14.3 %): 4 of 7 exact (eng, deu, fra, jpn; the insertion
# bonus adds an "o" to Spanish "hermano", which greedy decoding of the same network gets right:
# `--beam-size 1`), CER 1.7 %, language right for 6 of 7, translation wrong ("The de table.").
# Session 21's LM (more text: game dialogue, Chinese word frequencies) gives the same seven outputs.
# Session 22 (run 21: the network grown to 8 layers, and more Korean LM text): 5 of 7 exact
# (zh-school.wav too), CER 0.8 %, language right for 6 of 7, translation still "The de table.".
# Session 23 (the same network, a larger LM: cut-offs 0,2,2, stored as a trie) gives the same seven outputs.
# Session 24 (run 23: run 21's network trained on, test CER 13.8 -> 13.1 %) gives them too, and so
# does session 25's (the blend of runs 23 and 24, test CER 12.3 %). Session 26's (run 25, test CER
# 11.9 %) gives the same six recognition outputs and LID; the translation reads "The dem.". Run 26
# (shipped the same session, test CER 11.2 %): 5 of 7 exact (Spanish now right, German "Kaffe"),
# CER 0.8 %, language right for 6 of 7, translation "The de.". Session 27 (run 27, from the
# committed run 26 on a rebuilt machine, blended 0.7/0.3 with it; test CER 10.6 %): all six
# recognition samples exact (German "Kaffee" right again), CER 0.0 %, language right for 6 of 7,
# translation still "The de."; MIN_EXACT is raised to 6 (every recognition sample). Session 29
# (run 29 blended evenly with session 27's model; test CER 10.1 %): the same six exact outputs and
# LID, translation "Theg dets." (the 0.3/0.7 blend, 10.2 % on the test set, was not shipped: it
# reads de-coffee.wav as "... am Leben.").
MIN_EXACT=6
MAX_CER=1
MIN_LID=6

s="$top_srcdir/samples"
if [ ! -f "$top_srcdir/models/owsm-ctc-tiny.gguf" ] || [ ! -f "$s/expected.tsv" ]; then
    echo "FAIL: models/owsm-ctc-tiny.gguf or samples/expected.tsv missing"
    exit 1
fi
tmp_prefix=cochlea_samples . "$top_srcdir/tests/sh_setup.sh"
unset COCHLEA_MODEL
n=0
exact=0
lid=0
tab=$(printf '\t')
: >"$tmp/asr.tsv"
while IFS="$tab" read -r file lang task expected; do
    case "$file" in '#'* | '') continue ;; esac
    n=$((n + 1))
    # the language given
    "$COCHLEA" transcribe -q -t 2 -l "$lang" --task "$task" "$s/$file" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$file: exit status $rc"; head -3 "$tmp/err"; continue
    fi
    got=$(cat "$tmp/out")
    if [ -z "$got" ]; then
        fail "$file ($lang $task): no text"
    elif [ "$got" = "$expected" ]; then
        echo "ok: $file ($lang $task): exact: $got"
        exact=$((exact + 1))
    else
        echo "info: $file ($lang $task): got '$got', expected '$expected'"
    fi
    [ "$task" = asr ] && printf '%s\t%s\t%s\n' "$lang" "$expected" "$got" >>"$tmp/asr.tsv"
    # language identification with --lang auto
    "$COCHLEA" transcribe -t 2 -l auto --task "$task" "$s/$file" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$file: --lang auto: exit status $rc"; head -3 "$tmp/err"; continue
    fi
    det=$(sed -n 's/.*detected language: <\{0,1\}\([a-z]*\).*/\1/p' "$tmp/err" | head -1)
    if [ "$det" = "$lang" ]; then
        echo "ok: $file: detected language $det"
        lid=$((lid + 1))
    else
        echo "info: $file: detected language '$det', expected $lang"
    fi
done <"$s/expected.tsv"
[ "$n" -ge 5 ] || { echo "FAIL: only $n samples in expected.tsv"; exit 1; }

if [ "$exact" -ge "$MIN_EXACT" ]; then
    echo "ok: $exact of $n samples exact (at least $MIN_EXACT)"
else
    fail "$exact of $n samples exact, expected at least $MIN_EXACT"
fi
if [ "$lid" -ge "$MIN_LID" ]; then
    echo "ok: language identified for $lid of $n samples (at least $MIN_LID)"
else
    fail "language identified for $lid of $n samples, expected at least $MIN_LID"
fi

# CER over the recognition samples with the recipe's scorer (checked against sclite by
# tests/score_check.sh)
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null; then
    echo "SKIP: the CER check needs Python 3 (PYTHON=$PYTHON)"
    [ "$failed" -eq 0 ] && exit 77
    exit 1
fi
cer=$("$PYTHON" - "$top_srcdir/recipes/owsm_ctc_tiny/local" "$tmp/asr.tsv" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import score
e = score.ErrorRate()
for line in open(sys.argv[2], encoding="utf-8"):
    lang, ref, hyp = line.rstrip("\n").split("\t")
    e.add(score.cer_units(ref), score.cer_units(hyp))
print(f"{100.0 * e.errors / max(1, e.ref):.1f}")
EOF
) || { echo "FAIL: scoring failed"; exit 1; }
if awk -v c="$cer" -v m="$MAX_CER" 'BEGIN { exit !(c <= m) }'; then
    echo "ok: CER $cer % over the recognition samples (at most $MAX_CER %)"
else
    fail "CER $cer % over the recognition samples, expected at most $MAX_CER %"
fi
[ "$failed" -eq 0 ] || exit 1
echo "ok: $n samples"
exit 0
