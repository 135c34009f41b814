/* se_graph.h - the speech feature graph of SECodec (secodec.md §2.1, §2.2, §5.4, §8 items 4-5).
 *
 * Nodes are feature rows, L2-normalised once (§5.4). Edge weights are cosine similarities:
 * candidates are found with a blocked fp32 GEMM (gemm_f32 on blocks of query rows against all
 * base rows; scratch bounded by SE_GEMM_SCRATCH floats), then the similarity of every candidate
 * is recomputed in double from the float rows (a fixed-order sum, so S_ij == S_ji exactly and the
 * result does not depend on the GEMM backend, its blocking or the thread count). Ranking is by
 * similarity, descending; ties go to the lower node index.
 *
 * The graph keeps, for every node, its top-k neighbours with S_ij > 0 (diagonal excluded), made
 * undirected with duplicates collapsed (weight S_ij; i->j and j->i are the same value), stored
 * as CSR with sorted neighbour lists, degrees d_i and vol (all double). */
#ifndef COCHLEA_SE_GRAPH_H
#define COCHLEA_SE_GRAPH_H

#include <stdint.h>

#include "ctx.h"

/* Floats of GEMM scratch per call of se_topk (16 MiB). */
#define SE_GEMM_SCRATCH ((int64_t)4 << 20)
/* Default k_max of the stable-point rule (§2.2 step 3, §8 item 5). */
#define SE_K_MAX_DEFAULT 200

/* Undirected weighted graph without self-loops, CSR (both directions stored). */
typedef struct se_graph {
    int64_t n;       /* vertices */
    int64_t *row;    /* [n + 1] offsets into col/w */
    int32_t *col;    /* neighbour indices, ascending within each row */
    double *w;       /* edge weights (> 0), aligned with col */
    double *deg;     /* [n] d_i = sum_j w_ij */
    double vol;      /* sum_i d_i */
    int64_t n_edges; /* undirected edges (row[n] / 2) */
} se_graph;

/* Per-node top-k_max neighbour lists (rank 0 = most similar). Entries past the available count
 * (n - 1 others) have idx -1 and sim 0. Similarities may be <= 0 (kept here, dropped as edges). */
typedef struct se_knn {
    int64_t n;
    int k_max;
    int32_t *idx; /* [n * k_max] */
    double *sim;  /* [n * k_max] */
} se_knn;

/* Double dot product of two float vectors with four interleaved partial sums in a fixed order
 * (deterministic and symmetric in a, b). */
double se_dot(const float *a, const float *b, int64_t d);

/* L2-normalise n rows of d floats (row stride ldx) into out [n, d] (norm in double; a zero row
 * stays zero). Non-finite input gives COCHLEA_EINVAL naming the row. out may equal x if ldx == d. */
int se_normalize_rows(const float *x, int64_t n, int64_t d, int64_t ldx, float *out);

/* Top-k cosine neighbours of nq L2-normalised query rows q [nq, d] among nb base rows [nb, d]:
 * idx/sim [nq, k] (see se_knn for ordering and padding). With self0 >= 0, query row i is base
 * row self0 + i and is excluded (the diagonal). Candidates by GEMM (k + margin of them), exact
 * double similarities for the final ranking. Parallel over query rows on ctx's pool. */
int se_topk(cochlea_ctx *ctx, const float *q, int64_t nq, const float *base, int64_t nb, int64_t d, int k,
            int64_t self0, int32_t *idx, double *sim);

/* Top-k_max lists of every node of xn [n, d] (normalised) among the others; k_max is clamped to
 * n - 1 (at least 1 when n >= 2). */
int se_knn_build(cochlea_ctx *ctx, const float *xn, int64_t n, int64_t d, int k_max, se_knn *out);
void se_knn_free(se_knn *knn);

/* The kNN graph for k <= knn->k_max (§2.2 step 2): edges i-j for j in the first k entries of
 * i's list with sim > 0, undirected, duplicates collapsed. */
int se_graph_from_knn(const se_knn *knn, int k, se_graph *g);
/* Build a graph from an explicit undirected edge list (i, j, w): self-loops and w <= 0 are
 * refused (COCHLEA_EINVAL); duplicate pairs (in either direction) have their weights added.
 * For tests and tools. */
int se_graph_from_edges(int64_t n, int64_t n_e, const int32_t *ei, const int32_t *ej, const double *ew,
                        se_graph *g);
void se_graph_free(se_graph *g);

/* Subgraph induced by the vertices verts[0..nv) (distinct): local vertex t is verts[t]; only
 * edges with both ends inside are kept, and degrees and vol are those of the subgraph (vertices
 * left without edges are isolates). map is scratch of g->n int32 that must hold -1 everywhere on
 * entry and does again on return. */
int se_graph_induced(const se_graph *g, const int32_t *verts, int64_t nv, int32_t *map, se_graph *out);

/* §2.1: H1(G) = -sum_i (d_i/vol) log2(d_i/vol), skipping d_i = 0 (0 for an empty graph). */
double se_graph_h1(const se_graph *g);
/* Volumes V_a = sum_{i in a} d_i and cuts g_a (weight of edges with one end in a) of the
 * partition comm[n] with ids in [0, K) (COCHLEA_EINVAL for an id out of range). */
int se_graph_comm_stats(const se_graph *g, const int32_t *comm, int32_t K, double *V, double *cut);
/* §2.1: H2_P(G) = -sum_a [(g_a/vol) log2(V_a/vol) + sum_{i in a} (d_i/vol) log2(d_i/V_a)], skipping
 * terms with V_a = 0 or d_i = 0. */
int se_graph_h2(const se_graph *g, const int32_t *comm, int32_t K, double *out);

/* §2.2 step 3 (1-D SE stable point): for k = 1..k_max (k_max <= knn->k_max) add each node's k-th
 * neighbour edge (sim > 0; an edge already present is not added again) and update H1
 * incrementally (H1 = log2(vol) - (1/vol) sum_i d_i log2 d_i, re-adding the terms of the vertices
 * whose degree changed). A stable point is a k in 2..k_max-1 with H1(k) strictly below H1(k-1)
 * and H1(k+1); the one with the lowest H1 wins (the smallest k on ties). Without one, k =
 * ceil(n/1000 * 10) clamped to [1, k_max] and *found = 0. h1 (optional) receives H1(k) at
 * h1[k-1] for every k. */
int se_graph_choose_k(const se_knn *knn, int k_max, double *h1, int *k_out, int *found);

#endif
