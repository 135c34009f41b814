/* sampler.h - next-token sampling for the decoder runtime: a fixed chain of logit transforms,
 * the final probability vector, and a seeded, documented RNG (speculative-decoding.md §1.7, §9.2).
 *
 * Chain, in llama.cpp's default order (common/sampling: penalties, top_k, top_p, min_p,
 * temperature, dist), on the logits l[0..V):
 *   1. repetition penalty: every distinct token t among the last repeat_last_n tokens of the
 *      history gets l[t] / penalty if l[t] > 0, else l[t] * penalty (llama.cpp's
 *      penalty_repeat); off when penalty == 1 or repeat_last_n == 0;
 *   2. greedy (temperature <= 0): the final distribution is a point mass on the first index of
 *      the largest penalised logit; steps 3-6 are skipped;
 *   3. top-k (0 < top_k < V): keep the top_k largest logits (ties: lower index first);
 *   4. top-p (top_p < 1): softmax (T = 1) over the kept tokens, sorted by decreasing
 *      probability (ties: lower index first); keep the shortest prefix whose cumulative
 *      probability (double) reaches top_p;
 *   5. min-p (min_p > 0): keep tokens with l >= l_max + log(min_p), i.e. p >= min_p * p_max
 *      (llama.cpp's logit form);
 *   6. temperature: p[t] = exp((l[t] - l_max) / T) / sum over the kept tokens (double sums),
 *      0 for every other token.
 * Logits may be -inf (never chosen); NaN or +inf, or no finite logit at all, is COCHLEA_EINVAL.
 *
 * Drawing: u = uniform [0, 1) from the RNG, then the token is the smallest index t with
 * p[0] + ... + p[t] > u * (p[0] + ... + p[V-1]) (double sums in index order; lm_sample_from_probs).
 * Every lm_sampler_sample call consumes exactly one draw, greedy included, so the RNG advances
 * once per emitted token: a speculative decoder that computes the same distribution at each
 * accepted node (lm_sampler_probs with the node's ancestors as extra history), takes one
 * lm_sampler_draw per emitted token in emission order and accepts the emitted tokens reproduces
 * seeded AR sampling token for token (§9.2).
 *
 * RNG: xoshiro256** (Blackman & Vigna 2018), state seeded with four successive outputs of
 * splitmix64 started at `seed`; a uniform double is (next() >> 11) * 2^-53. */
#ifndef COCHLEA_LM_SAMPLER_H
#define COCHLEA_LM_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

typedef struct lm_rng {
    uint64_t s[4];
} lm_rng;

/* s[i] = splitmix64 outputs 1..4 from state `seed` (z += 0x9e3779b97f4a7c15; mix). */
void lm_rng_seed(lm_rng *r, uint64_t seed);
/* xoshiro256**: result = rotl(s1 * 5, 7) * 9, then the xoshiro256 state update. */
uint64_t lm_rng_next(lm_rng *r);
/* Uniform in [0, 1): (lm_rng_next() >> 11) * 2^-53. */
double lm_rng_uniform(lm_rng *r);

typedef struct lm_sampler_params {
    float temperature;     /* <= 0: greedy */
    int32_t top_k;         /* <= 0 or >= V: off */
    float top_p;           /* >= 1: off; must be > 0 */
    float min_p;           /* <= 0: off; must be <= 1 */
    float repeat_penalty;  /* 1: off; must be > 0 */
    int32_t repeat_last_n; /* tokens of history the penalty looks at; 0: off, -1: the whole history */
    uint64_t seed;
} lm_sampler_params;

/* llama.cpp's defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat_penalty 1
 * (off), repeat_last_n 64, seed 0. */
lm_sampler_params lm_sampler_default_params(void);

/* A sampler: the parameters, the RNG, the history of accepted tokens and scratch for V tokens. */
typedef struct lm_sampler lm_sampler;

/* COCHLEA_EINVAL for parameters outside their ranges or n_vocab < 1. */
int lm_sampler_create(const lm_sampler_params *p, int64_t n_vocab, lm_sampler **out);
void lm_sampler_free(lm_sampler *s);
/* Reseed the RNG from params.seed and clear the history. */
void lm_sampler_reset(lm_sampler *s);
/* Append a token to the history (what the repetition penalty sees). */
int lm_sampler_accept(lm_sampler *s, int32_t token);
/* The history so far (valid until the next accept/reset). */
const int32_t *lm_sampler_history(const lm_sampler *s, int64_t *n);

/* The final distribution (steps 1-6) for logits [V] into probs [V]; the penalty sees the
 * sampler's history followed by extra[0..n_extra) (tokens of a speculative path not accepted
 * yet; NULL/0 for none). Does not touch the RNG or the history. */
int lm_sampler_probs(lm_sampler *s, const float *logits, const int32_t *extra, int64_t n_extra, float *probs);
/* One uniform draw from the sampler's RNG. */
double lm_sampler_draw(lm_sampler *s);
/* Inverse CDF as described above; probs must be >= 0 with a positive sum (else -1). */
int32_t lm_sample_from_probs(const float *probs, int64_t n, double u);
/* lm_sampler_probs (no extra history) + one draw + lm_sample_from_probs, then accept the token.
 * probs_out [V] receives the distribution when not NULL. */
int lm_sampler_sample(lm_sampler *s, const float *logits, float *probs_out, int32_t *token);

#endif
