/* gguf.h - GGUF v3 model files (design.md "Model files"): a validating, zero-copy reader and a
 * writer that follows ggml's layout rules byte for byte.
 *
 * File layout (all little-endian):
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv,
 *   n_kv x { string key, u32 value type, value },
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset },
 *   zero padding to the alignment, then the data section: every tensor at data start + offset,
 *   each followed by zero padding to the alignment.
 * A string is u64 length + bytes (no NUL). An array is u32 element type, u64 count, elements.
 * The alignment is the u32 key general.alignment (a power of two), 32 when absent.
 *
 * Version 3 is written; versions 3 and 2 (same layout) are read, version 1 and big-endian files
 * are refused. Nested arrays are refused.
 *
 * Reader: gguf_open() maps the file read-only; gguf_open_memory() reads a caller-owned buffer.
 * Everything (header, every key and value, every string and array length, every tensor's name,
 * dims, type, offset, alignment and size) is checked against the file size before use, with
 * overflow-safe arithmetic; each failure sets a message naming the file and the key or tensor.
 * Tensors are views into the mapped file (read-only memory: never write through them). Keys,
 * string values and tensor names are NUL-terminated copies owned by the gguf_file.
 */
#ifndef COCHLEA_GGUF_H
#define COCHLEA_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "cochlea.h"
#include "tensor.h"

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME 255 /* longest tensor name, in bytes */
#define GGUF_MAX_KEY 65535 /* longest key, in bytes */

/* Value types of key-value pairs (GGUF spec ids). */
enum gguf_type {
    GGUF_TYPE_U8 = 0,
    GGUF_TYPE_I8 = 1,
    GGUF_TYPE_U16 = 2,
    GGUF_TYPE_I16 = 3,
    GGUF_TYPE_U32 = 4,
    GGUF_TYPE_I32 = 5,
    GGUF_TYPE_F32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_U64 = 10,
    GGUF_TYPE_I64 = 11,
    GGUF_TYPE_F64 = 12,
};
#define GGUF_TYPE_COUNT 13

/* "u8", "i8", ..., "str", "array", "u64", "i64", "f64"; "?" for an unknown id. */
const char *gguf_type_name(enum gguf_type t);
/* Bytes of one scalar of type t (0 for string, array and unknown ids). */
size_t gguf_type_size(enum gguf_type t);
/* Name of a ggml tensor type id, also of types this build cannot read ("q4_0"); "?" if unknown. */
const char *gguf_ggml_type_name(uint32_t ggml_type);

typedef struct gguf_file gguf_file;

/* A key's value as read from the file. For a scalar, n = 1 and type/arr_type are the scalar type;
 * for an array, type = GGUF_TYPE_ARRAY, arr_type the element type and n the element count.
 * Numbers are the file's little-endian bytes at `data` (possibly unaligned: use the accessors
 * below). Strings (a string scalar, or the elements of a string array) are at str[i] with
 * str_len[i] bytes, NUL-terminated (they may contain NUL bytes themselves). All pointers are
 * owned by the gguf_file and valid until gguf_close. */
typedef struct gguf_value {
    enum gguf_type type;
    enum gguf_type arr_type;
    uint64_t n;
    const void *data;
    const char *const *str;
    const uint64_t *str_len;
    const char *key;  /* for error messages */
    const char *file; /* the file's label, for error messages */
} gguf_value;

/* ---- opening ---------------------------------------------------------------------------- */

/* Map `path` read-only and validate it. On success *out owns the mapping. */
int gguf_open(const char *path, gguf_file **out);
/* Validate a GGUF image in a caller-owned buffer that must outlive the gguf_file; messages name
 * the file "<memory>". Tensor data must be naturally aligned in memory, so the buffer should be
 * aligned to at least 32 bytes (malloc, or an aligned embedded array). */
int gguf_open_memory(const void *data, size_t size, gguf_file **out);
/* Same, with `label` used in messages instead of "<memory>" (copied). */
int gguf_open_memory_named(const void *data, size_t size, const char *label, gguf_file **out);
/* Release everything, including the mapping (NULL is fine). */
void gguf_close(gguf_file *f);

const char *gguf_label(const gguf_file *f); /* the path, or "<memory>" */
uint32_t gguf_version(const gguf_file *f);
size_t gguf_alignment(const gguf_file *f);
size_t gguf_file_size(const gguf_file *f);
size_t gguf_data_offset(const gguf_file *f); /* file offset of the data section */

/* ---- key-value pairs -------------------------------------------------------------------- */

