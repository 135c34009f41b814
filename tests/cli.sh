#!/bin/sh
# End-to-end tests of the cochlea program: help, --version, errors, info, quantize.
# Environment (set by make check): COCHLEA (the binary), PYTHON (with Debian's numpy),
# top_srcdir, top_builddir. Each check prints "ok" or "FAIL"; the exit status is the verdict.
: "${top_srcdir:=.}" "${top_builddir:=.}" "${PYTHON:=/usr/bin/python3}" "${COCHLEA:=$top_builddir/cochlea}"

tmp_prefix=cochlea_cli . "$top_srcdir/tests/sh_setup.sh"

# ---- help, version, unknown commands and options ---------------------------------------------

run 0 "--version" -- "$COCHLEA" --version
grep -q '^cochlea [0-9][0-9.]*' "$out" || fail "--version prints 'cochlea X.Y.Z'"
run 0 "help" -- "$COCHLEA" help
has "$out" "info" "help lists info"
has "$out" "quantize" "help lists quantize"
run 0 "--help" -- "$COCHLEA" --help
has "$out" "usage: cochlea COMMAND" "--help"
run 2 "no arguments" -- "$COCHLEA"
has "$err" "usage: cochlea" "no arguments prints the usage on stderr"
run 0 "help info" -- "$COCHLEA" help info
has "$out" "usage: cochlea info" "help info"
run 0 "info --help" -- "$COCHLEA" info --help
has "$out" "--ggml-order" "info --help"
run 0 "help quantize" -- "$COCHLEA" help quantize
has "$out" "usage: cochlea quantize" "help quantize"
has "$out" "not a multiple of 32" "quantize help documents the q8_0 fallback"
run 0 "quantize -h" -- "$COCHLEA" quantize -h
has "$out" "--type" "quantize -h"
run nz "unknown command" -- "$COCHLEA" frobnicate
has "$err" "cochlea: error: unknown command 'frobnicate'" "unknown command message"
run nz "help for an unknown command" -- "$COCHLEA" help frobnicate
has "$err" "cochlea: error: unknown command 'frobnicate'" "help unknown command message"
run 2 "info: unknown option" -- "$COCHLEA" info --bogus
has "$err" "cochlea: error: unknown option '--bogus'" "info unknown option"
has "$err" "cochlea help info" "usage errors point at the help"
run 2 "info: no model" -- "$COCHLEA" info
has "$err" "cochlea: error: no model file given" "info without a model"
run 2 "quantize: unknown option" -- "$COCHLEA" quantize --frob a b
has "$err" "cochlea: error: unknown option '--frob'" "quantize unknown option"
run 2 "quantize: --type without a value" -- "$COCHLEA" quantize a b --type
has "$err" "option --type needs a value" "quantize --type without value"
run 2 "quantize: bad --type" -- "$COCHLEA" quantize a b --type q4_0
has "$err" "--type must be q8_0, f16, bf16 or f32, got 'q4_0'" "quantize bad type"
run 2 "quantize: no output" -- "$COCHLEA" quantize a.gguf
has "$err" "no output file given" "quantize without output"
run 2 "-t with a bad value" -- "$COCHLEA" info -t many x.gguf
has "$err" "--threads expects an integer" "bad --threads value"

# ---- info/quantize on bad files ----------------------------------------------------------------

run 1 "info: missing file" -- "$COCHLEA" info "$tmp/absent.gguf"
has "$err" "cochlea: error: $tmp/absent.gguf: cannot open" "missing file message"
printf 'GGML this is not a model file at all' >"$tmp/bad.gguf"
run 1 "info: not a GGUF file" -- "$COCHLEA" info "$tmp/bad.gguf"
has "$err" "cochlea: error: $tmp/bad.gguf: not a GGUF file (magic 47 47 4d 4c" "bad magic message"
printf 'GGUF\003\000\000\000\001\000\000\000\000\000\000\000' >"$tmp/trunc.gguf"
run 1 "info: truncated header" -- "$COCHLEA" info "$tmp/trunc.gguf"
has "$err" "file ends inside the header" "truncated header message"
run 1 "quantize: missing input" -- "$COCHLEA" quantize "$tmp/absent.gguf" "$tmp/never.gguf"
has "$err" "cannot open" "quantize missing input"
[ ! -e "$tmp/never.gguf" ] && [ ! -e "$tmp/never.gguf.part" ] || fail "quantize of a missing input left an output"

