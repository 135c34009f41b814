#!/bin/sh
# owsm_convert.sh - `make check` test of tools/convert_owsm_ctc.py against the PyTorch reference
# (tests/ref/owsm_ctc.py); the checks are in tests/owsm_convert.py. Exit 77 (skip) when
# $COCHLEA_SHARED/owsm or the Python modules are missing.
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${PYTHON:=/usr/bin/python3}"
: "${COCHLEA_SHARED:=$top_srcdir/../shared}"
export top_srcdir COCHLEA_SHARED
exec "$PYTHON" "$top_srcdir/tests/owsm_convert.py"
