/* test_lm_aded.c - ADED drafter and the lookup + Token Recycling hybrid (src/lm/spec/aded.*,
 * hybrid.*; issue 8, speculative-decoding.md §3, §6.5, §9.1, §9.2, §9.4) on small random llama
 * models built in memory (tests/lm_rig.h). The tri-gram matrix unit tests of the in-tree ADED are in test_lm_spec.c. */
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
#include "lm/spec/aded.h"
#include "lm/spec/engine.h"
#include "lm/spec/hybrid.h"
#include "lm/spec/lookup.h"
#include "lm/spec/recycling.h"
#include "tensor.h"
#include "testutil.h"

#define MAT_MIN 1.15 /* an empty or always-wrong draft gives exactly 1 */
#include "lm_rig.h"

/* ---- the drafters under test ---------------------------------------------------------------- */

enum { K_ADED, K_ADED_SMALL, K_HYB, K_HYB_PRIME, K_N };
static const char *KNAME[K_N] = {"aded", "aded(small, 16 rows)", "hybrid", "hybrid(prime, 1..2, short 2)"};

typedef struct runner {
    rig r;
    lm_spec_aded *aded, *aded_small;
    lm_spec_recycling *tr, *trp;
    lm_spec_hybrid hyb, hybp;
} runner;

static lm_spec_aded_params small_params(void)
{
    lm_spec_aded_params p = lm_spec_aded_default_params();
    p.max_rows = 16, p.row_cap = 3, p.window = 5, p.iterations = 20, p.depth = 2, p.paths = 4;
    return p;
}

static void runner_open(runner *u, int model)
{
    rig_open(&u->r, &CFG[model], 1000 + (uint64_t)model);
    REQ(lm_spec_aded_create(u->r.V, NULL, &u->aded) == 0);
    lm_spec_aded_params sp = small_params();
    REQ(lm_spec_aded_create(u->r.V, &sp, &u->aded_small) == 0);
    REQ(lm_spec_recycling_create(u->r.V, 8, 0, &u->tr) == 0);
    REQ(lm_spec_recycling_create(u->r.V, 4, 1, &u->trp) == 0);
    REQ(lm_spec_hybrid_init(&u->hyb, NULL, u->tr) == 0);
    lm_spec_hybrid_params hp = {{1, 2, 4}, 2, 2};
    REQ(lm_spec_hybrid_init(&u->hybp, &hp, u->trp) == 0);
}

static void runner_close(runner *u)
{
    lm_spec_aded_free(u->aded);
    lm_spec_aded_free(u->aded_small);
    lm_spec_recycling_free(u->tr);
    lm_spec_recycling_free(u->trp);
    rig_close(&u->r);
}

static void make_drafter(runner *u, int kind, lm_spec_drafter *d, int64_t *max_nodes)
{
    switch (kind) {
    case K_ADED:
        REQ(lm_spec_aded_drafter(u->aded, d) == 0);
        *max_nodes = 24;
        break;
    case K_ADED_SMALL:
        REQ(lm_spec_aded_drafter(u->aded_small, d) == 0);
        *max_nodes = 6;
        break;
    case K_HYB:
        REQ(lm_spec_hybrid_drafter(&u->hyb, d) == 0);
        *max_nodes = 16;
        break;
    default:
        REQ(lm_spec_hybrid_drafter(&u->hybp, d) == 0);
        *max_nodes = 8;
        break;
    }
}

/* on_emit: records whether the eos came out of a step that emitted several tokens (so it was
 * an accepted draft token or the bonus after accepted drafts). */
typedef struct emit_log {
    int32_t eos;
    int eos_in_span;
    int64_t n;
} emit_log;

static int on_emit(void *user, const int32_t *tok, int64_t n)
{
    emit_log *e = user;
    if (n >= 2 && tok[n - 1] == e->eos)
        e->eos_in_span = 1;
    e->n += n;
    return COCHLEA_OK;
}

typedef struct agg {
    int64_t runs, steps, emitted, drafted, accepted, eos_span, maxnew_cut, ctx_cut;
} agg;
static agg AGG[K_N];

/* One (prompt, length, eos, capacity) case for every drafter: output identical to the reference
 * AR run (drafter NULL would be the same engine: the reference is independent of it), the KV
 * cache equal to a fresh prefill (§9.4). sp NULL: greedy. */
