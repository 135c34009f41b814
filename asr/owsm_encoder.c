/* owsm_encoder.c - the OWSM-CTC forward pass (owsm-ctc.md §2-§4): conv2d8 subsampling, prefix
 * embeddings, E-Branchformer layers with cross-attention and self-conditioned inter-CTC, the
 * prompt encoder and the CTC head. */
#include "asr/owsm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "error.h"
#include "gemm.h"
#include "ops.h"

/* parts of the forward pass timed for the debug log */
enum { PROF_SUB, PROF_FFN, PROF_MHSA, PROF_CGMLP, PROF_MERGE, PROF_CROSS, PROF_INTER, PROF_HEAD, PROF_N };
static const char *const prof_names[PROF_N] = {"conv2d8", "ffn", "mhsa", "cgmlp", "merge", "cross", "interctc",
                                               "head"};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

struct owsm_work {
    int max_batch;
    int64_t T, M;
    float *pe;                    /* [T, d] sinusoidal positions */
    float *x, *h, *q, *k, *v, *a; /* [M, d] */
    float *big;                   /* [M, max(ffn, cgmlp_units)] */
    float *g;                     /* [M, cgmlp_units / 2] */
    float *xc, *xc2;              /* [M, 2d] */
    float *logits;                /* [T, vocab] (inter-CTC and final head, one window at a time) */
    float *y0, *y1, *y2;          /* conv2d8 outputs of one window, channels-last */
    float *flat;                  /* conv2d8 im2col block (col_floats floats) */
    int64_t col_floats;
    int64_t H1, W1, H2, W2, H3, W3;
    double prof[PROF_N]; /* seconds per part of the last owsm_encode (logged at debug level) */
};

static void *alloc_floats(size_t a, size_t b, int *rc)
{
    size_t n;
    if (*rc)
        return NULL;
    if (size_mul(a, b, &n) || size_mul(n, sizeof(float), &n)) {
        *rc = err_set(COCHLEA_ERANGE, "OWSM-CTC scratch size overflows");
        return NULL;
    }
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64)) {
        *rc = err_set(COCHLEA_ENOMEM, "OWSM-CTC: cannot allocate %zu bytes of scratch", n);
        return NULL;
    }
    return p;
}

int owsm_work_create(const owsm_model *m, int max_batch, owsm_work **out)
{
    *out = NULL;
    if (max_batch < 1)
        return err_set(COCHLEA_EINVAL, "OWSM-CTC: batch size %d must be at least 1", max_batch);
    const owsm_hparams *h = &m->hp;
    owsm_work *w = calloc(1, sizeof *w);
    if (!w)
        return err_set(COCHLEA_ENOMEM, "out of memory");
    int rc = 0;
    w->max_batch = max_batch;
    w->T = h->positions;
    w->M = w->T * max_batch;
    size_t M = (size_t)w->M, d = (size_t)h->d;
    size_t wide = (size_t)(h->ffn > h->cgmlp_units ? h->ffn : h->cgmlp_units);
    w->pe = alloc_floats((size_t)w->T, d, &rc);
    w->x = alloc_floats(M, d, &rc);
    w->h = alloc_floats(M, d, &rc);
    w->q = alloc_floats(M, d, &rc);
    w->k = alloc_floats(M, d, &rc);
    w->v = alloc_floats(M, d, &rc);
    w->a = alloc_floats(M, d, &rc);
    w->big = alloc_floats(M, wide, &rc);
    w->g = alloc_floats(M, (size_t)h->cgmlp_units / 2, &rc);
    w->xc = alloc_floats(M, 2 * d, &rc);
    w->xc2 = alloc_floats(M, 2 * d, &rc);
    w->logits = alloc_floats((size_t)w->T, (size_t)h->vocab, &rc);
    w->H1 = (h->window_frames - 1) / 2, w->W1 = (h->n_mels - 1) / 2;
    w->H2 = (w->H1 - 1) / 2, w->W2 = (w->W1 - 1) / 2;
    w->H3 = (w->H2 - 1) / 2, w->W3 = (w->W2 - 1) / 2;
    w->y0 = alloc_floats(d, (size_t)(w->H1 * w->W1), &rc);
    w->y1 = alloc_floats(d, (size_t)(w->H2 * w->W2), &rc);
    w->y2 = alloc_floats(d, (size_t)(w->H3 * w->W3), &rc);
    /* im2col blocks of about 16 MiB, at least 64 rows of the widest kernel (9 d) */
    w->col_floats = (int64_t)4 << 20;
    if (w->col_floats < 64 * 9 * (int64_t)d)
        w->col_floats = 64 * 9 * (int64_t)d;
    w->flat = alloc_floats((size_t)w->col_floats, 1, &rc);
    if (!rc)
        rc = ops_sinusoidal_pe(NULL, w->pe, w->T, h->d, 0, 1);
    if (rc) {
        owsm_work_free(w);
        return rc;
    }
    *out = w;
    return COCHLEA_OK;
}

