/* bitstream.c - the .sec file: header, chunks, bit packing, CRC-32 (docs/sec-format.md). */
#include "codec/bitstream.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/arith.h"
#include "crc32.h"
#include "error.h"

#define SEC_HEADER_FIXED 40u  /* header bytes before the K_l array */

/* ---- CRC-32 ------------------------------------------------------------------------------ */

uint32_t sec_crc32(uint32_t crc, const void *buf, size_t n)
{
    return crc32_ieee(crc, buf, n);
}

/* ---- little-endian fields ------------------------------------------------------------------ */

static void put_u16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

/* ---- header helpers ------------------------------------------------------------------------ */

unsigned sec_code_bits(uint32_t k)
{
    unsigned b = 0;
    while (b < 32 && ((uint64_t)1 << b) < k)
        b++;
    return b;
}

uint64_t sec_header_n_frames(const sec_header *h)
{
    if (h->hop == 0)
        return 0;
    return h->n_samples / h->hop + (h->n_samples % h->hop != 0);
}

uint64_t sec_header_n_chunks(const sec_header *h)
{
    if (h->frames_per_chunk == 0)
        return 0;
    uint64_t t = sec_header_n_frames(h);
    return t / h->frames_per_chunk + (t % h->frames_per_chunk != 0);
}

size_t sec_header_bytes(const sec_header *h)
{
    uint32_t l = h->n_levels <= SEC_MAX_LEVELS ? h->n_levels : SEC_MAX_LEVELS;
    return SEC_HEADER_FIXED + 4u * l + 4u;
}

uint32_t sec_bits_per_frame(const sec_header *h)
{
    uint32_t s = 0;
    for (uint32_t l = 0; l < h->n_levels && l < SEC_MAX_LEVELS; l++)
        s += sec_code_bits(h->codebook_size[l]);
    return s;
}

double sec_frame_rate(const sec_header *h)
{
    return h->hop ? (double)h->sample_rate / (double)h->hop : 0.0;
}

double sec_bitrate_packed(const sec_header *h)
{
    return sec_frame_rate(h) * (double)sec_bits_per_frame(h);
}

double sec_bitrate_log2(const sec_header *h)
{
    double s = 0;
    for (uint32_t l = 0; l < h->n_levels && l < SEC_MAX_LEVELS; l++)
        s += h->codebook_size[l] > 0 ? log2((double)h->codebook_size[l]) : 0.0;
    return sec_frame_rate(h) * s;
}

double sec_bitrate_file(const sec_header *h, uint64_t n_bytes)
{
    if (h->sample_rate == 0 || h->n_samples == 0)
        return 0.0;
    return (double)n_bytes * 8.0 * (double)h->sample_rate / (double)h->n_samples;
}

int sec_check_fingerprint(const sec_header *h, uint64_t model_fingerprint)
{
    if (h->fingerprint == model_fingerprint)
        return COCHLEA_OK;
    return err_set(COCHLEA_EINVAL,
                   "model fingerprint mismatch: the stream was encoded with model 0x%016llx, the loaded "
                   "model is 0x%016llx",
                   (unsigned long long)h->fingerprint, (unsigned long long)model_fingerprint);
}

/* Field checks shared by the writer (code EINVAL) and the reader (code EFORMAT); unknown flag
 * bits are always EUNSUPPORTED. */
static int header_check(const sec_header *h, int code)
{
    if (h->flags & ~(uint32_t)SEC_FLAG_ENTROPY)
        return err_set(COCHLEA_EUNSUPPORTED, "header: unsupported flags 0x%04x (known: 0x%04x)", h->flags,
                       SEC_FLAG_ENTROPY);
    if (h->n_levels < 1 || h->n_levels > SEC_MAX_LEVELS)
        return err_set(code, "header: level count %u out of range (1..%u)", h->n_levels, SEC_MAX_LEVELS);
    for (uint32_t l = 0; l < h->n_levels; l++)
        if (h->codebook_size[l] < 1 || h->codebook_size[l] > SEC_MAX_CODEBOOK)
            return err_set(code, "header: codebook size of level %u is %u (must be 1..%u)", l,
                           h->codebook_size[l], SEC_MAX_CODEBOOK);
    if (h->sample_rate == 0)
        return err_set(code, "header: sample rate is 0");
    if (h->hop == 0)
        return err_set(code, "header: hop (samples per frame) is 0");
    if (h->frames_per_chunk < 1 || h->frames_per_chunk > SEC_MAX_FRAMES_PER_CHUNK)
        return err_set(code, "header: frames per chunk %u out of range (1..%u)", h->frames_per_chunk,
                       SEC_MAX_FRAMES_PER_CHUNK);
    if (sec_header_n_chunks(h) > UINT32_MAX)
        return err_set(code, "header: %llu samples at hop %u in chunks of %u frames need more than 2^32 chunks",
                       (unsigned long long)h->n_samples, h->hop, h->frames_per_chunk);
    return COCHLEA_OK;
}

