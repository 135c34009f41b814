/* test_lm.c - the decoder runtime (src/lm/model, kv) and the sampler (src/lm/sampler).
 *
 * Without arguments it runs the Check suite on small random llama models built in memory with
 * the C GGUF writer. Two helper modes:
 *   test_lm logits MODEL.gguf --tokens 1,2,3 [--mode prefill|decode|chunk=K|tree]
 *           [--prefix P --parents -1,0,0,..] [--threads N] [--precision f32|bf16|int8] --out F
 *       writes float32 logits to F: [n, V] for prefill/decode/chunk (all rows, tokens fed as
 *       one batch, one at a time, or K at a time); for tree the first P tokens are prefilled
 *       and the rest form one tree batch with the given parents: [n - P, V]
 *       (used by tests/llama_parity.py);
 *   test_lm bench [--d 512 --layers 8 --heads 8 --kv-heads 4 --ff 1408 --vocab 8000]
 *           [--threads N] [--prompt 16] [--gen 64]
 *       greedy decoding speed on a random model (prints tokens/s).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "error.h"
#include "gguf.h"
#include "lm/kv.h"
#include "lm/model.h"
#include "lm/sampler.h"
#include "tensor.h"
#include "testutil.h"

/* ---- random llama models in memory ---------------------------------------------------------- */

/* Check's assertions report to the test runner even when they pass, so the helper modes (no
 * runner) use plain checks instead. */
static int in_helper;
#define REQ(cond)                                                                                          \
    do {                                                                                                   \
        if (in_helper && !(cond)) {                                                                        \
            fprintf(stderr, "test_lm: %s failed: %s\n", #cond, cochlea_last_error());                      \
            exit(1);                                                                                       \
        } else if (!in_helper)                                                                             \
            ck_assert_msg(cond, "%s failed: %s", #cond, cochlea_last_error());                              \
    } while (0)

enum {
    MUT_NONE, MUT_ARCH, MUT_NO_BLOCKS, MUT_KV_HEADS, MUT_Q_SHAPE, MUT_NO_DOWN, MUT_I32_WEIGHT, MUT_ROT_ODD,
    MUT_VOCAB, MUT_BIAS, MUT_EPS, MUT_CTX0, MUT_ROPE_SCALING, MUT_N
};

typedef struct tcfg {
    int64_t V, d, L, H, Hkv, ff, ctx;
    float base, eps;
    int tied;
    enum cochlea_type wtype;
    int mut;
} tcfg;

static tcfg cfg_small(void)
{
    tcfg c = {50, 64, 2, 4, 2, 96, 128, 10000.0f, 1e-5f, 0, COCHLEA_TYPE_F32, MUT_NONE};
    return c;
}

typedef struct mbuild {
    gguf_writer *w;
    void **keep;
    int64_t n_keep, cap_keep;
    test_rng rng;
} mbuild;

static void *keep_alloc(mbuild *b, size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    REQ(p != NULL);
    REQ(mem_grow((void **)&b->keep, &b->cap_keep, b->n_keep + 1, sizeof *b->keep) == 0);
    b->keep[b->n_keep++] = p;
    return p;
}

/* A tensor of ne[0] x ne[1] values uniform in [-scale, scale] (+ offset) stored as `type`. */
static void add_t(mbuild *b, const char *name, enum cochlea_type type, int n_dims, int64_t ne0, int64_t ne1,
                  float offset, float scale)
{
    const size_t n = (size_t)(ne0 * ne1);
    float *x = malloc(n * sizeof *x);
    REQ(x != NULL);
    for (size_t i = 0; i < n; i++)
        x[i] = offset + test_rng_uniform(&b->rng, -scale, scale);
    void *data;
    switch (type) {
    case COCHLEA_TYPE_F16:
        data = keep_alloc(b, n * 2);
        f32_to_fp16_array(x, data, n);
        break;
    case COCHLEA_TYPE_BF16:
        data = keep_alloc(b, n * 2);
        f32_to_bf16_array(x, data, n);
        break;
    case COCHLEA_TYPE_Q8_0:
        data = keep_alloc(b, n / QK8_0 * sizeof(block_q8_0));
        q8_0_quantize(x, data, n);
        break;
    case COCHLEA_TYPE_I32:
        data = keep_alloc(b, n * 4);
        break;
    default:
        data = keep_alloc(b, n * sizeof *x);
        memcpy(data, x, n * sizeof *x);
    }
    free(x);
    int64_t ne[2] = {ne0, ne1};
    REQ(gguf_writer_add_tensor(b->w, name, type, n_dims, ne, data) == 0);
}

/* Serialise a random llama model (llama.cpp keys and names) with corruption c->mut. */
static void make_model(const tcfg *c, uint64_t seed, void **buf, size_t *size)
{
    mbuild b = {0};
    b.rng.s = seed;
    REQ(gguf_writer_new(&b.w) == 0);
    gguf_writer *w = b.w;
    const int64_t Dh = c->d / c->H, qd = c->H * Dh, kvd = c->Hkv * Dh;
    gguf_writer_set_str(w, "general.architecture", c->mut == MUT_ARCH ? "gpt2" : "llama");
    gguf_writer_set_u32(w, "llama.context_length", c->mut == MUT_CTX0 ? 0 : (uint32_t)c->ctx);
    gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)c->d);
    if (c->mut != MUT_NO_BLOCKS)
        gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c->L);
    gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)c->ff);
    gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)c->H);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", c->mut == MUT_KV_HEADS ? 3 : (uint32_t)c->Hkv);
    gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)(c->mut == MUT_ROT_ODD ? Dh - 1 : Dh));
    gguf_writer_set_f32(w, "llama.rope.freq_base", c->base);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", c->mut == MUT_EPS ? -1.0f : c->eps);
    gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)(c->mut == MUT_VOCAB ? c->V + 1 : c->V));
    if (c->mut == MUT_ROPE_SCALING)
        gguf_writer_set_str(w, "llama.rope.scaling.type", "yarn");
    const float ws = 1.0f / sqrtf((float)c->d);
    add_t(&b, "token_embd.weight", c->wtype, 2, c->d, c->V, 0, 2.0f * ws * 1.7f);
    char s[128];
    for (int64_t l = 0; l < c->L; l++) {
#define N(x) (snprintf(s, sizeof s, "blk.%lld." x, (long long)l), s)
        add_t(&b, N("attn_norm.weight"), COCHLEA_TYPE_F32, 1, c->d, 1, 1.0f, 0.3f);
        add_t(&b, N("attn_q.weight"), c->wtype, 2, c->d, qd + (c->mut == MUT_Q_SHAPE && l == 1), 0, 2.0f * ws);
        add_t(&b, N("attn_k.weight"), c->wtype, 2, c->d, kvd, 0, 2.0f * ws);
        add_t(&b, N("attn_v.weight"), c->wtype, 2, c->d, kvd, 0, ws);
        add_t(&b, N("attn_output.weight"), c->wtype, 2, qd, c->d, 0, ws);
        if (c->mut == MUT_BIAS && l == 0)
            add_t(&b, N("attn_q.bias"), COCHLEA_TYPE_F32, 1, qd, 1, 0, 0.1f);
        add_t(&b, N("ffn_norm.weight"), COCHLEA_TYPE_F32, 1, c->d, 1, 1.0f, 0.3f);
        add_t(&b, N("ffn_gate.weight"), c->wtype, 2, c->d, c->ff, 0, 1.7f * ws);
        add_t(&b, N("ffn_up.weight"), c->mut == MUT_I32_WEIGHT ? COCHLEA_TYPE_I32 : c->wtype, 2, c->d, c->ff, 0,
              1.7f * ws);
        if (!(c->mut == MUT_NO_DOWN && l == 1))
            add_t(&b, N("ffn_down.weight"), c->wtype, 2, c->ff, c->d, 0, 1.7f / sqrtf((float)c->ff));
#undef N
    }
    add_t(&b, "output_norm.weight", COCHLEA_TYPE_F32, 1, c->d, 1, 1.0f, 0.3f);
    if (!c->tied)
        add_t(&b, "output.weight", c->wtype, 2, c->d, c->V, 0, 3.0f * ws);
    REQ(gguf_writer_write_memory(w, buf, size) == 0);
    gguf_writer_free(w);
    for (int64_t i = 0; i < b.n_keep; i++)
        free(b.keep[i]);
    free(b.keep);
}

