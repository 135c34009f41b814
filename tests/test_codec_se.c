/* test_codec_se.c - structural-entropy graph, 2-D SE minimisation, SE codebooks and quantiser
 * (codec/se_graph.c, codec/se_part.c, codec/se_codebook.c; secodec.md §2, §8).
 *
 * Without arguments it runs the Check suite. `test_codec_se bench [N] [D]` times the build of one
 * level on clustered random data (default N = 10000, D = 1024) and prints the level's stats. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/se_codebook.h"
#include "codec/se_graph.h"
#include "codec/se_part.h"
#include "ctx.h"
#include "error.h"
#include "gguf.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static cochlea_ctx *make_ctx(int threads)
{
    cochlea_ctx *c = NULL;
    ck_assert_int_eq(ctx_create(threads, COCHLEA_PRECISION_F32, &c), 0);
    return c;
}

static double rng_gauss(test_rng *r)
{
    double u1 = ((test_rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double u2 = ((test_rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* A dense symmetric weight matrix for brute-force checks. */
typedef struct {
    int n;
    double *w; /* [n * n], zero diagonal */
} dense;

/* Random weighted graph: each pair is an edge with probability p (weights in (0.05, 1]); with
 * planted > 0, vertices are in `planted` blocks and cross-block edges are rarer and lighter.
 * Some vertices may stay isolated. */
static dense dense_random(test_rng *r, int n, double p, int planted)
{
    dense g = {n, calloc((size_t)n * n, sizeof(double))};
    ck_assert_ptr_nonnull(g.w);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            /* planted > 0: interleaved blocks (i mod planted); planted < 0: -planted contiguous
             * blocks in vertex order */
            int same = planted > 0   ? (i % planted) == (j % planted)
                       : planted < 0 ? (i * -planted / n) == (j * -planted / n)
                                     : 1;
            double pp = same ? p : p * 0.08;
            if (test_rng_uniform(r, 0, 1) < pp) {
                double w = same ? test_rng_uniform(r, 0.05f, 1.0f) : test_rng_uniform(r, 0.05f, 0.3f);
                g.w[i * n + j] = g.w[j * n + i] = w;
            }
        }
    return g;
}

static se_graph dense_to_graph(const dense *d)
{
    int64_t ne = 0;
    int32_t *ei = malloc(sizeof(int32_t) * (size_t)d->n * d->n + 4);
    int32_t *ej = malloc(sizeof(int32_t) * (size_t)d->n * d->n + 4);
    double *ew = malloc(sizeof(double) * (size_t)d->n * d->n + 8);
    for (int i = 0; i < d->n; i++)
        for (int j = i + 1; j < d->n; j++)
            if (d->w[i * d->n + j] > 0) {
                ei[ne] = i;
                ej[ne] = j;
                ew[ne++] = d->w[i * d->n + j];
            }
    se_graph g;
    ck_assert_int_eq(se_graph_from_edges(d->n, ne, ei, ej, ew, &g), 0);
    free(ei);
    free(ej);
    free(ew);
    return g;
}

/* Brute-force 2-D SE (§2.1) of partition comm on a dense graph, from scratch. */
static double brute_h2(const dense *d, const int32_t *comm)
{
    int n = d->n;
    double *deg = calloc((size_t)n, sizeof(double)), vol = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++)
            deg[i] += d->w[i * n + j];
        vol += deg[i];
    }
    double h = 0;
    for (int a = 0; a < n + 1; a++) { /* community ids are < n + 1 in these tests */
        double V = 0, cut = 0;
        int any = 0;
        for (int i = 0; i < n; i++) {
            if (comm[i] != a)
                continue;
            any = 1;
            V += deg[i];
            for (int j = 0; j < n; j++)
                if (comm[j] != a)
                    cut += d->w[i * n + j];
        }
        if (!any || V <= 0)
            continue;
        if (cut > 0)
            h -= (cut / vol) * log2(V / vol);
        for (int i = 0; i < n; i++)
            if (comm[i] == a && deg[i] > 0)
                h -= (deg[i] / vol) * log2(deg[i] / V);
    }
    free(deg);
    return h;
}

/* Volume, cut of community a and weight between a and b, brute force. */
static void brute_comm(const dense *d, const int32_t *comm, int a, int b, double *Va, double *ga, double *wab)
{
    int n = d->n;
    *Va = *ga = *wab = 0;
    for (int i = 0; i < n; i++) {
        if (comm[i] != a)
            continue;
        for (int j = 0; j < n; j++) {
            double w = d->w[i * n + j];
            *Va += w;
            if (comm[j] != a)
                *ga += w;
            if (comm[j] == b)
                *wab += w;
        }
    }
}

/* Gaussian mixture: C centres of norm `radius` in D dims, points = centre + sigma * N(0, I). */
static float *gmm(test_rng *r, int C, int D, int n, float radius, float sigma, const float *centres, int *label)
{
    float *x = test_alloc((size_t)n * D);
    for (int i = 0; i < n; i++) {
        int c = (int)(test_rng_next(r) % (uint64_t)C);
        label[i] = c;
        for (int j = 0; j < D; j++)
            x[i * D + j] = centres[c * D + j] + sigma * (float)rng_gauss(r);
    }
    (void)radius;
    return x;
}

static float *gmm_centres(test_rng *r, int C, int D, float radius)
{
    float *c = test_alloc((size_t)C * D);
    for (int k = 0; k < C; k++) {
        double ss = 0;
        for (int j = 0; j < D; j++) {
            c[k * D + j] = (float)rng_gauss(r);
            ss += (double)c[k * D + j] * c[k * D + j];
        }
        for (int j = 0; j < D; j++)
            c[k * D + j] = (float)(c[k * D + j] * radius / sqrt(ss));
    }
    return c;
}

/* ---- Delta formulas against brute force ----------------------------------------------------- */

START_TEST(test_delta_merge_bruteforce)
{
    test_rng r = {101};
    int checked = 0, zero_w = 0;
    for (int trial = 0; trial < 40; trial++) {
        int n = test_rng_int(&r, 8, 24), K = test_rng_int(&r, 2, 6);
        dense d = dense_random(&r, n, test_rng_uniform(&r, 0.1f, 0.6f), 0);
        int32_t *comm = malloc(sizeof(int32_t) * n), *merged = malloc(sizeof(int32_t) * n);
        for (int i = 0; i < n; i++)
            comm[i] = test_rng_int(&r, 0, K - 1);
        double vol = 0;
        for (int i = 0; i < n * n; i++)
            vol += d.w[i];
        if (vol <= 0) {
            free(d.w), free(comm), free(merged);
            continue;
        }
        double h0 = brute_h2(&d, comm);
        for (int a = 0; a < K; a++)
            for (int b = a + 1; b < K; b++) {
                double Va, ga, wab, Vb, gb, wba;
                brute_comm(&d, comm, a, b, &Va, &ga, &wab);
                brute_comm(&d, comm, b, a, &Vb, &gb, &wba);
                if (Va <= 0 || Vb <= 0)
                    continue;
                for (int i = 0; i < n; i++)
                    merged[i] = comm[i] == b ? a : comm[i];
                double want = brute_h2(&d, merged) - h0;
                double got = se_part_delta_merge(vol, Va, ga, Vb, gb, wab);
                ck_assert_msg(fabs(got - want) <= 1e-9, "trial %d merge %d+%d: delta %.15g, brute force %.15g", trial,
                              a, b, got, want);
                if (wab == 0) {
                    /* §2.3 useful fact: non-adjacent communities never lower 2-D SE */
                    ck_assert_msg(got >= -1e-15, "w_ab = 0 but delta %.3g < 0", got);
                    double closed = ((Va - ga) / vol) * log2((Va + Vb) / Va) + ((Vb - gb) / vol) * log2((Va + Vb) / Vb);
                    ck_assert_msg(fabs(closed - got) <= 1e-12, "closed form %.15g vs %.15g", closed, got);
                    zero_w++;
                }
                checked++;
            }
        free(d.w);
        free(comm);
        free(merged);
    }
    ck_assert_int_gt(checked, 200);
    ck_assert_int_gt(zero_w, 5);
}
END_TEST

