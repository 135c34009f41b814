/* test_tokenizer.c - the SentencePiece tokenizer: protobuf reading (and rejecting corrupt
 * models), the charsmap normaliser, unigram/BPE/word/char encoding, byte fallback, decoding,
 * loading from files and GGUF, and the released OWSM bpe.model when ../shared is present.
 *
 * Models are built here as protobuf bytes (with a small double-array builder for charsmaps),
 * so every expected segmentation below follows from the scores by hand; the comments say why. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "gguf.h"
#include "testutil.h"
#include "tokenizer.h"

#define SP "\xe2\x96\x81" /* U+2581 */
#define FFFD "\xef\xbf\xbd"

/* ---- protobuf writer --------------------------------------------------------------------- */

typedef struct pbw {
    uint8_t *p;
    size_t n, cap;
} pbw;

static void pbw_bytes(pbw *w, const void *d, size_t n)
{
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2 + 64;
        w->p = realloc(w->p, w->cap);
        ck_assert_ptr_nonnull(w->p);
    }
    if (n)
        memcpy(w->p + w->n, d, n);
    w->n += n;
}

static void pbw_varint(pbw *w, uint64_t v)
{
    uint8_t b[10];
    int n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            b[n] |= 0x80;
        n++;
    } while (v);
    pbw_bytes(w, b, (size_t)n);
}

static void pbw_tag(pbw *w, uint32_t num, int wt)
{
    pbw_varint(w, (uint64_t)num << 3 | (uint64_t)wt);
}

static void pbw_len(pbw *w, uint32_t num, const void *d, size_t n)
{
    pbw_tag(w, num, 2);
    pbw_varint(w, n);
    pbw_bytes(w, d, n);
}

static void pbw_uint(pbw *w, uint32_t num, uint64_t v)
{
    pbw_tag(w, num, 0);
    pbw_varint(w, v);
}

static void pbw_float(pbw *w, uint32_t num, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    pbw_tag(w, num, 5);
    pbw_bytes(w, b, 4);
}

/* ---- a double-array (darts-clone layout) builder for precompiled charsmaps ---------------- */

typedef struct rule {
    const char *from, *to;
} rule;

typedef struct tnode {
    int child[256];
    int value; /* offset of the replacement, -1 if no rule ends here */
} tnode;

/* Build "u32 trie bytes | units | NUL-terminated replacements" for the rules. Every node gets a
 * distinct base (so a lookup can only land on its own children) and children at base ^ label;
 * a node with a rule has a leaf unit at base ^ 0 holding value | 1 << 31. */
static uint8_t *build_charsmap(const rule *rules, size_t n_rules, size_t *out_len)
{
    tnode *t = calloc(1024, sizeof *t);
    ck_assert_ptr_nonnull(t);
    int n_nodes = 1;
    for (int i = 0; i < 1024; i++) {
        memset(t[i].child, -1, sizeof t[i].child);
        t[i].value = -1;
    }
    pbw strings = {0};
    for (size_t r = 0; r < n_rules; r++) {
        int node = 0;
        for (const uint8_t *s = (const uint8_t *)rules[r].from; *s; s++) {
            if (t[node].child[*s] < 0)
                t[node].child[*s] = n_nodes++;
            node = t[node].child[*s];
        }
        t[node].value = (int)strings.n;
        pbw_bytes(&strings, rules[r].to, strlen(rules[r].to) + 1);
    }
    enum { CAP = 1 << 14 };
    uint32_t *units = calloc(CAP, sizeof *units);
    uint8_t *used = calloc(CAP, 1), *base_used = calloc(CAP, 1);
    int *queue = malloc(2 * 1024 * sizeof *queue);
    ck_assert(units && used && base_used && queue);
    used[0] = 1;
    int qh = 0, qt = 0;
    queue[qt++] = 0;
    queue[qt++] = 0;
    size_t n_units = 1;
    while (qh < qt) {
        int node = queue[qh++], pos = queue[qh++];
        int labels[257], nl = 0;
        if (t[node].value >= 0)
            labels[nl++] = 0;
        for (int c = 1; c < 256; c++)
            if (t[node].child[c] >= 0)
                labels[nl++] = c;
        if (nl == 0)
            continue;
        int b = 1;
        for (;; b++) {
            ck_assert_int_lt(b, CAP / 2);
            int ok = !base_used[b];
            for (int k = 0; k < nl && ok; k++) {
                int q = b ^ labels[k];
                ok = q != 0 && q < CAP && !used[q];
            }
            if (ok)
                break;
        }
        base_used[b] = 1;
        units[pos] |= (uint32_t)(pos ^ b) << 10;
        for (int k = 0; k < nl; k++) {
            int l = labels[k], q = b ^ l;
            used[q] = 1;
            if ((size_t)q + 1 > n_units)
                n_units = (size_t)q + 1;
            if (l == 0) {
                units[q] = (uint32_t)t[node].value | 0x80000000u;
            } else {
                int ch = t[node].child[l];
                units[q] = (uint32_t)l | (t[ch].value >= 0 ? 1u << 8 : 0);
                queue[qt++] = ch;
                queue[qt++] = q;
            }
        }
    }
    pbw out = {0};
    uint32_t tb = (uint32_t)(n_units * 4);
    uint8_t h[4] = {(uint8_t)tb, (uint8_t)(tb >> 8), (uint8_t)(tb >> 16), (uint8_t)(tb >> 24)};
    pbw_bytes(&out, h, 4);
    for (size_t i = 0; i < n_units; i++) {
        uint8_t u[4] = {(uint8_t)units[i], (uint8_t)(units[i] >> 8), (uint8_t)(units[i] >> 16),
                        (uint8_t)(units[i] >> 24)};
        pbw_bytes(&out, u, 4);
    }
    pbw_bytes(&out, strings.p, strings.n);
    free(strings.p);
    free(t);
    free(units);
    free(used);
    free(base_used);
    free(queue);
    *out_len = out.n;
    return out.p;
}

/* ---- model builder ----------------------------------------------------------------------- */

enum { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER = 4, UNUSED = 5, BYTE = 6 };

typedef struct tpiece {
    const char *piece;
    float score;
    int type;
} tpiece;

typedef struct tmodel {
    const tpiece *pieces;
    size_t n_pieces;
    int model_type;       /* 0: leave out (unigram) */
    int byte_fallback;    /* also appends the 256 byte pieces */
    int suffix;           /* treat_whitespace_as_suffix */
    int dummy, extra, esc; /* normaliser flags: -1 leaves them out (default true) */
    const rule *rules;    /* charsmap rules (NULL: none) */
    size_t n_rules;
    const char *unk_surface;
    const rule *denorm;   /* denormalizer charsmap rules */
    size_t n_denorm;
} tmodel;

