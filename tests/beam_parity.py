"""`make check` test of the CTC prefix beam search and the token n-gram LM (asr/beam.c,
asr/ngram.c, `cochlea transcribe --beam-size/--lm`, tools/embed_lm.py) against the reference
tests/ref/ctc_beam.py.

The model is the embedded default, models/owsm-ctc-tiny.gguf, stripped of any LM of its own
(tools/embed_lm.py --remove); the audio is samples/*.wav. The LM is made up here: every piece a
unigram, plus bigrams and trigrams of the pieces greedy decoding finds in the samples and random
ones, with seeded random log10 values that are multiples of 1/256 (so F16 holds them exactly and
the embedded LM must equal the ARPA one). For each case `cochlea transcribe` writes its CTC
log-posteriors (--output-posteriors) and JSON; the reference decodes those posteriors with the
same ARPA file and settings, and the token ids must be identical, and so must each token's start
time (from the alignment). Cases: languages given and auto, a translation, beam sizes 1..16,
LM weights up to 2 (where the LM changes the text: checked), no LM with an insertion bonus.
Then: the LM embedded in the model file gives the same tokens as --lm FILE.arpa; --beam-size 1
equals greedy decoding; a long file (several windows) decodes; malformed ARPA files and corrupt
embedded LMs are clear errors, never crashes.
"""
import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np

TOP = os.environ.get("top_srcdir", ".")
sys.path.insert(0, os.path.join(TOP, "tests", "ref"))
sys.path.insert(0, os.path.join(TOP, "tools"))
sys.path.insert(0, os.path.join(TOP, "tests"))
import ctc_beam as CB  # noqa: E402
from checks import FAILS, check, log  # noqa: E402
from gguf import GGUFReader, GGUFWriter  # noqa: E402

COCHLEA = os.environ.get("COCHLEA", "./cochlea")
PY = sys.executable
MODEL = os.path.join(TOP, "models", "owsm-ctc-tiny.gguf")
SAMPLES = os.path.join(TOP, "samples")
FRAME_S = 0.08


def run(args, **kw):
    p = subprocess.run([COCHLEA] + args, capture_output=True, text=True, **kw)
    return p.returncode, p.stdout, p.stderr


def q(x):
    """A log10 value F16 holds exactly (multiple of 1/256, |x| < 8)."""
    return round(x * 256) / 256


def write_arpa(path, tokens, seen_pieces, rng, order=3):
    special = {t for t in tokens if t.startswith("<") and t.endswith(">")}
    pieces = [t for t in tokens if t not in special]
    langs = sorted(t for t in tokens if CB._is_lang(t))
    uni = {}
    for w in pieces + ["</s>", "<unk>"] + langs:
        uni[(w,)] = (q(-rng.uniform(1.0, 6.0)), q(rng.uniform(-1.5, 0.2)))
    uni[("<s>",)] = (-99.0, q(rng.uniform(-1.0, 0.0)))
    big = {}
    pool = list(seen_pieces) + rng.sample(pieces, 300)
    for _ in range(3000):
        g = (rng.choice(pool + langs + ["<s>"]), rng.choice(pool + ["</s>"]))
        big[g] = (q(-rng.uniform(0.05, 3.0)), q(rng.uniform(-1.0, 0.3)))
    tri = {}
    bl = list(big)
    for _ in range(3000):
        a, b = rng.choice(bl)
        if b == "</s>":
            continue
        tri[(a, b, rng.choice(pool + ["</s>"]))] = (q(-rng.uniform(0.01, 2.0)), 0.0)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\\data\\\n")
        for n, d in ((1, uni), (2, big), (3, tri))[:order]:
            f.write(f"ngram {n}={len(d)}\n")
        for n, d in ((1, uni), (2, big), (3, tri))[:order]:
            f.write(f"\n\\{n}-grams:\n")
            for g, (p, b) in d.items():
                f.write(f"{p:.8f}\t{' '.join(g)}" + (f"\t{b:.8f}\n" if n < order else "\n"))
        f.write("\n\\end\\\n")


def tokens_of(js):
    return [t["id"] for t in js["tokens"]], [t["start"] for t in js["tokens"]]


