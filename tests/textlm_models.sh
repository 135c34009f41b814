#!/bin/sh
# textlm_models.sh - the shipped text models (models/textlm-tiny.gguf and its draft model, made by
# recipes/textlm_tiny) end to end through `cochlea generate`: for a few prompts the greedy
# continuation equals a PyTorch greedy loop over the same GGUF (tests/ref/llama.py), every
# speculative decoder (recycling, lookup, aded, hybrid, and draft, draft-tree, rsd with the draft
# model) gives exactly the plain tokens, seeded sampling with the model-free drafters equals
# plain seeded sampling, and the model has learnt English: its perplexity on a sentence of the
# training text is below 100, far below a uniform guess over its 4000 tokens (33 for the shipped model). Environment as tests/cli.sh.
: "${top_srcdir:=.}" "${top_builddir:=.}" "${COCHLEA:=$top_builddir/cochlea}"
. "$top_srcdir/tests/torch_python.sh"
m="$top_srcdir/models/textlm-tiny.gguf"
dm="$top_srcdir/models/textlm-tiny-draft.gguf"
for f in "$m" "$dm"; do
    if [ ! -f "$f" ]; then
        echo "FAIL: $f is missing (recipes/textlm_tiny makes it)"
        exit 1
    fi
done
tmp_prefix=cochlea_textlm . "$top_srcdir/tests/sh_setup.sh"
toks() { "$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))["tokens"])' "$1"; }
field() { "$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

n=40
i=0
for prompt in "And it came to pass" "In the beginning" "Blessed are they that"; do
    i=$((i + 1))
    if ! "$COCHLEA" generate -m "$m" -p "$prompt" -n $n --temp 0 -t 1 -q --no-stream --stats-json "$tmp/p$i.json" \
        >"$tmp/p$i.txt" 2>"$tmp/err"; then
        fail "prompt $i: generate failed: $(head -3 "$tmp/err")"
        continue
    fi
    echo "prompt $i: $prompt|$(cat "$tmp/p$i.txt")"
    want=$("$py" - "$m" "$tmp/p$i.json" $n <<'PY'
import json, os, sys
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "ref"))
import llama
cfg, sd = llama.load_gguf(sys.argv[1])
st = json.load(open(sys.argv[2]))
seq, out = list(st["prompt"]), []
for _ in range(int(sys.argv[3])):
    y = int(llama.forward(cfg, sd, seq)[-1].argmax())
    out.append(y)
    seq.append(y)
    if y == 2:
        break
print(out)
PY
)
    [ "$want" = "$(toks "$tmp/p$i.json")" ] && echo "ok: prompt $i: greedy tokens equal the PyTorch greedy loop" ||
        fail "prompt $i: greedy tokens $(toks "$tmp/p$i.json") differ from PyTorch $want"
    for s in recycling lookup aded hybrid draft draft-tree rsd; do
        set -- --spec $s
        case $s in draft*|rsd) set -- "$@" --draft-model "$dm" ;; esac
        if "$COCHLEA" generate -m "$m" -p "$prompt" -n $n --temp 0 -t 1 -q --no-stream "$@" --stats-json "$tmp/s.json" \
            >"$tmp/s.txt" 2>"$tmp/err" && [ "$(toks "$tmp/s.json")" = "$(toks "$tmp/p$i.json")" ] &&
            cmp -s "$tmp/s.txt" "$tmp/p$i.txt"; then
            echo "ok: prompt $i: --spec $s greedy = plain ($(field "$tmp/s.json" steps) steps for $(field "$tmp/s.json" generated_tokens) tokens)"
        else
            fail "prompt $i: --spec $s greedy differs from plain or failed: $(head -2 "$tmp/err")"
        fi
    done
    for s in recycling lookup; do
        "$COCHLEA" generate -m "$m" -p "$prompt" -n $n --seed 11 -t 1 -q --no-stream --spec $s --stats-json "$tmp/r_$s.json" \
            >/dev/null 2>&1
    done
    "$COCHLEA" generate -m "$m" -p "$prompt" -n $n --seed 11 -t 1 -q --no-stream --stats-json "$tmp/r.json" >/dev/null 2>&1
    for s in recycling lookup; do
        [ -s "$tmp/r.json" ] && [ "$(toks "$tmp/r_$s.json")" = "$(toks "$tmp/r.json")" ] &&
            echo "ok: prompt $i: --spec $s seeded sampling = plain" || fail "prompt $i: --spec $s seeded sampling differs"
    done
done

# perplexity of a training sentence under the shipped model (PyTorch reference on the GGUF);
# a uniform guess is 4000
ppl=$("$COCHLEA" generate -m "$m" -f - -n 1 --temp 0 -t 1 -q --no-stream --stats-json "$tmp/ppl.json" >/dev/null 2>&1 <<'EOF'
And God said, Let there be light: and there was light. And God saw the light, that it was good: and God divided the light from the darkness.
EOF
"$py" - "$m" "$tmp/ppl.json" <<'PY'
import json, math, os, sys
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "ref"))
import llama
import torch
cfg, sd = llama.load_gguf(sys.argv[1])
ids = json.load(open(sys.argv[2]))["prompt"]
lp = torch.log_softmax(llama.forward(cfg, sd, ids).double(), -1)
nll = -sum(float(lp[i, ids[i + 1]]) for i in range(len(ids) - 1)) / (len(ids) - 1)
print("%.3f" % math.exp(nll))
PY
)
if [ -n "$ppl" ] && "$py" -c "import sys; sys.exit(0 if float(sys.argv[1]) < 100 else 1)" "$ppl"; then
    echo "ok: perplexity of a Genesis sentence $ppl (uniform: 4000)"
else
    fail "perplexity of a Genesis sentence '$ppl' is not below 100"
fi

if [ "$failed" -ne 0 ]; then
    echo "$failed check(s) failed"
    exit 1
fi
echo "all shipped text model checks passed"
