#!/bin/sh
# owsm_parity.sh - `make check` test of the C OWSM-CTC engine (`cochlea transcribe`) against the
# PyTorch reference (tests/ref/owsm_ctc.py) on random-weight models, plus bad-input handling;
# the checks are in tests/owsm_parity.py. Exit 77 (skip) when $COCHLEA_SHARED/owsm or a Python
# with torch and numpy is missing.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}" "${top_builddir:=.}" "${PYTHON:=/usr/bin/python3}"
: "${COCHLEA:=$top_builddir/cochlea}" "${COCHLEA_SHARED:=$top_srcdir/../shared}"
for f in config.yaml bpe.model feats_stats.npz; do
    if [ ! -f "$COCHLEA_SHARED/owsm/$f" ]; then
        echo "SKIP: $COCHLEA_SHARED/owsm/$f is absent (the released OWSM assets)"
        exit 77
    fi
done
. "$top_srcdir/tests/torch_python.sh"
if [ ! -x "$COCHLEA" ]; then
    echo "FAIL: $COCHLEA is not built"
    exit 1
fi
export top_srcdir top_builddir COCHLEA COCHLEA_SHARED
exec "$py" "$top_srcdir/tests/owsm_parity.py"
