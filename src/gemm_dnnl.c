/* gemm_dnnl.c - the oneDNN backend: f32, bf16 and int8 matmul primitives created once per shape
 * and cached, weights packed once into oneDNN's preferred blocked layout and cached.
 *
 * oneDNN 2.6 C API. Every primitive runs with a user-provided scratchpad (one buffer per gemm
 * object): oneDNN's global primitive cache may hand two gemm objects the same implementation,
 * and with its own scratchpad each can run it concurrently. oneDNN's CPU runtime on Debian is
 * OpenMP: the thread count is set with omp_set_num_threads before each primitive is created
 * (oneDNN plans the work split then) and before each execution (a setting of the calling thread
 * only).
 *
 * Only kernels other than oneDNN's reference ones are used ("ref:any" is correct but orders of
 * magnitude slower); a product without one runs the next lower path (int8 -> bf16 -> f32,
 * f32 -> OpenBLAS) and counts in stats.fallbacks. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "error.h"
#include "gemm_internal.h"

#ifdef HAVE_GOMP
void omp_set_num_threads(int n);
#endif

/* Rows of the problem gemm_prepare asks oneDNN about to pick a weight layout. A product whose
 * fast kernel wants another layout for its M packs W once more in that layout (oneDNN 2.6's
 * brgemm picks the layout from N and K, and for some small shapes from M too). */
#define PACK_M 256
#define MAX_LAYOUTS 4
#define PRIM_BUCKETS 512
#define PACK_BUCKETS 256

enum prim_kind { PK_F32 = 1, PK_BF16 = 2, PK_INT8 = 3 };

struct prim_key {
    int32_t kind;
    int32_t has_bias;
    uint32_t beta_bits;
    int32_t pad_;
    int64_t M, N, K, ldx, ldw, ldy;
};

struct prim {
    struct prim_key key;
    dnnl_memory_desc_t wmd; /* the weight layout this primitive reads */
    dnnl_primitive_t p;
    dnnl_memory_t src, wei, dst, bias, scale, zp, scratch;
    size_t scratch_size;
    int dense_out; /* oneDNN writes a dense [M, N] buffer; we add it into y (beta applied by us) */
    struct prim *next;
};

struct packed {
    const void *data;
    enum cochlea_type type;
    int64_t K, N;
    size_t nb1;
    enum cochlea_precision prec;
    uint64_t fingerprint;
    dnnl_memory_desc_t md;
    void *buf;
    size_t bytes;
    float *wscale; /* INT8: per output row scale */
    struct packed *next;
};

struct gemm_dnnl {
    dnnl_engine_t eng;
    dnnl_stream_t st;
    int has_bf16, has_int8;
    struct prim *prims[PRIM_BUCKETS];
    struct packed *packs[PACK_BUCKETS];
    gemm_buf scratchpad;
};

static const char *dnnl_status_str(dnnl_status_t s)
{
    switch (s) {
    case dnnl_success: return "success";
    case dnnl_out_of_memory: return "out of memory";
    case dnnl_invalid_arguments: return "invalid arguments";
    case dnnl_unimplemented: return "unimplemented";
    case dnnl_iterator_ends: return "iterator ends";
    case dnnl_runtime_error: return "runtime error";
    case dnnl_not_required: return "not required";
    }
    return "unknown status";
}

static int dnnl_err(dnnl_status_t s, const char *what)
{
    int code = s == dnnl_out_of_memory ? COCHLEA_ENOMEM : s == dnnl_unimplemented ? COCHLEA_EUNSUPPORTED
                                                                                   : COCHLEA_EINTERNAL;
    return err_set(code, "oneDNN: %s failed: %s", what, dnnl_status_str(s));
}

/* Before every oneDNN execution: its OpenMP team runs now, so the pool's workers stop spinning. */
static void set_threads(const gemm *g)
{
    pool_nap(g->pool);
#ifdef HAVE_GOMP
    omp_set_num_threads(g->n_threads);
#endif
}

static uint64_t hash_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void *handle(const void *p)
{
    return (void *)(uintptr_t)p;
}

/* ---- memory descriptors ---------------------------------------------------------------- */

static dnnl_status_t md_2d(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, int64_t row_stride,
                           int64_t col_stride, dnnl_data_type_t dt)
{
    dnnl_dims_t dims = {rows, cols}, strides = {row_stride, col_stride};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides);
}

static const char *pd_impl(const_dnnl_primitive_desc_t pd);

/* For one or two fp32 rows against plain transposed weights, oneDNN 2.6's JIT gemm ("gemm:jit")
 * runs about twice as fast as its first choice (brgemm): take it when it is offered. */
static dnnl_status_t pick_gemv_pd(struct gemm_dnnl *d, const dnnl_matmul_desc_t *mm, const_dnnl_primitive_attr_t attr,
                                  dnnl_primitive_desc_t *pd)
{
    dnnl_primitive_desc_iterator_t it;
    dnnl_status_t s = dnnl_primitive_desc_iterator_create(&it, mm, attr, d->eng, NULL);
    if (s != dnnl_success)
        return s;
    dnnl_primitive_desc_t first = NULL, pick = NULL;
    do {
        dnnl_primitive_desc_t cur = dnnl_primitive_desc_iterator_fetch(it);
        if (!cur)
            break;
        if (strncmp(pd_impl(cur), "gemm", 4) == 0) {
            pick = cur;
            break;
        }
        if (!first)
            first = cur;
        else
            dnnl_primitive_desc_destroy(cur);
    } while (dnnl_primitive_desc_iterator_next(it) == dnnl_success);
    dnnl_primitive_desc_iterator_destroy(it);
    if (pick && first)
        dnnl_primitive_desc_destroy(first);
    *pd = pick ? pick : first;
    return *pd ? dnnl_success : dnnl_unimplemented;
}

