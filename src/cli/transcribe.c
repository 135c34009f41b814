/* transcribe.c - `cochlea transcribe`: speech recognition / translation / language ID with an
 * OWSM-CTC model, with timestamps and txt/srt/vtt/json/tsv output. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "asr/lang.h"
#include "asr/timestamps.h"
#include "asr/writers.h"
#include "cli.h"
#include "frontend/fbank.h"
#include "model_path.h"
#include "progress.h"

#define CMD "transcribe"
#define MAX_INPUTS 4096
#define MAX_CANDIDATES 151

static const char usage[] =
    "usage: cochlea transcribe [-m MODEL] [options] FILE...\n"
    "\n"
    "Recognise (or translate) speech with an OWSM-CTC model. Any audio format libsndfile reads is\n"
    "accepted (- reads standard input) and resampled to the model's rate. Audio up to one window\n"
    "(the model's speech_length: 30 s for the released models) is one window; longer audio is\n"
    "decoded in overlapping windows (ESPnet's long-form slicing).\n"
    "Several files are decoded in one run with the model loaded once.\n"
    "\n"
    "  -m, --model FILE       OWSM-CTC model (.gguf, from tools/convert_owsm_ctc.py); default: the\n"
    "                         embedded owsm-ctc-tiny model, see README ($COCHLEA_MODEL overrides\n"
    "                         it; -v names the file used)\n"
    "  -l, --lang LANG        source language: eng, en, english, <eng>...; auto (default) decodes\n"
    "                         with <nolang> and the model names the language itself\n"
    "  --task asr|st|st_XXX   recognition (default) or translation\n"
    "  --target LANG          translation target (deu, de, german...; implies --task st)\n"
    "  --prompt TEXT          previous-text prompt (default: none, <na>)\n"
    "  --detect-language      print the 5 most likely languages of each file (first 30 s) and stop\n"
    "  --lang-candidates L,L  restrict --detect-language to these languages\n"
    "  --list-languages       print the languages and translation targets (of -m, if given)\n"
    "  -f, --format FMT       txt, srt, vtt, json or tsv (repeatable); without -o one format for\n"
    "                         one input goes to stdout, otherwise to files named after each input\n"
    "                         (talk.wav -> talk.srt)\n"
    "  -o, --output STEM      write STEM.FMT for each format (one input file only)\n"
    "  --max-len N            subtitle segments of at most N characters (default 42; 0: no limit)\n"
    "  --max-duration S       subtitle segments of at most S seconds (default 6; 0: no limit)\n"
    "  --split-gap S          start a new segment after S seconds without speech (default 0.8)\n"
    "  --print-special        plain output: ESPnet's `text` (with <lang><task> symbols) instead\n"
    "                         of `text_nospecial`\n"
    "  --beam-size N          CTC prefix beam search with N prefixes and the language model\n"
    "                         (default: the model's setting when it embeds an LM, e.g. 8 for\n"
    "                         the default model; 1: greedy, as ESPnet decodes)\n"
    "  --lm FILE.arpa         token n-gram LM over the model's pieces, instead of the embedded one\n"
    "  --no-lm                beam search without a language model\n"
    "  --lm-weight W          weight of the LM's natural-log probabilities (default: the model's)\n"
    "  --insertion-bonus B    added per emitted piece (default: the model's)\n"
    "  --precision P          f32 (default), bf16 or int8 matrix products\n"
    "  --batch N              30 s windows per forward pass (default 1)\n"
    "  --context S            long-form context in seconds on each side of a window (default 4 for\n"
    "                         30 s windows, 2/15 of the window for shorter ones)\n"
    "  --features F.npy       run on one window of normalised log-mel features [frames, n_mels]\n"
    "                         instead of audio (for parity checks)\n"
    "  --output-posteriors F  write the CTC log-posteriors, float32 .npy [windows, positions, vocab]\n"
    "  --output-encoder F     write the encoder output, float32 .npy [windows, positions, d]\n"
    "  --repeat N             run the recognition N times on the loaded model and report each\n"
    "                         run's time and the median (benchmarking; the text is printed once)\n"
    "  -t, --threads N        threads (default: all CPUs)\n"
    "  -q                     print only the results\n";

static int run(int argc, char **argv);

const cli_command cli_cmd_transcribe = {
    CMD,
    "speech to text, translation and language ID with an OWSM-CTC model",
    usage,
    run,
};

typedef struct opts {
    cli_common c;
    const char *inputs[MAX_INPUTS];
    int n_inputs;
    const char *lang, *task, *target, *prompt, *features, *out_post, *out_enc, *candidates, *lm;
    int print_special, batch, repeat, detect, list_langs, beam, no_lm;
    double lm_weight, bonus;
    int formats[5], n_formats;
    double context, max_duration, split_gap;
    long max_len;
    enum cochlea_precision precision;
    char default_model[4096]; /* the default model's path when -m is not given */
} opts;

