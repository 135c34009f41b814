#!/usr/bin/env python3
"""How well does a model decode in windows longer than the one it was trained in? CER of a
split's utterances by length band, each decoded as one window of every given length.

    window_check.py WORK EXP WEIGHTS [--split dev] [--windows 6,8,10] [--threads T]

WORK is the recipe's work folder (tok/, the split), EXP the training folder (config.yaml,
feats_stats.npz), WEIGHTS a state_dict .pth or train.py's checkpoint.pt. Every utterance is
placed at the start of one window padded with digital silence, as cochlea pads audio shorter
than the model's speech_length, and decoded greedily with its language given (train.py's
validation). CER is over score.py's units (NFKC, lower case, no punctuation, symbols or spaces:
stage 6's scoring). An utterance is scored in every window it fits; bands are cut at
the training window and at each window length. Used to choose stage 5's DECODE_WINDOW (README
"Decoding window").
"""
import argparse
import os
import random
import sys
import types

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train as T  # noqa: E402  (also puts tests/ref on the path)
from score import cer_units  # noqa: E402  (stage 6's CER units)


def frames_of(sec):
    return 1 + int(sec * 16000) // 160


def decode(model, hp, bat, ms, tl, sp):
    errs = chars = 0
    with torch.no_grad():
        model.encoder.embed.spans = None
        for k in range(0, len(ms), bat.a.batch):
            b = ms[k:k + bat.a.batch]
            x, prefix, _, _, _ = bat.next(train=False, ms=b, nolang=False)
            enc, _ = model.encode(x, [[hp.ids["na"]]] * x.size(0), prefix)
            for m, row in zip(b, model.ctc.ctc_lo(enc).argmax(-1).tolist()):
                pieces = [tl[i] for i in T.greedy(row) if not (tl[i].startswith("<") and tl[i].endswith(">"))]
                r = cer_units(m["text"])
                errs += T.edit_distance(r, cer_units(sp.DecodePieces(pieces)))
                chars += len(r)
    return errs, chars


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work")
    ap.add_argument("exp")
    ap.add_argument("weights")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--windows", default="6,8,10", help="window lengths in seconds, comma-separated")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    try:
        wins = sorted({float(w) for w in a.windows.split(",")})
    except ValueError:
        sys.exit(f"window_check: --windows {a.windows!r}: expected seconds, comma-separated")
    torch.set_num_threads(a.threads)
    cfg, hp, model, sp, tl, mean, std = T.load_trained(a.work, a.exp, a.weights)
    train_win = float(cfg["preprocessor_conf"]["speech_length"])
    if wins[0] < train_win:
        sys.exit(f"window_check: windows must be at least the training window ({train_win:g} s)")
    idx, feats = T.load_split(os.path.join(a.work, a.split))
    edges = sorted({train_win, *wins})
    bands, lo = [], 0.0
    for hi in edges:
        lo_f = frames_of(lo) if lo else 0
        ms = [m for m in idx if lo_f < m["frames"] <= frames_of(hi)]
        bands.append((lo, hi, ms))
        lo = hi
    print(f"window_check: {a.split}: {len(idx)} utterances, training window {train_win:g} s; "
          + ", ".join(f"{lo:g}-{hi:g} s: {len(ms)}" for lo, hi, ms in bands)
          + f"; longer than {edges[-1]:g} s (not scored): {sum(m['frames'] > frames_of(edges[-1]) for m in idx)}",
          flush=True)
    for w in wins:
        opts = types.SimpleNamespace(window=w, batch=8, freq_mask=10, st_prob=0.0, nolang_prob=0.5,
                                     device="cpu")
        bat = T.Batcher(opts, idx, feats, sp, tl, mean, std, random.Random(0))
        out, n = [], 0
        for lo, hi, ms in bands:
            if hi > w or not ms:
                continue
            e, c = decode(model, hp, bat, ms, tl, sp)
            n += len(ms)
            out.append(f"{lo:g}-{hi:g} s {100 * e / max(1, c):.2f} % ({e}/{c})")
        print(f"window_check: window {w:g} s ({n} utterances): CER " + "; ".join(out), flush=True)


if __name__ == "__main__":
    main()
