/* fuzz_sec.c - libFuzzer harness for the .sec reader (codec/bitstream.h), run by tests/fuzz_sec.sh.
 *
 * Each input is parsed as it is and, when that changes it, with every CRC recomputed (so that
 * mutations also reach the payload decoders behind valid CRCs). Each parse runs twice, whole-buffer (sec_decode) and chunk by chunk with 1- to 3-byte reads
 * (sec_reader_next); the results must agree. Checked invariants (a violation traps, which
 * libFuzzer reports as a crash): a failure leaves a message and only a whole-chunk prefix of
 * in-range codes; a success returns exactly ceil(n_samples / hop) frames of in-range codes, and
 * re-encoding them decodes back to the same codes (for packed streams, to the same bytes). The
 * sanitizers catch everything else (overflows, leaks, undefined behaviour).
 *
 * Built with -DSEC_FUZZ_SEEDGEN instead, the file is a program that writes a small seed corpus
 * (valid streams in both codings, K = 1, zero frames, 32 levels, K = 65536) into the directory
 * given as its argument. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/bitstream.h"
#include "error.h"

#define CHECK(cond)                                                                                     \
    do {                                                                                                \
        if (!(cond)) {                                                                                  \
            fprintf(stderr, "fuzz_sec: invariant failed at line %d: %s\n", __LINE__, #cond);            \
            __builtin_trap();                                                                           \
        }                                                                                               \
    } while (0)

typedef struct {
    const uint8_t *d;
    size_t n, pos;
    unsigned step;
} drip;

static ptrdiff_t drip_read(void *u, void *buf, size_t n)
{
    drip *s = u;
    size_t k = s->n - s->pos;
    size_t want = 1 + s->step++ % 3;
    if (k > n)
        k = n;
    if (k > want)
        k = want;
    memcpy(buf, s->d + s->pos, k);
    s->pos += k;
    return (ptrdiff_t)k;
}

static void check_codes(const sec_header *h, const int32_t *codes, uint64_t n)
{
    for (uint64_t t = 0; t < n; t++)
        for (uint32_t l = 0; l < h->n_levels; l++) {
            int32_t c = codes[t * h->n_levels + l];
            CHECK(c >= 0 && (uint32_t)c < h->codebook_size[l]);
        }
}

static void put_crc(uint8_t *p, uint32_t c)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(c >> (8 * i));
}

/* Recompute every CRC the layout implies (header, then each chunk as far as the bytes go), so
 * the fuzzer also reaches the payload decoders behind valid CRCs. Returns 1 if anything changed. */
static int repair_crcs(uint8_t *d, size_t n)
{
    if (n < 40)
        return 0;
    uint32_t L = (uint32_t)d[36] | (uint32_t)d[37] << 8 | (uint32_t)d[38] << 16 | (uint32_t)d[39] << 24;
    if (L < 1 || L > SEC_MAX_LEVELS || n < 44 + 4 * (size_t)L)
        return 0;
    int changed = 0;
    uint8_t old[4];
    size_t at = 40 + 4 * (size_t)L;
    memcpy(old, d + at, 4);
    put_crc(d + at, sec_crc32(0, d, at));
    changed |= memcmp(old, d + at, 4) != 0;
    at += 4;
    while (n - at >= 16) {
        memcpy(old, d + at + 12, 4);
        put_crc(d + at + 12, sec_crc32(0, d + at, 12));
        changed |= memcmp(old, d + at + 12, 4) != 0;
        size_t p = (size_t)d[at + 8] | (size_t)d[at + 9] << 8 | (size_t)d[at + 10] << 16 | (size_t)d[at + 11] << 24;
        if (p > n - at - 16 || n - at - 16 - p < 4)
            break;
        memcpy(old, d + at + 16 + p, 4);
        put_crc(d + at + 16 + p, sec_crc32(0, d + at, 16 + p));
        changed |= memcmp(old, d + at + 16 + p, 4) != 0;
        at += 20 + p;
    }
    return changed;
}

/* Stream through a header whose frame count is too large to hold in memory (n_samples is a
 * u64: a tiny stream of K = 1 levels may claim 2^40 frames). Codes are checked per chunk. */
