/* arith.h - adaptive-frequency range coder used by the .sec bitstream (docs/sec-format.md §5).
 *
 * Exact integer arithmetic only, so encoder and decoder agree bit for bit on every platform.
 * The coder keeps a 32-bit range and a 33-bit low (carry propagated into pending 0xFF bytes);
 * symbol intervals are [floor(R*c/T), floor(R*(c+f)/T)) computed with 64-bit products, so no
 * probability mass is lost to truncation. The model is an adaptive frequency table (all counts
 * start at 1, the coded symbol gains ARITH_INC, all counts are halved rounding up when the total
 * exceeds ARITH_TOTAL_MAX) kept in a Fenwick tree so each step costs O(log K).
 */
#ifndef COCHLEA_CODEC_ARITH_H
#define COCHLEA_CODEC_ARITH_H

#include <stddef.h>
#include <stdint.h>

#define ARITH_MAX_SYMBOLS 65536u      /* largest alphabet a model accepts */
#define ARITH_INC 12u                 /* count added to the symbol just coded */
#define ARITH_TOTAL_MAX (1u << 20)    /* halve all counts when the total exceeds this */
#define ARITH_RANGE_MIN (1u << 24)    /* renormalise (one byte) while range < this */

/* Adaptive frequency model over the alphabet 0..n_symbols-1. */
typedef struct arith_model {
    uint32_t n_symbols;
    uint32_t total;  /* sum of freq[] */
    uint32_t top;    /* largest power of two <= n_symbols (Fenwick descent start) */
    uint32_t *freq;  /* [n_symbols] */
    uint32_t *tree;  /* [n_symbols + 1], Fenwick tree of freq (index 1-based) */
} arith_model;

/* Allocate a model for `n_symbols` (1..ARITH_MAX_SYMBOLS) symbols, reset to all-ones counts. */
int arith_model_init(arith_model *m, uint32_t n_symbols);
/* Back to the initial state: every count 1, total n_symbols. */
void arith_model_reset(arith_model *m);
void arith_model_free(arith_model *m);

/* Encoder writing into a growing buffer it owns (buf, len). */
typedef struct arith_encoder {
    uint64_t low;      /* < 2^33; bit 32 is a carry into the pending bytes */
    uint32_t range;
    uint8_t cache;     /* last byte shifted out of low, not yet written (may still get a carry) */
    int have_cache;    /* 0 until the first byte leaves low (the implicit leading 0 is never written) */
    uint64_t pending;  /* 0xFF bytes after cache waiting for a possible carry */
    uint8_t *buf;
    size_t len, cap;
    int error;         /* sticky: an allocation failed */
} arith_encoder;

/* Start a new code stream; keeps (and empties) an existing buffer. */
void arith_enc_reset(arith_encoder *e);
/* Code symbol s with model m and then update m. */
int arith_enc_symbol(arith_encoder *e, arith_model *m, uint32_t s);
/* Terminate the stream (docs/sec-format.md §5.4): shortest tail, trailing zero bytes dropped.
 * The code stream is then e->buf[0 .. e->len). */
int arith_enc_finish(arith_encoder *e);
void arith_enc_free(arith_encoder *e);

/* Decoder over buf[0..len); bytes past the end read as 0. */
typedef struct arith_decoder {
    const uint8_t *buf;
    size_t len;
    uint64_t pos;    /* bytes consumed, including virtual zero bytes past the end */
    uint32_t code;   /* value - low, always < range for a valid stream */
    uint32_t range;
} arith_decoder;

void arith_dec_init(arith_decoder *d, const uint8_t *buf, size_t len);
/* Decode one symbol with model m into *s and update m. COCHLEA_EFORMAT (message set) when the
 * stream is inconsistent (code value outside the range: only a corrupt stream does that). */
int arith_dec_symbol(arith_decoder *d, arith_model *m, uint32_t *s);
/* Check the stream end is canonical: no byte left unread, last byte non-zero. COCHLEA_EFORMAT
 * with a message otherwise. */
int arith_dec_finish(const arith_decoder *d);

#endif
