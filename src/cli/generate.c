/* generate.c - `cochlea generate`: text generation with a llama-architecture GGUF model on the
 * shared decoder runtime (src/lm), plain or with a lossless speculative decoder (issue 8). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "ctx.h"
#include "lm/model.h"
#include "lm/sampler.h"
#include "lm/spec/aded.h"
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
    "Speculative decoding is lossless: greedy output is identical to plain decoding, and seeded\n"
    "sampling gives the same text as plain seeded sampling.\n"
    "\n"
    "  -p, --prompt TEXT     the prompt\n"
    "  -f, --file FILE       read the prompt from FILE (- for standard input)\n"
    "  -n, --n-predict N     tokens to generate at most (default 128)\n"
    "  --spec NAME           none (default), recycling (Token Recycling), lookup (prompt lookup),\n"
    "                        aded (adaptive tri-gram matrix + tree search), hybrid (prompt\n"
    "                        lookup first, Token Recycling for the rest of the tree)\n"
    "  --nodes K             draft tree nodes per step at most (default: recycling 80, lookup 10,\n"
    "                        aded 64, hybrid 80)\n"
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
    const char *prompt, *prompt_file, *spec, *stats_json;
    long n_predict, nodes, n_ctx;
    lm_sampler_params sp;
    int seed_given, no_stream;
} opts;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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

static int parse(opts *o, int argc, char **argv)
{
    o->n_predict = 128;
    o->nodes = -1;
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
                                             "--repeat-penalty", "--repeat-last-n", "--seed", "--stats-json", NULL};
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
        }
    }
    if (!o->c.model)
        return cli_usage_error(CMD, "no model given (-m MODEL.gguf)");
    if (!o->prompt == !o->prompt_file)
        return cli_usage_error(CMD, "give the prompt with exactly one of -p TEXT or -f FILE");
    if (strcmp(o->spec, "none") && strcmp(o->spec, "recycling") && strcmp(o->spec, "lookup") && strcmp(o->spec, "aded") &&
        strcmp(o->spec, "hybrid"))
        return cli_usage_error(CMD, "unknown --spec '%s' (none, recycling, lookup, aded, hybrid)", o->spec);
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
        s->t_first = now_s();
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
    lm_spec_recycling *tr = NULL;
    lm_spec_aded *ad = NULL;
    lm_spec_hybrid hy;
    lm_spec_lookup lk = lm_spec_lookup_default();
    lm_spec_drafter drafter, *dp = NULL;
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
        cli_lib_error(rc, o.c.model);
        goto done;
    }
    if ((rc = lm_vocab_load(m->file, 0, &v)) != COCHLEA_OK) {
        cli_lib_error(rc, o.c.model);
        goto done;
    }
    if (lm_vocab_n_tokens(v) != m->n_vocab) {
        cli_error("%s: %s: the tokenizer has %d tokens but the model %lld", CMD, o.c.model,
                  (int)lm_vocab_n_tokens(v), (long long)m->n_vocab);
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
    const int greedy = o.sp.temperature <= 0.0f && o.sp.repeat_penalty == 1.0f;
    if (!greedy) {
        if ((rc = lm_sampler_create(&o.sp, m->n_vocab, &smp)) != COCHLEA_OK) {
            cli_lib_error(rc, "sampler");
            goto done;
        }
        for (size_t i = 0; i < toks.n; i++) /* the penalty sees the prompt, as in llama.cpp */
            lm_sampler_accept(smp, toks.ids[i]);
    }
    int64_t nodes = o.nodes;
    if (!strcmp(o.spec, "hybrid")) {
        lm_spec_hybrid_params hp = lm_spec_hybrid_default_params();
        if ((rc = lm_spec_recycling_create(m->n_vocab, 8, 0, &tr)) != COCHLEA_OK ||
            (rc = lm_spec_hybrid_init(&hy, &hp, tr)) != COCHLEA_OK || (rc = lm_spec_hybrid_drafter(&hy, &drafter)) != COCHLEA_OK) {
            cli_lib_error(rc, "hybrid drafter");
            goto done;
        }
        dp = &drafter;
        if (nodes < 0)
            nodes = tr->n_nodes;
    } else if (!strcmp(o.spec, "recycling")) {
        if ((rc = lm_spec_recycling_create(m->n_vocab, 8, 1, &tr)) != COCHLEA_OK ||
            (rc = lm_spec_recycling_drafter(tr, &drafter)) != COCHLEA_OK) {
            cli_lib_error(rc, "Token Recycling");
            goto done;
        }
        dp = &drafter;
        if (nodes < 0)
            nodes = tr->n_nodes;
    } else if (!strcmp(o.spec, "aded")) {
        if ((rc = lm_spec_aded_create(m->n_vocab, NULL, &ad)) != COCHLEA_OK ||
            (rc = lm_spec_aded_drafter(ad, &drafter)) != COCHLEA_OK) {
            cli_lib_error(rc, "ADED");
            goto done;
        }
        dp = &drafter;
        if (nodes < 0)
            nodes = 64;
    } else if (!strcmp(o.spec, "lookup")) {
        if ((rc = lm_spec_lookup_drafter(&lk, &drafter)) != COCHLEA_OK) {
            cli_lib_error(rc, "prompt lookup");
            goto done;
        }
        dp = &drafter;
        if (nodes < 0)
            nodes = lk.k;
    }
    if (nodes < 0)
        nodes = 0;
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
    double t0 = now_s();
    rc = lm_spec_generate(ctx, m, kv, w, smp, dp, &p, toks.ids, (int64_t)toks.n, out, &n_out, &st);
    double t1 = now_s();
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
    lm_spec_recycling_free(tr);
    lm_spec_aded_free(ad);
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
