/* test_asr_writers.c - transcript output formats (asr/writers.h): txt, srt, vtt, json, tsv.
 *
 * Golden tests: two fixed transcripts built below are written in every format to memory and
 * compared byte for byte with tests/data/writers/{main,edge}.{txt,srt,vtt,json,tsv}, which were
 * written by hand from the rules in writers.h (found through $top_srcdir, else relative to this
 * file). "main" has a negative start, a cue at 1 h 2 min 3.4567 s, < > & and quotes, a tab, a
 * newline, CJK, an emoji, an empty and a zero-length segment, a cue that starts before the
 * previous one and a time on an exact half millisecond (2.0625 s). "edge" has cues past 99 hours,
 * ill-formed UTF-8 of every kind, control characters, NaN/Inf/huge/negative numbers and NULL
 * strings. Then a seeded random test checks the structure of every format (strict JSON parser,
 * SubRip/WebVTT/TSV grammar, cue-time rules, the same text in every format), and the errors. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asr/writers.h"
#include "error.h"
#include "testutil.h"

#define FFFD "\xef\xbf\xbd"

/* ---- helpers ------------------------------------------------------------------------------ */

/* Write t in format f into a malloc'ed, NUL-terminated buffer; returns tr_write's code. */
static int write_mem(const tr_transcript *t, enum tr_format f, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    FILE *m = open_memstream(buf, len);
    ck_assert_ptr_nonnull(m);
    int rc = tr_write(t, f, m);
    ck_assert_int_eq(fclose(m), 0);
    ck_assert_ptr_nonnull(*buf);
    return rc;
}

static char *read_golden(const char *name, size_t *len)
{
    char path[4096];
    const char *top = getenv("top_srcdir");
    if (top && *top) {
        snprintf(path, sizeof path, "%s/tests/data/writers/%s", top, name);
    } else {
        const char *file = __FILE__;
        const char *slash = strrchr(file, '/');
        int dlen = slash ? (int)(slash - file) : 1;
        snprintf(path, sizeof path, "%.*s/data/writers/%s", dlen, slash ? file : ".", name);
    }
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open golden file %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    ck_assert_ptr_nonnull(b);
    size_t k;
    while ((k = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n - 1 == 0) {
            cap *= 2;
            b = realloc(b, cap);
            ck_assert_ptr_nonnull(b);
        }
    }
    fclose(f);
    b[n] = '\0';
    *len = n;
    return b;
}

/* Byte-exact comparison with a message that names the first differing line. */
static void assert_same_text(const char *what, const char *got, size_t ng, const char *exp, size_t ne)
{
    size_t i = 0, line = 1, line_start = 0;
    while (i < ng && i < ne && got[i] == exp[i]) {
        if (got[i] == '\n') {
            line++;
            line_start = i + 1;
        }
        i++;
    }
    if (i == ng && i == ne)
        return;
    const char *ge = memchr(got + line_start, '\n', ng - line_start);
    const char *ee = memchr(exp + line_start, '\n', ne - line_start);
    int gl = (int)((ge ? (size_t)(ge - got) : ng) - line_start);
    int el = (int)((ee ? (size_t)(ee - exp) : ne) - line_start);
    ck_abort_msg("%s differs at byte %zu (line %zu; %zu bytes written, %zu expected):\n"
                 "  got      \"%.*s\"\n  expected \"%.*s\"",
                 what, i, line, ng, ne, gl, got + line_start, el, exp + line_start);
}

static void check_golden(const tr_transcript *t, const char *stem)
{
    for (int f = TR_FORMAT_TXT; f <= TR_FORMAT_TSV; f++) {
        char name[64];
        snprintf(name, sizeof name, "%s.%s", stem, tr_format_name((enum tr_format)f));
        char *got;
        size_t ng, ne;
        int rc = write_mem(t, (enum tr_format)f, &got, &ng);
        ck_assert_msg(rc == COCHLEA_OK, "%s: tr_write failed: %s", name, cochlea_last_error());
        char *exp = read_golden(name, &ne);
        assert_same_text(name, got, ng, exp, ne);
        free(got);
        free(exp);
    }
}

/* ---- the fixed transcripts ---------------------------------------------------------------- */

#define S(x) ((char *)(x))

static tr_lang main_langs[] = {{"eng", 0.9125f}, {"deu", 0.05f}, {"fra", 0.0371f}};

static tr_token main_tokens[] = {
    {31, S("<eng>"), 0.0, 0.08, 0.99f, 1},
    {155, S("<asr>"), 0.08, 0.16, 0.98f, 1},
    {4200, S("\xe2\x96\x81Hello"), 0.16, 0.40, 0.875f, 0},
    {43902, S("<"), 0.48, 0.56, 0.5f, 0},
    {12, S("\""), 1.0, 1.04, 0.75f, 0},
    {777, S("\xf0\x9f\x8e\x89"), 10.5, 10.58, 0.6f, 0},
};

