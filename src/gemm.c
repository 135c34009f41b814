/* gemm.c - GEMM front end: argument checks, dispatch to the backends, the tiled fp32 Linear
 * path, scratch buffers and the conversion kernels the backends share. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gemm_internal.h"

/* GEMM_NO_SIMD: build only the portable kernels (to test them on an AVX-512 machine). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(GEMM_NO_SIMD)
#include <immintrin.h>
#define GEMM_X86 1
#endif

/* ---- lifecycle ------------------------------------------------------------------------- */

int gemm_create(int n_threads, gemm **out)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return err_set(COCHLEA_EINVAL, "gemm: thread count %d out of range (1 to 1024)", n_threads);
    gemm *g = calloc(1, sizeof *g);
    if (!g)
        return err_set(COCHLEA_ENOMEM, "cannot allocate GEMM backend state");
    g->n_threads = n_threads;
    g->backend = GEMM_BACKEND_AUTO;
#ifdef HAVE_DNNL
    if (gemm_dnnl_init(g) != 0) {
        /* Not fatal: the OpenBLAS path still works. */
        LOG_WARN("oneDNN unavailable, using OpenBLAS fp32 for every precision: %s", cochlea_last_error());
        cochlea_clear_error();
    }
#endif
    *out = g;
    return COCHLEA_OK;
}

void gemm_buf_free(gemm *g, gemm_buf *b)
{
    if (b->p) {
        g->stats.scratch_bytes -= b->size;
        free(b->p);
    }
    b->p = NULL;
    b->size = 0;
}

void gemm_free(gemm *g)
{
    if (!g)
        return;
#ifdef HAVE_DNNL
    gemm_dnnl_free(g);
#endif
    gemm_buf_free(g, &g->tile);
    gemm_buf_free(g, &g->act);
    gemm_buf_free(g, &g->aux);
    gemm_buf_free(g, &g->out);
    free(g);
}

void *gemm_buf_get(gemm *g, gemm_buf *b, size_t size)
{
    if (size <= b->size && b->p)
        return b->p;
    if (size == 0)
        size = 1;
    size_t alloc;
    /* grow by at least 1/4 to avoid reallocating for slowly growing sizes */
    if (size_add(size, size / 4, &alloc) || size_add(alloc, 63, &alloc))
        alloc = size + 63 < size ? 0 : size + 63;
    if (alloc == 0) {
        err_set(COCHLEA_ERANGE, "gemm: scratch buffer of %zu bytes overflows", size);
        return NULL;
    }
    alloc &= ~(size_t)63;
    void *p = aligned_alloc(64, alloc);
    if (!p) {
        err_set(COCHLEA_ENOMEM, "gemm: cannot allocate a scratch buffer of %zu bytes", alloc);
        return NULL;
    }
    gemm_buf_free(g, b);
    b->p = p;
    b->size = alloc;
    g->stats.scratch_bytes += alloc;
    return p;
}

static int use_dnnl(const gemm *g)
{
    return g->dnnl != NULL && g->backend != GEMM_BACKEND_OPENBLAS;
}

int gemm_set_backend(gemm *g, enum gemm_backend backend)
{
    if (backend != GEMM_BACKEND_AUTO && backend != GEMM_BACKEND_OPENBLAS && backend != GEMM_BACKEND_ONEDNN)
        return err_set(COCHLEA_EINVAL, "gemm: unknown backend %d", (int)backend);
    if (backend == GEMM_BACKEND_ONEDNN && !g->dnnl)
#ifdef HAVE_DNNL
        return err_set(COCHLEA_EUNSUPPORTED, "gemm: oneDNN backend asked for, but oneDNN failed to start");
#else
        return err_set(COCHLEA_EUNSUPPORTED, "gemm: oneDNN backend asked for, but this build has no oneDNN "
                                             "(configured --without-dnnl or libdnnl-dev missing)");
#endif
    g->backend = backend;
    return COCHLEA_OK;
}

