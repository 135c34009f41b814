/* writers.c - transcript output formats: txt, srt, vtt, json, tsv (rules in writers.h). */
#include "asr/writers.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "error.h"

#define FFFD "\xef\xbf\xbd" /* U+FFFD REPLACEMENT CHARACTER */

static const char *const format_names[] = {"txt", "srt", "vtt", "json", "tsv"};
#define N_FORMATS (sizeof format_names / sizeof format_names[0])

/* ---- format names ------------------------------------------------------------------------ */

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int name_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (ascii_lower((unsigned char)*a) != *b)
            return 0;
    return *a == '\0' && *b == '\0';
}

int tr_format_parse(const char *s, enum tr_format *f)
{
    if (!s || !f)
        return err_set(COCHLEA_EINVAL, "output format: NULL argument");
    for (size_t i = 0; i < N_FORMATS; i++) {
        if (name_eq(s, format_names[i])) {
            *f = (enum tr_format)i;
            return COCHLEA_OK;
        }
    }
    return err_set(COCHLEA_EINVAL, "unknown output format '%.64s' (expected txt, srt, vtt, json or tsv)",
                   s);
}

const char *tr_format_name(enum tr_format f)
{
    if ((unsigned)f >= N_FORMATS)
        return NULL;
    return format_names[f];
}

/* ---- output with a sticky error flag ------------------------------------------------------ */

typedef struct ow {
    FILE *f;
    int err; /* errno of the first failed write, or -1 when errno was 0 */
} ow;

static void w_bytes(ow *w, const void *p, size_t n)
{
    if (w->err || n == 0)
        return;
    errno = 0;
    if (fwrite(p, 1, n, w->f) != n)
        w->err = errno ? errno : -1;
}

static void w_str(ow *w, const char *s)
{
    w_bytes(w, s, strlen(s));
}

/* Integers only (%d, %lld, %zu, %c): these conversions do not depend on the locale. */
static void w_fmt(ow *w, const char *fmt, ...) COCHLEA_PRINTF(2, 3);
static void w_fmt(ow *w, const char *fmt, ...)
{
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) {
        if (!w->err)
            w->err = -1;
        return;
    }
    w_bytes(w, buf, (size_t)n);
}

static void w_spaces(ow *w, size_t n)
{
    static const char sp[16] = "                ";
    while (n > 0) {
        size_t k = n < sizeof sp ? n : sizeof sp;
        w_bytes(w, sp, k);
        n -= k;
    }
}

/* ---- UTF-8 -------------------------------------------------------------------------------- */

/* Length of the sequence at p (n >= 1 bytes left). *ok = 1 for a well-formed character;
 * otherwise the returned length (>= 1) covers the maximal ill-formed subpart, to be replaced by
 * one U+FFFD. */
static size_t utf8_seq(const unsigned char *p, size_t n, int *ok)
{
    unsigned c = p[0];
    unsigned lo = 0x80, hi = 0xbf;
    size_t need;
    *ok = 0;
    if (c < 0x80) {
        *ok = 1;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
    } else if (c == 0xe0) {
        need = 2;
        lo = 0xa0;
    } else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
        need = 2;
    } else if (c == 0xed) {
        need = 2;
        hi = 0x9f; /* no surrogates */
    } else if (c == 0xf0) {
        need = 3;
        lo = 0x90;
    } else if (c >= 0xf1 && c <= 0xf3) {
        need = 3;
    } else if (c == 0xf4) {
        need = 3;
        hi = 0x8f; /* <= U+10FFFF */
    } else {
        return 1; /* 80..c1, f5..ff: never a lead byte */
    }
    for (size_t k = 1; k <= need; k++) {
        if (k >= n)
            return k;
        unsigned b = p[k];
        if (b < lo || b > hi)
            return k;
        lo = 0x80;
        hi = 0xbf;
    }
    *ok = 1;
    return need + 1;
}

static int is_ctrl(unsigned c)
{
    return c < 0x20 || c == 0x7f;
}

/* 1 when the cleaned text would be empty: NULL, or only spaces and control characters. */
static int text_blank(const char *s)
{
    if (!s)
        return 1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p != ' ' && !is_ctrl(*p))
            return 0;
    return 1;
}

