/* tensor.c - tensor shapes, allocation, views and element-type conversions. */
#include "tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

size_t type_size(enum cochlea_type t)
{
    switch (t) {
    case COCHLEA_TYPE_F32: return 4;
    case COCHLEA_TYPE_F16: return 2;
    case COCHLEA_TYPE_BF16: return 2;
    case COCHLEA_TYPE_Q8_0: return sizeof(block_q8_0);
    case COCHLEA_TYPE_I8: return 1;
    case COCHLEA_TYPE_I16: return 2;
    case COCHLEA_TYPE_I32: return 4;
    }
    return 0;
}

int type_block(enum cochlea_type t)
{
    return t == COCHLEA_TYPE_Q8_0 ? QK8_0 : 1;
}

const char *type_name(enum cochlea_type t)
{
    switch (t) {
    case COCHLEA_TYPE_F32: return "f32";
    case COCHLEA_TYPE_F16: return "f16";
    case COCHLEA_TYPE_BF16: return "bf16";
    case COCHLEA_TYPE_Q8_0: return "q8_0";
    case COCHLEA_TYPE_I8: return "i8";
    case COCHLEA_TYPE_I16: return "i16";
    case COCHLEA_TYPE_I32: return "i32";
    }
    return NULL;
}

int type_from_name(const char *name, enum cochlea_type *out)
{
    static const enum cochlea_type all[] = {COCHLEA_TYPE_F32, COCHLEA_TYPE_F16, COCHLEA_TYPE_BF16,
                                            COCHLEA_TYPE_Q8_0, COCHLEA_TYPE_I8, COCHLEA_TYPE_I16,
                                            COCHLEA_TYPE_I32};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (name && strcmp(name, type_name(all[i])) == 0) {
            *out = all[i];
            return COCHLEA_OK;
        }
    }
    return err_set(COCHLEA_EINVAL, "unknown tensor type '%s' (expected f32, f16, bf16, q8_0, i8, i16 or i32)",
                   name ? name : "(null)");
}

int type_is_known(uint32_t t)
{
    return type_size((enum cochlea_type)t) != 0;
}

int type_row_size(enum cochlea_type t, int64_t n, size_t *out)
{
    size_t ts = type_size(t);
    int bs = type_block(t);
    if (ts == 0)
        return err_set(COCHLEA_EUNSUPPORTED, "unknown tensor type %d", (int)t);
    if (n < 0 || n % bs != 0)
        return err_set(COCHLEA_EINVAL, "row of %lld elements is not a multiple of the %s block size %d",
                       (long long)n, type_name(t), bs);
    if ((uint64_t)n > SIZE_MAX || size_mul((size_t)(n / bs), ts, out))
        return err_set(COCHLEA_ERANGE, "row of %lld %s elements overflows size_t", (long long)n, type_name(t));
    return COCHLEA_OK;
}

int tensor_init(tensor *t, enum cochlea_type type, int n_dims, const int64_t *ne)
{
    size_t row, total;
    memset(t, 0, sizeof *t);
    if (n_dims < 1 || n_dims > TENSOR_MAX_DIMS)
        return err_set(COCHLEA_EINVAL, "tensor has %d dimensions (1 to %d allowed)", n_dims, TENSOR_MAX_DIMS);
    for (int i = 0; i < TENSOR_MAX_DIMS; i++) {
        t->ne[i] = i < n_dims ? ne[i] : 1;
        if (t->ne[i] < 1)
            return err_set(COCHLEA_EINVAL, "tensor dimension %d is %lld (must be >= 1)", i, (long long)t->ne[i]);
    }
    int rc = type_row_size(type, t->ne[0], &row);
    if (rc)
        return rc;
    t->type = type;
    t->n_dims = n_dims;
    t->nb[0] = type_size(type);
    t->nb[1] = row;
    total = row;
    for (int i = 2; i < TENSOR_MAX_DIMS; i++) {
        if (size_mul(t->nb[i - 1], (size_t)t->ne[i - 1], &t->nb[i]))
            return err_set(COCHLEA_ERANGE, "tensor size overflows size_t");
    }
    if (size_mul(t->nb[3], (size_t)t->ne[3], &total))
        return err_set(COCHLEA_ERANGE, "tensor size overflows size_t");
    return COCHLEA_OK;
}

int tensor_new(tensor *t, enum cochlea_type type, int n_dims, const int64_t *ne)
{
    int rc = tensor_init(t, type, n_dims, ne);
    if (rc)
        return rc;
    size_t n = tensor_nbytes(t);
    size_t alloc = (n + 63) & ~(size_t)63;
    if (alloc == 0)
        alloc = 64;
    t->data = aligned_alloc(64, alloc);
    if (!t->data)
        return err_set(COCHLEA_ENOMEM, "cannot allocate %zu bytes for a tensor", n);
    memset(t->data, 0, alloc);
    t->owned = 1;
    return COCHLEA_OK;
}

void tensor_free(tensor *t)
{
    if (!t)
        return;
    if (t->owned)
        free(t->data);
    t->data = NULL;
    t->owned = 0;
}

