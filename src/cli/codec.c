/* codec.c - `cochlea codec`: SECodec encode / decode / info / roundtrip / build-codebook /
 * se-stats (docs/sec-format.md, docs/secodec-model.md). */
#include <errno.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "codec/bitstream.h"
#include "codec/codec.h"
#include "codec/se_codebook.h"
#include "ctx.h"
#include "frontend/fbank.h"
#include "progress.h"

#define CMD "codec"
#define DEFAULT_CHUNK_FRAMES 250 /* .sec chunk: 5 s at 50 Hz */

static const char usage[] =
    "usage: cochlea codec encode IN OUT.sec -m MODEL [options]\n"
    "       cochlea codec decode IN.sec OUT.wav -m MODEL [--salvage]\n"
    "       cochlea codec roundtrip IN OUT.wav -m MODEL [--levels N]\n"
    "       cochlea codec info IN.sec [-m MODEL]\n"
    "       cochlea codec build-codebook -m MODEL (--audio-list LIST | --features X.npy) -o OUT.gguf\n"
    "       cochlea codec se-stats (--features X.npy | -m MODEL)\n"
    "\n"
    "SECodec: a neural speech codec (SEANet encoder/decoder, 50 frames per second) whose residual\n"
    "codebooks come from structural-entropy minimisation over a graph of speech features.\n"
    "Any audio libsndfile reads is accepted (resampled to the model's rate, channels averaged).\n"
    "\n"
    "encode: audio (or - for standard input) to a .sec bitstream (- for standard output)\n"
    "  --levels N          use the first N codebook levels (default: all); fewer = lower bitrate\n"
    "  --bandwidth KBPS    pick the most levels whose packed bitrate fits KBPS kbit/s\n"
    "  --entropy           range-code the tokens with adaptive models (smaller, a little slower)\n"
    "  --chunk-frames N    frames per CRC-protected chunk of the file (default 250 = 5 s)\n"
    "  --nearest           nearest-codeword tokens instead of the model's SE rule (comparison)\n"
    "  --tokens FILE       also write the tokens: FILE.npy (int32 [frames, levels]) or text\n"
    "                      (one line per frame, levels separated by spaces)\n"
    "  --latents FILE.npy  also write the encoder latents (float32 [frames, D]; whole file in memory)\n"
    "decode: a .sec file (or -) to audio (.wav 16-bit PCM; .flac; --float for 32-bit float WAV)\n"
    "  --salvage           on a damaged file, decode the intact chunks before the first bad one\n"
    "  --float             write 32-bit float samples (default 16-bit PCM, clipped to [-1, 1])\n"
    "roundtrip: encode and decode in memory, print the bitrate and the SNR, write the audio\n"
    "info: print the header, the bitrate and check every chunk's CRC\n"
    "build-codebook: build SE codebooks from audio (one path per line in LIST) or a float32 .npy\n"
    "  of features, write a copy of MODEL with them (see docs/secodec-model.md)\n"
    "  --levels L (8)  --nodes N (10000)  --k K (0 = the 1-D SE stable-point rule)\n"
    "  --group n (0 = ceil(N/1024))  --min-community M (2)  --seed S (1)\n"
    "  --max-frames F  frames kept from the audio, sampled uniformly (default 4 N)\n"
    "se-stats: graph and partition statistics (N, k, edges, 1-D SE, 2-D SE, K, community sizes)\n"
    "  of features (--features X.npy, options as build-codebook) or of a model's codebooks\n"
    "\n"
    "common: -m/--model FILE, -t/--threads N, -f/--force (overwrite outputs), -q, -v\n";

static int run(int argc, char **argv);

const cli_command cli_cmd_codec = {
    CMD,
    "neural speech codec: encode/decode audio to .sec bitstreams, build SE codebooks",
    usage,
    run,
};

typedef struct opts {
    cli_common c;
    const char *sub;
    const char *in, *out;
    int levels;
    double bandwidth;
    int entropy, nearest, salvage, as_float, force;
    int chunk_frames;
    const char *tokens, *latents;
    /* build-codebook / se-stats */
    const char *audio_list, *features;
    long nodes, k, group, min_community, max_frames;
    unsigned long long seed;
} opts;

