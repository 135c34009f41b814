#!/bin/sh
# Recipe: a small multilingual OWSM-CTC model trained from scratch on synthetic speech.
#
#   sh recipes/owsm_ctc_tiny/run.sh                 all stages (about 3 h on 2 cores, 2.5 h of it training)
#   STAGE=4 STOP_STAGE=4 sh recipes/owsm_ctc_tiny/run.sh   one stage (training resumes itself)
#   SMOKE=1 WORK=/tmp/x sh recipes/owsm_ctc_tiny/run.sh    a few sentences, a few steps (CI)
#
# Stages (each one reads what the previous ones wrote under $WORK):
#   0 tools     check (and as root, install) espeak-ng, kakasi, opencc, sentencepiece, torch
#   1 text      Tatoeba pairs -> train/dev/test split (+ our own sentences), normalised;
#               with EXTRA=1, more training sentences per language from the translations
#               (.mo catalogs) of a fixed list of Debian packages and from Debian's fortune
#               cookie packages (local/debtext.py)
#   2 synth     espeak-ng speech: training renditions with seen voice variants and augmentation,
#               dev with seen variants, test with held-out variants (clean, WAV kept)
#   3 tokenizer spm_train unigram model and the OWSM token list; with LM=1 also the token
#               n-gram language model (local/ngram.py) on the training text and, with EXTRA=1,
#               every Debian sentence the rules keep (text/lm.jsonl, no caps)
#   4 train     tests/ref/owsm_ctc.py model, CTC + inter-CTC, checkpoints, resumable
#   5 export    best checkpoint -> ESPnet layout -> tools/convert_owsm_ctc.py -> GGUF (MODEL_TYPE)
#               -> with LM=1, tools/embed_lm.py puts the LM and its decoding settings in it
#   6 evaluate  `cochlea transcribe` on the test set: CER/WER, LID, BLEU -> RESULTS.md
#   7 samples   our own sentences, spoken by held-out voices -> samples/*.wav
#
# Environment: WORK (default recipes/owsm_ctc_tiny/work), DATA (../shared/data/tatoeba beside the
# repository), NJ (parallel jobs, default: CPUs), COCHLEA (the program, default build/cochlea),
# TRAIN_ARGS (extra train.py options), TRAIN_MINUTES (stop training after this many minutes;
# rerun stage 4 to continue), EXP (the training folder, default $WORK/exp; a continuation with
# TRAIN_ARGS="--init OLD/best.pth ..." needs a new one; stage 5 exports EXP's best.pth),
# INIT (stage 4 starts from these weights with a fresh optimiser and schedule: a GGUF model such
# as models/owsm-ctc-tiny.gguf, whose tokenizer must be stage 3's, or a state_dict .pth; ignored
# when EXP holds a checkpoint to resume),
# EXTRA (1, the default: stage 1 adds the Debian sentences, stage 2 speaks them into $WORK/extra
# and stage 4 trains on them too; 0: Tatoeba and our sentences only; SMOKE runs use 0),
# EXTRA_PER_LANG (at most this many Debian catalog sentences per language, default 1500),
# FORTUNES_PER_LANG (at most this many fortune cookie sentences per language, default 1500; 0: none),
# MANPAGES_PER_LANG (at most this many sentences per language from translated manual pages,
# default 0: none),
# HELP_PER_LANG (at most this many sentences per language from translated help pages,
# LibreOffice's and GNOME's; default 0: none),
# EXTRA_TOTAL_PER_LANG (at most this many Debian sentences per language over all sources,
# default 0: no limit; stage 2 speaks every sentence kept, 70-100 per second on 2 cores),
# EXTRA_REST_PER_LANG (with EXTRA_TOTAL_PER_LANG: at most this many per language of the sentences
# that cap left out go to text/extra_rest.jsonl, stage 2 speaks them into $WORK/extra_rest and
# stage 4 trains on them too: fresh sentences for a run continuing from a model trained on the
# first set; default 0: none),
# DECODE_WINDOW (the window, in seconds, the exported model decodes in: its speech_length; default
# 10, longer than the 6 s training window, see README "Decoding window"; 0: the training window),
# LM (1, the default: stages 1, 3 and 5 make and embed a token 4-gram language model, so that
# `cochlea transcribe` decodes with beam search, README "Beam search and language model"; 0: none),
# LM_ESSAY (stage 1: the Chinese words of Rime's frequency list, rime-essay, go into the LM's text
# as fragments counted frequency / LM_ESSAY times, debtext.py --essay; default 300; 0: none),
# LM_UNKNOWN (stage 1: debtext.py --unknown-chars for the LM's text, the languages whose sentences
# may hold a few characters their training text lacks; default kor:3; empty: none),
# LM_ORDER (default 4), LM_PRUNE (count cut-offs of orders 2, 3, ...: default 0,2,2, which keeps
# the model file under 30 MB), LM_WEIGHT, LM_BONUS, LM_BEAM (the decoding defaults stored in the
# model: LM weight 0.3, insertion bonus 2.5, beam 8, chosen on the dev set, RESULTS.md),
# MODEL_TYPE (weight matrices of the exported model: q8_0, the default, or f16),
# INSTALL=1 (stage 5 copies the model to models/, stage 7 writes samples/; off by default so
# that a rerun never overwrites the committed files by accident).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
PY=${PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || PY=python3
WORK=${WORK:-$here/work}
DATA=${DATA:-$top/../shared/data/tatoeba}
NJ=${NJ:-$(nproc 2>/dev/null || echo 2)}
STAGE=${STAGE:-0}
STOP_STAGE=${STOP_STAGE:-7}
SMOKE=${SMOKE:-0}
INSTALL=${INSTALL:-0}
EXTRA=${EXTRA:-}
EXTRA_PER_LANG=${EXTRA_PER_LANG:-1500}
FORTUNES_PER_LANG=${FORTUNES_PER_LANG:-1500}
MANPAGES_PER_LANG=${MANPAGES_PER_LANG:-0}
HELP_PER_LANG=${HELP_PER_LANG:-0}
EXTRA_TOTAL_PER_LANG=${EXTRA_TOTAL_PER_LANG:-0}
EXTRA_REST_PER_LANG=${EXTRA_REST_PER_LANG:-0}
DECODE_WINDOW=${DECODE_WINDOW:-10}
LM=${LM:-1}
LM_ESSAY=${LM_ESSAY:-300}
LM_UNKNOWN=${LM_UNKNOWN-kor:3}
LM_ORDER=${LM_ORDER:-4}
LM_PRUNE=${LM_PRUNE:-0,2,2}
LM_WEIGHT=${LM_WEIGHT:-0.3}
LM_BONUS=${LM_BONUS:-2.5}
LM_BEAM=${LM_BEAM:-8}
MODEL_TYPE=${MODEL_TYPE:-q8_0}
COCHLEA=${COCHLEA:-$top/build/cochlea}
TRAIN_ARGS=${TRAIN_ARGS:-}
TRAIN_MINUTES=${TRAIN_MINUTES:-0}
INIT=${INIT:-}
EXP=${EXP:-$WORK/exp}
L="$here/local"

[ -n "$EXTRA" ] || { [ "$SMOKE" = 1 ] && EXTRA=0 || EXTRA=1; }
if [ "$SMOKE" = 1 ]; then
    # a few sentences per language, a tiny network, a few steps: checks every stage runs
    text_opts="--max-pairs 6 --dev 1 --test 1"
    synth_train="--renditions 1 --eng-renditions 1 --own-renditions 1"
    vocab=400
    train_opts="--layers 2 --d-model 32 --heads 2 --ffn 64 --cgmlp 64 --prompt-ffn 32 --cross-layers 2 --interctc 1 --batch 4 --max-steps 6 --warmup 2 --valid-every 3 --ckpt-every 3 --valid-utts 1"
else
    text_opts=""
    synth_train="--renditions 2 --eng-renditions 1 --own-renditions 12"
    vocab=6000
    # model "C" of the README: the size the shipped model has
    train_opts="--d-model 192 --ffn 768 --cgmlp 768 --prompt-ffn 384 --average 8"
fi

stage() { [ "$STAGE" -le "$1" ] && [ "$STOP_STAGE" -ge "$1" ]; }
say() { echo "run.sh: stage $*" >&2; }
mkdir -p "$WORK"

if stage 0; then
    say "0: tools"
    missing=
    for c in espeak-ng:espeak-ng kakasi:kakasi opencc:opencc spm_train:sentencepiece groff:groff-base; do
        command -v "${c%%:*}" >/dev/null 2>&1 || missing="$missing ${c#*:}"
    done
    for m in torch:python3-torch numpy:python3-numpy yaml:python3-yaml sentencepiece:python3-sentencepiece; do
        "$PY" -c "import ${m%%:*}" 2>/dev/null || missing="$missing ${m#*:}"
    done
    if [ -n "$missing" ]; then
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
        else
            echo "run.sh: missing Debian packages:$missing" >&2
            exit 1
        fi
    fi
    [ -d "$DATA" ] || { echo "run.sh: no text data at $DATA (set DATA=)" >&2; exit 1; }
fi

if stage 1; then
    say "1: text"
    # shellcheck disable=SC2086
    "$PY" "$L/text.py" "$DATA" "$here/sentences.tsv" "$WORK/text" $text_opts
    if [ "$EXTRA" = 1 ]; then
        "$PY" "$L/debtext.py" "$WORK/text" "$WORK/debian" --per-lang "$EXTRA_PER_LANG" \
            --fortunes "$FORTUNES_PER_LANG" --manpages "$MANPAGES_PER_LANG" --help-pages "$HELP_PER_LANG" \
            --total "$EXTRA_TOTAL_PER_LANG" --rest "$EXTRA_REST_PER_LANG"
        if [ "$LM" = 1 ]; then
            # text only (never spoken), so no caps: every sentence the rules keep
            "$PY" "$L/debtext.py" "$WORK/text" "$WORK/debian" --per-lang 1000000 --fortunes 1000000 \
                --manpages 1000000 --help-pages 1000000 --wordnet 1000000 --ding 1000000 \
                --dialogue 1000000 --essay "$LM_ESSAY" --unknown-chars "$LM_UNKNOWN" --out lm.jsonl
        fi
    fi
    [ "$EXTRA" = 1 ] && [ "$LM" = 1 ] || rm -f "$WORK/text/lm.jsonl"
fi

if stage 2; then
    say "2: synth"
    # shellcheck disable=SC2086
    "$PY" "$L/synth.py" "$WORK/text/train.jsonl" "$WORK/train" $synth_train \
        --own "$WORK/text/own.jsonl" --augment --nj "$NJ" --seed 1
    "$PY" "$L/synth.py" "$WORK/text/dev.jsonl" "$WORK/dev" --renditions 1 --eng-renditions 1 --nj "$NJ" --seed 2
    "$PY" "$L/synth.py" "$WORK/text/test.jsonl" "$WORK/test" --voices test --renditions 1 \
        --eng-renditions 1 --wav --nj "$NJ" --seed 1
    if [ "$EXTRA" = 1 ]; then
        "$PY" "$L/synth.py" "$WORK/text/extra.jsonl" "$WORK/extra" --renditions 1 --eng-renditions 1 \
            --augment --nj "$NJ" --seed 3
        if [ "$EXTRA_REST_PER_LANG" != 0 ]; then
            "$PY" "$L/synth.py" "$WORK/text/extra_rest.jsonl" "$WORK/extra_rest" --renditions 1 \
                --eng-renditions 1 --augment --nj "$NJ" --seed 4
        fi
    fi
fi

if stage 3; then
    say "3: tokenizer"
    "$PY" "$L/tokenizer.py" "$WORK/text" "$WORK/tok" --vocab "$vocab"
    if [ "$LM" = 1 ]; then
        set -- "$WORK/text/train.jsonl"
        [ -f "$WORK/text/lm.jsonl" ] && set -- "$@" "$WORK/text/lm.jsonl"
        mkdir -p "$WORK/lm"
        "$PY" "$L/ngram.py" --tok "$WORK/tok" --out "$WORK/lm/lm.arpa" --order "$LM_ORDER" --prune "$LM_PRUNE" \
            --exclude "$WORK/text/dev.jsonl" --exclude "$WORK/text/test.jsonl" "$@"
    fi
fi

if stage 4; then
    say "4: train"
    init_opt=
    if [ -n "$INIT" ] && [ ! -f "$EXP/checkpoint.pt" ]; then
        [ -f "$INIT" ] || { echo "run.sh: INIT=$INIT: no such file" >&2; exit 1; }
        case "$INIT" in
        *.gguf)
            mkdir -p "$EXP"
            "$PY" "$L/from_gguf.py" "$INIT" "$EXP/init.pth" --tok "$WORK/tok"
            init_opt="--init $EXP/init.pth" ;;
        *) init_opt="--init $INIT" ;;
        esac
    fi
    set --
    if [ "$EXTRA" = 1 ]; then
        [ -f "$WORK/extra/index.jsonl" ] || { echo "run.sh: EXTRA=1 but no $WORK/extra (rerun stages 1-2, or EXTRA=0)" >&2; exit 1; }
        set -- --extra "$WORK/extra"
        if [ "$EXTRA_REST_PER_LANG" != 0 ]; then
            [ -f "$WORK/extra_rest/index.jsonl" ] || { echo "run.sh: EXTRA_REST_PER_LANG=$EXTRA_REST_PER_LANG but no $WORK/extra_rest (rerun stages 1-2)" >&2; exit 1; }
            set -- "$@" --extra "$WORK/extra_rest"
        fi
    fi
    # shellcheck disable=SC2086
    "$PY" "$L/train.py" --train "$WORK/train" --dev "$WORK/dev" --tok "$WORK/tok" --exp "$EXP" \
        "$@" --max-minutes "$TRAIN_MINUTES" $train_opts $init_opt $TRAIN_ARGS
