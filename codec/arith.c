/* arith.c - adaptive-frequency range coder (docs/sec-format.md §5). */
#include "codec/arith.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

/* ---- adaptive frequency model ---------------------------------------------------------- */

int arith_model_init(arith_model *m, uint32_t n_symbols)
{
    memset(m, 0, sizeof *m);
    if (n_symbols < 1 || n_symbols > ARITH_MAX_SYMBOLS)
        return err_set(COCHLEA_EINVAL, "arith: alphabet size %u out of range (1..%u)", n_symbols,
                       ARITH_MAX_SYMBOLS);
    m->freq = malloc((size_t)n_symbols * sizeof *m->freq);
    m->tree = malloc(((size_t)n_symbols + 1) * sizeof *m->tree);
    if (!m->freq || !m->tree) {
        arith_model_free(m);
        return err_set(COCHLEA_ENOMEM, "arith: out of memory for a %u-symbol model", n_symbols);
    }
    m->n_symbols = n_symbols;
    m->top = 1;
    while (m->top <= n_symbols / 2)
        m->top <<= 1;
    arith_model_reset(m);
    return COCHLEA_OK;
}

void arith_model_free(arith_model *m)
{
    free(m->freq);
    free(m->tree);
    memset(m, 0, sizeof *m);
}

/* Fenwick tree of freq[] in O(K): tree[i] = sum of freq over (i - lowbit(i), i]. */
static void model_build_tree(arith_model *m)
{
    uint32_t n = m->n_symbols;
    m->tree[0] = 0;
    for (uint32_t i = 1; i <= n; i++)
        m->tree[i] = m->freq[i - 1];
    for (uint32_t i = 1; i <= n; i++) {
        uint32_t j = i + (i & (0u - i));
        if (j <= n)
            m->tree[j] += m->tree[i];
    }
}

void arith_model_reset(arith_model *m)
{
    for (uint32_t i = 0; i < m->n_symbols; i++)
        m->freq[i] = 1;
    m->total = m->n_symbols;
    model_build_tree(m);
}

/* Cumulative count of symbols 0..s-1. */
static uint32_t model_cum(const arith_model *m, uint32_t s)
{
    uint32_t c = 0;
    for (uint32_t i = s; i > 0; i &= i - 1)
        c += m->tree[i];
    return c;
}

/* The symbol s with cum(s) <= t < cum(s) + freq[s] (t < total); *cum receives cum(s). */
static uint32_t model_find(const arith_model *m, uint32_t t, uint32_t *cum)
{
    uint32_t pos = 0, rem = t;
    for (uint32_t step = m->top; step > 0; step >>= 1) {
        uint32_t nx = pos + step;
        if (nx <= m->n_symbols && m->tree[nx] <= rem) {
            pos = nx;
            rem -= m->tree[nx];
        }
    }
    *cum = t - rem;
    return pos;
}

/* sec-format.md §5.2: freq[s] += INC; if total > TOTAL_MAX, freq[i] = ceil(freq[i] / 2) for all i. */
static void model_update(arith_model *m, uint32_t s)
{
    m->freq[s] += ARITH_INC;
    m->total += ARITH_INC;
    if (m->total > ARITH_TOTAL_MAX) {
        uint32_t t = 0;
        for (uint32_t i = 0; i < m->n_symbols; i++) {
            m->freq[i] = (m->freq[i] + 1) >> 1;
            t += m->freq[i];
        }
        m->total = t;
        model_build_tree(m);
        return;
    }
    for (uint32_t i = s + 1; i <= m->n_symbols; i += i & (0u - i))
        m->tree[i] += ARITH_INC;
}

/* ---- encoder ----------------------------------------------------------------------------- */

void arith_enc_reset(arith_encoder *e)
{
    e->low = 0;
    e->range = 0xFFFFFFFFu;
    e->cache = 0;
    e->have_cache = 0;
    e->pending = 0;
    e->len = 0;
    e->error = 0;
}

void arith_enc_free(arith_encoder *e)
{
    free(e->buf);
    memset(e, 0, sizeof *e);
}

static void enc_put(arith_encoder *e, uint8_t b)
{
    if (e->error)
        return;
    if (e->len == e->cap) {
        size_t ncap = e->cap ? e->cap * 2 : 256;
        uint8_t *nb = ncap > e->cap ? realloc(e->buf, ncap) : NULL;
        if (!nb) {
            e->error = 1;
            return;
        }
        e->buf = nb;
        e->cap = ncap;
    }
    e->buf[e->len++] = b;
}

/* Move bits 24..31 of low out as one byte, resolving a carry (bit 32) into the cached byte and the
 * pending 0xFF run (the LZMA-style carry-less output scheme). */