static int parse(opts *o, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error(CMD, "no subcommand given (encode, decode, roundtrip, info, build-codebook, se-stats)");
    o->sub = argv[1];
    if (strcmp(o->sub, "encode") && strcmp(o->sub, "decode") && strcmp(o->sub, "roundtrip") &&
        strcmp(o->sub, "info") && strcmp(o->sub, "build-codebook") && strcmp(o->sub, "se-stats"))
        return cli_usage_error(CMD, "unknown subcommand '%s' (encode, decode, roundtrip, info, build-codebook, se-stats)",
                               o->sub);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_parse_common(&o->c, CMD, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        long v;
        if (strcmp(a, "--levels") == 0 || strcmp(a, "--chunk-frames") == 0 || strcmp(a, "--tokens") == 0 || strcmp(a, "--latents") == 0 ||
            strcmp(a, "--bandwidth") == 0 || strcmp(a, "--audio-list") == 0 || strcmp(a, "--features") == 0 ||
            strcmp(a, "--nodes") == 0 || strcmp(a, "--k") == 0 || strcmp(a, "--group") == 0 ||
            strcmp(a, "--min-community") == 0 || strcmp(a, "--seed") == 0 || strcmp(a, "--max-frames") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error(CMD, "option %s needs a value", a);
            const char *val = argv[++i];
            if (strcmp(a, "--levels") == 0) {
                if (cli_parse_int(CMD, a, val, 1, SEC_MAX_LEVELS, &v))
                    return 2;
                o->levels = (int)v;
            } else if (strcmp(a, "--chunk-frames") == 0) {
                if (cli_parse_int(CMD, a, val, 1, SEC_MAX_FRAMES_PER_CHUNK, &v))
                    return 2;
                o->chunk_frames = (int)v;
            } else if (strcmp(a, "--bandwidth") == 0) {
                if (cli_parse_float(CMD, a, val, &o->bandwidth))
                    return 2;
                if (!(o->bandwidth > 0))
                    return cli_usage_error(CMD, "--bandwidth must be positive (kbit/s), got '%s'", val);
            } else if (strcmp(a, "--tokens") == 0) {
                o->tokens = val;
            } else if (strcmp(a, "--latents") == 0) {
                o->latents = val;
            } else if (strcmp(a, "--audio-list") == 0) {
                o->audio_list = val;
            } else if (strcmp(a, "--features") == 0) {
                o->features = val;
            } else if (strcmp(a, "--nodes") == 0) {
                if (cli_parse_int(CMD, a, val, 2, 10000000, &o->nodes))
                    return 2;
            } else if (strcmp(a, "--k") == 0) {
                if (cli_parse_int(CMD, a, val, 0, 10000, &o->k))
                    return 2;
            } else if (strcmp(a, "--group") == 0) {
                if (cli_parse_int(CMD, a, val, 0, 10000000, &o->group))
                    return 2;
            } else if (strcmp(a, "--min-community") == 0) {
                if (cli_parse_int(CMD, a, val, 1, 10000000, &o->min_community))
                    return 2;
            } else if (strcmp(a, "--max-frames") == 0) {
                if (cli_parse_int(CMD, a, val, 1, 100000000, &o->max_frames))
                    return 2;
            } else {
                char *end;
                errno = 0;
                o->seed = strtoull(val, &end, 10);
                if (errno || end == val || *end)
                    return cli_usage_error(CMD, "--seed expects a non-negative integer, got '%s'", val);
            }
        } else if (strcmp(a, "--entropy") == 0) {
            o->entropy = 1;
        } else if (strcmp(a, "--nearest") == 0) {
            o->nearest = 1;
        } else if (strcmp(a, "--salvage") == 0) {
            o->salvage = 1;
        } else if (strcmp(a, "--float") == 0) {
            o->as_float = 1;
        } else if (strcmp(a, "-f") == 0 || strcmp(a, "--force") == 0) {
            o->force = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_usage_error(CMD, "unknown option '%s' for 'codec %s'", a, o->sub);
        } else if (!o->in) {
            o->in = a;
        } else if (!o->out) {
            o->out = a;
        } else {
            return cli_usage_error(CMD, "too many arguments ('%s')", a);
        }
    }
    int is_build = strcmp(o->sub, "build-codebook") == 0, is_stats = strcmp(o->sub, "se-stats") == 0;
    if (is_build || is_stats) {
        if (o->in)
            return cli_usage_error(CMD, "'codec %s' takes no positional arguments ('%s')", o->sub, o->in);
        if (is_build && !o->c.model)
            return cli_usage_error(CMD, "build-codebook needs -m MODEL (the network whose latents are clustered)");
        if (is_build && !o->c.output)
            return cli_usage_error(CMD, "build-codebook needs -o OUT.gguf");
        if (is_build && !!o->audio_list == !!o->features)
            return cli_usage_error(CMD, "build-codebook needs exactly one of --audio-list LIST and --features X.npy");
        if (is_stats && !o->features && !o->c.model)
            return cli_usage_error(CMD, "se-stats needs --features X.npy or -m MODEL");
        return 0;
    }
    if (!o->in)
        return cli_usage_error(CMD, "'codec %s' needs an input", o->sub);
    if (strcmp(o->sub, "info") == 0) {
        if (o->out)
            return cli_usage_error(CMD, "'codec info' takes one input");
        return 0;
    }
    if (!o->out && o->c.output)
        o->out = o->c.output;
    if (!o->out)
        return cli_usage_error(CMD, "'codec %s' needs an output", o->sub);
    if (!o->c.model)
        return cli_usage_error(CMD, "'codec %s' needs -m MODEL (a SECodec model file)", o->sub);
    if (o->levels && o->bandwidth > 0)
        return cli_usage_error(CMD, "--levels and --bandwidth both choose the level count: give one");
    return 0;
}

/* Refuse to overwrite an existing output unless --force (stdout "-" is always fine). */
static int check_output(const opts *o, const char *path)
{
    struct stat st;
    if (strcmp(path, "-") != 0 && !o->force && stat(path, &st) == 0 && S_ISREG(st.st_mode))
        return cli_error("%s exists (use -f to overwrite)", path);
    return 0;
}

static int load_codec(const opts *o, cochlea_codec **c)
{
    cochlea_codec_params p = cochlea_codec_default_params();
    p.n_threads = o->c.threads;
    int rc = cochlea_codec_load(o->c.model, &p, c);
    if (rc)
        return cli_lib_error(rc, "");
    if (o->c.verbose)
        fprintf(stderr, "cochlea: model %s: %d Hz, hop %d, D %d, %d levels (%s), fingerprint %016llx\n", o->c.model,
                cochlea_codec_sample_rate(*c), cochlea_codec_hop(*c), cochlea_codec_dimension(*c),
                cochlea_codec_n_levels(*c), cochlea_codec_quantizer(*c),
                (unsigned long long)cochlea_codec_fingerprint(*c));
    return 0;
}

/* Fill a .sec header for n_levels levels of the codec. */
static void fill_header(sec_header *h, const cochlea_codec *c, int n_levels, uint64_t n_samples, int chunk_frames,
                        int entropy)
{
    memset(h, 0, sizeof *h);
    h->version = SEC_VERSION;
    h->flags = entropy ? SEC_FLAG_ENTROPY : 0;
    h->fingerprint = cochlea_codec_fingerprint(c);
    h->sample_rate = (uint32_t)cochlea_codec_sample_rate(c);
    h->hop = (uint32_t)cochlea_codec_hop(c);
    h->n_samples = n_samples;
    h->frames_per_chunk = (uint32_t)chunk_frames;
    h->n_levels = (uint32_t)n_levels;
    for (int l = 0; l < n_levels; l++)
        h->codebook_size[l] = (uint32_t)cochlea_codec_codebook_size(c, l);
}

