/* gguf_write.c - the GGUF writer (ggml's layout rules) and model quantization (see gguf.h). */
#include "gguf.h"

#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

/* One key: its name and the bytes that follow the key in the file (u32 type + value). */
typedef struct wkv {
    char *key;
    size_t key_len;
    uint8_t *blob;
    size_t blob_len;
} wkv;

typedef struct wtensor {
    char *name;
    size_t name_len;
    tensor t;           /* shape and type; t.data unused */
    const void *data;   /* borrowed data, or NULL when fn produces it */
    gguf_fill_fn fn;
    void *user;
} wtensor;

struct gguf_writer {
    wkv *kv;
    int64_t n_kv, cap_kv;
    wtensor *t;
    int64_t n_t, cap_t;
    size_t alignment;
};

int gguf_writer_new(gguf_writer **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return err_set(COCHLEA_ENOMEM, "gguf writer: out of memory");
    (*out)->alignment = GGUF_DEFAULT_ALIGNMENT;
    return COCHLEA_OK;
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w)
        return;
    for (int64_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].blob);
    }
    for (int64_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

/* ---- value blobs ----------------------------------------------------------------------------- */

typedef struct bbuf {
    uint8_t *p;
    size_t n, cap;
    int oom;
} bbuf;

static void bb_put(bbuf *b, const void *data, size_t n)
{
    if (b->oom)
        return;
    if (n > b->cap - b->n) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc - b->n < n) {
            if (nc > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            nc *= 2;
        }
        uint8_t *q = realloc(b->p, nc);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
    if (n)
        memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void bb_u32(bbuf *b, uint32_t v) { bb_put(b, &v, 4); }
static void bb_u64(bbuf *b, uint64_t v) { bb_put(b, &v, 8); }

static void bb_str(bbuf *b, const char *s, size_t len)
{
    bb_u64(b, (uint64_t)len);
    bb_put(b, s, len);
}

/* Store blob b (taken over) under key, replacing an existing key in place. */
static int set_blob(gguf_writer *w, const char *key, bbuf *b)
{
    if (b->oom) {
        free(b->p);
        return err_set(COCHLEA_ENOMEM, "gguf writer: out of memory for key '%s'", key);
    }
    for (int64_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key) == 0) {
            free(w->kv[i].blob);
            w->kv[i].blob = b->p;
            w->kv[i].blob_len = b->n;
            return COCHLEA_OK;
        }
    }
    char *k = strdup(key);
    if (!k || mem_grow((void **)&w->kv, &w->cap_kv, w->n_kv + 1, sizeof *w->kv)) {
        free(k);
        free(b->p);
        return err_set(COCHLEA_ENOMEM, "gguf writer: out of memory for key '%s'", key);
    }
    w->kv[w->n_kv++] = (wkv){k, strlen(k), b->p, b->n};
    return COCHLEA_OK;
}

static int check_key(const char *key)
{
    if (!key || !key[0])
        return err_set(COCHLEA_EINVAL, "gguf writer: empty key");
    if (strlen(key) > GGUF_MAX_KEY)
        return err_set(COCHLEA_EINVAL, "gguf writer: key of %zu bytes is too long (at most %d)", strlen(key),
                       GGUF_MAX_KEY);
    return COCHLEA_OK;
}