static void put_normalizer(pbw *w, uint32_t field, const rule *rules, size_t n_rules, int dummy, int extra,
                           int esc)
{
    pbw ns = {0};
    pbw_len(&ns, 1, "test", 4);
    if (rules) {
        size_t len;
        uint8_t *cm = build_charsmap(rules, n_rules, &len);
        pbw_len(&ns, 2, cm, len);
        free(cm);
    }
    if (dummy >= 0)
        pbw_uint(&ns, 3, (uint64_t)dummy);
    if (extra >= 0)
        pbw_uint(&ns, 4, (uint64_t)extra);
    if (esc >= 0)
        pbw_uint(&ns, 5, (uint64_t)esc);
    pbw_len(w, field, ns.p, ns.n);
    free(ns.p);
}

static void put_piece(pbw *w, const char *piece, float score, int type)
{
    pbw sp = {0};
    pbw_len(&sp, 1, piece, strlen(piece));
    pbw_float(&sp, 2, score);
    if (type != NORMAL)
        pbw_uint(&sp, 3, (uint64_t)type);
    pbw_len(w, 1, sp.p, sp.n);
    free(sp.p);
}

static pbw build_model(const tmodel *m)
{
    pbw w = {0};
    for (size_t i = 0; i < m->n_pieces; i++)
        put_piece(&w, m->pieces[i].piece, m->pieces[i].score, m->pieces[i].type);
    if (m->byte_fallback)
        for (int b = 0; b < 256; b++) {
            char s[8];
            snprintf(s, sizeof s, "<0x%02X>", b);
            put_piece(&w, s, 0.0f, BYTE);
        }
    pbw ts = {0};
    if (m->model_type)
        pbw_uint(&ts, 3, (uint64_t)m->model_type);
    pbw_uint(&ts, 4, m->n_pieces);
    pbw_uint(&ts, 24, (uint64_t)m->suffix);
    pbw_uint(&ts, 35, (uint64_t)m->byte_fallback);
    if (m->unk_surface)
        pbw_len(&ts, 44, m->unk_surface, strlen(m->unk_surface));
    pbw_len(&w, 2, ts.p, ts.n);
    free(ts.p);
    put_normalizer(&w, 3, m->rules, m->n_rules, m->dummy, m->extra, m->esc);
    if (m->denorm)
        put_normalizer(&w, 5, m->denorm, m->n_denorm, 0, 0, 0);
    return w;
}

static tokenizer *load_model(const tmodel *m)
{
    pbw w = build_model(m);
    tokenizer *tok = NULL;
    int rc = tokenizer_load_memory(w.p, w.n, "test.model", &tok);
    ck_assert_msg(rc == 0, "load failed: %s", cochlea_last_error());
    free(w.p);
    return tok;
}

/* Encode and compare with the expected pieces joined by '|' and the expected ids. */
static void expect_encode(const tokenizer *tok, const char *text, size_t len, const char *pieces,
                          const int32_t *ids, size_t n_ids)
{
    tokenizer_output o = {0};
    int rc = tokenizer_encode(tok, text, len, &o);
    ck_assert_msg(rc == 0, "encode failed: %s", cochlea_last_error());
    char got[4096];
    size_t g = 0;
    for (size_t i = 0; i < o.n; i++) {
        if (i)
            got[g++] = '|';
        size_t l = o.offs[i + 1] - o.offs[i];
        ck_assert_uint_lt(g + l, sizeof got - 2);
        memcpy(got + g, o.text + o.offs[i], l);
        g += l;
    }
    got[g] = '\0';
    ck_assert_msg(strcmp(got, pieces) == 0, "text '%s': pieces '%s', expected '%s'", text, got, pieces);
    if (ids) {
        ck_assert_uint_eq(o.n, n_ids);
        for (size_t i = 0; i < n_ids; i++)
            ck_assert_msg(o.ids[i] == ids[i], "text '%s': id %zu is %d, expected %d", text, i, (int)o.ids[i],
                          (int)ids[i]);
    }
    tokenizer_output_free(&o);
}

#define EXPECT(tok, text, pieces) expect_encode(tok, text, strlen(text), pieces, NULL, 0)
#define EXPECT_IDS(tok, text, pieces, ...)                                                                   \
    do {                                                                                                     \
        const int32_t ids_[] = {__VA_ARGS__};                                                                \
        expect_encode(tok, text, strlen(text), pieces, ids_, sizeof ids_ / sizeof ids_[0]);                 \
    } while (0)

static void expect_norm(const tokenizer *tok, const char *text, size_t len, const char *expected, size_t elen)
{
    char *out;
    size_t n;
    int rc = tokenizer_normalize(tok, text, len, &out, &n);
    ck_assert_msg(rc == 0, "normalize failed: %s", cochlea_last_error());
    ck_assert_msg(n == elen && memcmp(out, expected, n) == 0, "normalize: got '%s', expected '%s'",
                  out, expected);
    free(out);
}
#define NORM(tok, text, expected) expect_norm(tok, text, sizeof(text) - 1, expected, sizeof(expected) - 1)

static void expect_decode(const tokenizer *tok, const int32_t *ids, size_t n, const char *expected, size_t elen)
{
    char *text;
    size_t len;
    int rc = tokenizer_decode(tok, ids, n, &text, &len);
    ck_assert_msg(rc == 0, "decode failed: %s", cochlea_last_error());
    ck_assert_msg(len == elen && memcmp(text, expected, len) == 0, "decode: got '%s', expected '%s'", text,
                  expected);
    ck_assert_int_eq(text[len], '\0');
    free(text);
}
#define DECODE(tok, expected, ...)                                                                           \
    do {                                                                                                     \
        const int32_t ids_[] = {__VA_ARGS__};                                                                \
        expect_decode(tok, ids_, sizeof ids_ / sizeof ids_[0], expected, sizeof(expected) - 1);             \
    } while (0)

/* ---- tests ------------------------------------------------------------------------------- */

/* A unigram vocabulary; ids are the array positions. */
static const tpiece uni_pieces[] = {
    {"<unk>", 0, UNKNOWN},   /* 0 */
    {"<s>", 0, CONTROL},     /* 1 */
    {"</s>", 0, CONTROL},    /* 2 */
    {"<sep>", 0, USER},      /* 3 */
    {SP, -2.0f, NORMAL},     /* 4 */
    {SP "a", -1.0f, NORMAL}, /* 5 */
    {"b", -1.0f, NORMAL},    /* 6 */
    {"ab", -1.0f, NORMAL},   /* 7 */
    {"a", -3.0f, NORMAL},    /* 8 */
    {"c", -4.0f, NORMAL},    /* 9 */
    {SP "abc", -2.5f, NORMAL}, /* 10 */
    {"bc", -5.0f, UNUSED},   /* 11 */
    {SP "c", -0.5f, UNUSED}, /* 12 */
    {"x", -2.0f, NORMAL},    /* 13 */
};

