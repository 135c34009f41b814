/* tokenizer.c - SentencePiece models: vocabulary tables, the unigram/BPE/word/char encoders, the
 * decoder and the public (internal-API) functions of tokenizer.h. Behaviour follows
 * sentencepiece 0.1.97 (model_interface.cc, unigram_model.cc EncodeOptimized, bpe_model.cc,
 * sentencepiece_processor.cc PopulateSentencePieceText and Decode). */
#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gguf.h"
#include "tokenizer_internal.h"

#define UNK_PENALTY 10.0f
static const char default_unk_surface[] = " \xe2\x81\x87 ";

/* ---- small helpers ---------------------------------------------------------------------- */

static const uint8_t *piece_bytes(const tokenizer *tok, int32_t id)
{
    return (const uint8_t *)tok->pool + tok->pieces[id].off;
}

static int piece_type(const tokenizer *tok, int32_t id)
{
    return tok->pieces[id].type;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

/* "<0xXX>" (upper-case hex, as sentencepiece's ByteToPiece writes it) -> 0..255, else -1. */
static int piece_to_byte(const uint8_t *p, size_t n)
{
    if (n != 6 || p[0] != '<' || p[1] != '0' || p[2] != 'x' || p[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static void byte_to_piece(uint8_t b, char out[7])
{
    static const char hex[] = "0123456789ABCDEF";
    out[0] = '<';
    out[1] = '0';
    out[2] = 'x';
    out[3] = hex[b >> 4];
    out[4] = hex[b & 15];
    out[5] = '>';
    out[6] = '\0';
}

/* ---- piece -> id hash tables ------------------------------------------------------------ */

/* An empty table with room for n pieces at a load factor of at most 1/2. */
static int map_init(tokenizer *tok, tok_map *m, size_t n)
{
    size_t cap = 16, bytes;
    while (cap < n * 2 + 1) {
        if (cap > SIZE_MAX / 4)
            return err_set(COCHLEA_ENOMEM, "%s: vocabulary too large", tok->name);
        cap *= 2;
    }
    if (size_mul(cap, sizeof(int32_t), &bytes))
        return err_set(COCHLEA_ENOMEM, "%s: vocabulary too large", tok->name);
    m->slots = malloc(bytes);
    if (!m->slots)
        return err_set(COCHLEA_ENOMEM, "%s: out of memory for the vocabulary table", tok->name);
    memset(m->slots, 0xff, bytes);
    m->mask = cap - 1;
    return COCHLEA_OK;
}

/* The id stored for the bytes p[0..n), or -1 (linear probing from the hash slot). */
static int32_t map_find(const tokenizer *tok, const tok_map *m, const uint8_t *p, size_t n)
{
    if (!m->slots)
        return -1;
    for (size_t i = hash_bytes(p, n) & m->mask;; i = (i + 1) & m->mask) {
        int32_t id = m->slots[i];
        if (id < 0)
            return -1;
        if (tok->pieces[id].len == n && memcmp(piece_bytes(tok, id), p, n) == 0)
            return id;
    }
}

/* Insert id; returns -1 if inserted, or the id that already holds the same piece. */
static int32_t map_insert(tokenizer *tok, tok_map *m, int32_t id)
{
    const uint8_t *p = piece_bytes(tok, id);
    size_t n = tok->pieces[id].len;
    for (size_t i = hash_bytes(p, n) & m->mask;; i = (i + 1) & m->mask) {
        int32_t o = m->slots[i];
        if (o < 0) {
            m->slots[i] = id;
            return -1;
        }
        if (tok->pieces[o].len == n && memcmp(piece_bytes(tok, o), p, n) == 0)
            return o;
    }
}

/* sentencepiece's PieceToId: reserved (unknown/control/byte) pieces first, then the others. */
static int32_t piece_to_id(const tokenizer *tok, const uint8_t *p, size_t n)
{
    int32_t id = map_find(tok, &tok->map_reserved, p, n);
    if (id >= 0)
        return id;
    id = map_find(tok, &tok->map_normal, p, n);
    return id >= 0 ? id : tok->unk_id;
}

/* ---- tries ------------------------------------------------------------------------------ */

typedef struct trie_key {
    const uint8_t *p;
    size_t len;
    int32_t value;
} trie_key;

/* Bytewise order, a prefix before its extensions (the order darts-clone builds from). */
static int trie_key_cmp(const void *a, const void *b)
{
    const trie_key *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->p, y->p, n) : 0;
    if (c)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* Build a trie over unique keys. Nodes are numbered breadth-first, so every node's children
 * are contiguous and sorted; each node covers the key range [lo, hi) sharing its prefix. */
static int trie_build(tokenizer *tok, tok_trie *t, trie_key *keys, size_t n)
{
    size_t max_nodes = 1, bytes;
    for (size_t i = 0; i < n; i++)
        if (size_add(max_nodes, keys[i].len, &max_nodes))
            return err_set(COCHLEA_ENOMEM, "%s: vocabulary too large", tok->name);
    if (max_nodes > UINT32_MAX)
        return err_set(COCHLEA_EUNSUPPORTED, "%s: vocabulary needs %zu trie nodes, more than 2^32", tok->name,
                       max_nodes);
    qsort(keys, n, sizeof *keys, trie_key_cmp);
    if (size_mul(max_nodes, sizeof(tok_trie_node), &bytes))
        return err_set(COCHLEA_ENOMEM, "%s: vocabulary too large", tok->name);
    tok_trie_node *nodes = malloc(bytes);
    size_t *range = NULL;
    if (nodes && !size_mul(max_nodes, 3 * sizeof(size_t), &bytes))
        range = malloc(bytes);
    if (!nodes || !range) {
        free(nodes);
        free(range);
        return err_set(COCHLEA_ENOMEM, "%s: out of memory for the piece trie", tok->name);
    }
    size_t count = 1;
    nodes[0] = (tok_trie_node){-1, 0, 0.0f, 0, 0, 0};
    range[0] = 0;
    range[1] = n;
    range[2] = 0;
    for (size_t i = 0; i < count; i++) {
        size_t lo = range[3 * i], hi = range[3 * i + 1], d = range[3 * i + 2];
        if (lo < hi && keys[lo].len == d) {
            int32_t id = keys[lo].value;
            nodes[i].value = id;
            nodes[i].score = tok->pieces[id].score;
            nodes[i].type = tok->pieces[id].type;
        }
        while (lo < hi && keys[lo].len == d) /* duplicates are rejected before; skip defensively */
            lo++;
        nodes[i].first = (uint32_t)count;
        nodes[i].count = 0;
        while (lo < hi) {
            uint8_t c = keys[lo].p[d];
            size_t e = lo + 1;
            while (e < hi && keys[e].p[d] == c)
                e++;
            nodes[count] = (tok_trie_node){-1, 0, 0.0f, 0, c, 0};
            range[3 * count] = lo;
            range[3 * count + 1] = e;
            range[3 * count + 2] = d + 1;
            count++;
            nodes[i].count++;
            lo = e;
        }
    }
    free(range);
    tok_trie_node *shrunk = realloc(nodes, count * sizeof *nodes);
    t->nodes = shrunk ? shrunk : nodes;
    t->n = count;
    t->labels = malloc(count);
    if (!t->labels)
        return err_set(COCHLEA_ENOMEM, "%s: out of memory for the piece trie", tok->name);
    for (size_t i = 0; i < count; i++)
        t->labels[i] = t->nodes[i].label;
    for (int c = 0; c < 256; c++)
        t->root[c] = -1;
    for (uint32_t k = 0; k < t->nodes[0].count; k++)
        t->root[t->nodes[t->nodes[0].first + k].label] = (int32_t)(t->nodes[0].first + k);
    return COCHLEA_OK;
}

/* ---- model setup (sentencepiece's ModelInterface::InitializePieces and model constructors) */

static int build_model(tokenizer *tok)
{
    int rc;
    int32_t n = tok->n_pieces;
    /* copy piece strings into a pool of NUL-terminated strings */
    size_t pool_len = 0;
    for (int32_t i = 0; i < n; i++) {
        if (tok->pieces[i].len == 0)
            return err_set(COCHLEA_EFORMAT, "%s: piece %d is empty (pieces must not be empty)", tok->name, (int)i);
        if (size_add(pool_len, tok->pieces[i].len + 1, &pool_len))
            return err_set(COCHLEA_ENOMEM, "%s: vocabulary too large", tok->name);
    }
    tok->pool = malloc(pool_len ? pool_len : 1);
    if (!tok->pool)
        return err_set(COCHLEA_ENOMEM, "%s: out of memory for %zu bytes of pieces", tok->name, pool_len);
    size_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        tok_piece *sp = &tok->pieces[i];
        memcpy(tok->pool + off, tok->blob + sp->off, sp->len);
        tok->pool[off + sp->len] = '\0';
        sp->off = off;
        off += sp->len + 1;
    }

    if ((rc = map_init(tok, &tok->map_normal, (size_t)n)) || (rc = map_init(tok, &tok->map_reserved, (size_t)n)))
        return rc;
    int byte_found[256] = {0};
    size_t n_normal = 0, n_user = 0;
    tok->unk_id = -1;
    for (int32_t i = 0; i < n; i++) {
        int type = piece_type(tok, i);
        int normal = type == TOKENIZER_PIECE_NORMAL || type == TOKENIZER_PIECE_USER_DEFINED ||
                     type == TOKENIZER_PIECE_UNUSED;
        int32_t dup = map_insert(tok, normal ? &tok->map_normal : &tok->map_reserved, i);
        if (dup >= 0)
            return err_set(COCHLEA_EFORMAT, "%s: piece %d '%s' is already defined as piece %d", tok->name, (int)i,
                           tok->pool + tok->pieces[i].off, (int)dup);
        n_normal += normal;
        n_user += type == TOKENIZER_PIECE_USER_DEFINED;
        if (type == TOKENIZER_PIECE_UNKNOWN) {
            if (tok->unk_id >= 0)
                return err_set(COCHLEA_EFORMAT, "%s: pieces %d and %d are both of type UNKNOWN", tok->name,
                               (int)tok->unk_id, (int)i);
            tok->unk_id = i;
        }
        if (type == TOKENIZER_PIECE_BYTE) {
            if (!tok->byte_fallback)
                return err_set(COCHLEA_EFORMAT, "%s: byte piece %d '%s' found although byte_fallback is false",
                               tok->name, (int)i, tok->pool + tok->pieces[i].off);
            int b = piece_to_byte(piece_bytes(tok, i), tok->pieces[i].len);
            if (b < 0)
                return err_set(COCHLEA_EFORMAT, "%s: byte piece %d '%s' is not of the form <0xXX>", tok->name,
                               (int)i, tok->pool + tok->pieces[i].off);
            byte_found[b] = 1;
        }
    }
    if (tok->unk_id < 0)
        return err_set(COCHLEA_EFORMAT, "%s: no piece of type UNKNOWN (unk is not defined)", tok->name);
    for (int b = 0; b < 256; b++) {
        tok->byte_id[b] = -1;
        if (!tok->byte_fallback)
            continue;
        if (!byte_found[b])
            return err_set(COCHLEA_EFORMAT, "%s: byte_fallback is true but there is no byte piece <0x%02X>",
                           tok->name, b);
        char s[7];
        byte_to_piece((uint8_t)b, s);
        tok->byte_id[b] = piece_to_id(tok, (const uint8_t *)s, 6);
    }

    /* scores range of NORMAL pieces, from FLT_MAX / FLT_MIN as sentencepiece starts */
    tok->min_score = FLT_MAX;
    tok->max_score = FLT_MIN;
    for (int32_t i = 0; i < n; i++)
        if (piece_type(tok, i) == TOKENIZER_PIECE_NORMAL) {
            float s = tok->pieces[i].score;
            if (s < tok->min_score)
                tok->min_score = s;
            if (s > tok->max_score)
                tok->max_score = s;
        }

    size_t n_keys = tok->model_type == TOKENIZER_MODEL_UNIGRAM ? n_normal : n_user;
    trie_key *keys = malloc((n_keys ? n_keys : 1) * sizeof *keys);
    if (!keys)
        return err_set(COCHLEA_ENOMEM, "%s: out of memory", tok->name);
    if (tok->model_type == TOKENIZER_MODEL_UNIGRAM) {
        if (n_normal == 0) {
            free(keys);
            return err_set(COCHLEA_EFORMAT, "%s: unigram model without normal pieces (no pieces are loaded)",
                           tok->name);
        }
        size_t k = 0;
        for (int32_t i = 0; i < n; i++) {
            int type = piece_type(tok, i);
            if (type == TOKENIZER_PIECE_NORMAL || type == TOKENIZER_PIECE_USER_DEFINED ||
                type == TOKENIZER_PIECE_UNUSED)
                keys[k++] = (trie_key){piece_bytes(tok, i), tok->pieces[i].len, i};
        }
        if ((rc = trie_build(tok, &tok->trie, keys, k))) {
            free(keys);
            return rc;
        }
    }
    if (n_user) {
        size_t k = 0;
        for (int32_t i = 0; i < n; i++)
            if (piece_type(tok, i) == TOKENIZER_PIECE_USER_DEFINED)
                keys[k++] = (trie_key){piece_bytes(tok, i), tok->pieces[i].len, i};
        if ((rc = trie_build(tok, &tok->user_trie, keys, k))) {
            free(keys);
            return rc;
        }
    }
    free(keys);

    if ((rc = tok_norm_init(tok, &tok->norm, "normalizer_spec")))
        return rc;
    if (tok->denorm.present && (rc = tok_norm_init(tok, &tok->denorm, "denormalizer_spec")))
        return rc;
    return COCHLEA_OK;
}

/* ---- loading ---------------------------------------------------------------------------- */

void tokenizer_free(tokenizer *tok)
{
    if (!tok)
        return;
    free(tok->name);
    free(tok->blob);
    free(tok->pieces);
    free(tok->pool);
    free(tok->map_normal.slots);
    free(tok->map_reserved.slots);
    free(tok->tests);
    free(tok->trie.nodes);
    free(tok->trie.labels);
    free(tok->user_trie.nodes);
    free(tok->user_trie.labels);
    free(tok);
}

/* sentencepiece's load-time self-test: each sample's pieces, joined by spaces, must equal the
 * expected string stored by the trainer. */
static int self_test(tokenizer *tok)
{
    tokenizer_output o = {0};
    tok_buf joined = {0};
    int rc = COCHLEA_OK;
    for (size_t i = 0; i < tok->n_tests && !rc; i++) {
        const struct tok_self_test *t = &tok->tests[i];
        if ((rc = tokenizer_encode(tok, (const char *)tok->blob + t->input.off, t->input.len, &o)))
            break;
        joined.n = 0;
        for (size_t k = 0; k < o.n && !rc; k++) {
            if (k)
                rc = tok_buf_append(&joined, " ", 1);
            if (!rc)
                rc = tok_buf_append(&joined, o.text + o.offs[k], o.offs[k + 1] - o.offs[k]);
        }
        if (!rc && (joined.n != t->expected.len ||
                    (joined.n && memcmp(joined.p, tok->blob + t->expected.off, joined.n) != 0)))
            rc = err_set(COCHLEA_EFORMAT, "%s: self-test sample %zu of %zu ('%.*s') encodes to '%.*s', the model "
                         "expects '%.*s'",
                         tok->name, i, tok->n_tests, (int)(t->input.len > 80 ? 80 : t->input.len),
                         (const char *)tok->blob + t->input.off, (int)(joined.n > 120 ? 120 : joined.n),
                         joined.p ? (const char *)joined.p : "", (int)(t->expected.len > 120 ? 120 : t->expected.len),
                         (const char *)tok->blob + t->expected.off);
    }
    tokenizer_output_free(&o);
    tok_buf_free(&joined);
    return rc;
}

/* Take ownership of blob (malloc'd) and build the tokenizer from it. */
static int load_owned(uint8_t *blob, size_t size, const char *name, tokenizer **out)
{
    *out = NULL;
    tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) {
        free(blob);
        return err_set(COCHLEA_ENOMEM, "%s: out of memory", name);
    }
    tok->blob = blob;
    tok->blob_len = size;
    tok->name = strdup(name);
    if (!tok->name) {
        tokenizer_free(tok);
        return err_set(COCHLEA_ENOMEM, "%s: out of memory", name);
    }
    int rc = tok_parse_model_proto(tok);
    if (!rc)
        rc = build_model(tok);
    if (!rc)
        rc = self_test(tok);
    if (rc) {
        tokenizer_free(tok);
        return rc;
    }
    *out = tok;
    return COCHLEA_OK;
}

int tokenizer_load_memory(const void *data, size_t size, const char *name, tokenizer **out)
{
    if (!out)
        return err_set(COCHLEA_EINVAL, "tokenizer_load_memory: out is NULL");
    *out = NULL;
    if (!name)
        name = "sentencepiece model";
    if (!data && size)
        return err_set(COCHLEA_EINVAL, "%s: data is NULL", name);
    uint8_t *blob = malloc(size ? size : 1);
    if (!blob)
        return err_set(COCHLEA_ENOMEM, "%s: out of memory for %zu bytes", name, size);
    if (size)
        memcpy(blob, data, size);
    return load_owned(blob, size, name, out);
}

int tokenizer_load(const char *path, tokenizer **out)
{
    if (!out || !path)
        return err_set(COCHLEA_EINVAL, "tokenizer_load: path or out is NULL");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(COCHLEA_EIO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t *blob = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 1 << 20;
            uint8_t *p = ncap > cap ? realloc(blob, ncap) : NULL;
            if (!p) {
                free(blob);
                fclose(f);
                return err_set(COCHLEA_ENOMEM, "%s: out of memory reading the file", path);
            }
            blob = p;
            cap = ncap;
        }
        size_t got = fread(blob + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(blob);
        return err_set(COCHLEA_EIO, "%s: read error", path);
    }
    return load_owned(blob, n, path, out);
}

int tokenizer_load_gguf(const char *path, tokenizer **out)
{
    if (!out || !path)
        return err_set(COCHLEA_EINVAL, "tokenizer_load_gguf: path or out is NULL");
    *out = NULL;
    gguf_file *g;
    int rc = gguf_open(path, &g);
    if (rc)
        return rc;
    int64_t k = gguf_find_key(g, TOKENIZER_GGUF_KEY);
    if (k < 0) {
        gguf_close(g);
        return err_set(COCHLEA_EFORMAT, "%s: no key '%s' (the model carries no SentencePiece tokenizer)", path,
                       TOKENIZER_GGUF_KEY);
    }
    const gguf_value *v = gguf_kv_value(g, k);
    char label[1024];
    snprintf(label, sizeof label, "%s:%s", path, TOKENIZER_GGUF_KEY);
    if (v->type == GGUF_TYPE_STRING)
        rc = tokenizer_load_memory(v->str[0], (size_t)v->str_len[0], label, out);
    else if (v->type == GGUF_TYPE_ARRAY && (v->arr_type == GGUF_TYPE_U8 || v->arr_type == GGUF_TYPE_I8))
        rc = tokenizer_load_memory(v->data, (size_t)v->n, label, out);
    else
        rc = err_set(COCHLEA_EFORMAT, "%s: key '%s' has type %s, expected a string or an array of u8", path,
                     TOKENIZER_GGUF_KEY, gguf_type_name(v->type));
    gguf_close(g);
    return rc;
}

/* ---- vocabulary accessors ---------------------------------------------------------------- */

int32_t tokenizer_vocab_size(const tokenizer *tok)
{
    return tok->n_pieces;
}

int tokenizer_model_type(const tokenizer *tok)
{
    return tok->model_type;
}

const char *tokenizer_id_to_piece(const tokenizer *tok, int32_t id, size_t *len)
{
    if (id < 0 || id >= tok->n_pieces)
        return NULL;
    if (len)
        *len = tok->pieces[id].len;
    return tok->pool + tok->pieces[id].off;
}

int32_t tokenizer_piece_to_id(const tokenizer *tok, const char *piece, size_t len)
{
    return piece_to_id(tok, (const uint8_t *)piece, len);
}

int tokenizer_piece_type(const tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n_pieces ? tok->pieces[id].type : 0;
}

float tokenizer_piece_score(const tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n_pieces ? tok->pieces[id].score : 0.0f;
}

/* The id of the trainer's special piece `s` (or `def` when unset) if it has type `type`. */
static int32_t special_id(const tokenizer *tok, tok_span s, const char *def, int type)
{
    const uint8_t *p = s.len ? tok->blob + s.off : (const uint8_t *)def;
    size_t n = s.len ? s.len : strlen(def);
    /* sentencepiece looks the piece up as a C string: it ends at the first NUL */
    const uint8_t *z = memchr(p, 0, n);
    if (z)
        n = (size_t)(z - p);
    int32_t id = piece_to_id(tok, p, n);
    return piece_type(tok, id) == type ? id : -1;
}

int32_t tokenizer_unk_id(const tokenizer *tok)
{
    return special_id(tok, tok->unk_piece, "<unk>", TOKENIZER_PIECE_UNKNOWN);
}

int32_t tokenizer_bos_id(const tokenizer *tok)
{
    return special_id(tok, tok->bos_piece, "<s>", TOKENIZER_PIECE_CONTROL);
}

int32_t tokenizer_eos_id(const tokenizer *tok)
{
    return special_id(tok, tok->eos_piece, "</s>", TOKENIZER_PIECE_CONTROL);
}

int32_t tokenizer_pad_id(const tokenizer *tok)
{
    return special_id(tok, tok->pad_piece, "<pad>", TOKENIZER_PIECE_CONTROL);
}

/* ---- encoding --------------------------------------------------------------------------- */

/* A piece of the normalised text chosen by a model: norm[start .. start+len) with its id. */
typedef struct seg {
    size_t start, len;
    int32_t id;
} seg;

typedef struct seg_list {
    seg *s;
    size_t n, cap;
} seg_list;

static int seg_push(seg_list *l, size_t start, size_t len, int32_t id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64, bytes;
        if (size_mul(cap, sizeof(seg), &bytes))
            return err_set(COCHLEA_ENOMEM, "tokenizer: too many pieces");
        seg *p = realloc(l->s, bytes);
        if (!p)
            return err_set(COCHLEA_ENOMEM, "tokenizer: out of memory for %zu pieces", cap);
        l->s = p;
        l->cap = cap;
    }
    l->s[l->n++] = (seg){start, len, id};
    return COCHLEA_OK;
}

static size_t char_len_at(const uint8_t *s, size_t n)
{
    size_t m = tok_one_char_len(s[0]);
    return m < n ? m : n;
}

/* Unigram: sentencepiece's EncodeOptimized Viterbi. best[e] is the best path over norm[0..e);
 * candidates are the vocabulary pieces found by walking the trie from each character start,
 * scored by their log probability (user-defined symbols: len * max_score - 0.1), and an
 * unknown piece of one character (min_score - 10) where no one-character piece exists. */
static int encode_unigram(const tokenizer *tok, const uint8_t *s, size_t size, seg_list *out)
{
    typedef struct {
        float score;
        int32_t id;
        size_t start; /* SIZE_MAX: not reached */
    } vnode;
    size_t bytes;
    if (size_mul(size + 1, sizeof(vnode), &bytes))
        return err_set(COCHLEA_ERANGE, "tokenizer: text of %zu bytes is too long", size);
    vnode *best = malloc(bytes);
    if (!best)
        return err_set(COCHLEA_ENOMEM, "tokenizer: out of memory for a %zu-byte text", size);
    for (size_t i = 0; i <= size; i++)
        best[i] = (vnode){0.0f, -1, SIZE_MAX};
    const float unk_score = tok->min_score - UNK_PENALTY;
    const tok_trie *t = &tok->trie;
    for (size_t start = 0; start < size;) {
        const float here = best[start].score;
        const size_t mblen = char_len_at(s + start, size - start);
        int single = 0;
        uint32_t node = 0;
        for (size_t key = start; key < size; key++) {
            int64_t c = tok_trie_child(t, node, s[key]);
            if (c < 0)
                break;
            node = (uint32_t)c;
            const tok_trie_node *nd = &t->nodes[node];
            int32_t id = nd->value;
            if (id < 0 || nd->type == TOKENIZER_PIECE_UNUSED)
                continue;
            size_t len = key + 1 - start;
            /* sentencepiece computes this in double (the ?: mixes float and double) */
            double score = nd->type == TOKENIZER_PIECE_USER_DEFINED ? (double)((float)len * tok->max_score) - 0.1
                                                                    : (double)nd->score;
            double cand = score + (double)here;
            vnode *tn = &best[key + 1];
            if (tn->start == SIZE_MAX || cand > (double)tn->score) {
                tn->score = (float)cand;
                tn->start = start;
                tn->id = id;
            }
            if (len == mblen)
                single = 1;
        }
        if (!single) {
            vnode *tn = &best[start + mblen];
            float cand = unk_score + here;
            if (tn->start == SIZE_MAX || cand > tn->score) {
                tn->score = cand;
                tn->start = start;
                tn->id = tok->unk_id;
            }
        }
        start += mblen;
    }
    /* backtrack, then reverse */
    size_t first = out->n;
    int rc = COCHLEA_OK;
    for (size_t end = size; end > 0;) {
        size_t st = best[end].start;
        if (st == SIZE_MAX || st >= end) {
            rc = err_set(COCHLEA_EINTERNAL, "tokenizer: broken Viterbi path at byte %zu", end);
            break;
        }
        if ((rc = seg_push(out, st, end - st, best[end].id)))
            break;
        end = st;
    }
    free(best);
    if (rc)
        return rc;
    for (size_t i = first, j = out->n; i + 1 < j; i++, j--) {
        seg tmp = out->s[i];
        out->s[i] = out->s[j - 1];
        out->s[j - 1] = tmp;
    }
    return COCHLEA_OK;
}

/* BPE state: the symbol list and a max-heap of candidate merges. */
typedef struct bpe_sym {
    int64_t prev, next; /* -1 at the ends */
    size_t start, len;  /* len 0: merged into its left neighbour */
    int freeze;         /* user-defined symbol: never merged */
} bpe_sym;

typedef struct bpe_pair {
    float score;
    int64_t left, right;
    size_t size;
} bpe_pair;

typedef struct bpe_state {
    const tokenizer *tok;
    const uint8_t *s;
    bpe_sym *sym;
    bpe_pair *heap;
    size_t n_heap, cap_heap;
    struct {
        int32_t id;
        size_t left_len;
    } *rev; /* sentencepiece's rev_merge for UNUSED pieces: id -> length of its left part */
    size_t n_rev, cap_rev;
} bpe_state;

/* Whether pair a is merged before pair b: higher score first, then the leftmost. */
static int pair_before(const bpe_pair *a, const bpe_pair *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

/* Binary heap of candidate merges, the pair_before-first one at the top. */
static int heap_push(bpe_state *st, bpe_pair p)
{
    if (st->n_heap == st->cap_heap) {
        size_t cap = st->cap_heap ? st->cap_heap * 2 : 256, bytes;
        if (size_mul(cap, sizeof(bpe_pair), &bytes))
            return err_set(COCHLEA_ENOMEM, "tokenizer: BPE queue too large");
        bpe_pair *h = realloc(st->heap, bytes);
        if (!h)
            return err_set(COCHLEA_ENOMEM, "tokenizer: out of memory for the BPE queue");
        st->heap = h;
        st->cap_heap = cap;
    }
    size_t i = st->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &st->heap[parent]))
            break;
        st->heap[i] = st->heap[parent];
        i = parent;
    }
    st->heap[i] = p;
    return COCHLEA_OK;
}

