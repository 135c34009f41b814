/* ops_attn.c - multi-head (grouped-query) scaled dot-product attention (ops.h).
 *
 * Two paths compute the same function:
 * - the row-wise kernel: units of (kv head, block of ATTN_RB (query row, query head) pairs)
 *   split over the pool; each score is a dot product with a fixed summation order and each
 *   output an in-order sum over keys, so a row's result depends neither on the other rows nor
 *   on the thread count;
 * - the GEMM path for large problems: S_h = scale Q_h K^T for every head through gemm_f32
 *   (BLAS threads), the masked softmax of all rows split over the pool, then O_h = P_h V.
 * Both share the score post-processing (scale, masks, causal window) and ops_softmax. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gemm.h"
#include "ops.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#define ATTN_AVX512 1
#else
#define ATTN_AVX512 0
#endif

/* (query row, query head) pairs per unit of the row-wise kernel (scores scratch per thread:
 * ATTN_RB * Tk floats). */
#define ATTN_RB 4
/* The GEMM path is used (unless batch_invariant) when Tq >= ATTN_GEMM_MIN and Tk >= ATTN_GEMM_MIN.
 * Measured on the 2-core AVX-512 dev machine (1 thread): the row-wise kernel is faster up to
 * about 128 x 128 (16 heads of 64), the GEMM path about 1.3x faster at 376 x 376. With 2 threads
 * the BLAS threads and the pool take turns, which costs a lot on a loaded machine, so the GEMM
 * path is kept for encoder-sized problems only. */
#define ATTN_GEMM_MIN 256

ops_attn_params ops_attn_default_params(int64_t n_head, int64_t n_head_kv, int64_t head_dim)
{
    ops_attn_params p;
    memset(&p, 0, sizeof p);
    p.n_head = n_head;
    p.n_head_kv = n_head_kv;
    p.head_dim = head_dim;
    p.scale = head_dim > 0 ? (float)(1.0 / sqrt((double)head_dim)) : 0.0f;
    return p;
}

static int attn_threads(const cochlea_ctx *ctx)
{
    return ctx && ctx->pool ? pool_size(ctx->pool) : 1;
}

/* Whether this call runs the GEMM path (see ATTN_GEMM_MIN). */
static int attn_use_gemm(const cochlea_ctx *ctx, const ops_attn_params *p, int64_t Tq, int64_t Tk)
{
    return ctx && ctx->gemm && !p->batch_invariant && Tq >= ATTN_GEMM_MIN && Tk >= ATTN_GEMM_MIN;
}

size_t ops_attention_work_floats(const cochlea_ctx *ctx, const ops_attn_params *p, int64_t Tq, int64_t Tk)
{
    size_t n;
    if (!p || Tq < 0 || Tk < 0 || (uint64_t)Tq > SIZE_MAX || (uint64_t)Tk > SIZE_MAX)
        return 0;
    if (attn_use_gemm(ctx, p, Tq, Tk)) {
        if (p->n_head < 1 || size_mul((size_t)Tq, (size_t)Tk, &n) || size_mul(n, (size_t)p->n_head, &n))
            return 0;
    } else {
        if (size_mul((size_t)attn_threads(ctx) * ATTN_RB, (size_t)Tk, &n))
            return 0;
    }
    return n ? n : 1;
}

struct attn_job {
    const ops_attn_params *p;
    const float *q, *k, *v;
    float *out;
    int64_t ldq, ldk, ldv, ldo;
    int64_t Tq, Tk, D, group; /* group = H / Hkv */
    int64_t khs, vhs;         /* kv head strides (floats) */
    float scale;
    float *work;
    int64_t n_vblk; /* row-wise: blocks of ATTN_RB virtual rows per kv head (see attn_unit) */
};

/* Number of keys query row i may see: all Tk, or the causal window j <= i + Tk - Tq. */
static int64_t attn_keys(const struct attn_job *J, int64_t i)
{
    if (!J->p->causal)
        return J->Tk;
    int64_t n = i + J->Tk - J->Tq + 1;
    return n < 0 ? 0 : n > J->Tk ? J->Tk : n;
}