const char *gemm_backend_name(const gemm *g, enum cochlea_precision precision)
{
    if (!use_dnnl(g)) {
        if (precision == COCHLEA_PRECISION_F32)
            return "openblas-f32";
#ifdef HAVE_DNNL
        return g->dnnl ? "openblas-f32 (oneDNN switched off)" : "openblas-f32 (oneDNN failed to start)";
#else
        return "openblas-f32 (built without oneDNN)";
#endif
    }
#ifdef HAVE_DNNL
    switch (precision) {
    case COCHLEA_PRECISION_F32: return "onednn-f32";
    case COCHLEA_PRECISION_BF16: return gemm_dnnl_has_bf16(g) ? "onednn-bf16" : "onednn-f32 (bf16 unavailable)";
    case COCHLEA_PRECISION_INT8:
        if (gemm_dnnl_has_int8(g))
            return "onednn-int8";
        return gemm_dnnl_has_bf16(g) ? "onednn-bf16 (int8 unavailable)" : "onednn-f32 (int8, bf16 unavailable)";
    }
#endif
    return "unknown precision";
}

void gemm_get_stats(const gemm *g, gemm_stats *out)
{
    *out = g->stats;
}

/* ---- argument checks ------------------------------------------------------------------- */

static const char *wname(const tensor *W)
{
    return W && W->name ? W->name : "(unnamed)";
}

int gemm_check_weight(const tensor *W, const char *fn)
{
    if (!W)
        return err_set(COCHLEA_EINVAL, "%s: no weight tensor", fn);
    switch (W->type) {
    case COCHLEA_TYPE_F32:
    case COCHLEA_TYPE_F16:
    case COCHLEA_TYPE_BF16:
    case COCHLEA_TYPE_Q8_0: break;
    default:
        return err_set(COCHLEA_EUNSUPPORTED, "%s: weight '%s' has type %s (%d); F32, F16, BF16 or Q8_0 expected", fn,
                       wname(W), type_name(W->type) ? type_name(W->type) : "unknown", (int)W->type);
    }
    if (!W->data)
        return err_set(COCHLEA_EINVAL, "%s: weight '%s' has no data", fn, wname(W));
    int64_t K = W->ne[0], N = W->ne[1];
    if (K < 1 || N < 1 || W->ne[2] != 1 || W->ne[3] != 1)
        return err_set(COCHLEA_EINVAL, "%s: weight '%s' has shape [%lld, %lld, %lld, %lld]; a 2-D {K, N} weight expected",
                       fn, wname(W), (long long)W->ne[0], (long long)W->ne[1], (long long)W->ne[2],
                       (long long)W->ne[3]);
    if (K > INT32_MAX || N > INT32_MAX)
        return err_set(COCHLEA_ERANGE, "%s: weight '%s' is %lld x %lld, larger than 2^31-1 in a dimension", fn,
                       wname(W), (long long)N, (long long)K);
    size_t row;
    if (W->type == COCHLEA_TYPE_Q8_0 && K % QK8_0 != 0)
        return err_set(COCHLEA_EINVAL, "%s: Q8_0 weight '%s' has rows of %lld elements, not a multiple of %d", fn,
                       wname(W), (long long)K, QK8_0);
    if (type_row_size(W->type, K, &row))
        return err_prefix(COCHLEA_ERANGE, "%s: weight '%s'", fn, wname(W));
    if (W->nb[0] != type_size(W->type) || W->nb[1] < row)
        return err_set(COCHLEA_EINVAL,
                       "%s: weight '%s' is not row-contiguous (element stride %zu, row stride %zu, row %zu bytes)", fn,
                       wname(W), W->nb[0], W->nb[1], row);
    size_t span;
    if (size_mul(W->nb[1], (size_t)(N - 1), &span) || size_add(span, row, &span))
        return err_set(COCHLEA_ERANGE, "%s: weight '%s' spans more than the address space", fn, wname(W));
    return COCHLEA_OK;
}

