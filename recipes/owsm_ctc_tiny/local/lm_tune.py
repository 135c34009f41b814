#!/usr/bin/env python3
"""Choose the LM weight and insertion bonus on the dev set (README "Language model and beam search").

    lm_tune.py WORK EXP WEIGHTS LM.arpa [--per-lang 40] [--grid 0.3:2.5:8,0.4:3:8] [--threads 2]
               [--langs zho,kor] [--cache FILE]

The dev utterances (the same seeded choice as fitcheck.py: N per language among those that fit
the training window; training voices, unseen sentences) go through the PyTorch model once, with
their language given; their CTC log-posteriors are then decoded greedily and, for each
WEIGHT:BONUS:BEAM of --grid, by the reference beam search (tests/ref/ctc_beam.py, which the C
decoder matches token for token) with the ARPA language model. Prints the CER (train.py's: spaces
removed, no normalisation) overall and per language for each setting. --langs decodes only the
utterances of the given languages; --cache keeps the log-posteriors in FILE (made on the first
run, read on the next ones, which then need no forward pass: a cache belongs to one model).
"""
import argparse
import collections
import os
import pickle
import random
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path[:0] = [HERE, os.path.join(TOP, "tests", "ref")]


def posteriors(a, cfg, hp, model, sp, tl, mean, std):
    """The dev subset's CTC log-posteriors: [(utterance record, array T x V)]."""
    import numpy as np
    import torch
    import train as T

    opts = types.SimpleNamespace(window=float(cfg["preprocessor_conf"]["speech_length"]), batch=24,
                                 freq_mask=10, st_prob=0.0, nolang_prob=0.5, device="cpu")
    idx, feats = T.load_split(os.path.join(a.work, "dev"))
    bat = T.Batcher(opts, idx, feats, sp, tl, mean, std, random.Random(0))
    pool = list(bat.idx)
    random.Random(5).shuffle(pool)
    sub = T.per_language(pool, a.per_lang)
    model.eval()
    model.encoder.embed.spans = None
    utts = []
    with torch.no_grad():
        for k in range(0, len(sub), opts.batch):
            ms = sub[k:k + opts.batch]
            x, prefix, _, _, _ = bat.next(train=False, ms=ms, nolang=False)
            enc, _ = model.encode(x, [[hp.ids["na"]]] * x.size(0), prefix)
            lp = model.ctc.ctc_lo(enc).log_softmax(-1).numpy().astype(np.float32)
            utts += [(m, row) for m, row in zip(ms, lp)]
    return utts


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work")
    ap.add_argument("exp")
    ap.add_argument("weights")
    ap.add_argument("lm")
    ap.add_argument("--per-lang", dest="per_lang", type=int, default=40)
    ap.add_argument("--grid", default="0.3:2.5:8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--langs", default="", help="only these languages (comma-separated)")
    ap.add_argument("--cache", default="", help="log-posteriors file (pickle): made once, then read")
    a = ap.parse_args()
    grid = []
    for spec in a.grid.split(","):
        try:
            w, b, n = spec.split(":")
            grid.append((float(w), float(b), int(n)))
        except ValueError:
            ap.error(f"--grid: {spec!r} is not WEIGHT:BONUS:BEAM")

    import numpy as np
    import torch
    import train as T
    import ctc_beam as CB

    torch.set_num_threads(a.threads)
    cfg, hp, model, sp, tl, mean, std = T.load_trained(a.work, a.exp, a.weights)
    if a.cache and os.path.exists(a.cache):
        with open(a.cache, "rb") as fh:
            utts = pickle.load(fh)
    else:
        utts = posteriors(a, cfg, hp, model, sp, tl, mean, std)
        if a.cache:
            with open(a.cache + ".tmp", "wb") as fh:
                pickle.dump(utts, fh)
            os.replace(a.cache + ".tmp", a.cache)
    if a.langs:
        keep = set(a.langs.split(","))
        utts = [(m, lp) for m, lp in utts if m["lang"] in keep]
    lm = CB.NgramLM(a.lm, tl)
    print(f"lm_tune: {len(utts)} dev utterances, LM order {lm.order} ({len(lm.table)} n-grams)", flush=True)

    def score(decode):
        errs = chars = 0
        per = collections.defaultdict(lambda: [0, 0])
        for m, lp in utts:
            ids = decode(m, lp)
            text = sp.DecodePieces([tl[i] for i in ids if not CB.is_special(tl[i])])
            ref = m["text"].replace(" ", "")
            e = T.edit_distance(ref, text.replace(" ", ""))
            errs += e
            chars += len(ref)
            per[m["lang"]][0] += e
            per[m["lang"]][1] += len(ref)
        return 100 * errs / chars, " ".join(f"{lg} {100 * e / c:.1f}" for lg, (e, c) in sorted(per.items()))

    cer, per = score(lambda m, lp: T.greedy(lp.argmax(-1).tolist()))
    print(f"greedy: CER {cer:.2f} %  ({per})", flush=True)
    for w, b, n in grid:
        cer, per = score(lambda m, lp: CB.decode(lp, tl, hp.ids["blank"], lm, tl.index(f"<{m['lang']}>"),
                                                 w, b, n)[0])
        print(f"weight {w:g} bonus {b:g} beam {n}: CER {cer:.2f} %  ({per})", flush=True)


if __name__ == "__main__":
    main()
