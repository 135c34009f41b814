/* ngram.c - back-off n-gram language model (asr/ngram.h): an open-addressing hash table keyed by
 * the n-gram's ids packed 21 bits each into two 64-bit words, and an ARPA reader. */
#include "asr/ngram.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"


typedef struct ngram_entry {
    uint64_t k0, k1; /* k0 == 0: empty slot */
    float logp, bow;
} ngram_entry;

struct ngram_lm {
    int order;
    size_t n, cap, counts[NGRAM_MAX_ORDER + 1];
    ngram_entry *tab;
    double unk;
};

static int pack(const int32_t *ids, int n, uint64_t *k0, uint64_t *k1)
{
    uint64_t a = 0, b = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] > NGRAM_MAX_ID)
            return -1;
        uint64_t v = (uint64_t)ids[i] + 1;
        if (i < 3)
            a |= v << (21 * i);
        else
            b |= v << (21 * (i - 3));
    }
    *k0 = a;
    *k1 = b;
    return 0;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static size_t slot(const ngram_lm *lm, uint64_t k0, uint64_t k1)
{
    size_t mask = lm->cap - 1, i = (size_t)(mix(k0 ^ mix(k1 + 0x9e3779b97f4a7c15ULL)) & mask);
    while (lm->tab[i].k0 && (lm->tab[i].k0 != k0 || lm->tab[i].k1 != k1))
        i = (i + 1) & mask;
    return i;
}

static int grow(ngram_lm *lm, size_t need)
{
    if (need * 4 <= lm->cap * 3)
        return COCHLEA_OK;
    size_t cap = lm->cap ? lm->cap : 1024;
    while (need * 4 > cap * 3) {
        if (cap > SIZE_MAX / 2 / sizeof(ngram_entry))
            return err_set(COCHLEA_ERANGE, "language model too large");
        cap *= 2;
    }
    ngram_entry *old = lm->tab;
    size_t oc = lm->cap;
    lm->tab = calloc(cap, sizeof *lm->tab);
    if (!lm->tab) {
        lm->tab = old;
        return err_set(COCHLEA_ENOMEM, "out of memory (language model of %zu n-grams)", need);
    }
    lm->cap = cap;
    for (size_t i = 0; i < oc; i++)
        if (old[i].k0)
            lm->tab[slot(lm, old[i].k0, old[i].k1)] = old[i];
    free(old);
    return COCHLEA_OK;
}

int ngram_new(int order, size_t n_hint, ngram_lm **out)
{
    *out = NULL;
    if (order < 1 || order > NGRAM_MAX_ORDER)
        return err_set(COCHLEA_EUNSUPPORTED, "language model order %d (1..%d supported)", order, NGRAM_MAX_ORDER);
    ngram_lm *lm = calloc(1, sizeof *lm);
    if (!lm)
        return err_set(COCHLEA_ENOMEM, "out of memory");
    lm->order = order;
    lm->unk = -99.0 * NGRAM_LN10;
    int rc = grow(lm, n_hint < ((size_t)1 << 40) ? n_hint + 1 : 1);
    if (rc) {
        free(lm);
        return rc;
    }
    *out = lm;
    return COCHLEA_OK;
}

int ngram_put(ngram_lm *lm, const int32_t *ids, int n, float logp, float bow)
{
    uint64_t k0, k1;
    if (n < 1 || n > lm->order)
        return err_set(COCHLEA_EINVAL, "ngram_put: %d-gram in an order-%d model", n, lm->order);
    if (pack(ids, n, &k0, &k1))
        return err_set(COCHLEA_ERANGE, "ngram_put: token id outside 0..%d", NGRAM_MAX_ID);
    if (!isfinite(logp) || !isfinite(bow) || logp > 1e-3f)
        return err_set(COCHLEA_EFORMAT, "n-gram log-probability %g / back-off %g is not a valid value", (double)logp,
                       (double)bow);
    int rc = grow(lm, lm->n + 1);
    if (rc)
        return rc;
    size_t i = slot(lm, k0, k1);
    if (!lm->tab[i].k0) {
        lm->n++;
        lm->counts[n]++;
    }
    lm->tab[i] = (ngram_entry){k0, k1, logp, bow};
    return COCHLEA_OK;
}