static int needs_value(const char *a)
{
    static const char *const with_value[] = {"-l", "--lang", "--task", "--target", "--prompt", "--precision",
                                             "--batch", "--context", "--features", "--output-posteriors",
                                             "--output-encoder", "--repeat", "-f", "--format",
                                             "--lang-candidates", "--max-len", "--max-duration", "--split-gap",
                                             "--beam-size", "--lm", "--lm-weight", "--insertion-bonus"};
    for (size_t i = 0; i < sizeof with_value / sizeof *with_value; i++)
        if (strcmp(a, with_value[i]) == 0)
            return 1;
    return 0;
}

/* No -m: the default model (model_path.h), into o->c.model; 0, or 2 (usage error printed). */
static int find_default_model(opts *o)
{
    model_path_search s;
    int st = model_path_find(MODEL_PATH_DEFAULT_NAME, &s);
    if (st == MODEL_PATH_ENV_MISSING)
        return cli_usage_error(CMD, "%s=%s: %s; point it at an OWSM-CTC .gguf file, unset it, or pass -m MODEL.gguf",
                               MODEL_PATH_ENV, s.path, access(s.path, F_OK) == 0 ? "not a regular file" : "no such file");
    if (st != MODEL_PATH_FOUND) {
        fprintf(stderr, "cochlea: error: no model given (-m) and the default model %s was not found; tried:\n",
                MODEL_PATH_DEFAULT_NAME);
        for (int i = 0; i < s.n_tried; i++)
            fprintf(stderr, "  %s\n", s.tried[i]);
        fprintf(stderr, "pass -m MODEL.gguf (or set %s=MODEL.gguf)\n(run 'cochlea help %s' for usage)\n",
                MODEL_PATH_ENV, CMD);
        return 2;
    }
    snprintf(o->default_model, sizeof o->default_model, "%s", s.path);
    o->c.model = o->default_model;
    if (o->c.verbose)
        fprintf(stderr, "cochlea: %s: model: %s (default)\n", CMD, o->c.model);
    return 0;
}