/* The level count to use: --levels, the most levels within --bandwidth, or all. */
static int choose_levels(const opts *o, const cochlea_codec *c, int *levels)
{
    int L = cochlea_codec_n_levels(c);
    if (L < 1)
        return cli_error("%s has no codebooks (a bare network): build them with 'cochlea codec build-codebook'",
                         o->c.model);
    if (o->levels) {
        if (o->levels > L)
            return cli_error("--levels %d: %s has %d levels", o->levels, o->c.model, L);
        *levels = o->levels;
        return 0;
    }
    if (o->bandwidth > 0) {
        double fr = (double)cochlea_codec_sample_rate(c) / cochlea_codec_hop(c), bits = 0;
        int n = 0;
        for (int l = 0; l < L; l++) {
            bits += sec_code_bits((uint32_t)cochlea_codec_codebook_size(c, l));
            if (fr * bits > o->bandwidth * 1000.0)
                break;
            n = l + 1;
        }
        if (n == 0)
            return cli_error("--bandwidth %.3g kbit/s is below one level (%.3g kbit/s)", o->bandwidth,
                             fr * sec_code_bits((uint32_t)cochlea_codec_codebook_size(c, 0)) / 1000.0);
        *levels = n;
        return 0;
    }
    *levels = L;
    return 0;
}

/* ---- tokens in memory ---------------------------------------------------------------------- */

typedef struct code_buf {
    int32_t *codes;
    size_t n_frames, cap, levels;
} code_buf;

static int code_buf_push(const int32_t *codes, size_t n, void *user)
{
    code_buf *b = user;
    if (b->n_frames + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n_frames + n)
            cap *= 2;
        int32_t *p = realloc(b->codes, cap * b->levels * sizeof *p);
        if (!p)
            return err_set(COCHLEA_ENOMEM, "out of memory for %zu frames of tokens", cap);
        b->codes = p;
        b->cap = cap;
    }
    memcpy(b->codes + b->n_frames * b->levels, codes, n * b->levels * sizeof *codes);
    b->n_frames += n;
    return COCHLEA_OK;
}

static int write_tokens(const char *path, const int32_t *codes, size_t n_frames, int levels)
{
    size_t len = strlen(path);
    if (len >= 4 && strcmp(path + len - 4, ".npy") == 0) {
        size_t shape[2] = {n_frames, (size_t)levels};
        return cli_write_npy_typed(path, "<i4", codes, sizeof(int32_t), 2, shape);
    }
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (!f)
        return cli_error("%s: cannot create: %s", path, strerror(errno));
    for (size_t t = 0; t < n_frames; t++)
        for (int l = 0; l < levels; l++)
            fprintf(f, "%d%c", codes[t * (size_t)levels + (size_t)l], l + 1 < levels ? ' ' : '\n');
    int bad = ferror(f);
    if (f != stdout)
        bad |= fclose(f) != 0;
    else
        bad |= fflush(f) != 0;
    if (bad)
        return cli_error("%s: write error", path);
    return 0;
}

/* ---- file I/O for the bitstream --------------------------------------------------------------- */

static int file_write(void *user, const void *buf, size_t n)
{
    return fwrite(buf, 1, n, (FILE *)user) == n ? 0 : -1;
}

static ptrdiff_t file_read(void *user, void *buf, size_t n)
{
    size_t k = fread(buf, 1, n, (FILE *)user);
    if (k == 0 && ferror((FILE *)user))
        return -1;
    return (ptrdiff_t)k;
}

/* ---- audio output ------------------------------------------------------------------------------ */

typedef struct audio_out {
    SNDFILE *sf;
    const char *path;
    uint64_t written;
} audio_out;

static int audio_out_open(audio_out *a, const char *path, int rate, int as_float)
{
    SF_INFO info;
    memset(&info, 0, sizeof info);
    info.samplerate = rate;
    info.channels = 1;
    size_t len = strlen(path);
    if (len >= 5 && strcasecmp(path + len - 5, ".flac") == 0)
        info.format = SF_FORMAT_FLAC | SF_FORMAT_PCM_16;
    else
        info.format = SF_FORMAT_WAV | (as_float ? SF_FORMAT_FLOAT : SF_FORMAT_PCM_16);
    a->path = path;
    a->written = 0;
    a->sf = sf_open(path, SFM_WRITE, &info);
    if (!a->sf)
        return cli_error("%s: cannot create: %s", path, sf_strerror(NULL));
    sf_command(a->sf, SFC_SET_CLIPPING, NULL, SF_TRUE);
    return 0;
}

static int audio_out_write(const float *pcm, size_t n, void *user)
{
    audio_out *a = user;
    if (sf_write_float(a->sf, pcm, (sf_count_t)n) != (sf_count_t)n)
        return err_set(COCHLEA_EIO, "%s: write error: %s", a->path, sf_strerror(a->sf));
    a->written += n;
    return COCHLEA_OK;
}

static int audio_out_close(audio_out *a, int ok)
{
    int bad = a->sf && sf_close(a->sf) != 0;
    a->sf = NULL;
    if (!ok || bad) {
        unlink(a->path);
        if (ok)
            return cli_error("%s: write error", a->path);
        return 1;
    }
    return 0;
}

static void print_rate(const char *what, const sec_header *h, uint64_t bytes)
{
    double secs = (double)h->n_samples / h->sample_rate;
    fprintf(stderr, "cochlea: %s: %.2f s, %u levels (", what, secs, h->n_levels);
    for (uint32_t l = 0; l < h->n_levels; l++)
        fprintf(stderr, "%s%u", l ? " " : "K ", h->codebook_size[l]);
    fprintf(stderr, "), tokens %.0f bit/s packed (%.0f bit/s at log2 K), file %llu bytes = %.0f bit/s%s\n",
            sec_bitrate_packed(h), sec_bitrate_log2(h), (unsigned long long)bytes, sec_bitrate_file(h, bytes),
            (h->flags & SEC_FLAG_ENTROPY) ? " (entropy coded)" : "");
}

/* ---- encode ---------------------------------------------------------------------------------- */

