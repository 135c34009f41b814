/* model.c - the llama-architecture decoder runtime: GGUF loading and validation, the
 * transformer blocks over chains and trees of rows with a KV cache, the llama text model
 * (embedding + blocks + head). See model.h. */
#include "lm/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gemm.h"

/* ---- loading ------------------------------------------------------------------------------- */

static int own(lm_blocks *b, float *p)
{
    if (mem_grow((void **)&b->owned, &b->cap_owned, b->n_owned + 1, sizeof *b->owned)) {
        free(p);
        return err_set(COCHLEA_ENOMEM, "out of memory");
    }
    b->owned[b->n_owned++] = p;
    return COCHLEA_OK;
}

/* An integer key <arch>.<name> in [lo, hi]; absent: dflt when has_dflt, else COCHLEA_EFORMAT. */
static int key_int(const gguf_file *f, const char *arch, const char *name, int64_t lo, int64_t hi, int has_dflt,
                   int64_t dflt, int64_t *out)
{
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    if (has_dflt && !gguf_has_key(f, key)) {
        *out = dflt;
        return COCHLEA_OK;
    }
    int rc = gguf_get_int(f, key, lo, hi, out);
    return rc == COCHLEA_ERANGE ? COCHLEA_EFORMAT : rc; /* an out-of-range value is a bad file */
}

/* A numeric key <arch>.<name> that must be finite and in (lo, hi]. */
static int key_float(const gguf_file *f, const char *arch, const char *name, double lo, double hi, int has_dflt,
                     double dflt, float *out)
{
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    double v = dflt;
    if (!has_dflt || gguf_has_key(f, key)) {
        int rc = gguf_get_float(f, key, &v);
        if (rc)
            return rc;
    }
    if (!isfinite(v) || !(v > lo) || v > hi)
        return err_set(COCHLEA_EFORMAT, "%s: key '%s' is %g, outside (%g, %g]", gguf_label(f), key, v, lo, hi);
    *out = (float)v;
    return COCHLEA_OK;
}

/* A tensor of exactly n values as fp32: the mapped data when it is F32, else an owned copy. */
static int vec_f32(const gguf_file *f, lm_blocks *b, const char *name, int64_t n, const float **out)
{
    const tensor *t;
    int64_t ne[1] = {n};
    int rc = gguf_expect_tensor(f, name, 1, ne, &t);
    if (rc)
        return rc;
    if (t->type == COCHLEA_TYPE_F32) {
        *out = t->data;
        return COCHLEA_OK;
    }
    if (t->type != COCHLEA_TYPE_F16 && t->type != COCHLEA_TYPE_BF16)
        return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' has type %s; norm weights must be f32, f16 or bf16",
                       gguf_label(f), name, type_name(t->type));
    float *p = malloc((size_t)n * sizeof *p);
    if (!p)
        return err_set(COCHLEA_ENOMEM, "out of memory");
    tensor_row_to_f32(t, 0, p);
    if ((rc = own(b, p)))
        return rc;
    *out = p;
    return COCHLEA_OK;
}

/* Linear layer of n rows: gemm_linear_small (weights read in place, batch-invariant) for up to
 * GEMM_SMALL_MAX_M rows, which covers decoding and small draft trees, else gemm_linear. */
static int lm_linear(cochlea_ctx *ctx, const float *x, int64_t n, int64_t ldx, const tensor *W, const float *bias,
                     float beta, float *y, int64_t ldy)
{
    if (gemm_small_available(W, n))
        return gemm_linear_small(ctx, x, n, ldx, W, bias, beta, y, ldy);
    return gemm_linear(ctx, x, n, ldx, W, bias, beta, y, ldy);
}

/* A matrix for gemm_linear: ne = {in, out}, type F32/F16/BF16/Q8_0. */
static int matrix(const gguf_file *f, const char *name, int64_t in, int64_t out_, const tensor **out)
{
    int64_t ne[2] = {in, out_};
    int rc = gguf_expect_tensor(f, name, 2, ne, out);
    if (rc)
        return rc;
    enum cochlea_type ty = (*out)->type;
    if (ty != COCHLEA_TYPE_F32 && ty != COCHLEA_TYPE_F16 && ty != COCHLEA_TYPE_BF16 && ty != COCHLEA_TYPE_Q8_0)
        return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' has type %s; weights must be f32, f16, bf16 or q8_0",
                       gguf_label(f), name, type_name(ty));
    return COCHLEA_OK;
}

