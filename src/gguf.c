/* gguf.c - the validating, zero-copy GGUF reader and the key-value getters (see gguf.h). */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host"
#endif

#define GGUF_HEADER_SIZE 24
#define GGUF_MIN_KV_SIZE 13     /* u64 key length + 1 key byte + u32 type + 1 value byte */
#define GGUF_MIN_TENSOR_SIZE 33 /* u64 name length + 1 byte + u32 n_dims + u64 ne + u32 type + u64 offset */

/* ---- a bump allocator for the copied strings ---------------------------------------------- */

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
} arena_block;

typedef struct arena {
    arena_block *head;
} arena;

/* Allocate n bytes aligned to 16 from the arena; NULL when out of memory or n is absurd. */
static void *arena_alloc(arena *a, size_t n)
{
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n)
        return NULL;
    arena_block *b = a->head;
    if (!b || b->cap - b->used < need) {
        size_t cap = need > 65536 ? need : 65536;
        size_t total;
        if (size_add(sizeof(arena_block), cap, &total))
            return NULL;
        b = malloc(total);
        if (!b)
            return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += need;
    return p;
}

static void arena_free(arena *a)
{
    arena_block *b = a->head;
    while (b) {
        arena_block *n = b->next;
        free(b);
        b = n;
    }
    a->head = NULL;
}

/* ---- the file ---------------------------------------------------------------------------- */

struct gguf_file {
    char *label;
    const uint8_t *base;
    size_t size;
    void *map; /* mmap'ed region (gguf_open) or NULL */
    uint32_t version;
    size_t alignment;
    size_t data_offset;
    int64_t n_kv;
    gguf_value *kv;
    int64_t *kv_sorted; /* kv indices sorted by key */
    int64_t n_tensors;
    tensor *tensors;
    size_t *t_offset; /* file offset of each tensor's data */
    int64_t *t_sorted; /* tensor indices sorted by name */
    arena strings;
};

static const char *const value_type_names[GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "array", "u64", "i64", "f64",
};

const char *gguf_type_name(enum gguf_type t)
{
    if ((unsigned)t < GGUF_TYPE_COUNT)
        return value_type_names[t];
    return "?";
}

size_t gguf_type_size(enum gguf_type t)
{
    switch (t) {
    case GGUF_TYPE_U8: case GGUF_TYPE_I8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_U16: case GGUF_TYPE_I16: return 2;
    case GGUF_TYPE_U32: case GGUF_TYPE_I32: case GGUF_TYPE_F32: return 4;
    case GGUF_TYPE_U64: case GGUF_TYPE_I64: case GGUF_TYPE_F64: return 8;
    case GGUF_TYPE_STRING: case GGUF_TYPE_ARRAY: return 0;
    }
    return 0;
}

const char *gguf_ggml_type_name(uint32_t t)
{
    static const char *const names[] = {
        "f32", "f16", "q4_0", "q4_1", "q4_2", "q4_3", "q5_0", "q5_1", "q8_0", "q8_1",
        "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q8_k", "iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s",
        "iq4_nl", "iq3_s", "iq2_s", "iq4_xs", "i8", "i16", "i32", "i64", "f64", "iq1_m",
        "bf16", "q4_0_4_4", "q4_0_4_8", "q4_0_8_8", "tq1_0", "tq2_0", "iq4_nl_4_4", "iq4_nl_4_8",
        "iq4_nl_8_8", "mxfp4",
    };
    if (t < sizeof names / sizeof names[0])
        return names[t];
    return "?";
}

static int is_integer_type(enum gguf_type t)
{
    return t == GGUF_TYPE_U8 || t == GGUF_TYPE_I8 || t == GGUF_TYPE_U16 || t == GGUF_TYPE_I16 ||
           t == GGUF_TYPE_U32 || t == GGUF_TYPE_I32 || t == GGUF_TYPE_U64 || t == GGUF_TYPE_I64;
}

static int is_numeric_type(enum gguf_type t)
{
    return is_integer_type(t) || t == GGUF_TYPE_F32 || t == GGUF_TYPE_F64;
}

/* ---- parsing ------------------------------------------------------------------------------ */

typedef struct cursor {
    gguf_file *f;
    size_t pos;
} cursor;

/* Pointer to the next n bytes and advance, or NULL when fewer than n bytes are left. */
static const uint8_t *take(cursor *c, size_t n)
{
    if (n > c->f->size - c->pos)
        return NULL;
    const uint8_t *p = c->f->base + c->pos;
    c->pos += n;
    return p;
}

static int take_u32(cursor *c, uint32_t *v)
{
    const uint8_t *p = take(c, 4);
    if (!p)
        return -1;
    memcpy(v, p, 4);
    return 0;
}

static int take_u64(cursor *c, uint64_t *v)
{
    const uint8_t *p = take(c, 8);
    if (!p)
        return -1;
    memcpy(v, p, 8);
    return 0;
}

static int err_eof(const cursor *c, const char *what)
{
    return err_set(COCHLEA_EFORMAT, "%s: file ends inside %s (offset %zu, file %zu bytes)", c->f->label, what,
                   c->pos, c->f->size);
}

/* Read a GGUF string (u64 length + bytes) described by `what` in messages, copy it NUL-terminated
 * into the arena; out and len receive the copy. */
static int take_string(cursor *c, const char *what, const char **out, uint64_t *len)
{
    uint64_t n;
    size_t at = c->pos;
    if (take_u64(c, &n))
        return err_eof(c, what);
    if (n > c->f->size - c->pos)
        return err_set(COCHLEA_EFORMAT,
                       "%s: %s has a length of %" PRIu64 " bytes, past the end of the file (offset %zu, file %zu bytes)",
                       c->f->label, what, n, at, c->f->size);
    const uint8_t *p = take(c, (size_t)n);
    char *s = arena_alloc(&c->f->strings, (size_t)n + 1);
    if (!s)
        return err_set(COCHLEA_ENOMEM, "%s: cannot allocate %" PRIu64 " bytes for %s", c->f->label, n + 1, what);
    memcpy(s, p, (size_t)n);
    s[n] = '\0';
    *out = s;
    *len = n;
    return COCHLEA_OK;
}

