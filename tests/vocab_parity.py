#!/usr/bin/env python3
"""vocab_parity.py - the GGUF text LM tokenizers (src/lm/vocab.c, driven through
`tests/test_lm_vocab --encode MODEL.gguf`) against independent references, on a few thousand
lines of varied text (a seeded multi-script generator, hand-written hard cases, random Unicode,
plus Tatoeba lines in 14 languages when the shared folder is there):

  1. "llama" (SPM): a SentencePiece BPE model trained here with spm_train options that match
     llama.cpp's tokenizer (identity normaliser, no whitespace squeezing, dummy prefix, byte
     fallback), converted into tokenizer.ggml.* keys as llama.cpp's converter does. Ids must be
     identical to python3-sentencepiece's, with and without BOS, and decoding must give
     sentencepiece's text. GATED: zero mismatches.
  2. "gpt2" (byte-level BPE): a vocabulary of the 256 byte characters plus merges learnt here
     (tests/ref/bpe_ref.py), with tokenizer.ggml.pre "gpt2" and "default", and special tokens.
     Ids must equal bpe_ref.py's (with and without special-token parsing) and decoding must give
     the input bytes back. GATED: zero mismatches.
  3. Reported only (not gated): a SentencePiece unigram model, and the released OWSM bpe.model
     (unigram, nmt_nfkc) when the shared folder is there, both on text sentencepiece has already
     normalised: llama.cpp's merge-by-score is not the unigram Viterbi search, so some lines differ.

Exit status 0 if the gated checks match, 1 otherwise.
"""
import argparse
import glob
import os
import random
import re
import subprocess
import sys

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "ref"))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import bpe_ref  # noqa: E402
import gguf  # noqa: E402

# ---- corpus ------------------------------------------------------------------------------------

SCRIPTS = {
    "latin": "abcdefghijklmnopqrstuvwxyz",
    "latin_ext": "\u00e0\u00e1\u00e2\u00e4\u00e7\u00e8\u00e9\u00ea\u00f1\u00f6\u00fc\u00df\u0142\u0107\u017c\u0161\u0159\u011f\u0131\u00f8\u00e5",
    "greek": "\u03b1\u03b2\u03b3\u03b4\u03b5\u03b6\u03b7\u03b8\u03b9\u03ba\u03bb\u03bc\u03bd\u03be\u03bf\u03c0\u03c1\u03c3\u03c4\u03c5\u03c6\u03c7\u03c8\u03c9\u03ac\u03ad",
    "cyrillic": "\u0430\u0431\u0432\u0433\u0434\u0435\u0436\u0437\u0438\u0439\u043a\u043b\u043c\u043d\u043e\u043f\u0440\u0441\u0442\u0443\u0444\u0445\u0446\u0447\u0448\u044b\u044f",
    "arabic": "\u0627\u0628\u062a\u062b\u062c\u062d\u062e\u062f\u0631\u0632\u0633\u0634\u0635\u0639\u0641\u0642\u0643\u0644\u0645\u0646\u0647\u0648\u064a",
    "devanagari": "\u0915\u0916\u0917\u0918\u091a\u091c\u091f\u0921\u0924\u0926\u0928\u092a\u092c\u092e\u092f\u0930\u0932\u0935\u0938\u0939\u093e\u093f\u0940\u0941\u094d",
    "cjk": "\u7684\u4e00\u662f\u4e0d\u4e86\u4eba\u6211\u5728\u6709\u4ed6\u8fd9\u4e2d\u5927\u6765\u4e0a\u56fd\u4e2a\u5230\u8bf4\u4eec",
    "kana": "\u3042\u3044\u3046\u3048\u304a\u304b\u304d\u304f\u3051\u3053\u3055\u3057\u3059\u305b\u305d\u30a2\u30a4\u30a6\u30a8\u30aa\u30ab",
    "hangul": "\uac00\ub098\ub2e4\ub77c\ub9c8\ubc14\uc0ac\uc544\uc790\ucc28\uce74\ud0c0\ud30c\ud558\ud55c\uad6d\uc5b4",
}
PUNCT = list(".,;:!?-()[]\"'/&%$#@*+=<>^~|`_\\{}") + ["\u2014", "\u2026", "\u00ab", "\u00bb", "\u3002", "\u3001", "\u00bf", "\u00a1"]
EMOJI = ["\U0001f600", "\U0001f44d", "\U0001f3fd", "\u2764\ufe0f", "\U0001f1ef\U0001f1f5", "\U0001f468\u200d\U0001f469"]
SPACES = [" ", " ", " ", " ", "  ", "\t", " \t ", "   "]


