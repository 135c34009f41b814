/* speculative_bench.c - speed of greedy text generation with each speculative decoder against
 * plain decoding on the same llama GGUF model and prompts (issue 8; bench/README.md,
 * "Speculative decoding"), as driven by bench/speculative and bench/speculative_torch.py.
 *
 *     bench/speculative_bench MODEL PROMPTS.txt [-n N] [-t THREADS] [--ctx N] [--max-prompts P]
 *         [--prompt-chars C] [--methods LIST] [--tokens-out FILE.json]
 *
 * PROMPTS.txt: one prompt per line (empty lines skipped), each cut to its first C characters
 * (default 400; cut back to a UTF-8 character boundary), at most P prompts (default 8). Each is
 * tokenised like `cochlea generate` does (the GGUF's BOS rule).
 * LIST: comma-separated NAME[:NODES] (default "none,recycling,lookup"), NAME one of none,
 * recycling, lookup, aded, hybrid (set up as `cochlea generate --spec NAME` does); NODES the
 * tree size (default: the drafter's, as in `cochlea generate`).
 * Plain decoding ("none") always runs first and is the reference: every other method must give
 * the same tokens on every prompt (speculative-decoding.md §8.3 output gate), else the line says
 * so and the exit status is 1.
 *
 * Per method: a fresh drafter state, then every prompt once, greedy, N new tokens at most
 * (default 128; fewer when EOS comes first). Token Recycling (and hybrid's TR, and ADED's matrix)
 * keep their state from one prompt to the next (TR's hot start, recycling.h). One untimed plain warm-up run (16 tokens)
 * comes before everything. Times (CLOCK_MONOTONIC): the first verification step also runs the
 * prompt's prefill, so the decode rate counts the tokens after the first step over the time
 * after it: tok/s = sum(emitted - first step's) / sum(t_end - t_first_step). MAT = emitted /
 * verification steps (bonus tokens included, §0); acceptance = accepted draft tokens / drafted
 * nodes. Output: a table, and one line per method "method=.. key=value ..." for scripts.
 * --tokens-out writes the prompt tokens and plain decoding's tokens and times as JSON, for the
 * PyTorch side to decode the same prompts. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cochlea.h"
#include "ctx.h"
#include "lm/model.h"
#include "lm/spec/aded.h"
#include "lm/spec/draft.h"
#include "lm/spec/engine.h"
#include "lm/spec/hybrid.h"
#include "lm/spec/lookup.h"
#include "lm/spec/recycling.h"
#include "lm/vocab.h"

#define MAX_PROMPTS 256
#define MAX_METHODS 32

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(int rc, const char *what)
{
    fprintf(stderr, "speculative_bench: %s: %s\n", what,
            cochlea_last_error()[0] ? cochlea_last_error() : cochlea_strerror(rc));
    return 1;
}

/* A drafter as in src/cli/generate.c: state, lm_spec_drafter, default tree size. */
typedef struct method {
    char name[32];
    int64_t nodes; /* -1: the drafter's default */
    lm_spec_recycling *tr;
    lm_spec_lookup lk;
    lm_spec_aded *aded;
    lm_spec_hybrid hy;
    lm_spec_drafter d;
    int has_drafter;
    int draft_mode; /* 0, or 1 + an lm_spec_draft_mode: verified by speculative sampling with --draft-model */
} method;

/* --draft-model and --draft-depth, for the draft, draft-tree and rsd methods */
static const lm_model *g_draft;
static lm_kv *g_draft_kv;
static long g_draft_depth = -1;

/* The draft-model decoders' shape as `cochlea generate` sets it: --draft-depth, else
 * LM_SPEC_DEFAULT_DRAFT_DEPTH with trees branching at the root only. */
static void draft_shape(lm_spec_draft_params *dp)
{
    dp->depth = g_draft_depth > 0 ? (int32_t)g_draft_depth : LM_SPEC_DEFAULT_DRAFT_DEPTH;
    dp->wide = g_draft_depth > 0 ? (dp->wide > dp->depth ? dp->depth : dp->wide) : 1;
}

