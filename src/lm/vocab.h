/* vocab.h - text LM tokenizers read from the GGUF keys llama.cpp writes (tokenizer.ggml.*).
 *
 * Two models, chosen by tokenizer.ggml.model:
 *  - "llama": SentencePiece style, as llama.cpp's SPM tokenizer: spaces become U+2581, a space is
 *    put in front of each run of text (tokenizer.ggml.add_space_prefix, default true) at the
 *    start and after every special token, then the text is cut into UTF-8 characters and the
 *    adjacent pair whose concatenation is the token with the highest score is merged (ties: the
 *    leftmost pair) until no pair is a token; characters that are no token become their byte
 *    tokens <0xXX> (or the one-byte token, or <unk> when neither exists). No normaliser runs: a
 *    SentencePiece model matches exactly when it is a BPE model with the identity normaliser
 *    (tests/vocab_parity.py); for unigram models the merge-by-score result is an approximation.
 *  - "gpt2": byte-level BPE: the text is pre-tokenised by tokenizer.ggml.pre ("gpt2"/"gpt-2":
 *    the GPT-2 regex; "default" or no key: llama.cpp's default sequence of four regexes), each
 *    piece's bytes are mapped to GPT-2's printable code points, and the pair with the lowest
 *    merge rank (tokenizer.ggml.merges order; ties: leftmost) is merged until none is left.
 *    Other pre-tokenizer names are refused (COCHLEA_EUNSUPPORTED) unless the caller passes
 *    LM_VOCAB_LOAD_PRE_FALLBACK, which uses the GPT-2 regex instead (with a warning).
 *    Invalid UTF-8 in the input is kept byte for byte (each bad byte is one "other" character),
 *    so decode(encode(x)) == x for any bytes (llama.cpp would replace them by U+FFFD).
 *
 * Special tokens (token types 2 unknown, 3 control, 4 user-defined) are found in the text first,
 * longest text first (llama.cpp's partition); user-defined ones always, unknown and control ones
 * only with LM_VOCAB_PARSE_SPECIAL.
 *
 * Token types are llama.cpp's: 0 undefined, 1 normal, 2 unknown, 3 control, 4 user defined,
 * 5 unused, 6 byte. Ids are positions in tokenizer.ggml.tokens. A loaded vocabulary is read-only
 * and owns copies of everything (the gguf_file may be closed); any number of threads may use it.
 */
#ifndef COCHLEA_LM_VOCAB_H
#define COCHLEA_LM_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct lm_vocab lm_vocab;

enum lm_vocab_kind {
    LM_VOCAB_SPM = 1, /* tokenizer.ggml.model "llama" */
    LM_VOCAB_BPE = 2, /* tokenizer.ggml.model "gpt2" */
};

enum lm_vocab_pre {
    LM_VOCAB_PRE_NONE = 0,    /* SPM */
    LM_VOCAB_PRE_GPT2 = 1,    /* "gpt2", "gpt-2" (or an unknown name with the fallback flag) */
    LM_VOCAB_PRE_DEFAULT = 2, /* "default" or no tokenizer.ggml.pre key */
};

enum lm_token_type {
    LM_TOKEN_UNDEFINED = 0,
    LM_TOKEN_NORMAL = 1,
    LM_TOKEN_UNKNOWN = 2,
    LM_TOKEN_CONTROL = 3,
    LM_TOKEN_USER_DEFINED = 4,
    LM_TOKEN_UNUSED = 5,
    LM_TOKEN_BYTE = 6,
};

/* lm_vocab_load flags */
#define LM_VOCAB_LOAD_PRE_FALLBACK 1u /* unknown tokenizer.ggml.pre: use the GPT-2 regex */

/* lm_vocab_encode flags */
#define LM_VOCAB_ADD_SPECIAL 1u   /* BOS / EOS as tokenizer.ggml.add_bos_token / add_eos_token say */
#define LM_VOCAB_ADD_BOS 2u       /* BOS first whatever add_bos_token says */
#define LM_VOCAB_PARSE_SPECIAL 4u /* control and unknown token texts in the input become tokens */

/* lm_vocab_decode / lm_vocab_token_piece / stream flags */
#define LM_VOCAB_DECODE_SPECIAL 1u    /* render control and unknown tokens as their text */
#define LM_VOCAB_DECODE_KEEP_SPACE 2u /* SPM: keep the leading space the encoder added */

/* Read the tokenizer.ggml.* keys of `f` (see the file comment; every key is checked: types,
 * array lengths, token types 0..6, byte token texts, special ids inside the vocabulary, merges
 * of the form "a b"). Errors name the file and the key. Defaults when a key is absent: SPM bos 1,
 * eos 2, unk 0, add_bos true; BPE no bos/eos/unk, add_bos false; scores 0; types normal. */
int lm_vocab_load(const gguf_file *f, unsigned flags, lm_vocab **out);
void lm_vocab_free(lm_vocab *v);

