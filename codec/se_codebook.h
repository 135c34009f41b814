/* se_codebook.h - SE codebooks: build (secodec.md §2.2-§2.6, §8 items 1-6), the node-game
 * quantiser (§2.7, §8 items 7-8), residual multi-level encode/decode, and the quantiser section
 * of a "secodec" GGUF file.
 *
 * Build of one level from an [M, D] feature matrix:
 *  1. sample N rows uniformly without replacement (Floyd's algorithm driven by xoshiro256**,
 *     seeded through splitmix64 with seed + level index; all rows when M <= N); nodes are kept
 *     in ascending row order;
 *  2. L2-normalise, kNN cosine graph (se_graph.h) with k fixed or by the stable-point rule;
 *  3. hierarchical 2-D SE minimisation with group size n (default ceil(N/1024)) (se_part.h);
 *  4. communities with fewer than min_community_size members (default 2) are dissolved: each of
 *     their nodes joins the remaining community whose centroid is nearest (Euclidean, original
 *     features; lowest id on ties);
 *  5. remaining communities are numbered 0..K-1 by the lowest node index among their members
 *     before step 4; V_a, g_a and vol are recomputed on the graph; codeword = centroid = mean of
 *     the members' original (un-normalised) features (§8 item 2).
 * Multi-level (§8 item 1): level l+1 is built on the residuals x - c_l[tok_l] of all M rows,
 * the tokens coming from level l's own quantiser rule.
 *
 * Quantiser, per frame x (§2.7 with a frozen graph): top-k cosine neighbours among the stored
 * nodes (GEMM over a block of frames, exact double similarities, see se_topk), positive weights
 * w_xj, d_x = sum w_xj, a_alpha = sum of w_xj over the neighbours in community alpha, Delta_select
 * (below) for each community holding a neighbour, token = argmin (lowest id on ties), all in
 * double. Fallback when x has no positive neighbour or every Delta >= 0: the nearest centroid
 * (Euclidean, lowest id on ties), or with SE_FALLBACK_MIN_DELTA the minimal Delta (the nearest
 * centroid when there is no candidate at all). Frames are processed in blocks of fixed size and
 * in parallel on the context's pool; results do not depend on the thread count. */
#ifndef COCHLEA_SE_CODEBOOK_H
#define COCHLEA_SE_CODEBOOK_H

#include <stdint.h>

#include "ctx.h"
#include "gguf.h"
#include "se_graph.h"

#define SE_MAX_LEVELS 32

enum se_quantizer_kind {
    SE_QUANTIZER_SE = 0,      /* "se": node-game rule, graph data stored */
    SE_QUANTIZER_NEAREST = 1, /* "nearest": plain Euclidean RVQ, no graph data */
};

enum se_fallback {
    SE_FALLBACK_NEAREST_CENTROID = 0, /* "nearest_centroid" (default, §8 item 8) */
    SE_FALLBACK_MIN_DELTA = 1,        /* "min_delta" */
};

/* One level. Arrays are either owned (listed in own[]) or views into a loaded gguf_file. */
typedef struct se_level {
    int32_t K;                /* codewords */
    const float *centroids;   /* [K, D] */
    /* graph data (quantizer "se"; n_nodes = 0 for "nearest") */
    int64_t n_nodes;          /* N */
    const float *nodes;       /* [N, D], L2-normalised */
    const int32_t *community; /* [N], in [0, K) */
    int32_t k;                /* kNN k of the build and of the query search */
    double vol;
    const double *comm_volume; /* [K] V_alpha */
    const double *comm_cut;    /* [K] g_alpha */
    void *own[5];
} se_level;

/* Build metadata (informational keys; strings are owned copies, NULL when absent). */
typedef struct se_build_meta {
    int has_group_size_n, has_sample_seed, has_min_community_size, has_codebooks_frozen;
    uint32_t group_size_n;
    uint64_t sample_seed;
    uint32_t min_community_size;
    int codebooks_frozen;
    char *k_rule, *codeword_rule, *graph_mode, *training;
} se_build_meta;

typedef struct se_codebook {
    int n_levels;
    int64_t dim; /* D */
    enum se_quantizer_kind quantizer;
    enum se_fallback fallback;
    se_level *levels; /* [n_levels] */
    se_build_meta meta;
} se_codebook;