static tmodel uni_model(void)
{
    tmodel m = {uni_pieces, sizeof uni_pieces / sizeof uni_pieces[0], 1, 0, 0, -1, -1, -1, NULL, 0, NULL, NULL, 0};
    return m;
}

START_TEST(test_vocab)
{
    tmodel m = uni_model();
    tokenizer *tok = load_model(&m);
    ck_assert_int_eq(tokenizer_vocab_size(tok), 14);
    ck_assert_int_eq(tokenizer_model_type(tok), TOKENIZER_MODEL_UNIGRAM);
    size_t len;
    ck_assert_str_eq(tokenizer_id_to_piece(tok, 7, &len), "ab");
    ck_assert_uint_eq(len, 2);
    ck_assert_str_eq(tokenizer_id_to_piece(tok, 5, NULL), SP "a");
    ck_assert_ptr_null(tokenizer_id_to_piece(tok, -1, NULL));
    ck_assert_ptr_null(tokenizer_id_to_piece(tok, 14, NULL));
    ck_assert_int_eq(tokenizer_piece_to_id(tok, "ab", 2), 7);
    ck_assert_int_eq(tokenizer_piece_to_id(tok, "abc", 2), 7); /* length-limited */
    ck_assert_int_eq(tokenizer_piece_to_id(tok, "</s>", 4), 2);
    ck_assert_int_eq(tokenizer_piece_to_id(tok, "bc", 2), 11);
    ck_assert_int_eq(tokenizer_piece_to_id(tok, "zzz", 3), 0); /* unknown string -> unk */
    ck_assert_int_eq(tokenizer_piece_type(tok, 3), TOKENIZER_PIECE_USER_DEFINED);
    ck_assert_int_eq(tokenizer_piece_type(tok, 11), TOKENIZER_PIECE_UNUSED);
    ck_assert_int_eq(tokenizer_piece_type(tok, 99), 0);
    ck_assert_float_eq(tokenizer_piece_score(tok, 10), -2.5f);
    ck_assert_int_eq(tokenizer_unk_id(tok), 0);
    ck_assert_int_eq(tokenizer_bos_id(tok), 1);
    ck_assert_int_eq(tokenizer_eos_id(tok), 2);
    ck_assert_int_eq(tokenizer_pad_id(tok), -1);
    tokenizer_free(tok);
}
END_TEST

START_TEST(test_unigram_viterbi)
{
    tmodel m = uni_model();
    tokenizer *tok = load_model(&m);
    /* "▁abc": [▁abc] -2.5 beats [▁a][bc]: bc is UNUSED, [▁a][b][c] -6, [▁][ab][c] -7 */
    EXPECT_IDS(tok, "abc", SP "abc", 10);
    /* "▁ab": [▁a][b] = -2 and [▁][ab] = -3 */
    EXPECT_IDS(tok, "ab", SP "a|b", 5, 6);
    /* "▁c": ▁c is UNUSED (skipped though its score is best): [▁][c] = -6 */
    EXPECT_IDS(tok, "c", SP "|c", 4, 9);
    /* user-defined symbol: copied by the normaliser, bonus score in the lattice */
    EXPECT_IDS(tok, "ab<sep>x", SP "a|b|<sep>|x", 5, 6, 3, 13);
    /* unknown characters: a run of them is one <unk> token with the text as its piece */
    EXPECT_IDS(tok, "a\xe2\x82\xac\xe2\x82\xac" "b", SP "a|\xe2\x82\xac\xe2\x82\xac|b", 5, 0, 6);
    EXPECT_IDS(tok, "\xc3\xa9 a", SP "|\xc3\xa9|" SP "a", 4, 0, 5);
    /* invalid UTF-8 becomes U+FFFD per byte, which is unknown here */
    EXPECT_IDS(tok, "a\xff\xfe", SP "a|" FFFD FFFD, 5, 0);
    /* whitespace only, empty */
    expect_encode(tok, "", 0, "", NULL, 0);
    EXPECT(tok, "   ", "");
    tokenizer_free(tok);
}
END_TEST

/* Equal path scores: sentencepiece keeps the first candidate found for an end position
 * (candidates come by increasing start, then increasing length), so [▁][ab] (found from
 * start 3) beats [▁a][b] (found later, from start 4). */
START_TEST(test_unigram_tie)
{
    static const tpiece p[] = {
        {"<unk>", 0, UNKNOWN}, {SP, -1.0f, NORMAL}, {SP "a", -1.0f, NORMAL},
        {"ab", -1.0f, NORMAL}, {"b", -1.0f, NORMAL}, {"a", -1.0f, NORMAL},
    };
    tmodel m = {p, 6, 0, 0, 0, -1, -1, -1, NULL, 0, NULL, NULL, 0};
    tokenizer *tok = load_model(&m);
    EXPECT_IDS(tok, "ab", SP "|ab", 1, 3);
    tokenizer_free(tok);
}
END_TEST

/* User-defined symbols score len * max_score - 0.1, max_score being the best NORMAL score or
 * FLT_MIN if all are negative (sentencepiece starts its maximum there). */
