/* audio.c - decode any libsndfile format from a path or stdin, mix to mono (or pick a channel),
 * resample to the output rate with libsoxr HQ in a streaming way, and hand samples out through a
 * pull reader or as a whole buffer. Non-finite samples are rejected, never replaced. */
#include "audio.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sndfile.h>
#include <soxr.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

struct cochlea_audio {
    SNDFILE *sf;
    SF_INFO info;
    int spool_fd;       /* unlinked temporary copy of piped stdin, or -1 */
    char name[512];     /* path or "<stdin>", for messages */
    char format[192];
    int channel;        /* -1: average */
    int out_rate;
    soxr_t soxr;        /* NULL when the source is already at the output rate */
    float *ibuf;        /* one decoded block, interleaved */
    short *sbuf;        /* the same as 16-bit integers (pcm16 sources) */
    int pcm16;          /* 16-bit PCM: read as shorts, converted here (s / 32768, as libsndfile does) */
    int int_src;        /* integer samples: every decoded value is finite */
    float *mono;        /* the block as mono */
    size_t m_pos, m_len;
    float *obuf;        /* resampler output (NULL without resampler: mono is served directly) */
    size_t o_cap;
    const float *out;   /* samples ready for the caller: out[o_pos .. o_len) */
    size_t o_pos, o_len;
    int64_t frames_read;
    int src_eof, done;
    int err;            /* sticky: a failed stream keeps failing with the same message */
    char err_msg[768];
};

cochlea_audio_params cochlea_audio_default_params(void)
{
    cochlea_audio_params p;
    memset(&p, 0, sizeof p);
    p.sample_rate = 16000;
    p.channel = -1;
    p.raw_format = COCHLEA_RAW_NONE;
    return p;
}

enum cochlea_raw_format audio_raw_format_from_name(const char *name)
{
    static const struct {
        const char *name;
        enum cochlea_raw_format f;
    } names[] = {
        {"s8", COCHLEA_RAW_S8},   {"u8", COCHLEA_RAW_U8},   {"s16", COCHLEA_RAW_S16},   {"s24", COCHLEA_RAW_S24},
        {"s32", COCHLEA_RAW_S32}, {"f32", COCHLEA_RAW_F32}, {"f64", COCHLEA_RAW_F64},   {"ulaw", COCHLEA_RAW_ULAW},
        {"alaw", COCHLEA_RAW_ALAW},
    };
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0)
            return names[i].f;
    return COCHLEA_RAW_NONE;
}

void audio_supported_formats(char *buf, size_t n)
{
    int count = 0;
    size_t used = 0;
    if (n == 0)
        return;
    buf[0] = '\0';
    sf_command(NULL, SFC_GET_FORMAT_MAJOR_COUNT, &count, sizeof count);
    for (int i = 0; i < count; i++) {
        SF_FORMAT_INFO fi;
        memset(&fi, 0, sizeof fi);
        fi.format = i;
        if (sf_command(NULL, SFC_GET_FORMAT_MAJOR, &fi, sizeof fi) != 0 || !fi.extension)
            continue;
        /* several majors share an extension (wav, mat): list each once */
        size_t el = strlen(fi.extension);
        const char *seen = buf;
        int dup = 0;
        while ((seen = strstr(seen, fi.extension)) != NULL) {
            if ((seen == buf || seen[-1] == ' ') && (seen[el] == ',' || seen[el] == '\0')) {
                dup = 1;
                break;
            }
            seen += el;
        }
        if (dup)
            continue;
        int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", fi.extension);
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
}

/* The libsndfile subtype flag of a raw sample format, or 0. */
static int raw_subtype(enum cochlea_raw_format f)
{
    switch (f) {
    case COCHLEA_RAW_S8: return SF_FORMAT_PCM_S8;
    case COCHLEA_RAW_U8: return SF_FORMAT_PCM_U8;
    case COCHLEA_RAW_S16: return SF_FORMAT_PCM_16;
    case COCHLEA_RAW_S24: return SF_FORMAT_PCM_24;
    case COCHLEA_RAW_S32: return SF_FORMAT_PCM_32;
    case COCHLEA_RAW_F32: return SF_FORMAT_FLOAT;
    case COCHLEA_RAW_F64: return SF_FORMAT_DOUBLE;
    case COCHLEA_RAW_ULAW: return SF_FORMAT_ULAW;
    case COCHLEA_RAW_ALAW: return SF_FORMAT_ALAW;
    default: return 0;
    }
}

/* Copy standard input into an unlinked temporary file (most containers need seeking, and a pipe
 * cannot seek); *fd_out is its descriptor, positioned at 0. */
static int spool_stdin(const char *name, int *fd_out)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/cochlea-stdin-XXXXXX", dir && dir[0] ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return err_set(COCHLEA_EIO, "%s: cannot create a temporary file to hold piped input (%s): %s", name, path,
                       strerror(errno));
    unlink(path);
    enum { CHUNK = 1 << 16 };
    char *b = malloc(CHUNK);
    int rc = COCHLEA_OK;
    uint64_t total = 0;
    if (!b) {
        rc = err_set(COCHLEA_ENOMEM, "%s: out of memory", name);
        goto done;
    }
    for (;;) {
        ssize_t r = read(STDIN_FILENO, b, CHUNK);
        if (r == 0)
            break;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = err_set(COCHLEA_EIO, "%s: read error: %s", name, strerror(errno));
            goto done;
        }
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(fd, b + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = err_set(COCHLEA_EIO, "%s: cannot write the temporary copy of piped input: %s", name,
                             w < 0 ? strerror(errno) : "short write");
                goto done;
            }
            off += w;
        }
        total += (uint64_t)r;
    }
    if (total == 0)
        rc = err_set(COCHLEA_EFORMAT, "%s: no data (empty input)", name);
    else if (lseek(fd, 0, SEEK_SET) != 0)
        rc = err_set(COCHLEA_EIO, "%s: cannot rewind the temporary copy: %s", name, strerror(errno));