/* Check x/y shapes for gemm_linear. */
static int check_linear(const float *x, int64_t M, int64_t ldx, const tensor *W, const float *y, int64_t ldy)
{
    int rc = gemm_check_weight(W, "gemm_linear");
    if (rc)
        return rc;
    int64_t K = W->ne[0], N = W->ne[1];
    if (M < 0 || M > INT32_MAX)
        return err_set(COCHLEA_EINVAL, "gemm_linear: weight '%s': row count M=%lld out of range (0 to 2^31-1)",
                       wname(W), (long long)M);
    if (ldx < K || ldx > INT32_MAX)
        return err_set(COCHLEA_EINVAL, "gemm_linear: weight '%s': input row stride %lld is below K=%lld or too large",
                       wname(W), (long long)ldx, (long long)K);
    if (ldy < N || ldy > INT32_MAX)
        return err_set(COCHLEA_EINVAL,
                       "gemm_linear: weight '%s': output row stride %lld is below N=%lld or too large", wname(W),
                       (long long)ldy, (long long)N);
    if (M > 0 && (!x || !y))
        return err_set(COCHLEA_EINVAL, "gemm_linear: weight '%s': missing input or output", wname(W));
    return COCHLEA_OK;
}

/* ---- fingerprint ----------------------------------------------------------------------- */

/* Mix n bytes into h, 8 at a time (a multiply-xorshift step per word; the tail byte-wise). */
static uint64_t mix_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, b + i, 8);
        h = (h ^ v) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

uint64_t gemm_weight_fingerprint(const tensor *W)
{
    uint64_t h = 0xcbf29ce484222325ull;
    int64_t hdr[4] = {(int64_t)W->type, W->ne[0], W->ne[1], (int64_t)W->nb[1]};
    h = mix_bytes(h, hdr, sizeof hdr);
    size_t row = 0;
    type_row_size(W->type, W->ne[0], &row);
    size_t chunk = row < 16 ? row : 16;
    int64_t N = W->ne[1], nr = N < 16 ? N : 16;
    for (int64_t i = 0; i < nr; i++) {
        int64_t r = nr > 1 ? i * (N - 1) / (nr - 1) : 0;
        const char *p = (const char *)W->data + (size_t)r * W->nb[1];
        h = mix_bytes(h, p, chunk);
        h = mix_bytes(h, p + row - chunk, chunk);
    }
    return h;
}

/* ---- conversion kernels ---------------------------------------------------------------- */

#ifdef GEMM_X86
static int cpu_has(int what)
{
    __builtin_cpu_init();
    switch (what) {
    case 0: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    case 1: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
    }
    return 0;
}
#define HAS_AVX512() cpu_has(0)
#define HAS_AVX512BF16() cpu_has(1)

/* f32 -> bf16 with the AVX512-BF16 instruction (round to nearest even, NaN stays NaN). */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void cvt_bf16_avx512bf16(const float *x,
                                                                                                uint16_t *o, size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh r = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
        _mm512_storeu_si512((void *)(o + i), (__m512i)r);
    }
    for (; i < n; i += 16) {
        size_t left = n - i;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __m256bh r = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i));
        _mm256_mask_storeu_epi16((void *)(o + i), m, (__m256i)r);
    }
}

/* f32 -> bf16 in integer arithmetic, bit-identical to f32_to_bf16 (AVX-512F without BF16). */
__attribute__((target("avx512f,avx512bw"))) static void cvt_bf16_avx512(const float *x, uint16_t *o, size_t n)
{
    const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
    const __m512i absm = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i qbit = _mm512_set1_epi32(0x40);
    for (size_t i = 0; i < n; i += 16) {
        size_t left = n - i;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + i));
        __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(bias, lsb)), 16);
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, absm), inf);
        r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), qbit));
        _mm512_mask_cvtepi32_storeu_epi16((void *)(o + i), m, r);
    }
}

__attribute__((target("avx512f"))) static void f16_to_f32_avx512(const uint16_t *in, float *out, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(in + i))));
    for (; i < n; i++)
        out[i] = fp16_to_f32(in[i]);
}

