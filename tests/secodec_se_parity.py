#!/usr/bin/env python3
"""C-vs-reference parity of the SECodec SE quantiser (run by tests/secodec_se_parity.sh).

The reference is tests/ref/secodec_se.py (numpy, written from secodec.md §2.7, §8 items 1, 7, 8).
For each input WAV (written here with the standard library: a speech-like harmonic glide, noise,
silence, a 44.1 kHz stereo file resampled by the frontend, a file shorter than one hop, and a
21.5 s file that the codec encodes in two overlapping passes) `cochlea codec encode --latents
--tokens` gives the C latents and tokens; the reference recomputes the tokens from those latents
and every token at every level must be identical, in the model's SE mode and with --nearest.
Models: the fixture tests/fixtures/secodec-tiny.gguf (4 levels, D 32, F16 nodes renormalised by
the loader) and four variants A-D whose level 0 is made here so that exact ties occur: every
graph node appears twice (nodes 2i and 2i+1 identical, communities c and c + m, the same V and
g, the same centroid), giving equal similarities, equal a_alpha and equal Delta_select (and equal
centroid distances); with an even k Delta ties must go to the lower id, with an odd k the k-th
slot splits a pair (the lower node index is ranked first). A: k 8, ties; B: k 7, fallback
"min_delta" with giant closed communities (every Delta >= 0 for many frames), F32 nodes; C: k 6,
the same with the nearest-centroid fallback; D: k 5, min_delta, negated nodes (no positive
neighbour: nearest centroid), on one file of glide, silence and noise. Each variant must actually
take its intended path, and every level-0 token of every variant must be below m (the lower
copy). The thread count (1 or 2) must not change the tokens.

The reference is itself verified: Delta_select against a brute-force 2-D SE (§2.1, definition
on a dense matrix) of random small graphs with a node added, for every community, and the
reference's token against a brute-force argmin of 2-D SE over all communities on small random
levels. Decoder input: sum of the chosen codewords + final residual = latents (float32
rounding), and, when torch is present, the C-decoded audio of the .sec file against the PyTorch
SEANet decoder (tests/ref/secodec.py) fed with the reference's sum of codewords (max abs
difference <= 1e-4). Exit 1 on any failed check.
"""

import math
import os
import subprocess
import sys
import tempfile
import time
import wave

SRC = os.environ.get("top_srcdir") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("top_builddir", ".")
COCHLEA = os.environ.get("COCHLEA") or os.path.join(BUILD, "cochlea")
MODEL = os.path.join(SRC, "tests", "fixtures", "secodec-tiny.gguf")

try:
    import numpy as np
except ImportError:
    print("SKIP: %s cannot import numpy (needed by the reference)" % sys.executable)
    sys.exit(77)

sys.path[:0] = [os.path.join(SRC, "tools"), os.path.join(SRC, "tests", "ref")]
import secodec_se as ref  # noqa: E402
from gguf import GGUFReader, GGUFWriter  # noqa: E402
from checks import FAILS, check, log  # noqa: E402

T0 = time.time()


# ---- inputs -----------------------------------------------------------------------------------