static int open_audio(const opts *o, const cochlea_codec *c, cochlea_audio **a)
{
    cochlea_audio_params ap = cochlea_audio_default_params();
    ap.sample_rate = cochlea_codec_sample_rate(c);
    int rc = cochlea_audio_open(o->in, &ap, a);
    if (rc)
        return cli_lib_error(rc, "");
    return 0;
}

/* Encode o->in into tokens held in memory (tokens are small: 50 frames/s x levels x 4 bytes). */
static int encode_to_codes(const opts *o, cochlea_codec *c, int levels, code_buf *b, uint64_t *n_samples)
{
    cochlea_audio *a;
    if (open_audio(o, c, &a))
        return 1;
    b->levels = (size_t)levels;
    progress pg;
    progress_start(&pg, stderr, "encoding", 0, o->c.quiet);
    int rc = cochlea_codec_encode_audio(c, a, levels, o->nearest, code_buf_push, b, n_samples, progress_callback, &pg);
    progress_end(&pg);
    cochlea_audio_close(a);
    if (rc)
        return cli_lib_error(rc, o->in);
    return 0;
}

/* The encoder latents of o->in as a float32 .npy [frames, D] (the whole file in memory). */
static int write_latents(const opts *o, cochlea_codec *c)
{
    cochlea_audio_params ap = cochlea_audio_default_params();
    ap.sample_rate = cochlea_codec_sample_rate(c);
    float *pcm = NULL;
    size_t n = 0;
    int rc = cochlea_audio_load(o->in, &ap, &pcm, &n);
    if (rc)
        return cli_lib_error(rc, "");
    size_t shape[2] = {cochlea_codec_n_frames(c, n), (size_t)cochlea_codec_dimension(c)};
    float *z = malloc((shape[0] ? shape[0] : 1) * shape[1] * sizeof *z);
    int ret = 1;
    if (!z)
        cli_error("out of memory for %zu frames of latents", shape[0]);
    else if ((rc = cochlea_codec_encode_latents(c, pcm, n, z)))
        cli_lib_error(rc, o->in);
    else
        ret = cli_write_npy(o->latents, z, 2, shape);
    free(z);
    cochlea_audio_samples_free(pcm);
    return ret;
}

static int cmd_encode(const opts *o)
{
    if (check_output(o, o->out) || (o->tokens && check_output(o, o->tokens)) ||
        (o->latents && check_output(o, o->latents)))
        return 1;
    cochlea_codec *c;
    if (load_codec(o, &c))
        return 1;
    int levels, ret = 1;
    code_buf b = {0};
    FILE *f = NULL;
    sec_writer *w = NULL;
    if (choose_levels(o, c, &levels))
        goto done;
    double t0 = progress_now();
    uint64_t n_samples = 0;
    if (encode_to_codes(o, c, levels, &b, &n_samples))
        goto done;
    double t1 = progress_now();
    sec_header h;
    fill_header(&h, c, levels, n_samples, o->chunk_frames ? o->chunk_frames : DEFAULT_CHUNK_FRAMES, o->entropy);
    int to_stdout = strcmp(o->out, "-") == 0;
    f = to_stdout ? stdout : fopen(o->out, "wb");
    if (!f) {
        cli_error("%s: cannot create: %s", o->out, strerror(errno));
        goto done;
    }
    int rc = sec_writer_open(&w, &h, file_write, f);
    if (!rc)
        rc = sec_writer_push(w, b.codes, b.n_frames);
    if (!rc)
        rc = sec_writer_finish(w);
    if (rc) {
        cli_lib_error(rc, o->out);
        goto done;
    }
    uint64_t bytes = sec_writer_bytes(w);
    if ((to_stdout ? fflush(f) : fclose(f)) != 0) {
        f = NULL;
        cli_error("%s: write error: %s", o->out, strerror(errno));
        goto done;
    }
    f = NULL;
    if (o->tokens && write_tokens(o->tokens, b.codes, b.n_frames, levels))
        goto done;
    if (o->latents && write_latents(o, c))
        goto done;
    if (!o->c.quiet) {
        print_rate("encoded", &h, bytes);
        double secs = (double)n_samples / h.sample_rate;
        fprintf(stderr, "cochlea: %llu frames in %.2f s (%.1fx real time)\n", (unsigned long long)b.n_frames, t1 - t0,
                t1 > t0 ? secs / (t1 - t0) : 0.0);
    }
    ret = 0;
done:
    if (f && f != stdout) {
        fclose(f);
    }
    if (ret && strcmp(o->out, "-") != 0)
        unlink(o->out);
    sec_writer_free(w);
    free(b.codes);
    cochlea_codec_free(c);
    return ret;
}

/* ---- decode ---------------------------------------------------------------------------------- */

typedef struct stream_in {
    sec_reader *r;
    size_t L;
    const int32_t *pending; /* frames of the current chunk not handed out yet */
    size_t n_pending;
    int salvage;
    int failed;             /* a chunk was bad (salvage mode goes on without it) */
    int rc;
    audio_out *ao;          /* where the audio goes */
} stream_in;

static int stream_pcm(const float *pcm, size_t n, void *user)
{
    return audio_out_write(pcm, n, ((stream_in *)user)->ao);
}

static int next_codes(int32_t *codes, size_t max, size_t *n, void *user)
{
    stream_in *s = user;
    *n = 0;
    if (s->failed)
        return COCHLEA_OK;
    if (s->n_pending == 0) {
        size_t got = 0;
        int rc = sec_reader_next(s->r, &s->pending, &got, NULL);
        if (rc) {
            s->failed = 1;
            s->rc = rc;
            if (s->salvage)
                return COCHLEA_OK; /* the end of the intact prefix */
            return rc;
        }
        s->n_pending = got;
        if (got == 0)
            return COCHLEA_OK;
    }
    size_t k = s->n_pending < max ? s->n_pending : max;
    memcpy(codes, s->pending, k * s->L * sizeof(int32_t));
    s->pending += k * s->L;
    s->n_pending -= k;
    *n = k;
    return COCHLEA_OK;
}

