"""Frontend benchmark: Cochlea against the PyTorch reference on the same audio, one thread.

    python3 bench/frontend_torch.py FRONTEND_BENCH [--seconds 120] [--reps 5] [--torch-reps 3]

Writes test audio (espeak-ng speech repeated to --seconds, or a synthetic vowel sequence if
espeak-ng is absent) as 16 kHz mono and 44.1 kHz stereo 16-bit WAV, and 16 kHz FLAC when sox is
installed; runs FRONTEND_BENCH (bench/frontend_bench.c) on them, and times the PyTorch reference
on the WAV files: WAV decoding with the standard library, channel average, a torch windowed-sinc
resampler (the torchaudio algorithm: Hann-windowed sinc, 6 zero crossings, roll-off 0.99, run
as a strided conv1d) and tests/ref/frontend.py's ESPnet log-mel (torch.stft, float32). Prints
seconds of audio per CPU second (median) and the ratio.
"""

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import frontend as ref  # noqa: E402


def make_speech(seconds, tmp):
    """Speech at 16 kHz, float32, `seconds` long."""
    exe = shutil.which("espeak-ng")
    if exe:
        path = os.path.join(tmp, "espeak.wav")
        subprocess.run([exe, "-w", path, "The frontend turns audio of any format into log mel features. "
                        "It decodes, resamples, frames, transforms and filters every block it reads."],
                       check=True)
        with wave.open(path, "rb") as w:
            rate = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
        x = resample(torch.from_numpy(x), rate, 16000).numpy()
    else:
        t = np.arange(3 * 16000) / 16000
        f0 = 120 + 20 * np.sin(2 * np.pi * 0.5 * t)
        ph = 2 * np.pi * np.cumsum(f0) / 16000
        x = sum(np.sin(k * ph) / k for k in range(1, 30)) * 0.1
        x = x.astype(np.float32)
    reps = int(math.ceil(seconds * 16000 / len(x)))
    return np.tile(x, reps)[: int(seconds * 16000)]


def write_wav16(path, x, rate):
    x = np.asarray(x)
    ch = 1 if x.ndim == 1 else x.shape[1]
    with wave.open(path, "wb") as w:
        w.setnchannels(ch)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2").tobytes())


def resample(x, orig, new, width=6, rolloff=0.99):
    """Band-limited resampling of a float32 1-D tensor: each output phase has its own
    Hann-windowed sinc kernel, applied as a conv1d with stride orig/gcd."""
    if orig == new:
        return x
    g = math.gcd(orig, new)
    orig, new = orig // g, new // g
    base = min(orig, new) * rolloff
    w = int(math.ceil(width * orig / base))
    idx = torch.arange(-w, w + orig, dtype=torch.float64)[None, :] / orig
    t = (torch.arange(0, -new, -1, dtype=torch.float64)[:, None] / new + idx) * base
    t = t.clamp(-width, width)
    window = torch.cos(t * math.pi / width / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / torch.where(t == 0, torch.ones_like(t), t))
    kernels = (sinc * window * (base / orig)).float()[:, None, :]
    y = F.conv1d(F.pad(x[None, None, :], (w, w + orig)), kernels, stride=orig)
    y = y[0].t().reshape(-1)
    return y[: int(math.ceil(new * x.shape[0] / orig))]


def torch_frontend(path, melmat):
    """Decode a 16-bit WAV, average channels, resample to 16 kHz, ESPnet log-mel."""
    with wave.open(path, "rb") as w:
        rate, ch = w.getframerate(), w.getnchannels()
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
    x = torch.from_numpy(x.reshape(-1, ch).mean(axis=1, dtype=np.float32))
    x = resample(x, rate, 16000)
    return ref.logmel(x.numpy(), melmat), x.shape[0] / 16000.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("frontend_bench", help="path of the built bench/frontend_bench")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--torch-reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tmp = tempfile.mkdtemp(prefix="frontend_bench-")
    try:
        x = make_speech(args.seconds, tmp)
        files = {"16k mono WAV": os.path.join(tmp, "speech16k.wav"),
                 "44.1k stereo WAV": os.path.join(tmp, "speech44k.wav")}
        write_wav16(files["16k mono WAV"], x, 16000)
        x44 = resample(torch.from_numpy(x), 16000, 44100).numpy()
        write_wav16(files["44.1k stereo WAV"], np.stack([x44, 0.5 * x44], axis=1), 44100)
        if shutil.which("sox"):
            files["16k FLAC"] = os.path.join(tmp, "speech16k.flac")
            subprocess.run(["sox", files["16k mono WAV"], files["16k FLAC"]], check=True)
        out = subprocess.run([args.frontend_bench, "-r", str(args.reps)] + list(files.values()),
                             check=True, stdout=subprocess.PIPE, text=True).stdout
        c = {}
        for line in out.splitlines():
            if line.startswith("#"):
                continue
            f, stage, audio_s, cpu_s, xrt = line.split()
            c[(f, stage)] = float(xrt)
        melmat = ref.slaney_melmat()
        print(f"frontend, one thread, {args.seconds:.0f} s of speech; x real time = seconds of audio per CPU "
              f"second (median of {args.reps} Cochlea / {args.torch_reps} PyTorch runs after a warm-up)")
        print(f"{'input':<18} {'Cochlea full':>13} {'decode+resample':>16} {'log-mel':>9} {'PyTorch full':>13} "
              f"{'ratio':>7}")
        for name, path in files.items():
            full = c[(path, "decode+resample+logmel")]
            tx = "n/a"
            ratio = "n/a"
            if path.endswith(".wav"):
                torch_frontend(path, melmat)  # warm-up (first-call allocations), not timed
                times = []
                for _ in range(args.torch_reps):
                    t0 = time.process_time()
                    _, audio_s = torch_frontend(path, melmat)
                    times.append(time.process_time() - t0)
                tx_v = audio_s / float(np.median(times))
                tx = f"{tx_v:.0f}x"
                ratio = f"{full / tx_v:.1f}"
            print(f"{name:<18} {full:>12.0f}x {c[(path, 'decode+resample')]:>15.0f}x "
                  f"{c[(path, 'logmel')]:>8.0f}x {tx:>13} {ratio:>7}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