static bpe_pair heap_pop(bpe_state *st)
{
    bpe_pair top = st->heap[0];
    bpe_pair last = st->heap[--st->n_heap];
    size_t i = 0, n = st->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && pair_before(&st->heap[c + 1], &st->heap[c]))
            c++;
        if (!pair_before(&st->heap[c], &last))
            break;
        st->heap[i] = st->heap[c];
        i = c;
    }
    if (n)
        st->heap[i] = last;
    return top;
}

/* sentencepiece's MaybeAddNewSymbolPair: queue the merge of symbols l and r if it is a piece. */
static int bpe_maybe_add(bpe_state *st, int64_t l, int64_t r)
{
    if (l < 0 || r < 0 || st->sym[l].freeze || st->sym[r].freeze)
        return COCHLEA_OK;
    const tokenizer *tok = st->tok;
    size_t size = st->sym[l].len + st->sym[r].len;
    int32_t id = map_find(tok, &tok->map_normal, st->s + st->sym[l].start, size);
    if (id < 0)
        return COCHLEA_OK;
    int rc = heap_push(st, (bpe_pair){tok->pieces[id].score, l, r, size});
    if (rc || piece_type(tok, id) != TOKENIZER_PIECE_UNUSED)
        return rc;
    for (size_t i = 0; i < st->n_rev; i++)
        if (st->rev[i].id == id) {
            st->rev[i].left_len = st->sym[l].len;
            return COCHLEA_OK;
        }
    if (st->n_rev == st->cap_rev) {
        size_t cap = st->cap_rev ? st->cap_rev * 2 : 16;
        void *p = realloc(st->rev, cap * sizeof *st->rev);
        if (!p)
            return err_set(COCHLEA_ENOMEM, "tokenizer: out of memory");
        st->rev = p;
        st->cap_rev = cap;
    }
    st->rev[st->n_rev].id = id;
    st->rev[st->n_rev].left_len = st->sym[l].len;
    st->n_rev++;
    return COCHLEA_OK;
}