int sec_header_validate(const sec_header *h)
{
    if (!h)
        return err_set(COCHLEA_EINVAL, "header: NULL");
    return header_check(h, COCHLEA_EINVAL);
}

/* Encoded header (sec-format.md §2); buf holds sec_header_bytes(h) bytes. */
static size_t header_encode(const sec_header *h, uint8_t *buf)
{
    memcpy(buf, SEC_MAGIC, 4);
    put_u16(buf + 4, SEC_VERSION);
    put_u16(buf + 6, h->flags);
    put_u64(buf + 8, h->fingerprint);
    put_u32(buf + 16, h->sample_rate);
    put_u32(buf + 20, h->hop);
    put_u64(buf + 24, h->n_samples);
    put_u32(buf + 32, h->frames_per_chunk);
    put_u32(buf + 36, h->n_levels);
    for (uint32_t l = 0; l < h->n_levels; l++)
        put_u32(buf + SEC_HEADER_FIXED + 4 * l, h->codebook_size[l]);
    size_t n = SEC_HEADER_FIXED + 4u * h->n_levels;
    put_u32(buf + n, sec_crc32(0, buf, n));
    return n + 4;
}

/* Packed payload size of a chunk of n frames: ceil(n * bits_per_frame / 8) (sec-format.md §4.1).
 * In a range-coded stream a chunk's payload is range coded when that is strictly shorter, else
 * packed (§4.2), so payload_bytes == packed size means packed and nothing may be longer. */
static uint64_t packed_bytes(const sec_header *h, uint64_t n_frames)
{
    return (n_frames * sec_bits_per_frame(h) + 7) / 8;
}

/* ---- memory callbacks ---------------------------------------------------------------------- */

int sec_membuf_write(void *membuf, const void *buf, size_t n)
{
    sec_membuf *m = membuf;
    size_t need;
    if (size_add(m->size, n, &need))
        return -1;
    if (need > m->cap) {
        size_t cap = m->cap ? m->cap : 256;
        while (cap < need) {
            if (size_mul(cap, 2, &cap))
                return -1;
        }
        uint8_t *p = realloc(m->data, cap);
        if (!p)
            return -1;
        m->data = p;
        m->cap = cap;
    }
    if (n)
        memcpy(m->data + m->size, buf, n);
    m->size = need;
    return 0;
}

ptrdiff_t sec_memsrc_read(void *memsrc, void *buf, size_t n)
{
    sec_memsrc *s = memsrc;
    size_t left = s->pos < s->size ? s->size - s->pos : 0;
    if (n > left)
        n = left;
    if (n > PTRDIFF_MAX)
        n = PTRDIFF_MAX;
    if (n)
        memcpy(buf, s->data + s->pos, n);
    s->pos += n;
    return (ptrdiff_t)n;
}

/* ---- chunk payloads ------------------------------------------------------------------------ */

/* Payload coder state shared by writer and reader: one adaptive model per level with K > 1. */
typedef struct chunk_coder {
    arith_model model[SEC_MAX_LEVELS];
    int have_models;
} chunk_coder;

static int coder_init(chunk_coder *c, const sec_header *h)
{
    memset(c, 0, sizeof *c);
    if (!(h->flags & SEC_FLAG_ENTROPY))
        return COCHLEA_OK;
    c->have_models = 1;
    for (uint32_t l = 0; l < h->n_levels; l++) {
        if (h->codebook_size[l] < 2)
            continue;
        int rc = arith_model_init(&c->model[l], h->codebook_size[l]);
        if (rc != COCHLEA_OK)
            return rc;
    }
    return COCHLEA_OK;
}

static void coder_free(chunk_coder *c)
{
    for (uint32_t l = 0; l < SEC_MAX_LEVELS; l++)
        if (c->model[l].freq)
            arith_model_free(&c->model[l]);
}

/* sec-format.md §4.1: codes time-major, each code's ceil(log2 K_l) bits LSB first into a bit
 * stream that fills each byte from its least significant bit; zero padding to a byte. */
