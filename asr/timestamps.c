/* timestamps.c - token, word and segment times from greedy CTC frame decisions (timestamps.h). */
#include "asr/timestamps.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "asr/ctc.h"
#include "error.h"

/* Times closer than this count as equal when comparing gaps and durations with the limits
 * (frame times are multiples of 0.08 s computed in floating point). */
#define TR_TIME_EPS 1e-6

void transcript_free(tr_transcript *t)
{
    if (!t)
        return;
    free(t->source);
    free(t->lang_probs);
    free(t->text);
    for (size_t i = 0; t->tokens && i < t->n_tokens; i++)
        free(t->tokens[i].piece);
    free(t->tokens);
    for (size_t i = 0; t->words && i < t->n_words; i++)
        free(t->words[i].text);
    free(t->words);
    for (size_t i = 0; t->segments && i < t->n_segments; i++)
        free(t->segments[i].text);
    free(t->segments);
    memset(t, 0, sizeof *t);
}

void tr_frames_free(tr_frames *f)
{
    if (!f)
        return;
    free(f->ids);
    free(f->probs);
    free(f->times);
    memset(f, 0, sizeof *f);
}

tr_options tr_default_options(void)
{
    tr_options o;
    memset(&o, 0, sizeof o);
    o.split_gap = 0.8;
    o.punct_split = 1;
    o.min_chars = 0;
    o.max_chars = 42;
    o.max_duration = 6.0;
    return o;
}

/* ---- UTF-8 and character classes ------------------------------------------------------------ */

/* Decode the code point at s[0..n) (n >= 1) into *cp; returns its byte length. A malformed
 * sequence counts as one byte with code point 0xFFFD. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        *cp = 0xFFFD;
        return 1;
    }
    if (len > n) {
        *cp = 0xFFFD;
        return 1;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = 0xFFFD;
        return 1;
    }
    *cp = v;
    return len;
}

static size_t utf8_count(const char *s, size_t n)
{
    size_t k = 0;
    uint32_t cp;
    for (size_t i = 0; i < n; k++)
        i += utf8_next((const unsigned char *)s + i, n - i, &cp);
    return k;
}

/* The code point that ends s[0..n) (n >= 1), and its start in *at. */
static uint32_t utf8_last(const char *s, size_t n, size_t *at)
{
    size_t i = n - 1;
    while (i > 0 && n - i < 4 && ((unsigned char)s[i] & 0xC0) == 0x80)
        i--;
    uint32_t cp;
    size_t len = utf8_next((const unsigned char *)s + i, n - i, &cp);
    if (i + len != n) { /* a malformed tail: just its last byte */
        i = n - 1;
        cp = 0xFFFD;
    }
    *at = i;
    return cp;
}

typedef struct cp_range {
    uint32_t lo, hi;
} cp_range;

static int in_ranges(uint32_t cp, const cp_range *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cp >= r[i].lo && cp <= r[i].hi)
            return 1;
    return 0;
}

#define IN(cp, table) in_ranges(cp, table, sizeof table / sizeof table[0])

/* Scripts written without spaces between words: one word per character. */
static const cp_range nospace_ranges[] = {
    {0x0E00, 0x0E7F},   /* Thai */
    {0x0E80, 0x0EFF},   /* Lao */
    {0x1000, 0x109F},   /* Myanmar */
    {0x1780, 0x17FF},   /* Khmer */
    {0x19E0, 0x19FF},   /* Khmer symbols */
    {0x2E80, 0x2FDF},   /* CJK radicals, Kangxi radicals */
    {0x3005, 0x3007},   /* 々 〆 〇 */
    {0x3021, 0x3029},   /* Hangzhou numerals */
    {0x3040, 0x30FF},   /* Hiragana, Katakana */
    {0x3100, 0x312F},   /* Bopomofo */
    {0x31A0, 0x31BF},   /* Bopomofo extended */
    {0x31F0, 0x31FF},   /* Katakana phonetic extensions */
    {0x3400, 0x4DBF},   /* CJK extension A */
    {0x4E00, 0x9FFF},   /* CJK unified ideographs */
    {0xA9E0, 0xA9FF},   /* Myanmar extended-B */
    {0xAA60, 0xAA7F},   /* Myanmar extended-A */
    {0xF900, 0xFAFF},   /* CJK compatibility ideographs */
    {0xFF66, 0xFF9D},   /* halfwidth Katakana */
    {0x20000, 0x3134F}, /* CJK extensions B.. */
};

