#!/bin/sh
# End-to-end tests of `cochlea generate` on random llama GGUFs made by tests/ref/llama.py:
# greedy output equal to a PyTorch greedy loop, identical token streams for every --spec,
# seeded sampling reproducible and identical across --spec, the -n and --ctx limits, the
# statistics, and every bad input with its message and exit status. Environment as tests/cli.sh.
: "${top_srcdir:=.}" "${top_builddir:=.}" "${COCHLEA:=$top_builddir/cochlea}"
. "$top_srcdir/tests/torch_python.sh"
tmp_prefix=cochlea_gen . "$top_srcdir/tests/sh_setup.sh"
C="$COCHLEA"
ref="$top_srcdir/tests/ref/llama.py"

expect_in() { # FILE TEXT DESCRIPTION
    if grep -q -- "$2" "$1"; then echo "ok: $3"; else
        fail "$3: '$2' not in $1"
        sed 's/^/    /' "$1" | head -5
    fi
}

# the "tokens" list of a --stats-json file, as one line
toks() { "$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))["tokens"])' "$1"; }
field() { "$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

m="$tmp/m.gguf"
"$py" "$ref" make "$m" --vocab 64 --d 64 --layers 2 --heads 4 --kv-heads 2 --ff 128 --ctx 96 --seed 3 ||
    { echo "FAIL: cannot make the model"; exit 1; }
prompt="t5t9t12t5t9t12t5t9"

# greedy: every drafter gives the same tokens; they equal a PyTorch greedy loop
for s in none recycling lookup aded hybrid; do
    run 0 "greedy --spec $s" -- "$C" generate -m "$m" -p "$prompt" -n 40 --temp 0 --spec $s -t 1 --stats-json "$tmp/g_$s.json"
    cp "$out" "$tmp/g_$s.txt"
done
want=$("$py" - "$m" "$tmp/g_none.json" <<'PY'
import json, os, sys
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "ref"))
import llama
cfg, sd = llama.load_gguf(sys.argv[1])
st = json.load(open(sys.argv[2]))
seq = list(st["prompt"])
out = []
for _ in range(40):
    y = int(llama.forward(cfg, sd, seq)[-1].argmax())
    out.append(y)
    seq.append(y)
    if y == 2:
        break
print(out)
PY
)
[ "$want" = "$(toks "$tmp/g_none.json")" ] && echo "ok: greedy tokens equal the PyTorch greedy loop" ||
    fail "greedy tokens $(toks "$tmp/g_none.json") differ from PyTorch $want"
for s in recycling lookup aded hybrid; do
    [ "$(toks "$tmp/g_$s.json")" = "$(toks "$tmp/g_none.json")" ] && echo "ok: --spec $s greedy tokens equal plain" ||
        fail "--spec $s greedy tokens differ from plain"
    cmp -s "$tmp/g_$s.txt" "$tmp/g_none.txt" && echo "ok: --spec $s greedy text equals plain" ||
        fail "--spec $s greedy text differs from plain"
done
[ "$(field "$tmp/g_none.json" steps)" = "$(field "$tmp/g_none.json" generated_tokens)" ] &&
    echo "ok: plain decoding takes one step per token" || fail "plain decoding steps != tokens"
n_gen=$(field "$tmp/g_none.json" generated_tokens)
steps=$(field "$tmp/g_recycling.json" steps)
[ "$steps" -lt "$n_gen" ] && echo "ok: recycling needs fewer steps ($steps) than tokens ($n_gen)" ||
    fail "recycling took $steps steps for $n_gen tokens (no draft accepted)"
expect_in "$err" "verification steps" "statistics printed"
expect_in "$err" "acceptance rate" "acceptance rate printed"
# draft-model decoders: greedy tokens equal plain with an unrelated draft model (another seed);
# with the model as its own draft every drafted token is accepted
dm="$tmp/dm.gguf"
"$py" "$ref" make "$dm" --vocab 64 --d 32 --layers 1 --heads 2 --kv-heads 1 --ff 64 --ctx 96 --seed 11 ||
    { echo "FAIL: cannot make the draft model"; exit 1; }
for s in draft draft-tree rsd; do
    run 0 "greedy --spec $s" -- "$C" generate -m "$m" -p "$prompt" -n 40 --temp 0 --spec $s --draft-model "$dm" -t 1 --stats-json "$tmp/d_$s.json"
    [ "$(toks "$tmp/d_$s.json")" = "$(toks "$tmp/g_none.json")" ] && echo "ok: --spec $s greedy tokens equal plain" ||
        fail "--spec $s greedy tokens differ from plain"
    cmp -s "$out" "$tmp/g_none.txt" && echo "ok: --spec $s greedy text equals plain" || fail "--spec $s greedy text differs from plain"