typedef struct se_build_params {
    int n_levels;               /* L, 1..32 (default 8) */
    int64_t n_nodes;            /* N per level (default 10000) */
    uint64_t seed;              /* sampling seed (default 20241216) */
    int k;                      /* 0: stable-point rule (default); > 0: fixed k */
    int k_max;                  /* upper end of the stable-point search (default 200) */
    int64_t group_size;         /* hierarchical n; 0: ceil(N / 1024) (default) */
    int min_community_size;     /* default 2 */
    enum se_fallback fallback;  /* stored and used for the residuals (default nearest centroid) */
} se_build_params;

/* Per-level report of a build. */
typedef struct se_level_stats {
    int64_t n_nodes;
    int k;
    int k_stable;       /* 1 if k came from a stable point, 0 if fixed or the fallback rule */
    int64_t n_edges;    /* undirected */
    double h1, h2;      /* 1-D SE of the graph, 2-D SE of the final partition (bits) */
    int32_t K;
    int64_t size_min, size_median, size_max; /* community sizes (nodes) */
    int64_t n_reassigned;  /* nodes moved out of too-small communities */
    int passes;            /* hierarchical passes */
    int64_t n_fallback;    /* rows of the [M, D] input whose token came from the fallback */
    double mse;            /* mean squared error per element of the residual after this level */
} se_level_stats;

se_build_params se_build_default_params(void);

/* Build a codebook (quantizer "se") from x [M, D] (row-major). stats (optional) receives
 * p->n_levels entries. On success *out is owned by the caller (se_codebook_free). */
int se_codebook_build(cochlea_ctx *ctx, const float *x, int64_t M, int64_t D, const se_build_params *p,
                      se_codebook **out, se_level_stats *stats);
void se_codebook_free(se_codebook *cb);

/* Sample min(n, M) distinct indices of [0, M) uniformly (Floyd; xoshiro256** seeded through
 * splitmix64(seed)), ascending, into out. */
int se_sample_indices(int64_t M, int64_t n, uint64_t seed, int64_t *out);

/* §2.7 step 3: Delta_select of joining community alpha (stored V, g; graph volume vol) for a
 * node of degree dx with weight a into alpha, in double:
 * (g'/vol')log2(V'/vol') - (g+/vol')log2(V+/vol') + (dx/vol')log2(V+/vol') + (V'/vol')log2(V+/V'),
 * vol' = vol + 2dx, V' = V + a, g' = g + a, V+ = V' + dx, g+ = g' + dx - 2a. */
double se_delta_select(double vol, double V, double g, double dx, double a);

/* Tokens of T frames x (row stride ldx) at one level: the level's SE rule, or the nearest
 * centroid with nearest != 0 or when the level has no graph. n_fallback (optional) counts
 * frames whose token came from the fallback. */
int se_level_quantize(cochlea_ctx *ctx, const se_level *lv, int64_t D, enum se_fallback fb, int nearest,
                      const float *x, int64_t T, int64_t ldx, int32_t *tok, int64_t *n_fallback);

/* Residual multi-level encode of z [T, D]: tokens [T, n_levels] time-major; level l quantises
 * r_l = z - sum_{m<l} c_m[tok_m] (float, in level order). n_levels in 1..cb->n_levels. */
int se_codebook_encode(cochlea_ctx *ctx, const se_codebook *cb, const float *z, int64_t T, int n_levels,
                       int nearest, int32_t *tokens);
/* Decoder input: out [T, D] = sum over levels (in order, float) of centroid_l[tok_l]; tokens
 * out of range give COCHLEA_ERANGE naming frame and level. */
int se_codebook_decode(const se_codebook *cb, const int32_t *tokens, int64_t T, int n_levels, float *out);

/* Read the quantiser section (secodec.md contract) of an open file. dim: the model's D (0: read
 * secodec.dimension). A file without secodec.n_levels (and without any other quantiser key) is a
 * bare network: *out = NULL and COCHLEA_OK. F32 centroids/nodes and I32 communities are views
 * into f (keep f open while the codebook lives); F16/BF16/Q8_0 tensors are converted (nodes then
 * renormalised). Everything is validated (COCHLEA_EFORMAT naming the key or tensor). */
int se_codebook_load(const gguf_file *f, int64_t dim, se_codebook **out);

/* Add the quantiser section to w: keys, centroid tensors (F32) and for "se" the graph data with
 * node tensors of nodes_type (F32 or F16). Tensor data is borrowed from cb, which must live until
 * the file is written. */
int se_codebook_write(const se_codebook *cb, gguf_writer *w, enum cochlea_type nodes_type);

#endif