static int check_bools(const gguf_file *f, const char *key, const uint8_t *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i] > 1)
            return err_set(COCHLEA_EFORMAT, "%s: key '%s': bool value %u is not 0 or 1", f->label, key, p[i]);
    return COCHLEA_OK;
}

/* Parse the value of key-value pair v (its key already read) at the cursor. */
static int parse_value(cursor *c, gguf_value *v)
{
    gguf_file *f = c->f;
    char what[GGUF_MAX_NAME + 64];
    uint32_t type;
    snprintf(what, sizeof what, "the type of key '%.*s'", GGUF_MAX_NAME, v->key);
    if (take_u32(c, &type))
        return err_eof(c, what);
    if (type >= GGUF_TYPE_COUNT)
        return err_set(COCHLEA_EFORMAT, "%s: key '%s' has unknown value type %" PRIu32, f->label, v->key, type);
    v->type = (enum gguf_type)type;
    v->arr_type = v->type;
    v->n = 1;
    if (v->type == GGUF_TYPE_STRING) {
        const char **sp = arena_alloc(&f->strings, sizeof(char *) + sizeof(uint64_t));
        if (!sp)
            return err_set(COCHLEA_ENOMEM, "%s: out of memory reading key '%s'", f->label, v->key);
        uint64_t *lp = (uint64_t *)(sp + 1);
        snprintf(what, sizeof what, "the string value of key '%.*s'", GGUF_MAX_NAME, v->key);
        int rc = take_string(c, what, &sp[0], &lp[0]);
        if (rc)
            return rc;
        v->str = sp;
        v->str_len = lp;
        return COCHLEA_OK;
    }
    if (v->type != GGUF_TYPE_ARRAY) {
        size_t sz = gguf_type_size(v->type);
        snprintf(what, sizeof what, "the %s value of key '%.*s'", gguf_type_name(v->type), GGUF_MAX_NAME, v->key);
        const uint8_t *p = take(c, sz);
        if (!p)
            return err_eof(c, what);
        v->data = p;
        if (v->type == GGUF_TYPE_BOOL)
            return check_bools(f, v->key, p, 1);
        return COCHLEA_OK;
    }
    /* array: element type, count, elements */
    uint32_t et;
    uint64_t n;
    snprintf(what, sizeof what, "the array header of key '%.*s'", GGUF_MAX_NAME, v->key);
    if (take_u32(c, &et) || take_u64(c, &n))
        return err_eof(c, what);
    if (et == GGUF_TYPE_ARRAY)
        return err_set(COCHLEA_EFORMAT, "%s: key '%s' is an array of arrays (nested arrays are not supported)",
                       f->label, v->key);
    if (et >= GGUF_TYPE_COUNT)
        return err_set(COCHLEA_EFORMAT, "%s: key '%s' is an array of unknown element type %" PRIu32, f->label,
                       v->key, et);
    v->arr_type = (enum gguf_type)et;
    v->n = n;
    size_t left = f->size - c->pos;
    if (et == GGUF_TYPE_STRING) {
        /* each string takes at least its 8-byte length */
        if (n > left / 8)
            return err_set(COCHLEA_EFORMAT,
                           "%s: key '%s': array of %" PRIu64 " strings runs past the end of the file (offset %zu, file %zu bytes)",
                           f->label, v->key, n, c->pos, f->size);
        const char **sp = arena_alloc(&f->strings, (size_t)n * sizeof(char *));
        uint64_t *lp = arena_alloc(&f->strings, (size_t)n * sizeof(uint64_t));
        if (!sp || !lp)
            return err_set(COCHLEA_ENOMEM, "%s: out of memory reading the %" PRIu64 " strings of key '%s'", f->label,
                           n, v->key);
        for (uint64_t i = 0; i < n; i++) {
            snprintf(what, sizeof what, "string %" PRIu64 " of key '%.*s'", i, GGUF_MAX_NAME, v->key);
            int rc = take_string(c, what, &sp[i], &lp[i]);
            if (rc)
                return rc;
        }
        v->str = sp;
        v->str_len = lp;
        return COCHLEA_OK;
    }
    size_t es = gguf_type_size(v->arr_type);
    if (n > left / es)
        return err_set(COCHLEA_EFORMAT,
                       "%s: key '%s': array of %" PRIu64 " %s elements runs past the end of the file (offset %zu, file %zu bytes)",
                       f->label, v->key, n, gguf_type_name(v->arr_type), c->pos, f->size);
    v->data = take(c, (size_t)n * es);
    if (v->arr_type == GGUF_TYPE_BOOL)
        return check_bools(f, v->key, v->data, n);
    return COCHLEA_OK;
}

/* Merge-sort idx[0..n-1] by cmp over file f (stable; qsort has no context argument). */
static void sort_index(const gguf_file *f, int64_t *idx, int64_t *tmp, int64_t n,
                       int (*cmp)(const gguf_file *, int64_t, int64_t))
{
    if (n < 2)
        return;
    int64_t h = n / 2;
    sort_index(f, idx, tmp, h, cmp);
    sort_index(f, idx + h, tmp, n - h, cmp);
    int64_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = cmp(f, idx[j], idx[i]) < 0 ? idx[j++] : idx[i++];
    while (i < h)
        tmp[k++] = idx[i++];
    while (j < n)
        tmp[k++] = idx[j++];
    memcpy(idx, tmp, (size_t)n * sizeof *idx);
}

static int by_key(const gguf_file *f, int64_t a, int64_t b)
{
    return strcmp(f->kv[a].key, f->kv[b].key);
}

static int by_name(const gguf_file *f, int64_t a, int64_t b)
{
    return strcmp(f->tensors[a].name, f->tensors[b].name);
}

static int by_offset(const gguf_file *f, int64_t a, int64_t b)
{
    size_t x = f->t_offset[a], y = f->t_offset[b];
    return x < y ? -1 : x > y;
}

