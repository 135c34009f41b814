/* test_asr_timestamps.c - asr/timestamps: CTC token spikes -> token/word/segment times, the
 * engine's window layouts (short form with the 2 prefix positions, legacy long form with context
 * and the 2-frame shift), CJK/Thai character words, segment splitting, the detokeniser's join,
 * and the released OWSM bpe.model (COCHLEA_SHARED) for text parity with the decoder.
 *
 * Every expected time below is worked out by hand from the rules in asr/timestamps.h with
 * frame_s = 0.08 s; the comments give the arithmetic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asr/timestamps.h"
#include "error.h"
#include "testutil.h"
#include "tokenizer.h"

#define SP "\xe2\x96\x81" /* U+2581 */
#define EPS 1e-9

/* A small vocabulary (id -> piece). */
enum {
    BLANK, UNK, ENG, ASR, HELLO, WORLD, SPC, WOR, LD, DOT, HOW, ARE, YOU, QMARK, WOMEN, SHI, XUESHENG, JUHAO, OK,
    THAI, HI_DOT, YOU_Q_QUOTE, FINE, ABCD, EFGH, IJKL, LO, COMMA, HE, LLO, MNOP, NVOCAB
};
static const char *const pieces[NVOCAB] = {
    [BLANK] = "<blank>",
    [UNK] = "<unk>",
    [ENG] = "<eng>",
    [ASR] = "<asr>",
    [HELLO] = SP "hello",
    [WORLD] = SP "world",
    [SPC] = SP,
    [WOR] = "wor",
    [LD] = "ld",
    [DOT] = ".",
    [HOW] = SP "How",
    [ARE] = SP "are",
    [YOU] = SP "you",
    [QMARK] = "?",
    [WOMEN] = SP "\xe6\x88\x91\xe4\xbb\xac",   /* ▁我们 */
    [SHI] = "\xe6\x98\xaf",                    /* 是 */
    [XUESHENG] = "\xe5\xad\xa6\xe7\x94\x9f",   /* 学生 */
    [JUHAO] = "\xe3\x80\x82",                  /* 。 */
    [OK] = SP "ok",
    [THAI] = SP "\xe0\xb9\x80\xe0\xb8\x9b\xe0\xb8\xb4\xe0\xb8\x94", /* ▁เปิด: เ ป ิ ด */
    [HI_DOT] = SP "Hi.",
    [YOU_Q_QUOTE] = SP "you?\"",
    [FINE] = SP "Fine",
    [ABCD] = SP "abcd",
    [EFGH] = SP "efgh",
    [IJKL] = SP "ijkl",
    [LO] = "lo",
    [COMMA] = ",",
    [HE] = SP "He",
    [LLO] = "llo",
    [MNOP] = SP "mnop",
};

/* Frames of one short-form window (376 positions) of `seconds` of audio: every position blank
 * with prob 1, times from tr_layout_times. */
typedef struct win {
    int32_t ids[376];
    float probs[376];
    double times[376];
    tr_frames f;
} win;

static void win_init(win *w, double seconds)
{
    tr_layout l;
    ck_assert_int_eq(tr_layout_plan(16000, 160, 480000, 376, (size_t)(seconds * 16000), 4.0, &l), COCHLEA_OK);
    ck_assert_int_eq(l.long_form, 0);
    ck_assert_uint_eq(tr_layout_n_kept(&l), 376);
    ck_assert_int_eq(tr_layout_times(&l, w->times, 376), COCHLEA_OK);
    for (int i = 0; i < 376; i++)
        w->ids[i] = BLANK, w->probs[i] = 1.0f;
    w->f.ids = w->ids;
    w->f.probs = w->probs;
    w->f.times = w->times;
    w->f.n = 376;
    w->f.frame_s = tr_layout_frame_s(&l);
    w->f.duration = tr_layout_duration(&l);
    ck_assert_double_eq_tol(w->f.frame_s, 0.08, 1e-15);
}

/* positions [p0, p1] get id */
static void span(win *w, int p0, int p1, int32_t id)
{
    for (int p = p0; p <= p1; p++)
        w->ids[p] = id;
}

static void build(const tr_frames *f, const tr_options *o, tr_transcript *t)
{
    int rc = tr_build(f, o, pieces, NVOCAB, BLANK, t);
    ck_assert_msg(rc == COCHLEA_OK, "tr_build: %s", cochlea_last_error());
}

#define CHECK_TOKEN(t, i, id_, s, e)                                                                               \
    do {                                                                                                           \
        ck_assert_int_eq((t)->tokens[i].id, id_);                                                                  \
        ck_assert_str_eq((t)->tokens[i].piece, pieces[id_]);                                                       \
        ck_assert_double_eq_tol((t)->tokens[i].start, s, EPS);                                                     \
        ck_assert_double_eq_tol((t)->tokens[i].end, e, EPS);                                                       \
    } while (0)

#define CHECK_WORD(t, i, txt, s, e, t0, t1)                                                                        \
    do {                                                                                                           \
        ck_assert_str_eq((t)->words[i].text, txt);                                                                 \
        ck_assert_double_eq_tol((t)->words[i].start, s, EPS);                                                      \
        ck_assert_double_eq_tol((t)->words[i].end, e, EPS);                                                        \
        ck_assert_uint_eq((t)->words[i].tok0, t0);                                                                 \
        ck_assert_uint_eq((t)->words[i].tok1, t1);                                                                 \
    } while (0)

#define CHECK_SEGMENT(t, i, txt, s, e, w0, w1)                                                                     \
    do {                                                                                                           \
        ck_assert_str_eq((t)->segments[i].text, txt);                                                              \
        ck_assert_double_eq_tol((t)->segments[i].start, s, EPS);                                                   \
        ck_assert_double_eq_tol((t)->segments[i].end, e, EPS);                                                     \
        ck_assert_uint_eq((t)->segments[i].word0, w0);                                                             \
        ck_assert_uint_eq((t)->segments[i].word1, w1);                                                             \
    } while (0)