/* Marks that belong to the character before them (no time of their own). */
static const cp_range combining_ranges[] = {
    {0x0300, 0x036F}, {0x0E31, 0x0E31}, {0x0E34, 0x0E3A}, {0x0E47, 0x0E4E}, {0x0EB1, 0x0EB1},
    {0x0EB4, 0x0EBC}, {0x0EC8, 0x0ECE}, {0x102B, 0x103E}, {0x1056, 0x1059}, {0x105E, 0x1060},
    {0x1062, 0x1064}, {0x1067, 0x106D}, {0x1071, 0x1074}, {0x1082, 0x108D}, {0x108F, 0x108F},
    {0x109A, 0x109D}, {0x17B4, 0x17D3}, {0x17DD, 0x17DD}, {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF},
    {0x200C, 0x200D}, {0x20D0, 0x20FF}, {0x3099, 0x309A}, {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F},
    {0xFF9E, 0xFF9F},
};

/* Thai and Lao vowels written before the consonant they follow in speech: they join the next
 * character. */
static int is_leading_vowel(uint32_t cp)
{
    return (cp >= 0x0E40 && cp <= 0x0E44) || (cp >= 0x0EC0 && cp <= 0x0EC4);
}

/* Stacking signs (Khmer coeng, Myanmar virama): the next character is part of the same one. */
static int is_stacker(uint32_t cp)
{
    return cp == 0x17D2 || cp == 0x1039;
}

/* Closing punctuation that joins the (no-space-script) word before it. */
static const cp_range attach_ranges[] = {
    {'!', '!'},       {'%', '%'},       {')', ')'},       {',', ','},       {'.', '.'},
    {':', ';'},       {'?', '?'},       {']', ']'},       {'}', '}'},       {0x0E2F, 0x0E2F},
    {0x0E46, 0x0E46}, {0x0EAF, 0x0EAF}, {0x0EC6, 0x0EC6}, {0x104A, 0x104B}, {0x17D4, 0x17D6},
    {0x2026, 0x2026}, {0x3001, 0x3002}, {0x3009, 0x3009}, {0x300B, 0x300B}, {0x300D, 0x300D},
    {0x300F, 0x300F}, {0x3011, 0x3011}, {0x3015, 0x3015}, {0x3017, 0x3017}, {0x3019, 0x3019},
    {0x301B, 0x301B}, {0x309D, 0x309E}, {0x30FD, 0x30FE}, {0xFF01, 0xFF01}, {0xFF09, 0xFF09},
    {0xFF0C, 0xFF0C}, {0xFF0E, 0xFF0E}, {0xFF1A, 0xFF1B}, {0xFF1F, 0xFF1F}, {0xFF3D, 0xFF3D},
    {0xFF5D, 0xFF5D}, {0xFF61, 0xFF61}, {0xFF63, 0xFF64},
};

/* Sentence-ending punctuation. */
static const cp_range sentence_end_ranges[] = {
    {'!', '!'},       {'.', '.'},       {'?', '?'},       {0x0589, 0x0589}, {0x061F, 0x061F},
    {0x06D4, 0x06D4}, {0x0964, 0x0965}, {0x104B, 0x104B}, {0x1362, 0x1362}, {0x17D4, 0x17D5},
    {0x2026, 0x2026}, {0x203C, 0x203C}, {0x2047, 0x2049}, {0x3002, 0x3002}, {0xFF01, 0xFF01},
    {0xFF0E, 0xFF0E}, {0xFF1F, 0xFF1F}, {0xFF61, 0xFF61},
};

