#!/usr/bin/env python3
"""numpy reference of the SECodec SE quantiser (the oracle of tests/secodec_se_parity.py).

Written from ../shared/docs/secodec.md ("the spec") and docs/secodec-model.md, not from the C
code: §2.1 (2-D structural entropy), §2.7 (the node-game rule), §5.4 (cosine by dot products of
L2-normalised rows, lowest id on ties, double accumulation), §8 items 1, 7 and 8 (residual
levels, frozen graph, nearest-centroid fallback) and §8.1 (level l quantises z minus the sum of
the earlier levels' codewords).

Per level, per frame x (the running float32 residual):
  1. x is L2-normalised (norm in float64; the normalised row is stored as float32, the storage
     type codec/se_graph.h documents for normalised rows; query_round=False keeps it float64);
  2. S_j = <x_n, node_j> in float64 for all N stored nodes (nodes: F32 as stored; F16/BF16/Q8_0
     widened to float32 and renormalised in float64, stored float32, as docs say the loader does);
  3. the top-k nodes by S (descending, ties to the lower node index); keep S_j > 0 as w_xj;
  4. d_x = sum w_xj; a_alpha = sum of w_xj over the kept neighbours in community alpha;
  5. Delta_select(alpha) from §2.7 step 3 for each alpha holding a kept neighbour (a_alpha = 0
     gives Delta >= 0, so no other community can win);
  6. token = argmin Delta (ties to the lowest id) when that minimum is < 0; otherwise, or with no
     positive neighbour, the fallback: the nearest centroid (Euclidean on the float32 values in
     float64, lowest id on ties) or, for "min_delta", the minimal Delta (nearest centroid when
     there is no candidate);
  7. residual r <- r - centroid[token] in float32 (one rounding per element, level order).
Nearest mode: step 1-6 replaced by the nearest centroid at every level.

Also: brute-force 2-D SE of a dense weight matrix (§2.1) to verify Delta_select itself.

    python3 tests/ref/secodec_se.py MODEL.gguf Z.npy [--nearest] [--levels N] [-o TOKENS.npy]
"""

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools"))
from gguf import GGUFReader  # noqa: E402


class RefError(Exception):
    pass


# ---- model file -------------------------------------------------------------------------------

def _kv(r, key, default=None):
    v = r.kv.get(key)
    return default if v is None else v.value


def _renormalise(rows32):
    """Rows (float32) divided by their float64 norm, rounded back to float32; zero rows stay."""
    r64 = rows32.astype(np.float64)
    nrm = np.sqrt((r64 * r64).sum(1))
    out = r64.copy()
    nz = nrm != 0
    out[nz] /= nrm[nz, None]
    return out.astype(np.float32), nrm


def load_quantizer(path):
    """The quantiser section of a secodec GGUF (docs/secodec-model.md) as a dict:
    n_levels, dim, quantizer ('se' | 'nearest'), fallback, levels: list of dicts with K,
    centroids float32 [K, D], and for 'se' nodes float64 [N, D] (float32 values), community
    int64 [N], k, vol, V float64 [K], g float64 [K]."""
    r = GGUFReader(path)
    if _kv(r, "general.architecture") != "secodec":
        raise RefError("%s: not a secodec model" % path)
    L = _kv(r, "secodec.n_levels")
    if L is None:
        raise RefError("%s: no quantiser section (secodec.n_levels)" % path)
    D = int(_kv(r, "secodec.dimension"))
    sizes = [int(k) for k in _kv(r, "secodec.codebook_sizes")]
    if len(sizes) != L:
        raise RefError("codebook_sizes has %d entries for %d levels" % (len(sizes), L))
    kind = _kv(r, "secodec.quantizer", "se")
    fallback = _kv(r, "secodec.se.fallback", "nearest_centroid")
    if kind not in ("se", "nearest") or fallback not in ("nearest_centroid", "min_delta"):
        raise RefError("unknown quantizer %r / fallback %r" % (kind, fallback))
    levels = []
    for l in range(L):
        K = sizes[l]
        cen = r.tensor("quantizer.vq.layers.%d._codebook.embed" % l).numpy().astype(np.float32).reshape(K, D)
        lv = {"K": K, "centroids": cen}
        if kind == "se":
            t = r.tensor("quantizer.se.%d.nodes" % l)
            nodes = t.numpy().astype(np.float32).reshape(-1, D)
            if t.type != "f32":
                nodes, nrm = _renormalise(nodes)
            else:
                nrm = np.sqrt((nodes.astype(np.float64) ** 2).sum(1))
            if np.any((nrm != 0) & (np.abs(nrm - 1) > 1e-2)):
                raise RefError("level %d: nodes are not L2-normalised" % l)
            comm = r.tensor("quantizer.se.%d.community" % l).numpy().astype(np.int64).reshape(-1)
            if comm.size != nodes.shape[0] or comm.min() < 0 or comm.max() >= K:
                raise RefError("level %d: bad community tensor" % l)
            V = np.asarray(_kv(r, "secodec.se.%d.community_volume" % l), dtype=np.float64)
            g = np.asarray(_kv(r, "secodec.se.%d.community_cut" % l), dtype=np.float64)
            vol = float(_kv(r, "secodec.se.%d.vol" % l))
            if V.size != K or g.size != K or abs(V.sum() - vol) > 1e-6 * max(vol, 1.0):
                raise RefError("level %d: community statistics do not match K / vol" % l)
            lv.update(nodes=nodes.astype(np.float64), community=comm, k=int(_kv(r, "secodec.se.%d.k" % l)),
                      vol=vol, V=V, g=g)
        levels.append(lv)
    return {"n_levels": L, "dim": D, "quantizer": kind, "fallback": fallback, "levels": levels}


