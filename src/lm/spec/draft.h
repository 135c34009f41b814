/* draft.h - speculative decoding with a draft model: chain speculative sampling (Leviathan et al.
 * 2023), token trees with i.i.d. children verified by SpecInfer's multi-step speculative sampling,
 * and recursive speculative decoding (RSD-C: children drawn without replacement by Gumbel-top-k,
 * recursive rejection sampling). speculative-decoding.md §1.7, §4.1, §4.3, §5.1, §5.3.
 *
 * Two lm_model with the same vocabulary, each with its own lm_kv: the target (verifies) and the
 * draft (proposes). Convention as in engine.h (root-in-batch, §1.1): the target cache holds the
 * sequence minus its last token (the root). The draft cache holds a prefix of the sequence (at
 * most its length minus one) and catches up lazily: every step first runs the draft on the
 * tokens it has not seen yet, the root included.
 *
 * Tree shape (decided before any token is drawn, so it never depends on token identities):
 * `depth` levels below the root; every node on levels 0 .. wide-1 (the root is level 0) gets
 * `width` children, deeper nodes one child (CHAIN: width 1). Nodes are numbered level by level
 * (BFS), parents before children, and the tree is cut to its first max_nodes nodes, to the
 * room left in the caches and to the tokens still allowed by max_new.
 *
 * Drafting, per node: q = lm_sampler_probs(draft logits, extra = the node's path below the
 * root) - the same sampler chain (penalty, top-k, top-p, min-p, temperature) the target uses,
 * so q is exactly the distribution a child is drawn from.
 *   - q a point mass (temperature <= 0, top-k 1, or no sampler: then q = argmax of the raw
 *     draft logits): the node is deterministic; children = the point-mass token, then the next
 *     tokens by raw draft logit (distinct).
 *   - otherwise CHAIN and TREE draw each child i.i.d. from q (one RNG draw each, duplicates
 *     possible); RSD takes the min(width, |support q|) largest Gumbel keys log q_j + G_j (one
 *     draw per token of q's support; §4.1): a sample without replacement in draw order.
 * The draft model runs once per level; since a cached slot is visible to every later row, the
 * rows below the first level with more than one node are re-run as one tree batch per level
 * (a chain costs one row per level).
 *
 * Verification (one target forward over [root, nodes] with tree attention), walking from the
 * root; at each node p = lm_sampler_probs(target logits) with the emitted tokens accepted into
 * the sampler history (no sampler: the point mass at the raw argmax):
 *   - deterministic node (§1.7 point-mass rule): y = lm_sample_from_probs(p, one draw); descend
 *     into the first child whose token is y, else emit y and stop. With no stochastic node this
 *     is exactly AR decoding: greedy output equals plain greedy token for token, and a seeded
 *     sampler with temperature <= 0 consumes one draw per emitted token like AR.
 *   - stochastic node, children x_1..x_K in draw order (lm_spec_draft_verify_node): for
 *     k = 1..K accept x_k iff u * q_k(x_k) < p_k(x_k) (u one draw; i.e. w.p. min(1, p_k/q_k)),
 *     else p_{k+1} = norm(max(0, p_k - q_k)); all rejected: emit a draw from p_{K+1}. TREE /
 *     CHAIN: q_k = q (§5.1, §5.3); RSD: q_k = q without x_1..x_{k-1}, renormalised (§4.3).
 *   - an accepted leaf emits a bonus token drawn from p at that leaf.
 * Stochastic verification is exact in distribution (not token-identical to AR sampling).
 * Emission stops exactly where AR decoding stops: after eos, at max_new tokens, or when the
 * sequence reaches C = min(target capacity, draft capacity). Afterwards lm_kv_keep() keeps the
 * accepted rows in both caches; each cache equals a fresh prefill of the tokens it holds.
 *
 * Random numbers: only the sampler's RNG (lm_sampler_draw), in a fixed order (draft draws level
 * by level, then verification draws in walk order): the same seed gives the same output. */
#ifndef COCHLEA_LM_SPEC_DRAFT_H
#define COCHLEA_LM_SPEC_DRAFT_H

#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "lm/kv.h"
#include "lm/model.h"
#include "lm/sampler.h"
#include "lm/spec/engine.h"

#define LM_SPEC_DRAFT_MAX_DEPTH 32
#define LM_SPEC_DRAFT_MAX_NODES 512

