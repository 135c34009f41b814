/* hybrid.c - prompt lookup + Token Recycling drafter (speculative-decoding.md §6.5; hybrid.h). */
#include "lm/spec/hybrid.h"

#include <string.h>

#include "error.h"

lm_spec_hybrid_params lm_spec_hybrid_default_params(void)
{
    lm_spec_hybrid_params p = {{1, 3, 10}, 3, 4};
    return p;
}

static int hybrid_check(const lm_spec_hybrid_params *p)
{
    const lm_spec_lookup *l = &p->lookup;
    if (l->n_min < 1 || l->n_max < l->n_min || l->k < 1 || p->long_ngram < 0 || p->short_k < 0)
        return err_set(COCHLEA_EINVAL,
                       "lm_spec_hybrid: lookup n_min %d, n_max %d, k %d, long_ngram %d, short_k %d (need 1 <= n_min "
                       "<= n_max, k >= 1, long_ngram >= 0, short_k >= 0)",
                       l->n_min, l->n_max, l->k, p->long_ngram, p->short_k);
    return COCHLEA_OK;
}

int lm_spec_hybrid_init(lm_spec_hybrid *h, const lm_spec_hybrid_params *p, lm_spec_recycling *rec)
{
    if (!h || !rec)
        return err_set(COCHLEA_EINVAL, "lm_spec_hybrid_init: NULL argument");
    lm_spec_hybrid_params q = p ? *p : lm_spec_hybrid_default_params();
    int rc = hybrid_check(&q);
    if (rc != COCHLEA_OK)
        return rc;
    memset(h, 0, sizeof *h);
    h->p = q;
    h->rec = rec;
    return lm_spec_recycling_drafter(rec, &h->rec_d);
}

/* Lookup restricted to n-grams of n in [lo, hi] (nothing when the range is empty). */
static int lookup_range(const lm_spec_hybrid *h, int32_t lo, int32_t hi, int64_t k, const int32_t *seq,
                        int64_t n_seq, int32_t *token, int32_t *parent, int64_t *n)
{
    *n = 0;
    if (lo < h->p.lookup.n_min)
        lo = h->p.lookup.n_min;
    if (hi > h->p.lookup.n_max)
        hi = h->p.lookup.n_max;
    if (lo > hi || k < 1)
        return COCHLEA_OK;
    lm_spec_lookup l = {lo, hi, h->p.lookup.k};
    return lm_spec_lookup_propose(&l, seq, n_seq, k, token, parent, n);
}

int lm_spec_hybrid_propose(void *self, const int32_t *seq, int64_t n_seq, int64_t max_nodes, int32_t *token,
                           int32_t *parent, int64_t *n_nodes)
{
    lm_spec_hybrid *h = self;
    if (n_nodes)
        *n_nodes = 0;
    if (!h || !h->rec || !seq || n_seq < 1 || !n_nodes || max_nodes < 0 || (max_nodes > 0 && (!token || !parent)))
        return err_set(COCHLEA_EINVAL, "lm_spec_hybrid_propose: bad arguments");
    int rc = hybrid_check(&h->p);
    if (rc != COCHLEA_OK)
        return rc;
    if (max_nodes == 0)
        return COCHLEA_OK;
    int64_t nc = 0;
    if (h->p.long_ngram > 0) {
        rc = lookup_range(h, h->p.long_ngram, h->p.lookup.n_max, max_nodes, seq, n_seq, token, parent, &nc);
        if (rc != COCHLEA_OK)
            return rc;
        if (nc > 0) {
            h->n_long++;
            *n_nodes = nc;
            return COCHLEA_OK;
        }
    }
    const int32_t hi = h->p.long_ngram > 0 ? h->p.long_ngram - 1 : h->p.lookup.n_max;
    const int64_t ks = h->p.short_k < max_nodes ? h->p.short_k : max_nodes;
    rc = lookup_range(h, h->p.lookup.n_min, hi, ks, seq, n_seq, token, parent, &nc);
    if (rc != COCHLEA_OK)
        return rc;
    if (nc > 0)
        h->n_short++;
    else
        h->n_none++;
    int64_t nt = 0;
    const int64_t room = max_nodes - nc;
    if (room > 0) {
        const int64_t mt = room < LM_SPEC_TR_TEMPLATE_NODES ? room : LM_SPEC_TR_TEMPLATE_NODES;
        rc = h->rec_d.propose(h->rec_d.self, seq, n_seq, mt, h->tr_tok, h->tr_par, &nt);
        if (rc != COCHLEA_OK)
            return rc;
        for (int64_t i = 0; i < nt; i++) {
            token[nc + i] = h->tr_tok[i];
            parent[nc + i] = h->tr_par[i] < 0 ? -1 : (int32_t)(h->tr_par[i] + nc);
        }
    }
    *n_nodes = nc + nt;
    return COCHLEA_OK;
}

static int hybrid_observe(void *self, const int32_t *tok, const int32_t *parent, int64_t n_rows, const float *logits,
                          int64_t n_vocab, const int32_t *path, int64_t n_path)
{
    lm_spec_hybrid *h = self;
    if (!h || !h->rec_d.observe)
        return err_set(COCHLEA_EINVAL, "lm_spec_hybrid: observe without a recycling state");
    return h->rec_d.observe(h->rec_d.self, tok, parent, n_rows, logits, n_vocab, path, n_path);
}

static int hybrid_prefill(void *self, const int32_t *tok, int64_t n, const float *logits, int64_t n_vocab)
{
    lm_spec_hybrid *h = self;
    if (!h || !h->rec_d.prefill)
        return err_set(COCHLEA_EINVAL, "lm_spec_hybrid: prefill without a priming recycling state");
    return h->rec_d.prefill(h->rec_d.self, tok, n, logits, n_vocab);
}

int lm_spec_hybrid_drafter(lm_spec_hybrid *h, lm_spec_drafter *out)
{
    if (!h || !out || !h->rec || !h->rec_d.propose)
        return err_set(COCHLEA_EINVAL, "lm_spec_hybrid_drafter: NULL or uninitialised argument");
    memset(out, 0, sizeof *out);
    out->self = h;
    out->propose = lm_spec_hybrid_propose;
    out->observe = hybrid_observe;
    out->prefill = h->rec_d.prefill ? hybrid_prefill : NULL;
    return COCHLEA_OK;
}