static void run_case(runner *u, const lm_sampler_params *sp, const int32_t *prompt, int64_t n_prompt, int64_t max_new,
                     int32_t eos, int64_t cap)
{
    const int64_t V = u->r.V;
    lm_kv *kv, *big;
    REQ(lm_blocks_kv_create(u->r.m->blocks, cap, &kv) == 0);
    REQ(lm_blocks_kv_create(u->r.m->blocks, 0, &big) == 0);
    int32_t ref[128], got[128], seq[256];
    ck_assert(max_new <= 128 && n_prompt + max_new <= 256);
    const int64_t n_ref = ref_ar(&u->r, kv, sp, prompt, n_prompt, max_new, eos, ref);
    float *l1 = test_alloc((size_t)V), *l2 = test_alloc((size_t)(256 * V));
    for (int kind = 0; kind < K_N; kind++) {
        lm_spec_drafter d;
        int64_t mn;
        make_drafter(u, kind, &d, &mn);
        lm_sampler *s = NULL;
        if (sp) {
            REQ(lm_sampler_create(sp, V, &s) == 0);
            for (int64_t i = 0; i < n_prompt; i++)
                REQ(lm_sampler_accept(s, prompt[i]) == 0);
        }
        emit_log el = {eos, 0, 0};
        lm_spec_params p = {max_new, eos, mn, on_emit, &el};
        lm_spec_stats st;
        int64_t n_got = -1;
        int rc = lm_spec_generate(u->r.ctx, u->r.m, kv, u->r.w, s, &d, &p, prompt, n_prompt, got, &n_got, &st);
        ck_assert_msg(rc == 0, "%s: %s", KNAME[kind], cochlea_last_error());
        ck_assert_msg(n_got == n_ref, "%s: %lld tokens, AR %lld (prompt %lld, max_new %lld, eos %d, cap %lld)",
                      KNAME[kind], (long long)n_got, (long long)n_ref, (long long)n_prompt, (long long)max_new, eos,
                      (long long)cap);
        for (int64_t i = 0; i < n_ref; i++)
            ck_assert_msg(got[i] == ref[i], "%s: token %lld is %d, AR %d", KNAME[kind], (long long)i, got[i], ref[i]);
        ck_assert_int_eq(el.n, n_ref);
        ck_assert_int_eq(st.emitted, n_ref);
        ck_assert(st.accepted <= st.drafted && st.emitted <= st.accepted + st.steps && st.emitted >= st.steps);
        agg *g = &AGG[kind];
        g->runs++, g->steps += st.steps, g->emitted += st.emitted, g->drafted += st.drafted;
        g->accepted += st.accepted, g->eos_span += el.eos_in_span;
        g->maxnew_cut += n_got == max_new && (n_got == 0 || got[n_got - 1] != eos);
        g->ctx_cut += n_prompt + n_got == cap && n_got < max_new;
        if (s) { /* one draw per emitted token: the RNG state equals AR's */
            lm_sampler *s2;
            REQ(lm_sampler_create(sp, V, &s2) == 0);
            for (int64_t i = 0; i < n_ref; i++)
                (void)lm_sampler_draw(s2);
            ck_assert(lm_sampler_draw(s) == lm_sampler_draw(s2));
            lm_sampler_free(s2);
            lm_sampler_free(s);
        }
        /* KV compaction: the cache holds the sequence minus its last token and the next logits
         * equal a fresh prefill of the whole sequence */
        const int64_t n_seq = n_prompt + n_got;
        ck_assert_int_eq(kv->n, n_seq - 1);
        if (n_seq < cap) {
            memcpy(seq, prompt, (size_t)n_prompt * sizeof *seq);
            memcpy(seq + n_prompt, got, (size_t)n_got * sizeof *seq);
            lm_batch b = {1, seq + n_seq - 1, NULL, NULL, 0};
            REQ(lm_model_forward(u->r.ctx, u->r.m, kv, u->r.w, &b, l1) == 0);
            lm_kv_clear(big);
            lm_batch bf = {n_seq, seq, NULL, NULL, 0};
            REQ(lm_model_forward(u->r.ctx, u->r.m, big, u->r.w, &bf, l2) == 0);
            test_assert_close(l1, l2 + (size_t)(n_seq - 1) * (size_t)V, (size_t)V, 1e-4, 1e-4);
        }
    }
    free(l1), free(l2);
    lm_kv_free(big);
    lm_kv_free(kv);
}