static tr_word main_words[] = {
    {S("Um"), -0.25, 0.1, 0.3f, 0, 0},
    {S("Hello"), 0.16, 0.40, 0.875f, 2, 3},
    {S("<world>"), 0.48, 0.90, 0.5f, 3, 4},
    {S("&"), 0.90, 1.0, 0.25f, 4, 4},
    {S("\"friends\""), 1.0, 1.5, 0.75f, 4, 5},
    {S("zero"), 1.5, 1.5, 0.125f, 5, 5},
    {S("\xe4\xbd\xa0"), 10.0, 10.5, 0.625f, 5, 5},      /* 你 */
    {S("\xe5\xa5\xbd"), 10.5, 11.0, 0.9375f, 5, 5},     /* 好 */
    {S("\xf0\x9f\x8e\x89"), 11.5, 12.25, 0.6f, 5, 6},   /* 🎉 */
    {S("The"), 3723.4567, 3723.7, 0.8f, 6, 6},
    {S("end."), 3723.7, 3724.0004, 0.95f, 6, 6},
};

static tr_segment main_segments[] = {
    {S("Um"), -0.25, 0.1, 0, 1},
    {S("Hello <world> & \"friends\""), 0.16, 1.5, 1, 5},
    {S("zero"), 1.5, 1.5, 5, 6},                                  /* zero length */
    {S(""), 2.0, 2.5, 6, 6},                                      /* empty */
    {S(" tab\there \n next  line  \r\n"), 2.0625, 4.0, 6, 6},     /* 2062.5 ms: half up */
    {S("\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x8e\x89"), 10.0, 12.25, 6, 9},
    {S("a --> b"), 9.5, 11.0, 9, 9},                              /* starts before the previous */
    {S("The end."), 3723.4567, 3724.0004, 9, 11},                 /* 1 h 2 min 3.4567 s */
};

static tr_transcript main_transcript(void)
{
    tr_transcript t;
    memset(&t, 0, sizeof t);
    t.source = S("talk.wav");
    t.duration = 3725.0;
    strcpy(t.lang, "eng");
    t.lang_source = "emitted";
    t.lang_probs = main_langs;
    t.n_lang_probs = 3;
    strcpy(t.task, "asr");
    t.text = S("Um Hello <world> & \"friends\" zero tab\there \n next  line "
               "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x8e\x89 a --> b The end.");
    t.tokens = main_tokens;
    t.n_tokens = sizeof main_tokens / sizeof main_tokens[0];
    t.words = main_words;
    t.n_words = sizeof main_words / sizeof main_words[0];
    t.segments = main_segments;
    t.n_segments = sizeof main_segments / sizeof main_segments[0];
    t.wall_s = 93.125;
    t.load_s = 1.5;
    t.n_windows = 143;
    return t;
}

static tr_token edge_tokens[3];

static tr_segment edge_segments[] = {
    /* \xff: never a lead byte; \xe4\xbd + space: truncated 3-byte sequence (one U+FFFD) */
    {S("Bad \xff byte, cut \xe4\xbd end"), 360000.5, 360001.25, 0, 0},
    /* surrogate ED A0 80 (3 x U+FFFD), overlong C0 AF (2), F4 90 80 80 above U+10FFFF (4),
     * a valid emoji, and a 4-byte sequence cut by the end of the string (1) */
    {S("surrogate \xed\xa0\x80 overlong \xc0\xaf 4byte \xf4\x90\x80\x80 ok \xf0\x9f\x8e\x89 end \xf0\x9f\x8e"),
     360001.0, 360001.0, 0, 0},
    {S("x & y <b>bold</b>\x7f"), 1.0, 2.0, 0, 0}, /* starts before the previous cue, ends before it */
    {S("   \t\n  "), 5.0, 6.0, 0, 0},             /* blank: skipped by the line formats */
    {S("\x01mid\x02" "dle\x03"), 360002.0, 360003.0, 0, 0},
};

static tr_transcript edge_transcript(void)
{
    tr_transcript t;
    memset(&t, 0, sizeof t);
    edge_tokens[0] = (tr_token){0, NULL, -0.0001, -0.0006, NAN, 0};
    edge_tokens[1] = (tr_token){49999, S("<sos>"), 1e13, INFINITY, 1.0f, 1};
    edge_tokens[2] = (tr_token){-5, S("\\"), 2.5, 2.5, 0.99995f, 0};
    t.source = S("dir\\\"q\"\x01.wav");
    t.duration = 0.0;
    strcpy(t.task, "st_deu");
    t.text = S("Bad \xff byte, cut \xe4\xbd end\x1f");
    t.tokens = edge_tokens;
    t.n_tokens = 3;
    t.segments = edge_segments;
    t.n_segments = sizeof edge_segments / sizeof edge_segments[0];
    t.wall_s = NAN;
    t.load_s = INFINITY;
    return t;
}

START_TEST(test_golden_main)
{
    tr_transcript t = main_transcript();
    check_golden(&t, "main");
}
END_TEST

START_TEST(test_golden_edge)
{
    tr_transcript t = edge_transcript();
    check_golden(&t, "edge");
}
END_TEST

static void expect_output(const tr_transcript *t, enum tr_format f, const char *exp)
{
    char *got;
    size_t n;
    int rc = write_mem(t, f, &got, &n);
    ck_assert_msg(rc == COCHLEA_OK, "%s: %s", tr_format_name(f), cochlea_last_error());
    assert_same_text(tr_format_name(f), got, n, exp, strlen(exp));
    free(got);
}