/* ---- tokens and words --------------------------------------------------------------------- */

START_TEST(test_short_form_tokens)
{
    win w;
    win_init(&w, 10.0);
    /* positions 0, 1 are the prefix: time 0; position p >= 2 is at (p - 2) * 0.08 */
    ck_assert_double_eq(w.times[0], 0.0);
    ck_assert_double_eq(w.times[1], 0.0);
    ck_assert_double_eq(w.times[2], 0.0);
    ck_assert_double_eq_tol(w.times[3], 0.08, EPS);
    ck_assert_double_eq_tol(w.times[127], 10.0, EPS); /* 125 * 0.08 = 10 s, the end of the audio */
    ck_assert_double_eq(w.times[128], 10.0);          /* clamped to the duration */
    ck_assert_double_eq(w.times[375], 10.0);
    span(&w, 0, 0, ENG);
    span(&w, 1, 1, ASR);
    span(&w, 5, 7, HELLO); /* frames 5-7: start (5-2)*0.08 = 0.24, end (7-2)*0.08 + 0.08 = 0.48 */
    w.probs[5] = 0.9f, w.probs[6] = 0.6f, w.probs[7] = 0.3f;
    span(&w, 10, 11, WORLD); /* 0.64 .. 0.80 */
    w.probs[10] = 0.5f, w.probs[11] = 0.7f;
    span(&w, 12, 12, DOT); /* 0.80 .. 0.88 */
    w.probs[12] = 0.95f;
    span(&w, 126, 130, OK); /* 9.92 .. clamped: 10.0, not 10.08 */
    tr_transcript t;
    build(&w.f, NULL, &t);
    ck_assert_uint_eq(t.n_tokens, 6);
    CHECK_TOKEN(&t, 0, ENG, 0.0, 0.08);
    CHECK_TOKEN(&t, 1, ASR, 0.0, 0.08);
    CHECK_TOKEN(&t, 2, HELLO, 0.24, 0.48);
    CHECK_TOKEN(&t, 3, WORLD, 0.64, 0.80);
    CHECK_TOKEN(&t, 4, DOT, 0.80, 0.88);
    CHECK_TOKEN(&t, 5, OK, 9.92, 10.0);
    ck_assert_int_eq(t.tokens[0].special, 1);
    ck_assert_int_eq(t.tokens[1].special, 1);
    ck_assert_int_eq(t.tokens[2].special, 0);
    ck_assert_float_eq_tol(t.tokens[2].prob, 0.6f, 1e-6f); /* mean of 0.9, 0.6, 0.3 */
    ck_assert_float_eq_tol(t.tokens[3].prob, 0.6f, 1e-6f);
    ck_assert_float_eq_tol(t.tokens[5].prob, 1.0f, 1e-6f);
    /* words: specials excluded; "world" + "." share a word (no U+2581 before ".") */
    ck_assert_uint_eq(t.n_words, 3);
    CHECK_WORD(&t, 0, "hello", 0.24, 0.48, 2, 3);
    CHECK_WORD(&t, 1, "world.", 0.64, 0.88, 3, 5);
    CHECK_WORD(&t, 2, "ok", 9.92, 10.0, 5, 6);
    ck_assert_float_eq_tol(t.words[0].prob, 0.6f, 1e-6f);
    ck_assert_float_eq_tol(t.words[1].prob, 0.6f, 1e-6f); /* min(0.6, 0.95) */
    /* "world." ends a sentence: "ok" is a new segment (also after a 9 s gap) */
    ck_assert_uint_eq(t.n_segments, 2);
    CHECK_SEGMENT(&t, 0, "hello world.", 0.24, 0.88, 0, 2);
    CHECK_SEGMENT(&t, 1, "ok", 9.92, 10.0, 2, 3);
    ck_assert_str_eq(t.text, "hello world. ok");
    ck_assert_double_eq(t.duration, 10.0);
    transcript_free(&t);
    ck_assert_ptr_null(t.tokens);
    ck_assert_ptr_null(t.text);
    transcript_free(&t); /* twice is harmless */
}
END_TEST

START_TEST(test_repeats_and_blanks)
{
    win w;
    win_init(&w, 30.0);
    /* A A _ A: two tokens; A A A: one token; A B: two tokens */
    span(&w, 10, 11, HELLO);
    span(&w, 13, 13, HELLO);
    span(&w, 20, 22, WORLD);
    span(&w, 23, 23, HELLO);
    tr_transcript t;
    build(&w.f, NULL, &t);
    ck_assert_uint_eq(t.n_tokens, 4);
    CHECK_TOKEN(&t, 0, HELLO, 0.64, 0.80);
    CHECK_TOKEN(&t, 1, HELLO, 0.88, 0.96);
    CHECK_TOKEN(&t, 2, WORLD, 1.44, 1.68);
    CHECK_TOKEN(&t, 3, HELLO, 1.68, 1.76);
    ck_assert_uint_eq(t.n_words, 4);
    ck_assert_str_eq(t.text, "hello hello world hello");
    transcript_free(&t);
}
END_TEST

/* "▁" alone starts a word (its time included) but adds no text; "▁" before another "▁..." piece
 * makes no word; a special token ends a word, the piece after it starts one without a space. */