/* sentencepiece's resegment: emit a final symbol, splitting UNUSED pieces back into the two
 * parts they were merged from (iteratively, left part first). */
static int bpe_resegment(bpe_state *st, size_t start, size_t len, seg_list *out)
{
    size_t stack_small[64][2], (*stack)[2] = stack_small, cap = 64, n = 0;
    int rc = COCHLEA_OK;
    stack[n][0] = start;
    stack[n][1] = len;
    n++;
    while (n > 0 && !rc) {
        n--;
        size_t s0 = stack[n][0], l0 = stack[n][1];
        int32_t id = piece_to_id(st->tok, st->s + s0, l0);
        size_t left = 0;
        int found = 0;
        if (piece_type(st->tok, id) == TOKENIZER_PIECE_UNUSED)
            for (size_t i = 0; i < st->n_rev; i++)
                if (st->rev[i].id == id) {
                    left = st->rev[i].left_len;
                    found = left > 0 && left < l0;
                    break;
                }
        if (!found) {
            rc = seg_push(out, s0, l0, id);
            continue;
        }
        if (n + 2 > cap) {
            size_t ncap = cap * 2;
            size_t(*p)[2] = malloc(ncap * sizeof *p);
            if (!p) {
                rc = err_set(COCHLEA_ENOMEM, "tokenizer: out of memory");
                break;
            }
            memcpy(p, stack, n * sizeof *p);
            if (stack != stack_small)
                free(stack);
            stack = p;
            cap = ncap;
        }
        stack[n][0] = s0 + left; /* right part, processed after the left one */
        stack[n][1] = l0 - left;
        n++;
        stack[n][0] = s0;
        stack[n][1] = left;
        n++;
    }
    if (stack != stack_small)
        free(stack);
    return rc;
}

