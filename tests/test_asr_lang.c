/* test_asr_lang.c - asr/lang.c: the 151-language table against the token layout of
 * owsm-ctc.md §5.1 (and the released bpe.model when COCHLEA_SHARED is set), language/task/list
 * parsing with their error messages, models with fewer languages (a fake token lookup), the
 * --list-languages text, and language identification on hand-made CTC posteriors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asr/lang.h"
#include "error.h"
#include "testutil.h"
#include "tokenizer.h"

/* owsm-ctc.md §5.1, ids 4..154, copied independently of lang.c */
static const char SPEC_LANGS[] =
    "abk afr amh ara asm ast aze bak bas bel ben bos bre bul cat ceb ces chv ckb cmn cnh cym dan deu dgd div "
    "ell eng epo est eus fas fil fin fra frr ful gle glg grn guj hat hau heb hin hrv hsb hun hye ibo ina ind "
    "isl ita jav jpn kab kam kan kat kaz kea khm kin kir kmr kor lao lav lga lin lit ltz lug luo mal mar mas "
    "mdf mhr mkd mlt mon mri mrj mya myv nan nep nld nno nob npi nso nya oci ori orm ory pan pol por pus quy "
    "roh ron rus sah sat sin skr slk slv sna snd som sot spa srd srp sun swa swe swh tam tat tel tgk tgl tha "
    "tig tir tok tpi tsn tuk tur twi uig ukr umb urd uzb vie vot wol xho yor yue zho zul";
static const char SPEC_TARGETS[] =
    "ara cat ces cym deu eng est fas fra ind ita jpn lav mon nld por ron rus slv spa swe tam tur vie zho";

#define EXPECT_ERR(call, code, msg)                                                                          \
    do {                                                                                                     \
        cochlea_clear_error();                                                                               \
        ck_assert_int_eq((call), (code));                                                                    \
        ck_assert_str_eq(cochlea_last_error(), (msg));                                                       \
    } while (0)

static int lc_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        int x = *a >= 'A' && *a <= 'Z' ? *a + 32 : *a, y = *b >= 'A' && *b <= 'Z' ? *b + 32 : *b;
        if (x != y)
            return 0;
    }
    return *a == *b;
}

/* ---- the table ---------------------------------------------------------------------------- */

START_TEST(test_table_order)
{
    size_t n = 0;
    const asr_lang_info *t = asr_lang_table(&n);
    ck_assert_uint_eq(n, 151);
    ck_assert_uint_eq(ASR_LANG_N, 151);
    /* entry i = token id 4 + i, in the exact order of the spec */
    char buf[sizeof SPEC_LANGS];
    memcpy(buf, SPEC_LANGS, sizeof buf);
    size_t i = 0;
    for (char *w = strtok(buf, " "); w; w = strtok(NULL, " "), i++) {
        ck_assert_uint_lt(i, n);
        ck_assert_str_eq(t[i].code, w);
        ck_assert_int_eq(asr_lang_index(w), (int)i);
    }
    ck_assert_uint_eq(i, 151);
    ck_assert_str_eq(t[4 - ASR_LANG_FIRST_ID].code, "abk");
    ck_assert_str_eq(t[31 - ASR_LANG_FIRST_ID].code, "eng");
    ck_assert_str_eq(t[27 - ASR_LANG_FIRST_ID].code, "deu");
    ck_assert_str_eq(t[95 - ASR_LANG_FIRST_ID].code, "nob");
    ck_assert_str_eq(t[127 - ASR_LANG_FIRST_ID].code, "swh");
    ck_assert_str_eq(t[153 - ASR_LANG_FIRST_ID].code, "zho");
    ck_assert_str_eq(t[154 - ASR_LANG_FIRST_ID].code, "zul");
    ck_assert_int_eq(asr_lang_index("xyz"), -1);
    ck_assert_int_eq(asr_lang_index("ENG"), -1); /* exact lookup only */
    ck_assert_int_eq(asr_lang_index(NULL), -1);

    size_t nt = 0;
    const char *const *tg = asr_st_targets(&nt);
    ck_assert_uint_eq(nt, 25);
    memcpy(buf, SPEC_TARGETS, sizeof SPEC_TARGETS);
    i = 0;
    for (char *w = strtok(buf, " "); w; w = strtok(NULL, " "), i++)
        ck_assert_str_eq(tg[i], w);
    ck_assert_uint_eq(i, 25);
}
END_TEST

