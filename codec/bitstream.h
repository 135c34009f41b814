/* bitstream.h - the .sec file: SECodec tokens in CRC-protected chunks (docs/sec-format.md).
 *
 * A .sec stream is a header (model fingerprint, sample rate, hop, sample count, per-level
 * codebook sizes, frames per chunk, flags) followed by ceil(n_frames / frames_per_chunk)
 * chunks. Tokens are int32, time-major [T, L]: the L codes of frame t, then frame t+1. Each
 * chunk holds bit-packed codes (ceil(log2 K_l) bits per level, LSB first) or, with
 * SEC_FLAG_ENTROPY and only where that is shorter, the same codes range coded with one adaptive
 * model per level that is reset at every chunk, so every chunk decodes on its own.
 *
 * Streaming: the writer and the reader talk to the caller through callbacks and never seek.
 * The writer takes any number of frames per call and emits a chunk each time frames_per_chunk
 * frames are buffered; the reader hands back one chunk per call. Every error sets a message
 * (cochlea_last_error) naming the part of the stream and the chunk ("chunk 3 (frames
 * 1500-1999): CRC mismatch (stored 0x..., computed 0x...)").
 */
#ifndef COCHLEA_CODEC_BITSTREAM_H
#define COCHLEA_CODEC_BITSTREAM_H

#include <stddef.h>
#include <stdint.h>

#define SEC_MAGIC "SEC\x1a"                 /* 4 bytes: 53 45 43 1A */
#define SEC_VERSION 1u
#define SEC_MAX_LEVELS 32u
#define SEC_MAX_CODEBOOK 65536u             /* K_l in 1..65536 (16 bits) */
#define SEC_MAX_FRAMES_PER_CHUNK 65536u
#define SEC_FLAG_ENTROPY 0x0001u            /* chunks range coded where shorter (else all packed) */
#define SEC_CHUNK_HEADER_BYTES 16u          /* index, n_frames, payload_bytes, header CRC */

/* Stream header. The writer writes SEC_VERSION whatever `version` holds; the reader fills it. */
typedef struct sec_header {
    uint32_t version;
    uint32_t flags;                          /* SEC_FLAG_* */
    uint64_t fingerprint;                    /* model fingerprint (computed by the codec loader) */
    uint32_t sample_rate;                    /* Hz, > 0 */
    uint32_t hop;                            /* samples per frame, > 0; frame rate = sample_rate / hop */
    uint64_t n_samples;                      /* original length; n_frames = ceil(n_samples / hop) */
    uint32_t frames_per_chunk;               /* 1..SEC_MAX_FRAMES_PER_CHUNK */
    uint32_t n_levels;                       /* L, 1..SEC_MAX_LEVELS */
    uint32_t codebook_size[SEC_MAX_LEVELS];  /* K_l, 1..SEC_MAX_CODEBOOK (K = 1 costs 0 bits) */
} sec_header;

/* Check every field against the limits above; COCHLEA_EINVAL / EUNSUPPORTED with a message. */
int sec_header_validate(const sec_header *h);
/* ceil(n_samples / hop): the number of frames the stream carries. */
uint64_t sec_header_n_frames(const sec_header *h);
/* ceil(n_frames / frames_per_chunk). */
uint64_t sec_header_n_chunks(const sec_header *h);
/* Bytes of the encoded header: 44 + 4 L. */
size_t sec_header_bytes(const sec_header *h);

/* ceil(log2 K): bits of one packed code (0 for K = 1). */
unsigned sec_code_bits(uint32_t k);
/* Sum over levels of ceil(log2 K_l): packed bits per frame. */
uint32_t sec_bits_per_frame(const sec_header *h);
/* sample_rate / hop (frames per second). */
double sec_frame_rate(const sec_header *h);
/* Packed-mode token bitrate in bit/s: frame_rate * sum ceil(log2 K_l) (payload only). */
double sec_bitrate_packed(const sec_header *h);
/* frame_rate * sum log2 K_l: the uniform-code (mixed radix) bound, bit/s. */
double sec_bitrate_log2(const sec_header *h);
/* Whole-stream bitrate of `n_bytes` bytes (header and chunk overhead included) over the
 * stream's duration n_samples / sample_rate; 0 when the duration is 0. */
double sec_bitrate_file(const sec_header *h, uint64_t n_bytes);

/* COCHLEA_OK when the file's fingerprint equals `model_fingerprint`, else COCHLEA_EINVAL with
 * "model fingerprint mismatch: the stream was encoded with model 0x..., the loaded model is
 * 0x...". */
int sec_check_fingerprint(const sec_header *h, uint64_t model_fingerprint);

/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF).
 * Start with crc = 0; feed further pieces by passing the previous result. */
