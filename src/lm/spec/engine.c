/* engine.c - tree verification engine (speculative-decoding.md §1.1-§1.5, §1.7). */
#include "lm/spec/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

int32_t lm_spec_argmax(const float *x, int64_t n)
{
    int32_t best = 0;
    float bv = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > bv) {
            bv = x[i];
            best = (int32_t)i;
        }
    return best;
}

/* Scratch of one generate call. */
typedef struct spec_buf {
    int32_t *seq, *tok, *par, *ntok, *npar, *path;
    float *logits, *plog;
} spec_buf;

static void spec_buf_free(spec_buf *b)
{
    free(b->seq), free(b->tok), free(b->par), free(b->ntok), free(b->npar), free(b->path);
    free(b->logits), free(b->plog);
}

static void *alloc_n(int64_t n, size_t elem)
{
    size_t bytes;
    if (n < 1)
        n = 1;
    if (size_mul((size_t)n, elem, &bytes) != 0)
        return NULL;
    return malloc(bytes);
}

/* Check a proposed tree: 0 <= n <= max, tokens in [0, V), parent[i] in [-1, i). */
static int check_draft(const int32_t *tok, const int32_t *par, int64_t n, int64_t max, int64_t V)
{
    if (n < 0 || n > max)
        return err_set(COCHLEA_EINVAL, "lm_spec: drafter proposed %lld nodes (at most %lld allowed)", (long long)n,
                       (long long)max);
    for (int64_t i = 0; i < n; i++) {
        if (tok[i] < 0 || tok[i] >= V)
            return err_set(COCHLEA_EINVAL, "lm_spec: draft node %lld has token %d outside [0, %lld)", (long long)i,
                           tok[i], (long long)V);
        if (par[i] < -1 || par[i] >= i)
            return err_set(COCHLEA_EINVAL, "lm_spec: draft node %lld has parent %d (must be -1 or an earlier node)",
                           (long long)i, par[i]);
    }
    return COCHLEA_OK;
}

/* One token chosen at a row exactly as AR decoding chooses it (greedy argmax or the sampler
 * chain with one RNG draw; the sampler accepts the token into its history). */
static int choose(lm_sampler *s, const float *logits, int64_t V, int32_t *y)
{
    if (!s) {
        *y = lm_spec_argmax(logits, V);
        return COCHLEA_OK;
    }
    return lm_sampler_sample(s, logits, NULL, y);
}

