#!/bin/sh
# Cross-check conv1d (zero/reflect padding, groups), conv_transpose1d, conv2d and LSTM against
# PyTorch: tests/ref/ops_ref.py writes torch's outputs, test_ops_conv --torch compares.
# Skips (77) only when no Python with torch is available.
set -u
: "${top_srcdir:=.}" "${top_builddir:=.}" "${PYTHON:=python3}"
py=
for cand in "$PYTHON" python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import torch, numpy' >/dev/null 2>&1; then
        py=$cand
        break
    fi
done
if [ -z "$py" ]; then
    echo "SKIP: no Python with torch and numpy (tried $PYTHON, python3, /usr/bin/python3)"
    exit 77
fi
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
"$py" "$top_srcdir/tests/ref/ops_ref.py" "$tmp/ops.bin" || { echo "FAIL: ops_ref.py failed"; exit 1; }
"$top_builddir/tests/test_ops_conv" --torch "$tmp/ops.bin"