START_TEST(test_space_piece_and_specials)
{
    win w;
    win_init(&w, 30.0);
    span(&w, 10, 10, HELLO); /* 0.64 .. 0.72 */
    span(&w, 12, 12, SPC);   /* 0.80 .. 0.88 */
    span(&w, 14, 14, WOR);   /* 0.96 .. 1.04 */
    span(&w, 15, 15, LD);    /* 1.04 .. 1.12 */
    span(&w, 17, 17, SPC);   /* lone: followed by ▁hello */
    span(&w, 18, 18, HELLO); /* 1.28 .. 1.36 */
    span(&w, 19, 19, ENG);
    span(&w, 20, 20, LO);    /* 1.44 .. 1.52 */
    span(&w, 22, 22, SPC);   /* trailing lone "▁": no word */
    w.probs[12] = 0.25f;
    tr_transcript t;
    build(&w.f, NULL, &t);
    ck_assert_uint_eq(t.n_tokens, 9);
    ck_assert_uint_eq(t.n_words, 4);
    CHECK_WORD(&t, 0, "hello", 0.64, 0.72, 0, 1);
    CHECK_WORD(&t, 1, "world", 0.80, 1.12, 1, 4);
    ck_assert_float_eq_tol(t.words[1].prob, 0.25f, 1e-6f); /* the "▁" token's prob counts */
    CHECK_WORD(&t, 2, "hello", 1.28, 1.36, 5, 6);
    CHECK_WORD(&t, 3, "lo", 1.44, 1.52, 7, 8);
    for (size_t i = 0; i < t.n_words; i++)
        ck_assert_ptr_null(strchr(t.words[i].text, '<'));
    /* as SentencePiece decodes the pieces with <eng> dropped */
    ck_assert_str_eq(t.text, "hello world hellolo");
    ck_assert_uint_eq(t.n_segments, 1);
    CHECK_SEGMENT(&t, 0, "hello world hellolo", 0.64, 1.52, 0, 4);
    transcript_free(&t);
}
END_TEST

/* The detokeniser's result for "<eng><asr> He llo ▁world , ▁how..." worked out by hand. */
START_TEST(test_text_matches_decoder)
{
    win w;
    win_init(&w, 30.0);
    const int32_t seq[] = {ENG, ASR, HE, LLO, WORLD, COMMA, HOW, ARE, YOU, QMARK};
    int p = 0;
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
        span(&w, p, p + 1, seq[i]);
        p += 3;
    }
    tr_transcript t;
    build(&w.f, NULL, &t);
    ck_assert_uint_eq(t.n_tokens, 10);
    ck_assert_uint_eq(t.n_words, 5);
    CHECK_WORD(&t, 0, "Hello", 0.32, 0.72, 2, 4);   /* positions 6-7 and 9-10 */
    CHECK_WORD(&t, 1, "world,", 0.80, 1.20, 4, 6); /* positions 12-13 and 15-16 */
    ck_assert_str_eq(t.text, "Hello world, How are you?");
    ck_assert_uint_eq(t.n_segments, 1);
    ck_assert_str_eq(t.segments[0].text, t.text);
    transcript_free(&t);
}
END_TEST

/* ---- scripts without spaces --------------------------------------------------------------- */

START_TEST(test_cjk_split)
{
    win w;
    win_init(&w, 30.0);
    span(&w, 10, 13, WOMEN);    /* 0.64 .. 0.96, 2 characters: 我 0.64-0.80, 们 0.80-0.96 */
    span(&w, 14, 14, SHI);      /* 0.96 .. 1.04 */
    span(&w, 16, 17, XUESHENG); /* 1.12 .. 1.28: 学 1.12-1.20, 生 1.20-1.28 */
    span(&w, 18, 18, JUHAO);    /* 1.28 .. 1.36, joins 生 */
    span(&w, 20, 20, OK);       /* 1.44 .. 1.52 */
    w.probs[14] = 0.5f;
    tr_transcript t;
    build(&w.f, NULL, &t);
    ck_assert_uint_eq(t.n_tokens, 5);
    ck_assert_uint_eq(t.n_words, 6);
    CHECK_WORD(&t, 0, "\xe6\x88\x91", 0.64, 0.80, 0, 1);
    CHECK_WORD(&t, 1, "\xe4\xbb\xac", 0.80, 0.96, 0, 1);
    CHECK_WORD(&t, 2, "\xe6\x98\xaf", 0.96, 1.04, 1, 2);
    ck_assert_float_eq_tol(t.words[2].prob, 0.5f, 1e-6f);
    CHECK_WORD(&t, 3, "\xe5\xad\xa6", 1.12, 1.20, 2, 3);
    CHECK_WORD(&t, 4, "\xe7\x94\x9f\xe3\x80\x82", 1.20, 1.36, 2, 4);
    CHECK_WORD(&t, 5, "ok", 1.44, 1.52, 4, 5);
    /* no spaces between the characters; "▁ok" keeps its space in the whole text */
    ck_assert_str_eq(t.text, "\xe6\x88\x91\xe4\xbb\xac\xe6\x98\xaf\xe5\xad\xa6\xe7\x94\x9f\xe3\x80\x82 ok");
    ck_assert_uint_eq(t.n_segments, 2); /* split after 。 */
    CHECK_SEGMENT(&t, 0, "\xe6\x88\x91\xe4\xbb\xac\xe6\x98\xaf\xe5\xad\xa6\xe7\x94\x9f\xe3\x80\x82", 0.64, 1.36, 0, 5);
    CHECK_SEGMENT(&t, 1, "ok", 1.44, 1.52, 5, 6);
    /* max_chars counts characters, not bytes: 我们是学生。 is 6 */
    tr_options o = tr_default_options();
    o.punct_split = 0;
    o.max_chars = 4;
    tr_transcript t2;
    build(&w.f, &o, &t2);
    ck_assert_uint_eq(t2.n_segments, 3);
    CHECK_SEGMENT(&t2, 0, "\xe6\x88\x91\xe4\xbb\xac\xe6\x98\xaf\xe5\xad\xa6", 0.64, 1.20, 0, 4);
    CHECK_SEGMENT(&t2, 1, "\xe7\x94\x9f\xe3\x80\x82", 1.20, 1.36, 4, 5); /* + " ok" would be 5 */
    CHECK_SEGMENT(&t2, 2, "ok", 1.44, 1.52, 5, 6);
    transcript_free(&t2);
    transcript_free(&t);
}
END_TEST