void owsm_work_free(owsm_work *w)
{
    if (!w)
        return;
    float *bufs[] = {w->pe, w->x, w->h, w->q, w->k, w->v, w->a, w->big, w->g, w->xc, w->xc2, w->logits,
                     w->y0, w->y1, w->y2, w->flat};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    free(w);
}

/* ---- depthwise Conv1d over time in the time-major layout ---------------------------------- */

enum { DW_MUL = 0, DW_ADD = 1 };

struct dw_args {
    const owsm_dwconv *c;
    const float *x;   /* [T, C], row stride ldx */
    int64_t ldx, T;
    const float *aux; /* DW_MUL: multiplier rows (stride ldaux); DW_ADD: unused (adds x) */
    int64_t ldaux;
    float *y;         /* [T, C], row stride ldy */
    int64_t ldy;
    int mode;
};

/* owsm-ctc.md §3 steps 2.4 and 3: z[t,c] = b[c] + sum_k w[c,k] x[t+k-P, c] (zero padding,
 * P = (K-1)/2); DW_MUL writes y = aux ⊙ z (CSGU gate), DW_ADD writes y = x + z (merge). */
static void dw_task(void *arg, int ith, int nth)
{
    const struct dw_args *a = arg;
    const owsm_dwconv *c = a->c;
    const int64_t C = c->C, K = c->K, P = (K - 1) / 2;
    int64_t t0, t1;
    pool_split(a->T, ith, nth, &t0, &t1);
    enum { CB = 64 };
    for (int64_t t = t0; t < t1; t++) {
        /* taps whose input row exists */
        const int64_t k0 = t - P < 0 ? P - t : 0, k1 = t - P + K > a->T ? a->T - t + P : K;
        float *yr = a->y + t * a->ldy;
        int64_t c0 = 0;
#ifdef __AVX512F__
        for (; c0 + CB <= C; c0 += CB) {
            __m512 s0 = _mm512_loadu_ps(c->b + c0), s1 = _mm512_loadu_ps(c->b + c0 + 16);
            __m512 s2 = _mm512_loadu_ps(c->b + c0 + 32), s3 = _mm512_loadu_ps(c->b + c0 + 48);
            for (int64_t k = k0; k < k1; k++) {
                const float *xr = a->x + (t - P + k) * a->ldx + c0, *wr = c->wt + k * C + c0;
                s0 = _mm512_fmadd_ps(_mm512_loadu_ps(wr), _mm512_loadu_ps(xr), s0);
                s1 = _mm512_fmadd_ps(_mm512_loadu_ps(wr + 16), _mm512_loadu_ps(xr + 16), s1);
                s2 = _mm512_fmadd_ps(_mm512_loadu_ps(wr + 32), _mm512_loadu_ps(xr + 32), s2);
                s3 = _mm512_fmadd_ps(_mm512_loadu_ps(wr + 48), _mm512_loadu_ps(xr + 48), s3);
            }
            const float *ar = a->mode == DW_MUL ? a->aux + t * a->ldaux + c0 : a->x + t * a->ldx + c0;
            if (a->mode == DW_MUL) {
                s0 = _mm512_mul_ps(s0, _mm512_loadu_ps(ar));
                s1 = _mm512_mul_ps(s1, _mm512_loadu_ps(ar + 16));
                s2 = _mm512_mul_ps(s2, _mm512_loadu_ps(ar + 32));
                s3 = _mm512_mul_ps(s3, _mm512_loadu_ps(ar + 48));
            } else {
                s0 = _mm512_add_ps(s0, _mm512_loadu_ps(ar));
                s1 = _mm512_add_ps(s1, _mm512_loadu_ps(ar + 16));
                s2 = _mm512_add_ps(s2, _mm512_loadu_ps(ar + 32));
                s3 = _mm512_add_ps(s3, _mm512_loadu_ps(ar + 48));
            }
            _mm512_storeu_ps(yr + c0, s0);
            _mm512_storeu_ps(yr + c0 + 16, s1);
            _mm512_storeu_ps(yr + c0 + 32, s2);
            _mm512_storeu_ps(yr + c0 + 48, s3);
        }
#endif
        for (; c0 < C; c0 += CB) {
            const int64_t cn = C - c0 < CB ? C - c0 : CB;
            float acc[CB];
            for (int64_t i = 0; i < cn; i++)
                acc[i] = c->b[c0 + i];
            for (int64_t k = k0; k < k1; k++) {
                const float *xr = a->x + (t - P + k) * a->ldx + c0, *wr = c->wt + k * C + c0;
                for (int64_t i = 0; i < cn; i++)
                    acc[i] += wr[i] * xr[i];
            }
            if (a->mode == DW_MUL) {
                const float *mr = a->aux + t * a->ldaux + c0;
                for (int64_t i = 0; i < cn; i++)
                    yr[c0 + i] = mr[i] * acc[i];
            } else {
                const float *xr = a->x + t * a->ldx + c0;
                for (int64_t i = 0; i < cn; i++)
                    yr[c0 + i] = xr[i] + acc[i];
            }
        }
    }
}