/* A loaded model and what running it needs. */
typedef struct rig {
    void *buf;
    gguf_file *f;
    lm_model *m;
    cochlea_ctx *ctx;
    lm_kv *kv;
    lm_work *w;
} rig;

static void rig_open(rig *r, const tcfg *c, uint64_t seed, int threads)
{
    memset(r, 0, sizeof *r);
    size_t size;
    make_model(c, seed, &r->buf, &size);
    REQ(gguf_open_memory(r->buf, size, &r->f) == 0);
    REQ(lm_model_from_gguf(r->f, &r->m) == 0);
    REQ(ctx_create(threads, COCHLEA_PRECISION_F32, &r->ctx) == 0);
    REQ(lm_blocks_kv_create(r->m->blocks, 0, &r->kv) == 0);
    REQ(lm_work_create(&r->w) == 0);
}

static void rig_close(rig *r)
{
    lm_work_free(r->w);
    lm_kv_free(r->kv);
    ctx_free(r->ctx);
    lm_model_free(r->m);
    gguf_close(r->f);
    free(r->buf);
}

/* Forward a chain of n tokens after what the cache holds; logits of every row. */
static void run_chain(rig *r, const int32_t *tok, int64_t n, float *logits)
{
    lm_batch b = {n, tok, NULL, NULL, 0};
    int rc = lm_model_forward(r->ctx, r->m, r->kv, r->w, &b, logits);
    ck_assert_msg(rc == 0, "forward: %s", cochlea_last_error());
}

static void run_tree(rig *r, const int32_t *tok, const int32_t *parent, int64_t n, float *logits)
{
    lm_batch b = {n, tok, parent, NULL, 0};
    int rc = lm_model_forward(r->ctx, r->m, r->kv, r->w, &b, logits);
    ck_assert_msg(rc == 0, "tree forward: %s", cochlea_last_error());
}

static void rand_tokens(test_rng *g, int32_t *t, int64_t n, int64_t V)
{
    for (int64_t i = 0; i < n; i++)
        t[i] = (int32_t)test_rng_int(g, 0, (int)V - 1);
}

/* A 12-node tree (BFS order) under a root, plus a second root (node 9) hanging off the prefix. */
static const int32_t TREE_PARENT[12] = {-1, 0, 0, 1, 1, 2, 3, 3, 5, -1, 9, 6};
enum { TREE_N = 12 };

static int is_ancestor(const int32_t *parent, int a, int i)
{
    for (int j = i; j >= 0; j = parent[j])
        if (j == a)
            return 1;
    return 0;
}

/* Root-to-node path of node i (indices), returns its length. */
static int path_of(const int32_t *parent, int i, int32_t *path)
{
    int n = 0;
    for (int j = i; j >= 0; j = parent[j])
        n++;
    int k = n;
    for (int j = i; j >= 0; j = parent[j])
        path[--k] = j;
    return n;
}

/* ---- decoder tests -------------------------------------------------------------------------- */

