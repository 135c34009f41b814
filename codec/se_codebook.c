/* se_codebook.c - SE codebook build, node-game quantiser, residual levels, GGUF section
 * (secodec.md §2.2-§2.7, §8 items 1-8). */
#include "se_codebook.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gemm.h"
#include "se_part.h"
#include "tensor.h"

#define SE_QBLOCK 256 /* frames per quantiser block (fixed: results independent of threads) */

/* ---- seeded sampling ------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct {
    uint64_t s[4];
} xoshiro;

static uint64_t rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna). */
static uint64_t xoshiro_next(xoshiro *r)
{
    uint64_t *s = r->s, res = rotl64(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return res;
}

/* Uniform integer in [0, bound) by rejection (no modulo bias). */
static uint64_t xoshiro_below(xoshiro *r, uint64_t bound)
{
    uint64_t thr = (0 - bound) % bound;
    for (;;) {
        uint64_t v = xoshiro_next(r);
        if (v >= thr)
            return v % bound;
    }
}

static int i64_cmp(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return (a > b) - (a < b);
}

int se_sample_indices(int64_t M, int64_t n, uint64_t seed, int64_t *out)
{
    if (M < 0 || n < 0 || (n > 0 && M > 0 && !out))
        return err_set(COCHLEA_EINVAL, "se_sample_indices: bad arguments");
    if (n >= M) {
        for (int64_t i = 0; i < M; i++)
            out[i] = i;
        return COCHLEA_OK;
    }
    if (n == 0)
        return COCHLEA_OK;
    /* Floyd's algorithm: for j = M-n .. M-1 draw t in [0, j]; take t, or j if t is taken. */
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)n)
        cap *= 2;
    int64_t *set = malloc((size_t)cap * sizeof(int64_t));
    if (!set)
        return err_set(COCHLEA_ENOMEM, "se_sample_indices: out of memory");
    for (uint64_t s = 0; s < cap; s++)
        set[s] = -1;
    xoshiro r;
    uint64_t sm = seed;
    for (int i = 0; i < 4; i++)
        r.s[i] = splitmix64(&sm);
    int64_t cnt = 0;
    for (int64_t j = M - n; j < M; j++) {
        int64_t t = (int64_t)xoshiro_below(&r, (uint64_t)j + 1);
        for (int pass = 0; pass < 2; pass++) {
            int64_t v = pass == 0 ? t : j;
            uint64_t h = ((uint64_t)v * 0x9e3779b97f4a7c15ull) >> 7 & (cap - 1);
            while (set[h] >= 0 && set[h] != v)
                h = (h + 1) & (cap - 1);
            if (set[h] == v)
                continue; /* taken: try j (which is never taken yet) */
            set[h] = v;
            out[cnt++] = v;
            break;
        }
    }
    free(set);
    qsort(out, (size_t)cnt, sizeof *out, i64_cmp);
    return COCHLEA_OK;
}

/* ---- Delta_select ------------------------------------------------------------------------ */

double se_delta_select(double vol, double V, double g, double dx, double a)
{
    double vp = vol + 2 * dx, Vp = V + a, gp = g + a, Vplus = Vp + dx, gplus = gp + dx - 2 * a;
    double d = (Vp / vp) * log2(Vplus / Vp) + (dx / vp) * log2(Vplus / vp);
    if (gp > 0)
        d += (gp / vp) * log2(Vp / vp);
    if (gplus > 0)
        d -= (gplus / vp) * log2(Vplus / vp);
    return d;
}

/* ---- quantiser --------------------------------------------------------------------------- */

static double sqdist(const float *x, const float *c, int64_t D)
{
    double s0 = 0, s1 = 0;
    int64_t t = 0;
    for (; t + 2 <= D; t += 2) {
        double a = (double)x[t] - (double)c[t], b = (double)x[t + 1] - (double)c[t + 1];
        s0 += a * a;
        s1 += b * b;
    }
    if (t < D) {
        double a = (double)x[t] - (double)c[t];
        s0 += a * a;
    }
    return s0 + s1;
}

/* Nearest centroid (exact double distance, lowest id on ties). With dots (x . c_j in float from
 * GEMM) only centroids whose approximate distance is within a tolerance of the best approximate
 * one are measured exactly. */
static int32_t nearest_centroid(const float *x, const se_level *lv, int64_t D, const float *dots, const double *cn,
                                double cmax)
{
    int32_t best = 0;
    double bd = INFINITY;
    if (!dots) {
        for (int32_t c = 0; c < lv->K; c++) {
            double d = sqdist(x, lv->centroids + (int64_t)c * D, D);
            if (d < bd) {
                bd = d;
                best = c;
            }
        }
        return best;
    }
    double xn = se_dot(x, x, D), amin = INFINITY;
    for (int32_t c = 0; c < lv->K; c++) {
        double a = cn[c] - 2.0 * (double)dots[c];
        if (a < amin)
            amin = a;
    }
    double tol = 1e-3 * (xn + cmax) + 1e-30;
    for (int32_t c = 0; c < lv->K; c++) {
        if (!(cn[c] - 2.0 * (double)dots[c] <= amin + tol))
            continue;
        double d = sqdist(x, lv->centroids + (int64_t)c * D, D);
        if (d < bd) {
            bd = d;
            best = c;
        }
    }
    return best;
}

typedef struct {
    const se_level *lv;
    int64_t D, ldx, m, b0;
    enum se_fallback fb;
    int use_se;
    const float *x;       /* frame b0 */
    const int32_t *nidx;  /* [m, k] */
    const double *nsim;
    const float *dots;    /* [m, K] or NULL */
    const double *cn;
    double cmax;
    int32_t *tok;         /* frame b0 */
    int64_t *nfb;         /* [nth] */
    int32_t *sc;          /* [nth * k] */
    double *sw;
} qtask;