/* The cleaned text (writers.h): runs of spaces containing a control character become one space,
 * leading and trailing spaces go, ill-formed UTF-8 becomes U+FFFD; vtt = 1 also escapes & < >. */
static void w_clean(ow *w, const char *s, int vtt)
{
    if (!s)
        return;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, spaces = 0;
    int ctrl = 0, any = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c == ' ' || is_ctrl(c)) {
            if (c == ' ')
                spaces++;
            else
                ctrl = 1;
            i++;
            continue;
        }
        if (any)
            w_spaces(w, ctrl ? 1 : spaces);
        spaces = 0;
        ctrl = 0;
        any = 1;
        int ok;
        size_t len = utf8_seq(p + i, n - i, &ok);
        if (!ok)
            w_str(w, FFFD);
        else if (vtt && c == '&')
            w_str(w, "&amp;");
        else if (vtt && c == '<')
            w_str(w, "&lt;");
        else if (vtt && c == '>')
            w_str(w, "&gt;");
        else
            w_bytes(w, p + i, len);
        i += len;
    }
}

/* ---- numbers ------------------------------------------------------------------------------ */

/* A JSON number with `dec` decimals (3 or 4) from llround(v * 10^dec), or null if not finite. */
static void w_fixed(ow *w, double v, int dec)
{
    long long scale = dec == 3 ? 1000 : 10000;
    if (!isfinite(v)) {
        w_str(w, "null");
        return;
    }
    double x = v * (double)scale;
    if (!(fabs(x) < 1e15)) {
        /* too large for exact integer scaling: whole units, still a valid JSON number */
        char buf[400];
        int k = snprintf(buf, sizeof buf, "%.0f", v);
        if (k < 0 || (size_t)k >= sizeof buf) {
            if (!w->err)
                w->err = -1;
            return;
        }
        w_bytes(w, buf, (size_t)k);
        return;
    }
    long long q = llround(x);
    if (q < 0) {
        w_str(w, "-");
        q = -q;
    }
    w_fmt(w, "%lld.%0*lld", q / scale, dec, q % scale);
}

/* Milliseconds of a validated time (finite, |t| <= TR_WRITE_MAX_TIME); negative counts as 0. */
static long long time_ms(double t)
{
    if (!(t > 0))
        return 0;
    return llround(t * 1000.0);
}

static void w_clock(ow *w, long long ms, char sep)
{
    w_fmt(w, "%02lld:%02lld:%02lld%c%03lld", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60, sep,
          ms % 1000);
}

/* ---- JSON strings ------------------------------------------------------------------------- */

static void w_json_strn(ow *w, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0; /* p[run, i) is copied verbatim when flushed */
    w_str(w, "\"");
    while (i < n) {
        unsigned c = p[i];
        const char *esc = NULL;
        char ubuf[8];
        size_t len = 1;
        int ok = 1;
        if (c >= 0x80) {
            len = utf8_seq(p + i, n - i, &ok);
            if (ok) {
                i += len;
                continue;
            }
            esc = FFFD;
        } else if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c < 0x20 || c == 0x7f) {
            switch (c) {
            case '\b': esc = "\\b"; break;
            case '\f': esc = "\\f"; break;
            case '\n': esc = "\\n"; break;
            case '\r': esc = "\\r"; break;
            case '\t': esc = "\\t"; break;
            default:
                snprintf(ubuf, sizeof ubuf, "\\u%04x", c);
                esc = ubuf;
                break;
            }
        } else {
            i++;
            continue;
        }
        w_bytes(w, p + run, i - run);
        w_str(w, esc);
        i += len;
        run = i;
    }
    w_bytes(w, p + run, i - run);
    w_str(w, "\"");
}

static void w_json_str(ow *w, const char *s)
{
    if (!s)
        w_str(w, "null");
    else
        w_json_strn(w, s, strlen(s));
}

/* A fixed-size code field: "" (or NUL at [0]) is null. */
static void w_json_code(ow *w, const char *code, size_t cap)
{
    size_t n = strnlen(code, cap);
    if (n == 0)
        w_str(w, "null");
    else
        w_json_strn(w, code, n);
}

/* ---- the formats -------------------------------------------------------------------------- */

