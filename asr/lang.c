/* lang.c - OWSM-CTC language codes, translation targets and language identification (lang.h). */
#include "asr/lang.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cochlea.h"
#include "error.h"

/* The 151 language tokens of the v3.1 token list, in token order (ids 4..154). */
static const asr_lang_info LANGS[ASR_LANG_N] = {
    {"abk", "ab", "Abkhazian", "Abkhaz"},
    {"afr", "af", "Afrikaans", ""},
    {"amh", "am", "Amharic", ""},
    {"ara", "ar", "Arabic", ""},
    {"asm", "as", "Assamese", ""},
    {"ast", "", "Asturian", ""},
    {"aze", "az", "Azerbaijani", "Azeri"},
    {"bak", "ba", "Bashkir", ""},
    {"bas", "", "Basa (Cameroon)", "Basa|Bassa"},
    {"bel", "be", "Belarusian", ""},
    {"ben", "bn", "Bengali", "Bangla"},
    {"bos", "bs", "Bosnian", ""},
    {"bre", "br", "Breton", ""},
    {"bul", "bg", "Bulgarian", ""},
    {"cat", "ca", "Catalan", "Valencian"},
    {"ceb", "", "Cebuano", ""},
    {"ces", "cs", "Czech", ""},
    {"chv", "cv", "Chuvash", ""},
    {"ckb", "", "Central Kurdish", "Sorani"},
    {"cmn", "", "Mandarin Chinese", "Mandarin"},
    {"cnh", "", "Hakha Chin", "Haka Chin"},
    {"cym", "cy", "Welsh", ""},
    {"dan", "da", "Danish", ""},
    {"deu", "de", "German", ""},
    {"dgd", "", "Dagaari Dioula", ""},
    {"div", "dv", "Dhivehi", "Divehi|Maldivian"},
    {"ell", "el", "Greek", "Modern Greek"},
    {"eng", "en", "English", ""},
    {"epo", "eo", "Esperanto", ""},
    {"est", "et", "Estonian", ""},
    {"eus", "eu", "Basque", ""},
    {"fas", "fa", "Persian", "Farsi"},
    {"fil", "", "Filipino", ""},
    {"fin", "fi", "Finnish", ""},
    {"fra", "fr", "French", ""},
    {"frr", "", "Northern Frisian", "North Frisian"},
    {"ful", "ff", "Fulah", "Fula|Fulani"},
    {"gle", "ga", "Irish", "Irish Gaelic"},
    {"glg", "gl", "Galician", ""},
    {"grn", "gn", "Guarani", ""},
    {"guj", "gu", "Gujarati", ""},
    {"hat", "ht", "Haitian Creole", "Haitian"},
    {"hau", "ha", "Hausa", ""},
    {"heb", "he", "Hebrew", ""},
    {"hin", "hi", "Hindi", ""},
    {"hrv", "hr", "Croatian", ""},
    {"hsb", "", "Upper Sorbian", ""},
    {"hun", "hu", "Hungarian", ""},
    {"hye", "hy", "Armenian", ""},
    {"ibo", "ig", "Igbo", ""},
    {"ina", "ia", "Interlingua", ""},
    {"ind", "id", "Indonesian", ""},
    {"isl", "is", "Icelandic", ""},
    {"ita", "it", "Italian", ""},
    {"jav", "jv", "Javanese", ""},
    {"jpn", "ja", "Japanese", ""},
    {"kab", "", "Kabyle", ""},
    {"kam", "", "Kamba (Kenya)", "Kamba"},
    {"kan", "kn", "Kannada", ""},
    {"kat", "ka", "Georgian", ""},
    {"kaz", "kk", "Kazakh", ""},
    {"kea", "", "Kabuverdianu", "Cape Verdean Creole"},
    {"khm", "km", "Khmer", "Central Khmer"},
    {"kin", "rw", "Kinyarwanda", ""},
    {"kir", "ky", "Kyrgyz", "Kirghiz"},
    {"kmr", "", "Northern Kurdish", "Kurmanji"},
    {"kor", "ko", "Korean", ""},
    {"lao", "lo", "Lao", ""},
    {"lav", "lv", "Latvian", ""},
    {"lga", "", "Lungga", ""},
    {"lin", "ln", "Lingala", ""},
    {"lit", "lt", "Lithuanian", ""},
    {"ltz", "lb", "Luxembourgish", "Letzeburgesch"},
    {"lug", "lg", "Ganda", "Luganda"},
    {"luo", "", "Luo (Kenya and Tanzania)", "Dholuo"},
    {"mal", "ml", "Malayalam", ""},
    {"mar", "mr", "Marathi", ""},
    {"mas", "", "Masai", "Maasai"},
    {"mdf", "", "Moksha", ""},
    {"mhr", "", "Eastern Mari", "Meadow Mari"},
    {"mkd", "mk", "Macedonian", ""},
    {"mlt", "mt", "Maltese", ""},
    {"mon", "mn", "Mongolian", ""},
    {"mri", "mi", "Maori", "M\xc4\x81ori"},
    {"mrj", "", "Western Mari", "Hill Mari"},
    {"mya", "my", "Burmese", "Myanmar"},
    {"myv", "", "Erzya", ""},
    {"nan", "", "Min Nan Chinese", "Min Nan|Hokkien|Taiwanese"},
    {"nep", "ne", "Nepali", ""},
    {"nld", "nl", "Dutch", "Flemish"},
    {"nno", "nn", "Norwegian Nynorsk", "Nynorsk"},
    {"nob", "nb", "Norwegian Bokm\xc3\xa5l", "Norwegian Bokmal|Bokm\xc3\xa5l|Bokmal|Norwegian"},
    {"npi", "", "Nepali (individual language)", ""},
    {"nso", "", "Pedi", "Northern Sotho|Sepedi"},
    {"nya", "ny", "Nyanja", "Chichewa|Chewa"},
    {"oci", "oc", "Occitan", ""},
    {"ori", "or", "Oriya", ""},
    {"orm", "om", "Oromo", ""},
    {"ory", "", "Odia", ""},
    {"pan", "pa", "Punjabi", "Panjabi"},
    {"pol", "pl", "Polish", ""},
    {"por", "pt", "Portuguese", ""},
    {"pus", "ps", "Pashto", "Pushto"},
    {"quy", "", "Ayacucho Quechua", ""},
    {"roh", "rm", "Romansh", ""},
    {"ron", "ro", "Romanian", "Moldavian|Moldovan"},
    {"rus", "ru", "Russian", ""},
    {"sah", "", "Yakut", "Sakha"},
    {"sat", "", "Santali", ""},
    {"sin", "si", "Sinhala", "Sinhalese"},
    {"skr", "", "Saraiki", "Seraiki"},
    {"slk", "sk", "Slovak", ""},
    {"slv", "sl", "Slovenian", "Slovene"},
    {"sna", "sn", "Shona", ""},
    {"snd", "sd", "Sindhi", ""},
    {"som", "so", "Somali", ""},
    {"sot", "st", "Southern Sotho", "Sesotho|Sotho"},
    {"spa", "es", "Spanish", "Castilian"},
    {"srd", "sc", "Sardinian", ""},
    {"srp", "sr", "Serbian", ""},
    {"sun", "su", "Sundanese", ""},
    {"swa", "sw", "Swahili", ""},
    {"swe", "sv", "Swedish", ""},
    {"swh", "", "Swahili (individual language)", ""},
    {"tam", "ta", "Tamil", ""},
    {"tat", "tt", "Tatar", ""},
    {"tel", "te", "Telugu", ""},
    {"tgk", "tg", "Tajik", ""},
    {"tgl", "tl", "Tagalog", ""},
    {"tha", "th", "Thai", ""},
    {"tig", "", "Tigre", ""},
    {"tir", "ti", "Tigrinya", ""},
    {"tok", "", "Toki Pona", ""},
    {"tpi", "", "Tok Pisin", ""},
    {"tsn", "tn", "Tswana", "Setswana"},
    {"tuk", "tk", "Turkmen", ""},
    {"tur", "tr", "Turkish", ""},
    {"twi", "tw", "Twi", ""},
    {"uig", "ug", "Uyghur", "Uighur"},
    {"ukr", "uk", "Ukrainian", ""},
    {"umb", "", "Umbundu", ""},
    {"urd", "ur", "Urdu", ""},
    {"uzb", "uz", "Uzbek", ""},
    {"vie", "vi", "Vietnamese", ""},
    {"vot", "", "Votic", ""},
    {"wol", "wo", "Wolof", ""},
    {"xho", "xh", "Xhosa", "isiXhosa"},
    {"yor", "yo", "Yoruba", ""},
    {"yue", "", "Cantonese", "Yue Chinese"},
    {"zho", "zh", "Chinese", ""},
    {"zul", "zu", "Zulu", "isiZulu"},
};