int32_t lm_vocab_n_tokens(const lm_vocab *v);
enum lm_vocab_kind lm_vocab_kind(const lm_vocab *v);
enum lm_vocab_pre lm_vocab_pre(const lm_vocab *v);

/* Token text as stored in the file (owned by v, NUL-terminated; *len its bytes, len may be
 * NULL); NULL when id is out of range. */
const char *lm_vocab_token_text(const lm_vocab *v, int32_t id, size_t *len);
float lm_vocab_token_score(const lm_vocab *v, int32_t id);           /* 0 when out of range */
enum lm_token_type lm_vocab_token_type(const lm_vocab *v, int32_t id); /* 0 when out of range */
/* The id whose text is exactly text[0..len) (the last one if several), or -1. */
int32_t lm_vocab_find(const lm_vocab *v, const char *text, size_t len);

/* Special ids, -1 when the vocabulary has none. */
int32_t lm_vocab_bos(const lm_vocab *v);
int32_t lm_vocab_eos(const lm_vocab *v);
int32_t lm_vocab_unk(const lm_vocab *v);
int32_t lm_vocab_pad(const lm_vocab *v);
int32_t lm_vocab_eot(const lm_vocab *v); /* tokenizer.ggml.eot_token_id */
int lm_vocab_add_bos(const lm_vocab *v);  /* tokenizer.ggml.add_bos_token */
int lm_vocab_add_eos(const lm_vocab *v);  /* tokenizer.ggml.add_eos_token */
/* End of generation: eos, eot, eom (tokenizer.ggml.eom_token_id), and control tokens whose text
 * is one of llama.cpp's end markers ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
 * "<|endoftext|>", "<|eom_id|>", "<EOT>", "<|end_of_text|>"). */
int lm_vocab_is_eog(const lm_vocab *v, int32_t id);
int lm_vocab_is_control(const lm_vocab *v, int32_t id); /* type control or unknown */

/* Token ids; zero-initialise, reuse across calls, release with lm_tokens_free. */
typedef struct lm_tokens {
    int32_t *ids;
    size_t n, cap;
} lm_tokens;

/* Tokenise text[0..len) into out (cleared first). flags: LM_VOCAB_ADD_SPECIAL, LM_VOCAB_ADD_BOS,
 * LM_VOCAB_PARSE_SPECIAL. COCHLEA_EINVAL when BOS/EOS is asked for and the vocabulary has none,
 * or (BPE) a byte has no token and there is no unknown token. */
int lm_vocab_encode(const lm_vocab *v, const char *text, size_t len, unsigned flags, lm_tokens *out);
void lm_tokens_free(lm_tokens *t);

/* The bytes token `id` renders to on its own (no leading-space handling): normal SPM tokens with
 * U+2581 -> ' ', normal BPE tokens through GPT-2's byte map, byte tokens their byte, user-defined
 * tokens their text, control/unknown tokens their text with LM_VOCAB_DECODE_SPECIAL (else
 * nothing), unused/undefined nothing. Writes at most cap bytes to buf and the full length to *len
 * (COCHLEA_ERANGE if it did not fit or id is out of range). */
int lm_vocab_token_piece(const lm_vocab *v, int32_t id, unsigned flags, char *buf, size_t cap, size_t *len);

/* Decode ids to bytes: the pieces joined; for SPM with add_space_prefix, the leading space of
 * the first normal token that comes while nothing has been output yet is dropped, once (as
 * sentencepiece's decoder consumes its dummy prefix), unless LM_VOCAB_DECODE_KEEP_SPACE. *text is malloc'd and NUL-terminated (free() it); *len its
 * length. COCHLEA_ERANGE for an id out of range. */
int lm_vocab_decode(const lm_vocab *v, const int32_t *ids, size_t n, unsigned flags, char **text, size_t *len);

/* Piece-by-piece decoding for generation: each push returns the new text that is complete
 * UTF-8; a character split across byte tokens is held back until its last byte arrives (an
 * invalid sequence is passed on as it is). The result of lm_vocab_decode equals the
 * concatenation of every push and the final flush. */
typedef struct lm_vocab_stream {
    unsigned flags;
    int any_output;    /* output started or the leading space was dropped: no more removal */
    uint8_t pend[4];   /* bytes of an incomplete UTF-8 character */
    size_t n_pend;
    char *buf;         /* output buffer, owned */
    size_t cap;
} lm_vocab_stream;

void lm_vocab_stream_init(lm_vocab_stream *s, unsigned flags);
/* *out points into s (valid until the next call on s), *len bytes, not NUL-terminated. */
int lm_vocab_stream_push(const lm_vocab *v, lm_vocab_stream *s, int32_t id, const char **out, size_t *len);
/* Whatever is still held back (an incomplete character at the end). */
int lm_vocab_stream_flush(lm_vocab_stream *s, const char **out, size_t *len);
void lm_vocab_stream_free(lm_vocab_stream *s);

#endif