START_TEST(test_empty_and_text_only)
{
    tr_transcript t;
    memset(&t, 0, sizeof t);
    expect_output(&t, TR_FORMAT_TXT, "");
    expect_output(&t, TR_FORMAT_SRT, "");
    expect_output(&t, TR_FORMAT_VTT, "WEBVTT\n\n");
    expect_output(&t, TR_FORMAT_TSV, "start\tend\ttext\n");
    expect_output(&t, TR_FORMAT_JSON, "{\n"
                                      "  \"source\": null,\n"
                                      "  \"duration\": 0.000,\n"
                                      "  \"language\": null,\n"
                                      "  \"language_source\": null,\n"
                                      "  \"language_probs\": [],\n"
                                      "  \"task\": null,\n"
                                      "  \"text\": null,\n"
                                      "  \"segments\": [],\n"
                                      "  \"tokens\": [],\n"
                                      "  \"timing\": {\"wall_s\": 0.000, \"load_s\": 0.000, \"rtf\": null, "
                                      "\"windows\": 0}\n"
                                      "}\n");
    /* no segments: txt falls back to the whole text, cleaned; the other line formats are empty */
    t.text = S("  hello\tworld \n");
    expect_output(&t, TR_FORMAT_TXT, "hello world\n");
    expect_output(&t, TR_FORMAT_SRT, "");
    /* a language code that fills its whole array (no NUL) is read up to the array's end */
    memset(t.lang, 'x', sizeof t.lang);
    t.duration = 8.0;
    t.wall_s = 1.0;
    t.load_s = -1e300;
    t.n_windows = -3;
    char *got;
    size_t n;
    ck_assert_int_eq(write_mem(&t, TR_FORMAT_JSON, &got, &n), COCHLEA_OK);
    ck_assert_ptr_nonnull(strstr(got, "\"language\": \"xxxxxxxxxxxxxxxx\",\n"));
    ck_assert_ptr_nonnull(strstr(got, "\"text\": \"  hello\\tworld \\n\",\n"));
    /* rtf = 1/8; a huge negative number is written whole, not in exponent form */
    ck_assert_ptr_nonnull(strstr(got, "\"rtf\": 0.1250, \"windows\": -3}"));
    ck_assert_ptr_nonnull(strstr(got, "\"load_s\": -1000000000000000052504760255204420248704468581108"));
    free(got);
}
END_TEST

/* ---- a strict JSON parser (RFC 8259) that also decodes one top-level string field -------- */

typedef struct jp {
    const unsigned char *p, *end;
    int depth;
    const char *want;   /* top-level key whose string value is decoded into got */
    char *got;
    size_t got_n;
} jp;

/* Decode one UTF-8 character (independently of the library): code point or -1. */
static long utf8_decode(const unsigned char *p, const unsigned char *end, size_t *len)
{
    unsigned c = p[0];
    size_t n;
    long cp, min;
    if (c < 0x80) {
        *len = 1;
        return c;
    } else if ((c & 0xe0) == 0xc0) {
        n = 2, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return -1;
    }
    if ((size_t)(end - p) < n)
        return -1;
    for (size_t k = 1; k < n; k++) {
        if ((p[k] & 0xc0) != 0x80)
            return -1;
        cp = cp << 6 | (p[k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *len = n;
    return cp;
}

static int utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        size_t len;
        if (utf8_decode(p, end, &len) < 0)
            return 0;
        p += len;
    }
    return 1;
}

static void put_utf8(char *out, size_t *n, long cp)
{
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xc0 | cp >> 6);
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xe0 | cp >> 12);
        out[(*n)++] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*n)++] = (char)(0xf0 | cp >> 18);
        out[(*n)++] = (char)(0x80 | (cp >> 12 & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
}

static void j_ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static int hex4(const unsigned char *p, long *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return 0;
        *v = *v * 16 + d;
    }
    return 1;
}

/* Parse a string; if out != NULL, decode it there (out must hold end - p bytes + 1). */
static int j_string(jp *j, char *out, size_t *out_n)
{
    size_t n = 0;
    if (j->p >= j->end || *j->p != '"')
        return 0;
    j->p++;
    while (j->p < j->end && *j->p != '"') {
        unsigned c = *j->p;
        long cp;
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            if (j->end - j->p < 2)
                return 0;
            unsigned e = j->p[1];
            j->p += 2;
            switch (e) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (j->end - j->p < 4 || !hex4(j->p, &cp))
                    return 0;
                j->p += 4;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    long lo;
                    if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' || !hex4(j->p + 2, &lo) ||
                        lo < 0xdc00 || lo > 0xdfff)
                        return 0;
                    j->p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    return 0;
                }
                break;
            default: return 0;
            }
        } else {
            size_t len;
            cp = utf8_decode(j->p, j->end, &len);
            if (cp < 0)
                return 0;
            j->p += len;
        }
        if (out)
            put_utf8(out, &n, cp);
    }
    if (j->p >= j->end)
        return 0;
    j->p++;
    if (out) {
        out[n] = '\0';
        *out_n = n;
    }
    return 1;
}

static int j_number(jp *j)
{
    const unsigned char *p = j->p, *e = j->end;
    if (p < e && *p == '-')
        p++;
    if (p >= e)
        return 0;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    } else {
        return 0;
    }
    if (p < e && *p == '.') {
        p++;
        if (p >= e || *p < '0' || *p > '9')
            return 0;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || *p < '0' || *p > '9')
            return 0;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    j->p = p;
    return 1;
}

static int j_value(jp *j);

static int j_lit(jp *j, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
        return 0;
    j->p += n;
    return 1;
}