/* Turn the raw dot products s[0..n) of query row i, head h into probabilities in place:
 * scale, additive mask, boolean mask (-inf), softmax (all-masked rows become zeros). */
static void attn_probs(const struct attn_job *J, int64_t h, int64_t i, float *s, int64_t n)
{
    const ops_attn_params *p = J->p;
    if (n <= 0)
        return;
    const float *m = p->mask ? p->mask + h * p->mask_head_stride + i * p->mask_ld : NULL;
    const uint8_t *a = p->allowed ? p->allowed + i * p->allowed_ld : NULL;
    if (m)
        ops_add_scaled(NULL, m, s, J->scale, s, n);
    else if (J->scale != 1.0f)
        ops_scale(NULL, s, J->scale, s, n);
    if (a)
        for (int64_t j = 0; j < n; j++)
            if (!a[j])
                s[j] = -INFINITY;
    ops_softmax(NULL, s, n, s, n, 1, n, NULL, 0);
}

/* ---- row-wise kernel ---------------------------------------------------------------------- */

#if ATTN_AVX512
static inline __mmask16 attn_mask(int64_t left)
{
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

/* Horizontal sums of four vectors, [sum a, sum b, sum c, sum d], each by the same tree:
 * quarters (0+2) + (1+3), then lanes (0+2) + (1+3); so a sum does not depend on its slot. */
static inline __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d)
{
    __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
    __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_f32x4(c, d, _MM_SHUFFLE(3, 2, 3, 2)));
    __m512 s = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(ab, cd, _MM_SHUFFLE(3, 1, 3, 1)));
    s = _mm512_add_ps(s, _mm512_permute_ps(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm512_add_ps(s, _mm512_permute_ps(s, _MM_SHUFFLE(2, 3, 0, 1)));
    s = _mm512_permutexvar_ps(_mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0), s);
    return _mm512_castps512_ps128(s);
}

static inline void store_kc(float *dst, __m128 v, int64_t kc)
{
    float t[4];
    _mm_storeu_ps(t, v);
    memcpy(dst, t, (size_t)kc * sizeof(float));
}

/* Keys/values are rows of a [T, Hkv*Dh] matrix, so a head's consecutive rows are a page or
 * more apart in long KV caches and hardware prefetchers (which stay within a page) miss them:
 * fetch the row ATTN_PF rows ahead explicitly. */
#define ATTN_PF 64

/* always_inline: GCC treats a function holding only prefetches as const and drops its calls */
static inline __attribute__((always_inline)) void prefetch_row(const float *base, int64_t ld, int64_t j, int64_t n,
                                                               int64_t D)
{
    if (j < n) {
        const char *r = (const char *)(base + j * ld);
        for (int64_t d = 0; d < D; d += 16)
            _mm_prefetch(r + d * (int64_t)sizeof(float), _MM_HINT_T0);
    }
}

/* The four key rows j..j+3 (the last group repeats its last key; those results are dropped). */
static inline void key_group(const float *k, int64_t ldk, int64_t j, int64_t kc, const float *kp[4])
{
    for (int c = 0; c < 4; c++)
        kp[c] = k + (j + (c < kc ? c : kc - 1)) * ldk;
}

/* S_r[j] = q_r . k_j for r < nr (1..4), j < nk. Every score is the same computation whatever
 * nr is: 16 lane partial sums over d in order (fma), then hsum4. Four query rows share each
 * key load (rows beyond nr repeat row 0 and are not stored). */