static void quant_run(void *arg, int ith, int nth)
{
    qtask *q = arg;
    const se_level *lv = q->lv;
    int64_t b, e;
    pool_split(q->m, ith, nth, &b, &e);
    int32_t *sc = q->use_se ? q->sc + (int64_t)ith * lv->k : NULL;
    double *sw = q->use_se ? q->sw + (int64_t)ith * lv->k : NULL;
    for (int64_t f = b; f < e; f++) {
        const float *x = q->x + f * q->ldx;
        if (!q->use_se) {
            q->tok[f] = nearest_centroid(x, lv, q->D, q->dots + f * lv->K, q->cn, q->cmax);
            continue;
        }
        const int32_t *ni = q->nidx + f * lv->k;
        const double *ns = q->nsim + f * lv->k;
        double dx = 0;
        int nc = 0;
        for (int r = 0; r < lv->k; r++) {
            if (ni[r] < 0 || !(ns[r] > 0))
                break; /* ranked by similarity: the rest are not positive either */
            dx += ns[r];
            /* insertion into community order, stable (rank order within a community) */
            int32_t c = lv->community[ni[r]];
            int p = nc++;
            while (p > 0 && sc[p - 1] > c) {
                sc[p] = sc[p - 1];
                sw[p] = sw[p - 1];
                p--;
            }
            sc[p] = c;
            sw[p] = ns[r];
        }
        int32_t bc = -1;
        double bd = INFINITY;
        for (int p = 0; p < nc;) {
            int32_t c = sc[p];
            double a = 0;
            for (; p < nc && sc[p] == c; p++)
                a += sw[p];
            double d = se_delta_select(lv->vol, lv->comm_volume[c], lv->comm_cut[c], dx, a);
            if (d < bd) {
                bd = d;
                bc = c;
            }
        }
        if (bc >= 0 && (bd < 0 || q->fb == SE_FALLBACK_MIN_DELTA)) {
            q->tok[f] = bc;
            if (!(bd < 0))
                q->nfb[ith]++;
        } else {
            q->tok[f] = nearest_centroid(x, lv, q->D, NULL, NULL, 0);
            q->nfb[ith]++;
        }
    }
}

int se_level_quantize(cochlea_ctx *ctx, const se_level *lv, int64_t D, enum se_fallback fb, int nearest,
                      const float *x, int64_t T, int64_t ldx, int32_t *tok, int64_t *n_fallback)
{
    if (n_fallback)
        *n_fallback = 0;
    if (!ctx || !lv || D < 1 || T < 0 || ldx < D || lv->K < 1 || !lv->centroids || (T > 0 && (!x || !tok)))
        return err_set(COCHLEA_EINVAL, "se_level_quantize: bad arguments (T=%lld D=%lld)", (long long)T,
                       (long long)D);
    if (T == 0)
        return COCHLEA_OK;
    int use_se = !nearest && lv->n_nodes > 0;
    if (use_se && (!lv->nodes || !lv->community || lv->k < 1 || !lv->comm_volume || !lv->comm_cut))
        return err_set(COCHLEA_EINVAL, "se_level_quantize: level has no graph data");
    int nth = ctx->pool ? pool_size(ctx->pool) : 1;
    int64_t B = T < SE_QBLOCK ? T : SE_QBLOCK;
    size_t kk = use_se ? (size_t)lv->k : 0;
    double *cn = malloc((size_t)lv->K * sizeof(double));
    float *xn = use_se ? malloc((size_t)B * (size_t)D * sizeof(float)) : NULL;
    int32_t *nidx = use_se ? malloc((size_t)B * kk * sizeof(int32_t)) : NULL;
    double *nsim = use_se ? malloc((size_t)B * kk * sizeof(double)) : NULL;
    float *dots = use_se ? NULL : malloc((size_t)B * (size_t)lv->K * sizeof(float));
    int32_t *sc = use_se ? malloc((size_t)nth * kk * sizeof(int32_t)) : NULL;
    double *sw = use_se ? malloc((size_t)nth * kk * sizeof(double)) : NULL;
    int64_t *nfb = calloc((size_t)nth, sizeof(int64_t));
    int rc = COCHLEA_OK;
    if (!cn || !nfb || (use_se && (!xn || !nidx || !nsim || !sc || !sw)) || (!use_se && !dots)) {
        rc = err_set(COCHLEA_ENOMEM, "se_level_quantize: out of memory");
        goto done;
    }
    double cmax = 0;
    for (int32_t c = 0; c < lv->K; c++) {
        const float *cr = lv->centroids + (int64_t)c * D;
        cn[c] = se_dot(cr, cr, D);
        if (cn[c] > cmax)
            cmax = cn[c];
    }
    for (int64_t b0 = 0; b0 < T; b0 += B) {
        int64_t m = T - b0 < B ? T - b0 : B;
        const float *xb = x + b0 * ldx;
        if (use_se) {
            rc = se_normalize_rows(xb, m, D, ldx, xn);
            if (!rc)
                rc = se_topk(ctx, xn, m, lv->nodes, lv->n_nodes, D, lv->k, -1, nidx, nsim);
        } else {
            for (int64_t f = 0; f < m; f++)
                for (int64_t t = 0; t < D; t++)
                    if (!isfinite(xb[f * ldx + t])) {
                        rc = err_set(COCHLEA_EINVAL, "frame %lld, element %lld is not finite",
                                     (long long)(b0 + f), (long long)t);
                        goto done;
                    }
            rc = gemm_f32(ctx, 0, 1, m, lv->K, D, 1.0f, xb, ldx, lv->centroids, D, 0.0f, dots, lv->K);
        }
        if (rc) {
            if (use_se)
                err_prefix(rc, "frames %lld..%lld", (long long)b0, (long long)(b0 + m - 1));
            goto done;
        }
        qtask q = {lv, D, ldx, m, b0, fb, use_se, xb, nidx, nsim, dots, cn, cmax, tok + b0, nfb, sc, sw};
        if (ctx->pool && nth > 1 && m > 1)
            pool_run(ctx->pool, quant_run, &q);
        else
            quant_run(&q, 0, 1);
    }
    if (n_fallback)
        for (int t = 0; t < nth; t++)
            *n_fallback += nfb[t];
done:
    free(cn);
    free(xn);
    free(nidx);
    free(nsim);
    free(dots);
    free(sc);
    free(sw);
    free(nfb);
    return rc;
}

