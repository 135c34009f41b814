/* se_part.c - greedy and hierarchical 2-D SE minimisation (secodec.md §2.3, §2.4, §8 item 3). */
#include "se_part.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* ---- community -> weight hash map (linear probing, backward-shift deletion) ----------------- */

typedef struct {
    int32_t *key; /* -1: empty */
    double *val;
    uint32_t cap; /* 0 or a power of two */
    uint32_t n;
} cmap;

static uint32_t cmap_hash(int32_t k, uint32_t mask)
{
    uint32_t h = (uint32_t)k * 0x9E3779B1u;
    h ^= h >> 15;
    return h & mask;
}

static void cmap_free(cmap *m)
{
    free(m->key);
    free(m->val);
    memset(m, 0, sizeof *m);
}

static int64_t cmap_find(const cmap *m, int32_t k)
{
    if (m->cap == 0)
        return -1;
    uint32_t mask = m->cap - 1;
    for (uint32_t s = cmap_hash(k, mask);; s = (s + 1) & mask) {
        if (m->key[s] == k)
            return s;
        if (m->key[s] < 0)
            return -1;
    }
}

static int cmap_rehash(cmap *m, uint32_t cap)
{
    int32_t *nk = malloc((size_t)cap * sizeof(int32_t));
    double *nv = malloc((size_t)cap * sizeof(double));
    if (!nk || !nv) {
        free(nk);
        free(nv);
        return -1;
    }
    for (uint32_t s = 0; s < cap; s++)
        nk[s] = -1;
    uint32_t mask = cap - 1;
    for (uint32_t s = 0; s < m->cap; s++) {
        if (m->key[s] < 0)
            continue;
        uint32_t t = cmap_hash(m->key[s], mask);
        while (nk[t] >= 0)
            t = (t + 1) & mask;
        nk[t] = m->key[s];
        nv[t] = m->val[s];
    }
    free(m->key);
    free(m->val);
    m->key = nk;
    m->val = nv;
    m->cap = cap;
    return 0;
}

/* m[k] += w (inserting k). Returns 0 or -1 on allocation failure. */
static int cmap_add(cmap *m, int32_t k, double w)
{
    int64_t s = cmap_find(m, k);
    if (s >= 0) {
        m->val[s] += w;
        return 0;
    }
    if (2 * ((uint64_t)m->n + 1) > m->cap && cmap_rehash(m, m->cap ? 2 * m->cap : 4))
        return -1;
    uint32_t mask = m->cap - 1, t = cmap_hash(k, mask);
    while (m->key[t] >= 0)
        t = (t + 1) & mask;
    m->key[t] = k;
    m->val[t] = w;
    m->n++;
    return 0;
}

/* Remove k; returns its value (0 when absent). */
static double cmap_remove(cmap *m, int32_t k)
{
    int64_t s0 = cmap_find(m, k);
    if (s0 < 0)
        return 0.0;
    uint32_t mask = m->cap - 1, hole = (uint32_t)s0;
    double v = m->val[hole];
    m->key[hole] = -1;
    m->n--;
    for (uint32_t s = (hole + 1) & mask; m->key[s] >= 0; s = (s + 1) & mask) {
        uint32_t home = cmap_hash(m->key[s], mask);
        /* move s into the hole when its home is not cyclically in (hole, s] */
        int move = hole <= s ? (home <= hole || home > s) : (home <= hole && home > s);
        if (move) {
            m->key[hole] = m->key[s];
            m->val[hole] = m->val[s];
            m->key[s] = -1;
            hole = s;
        }
    }
    return v;
}

/* ---- heap of candidate merges ------------------------------------------------------------- */

typedef struct {
    double dh;
    int32_t a, b;   /* a < b */
    uint32_t va, vb; /* versions of a and b when computed */
} merge_ent;

/* Order: most negative dh first, then lowest a, then lowest b. */
static int ent_less(const merge_ent *x, const merge_ent *y)
{
    if (x->dh != y->dh)
        return x->dh < y->dh;
    if (x->a != y->a)
        return x->a < y->a;
    return x->b < y->b;
}

typedef struct {
    merge_ent *e;
    int64_t n, cap;
} mheap;

