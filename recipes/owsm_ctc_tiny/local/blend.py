#!/usr/bin/env python3
"""Interpolate two sets of weights of the same model (a "model soup" of two training runs).

    blend.py A.pth B.pth OUT.pth [--weight-a W]

OUT = W * A + (1 - W) * B for every floating-point tensor (computed in float32, stored in B's
dtype); other tensors (counters, integer buffers) are B's. Both files are state_dicts as train.py
writes them (last.pth, average.pth, best.pth). Useful when B continued A's run: run 15 of this
recipe continued run 14, and their even blend is what RESULTS.md reports as shipped. The two must
have the same keys and shapes; anything else is an error (exit status 2).
"""
import argparse
import sys

import torch


def blend(a, b, weight_a):
    """The interpolated state_dict; ValueError if a and b do not describe the same model."""
    if not 0.0 <= weight_a <= 1.0:
        raise ValueError(f"weight {weight_a} outside [0, 1]")
    if set(a) != set(b):
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        raise ValueError(f"different keys: only in A {only_a[:3]}, only in B {only_b[:3]}")
    out = {}
    for k, tb in b.items():
        ta = a[k]
        if tuple(ta.shape) != tuple(tb.shape):
            raise ValueError(f"{k}: shape {tuple(ta.shape)} in A, {tuple(tb.shape)} in B")
        if tb.is_floating_point():
            out[k] = (weight_a * ta.float() + (1.0 - weight_a) * tb.float()).to(tb.dtype)
        else:
            out[k] = tb.clone()
    return out


def load(path):
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
        raise ValueError(f"{path}: not a state_dict of tensors")
    return sd


def main(argv=None):
    ap = argparse.ArgumentParser(description="interpolate two weight files of the same model")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("out")
    ap.add_argument("--weight-a", type=float, default=0.5, help="weight of A (default 0.5)")
    args = ap.parse_args(argv)
    try:
        out = blend(load(args.a), load(args.b), args.weight_a)
    except (OSError, RuntimeError, ValueError) as e:
        print(f"blend.py: error: {e}", file=sys.stderr)
        return 2
    torch.save(out, args.out)
    print(f"blend.py: {args.out}: {args.weight_a:g} x {args.a} + {1 - args.weight_a:g} x {args.b} "
          f"({len(out)} tensors)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