# ---- info and quantize on a small model written by tools/gguf.py ----------------------------

if ! "$PYTHON" -c 'import numpy' 2>/dev/null; then
    echo "SKIP: info/quantize on a model ($PYTHON has no numpy; Debian: apt-get install python3-numpy)"
else
    model="$tmp/tiny.gguf"
    "$PYTHON" - "$top_srcdir/tools" "$model" <<'EOF' || fail "writing the test model"
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import gguf
rng = np.random.RandomState(3)
w = gguf.GGUFWriter()
w.add_string("general.architecture", "owsm_ctc")
w.add_string("general.name", "tiny cli model")
w.add_u32("owsm_ctc.n_mels", 80)
w.add_u32("owsm_ctc.block_count", 2)
w.add_array("owsm_ctc.cross_attention_layers", list(range(1, 21)), "i32")
w.add_f32("owsm_ctc.layer_norm_eps", 1e-5)
w.add_string("tokenizer.ggml.model", "sentencepiece")
w.add_string_array("tokenizer.ggml.tokens", ["<blank>", "<unk>", "<sos/eos>", "a", "b"])
w.add_array("tokenizer.ggml.scores", [0.0] * 5, "f32")
w.add_u32("tokenizer.ggml.unknown_token_id", 1)
w.add_u32("tokenizer.ggml.eos_token_id", 2)
w.add_string("tokenizer.sentencepiece.model", bytes(range(256)) * 3)
w.add_string("general.license", "cc-by-4.0")
w.add_tensor("encoder.encoders.0.feed_forward.w_1.weight", rng.randn(48, 96).astype(np.float32))
w.add_tensor("encoder.encoders.0.feed_forward.w_1.bias", rng.randn(48).astype(np.float32))
w.add_tensor("encoder.encoders.0.norm_ff.weight", np.ones(96, dtype=np.float32))
w.add_tensor("encoder.embed.conv.0.weight", rng.randn(8, 1, 3, 3).astype(np.float32))
w.add_tensor("ctc.ids", np.arange(4, dtype=np.int32), "i32")
w.write(sys.argv[2])
EOF
    run 0 "info on a model" -- "$COCHLEA" info "$model"
    has "$out" "architecture:  owsm_ctc" "info: architecture"
    has "$out" "name:          tiny cli model" "info: name"
    has "$out" "hyperparameters (owsm_ctc.*):" "info: hyperparameter section"
    grep -q '^  owsm_ctc.n_mels  *80$' "$out" || fail "info: owsm_ctc.n_mels = 80"
    grep -q '^  owsm_ctc.layer_norm_eps  *1e-05$' "$out" || fail "info: f32 printed shortest (1e-05)"
    has "$out" "[1, 2, 3, 4, 5, 6, 7, 8, ...] (20 x i32)" "info: long arrays are cut"
    grep -q '^  vocabulary size  *5$' "$out" || fail "info: vocabulary size"
    grep -q '^  eos_token_id  *2 (<sos/eos>)$' "$out" || fail "info: special ids with their token"
    grep -q '^  sentencepiece.model  *768 bytes$' "$out" || fail "info: raw model shown as a size"
    has "$out" "general.license" "info: other keys"
    has "$out" "tensors (shape in PyTorch order, outermost first):" "info: shape order stated"
    grep -q '^  encoder.encoders.0.feed_forward.w_1.weight  *f32  *\[48, 96\]  *18432$' "$out" ||
        fail "info: tensor row (name, type, PyTorch shape, bytes)"
    grep -q '^  encoder.embed.conv.0.weight  *f32  *\[8, 1, 3, 3\]  *288$' "$out" || fail "info: 4-D shape"
    has "$out" "total: 5 tensors, 4828 parameters (4.83 K), 19312 bytes of tensor data (18.9 KiB) [f32 4, i32 1]" \
        "info: totals"
    hasnt "$out" "<unk>\", \"<sos" "info: the vocabulary is not dumped"
    run 0 "info --ggml-order" -- "$COCHLEA" info --ggml-order "$model"
    has "$out" "tensors (shape in ggml order, ne[0] first):" "info --ggml-order header"
    grep -q '^  encoder.encoders.0.feed_forward.w_1.weight  *f32  *\[96, 48\] ' "$out" || fail "info: ggml order shape"
    run 0 "info --no-tensors" -- "$COCHLEA" info --no-tensors "$model"
    hasnt "$out" "feed_forward.w_1.weight" "info --no-tensors"
    has "$out" "total: 5 tensors" "info --no-tensors keeps the totals"
    run 0 "info -q" -- "$COCHLEA" info -q -m "$model"
    [ "$(wc -l <"$out")" -eq 1 ] || fail "info -q prints one line"
    has "$out" "$model: 5 tensors, 4828 parameters" "info -q summary"

    cp "$model" "$tmp/before.gguf"
    for t in q8_0 f16 bf16 f32; do
        q="$tmp/tiny-$t.gguf"
        run 0 "quantize --type $t" -- "$COCHLEA" quantize "$model" "$q" --type "$t"
        has "$out" "$model (20.7 KiB) -> $q" "quantize $t summary: sizes"
        has "$out" "5 tensors: " "quantize $t summary: counts"
        run 0 "info on the $t model" -- "$COCHLEA" info "$q"
        grep -q "^  encoder.encoders.0.feed_forward.w_1.weight  *$t  *\[48, 96\] " "$out" ||
            fail "quantize $t: the weight matrix is $t"
        grep -q '^  encoder.encoders.0.feed_forward.w_1.bias  *f32 ' "$out" || fail "quantize $t: bias stays f32"
        grep -q '^  encoder.encoders.0.norm_ff.weight  *f32 ' "$out" || fail "quantize $t: norm stays f32"
        grep -q '^  ctc.ids  *i32 ' "$out" || fail "quantize $t: integer tensor unchanged"
        grep -q '^  owsm_ctc.n_mels  *80$' "$out" || fail "quantize $t: keys copied"
        grep -q '^  vocabulary size  *5$' "$out" || fail "quantize $t: tokenizer copied"
    done
    "$COCHLEA" quantize "$model" "$tmp/tiny-q8_0.gguf" >"$out"
    has "$out" "5 tensors: 1 weight matrices -> q8_0, 1 -> f16 (ne[0] not a multiple of 32), 2 -> f32 (1-D, norms, biases), 1 unchanged (integer or --keep)" \
        "q8_0 summary counts"
    "$COCHLEA" info "$tmp/tiny-q8_0.gguf" >"$out"
    has "$out" "file type:     mostly q8_0 (7)" "q8_0 file type"
    grep -q '^  encoder.embed.conv.0.weight  *f16 ' "$out" || fail "q8_0: kernel width 3 falls back to f16"
    "$COCHLEA" info "$tmp/tiny-bf16.gguf" >"$out"
    has "$out" "file type:     mostly bf16 (32)" "bf16 file type"
    grep -q '^  encoder.embed.conv.0.weight  *bf16 ' "$out" || fail "bf16: kernels converted"
    run 0 "quantize -m/-o with --keep" -- "$COCHLEA" quantize -q -m "$model" -o "$tmp/keep.gguf" --keep '*.w_1.weight'
    [ ! -s "$out" ] || fail "quantize -q prints nothing"
    "$COCHLEA" info "$tmp/keep.gguf" >"$out"
    grep -q '^  encoder.encoders.0.feed_forward.w_1.weight  *f32 ' "$out" || fail "--keep keeps the tensor"
    run 1 "quantize refuses to overwrite its input" -- "$COCHLEA" quantize "$model" "$model" --type f16
    has "$err" "refusing to overwrite the input file" "overwrite message"
    run 1 "... also through another path" -- "$COCHLEA" quantize "$model" "$tmp/./tiny.gguf"
    cmp -s "$model" "$tmp/before.gguf" || fail "the input model was modified"
fi

# ---- summary (keep this section last) -------------------------------------------------------

if [ "$failed" -ne 0 ]; then
    echo "$failed check(s) failed"
    exit 1
fi
echo "all cli checks passed"
exit 0