START_TEST(test_thai_split)
{
    win w;
    win_init(&w, 30.0);
    /* ▁เปิด: 3 timed characters (the vowel sign ิ is a combining mark), 3 frames 0.64 .. 0.88;
     * the leading vowel เ joins ป: words "เปิ" 0.64-0.80 and "ด" 0.80-0.88 */
    span(&w, 10, 12, THAI);
    tr_transcript t;
    build(&w.f, NULL, &t);
    ck_assert_uint_eq(t.n_words, 2);
    CHECK_WORD(&t, 0, "\xe0\xb9\x80\xe0\xb8\x9b\xe0\xb8\xb4", 0.64, 0.80, 0, 1);
    CHECK_WORD(&t, 1, "\xe0\xb8\x94", 0.80, 0.88, 0, 1);
    ck_assert_str_eq(t.text, "\xe0\xb9\x80\xe0\xb8\x9b\xe0\xb8\xb4\xe0\xb8\x94");
    transcript_free(&t);
}
END_TEST

/* ---- segments ----------------------------------------------------------------------------- */

START_TEST(test_punctuation_split)
{
    win w;
    win_init(&w, 30.0);
    span(&w, 10, 11, HI_DOT);      /* 0.64 .. 0.80 */
    span(&w, 12, 12, HOW);         /* 0.80 .. 0.88 */
    span(&w, 13, 13, ARE);         /* 0.88 .. 0.96 */
    span(&w, 14, 14, YOU_Q_QUOTE); /* 0.96 .. 1.04: ends with ?" */
    span(&w, 15, 16, FINE);        /* 1.04 .. 1.20 */
    tr_transcript t;
    build(&w.f, NULL, &t);
    ck_assert_uint_eq(t.n_segments, 3);
    CHECK_SEGMENT(&t, 0, "Hi.", 0.64, 0.80, 0, 1);
    CHECK_SEGMENT(&t, 1, "How are you?\"", 0.80, 1.04, 1, 4);
    CHECK_SEGMENT(&t, 2, "Fine", 1.04, 1.20, 4, 5);
    ck_assert_str_eq(t.text, "Hi. How are you?\" Fine");
    transcript_free(&t);
    /* min_chars 5: "Hi." (3) is too short to end a segment; "Hi. How are you?"" (17) is not */
    tr_options o = tr_default_options();
    o.min_chars = 5;
    build(&w.f, &o, &t);
    ck_assert_uint_eq(t.n_segments, 2);
    CHECK_SEGMENT(&t, 0, "Hi. How are you?\"", 0.64, 1.04, 0, 4);
    CHECK_SEGMENT(&t, 1, "Fine", 1.04, 1.20, 4, 5);
    transcript_free(&t);
    o.min_chars = 17; /* exactly what the segment has: still splits */
    build(&w.f, &o, &t);
    ck_assert_uint_eq(t.n_segments, 2);
    transcript_free(&t);
    o.min_chars = 18; /* one more than the segment has */
    build(&w.f, &o, &t);
    ck_assert_uint_eq(t.n_segments, 1);
    transcript_free(&t);
    o = tr_default_options();
    o.punct_split = 0;
    build(&w.f, &o, &t);
    ck_assert_uint_eq(t.n_segments, 1);
    ck_assert_str_eq(t.segments[0].text, t.text);
    transcript_free(&t);
}
END_TEST

START_TEST(test_gap_split)
{
    win w;
    win_init(&w, 30.0);
    span(&w, 10, 10, ABCD); /* 0.64 .. 0.72 */
    span(&w, 19, 19, EFGH); /* 1.36 .. 1.44: gap 0.64 */
    span(&w, 29, 29, IJKL); /* 2.16 .. 2.24: gap 0.72 */
    span(&w, 40, 40, MNOP); /* 3.04 .. 3.12: gap 0.80 = split_gap: splits */
    tr_transcript t;
    build(&w.f, NULL, &t);
    ck_assert_uint_eq(t.n_segments, 2);
    CHECK_SEGMENT(&t, 0, "abcd efgh ijkl", 0.64, 2.24, 0, 3);
    CHECK_SEGMENT(&t, 1, "mnop", 3.04, 3.12, 3, 4);
    transcript_free(&t);
    tr_options o = tr_default_options();
    o.split_gap = 0.7; /* now the 0.72 gap splits too */
    build(&w.f, &o, &t);
    ck_assert_uint_eq(t.n_segments, 3);
    CHECK_SEGMENT(&t, 1, "ijkl", 2.16, 2.24, 2, 3);
    transcript_free(&t);
    o.split_gap = 0; /* never */
    build(&w.f, &o, &t);
    ck_assert_uint_eq(t.n_segments, 1);
    transcript_free(&t);
}
END_TEST