/* The model must be the one the stream was made with, with at least its levels and sizes. */
static int check_stream_model(const sec_header *h, const cochlea_codec *c, const char *in, const char *model)
{
    int rc = sec_check_fingerprint(h, cochlea_codec_fingerprint(c));
    if (rc)
        return cli_error("%s: %s (decode with the model %s was not made from)", in, cochlea_last_error(), model);
    if ((int)h->n_levels > cochlea_codec_n_levels(c) || h->sample_rate != (uint32_t)cochlea_codec_sample_rate(c) ||
        h->hop != (uint32_t)cochlea_codec_hop(c))
        return cli_error("%s: the stream (%u levels, %u Hz, hop %u) does not fit %s", in, h->n_levels, h->sample_rate,
                         h->hop, model);
    for (uint32_t l = 0; l < h->n_levels; l++)
        if (h->codebook_size[l] != (uint32_t)cochlea_codec_codebook_size(c, (int)l))
            return cli_error("%s: level %u has %u codes in the stream, %d in %s", in, l, h->codebook_size[l],
                             cochlea_codec_codebook_size(c, (int)l), model);
    return 0;
}

static int cmd_decode(const opts *o)
{
    if (check_output(o, o->out))
        return 1;
    if (strcmp(o->out, "-") == 0)
        return cli_error("decode writes a seekable audio file: give a file name, not -");
    int from_stdin = strcmp(o->in, "-") == 0;
    FILE *f = from_stdin ? stdin : fopen(o->in, "rb");
    if (!f)
        return cli_error("%s: cannot open: %s", o->in, strerror(errno));
    cochlea_codec *c = NULL;
    stream_in s = {0};
    audio_out ao = {0};
    int ret = 1, rc;
    if ((rc = sec_reader_open(&s.r, file_read, f))) {
        cli_lib_error(rc, o->in);
        goto done;
    }
    const sec_header *h = sec_reader_header(s.r);
    if (load_codec(o, &c) || check_stream_model(h, c, o->in, o->c.model))
        goto done;
    if (audio_out_open(&ao, o->out, (int)h->sample_rate, o->as_float))
        goto done;
    s.L = h->n_levels;
    s.salvage = o->salvage;
    s.ao = &ao;
    double t0 = progress_now();
    progress pg;
    progress_start(&pg, stderr, "decoding", 0, o->c.quiet);
    rc = cochlea_codec_decode_stream(c, (int)h->n_levels, h->n_samples, next_codes, stream_pcm, &s,
                                     progress_callback, &pg);
    progress_end(&pg);
    double t1 = progress_now();
    if (rc) {
        cli_lib_error(s.failed ? s.rc : rc, o->in);
        audio_out_close(&ao, 0);
        goto done;
    }
    if (s.failed) {
        fprintf(stderr, "cochlea: warning: %s: %s\n", o->in, cochlea_strerror(s.rc));
        fprintf(stderr, "cochlea: warning: --salvage: decoded the intact %llu of %llu frames (%.2f of %.2f s)\n",
                (unsigned long long)sec_reader_frames(s.r), (unsigned long long)sec_header_n_frames(h),
                (double)ao.written / h->sample_rate, (double)h->n_samples / h->sample_rate);
    } else if (ao.written != h->n_samples) {
        cli_error("%s: the stream ends after %llu of %llu samples", o->in, (unsigned long long)ao.written,
                  (unsigned long long)h->n_samples);
        audio_out_close(&ao, 0);
        goto done;
    }
    if (audio_out_close(&ao, 1))
        goto done;
    if (!o->c.quiet) {
        double secs = (double)ao.written / h->sample_rate;
        fprintf(stderr, "cochlea: decoded %.2f s to %s in %.2f s (%.1fx real time)\n", secs, o->out, t1 - t0,
                t1 > t0 ? secs / (t1 - t0) : 0.0);
    }
    ret = s.failed ? 3 : 0;
done:
    if (ao.sf)
        audio_out_close(&ao, 0);
    sec_reader_free(s.r);
    cochlea_codec_free(c);
    if (!from_stdin)
        fclose(f);
    return ret;
}

/* ---- roundtrip ------------------------------------------------------------------------------- */

static int cmd_roundtrip(const opts *o)
{
    if (check_output(o, o->out))
        return 1;
    cochlea_codec *c;
    if (load_codec(o, &c))
        return 1;
    int levels, ret = 1, rc;
    float *pcm = NULL, *rec = NULL;
    size_t n = 0;
    uint8_t *bytes = NULL;
    size_t n_bytes = 0;
    int32_t *codes = NULL;
    if (choose_levels(o, c, &levels))
        goto done;
    cochlea_audio_params ap = cochlea_audio_default_params();
    ap.sample_rate = cochlea_codec_sample_rate(c);
    if ((rc = cochlea_audio_load(o->in, &ap, &pcm, &n))) {
        cli_lib_error(rc, "");
        goto done;
    }
    size_t T = cochlea_codec_n_frames(c, n);
    codes = malloc((T ? T : 1) * (size_t)levels * sizeof *codes);
    rec = malloc((n ? n : 1) * sizeof *rec);
    if (!codes || !rec) {
        cli_error("out of memory");
        goto done;
    }
    double t0 = progress_now();
    if ((rc = cochlea_codec_encode(c, pcm, n, levels, o->nearest, codes))) {
        cli_lib_error(rc, o->in);
        goto done;
    }
    double t1 = progress_now();
    sec_header h;
    fill_header(&h, c, levels, n, o->chunk_frames ? o->chunk_frames : DEFAULT_CHUNK_FRAMES, o->entropy);
    if ((rc = sec_encode(&h, codes, T, &bytes, &n_bytes))) {
        cli_lib_error(rc, "bitstream");
        goto done;
    }
    /* decode from the bitstream bytes, as a decoder on another machine would */
    sec_memsrc src = {bytes, n_bytes, 0};
    int32_t *codes2 = NULL;
    uint64_t T2 = 0;
    if ((rc = sec_decode(sec_memsrc_read, &src, NULL, &codes2, &T2))) {
        free(codes2);
        cli_lib_error(rc, "bitstream");
        goto done;
    }
    int same = T2 == T && (T == 0 || memcmp(codes, codes2, T * (size_t)levels * sizeof *codes) == 0);
    double t2 = progress_now();
    rc = cochlea_codec_decode(c, codes2, T, levels, rec, n);
    free(codes2);
    if (rc) {
        cli_lib_error(rc, "decoding");
        goto done;
    }
    double t3 = progress_now();
    if (!same) {
        cli_error("internal error: the bitstream did not give back the tokens");
        goto done;
    }
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)pcm[i] - rec[i];
        num += (double)pcm[i] * pcm[i];
        den += d * d;
    }
    audio_out ao;
    if (audio_out_open(&ao, o->out, cochlea_codec_sample_rate(c), o->as_float))
        goto done;
    if ((rc = audio_out_write(rec, n, &ao))) {
        cli_lib_error(rc, "");
        audio_out_close(&ao, 0);
        goto done;
    }
    if (audio_out_close(&ao, 1))
        goto done;
    if (!o->c.quiet) {
        print_rate("roundtrip", &h, n_bytes);
        double secs = (double)n / h.sample_rate;
        fprintf(stderr, "cochlea: SNR %.2f dB; encode %.1fx, decode %.1fx real time\n",
                den > 0 ? 10 * log10(num / den) : INFINITY, t1 > t0 ? secs / (t1 - t0) : 0.0,
                t3 > t2 ? secs / (t3 - t2) : 0.0);
    }
    ret = 0;
