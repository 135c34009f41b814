/* features.c - `cochlea features`: audio in, log-mel features out as a float32 .npy
 * [frames, n_mels], streamed (decode, resample, STFT, mel, log, MVN block by block). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "frontend/audio.h"
#include "frontend/fbank.h"
#include "gguf.h"
#include "progress.h"

#define CMD "features"
#define NPY_HEADER_BYTES 128 /* magic + version + length + padded dict: fixed, so it can be rewritten */
#define READ_SAMPLES 65536
#define MAX_MELS 4096

static const char usage[] =
    "usage: cochlea features IN -o OUT.npy [options]\n"
    "\n"
    "Compute ESPnet/OWSM-CTC log-mel features (STFT n_fft 512, Hann 400, hop 160, Slaney mel,\n"
    "ln with floor 1e-10, global MVN) of an audio file and write them as a float32 .npy of\n"
    "shape [frames, n_mels] (frames = 1 + samples/160 at 16 kHz). Any format libsndfile reads\n"
    "is accepted and resampled to 16 kHz (soxr HQ); channels are averaged.\n"
    "\n"
    "  IN                 audio file, or - for standard input\n"
    "  -o, --output FILE  the .npy to write (- for standard output)\n"
    "  -m, --model FILE   take the frontend settings, the mel matrix (frontend.logmel.melmat)\n"
    "                     and the MVN statistics (normalize.mean/std) from a model file\n"
    "  --n-mels N         mel bins of the Slaney filterbank: 80 (default) or 128 (OWSM-CTC v4)\n"
    "  --stats FILE.npz   ESPnet feats_stats.npz (count, sum, sum_square) for global MVN\n"
    "  --no-mvn           write the log-mel without normalisation\n"
    "                     (without -m or --stats there is no normalisation either)\n"
    "  --channel N        use channel N (0-based) instead of the average of all channels\n"
    "  --raw FORMAT       headerless input: s8 u8 s16 s24 s32 f32 f64 ulaw alaw\n"
    "  --rate HZ          sample rate of raw input (required with --raw)\n"
    "  --channels N       channels of raw input (default 1)\n"
    "  --big-endian       raw samples are big-endian (default little-endian)\n"
    "  --fmin HZ, --fmax HZ  band of the Slaney filterbank (default 0 and rate/2)\n"
    "  --dump-audio FILE  also write the 16 kHz mono samples the features come from (.npy)\n"
    "  --dump-melmat FILE also write the mel filterbank used, [n_fft/2+1, n_mels] (.npy)\n"
    "  -q, -v             quieter / more verbose\n";

static void print_usage_full(void)
{
    char fmts[1024];
    audio_supported_formats(fmts, sizeof fmts);
    printf("%s\nreadable formats (libsndfile): %s\n", usage, fmts);
}

static int run(int argc, char **argv);

const cli_command cli_cmd_features = {
    CMD,
    "audio to log-mel features (.npy)",
    usage,
    run,
};

/* The .npy v1.0 header for a C-order float32 array [rows, cols] ([rows] when cols < 0), padded
 * to NPY_HEADER_BYTES. */
static int npy_header(FILE *f, size_t rows, int cols)
{
    char h[NPY_HEADER_BYTES];
    memset(h, ' ', sizeof h);
    memcpy(h, "\x93NUMPY\x01\x00", 8);
    const unsigned hlen = NPY_HEADER_BYTES - 10;
    h[8] = (char)(hlen & 0xff);
    h[9] = (char)(hlen >> 8);
    char dict[NPY_HEADER_BYTES];
    int n = cols < 0 ? snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu,), }", rows)
                     : snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %d), }",
                                rows, cols);
    if (n < 0 || (size_t)n >= hlen)
        return -1;
    memcpy(h + 10, dict, (size_t)n);
    h[NPY_HEADER_BYTES - 1] = '\n';
    return fwrite(h, 1, sizeof h, f) == sizeof h ? 0 : -1;
}

/* Write a whole float32 array to a new .npy file; returns 0 or 1 (message printed). */
static int write_npy(const char *path, const float *data, size_t rows, int cols)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return cli_error("%s: cannot create: %s", path, strerror(errno));
    size_t n = rows * (size_t)(cols < 0 ? 1 : cols);
    int bad = npy_header(f, rows, cols) != 0 || (n && fwrite(data, sizeof(float), n, f) != n);
    bad |= fclose(f) != 0;
    if (bad) {
        unlink(path);
        return cli_error("%s: write error", path);
    }
    return 0;
}

