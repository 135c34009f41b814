#!/bin/sh
# Cross-check conv1d (zero/reflect padding, groups), conv_transpose1d, conv2d and LSTM against
# PyTorch: tests/ref/ops_ref.py writes torch's outputs, test_ops_conv --torch compares.
# Skips (77) only when no Python with torch is available.
set -u
: "${top_srcdir:=.}" "${top_builddir:=.}" "${PYTHON:=python3}"
. "$top_srcdir/tests/torch_python.sh"
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
"$py" "$top_srcdir/tests/ref/ops_ref.py" "$tmp/ops.bin" || { echo "FAIL: ops_ref.py failed"; exit 1; }
"$top_builddir/tests/test_ops_conv" --torch "$tmp/ops.bin"