static int method_setup(method *me, int64_t n_vocab)
{
    int rc = COCHLEA_OK;
    int64_t def = 0;
    me->has_drafter = 0;
    me->draft_mode = 0;
    static const char *const dnames[] = {"draft", "draft-tree", "rsd"};
    for (int k = 0; k < 3; k++)
        if (!strcmp(me->name, dnames[k])) {
            if (!g_draft) {
                fprintf(stderr, "speculative_bench: method %s needs --draft-model FILE\n", me->name);
                return 1;
            }
            me->draft_mode = 1 + k; /* LM_SPEC_DRAFT_CHAIN, _TREE, _RSD */
            lm_spec_draft_params dp = lm_spec_draft_default_params((lm_spec_draft_mode)k);
            draft_shape(&dp);
            def = k == 0 ? dp.depth : lm_spec_draft_tree_size(&dp);
            if (me->nodes < 0)
                me->nodes = def;
            return 0;
        }
    if (!strcmp(me->name, "recycling")) {
        if ((rc = lm_spec_recycling_create(n_vocab, 8, 1, &me->tr)) != COCHLEA_OK ||
            (rc = lm_spec_recycling_drafter(me->tr, &me->d)) != COCHLEA_OK)
            return fail(rc, "Token Recycling");
        def = LM_SPEC_DEFAULT_NODES_RECYCLING;
        me->has_drafter = 1;
    } else if (!strcmp(me->name, "lookup")) {
        me->lk = lm_spec_lookup_default();
        if ((rc = lm_spec_lookup_drafter(&me->lk, &me->d)) != COCHLEA_OK)
            return fail(rc, "prompt lookup");
        def = LM_SPEC_DEFAULT_NODES_LOOKUP;
        me->has_drafter = 1;
    } else if (!strcmp(me->name, "aded")) {
        if ((rc = lm_spec_aded_create(n_vocab, NULL, &me->aded)) != COCHLEA_OK ||
            (rc = lm_spec_aded_drafter(me->aded, &me->d)) != COCHLEA_OK)
            return fail(rc, "ADED");
        def = LM_SPEC_DEFAULT_NODES_ADED;
        me->has_drafter = 1;
    } else if (!strcmp(me->name, "hybrid")) {
        if ((rc = lm_spec_recycling_create(n_vocab, 8, 0, &me->tr)) != COCHLEA_OK ||
            (rc = lm_spec_hybrid_init(&me->hy, NULL, me->tr)) != COCHLEA_OK ||
            (rc = lm_spec_hybrid_drafter(&me->hy, &me->d)) != COCHLEA_OK)
            return fail(rc, "hybrid");
        def = LM_SPEC_DEFAULT_NODES_HYBRID;
        me->has_drafter = 1;
    } else if (strcmp(me->name, "none")) {
        fprintf(stderr,
                "speculative_bench: unknown method '%s' (none, recycling, lookup, aded, hybrid, draft, draft-tree, rsd)\n",
                me->name);
        return 1;
    }
    if (me->nodes < 0)
        me->nodes = def;
    return 0;
}

typedef struct timing {
    double t0, t_first;
    int64_t n_first, n_total;
} timing;

static int on_emit(void *user, const int32_t *tok, int64_t n)
{
    timing *t = user;
    (void)tok;
    if (t->n_total == 0) {
        t->t_first = wall_s();
        t->n_first = n;
    }
    t->n_total += n;
    return COCHLEA_OK;
}

typedef struct result {
    int64_t n_out, n_after_first, steps, drafted, accepted;
    double total_s, decode_s;
} result;

