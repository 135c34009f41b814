/* ops_conv.c - 1-D, transposed 1-D and 2-D convolutions: im2col + GEMM for dense kernels,
 * a direct loop for depthwise ones, GEMM + col2im for transposed ones (ops.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gemm.h"
#include "ops.h"

/* Floats of scratch (im2col block plus GEMM output block) one call may hold: 24 MiB, so each
 * buffer stays under glibc's largest mmap threshold and is reused from the heap by the next
 * call instead of being mapped (and page-faulted) afresh. */
#define CONV_SCRATCH_FLOATS ((size_t)6 << 20)
/* Below this many elements of work a task runs on the calling thread only. */
#define CONV_SERIAL_WORK 16384

static const char *wname(const tensor *w)
{
    return w->name ? w->name : "(unnamed)";
}

/* Run `fn` on the context's pool, or directly on this thread when the work is small. */
static void conv_run(cochlea_ctx *ctx, pool_task_fn fn, void *arg, int64_t work)
{
    if (work < CONV_SERIAL_WORK || ctx->n_threads <= 1)
        fn(arg, 0, 1);
    else
        pool_run(ctx->pool, fn, arg);
}

/* Non-negative a*b, or -1 on overflow of int64. */
static int64_t mul_nn(int64_t a, int64_t b)
{
    if (a < 0 || b < 0 || (a != 0 && b > INT64_MAX / a))
        return -1;
    return a * b;
}

/* Check that `w` can serve as a convolution weight with `dims` PyTorch dimensions: data
 * present, contiguous, a float type, unused outer dimensions 1. */
static int conv_check_weight(const char *op, const tensor *w, int dims)
{
    if (!w || !w->data)
        return err_set(COCHLEA_EINVAL, "%s: weight tensor is missing", op);
    if (w->type != COCHLEA_TYPE_F32 && w->type != COCHLEA_TYPE_F16 && w->type != COCHLEA_TYPE_BF16 &&
        w->type != COCHLEA_TYPE_Q8_0) {
        const char *tn = type_name(w->type);
        return err_set(COCHLEA_EUNSUPPORTED, "%s: weight '%s' has type %s (expected f32, f16, bf16 or q8_0)", op,
                       wname(w), tn ? tn : "unknown");
    }
    for (int i = dims; i < TENSOR_MAX_DIMS; i++)
        if (w->ne[i] != 1)
            return err_set(COCHLEA_EINVAL, "%s: weight '%s' has %d dimensions (expected %d)", op, wname(w),
                           w->n_dims, dims);
    for (int i = 0; i < dims; i++)
        if (w->ne[i] < 1)
            return err_set(COCHLEA_EINVAL, "%s: weight '%s' has dimension %d of size %lld", op, wname(w), i,
                           (long long)w->ne[i]);
    if (!tensor_is_contiguous(w))
        return err_set(COCHLEA_EINVAL, "%s: weight '%s' is not contiguous", op, wname(w));
    return COCHLEA_OK;
}

/* A Linear-layout view (ne = {row elements, nrows}) of rows [row0, row0 + nrows) of the
 * contiguous weight `w` whose dimension `dim` indexes the rows; shares w's data. */
static void weight_rows_view(const tensor *w, int dim, int64_t row0, int64_t nrows, tensor *v)
{
    int64_t row_elems = 1;
    for (int i = 0; i < dim; i++)
        row_elems *= w->ne[i];
    size_t row_bytes = w->nb[dim];
    memset(v, 0, sizeof *v);
    v->type = w->type;
    v->n_dims = 2;
    v->ne[0] = row_elems;
    v->ne[1] = nrows;
    v->ne[2] = v->ne[3] = 1;
    v->nb[0] = w->nb[0];
    v->nb[1] = row_bytes;
    v->nb[2] = v->nb[3] = row_bytes * (size_t)nrows;
    v->data = (char *)w->data + (size_t)row0 * row_bytes;
    v->name = w->name;
}

