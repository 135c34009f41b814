/* test_lm_draft.c - draft-model speculative decoding (src/lm/spec/draft.c; issue 8,
 * speculative-decoding.md §4, §5, §9.1, §9.3, §9.4) on small random llama models built in memory:
 * greedy identity with plain AR, exact target distributions under chain / tree (SpecInfer MSS) /
 * RSD sampling (chi-square), KV state, reproducibility and argument checks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "error.h"
#include "gguf.h"
#include "lm/kv.h"
#include "lm/model.h"
#include "lm/sampler.h"
#include "lm/spec/draft.h"
#include "tensor.h"
#include "testutil.h"

/* Check's ck_assert records a location through its pipe on every success, which dominates
 * tight loops; these only call into Check on failure. */
#define REQ(cond)                                                                                           \
    do {                                                                                                     \
        if (!(cond))                                                                                         \
            ck_abort_msg("%s:%d: %s failed: %s", __FILE__, __LINE__, #cond, cochlea_last_error());          \
    } while (0)

#include "lm_model_rand.h"

typedef struct mdl {
    void *buf;
    gguf_file *f;
    lm_model *m;
} mdl;

static void mdl_open(mdl *x, const tcfg *c, uint64_t seed)
{
    size_t size;
    make_model(c, seed, &x->buf, &size);
    REQ(gguf_open_memory(x->buf, size, &x->f) == 0);
    REQ(lm_model_from_gguf(x->f, &x->m) == 0);
}

static void mdl_close(mdl *x)
{
    lm_model_free(x->m);
    gguf_close(x->f);
    free(x->buf);
}

/* A target, a smaller draft of the same vocabulary (another seed), a context, scratch. */
typedef struct rig {
    mdl t, d;
    cochlea_ctx *ctx;
    lm_work *w;
    int64_t V;
} rig;

static void rig_open(rig *r, const tcfg *tc, const tcfg *dc, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    mdl_open(&r->t, tc, seed);
    mdl_open(&r->d, dc, dc->noise > 0 ? seed : seed + 7919);
    REQ(ctx_create(1, COCHLEA_PRECISION_F32, &r->ctx) == 0);
    REQ(lm_work_create(&r->w) == 0);
    r->V = r->t.m->n_vocab;
}

static void rig_close(rig *r)
{
    lm_work_free(r->w);
    ctx_free(r->ctx);
    mdl_close(&r->d);
    mdl_close(&r->t);
}

static const tcfg TCFG[2] = {
    {40, 32, 2, 4, 2, 64, 96, 0, 3.0f, 0}, /* separate output, grouped-query */
    {48, 32, 2, 4, 1, 48, 96, 1, 3.0f, 0}, /* tied output, multi-query */
};
static const tcfg DCFG[2] = {
    {40, 16, 1, 2, 1, 32, 96, 0, 3.0f, 0},
    {48, 16, 1, 2, 2, 24, 96, 0, 3.0f, 0},
};

/* ---- the reference: plain AR decoding, written independently of the decoders ---------------- */

/* Prefill the prompt, then one token per forward; stops after eos, at max_new and when the
 * sequence reaches the cache capacity. sp NULL: greedy argmax (first index of the maximum). */
static int64_t ref_ar(rig *r, lm_kv *kv, const lm_sampler_params *sp, const int32_t *prompt, int64_t n_prompt,
                      int64_t max_new, int32_t eos, int32_t *out)
{
    const int64_t V = r->V, C = kv->capacity;
    float *l = test_alloc((size_t)V);
    lm_sampler *s = NULL;
    if (sp) {
        REQ(lm_sampler_create(sp, V, &s) == 0);
        for (int64_t i = 0; i < n_prompt; i++)
            REQ(lm_sampler_accept(s, prompt[i]) == 0);
    }
    lm_kv_clear(kv);
    int32_t last = (int32_t)(n_prompt - 1);
    lm_batch b = {n_prompt, prompt, NULL, &last, 1};
    REQ(lm_model_forward(r->ctx, r->t.m, kv, r->w, &b, l) == 0);
    int64_t gen = 0, L = n_prompt;
    while (gen < max_new && L < C) {
        int32_t y;
        if (s)
            REQ(lm_sampler_sample(s, l, NULL, &y) == 0);
        else {
            y = 0;
            for (int64_t t = 1; t < V; t++)
                if (l[t] > l[y])
                    y = (int32_t)t;
        }
        out[gen++] = y;
        L++;
        if (y == eos || gen == max_new || L == C)
            break;
        lm_batch bb = {1, &y, NULL, NULL, 0};
        REQ(lm_model_forward(r->ctx, r->t.m, kv, r->w, &bb, l) == 0);
    }
    lm_sampler_free(s);
    free(l);
    return gen;
}

/* The next-position logits of model m from a cache holding seq[0 .. kv->n) after feeding the
 * rest of seq[0 .. n_seq), against a fresh prefill of the whole sequence (§9.4). */
static void check_kv(rig *r, const lm_model *m, lm_kv *kv, const int32_t *seq, int64_t n_seq)
{
    const int64_t V = r->V;
    ck_assert(kv->n < n_seq && n_seq <= kv->capacity);
    float *l1 = test_alloc((size_t)V), *l2 = test_alloc((size_t)V);
    int32_t last = (int32_t)(n_seq - kv->n - 1);
    lm_batch b = {n_seq - kv->n, seq + kv->n, NULL, &last, 1};
    REQ(lm_model_forward(r->ctx, m, kv, r->w, &b, l1) == 0);
    lm_kv *big;
    REQ(lm_blocks_kv_create(m->blocks, n_seq, &big) == 0);
    int32_t lastf = (int32_t)(n_seq - 1);
    lm_batch bf = {n_seq, seq, NULL, &lastf, 1};
    REQ(lm_model_forward(r->ctx, m, big, r->w, &bf, l2) == 0);
    test_assert_close(l1, l2, (size_t)V, 1e-4, 1e-4);
    lm_kv_free(big);
    free(l1), free(l2);
}

/* ---- greedy identity ---------------------------------------------------------------------- */

static int64_t n_runs, n_cases, n_eos_in_span, agg_steps[3], agg_emit[3];

static void random_shape(test_rng *g, lm_spec_draft_mode mode, lm_spec_draft_params *p)
{
    *p = lm_spec_draft_default_params(mode);
    p->depth = test_rng_int(g, 1, 6);
    if (mode != LM_SPEC_DRAFT_CHAIN) {
        p->width = test_rng_int(g, 1, 4);
        p->wide = test_rng_int(g, 0, p->depth < 3 ? p->depth : 3);
    }
    p->max_nodes = test_rng_int(g, 1, 3) == 1 ? test_rng_int(g, 1, 8) : 64;
}

/* One (prompt, max_new, eos, capacities) case: every mode with the other draft and with the
 * target as its own draft gives AR's tokens; both caches equal fresh prefills. sp: NULL or a
 * sampler with temperature <= 0 (point masses; the RNG must advance once per token like AR). */
static void run_case(rig *r, test_rng *g, const lm_sampler_params *sp, const int32_t *prompt, int64_t n_prompt,
                     int64_t max_new, int32_t eos, int64_t tcap, int64_t dcap)
{
    const int64_t V = r->V, C = tcap < dcap ? tcap : dcap;
    lm_kv *ref_kv, *tkv, *dkv, *dkv_self;
    REQ(lm_blocks_kv_create(r->t.m->blocks, C, &ref_kv) == 0);
    REQ(lm_blocks_kv_create(r->t.m->blocks, tcap, &tkv) == 0);
    REQ(lm_blocks_kv_create(r->d.m->blocks, dcap, &dkv) == 0);
    REQ(lm_blocks_kv_create(r->t.m->blocks, dcap, &dkv_self) == 0);
    int32_t ref[64], got[64], seq[128];
    ck_assert(max_new <= 64 && n_prompt + max_new <= 128);
    const int64_t n_ref = ref_ar(r, ref_kv, sp, prompt, n_prompt, max_new, eos, ref);
    for (int mode = 0; mode < 3; mode++)
        for (int self = 0; self < 2; self++) {
            lm_spec_draft_params p;
            random_shape(g, (lm_spec_draft_mode)mode, &p);
            p.max_new = max_new, p.eos = eos;
            const lm_model *dm = self ? r->t.m : r->d.m;
            lm_kv *dk = self ? dkv_self : dkv;
            lm_sampler *s = NULL;
            if (sp) {
                REQ(lm_sampler_create(sp, V, &s) == 0);
                for (int64_t i = 0; i < n_prompt; i++)
                    REQ(lm_sampler_accept(s, prompt[i]) == 0);
            }
            lm_spec_stats st;
            int64_t n_got = -1;
            int rc = lm_spec_draft_generate(r->ctx, r->t.m, tkv, dm, dk, r->w, s, &p, prompt, n_prompt, got, &n_got,
                                            &st);
            ck_assert_msg(rc == 0, "mode %d: %s", mode, cochlea_last_error());
            ck_assert_msg(n_got == n_ref, "mode %d self %d: %lld tokens, AR %lld (prompt %lld, max_new %lld, eos %d, "
                          "caps %lld/%lld)", mode, self, (long long)n_got, (long long)n_ref, (long long)n_prompt,
                          (long long)max_new, eos, (long long)tcap, (long long)dcap);
            for (int64_t i = 0; i < n_ref; i++)
                if (got[i] != ref[i])
                    ck_abort_msg("mode %d self %d: token %lld is %d, AR %d", mode, self, (long long)i, got[i], ref[i]);
            ck_assert_int_eq(st.emitted, n_ref);
            ck_assert(st.accepted <= st.drafted && st.emitted <= st.accepted + st.steps && st.emitted >= st.steps);
            /* a step cut without its bonus, not by max_new or the context: eos was an accepted draft */
            if (eos >= 0 && n_got > 0 && got[n_got - 1] == eos && n_got < max_new && n_prompt + n_got < C &&
                st.emitted < st.accepted + st.steps)
                n_eos_in_span++;
            agg_steps[mode] += st.steps, agg_emit[mode] += st.emitted;
            if (s) { /* point masses: one draw per emitted token, as AR */
                lm_sampler *s2;
                REQ(lm_sampler_create(sp, V, &s2) == 0);
                for (int64_t i = 0; i < n_ref; i++)
                    (void)lm_sampler_draw(s2);
                ck_assert(lm_sampler_draw(s) == lm_sampler_draw(s2));
                lm_sampler_free(s2);
                lm_sampler_free(s);
            }
            const int64_t n_seq = n_prompt + n_got;
            ck_assert_int_eq(tkv->n, n_seq - 1);
            /* the draft cache keeps the accepted rows: it lags by at most an accepted leaf */
            ck_assert(dk->n <= n_seq - 1 && (st.steps == 0 || dk->n >= n_seq - 2));
            memcpy(seq, prompt, (size_t)n_prompt * sizeof *seq);
            memcpy(seq + n_prompt, got, (size_t)n_got * sizeof *seq);
            if (n_seq < C && (mode + self + n_runs) % 3 == 0) {
                check_kv(r, r->t.m, tkv, seq, n_seq);
                check_kv(r, dm, dk, seq, n_seq);
            }
            n_runs++;
        }
    n_cases++;
    lm_kv_free(ref_kv), lm_kv_free(tkv), lm_kv_free(dkv), lm_kv_free(dkv_self);
}

static int64_t make_prompt(test_rng *g, int64_t V, int32_t *p)
{
    int64_t n = test_rng_int(g, 1, 14);
    int per = test_rng_int(g, 0, 2) == 0 ? 0 : test_rng_int(g, 1, 4);
    for (int64_t i = 0; i < n; i++)
        p[i] = per && i >= per ? p[i - per] : (int32_t)test_rng_int(g, 0, (int)V - 1);
    return n;
}

/* §9.1: greedy output equals plain greedy over 200+ (prompt, length) cases for chain, tree and
 * RSD shapes, with eos inside the output, max_new cuts and context limits of either cache. */
START_TEST(t_greedy_identity)
{
    test_rng g = {2024};
    lm_sampler_params sp0 = lm_sampler_default_params();
    sp0.temperature = 0.0f, sp0.repeat_penalty = 1.3f, sp0.repeat_last_n = 8, sp0.seed = 3;
    int64_t n_ctx = 0, n_eos = 0;
    for (int model = 0; model < 2; model++) {
        rig r;
        rig_open(&r, &TCFG[model], &DCFG[model], 500 + (uint64_t)model);
        for (int c = 0; c < 104; c++) {
            int32_t prompt[16], tmp[64];
            const int64_t np = make_prompt(&g, r.V, prompt);
            const int64_t max_new = test_rng_int(&g, 1, 24);
            int32_t eos = -1;
            int64_t tcap = 96, dcap = 96;
            const int kind = c % 4;
            if (kind == 1) { /* eos = a token AR emits in the second half of its output */
                lm_kv *kv;
                REQ(lm_blocks_kv_create(r.t.m->blocks, 0, &kv) == 0);
                const int64_t n = ref_ar(&r, kv, NULL, prompt, np, max_new, -1, tmp);
                eos = tmp[test_rng_int(&g, (int)(n / 2), (int)n - 1)];
                lm_kv_free(kv);
                n_eos++;
            } else if (kind == 2) { /* the context limit (of one cache) cuts the output */
                const int64_t cap = np + test_rng_int(&g, 0, (int)max_new - 1 > 0 ? (int)max_new - 1 : 0);
                if (c % 8 == 2)
                    tcap = cap;
                else
                    dcap = cap;
                n_ctx++;
            }
            run_case(&r, &g, c % 13 == 5 ? &sp0 : NULL, prompt, np, max_new, eos, tcap, dcap);
        }
        rig_close(&r);
    }
    fprintf(stderr, "greedy identity: %lld cases, %lld runs, %lld eos cases (%lld runs ended on eos after an "
            "accepted draft), %lld context-limit cases\n", (long long)n_cases, (long long)n_runs, (long long)n_eos,
            (long long)n_eos_in_span, (long long)n_ctx);
    static const char *MN[3] = {"chain", "tree", "rsd"};
    for (int m = 0; m < 3; m++)
        fprintf(stderr, "  %-5s MAT %.2f\n", MN[m], (double)agg_emit[m] / (double)agg_steps[m]);
    ck_assert_int_ge(n_cases, 200);
    ck_assert_int_gt(n_eos_in_span, 0);
}
END_TEST

/* EOS inside an accepted span, max_new cut inside a span, and 100 % acceptance with the target
 * as its own draft (greedy and sampling): MAT = depth + 1. */
START_TEST(t_self_draft)
{
    rig r;
    rig_open(&r, &TCFG[0], &DCFG[0], 77);
    lm_kv *tkv, *dkv, *kv;
    REQ(lm_blocks_kv_create(r.t.m->blocks, 0, &tkv) == 0);
    REQ(lm_blocks_kv_create(r.t.m->blocks, 0, &dkv) == 0);
    REQ(lm_blocks_kv_create(r.t.m->blocks, 0, &kv) == 0);
    const int32_t prompt[4] = {3, 17, 5, 29};
    int32_t ref[32], got[32];
    const int64_t n_ref = ref_ar(&r, kv, NULL, prompt, 4, 20, -1, ref);
    ck_assert_int_eq(n_ref, 20);
    lm_sampler_params sp = lm_sampler_default_params();
    sp.temperature = 1.0f, sp.top_k = 0, sp.top_p = 1.0f, sp.min_p = 0.0f;
    for (int mode = 0; mode < 3; mode++)
        for (int samp = 0; samp < 2; samp++) {
            lm_spec_draft_params p = lm_spec_draft_default_params((lm_spec_draft_mode)mode);
            p.depth = 4, p.max_new = 20;
            lm_sampler *s = NULL;
            if (samp) {
                sp.seed = 40 + (uint64_t)mode;
                REQ(lm_sampler_create(&sp, r.V, &s) == 0);
            }
            lm_spec_stats st;
            int64_t n;
            REQ(lm_spec_draft_generate(r.ctx, r.t.m, tkv, r.t.m, dkv, r.w, s, &p, prompt, 4, got, &n, &st) == 0);
            ck_assert_int_eq(n, 20);
            if (!samp)
                ck_assert_mem_eq(got, ref, 20 * sizeof *got);
            /* every step accepts a full path of 4 and a bonus: 4 steps of 5 tokens */
            ck_assert_int_eq(st.steps, 4);
            ck_assert_int_eq(st.accepted, 16);
            ck_assert(st.mat == 5.0);
            lm_sampler_free(s);
        }
    /* greedy, eos = ref[6]: the first step accepts ref[0..3] + bonus ref[4]; the second step
     * emits up to the first occurrence of ref[6] at index >= 5 inside its accepted span */
    lm_spec_draft_params p = lm_spec_draft_default_params(LM_SPEC_DRAFT_CHAIN);
    p.depth = 4, p.max_new = 20, p.eos = ref[6];
    int64_t j = 0;
    while (ref[j] != ref[6])
        j++;
    lm_spec_stats st;
    int64_t n;
    REQ(lm_spec_draft_generate(r.ctx, r.t.m, tkv, r.t.m, dkv, r.w, NULL, &p, prompt, 4, got, &n, &st) == 0);
    ck_assert_int_eq(n, j + 1);
    ck_assert_mem_eq(got, ref, (size_t)n * sizeof *got);
    ck_assert_int_eq(st.steps, j < 5 ? 1 : 2);
    ck_assert_int_eq(st.accepted, j < 4 ? j + 1 : j < 5 ? 4 : j);
    /* max_new = 7 cuts the second step's span after 2 accepted tokens */
    p.eos = -1, p.max_new = 7;
    REQ(lm_spec_draft_generate(r.ctx, r.t.m, tkv, r.t.m, dkv, r.w, NULL, &p, prompt, 4, got, &n, &st) == 0);
    ck_assert_int_eq(n, 7);
    ck_assert_mem_eq(got, ref, 7 * sizeof *got);
    ck_assert_int_eq(st.steps, 2);
    ck_assert_int_eq(st.accepted, 6);
    ck_assert_int_eq(tkv->n, 4 + 7 - 1);
    lm_kv_free(tkv), lm_kv_free(dkv), lm_kv_free(kv);
    rig_close(&r);
}
END_TEST

/* ---- chi-square ---------------------------------------------------------------------------- */

/* Regularised upper incomplete gamma Q(a, x): series for x < a + 1, else Lentz's continued
 * fraction (Abramowitz & Stegun 6.5.29 / 6.5.31). */
static double gamma_q(double a, double x)
{
    if (x <= 0)
        return 1.0;
    const double lg = lgamma(a);
    if (x < a + 1) {
        double sum = 1.0 / a, term = sum;
        for (int n = 1; n < 1000; n++) {
            term *= x / (a + n);
            sum += term;
            if (fabs(term) < fabs(sum) * 1e-15)
                break;
        }
        return 1.0 - sum * exp(-x + a * log(x) - lg);
    }
    double b = x + 1 - a, c = 1e300, d = 1 / b, h = d;
    for (int i = 1; i < 1000; i++) {
        const double an = -i * (i - a);
        b += 2;
        d = an * d + b;
        if (fabs(d) < 1e-300)
            d = 1e-300;
        c = b + an / c;
        if (fabs(c) < 1e-300)
            c = 1e-300;
        d = 1 / d;
        const double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-15)
            break;
    }
    return exp(-x + a * log(x) - lg) * h;
}