__attribute__((target("avx512f"))) static void bf16_to_f32_avx512(const uint16_t *in, float *out, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(in + i)));
        _mm512_storeu_ps(out + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
    }
    for (; i < n; i++)
        out[i] = bf16_to_f32(in[i]);
}

/* Q8_0 blocks -> f32: x = d * q per block of 32. */
__attribute__((target("avx512f"))) static void q8_0_to_f32_avx512(const block_q8_0 *in, float *out, size_t n)
{
    for (size_t b = 0; b < n / QK8_0; b++) {
        __m512 d = _mm512_set1_ps(fp16_to_f32(in[b].d));
        __m512i lo = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)in[b].qs));
        __m512i hi = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(in[b].qs + 16)));
        _mm512_storeu_ps(out + b * QK8_0, _mm512_mul_ps(d, _mm512_cvtepi32_ps(lo)));
        _mm512_storeu_ps(out + b * QK8_0 + 16, _mm512_mul_ps(d, _mm512_cvtepi32_ps(hi)));
    }
}

/* min/max of n floats; returns 0 when a NaN or Inf is present. */
__attribute__((target("avx512f"))) static int minmax_avx512(const float *x, size_t n, float *mn, float *mx)
{
    __m512 vmin = _mm512_set1_ps(INFINITY), vmax = _mm512_set1_ps(-INFINITY);
    __mmask16 bad = 0;
    const __m512 inf = _mm512_set1_ps(INFINITY);
    for (size_t i = 0; i < n; i += 16) {
        size_t left = n - i;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        /* not (|v| < inf) catches NaN and Inf */
        bad |= (__mmask16)(m & ~_mm512_cmp_ps_mask(_mm512_abs_ps(v), inf, _CMP_LT_OQ));
        vmin = _mm512_mask_min_ps(vmin, m, vmin, v);
        vmax = _mm512_mask_max_ps(vmax, m, vmax, v);
    }
    float a = _mm512_reduce_min_ps(vmin), b = _mm512_reduce_max_ps(vmax);
    if (a < *mn)
        *mn = a;
    if (b > *mx)
        *mx = b;
    return bad == 0;
}

__attribute__((target("avx512f"))) static void to_u8_avx512(const float *x, size_t n, float inv, int32_t zp,
                                                            uint8_t *out)
{
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i vzp = _mm512_set1_epi32(zp), lo = _mm512_setzero_si512(), hi = _mm512_set1_epi32(255);
    for (size_t i = 0; i < n; i += 16) {
        size_t left = n - i;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vinv));
        q = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(q, vzp), lo), hi);
        _mm512_mask_cvtepi32_storeu_epi8(out + i, m, q);
    }
}
#else
#define HAS_AVX512() 0
#define HAS_AVX512BF16() 0
#endif

static void row_to_f32(const tensor *W, int64_t r, float *out, int avx)
{
#ifdef GEMM_X86
    const void *p = tensor_row(W, r);
    size_t n = (size_t)W->ne[0];
    if (avx) {
        switch (W->type) {
        case COCHLEA_TYPE_F16: f16_to_f32_avx512(p, out, n); return;
        case COCHLEA_TYPE_BF16: bf16_to_f32_avx512(p, out, n); return;
        case COCHLEA_TYPE_Q8_0: q8_0_to_f32_avx512(p, out, n); return;
        default: break;
        }
    }
#else
    (void)avx;
#endif
    tensor_row_to_f32(W, r, out);
}

void gemm_weight_rows_f32(const tensor *W, int64_t r0, int64_t nr, float *out)
{
    int avx = HAS_AVX512();
    size_t K = (size_t)W->ne[0];
    for (int64_t r = 0; r < nr; r++)
        row_to_f32(W, r0 + r, out + (size_t)r * K, avx);
}

static void cvt_bf16(const float *x, uint16_t *o, size_t n, int kind)
{
#ifdef GEMM_X86
    if (kind == 2) {
        cvt_bf16_avx512bf16(x, o, n);
        return;
    }
    if (kind == 1) {
        cvt_bf16_avx512(x, o, n);
        return;
    }
#else
    (void)kind;
#endif
    f32_to_bf16_array(x, o, n);
}