done:
    free(bytes);
    free(codes);
    free(rec);
    cochlea_audio_samples_free(pcm);
    cochlea_codec_free(c);
    return ret;
}

/* ---- info ------------------------------------------------------------------------------------ */

static int cmd_info(const opts *o)
{
    int from_stdin = strcmp(o->in, "-") == 0;
    FILE *f = from_stdin ? stdin : fopen(o->in, "rb");
    if (!f)
        return cli_error("%s: cannot open: %s", o->in, strerror(errno));
    sec_reader *r = NULL;
    cochlea_codec *c = NULL;
    int ret = 1;
    int rc = sec_reader_open(&r, file_read, f);
    if (rc) {
        cli_lib_error(rc, o->in);
        goto done;
    }
    const sec_header *h = sec_reader_header(r);
    printf("file: %s\nformat: .sec version %u%s\nmodel fingerprint: %016llx\n", o->in, h->version,
           (h->flags & SEC_FLAG_ENTROPY) ? ", entropy coded" : ", bit-packed",
           (unsigned long long)h->fingerprint);
    printf("sample rate: %u Hz\nhop: %u samples (%.3f frames/s)\nsamples: %llu (%.3f s)\nframes: %llu in %llu chunks of "
           "%u\nlevels: %u\ncodebook sizes:",
           h->sample_rate, h->hop, sec_frame_rate(h), (unsigned long long)h->n_samples,
           (double)h->n_samples / h->sample_rate, (unsigned long long)sec_header_n_frames(h),
           (unsigned long long)sec_header_n_chunks(h), h->frames_per_chunk, h->n_levels);
    for (uint32_t l = 0; l < h->n_levels; l++)
        printf(" %u", h->codebook_size[l]);
    printf("\nbits per frame (packed): %u\nbitrate: %.1f bit/s packed, %.1f bit/s at log2 K\n", sec_bits_per_frame(h),
           sec_bitrate_packed(h), sec_bitrate_log2(h));
    /* read every chunk: CRCs and codes */
    const int32_t *codes;
    size_t n;
    uint64_t chunks = 0;
    while ((rc = sec_reader_next(r, &codes, &n, NULL)) == COCHLEA_OK && n > 0)
        chunks++;
    if (rc) {
        printf("chunks: %llu intact, then damage: %s\n", (unsigned long long)chunks, cochlea_last_error());
        cli_error("%s: %s", o->in, cochlea_last_error());
        goto done;
    }
    struct stat st;
    if (!from_stdin && stat(o->in, &st) == 0)
        printf("file size: %lld bytes (%.1f bit/s overall)\n", (long long)st.st_size,
               sec_bitrate_file(h, (uint64_t)st.st_size));
    printf("chunks: all %llu intact (CRC-32 checked)\n", (unsigned long long)chunks);
    if (o->c.model) {
        cochlea_codec_params p = cochlea_codec_default_params();
        p.n_threads = 1;
        if ((rc = cochlea_codec_load(o->c.model, &p, &c))) {
            cli_lib_error(rc, "");
            goto done;
        }
        if (check_stream_model(h, c, o->in, o->c.model))
            goto done;
        printf("model: %s matches\n", o->c.model);
    }
    ret = 0;
done:
    sec_reader_free(r);
    cochlea_codec_free(c);
    if (!from_stdin)
        fclose(f);
    return ret;
}

static int cmd_build_codebook(const opts *o);
static int cmd_se_stats(const opts *o);

static int run(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) {
            cli_print_usage(&cli_cmd_codec);
            return 0;
        }
    opts o;
    memset(&o, 0, sizeof o);
    int rc = parse(&o, argc, argv);
    if (rc)
        return rc;
    cli_setup_logging(&o.c);
    if (strcmp(o.sub, "encode") == 0)
        return cmd_encode(&o);
    if (strcmp(o.sub, "decode") == 0)
        return cmd_decode(&o);
    if (strcmp(o.sub, "roundtrip") == 0)
        return cmd_roundtrip(&o);
    if (strcmp(o.sub, "info") == 0)
        return cmd_info(&o);
    if (strcmp(o.sub, "build-codebook") == 0)
        return cmd_build_codebook(&o);
    return cmd_se_stats(&o);
}

/* ---- build-codebook / se-stats ------------------------------------------------------------------ */