# ---- structural entropy -----------------------------------------------------------------------

def _xlog2(w, num, den):
    """w * log2(num / den) with the 0 log 0 = 0 convention of §2.1 (w = 0 gives 0)."""
    return 0.0 if w == 0 else w * math.log2(num / den)


def delta_select(vol, V, g, d_x, a):
    """§2.7 step 3: 2-D SE with x inside alpha minus 2-D SE with x a singleton (bits)."""
    volp = vol + 2.0 * d_x
    Vp, gp = V + a, g + a
    Vplus, gplus = Vp + d_x, gp + d_x - 2.0 * a
    return (_xlog2(gp / volp, Vp, volp) - _xlog2(gplus / volp, Vplus, volp)
            + _xlog2(d_x / volp, Vplus, volp) + _xlog2(Vp / volp, Vplus, Vp))


def h2_bruteforce(W, comm):
    """§2.1: H2_P(G) of a dense symmetric weight matrix W (zero diagonal) and partition comm,
    directly from the definition (degrees, volumes and cuts recomputed from W)."""
    W = np.asarray(W, dtype=np.float64)
    comm = np.asarray(comm)
    d = W.sum(1)
    vol = d.sum()
    h = 0.0
    for c in np.unique(comm):
        inside = comm == c
        Vc = d[inside].sum()
        gc = W[inside][:, ~inside].sum()
        if Vc > 0:
            h -= _xlog2(gc / vol, Vc, vol)
            for di in d[inside]:
                if di > 0:
                    h -= _xlog2(di / vol, di, Vc)
    return h


def community_stats(W, comm, K):
    """Volumes V_alpha, cuts g_alpha and vol of a dense graph and a partition with ids in [0, K)."""
    W = np.asarray(W, dtype=np.float64)
    d = W.sum(1)
    V, g = np.zeros(K), np.zeros(K)
    for c in range(K):
        inside = comm == c
        V[c] = d[inside].sum()
        g[c] = W[inside][:, ~inside].sum()
    return V, g, float(d.sum())


# ---- quantiser --------------------------------------------------------------------------------

def nearest_centroid(x, cen64):
    """Index of the nearest centroid (Euclidean, float64 on the float32 values, lowest id on
    ties) and the sorted distances (for margins)."""
    diff = cen64 - np.asarray(x, dtype=np.float64)[None, :]
    dist = (diff * diff).sum(1)
    return int(np.argmin(dist)), dist  # argmin returns the first minimum: the lowest id


def normalise_queries(X, query_round=True):
    X64 = np.asarray(X, dtype=np.float32).astype(np.float64)
    nrm = np.sqrt((X64 * X64).sum(1))
    inv = np.where(nrm > 0, 1.0 / np.where(nrm > 0, nrm, 1.0), 0.0)
    Xn = X64 * inv[:, None]
    return Xn.astype(np.float32).astype(np.float64) if query_round else Xn