typedef struct opts {
    cli_common c;
    const char *input;
    const char *stats;
    const char *dump_audio, *dump_melmat;
    double fmin, fmax;
    int have_fmin, have_fmax;
    int n_mels;
    int no_mvn;
    cochlea_audio_params ap;
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
        long v;
        if (strcmp(a, "--n-mels") == 0 || strcmp(a, "--stats") == 0 || strcmp(a, "--channel") == 0 ||
            strcmp(a, "--raw") == 0 || strcmp(a, "--rate") == 0 || strcmp(a, "--channels") == 0 ||
            strcmp(a, "--fmin") == 0 || strcmp(a, "--fmax") == 0 || strcmp(a, "--dump-audio") == 0 ||
            strcmp(a, "--dump-melmat") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error(CMD, "option %s needs a value", a);
            const char *val = argv[++i];
            if (strcmp(a, "--fmin") == 0 || strcmp(a, "--fmax") == 0) {
                double hz;
                if (cli_parse_float(CMD, a, val, &hz))
                    return 2;
                if (strcmp(a, "--fmin") == 0) {
                    o->fmin = hz;
                    o->have_fmin = 1;
                } else {
                    o->fmax = hz;
                    o->have_fmax = 1;
                }
            } else if (strcmp(a, "--dump-audio") == 0) {
                o->dump_audio = val;
            } else if (strcmp(a, "--dump-melmat") == 0) {
                o->dump_melmat = val;
            } else if (strcmp(a, "--n-mels") == 0) {
                if (cli_parse_int(CMD, a, val, 1, MAX_MELS, &v))
                    return 2;
                o->n_mels = (int)v;
            } else if (strcmp(a, "--stats") == 0) {
                o->stats = val;
            } else if (strcmp(a, "--channel") == 0) {
                if (cli_parse_int(CMD, a, val, 0, AUDIO_MAX_CHANNELS - 1, &v))
                    return 2;
                o->ap.channel = (int)v;
            } else if (strcmp(a, "--raw") == 0) {
                o->ap.raw_format = audio_raw_format_from_name(val);
                if (o->ap.raw_format == COCHLEA_RAW_NONE)
                    return cli_usage_error(CMD, "--raw expects s8, u8, s16, s24, s32, f32, f64, ulaw or alaw, got '%s'",
                                           val);
            } else if (strcmp(a, "--rate") == 0) {
                if (cli_parse_int(CMD, a, val, AUDIO_MIN_RATE, AUDIO_MAX_RATE, &v))
                    return 2;
                o->ap.raw_sample_rate = (int)v;
            } else {
                if (cli_parse_int(CMD, a, val, 1, AUDIO_MAX_CHANNELS, &v))
                    return 2;
                o->ap.raw_channels = (int)v;
            }
        } else if (strcmp(a, "--no-mvn") == 0) {
            o->no_mvn = 1;
        } else if (strcmp(a, "--big-endian") == 0) {
            o->ap.raw_big_endian = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        } else if (!o->input) {
            o->input = a;
        } else {
            return cli_usage_error(CMD, "more than one input given ('%s' and '%s')", o->input, a);
        }
    }
    if (!o->input)
        return cli_usage_error(CMD, "no input file given");
    if (!o->c.output)
        return cli_usage_error(CMD, "no output given (-o OUT.npy)");
    if (o->ap.raw_format != COCHLEA_RAW_NONE) {
        if (!o->ap.raw_sample_rate)
            return cli_usage_error(CMD, "--raw needs --rate");
        if (!o->ap.raw_channels)
            o->ap.raw_channels = 1;
    } else if (o->ap.raw_sample_rate || o->ap.raw_channels || o->ap.raw_big_endian) {
        return cli_usage_error(CMD, "--rate, --channels and --big-endian describe raw input: add --raw FORMAT");
    }
    if (o->c.model && (o->n_mels || o->have_fmin || o->have_fmax))
        return cli_usage_error(CMD, "--n-mels, --fmin and --fmax conflict with -m (the model fixes the filterbank)");
    if (o->stats && o->no_mvn)
        return cli_usage_error(CMD, "--stats and --no-mvn contradict each other");
    return 0;
}

