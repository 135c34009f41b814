#!/bin/sh
# Bundle what a device (GPU) run of stages 2 and 4 needs into DIR (default .gpu in the repository
# root, which .git/info/exclude should ignore): Debian's espeak-ng with its own shared libraries
# (behind a wrapper that sets LD_LIBRARY_PATH for espeak-ng only), the recipe's text and tokenizer,
# and optionally more text to speak once each (EXTRA: stage 1b sentences, as text/extra.jsonl) and
# the core set's feature statistics (STATS: a feats_stats.npz). DIR.tar.gz packs it all (about a
# third of the size), for a device's `carry`.
#   sh recipes/owsm_ctc_tiny/local/bundle_espeak.sh WORK [DIR [EXTRA [STATS]]]
set -eu
WORK=$1
top=$(cd "$(dirname "$0")/../../.." && pwd)
DIR=${2:-$top/.gpu}
EXTRA=${3:-}
STATS=${4:-}
rm -rf "$DIR/espeak" "$DIR/text" "$DIR/tok"
mkdir -p "$DIR/espeak/lib" "$DIR/espeak/bin" "$DIR/text" "$DIR/tok"
bin=$(command -v espeak-ng)
cp "$bin" "$DIR/espeak/espeak-ng.bin"
for l in $(ldd "$bin" | awk '/=>/{print $3}'); do
    case $(basename "$l") in libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*) ;; *) cp -L "$l" "$DIR/espeak/lib/" ;; esac
done
data=$(espeak-ng --version | sed 's/.*Data at: //')
cp -r "$data" "$DIR/espeak/espeak-ng-data"
cat > "$DIR/espeak/bin/espeak-ng" <<'W'
#!/bin/sh
d=$(cd "$(dirname "$0")/.." && pwd)
LD_LIBRARY_PATH=$d/lib ESPEAK_DATA_PATH=$d exec "$d/espeak-ng.bin" "$@"
W
chmod +x "$DIR/espeak/bin/espeak-ng"
cp "$WORK/text/train.jsonl" "$WORK/text/dev.jsonl" "$WORK/text/own.jsonl" "$DIR/text/"
cp "$WORK/tok/bpe.model" "$WORK/tok/tokens.txt" "$DIR/tok/"
rm -f "$DIR/text/extra.jsonl" "$DIR/feats_stats.npz"
[ -z "$EXTRA" ] || cp "$EXTRA" "$DIR/text/extra.jsonl"
[ -z "$STATS" ] || cp "$STATS" "$DIR/feats_stats.npz"
"$DIR/espeak/bin/espeak-ng" --version
tar czf "$DIR.tar.gz" -C "$DIR" .
du -sh "$DIR" "$DIR.tar.gz"
