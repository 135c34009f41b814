#!/bin/sh
# CI smoke test of recipes/owsm_ctc_tiny: every stage (text, synthesis, tokenizer, training,
# export, evaluation with the cochlea program, samples) on six sentence pairs per language with
# a two-layer network trained for six steps, so the recipe cannot rot unnoticed. The numbers
# it produces mean nothing; what is checked is that each stage runs and writes what the next
# one needs, and that the exported model loads and transcribes in C.
# Environment (from make check): top_srcdir, COCHLEA, PYTHON, COCHLEA_SHARED.
: "${top_srcdir:=.}" "${PYTHON:=/usr/bin/python3}" "${COCHLEA:=./cochlea}"
shared=${COCHLEA_SHARED:-$top_srcdir/../shared}
data="$shared/data/tatoeba"
if [ ! -d "$data" ]; then
    echo "SKIP: no Tatoeba text at $data"
    exit 77
fi
for c in espeak-ng kakasi opencc spm_train; do
    if ! command -v "$c" >/dev/null 2>&1; then
        echo "SKIP: $c is not installed (sh quickstart.sh check installs it)"
        exit 77
    fi
done
tmp_prefix=cochlea_recipe . "$top_srcdir/tests/sh_setup.sh"

if ! SMOKE=1 WORK="$tmp/work" DATA="$data" NJ=2 PYTHON="$PYTHON" COCHLEA="$COCHLEA" STAGE=1 \
    sh "$top_srcdir/recipes/owsm_ctc_tiny/run.sh" >"$tmp/log" 2>&1; then
    tail -n 40 "$tmp/log"
    echo "FAIL: run.sh (SMOKE=1) failed"
    exit 1
fi
echo "ok: run.sh SMOKE=1 ran stages 1-7"
w="$tmp/work"
for f in text/train.jsonl text/dev.jsonl text/test.jsonl train/feats.npy train/index.jsonl test/index.jsonl \
    tok/bpe.model tok/tokens.txt exp/checkpoint.pt exp/best.pth export/owsm-ctc-tiny.gguf \
    eval/RESULTS.md eval/results.json samples/expected.tsv; do
    [ -s "$w/$f" ] && echo "ok: $f" || fail "stage output $f missing or empty"
done
# stage 5 exports the decoding window (DECODE_WINDOW, default 10 s) as the model's speech_length;
# training keeps its own window (train.py --window, 6 s) in exp/config.yaml
if "$PYTHON" -c '
import sys, yaml
sys.path.insert(0, sys.argv[2])
from gguf import GGUFReader
w = sys.argv[1]
train = yaml.safe_load(open(w + "/exp/config.yaml", encoding="utf-8"))["preprocessor_conf"]["speech_length"]
exp = yaml.safe_load(open(w + "/export/ckpt/config.yaml", encoding="utf-8"))["preprocessor_conf"]["speech_length"]
got = GGUFReader(w + "/export/owsm-ctc-tiny.gguf").kv["owsm_ctc.speech_length"].value
assert (train, exp, got) == (6.0, 10.0, 10.0), (train, exp, got)
' "$w" "$top_srcdir/tools" >"$tmp/log15" 2>&1; then
    echo "ok: the exported model decodes in 10 s windows, trained in 6 s ones"
else
    fail "decoding window of the exported model"
    tail -n 3 "$tmp/log15"
fi
# local/window_check.py (how DECODE_WINDOW was chosen) scores every dev utterance that fits each
# window, in the length bands cut at the training window
if "$PYTHON" "$top_srcdir/recipes/owsm_ctc_tiny/local/window_check.py" "$w" "$w/exp" "$w/exp/best.pth" \
    --windows 6,10 >"$tmp/log16" 2>&1 && "$PYTHON" -c '
import json, re, sys
out = open(sys.argv[2], encoding="utf-8").read()
fr = [json.loads(l)["frames"] for l in open(sys.argv[1] + "/dev/index.jsonl", encoding="utf-8")]
for sec, frames in ((6, 601), (10, 1001)):
    n = int(re.search(r"window %d s \((\d+) utterances\): CER 0-6 s \d+\.\d\d %%" % sec, out).group(1))
    assert n == sum(f <= frames for f in fr), (sec, n)
' "$w" "$tmp/log16" >"$tmp/log17" 2>&1; then
    echo "ok: window_check.py scores the dev utterances that fit each window"
else
    fail "local/window_check.py"
    tail -n 3 "$tmp/log16" "$tmp/log17"
