/* engine.h - lossless tree-speculative decoding on the decoder runtime (issue 8;
 * speculative-decoding.md §1, §1.7, §9).
 *
 * Convention: root-in-batch (§1.1). The last token of the sequence (the "root") is not in the KV
 * cache yet: after the prefill of prompt[0 .. n_prompt-2] the cache holds L - 1 tokens for a
 * sequence of length L. One step:
 *   1. the drafter proposes a tree of up to max_nodes nodes below the root (tokens + parents in
 *      BFS order, parent -1 = the root); the tree is cut to its first nodes so that the batch
 *      fits the cache (n_past + 1 + n_nodes <= capacity);
 *   2. one forward of [root, nodes] (lm_model_forward with parent[]: positions n_past + depth,
 *      ancestor-only attention);
 *   3. acceptance walk (§1.4 / §1.7 point-mass rule): at the current row choose y exactly as AR
 *      decoding would (greedy: first index of the largest logit; sampling: lm_sampler_probs of
 *      the row's logits, one lm_sampler_draw, lm_sample_from_probs), emit y and accept it into
 *      the sampler history (so later rows of the path see it, like AR's history), descend into
 *      the first child whose token is y, else stop: y is the bonus token;
 *   4. emitted tokens are cut exactly where AR would stop: after EOS, at max_new generated
 *      tokens, or when the sequence reaches the cache capacity (AR stops there since the next
 *      token's root would not fit);
 *   5. lm_kv_keep() keeps the rows of the emitted path except the last emitted token (which is
 *      the next root), so the cache again holds L - 1 tokens;
 *   6. the drafter observes the batch, its logits and the accepted path.
 * With drafter NULL every step has an empty tree: plain AR decoding through the same code.
 * Both give token-identical output (greedy: fp32 exact up to batch-size numerics; seeded
 * sampling: one RNG draw per emitted token in emission order, §9.2). */
#ifndef COCHLEA_LM_SPEC_ENGINE_H
#define COCHLEA_LM_SPEC_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "lm/kv.h"
#include "lm/model.h"
#include "lm/sampler.h"

/* A drafter. All callbacks return COCHLEA_OK or a negative COCHLEA_E* code (with err_set). */
typedef struct lm_spec_drafter {
    void *self;
    /* Propose a tree below the root seq[n_seq - 1] for the sequence seq[0 .. n_seq) (prompt +
     * generated). Write n <= max_nodes nodes: token[i] in [0, n_vocab), parent[i] = -1 (child
     * of the root) or an earlier node (< i). *n_nodes = 0 is an empty draft. */
    int (*propose)(void *self, const int32_t *seq, int64_t n_seq, int64_t max_nodes, int32_t *token,
                   int32_t *parent, int64_t *n_nodes);
    /* Optional (may be NULL): the verification batch rows tok[0 .. n_rows) (row 0 = root,
     * row i + 1 = node i), their batch parents (row 0: -1), the logits [n_rows, n_vocab] of all
     * rows, and the accepted rows path[0 .. n_path) (path[0] = 0, the root). */
    int (*observe)(void *self, const int32_t *tok, const int32_t *parent, int64_t n_rows, const float *logits,
                   int64_t n_vocab, const int32_t *path, int64_t n_path);
    /* Optional: called once after the prefill with the prompt tokens [0 .. n) that were run and
     * their logits [n, n_vocab] (n = n_prompt - 1, possibly 0); used for hot starts. */
    int (*prefill)(void *self, const int32_t *tok, int64_t n, const float *logits, int64_t n_vocab);
} lm_spec_drafter;

typedef struct lm_spec_params {
    int64_t max_new;   /* generated tokens at most (>= 0) */
    int32_t eos;       /* stop after emitting this token; -1: none */
    int64_t max_nodes; /* tree nodes per step at most (>= 0; ignored without a drafter) */
    /* Optional: called after every verification step with the tokens it emitted (n >= 1, in
     * order; for streaming). A non-OK return stops generation with that code. */
    int (*on_emit)(void *user, const int32_t *tok, int64_t n);
    void *user;
} lm_spec_params;

typedef struct lm_spec_stats {
    int64_t steps;    /* verification forwards */
    int64_t drafted;  /* tree nodes verified (after cutting to the cache) */
    int64_t accepted; /* draft tokens emitted (bonus tokens not counted) */
    int64_t emitted;  /* tokens generated */
    double mat;       /* mean accepted tokens per step: emitted / steps (0 with no step) */
} lm_spec_stats;

/* Generate up to p->max_new tokens after prompt[0 .. n_prompt) (n_prompt >= 1) into out
 * (room for max_new tokens); *n_out receives the count (EOS included when emitted).
 * kv is cleared first and holds the sequence minus its last token afterwards. sampler NULL =
 * greedy argmax; otherwise its history is used as is (accept the prompt first if the penalty
 * should see it) and every emitted token is drawn from and accepted into it. drafter NULL =
 * plain AR. stats may be NULL. COCHLEA_EINVAL for bad arguments or an invalid draft,
 * COCHLEA_ERANGE when the prompt does not fit the cache, or an error of the forward pass or of
 * the drafter (tokens generated so far stay in out / *n_out). */
int lm_spec_generate(cochlea_ctx *ctx, const lm_model *m, lm_kv *kv, lm_work *w, lm_sampler *sampler,
                     lm_spec_drafter *drafter, const lm_spec_params *p, const int32_t *prompt, int64_t n_prompt,
                     int32_t *out, int64_t *n_out, lm_spec_stats *stats);

/* The first index of the largest value of x[0 .. n) (NaN never wins). */
int32_t lm_spec_argmax(const float *x, int64_t n);

/* Default draft sizes of `cochlea generate` and bench/speculative (nodes per verification step;
 * for the draft-model decoders, draft depth and tree shape). Measured fastest on the shipped
 * models/textlm-tiny.gguf on the development CPU (bench/README.md, "Speculative decoding"):
 * on a CPU every extra row of a verification batch costs a sizeable share of a decoding step
 * (about a third here: the model is compute-bound from a few rows on), so short drafts win. */
#define LM_SPEC_DEFAULT_NODES_RECYCLING 2
#define LM_SPEC_DEFAULT_NODES_LOOKUP 2
#define LM_SPEC_DEFAULT_NODES_ADED 2
#define LM_SPEC_DEFAULT_NODES_HYBRID 2
#define LM_SPEC_DEFAULT_DRAFT_DEPTH 2

#endif