/* Create a matmul primitive descriptor: src [M, K] (row stride ldx), weights [K, N] as wmd,
 * dst [M, N] (row stride ldy), the bias/scales/zero point/sum of `k`. */
static dnnl_status_t make_pd(struct gemm_dnnl *d, const struct prim_key *k, const dnnl_memory_desc_t *wmd,
                             int64_t ldy, int with_sum, dnnl_primitive_desc_t *pd)
{
    dnnl_memory_desc_t smd, dmd, bmd, rowmd;
    dnnl_data_type_t sdt = k->kind == PK_F32 ? dnnl_f32 : k->kind == PK_BF16 ? dnnl_bf16 : dnnl_u8;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_status_t s;
    float beta;
    memcpy(&beta, &k->beta_bits, sizeof beta);
    if ((s = md_2d(&smd, k->M, k->K, k->ldx, 1, sdt)) || (s = md_2d(&dmd, k->M, k->N, ldy, 1, dnnl_f32)) ||
        (s = md_2d(&bmd, 1, k->N, k->N, 1, dnnl_f32)) || (s = md_2d(&rowmd, 1, k->N, k->N, 1, dnnl_f32)))
        return s;
    dnnl_matmul_desc_t mm;
    int matmul_bias = k->has_bias && k->kind != PK_INT8;
    if ((s = dnnl_matmul_desc_init(&mm, &smd, wmd, matmul_bias ? &bmd : NULL, &dmd)))
        return s;
    if ((s = dnnl_primitive_attr_create(&attr)) || (s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)) ||
        (s = dnnl_post_ops_create(&po)))
        goto out;
    if (k->kind == PK_INT8) {
        /* y = (acc_s32 with the src zero point removed) * scale[n] + bias[n] */
        const int32_t zp = DNNL_RUNTIME_S32_VAL;
        if ((s = dnnl_primitive_attr_set_zero_points(attr, DNNL_ARG_SRC, 1, 0, &zp)) ||
            (s = dnnl_post_ops_append_binary(po, dnnl_binary_mul, &rowmd)))
            goto out;
        if (k->has_bias && (s = dnnl_post_ops_append_binary(po, dnnl_binary_add, &rowmd)))
            goto out;
    }
    if (with_sum && beta != 0.0f && (s = dnnl_post_ops_append_sum(po, beta)))
        goto out;
    if ((s = dnnl_primitive_attr_set_post_ops(attr, po)))
        goto out;
    if (k->kind == PK_F32 && k->M <= 2)
        s = pick_gemv_pd(d, &mm, attr, pd);
    else
        s = dnnl_primitive_desc_create(pd, &mm, attr, d->eng, NULL);
out:
    if (po)
        dnnl_post_ops_destroy(po);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return s;
}

static const char *pd_impl(const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl)
        return "?";
    return impl;
}

/* ---- primitive cache ------------------------------------------------------------------- */

static void prim_destroy(struct prim *p)
{
    dnnl_memory_t *mems[] = {&p->src, &p->wei, &p->dst, &p->bias, &p->scale, &p->zp, &p->scratch};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
        if (*mems[i])
            dnnl_memory_destroy(*mems[i]);
    if (p->p)
        dnnl_primitive_destroy(p->p);
    free(p);
}

static dnnl_status_t mem_for(struct gemm_dnnl *d, const_dnnl_primitive_desc_t pd, dnnl_query_t q, int idx,
                             dnnl_memory_t *m)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, q, idx);
    if (!md)
        return dnnl_runtime_error;
    return dnnl_memory_create(m, md, d->eng, DNNL_MEMORY_NONE);
}

/* A memory object for a [1, n] fp32 row (bias, scales), handle set at execution. */
static dnnl_status_t mem_row(struct gemm_dnnl *d, int64_t n, dnnl_memory_t *m)
{
    dnnl_memory_desc_t md;
    dnnl_status_t s = md_2d(&md, 1, n, n, 1, dnnl_f32);
    return s ? s : dnnl_memory_create(m, &md, d->eng, DNNL_MEMORY_NONE);
}

/* A memory object for one int32 (the source zero point). */
static dnnl_status_t mem_s32(struct gemm_dnnl *d, dnnl_memory_t *m)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {1};
    dnnl_status_t s = dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_s32, dnnl_a);
    return s ? s : dnnl_memory_create(m, &md, d->eng, DNNL_MEMORY_NONE);
}

static int impl_is_ref(const_dnnl_primitive_desc_t pd)
{
    return strncmp(pd_impl(pd), "ref", 3) == 0;
}

/* A non-reference primitive descriptor for k with weights wmd: dst rows at stride ldy, or, when
 * the fast kernels cannot write strided rows, a dense [M, N] block (*dense_out = 1, no sum). */