static int j_object(jp *j)
{
    j->p++; /* { */
    j->depth++;
    j_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        j->depth--;
        return 1;
    }
    for (;;) {
        char key[64];
        size_t kn = 0;
        const unsigned char *k0 = j->p;
        if (!j_string(j, NULL, NULL))
            return 0;
        if ((size_t)(j->p - k0) < sizeof key) { /* decode short keys for the capture */
            jp kj = {k0, j->p, 0, NULL, NULL, 0};
            if (!j_string(&kj, key, &kn))
                return 0;
        } else {
            key[0] = '\0';
        }
        j_ws(j);
        if (j->p >= j->end || *j->p != ':')
            return 0;
        j->p++;
        j_ws(j);
        if (j->depth == 1 && j->want && strcmp(key, j->want) == 0 && j->p < j->end && *j->p == '"') {
            free(j->got);
            j->got = malloc((size_t)(j->end - j->p) + 1);
            ck_assert_ptr_nonnull(j->got);
            if (!j_string(j, j->got, &j->got_n))
                return 0;
        } else if (!j_value(j)) {
            return 0;
        }
        j_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            j_ws(j);
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            j->depth--;
            return 1;
        }
        return 0;
    }
}

static int j_array(jp *j)
{
    j->p++; /* [ */
    j->depth++;
    j_ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        j->depth--;
        return 1;
    }
    for (;;) {
        if (!j_value(j))
            return 0;
        j_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            j_ws(j);
            continue;
        }
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            j->depth--;
            return 1;
        }
        return 0;
    }
}

static int j_value(jp *j)
{
    if (j->p >= j->end || j->depth > 64)
        return 0;
    switch (*j->p) {
    case '{': return j_object(j);
    case '[': return j_array(j);
    case '"': return j_string(j, NULL, NULL);
    case 't': return j_lit(j, "true");
    case 'f': return j_lit(j, "false");
    case 'n': return j_lit(j, "null");
    default: return j_number(j);
    }
}

/* 1 if s[0..n) is one valid JSON value (with surrounding whitespace); decodes top-level `want`. */
static int json_valid(const char *s, size_t n, const char *want, char **got, size_t *got_n)
{
    jp j = {(const unsigned char *)s, (const unsigned char *)s + n, 0, want, NULL, 0};
    j_ws(&j);
    int ok = j_value(&j);
    j_ws(&j);
    ok = ok && j.p == j.end;
    if (got) {
        *got = j.got;
        *got_n = j.got_n;
    } else {
        free(j.got);
    }
    return ok;
}

START_TEST(test_json_parser_self_check)
{
    /* the validator must reject what it is there to catch */
    static const char *bad[] = {
        "{\"a\": 1,}", "[1, 2,]", "{\"a\": NaN}", "{\"a\": nan}", "{\"a\": Infinity}", "[01]", "[1.]",
        "[.5]", "[\"a\tb\"]", "[\"a\nb\"]", "[\"\\x41\"]", "[\"\\ud800\"]", "[\"\xff\"]",
        "[\"\xc0\xaf\"]", "[\"\xed\xa0\x80\"]", "{\"a\" 1}", "[1] [2]", "{'a': 1}", "[\"abc]", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!json_valid(bad[i], strlen(bad[i]), NULL, NULL, NULL), "accepted %s", bad[i]);
    static const char *good[] = {
        "{}", "[]", "{\"a\": [1, -0.5, 2e10, true, false, null]}", "[\"\\u00e9\\ud83c\\udf89\\/\"]",
        "[\"\xf0\x9f\x8e\x89\x7f\"]", " [0] ",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg(json_valid(good[i], strlen(good[i]), NULL, NULL, NULL), "rejected %s", good[i]);
    char *got;
    size_t n;
    const char *doc = "{\"x\": {\"text\": \"inner\"}, \"text\": \"a\\u0001\\\"\\ud83c\\udf89\"}";
    ck_assert(json_valid(doc, strlen(doc), "text", &got, &n));
    ck_assert_str_eq(got, "a\x01\"\xf0\x9f\x8e\x89");
    free(got);
}
END_TEST

START_TEST(test_golden_json_parses)
{
    tr_transcript ts[2] = {main_transcript(), edge_transcript()};
    const char *texts[2] = {main_transcript().text, "Bad " FFFD " byte, cut " FFFD " end\x1f"};
    for (int k = 0; k < 2; k++) {
        char *buf, *got;
        size_t n, gn;
        ck_assert_int_eq(write_mem(&ts[k], TR_FORMAT_JSON, &buf, &n), COCHLEA_OK);
        ck_assert_msg(json_valid(buf, n, "text", &got, &gn), "invalid JSON:\n%s", buf);
        ck_assert_ptr_nonnull(got);
        ck_assert_str_eq(got, texts[k]);
        free(got);
        free(buf);
    }
}
END_TEST

/* ---- random transcripts: structure of every format ---------------------------------------- */

static char *rand_string(test_rng *r, int valid_utf8)
{
    static const char *frags[] = {" ", "  ", "\t", "\n", "\r\n", "&", "<", ">", "-->", "\"", "\\", "\x7f",
                                  "\x01", "\x1f", "a", "Zz", "\xc3\xa9", "\xe4\xbd\xa0",
                                  "\xf0\x9f\x8e\x89", "\xe2\x96\x81", "&amp;"};
    static const char *bad[] = {"\xff", "\xc3", "\xe4\xbd", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80",
                                "\x80", "\xf0\x9f\x8e"};
    int n = test_rng_int(r, 0, 10);
    char *s = malloc(16 * 10 + 1);
    ck_assert_ptr_nonnull(s);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        const char *f;
        if (!valid_utf8 && test_rng_int(r, 0, 5) == 0)
            f = bad[test_rng_int(r, 0, (int)(sizeof bad / sizeof bad[0]) - 1)];
        else
            f = frags[test_rng_int(r, 0, (int)(sizeof frags / sizeof frags[0]) - 1)];
        memcpy(s + len, f, strlen(f));
        len += strlen(f);
    }
    s[len] = '\0';
    return s;
}

