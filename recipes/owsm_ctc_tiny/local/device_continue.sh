#!/bin/bash
# Copy of what ran on the lent H100 in session 5 (see README "Status"); run from the repository
# root with the bundle of local/bundle_espeak.sh in .gpu/ and OUT set to a results folder.
# second device run: continue config C (d192) from its weights with a fresh schedule
set -u
PY=${PY:-python3}
T0=$(date +%s)
G=$PWD/.gpu
DEV=${DEV:-cuda}; NJ=${NJ:-16}; BUDGET=${BUDGET:-265}; HEAD=${HEAD:-0}; BATCH=${BATCH:-96}
export PATH=$G/espeak/bin:$PATH PYTHONUNBUFFERED=1
R=recipes/owsm_ctc_tiny/local
W=${W:-/tmp/w}; rm -rf $W; mkdir -p $W/text $W/C2
L=$OUT/log.txt
el() { echo $(( $(date +%s) - T0 )); }
say() { echo "[$(el) s] $*" | tee -a $L; }
for s in train dev own; do
  if [ "$HEAD" -gt 0 ]; then head -n $HEAD $G/text/$s.jsonl > $W/text/$s.jsonl; else cp $G/text/$s.jsonl $W/text/; fi
done
$PY $R/synth.py $W/text/dev.jsonl $W/dev --renditions 1 --eng-renditions 1 --nj $NJ --seed 2 2>&1 | tail -1 | tee -a $L &
$PY $R/synth.py $W/text/train.jsonl $W/train --renditions 2 --eng-renditions 1 --own $W/text/own.jsonl --own-renditions 12 --augment --nj $NJ --seed 1 2>&1 | tail -1 | tee -a $L
wait
[ -s $W/train/index.jsonl ] && [ -s $W/dev/index.jsonl ] || { say "synth failed"; exit 1; }
cp $G/C/feats_stats.npz $W/C2/
left=$(( T0 + BUDGET - 30 - $(date +%s) ))
mins=$($PY -c "print(max(0.3, ($left - 15) / 60))")
say "training C2 for $mins min"
$PY $R/train.py --train $W/train --dev $W/dev --tok $G/tok --device $DEV --threads 8 --batch $BATCH --schedule-minutes $mins --max-steps 1000000 --valid-every 100000 --ckpt-every 1000000 --valid-utts 15 --exp $W/C2 --init $G/C/last16.pth --lr 1.5e-3 --warmup 150 --d-model 192 --ffn 768 --cgmlp 768 --prompt-ffn 384 > $W/C2.out 2>&1
grep -v "^\s*$" $W/C2.out | tail -12 | tee -a $L
$PY -c "
import torch
s=torch.load('$W/C2/last.pth',map_location='cpu')
torch.save({k:(v.half() if v.is_floating_point() else v) for k,v in s.items()}, '$W/C2/last16.pth')
" 2>&1 | tee -a $L
(cd $W/C2 && tar cf $W/C2.tar train.log config.yaml feats_stats.npz last16.pth)
split -b 15M -d $W/C2.tar $OUT/C2.tar.
say "done"