static const ngram_entry *find(const ngram_lm *lm, const int32_t *ids, int n)
{
    uint64_t k0, k1;
    if (n < 1 || pack(ids, n, &k0, &k1))
        return NULL;
    const ngram_entry *e = &lm->tab[slot(lm, k0, k1)];
    return e->k0 ? e : NULL;
}

void ngram_finish(ngram_lm *lm, int32_t unk_id)
{
    const ngram_entry *e = unk_id >= 0 ? find(lm, &unk_id, 1) : NULL;
    lm->unk = e ? (double)e->logp : -99.0 * NGRAM_LN10;
}

void ngram_free(ngram_lm *lm)
{
    if (lm) {
        free(lm->tab);
        free(lm);
    }
}

int ngram_order(const ngram_lm *lm) { return lm->order; }

size_t ngram_count(const ngram_lm *lm, int order)
{
    return order >= 1 && order <= lm->order ? lm->counts[order] : 0;
}

double ngram_lnp(const ngram_lm *lm, const int32_t *ctx, int n_ctx, int32_t w)
{
    int kmax = n_ctx < lm->order - 1 ? n_ctx : lm->order - 1;
    if (kmax < 0)
        kmax = 0;
    const int32_t *h0 = ctx + (n_ctx - kmax);
    double acc = 0.0;
    for (int k = kmax; k >= 0; k--) {
        const int32_t *h = h0 + (kmax - k); /* the last k context ids */
        int32_t g[NGRAM_MAX_ORDER];
        memcpy(g, h, (size_t)k * sizeof *g);
        g[k] = w;
        const ngram_entry *e = find(lm, g, k + 1);
        if (e)
            return acc + (double)e->logp;
        if (k == 0)
            return acc + lm->unk;
        const ngram_entry *b = find(lm, h, k);
        if (b)
            acc += (double)b->bow;
    }
    return acc;
}

/* ---- ARPA ------------------------------------------------------------------------------ */

typedef struct line_reader {
    FILE *fp;
    char *buf;
    size_t cap, len, pos, line_no;
    int eof;
} line_reader;

/* Next line (without the newline, NUL-terminated in place) or NULL at the end; *err on failure. */
static char *next_line(line_reader *r, int *err)
{
    for (;;) {
        char *nl = r->pos < r->len ? memchr(r->buf + r->pos, '\n', r->len - r->pos) : NULL;
        if (nl || (r->eof && r->pos < r->len)) {
            char *s = r->buf + r->pos;
            size_t l = nl ? (size_t)(nl - s) : r->len - r->pos;
            s[l] = '\0';
            r->pos += l + (nl ? 1 : 0);
            r->line_no++;
            if (l && s[l - 1] == '\r')
                s[l - 1] = '\0';
            return s;
        }
        if (r->eof)
            return NULL;
        /* move the partial line to the front and read more */
        if (r->pos) {
            memmove(r->buf, r->buf + r->pos, r->len - r->pos);
            r->len -= r->pos;
            r->pos = 0;
        }
        if (r->cap - r->len < 65536) {
            if (r->cap > ((size_t)1 << 30)) {
                *err = err_set(COCHLEA_EFORMAT, "line %zu is longer than 1 GiB", r->line_no + 1);
                return NULL;
            }
            size_t nc = r->cap ? r->cap * 2 : (size_t)1 << 20;
            char *nb = realloc(r->buf, nc + 1);
            if (!nb) {
                *err = err_set(COCHLEA_ENOMEM, "out of memory");
                return NULL;
            }
            r->buf = nb;
            r->cap = nc;
        }
        size_t got = fread(r->buf + r->len, 1, r->cap - r->len, r->fp);
        r->len += got;
        if (got == 0) {
            if (ferror(r->fp)) {
                *err = err_set(COCHLEA_EIO, "read error");
                return NULL;
            }
            r->eof = 1;
        }
    }
}

static int is_space(char c) { return c == ' ' || c == '\t'; }