static void qk_block(const float *const *qs, int nr, const float *k, int64_t ldk, int64_t nk, int64_t D,
                     float *const *Ss)
{
    const float *kp[4];
    if (nr == 1) {
        const float *q0 = qs[0];
        for (int64_t j = 0; j < nk; j += 4) {
            int64_t kc = nk - j < 4 ? nk - j : 4;
            key_group(k, ldk, j, kc, kp);
            for (int c = 0; c < 4; c++)
                prefetch_row(k, ldk, j + ATTN_PF + c, nk, D);
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int64_t d = 0; d < D; d += 16) {
                __mmask16 m = attn_mask(D - d);
                __m512 x = _mm512_maskz_loadu_ps(m, q0 + d);
                a0 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, kp[0] + d), a0);
                a1 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, kp[1] + d), a1);
                a2 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, kp[2] + d), a2);
                a3 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, kp[3] + d), a3);
            }
            store_kc(Ss[0] + j, hsum4(a0, a1, a2, a3), kc);
        }
        return;
    }
    const float *q0 = qs[0], *q1 = qs[1], *q2 = nr > 2 ? qs[2] : qs[0], *q3 = nr > 3 ? qs[3] : qs[0];
    for (int64_t j = 0; j < nk; j += 4) {
        int64_t kc = nk - j < 4 ? nk - j : 4;
        key_group(k, ldk, j, kc, kp);
        for (int c = 0; c < 4; c++)
            prefetch_row(k, ldk, j + ATTN_PF + c, nk, D);
        __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00;
        __m512 a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        for (int64_t d = 0; d < D; d += 16) {
            __mmask16 m = attn_mask(D - d);
            __m512 k0 = _mm512_maskz_loadu_ps(m, kp[0] + d), k1 = _mm512_maskz_loadu_ps(m, kp[1] + d);
            __m512 k2 = _mm512_maskz_loadu_ps(m, kp[2] + d), k3 = _mm512_maskz_loadu_ps(m, kp[3] + d);
            __m512 x = _mm512_maskz_loadu_ps(m, q0 + d);
            a00 = _mm512_fmadd_ps(x, k0, a00);
            a01 = _mm512_fmadd_ps(x, k1, a01);
            a02 = _mm512_fmadd_ps(x, k2, a02);
            a03 = _mm512_fmadd_ps(x, k3, a03);
            x = _mm512_maskz_loadu_ps(m, q1 + d);
            a10 = _mm512_fmadd_ps(x, k0, a10);
            a11 = _mm512_fmadd_ps(x, k1, a11);
            a12 = _mm512_fmadd_ps(x, k2, a12);
            a13 = _mm512_fmadd_ps(x, k3, a13);
            x = _mm512_maskz_loadu_ps(m, q2 + d);
            a20 = _mm512_fmadd_ps(x, k0, a20);
            a21 = _mm512_fmadd_ps(x, k1, a21);
            a22 = _mm512_fmadd_ps(x, k2, a22);
            a23 = _mm512_fmadd_ps(x, k3, a23);
            x = _mm512_maskz_loadu_ps(m, q3 + d);
            a30 = _mm512_fmadd_ps(x, k0, a30);
            a31 = _mm512_fmadd_ps(x, k1, a31);
            a32 = _mm512_fmadd_ps(x, k2, a32);
            a33 = _mm512_fmadd_ps(x, k3, a33);
        }
        store_kc(Ss[0] + j, hsum4(a00, a01, a02, a03), kc);
        store_kc(Ss[1] + j, hsum4(a10, a11, a12, a13), kc);
        if (nr > 2)
            store_kc(Ss[2] + j, hsum4(a20, a21, a22, a23), kc);
        if (nr > 3)
            store_kc(Ss[3] + j, hsum4(a30, a31, a32, a33), kc);
    }
}

/* Continue one row's 64-column accumulators c[0..3] over keys [j0, j1): c += p[j] v_j. */
static inline void pv_tail(__m512 *c, const float *p, int64_t j0, int64_t j1, const float *v, int64_t ldv,
                           int64_t d0, int64_t D, const __mmask16 *m)
{
    v += d0;
    __m512 c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];
    const float *vp = v + j0 * ldv;
    for (int64_t j = j0; j < j1; j++, vp += ldv) {
        if (d0 == 0)
            prefetch_row(v, ldv, j + ATTN_PF, j1, D);
        __m512 w = _mm512_set1_ps(p[j]);
        c0 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m[0], vp), c0);
        c1 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m[1], vp + 16), c1);
        c2 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m[2], vp + 32), c2);
        c3 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m[3], vp + 48), c3);
    }
    c[0] = c0, c[1] = c1, c[2] = c2, c[3] = c3;
}

