/* test_gguf.c - GGUF reader/writer round trips, getters, a corpus of broken files, quantize.
 *
 * Without arguments it runs the Check suite. tests/gguf_python.py also uses two helper modes:
 *   test_gguf dump FILE      print every key and tensor (values and raw bytes) as text
 *   test_gguf copy IN OUT    rewrite IN with the C writer (same keys, tensors and order)
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "gguf.h"
#include "tensor.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------------- */

/* A scratch folder made once by main() (before Check forks the tests), removed at the end. */
static char tmpdir[64];

static void make_tmpdir(void)
{
    ck_assert_msg(tmpdir[0] != '\0', "no scratch folder");
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        char path[512];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(tmpdir);
}

static void tmp_path(char *buf, size_t n, const char *name)
{
    make_tmpdir();
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

static void *read_file(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    void *p = malloc(n > 0 ? (size_t)n : 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(fread(p, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *size = (size_t)n;
    return p;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(p, 1, n, fp), n);
    fclose(fp);
}

/* Open a copy of buf[0..n) in an exactly sized heap block, so ASan sees any over-read. */
static int open_exact(const void *buf, size_t n, gguf_file **f, void **copy)
{
    *copy = aligned_alloc(64, n ? (n + 63) / 64 * 64 : 64);
    ck_assert_ptr_nonnull(*copy);
    if (n)
        memcpy(*copy, buf, n);
    /* poison-free exact size: memory past n is never touched by a correct reader */
    return gguf_open_memory(*copy, n, f);
}

#define assert_err(rc, code, substr)                                                                       \
    do {                                                                                                   \
        ck_assert_msg((rc) == (code), "expected code %d, got %d (%s)", (code), (rc), cochlea_last_error()); \
        ck_assert_msg(strstr(cochlea_last_error(), (substr)) != NULL, "message '%s' lacks '%s'",           \
                      cochlea_last_error(), (substr));                                                     \
    } while (0)

/* ---- round trip: every KV type and every tensor type ------------------------------------------ */

#define N_Q8 (64 * 3)

typedef struct sample {
    float f32[5];
    uint16_t f16[7 * 3];
    uint16_t bf16[4 * 3 * 2];
    block_q8_0 q8[N_Q8 / QK8_0];
    int8_t i8[3 * 2 * 2 * 2];
    int16_t i16[9];
    int32_t i32[2 * 5];
} sample;

static void sample_fill(sample *s, uint64_t seed)
{
    test_rng r = {seed};
    float tmp[N_Q8];
    test_fill(&r, s->f32, 5, -3, 3);
    for (size_t i = 0; i < 21; i++)
        s->f16[i] = f32_to_fp16(test_rng_uniform(&r, -2, 2));
    for (size_t i = 0; i < 24; i++)
        s->bf16[i] = f32_to_bf16(test_rng_uniform(&r, -100, 100));
    test_fill(&r, tmp, N_Q8, -1, 1);
    q8_0_quantize(tmp, s->q8, N_Q8);
    for (size_t i = 0; i < 24; i++)
        s->i8[i] = (int8_t)test_rng_int(&r, -128, 127);
    for (size_t i = 0; i < 9; i++)
        s->i16[i] = (int16_t)test_rng_int(&r, -32768, 32767);
    for (size_t i = 0; i < 10; i++)
        s->i32[i] = (int32_t)(test_rng_next(&r) & 0xffffffffu);
}

static const char *const sample_keys[] = {
    "t.u8", "t.i8", "t.u16", "t.i16", "t.u32", "t.i32", "t.u64", "t.i64", "t.f32", "t.f64", "t.bool",
    "t.str", "t.bytes", "t.arr_u8", "t.arr_i8", "t.arr_u16", "t.arr_i16", "t.arr_u32", "t.arr_i32",
    "t.arr_u64", "t.arr_i64", "t.arr_f32", "t.arr_f64", "t.arr_bool", "t.arr_str", "t.arr_empty",
    "t.arr_str_empty",
};
#define N_SAMPLE_KEYS (sizeof sample_keys / sizeof sample_keys[0])

static const uint8_t a_u8[] = {0, 7, 255};
static const int8_t a_i8[] = {-128, 0, 127};
static const uint16_t a_u16[] = {0, 1, 65535};
static const int16_t a_i16[] = {-32768, 5, 32767};
static const uint32_t a_u32[] = {0, 123456789, 4294967295u};
static const int32_t a_i32[] = {INT32_MIN, -1, INT32_MAX};
static const uint64_t a_u64[] = {0, 1ull << 40, UINT64_MAX};
static const int64_t a_i64[] = {INT64_MIN, -5, INT64_MAX};
static const float a_f32[] = {-1.5f, 0.0f, 3.0e38f};
static const double a_f64[] = {1e-300, -2.5, 1e300};
static const uint8_t a_bool[] = {1, 0, 1, 1};
static const char *const a_str[] = {"<unk>", "", "▁hello", "wörld"};

/* A writer holding every KV type and one tensor of every type (data borrowed from s). */
static gguf_writer *sample_writer(const sample *s, uint32_t alignment)
{
    gguf_writer *w;
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    if (alignment)
        ck_assert_int_eq(gguf_writer_set_alignment(w, alignment), 0);
    ck_assert_int_eq(gguf_writer_set_u8(w, "t.u8", 200), 0);
    ck_assert_int_eq(gguf_writer_set_i8(w, "t.i8", -100), 0);
    ck_assert_int_eq(gguf_writer_set_u16(w, "t.u16", 60000), 0);
    ck_assert_int_eq(gguf_writer_set_i16(w, "t.i16", -30000), 0);
    ck_assert_int_eq(gguf_writer_set_u32(w, "t.u32", 4000000000u), 0);
    ck_assert_int_eq(gguf_writer_set_i32(w, "t.i32", -2000000000), 0);
    ck_assert_int_eq(gguf_writer_set_u64(w, "t.u64", UINT64_MAX), 0);
    ck_assert_int_eq(gguf_writer_set_i64(w, "t.i64", INT64_MIN), 0);
    ck_assert_int_eq(gguf_writer_set_f32(w, "t.f32", 3.25f), 0);
    ck_assert_int_eq(gguf_writer_set_f64(w, "t.f64", -1e300), 0);
    ck_assert_int_eq(gguf_writer_set_bool(w, "t.bool", 1), 0);
    ck_assert_int_eq(gguf_writer_set_str(w, "t.str", "hello wörld"), 0);
    ck_assert_int_eq(gguf_writer_set_strn(w, "t.bytes", "a\0b", 3), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "t.arr_u8", GGUF_TYPE_U8, a_u8, 3), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "t.arr_i8", GGUF_TYPE_I8, a_i8, 3), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "t.arr_u16", GGUF_TYPE_U16, a_u16, 3), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "t.arr_i16", GGUF_TYPE_I16, a_i16, 3), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "t.arr_u32", GGUF_TYPE_U32, a_u32, 3), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "t.arr_i32", GGUF_TYPE_I32, a_i32, 3), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "t.arr_u64", GGUF_TYPE_U64, a_u64, 3), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "t.arr_i64", GGUF_TYPE_I64, a_i64, 3), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "t.arr_f32", GGUF_TYPE_F32, a_f32, 3), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "t.arr_f64", GGUF_TYPE_F64, a_f64, 3), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "t.arr_bool", GGUF_TYPE_BOOL, a_bool, 4), 0);
    ck_assert_int_eq(gguf_writer_set_arr_str(w, "t.arr_str", a_str, NULL, 4), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "t.arr_empty", GGUF_TYPE_U32, NULL, 0), 0);
    ck_assert_int_eq(gguf_writer_set_arr_str(w, "t.arr_str_empty", NULL, NULL, 0), 0);

    const int64_t ne_f32[] = {5}, ne_f16[] = {7, 3}, ne_bf16[] = {4, 3, 2}, ne_q8[] = {64, 3};
    const int64_t ne_i8[] = {3, 2, 2, 2}, ne_i16[] = {9}, ne_i32[] = {2, 5};
    ck_assert_int_eq(gguf_writer_add_tensor(w, "w.f32", COCHLEA_TYPE_F32, 1, ne_f32, s->f32), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "w.f16", COCHLEA_TYPE_F16, 2, ne_f16, s->f16), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "w.bf16", COCHLEA_TYPE_BF16, 3, ne_bf16, s->bf16), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "w.q8_0", COCHLEA_TYPE_Q8_0, 2, ne_q8, s->q8), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "w.i8", COCHLEA_TYPE_I8, 4, ne_i8, s->i8), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "w.i16", COCHLEA_TYPE_I16, 1, ne_i16, s->i16), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "w.i32", COCHLEA_TYPE_I32, 2, ne_i32, s->i32), 0);
    return w;
}

static void check_tensor(const gguf_file *f, const char *name, enum cochlea_type type, int n_dims,
                         const int64_t *ne, const void *data, size_t nbytes)
{
    const tensor *t;
    ck_assert_int_eq(gguf_get_tensor(f, name, &t), 0);
    ck_assert_str_eq(t->name, name);
    ck_assert_int_eq(t->type, type);
    ck_assert_int_eq(t->n_dims, n_dims);
    for (int d = 0; d < 4; d++)
        ck_assert_int_eq(t->ne[d], d < n_dims ? ne[d] : 1);
    ck_assert_uint_eq(tensor_nbytes(t), nbytes);
    ck_assert_msg(memcmp(t->data, data, nbytes) == 0, "tensor %s data differs", name);
    ck_assert_uint_eq(((uintptr_t)t->data) % 4 == 0 || type != COCHLEA_TYPE_F32, 1);
    ck_assert_int_eq(t->owned, 0);
}

