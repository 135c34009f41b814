/* se_graph.c - kNN cosine graph, 1-D/2-D structural entropy, stable-point k (secodec.md §2.1-§2.2). */
#include "se_graph.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gemm.h"

double se_dot(const float *a, const float *b, int64_t d)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t t = 0;
    for (; t + 4 <= d; t += 4) {
        s0 += (double)a[t] * (double)b[t];
        s1 += (double)a[t + 1] * (double)b[t + 1];
        s2 += (double)a[t + 2] * (double)b[t + 2];
        s3 += (double)a[t + 3] * (double)b[t + 3];
    }
    for (; t < d; t++)
        s0 += (double)a[t] * (double)b[t];
    return (s0 + s1) + (s2 + s3);
}

int se_normalize_rows(const float *x, int64_t n, int64_t d, int64_t ldx, float *out)
{
    if (n < 0 || d < 1 || ldx < d || (n > 0 && (!x || !out)))
        return err_set(COCHLEA_EINVAL, "se_normalize_rows: bad arguments (n=%lld d=%lld ldx=%lld)", (long long)n,
                       (long long)d, (long long)ldx);
    for (int64_t i = 0; i < n; i++) {
        const float *r = x + i * ldx;
        double ss = 0;
        for (int64_t t = 0; t < d; t++) {
            if (!isfinite(r[t]))
                return err_set(COCHLEA_EINVAL, "feature row %lld, element %lld is not finite", (long long)i,
                               (long long)t);
            ss += (double)r[t] * (double)r[t];
        }
        double inv = ss > 0 ? 1.0 / sqrt(ss) : 0.0;
        float *o = out + i * d;
        for (int64_t t = 0; t < d; t++)
            o[t] = (float)((double)r[t] * inv);
    }
    return COCHLEA_OK;
}

/* ---- top-k search ------------------------------------------------------------------------- */

typedef struct {
    double v;
    int32_t j;
} cand_d;

/* Ranking order: similarity descending, then index ascending. */
static int cand_d_cmp(const void *pa, const void *pb)
{
    const cand_d *a = pa, *b = pb;
    if (a->v > b->v)
        return -1;
    if (a->v < b->v)
        return 1;
    return (a->j > b->j) - (a->j < b->j);
}

typedef struct {
    const float *S; /* [rows, nb] float similarities of this block */
    const float *q, *base;
    int64_t nb, d, row0, nrows, self0;
    int k, kc;
    int32_t *idx;
    double *sim;
    float *hv;      /* [nth * kc] heap values */
    int32_t *hj;    /* [nth * kc] heap indices */
    cand_d *cd;     /* [nth * kc] */
} topk_task;

static void heap_sift_down(float *hv, int32_t *hj, int n, int i)
{
    /* min-heap on value: the root is the weakest candidate kept (lowest value; the higher index
     * among equal values, which never arises in an index-ascending scan except by equality). */
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && (hv[l] < hv[m] || (hv[l] == hv[m] && hj[l] > hj[m])))
            m = l;
        if (r < n && (hv[r] < hv[m] || (hv[r] == hv[m] && hj[r] > hj[m])))
            m = r;
        if (m == i)
            return;
        float tv = hv[i];
        hv[i] = hv[m];
        hv[m] = tv;
        int32_t tj = hj[i];
        hj[i] = hj[m];
        hj[m] = tj;
        i = m;
    }
}

static void heap_sift_up(float *hv, int32_t *hj, int i)
{
    while (i > 0) {
        int p = (i - 1) / 2;
        if (hv[i] < hv[p] || (hv[i] == hv[p] && hj[i] > hj[p])) {
            float tv = hv[i];
            hv[i] = hv[p];
            hv[p] = tv;
            int32_t tj = hj[i];
            hj[i] = hj[p];
            hj[p] = tj;
            i = p;
        } else {
            return;
        }
    }
}