/* The whole weight as fp32, rows over dims 1..3 flattened; *owned is set when it was copied. */
static int weight_to_f32(const char *op, const tensor *w, const float **out, float **owned)
{
    *owned = NULL;
    if (w->type == COCHLEA_TYPE_F32) {
        *out = w->data;
        return COCHLEA_OK;
    }
    int64_t rows = w->ne[1] * w->ne[2] * w->ne[3];
    size_t n;
    if (size_mul((size_t)rows, (size_t)w->ne[0], &n) || size_mul(n, sizeof(float), &n))
        return err_set(COCHLEA_ERANGE, "%s: weight '%s' too large to convert", op, wname(w));
    float *f = malloc(n ? n : 1);
    if (!f)
        return err_set(COCHLEA_ENOMEM, "%s: cannot allocate %zu bytes for weight '%s'", op, n, wname(w));
    for (int64_t r = 0; r < rows; r++)
        tensor_row_to_f32(w, r, f + r * w->ne[0]);
    *out = f;
    *owned = f;
    return COCHLEA_OK;
}

/* Allocate a*b floats (not zeroed: every user overwrites them) with an overflow check; NULL
 * with the error set on failure. */
static float *conv_alloc(const char *op, int64_t a, int64_t b)
{
    size_t n;
    if (a < 0 || b < 0 || size_mul((size_t)a, (size_t)b, &n) || size_mul(n, sizeof(float), &n)) {
        err_set(COCHLEA_ERANGE, "%s: scratch size %lld x %lld overflows", op, (long long)a, (long long)b);
        return NULL;
    }
    float *p = malloc(n ? n : 1);
    if (!p)
        err_set(COCHLEA_ENOMEM, "%s: cannot allocate %zu bytes of scratch", op, n);
    return p;
}

/* Rows per block so that a block of im2col rows (row_len floats) plus its output rows
 * (out_len floats) stays within CONV_SCRATCH_FLOATS. */
static int64_t conv_block_rows(int64_t total, int64_t row_len, int64_t out_len)
{
    int64_t per = row_len + out_len;
    int64_t b = (int64_t)CONV_SCRATCH_FLOATS / (per > 0 ? per : 1);
    if (b < 1)
        b = 1;
    return b < total ? b : total;
}

/* ---- shared tasks ------------------------------------------------------------------------ */

/* y[c * ldy + i] = s[i * cols + c]: scatter a [rows, cols] GEMM output block into
 * channels-first rows, in 32 x 32 tiles (a whole-column sweep would touch a new page per
 * element when cols * 4 bytes is a page); threads split over the tiles. */
#define CONV_TILE 32
struct transpose_task {
    const float *s;
    int64_t rows, cols;
    float *y;
    int64_t ldy;
};

static void transpose_run(void *arg, int ith, int nth)
{
    const struct transpose_task *t = arg;
    int64_t tc = (t->cols + CONV_TILE - 1) / CONV_TILE, tr = (t->rows + CONV_TILE - 1) / CONV_TILE, b, e;
    pool_split(tc * tr, ith, nth, &b, &e);
    for (int64_t tile = b; tile < e; tile++) {
        int64_t i0 = tile / tc * CONV_TILE, c0 = tile % tc * CONV_TILE;
        int64_t i1 = i0 + CONV_TILE < t->rows ? i0 + CONV_TILE : t->rows;
        int64_t c1 = c0 + CONV_TILE < t->cols ? c0 + CONV_TILE : t->cols;
        for (int64_t c = c0; c < c1; c++) {
            float *dst = t->y + c * t->ldy;
            for (int64_t i = i0; i < i1; i++)
                dst[i] = t->s[i * t->cols + c];
        }
    }
}

static void transpose_block(cochlea_ctx *ctx, const float *s, int64_t rows, int64_t cols, float *y, int64_t ldy)
{
    struct transpose_task t = {s, rows, cols, y, ldy};
    conv_run(ctx, transpose_run, &t, rows * cols);
}

/* ---- conv1d ------------------------------------------------------------------------------ */

ops_conv1d_params ops_conv1d_default_params(void)
{
    ops_conv1d_params p = {1, 1, 1, 0, 0, OPS_PAD_ZERO};
    return p;
}