done:
    free(b);
    if (rc) {
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return COCHLEA_OK;
}

/* Map a failed sf_open to an error code with libsndfile's explanation. */
static int sf_open_error(const char *name)
{
    int e = sf_error(NULL);
    const char *why = sf_strerror(NULL);
    switch (e) {
    case SF_ERR_UNRECOGNISED_FORMAT:
        return err_set(COCHLEA_EUNSUPPORTED, "%s: not a recognised audio format (%s)", name, why);
    case SF_ERR_SYSTEM:
        return err_set(COCHLEA_EIO, "%s: %s", name, why);
    case SF_ERR_UNSUPPORTED_ENCODING:
        return err_set(COCHLEA_EUNSUPPORTED, "%s: unsupported codec or encoding (%s)", name, why);
    default:
        return err_set(COCHLEA_EFORMAT, "%s: malformed or unreadable audio (%s)", name, why);
    }
}

static void describe_format(cochlea_audio *a)
{
    SF_FORMAT_INFO major, sub;
    memset(&major, 0, sizeof major);
    memset(&sub, 0, sizeof sub);
    major.format = a->info.format & SF_FORMAT_TYPEMASK;
    sub.format = a->info.format & SF_FORMAT_SUBMASK;
    int okm = sf_command(NULL, SFC_GET_FORMAT_INFO, &major, sizeof major) == 0 && major.name;
    int oks = sf_command(NULL, SFC_GET_FORMAT_INFO, &sub, sizeof sub) == 0 && sub.name;
    snprintf(a->format, sizeof a->format, "%s, %s", okm ? major.name : "unknown container",
             oks ? sub.name : "unknown encoding");
}

/* libsndfile reads a WAV or AIFF whose sample chunk is cut short without complaint (it logs
 * "data : 4000 (should be 2000)"); treat that as truncation. Streaming writers put placeholder
 * sizes (0x7FFFFFFF, 0xFFFFFFFF) in that field: those are not errors. */
static int check_truncation(cochlea_audio *a)
{
    char *log = malloc(16384);
    if (!log)
        return err_set(COCHLEA_ENOMEM, "%s: out of memory", a->name);
    log[0] = '\0';
    sf_command(a->sf, SFC_GET_LOG_INFO, log, 16384);
    int rc = COCHLEA_OK;
    for (char *line = log; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        while (*line == ' ')
            line++;
        unsigned long long declared, actual;
        if ((strncmp(line, "data : ", 7) == 0 || strncmp(line, "SSND : ", 7) == 0) &&
            sscanf(line + 7, "%llu (should be %llu)", &declared, &actual) == 2 && declared > actual &&
            declared < 0x7FFFF000ull) {
            rc = err_set(COCHLEA_EFORMAT, "%s: truncated: the '%.4s' chunk declares %llu bytes but the file holds %llu",
                         a->name, line, declared, actual);
            break;
        }
        line = next;
    }
    free(log);
    return rc;
}