static void topk_run(void *arg, int ith, int nth)
{
    topk_task *t = arg;
    int64_t b, e;
    pool_split(t->nrows, ith, nth, &b, &e);
    float *hv = t->hv + (size_t)ith * t->kc;
    int32_t *hj = t->hj + (size_t)ith * t->kc;
    cand_d *cd = t->cd + (size_t)ith * t->kc;
    for (int64_t r = b; r < e; r++) {
        int64_t qi = t->row0 + r;
        int64_t excl = t->self0 >= 0 ? t->self0 + qi : -1;
        const float *s = t->S + r * t->nb;
        int n = 0;
        for (int64_t j = 0; j < t->nb; j++) {
            if (j == excl)
                continue;
            float v = s[j];
            if (n < t->kc) {
                hv[n] = v;
                hj[n] = (int32_t)j;
                heap_sift_up(hv, hj, n);
                n++;
            } else if (v > hv[0]) {
                hv[0] = v;
                hj[0] = (int32_t)j;
                heap_sift_down(hv, hj, n, 0);
            }
        }
        const float *qr = t->q + qi * t->d;
        for (int c = 0; c < n; c++) {
            cd[c].j = hj[c];
            cd[c].v = se_dot(qr, t->base + (int64_t)hj[c] * t->d, t->d);
        }
        qsort(cd, (size_t)n, sizeof *cd, cand_d_cmp);
        int32_t *oi = t->idx + qi * t->k;
        double *os = t->sim + qi * t->k;
        for (int c = 0; c < t->k; c++) {
            oi[c] = c < n ? cd[c].j : -1;
            os[c] = c < n ? cd[c].v : 0.0;
        }
    }
}

int se_topk(cochlea_ctx *ctx, const float *q, int64_t nq, const float *base, int64_t nb, int64_t d, int k,
            int64_t self0, int32_t *idx, double *sim)
{
    if (!ctx || nq < 0 || nb < 0 || d < 1 || k < 1 || (nq > 0 && (!q || !idx || !sim)) || (nb > 0 && !base) ||
        nb > INT32_MAX || (self0 >= 0 && self0 + nq > nb))
        return err_set(COCHLEA_EINVAL, "se_topk: bad arguments (nq=%lld nb=%lld d=%lld k=%d)", (long long)nq,
                       (long long)nb, (long long)d, k);
    if (nq == 0)
        return COCHLEA_OK;
    int64_t avail = nb - (self0 >= 0 ? 1 : 0);
    int64_t kc64 = (int64_t)k + 8 + k / 8;
    if (kc64 > avail)
        kc64 = avail;
    int kc = (int)kc64;
    if (kc <= 0) {
        for (int64_t i = 0; i < nq * (int64_t)k; i++) {
            idx[i] = -1;
            sim[i] = 0.0;
        }
        return COCHLEA_OK;
    }
    int64_t rows = SE_GEMM_SCRATCH / nb;
    if (rows < 1)
        rows = 1;
    if (rows > nq)
        rows = nq;
    int nth = ctx->pool ? pool_size(ctx->pool) : 1;
    size_t ns, nh;
    if (size_mul((size_t)rows, (size_t)nb, &ns) || size_mul((size_t)nth, (size_t)kc, &nh) ||
        ns > SIZE_MAX / sizeof(float))
        return err_set(COCHLEA_ERANGE, "se_topk: scratch size overflows");
    float *S = malloc(ns * sizeof(float));
    float *hv = malloc(nh * sizeof(float));
    int32_t *hj = malloc(nh * sizeof(int32_t));
    cand_d *cd = malloc(nh * sizeof(cand_d));
    int rc = COCHLEA_OK;
    if (!S || !hv || !hj || !cd) {
        rc = err_set(COCHLEA_ENOMEM, "se_topk: out of memory (%zu floats of scratch)", ns);
        goto done;
    }
    for (int64_t r0 = 0; r0 < nq; r0 += rows) {
        int64_t m = nq - r0 < rows ? nq - r0 : rows;
        rc = gemm_f32(ctx, 0, 1, m, nb, d, 1.0f, q + r0 * d, d, base, d, 0.0f, S, nb);
        if (rc)
            goto done;
        topk_task t = {S, q, base, nb, d, r0, m, self0, k, kc, idx, sim, hv, hj, cd};
        if (ctx->pool && nth > 1 && m > 1)
            pool_run(ctx->pool, topk_run, &t);
        else
            topk_run(&t, 0, 1);
    }
done:
    free(S);
    free(hv);
    free(hj);
    free(cd);
    return rc;
}

