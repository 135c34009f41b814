"""PyTorch reference of the OWSM-CTC / ESPnet log-mel frontend (owsm-ctc.md section 1).

The STFT is torch.stft exactly as espnet2/layers/stft.py calls it; the mel filterbank is
written here from the definition of librosa.filters.mel (Slaney mel scale, Slaney area
normalisation), because librosa is not a dependency of the project.

    python3 tests/ref/frontend.py IN.wav OUT.npy [--n-mels 80] [--stats feats_stats.npz]
"""

import argparse
import math
import wave

import numpy as np
import torch

N_FFT = 512
WIN_LENGTH = 400
HOP_LENGTH = 160
LOG_FLOOR = 1e-10

# Slaney mel scale constants (librosa.hz_to_mel with htk=False).
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(hz):
    """Slaney mel of a frequency array in Hz: linear below 1 kHz, logarithmic above."""
    hz = np.asanyarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    high = hz >= _MIN_LOG_HZ
    mel = np.where(high, _MIN_LOG_MEL + np.log(np.maximum(hz, 1e-300) / _MIN_LOG_HZ) / _LOGSTEP, mel)
    return mel


def mel_to_hz(mel):
    """Inverse of hz_to_mel."""
    mel = np.asanyarray(mel, dtype=np.float64)
    hz = _F_SP * mel
    high = mel >= _MIN_LOG_MEL
    return np.where(high, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), hz)


def slaney_melmat(sr=16000, n_fft=N_FFT, n_mels=80, fmin=0.0, fmax=None):
    """librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False, norm='slaney'), float32,
    shape (n_mels, n_fft // 2 + 1). Like librosa, the triangle weights are stored in float32
    before the area normalisation multiplies them."""
    if fmax is None:
        fmax = sr / 2.0
    n_bins = n_fft // 2 + 1
    fft_hz = np.arange(n_bins, dtype=np.float64) * (1.0 / (n_fft * (1.0 / sr)))  # np.fft.rfftfreq
    mel_pts = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    hz_pts = mel_to_hz(mel_pts)
    widths = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_hz[None, :]
    weights = np.zeros((n_mels, n_bins), dtype=np.float32)
    for i in range(n_mels):
        rising = -ramps[i] / widths[i]
        falling = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(rising, falling))
    area = 2.0 / (hz_pts[2:n_mels + 2] - hz_pts[:n_mels])
    weights *= area[:, None]
    return weights


def stats_mean_std(path):
    """ESPnet GlobalMVN statistics from a feats_stats.npz (count, sum, sum_square):
    mean = sum/count, std = sqrt(max(sum_square/count - mean^2, 1e-20)), as float32."""
    s = np.load(path)
    count = s["count"]
    mean = s["sum"] / count
    var = s["sum_square"] / count - mean * mean
    std = np.sqrt(np.maximum(var, 1e-20))
    return mean.astype(np.float32), std.astype(np.float32)


def power_spectrum(wav, precision="float32"):
    """|STFT|^2 of a float32 1-D signal, shape (frames, 257).

    precision="float32" is exactly what ESPnet computes (torch.stft in float32).
    precision="float64" evaluates the same formula in double precision on the same float32
    signal and the same float32 window: the exact value that ESPnet's float32 FFT approximates
    (its rounding noise reaches ~1e-7 of a frame's energy, visible in the log-mel of tones and
    DC far from the signal's frequencies)."""
    dtype = torch.float32 if precision == "float32" else torch.float64
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)).to(dtype)[None, :]
    window = torch.hann_window(WIN_LENGTH, dtype=torch.float32).to(dtype)
    spec = torch.stft(x, n_fft=N_FFT, win_length=WIN_LENGTH, hop_length=HOP_LENGTH,
                      center=True, window=window, normalized=False, onesided=True,
                      pad_mode="reflect", return_complex=True)
    spec = torch.view_as_real(spec).transpose(1, 2)[0]  # (frames, bins, 2)
    return spec[..., 0] ** 2 + spec[..., 1] ** 2


def logmel(wav, melmat, mean=None, std=None, precision="float32"):
    """ESPnet DefaultFrontend + GlobalMVN on one utterance: ln(max(P @ melmat.T, 1e-10)),
    then (x - mean) / std in float32 when the statistics are given. Returns float32
    (frames, n_mels). See power_spectrum for `precision`."""
    power = power_spectrum(wav, precision)
    mel = torch.matmul(power, torch.from_numpy(np.ascontiguousarray(melmat.T)).to(power.dtype))
    feats = torch.clamp(mel, min=LOG_FLOOR).log().float()
    if mean is not None:
        feats = feats - torch.from_numpy(mean)
        feats = feats / torch.from_numpy(std)
    return feats.numpy().astype(np.float32)


def read_wav16(path):
    """Read a 16-bit PCM WAV into float32 in [-1, 1) (int/32768, as soundfile does), averaging
    channels."""
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is read by the reference")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        data = data.reshape(-1, w.getnchannels()).astype(np.float32) / 32768.0
    return data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input", help="16 kHz 16-bit WAV file, or a .npy float32 signal")
    ap.add_argument("output", help=".npy to write, float32 (frames, n_mels)")
    ap.add_argument("--n-mels", type=int, default=80)
    ap.add_argument("--stats", help="ESPnet feats_stats.npz for global MVN")
    ap.add_argument("--precision", choices=("float32", "float64"), default="float32",
                    help="float32: ESPnet's own arithmetic; float64: its exact value")
    args = ap.parse_args()
    wav = np.load(args.input) if args.input.endswith(".npy") else read_wav16(args.input)
    mean = std = None
    if args.stats:
        mean, std = stats_mean_std(args.stats)
    np.save(args.output, logmel(wav, slaney_melmat(n_mels=args.n_mels), mean, std, args.precision))


if __name__ == "__main__":
    main()
