/* ops.h - the numeric operations every model in Cochlea is built from.
 *
 * Conventions: activations are contiguous row-major fp32 arrays unless a stride is given;
 * "rows x cols" means rows of `cols` contiguous values. Every op takes the context first and
 * may use its thread pool; results must not depend on the thread count beyond float
 * reassociation. Ops that can fail (allocation, bad shape) return COCHLEA_OK or a COCHLEA_E*
 * code with a message; elementwise ops return void. Weights are `const tensor *` where their
 * storage type may vary (F32/F16/BF16/Q8_0), plain float pointers otherwise. Each op has a
 * naive reference implementation in the tests. */
#ifndef COCHLEA_OPS_H
#define COCHLEA_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "tensor.h"

/* ==== elementwise, normalisation, activations, embeddings, positions, attention ==== */
/* (section owned by ops_basic.c / ops_attn.c)
 *
 * `ctx` may be NULL for every op in this section: the op then runs on the calling thread only.
 * Pass NULL when calling from inside a pool task (pool_run is not reentrant). With a context,
 * an op splits large inputs over the context's pool. Every op here computes each output value
 * on one thread in a fixed order, so results are bit-identical for any thread count (the one
 * exception is ops_attention's GEMM path, see there). Outputs may alias inputs exactly
 * (in place) unless stated otherwise; partial overlaps are not allowed. Sizes <= 0 do nothing.
 * AVX-512 builds use vectorised exp/expm1/erfc (measured max error: sigmoid, tanh, SiLU, ELU
 * <= 3.4 ulp, GELU 5.8 ulp); other builds use libm. */

/* ---- elementwise arithmetic on n contiguous values ---- */

/* y = a + b */
void ops_add(cochlea_ctx *ctx, const float *a, const float *b, float *y, int64_t n);
/* y = a * b */
void ops_mul(cochlea_ctx *ctx, const float *a, const float *b, float *y, int64_t n);
/* y = s * x */
void ops_scale(cochlea_ctx *ctx, const float *x, float s, float *y, int64_t n);
/* y = a + s * b (residual connections such as ESPnet's x + 0.5 * FFN(x)) */
void ops_add_scaled(cochlea_ctx *ctx, const float *a, const float *b, float s, float *y, int64_t n);

/* ---- a row vector broadcast over the rows of a [rows, cols] matrix ---- */

/* y[r, c] = x[r, c] + row[c] (x, y contiguous) */
void ops_add_row(cochlea_ctx *ctx, const float *x, const float *row, float *y, int64_t rows, int64_t cols);
/* y[r, c] = x[r, c] * row[c] (x, y contiguous) */
void ops_mul_row(cochlea_ctx *ctx, const float *x, const float *row, float *y, int64_t rows, int64_t cols);
/* In place x[r * ldx + c] += bias[c] for r < rows, c < cols (ldx >= cols). */
void ops_add_bias(cochlea_ctx *ctx, float *x, int64_t rows, int64_t cols, int64_t ldx, const float *bias);

/* ---- normalisations over the last dimension; x rows have stride ldx, y rows ldy ---- */

/* LayerNorm: y = (x - mean) / sqrt(var + eps) * gamma + beta, biased variance over the `cols`
 * values of each row; gamma/beta may be NULL (1 and 0). ESPnet's LayerNorm uses eps = 1e-12,
 * torch.nn.LayerNorm 1e-5: eps is the caller's. */
void ops_layer_norm(cochlea_ctx *ctx, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                    int64_t cols, const float *gamma, const float *beta, float eps);
/* RMSNorm: y = x / sqrt(mean(x^2) + eps) * gamma; gamma may be NULL. */
void ops_rms_norm(cochlea_ctx *ctx, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                  int64_t cols, const float *gamma, float eps);

/* Softmax over each row of z = x + mask, computed as exp(z - max z) / sum, so any finite inputs
 * are safe. mask (additive, may be NULL) has row stride mask_ld; mask_ld = 0 applies one row
 * to every row. Entries where z = -inf get probability 0 exactly; a row where every z is -inf
 * (fully masked) gives all zeros, not NaN. NaN or +inf inputs give NaN rows. */
