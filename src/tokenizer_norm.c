/* tokenizer_norm.c - SentencePiece's normaliser: the precompiled charsmap (a darts-clone double
 * array over UTF-8 byte strings plus a blob of NUL-terminated replacements, e.g. nmt_nfkc),
 * user-defined symbols copied verbatim, invalid UTF-8 -> U+FFFD per byte, and the whitespace
 * rules (remove_extra_whitespaces, add_dummy_prefix, escape_whitespaces as U+2581). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_internal.h"

/* sentencepiece keeps at most this many prefix matches of the charsmap per position. */
#define CHARSMAP_MAX_RESULTS 32

int tok_buf_reserve(tok_buf *b, size_t extra)
{
    size_t need;
    if (size_add(b->n, extra, &need))
        return err_set(COCHLEA_ERANGE, "tokenizer: buffer size overflow");
    if (need <= b->cap)
        return COCHLEA_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return err_set(COCHLEA_ENOMEM, "tokenizer: out of memory for a %zu-byte buffer", cap);
    b->p = p;
    b->cap = cap;
    return COCHLEA_OK;
}

int tok_buf_append(tok_buf *b, const void *data, size_t n)
{
    int rc = tok_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->p + b->n, data, n);
    b->n += n;
    return COCHLEA_OK;
}

void tok_buf_free(tok_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

static int is_trail(uint8_t c)
{
    return (c & 0xC0) == 0x80;
}

static int valid_cp(uint32_t c)
{
    return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF);
}

int tok_utf8_valid_prefix(const uint8_t *s, size_t n, size_t *mblen)
{
    uint32_t cp;
    if (s[0] < 0x80) {
        *mblen = 1;
        return 1;
    }
    if (n >= 2 && (s[0] & 0xE0) == 0xC0) {
        cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        if (is_trail(s[1]) && cp >= 0x80 && valid_cp(cp)) {
            *mblen = 2;
            return 1;
        }
    } else if (n >= 3 && (s[0] & 0xF0) == 0xE0) {
        cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        if (is_trail(s[1]) && is_trail(s[2]) && cp >= 0x800 && valid_cp(cp)) {
            *mblen = 3;
            return 1;
        }
    } else if (n >= 4 && (s[0] & 0xF8) == 0xF0) {
        cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
             (s[3] & 0x3F);
        if (is_trail(s[1]) && is_trail(s[2]) && is_trail(s[3]) && cp >= 0x10000 && valid_cp(cp)) {
            *mblen = 4;
            return 1;
        }
    }
    *mblen = 1;
    return 0;
}

/* precompiled_charsmap = u32 trie size (little-endian) | double array | replacement strings. */
int tok_norm_init(tokenizer *tok, tok_norm *norm, const char *what)
{
    norm->units = NULL;
    norm->n_units = 0;
    norm->strings = NULL;
    norm->n_strings = 0;
    norm->strings_limit = 0;
    size_t len = norm->charsmap.len;
    if (len == 0)
        return COCHLEA_OK;
    const uint8_t *p = tok->blob + norm->charsmap.off;
    if (len <= 4)
        return err_set(COCHLEA_EFORMAT, "%s: %s.precompiled_charsmap is %zu bytes, too short for its header",
                       tok->name, what, len);
    uint32_t trie_size = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    if ((size_t)trie_size >= len - 4)
        return err_set(COCHLEA_EFORMAT,
                       "%s: %s.precompiled_charsmap: trie of %u bytes does not fit in the %zu bytes after "
                       "its header",
                       tok->name, what, trie_size, len - 4);
    norm->units = p + 4;
    norm->n_units = trie_size / 4;
    norm->strings = p + 4 + trie_size;
    norm->n_strings = len - 4 - trie_size;
    for (size_t i = norm->n_strings; i > 0; i--)
        if (norm->strings[i - 1] == 0) {
            norm->strings_limit = i;
            break;
        }
    return COCHLEA_OK;
}

static uint32_t unit_at(const tok_norm *n, size_t i)
{
    const uint8_t *u = n->units + 4 * i;
    return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

/* darts-clone unit fields */
static int unit_has_leaf(uint32_t u)
{
    return (u >> 8) & 1;
}
static uint32_t unit_value(uint32_t u)
{
    return u & 0x7FFFFFFFu;
}
static uint32_t unit_label(uint32_t u)
{
    return u & (0x80000000u | 0xFFu);
}
static size_t unit_offset(uint32_t u)
{
    return (size_t)(u >> 10) << ((u & (1u << 9)) >> 6);
}

/* darts-clone commonPrefixSearch over s[0..n), keeping the longest of the first
 * CHARSMAP_MAX_RESULTS matches: returns its length (0: none) and its value in *value. Array
 * reads outside the double array end the search. */
static size_t charsmap_longest(const tok_norm *nm, const uint8_t *s, size_t n, uint32_t *value)
{
    if (nm->n_units == 0)
        return 0;
    size_t pos = unit_offset(unit_at(nm, 0));
    size_t best = 0, found = 0;
    for (size_t i = 0; i < n; i++) {
        pos ^= s[i];
        if (pos >= nm->n_units)
            return best;
        uint32_t u = unit_at(nm, pos);
        if (unit_label(u) != s[i])
            return best;
        pos ^= unit_offset(u);
        if (unit_has_leaf(u)) {
            if (found < CHARSMAP_MAX_RESULTS) {
                if (pos >= nm->n_units)
                    return best;
                best = i + 1;
                *value = unit_value(unit_at(nm, pos));
            }
            found++;
        }
    }
    return best;
}

size_t tok_user_match(const tokenizer *tok, const uint8_t *s, size_t n)
{
    const tok_trie *t = &tok->user_trie;
    if (!t->nodes)
        return 0;
    uint32_t node = 0;
    size_t best = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t c = tok_trie_child(t, node, s[i]);
        if (c < 0)
            break;
        node = (uint32_t)c;
        if (t->nodes[node].value >= 0)
            best = i + 1;
    }
    return best;
}