START_TEST(test_table_entries)
{
    const asr_lang_info *t = asr_lang_table(NULL);
    struct {
        const char *c3, *c1, *name;
    } ex[] = {
        {"deu", "de", "German"},   {"cmn", "", "Mandarin Chinese"}, {"zho", "zh", "Chinese"},
        {"yue", "", "Cantonese"},  {"nob", "nb", "Norwegian Bokm\xc3\xa5l"}, {"fas", "fa", "Persian"},
        {"fil", "", "Filipino"},   {"eng", "en", "English"},        {"spa", "es", "Spanish"},
        {"dgd", "", "Dagaari Dioula"}, {"lga", "", "Lungga"},       {"kam", "", "Kamba (Kenya)"},
        {"mhr", "", "Eastern Mari"}, {"mrj", "", "Western Mari"},   {"frr", "", "Northern Frisian"},
        {"heb", "he", "Hebrew"},   {"ind", "id", "Indonesian"},     {"tok", "", "Toki Pona"},
    };
    for (size_t k = 0; k < sizeof ex / sizeof ex[0]; k++) {
        int i = asr_lang_index(ex[k].c3);
        ck_assert_int_ge(i, 0);
        ck_assert_str_eq(t[i].code1, ex[k].c1);
        ck_assert_str_eq(t[i].name, ex[k].name);
    }
    /* well-formed, and every code, 639-1 code, name and alias names one language only */
    for (int i = 0; i < ASR_LANG_N; i++) {
        ck_assert_uint_eq(strlen(t[i].code), 3);
        ck_assert(strlen(t[i].code1) == 0 || strlen(t[i].code1) == 2);
        ck_assert_uint_gt(strlen(t[i].name), 2);
        for (const char *p = t[i].code; *p; p++)
            ck_assert(*p >= 'a' && *p <= 'z');
        if (i > 0)
            ck_assert_int_lt(strcmp(t[i - 1].code, t[i].code), 0);
    }
    char keys[ASR_LANG_N * 8][64];
    int owner[ASR_LANG_N * 8], nk = 0;
    for (int i = 0; i < ASR_LANG_N; i++) {
        snprintf(keys[nk], 64, "%s", t[i].code), owner[nk++] = i;
        if (t[i].code1[0])
            snprintf(keys[nk], 64, "%s", t[i].code1), owner[nk++] = i;
        snprintf(keys[nk], 64, "%s", t[i].name), owner[nk++] = i;
        const char *a = t[i].alias;
        while (*a) {
            const char *e = strchr(a, '|');
            int len = e ? (int)(e - a) : (int)strlen(a);
            ck_assert_int_gt(len, 0);
            snprintf(keys[nk], 64, "%.*s", len, a), owner[nk++] = i;
            a += len + (e ? 1 : 0);
        }
    }
    for (int a = 0; a < nk; a++) {
        for (int b = a + 1; b < nk; b++)
            ck_assert_msg(owner[a] == owner[b] || !lc_eq(keys[a], keys[b]), "'%s' names %s and %s", keys[a],
                          t[owner[a]].code, t[owner[b]].code);
        /* and each parses back to its language, in any case */
        char code[16], up[64];
        ck_assert_msg(asr_lang_parse(keys[a], code) == COCHLEA_OK, "%s: %s", keys[a], cochlea_last_error());
        ck_assert_str_eq(code, t[owner[a]].code);
        for (int c = 0; c < 64; c++)
            up[c] = keys[a][c] >= 'a' && keys[a][c] <= 'z' ? (char)(keys[a][c] - 32) : keys[a][c];
        ck_assert_int_eq(asr_lang_parse(up, code), COCHLEA_OK);
        ck_assert_str_eq(code, t[owner[a]].code);
    }
    ck_assert_int_gt(nk, 151 + 100);
}
END_TEST

/* ---- parsing ------------------------------------------------------------------------------ */

#define PARSES(s, want)                                                                                      \
    do {                                                                                                     \
        char c_[16] = "junk";                                                                                \
        ck_assert_msg(asr_lang_parse((s), c_) == COCHLEA_OK, "%s: %s", (s), cochlea_last_error());           \
        ck_assert_str_eq(c_, (want));                                                                        \
    } while (0)