START_TEST(test_unigram_user_bonus)
{
    static const tpiece p[] = {
        {"<unk>", 0, UNKNOWN}, {"<x>", 0, USER}, {SP, 1.0f, NORMAL}, {"<x", 5.0f, NORMAL},
        {">", 5.0f, NORMAL},   {"<", 1.0f, NORMAL}, {"x", 1.0f, NORMAL}, {SP "<x>", 20.0f, NORMAL},
        {"y", 1.0f, NORMAL},
    };
    tmodel m = {p, 9, 0, 0, 0, -1, -1, -1, NULL, 0, NULL, NULL, 0};
    tokenizer *tok = load_model(&m);
    /* max_score 20: "<x>" scores 3 * 20 - 0.1 = 59.9; [▁][y][<x>] 61.9 beats [▁][y][<x][>] 12 */
    EXPECT_IDS(tok, "y<x>", SP "|y|<x>", 2, 8, 1);
    /* [▁][<x>] 60.9 beats [▁<x>] 20 */
    EXPECT_IDS(tok, "<x>", SP "|<x>", 2, 1);
    tokenizer_free(tok);

    /* all scores negative: "<x>" scores 3 * FLT_MIN - 0.1, so [▁][<x>] = -0.11 */
    static const tpiece q[] = {
        {"<unk>", 0, UNKNOWN}, {"<x>", 0, USER}, {SP, -0.01f, NORMAL}, {SP "<x>", -0.12f, NORMAL},
    };
    tmodel m2 = {q, 4, 0, 0, 0, -1, -1, -1, NULL, 0, NULL, NULL, 0};
    tok = load_model(&m2);
    EXPECT_IDS(tok, "<x>", SP "|<x>", 2, 1); /* -0.11 beats -0.12 */
    tokenizer_free(tok);
    static const tpiece r[] = {
        {"<unk>", 0, UNKNOWN}, {"<x>", 0, USER}, {SP, -0.01f, NORMAL}, {SP "<x>", -0.10f, NORMAL},
    };
    m2.pieces = r;
    tok = load_model(&m2);
    EXPECT_IDS(tok, "<x>", SP "<x>", 3); /* -0.10 beats -0.11 */
    tokenizer_free(tok);
}
END_TEST

START_TEST(test_normalizer_whitespace)
{
    tmodel m = uni_model();
    tokenizer *tok = load_model(&m);
    NORM(tok, "  a   b  ", SP "a" SP "b");
    NORM(tok, "", "");
    NORM(tok, " \x20 ", "");
    NORM(tok, "\ta", SP "\ta"); /* no charsmap: a tab is not a space */
    NORM(tok, "\xff", SP FFFD);
    NORM(tok, "\xc0\x80", SP FFFD FFFD);                  /* overlong */
    NORM(tok, "\xe2\x82", SP FFFD FFFD);                  /* truncated */
    NORM(tok, "\xed\xa0\x80", SP FFFD FFFD FFFD);         /* surrogate */
    NORM(tok, "\xf4\x90\x80\x80", SP FFFD FFFD FFFD FFFD); /* above U+10FFFF */
    NORM(tok, FFFD, SP FFFD);                             /* a real U+FFFD stays one */
    NORM(tok, "a\0b", SP "a\0b");
    tokenizer_free(tok);

    m.dummy = 0;
    tok = load_model(&m);
    NORM(tok, " a b ", "a" SP "b");
    tokenizer_free(tok);

    m.dummy = -1;
    m.extra = 0;
    tok = load_model(&m);
    NORM(tok, "  a  ", SP SP SP "a" SP SP);
    NORM(tok, "   ", SP SP SP SP);
    tokenizer_free(tok);

    m.extra = -1;
    m.esc = 0;
    tok = load_model(&m);
    NORM(tok, "a  b ", " a b");
    tokenizer_free(tok);

    m.esc = -1;
    m.suffix = 1;
    tok = load_model(&m);
    NORM(tok, " a  b ", "a" SP "b" SP);
    tokenizer_free(tok);
}
END_TEST

static const rule test_rules[] = {
    {"\xef\xbc\xa1", "A"},       /* full-width A */
    {"\xef\xac\x81", "fi"},      /* ligature fi */
    {"\x01", ""},                /* deletion */
    {"\t", " "},
    {"ab", "X"},
    {"a", "Y"},
    {"\xe3\x80\x80", " "},       /* ideographic space */
    {"e\xcc\x81", "\xc3\xa9"},   /* e + combining acute -> é */
    {"q", " q "},
};

START_TEST(test_normalizer_charsmap)
{
    static const tpiece p[] = {{"<unk>", 0, UNKNOWN}, {"<\xef\xbc\xa1>", 0, USER}, {"A", -1, NORMAL}};
    tmodel m = {p, 3, 0, 0, 0, -1, -1, -1, test_rules, sizeof test_rules / sizeof test_rules[0], NULL, NULL, 0};
    tokenizer *tok = load_model(&m);
    /* longest rule wins ("ab" over "a"); deleted characters leave no trace; a tab maps to a space */
    NORM(tok, "ab a \xef\xbc\xa1\xef\xac\x81\x01\tz", SP "X" SP "Y" SP "Afi" SP "z");
    NORM(tok, "abab", SP "XX");
    NORM(tok, "\xe3\x80\x80\xe3\x80\x80" "a\xe3\x80\x80", SP "Y");
    NORM(tok, "e\xcc\x81t\xc3\xa9", SP "\xc3\xa9t\xc3\xa9");
    /* a replacement's leading space after a space is dropped; its trailing space counts */
    NORM(tok, "x q  y", SP "x" SP "q" SP "y");
    NORM(tok, "\x01\x01", ""); /* the dummy prefix is trailing whitespace then */
    /* user-defined symbols are matched on the raw text and copied verbatim */
    NORM(tok, "\xef\xbc\xa1<\xef\xbc\xa1>", SP "A<\xef\xbc\xa1>");
    tokenizer_free(tok);
}
END_TEST

START_TEST(test_byte_fallback)
{
    static const tpiece p[] = {{"<unk>", 0, UNKNOWN}, {"<s>", 0, CONTROL}, {SP, -1, NORMAL},
                               {"a", -1, NORMAL},     {SP "a", -1, NORMAL}};
    tmodel m = {p, 5, 1, 1, 0, -1, -1, -1, NULL, 0, NULL, NULL, 0};
    tokenizer *tok = load_model(&m);
    ck_assert_int_eq(tokenizer_vocab_size(tok), 5 + 256);
    /* unknown "€" (e2 82 ac) -> three byte pieces; byte piece ids are 5 + byte */
    EXPECT_IDS(tok, "a\xe2\x82\xac" "a", SP "a|<0xE2>|<0x82>|<0xAC>|a", 4, 5 + 0xE2, 5 + 0x82, 5 + 0xAC, 3);
    /* two unknown characters are not merged: each becomes its bytes */
    EXPECT_IDS(tok, "\xc3\xa9\xc3\xa9", SP "|<0xC3>|<0xA9>|<0xC3>|<0xA9>", 2, 5 + 0xC3, 5 + 0xA9, 5 + 0xC3,
               5 + 0xA9);
    DECODE(tok, "a\xe2\x82\xac" "a", 4, 5 + 0xE2, 5 + 0x82, 5 + 0xAC, 3);
    /* an incomplete sequence: U+FFFD per bad byte, then the valid rest */
    DECODE(tok, FFFD "A" FFFD FFFD, 5 + 0xE2, 5 + 0x41, 5 + 0xE2, 5 + 0x82);
    /* byte pieces are raw: a byte-encoded U+2581 stays U+2581 and is not stripped */
    DECODE(tok, SP "a", 5 + 0xE2, 5 + 0x96, 5 + 0x81, 3);
    DECODE(tok, "\0a", 5 + 0x00, 3);
    tokenizer_free(tok);
}
END_TEST