static int refuse_tensor(const gguf_file *f, const char *name, const char *what)
{
    if (gguf_find_tensor(f, name) >= 0)
        return err_set(COCHLEA_EUNSUPPORTED, "%s: tensor '%s' is present: %s are not implemented", gguf_label(f), name,
                       what);
    return COCHLEA_OK;
}

static int read_hparams(const gguf_file *f, const char *arch, lm_hparams *hp)
{
    const char *L = gguf_label(f);
    char key[256];
    int rc;
    int64_t kl, vl;
    if ((rc = key_int(f, arch, "context_length", 1, INT32_MAX, 0, 0, &hp->n_ctx)) ||
        (rc = key_int(f, arch, "embedding_length", 1, (int64_t)1 << 20, 0, 0, &hp->n_embd)) ||
        (rc = key_int(f, arch, "block_count", 1, 4096, 0, 0, &hp->n_layer)) ||
        (rc = key_int(f, arch, "feed_forward_length", 1, (int64_t)1 << 22, 0, 0, &hp->n_ff)) ||
        (rc = key_int(f, arch, "attention.head_count", 1, 4096, 0, 0, &hp->n_head)) ||
        (rc = key_int(f, arch, "attention.head_count_kv", 1, hp->n_head, 1, hp->n_head, &hp->n_head_kv)))
        return rc;
    if (hp->n_head % hp->n_head_kv != 0)
        return err_set(COCHLEA_EFORMAT, "%s: %s.attention.head_count %lld is not a multiple of head_count_kv %lld", L,
                       arch, (long long)hp->n_head, (long long)hp->n_head_kv);
    snprintf(key, sizeof key, "%s.attention.key_length", arch);
    int has_kl = gguf_has_key(f, key);
    if (!has_kl && hp->n_embd % hp->n_head != 0)
        return err_set(COCHLEA_EFORMAT, "%s: %s.embedding_length %lld is not a multiple of head_count %lld", L, arch,
                       (long long)hp->n_embd, (long long)hp->n_head);
    if ((rc = key_int(f, arch, "attention.key_length", 1, 65536, 1, hp->n_embd / hp->n_head, &kl)) ||
        (rc = key_int(f, arch, "attention.value_length", 1, 65536, 1, kl, &vl)))
        return rc;
    if (kl != vl)
        return err_set(COCHLEA_EUNSUPPORTED, "%s: key length %lld differs from value length %lld (not implemented)", L,
                       (long long)kl, (long long)vl);
    hp->head_dim = kl;
    if ((rc = key_int(f, arch, "rope.dimension_count", 0, hp->head_dim, 1, hp->head_dim, &hp->n_rot)))
        return rc;
    if (hp->n_rot % 2 != 0)
        return err_set(COCHLEA_EFORMAT, "%s: %s.rope.dimension_count %lld is odd", L, arch, (long long)hp->n_rot);
    if ((rc = key_float(f, arch, "rope.freq_base", 0.0, 1e12, 1, 10000.0, &hp->rope_freq_base)) ||
        (rc = key_float(f, arch, "attention.layer_norm_rms_epsilon", 0.0, 1.0, 0, 0.0, &hp->rms_eps)))
        return rc;
    /* features of other llama variants that this runtime does not implement */
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (gguf_has_key(f, key)) {
        const char *s;
        if ((rc = gguf_get_str(f, key, &s, NULL)))
            return rc;
        if (strcmp(s, "none") != 0)
            return err_set(COCHLEA_EUNSUPPORTED, "%s: %s is '%s'; only 'none' is implemented", L, key, s);
    }
    int64_t experts;
    if ((rc = key_int(f, arch, "expert_count", 0, INT32_MAX, 1, 0, &experts)))
        return rc;
    if (experts > 0)
        return err_set(COCHLEA_EUNSUPPORTED, "%s: %s.expert_count is %lld; mixture-of-experts is not implemented", L,
                       arch, (long long)experts);
    return refuse_tensor(f, "rope_freqs.weight", "rope frequency factors");
}