static void check_sample(const gguf_file *f, const sample *s, size_t alignment)
{
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    float f32;
    double f64;
    int b;
    const char *str;
    size_t len;

    ck_assert_uint_eq(gguf_version(f), 3);
    ck_assert_uint_eq(gguf_alignment(f), alignment);
    ck_assert_int_eq(gguf_n_kv(f), (int64_t)N_SAMPLE_KEYS + (alignment != GGUF_DEFAULT_ALIGNMENT));
    /* keys come back in the order they were written */
    int64_t k0 = alignment != GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < N_SAMPLE_KEYS; i++) {
        ck_assert_str_eq(gguf_kv_key(f, k0 + (int64_t)i), sample_keys[i]);
        ck_assert_int_eq(gguf_find_key(f, sample_keys[i]), k0 + (int64_t)i);
    }
    ck_assert_int_eq(gguf_find_key(f, "t.missing"), -1);
    ck_assert_int_eq(gguf_get_int(f, "t.u8", 0, 255, &i64), 0);
    ck_assert_int_eq(i64, 200);
    ck_assert_int_eq(gguf_get_int(f, "t.i8", -128, 127, &i64), 0);
    ck_assert_int_eq(i64, -100);
    ck_assert_int_eq(gguf_get_int(f, "t.u16", 0, 65535, &i64), 0);
    ck_assert_int_eq(i64, 60000);
    ck_assert_int_eq(gguf_get_int(f, "t.i16", INT16_MIN, 0, &i64), 0);
    ck_assert_int_eq(i64, -30000);
    ck_assert_int_eq(gguf_get_u32(f, "t.u32", &u32), 0);
    ck_assert_uint_eq(u32, 4000000000u);
    ck_assert_int_eq(gguf_get_i32(f, "t.i32", &i32), 0);
    ck_assert_int_eq(i32, -2000000000);
    ck_assert_int_eq(gguf_get_u64(f, "t.u64", &u64), 0);
    ck_assert_uint_eq(u64, UINT64_MAX);
    ck_assert_int_eq(gguf_get_i64(f, "t.i64", &i64), 0);
    ck_assert_int_eq(i64, INT64_MIN);
    ck_assert_int_eq(gguf_get_f32(f, "t.f32", &f32), 0);
    ck_assert_float_eq(f32, 3.25f);
    ck_assert_int_eq(gguf_get_f64(f, "t.f64", &f64), 0);
    ck_assert_double_eq(f64, -1e300);
    ck_assert_int_eq(gguf_get_bool(f, "t.bool", &b), 0);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(gguf_get_str(f, "t.str", &str, &len), 0);
    ck_assert_str_eq(str, "hello wörld");
    ck_assert_uint_eq(len, strlen("hello wörld"));
    ck_assert_int_eq(gguf_get_str(f, "t.bytes", &str, &len), 0);
    ck_assert_uint_eq(len, 3);
    ck_assert_int_eq(memcmp(str, "a\0b", 4), 0);

    const gguf_value *v;
    int64_t iv;
    double dv;
#define CHECK_INT_ARR(key, arr, T)                                                   \
    ck_assert_int_eq(gguf_get_array(f, key, &v), 0);                                 \
    ck_assert_int_eq(v->arr_type, T);                                                \
    ck_assert_uint_eq(v->n, 3);                                                      \
    for (uint64_t i = 0; i < 3; i++) {                                               \
        ck_assert_int_eq(gguf_value_int(v, i, &iv), 0);                              \
        ck_assert_int_eq(iv, (int64_t)arr[i]);                                       \
    }
    CHECK_INT_ARR("t.arr_u8", a_u8, GGUF_TYPE_U8)
    CHECK_INT_ARR("t.arr_i8", a_i8, GGUF_TYPE_I8)
    CHECK_INT_ARR("t.arr_u16", a_u16, GGUF_TYPE_U16)
    CHECK_INT_ARR("t.arr_i16", a_i16, GGUF_TYPE_I16)
    CHECK_INT_ARR("t.arr_u32", a_u32, GGUF_TYPE_U32)
    CHECK_INT_ARR("t.arr_i32", a_i32, GGUF_TYPE_I32)
    CHECK_INT_ARR("t.arr_i64", a_i64, GGUF_TYPE_I64)
#undef CHECK_INT_ARR
    ck_assert_int_eq(gguf_get_array(f, "t.arr_u64", &v), 0);
    ck_assert_int_eq(gguf_value_int(v, 1, &iv), 0);
    ck_assert_int_eq(iv, 1ll << 40);
    assert_err(gguf_value_int(v, 2, &iv), COCHLEA_ERANGE, "does not fit in int64");
    assert_err(gguf_value_int(v, 3, &iv), COCHLEA_ERANGE, "index 3 out of range (3 elements)");
    ck_assert_int_eq(gguf_value_float(v, 2, &dv), 0);
    ck_assert_double_eq(dv, 18446744073709551615.0);
    ck_assert_int_eq(gguf_get_array(f, "t.arr_f32", &v), 0);
    for (uint64_t i = 0; i < 3; i++) {
        ck_assert_int_eq(gguf_value_float(v, i, &dv), 0);
        ck_assert_double_eq(dv, (double)a_f32[i]);
    }
    assert_err(gguf_value_int(v, 0, &iv), COCHLEA_EFORMAT, "key 't.arr_f32' holds f32 values, expected integers");
    ck_assert_int_eq(gguf_get_array(f, "t.arr_f64", &v), 0);
    for (uint64_t i = 0; i < 3; i++) {
        ck_assert_int_eq(gguf_value_float(v, i, &dv), 0);
        ck_assert_double_eq(dv, a_f64[i]);
    }
    ck_assert_int_eq(gguf_get_array(f, "t.arr_bool", &v), 0);
    ck_assert_int_eq(v->arr_type, GGUF_TYPE_BOOL);
    for (uint64_t i = 0; i < 4; i++) {
        ck_assert_int_eq(gguf_value_int(v, i, &iv), 0);
        ck_assert_int_eq(iv, a_bool[i]);
    }
    ck_assert_int_eq(gguf_get_array(f, "t.arr_str", &v), 0);
    ck_assert_uint_eq(v->n, 4);
    for (uint64_t i = 0; i < 4; i++) {
        ck_assert_int_eq(gguf_value_str(v, i, &str, &len), 0);
        ck_assert_str_eq(str, a_str[i]);
        ck_assert_uint_eq(len, strlen(a_str[i]));
    }
    assert_err(gguf_value_float(v, 0, &dv), COCHLEA_EFORMAT, "holds str values, expected numbers");
    ck_assert_int_eq(gguf_get_array(f, "t.arr_empty", &v), 0);
    ck_assert_uint_eq(v->n, 0);
    ck_assert_int_eq(v->arr_type, GGUF_TYPE_U32);
    ck_assert_int_eq(gguf_get_array(f, "t.arr_str_empty", &v), 0);
    ck_assert_uint_eq(v->n, 0);
    ck_assert_int_eq(v->arr_type, GGUF_TYPE_STRING);

    ck_assert_int_eq(gguf_n_tensors(f), 7);
    const int64_t ne_f32[] = {5}, ne_f16[] = {7, 3}, ne_bf16[] = {4, 3, 2}, ne_q8[] = {64, 3};
    const int64_t ne_i8[] = {3, 2, 2, 2}, ne_i16[] = {9}, ne_i32[] = {2, 5};
    check_tensor(f, "w.f32", COCHLEA_TYPE_F32, 1, ne_f32, s->f32, sizeof s->f32);
    check_tensor(f, "w.f16", COCHLEA_TYPE_F16, 2, ne_f16, s->f16, sizeof s->f16);
    check_tensor(f, "w.bf16", COCHLEA_TYPE_BF16, 3, ne_bf16, s->bf16, sizeof s->bf16);
    check_tensor(f, "w.q8_0", COCHLEA_TYPE_Q8_0, 2, ne_q8, s->q8, sizeof s->q8);
    check_tensor(f, "w.i8", COCHLEA_TYPE_I8, 4, ne_i8, s->i8, sizeof s->i8);
    check_tensor(f, "w.i16", COCHLEA_TYPE_I16, 1, ne_i16, s->i16, sizeof s->i16);
    check_tensor(f, "w.i32", COCHLEA_TYPE_I32, 2, ne_i32, s->i32, sizeof s->i32);
    static const char *const order[] = {"w.f32", "w.f16", "w.bf16", "w.q8_0", "w.i8", "w.i16", "w.i32"};
    size_t prev_end = gguf_data_offset(f);
    ck_assert_uint_eq(gguf_data_offset(f) % alignment, 0);
    for (int64_t i = 0; i < 7; i++) {
        ck_assert_str_eq(gguf_tensor(f, i)->name, order[i]);
        ck_assert_int_eq(gguf_find_tensor(f, order[i]), i);
        size_t off = gguf_tensor_file_offset(f, i);
        ck_assert_uint_eq(off % alignment, 0);
        /* ggml layout: each tensor starts at the first aligned offset after the previous one */
        ck_assert_uint_eq(off, (prev_end + alignment - 1) / alignment * alignment);
        prev_end = off + tensor_nbytes(gguf_tensor(f, i));
    }
    ck_assert_ptr_null(gguf_tensor(f, 7));
    ck_assert_int_eq(gguf_find_tensor(f, "w.missing"), -1);
    ck_assert_uint_eq(gguf_file_size(f), (prev_end + alignment - 1) / alignment * alignment);
}

START_TEST(test_roundtrip_memory)
{
    sample s;
    sample_fill(&s, 1);
    gguf_writer *w = sample_writer(&s, 0);
    void *buf;
    size_t size, expect;
    ck_assert_int_eq(gguf_writer_size(w, &expect), 0);
    ck_assert_int_eq(gguf_writer_write_memory(w, &buf, &size), 0);
    ck_assert_uint_eq(size, expect);
    gguf_file *f;
    ck_assert_int_eq(gguf_open_memory(buf, size, &f), 0);
    ck_assert_str_eq(gguf_label(f), "<memory>");
    check_sample(f, &s, 32);
    gguf_close(f);
    free(buf);
    gguf_writer_free(w);
}
END_TEST

START_TEST(test_roundtrip_file)
{
    sample s;
    sample_fill(&s, 2);
    gguf_writer *w = sample_writer(&s, 0);
    char path[128];
    tmp_path(path, sizeof path, "rt.gguf");
    ck_assert_int_eq(gguf_writer_write(w, path), 0);
    char part[160];
    snprintf(part, sizeof part, "%s.part", path);
    ck_assert_int_ne(access(part, F_OK), 0); /* renamed into place */
    gguf_file *f;
    ck_assert_int_eq(gguf_open(path, &f), 0);
    ck_assert_str_eq(gguf_label(f), path);
    check_sample(f, &s, 32);
    /* the file and the memory image are the same bytes */
    void *mem;
    size_t msize, fsize;
    ck_assert_int_eq(gguf_writer_write_memory(w, &mem, &msize), 0);
    void *disk = read_file(path, &fsize);
    ck_assert_uint_eq(fsize, msize);
    ck_assert_int_eq(memcmp(disk, mem, msize), 0);
    gguf_close(f);
    free(mem);
    free(disk);
    unlink(path);
    gguf_writer_free(w);
}
END_TEST

START_TEST(test_roundtrip_alignment)
{
    static const uint32_t aligns[] = {64, 128, 8};
    for (size_t a = 0; a < 3; a++) {
        sample s;
        sample_fill(&s, 3 + a);
        gguf_writer *w = sample_writer(&s, aligns[a]);
        void *buf;
        size_t size;
        ck_assert_int_eq(gguf_writer_write_memory(w, &buf, &size), 0);
        gguf_file *f;
        ck_assert_int_eq(gguf_open_memory(buf, size, &f), 0);
        ck_assert_str_eq(gguf_kv_key(f, 0), "general.alignment");
        check_sample(f, &s, aligns[a]);
        gguf_close(f);
        free(buf);
        gguf_writer_free(w);
    }
}
END_TEST