/* An index 0..n-1 sorted with cmp; NULL when out of memory. */
static int64_t *sorted_index(const gguf_file *f, int64_t n, int (*cmp)(const gguf_file *, int64_t, int64_t))
{
    size_t cnt = n > 0 ? (size_t)n : 1;
    int64_t *idx = calloc(cnt, sizeof *idx);
    int64_t *tmp = calloc(cnt, sizeof *tmp);
    if (!idx || !tmp) {
        free(idx);
        free(tmp);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        idx[i] = i;
    sort_index(f, idx, tmp, n, cmp);
    free(tmp);
    return idx;
}

static int parse_kvs(cursor *c, uint64_t n_kv)
{
    gguf_file *f = c->f;
    int64_t cap = 0;
    char what[96];
    for (uint64_t i = 0; i < n_kv; i++) {
        if (mem_grow((void **)&f->kv, &cap, (int64_t)i + 1, sizeof *f->kv))
            return err_set(COCHLEA_ENOMEM, "%s: out of memory reading %" PRIu64 " keys", f->label, n_kv);
        gguf_value *v = &f->kv[i];
        memset(v, 0, sizeof *v);
        v->file = f->label;
        f->n_kv = (int64_t)i + 1;
        uint64_t len;
        snprintf(what, sizeof what, "the key of key-value pair %" PRIu64, i);
        int rc = take_string(c, what, &v->key, &len);
        if (rc)
            return rc;
        if (len == 0)
            return err_set(COCHLEA_EFORMAT, "%s: key-value pair %" PRIu64 " has an empty key", f->label, i);
        if (len > GGUF_MAX_KEY)
            return err_set(COCHLEA_EFORMAT, "%s: key of key-value pair %" PRIu64 " is %" PRIu64 " bytes long (at most %d)",
                           f->label, i, len, GGUF_MAX_KEY);
        if (strlen(v->key) != len)
            return err_set(COCHLEA_EFORMAT, "%s: key of key-value pair %" PRIu64 " contains a NUL byte", f->label, i);
        rc = parse_value(c, v);
        if (rc)
            return rc;
    }
    f->kv_sorted = sorted_index(f, f->n_kv, by_key);
    if (!f->kv_sorted)
        return err_set(COCHLEA_ENOMEM, "%s: out of memory indexing keys", f->label);
    for (int64_t i = 1; i < f->n_kv; i++)
        if (strcmp(f->kv[f->kv_sorted[i - 1]].key, f->kv[f->kv_sorted[i]].key) == 0)
            return err_set(COCHLEA_EFORMAT, "%s: duplicate key '%s'", f->label, f->kv[f->kv_sorted[i]].key);
    return COCHLEA_OK;
}

/* Natural alignment in memory of a tensor type's elements (Q8_0 blocks start with a u16). */
static size_t type_align(enum cochlea_type t)
{
    switch (t) {
    case COCHLEA_TYPE_F32: case COCHLEA_TYPE_I32: return 4;
    case COCHLEA_TYPE_F16: case COCHLEA_TYPE_BF16: case COCHLEA_TYPE_I16: case COCHLEA_TYPE_Q8_0: return 2;
    case COCHLEA_TYPE_I8: return 1;
    }
    return 1;
}

/* Format dims ne[0..n-1] as "[a, b, c]". */
static void format_dims(char *buf, size_t n, const uint64_t *ne, uint32_t nd)
{
    size_t o = 0;
    o += (size_t)snprintf(buf, n, "[");
    for (uint32_t d = 0; d < nd && o < n; d++)
        o += (size_t)snprintf(buf + o, n - o, "%s%" PRIu64, d ? ", " : "", ne[d]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

static int parse_tensor_infos(cursor *c, uint64_t n_tensors, uint64_t *rel_offset)
{
    gguf_file *f = c->f;
    char what[GGUF_MAX_NAME + 64];
    for (uint64_t i = 0; i < n_tensors; i++) {
        tensor *t = &f->tensors[i];
        const char *name;
        uint64_t len;
        snprintf(what, sizeof what, "the name of tensor %" PRIu64, i);
        int rc = take_string(c, what, &name, &len);
        if (rc)
            return rc;
        f->n_tensors = (int64_t)i + 1;
        t->name = name;
        if (len == 0)
            return err_set(COCHLEA_EFORMAT, "%s: tensor %" PRIu64 " has an empty name", f->label, i);
        if (len > GGUF_MAX_NAME)
            return err_set(COCHLEA_EFORMAT, "%s: the name of tensor %" PRIu64 " is %" PRIu64 " bytes long (at most %d)",
                           f->label, i, len, GGUF_MAX_NAME);
        if (strlen(name) != len)
            return err_set(COCHLEA_EFORMAT, "%s: the name of tensor %" PRIu64 " contains a NUL byte", f->label, i);
        uint32_t nd, type;
        uint64_t ne[TENSOR_MAX_DIMS];
        snprintf(what, sizeof what, "the info of tensor '%s'", name);
        if (take_u32(c, &nd))
            return err_eof(c, what);
        if (nd < 1 || nd > TENSOR_MAX_DIMS)
            return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' has %" PRIu32 " dimensions (1 to %d allowed)", f->label,
                           name, nd, TENSOR_MAX_DIMS);
        for (uint32_t d = 0; d < nd; d++)
            if (take_u64(c, &ne[d]))
                return err_eof(c, what);
        if (take_u32(c, &type) || take_u64(c, &rel_offset[i]))
            return err_eof(c, what);
        char dims[128];
        format_dims(dims, sizeof dims, ne, nd);
        for (uint32_t d = 0; d < nd; d++) {
            if (ne[d] == 0)
                return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' has size 0 in dimension %" PRIu32 " (shape %s)",
                               f->label, name, d, dims);
            if (ne[d] > (uint64_t)INT64_MAX)
                return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' has an impossible size in dimension %" PRIu32 " (shape %s)",
                               f->label, name, d, dims);
        }
        if (!type_is_known(type))
            return err_set(COCHLEA_EUNSUPPORTED,
                           "%s: tensor '%s' has type %" PRIu32 " (%s), which is not supported "
                           "(supported: f32, f16, bf16, q8_0, i8, i16, i32)",
                           f->label, name, type, gguf_ggml_type_name(type));
        enum cochlea_type tt = (enum cochlea_type)type;
        int bs = type_block(tt);
        if (ne[0] % (uint64_t)bs != 0)
            return err_set(COCHLEA_EFORMAT, "%s: tensor '%s': ne[0] = %" PRIu64 " is not a multiple of the %s block size %d",
                           f->label, name, ne[0], type_name(tt), bs);
        uint64_t nel = 1, bytes;
        for (uint32_t d = 0; d < nd; d++)
            if (u64_mul(nel, ne[d], &nel) || nel > (uint64_t)INT64_MAX)
                return err_set(COCHLEA_EFORMAT, "%s: tensor '%s': the element count of shape %s overflows", f->label,
                               name, dims);
        if (u64_mul(nel / (uint64_t)bs, type_size(tt), &bytes) || bytes > SIZE_MAX)
            return err_set(COCHLEA_EFORMAT, "%s: tensor '%s': the byte size of shape %s overflows", f->label, name,
                           dims);
        int64_t ne64[TENSOR_MAX_DIMS];
        for (uint32_t d = 0; d < nd; d++)
            ne64[d] = (int64_t)ne[d];
        rc = tensor_init(t, tt, (int)nd, ne64);
        if (rc)
            return err_prefix(rc, "%s: tensor '%s'", f->label, name);
        t->name = name;
    }
    return COCHLEA_OK;
}

