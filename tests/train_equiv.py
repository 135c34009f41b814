#!/usr/bin/env python3
"""The speed-ups of recipes/owsm_ctc_tiny/local/train.py compute what the plain reference model
computes: the cropped conv2d8 (install_cropped_subsampling) and the channels-last depthwise
convolutions (install_fast_depthwise) give the same CTC loss and the same gradients as
tests/ref/owsm_ctc.py's forward, in float32, on a small model with a random batch placed in
windows of silence as training places it; --freeze-subsampling leaves the convolutions without
gradients and every other gradient as it was.

    train_equiv.py TOKENS_TXT
"""
import os
import random
import sys
import types

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "recipes", "owsm_ctc_tiny", "local"))
from checks import FAILS, check  # noqa: E402
import train as T  # noqa: E402

torch.manual_seed(0)
tl = [l.rstrip("\n") for l in open(sys.argv[1], encoding="utf-8")]
a = types.SimpleNamespace(layers=2, d_model=32, heads=2, ffn=64, cgmlp=64, cgmlp_kernel=15, merge_kernel=15,
                          prompt_layers=1, prompt_ffn=32, cross_layers=[2], interctc=[1], window=2.0,
                          interctc_weight=0.5, bf16=False, device="cpu", batch=4, freq_mask=10, lr=1e-3,
                          max_steps=1, nolang_prob=0.5, warmup=1)
hp = T.ref.HParams(T.make_config(a, tl))
base = T.ref.OwsmCtcModel(hp)
state = base.state_dict()
na = hp.ids["na"]
rng = random.Random(0)
B, TW = 4, 1 + int(a.window * 16000) // 160
silence = torch.randn(80)
x = silence.expand(B, TW, 80).clone()
spans = []
for i in range(B):
    n = rng.randint(40, 150)
    lead = rng.randint(0, TW - n)
    x[i, lead:lead + n] = torch.randn(n, 80)
    spans.append((lead, n))
V = len(tl)
eng, asr, first_piece = tl.index("<eng>"), tl.index("<asr>"), tl.index("<st_zho>") + 1
fin = [[eng, asr] + [rng.randrange(first_piece, V - 3) for _ in range(rng.randint(3, 8))] for _ in range(B)]
prefix = torch.tensor([[eng, asr]] * B)


def run(cropped=False, fast=False, frozen=False):
    m = T.ref.OwsmCtcModel(hp)
    m.load_state_dict(state)
    m.train()
    if cropped or frozen:
        T.install_cropped_subsampling(m, silence, frozen)
        m.encoder.embed.spans = spans
    n = T.install_fast_depthwise(m) if fast else 0
    loss, _, _ = T.forward_loss(m, hp, a, x, prefix, fin, fin, na)
    loss.backward()
    return loss.item(), {k: p.grad for k, p in m.named_parameters()}, n


def rel(g, h):
    """Largest difference relative to the tensor's largest gradient (floor 1e-4 for tiny ones)."""
    return ((g - h).abs().max() / h.abs().max().clamp_min(1e-4)).item()


# the attention key biases: softmax ignores them, so their gradient is zero in exact arithmetic
# and what the two forwards give is rounding noise of about 1e-9 either way
ZERO = [k for k in state if k.endswith("attn.linear_k.bias")]


l0, g0, _ = run()
check(l0 > 0, f"plain loss {l0:.4f}")
for name, kw in (("cropped conv2d8", dict(cropped=True)), ("channels-last depthwise", dict(fast=True)),
                 ("both", dict(cropped=True, fast=True))):
    l1, g1, n = run(**kw)
    check(abs(l1 - l0) <= 1e-5 * abs(l0), f"{name}: loss {l1:.6f} against {l0:.6f}")
    worst = max(rel(g1[k], g0[k]) for k in g0 if k not in ZERO)
    check(worst < 1e-4, f"{name}: largest relative gradient difference {worst:.2e} (bound 1e-4)")
    if kw.get("fast"):
        check(n == 4, f"{name}: {n} depthwise convolutions replaced (2 per layer, 2 layers)")
l2, g2, _ = run(cropped=True, frozen=True)
conv = [k for k in g2 if k.startswith("encoder.embed.conv.")]
check(len(conv) == 6 and all(g2[k] is None for k in conv), "--freeze-subsampling: no gradient for the 6 conv tensors")
rest = [k for k in g0 if k not in conv and k not in ZERO]
worst = max(rel(g2[k], g0[k]) for k in rest)
check(abs(l2 - l0) <= 1e-5 * abs(l0) and worst < 1e-4,
      f"--freeze-subsampling: loss {l2:.6f}, other gradients within {worst:.2e} of the plain ones")
sys.exit(1 if FAILS else 0)