int gemm_cvt_bf16_kernel(const float *x, uint16_t *out, size_t n, int kernel)
{
    if (kernel < 0 || kernel > 2 || (kernel == 1 && !HAS_AVX512()) || (kernel == 2 && !HAS_AVX512BF16()))
        return COCHLEA_EUNSUPPORTED;
    cvt_bf16(x, out, n, kernel);
    return COCHLEA_OK;
}

static int bf16_kind(void)
{
    return HAS_AVX512BF16() ? 2 : HAS_AVX512() ? 1 : 0;
}

void gemm_weight_rows_bf16(const tensor *W, int64_t r0, int64_t nr, uint16_t *out)
{
    size_t K = (size_t)W->ne[0];
    int avx = HAS_AVX512(), kind = bf16_kind();
    float tmp[1024];
    for (int64_t r = 0; r < nr; r++) {
        uint16_t *o = out + (size_t)r * K;
        if (W->type == COCHLEA_TYPE_BF16) {
            memcpy(o, tensor_row(W, r0 + r), K * sizeof(uint16_t));
            continue;
        }
        if (W->type == COCHLEA_TYPE_F32) {
            cvt_bf16(tensor_row(W, r0 + r), o, K, kind);
            continue;
        }
        /* F16 or Q8_0: through fp32 in pieces of a multiple of 32 elements (exact), then round once */
        const char *p = tensor_row(W, r0 + r);
        for (size_t k0 = 0; k0 < K; k0 += 1024) {
            size_t n = K - k0 < 1024 ? K - k0 : 1024;
            tensor piece = *W;
            piece.ne[0] = (int64_t)n;
            piece.ne[1] = 1;
            if (W->type == COCHLEA_TYPE_Q8_0)
                piece.data = (void *)(p + k0 / QK8_0 * sizeof(block_q8_0));
            else
                piece.data = (void *)(p + k0 * type_size(W->type));
            row_to_f32(&piece, 0, tmp, avx);
            cvt_bf16(tmp, o + k0, n, kind);
        }
    }
}

/* ---- parallel activation kernels ------------------------------------------------------ */

#ifdef HAVE_GOMP
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
int omp_get_thread_num(void);
int omp_get_num_threads(void);

struct omp_wrap {
    void (*fn)(void *, int, int);
    void *arg;
};

static void omp_trampoline(void *p)
{
    struct omp_wrap *w = p;
    w->fn(w->arg, omp_get_thread_num(), omp_get_num_threads());
}
#endif

void gemm_parallel(cochlea_ctx *ctx, int omp, int64_t work, void (*fn)(void *arg, int ith, int nth), void *arg)
{
    /* All the context's threads or none: libgomp ends the surplus threads of a team when the next
     * region is smaller and starts new ones when it grows again, so a region of another size
     * between two oneDNN products would cost a thread creation per thread and call. */
    if (ctx->n_threads <= 1 || work < 2 * GEMM_GRAIN) {
        fn(arg, 0, 1);
        return;
    }
#ifdef HAVE_GOMP
    if (omp) {
        /* libgomp's entry point for `#pragma omp parallel num_threads(n)` */
        struct omp_wrap w = {fn, arg};
        pool_nap(ctx->pool);
        GOMP_parallel(omp_trampoline, &w, (unsigned)ctx->n_threads, 0);
        return;
    }
#else
    (void)omp;
#endif
    if (ctx->pool)
        pool_run(ctx->pool, fn, arg);
    else
        fn(arg, 0, 1);
}

enum { OP_BF16, OP_MINMAX, OP_U8 };

/* One pass over an [M, K] block with row stride ldx; a dense block (ldx == K) is one long row so
 * that few-row blocks still split across threads. */
struct act_task {
    int op, kind;
    const float *x;
    int64_t rows, cols, ldx;
    void *out;
    float inv;
    int32_t zp;
    float mn[1024], mx[1024];
    int ok[1024];
};