static int parse(opts *o, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_parse_common(&o->c, CMD, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (needs_value(a)) {
            if (i + 1 >= argc)
                return cli_usage_error(CMD, "option %s needs a value", a);
            const char *v = argv[++i];
            long n;
            if (strcmp(a, "-l") == 0 || strcmp(a, "--lang") == 0)
                o->lang = v;
            else if (strcmp(a, "--task") == 0)
                o->task = v;
            else if (strcmp(a, "--target") == 0)
                o->target = v;
            else if (strcmp(a, "--prompt") == 0)
                o->prompt = v;
            else if (strcmp(a, "--features") == 0)
                o->features = v;
            else if (strcmp(a, "--output-posteriors") == 0)
                o->out_post = v;
            else if (strcmp(a, "--output-encoder") == 0)
                o->out_enc = v;
            else if (strcmp(a, "--lang-candidates") == 0)
                o->candidates = v;
            else if (strcmp(a, "--lm") == 0)
                o->lm = v;
            else if (strcmp(a, "--beam-size") == 0) {
                if (cli_parse_int(CMD, a, v, 1, 1024, &n))
                    return 2;
                o->beam = (int)n;
            } else if (strcmp(a, "--lm-weight") == 0 || strcmp(a, "--insertion-bonus") == 0) {
                double x;
                if (cli_parse_float(CMD, a, v, &x))
                    return 2;
                if (strcmp(a, "--lm-weight") == 0) {
                    if (!(x >= 0 && x <= 100))
                        return cli_usage_error(CMD, "--lm-weight must be in [0, 100], got %s", v);
                    o->lm_weight = x;
                } else {
                    if (!(x >= -100 && x <= 100))
                        return cli_usage_error(CMD, "--insertion-bonus must be in [-100, 100], got %s", v);
                    o->bonus = x;
                }
            }
            else if (strcmp(a, "-f") == 0 || strcmp(a, "--format") == 0) {
                enum tr_format f;
                if (tr_format_parse(v, &f))
                    return cli_usage_error(CMD, "%s", cochlea_last_error());
                if (!o->formats[f])
                    o->n_formats++;
                o->formats[f] = 1;
            } else if (strcmp(a, "--repeat") == 0) {
                if (cli_parse_int(CMD, a, v, 1, 1000, &n))
                    return 2;
                o->repeat = (int)n;
            } else if (strcmp(a, "--batch") == 0) {
                if (cli_parse_int(CMD, a, v, 1, 256, &n))
                    return 2;
                o->batch = (int)n;
            } else if (strcmp(a, "--max-len") == 0) {
                if (cli_parse_int(CMD, a, v, 0, 100000, &o->max_len))
                    return 2;
            } else if (strcmp(a, "--max-duration") == 0 || strcmp(a, "--split-gap") == 0 ||
                       strcmp(a, "--context") == 0) {
                double x;
                if (cli_parse_float(CMD, a, v, &x))
                    return 2;
                if (strcmp(a, "--context") == 0) {
                    if (!(x >= 0 && x < 15))
                        return cli_usage_error(CMD, "--context must be in [0, 15) seconds, got %s", v);
                    o->context = x;
                } else {
                    if (!(x >= 0 && x <= 1e6))
                        return cli_usage_error(CMD, "%s must be a number of seconds >= 0, got %s", a, v);
                    if (strcmp(a, "--max-duration") == 0)
                        o->max_duration = x;
                    else
                        o->split_gap = x;
                }
            } else {
                if (strcmp(v, "f32") == 0)
                    o->precision = COCHLEA_PRECISION_F32;
                else if (strcmp(v, "bf16") == 0)
                    o->precision = COCHLEA_PRECISION_BF16;
                else if (strcmp(v, "int8") == 0)
                    o->precision = COCHLEA_PRECISION_INT8;
                else
                    return cli_usage_error(CMD, "--precision expects f32, bf16 or int8, got '%s'", v);
            }
        } else if (strcmp(a, "--no-lm") == 0) {
            o->no_lm = 1;
        } else if (strcmp(a, "--print-special") == 0) {
            o->print_special = 1;
        } else if (strcmp(a, "--detect-language") == 0) {
            o->detect = 1;
        } else if (strcmp(a, "--list-languages") == 0) {
            o->list_langs = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        } else {
            if (o->n_inputs >= MAX_INPUTS)
                return cli_usage_error(CMD, "more than %d input files", MAX_INPUTS);
            o->inputs[o->n_inputs++] = a;
        }
    }
    if (o->list_langs)
        return 0;
    if (!o->n_inputs && !o->features)
        return cli_usage_error(CMD, "no input file given");
    if (o->n_inputs && o->features)
        return cli_usage_error(CMD, "give either audio files or --features, not both");
    if (o->c.output && o->n_inputs > 1)
        return cli_usage_error(CMD, "-o STEM names the output of one input file; %d were given", o->n_inputs);
    if (o->c.output && !o->n_formats)
        return cli_usage_error(CMD, "-o STEM needs at least one -f FORMAT");
    if ((o->out_post || o->out_enc) && o->n_inputs > 1)
        return cli_usage_error(CMD, "--output-posteriors/--output-encoder take one input file");
    if (o->lm && o->no_lm)
        return cli_usage_error(CMD, "--lm and --no-lm contradict each other");
    if (o->candidates && !o->detect)
        return cli_usage_error(CMD, "--lang-candidates restricts --detect-language; add it");
    if (o->detect && o->features)
        return cli_usage_error(CMD, "--detect-language runs on audio, not on --features");
    for (int i = 0; i < o->n_inputs; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(o->inputs[i], "-") == 0 && strcmp(o->inputs[j], "-") == 0)
                return cli_usage_error(CMD, "standard input (-) can be read only once");
    if (!o->c.model)
        return find_default_model(o);
    return 0;
}

/* Read a float32/float64 .npy [frames, n_mels] into a malloc'ed float array. */
static int read_features(const char *path, float **out, size_t *frames, int *n_mels)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cli_error("%s: cannot open: %s", path, strerror(errno));
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            size_t nc = cap ? cap * 2 : 1 << 20;
            unsigned char *nb = realloc(buf, nc);
            if (!nb) {
                free(buf);
                fclose(f);
                return cli_error("%s: out of memory", path);
            }
            buf = nb, cap = nc;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0)
            break;
    }
    fclose(f);
    npy_array a;
    int rc = npy_parse(buf, len, path, &a);
    if (rc || a.ndim != 2 || a.kind != 'f') {
        free(buf);
        return rc ? cli_lib_error(rc, "features") : cli_error("%s: expected a 2-D float array [frames, n_mels]", path);
    }
    float *x = malloc(a.count * sizeof *x);
    if (!x) {
        free(buf);
        return cli_error("%s: out of memory", path);
    }
    for (size_t i = 0; i < a.count; i++)
        x[i] = (float)npy_get(&a, i);
    *frames = a.shape[0];
    *n_mels = (int)a.shape[1];
    *out = x;
    free(buf);
    return 0;
}

