/* hybrid.h - prompt lookup + Token Recycling drafter (SAM-Decoding style selection,
 * speculative-decoding.md §0.1 step 4, §6.5; lookup.h, recycling.h).
 *
 * Per step, with a node budget B = the engine's max_nodes:
 *   1. long match: prompt lookup (lm_spec_lookup_propose) restricted to n-grams of
 *      n >= long_ngram (and <= lookup.n_max). A match drafts its chain alone (<= lookup.k
 *      tokens): the continuation of a long match is trusted and the verification batch stays
 *      small.
 *   2. otherwise short match: lookup with n in [lookup.n_min, long_ngram - 1]; its chain, cut to
 *      short_k tokens, comes first (node 0 a child of the root, node i the child of node i - 1);
 *   3. the Token Recycling tree (the template's BFS prefix, recycling.h) fills the rest of the
 *      budget, B - (chain length) nodes, grafted below the same root after the chain (its
 *      parents shifted past the chain). With no match at all it gets the whole budget.
 * A chain token equal to a TR child of the root is a duplicate sibling: allowed (the engine
 * descends into the first matching child, the chain's).
 * observe and prefill are forwarded to the recycling state, so its adjacency matrix is updated
 * from every verification batch (chain rows included) exactly as when TR drafts alone; prefill
 * is offered to the engine only when the recycling state primes from the prompt.
 *
 * Defaults: lookup {n_min 1, n_max 3, k 10} (PLD's), long_ngram 3, short_k 4. */
#ifndef COCHLEA_LM_SPEC_HYBRID_H
#define COCHLEA_LM_SPEC_HYBRID_H

#include <stdint.h>

#include "lm/spec/engine.h"
#include "lm/spec/lookup.h"
#include "lm/spec/recycling.h"

typedef struct lm_spec_hybrid_params {
    lm_spec_lookup lookup; /* 1 <= n_min <= n_max, k >= 1 */
    int32_t long_ngram;    /* n-grams of at least this many tokens are long matches; 0: none is */
    int32_t short_k;       /* chain tokens kept from a short match, >= 0 (0: TR only) */
} lm_spec_hybrid_params;

typedef struct lm_spec_hybrid {
    lm_spec_hybrid_params p;
    lm_spec_recycling *rec;
    lm_spec_drafter rec_d;
    int32_t tr_tok[LM_SPEC_TR_TEMPLATE_NODES], tr_par[LM_SPEC_TR_TEMPLATE_NODES];
    int64_t n_long, n_short, n_none; /* steps drafted by a long match / a short match + TR / TR alone */
} lm_spec_hybrid;

/* {{1, 3, 10}, 3, 4}. */
lm_spec_hybrid_params lm_spec_hybrid_default_params(void);

/* Set up h over the recycling state rec (which must outlive h); p NULL = defaults.
 * COCHLEA_EINVAL for NULL arguments or bad parameters. */
int lm_spec_hybrid_init(lm_spec_hybrid *h, const lm_spec_hybrid_params *p, lm_spec_recycling *rec);

/* The draft (steps 1-3 above). */
int lm_spec_hybrid_propose(void *self, const int32_t *seq, int64_t n_seq, int64_t max_nodes, int32_t *token,
                           int32_t *parent, int64_t *n_nodes);

/* Fill a drafter that uses h (which must outlive it). */
int lm_spec_hybrid_drafter(lm_spec_hybrid *h, lm_spec_drafter *out);

#endif
