#!/bin/sh
# CI smoke test of recipes/owsm_ctc_tiny: every stage (text, synthesis, tokenizer, training,
# export, evaluation with the cochlea program, samples) on six sentence pairs per language with
# a two-layer network trained for six steps, so the recipe cannot rot unnoticed. The numbers
# it produces mean nothing; what is checked is that each stage runs and writes what the next
# one needs, and that the exported model loads and transcribes in C.
# Environment (from make check): top_srcdir, COCHLEA, PYTHON, COCHLEA_SHARED.
: "${top_srcdir:=.}" "${PYTHON:=/usr/bin/python3}" "${COCHLEA:=./cochlea}"
shared=${COCHLEA_SHARED:-$top_srcdir/../shared}
data="$shared/data/tatoeba"
if [ ! -d "$data" ]; then
    echo "SKIP: no Tatoeba text at $data"
    exit 77
fi
for c in espeak-ng kakasi opencc spm_train; do
    if ! command -v "$c" >/dev/null 2>&1; then
        echo "SKIP: $c is not installed (sh quickstart.sh check installs it)"
        exit 77
    fi
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cochlea_recipe.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
failed=0
fail() {
    echo "FAIL: $*"
    failed=$((failed + 1))
}

if ! SMOKE=1 WORK="$tmp/work" DATA="$data" NJ=2 PYTHON="$PYTHON" COCHLEA="$COCHLEA" STAGE=1 \
    sh "$top_srcdir/recipes/owsm_ctc_tiny/run.sh" >"$tmp/log" 2>&1; then
    tail -n 40 "$tmp/log"
    echo "FAIL: run.sh (SMOKE=1) failed"
    exit 1
fi
echo "ok: run.sh SMOKE=1 ran stages 1-7"
w="$tmp/work"
for f in text/train.jsonl text/dev.jsonl text/test.jsonl train/feats.npy train/index.jsonl test/index.jsonl \
    tok/bpe.model tok/tokens.txt exp/checkpoint.pt exp/best.pth export/owsm-ctc-tiny.gguf \
    eval/RESULTS.md eval/results.json samples/expected.tsv; do
    [ -s "$w/$f" ] && echo "ok: $f" || fail "stage output $f missing or empty"
done
# every test utterance has its WAV, every language of the recipe is in the test set
n_idx=$(wc -l <"$w/test/index.jsonl")
n_wav=$(ls "$w/test/wav" | wc -l)
[ "$n_idx" -eq "$n_wav" ] && echo "ok: $n_wav test WAVs" || fail "test set: $n_idx entries, $n_wav WAVs"
langs=$(sed 's/.*"lang": "\([a-z]*\)".*/\1/' "$w/test/index.jsonl" | sort -u | tr '\n' ' ')
[ "$langs" = "ara deu eng fra ita jpn kor nld pol por rus spa tur zho " ] && echo "ok: test languages" \
    || fail "test languages: $langs"
# the token list has OWSM's layout
tl="$w/tok/tokens.txt"
[ "$(sed -n 1p "$tl")" = "<blank>" ] && [ "$(sed -n 4p "$tl")" = "<nolang>" ] && [ "$(sed -n 32p "$tl")" = "<eng>" ] \
    && [ "$(sed -n 156p "$tl")" = "<asr>" ] && [ "$(sed -n 181p "$tl")" = "<st_zho>" ] \
    && [ "$(tail -n 1 "$tl")" = "<sop>" ] && echo "ok: token layout" || fail "token list layout"
# resuming: a second stage-4 run starts from the checkpoint and stops at once
if SMOKE=1 WORK="$w" DATA="$data" PYTHON="$PYTHON" STAGE=4 STOP_STAGE=4 \
    sh "$top_srcdir/recipes/owsm_ctc_tiny/run.sh" >"$tmp/log2" 2>&1 && grep -q "resumed at step 6" "$tmp/log2"; then
    echo "ok: training resumes from its checkpoint"
else
    fail "training did not resume"
    tail -n 20 "$tmp/log2"
fi
# the exported model runs in C on a sample clip
if "$COCHLEA" transcribe -q -m "$w/export/owsm-ctc-tiny.gguf" -l eng "$w/samples/en-weather.wav" >"$tmp/out" 2>"$tmp/err"; then
    echo "ok: cochlea transcribes with the smoke model"
else
    fail "cochlea transcribe with the smoke model"
    head -5 "$tmp/err"
fi
[ "$failed" -eq 0 ] || exit 1
exit 0
