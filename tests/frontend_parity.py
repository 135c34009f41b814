"""Parity of `cochlea features` with the PyTorch reference (tests/ref/frontend.py).

    python3 tests/frontend_parity.py COCHLEA_BINARY [SHARED_DIR]

Log-mel tolerance (issue 3): max |diff| <= 1e-3 and mean |diff| <= 1e-5 against the reference
evaluated in float64 (ESPnet's formula, float32 signal and window, exact arithmetic), for speech,
tones, noise, silence, clipping, DC, short inputs, 8/22.05/44.1/48 kHz inputs, stereo, 80 and 128
mels and MVN. ESPnet's own float32 FFT leaves rounding noise of ~1e-7 of a frame's energy in
every bin, which shifts the log-mel of bands far below the frame's peak (tones, DC, the empty
4-8 kHz band of 8 kHz audio, pauses in speech) by up to 2e-2; where the signal is broadband
(noise, clipping, noisy mixtures) the same tolerance is also checked against the float32
reference, elsewhere that difference is printed for information.
Resampled inputs are compared on the 16 kHz samples the C side produced (--dump-audio); soxr's
output itself is checked separately (length, tone frequency and amplitude). The filterbank C
computes (--dump-melmat) must match the reference filterbank to 1e-6.
"""

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref"))
import frontend as ref  # noqa: E402
from checks import FAILS, check  # noqa: E402

MAX_TOL = 1e-3
MEAN_TOL = 1e-5
MELMAT_TOL = 1e-6


def write_wav(path, x, rate, pcm16=False):
    """WAV writer: float32 (format tag 3) or 16-bit PCM (x already in [-1, 1], scaled by 32768
    and clipped, read back by libsndfile as int / 32768). x is (n,) or (n, channels)."""
    x = np.asarray(x, dtype=np.float32)
    ch = 1 if x.ndim == 1 else x.shape[1]
    if pcm16:
        data = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2").tobytes()
        tag, bits = 1, 16
    else:
        data = x.astype("<f4").tobytes()
        tag, bits = 3, 32
    block = ch * bits // 8
    fmt = struct.pack("<HHIIHH", tag, ch, rate, rate * block, block, bits)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt)
        f.write(b"data" + struct.pack("<I", len(data)) + data)


def pcm16_value(x):
    """What libsndfile returns for x written by write_wav(pcm16=True)."""
    return (np.clip(np.round(np.asarray(x, np.float32) * 32768.0), -32768, 32767) / 32768.0).astype(np.float32)


