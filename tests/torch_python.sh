# Sourced by the torch parity scripts: sets $py to the first of $PYTHON, python3 and
# /usr/bin/python3 that imports torch and numpy, or exits 77 (skip) naming what was tried.
py=
for cand in "${PYTHON:-python3}" python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import torch, numpy' >/dev/null 2>&1; then
        py=$cand
        break
    fi
done
if [ -z "$py" ]; then
    echo "SKIP: no Python with torch and numpy (tried ${PYTHON:-python3}, python3, /usr/bin/python3)"
    exit 77
fi