/* Closing quotes and brackets skipped when looking for a sentence end. */
static const cp_range closer_ranges[] = {
    {'"', '"'},       {'\'', '\''},     {')', ')'},       {']', ']'},       {'}', '}'},
    {0x00BB, 0x00BB}, {0x2019, 0x2019}, {0x201D, 0x201D}, {0x203A, 0x203A}, {0x3009, 0x3009},
    {0x300B, 0x300B}, {0x300D, 0x300D}, {0x300F, 0x300F}, {0x3011, 0x3011}, {0x3015, 0x3015},
    {0x3017, 0x3017}, {0xFF02, 0xFF02}, {0xFF07, 0xFF07}, {0xFF09, 0xFF09}, {0xFF63, 0xFF63},
};

static int ends_sentence(const char *s, size_t n)
{
    while (n > 0) {
        size_t at;
        uint32_t cp = utf8_last(s, n, &at);
        if (IN(cp, sentence_end_ranges))
            return 1;
        if (!IN(cp, closer_ranges))
            return 0;
        n = at;
    }
    return 0;
}

/* ---- building ------------------------------------------------------------------------------- */

#define SPACE_MARK 0x2581u

typedef struct word_extra {
    size_t off;    /* start of its text in the builder's buffer */
    int space;     /* its first piece began with U+2581: the detokeniser puts a space before it */
} word_extra;

typedef struct builder {
    tr_word *w;
    word_extra *x;
    int64_t cap_w, cap_x;
    size_t n;
    char *buf; /* every word's text, back to back: word i is buf[x[i].off .. x[i+1].off) */
    int64_t cap_buf;
    size_t len;
    int open;       /* the last word takes further characters */
    int split_last; /* the last word is a closed no-space-script character */
    int hold;       /* the last word is open for one more no-space character (leading vowel, stacker) */
} builder;

static int oom(void)
{
    return err_set(COCHLEA_ENOMEM, "tr_build: out of memory");
}

static int buf_append(builder *b, const char *s, size_t n)
{
    size_t need;
    if (size_add(b->len, n, &need) || size_add(need, 1, &need) || need > INT64_MAX ||
        mem_grow((void **)&b->buf, &b->cap_buf, (int64_t)need, 1))
        return oom();
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    return COCHLEA_OK;
}

static size_t word_len(const builder *b, size_t i)
{
    return (i + 1 < b->n ? b->x[i + 1].off : b->len) - b->x[i].off;
}

/* Close the open word; an open word without text is dropped. */
static void close_open(builder *b)
{
    if (b->open && b->n > 0 && word_len(b, b->n - 1) == 0)
        b->n--;
    b->open = 0;
    b->hold = 0;
}

static int new_word(builder *b, int space, double start, size_t tok, float prob)
{
    if (b->n >= (size_t)INT64_MAX - 1 || mem_grow((void **)&b->w, &b->cap_w, (int64_t)b->n + 1, sizeof *b->w) ||
        mem_grow((void **)&b->x, &b->cap_x, (int64_t)b->n + 1, sizeof *b->x))
        return oom();
    tr_word *w = &b->w[b->n];
    memset(w, 0, sizeof *w);
    w->start = w->end = start;
    w->prob = prob;
    w->tok0 = tok;
    w->tok1 = tok + 1;
    b->x[b->n].off = b->len;
    b->x[b->n].space = space;
    b->n++;
    b->open = 1;
    b->split_last = 0;
    b->hold = 0;
    return COCHLEA_OK;
}

/* Add the character bytes s[0..n), spanning [.., end] of token tok, to the last word. */
static int add_to_last(builder *b, const char *s, size_t n, double end, size_t tok, float prob)
{
    tr_word *w = &b->w[b->n - 1];
    if (end > w->end)
        w->end = end;
    if (w->tok1 < tok + 1)
        w->tok1 = tok + 1;
    if (prob < w->prob)
        w->prob = prob;
    return buf_append(b, s, n);
}