static void pack_codes(const sec_header *h, const int32_t *codes, size_t n_frames, uint8_t *out)
{
    unsigned bits[SEC_MAX_LEVELS];
    for (uint32_t l = 0; l < h->n_levels; l++)
        bits[l] = sec_code_bits(h->codebook_size[l]);
    uint64_t acc = 0;
    unsigned nacc = 0;
    size_t pos = 0;
    for (size_t t = 0; t < n_frames; t++) {
        for (uint32_t l = 0; l < h->n_levels; l++) {
            acc |= (uint64_t)(uint32_t)codes[t * h->n_levels + l] << nacc;
            nacc += bits[l];
            while (nacc >= 8) {
                out[pos++] = (uint8_t)acc;
                acc >>= 8;
                nacc -= 8;
            }
        }
    }
    if (nacc > 0)
        out[pos] = (uint8_t)acc;
}

/* ---- writer -------------------------------------------------------------------------------- */

struct sec_writer {
    sec_header h;
    sec_write_fn write;
    void *user;
    uint64_t total_frames, pushed, bytes;
    uint32_t chunk_index;
    int32_t *pend;            /* [frames_per_chunk, L] buffered frames */
    size_t n_pend, pend_cap;  /* frames buffered, capacity in frames */
    uint8_t *out;             /* chunk bytes: header, payload, CRC */
    size_t out_cap;
    chunk_coder coder;
    arith_encoder enc;
    int failed, finished;
};

static int writer_emit(sec_writer *w, const uint8_t *buf, size_t n)
{
    if (w->write(w->user, buf, n) != 0) {
        w->failed = COCHLEA_EIO;
        return err_set(COCHLEA_EIO, "write error after %llu bytes", (unsigned long long)w->bytes);
    }
    w->bytes += n;
    return COCHLEA_OK;
}

static int writer_out_reserve(sec_writer *w, size_t n)
{
    if (n <= w->out_cap)
        return COCHLEA_OK;
    uint8_t *p = realloc(w->out, n);
    if (!p) {
        w->failed = COCHLEA_ENOMEM;
        return err_set(COCHLEA_ENOMEM, "out of memory for a %zu-byte chunk", n);
    }
    w->out = p;
    w->out_cap = n;
    return COCHLEA_OK;
}

/* One chunk (sec-format.md §3): 16-byte header with its CRC, payload, CRC of both. */
static int writer_chunk(sec_writer *w, const int32_t *codes, size_t n)
{
    const sec_header *h = &w->h;
    size_t packed = (size_t)packed_bytes(h, n), payload = packed;
    int rc;
    if ((rc = writer_out_reserve(w, packed + SEC_CHUNK_HEADER_BYTES + 4)) != COCHLEA_OK)
        return rc;
    if (h->flags & SEC_FLAG_ENTROPY) {
        arith_enc_reset(&w->enc);
        for (uint32_t l = 0; l < h->n_levels; l++)
            if (h->codebook_size[l] > 1)
                arith_model_reset(&w->coder.model[l]);
        for (size_t t = 0; t < n; t++)
            for (uint32_t l = 0; l < h->n_levels; l++) {
                if (h->codebook_size[l] < 2)
                    continue;
                rc = arith_enc_symbol(&w->enc, &w->coder.model[l], (uint32_t)codes[t * h->n_levels + l]);
                if (rc != COCHLEA_OK)
                    return w->failed = rc;
            }
        if ((rc = arith_enc_finish(&w->enc)) != COCHLEA_OK)
            return w->failed = rc;
        if (w->enc.len < packed) {
            payload = w->enc.len;
            if (payload)
                memcpy(w->out + SEC_CHUNK_HEADER_BYTES, w->enc.buf, payload);
        }
    }
    if (payload == packed) {
        memset(w->out + SEC_CHUNK_HEADER_BYTES, 0, packed);
        pack_codes(h, codes, n, w->out + SEC_CHUNK_HEADER_BYTES);
    }
    uint8_t *o = w->out;
    put_u32(o, w->chunk_index);
    put_u32(o + 4, (uint32_t)n);
    put_u32(o + 8, (uint32_t)payload);
    put_u32(o + 12, sec_crc32(0, o, 12));
    size_t body = SEC_CHUNK_HEADER_BYTES + payload;
    put_u32(o + body, sec_crc32(0, o, body));
    if ((rc = writer_emit(w, o, body + 4)) != COCHLEA_OK)
        return rc;
    w->chunk_index++;
    return COCHLEA_OK;
}

