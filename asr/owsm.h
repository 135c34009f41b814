/* owsm.h - the OWSM-CTC encoder (owsm-ctc.md): model loading from GGUF and the forward pass.
 *
 * A model is the GGUF file (tools/convert_owsm_ctc.py; keys in tests/ref/README.md) mapped
 * read-only: weight matrices are used in place from the mapping; only small vectors that are
 * not fp32 in the file and the depthwise-conv kernels (transposed to [K][C] for the time-major
 * layout the encoder uses) are copied. Everything the network needs is read from the file.
 *
 * Activations are time-major: a window is T rows of d floats (T = 2 prefix positions + the
 * subsampled frames, 376 for 30 s). A batch of windows is stacked row-wise, so every Linear runs
 * once over all windows (M = B*T rows); attention and the depthwise convolutions run per window.
 */
#ifndef COCHLEA_ASR_OWSM_H
#define COCHLEA_ASR_OWSM_H

#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "gguf.h"
#include "tensor.h"
#include "tokenizer.h"

typedef struct owsm_linear {
    const tensor *w; /* PyTorch (out, in): ne = {in, out} */
    const float *b;  /* [out] or NULL */
} owsm_linear;

typedef struct owsm_norm {
    const float *g, *b;
} owsm_norm;

/* A depthwise Conv1d over time (weights [C,1,K] in the file), kept as wt[k*C + c] fp32. */
typedef struct owsm_dwconv {
    float *wt;      /* owned, K*C */
    const float *b; /* [C] */
    int64_t C, K;
} owsm_dwconv;

typedef struct owsm_attn {
    owsm_linear q, k, v, o;
} owsm_attn;

typedef struct owsm_layer {
    owsm_norm norm_ff_macaron, norm_mha, norm_mlp, norm_ff, norm_final, norm_cross_attn;
    owsm_linear ffm_w1, ffm_w2, ff_w1, ff_w2;
    owsm_attn attn, cross_attn;
    owsm_linear cgmlp_proj1, cgmlp_proj2, merge_proj;
    owsm_norm csgu_norm;
    owsm_dwconv csgu_conv, fusion_conv;
    int has_cross;  /* cross-attention to the prompt memory */
    int interctc;   /* self-conditioned inter-CTC after this layer */
} owsm_layer;

typedef struct owsm_prompt_layer {
    owsm_norm norm1, norm2;
    owsm_attn attn;
    owsm_linear w1, w2;
} owsm_prompt_layer;

typedef struct owsm_hparams {
    int sample_rate, n_fft, win_length, hop_length, n_mels;
    float speech_length;   /* seconds per window (30) */
    int64_t d, n_head, n_layer, ffn, cgmlp_units, cgmlp_kernel, merge_kernel;
    float ffn_scale, ln_eps;
    int macaron, use_ffn, conditioning;
    int64_t p_d, p_head, p_layer, p_ffn;
    int64_t vocab;
    int32_t blank_id, unk_id, na_id, nolang_id, sos_id, eos_id, sop_id;
    int64_t freq_sub;      /* mel bins after the three stride-2 convs (9 for 80 mels) */
    int64_t window_samples;/* sample_rate * speech_length (480000) */
    int64_t window_frames; /* feature frames of a window (3001) */
    int64_t speech_frames; /* encoder frames of a window after subsampling (374) */
    int64_t positions;     /* speech_frames + 2 (376) */
} owsm_hparams;