/* Pearson chi-square p-value of counts [n] against probabilities [n] (cells with an expected
 * count below 5 pooled into one); a count in a cell of probability 0 gives p = 0. */
static double chi2_pvalue(const int64_t *count, const double *prob, int64_t n, int64_t total, double *stat_out)
{
    double stat = 0, pool_e = 0, pool_o = 0;
    int64_t cells = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = prob[i] * (double)total;
        if (prob[i] <= 0 && count[i] > 0)
            return 0.0;
        if (e < 5) {
            pool_e += e, pool_o += (double)count[i];
            continue;
        }
        stat += ((double)count[i] - e) * ((double)count[i] - e) / e;
        cells++;
    }
    if (pool_e > 0) {
        stat += (pool_o - pool_e) * (pool_o - pool_e) / (pool_e > 1e-9 ? pool_e : 1e-9);
        cells++;
    }
    if (stat_out)
        *stat_out = stat;
    return cells > 1 ? gamma_q((double)(cells - 1) / 2, stat / 2) : 1.0;
}

START_TEST(t_chi2_self)
{
    /* Q(a, x) against known values: chi-square df 1 at 3.841 -> 0.05, df 10 at 29.588 -> 0.001 */
    ck_assert(fabs(gamma_q(0.5, 3.841459 / 2) - 0.05) < 1e-5);
    ck_assert(fabs(gamma_q(5.0, 29.588298 / 2) - 0.001) < 1e-6);
    ck_assert(fabs(gamma_q(2.0, 1.0) - 2 * exp(-1.0)) < 1e-12);
}
END_TEST

