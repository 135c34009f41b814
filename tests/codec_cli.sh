#!/bin/sh
# End-to-end tests of `cochlea codec` on the fixture model tests/fixtures/secodec-tiny.gguf:
# encode/decode/roundtrip/info, levels and bandwidth, entropy coding, token dumps, pipes, damaged
# and truncated .sec files (with and without --salvage), a model with other codebooks (fingerprint),
# build-codebook and se-stats. Environment as tests/cli.sh (COCHLEA, top_srcdir, top_builddir).
: "${top_srcdir:=.}" "${top_builddir:=.}" "${COCHLEA:=$top_builddir/cochlea}"
py=/usr/bin/python3
[ -x "$py" ] || py=python3

tmp_prefix=cochlea_codec . "$top_srcdir/tests/sh_setup.sh"
model=$top_srcdir/tests/fixtures/secodec-tiny.gguf
C="$COCHLEA"

expect_in() { # FILE TEXT DESCRIPTION
    if grep -q -- "$2" "$1"; then echo "ok: $3"; else
        fail "$3: '$2' not in $1"
        sed 's/^/    /' "$1" | head -5
    fi
}

# samples of a 16-bit mono WAV, with the standard library only
wav_frames() {
    "$py" -c 'import sys, wave; w = wave.open(sys.argv[1]); print(w.getnframes(), w.getframerate())' "$1"
}

# 3.3 s of a speech-like 16 kHz signal (gliding harmonic tone with an envelope), and 1.1 s at
# 44.1 kHz stereo (resampled and mixed by the frontend)
"$py" - "$tmp" <<'EOF'
import math, struct, sys, wave
def write(path, rate, ch, secs):
    n = int(rate * secs)
    w = wave.open(path, "wb")
    w.setnchannels(ch); w.setsampwidth(2); w.setframerate(rate)
    ph, frames = 0.0, bytearray()
    for i in range(n):
        t = i / rate
        ph += 2 * math.pi * (110 + 40 * math.sin(2 * math.pi * 0.7 * t)) / rate
        v = sum(math.sin(h * ph) / h for h in range(1, 7)) * (0.5 + 0.5 * math.sin(2 * math.pi * 3.1 * t)) * 0.2
        s = int(max(-1.0, min(1.0, v)) * 32767)
        frames += struct.pack("<h", s) * ch
    w.writeframes(bytes(frames)); w.close()
write(sys.argv[1] + "/in.wav", 16000, 1, 3.3)
write(sys.argv[1] + "/st.wav", 44100, 2, 1.1)
EOF
in=$tmp/in.wav

run 0 "encode" -- "$C" codec encode "$in" "$tmp/a.sec" -m "$model" --chunk-frames 50
expect_in "$err" "4 levels" "encode reports the levels and bitrate"
run 0 "info checks every chunk" -- "$C" codec info "$tmp/a.sec" -m "$model"
expect_in "$out" "samples: 52800 (3.300 s)" "info: original length"
expect_in "$out" "frames: 165 in 4 chunks of 50" "info: frames and chunks"
expect_in "$out" "chunks: all 4 intact" "info: CRCs"
expect_in "$out" "model: .* matches" "info: model fingerprint matches"
run 0 "decode" -- "$C" codec decode "$tmp/a.sec" "$tmp/a.wav" -m "$model"
[ "$(wav_frames "$tmp/a.wav")" = "52800 16000" ] && echo "ok: decoded length = input length" ||
    fail "decoded length $(wav_frames "$tmp/a.wav"), expected 52800 16000"
run 0 "roundtrip" -- "$C" codec roundtrip "$in" "$tmp/r.wav" -m "$model"
expect_in "$err" "SNR" "roundtrip prints the SNR"
cmp -s "$tmp/a.wav" "$tmp/r.wav" && echo "ok: roundtrip audio = encode + decode" || fail "roundtrip audio differs from encode+decode"
run nz "existing output is not overwritten" -- "$C" codec decode "$tmp/a.sec" "$tmp/a.wav" -m "$model"
expect_in "$err" "exists (use -f" "overwrite refusal message"
run 0 "-f overwrites" -- "$C" codec decode "$tmp/a.sec" "$tmp/a.wav" -m "$model" -f

# entropy coding: same tokens, same audio
run 0 "encode --entropy" -- "$C" codec encode "$in" "$tmp/e.sec" -m "$model" --chunk-frames 50 --entropy
run 0 "decode entropy-coded" -- "$C" codec decode "$tmp/e.sec" "$tmp/e.wav" -m "$model"
cmp -s "$tmp/a.wav" "$tmp/e.wav" && echo "ok: entropy-coded stream decodes to the same audio" || fail "entropy-coded audio differs"
run 0 "info entropy-coded" -- "$C" codec info "$tmp/e.sec"
expect_in "$out" "entropy coded" "info shows entropy coding"