static void write_txt(ow *w, const tr_transcript *t)
{
    if (t->n_segments == 0) {
        if (!text_blank(t->text)) {
            w_clean(w, t->text, 0);
            w_str(w, "\n");
        }
        return;
    }
    for (size_t i = 0; i < t->n_segments; i++) {
        const tr_segment *sg = &t->segments[i];
        if (text_blank(sg->text))
            continue;
        w_clean(w, sg->text, 0);
        w_str(w, "\n");
    }
}

/* srt (vtt = 0) and WebVTT (vtt = 1). */
static void write_cues(ow *w, const tr_transcript *t, int vtt)
{
    long long prev_start = 0;
    size_t cue = 0;
    if (vtt)
        w_str(w, "WEBVTT\n\n");
    for (size_t i = 0; i < t->n_segments; i++) {
        const tr_segment *sg = &t->segments[i];
        if (text_blank(sg->text))
            continue;
        long long a = time_ms(sg->start), b = time_ms(sg->end);
        if (cue > 0 && a < prev_start)
            a = prev_start;
        if (b <= a)
            b = a + 1;
        prev_start = a;
        cue++;
        if (!vtt)
            w_fmt(w, "%zu\n", cue);
        w_clock(w, a, vtt ? '.' : ',');
        w_str(w, " --> ");
        w_clock(w, b, vtt ? '.' : ',');
        w_str(w, "\n");
        w_clean(w, sg->text, vtt);
        w_str(w, "\n\n");
    }
}

static void write_tsv(ow *w, const tr_transcript *t)
{
    w_str(w, "start\tend\ttext\n");
    for (size_t i = 0; i < t->n_segments; i++) {
        const tr_segment *sg = &t->segments[i];
        if (text_blank(sg->text))
            continue;
        w_fmt(w, "%lld\t%lld\t", time_ms(sg->start), time_ms(sg->end));
        w_clean(w, sg->text, 0);
        w_str(w, "\n");
    }
}

static void write_json(ow *w, const tr_transcript *t)
{
    w_str(w, "{\n  \"source\": ");
    w_json_str(w, t->source);
    w_str(w, ",\n  \"duration\": ");
    w_fixed(w, t->duration, 3);
    w_str(w, ",\n  \"language\": ");
    w_json_code(w, t->lang, sizeof t->lang);
    w_str(w, ",\n  \"language_source\": ");
    w_json_str(w, t->lang_source);

    w_str(w, ",\n  \"language_probs\": [");
    for (size_t i = 0; i < t->n_lang_probs; i++) {
        const tr_lang *l = &t->lang_probs[i];
        w_str(w, i ? ",\n    {\"language\": " : "\n    {\"language\": ");
        w_json_code(w, l->code, sizeof l->code);
        w_str(w, ", \"prob\": ");
        w_fixed(w, l->prob, 4);
        w_str(w, "}");
    }
    w_str(w, t->n_lang_probs ? "\n  ],\n  \"task\": " : "],\n  \"task\": ");
    w_json_code(w, t->task, sizeof t->task);
    w_str(w, ",\n  \"text\": ");
    w_json_str(w, t->text);

    w_str(w, ",\n  \"segments\": [");
    for (size_t i = 0; i < t->n_segments; i++) {
        const tr_segment *sg = &t->segments[i];
        w_str(w, i ? ",\n    {\"start\": " : "\n    {\"start\": ");
        w_fixed(w, sg->start, 3);
        w_str(w, ", \"end\": ");
        w_fixed(w, sg->end, 3);
        w_str(w, ", \"text\": ");
        w_json_str(w, sg->text);
        w_str(w, ", \"words\": [");
        for (size_t j = sg->word0; j < sg->word1; j++) {
            const tr_word *wd = &t->words[j];
            w_str(w, j > sg->word0 ? ",\n      {\"word\": " : "\n      {\"word\": ");
            w_json_str(w, wd->text);
            w_str(w, ", \"start\": ");
            w_fixed(w, wd->start, 3);
            w_str(w, ", \"end\": ");
            w_fixed(w, wd->end, 3);
            w_str(w, ", \"prob\": ");
            w_fixed(w, wd->prob, 4);
            w_str(w, "}");
        }
        w_str(w, sg->word1 > sg->word0 ? "\n    ]}" : "]}");
    }
    w_str(w, t->n_segments ? "\n  ],\n  \"tokens\": [" : "],\n  \"tokens\": [");

    for (size_t i = 0; i < t->n_tokens; i++) {
        const tr_token *tk = &t->tokens[i];
        w_str(w, i ? ",\n    {\"id\": " : "\n    {\"id\": ");
        w_fmt(w, "%lld", (long long)tk->id);
        w_str(w, ", \"piece\": ");
        w_json_str(w, tk->piece);
        w_str(w, ", \"start\": ");
        w_fixed(w, tk->start, 3);
        w_str(w, ", \"end\": ");
        w_fixed(w, tk->end, 3);
        w_str(w, ", \"prob\": ");
        w_fixed(w, tk->prob, 4);
        w_str(w, "}");
    }
    w_str(w, t->n_tokens ? "\n  ],\n  \"timing\": {\"wall_s\": " : "],\n  \"timing\": {\"wall_s\": ");
    w_fixed(w, t->wall_s, 3);
    w_str(w, ", \"load_s\": ");
    w_fixed(w, t->load_s, 3);
    w_str(w, ", \"rtf\": ");
    if (isfinite(t->duration) && t->duration > 0)
        w_fixed(w, t->wall_s / t->duration, 4);
    else
        w_str(w, "null");
    w_fmt(w, ", \"windows\": %d}\n}\n", t->n_windows);
}

