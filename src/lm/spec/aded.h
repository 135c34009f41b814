/* aded.h - ADED drafter: adaptive tri-gram matrix + Monte-Carlo tree search draft maker
 * (speculative-decoding.md §3; Liu et al., "Adaptive Draft-Verification", AAAI 2025).
 *
 * Tri-gram matrix T[(a, b)] -> at most row_cap successors c with weight w (§3.1). Sources:
 *   - an optional corpus (lm_spec_aded_add_corpus): trigram counts normalised per (a, b), each
 *     row pruned to its row_cap heaviest successors (§3.1);
 *   - the adaptive update before every draft (§3.2): for each trigram inside the last `window`
 *     tokens of the sequence (root included), w <- min(w + bonus, w_max), a missing entry
 *     starting at 0 (when its row is full, the lightest successor is replaced if lighter than
 *     the new weight). The prompt is learned the same way, over all of it, at the prefill.
 * Memory: an open-addressing table of at most max_rows rows of row_cap entries; once it holds
 * max_rows rows, new pairs are not added (existing rows still update).
 *
 * Draft (§3.3): a search tree whose nodes are (prev, cur) states, root = the last two tokens;
 * `iterations` times: selection from the root by the PUCT score
 *   W/N + (c1 + ln((N_parent + c2 + 1) / c2)) * P * sqrt(N_parent) / (1 + N_child)
 * (unvisited children first, in weight order), expansion of the reached leaf with all its
 * successors (prior P = weight / row sum), a rollout that follows successors drawn in proportion
 * to their weights until `depth` tokens below the root, reward 1 + the sum of the trigram
 * weights along the path (the intended T[(a, b)][c], see §3.3's note on the reference code),
 * back-propagated as N += 1, W += reward. Extraction: the `paths` most visited nodes give their
 * root paths, each extended by its heaviest successor; the paths, most visited first, are merged
 * into a trie whose first max_nodes nodes (parents always before children) are the draft.
 * The rollouts use a private xorshift generator reseeded at every draft, so a draft depends only
 * on the sequence and the matrix, never on the sampler (the engine's verification keeps the
 * output exact whatever is drafted). Departures from the paper's code: no offline corpus is
 * required (the prompt and the output are the corpus), a full row evicts its lightest entry, and
 * an unseen root pair gives an empty draft instead of a dummy token. */
#ifndef COCHLEA_LM_SPEC_ADED_H
#define COCHLEA_LM_SPEC_ADED_H

#include <stdint.h>

#include "lm/spec/engine.h"

typedef struct lm_spec_aded_params {
    int32_t row_cap;    /* successors kept per pair (paper 12), 1 .. 64 */
    int32_t window;     /* adaptive update over the last `window` tokens (paper 16), >= 3 */
    float bonus, w_max; /* adaptive increment and cap (paper 0.04 and 3.0) */
    int32_t iterations; /* search iterations per draft (paper 150), >= 1 */
    int32_t depth;      /* tokens below the root a rollout reaches (paper: sentence_length 4 = root + 3) */
    int32_t paths;      /* most visited paths kept (paper 24) */
    float c1, c2;       /* PUCT constants (paper 32 and 8) */
    int64_t max_rows;   /* pairs the matrix holds at most (>= 1) */
} lm_spec_aded_params;

/* The paper's values; max_rows 1 << 16. */
lm_spec_aded_params lm_spec_aded_default_params(void);

typedef struct lm_spec_aded lm_spec_aded;

/* COCHLEA_EINVAL for parameters out of range or n_vocab < 1, COCHLEA_ENOMEM. */
int lm_spec_aded_create(int64_t n_vocab, const lm_spec_aded_params *p, lm_spec_aded **out);
void lm_spec_aded_free(lm_spec_aded *a);
/* Forget every row. */
void lm_spec_aded_reset(lm_spec_aded *a);
/* Add a corpus (token ids in [0, n_vocab)): normalised trigram counts, rows pruned (§3.1);
 * rows already present get the corpus weights added. COCHLEA_ERANGE for a bad id. */
int lm_spec_aded_add_corpus(lm_spec_aded *a, const int32_t *tok, int64_t n);
/* The adaptive update (§3.2) over tok[max(0, n - window) .. n). */
int lm_spec_aded_update(lm_spec_aded *a, const int32_t *tok, int64_t n);
/* Weight of c after (x, y) in the matrix (0 when absent). */
float lm_spec_aded_weight(const lm_spec_aded *a, int32_t x, int32_t y, int32_t c);
/* Rows held now. */
int64_t lm_spec_aded_rows(const lm_spec_aded *a);
/* Fill a drafter that uses a (which must outlive it): propose = update + search, prefill = learn
 * the prompt. */
int lm_spec_aded_drafter(lm_spec_aded *a, lm_spec_drafter *out);

#endif