/* Output sink: a seekable file gets frames streamed and its header rewritten at the end; a pipe
 * gets everything at the end from memory. */
typedef struct sink {
    FILE *f;
    int seekable, own;
    float *mem;
    size_t mem_rows, mem_cap, rows;
    int cols;
} sink;

static int sink_write(sink *s, const float *rows, size_t n)
{
    if (s->seekable) {
        if (n && fwrite(rows, sizeof(float) * (size_t)s->cols, n, s->f) != n)
            return -1;
    } else {
        if (s->mem_rows + n > s->mem_cap) {
            size_t cap = s->mem_cap ? s->mem_cap : 4096;
            while (cap < s->mem_rows + n)
                cap *= 2;
            float *m = realloc(s->mem, cap * (size_t)s->cols * sizeof(float));
            if (!m)
                return -1;
            s->mem = m;
            s->mem_cap = cap;
        }
        memcpy(s->mem + s->mem_rows * (size_t)s->cols, rows, n * (size_t)s->cols * sizeof(float));
        s->mem_rows += n;
    }
    s->rows += n;
    return 0;
}

/* Finish the output: the header with the final row count (and, for a pipe, the rows). After a
 * failure (ok = 0) nothing more is written. */
static int sink_close(sink *s, int ok)
{
    int bad = 0;
    if (!ok) {
        /* the caller removes a partial file; a pipe gets nothing */
    } else if (s->seekable) {
        bad = fseek(s->f, 0, SEEK_SET) != 0 || npy_header(s->f, s->rows, s->cols) != 0;
    } else {
        bad = npy_header(s->f, s->rows, s->cols) != 0 ||
              (s->rows && fwrite(s->mem, sizeof(float) * (size_t)s->cols, s->rows, s->f) != s->rows);
    }
    bad |= fflush(s->f) != 0;
    if (s->own)
        bad |= fclose(s->f) != 0;
    free(s->mem);
    return bad ? -1 : 0;
}

