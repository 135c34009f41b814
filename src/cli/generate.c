/* generate.c - `cochlea generate`: text generation with a llama-architecture GGUF model on the
 * shared decoder runtime (src/lm), plain or with a lossless speculative decoder (issue 8). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "progress.h"
#include "ctx.h"
#include "lm/model.h"
#include "lm/sampler.h"
#include "lm/spec/aded.h"
#include "lm/spec/draft.h"
#include "lm/spec/engine.h"
#include "lm/spec/hybrid.h"
#include "lm/spec/lookup.h"
#include "lm/spec/recycling.h"
#include "lm/vocab.h"

#define CMD "generate"

static const char usage[] =
    "usage: cochlea generate -m MODEL (-p PROMPT | -f FILE) [options]\n"
    "\n"
    "Generate text with a llama-architecture GGUF model (llama.cpp's keys and tensor names; F32,\n"
    "F16, BF16 or Q8_0 weights; SentencePiece or GPT-2 BPE tokenizer from tokenizer.ggml.*).\n"
    "The text is streamed to standard output; statistics go to standard error at the end.\n"
    "Speculative decoding is lossless: greedy output is identical to plain decoding; with the\n"
    "model-free drafters seeded sampling gives the same text as plain seeded sampling, and with\n"
    "a draft model sampling follows exactly the model's distribution (other draws, same law).\n"
    "\n"
    "  -p, --prompt TEXT     the prompt\n"
    "  -f, --file FILE       read the prompt from FILE (- for standard input)\n"
    "  -n, --n-predict N     tokens to generate at most (default 128)\n"
    "  --spec NAME           speculative decoder: none (default), recycling (Token Recycling),\n"
    "                        lookup (prompt lookup), aded (adaptive tri-gram matrix + tree search),\n"
    "                        hybrid (prompt lookup first, Token Recycling for the rest of the tree);\n"
    "                        with --draft-model: draft (a chain, speculative sampling), draft-tree\n"
    "                        (i.i.d. tree, multi-candidate rule), rsd (recursive speculative\n"
    "                        decoding: a tree sampled without replacement)\n"
    "  --nodes K             draft tree nodes per step at most (default 2 for recycling, lookup,\n"
    "                        aded and hybrid: fastest on a CPU for small models; see bench/README.md)\n"
    "  --draft-model FILE    the draft model for draft, draft-tree and rsd (same vocabulary)\n"
    "  --draft-depth D       draft tokens per branch for draft, draft-tree, rsd (default 2; trees\n"
    "                        then branch in two at the root: 4 nodes)\n"
    "  --ctx N               context (KV cache) size in tokens (default: the model's, at most 4096)\n"
    "  --temp T              temperature (default 0.8; 0 = greedy)\n"
    "  --top-k K             (default 40; 0 = off)\n"
    "  --top-p P             (default 0.95; 1 = off)\n"
    "  --min-p P             (default 0.05; 0 = off)\n"
    "  --repeat-penalty R    (default 1 = off)\n"
    "  --repeat-last-n N     tokens the penalty looks at (default 64; -1 = all)\n"
    "  --seed S              sampling seed (default: from the clock, printed with the statistics)\n"
    "  --no-stream           print the text only at the end\n"
    "  --stats-json FILE     write the token ids and the statistics as JSON\n"
    "  -t, --threads N       threads (default: all CPUs)\n"
    "  -q                    no statistics\n"
    "Sampling order and defaults follow llama.cpp: repetition penalty, top-k, top-p, min-p,\n"
    "temperature; the RNG is xoshiro256** seeded by splitmix64 (src/lm/sampler.h).\n";

static int run(int argc, char **argv);

const cli_command cli_cmd_generate = {
    CMD,
    "generate text with a llama GGUF model (plain or lossless speculative decoding)",
    usage,
    run,
};

typedef struct opts {
    cli_common c;
    const char *prompt, *prompt_file, *spec, *stats_json, *draft_model;
    long n_predict, nodes, n_ctx, draft_depth;
    lm_sampler_params sp;
    int seed_given, no_stream;
} opts;

static int parse_float_range(const char *opt, const char *val, double lo, double hi, float *out)
{
    double d;
    if (cli_parse_float(CMD, opt, val, &d))
        return -1;
    if (!(d >= lo && d <= hi)) {
        cli_usage_error(CMD, "%s must be in [%g, %g], got '%s'", opt, lo, hi, val);
        return -1;
    }
    *out = (float)d;
    return 0;
}

/* ---- drafters: one table entry per --spec name ----------------------------------------------
 * An entry's setup() creates its state and fills g->drafter (an lm_spec_drafter run by
 * lm_spec_generate) and g->default_nodes; an entry whose decoding does not go through the
 * drafter interface (a draft model verified by speculative sampling) sets `generate` instead.
 * Entries with needs_draft_model get g->draft / g->draft_kv loaded from --draft-model. */