/* BPE: split into characters (user-defined symbols whole and frozen), then repeatedly merge the
 * adjacent pair whose concatenation is the best-scored piece (leftmost on ties). */
static int encode_bpe(const tokenizer *tok, const uint8_t *s, size_t size, seg_list *out)
{
    bpe_state st = {0};
    st.tok = tok;
    st.s = s;
    size_t bytes;
    if (size_mul(size, sizeof(bpe_sym), &bytes))
        return err_set(COCHLEA_ERANGE, "tokenizer: text of %zu bytes is too long", size);
    st.sym = malloc(bytes ? bytes : 1);
    if (!st.sym)
        return err_set(COCHLEA_ENOMEM, "tokenizer: out of memory for a %zu-byte text", size);
    int64_t n = 0;
    for (size_t pos = 0; pos < size;) {
        size_t m = tok_user_match(tok, s + pos, size - pos);
        int freeze = m > 0;
        if (!m)
            m = char_len_at(s + pos, size - pos);
        st.sym[n] = (bpe_sym){n - 1, pos + m < size ? n + 1 : -1, pos, m, freeze};
        n++;
        pos += m;
    }
    int rc = COCHLEA_OK;
    for (int64_t i = 1; i < n && !rc; i++)
        rc = bpe_maybe_add(&st, i - 1, i);
    while (!rc && st.n_heap > 0) {
        bpe_pair top = heap_pop(&st);
        bpe_sym *l = &st.sym[top.left], *r = &st.sym[top.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != top.size)
            continue;
        l->len += r->len;
        l->next = r->next;
        if (r->next >= 0)
            st.sym[r->next].prev = top.left;
        r->len = 0;
        rc = bpe_maybe_add(&st, l->prev, top.left);
        if (!rc)
            rc = bpe_maybe_add(&st, top.left, st.sym[top.left].next);
    }
    for (int64_t i = n > 0 ? 0 : -1; i >= 0 && !rc; i = st.sym[i].next)
        rc = bpe_resegment(&st, st.sym[i].start, st.sym[i].len, out);
    free(st.sym);
    free(st.heap);
    free(st.rev);
    return rc;
}