/* Split token t's piece into words. */
static int add_token(builder *b, const tr_token *t, size_t ti)
{
    const unsigned char *p = (const unsigned char *)t->piece;
    const size_t n = strlen(t->piece);
    /* characters that take time: everything but U+2581 and combining marks */
    size_t k = 0;
    uint32_t cp, prev = 0;
    for (size_t i = 0; i < n;) {
        i += utf8_next(p + i, n - i, &cp);
        if (cp != SPACE_MARK && !IN(cp, combining_ranges))
            k++;
    }
    const double d = t->end - t->start;
    size_t j = 0;
    double prev_e = t->start; /* end of the previous character's share of the token */
    int rc;
    for (size_t i = 0; i < n; prev = cp) {
        const size_t at = i;
        const size_t len = utf8_next(p + i, n - i, &cp);
        i += len;
        const char *s = (const char *)p + at;
        if (cp == SPACE_MARK) {
            close_open(b);
            if ((rc = new_word(b, 1, prev_e, ti, t->prob)))
                return rc;
            continue;
        }
        if (IN(cp, combining_ranges) || (is_stacker(prev) && b->n > 0 && (b->open || b->split_last))) {
            /* no time of its own (a stacked consonant does take a share below) */
            double e = prev_e;
            if (!IN(cp, combining_ranges)) {
                e = j + 1 >= k ? t->end : t->start + d * (double)(j + 1) / (double)k;
                j++;
                prev_e = e;
            }
            if (b->open || b->split_last) {
                if ((rc = add_to_last(b, s, len, e, ti, t->prob)))
                    return rc;
            } else {
                if ((rc = new_word(b, 0, prev_e, ti, t->prob)) || (rc = add_to_last(b, s, len, e, ti, t->prob)))
                    return rc;
            }
            continue;
        }
        const double cs = prev_e;
        const double ce = j + 1 >= k ? t->end : t->start + d * (double)(j + 1) / (double)k;
        j++;
        prev_e = ce;
        if (!b->open && b->split_last && IN(cp, attach_ranges)) {
            if ((rc = add_to_last(b, s, len, ce, ti, t->prob)))
                return rc;
            continue;
        }
        if (IN(cp, nospace_ranges)) {
            const int held = b->open && b->hold;
            if (b->open && !held && word_len(b, b->n - 1) > 0)
                close_open(b);
            if (!b->open && (rc = new_word(b, 0, cs, ti, t->prob)))
                return rc;
            if ((rc = add_to_last(b, s, len, ce, ti, t->prob)))
                return rc;
            if (is_leading_vowel(cp)) {
                b->hold = 1; /* the consonant that follows joins this character */
            } else {
                b->open = 0;
                b->hold = 0;
                b->split_last = 1;
            }
            continue;
        }
        if (b->open && b->hold) /* a leading vowel before a character of another script */
            close_open(b);
        if (!b->open && (rc = new_word(b, 0, cs, ti, t->prob)))
            return rc;
        if ((rc = add_to_last(b, s, len, ce, ti, t->prob)))
            return rc;
        b->split_last = 0;
    }
    return COCHLEA_OK;
}

static char *dup_str(const char *s, size_t n)
{
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = 0;
    }
    return r;
}

/* Text of words [w0, w1), joined as the detokeniser joins them (no space before w0). */
static char *join_words(const tr_word *w, const word_extra *x, size_t w0, size_t w1)
{
    size_t n = 0;
    for (size_t i = w0; i < w1; i++) {
        size_t l = strlen(w[i].text) + (i > w0 && x[i].space);
        if (size_add(n, l, &n))
            return NULL;
    }
    if (n == SIZE_MAX)
        return NULL;
    char *s = malloc(n + 1), *q = s;
    if (!s)
        return NULL;
    for (size_t i = w0; i < w1; i++) {
        if (i > w0 && x[i].space)
            *q++ = ' ';
        size_t l = strlen(w[i].text);
        memcpy(q, w[i].text, l);
        q += l;
    }
    *q = 0;
    return s;
}

static int check_options(const tr_options *o)
{
    if (!(o->split_gap >= 0) || !isfinite(o->split_gap))
        return err_set(COCHLEA_EINVAL, "tr_build: split gap %g s is not a finite value >= 0", o->split_gap);
    if (!(o->max_duration >= 0) || !isfinite(o->max_duration))
        return err_set(COCHLEA_EINVAL, "tr_build: maximum segment duration %g s is not a finite value >= 0",
                       o->max_duration);
    return COCHLEA_OK;
}