static int mheap_push(mheap *h, merge_ent x)
{
    if (h->n == h->cap && mem_grow((void **)&h->e, &h->cap, h->n + 1, sizeof(merge_ent)))
        return -1;
    int64_t i = h->n++;
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!ent_less(&x, &h->e[p]))
            break;
        h->e[i] = h->e[p];
        i = p;
    }
    h->e[i] = x;
    return 0;
}

static merge_ent mheap_pop(mheap *h)
{
    merge_ent top = h->e[0], x = h->e[--h->n];
    int64_t i = 0;
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, m = i;
        const merge_ent *best = &x;
        if (l < h->n && ent_less(&h->e[l], best)) {
            m = l;
            best = &h->e[l];
        }
        if (r < h->n && ent_less(&h->e[r], best))
            m = r;
        if (m == i)
            break;
        h->e[i] = h->e[m];
        i = m;
    }
    if (h->n > 0)
        h->e[i] = x;
    return top;
}

/* ---- greedy merge ------------------------------------------------------------------------- */

double se_part_delta_merge(double vol, double Va, double ga, double Vb, double gb, double wab)
{
    double Vm = Va + Vb, gm = ga + gb - 2 * wab;
    double d = (Va / vol) * log2(Vm / Va) + (Vb / vol) * log2(Vm / Vb);
    if (gm > 0)
        d -= (gm / vol) * log2(Vm / vol);
    if (ga > 0)
        d += (ga / vol) * log2(Va / vol);
    if (gb > 0)
        d += (gb / vol) * log2(Vb / vol);
    return d;
}

typedef struct {
    int32_t K;
    double vol;
    double *V, *g;
    cmap *map;
    uint32_t *ver;
    uint8_t *alive;
    int32_t *parent, *first;
    mheap heap;
} greedy_state;

static int push_pair(greedy_state *s, int32_t x, int32_t y, double w)
{
    int32_t a = x < y ? x : y, b = x < y ? y : x;
    merge_ent e = {se_part_delta_merge(s->vol, s->V[a], s->g[a], s->V[b], s->g[b], w), a, b, s->ver[a], s->ver[b]};
    return mheap_push(&s->heap, e);
}

static int32_t find_root(int32_t *parent, int32_t c)
{
    int32_t r = c;
    while (parent[r] != r)
        r = parent[r];
    while (parent[c] != r) {
        int32_t nx = parent[c];
        parent[c] = r;
        c = nx;
    }
    return r;
}

/* Rebuild the heap from the live pairs (drops stale entries). */
static int heap_rebuild(greedy_state *s)
{
    s->heap.n = 0;
    for (int32_t a = 0; a < s->K; a++) {
        if (!s->alive[a])
            continue;
        cmap *m = &s->map[a];
        for (uint32_t t = 0; t < m->cap; t++)
            if (m->key[t] > a && push_pair(s, a, m->key[t], m->val[t]))
                return -1;
    }
    return 0;
}

