/* se_part.h - greedy 2-D structural-entropy minimisation (secodec.md §2.3, §2.4, §8 item 3).
 *
 * Greedy MERGE (§2.3): per community the volume V, the cut g and a hash map of neighbouring
 * communities -> total edge weight w. Delta-H is kept only for adjacent pairs (w > 0; a pair with
 * w = 0 always has Delta-H >= 0) in a binary heap with lazy invalidation (a version counter per
 * community). The merge with the most negative Delta-H is done first; ties go to the pair with
 * the lowest (a, b) community ids (a < b, compared a first). A merged community keeps the id of
 * the one with the larger neighbour map (the lower id on equal sizes); the other id dies and its
 * neighbours' maps are renamed (small into large). The loop stops when the best Delta-H >= 0.
 * On return communities are renumbered 0..K-1 in the order of the lowest initial id they contain.
 *
 * Hierarchical (§2.4 with §8 item 3): the community list starts as singletons in node order; a
 * pass cuts the list into consecutive groups of n communities, minimises each group on its
 * induced subgraph (vol, degrees, V and g within the subgraph) starting from the group's
 * communities, and concatenates the results in order. The loop stops after a pass that had a
 * single group; n doubles after a pass that merged nothing. The first pass is exactly "consecutive
 * groups of n vertices in node order, each minimised independently". */
#ifndef COCHLEA_SE_PART_H
#define COCHLEA_SE_PART_H

#include <stdint.h>

#include "se_graph.h"

/* Called after every merge: communities `keep` and `die` (ids as in the greedy run's numbering,
 * i.e. the initial ids) became one, now named `keep`; delta is its Delta-H. For tests. */
typedef void (*se_merge_fn)(void *user, int32_t keep, int32_t die, double delta);

/* §2.3 MERGE: Delta-H of merging communities a and b (volumes Va, Vb, cuts ga, gb, weight wab
 * between them) in a graph of volume vol:
 * -(gm/vol)log2(Vm/vol) + (ga/vol)log2(Va/vol) + (gb/vol)log2(Vb/vol) + (Va/vol)log2(Vm/Va)
 * + (Vb/vol)log2(Vm/Vb), Vm = Va + Vb, gm = ga + gb - 2 wab. Va, Vb > 0. */
double se_part_delta_merge(double vol, double Va, double ga, double Vb, double gb, double wab);

/* Greedy minimisation of the graph's 2-D SE from the partition comm[g->n] with ids in
 * [0, *n_comm) (ids without members are allowed and dropped). On return comm holds ids
 * 0..*n_comm-1 (renumbered, see above). on_merge may be NULL; n_merges (optional) receives the
 * number of merges. */
int se_part_greedy(const se_graph *g, int32_t *comm, int32_t *n_comm, se_merge_fn on_merge, void *user,
                   int64_t *n_merges);

/* Flat minimisation from singletons (comm[i] = i). */
int se_part_flat(const se_graph *g, int32_t *comm, int32_t *n_comm);

typedef struct se_part_info {
    int passes;        /* passes of the hierarchical loop */
    int64_t merges;    /* merges in all passes */
    int64_t final_n;   /* group size of the last pass */
} se_part_info;

/* Hierarchical minimisation with initial group size group_n >= 1. comm receives ids
 * 0..*n_comm-1 in the final community list order. info may be NULL. */
int se_part_hier(const se_graph *g, int64_t group_n, int32_t *comm, int32_t *n_comm, se_part_info *info);

#endif