static int check_frames(const tr_frames *f, const char *const *pieces, int64_t vocab, int32_t blank)
{
    if (!(f->frame_s > 0) || !isfinite(f->frame_s))
        return err_set(COCHLEA_EINVAL, "tr_build: frame duration %g s is not a positive number", f->frame_s);
    if (!(f->duration >= 0) || !isfinite(f->duration))
        return err_set(COCHLEA_EINVAL, "tr_build: duration %g s is not a finite value >= 0", f->duration);
    if (vocab <= 0)
        return err_set(COCHLEA_EINVAL, "tr_build: vocabulary size %lld", (long long)vocab);
    if (blank < 0 || blank >= vocab)
        return err_set(COCHLEA_EINVAL, "tr_build: blank id %d is outside the vocabulary [0, %lld)", (int)blank,
                       (long long)vocab);
    if (f->n && (!f->ids || !f->probs || !f->times))
        return err_set(COCHLEA_EINVAL, "tr_build: frames without ids, probabilities or times");
    for (size_t i = 0; i < f->n; i++) {
        const int32_t id = f->ids[i];
        if (id < 0 || id >= vocab)
            return err_set(COCHLEA_ERANGE, "tr_build: frame %zu has token id %d, outside the vocabulary [0, %lld)", i,
                           (int)id, (long long)vocab);
        if (id != blank && !pieces[id])
            return err_set(COCHLEA_EINVAL, "tr_build: token id %d (frame %zu) has no piece", (int)id, i);
        const float pr = f->probs[i];
        if (!(pr >= 0.0f && pr <= 1.0f + 1e-4f))
            return err_set(COCHLEA_EINVAL, "tr_build: frame %zu has probability %g, outside [0, 1]", i, (double)pr);
        if (!isfinite(f->times[i]))
            return err_set(COCHLEA_EINVAL, "tr_build: frame %zu has a non-finite time", i);
        if (i > 0 && f->times[i] < f->times[i - 1])
            return err_set(COCHLEA_EINVAL, "tr_build: frame times decrease at frame %zu (%g s after %g s)", i,
                           f->times[i], f->times[i - 1]);
    }
    return COCHLEA_OK;
}

static int build_tokens(const tr_frames *f, const char *const *pieces, int32_t blank, tr_transcript *out)
{
    size_t nt = 0;
    for (size_t i = 0; i < f->n; i++)
        if (f->ids[i] != blank && (i == 0 || f->ids[i] != f->ids[i - 1]))
            nt++;
    if (nt == 0)
        return COCHLEA_OK;
    size_t bytes;
    if (size_mul(nt, sizeof *out->tokens, &bytes) || !(out->tokens = calloc(1, bytes)))
        return oom();
    size_t k = 0;
    for (size_t i = 0; i < f->n;) {
        const int32_t id = f->ids[i];
        size_t r = i + 1;
        while (r < f->n && f->ids[r] == id)
            r++;
        if (id != blank) {
            tr_token *t = &out->tokens[k];
            const char *p = pieces[id];
            const size_t len = strlen(p);
            if (!(t->piece = dup_str(p, len)))
                return oom();
            out->n_tokens = ++k;
            t->id = id;
            t->special = ctc_is_special(p, len);
            t->start = f->times[i];
            t->end = f->times[r - 1] + f->frame_s;
            if (f->duration > 0) {
                if (t->end > f->duration)
                    t->end = f->duration;
                if (t->start > t->end)
                    t->start = t->end;
            }
            double sum = 0;
            for (size_t q = i; q < r; q++)
                sum += f->probs[q];
            double mean = sum / (double)(r - i);
            t->prob = (float)(mean > 1.0 ? 1.0 : mean);
        }
        i = r;
    }
    return COCHLEA_OK;
}