static void dwconv_run(cochlea_ctx *ctx, const owsm_dwconv *c, const float *x, int64_t ldx, int64_t T,
                       const float *aux, int64_t ldaux, float *y, int64_t ldy, int mode)
{
    struct dw_args a = {c, x, ldx, T, aux, ldaux, y, ldy, mode};
    pool_run(ctx->pool, dw_task, &a);
}

/* ---- building blocks ------------------------------------------------------------------------ */

static int lin(cochlea_ctx *ctx, const float *x, int64_t M, int64_t ldx, const owsm_linear *l, float beta, float *y,
               int64_t ldy)
{
    return gemm_linear(ctx, x, M, ldx, l->w, l->b, beta, y, ldy);
}

/* x <- x + scale * W2 act(W1 LN(x) + b1) + ... (owsm-ctc.md §3 steps 1 and 4; prompt FFN) */
static int ffn(cochlea_ctx *ctx, const owsm_hparams *hp, int64_t dm, int64_t units, const owsm_norm *n,
               const owsm_linear *w1, const owsm_linear *w2, float scale, int relu, float *x, float *h, float *big,
               int64_t M)
{
    int rc;
    ops_layer_norm(ctx, x, dm, h, dm, M, dm, n->g, n->b, hp->ln_eps);
    if ((rc = lin(ctx, h, M, dm, w1, 0.0f, big, units)))
        return rc;
    if (relu)
        ops_relu(ctx, big, big, M * units);
    else
        ops_silu(ctx, big, big, M * units);
    if (scale == 1.0f)
        return lin(ctx, big, M, units, w2, 1.0f, x, dm);
    if ((rc = lin(ctx, big, M, units, w2, 0.0f, h, dm)))
        return rc;
    ops_add_scaled(ctx, x, h, scale, x, M * dm);
    return COCHLEA_OK;
}

