/* tensor.h - typed tensors of up to 4 dimensions, owned or viewing foreign memory (mmap).
 *
 * Dimension order follows ggml/GGUF: ne[0] is the innermost (contiguous) dimension. A PyTorch
 * Linear weight of shape [out, in] is a tensor with ne = {in, out}. nb[i] is the stride of
 * dimension i in bytes; for Q8_0 the innermost dimension is stored in blocks of 32 elements
 * (34 bytes each), so ne[0] must be a multiple of 32 and nb[0] is not meaningful per element. */
#ifndef COCHLEA_TENSOR_H
#define COCHLEA_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "cochlea.h"

#define TENSOR_MAX_DIMS 4
#define QK8_0 32

/* ggml's Q8_0 block: one fp16 scale d and 32 int8 values; x[i] = d * qs[i]. */
typedef struct {
    uint16_t d;
    int8_t qs[QK8_0];
} block_q8_0;

typedef struct tensor {
    enum cochlea_type type;
    int n_dims;                  /* 1..4 */
    int64_t ne[TENSOR_MAX_DIMS]; /* elements per dimension; unused dims are 1 */
    size_t nb[TENSOR_MAX_DIMS];  /* byte strides (nb[0] = type size, or block size for Q8_0) */
    void *data;
    int owned;                   /* data was allocated by tensor_new and is freed by tensor_free */
    const char *name;            /* optional, not owned (points into the model file's metadata) */
} tensor;

/* Size in bytes of one element (or of one block, for block types) and elements per block. */
size_t type_size(enum cochlea_type t);
int type_block(enum cochlea_type t);
/* "f32", "f16", "bf16", "q8_0", "i8", "i16", "i32"; NULL for unknown. */
const char *type_name(enum cochlea_type t);
/* Parse a name as above; returns 0 and stores the type, or COCHLEA_EINVAL. */
int type_from_name(const char *name, enum cochlea_type *out);
/* Whether `t` is a type this build can read. */
int type_is_known(uint32_t t);

/* Bytes taken by one row of `n` elements of type `t` (n must be a multiple of the block size);
 * returns 0 and stores the size, or COCHLEA_ERANGE/EINVAL. */
int type_row_size(enum cochlea_type t, int64_t n, size_t *out);

/* Fill shape/strides of a contiguous tensor; validates dims (>= 1, block-aligned) and that the
 * byte size fits in size_t. Does not touch data. */
int tensor_init(tensor *t, enum cochlea_type type, int n_dims, const int64_t *ne);
/* Allocate a zeroed contiguous tensor (64-byte aligned). */
int tensor_new(tensor *t, enum cochlea_type type, int n_dims, const int64_t *ne);
void tensor_free(tensor *t);
int64_t tensor_nelements(const tensor *t);
size_t tensor_nbytes(const tensor *t); /* bytes of a contiguous tensor of this shape */
int tensor_is_contiguous(const tensor *t);
/* A view of rows [row0, row0+nrows) of the outermost used dimension; no copy. */
int tensor_view_rows(const tensor *t, int64_t row0, int64_t nrows, tensor *view);
/* Pointer to the start of row `r` where rows are indexed over dims 1..3 flattened. */
void *tensor_row(const tensor *t, int64_t r);
/* Convert row `r` (ne[0] elements) to float. Works for every known numeric type. */
void tensor_row_to_f32(const tensor *t, int64_t r, float *out);

/* ---- scalar/array conversions --------------------------------------------------------- */

/* IEEE half <-> float, round-to-nearest-even. */
float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);
/* bfloat16 <-> float; to-bf16 rounds to nearest even and keeps NaN a quiet NaN. */
static inline float bf16_to_f32(uint16_t h)
{
    union { uint32_t u; float f; } v;
    v.u = (uint32_t)h << 16;
    return v.f;
}
uint16_t f32_to_bf16(float f);

void fp16_to_f32_array(const uint16_t *in, float *out, size_t n);
void f32_to_fp16_array(const float *in, uint16_t *out, size_t n);
void bf16_to_f32_array(const uint16_t *in, float *out, size_t n);
void f32_to_bf16_array(const float *in, uint16_t *out, size_t n);

/* Q8_0 as ggml defines it: per block of 32, d = max|x| / 127, q = round(x / d). n % 32 == 0. */
void q8_0_quantize(const float *in, block_q8_0 *out, size_t n);
void q8_0_dequantize(const block_q8_0 *in, float *out, size_t n);

#endif
