/* aded.c - ADED drafter: adaptive tri-gram matrix and MCTS draft maker (speculative-decoding.md §3). */
#include "lm/spec/aded.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

typedef struct snode {
    int32_t prev, cur;   /* state: the last two tokens */
    int32_t parent;      /* -1 for the root */
    int32_t first, n_ch; /* children: nodes first .. first + n_ch (once expanded) */
    int32_t depth;       /* tokens below the root */
    int32_t visits;
    int expanded;
    float score, prior, weight; /* accumulated reward W; P; the trigram weight of the edge into it */
} snode;

struct lm_spec_aded {
    int64_t V;
    lm_spec_aded_params p;
    int64_t cap; /* table slots, a power of two >= 2 max_rows */
    uint64_t *keys; /* 0 = empty, else a * V + b + 1 */
    int32_t *cnt;
    int32_t *tok; /* [cap * row_cap] */
    float *w;
    int64_t rows;
    snode *nodes;
    int64_t node_cap;
    int32_t *order; /* [node_cap] */
    int32_t *trie_tok, *trie_par; /* [trie_cap] */
    int64_t trie_cap;
    uint64_t rng;
};

lm_spec_aded_params lm_spec_aded_default_params(void)
{
    lm_spec_aded_params p = {12, 16, 0.04f, 3.0f, 150, 3, 24, 32.0f, 8.0f, (int64_t)1 << 16};
    return p;
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Slot of pair (a, b): its row, or with create an empty slot made its row (-1 when absent or the
 * table is at max_rows). */
static int64_t find_row(lm_spec_aded *a, int32_t x, int32_t y, int create)
{
    const uint64_t key = (uint64_t)x * (uint64_t)a->V + (uint64_t)y + 1;
    const uint64_t mask = (uint64_t)a->cap - 1;
    for (uint64_t h = mix64(key) & mask;; h = (h + 1) & mask) {
        if (a->keys[h] == key)
            return (int64_t)h;
        if (a->keys[h] == 0) {
            if (!create || a->rows >= a->p.max_rows)
                return -1;
            a->keys[h] = key;
            a->cnt[h] = 0;
            a->rows++;
            return (int64_t)h;
        }
    }
}

static int64_t find_row_c(const lm_spec_aded *a, int32_t x, int32_t y)
{
    return find_row((lm_spec_aded *)a, x, y, 0);
}

/* w(c) <- min(w(c) + delta, w_max) in row r; a full row replaces its lightest entry when that is
 * lighter than the new weight. */
static void row_add(lm_spec_aded *a, int64_t r, int32_t c, float delta)
{
    int32_t *t = a->tok + r * a->p.row_cap;
    float *w = a->w + r * a->p.row_cap;
    int32_t n = a->cnt[r];
    for (int32_t i = 0; i < n; i++)
        if (t[i] == c) {
            w[i] = fminf(w[i] + delta, a->p.w_max);
            return;
        }
    const float nw = fminf(delta, a->p.w_max);
    if (n < a->p.row_cap) {
        t[n] = c;
        w[n] = nw;
        a->cnt[r] = n + 1;
        return;
    }
    int32_t lo = 0;
    for (int32_t i = 1; i < n; i++)
        if (w[i] < w[lo])
            lo = i;
    if (w[lo] < nw) {
        t[lo] = c;
        w[lo] = nw;
    }
}

int lm_spec_aded_create(int64_t n_vocab, const lm_spec_aded_params *pp, lm_spec_aded **out)
{
    if (!out)
        return err_set(COCHLEA_EINVAL, "lm_spec_aded_create: NULL output");
    *out = NULL;
    const lm_spec_aded_params p = pp ? *pp : lm_spec_aded_default_params();
    if (n_vocab < 1 || n_vocab > INT32_MAX || p.row_cap < 1 || p.row_cap > 64 || p.window < 3 ||
        !(p.bonus > 0) || !(p.w_max >= p.bonus) || p.iterations < 1 || p.iterations > 100000 || p.depth < 1 ||
        p.depth > 64 || p.paths < 1 || !(p.c1 >= 0) || !(p.c2 > 0) || p.max_rows < 1 || p.max_rows > ((int64_t)1 << 30))
        return err_set(COCHLEA_EINVAL,
                       "lm_spec_aded_create: n_vocab %lld, row_cap %d (1..64), window %d (>= 3), bonus %g, w_max %g, "
                       "iterations %d, depth %d, paths %d, c1 %g, c2 %g, max_rows %lld",
                       (long long)n_vocab, p.row_cap, p.window, p.bonus, p.w_max, p.iterations, p.depth, p.paths,
                       p.c1, p.c2, (long long)p.max_rows);
    lm_spec_aded *a = calloc(1, sizeof *a);
    if (!a)
        return err_set(COCHLEA_ENOMEM, "lm_spec_aded_create: out of memory");
    a->V = n_vocab;
    a->p = p;
    a->cap = 2;
    while (a->cap < 2 * p.max_rows)
        a->cap *= 2;
    a->node_cap = (int64_t)p.iterations * p.row_cap + 1;
    a->trie_cap = (int64_t)p.paths * (p.depth + 2);
    a->keys = calloc((size_t)a->cap, sizeof *a->keys);
    a->cnt = calloc((size_t)a->cap, sizeof *a->cnt);
    a->tok = calloc((size_t)a->cap * (size_t)p.row_cap, sizeof *a->tok);
    a->w = calloc((size_t)a->cap * (size_t)p.row_cap, sizeof *a->w);
    a->nodes = calloc((size_t)a->node_cap, sizeof *a->nodes);
    a->order = calloc((size_t)a->node_cap, sizeof *a->order);
    a->trie_tok = calloc((size_t)a->trie_cap, sizeof *a->trie_tok);
    a->trie_par = calloc((size_t)a->trie_cap, sizeof *a->trie_par);
    if (!a->keys || !a->cnt || !a->tok || !a->w || !a->nodes || !a->order || !a->trie_tok || !a->trie_par) {
        lm_spec_aded_free(a);
        return err_set(COCHLEA_ENOMEM, "lm_spec_aded_create: out of memory for %lld rows", (long long)p.max_rows);
    }
    *out = a;
    return COCHLEA_OK;
}

void lm_spec_aded_free(lm_spec_aded *a)
{
    if (!a)
        return;
    free(a->keys);
    free(a->cnt);
    free(a->tok);
    free(a->w);
    free(a->nodes);
    free(a->order);
    free(a->trie_tok);
    free(a->trie_par);
    free(a);
}

void lm_spec_aded_reset(lm_spec_aded *a)
{
    if (!a)
        return;
    memset(a->keys, 0, (size_t)a->cap * sizeof *a->keys);
    a->rows = 0;
}

int64_t lm_spec_aded_rows(const lm_spec_aded *a)
{
    return a ? a->rows : 0;
}

float lm_spec_aded_weight(const lm_spec_aded *a, int32_t x, int32_t y, int32_t c)
{
    if (!a || x < 0 || y < 0 || x >= a->V || y >= a->V)
        return 0.0f;
    const int64_t r = find_row_c(a, x, y);
    if (r < 0)
        return 0.0f;
    for (int32_t i = 0; i < a->cnt[r]; i++)
        if (a->tok[r * a->p.row_cap + i] == c)
            return a->w[r * a->p.row_cap + i];
    return 0.0f;
}

static int check_ids(const lm_spec_aded *a, const int32_t *tok, int64_t n, const char *fn)
{
    if (!a || (!tok && n > 0) || n < 0)
        return err_set(COCHLEA_EINVAL, "%s: NULL argument or negative length", fn);
    for (int64_t i = 0; i < n; i++)
        if (tok[i] < 0 || tok[i] >= a->V)
            return err_set(COCHLEA_ERANGE, "%s: token %lld = %d outside [0, %lld)", fn, (long long)i, tok[i],
                           (long long)a->V);
    return COCHLEA_OK;
}

typedef struct tri {
    uint64_t key;
    int32_t c;
} tri;

static int tri_cmp(const void *x, const void *y)
{
    const tri *a = x, *b = y;
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    return (a->c > b->c) - (a->c < b->c);
}

int lm_spec_aded_add_corpus(lm_spec_aded *a, const int32_t *tok, int64_t n)
{
    int rc = check_ids(a, tok, n, "lm_spec_aded_add_corpus");
    if (rc != COCHLEA_OK || n < 3)
        return rc;
    tri *t = malloc((size_t)(n - 2) * sizeof *t);
    int32_t *cc = malloc((size_t)(n - 2) * sizeof *cc), *cv = malloc((size_t)(n - 2) * sizeof *cv);
    if (!t || !cc || !cv) {
        free(t);
        free(cc);
        free(cv);
        return err_set(COCHLEA_ENOMEM, "lm_spec_aded_add_corpus: out of memory for %lld tokens", (long long)n);
    }
    for (int64_t i = 0; i + 2 < n; i++) {
        t[i].key = (uint64_t)tok[i] * (uint64_t)a->V + (uint64_t)tok[i + 1];
        t[i].c = tok[i + 2];
    }
    qsort(t, (size_t)(n - 2), sizeof *t, tri_cmp);
    for (int64_t s = 0; s < n - 2;) {
        int64_t e = s;
        while (e < n - 2 && t[e].key == t[s].key)
            e++;
        /* distinct successors with their counts, heaviest first (ties: lower id) */
        int64_t m = 0;
        for (int64_t i = s; i < e; i++) {
            if (m > 0 && cc[m - 1] == t[i].c)
                cv[m - 1]++;
            else
                cc[m] = t[i].c, cv[m++] = 1;
        }
        for (int64_t i = 1; i < m; i++) /* insertion sort by count, stable on ids */
            for (int64_t j = i; j > 0 && cv[j] > cv[j - 1]; j--) {
                int32_t x = cc[j], y = cv[j];
                cc[j] = cc[j - 1], cv[j] = cv[j - 1];
                cc[j - 1] = x, cv[j - 1] = y;
            }
        const int32_t x = (int32_t)(t[s].key / (uint64_t)a->V), y = (int32_t)(t[s].key % (uint64_t)a->V);
        const int64_t r = find_row(a, x, y, 1);
        if (r >= 0)
            for (int64_t i = 0; i < m && i < a->p.row_cap; i++)
                row_add(a, r, cc[i], (float)cv[i] / (float)(e - s));
        s = e;
    }
    free(t);
    free(cc);
    free(cv);
    return COCHLEA_OK;
}

static void update_range(lm_spec_aded *a, const int32_t *tok, int64_t from, int64_t n)
{
    for (int64_t i = from; i + 2 < n; i++) {
        const int64_t r = find_row(a, tok[i], tok[i + 1], 1);
        if (r >= 0)
            row_add(a, r, tok[i + 2], a->p.bonus);
    }
}

int lm_spec_aded_update(lm_spec_aded *a, const int32_t *tok, int64_t n)
{
    int rc = check_ids(a, tok, n, "lm_spec_aded_update");
    if (rc != COCHLEA_OK)
        return rc;
    update_range(a, tok, n > a->p.window ? n - a->p.window : 0, n);
    return COCHLEA_OK;
}

static uint64_t rng_next(lm_spec_aded *a)
{
    uint64_t x = a->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return a->rng = x;
}

/* Expand node i with the successors of its state, heaviest first; returns the child count. */
static int32_t expand(lm_spec_aded *a, int64_t *n_nodes, int32_t i)
{
    snode *nd = &a->nodes[i];
    nd->expanded = 1;
    nd->first = (int32_t)*n_nodes;
    nd->n_ch = 0;
    if (nd->depth >= a->p.depth + 1)
        return 0;
    const int64_t r = find_row_c(a, nd->prev, nd->cur);
    if (r < 0)
        return 0;
    const int32_t *t = a->tok + r * a->p.row_cap;
    const float *w = a->w + r * a->p.row_cap;
    const int32_t m = a->cnt[r];
    float sum = 0;
    for (int32_t k = 0; k < m; k++)
        sum += w[k];
    if (!(sum > 0) || *n_nodes + m > a->node_cap)
        return 0;
    int32_t idx[64];
    for (int32_t k = 0; k < m; k++)
        idx[k] = k;
    for (int32_t k = 1; k < m; k++)
        for (int32_t j = k; j > 0 && (w[idx[j]] > w[idx[j - 1]] || (w[idx[j]] == w[idx[j - 1]] && t[idx[j]] < t[idx[j - 1]])); j--) {
            int32_t s = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = s;
        }
    for (int32_t k = 0; k < m; k++) {
        snode *c = &a->nodes[(*n_nodes)++];
        memset(c, 0, sizeof *c);
        c->prev = nd->cur;
        c->cur = t[idx[k]];
        c->parent = i;
        c->depth = nd->depth + 1;
        c->prior = w[idx[k]] / sum;
        c->weight = w[idx[k]];
    }
    a->nodes[i].n_ch = m;
    return m;
}

/* PUCT selection among the children of node i (§3.3): unvisited children first. */
static int32_t select_child(const lm_spec_aded *a, int32_t i)
{
    const snode *nd = &a->nodes[i];
    const double np = (double)nd->visits;
    const double expl = (a->p.c1 + log((np + a->p.c2 + 1.0) / a->p.c2)) * sqrt(np);
    int32_t best = -1;
    double bs = -INFINITY;
    for (int32_t k = 0; k < nd->n_ch; k++) {
        const snode *c = &a->nodes[nd->first + k];
        if (c->visits == 0)
            return nd->first + k;
        const double s = c->score / c->visits + expl * c->prior / (1.0 + c->visits);
        if (s > bs) {
            bs = s;
            best = nd->first + k;
        }
    }
    return best;
}

/* Heaviest successor of (x, y), or -1. */
static int32_t greedy_next(const lm_spec_aded *a, int32_t x, int32_t y)
{
    const int64_t r = find_row_c(a, x, y);
    if (r < 0 || a->cnt[r] == 0)
        return -1;
    const int32_t *t = a->tok + r * a->p.row_cap;
    const float *w = a->w + r * a->p.row_cap;
    int32_t b = 0;
    for (int32_t k = 1; k < a->cnt[r]; k++)
        if (w[k] > w[b] || (w[k] == w[b] && t[k] < t[b]))
            b = k;
    return t[b];
}

static int visit_cmp_nodes(const snode *nodes, int32_t x, int32_t y)
{
    if (nodes[x].visits != nodes[y].visits)
        return nodes[x].visits > nodes[y].visits ? -1 : 1;
    return (x > y) - (x < y);
}

static int aded_propose(void *self, const int32_t *seq, int64_t n_seq, int64_t max_nodes, int32_t *tok, int32_t *par,
                        int64_t *n_out)
{
    lm_spec_aded *a = self;
    *n_out = 0;
    int rc = lm_spec_aded_update(a, seq, n_seq);
    if (rc != COCHLEA_OK || n_seq < 2 || max_nodes < 1)
        return rc;
    a->rng = 0x9e3779b97f4a7c15ULL;
    snode *root = &a->nodes[0];
    memset(root, 0, sizeof *root);
    root->prev = seq[n_seq - 2];
    root->cur = seq[n_seq - 1];
    root->parent = -1;
    int64_t nn = 1;
    if (expand(a, &nn, 0) == 0)
        return COCHLEA_OK;
    for (int32_t it = 0; it < a->p.iterations; it++) {
        int32_t i = 0;
        double reward = 1.0;
        while (a->nodes[i].expanded && a->nodes[i].n_ch > 0) {
            i = select_child(a, i);
            reward += a->nodes[i].weight;
        }
        if (!a->nodes[i].expanded && expand(a, &nn, i) > 0) {
            i = a->nodes[i].first; /* the heaviest child, unvisited */
            reward += a->nodes[i].weight;
        }
        /* rollout: successors drawn in proportion to their weights, down to `depth` tokens */
        int32_t x = a->nodes[i].prev, y = a->nodes[i].cur;
        for (int32_t d = a->nodes[i].depth; d < a->p.depth; d++) {
            const int64_t r = find_row_c(a, x, y);
            if (r < 0 || a->cnt[r] == 0)
                break;
            const int32_t *t = a->tok + r * a->p.row_cap;
            const float *w = a->w + r * a->p.row_cap;
            float sum = 0;
            for (int32_t k = 0; k < a->cnt[r]; k++)
                sum += w[k];
            double u = (double)(rng_next(a) >> 11) * (1.0 / 9007199254740992.0) * sum;
            int32_t k = 0;
            while (k + 1 < a->cnt[r] && u >= w[k])
                u -= w[k++];
            reward += w[k];
            x = y;
            y = t[k];
        }
        for (int32_t j = i; j >= 0; j = a->nodes[j].parent) {
            a->nodes[j].visits++;
            a->nodes[j].score += (float)reward;
        }
    }
    /* the most visited nodes (not the root), their root paths + one greedy step, as a trie */
    int64_t m = 0;
    for (int32_t i = 1; i < nn; i++)
        if (a->nodes[i].visits > 0)
            a->order[m++] = i;
    for (int64_t i = 1; i < m; i++)
        for (int64_t j = i; j > 0 && visit_cmp_nodes(a->nodes, a->order[j], a->order[j - 1]) < 0; j--) {
            int32_t s = a->order[j];
            a->order[j] = a->order[j - 1];
            a->order[j - 1] = s;
        }
    if (m > a->p.paths)
        m = a->p.paths;
    const int64_t limit = max_nodes < a->trie_cap ? max_nodes : a->trie_cap;
    int64_t nt = 0;
    int32_t path[66];
    for (int64_t q = 0; q < m && nt < limit; q++) {
        int32_t len = 0;
        for (int32_t j = a->order[q]; j > 0; j = a->nodes[j].parent)
            path[len++] = a->nodes[j].cur;
        for (int32_t l = 0; l < len / 2; l++) { /* root first */
            int32_t s = path[l];
            path[l] = path[len - 1 - l];
            path[len - 1 - l] = s;
        }
        const snode *e = &a->nodes[a->order[q]];
        const int32_t g = greedy_next(a, e->prev, e->cur);
        if (g >= 0)
            path[len++] = g;
        int32_t at = -1;
        for (int32_t l = 0; l < len && nt < limit; l++) {
            int32_t found = -1;
            for (int64_t k = 0; k < nt; k++)
                if (a->trie_par[k] == at && a->trie_tok[k] == path[l]) {
                    found = (int32_t)k;
                    break;
                }
            if (found < 0) {
                a->trie_tok[nt] = path[l];
                a->trie_par[nt] = at;
                found = (int32_t)nt++;
            }
            at = found;
        }
    }
    memcpy(tok, a->trie_tok, (size_t)nt * sizeof *tok);
    memcpy(par, a->trie_par, (size_t)nt * sizeof *par);
    *n_out = nt;
    return COCHLEA_OK;
}

static int aded_prefill(void *self, const int32_t *tok, int64_t n, const float *logits, int64_t n_vocab)
{
    lm_spec_aded *a = self;
    (void)logits;
    (void)n_vocab;
    int rc = check_ids(a, tok, n, "lm_spec_aded prefill");
    if (rc == COCHLEA_OK)
        update_range(a, tok, 0, n);
    return rc;
}

int lm_spec_aded_drafter(lm_spec_aded *a, lm_spec_drafter *out)
{
    if (!a || !out)
        return err_set(COCHLEA_EINVAL, "lm_spec_aded_drafter: NULL argument");
    memset(out, 0, sizeof *out);
    out->self = a;
    out->propose = aded_propose;
    out->prefill = aded_prefill;
    return COCHLEA_OK;
}
