/* tokenizer_internal.h - the tokenizer's data structures, shared by tokenizer.c (model, encoders,
 * decoder), tokenizer_proto.c (the .model protobuf reader) and tokenizer_norm.c (normaliser). */
#ifndef COCHLEA_TOKENIZER_INTERNAL_H
#define COCHLEA_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* U+2581 LOWER ONE EIGHTH BLOCK, which stands for a space inside pieces. */
#define TOK_SPACE "\xe2\x96\x81"
#define TOK_SPACE_LEN 3

/* A byte range inside tokenizer.blob (the serialized model). */
typedef struct tok_span {
    size_t off, len;
} tok_span;

/* A growable byte buffer. */
typedef struct tok_buf {
    uint8_t *p;
    size_t n, cap;
} tok_buf;

/* NormalizerSpec plus its decoded precompiled charsmap. */
typedef struct tok_norm {
    int present;            /* the message was in the file */
    tok_span name;
    tok_span charsmap;      /* raw precompiled_charsmap bytes */
    int add_dummy_prefix;   /* default 1 */
    int remove_extra_ws;    /* default 1 */
    int escape_ws;          /* default 1 */
    /* decoded charsmap: a darts-clone double array (little-endian u32 units) and the
     * NUL-terminated replacement strings its leaf values point into */
    const uint8_t *units;
    size_t n_units;
    const uint8_t *strings;
    size_t n_strings;
    size_t strings_limit;   /* values below this have a NUL terminator inside the strings */
} tok_norm;

/* One vocabulary entry. The piece's bytes are pool[off .. off+len), NUL-terminated. */
typedef struct tok_piece {
    size_t off, len;
    float score;
    uint8_t type; /* enum tokenizer_piece_type */
} tok_piece;

/* A byte trie with each node's children stored contiguously, sorted by label. */
typedef struct tok_trie_node {
    int32_t value;  /* piece id ending here, -1 if none */
    uint32_t first; /* index of the first child */
    float score;    /* the piece's score and type (copied here for the lattice's inner loop) */
    uint16_t count; /* number of children (<= 256) */
    uint8_t label;  /* byte on the edge into this node */
    uint8_t type;
} tok_trie_node;

typedef struct tok_trie {
    tok_trie_node *nodes; /* nodes[0] is the root; NULL for an empty trie */
    uint8_t *labels;      /* labels[i] = nodes[i].label, contiguous for the child search */
    size_t n;
    int32_t root[256];    /* the root's child for each byte, -1 if none */
} tok_trie;

/* Open-addressing hash table from piece bytes to ids (-1 marks a free slot). */
typedef struct tok_map {
    int32_t *slots;
    size_t mask;
} tok_map;

struct tokenizer {
    char *name;      /* file name (or label) for error messages */
    uint8_t *blob;   /* the serialized ModelProto (owned copy) */
    size_t blob_len;

    /* ModelProto.pieces */
    tok_piece *pieces;
    int32_t n_pieces;
    size_t cap_pieces;
    char *pool;

    /* TrainerSpec */
    int model_type;
    int byte_fallback;
    int treat_ws_as_suffix;
    int32_t vocab_size_spec;
    tok_span unk_piece, bos_piece, eos_piece, pad_piece, unk_surface;
    int has_unk_surface;

    /* self_test_data: (input, expected pieces joined by spaces) checked at load */
    struct tok_self_test {
        tok_span input, expected;
    } *tests;
    size_t n_tests, cap_tests;

    tok_norm norm;   /* normalizer_spec */
    tok_norm denorm; /* denormalizer_spec */

    /* derived */
    tok_map map_normal;   /* NORMAL, USER_DEFINED, UNUSED pieces */
    tok_map map_reserved; /* UNKNOWN, CONTROL, BYTE pieces */
    tok_trie trie;        /* the normal map as a trie (unigram lattice) */
    tok_trie user_trie;   /* USER_DEFINED pieces (matched before normalisation) */
    int32_t unk_id;       /* the UNKNOWN piece */
    int32_t byte_id[256]; /* PieceToId("<0xXX>") when byte_fallback */
    float min_score, max_score; /* over NORMAL pieces, starting from FLT_MAX / FLT_MIN */
};

/* ---- tokenizer_proto.c ---- */

/* Parse tok->blob (a serialized ModelProto) into the pieces, trainer and normalizer fields. */
int tok_parse_model_proto(tokenizer *tok);

/* ---- tokenizer_norm.c ---- */

/* sentencepiece's OneCharLen: the UTF-8 sequence length implied by a lead byte (1 for others). */
static inline size_t tok_one_char_len(uint8_t c)
{
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[c >> 4];
}

/* sentencepiece's IsValidDecodeUTF8: whether s[0..n) starts with a valid UTF-8 character
 * (n >= 1); *mblen is its length, or 1 for an invalid byte. */
int tok_utf8_valid_prefix(const uint8_t *s, size_t n, size_t *mblen);

/* Decode the precompiled charsmap of `norm` (trie size, double array, strings). */
int tok_norm_init(tokenizer *tok, tok_norm *norm, const char *what);

/* Normalise in[0..n) into out (cleared first) as sentencepiece's Normalizer::Normalize. With
 * use_matcher, user-defined symbols are copied verbatim; suffix is treat_whitespace_as_suffix. */
int tok_normalize(const tokenizer *tok, const tok_norm *norm, int use_matcher, int suffix,
                  const uint8_t *in, size_t n, tok_buf *out);

/* Longest user-defined symbol that is a prefix of s[0..n); 0 if none. */
size_t tok_user_match(const tokenizer *tok, const uint8_t *s, size_t n);

/* Grow b to hold `extra` more bytes / append bytes / release it (ENOMEM, ERANGE on failure). */
int tok_buf_reserve(tok_buf *b, size_t extra);
int tok_buf_append(tok_buf *b, const void *data, size_t n);
void tok_buf_free(tok_buf *b);

/* ---- tokenizer.c ---- */

/* The child of trie node `node` labelled `c`, or -1. */
static inline int64_t tok_trie_child(const tok_trie *t, uint32_t node, uint8_t c)
{
    if (node == 0)
        return t->root[c];
    const tok_trie_node *nd = &t->nodes[node];
    uint32_t lo = nd->first, hi = nd->first + nd->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint8_t l = t->labels[mid];
        if (l == c)
            return mid;
        if (l < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

#endif