/* ---- prompt encoder and per-request conditioning (owsm-ctc.md §4.3, §4.4) ------------------ */

int owsm_prompt_memory(cochlea_ctx *ctx, const owsm_model *m, const int32_t *ids, int64_t n, float *out)
{
    const owsm_hparams *hp = &m->hp;
    const int64_t pd = hp->p_d;
    if (n < 1)
        return err_set(COCHLEA_EINVAL, "OWSM-CTC: empty prompt");
    int rc = 0;
    float *x = alloc_floats((size_t)n, (size_t)pd, &rc), *h = alloc_floats((size_t)n, (size_t)pd, &rc);
    float *q = alloc_floats((size_t)n, (size_t)pd, &rc), *k = alloc_floats((size_t)n, (size_t)pd, &rc);
    float *v = alloc_floats((size_t)n, (size_t)pd, &rc), *att = alloc_floats((size_t)n, (size_t)pd, &rc);
    float *big = alloc_floats((size_t)n, (size_t)hp->p_ffn, &rc), *pe = alloc_floats((size_t)n, (size_t)pd, &rc);
    if (!rc)
        rc = ops_embedding(ctx, m->embed, ids, n, x);
    if (!rc)
        rc = ops_sinusoidal_pe(ctx, pe, n, pd, 0, 1);
    if (!rc) {
        /* e * sqrt(p_d) + PE, once (the prompt Transformer adds none itself) */
        const float xs = (float)sqrt((double)pd);
        for (int64_t i = 0; i < n * pd; i++)
            x[i] = x[i] * xs + pe[i];
    }
    ops_attn_params ap = ops_attn_default_params(hp->p_head, hp->p_head, pd / hp->p_head);
    for (int64_t l = 0; !rc && l < hp->p_layer; l++) {
        const owsm_prompt_layer *L = &m->p_layers[l];
        ops_layer_norm(ctx, x, pd, h, pd, n, pd, L->norm1.g, L->norm1.b, hp->ln_eps);
        if ((rc = lin(ctx, h, n, pd, &L->attn.q, 0, q, pd)) || (rc = lin(ctx, h, n, pd, &L->attn.k, 0, k, pd)) ||
            (rc = lin(ctx, h, n, pd, &L->attn.v, 0, v, pd)) ||
            (rc = ops_attention(ctx, &ap, q, pd, k, pd, v, pd, n, n, att, pd)) ||
            (rc = lin(ctx, att, n, pd, &L->attn.o, 1.0f, x, pd)))
            break;
        rc = ffn(ctx, hp, pd, hp->p_ffn, &L->norm2, &L->w1, &L->w2, 1.0f, 1, x, h, big, n);
    }
    if (!rc) {
        ops_layer_norm(ctx, x, pd, h, pd, n, pd, m->p_after_norm.g, m->p_after_norm.b, hp->ln_eps);
        if (m->prompt_proj.w)
            rc = lin(ctx, h, n, pd, &m->prompt_proj, 0, out, hp->d);
        else
            memcpy(out, h, (size_t)(n * pd) * sizeof *out);
    }
    free(x), free(h), free(q), free(k), free(v), free(att), free(big), free(pe);
    return rc;
}

void owsm_cond_free(const owsm_model *m, owsm_cond *c)
{
    if (!c)
        return;
    free(c->prefix_embeds);
    for (int64_t l = 0; l < m->hp.n_layer; l++) {
        if (c->mem_k)
            free(c->mem_k[l]);
        if (c->mem_v)
            free(c->mem_v[l]);
        if (c->mem_const)
            free(c->mem_const[l]);
    }
    free(c->mem_k);
    free(c->mem_v);
    free(c->mem_const);
    memset(c, 0, sizeof *c);
}