START_TEST(test_lang_parse)
{
    PARSES("eng", "eng");
    PARSES("<eng>", "eng");
    PARSES("en", "eng");
    PARSES("english", "eng");
    PARSES("English", "eng");
    PARSES("ENGLISH", "eng");
    PARSES("EN", "eng");
    PARSES(" <DEU>\t", "deu");
    PARSES("de", "deu");
    PARSES("zh", "zho");
    PARSES("chinese", "zho");
    PARSES("mandarin", "cmn");
    PARSES("Mandarin Chinese", "cmn");
    PARSES("cantonese", "yue");
    PARSES("farsi", "fas");
    PARSES("nb", "nob");
    PARSES("norwegian bokmal", "nob");
    PARSES("Norwegian Bokm\xc3\xa5l", "nob");
    PARSES("nynorsk", "nno");
    PARSES("filipino", "fil");
    PARSES("tl", "tgl");
    PARSES("sw", "swa");
    PARSES("he", "heb");
    PARSES("Swahili (individual language)", "swh");

    char code[16] = "keep";
    EXPECT_ERR(asr_lang_parse("germn", code), COCHLEA_EINVAL,
               "unknown language 'germn'; the 151 languages are listed by --list-languages; "
               "did you mean 'deu' (German)?");
    ck_assert_str_eq(code, "keep");
    EXPECT_ERR(asr_lang_parse("Engl", code), COCHLEA_EINVAL,
               "unknown language 'engl'; the 151 languages are listed by --list-languages; "
               "did you mean 'eng' (English)?");
    EXPECT_ERR(asr_lang_parse("portugese", code), COCHLEA_EINVAL,
               "unknown language 'portugese'; the 151 languages are listed by --list-languages; "
               "did you mean 'por' (Portuguese)?");
    EXPECT_ERR(asr_lang_parse("swahil", code), COCHLEA_EINVAL,
               "unknown language 'swahil'; the 151 languages are listed by --list-languages; "
               "did you mean 'swa' (Swahili) or 'swh' (Swahili (individual language))?");
    /* a name that starts with the input counts as near */
    EXPECT_ERR(asr_lang_parse("bokm", code), COCHLEA_EINVAL,
               "unknown language 'bokm'; the 151 languages are listed by --list-languages; "
               "did you mean 'nob' (Norwegian Bokm\xc3\xa5l)?");
    EXPECT_ERR(asr_lang_parse("<qqq>", code), COCHLEA_EINVAL,
               "unknown language 'qqq'; the 151 languages are listed by --list-languages");
    EXPECT_ERR(asr_lang_parse("auto", code), COCHLEA_EINVAL,
               "unknown language 'auto'; the 151 languages are listed by --list-languages");
    EXPECT_ERR(asr_lang_parse("", code), COCHLEA_EINVAL,
               "invalid language ''; the 151 languages are listed by --list-languages");
    EXPECT_ERR(asr_lang_parse("<>", code), COCHLEA_EINVAL,
               "invalid language '<>'; the 151 languages are listed by --list-languages");
    ck_assert_int_eq(asr_lang_parse(NULL, code), COCHLEA_EINVAL);
    char longs[200];
    memset(longs, 'e', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    ck_assert_int_eq(asr_lang_parse(longs, code), COCHLEA_EINVAL);
    ck_assert_str_eq(code, "keep");
}
END_TEST

#define TASK(s, want)                                                                                        \
    do {                                                                                                     \
        char t_[32] = "junk";                                                                                \
        ck_assert_msg(asr_task_parse((s), t_) == COCHLEA_OK, "%s: %s", (s), cochlea_last_error());           \
        ck_assert_str_eq(t_, (want));                                                                        \
    } while (0)

START_TEST(test_task_parse)
{
    TASK("asr", "asr");
    TASK("<asr>", "asr");
    TASK("ASR", "asr");
    TASK("st_deu", "st_deu");
    TASK("<st_deu>", "st_deu");
    TASK("deu", "st_deu");
    TASK("de", "st_deu");
    TASK("german", "st_deu");
    TASK("St_De", "st_deu");
    TASK("zh", "st_zho");
    TASK("<jpn>", "st_jpn");
    TASK("Welsh", "st_cym");
    /* every target parses from its code and its name */
    const asr_lang_info *t = asr_lang_table(NULL);
    const char *const *tg = asr_st_targets(NULL);
    for (int j = 0; j < ASR_ST_N; j++) {
        char want[32], got[32];
        snprintf(want, sizeof want, "st_%s", tg[j]);
        ck_assert_int_eq(asr_task_parse(t[asr_lang_index(tg[j])].name, got), COCHLEA_OK);
        ck_assert_str_eq(got, want);
        int32_t id = -1;
        ck_assert_int_eq(asr_task_parse_in(want, NULL, NULL, got, &id), COCHLEA_OK);
        ck_assert_int_eq(id, ASR_ST_FIRST_ID + j);
    }
    int32_t id = -1;
    char task[32] = "keep";
    ck_assert_int_eq(asr_task_parse_in("asr", NULL, NULL, task, &id), COCHLEA_OK);
    ck_assert_int_eq(id, 155);
    ck_assert_int_eq(asr_task_parse_in("<st_eng>", NULL, NULL, task, &id), COCHLEA_OK);
    ck_assert_int_eq(id, 161);
    ck_assert_int_eq(asr_task_parse_in("zho", NULL, NULL, task, &id), COCHLEA_OK);
    ck_assert_int_eq(id, 180);

    strcpy(task, "keep");
    const char *targets = "; the 25 translation targets are: ara cat ces cym deu eng est fas fra ind ita jpn lav "
                          "mon nld por ron rus slv spa swe tam tur vie zho";
    char msg[512];
    snprintf(msg, sizeof msg, "'kor' (Korean) is not a translation target%s", targets);
    EXPECT_ERR(asr_task_parse("kor", task), COCHLEA_EINVAL, msg);
    EXPECT_ERR(asr_task_parse("st_korean", task), COCHLEA_EINVAL, msg);
    snprintf(msg, sizeof msg, "unknown task or translation target 'st_xyz'%s", targets);
    EXPECT_ERR(asr_task_parse("<st_xyz>", task), COCHLEA_EINVAL, msg);
    snprintf(msg, sizeof msg, "unknown task or translation target 'st_germn'%s; did you mean 'deu' (German)?",
             targets);
    EXPECT_ERR(asr_task_parse("st_germn", task), COCHLEA_EINVAL, msg);
    snprintf(msg, sizeof msg, "invalid task '  ': expected asr or a translation target%s", targets);
    EXPECT_ERR(asr_task_parse("  ", task), COCHLEA_EINVAL, msg);
    ck_assert_str_eq(task, "keep");
}
END_TEST

/* ---- a model with a few languages --------------------------------------------------------- */

typedef struct fake_model {
    const char *const *pieces;
    const int32_t *ids;
    int n;
    int calls;
} fake_model;

static int32_t fake_lookup(void *user, const char *piece)
{
    fake_model *m = user;
    m->calls++;
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->pieces[i], piece) == 0)
            return m->ids[i];
    return -1;
}

