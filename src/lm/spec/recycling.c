/* recycling.c - Token Recycling drafter (speculative-decoding.md §2). */
#include "lm/spec/recycling.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Template "2.2.2" (§2.4): each entry is a parent, written as its path of ranks from the root
 * ("" = the root, "0.1" = rank 1 below rank 0), and its number of children, which take ranks
 * 0 .. n-1. Entries are in level order and, inside a level, in the template's order, so the
 * nodes they create come out in the reference code's merged (BFS) order. */
static const struct {
    const char *path;
    int n;
} TR_TEMPLATE[] = {
    /* level 1: 8 nodes */
    {"", 8},
    /* level 2: 21 */
    {"0", 8}, {"1", 4}, {"2", 3}, {"3", 2}, {"4", 1}, {"5", 1}, {"6", 1}, {"7", 1},
    /* level 3: 25 */
    {"0.0", 8}, {"0.1", 3}, {"0.2", 2}, {"0.3", 1}, {"0.4", 1}, {"0.5", 1}, {"0.6", 1}, {"0.7", 1},
    {"1.0", 2}, {"1.1", 1}, {"2.0", 1}, {"3.0", 1}, {"4.0", 1}, {"5.0", 1},
    /* level 4: 15 */
    {"0.0.0", 5}, {"0.0.1", 2}, {"0.0.2", 1}, {"0.0.3", 1}, {"0.0.4", 1}, {"0.1.0", 1}, {"0.2.0", 1},
    {"1.0.0", 1}, {"2.0.0", 1}, {"3.0.0", 1},
    /* level 5: 8 */
    {"0.0.0.0", 3}, {"0.0.0.1", 1}, {"0.0.0.2", 1}, {"0.0.1.0", 1}, {"0.1.0.0", 1}, {"1.0.0.0", 1},
    /* level 6: 3 */
    {"0.0.0.0.0", 2}, {"0.0.0.1.0", 1},
};

/* Path string of node i (ranks joined by '.') into buf. */
static void node_path(const int32_t *parent, const int32_t *rank, int32_t i, char *buf, size_t cap)
{
    int32_t chain[16];
    int n = 0;
    for (int32_t j = i; j >= 0 && n < 16; j = parent[j])
        chain[n++] = rank[j];
    size_t o = 0;
    buf[0] = 0;
    for (int t = n - 1; t >= 0 && o + 4 < cap; t--)
        o += (size_t)snprintf(buf + o, cap - o, t == n - 1 ? "%d" : ".%d", chain[t]);
}

int64_t lm_spec_tr_template(int32_t *parent, int32_t *rank)
{
    int64_t n = 0;
    char buf[64];
    for (size_t e = 0; e < sizeof TR_TEMPLATE / sizeof TR_TEMPLATE[0]; e++) {
        int32_t par = -1;
        if (TR_TEMPLATE[e].path[0]) {
            par = -2;
            for (int64_t i = 0; i < n && par == -2; i++) {
                node_path(parent, rank, (int32_t)i, buf, sizeof buf);
                if (!strcmp(buf, TR_TEMPLATE[e].path))
                    par = (int32_t)i;
            }
            if (par == -2) /* cannot happen with the table above (checked by the tests) */
                return -1;
        }
        for (int c = 0; c < TR_TEMPLATE[e].n && n < LM_SPEC_TR_TEMPLATE_NODES; c++) {
            parent[n] = par;
            rank[n] = c;
            n++;
        }
    }
    return n;
}

/* Assumed acceptance of the candidate of rank r (r >= 7: the last value): the top candidate is
 * right about half the time and the others far less often. Only the order matters. */
static const double TR_RANK_ACCEPT[] = {0.5, 0.15, 0.08, 0.05, 0.035, 0.025, 0.02, 0.015};

/* Reorder the kept template nodes best first: by the product of TR_RANK_ACCEPT over the node's
 * path (its chance of being reached and accepted under that assumption), ties in template
 * order. A child's product is below its parent's, so parents stay before children, and a
 * tree cut to its first n nodes (a --nodes budget below the template's size) is the n-node
 * subtree of the template with the largest expected accepted length, not just its first levels. */
