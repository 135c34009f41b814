/* sampler.c - the sampler chain, the final distribution and the seeded RNG (sampler.h). */
#include "lm/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cochlea.h"
#include "error.h"

/* ---- RNG ----------------------------------------------------------------------------------- */

/* splitmix64 (Steele, Lea, Flood 2014): z = (x += golden); z = (z ^ z>>30) * C1;
 * z = (z ^ z>>27) * C2; return z ^ z>>31. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void lm_rng_seed(lm_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** 1.0 (Blackman & Vigna): output rotl(s1 * 5, 7) * 9, then
 * t = s1 << 17; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 45). */
uint64_t lm_rng_next(lm_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double lm_rng_uniform(lm_rng *r)
{
    return (double)(lm_rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---- sampler ------------------------------------------------------------------------------- */

typedef struct cand {
    float l;
    int32_t id;
} cand;

struct lm_sampler {
    lm_sampler_params p;
    int64_t V;
    lm_rng rng;
    int32_t *hist;
    int64_t n_hist, cap_hist;
    cand *c;        /* [V] candidates */
    float *l;       /* [V] penalised logits */
    uint8_t *seen;  /* [V] zero between calls */
    float *probs;   /* [V] for lm_sampler_sample without probs_out */
};

lm_sampler_params lm_sampler_default_params(void)
{
    lm_sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.seed = 0;
    return p;
}

int lm_sampler_create(const lm_sampler_params *p, int64_t n_vocab, lm_sampler **out)
{
    *out = NULL;
    if (n_vocab < 1 || n_vocab > INT32_MAX)
        return err_set(COCHLEA_EINVAL, "sampler: vocabulary size %lld outside [1, 2^31)", (long long)n_vocab);
    if (isnan(p->temperature) || isinf(p->temperature))
        return err_set(COCHLEA_EINVAL, "sampler: temperature %g is not finite", (double)p->temperature);
    if (!(p->top_p > 0.0f) || isnan(p->top_p))
        return err_set(COCHLEA_EINVAL, "sampler: top_p %g must be > 0 (>= 1: off)", (double)p->top_p);
    if (isnan(p->min_p) || p->min_p > 1.0f)
        return err_set(COCHLEA_EINVAL, "sampler: min_p %g must be <= 1 (<= 0: off)", (double)p->min_p);
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty))
        return err_set(COCHLEA_EINVAL, "sampler: repeat_penalty %g must be positive and finite",
                       (double)p->repeat_penalty);
    if (p->repeat_last_n < -1)
        return err_set(COCHLEA_EINVAL, "sampler: repeat_last_n %d must be >= -1", p->repeat_last_n);
    lm_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(COCHLEA_ENOMEM, "out of memory");
    s->p = *p;
    s->V = n_vocab;
    s->c = malloc((size_t)n_vocab * sizeof *s->c);
    s->l = malloc((size_t)n_vocab * sizeof *s->l);
    s->seen = calloc((size_t)n_vocab, 1);
    s->probs = malloc((size_t)n_vocab * sizeof *s->probs);
    if (!s->c || !s->l || !s->seen || !s->probs) {
        lm_sampler_free(s);
        return err_set(COCHLEA_ENOMEM, "sampler: cannot allocate scratch for %lld tokens", (long long)n_vocab);
    }
    lm_sampler_reset(s);
    *out = s;
    return COCHLEA_OK;
}

void lm_sampler_free(lm_sampler *s)
{
    if (!s)
        return;
    free(s->hist);
    free(s->c);
    free(s->l);
    free(s->seen);
    free(s->probs);
    free(s);
}

void lm_sampler_reset(lm_sampler *s)
{
    lm_rng_seed(&s->rng, s->p.seed);
    s->n_hist = 0;
}

int lm_sampler_accept(lm_sampler *s, int32_t token)
{
    if (token < 0 || token >= s->V)
        return err_set(COCHLEA_EINVAL, "sampler: token %d outside the vocabulary of %lld", token, (long long)s->V);
    if (mem_grow((void **)&s->hist, &s->cap_hist, s->n_hist + 1, sizeof *s->hist))
        return err_set(COCHLEA_ENOMEM, "out of memory");
    s->hist[s->n_hist++] = token;
    return COCHLEA_OK;
}

const int32_t *lm_sampler_history(const lm_sampler *s, int64_t *n)
{
    *n = s->n_hist;
    return s->hist;
}

double lm_sampler_draw(lm_sampler *s)
{
    return lm_rng_uniform(&s->rng);
}

/* a ranks before b: larger logit, then lower index */
static inline int better(const cand *a, const cand *b)
{
    return a->l > b->l || (a->l == b->l && a->id < b->id);
}

static int cand_cmp(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

/* Min-heap on `better` (root = the worst kept candidate): sift c[i] down in c[0..n). */
static void heap_down(cand *c, int64_t n, int64_t i)
{
    for (;;) {
        int64_t w = i, a = 2 * i + 1, b = a + 1;
        if (a < n && better(&c[w], &c[a]))
            w = a;
        if (b < n && better(&c[w], &c[b]))
            w = b;
        if (w == i)
            return;
        cand t = c[i];
        c[i] = c[w];
        c[w] = t;
        i = w;
    }
}

/* Keep the k best of c[0..n) in c[0..k), sorted best first (k < n). */
static void top_k_select(cand *c, int64_t n, int64_t k)
{
    for (int64_t i = k / 2 - 1; i >= 0; i--)
        heap_down(c, k, i);
    for (int64_t i = k; i < n; i++)
        if (better(&c[i], &c[0])) {
            c[0] = c[i];
            heap_down(c, k, 0);
        }
    qsort(c, (size_t)k, sizeof *c, cand_cmp);
}

/* Repetition penalty over the last repeat_last_n tokens of history + extra (sampler.h step 1). */
static int apply_penalty(lm_sampler *s, const int32_t *extra, int64_t n_extra)
{
    const lm_sampler_params *p = &s->p;
    if (p->repeat_penalty == 1.0f || p->repeat_last_n == 0)
        return COCHLEA_OK;
    const int64_t total = s->n_hist + n_extra;
    const int64_t win = p->repeat_last_n < 0 || p->repeat_last_n > total ? total : p->repeat_last_n;
    int rc = COCHLEA_OK;
    int64_t i;
    for (i = total - win; i < total; i++) {
        const int32_t t = i < s->n_hist ? s->hist[i] : extra[i - s->n_hist];
        if (t < 0 || t >= s->V) {
            rc = err_set(COCHLEA_EINVAL, "sampler: history token %d outside the vocabulary of %lld", t,
                         (long long)s->V);
            break;
        }
        if (s->seen[t])
            continue;
        s->seen[t] = 1;
        s->l[t] = s->l[t] > 0.0f ? s->l[t] / p->repeat_penalty : s->l[t] * p->repeat_penalty;
    }
    for (int64_t j = total - win; j < i; j++)
        s->seen[j < s->n_hist ? s->hist[j] : extra[j - s->n_hist]] = 0;
    return rc;
}

int lm_sampler_probs(lm_sampler *s, const float *logits, const int32_t *extra, int64_t n_extra, float *probs)
{
    const lm_sampler_params *p = &s->p;
    const int64_t V = s->V;
    if (n_extra < 0 || (n_extra > 0 && !extra))
        return err_set(COCHLEA_EINVAL, "sampler: bad extra history (%lld tokens)", (long long)n_extra);
    for (int64_t t = 0; t < V; t++) {
        if (isnan(logits[t]) || logits[t] == INFINITY)
            return err_set(COCHLEA_EINVAL, "sampler: logit of token %lld is %g", (long long)t, (double)logits[t]);
        s->l[t] = logits[t];
    }
    int rc = apply_penalty(s, extra, n_extra);
    if (rc)
        return rc;
    int64_t nc = 0;
    for (int64_t t = 0; t < V; t++)
        if (s->l[t] > -INFINITY)
            s->c[nc++] = (cand){s->l[t], (int32_t)t};
    if (nc == 0)
        return err_set(COCHLEA_EINVAL, "sampler: every logit is -inf");
    memset(probs, 0, (size_t)V * sizeof *probs);
    if (p->temperature <= 0.0f) {
        int64_t best = 0;
        for (int64_t i = 1; i < nc; i++)
            if (better(&s->c[i], &s->c[best]))
                best = i;
        probs[s->c[best].id] = 1.0f;
        return COCHLEA_OK;
    }
    int sorted = 0;
    if (p->top_k > 0 && p->top_k < nc) {
        top_k_select(s->c, nc, p->top_k);
        nc = p->top_k;
        sorted = 1;
    }
    if (p->top_p < 1.0f) {
        if (!sorted)
            qsort(s->c, (size_t)nc, sizeof *s->c, cand_cmp);
        sorted = 1;
        const double mx = s->c[0].l;
        double sum = 0, cum = 0;
        for (int64_t i = 0; i < nc; i++)
            sum += exp((double)s->c[i].l - mx);
        for (int64_t i = 0; i < nc; i++) {
            cum += exp((double)s->c[i].l - mx) / sum;
            if (cum >= p->top_p) {
                nc = i + 1;
                break;
            }
        }
    }
    float mx = s->c[0].l;
    for (int64_t i = 1; i < nc; i++)
        if (s->c[i].l > mx)
            mx = s->c[i].l;
    if (p->min_p > 0.0f) {
        const float thr = mx + logf(p->min_p);
        int64_t m = 0;
        for (int64_t i = 0; i < nc; i++)
            if (s->c[i].l >= thr)
                s->c[m++] = s->c[i];
        nc = m;
    }
    double sum = 0;
    for (int64_t i = 0; i < nc; i++)
        sum += exp(((double)s->c[i].l - mx) / p->temperature);
    for (int64_t i = 0; i < nc; i++)
        probs[s->c[i].id] = (float)(exp(((double)s->c[i].l - mx) / p->temperature) / sum);
    return COCHLEA_OK;
}

int32_t lm_sample_from_probs(const float *probs, int64_t n, double u)
{
    double total = 0;
    int64_t last = -1;
    for (int64_t t = 0; t < n; t++) {
        if (!(probs[t] >= 0.0f))
            return -1;
        if (probs[t] > 0.0f)
            last = t;
        total += probs[t];
    }
    if (!(total > 0) || isinf(total))
        return -1;
    const double target = u * total;
    double cum = 0;
    for (int64_t t = 0; t < n; t++) {
        cum += probs[t];
        if (cum > target)
            return (int32_t)t;
    }
    return (int32_t)last; /* u * total rounded up to the sum */
}

int lm_sampler_sample(lm_sampler *s, const float *logits, float *probs_out, int32_t *token)
{
    float *probs = probs_out ? probs_out : s->probs;
    int rc = lm_sampler_probs(s, logits, NULL, 0, probs);
    if (rc)
        return rc;
    const double u = lm_sampler_draw(s);
    const int32_t t = lm_sample_from_probs(probs, s->V, u);
    if (t < 0)
        return err_set(COCHLEA_EINTERNAL, "sampler: the distribution has no mass");
    *token = t;
    return lm_sampler_accept(s, t);
}