/* §1.3: each tree row equals decoding its root-to-node path token by token after the prefix. */
START_TEST(t_tree_equals_paths)
{
    tcfg c = cfg_small();
    rig r;
    rig_open(&r, &c, 11, 2);
    test_rng g = {5};
    const int64_t P = 7, V = c.V;
    int32_t prefix[7], tok[TREE_N];
    rand_tokens(&g, prefix, P, V);
    rand_tokens(&g, tok, TREE_N, V);
    float *pl = test_alloc((size_t)(P * V)), *tl = test_alloc((size_t)(TREE_N * V));
    float *cl = test_alloc((size_t)(TREE_N * V));
    run_chain(&r, prefix, P, pl);
    run_tree(&r, tok, TREE_PARENT, TREE_N, tl);
    ck_assert_int_eq(r.kv->n, P + TREE_N);
    double worst = 0;
    for (int i = 0; i < TREE_N; i++) {
        int32_t path[TREE_N], ptok[TREE_N];
        int len = path_of(TREE_PARENT, i, path);
        for (int k = 0; k < len; k++)
            ptok[k] = tok[path[k]];
        ck_assert_int_eq(lm_kv_truncate(r.kv, P), 0);
        for (int k = 0; k < len; k++) /* one token at a time, as plain decoding */
            run_chain(&r, ptok + k, 1, cl);
        const float *want = cl, *got = tl + i * V;
        test_assert_close(got, want, V, 1e-5, 1e-5);
        double d = test_max_abs_diff(got, want, (size_t)V);
        worst = d > worst ? d : worst;
    }
    /* the rows are not all the same: the test would notice a tree that ignored its tokens */
    ck_assert(test_max_abs_diff(tl + 1 * V, tl + 2 * V, (size_t)V) > 1e-2);
    fprintf(stderr, "tree vs paths: max |diff| %.3g\n", worst);
    free(pl), free(tl), free(cl);
    rig_close(&r);
}
END_TEST

/* §9.4: changing the token of one node changes only its subtree; every other row stays
 * bit-identical. */
START_TEST(t_sibling_perturb)
{
    tcfg c = cfg_small();
    rig r;
    rig_open(&r, &c, 12, 2);
    test_rng g = {6};
    const int64_t P = 5, V = c.V;
    int32_t prefix[5], tok[TREE_N];
    rand_tokens(&g, prefix, P, V);
    rand_tokens(&g, tok, TREE_N, V);
    float *pl = test_alloc((size_t)(P * V)), *a = test_alloc((size_t)(TREE_N * V));
    float *b = test_alloc((size_t)(TREE_N * V));
    run_chain(&r, prefix, P, pl);
    run_tree(&r, tok, TREE_PARENT, TREE_N, a);
    for (int victim = 1; victim < TREE_N; victim += 3) {
        int32_t tok2[TREE_N];
        memcpy(tok2, tok, sizeof tok2);
        tok2[victim] = (tok2[victim] + 7) % (int32_t)V;
        ck_assert_int_eq(lm_kv_truncate(r.kv, P), 0);
        run_tree(&r, tok2, TREE_PARENT, TREE_N, b);
        for (int i = 0; i < TREE_N; i++) {
            int same = memcmp(a + i * V, b + i * V, (size_t)V * sizeof(float)) == 0;
            if (is_ancestor(TREE_PARENT, victim, i))
                ck_assert_msg(!same, "row %d (below perturbed node %d) did not change", i, victim);
            else
                ck_assert_msg(same, "row %d changed when node %d was perturbed", i, victim);
        }
    }
    free(pl), free(a), free(b);
    rig_close(&r);
}
END_TEST

/* §1.5 / §9.4: after tree steps with compaction, next-token logits equal a fresh prefill of the
 * committed sequence. */
START_TEST(t_kv_keep_equals_prefill)
{
    tcfg c = cfg_small();
    c.H = 4, c.Hkv = 1; /* multi-query attention */
    rig r;
    rig_open(&r, &c, 13, 1);
    test_rng g = {7};
    const int64_t P = 6, V = c.V;
    int32_t seq[64], tok[TREE_N];
    rand_tokens(&g, seq, P, V);
    int64_t n_seq = P;
    float *l = test_alloc((size_t)(64 * V)), *f = test_alloc((size_t)(64 * V));
    run_chain(&r, seq, P, l);
    /* three speculative steps accepting different paths (the last accepts only the root) */
    const int accept_node[3] = {8, 4, 0};
    for (int step = 0; step < 3; step++) {
        rand_tokens(&g, tok, TREE_N, V);
        const int64_t n_past = r.kv->n;
        run_tree(&r, tok, TREE_PARENT, TREE_N, l);
        int32_t path[TREE_N];
        int len = path_of(TREE_PARENT, accept_node[step], path);
        ck_assert_int_eq(lm_kv_keep(r.kv, n_past, path, len), 0);
        ck_assert_int_eq(r.kv->n, n_past + len);
        for (int k = 0; k < len; k++)
            seq[n_seq++] = tok[path[k]];
    }
    /* bad keeps are refused and leave the cache alone */
    const int32_t bad1[2] = {2, 1}, bad2[1] = {1};
    const int64_t n_now = r.kv->n;
    ck_assert_int_eq(lm_kv_keep(r.kv, n_now - 1, bad1, 2), COCHLEA_EINVAL);
    ck_assert_int_eq(lm_kv_keep(r.kv, n_now - 1, bad2, 1), COCHLEA_EINVAL);
    ck_assert_int_eq(lm_kv_keep(r.kv, n_now + 1, NULL, 0), COCHLEA_EINVAL);
    ck_assert_int_eq(r.kv->n, n_now);
    /* next token after the speculative steps vs a fresh prefill of the whole sequence */
    const int32_t next = 3;
    run_chain(&r, &next, 1, l);
    seq[n_seq++] = next;
    lm_kv_clear(r.kv);
    run_chain(&r, seq, n_seq, f);
    test_assert_close(l, f + (n_seq - 1) * V, V, 1e-5, 1e-5);
    fprintf(stderr, "keep vs prefill: max |diff| %.3g over %lld positions\n",
            test_max_abs_diff(l, f + (n_seq - 1) * V, (size_t)V), (long long)n_seq);
    free(l), free(f);
    rig_close(&r);
}
END_TEST