/* sentencepiece's NormalizePrefix: the replacement (*rep, *rep_len) of the longest rule matching
 * a prefix of s[0..n) and the number of input bytes it consumes (*used). */
static int normalize_prefix(const tokenizer *tok, const tok_norm *nm, int use_matcher, const uint8_t *s,
                            size_t n, const uint8_t **rep, size_t *rep_len, size_t *used)
{
    static const uint8_t replacement[3] = {0xEF, 0xBF, 0xBD};
    if (use_matcher) {
        size_t m = tok_user_match(tok, s, n);
        if (m) {
            *rep = s;
            *rep_len = *used = m;
            return COCHLEA_OK;
        }
    }
    uint32_t value = 0;
    size_t m = charsmap_longest(nm, s, n, &value);
    if (m == 0) {
        size_t mblen;
        if (!tok_utf8_valid_prefix(s, n, &mblen)) {
            *rep = replacement;
            *rep_len = 3;
            *used = 1;
        } else {
            *rep = s;
            *rep_len = *used = mblen;
        }
        return COCHLEA_OK;
    }
    if (value >= nm->strings_limit)
        return err_set(COCHLEA_EFORMAT,
                       "%s: precompiled_charsmap: rule value %u points past the last NUL-terminated "
                       "replacement string (%zu bytes of strings)",
                       tok->name, value, nm->n_strings);
    *rep = nm->strings + value;
    *rep_len = strlen((const char *)*rep);
    *used = m;
    return COCHLEA_OK;
}

static int append_ws(const tok_norm *nm, tok_buf *out)
{
    return nm->escape_ws ? tok_buf_append(out, TOK_SPACE, TOK_SPACE_LEN) : tok_buf_append(out, " ", 1);
}

int tok_normalize(const tokenizer *tok, const tok_norm *nm, int use_matcher, int suffix, const uint8_t *in,
                  size_t n, tok_buf *out)
{
    const uint8_t *rep;
    size_t rep_len, used;
    int rc;
    out->n = 0;
    if (n == 0)
        return COCHLEA_OK;
    /* leading whitespace */
    if (nm->remove_extra_ws) {
        while (n > 0) {
            if ((rc = normalize_prefix(tok, nm, use_matcher, in, n, &rep, &rep_len, &used)))
                return rc;
            if (!(rep_len == 1 && rep[0] == ' '))
                break;
            in += used;
            n -= used;
        }
    }
    if (n == 0)
        return COCHLEA_OK;
    if (n <= SIZE_MAX / 4 && (rc = tok_buf_reserve(out, n * 3)))
        return rc;
    if (!suffix && nm->add_dummy_prefix && (rc = append_ws(nm, out)))
        return rc;
    int prev_space = nm->remove_extra_ws;
    while (n > 0) {
        if ((rc = normalize_prefix(tok, nm, use_matcher, in, n, &rep, &rep_len, &used)))
            return rc;
        while (prev_space && rep_len > 0 && rep[0] == ' ') {
            rep++;
            rep_len--;
        }
        if (rep_len > 0) {
            for (size_t i = 0; i < rep_len; i++) {
                if (nm->escape_ws && rep[i] == ' ')
                    rc = tok_buf_append(out, TOK_SPACE, TOK_SPACE_LEN);
                else
                    rc = tok_buf_append(out, rep + i, 1);
                if (rc)
                    return rc;
            }
            prev_space = rep[rep_len - 1] == ' ';
        }
        in += used;
        n -= used;
        if (!nm->remove_extra_ws)
            prev_space = 0;
    }
    /* trailing whitespace */
    if (nm->remove_extra_ws) {
        const char *sp = nm->escape_ws ? TOK_SPACE : " ";
        size_t sp_len = nm->escape_ws ? TOK_SPACE_LEN : 1;
        while (out->n >= sp_len && memcmp(out->p + out->n - sp_len, sp, sp_len) == 0)
            out->n -= sp_len;
    }
    if (suffix && nm->add_dummy_prefix && (rc = append_ws(nm, out)))
        return rc;
    return COCHLEA_OK;
}