/* Set a scalar numeric value of type t (not string/array) stored at v. */
static int set_scalar(gguf_writer *w, const char *key, enum gguf_type t, const void *v)
{
    int rc = check_key(key);
    if (rc)
        return rc;
    if (gguf_type_size(t) == 0)
        return err_set(COCHLEA_EINVAL, "gguf writer: key '%s': %d is not a scalar value type", key, (int)t);
    uint32_t align = 0;
    if (strcmp(key, "general.alignment") == 0) {
        if (t != GGUF_TYPE_U32)
            return err_set(COCHLEA_EINVAL, "gguf writer: general.alignment must be a u32, got %s", gguf_type_name(t));
        memcpy(&align, v, 4);
        if (align == 0 || (align & (align - 1)) != 0)
            return err_set(COCHLEA_EINVAL, "gguf writer: general.alignment %" PRIu32 " is not a power of two", align);
    }
    if (t == GGUF_TYPE_BOOL && *(const uint8_t *)v > 1)
        return err_set(COCHLEA_EINVAL, "gguf writer: key '%s': bool value %u is not 0 or 1", key,
                       *(const uint8_t *)v);
    bbuf b = {0};
    bb_u32(&b, (uint32_t)t);
    bb_put(&b, v, gguf_type_size(t));
    rc = set_blob(w, key, &b);
    if (rc == COCHLEA_OK && align)
        w->alignment = align;
    return rc;
}

int gguf_writer_set_u8(gguf_writer *w, const char *key, uint8_t v) { return set_scalar(w, key, GGUF_TYPE_U8, &v); }
int gguf_writer_set_i8(gguf_writer *w, const char *key, int8_t v) { return set_scalar(w, key, GGUF_TYPE_I8, &v); }
int gguf_writer_set_u16(gguf_writer *w, const char *key, uint16_t v) { return set_scalar(w, key, GGUF_TYPE_U16, &v); }
int gguf_writer_set_i16(gguf_writer *w, const char *key, int16_t v) { return set_scalar(w, key, GGUF_TYPE_I16, &v); }
int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) { return set_scalar(w, key, GGUF_TYPE_U32, &v); }
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) { return set_scalar(w, key, GGUF_TYPE_I32, &v); }
int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v) { return set_scalar(w, key, GGUF_TYPE_U64, &v); }
int gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t v) { return set_scalar(w, key, GGUF_TYPE_I64, &v); }
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v) { return set_scalar(w, key, GGUF_TYPE_F32, &v); }
int gguf_writer_set_f64(gguf_writer *w, const char *key, double v) { return set_scalar(w, key, GGUF_TYPE_F64, &v); }

int gguf_writer_set_bool(gguf_writer *w, const char *key, int v)
{
    uint8_t b = v != 0;
    return set_scalar(w, key, GGUF_TYPE_BOOL, &b);
}

int gguf_writer_set_alignment(gguf_writer *w, uint32_t alignment)
{
    return gguf_writer_set_u32(w, "general.alignment", alignment);
}

int gguf_writer_set_strn(gguf_writer *w, const char *key, const char *s, size_t len)
{
    int rc = check_key(key);
    if (rc)
        return rc;
    if (strcmp(key, "general.alignment") == 0)
        return err_set(COCHLEA_EINVAL, "gguf writer: general.alignment must be a u32, got str");
    if (!s && len)
        return err_set(COCHLEA_EINVAL, "gguf writer: key '%s': NULL string", key);
    bbuf b = {0};
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_str(&b, s, len);
    return set_blob(w, key, &b);
}

int gguf_writer_set_str(gguf_writer *w, const char *key, const char *s)
{
    if (!s)
        return err_set(COCHLEA_EINVAL, "gguf writer: key '%s': NULL string", key ? key : "(null)");
    return gguf_writer_set_strn(w, key, s, strlen(s));
}

