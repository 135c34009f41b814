/* seanet.c - SEANet encoder/decoder of SECodec (secodec.md §1.3, §1.5, §5.1, §5.2); see seanet.h. */
#include "codec/seanet.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ops.h"

/* One (transposed) convolution: weight view into the file, fp32 bias. */
typedef struct {
    const tensor *w;
    float *b;
    int k, stride, dilation;
    int c_in, c_out;
} sn_conv;

typedef struct {
    sn_conv c1, c2, sc; /* block.1, block.3, shortcut (sc.w NULL with true_skip) */
    int dim, hidden;
} sn_res;

typedef struct {
    int n_layers, n_dirs, size;
    ops_lstm_weights w[2 * 16];
} sn_lstm;

struct seanet {
    seanet_hparams hp;
    int width;        /* C * 2^n_strides: the LSTM width */
    /* encoder */
    sn_conv enc_in, enc_down[SEANET_MAX_STRIDES], enc_out;
    sn_res *enc_res;  /* [n_strides][n_residual_layers], stage i at channels C 2^i */
    sn_lstm enc_lstm;
    /* decoder; up[i] maps C 2^(i+1) -> C 2^i and runs in order i = n-1 .. 0 */
    sn_conv dec_in, dec_up[SEANET_MAX_STRIDES], dec_out;
    sn_res *dec_res;  /* [n_strides][n_residual_layers], indexed like dec_up */
    sn_lstm dec_lstm;
    float **owned;    /* fp32 biases */
    int n_owned, cap_owned;
};

/* ---- loading ----------------------------------------------------------------------------- */

static int get_int_key(const gguf_file *f, const char *name, int64_t lo, int64_t hi, int *out)
{
    char key[96];
    snprintf(key, sizeof key, "secodec.%s", name);
    int64_t v;
    int rc = gguf_get_int(f, key, lo, hi, &v);
    if (rc == COCHLEA_ERANGE)
        rc = COCHLEA_EFORMAT; /* the message already names the key, its value and the range */
    if (rc)
        return rc;
    *out = (int)v;
    return COCHLEA_OK;
}

static int get_bool_key(const gguf_file *f, const char *name, int *out)
{
    char key[96];
    snprintf(key, sizeof key, "secodec.%s", name);
    return gguf_get_bool(f, key, out);
}