int sec_writer_open(sec_writer **out, const sec_header *h, sec_write_fn write, void *user)
{
    if (!out || !h || !write)
        return err_set(COCHLEA_EINVAL, "sec_writer_open: NULL argument");
    *out = NULL;
    int rc = header_check(h, COCHLEA_EINVAL);
    if (rc != COCHLEA_OK)
        return rc;
    sec_writer *w = calloc(1, sizeof *w);
    if (!w)
        return err_set(COCHLEA_ENOMEM, "out of memory for a .sec writer");
    w->h = *h;
    w->h.version = SEC_VERSION;
    w->write = write;
    w->user = user;
    w->total_frames = sec_header_n_frames(h);
    uint64_t cap = w->total_frames < h->frames_per_chunk ? w->total_frames : h->frames_per_chunk;
    w->pend_cap = (size_t)cap;
    if (cap > 0) {
        /* cannot overflow: <= 65536 frames x 32 levels x 4 bytes = 8 MiB (header_check) */
        w->pend = malloc((size_t)cap * h->n_levels * sizeof *w->pend);
        if (!w->pend) {
            sec_writer_free(w);
            return err_set(COCHLEA_ENOMEM, "out of memory for %llu buffered frames", (unsigned long long)cap);
        }
    }
    if ((rc = coder_init(&w->coder, h)) != COCHLEA_OK) {
        sec_writer_free(w);
        return rc;
    }
    uint8_t hb[SEC_HEADER_FIXED + 4 * SEC_MAX_LEVELS + 4];
    size_t n = header_encode(&w->h, hb);
    if ((rc = writer_emit(w, hb, n)) != COCHLEA_OK) {
        sec_writer_free(w);
        return rc;
    }
    *out = w;
    return COCHLEA_OK;
}

int sec_writer_push(sec_writer *w, const int32_t *codes, size_t n_frames)
{
    if (!w)
        return err_set(COCHLEA_EINVAL, "sec_writer_push: NULL writer");
    if (w->failed)
        return err_set(w->failed, "sec_writer_push: the writer failed earlier");
    if (w->finished)
        return err_set(COCHLEA_EINVAL, "sec_writer_push: the writer is already finished");
    if (n_frames == 0)
        return COCHLEA_OK;
    if (!codes)
        return err_set(COCHLEA_EINVAL, "sec_writer_push: NULL codes");
    const uint32_t L = w->h.n_levels;
    if (n_frames > w->total_frames - w->pushed)
        return err_set(COCHLEA_ERANGE,
                       "push of %zu frames after %llu: the stream holds %llu frames (ceil(%llu samples / hop %u))",
                       n_frames, (unsigned long long)w->pushed, (unsigned long long)w->total_frames,
                       (unsigned long long)w->h.n_samples, w->h.hop);
    for (size_t t = 0; t < n_frames; t++)
        for (uint32_t l = 0; l < L; l++) {
            int32_t c = codes[t * L + l];
            if (c < 0 || (uint32_t)c >= w->h.codebook_size[l])
                return err_set(COCHLEA_ERANGE, "frame %llu level %u: code %d out of range (codebook size %u)",
                               (unsigned long long)(w->pushed + t), l, c, w->h.codebook_size[l]);
        }
    size_t t = 0;
    while (t < n_frames) {
        size_t room = w->h.frames_per_chunk - w->n_pend;
        size_t take = n_frames - t < room ? n_frames - t : room;
        int rc;
        if (w->n_pend == 0 && take == w->h.frames_per_chunk) {
            /* a whole chunk straight from the caller's array */
            if ((rc = writer_chunk(w, codes + t * L, take)) != COCHLEA_OK)
                return rc;
        } else {
            memcpy(w->pend + w->n_pend * L, codes + t * L, take * L * sizeof *codes);
            w->n_pend += take;
            if (w->n_pend == w->h.frames_per_chunk) {
                if ((rc = writer_chunk(w, w->pend, w->n_pend)) != COCHLEA_OK)
                    return rc;
                w->n_pend = 0;
            }
        }
        t += take;
        w->pushed += take;
    }
    return COCHLEA_OK;
}

int sec_writer_finish(sec_writer *w)
{
    if (!w)
        return err_set(COCHLEA_EINVAL, "sec_writer_finish: NULL writer");
    if (w->failed)
        return err_set(w->failed, "sec_writer_finish: the writer failed earlier");
    if (w->finished)
        return err_set(COCHLEA_EINVAL, "sec_writer_finish: called twice");
    if (w->pushed != w->total_frames)
        return err_set(COCHLEA_ERANGE,
                       "only %llu of %llu frames pushed (ceil(%llu samples / hop %u))",
                       (unsigned long long)w->pushed, (unsigned long long)w->total_frames,
                       (unsigned long long)w->h.n_samples, w->h.hop);
    if (w->n_pend > 0) {
        int rc = writer_chunk(w, w->pend, w->n_pend);
        if (rc != COCHLEA_OK)
            return rc;
        w->n_pend = 0;
    }
    w->finished = 1;
    return COCHLEA_OK;
}

uint64_t sec_writer_frames(const sec_writer *w)
{
    return w ? w->pushed : 0;
}

uint64_t sec_writer_bytes(const sec_writer *w)
{
    return w ? w->bytes : 0;
}

