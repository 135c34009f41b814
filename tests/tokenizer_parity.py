#!/usr/bin/env python3
"""tokenizer_parity.py - `cochlea tokenize` against python3-sentencepiece, piece for piece.

For the released OWSM bpe.model and for small models trained here (unigram, BPE, char, word;
byte fallback, user-defined and control symbols, other normalisation rules, a denormaliser, and
edited copies with UNUSED pieces and non-default normaliser flags), on a corpus of Tatoeba lines
in 14 languages plus hand-written and random hard cases (odd whitespace, emoji, combining marks,
full-width forms, control characters, invalid UTF-8, NUL bytes, empty lines):
  - encoding: the pieces and the ids of every line must be identical;
  - decoding: the ids of every line and random id sequences must decode to identical text;
  - decoding pieces: the pieces of every line must decode to identical text.
Raw bytes are fed to sentencepiece as Python bytes (its API accepts them and answers in bytes).
Exit status 0 if everything matches, 1 otherwise.
"""
import argparse
import glob
import os
import random
import subprocess
import sys

import sentencepiece as spm

PER_FILE = 100  # Tatoeba pairs per language pair in the test corpus (both columns are used)
TRAIN_PER_FILE = 250  # further pairs per language pair for training the small models


# ---- corpus ----------------------------------------------------------------------------------

def tatoeba(shared):
    files = sorted(glob.glob(os.path.join(shared, "data", "tatoeba", "eng-*.tsv")))
    if len(files) < 13:
        sys.exit("tokenizer_parity: expected 13 Tatoeba files in %s/data/tatoeba, found %d" % (shared, len(files)))
    test, train, langs = [], [], {"eng"}
    for f in files:
        langs.add(os.path.basename(f)[4:7])
        rows = [r for r in open(f, "rb").read().split(b"\n") if r.strip()]
        for i, r in enumerate(rows[:PER_FILE + TRAIN_PER_FILE]):
            cols = r.split(b"\t")
            (test if i < PER_FILE else train).extend(cols)
    return test, train, sorted(langs)


def handwritten():
    s = [
        "", " ", "   ", "\t", " \t \r ", "\u3000", "\u00a0\u00a0",
        "  leading and trailing spaces  ", "many     inner      spaces", "tab\tseparated\tfields",
        "carriage\rreturn", "line\u2028separator and\u2029paragraph", "next\u0085line",
        "nbsp\u00a0inside and\u202fnarrow and\u2009thin and\u200bzero\u200bwidth",
        "zwj\u200dand zwnj\u200cand bom\ufeffhere", "soft\u00adhyphen",
        "e\u0301 vs \u00e9, n\u0303 vs \u00f1, A\u030a vs \u00c5 vs \u212b",
        "Vi\u1ec7t Nam ti\u1ebfng Vi\u00ea\u0323\u0302t", "\u1100\u1161\u11a8 \uac01 \u3131\u314f",
        "\u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd \u05e2\u05d5\u05b9\u05dc\u05b8\u05dd", "\u0939\u093f\u0928\u094d\u0926\u0940 \u0915\u094d\u0937",
        "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22\u0e07\u0e48\u0e32\u0e22", "\u1f08\u03b8\u1fc6\u03bd\u03b1\u03b9 \u03ac\u03ad\u03ae",
        "\uff28\uff45\uff4c\uff4c\uff4f\u3000\uff37\uff4f\uff52\uff4c\uff44\uff01\uff1f \uff10\uff11\uff12\uff13",
        "\uff76\uff80\uff76\uff85 \uff8a\uff9f\uff8b\uff9f \u30ab\u30bf\u30ab\u30ca", "\ufb01\ufb02\ufb00 \u2460\u2461\u2473 \u216b\u2173 x\u00b2 \u00bd \u2153",
        "\ufdfa \ufdfb \u33a1 \u3392 \u2122 \u2116 \u3300 \u337b", "\u2126 \u212a \u2160 \u24b6 \U0001d400\U0001d41a",
        "emoji \U0001f600\U0001f602\U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f1ef\U0001f1f5 \u2764\ufe0f",
        "\U0001f600\U0001f600\U0001f600\U0001f600", "\U00020000\U0002a6d6 \U0001f9d1\u200d\U0001f4bb",
        "control\x01\x02\x07\x08\x0b\x0c\x1b\x7f chars", "\x1f\x1e\x1d", "del\x7fdel",
        "<eng><st_deu> Hello <na> world<asr>", "<nolang>", "<unk> <s> </s> <pad>", "<sep>text<sep>", "[MASK] ab abab",
        "\u2581 literal \u2581\u2581 lower blocks\u2581", "__init__ a_b", "https://example.com/a?b=c&d=e#f",
        "1234567890 3.14159 1,000,000 \u0661\u0662\u0663 \u0967\u0968", "ALL CAPS SENTENCE. MiXeD CaSe",
        "\u00c0\u00c9\u00ce\u00d5\u00dc \u00df \u1e9e \u0130stanbul \u0131", "\u0414\u043e\u0431\u0440\u043e\u0435 \u0443\u0442\u0440\u043e\u0301",
        "\u0645\u0631\u062d\u0628\u0627\u064b \u0628\u0643\u0645\u0651 \ufefb", "\u4f60\u597d\uff0c\u4e16\u754c\uff01 \u3053\u3093\u306b\u3061\u306f\u3002 \uc548\ub155\ud558\uc138\uc694",
        "ab" * 200, "\u3042" * 300, "x " * 300, "\U0001f600" * 50,
    ]
    out = [t.encode("utf-8") for t in s]
    out += [
        b"invalid \xff byte", b"\xfe\xff", b"lone \x80 continuation \xbf", b"overlong \xc0\x80 \xc1\xbf \xe0\x80\x80",
        b"truncated \xe2\x82", b"truncated at end \xe2", b"\xf0\x9f\x98", b"surrogate \xed\xa0\x80 \xed\xbf\xbf",
        b"too big \xf4\x90\x80\x80 \xf5\x80\x80\x80 \xf8\x88\x80\x80\x80", b"mixed \xe4\xbd\xa0\xff\xe5\xa5\xbd",
        b"\xef\xbf\xbd real replacement char", b"a\x00b", b"\x00", b"\x00\x00 the\x00", b"<e\x00ng> \x00<eng>",
        b"latin1 caf\xe9 na\xefve", b"\xc3", b"\xc3\xa9\xcc", b"   \xff   \xff   ",
    ]
    return out