static void act_piece(struct act_task *t, int ith, const float *x, size_t n, size_t out_off)
{
    switch (t->op) {
    case OP_BF16: cvt_bf16(x, (uint16_t *)t->out + out_off, n, t->kind); break;
    case OP_U8:
#ifdef GEMM_X86
        if (t->kind) {
            to_u8_avx512(x, n, t->inv, t->zp, (uint8_t *)t->out + out_off);
            break;
        }
#endif
        for (size_t k = 0; k < n; k++) {
            float q = nearbyintf(x[k] * t->inv) + (float)t->zp;
            ((uint8_t *)t->out)[out_off + k] = (uint8_t)(q < 0.0f ? 0.0f : q > 255.0f ? 255.0f : q);
        }
        break;
    case OP_MINMAX:
#ifdef GEMM_X86
        if (t->kind) {
            t->ok[ith] &= minmax_avx512(x, n, &t->mn[ith], &t->mx[ith]);
            break;
        }
#endif
        for (size_t k = 0; k < n; k++) {
            float v = x[k];
            if (!isfinite(v))
                t->ok[ith] = 0;
            if (v < t->mn[ith])
                t->mn[ith] = v;
            if (v > t->mx[ith])
                t->mx[ith] = v;
        }
        break;
    }
}

static void act_run(void *arg, int ith, int nth)
{
    struct act_task *t = arg;
    int64_t b, e;
    if (t->rows == 1) {
        /* split one long row in pieces of whole 64-element chunks */
        int64_t chunks = (t->cols + 63) / 64;
        pool_split(chunks, ith, nth, &b, &e);
        b *= 64;
        e = e * 64 < t->cols ? e * 64 : t->cols;
        if (e > b)
            act_piece(t, ith, t->x + b, (size_t)(e - b), (size_t)b);
        return;
    }
    pool_split(t->rows, ith, nth, &b, &e);
    for (int64_t i = b; i < e; i++)
        act_piece(t, ith, t->x + (size_t)i * (size_t)t->ldx, (size_t)t->cols, (size_t)i * (size_t)t->cols);
}

static void act_init(struct act_task *t, int op, const float *x, int64_t M, int64_t K, int64_t ldx, void *out)
{
    t->op = op;
    t->x = x;
    t->out = out;
    t->rows = ldx == K ? 1 : M;
    t->cols = ldx == K ? M * K : K;
    t->ldx = ldx;
    t->kind = op == OP_BF16 ? bf16_kind() : HAS_AVX512();
}

void gemm_rows_to_bf16(cochlea_ctx *ctx, int omp, const float *x, int64_t M, int64_t K, int64_t ldx, uint16_t *out)
{
    struct act_task t;
    act_init(&t, OP_BF16, x, M, K, ldx, out);
    gemm_parallel(ctx, omp, M * K, act_run, &t);
}

int gemm_rows_minmax(cochlea_ctx *ctx, int omp, const float *x, int64_t M, int64_t K, int64_t ldx, float *mn,
                     float *mx)
{
    struct act_task t;
    act_init(&t, OP_MINMAX, x, M, K, ldx, NULL);
    for (int i = 0; i < 1024; i++) {
        t.mn[i] = INFINITY;
        t.mx[i] = -INFINITY;
        t.ok[i] = 1;
    }
    gemm_parallel(ctx, omp, M * K, act_run, &t);
    int ok = 1;
    *mn = INFINITY;
    *mx = -INFINITY;
    for (int i = 0; i < 1024; i++) {
        ok &= t.ok[i];
        *mn = t.mn[i] < *mn ? t.mn[i] : *mn;
        *mx = t.mx[i] > *mx ? t.mx[i] : *mx;
    }
    return ok;
}