static int build_words(tr_transcript *out, builder *b)
{
    int rc;
    for (size_t ti = 0; ti < out->n_tokens; ti++) {
        const tr_token *t = &out->tokens[ti];
        if (t->special) {
            close_open(b);
            b->split_last = 0;
            continue;
        }
        if ((rc = add_token(b, t, ti)))
            return rc;
    }
    close_open(b);
    if (b->n == 0)
        return COCHLEA_OK;
    size_t bytes;
    if (size_mul(b->n, sizeof *out->words, &bytes) || !(out->words = calloc(1, bytes)))
        return oom();
    for (size_t i = 0; i < b->n; i++) {
        out->words[i] = b->w[i];
        out->words[i].text = NULL;
        out->n_words = i + 1;
        if (!(out->words[i].text = dup_str(b->buf + b->x[i].off, word_len(b, i))))
            return oom();
    }
    return COCHLEA_OK;
}

static int build_segments(tr_transcript *out, const word_extra *x, const tr_options *o)
{
    const size_t nw = out->n_words;
    if (nw == 0)
        return COCHLEA_OK;
    /* at most one segment per word */
    size_t bytes;
    if (size_mul(nw, sizeof *out->segments, &bytes) || !(out->segments = calloc(1, bytes)))
        return oom();
    const tr_word *w = out->words;
    size_t s0 = 0, chars = utf8_count(w[0].text, strlen(w[0].text));
    for (size_t i = 1; i <= nw; i++) {
        int split = i == nw;
        size_t add = 0;
        if (!split) {
            const tr_word *pw = &w[i - 1], *cw = &w[i];
            add = utf8_count(cw->text, strlen(cw->text)) + (x[i].space ? 1 : 0);
            if (o->split_gap > 0 && cw->start - pw->end >= o->split_gap - TR_TIME_EPS)
                split = 1;
            else if (o->punct_split && chars >= o->min_chars && ends_sentence(pw->text, strlen(pw->text)))
                split = 1;
            else if (o->max_chars > 0 && (chars + add > o->max_chars || chars + add < chars))
                split = 1;
            else if (o->max_duration > 0 && cw->end - w[s0].start > o->max_duration + TR_TIME_EPS)
                split = 1;
        }
        if (!split) {
            chars += add;
            continue;
        }
        tr_segment *sg = &out->segments[out->n_segments];
        if (!(sg->text = join_words(w, x, s0, i)))
            return oom();
        out->n_segments++;
        sg->word0 = s0;
        sg->word1 = i;
        sg->start = w[s0].start;
        sg->end = w[s0].end;
        for (size_t q = s0; q < i; q++)
            if (w[q].end > sg->end)
                sg->end = w[q].end;
        if (i < nw) {
            s0 = i;
            chars = utf8_count(w[i].text, strlen(w[i].text));
        }
    }
    return COCHLEA_OK;
}

int tr_build(const tr_frames *frames, const tr_options *opt, const char *const *pieces, int64_t vocab,
             int32_t blank, tr_transcript *out)
{
    if (!out)
        return err_set(COCHLEA_EINVAL, "tr_build: out is NULL");
    memset(out, 0, sizeof *out);
    if (!frames || !pieces)
        return err_set(COCHLEA_EINVAL, "tr_build: NULL argument");
    const tr_options o = opt ? *opt : tr_default_options();
    int rc = check_options(&o);
    if (!rc)
        rc = check_frames(frames, pieces, vocab, blank);
    if (rc)
        return rc;
    out->duration = frames->duration;
    builder b;
    memset(&b, 0, sizeof b);
    rc = build_tokens(frames, pieces, blank, out);
    if (!rc)
        rc = build_words(out, &b);
    if (!rc)
        rc = build_segments(out, b.x, &o);
    if (!rc) {
        out->text = out->n_words ? join_words(out->words, b.x, 0, out->n_words) : dup_str("", 0);
        if (!out->text)
            rc = oom();
    }
    free(b.w);
    free(b.x);
    free(b.buf);
    if (rc)
        transcript_free(out);
    return rc;
}

/* ---- window layouts ------------------------------------------------------------------------- */