START_TEST(test_delta_select_bruteforce)
{
    test_rng r = {202};
    int checked = 0, zero_a = 0;
    for (int trial = 0; trial < 40; trial++) {
        int n = test_rng_int(&r, 8, 20), K = test_rng_int(&r, 2, 5);
        dense g = dense_random(&r, n, test_rng_uniform(&r, 0.2f, 0.6f), 0);
        /* G' = G plus node x = vertex n, linked to a random subset */
        dense gp = {n + 1, calloc((size_t)(n + 1) * (n + 1), sizeof(double))};
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                gp.w[i * (n + 1) + j] = g.w[i * n + j];
        double dx = 0;
        for (int j = 0; j < n; j++)
            if (test_rng_uniform(&r, 0, 1) < 0.3f) {
                double w = test_rng_uniform(&r, 0.01f, 1.0f);
                gp.w[n * (n + 1) + j] = gp.w[j * (n + 1) + n] = w;
                dx += w;
            }
        int32_t *comm = malloc(sizeof(int32_t) * (n + 1));
        for (int i = 0; i < n; i++)
            comm[i] = test_rng_int(&r, 0, K - 1);
        double vol = 0;
        for (int i = 0; i < n * n; i++)
            vol += g.w[i];
        if (dx <= 0 || vol <= 0) {
            free(g.w), free(gp.w), free(comm);
            continue;
        }
        comm[n] = K; /* x alone */
        double h_alone = brute_h2(&gp, comm);
        for (int a = 0; a < K; a++) {
            double V, cut, dummy;
            brute_comm(&g, comm, a, -1, &V, &cut, &dummy);
            double aa = 0;
            for (int j = 0; j < n; j++)
                if (comm[j] == a)
                    aa += gp.w[n * (n + 1) + j];
            if (V + aa <= 0)
                continue;
            comm[n] = a;
            double want = brute_h2(&gp, comm) - h_alone;
            comm[n] = K;
            double got = se_delta_select(vol, V, cut, dx, aa);
            ck_assert_msg(fabs(got - want) <= 1e-9, "trial %d join %d: delta %.15g, brute force %.15g", trial, a, got,
                          want);
            if (aa == 0) {
                double vp = vol + 2 * dx;
                double closed = ((V - cut) / vp) * log2((V + dx) / V);
                ck_assert_msg(got >= -1e-15 && fabs(got - closed) <= 1e-12, "a = 0: delta %.15g, closed form %.15g",
                              got, closed);
                zero_a++;
            }
            checked++;
        }
        free(g.w);
        free(gp.w);
        free(comm);
    }
    ck_assert_int_gt(checked, 80);
    ck_assert_int_gt(zero_a, 3);
}
END_TEST

/* ---- greedy minimisation ------------------------------------------------------------------ */

typedef struct {
    const dense *d;
    int32_t *comm;
    double h;
    int merges;
    int bad;
    char msg[200];
} merge_watch;

static void on_merge(void *user, int32_t keep, int32_t die, double delta)
{
    merge_watch *m = user;
    for (int i = 0; i < m->d->n; i++)
        if (m->comm[i] == die)
            m->comm[i] = keep;
    double h = brute_h2(m->d, m->comm);
    if (!m->bad && (!(delta < 0) || fabs((h - m->h) - delta) > 1e-9 || h > m->h)) {
        m->bad = 1;
        snprintf(m->msg, sizeof m->msg, "merge %d (%d <- %d): delta %.15g, H2 %.15g -> %.15g", m->merges, keep, die,
                 delta, m->h, h);
    }
    m->h = h;
    m->merges++;
}

/* Every pair of distinct final communities has Delta-H >= 0 on the whole graph. */
static void assert_local_min(const dense *d, const int32_t *comm, int K)
{
    double vol = 0;
    for (int i = 0; i < d->n * d->n; i++)
        vol += d->w[i];
    for (int a = 0; a < K; a++)
        for (int b = a + 1; b < K; b++) {
            double Va, ga, wab, Vb, gb, wba;
            brute_comm(d, comm, a, b, &Va, &ga, &wab);
            brute_comm(d, comm, b, a, &Vb, &gb, &wba);
            if (Va <= 0 || Vb <= 0)
                continue;
            double dh = se_part_delta_merge(vol, Va, ga, Vb, gb, wab);
            ck_assert_msg(dh >= -1e-12, "communities %d and %d could still merge (delta %.3g)", a, b, dh);
        }
}

START_TEST(test_greedy_monotone)
{
    test_rng r = {303};
    for (int trial = 0; trial < 12; trial++) {
        int n = test_rng_int(&r, 20, 48);
        dense d = dense_random(&r, n, 0.5, test_rng_int(&r, 2, 5));
        se_graph g = dense_to_graph(&d);
        int32_t *comm = malloc(sizeof(int32_t) * n), *mine = malloc(sizeof(int32_t) * n);
        for (int i = 0; i < n; i++)
            comm[i] = mine[i] = i;
        merge_watch w = {&d, mine, brute_h2(&d, mine), 0, 0, ""};
        int32_t K = n;
        int64_t nm = -1;
        ck_assert_int_eq(se_part_greedy(&g, comm, &K, on_merge, &w, &nm), 0);
        ck_assert_msg(!w.bad, "trial %d: %s", trial, w.msg);
        ck_assert_int_gt(w.merges, 0);
        ck_assert_int_eq(nm, w.merges);
        ck_assert_int_eq(K, n - w.merges);
        /* the returned partition is the one the merges describe, renumbered */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                ck_assert_int_eq(comm[i] == comm[j], mine[i] == mine[j]);
        /* renumbering: ids in order of the lowest vertex */
        int32_t next = 0;
        for (int i = 0; i < n; i++) {
            ck_assert_int_le(comm[i], next);
            if (comm[i] == next)
                next++;
        }
        double h;
        ck_assert_int_eq(se_graph_h2(&g, comm, K, &h), 0);
        ck_assert_msg(fabs(h - w.h) < 1e-9, "H2 %.15g vs tracked %.15g", h, w.h);
        assert_local_min(&d, comm, K);
        se_graph_free(&g);
        free(d.w);
        free(comm);
        free(mine);
    }
}
END_TEST

START_TEST(test_greedy_from_partition)
{
    /* two triangles joined by a light edge, start from {0,1},{2},{3,4,5}: 2 merges expected */
    int32_t ei[] = {0, 0, 1, 3, 3, 4, 2}, ej[] = {1, 2, 2, 4, 5, 5, 3};
    double ew[] = {1, 1, 1, 1, 1, 1, 0.1};
    se_graph g;
    ck_assert_int_eq(se_graph_from_edges(6, 7, ei, ej, ew, &g), 0);
    ck_assert_int_eq(g.n_edges, 7);
    ck_assert(fabs(g.vol - 12.2) < 1e-12);
    int32_t comm[6] = {2, 2, 0, 3, 3, 3}; /* id 1 unused */
    int32_t K = 4;
    ck_assert_int_eq(se_part_greedy(&g, comm, &K, NULL, NULL, NULL), 0);
    ck_assert_int_eq(K, 2);
    int32_t want[6] = {0, 0, 0, 1, 1, 1};
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(comm[i], want[i]);
    /* bad ids are refused */
    comm[0] = 7;
    K = 2;
    ck_assert_int_eq(se_part_greedy(&g, comm, &K, NULL, NULL, NULL), COCHLEA_EINVAL);
    se_graph_free(&g);
}
END_TEST

START_TEST(test_hier_vs_flat)
{
    test_rng r = {404};
    for (int trial = 0; trial < 8; trial++) {
        int n = test_rng_int(&r, 30, 64), blocks = test_rng_int(&r, 2, 5);
        dense d = dense_random(&r, n, 0.45, trial % 2 ? -blocks : blocks);
        se_graph g = dense_to_graph(&d);
        int32_t *cf = malloc(sizeof(int32_t) * n), *ch = malloc(sizeof(int32_t) * n);
        int32_t Kf, Kh;
        ck_assert_int_eq(se_part_flat(&g, cf, &Kf), 0);
        /* n >= N: one group from singletons, exactly the flat run */
        se_part_info info;
        ck_assert_int_eq(se_part_hier(&g, n + test_rng_int(&r, 0, 5), ch, &Kh, &info), 0);
        ck_assert_int_eq(info.passes, 1);
        ck_assert_int_eq(Kh, Kf);
        for (int i = 0; i < n; i++)
            ck_assert_int_eq(ch[i], cf[i]);
        /* smaller groups: several passes; the last pass runs on the whole graph, so the result is
         * a local minimum there. Its H2 is close to the flat one, within 25% (merges made inside
         * small groups cannot be undone later; measured 0-18% above flat on these graphs, for
         * interleaved and for contiguous blocks alike) */
        double hf, hh;
        ck_assert_int_eq(se_graph_h2(&g, cf, Kf, &hf), 0);
        for (int pass = 0; pass < 2; pass++) {
            int gn = pass == 0 ? (n + 1) / 2 : 4;
            ck_assert_int_eq(se_part_hier(&g, gn, ch, &Kh, &info), 0);
            ck_assert_int_gt(info.passes, 1);
            assert_local_min(&d, ch, Kh);
            ck_assert_int_eq(se_graph_h2(&g, ch, Kh, &hh), 0);
            ck_assert_msg(fabs(hh - hf) <= 0.25 * hf, "trial %d, n %d: hierarchical H2 %.6g, "
                          "flat %.6g", trial, gn, hh, hf);
            ck_assert_msg(hh < se_graph_h1(&g), "H2 %.6g not below H1 %.6g", hh, se_graph_h1(&g));
        }
        se_graph_free(&g);
        free(d.w);
        free(cf);
        free(ch);
    }
}
END_TEST

