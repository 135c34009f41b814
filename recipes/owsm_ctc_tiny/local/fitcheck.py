#!/usr/bin/env python3
"""Does the model know the language or only its training sentences? CER and language-ID accuracy
on utterances of the training set against the dev set (the same voices, unseen sentences), with
the same greedy decoding as train.py's validation.

    fitcheck.py WORK EXP WEIGHTS [--per-lang N] [--threads T] [--splits train,dev]

WORK is the recipe's work folder (train/, dev/, tok/), EXP the training folder (config.yaml,
feats_stats.npz), WEIGHTS a state_dict .pth or train.py's checkpoint.pt. The N utterances per
language (default 15) are a seeded random choice among those that fit the training window. A
large gap (training CER far below dev CER) says that more sentences, not more steps, are what
the model needs.
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("exp")
    ap.add_argument("weights")
    ap.add_argument("--per-lang", dest="per_lang", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--splits", default="train,dev")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg, hp, model, sp, tl, mean, std = T.load_trained(a.work, a.exp, a.weights)
    opts = types.SimpleNamespace(window=float(cfg["preprocessor_conf"]["speech_length"]), batch=24,
                                 freq_mask=10, st_prob=0.0, nolang_prob=0.5, device="cpu")
    for split in a.splits.split(","):
        idx, feats = T.load_split(os.path.join(a.work, split))
        bat = T.Batcher(opts, idx, feats, sp, tl, mean, std, random.Random(0))
        pool = list(bat.idx)
        random.Random(5).shuffle(pool)
        sub = T.per_language(pool, a.per_lang)
        cer, lid = T.validate(model, hp, opts, bat, sub, tl, sp, hp.ids["na"])
        print(f"fitcheck: {split}: {len(sub)} utterances, CER {100 * cer:.1f} %, LID {100 * lid:.1f} %",
              flush=True)


if __name__ == "__main__":
    main()