static int read_hparams(const gguf_file *f, seanet_hparams *hp)
{
    const char *lab = gguf_label(f), *arch = NULL, *pad = NULL;
    int rc, causal;
    if ((rc = gguf_get_str(f, "general.architecture", &arch, NULL)) != 0)
        return rc;
    if (strcmp(arch, "secodec") != 0)
        return err_set(COCHLEA_EFORMAT, "%s: general.architecture is '%s', expected 'secodec'", lab, arch);
    if ((rc = get_bool_key(f, "causal", &causal)) != 0)
        return rc;
    if (causal)
        return err_set(COCHLEA_EUNSUPPORTED, "%s: secodec.causal is true: causal SEANet is not supported", lab);
    if ((rc = get_int_key(f, "sample_rate", 1, 1 << 20, &hp->sample_rate)) || (rc = get_int_key(f, "n_filters", 1, 1 << 14, &hp->n_filters)) ||
        (rc = get_int_key(f, "dimension", 1, 1 << 16, &hp->dimension)) ||
        (rc = get_int_key(f, "kernel_size", 1, 4096, &hp->kernel_size)) ||
        (rc = get_int_key(f, "last_kernel_size", 1, 4096, &hp->last_kernel_size)) ||
        (rc = get_int_key(f, "residual_kernel_size", 1, 4096, &hp->residual_kernel_size)) ||
        (rc = get_int_key(f, "dilation_base", 1, 64, &hp->dilation_base)) ||
        (rc = get_int_key(f, "n_residual_layers", 0, 16, &hp->n_residual_layers)) ||
        (rc = get_int_key(f, "compress", 1, 1 << 20, &hp->compress)) ||
        (rc = get_int_key(f, "lstm_layers", 0, 16, &hp->lstm_layers)) ||
        (rc = get_bool_key(f, "encoder_bidirectional", &hp->encoder_bidirectional)) ||
        (rc = get_bool_key(f, "true_skip", &hp->true_skip)))
        return rc;
    double alpha;
    if ((rc = gguf_get_float(f, "secodec.elu_alpha", &alpha)) != 0)
        return rc;
    if (!isfinite(alpha) || fabs(alpha) > 1e6)
        return err_set(COCHLEA_EFORMAT, "%s: secodec.elu_alpha = %g is not a finite number of sane size", lab, alpha);
    hp->elu_alpha = (float)alpha;
    if ((rc = gguf_get_str(f, "secodec.pad_mode", &pad, NULL)) != 0)
        return rc;
    if (strcmp(pad, "reflect") == 0)
        hp->pad_mode = SEANET_PAD_REFLECT;
    else if (strcmp(pad, "constant") == 0)
        hp->pad_mode = SEANET_PAD_CONSTANT;
    else
        return err_set(COCHLEA_EUNSUPPORTED, "%s: secodec.pad_mode '%s' is not supported (reflect or constant)", lab,
                       pad);

    const gguf_value *sv;
    if ((rc = gguf_get_array(f, "secodec.strides", &sv)) != 0)
        return rc;
    if (sv->n < 1 || sv->n > SEANET_MAX_STRIDES)
        return err_set(COCHLEA_EFORMAT, "%s: secodec.strides has %" PRIu64 " entries (1 to %d allowed)", lab, sv->n,
                       SEANET_MAX_STRIDES);
    hp->n_strides = (int)sv->n;
    int64_t hop = 1;
    for (int i = 0; i < hp->n_strides; i++) {
        int64_t s;
        if ((rc = gguf_value_int(sv, (uint64_t)i, &s)) != 0)
            return rc == COCHLEA_ERANGE ? COCHLEA_EFORMAT : rc;
        if (s < 1 || s > 64)
            return err_set(COCHLEA_EFORMAT, "%s: secodec.strides[%d] = %" PRId64 " is outside [1, 64]", lab, i, s);
        hp->strides[i] = (int)s;
        hop *= s;
    }
    if (hop > (1 << 20))
        return err_set(COCHLEA_EFORMAT, "%s: secodec.strides give a hop of %" PRId64 " samples (at most %d)", lab, hop,
                       1 << 20);
    hp->hop = (int)hop;
    if ((int64_t)hp->n_filters << hp->n_strides > (1 << 16))
        return err_set(COCHLEA_EFORMAT, "%s: n_filters %d x 2^%d channels is too wide (at most 65536)", lab,
                       hp->n_filters, hp->n_strides);
    if (hp->n_filters / hp->compress < 1)
        return err_set(COCHLEA_EFORMAT, "%s: secodec.compress = %d leaves no ResBlock channels for n_filters %d", lab,
                       hp->compress, hp->n_filters);
    int64_t d = 1;
    for (int j = 1; j < hp->n_residual_layers; j++)
        d *= hp->dilation_base;
    if (d * (hp->residual_kernel_size - 1) > (1 << 16))
        return err_set(COCHLEA_EFORMAT, "%s: ResBlock dilation %" PRId64 " x kernel %d is too large", lab, d,
                       hp->residual_kernel_size);
    return COCHLEA_OK;
}

static int own(seanet *net, float *p)
{
    if (net->n_owned == net->cap_owned) {
        int cap = net->cap_owned ? 2 * net->cap_owned : 64;
        float **o = realloc(net->owned, (size_t)cap * sizeof *o);
        if (!o)
            return -1;
        net->owned = o;
        net->cap_owned = cap;
    }
    net->owned[net->n_owned++] = p;
    return 0;
}

static int check_type(const gguf_file *f, const tensor *t, const char *name, int weight)
{
    int ok = t->type == COCHLEA_TYPE_F32 || t->type == COCHLEA_TYPE_F16 || t->type == COCHLEA_TYPE_BF16 ||
             (weight && t->type == COCHLEA_TYPE_Q8_0);
    if (!ok) {
        const char *tn = type_name(t->type);
        return err_set(COCHLEA_EUNSUPPORTED, "%s: tensor '%s' has type %s (expected f32, f16, bf16%s)", gguf_label(f),
                       name, tn ? tn : "?", weight ? " or q8_0" : "");
    }
    return COCHLEA_OK;
}