/* Word model: split before every U+2581 (and at the start); each word is looked up whole. */
static int encode_word(const tokenizer *tok, const uint8_t *s, size_t size, seg_list *out)
{
    size_t begin = 0;
    int rc;
    while (begin < size) {
        size_t end = begin + char_len_at(s + begin, size - begin);
        while (end < size) {
            size_t m = char_len_at(s + end, size - end);
            if (m == TOK_SPACE_LEN && memcmp(s + end, TOK_SPACE, TOK_SPACE_LEN) == 0)
                break;
            end += m;
        }
        if ((rc = seg_push(out, begin, end - begin, piece_to_id(tok, s + begin, end - begin))))
            return rc;
        begin = end;
    }
    return COCHLEA_OK;
}

/* Char model: one piece per character (user-defined symbols whole). */
static int encode_char(const tokenizer *tok, const uint8_t *s, size_t size, seg_list *out)
{
    int rc;
    for (size_t pos = 0; pos < size;) {
        size_t m = tok_user_match(tok, s + pos, size - pos);
        if (!m)
            m = char_len_at(s + pos, size - pos);
        if ((rc = seg_push(out, pos, m, piece_to_id(tok, s + pos, m))))
            return rc;
        pos += m;
    }
    return COCHLEA_OK;
}

/* Grow the output to `tokens` tokens and `text` bytes of pieces. */
static int out_reserve(tokenizer_output *o, size_t tokens, size_t text)
{
    if (tokens > o->cap_tokens) {
        size_t cap = o->cap_tokens ? o->cap_tokens : 64, b1, b2;
        while (cap < tokens)
            cap = cap > SIZE_MAX / 2 ? tokens : cap * 2;
        if (size_mul(cap, sizeof(int32_t), &b1) || size_mul(cap + 1, sizeof(size_t), &b2))
            return err_set(COCHLEA_ENOMEM, "tokenizer: too many tokens");
        int32_t *ids = realloc(o->ids, b1);
        if (!ids)
            return err_set(COCHLEA_ENOMEM, "tokenizer: out of memory for %zu tokens", cap);
        o->ids = ids;
        size_t *offs = realloc(o->offs, b2);
        if (!offs)
            return err_set(COCHLEA_ENOMEM, "tokenizer: out of memory for %zu tokens", cap);
        o->offs = offs;
        o->cap_tokens = cap;
    }
    if (text > o->cap_text) {
        size_t cap = o->cap_text ? o->cap_text : 256;
        while (cap < text)
            cap = cap > SIZE_MAX / 2 ? text : cap * 2;
        char *p = realloc(o->text, cap);
        if (!p)
            return err_set(COCHLEA_ENOMEM, "tokenizer: out of memory for %zu bytes of pieces", cap);
        o->text = p;
        o->cap_text = cap;
    }
    return COCHLEA_OK;
}

