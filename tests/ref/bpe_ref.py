#!/usr/bin/env python3
"""bpe_ref.py - an independent reference for GPT-2 style byte-level BPE, written from the GPT-2
algorithm (openai/gpt-2 src/encoder.py) rather than from Cochlea's C code (src/lm/vocab.c):

  - bytes_to_unicode(): the 256 bytes mapped to printable code points (GPT-2's table);
  - pre-tokenisation with Python's `re` engine: the GPT-2 pattern
        's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
    and llama.cpp's "default" sequence of four patterns (each splits the pieces of the previous
    one, keeping both matches and the text between them). `re` has no \\p{..} classes: when the
    `regex` module is installed it is used as is; otherwise the classes are spelled out from
    unicodedata (L = categories L*, N = N*, P = P*) and \\s is Unicode's White_Space property;
  - BPE on each piece's mapped characters: repeatedly merge every occurrence of the adjacent pair
    with the lowest merge rank (GPT-2's loop), then look the symbols up in the vocabulary;
  - special tokens: the text is first cut at occurrences of special token texts, longest first
    (llama.cpp's partition), each occurrence becoming that token;
  - learn_merges(): a small BPE trainer (most frequent pair, ties to the smallest pair) used by
    tests/vocab_parity.py to make a vocabulary at test time.

`python3 bpe_ref.py --c-table` prints the code point class table that src/lm/vocab.c embeds
(generated from this Python's unicodedata, so both sides use the same Unicode version).
"""
import re
import sys
import unicodedata

# Unicode's White_Space property (PropList.txt), which llama.cpp and Oniguruma use for \s.
WHITE_SPACE = [(0x09, 0x0D), (0x20, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680),
               (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F),
               (0x3000, 0x3000)]


def bytes_to_unicode():
    """GPT-2's reversible byte -> code point table: printable Latin-1 bytes map to themselves,
    the other 68 bytes to U+0100.. in byte order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_ENC = bytes_to_unicode()
BYTE_DEC = {c: b for b, c in BYTE_ENC.items()}


def _cls(cp):
    """0 other, 1 letter, 2 number, 3 punctuation (general category major class)."""
    k = unicodedata.category(chr(cp))[0]
    return {"L": 1, "N": 2, "P": 3}.get(k, 0)


_RANGES = None


def class_ranges():
    """{1: [(lo, hi)...], 2: [...], 3: [...]} over all code points."""
    global _RANGES
    if _RANGES is None:
        r = {1: [], 2: [], 3: []}
        start, prev = 0, _cls(0)
        for cp in range(1, 0x110001):
            k = _cls(cp) if cp < 0x110000 else -1
            if k != prev:
                if prev in r:
                    r[prev].append((start, cp - 1))
                start, prev = cp, k
        _RANGES = r
    return _RANGES


def _body(ranges):
    return "".join("\\U%08x-\\U%08x" % (lo, hi) if lo != hi else "\\U%08x" % lo for lo, hi in ranges)


def _patterns():
    try:
        import regex  # noqa: F401
        eng = regex
        L, N, P, S = r"\p{L}", r"\p{N}", r"\p{P}", r"\s"
    except ImportError:
        eng = re
        rg = class_ranges()
        L, N, P, S = _body(rg[1]), _body(rg[2]), _body(rg[3]), _body(WHITE_SPACE)
    gpt2 = (r"'s|'t|'re|'ve|'m|'ll|'d| ?[%s]+| ?[%s]+| ?[^%s%s%s]+|[%s]+(?![^%s])|[%s]+"
            % (L, N, S, L, N, S, S, S))
    return {
        "gpt2": [eng.compile(gpt2)],
        "default": [eng.compile(r"[%s\$\+<=>\^~\|]+" % P), eng.compile(gpt2),
                    eng.compile(r"[%s]+" % N), eng.compile(r"[0-9][0-9][0-9]")],
    }


_PATS = None


def pre_split(text, pre="gpt2"):
    """Pre-tokenise str `text` into a list of str pieces."""
    global _PATS
    if _PATS is None:
        _PATS = _patterns()
    pieces = [text] if text else []
    for pat in _PATS[pre]:
        out = []
        for w in pieces:
            pos = 0
            for m in pat.finditer(w):
                if m.start() > pos:
                    out.append(w[pos:m.start()])
                out.append(m.group())
                pos = m.end()
            if pos < len(w):
                out.append(w[pos:])
        pieces = out
    return pieces


def bpe(word, ranks):
    """GPT-2's merge loop on a tuple of symbols; returns the final symbols."""
    word = list(word)
    while len(word) > 1:
        best, best_rank = None, None
        for i in range(len(word) - 1):
            r = ranks.get((word[i], word[i + 1]))
            if r is not None and (best_rank is None or r < best_rank):
                best, best_rank = (word[i], word[i + 1]), r
        if best is None:
            break
        out, i = [], 0
        while i < len(word):
            if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                out.append(word[i] + word[i + 1])
                i += 2
            else:
                out.append(word[i])
                i += 1
        word = out
    return word


