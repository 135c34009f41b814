/* test_lm_vocab.c - the GGUF text LM tokenizers (src/lm/vocab.c): hand-built tiny SPM ("llama")
 * and byte-level BPE ("gpt2") vocabularies with expected ids worked out by hand from the scores
 * and merge ranks, round trips, byte fallback, special tokens, streaming decoding of UTF-8
 * characters split across byte tokens, and corrupt keys rejected with messages.
 *
 * With arguments it is the driver of tests/vocab_parity.py instead:
 *   test_lm_vocab --encode MODEL.gguf [--add-special] [--parse-special] < LINES
 * prints, for each '\n'-separated input line, "ids<TAB>hex(decoded bytes)\n" and fails (exit 1)
 * if streaming decoding ever differs from lm_vocab_decode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gguf.h"
#include "lm/vocab.h"
#include "testutil.h"

#define SP "\xe2\x96\x81" /* U+2581 */

/* ---- building vocabularies ------------------------------------------------------------------ */

typedef struct built {
    void *mem;
    gguf_file *f;
} built;

static void built_free(built *b)
{
    gguf_close(b->f);
    free(b->mem);
    b->f = NULL;
    b->mem = NULL;
}

/* Write w into memory and open it (the writer is freed). */
static void finish(gguf_writer *w, built *b)
{
    size_t size;
    ck_assert_int_eq(gguf_writer_write_memory(w, &b->mem, &size), COCHLEA_OK);
    gguf_writer_free(w);
    ck_assert_int_eq(gguf_open_memory(b->mem, size, &b->f), COCHLEA_OK);
}

/* SPM: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then the normal tokens below, then a
 * user-defined <tag> and a control <ctl>. */
enum { SPM_SPACE = 259, SPM_A, SPM_B, SPM_C, SPM_AB, SPM_BC, SPM_SA, SPM_SAB, SPM_TAG, SPM_CTL, SPM_N };

static gguf_writer *spm_writer(void)
{
    static char bytes[256][8];
    const char *tok[SPM_N];
    float score[SPM_N];
    int32_t type[SPM_N];
    tok[0] = "<unk>", type[0] = 2;
    tok[1] = "<s>", type[1] = 3;
    tok[2] = "</s>", type[2] = 3;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tok[3 + b] = bytes[b];
        type[3 + b] = 6;
    }
    const char *normal[] = {SP, "a", "b", "c", "ab", "bc", SP "a", SP "ab"};
    /* "bc" outscores "ab", so "abc" becomes a|bc, not ab|c */
    const float sc[] = {-1, -2, -3, -4, -5, -1.5f, -6, -7};
    for (int i = 0; i < 8; i++) {
        tok[SPM_SPACE + i] = normal[i];
        type[SPM_SPACE + i] = 1;
    }
    tok[SPM_TAG] = "<tag>", type[SPM_TAG] = 4;
    tok[SPM_CTL] = "<ctl>", type[SPM_CTL] = 3;
    for (int i = 0; i < SPM_N; i++)
        score[i] = i >= SPM_SPACE && i < SPM_TAG ? sc[i - SPM_SPACE] : 0.0f;
    gguf_writer *w;
    ck_assert_int_eq(gguf_writer_new(&w), COCHLEA_OK);
    ck_assert_int_eq(gguf_writer_set_str(w, "general.architecture", "llama"), 0);
    ck_assert_int_eq(gguf_writer_set_str(w, "tokenizer.ggml.model", "llama"), 0);
    ck_assert_int_eq(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tok, NULL, SPM_N), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_F32, score, SPM_N), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_I32, type, SPM_N), 0);
    ck_assert_int_eq(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1), 0);
    ck_assert_int_eq(gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2), 0);
    ck_assert_int_eq(gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0), 0);
    ck_assert_int_eq(gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 1), 0);
    return w;
}

/* BPE: ids 0..255 are the GPT-2 mapped characters of bytes 0..255, then the merge results. */
static const char *const bpe_merges[] = {"h e", "l l", "he ll", "hell o", "\xc4\xa0 w", "o r", "\xc4\xa0w or",
                                         "l d", "t '", "\xc4\xa0 \xc4\xa0", "3 4", "1 2", "12 3", "4 5"};