int owsm_cond_build(cochlea_ctx *ctx, const owsm_model *m, int32_t lang, int32_t task, const int32_t *prompt,
                    int64_t n_prompt, owsm_cond *c)
{
    const owsm_hparams *hp = &m->hp;
    const int64_t d = hp->d;
    memset(c, 0, sizeof *c);
    int rc = 0;
    c->n_mem = n_prompt;
    c->prefix_embeds = alloc_floats(2, (size_t)d, &rc);
    float *pre = alloc_floats(2, (size_t)hp->p_d, &rc);
    float *mem = alloc_floats((size_t)(n_prompt > 0 ? n_prompt : 1), (size_t)d, &rc);
    c->mem_k = calloc((size_t)hp->n_layer, sizeof *c->mem_k);
    c->mem_v = calloc((size_t)hp->n_layer, sizeof *c->mem_v);
    c->mem_const = calloc((size_t)hp->n_layer, sizeof *c->mem_const);
    if (!rc && (!c->mem_k || !c->mem_v || !c->mem_const))
        rc = err_set(COCHLEA_ENOMEM, "out of memory");
    const int32_t prefix[2] = {lang, task};
    if (!rc)
        rc = ops_embedding(ctx, m->embed, prefix, 2, pre);
    if (!rc) {
        if (m->embed_proj.w)
            rc = lin(ctx, pre, 2, hp->p_d, &m->embed_proj, 0, c->prefix_embeds, d);
        else
            memcpy(c->prefix_embeds, pre, (size_t)(2 * d) * sizeof(float));
    }
    if (!rc)
        rc = owsm_prompt_memory(ctx, m, prompt, n_prompt, mem);
    for (int64_t l = 0; !rc && l < hp->n_layer; l++) {
        const owsm_layer *L = &m->layers[l];
        if (!L->has_cross)
            continue;
        if (n_prompt == 1) {
            /* one key: softmax weight 1, so the layer adds linear_out(linear_v(memory)) to every frame */
            float *v = alloc_floats(1, (size_t)d, &rc);
            c->mem_const[l] = alloc_floats(1, (size_t)d, &rc);
            if (!rc)
                rc = lin(ctx, mem, 1, d, &L->cross_attn.v, 0, v, d);
            if (!rc)
                rc = lin(ctx, v, 1, d, &L->cross_attn.o, 0, c->mem_const[l], d);
            free(v);
        } else {
            c->mem_k[l] = alloc_floats((size_t)n_prompt, (size_t)d, &rc);
            c->mem_v[l] = alloc_floats((size_t)n_prompt, (size_t)d, &rc);
            if (!rc)
                rc = lin(ctx, mem, n_prompt, d, &L->cross_attn.k, 0, c->mem_k[l], d);
            if (!rc)
                rc = lin(ctx, mem, n_prompt, d, &L->cross_attn.v, 0, c->mem_v[l], d);
        }
    }
    free(pre);
    free(mem);
    if (rc)
        owsm_cond_free(m, c);
    return rc;
}

/* ---- conv2d8 subsampling (owsm-ctc.md §2), channels-last ---------------------------------- */

/* im2col rows of a 3x3 stride-2 unpadded conv on x [H][W][C]: row r = output (i, j) holds the
 * taps (a, b) in order, each C channels: x[(2i+a)*W + 2j + b][0..C), i.e. for each kernel row a
 * one run of 3*C contiguous floats. */
struct im2col_args {
    const float *x;
    int64_t W, C, W_out, r0, rows;
    float *col;
};

static void im2col_task(void *arg, int ith, int nth)
{
    const struct im2col_args *a = arg;
    int64_t b, e;
    pool_split(a->rows, ith, nth, &b, &e);
    const int64_t C3 = 3 * a->C;
    for (int64_t r = b; r < e; r++) {
        const int64_t m = a->r0 + r, i = m / a->W_out, j = m % a->W_out;
        float *dst = a->col + r * 3 * C3;
        for (int64_t k = 0; k < 3; k++)
            memcpy(dst + k * C3, a->x + ((2 * i + k) * a->W + 2 * j) * a->C, (size_t)C3 * sizeof(float));
    }
}