/* splitmix64: the reservoir sampler's generator (seeded with --seed). */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A uniform sample of at most cap rows of D floats from a stream of rows (reservoir sampling,
 * Vitter's algorithm R): every row seen so far is kept with probability cap / seen. */
typedef struct reservoir {
    float *rows;
    size_t cap, n, D;
    uint64_t seen, rng;
} reservoir;

static void reservoir_add(reservoir *r, const float *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        r->seen++;
        size_t slot;
        if (r->n < r->cap) {
            slot = r->n++;
        } else {
            uint64_t j = splitmix64(&r->rng) % r->seen;
            if (j >= r->cap)
                continue;
            slot = (size_t)j;
        }
        memcpy(r->rows + slot * r->D, rows + i * r->D, r->D * sizeof(float));
    }
}

/* Latents of every file in the list, sampled into r. */
static int gather_latents(const opts *o, cochlea_codec *c, reservoir *r, size_t *n_files, double *seconds)
{
    FILE *lf = strcmp(o->audio_list, "-") == 0 ? stdin : fopen(o->audio_list, "r");
    if (!lf)
        return cli_error("%s: cannot open: %s", o->audio_list, strerror(errno));
    char line[4096];
    int ret = 0;
    size_t lineno = 0;
    cochlea_audio_params ap = cochlea_audio_default_params();
    ap.sample_rate = cochlea_codec_sample_rate(c);
    const size_t D = (size_t)cochlea_codec_dimension(c);
    *n_files = 0;
    *seconds = 0;
    while (fgets(line, sizeof line, lf)) {
        lineno++;
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        float *pcm = NULL, *z = NULL;
        size_t n = 0;
        int rc = cochlea_audio_load(line, &ap, &pcm, &n);
        if (rc) {
            ret = cli_lib_error(rc, "");
            break;
        }
        size_t T = cochlea_codec_n_frames(c, n);
        if (T) {
            z = malloc(T * D * sizeof *z);
            if (!z) {
                cochlea_audio_samples_free(pcm);
                ret = cli_error("out of memory");
                break;
            }
            if ((rc = cochlea_codec_encode_latents(c, pcm, n, z))) {
                free(z);
                cochlea_audio_samples_free(pcm);
                ret = cli_lib_error(rc, line);
                break;
            }
            reservoir_add(r, z, T);
        }
        free(z);
        cochlea_audio_samples_free(pcm);
        (*n_files)++;
        *seconds += (double)n / ap.sample_rate;
        if (!o->c.quiet && isatty(2))
            fprintf(stderr, "\rcochlea: %zu files, %.1f s of audio, %llu frames", *n_files, *seconds,
                    (unsigned long long)r->seen);
    }
    if (!o->c.quiet && isatty(2))
        fputc('\n', stderr);
    if (ret == 0 && ferror(lf))
        ret = cli_error("%s: read error", o->audio_list);
    if (lf != stdin)
        fclose(lf);
    if (ret == 0 && r->n == 0)
        ret = cli_error("%s: no audio frames (line %zu)", o->audio_list, lineno);
    return ret;
}

/* A float32 [M, D] .npy read whole. */
static int read_features(const char *path, float **x, size_t *M, size_t *D)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cli_error("%s: cannot open: %s", path, strerror(errno));
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 1 << 20;
            unsigned char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                return cli_error("%s: out of memory", path);
            }
            buf = p;
        }
        size_t k = fread(buf + len, 1, cap - len, f);
        len += k;
        if (k == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return cli_error("%s: read error", path);
    }
    npy_array a;
    int rc = npy_parse(buf, len, path, &a);
    if (rc) {
        free(buf);
        return cli_lib_error(rc, "");
    }
    if (a.kind != 'f' || a.ndim != 2 || a.shape[0] < 2 || a.shape[1] < 1) {
        free(buf);
        return cli_error("%s: expected a float [frames, dims] array with at least 2 frames", path);
    }
    *M = a.shape[0];
    *D = a.shape[1];
    *x = malloc(a.count * sizeof **x);
    if (!*x) {
        free(buf);
        return cli_error("%s: out of memory", path);
    }
    for (size_t i = 0; i < a.count; i++) {
        double v = npy_get(&a, i);
        if (!isfinite(v)) {
            free(buf);
            free(*x);
            return cli_error("%s: element %zu (frame %zu) is not finite", path, i, i / *D);
        }
        (*x)[i] = (float)v;
    }
    free(buf);
    return 0;
}

static se_build_params build_params(const opts *o, int default_levels)
{
    se_build_params p = se_build_default_params();
    p.n_levels = o->levels ? o->levels : default_levels;
    if (o->nodes)
        p.n_nodes = o->nodes;
    p.k = (int)o->k;
    p.group_size = o->group;
    if (o->min_community)
        p.min_community_size = (int)o->min_community;
    if (o->seed)
        p.seed = o->seed;
    return p;
}

static void print_stats(FILE *out, const se_level_stats *s, int n_levels)
{
    fprintf(out, "level  nodes      k  edges      H1(bits)  H2(bits)  K      sizes min/median/max  reassigned  "
                 "fallback  residual MSE\n");
    for (int l = 0; l < n_levels; l++)
        fprintf(out, "%-6d %-10lld %-3d%s %-10lld %-9.4f %-9.4f %-6d %lld/%lld/%lld%*s %-11lld %-9lld %.6g\n", l,
                (long long)s[l].n_nodes, s[l].k, s[l].k_stable ? "*" : " ", (long long)s[l].n_edges, s[l].h1, s[l].h2,
                (int)s[l].K, (long long)s[l].size_min, (long long)s[l].size_median, (long long)s[l].size_max, 4, "",
                (long long)s[l].n_reassigned, (long long)s[l].n_fallback, s[l].mse);
    fprintf(out, "(* k chosen by the 1-D SE stable-point rule)\n");
}

