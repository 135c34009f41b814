# sh_setup.sh - sourced by the shell tests that drive the cochlea program, as
#   tmp_prefix=NAME . "$top_srcdir/tests/sh_setup.sh"
# Checks that $COCHLEA is built (FAIL, exit 1, if not), makes the scratch directory $tmp
# (removed on exit) named after $tmp_prefix, and defines fail(), which reports a failed check
# and counts it in $failed.
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