static const tpiece bpe_pieces[] = {
    {"<unk>", 0, UNKNOWN}, /* 0 */
    {"<u>", 0, USER},      /* 1 */
    {"bc", 0, NORMAL},     /* 2: the first merge */
    {"ab", -1, NORMAL},    /* 3 */
    {"aa", -2, NORMAL},    /* 4 */
    {"xy", -3, UNUSED},    /* 5 */
    {"xyz", -4, NORMAL},   /* 6 */
    {"a", -5, NORMAL},     /* 7 */
    {"b", -6, NORMAL},     /* 8 */
    {"c", -7, NORMAL},     /* 9 */
    {"x", -8, NORMAL},     /* 10 */
    {"y", -9, NORMAL},     /* 11 */
    {"z", -10, NORMAL},    /* 12 */
    {"abc", -11, NORMAL},  /* 13: only reachable through ab + c */
};

START_TEST(test_bpe)
{
    tmodel m = {bpe_pieces, 14, 2, 0, 0, 0, -1, -1, NULL, 0, NULL, NULL, 0}; /* no dummy prefix */
    tokenizer *tok = load_model(&m);
    /* "abc": bc (score 0) merges before ab (-1); then a + bc = "abc" is a piece: merged */
    EXPECT_IDS(tok, "abc", "abc", 13);
    /* "abbc": ab and bc both merge; ab + bc = "abbc" is not a piece */
    EXPECT_IDS(tok, "abbc", "ab|bc", 3, 2);
    /* equal scores: the leftmost pair merges first */
    EXPECT_IDS(tok, "aaa", "aa|a", 4, 7);
    EXPECT_IDS(tok, "aaaa", "aa|aa", 4, 4);
    /* UNUSED "xy" still merges (into "xyz"); alone it is split back into x + y */
    EXPECT_IDS(tok, "xyz", "xyz", 6);
    EXPECT_IDS(tok, "xy", "x|y", 10, 11);
    /* user-defined symbols are frozen; unknown characters merge into one <unk> */
    EXPECT_IDS(tok, "a<u>bc", "a|<u>|bc", 7, 1, 2);
    EXPECT_IDS(tok, "a\xe2\x82\xac\xe2\x82\xac", "a|\xe2\x82\xac\xe2\x82\xac", 7, 0);
    tokenizer_free(tok);
}
END_TEST

START_TEST(test_word_char)
{
    static const tpiece p[] = {{"<unk>", 0, UNKNOWN}, {"<u>", 0, USER}, {SP "hi", -1, NORMAL},
                               {SP "you", -1, NORMAL}, {SP, -1, NORMAL},  {"h", -1, NORMAL},
                               {"i", -1, NORMAL}};
    tmodel m = {p, 7, 3, 0, 0, -1, -1, -1, NULL, 0, NULL, NULL, 0};
    tokenizer *tok = load_model(&m);
    EXPECT_IDS(tok, "hi you  there", SP "hi|" SP "you|" SP "there", 2, 3, 0);
    tokenizer_free(tok);
    m.model_type = 4;
    tok = load_model(&m);
    EXPECT_IDS(tok, "hi<u>q", SP "|h|i|<u>|q", 4, 5, 6, 1, 0);
    tokenizer_free(tok);
}
END_TEST

START_TEST(test_decode)
{
    tmodel m = uni_model();
    tokenizer *tok = load_model(&m);
    DECODE(tok, "ab abc", 5, 6, 10);
    /* control pieces vanish; the leading U+2581 is stripped from the first visible piece */
    DECODE(tok, "abc", 1, 10, 2);
    /* with remove_extra_whitespaces, every leading "▁" piece is stripped while the text is empty */
    DECODE(tok, "a", 4, 4, 5);
    DECODE(tok, " \xe2\x81\x87  a", 0, 5);
    DECODE(tok, "<sep>a", 3, 8);
    DECODE(tok, "", 1);
    expect_decode(tok, NULL, 0, "", 0);
    /* DecodePieces: unknown strings are copied; the <unk> piece gives the unknown surface */
    const char *pieces[] = {SP "zz", "<unk>", SP "a", "<s>", "q" SP "q"};
    char *text;
    size_t len;
    ck_assert_int_eq(tokenizer_decode_pieces(tok, pieces, NULL, 5, &text, &len), 0);
    ck_assert_str_eq(text, SP "zz \xe2\x81\x87  aq" SP "q"); /* unknown strings are copied raw */
    ck_assert_uint_eq(len, strlen(text));
    free(text);
    int32_t bad[] = {5, 14};
    ck_assert_int_eq(tokenizer_decode(tok, bad, 2, &text, &len), COCHLEA_ERANGE);
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "14"));
    bad[1] = -1;
    ck_assert_int_eq(tokenizer_decode(tok, bad, 2, &text, &len), COCHLEA_ERANGE);
    tokenizer_free(tok);

    /* only add_dummy_prefix: a single leading "▁" is stripped */
    m.extra = 0;
    m.unk_surface = "<?>";
    tok = load_model(&m);
    DECODE(tok, " a", 4, 5);
    DECODE(tok, "<?> a", 0, 5);
    tokenizer_free(tok);

    /* neither: nothing is stripped */
    m.dummy = 0;
    tok = load_model(&m);
    DECODE(tok, " a", 5);
    tokenizer_free(tok);
}
END_TEST

/* Self-test samples in the model are checked at load, as sentencepiece does. */
START_TEST(test_self_test)
{
    tmodel m = uni_model();
    for (int good = 1; good >= 0; good--) {
        pbw w = build_model(&m), st = {0}, sample = {0};
        pbw_len(&sample, 1, "abc ab", 6);
        const char *expected = good ? SP "abc " SP "a b" : SP "abc " SP "ab";
        pbw_len(&sample, 2, expected, strlen(expected));
        pbw_len(&st, 1, sample.p, sample.n);
        pbw_len(&w, 4, st.p, st.n);
        tokenizer *tok;
        int rc = tokenizer_load_memory(w.p, w.n, "selftest.model", &tok);
        if (good) {
            ck_assert_msg(rc == 0, "%s", cochlea_last_error());
            tokenizer_free(tok);
        } else {
            ck_assert_int_eq(rc, COCHLEA_EFORMAT);
            ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "self-test sample 0"));
        }
        free(w.p);
        free(st.p);
        free(sample.p);
    }
}
END_TEST