typedef struct owsm_model {
    gguf_file *file;
    owsm_hparams hp;
    /* conv2d8 subsampling */
    const tensor *conv_w[3];
    const float *conv_b[3];
    owsm_linear embed_out;
    /* the same weights permuted for channels-last activations ([H][W][C]), fp32, owned:
     * conv_cl[i] ne = {9*C_in, d}, column (a*3 + b)*C_in + ci for kernel tap (a, b);
     * embed_out_cl ne = {F'*d, d}, column f*d + c (the file's is c*F' + f) */
    tensor conv_cl[3];
    owsm_linear embed_out_cl;
    tensor embed_out_cl_w;
    owsm_layer *layers;
    owsm_norm after_norm;
    owsm_linear conditioning, ctc_lo;
    /* prompt path and prefix */
    const tensor *embed; /* [vocab, p_d] */
    owsm_linear embed_proj, prompt_proj; /* embed_proj.w NULL when p_d == d (identity) */
    owsm_prompt_layer *p_layers;
    owsm_norm p_after_norm;
    /* tokens: model id -> piece (from tokenizer.ggml.tokens), and the SentencePiece model */
    const char **tokens;
    size_t *token_len;
    int32_t *sorted_ids; /* ids sorted by piece, for piece -> id lookups */
    tokenizer *tok;      /* NULL when the file has no tokenizer.sentencepiece.model */
    /* the embedded token n-gram LM (owsm_ctc.lm.* keys, lm.N.* tensors) and its decoding
     * defaults; lm NULL when the file has none */
    struct ngram_lm *lm;
    float lm_weight, lm_bonus;
    int lm_beam;
    /* owned fp32 copies of vectors stored in another type */
    float **owned;
    int64_t n_owned, cap_owned;
} owsm_model;

/* Load and validate an OWSM-CTC GGUF (takes ownership of f on success and on failure). Every
 * tensor is checked by name and shape against the hyperparameters; a missing, mis-shaped or
 * mis-typed tensor gives COCHLEA_EFORMAT naming it. */
int owsm_model_load(gguf_file *f, owsm_model **out);
/* Pack every weight matrix for ctx's precision now (gemm_prepare), so runs do not pay for it. */
int owsm_model_prepare(cochlea_ctx *ctx, const owsm_model *m);
void owsm_model_free(owsm_model *m);

/* Model id of a piece string (exact match), or -1. */
int32_t owsm_token_id(const owsm_model *m, const char *piece, size_t len);

/* Prompt memory (owsm-ctc.md §4.3): ids [n] -> embed ×√p_d + PE -> prompt encoder ->
 * after_norm -> prompt_proj, out [n, d]. */
int owsm_prompt_memory(cochlea_ctx *ctx, const owsm_model *m, const int32_t *ids, int64_t n, float *out);

/* Per-request state the encoder needs besides the audio: prefix embeddings [2, d] and, per
 * cross-attention layer, the keys and values of the prompt memory ([n_mem, d] each) or, for a
 * one-token memory, the constant vector the cross-attention adds to every frame. */
typedef struct owsm_cond {
    float *prefix_embeds; /* [2, d] */
    int64_t n_mem;
    float **mem_k, **mem_v; /* per layer (NULL for layers without cross-attention) */
    float **mem_const;      /* per layer, [d], when n_mem == 1 */
} owsm_cond;

/* Build the conditioning for prefix [lang, task] and prompt ids (n >= 1). */
int owsm_cond_build(cochlea_ctx *ctx, const owsm_model *m, int32_t lang, int32_t task, const int32_t *prompt,
                    int64_t n_prompt, owsm_cond *c);
void owsm_cond_free(const owsm_model *m, owsm_cond *c);

/* Scratch for a forward pass over up to max_batch windows (owned by the caller's ASR state). */
typedef struct owsm_work owsm_work;
int owsm_work_create(const owsm_model *m, int max_batch, owsm_work **out);
void owsm_work_free(owsm_work *w);

/* Encoder forward pass on B windows of normalised log-mel features: feats[b] points to
 * window_frames rows of n_mels floats. conds[b] gives each window's prefix and prompt.
 * enc_out: [B*positions, d] after after_norm (may be NULL); logits: [B*positions, vocab] raw CTC
 * logits (may be NULL); argmax: [B*positions] (may be NULL); argmax_prob: [B*positions] softmax
 * probability of each argmax, only computed when logits is NULL (with logits the caller derives it
 * from them; may be NULL; needs argmax). */
int owsm_encode(cochlea_ctx *ctx, const owsm_model *m, owsm_work *w, const float *const *feats, int B,
                const owsm_cond *const *conds, float *enc_out, float *logits, int32_t *argmax, float *argmax_prob);

#endif