int se_knn_build(cochlea_ctx *ctx, const float *xn, int64_t n, int64_t d, int k_max, se_knn *out)
{
    memset(out, 0, sizeof *out);
    if (n < 1 || n > INT32_MAX || k_max < 1)
        return err_set(COCHLEA_EINVAL, "se_knn_build: bad arguments (n=%lld k_max=%d)", (long long)n, k_max);
    if (k_max > n - 1)
        k_max = n - 1 > 0 ? (int)(n - 1) : 1;
    size_t tot;
    if (size_mul((size_t)n, (size_t)k_max, &tot) || tot > SIZE_MAX / sizeof(double))
        return err_set(COCHLEA_ERANGE, "se_knn_build: %lld x %d lists overflow", (long long)n, k_max);
    out->idx = malloc(tot * sizeof(int32_t));
    out->sim = malloc(tot * sizeof(double));
    if (!out->idx || !out->sim) {
        se_knn_free(out);
        return err_set(COCHLEA_ENOMEM, "se_knn_build: out of memory");
    }
    out->n = n;
    out->k_max = k_max;
    int rc = se_topk(ctx, xn, n, xn, n, d, k_max, 0, out->idx, out->sim);
    if (rc)
        se_knn_free(out);
    return rc;
}

void se_knn_free(se_knn *knn)
{
    if (!knn)
        return;
    free(knn->idx);
    free(knn->sim);
    memset(knn, 0, sizeof *knn);
}

/* ---- CSR construction ---------------------------------------------------------------------- */

typedef struct {
    int32_t c;
    double w;
} adj_ent;

static int adj_cmp(const void *pa, const void *pb)
{
    const adj_ent *a = pa, *b = pb;
    return (a->c > b->c) - (a->c < b->c);
}

void se_graph_free(se_graph *g)
{
    if (!g)
        return;
    free(g->row);
    free(g->col);
    free(g->w);
    free(g->deg);
    memset(g, 0, sizeof *g);
}

/* Sort each row of ent (offsets row[]) by column, merge equal columns (sum when add_dups, else
 * keep the first), and store the CSR, degrees and vol in g (which takes row). */
static int csr_finish(int64_t n, int64_t *row, adj_ent *ent, int add_dups, se_graph *g)
{
    memset(g, 0, sizeof *g);
    int64_t nnz = row[n];
    g->col = malloc((size_t)(nnz > 0 ? nnz : 1) * sizeof(int32_t));
    g->w = malloc((size_t)(nnz > 0 ? nnz : 1) * sizeof(double));
    g->deg = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    if (!g->col || !g->w || !g->deg) {
        free(row);
        se_graph_free(g);
        return err_set(COCHLEA_ENOMEM, "se_graph: out of memory (%lld edges)", (long long)nnz);
    }
    int64_t o = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t b = row[i], e = row[i + 1];
        qsort(ent + b, (size_t)(e - b), sizeof *ent, adj_cmp);
        row[i] = o;
        double dsum = 0;
        for (int64_t p = b; p < e; p++) {
            if (o > row[i] && g->col[o - 1] == ent[p].c) {
                if (add_dups) {
                    dsum += ent[p].w;
                    g->w[o - 1] += ent[p].w;
                }
                continue;
            }
            g->col[o] = ent[p].c;
            g->w[o] = ent[p].w;
            dsum += ent[p].w;
            o++;
        }
        g->deg[i] = dsum;
    }
    row[n] = o;
    g->row = row;
    g->n = n;
    g->n_edges = o / 2;
    double vol = 0;
    for (int64_t i = 0; i < n; i++)
        vol += g->deg[i];
    g->vol = vol;
    return COCHLEA_OK;
}