#define BPE_NM 14
enum { BPE_HE = 256, BPE_LL, BPE_HELL, BPE_HELLO, BPE_GW, BPE_OR, BPE_GWOR, BPE_LD, BPE_TQ, BPE_GG, BPE_34,
       BPE_12, BPE_123, BPE_45, BPE_EOT, BPE_USER, BPE_N };

/* GPT-2 byte -> code point (as in tests/ref/bpe_ref.py). */
static unsigned gpt2_cp(int b)
{
    int n = 0;
    for (int x = 0; x < 256; x++) {
        int printable = (x >= '!' && x <= '~') || (x >= 0xa1 && x <= 0xac) || x >= 0xae;
        if (x == b)
            return printable ? (unsigned)x : 256u + (unsigned)n;
        if (!printable)
            n++;
    }
    return 0;
}

static gguf_writer *bpe_writer(const char *pre)
{
    static char bytes[256][4];
    static char merged[BPE_NM][16];
    const char *tok[BPE_N];
    int32_t type[BPE_N];
    for (int b = 0; b < 256; b++) {
        unsigned c = gpt2_cp(b);
        if (c < 0x80)
            bytes[b][0] = (char)c, bytes[b][1] = 0;
        else
            bytes[b][0] = (char)(0xc0 | c >> 6), bytes[b][1] = (char)(0x80 | (c & 0x3f)), bytes[b][2] = 0;
        tok[b] = bytes[b];
        type[b] = 1;
    }
    for (int i = 0; i < BPE_NM; i++) { /* the merge's two halves joined */
        const char *m = bpe_merges[i], *sp = strchr(m + 1, ' ');
        snprintf(merged[i], sizeof merged[i], "%.*s%s", (int)(sp - m), m, sp + 1);
        tok[256 + i] = merged[i];
        type[256 + i] = 1;
    }
    tok[BPE_EOT] = "<|endoftext|>", type[BPE_EOT] = 3;
    tok[BPE_USER] = "<U>", type[BPE_USER] = 4;
    gguf_writer *w;
    ck_assert_int_eq(gguf_writer_new(&w), COCHLEA_OK);
    ck_assert_int_eq(gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"), 0);
    if (pre)
        ck_assert_int_eq(gguf_writer_set_str(w, "tokenizer.ggml.pre", pre), 0);
    ck_assert_int_eq(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tok, NULL, BPE_N), 0);
    ck_assert_int_eq(gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_I32, type, BPE_N), 0);
    ck_assert_int_eq(gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", bpe_merges, NULL, BPE_NM), 0);
    ck_assert_int_eq(gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", BPE_EOT), 0);
    ck_assert_int_eq(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", BPE_EOT), 0);
    return w;
}

static lm_vocab *load(gguf_writer *w, built *b)
{
    finish(w, b);
    lm_vocab *v = NULL;
    int rc = lm_vocab_load(b->f, 0, &v);
    ck_assert_msg(rc == COCHLEA_OK, "load: %s", cochlea_last_error());
    return v;
}

/* Encode and compare with the expected ids. */
static void expect_ids(const lm_vocab *v, const char *text, size_t len, unsigned flags, const int32_t *want,
                       size_t n)
{
    lm_tokens t = {0};
    int rc = lm_vocab_encode(v, text, len, flags, &t);
    ck_assert_msg(rc == COCHLEA_OK, "encode '%s': %s", text, cochlea_last_error());
    char got[512] = "", exp[512] = "";
    for (size_t i = 0; i < t.n; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%d ", (int)t.ids[i]);
    for (size_t i = 0; i < n; i++)
        snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%d ", (int)want[i]);
    ck_assert_msg(t.n == n && (n == 0 || memcmp(t.ids, want, n * sizeof *want) == 0), "encode '%s': got [%s], want [%s]",
                  text, got, exp);
    lm_tokens_free(&t);
}
#define EXPECT(v, text, flags, ...)                                                                                    \
    do {                                                                                                               \
        const int32_t want_[] = {__VA_ARGS__};                                                                         \
        expect_ids(v, text, strlen(text), flags, want_, sizeof want_ / sizeof want_[0]);                               \
    } while (0)

/* decode(ids) must be `want`, and so must the streamed pieces joined. */
static void expect_text(const lm_vocab *v, const int32_t *ids, size_t n, unsigned flags, const char *want, size_t wl)
{
    char *t;
    size_t len;
    ck_assert_int_eq(lm_vocab_decode(v, ids, n, flags, &t, &len), COCHLEA_OK);
    ck_assert_msg(len == wl && memcmp(t, want, wl) == 0, "decode: got '%.*s' want '%.*s'", (int)len, t, (int)wl, want);
    free(t);
    lm_vocab_stream s;
    lm_vocab_stream_init(&s, flags);
    char acc[1024];
    size_t na = 0;
    for (size_t i = 0; i < n; i++) {
        const char *o;
        size_t ol;
        ck_assert_int_eq(lm_vocab_stream_push(v, &s, ids[i], &o, &ol), COCHLEA_OK);
        ck_assert_uint_le(na + ol, sizeof acc);
        memcpy(acc + na, o, ol);
        na += ol;
    }
    const char *o;
    size_t ol;
    ck_assert_int_eq(lm_vocab_stream_flush(&s, &o, &ol), COCHLEA_OK);
    memcpy(acc + na, o, ol);
    na += ol;
    ck_assert_msg(na == wl && memcmp(acc, want, wl) == 0, "stream: got '%.*s'", (int)na, acc);
    lm_vocab_stream_free(&s);
}

static void round_trip(const lm_vocab *v, const char *text, size_t len, const char *want, size_t wl)
{
    lm_tokens t = {0};
    ck_assert_int_eq(lm_vocab_encode(v, text, len, 0, &t), COCHLEA_OK);
    expect_text(v, t.ids, t.n, 0, want, wl);
    lm_tokens_free(&t);
}

/* ---- SPM ------------------------------------------------------------------------------------- */

START_TEST(spm_merge_by_score)
{
    built b = {0};
    lm_vocab *v = load(spm_writer(), &b);
    ck_assert_int_eq(lm_vocab_kind(v), LM_VOCAB_SPM);
    ck_assert_int_eq(lm_vocab_n_tokens(v), SPM_N);
    /* "▁abc": bc (-1.5) merges first, then ▁a (-6); "▁abc" is no token */
    EXPECT(v, "abc", 0, SPM_SA, SPM_BC);
    /* "▁ab": ab (-5) before ▁a (-6), then ▁ab (-7) */
    EXPECT(v, "ab", 0, SPM_SAB);
    /* "▁a▁b": ▁a; ▁b is no token */
    EXPECT(v, "a b", 0, SPM_SA, SPM_SPACE, SPM_B);
    /* leading space kept: "▁▁a" -> ▁ (the left pair ▁▁ is no token), ▁a */
    EXPECT(v, " a", 0, SPM_SPACE, SPM_SA);
    EXPECT(v, "", 0);
    /* add_bos from the file, forced BOS, no EOS (add_eos_token absent) */
    EXPECT(v, "a", LM_VOCAB_ADD_SPECIAL, 1, SPM_SA);
    EXPECT(v, "", LM_VOCAB_ADD_BOS, 1);
    ck_assert_int_eq(lm_vocab_bos(v), 1);
    ck_assert_int_eq(lm_vocab_eos(v), 2);
    ck_assert_int_eq(lm_vocab_unk(v), 0);
    ck_assert_int_eq(lm_vocab_pad(v), -1);
    ck_assert(lm_vocab_add_bos(v) && !lm_vocab_add_eos(v));
    ck_assert(lm_vocab_is_eog(v, 2) && !lm_vocab_is_eog(v, 1) && !lm_vocab_is_eog(v, SPM_A));
    ck_assert_int_eq(lm_vocab_find(v, SP "ab", 5), SPM_SAB);
    ck_assert_int_eq(lm_vocab_find(v, "zz", 2), -1);
    ck_assert_float_eq(lm_vocab_token_score(v, SPM_BC), -1.5f);
    ck_assert_int_eq(lm_vocab_token_type(v, 3 + 0x41), LM_TOKEN_BYTE);
    ck_assert_int_eq(lm_vocab_token_type(v, SPM_N), LM_TOKEN_UNDEFINED);
    ck_assert_ptr_null(lm_vocab_token_text(v, -1, NULL));
    lm_vocab_free(v);
    built_free(&b);
}
END_TEST

START_TEST(spm_byte_fallback_and_decode)
{
    built b = {0};
    lm_vocab *v = load(spm_writer(), &b);
    /* é is no token: its two UTF-8 bytes become <0xC3> <0xA9> */
    EXPECT(v, "\xc3\xa9", 0, SPM_SPACE, 3 + 0xc3, 3 + 0xa9);
    EXPECT(v, "a\xf0\x9f\x98\x80", 0, SPM_SA, 3 + 0xf0, 3 + 0x9f, 3 + 0x98, 3 + 0x80);
    /* newline and tab are not spaces: bytes */
    EXPECT(v, "a\nb", 0, SPM_SA, 3 + 0x0a, SPM_B);
    const char *texts[] = {"abc", "a b c", " leading", "tab\there", "caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd",
                           "\xf0\x9f\x98\x80 x", "  two"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        round_trip(v, texts[i], strlen(texts[i]), texts[i], strlen(texts[i]));
    /* the leading space is dropped while nothing has been output; control tokens render nothing
     * unless asked for */
    const int32_t ids[] = {1, SPM_SA, SPM_SPACE, SPM_B, 2};
    expect_text(v, ids, 5, 0, "a b", 3);
    expect_text(v, ids, 5, LM_VOCAB_DECODE_SPECIAL, "<s> a b</s>", 11);
    expect_text(v, ids, 5, LM_VOCAB_DECODE_KEEP_SPACE, " a b", 4);
    char piece[8];
    size_t pl;
    ck_assert_int_eq(lm_vocab_token_piece(v, SPM_SA, 0, piece, sizeof piece, &pl), COCHLEA_OK);
    ck_assert(pl == 2 && memcmp(piece, " a", 2) == 0);
    ck_assert_int_eq(lm_vocab_token_piece(v, 3 + 0xff, 0, piece, sizeof piece, &pl), COCHLEA_OK);
    ck_assert(pl == 1 && (uint8_t)piece[0] == 0xff);
    ck_assert_int_eq(lm_vocab_token_piece(v, SPM_SA, 0, piece, 1, &pl), COCHLEA_ERANGE);
    char *t;
    size_t tl;
    const int32_t bad[] = {SPM_A, SPM_N};
    ck_assert_int_eq(lm_vocab_decode(v, bad, 2, 0, &t, &tl), COCHLEA_ERANGE);
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "outside the vocabulary"));
    lm_vocab_free(v);
    built_free(&b);
}
END_TEST

START_TEST(spm_special_tokens)
{
    built b = {0};
    lm_vocab *v = load(spm_writer(), &b);
    /* with parsing: <s> is a token, and a space prefix goes in front of the text after it */
    EXPECT(v, "a<s>b", LM_VOCAB_PARSE_SPECIAL, SPM_SA, 1, SPM_SPACE, SPM_B);
    /* without: its characters are bytes */
    EXPECT(v, "a<s>b", 0, SPM_SA, 3 + '<', 3 + 's', 3 + '>', SPM_B);
    /* user-defined tokens are always matched */
    EXPECT(v, "<tag>ab", 0, SPM_TAG, SPM_SAB);
    EXPECT(v, "<ctl><tag>", LM_VOCAB_PARSE_SPECIAL, SPM_CTL, SPM_TAG);
    const int32_t ids[] = {SPM_TAG, SPM_SAB};
    expect_text(v, ids, 2, 0, "<tag> ab", 8);
    lm_vocab_free(v);
    built_free(&b);
}
END_TEST

START_TEST(stream_utf8_split)
{
    built b = {0};
    lm_vocab *v = load(spm_writer(), &b);
    lm_vocab_stream s;
    lm_vocab_stream_init(&s, 0);
    const char *o;
    size_t ol;
    /* "▁" then the four bytes of U+1F600: nothing comes out until the last byte */
    ck_assert_int_eq(lm_vocab_stream_push(v, &s, SPM_SPACE, &o, &ol), COCHLEA_OK);
    ck_assert_uint_eq(ol, 0); /* the leading space is dropped */
    const uint8_t smile[4] = {0xf0, 0x9f, 0x98, 0x80};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(lm_vocab_stream_push(v, &s, 3 + smile[i], &o, &ol), COCHLEA_OK);
        ck_assert_uint_eq(ol, 0);
    }
    ck_assert_int_eq(lm_vocab_stream_push(v, &s, 3 + smile[3], &o, &ol), COCHLEA_OK);
    ck_assert(ol == 4 && memcmp(o, smile, 4) == 0);
    /* "é" split, then a normal token completes the held byte's successor */
    ck_assert_int_eq(lm_vocab_stream_push(v, &s, 3 + 0xc3, &o, &ol), COCHLEA_OK);
    ck_assert_uint_eq(ol, 0);
    ck_assert_int_eq(lm_vocab_stream_push(v, &s, 3 + 0xa9, &o, &ol), COCHLEA_OK);
    ck_assert(ol == 2 && memcmp(o, "\xc3\xa9", 2) == 0);
    ck_assert_int_eq(lm_vocab_stream_push(v, &s, SPM_SA, &o, &ol), COCHLEA_OK);
    ck_assert(ol == 2 && memcmp(o, " a", 2) == 0);
    /* an invalid sequence is passed on: 0xE2 then 'b' */
    ck_assert_int_eq(lm_vocab_stream_push(v, &s, 3 + 0xe2, &o, &ol), COCHLEA_OK);
    ck_assert_uint_eq(ol, 0);
    ck_assert_int_eq(lm_vocab_stream_push(v, &s, SPM_B, &o, &ol), COCHLEA_OK);
    ck_assert(ol == 2 && memcmp(o, "\xe2" "b", 2) == 0);
    /* a truncated character at the end comes out at flush */
    ck_assert_int_eq(lm_vocab_stream_push(v, &s, 3 + 0xe4, &o, &ol), COCHLEA_OK);
    ck_assert_int_eq(lm_vocab_stream_push(v, &s, 3 + 0xbd, &o, &ol), COCHLEA_OK);
    ck_assert_uint_eq(ol, 0);
    ck_assert_int_eq(lm_vocab_stream_flush(&s, &o, &ol), COCHLEA_OK);
    ck_assert(ol == 2 && memcmp(o, "\xe4\xbd", 2) == 0);
    ck_assert_int_eq(lm_vocab_stream_push(v, &s, SPM_N + 5, &o, &ol), COCHLEA_ERANGE);
    lm_vocab_stream_free(&s);
    lm_vocab_free(v);
    built_free(&b);
}
END_TEST

/* ---- BPE ------------------------------------------------------------------------------------- */

START_TEST(bpe_merge_by_rank)
{
    built b = {0};
    lm_vocab *v = load(bpe_writer("gpt2"), &b);
    ck_assert_int_eq(lm_vocab_kind(v), LM_VOCAB_BPE);
    ck_assert_int_eq(lm_vocab_pre(v), LM_VOCAB_PRE_GPT2);
    /* "hello" | " world": h e -> he, l l -> ll, he ll -> hell, hell o -> hello; Ġ w, o r,
     * Ġw or, l d; "Ġwor ld" is no merge */
    EXPECT(v, "hello world", 0, BPE_HELLO, BPE_GWOR, BPE_LD);
    /* contraction split: "it" | "'s", so the merge "t '" never applies */
    EXPECT(v, "it's", 0, 'i', 't', '\'', 's');
    /* "a" | " " | " b": \s+(?!\S) leaves the last space to " b", so no ĠĠ */
    EXPECT(v, "a  b", 0, 'a', 32, 32, 'b');
    /* equal ranks: the leftmost pair merges first, "lll" -> ll|l */
    EXPECT(v, "lll", 0, BPE_LL, 'l');
    /* trailing spaces stay together: ĠĠ */
    EXPECT(v, "a  ", 0, 'a', BPE_GG);
    /* "34" merges first (rank 10) inside the GPT-2 number piece " 12345" */
    EXPECT(v, "12345", 0, BPE_12, BPE_34, '5');
    /* other characters: "!?" together, letters with their space */
    EXPECT(v, "x!? \xc3\xa9", 0, 'x', '!', '?', 32, 0xc3, 0xa9);
    EXPECT(v, "", LM_VOCAB_ADD_SPECIAL);
    EXPECT(v, "hello", LM_VOCAB_ADD_BOS, BPE_EOT, BPE_HELLO);
    ck_assert(!lm_vocab_add_bos(v));
    ck_assert(lm_vocab_is_eog(v, BPE_EOT));
    lm_vocab_free(v);
    built_free(&b);
}
END_TEST

START_TEST(bpe_default_pre)
{
    built b = {0};
    lm_vocab *v = load(bpe_writer(NULL), &b);
    ck_assert_int_eq(lm_vocab_pre(v), LM_VOCAB_PRE_DEFAULT);
    /* \p{N}+ then [0-9]{3}: "123" | "45" */
    EXPECT(v, "12345", 0, BPE_123, BPE_45);
    /* punctuation is split first, so "'s" is no contraction: "it" | "'" | "s" */
    EXPECT(v, "it's", 0, 'i', 't', '\'', 's');
    EXPECT(v, "hello world", 0, BPE_HELLO, BPE_GWOR, BPE_LD);
    lm_vocab_free(v);
    built_free(&b);
}
END_TEST

START_TEST(bpe_special_and_round_trip)
{
    built b = {0};
    lm_vocab *v = load(bpe_writer("gpt-2"), &b);
    EXPECT(v, "hello<|endoftext|>hello", LM_VOCAB_PARSE_SPECIAL, BPE_HELLO, BPE_EOT, BPE_HELLO);
    /* not parsed: '<' '|' are "other", "endoftext" letters, "|>" other */
    EXPECT(v, "<|endoftext|>", 0, '<', '|', 'e', 'n', 'd', 'o', 'f', 't', 'e', 'x', 't', '|', '>');
    EXPECT(v, "a<U>b", 0, 'a', BPE_USER, 'b');
    const int32_t ids[] = {BPE_HELLO, BPE_EOT, BPE_GWOR, BPE_LD, BPE_USER};
    expect_text(v, ids, 5, 0, "hello world<U>", 14);
    expect_text(v, ids, 5, LM_VOCAB_DECODE_SPECIAL, "hello<|endoftext|> world<U>", 27);
    /* any bytes survive: invalid UTF-8, NUL, control characters, all 256 bytes */
    const char odd[] = "\xff\xfe a\x00\x01 \xc3 \xe2\x82 caf\xc3\xa9 \xf0\x9f\x98\x80!";
    round_trip(v, odd, sizeof odd - 1, odd, sizeof odd - 1);
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    round_trip(v, all, 256, all, 256);
    lm_vocab_free(v);
    built_free(&b);
}
END_TEST

/* ---- corrupt keys ---------------------------------------------------------------------------- */

static void expect_load_error(gguf_writer *w, unsigned flags, int code, const char *msg)
{
    built b = {0};
    finish(w, &b);
    lm_vocab *v = (lm_vocab *)1;
    int rc = lm_vocab_load(b.f, flags, &v);
    ck_assert_msg(rc == code, "load gave %d, want %d (%s)", rc, code, cochlea_last_error());
    ck_assert_ptr_null(v);
    ck_assert_msg(strstr(cochlea_last_error(), msg) != NULL, "message '%s' lacks '%s'", cochlea_last_error(), msg);
    built_free(&b);
}

START_TEST(bad_keys)
{
    gguf_writer *w;
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    ck_assert_int_eq(gguf_writer_set_str(w, "general.architecture", "llama"), 0);
    expect_load_error(w, 0, COCHLEA_EFORMAT, "tokenizer.ggml.model");

    w = spm_writer();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "bert");
    expect_load_error(w, 0, COCHLEA_EUNSUPPORTED, "'bert' is not supported");

    w = spm_writer();
    const int32_t nums[3] = {1, 2, 3};
    gguf_writer_set_arr(w, "tokenizer.ggml.tokens", GGUF_TYPE_I32, nums, 3);
    expect_load_error(w, 0, COCHLEA_EFORMAT, "expected an array of strings");

    w = spm_writer();
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_I32, nums, 3);
    expect_load_error(w, 0, COCHLEA_EFORMAT, "'tokenizer.ggml.scores' has 3 entries");

    w = spm_writer();
    float sc[SPM_N] = {0};
    sc[7] = NAN;
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_F32, sc, SPM_N);
    expect_load_error(w, 0, COCHLEA_EFORMAT, "scores'[7] is NaN");

    w = spm_writer();
    int32_t ty[SPM_N];
    for (int i = 0; i < SPM_N; i++)
        ty[i] = 1;
    ty[5] = 9;
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_I32, ty, SPM_N);
    expect_load_error(w, 0, COCHLEA_EFORMAT, "token_type'[5] = 9");

    w = spm_writer();
    ty[5] = 6; /* "<0x02>" is fine as a byte token, "<unk>" (id 0) is not */
    ty[0] = 6;
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_I32, ty, SPM_N);
    expect_load_error(w, 0, COCHLEA_EFORMAT, "byte token 0 has text '<unk>'");

    w = spm_writer();
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", SPM_N);
    expect_load_error(w, 0, COCHLEA_ERANGE, "bos_token_id' = 269 is not a token id");

    w = spm_writer();
    gguf_writer_set_str(w, "tokenizer.ggml.eos_token_id", "2");
    expect_load_error(w, 0, COCHLEA_EFORMAT, "eos_token_id");

    w = spm_writer();
    gguf_writer_set_u32(w, "tokenizer.ggml.add_bos_token", 1);
    expect_load_error(w, 0, COCHLEA_EFORMAT, "add_bos_token");

    w = spm_writer();
    gguf_writer_set_i32(w, "tokenizer.ggml.bos_token_id", -1);
    expect_load_error(w, 0, COCHLEA_EFORMAT, "add_bos_token is set but there is no bos token");

    w = spm_writer();
    const char *none[1] = {""};
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", none, NULL, 0);
    expect_load_error(w, 0, COCHLEA_EFORMAT, "is empty");

    w = bpe_writer("gpt2");
    const char *bad_merge[2] = {"h e", "abc"};
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", bad_merge, NULL, 2);
    expect_load_error(w, 0, COCHLEA_EFORMAT, "merges'[1] = 'abc' is not 'a b'");

    w = bpe_writer("qwen2");
    expect_load_error(w, 0, COCHLEA_EUNSUPPORTED, "tokenizer.ggml.pre 'qwen2' is not supported");

    /* the fallback flag accepts it with the GPT-2 regex */
    built b = {0};
    finish(bpe_writer("qwen2"), &b);
    lm_vocab *v;
    ck_assert_int_eq(lm_vocab_load(b.f, LM_VOCAB_LOAD_PRE_FALLBACK, &v), COCHLEA_OK);
    ck_assert_int_eq(lm_vocab_pre(v), LM_VOCAB_PRE_GPT2);
    lm_vocab_free(v);
    built_free(&b);

    /* gpt2 without merges */
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    const char *toks[2] = {"a", "b"};
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 2);
    expect_load_error(w, 0, COCHLEA_EFORMAT, "missing key 'tokenizer.ggml.merges'");

    /* a BPE vocabulary without byte tokens and without <unk> cannot encode "z" */
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    const char *merges[1] = {"a b"};
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 2);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 1);
    finish(w, &b);
    ck_assert_int_eq(lm_vocab_load(b.f, 0, &v), COCHLEA_OK);
    lm_tokens t = {0};
    ck_assert_int_eq(lm_vocab_encode(v, "abz", 3, 0, &t), COCHLEA_EINVAL);
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "byte 0x7a has no token"));
    ck_assert_int_eq(lm_vocab_encode(v, "ba", 2, 0, &t), COCHLEA_OK);
    ck_assert(t.n == 2 && t.ids[0] == 1 && t.ids[1] == 0);
    ck_assert_int_eq(lm_vocab_encode(v, "a", 1, LM_VOCAB_ADD_BOS, &t), COCHLEA_EINVAL);
    lm_tokens_free(&t);
    lm_vocab_free(v);
    built_free(&b);
}
END_TEST