fi

if stage 5; then
    say "5: export"
    ck="$WORK/export/ckpt"
    mkdir -p "$ck"
    cp "$EXP/config.yaml" "$EXP/bpe.model" "$EXP/feats_stats.npz" "$ck/"
    cp "$EXP/best.pth" "$ck/model.pth"
    if [ "$DECODE_WINDOW" != 0 ]; then
        # the exported speech_length: audio up to this long is one window (padded with silence, as
        # in training), longer audio is decoded in long form
        "$PY" "$L/decode_window.py" "$ck/config.yaml" "$DECODE_WINDOW"
    fi
    if [ "$LM" = 1 ]; then
        [ -f "$WORK/lm/lm.arpa" ] || { echo "run.sh: LM=1 but no $WORK/lm/lm.arpa (rerun stage 3, or LM=0)" >&2; exit 1; }
        "$PY" "$top/tools/convert_owsm_ctc.py" "$ck" "$WORK/export/am.gguf" --type "$MODEL_TYPE" --name owsm-ctc-tiny
        "$PY" "$top/tools/embed_lm.py" "$WORK/export/am.gguf" "$WORK/lm/lm.arpa" "$WORK/export/owsm-ctc-tiny.gguf" \
            --lm-weight "$LM_WEIGHT" --insertion-bonus "$LM_BONUS" --beam-size "$LM_BEAM"
        rm -f "$WORK/export/am.gguf"
    else
        "$PY" "$top/tools/convert_owsm_ctc.py" "$ck" "$WORK/export/owsm-ctc-tiny.gguf" --type "$MODEL_TYPE" \
            --name owsm-ctc-tiny
    fi
    size=$(wc -c <"$WORK/export/owsm-ctc-tiny.gguf")
    echo "run.sh: model $WORK/export/owsm-ctc-tiny.gguf: $size bytes" >&2
    if [ "$size" -gt 30000000 ]; then
        echo "run.sh: the model is larger than 30 MB (30,000,000 bytes)" >&2
        exit 1
    fi
    if [ "$INSTALL" = 1 ]; then
        cp "$WORK/export/owsm-ctc-tiny.gguf" "$top/models/owsm-ctc-tiny.gguf"
        echo "run.sh: installed $top/models/owsm-ctc-tiny.gguf" >&2
    fi
fi

if stage 6; then
    say "6: evaluate"
    [ -x "$COCHLEA" ] || { echo "run.sh: $COCHLEA not built (sh quickstart.sh, or set COCHLEA=)" >&2; exit 1; }
    "$PY" "$L/evaluate.py" "$WORK/export/owsm-ctc-tiny.gguf" "$WORK/test" "$WORK/eval" --cochlea "$COCHLEA" --threads "$NJ"
fi

if stage 7; then
    say "7: samples"
    out="$WORK/samples"
    [ "$INSTALL" = 1 ] && out="$top/samples"
    "$PY" "$L/samples.py" "$here/samples.tsv" "$WORK/text/own.jsonl" "$out"
fi
echo "run.sh: done ($WORK)" >&2