static int cmd_build_codebook(const opts *o)
{
    if (check_output(o, o->c.output))
        return 1;
    cochlea_codec *c;
    if (load_codec(o, &c))
        return 1;
    int ret = 1, rc;
    float *x = NULL;
    size_t M = 0, D = 0;
    se_codebook *cb = NULL;
    cochlea_ctx *ctx = NULL;
    se_level_stats *st = NULL;
    se_build_params p = build_params(o, 8);
    char training[256];
    double t0 = progress_now();
    if (o->features) {
        if (read_features(o->features, &x, &M, &D))
            goto done;
        if (D != (size_t)cochlea_codec_dimension(c)) {
            cli_error("%s: %zu dims per frame, the model's latents have %d", o->features, D,
                      cochlea_codec_dimension(c));
            goto done;
        }
        snprintf(training, sizeof training, "codebooks from %zu feature frames of %s", M, o->features);
    } else {
        D = (size_t)cochlea_codec_dimension(c);
        size_t cap = o->max_frames ? (size_t)o->max_frames : 4 * (size_t)p.n_nodes;
        reservoir r = {NULL, cap, 0, D, 0, p.seed};
        if (cap > SIZE_MAX / D / sizeof(float) || !(r.rows = malloc(cap * D * sizeof(float)))) {
            cli_error("out of memory for %zu frames of %zu floats (lower --max-frames)", cap, D);
            goto done;
        }
        size_t n_files = 0;
        double secs = 0;
        if (gather_latents(o, c, &r, &n_files, &secs)) {
            free(r.rows);
            goto done;
        }
        x = r.rows;
        M = r.n;
        snprintf(training, sizeof training, "codebooks from %zu of %llu latent frames of %zu files (%.1f s) in %s", M,
                 (unsigned long long)r.seen, n_files, secs, o->audio_list);
    }
    if (!o->c.quiet)
        fprintf(stderr, "cochlea: building %d levels from %zu frames (N = %lld nodes per level)\n", p.n_levels, M,
                (long long)p.n_nodes);
    if ((rc = ctx_create(o->c.threads, COCHLEA_PRECISION_F32, &ctx))) {
        cli_lib_error(rc, "");
        goto done;
    }
    st = calloc((size_t)p.n_levels, sizeof *st);
    if (!st) {
        cli_error("out of memory");
        goto done;
    }
    if ((rc = se_codebook_build(ctx, x, (int64_t)M, (int64_t)D, &p, &cb, st))) {
        cli_lib_error(rc, "build-codebook");
        goto done;
    }
    double t1 = progress_now();
    if ((rc = codec_write_with_codebooks(codec_gguf(c), cb, COCHLEA_TYPE_F16, training, o->c.output))) {
        cli_lib_error(rc, o->c.output);
        goto done;
    }
    if (!o->c.quiet) {
        print_stats(stderr, st, p.n_levels);
        fprintf(stderr, "cochlea: wrote %s (%d levels) in %.1f s\n", o->c.output, p.n_levels, t1 - t0);
    }
    ret = 0;
done:
    free(st);
    se_codebook_free(cb);
    ctx_free(ctx);
    free(x);
    cochlea_codec_free(c);
    return ret;
}

static int cmd_se_stats(const opts *o)
{
    int ret = 1, rc;
    if (o->features) {
        float *x = NULL;
        size_t M, D;
        if (read_features(o->features, &x, &M, &D))
            return 1;
        se_build_params p = build_params(o, 1);
        cochlea_ctx *ctx = NULL;
        se_codebook *cb = NULL;
        se_level_stats *st = calloc((size_t)p.n_levels, sizeof *st);
        if (!st)
            ret = cli_error("out of memory");
        else if ((rc = ctx_create(o->c.threads, COCHLEA_PRECISION_F32, &ctx)))
            cli_lib_error(rc, "");
        else if ((rc = se_codebook_build(ctx, x, (int64_t)M, (int64_t)D, &p, &cb, st)))
            cli_lib_error(rc, o->features);
        else {
            printf("%s: %zu frames x %zu dims\n", o->features, M, D);
            print_stats(stdout, st, p.n_levels);
            ret = 0;
        }
        free(st);
        se_codebook_free(cb);
        ctx_free(ctx);
        free(x);
        return ret;
    }
    cochlea_codec_params cp = cochlea_codec_default_params();
    cp.n_threads = 1;
    cochlea_codec *c;
    if ((rc = cochlea_codec_load(o->c.model, &cp, &c)))
        return cli_lib_error(rc, "");
    se_codebook *cb = NULL;
    if ((rc = se_codebook_load(codec_gguf(c), cochlea_codec_dimension(c), &cb))) {
        cochlea_codec_free(c);
        return cli_lib_error(rc, "");
    }
    if (!cb) {
        cochlea_codec_free(c);
        return cli_error("%s has no codebooks", o->c.model);
    }
    printf("%s: quantizer %s, %d levels, D %lld\n", o->c.model, cb->quantizer == SE_QUANTIZER_SE ? "se" : "nearest",
           cb->n_levels, (long long)cb->dim);
    int err = 0;
    printf("level  nodes      k    K      vol           community sizes min/median/max\n");
    for (int l = 0; l < cb->n_levels; l++) {
        const se_level *lv = &cb->levels[l];
        int64_t mn = 0, md = 0, mx = 0;
        if (lv->n_nodes > 0) {
            int64_t *cnt = calloc((size_t)lv->K, sizeof *cnt);
            if (!cnt) {
                err = cli_error("out of memory");
                break;
            }
            for (int64_t i = 0; i < lv->n_nodes; i++)
                cnt[lv->community[i]]++;
            /* sizes sorted by counting */
            int64_t *sorted = malloc((size_t)lv->K * sizeof *sorted);
            if (!sorted) {
                free(cnt);
                err = cli_error("out of memory");
                break;
            }
            for (int32_t j = 0; j < lv->K; j++) {
                int32_t i = j;
                while (i > 0 && sorted[i - 1] > cnt[j]) {
                    sorted[i] = sorted[i - 1];
                    i--;
                }
                sorted[i] = cnt[j];
            }
            mn = sorted[0];
            md = sorted[lv->K / 2];
            mx = sorted[lv->K - 1];
            free(sorted);
            free(cnt);
        }
        printf("%-6d %-10lld %-4d %-6d %-13.6g %lld/%lld/%lld\n", l, (long long)lv->n_nodes, lv->k, (int)lv->K,
               lv->vol, (long long)mn, (long long)md, (long long)mx);
    }
    ret = err;
    se_codebook_free(cb);
    cochlea_codec_free(c);
    return ret;
}