/* o_r[d] = sum over j < nk_r, in order, of p_r[j] * v_j[d], for r < nr (1..4), 64 columns at a
 * time. Rows share the V loads over their common keys, then each finishes alone: the same
 * sequence of fma per output as a single row. */
static void pv_block(const float *const *ps, const int64_t *nks, int nr, const float *v, int64_t ldv, int64_t D,
                     float *const *os)
{
    int64_t nmin = nks[0];
    for (int r = 1; r < nr; r++)
        nmin = nks[r] < nmin ? nks[r] : nmin;
    for (int64_t d0 = 0; d0 < D; d0 += 64) {
        __mmask16 m[4];
        for (int c = 0; c < 4; c++)
            m[c] = D - d0 > 16 * c ? attn_mask(D - d0 - 16 * c) : 0;
        __m512 acc[4][4];
        const float *vd = v + d0;
        if (nr == 1) {
            for (int c = 0; c < 4; c++)
                acc[0][c] = _mm512_setzero_ps();
        } else {
            const float *p0 = ps[0], *p1 = ps[1], *p2 = nr > 2 ? ps[2] : ps[0], *p3 = nr > 3 ? ps[3] : ps[0];
            __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00;
            __m512 c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
            const float *vp = vd;
            for (int64_t j = 0; j < nmin; j++, vp += ldv) {
                if (d0 == 0)
                    prefetch_row(v, ldv, j + ATTN_PF, nmin, D);
                __m512 v0 = _mm512_maskz_loadu_ps(m[0], vp), v1 = _mm512_maskz_loadu_ps(m[1], vp + 16);
                __m512 v2 = _mm512_maskz_loadu_ps(m[2], vp + 32), v3 = _mm512_maskz_loadu_ps(m[3], vp + 48);
                __m512 w = _mm512_set1_ps(p0[j]);
                c00 = _mm512_fmadd_ps(w, v0, c00);
                c01 = _mm512_fmadd_ps(w, v1, c01);
                c02 = _mm512_fmadd_ps(w, v2, c02);
                c03 = _mm512_fmadd_ps(w, v3, c03);
                w = _mm512_set1_ps(p1[j]);
                c10 = _mm512_fmadd_ps(w, v0, c10);
                c11 = _mm512_fmadd_ps(w, v1, c11);
                c12 = _mm512_fmadd_ps(w, v2, c12);
                c13 = _mm512_fmadd_ps(w, v3, c13);
                w = _mm512_set1_ps(p2[j]);
                c20 = _mm512_fmadd_ps(w, v0, c20);
                c21 = _mm512_fmadd_ps(w, v1, c21);
                c22 = _mm512_fmadd_ps(w, v2, c22);
                c23 = _mm512_fmadd_ps(w, v3, c23);
                w = _mm512_set1_ps(p3[j]);
                c30 = _mm512_fmadd_ps(w, v0, c30);
                c31 = _mm512_fmadd_ps(w, v1, c31);
                c32 = _mm512_fmadd_ps(w, v2, c32);
                c33 = _mm512_fmadd_ps(w, v3, c33);
            }
            acc[0][0] = c00, acc[0][1] = c01, acc[0][2] = c02, acc[0][3] = c03;
            acc[1][0] = c10, acc[1][1] = c11, acc[1][2] = c12, acc[1][3] = c13;
            acc[2][0] = c20, acc[2][1] = c21, acc[2][2] = c22, acc[2][3] = c23;
            acc[3][0] = c30, acc[3][1] = c31, acc[3][2] = c32, acc[3][3] = c33;
        }
        for (int r = 0; r < nr; r++) {
            pv_tail(acc[r], ps[r], nr == 1 ? 0 : nmin, nks[r], v, ldv, d0, D, m);
            for (int c = 0; c < 4; c++)
                _mm512_mask_storeu_ps(os[r] + d0 + 16 * c, m[c], acc[r][c]);
        }
    }
}
#else
/* Portable: S_r[j] = q_r . k_j summed over d in order. */
static void qk_block(const float *const *qs, int nr, const float *k, int64_t ldk, int64_t nk, int64_t D,
                     float *const *Ss)
{
    for (int r = 0; r < nr; r++)
        for (int64_t j = 0; j < nk; j++) {
            const float *q = qs[r], *kj = k + j * ldk;
            float s = 0.0f;
            for (int64_t d = 0; d < D; d++)
                s = fmaf(q[d], kj[d], s);
            Ss[r][j] = s;
        }
}