/* Append a new token (merge = 0) or extend the last token's piece (merge = 1). */
static int out_add(tokenizer_output *o, const void *p, size_t len, int32_t id, int merge)
{
    size_t used = o->n ? o->offs[o->n] : 0, need;
    if (size_add(used, len, &need) || size_add(need, 1, &need))
        return err_set(COCHLEA_ERANGE, "tokenizer: output too long");
    int rc = out_reserve(o, o->n + 1, need);
    if (rc)
        return rc;
    if (o->n == 0)
        o->offs[0] = 0;
    memcpy(o->text + used, p, len);
    o->text[used + len] = '\0';
    if (merge && o->n > 0) {
        o->offs[o->n] = used + len;
    } else {
        o->ids[o->n] = id;
        o->offs[++o->n] = used + len;
    }
    return COCHLEA_OK;
}

/* sentencepiece's PopulateSentencePieceText: byte fallback for unknown pieces when enabled,
 * otherwise runs of unknown pieces merged into one. */
static int populate(const tokenizer *tok, const uint8_t *norm, size_t norm_len, const seg_list *segs,
                    tokenizer_output *out)
{
    int prev_unk = 0, rc;
    size_t consumed = 0;
    for (size_t i = 0; i < segs->n; i++) {
        const seg *g = &segs->s[i];
        int type = piece_type(tok, g->id);
        int unk = type == TOKENIZER_PIECE_UNKNOWN;
        if (type == TOKENIZER_PIECE_CONTROL) {
            /* sentencepiece emits it without consuming text, then fails its final check */
            return err_set(COCHLEA_EINVAL,
                           "%s: the text contains the control piece '%s' (id %d), which sentencepiece "
                           "refuses to encode",
                           tok->name, tok->pool + tok->pieces[g->id].off, (int)g->id);
        }
        if (unk && tok->byte_fallback) {
            for (size_t k = 0; k < g->len; k++) {
                char piece[7];
                byte_to_piece(norm[g->start + k], piece);
                if ((rc = out_add(out, piece, 6, tok->byte_id[norm[g->start + k]], 0)))
                    return rc;
            }
        } else if ((rc = out_add(out, norm + g->start, g->len, g->id, prev_unk && unk))) {
            return rc;
        }
        consumed += g->len;
        prev_unk = unk;
    }
    if (consumed != norm_len)
        return err_set(COCHLEA_EINTERNAL, "tokenizer: %zu of %zu normalised bytes were consumed", consumed,
                       norm_len);
    return COCHLEA_OK;
}

