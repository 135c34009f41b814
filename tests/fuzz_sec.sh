#!/bin/sh
# fuzz_sec.sh - `make check` libFuzzer run of the .sec reader (tests/fuzz_sec.c): builds the
# harness with clang -fsanitize=fuzzer,address,undefined straight from the sources it needs
# (codec/bitstream.c codec/arith.c src/crc32.c src/error.c), writes a seed corpus with the same file built
# as a seed generator, and fuzzes for $FUZZ_SEC_SECONDS seconds (default 20). Any crash, leak,
# sanitizer report or broken invariant fails the test (the input is kept as
# $top_builddir/tests/fuzz_sec-crash-*); exit 77 (skip) when clang or libFuzzer is missing.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}" "${top_builddir:=.}"
: "${FUZZ_SEC_SECONDS:=20}" "${CLANG:=clang}"

if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "SKIP: $CLANG not found (the libFuzzer run needs clang)"
    exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz_sec.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
    >"$work/probe.c"
if ! "$CLANG" -fsanitize=fuzzer,address,undefined "$work/probe.c" -o "$work/probe" >"$work/probe.log" 2>&1; then
    echo "SKIP: $CLANG cannot link -fsanitize=fuzzer (libFuzzer runtime missing):"
    sed 's/^/  /' "$work/probe.log" | head -5
    exit 77
fi

srcs="$top_srcdir/tests/fuzz_sec.c $top_srcdir/codec/bitstream.c $top_srcdir/codec/arith.c $top_srcdir/src/crc32.c $top_srcdir/src/error.c"
cflags="-std=c11 -g -O1 -D_GNU_SOURCE -Wall -Wextra -Werror -I$top_srcdir/include -I$top_srcdir/src -I$top_srcdir"
# shellcheck disable=SC2086
if ! "$CLANG" $cflags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $srcs -lm \
    -o "$work/fuzz_sec"; then
    echo "FAIL: building the fuzz harness"
    exit 1
fi
# shellcheck disable=SC2086
if ! "$CLANG" $cflags -DSEC_FUZZ_SEEDGEN $srcs -lm -o "$work/seedgen"; then
    echo "FAIL: building the seed generator"
    exit 1
fi
mkdir "$work/corpus" || exit 1
if ! "$work/seedgen" "$work/corpus"; then
    echo "FAIL: writing the seed corpus"
    exit 1
fi

echo "fuzzing the .sec reader for $FUZZ_SEC_SECONDS s from $(ls "$work/corpus" | wc -l) seeds"
ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}" \
UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}" \
    "$work/fuzz_sec" -max_total_time="$FUZZ_SEC_SECONDS" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 -artifact_prefix="$work/crash-" \
    "$work/corpus" >"$work/fuzz.log" 2>&1
rc=$?
if [ "$rc" -eq 0 ]; then
    grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|^Done|^stat::" "$work/fuzz.log"
else
    tail -n 60 "$work/fuzz.log"
fi
# libFuzzer's default error exit code is 77, which automake would read as a skip
if [ "$rc" -ne 0 ] || ls "$work"/crash-* >/dev/null 2>&1; then
    mkdir -p "$top_builddir/tests"
    for f in "$work"/crash-*; do
        [ -f "$f" ] || continue
        cp "$f" "$top_builddir/tests/fuzz_sec-$(basename "$f")"
        echo "kept $top_builddir/tests/fuzz_sec-$(basename "$f"):"
        od -A x -t x1 "$f" | head -20
    done
    echo "FAIL: the fuzzer found a problem (exit status $rc)"
    exit 1
fi
echo "PASS: no crash in $FUZZ_SEC_SECONDS s"
exit 0
