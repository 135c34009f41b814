#!/usr/bin/env python3
"""recipes/owsm_ctc_tiny/local/zho_syllables.py on a hand-made hypothesis file: a homophone
(他 -> 她, the same syllable and tone in espeak-ng's Mandarin) costs a character but no syllable; a
tone error (买 mai21 -> 卖 mai51) costs a character and a syllable but no toneless syllable;
other languages are skipped; a file without Chinese is refused.

    zho_syllables_check.py TOP_SRCDIR
"""
import json
import os
import subprocess
import sys
import tempfile


def main():
    top = sys.argv[1]
    tool = os.path.join(top, "recipes", "owsm_ctc_tiny", "local", "zho_syllables.py")
    with tempfile.TemporaryDirectory() as d:
        def run(recs):
            p = os.path.join(d, "hyp.jsonl")
            with open(p, "w", encoding="utf-8") as f:
                for r in recs:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
            return subprocess.run([sys.executable, tool, p], capture_output=True, text=True)

        r = run([{"lang": "zho", "ref": "他很好。", "hyp": "她很好"},
                 {"lang": "eng", "ref": "A cat.", "hyp": "A dog."},
                 {"lang": "zho", "ref": "买书", "hyp": "卖书!"}])
        assert r.returncode == 0, r.stderr
        assert "zho: 2 utterances, 5 characters, 5 syllables" in r.stdout, r.stdout
        assert ("CER 40.0 %, syllable error rate 20.0 %, toneless syllable error rate 0.0 %"
                in r.stdout), r.stdout
        print("ok: homophones, tone errors and toneless syllables counted apart")
        r = run([{"lang": "zho", "ref": "我们明天去学校。", "hyp": "我们"}])
        assert r.returncode == 0, r.stderr
        assert "CER 71.4 %, syllable error rate 71.4 %, toneless syllable error rate 71.4 %" in r.stdout, r.stdout
        print("ok: deletions")
        r = run([{"lang": "eng", "ref": "A cat.", "hyp": "A dog."}])
        assert r.returncode != 0 and "has no zho utterance" in r.stderr, (r.returncode, r.stderr)
        print("ok: a file without Chinese refused")


if __name__ == "__main__":
    main()