START_TEST(test_denormalizer)
{
    static const rule den[] = {{"ab", "X"}, {",", ";"}};
    tmodel m = uni_model();
    m.denorm = den;
    m.n_denorm = 2;
    tokenizer *tok = load_model(&m);
    DECODE(tok, "X", 5, 6);
    DECODE(tok, "X Xc", 5, 6, 10);
    tokenizer_free(tok);
}
END_TEST

/* Load `bytes` expecting failure with code `code` and `msg` in the message. */
static void expect_bad(const pbw *w, int code, const char *msg)
{
    tokenizer *tok = (tokenizer *)1;
    int rc = tokenizer_load_memory(w->p, w->n, "bad.model", &tok);
    ck_assert_msg(rc == code, "expected %d, got %d (%s)", code, rc, cochlea_last_error());
    ck_assert_ptr_null(tok);
    ck_assert_msg(strstr(cochlea_last_error(), msg) && strstr(cochlea_last_error(), "bad.model"),
                  "message '%s' lacks '%s'", cochlea_last_error(), msg);
}

START_TEST(test_corrupt_crafted)
{
    pbw w = {0};
    /* no pieces at all */
    expect_bad(&w, COCHLEA_EFORMAT, "unk is not defined");
    /* a varint longer than 10 bytes */
    static const uint8_t longvar[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    pbw_bytes(&w, longvar, sizeof longvar);
    expect_bad(&w, COCHLEA_EFORMAT, "longer than 64 bits");
    w.n = 0;
    /* a length past the end */
    static const uint8_t longlen[] = {0x0a, 0x10, 0x0a, 0x01, 'a'};
    pbw_bytes(&w, longlen, sizeof longlen);
    expect_bad(&w, COCHLEA_EFORMAT, "only 3 bytes are left");
    w.n = 0;
    /* a group */
    static const uint8_t group[] = {0x0b, 0x0c};
    pbw_bytes(&w, group, sizeof group);
    expect_bad(&w, COCHLEA_EFORMAT, "group wire type");
    w.n = 0;
    /* pieces sent as a varint */
    pbw_uint(&w, 1, 5);
    expect_bad(&w, COCHLEA_EFORMAT, "ModelProto.pieces (field 1)");
    w.n = 0;
    /* field number 0 */
    static const uint8_t zero[] = {0x02, 0x00};
    pbw_bytes(&w, zero, sizeof zero);
    expect_bad(&w, COCHLEA_EFORMAT, "invalid field tag");
    w.n = 0;
    /* a truncated float inside a piece */
    static const uint8_t badfloat[] = {0x0a, 0x03, 0x15, 0x00, 0x00};
    pbw_bytes(&w, badfloat, sizeof badfloat);
    expect_bad(&w, COCHLEA_EFORMAT, "pieces[0]: field 2");
    w.n = 0;
    /* bad piece type */
    put_piece(&w, "<unk>", 0, 9);
    expect_bad(&w, COCHLEA_EFORMAT, "not a piece type");
    w.n = 0;
    /* empty piece */
    put_piece(&w, "<unk>", 0, UNKNOWN);
    put_piece(&w, "", 0, NORMAL);
    expect_bad(&w, COCHLEA_EFORMAT, "piece 1 is empty");
    w.n = 0;
    /* duplicate pieces; two unknowns */
    put_piece(&w, "<unk>", 0, UNKNOWN);
    put_piece(&w, "a", 0, NORMAL);
    put_piece(&w, "a", 0, USER);
    expect_bad(&w, COCHLEA_EFORMAT, "already defined as piece 1");
    w.n = 0;
    put_piece(&w, "<unk>", 0, UNKNOWN);
    put_piece(&w, "<unk2>", 0, UNKNOWN);
    expect_bad(&w, COCHLEA_EFORMAT, "both of type UNKNOWN");
    w.n = 0;
    /* a byte piece without byte_fallback; byte_fallback without all byte pieces; a bad name */
    put_piece(&w, "<unk>", 0, UNKNOWN);
    put_piece(&w, "a", 0, NORMAL);
    put_piece(&w, "<0x41>", 0, BYTE);
    expect_bad(&w, COCHLEA_EFORMAT, "byte_fallback is false");
    pbw ts = {0};
    pbw_uint(&ts, 35, 1);
    pbw_len(&w, 2, ts.p, ts.n);
    expect_bad(&w, COCHLEA_EFORMAT, "no byte piece <0x00>");
    w.n = 0;
    put_piece(&w, "<unk>", 0, UNKNOWN);
    put_piece(&w, "<0xZZ>", 0, BYTE);
    pbw_len(&w, 2, ts.p, ts.n);
    expect_bad(&w, COCHLEA_EFORMAT, "not of the form <0xXX>");
    w.n = 0;
    /* model_type out of range */
    put_piece(&w, "<unk>", 0, UNKNOWN);
    put_piece(&w, "a", 0, NORMAL);
    ts.n = 0;
    pbw_uint(&ts, 3, 7);
    pbw_len(&w, 2, ts.p, ts.n);
    expect_bad(&w, COCHLEA_EFORMAT, "model_type is 7");
    w.n = 0;
    /* unigram without normal pieces */
    put_piece(&w, "<unk>", 0, UNKNOWN);
    expect_bad(&w, COCHLEA_EFORMAT, "without normal pieces");
    /* charsmaps: too short, trie larger than the blob */
    pbw ns = {0};
    pbw_len(&ns, 2, "\x01\x00\x00", 3);
    put_piece(&w, "a", 0, NORMAL);
    size_t keep = w.n;
    pbw_len(&w, 3, ns.p, ns.n);
    expect_bad(&w, COCHLEA_EFORMAT, "too short");
    w.n = keep;
    ns.n = 0;
    pbw_len(&ns, 2, "\x08\x00\x00\x00\x01\x02\x03\x04", 8);
    pbw_len(&w, 3, ns.p, ns.n);
    expect_bad(&w, COCHLEA_EFORMAT, "does not fit");
    /* a trainer_spec field with the wrong wire type */
    w.n = keep;
    ts.n = 0;
    pbw_len(&ts, 35, "x", 1);
    pbw_len(&w, 2, ts.p, ts.n);
    expect_bad(&w, COCHLEA_EFORMAT, "byte_fallback (field 35)");
    free(ns.p);
    free(ts.p);
    free(w.p);
}
END_TEST

/* A charsmap rule whose value points past the strings: encoding reports it, never crashes. */
START_TEST(test_corrupt_charsmap_value)
{
    static const rule r[] = {{"a", "b"}};
    size_t len;
    uint8_t *cm = build_charsmap(r, 1, &len);
    /* the leaf unit holds value | 1 << 31: find it and point it far away */
    int patched = 0;
    for (size_t i = 4; i + 4 <= len - 2; i += 4)
        if (cm[i + 3] == 0x80) {
            cm[i] = 0x40;
            patched = 1;
        }
    ck_assert(patched);
    pbw w = {0};
    put_piece(&w, "<unk>", 0, UNKNOWN);
    put_piece(&w, "b", 0, NORMAL);
    pbw ns = {0};
    pbw_len(&ns, 2, cm, len);
    pbw_len(&w, 3, ns.p, ns.n);
    tokenizer *tok;
    ck_assert_int_eq(tokenizer_load_memory(w.p, w.n, "cm.model", &tok), 0);
    tokenizer_output o = {0};
    ck_assert_int_eq(tokenizer_encode(tok, "xa", 2, &o), COCHLEA_EFORMAT);
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "rule value 64"));
    ck_assert_int_eq(tokenizer_encode(tok, "xb", 2, &o), 0);
    ck_assert_uint_eq(o.n, 2); /* "▁x" (unknown, merged) and "b" */
    tokenizer_output_free(&o);
    tokenizer_free(tok);
    free(cm);
    free(ns.p);
    free(w.p);
}
END_TEST

