#!/usr/bin/env python3
"""Stage 2 of the owsm_ctc_tiny recipe: synthetic speech and its log-mel features.

    synth.py TEXT.jsonl OUT_DIR --renditions R [--eng-renditions R] [--own OWN.jsonl --own-renditions R]
             [--voices train|test] [--augment] [--wav] [--nj N] [--seed S]

Every utterance is spoken by espeak-ng R times, each time with a voice variant drawn from the
split's variant set, a random rate (RATE_MIN..RATE_MAX words per minute) and pitch; with --augment each rendition also gets random
speed perturbation, gain, additive noise at a random SNR and synthetic reverberation. The
audio is resampled to 16 kHz (band-limited, by FFT) and turned into ESPnet log-mel features with
the reference frontend of tests/ref/owsm_ctc.py (natural log, not normalised).

Output: OUT_DIR/feats.npy (float16, all frames of all renditions concatenated, 80 columns),
OUT_DIR/index.jsonl (one line per rendition: id, lang, text, pair, voice, rate, pitch, aug,
offset, frames, samples) and, with --wav, OUT_DIR/wav/ID.wav (16-bit 16 kHz).

Voice variants: the test variants (TEST_VARIANTS) are never used for training or dev.
"""
import argparse
import io
import json
import multiprocessing as mp
import os
import subprocess
import sys
import wave
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "tests", "ref"))

# espeak-ng voices per language (several accents where espeak-ng has them). Mandarin is
# "cmn-latn-pinyin": espeak-ng's dictionary turns each character into pinyin with a tone digit,
# which the plain "cmn" voice then reads as English ("ta1" -> "ta one"); this one reads it as
# Mandarin syllables with their tones.
VOICES = {
    "eng": ["en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc"],
    "deu": ["de"], "fra": ["fr-fr", "fr-be", "fr-ch"], "ita": ["it"], "spa": ["es", "es-419"],
    "nld": ["nl"], "por": ["pt", "pt-br"], "rus": ["ru"], "pol": ["pl"], "tur": ["tr"],
    "ara": ["ar"], "zho": ["cmn-latn-pinyin"], "jpn": ["ja"], "kor": ["ko"],
}
# held-out speaker variants: only the test set uses them
TEST_VARIANTS = ["m7", "f4", "Andrea", "belinda", "klatt4", "Mike", "steph3", "iven3", "robert", "max"]
# whispered variants have no voicing at all; "fast" speaks faster than the rate asked for
EXCLUDED = {"whisper", "whisperf", "fast"}
# words per minute: conv2d8 leaves 12.5 output frames per second for the CTC labels, so speech
# must stay slow enough that the labels (pieces) are well under one per frame
RATE_MIN, RATE_MAX = 100, 150
SR_IN, SR = 22050, 16000


def all_variants():
    d = None
    for cand in ("/usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/!v", "/usr/share/espeak-ng-data/voices/!v"):
        if os.path.isdir(cand):
            d = cand
            break
    if d is None:
        out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
        path = out.split("Data at:")[-1].strip()
        d = os.path.join(path, "voices", "!v")
    return sorted(v for v in os.listdir(d) if v not in EXCLUDED)


def espeak(voice, rate, pitch, text):
    # the text goes through standard input: on the command line a leading "-" is an option
    r = subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout"],
                       input=text.encode("utf-8"), capture_output=True, check=True)
    if len(r.stdout) <= 44:
        raise RuntimeError(f"espeak-ng -v {voice} produced no audio for {text!r}")
    with wave.open(io.BytesIO(r.stdout)) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise RuntimeError("espeak-ng: unexpected WAV format")
        sr = w.getframerate()
        # espeak-ng writes a streaming header whose length fields are not filled in, so the
        # samples are everything after the 44-byte header
        data = r.stdout[44:]
    x = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
    return x, sr