/* A vector tensor of n values as a new fp32 array owned by net. */
static int load_vec(seanet *net, const gguf_file *f, const char *name, int64_t n, float **out)
{
    const tensor *t;
    int rc = gguf_expect_tensor(f, name, 1, &n, &t);
    if (rc || (rc = check_type(f, t, name, 0)))
        return rc;
    float *b = malloc((size_t)n * sizeof *b);
    if (!b || own(net, b)) {
        free(b);
        return err_set(COCHLEA_ENOMEM, "%s: out of memory for tensor '%s'", gguf_label(f), name);
    }
    tensor_row_to_f32(t, 0, b);
    *out = b;
    return COCHLEA_OK;
}

/* "<prefix>.weight" (Conv1d [c_out, c_in, k], or ConvTranspose1d [c_in, c_out, k] when
 * transposed) and "<prefix>.bias" [c_out]. */
static int load_conv(seanet *net, const gguf_file *f, const char *prefix, int c_in, int c_out, int k, int stride,
                     int dilation, int transposed, sn_conv *c)
{
    char name[256];
    int rc;
    int64_t ne[3] = {k, transposed ? c_out : c_in, transposed ? c_in : c_out};
    snprintf(name, sizeof name, "%s.weight", prefix);
    if ((rc = gguf_expect_tensor(f, name, 3, ne, &c->w)) || (rc = check_type(f, c->w, name, 1)))
        return rc;
    snprintf(name, sizeof name, "%s.bias", prefix);
    if ((rc = load_vec(net, f, name, c_out, &c->b)) != 0)
        return rc;
    c->k = k;
    c->stride = stride;
    c->dilation = dilation;
    c->c_in = c_in;
    c->c_out = c_out;
    return COCHLEA_OK;
}

/* ResBlock j of a stage: "<prefix>.block.1.conv.conv", "<prefix>.block.3.conv.conv",
 * "<prefix>.shortcut.conv.conv". */
static int load_res(seanet *net, const gguf_file *f, const char *prefix, int dim, int j, sn_res *r)
{
    const seanet_hparams *hp = &net->hp;
    char name[200];
    int rc, dil = 1;
    for (int i = 0; i < j; i++)
        dil *= hp->dilation_base;
    r->dim = dim;
    r->hidden = dim / hp->compress;
    snprintf(name, sizeof name, "%s.block.1.conv.conv", prefix);
    if ((rc = load_conv(net, f, name, dim, r->hidden, hp->residual_kernel_size, 1, dil, 0, &r->c1)) != 0)
        return rc;
    snprintf(name, sizeof name, "%s.block.3.conv.conv", prefix);
    if ((rc = load_conv(net, f, name, r->hidden, dim, 1, 1, 1, 0, &r->c2)) != 0)
        return rc;
    if (hp->true_skip)
        return COCHLEA_OK;
    snprintf(name, sizeof name, "%s.shortcut.conv.conv", prefix);
    return load_conv(net, f, name, dim, dim, 1, 1, 1, 0, &r->sc);
}

/* "<prefix>.weight_ih_l{k}[_reverse]" [4H, I_k], weight_hh [4H, H], bias_ih/bias_hh [4H]. */
static int load_lstm(seanet *net, const gguf_file *f, const char *prefix, int size, int n_layers, int n_dirs,
                     sn_lstm *m)
{
    char name[256];
    int rc;
    int64_t H = size, G = 4 * (int64_t)size;
    m->n_layers = n_layers;
    m->n_dirs = n_dirs;
    m->size = size;
    for (int l = 0; l < n_layers; l++) {
        int64_t I = l == 0 ? H : n_dirs * H;
        for (int d = 0; d < n_dirs; d++) {
            ops_lstm_weights *w = &m->w[l * n_dirs + d];
            const char *rev = d ? "_reverse" : "";
            int64_t ne_ih[2] = {I, G}, ne_hh[2] = {H, G};
            snprintf(name, sizeof name, "%s.weight_ih_l%d%s", prefix, l, rev);
            if ((rc = gguf_expect_tensor(f, name, 2, ne_ih, &w->w_ih)) || (rc = check_type(f, w->w_ih, name, 1)))
                return rc;
            snprintf(name, sizeof name, "%s.weight_hh_l%d%s", prefix, l, rev);
            if ((rc = gguf_expect_tensor(f, name, 2, ne_hh, &w->w_hh)) || (rc = check_type(f, w->w_hh, name, 1)))
                return rc;
            float *b;
            snprintf(name, sizeof name, "%s.bias_ih_l%d%s", prefix, l, rev);
            if ((rc = load_vec(net, f, name, G, &b)) != 0)
                return rc;
            w->b_ih = b;
            snprintf(name, sizeof name, "%s.bias_hh_l%d%s", prefix, l, rev);
            if ((rc = load_vec(net, f, name, G, &b)) != 0)
                return rc;
            w->b_hh = b;
        }
    }
    return COCHLEA_OK;
}