void gemm_rows_to_u8(cochlea_ctx *ctx, int omp, const float *x, int64_t M, int64_t K, int64_t ldx, float inv_scale,
                     int32_t zp, uint8_t *out)
{
    struct act_task t;
    act_init(&t, OP_U8, x, M, K, ldx, out);
    t.inv = inv_scale;
    t.zp = zp;
    gemm_parallel(ctx, omp, M * K, act_run, &t);
}

void gemm_prefill_bias(float *y, int64_t M, int64_t N, int64_t ldy, const float *bias, float beta)
{
    for (int64_t i = 0; i < M; i++) {
        float *r = y + (size_t)i * (size_t)ldy;
        if (beta == 0.0f) {
            if (bias)
                memcpy(r, bias, (size_t)N * sizeof(float));
            else
                memset(r, 0, (size_t)N * sizeof(float));
        } else if (bias) {
            for (int64_t j = 0; j < N; j++)
                r[j] = bias[j] + beta * r[j];
        } else if (beta != 1.0f) {
            for (int64_t j = 0; j < N; j++)
                r[j] *= beta;
        }
    }
}

/* ---- the fp32 Linear path -------------------------------------------------------------- */

struct dequant_task {
    const tensor *W;
    int64_t r0, nr;
    float *out;
};

static void dequant_run(void *arg, int ith, int nth)
{
    struct dequant_task *t = arg;
    int64_t b, e;
    pool_split(t->nr, ith, nth, &b, &e);
    if (e > b)
        gemm_weight_rows_f32(t->W, t->r0 + b, e - b, t->out + (size_t)b * (size_t)t->W->ne[0]);
}

int gemm_linear_f32(cochlea_ctx *ctx, const float *x, int64_t M, int64_t ldx, const tensor *W, const float *bias,
                    float beta, float *y, int64_t ldy, gemm_rows_fn rows, int omp)
{
    int64_t K = W->ne[0], N = W->ne[1];
    if (W->type == COCHLEA_TYPE_F32 && W->nb[1] % sizeof(float) == 0 && ((uintptr_t)W->data % sizeof(float)) == 0)
        return rows(ctx, x, M, ldx, W->data, (int64_t)(W->nb[1] / sizeof(float)), K, N, bias, beta, y, ldy);
    /* Tiles of rows: small M is dominated by per-call overhead, so it takes larger tiles. */
    size_t bytes = M >= 64 ? GEMM_TILE_BYTES : 4 * GEMM_TILE_BYTES;
    int64_t tr = (int64_t)(bytes / ((size_t)K * sizeof(float)));
    tr = tr < 16 ? 16 : tr / 16 * 16;
    if (tr > N)
        tr = N;
    size_t need;
    if (size_mul((size_t)tr * sizeof(float), (size_t)K, &need))
        return err_set(COCHLEA_ERANGE, "gemm_linear: weight '%s': tile size overflows", wname(W));
    float *t = gemm_buf_get(ctx->gemm, &ctx->gemm->tile, need);
    if (!t)
        return err_prefix(COCHLEA_ENOMEM, "gemm_linear: weight '%s'", wname(W));
    for (int64_t n0 = 0; n0 < N; n0 += tr) {
        int64_t nr = N - n0 < tr ? N - n0 : tr;
        struct dequant_task dt = {W, n0, nr, t};
        gemm_parallel(ctx, omp, nr * K, dequant_run, &dt);
        int rc = rows(ctx, x, M, ldx, t, K, K, nr, bias ? bias + n0 : NULL, beta, y + n0, ldy);
        if (rc)
            return rc;
    }
    return COCHLEA_OK;
}

/* ---- public entry points --------------------------------------------------------------- */