/* y [H_out][W_out][d] = ReLU(conv(x [H][W][C])) with the channels-last weight wcl */
static int conv_cl(cochlea_ctx *ctx, const tensor *wcl, const float *bias, const float *x, int64_t H, int64_t W,
                   int64_t C, float *y, float *col, int64_t col_floats)
{
    const int64_t H_out = (H - 1) / 2, W_out = (W - 1) / 2, M = H_out * W_out, K = 9 * C, N = wcl->ne[1];
    int64_t Mb = col_floats / K;
    if (Mb > M)
        Mb = M;
    int rc = 0;
    for (int64_t r0 = 0; r0 < M && !rc; r0 += Mb) {
        const int64_t rows = M - r0 < Mb ? M - r0 : Mb;
        struct im2col_args a = {x, W, C, W_out, r0, rows, col};
        pool_run(ctx->pool, im2col_task, &a);
        rc = gemm_linear(ctx, col, rows, K, wcl, bias, 0.0f, y + r0 * N, N);
        if (!rc)
            ops_relu(ctx, y + r0 * N, y + r0 * N, rows * N);
    }
    return rc;
}

static int subsample(cochlea_ctx *ctx, const owsm_model *m, owsm_work *w, const float *feats, float *out, int64_t ldo)
{
    const owsm_hparams *hp = &m->hp;
    const int64_t d = hp->d;
    int rc;
    if ((rc = conv_cl(ctx, &m->conv_cl[0], m->conv_b[0], feats, hp->window_frames, hp->n_mels, 1, w->y0, w->flat,
                      w->col_floats)) ||
        (rc = conv_cl(ctx, &m->conv_cl[1], m->conv_b[1], w->y0, w->H1, w->W1, d, w->y1, w->flat, w->col_floats)) ||
        (rc = conv_cl(ctx, &m->conv_cl[2], m->conv_b[2], w->y1, w->H2, w->W2, d, w->y2, w->flat, w->col_floats)))
        return rc;
    /* y2 [T'][F'][d] rows are the flattened frames in the (f, c) order of embed_out_cl */
    return lin(ctx, w->y2, w->H3, d * w->W3, &m->embed_out_cl, 0, out, ldo);
}

/* ---- CTC head over T rows ------------------------------------------------------------------- */

struct argmax_args {
    const float *lg;
    int64_t rows, V;
    int32_t *out;
};

static void argmax_task(void *arg, int ith, int nth)
{
    const struct argmax_args *a = arg;
    int64_t r0, r1;
    pool_split(a->rows, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        const float *row = a->lg + r * a->V;
        int64_t best = 0;
        float bv = row[0];
        for (int64_t j = 1; j < a->V; j++)
            if (row[j] > bv) { /* first maximum, as torch.argmax */
                bv = row[j];
                best = j;
            }
        a->out[r] = (int32_t)best;
    }
}

/* ---- the encoder -------------------------------------------------------------------------- */