static double rand_time(test_rng *r, int wild)
{
    int k = test_rng_int(r, 0, wild ? 12 : 9);
    switch (k) {
    case 0: return -test_rng_uniform(r, 0, 3);
    case 1: return 0.0;
    case 2: return test_rng_int(r, 0, 4000) * 0.0005; /* many exact and near half milliseconds */
    case 3: return 360000.0 + test_rng_uniform(r, 0, 10);
    case 10: return NAN;
    case 11: return test_rng_int(r, 0, 1) ? INFINITY : -INFINITY;
    case 12: return 1e20;
    default: return test_rng_uniform(r, 0, 100);
    }
}

/* Blank by the rule of writers.h: nothing but spaces and control characters. */
static int blank(const char *s)
{
    for (; s && *s; s++)
        if (*s != ' ' && !((unsigned char)*s < 0x20 || *s == 0x7f))
            return 0;
    return 1;
}

static long long exp_ms(double t)
{
    return t > 0 ? llround(t * 1000.0) : 0;
}

typedef struct lines {
    char **v;
    size_t n;
} lines;

/* Split at '\n'; the text must end with '\n' (or be empty). */
static lines split_lines(char *buf, size_t n)
{
    lines L = {NULL, 0};
    ck_assert_msg(n == 0 || buf[n - 1] == '\n', "output does not end with a newline");
    L.v = malloc((n + 1) * sizeof *L.v);
    ck_assert_ptr_nonnull(L.v);
    char *p = buf, *end = buf + n;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        *nl = '\0';
        L.v[L.n++] = p;
        p = nl + 1;
    }
    return L;
}

/* A cleaned text line: nonempty, no controls, no leading or trailing space. */
static void check_clean(const char *s, const char *fmt)
{
    size_t n = strlen(s);
    ck_assert_msg(n > 0, "%s: empty text line", fmt);
    ck_assert_msg(s[0] != ' ' && s[n - 1] != ' ', "%s: untrimmed text \"%s\"", fmt, s);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(!((unsigned char)s[i] < 0x20 || s[i] == 0x7f), "%s: control character in \"%s\"", fmt, s);
    ck_assert_msg(utf8_valid(s, n), "%s: invalid UTF-8", fmt);
}

/* Strict clock "H+:MM:SS<sep>mmm" (at least two hour digits) -> milliseconds, or -1. */
static long long parse_clock(const char **pp, char sep)
{
    const char *p = *pp;
    long long h = 0;
    int nd = 0;
    while (*p >= '0' && *p <= '9') {
        h = h * 10 + (*p++ - '0');
        nd++;
    }
    if (nd < 2 || (nd > 2 && (*pp)[0] == '0'))
        return -1;
    int m, s, ms;
    if (p[0] != ':' || p[1] < '0' || p[1] > '5' || p[2] < '0' || p[2] > '9' || p[3] != ':' || p[4] < '0' ||
        p[4] > '5' || p[5] < '0' || p[5] > '9' || p[6] != sep)
        return -1;
    for (int i = 7; i < 10; i++)
        if (p[i] < '0' || p[i] > '9')
            return -1;
    m = (p[1] - '0') * 10 + (p[2] - '0');
    s = (p[4] - '0') * 10 + (p[5] - '0');
    ms = (p[7] - '0') * 100 + (p[8] - '0') * 10 + (p[9] - '0');
    *pp = p + 10;
    return ((h * 60 + m) * 60 + s) * 1000 + ms;
}

/* Undo the WebVTT escapes, checking that no bare & < > remains. */
static void vtt_unescape(const char *s, char *out)
{
    size_t n = 0;
    ck_assert_msg(strstr(s, "-->") == NULL, "vtt: \"-->\" in cue text \"%s\"", s);
    while (*s) {
        ck_assert_msg(*s != '<' && *s != '>', "vtt: bare < or > in \"%s\"", s);
        if (*s == '&') {
            if (strncmp(s, "&amp;", 5) == 0)
                out[n++] = '&', s += 5;
            else if (strncmp(s, "&lt;", 4) == 0)
                out[n++] = '<', s += 4;
            else if (strncmp(s, "&gt;", 4) == 0)
                out[n++] = '>', s += 4;
            else
                ck_abort_msg("vtt: bare & in \"%s\"", s);
        } else {
            out[n++] = *s++;
        }
    }
    out[n] = '\0';
}

