/* lookup.h - prompt-lookup n-gram drafter (speculative-decoding.md §6.1; Saxena's prompt lookup
 * decoding, llama.cpp's lookup / n-gram speculation).
 *
 * For n = n_max down to n_min: take the last n tokens of the sequence (prompt + generated, the
 * root included) and scan the sequence from the start for an earlier occurrence s[i .. i+n)
 * with i + n <= L - 1 (at least one token follows it and it is not the suffix itself). The
 * first (earliest) match of the longest n wins; the draft is the chain of the following
 * min(k, L - i - n) tokens (each node the child of the previous one). No match: empty draft.
 * Parameters (PLD defaults): n_max 3, n_min 1, k 10. Cost O(L * n_max) per step. Stateless. */
#ifndef COCHLEA_LM_SPEC_LOOKUP_H
#define COCHLEA_LM_SPEC_LOOKUP_H

#include <stdint.h>

#include "lm/spec/engine.h"

typedef struct lm_spec_lookup {
    int32_t n_min, n_max; /* 1 <= n_min <= n_max */
    int32_t k;            /* chain length at most (>= 1; the engine's max_nodes also caps it) */
} lm_spec_lookup;

/* {n_min 1, n_max 3, k 10}. */
lm_spec_lookup lm_spec_lookup_default(void);

/* Fill a drafter that uses *l (which must outlive it). COCHLEA_EINVAL for bad parameters. */
int lm_spec_lookup_drafter(lm_spec_lookup *l, lm_spec_drafter *out);

/* The draft itself: writes n <= min(k, max_nodes) chain tokens to token[] (parent[i] = i - 1). */
int lm_spec_lookup_propose(void *self, const int32_t *seq, int64_t n_seq, int64_t max_nodes, int32_t *token,
                           int32_t *parent, int64_t *n_nodes);

#endif