typedef struct gen_state {
    cochlea_ctx *ctx;
    const lm_model *m;
    lm_kv *kv;
    lm_work *w;
    lm_sampler *smp;          /* NULL: greedy */
    const lm_model *draft;    /* --draft-model, for entries that need it */
    lm_kv *draft_kv;
    int64_t nodes;            /* --nodes, -1 when not given */
    int32_t draft_depth;      /* --draft-depth, -1 when not given */
    lm_spec_drafter drafter;  /* filled by setup (drafter interface) */
    int has_drafter;
    int64_t default_nodes;    /* --nodes when not given */
    void *state;              /* the drafter's state, released with free_state */
    void (*free_state)(void *state);
} gen_state;

typedef struct gen_spec {
    const char *name;
    int needs_draft_model;
    int (*setup)(gen_state *g); /* NULL: plain decoding */
    /* NULL: lm_spec_generate(.., g->has_drafter ? &g->drafter : NULL, ..) */
    int (*generate)(gen_state *g, const lm_spec_params *p, const int32_t *prompt, int64_t n_prompt, int32_t *out,
                    int64_t *n_out, lm_spec_stats *st);
} gen_spec;

static void free_recycling(void *state)
{
    lm_spec_recycling_free(state);
}

/* Token Recycling, k = 8 candidates per token, rows primed from the prompt prefill (§2.3). */
static int setup_recycling(gen_state *g)
{
    lm_spec_recycling *tr;
    int rc = lm_spec_recycling_create(g->m->n_vocab, 8, 1, &tr);
    if (rc != COCHLEA_OK)
        return rc;
    g->state = tr;
    g->free_state = free_recycling;
    g->default_nodes = LM_SPEC_DEFAULT_NODES_RECYCLING;
    g->has_drafter = 1;
    return lm_spec_recycling_drafter(tr, &g->drafter);
}

/* Prompt lookup with PLD's defaults (n-grams of 3 down to 1 token, chains of 10). */
static int setup_lookup(gen_state *g)
{
    lm_spec_lookup *lk = malloc(sizeof *lk);
    if (!lk)
        return err_set(COCHLEA_ENOMEM, "out of memory");
    *lk = lm_spec_lookup_default();
    g->state = lk;
    g->free_state = free;
    g->default_nodes = LM_SPEC_DEFAULT_NODES_LOOKUP;
    g->has_drafter = 1;
    return lm_spec_lookup_drafter(lk, &g->drafter);
}

static void free_aded(void *state)
{
    lm_spec_aded_free(state);
}

/* ADED with its default parameters (aded.h: tri-gram matrix, tree search); 64 nodes at most. */
static int setup_aded(gen_state *g)
{
    lm_spec_aded *a;
    int rc = lm_spec_aded_create(g->m->n_vocab, NULL, &a);
    if (rc != COCHLEA_OK)
        return rc;
    g->state = a;
    g->free_state = free_aded;
    g->default_nodes = LM_SPEC_DEFAULT_NODES_ADED;
    g->has_drafter = 1;
    return lm_spec_aded_drafter(a, &g->drafter);
}

typedef struct hybrid_state {
    lm_spec_recycling *tr;
    lm_spec_hybrid h;
} hybrid_state;

static void free_hybrid(void *state)
{
    hybrid_state *hs = state;
    if (hs)
        lm_spec_recycling_free(hs->tr);
    free(hs);
}