START_TEST(test_max_chars_and_duration)
{
    win w;
    win_init(&w, 30.0);
    span(&w, 2, 2, ABCD);  /* 0.00 .. 0.08 */
    span(&w, 14, 14, EFGH); /* 0.96 .. 1.04 */
    span(&w, 27, 27, IJKL); /* 2.00 .. 2.08 */
    span(&w, 39, 39, MNOP); /* 2.96 .. 3.04 */
    tr_options o = tr_default_options();
    o.split_gap = 0;
    o.max_chars = 9; /* "abcd efgh" is exactly 9 */
    tr_transcript t;
    build(&w.f, &o, &t);
    ck_assert_uint_eq(t.n_segments, 2);
    CHECK_SEGMENT(&t, 0, "abcd efgh", 0.0, 1.04, 0, 2);
    CHECK_SEGMENT(&t, 1, "ijkl mnop", 2.0, 3.04, 2, 4);
    transcript_free(&t);
    o.max_chars = 8;
    build(&w.f, &o, &t);
    ck_assert_uint_eq(t.n_segments, 4);
    transcript_free(&t);
    o.max_chars = 0; /* unlimited */
    build(&w.f, &o, &t);
    ck_assert_uint_eq(t.n_segments, 1);
    transcript_free(&t);
    /* duration: ijkl would end at 2.08 > 2.0 after the segment start 0.0 */
    o.max_duration = 2.0;
    build(&w.f, &o, &t);
    ck_assert_uint_eq(t.n_segments, 2);
    CHECK_SEGMENT(&t, 0, "abcd efgh", 0.0, 1.04, 0, 2);
    CHECK_SEGMENT(&t, 1, "ijkl mnop", 2.0, 3.04, 2, 4);
    transcript_free(&t);
    o.max_duration = 2.08; /* ijkl fits exactly; mnop (3.04) does not */
    build(&w.f, &o, &t);
    ck_assert_uint_eq(t.n_segments, 2);
    CHECK_SEGMENT(&t, 0, "abcd efgh ijkl", 0.0, 2.08, 0, 3);
    CHECK_SEGMENT(&t, 1, "mnop", 2.96, 3.04, 3, 4);
    transcript_free(&t);
    o.max_duration = 0;
    build(&w.f, &o, &t);
    ck_assert_uint_eq(t.n_segments, 1);
    ck_assert_str_eq(t.text, "abcd efgh ijkl mnop");
    transcript_free(&t);
    /* a single word longer than max_chars still makes a segment */
    o.max_chars = 2;
    build(&w.f, &o, &t);
    ck_assert_uint_eq(t.n_segments, 4);
    ck_assert_str_eq(t.segments[3].text, "mnop");
    transcript_free(&t);
}
END_TEST

START_TEST(test_empty)
{
    tr_frames f = {NULL, NULL, NULL, 0, 0.08, 0.0};
    tr_transcript t;
    build(&f, NULL, &t);
    ck_assert_uint_eq(t.n_tokens, 0);
    ck_assert_uint_eq(t.n_words, 0);
    ck_assert_uint_eq(t.n_segments, 0);
    ck_assert_ptr_nonnull(t.text);
    ck_assert_str_eq(t.text, "");
    transcript_free(&t);
    /* all blank, and only specials */
    win w;
    win_init(&w, 5.0);
    build(&w.f, NULL, &t);
    ck_assert_uint_eq(t.n_tokens, 0);
    ck_assert_str_eq(t.text, "");
    transcript_free(&t);
    span(&w, 0, 0, ENG);
    span(&w, 1, 1, ASR);
    span(&w, 5, 5, SPC);
    build(&w.f, NULL, &t);
    ck_assert_uint_eq(t.n_tokens, 3);
    ck_assert_uint_eq(t.n_words, 0);
    ck_assert_uint_eq(t.n_segments, 0);
    ck_assert_str_eq(t.text, "");
    transcript_free(&t);
}
END_TEST

START_TEST(test_errors)
{
    win w;
    win_init(&w, 30.0);
    span(&w, 10, 10, HELLO);
    tr_transcript t;
    memset(&t, 0x55, sizeof t); /* tr_build zeroes it even on failure */
    w.ids[20] = NVOCAB;
    ck_assert_int_eq(tr_build(&w.f, NULL, pieces, NVOCAB, BLANK, &t), COCHLEA_ERANGE);
    ck_assert_ptr_null(t.tokens);
    ck_assert_ptr_null(t.text);
    ck_assert_uint_eq(t.n_tokens, 0);
    w.ids[20] = -1;
    ck_assert_int_eq(tr_build(&w.f, NULL, pieces, NVOCAB, BLANK, &t), COCHLEA_ERANGE);
    w.ids[20] = BLANK;
    ck_assert_int_eq(tr_build(&w.f, NULL, pieces, NVOCAB, NVOCAB, &t), COCHLEA_EINVAL);
    ck_assert_int_eq(tr_build(&w.f, NULL, pieces, NVOCAB, -1, &t), COCHLEA_EINVAL);
    ck_assert_int_eq(tr_build(&w.f, NULL, NULL, NVOCAB, BLANK, &t), COCHLEA_EINVAL);
    ck_assert_int_eq(tr_build(NULL, NULL, pieces, NVOCAB, BLANK, &t), COCHLEA_EINVAL);
    ck_assert_int_eq(tr_build(&w.f, NULL, pieces, NVOCAB, BLANK, NULL), COCHLEA_EINVAL);
    /* a used id without a piece */
    const char *holes[NVOCAB];
    memcpy(holes, pieces, sizeof holes);
    holes[HELLO] = NULL;
    ck_assert_int_eq(tr_build(&w.f, NULL, holes, NVOCAB, BLANK, &t), COCHLEA_EINVAL);
    holes[HELLO] = pieces[HELLO], holes[BLANK] = NULL; /* the blank's piece is never needed */
    ck_assert_int_eq(tr_build(&w.f, NULL, holes, NVOCAB, BLANK, &t), COCHLEA_OK);
    transcript_free(&t);
    /* probabilities, times, frame duration, options */
    w.probs[10] = 1.5f;
    ck_assert_int_eq(tr_build(&w.f, NULL, pieces, NVOCAB, BLANK, &t), COCHLEA_EINVAL);
    w.probs[10] = NAN;
    ck_assert_int_eq(tr_build(&w.f, NULL, pieces, NVOCAB, BLANK, &t), COCHLEA_EINVAL);
    w.probs[10] = -0.1f;
    ck_assert_int_eq(tr_build(&w.f, NULL, pieces, NVOCAB, BLANK, &t), COCHLEA_EINVAL);
    w.probs[10] = 1.0f;
    double keep = w.times[30];
    w.times[30] = w.times[29] - 0.01;
    ck_assert_int_eq(tr_build(&w.f, NULL, pieces, NVOCAB, BLANK, &t), COCHLEA_EINVAL);
    w.times[30] = INFINITY;
    ck_assert_int_eq(tr_build(&w.f, NULL, pieces, NVOCAB, BLANK, &t), COCHLEA_EINVAL);
    w.times[30] = keep;
    w.f.frame_s = 0;
    ck_assert_int_eq(tr_build(&w.f, NULL, pieces, NVOCAB, BLANK, &t), COCHLEA_EINVAL);
    w.f.frame_s = 0.08;
    tr_options o = tr_default_options();
    o.split_gap = -1;
    ck_assert_int_eq(tr_build(&w.f, &o, pieces, NVOCAB, BLANK, &t), COCHLEA_EINVAL);
    o = tr_default_options();
    o.max_duration = NAN;
    ck_assert_int_eq(tr_build(&w.f, &o, pieces, NVOCAB, BLANK, &t), COCHLEA_EINVAL);
    ck_assert_int_eq(tr_build(&w.f, NULL, pieces, NVOCAB, BLANK, &t), COCHLEA_OK);
    ck_assert_str_eq(t.text, "hello");
    transcript_free(&t);
}
END_TEST

