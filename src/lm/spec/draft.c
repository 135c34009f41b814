/* draft.c - draft-model speculative decoding: chain, SpecInfer tree and RSD (draft.h;
 * speculative-decoding.md §1.7, §4, §5). */
#include "lm/spec/draft.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "lm/spec/recycling.h"

lm_spec_draft_params lm_spec_draft_default_params(lm_spec_draft_mode mode)
{
    lm_spec_draft_params p;
    memset(&p, 0, sizeof p);
    p.max_new = 128;
    p.eos = -1;
    p.mode = mode;
    p.depth = 4;
    p.width = mode == LM_SPEC_DRAFT_CHAIN ? 1 : 2;
    p.wide = mode == LM_SPEC_DRAFT_CHAIN ? 0 : 2;
    p.max_nodes = 64;
    return p;
}

static int check_params(const lm_spec_draft_params *p)
{
    if (p->mode != LM_SPEC_DRAFT_CHAIN && p->mode != LM_SPEC_DRAFT_TREE && p->mode != LM_SPEC_DRAFT_RSD)
        return err_set(COCHLEA_EINVAL, "lm_spec_draft: unknown mode %d", (int)p->mode);
    if (p->max_new < 0)
        return err_set(COCHLEA_EINVAL, "lm_spec_draft: max_new %lld < 0", (long long)p->max_new);
    if (p->depth < 1 || p->depth > LM_SPEC_DRAFT_MAX_DEPTH)
        return err_set(COCHLEA_EINVAL, "lm_spec_draft: depth %d outside [1, %d]", p->depth, LM_SPEC_DRAFT_MAX_DEPTH);
    if (p->mode != LM_SPEC_DRAFT_CHAIN && (p->width < 1 || p->width > 64 || p->wide < 0 || p->wide > p->depth))
        return err_set(COCHLEA_EINVAL, "lm_spec_draft: width %d must be in [1, 64] and wide %d in [0, depth %d]", p->width,
                       p->wide, p->depth);
    if (p->max_nodes < 1 || p->max_nodes > LM_SPEC_DRAFT_MAX_NODES)
        return err_set(COCHLEA_EINVAL, "lm_spec_draft: max_nodes %lld outside [1, %d]", (long long)p->max_nodes,
                       LM_SPEC_DRAFT_MAX_NODES);
    return COCHLEA_OK;
}

/* Children wanted below a node of level l (root = 0). */
static int64_t fanout(const lm_spec_draft_params *p, int64_t level)
{
    return p->mode == LM_SPEC_DRAFT_CHAIN || level >= p->wide ? 1 : p->width;
}

int64_t lm_spec_draft_tree_size(const lm_spec_draft_params *p)
{
    if (!p || check_params(p) != COCHLEA_OK)
        return -1;
    int64_t n = 0, lvl = 1;
    for (int64_t l = 1; l <= p->depth; l++) {
        lvl *= fanout(p, l - 1);
        n += lvl;
        if (n > LM_SPEC_DRAFT_MAX_NODES) /* no overflow: capped long before */
            return n;
    }
    return n;
}

/* ---- kernels ------------------------------------------------------------------------------- */

/* §4.1: keys log q_j - log(-log u_j) over the support of q, top k in decreasing order. */
int64_t lm_spec_gumbel_topk(lm_sampler *s, const float *q, int64_t V, int64_t k, int32_t *out)
{
    if (!s || !q || !out || V < 1 || k < 0)
        return err_set(COCHLEA_EINVAL, "lm_spec_gumbel_topk: bad arguments");
    double key[64];
    if (k > 64)
        return err_set(COCHLEA_EINVAL, "lm_spec_gumbel_topk: k %lld > 64", (long long)k);
    int64_t n = 0;
    for (int64_t j = 0; j < V; j++) {
        if (!(q[j] >= 0.0f) || isinf(q[j]))
            return err_set(COCHLEA_EINVAL, "lm_spec_gumbel_topk: q[%lld] = %g", (long long)j, (double)q[j]);
        if (q[j] == 0.0f)
            continue;
        const double u = lm_sampler_draw(s) + 0x1.0p-54; /* in (0, 1) */
        const double kv = log((double)q[j]) - log(-log(u));
        if (k == 0 || (n == k && kv <= key[n - 1]))
            continue;
        int64_t i = n < k ? n++ : k - 1;
        while (i > 0 && key[i - 1] < kv) {
            key[i] = key[i - 1];
            out[i] = out[i - 1];
            i--;
        }
        key[i] = kv;
        out[i] = (int32_t)j;
    }
    return n;
}