done
run 0 "--spec draft, the model as its own draft" -- "$C" generate -m "$m" -p "$prompt" -n 40 --temp 0 --spec draft --draft-model "$m" --draft-depth 5 --stats-json "$tmp/self.json"
[ "$(toks "$tmp/self.json")" = "$(toks "$tmp/g_none.json")" ] &&
    [ "$(field "$tmp/self.json" accepted)" = "$(field "$tmp/self.json" drafted)" ] &&
    [ "$(field "$tmp/self.json" steps)" -le $(( (n_gen + 5) / 6 + 1 )) ] &&
    echo "ok: self-draft accepts every token, depth 5 gives <= 6 tokens per step" || fail "self-draft: $(cat "$tmp/self.json")"
run 0 "sampling --spec rsd, the model as its own draft" -- "$C" generate -m "$m" -p "$prompt" -n 40 --temp 1.5 --top-k 0 --top-p 1 --min-p 0 --seed 7 --spec rsd --draft-model "$m" --stats-json "$tmp/rsd_s.json"
# 40 tokens, or fewer ending with EOS (id 2)
"$py" -c 'import json, sys; t = json.load(open(sys.argv[1]))["tokens"]; sys.exit(0 if len(t) == 40 or (0 < len(t) < 40 and t[-1] == 2) else 1)' "$tmp/rsd_s.json" &&
    echo "ok: rsd sampling generates 40 tokens or stops at EOS" || fail "rsd sampling: $(cat "$tmp/rsd_s.json")"
run 2 "--draft-depth without a draft model decoder" -- "$C" generate -m "$m" -p x --spec lookup --draft-depth 3
expect_in "$err" "not used by --spec lookup" "--draft-depth misuse: message"
run 2 "--spec draft without --draft-model" -- "$C" generate -m "$m" -p x --spec draft
expect_in "$err" "needs --draft-model" "--spec draft without model: message"
run 2 "--draft-depth 0" -- "$C" generate -m "$m" -p x --spec draft --draft-model "$dm" --draft-depth 0
# --nodes 0: the drafter proposes nothing, one step per token, same tokens
run 0 "--nodes 0" -- "$C" generate -m "$m" -p "$prompt" -n 40 --temp 0 --spec recycling --nodes 0 --stats-json "$tmp/n0.json"
[ "$(toks "$tmp/n0.json")" = "$(toks "$tmp/g_none.json")" ] && [ "$(field "$tmp/n0.json" drafted)" = 0 ] &&
    [ "$(field "$tmp/n0.json" steps)" = "$n_gen" ] && echo "ok: --nodes 0 drafts nothing" || fail "--nodes 0: $(cat "$tmp/n0.json")"
# --nodes caps the tree: no step drafts more than 5 nodes
run 0 "--nodes 5" -- "$C" generate -m "$m" -p "$prompt" -n 40 --temp 0 --spec recycling --nodes 5 --stats-json "$tmp/n5n.json"
[ "$(toks "$tmp/n5n.json")" = "$(toks "$tmp/g_none.json")" ] &&
    [ "$(field "$tmp/n5n.json" drafted)" -le $((5 * $(field "$tmp/n5n.json" steps))) ] &&
    [ "$(field "$tmp/n5n.json" drafted)" -gt 0 ] && echo "ok: --nodes 5 caps the tree" || fail "--nodes 5: $(cat "$tmp/n5n.json")"
# --no-stream prints the same text
run 0 "--no-stream" -- "$C" generate -m "$m" -p "$prompt" -n 40 --temp 0 --no-stream -q
cmp -s "$out" "$tmp/g_none.txt" && echo "ok: --no-stream text equals streamed text" || fail "--no-stream text differs"
[ -s "$err" ] && fail "-q still printed: $(head -1 "$err")" || echo "ok: -q prints no statistics"

# sampling: reproducible with a seed, the same for every drafter, different for another seed
for s in none recycling lookup aded hybrid; do
    run 0 "sampling --spec $s" -- "$C" generate -m "$m" -p "$prompt" -n 40 --temp 1.5 --top-k 0 --top-p 1 --min-p 0 --seed 7 --spec $s --stats-json "$tmp/s_$s.json"
done
run 0 "sampling again" -- "$C" generate -m "$m" -p "$prompt" -n 40 --temp 1.5 --top-k 0 --top-p 1 --min-p 0 --seed 7 --stats-json "$tmp/s_again.json"
[ "$(toks "$tmp/s_again.json")" = "$(toks "$tmp/s_none.json")" ] && echo "ok: same seed, same tokens" || fail "same seed gave other tokens"
for s in recycling lookup aded hybrid; do
    [ "$(toks "$tmp/s_$s.json")" = "$(toks "$tmp/s_none.json")" ] && echo "ok: --spec $s seeded sampling equals plain" ||
        fail "--spec $s seeded sampling differs from plain"
done
run 0 "sampling, seed 8" -- "$C" generate -m "$m" -p "$prompt" -n 40 --temp 1.5 --top-k 0 --top-p 1 --min-p 0 --seed 8 --stats-json "$tmp/s_8.json"
[ "$(toks "$tmp/s_8.json")" != "$(toks "$tmp/s_none.json")" ] && echo "ok: another seed, other tokens" || fail "seeds 7 and 8 gave the same tokens"
[ "$(toks "$tmp/s_none.json")" != "$(toks "$tmp/g_none.json")" ] && echo "ok: sampling differs from greedy" || fail "sampling equals greedy"