static int layer_forward(cochlea_ctx *ctx, const owsm_model *m, owsm_work *w, const owsm_layer *L, int64_t li, int B,
                         const owsm_cond *const *conds)
{
    const owsm_hparams *hp = &m->hp;
    const int64_t d = hp->d, T = w->T, M = T * B, U = hp->cgmlp_units, half = U / 2;
    float *x = w->x, *h = w->h;
    int rc;
    double t = now_s(), t2;
#define LAP(part) (t2 = now_s(), w->prof[part] += t2 - t, t = t2)
    /* 1. macaron FFN half step */
    if ((rc = ffn(ctx, hp, d, hp->ffn, &L->norm_ff_macaron, &L->ffm_w1, &L->ffm_w2, hp->ffn_scale, 0, x, h, w->big,
                  M)))
        return rc;
    LAP(PROF_FFN);
    /* 2a. MHSA -> xc[:, 0:d] */
    ops_layer_norm(ctx, x, d, h, d, M, d, L->norm_mha.g, L->norm_mha.b, hp->ln_eps);
    if ((rc = lin(ctx, h, M, d, &L->attn.q, 0, w->q, d)) || (rc = lin(ctx, h, M, d, &L->attn.k, 0, w->k, d)) ||
        (rc = lin(ctx, h, M, d, &L->attn.v, 0, w->v, d)))
        return rc;
    ops_attn_params ap = ops_attn_default_params(hp->n_head, hp->n_head, d / hp->n_head);
    for (int b = 0; b < B; b++) {
        const int64_t o = (int64_t)b * T * d;
        if ((rc = ops_attention(ctx, &ap, w->q + o, d, w->k + o, d, w->v + o, d, T, T, w->a + o, d)))
            return rc;
    }
    if ((rc = lin(ctx, w->a, M, d, &L->attn.o, 0, w->xc, 2 * d)))
        return rc;
    LAP(PROF_MHSA);
    /* 2b. cgMLP -> xc[:, d:2d] */
    ops_layer_norm(ctx, x, d, h, d, M, d, L->norm_mlp.g, L->norm_mlp.b, hp->ln_eps);
    if ((rc = lin(ctx, h, M, d, &L->cgmlp_proj1, 0, w->big, U)))
        return rc;
    ops_gelu(ctx, w->big, w->big, M * U);
    ops_layer_norm(ctx, w->big + half, U, w->big + half, U, M, half, L->csgu_norm.g, L->csgu_norm.b, hp->ln_eps);
    for (int b = 0; b < B; b++) {
        const int64_t r = (int64_t)b * T;
        dwconv_run(ctx, &L->csgu_conv, w->big + r * U + half, U, T, w->big + r * U, U, w->g + r * half, half,
                   DW_MUL);
    }
    if ((rc = lin(ctx, w->g, M, half, &L->cgmlp_proj2, 0, w->xc + d, 2 * d)))
        return rc;
    LAP(PROF_CGMLP);
    /* 3. merge: x += merge_proj(xc + dwconv(xc)) */
    for (int b = 0; b < B; b++) {
        const int64_t r = (int64_t)b * T * 2 * d;
        dwconv_run(ctx, &L->fusion_conv, w->xc + r, 2 * d, T, NULL, 0, w->xc2 + r, 2 * d, DW_ADD);
    }
    if ((rc = lin(ctx, w->xc2, M, 2 * d, &L->merge_proj, 1.0f, x, d)))
        return rc;
    LAP(PROF_MERGE);
    /* 4. second FFN half step */
    if ((rc = ffn(ctx, hp, d, hp->ffn, &L->norm_ff, &L->ff_w1, &L->ff_w2, hp->ffn_scale, 0, x, h, w->big, M)))
        return rc;
    LAP(PROF_FFN);
    /* 5. cross-attention to the prompt memory */
    if (L->has_cross) {
        int need_ln = 0;
        for (int b = 0; b < B; b++)
            need_ln |= conds[b]->n_mem != 1;
        if (need_ln)
            ops_layer_norm(ctx, x, d, h, d, M, d, L->norm_cross_attn.g, L->norm_cross_attn.b, hp->ln_eps);
        for (int b = 0; b < B; b++) {
            const owsm_cond *c = conds[b];
            float *xb = x + (int64_t)b * T * d;
            if (c->n_mem == 1) {
                ops_add_row(ctx, xb, c->mem_const[li], xb, T, d);
                continue;
            }
            const float *hb = h + (int64_t)b * T * d;
            if ((rc = lin(ctx, hb, T, d, &L->cross_attn.q, 0, w->q, d)) ||
                (rc = ops_attention(ctx, &ap, w->q, d, c->mem_k[li], d, c->mem_v[li], d, T, c->n_mem, w->a, d)) ||
                (rc = lin(ctx, w->a, T, d, &L->cross_attn.o, 1.0f, xb, d)))
                return rc;
        }
    }
    /* 6. final norm */
    ops_layer_norm(ctx, x, d, x, d, M, d, L->norm_final.g, L->norm_final.b, hp->ln_eps);
    LAP(PROF_CROSS);
    /* self-conditioning (§4.2): x += conditioning_layer(softmax(ctc_lo(x))) */
    if (L->interctc && hp->conditioning) {
        for (int b = 0; b < B; b++) {
            float *xb = x + (int64_t)b * T * d;
            if ((rc = lin(ctx, xb, T, d, &m->ctc_lo, 0, w->logits, hp->vocab)))
                return rc;
            ops_softmax(ctx, w->logits, hp->vocab, w->logits, hp->vocab, T, hp->vocab, NULL, 0);
            if ((rc = lin(ctx, w->logits, T, hp->vocab, &m->conditioning, 1.0f, xb, d)))
                return rc;
        }
        LAP(PROF_INTER);
    }
#undef LAP
    return COCHLEA_OK;
}