/* A prompt: random, or a short random pattern repeated (so the drafters find matches). */
static int64_t make_prompt(test_rng *g, int64_t V, int32_t *p)
{
    int64_t n = test_rng_int(g, 1, 16);
    int per = test_rng_int(g, 0, 2) == 0 ? 0 : test_rng_int(g, 1, 4);
    for (int64_t i = 0; i < n; i++)
        p[i] = per && i >= per ? p[i - per] : (int32_t)test_rng_int(g, 0, (int)V - 1);
    return n;
}

static void print_agg(const char *what)
{
    for (int k = 0; k < K_N; k++)
        fprintf(stderr, "  %s %-30s %lld runs, MAT %.2f, drafted %lld, accepted %lld, eos-in-span %lld, max_new cuts "
                        "%lld, context cuts %lld\n",
                what, KNAME[k], (long long)AGG[k].runs,
                AGG[k].steps ? (double)AGG[k].emitted / (double)AGG[k].steps : 0.0, (long long)AGG[k].drafted,
                (long long)AGG[k].accepted, (long long)AGG[k].eos_span, (long long)AGG[k].maxnew_cut,
                (long long)AGG[k].ctx_cut);
}

/* Greedy: 2 models x 100 (prompt, length) cases per drafter, a quarter with an eos the AR
 * output contains, a quarter cut by the cache capacity (§9.1). */
START_TEST(t_greedy_identity)
{
    memset(AGG, 0, sizeof AGG);
    test_rng g = {2024};
    for (int model = 0; model < 2; model++) {
        runner u;
        runner_open(&u, model);
        for (int c = 0; c < 100; c++) {
            int32_t prompt[16], tmp[64];
            const int64_t np = make_prompt(&g, u.r.V, prompt);
            const int64_t max_new = test_rng_int(&g, 1, 40);
            int32_t eos = -1;
            int64_t cap = 128;
            const int mode = c % 4;
            if (mode == 1) { /* eos = a token AR emits somewhere after the first position */
                lm_kv *kv;
                REQ(lm_blocks_kv_create(u.r.m->blocks, 0, &kv) == 0);
                int64_t n = ref_ar(&u.r, kv, NULL, prompt, np, max_new, -1, tmp);
                eos = tmp[test_rng_int(&g, (int)(n / 2), (int)n - 1)];
                lm_kv_free(kv);
            } else if (mode == 2) { /* the context limit cuts the output */
                cap = np + test_rng_int(&g, 0, (int)max_new - 1 > 0 ? (int)max_new - 1 : 0);
            }
            run_case(&u, NULL, prompt, np, max_new, eos, cap);
        }
        runner_close(&u);
    }
    print_agg("greedy");
    for (int k = 0; k < K_N; k++) {
        ck_assert_int_ge(AGG[k].runs, 200);
        ck_assert_int_gt(AGG[k].eos_span, 0);
        ck_assert_int_gt(AGG[k].maxnew_cut, 0);
        ck_assert_int_gt(AGG[k].ctx_cut, 0);
        ck_assert_int_gt(AGG[k].accepted, 0);
    }
}
END_TEST

/* Seeded sampling: token-identical to seeded AR sampling (§9.2), 2 x 26 cases per drafter. */
START_TEST(t_seeded_identity)
{
    memset(AGG, 0, sizeof AGG);
    lm_sampler_params sp[3];
    for (int i = 0; i < 3; i++)
        sp[i] = lm_sampler_default_params();
    sp[0].temperature = 0.9f, sp[0].top_k = 10, sp[0].top_p = 0.9f, sp[0].min_p = 0.0f, sp[0].seed = 5;
    sp[1].temperature = 1.3f, sp[1].top_k = 0, sp[1].top_p = 1.0f, sp[1].min_p = 0.0f, sp[1].repeat_penalty = 1.4f,
    sp[1].repeat_last_n = 16, sp[1].seed = 11;
    sp[2].temperature = 0.5f, sp[2].min_p = 0.1f, sp[2].repeat_penalty = 1.2f, sp[2].repeat_last_n = -1,
    sp[2].seed = 99;
    test_rng g = {4242};
    for (int model = 0; model < 2; model++) {
        runner u;
        runner_open(&u, model);
        for (int c = 0; c < 26; c++) {
            int32_t prompt[16];
            const int64_t np = make_prompt(&g, u.r.V, prompt);
            const int64_t max_new = test_rng_int(&g, 4, 32);
            const int64_t cap = c % 5 == 4 ? np + max_new / 2 + 1 : 128;
            sp[c % 3].seed = (uint64_t)(c + 1000 * model);
            run_case(&u, &sp[c % 3], prompt, np, max_new, c % 7 == 3 ? 3 : -1, cap);
        }
        runner_close(&u);
    }
    print_agg("seeded");
    for (int k = 0; k < K_N; k++) {
        ck_assert_int_ge(AGG[k].runs, 50);
        ck_assert_int_gt(AGG[k].accepted, 0);
    }
}
END_TEST