def quantize_level(lv, X, fallback="nearest_centroid", nearest=False, query_round=True):
    """Tokens [T] of frames X [T, D] (float32) at one level, plus per-frame diagnostics:
    'fallback' (bool), 'delta_gap' (second-best minus best Delta, inf when < 2 candidates),
    'knn_gap' (|S_(k) - S_(k+1)|, the margin of the neighbour set), 'dist_gap' (nearest-centroid
    margin), 'best_delta', 'n_cand' (communities holding a positive neighbour)."""
    X = np.asarray(X, dtype=np.float32)
    T = X.shape[0]
    cen64 = lv["centroids"].astype(np.float64)
    tok = np.zeros(T, dtype=np.int32)
    diag = {"fallback": np.zeros(T, bool), "delta_gap": np.full(T, np.inf), "knn_gap": np.full(T, np.inf),
            "dist_gap": np.full(T, np.inf), "best_delta": np.full(T, np.nan), "n_cand": np.zeros(T, np.int64)}

    def by_centroid(t):
        c, dist = nearest_centroid(X[t], cen64)
        if dist.size > 1:
            s = np.sort(dist)
            diag["dist_gap"][t] = s[1] - s[0]
        return c

    if nearest or "nodes" not in lv:
        for t in range(T):
            tok[t] = by_centroid(t)
        return tok, diag
    nodes, comm, k = lv["nodes"], lv["community"], lv["k"]
    N = nodes.shape[0]
    S = normalise_queries(X, query_round) @ nodes.T  # [T, N] float64
    order = np.argsort(-S, axis=1, kind="stable")   # descending, ties to the lower index
    for t in range(T):
        rank = order[t, :k]
        s_sorted = S[t, order[t, :min(k + 1, N)]]
        if N > k:
            diag["knn_gap"][t] = s_sorted[k - 1] - s_sorted[k]
        a = {}
        d_x = 0.0
        for j in rank:  # rank order: most similar first
            w = S[t, j]
            if not w > 0:
                break
            d_x += w
            c = int(comm[j])
            a[c] = a.get(c, 0.0) + w
        deltas = sorted((delta_select(lv["vol"], lv["V"][c], lv["g"][c], d_x, a[c]), c) for c in a)
        diag["n_cand"][t] = len(deltas)
        if deltas:
            best, bc = deltas[0]  # sorted by (Delta, id): ties go to the lowest id
            diag["best_delta"][t] = best
            if len(deltas) > 1:
                diag["delta_gap"][t] = deltas[1][0] - best
            if best < 0 or fallback == "min_delta":
                tok[t] = bc
                diag["fallback"][t] = not best < 0
                continue
        tok[t] = by_centroid(t)
        diag["fallback"][t] = True
    return tok, diag


def encode(q, z, n_levels=None, nearest=False, query_round=True):
    """Residual multi-level tokens [T, L] int32 of latents z [T, D] (§8.1), the per-level
    diagnostics, and the final float32 residual."""
    L = n_levels or q["n_levels"]
    r = np.array(z, dtype=np.float32, copy=True)
    toks = np.zeros((r.shape[0], L), dtype=np.int32)
    diags = []
    for l in range(L):
        lv = q["levels"][l]
        tk, dg = quantize_level(lv, r, q["fallback"], nearest or q["quantizer"] == "nearest", query_round)
        toks[:, l] = tk
        diags.append(dg)
        r = r - lv["centroids"][tk]  # float32 - float32: one IEEE rounding, as in the residual rule
    return toks, diags, r


def decode_input(q, toks):
    """Decoder input [T, D]: the float32 sum over levels (in order) of centroid_l[tok_l]."""
    toks = np.asarray(toks)
    out = np.zeros((toks.shape[0], q["dim"]), dtype=np.float32)
    for l in range(toks.shape[1]):
        out = out + q["levels"][l]["centroids"][toks[:, l]]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("latents", help="float32 .npy [T, D]")
    ap.add_argument("--nearest", action="store_true")
    ap.add_argument("--levels", type=int)
    ap.add_argument("-o", "--output", help="tokens .npy (int32 [T, L]); default: print")
    a = ap.parse_args(argv)
    q = load_quantizer(a.model)
    z = np.load(a.latents)
    toks, diags, _ = encode(q, z, a.levels, a.nearest)
    if a.output:
        np.save(a.output, toks)
    else:
        for row in toks:
            print(" ".join(str(int(v)) for v in row))
    for l, dg in enumerate(diags):
        print("level %d: %d fallback frames, min Delta gap %.3g" % (l, int(dg["fallback"].sum()),
              float(np.min(dg["delta_gap"])) if dg["delta_gap"].size else float("nan")), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