/* Reading a file and writing it back with the C writer reproduces it byte for byte. */
START_TEST(test_copy_identical)
{
    sample s;
    sample_fill(&s, 9);
    gguf_writer *w = sample_writer(&s, 64);
    void *buf, *buf2;
    size_t size, size2;
    ck_assert_int_eq(gguf_writer_write_memory(w, &buf, &size), 0);
    gguf_writer_free(w);
    gguf_file *f;
    ck_assert_int_eq(gguf_open_memory(buf, size, &f), 0);
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    for (int64_t i = 0; i < gguf_n_kv(f); i++)
        ck_assert_int_eq(gguf_writer_set_value(w, gguf_kv_key(f, i), gguf_kv_value(f, i)), 0);
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const tensor *t = gguf_tensor(f, i);
        ck_assert_int_eq(gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data), 0);
    }
    ck_assert_int_eq(gguf_writer_write_memory(w, &buf2, &size2), 0);
    ck_assert_uint_eq(size2, size);
    ck_assert_int_eq(memcmp(buf, buf2, size), 0);
    gguf_close(f);
    gguf_writer_free(w);
    free(buf);
    free(buf2);
}
END_TEST

START_TEST(test_getter_errors)
{
    sample s;
    sample_fill(&s, 4);
    gguf_writer *w = sample_writer(&s, 0);
    ck_assert_int_eq(gguf_writer_set_u32(w, "m.n_layers", 12), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "m.dims", GGUF_TYPE_U16, a_u16, 3), 0);
    void *buf;
    size_t size;
    ck_assert_int_eq(gguf_writer_write_memory(w, &buf, &size), 0);
    gguf_file *f;
    ck_assert_int_eq(gguf_open_memory_named(buf, size, "m.gguf", &f), 0);
    uint32_t u32;
    int32_t i32;
    int64_t i64;
    float f32;
    double f64;
    const char *str;
    const gguf_value *v;
    assert_err(gguf_get_u32(f, "m.absent", &u32), COCHLEA_EFORMAT, "m.gguf: missing key 'm.absent'");
    assert_err(gguf_get_i32(f, "m.n_layers", &i32), COCHLEA_EFORMAT, "m.gguf: key 'm.n_layers' has type u32, expected i32");
    assert_err(gguf_get_f32(f, "t.str", &f32), COCHLEA_EFORMAT, "key 't.str' has type str, expected f32");
    assert_err(gguf_get_str(f, "t.u8", &str, NULL), COCHLEA_EFORMAT, "key 't.u8' has type u8, expected str");
    assert_err(gguf_get_u32(f, "t.arr_u32", &u32), COCHLEA_EFORMAT, "key 't.arr_u32' is an array of u32, expected a single u32");
    assert_err(gguf_get_array(f, "t.u32", &v), COCHLEA_EFORMAT, "key 't.u32' has type u32, expected an array");
    /* integer conversion: fits -> value; out of range -> ERANGE naming the value */
    ck_assert_int_eq(gguf_get_int(f, "m.n_layers", 1, 100, &i64), 0);
    ck_assert_int_eq(i64, 12);
    assert_err(gguf_get_int(f, "m.n_layers", 1, 10, &i64), COCHLEA_ERANGE, "key 'm.n_layers' is 12, outside [1, 10]");
    assert_err(gguf_get_int(f, "t.u64", 0, INT64_MAX, &i64), COCHLEA_ERANGE, "is 18446744073709551615, outside");
    assert_err(gguf_get_int(f, "t.i8", 0, 10, &i64), COCHLEA_ERANGE, "key 't.i8' is -100, outside [0, 10]");
    assert_err(gguf_get_int(f, "t.f32", 0, 10, &i64), COCHLEA_EFORMAT, "has type f32, expected an integer");
    ck_assert_int_eq(gguf_get_float(f, "t.i32", &f64), 0);
    ck_assert_double_eq(f64, -2000000000.0);
    ck_assert_int_eq(gguf_get_float(f, "t.f32", &f64), 0);
    ck_assert_double_eq(f64, 3.25);
    assert_err(gguf_get_float(f, "t.bool", &f64), COCHLEA_EFORMAT, "has type bool, expected a number");
    /* array copies */
    float fa[3];
    int32_t ia[3];
    ck_assert_int_eq(gguf_get_arr_f32(f, "m.dims", fa, 3), 0);
    ck_assert_float_eq(fa[2], 65535.0f);
    ck_assert_int_eq(gguf_get_arr_i32(f, "m.dims", ia, 3), 0);
    ck_assert_int_eq(ia[0], 0);
    ck_assert_int_eq(ia[1], 1);
    ck_assert_int_eq(ia[2], 65535);
    assert_err(gguf_get_arr_i32(f, "m.dims", ia, 2), COCHLEA_EFORMAT, "key 'm.dims' has 3 elements, expected 2");
    assert_err(gguf_get_arr_i32(f, "t.arr_u32", ia, 3), COCHLEA_ERANGE, "element 2 does not fit in int32");
    assert_err(gguf_get_arr_i32(f, "t.arr_f32", ia, 3), COCHLEA_EFORMAT, "expected integers");
    assert_err(gguf_get_arr_f32(f, "t.arr_str", fa, 4), COCHLEA_EFORMAT, "is an array of str, expected numbers");
    ck_assert_int_eq(gguf_get_arr_f32(f, "t.arr_f64", fa, 3), 0);
    ck_assert_float_eq(fa[1], -2.5f);
    /* tensors */
    const tensor *t;
    assert_err(gguf_get_tensor(f, "enc.w", &t), COCHLEA_EFORMAT, "m.gguf: missing tensor 'enc.w'");
    const int64_t want_ok[] = {64, -1}, want_bad[] = {64, 4};
    ck_assert_int_eq(gguf_expect_tensor(f, "w.q8_0", 2, want_ok, &t), 0);
    ck_assert_int_eq(t->ne[1], 3);
    assert_err(gguf_expect_tensor(f, "w.q8_0", 2, want_bad, &t), COCHLEA_EFORMAT,
               "tensor 'w.q8_0' has shape [64, 3], expected [64, 4]");
    assert_err(gguf_expect_tensor(f, "w.q8_0", 1, want_ok, &t), COCHLEA_EFORMAT, "expected [64]");
    gguf_close(f);
    free(buf);
    gguf_writer_free(w);
}
END_TEST

START_TEST(test_value_format)
{
    sample s;
    sample_fill(&s, 5);
    gguf_writer *w = sample_writer(&s, 0);
    static const char long_str[] = "0123456789012345678901234567890123456789012345678901234567890123456789";
    ck_assert_int_eq(gguf_writer_set_str(w, "t.long", long_str), 0);
    ck_assert_int_eq(gguf_writer_set_str(w, "t.quote", "a\"b\n"), 0);
    void *buf;
    size_t size;
    char out[512];
    ck_assert_int_eq(gguf_writer_write_memory(w, &buf, &size), 0);
    gguf_file *f;
    ck_assert_int_eq(gguf_open_memory(buf, size, &f), 0);
    ck_assert_str_eq(gguf_value_format(gguf_kv_value(f, gguf_find_key(f, "t.i64")), 8, out, sizeof out),
                     "-9223372036854775808");
    ck_assert_str_eq(gguf_value_format(gguf_kv_value(f, gguf_find_key(f, "t.f32")), 8, out, sizeof out), "3.25");
    ck_assert_str_eq(gguf_value_format(gguf_kv_value(f, gguf_find_key(f, "t.bool")), 8, out, sizeof out), "true");
    ck_assert_str_eq(gguf_value_format(gguf_kv_value(f, gguf_find_key(f, "t.quote")), 8, out, sizeof out),
                     "\"a\\\"b\\x0a\"");
    ck_assert_str_eq(gguf_value_format(gguf_kv_value(f, gguf_find_key(f, "t.arr_str")), 2, out, sizeof out),
                     "[\"<unk>\", \"\", ...] (4 x str)");
    ck_assert_str_eq(gguf_value_format(gguf_kv_value(f, gguf_find_key(f, "t.arr_i16")), 8, out, sizeof out),
                     "[-32768, 5, 32767] (3 x i16)");
    ck_assert_str_eq(gguf_value_format(gguf_kv_value(f, gguf_find_key(f, "t.arr_empty")), 8, out, sizeof out),
                     "[] (0 x u32)");
    gguf_value_format(gguf_kv_value(f, gguf_find_key(f, "t.long")), 8, out, sizeof out);
    ck_assert_msg(strstr(out, "\"... (70 bytes)") != NULL, "got %s", out);
    /* a tiny buffer is cut, never overrun */
    char tiny[6];
    gguf_value_format(gguf_kv_value(f, gguf_find_key(f, "t.arr_str")), 8, tiny, sizeof tiny);
    ck_assert_str_eq(tiny, "[\"<un");
    gguf_close(f);
    free(buf);
    gguf_writer_free(w);
}
END_TEST

START_TEST(test_writer_rules)
{
    gguf_writer *w;
    float x[64] = {0};
    const int64_t ne[] = {64}, ne33[] = {33}, ne0[] = {0, 2};
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    ck_assert_int_eq(gguf_writer_set_u32(w, "a", 1), 0);
    ck_assert_int_eq(gguf_writer_set_str(w, "b", "x"), 0);
    ck_assert_int_eq(gguf_writer_set_u32(w, "a", 2), 0); /* replaced in place */
    assert_err(gguf_writer_set_u32(w, "", 1), COCHLEA_EINVAL, "empty key");
    assert_err(gguf_writer_set_alignment(w, 48), COCHLEA_EINVAL, "general.alignment 48 is not a power of two");
    assert_err(gguf_writer_set_i32(w, "general.alignment", 64), COCHLEA_EINVAL, "general.alignment must be a u32");
    uint8_t bad = 2;
    assert_err(gguf_writer_set_arr(w, "c", GGUF_TYPE_BOOL, &bad, 1), COCHLEA_EINVAL, "bool element 0 is not 0 or 1");
    assert_err(gguf_writer_set_arr(w, "c", GGUF_TYPE_STRING, &bad, 1), COCHLEA_EINVAL, "arrays of str");
    ck_assert_int_eq(gguf_writer_add_tensor(w, "w", COCHLEA_TYPE_F32, 1, ne, x), 0);
    assert_err(gguf_writer_add_tensor(w, "w", COCHLEA_TYPE_F32, 1, ne, x), COCHLEA_EINVAL, "duplicate tensor name 'w'");
    assert_err(gguf_writer_add_tensor(w, "q", COCHLEA_TYPE_Q8_0, 1, ne33, x), COCHLEA_EINVAL,
               "tensor 'q': row of 33 elements is not a multiple of the q8_0 block size 32");
    assert_err(gguf_writer_add_tensor(w, "z", COCHLEA_TYPE_F32, 2, ne0, x), COCHLEA_EINVAL, "tensor 'z'");
    assert_err(gguf_writer_add_tensor(w, "u", (enum cochlea_type)2, 1, ne, x), COCHLEA_EUNSUPPORTED, "unknown type 2");
    assert_err(gguf_writer_add_tensor(w, "", COCHLEA_TYPE_F32, 1, ne, x), COCHLEA_EINVAL, "empty name");
    char longname[300];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_err(gguf_writer_add_tensor(w, longname, COCHLEA_TYPE_F32, 1, ne, x), COCHLEA_EINVAL, "299 bytes long");
    void *buf;
    size_t size;
    ck_assert_int_eq(gguf_writer_write_memory(w, &buf, &size), 0);
    gguf_file *f;
    ck_assert_int_eq(gguf_open_memory(buf, size, &f), 0);
    ck_assert_int_eq(gguf_n_kv(f), 2);
    ck_assert_str_eq(gguf_kv_key(f, 0), "a");
    uint32_t a;
    ck_assert_int_eq(gguf_get_u32(f, "a", &a), 0);
    ck_assert_uint_eq(a, 2);
    gguf_close(f);
    free(buf);
    char path[160];
    tmp_path(path, sizeof path, "no/such/dir/x.gguf");
    assert_err(gguf_writer_write(w, path), COCHLEA_EIO, "cannot create");
    gguf_writer_free(w);
}
END_TEST