/* ---- multi-level encode / decode ---------------------------------------------------------- */

int se_codebook_encode(cochlea_ctx *ctx, const se_codebook *cb, const float *z, int64_t T, int n_levels,
                       int nearest, int32_t *tokens)
{
    if (!cb || n_levels < 1 || n_levels > cb->n_levels || T < 0 || (T > 0 && (!z || !tokens)))
        return err_set(COCHLEA_EINVAL, "se_codebook_encode: bad arguments (levels %d of %d, T=%lld)", n_levels,
                       cb ? cb->n_levels : 0, (long long)T);
    if (T == 0)
        return COCHLEA_OK;
    int64_t D = cb->dim;
    size_t nr;
    if (size_mul((size_t)T, (size_t)D, &nr) || nr > SIZE_MAX / sizeof(float))
        return err_set(COCHLEA_ERANGE, "se_codebook_encode: %lld frames overflow", (long long)T);
    float *r = malloc(nr * sizeof(float));
    int32_t *tk = malloc((size_t)T * sizeof(int32_t));
    int rc = COCHLEA_OK;
    if (!r || !tk) {
        rc = err_set(COCHLEA_ENOMEM, "se_codebook_encode: out of memory");
        goto done;
    }
    memcpy(r, z, nr * sizeof(float));
    for (int l = 0; l < n_levels; l++) {
        const se_level *lv = &cb->levels[l];
        rc = se_level_quantize(ctx, lv, D, cb->fallback, nearest || cb->quantizer == SE_QUANTIZER_NEAREST, r, T, D,
                               tk, NULL);
        if (rc) {
            err_prefix(rc, "level %d", l);
            goto done;
        }
        for (int64_t t = 0; t < T; t++) {
            tokens[t * n_levels + l] = tk[t];
            const float *c = lv->centroids + (int64_t)tk[t] * D;
            float *rr = r + t * D;
            for (int64_t j = 0; j < D; j++)
                rr[j] -= c[j];
        }
    }
done:
    free(r);
    free(tk);
    return rc;
}

int se_codebook_decode(const se_codebook *cb, const int32_t *tokens, int64_t T, int n_levels, float *out)
{
    if (!cb || n_levels < 1 || n_levels > cb->n_levels || T < 0 || (T > 0 && (!tokens || !out)))
        return err_set(COCHLEA_EINVAL, "se_codebook_decode: bad arguments (levels %d of %d)", n_levels,
                       cb ? cb->n_levels : 0);
    int64_t D = cb->dim;
    for (int64_t t = 0; t < T; t++) {
        float *o = out + t * D;
        for (int64_t j = 0; j < D; j++)
            o[j] = 0.0f;
        for (int l = 0; l < n_levels; l++) {
            int32_t v = tokens[t * n_levels + l];
            if (v < 0 || v >= cb->levels[l].K)
                return err_set(COCHLEA_ERANGE, "frame %lld, level %d: token %d outside [0, %d)", (long long)t, l, v,
                               cb->levels[l].K);
            const float *c = cb->levels[l].centroids + (int64_t)v * D;
            for (int64_t j = 0; j < D; j++)
                o[j] += c[j];
        }
    }
    return COCHLEA_OK;
}

/* ---- build -------------------------------------------------------------------------------- */

se_build_params se_build_default_params(void)
{
    se_build_params p;
    memset(&p, 0, sizeof p);
    p.n_levels = 8;
    p.n_nodes = 10000;
    p.seed = 20241216;
    p.k = 0;
    p.k_max = SE_K_MAX_DEFAULT;
    p.group_size = 0;
    p.min_community_size = 2;
    p.fallback = SE_FALLBACK_NEAREST_CENTROID;
    return p;
}

static void level_free(se_level *lv)
{
    for (int i = 0; i < 5; i++)
        free(lv->own[i]);
    memset(lv, 0, sizeof *lv);
}

void se_codebook_free(se_codebook *cb)
{
    if (!cb)
        return;
    if (cb->levels)
        for (int l = 0; l < cb->n_levels; l++)
            level_free(&cb->levels[l]);
    free(cb->levels);
    free(cb->meta.k_rule);
    free(cb->meta.codeword_rule);
    free(cb->meta.graph_mode);
    free(cb->meta.training);
    free(cb);
}

static int i64_cmp_sizes(const void *pa, const void *pb)
{
    return i64_cmp(pa, pb);
}