int lm_spec_generate(cochlea_ctx *ctx, const lm_model *m, lm_kv *kv, lm_work *w, lm_sampler *sampler,
                     lm_spec_drafter *drafter, const lm_spec_params *p, const int32_t *prompt, int64_t n_prompt,
                     int32_t *out, int64_t *n_out, lm_spec_stats *stats)
{
    if (n_out)
        *n_out = 0;
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (!ctx || !m || !kv || !w || !p || !prompt || !n_out || (!out && p->max_new > 0))
        return err_set(COCHLEA_EINVAL, "lm_spec_generate: NULL argument");
    if (n_prompt < 1 || p->max_new < 0 || p->max_nodes < 0)
        return err_set(COCHLEA_EINVAL, "lm_spec_generate: n_prompt %lld, max_new %lld, max_nodes %lld",
                       (long long)n_prompt, (long long)p->max_new, (long long)p->max_nodes);
    if (drafter && !drafter->propose)
        return err_set(COCHLEA_EINVAL, "lm_spec_generate: drafter without propose()");
    const int64_t V = m->n_vocab, C = kv->capacity;
    if (p->eos < -1 || p->eos >= V)
        return err_set(COCHLEA_EINVAL, "lm_spec_generate: eos %d outside [-1, %lld)", p->eos, (long long)V);
    for (int64_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V)
            return err_set(COCHLEA_ERANGE, "lm_spec_generate: prompt token %lld = %d outside [0, %lld)",
                           (long long)i, prompt[i], (long long)V);
    if (n_prompt > C)
        return err_set(COCHLEA_ERANGE, "lm_spec_generate: prompt of %lld tokens exceeds the cache (%lld)",
                       (long long)n_prompt, (long long)C);
    const int64_t mn = drafter ? (p->max_nodes < C ? p->max_nodes : C) : 0;
    /* the sequence never exceeds the cache: L <= C */
    const int64_t seq_cap = p->max_new < C - n_prompt ? n_prompt + p->max_new : C;
    spec_buf b = {0};
    int rc = COCHLEA_ENOMEM;
    int64_t L = n_prompt, gen = 0;
    b.seq = alloc_n(seq_cap, sizeof *b.seq);
    b.tok = alloc_n(mn + 1, sizeof *b.tok);
    b.par = alloc_n(mn + 1, sizeof *b.par);
    b.ntok = alloc_n(mn, sizeof *b.ntok);
    b.npar = alloc_n(mn, sizeof *b.npar);
    b.path = alloc_n(mn + 1, sizeof *b.path);
    size_t nl;
    if (size_mul((size_t)(mn + 1), (size_t)V, &nl) != 0 || (int64_t)nl < 0) {
        spec_buf_free(&b);
        return err_set(COCHLEA_ERANGE, "lm_spec_generate: logits size overflows");
    }
    b.logits = alloc_n((int64_t)nl, sizeof *b.logits);
    if (!b.seq || !b.tok || !b.par || !b.ntok || !b.npar || !b.path || !b.logits) {
        rc = err_set(COCHLEA_ENOMEM, "lm_spec_generate: out of memory");
        goto done;
    }
    memcpy(b.seq, prompt, (size_t)n_prompt * sizeof *prompt);
    lm_kv_clear(kv);

    /* Prefill everything but the root. */
    if (n_prompt > 1) {
        const int64_t np = n_prompt - 1;
        const int want_all = drafter && drafter->prefill;
        int32_t last = (int32_t)(np - 1);
        if (want_all) {
            if (size_mul((size_t)np, (size_t)V, &nl) != 0 || (int64_t)nl < 0) {
                rc = err_set(COCHLEA_ERANGE, "lm_spec_generate: prefill logits size overflows");
                goto done;
            }
            b.plog = alloc_n((int64_t)nl, sizeof *b.plog);
            if (!b.plog) {
                rc = err_set(COCHLEA_ENOMEM, "lm_spec_generate: out of memory");
                goto done;
            }
        }
        lm_batch pb = {np, prompt, NULL, want_all ? NULL : &last, want_all ? 0 : 1};
        rc = lm_model_forward(ctx, m, kv, w, &pb, want_all ? b.plog : b.logits);
        if (rc != COCHLEA_OK)
            goto done;
        if (want_all && (rc = drafter->prefill(drafter->self, prompt, np, b.plog, V)) != COCHLEA_OK)
            goto done;
    }

    while (gen < p->max_new && L < C) {
        const int64_t n_past = kv->n; /* == L - 1 */
        int64_t nn = 0;
        if (drafter && mn > 0) {
            rc = drafter->propose(drafter->self, b.seq, L, mn, b.ntok, b.npar, &nn);
            if (rc != COCHLEA_OK)
                goto done;
            if ((rc = check_draft(b.ntok, b.npar, nn, mn, V)) != COCHLEA_OK)
                goto done;
        }
        if (nn > C - L) /* the batch must fit: n_past + 1 + nn <= C; a BFS prefix is a tree */
            nn = C - L;
        const int64_t nr = nn + 1;
        b.tok[0] = b.seq[L - 1];
        b.par[0] = -1;
        for (int64_t i = 0; i < nn; i++) {
            b.tok[i + 1] = b.ntok[i];
            b.par[i + 1] = b.npar[i] + 1;
        }
        lm_batch fb = {nr, b.tok, nn > 0 ? b.par : NULL, NULL, 0};
        if ((rc = lm_model_forward(ctx, m, kv, w, &fb, b.logits)) != COCHLEA_OK)
            goto done;
        /* Acceptance walk (§1.4, §1.7 point-mass rule). */
        int64_t cur = 0, np = 1, acc = 0;
        const int64_t gen0 = gen;
        b.path[0] = 0;
        for (;;) {
            int32_t y;
            if ((rc = choose(sampler, b.logits + (size_t)cur * (size_t)V, V, &y)) != COCHLEA_OK)
                goto done;
            b.seq[L++] = y;
            out[gen++] = y;
            int64_t child = -1;
            for (int64_t r = cur + 1; r < nr; r++)
                if (b.par[r] == cur && b.tok[r] == y) {
                    child = r;
                    break;
                }
            if (child >= 0)
                acc++;
            if (child < 0 || y == p->eos || gen == p->max_new || L == C)
                break;
            b.path[np++] = (int32_t)child;
            cur = child;
        }
        /* Keep root + the rows of every emitted token but the last (the next root). */
        if ((rc = lm_kv_keep(kv, n_past, b.path, np)) != COCHLEA_OK)
            goto done;
        if (p->on_emit && (rc = p->on_emit(p->user, out + gen0, gen - gen0)) != COCHLEA_OK)
            goto done;
        if (stats) {
            stats->steps++;
            stats->drafted += nn;
            stats->accepted += acc;
        }
        if (drafter && drafter->observe &&
            (rc = drafter->observe(drafter->self, b.tok, b.par, nr, b.logits, V, b.path, np)) != COCHLEA_OK)
            goto done;
        if (b.seq[L - 1] == p->eos)
            break;
    }
    rc = COCHLEA_OK;
done:
    *n_out = gen;
    if (stats) {
        stats->emitted = gen;
        stats->mat = stats->steps > 0 ? (double)gen / (double)stats->steps : 0.0;
    }
    spec_buf_free(&b);
    return rc;
}