/* Portable: o_r[d] = sum over j < nk_r, in order, of p_r[j] * v_j[d]. */
static void pv_block(const float *const *ps, const int64_t *nks, int nr, const float *v, int64_t ldv, int64_t D,
                     float *const *os)
{
    for (int r = 0; r < nr; r++) {
        float *o = os[r];
        for (int64_t d = 0; d < D; d++)
            o[d] = 0.0f;
        for (int64_t j = 0; j < nks[r]; j++)
            for (int64_t d = 0; d < D; d++)
                o[d] = fmaf(ps[r][j], v[j * ldv + d], o[d]);
    }
}
#endif

/* One unit: kv head g and virtual rows [v0, v0 + nr), virtual row v being query row
 * v / group of query head g * group + v % group (so the query heads sharing a kv head, e.g. the
 * GQA group at Tq = 1, are processed together and read K and V once). Scores go to S. */
static void attn_unit(const struct attn_job *J, int64_t g, int64_t v0, int nr, float *S)
{
    const int64_t D = J->D, Tk = J->Tk;
    const float *qs[ATTN_RB], *ps[ATTN_RB];
    float *Ss[ATTN_RB], *os[ATTN_RB];
    int64_t nks[ATTN_RB] = {0}, hs[ATTN_RB] = {0}, is[ATTN_RB] = {0}, nmax = 0;
    for (int r = 0; r < nr; r++) {
        int64_t v = v0 + r;
        is[r] = v / J->group;
        hs[r] = g * J->group + v % J->group;
        qs[r] = J->q + is[r] * J->ldq + hs[r] * D;
        os[r] = J->out + is[r] * J->ldo + hs[r] * D;
        Ss[r] = S + r * Tk;
        ps[r] = Ss[r];
        nks[r] = attn_keys(J, is[r]);
        nmax = nks[r] > nmax ? nks[r] : nmax;
    }
    qk_block(qs, nr, J->k + g * J->khs, J->ldk, nmax, D, Ss);
    for (int r = 0; r < nr; r++)
        attn_probs(J, hs[r], is[r], Ss[r], nks[r]);
    pv_block(ps, nks, nr, J->v + g * J->vhs, J->ldv, D, os);
}

/* Pool task of the row-wise kernel: this thread's share of the (kv head, row block) units. */
static void attn_rows_task(void *arg, int ith, int nth)
{
    const struct attn_job *J = arg;
    int64_t b, e;
    pool_split(J->p->n_head_kv * J->n_vblk, ith, nth, &b, &e);
    float *S = J->work + (size_t)ith * ATTN_RB * (size_t)J->Tk;
    for (int64_t u = b; u < e; u++) {
        int64_t g = u / J->n_vblk, v0 = (u % J->n_vblk) * ATTN_RB, left = J->Tq * J->group - v0;
        attn_unit(J, g, v0, left < ATTN_RB ? (int)left : ATTN_RB, S);
    }
}

/* ---- GEMM path ------------------------------------------------------------------------------- */

/* Softmax phase: rows (h, i) of S [H, Tq, Tk] (scale already applied by the GEMM) become
 * probabilities; entries beyond a row's causal window are zeroed. */