static dnnl_status_t make_fast_pd(struct gemm_dnnl *d, const struct prim_key *k, const dnnl_memory_desc_t *wmd,
                                  dnnl_primitive_desc_t *pd, int *dense_out)
{
    *pd = NULL;
    *dense_out = 0;
    dnnl_status_t s = make_pd(d, k, wmd, k->ldy, 1, pd);
    if (s == dnnl_success && !impl_is_ref(*pd))
        return s;
    if (*pd)
        dnnl_primitive_desc_destroy(*pd);
    *pd = NULL;
    if (k->ldy == k->N)
        return s == dnnl_success ? dnnl_unimplemented : s;
    s = make_pd(d, k, wmd, k->N, 0, pd);
    if (s == dnnl_success && !impl_is_ref(*pd)) {
        *dense_out = 1;
        return s;
    }
    if (*pd)
        dnnl_primitive_desc_destroy(*pd);
    *pd = NULL;
    return s == dnnl_success ? dnnl_unimplemented : s;
}

static const char *kind_name(int kind)
{
    return kind == PK_F32 ? "f32" : kind == PK_BF16 ? "bf16" : "int8";
}

/* The cached primitive for k; an entry with p == NULL records that k has no fast kernel. */
static struct prim *prim_lookup(gemm *g, const struct prim_key *k)
{
    size_t b = (size_t)(hash_bytes(k, sizeof *k) % PRIM_BUCKETS);
    for (struct prim *p = g->dnnl->prims[b]; p; p = p->next) {
        if (memcmp(&p->key, k, sizeof *k) == 0) {
            g->stats.primitive_hits++;
            return p;
        }
    }
    return NULL;
}

/* Create and cache the primitive for key k: with the first of the weight layouts cands[] that a
 * fast (non-reference) kernel accepts, else with the layout oneDNN prefers (format any; NULL
 * any_md: none). NULL with an error set when oneDNN has no fast kernel for it. */
static struct prim *prim_create(gemm *g, const struct prim_key *k, const dnnl_memory_desc_t *const *cands, int ncand,
                                const dnnl_memory_desc_t *any_md)
{
    struct gemm_dnnl *d = g->dnnl;
    dnnl_primitive_desc_t pd = NULL;
    int dense_out = 0;
    dnnl_status_t s = dnnl_unimplemented;
    /* oneDNN plans a primitive's work split for the thread count in force when it is created */
    set_threads(g);
    for (int i = 0; i < ncand && s != dnnl_success; i++)
        s = make_fast_pd(d, k, cands[i], &pd, &dense_out);
    if (s != dnnl_success && any_md)
        s = make_fast_pd(d, k, any_md, &pd, &dense_out);
    struct prim *p = calloc(1, sizeof *p);
    if (!p) {
        if (pd)
            dnnl_primitive_desc_destroy(pd);
        err_set(COCHLEA_ENOMEM, "gemm: cannot allocate a primitive cache entry");
        return NULL;
    }
    p->key = *k;
    size_t b = (size_t)(hash_bytes(k, sizeof *k) % PRIM_BUCKETS);
    if (s != dnnl_success) {
        /* remembered as unsupported (p->p == NULL) so that later calls do not search again */
        p->next = d->prims[b];
        d->prims[b] = p;
        dnnl_err(s, "creating a matmul primitive");
        err_prefix(COCHLEA_EUNSUPPORTED, "gemm: %s matmul M=%lld N=%lld K=%lld", kind_name(k->kind), (long long)k->M,
                   (long long)k->N, (long long)k->K);
        return NULL;
    }
    p->wmd = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    p->dense_out = dense_out;
    const dnnl_memory_desc_t *spmd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    p->scratch_size = spmd ? dnnl_memory_desc_get_size(spmd) : 0;
    LOG_DEBUG("gemm: new %s matmul M=%lld N=%lld K=%lld ldy=%lld bias=%d: %s%s", kind_name(k->kind), (long long)k->M,
              (long long)k->N, (long long)k->K, (long long)k->ldy, k->has_bias, pd_impl(pd),
              dense_out ? " (dense output)" : "");
    if ((s = dnnl_primitive_create(&p->p, pd)) || (s = mem_for(d, pd, dnnl_query_src_md, 0, &p->src)) ||
        (s = mem_for(d, pd, dnnl_query_weights_md, 0, &p->wei)) || (s = mem_for(d, pd, dnnl_query_dst_md, 0, &p->dst)) ||
        (p->scratch_size && (s = mem_for(d, pd, dnnl_query_scratchpad_md, 0, &p->scratch))) ||
        (k->has_bias && (s = mem_row(d, k->N, &p->bias))) || (k->kind == PK_INT8 && (s = mem_row(d, k->N, &p->scale))) ||
        (k->kind == PK_INT8 && (s = mem_s32(d, &p->zp)))) {
        dnnl_primitive_desc_destroy(pd);
        prim_destroy(p);
        dnnl_err(s, "creating a matmul primitive");
        return NULL;
    }
    dnnl_primitive_desc_destroy(pd);
    p->next = d->prims[b];
    d->prims[b] = p;
    g->stats.primitives++;
    g->stats.n_primitives++;
    return p;
}