int tr_layout_plan(int sample_rate, int hop_length, int64_t window_samples, int64_t positions, size_t n_samples,
                   double context, tr_layout *out)
{
    if (!out)
        return err_set(COCHLEA_EINVAL, "tr_layout_plan: out is NULL");
    memset(out, 0, sizeof *out);
    if (sample_rate <= 0 || hop_length <= 0 || window_samples <= 0 || positions < 3 || positions > INT32_MAX)
        return err_set(COCHLEA_EINVAL,
                       "tr_layout_plan: invalid sizes (rate %d, hop %d, window %lld samples, %lld positions)",
                       sample_rate, hop_length, (long long)window_samples, (long long)positions);
    if ((uint64_t)n_samples > (uint64_t)INT64_MAX / 4)
        return err_set(COCHLEA_EINVAL, "tr_layout_plan: %zu samples is too long", n_samples);
    out->sample_rate = sample_rate;
    out->hop_length = hop_length;
    out->window_samples = window_samples;
    out->positions = positions;
    out->n_samples = n_samples;
    if ((int64_t)n_samples <= window_samples) {
        out->n_windows = 1;
        out->keep0 = 0;
        out->keep1 = positions;
        return COCHLEA_OK;
    }
    const double window_s = (double)window_samples / (double)sample_rate;
    if (context < 0.0) /* automatic: ESPnet's 4 s for 30 s windows, the same share of shorter ones */
        context = window_s * (4.0 / 30.0) < 4.0 ? window_s * (4.0 / 30.0) : 4.0;
    if (!(context >= 0.0) || !(2.0 * context < window_s))
        return err_set(COCHLEA_EINVAL, "long-form context %g s must be in [0, %g) s", context, window_s / 2);
    out->long_form = 1;
    out->hop = (int64_t)((double)sample_rate * (window_s - 2.0 * context));
    out->pad = (int64_t)((double)sample_rate * context);
    if (out->hop <= 0)
        return err_set(COCHLEA_EINVAL, "long-form context %g s leaves no audio per window", context);
    const int64_t L = (int64_t)n_samples + 2 * out->pad;
    /* windows start every hop over the padded signal; the first short one is the last */
    int64_t nw = 0;
    for (int64_t s = 0; s < L; s += out->hop) {
        nw++;
        if (L - s < window_samples)
            break;
    }
    out->n_windows = nw;
    const double fps = (double)sample_rate / (double)hop_length / 8.0;
    const int64_t buffer_frames = (int64_t)(fps * window_s);
    const int64_t cf = (int64_t)(fps * context);
    out->keep0 = cf;
    out->keep1 = cf > 0 ? buffer_frames - cf : buffer_frames;
    if (out->keep1 > positions)
        out->keep1 = positions;
    if (out->keep1 <= out->keep0)
        return err_set(COCHLEA_EINVAL, "long-form context %g s keeps no frames", context);
    return COCHLEA_OK;
}

double tr_layout_frame_s(const tr_layout *l)
{
    return l && l->sample_rate > 0 ? (double)l->hop_length * 8.0 / (double)l->sample_rate : 0.0;
}

double tr_layout_duration(const tr_layout *l)
{
    return l && l->sample_rate > 0 ? (double)l->n_samples / (double)l->sample_rate : 0.0;
}

static int layout_valid(const tr_layout *l)
{
    return l && l->sample_rate > 0 && l->hop_length > 0 && l->positions > 2 && l->n_windows >= 1 &&
           l->keep0 >= 0 && l->keep1 > l->keep0 && l->keep1 <= l->positions && (l->long_form || l->n_windows == 1) &&
           l->hop >= 0 && l->pad >= 0;
}

size_t tr_layout_n_kept(const tr_layout *l)
{
    size_t n;
    if (!layout_valid(l) || (uint64_t)l->n_windows > SIZE_MAX ||
        size_mul((size_t)l->n_windows, (size_t)(l->keep1 - l->keep0), &n))
        return 0;
    return n;
}

