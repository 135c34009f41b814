#!/bin/sh
# Recipe: a small llama-architecture text LM and a ~10x smaller draft model (same tokenizer) for
# the decoder runtime and the speculative decoders (issue 8), trained from scratch on
# public-domain English text from Debian packages (KJV and World English Bible).
#
#   sh recipes/textlm_tiny/run.sh                          all stages (about 95 min on 2 quiet cores)
#   STAGE=3 STOP_STAGE=3 sh recipes/textlm_tiny/run.sh     one stage (training resumes itself)
#   SMOKE=1 WORK=/tmp/x sh recipes/textlm_tiny/run.sh      a few chapters, tiny models, a few steps (CI)
#
# Stages (each one reads what the previous ones wrote under $WORK):
#   0 tools     check (and as root, install) bible-kjv (+ bible-kjv-text), sword-text-web, diatheke,
#               sentencepiece, python3-sentencepiece, python3-torch, python3-numpy
#   1 text      KJV + WEB -> one chapter per line, normalised; split by book (local/text.py)
#   2 tokenizer spm_train BPE (identity normaliser, byte fallback: what src/lm/vocab.c matches
#               exactly), then the token streams (local/encode.py)
#   3 train     target and draft model, tests/ref/llama.py's computation (local/train.py),
#               AdamW + cosine, checkpoints, resumable, TRAIN_MINUTES per run
#   4 export    tools/gguf.py, llama.cpp names + tokenizer.ggml.* (local/export.py); weights and
#               logits read back checked; with the cochlea program, checked in C (local/check_c.py)
#   5 evaluate  held-out perplexity per token / byte / character, PyTorch and (when built) the C
#               runtime (local/evaluate.py) -> $WORK/eval/RESULTS.md
#
# Environment: WORK (default recipes/textlm_tiny/work), COCHLEA (the program, default
# build/cochlea), LM_DRIVER / VOCAB_DRIVER (tests/test_lm, tests/test_lm_vocab of that build, used
# when present), DEVICE (cpu or cuda), THREADS (default: CPUs), TRAIN_MINUTES (stop each training
# run after this many minutes; rerun stage 3 to continue), TARGET_ARGS / DRAFT_ARGS (extra
# train.py options), WTYPE (f16), INSTALL=1 (stage 4 copies the models to models/ and stage 5
# RESULTS.md to the recipe; off by default so a rerun never overwrites committed files).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
PY=${PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || PY=python3
WORK=${WORK:-$here/work}
STAGE=${STAGE:-0}
STOP_STAGE=${STOP_STAGE:-5}
SMOKE=${SMOKE:-0}
INSTALL=${INSTALL:-0}
COCHLEA=${COCHLEA:-$top/build/cochlea}
bdir=$(dirname "$COCHLEA")
LM_DRIVER=${LM_DRIVER:-$bdir/tests/test_lm}
VOCAB_DRIVER=${VOCAB_DRIVER:-$bdir/tests/test_lm_vocab}
DEVICE=${DEVICE:-cpu}
THREADS=${THREADS:-$(nproc 2>/dev/null || echo 2)}
TRAIN_MINUTES=${TRAIN_MINUTES:-0}
TARGET_ARGS=${TARGET_ARGS:-}
DRAFT_ARGS=${DRAFT_ARGS:-}
WTYPE=${WTYPE:-f16}
L="$here/local"

if [ "$SMOKE" = 1 ]; then
    # KJV only, 10 chapters; vocabulary 600 (256 byte pieces + 3 specials + merges); tiny models
    text_opts="--smoke"
    vocab=600
    target_opts="--preset smoke --batch 4 --max-steps 6 --warmup 2 --ckpt-every 3 --valid-every 3 --valid-batches 1 --log-every 1"
    draft_opts="--preset smoke-draft --batch 4 --max-steps 4 --warmup 1 --ckpt-every 2 --valid-every 2 --valid-batches 1 --log-every 1"
    WTYPE=f32
    eval_opts="--max-docs 3"
else
    text_opts=""
    vocab=4000
    # sizes and step counts: README.md ("Sizes and time")
    target_opts="--preset target --batch 16 --lr 1.5e-3 --warmup 60 --max-steps 1000 --ckpt-every 50 --valid-every 100"
    draft_opts="--preset draft --batch 16 --lr 2e-3 --warmup 50 --max-steps 600 --ckpt-every 100 --valid-every 100"
    eval_opts=""
fi

stage() { [ "$STAGE" -le "$1" ] && [ "$STOP_STAGE" -ge "$1" ]; }
say() { echo "run.sh: stage $*" >&2; }
mkdir -p "$WORK"

if stage 0; then
    say "0: tools"
    missing=
    need="bible:bible-kjv spm_train:sentencepiece"
    [ "$SMOKE" = 1 ] || need="$need diatheke:diatheke"
    for c in $need; do
        command -v "${c%%:*}" >/dev/null 2>&1 || missing="$missing ${c#*:}"
    done
    [ -f /usr/lib/bible.data ] || missing="$missing bible-kjv-text"
    [ "$SMOKE" = 1 ] || [ -f /usr/share/sword/mods.d/engWEB2015eb.conf ] || missing="$missing sword-text-web"
    for m in torch:python3-torch numpy:python3-numpy sentencepiece:python3-sentencepiece; do
        "$PY" -c "import ${m%%:*}" 2>/dev/null || missing="$missing ${m#*:}"
    done
    if [ -n "$missing" ]; then
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
        else
            echo "run.sh: missing Debian packages:$missing (as root: apt-get install$missing)" >&2
            exit 1
        fi
    fi
fi

if stage 1; then
    say "1: text"
    # shellcheck disable=SC2086
    "$PY" "$L/text.py" "$WORK/text" $text_opts
fi

if stage 2; then
    say "2: tokenizer"
    mkdir -p "$WORK/tok"
    spm_train --input="$WORK/text/spm_train.txt" --model_prefix="$WORK/tok/spm" --model_type=bpe \
        --vocab_size="$vocab" --normalization_rule_name=identity --remove_extra_whitespaces=false \
        --add_dummy_prefix=true --byte_fallback=true --character_coverage=1.0 --max_sentence_length=20000 \
        --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --num_threads="$THREADS" --minloglevel=2 >"$WORK/tok/spm_train.log" 2>&1 \
        || { tail -n 20 "$WORK/tok/spm_train.log" >&2; exit 1; }
    "$PY" "$L/encode.py" "$WORK/text" "$WORK/tok"
fi

if stage 3; then
    say "3: train"
    # shellcheck disable=SC2086
    "$PY" "$L/train.py" --tok "$WORK/tok" --exp "$WORK/exp/target" --device "$DEVICE" --threads "$THREADS" \
        --max-minutes "$TRAIN_MINUTES" $target_opts $TARGET_ARGS
    [ -s "$WORK/exp/target/model.pt" ] || { echo "run.sh: target training not finished; rerun stage 3" >&2; exit 0; }
    # shellcheck disable=SC2086
    "$PY" "$L/train.py" --tok "$WORK/tok" --exp "$WORK/exp/draft" --device "$DEVICE" --threads "$THREADS" \
        --max-minutes "$TRAIN_MINUTES" $draft_opts $DRAFT_ARGS
    [ -s "$WORK/exp/draft/model.pt" ] || { echo "run.sh: draft training not finished; rerun stage 3" >&2; exit 0; }
fi

if stage 4; then
    say "4: export"
    mkdir -p "$WORK/export"
    for m in target:textlm-tiny draft:textlm-tiny-draft; do
        "$PY" "$L/export.py" "$WORK/exp/${m%%:*}" "$WORK/tok/spm.model" "$WORK/export/${m#*:}.gguf" \
            --type "$WTYPE" --name "${m#*:}" --tokens-from "$WORK/tok/valid.npy"
    done
    size=$(wc -c <"$WORK/export/textlm-tiny.gguf")
    echo "run.sh: model $WORK/export/textlm-tiny.gguf: $size bytes" >&2
    if [ "$size" -gt 31457280 ]; then
        echo "run.sh: the model is larger than 30 MiB" >&2
        exit 1
    fi
    if [ -x "$COCHLEA" ]; then
        set --
        [ -x "$VOCAB_DRIVER" ] && set -- "$@" --vocab-driver "$VOCAB_DRIVER"
        [ -x "$LM_DRIVER" ] && set -- "$@" --lm-driver "$LM_DRIVER"
        for m in textlm-tiny textlm-tiny-draft; do
            "$PY" "$L/check_c.py" "$WORK/export/$m.gguf" "$WORK/tok/spm.model" --cochlea "$COCHLEA" "$@"
        done
    else
        echo "run.sh: $COCHLEA not built: C checks skipped (set COCHLEA=)" >&2
    fi
    if [ "$INSTALL" = 1 ]; then
        mkdir -p "$top/models"
        cp "$WORK/export/textlm-tiny.gguf" "$WORK/export/textlm-tiny-draft.gguf" "$top/models/"
        echo "run.sh: installed $top/models/textlm-tiny.gguf and textlm-tiny-draft.gguf" >&2
    fi
fi

if stage 5; then
    say "5: evaluate"
    set --
    [ -x "$LM_DRIVER" ] && set -- "$@" --lm-driver "$LM_DRIVER"
    # shellcheck disable=SC2086
    "$PY" "$L/evaluate.py" --work "$WORK" --out "$WORK/eval" --threads "$THREADS" $eval_opts "$@"
    if [ "$INSTALL" = 1 ]; then
        cp "$WORK/eval/RESULTS.md" "$here/RESULTS.md"
        echo "run.sh: wrote $here/RESULTS.md" >&2
    fi
fi
echo "run.sh: done ($WORK)" >&2