/* ---- graph construction ------------------------------------------------------------------- */

START_TEST(test_knn_bruteforce)
{
    test_rng r = {505};
    int n = 60, D = 12, K = 20;
    float *x = test_alloc((size_t)n * D), *xn = test_alloc((size_t)n * D);
    test_fill(&r, x, (size_t)n * D, -1, 1);
    /* rows 7, 20 and 41 are the same point: equal similarities, lower index first */
    memcpy(x + 20 * D, x + 7 * D, sizeof(float) * D);
    memcpy(x + 41 * D, x + 7 * D, sizeof(float) * D);
    /* a row scaled: the same direction */
    for (int j = 0; j < D; j++)
        x[33 * D + j] = 3.0f * x[7 * D + j];
    ck_assert_int_eq(se_normalize_rows(x, n, D, D, xn), 0);
    for (int t = 1; t <= 2; t++) {
        cochlea_ctx *ctx = make_ctx(t);
        se_knn knn;
        ck_assert_int_eq(se_knn_build(ctx, xn, n, D, K, &knn), 0);
        ck_assert_int_eq(knn.k_max, K);
        for (int i = 0; i < n; i++) {
            /* brute force: every other node by (sim desc, index asc) */
            double s[64];
            int order[64], m = 0;
            for (int j = 0; j < n; j++) {
                if (j == i)
                    continue;
                double acc = 0;
                for (int q = 0; q < D; q++)
                    acc += (double)xn[i * D + q] * xn[j * D + q];
                s[j] = acc;
                int p = m++;
                while (p > 0 && (s[order[p - 1]] < acc - 1e-12)) {
                    order[p] = order[p - 1];
                    p--;
                }
                order[p] = j;
            }
            for (int q = 0; q < K; q++) {
                ck_assert_msg(knn.idx[i * K + q] == order[q], "node %d rank %d: %d, brute force %d", i, q,
                              knn.idx[i * K + q], order[q]);
                ck_assert(fabs(knn.sim[i * K + q] - s[order[q]]) < 1e-12);
            }
        }
        /* the tie group: 7, 20 and 41 are equal (similarity exactly 1 in double), 33 nearly so
         * (scaled, then rounded by the normalisation); equal ones come lower index first */
        int pos20 = -1, pos33 = -1, pos41 = -1;
        for (int q = 0; q < 3; q++) {
            int32_t j = knn.idx[7 * K + q];
            pos20 = j == 20 ? q : pos20;
            pos33 = j == 33 ? q : pos33;
            pos41 = j == 41 ? q : pos41;
        }
        ck_assert(pos20 >= 0 && pos33 >= 0 && pos41 >= 0 && pos20 < pos41);
        ck_assert(knn.sim[7 * K + pos20] == knn.sim[7 * K + pos41] && fabs(knn.sim[7 * K + pos20] - 1) < 1e-6);
        int p7 = -1, p20 = -1;
        for (int q = 0; q < 3; q++) {
            p7 = knn.idx[41 * K + q] == 7 ? q : p7;
            p20 = knn.idx[41 * K + q] == 20 ? q : p20;
        }
        ck_assert(p7 >= 0 && p20 > p7);
        /* the graph at k = 5: symmetric, positive, sorted, degrees and vol consistent */
        se_graph g;
        ck_assert_int_eq(se_graph_from_knn(&knn, 5, &g), 0);
        double vol = 0;
        int64_t nnz = 0;
        for (int i = 0; i < n; i++) {
            double deg = 0;
            for (int64_t p = g.row[i]; p < g.row[i + 1]; p++) {
                int32_t j = g.col[p];
                ck_assert(g.w[p] > 0);
                ck_assert_int_ne(j, i);
                if (p > g.row[i])
                    ck_assert_int_lt(g.col[p - 1], j);
                /* edge present iff j in i's top 5 or i in j's top 5, with sim > 0 */
                deg += g.w[p];
                int found = 0;
                for (int64_t q = g.row[j]; q < g.row[j + 1]; q++)
                    if (g.col[q] == i) {
                        found = 1;
                        ck_assert(g.w[q] == g.w[p]);
                    }
                ck_assert(found);
            }
            nnz += g.row[i + 1] - g.row[i];
            ck_assert(fabs(deg - g.deg[i]) < 1e-12);
            vol += deg;
            for (int j = 0; j < n; j++) {
                if (j == i)
                    continue;
                int want = 0;
                for (int q = 0; q < 5; q++)
                    want |= (knn.idx[i * K + q] == j && knn.sim[i * K + q] > 0) ||
                            (knn.idx[j * K + q] == i && knn.sim[j * K + q] > 0);
                int have = 0;
                for (int64_t p = g.row[i]; p < g.row[i + 1]; p++)
                    have |= g.col[p] == j;
                ck_assert_int_eq(have, want);
            }
        }
        ck_assert(fabs(vol - g.vol) < 1e-9);
        ck_assert_int_eq(g.n_edges * 2, nnz);
        se_graph_free(&g);
        se_knn_free(&knn);
        ctx_free(ctx);
    }
    free(x);
    free(xn);
}
END_TEST

START_TEST(test_stable_k)
{
    test_rng r = {606};
    int C = 6, D = 16, n = 300, kmax = 40;
    float *cent = gmm_centres(&r, C, D, 4.0f);
    int *lab = malloc(sizeof(int) * n);
    float *x = gmm(&r, C, D, n, 4.0f, 0.6f, cent, lab);
    float *xn = test_alloc((size_t)n * D);
    ck_assert_int_eq(se_normalize_rows(x, n, D, D, xn), 0);
    cochlea_ctx *ctx = make_ctx(2);
    se_knn knn;
    ck_assert_int_eq(se_knn_build(ctx, xn, n, D, kmax, &knn), 0);
    double h1[40];
    int k, found;
    ck_assert_int_eq(se_graph_choose_k(&knn, kmax, h1, &k, &found), 0);
    for (int kk = 1; kk <= kmax; kk++) {
        se_graph g;
        ck_assert_int_eq(se_graph_from_knn(&knn, kk, &g), 0);
        double want = se_graph_h1(&g);
        ck_assert_msg(fabs(h1[kk - 1] - want) <= 1e-9 * (1 + want), "k=%d: incremental H1 %.15g, recomputed %.15g",
                      kk, h1[kk - 1], want);
        se_graph_free(&g);
    }
    /* the rule, recomputed from the brute-force values */
    int best = -1;
    for (int i = 1; i + 1 < kmax; i++)
        if (h1[i] < h1[i - 1] && h1[i] < h1[i + 1] && (best < 0 || h1[i] < h1[best]))
            best = i;
    if (best >= 0) {
        ck_assert_int_eq(found, 1);
        ck_assert_int_eq(k, best + 1);
    } else {
        ck_assert_int_eq(found, 0);
        ck_assert_int_eq(k, 3); /* ceil(300 / 1000 * 10) */
    }
    /* no interior k: the fallback ceil(N/100) clamped to k_max */
    ck_assert_int_eq(se_graph_choose_k(&knn, 2, h1, &k, &found), 0);
    ck_assert_int_eq(found, 0);
    ck_assert_int_eq(k, 2);
    /* a ladder of known H1 values: the stable point with the lowest H1 wins */
    {
        /* path graphs are hard to steer; instead check the rule on the computed curve of a
         * second data set with more structure */
        se_knn k2;
        float *x2 = test_alloc((size_t)n * D);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < D; j++)
                x2[i * D + j] = cent[(i % C) * D + j] + 0.05f * (float)rng_gauss(&r);
        ck_assert_int_eq(se_normalize_rows(x2, n, D, D, x2), 0);
        ck_assert_int_eq(se_knn_build(ctx, x2, n, D, 80, &k2), 0);
        double h2v[80];
        ck_assert_int_eq(se_graph_choose_k(&k2, 80, h2v, &k, &found), 0);
        int b2 = -1;
        for (int i = 1; i + 1 < 80; i++)
            if (h2v[i] < h2v[i - 1] && h2v[i] < h2v[i + 1] && (b2 < 0 || h2v[i] < h2v[b2]))
                b2 = i;
        ck_assert_int_eq(found, b2 >= 0);
        if (b2 >= 0)
            ck_assert_int_eq(k, b2 + 1);
        se_knn_free(&k2);
        free(x2);
    }
    se_knn_free(&knn);
    ctx_free(ctx);
    free(cent);
    free(lab);
    free(x);
    free(xn);
}
END_TEST