/* Check each tensor's offset, alignment and extent, and that no two tensors overlap. */
static int place_tensors(gguf_file *f, const uint64_t *rel)
{
    for (int64_t i = 0; i < f->n_tensors; i++) {
        tensor *t = &f->tensors[i];
        size_t nbytes = tensor_nbytes(t);
        if (rel[i] % f->alignment != 0)
            return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' offset %" PRIu64 " is not a multiple of the alignment %zu",
                           f->label, t->name, rel[i], f->alignment);
        uint64_t abs = 0, end;
        if (u64_add(rel[i], f->data_offset, &abs) || u64_add(abs, nbytes, &end) || end > f->size)
            return err_set(COCHLEA_EFORMAT,
                           "%s: tensor '%s' ends past the end of the file (offset %" PRIu64 "%s, size %zu, file %zu)",
                           f->label, t->name, abs ? abs : rel[i], abs ? "" : " in the data section", nbytes, f->size);
        f->t_offset[i] = (size_t)abs;
        const uint8_t *p = f->base + abs;
        size_t al = type_align(t->type);
        if ((uintptr_t)p % al != 0)
            return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' data (file offset %" PRIu64 ") is not aligned to %zu bytes for %s",
                           f->label, t->name, abs, al, type_name(t->type));
        t->data = (void *)(uintptr_t)p; /* read-only view */
        t->owned = 0;
    }
    int64_t *idx = sorted_index(f, f->n_tensors, by_offset);
    if (!idx)
        return err_set(COCHLEA_ENOMEM, "%s: out of memory checking tensor offsets", f->label);
    for (int64_t k = 1; k < f->n_tensors; k++) {
        const tensor *a = &f->tensors[idx[k - 1]], *b = &f->tensors[idx[k]];
        size_t a_end = f->t_offset[idx[k - 1]] + tensor_nbytes(a);
        if (a_end > f->t_offset[idx[k]]) {
            int rc = err_set(COCHLEA_EFORMAT,
                             "%s: tensors '%s' (offset %zu, size %zu) and '%s' (offset %zu) overlap", f->label, a->name,
                             f->t_offset[idx[k - 1]], tensor_nbytes(a), b->name, f->t_offset[idx[k]]);
            free(idx);
            return rc;
        }
    }
    free(idx);
    return COCHLEA_OK;
}