int gguf_writer_set_arr(gguf_writer *w, const char *key, enum gguf_type elem, const void *data, size_t n)
{
    int rc = check_key(key);
    if (rc)
        return rc;
    size_t es = gguf_type_size(elem), bytes;
    if (es == 0)
        return err_set(COCHLEA_EINVAL, "gguf writer: key '%s': arrays of %s need gguf_writer_set_arr_str or are not allowed",
                       key, gguf_type_name(elem));
    if (strcmp(key, "general.alignment") == 0)
        return err_set(COCHLEA_EINVAL, "gguf writer: general.alignment must be a u32, got an array");
    if (size_mul(es, n, &bytes))
        return err_set(COCHLEA_ERANGE, "gguf writer: key '%s': array of %zu elements is too large", key, n);
    if (!data && n)
        return err_set(COCHLEA_EINVAL, "gguf writer: key '%s': NULL array data", key);
    if (elem == GGUF_TYPE_BOOL)
        for (size_t i = 0; i < n; i++)
            if (((const uint8_t *)data)[i] > 1)
                return err_set(COCHLEA_EINVAL, "gguf writer: key '%s': bool element %zu is not 0 or 1", key, i);
    bbuf b = {0};
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, (uint32_t)elem);
    bb_u64(&b, (uint64_t)n);
    bb_put(&b, data, bytes);
    return set_blob(w, key, &b);
}

int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, const size_t *lens, size_t n)
{
    int rc = check_key(key);
    if (rc)
        return rc;
    if (strcmp(key, "general.alignment") == 0)
        return err_set(COCHLEA_EINVAL, "gguf writer: general.alignment must be a u32, got an array");
    if (!strs && n)
        return err_set(COCHLEA_EINVAL, "gguf writer: key '%s': NULL string array", key);
    bbuf b = {0};
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_u64(&b, (uint64_t)n);
    for (size_t i = 0; i < n; i++) {
        if (!strs[i] && (!lens || lens[i])) {
            free(b.p);
            return err_set(COCHLEA_EINVAL, "gguf writer: key '%s': string %zu is NULL", key, i);
        }
        bb_str(&b, strs[i], lens ? lens[i] : strlen(strs[i]));
    }
    return set_blob(w, key, &b);
}

int gguf_writer_set_value(gguf_writer *w, const char *key, const gguf_value *v)
{
    if (v->type == GGUF_TYPE_STRING)
        return gguf_writer_set_strn(w, key, v->str[0], (size_t)v->str_len[0]);
    if (v->type != GGUF_TYPE_ARRAY)
        return set_scalar(w, key, v->type, v->data);
    if (v->n > SIZE_MAX)
        return err_set(COCHLEA_ERANGE, "gguf writer: key '%s': array too large", key);
    if (v->arr_type != GGUF_TYPE_STRING)
        return gguf_writer_set_arr(w, key, v->arr_type, v->data, (size_t)v->n);
    size_t *lens = malloc((v->n ? (size_t)v->n : 1) * sizeof *lens);
    if (!lens)
        return err_set(COCHLEA_ENOMEM, "gguf writer: out of memory copying key '%s'", key);
    for (uint64_t i = 0; i < v->n; i++)
        lens[i] = (size_t)v->str_len[i];
    int rc = gguf_writer_set_arr_str(w, key, v->str, lens, (size_t)v->n);
    free(lens);
    return rc;
}

/* ---- tensors ------------------------------------------------------------------------------- */