static void check_random_formats(const tr_transcript *t)
{
    char *buf[5];
    size_t len[5];
    lines L[5];
    for (int f = 0; f < 5; f++) {
        ck_assert_msg(write_mem(t, (enum tr_format)f, &buf[f], &len[f]) == COCHLEA_OK, "%s: %s",
                      tr_format_name((enum tr_format)f), cochlea_last_error());
        ck_assert_msg(utf8_valid(buf[f], len[f]), "%s: invalid UTF-8", tr_format_name((enum tr_format)f));
    }
    ck_assert_msg(json_valid(buf[TR_FORMAT_JSON], len[TR_FORMAT_JSON], NULL, NULL, NULL), "invalid JSON:\n%s",
                  buf[TR_FORMAT_JSON]);
    for (int f = 0; f < 5; f++)
        L[f] = split_lines(buf[f], len[f]);

    size_t cues = 0;
    for (size_t i = 0; i < t->n_segments; i++)
        cues += !blank(t->segments[i].text);
    /* txt: one cleaned line per nonblank segment; without segments, the whole text if not blank */
    if (t->n_segments == 0 && !blank(t->text)) {
        ck_assert_uint_eq(L[TR_FORMAT_TXT].n, 1);
        check_clean(L[TR_FORMAT_TXT].v[0], "txt");
    } else {
        ck_assert_uint_eq(L[TR_FORMAT_TXT].n, cues);
    }
    /* tsv: header + one line per cue with exact raw milliseconds and no extra tab */
    ck_assert_uint_eq(L[TR_FORMAT_TSV].n, cues + 1);
    ck_assert_str_eq(L[TR_FORMAT_TSV].v[0], "start\tend\ttext");
    /* srt: 4 lines per cue; vtt: 2 header lines + 3 per cue */
    ck_assert_uint_eq(L[TR_FORMAT_SRT].n, 4 * cues);
    ck_assert_uint_eq(L[TR_FORMAT_VTT].n, 2 + 3 * cues);
    ck_assert_str_eq(L[TR_FORMAT_VTT].v[0], "WEBVTT");
    ck_assert_str_eq(L[TR_FORMAT_VTT].v[1], "");

    long long prev_start = -1;
    size_t c = 0;
    for (size_t i = 0; i < t->n_segments; i++) {
        const tr_segment *sg = &t->segments[i];
        if (blank(sg->text))
            continue;
        const char *txt = L[TR_FORMAT_TXT].v[c];
        check_clean(txt, "txt");

        long long s0, e0;
        int off;
        const char *row = L[TR_FORMAT_TSV].v[c + 1];
        ck_assert_msg(sscanf(row, "%lld\t%lld\t%n", &s0, &e0, &off) == 2, "tsv row \"%s\"", row);
        ck_assert_int_eq(s0, exp_ms(sg->start));
        ck_assert_int_eq(e0, exp_ms(sg->end));
        ck_assert_str_eq(row + off, txt);

        /* expected cue times: starts never decrease, end > start */
        long long a = exp_ms(sg->start), b = exp_ms(sg->end);
        if (prev_start >= 0 && a < prev_start)
            a = prev_start;
        if (b <= a)
            b = a + 1;
        prev_start = a;

        char num[32];
        snprintf(num, sizeof num, "%zu", c + 1);
        ck_assert_str_eq(L[TR_FORMAT_SRT].v[4 * c], num);
        for (int v = 0; v < 2; v++) {
            const char *tl = v ? L[TR_FORMAT_VTT].v[2 + 3 * c] : L[TR_FORMAT_SRT].v[4 * c + 1];
            const char *p = tl;
            long long ga = parse_clock(&p, v ? '.' : ',');
            ck_assert_msg(ga >= 0 && strncmp(p, " --> ", 5) == 0, "bad time line \"%s\"", tl);
            p += 5;
            long long gb = parse_clock(&p, v ? '.' : ',');
            ck_assert_msg(gb >= 0 && *p == '\0', "bad time line \"%s\"", tl);
            ck_assert_int_eq(ga, a);
            ck_assert_int_eq(gb, b);
        }
        ck_assert_str_eq(L[TR_FORMAT_SRT].v[4 * c + 2], txt);
        ck_assert_str_eq(L[TR_FORMAT_SRT].v[4 * c + 3], "");
        const char *vt = L[TR_FORMAT_VTT].v[3 + 3 * c];
        char *un = malloc(strlen(vt) + 1);
        ck_assert_ptr_nonnull(un);
        vtt_unescape(vt, un);
        ck_assert_str_eq(un, txt);
        free(un);
        ck_assert_str_eq(L[TR_FORMAT_VTT].v[4 + 3 * c], "");
        c++;
    }
    for (int f = 0; f < 5; f++) {
        free(L[f].v);
        free(buf[f]);
    }
}

