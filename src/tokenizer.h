/* tokenizer.h - SentencePiece tokenizer: the .model protobuf reader, the normaliser (precompiled
 * charsmap, e.g. nmt_nfkc), unigram Viterbi / BPE / word / char encoders and the decoder.
 *
 * The behaviour follows sentencepiece 0.1.97 (Debian's python3-sentencepiece) piece for piece:
 * tests/tokenizer_parity.sh compares pieces, ids and decoded text with it.
 *
 * SentencePiece ids are the positions of the pieces in the .model file. Model token lists may
 * differ (OWSM-CTC: model id = sp id - 1 for sp ids 3..49999, sp id 0 <unk> -> model id 1; see
 * owsm-ctc.md §5.1); mapping between them is the caller's business.
 *
 * A loaded tokenizer is read-only: any number of threads may encode and decode with it at once.
 */
#ifndef COCHLEA_TOKENIZER_H
#define COCHLEA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

/* The GGUF key under which models carry the raw .model bytes (design.md: model files). */
#define TOKENIZER_GGUF_KEY "tokenizer.sentencepiece.model"

typedef struct tokenizer tokenizer;

/* TrainerSpec.model_type */
enum tokenizer_model_type {
    TOKENIZER_MODEL_UNIGRAM = 1,
    TOKENIZER_MODEL_BPE = 2,
    TOKENIZER_MODEL_WORD = 3,
    TOKENIZER_MODEL_CHAR = 4,
};

/* ModelProto.SentencePiece.Type */
enum tokenizer_piece_type {
    TOKENIZER_PIECE_NORMAL = 1,
    TOKENIZER_PIECE_UNKNOWN = 2,
    TOKENIZER_PIECE_CONTROL = 3,
    TOKENIZER_PIECE_USER_DEFINED = 4,
    TOKENIZER_PIECE_UNUSED = 5,
    TOKENIZER_PIECE_BYTE = 6,
};

/* The result of tokenizer_encode: n tokens; token i has id ids[i] and its piece is the bytes
 * text[offs[i] .. offs[i+1]) (text is also NUL-terminated after the last piece). Pieces are
 * normalised text ("\xe2\x96\x81" for spaces), "<0xXX>" byte pieces, or a run of unknown
 * characters merged into one <unk> token. Zero-initialise it before the first use; it can be
 * reused for many calls (buffers grow as needed) and is released with tokenizer_output_free. */
typedef struct tokenizer_output {
    size_t n;
    int32_t *ids;
    size_t *offs; /* n + 1 entries */
    char *text;
    size_t cap_tokens; /* allocated entries of ids (offs has one more) */
    size_t cap_text;   /* allocated bytes of text */
} tokenizer_output;

/* Load a SentencePiece .model file. On success *out owns everything it needs (the file can go). */
int tokenizer_load(const char *path, tokenizer **out);

/* Load from the serialized ModelProto bytes in memory (copied). `name` is used in error
 * messages (NULL: "sentencepiece model"). */
int tokenizer_load_memory(const void *data, size_t size, const char *name, tokenizer **out);

/* Load the model embedded in a GGUF file under TOKENIZER_GGUF_KEY. */
int tokenizer_load_gguf(const char *path, tokenizer **out);

void tokenizer_free(tokenizer *tok);

/* Number of pieces (the vocabulary size). */
int32_t tokenizer_vocab_size(const tokenizer *tok);

/* enum tokenizer_model_type of the model. */
int tokenizer_model_type(const tokenizer *tok);

/* The piece string of `id` (NUL-terminated, owned by tok), its byte length in *len if len is
 * not NULL; NULL if id is out of range. */
const char *tokenizer_id_to_piece(const tokenizer *tok, int32_t id, size_t *len);

/* The id of a piece string, as sentencepiece's PieceToId: control/unknown/byte pieces first,
 * then normal/user-defined/unused ones; the unknown id if the string is not a piece. */
int32_t tokenizer_piece_to_id(const tokenizer *tok, const char *piece, size_t len);

/* enum tokenizer_piece_type of `id`, or 0 if out of range. */
int tokenizer_piece_type(const tokenizer *tok, int32_t id);

/* The score of `id` (log probability for unigram, -merge rank for BPE); 0 if out of range. */
float tokenizer_piece_score(const tokenizer *tok, int32_t id);

/* Special ids as sentencepiece reports them (the trainer's unk/bos/eos/pad piece looked up, -1
 * if absent or not of the expected type). */
int32_t tokenizer_unk_id(const tokenizer *tok);
int32_t tokenizer_bos_id(const tokenizer *tok);
int32_t tokenizer_eos_id(const tokenizer *tok);
int32_t tokenizer_pad_id(const tokenizer *tok);

/* Normalise text[0..len) as the encoder does (charsmap, whitespace rules, U+2581 escaping).
 * *out is a NUL-terminated malloc'd string the caller frees with free(); *out_len its length. */
int tokenizer_normalize(const tokenizer *tok, const char *text, size_t len, char **out,
                        size_t *out_len);

/* Encode text[0..len) (any bytes; invalid UTF-8 becomes U+FFFD as in sentencepiece) into *out. */
int tokenizer_encode(const tokenizer *tok, const char *text, size_t len, tokenizer_output *out);

/* Release the buffers of an output (it is zeroed and can be reused). */
void tokenizer_output_free(tokenizer_output *out);

/* Decode ids into text (U+2581 -> space, leading space dropped, control pieces dropped, byte
 * pieces joined into UTF-8, <unk> -> " \xe2\x81\x87 "). *text is a NUL-terminated malloc'd
 * string (free() it); *len its length (the text may contain NUL bytes from byte pieces).
 * An id outside [0, vocab size) gives COCHLEA_ERANGE. */
int tokenizer_decode(const tokenizer *tok, const int32_t *ids, size_t n, char **text,
                     size_t *len);

/* Decode piece strings (pieces[i] of lens[i] bytes; lens NULL: NUL-terminated) as
 * sentencepiece's DecodePieces: each piece is looked up with tokenizer_piece_to_id. */
int tokenizer_decode_pieces(const tokenizer *tok, const char *const *pieces, const size_t *lens,
                            size_t n, char **text, size_t *len);

#endif