void ops_softmax(cochlea_ctx *ctx, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                 int64_t cols, const float *mask, int64_t mask_ld);
/* log_softmax over each row: y = x - max - log(sum exp(x - max)); -inf inputs stay -inf and an
 * all -inf row gives all -inf (the log of the zeros ops_softmax gives). */
void ops_log_softmax(cochlea_ctx *ctx, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                     int64_t cols);

/* ---- activations on n contiguous values (LSTM/GRU gates use ops_sigmoid/ops_tanh) ---- */

/* GELU, exact: y = x/2 * (1 + erf(x/sqrt 2)) (torch.nn.GELU()), accurate in the negative tail */
void ops_gelu(cochlea_ctx *ctx, const float *x, float *y, int64_t n);
/* GELU, tanh approximation: y = x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 * (torch.nn.GELU(approximate='tanh')) */
void ops_gelu_tanh(cochlea_ctx *ctx, const float *x, float *y, int64_t n);
/* swish/SiLU: y = x * sigmoid(x) */
void ops_silu(cochlea_ctx *ctx, const float *x, float *y, int64_t n);
/* y = max(x, 0) */
void ops_relu(cochlea_ctx *ctx, const float *x, float *y, int64_t n);
/* ELU: y = x for x > 0, alpha * (exp(x) - 1) otherwise (computed with expm1) */
void ops_elu(cochlea_ctx *ctx, const float *x, float alpha, float *y, int64_t n);
/* y = 1 / (1 + exp(-x)), relative accuracy kept for large negative x */
void ops_sigmoid(cochlea_ctx *ctx, const float *x, float *y, int64_t n);
/* y = tanh(x), relative accuracy kept near 0 */
void ops_tanh(cochlea_ctx *ctx, const float *x, float *y, int64_t n);

/* ---- embeddings and positions ---- */

/* out[i, :] = table row ids[i] as fp32, for i < n; out is [n, dim] contiguous with
 * dim = table->ne[0] and the vocabulary the product of ne[1..3]. The table may be of any
 * numeric type (F32, F16, BF16, Q8_0, I8, I16, I32). Every id is checked before anything is
 * written: an id outside [0, vocab) gives COCHLEA_ERANGE naming the tensor, the id and its
 * index. */
int ops_embedding(cochlea_ctx *ctx, const tensor *table, const int32_t *ids, int64_t n, float *out);

/* ESPnet's PositionalEncoding table: out[t, 2i] = sin(p * w_i), out[t, 2i+1] = cos(p * w_i)
 * with p = pos0 + t * step and w_i = exp(-(2i) * ln(10000) / d), for t < n_pos. Computed in
 * float32 the way PyTorch builds it (the 2i * (-ln(10000)/d) product, exp, p * w_i rounded to
 * float, then sin/cos) so tables match ESPnet's up to libm-vs-torch exp/sin ulps. d must be even
 * (COCHLEA_EINVAL otherwise); |p| must stay below 2^24. step -1 gives ESPnet's reversed
 * layout. */
int ops_sinusoidal_pe(cochlea_ctx *ctx, float *out, int64_t n_pos, int64_t d, int64_t pos0, int64_t step);

enum ops_rope_mode {
    OPS_ROPE_NORMAL = 0, /* rotate interleaved pairs (x[2i], x[2i+1]): llama.cpp's LLaMA mode on
                            the GGUF-permuted q/k weights, GPT-J style */
    OPS_ROPE_NEOX = 1    /* rotate halves (x[i], x[i + n_rot/2]): HF "rotate_half", GPT-NeoX */
};

/* RoPE in place on x [T, n_head * head_dim] (row stride ldx): for every row t and head, the
 * first n_rot values of the head are rotated in pairs (a, b) -> (a cos - b sin, a sin + b cos)
 * by the angle pos[t] * freq_base^(-2i / n_rot) of pair i < n_rot/2; values from n_rot to
 * head_dim are untouched. The angle is computed in double precision. n_rot must be even and
 * <= head_dim, freq_base > 0 (COCHLEA_EINVAL otherwise). */
