#!/bin/sh
# CTC prefix beam search and token n-gram LM (`cochlea transcribe --beam-size/--lm`,
# tools/embed_lm.py) against the reference tests/ref/ctc_beam.py; the checks are in
# tests/beam_parity.py. Needs Debian's numpy in $PYTHON; skips (77) with a clear message without it.
: "${top_srcdir:=.}" "${top_builddir:=.}" "${PYTHON:=/usr/bin/python3}" "${COCHLEA:=$top_builddir/cochlea}"
if ! "$PYTHON" -c 'import numpy' 2>/dev/null; then
    echo "SKIP: $PYTHON has no numpy (Debian: apt-get install python3-numpy)"
    exit 77
fi
if [ ! -x "$COCHLEA" ]; then
    echo "FAIL: no cochlea binary at $COCHLEA"
    exit 1
fi
unset COCHLEA_MODEL
export top_srcdir COCHLEA
exec "$PYTHON" "$top_srcdir/tests/beam_parity.py"