/* §5.1 / §5.3 / §4.3: accept x_k iff u q_k(x_k) < p_k(x_k); else p_{k+1} = norm(max(0, p_k - q_k)). */
int lm_spec_draft_verify_node(lm_sampler *s, float *p, const float *q, int64_t V, const int32_t *child, int64_t K,
                              int without_replacement, float *scratch, int32_t *token, int64_t *k_acc)
{
    if (!s || !p || !q || V < 1 || K < 0 || (K > 0 && !child) || !scratch || !token || !k_acc)
        return err_set(COCHLEA_EINVAL, "lm_spec_draft_verify_node: bad arguments");
    *k_acc = -1;
    double ps = 0, qs = 0;
    for (int64_t y = 0; y < V; y++) {
        ps += p[y];
        qs += q[y];
    }
    if (!(ps > 0) || isinf(ps) || !(qs > 0) || isinf(qs))
        return err_set(COCHLEA_EINVAL, "lm_spec_draft_verify_node: distribution without mass (p %g, q %g)", ps, qs);
    double qrem = qs; /* mass of q not yet drawn (RSD) */
    for (int64_t k = 0; k < K; k++) {
        const int32_t x = child[k];
        if (x < 0 || x >= V || !(q[x] > 0.0f))
            return err_set(COCHLEA_EINVAL, "lm_spec_draft_verify_node: child %lld = %d has no draft probability",
                           (long long)k, x);
        if (without_replacement)
            for (int64_t j = 0; j < k; j++)
                if (child[j] == x)
                    return err_set(COCHLEA_EINVAL, "lm_spec_draft_verify_node: child %d drawn twice without "
                                   "replacement", x);
        if (!(qrem > 0))
            return err_set(COCHLEA_EINVAL, "lm_spec_draft_verify_node: children exhaust the draft distribution");
        const double qk = (double)q[x] / qrem, pk = (double)p[x] / ps;
        if (lm_sampler_draw(s) * qk < pk) {
            *token = x;
            *k_acc = k;
            return COCHLEA_OK;
        }
        /* residual; tokens drawn earlier have q_k = 0 but also p_k = 0 already (rejected) */
        double sum = 0;
        for (int64_t y = 0; y < V; y++) {
            const double r = (double)p[y] / ps - (double)q[y] / qrem;
            scratch[y] = r > 0 ? (float)r : 0.0f;
            sum += scratch[y];
        }
        if (sum > 0) { /* else p == q_k up to rounding: keep p_k */
            memcpy(p, scratch, (size_t)V * sizeof *p);
            ps = sum;
        }
        if (without_replacement)
            qrem -= q[x];
    }
    const int32_t y = lm_sample_from_probs(p, V, lm_sampler_draw(s));
    if (y < 0)
        return err_set(COCHLEA_EINTERNAL, "lm_spec_draft_verify_node: residual without mass");
    *token = y;
    return COCHLEA_OK;
}

/* ---- generation ---------------------------------------------------------------------------- */