/* ---- window layouts ----------------------------------------------------------------------- */

START_TEST(test_long_form_layout)
{
    /* 100 s, context 4 s: hop = 16000 * 22 = 352000, pad = 64000, padded 1728000 samples;
     * windows at 0, 352000, 704000, 1056000 (672000 left >= 480000), 1408000 (320000 left: short,
     * last) = 5; kept positions [50, 325) (ctx_frames = 12.5 * 4 = 50, buffer_frames 375) */
    tr_layout l;
    ck_assert_int_eq(tr_layout_plan(16000, 160, 480000, 376, 1600000, 4.0, &l), COCHLEA_OK);
    ck_assert_int_eq(l.long_form, 1);
    ck_assert_int_eq(l.hop, 352000);
    ck_assert_int_eq(l.pad, 64000);
    ck_assert_int_eq(l.n_windows, 5);
    ck_assert_int_eq(l.keep0, 50);
    ck_assert_int_eq(l.keep1, 325);
    const size_t K = 275;
    ck_assert_uint_eq(tr_layout_n_kept(&l), 5 * K);
    double *tm = malloc(5 * K * sizeof *tm);
    ck_assert_ptr_nonnull(tm);
    ck_assert_int_eq(tr_layout_times(&l, tm, 5 * K - 1), COCHLEA_EINVAL);
    ck_assert_int_eq(tr_layout_times(&l, tm, 5 * K), COCHLEA_OK);
    /* window 0 starts at -4 s: positions 50, 51 (-0.16, -0.08 s) clamp to 0, 52 is 0.00, 53 0.08 */
    ck_assert_double_eq(tm[0], 0.0);
    ck_assert_double_eq(tm[1], 0.0);
    ck_assert_double_eq_tol(tm[2], 0.0, EPS);
    ck_assert_double_eq_tol(tm[3], 0.08, EPS);
    /* last kept frame of window 0: -4 + 322 * 0.08 = 21.76; first of window 1: 18 + 48 * 0.08 = 21.84 */
    ck_assert_double_eq_tol(tm[K - 1], 21.76, EPS);
    ck_assert_double_eq_tol(tm[K], 21.84, EPS);
    for (size_t w = 0; w + 1 < 5; w++)
        ck_assert_double_eq_tol(tm[(w + 1) * K] - tm[w * K + K - 1], 0.08, EPS);
    for (size_t i = 3; i < 5 * K; i++) /* one frame every 0.08 s until the clamp at 100 s */
        if (tm[i] < 100.0)
            ck_assert_double_eq_tol(tm[i] - tm[i - 1], 0.08, EPS);
    ck_assert_double_eq(tm[5 * K - 1], 100.0); /* 84 + 25.76 = 109.76 -> clamped */
    free(tm);

    /* exactly 480000 samples left at a window start: that window is full and one more follows
     * (owsm-ctc.md §5.6): padded 832000 = 352000 + 480000 -> windows at 0, 352000, 704000 */
    ck_assert_int_eq(tr_layout_plan(16000, 160, 480000, 376, 704000, 4.0, &l), COCHLEA_OK);
    ck_assert_int_eq(l.n_windows, 3);
    ck_assert_int_eq(tr_layout_plan(16000, 160, 480000, 376, 704001, 4.0, &l), COCHLEA_OK);
    ck_assert_int_eq(l.n_windows, 3);
    ck_assert_int_eq(tr_layout_plan(16000, 160, 480000, 376, 703999, 4.0, &l), COCHLEA_OK);
    ck_assert_int_eq(l.n_windows, 2);
    /* context 2 s: keep [25, 350) */
    ck_assert_int_eq(tr_layout_plan(16000, 160, 480000, 376, 704000, 2.0, &l), COCHLEA_OK);
    ck_assert_int_eq(l.keep0, 25);
    ck_assert_int_eq(l.keep1, 350);
    ck_assert_int_eq(l.hop, 416000);
    /* context 0: keep [0, 375) */
    ck_assert_int_eq(tr_layout_plan(16000, 160, 480000, 376, 704000, 0.0, &l), COCHLEA_OK);
    ck_assert_int_eq(l.keep0, 0);
    ck_assert_int_eq(l.keep1, 375);
    /* 30 s exactly is short form, every position kept */
    ck_assert_int_eq(tr_layout_plan(16000, 160, 480000, 376, 480000, 4.0, &l), COCHLEA_OK);
    ck_assert_int_eq(l.long_form, 0);
    ck_assert_int_eq(l.keep1, 376);
    ck_assert_int_eq(tr_layout_plan(16000, 160, 480000, 376, 480001, 15.0, &l), COCHLEA_EINVAL);
    ck_assert_int_eq(tr_layout_plan(16000, 160, 480000, 376, 480001, NAN, &l), COCHLEA_EINVAL);
    /* a negative context is the default: 4 s for a 30 s window ... */
    ck_assert_int_eq(tr_layout_plan(16000, 160, 480000, 376, 1600000, -1.0, &l), COCHLEA_OK);
    ck_assert_int_eq(l.hop, 352000);
    ck_assert_int_eq(l.pad, 64000);
    ck_assert_int_eq(l.keep0, 50);
    /* ... and 2/15 of a shorter one: 0.8 s of a 6 s window (hop 4.4 s, keep [10, 65)) */
    ck_assert_int_eq(tr_layout_plan(16000, 160, 96000, 76, 200000, -1.0, &l), COCHLEA_OK);
    ck_assert_int_eq(l.long_form, 1);
    ck_assert_int_eq(l.hop, 70400);
    ck_assert_int_eq(l.pad, 12800);
    ck_assert_int_eq(l.keep0, 10);
    ck_assert_int_eq(l.keep1, 65);
    /* 10 s windows (owsm-ctc-tiny): 1.33 s of context, hop 7.33 s, but 93 frames (7.44 s) kept
     * per window: the kept frames overlap by a fraction of a frame, and times never go back */
    ck_assert_int_eq(tr_layout_plan(16000, 160, 160000, 127, 800000, -1.0, &l), COCHLEA_OK);
    ck_assert_int_eq(l.hop, 117333);
    ck_assert_int_eq(l.keep0, 16);
    ck_assert_int_eq(l.keep1, 109);
    {
        size_t nk = tr_layout_n_kept(&l);
        double *t = malloc(nk * sizeof *t);
        ck_assert_ptr_nonnull(t);
        ck_assert_int_eq(tr_layout_times(&l, t, nk), COCHLEA_OK);
        for (size_t i = 1; i < nk; i++)
            ck_assert_msg(t[i] >= t[i - 1], "time %zu: %g after %g", i, t[i], t[i - 1]);
        /* window 1's first kept frame would be at 7.3333 - 1.3333 + 14 * 0.08 = 7.12 s, before
         * window 0's last (106 * 0.08 - 1.3333 = 7.1467 s): it takes that time */
        ck_assert_double_eq_tol(t[92], 106 * 0.08 - 21333.0 / 16000, 1e-9);
        ck_assert_double_eq_tol(t[93], t[92], 1e-12);
        ck_assert_double_eq_tol(t[94], 117333.0 / 16000 - 21333.0 / 16000 + 15 * 0.08, 1e-9);
        free(t);
    }
    /* 4 s of context does not fit a 6 s window */
    ck_assert_int_eq(tr_layout_plan(16000, 160, 96000, 76, 200000, 4.0, &l), COCHLEA_EINVAL);
    ck_assert_int_eq(tr_layout_plan(0, 160, 480000, 376, 480001, 4.0, &l), COCHLEA_EINVAL);
    ck_assert_int_eq(tr_layout_plan(16000, 160, 480000, 376, 480001, 4.0, NULL), COCHLEA_EINVAL);
}
END_TEST