int ops_conv1d_out_len(int64_t T, int64_t K, const ops_conv1d_params *p, int64_t *T_out)
{
    if (!p || !T_out)
        return err_set(COCHLEA_EINVAL, "conv1d: missing parameters");
    if (T < 1 || K < 1)
        return err_set(COCHLEA_EINVAL, "conv1d: input length %lld and kernel size %lld must be >= 1", (long long)T,
                       (long long)K);
    if (p->stride < 1 || p->dilation < 1 || p->groups < 1)
        return err_set(COCHLEA_EINVAL, "conv1d: stride %d, dilation %d and groups %d must be >= 1", p->stride,
                       p->dilation, p->groups);
    if (p->pad_left < 0 || p->pad_right < 0)
        return err_set(COCHLEA_EINVAL, "conv1d: padding (%d, %d) must be >= 0", p->pad_left, p->pad_right);
    if (p->pad_mode != OPS_PAD_ZERO && p->pad_mode != OPS_PAD_REFLECT)
        return err_set(COCHLEA_EINVAL, "conv1d: unknown padding mode %d", (int)p->pad_mode);
    if (p->pad_mode == OPS_PAD_REFLECT && (p->pad_left >= T || p->pad_right >= T))
        return err_set(COCHLEA_EINVAL,
                       "conv1d: reflect padding (%d, %d) must be smaller than the input length %lld", p->pad_left,
                       p->pad_right, (long long)T);
    int64_t span = mul_nn(p->dilation, K - 1);
    if (span < 0 || T > INT64_MAX / 4)
        return err_set(COCHLEA_ERANGE, "conv1d: sizes overflow (T %lld, K %lld, dilation %d)", (long long)T,
                       (long long)K, p->dilation);
    int64_t Tp = T + p->pad_left + p->pad_right;
    if (Tp < span + 1)
        return err_set(COCHLEA_EINVAL,
                       "conv1d: padded input length %lld is shorter than the dilated kernel %lld (K %lld, "
                       "dilation %d)",
                       (long long)Tp, (long long)(span + 1), (long long)K, p->dilation);
    *T_out = (Tp - span - 1) / p->stride + 1;
    return COCHLEA_OK;
}

/* The input padded as p asks: [C, T + pad_left + pad_right]; reflect mirrors without
 * repeating the edge sample (index -j maps to j, T-1+j to T-1-j). */
struct pad_task {
    const float *x;
    int64_t C, T, Tp;
    int pl;
    int reflect;
    float *xp;
};

static void pad_run(void *arg, int ith, int nth)
{
    const struct pad_task *t = arg;
    int64_t b, e;
    pool_split(t->C, ith, nth, &b, &e);
    for (int64_t c = b; c < e; c++) {
        const float *src = t->x + c * t->T;
        float *dst = t->xp + c * t->Tp;
        for (int64_t j = 0; j < t->Tp; j++) {
            int64_t s = j - t->pl;
            if (s >= 0 && s < t->T)
                dst[j] = src[s];
            else if (!t->reflect)
                dst[j] = 0.0f;
            else
                dst[j] = src[s < 0 ? -s : 2 * (t->T - 1) - s];
        }
    }
}

/* im2col rows for conv1d: col[i, c*K + k] = xp[c, (t0 + i)*stride + k*dilation]. */
struct im2row1d_task {
    const float *xp;
    int64_t C, Tp, K;
    int stride, dilation;
    int64_t t0, rows;
    float *col;
};

static void im2row1d_run(void *arg, int ith, int nth)
{
    const struct im2row1d_task *t = arg;
    int64_t b, e;
    pool_split(t->rows, ith, nth, &b, &e);
    int64_t row_len = t->C * t->K;
    /* channels in chunks, so the chunk's input stretch stays in cache while the rows advance */
    for (int64_t c0 = 0; c0 < t->C; c0 += 64) {
        int64_t c1 = c0 + 64 < t->C ? c0 + 64 : t->C;
        for (int64_t i = b; i < e; i++) {
            float *dst = t->col + i * row_len;
            const float *base = t->xp + (t->t0 + i) * t->stride;
            for (int64_t c = c0; c < c1; c++) {
                const float *src = base + c * t->Tp;
                float *d = dst + c * t->K;
                for (int64_t k = 0; k < t->K; k++)
                    d[k] = src[k * t->dilation];
            }
        }
    }
}

