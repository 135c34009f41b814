#!/bin/bash
# Copy of what ran on the lent H100 in session 5 (see README "Status"); run from the repository
# root with the bundle of local/bundle_espeak.sh in .gpu/ and OUT set to a results folder.
# Device run of recipes/owsm_ctc_tiny stages 2 (synth) and 4 (train) on a lent GPU machine.
# Env: OUT (results), DEV (cuda), NJ (synth jobs), HEAD (limit text lines; testing), BUDGET (s)
set -u
PY=${PY:-python3}
T0=$(date +%s)
G=$PWD/.gpu
DEV=${DEV:-cuda}; NJ=${NJ:-16}; BUDGET=${BUDGET:-560}; HEAD=${HEAD:-0}
export PATH=$G/espeak/bin:$PATH PYTHONUNBUFFERED=1
R=recipes/owsm_ctc_tiny/local
W=${W:-/tmp/w}; rm -rf $W; mkdir -p $W/text
L=$OUT/log.txt
el() { echo $(( $(date +%s) - T0 )); }
say() { echo "[$(el) s] $*" | tee -a $L; }
say "start $(nproc) cpus"; nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv 2>&1 | tee -a $L
$PY -c "import torch,numpy,sentencepiece,yaml;print('torch',torch.__version__,'cuda',torch.cuda.is_available(),'numpy',numpy.__version__)" 2>&1 | tee -a $L
echo hi | espeak-ng --stdout | wc -c | tee -a $L
for s in train dev own; do
  if [ "$HEAD" -gt 0 ]; then head -n $HEAD $G/text/$s.jsonl > $W/text/$s.jsonl; else cp $G/text/$s.jsonl $W/text/; fi
done
$PY $R/synth.py $W/text/dev.jsonl $W/dev --renditions 1 --eng-renditions 1 --nj $NJ --seed 2 2>&1 | tail -2 | tee -a $L
[ -s $W/dev/index.jsonl ] || { say "dev synth failed"; exit 1; }
say "dev synth done; smoke train"
$PY $R/train.py --train $W/dev --dev $W/dev --tok $G/tok --exp $W/smoke --device $DEV --layers 2 --d-model 32 --heads 2 --ffn 64 --cgmlp 64 --prompt-ffn 32 --cross-layers 2 --interctc 1 --batch 4 --max-steps 4 --warmup 2 --valid-every 2 --ckpt-every 2 --valid-utts 1 --threads 2 > $W/smoke.log 2>&1 || { tail -30 $W/smoke.log | tee -a $L; say "smoke failed"; exit 1; }
tail -2 $W/smoke.log | tee -a $L
say "train synth"
$PY $R/synth.py $W/text/train.jsonl $W/train --renditions 2 --eng-renditions 1 --own $W/text/own.jsonl --own-renditions 12 --augment --nj $NJ --seed 1 2>&1 | tail -3 | tee -a $L
[ -s $W/train/index.jsonl ] || { say "train synth failed"; exit 1; }
left=$(( T0 + BUDGET - 45 - $(date +%s) ))
mins=$($PY -c "print(max(0.5, ($left - 25) / 60))")
say "training 3 configs for $mins min each"
common="--train $W/train --dev $W/dev --tok $G/tok --device $DEV --threads 4 --batch 48 --schedule-minutes $mins --valid-every 1000 --ckpt-every 1000000 --valid-utts 15"
$PY $R/train.py $common --exp $W/A --lr 2e-3 --warmup 800 > $W/A.out 2>&1 &
$PY $R/train.py $common --exp $W/B --lr 2e-3 --warmup 800 --interctc "" > $W/B.out 2>&1 &
$PY $R/train.py $common --exp $W/C --lr 1.5e-3 --warmup 800 --d-model 192 --ffn 768 --cgmlp 768 --prompt-ffn 384 > $W/C.out 2>&1 &
pids=$(jobs -p)
( while sleep 60; do for c in A B C; do echo "[$(el) s] $c: $(tail -1 $W/$c.out)"; done >> $L; done ) >/dev/null 2>&1 &
mon=$!
wait $pids
kill $mon
for c in A B C; do
  say "config $c"; grep -v "^\s*$" $W/$c.out | tail -4 | tee -a $L
  $PY -c "
import torch,sys
d='$W/$c'
for n in ('last','best'):
    try: s=torch.load(f'{d}/{n}.pth',map_location='cpu')
    except Exception as e: print(n,e); continue
    torch.save({k:(v.half() if v.is_floating_point() else v) for k,v in s.items()}, f'{d}/{n}16.pth')
" 2>&1 | tee -a $L
  (cd $W/$c && tar cf $W/$c.tar train.log config.yaml feats_stats.npz last16.pth)
  split -b 15M -d $W/$c.tar $OUT/$c.tar.
done
ls -la $OUT | tee -a $L
say "done"