/* Tensors at SEANet's nn.Sequential indices (secodec.md §1.3 / §1.5 tables for the default). */
static int load_tensors(seanet *net, const gguf_file *f)
{
    const seanet_hparams *hp = &net->hp;
    const int C = hp->n_filters, n = hp->n_strides, nr = hp->n_residual_layers;
    char name[160];
    int rc, idx = 0;

    /* encoder */
    snprintf(name, sizeof name, "encoder.model.%d.conv.conv", idx++);
    if ((rc = load_conv(net, f, name, 1, C, hp->kernel_size, 1, 1, 0, &net->enc_in)) != 0)
        return rc;
    for (int i = 0; i < n; i++) {
        int dim = C << i;
        for (int j = 0; j < nr; j++) {
            snprintf(name, sizeof name, "encoder.model.%d", idx++);
            if ((rc = load_res(net, f, name, dim, j, &net->enc_res[i * nr + j])) != 0)
                return rc;
        }
        idx++; /* ELU */
        snprintf(name, sizeof name, "encoder.model.%d.conv.conv", idx++);
        if ((rc = load_conv(net, f, name, dim, 2 * dim, 2 * hp->strides[i], hp->strides[i], 1, 0,
                            &net->enc_down[i])) != 0)
            return rc;
    }
    int n_dirs = hp->encoder_bidirectional ? 2 : 1;
    if (hp->lstm_layers > 0) {
        snprintf(name, sizeof name, "encoder.model.%d.lstm", idx++);
        if ((rc = load_lstm(net, f, name, net->width, hp->lstm_layers, n_dirs, &net->enc_lstm)) != 0)
            return rc;
    } else {
        n_dirs = 1; /* SEANet doubles the width only for a bidirectional LSTM */
    }
    idx++; /* ELU */
    snprintf(name, sizeof name, "encoder.model.%d.conv.conv", idx++);
    if ((rc = load_conv(net, f, name, n_dirs * net->width, hp->dimension, hp->last_kernel_size, 1, 1, 0,
                        &net->enc_out)) != 0)
        return rc;

    /* decoder */
    idx = 0;
    snprintf(name, sizeof name, "decoder.model.%d.conv.conv", idx++);
    if ((rc = load_conv(net, f, name, hp->dimension, net->width, hp->kernel_size, 1, 1, 0, &net->dec_in)) != 0)
        return rc;
    if (hp->lstm_layers > 0) {
        snprintf(name, sizeof name, "decoder.model.%d.lstm", idx++);
        if ((rc = load_lstm(net, f, name, net->width, hp->lstm_layers, 1, &net->dec_lstm)) != 0)
            return rc;
    }
    for (int i = n - 1; i >= 0; i--) {
        int dim = C << i;
        idx++; /* ELU */
        snprintf(name, sizeof name, "decoder.model.%d.convtr.convtr", idx++);
        if ((rc = load_conv(net, f, name, 2 * dim, dim, 2 * hp->strides[i], hp->strides[i], 1, 1,
                            &net->dec_up[i])) != 0)
            return rc;
        for (int j = 0; j < nr; j++) {
            snprintf(name, sizeof name, "decoder.model.%d", idx++);
            if ((rc = load_res(net, f, name, dim, j, &net->dec_res[i * nr + j])) != 0)
                return rc;
        }
    }
    idx++; /* ELU */
    snprintf(name, sizeof name, "decoder.model.%d.conv.conv", idx++);
    return load_conv(net, f, name, C, 1, hp->last_kernel_size, 1, 1, 0, &net->dec_out);
}