/* Exercise a model that loaded (perhaps from corrupt bytes): encoding and decoding must work or
 * fail cleanly. */
static void exercise(tokenizer *tok, test_rng *rng)
{
    static const char *texts[] = {"ab abc", "  a\tb  ", "\xef\xbc\xa1\xef\xac\x81 x\xff", "<sep>ab<u>", "q e\xcc\x81"};
    tokenizer_output o = {0};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int rc = tokenizer_encode(tok, texts[i], strlen(texts[i]), &o);
        ck_assert(rc == 0 || rc == COCHLEA_EFORMAT || rc == COCHLEA_EINVAL);
        if (rc == 0) {
            char *text;
            ck_assert_int_eq(tokenizer_decode(tok, o.ids, o.n, &text, NULL), 0);
            free(text);
        }
    }
    int32_t ids[8];
    int32_t v = tokenizer_vocab_size(tok);
    for (int k = 0; k < 8; k++)
        ids[k] = v > 0 ? test_rng_int(rng, 0, v - 1) : 0;
    char *text;
    if (v > 0 && tokenizer_decode(tok, ids, 8, &text, NULL) == 0)
        free(text);
    tokenizer_output_free(&o);
}

static pbw rich_model(void)
{
    static const tpiece p[] = {
        {"<unk>", 0, UNKNOWN}, {"<s>", 0, CONTROL}, {"<sep>", 0, USER}, {SP, -2, NORMAL}, {SP "a", -1, NORMAL},
        {"b", -1, NORMAL},     {"ab", -1, NORMAL},  {"a", -3, NORMAL},  {"c", -4, UNUSED}, {"A", -1, NORMAL},
    };
    tmodel m = {p, 10, 1, 1, 0, -1, -1, -1, test_rules, sizeof test_rules / sizeof test_rules[0], "?", test_rules, 2};
    return build_model(&m);
}

START_TEST(test_corrupt_truncated)
{
    pbw w = rich_model();
    test_rng rng = {7};
    size_t failed = 0;
    for (size_t n = 0; n < w.n; n++) {
        tokenizer *tok;
        int rc = tokenizer_load_memory(w.p, n, "trunc.model", &tok);
        if (rc) {
            ck_assert_int_eq(rc, COCHLEA_EFORMAT);
            ck_assert(strstr(cochlea_last_error(), "trunc.model") != NULL);
            failed++;
        } else {
            exercise(tok, &rng);
            tokenizer_free(tok);
        }
    }
    /* only cuts at message boundaries can leave a valid model; most cuts are inside a field */
    ck_assert_msg(failed * 10 >= w.n * 9, "%zu of %zu truncations rejected", failed, w.n);
    free(w.p);
}
END_TEST

START_TEST(test_corrupt_mutated)
{
    pbw w = rich_model();
    test_rng rng = {11};
    uint8_t *buf = malloc(w.n + 16);
    ck_assert_ptr_nonnull(buf);
    int n_ok = 0, n_bad = 0;
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = w.n;
        memcpy(buf, w.p, n);
        int kind = test_rng_int(&rng, 0, 2);
        int edits = test_rng_int(&rng, 1, 4);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)test_rng_int(&rng, 0, (int)n - 1);
            if (kind == 0)
                buf[at] ^= (uint8_t)(1u << test_rng_int(&rng, 0, 7));
            else if (kind == 1)
                buf[at] = (uint8_t)test_rng_int(&rng, 0, 255);
            else if (n > 1) {
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
            }
        }
        tokenizer *tok;
        int rc = tokenizer_load_memory(buf, n, "mut.model", &tok);
        if (rc) {
            ck_assert_msg(rc == COCHLEA_EFORMAT || rc == COCHLEA_ENOMEM, "rc %d: %s", rc, cochlea_last_error());
            n_bad++;
        } else {
            exercise(tok, &rng);
            tokenizer_free(tok);
            n_ok++;
        }
    }
    ck_assert_int_gt(n_bad, 300);
    ck_assert_int_gt(n_ok, 100);
    free(buf);
    free(w.p);
}
END_TEST

