#!/bin/sh
# Parity of `cochlea features` with the PyTorch reference frontend (tests/ref/frontend.py):
# log-mel within 1e-3 max / 1e-5 mean over speech, tones, noise, silence, clipping, DC, short
# inputs, 8-48 kHz inputs, stereo, 80/128 mels and MVN; filterbank within 1e-6.
# Skips (77) only when no Python with torch and numpy is available.
set -u
: "${top_srcdir:=.}" "${top_builddir:=.}" "${PYTHON:=python3}" "${COCHLEA:=$top_builddir/cochlea}"
: "${COCHLEA_SHARED:=}"
. "$top_srcdir/tests/torch_python.sh"
if [ ! -x "$COCHLEA" ]; then
    echo "FAIL: $COCHLEA is not built"
    exit 1
fi
exec "$py" "$top_srcdir/tests/frontend_parity.py" "$COCHLEA" "$COCHLEA_SHARED"