def synthetic(n, seed):
    """Lines of made-up words in several scripts with numbers, punctuation, emoji, contractions
    and odd spacing; each script has a fixed lexicon so that words repeat (BPE has something
    to learn)."""
    rng = random.Random(seed)
    lex = {}
    lrng = random.Random(1234)
    for name, chars in SCRIPTS.items():
        lex[name] = ["".join(lrng.choice(chars) for _ in range(lrng.randint(1, 7))) for _ in range(120)]
    names = list(SCRIPTS)
    out = []
    for _ in range(n):
        main = rng.choice(names)
        parts = []
        for _ in range(rng.randint(1, 14)):
            r = rng.random()
            if r < 0.62:
                w = rng.choice(lex[main if rng.random() < 0.85 else rng.choice(names)])
                if rng.random() < 0.1:
                    w = w.capitalize()
                if rng.random() < 0.05:
                    w += rng.choice(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'"])
            elif r < 0.72:
                w = str(rng.randint(0, 10 ** rng.randint(1, 9)))
            elif r < 0.88:
                w = "".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 3)))
            elif r < 0.93:
                w = rng.choice(EMOJI)
            else:
                w = rng.choice(["3.14", "1,000", "\u0663\u0664", "\uff11\uff12", "x\u00b2", "\u00bd", "\u2167"])
            parts.append(w)
            parts.append(rng.choice(SPACES) if rng.random() < 0.15 else " ")
        line = "".join(parts)
        if rng.random() < 0.8:
            line = line.strip(" ")
        out.append(line)
    return out


def handwritten():
    return [
        "", " ", "  ", "\t", " a", "a ", "  two leading", "trailing two  ", "a  b   c    d", "tab\tsep\tfields",
        "carriage\rreturn", "it's we're they've I'm you'll he'd don't IT'S", "''s 's 'x", "12345 1234567 0 00 000",
        "3.14159 1,000,000 \u0661\u0662\u0663 \u0967\u0968 \uff10\uff11", "e\u0301 vs \u00e9 n\u0303", "\u00a0nbsp\u00a0and\u3000ideographic",
        "\u2028line sep\u2029para", "zero\u200bwidth\u200djoiner", "emoji \U0001f600\U0001f602 \U0001f468\u200d\U0001f469\u200d\U0001f467",
        "<s> </s> <unk> literal", "a<s>b", "<|endoftext|> and <|user|>", "$100 + 5 = <105> ^_^ ~ |x|", "!!!???...",
        "\u4f60\u597d\uff0c\u4e16\u754c\uff01", "\u3053\u3093\u306b\u3061\u306f", "\uc548\ub155\ud558\uc138\uc694", "\u0645\u0631\u062d\u0628\u0627",
        "\u0928\u092e\u0938\u094d\u0924\u0947", "\u0417\u0434\u0440\u0430\u0432\u0441\u0442\u0432\u0443\u0439\u0442\u0435", "\u0393\u03b5\u03b9\u03ac",
        "control\x01\x07\x1b\x7f chars", "a\x00b", "\u0378 unassigned \ue000 private \U000e0001 tag",
        "\u2581 literal lower block \u2581\u2581", "ab" * 100, "x " * 80, "\U0001f600" * 20,
    ]


BLOCKS = [(0x20, 0x7e), (0xa0, 0x24f), (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x6ff), (0x900, 0x97f),
          (0xe00, 0xe7f), (0x1100, 0x11ff), (0x2000, 0x206f), (0x2070, 0x22ff), (0x3000, 0x30ff), (0x4e00, 0x4fff),
          (0xac00, 0xacff), (0xfe00, 0xffef), (0x1f300, 0x1f6ff), (0x10000, 0x1007f), (0x0300, 0x036f)]
WS = ["\t", "\x0b", "\x0c", "\r", "\x85", "\u00a0", "\u1680", "\u2003", "\u2009", "\u202f", "\u205f", "\u3000", "\x1c"]