int owsm_encode(cochlea_ctx *ctx, const owsm_model *m, owsm_work *w, const float *const *feats, int B,
                const owsm_cond *const *conds, float *enc_out, float *logits, int32_t *argmax, float *argmax_prob)
{
    const owsm_hparams *hp = &m->hp;
    const int64_t d = hp->d, T = w->T, V = hp->vocab;
    if (B < 1 || B > w->max_batch)
        return err_set(COCHLEA_EINVAL, "OWSM-CTC: batch of %d windows (this context holds 1 to %d)", B,
                       w->max_batch);
    int rc;
    memset(w->prof, 0, sizeof w->prof);
    double t0 = now_s();
    /* input layer: [prefix(2); subsample(feats)] * sqrt(d) + PE */
    const float xs = (float)sqrt((double)d);
    for (int b = 0; b < B; b++) {
        float *xb = w->x + (int64_t)b * T * d;
        memcpy(xb, conds[b]->prefix_embeds, (size_t)(2 * d) * sizeof(float));
        if ((rc = subsample(ctx, m, w, feats[b], xb + 2 * d, d)))
            return rc;
        for (int64_t i = 0; i < T * d; i++)
            xb[i] = xb[i] * xs + w->pe[i];
    }
    w->prof[PROF_SUB] = now_s() - t0;
    for (int64_t l = 0; l < hp->n_layer; l++)
        if ((rc = layer_forward(ctx, m, w, &m->layers[l], l, B, conds)))
            return rc;
    double th = now_s();
    const int64_t M = T * B;
    float *enc = enc_out ? enc_out : w->h;
    ops_layer_norm(ctx, w->x, d, enc, d, M, d, m->after_norm.g, m->after_norm.b, hp->ln_eps);
    for (int b = 0; (logits || argmax) && b < B; b++) {
        float *lg = logits ? logits + (int64_t)b * T * V : w->logits;
        if ((rc = lin(ctx, enc + (int64_t)b * T * d, T, d, &m->ctc_lo, 0, lg, V)))
            return rc;
        if (argmax) {
            struct argmax_args a = {lg, T, V, argmax + (int64_t)b * T};
            pool_run(ctx->pool, argmax_task, &a);
            if (argmax_prob && !logits) { /* the scratch logits may be overwritten */
                ops_softmax(ctx, lg, V, lg, V, T, V, NULL, 0);
                for (int64_t t = 0; t < T; t++)
                    argmax_prob[(int64_t)b * T + t] = lg[t * V + argmax[(int64_t)b * T + t]];
            }
        }
    }
    w->prof[PROF_HEAD] = now_s() - th;
    if (log_enabled(COCHLEA_LOG_DEBUG)) {
        char line[512];
        size_t o = 0;
        double total = now_s() - t0;
        for (int i = 0; i < PROF_N; i++)
            o += (size_t)snprintf(line + o, sizeof line - o, " %s %.3f", prof_names[i], w->prof[i]);
        LOG_DEBUG("owsm_ctc: %d window(s) in %.3f s:%s", B, total, line);
    }
    return COCHLEA_OK;
}