static void attn_softmax_task(void *arg, int ith, int nth)
{
    const struct attn_job *J = arg;
    int64_t b, e;
    pool_split(J->p->n_head * J->Tq, ith, nth, &b, &e);
    for (int64_t r = b; r < e; r++) {
        int64_t h = r / J->Tq, i = r % J->Tq;
        float *s = J->work + r * J->Tk;
        int64_t n = attn_keys(J, i);
        attn_probs(J, h, i, s, n);
        if (n < J->Tk)
            memset(s + n, 0, (size_t)(J->Tk - n) * sizeof *s);
    }
}

/* S_h = scale Q_h K_g^T for all heads, one pooled softmax over the H * Tq rows, then
 * O_h = P_h V_g: the BLAS threads and the pool take turns twice per call, not per head. */
static int attn_gemm(cochlea_ctx *ctx, struct attn_job *J)
{
    const int64_t D = J->D, Tq = J->Tq, Tk = J->Tk, H = J->p->n_head;
    const float scale = J->scale;
    J->scale = 1.0f; /* applied by the GEMM (alpha) */
    for (int64_t h = 0; h < H; h++) {
        int rc = gemm_f32(ctx, 0, 1, Tq, Tk, D, scale, J->q + h * D, J->ldq, J->k + h / J->group * J->khs, J->ldk, 0.0f,
                          J->work + h * Tq * Tk, Tk);
        if (rc)
            return err_prefix(rc, "attention head %lld: scores", (long long)h);
    }
    pool_run(ctx->pool, attn_softmax_task, J);
    for (int64_t h = 0; h < H; h++) {
        int rc = gemm_f32(ctx, 0, 0, Tq, D, Tk, 1.0f, J->work + h * Tq * Tk, Tk, J->v + h / J->group * J->vhs, J->ldv,
                          0.0f, J->out + h * D, J->ldo);
        if (rc)
            return err_prefix(rc, "attention head %lld: weighted values", (long long)h);
    }
    return COCHLEA_OK;
}

/* ---- entry point ------------------------------------------------------------------------------ */

/* Validate head layout, lengths, strides and masks; COCHLEA_OK or EINVAL/ERANGE with a message. */
static int attn_check(const ops_attn_params *p, const float *q, int64_t ldq, const float *k, int64_t ldk,
                      const float *v, int64_t ldv, int64_t Tq, int64_t Tk, const float *out, int64_t ldo)
{
    if (!p)
        return err_set(COCHLEA_EINVAL, "attention: NULL parameters");
    const int64_t H = p->n_head, Hkv = p->n_head_kv, D = p->head_dim;
    if (H < 1 || Hkv < 1 || D < 1 || H % Hkv != 0)
        return err_set(COCHLEA_EINVAL,
                       "attention: bad head layout n_head=%lld n_head_kv=%lld head_dim=%lld (need n_head a "
                       "multiple of n_head_kv, all >= 1)",
                       (long long)H, (long long)Hkv, (long long)D);
    if (H > INT32_MAX / D)
        return err_set(COCHLEA_ERANGE, "attention: n_head %lld x head_dim %lld is too large", (long long)H,
                       (long long)D);
    if (Tq < 0 || Tk < 0 || Tq > INT32_MAX || Tk > INT32_MAX)
        return err_set(COCHLEA_EINVAL, "attention: bad lengths Tq=%lld Tk=%lld", (long long)Tq, (long long)Tk);
    if (!isfinite(p->scale))
        return err_set(COCHLEA_EINVAL, "attention: scale %g is not finite", (double)p->scale);
    if (Tq == 0)
        return COCHLEA_OK;
    if (!q || !out || (Tk > 0 && (!k || !v)))
        return err_set(COCHLEA_EINVAL, "attention: NULL q, k, v or output");
    if (ldq < H * D || ldo < H * D)
        return err_set(COCHLEA_EINVAL, "attention: row strides ldq=%lld ldo=%lld are less than n_head*head_dim=%lld",
                       (long long)ldq, (long long)ldo, (long long)(H * D));
    if (p->k_head_stride < 0 || p->v_head_stride < 0)
        return err_set(COCHLEA_EINVAL, "attention: negative kv head stride (k %lld, v %lld)",
                       (long long)p->k_head_stride, (long long)p->v_head_stride);
    /* heads side by side in a row need the whole row; head-major layouts one head */
    int64_t kmin = p->k_head_stride ? D : Hkv * D, vmin = p->v_head_stride ? D : Hkv * D;
    if (Tk > 0 && (ldk < kmin || ldv < vmin))
        return err_set(COCHLEA_EINVAL, "attention: row strides ldk=%lld ldv=%lld are less than %lld and %lld",
                       (long long)ldk, (long long)ldv, (long long)kmin, (long long)vmin);
    if (p->mask && (p->mask_ld < 0 || (p->mask_ld > 0 && p->mask_ld < Tk) || p->mask_head_stride < 0))
        return err_set(COCHLEA_EINVAL, "attention: mask strides ld=%lld head=%lld do not fit Tk=%lld",
                       (long long)p->mask_ld, (long long)p->mask_head_stride, (long long)Tk);
    if (p->allowed && (p->allowed_ld < 0 || (p->allowed_ld > 0 && p->allowed_ld < Tk)))
        return err_set(COCHLEA_EINVAL, "attention: allowed-mask stride %lld does not fit Tk=%lld",
                       (long long)p->allowed_ld, (long long)Tk);
    return COCHLEA_OK;
}

