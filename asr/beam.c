/* beam.c - CTC prefix beam search (asr/beam.h, tests/ref/ctc_beam.py).
 *
 * Prefixes are nodes of a tree (parent, token), created only for the entries that make the beam,
 * so a prefix is identified by its (parent, token) pair; a hash map from that pair to the node lets a
 * prefix that left the beam and comes back keep its node (and its first emission position). */
#include "asr/beam.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

int ctc_token_kind(const char *p, size_t len)
{
    if (len < 2 || p[0] != '<' || p[len - 1] != '>')
        return CTC_KIND_PIECE;
    if (len == 5 && p[1] >= 'a' && p[1] <= 'z' && p[2] >= 'a' && p[2] <= 'z' && p[3] >= 'a' && p[3] <= 'z' &&
        memcmp(p, "<asr>", 5) && memcmp(p, "<unk>", 5) && memcmp(p, "<sos>", 5) && memcmp(p, "<eos>", 5) &&
        memcmp(p, "<sop>", 5))
        return CTC_KIND_LANG;
    return CTC_KIND_SPECIAL;
}

void ctc_cands_free(ctc_cands *c)
{
    if (c) {
        free(c->ids), free(c->lp), free(c->cnt), free(c->argmax);
        memset(c, 0, sizeof *c);
    }
}

int ctc_cands_add(ctc_cands *c, const float *rows, size_t n_rows, int64_t V, int32_t blank)
{
    const int K1 = CTC_TOPK + 1;
    if (c->n + n_rows > c->cap) {
        size_t cap = c->cap ? c->cap : 256;
        while (cap < c->n + n_rows)
            cap *= 2;
        int32_t *ids = realloc(c->ids, cap * K1 * sizeof *ids);
        if (ids)
            c->ids = ids;
        float *lp = realloc(c->lp, cap * K1 * sizeof *lp);
        if (lp)
            c->lp = lp;
        uint8_t *cnt = realloc(c->cnt, cap);
        if (cnt)
            c->cnt = cnt;
        int32_t *am = realloc(c->argmax, cap * sizeof *am);
        if (am)
            c->argmax = am;
        if (!ids || !lp || !cnt || !am)
            return err_set(COCHLEA_ENOMEM, "out of memory (beam search candidates)");
        c->cap = cap;
    }
    for (size_t r = 0; r < n_rows; r++) {
        const float *x = rows + r * (size_t)V;
        int32_t *ids = c->ids + (c->n + r) * K1;
        float *lp = c->lp + (c->n + r) * K1;
        int k = 0; /* non-blank candidates kept, in ids[1..k], sorted */
        int32_t am = 0;
        for (int64_t v = 0; v < V; v++) {
            if (x[v] > x[am])
                am = (int32_t)v;
            if (v == blank || !(x[v] > CTC_PRUNE))
                continue;
            if (k == CTC_TOPK && !(x[v] > lp[k]))
                continue;
            int j = k < CTC_TOPK ? ++k : k; /* slot to fill, then bubble up */
            while (j > 1 && x[v] > lp[j - 1]) {
                ids[j] = ids[j - 1];
                lp[j] = lp[j - 1];
                j--;
            }
            ids[j] = (int32_t)v;
            lp[j] = x[v];
        }
        ids[0] = blank;
        lp[0] = x[blank];
        c->cnt[c->n + r] = (uint8_t)(k + 1);
        c->argmax[c->n + r] = am;
    }
    c->n += n_rows;
    return COCHLEA_OK;
}

/* ---- the search ---------------------------------------------------------------------------- */

typedef struct node {
    int32_t parent, token, emit, lang;
    double ls;
} node;

typedef struct entry {
    int32_t parent, token, node, seq;
    double pb, pnb, ls, score;
} entry;

typedef struct search {
    const ctc_beam_opts *o;
    node *nodes;
    int64_t n_nodes, cap_nodes;
    int32_t *map; /* open addressing over nodes by (parent, token); -1 empty */
    size_t map_cap;
    entry *ent;
    size_t n_ent, cap_ent;
    int32_t *etab; /* per-position table over ent by (parent, token) */
    uint32_t *estamp, stamp;
    size_t etab_cap;
} search;