static int parse(gguf_file *f)
{
    cursor c = {f, 0};
    if (f->size < 4 || memcmp(f->base, "GGUF", 4) != 0) {
        unsigned char m[4] = {0, 0, 0, 0};
        memcpy(m, f->base, f->size < 4 ? f->size : 4);
        if (f->size < 4)
            return err_set(COCHLEA_EFORMAT, "%s: not a GGUF file (only %zu bytes)", f->label, f->size);
        return err_set(COCHLEA_EFORMAT, "%s: not a GGUF file (magic %02x %02x %02x %02x, expected \"GGUF\")",
                       f->label, m[0], m[1], m[2], m[3]);
    }
    c.pos = 4;
    uint64_t n_tensors, n_kv;
    if (take_u32(&c, &f->version))
        return err_eof(&c, "the header");
    if (f->version == 1)
        return err_set(COCHLEA_EUNSUPPORTED, "%s: GGUF version 1 is not supported (re-convert the model to version 3)",
                       f->label);
    if (f->version != 2 && f->version != 3) {
        if ((f->version & 0xffff) == 0 && f->version != 0)
            return err_set(COCHLEA_EUNSUPPORTED, "%s: GGUF version 0x%08" PRIx32 " looks byte-swapped: big-endian files are not supported",
                           f->label, f->version);
        return err_set(COCHLEA_EUNSUPPORTED, "%s: GGUF version %" PRIu32 " is not supported (expected 3)", f->label,
                       f->version);
    }
    if (take_u64(&c, &n_tensors) || take_u64(&c, &n_kv))
        return err_eof(&c, "the header");
    size_t left = f->size - c.pos;
    if (n_kv > left / GGUF_MIN_KV_SIZE)
        return err_set(COCHLEA_EFORMAT, "%s: key-value count %" PRIu64 " is impossible for a file of %zu bytes", f->label,
                       n_kv, f->size);
    if (n_tensors > left / GGUF_MIN_TENSOR_SIZE)
        return err_set(COCHLEA_EFORMAT, "%s: tensor count %" PRIu64 " is impossible for a file of %zu bytes", f->label,
                       n_tensors, f->size);
    int rc = parse_kvs(&c, n_kv);
    if (rc)
        return rc;

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = gguf_find_key(f, "general.alignment");
    if (ai >= 0) {
        const gguf_value *v = &f->kv[ai];
        if (v->type != GGUF_TYPE_U32)
            return err_set(COCHLEA_EFORMAT, "%s: general.alignment has type %s, expected u32", f->label,
                           gguf_type_name(v->type));
        uint32_t a;
        memcpy(&a, v->data, 4);
        if (a == 0 || (a & (a - 1)) != 0)
            return err_set(COCHLEA_EFORMAT, "%s: general.alignment %" PRIu32 " is not a power of two", f->label, a);
        f->alignment = a;
    }

    /* tensor infos: count already bounded by the file size, so this allocation is too */
    size_t cnt = n_tensors ? (size_t)n_tensors : 1;
    f->tensors = calloc(cnt, sizeof *f->tensors);
    f->t_offset = calloc(cnt, sizeof *f->t_offset);
    uint64_t *rel = calloc(cnt, sizeof *rel);
    if (!f->tensors || !f->t_offset || !rel) {
        free(rel);
        return err_set(COCHLEA_ENOMEM, "%s: out of memory reading %" PRIu64 " tensor infos", f->label, n_tensors);
    }
    rc = parse_tensor_infos(&c, n_tensors, rel);
    if (rc) {
        free(rel);
        return rc;
    }
    f->t_sorted = sorted_index(f, f->n_tensors, by_name);
    if (!f->t_sorted) {
        free(rel);
        return err_set(COCHLEA_ENOMEM, "%s: out of memory indexing tensors", f->label);
    }
    for (int64_t i = 1; i < f->n_tensors; i++) {
        if (strcmp(f->tensors[f->t_sorted[i - 1]].name, f->tensors[f->t_sorted[i]].name) == 0) {
            free(rel);
            return err_set(COCHLEA_EFORMAT, "%s: duplicate tensor name '%s'", f->label,
                           f->tensors[f->t_sorted[i]].name);
        }
    }

    /* the data section starts at the next multiple of the alignment */
    size_t pad = (f->alignment - c.pos % f->alignment) % f->alignment;
    if (size_add(c.pos, pad, &f->data_offset) || (f->n_tensors > 0 && f->data_offset > f->size)) {
        free(rel);
        return err_set(COCHLEA_EFORMAT,
                       "%s: the data section would start at offset %zu + %zu padding, past the end of the file (%zu bytes)",
                       f->label, c.pos, pad, f->size);
    }
    rc = place_tensors(f, rel);
    free(rel);
    return rc;
}

static int open_common(gguf_file *f, gguf_file **out)
{
    int rc = parse(f);
    if (rc) {
        gguf_close(f);
        return rc;
    }
    *out = f;
    return COCHLEA_OK;
}

static gguf_file *file_new(const char *label)
{
    gguf_file *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->label = strdup(label);
    if (!f->label) {
        free(f);
        return NULL;
    }
    return f;
}

