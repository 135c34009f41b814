"""Reference CTC prefix beam search with a token n-gram language model (the C code is
asr/beam.c and asr/ngram.c; README "Beam search and language model").

Read it as the specification: the C decoder must give the same tokens on the same
log-posteriors and the same ARPA file (tests/beam_parity.py checks that).

Language model: a back-off n-gram model over the OWSM token pieces, in ARPA form. Its words are
the model's pieces ("▁the", "s", "<eng>"), "<s>" (the model's <sos>), "</s>" (<eos>) and
"<unk>". Probabilities are log10 in the file, natural logs here. A sentence is
"<s> <lang> piece piece ... </s>": the language token is the first word of the context.
    lnP(w | h) = ln10 * logp(h w)                       if h w is in the model
               = ln10 * bow(h) + lnP(w | h minus its first word)   otherwise
(bow 0 for a context that is not in the model); a word that is not a unigram of the model gets
the <unk> unigram, or -99 (log10) if there is none.

Beam search (scores in double precision):
- Each position t has candidates: the blank, then the (at most) TOPK non-blank ids with the
  highest log-posteriors that are > PRUNE, in decreasing order (ties: lower id first).
- A prefix is the token sequence emitted so far. It keeps pb (log-probability of the alignments
  that end in blank), pnb (ending in its last token) and ls, the sum of the LM terms of its
  tokens. Only "piece" tokens (not of the form <...>) get an LM term:
  weight * lnP(token | context) + bonus. The context of a prefix is <s>, the language (the
  --lang token if given, else the first language token in the prefix, if any), then the piece
  tokens of the prefix; the last order-1 words of that are used.
- Start: the empty prefix, pb = 0, pnb = -inf, ls = 0. For every position, the prefixes of the
  beam in order and, for each, the candidates in order, add into the next position's entries
  (created in that order, keyed by prefix):
    blank:              next[prefix].pb  += p(prefix) * p(blank)
    c == last token:    next[prefix].pnb += pnb * p(c);  next[prefix + c].pnb += pb * p(c)
    any other c:        next[prefix + c].pnb += (pb + pnb) * p(c)
  (+= in the log domain: logaddexp). A new prefix + c gets ls(prefix) + the LM term of c.
- The next beam is the BEAM entries with the highest logaddexp(pb, pnb) + ls, ties by creation
  order.
- At the end the result is the prefix with the highest logaddexp(pb, pnb) + ls
  (+ weight * lnP(</s> | context) when there is a language model), ties by beam order.
- Each token of the result is given the position where its prefix first entered the beam (its
  emission position); the alignment marks the token there and at the following positions
  whose argmax is that token, up to the position before the next token's emission position
  (two before, if the next token is the same id), and blank elsewhere.
"""
import math

import numpy as np

TOPK = 8
PRUNE = -12.0
LN10 = math.log(10.0)


def is_special(piece):
    return piece.startswith("<") and piece.endswith(">")


class NgramLM:
    def __init__(self, path, tokens):
        """tokens: the model's token list (id -> piece)."""
        tid = {t: i for i, t in enumerate(tokens)}
        tid["<s>"] = tid["<sos>"]
        tid["</s>"] = tid["<eos>"]
        self.table = {}
        self.order = 0
        section = 0
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                if line.startswith("\\") and line.endswith("-grams:"):
                    section = int(line[1:-7])
                    self.order = max(self.order, section)
                    continue
                if line.startswith("\\") or section == 0:
                    continue
                parts = line.split()
                logp = float(parts[0])
                words = parts[1:1 + section]
                bow = float(parts[1 + section]) if len(parts) > 1 + section else 0.0
                if any(w not in tid for w in words):
                    continue
                key = tuple(tid[w] for w in words)
                # stored as float32 natural logs, as the C code does
                self.table[key] = (f32(logp * LN10), f32(bow * LN10))
        unk = self.table.get((tid["<unk>"],)) if "<unk>" in tid else None
        self.unk = unk[0] if unk else -99.0 * LN10

    def lnp(self, ctx, w):
        ctx = tuple(ctx[len(ctx) - (self.order - 1):]) if self.order > 1 else ()
        acc = 0.0
        for k in range(len(ctx), -1, -1):
            h = ctx[len(ctx) - k:]
            e = self.table.get(h + (w,))
            if e is not None:
                return acc + e[0]
            if k == 0:
                return acc + self.unk
            b = self.table.get(h)
            if b is not None:
                acc += b[1]
        return acc