int lm_blocks_load(const gguf_file *f, const char *arch, lm_blocks **out)
{
    *out = NULL;
    lm_blocks *b = calloc(1, sizeof *b);
    if (!b)
        return err_set(COCHLEA_ENOMEM, "out of memory");
    lm_hparams *hp = &b->hp;
    int rc = read_hparams(f, arch, hp);
    b->rope_mode = OPS_ROPE_NORMAL;
    if (!rc && !(b->layers = calloc((size_t)hp->n_layer, sizeof *b->layers)))
        rc = err_set(COCHLEA_ENOMEM, "out of memory");
    const int64_t d = hp->n_embd, qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim;
    char s[GGUF_MAX_NAME + 1];
    static const char *const bias_names[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                             "ffn_down"};
    for (int64_t l = 0; !rc && l < hp->n_layer; l++) {
        lm_layer *Ly = &b->layers[l];
#define NAME(x) (snprintf(s, sizeof s, "blk.%lld." x, (long long)l), s)
        if ((rc = vec_f32(f, b, NAME("attn_norm.weight"), d, &Ly->attn_norm)) ||
            (rc = matrix(f, NAME("attn_q.weight"), d, qd, &Ly->wq)) ||
            (rc = matrix(f, NAME("attn_k.weight"), d, kvd, &Ly->wk)) ||
            (rc = matrix(f, NAME("attn_v.weight"), d, kvd, &Ly->wv)) ||
            (rc = matrix(f, NAME("attn_output.weight"), qd, d, &Ly->wo)) ||
            (rc = vec_f32(f, b, NAME("ffn_norm.weight"), d, &Ly->ffn_norm)) ||
            (rc = matrix(f, NAME("ffn_gate.weight"), d, hp->n_ff, &Ly->w_gate)) ||
            (rc = matrix(f, NAME("ffn_up.weight"), d, hp->n_ff, &Ly->w_up)) ||
            (rc = matrix(f, NAME("ffn_down.weight"), hp->n_ff, d, &Ly->w_down)) ||
            (rc = refuse_tensor(f, NAME("ffn_gate_inp.weight"), "expert routers")))
            break;
#undef NAME
        for (size_t i = 0; !rc && i < sizeof bias_names / sizeof *bias_names; i++) {
            snprintf(s, sizeof s, "blk.%lld.%s.bias", (long long)l, bias_names[i]);
            rc = refuse_tensor(f, s, "linear-layer biases");
        }
    }
    if (!rc)
        rc = vec_f32(f, b, "output_norm.weight", d, &b->out_norm);
    if (rc) {
        lm_blocks_free(b);
        return rc;
    }
    *out = b;
    return COCHLEA_OK;
}

void lm_blocks_free(lm_blocks *b)
{
    if (!b)
        return;
    for (int64_t i = 0; i < b->n_owned; i++)
        free(b->owned[i]);
    free(b->owned);
    free(b->layers);
    free(b);
}

int lm_blocks_kv_create(const lm_blocks *b, int64_t capacity, lm_kv **out)
{
    if (capacity < 0)
        return err_set(COCHLEA_EINVAL, "KV cache: negative capacity %lld", (long long)capacity);
    return lm_kv_create(b->hp.n_layer, b->hp.n_head_kv, b->hp.head_dim, capacity ? capacity : b->hp.n_ctx, out);
}

/* ---- scratch ------------------------------------------------------------------------------- */

typedef struct wbuf {
    void *p;
    size_t bytes;
} wbuf;

struct lm_work {
    wbuf x, h, q, k, v, att, g, u, emb, hid, attn, allowed, pos;
};

int lm_work_create(lm_work **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? COCHLEA_OK : err_set(COCHLEA_ENOMEM, "out of memory");
}

void lm_work_free(lm_work *w)
{
    if (!w)
        return;
    wbuf *all[] = {&w->x, &w->h, &w->q, &w->k, &w->v, &w->att, &w->g, &w->u, &w->emb, &w->hid, &w->attn,
                   &w->allowed, &w->pos};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]->p);
    free(w);
}

/* At least a * b elements of `elem` bytes in buffer `b` (64-byte aligned, contents not kept). */
static void *wbuf_get(wbuf *buf, size_t a, size_t b, size_t elem, int *rc)
{
    size_t n;
    if (*rc)
        return NULL;
    if (size_mul(a, b, &n) || size_mul(n, elem, &n)) {
        *rc = err_set(COCHLEA_ERANGE, "decoder scratch size overflows (%zu x %zu)", a, b);
        return NULL;
    }
    if (n == 0)
        n = 64;
    if (buf->bytes < n) {
        void *p = NULL;
        if (posix_memalign(&p, 64, n)) {
            *rc = err_set(COCHLEA_ENOMEM, "decoder: cannot allocate %zu bytes of scratch", n);
            return NULL;
        }
        free(buf->p);
        buf->p = p;
        buf->bytes = n;
    }
    return buf->p;
}

