#!/bin/sh
# secodec_parity.sh - `make check` test of the C SEANet encoder/decoder (codec/seanet.c, through
# the driver mode of tests/test_codec_seanet) against the PyTorch reference (tests/ref/secodec.py)
# on random-weight models converted by tools/convert_secodec.py, plus converter and loader
# errors; the checks are in tests/secodec_parity.py. Exit 77 (skip) only when no Python with
# torch and numpy is found. SECODEC_BENCH=1 adds a one-thread speed comparison.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}" "${top_builddir:=.}" "${PYTHON:=/usr/bin/python3}"
. "$top_srcdir/tests/torch_python.sh"
if [ ! -x "$top_builddir/tests/test_codec_seanet" ]; then
    echo "FAIL: $top_builddir/tests/test_codec_seanet is not built"
    exit 1
fi
export top_srcdir top_builddir
exec "$py" "$top_srcdir/tests/secodec_parity.py"