typedef struct dbuf {
    int32_t *seq;                 /* [seq_cap] */
    int32_t tok[LM_SPEC_DRAFT_MAX_NODES + 1], par[LM_SPEC_DRAFT_MAX_NODES + 1]; /* target rows */
    int32_t ntok[LM_SPEC_DRAFT_MAX_NODES], npar[LM_SPEC_DRAFT_MAX_NODES];     /* nodes */
    int32_t nlev[LM_SPEC_DRAFT_MAX_NODES];
    int32_t cfirst[LM_SPEC_DRAFT_MAX_NODES + 1], cnum[LM_SPEC_DRAFT_MAX_NODES + 1]; /* children by row */
    uint8_t det[LM_SPEC_DRAFT_MAX_NODES + 1];                                     /* deterministic row */
    int32_t brow[LM_SPEC_DRAFT_MAX_NODES], bpar[LM_SPEC_DRAFT_MAX_NODES];        /* draft batch */
    int32_t path[LM_SPEC_DRAFT_MAX_NODES + 1], kept[LM_SPEC_DRAFT_MAX_NODES];
    int32_t extra[LM_SPEC_DRAFT_MAX_DEPTH + 1], ids[LM_SPEC_DRAFT_MAX_NODES + 2];
    float *tlog;  /* [(mn + 1) * V] target logits */
    float *dlog;  /* [(mn + 1) * V] draft logits of one level */
    float *q;     /* [(mn + 1) * V] draft distribution per row (root = row 0) */
    float *p, *scratch, *vals; /* [V] each */
} dbuf;

static void dbuf_free(dbuf *b)
{
    free(b->seq), free(b->tlog), free(b->dlog), free(b->q), free(b->p), free(b->scratch), free(b->vals);
    free(b);
}

static float *alloc_rows(int64_t rows, int64_t V)
{
    size_t n;
    if (size_mul((size_t)rows, (size_t)V, &n) || size_mul(n, sizeof(float), &n))
        return NULL;
    return malloc(n ? n : 1);
}

/* The tokens of row r's path below the root (row = node + 1), root-side first; returns the count. */
static int64_t row_path(const dbuf *b, int64_t row, int32_t *extra)
{
    int64_t n = 0;
    for (int64_t x = row - 1; x >= 0; x = b->npar[x])
        n++;
    int64_t i = n;
    for (int64_t x = row - 1; x >= 0; x = b->npar[x])
        extra[--i] = b->ntok[x];
    return n;
}

/* Children of one draft row (row 0 = root): fills ntok/npar/nlev from *nn on, at most `want`.
 * q of the row is written to b->q row `row` when a sampler is given. */
static int draft_children(dbuf *b, lm_sampler *s, const lm_spec_draft_params *p, const float *dl, int64_t V,
                          int64_t row, int32_t level, int64_t want, int64_t *nn)
{
    int64_t cnt = 0;
    b->det[row] = 1;
    if (s) {
        float *q = b->q + (size_t)row * (size_t)V;
        const int64_t ne = row_path(b, row, b->extra);
        int rc = lm_sampler_probs(s, dl, b->extra, ne, q);
        if (rc)
            return rc;
        int64_t nz = 0;
        int32_t only = 0;
        for (int64_t t = 0; t < V && nz < 2; t++)
            if (q[t] > 0.0f)
                nz++, only = (int32_t)t;
        if (nz >= 2) {
            b->det[row] = 0;
            if (p->mode == LM_SPEC_DRAFT_RSD) {
                cnt = lm_spec_gumbel_topk(s, q, V, want, b->ids);
                if (cnt < 0)
                    return (int)cnt;
            } else {
                for (; cnt < want; cnt++) {
                    b->ids[cnt] = lm_sample_from_probs(q, V, lm_sampler_draw(s));
                    if (b->ids[cnt] < 0)
                        return err_set(COCHLEA_EINTERNAL, "lm_spec_draft: draft distribution without mass");
                }
            }
        } else { /* point mass first, then the next tokens by raw draft logit */
            lm_spec_topk(dl, V, (int32_t)(want + 1 < V ? want + 1 : V), b->ids + 1, b->vals);
            const int64_t lim = want < V ? want : V;
            b->ids[0] = only;
            cnt = 1;
            for (int64_t i = 1; i <= lim && cnt < lim; i++)
                if (b->ids[i] != only)
                    b->ids[cnt++] = b->ids[i];
        }
    } else {
        cnt = want < V ? want : V;
        lm_spec_topk(dl, V, (int32_t)cnt, b->ids, b->vals);
    }
    b->cfirst[row] = (int32_t)*nn;
    b->cnum[row] = (int32_t)cnt;
    for (int64_t i = 0; i < cnt; i++) {
        b->ntok[*nn] = b->ids[i];
        b->npar[*nn] = (int32_t)(row - 1);
        b->nlev[*nn] = level;
        b->cfirst[*nn + 1] = 0, b->cnum[*nn + 1] = 0, b->det[*nn + 1] = 1;
        (*nn)++;
    }
    return COCHLEA_OK;
}