/* Generate greedily from one prompt with method me (NULL drafter = plain) and time it. */
static int run_one(cochlea_ctx *ctx, const lm_model *m, lm_kv *kv, lm_work *w, method *me, int32_t eos, int64_t n,
                   const int32_t *prompt, int64_t n_prompt, int32_t *out, result *r)
{
    timing t = {0};
    lm_spec_params p = {n, eos, me->nodes, on_emit, &t};
    lm_spec_stats st;
    t.t0 = wall_s();
    int rc;
    if (me->draft_mode > 0) {
        /* NODES: the chain length for draft, the tree's node cap for draft-tree and rsd */
        lm_spec_draft_params dp = lm_spec_draft_default_params((lm_spec_draft_mode)(me->draft_mode - 1));
        dp.max_new = n;
        dp.eos = eos;
        dp.on_emit = on_emit;
        dp.user = &t;
        draft_shape(&dp);
        if (me->draft_mode - 1 == LM_SPEC_DRAFT_CHAIN)
            dp.depth = (int32_t)(me->nodes < 1 ? 1 : me->nodes > LM_SPEC_DRAFT_MAX_DEPTH ? LM_SPEC_DRAFT_MAX_DEPTH : me->nodes);
        else
            dp.max_nodes = me->nodes < 1 ? 1 : me->nodes > LM_SPEC_DRAFT_MAX_NODES ? LM_SPEC_DRAFT_MAX_NODES : me->nodes;
        rc = lm_spec_draft_generate(ctx, m, kv, g_draft, g_draft_kv, w, NULL, &dp, prompt, n_prompt, out, &r->n_out,
                                    &st);
    } else {
        rc = lm_spec_generate(ctx, m, kv, w, NULL, me->has_drafter ? &me->d : NULL, &p, prompt, n_prompt, out,
                              &r->n_out, &st);
    }
    double t1 = wall_s();
    if (rc != COCHLEA_OK)
        return fail(rc, "generation");
    r->steps = st.steps;
    r->drafted = st.drafted;
    r->accepted = st.accepted;
    r->total_s = t1 - t.t0;
    r->n_after_first = t.n_total - t.n_first;
    r->decode_s = t.n_total ? t1 - t.t_first : 0.0;
    return 0;
}

/* Lines of path, each cut to max_chars bytes at a UTF-8 boundary; at most max_n. */
static int read_prompts(const char *path, long max_chars, int max_n, char **prompts, int *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "speculative_bench: cannot open '%s': %s\n", path, strerror(errno));
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    *n = 0;
    while (*n < max_n && (len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0)
            continue;
        if (len > max_chars) {
            len = max_chars;
            while (len > 0 && ((unsigned char)line[len] & 0xc0) == 0x80) /* not inside a character */
                len--;
            line[len] = 0;
        }
        if (!(prompts[*n] = strdup(line))) {
            free(line);
            fclose(f);
            fprintf(stderr, "speculative_bench: out of memory\n");
            return 1;
        }
        (*n)++;
    }
    free(line);
    fclose(f);
    if (*n == 0) {
        fprintf(stderr, "speculative_bench: no prompt in '%s'\n", path);
        return 1;
    }
    return 0;
}

static int parse_methods(const char *list, method *ms, int *n_ms)
{
    char buf[512];
    if (strlen(list) >= sizeof buf) {
        fprintf(stderr, "speculative_bench: --methods too long\n");
        return 1;
    }
    strcpy(buf, list);
    *n_ms = 1; /* plain first, always */
    memset(&ms[0], 0, sizeof ms[0]);
    strcpy(ms[0].name, "none");
    ms[0].nodes = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        long nodes = -1;
        if (colon) {
            char *end;
            *colon = 0;
            errno = 0;
            nodes = strtol(colon + 1, &end, 10);
            if (errno || end == colon + 1 || *end || nodes < 0 || nodes > 4096) {
                fprintf(stderr, "speculative_bench: bad node count in --methods: '%s'\n", colon + 1);
                return 1;
            }
        }
        if (!strcmp(tok, "none"))
            continue; /* already first */
        if (*n_ms >= MAX_METHODS || strlen(tok) >= sizeof ms[0].name) {
            fprintf(stderr, "speculative_bench: too many methods or a name too long\n");
            return 1;
        }
        memset(&ms[*n_ms], 0, sizeof ms[0]);
        strcpy(ms[*n_ms].name, tok);
        ms[*n_ms].nodes = nodes;
        (*n_ms)++;
    }
    return 0;
}