int tr_layout_times(const tr_layout *l, double *times, size_t n)
{
    if (!l || (!times && n))
        return err_set(COCHLEA_EINVAL, "tr_layout_times: NULL argument");
    if (!layout_valid(l))
        return err_set(COCHLEA_EINVAL, "tr_layout_times: invalid layout");
    const size_t nk = tr_layout_n_kept(l);
    if (n != nk)
        return err_set(COCHLEA_EINVAL, "tr_layout_times: %zu times asked, the layout keeps %zu frames", n, nk);
    const double fs = tr_layout_frame_s(l), dur = tr_layout_duration(l), sr = (double)l->sample_rate;
    size_t k = 0;
    for (int64_t w = 0; w < l->n_windows; w++) {
        const double w0 = ((double)w * (double)l->hop - (double)l->pad) / sr;
        for (int64_t p = l->keep0; p < l->keep1; p++) {
            double t = w0 + (double)(p - 2) * fs;
            if (t < 0)
                t = 0;
            if (t > dur)
                t = dur;
            /* windows whose kept frames overlap a little (a window length that is not a whole
             * number of frames, e.g. the 10 s windows of owsm-ctc-tiny: 93 frames kept per 7.33 s
             * hop) would step back in time: the overlap gets the previous frame's time */
            if (k > 0 && t < times[k - 1])
                t = times[k - 1];
            times[k++] = t;
        }
    }
    return COCHLEA_OK;
}

int tr_frames_gather(const tr_layout *l, const int32_t *pos_ids, const float *pos_probs, size_t n_pos,
                     tr_frames *out)
{
    if (!out)
        return err_set(COCHLEA_EINVAL, "tr_frames_gather: out is NULL");
    memset(out, 0, sizeof *out);
    if (!l || !pos_ids || !pos_probs)
        return err_set(COCHLEA_EINVAL, "tr_frames_gather: NULL argument");
    if (!layout_valid(l))
        return err_set(COCHLEA_EINVAL, "tr_frames_gather: invalid layout");
    size_t need;
    if ((uint64_t)l->n_windows > SIZE_MAX || size_mul((size_t)l->n_windows, (size_t)l->positions, &need) ||
        need != n_pos)
        return err_set(COCHLEA_EINVAL, "tr_frames_gather: %zu positions given, the layout has %lld x %lld", n_pos,
                       (long long)l->n_windows, (long long)l->positions);
    const size_t nk = tr_layout_n_kept(l);
    if (nk == 0 || !(out->ids = malloc(nk * sizeof *out->ids)) || !(out->probs = malloc(nk * sizeof *out->probs)) ||
        !(out->times = malloc(nk * sizeof *out->times))) {
        tr_frames_free(out);
        return err_set(COCHLEA_ENOMEM, "tr_frames_gather: out of memory");
    }
    size_t k = 0;
    for (int64_t w = 0; w < l->n_windows; w++)
        for (int64_t p = l->keep0; p < l->keep1; p++) {
            const size_t at = (size_t)w * (size_t)l->positions + (size_t)p;
            out->ids[k] = pos_ids[at];
            out->probs[k] = pos_probs[at];
            k++;
        }
    out->n = nk;
    out->frame_s = tr_layout_frame_s(l);
    out->duration = tr_layout_duration(l);
    int rc = tr_layout_times(l, out->times, nk);
    if (rc)
        tr_frames_free(out);
    return rc;
}

int tr_argmax_probs(const float *logpost, const int32_t *ids, size_t n, int64_t vocab, float *probs)
{
    if ((!logpost || !ids || !probs) && n)
        return err_set(COCHLEA_EINVAL, "tr_argmax_probs: NULL argument");
    if (vocab <= 0)
        return err_set(COCHLEA_EINVAL, "tr_argmax_probs: vocabulary size %lld", (long long)vocab);
    size_t tmp;
    if (size_mul(n, (size_t)vocab, &tmp))
        return err_set(COCHLEA_ERANGE, "tr_argmax_probs: %zu x %lld posteriors overflow", n, (long long)vocab);
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= vocab)
            return err_set(COCHLEA_ERANGE, "tr_argmax_probs: position %zu has token id %d, outside [0, %lld)", i,
                           (int)ids[i], (long long)vocab);
        float v = expf(logpost[i * (size_t)vocab + (size_t)ids[i]]);
        probs[i] = v > 1.0f ? 1.0f : (v >= 0.0f ? v : 0.0f);
    }
    return COCHLEA_OK;
}