uint32_t sec_crc32(uint32_t crc, const void *buf, size_t n);

/* ---- I/O callbacks ----------------------------------------------------------------------
 * write: consume all n bytes; return 0, or non-zero on failure (the writer returns COCHLEA_EIO).
 * read: store up to n bytes (at least 1 unless at the end); return the count, 0 at the end of
 * the stream, negative on failure (COCHLEA_EIO). Short reads are retried until n or the end. */
typedef int (*sec_write_fn)(void *user, const void *buf, size_t n);
typedef ptrdiff_t (*sec_read_fn)(void *user, void *buf, size_t n);

/* In-memory sink for sec_write_fn: bytes accumulate in data[0..size) (malloc'ed, caller frees
 * with free(); zero-initialise the struct first). */
typedef struct sec_membuf {
    uint8_t *data;
    size_t size, cap;
} sec_membuf;
int sec_membuf_write(void *membuf, const void *buf, size_t n);

/* In-memory source for sec_read_fn over data[0..size); `pos` advances. */
typedef struct sec_memsrc {
    const uint8_t *data;
    size_t size, pos;
} sec_memsrc;
ptrdiff_t sec_memsrc_read(void *memsrc, void *buf, size_t n);

/* ---- writer ------------------------------------------------------------------------------ */
typedef struct sec_writer sec_writer;

/* Validate *h, write the header through `write` and return a writer in *out (free with
 * sec_writer_free). The header is copied. */
int sec_writer_open(sec_writer **out, const sec_header *h, sec_write_fn write, void *user);
/* Append n_frames frames (codes: [n_frames, L] int32, time-major). Every code must be in
 * [0, K_l) (else COCHLEA_ERANGE naming the frame and level; nothing of this call is taken), and
 * the running total must not pass sec_header_n_frames (COCHLEA_ERANGE). Full chunks are written
 * immediately. A write failure (COCHLEA_EIO) or out-of-memory leaves the writer failed. */
int sec_writer_push(sec_writer *w, const int32_t *codes, size_t n_frames);
/* Write the last (possibly short) chunk. COCHLEA_ERANGE if fewer than n_frames frames were
 * pushed. Call once; the writer can then only be freed. */
int sec_writer_finish(sec_writer *w);
/* Frames pushed and bytes written so far. */
uint64_t sec_writer_frames(const sec_writer *w);
uint64_t sec_writer_bytes(const sec_writer *w);
void sec_writer_free(sec_writer *w);

/* Whole stream in one call: header h, codes [n_frames, L]; the bytes go to *out (malloc'ed,
 * caller frees) and *out_len. */
int sec_encode(const sec_header *h, const int32_t *codes, uint64_t n_frames, uint8_t **out,
               size_t *out_len);

/* ---- reader ------------------------------------------------------------------------------ */
typedef struct sec_reader sec_reader;

/* Read and validate the header (magic, version, CRC, every field). On success *out is a reader
 * (free with sec_reader_free). */
int sec_reader_open(sec_reader **out, sec_read_fn read, void *user);
const sec_header *sec_reader_header(const sec_reader *r);
/* Read, check and decode the next chunk. On COCHLEA_OK, *codes points at *n_frames frames
 * ([n_frames, L] int32, owned by the reader, valid until the next call) that start at frame
 * *first_frame (may be NULL). *n_frames == 0 marks the clean end of the stream (checked: no
 * trailing bytes). On an error nothing of the bad chunk is returned; the frames returned by
 * earlier calls are intact (salvage) and every later call fails with the same error. */
int sec_reader_next(sec_reader *r, const int32_t **codes, size_t *n_frames, uint64_t *first_frame);
/* Frames returned so far by successful sec_reader_next calls (the intact prefix). */
uint64_t sec_reader_frames(const sec_reader *r);
/* Index of the first bad chunk after an error, or -1. */
int64_t sec_reader_bad_chunk(const sec_reader *r);
void sec_reader_free(sec_reader *r);

/* Decode a whole stream: *h (may be NULL) receives the header, *codes ([*n_frames, L] int32,
 * malloc'ed, caller frees; NULL when empty) the frames. On a chunk error the return value is
 * the error but *codes / *n_frames still hold the intact prefix (the frames of every chunk
 * before the first bad one), which is what a --salvage mode keeps; on a header error they are
 * NULL / 0. Everything is held in memory: n_samples is a u64, so a small stream of K = 1 levels
 * can claim billions of frames; with untrusted input check sec_header_n_frames (or stream with
 * sec_reader_next, which holds one chunk at a time). */
int sec_decode(sec_read_fn read, void *user, sec_header *h, int32_t **codes, uint64_t *n_frames);

#endif