# tokens: text and npy, and they match between runs
run 0 "encode --tokens txt" -- "$C" codec encode "$in" "$tmp/t.sec" -m "$model" --tokens "$tmp/t.txt"
[ "$(wc -l <"$tmp/t.txt")" -eq 165 ] && echo "ok: 165 token lines" || fail "token lines: $(wc -l <"$tmp/t.txt")"
[ "$(awk '{print NF}' "$tmp/t.txt" | sort -u)" = 4 ] && echo "ok: 4 tokens per line" || fail "tokens per line"
run 0 "encode --tokens npy" -- "$C" codec encode "$in" "$tmp/t2.sec" -m "$model" --tokens "$tmp/t.npy"
"$py" - "$tmp/t.npy" "$tmp/t.txt" <<'EOF' && echo "ok: npy tokens = text tokens" || fail "npy tokens"
import struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:6] == b"\x93NUMPY"
hl = struct.unpack("<H", b[8:10])[0]
hdr = b[10:10 + hl].decode()
assert "'<i4'" in hdr and "(165, 4)" in hdr, hdr
vals = struct.unpack("<%di" % (165 * 4), b[10 + hl:])
txt = [int(v) for line in open(sys.argv[2]) for v in line.split()]
assert list(vals) == txt
EOF

# fewer levels: lower bitrate, the same first-level tokens
run 0 "encode --levels 2" -- "$C" codec encode "$in" "$tmp/l2.sec" -m "$model" --levels 2 --tokens "$tmp/l2.txt"
cut -d' ' -f1-2 "$tmp/t.txt" | cmp -s - "$tmp/l2.txt" && echo "ok: 2-level tokens = first two levels" || fail "2-level tokens"
run 0 "info --levels 2" -- "$C" codec info "$tmp/l2.sec"
expect_in "$out" "levels: 2" "2 levels in the header"
run 0 "decode 2 levels" -- "$C" codec decode "$tmp/l2.sec" "$tmp/l2.wav" -m "$model"
run nz "--levels above the model's" -- "$C" codec encode "$in" "$tmp/x.sec" -m "$model" --levels 9
run 0 "--bandwidth" -- "$C" codec encode "$in" "$tmp/bw.sec" -m "$model" --bandwidth 0.6
run 0 "info --bandwidth" -- "$C" codec info "$tmp/bw.sec"
bits=$(sed -n 's/^bitrate: \([0-9.]*\) bit.s packed.*/\1/p' "$out")
"$py" -c "import sys; sys.exit(0 if 0 < float('$bits') <= 600 else 1)" && echo "ok: bandwidth respected ($bits bit/s)" ||
    fail "bandwidth 0.6 kbit/s gave $bits bit/s"
run nz "--bandwidth below one level" -- "$C" codec encode "$in" "$tmp/x.sec" -m "$model" --bandwidth 0.01

# pipes: stdin -> stdout encode, stdin decode; other rates and channels
"$C" codec encode - - -m "$model" --chunk-frames 50 <"$in" >"$tmp/p.sec" 2>"$err" && cmp -s "$tmp/p.sec" "$tmp/a.sec" &&
    echo "ok: encode from stdin to stdout = file encode" || fail "pipe encode differs"
"$C" codec decode - "$tmp/p.wav" -m "$model" <"$tmp/a.sec" 2>"$err" && cmp -s "$tmp/p.wav" "$tmp/a.wav" &&
    echo "ok: decode from stdin" || fail "decode from stdin"
run 0 "44.1 kHz stereo input" -- "$C" codec roundtrip "$tmp/st.wav" "$tmp/st16.wav" -m "$model"
[ "$(wav_frames "$tmp/st16.wav")" = "17600 16000" ] && echo "ok: resampled length" || fail "resampled length $(wav_frames "$tmp/st16.wav")"