/* A fill callback that produces 0, 1, 2, ... as floats, or fails for the tensor named "fail". */
static int fill_ramp(void *user, const char *name, void *dst, size_t nbytes)
{
    int *calls = user;
    (*calls)++;
    if (strcmp(name, "fail") == 0)
        return err_set(COCHLEA_EIO, "source for '%s' is gone", name);
    float *x = dst;
    for (size_t i = 0; i < nbytes / 4; i++)
        x[i] = (float)i;
    return COCHLEA_OK;
}

START_TEST(test_writer_stream)
{
    gguf_writer *w;
    int calls = 0;
    const int64_t ne[] = {10, 3};
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    ck_assert_int_eq(gguf_writer_add_tensor_fn(w, "ramp", COCHLEA_TYPE_F32, 2, ne, fill_ramp, &calls), 0);
    char path[128];
    tmp_path(path, sizeof path, "stream.gguf");
    ck_assert_int_eq(gguf_writer_write(w, path), 0);
    ck_assert_int_eq(calls, 1);
    gguf_file *f;
    const tensor *t;
    ck_assert_int_eq(gguf_open(path, &f), 0);
    ck_assert_int_eq(gguf_get_tensor(f, "ramp", &t), 0);
    for (int i = 0; i < 30; i++)
        ck_assert_float_eq(((const float *)t->data)[i], (float)i);
    gguf_close(f);
    /* a failing callback fails the write and leaves neither the file nor the .part behind */
    ck_assert_int_eq(gguf_writer_add_tensor_fn(w, "fail", COCHLEA_TYPE_F32, 2, ne, fill_ramp, &calls), 0);
    unlink(path);
    assert_err(gguf_writer_write(w, path), COCHLEA_EIO, "source for 'fail' is gone");
    char part[160];
    snprintf(part, sizeof part, "%s.part", path);
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_ne(access(part, F_OK), 0);
    gguf_writer_free(w);
}
END_TEST

/* ---- broken files ------------------------------------------------------------------------- */

typedef struct rb {
    uint8_t p[4096];
    size_t n;
} rb;

