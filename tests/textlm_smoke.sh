#!/bin/sh
# textlm_smoke.sh - CI smoke test of recipes/textlm_tiny: every stage (text from the KJV, the
# SentencePiece tokenizer, target and draft training, GGUF export, evaluation) on ten chapters
# with two tiny models trained for a few steps, so the recipe cannot rot unnoticed. The numbers
# it produces mean nothing; what is checked: each stage writes what the next one needs, training
# resumes from its checkpoint, the exported GGUFs read back with exactly the trained weights
# (export.py), load and generate in the C runtime with the same prompt ids and greedy tokens as
# the PyTorch reference, the tokenizer round-trips sentences through src/lm/vocab.c
# (local/check_c.py), and the C perplexity equals PyTorch's (evaluate.py).
# Needs bible-kjv (the KJV text): installed here when missing and running as root, else skip (77).
# Environment (from make check): top_srcdir, top_builddir, COCHLEA, PYTHON.
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}" "${top_builddir:=.}" "${PYTHON:=/usr/bin/python3}"
: "${COCHLEA:=$top_builddir/cochlea}"
for m in torch numpy sentencepiece; do
    if ! "$PYTHON" -c "import $m" 2>/dev/null; then
        echo "SKIP: $PYTHON cannot import $m"
        exit 77
    fi
done
if ! command -v bible >/dev/null 2>&1 || [ ! -f /usr/lib/bible.data ] || ! command -v spm_train >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing bible-kjv bible-kjv-text sentencepiece"
        apt-get update -qq >/dev/null 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bible-kjv bible-kjv-text \
            sentencepiece >/dev/null 2>&1
    fi
    if ! command -v bible >/dev/null 2>&1 || ! command -v spm_train >/dev/null 2>&1; then
        echo "SKIP: bible-kjv / sentencepiece not installed (as root: apt-get install bible-kjv sentencepiece)"
        exit 77
    fi
fi
tmp_prefix=cochlea_textlm . "$top_srcdir/tests/sh_setup.sh"
run="$top_srcdir/recipes/textlm_tiny/run.sh"
w="$tmp/work"
env="SMOKE=1 WORK=$w PYTHON=$PYTHON COCHLEA=$COCHLEA THREADS=2"

if ! env $env STAGE=1 sh "$run" >"$tmp/log" 2>&1; then
    tail -n 40 "$tmp/log"
    echo "FAIL: run.sh (SMOKE=1) failed"
    exit 1
fi
echo "ok: run.sh SMOKE=1 ran stages 1-5"
for f in text/train.txt text/valid.txt text/test.txt text/spm_train.txt tok/spm.model tok/train.npy tok/test.npy \
    exp/target/checkpoint.pt exp/target/model.pt exp/draft/model.pt export/textlm-tiny.gguf \
    export/textlm-tiny-draft.gguf eval/RESULTS.md eval/results.json; do
    [ -s "$w/$f" ] && echo "ok: $f" || fail "stage output $f missing or empty"
done
# the C checks ran (check_c.py prints "ok   ..." lines, evaluate.py the C perplexity)
n_ok=$(grep -c '^ok   ' "$tmp/log")
grep -q '^FAIL ' "$tmp/log" && fail "check_c.py: $(grep '^FAIL ' "$tmp/log" | head -3)"
[ "$n_ok" -ge 8 ] && echo "ok: $n_ok C checks passed (load, prompt ids, greedy tokens, tokenizer round trip)" \
    || fail "only $n_ok C checks ran"
grep -q 'round trip of' "$tmp/log" && echo "ok: lm_vocab round trip checked" || fail "tokenizer round trip not checked"
[ "$(grep -c 'C [0-9.]* per token' "$tmp/log")" -eq 2 ] && echo "ok: C perplexity equals PyTorch's" \
    || fail "C perplexity not computed (tests/test_lm missing?)"
# the held-out split is the held-out book, and no test chapter is in the training text
if grep -q -F -x -f "$w/text/test.txt" "$w/text/train.txt"; then
    fail "a test chapter is also in the training split"
else
    echo "ok: train and test are disjoint"
fi
# resuming: a second stage-3 run starts from the checkpoints and stops at once
if env $env STAGE=3 STOP_STAGE=3 sh "$run" >"$tmp/log2" 2>&1 && grep -q "resumed at step 6" "$tmp/log2" \
    && grep -q "resumed at step 4" "$tmp/log2"; then
    echo "ok: training resumes from its checkpoint"
else
    fail "training did not resume"
    tail -n 20 "$tmp/log2"
fi
# a run stopped after 3 steps and resumed ends with the same weights as 6 steps in one run
# (batches are seeded by step, the optimiser state is in the checkpoint)
r="$tmp/resume"
opts="--tok $w/tok --preset smoke --batch 4 --warmup 2 --max-steps 6 --ckpt-every 100 --valid-every 100 --threads 1"
tr="$top_srcdir/recipes/textlm_tiny/local/train.py"
if "$PYTHON" "$tr" $opts --exp "$r/a" >/dev/null 2>&1 && "$PYTHON" "$tr" $opts --exp "$r/b" --stop-after 3 >/dev/null 2>&1 \
    && [ ! -f "$r/b/model.pt" ] && "$PYTHON" "$tr" $opts --exp "$r/b" >"$tmp/log3" 2>&1 \
    && grep -q "resumed at step 3" "$tmp/log3" && "$PYTHON" - "$r" <<'PY'
import sys, torch
a, b = torch.load(sys.argv[1] + "/a/model.pt"), torch.load(sys.argv[1] + "/b/model.pt")
d = max(float((a[k] - b[k]).abs().max()) for k in a)
print("interrupted vs uninterrupted training: max |dw| %g" % d)
sys.exit(0 if d < 1e-6 else 1)
PY
then
    echo "ok: a run stopped at step 3 and resumed equals an uninterrupted one"
else
    fail "resumed training differs from uninterrupted training"
fi
[ "$failed" -eq 0 ] || exit 1
exit 0
