/* kv.h - the key/value cache of a decoder-only transformer (speculative-decoding.md §1.3, §1.5).
 *
 * One K and one V buffer per layer, each head-major [n_head_kv, capacity, head_dim] fp32: the
 * keys of one kv head are one contiguous stream, which is what ops_attention reads fastest
 * (ops_attn_params.k_head_stride = capacity * head_dim, ldk = head_dim; lm_kv_head_stride()).
 *
 * Slot s holds the K/V of the token at position s of the committed sequence, already rotated by
 * RoPE for position s. `n` is the number of slots in use. A forward pass over a batch of n_b
 * rows (lm_blocks_forward) writes row i at slot n_past + i (n_past = n before the call) and
 * sets n = n_past + n_b. For a plain causal batch that is the new committed length. For a tree
 * batch (speculative verification) the caller then keeps the accepted root-to-node path with
 * lm_kv_keep(), which compacts those rows to slots n_past, n_past + 1, ... and drops the rest.
 *
 * Not thread-safe: one cache belongs to one decoding sequence at a time. */
#ifndef COCHLEA_LM_KV_H
#define COCHLEA_LM_KV_H

#include <stddef.h>
#include <stdint.h>

typedef struct lm_kv {
    int64_t n_layer, n_head_kv, head_dim;
    int64_t capacity; /* slots per layer (maximum sequence length) */
    int64_t n;        /* slots in use, 0 <= n <= capacity */
    float **k, **v;   /* n_layer buffers of n_head_kv * capacity * head_dim floats (64-byte aligned) */
} lm_kv;

/* Allocate a cache (contents undefined, n = 0). All sizes >= 1; capacity <= INT32_MAX (positions
 * are int32). COCHLEA_EINVAL / COCHLEA_ERANGE (size overflow) / COCHLEA_ENOMEM. */
int lm_kv_create(int64_t n_layer, int64_t n_head_kv, int64_t head_dim, int64_t capacity, lm_kv **out);
void lm_kv_free(lm_kv *kv);

/* Floats between consecutive kv heads in a layer's buffer (capacity * head_dim). */
static inline int64_t lm_kv_head_stride(const lm_kv *kv)
{
    return kv->capacity * kv->head_dim;
}

/* Copy n rows of K and V, each [n_head_kv * head_dim] (heads side by side, row strides ldk,
 * ldv), into slots slot0 .. slot0 + n - 1 of `layer`. Does not change kv->n.
 * COCHLEA_EINVAL for a bad layer, stride or a slot range outside the capacity. */
int lm_kv_write(lm_kv *kv, int64_t layer, int64_t slot0, const float *k, int64_t ldk, const float *v, int64_t ldv,
                int64_t n);

/* speculative-decoding.md §1.5: after a batch written at slots n_past.., keep the accepted path
 * of batch rows path[0] < path[1] < ... < path[n_path - 1]: for k = 0 .. n_path-1 copy slot
 * n_past + path[k] to slot n_past + k (all layers and heads; ascending k never overwrites a
 * later source since path[k] >= k), then n = n_past + n_path. n_path = 0 rejects the whole
 * batch. Requires 0 <= n_past <= n, path strictly increasing, non-negative, and
 * n_past + path[n_path-1] < n (COCHLEA_EINVAL otherwise, cache unchanged). */
int lm_kv_keep(lm_kv *kv, int64_t n_past, const int32_t *path, int64_t n_path);

/* Forget every slot from n on (0 <= n <= kv->n, else COCHLEA_EINVAL). */
int lm_kv_truncate(lm_kv *kv, int64_t n);

/* n = 0. */
void lm_kv_clear(lm_kv *kv);

#endif