int gguf_open(const char *path, gguf_file **out)
{
    *out = NULL;
    if (!path)
        return err_set(COCHLEA_EINVAL, "gguf_open: no path given");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(COCHLEA_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return err_set(COCHLEA_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(COCHLEA_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return err_set(COCHLEA_ERANGE, "%s: file too large to map", path);
    }
    gguf_file *f = file_new(path);
    if (!f) {
        close(fd);
        return err_set(COCHLEA_ENOMEM, "%s: out of memory", path);
    }
    f->size = (size_t)st.st_size;
    if (f->size < GGUF_HEADER_SIZE) {
        /* too small to map usefully; parse a copy so the messages stay the same */
        static const uint8_t none[1];
        uint8_t head[GGUF_HEADER_SIZE];
        ssize_t got = f->size ? read(fd, head, f->size) : 0;
        close(fd);
        if (got < 0 || (size_t)got != f->size) {
            gguf_close(f);
            return err_set(COCHLEA_EIO, "%s: cannot read", path);
        }
        f->base = f->size ? head : none;
        int rc = parse(f);
        f->base = NULL;
        gguf_close(f);
        return rc ? rc : err_set(COCHLEA_EFORMAT, "%s: file too small", path);
    }
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) {
        gguf_close(f);
        return err_set(COCHLEA_EIO, "%s: cannot map: %s", path, strerror(e));
    }
    f->map = m;
    f->base = m;
    return open_common(f, out);
}

int gguf_open_memory_named(const void *data, size_t size, const char *label, gguf_file **out)
{
    static const uint8_t none[1];
    *out = NULL;
    if (!data && size)
        return err_set(COCHLEA_EINVAL, "gguf_open_memory: NULL buffer of %zu bytes", size);
    gguf_file *f = file_new(label ? label : "<memory>");
    if (!f)
        return err_set(COCHLEA_ENOMEM, "<memory>: out of memory");
    f->base = data ? data : none;
    f->size = size;
    return open_common(f, out);
}

int gguf_open_memory(const void *data, size_t size, gguf_file **out)
{
    return gguf_open_memory_named(data, size, NULL, out);
}

void gguf_close(gguf_file *f)
{
    if (!f)
        return;
    if (f->map)
        munmap(f->map, f->size);
    free(f->kv);
    free(f->kv_sorted);
    free(f->tensors);
    free(f->t_offset);
    free(f->t_sorted);
    arena_free(&f->strings);
    free(f->label);
    free(f);
}

const char *gguf_label(const gguf_file *f) { return f->label; }
uint32_t gguf_version(const gguf_file *f) { return f->version; }
size_t gguf_alignment(const gguf_file *f) { return f->alignment; }
size_t gguf_file_size(const gguf_file *f) { return f->size; }
size_t gguf_data_offset(const gguf_file *f) { return f->data_offset; }

/* ---- keys ---------------------------------------------------------------------------------- */

int64_t gguf_n_kv(const gguf_file *f) { return f->n_kv; }

int64_t gguf_find_key(const gguf_file *f, const char *key)
{
    int64_t lo = 0, hi = f->n_kv;
    if (!key || !f->kv_sorted)
        return -1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->kv[f->kv_sorted[mid]].key, key);
        if (c == 0)
            return f->kv_sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int gguf_has_key(const gguf_file *f, const char *key) { return gguf_find_key(f, key) >= 0; }

const char *gguf_kv_key(const gguf_file *f, int64_t i)
{
    return i >= 0 && i < f->n_kv ? f->kv[i].key : NULL;
}

const gguf_value *gguf_kv_value(const gguf_file *f, int64_t i)
{
    return i >= 0 && i < f->n_kv ? &f->kv[i] : NULL;
}

/* The value of `key` with scalar type `want`, or an error naming the key. */
static int get_typed(const gguf_file *f, const char *key, enum gguf_type want, const gguf_value **out)
{
    int64_t i = gguf_find_key(f, key);
    if (i < 0)
        return err_set(COCHLEA_EFORMAT, "%s: missing key '%s'", f->label, key ? key : "(null)");
    const gguf_value *v = &f->kv[i];
    if (v->type != want) {
        if (v->type == GGUF_TYPE_ARRAY)
            return err_set(COCHLEA_EFORMAT, "%s: key '%s' is an array of %s, expected a single %s", f->label, key,
                           gguf_type_name(v->arr_type), gguf_type_name(want));
        return err_set(COCHLEA_EFORMAT, "%s: key '%s' has type %s, expected %s", f->label, key,
                       gguf_type_name(v->type), gguf_type_name(want));
    }
    *out = v;
    return COCHLEA_OK;
}

#define DEFINE_GETTER(fname, ctype, gtype)                                     \
    int fname(const gguf_file *f, const char *key, ctype *out)                 \
    {                                                                          \
        const gguf_value *v;                                                   \
        int rc = get_typed(f, key, gtype, &v);                                 \
        if (rc)                                                                \
            return rc;                                                         \
        memcpy(out, v->data, sizeof(ctype));                                   \
        return COCHLEA_OK;                                                     \
    }

DEFINE_GETTER(gguf_get_u32, uint32_t, GGUF_TYPE_U32)
DEFINE_GETTER(gguf_get_i32, int32_t, GGUF_TYPE_I32)
DEFINE_GETTER(gguf_get_u64, uint64_t, GGUF_TYPE_U64)
DEFINE_GETTER(gguf_get_i64, int64_t, GGUF_TYPE_I64)
DEFINE_GETTER(gguf_get_f32, float, GGUF_TYPE_F32)
DEFINE_GETTER(gguf_get_f64, double, GGUF_TYPE_F64)

int gguf_get_bool(const gguf_file *f, const char *key, int *out)
{
    const gguf_value *v;
    int rc = get_typed(f, key, GGUF_TYPE_BOOL, &v);
    if (rc)
        return rc;
    *out = *(const uint8_t *)v->data != 0;
    return COCHLEA_OK;
}

int gguf_get_str(const gguf_file *f, const char *key, const char **out, size_t *len)
{
    const gguf_value *v;
    int rc = get_typed(f, key, GGUF_TYPE_STRING, &v);
    if (rc)
        return rc;
    *out = v->str[0];
    if (len)
        *len = (size_t)v->str_len[0];
    return COCHLEA_OK;
}

/* Element i of numeric data of type t as either a signed or unsigned 64-bit value, or a double. */
typedef struct num {
    int is_float;
    int is_unsigned;
    int64_t i;
    uint64_t u;
    double d;
} num;

static num read_num(enum gguf_type t, const void *data, uint64_t i)
{
    num r = {0, 0, 0, 0, 0.0};
    const uint8_t *p = (const uint8_t *)data + i * gguf_type_size(t);
    switch (t) {
    case GGUF_TYPE_U8: { uint8_t x; memcpy(&x, p, 1); r.is_unsigned = 1; r.u = x; break; }
    case GGUF_TYPE_BOOL: { uint8_t x; memcpy(&x, p, 1); r.is_unsigned = 1; r.u = x; break; }
    case GGUF_TYPE_I8: { int8_t x; memcpy(&x, p, 1); r.i = x; break; }
    case GGUF_TYPE_U16: { uint16_t x; memcpy(&x, p, 2); r.is_unsigned = 1; r.u = x; break; }
    case GGUF_TYPE_I16: { int16_t x; memcpy(&x, p, 2); r.i = x; break; }
    case GGUF_TYPE_U32: { uint32_t x; memcpy(&x, p, 4); r.is_unsigned = 1; r.u = x; break; }
    case GGUF_TYPE_I32: { int32_t x; memcpy(&x, p, 4); r.i = x; break; }
    case GGUF_TYPE_U64: { uint64_t x; memcpy(&x, p, 8); r.is_unsigned = 1; r.u = x; break; }
    case GGUF_TYPE_I64: { int64_t x; memcpy(&x, p, 8); r.i = x; break; }
    case GGUF_TYPE_F32: { float x; memcpy(&x, p, 4); r.is_float = 1; r.d = x; break; }
    case GGUF_TYPE_F64: { double x; memcpy(&x, p, 8); r.is_float = 1; r.d = x; break; }
    default: break;
    }
    if (!r.is_float)
        r.d = r.is_unsigned ? (double)r.u : (double)r.i;
    return r;
}

static int check_index(const gguf_value *v, uint64_t i)
{
    if (i >= v->n)
        return err_set(COCHLEA_ERANGE, "%s: key '%s': index %" PRIu64 " out of range (%" PRIu64 " elements)", v->file,
                       v->key, i, v->n);
    return COCHLEA_OK;
}

int gguf_value_int(const gguf_value *v, uint64_t i, int64_t *out)
{
    int rc = check_index(v, i);
    if (rc)
        return rc;
    if (!is_integer_type(v->arr_type) && v->arr_type != GGUF_TYPE_BOOL)
        return err_set(COCHLEA_EFORMAT, "%s: key '%s' holds %s values, expected integers", v->file, v->key,
                       gguf_type_name(v->arr_type));
    num x = read_num(v->arr_type, v->data, i);
    if (x.is_unsigned) {
        if (x.u > (uint64_t)INT64_MAX)
            return err_set(COCHLEA_ERANGE, "%s: key '%s': value %" PRIu64 " does not fit in int64", v->file, v->key,
                           x.u);
        *out = (int64_t)x.u;
    } else {
        *out = x.i;
    }
    return COCHLEA_OK;
}

int gguf_value_float(const gguf_value *v, uint64_t i, double *out)
{
    int rc = check_index(v, i);
    if (rc)
        return rc;
    if (!is_numeric_type(v->arr_type))
        return err_set(COCHLEA_EFORMAT, "%s: key '%s' holds %s values, expected numbers", v->file, v->key,
                       gguf_type_name(v->arr_type));
    *out = read_num(v->arr_type, v->data, i).d;
    return COCHLEA_OK;
}

int gguf_value_str(const gguf_value *v, uint64_t i, const char **out, size_t *len)
{
    int rc = check_index(v, i);
    if (rc)
        return rc;
    if (v->arr_type != GGUF_TYPE_STRING)
        return err_set(COCHLEA_EFORMAT, "%s: key '%s' holds %s values, expected strings", v->file, v->key,
                       gguf_type_name(v->arr_type));
    *out = v->str[i];
    if (len)
        *len = (size_t)v->str_len[i];
    return COCHLEA_OK;
}

int gguf_get_int(const gguf_file *f, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    int64_t k = gguf_find_key(f, key);
    if (k < 0)
        return err_set(COCHLEA_EFORMAT, "%s: missing key '%s'", f->label, key ? key : "(null)");
    const gguf_value *v = &f->kv[k];
    if (!is_integer_type(v->type))
        return err_set(COCHLEA_EFORMAT, "%s: key '%s' has type %s, expected an integer", f->label, key,
                       gguf_type_name(v->type));
    num x = read_num(v->type, v->data, 0);
    if (x.is_unsigned ? (x.u > (uint64_t)INT64_MAX || (int64_t)x.u > hi || (int64_t)x.u < lo) : (x.i < lo || x.i > hi)) {
        if (x.is_unsigned)
            return err_set(COCHLEA_ERANGE, "%s: key '%s' is %" PRIu64 ", outside [%" PRId64 ", %" PRId64 "]", f->label,
                           key, x.u, lo, hi);
        return err_set(COCHLEA_ERANGE, "%s: key '%s' is %" PRId64 ", outside [%" PRId64 ", %" PRId64 "]", f->label, key,
                       x.i, lo, hi);
    }
    *out = x.is_unsigned ? (int64_t)x.u : x.i;
    return COCHLEA_OK;
}

int gguf_get_float(const gguf_file *f, const char *key, double *out)
{
    int64_t k = gguf_find_key(f, key);
    if (k < 0)
        return err_set(COCHLEA_EFORMAT, "%s: missing key '%s'", f->label, key ? key : "(null)");
    const gguf_value *v = &f->kv[k];
    if (!is_numeric_type(v->type))
        return err_set(COCHLEA_EFORMAT, "%s: key '%s' has type %s, expected a number", f->label, key,
                       gguf_type_name(v->type));
    *out = read_num(v->type, v->data, 0).d;
    return COCHLEA_OK;
}

int gguf_get_array(const gguf_file *f, const char *key, const gguf_value **out)
{
    int64_t k = gguf_find_key(f, key);
    if (k < 0)
        return err_set(COCHLEA_EFORMAT, "%s: missing key '%s'", f->label, key ? key : "(null)");
    const gguf_value *v = &f->kv[k];
    if (v->type != GGUF_TYPE_ARRAY)
        return err_set(COCHLEA_EFORMAT, "%s: key '%s' has type %s, expected an array", f->label, key,
                       gguf_type_name(v->type));
    *out = v;
    return COCHLEA_OK;
}

/* The array `key` checked to hold exactly n numbers. */
static int get_num_array(const gguf_file *f, const char *key, size_t n, const gguf_value **out)
{
    const gguf_value *v;
    int rc = gguf_get_array(f, key, &v);
    if (rc)
        return rc;
    if (!is_numeric_type(v->arr_type))
        return err_set(COCHLEA_EFORMAT, "%s: key '%s' is an array of %s, expected numbers", f->label, key,
                       gguf_type_name(v->arr_type));
    if (v->n != n)
        return err_set(COCHLEA_EFORMAT, "%s: key '%s' has %" PRIu64 " elements, expected %zu", f->label, key, v->n, n);
    *out = v;
    return COCHLEA_OK;
}

int gguf_get_arr_f32(const gguf_file *f, const char *key, float *out, size_t n)
{
    const gguf_value *v;
    int rc = get_num_array(f, key, n, &v);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        out[i] = (float)read_num(v->arr_type, v->data, i).d;
    return COCHLEA_OK;
}

int gguf_get_arr_i32(const gguf_file *f, const char *key, int32_t *out, size_t n)
{
    const gguf_value *v;
    int rc = get_num_array(f, key, n, &v);
    if (rc)
        return rc;
    if (!is_integer_type(v->arr_type))
        return err_set(COCHLEA_EFORMAT, "%s: key '%s' is an array of %s, expected integers", f->label, key,
                       gguf_type_name(v->arr_type));
    for (size_t i = 0; i < n; i++) {
        num x = read_num(v->arr_type, v->data, i);
        int ok = x.is_unsigned ? x.u <= INT32_MAX : (x.i >= INT32_MIN && x.i <= INT32_MAX);
        if (!ok)
            return err_set(COCHLEA_ERANGE, "%s: key '%s': element %zu does not fit in int32", f->label, key, i);
        out[i] = (int32_t)(x.is_unsigned ? (int64_t)x.u : x.i);
    }
    return COCHLEA_OK;
}

/* Append text to buf at *o (bounded, always NUL-terminated). */
static void append(char *buf, size_t n, size_t *o, const char *fmt, ...) COCHLEA_PRINTF(4, 5);
static void append(char *buf, size_t n, size_t *o, const char *fmt, ...)
{
    if (*o >= n)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *o, n - *o, fmt, ap);
    va_end(ap);
    if (k > 0)
        *o += (size_t)k < n - *o ? (size_t)k : n - *o - 1;
}