def f32(x):
    return float(np.float32(x))


def lse(a, b):
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = a if a > b else b
    return m + math.log1p(math.exp(-abs(a - b)))


def candidates(row, blank):
    out = [blank]
    for i in np.argsort(-np.asarray(row, dtype=np.float32), kind="stable"):
        i = int(i)
        if len(out) > TOPK or not row[i] > PRUNE:
            break
        if i != blank:
            out.append(i)
    return out


def decode(lp, tokens, blank, lm=None, lang=-1, weight=0.0, bonus=0.0, beam=8, sos=None):
    """lp: positions x vocab log-posteriors (float32 values). Returns (ids, alignment)."""
    kind = [0 if not is_special(t) else (2 if _is_lang(t) else 1) for t in tokens]
    if sos is None:
        sos = tokens.index("<sos>")
    eos = tokens.index("<eos>")
    order = lm.order if lm else 1
    weight, bonus = f32(weight), f32(bonus)  # float options in C

    def context(prefix):
        lg = lang
        if lg < 0:
            lg = next((c for c in prefix if kind[c] == 2), -1)
        ctx = [sos] + ([lg] if lg >= 0 else []) + [c for c in prefix if kind[c] == 0]
        return ctx[max(0, len(ctx) - (order - 1)):] if order > 1 else []

    def term(prefix, c):
        if kind[c] != 0:
            return 0.0
        t = bonus
        if lm is not None:
            t += weight * lm.lnp(context(prefix), c)
        return t

    beams = [((), 0.0, -math.inf, 0.0)]
    emitted = {(): -1}
    for t in range(len(lp)):
        row = lp[t]
        cand = candidates(row, blank)
        nxt = {}

        def entry(pre, ls):
            e = nxt.get(pre)
            if e is None:
                e = nxt[pre] = [-math.inf, -math.inf, ls]
            return e

        for pre, pb, pnb, ls in beams:
            ptot = lse(pb, pnb)
            last = pre[-1] if pre else None
            for c in cand:
                p = float(row[c])
                if c == blank:
                    e = entry(pre, ls)
                    e[0] = lse(e[0], ptot + p)
                elif c == last:
                    e = entry(pre, ls)
                    e[1] = lse(e[1], pnb + p)
                    npre = pre + (c,)
                    e = nxt.get(npre) or entry(npre, ls + term(pre, c))
                    e[1] = lse(e[1], pb + p)
                else:
                    npre = pre + (c,)
                    e = nxt.get(npre) or entry(npre, ls + term(pre, c))
                    e[1] = lse(e[1], ptot + p)
        items = list(nxt.items())
        items.sort(key=lambda kv: -(lse(kv[1][0], kv[1][1]) + kv[1][2]))  # stable: creation order
        beams = [(pre, e[0], e[1], e[2]) for pre, e in items[:beam]]
        for pre, _, _, _ in beams:
            if pre not in emitted:
                emitted[pre] = t
    best, best_s = None, -math.inf
    for pre, pb, pnb, ls in beams:
        s = lse(pb, pnb) + ls
        if lm is not None:
            s += weight * lm.lnp(context(pre), eos)
        if best is None or s > best_s:
            best, best_s = pre, s
    ids = list(best)
    em = [emitted[best[:i + 1]] for i in range(len(best))]
    align = [blank] * len(lp)
    for i, c in enumerate(ids):
        stop = len(lp)
        if i + 1 < len(ids):
            stop = em[i + 1] - (1 if ids[i + 1] == c else 0)
        align[em[i]] = c
        t = em[i] + 1
        while t < stop and int(lp[t].argmax()) == c:
            align[t] = c
            t += 1
    return ids, align


def _is_lang(piece):
    # language tokens: three lowercase letters in angle brackets (OWSM's <eng>, <deu>); task and
    # other symbols (<asr>, <st_deu>, <na>, <blank>) do not match
    return len(piece) == 5 and piece[0] == "<" and piece[4] == ">" and piece[1:4].isalpha() \
        and piece[1:4].islower() and piece not in ("<unk>", "<sos>", "<eos>", "<sop>")
