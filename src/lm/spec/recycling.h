/* recycling.h - Token Recycling drafter (Luo et al. 2024, arXiv 2408.08696;
 * speculative-decoding.md §2).
 *
 * State: adjacency matrix M [n_vocab, k] int32; row x = the k candidate successors of token x
 * last observed, column 0 = most likely. Initialised to zeros once (every row points at token
 * 0) and kept across generate calls ("hot start": the matrix is inherited from the previous
 * query). Optionally, lm_spec_recycling_drafter(.., prime = 1) also seeds rows from the prompt
 * prefill: M[x_i] = top-k(logits_i) for every prefilled prompt position (§2.3 cold-start seeding).
 *
 * Tree: the static template "2.2.2" of the reference code (model/recycling/tree_template_.py):
 * depth 6, 80 nodes (8 / 21 / 25 / 15 / 8 / 3 per level), stored below as data: per node the
 * parent node (-1 = root) and the rank of the candidate taken from the parent's row.
 * Retrieval (paper Algorithm 1, static-tree retrieval): token[i] = M[token[parent[i]]][rank[i]]
 * in index order. Nodes of rank >= k are left out with their subtrees, and the drafter keeps the
 * nodes best first (recycling.c, order_best_first: by the product over the path of an assumed
 * acceptance per rank, 0.5 for rank 0, 0.15 for rank 1, ...), so that a smaller tree, the first
 * max_nodes nodes, is the most promising subtree of the template rather than its first levels
 * (with 8 nodes: a 4-deep chain of top candidates and its best side branches). The full tree is
 * the template's 80 nodes either way; lm_spec_tr_template returns them in level order.
 *
 * Update (§2.6): after every verification, for every batch row i (root and all nodes, accepted
 * or not) M[token_i] = top-k(logits_i) (ties: lower token id first). Rows are written in batch
 * order and then the accepted path's rows again, so with duplicate tokens the candidates
 * computed in the correct context win. */
#ifndef COCHLEA_LM_SPEC_RECYCLING_H
#define COCHLEA_LM_SPEC_RECYCLING_H

#include <stdint.h>

#include "lm/spec/engine.h"

#define LM_SPEC_TR_TEMPLATE_NODES 80

typedef struct lm_spec_recycling {
    int64_t n_vocab;
    int32_t k;            /* candidates per row, 1 .. 64 (paper: 8) */
    int prime;            /* seed rows from the prompt prefill */
    int32_t *m;           /* [n_vocab * k] */
    int64_t n_nodes;      /* template nodes usable with this k */
    int32_t parent[LM_SPEC_TR_TEMPLATE_NODES];
    int32_t rank[LM_SPEC_TR_TEMPLATE_NODES];
    float *scratch;       /* top-k values [k] */
} lm_spec_recycling;

/* A recycling state for a vocabulary of n_vocab with k candidates per token (COCHLEA_EINVAL,
 * COCHLEA_ERANGE, COCHLEA_ENOMEM). */
int lm_spec_recycling_create(int64_t n_vocab, int32_t k, int prime, lm_spec_recycling **out);
void lm_spec_recycling_free(lm_spec_recycling *r);
/* Zero the matrix (every candidate = token 0). */
void lm_spec_recycling_reset(lm_spec_recycling *r);

/* The template as (parent, rank) pairs, level order: fills up to 80 entries, returns the count. */
int64_t lm_spec_tr_template(int32_t *parent, int32_t *rank);

/* Top-k ids of logits[0 .. n) by decreasing value (ties: lower id first) into ids[0 .. k);
 * vals [k] is scratch. k <= n. */
void lm_spec_topk(const float *logits, int64_t n, int32_t k, int32_t *ids, float *vals);

/* M[tok[i]] = top-k(logits row i) for i = 0 .. n-1. */
int lm_spec_recycling_update(lm_spec_recycling *r, const int32_t *tok, int64_t n, const float *logits,
                             int64_t n_vocab);

/* Fill a drafter using r (which must outlive it). */
int lm_spec_recycling_drafter(lm_spec_recycling *r, lm_spec_drafter *out);

#endif