/* One level (steps 1-5 of the header) on x [M, D]. */
static int level_build(cochlea_ctx *ctx, const float *x, int64_t M, int64_t D, const se_build_params *p, int level,
                       se_level *lv, se_level_stats *st)
{
    memset(lv, 0, sizeof *lv);
    memset(st, 0, sizeof *st);
    int64_t N = M < p->n_nodes ? M : p->n_nodes;
    size_t nd;
    if (N < 1 || N > INT32_MAX || size_mul((size_t)N, (size_t)D, &nd) || nd > SIZE_MAX / sizeof(double))
        return err_set(COCHLEA_EINVAL, "level %d: %lld nodes of %lld dims cannot be built", level, (long long)N,
                       (long long)D);
    int64_t *sel = malloc((size_t)N * sizeof(int64_t));
    float *xs = malloc(nd * sizeof(float));
    float *xn = malloc(nd * sizeof(float));
    int32_t *comm = malloc((size_t)N * sizeof(int32_t));
    int64_t *size = NULL;
    int32_t *newid = NULL;
    double *acc = NULL, *V = NULL, *cut = NULL;
    float *cent = NULL;
    se_knn knn;
    se_graph g;
    memset(&knn, 0, sizeof knn);
    memset(&g, 0, sizeof g);
    int rc = COCHLEA_OK;
    if (!sel || !xs || !xn || !comm) {
        rc = err_set(COCHLEA_ENOMEM, "level %d: out of memory", level);
        goto done;
    }
    rc = se_sample_indices(M, N, p->seed + (uint64_t)level, sel);
    if (rc)
        goto done;
    for (int64_t i = 0; i < N; i++)
        memcpy(xs + i * D, x + sel[i] * D, (size_t)D * sizeof(float));
    rc = se_normalize_rows(xs, N, D, D, xn);
    if (rc)
        goto done;
    rc = se_knn_build(ctx, xn, N, D, p->k > 0 ? p->k : p->k_max, &knn);
    if (rc)
        goto done;
    int k;
    if (p->k > 0) {
        k = p->k < knn.k_max ? p->k : knn.k_max;
    } else {
        rc = se_graph_choose_k(&knn, knn.k_max, NULL, &k, &st->k_stable);
        if (rc)
            goto done;
    }
    rc = se_graph_from_knn(&knn, k, &g);
    se_knn_free(&knn);
    if (rc)
        goto done;
    int64_t gn = p->group_size > 0 ? p->group_size : (N + 1023) / 1024;
    int32_t K0;
    se_part_info info;
    rc = se_part_hier(&g, gn, comm, &K0, &info);
    if (rc)
        goto done;
    /* dissolve small communities */
    size = calloc((size_t)K0 + 1, sizeof(int64_t));
    newid = malloc((size_t)K0 * sizeof(int32_t));
    if (!size || !newid) {
        rc = err_set(COCHLEA_ENOMEM, "level %d: out of memory", level);
        goto done;
    }
    for (int64_t i = 0; i < N; i++)
        size[comm[i]]++;
    int32_t K = 0;
    for (int32_t c = 0; c < K0; c++)
        newid[c] = -1;
    for (int64_t i = 0; i < N; i++) {
        int32_t c = comm[i];
        if (size[c] >= p->min_community_size && newid[c] < 0)
            newid[c] = K++;
    }
    if (K == 0) {
        rc = err_set(COCHLEA_EINVAL,
                     "level %d: every one of the %d communities has fewer than %d members (%lld nodes, %lld edges, "
                     "k %d)",
                     level, K0, p->min_community_size, (long long)N, (long long)g.n_edges, k);
        goto done;
    }
    size_t kd;
    if (size_mul((size_t)K, (size_t)D, &kd)) {
        rc = err_set(COCHLEA_ERANGE, "level %d: centroid table overflows", level);
        goto done;
    }
    acc = calloc(kd, sizeof(double));
    cent = malloc(kd * sizeof(float));
    if (!acc || !cent) {
        rc = err_set(COCHLEA_ENOMEM, "level %d: out of memory", level);
        goto done;
    }
    /* centroids of the remaining communities (before reassignment) */
    int64_t *cnt = size; /* reuse: counts per new id */
    memset(cnt, 0, ((size_t)K0 + 1) * sizeof(int64_t));
    for (int64_t i = 0; i < N; i++) {
        int32_t c = newid[comm[i]];
        if (c < 0)
            continue;
        cnt[c]++;
        for (int64_t j = 0; j < D; j++)
            acc[c * D + j] += xs[i * D + j];
    }
    for (int32_t c = 0; c < K; c++)
        for (int64_t j = 0; j < D; j++)
            cent[c * D + j] = (float)(acc[c * D + j] / (double)cnt[c]);
    se_level tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.K = K;
    tmp.centroids = cent;
    for (int64_t i = 0; i < N; i++) {
        int32_t c = newid[comm[i]];
        if (c < 0) {
            c = nearest_centroid(xs + i * D, &tmp, D, NULL, NULL, 0);
            st->n_reassigned++;
        }
        comm[i] = c;
    }
    /* final centroids: mean of the original features of all members */
    memset(acc, 0, kd * sizeof(double));
    memset(cnt, 0, ((size_t)K0 + 1) * sizeof(int64_t));
    for (int64_t i = 0; i < N; i++) {
        int32_t c = comm[i];
        cnt[c]++;
        for (int64_t j = 0; j < D; j++)
            acc[c * D + j] += xs[i * D + j];
    }
    for (int32_t c = 0; c < K; c++)
        for (int64_t j = 0; j < D; j++)
            cent[c * D + j] = (float)(acc[c * D + j] / (double)cnt[c]);
    V = malloc((size_t)K * sizeof(double));
    cut = malloc((size_t)K * sizeof(double));
    if (!V || !cut) {
        rc = err_set(COCHLEA_ENOMEM, "level %d: out of memory", level);
        goto done;
    }
    rc = se_graph_comm_stats(&g, comm, K, V, cut);
    if (!rc)
        rc = se_graph_h2(&g, comm, K, &st->h2);
    if (rc)
        goto done;
    st->n_nodes = N;
    st->k = k;
    st->n_edges = g.n_edges;
    st->h1 = se_graph_h1(&g);
    st->K = K;
    st->passes = info.passes;
    qsort(cnt, (size_t)K, sizeof *cnt, i64_cmp_sizes);
    st->size_min = cnt[0];
    st->size_max = cnt[K - 1];
    st->size_median = cnt[(K - 1) / 2];
    lv->K = K;
    lv->centroids = cent;
    lv->own[0] = cent;
    lv->n_nodes = N;
    lv->nodes = xn;
    lv->own[1] = xn;
    lv->community = comm;
    lv->own[2] = comm;
    lv->k = k;
    lv->vol = g.vol;
    lv->comm_volume = V;
    lv->own[3] = V;
    lv->comm_cut = cut;
    lv->own[4] = cut;
    cent = NULL;
    xn = NULL;
    comm = NULL;
    V = cut = NULL;
done:
    se_knn_free(&knn);
    se_graph_free(&g);
    free(sel);
    free(xs);
    free(xn);
    free(comm);
    free(size);
    free(newid);
    free(acc);
    free(cent);
    free(V);
    free(cut);
    return rc;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

int se_codebook_build(cochlea_ctx *ctx, const float *x, int64_t M, int64_t D, const se_build_params *p,
                      se_codebook **out, se_level_stats *stats)
{
    *out = NULL;
    if (!ctx || !p || !x || M < 1 || D < 1 || p->n_levels < 1 || p->n_levels > SE_MAX_LEVELS || p->n_nodes < 1 ||
        p->k < 0 || p->k_max < 1 || p->group_size < 0 || p->min_community_size < 1 ||
        (p->fallback != SE_FALLBACK_NEAREST_CENTROID && p->fallback != SE_FALLBACK_MIN_DELTA))
        return err_set(COCHLEA_EINVAL,
                       "se_codebook_build: bad parameters (M=%lld D=%lld levels=%d N=%lld k=%d k_max=%d n=%lld "
                       "min size=%d)",
                       (long long)M, (long long)D, p ? p->n_levels : 0, p ? (long long)p->n_nodes : 0LL,
                       p ? p->k : 0, p ? p->k_max : 0, p ? (long long)p->group_size : 0LL,
                       p ? p->min_community_size : 0);
    size_t nr;
    if (size_mul((size_t)M, (size_t)D, &nr) || nr > SIZE_MAX / sizeof(float))
        return err_set(COCHLEA_ERANGE, "se_codebook_build: %lld x %lld features overflow", (long long)M,
                       (long long)D);
    se_codebook *cb = calloc(1, sizeof *cb);
    float *r = malloc(nr * sizeof(float));
    int32_t *tk = malloc((size_t)M * sizeof(int32_t));
    int rc = COCHLEA_OK;
    if (!cb || !r || !tk || !(cb->levels = calloc((size_t)p->n_levels, sizeof(se_level)))) {
        rc = err_set(COCHLEA_ENOMEM, "se_codebook_build: out of memory");
        goto fail;
    }
    cb->dim = D;
    cb->quantizer = SE_QUANTIZER_SE;
    cb->fallback = p->fallback;
    memcpy(r, x, nr * sizeof(float));
    for (int l = 0; l < p->n_levels; l++) {
        se_level_stats st;
        rc = level_build(ctx, r, M, D, p, l, &cb->levels[l], &st);
        if (rc)
            goto fail;
        cb->n_levels = l + 1;
        const se_level *lv = &cb->levels[l];
        rc = se_level_quantize(ctx, lv, D, p->fallback, 0, r, M, D, tk, &st.n_fallback);
        if (rc) {
            err_prefix(rc, "level %d", l);
            goto fail;
        }
        double se = 0;
        for (int64_t i = 0; i < M; i++) {
            const float *c = lv->centroids + (int64_t)tk[i] * D;
            float *rr = r + i * D;
            for (int64_t j = 0; j < D; j++) {
                rr[j] -= c[j];
                se += (double)rr[j] * rr[j];
            }
        }
        st.mse = se / ((double)M * (double)D);
        if (stats)
            stats[l] = st;
    }
    se_build_meta *m = &cb->meta;
    int64_t nn = M < p->n_nodes ? M : p->n_nodes;
    m->has_group_size_n = 1;
    m->group_size_n = (uint32_t)(p->group_size > 0 ? p->group_size : (nn + 1023) / 1024);
    m->has_sample_seed = 1;
    m->sample_seed = p->seed;
    m->has_min_community_size = 1;
    m->min_community_size = (uint32_t)p->min_community_size;
    m->k_rule = dup_str(p->k > 0 ? "fixed" : "stable_point");
    m->codeword_rule = dup_str("centroid");
    m->graph_mode = dup_str("frozen");
    if (!m->k_rule || !m->codeword_rule || !m->graph_mode) {
        rc = err_set(COCHLEA_ENOMEM, "se_codebook_build: out of memory");
        goto fail;
    }
    free(r);
    free(tk);
    *out = cb;
    return COCHLEA_OK;
fail:
    free(r);
    free(tk);
    se_codebook_free(cb);
    return rc;
}

/* ---- GGUF section ---------------------------------------------------------------------------- */

static const char *fallback_name(enum se_fallback f)
{
    return f == SE_FALLBACK_MIN_DELTA ? "min_delta" : "nearest_centroid";
}

/* F16 node tensor data: user = the level's float nodes, nbytes / 2 of them. */
static int fill_f16(void *user, const char *name, void *dst, size_t nbytes)
{
    if (nbytes % sizeof(uint16_t))
        return err_set(COCHLEA_EINTERNAL, "tensor '%s': odd size %zu for f16", name, nbytes);
    f32_to_fp16_array(user, dst, nbytes / sizeof(uint16_t));
    return COCHLEA_OK;
}

int se_codebook_write(const se_codebook *cb, gguf_writer *w, enum cochlea_type nodes_type)
{
    if (!cb || !w || cb->n_levels < 1 || cb->n_levels > SE_MAX_LEVELS ||
        (nodes_type != COCHLEA_TYPE_F32 && nodes_type != COCHLEA_TYPE_F16))
        return err_set(COCHLEA_EINVAL, "se_codebook_write: bad arguments (nodes type must be f32 or f16)");
    int L = cb->n_levels;
    uint32_t sizes[SE_MAX_LEVELS];
    for (int l = 0; l < L; l++) {
        const se_level *lv = &cb->levels[l];
        if (lv->K < 1 || !lv->centroids ||
            (cb->quantizer == SE_QUANTIZER_SE &&
             (lv->n_nodes < 1 || !lv->nodes || !lv->community || !lv->comm_volume || !lv->comm_cut || lv->k < 1)))
            return err_set(COCHLEA_EINVAL, "se_codebook_write: level %d has no codebook%s", l,
                           cb->quantizer == SE_QUANTIZER_SE ? " or no graph data" : "");
        sizes[l] = (uint32_t)lv->K;
    }
    char key[128];
    int rc = gguf_writer_set_u32(w, "secodec.n_levels", (uint32_t)L);
    if (!rc)
        rc = gguf_writer_set_arr(w, "secodec.codebook_sizes", GGUF_TYPE_U32, sizes, (size_t)L);
    if (!rc)
        rc = gguf_writer_set_str(w, "secodec.quantizer", cb->quantizer == SE_QUANTIZER_SE ? "se" : "nearest");
    for (int l = 0; l < L && !rc; l++) {
        const se_level *lv = &cb->levels[l];
        int64_t ne[2] = {cb->dim, lv->K};
        snprintf(key, sizeof key, "quantizer.vq.layers.%d._codebook.embed", l);
        rc = gguf_writer_add_tensor(w, key, COCHLEA_TYPE_F32, 2, ne, lv->centroids);
        if (rc || cb->quantizer != SE_QUANTIZER_SE)
            continue;
        int64_t nne[2] = {cb->dim, lv->n_nodes};
        snprintf(key, sizeof key, "quantizer.se.%d.nodes", l);
        if (nodes_type == COCHLEA_TYPE_F32) {
            rc = gguf_writer_add_tensor(w, key, COCHLEA_TYPE_F32, 2, nne, lv->nodes);
        } else {
            /* the source floats are the fill state (they outlive the write, as documented) */
            rc = gguf_writer_add_tensor_fn(w, key, COCHLEA_TYPE_F16, 2, nne, fill_f16, (void *)lv->nodes);
        }
        int64_t cne[1] = {lv->n_nodes};
        snprintf(key, sizeof key, "quantizer.se.%d.community", l);
        if (!rc)
            rc = gguf_writer_add_tensor(w, key, COCHLEA_TYPE_I32, 1, cne, lv->community);
        snprintf(key, sizeof key, "secodec.se.%d.k", l);
        if (!rc)
            rc = gguf_writer_set_u32(w, key, (uint32_t)lv->k);
        snprintf(key, sizeof key, "secodec.se.%d.vol", l);
        if (!rc)
            rc = gguf_writer_set_f64(w, key, lv->vol);
        snprintf(key, sizeof key, "secodec.se.%d.community_volume", l);
        if (!rc)
            rc = gguf_writer_set_arr(w, key, GGUF_TYPE_F64, lv->comm_volume, (size_t)lv->K);
        snprintf(key, sizeof key, "secodec.se.%d.community_cut", l);
        if (!rc)
            rc = gguf_writer_set_arr(w, key, GGUF_TYPE_F64, lv->comm_cut, (size_t)lv->K);
    }
    if (!rc && cb->quantizer == SE_QUANTIZER_SE)
        rc = gguf_writer_set_str(w, "secodec.se.fallback", fallback_name(cb->fallback));
    const se_build_meta *m = &cb->meta;
    if (!rc && m->has_group_size_n)
        rc = gguf_writer_set_u32(w, "secodec.se.group_size_n", m->group_size_n);
    if (!rc && m->has_sample_seed)
        rc = gguf_writer_set_u64(w, "secodec.se.sample_seed", m->sample_seed);
    if (!rc && m->k_rule)
        rc = gguf_writer_set_str(w, "secodec.se.k_rule", m->k_rule);
    if (!rc && m->has_min_community_size)
        rc = gguf_writer_set_u32(w, "secodec.se.min_community_size", m->min_community_size);
    if (!rc && m->codeword_rule)
        rc = gguf_writer_set_str(w, "secodec.se.codeword_rule", m->codeword_rule);
    if (!rc && m->graph_mode)
        rc = gguf_writer_set_str(w, "secodec.se.graph_mode", m->graph_mode);
    if (!rc && m->has_codebooks_frozen)
        rc = gguf_writer_set_bool(w, "secodec.codebooks_frozen", m->codebooks_frozen);
    if (!rc && m->training)
        rc = gguf_writer_set_str(w, "secodec.training", m->training);
    return rc;
}

/* A float tensor of rows of D (ne {D, rows}; 1-D when it is one row) as floats: a view into the
 * file for F32, else a converted copy in *owned. exp_rows < 0 accepts any row count >= 1. */
static int load_rows(const gguf_file *f, const char *name, int64_t D, int64_t exp_rows, const float **out,
                     float **owned, int64_t *rows_out)
{
    const char *lab = gguf_label(f);
    const tensor *t;
    int rc = gguf_get_tensor(f, name, &t);
    if (rc)
        return rc;
    if (t->type != COCHLEA_TYPE_F32 && t->type != COCHLEA_TYPE_F16 && t->type != COCHLEA_TYPE_BF16 &&
        t->type != COCHLEA_TYPE_Q8_0)
        return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' has type %s, expected f32 or f16", lab, name,
                       type_name(t->type) ? type_name(t->type) : "?");
    int64_t rows;
    if (t->n_dims == 2 && t->ne[0] == D && t->ne[1] >= 1)
        rows = t->ne[1];
    else if (t->n_dims == 1 && t->ne[0] == D)
        rows = 1;
    else
        return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' has %d dims [%lld, %lld], expected [%lld, %s]", lab, name,
                       t->n_dims, (long long)t->ne[0], (long long)(t->n_dims > 1 ? t->ne[1] : 1), (long long)D,
                       exp_rows < 0 ? "N" : "K");
    if (exp_rows >= 0 && rows != exp_rows)
        return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' has %lld rows, expected %lld (the codebook size)", lab, name,
                       (long long)rows, (long long)exp_rows);
    if (rows > INT32_MAX)
        return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' has too many rows (%lld)", lab, name, (long long)rows);
    *owned = NULL;
    const float *p;
    if (t->type == COCHLEA_TYPE_F32) {
        p = t->data;
    } else {
        size_t n;
        if (size_mul((size_t)rows, (size_t)D, &n) || n > SIZE_MAX / sizeof(float))
            return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' is too large", lab, name);
        float *c = malloc(n * sizeof(float));
        if (!c)
            return err_set(COCHLEA_ENOMEM, "%s: out of memory converting tensor '%s'", lab, name);
        for (int64_t r = 0; r < rows; r++)
            tensor_row_to_f32(t, r, c + r * D);
        *owned = c;
        p = c;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < D; j++)
            if (!isfinite(p[r * D + j])) {
                free(*owned);
                *owned = NULL;
                return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' row %lld element %lld is not finite", lab, name,
                               (long long)r, (long long)j);
            }
    *out = p;
    *rows_out = rows;
    return COCHLEA_OK;
}

