/* test_codec_bitstream.c - the .sec bitstream (codec/bitstream.h, codec/arith.h;
 * docs/sec-format.md).
 *
 * Round trips of random codes at every K from 2 to 4096 with L = 1..8, packed and range coded,
 * with frames_per_chunk 1, dividing and not dividing T; K = 1 and zero-frame streams; golden
 * bytes of the packed bit order, of a range-coded chunk and of the worked example in
 * docs/sec-format.md; every single-bit flip and every truncation of small files (detected, the
 * message names the right part and chunk, the salvaged prefix is exactly the chunks before it);
 * bad magic, version, flags, fields; codes >= K behind a valid CRC; 1-byte streaming I/O equal
 * to whole-buffer I/O; and the range coder's size on Zipf-distributed and uniform tokens
 * against packing (the numbers are printed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/arith.h"
#include "codec/bitstream.h"
#include "error.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static sec_header make_header(uint32_t flags, uint64_t n_samples, uint32_t hop, uint32_t fpc, uint32_t L,
                              const uint32_t *K)
{
    sec_header h;
    memset(&h, 0, sizeof h);
    h.flags = flags;
    h.fingerprint = 0x0123456789abcdefull;
    h.sample_rate = 16000;
    h.hop = hop;
    h.n_samples = n_samples;
    h.frames_per_chunk = fpc;
    h.n_levels = L;
    for (uint32_t l = 0; l < L; l++)
        h.codebook_size[l] = K[l];
    return h;
}

static int32_t *random_codes(test_rng *r, const sec_header *h, uint64_t T)
{
    int32_t *c = malloc((size_t)(T ? T : 1) * h->n_levels * sizeof *c);
    if (!c)
        ck_abort_msg("out of memory");
    for (uint64_t t = 0; t < T; t++)
        for (uint32_t l = 0; l < h->n_levels; l++) {
            int32_t v = (int32_t)(test_rng_next(r) % h->codebook_size[l]);
            /* make the extremes frequent: first and last frames use 0 and K-1 */
            if (t == 0)
                v = (int32_t)h->codebook_size[l] - 1;
            else if (t == T - 1)
                v = 0;
            c[t * h->n_levels + l] = v;
        }
    return c;
}

static int decode_mem(const uint8_t *buf, size_t len, sec_header *h, int32_t **codes, uint64_t *n)
{
    sec_memsrc src = {buf, len, 0};
    return sec_decode(sec_memsrc_read, &src, h, codes, n);
}

/* Byte size of a packed stream: header, then per chunk 16 + ceil(n * bits / 8) + 4. */
static size_t packed_size(const sec_header *h)
{
    size_t s = sec_header_bytes(h);
    uint64_t T = sec_header_n_frames(h);
    for (uint64_t f = 0; f < T; f += h->frames_per_chunk) {
        uint64_t n = T - f < h->frames_per_chunk ? T - f : h->frames_per_chunk;
        s += 20 + (size_t)((n * sec_bits_per_frame(h) + 7) / 8);
    }
    return s;
}

/* Encode, decode, compare everything; returns the encoded size. Plain ifs and one ck_abort on
 * failure: every ck_assert costs Check a write to its message pipe, and this runs 10^4 times. */
static size_t roundtrip(const sec_header *h, const int32_t *codes)
{
    uint64_t T = sec_header_n_frames(h);
    uint8_t *buf;
    size_t len;
    int rc = sec_encode(h, codes, T, &buf, &len);
    if (rc != COCHLEA_OK)
        ck_abort_msg("encode: %s", cochlea_last_error());
    if (!(h->flags & SEC_FLAG_ENTROPY) && len != packed_size(h))
        ck_abort_msg("packed stream of %zu bytes, expected %zu", len, packed_size(h));
    sec_header h2;
    int32_t *dec;
    uint64_t n;
    rc = decode_mem(buf, len, &h2, &dec, &n);
    if (rc != COCHLEA_OK)
        ck_abort_msg("decode (L %u, K0 %u, T %llu, fpc %u, flags %u): %s", h->n_levels, h->codebook_size[0],
                     (unsigned long long)T, h->frames_per_chunk, h->flags, cochlea_last_error());
    int same = n == T && h2.version == SEC_VERSION && h2.flags == h->flags && h2.fingerprint == h->fingerprint &&
               h2.sample_rate == h->sample_rate && h2.hop == h->hop && h2.n_samples == h->n_samples &&
               h2.frames_per_chunk == h->frames_per_chunk && h2.n_levels == h->n_levels &&
               memcmp(h2.codebook_size, h->codebook_size, h->n_levels * sizeof h->codebook_size[0]) == 0;
    if (!same)
        ck_abort_msg("decoded header or frame count differs (%llu frames, expected %llu)", (unsigned long long)n,
                     (unsigned long long)T);
    if (T > 0 && memcmp(dec, codes, (size_t)T * h->n_levels * sizeof *dec) != 0) {
        uint64_t i = 0;
        while (dec[i] == codes[i])
            i++;
        ck_abort_msg("frame %llu level %llu: got %d, wrote %d", (unsigned long long)(i / h->n_levels),
                     (unsigned long long)(i % h->n_levels), dec[i], codes[i]);
    }
    free(dec);
    free(buf);
    return len;
}

static void to_hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
    out[2 * n] = '\0';
}

/* ---- basic helpers ---------------------------------------------------------------------- */

