/* seanet.h - the SEANet encoder and decoder of SECodec (secodec.md §1.3, §1.5, §5.1, §5.2),
 * SpeechTokenizer flavour, loaded from a "secodec" GGUF file.
 *
 * Network (C = n_filters, strides s_0..s_{n-1} in encoder order, hop = prod s_i, M = 2^n):
 *   encoder: Conv1d(1 -> C, kernel_size); for each stride s_i: n_residual_layers ResBlocks,
 *            ELU, Conv1d(C_i -> 2 C_i, kernel 2 s_i, stride s_i); LSTM(C M, lstm_layers,
 *            bidirectional?) with skip; ELU; Conv1d((1 or 2) C M -> D, last_kernel_size).
 *   decoder: Conv1d(D -> C M, kernel_size); unidirectional LSTM(C M) with skip; for each stride
 *            in decoder order: ELU, ConvTranspose1d(C_i -> C_i/2, kernel 2 s, stride s),
 *            ResBlocks; ELU; Conv1d(C -> 1, last_kernel_size). No final activation.
 *   ResBlock(dim), j-th of a stage: out = shortcut(x) + Conv1d(dim/compress -> dim, 1)(ELU(
 *            Conv1d(dim -> dim/compress, residual_kernel_size, dilation dilation_base^j)(ELU(x))));
 *            shortcut = 1x1 Conv1d, or the identity when true_skip.
 * Padding (§5.2, non-causal): a Conv1d with effective kernel k' = (k-1) d + 1 and stride s pads
 * P = k' - s samples, right = P/2, left = P - right, plus ceil(L/s) s - L extra on the right, in
 * reflect mode (with the short-input rule, see seanet_pad1d) or with zeros ("constant"); so
 * every stage outputs ceil(L/s) frames and T = ceil(L/hop). A ConvTranspose1d drops P = k - s
 * samples of its full output, P/2 at the end and the rest at the start.
 *
 * Tensors keep SpeechTokenizer's state_dict names with weight norm folded into ".weight"
 * ("encoder.model.{i}.conv.conv.weight", "...block.{1,3}.conv.conv.*", "...shortcut.conv.conv.*",
 * "encoder.model.{i}.lstm.weight_ih_l{k}[_reverse]", "decoder.model.{i}.convtr.convtr.*"), {i}
 * numbering SEANet's nn.Sequential. Weights may be F32, F16, BF16 or Q8_0 (views into the
 * file: the gguf_file must outlive the network); biases are copied to fp32 at load time.
 *
 * Layouts: pcm is L contiguous floats; latents z are [T, D] row-major (one row per frame);
 * decoded audio is T * hop floats (the caller trims it to the original length). Inside, every
 * activation is [channels, time] as in ops.h; LSTMs run on a [time, channels] transpose.
 * Memory: three activation buffers of max_i(C_i * L_i) floats each (about 3 x 64 L floats for
 * the default network: 12 MiB per second of audio) plus the ops' bounded scratch; the caller
 * cuts long signals into chunks.
 */
#ifndef COCHLEA_CODEC_SEANET_H
#define COCHLEA_CODEC_SEANET_H

#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "gguf.h"

#define SEANET_MAX_STRIDES 8

enum seanet_pad_mode {
    SEANET_PAD_REFLECT = 0,  /* "reflect" */
    SEANET_PAD_CONSTANT = 1, /* "constant": zeros */
};

/* The hyperparameters of the GGUF contract (keys "secodec.<name>"). */
typedef struct seanet_hparams {
    int sample_rate;          /* secodec.sample_rate */
    int n_filters;            /* C, secodec.n_filters */
    int dimension;            /* D, secodec.dimension */
    int n_strides;            /* 1..SEANET_MAX_STRIDES */
    int strides[SEANET_MAX_STRIDES]; /* secodec.strides, encoder order */
    int hop;                  /* product of the strides */
    int kernel_size;          /* first conv of the encoder and the decoder */
    int last_kernel_size;     /* last conv of the encoder and the decoder */
    int residual_kernel_size; /* first conv of each ResBlock branch */
    int dilation_base;        /* ResBlock j of a stage has dilation dilation_base^j */
    int n_residual_layers;    /* ResBlocks per stage (>= 0) */
    int compress;             /* ResBlock hidden width = dim / compress */
    int lstm_layers;          /* 0: no LSTM block */
    int encoder_bidirectional;
    int true_skip;            /* identity ResBlock shortcut */
    enum seanet_pad_mode pad_mode;
    float elu_alpha;
} seanet_hparams;

typedef struct seanet seanet;

/* Read and validate the hyperparameters and every network tensor of an open "secodec" file.
 * Errors: COCHLEA_EFORMAT naming the file and the key or tensor (missing, wrong type, value out
 * of range, wrong shape), COCHLEA_EUNSUPPORTED for causal = true, an unknown pad_mode or a
 * tensor type other than F32/F16/BF16/Q8_0, COCHLEA_ENOMEM. On success *out is owned by the
 * caller (seanet_free) and keeps views into f, which must stay open while the network lives.
 * Tensors other than the network's (quantiser, metadata) are ignored. */
int seanet_load(const gguf_file *f, seanet **out);
void seanet_free(seanet *net);

const seanet_hparams *seanet_get_hparams(const seanet *net);
/* Samples per latent frame (320 for the default strides 2, 4, 5, 8). */
int seanet_hop(const seanet *net);
/* Latent width D. */
int seanet_dimension(const seanet *net);
/* Latent frames for L samples: ceil(L / hop) (0 for L <= 0). */
int64_t seanet_n_frames(const seanet *net, int64_t L);
/* Peak bytes the activation buffers of seanet_encode (L samples) or seanet_decode (T frames)
 * allocate, excluding the ops' own bounded scratch; COCHLEA_ERANGE on overflow. */
int seanet_encode_scratch_bytes(const seanet *net, int64_t L, size_t *bytes);
int seanet_decode_scratch_bytes(const seanet *net, int64_t T, size_t *bytes);

/* Encoder: pcm [L] (L >= 1) -> z [T, D] row-major, T = seanet_n_frames(L). Threads come from
 * ctx (its precision applies to the convolutions' and LSTM input projections' matrix
 * products). COCHLEA_EINVAL for L < 1 or NULL arguments, COCHLEA_ERANGE when sizes overflow,
 * COCHLEA_ENOMEM. */
int seanet_encode(cochlea_ctx *ctx, const seanet *net, const float *pcm, int64_t L, float *z);
/* Decoder: z [T, D] row-major (T >= 1) -> pcm [T * hop]. Errors as seanet_encode. */
int seanet_decode(cochlea_ctx *ctx, const seanet *net, const float *z, int64_t T, float *pcm);

/* The §5.2 padding of one row (SpeechTokenizer's pad1d): out [left + n + right] = x [n] padded
 * with `left` and `right` samples. Reflect mode mirrors without repeating the edge; when
 * n <= max(left, right) the row is first extended with max - n + 1 zeros, reflected, and the
 * extension dropped from the end. Constant mode pads with zeros. n >= 1. */
void seanet_pad1d(const float *x, int64_t n, int64_t left, int64_t right, enum seanet_pad_mode mode, float *out);

#endif
