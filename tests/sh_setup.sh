# sh_setup.sh - sourced by the shell tests that drive the cochlea program, as
#   tmp_prefix=NAME . "$top_srcdir/tests/sh_setup.sh"
# Checks that $COCHLEA is built (FAIL, exit 1, if not), makes the scratch directory $tmp
# (removed on exit) named after $tmp_prefix, and defines fail(), which reports a failed check
# and counts it in $failed, run(), which runs a command and checks its exit status, and has()
# and hasnt(), which check the text of a file.
if [ ! -x "$COCHLEA" ]; then
    echo "FAIL: no cochlea binary at $COCHLEA"
    exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/${tmp_prefix:-cochlea_test}.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
failed=0
fail() {
    echo "FAIL: $*"
    failed=$((failed + 1))
}
out="$tmp/stdout"
err="$tmp/stderr"

# run EXPECTED_RC DESCRIPTION -- COMMAND...: run it, keep its stdout/stderr in $out/$err; an
# EXPECTED_RC of nz accepts any nonzero status except a crash (killed by a signal: 128 or more).
run() {
    want=$1
    what=$2
    shift 3
    "$@" >"$out" 2>"$err"
    rc=$?
    if [ "$want" = nz ]; then
        [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && bad=0 || bad=1
    else
        [ "$rc" -eq "$want" ] && bad=0 || bad=1
    fi
    if [ "$bad" -eq 1 ]; then
        fail "$what: exit status $rc, expected $want ($*)"
        sed 's/^/    stderr: /' "$err" | head -10
        return 1
    fi
    echo "ok: $what"
    return 0
}

# has FILE TEXT DESCRIPTION: FILE contains the fixed string TEXT; hasnt: it does not.
has() {
    if ! grep -F -q -- "$2" "$1"; then
        fail "$3: '$2' not in $(basename "$1")"
        sed 's/^/    | /' "$1" | head -20
    fi
}

hasnt() {
    if grep -F -q -- "$2" "$1"; then
        fail "$3: '$2' unexpectedly in $(basename "$1")"
        sed 's/^/    | /' "$1" | head -20
    fi
}