void cochlea_audio_close(cochlea_audio *a)
{
    if (!a)
        return;
    if (a->sf)
        sf_close(a->sf);
    if (a->spool_fd >= 0)
        close(a->spool_fd);
    if (a->soxr)
        soxr_delete(a->soxr);
    free(a->ibuf);
    free(a->sbuf);
    free(a->mono);
    free(a->obuf);
    free(a);
}

int cochlea_audio_open(const char *path, const cochlea_audio_params *params, cochlea_audio **out)
{
    if (!out)
        return err_set(COCHLEA_EINVAL, "cochlea_audio_open: out is NULL");
    *out = NULL;
    if (!path || !path[0])
        return err_set(COCHLEA_EINVAL, "cochlea_audio_open: no path given");
    cochlea_audio_params p = params ? *params : cochlea_audio_default_params();
    const int is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? "<stdin>" : path;
    if (p.sample_rate < AUDIO_MIN_RATE || p.sample_rate > AUDIO_MAX_RATE)
        return err_set(COCHLEA_EINVAL, "%s: output sample rate %d Hz is outside [%d, %d]", name, p.sample_rate,
                       AUDIO_MIN_RATE, AUDIO_MAX_RATE);
    if (p.channel < -1 || p.channel >= AUDIO_MAX_CHANNELS)
        return err_set(COCHLEA_EINVAL, "%s: channel %d is invalid (use -1 to average, or 0..%d)", name, p.channel,
                       AUDIO_MAX_CHANNELS - 1);
    int sub = 0;
    if (p.raw_format != COCHLEA_RAW_NONE) {
        sub = raw_subtype(p.raw_format);
        if (!sub)
            return err_set(COCHLEA_EINVAL, "%s: unknown raw sample format %d", name, (int)p.raw_format);
        if (p.raw_sample_rate < AUDIO_MIN_RATE || p.raw_sample_rate > AUDIO_MAX_RATE)
            return err_set(COCHLEA_ERANGE, "%s: raw sample rate %d Hz is outside [%d, %d]", name, p.raw_sample_rate,
                           AUDIO_MIN_RATE, AUDIO_MAX_RATE);
        if (p.raw_channels < 1 || p.raw_channels > AUDIO_MAX_CHANNELS)
            return err_set(COCHLEA_ERANGE, "%s: raw channel count %d is outside [1, %d]", name, p.raw_channels,
                           AUDIO_MAX_CHANNELS);
    }

    cochlea_audio *a = calloc(1, sizeof *a);
    if (!a)
        return err_set(COCHLEA_ENOMEM, "%s: out of memory", name);
    a->spool_fd = -1;
    snprintf(a->name, sizeof a->name, "%s", name);
    a->channel = p.channel;
    a->out_rate = p.sample_rate;
    if (sub) {
        a->info.format = SF_FORMAT_RAW | sub | (p.raw_big_endian ? SF_ENDIAN_BIG : SF_ENDIAN_LITTLE);
        a->info.samplerate = p.raw_sample_rate;
        a->info.channels = p.raw_channels;
    }

    int rc;
    int fd;
    if (is_stdin) {
        struct stat st;
        if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode)) {
            if (st.st_size == 0) {
                rc = err_set(COCHLEA_EFORMAT, "%s: no data (empty input)", name);
                goto fail;
            }
            fd = dup(STDIN_FILENO);
            if (fd < 0) {
                rc = err_set(COCHLEA_EIO, "%s: %s", name, strerror(errno));
                goto fail;
            }
        } else {
            rc = spool_stdin(name, &a->spool_fd);
            if (rc)
                goto fail;
            fd = dup(a->spool_fd);
            if (fd < 0) {
                rc = err_set(COCHLEA_EIO, "%s: %s", name, strerror(errno));
                goto fail;
            }
        }
    } else {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            rc = err_set(COCHLEA_EIO, "%s: cannot open: %s", name, strerror(errno));
            goto fail;
        }
        struct stat st;
        if (fstat(fd, &st) != 0) {
            rc = err_set(COCHLEA_EIO, "%s: %s", name, strerror(errno));
            close(fd);
            goto fail;
        }
        if (S_ISDIR(st.st_mode)) {
            close(fd);
            rc = err_set(COCHLEA_EIO, "%s: is a directory, not an audio file", name);
            goto fail;
        }
        if (S_ISREG(st.st_mode) && st.st_size == 0) {
            close(fd);
            rc = err_set(COCHLEA_EFORMAT, "%s: file is empty (0 bytes)", name);
            goto fail;
        }
    }
    a->sf = sf_open_fd(fd, SFM_READ, &a->info, 1);
    if (!a->sf) {
        rc = sf_open_error(name);
        goto fail;
    }
    describe_format(a);
    if ((rc = check_truncation(a)))
        goto fail;
    if (a->info.samplerate < AUDIO_MIN_RATE || a->info.samplerate > AUDIO_MAX_RATE) {
        rc = err_set(COCHLEA_ERANGE, "%s: sample rate %d Hz is outside the supported [%d, %d]", name,
                     a->info.samplerate, AUDIO_MIN_RATE, AUDIO_MAX_RATE);
        goto fail;
    }
    if (a->info.channels < 1 || a->info.channels > AUDIO_MAX_CHANNELS) {
        rc = err_set(COCHLEA_ERANGE, "%s: %d channels is outside the supported [1, %d]", name, a->info.channels,
                     AUDIO_MAX_CHANNELS);
        goto fail;
    }
    if (a->channel >= a->info.channels) {
        rc = err_set(COCHLEA_EINVAL, "%s: channel %d requested but the audio has %d channel%s (0..%d)", name,
                     a->channel, a->info.channels, a->info.channels == 1 ? "" : "s", a->info.channels - 1);
        goto fail;
    }
    if (a->info.frames == 0) {
        rc = err_set(COCHLEA_EFORMAT, "%s: contains no audio samples (0 frames, %s)", name, a->format);
        goto fail;
    }
    switch (a->info.format & SF_FORMAT_SUBMASK) {
    case SF_FORMAT_PCM_16:
        a->pcm16 = 1;
        /* fall through */
    case SF_FORMAT_PCM_S8:
    case SF_FORMAT_PCM_U8:
    case SF_FORMAT_PCM_24:
    case SF_FORMAT_PCM_32:
    case SF_FORMAT_ULAW:
    case SF_FORMAT_ALAW:
        a->int_src = 1;
        break;
    default:
        break;
    }
    /* channels <= AUDIO_MAX_CHANNELS: no overflow */
    a->ibuf = malloc((size_t)AUDIO_BLOCK_FRAMES * (size_t)a->info.channels * sizeof(float));
    a->mono = malloc((size_t)AUDIO_BLOCK_FRAMES * sizeof(float));
    if (a->pcm16)
        a->sbuf = malloc((size_t)AUDIO_BLOCK_FRAMES * (size_t)a->info.channels * sizeof(short));
    if (!a->ibuf || !a->mono || (a->pcm16 && !a->sbuf)) {
        rc = err_set(COCHLEA_ENOMEM, "%s: out of memory", name);
        goto fail;
    }
    if (a->info.samplerate != a->out_rate) {
        soxr_error_t serr = NULL;
        soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
        soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
        a->soxr = soxr_create((double)a->info.samplerate, (double)a->out_rate, 1, &serr, &io, &q, NULL);
        if (!a->soxr || serr) {
            rc = err_set(COCHLEA_EINTERNAL, "%s: cannot create a %d -> %d Hz resampler: %s", name, a->info.samplerate,
                         a->out_rate, serr ? serr : "unknown error");
            goto fail;
        }
        double ratio = (double)a->out_rate / (double)a->info.samplerate;
        a->o_cap = (size_t)ceil(AUDIO_BLOCK_FRAMES * (ratio > 1.0 ? ratio : 1.0)) + 1024;
        a->obuf = malloc(a->o_cap * sizeof(float));
        if (!a->obuf) {
            rc = err_set(COCHLEA_ENOMEM, "%s: out of memory", name);
            goto fail;
        }
    }
    *out = a;
    return COCHLEA_OK;