/* An f64 array of exactly n finite, non-negative values, copied. */
static int load_f64_arr(const gguf_file *f, const char *key, int64_t n, double **out)
{
    const char *lab = gguf_label(f);
    const gguf_value *v;
    int rc = gguf_get_array(f, key, &v);
    if (rc)
        return rc;
    if (v->arr_type != GGUF_TYPE_F64)
        return err_set(COCHLEA_EFORMAT, "%s: key '%s' has element type %s, expected f64", lab, key,
                       gguf_type_name(v->arr_type));
    if (v->n != (uint64_t)n)
        return err_set(COCHLEA_EFORMAT, "%s: key '%s' has %llu elements, expected %lld (the codebook size)", lab, key,
                       (unsigned long long)v->n, (long long)n);
    double *a = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    if (!a)
        return err_set(COCHLEA_ENOMEM, "%s: out of memory", lab);
    for (int64_t i = 0; i < n; i++) {
        rc = gguf_value_float(v, (uint64_t)i, &a[i]);
        if (!rc && (!isfinite(a[i]) || a[i] < 0))
            rc = err_set(COCHLEA_EFORMAT, "%s: key '%s' element %lld is %g (must be finite and >= 0)", lab, key,
                         (long long)i, a[i]);
        if (rc) {
            free(a);
            return rc;
        }
    }
    *out = a;
    return COCHLEA_OK;
}