START_TEST(test_crc_and_rates)
{
    ck_assert_uint_eq(sec_crc32(0, "123456789", 9), 0xCBF43926u);
    ck_assert_uint_eq(sec_crc32(0, "", 0), 0u);
    /* incremental == one shot */
    ck_assert_uint_eq(sec_crc32(sec_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
    ck_assert_uint_eq(sec_crc32(0, "The quick brown fox jumps over the lazy dog", 43), 0x414FA339u);

    const uint32_t kb[][2] = {{1, 0}, {2, 1}, {3, 2}, {4, 2}, {5, 3}, {468, 9}, {511, 9}, {512, 9},
                              {513, 10}, {1024, 10}, {65535, 16}, {65536, 16}};
    for (size_t i = 0; i < sizeof kb / sizeof kb[0]; i++)
        ck_assert_uint_eq(sec_code_bits(kb[i][0]), kb[i][1]);

    uint32_t K[8] = {1024, 1024, 1024, 1024, 1024, 1024, 1024, 1024};
    sec_header h = make_header(0, 16000 * 10, 320, 250, 8, K);
    ck_assert_uint_eq(sec_bits_per_frame(&h), 80);
    ck_assert(fabs(sec_frame_rate(&h) - 50.0) < 1e-12);
    ck_assert(fabs(sec_bitrate_packed(&h) - 4000.0) < 1e-9);
    ck_assert(fabs(sec_bitrate_log2(&h) - 4000.0) < 1e-9);
    ck_assert(fabs(sec_bitrate_file(&h, 5000) - 4000.0) < 1e-9); /* 5000 bytes over 10 s */
    uint32_t K2[3] = {468, 1, 3};
    h = make_header(0, 1000, 320, 3, 3, K2);
    ck_assert_uint_eq(sec_bits_per_frame(&h), 11);
    ck_assert(fabs(sec_bitrate_packed(&h) - 550.0) < 1e-9);
    ck_assert(fabs(sec_bitrate_log2(&h) - 50.0 * (log2(468.0) + log2(3.0))) < 1e-9);
    ck_assert_uint_eq(sec_header_n_frames(&h), 4); /* ceil(1000 / 320) */
    ck_assert_uint_eq(sec_header_n_chunks(&h), 2);
    ck_assert_uint_eq(sec_header_bytes(&h), 56);
    h.n_samples = 960;
    ck_assert_uint_eq(sec_header_n_frames(&h), 3);
    ck_assert_uint_eq(sec_header_n_chunks(&h), 1);
    h.n_samples = 0;
    ck_assert_uint_eq(sec_header_n_frames(&h), 0);
    ck_assert_uint_eq(sec_header_n_chunks(&h), 0);
    ck_assert(sec_bitrate_file(&h, 100) == 0.0);

    ck_assert_int_eq(sec_check_fingerprint(&h, 0x0123456789abcdefull), COCHLEA_OK);
    ck_assert_int_eq(sec_check_fingerprint(&h, 0x42), COCHLEA_EINVAL);
    ck_assert_str_eq(cochlea_last_error(), "model fingerprint mismatch: the stream was encoded with model "
                                           "0x0123456789abcdef, the loaded model is 0x0000000000000042");
}
END_TEST

START_TEST(test_header_validation)
{
    uint32_t K[2] = {5, 3};
    sec_header good = make_header(0, 1000, 320, 3, 2, K), h;
    sec_membuf mb = {0};
    sec_writer *w = NULL;
    h = good;
    h.n_levels = 0;
    ck_assert_int_eq(sec_writer_open(&w, &h, sec_membuf_write, &mb), COCHLEA_EINVAL);
    ck_assert_str_eq(cochlea_last_error(), "header: level count 0 out of range (1..32)");
    h = good;
    h.n_levels = 33;
    ck_assert_int_eq(sec_header_validate(&h), COCHLEA_EINVAL);
    h = good;
    h.codebook_size[1] = 0;
    ck_assert_int_eq(sec_header_validate(&h), COCHLEA_EINVAL);
    ck_assert_str_eq(cochlea_last_error(), "header: codebook size of level 1 is 0 (must be 1..65536)");
    h.codebook_size[1] = 65537;
    ck_assert_int_eq(sec_header_validate(&h), COCHLEA_EINVAL);
    h.codebook_size[1] = 65536;
    ck_assert_int_eq(sec_header_validate(&h), COCHLEA_OK);
    h = good;
    h.hop = 0;
    ck_assert_int_eq(sec_header_validate(&h), COCHLEA_EINVAL);
    h = good;
    h.sample_rate = 0;
    ck_assert_int_eq(sec_header_validate(&h), COCHLEA_EINVAL);
    h = good;
    h.frames_per_chunk = 0;
    ck_assert_int_eq(sec_header_validate(&h), COCHLEA_EINVAL);
    h.frames_per_chunk = 65537;
    ck_assert_int_eq(sec_header_validate(&h), COCHLEA_EINVAL);
    h = good;
    h.flags = 4;
    ck_assert_int_eq(sec_header_validate(&h), COCHLEA_EUNSUPPORTED);
    ck_assert_str_eq(cochlea_last_error(), "header: unsupported flags 0x0004 (known: 0x0001)");
    h = good;
    h.n_samples = UINT64_MAX;
    h.hop = 1;
    h.frames_per_chunk = 1;
    ck_assert_int_eq(sec_header_validate(&h), COCHLEA_EINVAL);
    ck_assert_ptr_null(w);
    ck_assert_uint_eq(mb.size, 0); /* nothing written on failure */
    free(mb.data);
}
END_TEST

/* ---- round trips ---------------------------------------------------------------------------- */

START_TEST(test_roundtrip_every_k)
{
    test_rng r = {0x5ec0dec};
    const uint32_t fpcs[] = {1, 2, 3, 4, 5, 7, 16};
    for (uint32_t k = 2; k <= 4096; k++) {
        uint32_t L = 1 + k % 8;
        uint32_t K[8];
        uint32_t big = (k / 8) % L; /* the level that gets K = k */
        for (uint32_t l = 0; l < L; l++)
            K[l] = l == big ? k : (uint32_t)test_rng_int(&r, 1, k < 40 ? (int)k : 40);
        uint32_t T = (uint32_t)test_rng_int(&r, 1, 9);
        uint32_t fpc = fpcs[k % 7];
        uint64_t n_samples = (uint64_t)T * 320 - (uint64_t)test_rng_int(&r, 0, 319);
        for (uint32_t flags = 0; flags <= SEC_FLAG_ENTROPY; flags++) {
            sec_header h = make_header(flags, n_samples, 320, fpc, L, K);
            if (sec_header_n_frames(&h) != T)
                ck_abort_msg("K %u: %llu frames, expected %u", k, (unsigned long long)sec_header_n_frames(&h), T);
            int32_t *codes = random_codes(&r, &h, T);
            roundtrip(&h, codes);
            free(codes);
        }
    }
}
END_TEST

START_TEST(test_roundtrip_levels_and_chunks)
{
    test_rng r = {77};
    const uint32_t Ks[] = {2, 3, 468, 1024, 4096, 65535, 65536};
    for (uint32_t L = 1; L <= 8; L++)
        for (uint32_t fpc = 1; fpc <= 13; fpc += 3) {
            uint32_t K[8];
            for (uint32_t l = 0; l < L; l++)
                K[l] = Ks[(L + l + fpc) % 7];
            uint64_t T = (uint64_t)test_rng_int(&r, 10, 40);
            for (uint32_t flags = 0; flags <= SEC_FLAG_ENTROPY; flags++) {
                sec_header h = make_header(flags, T * 320, 320, fpc, L, K);
                int32_t *codes = random_codes(&r, &h, T);
                roundtrip(&h, codes);
                free(codes);
            }
        }
    /* 32 levels, hop not 320, big chunk */
    uint32_t K[32];
    for (uint32_t l = 0; l < 32; l++)
        K[l] = 1u + (uint32_t)test_rng_int(&r, 0, 3000);
    for (uint32_t flags = 0; flags <= SEC_FLAG_ENTROPY; flags++) {
        sec_header h = make_header(flags, 1234567, 480, 1000, 32, K);
        uint64_t T = sec_header_n_frames(&h);
        ck_assert_uint_eq(T, 2573);
        int32_t *codes = random_codes(&r, &h, T);
        roundtrip(&h, codes);
        free(codes);
    }
}
END_TEST

START_TEST(test_k1_and_empty)
{
    test_rng r = {3};
    for (uint32_t flags = 0; flags <= SEC_FLAG_ENTROPY; flags++) {
        /* every level K = 1: zero payload bytes */
        uint32_t K1[3] = {1, 1, 1};
        sec_header h = make_header(flags, 3200, 320, 4, 3, K1);
        int32_t zeros[30] = {0};
        size_t len = roundtrip(&h, zeros);
        ck_assert_uint_eq(len, sec_header_bytes(&h) + 3 * 20); /* 3 chunks of 16 + 0 + 4 */
        int32_t one[3] = {0, 1, 0};
        sec_membuf mb = {0};
        sec_writer *w;
        ck_assert_int_eq(sec_writer_open(&w, &h, sec_membuf_write, &mb), COCHLEA_OK);
        ck_assert_int_eq(sec_writer_push(w, one, 1), COCHLEA_ERANGE);
        ck_assert_str_eq(cochlea_last_error(), "frame 0 level 1: code 1 out of range (codebook size 1)");
        sec_writer_free(w);
        free(mb.data);

        /* K = 1 mixed in: costs nothing */
        uint32_t Km[4] = {1, 300, 1, 2};
        h = make_header(flags, 320 * 50, 320, 7, 4, Km);
        int32_t *codes = random_codes(&r, &h, 50);
        roundtrip(&h, codes);
        free(codes);
        if (!flags)
            ck_assert_uint_eq(sec_bits_per_frame(&h), 10);

        /* zero samples: header only, no chunk */
        uint32_t K[2] = {1024, 7};
        h = make_header(flags, 0, 320, 5, 2, K);
        uint8_t *buf;
        ck_assert_int_eq(sec_encode(&h, NULL, 0, &buf, &len), COCHLEA_OK);
        ck_assert_uint_eq(len, 52);
        sec_header h2;
        int32_t *dec = (int32_t *)&h2;
        uint64_t n = 99;
        ck_assert_int_eq(decode_mem(buf, len, &h2, &dec, &n), COCHLEA_OK);
        ck_assert_uint_eq(n, 0);
        ck_assert_ptr_null(dec);
        ck_assert(h2.n_samples == 0);
        ck_assert_uint_eq(h2.codebook_size[0], 1024);
        free(buf);
        mb = (sec_membuf){0};
        ck_assert_int_eq(sec_writer_open(&w, &h, sec_membuf_write, &mb), COCHLEA_OK);
        int32_t f[2] = {0, 0};
        ck_assert_int_eq(sec_writer_push(w, f, 1), COCHLEA_ERANGE);
        ck_assert_int_eq(sec_writer_finish(w), COCHLEA_OK);
        ck_assert_uint_eq(sec_writer_bytes(w), 52);
        sec_writer_free(w);
        free(mb.data);
    }
}
END_TEST

START_TEST(test_frame_count_and_code_range)
{
    uint32_t K[2] = {5, 3};
    sec_header h = make_header(0, 1000, 320, 3, 2, K); /* ceil(1000/320) = 4 frames */
    int32_t codes[5][2] = {{4, 2}, {1, 0}, {0, 1}, {3, 2}, {2, 2}};
    sec_membuf mb = {0};
    sec_writer *w;
    ck_assert_int_eq(sec_writer_open(&w, &h, sec_membuf_write, &mb), COCHLEA_OK);
    ck_assert_int_eq(sec_writer_push(w, &codes[0][0], 5), COCHLEA_ERANGE);
    ck_assert_str_eq(cochlea_last_error(),
                     "push of 5 frames after 0: the stream holds 4 frames (ceil(1000 samples / hop 320))");
    ck_assert_int_eq(sec_writer_push(w, &codes[0][0], 2), COCHLEA_OK);
    int32_t bad[2][2] = {{0, 1}, {5, 0}};
    ck_assert_int_eq(sec_writer_push(w, &bad[0][0], 2), COCHLEA_ERANGE);
    ck_assert_str_eq(cochlea_last_error(), "frame 3 level 0: code 5 out of range (codebook size 5)");
    bad[1][0] = -1;
    ck_assert_int_eq(sec_writer_push(w, &bad[0][0], 2), COCHLEA_ERANGE);
    ck_assert_str_eq(cochlea_last_error(), "frame 3 level 0: code -1 out of range (codebook size 5)");
    ck_assert_uint_eq(sec_writer_frames(w), 2); /* the failed pushes took nothing */
    ck_assert_int_eq(sec_writer_push(w, &codes[2][0], 1), COCHLEA_OK);
    ck_assert_int_eq(sec_writer_finish(w), COCHLEA_ERANGE);
    ck_assert_str_eq(cochlea_last_error(), "only 3 of 4 frames pushed (ceil(1000 samples / hop 320))");
    ck_assert_int_eq(sec_writer_push(w, &codes[3][0], 1), COCHLEA_OK);
    ck_assert_int_eq(sec_writer_finish(w), COCHLEA_OK);
    ck_assert_int_eq(sec_writer_finish(w), COCHLEA_EINVAL);
    ck_assert_int_eq(sec_writer_push(w, &codes[3][0], 1), COCHLEA_EINVAL);
    sec_writer_free(w);
    uint8_t *ref;
    size_t len;
    ck_assert_int_eq(sec_encode(&h, &codes[0][0], 4, &ref, &len), COCHLEA_OK);
    ck_assert_uint_eq(len, mb.size);
    ck_assert_mem_eq(ref, mb.data, len);
    free(ref);
    free(mb.data);
}
END_TEST

/* The packed bit order of sec-format.md §4.1: K = {5, 3} -> 3 + 2 bits per frame, each code LSB
 * first from bit 0 of byte 0 up. Frames (4,2) (1,0) (0,1), by hand: 4 at bits 0-2, 2 at bits
 * 3-4, 1 at bits 5-7 -> byte 0 = 4 | 2<<3 | 1<<5 = 0x34; 0 at bits 8-9, 0 at bits 10-12, 1 at
 * bits 13-14 -> byte 1 = 1<<5 = 0x20; bit 15 is padding. */
START_TEST(test_packed_bit_order)
{
    uint32_t K[2] = {5, 3};
    sec_header h = make_header(0, 960, 320, 3, 2, K);
    int32_t codes[] = {4, 2, 1, 0, 0, 1};
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(sec_encode(&h, codes, 3, &buf, &len), COCHLEA_OK);
    ck_assert_uint_eq(len, 52 + 16 + 2 + 4);
    const uint8_t *chunk = buf + 52;
    ck_assert_uint_eq(chunk[0], 0);   /* index */
    ck_assert_uint_eq(chunk[4], 3);   /* frames */
    ck_assert_uint_eq(chunk[8], 2);   /* payload bytes */
    ck_assert_uint_eq(chunk[16], 0x34);
    ck_assert_uint_eq(chunk[17], 0x20);
    /* header fields at their documented offsets, little-endian */
    ck_assert_mem_eq(buf, "SEC\x1a\x01\x00\x00\x00", 8);
    ck_assert_mem_eq(buf + 8, "\xef\xcd\xab\x89\x67\x45\x23\x01", 8);
    ck_assert_mem_eq(buf + 16, "\x80\x3e\x00\x00\x40\x01\x00\x00", 8);
    ck_assert_mem_eq(buf + 24, "\xc0\x03\x00\x00\x00\x00\x00\x00", 8);
    ck_assert_mem_eq(buf + 32, "\x03\x00\x00\x00\x02\x00\x00\x00\x05\x00\x00\x00\x03\x00\x00\x00", 16);
    uint32_t crc = sec_crc32(0, buf, 48);
    ck_assert_uint_eq(buf[48] | buf[49] << 8 | buf[50] << 16 | (uint32_t)buf[51] << 24, crc);
    free(buf);
}
END_TEST

/* The worked example of docs/sec-format.md §7 (both modes), byte for byte. An independent
 * decoder written from that document alone (Python, zlib's CRC, a plain count list instead of
 * the Fenwick tree) decoded these bytes and 300 random streams identically when the format was
 * fixed; this golden keeps the writer on that format. */
START_TEST(test_doc_example)
{
    uint32_t K[3] = {5, 1, 300};
    int32_t codes[] = {4, 0, 299, 4, 0, 299, 4, 0, 299, 1, 0, 17, 3, 0, 256};
    const char *want[2] = {
        "5345431a01000000efbeadde78563412803e0000400100004006000000000000030000000300000005000000"
        "010000002c010000e9c9eaee000000000300000005000000be3184c25cc9955c090f47a584010000000200"
        "0000030000009322e0b0893080a24a7641",
        "5345431a01000100efbeadde78563412803e0000400100004006000000000000030000000300000005000000"
        "010000002c0100007a522391000000000300000003000000626eefe7fffff0fde46d0d010000000200000003"
        "0000009322e0b0893080a24a7641"};
    for (uint32_t flags = 0; flags <= SEC_FLAG_ENTROPY; flags++) {
        sec_header h = make_header(flags, 1600, 320, 3, 3, K);
        h.fingerprint = 0x12345678deadbeefull;
        uint8_t *buf;
        size_t len;
        ck_assert_int_eq(sec_encode(&h, codes, 5, &buf, &len), COCHLEA_OK);
        ck_assert_uint_eq(len, flags ? 102 : 104);
        char hex[2 * 104 + 1];
        to_hex(buf, len, hex);
        ck_assert_str_eq(hex, want[flags]);
        int32_t *dec;
        uint64_t n;
        ck_assert_int_eq(decode_mem(buf, len, NULL, &dec, &n), COCHLEA_OK);
        ck_assert_uint_eq(n, 5);
        ck_assert_mem_eq(dec, codes, sizeof codes);
        free(dec);
        free(buf);
    }
}
END_TEST

/* Every single-bit flip in every byte of a small stream is detected; the message names the
 * header or the chunk that holds the byte, and the salvaged prefix is exactly the chunks before. */
START_TEST(test_bit_flips)
{
    test_rng r = {11};
    uint32_t K[3] = {468, 1, 13};
    for (uint32_t flags = 0; flags <= SEC_FLAG_ENTROPY; flags++) {
        sec_header h = make_header(flags, 320 * 10 - 100, 320, 4, 3, K); /* 10 frames: 4 + 4 + 2 */
        int32_t *codes = random_codes(&r, &h, 10);
        uint8_t *buf;
        size_t len;
        ck_assert_int_eq(sec_encode(&h, codes, 10, &buf, &len), COCHLEA_OK);
        size_t hb = sec_header_bytes(&h);
        /* chunk starts, from the chunk headers */
        size_t start[4];
        start[0] = hb;
        for (int c = 0; c < 3; c++)
            start[c + 1] = start[c] + 20 + (buf[start[c] + 8] | (size_t)buf[start[c] + 9] << 8);
        ck_assert_uint_eq(start[3], len);
        for (size_t i = 0; i < len; i++)
            for (int bit = 0; bit < 8; bit++) {
                buf[i] ^= (uint8_t)(1u << bit);
                int32_t *dec;
                uint64_t n;
                int rc = decode_mem(buf, len, NULL, &dec, &n);
                const char *m = cochlea_last_error();
                ck_assert_msg(rc != COCHLEA_OK, "flip of bit %d of byte %zu not detected", bit, i);
                if (i < hb) {
                    ck_assert_msg(strncmp(m, "header: ", 8) == 0 || strncmp(m, "truncated in header", 19) == 0,
                                  "byte %zu bit %d: %s", i, bit, m);
                    ck_assert_uint_eq(n, 0);
                    ck_assert_ptr_null(dec);
                } else {
                    int c = i < start[1] ? 0 : i < start[2] ? 1 : 2;
                    char want[64];
                    snprintf(want, sizeof want, "chunk %d (frames %d-%d): ", c, 4 * c, c == 2 ? 9 : 4 * c + 3);
                    ck_assert_msg(strncmp(m, want, strlen(want)) == 0, "byte %zu bit %d: '%s', want '%s...'", i,
                                  bit, m, want);
                    ck_assert_int_eq(rc, COCHLEA_EFORMAT);
                    ck_assert_uint_eq(n, (uint64_t)(4 * c));
                    ck_assert(n == 0 || memcmp(dec, codes, n * 3 * sizeof *dec) == 0);
                }
                free(dec);
                buf[i] ^= (uint8_t)(1u << bit);
            }
        free(buf);
        free(codes);
    }
}
END_TEST

/* Truncation at every byte: the message says truncated (where) and the salvaged prefix is the
 * complete chunks. */
START_TEST(test_truncation)
{
    test_rng r = {12};
    uint32_t K[2] = {1000, 6};
    for (uint32_t flags = 0; flags <= SEC_FLAG_ENTROPY; flags++) {
        sec_header h = make_header(flags, 320 * 7, 320, 3, 2, K); /* chunks of 3, 3, 1 frames */
        int32_t *codes = random_codes(&r, &h, 7);
        uint8_t *buf;
        size_t len;
        ck_assert_int_eq(sec_encode(&h, codes, 7, &buf, &len), COCHLEA_OK);
        size_t hb = sec_header_bytes(&h);
        size_t start[4];
        start[0] = hb;
        for (int c = 0; c < 3; c++)
            start[c + 1] = start[c] + 20 + (buf[start[c] + 8] | (size_t)buf[start[c] + 9] << 8);
        ck_assert_uint_eq(start[3], len);
        for (size_t cut = 0; cut < len; cut++) {
            int32_t *dec;
            uint64_t n;
            int rc = decode_mem(buf, cut, NULL, &dec, &n);
            const char *m = cochlea_last_error();
            ck_assert_int_eq(rc, COCHLEA_EFORMAT);
            char want[96];
            if (cut == 0) {
                ck_assert_str_eq(m, "empty stream (no .sec header)");
            } else if (cut < 40) {
                snprintf(want, sizeof want, "truncated in header (expected at least 48 bytes, got %zu)", cut);
                ck_assert_str_eq(m, want);
            } else if (cut < hb) {
                snprintf(want, sizeof want, "truncated in header (expected %zu bytes, got %zu)", hb, cut);
                ck_assert_str_eq(m, want);
            } else {
                int c = cut < start[1] ? 0 : cut < start[2] ? 1 : 2;
                size_t off = cut - start[c];
                size_t plen = start[c + 1] - start[c] - 20;
                if (off == 0)
                    snprintf(want, sizeof want, "truncated: the stream ends before chunk %d (frames %d-%d; %d of 7",
                             c, 3 * c, c == 2 ? 6 : 3 * c + 2, 3 * c);
                else if (off < 16)
                    snprintf(want, sizeof want, "truncated in chunk %d header (expected 16 bytes, got %zu)", c, off);
                else if (off < 16 + plen)
                    snprintf(want, sizeof want, "truncated in chunk %d payload (expected %zu bytes, got %zu)", c,
                             plen, off - 16);
                else
                    snprintf(want, sizeof want, "truncated in chunk %d CRC (expected 4 bytes, got %zu)", c,
                             off - 16 - plen);
                ck_assert_msg(strncmp(m, want, strlen(want)) == 0, "cut %zu: '%s', want '%s'", cut, m, want);
                ck_assert_uint_eq(n, (uint64_t)(3 * c));
                ck_assert(n == 0 || memcmp(dec, codes, n * 2 * sizeof *dec) == 0);
            }
            free(dec);
        }
        free(buf);
        free(codes);
    }
}
END_TEST

/* Rewrite the header CRC after editing header bytes. */
static void fix_header_crc(uint8_t *buf, size_t hb)
{
    uint32_t c = sec_crc32(0, buf, hb - 4);
    for (int i = 0; i < 4; i++)
        buf[hb - 4 + (size_t)i] = (uint8_t)(c >> (8 * i));
}

/* Rewrite a chunk's two CRCs after editing it (chunk at `at`, payload length plen). */
static void fix_chunk_crcs(uint8_t *buf, size_t at, size_t plen)
{
    uint32_t c = sec_crc32(0, buf + at, 12);
    for (int i = 0; i < 4; i++)
        buf[at + 12 + (size_t)i] = (uint8_t)(c >> (8 * i));
    c = sec_crc32(0, buf + at, 16 + plen);
    for (int i = 0; i < 4; i++)
        buf[at + 16 + plen + (size_t)i] = (uint8_t)(c >> (8 * i));
}

START_TEST(test_bad_headers_and_payloads)
{
    uint32_t K[2] = {5, 3};
    sec_header h = make_header(0, 960, 320, 3, 2, K);
    int32_t codes[] = {4, 2, 1, 0, 0, 1};
    uint8_t *buf, *b2;
    size_t len;
    int32_t *dec;
    uint64_t n;
    ck_assert_int_eq(sec_encode(&h, codes, 3, &buf, &len), COCHLEA_OK);
    b2 = malloc(len + 8);
    ck_assert_ptr_nonnull(b2);

    memcpy(b2, buf, len);
    memcpy(b2, "RIFF", 4);
    ck_assert_int_eq(decode_mem(b2, len, NULL, &dec, &n), COCHLEA_EFORMAT);
    ck_assert_str_eq(cochlea_last_error(),
                     "header: bad magic 52494646 (expected 5345431a, \"SEC\\x1a\"): not a .sec stream");
    ck_assert_int_eq(decode_mem(b2, 2, NULL, &dec, &n), COCHLEA_EFORMAT);
    ck_assert_str_eq(cochlea_last_error(), "header: bad magic 5249 (expected 5345431a, \"SEC\\x1a\"): not a .sec stream");

    memcpy(b2, buf, len);
    b2[4] = 7;
    ck_assert_int_eq(decode_mem(b2, len, NULL, &dec, &n), COCHLEA_EUNSUPPORTED);
    ck_assert_str_eq(cochlea_last_error(), "header: unsupported version 7 (this reader handles version 1)");

    memcpy(b2, buf, len);
    b2[6] = 2; /* unknown flag with a valid CRC */
    fix_header_crc(b2, 52);
    ck_assert_int_eq(decode_mem(b2, len, NULL, &dec, &n), COCHLEA_EUNSUPPORTED);
    ck_assert_str_eq(cochlea_last_error(), "header: unsupported flags 0x0002 (known: 0x0001)");

    memcpy(b2, buf, len);
    b2[32] = 0; /* frames per chunk 0 with a valid CRC */
    fix_header_crc(b2, 52);
    ck_assert_int_eq(decode_mem(b2, len, NULL, &dec, &n), COCHLEA_EFORMAT);
    ck_assert_str_eq(cochlea_last_error(), "header: frames per chunk 0 out of range (1..65536)");

    memcpy(b2, buf, len);
    b2[44] = 0; /* K of level 1 = 0 */
    fix_header_crc(b2, 52);
    ck_assert_int_eq(decode_mem(b2, len, NULL, &dec, &n), COCHLEA_EFORMAT);
    ck_assert_str_eq(cochlea_last_error(), "header: codebook size of level 1 is 0 (must be 1..65536)");

    memcpy(b2, buf, len);
    b2[10] ^= 0x10;
    ck_assert_int_eq(decode_mem(b2, len, NULL, &dec, &n), COCHLEA_EFORMAT);
    char want[160];
    snprintf(want, sizeof want, "header: CRC mismatch (stored 0x%08x, computed 0x%08x)",
             b2[48] | b2[49] << 8 | b2[50] << 16 | (uint32_t)b2[51] << 24, sec_crc32(0, b2, 48));
    ck_assert_str_eq(cochlea_last_error(), want);

    /* a code >= K behind valid CRCs: 7 in level 0 (K = 5) */
    memcpy(b2, buf, len);
    b2[52 + 16] = (uint8_t)((b2[52 + 16] & ~7) | 7);
    fix_chunk_crcs(b2, 52, 2);
    ck_assert_int_eq(decode_mem(b2, len, NULL, &dec, &n), COCHLEA_EFORMAT);
    ck_assert_str_eq(cochlea_last_error(), "chunk 0 (frames 0-2): frame 0 level 0: code 7 >= codebook size 5");
    ck_assert_uint_eq(n, 0);
    /* 3 in level 1 (K = 3) of frame 2 */
    memcpy(b2, buf, len);
    b2[52 + 17] |= 0x60;
    fix_chunk_crcs(b2, 52, 2);
    ck_assert_int_eq(decode_mem(b2, len, NULL, &dec, &n), COCHLEA_EFORMAT);
    ck_assert_str_eq(cochlea_last_error(), "chunk 0 (frames 0-2): frame 2 level 1: code 3 >= codebook size 3");
    /* non-zero padding bit */
    memcpy(b2, buf, len);
    b2[52 + 17] |= 0x80;
    fix_chunk_crcs(b2, 52, 2);
    ck_assert_int_eq(decode_mem(b2, len, NULL, &dec, &n), COCHLEA_EFORMAT);
    ck_assert_str_eq(cochlea_last_error(), "chunk 0 (frames 0-2): non-zero padding bits 0x01 after the last code");
    /* wrong payload size field with valid CRCs */
    memcpy(b2, buf, len);
    b2[52 + 8] = 3;
    b2[len] = 0;
    fix_chunk_crcs(b2, 52, 3);
    ck_assert_int_eq(decode_mem(b2, len + 1, NULL, &dec, &n), COCHLEA_EFORMAT);
    ck_assert_str_eq(cochlea_last_error(), "chunk 0 (frames 0-2): payload size 3 exceeds the packed size 2 bytes");
    /* wrong index and frame count fields */
    memcpy(b2, buf, len);
    b2[52] = 1;
    fix_chunk_crcs(b2, 52, 2);
    ck_assert_int_eq(decode_mem(b2, len, NULL, &dec, &n), COCHLEA_EFORMAT);
    ck_assert_str_eq(cochlea_last_error(), "chunk 0 (frames 0-2): chunk index field is 1");
    memcpy(b2, buf, len);
    b2[56] = 2;
    fix_chunk_crcs(b2, 52, 2);
    ck_assert_int_eq(decode_mem(b2, len, NULL, &dec, &n), COCHLEA_EFORMAT);
    ck_assert_str_eq(cochlea_last_error(), "chunk 0 (frames 0-2): frame count field is 2, expected 3");
    /* trailing data: everything is salvaged */
    memcpy(b2, buf, len);
    b2[len] = 0;
    ck_assert_int_eq(decode_mem(b2, len + 1, NULL, &dec, &n), COCHLEA_EFORMAT);
    ck_assert_str_eq(cochlea_last_error(), "trailing data after the last chunk (1 chunks, 3 frames)");
    ck_assert_uint_eq(n, 3);
    ck_assert_mem_eq(dec, codes, sizeof codes);
    free(dec);
    free(buf);

    /* range coded (40 equal frames: far below packing): extra bytes in the payload, and a
     * zero last byte, behind valid CRCs */
    uint32_t K2[2] = {1000, 1000};
    h = make_header(SEC_FLAG_ENTROPY, 40 * 320, 320, 40, 2, K2);
    int32_t same[80];
    for (int i = 0; i < 80; i++)
        same[i] = 5;
    ck_assert_int_eq(sec_encode(&h, same, 40, &buf, &len), COCHLEA_OK);
    size_t plen = buf[52 + 8];
    ck_assert_uint_ge(plen, 1);
    ck_assert_uint_lt(plen, 40); /* packed: 100 bytes */
    ck_assert_uint_ne(buf[52 + 16 + plen - 1], 0);
    free(b2);
    b2 = malloc(len + 40);
    ck_assert_ptr_nonnull(b2);
    memcpy(b2, buf, 52 + 16 + plen);
    b2[52 + 8] = (uint8_t)(plen + 30);
    memset(b2 + 52 + 16 + plen, 0x55, 30);
    fix_chunk_crcs(b2, 52, plen + 30);
    ck_assert_int_eq(decode_mem(b2, len + 30, NULL, &dec, &n), COCHLEA_EFORMAT);
    ck_assert_msg(strncmp(cochlea_last_error(), "chunk 0 (frames 0-39): arithmetic code stream has ", 50) == 0 &&
                      strstr(cochlea_last_error(), " unused trailing bytes"),
                  "%s", cochlea_last_error());
    memcpy(b2, buf, len);
    b2[52 + 16 + plen - 1] = 0;
    fix_chunk_crcs(b2, 52, plen);
    ck_assert_int_eq(decode_mem(b2, len, NULL, &dec, &n), COCHLEA_EFORMAT);
    ck_assert_msg(strncmp(cochlea_last_error(), "chunk 0 (frames 0-39): arithmetic code stream ", 46) == 0, "%s",
                  cochlea_last_error());
    free(b2);
    free(buf);
}
END_TEST

/* ---- streaming ------------------------------------------------------------------------------ */

typedef struct {
    sec_membuf mb;
    size_t calls;
    size_t fail_after; /* fail the call after this many bytes (0: never) */
} count_sink;

static int count_write(void *u, const void *b, size_t n)
{
    count_sink *s = u;
    s->calls++;
    if (s->fail_after && s->mb.size + n > s->fail_after)
        return -1;
    return sec_membuf_write(&s->mb, b, n);
}

typedef struct {
    const uint8_t *d;
    size_t n, pos, step;
    size_t calls;
} drip_src;

static ptrdiff_t drip_read(void *u, void *buf, size_t n)
{
    drip_src *s = u;
    s->calls++;
    size_t k = s->n - s->pos;
    if (k > n)
        k = n;
    if (k > s->step)
        k = s->step;
    memcpy(buf, s->d + s->pos, k);
    s->pos += k;
    return (ptrdiff_t)k;
}

static ptrdiff_t fail_read(void *u, void *buf, size_t n)
{
    (void)u;
    (void)buf;
    (void)n;
    return -1;
}

START_TEST(test_streaming)
{
    test_rng r = {99};
    uint32_t K[4] = {1024, 300, 2, 17};
    for (uint32_t flags = 0; flags <= SEC_FLAG_ENTROPY; flags++) {
        sec_header h = make_header(flags, 320 * 103 - 7, 320, 10, 4, K); /* 103 frames, 11 chunks */
        int32_t *codes = random_codes(&r, &h, 103);
        uint8_t *ref;
        size_t len;
        ck_assert_int_eq(sec_encode(&h, codes, 103, &ref, &len), COCHLEA_OK);

        /* one frame per push, and random pushes: same bytes; a chunk goes out as soon as full */
        for (int mode = 0; mode < 2; mode++) {
            count_sink s = {{0}, 0, 0};
            sec_writer *w;
            ck_assert_int_eq(sec_writer_open(&w, &h, count_write, &s), COCHLEA_OK);
            ck_assert_uint_eq(s.calls, 1);
            ck_assert_uint_eq(s.mb.size, sec_header_bytes(&h));
            size_t t = 0;
            while (t < 103) {
                size_t k = mode == 0 ? 1 : (size_t)test_rng_int(&r, 0, 25);
                if (k > 103 - t)
                    k = 103 - t;
                ck_assert_int_eq(sec_writer_push(w, codes + t * 4, k), COCHLEA_OK);
                t += k;
                ck_assert_uint_eq(s.calls, 1 + t / 10); /* header, then one write per full chunk */
            }
            ck_assert_int_eq(sec_writer_finish(w), COCHLEA_OK);
            ck_assert_uint_eq(s.calls, 1 + 11);
            ck_assert_uint_eq(sec_writer_bytes(w), len);
            ck_assert_uint_eq(s.mb.size, len);
            ck_assert_mem_eq(s.mb.data, ref, len);
            sec_writer_free(w);
            free(s.mb.data);
        }

        /* 1-byte reads: same chunks as whole-buffer reads */
        for (size_t step = 1; step <= 7; step += 6) {
            drip_src src = {ref, len, 0, step, 0};
            sec_reader *rd;
            ck_assert_int_eq(sec_reader_open(&rd, drip_read, &src), COCHLEA_OK);
            ck_assert_uint_eq(sec_reader_header(rd)->codebook_size[1], 300);
            uint64_t frames = 0;
            int chunks = 0;
            for (;;) {
                const int32_t *c;
                size_t n;
                uint64_t first;
                ck_assert_int_eq(sec_reader_next(rd, &c, &n, &first), COCHLEA_OK);
                if (n == 0)
                    break;
                ck_assert_uint_eq(first, frames);
                ck_assert_uint_eq(n, chunks < 10 ? 10 : 3);
                ck_assert_mem_eq(c, codes + frames * 4, n * 4 * sizeof *c);
                frames += n;
                chunks++;
            }
            ck_assert_uint_eq(frames, 103);
            ck_assert_uint_eq(sec_reader_frames(rd), 103);
            ck_assert_int_eq(sec_reader_bad_chunk(rd), -1);
            /* end is sticky */
            const int32_t *c;
            size_t n = 5;
            ck_assert_int_eq(sec_reader_next(rd, &c, &n, NULL), COCHLEA_OK);
            ck_assert_uint_eq(n, 0);
            sec_reader_free(rd);
            ck_assert_uint_eq(src.pos, len);
            if (step == 1)
                ck_assert_uint_ge(src.calls, len);
        }

        /* write failure: EIO, then the writer stays failed */
        count_sink s = {{0}, 0, sec_header_bytes(&h) + 30};
        sec_writer *w;
        ck_assert_int_eq(sec_writer_open(&w, &h, count_write, &s), COCHLEA_OK);
        ck_assert_int_eq(sec_writer_push(w, codes, 25), COCHLEA_EIO);
        ck_assert_int_eq(sec_writer_push(w, codes, 1), COCHLEA_EIO);
        ck_assert_int_eq(sec_writer_finish(w), COCHLEA_EIO);
        sec_writer_free(w);
        free(s.mb.data);
        free(ref);
        free(codes);
    }
    sec_reader *rd = NULL;
    ck_assert_int_eq(sec_reader_open(&rd, fail_read, NULL), COCHLEA_EIO);
    ck_assert_ptr_null(rd);
}
END_TEST

/* Salvage: with chunk 2 of 5 corrupt, the reader returns chunks 0 and 1, then the same error on
 * every later call; sec_decode keeps exactly those frames. */
START_TEST(test_salvage)
{
    test_rng r = {5};
    uint32_t K[2] = {500, 40};
    for (uint32_t flags = 0; flags <= SEC_FLAG_ENTROPY; flags++) {
        sec_header h = make_header(flags, 320 * 23, 320, 5, 2, K); /* 5 chunks: 5 5 5 5 3 */
        int32_t *codes = random_codes(&r, &h, 23);
        uint8_t *buf;
        size_t len;
        ck_assert_int_eq(sec_encode(&h, codes, 23, &buf, &len), COCHLEA_OK);
        size_t at = sec_header_bytes(&h);
        for (int c = 0; c < 2; c++)
            at += 20 + (buf[at + 8] | (size_t)buf[at + 9] << 8);
        size_t plen = buf[at + 8] | (size_t)buf[at + 9] << 8;
        buf[at + 16 + plen / 2] ^= 0x21;
        char want[160];
        snprintf(want, sizeof want, "chunk 2 (frames 10-14): CRC mismatch (stored 0x%08x, computed 0x%08x)",
                 buf[at + 16 + plen] | buf[at + 17 + plen] << 8 | buf[at + 18 + plen] << 16 |
                     (uint32_t)buf[at + 19 + plen] << 24,
                 sec_crc32(0, buf + at, 16 + plen));

        sec_memsrc src = {buf, len, 0};
        sec_reader *rd;
        ck_assert_int_eq(sec_reader_open(&rd, sec_memsrc_read, &src), COCHLEA_OK);
        const int32_t *c;
        size_t n;
        for (int i = 0; i < 2; i++) {
            ck_assert_int_eq(sec_reader_next(rd, &c, &n, NULL), COCHLEA_OK);
            ck_assert_uint_eq(n, 5);
            ck_assert_mem_eq(c, codes + i * 10, 10 * sizeof *c);
        }
        for (int i = 0; i < 2; i++) {
            ck_assert_int_eq(sec_reader_next(rd, &c, &n, NULL), COCHLEA_EFORMAT);
            ck_assert_str_eq(cochlea_last_error(), want);
            ck_assert_uint_eq(n, 0);
            ck_assert_ptr_null(c);
        }
        ck_assert_uint_eq(sec_reader_frames(rd), 10);
        ck_assert_int_eq(sec_reader_bad_chunk(rd), 2);
        sec_reader_free(rd);

        int32_t *dec;
        uint64_t nf;
        ck_assert_int_eq(decode_mem(buf, len, NULL, &dec, &nf), COCHLEA_EFORMAT);
        ck_assert_str_eq(cochlea_last_error(), want);
        ck_assert_uint_eq(nf, 10);
        ck_assert_mem_eq(dec, codes, 20 * sizeof *dec);
        free(dec);
        free(buf);
        free(codes);
    }
}
END_TEST

/* ---- range coder ------------------------------------------------------------------------- */

/* Direct coder checks: model counts after updates and halving, and a stream of symbols with
 * alternating models decodes back, including the 65536-symbol alphabet. */
START_TEST(test_arith_coder)
{
    arith_model m;
    ck_assert_int_eq(arith_model_init(&m, 0), COCHLEA_EINVAL);
    ck_assert_int_eq(arith_model_init(&m, 65537), COCHLEA_EINVAL);
    ck_assert_int_eq(arith_model_init(&m, 5), COCHLEA_OK);
    ck_assert_uint_eq(m.total, 5);
    arith_encoder e = {0};
    arith_enc_reset(&e);
    ck_assert_int_eq(arith_enc_symbol(&e, &m, 5), COCHLEA_ERANGE);
    ck_assert_int_eq(arith_enc_symbol(&e, &m, 3), COCHLEA_OK);
    ck_assert_uint_eq(m.freq[3], 1 + ARITH_INC);
    ck_assert_uint_eq(m.total, 5 + ARITH_INC);
    /* drive the total past ARITH_TOTAL_MAX: counts halve rounding up */
    uint32_t steps = (ARITH_TOTAL_MAX - m.total) / ARITH_INC + 1;
    int bad = 0;
    for (uint32_t i = 0; i < steps; i++)
        bad |= arith_enc_symbol(&e, &m, 3) != COCHLEA_OK;
    ck_assert_int_eq(bad, 0);
    uint32_t f3 = 1 + ARITH_INC * (steps + 1);
    ck_assert_uint_eq(m.freq[3], (f3 + 1) / 2);
    ck_assert_uint_eq(m.freq[0], 1);
    ck_assert_uint_eq(m.total, 4 + (f3 + 1) / 2);
    arith_model_free(&m);
    arith_enc_free(&e);

    test_rng r = {1234};
    arith_model ms[3];
    uint32_t sizes[3] = {65536, 2, 700};
    size_t N = 30000;
    uint32_t *sym = malloc(N * sizeof *sym);
    ck_assert_ptr_nonnull(sym);
    for (size_t i = 0; i < N; i++) {
        uint32_t k = sizes[i % 3];
        /* skewed: small values much more likely */
        uint64_t v = test_rng_next(&r);
        sym[i] = (uint32_t)((v % k) * (v % k) / k);
    }
    for (int j = 0; j < 3; j++)
        ck_assert_int_eq(arith_model_init(&ms[j], sizes[j]), COCHLEA_OK);
    arith_enc_reset(&e);
    for (size_t i = 0; i < N; i++)
        bad |= arith_enc_symbol(&e, &ms[i % 3], sym[i]) != COCHLEA_OK;
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(arith_enc_finish(&e), COCHLEA_OK);
    for (int j = 0; j < 3; j++)
        arith_model_reset(&ms[j]);
    arith_decoder d;
    arith_dec_init(&d, e.buf, e.len);
    for (size_t i = 0; i < N; i++) {
        uint32_t s = UINT32_MAX;
        int rc = arith_dec_symbol(&d, &ms[i % 3], &s);
        if (rc != COCHLEA_OK || s != sym[i])
            ck_abort_msg("symbol %zu: rc %d, got %u, coded %u", i, rc, s, sym[i]);
    }
    ck_assert_int_eq(arith_dec_finish(&d), COCHLEA_OK);
    for (int j = 0; j < 3; j++)
        arith_model_free(&ms[j]);
    /* the empty stream: zero symbols -> zero bytes */
    arith_enc_reset(&e);
    ck_assert_int_eq(arith_enc_finish(&e), COCHLEA_OK);
    ck_assert_uint_eq(e.len, 0);
    /* a code value outside the range is rejected, never decoded */
    uint8_t ff[4] = {0xff, 0xff, 0xff, 0xff};
    ck_assert_int_eq(arith_model_init(&m, 9), COCHLEA_OK);
    arith_dec_init(&d, ff, 4);
    uint32_t s;
    ck_assert_int_eq(arith_dec_symbol(&d, &m, &s), COCHLEA_EFORMAT);
    arith_model_free(&m);
    arith_enc_free(&e);
    free(sym);
}
END_TEST

/* Zipf(s) tokens over K: the range-coded size against packing (printed), and uniform tokens
 * cost at most a few percent over log2 K. */
START_TEST(test_entropy_saving)
{
    const uint32_t L = 8, K = 1024;
    const uint64_t T = 3000; /* 60 s at 50 Hz */
    double *cdf = malloc(K * sizeof *cdf);
    ck_assert_ptr_nonnull(cdf);
    int32_t *codes = malloc(T * L * sizeof *codes);
    ck_assert_ptr_nonnull(codes);
    const double exps[] = {0.0, 0.8, 1.0, 1.2};
    const uint32_t fpcs[] = {50, 250, 1500};
    uint32_t Ks[8];
    for (uint32_t l = 0; l < L; l++)
        Ks[l] = K;
    for (size_t e = 0; e < 4; e++) {
        double z = 0, ent = 0;
        for (uint32_t k = 0; k < K; k++)
            z += pow(k + 1.0, -exps[e]);
        double acc = 0;
        for (uint32_t k = 0; k < K; k++) {
            double p = pow(k + 1.0, -exps[e]) / z;
            ent -= p * log2(p);
            acc += p;
            cdf[k] = acc;
        }
        test_rng r = {42 + e};
        for (uint64_t i = 0; i < T * L; i++) {
            double u = test_rng_uniform(&r, 0.0f, 1.0f);
            uint32_t lo = 0, hi = K - 1;
            while (lo < hi) {
                uint32_t mid = (lo + hi) / 2;
                if (cdf[mid] < u)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            /* a level-dependent permutation so levels differ */
            codes[i] = (int32_t)((lo * 37u + (uint32_t)(i % L) * 101u) % K);
        }
        for (size_t f = 0; f < 3; f++) {
            sec_header hp = make_header(0, T * 320, 320, fpcs[f], L, Ks);
            sec_header he = hp;
            he.flags = SEC_FLAG_ENTROPY;
            size_t lp = roundtrip(&hp, codes), le = roundtrip(&he, codes);
            double bps_p = sec_bitrate_file(&hp, lp), bps_e = sec_bitrate_file(&he, le);
            printf("entropy coding: zipf s=%.1f (H=%.2f bit/token) chunk %4u frames: packed %zu B (%.0f bit/s), "
                   "range coded %zu B (%.0f bit/s), %+.1f%%; entropy bound %.0f bit/s\n",
                   exps[e], ent, fpcs[f], lp, bps_p, le, bps_e, 100.0 * ((double)le / (double)lp - 1.0),
                   ent * 50.0 * L);
            if (e == 0) {
                /* uniform: range coding never wins, every chunk falls back to packing */
                ck_assert_msg(le == lp, "uniform tokens: %zu vs packed %zu", le, lp);
            } else if (exps[e] >= 1.0) {
                /* skewed: well below packing, within 10% of the entropy for long chunks */
                ck_assert_msg(le < lp * (fpcs[f] < 250 ? 0.95 : 0.88), "zipf %.1f: %zu vs packed %zu", exps[e], le,
                              lp);
                if (fpcs[f] == 1500)
                    ck_assert_msg(bps_e < ent * 50.0 * L * 1.10 + 50, "zipf %.1f: %.0f bit/s, entropy %.0f",
                                  exps[e], bps_e, ent * 50.0 * L);
            }
        }
    }
    free(cdf);
    free(codes);
}
END_TEST

static Suite *bitstream_suite(void)
{
    Suite *s = suite_create("codec_bitstream");
    TCase *tc = tcase_create("bitstream");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_crc_and_rates);
    tcase_add_test(tc, test_header_validation);
    tcase_add_test(tc, test_roundtrip_every_k);
    tcase_add_test(tc, test_roundtrip_levels_and_chunks);
    tcase_add_test(tc, test_k1_and_empty);
    tcase_add_test(tc, test_frame_count_and_code_range);
    tcase_add_test(tc, test_packed_bit_order);
    tcase_add_test(tc, test_doc_example);
    tcase_add_test(tc, test_bit_flips);
    tcase_add_test(tc, test_truncation);
    tcase_add_test(tc, test_bad_headers_and_payloads);
    tcase_add_test(tc, test_streaming);
    tcase_add_test(tc, test_salvage);
    tcase_add_test(tc, test_arith_coder);
    tcase_add_test(tc, test_entropy_saving);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(bitstream_suite());
}
