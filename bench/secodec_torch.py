"""SECodec benchmark: Cochlea against the PyTorch reference on the same weights and audio, one thread.

    python3 bench/secodec_torch.py SECODEC_BENCH [--seconds 10] [--reps 3] [--build-reps REPS]
        [--no-build] [--keep DIR]

Writes a random-init SECodec network of the default size (n_filters 64, D 1024, strides
2/4/5/8, 2-layer BiLSTM encoder and LSTM decoder, about 103M parameters; the converter's
--random-init weights, seed 1) as an F32 GGUF file, and --seconds of speech-like audio
(espeak-ng speech, repeated to length; a synthetic voiced glide when espeak-ng is missing).
Then, in one run:
  - SECODEC_BENCH codec (bench/secodec_bench.c): encoder latents and the public decoder, the SE
    quantiser (node-game rule and nearest centroid on a 10,000-node codebook built on latents
    mixed pairwise with noise, see secodec_bench.c);
  - the PyTorch reference (tests/ref/secodec.py, torch.set_num_threads(1), inference_mode):
    encoder on the same audio, decoder on the same quantised latents (the C side writes them),
    and torch.cdist + argmin as a nearest-centroid quantiser on the same centroids;
    the C and PyTorch outputs are compared (max abs difference);
  - SECODEC_BENCH build: se_codebook_build for N = 10,000, D = 1024 on a Gaussian mixture.
x real time = seconds of audio per CPU second (process CPU time, medians after a warm-up).
Exit status 1 when a run fails or C and PyTorch disagree beyond 1e-3 (latents, audio) or on
more than 1 % of the nearest-centroid tokens.
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

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(SRC, "tools"), os.path.join(SRC, "tests", "ref")]
import convert_secodec as conv  # noqa: E402
import secodec as ref  # noqa: E402

RATE = 16000
TOL = 1e-3  # C vs PyTorch, max abs (the parity test holds 1e-4 on short inputs; 10 s of LSTM state drifts more)


def log(msg):
    print(msg, flush=True)


def glide(seconds):
    """Voiced syllables: a harmonic source with f0 gliding 100-180 Hz, two moving formant-like
    emphases, 0.25 s syllables with 0.05 s gaps, a little noise."""
    rng = np.random.default_rng(3)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    ph = 2 * np.pi * np.cumsum(f0) / RATE
    f1 = 600 + 300 * np.sin(2 * np.pi * 1.3 * t)
    f2 = 1700 + 500 * np.sin(2 * np.pi * 0.9 * t + 1)
    x = np.zeros(n)
    for h in range(1, 30):
        fh = h * f0
        amp = np.exp(-((fh - f1) / 250) ** 2) + 0.5 * np.exp(-((fh - f2) / 350) ** 2) + 0.05 / h
        x += amp * np.sin(h * ph)
    env = ((t % 0.3) < 0.25) * np.sin(np.pi * np.minimum((t % 0.3) / 0.25, 1)) ** 0.5
    x = 0.3 * x * env / np.max(np.abs(x)) + 0.003 * rng.standard_normal(n)
    return x.astype(np.float32)


def make_speech(seconds, tmp):
    """(samples float32 at 16 kHz, description)."""
    exe = shutil.which("espeak-ng")
    if not exe:
        return glide(seconds), "synthetic voiced glide (espeak-ng not found)"
    path = os.path.join(tmp, "espeak.wav")
    subprocess.run([exe, "-w", path, "The codec turns speech into a few tokens per frame and back. "
                    "Structural entropy groups similar frames into communities of the feature graph."],
                   check=True)
    with wave.open(path, "rb") as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32768.0
    if rate != RATE:  # band-limited resampling (FFT-based, the clip is short)
        n_out = int(round(len(x) * RATE / rate))
        spec = np.fft.rfft(x)
        keep = n_out // 2 + 1
        spec = spec[:keep] if keep <= spec.size else np.pad(spec, (0, keep - spec.size))
        x = np.fft.irfft(spec, n_out) * (n_out / len(x))
    reps = int(math.ceil(seconds * RATE / len(x)))
    return np.tile(x, reps)[: int(seconds * RATE)].astype(np.float32), "espeak-ng speech, repeated"


def make_model(path, seed):
    """Write the default-size random-init network (F32, bare) and return the reference model
    holding the same weights."""
    cfg = conv.check_config(dict(conv.DEFAULT_CONFIG))
    sd = conv.random_state_dict(cfg, seed)
    tensors = conv.collect(sd, cfg)
    conv.write_gguf(path, cfg, tensors, [], "f32")
    n_params = sum(t.size for t in tensors.values())
    del tensors
    model = ref.load_model({k: torch.from_numpy(v) for k, v in sd.items()}, ref.make_config())
    return model, n_params


def parse(out):
    """'name key=value ...' lines -> {name: {key: float or str}}."""
    res = {}
    for line in out.splitlines():
        if not line or line.startswith("#"):
            continue
        name, *kv = line.split()
        d = {}
        for item in kv:
            k, v = item.split("=", 1)
            try:
                d[k] = float(v)
            except ValueError:
                d[k] = v
        res[name] = d
    return res


def timed(fn, reps):
    """Warm-up, then reps runs: (median process CPU s, median wall s, last result)."""
    out = fn()
    cpu, wall = [], []
    for _ in range(reps):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return float(np.median(cpu)), float(np.median(wall)), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("secodec_bench", help="path of the built bench/secodec_bench")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--build-reps", type=int, help="runs of each build (default: --reps)")
    ap.add_argument("--no-build", action="store_true", help="skip the codebook build benchmark")
    ap.add_argument("--keep", help="write the model, audio and outputs here and keep them")
    args = ap.parse_args()
    if args.build_reps is None:
        args.build_reps = args.reps
    if args.seconds <= 0 or args.reps < 1 or args.build_reps < 1:
        ap.error("--seconds > 0, --reps >= 1, --build-reps >= 1")
    torch.set_num_threads(1)
    t_start = time.time()
    tmp = args.keep or tempfile.mkdtemp(prefix="secodec_bench-")
    os.makedirs(tmp, exist_ok=True)
    fails = []
    try:
        x, what = make_speech(args.seconds, tmp)
        pcm = os.path.join(tmp, "pcm.f32")
        x.astype("<f4").tofile(pcm)
        gg = os.path.join(tmp, "secodec-f32.gguf")
        t0 = time.time()
        model, n_params = make_model(gg, seed=1)
        log(f"# model: random init, n_filters 64, D 1024, strides 2/4/5/8, {n_params / 1e6:.1f}M parameters, F32 "
            f"({os.path.getsize(gg) / 2**20:.0f} MiB), made in {time.time() - t0:.0f} s")
        log(f"# audio: {args.seconds:g} s, {what}; one thread everywhere, median of {args.reps} after a warm-up")

        r = subprocess.run([args.secodec_bench, "codec", gg, pcm, tmp, "-r", str(args.reps)],
                           stdout=subprocess.PIPE, text=True)
        if r.returncode != 0:
            log("secodec_bench codec failed")
            return 1
        c = parse(r.stdout)
        T = int(c["quantize_se"]["frames"])
        z_c = np.fromfile(os.path.join(tmp, "latents.f32"), "<f4").reshape(T, -1)
        zq = np.fromfile(os.path.join(tmp, "zq.f32"), "<f4").reshape(T, -1)
        y_c = np.fromfile(os.path.join(tmp, "audio.f32"), "<f4")
        cent = np.fromfile(os.path.join(tmp, "centroids.f32"), "<f4").reshape(-1, z_c.shape[1])
        tok_c = np.fromfile(os.path.join(tmp, "tokens_nearest.i32"), "<i4")

        with torch.inference_mode():
            xt = torch.from_numpy(x).reshape(1, 1, -1)
            enc_cpu, enc_wall, z_t = timed(lambda: model.encoder(xt), args.reps)
            z_t = z_t[0].transpose(0, 1).numpy()
            zqt = torch.from_numpy(zq).transpose(0, 1).unsqueeze(0).contiguous()
            dec_cpu, dec_wall, y_t = timed(lambda: model.decoder(zqt), args.reps)
            y_t = y_t[0, 0, : x.size].numpy()
            zt, ct = torch.from_numpy(z_c), torch.from_numpy(cent)
            nc_cpu, nc_wall, tok_t = timed(lambda: torch.cdist(zt, ct).argmin(1), args.reps)
            tok_t = tok_t.numpy()
        dz = float(np.max(np.abs(z_c - z_t))) if z_c.shape == z_t.shape else float("inf")
        dy = float(np.max(np.abs(y_c - y_t))) if y_c.shape == y_t.shape else float("inf")
        agree = float(np.mean(tok_c == tok_t))
        if not dz <= TOL:
            fails.append(f"latents differ: max |C - PyTorch| {dz:.2e} > {TOL:g}")
        if not dy <= TOL:
            fails.append(f"decoded audio differs: max |C - PyTorch| {dy:.2e} > {TOL:g}")
        if agree < 0.99:
            fails.append(f"nearest-centroid tokens agree on {100 * agree:.1f} % of frames only")

        audio_s = x.size / RATE
        log("")
        log(f"SECodec network, {audio_s:g} s of audio ({T} frames), x real time = audio s / CPU s "
            f"(wall s in brackets)")
        log(f"{'stage':<8} {'Cochlea':>18} {'PyTorch':>18} {'C/PyTorch':>10} {'max |C - PyTorch|':>18}")
        for stage, cc, tc, tw, diff in (("encode", c["encode"], enc_cpu, enc_wall, dz),
                                        ("decode", c["decode"], dec_cpu, dec_wall, dy)):
            xc, xt_ = audio_s / cc["cpu"], audio_s / tc
            log(f"{stage:<8} {xc:>8.1f}x ({cc['wall']:>6.2f} s) {xt_:>8.1f}x ({tw:>6.2f} s) {xc / xt_:>10.2f} "
                f"{diff:>18.2e}")
        lc = c["latent_codebook"]
        qs, qn = c["quantize_se"], c["quantize_nearest"]
        log("")
        log(f"SE quantiser on the {T} latent frames: 1 level, N = {int(qs['N'])} nodes (mixed latents + noise), "
            f"k = {int(qs['k'])}, K = {int(lc['K'])} codewords (that build: {lc['wall']:.1f} s wall, "
            f"{lc['cpu']:.1f} s CPU, once)")
        log(f"{'rule':<34} {'tokens/s':>10} {'CPU s':>8} {'x real time':>12}")
        log(f"{'C node-game (SE) rule':<34} {T / qs['cpu']:>10.0f} {qs['cpu']:>8.4f} {audio_s / qs['cpu']:>11.0f}x"
            f"   fallbacks {int(qs['fallbacks'])}/{T}, {int(qs['distinct'])} distinct tokens")
        log(f"{'C nearest centroid':<34} {T / qn['cpu']:>10.0f} {qn['cpu']:>8.4f} {audio_s / qn['cpu']:>11.0f}x"
            f"   same token as SE on {int(qn['agree_with_se'])}/{T}")
        log(f"{'PyTorch cdist + argmin (nearest)':<34} {T / nc_cpu:>10.0f} {nc_cpu:>8.4f} {audio_s / nc_cpu:>11.0f}x"
            f"   same token as C nearest on {100 * agree:.1f} %")
        log("(PyTorch has no node-game rule; the reference's se_select is per-frame numpy, not a speed reference)")

        if not args.no_build:
            r = subprocess.run([args.secodec_bench, "build", "-r", str(args.build_reps)], stdout=subprocess.PIPE,
                               text=True)
            if r.returncode != 0:
                log("secodec_bench build failed")
                return 1
            b = parse(r.stdout)
            head = [ln for ln in r.stdout.splitlines() if ln.startswith("#")]
            log("")
            log("SE codebook build, " + (head[0][len("# build: "):] if head else ""))
            log(f"{'k rule':<14} {'wall s':>8} {'CPU s':>8} {'k':>4} {'K':>5} {'edges':>8} {'H1':>8} {'H2':>8} "
                f"{'sizes min/med/max':>18} {'passes':>6}")
            for name, rule in (("build_stable", "stable point"), ("build_k10", "fixed k = 10")):
                s = b[name]
                log(f"{rule:<14} {s['wall']:>8.2f} {s['cpu']:>8.2f} {int(s['k']):>4} {int(s['K']):>5} "
                    f"{int(s['edges']):>8} {s['H1']:>8.4f} {s['H2']:>8.4f} {s['sizes']:>18} {int(s['passes']):>6}")
        log("")
        log(f"total {time.time() - t_start:.0f} s; load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    for f in fails:
        log("FAIL " + f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