# damage: a flipped byte in the third chunk (chunks of 50 frames), truncation, garbage
size=$(wc -c <"$tmp/a.sec")
"$py" - "$tmp/a.sec" "$tmp/bad.sec" "$tmp/trunc.sec" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
open(sys.argv[3], "wb").write(b[: len(b) - 7])
# the header is 44 + 4 L bytes; each chunk is a 16-byte header, payload, CRC: flip a byte late
# in the file, inside the third of the four chunks
pos = len(b) - (len(b) - 60) // 4 - 20
b[pos] ^= 0x10
open(sys.argv[2], "wb").write(b)
EOF
run nz "damaged file is refused" -- "$C" codec decode "$tmp/bad.sec" "$tmp/bad.wav" -m "$model"
expect_in "$err" "chunk" "the error names the chunk"
[ ! -e "$tmp/bad.wav" ] && echo "ok: no partial output without --salvage" || fail "partial output left behind"
run 3 "--salvage decodes the intact prefix (exit 3)" -- "$C" codec decode "$tmp/bad.sec" "$tmp/bad.wav" -m "$model" --salvage
n=$(wav_frames "$tmp/bad.wav" | cut -d' ' -f1)
case $n in 16000 | 32000) echo "ok: salvaged $n samples (whole chunks)" ;; *) fail "salvaged $n samples" ;; esac
"$py" - "$tmp/a.wav" "$tmp/bad.wav" "$n" <<'EOF' && echo "ok: salvaged audio = the start of the full decode" || fail "salvaged audio differs"
import sys, wave
a = wave.open(sys.argv[1]).readframes(int(sys.argv[3]))
b = wave.open(sys.argv[2]).readframes(int(sys.argv[3]))
# chunk seams: the salvaged decode sees fewer future frames, so compare away from its end
k = 2 * (int(sys.argv[3]) - 3200)
sys.exit(0 if a[:k] == b[:k] else 1)
EOF
run nz "info on a damaged file" -- "$C" codec info "$tmp/bad.sec"
expect_in "$out" "intact, then damage" "info reports the intact chunks"
run nz "truncated file" -- "$C" codec decode "$tmp/trunc.sec" "$tmp/tr.wav" -m "$model"
expect_in "$err" "truncated" "the error says truncated"
printf 'not a sec file at all' >"$tmp/junk.sec"
run nz "garbage input" -- "$C" codec info "$tmp/junk.sec"
: >"$tmp/empty.sec"
run nz "empty input" -- "$C" codec decode "$tmp/empty.sec" "$tmp/em.wav" -m "$model"

# another model (new codebooks from this audio): another fingerprint, refused
echo "$in" >"$tmp/list.txt"
run 0 "build-codebook from audio" -- "$C" codec build-codebook -m "$model" --audio-list "$tmp/list.txt" --levels 2 \
    --nodes 120 --k 6 -o "$tmp/other.gguf"
expect_in "$err" "H2" "build-codebook prints per-level statistics"
run 0 "the new model encodes" -- "$C" codec roundtrip "$in" "$tmp/o.wav" -m "$tmp/other.gguf"
run nz "decoding with another model is refused" -- "$C" codec decode "$tmp/a.sec" "$tmp/o2.wav" -m "$tmp/other.gguf"
expect_in "$err" "fingerprint" "the refusal names the fingerprint"
run 0 "se-stats of a model" -- "$C" codec se-stats -m "$tmp/other.gguf"
expect_in "$out" "2 levels" "se-stats lists the levels"
run 0 "log-mel features for se-stats" -- "$C" features "$in" -o "$tmp/f.npy" --no-mvn
run 0 "se-stats of features" -- "$C" codec se-stats --features "$tmp/f.npy" --nodes 200 --k 5
expect_in "$out" "331 frames x 80 dims" "se-stats reads the features"
run nz "build-codebook: features of the wrong width" -- "$C" codec build-codebook -m "$model" --features "$tmp/f.npy" \
    -o "$tmp/x.gguf"
expect_in "$err" "80 dims per frame, the model's latents have 32" "width mismatch message"

# quantised network: the codebooks are kept, tokens of the first level unchanged for this input
run 0 "quantize a codec to bf16" -- "$COCHLEA" quantize "$model" "$tmp/q.gguf" --type bf16
run 0 "se-stats of the quantised model" -- "$C" codec se-stats -m "$tmp/q.gguf"
"$C" codec se-stats -m "$model" >"$tmp/s1.txt" 2>/dev/null
tail -n +2 "$out" | cmp -s - "$(tail -n +2 "$tmp/s1.txt" >"$tmp/s1b.txt"; echo "$tmp/s1b.txt")" &&
    echo "ok: codebooks unchanged by quantize" || fail "quantize changed the codebooks"
run 0 "the bf16 model round-trips" -- "$C" codec roundtrip "$in" "$tmp/q.wav" -m "$tmp/q.gguf"

# usage errors
run 2 "unknown subcommand" -- "$C" codec frobnicate x y
run 2 "encode without a model" -- "$C" codec encode "$in" "$tmp/x.sec"
run nz "a non-codec model" -- "$C" codec encode "$in" "$tmp/x.sec" -m "$tmp/f.npy"
run 0 "help" -- "$C" codec --help
expect_in "$out" "build-codebook" "help lists build-codebook"

if [ "$failed" -ne 0 ]; then
    echo "$failed check(s) failed"
    exit 1
fi
echo "all codec CLI checks passed"
