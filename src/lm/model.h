/* model.h - the shared decoder-only transformer runtime (issue 8; speculative-decoding.md §1).
 *
 * Architecture (llama.cpp's "llama"): for every block
 *     h = RMSNorm(x) * attn_norm
 *     q = h Wq^T, k = h Wk^T, v = h Wv^T;  RoPE(q, k) at each row's position
 *     x = x + Attention(q, K cache, V cache) Wo^T        (grouped-query: H / Hkv query heads per kv head)
 *     h = RMSNorm(x) * ffn_norm
 *     x = x + (SiLU(h Wgate^T) * (h Wup^T)) Wdown^T
 * then out = RMSNorm(x) * output_norm and logits = out Wout^T (Wout = token_embd when tied).
 * RMSNorm is x / sqrt(mean(x^2) + eps).
 *
 * RoPE layout: llama.cpp's converter (convert_hf_to_gguf.py, LlamaModel.permute) reorders the
 * rows of every head of attn_q / attn_k from HF's [first half | second half] order to
 * interleaved pairs (row 2i = HF row i, row 2i+1 = HF row i + Dh/2). On those stored weights
 * ggml's NORMAL rope mode (pairs (x[2i], x[2i+1]), angle pos * base^(-2i/n_rot)) equals HF's
 * rotate_half RoPE on the original weights, so blocks loaded from a "llama" file use
 * OPS_ROPE_NORMAL. A model whose file keeps HF's order sets rope_mode = OPS_ROPE_NEOX.
 *
 * Reuse: the transformer layers and the final norm are an lm_blocks object that maps input
 * embeddings [n, n_embd] to hidden states [n, n_embd]; it knows nothing of tokens. A llama
 * text model (lm_model) is token embedding + blocks + output head. A model with other inputs
 * or heads (the speech LM: several codebook embeddings, several heads) loads lm_blocks from
 * its own file with its own key prefix (lm_blocks_load(f, "seslm", ...)) and runs its own
 * embeddings/heads around lm_blocks_forward.
 *
 * Batches and trees (§1.2-§1.3): one forward pass runs n rows that are either a chain (plain
 * prefill / decoding: row i follows row i-1) or a tree of speculative candidates given by
 * parent[] (parents before children). Row i is at position n_past + depth(i) and attends to
 * all n_past cached positions plus its ancestors in the batch, itself included. Attention runs
 * with batch_invariant = 1, so a row's attention output does not depend on how many other
 * rows the batch has; perturbing a row never changes the outputs of rows that are not its
 * descendants (the matrix products are row-independent for a given batch size).
 *
 * Thread safety: lm_blocks and lm_model are read-only after loading and may be shared by
 * threads that each have their own cochlea_ctx, lm_kv and lm_work. */
#ifndef COCHLEA_LM_MODEL_H
#define COCHLEA_LM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "gguf.h"
#include "lm/kv.h"
#include "ops.h"
#include "tensor.h"

/* Hyperparameters, from the keys <arch>.* (llama.cpp names):
 *   context_length, embedding_length, block_count, feed_forward_length, attention.head_count,
 *   attention.head_count_kv (default head_count), attention.key_length / value_length (default
 *   embedding_length / head_count; must be equal), rope.dimension_count (default head_dim),
 *   rope.freq_base (default 10000), attention.layer_norm_rms_epsilon. */
typedef struct lm_hparams {
    int64_t n_ctx;     /* training context length */
    int64_t n_embd;    /* d */
    int64_t n_layer;
    int64_t n_ff;
    int64_t n_head, n_head_kv, head_dim;
    int64_t n_rot;     /* rotated dimensions per head (even, <= head_dim) */
    float rope_freq_base;
    float rms_eps;
} lm_hparams;

/* One block's weights: matrices are views into the model file (ne = {in, out}, type F32, F16,
 * BF16 or Q8_0, used through gemm_linear); norm vectors are fp32 (mapped or converted). */
typedef struct lm_layer {
    const float *attn_norm;          /* [n_embd] */
    const tensor *wq, *wk, *wv, *wo; /* {d, H*Dh}, {d, Hkv*Dh}, {d, Hkv*Dh}, {H*Dh, d} */
    const float *ffn_norm;           /* [n_embd] */
    const tensor *w_gate, *w_up;     /* {d, n_ff} */
    const tensor *w_down;            /* {n_ff, d} */
} lm_layer;