fail:
    cochlea_audio_close(a);
    return rc;
}

void cochlea_audio_get_info(const cochlea_audio *a, cochlea_audio_info *info)
{
    info->source_rate = a->info.samplerate;
    info->source_channels = a->info.channels;
    info->source_frames = a->info.frames == SF_COUNT_MAX ? -1 : (int64_t)a->info.frames;
    info->format = a->format;
}

/* Record a stream error so that later reads report it again. */
static int audio_fail(cochlea_audio *a, int code)
{
    a->err = code;
    snprintf(a->err_msg, sizeof a->err_msg, "%s", cochlea_last_error());
    return code;
}

/* 16-bit samples to float as libsndfile's normalised read does: s * (1 / 32768), exact. Blocks
 * of 16 with a constant trip count, which the compiler vectorises at -O2. */
static void s16_to_float(const short *restrict s, size_t n, float *restrict d)
{
    const float scale = 1.0f / 32768.0f;
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++)
            d[i + (size_t)j] = (float)s[i + (size_t)j] * scale;
    for (; i < n; i++)
        d[i] = (float)s[i] * scale;
}

/* Index of the first non-finite value in x[0..n), or n (blocks of 64 tested with a vectorisable
 * exponent-mask OR, only a flagged block searched). */
static size_t first_nonfinite(const float *x, size_t n)
{
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint32_t bad = 0;
        for (int j = 0; j < 64; j++) {
            uint32_t b;
            memcpy(&b, &x[i + (size_t)j], sizeof b);
            bad |= (uint32_t)((b & 0x7f800000u) == 0x7f800000u);
        }
        if (bad)
            break;
    }
    for (; i < n; i++)
        if (!isfinite(x[i]))
            return i;
    return n;
}