/* An optional string key, copied (NULL when absent). */
static int load_opt_str(const gguf_file *f, const char *key, char **out)
{
    *out = NULL;
    if (!gguf_has_key(f, key))
        return COCHLEA_OK;
    const char *s;
    int rc = gguf_get_str(f, key, &s, NULL);
    if (rc)
        return rc;
    if (!(*out = dup_str(s)))
        return err_set(COCHLEA_ENOMEM, "%s: out of memory", gguf_label(f));
    return COCHLEA_OK;
}

/* §8 items 7-8: the graph data of level l ("se" quantiser). */
static int load_se_level(const gguf_file *f, int l, int64_t D, se_level *lv)
{
    const char *lab = gguf_label(f);
    char name[128];
    snprintf(name, sizeof name, "quantizer.se.%d.nodes", l);
    float *own = NULL;
    int rc = load_rows(f, name, D, -1, &lv->nodes, &own, &lv->n_nodes);
    if (rc)
        return rc;
    lv->own[1] = own;
    for (int64_t r = 0; r < lv->n_nodes; r++) {
        const float *x = lv->nodes + r * D;
        double nrm = sqrt(se_dot(x, x, D));
        if (nrm != 0 && fabs(nrm - 1.0) > 1e-2)
            return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' row %lld has norm %g (nodes must be L2-normalised)", lab,
                           name, (long long)r, nrm);
        if (own && nrm != 0)
            for (int64_t j = 0; j < D; j++)
                own[r * D + j] = (float)((double)own[r * D + j] / nrm);
    }
    snprintf(name, sizeof name, "quantizer.se.%d.community", l);
    const tensor *t;
    rc = gguf_get_tensor(f, name, &t);
    if (rc)
        return rc;
    if (t->type != COCHLEA_TYPE_I32 || t->n_dims != 1 || t->ne[0] != lv->n_nodes)
        return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' is %s with %d dims [%lld], expected i32 [%lld] (one id per node)",
                       lab, name, type_name(t->type) ? type_name(t->type) : "?", t->n_dims, (long long)t->ne[0],
                       (long long)lv->n_nodes);
    lv->community = t->data;
    for (int64_t i = 0; i < lv->n_nodes; i++)
        if (lv->community[i] < 0 || lv->community[i] >= lv->K)
            return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' element %lld is community %d, outside [0, %d)", lab, name,
                           (long long)i, lv->community[i], lv->K);
    char key[128];
    uint32_t k;
    snprintf(key, sizeof key, "secodec.se.%d.k", l);
    rc = gguf_get_u32(f, key, &k);
    if (rc)
        return rc;
    if (k < 1 || k > lv->n_nodes)
        return err_set(COCHLEA_EFORMAT, "%s: key '%s' is %u, expected 1..%lld (the node count)", lab, key, k,
                       (long long)lv->n_nodes);
    lv->k = (int32_t)k;
    snprintf(key, sizeof key, "secodec.se.%d.vol", l);
    rc = gguf_get_f64(f, key, &lv->vol);
    if (rc)
        return rc;
    if (!isfinite(lv->vol) || lv->vol < 0)
        return err_set(COCHLEA_EFORMAT, "%s: key '%s' is %g (must be finite and >= 0)", lab, key, lv->vol);
    double *V, *g;
    snprintf(key, sizeof key, "secodec.se.%d.community_volume", l);
    rc = load_f64_arr(f, key, lv->K, &V);
    if (rc)
        return rc;
    lv->comm_volume = V;
    lv->own[3] = V;
    snprintf(key, sizeof key, "secodec.se.%d.community_cut", l);
    rc = load_f64_arr(f, key, lv->K, &g);
    if (rc)
        return rc;
    lv->comm_cut = g;
    lv->own[4] = g;
    double sum = 0;
    for (int32_t c = 0; c < lv->K; c++) {
        if (g[c] > V[c] * (1 + 1e-9) + 1e-12)
            return err_set(COCHLEA_EFORMAT, "%s: level %d community %d has cut %g above its volume %g", lab, l, c,
                           g[c], V[c]);
        sum += V[c];
    }
    if (fabs(sum - lv->vol) > 1e-6 * (lv->vol > 1 ? lv->vol : 1))
        return err_set(COCHLEA_EFORMAT, "%s: level %d community volumes sum to %.17g, key 'secodec.se.%d.vol' is %.17g",
                       lab, l, sum, l, lv->vol);
    return COCHLEA_OK;
}

