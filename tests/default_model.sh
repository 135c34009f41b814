#!/bin/sh
# The default model of `cochlea transcribe` (no -m): found in the source tree's models/, through
# $COCHLEA_MODEL, and in the installed layout PREFIX/bin/cochlea + PREFIX/share/cochlea/models/
# (src/cli/model_path.h). The transcribed text is not checked, only which model is used.
# Environment (set by make check): COCHLEA (the binary), PYTHON, top_srcdir, top_builddir.
: "${top_srcdir:=.}" "${top_builddir:=.}" "${PYTHON:=/usr/bin/python3}" "${COCHLEA:=$top_builddir/cochlea}"

name=owsm-ctc-tiny.gguf
tmp_prefix=cochlea_defmodel . "$top_srcdir/tests/sh_setup.sh"
if [ ! -f "$top_srcdir/models/$name" ]; then
    echo "FAIL: the default model $top_srcdir/models/$name is missing"
    exit 1
fi
src_models=$(cd "$top_srcdir/models" && pwd -P) || exit 1
unset COCHLEA_MODEL

# A 1.5 s 16 kHz mono WAV: a tone with a little noise (Python's standard library only).
wav="$tmp/speech.wav"
"$PYTHON" - "$wav" <<'PY' || { echo "FAIL: writing the test WAV"; exit 1; }
import math, random, struct, sys, wave
random.seed(1)
rate, n = 16000, 24000
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(rate)
    w.writeframes(b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 220 * i / rate) + random.randint(-500, 500)))
        for i in range(n)))
PY

# ---- the source tree's models/ (next to the build tree, or the compiled-in source path) -------

