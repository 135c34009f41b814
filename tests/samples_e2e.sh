#!/bin/sh
# End-to-end tests of the embedded default model (models/owsm-ctc-tiny.gguf) on the committed
# samples (samples/*.wav, written by recipes/owsm_ctc_tiny stage 7 from our own sentences, spoken
# by voice variants that were never used in training): `cochlea transcribe` without -m must give
# samples/expected.tsv's text exactly, with the language given and with --lang auto, must name
# the right language with --lang auto, and the translation sample must give its English text.
# Environment (from make check): top_srcdir, COCHLEA.
: "${top_srcdir:=.}" "${COCHLEA:=./cochlea}"
s="$top_srcdir/samples"
if [ ! -f "$top_srcdir/models/owsm-ctc-tiny.gguf" ] || [ ! -f "$s/expected.tsv" ]; then
    echo "FAIL: models/owsm-ctc-tiny.gguf or samples/expected.tsv missing"
    exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cochlea_samples.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
failed=0
n=0
tab=$(printf '\t')
while IFS="$tab" read -r file lang task expected; do
    case "$file" in '#'* | '') continue ;; esac
    n=$((n + 1))
    # the language given
    if ! "$COCHLEA" transcribe -q -t 2 -l "$lang" --task "$task" "$s/$file" >"$tmp/out" 2>"$tmp/err"; then
        echo "FAIL: $file: exit status $?"; head -3 "$tmp/err"; failed=$((failed + 1)); continue
    fi
    got=$(cat "$tmp/out")
    if [ "$got" = "$expected" ]; then
        echo "ok: $file ($lang $task): $got"
    else
        echo "FAIL: $file ($lang $task): got '$got', expected '$expected'"
        failed=$((failed + 1))
    fi
    # language identification and decoding with --lang auto
    if ! "$COCHLEA" transcribe -t 2 -l auto --task "$task" "$s/$file" >"$tmp/out" 2>"$tmp/err"; then
        echo "FAIL: $file: --lang auto: exit status $?"; head -3 "$tmp/err"; failed=$((failed + 1)); continue
    fi
    det=$(sed -n 's/.*detected language: \([a-z]*\).*/\1/p' "$tmp/err" | head -1)
    if [ "$det" = "$lang" ]; then
        echo "ok: $file: detected language $det"
    else
        echo "FAIL: $file: detected language '$det', expected $lang"
        failed=$((failed + 1))
    fi
    got=$(cat "$tmp/out")
    if [ "$got" = "$expected" ]; then
        echo "ok: $file (auto $task): $got"
    else
        echo "FAIL: $file (auto $task): got '$got', expected '$expected'"
        failed=$((failed + 1))
    fi
done <"$s/expected.tsv"
[ "$n" -ge 5 ] || { echo "FAIL: only $n samples in expected.tsv"; exit 1; }
[ "$failed" -eq 0 ] || exit 1
echo "ok: $n samples"
exit 0