START_TEST(test_random_transcripts)
{
    test_rng r = {0x5eed0005u};
    for (int iter = 0; iter < 400; iter++) {
        int wild = iter % 2; /* odd iterations: non-finite and huge numbers (JSON only) */
        tr_transcript t;
        memset(&t, 0, sizeof t);
        t.source = test_rng_int(&r, 0, 4) ? rand_string(&r, 0) : NULL;
        t.duration = rand_time(&r, wild);
        char *code = rand_string(&r, 0);
        snprintf(t.lang, sizeof t.lang, "%s", code);
        snprintf(t.task, sizeof t.task, "%s", code);
        free(code);
        t.n_lang_probs = (size_t)test_rng_int(&r, 0, 3);
        t.lang_probs = t.n_lang_probs ? calloc(t.n_lang_probs, sizeof *t.lang_probs) : NULL;
        for (size_t i = 0; i < t.n_lang_probs; i++) {
            snprintf(t.lang_probs[i].code, sizeof t.lang_probs[i].code, "l%zu", i);
            t.lang_probs[i].prob = (float)rand_time(&r, wild);
        }
        t.text = rand_string(&r, 1);
        t.n_segments = (size_t)test_rng_int(&r, 0, 7);
        t.segments = t.n_segments ? calloc(t.n_segments, sizeof *t.segments) : NULL;
        t.words = calloc(3 * 7 + 1, sizeof *t.words);
        ck_assert_ptr_nonnull(t.words);
        for (size_t i = 0; i < t.n_segments; i++) {
            tr_segment *sg = &t.segments[i];
            sg->text = test_rng_int(&r, 0, 8) ? rand_string(&r, 0) : NULL;
            sg->start = rand_time(&r, 0);
            sg->end = test_rng_int(&r, 0, 3) ? sg->start + rand_time(&r, 0) : rand_time(&r, 0);
            sg->word0 = t.n_words;
            int nw = test_rng_int(&r, 0, 3);
            for (int k = 0; k < nw; k++) {
                tr_word *w = &t.words[t.n_words++];
                w->text = test_rng_int(&r, 0, 6) ? rand_string(&r, 0) : NULL;
                w->start = rand_time(&r, wild);
                w->end = rand_time(&r, wild);
                w->prob = (float)test_rng_uniform(&r, 0, 1);
            }
            sg->word1 = t.n_words;
        }
        t.n_tokens = (size_t)test_rng_int(&r, 0, 5);
        t.tokens = t.n_tokens ? calloc(t.n_tokens, sizeof *t.tokens) : NULL;
        for (size_t i = 0; i < t.n_tokens; i++) {
            t.tokens[i].id = (int32_t)test_rng_int(&r, -2, 50001);
            t.tokens[i].piece = test_rng_int(&r, 0, 6) ? rand_string(&r, 0) : NULL;
            t.tokens[i].start = rand_time(&r, wild);
            t.tokens[i].end = rand_time(&r, wild);
            t.tokens[i].prob = wild && test_rng_int(&r, 0, 3) == 0 ? NAN : test_rng_uniform(&r, 0, 1);
        }
        t.wall_s = rand_time(&r, wild);
        t.load_s = rand_time(&r, wild);
        t.n_windows = test_rng_int(&r, 0, 1000);

        check_random_formats(&t);

        /* the JSON text field decodes back to the (valid UTF-8) input text exactly */
        char *buf, *got;
        size_t n, gn;
        ck_assert_int_eq(write_mem(&t, TR_FORMAT_JSON, &buf, &n), COCHLEA_OK);
        ck_assert(json_valid(buf, n, "text", &got, &gn));
        ck_assert_ptr_nonnull(got);
        ck_assert_uint_eq(gn, strlen(t.text));
        ck_assert_str_eq(got, t.text);
        free(got);
        free(buf);

        free(t.source);
        free(t.lang_probs);
        free(t.text);
        for (size_t i = 0; i < t.n_segments; i++)
            free(t.segments[i].text);
        for (size_t i = 0; i < t.n_words; i++)
            free(t.words[i].text);
        for (size_t i = 0; i < t.n_tokens; i++)
            free(t.tokens[i].piece);
        free(t.segments);
        free(t.words);
        free(t.tokens);
    }
}
END_TEST

/* ---- names and errors --------------------------------------------------------------------- */

START_TEST(test_format_names)
{
    static const char *names[] = {"txt", "srt", "vtt", "json", "tsv"};
    for (int i = 0; i < 5; i++) {
        enum tr_format f = TR_FORMAT_TSV;
        ck_assert_int_eq(tr_format_parse(names[i], &f), COCHLEA_OK);
        ck_assert_int_eq(f, (enum tr_format)i);
        ck_assert_str_eq(tr_format_name(f), names[i]);
    }
    enum tr_format f = TR_FORMAT_TXT;
    ck_assert_int_eq(tr_format_parse("SRT", &f), COCHLEA_OK);
    ck_assert_int_eq(f, TR_FORMAT_SRT);
    ck_assert_int_eq(tr_format_parse("Json", &f), COCHLEA_OK);
    ck_assert_int_eq(f, TR_FORMAT_JSON);
    ck_assert_ptr_null(tr_format_name((enum tr_format)5));
    ck_assert_ptr_null(tr_format_name((enum tr_format)-1));

    static const char *bad[] = {"xml", "", "jsonl", "json ", "tx", "text", "webvtt", "s\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f = TR_FORMAT_VTT;
        cochlea_clear_error();
        ck_assert_int_eq(tr_format_parse(bad[i], &f), COCHLEA_EINVAL);
        ck_assert_int_eq(f, TR_FORMAT_VTT); /* untouched */
        char exp[128];
        snprintf(exp, sizeof exp, "unknown output format '%s' (expected txt, srt, vtt, json or tsv)", bad[i]);
        ck_assert_str_eq(cochlea_last_error(), exp);
    }
    ck_assert_int_eq(tr_format_parse(NULL, &f), COCHLEA_EINVAL);
    ck_assert_int_eq(tr_format_parse("txt", NULL), COCHLEA_EINVAL);
}
END_TEST