START_TEST(test_induced)
{
    int32_t ei[] = {0, 1, 2, 3, 0}, ej[] = {1, 2, 3, 4, 4};
    double ew[] = {1, 2, 3, 4, 5};
    se_graph g, s;
    ck_assert_int_eq(se_graph_from_edges(5, 5, ei, ej, ew, &g), 0);
    int32_t map[5] = {-1, -1, -1, -1, -1};
    int32_t verts[3] = {4, 0, 2}; /* local 0 = 4, 1 = 0, 2 = 2 */
    ck_assert_int_eq(se_graph_induced(&g, verts, 3, map, &s), 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(map[i], -1);
    ck_assert_int_eq(s.n, 3);
    ck_assert_int_eq(s.n_edges, 1); /* only 0-4 (weight 5) */
    ck_assert(s.deg[0] == 5 && s.deg[1] == 5 && s.deg[2] == 0);
    ck_assert(s.vol == 10);
    ck_assert_int_eq(s.col[s.row[0]], 1);
    se_graph_free(&s);
    int32_t dup[2] = {1, 1};
    ck_assert_int_eq(se_graph_induced(&g, dup, 2, map, &s), COCHLEA_EINVAL);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(map[i], -1);
    /* 1-D and 2-D SE by hand: degrees 6, 3, 5, 7, 9; vol 30 */
    double d[5] = {6, 3, 5, 7, 9}, h = 0;
    for (int i = 0; i < 5; i++)
        h -= d[i] / 30 * log2(d[i] / 30);
    ck_assert(fabs(se_graph_h1(&g) - h) < 1e-14);
    int32_t comm[5] = {0, 0, 1, 1, 1}; /* V = 9, 21; cut = 2 + 5 = 7 each */
    double want = -(7.0 / 30) * log2(9.0 / 30) - (7.0 / 30) * log2(21.0 / 30) - (6.0 / 30) * log2(6.0 / 9) -
                  (3.0 / 30) * log2(3.0 / 9) - (5.0 / 30) * log2(5.0 / 21) - (7.0 / 30) * log2(7.0 / 21) -
                  (9.0 / 30) * log2(9.0 / 21);
    ck_assert_int_eq(se_graph_h2(&g, comm, 2, &h), 0);
    ck_assert(fabs(h - want) < 1e-14);
    se_graph_free(&g);
    /* self-loops and non-positive weights are refused */
    int32_t a[1] = {2}, b[1] = {2};
    double w1[1] = {1};
    ck_assert_int_eq(se_graph_from_edges(3, 1, a, b, w1, &g), COCHLEA_EINVAL);
}
END_TEST

START_TEST(test_sampling)
{
    int64_t s1[100], s2[100], s3[100];
    ck_assert_int_eq(se_sample_indices(1000, 100, 7, s1), 0);
    ck_assert_int_eq(se_sample_indices(1000, 100, 7, s2), 0);
    ck_assert_int_eq(se_sample_indices(1000, 100, 8, s3), 0);
    int same = 1, diff = 0;
    for (int i = 0; i < 100; i++) {
        ck_assert(s1[i] >= 0 && s1[i] < 1000);
        if (i > 0)
            ck_assert(s1[i] > s1[i - 1]); /* distinct and ascending */
        same &= s1[i] == s2[i];
        diff += s1[i] != s3[i];
    }
    ck_assert(same);
    ck_assert_int_gt(diff, 50);
    ck_assert_int_eq(se_sample_indices(50, 100, 7, s1), 0);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(s1[i], i);
    /* uniformity: each of 20 items drawn 5 at a time, 4000 seeds: about 1000 hits each */
    int hits[20] = {0};
    for (uint64_t seed = 0; seed < 4000; seed++) {
        int64_t s[5];
        ck_assert_int_eq(se_sample_indices(20, 5, seed, s), 0);
        for (int i = 0; i < 5; i++)
            hits[s[i]]++;
    }
    for (int i = 0; i < 20; i++)
        ck_assert_msg(hits[i] > 850 && hits[i] < 1150, "item %d drawn %d times of 20000 (expected 1000)", i, hits[i]);
}
END_TEST

/* ---- codebooks ------------------------------------------------------------------------------ */

#define GM_C 12
#define GM_D 32
#define GM_N 2000

typedef struct {
    float *cent, *x, *held;
    int lab[GM_N], hlab[400];
} gm_data;

static void gm_make(gm_data *g)
{
    test_rng r = {777};
    g->cent = gmm_centres(&r, GM_C, GM_D, 10.0f);
    g->x = gmm(&r, GM_C, GM_D, GM_N, 10.0f, 0.5f, g->cent, g->lab);
    g->held = gmm(&r, GM_C, GM_D, 400, 10.0f, 0.5f, g->cent, g->hlab);
}

static void gm_free(gm_data *g)
{
    free(g->cent);
    free(g->x);
    free(g->held);
}

/* Majority true label of each community; returns purity. */
static double purity(const int32_t *comm, const int *lab, int n, int K, int *major)
{
    int *cnt = calloc((size_t)K * GM_C, sizeof(int));
    for (int i = 0; i < n; i++)
        cnt[comm[i] * GM_C + lab[i]]++;
    int tot = 0;
    for (int c = 0; c < K; c++) {
        int b = 0;
        for (int l = 1; l < GM_C; l++)
            if (cnt[c * GM_C + l] > cnt[c * GM_C + b])
                b = l;
        major[c] = b;
        tot += cnt[c * GM_C + b];
    }
    free(cnt);
    return (double)tot / n;
}

static se_codebook *gm_build(cochlea_ctx *ctx, const gm_data *g, int levels, se_level_stats *st)
{
    se_build_params p = se_build_default_params();
    p.n_levels = levels;
    p.n_nodes = GM_N;
    se_codebook *cb = NULL;
    int rc = se_codebook_build(ctx, g->x, GM_N, GM_D, &p, &cb, st);
    ck_assert_msg(rc == 0, "build: %s", cochlea_last_error());
    return cb;
}

START_TEST(test_gmm_codebook)
{
    gm_data g;
    gm_make(&g);
    cochlea_ctx *ctx = make_ctx(2);
    se_level_stats st;
    se_codebook *cb = gm_build(ctx, &g, 1, &st);
    const se_level *lv = &cb->levels[0];
    ck_assert_int_eq(lv->n_nodes, GM_N);
    ck_assert_int_eq(st.K, lv->K);
    ck_assert_msg(lv->K >= GM_C && lv->K <= 4 * GM_C, "K = %d for %d clusters (k %d)", lv->K, GM_C, lv->k);
    int major[4 * GM_C];
    double pur = purity(lv->community, g.lab, GM_N, lv->K, major);
    ck_assert_msg(pur >= 0.95, "purity %.4f (K %d, k %d)", pur, lv->K, lv->k);
    /* every true cluster is the majority of some community */
    for (int l = 0; l < GM_C; l++) {
        int any = 0;
        for (int c = 0; c < lv->K; c++)
            any |= major[c] == l;
        ck_assert_msg(any, "cluster %d not recovered", l);
    }
    /* stats and stored graph data are consistent */
    ck_assert(st.h2 < st.h1 && st.h2 > 0);
    ck_assert_int_ge(st.size_min, 2);
    ck_assert_int_le(st.size_min, st.size_median);
    ck_assert_int_le(st.size_median, st.size_max);
    double sv = 0;
    for (int c = 0; c < lv->K; c++) {
        sv += lv->comm_volume[c];
        ck_assert(lv->comm_cut[c] <= lv->comm_volume[c] + 1e-9);
    }
    ck_assert(fabs(sv - lv->vol) < 1e-9 * lv->vol);
    /* ids numbered by lowest member node */
    int32_t next = 0;
    for (int i = 0; i < GM_N; i++) {
        ck_assert_int_le(lv->community[i], next);
        if (lv->community[i] == next)
            next++;
    }
    /* centroids: mean of the members' original features */
    double *acc = calloc((size_t)lv->K * GM_D, sizeof(double));
    int *cnt = calloc((size_t)lv->K, sizeof(int));
    for (int i = 0; i < GM_N; i++) {
        cnt[lv->community[i]]++;
        for (int j = 0; j < GM_D; j++)
            acc[lv->community[i] * GM_D + j] += g.x[i * GM_D + j];
    }
    for (int c = 0; c < lv->K; c++)
        for (int j = 0; j < GM_D; j++)
            ck_assert(fabs(acc[c * GM_D + j] / cnt[c] - lv->centroids[c * GM_D + j]) < 1e-5);
    free(acc);
    free(cnt);
    /* held-out points: the SE rule gives a token of the right cluster */
    int32_t tok[400], tokn[400];
    int64_t nfb = -1;
    ck_assert_int_eq(se_level_quantize(ctx, lv, GM_D, cb->fallback, 0, g.held, 400, GM_D, tok, &nfb), 0);
    ck_assert_int_eq(se_level_quantize(ctx, lv, GM_D, cb->fallback, 1, g.held, 400, GM_D, tokn, NULL), 0);
    int right = 0, rightn = 0;
    for (int i = 0; i < 400; i++) {
        ck_assert(tok[i] >= 0 && tok[i] < lv->K);
        right += major[tok[i]] == g.hlab[i];
        rightn += major[tokn[i]] == g.hlab[i];
    }
    ck_assert_msg(right >= 396, "SE rule: %d of 400 held-out points in their cluster (fallbacks %lld)", right,
                  (long long)nfb);
    ck_assert_msg(rightn >= 396, "nearest: %d of 400", rightn);
    ck_assert_int_lt(nfb, 40);
    /* a stored node queried again lands in its own community (its top neighbours are its own) */
    int32_t t0;
    ck_assert_int_eq(se_level_quantize(ctx, lv, GM_D, cb->fallback, 0, g.x, 1, GM_D, &t0, NULL), 0);
    ck_assert_int_eq(major[t0], g.lab[0]);
    se_codebook_free(cb);
    ctx_free(ctx);
    gm_free(&g);
}
END_TEST

START_TEST(test_quantize_rule)
{
    /* a hand-made level: the SE rule agrees with an argmin of se_delta_select computed here, the
     * fallbacks behave as documented and results do not depend on the thread count */
    test_rng r = {909};
    int D = 8, N = 40, K = 4, T = 300;
    float *nodes = test_alloc((size_t)N * D), *cent = test_alloc((size_t)K * D), *x = test_alloc((size_t)T * D);
    int32_t comm[40];
    double V[4], cut[4];
    test_fill(&r, nodes, (size_t)N * D, -1, 1);
    ck_assert_int_eq(se_normalize_rows(nodes, N, D, D, nodes), 0);
    test_fill(&r, cent, (size_t)K * D, -1, 1);
    test_fill(&r, x, (size_t)T * D, -1, 1);
    for (int i = 0; i < N; i++)
        comm[i] = i % K;
    for (int c = 0; c < K; c++) {
        V[c] = 5 + c;
        cut[c] = 1 + 0.5 * c;
    }
    memset(x, 0, sizeof(float) * D); /* frame 0: zero vector, no positive neighbour */
    se_level lv;
    memset(&lv, 0, sizeof lv);
    lv.K = K;
    lv.centroids = cent;
    lv.n_nodes = N;
    lv.nodes = nodes;
    lv.community = comm;
    lv.k = 6;
    lv.vol = 26 + 0.0;
    lv.comm_volume = V;
    lv.comm_cut = cut;
    cochlea_ctx *c1 = make_ctx(1), *c3 = make_ctx(3);
    int32_t *t1 = malloc(sizeof(int32_t) * T), *t3 = malloc(sizeof(int32_t) * T), *tm = malloc(sizeof(int32_t) * T);
    int64_t f1, f3, fm;
    ck_assert_int_eq(se_level_quantize(c1, &lv, D, SE_FALLBACK_NEAREST_CENTROID, 0, x, T, D, t1, &f1), 0);
    ck_assert_int_eq(se_level_quantize(c3, &lv, D, SE_FALLBACK_NEAREST_CENTROID, 0, x, T, D, t3, &f3), 0);
    ck_assert_int_eq(se_level_quantize(c3, &lv, D, SE_FALLBACK_MIN_DELTA, 0, x, T, D, tm, &fm), 0);
    ck_assert_int_eq(f1, f3);
    int n_se = 0, n_fb = 0;
    float xn[8];
    for (int t = 0; t < T; t++) {
        ck_assert_int_eq(t1[t], t3[t]);
        /* reference: brute-force neighbours and Delta */
        ck_assert_int_eq(se_normalize_rows(x + t * D, 1, D, D, xn), 0);
        double s[40];
        int used[40] = {0};
        double dx = 0, a[4] = {0};
        for (int j = 0; j < N; j++)
            s[j] = se_dot(xn, nodes + j * D, D);
        for (int q = 0; q < lv.k; q++) {
            int b = -1;
            for (int j = 0; j < N; j++)
                if (!used[j] && (b < 0 || s[j] > s[b]))
                    b = j;
            used[b] = 1;
            if (s[b] > 0) {
                dx += s[b];
                a[comm[b]] += s[b];
            }
        }
        int bc = -1;
        double bd = INFINITY;
        for (int c = 0; c < K; c++)
            if (a[c] > 0) {
                double d = se_delta_select(lv.vol, V[c], cut[c], dx, a[c]);
                if (d < bd)
                    bd = d, bc = c;
            }
        int nearest = 0;
        double nd = INFINITY;
        for (int c = 0; c < K; c++) {
            double d = 0;
            for (int j = 0; j < D; j++)
                d += ((double)x[t * D + j] - cent[c * D + j]) * ((double)x[t * D + j] - cent[c * D + j]);
            if (d < nd)
                nd = d, nearest = c;
        }
        if (bc >= 0 && bd < 0) {
            ck_assert_int_eq(t1[t], bc);
            ck_assert_int_eq(tm[t], bc);
            n_se++;
        } else {
            ck_assert_int_eq(t1[t], nearest);
            ck_assert_int_eq(tm[t], bc >= 0 ? bc : nearest);
            n_fb++;
        }
    }
    ck_assert_int_eq(n_fb, f1);
    ck_assert_int_gt(n_se, 50);
    ck_assert_int_gt(n_fb, 0); /* frame 0 at least */
    ck_assert_int_eq(t1[0], 0 == 0 ? t1[0] : -1);
    /* nearest mode over the whole block equals the exact nearest centroid */
    ck_assert_int_eq(se_level_quantize(c3, &lv, D, SE_FALLBACK_NEAREST_CENTROID, 1, x, T, D, tm, NULL), 0);
    for (int t = 0; t < T; t++) {
        int nearest = 0;
        double nd = INFINITY;
        for (int c = 0; c < K; c++) {
            double d = 0;
            for (int j = 0; j < D; j++)
                d += ((double)x[t * D + j] - cent[c * D + j]) * ((double)x[t * D + j] - cent[c * D + j]);
            if (d < nd)
                nd = d, nearest = c;
        }
        ck_assert_int_eq(tm[t], nearest);
    }
    /* ties: two equal centroids -> the lower id */
    memcpy(cent + 3 * D, cent + 1 * D, sizeof(float) * D);
    memcpy(x + 5 * D, cent + 1 * D, sizeof(float) * D);
    ck_assert_int_eq(se_level_quantize(c1, &lv, D, SE_FALLBACK_NEAREST_CENTROID, 1, x + 5 * D, 1, D, tm, NULL), 0);
    ck_assert_int_eq(tm[0], 1);
    /* NaN input is refused */
    x[7] = NAN;
    ck_assert_int_eq(se_level_quantize(c1, &lv, D, SE_FALLBACK_NEAREST_CENTROID, 0, x, T, D, tm, NULL),
                     COCHLEA_EINVAL);
    ck_assert_int_eq(se_level_quantize(c1, &lv, D, SE_FALLBACK_NEAREST_CENTROID, 1, x, T, D, tm, NULL),
                     COCHLEA_EINVAL);
    ctx_free(c1);
    ctx_free(c3);
    free(nodes);
    free(cent);
    free(x);
    free(t1);
    free(t3);
    free(tm);
}
END_TEST

START_TEST(test_multilevel)
{
    /* wide clusters so that residuals carry structure for later levels */
    test_rng r = {888};
    int C = 8, D = 16, M = 800, L = 3;
    float *cent = gmm_centres(&r, C, D, 6.0f);
    int *lab = malloc(sizeof(int) * M);
    float *x = gmm(&r, C, D, M, 6.0f, 1.0f, cent, lab);
    cochlea_ctx *ctx = make_ctx(2);
    se_build_params p = se_build_default_params();
    p.n_levels = L;
    p.n_nodes = 500; /* M > N: sampled */
    p.k = 10;
    se_level_stats st[3];
    se_codebook *cb = NULL;
    int rc = se_codebook_build(ctx, x, M, D, &p, &cb, st);
    ck_assert_msg(rc == 0, "%s", cochlea_last_error());
    ck_assert_int_eq(cb->n_levels, L);
    double var = 0;
    for (int i = 0; i < M * D; i++)
        var += (double)x[i] * x[i];
    var /= (double)M * D;
    ck_assert_msg(st[0].mse < var && st[1].mse < st[0].mse && st[2].mse < st[1].mse,
                  "build residual MSE %.4g -> %.4g -> %.4g -> %.4g", var, st[0].mse, st[1].mse, st[2].mse);
    for (int l = 0; l < L; l++) {
        ck_assert_int_eq(st[l].n_nodes, 500);
        ck_assert_int_eq(st[l].k, 10);
        ck_assert_int_eq(cb->levels[l].k, 10);
    }
    /* encode/decode: error falls level by level; decode = sum of the chosen centroids */
    int32_t *tok = malloc(sizeof(int32_t) * M * L);
    float *y = test_alloc((size_t)M * D);
    ck_assert_int_eq(se_codebook_encode(ctx, cb, x, M, L, 0, tok), 0);
    double prev = var;
    for (int nl = 1; nl <= L; nl++) {
        int32_t *t2 = malloc(sizeof(int32_t) * M * nl);
        ck_assert_int_eq(se_codebook_encode(ctx, cb, x, M, nl, 0, t2), 0);
        for (int i = 0; i < M; i++)
            for (int l = 0; l < nl; l++)
                ck_assert_int_eq(t2[i * nl + l], tok[i * L + l]); /* prefix property */
        ck_assert_int_eq(se_codebook_decode(cb, t2, M, nl, y), 0);
        double e = 0;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < D; j++) {
                float s = 0;
                for (int l = 0; l < nl; l++)
                    s += cb->levels[l].centroids[t2[i * nl + l] * D + j];
                ck_assert(y[i * D + j] == s);
                double d = (double)x[i * D + j] - y[i * D + j];
                e += d * d;
            }
        e /= (double)M * D;
        ck_assert_msg(e < prev, "levels %d: error %.5g, previous %.5g", nl, e, prev);
        ck_assert(fabs(e - st[nl - 1].mse) < 1e-4 * (1 + e)); /* same tokens as the build's pass */
        prev = e;
        free(t2);
    }
    tok[5 * L + 1] = cb->levels[1].K;
    ck_assert_int_eq(se_codebook_decode(cb, tok, M, L, y), COCHLEA_ERANGE);
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "frame 5, level 1"));
    ck_assert_int_eq(se_codebook_encode(ctx, cb, x, M, L + 1, 0, tok), COCHLEA_EINVAL);
    se_codebook_free(cb);
    ctx_free(ctx);
    free(cent);
    free(lab);
    free(x);
    free(tok);
    free(y);
}
END_TEST

