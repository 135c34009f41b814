#!/bin/sh
# Cochlea quick start on a fresh Debian 12 machine.
#   sh quickstart.sh          install what is missing, build, run the main job
#   sh quickstart.sh check    install what is missing, build, run the whole test suite
# Environment: BUILD_DIR (default: build), CONFIGURE_FLAGS (extra ./configure flags),
#              JOBS (parallel make jobs, default: number of CPUs).
set -eu

mode=${1:-run}
case "$mode" in
run | check) ;;
*)
    echo "usage: sh quickstart.sh [check]" >&2
    exit 2
    ;;
esac

top=$(cd "$(dirname "$0")" && pwd)
cd "$top"
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
CONFIGURE_FLAGS=${CONFIGURE_FLAGS:-}

# Debian packages: build, then what the tests need (PyTorch/numpy references, SentencePiece,
# espeak-ng + sox for synthetic speech, kakasi + opencc + sctk for the recipe).
build_pkgs="gcc make autoconf automake libtool pkg-config libsndfile1-dev libfftw3-dev libopenblas-dev libsoxr-dev libdnnl-dev check"
test_pkgs="python3 python3-numpy python3-torch python3-yaml python3-sentencepiece sentencepiece espeak-ng sox kakasi opencc sctk"
pkgs=$build_pkgs
[ "$mode" = check ] && pkgs="$pkgs $test_pkgs"

missing=
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "quickstart: missing packages:$missing (install them with your package manager)" >&2
        exit 1
    fi
    if [ "$(id -u)" -eq 0 ]; then
        echo "quickstart: installing:$missing"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
        echo "quickstart: these Debian packages are missing; install them with:" >&2
        echo "  sudo apt-get update && sudo apt-get install -y$missing" >&2
        exit 1
    fi
fi

# Build (out of tree, in $BUILD_DIR).
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
    echo "quickstart: autoreconf"
    autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi
mkdir -p "$BUILD_DIR"
cd "$BUILD_DIR"
if [ ! -f Makefile ] || [ ../configure -nt config.status ] || [ -n "$CONFIGURE_FLAGS" ]; then
    echo "quickstart: configure $CONFIGURE_FLAGS"
    # shellcheck disable=SC2086
    ../configure -q $CONFIGURE_FLAGS
fi
echo "quickstart: make -j$JOBS"
make -s -j"$JOBS"

if [ "$mode" = check ]; then
    echo "quickstart: make check"
    if make -s -j"$JOBS" check; then
        status=0
    else
        status=1
        # show the logs of what failed
        for f in $(find tests -name '*.log' ! -name 'test-suite.log' 2>/dev/null); do
            trs=${f%.log}.trs
            if [ -f "$trs" ] && grep -q ':test-result: \(FAIL\|ERROR\)' "$trs"; then
                echo "==== $f ===="
                tail -n 60 "$f"
            fi
        done
    fi
    if [ -f test-suite.log ]; then
        pass=$(sed -n 's/^# PASS: *//p' test-suite.log | head -1)
        fail=$(sed -n 's/^# FAIL: *//p' test-suite.log | head -1)
        err=$(sed -n 's/^# ERROR: *//p' test-suite.log | head -1)
        skip=$(sed -n 's/^# SKIP: *//p' test-suite.log | head -1)
        echo "tests: ${pass:-0} passed, $(( ${fail:-0} + ${err:-0} )) failed, ${skip:-0} skipped"
    fi
    exit $status
fi

# The main job: transcribe the bundled samples with the embedded default model
# (models/owsm-ctc-tiny.gguf, trained by recipes/owsm_ctc_tiny on synthetic speech).
echo
./cochlea --version
tab=$(printf '\t')
while IFS="$tab" read -r file lang task expected; do
    case "$file" in '#'* | '') continue ;; esac
    echo
    if [ "$task" = asr ]; then
        echo "== samples/$file (language: auto)"
        ./cochlea transcribe -l auto "$top/samples/$file"
    else
        echo "== samples/$file (translation: $lang -> ${task#st_})"
        ./cochlea transcribe -l "$lang" --task "$task" "$top/samples/$file"
    fi
    echo "   (the recipe's text: $expected)"
done <"$top/samples/expected.tsv"
echo
echo "quickstart: the default model is small and still undertrained (recipes/owsm_ctc_tiny/RESULTS.md);"
echo "quickstart: more in README.md ('cochlea transcribe --help', your own audio: $BUILD_DIR/cochlea transcribe FILE)"