/* Run p: src, weights, optional bias/scale/zero point; result into y (row stride ldy). */
static int prim_exec(gemm *g, struct prim *p, const void *src, const void *wei, const float *bias,
                     const float *scale, const int32_t *zp, float beta, float *y, int64_t ldy)
{
    struct gemm_dnnl *d = g->dnnl;
    int64_t M = p->key.M, N = p->key.N;
    float *dst = y;
    if (p->dense_out) {
        size_t need;
        if (size_mul((size_t)M * sizeof(float), (size_t)N, &need))
            return err_set(COCHLEA_ERANGE, "gemm: output block overflows");
        if (!(dst = gemm_buf_get(g, &g->out, need)))
            return COCHLEA_ENOMEM;
    }
    dnnl_exec_arg_t args[8];
    int n = 0;
    dnnl_memory_set_data_handle(p->src, handle(src));
    dnnl_memory_set_data_handle(p->wei, handle(wei));
    dnnl_memory_set_data_handle(p->dst, dst);
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, p->src};
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, p->wei};
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DST, p->dst};
    if (p->scratch) {
        void *sp = gemm_buf_get(g, &d->scratchpad, p->scratch_size);
        if (!sp)
            return COCHLEA_ENOMEM;
        dnnl_memory_set_data_handle(p->scratch, sp);
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->scratch};
    }
    if (p->key.kind == PK_INT8) {
        dnnl_memory_set_data_handle(p->scale, handle(scale));
        dnnl_memory_set_data_handle(p->zp, handle(zp));
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, p->zp};
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, p->scale};
        if (p->key.has_bias) {
            dnnl_memory_set_data_handle(p->bias, handle(bias));
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1, p->bias};
        }
    } else if (p->key.has_bias) {
        dnnl_memory_set_data_handle(p->bias, handle(bias));
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, p->bias};
    }
    set_threads(g);
    dnnl_status_t s = dnnl_primitive_execute(p->p, d->st, n, args);
    if (s == dnnl_success)
        s = dnnl_stream_wait(d->st);
    if (s != dnnl_success)
        return dnnl_err(s, "executing a matmul");
    if (p->dense_out) {
        for (int64_t i = 0; i < M; i++) {
            float *r = y + (size_t)i * (size_t)ldy;
            const float *t = dst + (size_t)i * (size_t)N;
            if (beta == 0.0f)
                memcpy(r, t, (size_t)N * sizeof(float));
            else
                for (int64_t j = 0; j < N; j++)
                    r[j] = t[j] + beta * r[j];
        }
    }
    return COCHLEA_OK;
}

static void key_init(struct prim_key *k, int kind, int64_t M, int64_t N, int64_t K, int64_t ldx, int64_t ldw,
                     int64_t ldy, int has_bias, float beta)
{
    memset(k, 0, sizeof *k);
    k->kind = kind;
    k->M = M;
    k->N = N;
    k->K = K;
    k->ldx = ldx;
    k->ldw = ldw;
    k->ldy = ldy;
    k->has_bias = has_bias;
    if (beta == 0.0f)
        beta = 0.0f; /* -0 and +0 share a primitive */
    memcpy(&k->beta_bits, &beta, sizeof beta);
}

/* ---- packed weights -------------------------------------------------------------------- */

static size_t pack_bucket(const void *data)
{
    return (size_t)(((uintptr_t)data >> 6) % PACK_BUCKETS);
}

static void packed_destroy(gemm *g, struct packed *w)
{
    g->stats.packed_bytes -= w->bytes;
    g->stats.n_packed--;
    free(w->buf);
    free(w->wscale);
    free(w);
}

static int same_weight(const struct packed *w, const tensor *W)
{
    return w->data == W->data && w->type == W->type && w->K == W->ne[0] && w->N == W->ne[1] && w->nb1 == W->nb[1];
}

/* The packing of W for prec in layout md (NULL: any layout), or NULL. */
static struct packed *pack_find(struct gemm_dnnl *d, const tensor *W, enum cochlea_precision prec,
                                const dnnl_memory_desc_t *md)
{
    for (struct packed *w = d->packs[pack_bucket(W->data)]; w; w = w->next)
        if (same_weight(w, W) && w->prec == prec && (!md || dnnl_memory_desc_equal(&w->md, md)))
            return w;
    return NULL;
}

/* Drop the packings of W made from other data at the same address (fingerprint differs). */
static void pack_drop_stale(gemm *g, const tensor *W, uint64_t fingerprint)
{
    for (struct packed **pp = &g->dnnl->packs[pack_bucket(W->data)]; *pp;) {
        struct packed *w = *pp;
        if (same_weight(w, W) && w->fingerprint != fingerprint) {
            *pp = w->next;
            packed_destroy(g, w);
        } else {
            pp = &w->next;
        }
    }
}

/* Up to MAX_LAYOUTS layouts W is already packed in for prec (candidates for a new primitive). */
static int pack_layouts(struct gemm_dnnl *d, const tensor *W, enum cochlea_precision prec,
                        const dnnl_memory_desc_t *out[MAX_LAYOUTS])
{
    int n = 0;
    for (struct packed *w = d->packs[pack_bucket(W->data)]; w && n < MAX_LAYOUTS; w = w->next)
        if (same_weight(w, W) && w->prec == prec)
            out[n++] = &w->md;
    return n;
}

/* A weights descriptor in format any for a problem kind. */
static dnnl_status_t any_weights(int kind, int64_t N, int64_t K, dnnl_memory_desc_t *md)
{
    dnnl_dims_t dims = {K, N};
    return dnnl_memory_desc_init_by_tag(md, 2, dims, kind == PK_INT8 ? dnnl_s8 : dnnl_bf16, dnnl_format_tag_any);
}