int64_t gguf_n_kv(const gguf_file *f);
/* Index of `key`, or -1 if absent. */
int64_t gguf_find_key(const gguf_file *f, const char *key);
int gguf_has_key(const gguf_file *f, const char *key);
const char *gguf_kv_key(const gguf_file *f, int64_t i);
const gguf_value *gguf_kv_value(const gguf_file *f, int64_t i);

/* Strictly typed getters: COCHLEA_EFORMAT with "FILE: missing key 'K'" or "FILE: key 'K' has
 * type i32, expected u32" when the key is absent or has another type. */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
int gguf_get_i32(const gguf_file *f, const char *key, int32_t *out);
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out);
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out);
int gguf_get_f32(const gguf_file *f, const char *key, float *out);
int gguf_get_f64(const gguf_file *f, const char *key, double *out);
int gguf_get_bool(const gguf_file *f, const char *key, int *out);
/* A string value (NUL-terminated, owned by f); len may be NULL. */
int gguf_get_str(const gguf_file *f, const char *key, const char **out, size_t *len);

/* Any integer type (u8..i64), converted when the value lies in [lo, hi]; else COCHLEA_ERANGE
 * naming the key and the value. */
int gguf_get_int(const gguf_file *f, const char *key, int64_t lo, int64_t hi, int64_t *out);
/* Any numeric type (integers, f32, f64) as a double. */
int gguf_get_float(const gguf_file *f, const char *key, double *out);

/* An array value (any element type). */
int gguf_get_array(const gguf_file *f, const char *key, const gguf_value **out);
/* Element i of an array (or of a scalar with i = 0): integer element types only (value must fit
 * int64); any numeric type as a double; string elements. Errors name the key and the index. */
int gguf_value_int(const gguf_value *v, uint64_t i, int64_t *out);
int gguf_value_float(const gguf_value *v, uint64_t i, double *out);
int gguf_value_str(const gguf_value *v, uint64_t i, const char **out, size_t *len);
/* Copy a numeric array of exactly n elements into out, converting (integers must fit int32). */
int gguf_get_arr_f32(const gguf_file *f, const char *key, float *out, size_t n);
int gguf_get_arr_i32(const gguf_file *f, const char *key, int32_t *out, size_t n);

/* Format a value as text into buf (always NUL-terminated): numbers, "quoted strings" (long ones
 * cut), arrays as "[a, b, ...] (N x type)" with at most max_elems elements shown. Returns buf. */
char *gguf_value_format(const gguf_value *v, size_t max_elems, char *buf, size_t n);

/* ---- tensors ---------------------------------------------------------------------------- */

/* Drop the whole pages of [data, data + n) of a mapped file from the process's resident memory
 * (madvise MADV_DONTNEED on a read-only private mapping: a later read maps them again from the
 * page cache). For weights that live on in a packed copy. No-op for in-memory files or ranges
 * outside the mapping. */
void gguf_release_pages(const gguf_file *f, const void *data, size_t n);


int64_t gguf_n_tensors(const gguf_file *f);
/* Tensor i as a read-only view (name set); NULL when i is out of range. */
const tensor *gguf_tensor(const gguf_file *f, int64_t i);
/* File offset of tensor i's data. */
size_t gguf_tensor_file_offset(const gguf_file *f, int64_t i);
/* Index of the tensor named `name`, or -1. */
int64_t gguf_find_tensor(const gguf_file *f, const char *name);
/* The tensor named `name`, or COCHLEA_EFORMAT "FILE: missing tensor 'NAME'". */
int gguf_get_tensor(const gguf_file *f, const char *name, const tensor **out);
/* Like gguf_get_tensor and also check its dims (ggml order, ne[0] innermost; a negative entry
 * matches any size): "FILE: tensor 'NAME' has shape [..], expected [..]". */
int gguf_expect_tensor(const gguf_file *f, const char *name, int n_dims, const int64_t *ne, const tensor **out);

/* ---- writer ----------------------------------------------------------------------------- */

typedef struct gguf_writer gguf_writer;

/* Fills `nbytes` bytes of tensor data for a tensor added with gguf_writer_add_tensor_fn; called
 * once per tensor while the file is written. Returns COCHLEA_OK or an error code (set a message). */
typedef int (*gguf_fill_fn)(void *user, const char *name, void *dst, size_t nbytes);

int gguf_writer_new(gguf_writer **out);
void gguf_writer_free(gguf_writer *w);

/* Set a key. Keys keep the order they were first set in; setting an existing key replaces its
 * value in place. Strings are copied. */