static void assert_codebooks_equal(const se_codebook *a, const se_codebook *b, int graph)
{
    ck_assert_int_eq(a->n_levels, b->n_levels);
    ck_assert_int_eq(a->dim, b->dim);
    ck_assert_int_eq(a->quantizer, b->quantizer);
    ck_assert_int_eq(a->fallback, b->fallback);
    int64_t D = a->dim;
    for (int l = 0; l < a->n_levels; l++) {
        const se_level *x = &a->levels[l], *y = &b->levels[l];
        ck_assert_int_eq(x->K, y->K);
        ck_assert(memcmp(x->centroids, y->centroids, sizeof(float) * x->K * D) == 0);
        if (!graph)
            continue;
        ck_assert_int_eq(x->n_nodes, y->n_nodes);
        ck_assert_int_eq(x->k, y->k);
        ck_assert(x->vol == y->vol);
        ck_assert(memcmp(x->nodes, y->nodes, sizeof(float) * x->n_nodes * D) == 0);
        ck_assert(memcmp(x->community, y->community, sizeof(int32_t) * x->n_nodes) == 0);
        ck_assert(memcmp(x->comm_volume, y->comm_volume, sizeof(double) * x->K) == 0);
        ck_assert(memcmp(x->comm_cut, y->comm_cut, sizeof(double) * x->K) == 0);
    }
}

