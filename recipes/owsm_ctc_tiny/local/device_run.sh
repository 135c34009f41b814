#!/bin/bash
# Continue training the shipped model on a lent GPU machine, inside one device call.
# Run from the repository root with the bundle of local/bundle_espeak.sh in .gpu/ (or packed as
# .gpu.tar.gz, named in the call's `carry`) and OUT set to a results folder. It starts from INIT
# (default: the committed models/owsm-ctc-tiny.gguf, through local/from_gguf.py, which checks
# the bundle's tokenizer against the model's), re-synthesises the core training set and the dev
# set exactly as stage 2 does (seeded), speaks the bundle's text/extra.jsonl once each (seed
# SEED), trains with a cosine schedule that ends BUDGET seconds after the start, and leaves in
# OUT log.txt and weights.tar.NN (split at 15 MB): train.log, config.yaml and f16 copies of
# last.pth and average.pth (the mean of the last AVERAGE validations).
# Env: OUT, DEV (cuda), NJ (synth jobs, 16), BUDGET (s, 540), HEAD (first lines of each text only:
# a quick local rehearsal), BATCH (96), LR (5e-4), WARMUP (150), SEED (8), VALID (250),
# AVERAGE (6), W (work folder, /tmp/w), LAYERS and CROSS (the encoder layers and the ones with
# cross-attention: 8 and 3,6, the committed model's since run 21).
set -u
PY=${PY:-python3}
T0=$(date +%s)
DEV=${DEV:-cuda}; NJ=${NJ:-16}; BUDGET=${BUDGET:-540}; HEAD=${HEAD:-0}; BATCH=${BATCH:-96}
LR=${LR:-5e-4}; WARMUP=${WARMUP:-150}; SEED=${SEED:-8}; VALID=${VALID:-250}; AVERAGE=${AVERAGE:-6}
INIT=${INIT:-models/owsm-ctc-tiny.gguf}
LAYERS=${LAYERS:-8}; CROSS=${CROSS:-3,6}
G=$PWD/.gpu
[ -d "$G" ] || { mkdir -p "$G" && tar xzf "$G.tar.gz" -C "$G"; } || { echo "no .gpu bundle" >&2; exit 1; }
export PATH=$G/espeak/bin:$PATH PYTHONUNBUFFERED=1
R=recipes/owsm_ctc_tiny/local
W=${W:-/tmp/w}; rm -rf "$W"; mkdir -p "$W/text" "$W/exp"
L=$OUT/log.txt
el() { echo $(( $(date +%s) - T0 )); }
say() { echo "[$(el) s] $*" | tee -a "$L"; }
say "start: $(nproc) cpus"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv 2>&1 | tee -a "$L"
$PY -c "import torch,numpy,sentencepiece,yaml;print('torch',torch.__version__,'cuda',torch.cuda.is_available())" 2>&1 | tee -a "$L"
for s in train dev own extra; do
    [ -f "$G/text/$s.jsonl" ] || continue
    if [ "$HEAD" -gt 0 ]; then head -n "$HEAD" "$G/text/$s.jsonl" > "$W/text/$s.jsonl"; else cp "$G/text/$s.jsonl" "$W/text/"; fi
done
case "$INIT" in
    *.gguf) $PY $R/from_gguf.py "$INIT" "$W/init.pth" --tok "$G/tok" 2>&1 | tail -2 | tee -a "$L" ;;
    *) cp "$INIT" "$W/init.pth" ;;
esac
[ -s "$W/init.pth" ] || { say "no initial weights"; exit 1; }
[ -f "$G/feats_stats.npz" ] && cp "$G/feats_stats.npz" "$W/exp/"
say "synth"
$PY $R/synth.py "$W/text/dev.jsonl" "$W/dev" --renditions 1 --eng-renditions 1 --nj "$NJ" --seed 2 > "$W/synth_dev.log" 2>&1 &
$PY $R/synth.py "$W/text/train.jsonl" "$W/train" --renditions 2 --eng-renditions 1 --own "$W/text/own.jsonl" \
    --own-renditions 12 --augment --nj "$NJ" --seed 1 > "$W/synth_train.log" 2>&1
extra=""
if [ -f "$W/text/extra.jsonl" ]; then
    $PY $R/synth.py "$W/text/extra.jsonl" "$W/extra" --renditions 1 --eng-renditions 1 --augment \
        --nj "$NJ" --seed "$SEED" > "$W/synth_extra.log" 2>&1
    extra="--extra $W/extra"
fi
wait
for s in dev train ${extra:+extra}; do
    tail -1 "$W/synth_$s.log" | tee -a "$L"
    [ -s "$W/$s/index.jsonl" ] || { say "$s synth failed"; tail -20 "$W/synth_$s.log" | tee -a "$L"; exit 1; }
done
left=$(( T0 + BUDGET - $(date +%s) ))
mins=$($PY -c "print(round(max(0.3, ($left - 75) / 60), 2))")
say "training for $mins min"
# shellcheck disable=SC2086
$PY $R/train.py --train "$W/train" --dev "$W/dev" --tok "$G/tok" --exp "$W/exp" $extra --device "$DEV" \
    --d-model 192 --ffn 768 --cgmlp 768 --prompt-ffn 384 --layers "$LAYERS" --cross-layers "$CROSS" --init "$W/init.pth" --lr "$LR" --warmup "$WARMUP" \
    --batch "$BATCH" --st-prob 0.15 --schedule-minutes "$mins" --max-steps 1000000 --valid-every "$VALID" \
    --ckpt-every 1000000 --valid-utts 15 --threads 8 --freeze-subsampling --average "$AVERAGE" > "$W/train.out" 2>&1
grep -v "^\s*$" "$W/train.out" | tail -8 | tee -a "$L"
$PY -c "
import os, torch
for n in ('last', 'average'):
    p = '$W/exp/' + n + '.pth'
    if os.path.exists(p):
        s = torch.load(p, map_location='cpu')
        torch.save({k: (v.half() if v.is_floating_point() else v) for k, v in s.items()}, '$W/exp/' + n + '16.pth')
" 2>&1 | tee -a "$L"
(cd "$W/exp" && tar cf "$W/weights.tar" train.log config.yaml feats_stats.npz ./*16.pth)
split -b 15M -d "$W/weights.tar" "$OUT/weights.tar."
ls -la "$OUT" | tee -a "$L"
say "done"