void sec_writer_free(sec_writer *w)
{
    if (!w)
        return;
    coder_free(&w->coder);
    arith_enc_free(&w->enc);
    free(w->pend);
    free(w->out);
    free(w);
}

int sec_encode(const sec_header *h, const int32_t *codes, uint64_t n_frames, uint8_t **out, size_t *out_len)
{
    if (!out || !out_len)
        return err_set(COCHLEA_EINVAL, "sec_encode: NULL output");
    *out = NULL;
    *out_len = 0;
    if (n_frames > SIZE_MAX)
        return err_set(COCHLEA_ERANGE, "sec_encode: %llu frames", (unsigned long long)n_frames);
    sec_membuf mb = {0};
    sec_writer *w;
    int rc = sec_writer_open(&w, h, sec_membuf_write, &mb);
    if (rc == COCHLEA_OK) {
        rc = sec_writer_push(w, codes, (size_t)n_frames);
        if (rc == COCHLEA_OK)
            rc = sec_writer_finish(w);
        sec_writer_free(w);
    }
    if (rc != COCHLEA_OK) {
        free(mb.data);
        return rc;
    }
    *out = mb.data;
    *out_len = mb.size;
    return COCHLEA_OK;
}

/* ---- reader -------------------------------------------------------------------------------- */

#define READER_MSG_MAX 512

struct sec_reader {
    sec_header h;
    sec_read_fn read;
    void *user;
    uint64_t total_frames, n_chunks, frames_done, bytes;
    uint32_t chunk_index;
    int32_t *codes;           /* [min(frames_per_chunk, total), L] */
    size_t codes_cap;         /* frames */
    uint8_t *payload;
    size_t payload_cap;
    chunk_coder coder;
    int failed;               /* sticky error code */
    int64_t bad_chunk;
    int done;
    char msg[READER_MSG_MAX];
};

/* Read up to n bytes, retrying short reads; *got receives the count (< n only at the end). */
static int reader_fill(sec_reader *r, void *buf, size_t n, size_t *got, const char *where)
{
    size_t have = 0;
    while (have < n) {
        ptrdiff_t k = r->read(r->user, (uint8_t *)buf + have, n - have);
        if (k < 0)
            return err_set(COCHLEA_EIO, "read error in %s after %llu bytes", where,
                           (unsigned long long)(r->bytes + have));
        if (k == 0)
            break;
        if ((size_t)k > n - have)
            return err_set(COCHLEA_EIO, "read callback returned %td bytes for a %zu-byte request in %s", k,
                           n - have, where);
        have += (size_t)k;
    }
    r->bytes += have;
    *got = have;
    return COCHLEA_OK;
}

/* Parse and check the header (sec-format.md §2): magic, version, level count, CRC, fields. */
static int reader_header(sec_reader *r)
{
    uint8_t b[SEC_HEADER_FIXED + 4 * SEC_MAX_LEVELS + 4];
    size_t got;
    int rc = reader_fill(r, b, SEC_HEADER_FIXED, &got, "header");
    if (rc != COCHLEA_OK)
        return rc;
    if (got == 0)
        return err_set(COCHLEA_EFORMAT, "empty stream (no .sec header)");
    if (memcmp(b, SEC_MAGIC, got < 4 ? got : 4) != 0) {
        char m[17] = "";
        for (size_t i = 0; i < 4 && i < got; i++)
            snprintf(m + 2 * i, 3, "%02x", b[i]);
        return err_set(COCHLEA_EFORMAT, "header: bad magic %s (expected 5345431a, \"SEC\\x1a\"): not a .sec stream",
                       m);
    }
    if (got >= 6 && get_u16(b + 4) != SEC_VERSION)
        return err_set(COCHLEA_EUNSUPPORTED, "header: unsupported version %u (this reader handles version %u)",
                       get_u16(b + 4), SEC_VERSION);
    if (got < SEC_HEADER_FIXED)
        return err_set(COCHLEA_EFORMAT, "truncated in header (expected at least %u bytes, got %zu)",
                       SEC_HEADER_FIXED + 8, got);
    sec_header *h = &r->h;
    memset(h, 0, sizeof *h);
    h->version = get_u16(b + 4);
    h->flags = get_u16(b + 6);
    h->fingerprint = get_u64(b + 8);
    h->sample_rate = get_u32(b + 16);
    h->hop = get_u32(b + 20);
    h->n_samples = get_u64(b + 24);
    h->frames_per_chunk = get_u32(b + 32);
    h->n_levels = get_u32(b + 36);
    if (h->n_levels < 1 || h->n_levels > SEC_MAX_LEVELS)
        return err_set(COCHLEA_EFORMAT, "header: level count %u out of range (1..%u)", h->n_levels,
                       SEC_MAX_LEVELS);
    size_t rest = 4u * h->n_levels + 4u, total = SEC_HEADER_FIXED + rest;
    if ((rc = reader_fill(r, b + SEC_HEADER_FIXED, rest, &got, "header")) != COCHLEA_OK)
        return rc;
    if (got < rest)
        return err_set(COCHLEA_EFORMAT, "truncated in header (expected %zu bytes, got %zu)", total,
                       SEC_HEADER_FIXED + got);
    uint32_t stored = get_u32(b + total - 4), computed = sec_crc32(0, b, total - 4);
    if (stored != computed)
        return err_set(COCHLEA_EFORMAT, "header: CRC mismatch (stored 0x%08x, computed 0x%08x)", stored, computed);
    for (uint32_t l = 0; l < h->n_levels; l++)
        h->codebook_size[l] = get_u32(b + SEC_HEADER_FIXED + 4 * l);
    return header_check(h, COCHLEA_EFORMAT);
}