static void order_best_first(lm_spec_recycling *r)
{
    const int64_t n = r->n_nodes;
    double pr[LM_SPEC_TR_TEMPLATE_NODES];
    int32_t idx[LM_SPEC_TR_TEMPLATE_NODES], pos[LM_SPEC_TR_TEMPLATE_NODES];
    int32_t par[LM_SPEC_TR_TEMPLATE_NODES], rk[LM_SPEC_TR_TEMPLATE_NODES];
    const int na = (int)(sizeof TR_RANK_ACCEPT / sizeof TR_RANK_ACCEPT[0]);
    for (int64_t i = 0; i < n; i++) {
        double a = TR_RANK_ACCEPT[r->rank[i] < na ? r->rank[i] : na - 1];
        pr[i] = (r->parent[i] < 0 ? 1.0 : pr[r->parent[i]]) * a;
        idx[i] = (int32_t)i;
    }
    /* insertion sort (80 nodes), stable: higher product first */
    for (int64_t i = 1; i < n; i++) {
        int32_t v = idx[i];
        int64_t j = i - 1;
        for (; j >= 0 && pr[idx[j]] < pr[v]; j--)
            idx[j + 1] = idx[j];
        idx[j + 1] = v;
    }
    for (int64_t i = 0; i < n; i++)
        pos[idx[i]] = (int32_t)i;
    for (int64_t i = 0; i < n; i++) {
        int32_t o = idx[i];
        par[i] = r->parent[o] < 0 ? -1 : pos[r->parent[o]];
        rk[i] = r->rank[o];
    }
    memcpy(r->parent, par, (size_t)n * sizeof *par);
    memcpy(r->rank, rk, (size_t)n * sizeof *rk);
}

int lm_spec_recycling_create(int64_t n_vocab, int32_t k, int prime, lm_spec_recycling **out)
{
    if (!out)
        return err_set(COCHLEA_EINVAL, "lm_spec_recycling_create: NULL output");
    *out = NULL;
    if (n_vocab < 1 || k < 1 || k > 64 || k > n_vocab)
        return err_set(COCHLEA_EINVAL, "lm_spec_recycling_create: n_vocab %lld, k %d (need 1 <= k <= min(64, n_vocab))",
                       (long long)n_vocab, k);
    size_t bytes;
    if (size_mul((size_t)n_vocab, (size_t)k, &bytes) != 0 || size_mul(bytes, sizeof(int32_t), &bytes) != 0)
        return err_set(COCHLEA_ERANGE, "lm_spec_recycling_create: matrix size overflows");
    lm_spec_recycling *r = calloc(1, sizeof *r);
    if (!r)
        return err_set(COCHLEA_ENOMEM, "lm_spec_recycling_create: out of memory");
    r->m = calloc(1, bytes);
    r->scratch = malloc((size_t)k * sizeof *r->scratch);
    if (!r->m || !r->scratch) {
        lm_spec_recycling_free(r);
        return err_set(COCHLEA_ENOMEM, "lm_spec_recycling_create: out of memory (%zu bytes)", bytes);
    }
    r->n_vocab = n_vocab;
    r->k = k;
    r->prime = prime;
    int32_t par[LM_SPEC_TR_TEMPLATE_NODES], rk[LM_SPEC_TR_TEMPLATE_NODES], map[LM_SPEC_TR_TEMPLATE_NODES];
    int64_t nt = lm_spec_tr_template(par, rk);
    if (nt < 0) {
        lm_spec_recycling_free(r);
        return err_set(COCHLEA_EINTERNAL, "lm_spec_recycling_create: malformed tree template");
    }
    /* Drop nodes of rank >= k and their subtrees; renumber parents. */
    for (int64_t i = 0; i < nt; i++) {
        int keep = rk[i] < k && (par[i] < 0 || map[par[i]] >= 0);
        map[i] = keep ? (int32_t)r->n_nodes : -1;
        if (keep) {
            r->parent[r->n_nodes] = par[i] < 0 ? -1 : map[par[i]];
            r->rank[r->n_nodes] = rk[i];
            r->n_nodes++;
        }
    }
    order_best_first(r);
    *out = r;
    return COCHLEA_OK;
}

void lm_spec_recycling_free(lm_spec_recycling *r)
{
    if (!r)
        return;
    free(r->m);
    free(r->scratch);
    free(r);
}

void lm_spec_recycling_reset(lm_spec_recycling *r)
{
    if (r)
        memset(r->m, 0, (size_t)r->n_vocab * (size_t)r->k * sizeof *r->m);
}