int gemm_f32(cochlea_ctx *ctx, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
             const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (!ctx || !ctx->gemm)
        return err_set(COCHLEA_EINVAL, "gemm_f32: no context");
    if (M < 0 || N < 0 || K < 0 || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX)
        return err_set(COCHLEA_EINVAL, "gemm_f32: bad sizes M=%lld N=%lld K=%lld (0 to 2^31-1 each)", (long long)M,
                       (long long)N, (long long)K);
    int64_t acols = trans_a ? M : K, bcols = trans_b ? K : N;
    if (lda < (acols > 1 ? acols : 1) || ldb < (bcols > 1 ? bcols : 1) || ldc < (N > 1 ? N : 1) ||
        lda > INT32_MAX || ldb > INT32_MAX || ldc > INT32_MAX)
        return err_set(COCHLEA_EINVAL,
                       "gemm_f32: leading dimensions lda=%lld ldb=%lld ldc=%lld too small for M=%lld N=%lld K=%lld "
                       "(trans_a=%d trans_b=%d) or above 2^31-1",
                       (long long)lda, (long long)ldb, (long long)ldc, (long long)M, (long long)N, (long long)K,
                       trans_a != 0, trans_b != 0);
    if (M == 0 || N == 0)
        return COCHLEA_OK;
    if (!C || (K > 0 && (!A || !B)))
        return err_set(COCHLEA_EINVAL, "gemm_f32: missing matrix");
    if (K == 0 || alpha == 0.0f) {
        gemm_prefill_bias(C, M, N, ldc, NULL, beta);
        return COCHLEA_OK;
    }
#ifdef HAVE_DNNL
    if (use_dnnl(ctx->gemm))
        return gemm_dnnl_sgemm(ctx->gemm, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
    if (ctx->n_threads > 1)
        pool_nap(ctx->pool); /* OpenBLAS's own threads run this product */
    gemm_blas_sgemm(ctx->n_threads, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return COCHLEA_OK;
}

int gemm_prepare(cochlea_ctx *ctx, const tensor *W)
{
    if (!ctx || !ctx->gemm)
        return err_set(COCHLEA_EINVAL, "gemm_prepare: no context");
    int rc = gemm_check_weight(W, "gemm_prepare");
    if (rc)
        return rc;
#ifdef HAVE_DNNL
    if (use_dnnl(ctx->gemm) && ctx->precision != COCHLEA_PRECISION_F32)
        return gemm_dnnl_prepare(ctx->gemm, W, ctx->precision);
#endif
    return COCHLEA_OK;
}

void gemm_forget(cochlea_ctx *ctx, const tensor *W)
{
#ifdef HAVE_DNNL
    if (ctx && ctx->gemm && W)
        gemm_dnnl_forget(ctx->gemm, W);
#else
    (void)ctx;
    (void)W;
#endif
}

const void *gemm_packed_data(const cochlea_ctx *ctx, const tensor *W, enum cochlea_precision precision)
{
#ifdef HAVE_DNNL
    if (ctx && ctx->gemm && W)
        return gemm_dnnl_packed(ctx->gemm, W, precision);
#else
    (void)ctx;
    (void)W;
    (void)precision;
#endif
    return NULL;
}

int gemm_linear(cochlea_ctx *ctx, const float *x, int64_t M, int64_t ldx, const tensor *W, const float *bias,
                float beta, float *y, int64_t ldy)
{
    if (!ctx || !ctx->gemm)
        return err_set(COCHLEA_EINVAL, "gemm_linear: no context");
    if (ctx->precision != COCHLEA_PRECISION_F32 && ctx->precision != COCHLEA_PRECISION_BF16 &&
        ctx->precision != COCHLEA_PRECISION_INT8)
        return err_set(COCHLEA_EINVAL, "gemm_linear: unknown precision %d", (int)ctx->precision);
    int rc = check_linear(x, M, ldx, W, y, ldy);
    if (rc || M == 0)
        return rc;
#ifdef HAVE_DNNL
    if (use_dnnl(ctx->gemm)) {
        if (ctx->precision == COCHLEA_PRECISION_F32)
            return gemm_linear_f32(ctx, x, M, ldx, W, bias, beta, y, ldy, gemm_dnnl_rows, 1);
        return gemm_dnnl_linear(ctx, ctx->precision, x, M, ldx, W, bias, beta, y, ldy);
    }
#endif
    return gemm_linear_f32(ctx, x, M, ldx, W, bias, beta, y, ldy, gemm_blas_rows, 0);
}