int sec_reader_open(sec_reader **out, sec_read_fn read, void *user)
{
    if (!out || !read)
        return err_set(COCHLEA_EINVAL, "sec_reader_open: NULL argument");
    *out = NULL;
    sec_reader *r = calloc(1, sizeof *r);
    if (!r)
        return err_set(COCHLEA_ENOMEM, "out of memory for a .sec reader");
    r->read = read;
    r->user = user;
    r->bad_chunk = -1;
    int rc = reader_header(r);
    if (rc == COCHLEA_OK)
        rc = coder_init(&r->coder, &r->h);
    if (rc != COCHLEA_OK) {
        sec_reader_free(r);
        return rc;
    }
    r->total_frames = sec_header_n_frames(&r->h);
    r->n_chunks = sec_header_n_chunks(&r->h);
    *out = r;
    return COCHLEA_OK;
}

const sec_header *sec_reader_header(const sec_reader *r)
{
    return r ? &r->h : NULL;
}

uint64_t sec_reader_frames(const sec_reader *r)
{
    return r ? r->frames_done : 0;
}

int64_t sec_reader_bad_chunk(const sec_reader *r)
{
    return r ? r->bad_chunk : -1;
}

void sec_reader_free(sec_reader *r)
{
    if (!r)
        return;
    coder_free(&r->coder);
    free(r->codes);
    free(r->payload);
    free(r);
}

/* sec-format.md §4.1 inverse: unpack, check every code < K_l and the padding bits are zero. */
static int unpack_codes(const sec_header *h, const uint8_t *in, size_t n_frames, int32_t *codes,
                        uint64_t first_frame)
{
    unsigned bits[SEC_MAX_LEVELS];
    for (uint32_t l = 0; l < h->n_levels; l++)
        bits[l] = sec_code_bits(h->codebook_size[l]);
    uint64_t acc = 0;
    unsigned nacc = 0;
    size_t pos = 0;
    for (size_t t = 0; t < n_frames; t++)
        for (uint32_t l = 0; l < h->n_levels; l++) {
            while (nacc < bits[l]) {
                acc |= (uint64_t)in[pos++] << nacc;
                nacc += 8;
            }
            uint32_t c = (uint32_t)(acc & (((uint64_t)1 << bits[l]) - 1));
            acc >>= bits[l];
            nacc -= bits[l];
            if (c >= h->codebook_size[l])
                return err_set(COCHLEA_EFORMAT, "frame %llu level %u: code %u >= codebook size %u",
                               (unsigned long long)(first_frame + t), l, c, h->codebook_size[l]);
            codes[t * h->n_levels + l] = (int32_t)c;
        }
    if (acc != 0)
        return err_set(COCHLEA_EFORMAT, "non-zero padding bits 0x%02x after the last code", (unsigned)acc);
    return COCHLEA_OK;
}

/* Range-coded payload (sec-format.md §5): models reset, symbols time-major, level-minor. */
static int decode_codes(sec_reader *r, const uint8_t *in, size_t len, size_t n_frames, int32_t *codes)
{
    const sec_header *h = &r->h;
    arith_decoder d;
    arith_dec_init(&d, in, len);
    for (uint32_t l = 0; l < h->n_levels; l++)
        if (h->codebook_size[l] > 1)
            arith_model_reset(&r->coder.model[l]);
    for (size_t t = 0; t < n_frames; t++)
        for (uint32_t l = 0; l < h->n_levels; l++) {
            uint32_t s = 0;
            if (h->codebook_size[l] > 1) {
                int rc = arith_dec_symbol(&d, &r->coder.model[l], &s);
                if (rc != COCHLEA_OK)
                    return rc;
            }
            if (s >= h->codebook_size[l])
                return err_set(COCHLEA_EFORMAT, "code %u >= codebook size %u", s, h->codebook_size[l]);
            codes[t * h->n_levels + l] = (int32_t)s;
        }
    return arith_dec_finish(&d);
}

