#!/usr/bin/env python3
"""Stage 3 of the owsm_ctc_tiny recipe: a SentencePiece unigram model and the OWSM token list.

    tokenizer.py TEXT_DIR OUT_DIR [--vocab N]

Trains OUT_DIR/bpe.model with spm_train on the training text (all languages, both sides of
every pair) and writes OUT_DIR/tokens.txt. The layout is OWSM-CTC's (../shared/docs/owsm-ctc.md
section 5.1): 0 <blank>, 1 <unk>, 2 <na>, 3 <nolang>, 4..154 the 151 language tokens, 155 <asr>,
156..180 the 25 <st_xxx> targets, then the pieces, then <sos>, <eos>, <sop>. The 179 specials are
user-defined symbols of the SentencePiece model (sp ids 3..181), so token id = sp id - 1 for
sp ids >= 3 and sp id 0 (<unk>) is token 1, exactly as in the released model.
"""
import argparse
import json
import os
import subprocess

LANGS = ("abk afr amh ara asm ast aze bak bas bel ben bos bre bul cat ceb ces chv ckb cmn cnh cym "
         "dan deu dgd div ell eng epo est eus fas fil fin fra frr ful gle glg grn guj hat hau heb hin "
         "hrv hsb hun hye ibo ina ind isl ita jav jpn kab kam kan kat kaz kea khm kin kir kmr kor lao "
         "lav lga lin lit ltz lug luo mal mar mas mdf mhr mkd mlt mon mri mrj mya myv nan nep nld nno "
         "nob npi nso nya oci ori orm ory pan pol por pus quy roh ron rus sah sat sin skr slk slv sna "
         "snd som sot spa srd srp sun swa swe swh tam tat tel tgk tgl tha tig tir tok tpi tsn tuk tur "
         "twi uig ukr umb urd uzb vie vot wol xho yor yue zho zul").split()
ST_TARGETS = "ara cat ces cym deu eng est fas fra ind ita jpn lav mon nld por ron rus slv spa swe tam tur vie zho".split()
SPECIALS = ["<na>", "<nolang>"] + [f"<{c}>" for c in LANGS] + ["<asr>"] + [f"<st_{c}>" for c in ST_TARGETS]
assert len(LANGS) == 151 and len(ST_TARGETS) == 25 and len(SPECIALS) == 179


def token_list(sp):
    pieces = [sp.IdToPiece(i) for i in range(sp.GetPieceSize())]
    if pieces[3:182] != SPECIALS:
        raise SystemExit("tokenizer: the SentencePiece model does not have the OWSM specials at ids 3..181")
    return ["<blank>", "<unk>"] + pieces[3:] + ["<sos>", "<eos>", "<sop>"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("text")
    ap.add_argument("out")
    ap.add_argument("--vocab", type=int, default=6000, help="SentencePiece vocabulary (incl. specials)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    corpus = os.path.join(a.out, "corpus.txt")
    seen = set()
    with open(corpus, "w", encoding="utf-8") as f:
        for name in ("train.jsonl", "own.jsonl"):
            for line in open(os.path.join(a.text, name), encoding="utf-8"):
                r = json.loads(line)
                for t in [r["text"]] + list(r["pair"].values()):
                    if t not in seen:
                        seen.add(t)
                        f.write(t + "\n")
    n_chars = len({c for t in seen for c in t if not c.isspace()})
    vocab = max(a.vocab, n_chars + len(SPECIALS) + 3 + 50)
    prefix = os.path.join(a.out, "bpe")
    subprocess.run(["spm_train", f"--input={corpus}", f"--model_prefix={prefix}", f"--vocab_size={vocab}",
                    "--model_type=unigram", "--character_coverage=1.0", "--normalization_rule_name=nmt_nfkc",
                    "--user_defined_symbols=" + ",".join(SPECIALS), "--input_sentence_size=10000000",
                    "--num_threads=2", "--minloglevel=2", "--hard_vocab_limit=false"], check=True)
    import sentencepiece
    sp = sentencepiece.SentencePieceProcessor()
    sp.Load(prefix + ".model")
    tl = token_list(sp)
    with open(os.path.join(a.out, "tokens.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(tl) + "\n")
    print(f"tokenizer: {len(seen)} sentences, {n_chars} characters, {sp.GetPieceSize()} pieces, "
          f"{len(tl)} tokens -> {prefix}.model")


if __name__ == "__main__":
    main()