/* ---- entry point -------------------------------------------------------------------------- */

static int check_time(double v, size_t seg, const char *what)
{
    if (!isfinite(v) || fabs(v) > TR_WRITE_MAX_TIME)
        return err_set(COCHLEA_ERANGE, "transcript segment %zu: %s time %g is not a usable time",
                       seg, what, v);
    return COCHLEA_OK;
}

static int check_transcript(const tr_transcript *t, enum tr_format f)
{
    if ((t->n_segments && !t->segments) || (t->n_words && !t->words) ||
        (t->n_tokens && !t->tokens) || (t->n_lang_probs && !t->lang_probs))
        return err_set(COCHLEA_EFORMAT, "transcript: a count is nonzero but its array is NULL");
    for (size_t i = 0; i < t->n_segments; i++) {
        const tr_segment *sg = &t->segments[i];
        if (sg->word0 > sg->word1 || sg->word1 > t->n_words)
            return err_set(COCHLEA_EFORMAT, "transcript segment %zu: words [%zu, %zu) outside the %zu words",
                           i, sg->word0, sg->word1, t->n_words);
        if (f != TR_FORMAT_JSON && f != TR_FORMAT_TXT) {
            int rc = check_time(sg->start, i, "start");
            if (rc == COCHLEA_OK)
                rc = check_time(sg->end, i, "end");
            if (rc != COCHLEA_OK)
                return rc;
        }
    }
    return COCHLEA_OK;
}

int tr_write(const tr_transcript *t, enum tr_format f, FILE *out)
{
    if (!t || !out)
        return err_set(COCHLEA_EINVAL, "tr_write: NULL %s", t ? "stream" : "transcript");
    if ((unsigned)f >= N_FORMATS)
        return err_set(COCHLEA_EINVAL, "tr_write: unknown format %d", (int)f);
    int rc = check_transcript(t, f);
    if (rc != COCHLEA_OK)
        return rc;
    ow w = {out, 0};
    switch (f) {
    case TR_FORMAT_TXT: write_txt(&w, t); break;
    case TR_FORMAT_SRT: write_cues(&w, t, 0); break;
    case TR_FORMAT_VTT: write_cues(&w, t, 1); break;
    case TR_FORMAT_JSON: write_json(&w, t); break;
    case TR_FORMAT_TSV: write_tsv(&w, t); break;
    }
    if (!w.err) {
        errno = 0;
        if (fflush(out) != 0 || ferror(out))
            w.err = errno ? errno : -1;
    }
    if (w.err)
        return err_set(COCHLEA_EIO, "writing %s output: %s", format_names[f],
                       w.err > 0 ? strerror(w.err) : "write failed");
    return COCHLEA_OK;
}
