#!/usr/bin/env python3
"""encode.py - stage 2 of recipes/textlm_tiny: encode the documents of TEXT/{train,valid,test}.txt
with the SentencePiece model into token streams OUT/{train,valid,test}.npy (uint16): each
document is [BOS] ids [EOS], documents concatenated in order. OUT/stats.json gets the token,
byte and character counts (per-byte and per-character perplexities divide by them) and a few
round-trip checks (decode(encode(doc)) == doc for every document).

    encode.py TEXT_DIR TOK_DIR      (TOK_DIR holds spm.model)
"""
import json
import os
import sys

import numpy as np
import sentencepiece as spm


def main():
    text, tok = sys.argv[1], sys.argv[2]
    sp = spm.SentencePieceProcessor(model_file=os.path.join(tok, "spm.model"))
    if sp.vocab_size() > 65535:
        sys.exit("encode.py: vocabulary too large for uint16")
    bos, eos = sp.bos_id(), sp.eos_id()
    stats = {"vocab": sp.vocab_size(), "bos": bos, "eos": eos, "unk": sp.unk_id()}
    for part in ("train", "valid", "test"):
        docs = [d for d in open(os.path.join(text, part + ".txt"), encoding="utf-8").read().split("\n") if d]
        ids = sp.encode(docs)
        bad = sum(1 for d, i in zip(docs, ids) if sp.decode(i) != d)
        if bad:
            sys.exit("encode.py: %d %s documents do not round-trip through the tokenizer" % (bad, part))
        n_unk = sum(i.count(sp.unk_id()) for i in ids)
        stream = np.fromiter((t for i in ids for t in [bos] + i + [eos]), dtype=np.uint16)
        np.save(os.path.join(tok, part + ".npy"), stream)
        stats[part] = {"documents": len(docs), "tokens": int(stream.size),
                       "bytes": sum(len(d.encode("utf-8")) for d in docs), "chars": sum(len(d) for d in docs),
                       "unk": n_unk}
        print("encode.py: %s %d documents, %d tokens (%.2f bytes/token)" %
              (part, len(docs), stream.size, stats[part]["bytes"] / stream.size), file=sys.stderr)
    with open(os.path.join(tok, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)


if __name__ == "__main__":
    main()