/* Reorder src (memory desc smd at sdata) into the packed layout md at ddata. */
static int reorder(gemm *g, const dnnl_memory_desc_t *smd, const void *sdata, const dnnl_memory_desc_t *md, void *ddata)
{
    struct gemm_dnnl *d = g->dnnl;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_memory_t ms = NULL, md_ = NULL;
    dnnl_status_t s;
    set_threads(g);
    if ((s = dnnl_reorder_primitive_desc_create(&rpd, smd, d->eng, md, d->eng, NULL)) ||
        (s = dnnl_primitive_create(&r, rpd)) || (s = dnnl_memory_create(&ms, smd, d->eng, handle(sdata))) ||
        (s = dnnl_memory_create(&md_, md, d->eng, ddata)))
        goto out;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, ms}, {DNNL_ARG_TO, md_}};
    if ((s = dnnl_primitive_execute(r, d->st, 2, args)) == dnnl_success)
        s = dnnl_stream_wait(d->st);
out:
    if (md_)
        dnnl_memory_destroy(md_);
    if (ms)
        dnnl_memory_destroy(ms);
    if (r)
        dnnl_primitive_destroy(r);
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    return s == dnnl_success ? COCHLEA_OK : dnnl_err(s, "reordering a weight into the packed layout");
}

struct cvt_rows_args {
    const tensor *W;
    uint16_t *out;
};

static void cvt_rows_run(void *arg, int ith, int nth)
{
    const struct cvt_rows_args *a = arg;
    int64_t r0, r1;
    pool_split(a->W->ne[1], ith, nth, &r0, &r1);
    if (r1 > r0)
        gemm_weight_rows_bf16(a->W, r0, r1 - r0, a->out + (size_t)r0 * (size_t)a->W->ne[0]);
}

/* Fill w (bf16 packing): W converted to bf16 (round to nearest even) in oneDNN's layout. */
static int pack_bf16(gemm *g, const tensor *W, struct packed *w)
{
    int64_t K = W->ne[0], N = W->ne[1];
    dnnl_memory_desc_t smd;
    if (W->type == COCHLEA_TYPE_BF16 && W->nb[1] % 2 == 0 && (uintptr_t)W->data % 2 == 0) {
        if (md_2d(&smd, K, N, 1, (int64_t)(W->nb[1] / 2), dnnl_bf16))
            return err_set(COCHLEA_EINTERNAL, "gemm: bad weight descriptor");
        return reorder(g, &smd, W->data, &w->md, w->buf);
    }
    /* other types: our own rounding into a plain bf16 copy, then the reorder */
    size_t n;
    if (size_mul((size_t)K, (size_t)N, &n) || size_mul(n, sizeof(uint16_t), &n))
        return err_set(COCHLEA_ERANGE, "gemm: weight too large");
    uint16_t *tmp = malloc(n);
    if (!tmp)
        return err_set(COCHLEA_ENOMEM, "gemm: cannot allocate %zu bytes to convert a weight to bf16", n);
    /* on the OpenMP team: the conversion and the first touch of a mapped weight's pages dominate
     * packing time (about 13 s for the 1B OWSM-CTC encoder on one thread) */
    cochlea_ctx team;
    memset(&team, 0, sizeof team);
    team.n_threads = g->n_threads;
    struct cvt_rows_args ca = {W, tmp};
    gemm_parallel(&team, 1, K * N, cvt_rows_run, &ca);
    int rc = md_2d(&smd, K, N, 1, K, dnnl_bf16) ? err_set(COCHLEA_EINTERNAL, "gemm: bad weight descriptor")
                                                  : reorder(g, &smd, tmp, &w->md, w->buf);
    free(tmp);
    return rc;
}

/* Fill w (int8 packing): per output row n, scale s = max|W[n,:]| / 127 and q = round(W / s). */
static int pack_int8(gemm *g, const tensor *W, struct packed *w)
{
    int64_t K = W->ne[0], N = W->ne[1];
    size_t n;
    if (size_mul((size_t)K, (size_t)N, &n))
        return err_set(COCHLEA_ERANGE, "gemm: weight too large");
    int8_t *q = malloc(n);
    float *row = malloc((size_t)K * sizeof(float));
    w->wscale = malloc((size_t)N * sizeof(float));
    int rc = COCHLEA_OK;
    if (!q || !row || !w->wscale) {
        rc = err_set(COCHLEA_ENOMEM, "gemm: cannot allocate %zu bytes to quantise a weight to int8", n);
        goto out;
    }
    for (int64_t r = 0; r < N && rc == 0; r++) {
        gemm_weight_rows_f32(W, r, 1, row);
        float amax = 0.0f;
        for (int64_t k = 0; k < K; k++) {
            float a = fabsf(row[k]);
            if (!(a <= 3.0e38f)) {
                rc = err_set(COCHLEA_EINVAL, "gemm: weight '%s' row %lld holds Inf or NaN; cannot quantise it to int8",
                             W->name ? W->name : "(unnamed)", (long long)r);
                break;
            }
            if (a > amax)
                amax = a;
        }
        float s = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        w->wscale[r] = s;
        int8_t *qr = q + (size_t)r * (size_t)K;
        for (int64_t k = 0; k < K; k++) {
            float v = nearbyintf(row[k] * inv);
            qr[k] = (int8_t)(v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v);
        }
    }
    if (rc == 0) {
        dnnl_memory_desc_t smd;
        rc = md_2d(&smd, K, N, 1, K, dnnl_s8) ? err_set(COCHLEA_EINTERNAL, "gemm: bad weight descriptor")
                                                : reorder(g, &smd, q, &w->md, w->buf);
    }
out:
    free(q);
    free(row);
    return rc;
}