int se_codebook_load(const gguf_file *f, int64_t dim, se_codebook **out)
{
    *out = NULL;
    if (!f)
        return err_set(COCHLEA_EINVAL, "se_codebook_load: no file");
    const char *lab = gguf_label(f);
    if (!gguf_has_key(f, "secodec.n_levels")) {
        if (gguf_has_key(f, "secodec.codebook_sizes") || gguf_has_key(f, "secodec.quantizer") ||
            gguf_find_tensor(f, "quantizer.vq.layers.0._codebook.embed") >= 0)
            return err_set(COCHLEA_EFORMAT, "%s: quantiser section without key 'secodec.n_levels'", lab);
        return COCHLEA_OK; /* a bare network */
    }
    int rc;
    if (dim <= 0) {
        uint32_t d;
        rc = gguf_get_u32(f, "secodec.dimension", &d);
        if (rc)
            return rc;
        if (d == 0)
            return err_set(COCHLEA_EFORMAT, "%s: key 'secodec.dimension' is 0", lab);
        dim = d;
    }
    uint32_t L;
    rc = gguf_get_u32(f, "secodec.n_levels", &L);
    if (rc)
        return rc;
    if (L < 1 || L > SE_MAX_LEVELS)
        return err_set(COCHLEA_EFORMAT, "%s: key 'secodec.n_levels' is %u, expected 1..%d", lab, L, SE_MAX_LEVELS);
    const gguf_value *sz;
    rc = gguf_get_array(f, "secodec.codebook_sizes", &sz);
    if (rc)
        return rc;
    if (sz->arr_type != GGUF_TYPE_U32)
        return err_set(COCHLEA_EFORMAT, "%s: key 'secodec.codebook_sizes' has element type %s, expected u32", lab,
                       gguf_type_name(sz->arr_type));
    if (sz->n != L)
        return err_set(COCHLEA_EFORMAT, "%s: key 'secodec.codebook_sizes' has %llu elements, expected %u (n_levels)",
                       lab, (unsigned long long)sz->n, L);
    const char *qs, *fs = NULL;
    rc = gguf_get_str(f, "secodec.quantizer", &qs, NULL);
    if (rc)
        return rc;
    enum se_quantizer_kind qk;
    if (strcmp(qs, "se") == 0)
        qk = SE_QUANTIZER_SE;
    else if (strcmp(qs, "nearest") == 0)
        qk = SE_QUANTIZER_NEAREST;
    else
        return err_set(COCHLEA_EFORMAT, "%s: key 'secodec.quantizer' is \"%s\", expected \"se\" or \"nearest\"", lab, qs);
    enum se_fallback fb = SE_FALLBACK_NEAREST_CENTROID;
    if (qk == SE_QUANTIZER_SE) {
        rc = gguf_get_str(f, "secodec.se.fallback", &fs, NULL);
        if (rc)
            return rc;
        if (strcmp(fs, "nearest_centroid") == 0)
            fb = SE_FALLBACK_NEAREST_CENTROID;
        else if (strcmp(fs, "min_delta") == 0)
            fb = SE_FALLBACK_MIN_DELTA;
        else
            return err_set(COCHLEA_EFORMAT,
                           "%s: key 'secodec.se.fallback' is \"%s\", expected \"nearest_centroid\" or \"min_delta\"",
                           lab, fs);
    }
    se_codebook *cb = calloc(1, sizeof *cb);
    if (!cb || !(cb->levels = calloc(L, sizeof(se_level)))) {
        free(cb);
        return err_set(COCHLEA_ENOMEM, "%s: out of memory", lab);
    }
    cb->n_levels = (int)L;
    cb->dim = dim;
    cb->quantizer = qk;
    cb->fallback = fb;
    for (uint32_t l = 0; l < L; l++) {
        se_level *lv = &cb->levels[l];
        int64_t K;
        rc = gguf_value_int(sz, l, &K);
        if (rc)
            goto fail;
        if (K < 1 || K > INT32_MAX) {
            rc = err_set(COCHLEA_EFORMAT, "%s: key 'secodec.codebook_sizes' element %u is %lld, expected >= 1", lab, l,
                         (long long)K);
            goto fail;
        }
        lv->K = (int32_t)K;
        char name[128];
        snprintf(name, sizeof name, "quantizer.vq.layers.%u._codebook.embed", l);
        float *own = NULL;
        int64_t rows;
        rc = load_rows(f, name, dim, K, &lv->centroids, &own, &rows);
        lv->own[0] = own;
        if (rc)
            goto fail;
        if (qk == SE_QUANTIZER_SE && (rc = load_se_level(f, (int)l, dim, lv)))
            goto fail;
    }
    se_build_meta *m = &cb->meta;
    if ((m->has_group_size_n = gguf_has_key(f, "secodec.se.group_size_n")) &&
        (rc = gguf_get_u32(f, "secodec.se.group_size_n", &m->group_size_n)))
        goto fail;
    if ((m->has_sample_seed = gguf_has_key(f, "secodec.se.sample_seed")) &&
        (rc = gguf_get_u64(f, "secodec.se.sample_seed", &m->sample_seed)))
        goto fail;
    if ((m->has_min_community_size = gguf_has_key(f, "secodec.se.min_community_size")) &&
        (rc = gguf_get_u32(f, "secodec.se.min_community_size", &m->min_community_size)))
        goto fail;
    if ((m->has_codebooks_frozen = gguf_has_key(f, "secodec.codebooks_frozen")) &&
        (rc = gguf_get_bool(f, "secodec.codebooks_frozen", &m->codebooks_frozen)))
        goto fail;
    if ((rc = load_opt_str(f, "secodec.se.k_rule", &m->k_rule)) ||
        (rc = load_opt_str(f, "secodec.se.codeword_rule", &m->codeword_rule)) ||
        (rc = load_opt_str(f, "secodec.se.graph_mode", &m->graph_mode)) ||
        (rc = load_opt_str(f, "secodec.training", &m->training)))
        goto fail;
    *out = cb;
    return COCHLEA_OK;
fail:
    se_codebook_free(cb);
    return rc;
}