START_TEST(test_deterministic)
{
    gm_data g;
    gm_make(&g);
    cochlea_ctx *c1 = make_ctx(1), *c2 = make_ctx(2);
    se_build_params p = se_build_default_params();
    p.n_levels = 2;
    p.n_nodes = 700; /* sampled from 2000 rows */
    p.k = 0;
    p.k_max = 40;
    se_codebook *a = NULL, *b = NULL, *c = NULL;
    ck_assert_int_eq(se_codebook_build(c1, g.x, GM_N, GM_D, &p, &a, NULL), 0);
    ck_assert_int_eq(se_codebook_build(c2, g.x, GM_N, GM_D, &p, &b, NULL), 0);
    assert_codebooks_equal(a, b, 1);
    p.seed++;
    ck_assert_int_eq(se_codebook_build(c2, g.x, GM_N, GM_D, &p, &c, NULL), 0);
    int differs = c->levels[0].K != a->levels[0].K ||
                  memcmp(c->levels[0].nodes, a->levels[0].nodes, sizeof(float) * 700 * GM_D) != 0;
    ck_assert(differs);
    int32_t t1[400 * 2], t2[400 * 2];
    ck_assert_int_eq(se_codebook_encode(c1, a, g.held, 400, 2, 0, t1), 0);
    ck_assert_int_eq(se_codebook_encode(c2, a, g.held, 400, 2, 0, t2), 0);
    ck_assert(memcmp(t1, t2, sizeof t1) == 0);
    se_codebook_free(a);
    se_codebook_free(b);
    se_codebook_free(c);
    ctx_free(c1);
    ctx_free(c2);
    gm_free(&g);
}
END_TEST

/* ---- GGUF section ----------------------------------------------------------------------------- */

static gguf_file *roundtrip(gguf_writer *w, void **buf)
{
    size_t size;
    ck_assert_int_eq(gguf_writer_write_memory(w, buf, &size), 0);
    gguf_file *f = NULL;
    ck_assert_int_eq(gguf_open_memory(*buf, size, &f), 0);
    return f;
}

static se_codebook *small_codebook(cochlea_ctx *ctx, const float **xout)
{
    static float *x;
    static int lab[600];
    test_rng r = {4242};
    float *cent = gmm_centres(&r, 5, 8, 5.0f);
    x = gmm(&r, 5, 8, 600, 5.0f, 0.5f, cent, lab);
    free(cent);
    se_build_params p = se_build_default_params();
    p.n_levels = 2;
    p.n_nodes = 400;
    p.k = 8;
    se_codebook *cb = NULL;
    int rc = se_codebook_build(ctx, x, 600, 8, &p, &cb, NULL);
    ck_assert_msg(rc == 0, "%s", cochlea_last_error());
    *xout = x;
    return cb;
}