static void rb_put(rb *b, const void *p, size_t n)
{
    ck_assert_uint_le(b->n + n, sizeof b->p);
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void rb_u8(rb *b, uint8_t v) { rb_put(b, &v, 1); }
static void rb_u32(rb *b, uint32_t v) { rb_put(b, &v, 4); }
static void rb_u64(rb *b, uint64_t v) { rb_put(b, &v, 8); }
static void rb_str(rb *b, const char *s)
{
    rb_u64(b, strlen(s));
    rb_put(b, s, strlen(s));
}
static void rb_header(rb *b, uint32_t version, uint64_t nt, uint64_t nkv)
{
    b->n = 0;
    rb_put(b, "GGUF", 4);
    rb_u32(b, version);
    rb_u64(b, nt);
    rb_u64(b, nkv);
}
static void rb_kv_u32(rb *b, const char *key, uint32_t v)
{
    rb_str(b, key);
    rb_u32(b, GGUF_TYPE_U32);
    rb_u32(b, v);
}
/* A tensor info with n dims from ne. */
static void rb_tinfo(rb *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type, uint64_t off)
{
    rb_str(b, name);
    rb_u32(b, nd);
    for (uint32_t d = 0; d < nd; d++)
        rb_u64(b, ne[d]);
    rb_u32(b, type);
    rb_u64(b, off);
}
static void rb_pad(rb *b, size_t a)
{
    while (b->n % a)
        rb_u8(b, 0);
}
static void rb_zeros(rb *b, size_t n)
{
    while (n--)
        rb_u8(b, 0);
}

static void expect_reject(const rb *b, int code, const char *substr)
{
    gguf_file *f = (gguf_file *)1;
    void *copy;
    cochlea_clear_error();
    int rc = open_exact(b->p, b->n, &f, &copy);
    ck_assert_ptr_null(f);
    assert_err(rc, code, substr);
    ck_assert_msg(strncmp(cochlea_last_error(), "<memory>: ", 10) == 0, "message '%s' does not name the file",
                  cochlea_last_error());
    free(copy);
}

static void expect_accept(const rb *b)
{
    gguf_file *f;
    void *copy;
    int rc = open_exact(b->p, b->n, &f, &copy);
    ck_assert_msg(rc == 0, "valid file rejected: %s", cochlea_last_error());
    gguf_close(f);
    free(copy);
}

/* A valid file with one key and two f32 tensors [8] and [4, 2] (64 and 32 bytes). */
static void rb_valid(rb *b)
{
    const uint64_t ne1[] = {16}, ne2[] = {4, 2};
    rb_header(b, 3, 2, 1);
    rb_kv_u32(b, "a.n", 7);
    rb_tinfo(b, "w1", 1, ne1, 0, 0);
    rb_tinfo(b, "w2", 2, ne2, 0, 64);
    rb_pad(b, 32);
    rb_zeros(b, 96);
}

START_TEST(test_bad_header)
{
    rb b;
    rb_valid(&b);
    expect_accept(&b);
    memcpy(b.p, "GGML", 4);
    expect_reject(&b, COCHLEA_EFORMAT, "not a GGUF file (magic 47 47 4d 4c, expected \"GGUF\")");
    b.n = 0;
    expect_reject(&b, COCHLEA_EFORMAT, "not a GGUF file (only 0 bytes)");
    rb_put(&b, "GGU", 3);
    expect_reject(&b, COCHLEA_EFORMAT, "not a GGUF file (only 3 bytes)");
    rb_header(&b, 1, 0, 0);
    expect_reject(&b, COCHLEA_EUNSUPPORTED, "GGUF version 1 is not supported");
    rb_header(&b, 4, 0, 0);
    expect_reject(&b, COCHLEA_EUNSUPPORTED, "GGUF version 4 is not supported");
    rb_header(&b, 0x03000000, 0, 0);
    expect_reject(&b, COCHLEA_EUNSUPPORTED, "looks byte-swapped");
    rb_header(&b, 2, 0, 0);
    expect_accept(&b); /* version 2 has the same layout */
    rb_header(&b, 3, 0, 0);
    expect_accept(&b); /* an empty model is a valid file */
    rb_header(&b, 3, 1ull << 40, 0);
    expect_reject(&b, COCHLEA_EFORMAT, "tensor count 1099511627776 is impossible for a file of 24 bytes");
    rb_header(&b, 3, 0, UINT64_MAX);
    expect_reject(&b, COCHLEA_EFORMAT, "key-value count 18446744073709551615 is impossible");
    b.n = 0;
    rb_put(&b, "GGUF", 4);
    rb_u32(&b, 3);
    rb_u64(&b, 0);
    expect_reject(&b, COCHLEA_EFORMAT, "file ends inside the header");
}
END_TEST

START_TEST(test_bad_kv)
{
    rb b;
    rb_header(&b, 3, 0, 1);
    rb_u64(&b, 1ull << 60);
    rb_put(&b, "abcdefgh", 8);
    expect_reject(&b, COCHLEA_EFORMAT, "the key of key-value pair 0 has a length of 1152921504606846976 bytes, past the end");

    rb_header(&b, 3, 0, 1);
    rb_str(&b, "");
    rb_u32(&b, GGUF_TYPE_U8);
    rb_u8(&b, 1);
    expect_reject(&b, COCHLEA_EFORMAT, "key-value pair 0 has an empty key");

    rb_header(&b, 3, 0, 1);
    rb_u64(&b, 3);
    rb_put(&b, "a\0b", 3);
    rb_u32(&b, GGUF_TYPE_U8);
    rb_u8(&b, 1);
    expect_reject(&b, COCHLEA_EFORMAT, "key of key-value pair 0 contains a NUL byte");

    rb_header(&b, 3, 0, 1);
    rb_str(&b, "k.type");
    rb_u32(&b, 13);
    rb_u32(&b, 0);
    expect_reject(&b, COCHLEA_EFORMAT, "key 'k.type' has unknown value type 13");

    rb_header(&b, 3, 0, 1);
    rb_str(&b, "k.str");
    rb_u32(&b, GGUF_TYPE_STRING);
    rb_u64(&b, UINT64_MAX);
    rb_u32(&b, 0);
    expect_reject(&b, COCHLEA_EFORMAT, "the string value of key 'k.str' has a length of 18446744073709551615 bytes");

    rb_header(&b, 3, 0, 1);
    rb_str(&b, "k.arr");
    rb_u32(&b, GGUF_TYPE_ARRAY);
    rb_u32(&b, GGUF_TYPE_U32);
    rb_u64(&b, 1ull << 61);
    rb_u32(&b, 0);
    expect_reject(&b, COCHLEA_EFORMAT, "key 'k.arr': array of 2305843009213693952 u32 elements runs past the end");

    rb_header(&b, 3, 0, 1);
    rb_str(&b, "k.arr");
    rb_u32(&b, GGUF_TYPE_ARRAY);
    rb_u32(&b, GGUF_TYPE_STRING);
    rb_u64(&b, UINT64_MAX / 2);
    rb_u64(&b, 0);
    expect_reject(&b, COCHLEA_EFORMAT, "key 'k.arr': array of 9223372036854775807 strings runs past the end");

    rb_header(&b, 3, 0, 1);
    rb_str(&b, "k.arr");
    rb_u32(&b, GGUF_TYPE_ARRAY);
    rb_u32(&b, GGUF_TYPE_STRING);
    rb_u64(&b, 2);
    rb_str(&b, "ok");
    rb_u64(&b, 1000);
    rb_put(&b, "short", 5);
    expect_reject(&b, COCHLEA_EFORMAT, "string 1 of key 'k.arr' has a length of 1000 bytes, past the end");

    rb_header(&b, 3, 0, 1);
    rb_str(&b, "k.nest");
    rb_u32(&b, GGUF_TYPE_ARRAY);
    rb_u32(&b, GGUF_TYPE_ARRAY);
    rb_u64(&b, 1);
    rb_u32(&b, GGUF_TYPE_U8);
    rb_u64(&b, 0);
    expect_reject(&b, COCHLEA_EFORMAT, "key 'k.nest' is an array of arrays (nested arrays are not supported)");

    rb_header(&b, 3, 0, 1);
    rb_str(&b, "k.arr");
    rb_u32(&b, GGUF_TYPE_ARRAY);
    rb_u32(&b, 77);
    rb_u64(&b, 0);
    expect_reject(&b, COCHLEA_EFORMAT, "key 'k.arr' is an array of unknown element type 77");

    rb_header(&b, 3, 0, 1);
    rb_str(&b, "k.b");
    rb_u32(&b, GGUF_TYPE_BOOL);
    rb_u8(&b, 2);
    rb_zeros(&b, 8);
    expect_reject(&b, COCHLEA_EFORMAT, "key 'k.b': bool value 2 is not 0 or 1");

    rb_header(&b, 3, 0, 2);
    rb_kv_u32(&b, "k.dup", 1);
    rb_kv_u32(&b, "k.dup", 2);
    expect_reject(&b, COCHLEA_EFORMAT, "duplicate key 'k.dup'");

    rb_header(&b, 3, 0, 1);
    rb_str(&b, "k.u64");
    rb_u32(&b, GGUF_TYPE_U64);
    rb_u32(&b, 0); /* only 4 of the 8 value bytes */
    expect_reject(&b, COCHLEA_EFORMAT, "file ends inside the u64 value of key 'k.u64'");
}
END_TEST

START_TEST(test_bad_alignment)
{
    rb b;
    const uint64_t ne[] = {8};
    rb_header(&b, 3, 1, 1);
    rb_kv_u32(&b, "general.alignment", 48);
    rb_tinfo(&b, "w", 1, ne, 0, 0);
    rb_pad(&b, 64);
    rb_zeros(&b, 64);
    expect_reject(&b, COCHLEA_EFORMAT, "general.alignment 48 is not a power of two");

    rb_header(&b, 3, 1, 1);
    rb_kv_u32(&b, "general.alignment", 0);
    rb_tinfo(&b, "w", 1, ne, 0, 0);
    rb_pad(&b, 64);
    rb_zeros(&b, 64);
    expect_reject(&b, COCHLEA_EFORMAT, "general.alignment 0 is not a power of two");

    rb_header(&b, 3, 1, 1);
    rb_str(&b, "general.alignment");
    rb_u32(&b, GGUF_TYPE_I32);
    rb_u32(&b, 32);
    rb_tinfo(&b, "w", 1, ne, 0, 0);
    rb_pad(&b, 32);
    rb_zeros(&b, 64);
    expect_reject(&b, COCHLEA_EFORMAT, "general.alignment has type i32, expected u32");

    /* alignment 64 honoured: the data section starts at the next multiple of 64 */
    rb_header(&b, 3, 1, 1);
    rb_kv_u32(&b, "general.alignment", 64);
    rb_tinfo(&b, "w", 1, ne, 0, 0);
    rb_pad(&b, 64);
    rb_zeros(&b, 32);
    expect_accept(&b);

    /* alignment 1 lets a tensor sit at an odd offset; an f32 view there would be misaligned */
    const uint64_t ne3[] = {3}, ne1[] = {2};
    rb_header(&b, 3, 2, 1);
    rb_kv_u32(&b, "general.alignment", 1);
    rb_tinfo(&b, "bytes", 1, ne3, 24, 0);
    rb_tinfo(&b, "w", 1, ne1, 0, 3);
    rb_zeros(&b, 11);
    expect_reject(&b, COCHLEA_EFORMAT, "tensor 'w' data (file offset");
}
END_TEST

START_TEST(test_bad_tensor_info)
{
    rb b;
    const uint64_t ne[] = {8, 2};
    /* name problems */
    rb_header(&b, 3, 1, 0);
    rb_str(&b, "");
    rb_u32(&b, 1);
    rb_u64(&b, 8);
    rb_u32(&b, 0);
    rb_u64(&b, 0);
    rb_pad(&b, 32);
    rb_zeros(&b, 32);
    expect_reject(&b, COCHLEA_EFORMAT, "tensor 0 has an empty name");

    char longname[300];
    memset(longname, 'x', 299);
    longname[299] = '\0';
    rb_header(&b, 3, 1, 0);
    rb_tinfo(&b, longname, 1, ne, 0, 0);
    rb_pad(&b, 32);
    rb_zeros(&b, 32);
    expect_reject(&b, COCHLEA_EFORMAT, "the name of tensor 0 is 299 bytes long (at most 255)");

    rb_header(&b, 3, 1, 0);
    rb_u64(&b, 1ull << 62);
    rb_zeros(&b, 40);
    expect_reject(&b, COCHLEA_EFORMAT, "the name of tensor 0 has a length of 4611686018427387904 bytes, past the end");

    /* dims */
    rb_header(&b, 3, 1, 0);
    rb_tinfo(&b, "w", 0, ne, 0, 0);
    rb_pad(&b, 32);
    rb_zeros(&b, 64);
    expect_reject(&b, COCHLEA_EFORMAT, "tensor 'w' has 0 dimensions (1 to 4 allowed)");

    const uint64_t ne5[] = {1, 1, 1, 1, 1};
    rb_header(&b, 3, 1, 0);
    rb_tinfo(&b, "w", 5, ne5, 0, 0);
    rb_pad(&b, 32);
    rb_zeros(&b, 64);
    expect_reject(&b, COCHLEA_EFORMAT, "tensor 'w' has 5 dimensions (1 to 4 allowed)");

    const uint64_t nez[] = {8, 0};
    rb_header(&b, 3, 1, 0);
    rb_tinfo(&b, "w", 2, nez, 0, 0);
    rb_pad(&b, 32);
    rb_zeros(&b, 64);
    expect_reject(&b, COCHLEA_EFORMAT, "tensor 'w' has size 0 in dimension 1 (shape [8, 0])");

    const uint64_t neh[] = {8, 1ull << 63};
    rb_header(&b, 3, 1, 0);
    rb_tinfo(&b, "w", 2, neh, 0, 0);
    rb_pad(&b, 32);
    rb_zeros(&b, 64);
    expect_reject(&b, COCHLEA_EFORMAT, "tensor 'w' has an impossible size in dimension 1");

    const uint64_t neo[] = {1ull << 32, 1ull << 32, 4};
    rb_header(&b, 3, 1, 0);
    rb_tinfo(&b, "w", 3, neo, 0, 0);
    rb_pad(&b, 32);
    rb_zeros(&b, 64);
    expect_reject(&b, COCHLEA_EFORMAT, "tensor 'w': the element count of shape [4294967296, 4294967296, 4] overflows");

    const uint64_t neb[] = {1ull << 31, 1ull << 31, 2};
    rb_header(&b, 3, 1, 0);
    rb_tinfo(&b, "w", 3, neb, 0, 0); /* 2^63 elements fit int64 only just not: element count overflows */
    rb_pad(&b, 32);
    rb_zeros(&b, 64);
    expect_reject(&b, COCHLEA_EFORMAT, "element count of shape");

    const uint64_t nes[] = {1ull << 31, 1ull << 31}; /* 2^62 f32 elements: 2^64 bytes */
    rb_header(&b, 3, 1, 0);
    rb_tinfo(&b, "w", 2, nes, 0, 0);
    rb_pad(&b, 32);
    rb_zeros(&b, 64);
    expect_reject(&b, COCHLEA_EFORMAT, "tensor 'w': the byte size of shape [2147483648, 2147483648] overflows");

    const uint64_t nebig[] = {1ull << 30, 1ull << 20}; /* fits size_t, far past the end of the file */
    rb_header(&b, 3, 1, 0);
    rb_tinfo(&b, "w", 2, nebig, 0, 0);
    rb_pad(&b, 32);
    size_t data = b.n;
    rb_zeros(&b, 64);
    char msg[160];
    snprintf(msg, sizeof msg, "tensor 'w' ends past the end of the file (offset %zu, size 4503599627370496, file %zu)",
             data, data + 64);
    expect_reject(&b, COCHLEA_EFORMAT, msg);

    /* types */
    rb_header(&b, 3, 1, 0);
    rb_tinfo(&b, "enc.w", 2, ne, 2, 0);
    rb_pad(&b, 32);
    rb_zeros(&b, 64);
    expect_reject(&b, COCHLEA_EUNSUPPORTED, "tensor 'enc.w' has type 2 (q4_0), which is not supported");

    rb_header(&b, 3, 1, 0);
    rb_tinfo(&b, "enc.w", 2, ne, 1000, 0);
    rb_pad(&b, 32);
    rb_zeros(&b, 64);
    expect_reject(&b, COCHLEA_EUNSUPPORTED, "tensor 'enc.w' has type 1000 (?), which is not supported");

    const uint64_t neq[] = {33, 2};
    rb_header(&b, 3, 1, 0);
    rb_tinfo(&b, "q", 2, neq, 8, 0);
    rb_pad(&b, 32);
    rb_zeros(&b, 128);
    expect_reject(&b, COCHLEA_EFORMAT, "tensor 'q': ne[0] = 33 is not a multiple of the q8_0 block size 32");

    /* file ends in the middle of a tensor info */
    rb_header(&b, 3, 2, 0);
    rb_tinfo(&b, "w", 2, ne, 0, 0);
    rb_str(&b, "v");
    rb_u32(&b, 2);
    rb_u64(&b, 8);
    rb_zeros(&b, 10);
    expect_reject(&b, COCHLEA_EFORMAT, "file ends inside the info of tensor 'v'");

    rb_header(&b, 3, 2, 0);
    rb_tinfo(&b, "w", 2, ne, 0, 0);
    rb_tinfo(&b, "w", 2, ne, 0, 64);
    rb_pad(&b, 32);
    rb_zeros(&b, 128);
    expect_reject(&b, COCHLEA_EFORMAT, "duplicate tensor name 'w'");
}
END_TEST

START_TEST(test_bad_placement)
{
    rb b;
    const uint64_t ne[] = {8, 2}; /* 64 bytes of f32 */
    rb_header(&b, 3, 1, 0);
    rb_tinfo(&b, "enc.w", 2, ne, 0, 32);
    rb_pad(&b, 32);
    size_t data = b.n;
    rb_zeros(&b, 64);
    char msg[160];
    snprintf(msg, sizeof msg, "tensor 'enc.w' ends past the end of the file (offset %zu, size 64, file %zu)",
             data + 32, data + 64);
    expect_reject(&b, COCHLEA_EFORMAT, msg);

    rb_header(&b, 3, 1, 0);
    rb_tinfo(&b, "enc.w", 2, ne, 0, UINT64_MAX - 8);
    rb_pad(&b, 32);
    rb_zeros(&b, 64);
    expect_reject(&b, COCHLEA_EFORMAT, "tensor 'enc.w' offset 18446744073709551607 is not a multiple of the alignment 32");

    rb_header(&b, 3, 1, 0);
    rb_tinfo(&b, "enc.w", 2, ne, 0, UINT64_MAX - 31);
    rb_pad(&b, 32);
    rb_zeros(&b, 64);
    expect_reject(&b, COCHLEA_EFORMAT, "tensor 'enc.w' ends past the end of the file (offset 18446744073709551584 in the data section");

    rb_header(&b, 3, 1, 0);
    rb_tinfo(&b, "enc.w", 2, ne, 0, 4);
    rb_pad(&b, 32);
    rb_zeros(&b, 128);
    expect_reject(&b, COCHLEA_EFORMAT, "tensor 'enc.w' offset 4 is not a multiple of the alignment 32");

    rb_header(&b, 3, 2, 0);
    rb_tinfo(&b, "a", 2, ne, 0, 0);
    rb_tinfo(&b, "b", 2, ne, 0, 32);
    rb_pad(&b, 32);
    rb_zeros(&b, 128);
    expect_reject(&b, COCHLEA_EFORMAT, "tensors 'a' (offset");
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "and 'b' (offset"));
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), ") overlap"));

    /* overlap found whatever the order of the infos */
    rb_header(&b, 3, 3, 0);
    rb_tinfo(&b, "c", 2, ne, 0, 128);
    rb_tinfo(&b, "b", 2, ne, 0, 0);
    rb_tinfo(&b, "a", 2, ne, 0, 64 + 32);
    rb_pad(&b, 32);
    rb_zeros(&b, 192);
    expect_reject(&b, COCHLEA_EFORMAT, "tensors 'a' (offset");

    /* same tensors without the overlap, in any order, are fine */
    rb_header(&b, 3, 3, 0);
    rb_tinfo(&b, "c", 2, ne, 0, 128);
    rb_tinfo(&b, "b", 2, ne, 0, 0);
    rb_tinfo(&b, "a", 2, ne, 0, 64);
    rb_pad(&b, 32);
    rb_zeros(&b, 192);
    expect_accept(&b);

    /* tensors present but the file stops before the padded data section */
    rb_header(&b, 3, 1, 0);
    rb_tinfo(&b, "w", 1, ne, 0, 0);
    ck_assert_uint_ne(b.n % 32, 0);
    size_t end = b.n;
    snprintf(msg, sizeof msg, "the data section would start at offset %zu + %zu padding, past the end of the file (%zu bytes)",
             end, 32 - end % 32, end);
    expect_reject(&b, COCHLEA_EFORMAT, msg);
}
END_TEST