static size_t hash2(int32_t a, int32_t b)
{
    uint64_t x = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static int32_t map_find(const search *s, int32_t parent, int32_t token)
{
    size_t mask = s->map_cap - 1, i = hash2(parent, token) & mask;
    for (; s->map[i] >= 0; i = (i + 1) & mask) {
        const node *n = &s->nodes[s->map[i]];
        if (n->parent == parent && n->token == token)
            return s->map[i];
    }
    return -1;
}

static void map_insert(search *s, int32_t id)
{
    size_t mask = s->map_cap - 1, i = hash2(s->nodes[id].parent, s->nodes[id].token) & mask;
    while (s->map[i] >= 0)
        i = (i + 1) & mask;
    s->map[i] = id;
}

static int add_node(search *s, int32_t parent, int32_t token, int32_t emit, double ls, int32_t *out)
{
    if (s->n_nodes + 1 > INT32_MAX / 2)
        return err_set(COCHLEA_ERANGE, "beam search: too many prefixes");
    if (mem_grow((void **)&s->nodes, &s->cap_nodes, s->n_nodes + 1, sizeof *s->nodes))
        return err_set(COCHLEA_ENOMEM, "out of memory (beam search)");
    if ((size_t)(s->n_nodes + 1) * 2 > s->map_cap) {
        size_t cap = s->map_cap ? s->map_cap * 2 : 1024;
        int32_t *m = malloc(cap * sizeof *m);
        if (!m)
            return err_set(COCHLEA_ENOMEM, "out of memory (beam search)");
        free(s->map);
        s->map = m;
        s->map_cap = cap;
        memset(m, 0xff, cap * sizeof *m);
        for (int32_t i = 0; i < s->n_nodes; i++)
            map_insert(s, i);
    }
    int32_t id = (int32_t)s->n_nodes++;
    node *n = &s->nodes[id];
    n->parent = parent;
    n->token = token;
    n->emit = emit;
    n->ls = ls;
    n->lang = parent >= 0 ? s->nodes[parent].lang : -1;
    if (n->lang < 0 && token >= 0 && s->o->kind[token] == CTC_KIND_LANG)
        n->lang = token;
    map_insert(s, id);
    *out = id;
    return COCHLEA_OK;
}

/* The LM context of prefix `id` (oldest first) into ctx; returns its length. */
static int context(const search *s, int32_t id, int32_t *ctx)
{
    const ctc_beam_opts *o = s->o;
    const int want = ngram_order(o->lm) - 1;
    int32_t rev[NGRAM_MAX_ORDER + 2];
    int n = 0;
    for (int32_t x = id; x > 0 && n < want; x = s->nodes[x].parent)
        if (o->kind[s->nodes[x].token] == CTC_KIND_PIECE)
            rev[n++] = s->nodes[x].token;
    if (n < want) {
        int32_t lg = o->lang >= 0 ? o->lang : s->nodes[id].lang;
        if (lg >= 0)
            rev[n++] = lg;
        if (n < want)
            rev[n++] = o->sos;
    }
    for (int i = 0; i < n; i++)
        ctx[i] = rev[n - 1 - i];
    return n;
}

static double term(const search *s, int32_t parent, int32_t c)
{
    const ctc_beam_opts *o = s->o;
    if (o->kind[c] != CTC_KIND_PIECE)
        return 0.0;
    double t = (double)o->bonus;
    if (o->lm) {
        int32_t ctx[NGRAM_MAX_ORDER + 2];
        int n = context(s, parent, ctx);
        t += (double)o->weight * ngram_lnp(o->lm, ctx, n, c);
    }
    return t;
}

static double lse(double a, double b)
{
    if (a == -INFINITY)
        return b;
    if (b == -INFINITY)
        return a;
    double m = a > b ? a : b;
    return m + log1p(exp(-fabs(a - b)));
}

/* The entry of prefix (parent, token) for this position, created (in creation order) if new. */
static entry *get_entry(search *s, int32_t parent, int32_t token, int32_t nd, double ls)
{
    size_t mask = s->etab_cap - 1, i = hash2(parent, token) & mask;
    for (; s->estamp[i] == s->stamp; i = (i + 1) & mask) {
        entry *e = &s->ent[s->etab[i]];
        if (e->parent == parent && e->token == token)
            return e;
    }
    entry *e = &s->ent[s->n_ent];
    s->estamp[i] = s->stamp;
    s->etab[i] = (int32_t)s->n_ent;
    e->parent = parent;
    e->token = token;
    e->node = nd;
    e->seq = (int32_t)s->n_ent++;
    e->pb = e->pnb = -INFINITY;
    e->ls = ls;
    return e;
}

static int cmp_entry(const void *pa, const void *pb)
{
    const entry *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

int ctc_beam_decode(const ctc_cands *c, const ctc_beam_opts *o, int32_t **ids_out, size_t *n_out, int32_t *align)
{
    *ids_out = NULL;
    *n_out = 0;
    if (!c || !o || o->beam < 1 || o->beam > 1024 || !o->kind || o->blank < 0 || o->blank >= o->vocab)
        return err_set(COCHLEA_EINVAL, "ctc_beam_decode: bad arguments (beam size 1..1024)");
    const int B = o->beam, K1 = CTC_TOPK + 1;
    search s;
    memset(&s, 0, sizeof s);
    s.o = o;
    int rc = COCHLEA_OK;
    int32_t *bnode = malloc((size_t)B * sizeof *bnode), root;
    double *bpb = malloc((size_t)B * sizeof *bpb), *bpnb = malloc((size_t)B * sizeof *bpnb);
    s.cap_ent = (size_t)B * (size_t)(K1 + 1);
    s.ent = malloc(s.cap_ent * sizeof *s.ent);
    s.etab_cap = 16;
    while (s.etab_cap < 4 * s.cap_ent)
        s.etab_cap *= 2;
    s.etab = malloc(s.etab_cap * sizeof *s.etab);
    s.estamp = calloc(s.etab_cap, sizeof *s.estamp);
    if (!bnode || !bpb || !bpnb || !s.ent || !s.etab || !s.estamp) {
        rc = err_set(COCHLEA_ENOMEM, "out of memory (beam search)");
        goto done;
    }
    if ((rc = add_node(&s, -1, -1, -1, 0.0, &root)))
        goto done;
    int nb = 1;
    bnode[0] = root;
    bpb[0] = 0.0;
    bpnb[0] = -INFINITY;
    for (size_t t = 0; t < c->n; t++) {
        const int32_t *cid = c->ids + t * K1;
        const float *clp = c->lp + t * K1;
        const int nc = c->cnt[t];
        s.n_ent = 0;
        if (++s.stamp == 0) {
            memset(s.estamp, 0, s.etab_cap * sizeof *s.estamp);
            s.stamp = 1;
        }
        for (int b = 0; b < nb; b++) {
            const int32_t x = bnode[b];
            const node *nx = &s.nodes[x];
            const double pb = bpb[b], pnb = bpnb[b], ptot = lse(pb, pnb);
            const int32_t last = x > 0 ? nx->token : -1;
            for (int j = 0; j < nc; j++) {
                const int32_t cc = cid[j];
                const double p = (double)clp[j];
                if (cc == o->blank) {
                    entry *e = get_entry(&s, nx->parent, nx->token, x, nx->ls);
                    e->pb = lse(e->pb, ptot + p);
                } else {
                    if (cc == last) {
                        entry *e = get_entry(&s, nx->parent, nx->token, x, nx->ls);
                        e->pnb = lse(e->pnb, pnb + p);
                    }
                    size_t mask = s.etab_cap - 1, i = hash2(x, cc) & mask;
                    entry *e = NULL;
                    for (; s.estamp[i] == s.stamp; i = (i + 1) & mask)
                        if (s.ent[s.etab[i]].parent == x && s.ent[s.etab[i]].token == cc) {
                            e = &s.ent[s.etab[i]];
                            break;
                        }
                    if (!e) {
                        double ls = s.nodes[x].ls + term(&s, x, cc);
                        e = get_entry(&s, x, cc, map_find(&s, x, cc), ls);
                    }
                    e->pnb = lse(e->pnb, (cc == last ? pb : ptot) + p);
                }
            }
        }
        for (size_t i = 0; i < s.n_ent; i++)
            s.ent[i].score = lse(s.ent[i].pb, s.ent[i].pnb) + s.ent[i].ls;
        qsort(s.ent, s.n_ent, sizeof *s.ent, cmp_entry);
        nb = s.n_ent < (size_t)B ? (int)s.n_ent : B;
        for (int b = 0; b < nb; b++) {
            entry *e = &s.ent[b];
            if (e->node < 0 && (rc = add_node(&s, e->parent, e->token, (int32_t)t, e->ls, &e->node)))
                goto done;
            bnode[b] = e->node;
            bpb[b] = e->pb;
            bpnb[b] = e->pnb;
        }
    }
    /* the result */
    int32_t best = bnode[0];
    double best_s = -INFINITY;
    for (int b = 0; b < nb; b++) {
        double sc = lse(bpb[b], bpnb[b]) + s.nodes[bnode[b]].ls;
        if (o->lm) {
            int32_t ctx[NGRAM_MAX_ORDER + 2];
            int n = context(&s, bnode[b], ctx);
            sc += (double)o->weight * ngram_lnp(o->lm, ctx, n, o->eos);
        }
        if (b == 0 || sc > best_s) {
            best = bnode[b];
            best_s = sc;
        }
    }
    size_t len = 0;
    for (int32_t x = best; x > 0; x = s.nodes[x].parent)
        len++;
    int32_t *ids = malloc((len ? len : 1) * sizeof *ids), *em = malloc((len ? len : 1) * sizeof *em);
    if (!ids || !em) {
        free(ids), free(em);
        rc = err_set(COCHLEA_ENOMEM, "out of memory (beam search)");
        goto done;
    }
    size_t k = len;
    for (int32_t x = best; x > 0; x = s.nodes[x].parent) {
        k--;
        ids[k] = s.nodes[x].token;
        em[k] = s.nodes[x].emit;
    }
    for (size_t t = 0; t < c->n; t++)
        align[t] = o->blank;
    for (size_t i = 0; i < len; i++) {
        size_t stop = c->n;
        if (i + 1 < len)
            stop = (size_t)em[i + 1] - (ids[i + 1] == ids[i] ? 1 : 0);
        size_t t = (size_t)em[i];
        align[t++] = ids[i];
        for (; t < stop && c->argmax[t] == ids[i]; t++)
            align[t] = ids[i];
    }
    free(em);
    *ids_out = ids;
    *n_out = len;
done:
    free(bnode), free(bpb), free(bpnb), free(s.ent), free(s.etab), free(s.estamp), free(s.nodes), free(s.map);
    return rc;
}