int64_t tensor_nelements(const tensor *t)
{
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

size_t tensor_nbytes(const tensor *t)
{
    size_t row = 0;
    type_row_size(t->type, t->ne[0], &row);
    return row * (size_t)t->ne[1] * (size_t)t->ne[2] * (size_t)t->ne[3];
}

int tensor_is_contiguous(const tensor *t)
{
    size_t row = 0;
    if (type_row_size(t->type, t->ne[0], &row))
        return 0;
    return t->nb[0] == type_size(t->type) && t->nb[1] == row && t->nb[2] == t->nb[1] * (size_t)t->ne[1] &&
           t->nb[3] == t->nb[2] * (size_t)t->ne[2];
}

int tensor_view_rows(const tensor *t, int64_t row0, int64_t nrows, tensor *view)
{
    int d = t->n_dims - 1;
    if (d < 1)
        return err_set(COCHLEA_EINVAL, "cannot take row views of a 1-D tensor");
    if (row0 < 0 || nrows < 1 || row0 > t->ne[d] || nrows > t->ne[d] - row0)
        return err_set(COCHLEA_ERANGE, "row view [%lld, %lld) outside dimension of %lld", (long long)row0,
                       (long long)(row0 + nrows), (long long)t->ne[d]);
    *view = *t;
    view->owned = 0;
    view->ne[d] = nrows;
    view->data = (char *)t->data + (size_t)row0 * t->nb[d];
    return COCHLEA_OK;
}

void *tensor_row(const tensor *t, int64_t r)
{
    int64_t i1 = r % t->ne[1];
    int64_t i2 = (r / t->ne[1]) % t->ne[2];
    int64_t i3 = r / (t->ne[1] * t->ne[2]);
    return (char *)t->data + (size_t)i1 * t->nb[1] + (size_t)i2 * t->nb[2] + (size_t)i3 * t->nb[3];
}

void tensor_row_to_f32(const tensor *t, int64_t r, float *out)
{
    const void *p = tensor_row(t, r);
    size_t n = (size_t)t->ne[0];
    switch (t->type) {
    case COCHLEA_TYPE_F32: memcpy(out, p, n * sizeof(float)); break;
    case COCHLEA_TYPE_F16: fp16_to_f32_array(p, out, n); break;
    case COCHLEA_TYPE_BF16: bf16_to_f32_array(p, out, n); break;
    case COCHLEA_TYPE_Q8_0: q8_0_dequantize(p, out, n); break;
    case COCHLEA_TYPE_I8:
        for (size_t i = 0; i < n; i++) out[i] = (float)((const int8_t *)p)[i];
        break;
    case COCHLEA_TYPE_I16:
        for (size_t i = 0; i < n; i++) out[i] = (float)((const int16_t *)p)[i];
        break;
    case COCHLEA_TYPE_I32:
        for (size_t i = 0; i < n; i++) out[i] = (float)((const int32_t *)p)[i];
        break;
    }
}

/* ---- conversions ----------------------------------------------------------------------- */

static inline uint32_t f2u(float f)
{
    union { float f; uint32_t u; } v = {f};
    return v.u;
}

static inline float u2f(uint32_t u)
{
    union { uint32_t u; float f; } v = {u};
    return v.f;
}

float fp16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    if (exp == 31)
        return u2f(sign | 0x7f800000u | (man << 13));
    return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t f32_to_fp16(float f)
{
    uint32_t u = f2u(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (a > 0x7f800000u ? 0x200 : 0));
    if (a >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00);
    if (a < 0x38800000u) {
        /* result is subnormal or zero: value * 2^24 rounded to nearest even */
        float v = u2f(a) * 16777216.0f;
        uint32_t m = (uint32_t)nearbyintf(v);
        return (uint16_t)(sign | m);
    }
    /* normal: rebias exponent, round mantissa to nearest even */
    uint32_t mant_odd = (a >> 13) & 1;
    a += 0xc8000fffu + mant_odd; /* -(112<<23) + 0xfff + odd */
    return (uint16_t)(sign | (a >> 13));
}

uint16_t f32_to_bf16(float f)
{
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

void fp16_to_f32_array(const uint16_t *in, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = fp16_to_f32(in[i]);
}

void f32_to_fp16_array(const float *in, uint16_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = f32_to_fp16(in[i]);
}

void bf16_to_f32_array(const uint16_t *in, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = bf16_to_f32(in[i]);
}

void f32_to_bf16_array(const float *in, uint16_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = f32_to_bf16(in[i]);
}

void q8_0_quantize(const float *in, block_q8_0 *out, size_t n)
{
    size_t nb = n / QK8_0;
    for (size_t b = 0; b < nb; b++) {
        const float *x = in + b * QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) {
            float a = fabsf(x[j]);
            if (a > amax)
                amax = a;
        }
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        out[b].d = f32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++)
            out[b].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void q8_0_dequantize(const block_q8_0 *in, float *out, size_t n)
{
    size_t nb = n / QK8_0;
    for (size_t b = 0; b < nb; b++) {
        float d = fp16_to_f32(in[b].d);
        for (int j = 0; j < QK8_0; j++)
            out[b * QK8_0 + j] = d * (float)in[b].qs[j];
    }
}