def random_unicode(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        cs = []
        for _ in range(rng.randint(1, 40)):
            r = rng.random()
            if r < 0.2:
                cs.append(" ")
            elif r < 0.27:
                cs.append(rng.choice(WS))
            elif r < 0.35:
                c = rng.randint(0, 0xffff)
                while 0xd800 <= c <= 0xdfff or c == 0x0a:
                    c = rng.randint(0, 0xffff)
                cs.append(chr(c))
            else:
                lo, hi = rng.choice(BLOCKS)
                cs.append(chr(rng.randint(lo, hi)))
        out.append("".join(cs))
    return out


def tatoeba(shared, per_file, skip):
    files = sorted(glob.glob(os.path.join(shared, "data", "tatoeba", "eng-*.tsv")))
    out = []
    for f in files:
        rows = [r for r in open(f, encoding="utf-8").read().split("\n") if r.strip()]
        for r in rows[skip:skip + per_file]:
            out.extend(c for c in r.split("\t") if "\n" not in c)
    return out


# ---- the C side --------------------------------------------------------------------------------

def run_driver(driver, model, lines, flags=()):
    data = "".join(l + "\n" for l in lines).encode("utf-8")
    p = subprocess.run([driver, "--encode", model] + list(flags), input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if p.returncode != 0:
        sys.exit("vocab_parity: %s failed (%d): %s" % (driver, p.returncode, p.stderr.decode(errors="replace")))
    res = []
    for row in p.stdout.decode().split("\n")[:-1]:
        ids, hexd = row.split("\t")
        res.append(([int(x) for x in ids.split()], bytes.fromhex(hexd)))
    if len(res) != len(lines):
        sys.exit("vocab_parity: %d results for %d lines" % (len(res), len(lines)))
    return res


class Tally:
    def __init__(self, name):
        self.name, self.n, self.bad, self.shown = name, 0, 0, 0

    def check(self, what, line, ours, theirs):
        self.n += 1
        if ours != theirs:
            self.bad += 1
            if self.shown < 5:
                self.shown += 1
                print("  MISMATCH %s %s on %r:\n    ours   %r\n    theirs %r" % (self.name, what, line[:120], ours, theirs))

    def report(self):
        print("%-40s %6d checks, %5d mismatches" % (self.name, self.n, self.bad))
        return self.bad


# ---- SentencePiece -> GGUF (llama.cpp's converter) -----------------------------------------------

def pb_varint(b, i):
    v, s = 0, 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7f) << s
        s += 7
        if not c & 0x80:
            return v, i


def pb_fields(b):
    i, out = 0, []
    while i < len(b):
        tag, i = pb_varint(b, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            val, i = pb_varint(b, i)
        elif wt == 1:
            val, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = pb_varint(b, i)
            val, i = b[i:i + n], i + n
        elif wt == 5:
            val, i = b[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.append((num, val))
    return out


def spm_to_gguf(model_path, out_path):
    """ModelProto pieces (1: piece, 2: score, 3: type) -> tokens/scores/token_type, as llama.cpp's
    convert_hf_to_gguf.py; add_space_prefix = normalizer_spec.add_dummy_prefix."""
    import struct
    sp = spm.SentencePieceProcessor(model_file=model_path)
    tokens, scores, types, add_prefix = [], [], [], True
    for num, val in pb_fields(open(model_path, "rb").read()):
        if num == 1:
            piece, score, typ = b"", 0.0, 1
            for n2, v2 in pb_fields(val):
                if n2 == 1:
                    piece = v2
                elif n2 == 2:
                    score = struct.unpack("<f", v2)[0]
                elif n2 == 3:
                    typ = v2
            tokens.append(piece)
            scores.append(score)
            types.append(typ)
        elif num == 3:
            for n2, v2 in pb_fields(val):
                if n2 == 3:
                    add_prefix = bool(v2)
    w = gguf.GGUFWriter()
    w.add_string("general.architecture", "llama")
    w.add_string("tokenizer.ggml.model", "llama")
    w.add_string_array("tokenizer.ggml.tokens", tokens)
    w.add_array("tokenizer.ggml.scores", scores, "f32")
    w.add_array("tokenizer.ggml.token_type", types, "i32")
    for key, i in (("bos", sp.bos_id()), ("eos", sp.eos_id()), ("unknown", sp.unk_id()), ("padding", sp.pad_id())):
        if i >= 0:
            w.add_u32("tokenizer.ggml.%s_token_id" % key, i)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_bool("tokenizer.ggml.add_eos_token", False)
    w.add_bool("tokenizer.ggml.add_space_prefix", add_prefix)
    w.write(out_path)
    return sp


def check_spm(driver, work, name, model, lines, gated):
    g = os.path.join(work, re.sub(r"\W+", "_", name) + ".gguf")
    sp = spm_to_gguf(model, g)
    ours = run_driver(driver, g, lines)
    if not gated:  # ids only, lines that differ
        t = Tally(name + " (reported)")
        t.shown = 5
        for line, (ids, _) in zip(lines, ours):
            t.check("ids", line, ids, sp.encode(line))
        t.report()
        return 0
    t = Tally(name)
    bos = run_driver(driver, g, lines, ["--add-special"])
    for line, (ids, text), (ids_b, _) in zip(lines, ours, bos):
        ref = sp.encode(line)
        t.check("ids", line, ids, ref)
        t.check("ids+bos", line, ids_b, [sp.bos_id()] + ref)
        t.check("decode", line, text, sp.decode(ids).encode("utf-8"))
    return t.report()


def sp_normalised(sp, line):
    """The text sentencepiece's normaliser makes of `line` (its pieces joined), without the
    dummy prefix: feeding it to llama.cpp's tokenizer leaves only the segmentation to compare."""
    s = "".join(sp.encode(line, out_type=str)).replace("\u2581", " ")
    return s[1:] if s.startswith(" ") else s


def check_spm_normalised(driver, work, name, model, lines):
    g = os.path.join(work, re.sub(r"\W+", "_", name) + ".gguf")
    sp = spm_to_gguf(model, g)
    norm = [sp_normalised(sp, l) for l in lines]
    norm = [l for l in norm if "\n" not in l]
    ours = run_driver(driver, g, norm)
    t = Tally(name + " (reported)")
    t.shown = 5  # no listing
    for line, (ids, _) in zip(norm, ours):
        t.check("ids", line, ids, sp.encode(line))
    t.report()


# ---- GPT-2 BPE ----------------------------------------------------------------------------------

SPECIALS = [("<|endoftext|>", 3), ("<|user|>", 4), ("<s>", 3)]


def bpe_gguf(path, merges, pre):
    tokens = [bpe_ref.BYTE_ENC[b] for b in range(256)]
    seen = set(tokens)
    for m in merges:
        t = m.replace(" ", "", 1)
        if t not in seen:
            seen.add(t)
            tokens.append(t)
    types = [1] * len(tokens)
    for s, ty in SPECIALS:
        tokens.append(s)
        types.append(ty)
    w = gguf.GGUFWriter()
    w.add_string("general.architecture", "llama")
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", pre)
    w.add_string_array("tokenizer.ggml.tokens", tokens)
    w.add_array("tokenizer.ggml.token_type", types, "i32")
    w.add_string_array("tokenizer.ggml.merges", merges)
    w.add_u32("tokenizer.ggml.bos_token_id", len(tokens) - 3)
    w.add_u32("tokenizer.ggml.eos_token_id", len(tokens) - 3)
    w.write(path)
    return bpe_ref.BPE(tokens, merges, types, pre)


def check_bpe(driver, work, merges, pre, lines):
    path = os.path.join(work, "bpe_%s.gguf" % pre)
    ref = bpe_gguf(path, merges, pre)
    t = Tally("gpt2 bpe, pre %s" % pre)
    plain = run_driver(driver, path, lines)
    special = run_driver(driver, path, lines, ["--parse-special"])
    for line, (ids, text), (ids_s, text_s) in zip(lines, plain, special):
        raw = line.encode("utf-8")
        t.check("ids", line, ids, ref.encode(line))
        t.check("ids+special", line, ids_s, ref.encode(line, parse_special=True))
        t.check("decode", line, text, raw)
        t.check("decode ref", line, ref.decode(ids), raw)
        t.check("decode+special", line, text_s, ref.decode(ids_s))
    return t.report()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--shared", default="")
    args = ap.parse_args()

    have_shared = bool(args.shared) and os.path.isdir(os.path.join(args.shared, "data", "tatoeba"))
    test = synthetic(2000, 1) + handwritten() + random_unicode(600, 2)
    train = synthetic(3000, 3)
    if have_shared:
        test += tatoeba(args.shared, 60, 0)
        train += tatoeba(args.shared, 200, 60)
    else:
        print("note: %s/data/tatoeba is absent; synthetic text only" % (args.shared or "(no shared folder)"))
    test = [l for l in test if "\n" not in l]
    print("corpus: %d test lines, %d training lines" % (len(test), len(train)))

    text_file = os.path.join(args.work, "train.txt")
    with open(text_file, "w", encoding="utf-8") as f:
        for l in train:
            f.write(l + "\n")
    common = dict(input=text_file, vocab_size=2000, character_coverage=0.9995, num_threads=1,
                  minloglevel=2, normalization_rule_name="identity", remove_extra_whitespaces=False,
                  add_dummy_prefix=True, byte_fallback=True)
    spm.SentencePieceTrainer.train(model_prefix=os.path.join(args.work, "spm_bpe"), model_type="bpe", **common)
    spm.SentencePieceTrainer.train(model_prefix=os.path.join(args.work, "spm_unigram"), model_type="unigram", **common)

    bad = 0
    bad += check_spm(args.driver, args.work, "llama spm (bpe model)", os.path.join(args.work, "spm_bpe.model"), test, True)
    check_spm(args.driver, args.work, "llama spm (unigram model)", os.path.join(args.work, "spm_unigram.model"), test, False)
    owsm = os.path.join(args.shared, "owsm", "bpe.model") if args.shared else ""
    if owsm and os.path.isfile(owsm):
        check_spm_normalised(args.driver, args.work, "OWSM bpe.model (unigram)", owsm, test)

    merges = bpe_ref.learn_merges(train[:1500], 400)
    print("gpt2: learnt %d merges" % len(merges))
    for pre in ("gpt2", "default"):
        bad += check_bpe(args.driver, args.work, merges, pre, test)
    print("vocab_parity: %s" % ("OK" if bad == 0 else "FAILED (%d mismatches)" % bad))
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