int se_part_greedy(const se_graph *gr, int32_t *comm, int32_t *n_comm, se_merge_fn on_merge, void *user,
                   int64_t *n_merges)
{
    if (n_merges)
        *n_merges = 0;
    if (!gr || !n_comm || *n_comm < 0 || (gr->n > 0 && !comm))
        return err_set(COCHLEA_EINVAL, "se_part_greedy: bad arguments");
    int32_t K = *n_comm;
    for (int64_t i = 0; i < gr->n; i++)
        if (comm[i] < 0 || comm[i] >= K)
            return err_set(COCHLEA_EINVAL, "se_part_greedy: vertex %lld has community %d outside [0, %d)",
                           (long long)i, comm[i], K);
    greedy_state s;
    memset(&s, 0, sizeof s);
    s.K = K;
    s.vol = gr->vol;
    size_t kk = (size_t)(K > 0 ? K : 1);
    s.V = calloc(kk, sizeof(double));
    s.g = calloc(kk, sizeof(double));
    s.map = calloc(kk, sizeof(cmap));
    s.ver = calloc(kk, sizeof(uint32_t));
    s.alive = calloc(kk, 1);
    s.parent = malloc(kk * sizeof(int32_t));
    s.first = malloc(kk * sizeof(int32_t));
    int rc = COCHLEA_OK;
    int64_t merges = 0;
    if (!s.V || !s.g || !s.map || !s.ver || !s.alive || !s.parent || !s.first)
        goto nomem;
    for (int32_t a = 0; a < K; a++) {
        s.parent[a] = a;
        s.first[a] = a;
    }
    for (int64_t i = 0; i < gr->n; i++) {
        int32_t a = comm[i];
        s.alive[a] = 1;
        s.V[a] += gr->deg[i];
        for (int64_t p = gr->row[i]; p < gr->row[i + 1]; p++) {
            int32_t b = comm[gr->col[p]];
            if (b != a && cmap_add(&s.map[a], b, gr->w[p]))
                goto nomem;
        }
    }
    for (int32_t a = 0; a < K; a++) {
        double c = 0;
        for (uint32_t t = 0; t < s.map[a].cap; t++)
            if (s.map[a].key[t] >= 0)
                c += s.map[a].val[t];
        s.g[a] = c;
    }
    if (s.vol > 0 && heap_rebuild(&s))
        goto nomem;
    int64_t check_at = 2 * s.heap.n + 4096;
    while (s.heap.n > 0) {
        merge_ent e = mheap_pop(&s.heap);
        if (!s.alive[e.a] || !s.alive[e.b] || s.ver[e.a] != e.va || s.ver[e.b] != e.vb)
            continue;
        if (!(e.dh < 0))
            break;
        int32_t keep = s.map[e.a].n >= s.map[e.b].n ? e.a : e.b, die = keep == e.a ? e.b : e.a;
        double wab = cmap_remove(&s.map[keep], die);
        s.V[keep] = s.V[e.a] + s.V[e.b];
        double gm = s.g[e.a] + s.g[e.b] - 2 * wab;
        s.g[keep] = gm > 0 ? gm : 0.0;
        cmap *md = &s.map[die];
        for (uint32_t t = 0; t < md->cap; t++) {
            int32_t c = md->key[t];
            if (c < 0 || c == keep)
                continue;
            cmap_remove(&s.map[c], die);
            if (cmap_add(&s.map[c], keep, md->val[t]) || cmap_add(&s.map[keep], c, md->val[t]))
                goto nomem;
        }
        cmap_free(md);
        s.alive[die] = 0;
        s.parent[die] = keep;
        if (s.first[die] < s.first[keep])
            s.first[keep] = s.first[die];
        s.ver[keep]++;
        merges++;
        if (on_merge)
            on_merge(user, keep, die, e.dh);
        cmap *mk = &s.map[keep];
        for (uint32_t t = 0; t < mk->cap; t++)
            if (mk->key[t] >= 0 && push_pair(&s, keep, mk->key[t], mk->val[t]))
                goto nomem;
        if (s.heap.n > check_at) {
            int64_t live = 0;
            for (int32_t a = 0; a < K; a++)
                live += s.alive[a] ? s.map[a].n : 0;
            if (s.heap.n > live + 4096 && heap_rebuild(&s))
                goto nomem;
            check_at = 2 * s.heap.n + 4096;
        }
    }
    /* renumber: roots with members, ordered by the lowest initial id they contain */
    {
        int32_t *newid = s.first; /* reuse: first[t] == t marks the root whose lowest id is t */
        uint8_t *has = calloc(kk, 1);
        if (!has)
            goto nomem;
        for (int64_t i = 0; i < gr->n; i++)
            has[find_root(s.parent, comm[i])] = 1;
        int32_t *rootid = malloc(kk * sizeof(int32_t));
        if (!rootid) {
            free(has);
            goto nomem;
        }
        int32_t nk = 0;
        for (int32_t t = 0; t < K; t++) {
            int32_t r = find_root(s.parent, t);
            if (has[r] && newid[r] == t)
                rootid[r] = nk++;
        }
        for (int64_t i = 0; i < gr->n; i++)
            comm[i] = rootid[find_root(s.parent, comm[i])];
        *n_comm = nk;
        free(has);
        free(rootid);
    }
    goto done;
nomem:
    rc = err_set(COCHLEA_ENOMEM, "se_part_greedy: out of memory (%d communities)", K);
done:
    if (s.map)
        for (int32_t a = 0; a < K; a++)
            cmap_free(&s.map[a]);
    free(s.V);
    free(s.g);
    free(s.map);
    free(s.ver);
    free(s.alive);
    free(s.parent);
    free(s.first);
    free(s.heap.e);
    if (n_merges)
        *n_merges = merges;
    return rc;
}