/* Allocate row offsets [n + 1] from per-row counts cnt (replaced by fill cursors) and entries. */
static int csr_alloc(int64_t n, int64_t *cnt, int64_t **row_out, adj_ent **ent_out)
{
    int64_t *row = malloc((size_t)(n + 1) * sizeof(int64_t));
    if (!row)
        return err_set(COCHLEA_ENOMEM, "se_graph: out of memory");
    row[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        row[i + 1] = row[i] + cnt[i];
        cnt[i] = row[i];
    }
    size_t nb;
    if (size_mul((size_t)(row[n] > 0 ? row[n] : 1), sizeof(adj_ent), &nb)) {
        free(row);
        return err_set(COCHLEA_ERANGE, "se_graph: edge list size overflows");
    }
    adj_ent *ent = malloc(nb);
    if (!ent) {
        long long tot = (long long)row[n];
        free(row);
        return err_set(COCHLEA_ENOMEM, "se_graph: out of memory (%lld edge entries)", tot);
    }
    *row_out = row;
    *ent_out = ent;
    return COCHLEA_OK;
}

int se_graph_from_knn(const se_knn *knn, int k, se_graph *g)
{
    memset(g, 0, sizeof *g);
    if (!knn || k < 1 || k > knn->k_max)
        return err_set(COCHLEA_EINVAL, "se_graph_from_knn: k=%d outside 1..%d", k, knn ? knn->k_max : 0);
    int64_t n = knn->n, K = knn->k_max;
    int64_t *cnt = calloc((size_t)n + 1, sizeof(int64_t));
    if (!cnt)
        return err_set(COCHLEA_ENOMEM, "se_graph_from_knn: out of memory");
    for (int64_t i = 0; i < n; i++)
        for (int r = 0; r < k; r++) {
            int32_t j = knn->idx[i * K + r];
            if (j >= 0 && knn->sim[i * K + r] > 0) {
                cnt[i]++;
                cnt[j]++;
            }
        }
    int64_t *row;
    adj_ent *ent;
    int rc = csr_alloc(n, cnt, &row, &ent);
    if (rc) {
        free(cnt);
        return rc;
    }
    for (int64_t i = 0; i < n; i++)
        for (int r = 0; r < k; r++) {
            int32_t j = knn->idx[i * K + r];
            double s = knn->sim[i * K + r];
            if (j >= 0 && s > 0) {
                ent[cnt[i]++] = (adj_ent){j, s};
                ent[cnt[j]++] = (adj_ent){(int32_t)i, s};
            }
        }
    free(cnt);
    rc = csr_finish(n, row, ent, 0, g);
    free(ent);
    return rc;
}

int se_graph_from_edges(int64_t n, int64_t n_e, const int32_t *ei, const int32_t *ej, const double *ew,
                        se_graph *g)
{
    memset(g, 0, sizeof *g);
    if (n < 0 || n > INT32_MAX || n_e < 0 || (n_e > 0 && (!ei || !ej || !ew)))
        return err_set(COCHLEA_EINVAL, "se_graph_from_edges: bad arguments");
    for (int64_t e = 0; e < n_e; e++)
        if (ei[e] < 0 || ej[e] < 0 || ei[e] >= n || ej[e] >= n || ei[e] == ej[e] || !(ew[e] > 0) || !isfinite(ew[e]))
            return err_set(COCHLEA_EINVAL, "se_graph_from_edges: edge %lld (%d, %d, %g) is a self-loop, out of range "
                           "or not positive", (long long)e, ei[e], ej[e], ew[e]);
    int64_t *cnt = calloc((size_t)n + 1, sizeof(int64_t));
    if (!cnt)
        return err_set(COCHLEA_ENOMEM, "se_graph_from_edges: out of memory");
    for (int64_t e = 0; e < n_e; e++) {
        cnt[ei[e]]++;
        cnt[ej[e]]++;
    }
    int64_t *row;
    adj_ent *ent;
    int rc = csr_alloc(n, cnt, &row, &ent);
    if (rc) {
        free(cnt);
        return rc;
    }
    for (int64_t e = 0; e < n_e; e++) {
        ent[cnt[ei[e]]++] = (adj_ent){ej[e], ew[e]};
        ent[cnt[ej[e]]++] = (adj_ent){ei[e], ew[e]};
    }
    free(cnt);
    rc = csr_finish(n, row, ent, 1, g);
    free(ent);
    return rc;
}