int seanet_load(const gguf_file *f, seanet **out)
{
    if (!f || !out)
        return err_set(COCHLEA_EINVAL, "seanet_load: missing file or output");
    *out = NULL;
    seanet *net = calloc(1, sizeof *net);
    if (!net)
        return err_set(COCHLEA_ENOMEM, "seanet_load: out of memory");
    int rc = read_hparams(f, &net->hp);
    if (rc == 0) {
        const seanet_hparams *hp = &net->hp;
        net->width = hp->n_filters << hp->n_strides;
        size_t nres = (size_t)hp->n_strides * (size_t)hp->n_residual_layers;
        net->enc_res = calloc(nres ? nres : 1, sizeof *net->enc_res);
        net->dec_res = calloc(nres ? nres : 1, sizeof *net->dec_res);
        rc = net->enc_res && net->dec_res ? load_tensors(net, f)
                                          : err_set(COCHLEA_ENOMEM, "seanet_load: out of memory");
    }
    if (rc) {
        seanet_free(net);
        return rc;
    }
    *out = net;
    return COCHLEA_OK;
}

void seanet_free(seanet *net)
{
    if (!net)
        return;
    for (int i = 0; i < net->n_owned; i++)
        free(net->owned[i]);
    free(net->owned);
    free(net->enc_res);
    free(net->dec_res);
    free(net);
}

const seanet_hparams *seanet_get_hparams(const seanet *net) { return net ? &net->hp : NULL; }
int seanet_hop(const seanet *net) { return net ? net->hp.hop : 0; }
int seanet_dimension(const seanet *net) { return net ? net->hp.dimension : 0; }

int64_t seanet_n_frames(const seanet *net, int64_t L)
{
    if (!net || L <= 0)
        return 0;
    return (L - 1) / net->hp.hop + 1;
}

/* ---- padding and layers ------------------------------------------------------------------ */

void seanet_pad1d(const float *x, int64_t n, int64_t left, int64_t right, enum seanet_pad_mode mode, float *out)
{
    if (mode == SEANET_PAD_CONSTANT) {
        memset(out, 0, (size_t)left * sizeof *out);
        memcpy(out + left, x, (size_t)n * sizeof *out);
        memset(out + left + n, 0, (size_t)right * sizeof *out);
        return;
    }
    /* reflect on x extended by zeros to n' = max(n, max(left, right) + 1) samples */
    int64_t mx = left > right ? left : right;
    int64_t np = n > mx ? n : mx + 1;
    for (int64_t p = -left; p < n + right; p++) {
        int64_t i = p < 0 ? -p : (p >= np ? 2 * (np - 1) - p : p);
        out[p + left] = i < n ? x[i] : 0.0f;
    }
}

/* Output frames of a §5.2 "same" conv with stride s on L samples: ceil(L / s). */
static int64_t conv_frames(int64_t L, int s) { return (L + s - 1) / s; }

/* A §5.2 non-causal Conv1d: x [c_in, L] -> y [c_out, ceil(L / stride)]. Pads P = (k-1) d + 1 - s,
 * right P/2 (+ the extra ceil(L/s) s - L), left the rest. */
static int conv_apply(cochlea_ctx *ctx, const seanet *net, const sn_conv *c, const float *x, int64_t L, float *y)
{
    int64_t keff = (int64_t)(c->k - 1) * c->dilation + 1;
    int64_t P = keff - c->stride;
    if (P < 0)
        P = 0;
    int64_t T_out = conv_frames(L, c->stride);
    int64_t right = P / 2, left = P - right;
    int64_t extra = T_out * c->stride + keff - c->stride - P - L;
    if (extra < 0)
        extra = 0;
    right += extra;
    ops_conv1d_params p = ops_conv1d_default_params();
    p.stride = c->stride;
    p.dilation = c->dilation;
    int64_t mx = left > right ? left : right;
    if (net->hp.pad_mode == SEANET_PAD_CONSTANT || L > mx) {
        p.pad_left = (int)left;
        p.pad_right = (int)right;
        p.pad_mode = net->hp.pad_mode == SEANET_PAD_CONSTANT ? OPS_PAD_ZERO : OPS_PAD_REFLECT;
        return ops_conv1d(ctx, x, c->c_in, L, c->w, c->b, &p, y, T_out);
    }
    /* short input (L <= max pad): pad by hand with the extension rule, then a plain conv */
    int64_t Lp = left + L + right;
    size_t n;
    if (size_mul((size_t)c->c_in, (size_t)Lp, &n))
        return err_set(COCHLEA_ERANGE, "seanet: padded input size overflows");
    float *xp = malloc(n * sizeof *xp);
    if (!xp)
        return err_set(COCHLEA_ENOMEM, "seanet: out of memory padding a short input");
    for (int64_t ch = 0; ch < c->c_in; ch++)
        seanet_pad1d(x + ch * L, L, left, right, SEANET_PAD_REFLECT, xp + ch * Lp);
    int rc = ops_conv1d(ctx, xp, c->c_in, Lp, c->w, c->b, &p, y, T_out);
    free(xp);
    return rc;
}