/* Truncating a valid file anywhere before the end of its last tensor is an error, never a crash. */
START_TEST(test_truncated_everywhere)
{
    sample s;
    sample_fill(&s, 6);
    gguf_writer *w = sample_writer(&s, 0);
    void *buf;
    size_t size;
    ck_assert_int_eq(gguf_writer_write_memory(w, &buf, &size), 0);
    gguf_writer_free(w);
    gguf_file *f;
    ck_assert_int_eq(gguf_open_memory(buf, size, &f), 0);
    int64_t last = gguf_n_tensors(f) - 1;
    size_t data_end = gguf_tensor_file_offset(f, last) + tensor_nbytes(gguf_tensor(f, last));
    size_t data_start = gguf_data_offset(f);
    gguf_close(f);
    static const char *const phrases[] = {"not a GGUF file", "file ends inside", "past the end of the file",
                                          "is impossible for a file of", "runs past the end"};
    int seen[5] = {0};
    for (size_t n = 0; n <= size; n++) {
        void *copy;
        int rc = open_exact(buf, n, &f, &copy);
        if (n >= data_end) {
            ck_assert_msg(rc == 0, "length %zu of %zu rejected: %s", n, size, cochlea_last_error());
            gguf_close(f);
        } else {
            ck_assert_msg(rc == COCHLEA_EFORMAT, "length %zu: rc %d (%s)", n, rc, cochlea_last_error());
            ck_assert_ptr_null(f);
            const char *m = cochlea_last_error();
            ck_assert_msg(strncmp(m, "<memory>: ", 10) == 0, "length %zu: %s", n, m);
            int hit = 0;
            for (int k = 0; k < 5; k++)
                if (strstr(m, phrases[k])) {
                    seen[k] = 1;
                    hit = 1;
                }
            ck_assert_msg(hit, "length %zu: unexpected message '%s'", n, m);
            if (n >= data_start)
                ck_assert_msg(strstr(m, "ends past the end of the file (offset") != NULL, "length %zu: %s", n, m);
        }
        free(copy);
    }
    for (int k = 0; k < 5; k++)
        ck_assert_msg(seen[k], "no truncation produced '%s'", phrases[k]);
    /* and through the mmap path, at a few section boundaries */
    char path[128];
    tmp_path(path, sizeof path, "trunc.gguf");
    const size_t cuts[] = {0, 3, 23, 24, 100, data_start - 1, data_start, data_end - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_file(path, buf, cuts[i]);
        assert_err(gguf_open(path, &f), COCHLEA_EFORMAT, path);
        ck_assert_ptr_null(f);
    }
    unlink(path);
    free(buf);
}
END_TEST

/* Random byte corruption: every outcome is either a clean error or a file that validates. */
START_TEST(test_fuzz_bytes)
{
    sample s;
    sample_fill(&s, 7);
    gguf_writer *w = sample_writer(&s, 0);
    void *buf;
    size_t size;
    ck_assert_int_eq(gguf_writer_write_memory(w, &buf, &size), 0);
    gguf_writer_free(w);
    gguf_file *f;
    ck_assert_int_eq(gguf_open_memory(buf, size, &f), 0);
    size_t meta = gguf_data_offset(f);
    gguf_close(f);
    test_rng r = {77};
    int rejected = 0;
    uint8_t *mut = aligned_alloc(64, (size + 63) / 64 * 64);
    ck_assert_ptr_nonnull(mut);
    for (int it = 0; it < 3000; it++) {
        memcpy(mut, buf, size);
        int nflip = test_rng_int(&r, 1, 4);
        for (int k = 0; k < nflip; k++) {
            size_t at = (size_t)test_rng_int(&r, 0, (int)meta - 1);
            mut[at] = (uint8_t)(test_rng_next(&r) & 0xff);
        }
        int rc = gguf_open_memory(mut, size, &f);
        if (rc == 0) {
            /* whatever validated must be consistent: every tensor inside the buffer */
            for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
                const tensor *t = gguf_tensor(f, i);
                ck_assert_uint_le(gguf_tensor_file_offset(f, i) + tensor_nbytes(t), size);
            }
            gguf_close(f);
        } else {
            ck_assert_msg(strncmp(cochlea_last_error(), "<memory>: ", 10) == 0, "%s", cochlea_last_error());
            rejected++;
        }
    }
    ck_assert_int_gt(rejected, 300);
    free(mut);
    free(buf);
}
END_TEST

START_TEST(test_open_errors)
{
    gguf_file *f = (gguf_file *)1;
    assert_err(gguf_open("/nonexistent/dir/model.gguf", &f), COCHLEA_EIO, "/nonexistent/dir/model.gguf: cannot open");
    ck_assert_ptr_null(f);
    make_tmpdir();
    assert_err(gguf_open(tmpdir, &f), COCHLEA_EIO, "not a regular file");
    char path[128];
    tmp_path(path, sizeof path, "empty.gguf");
    write_file(path, "", 0);
    char msg[200];
    snprintf(msg, sizeof msg, "%s: not a GGUF file (only 0 bytes)", path);
    assert_err(gguf_open(path, &f), COCHLEA_EFORMAT, msg);
    write_file(path, "GGUF\3\0\0\0", 8);
    assert_err(gguf_open(path, &f), COCHLEA_EFORMAT, "file ends inside the header");
    unlink(path);
    assert_err(gguf_open_memory(NULL, 10, &f), COCHLEA_EINVAL, "NULL buffer");
    /* misaligned caller buffer: tensor views would be misaligned, so it is refused */
    sample s;
    sample_fill(&s, 8);
    gguf_writer *w = sample_writer(&s, 0);
    void *buf;
    size_t size;
    ck_assert_int_eq(gguf_writer_write_memory(w, &buf, &size), 0);
    uint8_t *odd = malloc(size + 1);
    ck_assert_ptr_nonnull(odd);
    memcpy(odd + 1, buf, size);
    assert_err(gguf_open_memory(odd + 1, size, &f), COCHLEA_EFORMAT, "is not aligned to 4 bytes for f32");
    free(odd);
    free(buf);
    gguf_writer_free(w);
}
END_TEST

/* ---- quantize ------------------------------------------------------------------------------ */

#define QN_W 96
#define QN_R 40

typedef struct qmodel {
    float w[QN_R * QN_W];      /* enc.0.w: [40, 96] F32 weight */
    float odd[5 * 48];         /* enc.odd.w: [5, 48] F32, ne[0] % 32 != 0 */
    uint16_t h[4 * 64];        /* dec.h.w: [4, 64] F16 weight */
    float norm[QN_W];          /* enc.norm.weight: 1-D */
    float bias[QN_R];          /* enc.0.bias: 1-D */
    float nb[2 * 32];          /* enc.layer_norm2d: 2-D but "norm" in the name */
    float col[64];             /* enc.col: [64, 1], a vector stored 2-D */
    int32_t ids[6];            /* tok.ids: I32 */
    float keep[2 * 64];        /* cb.centroids: kept by pattern */
} qmodel;