typedef enum lm_spec_draft_mode {
    LM_SPEC_DRAFT_CHAIN = 0, /* one chain of gamma tokens, speculative sampling (§5.1) */
    LM_SPEC_DRAFT_TREE = 1,  /* i.i.d. children, SpecInfer MSS (§5.3) */
    LM_SPEC_DRAFT_RSD = 2    /* children without replacement (Gumbel-top-k), recursive rejection (§4) */
} lm_spec_draft_mode;

typedef struct lm_spec_draft_params {
    int64_t max_new;         /* generated tokens at most (>= 0) */
    int32_t eos;             /* stop after emitting this token; -1: none */
    lm_spec_draft_mode mode;
    int32_t depth;           /* levels below the root (chain length gamma), 1 .. LM_SPEC_DRAFT_MAX_DEPTH */
    int32_t width;           /* TREE/RSD: children per branching node, 1 .. 64 (ignored for CHAIN) */
    int32_t wide;            /* TREE/RSD: levels whose nodes branch (root = level 0), 0 .. depth */
    int64_t max_nodes;       /* tree nodes per step at most, 1 .. LM_SPEC_DRAFT_MAX_NODES */
    /* Optional: called after every step with the tokens it emitted (as in lm_spec_params). */
    int (*on_emit)(void *user, const int32_t *tok, int64_t n);
    void *user;
} lm_spec_draft_params;

/* Defaults per mode (max_new 128, eos -1): CHAIN depth 4; TREE and RSD depth 4, width 2,
 * wide 2 (2 + 4 + 4 + 4 = 14 nodes); max_nodes 64. */
lm_spec_draft_params lm_spec_draft_default_params(lm_spec_draft_mode mode);

/* Nodes of the tree a parameter set describes (before the per-step cuts); -1 for bad params. */
int64_t lm_spec_draft_tree_size(const lm_spec_draft_params *p);

/* Generate up to p->max_new tokens after prompt[0 .. n_prompt) into out (room for max_new);
 * *n_out receives the count (EOS included when emitted). tkv / dkv: caches shaped for target /
 * draft (distinct objects; both cleared first). w: forward scratch shared by both models.
 * sampler NULL = greedy; otherwise used as in lm_spec_generate (its history as is, every emitted
 * token accepted into it). stats (may be NULL): steps, drafted nodes, accepted draft tokens,
 * emitted tokens, MAT. COCHLEA_EINVAL for bad arguments (NULL, bad parameters, vocabularies of
 * different sizes, the same cache twice), COCHLEA_ERANGE for a prompt token outside the
 * vocabulary or a prompt that does not fit min(capacities), or an error of a forward pass
 * (tokens generated so far stay in out / *n_out). */
int lm_spec_draft_generate(cochlea_ctx *ctx, const lm_model *target, lm_kv *tkv, const lm_model *draft, lm_kv *dkv,
                           lm_work *w, lm_sampler *sampler, const lm_spec_draft_params *p, const int32_t *prompt,
                           int64_t n_prompt, int32_t *out, int64_t *n_out, lm_spec_stats *stats);

/* ---- the stochastic kernels (exposed for the distribution tests) --------------------------- */

/* §4.1 Gumbel-top-k: the (at most k) tokens of q's support with the largest keys
 * log q_j - log(-log u_j), one draw u_j from s per support token in index order; written to
 * out in decreasing key order, which is a sample of distinct tokens in sequential-draw order.
 * q [V] >= 0 with a positive sum (need not be normalised). Returns the count (<= k), or a
 * negative COCHLEA_E* code. */
int64_t lm_spec_gumbel_topk(lm_sampler *s, const float *q, int64_t V, int64_t k, int32_t *out);

/* One stochastic node (§5.1 K = 1, §5.3 i.i.d. children, §4.3 without replacement):
 * p [V] the target distribution (normalised or not; overwritten by the final residual),
 * q [V] the draft distribution the children were drawn from, child[0 .. K) in draw order
 * (K >= 0; every child with q > 0), without_replacement selects the RSD q_k. scratch [V] floats.
 * *token = the emitted token, *k_acc = the index of the accepted child or -1 (then *token was
 * drawn from the last residual). Uses one draw per tested child plus one on full rejection.
 * COCHLEA_EINVAL for a bad child or a distribution without mass. */
int lm_spec_draft_verify_node(lm_sampler *s, float *p, const float *q, int64_t V, const int32_t *child, int64_t K,
                              int without_replacement, float *scratch, int32_t *token, int64_t *k_acc);

#endif