def write_wav(path, rate, x):
    """x [n] or [n, ch] floats in [-1, 1] as 16-bit PCM."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    w = wave.open(path, "wb")
    w.setnchannels(x.shape[1])
    w.setsampwidth(2)
    w.setframerate(rate)
    w.writeframes((np.clip(x, -1, 1) * 32767).round().astype("<i2").tobytes())
    w.close()


def glide(rate, secs, f0=120.0, seed=0):
    """Speech-like: a harmonic tone gliding in pitch, with syllable-rate amplitude and a moving
    formant-like emphasis of the harmonics."""
    t = np.arange(int(rate * secs)) / rate
    f = f0 + 0.4 * f0 * np.sin(2 * np.pi * 0.6 * t + seed)
    ph = 2 * np.pi * np.cumsum(f) / rate
    form = 2.5 + 1.5 * np.sin(2 * np.pi * 1.3 * t + seed)
    y = sum(np.sin(h * ph) / h * np.exp(-0.5 * ((h - form) / 1.5) ** 2) for h in range(1, 12))
    env = np.clip(np.sin(2 * np.pi * 2.7 * t + seed), 0, None) ** 0.5
    return 0.35 * y * env


def make_inputs(tmp):
    rng = np.random.default_rng(5)
    files = []

    def add(name, rate, x):
        p = os.path.join(tmp, name)
        write_wav(p, rate, x)
        files.append((name, p))

    add("glide.wav", 16000, glide(16000, 3.0))
    add("noise.wav", 16000, 0.15 * rng.standard_normal(24000))
    add("silence.wav", 16000, np.zeros(16000))
    g = glide(44100, 2.2, f0=180.0, seed=1)
    add("stereo44k.wav", 44100, np.stack([g, 0.5 * g + 0.02 * rng.standard_normal(g.size)], 1))
    add("short.wav", 16000, 0.2 * rng.standard_normal(250))
    x = glide(16000, 21.5, f0=100.0, seed=2)
    x[5 * 16000:7 * 16000] += 0.1 * rng.standard_normal(2 * 16000)
    add("long.wav", 16000, x)
    # for the crafted models: glide, silence and noise in one file (one run per model)
    mix = np.concatenate([glide(16000, 1.5, f0=140.0, seed=3), np.zeros(8000), 0.15 * rng.standard_normal(16000)])
    write_wav(os.path.join(tmp, "mix.wav"), 16000, mix)
    return files


# ---- the C side -------------------------------------------------------------------------------

def c_encode(model, wav, tmp, tag, extra=()):
    sec, z, t = (os.path.join(tmp, tag + s) for s in (".sec", ".z.npy", ".t.npy"))
    r = subprocess.run([COCHLEA, "codec", "encode", wav, sec, "-m", model, "--latents", z, "--tokens", t, "-f", "-q"]
                       + list(extra), capture_output=True, text=True)
    if r.returncode != 0:
        return None, None, None, r.stderr.strip()
    return np.load(z), np.load(t), sec, ""


# ---- crafted tie models -----------------------------------------------------------------------

def copy_network(r, w, skip_prefixes):
    """All keys and tensors of reader r except the quantiser section, into writer w."""
    for key, v in r.kv.items():
        if key.startswith(skip_prefixes) or key == "general.alignment":
            continue
        ty, val = v.type, v.value
        if ty == "str":
            w.add_string(key, val)
        elif ty == "array[str]":
            w.add_string_array(key, val)
        elif ty.startswith("array["):
            w.add_array(key, val, ty[6:-1])
        else:
            w._scalar(key, ty, val)
    for t in r.tensors:
        if not t.name.startswith("quantizer."):
            w.add_tensor_raw(t.name, t.type, t.ne, t.raw)


def knn_graph(U, k):
    """Dense kNN cosine graph of L2-normalised rows U (§2.2: top-k others, S > 0, symmetric)."""
    S = U @ U.T
    np.fill_diagonal(S, -np.inf)
    W = np.zeros_like(S)
    order = np.argsort(-S, axis=1, kind="stable")[:, :k]
    for i in range(U.shape[0]):
        for j in order[i]:
            if S[i, j] > 0:
                W[i, j] = W[j, i] = S[i, j]
    return W


def make_tie_model(path, z_src, m, k, fallback, nodes_type, giant=False, negate=False):
    """Fixture network + level 0 with every node doubled (see the module docstring) + the
    fixture's level 1. giant: nodes are dealt to the communities in turn, and communities
    0..3m/4-1 (and their copies) get a volume 50x the largest and no cut, so that joining them
    with a small a_alpha raises the 2-D SE (every Delta >= 0 for many frames: the fallback);
    negate: every node is negated, so that most frames have no positive-similarity neighbour."""
    z64 = z_src.astype(np.float64)
    U = (z64 / np.linalg.norm(z64, axis=1, keepdims=True)).astype(np.float32)
    M = U.shape[0]
    seeds = np.linspace(0, M - 1, m).round().astype(int)
    comm = np.argmax(U.astype(np.float64) @ U[seeds].astype(np.float64).T, axis=1)
    comm[seeds] = np.arange(m)
    if giant:
        comm = np.arange(M) % m  # scattered: a frame's neighbours spread over many communities
    W = knn_graph(U.astype(np.float64), k)
    V, g, vol = ref.community_stats(W, comm, m)
    if giant:
        V[: 3 * m // 4], g[: 3 * m // 4] = 50 * V.max(), 0.0
    if negate:
        U = -U
    cen = np.stack([z_src[comm == c].astype(np.float64).mean(0) for c in range(m)]).astype(np.float32)
    nodes = np.repeat(U, 2, axis=0)                       # node 2i = node 2i+1 = U_i
    community = np.stack([comm, comm + m], 1).reshape(-1)  # copy A in c, copy B in c + m
    V2, g2 = np.concatenate([V, V]), np.concatenate([g, g])  # two disjoint copies of the graph
    r = GGUFReader(MODEL)
    w = GGUFWriter()
    copy_network(r, w, ("secodec.n_levels", "secodec.codebook_sizes", "secodec.quantizer", "secodec.se."))
    K1 = int(r.kv["secodec.codebook_sizes"].value[1])
    w.add_u32("secodec.n_levels", 2)
    w.add_array("secodec.codebook_sizes", [2 * m, K1], "u32")
    w.add_string("secodec.quantizer", "se")
    w.add_string("secodec.se.fallback", fallback)
    w.add_u32("secodec.se.0.k", k)
    w.add_f64("secodec.se.0.vol", float(V2.sum()))
    w.add_array("secodec.se.0.community_volume", V2, "f64")
    w.add_array("secodec.se.0.community_cut", g2, "f64")
    for key in ("k", "vol", "community_volume", "community_cut"):
        v = r.kv["secodec.se.1." + key]
        if v.type.startswith("array["):
            w.add_array("secodec.se.1." + key, v.value, v.type[6:-1])
        else:
            w._scalar("secodec.se.1." + key, v.type, v.value)
    w.add_tensor("quantizer.vq.layers.0._codebook.embed", np.concatenate([cen, cen]), "f32")
    w.add_tensor("quantizer.se.0.nodes", nodes, nodes_type)
    w.add_tensor("quantizer.se.0.community", community.astype(np.int32), "i32")
    for name in ("quantizer.vq.layers.1._codebook.embed", "quantizer.se.1.nodes", "quantizer.se.1.community"):
        t = r.tensor(name)
        w.add_tensor_raw(name, t.type, t.ne, t.raw)
    w.write(path)


# ---- verification of the reference itself ----------------------------------------------------

def verify_delta_bruteforce(rng, trials=60):
    """Delta_select vs H2(x in alpha) - H2(x alone) on random graphs, for every alpha."""
    worst, n_checked, nonneg_ok = 0.0, 0, True
    for _ in range(trials):
        n = int(rng.integers(6, 16))
        K = int(rng.integers(2, 5))
        W = np.triu(rng.uniform(0.05, 1.0, (n, n)) * (rng.random((n, n)) < 0.45), 1)
        W = W + W.T
        comm = np.concatenate([np.arange(K), rng.integers(0, K, n - K)])
        rng.shuffle(comm)
        V, g, vol = ref.community_stats(W, comm, K)
        wx = rng.uniform(0.05, 1.0, n) * (rng.random(n) < 0.4)
        if not wx.any():
            wx[int(rng.integers(0, n))] = 0.5
        W2 = np.zeros((n + 1, n + 1))
        W2[:n, :n] = W
        W2[n, :n] = W2[:n, n] = wx
        h_alone = ref.h2_bruteforce(W2, np.concatenate([comm, [K]]))
        d_x = wx.sum()
        for c in range(K):
            a = wx[comm == c].sum()
            brute = ref.h2_bruteforce(W2, np.concatenate([comm, [c]])) - h_alone
            dsel = ref.delta_select(vol, V[c], g[c], d_x, a)
            worst = max(worst, abs(brute - dsel))
            n_checked += 1
            if a == 0 and not dsel >= -1e-15:  # analytically (V - g)/vol' log2(V+/V) >= 0
                nonneg_ok = False
    return worst, n_checked, nonneg_ok


def verify_tokens_bruteforce(rng, trials=40):
    """The reference's SE token vs the argmin of the brute-force 2-D SE change over all
    communities (the frozen graph plus x joined to its top-k positive neighbours), falling back
    to the nearest centroid when no change is negative. Returns (mismatches, frames, negatives)."""
    bad = frames = neg = 0
    for _ in range(trials):
        N, D, K, k = int(rng.integers(10, 25)), 6, int(rng.integers(2, 6)), int(rng.integers(2, 6))
        X = rng.standard_normal((N, D)) + 1.5 * rng.standard_normal(D)
        U = X / np.linalg.norm(X, axis=1, keepdims=True)
        W = knn_graph(U, k)
        comm = np.concatenate([np.arange(K), rng.integers(0, K, N - K)])
        rng.shuffle(comm)
        V, g, vol = ref.community_stats(W, comm, K)
        cen = np.stack([X[comm == c].mean(0) for c in range(K)]).astype(np.float32)
        lv = {"K": K, "centroids": cen, "nodes": U, "community": comm, "k": k, "vol": vol, "V": V, "g": g}
        Q = (rng.standard_normal((5, D)) + 1.5 * X.mean(0)).astype(np.float32)
        tok, _ = ref.quantize_level(lv, Q, query_round=False)
        for t in range(Q.shape[0]):
            q = Q[t].astype(np.float64)
            s = U @ (q / np.linalg.norm(q))
            top = sorted(range(N), key=lambda j: (-s[j], j))[:k]
            wx = np.zeros(N)
            for j in top:
                if s[j] > 0:
                    wx[j] = s[j]
            W2 = np.zeros((N + 1, N + 1))
            W2[:N, :N] = W
            W2[N, :N] = W2[:N, N] = wx
            h_alone = ref.h2_bruteforce(W2, np.concatenate([comm, [K]]))
            dh = [ref.h2_bruteforce(W2, np.concatenate([comm, [c]])) - h_alone for c in range(K)]
            best = min(range(K), key=lambda c: (dh[c], c))
            if wx.any() and dh[best] < -1e-12:
                want = best
                neg += 1
            else:
                want = int(np.argmin(((cen.astype(np.float64) - q) ** 2).sum(1)))
            frames += 1
            bad += int(tok[t] != want)
    return bad, frames, neg


# ---- decoder ----------------------------------------------------------------------------------

def torch_decoder(model_path):
    """The PyTorch SEANet (tests/ref/secodec.py) with the decoder weights of the GGUF file, or
    None when torch is not importable."""
    try:
        import torch
        import secodec as sref
    except ImportError:
        return None
    r = GGUFReader(model_path)
    kv = {k: v.value for k, v in r.kv.items()}
    cfg = sref.make_config({
        "sample_rate": kv["secodec.sample_rate"], "n_filters": kv["secodec.n_filters"],
        "dimension": kv["secodec.dimension"], "strides": [int(s) for s in kv["secodec.strides"]][::-1],
        "kernel_size": kv["secodec.kernel_size"], "last_kernel_size": kv["secodec.last_kernel_size"],
        "residual_kernel_size": kv["secodec.residual_kernel_size"], "dilation_base": kv["secodec.dilation_base"],
        "n_residual_layers": kv["secodec.n_residual_layers"], "compress": kv["secodec.compress"],
        "lstm_layers": kv["secodec.lstm_layers"], "bidirectional": kv["secodec.encoder_bidirectional"],
        "true_skip": kv["secodec.true_skip"], "pad_mode": kv["secodec.pad_mode"],
        "elu_alpha": kv["secodec.elu_alpha"]})
    torch.set_num_threads(1)
    model = sref.SECodecRef(cfg)
    n = 0
    with torch.no_grad():
        for t in r.tensors:
            if not t.name.startswith("decoder."):
                continue
            a = torch.from_numpy(np.array(t.numpy(), dtype=np.float32))
            parent, leaf = t.name.rsplit(".", 1)
            mod = model.get_submodule(parent)
            if leaf == "weight" and hasattr(mod, "weight_g"):
                # weight norm kept: g = ||w|| along dim 0, so g v / ||v|| = w
                mod.weight_v.copy_(a)
                mod.weight_g.copy_(a.flatten(1).norm(dim=1).reshape(mod.weight_g.shape))
            else:
                getattr(mod, leaf).copy_(a)
            n += 1
    model.eval()
    return model if n else None


def read_float_wav(path):
    """A 32-bit float mono WAV (WAVE_FORMAT_IEEE_FLOAT; the stdlib wave module refuses it)."""
    b = open(path, "rb").read()
    pos, fmt, data = 12, None, None
    while pos + 8 <= len(b):
        cid, size = b[pos:pos + 4], int.from_bytes(b[pos + 4:pos + 8], "little")
        if cid == b"fmt ":
            fmt = b[pos + 8:pos + 8 + size]
        elif cid == b"data":
            data = b[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    if fmt is None or data is None or int.from_bytes(fmt[0:2], "little") not in (3, 0xFFFE) \
            or int.from_bytes(fmt[14:16], "little") != 32:
        raise ValueError("%s: not a 32-bit float WAV" % path)
    return np.frombuffer(data, dtype="<f4")


# ---- main -------------------------------------------------------------------------------------

def compare_tokens(tag, q, z, t_c, nearest):
    """Reference tokens from the C latents vs the C tokens; returns the reference's outputs."""
    t_ref, diags, res = ref.encode(q, z, t_c.shape[1], nearest=nearest)
    mism = (t_ref != t_c).sum(0)
    detail = ""
    if mism.any():
        f, l = np.argwhere(t_ref != t_c)[0]
        dg = diags[l]
        detail = (" first at frame %d level %d: C %d ref %d (Delta gap %.3g, kNN gap %.3g, centroid gap %.3g)"
                  % (f, l, t_c[f, l], t_ref[f, l], dg["delta_gap"][f], dg["knn_gap"][f], dg["dist_gap"][f]))
    fb = [int(d["fallback"].sum()) for d in diags]
    gaps = [float(np.min(d["dist_gap"] if nearest else d["delta_gap"])) for d in diags]
    check(not mism.any(),
          "%s%s: %d frames x %d levels, mismatches per level %s%s; fallback frames %s; smallest %s margin %s"
          % (tag, " --nearest" if nearest else "", t_c.shape[0], t_c.shape[1], mism.tolist(), detail,
             fb if not nearest else "-", "distance" if nearest else "Delta", ["%.2g" % v for v in gaps]))
    return t_ref, diags, res