/* ---- kernel-level distribution tests (§9.3 unit level) -------------------------------------- */

static void norm_f(float *x, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += x[i];
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(x[i] / s);
}

/* Emitted token of one stochastic node vs p, for K children drawn i.i.d. (without_repl 0) or by
 * Gumbel-top-k (1), over several (p, q) pairs incl. degenerate ones. */
START_TEST(t_kernel_distribution)
{
    enum { V = 10, NS = 40000 };
    float p[8][V], q[8][V];
    test_rng g = {99};
    for (int c = 0; c < 8; c++)
        for (int i = 0; i < V; i++) {
            p[c][i] = test_rng_uniform(&g, 0, 1);
            p[c][i] *= p[c][i];
            q[c][i] = test_rng_uniform(&g, 0, 1);
        }
    memcpy(q[1], p[1], sizeof q[1]);                 /* p = q */
    for (int i = 0; i < V; i++)                      /* disjoint supports */
        (i < 4 ? q[2] : p[2])[i] = 0;
    for (int i = 0; i < 6; i++)                      /* q zero where p > 0 */
        q[3][i] = 0;
    for (int i = 0; i < V; i++)                      /* one-hot p */
        p[4][i] = i == 6 ? 1.0f : 0.0f;
    for (int i = 0; i < V; i++)                      /* one-hot q */
        q[5][i] = i == 2 ? 1.0f : 0.0f;
    for (int c = 0; c < 8; c++)
        norm_f(p[c], V), norm_f(q[c], V);
    lm_sampler_params sp = lm_sampler_default_params();
    float pw[V], scratch[V];
    double prob[V];
    int64_t count[V];
    for (int c = 0; c < 8; c++)
        for (int kind = 0; kind < 3; kind++) { /* K = 1; K = 3 i.i.d.; K = 3 without replacement */
            sp.seed = (uint64_t)(c * 3 + kind + 1);
            lm_sampler *s;
            REQ(lm_sampler_create(&sp, V, &s) == 0);
            memset(count, 0, sizeof count);
            int64_t acc = 0;
            for (int n = 0; n < NS; n++) {
                int32_t child[3];
                int64_t K = kind == 0 ? 1 : 3;
                if (kind == 2)
                    K = lm_spec_gumbel_topk(s, q[c], V, 3, child);
                else
                    for (int64_t k = 0; k < K; k++)
                        child[k] = lm_sample_from_probs(q[c], V, lm_sampler_draw(s));
                memcpy(pw, p[c], sizeof pw);
                int32_t y;
                int64_t ka;
                REQ(lm_spec_draft_verify_node(s, pw, q[c], V, child, K, kind == 2, scratch, &y, &ka) == 0);
                REQ(y >= 0 && y < V);
                if (ka >= 0) {
                    REQ(y == child[ka]);
                    acc++;
                }
                count[y]++;
            }
            for (int i = 0; i < V; i++)
                prob[i] = p[c][i];
            double stat;
            const double pv = chi2_pvalue(count, prob, V, NS, &stat);
            ck_assert_msg(pv > 1e-3, "pair %d kind %d: chi2 %.2f, p-value %.2g", c, kind, stat, pv);
            if (c == 1 && kind == 0)
                ck_assert_int_eq(acc, NS); /* p = q: always accepted */
            if (c == 2)
                ck_assert_int_eq(acc, 0); /* disjoint: never accepted */
            lm_sampler_free(s);
        }
}
END_TEST

