#!/bin/sh
# gguf_parity.sh - `make check` test of the shipped model file: `cochlea transcribe` on
# models/owsm-ctc-tiny.gguf against the PyTorch reference rebuilt from that GGUF alone (no
# checkpoint), on the committed samples (samples/*.wav with the language and task of
# samples/expected.tsv) and on one long input made of all of them joined by 0.5 s gaps, which is
# longer than the model's window and so runs the long-form path. The checks (encoder output,
# frame argmaxes, text) are in tests/gguf_parity.py. Exit 77 (skip) when no Python imports torch
# and numpy; a missing model or missing samples fail.
# Environment (from make check): top_srcdir, top_builddir, PYTHON, COCHLEA.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}" "${top_builddir:=.}" "${PYTHON:=/usr/bin/python3}"
: "${COCHLEA:=$top_builddir/cochlea}"
model="$top_srcdir/models/owsm-ctc-tiny.gguf"
tsv="$top_srcdir/samples/expected.tsv"
if [ ! -f "$model" ]; then
    echo "FAIL: $model is missing"
    exit 1
fi
if [ ! -f "$tsv" ]; then
    echo "FAIL: $tsv is missing (written with samples/*.wav by recipes/owsm_ctc_tiny stage 7)"
    exit 1
fi
. "$top_srcdir/tests/torch_python.sh"
if [ ! -x "$COCHLEA" ]; then
    echo "FAIL: $COCHLEA is not built"
    exit 1
fi
# every samples/*.wav must be listed in expected.tsv (the .py checks that each listed file exists)
for w in "$top_srcdir"/samples/*.wav; do
    [ -f "$w" ] || continue
    b=$(basename "$w")
    if ! cut -f1 "$tsv" | grep -Fqx "$b"; then
        echo "FAIL: $b is not listed in $tsv (its language and task are unknown)"
        exit 1
    fi
done
export top_srcdir top_builddir
exec "$py" "$top_srcdir/tests/gguf_parity.py" "$model" --samples "$tsv" --long --cochlea "$COCHLEA"
