#!/usr/bin/env python3
"""Stage 7 of the owsm_ctc_tiny recipe: the committed sample clips.

    samples.py SAMPLES.tsv OWN.jsonl OUT_DIR

Speaks each sample's sentence (from the recipe's own sentences) with the given held-out voice,
rate and pitch, resamples to 16 kHz and writes OUT_DIR/FILE (16-bit WAV) and OUT_DIR/expected.tsv
(file, language, task, expected text: the transcript for asr, the English translation for st_eng).
Deterministic: no augmentation, no randomness.
"""
import json
import os
import sys
import wave

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synth  # noqa: E402


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    tsv, own, out = sys.argv[1:]
    sent = {}
    for line in open(own, encoding="utf-8"):
        r = json.loads(line)
        sent[r["id"][len("own-"):]] = r
    os.makedirs(out, exist_ok=True)
    rows = []
    for line in open(tsv, encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        fn, sid, lang, task, voice, rate, pitch = line.rstrip("\n").split("\t")
        r = sent[sid]
        if r["lang"] != lang:
            raise SystemExit(f"samples: {sid} is {r['lang']}, not {lang}")
        var = voice.split("+", 1)[1]
        if var not in synth.TEST_VARIANTS:
            raise SystemExit(f"samples: {voice}: the variant must be a held-out one {synth.TEST_VARIANTS}")
        x, sr = synth.espeak(voice, int(rate), int(pitch), r["text"])
        x = synth.resample(x, sr, synth.SR)
        pcm = (np.clip(x, -1, 1) * 32767).round().astype("<i2")
        with wave.open(os.path.join(out, fn), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(synth.SR)
            w.writeframes(pcm.tobytes())
        expected = r["text"] if task == "asr" else r["pair"][task[3:]]
        rows.append((fn, lang, task, expected))
    with open(os.path.join(out, "expected.tsv"), "w", encoding="utf-8") as f:
        f.write("# file\tlanguage\ttask\texpected output of `cochlea transcribe` (written by the recipe's stage 7)\n")
        for row in rows:
            f.write("\t".join(row) + "\n")
    print(f"samples: {len(rows)} clips -> {out}")


if __name__ == "__main__":
    main()