/* Decode the next block (up to AUDIO_BLOCK_FRAMES frames) as mono into m; returns frames decoded
 * (0 at the end) or a negative error. */
static long decode_block(cochlea_audio *a, float *m)
{
    const int ch = a->info.channels;
    /* one channel: decode straight into m */
    const int direct = ch == 1;
    sf_count_t got;
    if (a->pcm16)
        got = sf_readf_short(a->sf, a->sbuf, AUDIO_BLOCK_FRAMES);
    else
        got = sf_readf_float(a->sf, direct ? m : a->ibuf, AUDIO_BLOCK_FRAMES);
    if (got < AUDIO_BLOCK_FRAMES) {
        int e = sf_error(a->sf);
        if (e != SF_ERR_NO_ERROR) {
            long long at = (long long)(a->frames_read + (got > 0 ? got : 0));
            if (a->info.frames != SF_COUNT_MAX && at < (long long)a->info.frames)
                return audio_fail(a, err_set(COCHLEA_EFORMAT,
                                             "%s: truncated or corrupt: decoding failed after %lld of %lld frames: %s",
                                             a->name, at, (long long)a->info.frames, sf_strerror(a->sf)));
            return audio_fail(a, err_set(COCHLEA_EFORMAT, "%s: decoding failed after %lld frames: %s", a->name, at,
                                         sf_strerror(a->sf)));
        }
    }
    if (got <= 0) {
        if (a->info.frames != SF_COUNT_MAX && a->frames_read < (int64_t)a->info.frames)
            return audio_fail(a, err_set(COCHLEA_EFORMAT,
                                         "%s: truncated: the header announces %lld frames but only %lld could be "
                                         "decoded",
                                         a->name, (long long)a->info.frames, (long long)a->frames_read));
        return 0;
    }
    if (a->pcm16)
        s16_to_float(a->sbuf, (size_t)got * (size_t)ch, direct ? m : a->ibuf);
    const float *in = a->ibuf;
    if (direct) {
        /* already in m */
    } else if (a->channel >= 0) {
        for (sf_count_t i = 0; i < got; i++)
            m[i] = in[(size_t)i * ch + a->channel];
    } else if (ch == 2) {
        /* the general average below, in blocks the compiler vectorises */
        const size_t nf = (size_t)got;
        size_t i = 0;
        for (; i + 8 <= nf; i += 8)
            for (size_t j = 0; j < 8; j++)
                m[i + j] = (in[2 * (i + j)] + in[2 * (i + j) + 1]) / 2.0f;
        for (; i < nf; i++)
            m[i] = (in[2 * i] + in[2 * i + 1]) / 2.0f;
    } else {
        const float inv = (float)ch;
        for (sf_count_t i = 0; i < got; i++) {
            const float *f = in + (size_t)i * ch;
            float s = f[0];
            for (int c = 1; c < ch; c++)
                s += f[c];
            m[i] = s / inv;
        }
    }
    size_t bad = a->int_src ? (size_t)got : first_nonfinite(m, (size_t)got);
    if (bad < (size_t)got) {
        long long fr = (long long)(a->frames_read + (sf_count_t)bad);
        return audio_fail(a, err_set(COCHLEA_EFORMAT,
                                     "%s: sample at frame %lld (%.3f s) is %s; non-finite samples are rejected",
                                     a->name, fr, (double)fr / a->info.samplerate,
                                     isnan(m[bad]) ? "NaN" : "infinite"));
    }
    a->frames_read += got;
    return (long)got;
}