/* Gumbel-top-k: ordered pairs (x1, x2) have P = q1 q2 / (1 - q1) (sequential draws without
 * replacement); the support caps the count. */
START_TEST(t_gumbel_topk)
{
    enum { V = 6, NS = 60000 };
    float q[V] = {0.3f, 0.05f, 0.25f, 0.0f, 0.15f, 0.25f};
    lm_sampler_params sp = lm_sampler_default_params();
    sp.seed = 123;
    lm_sampler *s;
    REQ(lm_sampler_create(&sp, V, &s) == 0);
    int64_t count[V * V] = {0};
    double prob[V * V];
    for (int n = 0; n < NS; n++) {
        int32_t o[3];
        REQ(lm_spec_gumbel_topk(s, q, V, 2, o) == 2);
        REQ(o[0] != o[1] && q[o[0]] > 0 && q[o[1]] > 0);
        count[o[0] * V + o[1]]++;
    }
    for (int a = 0; a < V; a++)
        for (int b = 0; b < V; b++)
            prob[a * V + b] = a == b ? 0 : (double)q[a] * q[b] / (1 - q[a]);
    double stat;
    const double pv = chi2_pvalue(count, prob, V * V, NS, &stat);
    ck_assert_msg(pv > 1e-3, "chi2 %.2f p %.2g", stat, pv);
    /* negative control: with replacement (i.i.d. pairs) the same test rejects */
    int64_t iid[V * V] = {0};
    for (int n = 0; n < NS; n++) {
        int32_t a = lm_sample_from_probs(q, V, lm_sampler_draw(s)), b = lm_sample_from_probs(q, V, lm_sampler_draw(s));
        iid[a * V + b]++;
    }
    ck_assert(chi2_pvalue(iid, prob, V * V, NS, NULL) < 1e-3);
    int32_t o[8];
    ck_assert_int_eq(lm_spec_gumbel_topk(s, q, V, 8, o), 5);
    lm_sampler_free(s);
}
END_TEST