class BPE:
    """tokens: list of str (mapped text); merges: list of "a b"; types: list of int (llama.cpp
    token types, 1 normal, 3 control, 4 user-defined)."""

    def __init__(self, tokens, merges, types, pre="gpt2"):
        self.tokens = tokens
        self.types = types
        self.ids = {}
        for i, t in enumerate(tokens):
            self.ids[t] = i
        self.ranks = {}
        for i, m in enumerate(merges):
            a, b = m.split(" ", 1)
            self.ranks.setdefault((a, b), i)
        self.pre = pre
        self.special = sorted([i for i, t in enumerate(types) if t in (2, 3, 4) and tokens[i]],
                              key=lambda i: (-len(tokens[i].encode("utf-8")), i))

    def _partition(self, text, parse_special):
        frags = [text]
        for sid in self.special:
            if not parse_special and self.types[sid] in (2, 3):
                continue
            s = self.tokens[sid]
            out = []
            for f in frags:
                if not isinstance(f, str):
                    out.append(f)
                    continue
                while True:
                    k = f.find(s)
                    if k < 0:
                        break
                    if k > 0:
                        out.append(f[:k])
                    out.append(sid)
                    f = f[k + len(s):]
                if f:
                    out.append(f)
            frags = out
        return frags

    def encode(self, text, parse_special=False):
        ids = []
        for f in self._partition(text, parse_special):
            if not isinstance(f, str):
                ids.append(f)
                continue
            for piece in pre_split(f, self.pre):
                mapped = "".join(BYTE_ENC[b] for b in piece.encode("utf-8"))
                for sym in bpe(tuple(mapped), self.ranks):
                    if sym in self.ids:
                        ids.append(self.ids[sym])
                    else:
                        ids.extend(self.ids[c] for c in sym)
        return ids

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            t = self.tokens[i]
            if self.types[i] == 1:
                out += bytes(BYTE_DEC[c] for c in t)
            elif self.types[i] == 4:
                out += t.encode("utf-8")
        return bytes(out)


def learn_merges(lines, n_merges, pre="gpt2"):
    """Train n_merges BPE merges on the pre-tokenised, byte-mapped words of `lines`; returns the
    merge list ("a b") in the order learnt. Ties go to the smallest pair (deterministic)."""
    freq = {}
    for line in lines:
        for piece in pre_split(line, pre):
            w = tuple(BYTE_ENC[b] for b in piece.encode("utf-8"))
            freq[w] = freq.get(w, 0) + 1
    words = [[list(w), c] for w, c in freq.items()]
    merges = []
    for _ in range(n_merges):
        pairs = {}
        for w, c in words:
            for i in range(len(w) - 1):
                p = (w[i], w[i + 1])
                pairs[p] = pairs.get(p, 0) + c
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best[0] + " " + best[1])
        for wc in words:
            w = wc[0]
            if len(w) < 2:
                continue
            out, i = [], 0
            while i < len(w):
                if i < len(w) - 1 and w[i] == best[0] and w[i + 1] == best[1]:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            wc[0] = out
    return merges


def c_table():
    """The run table of src/lm/vocab.c: entry = start << 2 | class for every code point where the
    class (0 other, 1 L, 2 N, 3 P) changes, from U+0000."""
    runs, prev = [], None
    for cp in range(0x110000):
        k = _cls(cp)
        if k != prev:
            runs.append(cp << 2 | k)
            prev = k
    lines = ["/* generated by tests/ref/bpe_ref.py --c-table (Unicode %s): %d runs */"
             % (unicodedata.unidata_version, len(runs))]
    for i in range(0, len(runs), 9):
        lines.append("    " + " ".join("0x%x," % r for r in runs[i:i + 9]))
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--c-table"]:
        print(c_table())
    else:
        sys.exit("usage: bpe_ref.py --c-table")