fi
# every test utterance has its WAV, every language of the recipe is in the test set
n_idx=$(wc -l <"$w/test/index.jsonl")
n_wav=$(ls "$w/test/wav" | wc -l)
[ "$n_idx" -eq "$n_wav" ] && echo "ok: $n_wav test WAVs" || fail "test set: $n_idx entries, $n_wav WAVs"
langs=$(sed 's/.*"lang": "\([a-z]*\)".*/\1/' "$w/test/index.jsonl" | sort -u | tr '\n' ' ')
[ "$langs" = "ara deu eng fra ita jpn kor nld pol por rus spa tur zho " ] && echo "ok: test languages" \
    || fail "test languages: $langs"
# stage 6's language ID: every test utterance has a --detect-language answer ("pred", read from
# the grouped run's per-file blocks: it must equal a run on the file alone) and the first token
# emitted with -l auto ("emitted")
if "$PYTHON" -c '
import json, subprocess, sys
w, cochlea = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(w + "/eval/hyp_lid.jsonl", encoding="utf-8")]
n = sum(1 for _ in open(w + "/test/index.jsonl"))
assert len(rows) == n and all("pred" in r and "emitted" in r for r in rows), "rows"
for r in rows[:3] + rows[-2:]:
    p = subprocess.run([cochlea, "transcribe", "-q", "-m", w + "/export/owsm-ctc-tiny.gguf", "--detect-language",
                        w + "/test/wav/" + r["id"] + ".wav"], capture_output=True, text=True, check=True)
    assert p.stdout.split("\t")[0] == r["pred"], (r["id"], p.stdout, r["pred"])
res = json.load(open(w + "/eval/results.json"))
ok = sum(r["pred"] == r["lang"] for r in rows)
assert res["all"]["lid"]["correct"] == ok and res["all"]["lid"]["total"] == n, res["all"]["lid"]
assert res["all"]["lid_emitted"]["correct"] == sum(r["emitted"] == r["lang"] for r in rows)
' "$w" "$COCHLEA" >"$tmp/log14" 2>&1; then
    echo "ok: stage 6 language ID rows: --detect-language answers (as on single files) and emitted tokens"
else
    fail "stage 6 language ID rows"
    tail -n 3 "$tmp/log14"
fi
# the token list has OWSM's layout
tl="$w/tok/tokens.txt"
[ "$(sed -n 1p "$tl")" = "<blank>" ] && [ "$(sed -n 4p "$tl")" = "<nolang>" ] && [ "$(sed -n 32p "$tl")" = "<eng>" ] \
    && [ "$(sed -n 156p "$tl")" = "<asr>" ] && [ "$(sed -n 181p "$tl")" = "<st_zho>" ] \
    && [ "$(tail -n 1 "$tl")" = "<sop>" ] && echo "ok: token layout" || fail "token list layout"
# feats_stats.npz: ESPnet's count / sum / sum of squares over every training frame, so that
# global_mvn gets the training set's mean and standard deviation
if "$PYTHON" -c '
import json, sys, numpy as np
st = np.load(sys.argv[1] + "/exp/feats_stats.npz")
f = np.load(sys.argv[1] + "/train/feats.npy").astype(np.float64)
rows = np.concatenate([np.arange(m["offset"], m["offset"] + m["frames"])
                       for m in map(json.loads, open(sys.argv[1] + "/train/index.jsonl"))])
x = f[rows]
assert int(st["count"]) == len(rows), (int(st["count"]), len(rows))
assert np.allclose(st["sum"], x.sum(0), rtol=1e-5), "sum"
assert np.allclose(st["sum_square"], (x * x).sum(0), rtol=1e-5), "sum_square"
' "$w" >"$tmp/log13" 2>&1; then
    echo "ok: feats_stats.npz holds the training frames' count, sum and sum of squares"
else
    fail "feats_stats.npz"
    tail -n 3 "$tmp/log13"
fi
# resuming: a second stage-4 run starts from the checkpoint and stops at once
if SMOKE=1 WORK="$w" DATA="$data" PYTHON="$PYTHON" STAGE=4 STOP_STAGE=4 \
    sh "$top_srcdir/recipes/owsm_ctc_tiny/run.sh" >"$tmp/log2" 2>&1 && grep -q "resumed at step 6" "$tmp/log2"; then
    echo "ok: training resumes from its checkpoint"
else
    fail "training did not resume"
    tail -n 20 "$tmp/log2"