# limits: -n, the context, -f and standard input
run 0 "-n 5" -- "$C" generate -m "$m" -p "$prompt" -n 5 --temp 0 --stats-json "$tmp/n5.json"
n=$(field "$tmp/n5.json" generated_tokens)
[ "$n" -le 5 ] && [ "$(toks "$tmp/n5.json" | tr -d '[]')" = "$(toks "$tmp/g_none.json" | tr -d '[]' | cut -d, -f1-$n)" ] &&
    echo "ok: -n 5 gives the first tokens" || fail "-n 5 gave $(toks "$tmp/n5.json")"
run 0 "--ctx 20" -- "$C" generate -m "$m" -p "$prompt" -n 100 --temp 0 --ctx 20 --spec recycling --stats-json "$tmp/c20.json"
np=$(field "$tmp/c20.json" prompt_tokens)
n=$(field "$tmp/c20.json" generated_tokens)
last=$(toks "$tmp/c20.json" | tr -d '[] ' | awk -F, '{print $NF}')
if [ $((np + n)) -le 20 ] && { [ $((np + n)) -eq 20 ] || [ "$last" = 2 ]; }; then echo "ok: --ctx 20 stops at the context"; else
    fail "--ctx 20: prompt $np + generated $n"; fi
printf '%s' "$prompt" >"$tmp/prompt.txt"
run 0 "-f FILE" -- "$C" generate -m "$m" -f "$tmp/prompt.txt" -n 40 --temp 0 -q
cmp -s "$out" "$tmp/g_none.txt" && echo "ok: -f FILE equals -p" || fail "-f FILE output differs"
run 0 "-f -" -- sh -c "\"$C\" generate -m \"$m\" -f - -n 40 --temp 0 -q < \"$tmp/prompt.txt\""
cmp -s "$out" "$tmp/g_none.txt" && echo "ok: -f - equals -p" || fail "-f - output differs"

# bad input
run 2 "no model" -- "$C" generate -p x
expect_in "$err" "no model given" "no model: message"
run 2 "no prompt" -- "$C" generate -m "$m"
expect_in "$err" "exactly one of -p" "no prompt: message"
run 2 "unknown spec" -- "$C" generate -m "$m" -p x --spec magic
expect_in "$err" "unknown --spec 'magic' (valid: none, recycling, lookup, aded, hybrid" "unknown spec: message lists the decoders"
run 2 "empty prompt" -- "$C" generate -m "$m" -p ""
expect_in "$err" "the prompt is empty" "empty prompt: message"
: >"$tmp/empty.txt"
run 1 "empty prompt file" -- "$C" generate -m "$m" -f "$tmp/empty.txt"
expect_in "$err" "the prompt is empty" "empty prompt file: message"
run 2 "--draft-model with a decoder that has none" -- "$C" generate -m "$m" -p x --spec recycling --draft-model "$m"
expect_in "$err" "not used by --spec recycling" "--draft-model misuse: message"
run 2 "both -p and -f" -- "$C" generate -m "$m" -p x -f "$tmp/empty.txt"
run 2 "bad --top-p" -- "$C" generate -m "$m" -p x --top-p 1.5
expect_in "$err" "top-p must be in" "bad --top-p: message"
run 2 "bad --nodes" -- "$C" generate -m "$m" -p x --nodes many
run 2 "bad --ctx" -- "$C" generate -m "$m" -p x --ctx 0
run 2 "unknown option" -- "$C" generate -m "$m" -p x --frobnicate
run 2 "option without value" -- "$C" generate -m "$m" -p x --temp
run 2 "bad -n" -- "$C" generate -m "$m" -p x -n -3
run 2 "bad --temp" -- "$C" generate -m "$m" -p x --temp abc
run 2 "bad --seed" -- "$C" generate -m "$m" -p x --seed -1
run 1 "missing model" -- "$C" generate -m "$tmp/nope.gguf" -p x
expect_in "$err" "nope.gguf" "missing model: names the file"
head -c 3000 "$m" >"$tmp/trunc.gguf"
run 1 "truncated model" -- "$C" generate -m "$tmp/trunc.gguf" -p x
printf 'not a gguf file at all' >"$tmp/junk.gguf"
run 1 "not a GGUF" -- "$C" generate -m "$tmp/junk.gguf" -p x
long=$("$py" -c 'print("t7" * 200)')
run 1 "prompt longer than the context" -- "$C" generate -m "$m" -p "$long" --ctx 50
expect_in "$err" "leaves no room" "long prompt: message"
run 1 "missing prompt file" -- "$C" generate -m "$m" -f "$tmp/none.txt"
run 0 "help" -- "$C" generate --help
expect_in "$out" "recycling" "help lists the drafters"

if [ "$failed" -ne 0 ]; then
    echo "$failed check(s) failed"
    exit 1
fi
echo "all generate CLI checks passed"