int ops_rope(cochlea_ctx *ctx, float *x, int64_t T, int64_t ldx, int64_t n_head, int64_t head_dim, int64_t n_rot,
             const int32_t *pos, float freq_base, enum ops_rope_mode mode);

/* ---- multi-head attention ---- */

/* Scaled dot-product attention for self-, cross- and KV-cached attention:
 *   out_h = softmax(scale * Q_h K_g^T + mask) V_g  for every query head h, g = h / (H / Hkv),
 * Q [Tq, H*Dh] (row stride ldq), K and V [Tk, Hkv*Dh] (ldk, ldv; or head-major, see
 * k_head_stride), out [Tq, H*Dh] (ldo); head h is columns [h*Dh, (h+1)*Dh). Masks combine: an additive float mask, a boolean `allowed`
 * mask (0 = may not attend, as ESPnet's masked_fill(-inf) then re-zeroing) and `causal`.
 * A key that is masked gets weight 0 exactly; a query row whose keys are all masked (all
 * -inf / not allowed / outside the causal window, or Tk = 0) gets an output of zeros, not NaN.
 * ESPnet-style finite "min float" masks are not detected as masked: use -inf or `allowed`. */
typedef struct ops_attn_params {
    int64_t n_head;    /* H, >= 1 */
    int64_t n_head_kv; /* Hkv, >= 1 and dividing H (grouped-query attention; Hkv = H: plain MHA) */
    int64_t head_dim;  /* Dh, >= 1 */
    /* floats between consecutive kv heads in k and in v; 0 means head_dim (heads side by side
     * in each row: K, V are [Tk, Hkv*Dh] and ldk, ldv >= Hkv*Dh). A head-major KV cache
     * [Hkv, capacity, Dh] passes capacity*Dh here with ldk = ldv = Dh: each head is then one
     * contiguous stream, about 3x faster to read than 4 KiB-strided rows at Tq = 1. */
    int64_t k_head_stride, v_head_stride;
    float scale;       /* score scale; 0 means 1/sqrt(Dh) */
    /* causal: query row i sees keys j <= i + (Tk - Tq), i.e. the queries are the last Tq
     * positions of the key sequence (self-attention: Tk = Tq; KV cache: Tk = n_past + Tq). */
    int causal;
    /* additive mask element (h, i, j) at mask[h * mask_head_stride + i * mask_ld + j];
     * mask_ld = 0 shares one row over all queries (key padding), mask_head_stride = 0 shares
     * the [Tq, Tk] matrix over heads (a per-head bias such as ALiBi uses Tq * mask_ld). */
    const float *mask;
    int64_t mask_ld, mask_head_stride;
    /* boolean mask: key j allowed for query i iff allowed[i * allowed_ld + j] != 0;
     * allowed_ld = 0 shares one row over all queries. NULL: everything allowed. */
    const uint8_t *allowed;
    int64_t allowed_ld;
    /* 1: always use the row-wise kernel, so every output row is bit-identical whatever Tq is
     * (row i of a Tq-row call equals a 1-row call with the same keys and the same causal
     * position), as speculative decoding's fp32 equality tests need. 0: large problems may use
     * the GEMM path (gemm_f32 per head; results then match the row-wise kernel only up to
     * float reassociation and may depend on the BLAS thread split). */
    int batch_invariant;
    /* optional scratch of work_floats floats (at least ops_attention_work_floats()); NULL:
     * ops_attention allocates and frees its own */
    float *work;
    size_t work_floats;
} ops_attn_params;

/* Defaults: the given head layout, scale 1/sqrt(head_dim), no masks, not causal. */
ops_attn_params ops_attn_default_params(int64_t n_head, int64_t n_head_kv, int64_t head_dim);
/* Scratch floats ops_attention needs for these sizes with this context (thread count); 0 if the
 * sizes are invalid or overflow. */