fi
# continuing from a GGUF file (how a fresh machine continues from the committed model): its
# tensors come back as the checkpoint's (as stored: f32, f16-rounded, or Q8_0-rounded as
# tools/gguf.py quantises), its embedded LM is left out, and train.py --init starts from them
fg="$top_srcdir/recipes/owsm_ctc_tiny/local/from_gguf.py"
if "$PYTHON" "$fg" "$w/export/owsm-ctc-tiny.gguf" "$tmp/init.pth" --tok "$w/tok" >"$tmp/log3" 2>&1 \
    && "$PYTHON" -c '
import sys, torch, numpy as np
sys.path.insert(0, sys.argv[3])
from gguf import q8_0_quantize, q8_0_dequantize
a = torch.load(sys.argv[1], map_location="cpu")
b = torch.load(sys.argv[2], map_location="cpu")
assert sorted(a) == sorted(b), "tensor names differ"
def q8(t):
    x = t.float().numpy()
    if x.ndim < 2 or x.shape[-1] % 32:
        return t.float()
    return torch.from_numpy(q8_0_dequantize(q8_0_quantize(x), x.size).reshape(x.shape).astype(np.float32))
bad = [k for k in b if not (torch.equal(a[k], b[k].float()) or torch.equal(a[k], b[k].half().float())
                            or torch.equal(a[k], q8(b[k])))]
assert not bad, "tensors differ: %s" % bad[:5]
' "$tmp/init.pth" "$w/exp/best.pth" "$top_srcdir/tools" >>"$tmp/log3" 2>&1; then
    echo "ok: from_gguf.py gives back the checkpoint's weights"
else
    fail "from_gguf.py"
    tail -n 5 "$tmp/log3"
fi
cp -r "$w/tok" "$tmp/tok2"
sed -i '2{h;d};3{G}' "$tmp/tok2/tokens.txt"   # two tokens swapped: other ids than the model's
if "$PYTHON" "$fg" "$w/export/owsm-ctc-tiny.gguf" "$tmp/x.pth" --tok "$tmp/tok2" >"$tmp/log4" 2>&1; then
    fail "from_gguf.py accepted a token list that differs from the model's"
else
    grep -q "differs from the model's token list" "$tmp/log4" && echo "ok: from_gguf.py refuses another token list" \
        || { fail "from_gguf.py: unexpected error"; tail -n 3 "$tmp/log4"; }
fi
if SMOKE=1 WORK="$w" DATA="$data" PYTHON="$PYTHON" STAGE=4 STOP_STAGE=4 EXP="$w/exp_cont" \
    INIT="$w/export/owsm-ctc-tiny.gguf" TRAIN_ARGS="--freeze-subsampling" \
    sh "$top_srcdir/recipes/owsm_ctc_tiny/run.sh" >"$tmp/log5" 2>&1 \
    && grep -q "initialised from $w/exp_cont/init.pth" "$tmp/log5"; then
    echo "ok: training continues from the GGUF's weights (run.sh INIT=model.gguf)"
    # --freeze-subsampling: the conv2d8 convolutions keep their weights, the rest trains
    if "$PYTHON" -c '
import sys, torch
a = torch.load(sys.argv[1], map_location="cpu")
b = torch.load(sys.argv[2], map_location="cpu")
conv = [k for k in a if k.startswith("encoder.embed.conv.")]
assert len(conv) == 6, conv
moved = [k for k in conv if not torch.equal(a[k].float(), b[k].float())]
assert not moved, "frozen convolutions changed: %s" % moved
for k in ("encoder.embed.out.weight", "ctc.ctc_lo.weight"):
    assert not torch.equal(a[k].float(), b[k].float()), k + " did not train"
' "$w/exp_cont/init.pth" "$w/exp_cont/last.pth" >>"$tmp/log5" 2>&1; then
        echo "ok: --freeze-subsampling trains everything but the subsampling convolutions"
    else
        fail "--freeze-subsampling"
        tail -n 5 "$tmp/log5"
    fi
    # the continuation normalises its batches with the statistics stored in the GGUF's weights
    # (those its export keeps), not with statistics of the rebuilt core set; init_stats() gives
    # back any such buffers (here shifted and scaled ones, unlike any core set's)
    if "$PYTHON" -c '
