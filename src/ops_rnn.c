/* ops_rnn.c - LSTM layers, uni- and bidirectional, stacked (ops.h). */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gemm.h"
#include "ops.h"

/* Below this many multiply-adds per step the recurrence runs on the calling thread only. */
#define LSTM_SERIAL_WORK 32768

static const char *wname(const tensor *w)
{
    return w->name ? w->name : "(unnamed)";
}

static inline float sigmoidf_(float v)
{
    return 1.0f / (1.0f + expf(-v));
}

/* sum_i a[i]*b[i] with eight partial sums (fixed order, so the result is reproducible). */
static float dot_f32(const float *a, const float *b, int64_t n)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[i + l] * b[i + l];
    for (int l = 0; i < n; i++, l++)
        acc[l] += a[i] * b[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* One direction of one layer while it runs. */
struct lstm_dir {
    float *gx;        /* [T, 4H]: W_ih x_t + b_ih + b_hh */
    const float *whh; /* [4H, H] fp32 */
    float *whh_owned;
    float *h[2];      /* h_{t-1} and h_t, swapped every step */
    float *c;         /* [H] */
    float *y;         /* output column base: y[t * ldy + j] */
    int reverse;
};

struct lstm_step_task {
    struct lstm_dir *d;
    int n_dirs;
    int64_t H, T, step, ldy;
    int cur; /* h[cur] holds h_{t-1}; h[1 - cur] receives h_t */
};

/* One timestep for hidden units [b, e) of the n_dirs*H units (gate order i, f, g, o). */
static void lstm_step_run(void *arg, int ith, int nth)
{
    const struct lstm_step_task *t = arg;
    int64_t b, e, H = t->H;
    pool_split(t->n_dirs * H, ith, nth, &b, &e);
    for (int64_t u = b; u < e; u++) {
        struct lstm_dir *d = &t->d[u / H];
        int64_t j = u % H;
        int64_t tt = d->reverse ? t->T - 1 - t->step : t->step;
        const float *gx = d->gx + tt * 4 * H;
        const float *hp = d->h[t->cur];
        float gi = gx[j] + dot_f32(d->whh + j * H, hp, H);
        float gf = gx[H + j] + dot_f32(d->whh + (H + j) * H, hp, H);
        float gg = gx[2 * H + j] + dot_f32(d->whh + (2 * H + j) * H, hp, H);
        float go = gx[3 * H + j] + dot_f32(d->whh + (3 * H + j) * H, hp, H);
        float c = sigmoidf_(gf) * d->c[j] + sigmoidf_(gi) * tanhf(gg);
        float h = sigmoidf_(go) * tanhf(c);
        d->c[j] = c;
        d->h[1 - t->cur][j] = h;
        d->y[tt * t->ldy + j] = h;
    }
}

/* Check one weight matrix: present, float type, contiguous, ne = {cols, rows}. */
static int lstm_check_weight(const tensor *w, const char *what, int layer, int dir, int64_t cols, int64_t rows)
{
    if (!w || !w->data)
        return err_set(COCHLEA_EINVAL, "lstm: layer %d direction %d: %s is missing", layer, dir, what);
    if (w->type != COCHLEA_TYPE_F32 && w->type != COCHLEA_TYPE_F16 && w->type != COCHLEA_TYPE_BF16 &&
        w->type != COCHLEA_TYPE_Q8_0) {
        const char *tn = type_name(w->type);
        return err_set(COCHLEA_EUNSUPPORTED, "lstm: %s '%s' has type %s (expected f32, f16, bf16 or q8_0)", what,
                       wname(w), tn ? tn : "unknown");
    }
    if (w->ne[2] != 1 || w->ne[3] != 1)
        return err_set(COCHLEA_EINVAL, "lstm: layer %d direction %d: %s '%s' has %d dimensions (expected 2)", layer,
                       dir, what, wname(w), w->n_dims);
    if (w->ne[0] != cols || w->ne[1] != rows)
        return err_set(COCHLEA_EINVAL,
                       "lstm: layer %d direction %d: %s '%s' has shape [%lld, %lld] (PyTorch order), expected "
                       "[%lld, %lld]",
                       layer, dir, what, wname(w), (long long)w->ne[1], (long long)w->ne[0], (long long)rows,
                       (long long)cols);
    if (!tensor_is_contiguous(w))
        return err_set(COCHLEA_EINVAL, "lstm: %s '%s' is not contiguous", what, wname(w));
    return COCHLEA_OK;
}

static float *lstm_alloc(int64_t a, int64_t b)
{
    size_t n;
    if (a < 0 || b < 0 || size_mul((size_t)a, (size_t)b, &n) || size_mul(n, sizeof(float), &n)) {
        err_set(COCHLEA_ERANGE, "lstm: buffer of %lld x %lld floats overflows", (long long)a, (long long)b);
        return NULL;
    }
    float *p = calloc(n ? n : 1, 1);
    if (!p)
        err_set(COCHLEA_ENOMEM, "lstm: cannot allocate %zu bytes", n);
    return p;
}

/* Run one layer in n_dirs directions over in [T, I] into out [T, n_dirs*H]; layer l's
 * initial states come from h0/c0 and its final states go to h_n/c_n (all may be NULL). */
static int lstm_layer(cochlea_ctx *ctx, const ops_lstm_desc *m, int l, const float *in, int64_t T, int64_t I,
                      const float *h0, const float *c0, float *out, float *h_n, float *c_n, float *work)
{
    int n_dirs = m->bidirectional ? 2 : 1, rc = COCHLEA_OK;
    int64_t H = m->hidden_size, G = 4 * H;
    struct lstm_dir d[2];
    memset(d, 0, sizeof d);
    /* work: per direction gx [T, 4H], then bias [4H], h[2] [H] each, c [H] */
    for (int k = 0; k < n_dirs; k++) {
        float *base = work + (size_t)k * ((size_t)T * G + G + 3 * H);
        d[k].gx = base;
        float *bsum = base + T * G;
        d[k].h[0] = bsum + G;
        d[k].h[1] = d[k].h[0] + H;
        d[k].c = d[k].h[1] + H;
        d[k].y = out + k * H;
        d[k].reverse = k;
    }
    for (int k = 0; rc == 0 && k < n_dirs; k++) {
        const ops_lstm_weights *w = &m->w[l * n_dirs + k];
        float *bsum = d[k].gx + T * G;
        const float *bias = NULL;
        if (w->b_ih || w->b_hh) {
            for (int64_t i = 0; i < G; i++)
                bsum[i] = (w->b_ih ? w->b_ih[i] : 0.0f) + (w->b_hh ? w->b_hh[i] : 0.0f);
            bias = bsum;
        }
        if ((rc = gemm_linear(ctx, in, T, I, w->w_ih, bias, 0.0f, d[k].gx, G)) != 0) {
            err_prefix(rc, "lstm: layer %d direction %d: input projection with '%s'", l, k, wname(w->w_ih));
            break;
        }
        if (w->w_hh->type == COCHLEA_TYPE_F32) {
            d[k].whh = w->w_hh->data;
        } else {
            if (!(d[k].whh_owned = lstm_alloc(G, H))) {
                rc = COCHLEA_ENOMEM;
                break;
            }
            for (int64_t r = 0; r < G; r++)
                tensor_row_to_f32(w->w_hh, r, d[k].whh_owned + r * H);
            d[k].whh = d[k].whh_owned;
        }
        size_t sidx = ((size_t)l * (size_t)n_dirs + (size_t)k) * (size_t)H;
        if (h0)
            memcpy(d[k].h[0], h0 + sidx, (size_t)H * sizeof(float));
        else
            memset(d[k].h[0], 0, (size_t)H * sizeof(float));
        if (c0)
            memcpy(d[k].c, c0 + sidx, (size_t)H * sizeof(float));
        else
            memset(d[k].c, 0, (size_t)H * sizeof(float));
    }
    if (rc == 0) {
        struct lstm_step_task st = {d, n_dirs, H, T, 0, (int64_t)n_dirs * H, 0};
        int serial = ctx->n_threads <= 1 || (int64_t)n_dirs * G * H < LSTM_SERIAL_WORK;
        for (int64_t s = 0; s < T; s++) {
            st.step = s;
            if (serial)
                lstm_step_run(&st, 0, 1);
            else
                pool_run(ctx->pool, lstm_step_run, &st);
            st.cur = 1 - st.cur;
        }
        for (int k = 0; k < n_dirs; k++) {
            size_t sidx = ((size_t)l * (size_t)n_dirs + (size_t)k) * (size_t)H;
            if (h_n)
                memcpy(h_n + sidx, d[k].h[st.cur], (size_t)H * sizeof(float));
            if (c_n)
                memcpy(c_n + sidx, d[k].c, (size_t)H * sizeof(float));
        }
    }
    for (int k = 0; k < n_dirs; k++)
        free(d[k].whh_owned);
    return rc;
}

int ops_lstm(cochlea_ctx *ctx, const ops_lstm_desc *m, const float *x, int64_t T, const float *h0, const float *c0,
             float *y, float *h_n, float *c_n)
{
    int rc;
    if (!ctx || !m || !x || !y)
        return err_set(COCHLEA_EINVAL, "lstm: missing context, description, input or output");
    if (m->input_size < 1 || m->hidden_size < 1 || m->n_layers < 1)
        return err_set(COCHLEA_EINVAL, "lstm: input size %lld, hidden size %lld and layers %d must be >= 1",
                       (long long)m->input_size, (long long)m->hidden_size, m->n_layers);
    if (m->bidirectional != 0 && m->bidirectional != 1)
        return err_set(COCHLEA_EINVAL, "lstm: bidirectional must be 0 or 1, not %d", m->bidirectional);
    if (T < 1)
        return err_set(COCHLEA_EINVAL, "lstm: sequence length %lld must be >= 1", (long long)T);
    if (m->hidden_size > INT32_MAX || m->input_size > INT64_MAX / 4 || T > INT64_MAX / 4)
        return err_set(COCHLEA_ERANGE, "lstm: sizes too large (input %lld, hidden %lld, T %lld)",
                       (long long)m->input_size, (long long)m->hidden_size, (long long)T);
    if (!m->w)
        return err_set(COCHLEA_EINVAL, "lstm: weights are missing");
    int n_dirs = m->bidirectional ? 2 : 1;
    int64_t H = m->hidden_size, G = 4 * H;
    for (int l = 0; l < m->n_layers; l++) {
        int64_t I = l == 0 ? m->input_size : n_dirs * H;
        for (int k = 0; k < n_dirs; k++) {
            const ops_lstm_weights *w = &m->w[l * n_dirs + k];
            if ((rc = lstm_check_weight(w->w_ih, "weight_ih", l, k, I, G)) != 0 ||
                (rc = lstm_check_weight(w->w_hh, "weight_hh", l, k, H, G)) != 0)
                return rc;
        }
    }

    /* scratch: gates/bias/states per direction, plus up to two inter-layer outputs */
    size_t per_dir, work_n, tg;
    if (size_mul((size_t)T, (size_t)G, &tg) || size_add(tg, (size_t)G + 3 * (size_t)H, &per_dir) ||
        size_mul(per_dir, (size_t)n_dirs, &work_n) || work_n > (size_t)INT64_MAX)
        return err_set(COCHLEA_ERANGE, "lstm: scratch size overflows (T %lld, hidden %lld)", (long long)T,
                       (long long)H);
    float *work = lstm_alloc((int64_t)work_n, 1);
    if (!work)
        return COCHLEA_ENOMEM;
    float *mid[2] = {NULL, NULL};
    int n_mid = m->n_layers > 2 ? 2 : m->n_layers - 1;
    rc = COCHLEA_OK;
    for (int i = 0; i < n_mid && rc == 0; i++)
        if (!(mid[i] = lstm_alloc(T, n_dirs * H)))
            rc = COCHLEA_ENOMEM;
    const float *in = x;
    for (int l = 0; rc == 0 && l < m->n_layers; l++) {
        int64_t I = l == 0 ? m->input_size : n_dirs * H;
        float *out = l == m->n_layers - 1 ? y : mid[l % 2];
        rc = lstm_layer(ctx, m, l, in, T, I, h0, c0, out, h_n, c_n, work);
        in = out;
    }
    free(mid[0]);
    free(mid[1]);
    free(work);
    return rc;
}