/* ---- parity driver --------------------------------------------------------------------------- */

static int driver(int argc, char **argv)
{
    const char *path = NULL;
    unsigned flags = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--encode") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--add-special") == 0)
            flags |= LM_VOCAB_ADD_SPECIAL;
        else if (strcmp(argv[i], "--parse-special") == 0)
            flags |= LM_VOCAB_PARSE_SPECIAL;
        else {
            fprintf(stderr, "usage: %s --encode MODEL.gguf [--add-special] [--parse-special] < LINES\n", argv[0]);
            return 2;
        }
    }
    gguf_file *f;
    lm_vocab *v;
    if (!path || gguf_open(path, &f) || lm_vocab_load(f, 0, &v)) {
        fprintf(stderr, "test_lm_vocab: %s\n", path ? cochlea_last_error() : "no model");
        return 1;
    }
    gguf_close(f);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    lm_tokens t = {0};
    int status = 0;
    while ((n = getdelim(&line, &cap, '\n', stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n')
            n--;
        char *text;
        size_t len;
        if (lm_vocab_encode(v, line, (size_t)n, flags, &t) || lm_vocab_decode(v, t.ids, t.n, 0, &text, &len)) {
            fprintf(stderr, "test_lm_vocab: %s\n", cochlea_last_error());
            status = 1;
            break;
        }
        for (size_t i = 0; i < t.n; i++)
            printf(i ? " %d" : "%d", (int)t.ids[i]);
        putchar('\t');
        for (size_t i = 0; i < len; i++)
            printf("%02x", (uint8_t)text[i]);
        putchar('\n');
        /* streaming decoding must give the same bytes */
        lm_vocab_stream s;
        lm_vocab_stream_init(&s, 0);
        size_t at = 0;
        int same = 1;
        for (size_t i = 0; i <= t.n && same; i++) {
            const char *o;
            size_t ol;
            if (i < t.n ? lm_vocab_stream_push(v, &s, t.ids[i], &o, &ol) : lm_vocab_stream_flush(&s, &o, &ol))
                same = 0;
            else if (at + ol > len || memcmp(text + at, o, ol) != 0)
                same = 0;
            else
                at += ol;
        }
        if (!same || at != len) {
            fprintf(stderr, "test_lm_vocab: streaming decode differs on line '%.*s'\n", (int)n, line);
            status = 1;
        }
        lm_vocab_stream_free(&s);
        free(text);
    }
    free(line);
    lm_tokens_free(&t);
    lm_vocab_free(v);
    return status;
}

static Suite *lm_vocab_suite(void)
{
    Suite *s = suite_create("lm_vocab");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, spm_merge_by_score);
    tcase_add_test(tc, spm_byte_fallback_and_decode);
    tcase_add_test(tc, spm_special_tokens);
    tcase_add_test(tc, stream_utf8_split);
    tcase_add_test(tc, bpe_merge_by_rank);
    tcase_add_test(tc, bpe_default_pre);
    tcase_add_test(tc, bpe_special_and_round_trip);
    tcase_add_test(tc, bad_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return driver(argc, argv);
    return test_run_suite(lm_vocab_suite());
}