/* Depthwise conv1d (one input channel per group, `mult` outputs each), direct loop:
 * y[co, t] = bias[co] + sum_k w[co, k] * xp[co / mult, t*stride + k*dilation]. */
struct depthwise_task {
    const float *xp;
    int64_t Tp;
    const float *w;
    int64_t K;
    const float *bias;
    int64_t C_out, mult, T_out;
    int stride, dilation;
    float *y;
};

static void depthwise_run(void *arg, int ith, int nth)
{
    const struct depthwise_task *t = arg;
    int64_t b, e;
    pool_split(t->C_out, ith, nth, &b, &e);
    for (int64_t co = b; co < e; co++) {
        const float *src = t->xp + (co / t->mult) * t->Tp;
        const float *w = t->w + co * t->K;
        float *dst = t->y + co * t->T_out;
        float bv = t->bias ? t->bias[co] : 0.0f;
        for (int64_t i = 0; i < t->T_out; i++)
            dst[i] = bv;
        for (int64_t k = 0; k < t->K; k++) {
            const float wk = w[k];
            const float *s = src + k * t->dilation;
            if (t->stride == 1) {
                for (int64_t i = 0; i < t->T_out; i++)
                    dst[i] += wk * s[i];
            } else {
                for (int64_t i = 0; i < t->T_out; i++)
                    dst[i] += wk * s[i * t->stride];
            }
        }
    }
}

int ops_conv1d(cochlea_ctx *ctx, const float *x, int64_t C_in, int64_t T, const tensor *w, const float *bias,
               const ops_conv1d_params *p, float *y, int64_t T_out)
{
    static const char op[] = "conv1d";
    int rc;
    if (!ctx || !x || !y || !p)
        return err_set(COCHLEA_EINVAL, "conv1d: missing context, input, output or parameters");
    if ((rc = conv_check_weight(op, w, 3)) != 0)
        return rc;
    int64_t K = w->ne[0], Cg = w->ne[1], C_out = w->ne[2], expect;
    if (C_in < 1)
        return err_set(COCHLEA_EINVAL, "conv1d: %lld input channels", (long long)C_in);
    if ((rc = ops_conv1d_out_len(T, K, p, &expect)) != 0)
        return rc;
    if (C_in % p->groups != 0 || C_out % p->groups != 0)
        return err_set(COCHLEA_EINVAL, "conv1d: groups %d must divide input channels %lld and output channels %lld",
                       p->groups, (long long)C_in, (long long)C_out);
    if (Cg != C_in / p->groups)
        return err_set(COCHLEA_EINVAL,
                       "conv1d: weight '%s' has %lld input channels per group, input has %lld channels in %d "
                       "groups",
                       wname(w), (long long)Cg, (long long)C_in, p->groups);
    if (T_out != expect)
        return err_set(COCHLEA_EINVAL, "conv1d: output length %lld given, the convolution produces %lld",
                       (long long)T_out, (long long)expect);

    /* padded input */
    int64_t Tp = T + p->pad_left + p->pad_right;
    const float *xp = x;
    float *xpad = NULL;
    if (Tp != T) {
        if (!(xpad = conv_alloc(op, C_in, Tp)))
            return COCHLEA_ENOMEM;
        struct pad_task pt = {x, C_in, T, Tp, p->pad_left, p->pad_mode == OPS_PAD_REFLECT, xpad};
        conv_run(ctx, pad_run, &pt, C_in * Tp);
        xp = xpad;
    }

    if (Cg == 1) {
        const float *wf;
        float *wown;
        if ((rc = weight_to_f32(op, w, &wf, &wown)) == 0) {
            struct depthwise_task dt = {xp, Tp, wf, K, bias, C_out, C_out / C_in, T_out, p->stride, p->dilation, y};
            conv_run(ctx, depthwise_run, &dt, C_out * T_out * K);
            free(wown);
        }
        free(xpad);
        return rc;
    }

    int64_t row_len = C_in * K, Cout_g = C_out / p->groups;
    int64_t Mb = conv_block_rows(T_out, row_len, C_out);
    float *col = conv_alloc(op, Mb, row_len);
    float *out = col ? conv_alloc(op, Mb, C_out) : NULL;
    rc = out ? COCHLEA_OK : COCHLEA_ENOMEM;
    for (int64_t t0 = 0; rc == 0 && t0 < T_out; t0 += Mb) {
        int64_t rows = T_out - t0 < Mb ? T_out - t0 : Mb;
        struct im2row1d_task it = {xp, C_in, Tp, K, p->stride, p->dilation, t0, rows, col};
        conv_run(ctx, im2row1d_run, &it, rows * row_len);
        for (int g = 0; rc == 0 && g < p->groups; g++) {
            tensor v;
            weight_rows_view(w, 2, g * Cout_g, Cout_g, &v);
            rc = gemm_linear(ctx, col + g * Cg * K, rows, row_len, &v, bias ? bias + g * Cout_g : NULL, 0.0f,
                             out + g * Cout_g, C_out);
            if (rc != 0)
                err_prefix(rc, "conv1d with weight '%s'", wname(w));
        }
        if (rc == 0)
            transpose_block(ctx, out, rows, C_out, y + t0, T_out);
    }
    free(out);
    free(col);
    free(xpad);
    return rc;
}