/* A §5.2 non-causal ConvTranspose1d: x [c_in, T] -> y [c_out, T s]; the full output loses
 * P = k - s samples, P/2 at the end and P - P/2 at the start. y holds c_out (T s + 1) floats. */
static int convtr_apply(cochlea_ctx *ctx, const sn_conv *c, const float *x, int64_t T, float *y)
{
    int64_t P = c->k - c->stride, right = P / 2, left = P - right, shift = left - right;
    ops_conv_transpose1d_params p = ops_conv_transpose1d_default_params();
    p.stride = c->stride;
    p.padding = (int)right;
    int64_t Tn = T * c->stride, Tf = Tn + shift;
    int rc = ops_conv_transpose1d(ctx, x, c->c_in, T, c->w, c->b, &p, y, Tf);
    if (rc || shift == 0)
        return rc;
    for (int64_t ch = 0; ch < c->c_out; ch++)
        memmove(y + ch * Tn, y + ch * Tf + shift, (size_t)Tn * sizeof *y);
    return COCHLEA_OK;
}

/* ResBlock in place on x [dim, L]: x = shortcut(x) + c2(ELU(c1(ELU(x)))); a, b are scratch of
 * dim * L floats each. */
static int res_apply(cochlea_ctx *ctx, const seanet *net, const sn_res *r, float *x, int64_t L, float *a, float *b)
{
    const float alpha = net->hp.elu_alpha;
    int64_t n = (int64_t)r->dim * L;
    int rc;
    ops_elu(ctx, x, alpha, a, n);
    if ((rc = conv_apply(ctx, net, &r->c1, a, L, b)) != 0)
        return rc;
    ops_elu(ctx, b, alpha, b, (int64_t)r->hidden * L);
    if ((rc = conv_apply(ctx, net, &r->c2, b, L, a)) != 0)
        return rc;
    if (r->sc.w) {
        if ((rc = conv_apply(ctx, net, &r->sc, x, L, b)) != 0)
            return rc;
        ops_add(ctx, a, b, x, n);
    } else {
        ops_add(ctx, x, a, x, n);
    }
    return COCHLEA_OK;
}

/* out [cols, rows] = transpose of in [rows, cols] */
static void transpose(const float *in, int64_t rows, int64_t cols, float *out)
{
    const int64_t B = 32;
    for (int64_t r0 = 0; r0 < rows; r0 += B)
        for (int64_t c0 = 0; c0 < cols; c0 += B)
            for (int64_t r = r0; r < rows && r < r0 + B; r++)
                for (int64_t c = c0; c < cols && c < c0 + B; c++)
                    out[c * rows + r] = in[r * cols + c];
}

/* SLSTM: x [T, W] -> y [T, n_dirs W] = LSTM(x) + [x, x] (skip, the input repeated per direction). */
static int lstm_apply(cochlea_ctx *ctx, const sn_lstm *m, const float *x, int64_t T, float *y)
{
    ops_lstm_desc d = {m->size, m->size, m->n_layers, m->n_dirs == 2, m->w};
    int rc = ops_lstm(ctx, &d, x, T, NULL, NULL, y, NULL, NULL);
    if (rc)
        return rc;
    int64_t W = m->size, Wo = m->n_dirs * W;
    for (int64_t t = 0; t < T; t++)
        for (int dir = 0; dir < m->n_dirs; dir++)
            ops_add(NULL, y + t * Wo + dir * W, x + t * W, y + t * Wo + dir * W, W);
    return COCHLEA_OK;
}