int se_part_flat(const se_graph *g, int32_t *comm, int32_t *n_comm)
{
    if (!g || !n_comm || g->n > INT32_MAX)
        return err_set(COCHLEA_EINVAL, "se_part_flat: bad arguments");
    for (int64_t i = 0; i < g->n; i++)
        comm[i] = (int32_t)i;
    *n_comm = (int32_t)g->n;
    return se_part_greedy(g, comm, n_comm, NULL, NULL, NULL);
}

/* ---- hierarchical ------------------------------------------------------------------------- */

int se_part_hier(const se_graph *g, int64_t group_n, int32_t *comm, int32_t *n_comm, se_part_info *info)
{
    if (info)
        memset(info, 0, sizeof *info);
    if (!g || !n_comm || group_n < 1 || g->n > INT32_MAX || (g->n > 0 && !comm))
        return err_set(COCHLEA_EINVAL, "se_part_hier: bad arguments (group size %lld)", (long long)group_n);
    int64_t n = g->n;
    *n_comm = 0;
    if (n == 0)
        return COCHLEA_OK;
    size_t nn = (size_t)n;
    int32_t *verts = malloc(nn * sizeof(int32_t)), *nverts = malloc(nn * sizeof(int32_t));
    int64_t *cs = malloc((nn + 1) * sizeof(int64_t)), *ncs = malloc((nn + 1) * sizeof(int64_t));
    int32_t *lcomm = malloc(nn * sizeof(int32_t)), *map = malloc(nn * sizeof(int32_t));
    int64_t *off = malloc((nn + 1) * sizeof(int64_t));
    int rc = COCHLEA_OK;
    if (!verts || !nverts || !cs || !ncs || !lcomm || !map || !off) {
        rc = err_set(COCHLEA_ENOMEM, "se_part_hier: out of memory (%lld vertices)", (long long)n);
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        verts[i] = (int32_t)i;
        cs[i] = i;
        map[i] = -1;
    }
    cs[n] = n;
    int64_t K = n, gn = group_n, merges = 0;
    int passes = 0;
    for (;;) {
        passes++;
        int64_t ngroups = K / gn + (K % gn != 0), nk = 0;
        int changed = 0;
        for (int64_t gi = 0; gi < ngroups; gi++) {
            int64_t c0 = gi * gn, c1 = c0 + gn < K ? c0 + gn : K;
            int64_t vb = cs[c0], nv = cs[c1] - vb;
            se_graph sub;
            rc = se_graph_induced(g, verts + vb, nv, map, &sub);
            if (rc)
                goto done;
            for (int64_t c = c0; c < c1; c++)
                for (int64_t t = cs[c]; t < cs[c + 1]; t++)
                    lcomm[t - vb] = (int32_t)(c - c0);
            int32_t kk = (int32_t)(c1 - c0);
            int64_t nm = 0;
            rc = se_part_greedy(&sub, lcomm, &kk, NULL, NULL, &nm);
            se_graph_free(&sub);
            if (rc)
                goto done;
            merges += nm;
            if (kk < c1 - c0)
                changed = 1;
            /* stable counting sort of the group's vertices by their new community */
            for (int32_t c = 0; c <= kk; c++)
                off[c] = 0;
            for (int64_t t = 0; t < nv; t++)
                off[lcomm[t] + 1]++;
            for (int32_t c = 0; c < kk; c++) {
                off[c + 1] += off[c];
                ncs[nk + c] = vb + off[c];
            }
            for (int64_t t = 0; t < nv; t++)
                nverts[vb + off[lcomm[t]]++] = verts[vb + t];
            nk += kk;
        }
        ncs[nk] = n;
        int32_t *tv = verts;
        verts = nverts;
        nverts = tv;
        int64_t *tc = cs;
        cs = ncs;
        ncs = tc;
        K = nk;
        if (ngroups == 1)
            break;
        if (!changed)
            gn = gn > INT64_MAX / 2 ? INT64_MAX : 2 * gn;
    }
    for (int64_t c = 0; c < K; c++)
        for (int64_t t = cs[c]; t < cs[c + 1]; t++)
            comm[verts[t]] = (int32_t)c;
    *n_comm = (int32_t)K;
    if (info) {
        info->passes = passes;
        info->merges = merges;
        info->final_n = gn;
    }
done:
    free(verts);
    free(nverts);
    free(cs);
    free(ncs);
    free(lcomm);
    free(map);
    free(off);
    return rc;
}