/* Prompt lookup, else Token Recycling (hybrid.h defaults; the TR rows are not primed from the
 * prompt) within the TR template's node budget. */
static int setup_hybrid(gen_state *g)
{
    hybrid_state *hs = calloc(1, sizeof *hs);
    if (!hs)
        return err_set(COCHLEA_ENOMEM, "out of memory");
    g->state = hs;
    g->free_state = free_hybrid;
    int rc = lm_spec_recycling_create(g->m->n_vocab, 8, 0, &hs->tr);
    if (rc != COCHLEA_OK || (rc = lm_spec_hybrid_init(&hs->h, NULL, hs->tr)) != COCHLEA_OK)
        return rc;
    g->default_nodes = LM_SPEC_DEFAULT_NODES_HYBRID;
    g->has_drafter = 1;
    return lm_spec_hybrid_drafter(&hs->h, &g->drafter);
}

/* A draft model verified by speculative sampling (draft.h): chain (§5.1), i.i.d. tree (§5.3) or
 * RSD (§4), with draft.h's default tree shape; --nodes caps the tree. */
static int gen_draft_mode(gen_state *g, lm_spec_draft_mode mode, const lm_spec_params *p, const int32_t *prompt,
                          int64_t n_prompt, int32_t *out, int64_t *n_out, lm_spec_stats *st)
{
    lm_spec_draft_params dp = lm_spec_draft_default_params(mode);
    dp.max_new = p->max_new;
    dp.eos = p->eos;
    /* default: depth LM_SPEC_DEFAULT_DRAFT_DEPTH; trees branch at the root only (2 + 2 nodes) */
    dp.depth = g->draft_depth > 0 ? g->draft_depth : LM_SPEC_DEFAULT_DRAFT_DEPTH;
    dp.wide = g->draft_depth > 0 ? (dp.wide > dp.depth ? dp.depth : dp.wide) : 1;
    if (g->nodes > 0)
        dp.max_nodes = g->nodes < LM_SPEC_DRAFT_MAX_NODES ? g->nodes : LM_SPEC_DRAFT_MAX_NODES;
    dp.on_emit = p->on_emit;
    dp.user = p->user;
    return lm_spec_draft_generate(g->ctx, g->m, g->kv, g->draft, g->draft_kv, g->w, g->smp, &dp, prompt, n_prompt,
                                  out, n_out, st);
}
#define GEN_DRAFT(fn, mode)                                                                                          \
    static int fn(gen_state *g, const lm_spec_params *p, const int32_t *pr, int64_t n, int32_t *o, int64_t *no,   \
                  lm_spec_stats *st)                                                                                \
    {                                                                                                                \
        return gen_draft_mode(g, mode, p, pr, n, o, no, st);                                                         \
    }
GEN_DRAFT(gen_draft_chain, LM_SPEC_DRAFT_CHAIN)
GEN_DRAFT(gen_draft_tree, LM_SPEC_DRAFT_TREE)
GEN_DRAFT(gen_draft_rsd, LM_SPEC_DRAFT_RSD)

static const gen_spec gen_specs[] = {
    {"none", 0, NULL, NULL},
    {"recycling", 0, setup_recycling, NULL},
    {"lookup", 0, setup_lookup, NULL},
    {"aded", 0, setup_aded, NULL},
    {"hybrid", 0, setup_hybrid, NULL},
    {"draft", 1, NULL, gen_draft_chain},
    {"draft-tree", 1, NULL, gen_draft_tree},
    {"rsd", 1, NULL, gen_draft_rsd},
};
#define N_GEN_SPECS (sizeof gen_specs / sizeof gen_specs[0])

static const gen_spec *find_spec(const char *name)
{
    for (size_t i = 0; i < N_GEN_SPECS; i++)
        if (!strcmp(gen_specs[i].name, name))
            return &gen_specs[i];
    return NULL;
}

/* "none, recycling, lookup" (for messages). */
static const char *spec_names(void)
{
    static char buf[256];
    size_t n = 0;
    buf[0] = 0;
    for (size_t i = 0; i < N_GEN_SPECS && n < sizeof buf; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? ", " : "", gen_specs[i].name);
    return buf;
}