/* W packed for prec in layout md (stale packings dropped first), made now if missing. */
static struct packed *pack_get(gemm *g, const tensor *W, enum cochlea_precision prec, const dnnl_memory_desc_t *md,
                               int *rc)
{
    struct gemm_dnnl *d = g->dnnl;
    uint64_t fp = gemm_weight_fingerprint(W);
    pack_drop_stale(g, W, fp);
    struct packed *w = pack_find(d, W, prec, md);
    if (w) {
        g->stats.pack_hits++;
        return w;
    }
    w = calloc(1, sizeof *w);
    if (!w) {
        *rc = err_set(COCHLEA_ENOMEM, "gemm: cannot allocate a packed-weight entry");
        return NULL;
    }
    w->data = W->data;
    w->type = W->type;
    w->K = W->ne[0];
    w->N = W->ne[1];
    w->nb1 = W->nb[1];
    w->prec = prec;
    w->fingerprint = fp;
    w->md = *md;
    w->bytes = dnnl_memory_desc_get_size(&w->md);
    w->buf = aligned_alloc(64, (w->bytes + 63) & ~(size_t)63);
    if (!w->buf) {
        *rc = err_set(COCHLEA_ENOMEM, "gemm: cannot allocate %zu bytes for a packed weight", w->bytes);
        free(w);
        return NULL;
    }
    g->stats.packed_bytes += w->bytes;
    g->stats.n_packed++;
    *rc = prec == COCHLEA_PRECISION_INT8 ? pack_int8(g, W, w) : pack_bf16(g, W, w);
    if (*rc) {
        err_prefix(*rc, "gemm: packing weight '%s' (%lld x %lld %s)", W->name ? W->name : "(unnamed)",
                   (long long)w->N, (long long)w->K, type_name(W->type));
        packed_destroy(g, w);
        return NULL;
    }
    g->stats.packs++;
    size_t b = pack_bucket(W->data);
    w->next = d->packs[b];
    d->packs[b] = w;
    return w;
}

/* The primitive for key k (kind BF16 or INT8) and W packed in the layout it reads: a layout W
 * already has is preferred, then the one oneDNN picks for this shape. *p = NULL (no error) when
 * oneDNN has no fast kernel for it. */