run 0 "no -m: the default model is used" -- "$COCHLEA" transcribe -v -t 1 "$wav"
has "$err" "model: " "-v names the model"
has "$err" "models/$name (default)" "-v names models/$name"
model_line=$(grep -F "model: " "$err" | head -1)
used=${model_line#*model: }
used=${used% (default)}
[ -f "$used" ] || fail "the model named by -v ('$used') is not a file"
cmp -s "$used" "$top_srcdir/models/$name" || fail "the model used ($used) is not the source tree's models/$name"
run 0 "no -m, no -v: no model line" -- "$COCHLEA" transcribe -t 1 "$wav"
hasnt "$err" "(default)" "without -v the model is not named"
run 0 "-m still wins" -- "$COCHLEA" transcribe -v -t 1 -m "$top_srcdir/models/$name" "$wav"
hasnt "$err" "(default)" "with -m no default model is looked up"
run 0 "help documents the default" -- "$COCHLEA" transcribe --help
has "$out" "default: the" "usage text names the default model"
has "$out" "owsm-ctc-tiny" "usage text names owsm-ctc-tiny"
run 2 "no input file is still a usage error" -- "$COCHLEA" transcribe
has "$err" "no input file given" "no input message"

# --list-languages without -m is unchanged: the built-in list, no model is loaded
run 0 "--list-languages without -m" -- env COCHLEA_MODEL=/nonexistent/model.gguf "$COCHLEA" transcribe --list-languages
has "$out" "eng" "--list-languages lists English"

# ---- COCHLEA_MODEL ------------------------------------------------------------------------------

run 2 "COCHLEA_MODEL names a missing file" -- \
    env COCHLEA_MODEL="$tmp/absent.gguf" "$COCHLEA" transcribe -t 1 "$wav"
has "$err" "cochlea: error: COCHLEA_MODEL=$tmp/absent.gguf: no such file" "missing COCHLEA_MODEL message"
has "$err" "-m MODEL.gguf" "the message suggests -m"
run 2 "COCHLEA_MODEL=/nonexistent" -- env COCHLEA_MODEL=/nonexistent "$COCHLEA" transcribe -t 1 "$wav"
has "$err" "COCHLEA_MODEL=/nonexistent: no such file" "COCHLEA_MODEL=/nonexistent message"
run 2 "COCHLEA_MODEL names a directory" -- env COCHLEA_MODEL="$tmp" "$COCHLEA" transcribe -t 1 "$wav"
has "$err" "COCHLEA_MODEL=$tmp: not a regular file" "COCHLEA_MODEL directory message"
run 0 "COCHLEA_MODEL with -m: -m wins" -- \
    env COCHLEA_MODEL=/nonexistent "$COCHLEA" transcribe -t 1 -m "$top_srcdir/models/$name" "$wav"

cp "$top_srcdir/models/$name" "$tmp/copy.gguf" || fail "copying the model"
run 0 "COCHLEA_MODEL names a copy" -- env COCHLEA_MODEL="$tmp/copy.gguf" "$COCHLEA" transcribe -v -t 1 "$wav"
has "$err" "model: $tmp/copy.gguf (default)" "-v names the COCHLEA_MODEL file"
printf 'GGUF but not a model' >"$tmp/bad.gguf"
run 1 "COCHLEA_MODEL names a broken file" -- env COCHLEA_MODEL="$tmp/bad.gguf" "$COCHLEA" transcribe -t 1 "$wav"
has "$err" "loading the model" "a broken default model is reported as a load error"

# ---- the installed layout: T/bin/cochlea + T/share/cochlea/models/NAME ------------------------

mkdir -p "$tmp/inst/bin" "$tmp/inst/share/cochlea/models" || fail "mkdir"
cp "$COCHLEA" "$tmp/inst/bin/cochlea" && cp "$top_srcdir/models/$name" "$tmp/inst/share/cochlea/models/$name" ||
    fail "copying the program and the model"
run 0 "installed layout: share/cochlea/models" -- "$tmp/inst/bin/cochlea" transcribe -v -t 1 "$wav"
has "$err" "model: $tmp/inst/share/cochlea/models/$name (default)" "the installed copy is found first"

# a models/ folder beside the program comes before share/
mkdir -p "$tmp/inst/bin/models" && cp "$top_srcdir/models/$name" "$tmp/inst/bin/models/$name" || fail "copying"
run 0 "models/ beside the program" -- "$tmp/inst/bin/cochlea" transcribe -v -t 1 "$wav"
has "$err" "model: $tmp/inst/bin/models/$name (default)" "DIR/models comes first"
rm -rf "$tmp/inst/bin/models"

# a symbolic link to the program: its real directory counts
ln -s "$tmp/inst/bin/cochlea" "$tmp/link-to-cochlea" || fail "ln -s"
run 0 "a link to the program" -- "$tmp/link-to-cochlea" transcribe -v -t 1 "$wav"
has "$err" "model: $tmp/inst/share/cochlea/models/$name (default)" "the link resolves to the program's folder"

# ---- the compiled-in source models/ is the last resort; nothing found names every place ------

rm -f "$tmp/inst/share/cochlea/models/$name"
run 0 "share/ emptied: the compiled-in source models/ is the fallback" -- "$tmp/inst/bin/cochlea" transcribe -v -t 1 "$wav"
hasnt "$err" "$tmp/inst/" "the emptied install tree is not used"
has "$err" "models/$name (default)" "the fallback names models/$name"

# The compiled-in directories can only be hidden in a private mount namespace: an empty folder
# is bind-mounted over each directory the program still finds a model in (the source tree's
# models/, an installed copy), then the search must fail with a message naming all it tried.
mkdir -p "$tmp/empty"
cat >"$tmp/hide.sh" <<'SH'
prog=$1 wav=$2 empty=$3 out=$4 err=$5
for round in 1 2 3 4; do
    "$prog" transcribe -v -t 1 "$wav" >"$out" 2>"$err" && rc=0 || rc=$?
    [ "$rc" -eq 0 ] || exit "$rc"
    used=$(sed -n 's/^.*model: \(.*\) (default)$/\1/p' "$err" | head -1)
    [ -n "$used" ] || exit 99
    mount --bind "$empty" "$(dirname "$used")" || exit 98
done
exit 97
SH
if unshare -r -m sh -c "mount --bind '$tmp/empty' '$tmp/empty'" 2>/dev/null; then
    unshare -r -m sh "$tmp/hide.sh" "$tmp/inst/bin/cochlea" "$wav" "$tmp/empty" "$out" "$err"
    rc=$?
    if [ "$rc" -eq 2 ]; then
        echo "ok: no default model anywhere: usage error"
        has "$err" "no model given (-m) and the default model $name was not found" "nothing-found message"
        has "$err" "  $tmp/inst/bin/models/$name" "tried DIR/models"
        has "$err" "  $tmp/inst/models/$name" "tried DIR/../models"
        has "$err" "  $tmp/inst/share/cochlea/models/$name" "tried DIR/../share/cochlea/models"
        has "$err" "  $src_models/$name" "tried the source tree's models/"
        has "$err" "pass -m MODEL.gguf" "the message says to pass -m"
    else
        fail "no default model anywhere: exit status $rc, expected 2"
        sed 's/^/    stderr: /' "$err" | head -10
    fi
else
    echo "SKIP: nothing-found message (no private mount namespace here: unshare -r -m)"
fi

if [ "$failed" -ne 0 ]; then
    echo "$failed check(s) failed"
    exit 1
fi
echo "all default-model checks passed"