def mono(x):
    """Channel average as the C side does it: float32 sum over channels, divided by the count."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        return x
    s = x[:, 0].copy()
    for c in range(1, x.shape[1]):
        s = (s + x[:, c]).astype(np.float32)
    return (s / np.float32(x.shape[1])).astype(np.float32)


def run_cochlea(cochlea, args, stdin=None, expect_ok=True):
    p = subprocess.run([cochlea, "features"] + args, stdin=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if expect_ok and p.returncode != 0:
        raise RuntimeError(f"cochlea features {' '.join(args)} failed ({p.returncode}): "
                           f"{p.stderr.decode(errors='replace')}")
    return p


def speech_signal(tmp):
    """espeak-ng speech at its native 22050 Hz as float32, or a synthetic vowel sequence when
    espeak-ng is not installed (then said so)."""
    exe = shutil.which("espeak-ng")
    if exe:
        path = os.path.join(tmp, "espeak.wav")
        subprocess.run([exe, "-w", path, "Cochlea computes log mel features exactly like ESPnet, "
                        "for speech recognition on the CPU."], check=True)
        import wave
        with wave.open(path, "rb") as w:
            rate = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
            if w.getnchannels() > 1:
                x = x.reshape(-1, w.getnchannels())[:, 0]
        return x, rate, "espeak-ng"
    print("note: espeak-ng not found, using a synthetic vowel sequence as speech")
    rate = 22050
    t = np.arange(int(2.5 * rate)) / rate
    f0 = 110 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = np.zeros_like(t)
    for k in range(1, 40):
        amp = 1.0 / k * (1 + 3 * np.exp(-((k * f0 - 700) / 150) ** 2) + 2 * np.exp(-((k * f0 - 1200) / 200) ** 2))
        x += amp * np.sin(k * phase)
    x *= 0.3 / np.abs(x).max() * (0.5 + 0.5 * np.sin(2 * np.pi * 2.0 * t) ** 2)
    return x.astype(np.float32), rate, "synthetic"


def compare(name, c, wav16, melmat, mean=None, std=None, espnet_f32=False):
    """Check C features against the float64 reference (and the float32 one when asked)."""
    r64 = ref.logmel(wav16, melmat, mean, std, precision="float64")
    r32 = ref.logmel(wav16, melmat, mean, std, precision="float32")
    ok_shape = c.shape == r64.shape
    check(ok_shape, f"{name}: shape {c.shape} (reference {r64.shape})")
    if not ok_shape:
        return
    d = np.abs(c.astype(np.float64) - r64)
    d32 = np.abs(c.astype(np.float64) - r32)
    msg = (f"{name}: vs float64 max {d.max():.2e} mean {d.mean():.2e}; "
           f"vs ESPnet float32 max {d32.max():.2e} mean {d32.mean():.2e}")
    ok = d.max() <= MAX_TOL and d.mean() <= MEAN_TOL
    if espnet_f32:
        ok = ok and d32.max() <= MAX_TOL and d32.mean() <= MEAN_TOL
        msg += " (both checked)"
    check(ok, msg)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    cochlea = sys.argv[1]
    shared = sys.argv[2] if len(sys.argv) > 2 else ""
    tmp = tempfile.mkdtemp(prefix="frontend_parity-")
    try:
        return run(cochlea, shared, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(cochlea, shared, tmp):
    rng = np.random.default_rng(1234)
    mel80 = ref.slaney_melmat(n_mels=80)
    mel128 = ref.slaney_melmat(n_mels=128)

    def features(path, *extra, dump_audio=False):
        out = os.path.join(tmp, "out.npy")
        args = [path, "-o", out] + list(extra)
        if dump_audio:
            args += ["--dump-audio", os.path.join(tmp, "audio.npy")]
        run_cochlea(cochlea, args)
        c = np.load(out)
        a = np.load(os.path.join(tmp, "audio.npy")) if dump_audio else None
        return c, a

    # --- filterbanks --------------------------------------------------------------------------
    for n_mels, fmin, fmax in [(80, None, None), (128, None, None), (80, 20.0, 7600.0), (40, 300.0, 3400.0)]:
        mm = os.path.join(tmp, "melmat.npy")
        args = ["--n-mels", str(n_mels), "--dump-melmat", mm]
        if fmin is not None:
            args += ["--fmin", str(fmin), "--fmax", str(fmax)]
        x = os.path.join(tmp, "short.wav")
        write_wav(x, np.zeros(400, np.float32), 16000)
        run_cochlea(cochlea, [x, "-o", os.path.join(tmp, "o.npy")] + args)
        c = np.load(mm)
        r = ref.slaney_melmat(n_mels=n_mels, fmin=fmin or 0.0, fmax=fmax).T
        d = np.abs(c.astype(np.float64) - r).max() if c.shape == r.shape else np.inf
        check(d <= MELMAT_TOL, f"filterbank {n_mels} mels, fmin {fmin or 0}, fmax {fmax or 8000}: "
              f"shape {c.shape}, max diff {d:.2e}")

    # --- 16 kHz signals ------------------------------------------------------------------------
    sr = 16000
    t = np.arange(3 * sr) / sr
    speech, speech_rate, speech_kind = speech_signal(tmp)
    sp_path = os.path.join(tmp, "speech_native.wav")
    write_wav(sp_path, speech, speech_rate, pcm16=True)
    c, speech16 = features(sp_path, dump_audio=True)
    compare(f"speech ({speech_kind}, {speech_rate} Hz -> 16 kHz)", c, speech16, mel80)

    cases = [
        ("speech 16 kHz float", speech16, False, False),
        ("speech 16 kHz int16", pcm16_value(speech16), True, False),
        ("tone 440 Hz", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), False, False),
        ("tone 3 kHz", (0.9 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32), False, False),
        ("tone 7.9 kHz", (0.99 * np.sin(2 * np.pi * 7900 * t)).astype(np.float32), False, False),
        ("white noise", rng.uniform(-1, 1, 2 * sr).astype(np.float32), False, True),
        ("digital silence", np.zeros(sr, np.float32), False, False),
        ("full-scale clipping", pcm16_value(np.clip(4 * np.sin(2 * np.pi * 250 * t[:sr]), -1, 1)), True, True),
        ("DC +0.5", np.full(sr, 0.5, np.float32), True, False),
        ("DC -1.0", np.full(sr, -1.0, np.float32), True, False),
        ("0.05 s", (0.3 * np.sin(2 * np.pi * 1000 * t[:800]) + rng.normal(0, 0.05, 800)).astype(np.float32),
         False, True),
        ("0.2 s", rng.normal(0, 0.2, 3200).astype(np.float32), False, True),
        ("257 samples (shortest)", rng.normal(0, 0.2, 257).astype(np.float32), False, True),
    ]
    for name, x, pcm16, f32 in cases:
        path = os.path.join(tmp, "in.wav")
        write_wav(path, x, sr, pcm16=pcm16)
        c, _ = features(path)
        compare(name, c, pcm16_value(x) if pcm16 else x, mel80, espnet_f32=f32)

    # 128 mels
    path = os.path.join(tmp, "in.wav")
    write_wav(path, speech16, sr)
    c, _ = features(path, "--n-mels", "128")
    compare("speech, 128 mels", c, speech16, mel128)
    noise = rng.normal(0, 0.3, sr).astype(np.float32)
    write_wav(path, noise, sr)
    c, _ = features(path, "--n-mels", "128")
    compare("noise, 128 mels", c, noise, mel128, espnet_f32=True)

    # stereo: averaged, and --channel
    st = np.stack([(0.4 * np.sin(2 * np.pi * 523 * t[:sr])).astype(np.float32),
                   rng.uniform(-0.5, 0.5, sr).astype(np.float32)], axis=1)
    write_wav(path, st, sr)
    c, _ = features(path)
    compare("stereo (channel average)", c, mono(st), mel80, espnet_f32=True)
    c, _ = features(path, "--channel", "1")
    compare("stereo --channel 1", c, st[:, 1].copy(), mel80, espnet_f32=True)

    # --- other rates: features on the C side's 16 kHz samples, and soxr sanity ----------------
    for rate in (8000, 22050, 44100, 48000):
        n = int(1.5 * rate)
        tt = np.arange(n) / rate
        tone = (0.6 * np.sin(2 * np.pi * 1000 * tt)).astype(np.float32)
        mix = (tone + rng.normal(0, 0.05, n)).astype(np.float32)
        write_wav(path, tone, rate)
        c, a = features(path, dump_audio=True)
        compare(f"{rate} Hz tone -> 16 kHz", c, a, mel80)
        want = n * 16000 / rate
        mid = a[len(a) // 4: 3 * len(a) // 4]
        k = np.arange(len(a))[len(a) // 4: 3 * len(a) // 4]
        ideal = 0.6 * np.sin(2 * np.pi * 1000 * k / 16000)
        dev = np.abs(mid - ideal).max()
        check(abs(len(a) - want) <= 1 and dev < 2e-3,
              f"{rate} Hz soxr: {len(a)} samples (expected {want:.1f}), max deviation from the ideal "
              f"1 kHz tone {dev:.2e}")
        write_wav(path, mix, rate)
        c, a = features(path, dump_audio=True)
        # 8 kHz audio has nothing above 4 kHz: those bands are float32 noise in ESPnet
        compare(f"{rate} Hz tone + noise -> 16 kHz", c, a, mel80, espnet_f32=rate > 8000)
        write_wav(path, np.stack([mix, tone], axis=1), rate)
        c, a = features(path, dump_audio=True)
        compare(f"{rate} Hz stereo -> 16 kHz", c, a, mel80, espnet_f32=rate > 8000)

    # --- MVN -------------------------------------------------------------------------------------
    stats = os.path.join(tmp, "stats.npz")
    cnt = np.int64(123456)
    s1 = (rng.normal(-15, 3, 80) * cnt).astype(np.float32)
    s2 = ((np.square(s1 / cnt) + rng.uniform(4, 40, 80)) * cnt).astype(np.float32)
    np.savez(stats, count=cnt, sum=s1, sum_square=s2)
    mean, std = ref.stats_mean_std(stats)
    c, a = features(path, "--stats", stats, dump_audio=True)  # the 48 kHz stereo file
    compare("MVN with a synthetic feats_stats.npz (48 kHz stereo)", c, a, mel80, mean, std, espnet_f32=True)
    # a model file (tools/gguf.py) carrying 128-mel frontend settings, melmat and statistics
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
    import gguf  # noqa: E402
    w = gguf.GGUFWriter()
    w.add_string("general.architecture", "owsm_ctc")
    for k, v in (("sample_rate", 16000), ("n_fft", 512), ("win_length", 400), ("hop_length", 160),
                 ("n_mels", 128)):
        w.add_u32("owsm_ctc." + k, v)
    w.add_f32("owsm_ctc.fmin", 0.0)
    w.add_f32("owsm_ctc.fmax", 8000.0)
    mm = (ref.slaney_melmat(n_mels=128).T * np.float32(1.25)).astype(np.float32)  # a model's own matrix
    m128 = rng.normal(-14, 2, 128).astype(np.float32)
    s128 = rng.uniform(3, 6, 128).astype(np.float32)
    w.add_tensor("frontend.logmel.melmat", mm, "f32")
    w.add_tensor("normalize.mean", m128, "f32")
    w.add_tensor("normalize.std", s128, "f32")
    model = os.path.join(tmp, "frontend.gguf")
    w.write(model)
    c, a = features(path, "-m", model, dump_audio=True)
    compare("-m model file (128 mels, its melmat and MVN)", c, a, np.ascontiguousarray(mm.T), m128, s128,
            espnet_f32=True)
    c, a = features(path, "-m", model, "--no-mvn", dump_audio=True)
    compare("-m model file --no-mvn", c, a, np.ascontiguousarray(mm.T), espnet_f32=True)

    shared_stats = os.path.join(shared, "owsm", "feats_stats.npz") if shared else ""
    if shared_stats and os.path.exists(shared_stats):
        mean, std = ref.stats_mean_std(shared_stats)
        write_wav(path, speech16, sr)
        c, _ = features(path, "--stats", shared_stats)
        compare("MVN with the released OWSM v3.1 feats_stats.npz", c, speech16, mel80, mean, std)
        write_wav(path, np.zeros(sr, np.float32), sr)
        c, _ = features(path, "--stats", shared_stats)
        check(abs(c[5, 0] + 0.7255) < 1e-3 and abs(c[5, 79] + 0.608) < 1e-3,
              f"released stats: digital silence normalises to {c[5, 0]:.4f} (bin 0), {c[5, 79]:.4f} (bin 79)")
    else:
        print(f"SKIP released feats_stats.npz parity: {shared_stats or '(no shared dir)'} not found")

    # --- CLI paths: stdin, stdout, errors --------------------------------------------------------
    write_wav(path, speech16, sr)
    ref_out, _ = features(path)
    with open(path, "rb") as f:
        data = f.read()
    out = os.path.join(tmp, "pipe.npy")
    p = subprocess.run([cochlea, "features", "-", "-o", out], input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    check(p.returncode == 0 and np.array_equal(np.load(out), ref_out), "stdin pipe gives the same features")
    p = subprocess.run([cochlea, "features", path, "-o", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got = np.load(__import__("io").BytesIO(p.stdout)) if p.returncode == 0 else None
    check(got is not None and np.array_equal(got, ref_out), "-o - writes the same .npy to a pipe")
    missing = os.path.join(tmp, "missing.wav")
    p = run_cochlea(cochlea, [missing, "-o", out], expect_ok=False)
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 1 and missing in err and "No such file" in err, f"missing input: {err.strip()}")
    comp = os.path.join(tmp, "compressed.npz")
    np.savez_compressed(comp, count=cnt, sum=s1, sum_square=s2)
    p = run_cochlea(cochlea, [path, "-o", out, "--stats", comp], expect_ok=False)
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 1 and "compressed" in err, f"compressed stats: {err.strip()}")
    p = run_cochlea(cochlea, [path, "-o", out, "--stats", stats, "--n-mels", "128"], expect_ok=False)
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 1 and "80 dimensions" in err, f"stats/n_mels mismatch: {err.strip()}")
    write_wav(path, np.zeros(200, np.float32), sr)
    p = run_cochlea(cochlea, [path, "-o", out], expect_ok=False)
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 1 and "too short" in err and not os.path.exists(out),
          f"200-sample input: {err.strip()}")
    with zipfile.ZipFile(stats) as z:
        names = sorted(z.namelist())
    check(names == ["count.npy", "sum.npy", "sum_square.npy"], f"np.savez members {names}")

    print(f"{len(FAILS)} failure(s)")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