static const char *const FAKE_PIECES[] = {"<blank>", "<eng>", "<deu>", "<fra>", "<asr>", "<st_eng>", "<st_deu>",
                                          "<xxx>", "<spa"};
static const int32_t FAKE_IDS[] = {0, 8, 7, 9, 20, 22, 21, 10, 11};

START_TEST(test_model_subset)
{
    fake_model m = {FAKE_PIECES, FAKE_IDS, 9, 0};
    char code[16] = "keep", task[32] = "keep";
    int32_t id = -1;
    ck_assert_int_eq(asr_lang_parse_in("English", fake_lookup, &m, code, &id), COCHLEA_OK);
    ck_assert_str_eq(code, "eng");
    ck_assert_int_eq(id, 8);
    ck_assert_int_gt(m.calls, 0);
    ck_assert_int_eq(asr_lang_parse_in("<fra>", fake_lookup, &m, code, NULL), COCHLEA_OK);
    ck_assert_str_eq(code, "fra");
    EXPECT_ERR(asr_lang_parse_in("ja", fake_lookup, &m, code, &id), COCHLEA_EINVAL,
               "language 'jpn' (Japanese) is not in this model; the 3 languages of this model are: deu eng fra");
    /* suggestions only among the model's languages: "frn" is 1 from fra and from fin (absent) */
    EXPECT_ERR(asr_lang_parse_in("frn", fake_lookup, &m, code, &id), COCHLEA_EINVAL,
               "unknown language 'frn'; the 3 languages of this model are: deu eng fra; did you mean 'fra' (French)?");
    EXPECT_ERR(asr_lang_parse("frn", code), COCHLEA_EINVAL,
               "unknown language 'frn'; the 151 languages are listed by --list-languages; did you mean 'fin' "
               "(Finnish), 'fra' (French) or 'frr' (Northern Frisian)?");
    ck_assert_str_eq(code, "fra");

    ck_assert_int_eq(asr_task_parse_in("asr", fake_lookup, &m, task, &id), COCHLEA_OK);
    ck_assert_str_eq(task, "asr");
    ck_assert_int_eq(id, 20);
    ck_assert_int_eq(asr_task_parse_in("german", fake_lookup, &m, task, &id), COCHLEA_OK);
    ck_assert_str_eq(task, "st_deu");
    ck_assert_int_eq(id, 21);
    EXPECT_ERR(asr_task_parse_in("spa", fake_lookup, &m, task, &id), COCHLEA_EINVAL,
               "translation to 'spa' (Spanish) is not in this model; the 2 translation targets of this model are: "
               "deu eng");
    EXPECT_ERR(asr_task_parse_in("fra", fake_lookup, &m, task, &id), COCHLEA_EINVAL,
               "translation to 'fra' (French) is not in this model; the 2 translation targets of this model are: "
               "deu eng");
    fake_model noasr = {FAKE_PIECES, FAKE_IDS, 4, 0};
    EXPECT_ERR(asr_task_parse_in("<asr>", fake_lookup, &noasr, task, &id), COCHLEA_EINVAL,
               "this model has no <asr> task token");
    ck_assert_str_eq(task, "st_deu");

    int32_t ids[ASR_LANG_N];
    const char *codes[ASR_LANG_N];
    size_t n = 0;
    asr_lang_model_set(fake_lookup, &m, ids, codes, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(ids[0], 7);
    ck_assert_str_eq(codes[0], "deu");
    ck_assert_int_eq(ids[1], 8);
    ck_assert_str_eq(codes[1], "eng");
    ck_assert_int_eq(ids[2], 9);
    ck_assert_str_eq(codes[2], "fra");
    asr_lang_model_set(NULL, NULL, ids, codes, &n);
    ck_assert_uint_eq(n, 151);
    for (int i = 0; i < 151; i++)
        ck_assert_int_eq(ids[i], 4 + i);
    ck_assert_str_eq(codes[27], "eng");

    char *list = NULL;
    ck_assert_int_eq(asr_lang_list_format(fake_lookup, &m, &list), COCHLEA_OK);
    ck_assert_str_eq(list, "   id  639-3 639-1 name\n"
                           "    7  deu   de    German\n"
                           "    8  eng   en    English\n"
                           "    9  fra   fr    French\n"
                           "translation targets (2): deu eng\n");
    free(list);
}
END_TEST

START_TEST(test_list_format)
{
    char *list = NULL;
    ck_assert_int_eq(asr_lang_list_format(NULL, NULL, &list), COCHLEA_OK);
    ck_assert_ptr_nonnull(list);
    int lines = 0;
    for (const char *p = list; *p; p++)
        lines += *p == '\n';
    ck_assert_int_eq(lines, 1 + 151 + 1);
    ck_assert(strncmp(list, "   id  639-3 639-1 name\n    4  abk   ab    Abkhazian\n    5  afr   af    Afrikaans\n",
                      82) == 0);
    ck_assert_ptr_nonnull(strstr(list, "\n   23  cmn   -     Mandarin Chinese\n"));
    ck_assert_ptr_nonnull(strstr(list, "\n   31  eng   en    English\n"));
    ck_assert_ptr_nonnull(strstr(list, "\n   95  nob   nb    Norwegian Bokm\xc3\xa5l\n"));
    ck_assert_ptr_nonnull(strstr(list, "\n  154  zul   zu    Zulu\ntranslation targets (25): ara cat ces cym deu eng "
                                       "est fas fra ind ita jpn lav mon nld por ron rus slv spa swe tam tur vie zho\n"));
    ck_assert_uint_eq(strlen(strstr(list, "  154  zul")), 24 + 126);
    free(list);
    ck_assert_int_eq(asr_lang_list_format(NULL, NULL, NULL), COCHLEA_EINVAL);
}
END_TEST

START_TEST(test_parse_list)
{
    int32_t ids[8];
    size_t n = 99;
    ck_assert_int_eq(asr_lang_parse_list("eng,deu, fra", NULL, NULL, ids, 8, &n), COCHLEA_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(ids[0], 31);
    ck_assert_int_eq(ids[1], 27);
    ck_assert_int_eq(ids[2], 38);
    ck_assert_int_eq(asr_lang_parse_list(" en,,English <deu>  german,", NULL, NULL, ids, 8, &n), COCHLEA_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ids[0], 31);
    ck_assert_int_eq(ids[1], 27);
    fake_model m = {FAKE_PIECES, FAKE_IDS, 9, 0};
    ck_assert_int_eq(asr_lang_parse_list("fra,eng", fake_lookup, &m, ids, 2, &n), COCHLEA_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ids[0], 9);
    ck_assert_int_eq(ids[1], 8);
    n = 99;
    EXPECT_ERR(asr_lang_parse_list("fra,eng,deu", fake_lookup, &m, ids, 2, &n), COCHLEA_EINVAL,
               "language list: more than 2 languages");
    EXPECT_ERR(asr_lang_parse_list("eng,jpn", fake_lookup, &m, ids, 8, &n), COCHLEA_EINVAL,
               "language list: language 'jpn' (Japanese) is not in this model; the 3 languages of this model "
               "are: deu eng fra");
    EXPECT_ERR(asr_lang_parse_list(" , ", NULL, NULL, ids, 8, &n), COCHLEA_EINVAL,
               "language list ' , ' names no language");
    EXPECT_ERR(asr_lang_parse_list("eng,qqq", NULL, NULL, ids, 8, &n), COCHLEA_EINVAL,
               "language list: unknown language 'qqq'; the 151 languages are listed by --list-languages");
    ck_assert_uint_eq(n, 0);
}
END_TEST

/* ---- language identification -------------------------------------------------------------- */

#define V 200
#define T 6
#define DEU 27
#define ENG 31
#define FRA 38

/* All positions: blank (id 0) most probable, other non-language tokens log 1e-4, language
 * tokens probability 0. */
static float *posteriors(void)
{
    float *lp = test_alloc((size_t)T * V);
    for (int t = 0; t < T; t++)
        for (int v = 0; v < V; v++)
            lp[t * V + v] = v == 0 ? logf(0.9f) : (v >= 4 && v <= 154) ? -INFINITY : logf(1e-4f);
    return lp;
}

static void std_lang_ids(int32_t ids[151])
{
    for (int i = 0; i < 151; i++)
        ids[i] = 4 + i;
}

#define EXPECT_LANG(o, c, p)                                                                                 \
    do {                                                                                                     \
        ck_assert_str_eq((o).code, (c));                                                                     \
        ck_assert_msg(fabs((double)(o).prob - (p)) < 1e-6, "%s: %.9g != %.9g", (c), (double)(o).prob,      \
                      (double)(p));                                                                          \
    } while (0)

START_TEST(test_detect_spike)
{
    float *lp = posteriors();
    int32_t ids[151];
    std_lang_ids(ids);
    /* frame 1: <deu> emitted; frame 3 would emit <eng> but comes later */
    lp[1 * V + 0] = logf(0.05f);
    lp[1 * V + DEU] = logf(0.6f);
    lp[1 * V + ENG] = logf(0.2f);
    lp[1 * V + FRA] = logf(0.1f);
    lp[3 * V + ENG] = logf(0.95f);
    tr_lang out[5];
    memset(out, 0x55, sizeof out);
    size_t n = 0;
    int64_t frame = -1;
    int emitted = -1;
    ck_assert_int_eq(asr_lang_detect(lp, T, V, ids, NULL, 151, NULL, 0, out, 5, &n, &frame, &emitted), COCHLEA_OK);
    ck_assert_uint_eq(n, 5);
    ck_assert_int_eq(frame, 1);
    ck_assert_int_eq(emitted, 1);
    EXPECT_LANG(out[0], "deu", 0.6 / 0.9);
    EXPECT_LANG(out[1], "eng", 0.2 / 0.9);
    EXPECT_LANG(out[2], "fra", 0.1 / 0.9);
    EXPECT_LANG(out[3], "abk", 0.0); /* probability 0: table order */
    EXPECT_LANG(out[4], "afr", 0.0);

    /* the language token at prefix position 0 counts too */
    lp[0 * V + 0] = logf(0.1f);
    lp[0 * V + 150] = logf(0.7f); /* xho */
    lp[0 * V + 151] = logf(0.2f); /* yor */
    ck_assert_int_eq(asr_lang_detect(lp, T, V, ids, NULL, 151, NULL, 0, out, 2, &n, &frame, NULL), COCHLEA_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(frame, 0);
    EXPECT_LANG(out[0], "xho", 0.7 / 0.9);
    EXPECT_LANG(out[1], "yor", 0.2 / 0.9);

    /* argmax ties go to the lowest id: blank (0) ties <xho> at frame 0, so frame 1 is used */
    lp[0 * V + 0] = logf(0.7f);
    ck_assert_int_eq(asr_lang_detect(lp, T, V, ids, NULL, 151, NULL, 0, out, 1, &n, &frame, &emitted), COCHLEA_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(frame, 1);
    EXPECT_LANG(out[0], "deu", 0.6 / 0.9);
    free(lp);
}
END_TEST

START_TEST(test_detect_mass)
{
    float *lp = posteriors();
    int32_t ids[151];
    std_lang_ids(ids);
    /* no position's argmax is a language; mass 0.01 at 0, 0.3 at 2, 0.25 at 4, 0.3 at 5 */
    lp[0 * V + 100] = logf(0.01f);
    lp[2 * V + ENG] = logf(0.2f);
    lp[2 * V + DEU] = logf(0.1f);
    lp[4 * V + FRA] = logf(0.25f);
    lp[5 * V + FRA] = logf(0.2f);
    lp[5 * V + DEU] = logf(0.1f);
    tr_lang out[3];
    size_t n = 0;
    int64_t frame = -1;
    int emitted = -1;
    ck_assert_int_eq(asr_lang_detect(lp, T, V, ids, NULL, 151, NULL, 0, out, 3, &n, &frame, &emitted), COCHLEA_OK);
    ck_assert_int_eq(frame, 2); /* earliest of the equal masses at 2 and 5 */
    ck_assert_int_eq(emitted, 0);
    ck_assert_uint_eq(n, 3);
    EXPECT_LANG(out[0], "eng", 2.0 / 3.0);
    EXPECT_LANG(out[1], "deu", 1.0 / 3.0);
    EXPECT_LANG(out[2], "abk", 0.0);
    /* more mass at 4 -> frame 4 */
    lp[4 * V + FRA] = logf(0.35f);
    ck_assert_int_eq(asr_lang_detect(lp, T, V, ids, NULL, 151, NULL, 0, out, 3, &n, &frame, &emitted), COCHLEA_OK);
    ck_assert_int_eq(frame, 4);
    EXPECT_LANG(out[0], "fra", 1.0);
    EXPECT_LANG(out[1], "abk", 0.0);
    /* candidates do not move the frame: at 4 only fra has mass, deu/eng get 0 -> ERANGE */
    int32_t cand[2] = {DEU, ENG};
    EXPECT_ERR(asr_lang_detect(lp, T, V, ids, NULL, 151, cand, 2, out, 3, &n, &frame, &emitted), COCHLEA_ERANGE,
               "asr_lang_detect: every candidate language has probability 0 at position 4");
    free(lp);
}
END_TEST

START_TEST(test_detect_candidates)
{
    float *lp = posteriors();
    int32_t ids[151];
    std_lang_ids(ids);
    lp[1 * V + 0] = logf(0.05f);
    lp[1 * V + DEU] = logf(0.6f);
    lp[1 * V + ENG] = logf(0.2f);
    lp[1 * V + FRA] = logf(0.1f);
    lp[1 * V + 59] = logf(0.05f); /* jpn */
    tr_lang out[5];
    size_t n = 0;
    int64_t frame = -1;
    int emitted = -1;
    /* k (5) larger than the candidate set (2, one duplicate): the emitted deu is not a candidate,
     * yet its frame is the one used */
    int32_t cand[3] = {FRA, ENG, FRA};
    ck_assert_int_eq(asr_lang_detect(lp, T, V, ids, NULL, 151, cand, 3, out, 5, &n, &frame, &emitted), COCHLEA_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(frame, 1);
    ck_assert_int_eq(emitted, 1);
    EXPECT_LANG(out[0], "eng", 2.0 / 3.0);
    EXPECT_LANG(out[1], "fra", 1.0 / 3.0);
    int32_t cand3[3] = {59, FRA, DEU};
    ck_assert_int_eq(asr_lang_detect(lp, T, V, ids, NULL, 151, cand3, 3, out, 5, &n, NULL, NULL), COCHLEA_OK);
    ck_assert_uint_eq(n, 3);
    EXPECT_LANG(out[0], "deu", 0.6 / 0.75);
    EXPECT_LANG(out[1], "fra", 0.1 / 0.75);
    EXPECT_LANG(out[2], "jpn", 0.05 / 0.75);
    /* errors */
    int32_t bad[1] = {155};
    EXPECT_ERR(asr_lang_detect(lp, T, V, ids, NULL, 151, bad, 1, out, 5, &n, NULL, NULL), COCHLEA_EINVAL,
               "asr_lang_detect: candidate id 155 is not a language token");
    bad[0] = V;
    ck_assert_int_eq(asr_lang_detect(lp, T, V, ids, NULL, 151, bad, 1, out, 5, &n, NULL, NULL), COCHLEA_EINVAL);
    ck_assert_int_eq(asr_lang_detect(lp, T, V, ids, NULL, 151, cand, 0, out, 5, &n, NULL, NULL), COCHLEA_EINVAL);
    free(lp);
}
END_TEST

START_TEST(test_detect_ties_and_codes)
{
    float *lp = posteriors();
    int32_t ids[151];
    std_lang_ids(ids);
    lp[2 * V + 0] = logf(0.1f);
    lp[2 * V + DEU] = logf(0.3f);
    lp[2 * V + ENG] = logf(0.3f);
    lp[2 * V + FRA] = logf(0.3f);
    tr_lang out[4];
    size_t n = 0;
    int64_t frame = -1;
    ck_assert_int_eq(asr_lang_detect(lp, T, V, ids, NULL, 151, NULL, 0, out, 4, &n, &frame, NULL), COCHLEA_OK);
    ck_assert_int_eq(frame, 2);
    EXPECT_LANG(out[0], "deu", 1.0 / 3.0);
    EXPECT_LANG(out[1], "eng", 1.0 / 3.0);
    EXPECT_LANG(out[2], "fra", 1.0 / 3.0);
    EXPECT_LANG(out[3], "abk", 0.0);
    /* a model's own id set and codes (a small model): ties follow the order of lang_ids */
    int32_t mine[4] = {FRA, ENG, DEU, 59};
    const char *codes[4] = {"fra", "eng", "deu", "jpn"};
    ck_assert_int_eq(asr_lang_detect(lp, T, V, mine, codes, 4, NULL, 0, out, 4, &n, &frame, NULL), COCHLEA_OK);
    ck_assert_uint_eq(n, 4);
    EXPECT_LANG(out[0], "fra", 1.0 / 3.0);
    EXPECT_LANG(out[1], "eng", 1.0 / 3.0);
    EXPECT_LANG(out[2], "deu", 1.0 / 3.0);
    EXPECT_LANG(out[3], "jpn", 0.0);
    /* with only jpn and fra as the model's languages, deu is an ordinary token: no position's argmax
     * is a language, so the mass rule picks position 2 (fra 0.3) */
    int32_t two[2] = {59, FRA};
    const char *two_codes[2] = {"jpn", "fra"};
    int emitted = -1;
    ck_assert_int_eq(asr_lang_detect(lp, T, V, two, two_codes, 2, NULL, 0, out, 4, &n, &frame, &emitted),
                     COCHLEA_OK);
    ck_assert_int_eq(emitted, 0);
    ck_assert_int_eq(frame, 2);
    ck_assert_uint_eq(n, 2);
    EXPECT_LANG(out[0], "fra", 1.0);
    EXPECT_LANG(out[1], "jpn", 0.0);
    free(lp);
}
END_TEST

START_TEST(test_detect_errors)
{
    float *lp = posteriors();
    int32_t ids[151];
    std_lang_ids(ids);
    tr_lang out[2];
    size_t n;
    ck_assert_int_eq(asr_lang_detect(NULL, T, V, ids, NULL, 151, NULL, 0, out, 2, &n, NULL, NULL), COCHLEA_EINVAL);
    ck_assert_int_eq(asr_lang_detect(lp, 0, V, ids, NULL, 151, NULL, 0, out, 2, &n, NULL, NULL), COCHLEA_EINVAL);
    ck_assert_int_eq(asr_lang_detect(lp, T, V, ids, NULL, 151, NULL, 0, out, 0, &n, NULL, NULL), COCHLEA_EINVAL);
    ck_assert_int_eq(asr_lang_detect(lp, T, V, ids, NULL, 150, NULL, 0, out, 2, &n, NULL, NULL), COCHLEA_EINVAL);
    ck_assert_int_eq(asr_lang_detect(lp, T, 100, ids, NULL, 151, NULL, 0, out, 2, &n, NULL, NULL), COCHLEA_EINVAL);
    ck_assert_int_eq(asr_lang_detect(lp, INT64_MAX / 2, V, ids, NULL, 151, NULL, 0, out, 2, &n, NULL, NULL),
                     COCHLEA_ERANGE);
    ids[5] = ids[4];
    EXPECT_ERR(asr_lang_detect(lp, T, V, ids, NULL, 151, NULL, 0, out, 2, &n, NULL, NULL), COCHLEA_EINVAL,
               "asr_lang_detect: language id 8 given twice");
    std_lang_ids(ids);
    const char *codes[2] = {"eng", "a-code-that-is-too-long"};
    int32_t two[2] = {ENG, DEU};
    ck_assert_int_eq(asr_lang_detect(lp, T, V, two, codes, 2, NULL, 0, out, 2, &n, NULL, NULL), COCHLEA_EINVAL);
    /* every language has probability 0 everywhere */
    EXPECT_ERR(asr_lang_detect(lp, T, V, ids, NULL, 151, NULL, 0, out, 2, &n, NULL, NULL), COCHLEA_ERANGE,
               "asr_lang_detect: every candidate language has probability 0 at position 0");
    /* NaN at the chosen position */
    lp[3 * V + ENG] = 0.0f;
    lp[3 * V + DEU] = NAN;
    EXPECT_ERR(asr_lang_detect(lp, T, V, ids, NULL, 151, NULL, 0, out, 2, &n, NULL, NULL), COCHLEA_EINVAL,
               "asr_lang_detect: non-finite log-posterior at position 3");
    free(lp);
}
END_TEST

/* ---- the released token list -------------------------------------------------------------- */

static int32_t sp_lookup(void *user, const char *piece)
{
    int32_t sp = tokenizer_piece_to_id(user, piece, strlen(piece));
    return sp >= 3 ? sp - 1 : -1; /* owsm-ctc.md §5.1: model id = sp id - 1 */
}

START_TEST(test_released_token_list)
{
    const char *shared = getenv("COCHLEA_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/owsm/bpe.model", shared ? shared : "");
    if (!shared || !*shared || access(path, R_OK) != 0) {
        printf("test_released_token_list: SKIPPED (no COCHLEA_SHARED/owsm/bpe.model)\n");
        return;
    }
    tokenizer *tok;
    ck_assert_msg(tokenizer_load(path, &tok) == 0, "%s", cochlea_last_error());
    int32_t ids[ASR_LANG_N];
    const char *codes[ASR_LANG_N];
    size_t n = 0;
    asr_lang_model_set(sp_lookup, tok, ids, codes, &n);
    ck_assert_uint_eq(n, 151);
    for (int i = 0; i < 151; i++)
        ck_assert_int_eq(ids[i], 4 + i);
    char *a = NULL, *b = NULL;
    ck_assert_int_eq(asr_lang_list_format(NULL, NULL, &a), COCHLEA_OK);
    ck_assert_int_eq(asr_lang_list_format(sp_lookup, tok, &b), COCHLEA_OK);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    char task[32];
    int32_t id;
    ck_assert_int_eq(asr_task_parse_in("asr", sp_lookup, tok, task, &id), COCHLEA_OK);
    ck_assert_int_eq(id, 155);
    ck_assert_int_eq(asr_task_parse_in("zh", sp_lookup, tok, task, &id), COCHLEA_OK);
    ck_assert_int_eq(id, 180);
    tokenizer_free(tok);
}
END_TEST

static Suite *lang_suite(void)
{
    Suite *s = suite_create("asr_lang");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_table_order);
    tcase_add_test(tc, test_table_entries);
    tcase_add_test(tc, test_lang_parse);
    tcase_add_test(tc, test_task_parse);
    tcase_add_test(tc, test_model_subset);
    tcase_add_test(tc, test_list_format);
    tcase_add_test(tc, test_parse_list);
    tcase_add_test(tc, test_detect_spike);
    tcase_add_test(tc, test_detect_mass);
    tcase_add_test(tc, test_detect_candidates);
    tcase_add_test(tc, test_detect_ties_and_codes);
    tcase_add_test(tc, test_detect_errors);
    tcase_add_test(tc, test_released_token_list);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(lang_suite());
}