/* Prefill = step-by-step decoding = chunks of 3, on 1 and 2 threads; out_rows picks rows. */
START_TEST(t_prefill_decode_chunks)
{
    tcfg c = cfg_small();
    c.tied = 1;
    c.Hkv = 4; /* plain multi-head attention */
    rig r1, r2;
    rig_open(&r1, &c, 14, 1);
    rig_open(&r2, &c, 14, 2);
    test_rng g = {8};
    enum { T = 20 };
    const int64_t V = c.V;
    int32_t tok[T];
    rand_tokens(&g, tok, T, V);
    float *a = test_alloc(T * (size_t)V), *b = test_alloc(T * (size_t)V), *cc = test_alloc(T * (size_t)V);
    run_chain(&r1, tok, T, a);
    for (int i = 0; i < T; i++)
        run_chain(&r2, tok + i, 1, b + i * V);
    test_assert_close(b, a, T * V, 1e-5, 1e-5);
    lm_kv_clear(r1.kv);
    for (int i = 0; i < T; i += 3)
        run_chain(&r1, tok + i, T - i < 3 ? T - i : 3, cc + i * V);
    test_assert_close(cc, a, T * V, 1e-5, 1e-5);
    /* only rows 17 and 4 */
    lm_kv_clear(r1.kv);
    const int32_t rows[2] = {17, 4};
    lm_batch bt = {T, tok, NULL, rows, 2};
    ck_assert_int_eq(lm_model_forward(r1.ctx, r1.m, r1.kv, r1.w, &bt, b), 0);
    test_assert_close(b, a + 17 * V, V, 1e-5, 1e-5);
    test_assert_close(b + V, a + 4 * V, V, 1e-5, 1e-5);
    ck_assert_int_eq(r1.m->tied, 1);
    free(a), free(b), free(cc);
    rig_close(&r1);
    rig_close(&r2);
}
END_TEST

/* Capacity, bad ids and bad parents are refused without touching the cache. */
START_TEST(t_bad_batches)
{
    tcfg c = cfg_small();
    rig r;
    rig_open(&r, &c, 15, 1);
    lm_kv_free(r.kv);
    ck_assert_int_eq(lm_blocks_kv_create(r.m->blocks, 8, &r.kv), 0);
    ck_assert_int_eq(r.kv->capacity, 8);
    int32_t tok[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float *l = test_alloc(8 * (size_t)c.V);
    run_chain(&r, tok, 6, l);
    lm_batch b = {3, tok, NULL, NULL, 0};
    ck_assert_int_eq(lm_model_forward(r.ctx, r.m, r.kv, r.w, &b, l), COCHLEA_ERANGE);
    ck_assert_int_eq(r.kv->n, 6);
    int32_t badtok[2] = {1, (int32_t)c.V};
    lm_batch b2 = {2, badtok, NULL, NULL, 0};
    ck_assert_int_eq(lm_model_forward(r.ctx, r.m, r.kv, r.w, &b2, l), COCHLEA_ERANGE);
    ck_assert_int_eq(r.kv->n, 6);
    const int32_t badpar[2] = {-1, 1};
    lm_batch b3 = {2, tok, badpar, NULL, 0};
    ck_assert_int_eq(lm_model_forward(r.ctx, r.m, r.kv, r.w, &b3, l), COCHLEA_EINVAL);
    const int32_t badrow[1] = {2};
    lm_batch b4 = {2, tok, NULL, badrow, 1};
    ck_assert_int_eq(lm_model_forward(r.ctx, r.m, r.kv, r.w, &b4, l), COCHLEA_EINVAL);
    ck_assert_int_eq(r.kv->n, 6);
    ck_assert_int_eq(lm_kv_truncate(r.kv, 7), COCHLEA_EINVAL);
    lm_kv *other;
    ck_assert_int_eq(lm_kv_create(2, 1, 16, 8, &other), 0);
    lm_batch b5 = {1, tok, NULL, NULL, 0};
    ck_assert_int_eq(lm_model_forward(r.ctx, r.m, other, r.w, &b5, l), COCHLEA_EINVAL);
    lm_kv_free(other);
    free(l);
    rig_close(&r);
}
END_TEST

/* Corrupt files: each is refused with the expected code and a message naming the culprit. */
START_TEST(t_bad_files)
{
    static const struct {
        int mut, code;
        const char *needle;
    } cases[] = {
        {MUT_ARCH, COCHLEA_EUNSUPPORTED, "gpt2"},
        {MUT_NO_BLOCKS, COCHLEA_EFORMAT, "llama.block_count"},
        {MUT_KV_HEADS, COCHLEA_EFORMAT, "head_count_kv"},
        {MUT_Q_SHAPE, COCHLEA_EFORMAT, "blk.1.attn_q.weight"},
        {MUT_NO_DOWN, COCHLEA_EFORMAT, "blk.1.ffn_down.weight"},
        {MUT_I32_WEIGHT, COCHLEA_EFORMAT, "blk.0.ffn_up.weight"},
        {MUT_ROT_ODD, COCHLEA_EFORMAT, "rope.dimension_count"},
        {MUT_VOCAB, COCHLEA_EFORMAT, "llama.vocab_size"},
        {MUT_BIAS, COCHLEA_EUNSUPPORTED, "blk.0.attn_q.bias"},
        {MUT_EPS, COCHLEA_EFORMAT, "layer_norm_rms_epsilon"},
        {MUT_CTX0, COCHLEA_EFORMAT, "llama.context_length"},
        {MUT_ROPE_SCALING, COCHLEA_EUNSUPPORTED, "yarn"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tcfg c = cfg_small();
        c.mut = cases[i].mut;
        void *buf;
        size_t size;
        make_model(&c, 21, &buf, &size);
        gguf_file *f;
        ck_assert_int_eq(gguf_open_memory_named(buf, size, "bad.gguf", &f), 0);
        lm_model *m = NULL;
        int rc = lm_model_from_gguf(f, &m);
        ck_assert_msg(rc == cases[i].code, "case %zu: code %d, expected %d (%s)", i, rc, cases[i].code,
                      cochlea_last_error());
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(cochlea_last_error(), cases[i].needle) && strstr(cochlea_last_error(), "bad.gguf"),
                      "case %zu: message '%s' lacks '%s'", i, cochlea_last_error(), cases[i].needle);
        gguf_close(f);
        free(buf);
    }
    /* a good file loads; its truncation is refused by the reader */
    tcfg c = cfg_small();
    void *buf;
    size_t size;
    make_model(&c, 22, &buf, &size);
    gguf_file *f;
    ck_assert_int_eq(gguf_open_memory(buf, size - 100, &f), COCHLEA_EFORMAT);
    ck_assert_int_eq(lm_model_load("/nonexistent/model.gguf", &(lm_model *){NULL}), COCHLEA_EIO);
    free(buf);
}
END_TEST

/* Q8_0 / F16 weights (tied embedding in Q8_0 too) run and stay close to the F32 model. */
START_TEST(t_types)
{
    tcfg c = cfg_small();
    c.tied = 1;
    rig r32;
    rig_open(&r32, &c, 16, 1);
    test_rng g = {9};
    int32_t tok[10];
    rand_tokens(&g, tok, 10, c.V);
    float *a = test_alloc(10 * (size_t)c.V), *b = test_alloc(10 * (size_t)c.V);
    run_chain(&r32, tok, 10, a);
    const enum cochlea_type types[3] = {COCHLEA_TYPE_F16, COCHLEA_TYPE_BF16, COCHLEA_TYPE_Q8_0};
    const double tol[3] = {0.02, 0.15, 0.15};
    for (int t = 0; t < 3; t++) {
        c.wtype = types[t];
        rig r;
        rig_open(&r, &c, 16, 1);
        ck_assert_int_eq(r.m->output->type, types[t]);
        run_chain(&r, tok, 10, b);
        double d = test_max_abs_diff(a, b, 10 * (size_t)c.V);
        fprintf(stderr, "%s weights vs f32: max |diff| %.3g\n", type_name(types[t]), d);
        ck_assert_msg(d < tol[t] && d > 0, "%s: max |diff| %g", type_name(types[t]), d);
        rig_close(&r);
    }
    free(a), free(b);
    rig_close(&r32);
}
END_TEST

/* ---- sampler tests -------------------------------------------------------------------------- */

START_TEST(t_rng_reference)
{
    /* values of the documented algorithm computed independently (Python big integers) */
    lm_rng r;
    lm_rng_seed(&r, 42);
    ck_assert_uint_eq(lm_rng_next(&r), 0x15780b2e0c2ec716ull);
    ck_assert_uint_eq(lm_rng_next(&r), 0x6104d9866d113a7eull);
    ck_assert_uint_eq(lm_rng_next(&r), 0xae17533239e499a1ull);
    lm_rng_seed(&r, 42);
    ck_assert_double_eq(lm_rng_uniform(&r), 0.08386297105988216);
}
END_TEST

static lm_sampler *mk(float temp, int top_k, float top_p, float min_p, float pen, int last_n, int64_t V)
{
    lm_sampler_params p = lm_sampler_default_params();
    p.temperature = temp, p.top_k = top_k, p.top_p = top_p, p.min_p = min_p;
    p.repeat_penalty = pen, p.repeat_last_n = last_n, p.seed = 1234;
    lm_sampler *s;
    ck_assert_int_eq(lm_sampler_create(&p, V, &s), 0);
    return s;
}

/* expected softmax at temperature T over the kept tokens (keep[i] != 0) */
static void softmax_ref(const float *l, const int *keep, int n, double T, double *out)
{
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++)
        if (keep[i] && l[i] > mx)
            mx = l[i];
    for (int i = 0; i < n; i++)
        sum += keep[i] ? exp((l[i] - mx) / T) : 0;
    for (int i = 0; i < n; i++)
        out[i] = keep[i] ? exp((l[i] - mx) / T) / sum : 0;
}