START_TEST(test_gather_long_form)
{
    /* 40 s: padded 768000 -> windows at 0 and 352000 (416000 left: last) */
    tr_layout l;
    ck_assert_int_eq(tr_layout_plan(16000, 160, 480000, 376, 640000, 4.0, &l), COCHLEA_OK);
    ck_assert_int_eq(l.n_windows, 2);
    int32_t ids[2 * 376];
    float probs[2 * 376];
    for (int i = 0; i < 2 * 376; i++)
        ids[i] = BLANK, probs[i] = 1.0f;
    ids[0] = ENG, ids[1] = ASR;           /* window 0 prefix: discarded (before keep0) */
    ids[376 + 0] = ENG, ids[376 + 1] = ASR; /* window 1 prefix: discarded */
    ids[323] = ids[324] = HELLO;            /* the last two kept positions of window 0 ... */
    ids[376 + 50] = ids[376 + 51] = HELLO;  /* ... and the first two of window 1: one token */
    probs[323] = 0.2f, probs[324] = 0.4f, probs[376 + 50] = 0.6f, probs[376 + 51] = 0.8f;
    ids[330] = WORLD;                       /* in window 0's right context: discarded */
    ids[376 + 100] = OK;                    /* 18 + 98 * 0.08 = 25.84 */
    tr_frames f;
    ck_assert_int_eq(tr_frames_gather(&l, ids, probs, 2 * 376 - 1, &f), COCHLEA_EINVAL);
    ck_assert_int_eq(tr_frames_gather(&l, ids, probs, 2 * 376, &f), COCHLEA_OK);
    ck_assert_uint_eq(f.n, 2 * 275);
    ck_assert_double_eq_tol(f.frame_s, 0.08, 1e-15);
    ck_assert_double_eq(f.duration, 40.0);
    tr_transcript t;
    build(&f, NULL, &t);
    ck_assert_uint_eq(t.n_tokens, 2);
    /* window 0 position 323: -4 + 321 * 0.08 = 21.68; window 1 position 51: 18 + 49 * 0.08 + 0.08 = 22.0 */
    CHECK_TOKEN(&t, 0, HELLO, 21.68, 22.0);
    ck_assert_float_eq_tol(t.tokens[0].prob, 0.5f, 1e-6f);
    CHECK_TOKEN(&t, 1, OK, 25.84, 25.92);
    ck_assert_str_eq(t.text, "hello ok");
    transcript_free(&t);
    tr_frames_free(&f);
    ck_assert_ptr_null(f.ids);

    /* probabilities from log-posteriors */
    const float lp[6] = {logf(0.25f), logf(0.5f), logf(0.25f), logf(0.1f), logf(0.2f), logf(0.7f)};
    const int32_t am[2] = {1, 2};
    float pr[2];
    ck_assert_int_eq(tr_argmax_probs(lp, am, 2, 3, pr), COCHLEA_OK);
    ck_assert_float_eq_tol(pr[0], 0.5f, 1e-6f);
    ck_assert_float_eq_tol(pr[1], 0.7f, 1e-6f);
    const int32_t bad[2] = {1, 3};
    ck_assert_int_eq(tr_argmax_probs(lp, bad, 2, 3, pr), COCHLEA_ERANGE);
}
END_TEST