/* ---- end-to-end distribution tests on tiny models (§9.3) -------------------------------------- */

#ifndef OUT_SCALE
#define OUT_SCALE 3.0f
#endif
#ifndef NOISE
#define NOISE 0.5f
#endif
/* V = 12; the draft is the target with noise on every weight (acceptance about one half) */
static const tcfg TSMALL = {12, 16, 1, 2, 1, 32, 32, 0, OUT_SCALE, 0};
static const tcfg DSMALL = {12, 16, 1, 2, 1, 32, 32, 0, OUT_SCALE, NOISE};

/* Exact joint distribution of the first two tokens after `prompt` under the target and sp. */
static void exact_joint(rig *r, const lm_model *m, const lm_sampler_params *sp, const int32_t *prompt, int64_t np,
                        double *joint, double *first)
{
    const int64_t V = r->V;
    lm_kv *kv;
    REQ(lm_blocks_kv_create(m->blocks, 0, &kv) == 0);
    lm_sampler *s;
    REQ(lm_sampler_create(sp, V, &s) == 0);
    for (int64_t i = 0; i < np; i++)
        REQ(lm_sampler_accept(s, prompt[i]) == 0);
    float *l = test_alloc((size_t)V), *p1 = test_alloc((size_t)V), *p2 = test_alloc((size_t)V);
    int32_t seq[16];
    memcpy(seq, prompt, (size_t)np * sizeof *seq);
    int32_t last = (int32_t)(np - 1);
    lm_batch b = {np, seq, NULL, &last, 1};
    REQ(lm_model_forward(r->ctx, m, kv, r->w, &b, l) == 0);
    REQ(lm_sampler_probs(s, l, NULL, 0, p1) == 0);
    for (int64_t a = 0; a < V; a++) {
        first[a] = p1[a];
        seq[np] = (int32_t)a;
        lm_kv_clear(kv);
        lm_batch b2 = {np + 1, seq, NULL, NULL, 0};
        float *all = test_alloc((size_t)((np + 1) * V));
        REQ(lm_model_forward(r->ctx, m, kv, r->w, &b2, all) == 0);
        REQ(lm_sampler_probs(s, all + np * V, &seq[np], 1, p2) == 0);
        for (int64_t c = 0; c < V; c++)
            joint[a * V + c] = (double)p1[a] * p2[c];
        free(all);
    }
    free(l), free(p1), free(p2);
    lm_sampler_free(s);
    lm_kv_free(kv);
}

