#!/usr/bin/env python3
"""The speed-ups of recipes/owsm_ctc_tiny/local/train.py compute what the plain reference model
computes: the cropped conv2d8 (install_cropped_subsampling) and the channels-last depthwise
convolutions (install_fast_depthwise) give the same CTC loss and the same gradients as
tests/ref/owsm_ctc.py's forward, in float32, on a small model with a random batch placed in
windows of silence as training places it; --freeze-subsampling leaves the convolutions without
gradients and every other gradient as it was; --init with --grow (weights of a shallower model)
starts the deeper model at the same loss.

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

# --grow: the 2-layer model's weights in a 4-layer model (layer 4 with cross-attention, which the
# source's last layer lacks) give the same loss and CTC outputs, and the zeroed branch outputs
# of the grown layers get gradients, so they learn
a4 = types.SimpleNamespace(**{**vars(a), "layers": 4, "cross_layers": [2, 4]})
hp4 = T.ref.HParams(T.make_config(a4, tl))
path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"train_equiv_{os.getpid()}.pth")
# trained LayerNorms are not the fresh gain 1 and bias 0, which would hide a wrong norm_final
gen = torch.Generator().manual_seed(2)
state = {k: (v + 0.3 * torch.randn(v.shape, generator=gen) if "norm" in k and v.is_floating_point() else v)
         for k, v in state.items()}
torch.save(state, path)
try:
    g = T.ref.OwsmCtcModel(hp4)
    T.load_weights(g, path, grow=True)
    g.train()
    torch.manual_seed(1)
    l4, _, _ = T.forward_loss(g, hp4, a, x, prefix, fin, fin, na)
    m = T.ref.OwsmCtcModel(hp)
    m.load_state_dict(state)
    m.train()
    torch.manual_seed(1)
    l2, _, _ = T.forward_loss(m, hp, a, x, prefix, fin, fin, na)
    check(abs(l4.item() - l2.item()) <= 1e-5 * abs(l2.item()),
          f"--grow 2 -> 4 layers: loss {l4.item():.6f} against {l2.item():.6f}")
    with torch.no_grad():
        g.eval(), m.eval()
        e4, e2 = g.encode(x, [[na]] * B, prefix)[0], m.encode(x, [[na]] * B, prefix)[0]
        g.train()
    d = (e4 - e2).abs().max().item()
    check(d < 1e-4, f"--grow: encoder outputs within {d:.2e} of the 2-layer model's (bound 1e-4)")
    l4.backward()
    sd4 = dict(g.named_parameters())
    for k in ("encoder.encoders.2.merge_proj.weight", "encoder.encoders.3.feed_forward.w_2.weight",
              "encoder.encoders.3.cross_attn.linear_out.weight"):
        check(sd4[k].abs().max().item() == 0 and sd4[k].grad.abs().max().item() > 0,
              f"--grow: {k} starts at zero and gets a gradient")
    check(torch.equal(sd4["encoder.encoders.2.cgmlp.channel_proj1.0.weight"],
                      state["encoder.encoders.1.cgmlp.channel_proj1.0.weight"]),
          "--grow: a grown layer's inner weights are the last layer's")
    check(float(sd4["encoder.encoders.3.norm_final.weight"].min()) == 1.0
          and float(sd4["encoder.encoders.3.norm_final.bias"].abs().max()) == 0.0,
          "--grow: a grown layer's norm_final is plain")
    try:
        T.load_weights(T.ref.OwsmCtcModel(hp), path, grow=True)
        check(False, "--grow to as many layers as the weights have is refused")
    except ValueError as e:
        check("growing needs 1 to 1" in str(e), f"--grow to as many layers is refused: {e}")
finally:
    os.remove(path)
sys.exit(1 if FAILS else 0)