int ops_attention(cochlea_ctx *ctx, const ops_attn_params *p, const float *q, int64_t ldq, const float *k,
                  int64_t ldk, const float *v, int64_t ldv, int64_t Tq, int64_t Tk, float *out, int64_t ldo)
{
    int rc = attn_check(p, q, ldq, k, ldk, v, ldv, Tq, Tk, out, ldo);
    if (rc || Tq == 0)
        return rc;
    const int64_t H = p->n_head, D = p->head_dim;
    if (Tk == 0) { /* no keys: every row is fully masked */
        for (int64_t i = 0; i < Tq; i++)
            memset(out + i * ldo, 0, (size_t)(H * D) * sizeof *out);
        return COCHLEA_OK;
    }
    size_t need = ops_attention_work_floats(ctx, p, Tq, Tk);
    if (need == 0)
        return err_set(COCHLEA_ERANGE, "attention: scratch size for Tq=%lld Tk=%lld overflows", (long long)Tq,
                       (long long)Tk);
    float *work = p->work, *owned = NULL;
    if (work && p->work_floats < need)
        return err_set(COCHLEA_EINVAL, "attention: scratch of %zu floats is less than the %zu needed", p->work_floats,
                       need);
    if (!work) {
        if (need > SIZE_MAX / sizeof(float) || !(owned = malloc(need * sizeof(float))))
            return err_set(COCHLEA_ENOMEM, "attention: cannot allocate %zu floats of scratch", need);
        work = owned;
    }
    struct attn_job J = {
        .p = p, .q = q, .k = k, .v = v, .out = out, .ldq = ldq, .ldk = ldk, .ldv = ldv, .ldo = ldo,
        .Tq = Tq, .Tk = Tk, .D = D, .group = H / p->n_head_kv,
        .khs = p->k_head_stride ? p->k_head_stride : D, .vhs = p->v_head_stride ? p->v_head_stride : D,
        .scale = p->scale != 0.0f ? p->scale : (float)(1.0 / sqrt((double)D)),
        .work = work, .n_vblk = (Tq * (H / p->n_head_kv) + ATTN_RB - 1) / ATTN_RB,
    };
    if (attn_use_gemm(ctx, p, Tq, Tk)) {
        rc = attn_gemm(ctx, &J);
    } else if (ctx && ctx->pool && attn_threads(ctx) > 1 && p->n_head_kv * J.n_vblk > 1) {
        pool_run(ctx->pool, attn_rows_task, &J);
    } else {
        attn_rows_task(&J, 0, 1);
    }
    free(owned);
    return rc;
}
