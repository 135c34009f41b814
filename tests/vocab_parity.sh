#!/bin/sh
# vocab_parity.sh - the GGUF text LM tokenizers (src/lm/vocab.c) against python3-sentencepiece
# (a BPE model trained here with spm_train options that match llama.cpp's SPM tokenizer) and
# against tests/ref/bpe_ref.py (GPT-2 byte-level BPE, merges learnt here): identical ids and
# decoded text on a few thousand lines (see tests/vocab_parity.py). Uses Tatoeba lines and the
# OWSM bpe.model from $COCHLEA_SHARED when it is there (the OWSM and unigram numbers are only
# reported). Skipped (77) only when python3-sentencepiece is missing.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=.}"
: "${PYTHON:=/usr/bin/python3}"
driver="$top_builddir/tests/test_lm_vocab"

if ! "$PYTHON" -c 'import sentencepiece' 2>/dev/null; then
    echo "SKIP: $PYTHON cannot import sentencepiece (install python3-sentencepiece)"
    exit 77
fi
if ! "$PYTHON" -c 'import numpy' 2>/dev/null; then
    echo "FAIL: $PYTHON cannot import numpy (tools/gguf.py needs it)"
    exit 1
fi
if [ ! -x "$driver" ]; then
    echo "FAIL: $driver is not built"
    exit 1
fi
if [ -z "${COCHLEA_SHARED:-}" ] || [ ! -d "$COCHLEA_SHARED" ]; then
    echo "note: the shared folder (COCHLEA_SHARED='${COCHLEA_SHARED:-}') is absent: synthetic text only, no OWSM model"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/vocab_parity.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
"$PYTHON" "$top_srcdir/tests/vocab_parity.py" --driver "$driver" --work "$work" --shared "${COCHLEA_SHARED:-}"
