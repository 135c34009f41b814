#!/bin/sh
# tokenizer_parity.sh - `cochlea tokenize` against python3-sentencepiece on the released OWSM
# bpe.model and on models trained at test time (see tests/tokenizer_parity.py): pieces, ids and
# decoded text must be identical on >= 2,000 lines in 14 languages plus hard cases.
# Needs $COCHLEA_SHARED (../shared): skipped (77) only when that folder is absent.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=.}"
: "${PYTHON:=/usr/bin/python3}"
: "${COCHLEA:=$top_builddir/cochlea}"

if [ -z "${COCHLEA_SHARED:-}" ] || [ ! -d "$COCHLEA_SHARED" ]; then
    echo "SKIP: the shared folder (COCHLEA_SHARED='${COCHLEA_SHARED:-}') is absent; the tokenizer parity test needs owsm/bpe.model and data/tatoeba from it"
    exit 77
fi
if [ ! -f "$COCHLEA_SHARED/owsm/bpe.model" ]; then
    echo "FAIL: $COCHLEA_SHARED/owsm/bpe.model is missing"
    exit 1
fi
if ! "$PYTHON" -c 'import sentencepiece' 2>/dev/null; then
    echo "FAIL: $PYTHON cannot import sentencepiece (install python3-sentencepiece)"
    exit 1
fi
if [ ! -x "$COCHLEA" ]; then
    echo "FAIL: $COCHLEA is not built"
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/tokenizer_parity.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
"$PYTHON" "$top_srcdir/tests/tokenizer_parity.py" --cochlea "$COCHLEA" --shared "$COCHLEA_SHARED" --work "$work"