size_t ops_attention_work_floats(const cochlea_ctx *ctx, const ops_attn_params *p, int64_t Tq, int64_t Tk);
/* Run attention as described above. out must not overlap q, k or v. Returns COCHLEA_EINVAL
 * for inconsistent shapes/strides (message names the value), COCHLEA_ENOMEM, or an error from
 * the GEMM backend. The row-wise kernel splits units of (kv head, 4 (query row, query head)
 * pairs) over the pool, so the query heads of a GQA group share K/V reads. The GEMM path
 * (Tq >= 256 and Tk >= 256, not batch_invariant, ctx not NULL) computes all heads' scores with
 * gemm_f32 into scratch of n_head * Tq * Tk floats, splits the softmax over the pool, then
 * multiplies by V with gemm_f32. */
int ops_attention(cochlea_ctx *ctx, const ops_attn_params *p, const float *q, int64_t ldq, const float *k,
                  int64_t ldk, const float *v, int64_t ldv, int64_t Tq, int64_t Tk, float *out, int64_t ldo);

/* ==== convolutions and recurrent layers ==== */
/* (section owned by ops_conv.c / ops_rnn.c)
 *
 * Layouts follow PyTorch for one batch item: a 1-D signal is [C, T] (C rows of T samples), an
 * image is [C, H, W] (ESPnet's Conv2dSubsampling: H = time, W = mel). Weights keep PyTorch's
 * layout, so as tensors their ggml dims are reversed (a Conv1d weight [C_out, C_in/g, K] has
 * ne = {K, C_in/g, C_out}); they must be contiguous and of type F32, F16, BF16 or Q8_0. Dense
 * convolutions run as im2col + gemm_linear (so the context's precision applies to them and a
 * packed-weight cache keyed by the weight's data pointer is reused), in blocks of output
 * positions so scratch memory stays bounded (about 24 MiB). The caller loops over a batch. */

/* How a 1-D convolution pads its input. */
enum ops_pad_mode {
    OPS_PAD_ZERO = 0,    /* zeros */
    OPS_PAD_REFLECT = 1, /* torch.nn.functional.pad mode='reflect' (edge not repeated); pad < T */
};

typedef struct {
    int stride;                 /* >= 1 */
    int dilation;               /* >= 1 */
    int groups;                 /* >= 1, divides C_in and C_out; groups == C_in is depthwise */
    int pad_left, pad_right;    /* >= 0, explicit so "same" and causal padding can be expressed */
    enum ops_pad_mode pad_mode;
} ops_conv1d_params;

/* stride 1, dilation 1, groups 1, no padding (zero mode). */
ops_conv1d_params ops_conv1d_default_params(void);

/* Output length of ops_conv1d: (T + pad_left + pad_right - dilation*(K-1) - 1) / stride + 1.
 * COCHLEA_EINVAL when the parameters are invalid or the padded input is shorter than the
 * dilated kernel. */
int ops_conv1d_out_len(int64_t T, int64_t K, const ops_conv1d_params *p, int64_t *T_out);

/* Conv1d (cross-correlation, as torch.nn.functional.conv1d after padding):
 * y[co, t] = bias[co] + sum_{c < C_in/g, k < K} w[co, c, k] * xpad[g(co)*C_in/g + c, t*stride + k*dilation].
 * x: [C_in, T]; w: ne = {K, C_in/groups, C_out}; bias: [C_out] or NULL; y: [C_out, T_out]
 * where T_out must equal ops_conv1d_out_len(). Depthwise convolutions (C_in/groups == 1) run
 * as a direct loop in fp32; others through gemm_linear. */
int ops_conv1d(cochlea_ctx *ctx, const float *x, int64_t C_in, int64_t T, const tensor *w, const float *bias,
               const ops_conv1d_params *p, float *y, int64_t T_out);

typedef struct {
    int stride;         /* >= 1 */
    int dilation;       /* >= 1 */
    int groups;         /* >= 1, divides C_in and C_out */
    int padding;        /* >= 0, removed from both ends of the full output */
    int output_padding; /* >= 0 and < stride or < dilation (as PyTorch), added at the end */
} ops_conv_transpose1d_params;

/* stride 1, dilation 1, groups 1, no padding. */
ops_conv_transpose1d_params ops_conv_transpose1d_default_params(void);

/* Output length of ops_conv_transpose1d:
 * (T - 1)*stride - 2*padding + dilation*(K - 1) + output_padding + 1, which must be >= 1. */