START_TEST(test_load_file_and_gguf)
{
    tmodel m = uni_model();
    pbw w = build_model(&m);
    char dir[] = "/tmp/test_tokenizer_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], gpath[256], gbad[256];
    snprintf(path, sizeof path, "%s/t.model", dir);
    snprintf(gpath, sizeof gpath, "%s/t.gguf", dir);
    snprintf(gbad, sizeof gbad, "%s/bad.gguf", dir);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(w.p, 1, w.n, f), w.n);
    fclose(f);
    tokenizer *tok;
    ck_assert_int_eq(tokenizer_load(path, &tok), 0);
    EXPECT_IDS(tok, "abc", SP "abc", 10);
    tokenizer_free(tok);

    gguf_writer *gw;
    ck_assert_int_eq(gguf_writer_new(&gw), 0);
    ck_assert_int_eq(gguf_writer_set_str(gw, "general.architecture", "owsm_ctc"), 0);
    ck_assert_int_eq(gguf_writer_set_strn(gw, TOKENIZER_GGUF_KEY, (const char *)w.p, w.n), 0);
    ck_assert_int_eq(gguf_writer_write(gw, gpath), 0);
    gguf_writer_free(gw);
    ck_assert_int_eq(tokenizer_load_gguf(gpath, &tok), 0);
    ck_assert_int_eq(tokenizer_vocab_size(tok), 14);
    EXPECT_IDS(tok, "ab", SP "a|b", 5, 6);
    tokenizer_free(tok);

    /* the converter's form: an array of u8 */
    ck_assert_int_eq(gguf_writer_new(&gw), 0);
    ck_assert_int_eq(gguf_writer_set_arr(gw, TOKENIZER_GGUF_KEY, GGUF_TYPE_U8, w.p, w.n), 0);
    ck_assert_int_eq(gguf_writer_write(gw, gpath), 0);
    gguf_writer_free(gw);
    ck_assert_int_eq(tokenizer_load_gguf(gpath, &tok), 0);
    EXPECT_IDS(tok, "c", SP "|c", 4, 9);
    tokenizer_free(tok);

    /* absent key, wrong type */
    ck_assert_int_eq(gguf_writer_new(&gw), 0);
    ck_assert_int_eq(gguf_writer_set_str(gw, "general.architecture", "owsm_ctc"), 0);
    ck_assert_int_eq(gguf_writer_write(gw, gbad), 0);
    gguf_writer_free(gw);
    ck_assert_int_eq(tokenizer_load_gguf(gbad, &tok), COCHLEA_EFORMAT);
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), TOKENIZER_GGUF_KEY));
    ck_assert_int_eq(gguf_writer_new(&gw), 0);
    ck_assert_int_eq(gguf_writer_set_u32(gw, TOKENIZER_GGUF_KEY, 7), 0);
    ck_assert_int_eq(gguf_writer_write(gw, gbad), 0);
    gguf_writer_free(gw);
    ck_assert_int_eq(tokenizer_load_gguf(gbad, &tok), COCHLEA_EFORMAT);
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "has type u32"));

    ck_assert_int_eq(tokenizer_load("/nonexistent/x.model", &tok), COCHLEA_EIO);
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "/nonexistent/x.model"));
    unlink(path);
    unlink(gpath);
    unlink(gbad);
    rmdir(dir);
    free(w.p);
}
END_TEST

/* The released OWSM-CTC bpe.model (../shared/owsm): expectations from python3-sentencepiece. */
START_TEST(test_owsm_model)
{
    const char *shared = getenv("COCHLEA_SHARED");
    if (!shared || !*shared) {
        printf("test_owsm_model: SKIPPED (COCHLEA_SHARED is not set)\n");
        return;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/owsm/bpe.model", shared);
    if (access(path, R_OK) != 0) {
        printf("test_owsm_model: SKIPPED (%s is absent)\n", path);
        return;
    }
    tokenizer *tok;
    ck_assert_msg(tokenizer_load(path, &tok) == 0, "%s", cochlea_last_error());
    ck_assert_int_eq(tokenizer_vocab_size(tok), 50000);
    ck_assert_int_eq(tokenizer_model_type(tok), TOKENIZER_MODEL_UNIGRAM);
    /* owsm-ctc.md 5.1: sp id = model id + 1 for model ids 2..49998 */
    ck_assert_str_eq(tokenizer_id_to_piece(tok, 182, NULL), SP);
    ck_assert_str_eq(tokenizer_id_to_piece(tok, 183, NULL), ",");
    ck_assert_str_eq(tokenizer_id_to_piece(tok, 184, NULL), SP "the");
    ck_assert_int_eq(tokenizer_piece_to_id(tok, "<eng>", 5), 32);
    ck_assert_int_eq(tokenizer_piece_to_id(tok, "<asr>", 5), 156);
    ck_assert_int_eq(tokenizer_piece_type(tok, 3), TOKENIZER_PIECE_USER_DEFINED);
    const char text[] = "Hello  world<eng> \xef\xbc\xa8\xef\xbd\x85\xef\xbd\x8c\xef\xbd\x8c\xef\xbd\x8f \xc3\xa9";
    EXPECT_IDS(tok, text, SP "He|llo|" SP "world|<eng>|" SP "He|llo|" SP "\xc3\xa9", 763, 8529, 575, 32, 763, 8529,
               1864);
    EXPECT_IDS(tok, "Hello \xff\xfe world", SP "He|llo|" SP "|" FFFD FFFD "|" SP "world", 763, 8529, 182, 0, 575);
    DECODE(tok, " \xe2\x81\x87 <na>\xd0\xbc \xe2\x81\x87  \xe2\x81\x87 ", 0, 1, 2, 3, 500, 0, 0);
    tokenizer_free(tok);

    /* truncations and bit flips of the real file */
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *blob = malloc((size_t)size);
    ck_assert_ptr_nonnull(blob);
    ck_assert_uint_eq(fread(blob, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    test_rng rng = {3};
    for (int k = 0; k < 60; k++) {
        size_t n = (size_t)test_rng_int(&rng, 0, (int)size - 1);
        if (tokenizer_load_memory(blob, n, "owsm-trunc", &tok) == 0) {
            exercise(tok, &rng);
            tokenizer_free(tok);
        } else {
            ck_assert(strstr(cochlea_last_error(), "owsm-trunc") != NULL);
        }
    }
    for (int k = 0; k < 60; k++) {
        size_t at = (size_t)test_rng_int(&rng, 0, (int)size - 1);
        uint8_t old = blob[at];
        blob[at] ^= (uint8_t)(1u << test_rng_int(&rng, 0, 7));
        if (tokenizer_load_memory(blob, (size_t)size, "owsm-flip", &tok) == 0) {
            exercise(tok, &rng);
            tokenizer_free(tok);
        }
        blob[at] = old;
    }
    free(blob);
}
END_TEST

static Suite *tokenizer_suite(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_vocab);
    tcase_add_test(tc, test_unigram_viterbi);
    tcase_add_test(tc, test_unigram_tie);
    tcase_add_test(tc, test_unigram_user_bonus);
    tcase_add_test(tc, test_normalizer_whitespace);
    tcase_add_test(tc, test_normalizer_charsmap);
    tcase_add_test(tc, test_byte_fallback);
    tcase_add_test(tc, test_bpe);
    tcase_add_test(tc, test_word_char);
    tcase_add_test(tc, test_decode);
    tcase_add_test(tc, test_denormalizer);
    tcase_add_test(tc, test_self_test);
    tcase_add_test(tc, test_corrupt_crafted);
    tcase_add_test(tc, test_corrupt_charsmap_value);
    tcase_add_test(tc, test_corrupt_truncated);
    tcase_add_test(tc, test_corrupt_mutated);
    tcase_add_test(tc, test_load_file_and_gguf);
    tcase_add_test(tc, test_owsm_model);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(tokenizer_suite());
}