int se_graph_induced(const se_graph *g, const int32_t *verts, int64_t nv, int32_t *map, se_graph *out)
{
    memset(out, 0, sizeof *out);
    if (!g || nv < 0 || (nv > 0 && (!verts || !map)))
        return err_set(COCHLEA_EINVAL, "se_graph_induced: bad arguments");
    for (int64_t t = 0; t < nv; t++) {
        if (verts[t] < 0 || verts[t] >= g->n || map[verts[t]] != -1) {
            for (int64_t u = 0; u < t; u++)
                map[verts[u]] = -1;
            return err_set(COCHLEA_EINVAL, "se_graph_induced: vertex %d out of range or repeated", verts[t]);
        }
        map[verts[t]] = (int32_t)t;
    }
    int64_t *cnt = calloc((size_t)nv + 1, sizeof(int64_t));
    int rc = COCHLEA_OK;
    if (!cnt) {
        rc = err_set(COCHLEA_ENOMEM, "se_graph_induced: out of memory");
        goto restore;
    }
    for (int64_t t = 0; t < nv; t++) {
        int32_t v = verts[t];
        for (int64_t p = g->row[v]; p < g->row[v + 1]; p++)
            cnt[t] += map[g->col[p]] >= 0;
    }
    int64_t *row;
    adj_ent *ent;
    rc = csr_alloc(nv, cnt, &row, &ent);
    if (rc) {
        free(cnt);
        goto restore;
    }
    for (int64_t t = 0; t < nv; t++) {
        int32_t v = verts[t];
        for (int64_t p = g->row[v]; p < g->row[v + 1]; p++) {
            int32_t u = map[g->col[p]];
            if (u >= 0)
                ent[cnt[t]++] = (adj_ent){u, g->w[p]};
        }
    }
    free(cnt);
    rc = csr_finish(nv, row, ent, 0, out);
    free(ent);
restore:
    for (int64_t t = 0; t < nv; t++)
        map[verts[t]] = -1;
    return rc;
}

/* ---- structural entropy -------------------------------------------------------------------- */

double se_graph_h1(const se_graph *g)
{
    if (!g || !(g->vol > 0))
        return 0.0;
    double h = 0;
    for (int64_t i = 0; i < g->n; i++) {
        double d = g->deg[i];
        if (d > 0)
            h -= (d / g->vol) * log2(d / g->vol);
    }
    return h;
}

int se_graph_comm_stats(const se_graph *g, const int32_t *comm, int32_t K, double *V, double *cut)
{
    if (!g || !comm || K < 0 || (K > 0 && (!V || !cut)))
        return err_set(COCHLEA_EINVAL, "se_graph_comm_stats: bad arguments");
    for (int32_t a = 0; a < K; a++)
        V[a] = cut[a] = 0;
    for (int64_t i = 0; i < g->n; i++) {
        int32_t a = comm[i];
        if (a < 0 || a >= K)
            return err_set(COCHLEA_EINVAL, "se_graph_comm_stats: vertex %lld has community %d outside [0, %d)",
                           (long long)i, a, K);
        V[a] += g->deg[i];
        for (int64_t p = g->row[i]; p < g->row[i + 1]; p++)
            if (comm[g->col[p]] != a)
                cut[a] += g->w[p];
    }
    return COCHLEA_OK;
}

int se_graph_h2(const se_graph *g, const int32_t *comm, int32_t K, double *out)
{
    *out = 0;
    double *V = malloc((size_t)(K > 0 ? K : 1) * sizeof(double));
    double *cut = malloc((size_t)(K > 0 ? K : 1) * sizeof(double));
    int rc = COCHLEA_OK;
    if (!V || !cut) {
        rc = err_set(COCHLEA_ENOMEM, "se_graph_h2: out of memory");
        goto done;
    }
    rc = se_graph_comm_stats(g, comm, K, V, cut);
    if (rc || !(g->vol > 0))
        goto done;
    double vol = g->vol, h = 0;
    for (int32_t a = 0; a < K; a++)
        if (V[a] > 0 && cut[a] > 0)
            h -= (cut[a] / vol) * log2(V[a] / vol);
    for (int64_t i = 0; i < g->n; i++) {
        double d = g->deg[i];
        if (d > 0)
            h -= (d / vol) * log2(d / V[comm[i]]);
    }
    *out = h;
done:
    free(V);
    free(cut);
    return rc;
}

/* ---- stable-point k ------------------------------------------------------------------------ */