/* Record a chunk error: prefix the message with the chunk and its frames, make it sticky. */
static int reader_fail(sec_reader *r, int code, uint64_t first, uint64_t n, int truncated)
{
    char m[READER_MSG_MAX];
    snprintf(m, sizeof m, "%s", cochlea_last_error());
    if (truncated)
        snprintf(r->msg, sizeof r->msg, "%s", m);
    else if (n > 0)
        snprintf(r->msg, sizeof r->msg, "chunk %u (frames %llu-%llu): %.400s", r->chunk_index,
                 (unsigned long long)first, (unsigned long long)(first + n - 1), m);
    else
        snprintf(r->msg, sizeof r->msg, "chunk %u: %.400s", r->chunk_index, m);
    r->failed = code;
    r->bad_chunk = r->chunk_index;
    return err_set(code, "%s", r->msg);
}

int sec_reader_next(sec_reader *r, const int32_t **codes, size_t *n_frames, uint64_t *first_frame)
{
    if (!r || !codes || !n_frames)
        return err_set(COCHLEA_EINVAL, "sec_reader_next: NULL argument");
    *codes = NULL;
    *n_frames = 0;
    if (first_frame)
        *first_frame = r->frames_done;
    if (r->failed)
        return err_set(r->failed, "%s", r->msg);
    const sec_header *h = &r->h;
    uint8_t hb[SEC_CHUNK_HEADER_BYTES];
    size_t got;
    int rc;
    if (r->done)
        return COCHLEA_OK;
    if (r->chunk_index == r->n_chunks) {
        if ((rc = reader_fill(r, hb, 1, &got, "the end of the stream")) != COCHLEA_OK)
            return reader_fail(r, rc, 0, 0, 1);
        if (got > 0) {
            err_set(COCHLEA_EFORMAT, "trailing data after the last chunk (%llu chunks, %llu frames)",
                    (unsigned long long)r->n_chunks, (unsigned long long)r->total_frames);
            return reader_fail(r, COCHLEA_EFORMAT, 0, 0, 1);
        }
        r->done = 1;
        return COCHLEA_OK;
    }
    uint64_t first = r->frames_done;
    uint64_t n = r->total_frames - first < h->frames_per_chunk ? r->total_frames - first : h->frames_per_chunk;
    char where[96];
    snprintf(where, sizeof where, "chunk %u header", r->chunk_index);
    if ((rc = reader_fill(r, hb, sizeof hb, &got, where)) != COCHLEA_OK)
        return reader_fail(r, rc, first, n, 0);
    if (got == 0) {
        err_set(COCHLEA_EFORMAT, "truncated: the stream ends before chunk %u (frames %llu-%llu; %llu of %llu frames read)",
                r->chunk_index, (unsigned long long)first, (unsigned long long)(first + n - 1),
                (unsigned long long)first, (unsigned long long)r->total_frames);
        return reader_fail(r, COCHLEA_EFORMAT, first, n, 1);
    }
    if (got < sizeof hb) {
        err_set(COCHLEA_EFORMAT, "truncated in chunk %u header (expected %u bytes, got %zu)", r->chunk_index,
                SEC_CHUNK_HEADER_BYTES, got);
        return reader_fail(r, COCHLEA_EFORMAT, first, n, 1);
    }
    uint32_t stored = get_u32(hb + 12), computed = sec_crc32(0, hb, 12);
    if (stored != computed) {
        err_set(COCHLEA_EFORMAT, "chunk header CRC mismatch (stored 0x%08x, computed 0x%08x)", stored, computed);
        return reader_fail(r, COCHLEA_EFORMAT, first, n, 0);
    }
    uint32_t index = get_u32(hb), nf = get_u32(hb + 4), plen = get_u32(hb + 8);
    if (index != r->chunk_index) {
        err_set(COCHLEA_EFORMAT, "chunk index field is %u", index);
        return reader_fail(r, COCHLEA_EFORMAT, first, n, 0);
    }
    if (nf != n) {
        err_set(COCHLEA_EFORMAT, "frame count field is %u, expected %llu", nf, (unsigned long long)n);
        return reader_fail(r, COCHLEA_EFORMAT, first, n, 0);
    }
    uint64_t packed = packed_bytes(h, n);
    int coded = (h->flags & SEC_FLAG_ENTROPY) && plen < packed;
    if (plen > packed || (plen < packed && !coded)) {
        err_set(COCHLEA_EFORMAT, "payload size %u %s %llu bytes", plen,
                plen > packed ? "exceeds the packed size" : "differs from the packed size",
                (unsigned long long)packed);
        return reader_fail(r, COCHLEA_EFORMAT, first, n, 0);
    }
    size_t need = SEC_CHUNK_HEADER_BYTES + (size_t)plen + 4; /* plen <= packed <= 4 MiB */
    if (need > r->payload_cap) {
        uint8_t *p = realloc(r->payload, need);
        if (!p) {
            err_set(COCHLEA_ENOMEM, "out of memory for a %zu-byte chunk", need);
            return reader_fail(r, COCHLEA_ENOMEM, first, n, 0);
        }
        r->payload = p;
        r->payload_cap = need;
    }
    memcpy(r->payload, hb, sizeof hb);
    snprintf(where, sizeof where, "chunk %u payload", r->chunk_index);
    if ((rc = reader_fill(r, r->payload + SEC_CHUNK_HEADER_BYTES, (size_t)plen + 4, &got, where)) != COCHLEA_OK)
        return reader_fail(r, rc, first, n, 0);
    if (got < plen) {
        err_set(COCHLEA_EFORMAT, "truncated in chunk %u payload (expected %u bytes, got %zu)", r->chunk_index, plen,
                got);
        return reader_fail(r, COCHLEA_EFORMAT, first, n, 1);
    }
    if (got < (size_t)plen + 4) {
        err_set(COCHLEA_EFORMAT, "truncated in chunk %u CRC (expected 4 bytes, got %zu)", r->chunk_index,
                got - plen);
        return reader_fail(r, COCHLEA_EFORMAT, first, n, 1);
    }
    size_t body = SEC_CHUNK_HEADER_BYTES + plen;
    stored = get_u32(r->payload + body);
    computed = sec_crc32(0, r->payload, body);
    if (stored != computed) {
        err_set(COCHLEA_EFORMAT, "CRC mismatch (stored 0x%08x, computed 0x%08x)", stored, computed);
        return reader_fail(r, COCHLEA_EFORMAT, first, n, 0);
    }
    if (r->codes_cap < n) {
        free(r->codes);
        /* cannot overflow: n <= frames_per_chunk <= 65536, L <= 32 (header_check) */
        r->codes = malloc((size_t)n * h->n_levels * sizeof *r->codes);
        if (!r->codes) {
            r->codes_cap = 0;
            err_set(COCHLEA_ENOMEM, "out of memory for %llu frames", (unsigned long long)n);
            return reader_fail(r, COCHLEA_ENOMEM, first, n, 0);
        }
        r->codes_cap = (size_t)n;
    }
    const uint8_t *pl = r->payload + SEC_CHUNK_HEADER_BYTES;
    if (coded)
        rc = decode_codes(r, pl, plen, (size_t)n, r->codes);
    else
        rc = unpack_codes(h, pl, (size_t)n, r->codes, first);
    if (rc != COCHLEA_OK)
        return reader_fail(r, rc, first, n, 0);
    r->chunk_index++;
    r->frames_done += n;
    *codes = r->codes;
    *n_frames = (size_t)n;
    return COCHLEA_OK;
}