/* ---- transposed conv1d ------------------------------------------------------------------- */

ops_conv_transpose1d_params ops_conv_transpose1d_default_params(void)
{
    ops_conv_transpose1d_params p = {1, 1, 1, 0, 0};
    return p;
}

int ops_conv_transpose1d_out_len(int64_t T, int64_t K, const ops_conv_transpose1d_params *p, int64_t *T_out)
{
    if (!p || !T_out)
        return err_set(COCHLEA_EINVAL, "conv_transpose1d: missing parameters");
    if (T < 1 || K < 1)
        return err_set(COCHLEA_EINVAL, "conv_transpose1d: input length %lld and kernel size %lld must be >= 1",
                       (long long)T, (long long)K);
    if (p->stride < 1 || p->dilation < 1 || p->groups < 1)
        return err_set(COCHLEA_EINVAL, "conv_transpose1d: stride %d, dilation %d and groups %d must be >= 1",
                       p->stride, p->dilation, p->groups);
    if (p->padding < 0 || p->output_padding < 0)
        return err_set(COCHLEA_EINVAL, "conv_transpose1d: padding %d and output padding %d must be >= 0",
                       p->padding, p->output_padding);
    if (p->output_padding >= p->stride && p->output_padding >= p->dilation)
        return err_set(COCHLEA_EINVAL,
                       "conv_transpose1d: output padding %d must be smaller than the stride %d or the dilation %d",
                       p->output_padding, p->stride, p->dilation);
    int64_t span = mul_nn(p->dilation, K - 1), len = mul_nn(T - 1, p->stride);
    if (span < 0 || len < 0 || span > INT64_MAX / 4 || len > INT64_MAX / 4)
        return err_set(COCHLEA_ERANGE, "conv_transpose1d: sizes overflow (T %lld, K %lld)", (long long)T,
                       (long long)K);
    int64_t n = len + span + p->output_padding + 1 - 2 * (int64_t)p->padding;
    if (n < 1)
        return err_set(COCHLEA_EINVAL,
                       "conv_transpose1d: padding %d leaves no output (input length %lld, kernel %lld, stride %d)",
                       p->padding, (long long)T, (long long)K, p->stride);
    *T_out = n;
    return COCHLEA_OK;
}

/* col2im for a block of input samples: y[co, (t0+i)*stride + k*dilation - padding] +=
 * col[(g*N + c*K + k) * tb + i] for co = g*Cout_g + c; threads split over output channels. */
struct col2im_task {
    const float *col;
    int64_t tb, t0, K, Cout_g, C_out, T_out;
    int stride, dilation, padding;
    float *y;
};