static char *skip_space(char *s)
{
    while (is_space(*s))
        s++;
    return s;
}

static int parse_float(char **s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(*s, &end);
    if (end == *s || errno == ERANGE || !(is_space(*end) || *end == '\0') || !isfinite(*v))
        return -1;
    *s = end;
    return 0;
}

static int word_id(const char *w, size_t len, ngram_word_fn lookup, void *user, int32_t sos, int32_t eos,
                   int32_t unk)
{
    if (len == 3 && !memcmp(w, "<s>", 3))
        return sos;
    if (len == 4 && !memcmp(w, "</s>", 4))
        return eos;
    if (len == 5 && !memcmp(w, "<unk>", 5))
        return unk;
    return lookup(user, w, len);
}

static int arpa_body(line_reader *r, const char *path, ngram_word_fn lookup, void *user, int32_t sos, int32_t eos,
                     int32_t unk, ngram_lm **out, size_t *n_skipped)
{
    int err = 0, order = 0, section = 0, rc;
    size_t declared[NGRAM_MAX_ORDER + 1] = {0}, seen[NGRAM_MAX_ORDER + 1] = {0}, total = 0, skipped = 0;
    ngram_lm *lm = NULL;
    char *s;
    /* header: everything before \data\ is ignored (ARPA files may start with comments) */
    while ((s = next_line(r, &err)) && strcmp(skip_space(s), "\\data\\") != 0)
        ;
    if (!s) {
        if (err)
            return err_prefix(err, "%s", path);
        return err_set(COCHLEA_EFORMAT, "%s: not an ARPA language model (no \\data\\ line)", path);
    }
    while ((s = next_line(r, &err))) {
        s = skip_space(s);
        if (!*s)
            continue;
        if (!strncmp(s, "ngram ", 6)) {
            char *end;
            long n = strtol(s + 6, &end, 10);
            if (*end != '=' || n < 1)
                return err_set(COCHLEA_EFORMAT, "%s:%zu: bad \\data\\ entry '%s'", path, r->line_no, s);
            if (n > NGRAM_MAX_ORDER)
                return err_set(COCHLEA_EUNSUPPORTED, "%s:%zu: %ld-grams (orders up to %d are supported)", path,
                               r->line_no, n, NGRAM_MAX_ORDER);
            char *e2;
            errno = 0;
            unsigned long long c = strtoull(end + 1, &e2, 10);
            if (e2 == end + 1 || *skip_space(e2) || errno || c > ((size_t)1 << 40))
                return err_set(COCHLEA_EFORMAT, "%s:%zu: bad n-gram count in '%s'", path, r->line_no, s);
            if (n != order + 1)
                return err_set(COCHLEA_EFORMAT, "%s:%zu: \\data\\ entries must list orders 1, 2, ... in turn", path,
                               r->line_no);
            order = (int)n;
            declared[n] = (size_t)c;
            total += (size_t)c;
            continue;
        }
        break;
    }
    if (!s)
        return err ? err_prefix(err, "%s", path)
                   : err_set(COCHLEA_EFORMAT, "%s: truncated after the \\data\\ section", path);
    if (order == 0)
        return err_set(COCHLEA_EFORMAT, "%s:%zu: the \\data\\ section lists no n-gram counts", path, r->line_no);
    if ((rc = ngram_new(order, total, &lm)))
        return err_prefix(rc, "%s", path);
    int ended = 0;
    for (; s; s = next_line(r, &err)) {
        s = skip_space(s);
        if (!*s)
            continue;
        if (*s == '\\') {
            if (section > 0 && seen[section] != declared[section]) {
                rc = err_set(COCHLEA_EFORMAT, "%s:%zu: %zu %d-grams where \\data\\ declares %zu", path, r->line_no,
                             seen[section], section, declared[section]);
                goto fail;
            }
            if (!strcmp(s, "\\end\\")) {
                ended = 1;
                break;
            }
            int n = 0;
            char tail[16] = "";
            if (sscanf(s, "\\%d-grams%15s", &n, tail) != 2 || strcmp(tail, ":") != 0 || n != section + 1 ||
                n > order) {
                rc = err_set(COCHLEA_EFORMAT, "%s:%zu: unexpected line '%.40s' (\\%d-grams: expected)", path,
                             r->line_no, s, section + 1);
                goto fail;
            }
            section = n;
            continue;
        }
        if (section < 1) {
            rc = err_set(COCHLEA_EFORMAT, "%s:%zu: n-gram line outside an \\N-grams: section", path, r->line_no);
            goto fail;
        }
        double lp, bow = 0.0;
        if (parse_float(&s, &lp)) {
            rc = err_set(COCHLEA_EFORMAT, "%s:%zu: bad log-probability", path, r->line_no);
            goto fail;
        }
        int32_t ids[NGRAM_MAX_ORDER];
        int known = 1;
        for (int i = 0; i < section; i++) {
            s = skip_space(s);
            char *w = s;
            while (*s && !is_space(*s))
                s++;
            if (s == w) {
                rc = err_set(COCHLEA_EFORMAT, "%s:%zu: %d words expected in a %d-gram line", path, r->line_no,
                             section, section);
                goto fail;
            }
            int32_t id = word_id(w, (size_t)(s - w), lookup, user, sos, eos, unk);
            if (id < 0 || id > NGRAM_MAX_ID)
                known = 0;
            ids[i] = id;
        }
        s = skip_space(s);
        if (*s && (section == order || parse_float(&s, &bow) || *skip_space(s))) {
            rc = err_set(COCHLEA_EFORMAT, "%s:%zu: unexpected text after the %d-gram", path, r->line_no, section);
            goto fail;
        }
        seen[section]++;
        if (seen[section] > declared[section]) {
            rc = err_set(COCHLEA_EFORMAT, "%s:%zu: more %d-grams than the %zu \\data\\ declares", path, r->line_no,
                         section, declared[section]);
            goto fail;
        }
        if (lp > 1e-3 || lp < -1e4 || bow > 1e4 || bow < -1e4) {
            rc = err_set(COCHLEA_EFORMAT, "%s:%zu: log-probability %g / back-off %g out of range", path, r->line_no,
                         lp, bow);
            goto fail;
        }
        if (!known) {
            skipped++;
            continue;
        }
        if ((rc = ngram_put(lm, ids, section, (float)(lp * NGRAM_LN10), (float)(bow * NGRAM_LN10))))
            goto fail;
    }
    if (err) {
        rc = err_prefix(err, "%s", path);
        goto fail;
    }
    if (!ended) {
        rc = err_set(COCHLEA_EFORMAT, "%s: truncated (no \\end\\ line)", path);
        goto fail;
    }
    for (int n = 1; n <= order; n++)
        if (seen[n] != declared[n]) {
            rc = err_set(COCHLEA_EFORMAT, "%s: %zu %d-grams where \\data\\ declares %zu", path, seen[n], n,
                         declared[n]);
            goto fail;
        }
    if (lm->counts[1] == 0) {
        rc = err_set(COCHLEA_EFORMAT, "%s: none of its %zu unigrams is a token of the model (an LM over other words?)",
                     path, declared[1]);
        goto fail;
    }
    ngram_finish(lm, unk);
    if (n_skipped)
        *n_skipped = skipped;
    *out = lm;
    return COCHLEA_OK;
fail:
    ngram_free(lm);
    return rc;
}

int ngram_load_arpa(const char *path, ngram_word_fn lookup, void *user, int32_t sos, int32_t eos, int32_t unk,
                    ngram_lm **out, size_t *n_skipped)
{
    *out = NULL;
    if (n_skipped)
        *n_skipped = 0;
    if (!path || !lookup)
        return err_set(COCHLEA_EINVAL, "ngram_load_arpa: NULL argument");
    line_reader r;
    memset(&r, 0, sizeof r);
    r.fp = fopen(path, "rb");
    if (!r.fp)
        return err_set(COCHLEA_EIO, "%s: cannot open: %s", path, strerror(errno));
    int rc = arpa_body(&r, path, lookup, user, sos, eos, unk, out, n_skipped);
    fclose(r.fp);
    free(r.buf);
    return rc;
}