static void assert_probs(const float *got, const double *want, int n)
{
    for (int i = 0; i < n; i++) {
        ck_assert_msg(fabs(got[i] - want[i]) < 1e-6, "token %d: p %.9g, expected %.9g", i, (double)got[i], want[i]);
        ck_assert_msg((got[i] == 0) == (want[i] == 0), "token %d: kept/masked mismatch", i);
    }
}

START_TEST(t_sampler_masks)
{
    /* logits of 6 tokens; sorted: 3 (2.5), 1 (2.0), 4 (1.0), 0 (0.5), 2 (-1), 5 (-3) */
    const float l[6] = {0.5f, 2.0f, -1.0f, 2.5f, 1.0f, -3.0f};
    float p[6];
    double want[6];
    /* greedy = argmax, whatever the filters */
    lm_sampler *s = mk(0.0f, 2, 0.5f, 0.3f, 1.0f, 0, 6);
    ck_assert_int_eq(lm_sampler_probs(s, l, NULL, 0, p), 0);
    const double onehot[6] = {0, 0, 0, 1, 0, 0};
    assert_probs(p, onehot, 6);
    lm_sampler_free(s);
    /* top-k 3 at T = 0.7 */
    s = mk(0.7f, 3, 1.0f, 0.0f, 1.0f, 0, 6);
    ck_assert_int_eq(lm_sampler_probs(s, l, NULL, 0, p), 0);
    softmax_ref(l, (const int[6]){0, 1, 0, 1, 1, 0}, 6, 0.7, want);
    assert_probs(p, want, 6);
    lm_sampler_free(s);
    /* top-p: softmax (T = 1) sorted: .5002 (3), .3034 (1), .1116 (4), .0677 (0), ...: 0.85 keeps three */
    double full[6];
    softmax_ref(l, (const int[6]){1, 1, 1, 1, 1, 1}, 6, 1.0, full);
    ck_assert(full[3] + full[1] < 0.85 && full[3] + full[1] + full[4] > 0.85);
    s = mk(1.3f, 0, 0.85f, 0.0f, 1.0f, 0, 6);
    ck_assert_int_eq(lm_sampler_probs(s, l, NULL, 0, p), 0);
    softmax_ref(l, (const int[6]){0, 1, 0, 1, 1, 0}, 6, 1.3, want);
    assert_probs(p, want, 6);
    lm_sampler_free(s);
    /* top-p exactly reached by the first two tokens keeps two */
    s = mk(1.0f, 0, (float)(full[3] + full[1]) - 1e-6f, 0.0f, 1.0f, 0, 6);
    ck_assert_int_eq(lm_sampler_probs(s, l, NULL, 0, p), 0);
    softmax_ref(l, (const int[6]){0, 1, 0, 1, 0, 0}, 6, 1.0, want);
    assert_probs(p, want, 6);
    lm_sampler_free(s);
    /* min-p 0.2: keep p >= 0.2 p_max, i.e. l >= 2.5 + ln 0.2 = 0.8906: tokens 3, 1, 4 */
    s = mk(1.0f, 0, 1.0f, 0.2f, 1.0f, 0, 6);
    ck_assert_int_eq(lm_sampler_probs(s, l, NULL, 0, p), 0);
    softmax_ref(l, (const int[6]){0, 1, 0, 1, 1, 0}, 6, 1.0, want);
    assert_probs(p, want, 6);
    lm_sampler_free(s);
    /* chain: top-k 4 (3,1,4,0), then min-p 0.1 (l >= 0.197: drops nothing of them), T 2 */
    s = mk(2.0f, 4, 1.0f, 0.1f, 1.0f, 0, 6);
    ck_assert_int_eq(lm_sampler_probs(s, l, NULL, 0, p), 0);
    softmax_ref(l, (const int[6]){1, 1, 0, 1, 1, 0}, 6, 2.0, want);
    assert_probs(p, want, 6);
    lm_sampler_free(s);
    /* top-k ties: keep the lower index */
    const float tie[4] = {1.0f, 3.0f, 1.0f, 0.0f};
    s = mk(1.0f, 2, 1.0f, 0.0f, 1.0f, 0, 4);
    ck_assert_int_eq(lm_sampler_probs(s, tie, NULL, 0, p), 0);
    softmax_ref(tie, (const int[4]){1, 1, 0, 0}, 4, 1.0, want);
    assert_probs(p, want, 4);
    /* -inf tokens are never kept; NaN and all -inf are refused */
    const float minf[4] = {-INFINITY, 0.0f, -INFINITY, 1.0f};
    ck_assert_int_eq(lm_sampler_probs(s, minf, NULL, 0, p), 0);
    ck_assert(p[0] == 0 && p[2] == 0 && p[1] > 0 && p[3] > p[1]);
    const float nan4[4] = {0, NAN, 0, 0}, allinf[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    ck_assert_int_eq(lm_sampler_probs(s, nan4, NULL, 0, p), COCHLEA_EINVAL);
    ck_assert_int_eq(lm_sampler_probs(s, allinf, NULL, 0, p), COCHLEA_EINVAL);
    lm_sampler_free(s);
    lm_sampler_params bad = lm_sampler_default_params();
    bad.top_p = 0.0f;
    ck_assert_int_eq(lm_sampler_create(&bad, 4, &s), COCHLEA_EINVAL);
}
END_TEST

START_TEST(t_sampler_penalty)
{
    const float l[5] = {2.0f, -1.0f, 0.5f, 3.0f, 1.0f};
    float p[5], q[5];
    double want[5];
    /* history 4 1 1 0, window 3 -> tokens {1, 0} (4 is outside): 2 -> 1, -1 -> -2 */
    lm_sampler *s = mk(1.0f, 0, 1.0f, 0.0f, 2.0f, 3, 5);
    const int32_t hist[4] = {4, 1, 1, 0};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(lm_sampler_accept(s, hist[i]), 0);
    ck_assert_int_eq(lm_sampler_probs(s, l, NULL, 0, p), 0);
    const float pen[5] = {1.0f, -2.0f, 0.5f, 3.0f, 1.0f};
    softmax_ref(pen, (const int[5]){1, 1, 1, 1, 1}, 5, 1.0, want);
    assert_probs(p, want, 5);
    lm_sampler_free(s);
    /* greedy flips from token 3 to 0 when 3 was recent (3 / 2 = 1.5 < 2) */
    s = mk(0.0f, 0, 1.0f, 0.0f, 2.0f, 64, 5);
    int32_t t;
    ck_assert_int_eq(lm_sampler_sample(s, l, NULL, &t), 0);
    ck_assert_int_eq(t, 3);
    ck_assert_int_eq(lm_sampler_sample(s, l, NULL, &t), 0);
    ck_assert_int_eq(t, 0);
    lm_sampler_free(s);
    /* extra history == accepted history */
    lm_sampler *a = mk(0.9f, 0, 1.0f, 0.0f, 1.3f, 4, 5), *b = mk(0.9f, 0, 1.0f, 0.0f, 1.3f, 4, 5);
    const int32_t h[5] = {2, 3, 1, 4, 2};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(lm_sampler_accept(a, h[i]), 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(lm_sampler_accept(b, h[i]), 0);
    ck_assert_int_eq(lm_sampler_probs(a, l, NULL, 0, p), 0);
    ck_assert_int_eq(lm_sampler_probs(b, l, h + 2, 3, q), 0);
    ck_assert_mem_eq(p, q, sizeof p);
    lm_sampler_free(a);
    lm_sampler_free(b);
}
END_TEST

START_TEST(t_sampler_draws)
{
    /* inverse CDF */
    const float pr[4] = {0.2f, 0.3f, 0.0f, 0.5f};
    ck_assert_int_eq(lm_sample_from_probs(pr, 4, 0.0), 0);
    ck_assert_int_eq(lm_sample_from_probs(pr, 4, 0.19), 0);
    ck_assert_int_eq(lm_sample_from_probs(pr, 4, 0.21), 1);
    ck_assert_int_eq(lm_sample_from_probs(pr, 4, 0.49), 1);
    ck_assert_int_eq(lm_sample_from_probs(pr, 4, 0.51), 3);
    ck_assert_int_eq(lm_sample_from_probs(pr, 4, 0.9999999), 3);
    const float zero[2] = {0, 0};
    ck_assert_int_eq(lm_sample_from_probs(zero, 2, 0.5), -1);
    /* one draw per emitted token, greedy included; same seed, same tokens */
    const float l[6] = {0.5f, 2.0f, -1.0f, 2.5f, 1.0f, -3.0f};
    lm_sampler *g = mk(0.0f, 0, 1.0f, 0.0f, 1.0f, 0, 6);
    int32_t t;
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(lm_sampler_sample(g, l, NULL, &t), 0);
        ck_assert_int_eq(t, 3);
    }
    lm_rng r;
    lm_rng_seed(&r, 1234);
    for (int i = 0; i < 5; i++)
        lm_rng_uniform(&r);
    ck_assert_double_eq(lm_sampler_draw(g), lm_rng_uniform(&r));
    lm_sampler_free(g);
    lm_sampler *a = mk(1.0f, 0, 1.0f, 0.0f, 1.0f, 0, 6), *b = mk(1.0f, 0, 1.0f, 0.0f, 1.0f, 0, 6);
    int32_t sa[64], sb[64];
    for (int i = 0; i < 64; i++) {
        ck_assert_int_eq(lm_sampler_sample(a, l, NULL, &sa[i]), 0);
        ck_assert_int_eq(lm_sampler_sample(b, l, NULL, &sb[i]), 0);
    }
    ck_assert_mem_eq(sa, sb, sizeof sa);
    /* the token is what lm_sample_from_probs gives for the same draw */
    lm_sampler_reset(a);
    lm_rng_seed(&r, 1234);
    float p[6];
    for (int i = 0; i < 64; i++) {
        ck_assert_int_eq(lm_sampler_sample(a, l, p, &t), 0);
        ck_assert_int_eq(t, sa[i]);
        ck_assert_int_eq(t, lm_sample_from_probs(p, 6, lm_rng_uniform(&r)));
    }
    int64_t nh;
    lm_sampler_history(a, &nh);
    ck_assert_int_eq(nh, 64);
    lm_sampler_free(a);
    lm_sampler_params pp = lm_sampler_default_params();
    pp.temperature = 1.0f, pp.top_k = 0, pp.top_p = 1.0f, pp.min_p = 0.0f, pp.seed = 99;
    ck_assert_int_eq(lm_sampler_create(&pp, 6, &a), 0);
    int differ = 0;
    for (int i = 0; i < 64; i++) {
        ck_assert_int_eq(lm_sampler_sample(a, l, NULL, &t), 0);
        differ |= t != sb[i];
    }
    ck_assert_msg(differ, "seeds 1234 and 99 gave the same 64 tokens");
    lm_sampler_free(a);
    lm_sampler_free(b);
}
END_TEST

/* Chi-square goodness of fit of sampled tokens vs the final distribution (df = 7). */
START_TEST(t_sampler_chi2)
{
    const float l[8] = {0.1f, 1.2f, -0.7f, 0.9f, 0.0f, 2.0f, -1.5f, 0.4f};
    const int N = 200000;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        lm_sampler_params p = lm_sampler_default_params();
        p.temperature = 1.5f, p.top_k = 0, p.top_p = 1.0f, p.min_p = 0.0f, p.seed = seed;
        lm_sampler *s;
        ck_assert_int_eq(lm_sampler_create(&p, 8, &s), 0);
        float pr[8];
        ck_assert_int_eq(lm_sampler_probs(s, l, NULL, 0, pr), 0);
        double want[8];
        softmax_ref(l, (const int[8]){1, 1, 1, 1, 1, 1, 1, 1}, 8, 1.5, want);
        assert_probs(pr, want, 8);
        long cnt[8] = {0};
        for (int i = 0; i < N; i++) {
            int32_t t;
            ck_assert_int_eq(lm_sampler_sample(s, l, NULL, &t), 0);
            cnt[t]++;
        }
        double chi2 = 0;
        for (int k = 0; k < 8; k++) {
            double e = N * want[k];
            chi2 += (cnt[k] - e) * (cnt[k] - e) / e;
        }
        /* 24.32 = chi-square quantile 0.999 for 7 degrees of freedom */
        ck_assert_msg(chi2 < 24.32, "seed %d: chi2 %.2f", (int)seed, chi2);
        lm_sampler_free(s);
    }
}
END_TEST