int sec_decode(sec_read_fn read, void *user, sec_header *h, int32_t **codes, uint64_t *n_frames)
{
    if (!codes || !n_frames)
        return err_set(COCHLEA_EINVAL, "sec_decode: NULL output");
    *codes = NULL;
    *n_frames = 0;
    sec_reader *r;
    int rc = sec_reader_open(&r, read, user);
    if (rc != COCHLEA_OK)
        return rc;
    if (h)
        *h = r->h;
    const uint32_t L = r->h.n_levels;
    int32_t *all = NULL;
    uint64_t have = 0, cap = 0;
    for (;;) {
        const int32_t *c;
        size_t n;
        rc = sec_reader_next(r, &c, &n, NULL);
        if (rc != COCHLEA_OK || n == 0)
            break;
        if (have + n > cap) {
            uint64_t ncap = cap ? cap : 256;
            while (ncap < have + n)
                ncap *= 2;
            size_t bytes;
            int32_t *p = NULL;
            if (ncap <= SIZE_MAX && !size_mul((size_t)ncap, (size_t)L * sizeof *all, &bytes))
                p = realloc(all, bytes);
            if (!p) {
                rc = err_set(COCHLEA_ENOMEM, "out of memory for %llu decoded frames", (unsigned long long)ncap);
                break;
            }
            all = p;
            cap = ncap;
        }
        memcpy(all + have * L, c, n * L * sizeof *all);
        have += n;
    }
    sec_reader_free(r);
    *codes = all;
    *n_frames = have;
    return rc;
}