import sys, torch, numpy as np
sys.path[:0] = [sys.argv[5], sys.argv[6]]
import owsm_ctc as ref
import train
init = torch.load(sys.argv[1], map_location="cpu")
last = torch.load(sys.argv[2], map_location="cpu")
mean, std = ref.global_mvn_stats(sys.argv[4] + "/feats_stats.npz")
for sd in (init, last):
    assert np.array_equal(mean, sd["normalize.mean"].numpy()), "mean differs"
    assert np.array_equal(std, sd["normalize.std"].numpy()), "std differs"
init["normalize.mean"] = init["normalize.mean"] + 0.5
init["normalize.std"] = init["normalize.std"] * 1.5
torch.save(init, sys.argv[3] + "/shifted.pth")
assert train.init_stats(sys.argv[3] + "/shifted.pth", sys.argv[3] + "/shifted.npz")
m2, s2 = ref.global_mvn_stats(sys.argv[3] + "/shifted.npz")
assert np.allclose(m2, init["normalize.mean"].numpy(), rtol=0, atol=1e-6), "shifted mean"
assert np.allclose(s2, init["normalize.std"].numpy(), rtol=1e-6, atol=0), "scaled std"
del init["normalize.mean"]
torch.save(init, sys.argv[3] + "/nostats.pth")
assert not train.init_stats(sys.argv[3] + "/nostats.pth", sys.argv[3] + "/no.npz")
' "$w/exp_cont/init.pth" "$w/exp_cont/last.pth" "$tmp" "$w/exp_cont" "$top_srcdir/tests/ref" \
        "$top_srcdir/recipes/owsm_ctc_tiny/local" >>"$tmp/log5" 2>&1; then
        echo "ok: a continuation keeps the normalisation of the weights it starts from"
    else
        fail "the continuation's feature statistics"
        tail -n 5 "$tmp/log5"
    fi
else
    fail "training from the GGUF's weights"
    tail -n 20 "$tmp/log5"
fi
if SMOKE=1 WORK="$w" DATA="$data" PYTHON="$PYTHON" STAGE=4 STOP_STAGE=4 EXP="$w/exp_bad" \
    INIT="$w/no-such.gguf" sh "$top_srcdir/recipes/owsm_ctc_tiny/run.sh" >"$tmp/log6" 2>&1; then
    fail "run.sh INIT= with a missing file succeeded"
else
    grep -q "INIT=$w/no-such.gguf: no such file" "$tmp/log6" && echo "ok: run.sh INIT= names a missing file" \
        || { fail "run.sh INIT=: unexpected error"; tail -n 3 "$tmp/log6"; }
fi
# EXTRA=1: stage 4 also trains on $WORK/extra (stage 1b's Debian sentences; here a copy of the
# training set stands in for them), and the normalisation statistics stay the core set's
cp -r "$w/train" "$w/extra"
n_extra=$(wc -l <"$w/extra/index.jsonl")
if SMOKE=1 EXTRA=1 WORK="$w" DATA="$data" PYTHON="$PYTHON" STAGE=4 STOP_STAGE=4 EXP="$w/exp_extra" \
    sh "$top_srcdir/recipes/owsm_ctc_tiny/run.sh" >"$tmp/log8" 2>&1 \
    && grep -q "($n_extra of them from --extra" "$tmp/log8" && "$PYTHON" -c '
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
assert all(np.array_equal(a[k], b[k]) for k in ("count", "sum", "sum_square")), "stats differ"
' "$w/exp/feats_stats.npz" "$w/exp_extra/feats_stats.npz" >>"$tmp/log8" 2>&1; then
    echo "ok: EXTRA=1 trains on \$WORK/extra too ($n_extra utterances), with the core set's statistics"
else
    fail "EXTRA=1 (train.py --extra)"
    tail -n 10 "$tmp/log8"
fi
# --extra-cap N: at most N of the --extra utterances of each language
n_lang=$("$PYTHON" -c 'import json, sys; print(len({json.loads(l)["lang"] for l in open(sys.argv[1])}))' "$w/extra/index.jsonl")
if SMOKE=1 EXTRA=1 WORK="$w" DATA="$data" PYTHON="$PYTHON" STAGE=4 STOP_STAGE=4 EXP="$w/exp_extra_cap" \
    TRAIN_ARGS="--extra-cap 1" sh "$top_srcdir/recipes/owsm_ctc_tiny/run.sh" >"$tmp/log8c" 2>&1 \
    && [ "$n_lang" -gt 1 ] && [ "$n_lang" -lt "$n_extra" ] \
    && grep -q "($n_lang of them from --extra, at most 1 per language" "$tmp/log8c"; then
    echo "ok: --extra-cap 1 keeps one --extra utterance of each of the $n_lang languages"