int tokenizer_encode(const tokenizer *tok, const char *text, size_t len, tokenizer_output *out)
{
    if (!tok || !out || (!text && len))
        return err_set(COCHLEA_EINVAL, "tokenizer_encode: NULL argument");
    out->n = 0;
    int rc = out_reserve(out, 1, 1);
    if (rc)
        return rc;
    out->offs[0] = 0;
    out->text[0] = '\0';
    tok_buf norm = {0};
    seg_list segs = {0};
    rc = tok_normalize(tok, &tok->norm, 1, tok->treat_ws_as_suffix, (const uint8_t *)text, len, &norm);
    if (!rc && norm.n > 0) {
        switch (tok->model_type) {
        case TOKENIZER_MODEL_BPE: rc = encode_bpe(tok, norm.p, norm.n, &segs); break;
        case TOKENIZER_MODEL_WORD: rc = encode_word(tok, norm.p, norm.n, &segs); break;
        case TOKENIZER_MODEL_CHAR: rc = encode_char(tok, norm.p, norm.n, &segs); break;
        default: rc = encode_unigram(tok, norm.p, norm.n, &segs); break;
        }
        if (!rc)
            rc = populate(tok, norm.p, norm.n, &segs, out);
    }
    if (rc)
        out->n = 0;
    tok_buf_free(&norm);
    free(segs.s);
    return rc;
}

void tokenizer_output_free(tokenizer_output *out)
{
    if (!out)
        return;
    free(out->ids);
    free(out->offs);
    free(out->text);
    memset(out, 0, sizeof *out);
}

int tokenizer_normalize(const tokenizer *tok, const char *text, size_t len, char **out, size_t *out_len)
{
    if (!tok || !out || (!text && len))
        return err_set(COCHLEA_EINVAL, "tokenizer_normalize: NULL argument");
    *out = NULL;
    tok_buf b = {0};
    int rc = tok_normalize(tok, &tok->norm, 1, tok->treat_ws_as_suffix, (const uint8_t *)text, len, &b);
    if (!rc)
        rc = tok_buf_append(&b, "", 1);
    if (rc) {
        tok_buf_free(&b);
        return rc;
    }
    *out = (char *)b.p;
    if (out_len)
        *out_len = b.n - 1;
    return COCHLEA_OK;
}

/* ---- decoding --------------------------------------------------------------------------- */

/* Append the UTF-8 text of a run of byte pieces; invalid sequences give U+FFFD per byte. */
static int decode_bytes(const tokenizer *tok, const int32_t *ids, size_t b, size_t e, tok_buf *text)
{
    uint8_t small[64], *bytes = small;
    size_t n = e - b;
    if (n == 0)
        return COCHLEA_OK;
    if (n > sizeof small && !(bytes = malloc(n)))
        return err_set(COCHLEA_ENOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < n; i++)
        bytes[i] = (uint8_t)piece_to_byte(piece_bytes(tok, ids[b + i]), tok->pieces[ids[b + i]].len);
    int rc = COCHLEA_OK;
    for (size_t off = 0; off < n && !rc;) {
        size_t m;
        if (tok_utf8_valid_prefix(bytes + off, n - off, &m))
            rc = tok_buf_append(text, bytes + off, m);
        else
            rc = tok_buf_append(text, "\xEF\xBF\xBD", 3);
        off += m;
    }
    if (bytes != small)
        free(bytes);
    return rc;
}

/* Append one non-byte piece as sentencepiece's DecodeSentencePiece; *bos_ws tells whether it
 * consumed the leading U+2581 of the text. */