static void qmodel_write(qmodel *m, const char *path)
{
    test_rng r = {11};
    test_fill(&r, m->w, QN_R * QN_W, -0.5f, 0.5f);
    for (int i = 0; i < QN_W; i++) /* a few outliers and an all-zero block */
        m->w[i] = i < 32 ? 0.0f : m->w[i] * (i % 7 == 0 ? 50.0f : 1.0f);
    test_fill(&r, m->odd, 5 * 48, -2, 2);
    for (int i = 0; i < 4 * 64; i++)
        m->h[i] = f32_to_fp16(test_rng_uniform(&r, -1, 1));
    test_fill(&r, m->norm, QN_W, 0.5f, 1.5f);
    test_fill(&r, m->bias, QN_R, -0.1f, 0.1f);
    test_fill(&r, m->nb, 64, -1, 1);
    test_fill(&r, m->col, 64, -1, 1);
    for (int i = 0; i < 6; i++)
        m->ids[i] = i * 1000 - 7;
    test_fill(&r, m->keep, 128, -1, 1);
    gguf_writer *w;
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    ck_assert_int_eq(gguf_writer_set_str(w, "general.architecture", "owsm_ctc"), 0);
    ck_assert_int_eq(gguf_writer_set_u32(w, "owsm_ctc.n_mels", 80), 0);
    ck_assert_int_eq(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", a_str, NULL, 4), 0);
    ck_assert_int_eq(gguf_writer_set_u32(w, "general.file_type", 0), 0);
    const int64_t ne_w[] = {QN_W, QN_R}, ne_odd[] = {48, 5}, ne_h[] = {64, 4}, ne_norm[] = {QN_W};
    const int64_t ne_bias[] = {QN_R}, ne_nb[] = {32, 2}, ne_col[] = {1, 64}, ne_ids[] = {6}, ne_keep[] = {64, 2};
    ck_assert_int_eq(gguf_writer_add_tensor(w, "enc.0.w", COCHLEA_TYPE_F32, 2, ne_w, m->w), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "enc.odd.w", COCHLEA_TYPE_F32, 2, ne_odd, m->odd), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "dec.h.w", COCHLEA_TYPE_F16, 2, ne_h, m->h), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "enc.norm.weight", COCHLEA_TYPE_F32, 1, ne_norm, m->norm), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "enc.0.bias", COCHLEA_TYPE_F32, 1, ne_bias, m->bias), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "enc.layer_norm2d", COCHLEA_TYPE_F32, 2, ne_nb, m->nb), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "enc.col", COCHLEA_TYPE_F32, 2, ne_col, m->col), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "tok.ids", COCHLEA_TYPE_I32, 1, ne_ids, m->ids), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "cb.centroids", COCHLEA_TYPE_F32, 2, ne_keep, m->keep), 0);
    ck_assert_int_eq(gguf_writer_write(w, path), 0);
    gguf_writer_free(w);
}

static void assert_type(const gguf_file *f, const char *name, enum cochlea_type type)
{
    const tensor *t;
    ck_assert_int_eq(gguf_get_tensor(f, name, &t), 0);
    ck_assert_msg(t->type == type, "%s: type %s, expected %s", name, type_name(t->type), type_name(type));
}

/* Every element of tensor `name` in f within rel*|x| + abs of the reference x. */
static void assert_values(const gguf_file *f, const char *name, const float *x, double rel, double abs_tol)
{
    const tensor *t;
    ck_assert_int_eq(gguf_get_tensor(f, name, &t), 0);
    int64_t nrows = t->ne[1] * t->ne[2] * t->ne[3];
    float *row = test_alloc((size_t)t->ne[0]);
    for (int64_t r = 0; r < nrows; r++) {
        tensor_row_to_f32(t, r, row);
        for (int64_t i = 0; i < t->ne[0]; i++) {
            double ref = x[r * t->ne[0] + i];
            ck_assert_msg(fabs(row[i] - ref) <= rel * fabs(ref) + abs_tol, "%s[%lld]: %g vs %g", name,
                          (long long)(r * t->ne[0] + i), row[i], ref);
        }
    }
    free(row);
}

static void check_common(const gguf_file *f, const qmodel *m, int file_type)
{
    const char *arch;
    uint32_t ft;
    const gguf_value *v;
    ck_assert_int_eq(gguf_get_str(f, "general.architecture", &arch, NULL), 0);
    ck_assert_str_eq(arch, "owsm_ctc");
    ck_assert_int_eq(gguf_get_u32(f, "general.file_type", &ft), 0);
    ck_assert_uint_eq(ft, (uint32_t)file_type);
    ck_assert_int_eq(gguf_n_kv(f), 4); /* replaced in place, not added */
    ck_assert_str_eq(gguf_kv_key(f, 3), "general.file_type");
    ck_assert_int_eq(gguf_get_array(f, "tokenizer.ggml.tokens", &v), 0);
    ck_assert_uint_eq(v->n, 4);
    ck_assert_int_eq(gguf_n_tensors(f), 9);
    ck_assert_str_eq(gguf_tensor(f, 0)->name, "enc.0.w"); /* order kept */
    assert_type(f, "enc.norm.weight", COCHLEA_TYPE_F32);
    assert_type(f, "enc.0.bias", COCHLEA_TYPE_F32);
    assert_type(f, "enc.layer_norm2d", COCHLEA_TYPE_F32);
    assert_type(f, "enc.col", COCHLEA_TYPE_F32);
    assert_type(f, "tok.ids", COCHLEA_TYPE_I32);
    assert_type(f, "cb.centroids", COCHLEA_TYPE_F32);
    assert_values(f, "enc.norm.weight", m->norm, 0, 0);
    assert_values(f, "enc.0.bias", m->bias, 0, 0);
    assert_values(f, "enc.layer_norm2d", m->nb, 0, 0);
    assert_values(f, "enc.col", m->col, 0, 0);
    assert_values(f, "cb.centroids", m->keep, 0, 0);
    const tensor *t;
    ck_assert_int_eq(gguf_get_tensor(f, "tok.ids", &t), 0);
    ck_assert_int_eq(memcmp(t->data, m->ids, sizeof m->ids), 0);
}

START_TEST(test_quantize)
{
    static qmodel m;
    char in[128], out[128];
    tmp_path(in, sizeof in, "q_in.gguf");
    tmp_path(out, sizeof out, "q_out.gguf");
    qmodel_write(&m, in);
    float hf[4 * 64];
    fp16_to_f32_array(m.h, hf, 4 * 64);
    static const char *const keep[] = {"cb.*"};
    gguf_quantize_params p = gguf_quantize_default_params();
    p.keep = keep;
    p.n_keep = 1;
    gguf_quantize_stats st;
    gguf_file *f;
    const tensor *t;

    /* q8_0 */
    p.type = COCHLEA_TYPE_Q8_0;
    ck_assert_int_eq(gguf_quantize(in, out, &p, &st), 0);
    ck_assert_int_eq(st.n_tensors, 9);
    ck_assert_int_eq(st.n_converted, 2); /* enc.0.w, dec.h.w */
    ck_assert_int_eq(st.n_fallback, 1);  /* enc.odd.w */
    ck_assert_int_eq(st.n_f32, 4);       /* norm, bias, layer_norm2d, col */
    ck_assert_int_eq(st.n_kept, 2);      /* tok.ids, cb.centroids */
    ck_assert_int_eq(gguf_open(out, &f), 0);
    ck_assert_uint_eq(st.out_bytes, gguf_file_size(f));
    ck_assert_uint_lt(st.out_bytes, st.in_bytes);
    check_common(f, &m, 7);
    assert_type(f, "enc.0.w", COCHLEA_TYPE_Q8_0);
    assert_type(f, "dec.h.w", COCHLEA_TYPE_Q8_0);
    assert_type(f, "enc.odd.w", COCHLEA_TYPE_F16);
    assert_values(f, "enc.odd.w", m.odd, 1.0 / 2048, 6e-8);
    /* per block: stored d is fp16(max|x|/127); each value within d/2 (plus the fp16 rounding of d
     * times |q| <= 127) of the original */
    ck_assert_int_eq(gguf_get_tensor(f, "enc.0.w", &t), 0);
    const block_q8_0 *blk = t->data;
    for (int b = 0; b < QN_R * QN_W / QK8_0; b++) {
        const float *x = m.w + b * QK8_0;
        float amax = 0;
        for (int j = 0; j < QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        ck_assert_uint_eq(blk[b].d, f32_to_fp16(d));
        float dh = fp16_to_f32(blk[b].d);
        for (int j = 0; j < QK8_0; j++) {
            float y = dh * blk[b].qs[j];
            double bound = d / 2.0 + 127.0 * fabs((double)d - dh) + 1e-7 * fabs(x[j]);
            ck_assert_msg(fabs(y - x[j]) <= bound, "block %d elem %d: %g vs %g (bound %g)", b, j, y, x[j], bound);
        }
        if (b == 0) /* the all-zero block stays exactly zero */
            for (int j = 0; j < QK8_0; j++)
                ck_assert_int_eq(blk[b].qs[j], 0);
    }
    ck_assert_int_eq(gguf_get_tensor(f, "dec.h.w", &t), 0);
    assert_values(f, "dec.h.w", hf, 0.01, 1.0 / 127 / 2 + 1e-3);
    gguf_close(f);

    /* f16 */
    p.type = COCHLEA_TYPE_F16;
    ck_assert_int_eq(gguf_quantize(in, out, &p, &st), 0);
    ck_assert_int_eq(st.n_converted, 3);
    ck_assert_int_eq(st.n_fallback, 0);
    ck_assert_int_eq(gguf_open(out, &f), 0);
    check_common(f, &m, 1);
    assert_type(f, "enc.0.w", COCHLEA_TYPE_F16);
    assert_type(f, "enc.odd.w", COCHLEA_TYPE_F16);
    assert_values(f, "enc.0.w", m.w, 1.0 / 2048, 6e-8);
    assert_values(f, "dec.h.w", hf, 0, 0);
    gguf_close(f);

    /* bf16 */
    p.type = COCHLEA_TYPE_BF16;
    ck_assert_int_eq(gguf_quantize(in, out, &p, &st), 0);
    ck_assert_int_eq(gguf_open(out, &f), 0);
    check_common(f, &m, 32);
    assert_type(f, "enc.0.w", COCHLEA_TYPE_BF16);
    assert_type(f, "dec.h.w", COCHLEA_TYPE_BF16);
    assert_values(f, "enc.0.w", m.w, 1.0 / 256, 0);
    assert_values(f, "enc.odd.w", m.odd, 1.0 / 256, 0);
    gguf_close(f);

    /* f32: F16 weights widened exactly */
    p.type = COCHLEA_TYPE_F32;
    ck_assert_int_eq(gguf_quantize(in, out, &p, &st), 0);
    ck_assert_int_eq(gguf_open(out, &f), 0);
    check_common(f, &m, 0);
    assert_type(f, "dec.h.w", COCHLEA_TYPE_F32);
    assert_values(f, "dec.h.w", hf, 0, 0);
    assert_values(f, "enc.0.w", m.w, 0, 0);
    ck_assert_uint_gt(st.out_bytes, st.in_bytes);
    gguf_close(f);

    /* refusing to overwrite the input, also under another spelling of its path */
    size_t before_size;
    void *before = read_file(in, &before_size);
    assert_err(gguf_quantize(in, in, &p, &st), COCHLEA_EINVAL, "refusing to overwrite the input file");
    char other[160];
    snprintf(other, sizeof other, "%s/./q_in.gguf", tmpdir);
    assert_err(gguf_quantize(in, other, &p, &st), COCHLEA_EINVAL, "refusing to overwrite the input file");
    size_t after_size;
    void *after = read_file(in, &after_size);
    ck_assert_uint_eq(after_size, before_size);
    ck_assert_int_eq(memcmp(before, after, before_size), 0);
    free(before);
    free(after);

    p.type = COCHLEA_TYPE_I8;
    assert_err(gguf_quantize(in, out, &p, &st), COCHLEA_EINVAL, "target type i8 is not one of f32, f16, bf16, q8_0");
    p.type = COCHLEA_TYPE_Q8_0;
    char missing[160];
    tmp_path(missing, sizeof missing, "absent.gguf");
    assert_err(gguf_quantize(missing, out, &p, &st), COCHLEA_EIO, "absent.gguf: cannot open");
    unlink(in);
    unlink(out);
}
END_TEST

/* ggml's budget for Q8_0 (tests/test-quantize-fns.cpp): on x[i] = 0.1 + 2 cos(i + offset), 4096
 * values, the "total error" sqrt(sum (x - deq(q(x)))^2) / n must stay below 0.002, and a dot product
 * of two Q8_0 vectors |q(x).q(y) - x.y| / n below 0.02. Checked on a weight written by
 * gguf_quantize and read back from the file. */
START_TEST(test_q8_0_budget)
{
    enum { N = 32 * 128, ROWS = 16 };
    static float x[N], y[N], xd[N];
    for (int i = 0; i < N; i++) {
        x[i] = 0.1f + 2.0f * cosf((float)i);
        y[i] = 0.1f + 2.0f * cosf((float)i + 1.0f);
    }
    char in[128], out[128];
    tmp_path(in, sizeof in, "budget_in.gguf");
    tmp_path(out, sizeof out, "budget_q8.gguf");
    gguf_writer *w;
    const int64_t ne[] = {N / ROWS, ROWS};
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "w", COCHLEA_TYPE_F32, 2, ne, x), 0);
    ck_assert_int_eq(gguf_writer_write(w, in), 0);
    gguf_writer_free(w);
    gguf_quantize_params p = gguf_quantize_default_params();
    ck_assert_int_eq(gguf_quantize(in, out, &p, NULL), 0);
    gguf_file *f;
    const tensor *t;
    ck_assert_int_eq(gguf_open(out, &f), 0);
    ck_assert_int_eq(gguf_get_tensor(f, "w", &t), 0);
    ck_assert_int_eq(t->type, COCHLEA_TYPE_Q8_0);
    for (int r = 0; r < ROWS; r++)
        tensor_row_to_f32(t, r, xd + r * (N / ROWS));
    gguf_close(f);
    double se = 0;
    for (int i = 0; i < N; i++)
        se += ((double)x[i] - xd[i]) * ((double)x[i] - xd[i]);
    double total_err = sqrt(se) / N;
    ck_assert_msg(total_err < 0.002, "q8_0 total error %g", total_err);
    ck_assert_msg(total_err > 0, "q8_0 of this data cannot be exact");
    block_q8_0 *qy = malloc(N / QK8_0 * sizeof *qy);
    float *yd = test_alloc(N);
    ck_assert_ptr_nonnull(qy);
    q8_0_quantize(y, qy, N);
    q8_0_dequantize(qy, yd, N);
    double ref = 0, got = 0;
    for (int i = 0; i < N; i++) {
        ref += (double)x[i] * y[i];
        got += (double)xd[i] * yd[i];
    }
    ck_assert_msg(fabs(got - ref) / N < 0.02, "q8_0 dot product error %g", fabs(got - ref) / N);
    free(qy);
    free(yd);
    unlink(in);
    unlink(out);
}
END_TEST