else
    fail "train.py --extra-cap"
    tail -n 10 "$tmp/log8c"
fi
if "$PYTHON" -c '
import sys
sys.path.insert(0, sys.argv[1])
from train import cap_per_language
idx = [{"lang": l, "n": i} for i, l in enumerate("aabacaabbbcd")]
got = cap_per_language(idx, 2, 1)
n = [m["n"] for m in got]
assert n == sorted(n), n
per = {l: [m["n"] for m in got if m["lang"] == l] for l in "abcd"}
assert len(per["a"]) == 2 and len(per["b"]) == 2 and per["c"] == [4, 10] and per["d"] == [11], per
assert got == cap_per_language(idx, 2, 1), "not the same draw for the same seed"
assert any(cap_per_language(idx, 2, s) != got for s in range(2, 12)), "the seed does not matter"
assert cap_per_language(idx, 5, 1) == idx
' "$top_srcdir/recipes/owsm_ctc_tiny/local" >>"$tmp/log8c" 2>&1; then
    echo "ok: cap_per_language draws at most N of each language, in order, by the seed"
else
    fail "cap_per_language"
    tail -n 5 "$tmp/log8c"
fi
# --extra DIR@LANG: only that language's utterances of DIR
lang1=$(head -1 "$w/extra/index.jsonl" | "$PYTHON" -c 'import json, sys; print(json.loads(sys.stdin.readline())["lang"])')
n_lang1=$(grep -c "\"lang\": \"$lang1\"" "$w/extra/index.jsonl")
if SMOKE=1 EXTRA=0 WORK="$w" DATA="$data" PYTHON="$PYTHON" STAGE=4 STOP_STAGE=4 EXP="$w/exp_extra_lang" \
    TRAIN_ARGS="--extra $w/extra@$lang1 --lang-weight $lang1:2" sh "$top_srcdir/recipes/owsm_ctc_tiny/run.sh" >"$tmp/log8l" 2>&1 \
    && [ "$n_lang1" -gt 0 ] && [ "$n_lang1" -lt "$n_extra" ] \
    && grep -q "($n_lang1 of them from --extra;" "$tmp/log8l" \
    && grep -q "language weights {'$lang1': 2.0}" "$tmp/log8l"; then
    echo "ok: --extra DIR@$lang1 trains on the $n_lang1 $lang1 utterances of DIR only, --lang-weight is logged"
else
    fail "train.py --extra DIR@LANG / --lang-weight"
    tail -n 10 "$tmp/log8l"
fi
# a weight for a language with no training utterance, or DIR@LANG with none of LANG: refused
for args in "--lang-weight zzz:2" "--extra $w/extra@zzz"; do
    if SMOKE=1 EXTRA=0 WORK="$w" DATA="$data" PYTHON="$PYTHON" STAGE=4 STOP_STAGE=4 EXP="$w/exp_extra_bad" \
        TRAIN_ARGS="$args" sh "$top_srcdir/recipes/owsm_ctc_tiny/run.sh" >"$tmp/log8b" 2>&1; then
        fail "train.py $args: accepted"
    elif grep -q "zzz" "$tmp/log8b" && ! grep -q Traceback "$tmp/log8b"; then
        echo "ok: train.py $args: refused with a message naming zzz"
    else
        fail "train.py $args: no clear error"; tail -n 3 "$tmp/log8b"
    fi
done
# --lang-weight: how often each language's utterances are in an epoch; without weights the
# order is the one train.py made before the option existed
if "$PYTHON" -c '
import argparse, collections, random, sys, types
sys.path.insert(0, sys.argv[1])
import train as T

def order(weights, seed=3, n=600):
    b = T.Batcher.__new__(T.Batcher)
    b.a = types.SimpleNamespace(batch=4, lang_weight=weights)
    b.rng = random.Random(seed)
    b.idx = [{"lang": "abc"[i % 3], "frames": (i * 7) % 50} for i in range(n)]
    return b, b.epoch_order()

b, o = order(T.parse_lang_weights("a:2,b:0,c:1.5"))
per = collections.Counter(b.idx[i]["lang"] for i in o)
assert per["a"] == 400 and per["b"] == 0 and 240 < per["c"] < 360, per
assert all(o.count(i) == 2 for i in range(0, 600, 3)), "weight 2: not every utterance twice"
assert {o.count(i) for i in range(2, 600, 3)} == {1, 2}, "weight 1.5: not once or twice"
assert order(T.parse_lang_weights("c:1.5"))[1] != order(T.parse_lang_weights("c:1.5"), seed=4)[1]