/* Insertion into a sorted top-k list: O(n k) worst case, O(n) typical for small k. */
void lm_spec_topk(const float *logits, int64_t n, int32_t k, int32_t *ids, float *vals)
{
    int32_t cnt = 0;
    for (int64_t t = 0; t < n; t++) {
        float v = logits[t];
        if (v != v)
            continue;
        if (cnt == k && !(v > vals[k - 1]))
            continue;
        int32_t j = cnt < k ? cnt++ : k - 1;
        while (j > 0 && v > vals[j - 1]) {
            vals[j] = vals[j - 1];
            ids[j] = ids[j - 1];
            j--;
        }
        vals[j] = v;
        ids[j] = (int32_t)t;
    }
    for (; cnt < k; cnt++) /* only with NaN logits: pad with token 0 */
        ids[cnt] = 0, vals[cnt] = 0;
}

int lm_spec_recycling_update(lm_spec_recycling *r, const int32_t *tok, int64_t n, const float *logits,
                             int64_t n_vocab)
{
    if (!r || (n > 0 && (!tok || !logits)) || n < 0)
        return err_set(COCHLEA_EINVAL, "lm_spec_recycling_update: bad arguments");
    if (n_vocab != r->n_vocab)
        return err_set(COCHLEA_EINVAL, "lm_spec_recycling_update: vocabulary %lld, matrix has %lld",
                       (long long)n_vocab, (long long)r->n_vocab);
    for (int64_t i = 0; i < n; i++) {
        if (tok[i] < 0 || tok[i] >= r->n_vocab)
            return err_set(COCHLEA_EINVAL, "lm_spec_recycling_update: token %d outside [0, %lld)", tok[i],
                           (long long)r->n_vocab);
        lm_spec_topk(logits + (size_t)i * (size_t)n_vocab, n_vocab, r->k, r->m + (size_t)tok[i] * (size_t)r->k,
                     r->scratch);
    }
    return COCHLEA_OK;
}

/* Static-tree BFS retrieval (paper Algorithm 1): token[i] = M[token[parent[i]]][rank[i]]. */
static int tr_propose(void *self, const int32_t *seq, int64_t n_seq, int64_t max_nodes, int32_t *token,
                      int32_t *parent, int64_t *n_nodes)
{
    lm_spec_recycling *r = self;
    if (!r || !seq || n_seq < 1 || !n_nodes || max_nodes < 0)
        return err_set(COCHLEA_EINVAL, "lm_spec_recycling: bad propose arguments");
    const int32_t root = seq[n_seq - 1];
    if (root < 0 || root >= r->n_vocab)
        return err_set(COCHLEA_EINVAL, "lm_spec_recycling: root token %d outside [0, %lld)", root,
                       (long long)r->n_vocab);
    int64_t n = r->n_nodes < max_nodes ? r->n_nodes : max_nodes;
    for (int64_t i = 0; i < n; i++) {
        int32_t pt = r->parent[i] < 0 ? root : token[r->parent[i]];
        token[i] = r->m[(size_t)pt * (size_t)r->k + (size_t)r->rank[i]];
        parent[i] = r->parent[i];
    }
    *n_nodes = n;
    return COCHLEA_OK;
}

/* §2.6: every row, then the accepted path again (correct-context candidates win). */
static int tr_observe(void *self, const int32_t *tok, const int32_t *parent, int64_t n_rows, const float *logits,
                      int64_t n_vocab, const int32_t *path, int64_t n_path)
{
    (void)parent;
    lm_spec_recycling *r = self;
    int rc = lm_spec_recycling_update(r, tok, n_rows, logits, n_vocab);
    for (int64_t j = 0; rc == COCHLEA_OK && j < n_path; j++) {
        if (path[j] < 0 || path[j] >= n_rows)
            return err_set(COCHLEA_EINVAL, "lm_spec_recycling: path row %d outside the batch", path[j]);
        rc = lm_spec_recycling_update(r, tok + path[j], 1, logits + (size_t)path[j] * (size_t)n_vocab, n_vocab);
    }
    return rc;
}

static int tr_prefill(void *self, const int32_t *tok, int64_t n, const float *logits, int64_t n_vocab)
{
    lm_spec_recycling *r = self;
    return lm_spec_recycling_update(r, tok, n, logits, n_vocab);
}

int lm_spec_recycling_drafter(lm_spec_recycling *r, lm_spec_drafter *out)
{
    if (!r || !out)
        return err_set(COCHLEA_EINVAL, "lm_spec_recycling_drafter: NULL argument");
    memset(out, 0, sizeof *out);
    out->self = r;
    out->propose = tr_propose;
    out->observe = tr_observe;
    out->prefill = r->prime ? tr_prefill : NULL;
    return COCHLEA_OK;
}