/* ---- the released bpe.model: the whole text equals the decoder's text_nospecial ----------- */

START_TEST(test_owsm_text_parity)
{
    const char *shared = getenv("COCHLEA_SHARED");
    if (!shared || !*shared) {
        printf("test_owsm_text_parity: SKIPPED (COCHLEA_SHARED is not set)\n");
        return;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/owsm/bpe.model", shared);
    if (access(path, R_OK) != 0) {
        printf("test_owsm_text_parity: SKIPPED (%s is absent)\n", path);
        return;
    }
    tokenizer *tok;
    ck_assert_msg(tokenizer_load(path, &tok) == 0, "%s", cochlea_last_error());
    const int32_t V = tokenizer_vocab_size(tok);
    /* the model's pieces plus a blank at id V */
    const char **pv = malloc((size_t)(V + 1) * sizeof *pv);
    ck_assert_ptr_nonnull(pv);
    for (int32_t i = 0; i < V; i++)
        pv[i] = tokenizer_id_to_piece(tok, i, NULL);
    pv[V] = "<blank>";
    const int32_t eng = tokenizer_piece_to_id(tok, "<eng>", 5), asr = tokenizer_piece_to_id(tok, "<asr>", 5);
    static const char *const texts[] = {
        "Hello world, how are you today? I'm fine. Thanks!",
        "The quick brown fox jumps over the lazy dog. It was 3.5 meters away.",
        "\xe6\x88\x91\xe4\xbb\xac\xe6\x98\xaf\xe5\xad\xa6\xe7\x94\x9f\xe3\x80\x82\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x81",
        "I live in \xe6\x9d\xb1\xe4\xba\xac and like \xe3\x81\x99\xe3\x81\x97, really.",
        "Sch\xc3\xb6ne Gr\xc3\xbc\303\237e aus M\xc3\xbcnchen \xe2\x80\x94 \"quoted\" (parens) 42%",
    };
    test_rng rng = {11};
    for (size_t s = 0; s < sizeof texts / sizeof texts[0]; s++) {
        tokenizer_output to;
        memset(&to, 0, sizeof to);
        ck_assert_int_eq(tokenizer_encode(tok, texts[s], strlen(texts[s]), &to), 0);
        /* frames: <eng> <asr>, then each piece for 1-3 frames with 0-4 blanks between */
        size_t cap = 4 + to.n * 8;
        int32_t *ids = malloc(cap * sizeof *ids);
        float *probs = malloc(cap * sizeof *probs);
        double *times = malloc(cap * sizeof *times);
        const char **ps = malloc((to.n + 1) * sizeof *ps);
        ck_assert(ids && probs && times && ps);
        size_t n = 0, np = 0;
        ids[n++] = eng;
        ids[n++] = asr;
        for (size_t i = 0; i < to.n; i++) {
            int rep = test_rng_int(&rng, 1, 3), gap = test_rng_int(&rng, 0, 4);
            if (i > 0 && to.ids[i] == to.ids[i - 1] && gap == 0)
                gap = 1; /* a repeated piece needs a blank between */
            for (int g = 0; g < gap; g++)
                ids[n++] = V;
            for (int r = 0; r < rep; r++)
                ids[n++] = to.ids[i];
            const char *pc = pv[to.ids[i]];
            size_t pl = strlen(pc);
            if (!(pl >= 2 && pc[0] == '<' && pc[pl - 1] == '>')) /* text_nospecial drops <...> */
                ps[np++] = pc;
        }
        for (size_t i = 0; i < n; i++) {
            probs[i] = test_rng_uniform(&rng, 0.1f, 1.0f);
            times[i] = 0.08 * (double)i;
        }
        tr_frames f = {ids, probs, times, n, 0.08, 0.0};
        tr_transcript t;
        int rc = tr_build(&f, NULL, pv, V + 1, V, &t);
        ck_assert_msg(rc == 0, "%s", cochlea_last_error());
        char *ref;
        size_t rlen;
        ck_assert_int_eq(tokenizer_decode_pieces(tok, ps, NULL, np, &ref, &rlen), 0);
        ck_assert_msg(strcmp(t.text, ref) == 0, "text %zu: got '%s', decoder '%s'", s, t.text, ref);
        ck_assert_uint_eq(t.n_tokens, to.n + 2);
        ck_assert_uint_ge(t.n_segments, 1);
        /* segments partition the words and are in time order */
        ck_assert_uint_eq(t.segments[0].word0, 0);
        ck_assert_uint_eq(t.segments[t.n_segments - 1].word1, t.n_words);
        for (size_t i = 1; i < t.n_segments; i++) {
            ck_assert_uint_eq(t.segments[i].word0, t.segments[i - 1].word1);
            ck_assert(t.segments[i].start >= t.segments[i - 1].end - EPS);
        }
        for (size_t i = 0; i < t.n_words; i++) {
            ck_assert(t.words[i].start <= t.words[i].end);
            ck_assert(t.words[i].text[0] != 0 && t.words[i].text[0] != ' ');
        }
        free(ref);
        transcript_free(&t);
        free(ids), free(probs), free(times), free(ps);
        tokenizer_output_free(&to);
    }
    free(pv);
    tokenizer_free(tok);
}
END_TEST

static Suite *timestamps_suite(void)
{
    Suite *s = suite_create("asr_timestamps");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_short_form_tokens);
    tcase_add_test(tc, test_repeats_and_blanks);
    tcase_add_test(tc, test_space_piece_and_specials);
    tcase_add_test(tc, test_text_matches_decoder);
    tcase_add_test(tc, test_cjk_split);
    tcase_add_test(tc, test_thai_split);
    tcase_add_test(tc, test_punctuation_split);
    tcase_add_test(tc, test_gap_split);
    tcase_add_test(tc, test_max_chars_and_duration);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_long_form_layout);
    tcase_add_test(tc, test_gather_long_form);
    tcase_add_test(tc, test_owsm_text_parity);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(timestamps_suite());
}