static void write_ids(FILE *f, const int32_t *v, int64_t n)
{
    fputc('[', f);
    for (int64_t i = 0; i < n; i++)
        fprintf(f, "%s%d", i ? ", " : "", v[i]);
    fputc(']', f);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: speculative_bench MODEL PROMPTS.txt [-n N] [-t THREADS] [--ctx N] [--max-prompts P]\n"
                        "       [--prompt-chars C] [--methods none,recycling,lookup] [--tokens-out FILE.json]\n"
                        "       [--draft-model FILE --draft-depth D] [--reps R]\n");
        return 2;
    }
    const char *model_path = argv[1], *prompts_path = argv[2], *methods = "none,recycling,lookup", *tokens_out = NULL;
    const char *draft_path = NULL;
    long n_new = 128, threads = 1, n_ctx = 0, max_prompts = 8, prompt_chars = 400, reps = 1;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, "speculative_bench: option %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        long *dst = !strcmp(a, "-n")               ? &n_new
                    : !strcmp(a, "-t")             ? &threads
                    : !strcmp(a, "--ctx")          ? &n_ctx
                    : !strcmp(a, "--max-prompts")  ? &max_prompts
                    : !strcmp(a, "--prompt-chars") ? &prompt_chars
                    : !strcmp(a, "--draft-depth")  ? &g_draft_depth
                    : !strcmp(a, "--reps")         ? &reps
                                                   : NULL;
        if (dst) {
            char *end;
            errno = 0;
            *dst = strtol(v, &end, 10);
            if (errno || end == v || *end || *dst < 0 || *dst > (1L << 24)) {
                fprintf(stderr, "speculative_bench: bad value for %s: '%s'\n", a, v);
                return 2;
            }
        } else if (!strcmp(a, "--methods")) {
            methods = v;
        } else if (!strcmp(a, "--tokens-out")) {
            tokens_out = v;
        } else if (!strcmp(a, "--draft-model")) {
            draft_path = v;
        } else {
            fprintf(stderr, "speculative_bench: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (reps < 1)
        reps = 1;
    if (max_prompts < 1 || max_prompts > MAX_PROMPTS || prompt_chars < 1) {
        fprintf(stderr, "speculative_bench: --max-prompts must be 1..%d, --prompt-chars >= 1\n", MAX_PROMPTS);
        return 2;
    }
    method ms[MAX_METHODS];
    int n_ms = 0;
    if (parse_methods(methods, ms, &n_ms))
        return 2;

    int ret = 1, rc, n_prompts = 0;
    char *prompts[MAX_PROMPTS] = {0};
    lm_tokens toks[MAX_PROMPTS] = {{0}};
    lm_model *m = NULL, *dm = NULL;
    lm_vocab *voc = NULL;
    cochlea_ctx *ctx = NULL;
    lm_kv *kv = NULL;
    lm_work *w = NULL;
    int32_t *ref = NULL, *out = NULL;
    int64_t ref_n[MAX_PROMPTS];
    result ref_r[MAX_PROMPTS];
    FILE *tf = NULL;

    if (read_prompts(prompts_path, prompt_chars, (int)max_prompts, prompts, &n_prompts))
        goto done;
    if ((rc = lm_model_load(model_path, &m)) != COCHLEA_OK || (rc = lm_vocab_load(m->file, 0, &voc)) != COCHLEA_OK) {
        fail(rc, model_path);
        goto done;
    }
    if (n_ctx == 0)
        n_ctx = m->blocks->hp.n_ctx < 4096 ? m->blocks->hp.n_ctx : 4096;
    if (draft_path) {
        if ((rc = lm_model_load(draft_path, &dm)) != COCHLEA_OK) {
            fail(rc, draft_path);
            goto done;
        }
        if (dm->n_vocab != m->n_vocab) {
            fprintf(stderr, "speculative_bench: the draft model has %lld tokens, the model %lld\n",
                    (long long)dm->n_vocab, (long long)m->n_vocab);
            goto done;
        }
        if ((rc = lm_blocks_kv_create(dm->blocks, n_ctx, &g_draft_kv)) != COCHLEA_OK) {
            fail(rc, "the draft model's cache");
            goto done;
        }
        g_draft = dm;
    }
    int32_t eos = lm_vocab_eos(voc);
    if (eos < 0 || eos >= m->n_vocab)
        eos = -1;
    for (int i = 0; i < n_prompts; i++) {
        if ((rc = lm_vocab_encode(voc, prompts[i], strlen(prompts[i]), LM_VOCAB_ADD_SPECIAL, &toks[i])) != COCHLEA_OK) {
            fail(rc, "tokenizing a prompt");
            goto done;
        }
        if (toks[i].n == 0 || (int64_t)toks[i].n >= n_ctx) {
            fprintf(stderr, "speculative_bench: prompt %d has %zu tokens (context %ld)\n", i + 1, toks[i].n, n_ctx);
            goto done;
        }
    }
    size_t room = (size_t)(n_new > 0 ? n_new : 1);
    if (!(ref = calloc((size_t)n_prompts * room, sizeof *ref)) || !(out = calloc(room, sizeof *out))) {
        fprintf(stderr, "speculative_bench: out of memory\n");
        goto done;
    }
    if ((rc = ctx_create((int)threads, COCHLEA_PRECISION_F32, &ctx)) != COCHLEA_OK ||
        (rc = lm_blocks_kv_create(m->blocks, n_ctx, &kv)) != COCHLEA_OK || (rc = lm_work_create(&w)) != COCHLEA_OK) {
        fail(rc, "setting up the runtime");
        goto done;
    }
    printf("model %s: %lld layers, d %lld, vocab %lld; %d prompts (%zu-%zu tokens), up to %ld new tokens, "
           "%ld thread(s), greedy\n",
           model_path, (long long)m->blocks->hp.n_layer, (long long)m->blocks->hp.n_embd, (long long)m->n_vocab,
           n_prompts, toks[0].n, toks[n_prompts - 1].n, n_new, threads);
    { /* warm-up: page the weights in, size the scratch */
        method plain = {.name = "none", .nodes = 0};
        result r;
        int64_t nw = n_new < 16 ? n_new : 16;
        if (run_one(ctx, m, kv, w, &plain, eos, nw, toks[0].ids, (int64_t)toks[0].n, out, &r))
            goto done;
    }
    printf("%-16s %6s %8s %9s %9s %7s %7s %8s %s\n", "method", "nodes", "tokens", "decode_s", "tok/s", "MAT",
           "accept", "speedup", "identical");
    /* Interleaved: for each repetition and prompt, every method in turn (plain first), so that a
     * machine whose speed drifts (other load, clocks) slows all methods alike. Drafter state
     * (TR's matrix, ADED's) lives across prompts and repetitions, as in a server. */
    for (int k = 0; k < n_ms; k++)
        if (method_setup(&ms[k], m->n_vocab))
            goto done;
    static result sums[MAX_METHODS];
    static int sames[MAX_METHODS];
    memset(sums, 0, sizeof sums);
    memset(sames, 0, sizeof sames);
    for (long rep = 0; rep < reps; rep++) {
        for (int i = 0; i < n_prompts; i++) {
            for (int k = 0; k < n_ms; k++) {
                method *me = &ms[k];
                result r;
                if (run_one(ctx, m, kv, w, me, eos, n_new, toks[i].ids, (int64_t)toks[i].n, out, &r))
                    goto done;
                if (k == 0 && rep == 0) {
                    memcpy(ref + (size_t)i * room, out, (size_t)r.n_out * sizeof *out);
                    ref_n[i] = r.n_out;
                    ref_r[i] = r;
                }
                if (rep == 0)
                    sames[k] += r.n_out == ref_n[i] && !memcmp(out, ref + (size_t)i * room, (size_t)r.n_out * sizeof *out);
                result *sum = &sums[k];
                sum->n_out += r.n_out;
                sum->n_after_first += r.n_after_first;
                sum->steps += r.steps;
                sum->drafted += r.drafted;
                sum->accepted += r.accepted;
                sum->total_s += r.total_s;
                sum->decode_s += r.decode_s;
            }
        }
    }
    double plain_tps = 0.0;
    int all_same = 1;
    for (int k = 0; k < n_ms; k++) {
        method *me = &ms[k];
        const result *sum = &sums[k];
        int same = sames[k];
        double tps = sum->decode_s > 0 ? (double)sum->n_after_first / sum->decode_s : 0.0;
        if (k == 0)
            plain_tps = tps;
        double mat = sum->steps ? (double)sum->n_out / (double)sum->steps : 0.0;
        double acc = sum->drafted ? (double)sum->accepted / (double)sum->drafted : 0.0;
        double speedup = plain_tps > 0 ? tps / plain_tps : 0.0;
        printf("%-16s %6lld %8lld %9.3f %9.2f %7.3f %7.3f %7.2fx %d/%d%s\n", me->name, (long long)me->nodes,
               (long long)sum->n_out, sum->decode_s, tps, mat, acc, speedup, same, n_prompts,
               same == n_prompts ? "" : "  MISMATCH");
        printf("method=%s nodes=%lld tokens=%lld decode_tokens=%lld decode_s=%.6f total_s=%.6f tok_s=%.3f steps=%lld "
               "mat=%.4f drafted=%lld accepted=%lld acceptance=%.4f speedup=%.4f identical=%d/%d\n",
               me->name, (long long)me->nodes, (long long)sum->n_out, (long long)sum->n_after_first, sum->decode_s,
               sum->total_s, tps, (long long)sum->steps, mat, (long long)sum->drafted, (long long)sum->accepted, acc,
               speedup, same, n_prompts);
        fflush(stdout);
        all_same &= same == n_prompts;
    }
    if (tokens_out) {
        if (!(tf = fopen(tokens_out, "w"))) {
            fprintf(stderr, "speculative_bench: cannot write '%s': %s\n", tokens_out, strerror(errno));
            goto done;
        }
        fprintf(tf, "{\"model\": \"%s\", \"threads\": %ld, \"max_new\": %ld, \"eos\": %d, \"prompts\": [", model_path,
                threads, n_new, eos);
        for (int i = 0; i < n_prompts; i++) {
            fprintf(tf, "%s\n  {\"prompt\": ", i ? "," : "");
            write_ids(tf, toks[i].ids, (int64_t)toks[i].n);
            fprintf(tf, ", \"tokens\": ");
            write_ids(tf, ref + (size_t)i * room, ref_n[i]);
            fprintf(tf, ", \"decode_tokens\": %lld, \"decode_s\": %.6f, \"total_s\": %.6f}",
                    (long long)ref_r[i].n_after_first, ref_r[i].decode_s, ref_r[i].total_s);
        }
        fprintf(tf, "\n]}\n");
        int bad = ferror(tf);
        bad |= fclose(tf) != 0;
        tf = NULL;
        if (bad) {
            fprintf(stderr, "speculative_bench: write error on '%s'\n", tokens_out);
            goto done;
        }
    }
    if (!all_same)
        fprintf(stderr, "speculative_bench: a speculative decoder gave other tokens than plain decoding\n");
    ret = all_same ? 0 : 1;
done:
    for (int k = 0; k < n_ms; k++) {
        lm_spec_recycling_free(ms[k].tr);
        lm_spec_aded_free(ms[k].aded);
    }
    if (tf)
        fclose(tf);
    free(ref);
    free(out);
    lm_work_free(w);
    lm_kv_free(kv);
    ctx_free(ctx);
    for (int i = 0; i < n_prompts; i++) {
        lm_tokens_free(&toks[i]);
        free(prompts[i]);
    }
    lm_vocab_free(voc);
    lm_kv_free(g_draft_kv);
    lm_model_free(dm);
    lm_model_free(m);
    return ret;
}