/* ---- buffer planning --------------------------------------------------------------------- */

static int upd(size_t *m, int64_t a, int64_t b)
{
    size_t v;
    if (a < 0 || b < 0 || size_mul((size_t)a, (size_t)b, &v) || v > (size_t)INT64_MAX / 8)
        return -1;
    if (v > *m)
        *m = v;
    return 0;
}

/* Floats per activation buffer for encoding L samples. */
static int plan_encode(const seanet *net, int64_t L, size_t *floats)
{
    const seanet_hparams *hp = &net->hp;
    size_t m = 1;
    int64_t len = L;
    for (int i = 0; i < hp->n_strides; i++) {
        if (upd(&m, (int64_t)hp->n_filters << i, len))
            return -1;
        len = conv_frames(len, hp->strides[i]);
        if (upd(&m, (int64_t)hp->n_filters << (i + 1), len))
            return -1;
    }
    if (upd(&m, 2 * (int64_t)net->width, len) || upd(&m, hp->dimension, len))
        return -1;
    *floats = m;
    return 0;
}

/* Floats per activation buffer for decoding T frames. */
static int plan_decode(const seanet *net, int64_t T, size_t *floats)
{
    const seanet_hparams *hp = &net->hp;
    size_t m = 1;
    int64_t len = T;
    if (upd(&m, hp->dimension, len) || upd(&m, net->width, len))
        return -1;
    for (int i = hp->n_strides - 1; i >= 0; i--) {
        if (len > INT64_MAX / 64)
            return -1;
        len *= hp->strides[i];
        if (upd(&m, (int64_t)hp->n_filters << i, len + hp->strides[i]))
            return -1;
    }
    *floats = m;
    return 0;
}

static int scratch_bytes(size_t floats, size_t *bytes)
{
    size_t b;
    if (size_mul(floats, 3 * sizeof(float), &b))
        return -1;
    *bytes = b;
    return 0;
}

int seanet_encode_scratch_bytes(const seanet *net, int64_t L, size_t *bytes)
{
    size_t fl;
    if (!net || !bytes || L < 1)
        return err_set(COCHLEA_EINVAL, "seanet: bad arguments to seanet_encode_scratch_bytes");
    if (plan_encode(net, L, &fl) || scratch_bytes(fl, bytes))
        return err_set(COCHLEA_ERANGE, "seanet: %" PRId64 " samples need more memory than can be addressed", L);
    return COCHLEA_OK;
}

int seanet_decode_scratch_bytes(const seanet *net, int64_t T, size_t *bytes)
{
    size_t fl;
    if (!net || !bytes || T < 1)
        return err_set(COCHLEA_EINVAL, "seanet: bad arguments to seanet_decode_scratch_bytes");
    if (plan_decode(net, T, &fl) || scratch_bytes(fl, bytes))
        return err_set(COCHLEA_ERANGE, "seanet: %" PRId64 " frames need more memory than can be addressed", T);
    return COCHLEA_OK;
}

static int alloc3(size_t floats, float *buf[3])
{
    buf[0] = malloc(floats * sizeof(float));
    buf[1] = malloc(floats * sizeof(float));
    buf[2] = malloc(floats * sizeof(float));
    if (buf[0] && buf[1] && buf[2])
        return COCHLEA_OK;
    free(buf[0]);
    free(buf[1]);
    free(buf[2]);
    return err_set(COCHLEA_ENOMEM, "seanet: out of memory for 3 x %zu activation floats", floats);
}

static void swap(float **a, float **b)
{
    float *t = *a;
    *a = *b;
    *b = t;
}

/* ---- encoder / decoder ------------------------------------------------------------------- */

