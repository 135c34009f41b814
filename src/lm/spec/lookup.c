/* lookup.c - prompt-lookup n-gram drafter (speculative-decoding.md §6.1). */
#include "lm/spec/lookup.h"

#include <string.h>

#include "error.h"

lm_spec_lookup lm_spec_lookup_default(void)
{
    lm_spec_lookup l = {1, 3, 10};
    return l;
}

static int lookup_check(const lm_spec_lookup *l)
{
    if (!l)
        return err_set(COCHLEA_EINVAL, "lm_spec_lookup: NULL parameters");
    if (l->n_min < 1 || l->n_max < l->n_min || l->k < 1)
        return err_set(COCHLEA_EINVAL, "lm_spec_lookup: n_min %d, n_max %d, k %d (need 1 <= n_min <= n_max, k >= 1)",
                       l->n_min, l->n_max, l->k);
    return COCHLEA_OK;
}

int lm_spec_lookup_drafter(lm_spec_lookup *l, lm_spec_drafter *out)
{
    if (!out)
        return err_set(COCHLEA_EINVAL, "lm_spec_lookup_drafter: NULL output");
    int rc = lookup_check(l);
    if (rc != COCHLEA_OK)
        return rc;
    memset(out, 0, sizeof *out);
    out->self = l;
    out->propose = lm_spec_lookup_propose;
    return COCHLEA_OK;
}

/* Earliest i with seq[i .. i+n) == seq[L-n .. L) and i + n <= L - 1, longest n first (§6.1). */
int lm_spec_lookup_propose(void *self, const int32_t *seq, int64_t n_seq, int64_t max_nodes, int32_t *token,
                           int32_t *parent, int64_t *n_nodes)
{
    const lm_spec_lookup *l = self;
    int rc = lookup_check(l);
    if (rc != COCHLEA_OK)
        return rc;
    if (!n_nodes || (n_seq > 0 && !seq) || max_nodes < 0 || (max_nodes > 0 && (!token || !parent)))
        return err_set(COCHLEA_EINVAL, "lm_spec_lookup_propose: bad arguments");
    *n_nodes = 0;
    int64_t kmax = l->k < max_nodes ? l->k : max_nodes;
    if (kmax == 0)
        return COCHLEA_OK;
    for (int64_t n = l->n_max; n >= l->n_min; n--) {
        if (n + 1 > n_seq)
            continue;
        const int32_t *suf = seq + n_seq - n;
        for (int64_t i = 0; i + n <= n_seq - 1; i++) {
            if (memcmp(seq + i, suf, (size_t)n * sizeof *seq) != 0)
                continue;
            int64_t avail = n_seq - (i + n), cnt = avail < kmax ? avail : kmax;
            for (int64_t j = 0; j < cnt; j++) {
                token[j] = seq[i + n + j];
                parent[j] = (int32_t)(j - 1);
            }
            *n_nodes = cnt;
            return COCHLEA_OK;
        }
    }
    return COCHLEA_OK;
}