int ops_conv_transpose1d_out_len(int64_t T, int64_t K, const ops_conv_transpose1d_params *p, int64_t *T_out);

/* ConvTranspose1d (torch.nn.functional.conv_transpose1d): every input sample x[ci, t] adds
 * x[ci, t] * w[ci, c, k] to y[g(ci)*C_out/g + c, t*stride + k*dilation - padding].
 * x: [C_in, T]; w: PyTorch [C_in, C_out/groups, K], i.e. ne = {K, C_out/groups, C_in};
 * bias: [C_out] or NULL; y: [C_out, T_out], T_out as ops_conv_transpose1d_out_len().
 * Runs as a fp32 GEMM (gemm_f32) per block of input samples followed by col2im. */
int ops_conv_transpose1d(cochlea_ctx *ctx, const float *x, int64_t C_in, int64_t T, const tensor *w,
                         const float *bias, const ops_conv_transpose1d_params *p, float *y, int64_t T_out);

typedef struct {
    int stride_h, stride_w;     /* >= 1 */
    int pad_h, pad_w;           /* >= 0, zero padding on both sides */
    int dilation_h, dilation_w; /* >= 1 */
} ops_conv2d_params;

/* stride 1, no padding, dilation 1. */
ops_conv2d_params ops_conv2d_default_params(void);

/* Output size of ops_conv2d per axis: (n + 2*pad - dilation*(k-1) - 1) / stride + 1. */
int ops_conv2d_out_size(int64_t H, int64_t W, int64_t kh, int64_t kw, const ops_conv2d_params *p, int64_t *H_out,
                        int64_t *W_out);

/* Conv2d (cross-correlation, torch.nn.functional.conv2d, groups 1):
 * y[co, i, j] = bias[co] + sum_{ci, a, b} w[co, ci, a, b] * x[ci, i*sh + a*dh - ph, j*sw + b*dw - pw].
 * x: [C_in, H, W]; w: PyTorch [C_out, C_in, kh, kw], i.e. ne = {kw, kh, C_in, C_out};
 * bias: [C_out] or NULL; y: [C_out, H_out, W_out] as ops_conv2d_out_size(). im2col + gemm_linear. */
int ops_conv2d(cochlea_ctx *ctx, const float *x, int64_t C_in, int64_t H, int64_t W, const tensor *w,
               const float *bias, const ops_conv2d_params *p, float *y, int64_t H_out, int64_t W_out);

/* The weights of one LSTM layer in one direction, as torch.nn.LSTM names them
 * (weight_ih_l{k}[_reverse] ...), gate order i, f, g, o. */
typedef struct {
    const tensor *w_ih;  /* PyTorch [4H, I_l]: ne = {I_l, 4H}; I_0 = input_size, later 2H or H */
    const tensor *w_hh;  /* PyTorch [4H, H]: ne = {H, 4H} */
    const float *b_ih;   /* [4H] or NULL */
    const float *b_hh;   /* [4H] or NULL */
} ops_lstm_weights;

typedef struct {
    int64_t input_size;
    int64_t hidden_size;
    int n_layers;                 /* >= 1 */
    int bidirectional;            /* 0 or 1 */
    const ops_lstm_weights *w;    /* n_layers * n_dirs entries, index layer*n_dirs + dir */
} ops_lstm_desc;

/* torch.nn.LSTM (batch_first, one item, no projection) over x: [T, input_size], T >= 1:
 *   gates = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh = [i, f, g, o];
 *   c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g);  h_t = sigmoid(o) * tanh(c_t).
 * y: [T, n_dirs*H], forward half then backward half per row, as PyTorch. h0, c0: initial
 * states [n_layers*n_dirs, H] or NULL for zeros; h_n, c_n: final states in the same layout,
 * or NULL. The input projections of all timesteps are one gemm_linear per layer and direction
 * (context precision); the recurrence runs in fp32 on the context's pool and its result does
 * not depend on the thread count. */
int ops_lstm(cochlea_ctx *ctx, const ops_lstm_desc *m, const float *x, int64_t T, const float *h0, const float *c0,
             float *y, float *h_n, float *c_n);

#endif