int gguf_writer_set_u8(gguf_writer *w, const char *key, uint8_t v);
int gguf_writer_set_i8(gguf_writer *w, const char *key, int8_t v);
int gguf_writer_set_u16(gguf_writer *w, const char *key, uint16_t v);
int gguf_writer_set_i16(gguf_writer *w, const char *key, int16_t v);
int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t v);
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_set_f64(gguf_writer *w, const char *key, double v);
int gguf_writer_set_bool(gguf_writer *w, const char *key, int v);
int gguf_writer_set_str(gguf_writer *w, const char *key, const char *s);
/* A string of len bytes (may contain NUL bytes, e.g. a raw SentencePiece model). */
int gguf_writer_set_strn(gguf_writer *w, const char *key, const char *s, size_t len);
/* An array of n numbers of element type `elem` (not string/array) stored natively at data. */
int gguf_writer_set_arr(gguf_writer *w, const char *key, enum gguf_type elem, const void *data, size_t n);
/* An array of n NUL-terminated strings; with lens != NULL, string i has lens[i] bytes. */
int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, const size_t *lens,
                            size_t n);
/* Copy a value read from a file (any type) under `key`. */
int gguf_writer_set_value(gguf_writer *w, const char *key, const gguf_value *v);
/* Set general.alignment (a power of two) as ggml does: a u32 key that also sets the layout. */
int gguf_writer_set_alignment(gguf_writer *w, uint32_t alignment);

/* Add a tensor with dims ne[0..n_dims-1] (ggml order). Its data (tensor_nbytes bytes,
 * contiguous) is borrowed: it must stay valid until gguf_writer_write* returns. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, enum cochlea_type type, int n_dims,
                           const int64_t *ne, const void *data);
/* Add a tensor whose data `fn` produces while the file is written (streaming conversion). */
int gguf_writer_add_tensor_fn(gguf_writer *w, const char *name, enum cochlea_type type, int n_dims,
                              const int64_t *ne, gguf_fill_fn fn, void *user);

/* Size in bytes of the file the writer would produce now. */
int gguf_writer_size(const gguf_writer *w, size_t *out);
/* Write the file to `path` (through "path.part", renamed on success; removed on failure). */
int gguf_writer_write(gguf_writer *w, const char *path);
/* Write the file into a new malloc'ed buffer (64-byte aligned; free with free()). */
int gguf_writer_write_memory(gguf_writer *w, void **out, size_t *size);

/* ---- quantize --------------------------------------------------------------------------- */

typedef struct gguf_quantize_params {
    enum cochlea_type type;   /* F32, F16, BF16 or Q8_0 */
    const char *const *keep;  /* fnmatch(3) patterns of tensor names kept as they are */
    size_t n_keep;
    cochlea_progress_fn progress; /* tensors done/total; may be NULL */
    void *progress_user;
} gguf_quantize_params;

typedef struct gguf_quantize_stats {
    size_t in_bytes, out_bytes;   /* file sizes */
    int64_t n_tensors;
    int64_t n_converted;          /* weight matrices stored in the target type */
    int64_t n_f32;                /* 1-D tensors, norms and biases stored as F32 */
    int64_t n_fallback;           /* Q8_0 target but ne[0] % 32 != 0: stored as F16 */
    int64_t n_kept;               /* integer tensors and --keep matches, copied unchanged */
} gguf_quantize_stats;

gguf_quantize_params gguf_quantize_default_params(void);

/* Which type gguf_quantize stores tensor `t` in for target `type`:
 *  - integer tensors (I8/I16/I32) and names matching a keep pattern: unchanged;
 *  - weight matrices (at least two dims larger than 1, name not ending in "bias" and not
 *    containing "norm"): the target type, except a Q8_0 target with ne[0] % 32 != 0 -> F16;
 *  - every other float tensor (1-D, norms, biases): F32. */
enum cochlea_type gguf_quantize_choose(const tensor *t, const gguf_quantize_params *p);

/* Read `in`, convert tensors as gguf_quantize_choose says, copy every key, set general.file_type
 * (u32, llama.cpp's ids: 0 f32, 1 f16, 7 q8_0, 32 bf16) and write `out`. Refuses (COCHLEA_EINVAL)
 * when `out` is the same file as `in`. stats may be NULL. */
int gguf_quantize(const char *in, const char *out, const gguf_quantize_params *p, gguf_quantize_stats *stats);

/* llama.cpp's general.file_type id for a target type, or -1. */
int gguf_file_type_id(enum cochlea_type t);

#endif
