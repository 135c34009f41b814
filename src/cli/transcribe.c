/* transcribe.c - `cochlea transcribe`: speech recognition / translation with an OWSM-CTC model. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "frontend/fbank.h"
#include "progress.h"

#define CMD "transcribe"

static const char usage[] =
    "usage: cochlea transcribe -m MODEL [options] FILE\n"
    "\n"
    "Recognise (or translate) speech with an OWSM-CTC model and print the text. Any audio format\n"
    "libsndfile reads is accepted (- reads standard input) and resampled to the model's rate.\n"
    "Audio up to 30 s is one window; longer audio is decoded in overlapping 30 s windows\n"
    "(ESPnet's long-form slicing).\n"
    "\n"
    "  -m, --model FILE       OWSM-CTC model (.gguf, from tools/convert_owsm_ctc.py)\n"
    "  -l, --lang LANG        source language, e.g. eng or <eng>; auto (default) decodes with\n"
    "                         <nolang> and the model names the language itself\n"
    "  --task TASK            asr (default) or a translation target such as st_deu\n"
    "  --prompt TEXT          previous-text prompt (default: none, <na>)\n"
    "  --print-special        print ESPnet's `text` (with <lang><task> symbols) instead of\n"
    "                         `text_nospecial`\n"
    "  --precision P          f32 (default), bf16 or int8 matrix products\n"
    "  --batch N              30 s windows per forward pass (default 1)\n"
    "  --context S            long-form context in seconds on each side of a window (default 4)\n"
    "  --features F.npy       run on one window of normalised log-mel features [frames, n_mels]\n"
    "                         instead of audio (for parity checks)\n"
    "  --output-posteriors F  write the CTC log-posteriors, float32 .npy [windows, positions, vocab]\n"
    "  --output-encoder F     write the encoder output, float32 .npy [windows, positions, d]\n"
    "  --repeat N             run the recognition N times on the loaded model and report each\n"
    "                         run's time and the median (benchmarking; the text is printed once)\n"
    "  -t, --threads N        threads (default: all CPUs)\n"
    "  -q                     print only the text\n";

static int run(int argc, char **argv);

const cli_command cli_cmd_transcribe = {
    CMD,
    "speech to text with an OWSM-CTC model",
    usage,
    run,
};

typedef struct opts {
    cli_common c;
    const char *input, *lang, *task, *prompt, *features, *out_post, *out_enc;
    int print_special, batch, repeat;
    double context;
    enum cochlea_precision precision;
} opts;

static int parse(opts *o, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_parse_common(&o->c, CMD, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (strcmp(a, "-l") == 0 || strcmp(a, "--lang") == 0 || strcmp(a, "--task") == 0 ||
            strcmp(a, "--prompt") == 0 || strcmp(a, "--precision") == 0 || strcmp(a, "--batch") == 0 ||
            strcmp(a, "--context") == 0 || strcmp(a, "--features") == 0 || strcmp(a, "--output-posteriors") == 0 ||
            strcmp(a, "--output-encoder") == 0 || strcmp(a, "--repeat") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error(CMD, "option %s needs a value", a);
            const char *v = argv[++i];
            long n;
            if (strcmp(a, "-l") == 0 || strcmp(a, "--lang") == 0)
                o->lang = v;
            else if (strcmp(a, "--task") == 0)
                o->task = v;
            else if (strcmp(a, "--prompt") == 0)
                o->prompt = v;
            else if (strcmp(a, "--features") == 0)
                o->features = v;
            else if (strcmp(a, "--output-posteriors") == 0)
                o->out_post = v;
            else if (strcmp(a, "--output-encoder") == 0)
                o->out_enc = v;
            else if (strcmp(a, "--repeat") == 0) {
                if (cli_parse_int(CMD, a, v, 1, 1000, &n))
                    return 2;
                o->repeat = (int)n;
            } else if (strcmp(a, "--batch") == 0) {
                if (cli_parse_int(CMD, a, v, 1, 256, &n))
                    return 2;
                o->batch = (int)n;
            } else if (strcmp(a, "--context") == 0) {
                if (cli_parse_float(CMD, a, v, &o->context))
                    return 2;
                if (!(o->context >= 0 && o->context < 15))
                    return cli_usage_error(CMD, "--context must be in [0, 15) seconds, got %s", v);
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
        } else if (strcmp(a, "--print-special") == 0) {
            o->print_special = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        } else if (!o->input) {
            o->input = a;
        } else {
            return cli_usage_error(CMD, "more than one input given ('%s' and '%s')", o->input, a);
        }
    }
    if (!o->c.model)
        return cli_usage_error(CMD, "no model given (-m MODEL.gguf)");
    if (!o->input && !o->features)
        return cli_usage_error(CMD, "no input file given");
    if (o->input && o->features)
        return cli_usage_error(CMD, "give either an audio file or --features, not both");
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

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int run(int argc, char **argv)
{
    opts o;
    memset(&o, 0, sizeof o);
    o.batch = 1;
    o.repeat = 1;
    o.context = 4.0;
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) {
            printf("%s", usage);
            return 0;
        }
    int rc = parse(&o, argc, argv);
    if (rc)
        return rc;
    cli_setup_logging(&o.c);
    double t0 = now();
    cochlea_model *model = NULL;
    cochlea_asr *asr = NULL;
    float *pcm = NULL, *feats = NULL;
    double *times = NULL;
    size_t n = 0;
    int ret = 1;
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
    double t_load = now() - t0;
    cochlea_asr_options ao = cochlea_asr_default_options();
    ao.lang = o.lang;
    ao.task = o.task;
    ao.prompt = o.prompt;
    ao.context = (float)o.context;
    ao.keep_posteriors = o.out_post != NULL;
    ao.keep_encoder = o.out_enc != NULL;
    progress bar;
    double audio_s = 0;
    times = calloc((size_t)o.repeat, sizeof *times);
    if (!times) {
        cli_error("out of memory");
        goto done;
    }
    if (o.features) {
        size_t frames = 0;
        int n_mels = 0;
        if (read_features(o.features, &feats, &frames, &n_mels))
            goto done;
        audio_s = (double)(frames - 1) * 0.01;
        for (int r = 0; r < o.repeat && !rc; r++) {
            double tr = now();
            rc = cochlea_asr_run_features(asr, feats, frames, n_mels, &ao);
            times[r] = now() - tr;
        }
    } else {
        cochlea_audio_params aup = cochlea_audio_default_params();
        aup.sample_rate = cochlea_asr_sample_rate(asr);
        if ((rc = cochlea_audio_load(o.input, &aup, &pcm, &n))) {
            cli_lib_error(rc, "reading the audio");
            goto done;
        }
        audio_s = (double)n / aup.sample_rate;
        size_t ws = cochlea_asr_window_samples(asr);
        uint64_t est = n <= ws ? 1 : (uint64_t)(n / (ws / 2) + 2);
        progress_start(&bar, stderr, "transcribing", est, o.c.quiet);
        ao.progress = progress_callback;
        ao.progress_user = &bar;
        for (int r = 0; r < o.repeat && !rc; r++) {
            double tr = now();
            rc = cochlea_asr_run(asr, pcm, n, &ao);
            times[r] = now() - tr;
        }
        progress_end(&bar);
    }
    if (rc) {
        cli_lib_error(rc, "transcribing");
        goto done;
    }
    double t_run = times[0];
    if (o.repeat > 1) {
        /* median of the runs (insertion sort of a copy; N is small) */
        for (int i = 0; i < o.repeat; i++)
            if (!o.c.quiet)
                fprintf(stderr, "cochlea: run %d: %.3f s\n", i + 1, times[i]);
        for (int i = 1; i < o.repeat; i++)
            for (int j = i; j > 0 && times[j] < times[j - 1]; j--) {
                double tt = times[j];
                times[j] = times[j - 1];
                times[j - 1] = tt;
            }
        t_run = o.repeat % 2 ? times[o.repeat / 2] : 0.5 * (times[o.repeat / 2 - 1] + times[o.repeat / 2]);
    }
    printf("%s\n", o.print_special ? cochlea_asr_text(asr) : cochlea_asr_text_nospecial(asr));
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
        fprintf(stderr, "cochlea: %.2f s of audio in %.3f s%s (%d window%s, load %.2f s), %.1fx real time\n",
                audio_s, t_run, o.repeat > 1 ? " (median)" : "", cochlea_asr_n_windows(asr),
                cochlea_asr_n_windows(asr) == 1 ? "" : "s", t_load, t_run > 0 ? audio_s / t_run : 0.0);
    ret = 0;
done:
    cochlea_audio_samples_free(pcm);
    free(feats);
    free(times);
    cochlea_asr_free(asr);
    cochlea_model_free(model);
    return ret;
}
