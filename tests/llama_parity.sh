#!/bin/sh
# llama_parity.sh - `make check` test of the decoder runtime (src/lm) against the PyTorch
# reference (tests/ref/llama.py) on random llama GGUFs; the checks are in tests/llama_parity.py
# and the C side runs through `tests/test_lm logits`. Exit 77 (skip) only when no Python with
# torch and numpy exists.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}" "${top_builddir:=.}" "${PYTHON:=/usr/bin/python3}"
: "${LM_DRIVER:=$top_builddir/tests/test_lm}"
. "$top_srcdir/tests/torch_python.sh"
if [ ! -x "$LM_DRIVER" ]; then
    echo "FAIL: $LM_DRIVER is not built"
    exit 1
fi
export top_srcdir top_builddir LM_DRIVER
exec "$py" "$top_srcdir/tests/llama_parity.py"