static void col2im_run(void *arg, int ith, int nth)
{
    const struct col2im_task *t = arg;
    int64_t b, e;
    pool_split(t->C_out, ith, nth, &b, &e);
    for (int64_t co = b; co < e; co++) {
        float *dst = t->y + co * t->T_out;
        /* rows of the block are ordered (group, c, k), so channel co's K rows are consecutive */
        const float *rows = t->col + co * t->K * t->tb;
        for (int64_t k = 0; k < t->K; k++) {
            const float *src = rows + k * t->tb;
            int64_t base = t->t0 * t->stride + k * t->dilation - t->padding;
            int64_t lo = base >= 0 ? 0 : (-base + t->stride - 1) / t->stride;
            int64_t hi = base > t->T_out - 1 ? 0 : (t->T_out - 1 - base) / t->stride + 1;
            if (hi > t->tb)
                hi = t->tb;
            for (int64_t i = lo; i < hi; i++)
                dst[base + i * t->stride] += src[i];
        }
    }
}

/* y[co, :] = bias[co] (or 0). */
struct fill_task {
    float *y;
    int64_t C, T;
    const float *bias;
};

static void fill_run(void *arg, int ith, int nth)
{
    const struct fill_task *t = arg;
    int64_t b, e;
    pool_split(t->C, ith, nth, &b, &e);
    for (int64_t c = b; c < e; c++) {
        float v = t->bias ? t->bias[c] : 0.0f;
        for (int64_t i = 0; i < t->T; i++)
            t->y[c * t->T + i] = v;
    }
}

int ops_conv_transpose1d(cochlea_ctx *ctx, const float *x, int64_t C_in, int64_t T, const tensor *w,
                         const float *bias, const ops_conv_transpose1d_params *p, float *y, int64_t T_out)
{
    static const char op[] = "conv_transpose1d";
    int rc;
    if (!ctx || !x || !y || !p)
        return err_set(COCHLEA_EINVAL, "conv_transpose1d: missing context, input, output or parameters");
    if ((rc = conv_check_weight(op, w, 3)) != 0)
        return rc;
    int64_t K = w->ne[0], Cout_g = w->ne[1], expect;
    if ((rc = ops_conv_transpose1d_out_len(T, K, p, &expect)) != 0)
        return rc;
    if (C_in < 1 || C_in % p->groups != 0)
        return err_set(COCHLEA_EINVAL, "conv_transpose1d: groups %d must divide the %lld input channels", p->groups,
                       (long long)C_in);
    if (w->ne[2] != C_in)
        return err_set(COCHLEA_EINVAL, "conv_transpose1d: weight '%s' is for %lld input channels, input has %lld",
                       wname(w), (long long)w->ne[2], (long long)C_in);
    if (T_out != expect)
        return err_set(COCHLEA_EINVAL, "conv_transpose1d: output length %lld given, the convolution produces %lld",
                       (long long)T_out, (long long)expect);
    int64_t Cg = C_in / p->groups, C_out = Cout_g * p->groups, N = Cout_g * K;

    const float *wf;
    float *wown;
    if ((rc = weight_to_f32(op, w, &wf, &wown)) != 0)
        return rc;
    int64_t tb = conv_block_rows(T, C_out * K, 0);
    float *col = conv_alloc(op, tb, C_out * K);
    if (!col) {
        free(wown);
        return COCHLEA_ENOMEM;
    }
    struct fill_task ft = {y, C_out, T_out, bias};
    conv_run(ctx, fill_run, &ft, C_out * T_out);
    for (int64_t t0 = 0; rc == 0 && t0 < T; t0 += tb) {
        int64_t rows = T - t0 < tb ? T - t0 : tb;
        /* col_g [N, rows] = W_g^T [N, Cg] x_g [Cg, rows], W_g = weight rows of group g: [Cg, N] */
        for (int g = 0; rc == 0 && g < p->groups; g++)
            if ((rc = gemm_f32(ctx, 1, 0, N, rows, Cg, 1.0f, wf + g * Cg * N, N, x + g * Cg * T + t0, T, 0.0f,
                               col + g * N * rows, rows)) != 0)
                err_prefix(rc, "conv_transpose1d with weight '%s'", wname(w));
        if (rc == 0) {
            struct col2im_task ct = {col, rows, t0, K, Cout_g, C_out, T_out, p->stride, p->dilation, p->padding, y};
            conv_run(ctx, col2im_run, &ct, C_out * K * rows);
        }
    }
    free(col);
    free(wown);
    return rc;
}

