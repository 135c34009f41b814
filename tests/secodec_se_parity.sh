#!/bin/sh
# secodec_se_parity.sh - `make check` test of the C SE quantiser (codec/se_codebook.c, through
# `cochlea codec encode --latents --tokens`) against the numpy reference tests/ref/secodec_se.py
# on the fixture model and on tie-crafted variants, plus checks of the reference itself against
# brute-force 2-D structural entropy; the checks are in tests/secodec_se_parity.py. Exit 77
# (skip) only when no Python with numpy is found (torch, when present, adds a decoder check).
# Environment as tests/cli.sh: COCHLEA, top_srcdir, top_builddir (PYTHON is tried first).
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}" "${top_builddir:=.}" "${COCHLEA:=$top_builddir/cochlea}"
py=
for cand in "${PYTHON:-python3}" python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import numpy' >/dev/null 2>&1; then
        py=$cand
        break
    fi
done
if [ -z "$py" ]; then
    echo "SKIP: no Python with numpy (tried ${PYTHON:-python3}, python3, /usr/bin/python3)"
    exit 77
fi
if [ ! -x "$COCHLEA" ]; then
    echo "FAIL: no cochlea program at $COCHLEA"
    exit 1
fi
export top_srcdir top_builddir COCHLEA
exec "$py" "$top_srcdir/tests/secodec_se_parity.py"