/* `--list-languages` (of the model when -m is given) */
static int list_languages(const opts *o)
{
    cochlea_model *model = NULL;
    cochlea_asr *asr = NULL;
    int rc, ret = 1;
    char *text = NULL;
    if (o->c.model) {
        cochlea_asr_params ap = cochlea_asr_default_params();
        ap.n_threads = 1;
        if ((rc = cochlea_model_load(o->c.model, &model)) || (rc = cochlea_asr_create(model, &ap, &asr))) {
            cli_lib_error(rc, "loading the model");
            goto done;
        }
    }
    if ((rc = asr_lang_list_format(asr ? asr_lang_token_id_asr : NULL, asr, &text))) {
        cli_lib_error(rc, "listing languages");
        goto done;
    }
    fputs(text, stdout);
    ret = 0;
done:
    free(text);
    cochlea_asr_free(asr);
    cochlea_model_free(model);
    return ret;
}

/* The output path STEM.EXT: -o STEM, else the input path without its extension ("stdin" for -). */
static char *output_path(const opts *o, const char *input, const char *ext)
{
    const char *stem = o->c.output;
    char buf[4096];
    if (!stem) {
        if (strcmp(input, "-") == 0) {
            snprintf(buf, sizeof buf, "stdin");
        } else {
            snprintf(buf, sizeof buf, "%s", input);
            char *slash = strrchr(buf, '/'), *dot = strrchr(buf, '.');
            if (dot && (!slash || dot > slash + 1))
                *dot = '\0';
        }
        stem = buf;
    }
    size_t n = strlen(stem) + strlen(ext) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s.%s", stem, ext);
    return p;
}

/* Top-k languages of the first window of pcm (n samples, at most a window is used), read at the
 * language position (asr/lang.h). Overwrites the recognizer's results. */
static int top_languages(cochlea_asr *asr, const float *pcm, size_t n, const int32_t *cand, size_t n_cand,
                         tr_lang *out, size_t k, size_t *n_out, int64_t *frame, int *emitted)
{
    cochlea_asr_options ao = cochlea_asr_default_options();
    ao.keep_posteriors = 1;
    size_t ws = cochlea_asr_window_samples(asr);
    int rc = cochlea_asr_run(asr, pcm, n < ws ? n : ws, &ao);
    if (rc)
        return rc;
    int32_t ids[ASR_LANG_N];
    const char *codes[ASR_LANG_N];
    size_t n_lang;
    asr_lang_model_set(asr_lang_token_id_asr, asr, ids, codes, &n_lang);
    return asr_lang_detect(cochlea_asr_posteriors(asr, NULL), cochlea_asr_n_positions(asr),
                           cochlea_asr_vocab_size(asr), ids, codes, n_lang, cand, n_cand, out, k, n_out, frame,
                           emitted);
}

/* The first window's samples of a file (malloc'ed; n = 0 for an empty file). */
static int first_window(cochlea_asr *asr, const char *input, float **pcm, size_t *n)
{
    cochlea_audio_params aup = cochlea_audio_default_params();
    aup.sample_rate = cochlea_asr_sample_rate(asr);
    size_t ws = cochlea_asr_window_samples(asr);
    cochlea_audio *rd = NULL;
    *n = 0;
    if (!(*pcm = malloc(ws * sizeof **pcm)))
        return COCHLEA_ENOMEM;
    int rc = cochlea_audio_open(input, &aup, &rd);
    if (!rc)
        rc = cochlea_audio_read(rd, *pcm, ws, n);
    cochlea_audio_close(rd);
    return rc;
}

/* 1 when piece is a language symbol ("<deu>"); its code goes to code (16 bytes) */
static int language_piece(const char *piece, char code[16])
{
    size_t len = piece ? strlen(piece) : 0;
    if (len < 3 || len - 2 >= 16 || piece[0] != '<' || piece[len - 1] != '>')
        return 0;
    memcpy(code, piece + 1, len - 2);
    code[len - 2] = '\0';
    return asr_lang_index(code) >= 0;
}