/* ---- conv2d ------------------------------------------------------------------------------ */

ops_conv2d_params ops_conv2d_default_params(void)
{
    ops_conv2d_params p = {1, 1, 0, 0, 1, 1};
    return p;
}

/* One axis of a 2-D convolution: (n + 2*pad - dilation*(k-1) - 1) / stride + 1. */
static int conv2d_axis(const char *axis, int64_t n, int64_t k, int stride, int pad, int dilation, int64_t *out)
{
    if (n < 1 || k < 1)
        return err_set(COCHLEA_EINVAL, "conv2d: %s size %lld and kernel %lld must be >= 1", axis, (long long)n,
                       (long long)k);
    if (stride < 1 || dilation < 1 || pad < 0)
        return err_set(COCHLEA_EINVAL, "conv2d: %s stride %d and dilation %d must be >= 1, padding %d >= 0", axis,
                       stride, dilation, pad);
    int64_t span = mul_nn(dilation, k - 1);
    if (span < 0 || n > INT64_MAX / 4)
        return err_set(COCHLEA_ERANGE, "conv2d: %s sizes overflow", axis);
    int64_t np = n + 2 * (int64_t)pad;
    if (np < span + 1)
        return err_set(COCHLEA_EINVAL, "conv2d: padded %s size %lld is smaller than the dilated kernel %lld", axis,
                       (long long)np, (long long)(span + 1));
    *out = (np - span - 1) / stride + 1;
    return COCHLEA_OK;
}

int ops_conv2d_out_size(int64_t H, int64_t W, int64_t kh, int64_t kw, const ops_conv2d_params *p, int64_t *H_out,
                        int64_t *W_out)
{
    int rc;
    if (!p || !H_out || !W_out)
        return err_set(COCHLEA_EINVAL, "conv2d: missing parameters");
    if ((rc = conv2d_axis("height", H, kh, p->stride_h, p->pad_h, p->dilation_h, H_out)) != 0)
        return rc;
    return conv2d_axis("width", W, kw, p->stride_w, p->pad_w, p->dilation_w, W_out);
}

/* im2col rows for conv2d: row m = (i, j) of the output, column (ci*kh + a)*kw + b holds
 * x[ci, i*sh + a*dh - ph, j*sw + b*dw - pw], zero outside the image. */
struct im2row2d_task {
    const float *x;
    int64_t C, H, W, kh, kw, W_out;
    const ops_conv2d_params *p;
    int64_t m0, rows;
    float *col;
};

/* Fill the im2col rows of one output row i, columns j in [j0, j1), into dst (the row of j0).
 * Loops run input channel and kernel row outermost, so each input row segment is read once
 * while the destination rows advance together (few pages and lines live at a time). */
static void im2row2d_segment(const struct im2row2d_task *t, int64_t i, int64_t j0, int64_t j1, float *dst)
{
    const ops_conv2d_params *p = t->p;
    int64_t row_len = t->C * t->kh * t->kw, kw = t->kw, dw = p->dilation_w;
    /* output columns [jin0, jin1) have their whole kernel window inside the input row */
    int64_t jin0 = (p->pad_w + p->stride_w - 1) / p->stride_w;
    int64_t last = t->W - 1 - (kw - 1) * dw + p->pad_w; /* largest j*stride_w that still fits */
    int64_t jin1 = last < 0 ? 0 : last / p->stride_w + 1;
    for (int64_t c = 0; c < t->C; c++) {
        for (int64_t a = 0; a < t->kh; a++) {
            int64_t ih = i * p->stride_h + a * p->dilation_h - p->pad_h, off = (c * t->kh + a) * kw;
            if (ih < 0 || ih >= t->H) {
                for (int64_t j = j0; j < j1; j++)
                    memset(dst + (j - j0) * row_len + off, 0, (size_t)kw * sizeof(float));
                continue;
            }
            const float *src = t->x + (c * t->H + ih) * t->W;
            for (int64_t j = j0; j < j1; j++) {
                float *d = dst + (j - j0) * row_len + off;
                int64_t w0 = j * p->stride_w - p->pad_w;
                if (j >= jin0 && j < jin1) {
                    const float *s = src + w0;
                    if (kw == 3 && dw == 1) { /* the Conv2dSubsampling kernel */
                        d[0] = s[0];
                        d[1] = s[1];
                        d[2] = s[2];
                    } else {
                        for (int64_t q = 0; q < kw; q++)
                            d[q] = s[q * dw];
                    }
                } else {
                    for (int64_t q = 0; q < kw; q++) {
                        int64_t iw = w0 + q * dw;
                        d[q] = iw >= 0 && iw < t->W ? src[iw] : 0.0f;
                    }
                }
            }
        }
    }
}