/* Draft one tree below the root seq[L-1]: catch the draft cache up to L, then one draft forward
 * per level (re-running the rows below the cached chain prefix). On return dkv holds
 * base = L slots plus the F = *n_fwd non-leaf nodes at slots base + node. */
static int draft_tree(cochlea_ctx *ctx, const lm_model *dm, lm_kv *dkv, lm_work *w, lm_sampler *s,
                      const lm_spec_draft_params *p, dbuf *b, int64_t L, int64_t budget, int64_t depth, int64_t *n_nodes,
                      int64_t *n_fwd)
{
    const int64_t V = dm->n_vocab;
    const int64_t dn = dkv->n;
    int32_t last = (int32_t)(L - dn - 1);
    lm_batch cb = {L - dn, b->seq + dn, NULL, &last, 1};
    int rc = lm_model_forward(ctx, dm, dkv, w, &cb, b->dlog);
    if (rc)
        return rc;
    const int64_t base = L;
    int64_t nn = 0, lev_lo = 0, lev_hi = 0, chain = 0; /* nodes of the last level: [lev_lo, lev_hi) */
    *n_fwd = 0;
    b->cfirst[0] = 0, b->cnum[0] = 0;
    for (int64_t l = 1; l <= depth && nn < budget; l++) {
        if (l == 1) {
            rc = draft_children(b, s, p, b->dlog, V, 0, 1, fanout(p, 0) < budget ? fanout(p, 0) : budget, &nn);
            if (rc)
                return rc;
            lev_lo = 0, lev_hi = nn;
            continue;
        }
        /* forward nodes [chain, lev_hi) (levels chain+1 .. l-1) below the cached chain prefix */
        if ((rc = lm_kv_truncate(dkv, base + chain)) != COCHLEA_OK)
            return rc;
        const int64_t nb = lev_hi - chain;
        for (int64_t i = 0; i < nb; i++) {
            const int32_t pa = b->npar[chain + i];
            b->bpar[i] = pa < chain ? -1 : (int32_t)(pa - chain);
        }
        for (int64_t i = lev_lo; i < lev_hi; i++)
            b->brow[i - lev_lo] = (int32_t)(i - chain);
        lm_batch fb = {nb, b->ntok + chain, b->bpar, b->brow, lev_hi - lev_lo};
        if ((rc = lm_model_forward(ctx, dm, dkv, w, &fb, b->dlog)) != COCHLEA_OK)
            return rc;
        *n_fwd = lev_hi;
        if (chain == l - 2 && lev_hi - lev_lo == 1)
            chain = l - 1; /* levels 1 .. l-1 are single nodes: keep them cached */
        const int64_t lo = nn;
        for (int64_t i = lev_lo; i < lev_hi && nn < budget; i++) {
            const int64_t f = fanout(p, l - 1), room = budget - nn;
            rc = draft_children(b, s, p, b->dlog + (size_t)(i - lev_lo) * (size_t)V, V, i + 1, (int32_t)l,
                                f < room ? f : room, &nn);
            if (rc)
                return rc;
        }
        lev_lo = lo, lev_hi = nn;
        if (lev_hi == lev_lo)
            break;
    }
    *n_nodes = nn;
    return COCHLEA_OK;
}