/* secodec.md §1.3: pcm [L] -> z [T, D]. */
int seanet_encode(cochlea_ctx *ctx, const seanet *net, const float *pcm, int64_t L, float *z)
{
    if (!ctx || !net || !pcm || !z)
        return err_set(COCHLEA_EINVAL, "seanet_encode: missing context, network, input or output");
    if (L < 1)
        return err_set(COCHLEA_EINVAL, "seanet_encode: %" PRId64 " samples (at least 1 needed)", L);
    const seanet_hparams *hp = &net->hp;
    size_t fl;
    if (plan_encode(net, L, &fl))
        return err_set(COCHLEA_ERANGE, "seanet_encode: %" PRId64 " samples need more memory than can be addressed", L);
    float *buf[3];
    int rc = alloc3(fl, buf);
    if (rc)
        return rc;
    float *X = buf[0], *A = buf[1], *B = buf[2];
    const int nr = hp->n_residual_layers;
    int64_t len = L;
    rc = conv_apply(ctx, net, &net->enc_in, pcm, len, X);
    for (int i = 0; rc == 0 && i < hp->n_strides; i++) {
        for (int j = 0; rc == 0 && j < nr; j++)
            rc = res_apply(ctx, net, &net->enc_res[i * nr + j], X, len, A, B);
        if (rc)
            break;
        ops_elu(ctx, X, hp->elu_alpha, X, (int64_t)(hp->n_filters << i) * len);
        rc = conv_apply(ctx, net, &net->enc_down[i], X, len, A);
        len = conv_frames(len, hp->strides[i]);
        swap(&X, &A);
    }
    if (rc == 0 && hp->lstm_layers > 0) {
        int64_t Wo = (int64_t)net->enc_lstm.n_dirs * net->width;
        transpose(X, net->width, len, A);
        rc = lstm_apply(ctx, &net->enc_lstm, A, len, B);
        if (rc == 0) {
            ops_elu(ctx, B, hp->elu_alpha, B, Wo * len);
            transpose(B, len, Wo, X);
        }
    } else if (rc == 0) {
        ops_elu(ctx, X, hp->elu_alpha, X, (int64_t)net->width * len);
    }
    if (rc == 0)
        rc = conv_apply(ctx, net, &net->enc_out, X, len, A);
    if (rc == 0)
        transpose(A, hp->dimension, len, z);
    free(buf[0]);
    free(buf[1]);
    free(buf[2]);
    return rc;
}

/* secodec.md §1.5: z [T, D] -> pcm [T hop]. */
int seanet_decode(cochlea_ctx *ctx, const seanet *net, const float *z, int64_t T, float *pcm)
{
    if (!ctx || !net || !z || !pcm)
        return err_set(COCHLEA_EINVAL, "seanet_decode: missing context, network, input or output");
    if (T < 1)
        return err_set(COCHLEA_EINVAL, "seanet_decode: %" PRId64 " frames (at least 1 needed)", T);
    const seanet_hparams *hp = &net->hp;
    size_t fl;
    if (plan_decode(net, T, &fl))
        return err_set(COCHLEA_ERANGE, "seanet_decode: %" PRId64 " frames need more memory than can be addressed", T);
    float *buf[3];
    int rc = alloc3(fl, buf);
    if (rc)
        return rc;
    float *X = buf[0], *A = buf[1], *B = buf[2];
    const int nr = hp->n_residual_layers;
    int64_t len = T;
    transpose(z, T, hp->dimension, A);
    rc = conv_apply(ctx, net, &net->dec_in, A, len, X);
    if (rc == 0 && hp->lstm_layers > 0) {
        transpose(X, net->width, len, A);
        rc = lstm_apply(ctx, &net->dec_lstm, A, len, B);
        if (rc == 0)
            transpose(B, len, net->width, X);
    }
    for (int i = hp->n_strides - 1; rc == 0 && i >= 0; i--) {
        ops_elu(ctx, X, hp->elu_alpha, X, (int64_t)(hp->n_filters << (i + 1)) * len);
        rc = convtr_apply(ctx, &net->dec_up[i], X, len, A);
        len *= hp->strides[i];
        swap(&X, &A);
        for (int j = 0; rc == 0 && j < nr; j++)
            rc = res_apply(ctx, net, &net->dec_res[i * nr + j], X, len, A, B);
    }
    if (rc == 0) {
        ops_elu(ctx, X, hp->elu_alpha, X, (int64_t)hp->n_filters * len);
        rc = conv_apply(ctx, net, &net->dec_out, X, len, pcm);
    }
    free(buf[0]);
    free(buf[1]);
    free(buf[2]);
    return rc;
}