START_TEST(test_write_errors)
{
    tr_transcript t = main_transcript();
    char *buf;
    size_t n;

    ck_assert_int_eq(write_mem(NULL, TR_FORMAT_JSON, &buf, &n), COCHLEA_EINVAL);
    ck_assert_str_eq(cochlea_last_error(), "tr_write: NULL transcript");
    ck_assert_uint_eq(n, 0);
    free(buf);
    ck_assert_int_eq(tr_write(&t, TR_FORMAT_TXT, NULL), COCHLEA_EINVAL);
    ck_assert_int_eq(write_mem(&t, (enum tr_format)5, &buf, &n), COCHLEA_EINVAL);
    ck_assert_uint_eq(n, 0);
    free(buf);
    ck_assert_int_eq(write_mem(&t, (enum tr_format)-1, &buf, &n), COCHLEA_EINVAL);
    free(buf);

    /* a time that cannot be a subtitle time: ERANGE for srt, vtt, tsv, nothing written;
     * json writes null and txt has no times */
    static const double badt[] = {NAN, INFINITY, -INFINITY, 2e12, -2e12};
    for (size_t k = 0; k < sizeof badt / sizeof badt[0]; k++) {
        tr_segment segs[8];
        memcpy(segs, main_segments, sizeof segs);
        if (k % 2)
            segs[7].end = badt[k];
        else
            segs[7].start = badt[k];
        t.segments = segs;
        for (int f = TR_FORMAT_SRT; f <= TR_FORMAT_TSV; f++) {
            if (f == TR_FORMAT_JSON)
                continue;
            ck_assert_int_eq(write_mem(&t, (enum tr_format)f, &buf, &n), COCHLEA_ERANGE);
            ck_assert_uint_eq(n, 0);
            ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "transcript segment 7"));
            free(buf);
        }
        ck_assert_int_eq(write_mem(&t, TR_FORMAT_TXT, &buf, &n), COCHLEA_OK);
        free(buf);
        ck_assert_int_eq(write_mem(&t, TR_FORMAT_JSON, &buf, &n), COCHLEA_OK);
        if (k == 3)
            ck_assert_ptr_nonnull(strstr(buf, "\"end\": 2000000000000, \"text\": \"The end.\""));
        else if (k == 4)
            ck_assert_ptr_nonnull(strstr(buf, "{\"start\": -2000000000000, \"end\": 3724.000"));
        else
            ck_assert_ptr_nonnull(strstr(buf, k % 2 ? "\"end\": null, \"text\": \"The end.\""
                                                     : "{\"start\": null, \"end\": 3724.000"));
        ck_assert(json_valid(buf, n, NULL, NULL, NULL));
        free(buf);
    }
    /* the largest accepted time */
    {
        tr_segment seg = {S("x"), TR_WRITE_MAX_TIME, TR_WRITE_MAX_TIME, 0, 0};
        tr_transcript u;
        memset(&u, 0, sizeof u);
        u.segments = &seg;
        u.n_segments = 1;
        expect_output(&u, TR_FORMAT_SRT, "1\n277777777:46:40,000 --> 277777777:46:40,001\nx\n\n");
        expect_output(&u, TR_FORMAT_TSV, "start\tend\ttext\n1000000000000000\t1000000000000000\tx\n");
    }
    t = main_transcript();

    /* malformed transcripts */
    t.segments = NULL;
    ck_assert_int_eq(write_mem(&t, TR_FORMAT_TXT, &buf, &n), COCHLEA_EFORMAT);
    free(buf);
    t = main_transcript();
    t.tokens = NULL;
    ck_assert_int_eq(write_mem(&t, TR_FORMAT_JSON, &buf, &n), COCHLEA_EFORMAT);
    free(buf);
    t = main_transcript();
    t.lang_probs = NULL;
    ck_assert_int_eq(write_mem(&t, TR_FORMAT_JSON, &buf, &n), COCHLEA_EFORMAT);
    free(buf);
    t = main_transcript();
    t.n_words = 10; /* segment 7 uses words [9, 11) */
    ck_assert_int_eq(write_mem(&t, TR_FORMAT_JSON, &buf, &n), COCHLEA_EFORMAT);
    ck_assert_str_eq(cochlea_last_error(), "transcript segment 7: words [9, 11) outside the 10 words");
    ck_assert_uint_eq(n, 0);
    free(buf);
    {
        tr_segment segs[8];
        memcpy(segs, main_segments, sizeof segs);
        segs[2].word0 = 7; /* > word1 = 6 */
        t = main_transcript();
        t.segments = segs;
        ck_assert_int_eq(write_mem(&t, TR_FORMAT_SRT, &buf, &n), COCHLEA_EFORMAT);
        free(buf);
    }

    /* a stream that cannot be written */
    t = main_transcript();
    FILE *ro = fopen("/dev/null", "r");
    ck_assert_ptr_nonnull(ro);
    for (int f = TR_FORMAT_TXT; f <= TR_FORMAT_TSV; f++) {
        clearerr(ro);
        ck_assert_int_eq(tr_write(&t, (enum tr_format)f, ro), COCHLEA_EIO);
        ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "writing "));
    }
    fclose(ro);
}
END_TEST

static Suite *writers_suite(void)
{
    Suite *s = suite_create("asr_writers");
    TCase *tc = tcase_create("writers");
    tcase_add_test(tc, test_golden_main);
    tcase_add_test(tc, test_golden_edge);
    tcase_add_test(tc, test_empty_and_text_only);
    tcase_add_test(tc, test_json_parser_self_check);
    tcase_add_test(tc, test_golden_json_parses);
    tcase_add_test(tc, test_random_transcripts);
    tcase_add_test(tc, test_format_names);
    tcase_add_test(tc, test_write_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(writers_suite());
}