START_TEST(test_quantize_choose)
{
    gguf_quantize_params p = gguf_quantize_default_params();
    tensor t;
    const int64_t ne_w[] = {64, 8}, ne_c[] = {3, 16, 8}, ne_v[] = {1, 1, 256};
    ck_assert_int_eq(tensor_init(&t, COCHLEA_TYPE_F32, 2, ne_w), 0);
    t.name = "blk.0.attn_q.weight";
    ck_assert_int_eq(gguf_quantize_choose(&t, &p), COCHLEA_TYPE_Q8_0);
    t.name = "blk.0.attn_q.bias";
    ck_assert_int_eq(gguf_quantize_choose(&t, &p), COCHLEA_TYPE_F32);
    t.name = "blk.0.ffn_norm.weight";
    ck_assert_int_eq(gguf_quantize_choose(&t, &p), COCHLEA_TYPE_F32);
    t.name = "frontend.logmel.melmat"; /* feature constants stay exact */
    ck_assert_int_eq(gguf_quantize_choose(&t, &p), COCHLEA_TYPE_F32);
    ck_assert_int_eq(tensor_init(&t, COCHLEA_TYPE_BF16, 3, ne_c), 0);
    t.name = "enc.conv.weight"; /* conv kernel of width 3: no Q8_0 blocks, so F16 */
    ck_assert_int_eq(gguf_quantize_choose(&t, &p), COCHLEA_TYPE_F16);
    p.type = COCHLEA_TYPE_BF16;
    ck_assert_int_eq(gguf_quantize_choose(&t, &p), COCHLEA_TYPE_BF16);
    ck_assert_int_eq(tensor_init(&t, COCHLEA_TYPE_F16, 3, ne_v), 0);
    t.name = "dec.conv.weight_g"; /* [256, 1, 1] in PyTorch: a vector */
    ck_assert_int_eq(gguf_quantize_choose(&t, &p), COCHLEA_TYPE_F32);
    ck_assert_int_eq(gguf_file_type_id(COCHLEA_TYPE_Q8_0), 7);
    ck_assert_int_eq(gguf_file_type_id(COCHLEA_TYPE_BF16), 32);
    ck_assert_int_eq(gguf_file_type_id(COCHLEA_TYPE_I32), -1);
}
END_TEST

/* ---- helper modes for tests/gguf_python.py ------------------------------------------------- */

static void hex(FILE *o, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        fprintf(o, "%02x", b[i]);
}

/* Print every key (full values; strings in hex) and every tensor (dims, offset, raw bytes in hex,
 * values converted to float) of FILE, one per line, tab-separated. */
static int dump_main(const char *path)
{
    gguf_file *f;
    int rc = gguf_open(path, &f);
    if (rc) {
        fprintf(stderr, "error: %s\n", cochlea_last_error());
        return 1;
    }
    printf("file\t%" PRIu32 "\t%zu\t%zu\t%zu\n", gguf_version(f), gguf_alignment(f), gguf_data_offset(f),
           gguf_file_size(f));
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_value *v = gguf_kv_value(f, i);
        printf("kv\t%s\t%s\t%s\t%" PRIu64 "\t", v->key, gguf_type_name(v->type), gguf_type_name(v->arr_type), v->n);
        for (uint64_t k = 0; k < v->n; k++) {
            if (k)
                putchar(' ');
            int64_t iv;
            double dv;
            if (v->arr_type == GGUF_TYPE_STRING) {
                hex(stdout, v->str[k], (size_t)v->str_len[k]);
                if (v->str_len[k] == 0)
                    putchar('-');
            } else if (v->arr_type == GGUF_TYPE_U64) {
                uint64_t u;
                memcpy(&u, (const uint8_t *)v->data + 8 * k, 8);
                printf("%" PRIu64, u);
            } else if (gguf_value_int(v, k, &iv) == 0) {
                printf("%" PRId64, iv);
            } else if (gguf_value_float(v, k, &dv) == 0) {
                printf("%.17g", dv);
            }
        }
        putchar('\n');
    }
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const tensor *t = gguf_tensor(f, i);
        printf("tensor\t%s\t%s\t", t->name, type_name(t->type));
        for (int d = 0; d < t->n_dims; d++)
            printf("%s%" PRId64, d ? "," : "", t->ne[d]);
        printf("\t%zu\t", gguf_tensor_file_offset(f, i));
        hex(stdout, t->data, tensor_nbytes(t));
        putchar('\t');
        int64_t nrows = t->ne[1] * t->ne[2] * t->ne[3];
        float *row = malloc((size_t)t->ne[0] * sizeof *row);
        if (!row)
            return 1;
        for (int64_t r = 0; r < nrows; r++) {
            tensor_row_to_f32(t, r, row);
            for (int64_t k = 0; k < t->ne[0]; k++)
                printf("%s%.9g", r || k ? " " : "", row[k]);
        }
        free(row);
        putchar('\n');
    }
    gguf_close(f);
    return 0;
}

/* Rewrite IN as OUT with the C writer: same keys and tensors in the same order. */
static int copy_main(const char *in, const char *out)
{
    gguf_file *f;
    gguf_writer *w = NULL;
    int rc = gguf_open(in, &f);
    if (!rc)
        rc = gguf_writer_new(&w);
    for (int64_t i = 0; !rc && i < gguf_n_kv(f); i++)
        rc = gguf_writer_set_value(w, gguf_kv_key(f, i), gguf_kv_value(f, i));
    for (int64_t i = 0; !rc && i < gguf_n_tensors(f); i++) {
        const tensor *t = gguf_tensor(f, i);
        rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
    }
    if (!rc)
        rc = gguf_writer_write(w, out);
    if (rc)
        fprintf(stderr, "error: %s\n", cochlea_last_error());
    gguf_writer_free(w);
    gguf_close(f);
    return rc ? 1 : 0;
}

static Suite *gguf_suite(void)
{
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("roundtrip");
    tcase_add_test(tc, test_roundtrip_memory);
    tcase_add_test(tc, test_roundtrip_file);
    tcase_add_test(tc, test_roundtrip_alignment);
    tcase_add_test(tc, test_copy_identical);
    tcase_add_test(tc, test_getter_errors);
    tcase_add_test(tc, test_value_format);
    tcase_add_test(tc, test_writer_rules);
    tcase_add_test(tc, test_writer_stream);
    suite_add_tcase(s, tc);
    tc = tcase_create("broken");
    tcase_add_test(tc, test_bad_header);
    tcase_add_test(tc, test_bad_kv);
    tcase_add_test(tc, test_bad_alignment);
    tcase_add_test(tc, test_bad_tensor_info);
    tcase_add_test(tc, test_bad_placement);
    tcase_add_test(tc, test_truncated_everywhere);
    tcase_add_test(tc, test_fuzz_bytes);
    tcase_add_test(tc, test_open_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("quantize");
    tcase_add_test(tc, test_quantize);
    tcase_add_test(tc, test_quantize_choose);
    tcase_add_test(tc, test_q8_0_budget);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "dump") == 0)
        return dump_main(argv[2]);
    if (argc == 4 && strcmp(argv[1], "copy") == 0)
        return copy_main(argv[2], argv[3]);
    if (argc > 1) {
        fprintf(stderr, "usage: %s [dump FILE | copy IN OUT]\n", argv[0]);
        return 2;
    }
    strcpy(tmpdir, "/tmp/test_gguf_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    int rc = test_run_suite(gguf_suite());
    remove_tmpdir();
    return rc;
}