/* ---- helper modes ----------------------------------------------------------------------- */

static int parse_i32_list(const char *s, int32_t **out, int64_t *n)
{
    int64_t cap = 0;
    *out = NULL;
    *n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s)
            return -1;
        if (mem_grow((void **)out, &cap, *n + 1, sizeof **out))
            return -1;
        (*out)[(*n)++] = (int32_t)v;
        s = *end == ',' ? end + 1 : end;
    }
    return 0;
}

static int die(const char *what)
{
    fprintf(stderr, "test_lm: %s: %s\n", what, cochlea_last_error());
    return 1;
}

static int mode_logits(int argc, char **argv)
{
    const char *model = argv[2], *mode = "prefill", *out = NULL, *prec = "f32";
    int32_t *tok = NULL, *par = NULL;
    int64_t n = 0, n_par = 0, prefix = 0;
    int threads = 1;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tokens") && parse_i32_list(argv[i + 1], &tok, &n) == 0)
            continue;
        if (!strcmp(argv[i], "--parents") && parse_i32_list(argv[i + 1], &par, &n_par) == 0)
            continue;
        if (!strcmp(argv[i], "--mode"))
            mode = argv[i + 1];
        else if (!strcmp(argv[i], "--prefix"))
            prefix = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--precision"))
            prec = argv[i + 1];
        else if (!strcmp(argv[i], "--out"))
            out = argv[i + 1];
        else {
            fprintf(stderr, "test_lm logits: bad option %s\n", argv[i]);
            free(tok), free(par);
            return 2;
        }
    }
    if (!out || n < 1 || prefix < 0 || prefix >= n) {
        fprintf(stderr, "test_lm logits: need --tokens and --out (and 0 <= --prefix < n)\n");
        free(tok), free(par);
        return 2;
    }
    enum cochlea_precision pr = !strcmp(prec, "bf16")   ? COCHLEA_PRECISION_BF16
                                : !strcmp(prec, "int8") ? COCHLEA_PRECISION_INT8
                                                        : COCHLEA_PRECISION_F32;
    lm_model *m = NULL;
    cochlea_ctx *ctx = NULL;
    lm_kv *kv = NULL;
    lm_work *w = NULL;
    float *logits = NULL;
    int64_t rows = n;
    int rc = lm_model_load(model, &m);
    if (!rc)
        rc = ctx_create(threads, pr, &ctx);
    if (!rc)
        rc = lm_blocks_kv_create(m->blocks, 0, &kv);
    if (!rc)
        rc = lm_work_create(&w);
    const int64_t V = m ? m->n_vocab : 0;
    if (!rc && !(logits = malloc((size_t)(n * V) * sizeof *logits)))
        rc = COCHLEA_ENOMEM;
    if (rc) {
    } else if (!strcmp(mode, "prefill")) {
        lm_batch b = {n, tok, NULL, NULL, 0};
        rc = lm_model_forward(ctx, m, kv, w, &b, logits);
    } else if (!strcmp(mode, "decode") || !strncmp(mode, "chunk=", 6)) {
        int64_t K = mode[0] == 'd' ? 1 : atoll(mode + 6);
        if (K < 1)
            K = 1;
        for (int64_t i = 0; i < n && !rc; i += K) {
            lm_batch b = {n - i < K ? n - i : K, tok + i, NULL, NULL, 0};
            rc = lm_model_forward(ctx, m, kv, w, &b, logits + i * V);
        }
    } else if (!strcmp(mode, "tree") && n_par == n - prefix) {
        rows = n - prefix;
        if (prefix > 0) {
            lm_batch b = {prefix, tok, NULL, NULL, 0};
            rc = lm_model_forward(ctx, m, kv, w, &b, logits);
        }
        lm_batch b = {rows, tok + prefix, par, NULL, 0};
        if (!rc)
            rc = lm_model_forward(ctx, m, kv, w, &b, logits);
    } else {
        rc = err_set(COCHLEA_EINVAL, "unknown mode '%s' (tree needs n - prefix parents)", mode);
    }
    if (!rc) {
        FILE *fp = fopen(out, "wb");
        if (!fp || fwrite(logits, sizeof *logits, (size_t)(rows * V), fp) != (size_t)(rows * V))
            rc = err_set(COCHLEA_EIO, "cannot write %s", out);
        if (fp && fclose(fp) && !rc)
            rc = err_set(COCHLEA_EIO, "cannot write %s", out);
    }
    if (rc)
        fprintf(stderr, "test_lm: %s\n", cochlea_last_error());
    free(logits), free(tok), free(par);
    lm_work_free(w), lm_kv_free(kv), ctx_free(ctx), lm_model_free(m);
    return rc ? 1 : 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int mode_bench(int argc, char **argv)
{
    tcfg c = {8000, 512, 8, 8, 4, 1408, 1024, 10000.0f, 1e-5f, 0, COCHLEA_TYPE_F32, MUT_NONE};
    int threads = 1, prompt = 16, gen = 64;
    for (int i = 2; i + 1 < argc; i += 2) {
        long v = atol(argv[i + 1]);
        if (!strcmp(argv[i], "--d"))
            c.d = v;
        else if (!strcmp(argv[i], "--layers"))
            c.L = v;
        else if (!strcmp(argv[i], "--heads"))
            c.H = v;
        else if (!strcmp(argv[i], "--kv-heads"))
            c.Hkv = v;
        else if (!strcmp(argv[i], "--ff"))
            c.ff = v;
        else if (!strcmp(argv[i], "--vocab"))
            c.V = v;
        else if (!strcmp(argv[i], "--threads"))
            threads = (int)v;
        else if (!strcmp(argv[i], "--prompt"))
            prompt = (int)v;
        else if (!strcmp(argv[i], "--gen"))
            gen = (int)v;
        else if (!strcmp(argv[i], "--type"))
            c.wtype = !strcmp(argv[i + 1], "q8_0") ? COCHLEA_TYPE_Q8_0
                      : !strcmp(argv[i + 1], "f16") ? COCHLEA_TYPE_F16
                                                    : COCHLEA_TYPE_F32;
    }
    rig r;
    rig_open(&r, &c, 1, threads);
    int64_t params = 0;
    for (int64_t i = 0; i < gguf_n_tensors(r.f); i++)
        params += tensor_nelements(gguf_tensor(r.f, i));
    int32_t *tok = malloc((size_t)(prompt + gen) * sizeof *tok);
    float *l = malloc((size_t)(prompt * c.V) * sizeof *l);
    test_rng g = {3};
    rand_tokens(&g, tok, prompt, c.V);
    double t0 = now_s();
    lm_batch b = {prompt, tok, NULL, NULL, 0};
    if (lm_model_forward(r.ctx, r.m, r.kv, r.w, &b, l))
        return die("prefill");
    double t1 = now_s();
    const float *last = l + (prompt - 1) * c.V;
    for (int i = 0; i < gen; i++) {
        int32_t best = 0;
        for (int32_t t = 1; t < c.V; t++)
            if (last[t] > last[best])
                best = t;
        tok[prompt + i] = best;
        lm_batch s = {1, &tok[prompt + i], NULL, NULL, 0};
        if (lm_model_forward(r.ctx, r.m, r.kv, r.w, &s, l))
            return die("decode");
        last = l;
    }
    double t2 = now_s();
    printf("params %.1fM (%s), threads %d: prefill %d tokens %.1f ms (%.1f tok/s), greedy decode %d tokens "
           "%.1f tok/s (%.2f ms/token)\n",
           params / 1e6, type_name(c.wtype), threads, prompt, 1e3 * (t1 - t0), prompt / (t1 - t0), gen,
           gen / (t2 - t1), 1e3 * (t2 - t1) / gen);
    free(tok), free(l);
    rig_close(&r);
    return 0;
}

static Suite *lm_suite(void)
{
    Suite *s = suite_create("lm");
    TCase *tc = tcase_create("decoder");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, t_tree_equals_paths);
    tcase_add_test(tc, t_sibling_perturb);
    tcase_add_test(tc, t_kv_keep_equals_prefill);
    tcase_add_test(tc, t_prefill_decode_chunks);
    tcase_add_test(tc, t_bad_batches);
    tcase_add_test(tc, t_bad_files);
    tcase_add_test(tc, t_types);
    suite_add_tcase(s, tc);
    TCase *ts = tcase_create("sampler");
    tcase_set_timeout(ts, 600);
    tcase_add_test(ts, t_rng_reference);
    tcase_add_test(ts, t_sampler_masks);
    tcase_add_test(ts, t_sampler_penalty);
    tcase_add_test(ts, t_sampler_draws);
    tcase_add_test(ts, t_sampler_chi2);
    suite_add_tcase(s, ts);
    return s;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "logits"))
        return mode_logits(argc, argv);
    in_helper = 1;
    if (argc >= 2 && !strcmp(argv[1], "bench"))
        return mode_bench(argc, argv);
    in_helper = 0;
    return test_run_suite(lm_suite());
}