static void stream_only(const uint8_t *data, size_t size)
{
    drip dr = {data, size, 0, 0};
    sec_reader *r = NULL;
    CHECK(sec_reader_open(&r, drip_read, &dr) == COCHLEA_OK);
    const sec_header *h = sec_reader_header(r);
    uint64_t done = 0;
    int rc;
    for (;;) {
        const int32_t *c;
        size_t k;
        uint64_t first;
        rc = sec_reader_next(r, &c, &k, &first);
        if (rc != COCHLEA_OK || k == 0)
            break;
        CHECK(first == done && k <= h->frames_per_chunk);
        check_codes(h, c, k);
        done += k;
        if (done * h->n_levels > ((uint64_t)1 << 24))
            break; /* enough: the rest is more of the same, and libFuzzer would call it a hang */
    }
    CHECK(sec_reader_frames(r) == done);
    if (rc != COCHLEA_OK)
        CHECK(done % h->frames_per_chunk == 0 || done == sec_header_n_frames(h));
    sec_reader_free(r);
}

static void run_one(const uint8_t *data, size_t size)
{
    sec_memsrc src = {data, size, 0};
    sec_header h;
    int32_t *codes = NULL;
    uint64_t n = 0;
    sec_reader *r = NULL;
    if (sec_reader_open(&r, sec_memsrc_read, &src) == COCHLEA_OK) {
        const sec_header *hh = sec_reader_header(r);
        uint64_t cells = sec_header_n_frames(hh) * hh->n_levels;
        sec_reader_free(r);
        if (cells > ((uint64_t)1 << 22)) {
            stream_only(data, size);
            return;
        }
    }
    src.pos = 0;
    cochlea_clear_error();
    int rc = sec_decode(sec_memsrc_read, &src, &h, &codes, &n);
    if (rc != COCHLEA_OK)
        CHECK(cochlea_last_error()[0] != '\0');

    /* the streaming reader with tiny reads agrees */
    drip dr = {data, size, 0, 0};
    r = NULL;
    int rc2 = sec_reader_open(&r, drip_read, &dr);
    uint64_t n2 = 0;
    if (rc2 == COCHLEA_OK) {
        const sec_header *h2 = sec_reader_header(r);
        CHECK(memcmp(h2, &h, sizeof h) == 0);
        for (;;) {
            const int32_t *c;
            size_t k;
            uint64_t first;
            rc2 = sec_reader_next(r, &c, &k, &first);
            if (rc2 != COCHLEA_OK || k == 0)
                break;
            CHECK(first == n2 && n2 + k <= n);
            CHECK(memcmp(c, codes + n2 * h.n_levels, k * h.n_levels * sizeof *c) == 0);
            n2 += k;
        }
        CHECK(sec_reader_frames(r) == n2);
        CHECK((rc2 == COCHLEA_OK) == (sec_reader_bad_chunk(r) < 0));
        sec_reader_free(r);
    } else {
        CHECK(r == NULL);
    }
    CHECK(rc2 == rc);
    CHECK(n2 == n);

    if (rc != COCHLEA_OK) {
        /* only whole chunks before the first bad one */
        if (n > 0) {
            CHECK(codes != NULL);
            CHECK(n % h.frames_per_chunk == 0 || n == sec_header_n_frames(&h));
            check_codes(&h, codes, n);
        }
        free(codes);
        return;
    }
    CHECK(n == sec_header_n_frames(&h));
    check_codes(&h, codes, n);

    /* re-encode: the same codes come back; a packed stream is reproduced byte for byte */
    uint8_t *buf = NULL;
    size_t len = 0;
    CHECK(sec_encode(&h, codes, n, &buf, &len) == COCHLEA_OK);
    if (!(h.flags & SEC_FLAG_ENTROPY))
        CHECK(len == size && memcmp(buf, data, size) == 0);
    else
        CHECK(len <= size); /* the writer's choice per chunk is never longer than a valid one */
    sec_memsrc src2 = {buf, len, 0};
    int32_t *codes2 = NULL;
    uint64_t n3 = 0;
    CHECK(sec_decode(sec_memsrc_read, &src2, NULL, &codes2, &n3) == COCHLEA_OK);
    CHECK(n3 == n);
    CHECK(n == 0 || memcmp(codes, codes2, (size_t)n * h.n_levels * sizeof *codes) == 0);
    free(codes2);
    free(buf);
    free(codes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as it is, then with its CRCs repaired. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_one(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    if (repair_crcs(copy, size))
        run_one(copy, size);
    free(copy);
    return 0;
}

#ifdef SEC_FUZZ_SEEDGEN
static int write_seed(const char *dir, int idx, uint32_t flags, uint64_t n_samples, uint32_t hop, uint32_t fpc,
                      uint32_t L, const uint32_t *K, unsigned skew)
{
    sec_header h;
    memset(&h, 0, sizeof h);
    h.flags = flags;
    h.fingerprint = 0x5ec0dec000000000ull + (uint64_t)idx;
    h.sample_rate = 16000;
    h.hop = hop;
    h.n_samples = n_samples;
    h.frames_per_chunk = fpc;
    h.n_levels = L;
    memcpy(h.codebook_size, K, L * sizeof *K);
    uint64_t T = sec_header_n_frames(&h);
    int32_t *codes = malloc((size_t)(T + 1) * L * sizeof *codes);
    if (!codes)
        return 1;
    uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(idx + 1);
    for (uint64_t i = 0; i < T * L; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        uint32_t k = K[i % L];
        uint64_t v = s % k;
        if (skew)
            v = v * v / k * v / k; /* most codes small, so range coding wins */
        codes[i] = (int32_t)v;
    }
    uint8_t *buf;
    size_t len;
    int rc = sec_encode(&h, codes, T, &buf, &len);
    free(codes);
    if (rc != COCHLEA_OK) {
        fprintf(stderr, "seedgen: %s\n", cochlea_last_error());
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/seed%02d.sec", dir, idx);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "seedgen: cannot write %s\n", path);
        free(buf);
        return 1;
    }
    free(buf);
    return 0;
}

/* 32 levels of K = 1 claiming 2^40 frames, with 3 valid (empty) chunks of 65536 frames: the
 * reader must stream it in bounded memory. */
static int write_bomb(const char *dir, int idx)
{
    uint8_t b[44 + 4 * 32 + 3 * 20];
    /* bytes 0..31 as u32: magic, version 1 + flags 0, fingerprint 0, sample rate, hop 1,
     * n_samples = 256 << 32 */
    const uint32_t f[8] = {0x1a434553u, 1, 0, 0, 16000, 1, 0, 256};
    memset(b, 0, sizeof b);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++)
            b[4 * i + j] = (uint8_t)(f[i] >> (8 * j));
    b[32 + 2] = 1; /* frames_per_chunk 65536 */
    b[36] = 32;    /* n_levels */
    for (int l = 0; l < 32; l++)
        b[40 + 4 * l] = 1;
    uint32_t c = sec_crc32(0, b, 168);
    for (int j = 0; j < 4; j++)
        b[168 + j] = (uint8_t)(c >> (8 * j));
    for (int k = 0; k < 3; k++) {
        uint8_t *ch = b + 172 + 20 * k;
        ch[0] = (uint8_t)k;
        ch[6] = 1; /* n_frames 65536, payload 0 */
        c = sec_crc32(0, ch, 12);
        for (int j = 0; j < 4; j++)
            ch[12 + j] = (uint8_t)(c >> (8 * j));
        c = sec_crc32(0, ch, 16);
        for (int j = 0; j < 4; j++)
            ch[16 + j] = (uint8_t)(c >> (8 * j));
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/seed%02d.sec", dir, idx);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(b, 1, sizeof b, fp) != sizeof b || fclose(fp) != 0)
        return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    const uint32_t k8[8] = {468, 1024, 300, 2, 1, 5, 4096, 17};
    const uint32_t k3[3] = {5, 1, 300};
    const uint32_t kbig[2] = {65536, 65535};
    const uint32_t k1[2] = {1, 1};
    uint32_t k32[32];
    for (int l = 0; l < 32; l++)
        k32[l] = 2u + (uint32_t)l * 37u;
    int bad = 0, i = 0;
    bad |= write_seed(argv[1], i++, 0, 1600, 320, 3, 3, k3, 0);
    bad |= write_seed(argv[1], i++, 1, 1600, 320, 3, 3, k3, 1);
    bad |= write_seed(argv[1], i++, 0, 320 * 12 - 5, 320, 5, 8, k8, 0);
    bad |= write_seed(argv[1], i++, 1, 320 * 12 - 5, 320, 5, 8, k8, 1);
    bad |= write_seed(argv[1], i++, 1, 320 * 40, 320, 40, 8, k8, 1);
    bad |= write_seed(argv[1], i++, 1, 320 * 9, 320, 1, 2, kbig, 1);
    bad |= write_seed(argv[1], i++, 0, 320 * 9, 320, 4, 2, k1, 0);
    bad |= write_seed(argv[1], i++, 1, 0, 320, 4, 3, k3, 0);
    bad |= write_seed(argv[1], i++, 0, 480 * 3, 480, 2, 32, k32, 0);
    bad |= write_seed(argv[1], i++, 1, 480 * 3, 480, 2, 32, k32, 1);
    bad |= write_bomb(argv[1], i++);
    return bad ? 1 : 0;
}
#endif