def ids_of(args):
    """The token ids `cochlea transcribe -q -t 2 -f json ARGS` gives, or None if it fails."""
    rc, out, _ = run(["transcribe", "-q", "-t", "2", "-f", "json"] + args)
    return tokens_of(json.loads(out))[0] if rc == 0 else None


def embed(base, arpa, out, *extra):
    """tools/embed_lm.py with the test's decoding defaults (weight 1.5, bonus 0.75, beam 6)."""
    return subprocess.run([PY, os.path.join(TOP, "tools", "embed_lm.py"), base, arpa, out, "--lm-weight", "1.5",
                           "--insertion-bonus", "0.75", "--beam-size", "6", *extra], capture_output=True, text=True)


def ref_starts(align, ids, duration):
    """Start time of each token from the reference alignment: the first position of each run."""
    starts, prev = [], None
    for p, a in enumerate(align):
        if a != prev and a != 0:
            starts.append(min(max(0.0, (p - 2) * FRAME_S), duration))
        prev = a
    return starts


def main():
    if not os.path.isfile(MODEL):
        print(f"FAIL: {MODEL} missing")
        return 1
    tmp = tempfile.mkdtemp(prefix="cochlea_beam.")
    rng = random.Random(11)
    base = os.path.join(tmp, "base.gguf")
    p = subprocess.run([PY, os.path.join(TOP, "tools", "embed_lm.py"), MODEL, "--remove", base],
                       capture_output=True, text=True)
    if not check(p.returncode == 0, "embed_lm.py --remove writes the model without an LM"):
        log(p.stderr)
        return 1
    tokens = GGUFReader(base).kv["tokenizer.ggml.tokens"].value
    wavs = sorted(f for f in os.listdir(SAMPLES) if f.endswith(".wav"))
    # the pieces greedy decoding finds, so that the LM's n-grams meet the search
    seen, paths = set(), []
    for w in wavs:
        rc, out, err = run(["transcribe", "-m", base, "-q", "-t", "2", "-f", "json", os.path.join(SAMPLES, w)])
        if rc == 0:
            paths.append([t["piece"] for t in json.loads(out)["tokens"] if not CB.is_special(t["piece"])])
            seen |= set(paths[-1])
    check(len(seen) > 20, f"greedy decoding of the samples finds pieces ({len(seen)})")
    arpa = os.path.join(tmp, "lm.arpa")
    write_arpa(arpa, tokens, sorted(seen), rng)
    lm = CB.NgramLM(arpa, tokens)
    lang_of = {"en": "eng", "de": "deu", "fr": "fra", "es": "spa", "ja": "jpn", "zh": "zho"}
    cases = []
    for i, w in enumerate(wavs):
        lg = lang_of[w[:2]]
        if "-to-en" in w:
            cases.append((w, ["-l", lg, "--target", "eng"], 8, 1.0, 0.5, True, "<eng>"))
            continue
        cases.append((w, ["-l", lg], 8, 1.0, 0.5, True, f"<{lg}>"))
        cases.append((w, [], [4, 16][i % 2], 2.0, 1.5, True, None))
        cases.append((w, ["-l", lg], 5, 0.0, 1.0, False, f"<{lg}>"))
        cases.append((w, ["-l", lg], 1, 1.0, 0.5, True, f"<{lg}>"))
    changed = 0
    for n, (w, extra, beam, weight, bonus, use_lm, lg) in enumerate(cases):
        post = os.path.join(tmp, f"post{n}.npy")
        args = ["transcribe", "-m", base, "-q", "-t", "2", "-f", "json", "--output-posteriors", post,
                "--beam-size", str(beam), "--lm-weight", str(weight), "--insertion-bonus", str(bonus)]
        args += (["--lm", arpa] if use_lm else ["--no-lm"]) + extra + [os.path.join(SAMPLES, w)]
        rc, out, err = run(args)
        name = f"{w} {' '.join(extra) or '--lang auto'} beam {beam} weight {weight} bonus {bonus}" + \
            ("" if use_lm else " --no-lm")
        if not check(rc == 0, f"{name}: cochlea exits 0"):
            log(err)
            continue
        js = json.loads(out)
        ids, starts = tokens_of(js)
        lp = np.load(post)[0]
        if beam == 1:
            am = lp.argmax(-1)
            want = [int(a) for k, a in enumerate(am) if a != 0 and (k == 0 or a != am[k - 1])]
            check(ids == want, f"{name}: --beam-size 1 is greedy decoding")
            continue
        lang_id = tokens.index(lg) if lg and lg in tokens else -1
        ref_ids, align = CB.decode(lp, tokens, 0, lm if use_lm else None, lang_id, weight, bonus, beam)
        check(ids == ref_ids, f"{name}: tokens equal the reference ({len(ids)})")
        rs = ref_starts(align, ref_ids, js["duration"])
        check(len(rs) == len(starts) and all(abs(a - b) < 1e-3 for a, b in zip(rs, starts)),
              f"{name}: token start times equal the reference alignment's")
        am = lp.argmax(-1)
        greedy = [int(a) for k, a in enumerate(am) if a != 0 and (k == 0 or a != am[k - 1])]
        changed += ids != greedy
    check(changed >= 3, f"the LM and the bonus change the output of {changed} cases (>= 3)")

    # the embedded LM gives what --lm gives
    emb = os.path.join(tmp, "emb.gguf")
    as_arpa = ["-m", base, "--beam-size", "6", "--lm-weight", "1.5", "--insertion-bonus", "0.75", "--lm"]
    p = embed(base, arpa, emb)
    if check(p.returncode == 0, "embed_lm.py embeds the ARPA LM"):
        for w in wavs[:4]:
            a = ids_of(["-m", emb, os.path.join(SAMPLES, w)])
            check(a is not None and a == ids_of(as_arpa + [arpa, os.path.join(SAMPLES, w)]),
                  f"{w}: the embedded LM and its defaults give the tokens of --lm FILE.arpa")
        # the older flat layout (every n-gram's tokens in full) is read too
        flat = os.path.join(tmp, "flat.gguf")
        p = embed(base, arpa, flat, "--flat")
        shapes = {t.name: list(t.ne) for t in GGUFReader(flat).tensors if t.name.startswith("lm.")} \
            if p.returncode == 0 else {}
        check(shapes.get("lm.3.ids", [0])[0] == 3 and "lm.1.fanout" not in shapes,
              "embed_lm.py --flat writes the flat layout (lm.3.ids holds 3 tokens per 3-gram, no fanout)")
        for w in wavs[:2]:
            a = ids_of(["-m", flat, os.path.join(SAMPLES, w)])
            check(a is not None and a == ids_of(["-m", emb, os.path.join(SAMPLES, w)]),
                  f"{w}: the flat layout gives the tokens of the trie layout")
        # an ARPA file whose 3-grams lack their 2-gram prefix: the trie gets those prefixes with
        # the back-off probability, so scores (and tokens) stay those of --lm FILE.arpa. The added
        # 3-grams follow the greedy paths (likely 3-grams of the search: their prefixes are scored).
        text = open(arpa, encoding="utf-8").read()
        bigrams = {tuple(ln.split("\t")[1].split(" "))
                   for ln in text.split("\\2-grams:")[1].split("\\3-grams:")[0].splitlines() if ln.strip()}
        extra = {}
        for path in paths:
            for a3 in zip(path, path[1:], path[2:]):
                if a3[:2] not in bigrams:
                    extra[a3] = q(-rng.uniform(0.01, 0.3))
        n3 = int(text.split("ngram 3=")[1].split("\n")[0])
        text = text.replace(f"ngram 3={n3}", f"ngram 3={n3 + len(extra)}").replace(
            "\n\\end\\", "".join(f"{lp:.8f}\t{' '.join(g)}\n" for g, lp in extra.items()) + "\n\\end\\")
        arpa2, emb2 = os.path.join(tmp, "lm2.arpa"), os.path.join(tmp, "emb2.gguf")
        with open(arpa2, "w", encoding="utf-8") as f:
            f.write(text)
        p = embed(base, arpa2, emb2)
        check(p.returncode == 0 and f"{len({g[:2] for g in extra})} missing prefixes added" in p.stderr
              and len(extra) > 20, f"embed_lm.py adds the missing prefixes of {len(extra)} 3-grams "
              f"({p.stderr.strip()[-80:]})")
        differ = 0
        for w in wavs:
            a = ids_of(["-m", emb2, os.path.join(SAMPLES, w)])
            c = ids_of(["-m", emb, os.path.join(SAMPLES, w)])
            check(a is not None and a == ids_of(as_arpa + [arpa2, os.path.join(SAMPLES, w)]),
                  f"{w}: added prefixes: the embedded LM gives the tokens of --lm FILE.arpa")
            differ += a is not None and c is not None and a != c
        check(differ >= 1, f"the added 3-grams change the output of {differ} samples (>= 1)")
        # an ARPA LM replaces the embedded one; --no-lm drops it
        a = run(["transcribe", "-m", emb, "-q", "-t", "2", "-f", "json", "--beam-size", "1",
                 os.path.join(SAMPLES, wavs[0])])
        b = run(["transcribe", "-m", base, "-q", "-t", "2", "-f", "json", os.path.join(SAMPLES, wavs[0])])
        check(a[0] == 0 and b[0] == 0 and a[1].split('"timing"')[0] == b[1].split('"timing"')[0],
              "--beam-size 1 with an embedded LM is greedy decoding")
        # a long file: several windows, beam search over all of them
        # (several inputs write NAME.json beside each input: copies in the scratch folder)
        two = []
        for w in wavs[:2]:
            two.append(os.path.join(tmp, w))
            with open(os.path.join(SAMPLES, w), "rb") as fi, open(two[-1], "wb") as fo:
                fo.write(fi.read())
        rc, out, err = run(["transcribe", "-m", emb, "-q", "-t", "2", "-f", "json"] + two)
        check(rc == 0 and all(os.path.isfile(p[:-4] + ".json") for p in two),
              "two files in one run with the embedded LM")
        long_wav = os.path.join(tmp, "long.wav")
        import wave
        frames = b""
        for w in wavs * 3:
            with wave.open(os.path.join(SAMPLES, w)) as f:
                frames += f.readframes(f.getnframes())
        with wave.open(long_wav, "wb") as f:
            f.setnchannels(1), f.setsampwidth(2), f.setframerate(16000)
            f.writeframes(frames)
        rc, out, err = run(["transcribe", "-m", emb, "-q", "-t", "2", "-f", "json", "-l", "eng", long_wav])
        ok = rc == 0
        if ok:
            js = json.loads(out)
            ok = js["timing"]["windows"] > 1 and len(js["tokens"]) > 20 and \
                all(a["start"] <= b["start"] for a, b in zip(js["tokens"], js["tokens"][1:]))
        check(ok, "a long file (several windows) decodes with beam search, token times in order")
        # corrupt embedded LMs
        r = GGUFReader(emb)

        def rewrite(dst, tensor_fn=None, kv=None):
            w = GGUFWriter()
            w.copy_kv(r, values=kv)
            for t in r.tensors:
                got = tensor_fn(t) if tensor_fn else None
                if got is None:
                    w.add_tensor_raw(t.name, t.type, t.ne, t.raw)
                elif got != "drop":
                    w.add_tensor(t.name, got[0], got[1])
            w.write(dst)

        V = len(tokens)
        bad = [
            ("an id outside the vocabulary", lambda t: (np.full(t.shape, 30000, np.int16), "i16")
             if t.name == "lm.2.ids" else None, None, "outside the vocabulary"),
            ("a missing tensor", lambda t: "drop" if t.name == "lm.3.logp" else None, None, "lm.3.logp"),
            ("a mis-shaped tensor", lambda t: (t.numpy()[:-1], "f16") if t.name == "lm.1.bow" else None, None,
             "lm.1.bow"),
            ("an infinite log-probability", lambda t: (np.full(t.shape, np.inf, np.float32), "f32")
             if t.name == "lm.2.logp" else None, None, "out of range"),
            ("order 9", None, {"owsm_ctc.lm.order": 9}, "lm.order"),
            ("fanouts that do not add up", lambda t: (t.numpy() + np.eye(1, t.shape[0], dtype=np.int16)[0], "i16")
             if t.name == "lm.1.fanout" else None, None, "adds up to"),
            ("a negative fanout", lambda t: (t.numpy().view(np.uint16).astype(np.int32) + np.eye(1, t.shape[0], 1,
             dtype=np.int32)[0] * 2 - np.eye(1, t.shape[0], dtype=np.int32)[0] * 2**20, "i32")
             if t.name == "lm.2.fanout" else None, None, "negative"),
            ("a missing fanout", lambda t: "drop" if t.name == "lm.2.fanout" else None, None, "lm.2.fanout"),
            ("flat ids in the trie layout", lambda t: (np.repeat(t.numpy(), 2, axis=1), "i16")
             if t.name == "lm.2.ids" else None, None, "lm.2.ids must be"),
        ]
        assert V < 30000
        for what, fn, kv, needle in bad:
            dst = os.path.join(tmp, "bad.gguf")
            rewrite(dst, fn, kv)
            rc, out, err = run(["transcribe", "-m", dst, "-q", "-t", "1", os.path.join(SAMPLES, wavs[0])])
            line = next((ln for ln in err.splitlines() if ln.startswith("cochlea: error:")), "")
            check(rc == 1 and needle in line, f"embedded LM with {what}: exit 1, error names it ({line[:120]})")

    # malformed ARPA files
    good = open(arpa, encoding="utf-8").read()
    lines = good.splitlines()
    first_bigram = lines.index("\\2-grams:") + 1
    bad_arpa = [
        ("an empty file", "", "no \\data\\"),
        ("no \\end\\", good.replace("\\end\\", ""), "truncated"),
        ("a count that does not match", good.replace("ngram 2=", "ngram 2=1", 1), "declares"),
        ("a bad number", "\n".join(lines[:first_bigram] + ["-x.5\t" + lines[first_bigram].split("\t", 1)[1]] +
                                   lines[first_bigram + 1:]) + "\n", "bad log-probability"),
        ("a missing word", "\n".join(lines[:first_bigram] + [lines[first_bigram].split(" ")[0]] +
                                     lines[first_bigram + 1:]) + "\n", "words expected"),
        ("order 7", "\n".join(ln + ("\nngram 4=1\nngram 5=1\nngram 6=1\nngram 7=1" if ln.startswith("ngram 3=") else "")
                              for ln in lines) + "\n", "7-grams"),
        ("words that are not pieces", "\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\tqqqzzz\n-1.0\txxyyzz\n\n\\end\\\n",
         "none of its"),
        ("binary garbage", "\\data\\\nngram 1=1\n\n\\1-grams:\n\x01\x02\x7f\xc3\xa9\n\\end\\\n", "bad log-probability"),
        ("a positive log-probability", good.replace("\\1-grams:\n-", "\\1-grams:\n3", 1), "out of range"),
    ]
    for what, text, needle in bad_arpa:
        path = os.path.join(tmp, "bad.arpa")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        rc, out, err = run(["transcribe", "-m", base, "-q", "-t", "1", "--lm", path, os.path.join(SAMPLES, wavs[0])])
        line = next((ln for ln in err.splitlines() if ln.startswith("cochlea: error:")), "")
        check(rc == 1 and needle in line and "bad.arpa" in line, f"ARPA with {what}: exit 1, error names the file "
              f"and the problem ({line[:140]})")
    rc, out, err = run(["transcribe", "-m", base, "-q", "--lm", os.path.join(tmp, "nope.arpa"),
                        os.path.join(SAMPLES, wavs[0])])
    check(rc == 1 and "nope.arpa" in err, "a missing ARPA file: exit 1, error names it")
    rc, out, err = run(["transcribe", "-m", base, "-q", "--lm", arpa, "--no-lm", os.path.join(SAMPLES, wavs[0])])
    check(rc == 2, "--lm with --no-lm is a usage error (exit 2)")
    for opt, val in (("--beam-size", "0"), ("--beam-size", "2000"), ("--lm-weight", "-1"), ("--lm-weight", "nan"),
                     ("--insertion-bonus", "1e9")):
        rc, out, err = run(["transcribe", "-m", base, "-q", opt, val, os.path.join(SAMPLES, wavs[0])])
        check(rc == 2, f"{opt} {val} is a usage error (exit 2)")
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"beam_parity: {len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