/* The first two generated tokens under chain, tree (MSS) and RSD sampling follow the target's
 * exact joint distribution; the draft's own distribution and a kernel without the residual
 * rule are rejected by the same test. */
START_TEST(t_distribution_e2e)
{
    rig r;
    rig_open(&r, &TSMALL, &DSMALL, 4321);
    const int64_t V = r.V;
    ck_assert_int_eq(V, 12);
#ifndef NS_E2E
#define NS_E2E 20000
#endif
    enum { NS = NS_E2E };
    lm_sampler_params sps[2];
    sps[0] = lm_sampler_default_params();
    sps[0].temperature = 1.0f, sps[0].top_k = 0, sps[0].top_p = 1.0f, sps[0].min_p = 0.0f;
    sps[1] = lm_sampler_default_params();
    sps[1].temperature = 0.8f, sps[1].top_k = 7, sps[1].top_p = 0.95f, sps[1].min_p = 0.02f,
    sps[1].repeat_penalty = 1.5f, sps[1].repeat_last_n = 4;
    const int32_t prompt[1] = {4}; /* one token: no target prefill, fewer forwards per sample */
    double joint[144], first[12], qfirst[12], qjoint[144];
    lm_kv *tkv, *dkv;
    REQ(lm_blocks_kv_create(r.t.m->blocks, 0, &tkv) == 0);
    REQ(lm_blocks_kv_create(r.d.m->blocks, 0, &dkv) == 0);
    int64_t *cnt = calloc(144, sizeof *cnt), *cnt1 = calloc(12, sizeof *cnt1);
    ck_assert(cnt && cnt1);
    for (int cfg = 0; cfg < 2; cfg++) {
        exact_joint(&r, r.t.m, &sps[cfg], prompt, 1, joint, first);
        exact_joint(&r, r.d.m, &sps[cfg], prompt, 1, qjoint, qfirst);
        double tv = 0;
        for (int i = 0; i < 12; i++)
            tv += 0.5 * fabs(first[i] - qfirst[i]);
        fprintf(stderr, "cfg %d: TV(first-token p, q) %.3f; p =", cfg, tv);
        for (int i = 0; i < 12; i++)
            fprintf(stderr, " %.3f", first[i]);
        fprintf(stderr, "\n");
        ck_assert_msg(tv > 0.15, "target and draft too similar (TV %.3f)", tv);
        for (int mode = 0; mode < 3; mode++) {
            lm_spec_draft_params p = lm_spec_draft_default_params((lm_spec_draft_mode)mode);
            p.max_new = 2, p.depth = mode == 0 ? 2 : 1 + (cfg == 0);
            p.width = 3, p.wide = p.depth;
            memset(cnt, 0, 144 * sizeof *cnt);
            memset(cnt1, 0, 12 * sizeof *cnt1);
            int64_t acc = 0, drafted = 0;
            lm_sampler_params sp = sps[cfg];
            for (int n = 0; n < NS; n++) {
                sp.seed = 1000003ull * (uint64_t)(cfg * 3 + mode) + (uint64_t)n;
                lm_sampler *s;
                REQ(lm_sampler_create(&sp, V, &s) == 0);
                REQ(lm_sampler_accept(s, prompt[0]) == 0);
                int32_t out[2];
                int64_t no;
                lm_spec_stats st;
                REQ(lm_spec_draft_generate(r.ctx, r.t.m, tkv, r.d.m, dkv, r.w, s, &p, prompt, 1, out, &no, &st) == 0);
                REQ(no == 2);
                cnt[out[0] * V + out[1]]++;
                cnt1[out[0]]++;
                acc += st.accepted, drafted += st.drafted;
                lm_sampler_free(s);
            }
            double stat, stat1;
            const double pv = chi2_pvalue(cnt, joint, 144, NS, &stat);
            const double pv1 = chi2_pvalue(cnt1, first, 12, NS, &stat1);
            fprintf(stderr, "distribution cfg %d mode %d: first token chi2 %.1f (p %.3f), joint chi2 %.1f (p %.3f), "
                    "acceptance %.2f\n", cfg, mode, stat1, pv1, stat, pv, (double)acc / (double)drafted);
            ck_assert_msg(pv1 > 1e-3 && pv > 1e-3, "cfg %d mode %d: p-values %.2g / %.2g", cfg, mode, pv1, pv);
            ck_assert(acc > 0 && acc < drafted); /* both acceptance and rejection were exercised */
        }
        /* negative controls with as many samples: the draft's own tokens (no verification), and
         * speculative sampling whose rejection falls back to p instead of the residual */
        lm_sampler *s;
        lm_sampler_params sp = sps[cfg];
        sp.seed = 77;
        REQ(lm_sampler_create(&sp, V, &s) == 0);
        float pf[12], qf[12];
        for (int i = 0; i < 12; i++)
            pf[i] = (float)first[i], qf[i] = (float)qfirst[i];
        memset(cnt1, 0, 12 * sizeof *cnt1);
        for (int n = 0; n < NS; n++)
            cnt1[lm_sample_from_probs(qf, V, lm_sampler_draw(s))]++;
        ck_assert(chi2_pvalue(cnt1, first, 12, NS, NULL) < 1e-3);
        memset(cnt1, 0, 12 * sizeof *cnt1);
        for (int n = 0; n < NS; n++) {
            const int32_t x = lm_sample_from_probs(qf, V, lm_sampler_draw(s));
            const int accept = lm_sampler_draw(s) * qf[x] < pf[x];
            cnt1[accept ? x : lm_sample_from_probs(pf, V, lm_sampler_draw(s))]++;
        }
        ck_assert(chi2_pvalue(cnt1, first, 12, NS, NULL) < 1e-3);
        lm_sampler_free(s);
    }
    free(cnt), free(cnt1);
    lm_kv_free(tkv), lm_kv_free(dkv);
    rig_close(&r);
}
END_TEST