static void enc_shift_low(arith_encoder *e)
{
    if (e->low < 0xFF000000u || e->low >= 0x100000000ull) {
        uint8_t carry = (uint8_t)(e->low >> 32);
        if (e->have_cache)
            enc_put(e, (uint8_t)(e->cache + carry));
        for (; e->pending > 0; e->pending--)
            enc_put(e, (uint8_t)(0xFFu + carry));
        e->cache = (uint8_t)(e->low >> 24);
        e->have_cache = 1;
    } else {
        e->pending++;
    }
    e->low = (e->low & 0x00FFFFFFu) << 8;
}

/* sec-format.md §5.3: low += floor(R*c/T); range = floor(R*(c+f)/T) - floor(R*c/T); renormalise. */
int arith_enc_symbol(arith_encoder *e, arith_model *m, uint32_t s)
{
    if (s >= m->n_symbols)
        return err_set(COCHLEA_ERANGE, "arith: symbol %u >= alphabet size %u", s, m->n_symbols);
    uint64_t r = e->range, t = m->total;
    uint64_t c = model_cum(m, s);
    uint64_t a = r * c / t, b = r * (c + m->freq[s]) / t;
    e->low += a;
    e->range = (uint32_t)(b - a);
    while (e->range < ARITH_RANGE_MIN) {
        e->range <<= 8;
        enc_shift_low(e);
    }
    model_update(m, s);
    if (e->error)
        return err_set(COCHLEA_ENOMEM, "arith: out of memory for the code stream (%zu bytes)", e->len);
    return COCHLEA_OK;
}

/* sec-format.md §5.4: final value V = the multiple of 2^k in [low, low+range) with the largest
 * k <= 32; emit V's bytes, then drop trailing zero bytes (the decoder reads zeros past the end). */
int arith_enc_finish(arith_encoder *e)
{
    uint64_t hi = e->low + e->range, v = e->low;
    for (int k = 32; k >= 0; k--) {
        uint64_t mask = (1ull << k) - 1;
        uint64_t cand = (e->low + mask) & ~mask;
        if (cand < hi) {
            v = cand;
            break;
        }
    }
    e->low = v;
    for (int i = 0; i < 5; i++)
        enc_shift_low(e);
    if (e->error)
        return err_set(COCHLEA_ENOMEM, "arith: out of memory for the code stream (%zu bytes)", e->len);
    while (e->len > 0 && e->buf[e->len - 1] == 0)
        e->len--;
    return COCHLEA_OK;
}

/* ---- decoder ----------------------------------------------------------------------------- */

static uint8_t dec_byte(arith_decoder *d)
{
    uint8_t b = d->pos < d->len ? d->buf[d->pos] : 0;
    d->pos++;
    return b;
}

void arith_dec_init(arith_decoder *d, const uint8_t *buf, size_t len)
{
    d->buf = buf;
    d->len = len;
    d->pos = 0;
    d->range = 0xFFFFFFFFu;
    d->code = 0;
    for (int i = 0; i < 4; i++)
        d->code = (d->code << 8) | dec_byte(d);
}

/* sec-format.md §5.5: t = floor(((code+1)*T - 1) / R) is the largest cumulative count c with
 * floor(R*c/T) <= code, so the symbol is the one whose [cum, cum+freq) holds t. */
int arith_dec_symbol(arith_decoder *d, arith_model *m, uint32_t *s)
{
    if (d->code >= d->range)
        return err_set(COCHLEA_EFORMAT, "arithmetic code value 0x%08x outside the range 0x%08x at byte %llu",
                       d->code, d->range, (unsigned long long)d->pos);
    uint64_t r = d->range, t = m->total;
    uint32_t target = (uint32_t)((((uint64_t)d->code + 1) * t - 1) / r);
    uint32_t c;
    uint32_t sym = model_find(m, target, &c);
    uint64_t a = r * c / t, b = r * ((uint64_t)c + m->freq[sym]) / t;
    d->code -= (uint32_t)a;
    d->range = (uint32_t)(b - a);
    while (d->range < ARITH_RANGE_MIN) {
        d->range <<= 8;
        d->code = (d->code << 8) | dec_byte(d);
    }
    model_update(m, sym);
    *s = sym;
    return COCHLEA_OK;
}

int arith_dec_finish(const arith_decoder *d)
{
    if (d->pos < d->len)
        return err_set(COCHLEA_EFORMAT, "arithmetic code stream has %llu unused trailing bytes",
                       (unsigned long long)(d->len - d->pos));
    if (d->len > 0 && d->buf[d->len - 1] == 0)
        return err_set(COCHLEA_EFORMAT, "arithmetic code stream ends in a zero byte (not canonical)");
    return COCHLEA_OK;
}