/* --lang auto when the model emitted no language token: the top-k languages at the language
 * position of the file's first window, read again from the file (not from stdin, which cannot be
 * read twice). A second forward pass of one window; overwrites the recognizer's results. */
static int languages_of_file(cochlea_asr *asr, const char *input, tr_lang *top, size_t k, size_t *n_top)
{
    *n_top = 0;
    if (strcmp(input, "-") == 0)
        return COCHLEA_EINVAL;
    float *head = NULL;
    size_t nh = 0;
    int64_t frame;
    int emitted;
    int rc = first_window(asr, input, &head, &nh);
    if (!rc && nh == 0)
        rc = COCHLEA_EINVAL;
    if (!rc)
        rc = top_languages(asr, head, nh, NULL, 0, top, k, n_top, &frame, &emitted);
    free(head);
    return rc;
}

/* Language ID of one file: top 5 at the language position of its first window. */
static int detect_language(const opts *o, cochlea_asr *asr, const char *input, const float *pcm, size_t n,
                           const int32_t *cand, size_t n_cand)
{
    tr_lang top[5];
    size_t n_out;
    int64_t frame;
    int emitted;
    int rc = top_languages(asr, pcm, n, cand, n_cand, top, 5, &n_out, &frame, &emitted);
    if (rc)
        return cli_lib_error(rc, "language identification");
    if (o->n_inputs > 1)
        printf("%s:\n", input);
    size_t nt;
    const asr_lang_info *tab = asr_lang_table(&nt);
    for (size_t i = 0; i < n_out; i++) {
        int li = asr_lang_index(top[i].code);
        printf("%s\t%.4f\t%s\n", top[i].code, (double)top[i].prob, li >= 0 && (size_t)li < nt ? tab[li].name : "");
    }
    if (!o->c.quiet)
        fprintf(stderr, "cochlea: %s: language read at encoder position %lld (%s)\n", input, (long long)frame,
                emitted ? "the model emitted a language token there" : "no language token emitted; most language mass");
    return 0;
}

/* Timestamps, words and segments of the last run (audio of n samples). */
static int build_transcript(const opts *o, cochlea_asr *asr, size_t n, const char *input, tr_transcript *tr)
{
    memset(tr, 0, sizeof *tr);
    cochlea_fbank_params fp = cochlea_asr_fbank_params(asr);
    tr_layout l;
    tr_frames fr;
    memset(&fr, 0, sizeof fr);
    int rc = tr_layout_plan(cochlea_asr_sample_rate(asr), fp.hop_length, (int64_t)cochlea_asr_window_samples(asr),
                            cochlea_asr_n_positions(asr), n, o->context, &l);
    size_t n_pos;
    const int32_t *ids = cochlea_asr_frame_ids(asr, &n_pos);
    const float *probs = cochlea_asr_frame_probs(asr, NULL);
    if (!rc)
        rc = tr_frames_gather(&l, ids, probs, n_pos, &fr);
    int V = cochlea_asr_vocab_size(asr);
    const char **pieces = malloc((size_t)V * sizeof *pieces);
    if (!rc && !pieces)
        rc = COCHLEA_ENOMEM;
    for (int i = 0; !rc && i < V; i++)
        pieces[i] = cochlea_asr_token_piece(asr, i);
    tr_options topt = tr_default_options();
    topt.max_chars = (size_t)o->max_len;
    topt.max_duration = o->max_duration;
    topt.split_gap = o->split_gap;
    int32_t blank = cochlea_asr_token_id(asr, "<blank>");
    if (!rc)
        rc = tr_build(&fr, &topt, pieces, V, blank < 0 ? 0 : blank, tr);
    free(pieces);
    tr_frames_free(&fr);
    if (rc)
        return cli_lib_error(rc, "timestamps");
    tr->source = strdup(input);
    tr->duration = (double)n / cochlea_asr_sample_rate(asr);
    tr->n_windows = cochlea_asr_n_windows(asr);
    /* the decoded language: the first language token the model emitted, else the one given */
    for (size_t i = 0; i < tr->n_tokens && !tr->lang[0]; i++) {
        char code[16];
        if (language_piece(tr->tokens[i].piece, code)) {
            snprintf(tr->lang, sizeof tr->lang, "%s", code);
            tr->lang_source = "emitted";
        }
    }
    return 0;
}