/* Sampling: same seed -> same tokens; KV caches equal fresh prefills after stochastic steps. */
START_TEST(t_seeded_kv)
{
    rig r;
    rig_open(&r, &TCFG[1], &DCFG[1], 31);
    lm_kv *tkv, *dkv;
    REQ(lm_blocks_kv_create(r.t.m->blocks, 80, &tkv) == 0);
    REQ(lm_blocks_kv_create(r.d.m->blocks, 0, &dkv) == 0);
    lm_sampler_params sp = lm_sampler_default_params();
    sp.temperature = 1.2f, sp.top_k = 20, sp.min_p = 0.0f, sp.seed = 17;
    const int32_t prompt[6] = {1, 2, 3, 1, 2, 3};
    int32_t a[40], b[40], seq[64];
    for (int mode = 0; mode < 3; mode++) {
        lm_spec_draft_params p = lm_spec_draft_default_params((lm_spec_draft_mode)mode);
        p.max_new = 40, p.depth = 5, p.width = 3, p.wide = mode == 0 ? 0 : 2;
        int64_t na, nb;
        lm_spec_stats sa, sb;
        for (int rep = 0; rep < 2; rep++) {
            lm_sampler *s;
            REQ(lm_sampler_create(&sp, r.V, &s) == 0);
            REQ(lm_spec_draft_generate(r.ctx, r.t.m, tkv, r.d.m, dkv, r.w, s, &p, prompt, 6, rep ? b : a,
                                       rep ? &nb : &na, rep ? &sb : &sa) == 0);
            lm_sampler_free(s);
        }
        ck_assert_int_eq(na, 40);
        ck_assert_int_eq(nb, 40);
        ck_assert_mem_eq(a, b, sizeof a);
        ck_assert(sa.steps == sb.steps && sa.accepted == sb.accepted && sa.drafted == sb.drafted);
        ck_assert(sa.steps < 40 && sa.accepted > 0 && sa.accepted < sa.drafted);
        memcpy(seq, prompt, sizeof prompt);
        memcpy(seq + 6, a, sizeof a);
        ck_assert_int_eq(tkv->n, 45);
        ck_assert(dkv->n >= 44);
        check_kv(&r, r.t.m, tkv, seq, 46);
        check_kv(&r, r.d.m, dkv, seq, 46);
    }
    lm_kv_free(tkv), lm_kv_free(dkv);
    rig_close(&r);
}
END_TEST