/* The drafters really draft: on repetitive prompts (a pattern repeated), greedy, the mean
 * accepted tokens per step is well above 1 (an empty or always-wrong draft gives exactly 1). */
START_TEST(t_mat_repetitive)
{
    memset(AGG, 0, sizeof AGG);
    test_rng g = {99};
    for (int model = 0; model < 2; model++) {
        runner u;
        runner_open(&u, model);
        for (int c = 0; c < 8; c++) {
            int32_t prompt[24];
            const int per = test_rng_int(&g, 2, 5);
            for (int i = 0; i < 24; i++)
                prompt[i] = i >= per ? prompt[i - per] : (int32_t)test_rng_int(&g, 0, (int)u.r.V - 1);
            run_case(&u, NULL, prompt, 24, 64, -1, 128);
        }
        runner_close(&u);
    }
    print_agg("repetitive");
    for (int k = 0; k < K_N; k++) {
        const double mat = (double)AGG[k].emitted / (double)AGG[k].steps;
        ck_assert_msg(mat > MAT_MIN, "%s: MAT %.3f", KNAME[k], mat);
    }
}
END_TEST

/* ---- the hybrid ------------------------------------------------------------------------------ */

/* Node layout: a long match drafts its chain alone; a short match puts its (cut) chain first
 * and the TR tree after it; no match: the TR tree alone. */
START_TEST(t_hybrid_layout)
{
    lm_spec_recycling *r;
    REQ(lm_spec_recycling_create(10, 2, 0, &r) == 0);
    /* a known matrix: row x = (x + 1, x + 2) mod 10 */
    float lg[10 * 10];
    int32_t all[10];
    for (int x = 0; x < 10; x++) {
        all[x] = x;
        for (int t = 0; t < 10; t++)
            lg[x * 10 + t] = t == (x + 1) % 10 ? 2.0f : t == (x + 2) % 10 ? 1.0f : 0.0f;
    }
    REQ(lm_spec_recycling_update(r, all, 10, lg, 10) == 0);
    lm_spec_hybrid h;
    REQ(lm_spec_hybrid_init(&h, NULL, r) == 0);
    lm_spec_drafter trd;
    REQ(lm_spec_recycling_drafter(r, &trd) == 0);
    int32_t tok[32], par[32], tt[32], tp[32];
    int64_t n, nt;
    /* long: the 3-gram 1 2 3 occurs at 0 */
    const int32_t s1[7] = {1, 2, 3, 4, 1, 2, 3};
    REQ(lm_spec_hybrid_propose(&h, s1, 7, 20, tok, par, &n) == 0);
    ck_assert_int_eq(n, 4);
    const int32_t w1[4] = {4, 1, 2, 3};
    ck_assert_mem_eq(tok, w1, sizeof w1);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(par[i], i - 1);
    ck_assert(h.n_long == 1 && h.n_short == 0 && h.n_none == 0);
    /* short: only the 1-gram "1" matches (at 0); chain 5 6 7 8 (cut to short_k 4), then TR */
    const int32_t s2[7] = {1, 5, 6, 7, 8, 9, 1};
    REQ(lm_spec_hybrid_propose(&h, s2, 7, 20, tok, par, &n) == 0);
    REQ(trd.propose(trd.self, s2, 7, 16, tt, tp, &nt) == 0);
    ck_assert_int_eq(n, 4 + nt);
    const int32_t w2[4] = {5, 6, 7, 8};
    ck_assert_mem_eq(tok, w2, sizeof w2);
    ck_assert(tt[0] == 2 && tt[1] == 3); /* root 1 -> 2 3 */
    for (int64_t i = 0; i < nt; i++) {
        ck_assert_int_eq(tok[4 + i], tt[i]);
        ck_assert_int_eq(par[4 + i], tp[i] < 0 ? -1 : tp[i] + 4);
    }
    ck_assert(h.n_long == 1 && h.n_short == 1 && h.n_none == 0);
    /* a budget smaller than the chain: the chain only, cut */
    REQ(lm_spec_hybrid_propose(&h, s2, 7, 3, tok, par, &n) == 0);
    ck_assert_int_eq(n, 3);
    ck_assert_mem_eq(tok, w2, 3 * sizeof *tok);
    /* none: TR alone, the whole budget */
    const int32_t s3[3] = {1, 2, 3};
    REQ(lm_spec_hybrid_propose(&h, s3, 3, 9, tok, par, &n) == 0);
    REQ(trd.propose(trd.self, s3, 3, 9, tt, tp, &nt) == 0);
    ck_assert_int_eq(nt, 9);
    ck_assert_int_eq(n, 9);
    ck_assert_mem_eq(tok, tt, 9 * sizeof *tok);
    ck_assert_mem_eq(par, tp, 9 * sizeof *par);
    ck_assert_int_eq(h.n_none, 1);
    /* long_ngram 0: a 3-gram match is a short one (chain cut to short_k, then TR) */
    lm_spec_hybrid_params hp = {{1, 3, 10}, 0, 2};
    REQ(lm_spec_hybrid_init(&h, &hp, r) == 0);
    REQ(lm_spec_hybrid_propose(&h, s1, 7, 20, tok, par, &n) == 0);
    ck_assert(n > 2 && tok[0] == 4 && tok[1] == 1 && par[2] == -1);
    lm_spec_recycling_free(r);
}
END_TEST