START_TEST(test_gguf_roundtrip)
{
    cochlea_ctx *ctx = make_ctx(2);
    const float *x;
    se_codebook *cb = small_codebook(ctx, &x);
    cb->meta.has_codebooks_frozen = 1;
    cb->meta.codebooks_frozen = 1;
    cb->meta.training = strdup("synthetic test data");
    gguf_writer *w;
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    ck_assert_int_eq(gguf_writer_set_str(w, "general.architecture", "secodec"), 0);
    ck_assert_int_eq(gguf_writer_set_u32(w, "secodec.dimension", 8), 0);
    ck_assert_int_eq(se_codebook_write(cb, w, COCHLEA_TYPE_F32), 0);
    void *buf;
    gguf_file *f = roundtrip(w, &buf);
    se_codebook *lc = NULL;
    ck_assert_int_eq(se_codebook_load(f, 0, &lc), 0);
    ck_assert_ptr_nonnull(lc);
    assert_codebooks_equal(cb, lc, 1);
    ck_assert_int_eq(lc->meta.group_size_n, 1);
    ck_assert_int_eq(lc->meta.sample_seed, cb->meta.sample_seed);
    ck_assert_str_eq(lc->meta.k_rule, "fixed");
    ck_assert_str_eq(lc->meta.codeword_rule, "centroid");
    ck_assert_str_eq(lc->meta.graph_mode, "frozen");
    ck_assert_str_eq(lc->meta.training, "synthetic test data");
    ck_assert_int_eq(lc->meta.codebooks_frozen, 1);
    ck_assert_int_eq(lc->meta.min_community_size, 2);
    /* same tokens from the loaded codebook */
    int32_t t1[600 * 2], t2[600 * 2];
    ck_assert_int_eq(se_codebook_encode(ctx, cb, x, 600, 2, 0, t1), 0);
    ck_assert_int_eq(se_codebook_encode(ctx, lc, x, 600, 2, 0, t2), 0);
    ck_assert(memcmp(t1, t2, sizeof t1) == 0);
    se_codebook_free(lc);
    gguf_close(f);
    free(buf);
    gguf_writer_free(w);

    /* F16 nodes: converted, renormalised, close to the originals */
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    ck_assert_int_eq(se_codebook_write(cb, w, COCHLEA_TYPE_F16), 0);
    f = roundtrip(w, &buf);
    const tensor *t;
    ck_assert_int_eq(gguf_get_tensor(f, "quantizer.se.1.nodes", &t), 0);
    ck_assert_int_eq(t->type, COCHLEA_TYPE_F16);
    ck_assert_int_eq(se_codebook_load(f, 8, &lc), 0);
    assert_codebooks_equal(cb, lc, 0);
    for (int l = 0; l < 2; l++) {
        test_assert_close(lc->levels[l].nodes, cb->levels[l].nodes, lc->levels[l].n_nodes * 8, 2e-3, 0);
        ck_assert_ptr_ne(lc->levels[l].own[1], NULL);
    }
    se_codebook_free(lc);
    gguf_close(f);
    free(buf);
    gguf_writer_free(w);

    /* quantizer "nearest": centroids only */
    cb->quantizer = SE_QUANTIZER_NEAREST;
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    ck_assert_int_eq(se_codebook_write(cb, w, COCHLEA_TYPE_F32), 0);
    f = roundtrip(w, &buf);
    ck_assert_int_lt(gguf_find_tensor(f, "quantizer.se.0.nodes"), 0);
    ck_assert_int_eq(gguf_has_key(f, "secodec.se.0.k"), 0);
    ck_assert_int_eq(se_codebook_load(f, 8, &lc), 0);
    assert_codebooks_equal(cb, lc, 0);
    ck_assert_int_eq(lc->levels[0].n_nodes, 0);
    ck_assert_int_eq(se_codebook_encode(ctx, lc, x, 600, 2, 0, t2), 0);
    ck_assert_int_eq(se_codebook_encode(ctx, cb, x, 600, 2, 1, t1), 0);
    ck_assert(memcmp(t1, t2, sizeof t1) == 0);
    se_codebook_free(lc);
    gguf_close(f);
    free(buf);
    gguf_writer_free(w);

    /* a bare network file: no section, no codebook */
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    ck_assert_int_eq(gguf_writer_set_str(w, "general.architecture", "secodec"), 0);
    f = roundtrip(w, &buf);
    lc = (se_codebook *)1;
    ck_assert_int_eq(se_codebook_load(f, 8, &lc), 0);
    ck_assert_ptr_null(lc);
    gguf_close(f);
    free(buf);
    gguf_writer_free(w);

    se_codebook_free(cb);
    free((void *)x);
    ctx_free(ctx);
}
END_TEST

/* Write cb with one mutation applied, load it, expect EFORMAT with `want` in the message. */
enum mutation {
    MUT_SIZES_LEN, MUT_SIZES_VALUE, MUT_COMM_RANGE, MUT_CENT_NAN, MUT_NODES_NAN, MUT_VOL_NAN, MUT_VOL_SUM,
    MUT_QUANTIZER, MUT_FALLBACK, MUT_NLEVELS, MUT_NODES_NORM, MUT_K, MUT_CUT, MUT_COMM_LEN, MUT_NO_NLEVELS,
    MUT_COUNT
};

static void expect_rejected(cochlea_ctx *ctx, se_codebook *cb, enum mutation m, const char *want)
{
    (void)ctx;
    se_level *lv = &cb->levels[1];
    int64_t D = cb->dim;
    /* mutated copies of level 1's arrays */
    float *cent = malloc(sizeof(float) * lv->K * D), *nodes = malloc(sizeof(float) * lv->n_nodes * D);
    int32_t *comm = malloc(sizeof(int32_t) * lv->n_nodes);
    double *V = malloc(sizeof(double) * lv->K), *cut = malloc(sizeof(double) * lv->K);
    memcpy(cent, lv->centroids, sizeof(float) * lv->K * D);
    memcpy(nodes, lv->nodes, sizeof(float) * lv->n_nodes * D);
    memcpy(comm, lv->community, sizeof(int32_t) * lv->n_nodes);
    memcpy(V, lv->comm_volume, sizeof(double) * lv->K);
    memcpy(cut, lv->comm_cut, sizeof(double) * lv->K);
    se_level saved = *lv;
    lv->centroids = cent;
    lv->nodes = nodes;
    lv->community = comm;
    lv->comm_volume = V;
    lv->comm_cut = cut;
    switch (m) {
    case MUT_COMM_RANGE: comm[3] = lv->K; break;
    case MUT_CENT_NAN: cent[2 * D + 1] = NAN; break;
    case MUT_NODES_NAN: nodes[5 * D] = NAN; break;
    case MUT_VOL_NAN: V[1] = NAN; break;
    case MUT_VOL_SUM: V[0] += 1.0; break;
    case MUT_NODES_NORM: for (int j = 0; j < D; j++) nodes[4 * D + j] *= 1.5f; break;
    case MUT_CUT: cut[0] = V[0] * 2 + 1; break;
    default: break;
    }
    gguf_writer *w;
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    if (m == MUT_COMM_LEN) {
        /* centroids and keys from the writer, the graph data by hand with a short community list */
        cb->quantizer = SE_QUANTIZER_NEAREST;
        ck_assert_int_eq(se_codebook_write(cb, w, COCHLEA_TYPE_F32), 0);
        cb->quantizer = SE_QUANTIZER_SE;
        ck_assert_int_eq(gguf_writer_set_str(w, "secodec.quantizer", "se"), 0);
        ck_assert_int_eq(gguf_writer_set_str(w, "secodec.se.fallback", "nearest_centroid"), 0);
        for (int l = 0; l < 2; l++) {
            const se_level *q = &cb->levels[l];
            char name[96];
            int64_t ne2[2] = {D, q->n_nodes}, ne1[1] = {q->n_nodes - (l == 1)};
            snprintf(name, sizeof name, "quantizer.se.%d.nodes", l);
            ck_assert_int_eq(gguf_writer_add_tensor(w, name, COCHLEA_TYPE_F32, 2, ne2, q->nodes), 0);
            snprintf(name, sizeof name, "quantizer.se.%d.community", l);
            ck_assert_int_eq(gguf_writer_add_tensor(w, name, COCHLEA_TYPE_I32, 1, ne1, q->community), 0);
            snprintf(name, sizeof name, "secodec.se.%d.k", l);
            ck_assert_int_eq(gguf_writer_set_u32(w, name, (uint32_t)q->k), 0);
            snprintf(name, sizeof name, "secodec.se.%d.vol", l);
            ck_assert_int_eq(gguf_writer_set_f64(w, name, q->vol), 0);
            snprintf(name, sizeof name, "secodec.se.%d.community_volume", l);
            ck_assert_int_eq(gguf_writer_set_arr(w, name, GGUF_TYPE_F64, q->comm_volume, (size_t)q->K), 0);
            snprintf(name, sizeof name, "secodec.se.%d.community_cut", l);
            ck_assert_int_eq(gguf_writer_set_arr(w, name, GGUF_TYPE_F64, q->comm_cut, (size_t)q->K), 0);
        }
    } else {
        ck_assert_int_eq(se_codebook_write(cb, w, COCHLEA_TYPE_F32), 0);
    }
    uint32_t sizes[3] = {(uint32_t)cb->levels[0].K, (uint32_t)cb->levels[1].K, 5};
    switch (m) {
    case MUT_SIZES_LEN: gguf_writer_set_arr(w, "secodec.codebook_sizes", GGUF_TYPE_U32, sizes, 3); break;
    case MUT_SIZES_VALUE: sizes[1]++; gguf_writer_set_arr(w, "secodec.codebook_sizes", GGUF_TYPE_U32, sizes, 2); break;
    case MUT_QUANTIZER: gguf_writer_set_str(w, "secodec.quantizer", "kmeans"); break;
    case MUT_FALLBACK: gguf_writer_set_str(w, "secodec.se.fallback", "random"); break;
    case MUT_NLEVELS: gguf_writer_set_u32(w, "secodec.n_levels", 33); break;
    case MUT_K: gguf_writer_set_u32(w, "secodec.se.1.k", (uint32_t)lv->n_nodes + 1); break;
    default: break;
    }
    void *buf;
    size_t size;
    ck_assert_int_eq(gguf_writer_write_memory(w, &buf, &size), 0);
    if (m == MUT_NO_NLEVELS) {
        /* rename the key in the image (same length): the section lacks n_levels */
        int done = 0;
        for (size_t i = 0; i + 16 < size && !done; i++)
            if (memcmp((char *)buf + i, "secodec.n_levels", 16) == 0) {
                memcpy((char *)buf + i, "secodec.n_lXvels", 16);
                done = 1;
            }
        ck_assert(done);
    }
    gguf_file *f = NULL;
    ck_assert_int_eq(gguf_open_memory(buf, size, &f), 0);
    se_codebook *lc = NULL;
    int rc = se_codebook_load(f, D, &lc);
    ck_assert_msg(rc == COCHLEA_EFORMAT, "mutation %d: load returned %d (%s)", m, rc, cochlea_last_error());
    ck_assert_ptr_null(lc);
    ck_assert_msg(strstr(cochlea_last_error(), want) != NULL, "mutation %d: message '%s' lacks '%s'", m,
                  cochlea_last_error(), want);
    gguf_close(f);
    free(buf);
    gguf_writer_free(w);
    *lv = saved;
    free(cent);
    free(nodes);
    free(comm);
    free(V);
    free(cut);
}