def random_lines(n, seed):
    rng = random.Random(seed)
    ranges = [(0x20, 0x7e), (0xa0, 0x24f), (0x300, 0x36f), (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x6ff),
              (0x900, 0x97f), (0xe00, 0xe7f), (0x1100, 0x11ff), (0x2000, 0x206f), (0x2100, 0x24ff),
              (0x3000, 0x30ff), (0x3130, 0x318f), (0x3200, 0x33ff), (0x4e00, 0x4fff), (0xac00, 0xad00),
              (0xf900, 0xfaff), (0xfb00, 0xfdff), (0xfe30, 0xfeff), (0xff00, 0xffef), (0x1d400, 0x1d7ff),
              (0x1f300, 0x1f6ff), (0x1f900, 0x1f9ff)]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(0, 40)):
            r = rng.random()
            if r < 0.35:
                parts.append(bytes([rng.randint(0x20, 0x7e)]))
            elif r < 0.45:
                parts.append(rng.choice([b" ", b"  ", b"\t", b"\r", b"\xe3\x80\x80", b"\xc2\xa0"]))
            elif r < 0.9:
                lo, hi = rng.choice(ranges)
                c = rng.randint(lo, hi)
                if 0xd800 <= c <= 0xdfff:
                    c = 0x41
                parts.append(chr(c).encode("utf-8"))
            else:
                b = rng.randint(0, 255)
                parts.append(bytes([b if b != 0x0a else 0xff]))
        out.append(b"".join(parts))
    return out


# ---- minimal protobuf editing (to make model variants that spm_train cannot) -----------------

def pb_varint(b, i):
    v, s = 0, 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7f) << s
        s += 7
        if not c & 0x80:
            return v, i


def pb_enc_varint(v):
    out = bytearray()
    while True:
        c = v & 0x7f
        v >>= 7
        if v:
            out.append(c | 0x80)
        else:
            out.append(c)
            return bytes(out)


