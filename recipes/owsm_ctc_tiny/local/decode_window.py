#!/usr/bin/env python3
"""Set the window an exported model decodes in (its speech_length) in an ESPnet config.yaml.

    decode_window.py CONFIG.yaml SECONDS

train.py places every utterance in a window of --window seconds (6 s), and cochlea pads audio up
to the model's speech_length to exactly one window and decodes longer audio in overlapping
windows (long form). The model decodes audio somewhat longer than its training window better as
one padded window than in long form (README "Decoding window"), so stage 5 exports a longer
speech_length than the training one. SECONDS must not be shorter than the training window.
"""
import sys

import yaml


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    path, arg = sys.argv[1], sys.argv[2]
    try:
        sec = float(arg)
    except ValueError:
        sys.exit(f"decode_window.py: {arg!r} is not a number of seconds")
    with open(path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    pc = cfg.get("preprocessor_conf") or {}
    train = float(pc.get("speech_length", 0))
    if not train:
        sys.exit(f"decode_window.py: {path} has no preprocessor_conf.speech_length")
    if not sec >= train or sec > 60:
        sys.exit(f"decode_window.py: {sec:g} s: the window must be at least the training window "
                 f"({train:g} s) and at most 60 s")
    pc["speech_length"] = sec
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg, f, allow_unicode=True, sort_keys=False)
    print(f"decode_window.py: {path}: speech_length {train:g} -> {sec:g} s", file=sys.stderr)


if __name__ == "__main__":
    main()
