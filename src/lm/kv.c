/* kv.c - the decoder's key/value cache: allocation, batch writes, compaction (kv.h). */
#include "lm/kv.h"

#include <stdlib.h>
#include <string.h>

#include "cochlea.h"
#include "error.h"

int lm_kv_create(int64_t n_layer, int64_t n_head_kv, int64_t head_dim, int64_t capacity, lm_kv **out)
{
    *out = NULL;
    if (n_layer < 1 || n_head_kv < 1 || head_dim < 1 || capacity < 1)
        return err_set(COCHLEA_EINVAL, "KV cache: bad shape (layers %lld, kv heads %lld, head dim %lld, capacity %lld)",
                       (long long)n_layer, (long long)n_head_kv, (long long)head_dim, (long long)capacity);
    if (capacity > INT32_MAX)
        return err_set(COCHLEA_ERANGE, "KV cache: capacity %lld exceeds the int32 position range",
                       (long long)capacity);
    size_t floats, bytes;
    if (size_mul((size_t)n_head_kv, (size_t)capacity, &floats) || size_mul(floats, (size_t)head_dim, &floats) ||
        size_mul(floats, sizeof(float), &bytes) || (uint64_t)n_layer > SIZE_MAX / (2 * sizeof(float *)))
        return err_set(COCHLEA_ERANGE, "KV cache: %lld kv heads x %lld slots x %lld floats overflows",
                       (long long)n_head_kv, (long long)capacity, (long long)head_dim);
    lm_kv *kv = calloc(1, sizeof *kv);
    if (!kv)
        return err_set(COCHLEA_ENOMEM, "KV cache: out of memory");
    kv->n_layer = n_layer;
    kv->n_head_kv = n_head_kv;
    kv->head_dim = head_dim;
    kv->capacity = capacity;
    kv->k = calloc((size_t)n_layer, sizeof *kv->k);
    kv->v = calloc((size_t)n_layer, sizeof *kv->v);
    if (!kv->k || !kv->v) {
        lm_kv_free(kv);
        return err_set(COCHLEA_ENOMEM, "KV cache: out of memory");
    }
    for (int64_t l = 0; l < n_layer; l++) {
        void *pk = NULL, *pv = NULL;
        if (posix_memalign(&pk, 64, bytes) || posix_memalign(&pv, 64, bytes)) {
            free(pk);
            lm_kv_free(kv);
            return err_set(COCHLEA_ENOMEM, "KV cache: cannot allocate 2 x %zu bytes for layer %lld", bytes,
                           (long long)l);
        }
        kv->k[l] = pk;
        kv->v[l] = pv;
    }
    *out = kv;
    return COCHLEA_OK;
}

void lm_kv_free(lm_kv *kv)
{
    if (!kv)
        return;
    for (int64_t l = 0; l < kv->n_layer; l++) {
        if (kv->k)
            free(kv->k[l]);
        if (kv->v)
            free(kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    free(kv);
}

int lm_kv_write(lm_kv *kv, int64_t layer, int64_t slot0, const float *k, int64_t ldk, const float *v, int64_t ldv,
                int64_t n)
{
    const int64_t D = kv->head_dim, H = kv->n_head_kv, hs = lm_kv_head_stride(kv);
    if (layer < 0 || layer >= kv->n_layer)
        return err_set(COCHLEA_EINVAL, "KV cache: layer %lld outside [0, %lld)", (long long)layer,
                       (long long)kv->n_layer);
    if (n < 0 || slot0 < 0 || slot0 > kv->capacity - n)
        return err_set(COCHLEA_EINVAL, "KV cache: slots [%lld, %lld) outside the capacity %lld", (long long)slot0,
                       (long long)(slot0 + n), (long long)kv->capacity);
    if (ldk < H * D || ldv < H * D)
        return err_set(COCHLEA_EINVAL, "KV cache: row strides %lld, %lld below %lld", (long long)ldk,
                       (long long)ldv, (long long)(H * D));
    float *K = kv->k[layer], *V = kv->v[layer];
    for (int64_t i = 0; i < n; i++)
        for (int64_t h = 0; h < H; h++) {
            memcpy(K + h * hs + (slot0 + i) * D, k + i * ldk + h * D, (size_t)D * sizeof(float));
            memcpy(V + h * hs + (slot0 + i) * D, v + i * ldv + h * D, (size_t)D * sizeof(float));
        }
    return COCHLEA_OK;
}

int lm_kv_keep(lm_kv *kv, int64_t n_past, const int32_t *path, int64_t n_path)
{
    if (n_past < 0 || n_past > kv->n || n_path < 0 || (n_path > 0 && !path))
        return err_set(COCHLEA_EINVAL, "KV cache: keep of %lld rows after n_past %lld (cache holds %lld)",
                       (long long)n_path, (long long)n_past, (long long)kv->n);
    for (int64_t k = 0; k < n_path; k++) {
        if (path[k] < 0 || (k > 0 && path[k] <= path[k - 1]))
            return err_set(COCHLEA_EINVAL, "KV cache: keep path[%lld] = %d is not above path[%lld] (must be strictly "
                           "increasing and >= 0)", (long long)k, path[k], (long long)(k - 1));
        if (path[k] >= kv->n - n_past)
            return err_set(COCHLEA_EINVAL, "KV cache: keep path[%lld] = %d is beyond the %lld rows written after %lld",
                           (long long)k, path[k], (long long)(kv->n - n_past), (long long)n_past);
    }
    const int64_t D = kv->head_dim, hs = lm_kv_head_stride(kv);
    for (int64_t l = 0; l < kv->n_layer; l++)
        for (int64_t k = 0; k < n_path; k++) {
            const int64_t src = n_past + path[k], dst = n_past + k;
            if (src == dst)
                continue;
            for (int64_t h = 0; h < kv->n_head_kv; h++) {
                memcpy(kv->k[l] + h * hs + dst * D, kv->k[l] + h * hs + src * D, (size_t)D * sizeof(float));
                memcpy(kv->v[l] + h * hs + dst * D, kv->v[l] + h * hs + src * D, (size_t)D * sizeof(float));
            }
        }
    kv->n = n_past + n_path;
    return COCHLEA_OK;
}

int lm_kv_truncate(lm_kv *kv, int64_t n)
{
    if (n < 0 || n > kv->n)
        return err_set(COCHLEA_EINVAL, "KV cache: cannot truncate to %lld (holds %lld)", (long long)n,
                       (long long)kv->n);
    kv->n = n;
    return COCHLEA_OK;
}

void lm_kv_clear(lm_kv *kv)
{
    kv->n = 0;
}