START_TEST(test_gguf_corrupt)
{
    cochlea_ctx *ctx = make_ctx(1);
    const float *x;
    se_codebook *cb = small_codebook(ctx, &x);
    expect_rejected(ctx, cb, MUT_SIZES_LEN, "'secodec.codebook_sizes' has 3 elements");
    expect_rejected(ctx, cb, MUT_SIZES_VALUE, "'quantizer.vq.layers.1._codebook.embed' has");
    expect_rejected(ctx, cb, MUT_COMM_RANGE, "'quantizer.se.1.community' element 3");
    expect_rejected(ctx, cb, MUT_CENT_NAN, "'quantizer.vq.layers.1._codebook.embed' row 2 element 1 is not finite");
    expect_rejected(ctx, cb, MUT_NODES_NAN, "'quantizer.se.1.nodes' row 5 element 0 is not finite");
    expect_rejected(ctx, cb, MUT_VOL_NAN, "'secodec.se.1.community_volume' element 1");
    expect_rejected(ctx, cb, MUT_VOL_SUM, "community volumes sum to");
    expect_rejected(ctx, cb, MUT_QUANTIZER, "'secodec.quantizer' is \"kmeans\"");
    expect_rejected(ctx, cb, MUT_FALLBACK, "'secodec.se.fallback' is \"random\"");
    expect_rejected(ctx, cb, MUT_NLEVELS, "'secodec.n_levels' is 33");
    expect_rejected(ctx, cb, MUT_NODES_NORM, "row 4 has norm 1.5");
    expect_rejected(ctx, cb, MUT_K, "'secodec.se.1.k' is");
    expect_rejected(ctx, cb, MUT_CUT, "community 0 has cut");
    expect_rejected(ctx, cb, MUT_COMM_LEN, "'quantizer.se.1.community' is i32 with 1 dims");
    expect_rejected(ctx, cb, MUT_NO_NLEVELS, "without key 'secodec.n_levels'");
    se_codebook_free(cb);
    free((void *)x);
    ctx_free(ctx);
}
END_TEST

/* ---- bench mode --------------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int bench_main(int argc, char **argv)
{
    int N = argc > 2 ? atoi(argv[2]) : 10000, D = argc > 3 ? atoi(argv[3]) : 1024, C = 400;
    test_rng r = {12345};
    float *cent = malloc(sizeof(float) * C * D), *x = malloc(sizeof(float) * (size_t)N * D);
    /* clustered random-ish data: 400 cluster centres of norm 1, per-frame noise of norm ~0.7 */
    for (int i = 0; i < C * D; i++)
        cent[i] = (float)rng_gauss(&r) / sqrtf((float)D);
    for (int i = 0; i < N; i++) {
        int c = (int)(test_rng_next(&r) % (uint64_t)C);
        for (int j = 0; j < D; j++)
            x[(size_t)i * D + j] = cent[c * D + j] + 0.7f * (float)rng_gauss(&r) / sqrtf((float)D);
    }
    cochlea_ctx *ctx = NULL;
    if (ctx_create(0, COCHLEA_PRECISION_F32, &ctx))
        return 1;
    se_build_params p = se_build_default_params();
    p.n_levels = 1;
    p.n_nodes = N;
    se_level_stats st;
    se_codebook *cb = NULL;
    double t0 = now_s();
    int rc = se_codebook_build(ctx, x, N, D, &p, &cb, &st);
    double t1 = now_s();
    if (rc) {
        fprintf(stderr, "build failed: %s\n", cochlea_last_error());
        return 1;
    }
    printf("build: N=%d D=%d threads=%d: %.2f s (graph+k+SE+codebook+quantise all rows)\n", N, D, ctx->n_threads,
           t1 - t0);
    printf("  k=%d (stable point %d) edges=%lld H1=%.4f H2=%.4f K=%d sizes min/median/max %lld/%lld/%lld "
           "reassigned=%lld passes=%d fallbacks=%lld\n",
           st.k, st.k_stable, (long long)st.n_edges, st.h1, st.h2, st.K, (long long)st.size_min,
           (long long)st.size_median, (long long)st.size_max, (long long)st.n_reassigned, st.passes,
           (long long)st.n_fallback);
    int32_t *tok = malloc(sizeof(int32_t) * N);
    t0 = now_s();
    se_level_quantize(ctx, &cb->levels[0], D, cb->fallback, 0, x, N, D, tok, NULL);
    t1 = now_s();
    printf("quantise %d frames (SE rule): %.3f s = %.1f frames/s\n", N, t1 - t0, N / (t1 - t0));
    free(tok);
    se_codebook_free(cb);
    ctx_free(ctx);
    free(cent);
    free(x);
    return 0;
}

static Suite *suite(void)
{
    Suite *s = suite_create("codec_se");
    TCase *tc = tcase_create("entropy");
    tcase_add_test(tc, test_delta_merge_bruteforce);
    tcase_add_test(tc, test_delta_select_bruteforce);
    tcase_add_test(tc, test_greedy_monotone);
    tcase_add_test(tc, test_greedy_from_partition);
    tcase_add_test(tc, test_hier_vs_flat);
    suite_add_tcase(s, tc);
    tc = tcase_create("graph");
    tcase_add_test(tc, test_knn_bruteforce);
    tcase_add_test(tc, test_stable_k);
    tcase_add_test(tc, test_induced);
    tcase_add_test(tc, test_sampling);
    suite_add_tcase(s, tc);
    tc = tcase_create("codebook");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gmm_codebook);
    tcase_add_test(tc, test_quantize_rule);
    tcase_add_test(tc, test_multilevel);
    tcase_add_test(tc, test_deterministic);
    tcase_add_test(tc, test_gguf_roundtrip);
    tcase_add_test(tc, test_gguf_corrupt);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "bench") == 0)
        return bench_main(argc, argv);
    return test_run_suite(suite());
}