static int packed_product(gemm *g, const struct prim_key *k, const tensor *W, enum cochlea_precision prec,
                          struct prim **p, struct packed **w)
{
    int rc = COCHLEA_OK;
    *w = NULL;
    *p = prim_lookup(g, k);
    if (*p && !(*p)->p) {
        *p = NULL; /* known to have no fast kernel */
        return COCHLEA_OK;
    }
    if (!*p) {
        const dnnl_memory_desc_t *cands[MAX_LAYOUTS];
        dnnl_memory_desc_t any;
        pack_drop_stale(g, W, gemm_weight_fingerprint(W));
        int n = pack_layouts(g->dnnl, W, prec, cands);
        if (any_weights(k->kind, k->N, k->K, &any) != dnnl_success)
            return err_set(COCHLEA_EINTERNAL, "gemm: bad weight descriptor");
        if (!(*p = prim_create(g, k, cands, n, &any))) {
            LOG_DEBUG("%s", cochlea_last_error());
            cochlea_clear_error();
            return COCHLEA_OK;
        }
    }
    *w = pack_get(g, W, prec, &(*p)->wmd, &rc);
    return rc;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

/* Whether oneDNN has a non-reference implementation of a small problem of this kind. */
static int kind_available(struct gemm_dnnl *d, int kind)
{
    struct prim_key k;
    key_init(&k, kind, 16, 64, 64, 64, 0, 64, 0, 0.0f);
    dnnl_memory_desc_t any;
    dnnl_dims_t dims = {64, 64};
    if (dnnl_memory_desc_init_by_tag(&any, 2, dims, kind == PK_INT8 ? dnnl_s8 : dnnl_bf16, dnnl_format_tag_any))
        return 0;
    dnnl_primitive_desc_t pd = NULL;
    if (make_pd(d, &k, &any, 64, 0, &pd) != dnnl_success)
        return 0;
    const char *impl = pd_impl(pd);
    /* int8 needs VNNI/AMX: without them u8*s8 pair sums saturate at 16 bits */
    int ok = strncmp(impl, "ref", 3) != 0 && (kind != PK_INT8 || strstr(impl, "vnni") || strstr(impl, "amx"));
    LOG_DEBUG("gemm: oneDNN %s matmul: %s%s", kind == PK_INT8 ? "int8" : "bf16", impl, ok ? "" : " (not used)");
    dnnl_primitive_desc_destroy(pd);
    return ok;
}

int gemm_dnnl_init(gemm *g)
{
    struct gemm_dnnl *d = calloc(1, sizeof *d);
    if (!d)
        return err_set(COCHLEA_ENOMEM, "gemm: cannot allocate oneDNN state");
    dnnl_status_t s = dnnl_engine_create(&d->eng, dnnl_cpu, 0);
    if (s == dnnl_success && (s = dnnl_stream_create(&d->st, d->eng, dnnl_stream_default_flags)) != dnnl_success)
        dnnl_engine_destroy(d->eng);
    if (s != dnnl_success) {
        free(d);
        return dnnl_err(s, "creating the CPU engine");
    }
    g->dnnl = d;
    d->has_bf16 = kind_available(d, PK_BF16);
    d->has_int8 = kind_available(d, PK_INT8);
    return COCHLEA_OK;
}

void gemm_dnnl_free(gemm *g)
{
    struct gemm_dnnl *d = g->dnnl;
    if (!d)
        return;
    for (int b = 0; b < PRIM_BUCKETS; b++) {
        while (d->prims[b]) {
            struct prim *p = d->prims[b];
            d->prims[b] = p->next;
            if (p->p)
                g->stats.n_primitives--;
            prim_destroy(p);
        }
    }
    for (int b = 0; b < PACK_BUCKETS; b++) {
        while (d->packs[b]) {
            struct packed *w = d->packs[b];
            d->packs[b] = w->next;
            packed_destroy(g, w);
        }
    }
    gemm_buf_free(g, &d->scratchpad);
    dnnl_stream_destroy(d->st);
    dnnl_engine_destroy(d->eng);
    free(d);
    g->dnnl = NULL;
}

int gemm_dnnl_has_int8(const gemm *g)
{
    return g->dnnl && g->dnnl->has_int8;
}

int gemm_dnnl_has_bf16(const gemm *g)
{
    return g->dnnl && g->dnnl->has_bf16;
}

/* ---- products -------------------------------------------------------------------------- */

int gemm_dnnl_sgemm(gemm *g, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    set_threads(g);
    dnnl_status_t s = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return s == dnnl_success ? COCHLEA_OK : dnnl_err(s, "sgemm");
}

int gemm_dnnl_rows(cochlea_ctx *ctx, const float *x, int64_t M, int64_t ldx, const float *w, int64_t ldw, int64_t K,
                   int64_t N, const float *bias, float beta, float *y, int64_t ldy)
{
    gemm *g = ctx->gemm;
    struct prim_key k;
    dnnl_memory_desc_t wmd;
    key_init(&k, PK_F32, M, N, K, ldx, ldw, ldy, bias != NULL, beta);
    if (md_2d(&wmd, K, N, 1, ldw, dnnl_f32))
        return err_set(COCHLEA_EINTERNAL, "gemm: bad f32 weight descriptor");
    const dnnl_memory_desc_t *cand = &wmd;
    struct prim *p = prim_lookup(g, &k);
    if (!p)
        p = prim_create(g, &k, &cand, 1, NULL);
    if (!p || !p->p) {
        cochlea_clear_error();
        /* no oneDNN f32 kernel for this shape: OpenBLAS does it */
        g->stats.fallbacks++;
        return gemm_blas_rows(ctx, x, M, ldx, w, ldw, K, N, bias, beta, y, ldy);
    }
    return prim_exec(g, p, x, w, bias, NULL, NULL, beta, y, ldy);
}

static int linear_bf16(cochlea_ctx *ctx, const float *x, int64_t M, int64_t ldx, const tensor *W, const float *bias,
                       float beta, float *y, int64_t ldy, int *fell_back)
{
    gemm *g = ctx->gemm;
    int rc;
    int64_t K = W->ne[0], N = W->ne[1];
    struct prim_key k;
    struct prim *p;
    struct packed *w;
    key_init(&k, PK_BF16, M, N, K, K, 0, ldy, bias != NULL, beta);
    if ((rc = packed_product(g, &k, W, COCHLEA_PRECISION_BF16, &p, &w)) != 0)
        return rc;
    if (!p) {
        *fell_back = 1;
        return COCHLEA_OK;
    }
    size_t need;
    if (size_mul((size_t)M * sizeof(uint16_t), (size_t)K, &need))
        return err_set(COCHLEA_ERANGE, "gemm: activation block overflows");
    uint16_t *xb = gemm_buf_get(g, &g->act, need);
    if (!xb)
        return COCHLEA_ENOMEM;
    gemm_rows_to_bf16(ctx, 1, x, M, K, ldx, xb);
    return prim_exec(g, p, xb, w->buf, bias, NULL, NULL, beta, y, ldy);
}

/* u8 activations: one scale s and zero point z for the block, x ~ s * (q - z), range widened to
 * include 0 so that 0 is exact. Returns 0 when x holds Inf/NaN. */
static int act_quant_params(cochlea_ctx *ctx, const float *x, int64_t M, int64_t K, int64_t ldx, float *scale,
                            int32_t *zp)
{
    float mn, mx;
    if (!gemm_rows_minmax(ctx, 1, x, M, K, ldx, &mn, &mx))
        return 0;
    if (mn > 0.0f)
        mn = 0.0f;
    if (mx < 0.0f)
        mx = 0.0f;
    float s = (mx - mn) / 255.0f;
    if (!(s > 0.0f) || !isfinite(s) || !isfinite(1.0f / s)) {
        if (mx - mn == 0.0f) {
            *scale = 1.0f;
            *zp = 0;
            return 1;
        }
        return 0;
    }
    float z = nearbyintf(-mn / s);
    *scale = s;
    *zp = (int32_t)(z < 0.0f ? 0.0f : z > 255.0f ? 255.0f : z);
    return 1;
}

static int linear_int8(cochlea_ctx *ctx, const float *x, int64_t M, int64_t ldx, const tensor *W, const float *bias,
                       float beta, float *y, int64_t ldy, int *fell_back)
{
    gemm *g = ctx->gemm;
    int rc;
    int64_t K = W->ne[0], N = W->ne[1];
    float s;
    int32_t zp;
    if (!act_quant_params(ctx, x, M, K, ldx, &s, &zp)) {
        *fell_back = 2; /* Inf/NaN or a range beyond float: the fp32 path keeps them */
        return COCHLEA_OK;
    }
    struct prim_key k;
    struct prim *p;
    struct packed *w;
    key_init(&k, PK_INT8, M, N, K, K, 0, ldy, bias != NULL, beta);
    if ((rc = packed_product(g, &k, W, COCHLEA_PRECISION_INT8, &p, &w)) != 0)
        return rc;
    if (!p) {
        *fell_back = 1;
        return COCHLEA_OK;
    }
    size_t need;
    if (size_mul((size_t)M, (size_t)K, &need))
        return err_set(COCHLEA_ERANGE, "gemm: activation block overflows");
    uint8_t *xq = gemm_buf_get(g, &g->act, need);
    /* N scales, then the zero point */
    float *scale = xq ? gemm_buf_get(g, &g->aux, (size_t)(N + 1) * sizeof(float)) : NULL;
    if (!scale)
        return COCHLEA_ENOMEM;
    gemm_rows_to_u8(ctx, 1, x, M, K, ldx, 1.0f / s, zp, xq);
    for (int64_t n = 0; n < N; n++)
        scale[n] = s * w->wscale[n];
    int32_t *zpp = (int32_t *)(void *)(scale + N);
    *zpp = zp;
    return prim_exec(g, p, xq, w->buf, bias, scale, zpp, beta, y, ldy);
}

int gemm_dnnl_linear(cochlea_ctx *ctx, enum cochlea_precision precision, const float *x, int64_t M, int64_t ldx,
                     const tensor *W, const float *bias, float beta, float *y, int64_t ldy)
{
    gemm *g = ctx->gemm;
    struct gemm_dnnl *d = g->dnnl;
    int rc, fell = 0;
    switch (precision) {
    case COCHLEA_PRECISION_INT8:
        if (d->has_int8) {
            if ((rc = linear_int8(ctx, x, M, ldx, W, bias, beta, y, ldy, &fell)) != 0 || !fell)
                return rc;
            g->stats.fallbacks++;
            if (fell == 2)
                return gemm_linear_f32(ctx, x, M, ldx, W, bias, beta, y, ldy, gemm_dnnl_rows, 1);
            LOG_DEBUG("gemm: int8 matmul unavailable for M=%lld, weight '%s'; using bf16", (long long)M,
                      W->name ? W->name : "(unnamed)");
            cochlea_clear_error();
        } else {
            g->stats.fallbacks++;
        }
        fell = 0;
        /* fall through */
    case COCHLEA_PRECISION_BF16:
        if (d->has_bf16) {
            if ((rc = linear_bf16(ctx, x, M, ldx, W, bias, beta, y, ldy, &fell)) != 0 || !fell)
                return rc;
            g->stats.fallbacks++;
            LOG_DEBUG("gemm: bf16 matmul unavailable for M=%lld, weight '%s'; using f32", (long long)M,
                      W->name ? W->name : "(unnamed)");
            cochlea_clear_error();
        } else if (precision == COCHLEA_PRECISION_BF16) {
            g->stats.fallbacks++;
        }
        /* fall through */
    case COCHLEA_PRECISION_F32: return gemm_linear_f32(ctx, x, M, ldx, W, bias, beta, y, ldy, gemm_dnnl_rows, 1);
    }
    return err_set(COCHLEA_EINVAL, "gemm_linear: unknown precision %d", (int)precision);
}

int gemm_dnnl_prepare(gemm *g, const tensor *W, enum cochlea_precision precision)
{
    struct gemm_dnnl *d = g->dnnl;
    if (precision == COCHLEA_PRECISION_INT8 && !d->has_int8)
        precision = COCHLEA_PRECISION_BF16;
    if (precision == COCHLEA_PRECISION_BF16 && !d->has_bf16)
        return COCHLEA_OK;
    if (precision != COCHLEA_PRECISION_BF16 && precision != COCHLEA_PRECISION_INT8)
        return precision == COCHLEA_PRECISION_F32 ? COCHLEA_OK
                                                  : err_set(COCHLEA_EINVAL, "gemm_prepare: unknown precision %d",
                                                            (int)precision);
    /* the layout for a PACK_M-row product with a bias; other M reuse it when their kernel can */
    struct prim_key k;
    struct prim *p;
    struct packed *w;
    key_init(&k, precision == COCHLEA_PRECISION_INT8 ? PK_INT8 : PK_BF16, PACK_M, W->ne[1], W->ne[0], W->ne[0], 0,
             W->ne[1], 1, 0.0f);
    return packed_product(g, &k, W, precision, &p, &w);
}

void gemm_dnnl_forget(gemm *g, const tensor *W)
{
    struct gemm_dnnl *d = g->dnnl;
    if (!d)
        return;
    struct packed **pp = &d->packs[pack_bucket(W->data)];
    while (*pp) {
        struct packed *w = *pp;
        if (w->data == W->data) {
            *pp = w->next;
            packed_destroy(g, w);
        } else {
            pp = &w->next;
        }
    }
}

const void *gemm_dnnl_packed(const gemm *g, const tensor *W, enum cochlea_precision precision)
{
    if (!g->dnnl)
        return NULL;
    const struct packed *w = pack_find(g->dnnl, W, precision, NULL);
    return w ? w->buf : NULL;
}