/* Make more output samples available in a->out; sets a->done at the end of the stream. */
static int audio_refill(cochlea_audio *a)
{
    a->o_pos = a->o_len = 0;
    if (!a->soxr) {
        long got = decode_block(a, a->mono);
        if (got < 0)
            return (int)got;
        if (got == 0)
            a->done = 1;
        a->out = a->mono;
        a->o_len = (size_t)got;
        return COCHLEA_OK;
    }
    if (a->m_pos == a->m_len && !a->src_eof) {
        long got = decode_block(a, a->mono);
        if (got < 0)
            return (int)got;
        a->m_pos = 0;
        a->m_len = (size_t)got;
        if (got == 0)
            a->src_eof = 1;
    }
    size_t idone = 0, odone = 0;
    soxr_error_t serr;
    if (a->m_pos < a->m_len) {
        serr = soxr_process(a->soxr, a->mono + a->m_pos, a->m_len - a->m_pos, &idone, a->obuf, a->o_cap, &odone);
        a->m_pos += idone;
    } else {
        serr = soxr_process(a->soxr, NULL, 0, NULL, a->obuf, a->o_cap, &odone); /* flush */
        if (!serr && odone == 0)
            a->done = 1;
    }
    if (serr)
        return audio_fail(a, err_set(COCHLEA_EINTERNAL, "%s: resampling failed: %s", a->name, serr));
    a->out = a->obuf;
    a->o_len = odone;
    return COCHLEA_OK;
}

int cochlea_audio_read(cochlea_audio *a, float *dst, size_t max, size_t *n_read)
{
    if (n_read)
        *n_read = 0;
    if (!a || !n_read || (!dst && max))
        return err_set(COCHLEA_EINVAL, "cochlea_audio_read: NULL argument");
    if (a->err)
        return err_set(a->err, "%s", a->err_msg);
    size_t n = 0;
    while (n < max) {
        if (a->o_pos < a->o_len) {
            size_t k = a->o_len - a->o_pos;
            if (k > max - n)
                k = max - n;
            memcpy(dst + n, a->out + a->o_pos, k * sizeof(float));
            a->o_pos += k;
            n += k;
            continue;
        }
        if (a->done)
            break;
        if (!a->soxr && max - n >= AUDIO_BLOCK_FRAMES) {
            /* no resampler and room for a whole block: decode straight into the caller's buffer */
            long got = decode_block(a, dst + n);
            if (got < 0) {
                *n_read = n;
                return (int)got;
            }
            if (got == 0)
                a->done = 1;
            n += (size_t)got;
            continue;
        }
        int rc = audio_refill(a);
        if (rc) {
            *n_read = n;
            return rc;
        }
    }
    *n_read = n;
    return COCHLEA_OK;
}

int cochlea_audio_load(const char *path, const cochlea_audio_params *params, float **samples, size_t *n_samples)
{
    if (!samples || !n_samples)
        return err_set(COCHLEA_EINVAL, "cochlea_audio_load: NULL output argument");
    *samples = NULL;
    *n_samples = 0;
    cochlea_audio *a;
    int rc = cochlea_audio_open(path, params, &a);
    if (rc)
        return rc;
    size_t cap = 1 << 16;
    if (a->info.frames != SF_COUNT_MAX && a->info.frames > 0) {
        double est = (double)a->info.frames * a->out_rate / a->info.samplerate + 4096.0;
        if (est < (double)(SIZE_MAX / sizeof(float) / 2))
            cap = (size_t)est;
    }
    float *buf = malloc(cap * sizeof(float));
    size_t n = 0;
    if (!buf) {
        cochlea_audio_close(a);
        return err_set(COCHLEA_ENOMEM, "%s: out of memory for %zu samples", a->name, cap);
    }
    for (;;) {
        if (n == cap) {
            size_t ncap, bytes;
            if (size_mul(cap, 2, &ncap) || size_mul(ncap, sizeof(float), &bytes)) {
                rc = err_set(COCHLEA_ERANGE, "%s: audio too long to hold in memory", path);
                break;
            }
            float *nb = realloc(buf, bytes);
            if (!nb) {
                rc = err_set(COCHLEA_ENOMEM, "%s: out of memory for %zu samples", path, ncap);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got;
        rc = cochlea_audio_read(a, buf + n, cap - n, &got);
        n += got;
        if (rc || got == 0)
            break;
    }
    cochlea_audio_close(a);
    if (rc) {
        free(buf);
        return rc;
    }
    *samples = buf;
    *n_samples = n;
    return COCHLEA_OK;
}

void cochlea_audio_samples_free(float *samples)
{
    free(samples);
}