/* cli_lib_error naming `path` unless the library's message already does. */
static int lib_error_path(int rc, const char *path)
{
    return cli_lib_error(rc, strstr(cochlea_last_error(), path) ? "" : path);
}

static int parse(opts *o, int argc, char **argv)
{
    o->n_predict = 128;
    o->nodes = -1;
    o->draft_depth = -1;
    o->spec = "none";
    o->sp = lm_sampler_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_parse_common(&o->c, CMD, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (strcmp(a, "--no-stream") == 0) {
            o->no_stream = 1;
            continue;
        }
        static const char *const valued[] = {"-p", "--prompt", "-f", "--file", "-n", "--n-predict", "--spec",
                                             "--nodes", "--ctx", "--temp", "--top-k", "--top-p", "--min-p",
                                             "--repeat-penalty", "--repeat-last-n", "--seed", "--stats-json",
                                             "--draft-model", "--draft-depth", NULL};
        int known = 0;
        for (int k = 0; valued[k]; k++)
            known |= strcmp(a, valued[k]) == 0;
        if (!known)
            return cli_usage_error(CMD, "unknown option '%s'", a);
        if (i + 1 >= argc)
            return cli_usage_error(CMD, "option %s needs a value", a);
        const char *val = argv[++i];
        long v;
        if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            o->prompt = val;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            o->prompt_file = val;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (cli_parse_int(CMD, a, val, 0, 1L << 30, &o->n_predict))
                return 2;
        } else if (!strcmp(a, "--spec")) {
            o->spec = val;
        } else if (!strcmp(a, "--nodes")) {
            if (cli_parse_int(CMD, a, val, 0, 4096, &o->nodes))
                return 2;
        } else if (!strcmp(a, "--ctx")) {
            if (cli_parse_int(CMD, a, val, 1, 1L << 24, &o->n_ctx))
                return 2;
        } else if (!strcmp(a, "--temp")) {
            if (parse_float_range(a, val, 0.0, 100.0, &o->sp.temperature))
                return 2;
        } else if (!strcmp(a, "--top-k")) {
            if (cli_parse_int(CMD, a, val, 0, INT32_MAX, &v))
                return 2;
            o->sp.top_k = (int32_t)v;
        } else if (!strcmp(a, "--top-p")) {
            if (parse_float_range(a, val, 1e-6, 1.0, &o->sp.top_p))
                return 2;
        } else if (!strcmp(a, "--min-p")) {
            if (parse_float_range(a, val, 0.0, 1.0, &o->sp.min_p))
                return 2;
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (parse_float_range(a, val, 1e-3, 1e3, &o->sp.repeat_penalty))
                return 2;
        } else if (!strcmp(a, "--repeat-last-n")) {
            if (cli_parse_int(CMD, a, val, -1, INT32_MAX, &v))
                return 2;
            o->sp.repeat_last_n = (int32_t)v;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(val, &end, 10);
            if (end == val || *end || errno || val[0] == '-')
                return cli_usage_error(CMD, "--seed needs a non-negative integer, got '%s'", val);
            o->sp.seed = (uint64_t)s;
            o->seed_given = 1;
        } else if (!strcmp(a, "--stats-json")) {
            o->stats_json = val;
        } else if (!strcmp(a, "--draft-model")) {
            o->draft_model = val;
        } else if (!strcmp(a, "--draft-depth")) {
            if (cli_parse_int(CMD, a, val, 1, LM_SPEC_DRAFT_MAX_DEPTH, &o->draft_depth))
                return 2;
        }
    }
    if (!o->c.model)
        return cli_usage_error(CMD, "no model given (-m MODEL.gguf)");
    if (!o->prompt == !o->prompt_file)
        return cli_usage_error(CMD, "give the prompt with exactly one of -p TEXT or -f FILE");
    if (o->prompt && !o->prompt[0])
        return cli_usage_error(CMD, "the prompt is empty");
    const gen_spec *gs = find_spec(o->spec);
    if (!gs)
        return cli_usage_error(CMD, "unknown --spec '%s' (valid: %s)", o->spec, spec_names());
    if (gs->needs_draft_model && !o->draft_model)
        return cli_usage_error(CMD, "--spec %s needs --draft-model FILE", o->spec);
    if (!gs->needs_draft_model && o->draft_model)
        return cli_usage_error(CMD, "--draft-model is not used by --spec %s", o->spec);
    if (!gs->needs_draft_model && o->draft_depth > 0)
        return cli_usage_error(CMD, "--draft-depth is not used by --spec %s", o->spec);
    return 0;
}

