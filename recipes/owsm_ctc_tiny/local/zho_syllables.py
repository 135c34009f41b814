#!/usr/bin/env python3
"""Where Chinese recognition errors come from: characters, syllables with tones, syllables without.

    zho_syllables.py HYP_ASR.jsonl [--lang zho] [--voice cmn-latn-pinyin] [--espeak espeak-ng]

HYP_ASR.jsonl is evaluate.py's recognition output (records with "lang", "ref" and "hyp"). For each
utterance of --lang, the reference and the hypothesis (score.py's normalisation: no punctuation or
symbols, no spaces) are turned into the syllables espeak-ng speaks for them (`espeak-ng -v VOICE
-q -x`: one phoneme string per character, with its tone as digits), the voice the recipe's
Chinese audio is made with. Printed, each as edits over the reference's units:
  - CER: characters (score.py's CER);
  - syllable error rate: espeak-ng's syllables with their tones. A character error that leaves
    it unchanged is a homophone the audio cannot tell apart (他/她: both th'A55): only the
    language model can fix it;
  - toneless syllable error rate: the same with tone digits removed. The difference between the
    two is what the network hears wrongly in tones alone.
"""
import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from score import cer_units, edit_distance, read_jsonl  # noqa: E402


def syllables(text, voice, espeak):
    """espeak-ng's syllables (phoneme strings with tone digits) for text's characters, in order."""
    chars = "".join(cer_units(text))
    if not chars:
        return []
    r = subprocess.run([espeak, "-v", voice, "-q", "-x", chars], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{espeak} -v {voice} failed: {r.stderr.strip()}")
    return [s for s in re.split(r"[\s_|]+", r.stdout) if s]


def toneless(syls):
    return [re.sub(r"[0-9]", "", s) for s in syls]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("hyp")
    ap.add_argument("--lang", default="zho")
    ap.add_argument("--voice", default="cmn-latn-pinyin")
    ap.add_argument("--espeak", default="espeak-ng")
    a = ap.parse_args()
    try:
        recs = [r for r in read_jsonl(a.hyp) if r.get("lang") == a.lang]
    except (OSError, ValueError) as e:
        sys.exit(f"zho_syllables.py: {e}")
    if not recs:
        sys.exit(f"zho_syllables.py: {a.hyp} has no {a.lang} utterance")
    tot = {"c": [0, 0], "s": [0, 0], "t": [0, 0]}
    try:
        for r in recs:
            if "ref" not in r or "hyp" not in r:
                sys.exit(f"zho_syllables.py: {a.hyp}: a {a.lang} record without ref or hyp")
            rs, hs = syllables(r["ref"], a.voice, a.espeak), syllables(r["hyp"], a.voice, a.espeak)
            rc = cer_units(r["ref"])
            for k, (x, y) in {"c": (rc, cer_units(r["hyp"])), "s": (rs, hs),
                              "t": (toneless(rs), toneless(hs))}.items():
                tot[k][0] += edit_distance(x, y)
                tot[k][1] += len(x)
    except (OSError, RuntimeError) as e:
        sys.exit(f"zho_syllables.py: {e}")
    pct = {k: 100.0 * e / max(n, 1) for k, (e, n) in tot.items()}
    print(f"{a.lang}: {len(recs)} utterances, {tot['c'][1]} characters, {tot['s'][1]} syllables")
    print(f"CER {pct['c']:.1f} %, syllable error rate {pct['s']:.1f} %, "
          f"toneless syllable error rate {pct['t']:.1f} %")


if __name__ == "__main__":
    main()
