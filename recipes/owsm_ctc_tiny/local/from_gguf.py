#!/usr/bin/env python3
"""Weights of a GGUF OWSM-CTC model as a state_dict .pth that train.py --init takes.

    from_gguf.py models/owsm-ctc-tiny.gguf OUT.pth [--tok WORK/tok]

This lets a continuation start from the committed model on a machine where the training
checkpoints of earlier runs are gone: the GGUF file holds every tensor (f16) and the tokenizer.
With --tok, the tokenizer of the recipe's stage 3 is checked against the one inside the model
(a continuation must train on the same token ids); the script fails when they differ.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path[:0] = [os.path.join(TOP, "tests"), os.path.join(TOP, "tests", "ref"), os.path.join(TOP, "tools")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gguf")
    ap.add_argument("out")
    ap.add_argument("--tok", help="the recipe's tokenizer folder (bpe.model, tokens.txt) to check")
    a = ap.parse_args()

    import torch
    import gguf_parity
    import owsm_ctc as ref

    try:
        model, hp, sp, _ = gguf_parity.rebuild_model(a.gguf, ref)
    except gguf_parity.ModelError as e:
        sys.exit(f"from_gguf: {e}")
    if a.tok:
        import sentencepiece
        mine = sentencepiece.SentencePieceProcessor()
        mine.Load(os.path.join(a.tok, "bpe.model"))
        n = sp.GetPieceSize()
        if mine.GetPieceSize() != n or any(mine.IdToPiece(i) != sp.IdToPiece(i) for i in range(n)):
            sys.exit(f"from_gguf: {a.tok}/bpe.model has other pieces than the model's tokenizer")
        with open(os.path.join(a.tok, "tokens.txt"), encoding="utf-8") as f:
            tl = [l.rstrip("\n") for l in f]
        if tl != list(hp.token_list):
            sys.exit(f"from_gguf: {a.tok}/tokens.txt differs from the model's token list")
    sd = model.state_dict()
    torch.save(sd, a.out)
    n_par = sum(v.numel() for v in sd.values() if v.is_floating_point())
    print(f"from_gguf: {len(sd)} tensors ({n_par} values) -> {a.out}")


if __name__ == "__main__":
    main()