int lm_spec_draft_generate(cochlea_ctx *ctx, const lm_model *target, lm_kv *tkv, const lm_model *draft, lm_kv *dkv,
                           lm_work *w, lm_sampler *sampler, const lm_spec_draft_params *p, const int32_t *prompt,
                           int64_t n_prompt, int32_t *out, int64_t *n_out, lm_spec_stats *stats)
{
    if (n_out)
        *n_out = 0;
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (!ctx || !target || !tkv || !draft || !dkv || !w || !p || !prompt || !n_out || (!out && p->max_new > 0))
        return err_set(COCHLEA_EINVAL, "lm_spec_draft_generate: NULL argument");
    int rc = check_params(p);
    if (rc)
        return rc;
    if (tkv == dkv)
        return err_set(COCHLEA_EINVAL, "lm_spec_draft_generate: target and draft need separate KV caches");
    if (target->n_vocab != draft->n_vocab)
        return err_set(COCHLEA_EINVAL,
                       "lm_spec_draft_generate: the draft model has %lld tokens but the target has %lld (they "
                       "must share one vocabulary)",
                       (long long)draft->n_vocab, (long long)target->n_vocab);
    const int64_t V = target->n_vocab, C = tkv->capacity < dkv->capacity ? tkv->capacity : dkv->capacity;
    if (n_prompt < 1)
        return err_set(COCHLEA_EINVAL, "lm_spec_draft_generate: empty prompt");
    if (p->eos < -1 || p->eos >= V)
        return err_set(COCHLEA_EINVAL, "lm_spec_draft_generate: eos %d outside [-1, %lld)", p->eos, (long long)V);
    for (int64_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V)
            return err_set(COCHLEA_ERANGE, "lm_spec_draft_generate: prompt token %lld = %d outside [0, %lld)",
                           (long long)i, prompt[i], (long long)V);
    if (n_prompt > C)
        return err_set(COCHLEA_ERANGE, "lm_spec_draft_generate: prompt of %lld tokens exceeds the cache (%lld)",
                       (long long)n_prompt, (long long)C);
    const int64_t ts = lm_spec_draft_tree_size(p);
    const int64_t mn = ts < p->max_nodes ? ts : p->max_nodes;
    const int64_t seq_cap = p->max_new < C - n_prompt ? n_prompt + p->max_new : C;
    dbuf *b = calloc(1, sizeof *b);
    if (!b)
        return err_set(COCHLEA_ENOMEM, "lm_spec_draft_generate: out of memory");
    size_t sb;
    if (!size_mul((size_t)seq_cap, sizeof *b->seq, &sb))
        b->seq = malloc(sb);
    b->tlog = alloc_rows(mn + 1, V);
    b->dlog = alloc_rows(mn + 1, V);
    b->q = sampler ? alloc_rows(mn + 1, V) : NULL; /* q rows only matter when sampling */
    b->p = alloc_rows(1, V);
    b->scratch = alloc_rows(1, V);
    b->vals = alloc_rows(mn + 2, 1);
    int64_t L = n_prompt, gen = 0;
    if (!b->seq || !b->tlog || !b->dlog || (sampler && !b->q) || !b->p || !b->scratch || !b->vals) {
        rc = err_set(COCHLEA_ENOMEM, "lm_spec_draft_generate: out of memory (vocabulary %lld, %lld nodes)",
                     (long long)V, (long long)mn);
        goto done;
    }
    memcpy(b->seq, prompt, (size_t)n_prompt * sizeof *prompt);
    lm_kv_clear(tkv);
    lm_kv_clear(dkv);
    if (n_prompt > 1) {
        int32_t last = (int32_t)(n_prompt - 2);
        lm_batch pb = {n_prompt - 1, prompt, NULL, &last, 1};
        if ((rc = lm_model_forward(ctx, target, tkv, w, &pb, b->tlog)) != COCHLEA_OK)
            goto done;
    }

    while (gen < p->max_new && L < C) {
        const int64_t n_past = tkv->n; /* == L - 1 */
        const int64_t rem = p->max_new - gen;
        const int64_t budget = mn < C - L ? mn : C - L;
        const int64_t depth = p->depth < rem ? p->depth : rem;
        int64_t nn = 0, nf = 0;
        if (budget > 0 && (rc = draft_tree(ctx, draft, dkv, w, sampler, p, b, L, budget, depth, &nn, &nf)) != COCHLEA_OK)
            goto done;
        const int64_t base = L; /* draft cache: L slots + nf node rows (budget 0: draft untouched) */
        const int64_t nr = nn + 1;
        b->tok[0] = b->seq[L - 1];
        b->par[0] = -1;
        if (budget == 0)
            b->cnum[0] = 0;
        for (int64_t i = 0; i < nn; i++) {
            b->tok[i + 1] = b->ntok[i];
            b->par[i + 1] = b->npar[i] + 1;
        }
        lm_batch fb = {nr, b->tok, nn > 0 ? b->par : NULL, NULL, 0};
        if ((rc = lm_model_forward(ctx, target, tkv, w, &fb, b->tlog)) != COCHLEA_OK)
            goto done;
        /* acceptance walk: point-mass rule at deterministic rows, §5.1/§5.3/§4.3 at stochastic ones */
        int64_t cur = 0, np = 1, acc = 0;
        const int64_t gen0 = gen;
        b->path[0] = 0;
        for (;;) {
            const float *lg = b->tlog + (size_t)cur * (size_t)V;
            const int32_t *kids = b->ntok + b->cfirst[cur];
            const int64_t K = b->cnum[cur];
            int32_t y;
            int64_t k = -1;
            if (!sampler) {
                y = lm_spec_argmax(lg, V);
            } else {
                if ((rc = lm_sampler_probs(sampler, lg, NULL, 0, b->p)) != COCHLEA_OK)
                    goto done;
                if (b->det[cur] || K == 0) {
                    y = lm_sample_from_probs(b->p, V, lm_sampler_draw(sampler));
                    if (y < 0) {
                        rc = err_set(COCHLEA_EINTERNAL, "lm_spec_draft: target distribution without mass");
                        goto done;
                    }
                } else if ((rc = lm_spec_draft_verify_node(sampler, b->p, b->q + (size_t)cur * (size_t)V, V, kids, K,
                                                           p->mode == LM_SPEC_DRAFT_RSD, b->scratch, &y, &k)) !=
                           COCHLEA_OK)
                    goto done;
                if ((rc = lm_sampler_accept(sampler, y)) != COCHLEA_OK)
                    goto done;
            }
            if (k < 0 && (!sampler || b->det[cur]))
                for (int64_t j = 0; j < K; j++)
                    if (kids[j] == y) {
                        k = j;
                        break;
                    }
            b->seq[L++] = y;
            out[gen++] = y;
            const int64_t child = k >= 0 ? b->cfirst[cur] + k + 1 : -1; /* row */
            if (child >= 0)
                acc++;
            if (child < 0 || y == p->eos || gen == p->max_new || L == C)
                break;
            b->path[np++] = (int32_t)child;
            cur = child;
        }
        if ((rc = lm_kv_keep(tkv, n_past, b->path, np)) != COCHLEA_OK)
            goto done;
        if (budget > 0) { /* accepted non-leaf nodes stay in the draft cache (slot base + node) */
            int64_t m = 0;
            while (m + 1 < np && b->path[m + 1] - 1 < nf) {
                b->kept[m] = b->path[m + 1] - 1;
                m++;
            }
            rc = m > 0 ? lm_kv_keep(dkv, base, b->kept, m) : lm_kv_truncate(dkv, base);
            if (rc)
                goto done;
        }
        if (p->on_emit && (rc = p->on_emit(p->user, out + gen0, gen - gen0)) != COCHLEA_OK)
            goto done;
        if (stats) {
            stats->steps++;
            stats->drafted += nn;
            stats->accepted += acc;
        }
        if (b->seq[L - 1] == p->eos)
            break;
    }
    rc = COCHLEA_OK;
done:
    *n_out = gen;
    if (stats) {
        stats->emitted = gen;
        stats->mat = stats->steps > 0 ? (double)gen / (double)stats->steps : 0.0;
    }
    dbuf_free(b);
    return rc;
}
