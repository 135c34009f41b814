/* owsm_encoder.c - the OWSM-CTC forward pass (owsm-ctc.md §2-§4): conv2d8 subsampling, prefix
 * embeddings, E-Branchformer layers with cross-attention and self-conditioned inter-CTC, the
 * prompt encoder and the CTC head. */
#include "asr/owsm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gemm.h"
#include "ops.h"

struct owsm_work {
    int max_batch;
    int64_t T, M;
    float *pe;                    /* [T, d] sinusoidal positions */
    float *x, *h, *q, *k, *v, *a; /* [M, d] */
    float *big;                   /* [M, max(ffn, cgmlp_units)] */
    float *g;                     /* [M, cgmlp_units / 2] */
    float *xc, *xc2;              /* [M, 2d] */
    float *logits;                /* [T, vocab] (inter-CTC and final head, one window at a time) */
    float *y0, *y1, *y2, *flat;   /* conv2d8 scratch for one window */
    int64_t H1, W1, H2, W2, H3, W3;
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
    w->flat = alloc_floats((size_t)w->H3, d * (size_t)w->W3, &rc);
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
    enum { CB = 256 };
    float acc[CB];
    for (int64_t t = t0; t < t1; t++) {
        for (int64_t c0 = 0; c0 < C; c0 += CB) {
            const int64_t cn = C - c0 < CB ? C - c0 : CB;
            for (int64_t i = 0; i < cn; i++)
                acc[i] = c->b[c0 + i];
            for (int64_t k = 0; k < K; k++) {
                const int64_t tt = t + k - P;
                if (tt < 0 || tt >= a->T)
                    continue;
                const float *xr = a->x + tt * a->ldx + c0, *wr = c->wt + k * C + c0;
                for (int64_t i = 0; i < cn; i++)
                    acc[i] += wr[i] * xr[i];
            }
            float *yr = a->y + t * a->ldy + c0;
            if (a->mode == DW_MUL) {
                const float *mr = a->aux + t * a->ldaux + c0;
                for (int64_t i = 0; i < cn; i++)
                    yr[i] = mr[i] * acc[i];
            } else {
                const float *xr = a->x + t * a->ldx + c0;
                for (int64_t i = 0; i < cn; i++)
                    yr[i] = xr[i] + acc[i];
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

/* ---- conv2d8 subsampling (owsm-ctc.md §2) -------------------------------------------------- */

static int subsample(cochlea_ctx *ctx, const owsm_model *m, owsm_work *w, const float *feats, float *out, int64_t ldo)
{
    const owsm_hparams *hp = &m->hp;
    const int64_t d = hp->d;
    ops_conv2d_params p = ops_conv2d_default_params();
    p.stride_h = p.stride_w = 2;
    int rc;
    if ((rc = ops_conv2d(ctx, feats, 1, hp->window_frames, hp->n_mels, m->conv_w[0], m->conv_b[0], &p, w->y0, w->H1,
                         w->W1)))
        return rc;
    ops_relu(ctx, w->y0, w->y0, d * w->H1 * w->W1);
    if ((rc = ops_conv2d(ctx, w->y0, d, w->H1, w->W1, m->conv_w[1], m->conv_b[1], &p, w->y1, w->H2, w->W2)))
        return rc;
    ops_relu(ctx, w->y1, w->y1, d * w->H2 * w->W2);
    if ((rc = ops_conv2d(ctx, w->y1, d, w->H2, w->W2, m->conv_w[2], m->conv_b[2], &p, w->y2, w->H3, w->W3)))
        return rc;
    ops_relu(ctx, w->y2, w->y2, d * w->H3 * w->W3);
    /* (C, T', F') -> (T', C*F'), channel-major flatten (§8 item 11) */
    const int64_t T3 = w->H3, F3 = w->W3;
    for (int64_t t = 0; t < T3; t++)
        for (int64_t c = 0; c < d; c++)
            memcpy(w->flat + (t * d + c) * F3, w->y2 + (c * T3 + t) * F3, (size_t)F3 * sizeof(float));
    return lin(ctx, w->flat, T3, d * F3, &m->embed_out, 0, out, ldo);
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
    /* 1. macaron FFN half step */
    if ((rc = ffn(ctx, hp, d, hp->ffn, &L->norm_ff_macaron, &L->ffm_w1, &L->ffm_w2, hp->ffn_scale, 0, x, h, w->big,
                  M)))
        return rc;
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
    /* 3. merge: x += merge_proj(xc + dwconv(xc)) */
    for (int b = 0; b < B; b++) {
        const int64_t r = (int64_t)b * T * 2 * d;
        dwconv_run(ctx, &L->fusion_conv, w->xc + r, 2 * d, T, NULL, 0, w->xc2 + r, 2 * d, DW_ADD);
    }
    if ((rc = lin(ctx, w->xc2, M, 2 * d, &L->merge_proj, 1.0f, x, d)))
        return rc;
    /* 4. second FFN half step */
    if ((rc = ffn(ctx, hp, d, hp->ffn, &L->norm_ff, &L->ff_w1, &L->ff_w2, hp->ffn_scale, 0, x, h, w->big, M)))
        return rc;
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
    }
    return COCHLEA_OK;
}

int owsm_encode(cochlea_ctx *ctx, const owsm_model *m, owsm_work *w, const float *const *feats, int B,
                const owsm_cond *const *conds, float *enc_out, float *logits, int32_t *argmax)
{
    const owsm_hparams *hp = &m->hp;
    const int64_t d = hp->d, T = w->T, V = hp->vocab;
    if (B < 1 || B > w->max_batch)
        return err_set(COCHLEA_EINVAL, "OWSM-CTC: batch of %d windows (this context holds 1 to %d)", B,
                       w->max_batch);
    int rc;
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
    for (int64_t l = 0; l < hp->n_layer; l++)
        if ((rc = layer_forward(ctx, m, w, &m->layers[l], l, B, conds)))
            return rc;
    const int64_t M = T * B;
    float *enc = enc_out ? enc_out : w->h;
    ops_layer_norm(ctx, w->x, d, enc, d, M, d, m->after_norm.g, m->after_norm.b, hp->ln_eps);
    if (!logits && !argmax)
        return COCHLEA_OK;
    for (int b = 0; b < B; b++) {
        float *lg = logits ? logits + (int64_t)b * T * V : w->logits;
        if ((rc = lin(ctx, enc + (int64_t)b * T * d, T, d, &m->ctc_lo, 0, lg, V)))
            return rc;
        if (argmax) {
            struct argmax_args a = {lg, T, V, argmax + (int64_t)b * T};
            pool_run(ctx->pool, argmax_task, &a);
        }
    }
    return COCHLEA_OK;
}