START_TEST(t_errors)
{
    rig r, r2;
    rig_open(&r, &TCFG[0], &DCFG[0], 5);
    rig_open(&r2, &TCFG[1], &DCFG[1], 6);
    lm_kv *tkv, *dkv, *dkv2, *small;
    REQ(lm_blocks_kv_create(r.t.m->blocks, 0, &tkv) == 0);
    REQ(lm_blocks_kv_create(r.d.m->blocks, 0, &dkv) == 0);
    REQ(lm_blocks_kv_create(r2.d.m->blocks, 0, &dkv2) == 0);
    REQ(lm_blocks_kv_create(r.d.m->blocks, 4, &small) == 0);
    const int32_t prompt[6] = {1, 2, 3, 4, 5, 6};
    int32_t out[8];
    int64_t n = 99;
    lm_spec_draft_params p = lm_spec_draft_default_params(LM_SPEC_DRAFT_TREE);
    p.max_new = 8;
    /* vocabularies differ (40 vs 48) */
    ck_assert_int_eq(lm_spec_draft_generate(r.ctx, r.t.m, tkv, r2.d.m, dkv2, r.w, NULL, &p, prompt, 3, out, &n, NULL),
                     COCHLEA_EINVAL);
    ck_assert_int_eq(n, 0);
    ck_assert_ptr_nonnull(strstr(cochlea_last_error(), "48 tokens but the target has 40"));
    ck_assert_int_eq(lm_spec_draft_generate(r.ctx, r.t.m, tkv, r.t.m, tkv, r.w, NULL, &p, prompt, 3, out, &n, NULL),
                     COCHLEA_EINVAL);
    ck_assert_int_eq(lm_spec_draft_generate(r.ctx, NULL, tkv, r.d.m, dkv, r.w, NULL, &p, prompt, 3, out, &n, NULL),
                     COCHLEA_EINVAL);
    ck_assert_int_eq(lm_spec_draft_generate(r.ctx, r.t.m, tkv, r.d.m, dkv, r.w, NULL, &p, prompt, 0, out, &n, NULL),
                     COCHLEA_EINVAL);
    ck_assert_int_eq(lm_spec_draft_generate(r.ctx, r.t.m, tkv, r.d.m, dkv, r.w, NULL, &p, prompt, 3, NULL, &n, NULL),
                     COCHLEA_EINVAL);
    lm_spec_draft_params bad[8];
    for (int i = 0; i < 8; i++)
        bad[i] = p;
    bad[0].depth = 0, bad[1].depth = LM_SPEC_DRAFT_MAX_DEPTH + 1, bad[2].width = 0, bad[3].wide = 5,
    bad[4].max_nodes = 0, bad[5].mode = (lm_spec_draft_mode)7, bad[6].eos = 40, bad[7].max_new = -1;
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(lm_spec_draft_generate(r.ctx, r.t.m, tkv, r.d.m, dkv, r.w, NULL, &bad[i], prompt, 3, out, &n,
                                                NULL),
                         COCHLEA_EINVAL);
        ck_assert_int_eq(lm_spec_draft_tree_size(&bad[i]), i == 6 ? 14 : -1); /* eos is not a shape */
    }
    const int32_t badp[2] = {1, 40};
    ck_assert_int_eq(lm_spec_draft_generate(r.ctx, r.t.m, tkv, r.d.m, dkv, r.w, NULL, &p, badp, 2, out, &n, NULL),
                     COCHLEA_ERANGE);
    /* the draft cache (4) is the limit: a 6-token prompt does not fit, a 4-token one generates nothing */
    ck_assert_int_eq(lm_spec_draft_generate(r.ctx, r.t.m, tkv, r.d.m, small, r.w, NULL, &p, prompt, 6, out, &n, NULL),
                     COCHLEA_ERANGE);
    lm_spec_stats st;
    REQ(lm_spec_draft_generate(r.ctx, r.t.m, tkv, r.d.m, small, r.w, NULL, &p, prompt, 4, out, &n, &st) == 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(st.steps, 0);
    /* tree sizes */
    lm_spec_draft_params t = lm_spec_draft_default_params(LM_SPEC_DRAFT_RSD);
    ck_assert_int_eq(lm_spec_draft_tree_size(&t), 14);
    t.depth = 3, t.width = 3, t.wide = 3;
    ck_assert_int_eq(lm_spec_draft_tree_size(&t), 3 + 9 + 27);
    t.mode = LM_SPEC_DRAFT_CHAIN;
    ck_assert_int_eq(lm_spec_draft_tree_size(&t), 3);
    /* kernel arguments */
    lm_sampler_params sp = lm_sampler_default_params();
    lm_sampler *s;
    REQ(lm_sampler_create(&sp, 4, &s) == 0);
    float pp[4] = {0.25f, 0.25f, 0.25f, 0.25f}, qq[4] = {0.5f, 0.5f, 0, 0}, sc[4];
    const int32_t dup[2] = {1, 1}, zero[1] = {2};
    int32_t y;
    int64_t k;
    ck_assert_int_eq(lm_spec_draft_verify_node(s, pp, qq, 4, dup, 2, 1, sc, &y, &k), COCHLEA_EINVAL);
    ck_assert_int_eq(lm_spec_draft_verify_node(s, pp, qq, 4, zero, 1, 0, sc, &y, &k), COCHLEA_EINVAL);
    REQ(lm_spec_draft_verify_node(s, pp, qq, 4, dup, 2, 0, sc, &y, &k) == 0); /* i.i.d. duplicates are fine */
    ck_assert_int_lt(lm_spec_gumbel_topk(s, qq, 4, 65, out), 0);
    lm_sampler_free(s);
    lm_kv_free(tkv), lm_kv_free(dkv), lm_kv_free(dkv2), lm_kv_free(small);
    rig_close(&r2);
    rig_close(&r);
}
END_TEST

static Suite *draft_suite(void)
{
    Suite *s = suite_create("lm_draft");
    TCase *tc = tcase_create("unit");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, t_chi2_self);
    tcase_add_test(tc, t_errors);
    tcase_add_test(tc, t_gumbel_topk);
    tcase_add_test(tc, t_kernel_distribution);
    suite_add_tcase(s, tc);
    tc = tcase_create("decode");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, t_self_draft);
    tcase_add_test(tc, t_seeded_kv);
    suite_add_tcase(s, tc);
    tc = tcase_create("greedy");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, t_greedy_identity);
    suite_add_tcase(s, tc);
    tc = tcase_create("distribution");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, t_distribution_e2e);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(draft_suite());
}