def smooth(n):
    """The smallest 2^a 3^b 5^c >= n (fast FFT lengths)."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            v = p35
            while v < n:
                v *= 2
            best = min(best, v)
            p35 *= 3
        p5 *= 5
    return best


def resample(x, sr_from, sr_to):
    """Band-limited resampling by FFT over zero-padded, FFT-friendly lengths. The output length
    is rounded to a fast size too, so the rate changes by about 1 % at most, below the speed
    perturbation applied anyway."""
    n = len(x)
    L = smooth(n + 512)
    m = smooth(int(L * sr_to / sr_from))
    X = np.fft.rfft(x, L)
    k = min(len(X), m // 2 + 1)
    Y = np.zeros(m // 2 + 1, np.complex128)
    Y[:k] = X[:k]
    y = np.fft.irfft(Y, m) * (m / L)
    return y[: int(round(n * m / L))].astype(np.float32)


def colored_noise(rng, n0, kind):
    n = smooth(n0)
    w = rng.standard_normal(n)
    if kind == "white":
        return w[:n0]
    W = np.fft.rfft(w)
    f = np.arange(len(W), dtype=np.float64)
    f[0] = 1.0
    W = W / (np.sqrt(f) if kind == "pink" else f)
    y = np.fft.irfft(W, n)[:n0]
    return y / (np.std(y) + 1e-12)


def augment(rng, x):
    """speed 0.9-1.1 (before this call, via the resampling rate), reverberation, noise, gain."""
    tags = []
    if rng.random() < 0.3:  # synthetic room: exponentially decaying noise tail
        rt60 = rng.uniform(0.15, 0.6)
        n = int(rt60 * SR)
        t = np.arange(n) / SR
        ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
        ir[0] = 1.0
        ir *= rng.uniform(0.2, 0.6) / np.sqrt(np.sum(ir[1:] ** 2) + 1e-12)
        ir[0] = 1.0
        m = len(x) + n - 1
        L = smooth(m)
        y = np.fft.irfft(np.fft.rfft(x, L) * np.fft.rfft(ir, L), L)[:len(x)]
        x = (y / (np.max(np.abs(y)) + 1e-9) * np.max(np.abs(x))).astype(np.float32)
        tags.append(f"rev{rt60:.2f}")
    if rng.random() < 0.7:
        kind = ["white", "pink", "brown"][rng.integers(3)]
        snr = rng.uniform(5, 35)
        p = np.mean(x ** 2) + 1e-12
        x = x + colored_noise(rng, len(x), kind).astype(np.float32) * np.float32(np.sqrt(p / 10 ** (snr / 10)))
        tags.append(f"{kind}{snr:.0f}dB")
    g = 10 ** (rng.uniform(-18, 3) / 20)
    x = np.clip(x * g, -1.0, 1.0).astype(np.float32)
    tags.append(f"gain{20 * np.log10(g):.0f}dB")
    return x, tags


_FRONT = None


def frontend():
    global _FRONT
    if _FRONT is None:
        import torch
        torch.set_num_threads(1)
        import owsm_ctc as ref
        hp = ref.HParams(ref.build_config(_FrontendOnlySizes(), ["<blank>", "<unk>", "<na>", "<nolang>", "<asr>",
                                                          "<sos>", "<eos>", "<sop>"], "bpe.model", "s.npz"))
        f = ref.Frontend(hp)
        mel = ref.slaney_mel_matrix(hp.fs, hp.n_fft, hp.n_mels, hp.fmin, hp.fmax)
        f.logmel.melmat.copy_(torch.from_numpy(mel.T.copy()))
        _FRONT = f
    return _FRONT


class _FrontendOnlySizes:
    """Minimal network sizes for build_config: only the frontend of the model is used here."""
    layers, d_model, heads, ffn, cgmlp, cgmlp_kernel, merge_kernel = 1, 8, 1, 8, 8, 3, 3
    prompt_layers, prompt_d, prompt_heads, prompt_ffn = 1, 8, 1, 8
    cross_layers, interctc, n_mels = [], [], 80


def logmel(x):
    import torch
    with torch.no_grad():
        return frontend()(torch.from_numpy(x)[None])[0].numpy()


def job(args):
    try:
        return job1(args)
    except Exception as e:  # one bad sentence must not lose the whole run
        return f"{args[0]['id']} rendition {args[1]}: {e}", None


def job1(args):
    rec, k, variants, seed, aug, wav_dir = args
    rng = np.random.default_rng([seed, k, zlib.crc32(rec["id"].encode("utf-8"))])
    base = VOICES[rec["lang"]]
    voice = base[rng.integers(len(base))]
    var = variants[rng.integers(len(variants))]
    rate = int(rng.integers(RATE_MIN, RATE_MAX + 1))
    pitch = int(rng.integers(20, 80))
    x, sr = espeak(f"{voice}+{var}", rate, pitch, rec["text"])
    speed = float(rng.uniform(0.9, 1.1)) if aug else 1.0
    x = resample(x, sr * speed, SR)
    tags = [f"speed{speed:.2f}"] if aug else []
    if aug:
        x, t2 = augment(rng, x)
        tags += t2
    if len(x) < 2 * 160 + 400:
        x = np.concatenate([x, np.zeros(800 - len(x), np.float32)])
    uid = f"{rec['id']}-r{k}"
    if wav_dir:
        pcm = (np.clip(x, -1, 1) * 32767).round().astype("<i2")
        with wave.open(os.path.join(wav_dir, uid + ".wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SR)
            w.writeframes(pcm.tobytes())
    f = logmel(x).astype(np.float16)
    meta = {"id": uid, "lang": rec["lang"], "text": rec["text"], "pair": rec["pair"],
            "voice": f"{voice}+{var}", "rate": rate, "pitch": pitch, "aug": tags, "samples": len(x)}
    return meta, f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("text")
    ap.add_argument("out")
    ap.add_argument("--renditions", type=int, default=3)
    ap.add_argument("--eng-renditions", type=int, default=1)
    ap.add_argument("--own", help="our own sentences (jsonl), spoken --own-renditions times")
    ap.add_argument("--own-renditions", type=int, default=12)
    ap.add_argument("--voices", choices=["train", "test"], default="train")
    ap.add_argument("--augment", action="store_true")
    ap.add_argument("--wav", action="store_true", help="also keep 16 kHz WAV files")
    ap.add_argument("--nj", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    allv = all_variants()
    variants = [v for v in allv if v not in TEST_VARIANTS] if a.voices == "train" else \
        [v for v in TEST_VARIANTS if v in allv]
    if not variants:
        raise SystemExit("synth: no espeak-ng voice variants found")
    recs = [json.loads(l) for l in open(a.text, encoding="utf-8")]
    jobs = []
    wav_dir = os.path.join(a.out, "wav") if a.wav else None
    os.makedirs(wav_dir or a.out, exist_ok=True)
    for r in recs:
        n = a.eng_renditions if r["lang"] == "eng" else a.renditions
        jobs += [(r, k, variants, a.seed, a.augment, wav_dir) for k in range(n)]
    if a.own:
        for r in (json.loads(l) for l in open(a.own, encoding="utf-8")):
            jobs += [(r, k, variants, a.seed, a.augment, wav_dir) for k in range(a.own_renditions)]
    metas, feats, off, failed = [], [], 0, 0
    with mp.Pool(a.nj) as pool:
        for i, (m, f) in enumerate(pool.imap(job, jobs, chunksize=16)):
            if f is None:
                print(f"synth: skipped {m}", file=sys.stderr, flush=True)
                failed += 1
                continue
            m["offset"], m["frames"] = off, int(f.shape[0])
            off += f.shape[0]
            metas.append(m)
            feats.append(f)
            if (i + 1) % 2000 == 0:
                print(f"synth: {i + 1}/{len(jobs)} renditions", file=sys.stderr, flush=True)
    np.save(os.path.join(a.out, "feats.npy"), np.concatenate(feats))
    with open(os.path.join(a.out, "index.jsonl"), "w", encoding="utf-8") as f:
        for m in metas:
            f.write(json.dumps(m, ensure_ascii=False) + "\n")
    secs = sum(m["samples"] for m in metas) / SR
    print(f"synth: {len(metas)} renditions ({failed} failed), {secs / 3600:.2f} h of audio -> {a.out}")
    if failed > max(2, len(jobs) // 100):
        raise SystemExit(f"synth: {failed} of {len(jobs)} renditions failed")


if __name__ == "__main__":
    main()
