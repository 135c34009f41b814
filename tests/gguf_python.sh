#!/bin/sh
# Python writer (tools/gguf.py) -> C reader, C/Python byte identity, quantize C vs Python.
# Needs Debian's numpy in $PYTHON; skips (77) with a clear message without it.
: "${top_srcdir:=.}" "${top_builddir:=.}" "${PYTHON:=/usr/bin/python3}" "${COCHLEA:=$top_builddir/cochlea}"
if ! "$PYTHON" -c 'import numpy' 2>/dev/null; then
    echo "SKIP: $PYTHON has no numpy (Debian: apt-get install python3-numpy)"
    exit 77
fi
test_gguf="$top_builddir/tests/test_gguf"
if [ ! -x "$test_gguf" ] || [ ! -x "$COCHLEA" ]; then
    echo "FAIL: build tests/test_gguf and cochlea first ($test_gguf, $COCHLEA)"
    exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gguf_python.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
"$PYTHON" "$top_srcdir/tests/gguf_python.py" --test-gguf "$test_gguf" --cochlea "$COCHLEA" --tmp "$tmp"