# the algorithm before --lang-weight, for the unweighted order
b, o = order({})
rng = random.Random(3)
old = list(range(len(b.idx)))
rng.shuffle(old)
ref = []
for k in range(0, len(old), 200):
    part = sorted(old[k:k + 200], key=lambda i: b.idx[i]["frames"])
    bs = [part[j:j + 4] for j in range(0, len(part), 4)]
    rng.shuffle(bs)
    ref += [i for x in bs for i in reversed(x)]
assert o == ref, "the unweighted order changed"
assert order(T.parse_lang_weights("a:1,b:1"))[1] == ref, "integer weights 1 draw"
for bad in ("a", "a:x", "a:-1", ":2", "a:101"):
    try:
        T.parse_lang_weights(bad)
    except argparse.ArgumentTypeError:
        continue
    raise AssertionError(f"{bad!r} accepted")
' "$top_srcdir/recipes/owsm_ctc_tiny/local" >>"$tmp/log8l" 2>&1; then
    echo "ok: --lang-weight puts each utterance in an epoch W times (fractions drawn), the unweighted order unchanged"
else
    fail "train.py --lang-weight (epoch order)"
    tail -n 5 "$tmp/log8l"
fi
# --long-window: training batches that hold an utterance longer than --window are padded to the
# long window (the utterance where the random lead puts it, the rest silence); dev keeps --window
if "$PYTHON" -c '
import random, sys, types
import numpy as np
import sentencepiece
sys.path.insert(0, sys.argv[1])
import train as T
sp = sentencepiece.SentencePieceProcessor()
sp.Load(sys.argv[2] + "/bpe.model")
tl = [l.rstrip("\n") for l in open(sys.argv[2] + "/tokens.txt", encoding="utf-8")]
lens = [300, 500, 601, 700, 1001, 1002]  # frames; window 6 s = 601, long window 10 s = 1001
feats = np.arange(sum(lens) * 80, dtype=np.float32).reshape(-1, 80) % 7
idx, off = [], 0
for n in lens:
    idx.append({"lang": "eng", "text": "a", "pair": {}, "offset": off, "frames": n, "src": 0})
    off += n
a = types.SimpleNamespace(window=6.0, long_window=10.0, batch=2, freq_mask=0, st_prob=0.0, nolang_prob=0.0)
z, o = np.zeros(80, np.float32), np.ones(80, np.float32)
tr = T.Batcher(a, idx, feats, sp, tl, z, o, random.Random(0), long=True)
dv = T.Batcher(a, idx, feats, sp, tl, z, o, random.Random(0))
tr.specaug = lambda x, lead, n: x  # (its masks would hide where the utterance is)
assert [m["frames"] for m in tr.idx] == lens[:5] and tr.n_long == 2 and tr.dropped == 1, (tr.n_long, tr.dropped)
assert [m["frames"] for m in dv.idx] == lens[:3] and dv.dropped == 3
for ms, want in ((idx[:2], 601), (idx[1:3], 601), (idx[2:4], 1001), (idx[4:5], 1001)):
    x = tr.next(ms=ms)[0]
    assert x.shape == (len(ms), want, 80), (x.shape, want)
    for i, (m, (lead, n)) in enumerate(zip(ms, tr.spans)):
        assert n == m["frames"] and 0 <= lead <= want - n
        f = feats[m["offset"]:m["offset"] + n]
        assert np.array_equal(x[i, lead:lead + n].numpy(), f), "utterance not where the lead puts it"
        assert (x[i, :lead] == T.SILENCE).all() and (x[i, lead + n:] == T.SILENCE).all()
assert dv.next(train=False, ms=idx[:2])[0].shape == (2, 601, 80)
' "$top_srcdir/recipes/owsm_ctc_tiny/local" "$w/tok" >"$tmp/log8l" 2>&1; then
    echo "ok: --long-window pads a batch with a longer utterance to the long window, and only then"
else
    fail "train.py --long-window"
    tail -n 5 "$tmp/log8l"
fi
rm -rf "$w/extra"
if SMOKE=1 EXTRA=1 WORK="$w" DATA="$data" PYTHON="$PYTHON" STAGE=4 STOP_STAGE=4 EXP="$w/exp_extra_missing" \
    sh "$top_srcdir/recipes/owsm_ctc_tiny/run.sh" >"$tmp/log9" 2>&1; then
    fail "run.sh EXTRA=1 without \$WORK/extra succeeded"