typedef struct {
    int32_t j;
    int32_t r;
} rank_ent;

static int rank_cmp(const void *pa, const void *pb)
{
    const rank_ent *a = pa, *b = pb;
    return (a->j > b->j) - (a->j < b->j);
}

static double xlog2x(double d)
{
    return d > 0 ? d * log2(d) : 0.0;
}

int se_graph_choose_k(const se_knn *knn, int k_max, double *h1, int *k_out, int *found)
{
    if (!knn || !k_out || !found || k_max < 1 || k_max > knn->k_max)
        return err_set(COCHLEA_EINVAL, "se_graph_choose_k: k_max=%d outside 1..%d", k_max, knn ? knn->k_max : 0);
    int64_t n = knn->n, K = knn->k_max;
    size_t tot = (size_t)n * (size_t)K; /* fits: the lists exist */
    rank_ent *rk = malloc((tot ? tot : 1) * sizeof(rank_ent));
    int32_t *rn = calloc((size_t)n, sizeof(int32_t));
    double *deg = calloc((size_t)n, sizeof(double));
    int64_t *stamp = malloc((size_t)n * sizeof(int64_t));
    int32_t *touched = malloc((size_t)n * sizeof(int32_t));
    double *hk = malloc((size_t)k_max * sizeof(double));
    int rc = COCHLEA_OK;
    if (!rk || !rn || !deg || !stamp || !touched || !hk) {
        rc = err_set(COCHLEA_ENOMEM, "se_graph_choose_k: out of memory");
        goto done;
    }
    /* rank of i in j's list, by binary search over j's (index, rank) pairs with positive sim */
    for (int64_t j = 0; j < n; j++) {
        rank_ent *e = rk + j * K;
        int32_t c = 0;
        for (int r = 0; r < k_max; r++)
            if (knn->idx[j * K + r] >= 0 && knn->sim[j * K + r] > 0)
                e[c++] = (rank_ent){knn->idx[j * K + r], r};
        qsort(e, (size_t)c, sizeof *e, rank_cmp);
        rn[j] = c;
        stamp[j] = -1;
    }
    double vol = 0, S = 0; /* S = sum_i d_i log2 d_i */
    for (int r = 0; r < k_max; r++) {
        int64_t nt = 0;
        for (int64_t i = 0; i < n; i++) {
            int32_t j = knn->idx[i * K + r];
            double w = knn->sim[i * K + r];
            if (j < 0 || !(w > 0))
                continue;
            rank_ent key = {(int32_t)i, 0};
            const rank_ent *f = bsearch(&key, rk + (int64_t)j * K, (size_t)rn[j], sizeof key, rank_cmp);
            int32_t rj = f ? f->r : INT32_MAX;
            if (rj < r || (rj == r && j < i))
                continue; /* the edge is already there, or j adds it in this step */
            int32_t ends[2] = {(int32_t)i, j};
            for (int e = 0; e < 2; e++) {
                int32_t v = ends[e];
                if (stamp[v] != r) {
                    stamp[v] = r;
                    touched[nt++] = v;
                    S -= xlog2x(deg[v]);
                }
                deg[v] += w;
            }
            vol += 2 * w;
        }
        for (int64_t t = 0; t < nt; t++)
            S += xlog2x(deg[touched[t]]);
        hk[r] = vol > 0 ? log2(vol) - S / vol : 0.0;
    }
    int best = -1;
    for (int r = 1; r + 1 < k_max; r++)
        if (hk[r] < hk[r - 1] && hk[r] < hk[r + 1] && (best < 0 || hk[r] < hk[best]))
            best = r;
    if (best >= 0) {
        *k_out = best + 1;
        *found = 1;
    } else {
        int64_t kf = (n * 10 + 999) / 1000; /* ceil(n / 1000 * 10) */
        if (kf < 1)
            kf = 1;
        if (kf > k_max)
            kf = k_max;
        *k_out = (int)kf;
        *found = 0;
    }
    if (h1)
        memcpy(h1, hk, (size_t)k_max * sizeof(double));
done:
    free(rk);
    free(rn);
    free(deg);
    free(stamp);
    free(touched);
    free(hk);
    return rc;
}