/* observe and prefill reach the recycling matrix: after one step with no draft room, the row of
 * the root is the top-k of the root's logits and (primed) each prompt token's row the top-k of
 * its prefill logits. */
START_TEST(t_hybrid_forwarding)
{
    runner u;
    runner_open(&u, 0);
    const int64_t V = u.r.V;
    const int32_t prompt[6] = {3, 11, 17, 25, 30, 38};
    lm_kv *kv;
    REQ(lm_blocks_kv_create(u.r.m->blocks, 0, &kv) == 0);
    float *l = test_alloc((size_t)(6 * V)), vals[4];
    lm_batch b = {6, prompt, NULL, NULL, 0};
    REQ(lm_model_forward(u.r.ctx, u.r.m, kv, u.r.w, &b, l) == 0);
    for (int prime = 0; prime < 2; prime++) {
        lm_spec_recycling *r;
        REQ(lm_spec_recycling_create(V, 4, prime, &r) == 0);
        lm_spec_hybrid h;
        REQ(lm_spec_hybrid_init(&h, NULL, r) == 0);
        lm_spec_drafter d;
        REQ(lm_spec_hybrid_drafter(&h, &d) == 0);
        ck_assert(prime ? d.prefill != NULL : d.prefill == NULL);
        ck_assert(d.observe != NULL);
        lm_spec_params p = {1, -1, 0, NULL, NULL};
        int32_t out[1];
        int64_t n;
        REQ(lm_spec_generate(u.r.ctx, u.r.m, kv, u.r.w, NULL, &d, &p, prompt, 6, out, &n, NULL) == 0);
        ck_assert_int_eq(n, 1);
        for (int i = 0; i < 6; i++) {
            int32_t ids[4];
            lm_spec_topk(l + (size_t)i * (size_t)V, V, 4, ids, vals);
            if (i == 5 || prime)
                ck_assert_mem_eq(r->m + (size_t)prompt[i] * 4, ids, sizeof ids);
            else
                ck_assert(r->m[(size_t)prompt[i] * 4] == 0 && r->m[(size_t)prompt[i] * 4 + 3] == 0);
        }
        lm_spec_recycling_free(r);
    }
    free(l);
    lm_kv_free(kv);
    runner_close(&u);
}
END_TEST

/* ---- bad arguments ------------------------------------------------------------------------- */