def pb_fields(b):
    """[(field number, wire type, raw value bytes)] of one message."""
    i, out = 0, []
    while i < len(b):
        tag, i = pb_varint(b, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            j = pb_varint(b, i)[1]
            val = b[i:j]
        elif wt == 1:
            j = i + 8
            val = b[i:j]
        elif wt == 2:
            n, i = pb_varint(b, i)
            j = i + n
            val = b[i:j]
        elif wt == 5:
            j = i + 4
            val = b[i:j]
        else:
            raise ValueError("wire type %d" % wt)
        out.append((num, wt, val))
        i = j
    return out


def pb_join(fields):
    out = bytearray()
    for num, wt, val in fields:
        out += pb_enc_varint(num << 3 | wt)
        if wt == 2:
            out += pb_enc_varint(len(val))
        out += val
    return bytes(out)


def pb_set(fields, num, wt, val):
    """Replace (or append) a scalar field of a message."""
    fields = [f for f in fields if f[0] != num]
    fields.append((num, wt, val))
    return fields


def edit_model(blob, piece_type=None, trainer=None, normalizer=None):
    """piece_type(index, piece bytes, type) -> new type or None; trainer/normalizer: field edits."""
    top = pb_fields(blob)
    out, k = [], 0
    for num, wt, val in top:
        if num == 4:  # self_test_data no longer holds for an edited model
            continue
        if num == 1 and piece_type:
            f = pb_fields(val)
            piece = next((v for n, w, v in f if n == 1), b"")
            t = next((pb_varint(v, 0)[0] for n, w, v in f if n == 3), 1)
            nt = piece_type(k, piece, t)
            if nt is not None:
                val = pb_join(pb_set(f, 3, 0, pb_enc_varint(nt)))
            k += 1
        elif num == 2 and trainer:
            f = pb_fields(val)
            for n, w, v in trainer:
                f = pb_set(f, n, w, v)
            val = pb_join(f)
        elif num == 3 and normalizer:
            f = pb_fields(val)
            for n, w, v in normalizer:
                f = pb_set(f, n, w, v)
            val = pb_join(f)
        out.append((num, wt, val))
    return pb_join(out)


# ---- models ----------------------------------------------------------------------------------

REUSE = False  # --reuse: keep models already trained in the work folder (for debugging)


def train(work, name, text_file, **kw):
    prefix = os.path.join(work, name)
    if REUSE and os.path.exists(prefix + ".model"):
        return prefix + ".model"
    args = dict(input=text_file, model_prefix=prefix, num_threads=2, minloglevel=2, hard_vocab_limit=False,
                character_coverage=0.98)
    args.update(kw)
    spm.SentencePieceTrainer.train(**args)
    return prefix + ".model"


def make_models(work, shared, train_lines):
    text_file = os.path.join(work, "train.txt")
    with open(text_file, "wb") as f:
        f.write(b"\n".join(train_lines) + b"\n")
    tsv = os.path.join(work, "denorm.tsv")
    with open(tsv, "w") as f:
        f.write("61 62\t58\n2C\t3B\n2581\t5F\n")  # "ab" -> "X", "," -> ";", U+2581 -> "_"
    models = [("owsm", os.path.join(shared, "owsm", "bpe.model"))]
    uds = "<sep>,<eng>,ab,\U0001f600,[MASK]"
    models.append(("unigram", train(work, "unigram", text_file, model_type="unigram", vocab_size=1500,
                                    user_defined_symbols=uds, control_symbols="<ctrl>")))
    models.append(("unigram_bytes", train(work, "unigram_bytes", text_file, model_type="unigram", vocab_size=2000,
                                          byte_fallback=True,
                                          user_defined_symbols="<sep>,<eng>")))
    models.append(("bpe", train(work, "bpe", text_file, model_type="bpe", vocab_size=1500,
                                user_defined_symbols=uds, self_test_sample_size=200)))
    models.append(("bpe_bytes", train(work, "bpe_bytes", text_file, model_type="bpe", vocab_size=2000,
                                      byte_fallback=True, user_defined_symbols="<sep>")))
    models.append(("unigram_identity", train(work, "unigram_identity", text_file, model_type="unigram",
                                             vocab_size=1800, normalization_rule_name="identity",
                                             add_dummy_prefix=False, remove_extra_whitespaces=False)))
    models.append(("bpe_nfkc_cf_suffix", train(work, "bpe_nfkc_cf_suffix", text_file, model_type="bpe",
                                               vocab_size=1800, normalization_rule_name="nmt_nfkc_cf",
                                               treat_whitespace_as_suffix=True)))
    models.append(("char", train(work, "char", text_file, model_type="char", vocab_size=2000,
                                 user_defined_symbols="<sep>")))
    models.append(("word", train(work, "word", text_file, model_type="word", vocab_size=3000)))
    models.append(("unigram_denorm", train(work, "unigram_denorm", text_file, model_type="unigram",
                                           vocab_size=1800, denormalization_rule_tsv=tsv)))

    # edited variants
    def every(n, only):
        return lambda i, piece, t: 5 if (t == 1 and i % n == 0 and len(piece) > only) else None
    blob = open(os.path.join(shared, "owsm", "bpe.model"), "rb").read()
    variants = [
        ("owsm_unused", blob, dict(piece_type=every(5, 0),
                                   trainer=[(44, 2, b"<?>")])),  # unk_surface
        ("bpe_unused", open(models[3][1], "rb").read(), dict(piece_type=every(3, 2))),
        ("unigram_noescape", open(models[1][1], "rb").read(),
         dict(normalizer=[(5, 0, b"\x00")])),  # escape_whitespaces = false
        ("unigram_nodummy_keepws", open(models[1][1], "rb").read(),
         dict(normalizer=[(3, 0, b"\x00"), (4, 0, b"\x00")])),
        ("bpe_bytes_nodummy", open(models[4][1], "rb").read(), dict(normalizer=[(3, 0, b"\x00")])),
    ]
    for name, b, kw in variants:
        path = os.path.join(work, name + ".model")
        with open(path, "wb") as f:
            f.write(edit_model(b, **kw))
        models.append((name, path))
    return models


# ---- comparison ------------------------------------------------------------------------------

def run_cochlea(cochlea, args, data):
    p = subprocess.run([cochlea, "tokenize"] + args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError("cochlea tokenize %s failed (%d): %s" % (" ".join(args), p.returncode,
                                                                    p.stderr.decode(errors="replace")))
    out = p.stdout.split(b"\n")
    if out[-1] != b"":
        raise RuntimeError("cochlea tokenize %s: output does not end with a newline" % " ".join(args))
    return out[:-1]


def show(b, n=160):
    r = repr(b)
    return r if len(r) <= n else r[:n] + "..."


class Tally:
    def __init__(self):
        self.bad = 0
        self.shown = 0

    def mismatch(self, what, inp, ours, theirs):
        self.bad += 1
        if self.shown < 6:
            self.shown += 1
            print("  MISMATCH %s\n    input:  %s\n    cochlea: %s\n    python:  %s"
                  % (what, show(inp), show(ours), show(theirs)))


def random_id_lines(sp, n, seed):
    rng = random.Random(seed)
    size = sp.get_piece_size()
    special = [i for i in range(size) if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i)
               or (not sp.is_byte(i) and sp.id_to_piece(i).startswith("<"))]
    byte_ids = [i for i in range(size) if sp.is_byte(i) and sp.id_to_piece(i) != "<0x0A>"]
    ok = lambda i: "\n" not in sp.id_to_piece(i) and sp.id_to_piece(i) != "<0x0A>"
    out = []
    for _ in range(n):
        ids = []
        for _ in range(rng.randint(0, 25)):
            r = rng.random()
            if r < 0.2 and special:
                ids.append(rng.choice(special))
            elif r < 0.5 and byte_ids:
                ids.extend(rng.choice(byte_ids) for _ in range(rng.randint(1, 4)))
            else:
                i = rng.randrange(size)
                if ok(i):
                    ids.append(i)
        out.append(ids)
    return out


def check_model(cochlea, name, path, corpus, seed):
    with open(path, "rb") as f:
        sp = spm.SentencePieceProcessor(model_proto=f.read())
    t = Tally()
    data = b"\n".join(corpus) + b"\n"
    c_pieces = run_cochlea(cochlea, ["--spm", path, "--pieces"], data)
    c_ids = run_cochlea(cochlea, ["--spm", path, "--ids"], data)
    if len(c_pieces) != len(corpus) or len(c_ids) != len(corpus):
        raise RuntimeError("%s: %d lines in, %d/%d lines out" % (name, len(corpus), len(c_pieces), len(c_ids)))
    n_tokens = 0
    py_ids_all, py_pieces_all = [], []
    for line, cp, ci in zip(corpus, c_pieces, c_ids):
        pieces = sp.encode(line, out_type=str)
        ids = sp.encode(line, out_type=int)
        py_ids_all.append(ids)
        py_pieces_all.append(pieces)
        n_tokens += len(ids)
        if cp != b" ".join(pieces):
            t.mismatch("pieces", line, cp, b" ".join(pieces))
        if ci != " ".join(map(str, ids)).encode():
            t.mismatch("ids", line, ci, " ".join(map(str, ids)).encode())

    # decode: the corpus ids plus random id sequences
    id_lines = py_ids_all + random_id_lines(sp, 400, seed)
    data = b"".join(" ".join(map(str, ids)).encode() + b"\n" for ids in id_lines)
    c_text = run_cochlea(cochlea, ["--spm", path, "--ids", "--decode"], data)
    if len(c_text) != len(id_lines):
        raise RuntimeError("%s: decode gave %d lines for %d" % (name, len(c_text), len(id_lines)))
    for ids, ct in zip(id_lines, c_text):
        pt = sp.decode(ids).encode("utf-8")
        if ct != pt:
            t.mismatch("decode ids", ids, ct, pt)

    # decode pieces (pieces are space-separated on the command line: only where they hold no space)
    n_piece_lines = 0
    if all(b" " not in p for ps in py_pieces_all for p in ps):
        piece_lines = [ps for ps in py_pieces_all]
        data = b"".join(b" ".join(ps) + b"\n" for ps in piece_lines)
        c_text = run_cochlea(cochlea, ["--spm", path, "--pieces", "--decode"], data)
        for ps, ct in zip(piece_lines, c_text):
            pt = sp.decode([p.decode("utf-8") for p in ps]).encode("utf-8")
            if ct != pt:
                t.mismatch("decode pieces", ps, ct, pt)
        n_piece_lines = len(piece_lines)
    print("%-24s vocab %6d  encode: %5d lines, %6d tokens  decode: %5d id lines, %5d piece lines  mismatches: %d"
          % (name, sp.get_piece_size(), len(corpus), n_tokens, len(id_lines), n_piece_lines, t.bad))
    return t.bad


def check_gguf(cochlea, work, model_path, corpus):
    """`-m MODEL.gguf`: the model stored as the converter stores it (u8 array) gives the same ids."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
    import numpy as np
    import gguf
    w = gguf.GGUFWriter()
    w.add_string("general.architecture", "owsm_ctc")
    w.add_array("tokenizer.sentencepiece.model", np.frombuffer(open(model_path, "rb").read(), dtype=np.uint8), "u8")
    path = os.path.join(work, "tok.gguf")
    w.write(path)
    data = b"\n".join(corpus) + b"\n"
    a = run_cochlea(cochlea, ["-m", path, "--ids"], data)
    b = run_cochlea(cochlea, ["--spm", model_path, "--ids"], data)
    bad = sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
    print("%-24s -m MODEL.gguf vs --spm: %d lines, mismatches: %d" % ("owsm (gguf)", len(a), bad))
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cochlea", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--only", help="comma-separated model names to check (debugging)")
    ap.add_argument("--reuse", action="store_true", help="reuse models trained before in --work (debugging)")
    a = ap.parse_args()
    global REUSE
    REUSE = a.reuse
    test, train_lines, langs = tatoeba(a.shared)
    corpus = test + handwritten() + random_lines(400, 1234)
    assert all(b"\n" not in line for line in corpus)
    print("corpus: %d lines (%d Tatoeba lines in %d languages: %s; %d hand-written; 400 random)"
          % (len(corpus), len(test), len(langs), " ".join(langs), len(handwritten())))
    models = make_models(a.work, a.shared, train_lines)
    bad = 0
    for k, (name, path) in enumerate(models):
        if a.only and name not in a.only.split(","):
            continue
        bad += check_model(a.cochlea, name, path, corpus, 100 + k)
    if not a.only or "gguf" in a.only.split(","):
        bad += check_gguf(a.cochlea, a.work, models[0][1], corpus)
    print("tokenizer parity: %d models, %s" % (len(models), "all identical" if bad == 0 else "%d MISMATCHES" % bad))
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