/* Append a string as "text" with control characters and quotes escaped, cut after 60 bytes. */
static void append_str(char *buf, size_t n, size_t *o, const char *s, uint64_t len)
{
    append(buf, n, o, "\"");
    uint64_t shown = len > 60 ? 60 : len;
    for (uint64_t i = 0; i < shown; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            append(buf, n, o, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            append(buf, n, o, "\\x%02x", ch);
        else
            append(buf, n, o, "%c", ch);
    }
    append(buf, n, o, len > shown ? "\"... (%" PRIu64 " bytes)" : "\"", len);
}

/* The shortest %g text that reads back as the same float (is_f32) or double. */
static const char *shortest_float(double d, int is_f32, char *buf, size_t n)
{
    for (int prec = is_f32 ? 6 : 15; prec <= (is_f32 ? 9 : 17); prec++) {
        snprintf(buf, n, "%.*g", prec, d);
        if (is_f32 ? strtof(buf, NULL) == (float)d : strtod(buf, NULL) == d)
            break;
    }
    return buf;
}

static void append_num(char *buf, size_t n, size_t *o, enum gguf_type t, const void *data, uint64_t i)
{
    char tmp[40];
    num x = read_num(t, data, i);
    if (t == GGUF_TYPE_BOOL)
        append(buf, n, o, "%s", x.u ? "true" : "false");
    else if (x.is_float)
        append(buf, n, o, "%s", shortest_float(x.d, t == GGUF_TYPE_F32, tmp, sizeof tmp));
    else if (x.is_unsigned)
        append(buf, n, o, "%" PRIu64, x.u);
    else
        append(buf, n, o, "%" PRId64, x.i);
}

char *gguf_value_format(const gguf_value *v, size_t max_elems, char *buf, size_t n)
{
    size_t o = 0;
    if (n == 0)
        return buf;
    buf[0] = '\0';
    if (v->type != GGUF_TYPE_ARRAY) {
        if (v->type == GGUF_TYPE_STRING)
            append_str(buf, n, &o, v->str[0], v->str_len[0]);
        else
            append_num(buf, n, &o, v->type, v->data, 0);
        return buf;
    }
    append(buf, n, &o, "[");
    for (uint64_t i = 0; i < v->n && i < max_elems; i++) {
        if (i)
            append(buf, n, &o, ", ");
        if (v->arr_type == GGUF_TYPE_STRING)
            append_str(buf, n, &o, v->str[i], v->str_len[i]);
        else
            append_num(buf, n, &o, v->arr_type, v->data, i);
    }
    append(buf, n, &o, "%s] (%" PRIu64 " x %s)", v->n > max_elems ? (v->n && max_elems ? ", ..." : "...") : "", v->n,
           gguf_type_name(v->arr_type));
    return buf;
}

/* ---- tensors ------------------------------------------------------------------------------- */

int64_t gguf_n_tensors(const gguf_file *f) { return f->n_tensors; }

const tensor *gguf_tensor(const gguf_file *f, int64_t i)
{
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

size_t gguf_tensor_file_offset(const gguf_file *f, int64_t i)
{
    return i >= 0 && i < f->n_tensors ? f->t_offset[i] : 0;
}

int64_t gguf_find_tensor(const gguf_file *f, const char *name)
{
    int64_t lo = 0, hi = f->n_tensors;
    if (!name || !f->t_sorted)
        return -1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[f->t_sorted[mid]].name, name);
        if (c == 0)
            return f->t_sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int gguf_get_tensor(const gguf_file *f, const char *name, const tensor **out)
{
    int64_t i = gguf_find_tensor(f, name);
    if (i < 0)
        return err_set(COCHLEA_EFORMAT, "%s: missing tensor '%s'", f->label, name ? name : "(null)");
    *out = &f->tensors[i];
    return COCHLEA_OK;
}

int gguf_expect_tensor(const gguf_file *f, const char *name, int n_dims, const int64_t *ne, const tensor **out)
{
    const tensor *t = NULL;
    int rc = gguf_get_tensor(f, name, &t);
    if (rc)
        return rc;
    int ok = n_dims >= 1 && n_dims <= TENSOR_MAX_DIMS;
    for (int d = 0; ok && d < TENSOR_MAX_DIMS; d++) {
        int64_t want = d < n_dims ? ne[d] : 1;
        if (want >= 0 && t->ne[d] != want)
            ok = 0;
    }
    if (!ok) {
        char got[128], exp[128];
        size_t o = 0, e = 0;
        append(got, sizeof got, &o, "[");
        for (int d = 0; d < t->n_dims; d++)
            append(got, sizeof got, &o, "%s%" PRId64, d ? ", " : "", t->ne[d]);
        append(got, sizeof got, &o, "]");
        append(exp, sizeof exp, &e, "[");
        for (int d = 0; d < n_dims && d < TENSOR_MAX_DIMS; d++) {
            if (ne[d] >= 0)
                append(exp, sizeof exp, &e, "%s%" PRId64, d ? ", " : "", ne[d]);
            else
                append(exp, sizeof exp, &e, "%s*", d ? ", " : "");
        }
        append(exp, sizeof exp, &e, "]");
        return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' has shape %s, expected %s (ggml order)", f->label, name, got,
                       exp);
    }
    *out = t;
    return COCHLEA_OK;
}

void gguf_release_pages(const gguf_file *f, const void *data, size_t n)
{
    if (!f || !f->map || !data || n == 0)
        return;
    const uintptr_t base = (uintptr_t)f->map, end = base + f->size, p = (uintptr_t)data;
    if (p < base || p >= end || n > end - p)
        return;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = (p + page - 1) / page * page, b = (p + n) / page * page;
    if (b > a)
        madvise((void *)a, b - a, MADV_DONTNEED);
}