START_TEST(t_errors)
{
    lm_spec_aded *a = (lm_spec_aded *)&a;
    ck_assert_int_eq(lm_spec_aded_create(0, NULL, &a), COCHLEA_EINVAL);
    ck_assert(a == NULL);
    ck_assert_int_eq(lm_spec_aded_create(10, NULL, NULL), COCHLEA_EINVAL);
    for (int field = 0; field < 8; field++) {
        lm_spec_aded_params p = lm_spec_aded_default_params();
        switch (field) {
        case 0: p.max_rows = 0; break;
        case 1: p.row_cap = 0; break;
        case 2: p.window = 2; break;
        case 3: p.iterations = 0; break;
        case 4: p.depth = 0; break;
        case 5: p.paths = 0; break;
        case 6: p.c2 = 0; break;
        default: p.bonus = NAN; break;
        }
        a = (lm_spec_aded *)&a;
        ck_assert_int_eq(lm_spec_aded_create(10, &p, &a), COCHLEA_EINVAL);
        ck_assert(a == NULL);
    }
    REQ(lm_spec_aded_create(10, NULL, &a) == 0);
    int32_t s[4] = {1, 2, 3, 4}, tok[8], par[8];
    int64_t n = 5;
    lm_spec_drafter d;
    REQ(lm_spec_aded_drafter(a, &d) == 0);
    s[2] = 10; /* outside the vocabulary */
    ck_assert_int_lt(d.propose(d.self, s, 4, 8, tok, par, &n), 0);
    ck_assert_int_eq(n, 0);
    s[2] = -1;
    ck_assert_int_lt(lm_spec_aded_update(a, s, 4), 0);
    ck_assert_int_eq(lm_spec_aded_update(a, NULL, 4), COCHLEA_EINVAL);
    ck_assert_int_eq(lm_spec_aded_update(NULL, s, 4), COCHLEA_EINVAL);
    ck_assert_int_eq(lm_spec_aded_drafter(NULL, &d), COCHLEA_EINVAL);
    ck_assert_int_eq(lm_spec_aded_drafter(a, NULL), COCHLEA_EINVAL);
    lm_spec_aded_free(a);
    lm_spec_aded_free(NULL);
    lm_spec_aded_reset(NULL);

    lm_spec_hybrid h;
    ck_assert_int_eq(lm_spec_hybrid_init(&h, NULL, NULL), COCHLEA_EINVAL);
    lm_spec_recycling *r;
    REQ(lm_spec_recycling_create(10, 2, 0, &r) == 0);
    ck_assert_int_eq(lm_spec_hybrid_init(NULL, NULL, r), COCHLEA_EINVAL);
    const lm_spec_hybrid_params bad[4] = {{{0, 3, 10}, 3, 4}, {{2, 1, 10}, 3, 4}, {{1, 3, 0}, 3, 4}, {{1, 3, 10}, -1, 4}};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(lm_spec_hybrid_init(&h, &bad[i], r), COCHLEA_EINVAL);
    const lm_spec_hybrid_params bad2 = {{1, 3, 10}, 3, -1};
    ck_assert_int_eq(lm_spec_hybrid_init(&h, &bad2, r), COCHLEA_EINVAL);
    REQ(lm_spec_hybrid_init(&h, NULL, r) == 0);
    s[2] = 3;
    ck_assert_int_eq(lm_spec_hybrid_propose(&h, NULL, 4, 8, tok, par, &n), COCHLEA_EINVAL);
    ck_assert_int_eq(lm_spec_hybrid_propose(&h, s, 0, 8, tok, par, &n), COCHLEA_EINVAL);
    ck_assert_int_eq(lm_spec_hybrid_propose(&h, s, 4, -2, tok, par, &n), COCHLEA_EINVAL);
    ck_assert_int_eq(lm_spec_hybrid_propose(NULL, s, 4, 8, tok, par, &n), COCHLEA_EINVAL);
    s[3] = 12; /* a root outside the vocabulary: the recycling part refuses it */
    ck_assert_int_eq(lm_spec_hybrid_propose(&h, s, 4, 8, tok, par, &n), COCHLEA_EINVAL);
    ck_assert_int_eq(lm_spec_hybrid_drafter(NULL, &d), COCHLEA_EINVAL);
    lm_spec_hybrid z;
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(lm_spec_hybrid_drafter(&z, &d), COCHLEA_EINVAL);
    lm_spec_recycling_free(r);
}
END_TEST

static Suite *aded_suite(void)
{
    Suite *s = suite_create("lm_aded");
    TCase *tc = tcase_create("aded");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, t_hybrid_layout);
    tcase_add_test(tc, t_hybrid_forwarding);
    tcase_add_test(tc, t_errors);
    tcase_add_test(tc, t_mat_repetitive);
    tcase_add_test(tc, t_greedy_identity);
    tcase_add_test(tc, t_seeded_identity);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(aded_suite());
}