else
    grep -q "EXTRA=1 but no $w/extra" "$tmp/log9" && echo "ok: run.sh EXTRA=1 names the missing \$WORK/extra" \
        || { fail "run.sh EXTRA=1: unexpected error"; tail -n 3 "$tmp/log9"; }
fi
# --average N: the weights of the last N validations are kept (older ones deleted) and their
# mean is written and validated when training ends
if SMOKE=1 WORK="$w" DATA="$data" PYTHON="$PYTHON" STAGE=4 STOP_STAGE=4 EXP="$w/exp_avg" \
    TRAIN_ARGS="--average 2 --valid-every 2" sh "$top_srcdir/recipes/owsm_ctc_tiny/run.sh" >"$tmp/log12" 2>&1 \
    && grep -q "average of the 2 snapshots of steps 4-6: dev CER" "$tmp/log12" \
    && [ "$(ls "$w/exp_avg/snapshots" | tr '\n' ' ')" = "step0000004.pth step0000006.pth " ] \
    && "$PYTHON" -c '
import sys, torch
a, b, m = (torch.load(f, map_location="cpu") for f in sys.argv[1:4])
assert sorted(a) == sorted(m), "tensor names differ"
bad = [k for k in m if m[k].is_floating_point() and not torch.allclose(m[k], (a[k] + b[k]) / 2, atol=1e-6)]
assert not bad, "not the mean: %s" % bad[:5]
assert any(not torch.equal(a[k], b[k]) for k in a), "the snapshots are the same weights"
' "$w/exp_avg/snapshots/step0000004.pth" "$w/exp_avg/snapshots/step0000006.pth" "$w/exp_avg/average.pth" \
    >>"$tmp/log12" 2>&1; then
    echo "ok: --average keeps the last validations' weights and averages them"
else
    fail "train.py --average"
    tail -n 10 "$tmp/log12"
fi
# local/blend.py: 0.25 x A + 0.75 x B of two snapshots; a model with other shapes is refused
L="$top_srcdir/recipes/owsm_ctc_tiny/local"
S4="$w/exp_avg/snapshots/step0000004.pth"
S6="$w/exp_avg/snapshots/step0000006.pth"
if "$PYTHON" "$L/blend.py" "$S4" "$S6" "$w/blend.pth" --weight-a 0.25 >"$tmp/log15" 2>&1 && "$PYTHON" -c '
import sys, torch
a, b, m = (torch.load(f, map_location="cpu") for f in sys.argv[1:4])
assert sorted(a) == sorted(m), "tensor names differ"
bad = [k for k in m if m[k].is_floating_point() and not torch.allclose(m[k], 0.25 * a[k] + 0.75 * b[k], atol=1e-6)]
assert not bad, "not 0.25 A + 0.75 B: %s" % bad[:5]
' "$S4" "$S6" "$w/blend.pth" >>"$tmp/log15" 2>&1 \
    && "$PYTHON" -c '
import sys, torch
sd = torch.load(sys.argv[1], map_location="cpu")
k = next(k for k in sd if sd[k].dim() == 2)
sd[k] = sd[k][:-1]
torch.save(sd, sys.argv[2])
' "$S4" "$w/other.pth" \
    && ! "$PYTHON" "$L/blend.py" "$S4" "$w/other.pth" "$w/bad.pth" >>"$tmp/log15" 2>&1 \
    && grep -q "blend.py: error: .*: shape" "$tmp/log15" && [ ! -e "$w/bad.pth" ]; then
    echo "ok: blend.py interpolates two weight files and refuses different ones"
else
    fail "blend.py"
    tail -n 5 "$tmp/log15"
fi
# local/fitcheck.py (training against dev CER) runs on the smoke model
if "$PYTHON" "$top_srcdir/recipes/owsm_ctc_tiny/local/fitcheck.py" "$w" "$w/exp" "$w/exp/best.pth" --per-lang 1 \
    >"$tmp/log11" 2>&1 && [ "$(grep -c '^fitcheck: \(train\|dev\): 14 utterances, CER [0-9.]* %, LID' "$tmp/log11")" -eq 2 ]; then
    echo "ok: fitcheck.py"
else
    fail "fitcheck.py"
    tail -n 5 "$tmp/log11"
