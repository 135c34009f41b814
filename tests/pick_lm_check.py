#!/usr/bin/env python3
"""Checks recipes/owsm_ctc_tiny/local/pick_lm.py on a text folder written here: which sentences
of lm.jsonl it may pick (whole sentences of the wanted language and source, not in dev, test or
an already spoken folder, only characters train.jsonl has), how many, that the seed decides the
choice, what --again adds (the spoken sentences of a language once each, never dev or test) and
--word-strings (strings of a language's word fragments, drawn by count), and that malformed
requests are refused with a message.

    pick_lm_check.py TOP_SRCDIR
"""
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile


def write(path, recs):
    with open(path, "w", encoding="utf-8") as f:
        for r in recs:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def rec(i, lang, text, **kw):
    r = {"id": i, "lang": lang, "text": text, "pair": {}}
    r.update(kw)
    return r


def main():
    top = sys.argv[1]
    prog = os.path.join(top, "recipes", "owsm_ctc_tiny", "local", "pick_lm.py")
    d = tempfile.mkdtemp(prefix="pick_lm_")
    try:
        check(prog, d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def check(prog, d):
    train = [rec("tat-eng1", "eng", "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.,!?'"),
             rec("tat-fra1", "fra", "abcdefghijklmnopqrstuvwxyz éèàç.")]
    write(os.path.join(d, "train.jsonl"), train)
    write(os.path.join(d, "dev.jsonl"), [rec("d1", "eng", "A dev sentence.")])
    write(os.path.join(d, "test.jsonl"), [rec("t1", "eng", "A test sentence.")])
    write(os.path.join(d, "extra.jsonl"), [rec("deb-eng00000", "eng", "Spoken before.")])
    good = [rec(f"wn-eng{i:05d}", "eng", f"Gloss number {w}.") for i, w in
            enumerate(["one", "two", "three", "four", "five", "six", "seven", "eight"])]
    lm = good + [
        rec("wn-eng00100", "eng", "A dev sentence."),            # in dev
        rec("wn-eng00101", "eng", "A test sentence."),           # in test
        rec("wn-eng00102", "eng", "Spoken before."),             # in extra.jsonl
        rec("wn-eng00103", "eng", "Caf\u00e9 au lait."),         # a character train.jsonl lacks in English
        rec("wn-eng00104", "eng", "fragment", fragment=True),    # an LM-only fragment
        rec("ding-eng00000", "eng", "Another source."),          # not wanted
        rec("dlg-fra00000", "fra", "le chat."),
        rec("dlg-fra00001", "fra", "la f\u00eate."),             # ê: not in French training text
        rec("essay-fra00000", "fra", "chat", fragment=True, count=3),
        rec("essay-fra00001", "fra", "lit", fragment=True, count=1),
        rec("essay-fra00002", "fra", "f\u00eate", fragment=True, count=50),  # ê again
    ]
    write(os.path.join(d, "lm.jsonl"), lm)

    def run(*args):
        return subprocess.run([sys.executable, prog, d] + list(args), capture_output=True, text=True)

    def picked(name):
        with open(os.path.join(d, name), encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    r = run("--want", "eng:wn:5,fra:dlg:9", "--out", "a.jsonl")
    assert r.returncode == 0, r.stderr
    a = picked("a.jsonl")
    eng = [x for x in a if x["lang"] == "eng"]
    fra = [x for x in a if x["lang"] == "fra"]
    assert len(eng) == 5, eng
    good_ids = {x["id"] for x in good}
    assert all(x["id"] in good_ids for x in eng), eng
    assert len({x["id"] for x in eng}) == 5
    assert [x["text"] for x in fra] == ["le chat."], fra
    assert set(a[0]) == {"id", "lang", "text", "pair"}, a[0]
    assert "eng:wn: 8 candidates, 5 taken" in r.stderr, r.stderr
    assert "fra:dlg: 1 candidates, 1 taken" in r.stderr, r.stderr
    print("ok: only whole, unspoken, writable sentences of the wanted sources; counts")

    # the same seed gives the same choice; other seeds another one (8 choose 5 = 56 choices)
    assert run("--want", "eng:wn:5,fra:dlg:9", "--out", "b.jsonl").returncode == 0
    assert picked("b.jsonl") == a
    others = set()
    for seed in range(1, 6):
        assert run("--want", "eng:wn:5", "--seed", str(seed), "--out", "c.jsonl").returncode == 0
        others.add(tuple(x["id"] for x in picked("c.jsonl")))
    assert len(others) > 1, others
    print("ok: the seed decides the choice")

    # --spoken replaces the default list: with only dev and test excluded, "Spoken before." is a candidate
    write(os.path.join(d, "none.jsonl"), [])
    r = run("--want", "eng:wn:100", "--spoken", os.path.join(d, "none.jsonl"), "--out", "e.jsonl")
    assert r.returncode == 0, r.stderr
    texts = {x["text"] for x in picked("e.jsonl")}
    assert "Spoken before." in texts and "A dev sentence." not in texts and len(texts) == 9, texts
    print("ok: --spoken")

    # --again: the French sentences of train.jsonl and extra.jsonl once each, none of dev or test,
    # after the fresh ones; alone or with --want
    write(os.path.join(d, "extra.jsonl"), [rec("deb-eng00000", "eng", "Spoken before."),
                                           rec("deb-fra00000", "fra", "le lit."),
                                           rec("deb-fra00001", "fra", "le lit."),
                                           rec("deb-fra00002", "fra", "A dev sentence.")])
    r = run("--again", "fra", "--out", "f.jsonl")
    assert r.returncode == 0, r.stderr
    f = picked("f.jsonl")
    assert [x["id"] for x in f] == ["tat-fra1", "deb-fra00000"], f
    assert "fra: 2 spoken sentences again" in r.stderr, r.stderr
    r = run("--want", "eng:wn:2", "--again", "eng,fra", "--out", "g.jsonl")
    assert r.returncode == 0, r.stderr
    g = picked("g.jsonl")
    assert [x["id"] for x in g[2:]] == ["tat-eng1", "tat-fra1", "deb-eng00000", "deb-fra00000"], g
    assert all(x["id"] in good_ids for x in g[:2]), g
    # LANG:SOURCE items: one source's spoken sentences ("train": train.jsonl's); a bare LANG wins
    for spec, ids in [("fra:deb", ["deb-fra00000"]), ("fra:train", ["tat-fra1"]),
                      ("fra:train,fra:deb", ["tat-fra1", "deb-fra00000"]),
                      ("fra:deb,fra", ["tat-fra1", "deb-fra00000"]),
                      ("eng:deb,fra:train", ["tat-fra1", "deb-eng00000"])]:
        r = run("--again", spec, "--out", "g.jsonl")
        assert r.returncode == 0, (spec, r.stderr)
        assert [x["id"] for x in picked("g.jsonl")] == ids, (spec, picked("g.jsonl"))
    # --again-max: a seeded sample of the four spoken sentences (the fresh ones untouched); a
    # maximum at or above their number keeps all of them in file order
    all4 = ["tat-eng1", "tat-fra1", "deb-eng00000", "deb-fra00000"]
    samples = set()
    for seed in range(12):
        r = run("--want", "eng:wn:2", "--again", "eng,fra", "--again-max", "2", "--seed", str(seed),
                "--out", "g.jsonl")
        assert r.returncode == 0 and "2 of them kept" in r.stderr, r.stderr
        g2 = picked("g.jsonl")
        assert len(g2) == 4 and all(x["id"] in good_ids for x in g2[:2]), g2
        ids = [x["id"] for x in g2[2:]]
        assert len(set(ids)) == 2 and set(ids) <= set(all4), ids
        r = run("--want", "eng:wn:2", "--again", "eng,fra", "--again-max", "2", "--seed", str(seed),
                "--out", "g.jsonl")
        assert [x["id"] for x in picked("g.jsonl")][2:] == ids, seed
        samples.add(tuple(ids))
    assert len(samples) > 3, samples
    r = run("--want", "eng:wn:2", "--again", "eng,fra", "--again-max", "4", "--out", "g.jsonl")
    assert [x["id"] for x in picked("g.jsonl")][2:] == all4 and "kept" not in r.stderr, r.stderr
    print("ok: --again")

    # --word-strings: 3-6 of the French fragments with known characters, by count; seeded
    r = run("--word-strings", "fra:300", "--out", "h.jsonl")
    assert r.returncode == 0, r.stderr
    h = picked("h.jsonl")
    assert [x["id"] for x in h] == [f"words-fra{i:05d}" for i in range(300)], h[:3]
    assert all(x["lang"] == "fra" and re.fullmatch(r"(chat|lit){3,6}", x["text"]) for x in h), h
    n = collections.Counter(len(re.findall("chat|lit", x["text"])) for x in h)
    assert set(n) == {3, 4, 5, 6}, n
    words = collections.Counter(w for x in h for w in re.findall("chat|lit", x["text"]))
    assert 2 * words["lit"] < words["chat"] < 5 * words["lit"], words
    assert run("--word-strings", "fra:300", "--out", "i.jsonl").returncode == 0
    assert picked("i.jsonl") == h
    assert run("--word-strings", "fra:300", "--seed", "3", "--out", "i.jsonl").returncode == 0
    assert picked("i.jsonl") != h
    print("ok: --word-strings")

    for args, msg in [(["--want", "eng:wn"], "is not LANG:SOURCE:N"),
                      ([], "give --want, --again or --word-strings"),
                      (["--word-strings", "fra"], "give LANG:N"),
                      (["--word-strings", "kor:5"], "no word fragment of kor"),
                      (["--again", ","], "LANG or LANG:SOURCE"),
                      (["--again", "fra:"], "LANG or LANG:SOURCE"),
                      (["--again", "fra:dlg"], "no spoken sentence of fra:dlg"),
                      (["--again", "kor"], "no spoken sentence of kor"),
                      (["--want", "eng:wn:1", "--again-max", "3"], "with --again"),
                      (["--again", "fra", "--again-max", "0"], "N >= 1"),
                      (["--want", "eng:wn:x"], "whole number"),
                      (["--want", "eng:wn:-1"], "negative"),
                      (["--want", "eng:wn:1,eng:wn:2"], "given twice"),
                      (["--want", "kor:dlg:5"], "no sentence of kor:dlg"),
                      (["--want", "eng:wn:1", "--out", "train.jsonl"], "new file name"),
                      (["--want", "eng:wn:1", "--spoken", os.path.join(d, "nope.jsonl")], "no such file")]:
        r = run(*args)
        assert r.returncode != 0 and msg in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    print("ok: malformed requests refused")


if __name__ == "__main__":
    main()