static int add_tensor(gguf_writer *w, const char *name, enum cochlea_type type, int n_dims, const int64_t *ne,
                      const void *data, gguf_fill_fn fn, void *user)
{
    if (!name || !name[0])
        return err_set(COCHLEA_EINVAL, "gguf writer: tensor with an empty name");
    size_t len = strlen(name);
    if (len > GGUF_MAX_NAME)
        return err_set(COCHLEA_EINVAL, "gguf writer: tensor name '%.40s...' is %zu bytes long (at most %d)", name, len,
                       GGUF_MAX_NAME);
    if (!type_is_known((uint32_t)type))
        return err_set(COCHLEA_EUNSUPPORTED, "gguf writer: tensor '%s' has unknown type %d", name, (int)type);
    for (int64_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return err_set(COCHLEA_EINVAL, "gguf writer: duplicate tensor name '%s'", name);
    tensor t;
    int rc = tensor_init(&t, type, n_dims, ne);
    if (rc)
        return err_prefix(rc, "gguf writer: tensor '%s'", name);
    if (!data && !fn)
        return err_set(COCHLEA_EINVAL, "gguf writer: tensor '%s' has no data", name);
    char *copy = strdup(name);
    if (!copy || mem_grow((void **)&w->t, &w->cap_t, w->n_t + 1, sizeof *w->t)) {
        free(copy);
        return err_set(COCHLEA_ENOMEM, "gguf writer: out of memory adding tensor '%s'", name);
    }
    t.name = copy;
    w->t[w->n_t++] = (wtensor){copy, len, t, data, fn, user};
    return COCHLEA_OK;
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, enum cochlea_type type, int n_dims, const int64_t *ne,
                           const void *data)
{
    if (!data)
        return err_set(COCHLEA_EINVAL, "gguf writer: tensor '%s' has NULL data", name ? name : "(null)");
    return add_tensor(w, name, type, n_dims, ne, data, NULL, NULL);
}

int gguf_writer_add_tensor_fn(gguf_writer *w, const char *name, enum cochlea_type type, int n_dims,
                              const int64_t *ne, gguf_fill_fn fn, void *user)
{
    if (!fn)
        return err_set(COCHLEA_EINVAL, "gguf writer: tensor '%s' has no fill function", name ? name : "(null)");
    return add_tensor(w, name, type, n_dims, ne, NULL, fn, user);
}

/* ---- layout and output ---------------------------------------------------------------------- */

/* Round x up to a multiple of the power of two a; -1 on overflow. */
static int pad_to(size_t x, size_t a, size_t *out)
{
    return size_add(x, (a - x % a) % a, out);
}

/* Size of the metadata (header, keys, tensor infos) before padding. */
static int meta_size(const gguf_writer *w, size_t *out)
{
    size_t s = 24;
    for (int64_t i = 0; i < w->n_kv; i++)
        if (size_add(s, 8 + w->kv[i].key_len, &s) || size_add(s, w->kv[i].blob_len, &s))
            return -1;
    for (int64_t i = 0; i < w->n_t; i++)
        if (size_add(s, 8 + w->t[i].name_len + 4 + 8 * (size_t)w->t[i].t.n_dims + 4 + 8, &s))
            return -1;
    *out = s;
    return 0;
}

int gguf_writer_size(const gguf_writer *w, size_t *out)
{
    size_t s;
    if (meta_size(w, &s) || pad_to(s, w->alignment, &s))
        return err_set(COCHLEA_ERANGE, "gguf writer: file size overflows");
    for (int64_t i = 0; i < w->n_t; i++) {
        size_t n;
        if (pad_to(tensor_nbytes(&w->t[i].t), w->alignment, &n) || size_add(s, n, &s))
            return err_set(COCHLEA_ERANGE, "gguf writer: file size overflows");
    }
    *out = s;
    return COCHLEA_OK;
}

/* Where the bytes go: a stdio stream or a preallocated buffer. */
typedef struct sink {
    FILE *fp;
    uint8_t *buf;
    size_t pos, cap;
    const char *label;
} sink;

static int sink_put(sink *s, const void *p, size_t n)
{
    if (n == 0)
        return COCHLEA_OK;
    if (s->fp) {
        if (fwrite(p, 1, n, s->fp) != n)
            return err_set(COCHLEA_EIO, "%s: write failed: %s", s->label, strerror(errno));
    } else {
        if (n > s->cap - s->pos)
            return err_set(COCHLEA_EINTERNAL, "%s: writer layout exceeds the computed size", s->label);
        memcpy(s->buf + s->pos, p, n);
    }
    s->pos += n;
    return COCHLEA_OK;
}

static int sink_pad(sink *s, size_t alignment)
{
    static const uint8_t zeros[64];
    size_t pad = (alignment - s->pos % alignment) % alignment;
    while (pad) {
        size_t k = pad < sizeof zeros ? pad : sizeof zeros;
        int rc = sink_put(s, zeros, k);
        if (rc)
            return rc;
        pad -= k;
    }
    return COCHLEA_OK;
}

static int write_all(gguf_writer *w, sink *s)
{
    bbuf h = {0};
    bb_put(&h, "GGUF", 4);
    bb_u32(&h, 3);
    bb_u64(&h, (uint64_t)w->n_t);
    bb_u64(&h, (uint64_t)w->n_kv);
    for (int64_t i = 0; i < w->n_kv; i++) {
        bb_str(&h, w->kv[i].key, w->kv[i].key_len);
        bb_put(&h, w->kv[i].blob, w->kv[i].blob_len);
    }
    uint64_t offset = 0;
    for (int64_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        bb_str(&h, t->name, t->name_len);
        bb_u32(&h, (uint32_t)t->t.n_dims);
        for (int d = 0; d < t->t.n_dims; d++)
            bb_u64(&h, (uint64_t)t->t.ne[d]);
        bb_u32(&h, (uint32_t)t->t.type);
        bb_u64(&h, offset);
        size_t padded;
        if (pad_to(tensor_nbytes(&t->t), w->alignment, &padded) || u64_add(offset, padded, &offset)) {
            free(h.p);
            return err_set(COCHLEA_ERANGE, "%s: tensor offsets overflow", s->label);
        }
    }
    if (h.oom) {
        free(h.p);
        return err_set(COCHLEA_ENOMEM, "%s: out of memory building the header", s->label);
    }
    int rc = sink_put(s, h.p, h.n);
    free(h.p);
    if (!rc)
        rc = sink_pad(s, w->alignment);
    for (int64_t i = 0; i < w->n_t && !rc; i++) {
        const wtensor *t = &w->t[i];
        size_t n = tensor_nbytes(&t->t);
        if (t->data) {
            rc = sink_put(s, t->data, n);
        } else if (!s->fp) {
            if (n > s->cap - s->pos)
                return err_set(COCHLEA_EINTERNAL, "%s: writer layout exceeds the computed size", s->label);
            rc = t->fn(t->user, t->name, s->buf + s->pos, n);
            if (!rc)
                s->pos += n;
        } else {
            void *tmp = malloc(n ? n : 1);
            if (!tmp)
                return err_set(COCHLEA_ENOMEM, "%s: cannot allocate %zu bytes for tensor '%s'", s->label, n, t->name);
            rc = t->fn(t->user, t->name, tmp, n);
            if (!rc)
                rc = sink_put(s, tmp, n);
            free(tmp);
        }
        if (!rc)
            rc = sink_pad(s, w->alignment);
    }
    return rc;
}

int gguf_writer_write_memory(gguf_writer *w, void **out, size_t *size)
{
    size_t n;
    int rc = gguf_writer_size(w, &n);
    if (rc)
        return rc;
    size_t alloc = (n + 63) & ~(size_t)63;
    if (alloc < n)
        return err_set(COCHLEA_ERANGE, "gguf writer: file size overflows");
    uint8_t *buf = aligned_alloc(64, alloc ? alloc : 64);
    if (!buf)
        return err_set(COCHLEA_ENOMEM, "gguf writer: cannot allocate %zu bytes", n);
    sink s = {NULL, buf, 0, n, "<memory>"};
    rc = write_all(w, &s);
    if (!rc && s.pos != n)
        rc = err_set(COCHLEA_EINTERNAL, "<memory>: wrote %zu bytes, expected %zu", s.pos, n);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *size = n;
    return COCHLEA_OK;
}

int gguf_writer_write(gguf_writer *w, const char *path)
{
    if (!path || !path[0])
        return err_set(COCHLEA_EINVAL, "gguf writer: no output path");
    size_t plen = strlen(path);
    char *part = malloc(plen + 6);
    if (!part)
        return err_set(COCHLEA_ENOMEM, "%s: out of memory", path);
    memcpy(part, path, plen);
    memcpy(part + plen, ".part", 6);
    FILE *fp = fopen(part, "wb");
    if (!fp) {
        int rc = err_set(COCHLEA_EIO, "%s: cannot create: %s", part, strerror(errno));
        free(part);
        return rc;
    }
    setvbuf(fp, NULL, _IOFBF, 1 << 20);
    sink s = {fp, NULL, 0, 0, path};
    int rc = write_all(w, &s);
    if (fclose(fp) != 0 && !rc)
        rc = err_set(COCHLEA_EIO, "%s: write failed: %s", part, strerror(errno));
    if (!rc && rename(part, path) != 0)
        rc = err_set(COCHLEA_EIO, "%s: cannot rename %s into place: %s", path, part, strerror(errno));
    if (rc)
        unlink(part);
    free(part);
    return rc;
}

/* ---- quantize ------------------------------------------------------------------------------- */

gguf_quantize_params gguf_quantize_default_params(void)
{
    gguf_quantize_params p;
    memset(&p, 0, sizeof p);
    p.type = COCHLEA_TYPE_Q8_0;
    return p;
}

int gguf_file_type_id(enum cochlea_type t)
{
    switch (t) {
    case COCHLEA_TYPE_F32: return 0;
    case COCHLEA_TYPE_F16: return 1;
    case COCHLEA_TYPE_Q8_0: return 7;
    case COCHLEA_TYPE_BF16: return 32;
    default: return -1;
    }
}

static int is_float_type(enum cochlea_type t)
{
    return t == COCHLEA_TYPE_F32 || t == COCHLEA_TYPE_F16 || t == COCHLEA_TYPE_BF16 || t == COCHLEA_TYPE_Q8_0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Whether tensor t matches one of the keep patterns. */
static int keep_match(const tensor *t, const gguf_quantize_params *p)
{
    for (size_t i = 0; i < p->n_keep; i++)
        if (p->keep[i] && fnmatch(p->keep[i], t->name ? t->name : "", 0) == 0)
            return 1;
    return 0;
}

/* A weight matrix: at least two dims larger than 1, name not ending in "bias", no "norm" in it. */
static int is_weight_matrix(const tensor *t)
{
    const char *name = t->name ? t->name : "";
    int big = 0;
    for (int d = 0; d < t->n_dims; d++)
        big += t->ne[d] > 1;
    /* frontend.* holds feature-extraction constants (mel matrix, MVN stats): exact fp32 */
    return big >= 2 && !ends_with(name, "bias") && !strstr(name, "norm") && strncmp(name, "frontend.", 9) != 0;
}

enum cochlea_type gguf_quantize_choose(const tensor *t, const gguf_quantize_params *p)
{
    if (!is_float_type(t->type) || keep_match(t, p))
        return t->type;
    if (!is_weight_matrix(t))
        return COCHLEA_TYPE_F32;
    if (p->type == COCHLEA_TYPE_Q8_0 && t->ne[0] % QK8_0 != 0)
        return COCHLEA_TYPE_F16;
    return p->type;
}

typedef struct qjob {
    const tensor *src;
    enum cochlea_type dst;
    int64_t index, total;
    const gguf_quantize_params *p;
} qjob;

/* Fill callback: convert job->src row by row into the job's destination type. */
static int quantize_fill(void *user, const char *name, void *dst, size_t nbytes)
{
    qjob *j = user;
    const tensor *s = j->src;
    if (s->type == j->dst) {
        memcpy(dst, s->data, nbytes);
    } else {
        size_t ne0 = (size_t)s->ne[0], row;
        int64_t nrows = s->ne[1] * s->ne[2] * s->ne[3];
        int rc = type_row_size(j->dst, s->ne[0], &row);
        if (rc)
            return err_prefix(rc, "tensor '%s'", name);
        float *tmp = malloc(ne0 * sizeof *tmp);
        if (!tmp)
            return err_set(COCHLEA_ENOMEM, "tensor '%s': cannot allocate a row of %zu floats", name, ne0);
        for (int64_t r = 0; r < nrows; r++) {
            uint8_t *o = (uint8_t *)dst + (size_t)r * row;
            tensor_row_to_f32(s, r, tmp);
            switch (j->dst) {
            case COCHLEA_TYPE_F32: memcpy(o, tmp, ne0 * sizeof *tmp); break;
            case COCHLEA_TYPE_F16: f32_to_fp16_array(tmp, (uint16_t *)(void *)o, ne0); break;
            case COCHLEA_TYPE_BF16: f32_to_bf16_array(tmp, (uint16_t *)(void *)o, ne0); break;
            case COCHLEA_TYPE_Q8_0: q8_0_quantize(tmp, (block_q8_0 *)(void *)o, ne0); break;
            default:
                free(tmp);
                return err_set(COCHLEA_EINTERNAL, "tensor '%s': cannot convert %s to %s", name, type_name(s->type),
                               type_name(j->dst));
            }
        }
        free(tmp);
    }
    if (j->p->progress && j->p->progress((uint64_t)j->index + 1, (uint64_t)j->total, j->p->progress_user))
        return err_set(COCHLEA_ECANCELED, "quantize: canceled at tensor '%s'", name);
    return COCHLEA_OK;
}

int gguf_quantize(const char *in, const char *out, const gguf_quantize_params *p, gguf_quantize_stats *stats)
{
    if (!in || !out || !p)
        return err_set(COCHLEA_EINVAL, "gguf_quantize: missing input, output or parameters");
    if (gguf_file_type_id(p->type) < 0)
        return err_set(COCHLEA_EINVAL, "quantize: target type %s is not one of f32, f16, bf16, q8_0",
                       type_name(p->type) ? type_name(p->type) : "?");
    struct stat si, so;
    if (stat(in, &si) == 0 && stat(out, &so) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino)
        return err_set(COCHLEA_EINVAL, "%s: refusing to overwrite the input file (%s is the same file)", out, in);
    gguf_file *f;
    int rc = gguf_open(in, &f);
    if (rc)
        return rc;
    gguf_writer *w = NULL;
    qjob *jobs = NULL;
    gguf_quantize_stats st;
    memset(&st, 0, sizeof st);
    st.in_bytes = gguf_file_size(f);
    rc = gguf_writer_new(&w);
    for (int64_t i = 0; !rc && i < gguf_n_kv(f); i++)
        rc = gguf_writer_set_value(w, gguf_kv_key(f, i), gguf_kv_value(f, i));
    if (!rc)
        rc = gguf_writer_set_u32(w, "general.file_type", (uint32_t)gguf_file_type_id(p->type));
    int64_t nt = gguf_n_tensors(f);
    if (!rc) {
        jobs = calloc(nt > 0 ? (size_t)nt : 1, sizeof *jobs);
        if (!jobs)
            rc = err_set(COCHLEA_ENOMEM, "quantize: out of memory");
    }
    for (int64_t i = 0; !rc && i < nt; i++) {
        const tensor *t = gguf_tensor(f, i);
        enum cochlea_type dt = gguf_quantize_choose(t, p);
        jobs[i] = (qjob){t, dt, i, nt, p};
        st.n_tensors++;
        if (!is_float_type(t->type) || keep_match(t, p))
            st.n_kept++;
        else if (!is_weight_matrix(t))
            st.n_f32++;
        else if (dt == p->type)
            st.n_converted++;
        else
            st.n_fallback++;
        rc = gguf_writer_add_tensor_fn(w, t->name, dt, t->n_dims, t->ne, quantize_fill, &jobs[i]);
    }
    if (!rc)
        rc = gguf_writer_size(w, &st.out_bytes);
    if (!rc)
        rc = gguf_writer_write(w, out);
    gguf_writer_free(w);
    free(jobs);
    gguf_close(f);
    if (!rc && stats)
        *stats = st;
    return rc;
}