static int run(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) {
            print_usage_full();
            return 0;
        }
    opts o;
    memset(&o, 0, sizeof o);
    o.ap = cochlea_audio_default_params();
    int r = parse(&o, argc, argv);
    if (r)
        return r;
    cli_setup_logging(&o.c);

    cochlea_fbank_params fp = cochlea_fbank_default_params();
    gguf_file *model = NULL;
    static float mean[MAX_MELS], std[MAX_MELS];
    int rc, status = 1;
    cochlea_audio *au = NULL;
    cochlea_fbank *fb = NULL;
    float *samples = NULL, *frames = NULL, *audio = NULL, *model_arrays = NULL;
    size_t audio_len = 0, audio_cap = 0;
    sink out;
    memset(&out, 0, sizeof out);

    if (o.c.model) {
        if ((rc = gguf_open(o.c.model, &model)) || (rc = fbank_params_from_gguf(model, &fp, &model_arrays))) {
            cli_lib_error(rc, "");
            goto done;
        }
    } else {
        if (o.n_mels)
            fp.n_mels = o.n_mels;
        fp.fmin = (float)o.fmin;
        fp.fmax = (float)o.fmax;
    }
    if (o.stats) {
        int n;
        if ((rc = cochlea_mvn_stats_load(o.stats, mean, std, MAX_MELS, &n))) {
            cli_lib_error(rc, "");
            goto done;
        }
        if (n != fp.n_mels) {
            cli_error("%s: statistics have %d dimensions but the features have %d mel bins%s", o.stats, n, fp.n_mels,
                      o.c.model ? "" : " (see --n-mels)");
            goto done;
        }
        fp.mvn_mean = mean;
        fp.mvn_std = std;
    }
    if (o.no_mvn)
        fp.mvn_mean = fp.mvn_std = NULL;
    o.ap.sample_rate = fp.sample_rate;
    if ((rc = cochlea_fbank_create(&fp, &fb)) || (rc = cochlea_audio_open(o.input, &o.ap, &au))) {
        cli_lib_error(rc, "");
        goto done;
    }
    if (o.dump_melmat) {
        const int nb = fp.n_fft / 2 + 1;
        if (fp.melmat) {
            if (write_npy(o.dump_melmat, fp.melmat, (size_t)nb, fp.n_mels))
                goto done;
        } else {
            float *mm = malloc((size_t)nb * (size_t)fp.n_mels * sizeof(float));
            double fmax = fp.fmax > 0.0f ? (double)fp.fmax : fp.sample_rate / 2.0;
            if (!mm) {
                cli_error("out of memory");
                goto done;
            }
            rc = fbank_slaney_melmat(fp.sample_rate, fp.n_fft, fp.n_mels, (double)fp.fmin, fmax, mm);
            int bad = rc ? cli_lib_error(rc, "") : write_npy(o.dump_melmat, mm, (size_t)nb, fp.n_mels);
            free(mm);
            if (bad)
                goto done;
        }
    }

    const size_t nm = (size_t)fp.n_mels;
    const size_t max_frames = READ_SAMPLES / (size_t)fp.hop_length + 2;
    samples = malloc(READ_SAMPLES * sizeof(float));
    frames = malloc(max_frames * nm * sizeof(float));
    if (!samples || !frames) {
        cli_error("out of memory");
        goto done;
    }
    if (strcmp(o.c.output, "-") == 0) {
        out.f = stdout;
    } else {
        out.f = fopen(o.c.output, "wb");
        out.own = 1;
        if (!out.f) {
            cli_error("%s: cannot create: %s", o.c.output, strerror(errno));
            goto done;
        }
    }
    struct stat st;
    out.seekable = fstat(fileno(out.f), &st) == 0 && S_ISREG(st.st_mode);
    out.cols = fp.n_mels;
    if (out.seekable && npy_header(out.f, 0, out.cols) != 0) {
        cli_error("%s: write error: %s", o.c.output, strerror(errno));
        goto done;
    }

    cochlea_audio_info info;
    cochlea_audio_get_info(au, &info);
    LOG_INFO("%s: %s, %d Hz, %d channel%s", o.input, info.format, info.source_rate, info.source_channels,
             info.source_channels == 1 ? "" : "s");
    progress bar;
    uint64_t est = info.source_frames > 0
                       ? (uint64_t)((double)info.source_frames * fp.sample_rate / info.source_rate)
                       : 0;
    progress_start(&bar, stderr, "features", est, o.c.quiet || est == 0);
    uint64_t done_samples = 0;
    for (int finished = 0; !finished;) {
        size_t got, nf;
        if ((rc = cochlea_audio_read(au, samples, READ_SAMPLES, &got)) || (rc = cochlea_fbank_push(fb, samples, got))) {
            progress_end(&bar);
            cli_lib_error(rc, "");
            goto done;
        }
        done_samples += got;
        if (o.dump_audio && got) {
            if (audio_len + got > audio_cap) {
                size_t cap = audio_cap ? audio_cap : READ_SAMPLES;
                while (cap < audio_len + got)
                    cap *= 2;
                float *nb = realloc(audio, cap * sizeof(float));
                if (!nb) {
                    progress_end(&bar);
                    cli_error("out of memory for --dump-audio");
                    goto done;
                }
                audio = nb;
                audio_cap = cap;
            }
            memcpy(audio + audio_len, samples, got * sizeof(float));
            audio_len += got;
        }
        if (got < READ_SAMPLES) {
            finished = 1;
            if ((rc = cochlea_fbank_finish(fb))) {
                progress_end(&bar);
                cli_lib_error(rc, o.input);
                goto done;
            }
        }
        do {
            if ((rc = cochlea_fbank_pull(fb, frames, max_frames, &nf))) {
                progress_end(&bar);
                cli_lib_error(rc, "");
                goto done;
            }
            if (sink_write(&out, frames, nf) != 0) {
                progress_end(&bar);
                cli_error("%s: write error: %s", o.c.output, strerror(errno));
                goto done;
            }
        } while (nf == max_frames);
        progress_update(&bar, done_samples < est ? done_samples : est);
    }
    progress_end(&bar);
    if (o.dump_audio && write_npy(o.dump_audio, audio, audio_len, -1))
        goto done;
    status = 0;
    LOG_INFO("%s: %zu frames x %d mel bins", o.c.output, out.rows, out.cols);

done:
    if (out.f) {
        if (sink_close(&out, status == 0) != 0 && status == 0) {
            cli_error("%s: write error: %s", o.c.output, strerror(errno));
            status = 1;
        }
        if (status != 0 && out.own)
            unlink(o.c.output);
    }
    free(samples);
    free(frames);
    free(audio);
    free(model_arrays);
    cochlea_audio_close(au);
    cochlea_fbank_free(fb);
    gguf_close(model);
    return status;
}