static int decode_piece(const tokenizer *tok, const uint8_t *p, size_t n, int32_t id, int is_bos_ws, int *bos_ws,
                        tok_buf *text)
{
    int type = piece_type(tok, id);
    *bos_ws = 0;
    if (type == TOKENIZER_PIECE_CONTROL)
        return COCHLEA_OK;
    if (type == TOKENIZER_PIECE_UNKNOWN) {
        if (tok->pieces[id].len == n && memcmp(piece_bytes(tok, id), p, n) == 0) {
            if (tok->has_unk_surface) {
                /* sentencepiece passes the surface on as a C string */
                const uint8_t *s = tok->blob + tok->unk_surface.off;
                const uint8_t *z = memchr(s, 0, tok->unk_surface.len);
                return tok_buf_append(text, s, z ? (size_t)(z - s) : tok->unk_surface.len);
            }
            return tok_buf_append(text, default_unk_surface, sizeof default_unk_surface - 1);
        }
        return tok_buf_append(text, p, n);
    }
    if (is_bos_ws && (tok->norm.add_dummy_prefix || tok->norm.remove_extra_ws)) {
        if (n >= TOK_SPACE_LEN && memcmp(p, TOK_SPACE, TOK_SPACE_LEN) == 0) {
            p += TOK_SPACE_LEN;
            n -= TOK_SPACE_LEN;
            *bos_ws = 1;
        }
        if (tok->norm.remove_extra_ws)
            *bos_ws = 0;
    }
    int rc;
    size_t run = 0;
    for (size_t i = 0; i < n;) {
        if (n - i >= TOK_SPACE_LEN && memcmp(p + i, TOK_SPACE, TOK_SPACE_LEN) == 0) {
            if ((rc = tok_buf_append(text, p + run, i - run)) || (rc = tok_buf_append(text, " ", 1)))
                return rc;
            i += TOK_SPACE_LEN;
            run = i;
        } else {
            i++;
        }
    }
    return tok_buf_append(text, p + run, n - run);
}

/* sentencepiece's Decode over pieces p[i] (lens[i] bytes) whose ids are ids[i]. */
static int decode_core(const tokenizer *tok, const uint8_t *const *p, const size_t *lens, const int32_t *ids,
                       size_t n, char **text, size_t *len)
{
    tok_buf b = {0};
    int rc = COCHLEA_OK, is_bos_ws = 1, bos_ws_seen = 0;
    size_t byte_start = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (piece_type(tok, ids[i]) == TOKENIZER_PIECE_BYTE)
            continue;
        if ((rc = decode_bytes(tok, ids, byte_start, i, &b)))
            break;
        if (bos_ws_seen || b.n > 0)
            is_bos_ws = 0;
        byte_start = i + 1;
        rc = decode_piece(tok, p[i], lens[i], ids[i], is_bos_ws, &bos_ws_seen, &b);
    }
    if (!rc)
        rc = decode_bytes(tok, ids, byte_start, n, &b);
    if (!rc && tok->denorm.present && tok->denorm.charsmap.len > 0) {
        tok_buf d = {0};
        rc = tok_normalize(tok, &tok->denorm, 0, 0, b.p, b.n, &d);
        tok_buf_free(&b);
        b = d;
    }
    if (!rc)
        rc = tok_buf_append(&b, "", 1);
    if (rc) {
        tok_buf_free(&b);
        return rc;
    }
    *text = (char *)b.p;
    if (len)
        *len = b.n - 1;
    return COCHLEA_OK;
}

int tokenizer_decode(const tokenizer *tok, const int32_t *ids, size_t n, char **text, size_t *len)
{
    if (!tok || !text || (!ids && n))
        return err_set(COCHLEA_EINVAL, "tokenizer_decode: NULL argument");
    *text = NULL;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tok->n_pieces)
            return err_set(COCHLEA_ERANGE, "%s: token id %lld at position %zu is out of range (vocabulary of %d)",
                           tok->name, (long long)ids[i], i, (int)tok->n_pieces);
    size_t b1, b2, b3;
    if (size_mul(n ? n : 1, sizeof(uint8_t *), &b1) || size_mul(n ? n : 1, sizeof(size_t), &b2) ||
        size_mul(n ? n : 1, sizeof(int32_t), &b3))
        return err_set(COCHLEA_ERANGE, "tokenizer_decode: too many ids");
    const uint8_t **p = malloc(b1);
    size_t *lens = malloc(b2);
    int32_t *rid = malloc(b3);
    int rc;
    if (!p || !lens || !rid) {
        rc = err_set(COCHLEA_ENOMEM, "tokenizer_decode: out of memory");
    } else {
        for (size_t i = 0; i < n; i++) {
            p[i] = piece_bytes(tok, ids[i]);
            lens[i] = tok->pieces[ids[i]].len;
            /* sentencepiece turns ids into pieces and looks them up again */
            rid[i] = piece_to_id(tok, p[i], lens[i]);
        }
        rc = decode_core(tok, p, lens, rid, n, text, len);
    }
    free(p);
    free(lens);
    free(rid);
    return rc;
}

int tokenizer_decode_pieces(const tokenizer *tok, const char *const *pieces, const size_t *lens, size_t n,
                            char **text, size_t *len)
{
    if (!tok || !text || (!pieces && n))
        return err_set(COCHLEA_EINVAL, "tokenizer_decode_pieces: NULL argument");
    *text = NULL;
    size_t b1, b2;
    if (size_mul(n ? n : 1, sizeof(size_t), &b1) || size_mul(n ? n : 1, sizeof(int32_t), &b2))
        return err_set(COCHLEA_ERANGE, "tokenizer_decode_pieces: too many pieces");
    size_t *l = malloc(b1);
    int32_t *ids = malloc(b2);
    int rc;
    if (!l || !ids) {
        rc = err_set(COCHLEA_ENOMEM, "tokenizer_decode_pieces: out of memory");
    } else {
        for (size_t i = 0; i < n; i++) {
            l[i] = lens ? lens[i] : strlen(pieces[i]);
            ids[i] = piece_to_id(tok, (const uint8_t *)pieces[i], l[i]);
        }
        rc = decode_core(tok, (const uint8_t *const *)pieces, l, ids, n, text, len);
    }
    free(l);
    free(ids);
    return rc;
}