static int write_outputs(const opts *o, const char *input, const tr_transcript *tr)
{
    for (int f = 0; f < 5; f++) {
        if (!o->formats[f])
            continue;
        const char *ext = tr_format_name((enum tr_format)f);
        if (!o->c.output && o->n_formats == 1 && o->n_inputs <= 1) {
            int rc = tr_write(tr, (enum tr_format)f, stdout);
            if (rc)
                return cli_lib_error(rc, "writing the output");
            continue;
        }
        char *path = output_path(o, input, ext);
        if (!path)
            return cli_error("out of memory");
        FILE *out = fopen(path, "w");
        if (!out) {
            int e = errno;
            cli_error("%s: cannot create: %s", path, strerror(e));
            free(path);
            return 1;
        }
        int rc = tr_write(tr, (enum tr_format)f, out);
        if (fclose(out) != 0 && !rc)
            rc = COCHLEA_EIO;
        if (rc) {
            cli_lib_error(rc, path);
            free(path);
            return 1;
        }
        if (!o->c.quiet)
            fprintf(stderr, "cochlea: wrote %s\n", path);
        free(path);
    }
    return 0;
}

static int run(int argc, char **argv)
{
    opts o;
    memset(&o, 0, sizeof o);
    o.batch = 1;
    o.repeat = 1;
    o.context = -1.0; /* automatic (tr_layout_plan) */
    o.lm_weight = o.bonus = NAN;
    const tr_options seg = tr_default_options(); /* subtitle segmentation defaults */
    o.max_len = (long)seg.max_chars;
    o.max_duration = seg.max_duration;
    o.split_gap = seg.split_gap;
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) {
            printf("%s", usage);
            return 0;
        }
    int rc = parse(&o, argc, argv);
    if (rc)
        return rc;
    cli_setup_logging(&o.c);
    if (o.list_langs)
        return list_languages(&o);
    double t0 = progress_now();
    cochlea_model *model = NULL;
    cochlea_asr *asr = NULL;
    float *pcm = NULL, *feats = NULL;
    double *times = NULL;
    size_t n = 0;
    int ret = 1;
    char lang_sym[24] = "", task_sym[40] = "";
    int32_t cand[MAX_CANDIDATES];
    size_t n_cand = 0;
    if ((rc = cochlea_model_load(o.c.model, &model))) {
        cli_lib_error(rc, "loading the model");
        goto done;
    }
    cochlea_asr_params ap = cochlea_asr_default_params();
    ap.n_threads = o.c.threads;
    ap.precision = o.precision;
    ap.batch = o.batch;
    if ((rc = cochlea_asr_create(model, &ap, &asr))) {
        cli_lib_error(rc, "creating the recognizer");
        goto done;
    }
    if (o.lm && (rc = cochlea_asr_load_lm(asr, o.lm))) {
        cli_lib_error(rc, "loading the language model");
        goto done;
    }
    double t_load = progress_now() - t0;
    /* language, task and candidates, checked against the model's tokens */
    if (o.lang && strcmp(o.lang, "auto") != 0 && strcmp(o.lang, "nolang") != 0 && strcmp(o.lang, "<nolang>") != 0) {
        char code[16];
        int32_t id;
        if ((rc = asr_lang_parse_in(o.lang, asr_lang_token_id_asr, asr, code, &id))) {
            cli_lib_error(rc, "--lang");
            goto done;
        }
        snprintf(lang_sym, sizeof lang_sym, "<%s>", code);
    }
    if (o.target || (o.task && strcmp(o.task, "st") == 0)) {
        if (!o.target) {
            cli_usage_error(CMD, "--task st needs --target LANG");
            ret = 2;
            goto done;
        }
        if (o.task && strcmp(o.task, "st") != 0) {
            cli_usage_error(CMD, "--target conflicts with --task %s", o.task);
            ret = 2;
            goto done;
        }
    }
    {
        const char *t = o.target ? o.target : o.task;
        if (t) {
            char task[32];
            int32_t id;
            if ((rc = asr_task_parse_in(t, asr_lang_token_id_asr, asr, task, &id))) {
                cli_lib_error(rc, o.target ? "--target" : "--task");
                goto done;
            }
            if (o.target && strcmp(task, "asr") == 0) {
                cli_usage_error(CMD, "--target expects a translation target language, got '%s'", o.target);
                ret = 2;
                goto done;
            }
            snprintf(task_sym, sizeof task_sym, "<%s>", task);
        }
    }
    if (o.candidates &&
        (rc = asr_lang_parse_list(o.candidates, asr_lang_token_id_asr, asr, cand, MAX_CANDIDATES, &n_cand))) {
        cli_lib_error(rc, "--lang-candidates");
        goto done;
    }
    cochlea_asr_options ao = cochlea_asr_default_options();
    ao.lang = lang_sym[0] ? lang_sym : NULL;
    ao.task = task_sym[0] ? task_sym : NULL;
    ao.prompt = o.prompt;
    ao.context = (float)o.context;
    ao.keep_posteriors = o.out_post != NULL;
    ao.keep_encoder = o.out_enc != NULL;
    ao.beam_size = o.beam;
    ao.no_lm = o.no_lm;
    if (!isnan(o.lm_weight))
        ao.lm_weight = (float)o.lm_weight;
    if (!isnan(o.bonus))
        ao.insertion_bonus = (float)o.bonus;
    if (o.c.verbose)
        fprintf(stderr, "cochlea: %s: language model: %s\n", CMD,
                o.no_lm ? "none (--no-lm)" : o.lm ? o.lm : cochlea_asr_has_lm(asr) ? "embedded in the model" : "none");
    if (!(times = calloc((size_t)o.repeat, sizeof *times))) {
        cli_error("out of memory");
        goto done;
    }
    int n_jobs = o.features ? 1 : o.n_inputs, failed = 0;
    for (int job = 0; job < n_jobs; job++) {
        const char *input = o.features ? o.features : o.inputs[job];
        double audio_s = 0;
        progress bar;
        int have_bar = 0;
        rc = 0;
        if (o.features) {
            size_t frames = 0;
            int n_mels = 0;
            if (read_features(o.features, &feats, &frames, &n_mels))
                goto done;
            audio_s = (double)(frames - 1) * 0.01;
            n = (size_t)(audio_s * cochlea_asr_sample_rate(asr));
            for (int r = 0; r < o.repeat && !rc; r++) {
                double tr0 = progress_now();
                rc = cochlea_asr_run_features(asr, feats, frames, n_mels, &ao);
                times[r] = progress_now() - tr0;
            }
        } else {
            cochlea_audio_params aup = cochlea_audio_default_params();
            aup.sample_rate = cochlea_asr_sample_rate(asr);
            if (o.detect) {
                /* the first window is all language ID reads */
                free(pcm);
                pcm = NULL;
                if ((rc = first_window(asr, input, &pcm, &n))) {
                    cli_lib_error(rc, "reading the audio");
                    failed++;
                    continue;
                }
                if (n == 0) {
                    cli_error("%s: contains no audio samples", input);
                    failed++;
                    continue;
                }
                if (detect_language(&o, asr, input, pcm, n, n_cand ? cand : NULL, n_cand))
                    failed++;
                continue;
            }
            /* streamed: windows are built as the file is decoded (bounded memory) */
            progress_start(&bar, stderr, "transcribing", 0, o.c.quiet);
            have_bar = 1;
            ao.progress = progress_callback;
            ao.progress_user = &bar;
            for (int r = 0; r < o.repeat && !rc; r++) {
                cochlea_audio *rd = NULL;
                if ((rc = cochlea_audio_open(input, &aup, &rd))) {
                    err_prefix(rc, "reading the audio");
                    break;
                }
                double tr0 = progress_now();
                rc = cochlea_asr_run_audio(asr, rd, &ao);
                times[r] = progress_now() - tr0;
                cochlea_audio_close(rd);
            }
            n = cochlea_asr_n_samples(asr);
            audio_s = (double)n / aup.sample_rate;
            if (!rc && n == 0) {
                if (have_bar)
                    progress_end(&bar);
                cli_error("%s: contains no audio samples", input);
                failed++;
                continue;
            }
        }
        if (have_bar)
            progress_end(&bar);
        if (rc) {
            cli_lib_error(rc, input);
            failed++;
            continue;
        }
        double t_run = times[0];
        int n_win = cochlea_asr_n_windows(asr); /* a second language pass below overwrites the results */
        if (o.repeat > 1) {
            for (int i = 0; i < o.repeat; i++)
                if (!o.c.quiet)
                    fprintf(stderr, "cochlea: run %d: %.3f s\n", i + 1, times[i]);
            for (int i = 1; i < o.repeat; i++) /* median: insertion sort, N is small */
                for (int j = i; j > 0 && times[j] < times[j - 1]; j--) {
                    double tt = times[j];
                    times[j] = times[j - 1];
                    times[j - 1] = tt;
                }
            t_run = o.repeat % 2 ? times[o.repeat / 2] : 0.5 * (times[o.repeat / 2 - 1] + times[o.repeat / 2]);
        }
        if (o.n_formats) {
            tr_transcript tr;
            if (build_transcript(&o, asr, n, input, &tr)) {
                failed++;
                continue;
            }
            snprintf(tr.task, sizeof tr.task, "%s", task_sym[0] ? task_sym + 1 : "asr");
            if (tr.task[0] && tr.task[strlen(tr.task) - 1] == '>')
                tr.task[strlen(tr.task) - 1] = '\0';
            if (!tr.lang[0] && lang_sym[0]) {
                snprintf(tr.lang, sizeof tr.lang, "%.*s", (int)strlen(lang_sym) - 2, lang_sym + 1);
                tr.lang_source = "given";
            }
            tr.wall_s = t_run;
            tr.load_s = t_load;
            /* --lang auto: the probabilities of the languages (first window) for JSON, and the
             * language when the model emitted none (the saved posteriors would be overwritten) */
            static tr_lang probs[5];
            size_t n_probs = 0;
            if ((o.formats[TR_FORMAT_JSON] || !tr.lang[0]) && !lang_sym[0] && !o.out_post && !o.out_enc &&
                !o.features && languages_of_file(asr, input, probs, 5, &n_probs) == 0 && n_probs > 0) {
                tr.lang_probs = probs;
                tr.n_lang_probs = n_probs;
                if (!tr.lang[0]) {
                    snprintf(tr.lang, sizeof tr.lang, "%s", probs[0].code);
                    tr.lang_source = "posteriors";
                }
            }
            int bad = write_outputs(&o, input, &tr);
            tr.lang_probs = NULL; /* static storage, not the transcript's */
            tr.n_lang_probs = 0;
            transcript_free(&tr);
            if (bad) {
                failed++;
                continue;
            }
        } else {
            printf("%s\n", o.print_special ? cochlea_asr_text(asr) : cochlea_asr_text_nospecial(asr));
            if (!lang_sym[0] && !o.c.quiet) { /* --lang auto: the language the model emitted */
                size_t nt;
                const int32_t *tok = cochlea_asr_tokens(asr, &nt);
                const char *found = NULL;
                for (size_t i = 0; i < nt && !found; i++) {
                    char code[16];
                    if (language_piece(cochlea_asr_token_piece(asr, tok[i]), code))
                        found = cochlea_asr_token_piece(asr, tok[i]);
                }
                tr_lang top[1];
                size_t n_top = 0;
                if (found)
                    fprintf(stderr, "cochlea: %s%sdetected language: %s\n", n_jobs > 1 ? input : "",
                            n_jobs > 1 ? ": " : "", found);
                else if (!o.out_post && !o.out_enc && !o.features &&
                         languages_of_file(asr, input, top, 1, &n_top) == 0 && n_top > 0)
                    fprintf(stderr,
                            "cochlea: %s%sdetected language: <%s> (p %.2f; no language token emitted, read from "
                            "the posteriors as --detect-language does)\n",
                            n_jobs > 1 ? input : "", n_jobs > 1 ? ": " : "", top[0].code, (double)top[0].prob);
                else
                    fprintf(stderr, "cochlea: %s%sdetected language: none emitted (see --detect-language)\n",
                            n_jobs > 1 ? input : "", n_jobs > 1 ? ": " : "");
            }
        }
        fflush(stdout);
        size_t shape[3] = {(size_t)cochlea_asr_n_windows(asr), (size_t)cochlea_asr_n_positions(asr), 0};
        if (o.out_post) {
            shape[2] = (size_t)cochlea_asr_vocab_size(asr);
            if (cli_write_npy(o.out_post, cochlea_asr_posteriors(asr, NULL), 3, shape))
                goto done;
        }
        if (o.out_enc) {
            shape[2] = (size_t)cochlea_asr_d_model(asr);
            if (cli_write_npy(o.out_enc, cochlea_asr_encoder_output(asr, NULL), 3, shape))
                goto done;
        }
        if (!o.c.quiet)
            fprintf(stderr, "cochlea: %s%s%.2f s of audio in %.3f s%s (%d window%s, load %.2f s), %.1fx real time\n",
                    n_jobs > 1 ? input : "", n_jobs > 1 ? ": " : "", audio_s, t_run, o.repeat > 1 ? " (median)" : "",
                    n_win, n_win == 1 ? "" : "s", t_load,
                    t_run > 0 ? audio_s / t_run : 0.0);
    }
    ret = failed ? 1 : 0;
done:
    free(pcm);
    free(feats);
    free(times);
    cochlea_asr_free(asr);
    cochlea_model_free(model);
    return ret;
}