/* ---- forward ------------------------------------------------------------------------------- */

/* speculative-decoding.md §1.3: pos[i] = n_past + depth(i); for a tree, allowed row i (Tk bytes)
 * marks the n_past cached slots and the slots n_past + j of i's ancestors j (i included).
 * Returns whether the batch is a plain chain (then no mask is built). */
static int batch_layout(const lm_batch *bt, int64_t n_past, int32_t *pos, uint8_t *allowed, int64_t Tk)
{
    const int64_t n = bt->n;
    int chain = 1;
    for (int64_t i = 0; i < n; i++) {
        const int32_t p = bt->parent ? bt->parent[i] : (int32_t)(i - 1);
        if (p != i - 1)
            chain = 0;
        pos[i] = (int32_t)(p < 0 ? n_past : pos[p] + 1);
    }
    if (chain || !allowed)
        return chain;
    for (int64_t i = 0; i < n; i++) {
        uint8_t *a = allowed + i * Tk;
        memset(a, 1, (size_t)n_past);
        memset(a + n_past, 0, (size_t)n);
        for (int64_t j = i; j >= 0; j = bt->parent[j])
            a[n_past + j] = 1;
    }
    return 0;
}

int lm_blocks_forward(cochlea_ctx *ctx, const lm_blocks *b, lm_kv *kv, lm_work *w, const lm_batch *bt,
                      const float *x_in, float *out)
{
    const lm_hparams *hp = &b->hp;
    const int64_t n = bt->n, d = hp->n_embd, H = hp->n_head, Hkv = hp->n_head_kv, Dh = hp->head_dim;
    const int64_t qd = H * Dh, kvd = Hkv * Dh, ff = hp->n_ff;
    if (n < 1)
        return err_set(COCHLEA_EINVAL, "decoder: empty batch");
    if (kv->n_layer != hp->n_layer || kv->n_head_kv != Hkv || kv->head_dim != Dh)
        return err_set(COCHLEA_EINVAL, "decoder: KV cache shaped for %lld layers x %lld kv heads x %lld, model has "
                       "%lld x %lld x %lld", (long long)kv->n_layer, (long long)kv->n_head_kv,
                       (long long)kv->head_dim, (long long)hp->n_layer, (long long)Hkv, (long long)Dh);
    const int64_t n_past = kv->n;
    if (n > kv->capacity - n_past)
        return err_set(COCHLEA_ERANGE, "decoder: %lld cached + %lld new positions exceed the KV capacity %lld",
                       (long long)n_past, (long long)n, (long long)kv->capacity);
    if (bt->parent)
        for (int64_t i = 0; i < n; i++)
            if (bt->parent[i] < -1 || bt->parent[i] >= i)
                return err_set(COCHLEA_EINVAL, "decoder: parent[%lld] = %d must be -1 or an earlier row", (long long)i,
                               bt->parent[i]);
    const int64_t Tk = n_past + n;
    int rc = 0;
    int32_t *pos = wbuf_get(&w->pos, (size_t)n, 1, sizeof(int32_t), &rc);
    float *x = wbuf_get(&w->x, (size_t)n, (size_t)d, sizeof(float), &rc);
    float *h = wbuf_get(&w->h, (size_t)n, (size_t)d, sizeof(float), &rc);
    float *q = wbuf_get(&w->q, (size_t)n, (size_t)qd, sizeof(float), &rc);
    float *k = wbuf_get(&w->k, (size_t)n, (size_t)kvd, sizeof(float), &rc);
    float *v = wbuf_get(&w->v, (size_t)n, (size_t)kvd, sizeof(float), &rc);
    float *att = wbuf_get(&w->att, (size_t)n, (size_t)qd, sizeof(float), &rc);
    float *g = wbuf_get(&w->g, (size_t)n, (size_t)ff, sizeof(float), &rc);
    float *u = wbuf_get(&w->u, (size_t)n, (size_t)ff, sizeof(float), &rc);
    if (rc)
        return rc;
    int chain = batch_layout(bt, n_past, pos, NULL, Tk);
    uint8_t *allowed = NULL;
    if (!chain) {
        allowed = wbuf_get(&w->allowed, (size_t)n, (size_t)Tk, 1, &rc);
        if (rc)
            return rc;
        batch_layout(bt, n_past, pos, allowed, Tk);
    }
    ops_attn_params ap = ops_attn_default_params(H, Hkv, Dh);
    ap.k_head_stride = ap.v_head_stride = lm_kv_head_stride(kv);
    ap.causal = 1;
    ap.allowed = allowed;
    ap.allowed_ld = Tk;
    ap.batch_invariant = 1;
    ap.work_floats = ops_attention_work_floats(ctx, &ap, n, Tk);
    if (!ap.work_floats)
        return err_set(COCHLEA_ERANGE, "decoder: attention scratch size overflows");
    ap.work = wbuf_get(&w->attn, ap.work_floats, 1, sizeof(float), &rc);
    if (rc)
        return rc;

    memcpy(x, x_in, (size_t)(n * d) * sizeof *x);
    for (int64_t l = 0; l < hp->n_layer && !rc; l++) {
        const lm_layer *L = &b->layers[l];
        ops_rms_norm(ctx, x, d, h, d, n, d, L->attn_norm, hp->rms_eps);
        if ((rc = lm_linear(ctx, h, n, d, L->wq, NULL, 0.0f, q, qd)) ||
            (rc = lm_linear(ctx, h, n, d, L->wk, NULL, 0.0f, k, kvd)) ||
            (rc = lm_linear(ctx, h, n, d, L->wv, NULL, 0.0f, v, kvd)) ||
            (rc = ops_rope(ctx, q, n, qd, H, Dh, hp->n_rot, pos, hp->rope_freq_base, b->rope_mode)) ||
            (rc = ops_rope(ctx, k, n, kvd, Hkv, Dh, hp->n_rot, pos, hp->rope_freq_base, b->rope_mode)) ||
            (rc = lm_kv_write(kv, l, n_past, k, kvd, v, kvd, n)) ||
            (rc = ops_attention(ctx, &ap, q, qd, kv->k[l], Dh, kv->v[l], Dh, n, Tk, att, qd)) ||
            (rc = lm_linear(ctx, att, n, qd, L->wo, NULL, 1.0f, x, d)))
            break;
        ops_rms_norm(ctx, x, d, h, d, n, d, L->ffn_norm, hp->rms_eps);
        if ((rc = lm_linear(ctx, h, n, d, L->w_gate, NULL, 0.0f, g, ff)) ||
            (rc = lm_linear(ctx, h, n, d, L->w_up, NULL, 0.0f, u, ff)))
            break;
        ops_silu(ctx, g, g, n * ff);
        ops_mul(ctx, g, u, g, n * ff);
        rc = lm_linear(ctx, g, n, ff, L->w_down, NULL, 1.0f, x, d);
    }
    if (rc)
        return rc;
    ops_rms_norm(ctx, x, d, out, d, n, d, b->out_norm, hp->rms_eps);
    kv->n = n_past + n;
    return COCHLEA_OK;
}