typedef struct lm_blocks {
    lm_hparams hp;
    enum ops_rope_mode rope_mode; /* OPS_ROPE_NORMAL for llama.cpp files (see above) */
    lm_layer *layers;             /* n_layer */
    const float *out_norm;        /* [n_embd] (output_norm.weight) */
    float **owned;                /* converted norm vectors */
    int64_t n_owned, cap_owned;
} lm_blocks;

/* Read the hyperparameters <arch>.* and the tensors blk.N.{attn_norm, attn_q, attn_k, attn_v,
 * attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}.weight and output_norm.weight from an open
 * file. Every key, shape and type is validated: COCHLEA_EFORMAT (missing or malformed key or
 * tensor, inconsistent sizes) or COCHLEA_EUNSUPPORTED (attention biases, rope scaling,
 * rope_freqs, experts, different key/value head sizes) with a message naming the file and the
 * key or tensor. The weights stay views into `f`, which must outlive the blocks. */
int lm_blocks_load(const gguf_file *f, const char *arch, lm_blocks **out);
void lm_blocks_free(lm_blocks *b);

/* A KV cache shaped for these blocks; capacity 0 means hp.n_ctx. */
int lm_blocks_kv_create(const lm_blocks *b, int64_t capacity, lm_kv **out);

/* Scratch memory of forward passes (grows to the largest batch seen; one per thread). */
typedef struct lm_work lm_work;
int lm_work_create(lm_work **out);
void lm_work_free(lm_work *w);

/* One forward batch of n rows.
 * parent: NULL for a chain (row i's parent is row i - 1; row 0 follows the cached prefix), or
 *   [n] with -1 (a child of the cached prefix: depth 0) or an earlier row (parent[i] < i).
 *   Positions are n_past + depth(i), depth(i) = 0 for parent -1, else depth(parent) + 1.
 * token / embd: the input (lm_model_forward reads token[n], lm_blocks_forward ignores both).
 * out_rows: rows whose outputs are wanted by lm_model_forward (NULL: all n, in order). */
typedef struct lm_batch {
    int64_t n;
    const int32_t *token;
    const int32_t *parent;
    const int32_t *out_rows;
    int64_t n_out;
} lm_batch;

/* The transformer blocks over the batch's input embeddings x [n, n_embd] (row-major):
 * writes K/V of row i at cache slot kv->n + i, sets kv->n += n, and stores the final-normed
 * hidden states in out [n, n_embd] (out may equal x). COCHLEA_ERANGE when kv->n + n exceeds the
 * cache capacity (nothing written), COCHLEA_EINVAL for a bad parent[] or a cache of another
 * shape, or an error of the GEMM backend (the cache's new slots are then undefined and kv->n is
 * unchanged). */
int lm_blocks_forward(cochlea_ctx *ctx, const lm_blocks *b, lm_kv *kv, lm_work *w, const lm_batch *batch,
                      const float *x, float *out);

/* ---- llama text model: embedding + blocks + head ---------------------------------------- */

typedef struct lm_model {
    gguf_file *file;      /* owned when loaded with lm_model_load */
    int owns_file;
    lm_blocks *blocks;
    const tensor *tok_embd; /* token_embd.weight, ne = {n_embd, n_vocab} */
    const tensor *output;   /* output.weight, or tok_embd when tied */
    int tied;
    int64_t n_vocab;        /* llama.vocab_size when present (must match), else token_embd's rows */
} lm_model;

/* Load a GGUF with general.architecture = "llama" (COCHLEA_EUNSUPPORTED for another one). */
int lm_model_load(const char *path, lm_model **out);
/* The same from an open file, which stays the caller's and must outlive the model. */
int lm_model_from_gguf(const gguf_file *f, lm_model **out);
void lm_model_free(lm_model *m);

/* Embed batch->token, run the blocks (see lm_blocks_forward) and write the logits of the rows
 * batch->out_rows (all rows when NULL) to logits [n_out or n, n_vocab]. Token ids outside
 * [0, n_vocab) give COCHLEA_ERANGE before anything runs. */
int lm_model_forward(cochlea_ctx *ctx, const lm_model *m, lm_kv *kv, lm_work *w, const lm_batch *batch,
                     float *logits);

/* The output head alone: logits [n, n_vocab] of final-normed hidden states h [n, n_embd]. */
int lm_model_head(cochlea_ctx *ctx, const lm_model *m, const float *h, int64_t n, float *logits);

#endif