def main():
    if not os.access(COCHLEA, os.X_OK):
        log("FAIL: no cochlea program at %s" % COCHLEA)
        return 1
    rng = np.random.default_rng(20241216)

    # 1. the reference against brute-force 2-D SE
    worst, n, nonneg = verify_delta_bruteforce(rng)
    check(worst < 1e-12, "reference Delta_select = brute-force H2(x in alpha) - H2(x alone) on %d (graph, "
          "community) pairs, max |diff| %.2g" % (n, worst))
    check(nonneg, "reference Delta_select >= 0 for every community without a neighbour of x")
    bad, frames, neg = verify_tokens_bruteforce(rng)
    check(bad == 0 and neg > frames // 4, "reference tokens = brute-force argmin of 2-D SE (or nearest centroid "
          "when no decrease) on %d frames of small random levels (%d by SE, %d mismatches)" % (frames, neg, bad))

    q = ref.load_quantizer(MODEL)
    tdec = torch_decoder(MODEL)
    hop = int(np.prod(GGUFReader(MODEL).kv["secodec.strides"].value))
    with tempfile.TemporaryDirectory(prefix="secodec_se_parity.") as tmp:
        files = make_inputs(tmp)
        zs = {}
        totals = np.zeros(2, dtype=np.int64)
        totals64 = np.zeros(2, dtype=np.int64)
        for name, wav in files:
            z, t_c, sec, err = c_encode(MODEL, wav, tmp, name, ["-t", "2"])
            if z is None:
                check(False, "%s: cochlea codec encode failed: %s" % (name, err))
                continue
            zs[name] = z
            with wave.open(wav) as w:
                rate, n_samples = w.getframerate(), w.getnframes()
            if rate == 16000:
                check(z.shape == (math.ceil(n_samples / hop), q["dim"]) and t_c.shape == (z.shape[0], q["n_levels"])
                      and t_c.dtype == np.int32, "%s: latents %s, tokens %s %s" % (name, z.shape, t_c.shape, t_c.dtype))
            t_ref, diags, res = compare_tokens(name, q, z, t_c, False)
            totals += [int((t_ref != t_c).sum()), t_c.size]
            # informational: the query normalised in float64 instead of float32 storage
            t64 = ref.encode(q, z, t_c.shape[1], query_round=False)[0]
            totals64 += [int((t64 != t_c).sum()), t_c.size]
            _, _, sec_n, err = c_encode(MODEL, wav, tmp, name + ".n", ["--nearest"])
            zn, t_n = np.load(os.path.join(tmp, name + ".n.z.npy")), np.load(os.path.join(tmp, name + ".n.t.npy"))
            check(np.array_equal(zn, z), "%s: latents identical with --nearest" % name)
            t_nref, _, _ = compare_tokens(name, q, z, t_n, True)
            totals += [int((t_nref != t_n).sum()), t_n.size]
            # decoder input: the sum of codewords plus the final residual gives back the latents
            dec_in = ref.decode_input(q, t_ref)
            err_sum = float(np.max(np.abs(dec_in.astype(np.float64) + res - z))) if z.size else 0.0
            scale = float(np.max(np.abs(z))) + 1.0 if z.size else 1.0
            check(err_sum <= 1e-5 * scale, "%s: sum of codewords + final residual = latents (max |diff| %.2g)"
                  % (name, err_sum))
            if tdec is not None and name != "long.wav":
                y_path = os.path.join(tmp, name + ".dec.wav")
                r = subprocess.run([COCHLEA, "codec", "decode", sec, y_path, "-m", MODEL, "--float", "-f", "-q"],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    check(False, "%s: cochlea codec decode failed: %s" % (name, r.stderr.strip()))
                else:
                    y_c = read_float_wav(y_path)
                    y_ref = tdec.decode_latents(dec_in)[: y_c.size]
                    d = float(np.max(np.abs(y_c - y_ref))) if y_c.size else 0.0
                    check(y_c.size > 0 and y_c.size <= z.shape[0] * hop and d <= 1e-4,
                          "%s: C decode of the .sec = PyTorch decoder on the reference's sum of codewords "
                          "(%d samples, max |diff| %.2g)" % (name, y_c.size, d))
        if tdec is None:
            log("skip decoded-audio check: no torch (the sum-of-codewords check above still ran)")

        # the thread count must not change the tokens (the runs above used 2 threads)
        name, wav = files[0]
        _, t1, _, _ = c_encode(MODEL, wav, tmp, "th1", ["-t", "1"])
        t2 = np.load(os.path.join(tmp, name + ".t.npy"))
        check(t1 is not None and np.array_equal(t1, t2), "%s: tokens identical with 1 and 2 threads" % name)

        # 2. crafted tie models (level 0 nodes from the glide's latents); what each must exercise:
        # ties: exact Delta ties; fb_min: min_delta with every Delta >= 0; fb_nc: nearest
        # centroid after every Delta >= 0; no_nb: frames without a positive neighbour
        z_src = zs.get("glide.wav")
        variants = (("A", 8, "nearest_centroid", "f16", False, False, "ties"),
                    ("B", 7, "min_delta", "f32", True, False, "fb_min"),
                    ("C", 6, "nearest_centroid", "f16", True, False, "fb_nc"),
                    ("D", 5, "min_delta", "f32", False, True, "no_nb"))
        m = 12
        if z_src is None:
            check(False, "no glide latents for the tie models")
            variants = ()
        for vname, k, fb, ntype, giant, negate, want in variants:
            mpath = os.path.join(tmp, "tie%s.gguf" % vname)
            make_tie_model(mpath, z_src, m, k, fb, ntype, giant, negate)
            qt = ref.load_quantizer(mpath)
            seen = {"ties": 0, "fb_min": 0, "fb_nc": 0, "no_nb": 0}
            for name, wav in (("mix.wav", os.path.join(tmp, "mix.wav")),):
                for nearest in ((False, True) if vname == "A" else (False,)):
                    tag = "tie%s.%s%s" % (vname, name, ".n" if nearest else "")
                    z, t_c, _, err = c_encode(mpath, wav, tmp, tag, ["--nearest"] if nearest else [])
                    if z is None:
                        check(False, "model %s: %s: encode failed: %s" % (vname, name, err))
                        continue
                    label = "model %s (k=%d, %s, %s nodes%s%s), %s" % (
                        vname, k, fb, ntype, ", giant closed communities" if giant else "",
                        ", negated nodes" if negate else "", name)
                    t_ref, diags, _ = compare_tokens(label, qt, z, t_c, nearest)
                    totals += [int((t_ref != t_c).sum()), t_c.size]
                    check(bool(np.all(t_c[:, 0] < m)), "model %s, %s%s: every level-0 token is the lower copy (< %d)"
                          % (vname, name, " --nearest" if nearest else "", m))
                    if not nearest:
                        d0 = diags[0]
                        seen["ties"] += int(np.sum(d0["delta_gap"] == 0))
                        nonneg = d0["n_cand"] > 0
                        nonneg &= ~(np.nan_to_num(d0["best_delta"], nan=-1.0) < 0)
                        seen["fb_min" if fb == "min_delta" else "fb_nc"] += int(nonneg.sum())
                        seen["no_nb"] += int(np.sum(d0["n_cand"] == 0))
            check(seen[want] > 0, "model %s: %d level-0 frames took the intended path '%s' (all paths: %s)"
                  % (vname, seen[want], want, seen))
    log("total token mismatches: %d of %d" % (totals[0], totals[1]))
    log("(information: with the query normalised in float64, not stored as float32, %d of %d fixture "
        "SE tokens differ)" % (totals64[0], totals64[1]))
    log("%s (%.1f s)" % ("FAIL: %d checks failed" % len(FAILS) if FAILS else "all checks passed", time.time() - T0))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