/* ---- llama text model ---------------------------------------------------------------------- */

int lm_model_from_gguf(const gguf_file *f, lm_model **out)
{
    *out = NULL;
    const char *L = gguf_label(f), *arch;
    int rc = gguf_get_str(f, "general.architecture", &arch, NULL);
    if (rc)
        return rc;
    if (strcmp(arch, "llama") != 0)
        return err_set(COCHLEA_EUNSUPPORTED, "%s: general.architecture is '%s'; this loader runs 'llama'", L, arch);
    lm_model *m = calloc(1, sizeof *m);
    if (!m)
        return err_set(COCHLEA_ENOMEM, "out of memory");
    m->file = (gguf_file *)f;
    if ((rc = lm_blocks_load(f, "llama", &m->blocks)))
        goto fail;
    const int64_t d = m->blocks->hp.n_embd;
    int64_t ne[2] = {d, -1};
    if ((rc = gguf_expect_tensor(f, "token_embd.weight", 2, ne, &m->tok_embd)))
        goto fail;
    m->n_vocab = m->tok_embd->ne[1];
    if (m->n_vocab > INT32_MAX) {
        rc = err_set(COCHLEA_EFORMAT, "%s: %lld tokens exceed the int32 id range", L, (long long)m->n_vocab);
        goto fail;
    }
    if (gguf_has_key(f, "llama.vocab_size")) {
        int64_t nv;
        if ((rc = key_int(f, "llama", "vocab_size", 1, INT32_MAX, 0, 0, &nv)))
            goto fail;
        if (nv != m->n_vocab) {
            rc = err_set(COCHLEA_EFORMAT, "%s: llama.vocab_size %lld differs from the %lld rows of token_embd.weight", L,
                         (long long)nv, (long long)m->n_vocab);
            goto fail;
        }
    }
    if (gguf_find_tensor(f, "output.weight") >= 0) {
        if ((rc = matrix(f, "output.weight", d, m->n_vocab, &m->output)))
            goto fail;
    } else {
        /* tied head, as llama.cpp: the embedding matrix is the output matrix */
        if ((rc = matrix(f, "token_embd.weight", d, m->n_vocab, &m->output)))
            goto fail;
        m->tied = 1;
    }
    enum cochlea_type te = m->tok_embd->type;
    if (te != COCHLEA_TYPE_F32 && te != COCHLEA_TYPE_F16 && te != COCHLEA_TYPE_BF16 && te != COCHLEA_TYPE_Q8_0) {
        rc = err_set(COCHLEA_EFORMAT, "%s: tensor 'token_embd.weight' has type %s; expected f32, f16, bf16 or q8_0", L,
                     type_name(te));
        goto fail;
    }
    *out = m;
    return COCHLEA_OK;
fail:
    m->file = NULL;
    lm_model_free(m);
    return rc;
}