/* The whole of FILE (or standard input) as a NUL-terminated string. */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        cli_error("%s: cannot open '%s': %s", CMD, path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *q = realloc(buf, cap * 2);
            if (!q) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = q;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (!buf || bad) {
        free(buf);
        cli_error("%s: cannot read '%s'%s", CMD, path, buf ? "" : ": out of memory");
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

typedef struct streamer {
    const lm_vocab *v;
    lm_vocab_stream st;
    int stream, eos;
    double t_first;
    int64_t n_first, n_total;
} streamer;

static int on_emit(void *user, const int32_t *tok, int64_t n)
{
    streamer *s = user;
    if (s->n_total == 0) {
        s->t_first = progress_now();
        s->n_first = n;
    }
    s->n_total += n;
    if (!s->stream)
        return COCHLEA_OK;
    for (int64_t i = 0; i < n; i++) {
        if (tok[i] == s->eos)
            continue;
        const char *p;
        size_t len;
        int rc = lm_vocab_stream_push(s->v, &s->st, tok[i], &p, &len);
        if (rc != COCHLEA_OK)
            return rc;
        if (len && fwrite(p, 1, len, stdout) != len)
            return err_set(COCHLEA_EIO, "writing to standard output failed");
    }
    fflush(stdout);
    return COCHLEA_OK;
}

static int write_stats_json(const char *path, const int32_t *prompt, int64_t n_prompt, const int32_t *out,
                            int64_t n_out, const lm_spec_stats *st, const char *spec, double secs, double tps,
                            unsigned long long seed, int greedy)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return cli_error("%s: cannot write '%s': %s", CMD, path, strerror(errno));
    fprintf(f, "{\"spec\": \"%s\", \"greedy\": %s, \"seed\": %llu, \"prompt_tokens\": %lld, \"prompt\": [", spec,
            greedy ? "true" : "false", seed, (long long)n_prompt);
    for (int64_t i = 0; i < n_prompt; i++)
        fprintf(f, "%s%d", i ? ", " : "", prompt[i]);
    fprintf(f, "], \"generated_tokens\": %lld, \"tokens\": [", (long long)n_out);
    for (int64_t i = 0; i < n_out; i++)
        fprintf(f, "%s%d", i ? ", " : "", out[i]);
    fprintf(f,
            "], \"steps\": %lld, \"drafted\": %lld, \"accepted\": %lld, \"mean_accepted_per_step\": %.6f, "
            "\"acceptance_rate\": %.6f, \"seconds\": %.6f, \"tokens_per_second\": %.3f}\n",
            (long long)st->steps, (long long)st->drafted, (long long)st->accepted, st->mat,
            st->drafted ? (double)st->accepted / (double)st->drafted : 0.0, secs, tps);
    if (fclose(f) != 0)
        return cli_error("%s: cannot write '%s': %s", CMD, path, strerror(errno));
    return 0;
}

static int run(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) {
            cli_print_usage(&cli_cmd_generate);
            return 0;
        }
    opts o = {0};
    int rc = parse(&o, argc, argv);
    if (rc)
        return rc;
    cli_setup_logging(&o.c);
    if (!o.seed_given)
        o.sp.seed = (uint64_t)time(NULL);

    int ret = 1;
    char *text = NULL, *owned_text = NULL;
    size_t text_len = 0;
    lm_model *m = NULL;
    lm_vocab *v = NULL;
    lm_tokens toks = {0};
    cochlea_ctx *ctx = NULL;
    lm_kv *kv = NULL;
    lm_work *w = NULL;
    lm_sampler *smp = NULL;
    lm_model *dm = NULL;
    lm_kv *dkv = NULL;
    gen_state g = {0};
    const gen_spec *gs = find_spec(o.spec);
    int32_t *out = NULL;
    streamer s = {0};
    lm_vocab_stream_init(&s.st, 0);

    if (o.prompt) {
        text = (char *)o.prompt;
        text_len = strlen(text);
    } else {
        if (!(owned_text = read_all(o.prompt_file, &text_len)))
            goto done;
        text = owned_text;
    }
    if ((rc = lm_model_load(o.c.model, &m)) != COCHLEA_OK) {
        lib_error_path(rc, o.c.model);
        goto done;
    }
    if ((rc = lm_vocab_load(m->file, 0, &v)) != COCHLEA_OK) {
        lib_error_path(rc, o.c.model);
        goto done;
    }
    if (lm_vocab_n_tokens(v) != m->n_vocab) {
        cli_error("%s: %s: the tokenizer has %d tokens but the model %lld", CMD, o.c.model,
                  (int)lm_vocab_n_tokens(v), (long long)m->n_vocab);
        goto done;
    }
    if (text_len == 0) {
        cli_error("%s: the prompt is empty", CMD);
        goto done;
    }
    if ((rc = lm_vocab_encode(v, text, text_len, LM_VOCAB_ADD_SPECIAL, &toks)) != COCHLEA_OK) {
        cli_lib_error(rc, "tokenizing the prompt");
        goto done;
    }
    if (toks.n == 0) {
        cli_error("%s: the prompt is empty (and the model adds no BOS token)", CMD);
        goto done;
    }
    int64_t n_ctx = o.n_ctx;
    if (n_ctx == 0) {
        n_ctx = m->blocks->hp.n_ctx;
        if (n_ctx > 4096)
            n_ctx = 4096;
    }
    if ((int64_t)toks.n >= n_ctx) {
        cli_error("%s: the prompt has %zu tokens and leaves no room in a context of %lld (--ctx)", CMD, toks.n,
                  (long long)n_ctx);
        goto done;
    }
    if ((rc = ctx_create(o.c.threads, COCHLEA_PRECISION_F32, &ctx)) != COCHLEA_OK ||
        (rc = lm_blocks_kv_create(m->blocks, n_ctx, &kv)) != COCHLEA_OK || (rc = lm_work_create(&w)) != COCHLEA_OK) {
        cli_lib_error(rc, "setting up the runtime");
        goto done;
    }
    /* --temp 0 is greedy; a sampler is still needed when a repetition penalty changes the argmax */
    const int greedy = o.sp.temperature <= 0.0f;
    if (!greedy || o.sp.repeat_penalty != 1.0f) {
        if ((rc = lm_sampler_create(&o.sp, m->n_vocab, &smp)) != COCHLEA_OK) {
            cli_lib_error(rc, "sampler");
            goto done;
        }
        for (size_t i = 0; i < toks.n; i++) /* the penalty sees the prompt, as in llama.cpp */
            if ((rc = lm_sampler_accept(smp, toks.ids[i])) != COCHLEA_OK) {
                cli_lib_error(rc, "sampler");
                goto done;
            }
    }
    if (gs->needs_draft_model) {
        if ((rc = lm_model_load(o.draft_model, &dm)) != COCHLEA_OK) {
            lib_error_path(rc, o.draft_model);
            goto done;
        }
        if (dm->n_vocab != m->n_vocab) {
            cli_error("%s: the draft model %s has %lld tokens but the model %lld", CMD, o.draft_model,
                      (long long)dm->n_vocab, (long long)m->n_vocab);
            goto done;
        }
        if ((rc = lm_blocks_kv_create(dm->blocks, n_ctx, &dkv)) != COCHLEA_OK) {
            cli_lib_error(rc, "setting up the draft model");
            goto done;
        }
    }
    g = (gen_state){.ctx = ctx, .m = m, .kv = kv, .w = w, .smp = smp, .draft = dm, .draft_kv = dkv,
                    .nodes = o.nodes, .draft_depth = (int32_t)o.draft_depth};
    if (gs->setup && (rc = gs->setup(&g)) != COCHLEA_OK) {
        cli_lib_error(rc, o.spec);
        goto done;
    }
    int64_t nodes = o.nodes >= 0 ? o.nodes : g.default_nodes;
    int32_t eos = lm_vocab_eos(v);
    if (eos < 0)
        eos = lm_vocab_eot(v);
    if (eos >= m->n_vocab)
        eos = -1;
    size_t n_alloc = o.n_predict > 0 ? (size_t)o.n_predict : 1;
    if (!(out = malloc(n_alloc * sizeof *out))) {
        cli_error("%s: out of memory", CMD);
        goto done;
    }
    s.v = v;
    s.stream = !o.no_stream;
    s.eos = eos;
    lm_spec_params p = {o.n_predict, eos, nodes, on_emit, &s};
    lm_spec_stats st;
    int64_t n_out = 0;
    double t0 = progress_now();
    if (gs->generate)
        rc = gs->generate(&g, &p, toks.ids, (int64_t)toks.n, out, &n_out, &st);
    else
        rc = lm_spec_generate(ctx, m, kv, w, smp, g.has_drafter ? &g.drafter : NULL, &p, toks.ids, (int64_t)toks.n,
                              out, &n_out, &st);
    double t1 = progress_now();
    if (rc != COCHLEA_OK) {
        if (s.stream)
            fputc('\n', stdout);
        cli_lib_error(rc, "generation");
        goto done;
    }
    const char *tail;
    size_t tail_len;
    if (o.no_stream) {
        char *all = NULL;
        size_t all_len = 0;
        int64_t n_text = n_out > 0 && out[n_out - 1] == eos ? n_out - 1 : n_out;
        if ((rc = lm_vocab_decode(v, out, (size_t)n_text, 0, &all, &all_len)) != COCHLEA_OK) {
            cli_lib_error(rc, "decoding");
            goto done;
        }
        fwrite(all, 1, all_len, stdout);
        free(all);
    } else if (lm_vocab_stream_flush(&s.st, &tail, &tail_len) == COCHLEA_OK && tail_len) {
        fwrite(tail, 1, tail_len, stdout);
    }
    fputc('\n', stdout);
    if (fflush(stdout) != 0) {
        cli_error("%s: writing to standard output failed", CMD);
        goto done;
    }
    /* generation rate: the tokens after the first step (which also carries the prompt's prefill) */
    const double gen_s = s.n_total > s.n_first ? t1 - s.t_first : 0.0;
    const double tps = gen_s > 0 ? (double)(s.n_total - s.n_first) / gen_s : 0.0;
    if (!o.c.quiet) {
        fprintf(stderr,
                "cochlea generate: prompt %zu tokens, generated %lld tokens in %.3f s (first step, with the prompt: "
                "%.3f s; then %.2f tokens/s)\n",
                toks.n, (long long)n_out, t1 - t0, s.n_total ? s.t_first - t0 : t1 - t0, tps);
        char mode[64];
        if (greedy)
            snprintf(mode, sizeof mode, "greedy");
        else
            snprintf(mode, sizeof mode, "sampling, seed %llu", (unsigned long long)o.sp.seed);
        fprintf(stderr,
                "cochlea generate: %s, %s: %lld verification steps, %.3f tokens per step, acceptance rate %.3f "
                "(%lld of %lld drafted)\n",
                o.spec, mode, (long long)st.steps, st.mat, st.drafted ? (double)st.accepted / (double)st.drafted : 0.0,
                (long long)st.accepted, (long long)st.drafted);
    }
    if (o.stats_json && write_stats_json(o.stats_json, toks.ids, (int64_t)toks.n, out, n_out, &st, o.spec, t1 - t0,
                                         tps, (unsigned long long)o.sp.seed, greedy))
        goto done;
    ret = 0;
done:
    free(out);
    lm_vocab_stream_free(&s.st);
    if (g.free_state)
        g.free_state(g.state);
    lm_kv_free(dkv);
    lm_model_free(dm);
    lm_sampler_free(smp);
    lm_work_free(w);
    lm_kv_free(kv);
    ctx_free(ctx);
    lm_tokens_free(&toks);
    lm_vocab_free(v);
    lm_model_free(m);
    free(owned_text);
    return ret;
}