/* The 25 translation targets (<st_xxx>, ids 156..180). */
static const char *const TARGETS[ASR_ST_N] = {
    "ara", "cat", "ces", "cym", "deu", "eng", "est", "fas", "fra", "ind", "ita", "jpn", "lav",
    "mon", "nld", "por", "ron", "rus", "slv", "spa", "swe", "tam", "tur", "vie", "zho",
};

#define INPUT_MAX 64   /* longer input cannot be a code or name */
#define LIST_MAX 40    /* model language lists longer than this are counted, not listed */
#define MSG_MAX 1024

const asr_lang_info *asr_lang_table(size_t *n)
{
    if (n)
        *n = ASR_LANG_N;
    return LANGS;
}

const char *const *asr_st_targets(size_t *n)
{
    if (n)
        *n = ASR_ST_N;
    return TARGETS;
}

int asr_lang_index(const char *code)
{
    if (!code)
        return -1;
    int lo = 0, hi = ASR_LANG_N - 1; /* the table is sorted by code */
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(code, LANGS[mid].code);
        if (c == 0)
            return mid;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

static int target_index(int lang_idx)
{
    if (lang_idx < 0)
        return -1;
    for (int j = 0; j < ASR_ST_N; j++)
        if (strcmp(TARGETS[j], LANGS[lang_idx].code) == 0)
            return j;
    return -1;
}

int32_t asr_lang_token_id_asr(void *asr, const char *piece)
{
    return cochlea_asr_token_id((const cochlea_asr *)asr, piece);
}

/* ---- model lookups ------------------------------------------------------------------------ */

static int32_t lang_token(asr_token_id_fn lookup, void *user, int idx)
{
    if (!lookup)
        return ASR_LANG_FIRST_ID + idx;
    char piece[16];
    snprintf(piece, sizeof piece, "<%s>", LANGS[idx].code);
    int32_t id = lookup(user, piece);
    return id < 0 ? -1 : id;
}

static int32_t target_token(asr_token_id_fn lookup, void *user, int j)
{
    if (!lookup)
        return ASR_ST_FIRST_ID + j;
    char piece[16];
    snprintf(piece, sizeof piece, "<st_%s>", TARGETS[j]);
    int32_t id = lookup(user, piece);
    return id < 0 ? -1 : id;
}

/* ---- text helpers ------------------------------------------------------------------------- */

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int is_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* ASCII case-insensitive equality of a (NUL-terminated, lowercase) and b[0..bn). */
static int eq_ci(const char *a, const char *b, size_t bn)
{
    size_t i = 0;
    for (; i < bn; i++)
        if (a[i] == '\0' || lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return a[i] == '\0';
}

/* Trim blanks, strip one enclosing <...>, lowercase ASCII into buf (INPUT_MAX + 1 bytes).
 * Returns the length, or -1 when the result is empty or too long. */
static int normalise(const char *s, char *buf)
{
    size_t n = strlen(s);
    while (n && is_blank((unsigned char)*s))
        s++, n--;
    while (n && is_blank((unsigned char)s[n - 1]))
        n--;
    if (n >= 2 && s[0] == '<' && s[n - 1] == '>')
        s++, n -= 2;
    if (n == 0 || n > INPUT_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)lower((unsigned char)s[i]);
    buf[n] = '\0';
    return (int)n;
}

/* Table index of a normalised language string: code, 639-1 code, name, alias; -1 if none. */
static int find_lang(const char *lc)
{
    int idx = asr_lang_index(lc);
    if (idx >= 0)
        return idx;
    for (int i = 0; i < ASR_LANG_N; i++)
        if (LANGS[i].code1[0] && strcmp(lc, LANGS[i].code1) == 0)
            return i;
    for (int i = 0; i < ASR_LANG_N; i++)
        if (eq_ci(lc, LANGS[i].name, strlen(LANGS[i].name)))
            return i;
    for (int i = 0; i < ASR_LANG_N; i++) {
        const char *a = LANGS[i].alias;
        while (*a) {
            const char *e = strchr(a, '|');
            size_t len = e ? (size_t)(e - a) : strlen(a);
            if (eq_ci(lc, a, len))
                return i;
            a += len + (e ? 1 : 0);
        }
    }
    return -1;
}

/* Optimal-string-alignment distance (Levenshtein plus adjacent transpositions) between a and
 * the ASCII-lowercased b[0..bn); both at most INPUT_MAX bytes (longer b: INPUT_MAX + 1). */
static int osa_distance(const char *a, const char *b, size_t bn)
{
    size_t an = strlen(a);
    if (an > INPUT_MAX || bn > INPUT_MAX)
        return INPUT_MAX + 1;
    int d[INPUT_MAX + 1][INPUT_MAX + 1];
    for (size_t i = 0; i <= an; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= bn; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= an; i++) {
        for (size_t j = 1; j <= bn; j++) {
            int ca = a[i - 1], cb = lower((unsigned char)b[j - 1]);
            int v = d[i - 1][j - 1] + (ca != cb);
            if (d[i - 1][j] + 1 < v)
                v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ca == lower((unsigned char)b[j - 2]) && a[i - 2] == cb &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[an][bn];
}

/* Closeness of input lc to a language: the smallest distance to its codes, name and aliases;
 * a name or alias that starts with lc (at least 3 characters) counts as distance 1. */
static int lang_score(const char *lc, int idx)
{
    const asr_lang_info *L = &LANGS[idx];
    size_t n = strlen(lc);
    int best = osa_distance(lc, L->code, strlen(L->code));
    if (L->code1[0]) {
        int d = osa_distance(lc, L->code1, strlen(L->code1));
        if (d < best)
            best = d;
    }
    const char *names[2] = {L->name, L->alias};
    for (int k = 0; k < 2; k++) {
        const char *a = names[k];
        while (*a) {
            const char *e = k ? strchr(a, '|') : NULL;
            size_t len = e ? (size_t)(e - a) : strlen(a);
            int d = osa_distance(lc, a, len);
            if (n >= 3 && len >= n && d > 1 && eq_ci(lc, a, n)) /* a starts with lc */
                d = 1;
            if (d < best)
                best = d;
            a += len + (e ? 1 : 0);
        }
    }
    return best;
}

typedef struct msgbuf {
    char s[MSG_MAX];
    size_t n;
} msgbuf;

static void mb_add(msgbuf *m, const char *fmt, ...) COCHLEA_PRINTF(2, 3);
static void mb_add(msgbuf *m, const char *fmt, ...)
{
    if (m->n >= sizeof m->s - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(m->s + m->n, sizeof m->s - m->n, fmt, ap);
    va_end(ap);
    if (r > 0)
        m->n += (size_t)r < sizeof m->s - m->n ? (size_t)r : sizeof m->s - 1 - m->n;
}

/* Append "; did you mean 'a' (A), 'b' (B) or 'c' (C)?" for the (at most 3, table order) allowed
 * languages nearest to lc, if any is near enough. */
static void suggest(msgbuf *m, const char *lc, const unsigned char *allowed)
{
    size_t n = strlen(lc);
    int limit = n <= 4 ? 1 : n <= 8 ? 2 : 3;
    int best = limit + 1, hits[3], nh = 0;
    for (int i = 0; i < ASR_LANG_N; i++) {
        if (!allowed[i])
            continue;
        int s = lang_score(lc, i);
        if (s < best) {
            best = s;
            nh = 0;
        }
        if (s == best && nh < 3)
            hits[nh++] = i;
    }
    if (best > limit || nh == 0)
        return;
    mb_add(m, "; did you mean");
    for (int h = 0; h < nh; h++)
        mb_add(m, "%s '%s' (%s)", h == 0 ? "" : h == nh - 1 ? " or" : ",", LANGS[hits[h]].code,
               LANGS[hits[h]].name);
    mb_add(m, "?");
}

/* Append the codes with allowed[i] (list when at most LIST_MAX, else a count and a hint). */
static void list_codes(msgbuf *m, const char *what, const unsigned char *allowed, int n_allowed)
{
    if (n_allowed > LIST_MAX) {
        mb_add(m, "; the %d %s are listed by --list-languages", n_allowed, what);
        return;
    }
    mb_add(m, "; the %d %s are:", n_allowed, what);
    for (int i = 0; i < ASR_LANG_N; i++)
        if (allowed[i])
            mb_add(m, " %s", LANGS[i].code);
}

/* Which table languages the model has (all for lookup NULL); returns their number. */
static int model_langs(asr_token_id_fn lookup, void *user, unsigned char allowed[ASR_LANG_N], int32_t ids[ASR_LANG_N])
{
    int n = 0;
    for (int i = 0; i < ASR_LANG_N; i++) {
        ids[i] = lang_token(lookup, user, i);
        allowed[i] = ids[i] >= 0;
        n += allowed[i];
    }
    return n;
}

/* Which languages are targets the model has; returns their number. */
static int model_targets(asr_token_id_fn lookup, void *user, unsigned char allowed[ASR_LANG_N], int32_t ids[ASR_LANG_N])
{
    memset(allowed, 0, ASR_LANG_N);
    int n = 0;
    for (int j = 0; j < ASR_ST_N; j++) {
        int i = asr_lang_index(TARGETS[j]);
        ids[i] = target_token(lookup, user, j);
        if (ids[i] >= 0) {
            allowed[i] = 1;
            n++;
        }
    }
    return n;
}

/* ---- parsing ------------------------------------------------------------------------------ */

int asr_lang_parse_in(const char *s, asr_token_id_fn lookup, void *user, char code3[16], int32_t *id)
{
    if (!s || !code3)
        return err_set(COCHLEA_EINVAL, "asr_lang_parse: NULL argument");
    char lc[INPUT_MAX + 1];
    unsigned char allowed[ASR_LANG_N];
    int32_t ids[ASR_LANG_N];
    int n_allowed = model_langs(lookup, user, allowed, ids);
    const char *what = lookup ? "languages of this model" : "languages";
    msgbuf m = {{0}, 0};
    if (normalise(s, lc) < 0) {
        mb_add(&m, "invalid language '%.*s'", INPUT_MAX, s);
        list_codes(&m, what, allowed, n_allowed);
        return err_set(COCHLEA_EINVAL, "%s", m.s);
    }
    int idx = find_lang(lc);
    if (idx < 0) {
        mb_add(&m, "unknown language '%s'", lc);
        list_codes(&m, what, allowed, n_allowed);
        suggest(&m, lc, allowed);
        return err_set(COCHLEA_EINVAL, "%s", m.s);
    }
    if (!allowed[idx]) {
        mb_add(&m, "language '%s' (%s) is not in this model", LANGS[idx].code, LANGS[idx].name);
        list_codes(&m, what, allowed, n_allowed);
        return err_set(COCHLEA_EINVAL, "%s", m.s);
    }
    snprintf(code3, 16, "%s", LANGS[idx].code);
    if (id)
        *id = ids[idx];
    return COCHLEA_OK;
}

int asr_lang_parse(const char *s, char code3[16])
{
    return asr_lang_parse_in(s, NULL, NULL, code3, NULL);
}

int asr_task_parse_in(const char *s, asr_token_id_fn lookup, void *user, char task[32], int32_t *id)
{
    if (!s || !task)
        return err_set(COCHLEA_EINVAL, "asr_task_parse: NULL argument");
    char lc[INPUT_MAX + 1];
    unsigned char allowed[ASR_LANG_N];
    int32_t ids[ASR_LANG_N];
    int n_allowed = model_targets(lookup, user, allowed, ids);
    const char *what = lookup ? "translation targets of this model" : "translation targets";
    msgbuf m = {{0}, 0};
    if (normalise(s, lc) < 0) {
        mb_add(&m, "invalid task '%.*s': expected asr or a translation target", INPUT_MAX, s);
        list_codes(&m, what, allowed, n_allowed);
        return err_set(COCHLEA_EINVAL, "%s", m.s);
    }
    if (strcmp(lc, "asr") == 0) {
        int32_t a = lookup ? lookup(user, "<asr>") : ASR_ASR_ID;
        if (a < 0)
            return err_set(COCHLEA_EINVAL, "this model has no <asr> task token");
        snprintf(task, 32, "asr");
        if (id)
            *id = a;
        return COCHLEA_OK;
    }
    const char *l = lc;
    if (strncmp(l, "st_", 3) == 0 && l[3])
        l += 3;
    int idx = find_lang(l);
    if (idx < 0) {
        mb_add(&m, "unknown task or translation target '%s'", lc);
        list_codes(&m, what, allowed, n_allowed);
        suggest(&m, l, allowed);
        return err_set(COCHLEA_EINVAL, "%s", m.s);
    }
    if (!allowed[idx]) {
        if (target_index(idx) < 0)
            mb_add(&m, "'%s' (%s) is not a translation target", LANGS[idx].code, LANGS[idx].name);
        else
            mb_add(&m, "translation to '%s' (%s) is not in this model", LANGS[idx].code, LANGS[idx].name);
        list_codes(&m, what, allowed, n_allowed);
        return err_set(COCHLEA_EINVAL, "%s", m.s);
    }
    snprintf(task, 32, "st_%s", LANGS[idx].code);
    if (id)
        *id = ids[idx];
    return COCHLEA_OK;
}

int asr_task_parse(const char *s, char task[32])
{
    return asr_task_parse_in(s, NULL, NULL, task, NULL);
}

int asr_lang_parse_list(const char *s, asr_token_id_fn lookup, void *user, int32_t *ids, size_t cap, size_t *n)
{
    if (!s || !n || (cap && !ids))
        return err_set(COCHLEA_EINVAL, "asr_lang_parse_list: NULL argument");
    *n = 0;
    size_t cnt = 0;
    const char *p = s;
    while (*p) {
        while (*p == ',' || is_blank((unsigned char)*p))
            p++;
        if (!*p)
            break;
        size_t len = 0;
        while (p[len] && p[len] != ',' && !is_blank((unsigned char)p[len]))
            len++;
        char item[INPUT_MAX + 2];
        if (len > INPUT_MAX)
            return err_set(COCHLEA_EINVAL, "language list: invalid language '%.*s...'", 16, p);
        memcpy(item, p, len);
        item[len] = '\0';
        char code[16];
        int32_t id;
        int rc = asr_lang_parse_in(item, lookup, user, code, &id);
        if (rc)
            return err_prefix(rc, "language list");
        size_t k = 0;
        while (k < cnt && ids[k] != id)
            k++;
        if (k == cnt) {
            if (cnt == cap)
                return err_set(COCHLEA_EINVAL, "language list: more than %zu languages", cap);
            ids[cnt++] = id;
        }
        p += len;
    }
    if (cnt == 0)
        return err_set(COCHLEA_EINVAL, "language list '%.*s' names no language", INPUT_MAX, s);
    *n = cnt;
    return COCHLEA_OK;
}

void asr_lang_model_set(asr_token_id_fn lookup, void *user, int32_t ids[ASR_LANG_N], const char *codes[ASR_LANG_N],
                        size_t *n)
{
    size_t k = 0;
    for (int i = 0; i < ASR_LANG_N; i++) {
        int32_t id = lang_token(lookup, user, i);
        if (id < 0)
            continue;
        ids[k] = id;
        codes[k] = LANGS[i].code;
        k++;
    }
    *n = k;
}

/* ---- the language list -------------------------------------------------------------------- */

typedef struct strbuf {
    char *s;
    size_t n, cap;
    int err;
} strbuf;

static void sb_add(strbuf *b, const char *fmt, ...) COCHLEA_PRINTF(2, 3);
static void sb_add(strbuf *b, const char *fmt, ...)
{
    if (b->err)
        return;
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    size_t need;
    if (r < 0 || size_add(b->n, (size_t)r + 1, &need)) {
        b->err = 1;
        return;
    }
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < need) {
            if (cap > SIZE_MAX / 2) {
                b->err = 1;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->s, cap);
        if (!p) {
            b->err = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)r;
}

int asr_lang_list_format(asr_token_id_fn lookup, void *user, char **out)
{
    if (!out)
        return err_set(COCHLEA_EINVAL, "asr_lang_list_format: NULL argument");
    *out = NULL;
    strbuf b = {NULL, 0, 0, 0};
    sb_add(&b, "%5s  %-5s %-5s %s\n", "id", "639-3", "639-1", "name");
    for (int i = 0; i < ASR_LANG_N; i++) {
        int32_t id = lang_token(lookup, user, i);
        if (id >= 0)
            sb_add(&b, "%5d  %-5s %-5s %s\n", (int)id, LANGS[i].code, LANGS[i].code1[0] ? LANGS[i].code1 : "-",
                   LANGS[i].name);
    }
    int nt = 0;
    for (int j = 0; j < ASR_ST_N; j++)
        nt += target_token(lookup, user, j) >= 0;
    sb_add(&b, "translation targets (%d):", nt);
    for (int j = 0; j < ASR_ST_N; j++)
        if (target_token(lookup, user, j) >= 0)
            sb_add(&b, " %s", TARGETS[j]);
    sb_add(&b, "\n");
    if (b.err) {
        free(b.s);
        return err_set(COCHLEA_ENOMEM, "out of memory formatting the language list");
    }
    *out = b.s;
    return COCHLEA_OK;
}

/* ---- language identification -------------------------------------------------------------- */

typedef struct lang_cand {
    double p;
    size_t order; /* index in lang_ids */
} lang_cand;

static int cand_cmp(const void *a, const void *b)
{
    const lang_cand *x = a, *y = b;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

int asr_lang_detect(const float *logpost, int64_t T, int64_t V, const int32_t *lang_ids, const char *const *lang_codes,
                    size_t n_lang, const int32_t *candidates, size_t n_cand, tr_lang *out, size_t k, size_t *n_out,
                    int64_t *frame, int *emitted)
{
    if (!logpost || !lang_ids || !out)
        return err_set(COCHLEA_EINVAL, "asr_lang_detect: NULL argument");
    if (T <= 0 || V <= 0 || n_lang == 0 || k == 0 || (candidates && n_cand == 0))
        return err_set(COCHLEA_EINVAL, "asr_lang_detect: empty input (T %lld, V %lld, %zu languages, k %zu)",
                       (long long)T, (long long)V, n_lang, k);
    if (!lang_codes && n_lang != ASR_LANG_N)
        return err_set(COCHLEA_EINVAL, "asr_lang_detect: without codes, lang_ids must be the %d languages (got %zu)",
                       ASR_LANG_N, n_lang);
    size_t total, bytes;
    if ((uint64_t)T > SIZE_MAX || (uint64_t)V > SIZE_MAX || size_mul((size_t)T, (size_t)V, &total) ||
        size_mul((size_t)V, sizeof(int32_t), &bytes))
        return err_set(COCHLEA_ERANGE, "asr_lang_detect: %lld x %lld posteriors overflow", (long long)T, (long long)V);
    if (n_lang > (size_t)V)
        return err_set(COCHLEA_EINVAL, "asr_lang_detect: %zu languages for a vocabulary of %lld", n_lang, (long long)V);
    for (size_t i = 0; i < n_lang; i++) {
        const char *c = lang_codes ? lang_codes[i] : LANGS[i].code;
        if (!c || !*c || strlen(c) >= sizeof out[0].code)
            return err_set(COCHLEA_EINVAL, "asr_lang_detect: bad code for language %zu", i);
    }

    size_t cbytes;
    if (size_mul(n_lang, sizeof(lang_cand), &cbytes))
        return err_set(COCHLEA_ERANGE, "asr_lang_detect: %zu languages overflow", n_lang);
    int32_t *pos = malloc(bytes);           /* token id -> index in lang_ids, or -1 */
    unsigned char *sel = calloc(n_lang, 1); /* candidate flags */
    lang_cand *c = malloc(cbytes);
    int rc = COCHLEA_OK;
    if (!pos || !sel || !c) {
        rc = err_set(COCHLEA_ENOMEM, "out of memory");
        goto done;
    }
    for (int64_t v = 0; v < V; v++)
        pos[v] = -1;
    for (size_t i = 0; i < n_lang; i++) {
        int32_t id = lang_ids[i];
        if (id < 0 || (int64_t)id >= V) {
            rc = err_set(COCHLEA_EINVAL, "asr_lang_detect: language id %d outside [0, %lld)", (int)id, (long long)V);
            goto done;
        }
        if (pos[id] >= 0) {
            rc = err_set(COCHLEA_EINVAL, "asr_lang_detect: language id %d given twice", (int)id);
            goto done;
        }
        pos[id] = (int32_t)i;
    }
    if (candidates) {
        for (size_t j = 0; j < n_cand; j++) {
            int32_t id = candidates[j];
            if (id < 0 || (int64_t)id >= V || pos[id] < 0) {
                rc = err_set(COCHLEA_EINVAL, "asr_lang_detect: candidate id %d is not a language token", (int)id);
                goto done;
            }
            sel[pos[id]] = 1;
        }
    } else {
        memset(sel, 1, n_lang);
    }

    /* 1. the first position whose argmax is a language token */
    int64_t t_sel = -1;
    int by_argmax = 0;
    for (int64_t t = 0; t < T && t_sel < 0; t++) {
        const float *row = logpost + (size_t)t * (size_t)V;
        int64_t am = 0;
        float best = row[0];
        for (int64_t v = 1; v < V; v++)
            if (row[v] > best || (isnan(best) && !isnan(row[v]))) {
                best = row[v];
                am = v;
            }
        if (pos[am] >= 0) {
            t_sel = t;
            by_argmax = 1;
        }
    }
    /* 2. else the position with the most probability on language tokens */
    if (t_sel < 0) {
        double best = -INFINITY;
        t_sel = 0;
        for (int64_t t = 0; t < T; t++) {
            const float *row = logpost + (size_t)t * (size_t)V;
            double mx = -INFINITY;
            for (size_t i = 0; i < n_lang; i++)
                if (row[lang_ids[i]] > mx)
                    mx = row[lang_ids[i]];
            if (mx == -INFINITY)
                continue;
            double s = 0;
            for (size_t i = 0; i < n_lang; i++)
                s += exp((double)row[lang_ids[i]] - mx);
            double lse = mx + log(s);
            if (lse > best) {
                best = lse;
                t_sel = t;
            }
        }
    }

    /* 3. renormalise over the candidates at that position */
    const float *row = logpost + (size_t)t_sel * (size_t)V;
    double mx = -INFINITY;
    for (size_t i = 0; i < n_lang; i++) {
        if (!sel[i])
            continue;
        double x = row[lang_ids[i]];
        if (isnan(x) || x == INFINITY) {
            rc = err_set(COCHLEA_EINVAL, "asr_lang_detect: non-finite log-posterior at position %lld",
                         (long long)t_sel);
            goto done;
        }
        if (x > mx)
            mx = x;
    }
    if (mx == -INFINITY) {
        rc = err_set(COCHLEA_ERANGE, "asr_lang_detect: every candidate language has probability 0 at position %lld",
                     (long long)t_sel);
        goto done;
    }
    size_t nc = 0;
    double sum = 0;
    for (size_t i = 0; i < n_lang; i++) {
        if (!sel[i])
            continue;
        c[nc].p = exp((double)row[lang_ids[i]] - mx);
        c[nc].order = i;
        sum += c[nc].p;
        nc++;
    }
    for (size_t i = 0; i < nc; i++)
        c[i].p /= sum;
    qsort(c, nc, sizeof *c, cand_cmp);
    size_t nw = k < nc ? k : nc;
    for (size_t i = 0; i < nw; i++) {
        const char *code = lang_codes ? lang_codes[c[i].order] : LANGS[c[i].order].code;
        memset(out[i].code, 0, sizeof out[i].code);
        memcpy(out[i].code, code, strlen(code));
        out[i].prob = (float)c[i].p;
    }
    if (n_out)
        *n_out = nw;
    if (frame)
        *frame = t_sel;
    if (emitted)
        *emitted = by_argmax;
done:
    free(pos);
    free(sel);
    free(c);
    return rc;
}