fi
# check_script LABEL SCRIPT ARGS...: run tests/SCRIPT, show its lines indented, pass or fail as LABEL
check_script() {
    label=$1 script=$2
    shift 2
    if "$PYTHON" "$top_srcdir/tests/$script" "$@" >"$tmp/log_$script" 2>&1; then
        sed 's/^/  /' "$tmp/log_$script"
        echo "ok: $label"
    else
        fail "$label (tests/$script)"
        tail -n 8 "$tmp/log_$script"
    fi
}
# stage 1b (local/debtext.py) on catalogs made by the test, offline
check_script "debtext.py" debtext_check.py "$top_srcdir"
# local/pick_lm.py (fresh sentences from the LM's text for a continuation run) on a folder of its own
check_script "pick_lm.py" pick_lm_check.py "$top_srcdir"
# local/zho_syllables.py (Chinese errors split into homophones, tones and syllables; espeak-ng)
check_script "zho_syllables.py" zho_syllables_check.py "$top_srcdir"
# train.py's speed-ups (cropped conv2d8, channels-last depthwise convolutions, frozen
# subsampling) give the reference model's loss and gradients
if OWSM_TRAIN_NO_REEXEC=1 "$PYTHON" "$top_srcdir/tests/train_equiv.py" "$w/tok/tokens.txt" >"$tmp/log7" 2>&1; then
    echo "ok: train.py's speed-ups compute the reference loss and gradients"
else
    fail "train.py's speed-ups differ from the reference (tests/train_equiv.py)"
    grep FAIL "$tmp/log7" || tail -n 5 "$tmp/log7"
fi
# the exported model runs in C on a sample clip
if "$COCHLEA" transcribe -q -m "$w/export/owsm-ctc-tiny.gguf" -l eng "$w/samples/en-weather.wav" >"$tmp/out" 2>"$tmp/err"; then
    echo "ok: cochlea transcribes with the smoke model"
else
    fail "cochlea transcribe with the smoke model"
    head -5 "$tmp/err"
fi
# stage 3's language model (local/ngram.py): an ARPA file whose every context is a distribution
# (the probabilities of all words after it sum to one, back-off weights included), embedded by
# stage 5 so that the model decodes with it by default
if "$PYTHON" - "$w/lm/lm.arpa" "$w/tok/tokens.txt" "$top_srcdir/tests/ref" >"$tmp/log14" 2>&1 <<'PYEOF'
import math, random, sys
sys.path.insert(0, sys.argv[3])
import ctc_beam as CB
tokens = [l.rstrip("\n") for l in open(sys.argv[2], encoding="utf-8")]
lm = CB.NgramLM(sys.argv[1], tokens)
assert lm.order == 4, lm.order
words = sorted({k[0] for k in lm.table if len(k) == 1} - {tokens.index("<sos>")})
pieces = [i for i, t in enumerate(tokens) if not CB.is_special(t)]
sos, eng = tokens.index("<sos>"), tokens.index("<eng>")
ctxs = [[sos, eng]] + [list(k) for k in lm.table if len(k) == 3][:20]
rng = random.Random(1)
ctxs += [[sos, eng] + rng.sample(pieces, 3) for _ in range(5)]
seen3 = sum(1 for k in lm.table if len(k) == 4)
assert seen3 > 0, "no 4-grams"
for h in ctxs:
    s = sum(math.exp(lm.lnp(h, w)) for w in words)
    assert abs(s - 1) < 2e-3, (h, s)
print(f"{len(ctxs)} contexts sum to one; {seen3} 4-grams")
PYEOF
then
    echo "ok: ngram.py: the LM's distributions sum to one ($(tail -n 1 "$tmp/log14"))"
else
    fail "ngram.py: the LM is not normalised"
    tail -n 5 "$tmp/log14"
fi
# ngram.py's record counts and word fragments (debtext.py --essay), by hand and end to end
check_script "ngram.py counts and fragments" ngram_check.py "$top_srcdir" "$w/tok"
if "$COCHLEA" transcribe -v -q -m "$w/export/owsm-ctc-tiny.gguf" -l eng "$w/samples/en-weather.wav" >"$tmp/out" 2>"$tmp/err" &&
    grep -q "language model: embedded in the model" "$tmp/err"; then
    echo "ok: stage 5 embeds the language model"
else
    fail "stage 5 did not embed the language model"
    head -5 "$tmp/err"
fi
[ "$failed" -eq 0 ] || exit 1
exit 0