static void im2row2d_run(void *arg, int ith, int nth)
{
    const struct im2row2d_task *t = arg;
    int64_t b, e, row_len = t->C * t->kh * t->kw;
    pool_split(t->rows, ith, nth, &b, &e);
    /* split [b, e) into runs of rows that share the output row i */
    for (int64_t r = b; r < e;) {
        int64_t m = t->m0 + r, i = m / t->W_out, j0 = m % t->W_out;
        int64_t j1 = j0 + (e - r) < t->W_out ? j0 + (e - r) : t->W_out;
        im2row2d_segment(t, i, j0, j1, t->col + r * row_len);
        r += j1 - j0;
    }
}

int ops_conv2d(cochlea_ctx *ctx, const float *x, int64_t C_in, int64_t H, int64_t W, const tensor *w,
               const float *bias, const ops_conv2d_params *p, float *y, int64_t H_out, int64_t W_out)
{
    static const char op[] = "conv2d";
    int rc;
    if (!ctx || !x || !y || !p)
        return err_set(COCHLEA_EINVAL, "conv2d: missing context, input, output or parameters");
    if ((rc = conv_check_weight(op, w, 4)) != 0)
        return rc;
    int64_t kw = w->ne[0], kh = w->ne[1], C_out = w->ne[3], eh, ew;
    if (w->ne[2] != C_in)
        return err_set(COCHLEA_EINVAL, "conv2d: weight '%s' is for %lld input channels, input has %lld", wname(w),
                       (long long)w->ne[2], (long long)C_in);
    if ((rc = ops_conv2d_out_size(H, W, kh, kw, p, &eh, &ew)) != 0)
        return rc;
    if (H_out != eh || W_out != ew)
        return err_set(COCHLEA_EINVAL, "conv2d: output size %lld x %lld given, the convolution produces %lld x %lld",
                       (long long)H_out, (long long)W_out, (long long)eh, (long long)ew);
    int64_t M = mul_nn(H_out, W_out), row_len = mul_nn(C_in, mul_nn(kh, kw));
    if (M < 0 || row_len < 0)
        return err_set(COCHLEA_ERANGE, "conv2d: sizes overflow");
    int64_t Mb = conv_block_rows(M, row_len, C_out);
    float *col = conv_alloc(op, Mb, row_len);
    float *out = col ? conv_alloc(op, Mb, C_out) : NULL;
    rc = out ? COCHLEA_OK : COCHLEA_ENOMEM;
    tensor v;
    weight_rows_view(w, 3, 0, C_out, &v);
    for (int64_t m0 = 0; rc == 0 && m0 < M; m0 += Mb) {
        int64_t rows = M - m0 < Mb ? M - m0 : Mb;
        struct im2row2d_task it = {x, C_in, H, W, kh, kw, W_out, p, m0, rows, col};
        conv_run(ctx, im2row2d_run, &it, rows * row_len);
        rc = gemm_linear(ctx, col, rows, row_len, &v, bias, 0.0f, out, C_out);
        if (rc == 0)
            transpose_block(ctx, out, rows, C_out, y + m0, M);
        else
            err_prefix(rc, "conv2d with weight '%s'", wname(w));
    }
    free(out);
    free(col);
    return rc;
}