int lm_model_load(const char *path, lm_model **out)
{
    *out = NULL;
    gguf_file *f;
    int rc = gguf_open(path, &f);
    if (rc)
        return rc;
    if ((rc = lm_model_from_gguf(f, out))) {
        gguf_close(f);
        return rc;
    }
    (*out)->owns_file = 1;
    return COCHLEA_OK;
}

void lm_model_free(lm_model *m)
{
    if (!m)
        return;
    lm_blocks_free(m->blocks);
    if (m->owns_file)
        gguf_close(m->file);
    free(m);
}

int lm_model_head(cochlea_ctx *ctx, const lm_model *m, const float *h, int64_t n, float *logits)
{
    const int64_t d = m->blocks->hp.n_embd;
    return lm_linear(ctx, h, n, d, m->output, NULL, 0.0f, logits, m->n_vocab);
}

int lm_model_forward(cochlea_ctx *ctx, const lm_model *m, lm_kv *kv, lm_work *w, const lm_batch *bt, float *logits)
{
    const int64_t n = bt->n, d = m->blocks->hp.n_embd;
    if (n < 1 || !bt->token)
        return err_set(COCHLEA_EINVAL, "decoder: a batch needs n >= 1 tokens (n = %lld)", (long long)n);
    if (bt->out_rows) {
        if (bt->n_out < 0 || bt->n_out > n)
            return err_set(COCHLEA_EINVAL, "decoder: %lld output rows for a batch of %lld", (long long)bt->n_out,
                           (long long)n);
        for (int64_t i = 0; i < bt->n_out; i++)
            if (bt->out_rows[i] < 0 || bt->out_rows[i] >= n)
                return err_set(COCHLEA_EINVAL, "decoder: out_rows[%lld] = %d outside the batch of %lld", (long long)i,
                               bt->out_rows[i], (long long)n);
    }
    int rc = 0;
    float *x = wbuf_get(&w->emb, (size_t)n, (size_t)d, sizeof(float), &rc);
    float *hid = wbuf_get(&w->hid, (size_t)n, (size_t)d, sizeof(float), &rc);
    if (rc)
        return rc;
    if ((rc = ops_embedding(ctx, m->tok_embd, bt->token, n, x)) ||
        (rc = lm_blocks_forward(ctx, m->blocks, kv, w, bt, x, hid)))
        return rc;
    if (!bt->out_rows)
        return lm_model_head(ctx, m, hid, n, logits);
    for (int64_t i = 0; i < bt->n_out; i++)
        memcpy(x + i * d, hid + (int64_t)bt->out_rows[i] * d, (size_t)d * sizeof *x);
    return bt->n_out ? lm_model_head(ctx, m, x, bt->n_out, logits) : COCHLEA_OK;
}
