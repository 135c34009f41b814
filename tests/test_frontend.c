/* test_frontend.c - audio input (formats, mono mixing, resampling, pull reader, stdin, bad
 * input), STFT (window, framing, reflect padding, spectrum), Slaney filterbank, log-mel, MVN,
 * streaming, .npz statistics, and use from several threads. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sndfile.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cochlea.h"
#include "error.h"
#include "frontend/audio.h"
#include "frontend/fbank.h"
#include "frontend/fft_r512.h"
#include "frontend/stft.h"
#include "gguf.h"
#include "tensor.h"
#include "testutil.h"

/* ---- temporary files ---------------------------------------------------------------------- */

static char tmp_dir[512];

static void tmp_setup(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test_frontend-XXXXXX", t && t[0] ? t : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        exit(1);
    }
}

static void tmp_teardown(void)
{
    DIR *d = opendir(tmp_dir);
    if (d) {
        struct dirent *e;
        char p[1024];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", tmp_dir, e->d_name);
            if (unlink(p) != 0)
                rmdir(p);
        }
        closedir(d);
    }
    rmdir(tmp_dir);
}

static const char *tmp_path(const char *name)
{
    static char p[4][1024];
    static int k;
    k = (k + 1) & 3;
    snprintf(p[k], sizeof p[k], "%s/%s", tmp_dir, name);
    return p[k];
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* Write interleaved float frames with libsndfile; returns 0, or -1 if this libsndfile cannot
 * write the format (the caller then skips that format with a message). Integer encodings get
 * x * 2^(bits-1) unnormalised (libsndfile scales normalised writes by 2^(bits-1) - 1, but reads
 * by 2^(bits-1)), so that samples k / 2^(bits-1) survive exactly. */
static int write_sf(const char *path, int format, int rate, int channels, const float *x, sf_count_t frames)
{
    double scale = 1.0;
    switch (format & SF_FORMAT_SUBMASK) {
    case SF_FORMAT_PCM_S8:
    case SF_FORMAT_PCM_U8: scale = 128.0; break;
    case SF_FORMAT_PCM_16: scale = 32768.0; break;
    case SF_FORMAT_PCM_24: scale = 8388608.0; break;
    case SF_FORMAT_PCM_32: scale = 2147483648.0; break;
    default: break;
    }
    SF_INFO info;
    memset(&info, 0, sizeof info);
    info.format = format;
    info.samplerate = rate;
    info.channels = channels;
    if (!sf_format_check(&info))
        return -1;
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    if (!sf)
        return -1;
    if (scale != 1.0) {
        size_t n = (size_t)frames * (size_t)channels;
        double *y = malloc(n * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            double v = x[i] * scale;
            y[i] = v > scale - 1 ? scale - 1 : v < -scale ? -scale : v;
        }
        sf_command(sf, SFC_SET_NORM_DOUBLE, NULL, SF_FALSE);
        ck_assert_int_eq(sf_writef_double(sf, y, frames), frames);
        free(y);
        ck_assert_int_eq(sf_close(sf), 0);
        return 0;
    }
    ck_assert_int_eq(sf_writef_float(sf, x, frames), frames);
    ck_assert_int_eq(sf_close(sf), 0);
    return 0;
}

static void put16(unsigned char *p, unsigned v) { p[0] = v & 0xff; p[1] = (v >> 8) & 0xff; }
static void put32(unsigned char *p, uint32_t v) { put16(p, v & 0xffff); put16(p + 2, v >> 16); }

/* A canonical 44-byte WAV header; data_bytes is what the header declares. */
static void wav_header(unsigned char *h, unsigned fmt_tag, unsigned channels, uint32_t rate, unsigned bits,
                       uint32_t data_bytes)
{
    memcpy(h, "RIFF", 4);
    put32(h + 4, 36 + data_bytes);
    memcpy(h + 8, "WAVEfmt ", 8);
    put32(h + 16, 16);
    put16(h + 20, fmt_tag);
    put16(h + 22, channels);
    put32(h + 24, rate);
    put32(h + 28, rate * channels * (bits / 8));
    put16(h + 32, channels * (bits / 8));
    put16(h + 34, bits);
    memcpy(h + 36, "data", 4);
    put32(h + 40, data_bytes);
}

/* Sine of frequency f (Hz) and amplitude a at rate sr. */
static float *make_tone(size_t n, double f, double a, int sr)
{
    float *x = test_alloc(n);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(a * sin(2.0 * M_PI * f * (double)i / sr));
    return x;
}

/* Open and expect failure with `code` and a message containing `needle`. */
static void expect_open_error(const char *path, const cochlea_audio_params *p, int code, const char *needle)
{
    cochlea_audio *a = NULL;
    cochlea_clear_error();
    int rc = cochlea_audio_open(path, p, &a);
    ck_assert_msg(rc == code, "%s: expected %s, got %d (%s)", path, cochlea_strerror(code), rc,
                  cochlea_last_error());
    ck_assert_ptr_null(a);
    ck_assert_msg(strstr(cochlea_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'", path,
                  cochlea_last_error(), needle);
}

/* Load a whole file and expect failure (at open or while decoding) with a message that names
 * the file and contains `needle` (or `alt`, when not NULL). */
static void expect_load_error2(const char *path, int code, const char *needle, const char *alt)
{
    float *x = NULL;
    size_t n = 123;
    cochlea_clear_error();
    int rc = cochlea_audio_load(path, NULL, &x, &n);
    ck_assert_msg(rc == code, "%s: expected %s, got %d (%s)", path, cochlea_strerror(code), rc,
                  cochlea_last_error());
    ck_assert_ptr_null(x);
    ck_assert_uint_eq(n, 0);
    ck_assert_msg(strstr(cochlea_last_error(), needle) != NULL || (alt && strstr(cochlea_last_error(), alt)),
                  "%s: message '%s' lacks '%s'", path, cochlea_last_error(), needle);
    ck_assert_msg(strstr(cochlea_last_error(), path) != NULL, "message '%s' does not name the file",
                  cochlea_last_error());
}

static void expect_load_error(const char *path, int code, const char *needle)
{
    expect_load_error2(path, code, needle, NULL);
}

/* Amplitude and phase-free frequency check: project the middle of x onto sin/cos at f. */
static double tone_amplitude(const float *x, size_t n, double f, int sr)
{
    size_t a = n / 4, b = 3 * n / 4;
    double s = 0, c = 0;
    for (size_t i = a; i < b; i++) {
        s += x[i] * sin(2.0 * M_PI * f * (double)i / sr);
        c += x[i] * cos(2.0 * M_PI * f * (double)i / sr);
    }
    return 2.0 * sqrt(s * s + c * c) / (double)(b - a);
}

/* ---- audio ---------------------------------------------------------------------------------- */

START_TEST(test_audio_wav_pcm16_exact)
{
    /* 16-bit samples come back as int / 32768 exactly, with no resampling at 16 kHz */
    const size_t n = 5000;
    int16_t *pcm = malloc(n * sizeof *pcm);
    test_rng r = {1};
    for (size_t i = 0; i < n; i++)
        pcm[i] = (int16_t)test_rng_int(&r, -32768, 32767);
    pcm[0] = -32768;
    pcm[1] = 32767;
    unsigned char *file = malloc(44 + n * 2);
    wav_header(file, 1, 1, 16000, 16, (uint32_t)(n * 2));
    for (size_t i = 0; i < n; i++)
        put16(file + 44 + 2 * i, (uint16_t)pcm[i]);
    const char *path = tmp_path("pcm16.wav");
    write_bytes(path, file, 44 + n * 2);
    float *x;
    size_t got;
    ck_assert_int_eq(cochlea_audio_load(path, NULL, &x, &got), COCHLEA_OK);
    ck_assert_uint_eq(got, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(x[i] == (float)pcm[i] / 32768.0f, "sample %zu: %g vs %d", i, (double)x[i], pcm[i]);
    ck_assert_float_eq(x[0], -1.0f);
    cochlea_audio_samples_free(x);

    cochlea_audio *a;
    ck_assert_int_eq(cochlea_audio_open(path, NULL, &a), COCHLEA_OK);
    cochlea_audio_info info;
    cochlea_audio_get_info(a, &info);
    ck_assert_int_eq(info.source_rate, 16000);
    ck_assert_int_eq(info.source_channels, 1);
    ck_assert_int_eq(info.source_frames, (int64_t)n);
    ck_assert_msg(strstr(info.format, "WAV") && strstr(info.format, "16 bit"), "format '%s'", info.format);
    cochlea_audio_close(a);
    free(pcm);
    free(file);
}
END_TEST

START_TEST(test_audio_formats_lossless)
{
    /* lossless containers/codecs return the written (16-bit representable) samples exactly */
    const size_t n = 12345;
    float *x = test_alloc(n);
    test_rng r = {2};
    for (size_t i = 0; i < n; i++)
        x[i] = (float)test_rng_int(&r, -32768, 32767) / 32768.0f;
    static const struct {
        const char *name;
        int format;
    } fmts[] = {
        {"a.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16},     {"b.wav", SF_FORMAT_WAVEX | SF_FORMAT_PCM_24},
        {"c.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT},      {"d.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16},
        {"e.aiff", SF_FORMAT_AIFF | SF_FORMAT_PCM_16},   {"f.au", SF_FORMAT_AU | SF_FORMAT_PCM_32},
        {"g.caf", SF_FORMAT_CAF | SF_FORMAT_PCM_16},     {"h.w64", SF_FORMAT_W64 | SF_FORMAT_DOUBLE},
    };
    for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
        const char *path = tmp_path(fmts[f].name);
        ck_assert_msg(write_sf(path, fmts[f].format, 16000, 1, x, (sf_count_t)n) == 0, "cannot write %s", path);
        float *y;
        size_t got;
        ck_assert_msg(cochlea_audio_load(path, NULL, &y, &got) == COCHLEA_OK, "%s: %s", path, cochlea_last_error());
        ck_assert_uint_eq(got, n);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(y[i] == x[i], "%s: sample %zu: %.9g vs %.9g", path, i, (double)y[i], (double)x[i]);
        cochlea_audio_samples_free(y);
    }
    free(x);
}
END_TEST

START_TEST(test_audio_formats_lossy)
{
    /* lossy codecs (Vorbis, Opus, MP3 where libsndfile has them): a 440 Hz tone keeps its
     * frequency and amplitude and the length is right after resampling to 16 kHz */
    static const struct {
        const char *name;
        int format, rate;
    } fmts[] = {
        {"v.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 44100},
        {"o.opus", SF_FORMAT_OGG | SF_FORMAT_OPUS, 48000},
        {"m.mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 44100},
    };
    for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
        const int sr = fmts[f].rate;
        const size_t n = (size_t)sr; /* 1 s */
        float *x = make_tone(n, 440.0, 0.5, sr);
        const char *path = tmp_path(fmts[f].name);
        if (write_sf(path, fmts[f].format, sr, 1, x, (sf_count_t)n) != 0) {
            fprintf(stderr, "test_frontend: SKIP %s: this libsndfile cannot write it\n", fmts[f].name);
            free(x);
            continue;
        }
        float *y;
        size_t got;
        ck_assert_msg(cochlea_audio_load(path, NULL, &y, &got) == COCHLEA_OK, "%s: %s", path, cochlea_last_error());
        /* encoders may add priming/padding frames: within 0.1 s of 1 s */
        ck_assert_msg(got > 14400 && got < 17600, "%s: %zu samples", path, got);
        double amp = tone_amplitude(y, got, 440.0, 16000);
        double off = tone_amplitude(y, got, 523.0, 16000);
        ck_assert_msg(fabs(amp - 0.5) < 0.05, "%s: 440 Hz amplitude %g", path, amp);
        ck_assert_msg(off < 0.02, "%s: energy at 523 Hz %g", path, off);
        cochlea_audio_samples_free(y);
        free(x);
    }
}
END_TEST

START_TEST(test_audio_resample)
{
    /* soxr HQ: every rate gives round(n * 16000 / rate) samples and a 1 kHz tone keeps its
     * frequency and amplitude; 16 kHz passes through untouched */
    static const int rates[] = {8000, 22050, 44100, 48000, 11025, 96000};
    for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
        const int sr = rates[r];
        const size_t n = (size_t)sr * 3 / 2;
        float *x = make_tone(n, 1000.0, 0.7, sr);
        char name[64];
        snprintf(name, sizeof name, "tone%d.wav", sr);
        const char *path = tmp_path(name);
        ck_assert_int_eq(write_sf(path, SF_FORMAT_WAV | SF_FORMAT_FLOAT, sr, 1, x, (sf_count_t)n), 0);
        float *y;
        size_t got;
        ck_assert_int_eq(cochlea_audio_load(path, NULL, &y, &got), COCHLEA_OK);
        double want = (double)n * 16000.0 / sr;
        ck_assert_msg(fabs((double)got - want) <= 1.0, "%d Hz: %zu samples, expected %.1f", sr, got, want);
        double amp = tone_amplitude(y, got, 1000.0, 16000);
        ck_assert_msg(fabs(amp - 0.7) < 0.7e-3, "%d Hz: amplitude %.6f", sr, amp);
        /* the tone is where it should be: compared with the ideal 16 kHz sine sample by sample */
        double err = 0;
        for (size_t i = got / 4; i < 3 * got / 4; i++)
            err = fmax(err, fabs(y[i] - 0.7 * sin(2.0 * M_PI * 1000.0 * (double)i / 16000.0)));
        ck_assert_msg(err < 2e-3, "%d Hz: max deviation from the ideal tone %g", sr, err);
        cochlea_audio_samples_free(y);
        free(x);
    }
}
END_TEST

START_TEST(test_audio_channels)
{
    /* stereo is averaged ((l + r) / 2 in float), --channel picks one; 3 channels too */
    const size_t n = 4000;
    float *x = test_alloc(3 * n);
    test_rng r = {3};
    test_fill(&r, x, 3 * n, -1.0f, 1.0f);
    const char *p2 = tmp_path("st.wav"), *p3 = tmp_path("three.wav");
    ck_assert_int_eq(write_sf(p2, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 2, x, (sf_count_t)n), 0);
    ck_assert_int_eq(write_sf(p3, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 3, x, (sf_count_t)n), 0);
    float *y;
    size_t got;
    ck_assert_int_eq(cochlea_audio_load(p2, NULL, &y, &got), COCHLEA_OK);
    ck_assert_uint_eq(got, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_float_eq(y[i], (x[2 * i] + x[2 * i + 1]) / 2.0f);
    cochlea_audio_samples_free(y);
    cochlea_audio_params p = cochlea_audio_default_params();
    p.channel = 1;
    ck_assert_int_eq(cochlea_audio_load(p2, &p, &y, &got), COCHLEA_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert_float_eq(y[i], x[2 * i + 1]);
    cochlea_audio_samples_free(y);
    ck_assert_int_eq(cochlea_audio_load(p3, NULL, &y, &got), COCHLEA_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert_float_eq(y[i], (x[3 * i] + x[3 * i + 1] + x[3 * i + 2]) / 3.0f);
    cochlea_audio_samples_free(y);
    p.channel = 2;
    expect_open_error(p2, &p, COCHLEA_EINVAL, "channel 2 requested but the audio has 2 channels");
    free(x);
}
END_TEST

START_TEST(test_audio_pcm16_channels_and_blocks)
{
    /* 16-bit PCM (decoded as shorts and converted here) equals libsndfile's own float decoding,
     * for 1-3 channels in WAV (little-endian), AIFF (big-endian) and FLAC, averaged or one
     * channel; reads of any size (direct block decoding for large ones) give the same stream */
    const size_t n = 3 * AUDIO_BLOCK_FRAMES + 1234;
    static const int fmts[3] = {SF_FORMAT_WAV | SF_FORMAT_PCM_16, SF_FORMAT_AIFF | SF_FORMAT_PCM_16,
                                SF_FORMAT_FLAC | SF_FORMAT_PCM_16};
    test_rng r = {25};
    float *x = test_alloc(n * 3), *ref = test_alloc(n * 3), *want = test_alloc(n), *y = test_alloc(n + 1);
    for (size_t i = 0; i < n * 3; i++)
        x[i] = (float)test_rng_int(&r, -32768, 32767) / 32768.0f;
    for (int fi = 0; fi < 3; fi++)
        for (int ch = 1; ch <= 3; ch++)
            for (int sel = -1; sel < ch; sel++) {
                const char *path = tmp_path("pcm16_ch.bin");
                ck_assert_int_eq(write_sf(path, fmts[fi], 16000, ch, x, (sf_count_t)n), 0);
                SF_INFO info;
                memset(&info, 0, sizeof info);
                SNDFILE *sf = sf_open(path, SFM_READ, &info);
                ck_assert_ptr_nonnull(sf);
                ck_assert_int_eq(sf_readf_float(sf, ref, (sf_count_t)n), (sf_count_t)n);
                sf_close(sf);
                for (size_t i = 0; i < n; i++) {
                    if (sel >= 0) {
                        want[i] = ref[i * (size_t)ch + (size_t)sel];
                        continue;
                    }
                    float s = ref[i * (size_t)ch];
                    for (int c = 1; c < ch; c++)
                        s += ref[i * (size_t)ch + (size_t)c];
                    want[i] = s / (float)ch;
                }
                cochlea_audio_params p = cochlea_audio_default_params();
                p.channel = sel;
                for (int mode = 0; mode < 2; mode++) {
                    cochlea_audio *a;
                    ck_assert_int_eq(cochlea_audio_open(path, &p, &a), COCHLEA_OK);
                    size_t pos = 0, got;
                    do {
                        size_t want_n = mode == 0 ? n + 1 - pos : (size_t)test_rng_int(&r, 1, 3 * AUDIO_BLOCK_FRAMES);
                        if (want_n > n + 1 - pos)
                            want_n = n + 1 - pos;
                        ck_assert_int_eq(cochlea_audio_read(a, y + pos, want_n, &got), COCHLEA_OK);
                        pos += got;
                    } while (got && pos <= n);
                    cochlea_audio_close(a);
                    ck_assert_uint_eq(pos, n);
                    ck_assert_msg(memcmp(y, want, n * sizeof(float)) == 0, "format %x, %d channels, channel %d, mode %d",
                                  fmts[fi], ch, sel, mode);
                }
            }
    free(x);
    free(ref);
    free(want);
    free(y);
}
END_TEST

START_TEST(test_audio_raw)
{
    /* raw big-endian s16 and little-endian f32 at 8 kHz, stereo */
    const size_t n = 800;
    unsigned char *b = malloc(n * 2 * 2);
    float *f = test_alloc(n * 2);
    for (size_t i = 0; i < 2 * n; i++) {
        int16_t v = (int16_t)((int)(i * 37 % 65536) - 32768);
        b[2 * i] = (unsigned char)((uint16_t)v >> 8);
        b[2 * i + 1] = (unsigned char)((uint16_t)v & 0xff);
        f[i] = (float)v / 32768.0f;
    }
    const char *pb = tmp_path("be.raw"), *pf = tmp_path("f.raw");
    write_bytes(pb, b, n * 4);
    write_bytes(pf, f, n * 2 * sizeof(float));
    cochlea_audio_params p = cochlea_audio_default_params();
    p.raw_format = COCHLEA_RAW_S16;
    p.raw_big_endian = 1;
    p.raw_sample_rate = 16000;
    p.raw_channels = 2;
    p.channel = 0;
    float *y;
    size_t got;
    ck_assert_int_eq(cochlea_audio_load(pb, &p, &y, &got), COCHLEA_OK);
    ck_assert_uint_eq(got, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_float_eq(y[i], f[2 * i]);
    cochlea_audio_samples_free(y);
    p.raw_format = COCHLEA_RAW_F32;
    p.raw_big_endian = 0;
    p.channel = 1;
    ck_assert_int_eq(cochlea_audio_load(pf, &p, &y, &got), COCHLEA_OK);
    ck_assert_uint_eq(got, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_float_eq(y[i], f[2 * i + 1]);
    cochlea_audio_samples_free(y);
    ck_assert_int_eq(audio_raw_format_from_name("s24"), COCHLEA_RAW_S24);
    ck_assert_int_eq(audio_raw_format_from_name("s17"), COCHLEA_RAW_NONE);
    p.raw_sample_rate = 999;
    expect_open_error(pf, &p, COCHLEA_ERANGE, "raw sample rate 999 Hz");
    p.raw_sample_rate = 16000;
    p.raw_channels = 0;
    expect_open_error(pf, &p, COCHLEA_ERANGE, "raw channel count 0");
    free(b);
    free(f);
}
END_TEST

START_TEST(test_audio_pull_equals_load)
{
    /* the pull reader in odd-sized pieces gives the same samples as whole-file loading, through
     * the resampler and without it */
    test_rng r = {4};
    static const int rates[] = {16000, 44100};
    for (int k = 0; k < 2; k++) {
        const size_t n = 3 * AUDIO_BLOCK_FRAMES + 17;
        float *x = test_alloc(n);
        test_fill(&r, x, n, -0.9f, 0.9f);
        const char *path = tmp_path(k ? "pull44.wav" : "pull16.wav");
        ck_assert_int_eq(write_sf(path, SF_FORMAT_WAV | SF_FORMAT_FLOAT, rates[k], 1, x, (sf_count_t)n), 0);
        float *all;
        size_t n_all;
        ck_assert_int_eq(cochlea_audio_load(path, NULL, &all, &n_all), COCHLEA_OK);
        cochlea_audio *a;
        ck_assert_int_eq(cochlea_audio_open(path, NULL, &a), COCHLEA_OK);
        float *y = test_alloc(n_all + 100);
        size_t pos = 0, got;
        do {
            size_t want = (size_t)test_rng_int(&r, 1, 5000);
            ck_assert_int_eq(cochlea_audio_read(a, y + pos, want, &got), COCHLEA_OK);
            ck_assert_uint_le(got, want);
            pos += got;
            ck_assert_uint_le(pos, n_all);
            if (got < want)
                break;
        } while (1);
        ck_assert_int_eq(cochlea_audio_read(a, y + pos, 10, &got), COCHLEA_OK);
        ck_assert_uint_eq(got, 0);
        ck_assert_uint_eq(pos, n_all);
        ck_assert_int_eq(memcmp(y, all, n_all * sizeof(float)), 0);
        if (k == 0)
            ck_assert_int_eq(memcmp(all, x, n * sizeof(float)), 0);
        cochlea_audio_close(a);
        cochlea_audio_samples_free(all);
        free(x);
        free(y);
    }
}
END_TEST

struct load_job {
    const char *path;
    float *x;
    size_t n;
    int rc;
};

static void *load_thread(void *arg)
{
    struct load_job *j = arg;
    j->rc = cochlea_audio_load(j->path, NULL, &j->x, &j->n);
    return NULL;
}

START_TEST(test_audio_threads)
{
    /* readers with resamplers created and run on four threads at once give the same samples as
     * one thread */
    const size_t n = 44100;
    float *x = make_tone(n, 523.0, 0.4, 44100);
    const char *path = tmp_path("threads.wav");
    ck_assert_int_eq(write_sf(path, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 44100, 1, x, (sf_count_t)n), 0);
    float *ref;
    size_t n_ref;
    ck_assert_int_eq(cochlea_audio_load(path, NULL, &ref, &n_ref), COCHLEA_OK);
    pthread_t th[4];
    struct load_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct load_job){path, NULL, 0, -1};
        pthread_create(&th[i], NULL, load_thread, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(jobs[i].rc, COCHLEA_OK);
        ck_assert_uint_eq(jobs[i].n, n_ref);
        ck_assert_int_eq(memcmp(jobs[i].x, ref, n_ref * sizeof(float)), 0);
        cochlea_audio_samples_free(jobs[i].x);
    }
    cochlea_audio_samples_free(ref);
    free(x);
}
END_TEST

/* Redirect standard input to `fd` for the rest of this (forked) test. */
static void set_stdin(int fd)
{
    ck_assert_int_ge(dup2(fd, STDIN_FILENO), 0);
    close(fd);
}

struct pipe_writer {
    int fd;
    const unsigned char *data;
    size_t n;
};

static void *pipe_write_thread(void *arg)
{
    struct pipe_writer *w = arg;
    size_t off = 0;
    while (off < w->n) {
        ssize_t k = write(w->fd, w->data + off, w->n - off);
        if (k <= 0)
            break;
        off += (size_t)k;
    }
    close(w->fd);
    return NULL;
}

START_TEST(test_audio_stdin_pipe)
{
    /* "-" reads a pipe (spooled to a temporary file): FLAC needs seeking, so this exercises the
     * spool; a 200 000-sample file is larger than a pipe's buffer */
    const size_t n = 200000;
    float *x = test_alloc(n);
    test_rng r = {5};
    for (size_t i = 0; i < n; i++)
        x[i] = (float)test_rng_int(&r, -20000, 20000) / 32768.0f;
    const char *path = tmp_path("in.flac");
    ck_assert_int_eq(write_sf(path, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 1, x, (sf_count_t)n), 0);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc(size);
    ck_assert_uint_eq(fread(bytes, 1, size, f), size);
    fclose(f);
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    struct pipe_writer w = {pfd[1], bytes, size};
    pthread_t th;
    pthread_create(&th, NULL, pipe_write_thread, &w);
    set_stdin(pfd[0]);
    float *y;
    size_t got;
    ck_assert_msg(cochlea_audio_load("-", NULL, &y, &got) == COCHLEA_OK, "%s", cochlea_last_error());
    pthread_join(th, NULL);
    ck_assert_uint_eq(got, n);
    ck_assert_int_eq(memcmp(x, y, n * sizeof(float)), 0);
    cochlea_audio_samples_free(y);
    free(bytes);
    free(x);
}
END_TEST

START_TEST(test_audio_stdin_file_and_empty)
{
    /* "-" redirected from a regular file is read in place; an empty pipe is a clear error */
    const size_t n = 1000;
    float *x = make_tone(n, 300.0, 0.25, 16000);
    const char *path = tmp_path("stdin.wav");
    ck_assert_int_eq(write_sf(path, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 1, x, (sf_count_t)n), 0);
    set_stdin(open(path, O_RDONLY));
    float *y;
    size_t got;
    ck_assert_int_eq(cochlea_audio_load("-", NULL, &y, &got), COCHLEA_OK);
    ck_assert_uint_eq(got, n);
    ck_assert_int_eq(memcmp(x, y, n * sizeof(float)), 0);
    cochlea_audio_samples_free(y);
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    close(pfd[1]);
    set_stdin(pfd[0]);
    expect_open_error("-", NULL, COCHLEA_EFORMAT, "<stdin>: no data");
    free(x);
}
END_TEST

START_TEST(test_audio_bad_input)
{
    unsigned char h[64];
    /* missing, directory, empty */
    expect_open_error(tmp_path("missing.wav"), NULL, COCHLEA_EIO, "No such file");
    expect_open_error(tmp_dir, NULL, COCHLEA_EIO, "is a directory");
    const char *empty = tmp_path("empty.wav");
    write_bytes(empty, "", 0);
    expect_open_error(empty, NULL, COCHLEA_EFORMAT, "empty (0 bytes)");
    /* a valid header with no samples */
    wav_header(h, 1, 1, 16000, 16, 0);
    const char *zero = tmp_path("zero.wav");
    write_bytes(zero, h, 44);
    expect_open_error(zero, NULL, COCHLEA_EFORMAT, "no audio samples");
    /* not audio at all */
    const char *junk = tmp_path("junk.wav");
    write_bytes(junk, "this is certainly not a sound file, just some text", 50);
    expect_open_error(junk, NULL, COCHLEA_EUNSUPPORTED, "not a recognised audio format");
    /* a codec libsndfile does not decode inside WAV (format tag 0x1234) */
    unsigned char bad[44 + 400];
    memset(bad, 0, sizeof bad);
    wav_header(bad, 0x1234, 1, 16000, 16, 400);
    const char *codec = tmp_path("codec.wav");
    write_bytes(codec, bad, sizeof bad);
    cochlea_audio *a = NULL;
    int rc = cochlea_audio_open(codec, NULL, &a);
    ck_assert_msg(rc == COCHLEA_EUNSUPPORTED || rc == COCHLEA_EFORMAT, "rc %d: %s", rc, cochlea_last_error());
    ck_assert_ptr_null(a);
    ck_assert(strstr(cochlea_last_error(), codec) != NULL);
    /* absurd rate and channel count in otherwise valid WAVs */
    wav_header(bad, 1, 1, 100, 16, 400);
    const char *slow = tmp_path("rate100.wav");
    write_bytes(slow, bad, sizeof bad);
    expect_open_error(slow, NULL, COCHLEA_ERANGE, "sample rate 100 Hz");
    wav_header(bad, 1, 1, 5000000, 16, 400);
    const char *fast = tmp_path("rate5M.wav");
    write_bytes(fast, bad, sizeof bad);
    expect_open_error(fast, NULL, COCHLEA_ERANGE, "sample rate 5000000 Hz");
    wav_header(bad, 1, 300, 16000, 16, 400);
    const char *many = tmp_path("ch300.wav");
    write_bytes(many, bad, sizeof bad);
    a = NULL;
    rc = cochlea_audio_open(many, NULL, &a);
    ck_assert_msg(rc == COCHLEA_ERANGE || rc == COCHLEA_EFORMAT || rc == COCHLEA_EUNSUPPORTED, "rc %d: %s", rc,
                  cochlea_last_error());
    ck_assert_ptr_null(a);
    /* bad parameters */
    cochlea_audio_params p = cochlea_audio_default_params();
    p.sample_rate = 10;
    expect_open_error(zero, &p, COCHLEA_EINVAL, "output sample rate 10 Hz");
    p = cochlea_audio_default_params();
    p.channel = -2;
    expect_open_error(zero, &p, COCHLEA_EINVAL, "channel -2");
    ck_assert_int_eq(cochlea_audio_open("", NULL, &a), COCHLEA_EINVAL);
}
END_TEST

START_TEST(test_audio_truncated)
{
    /* a FLAC file cut in the middle of its frames, and a WAV whose data chunk promises more
     * bytes than the file has: both fail (or, for WAV, read only whole samples) with a message
     * naming the file */
    const size_t n = 48000;
    float *x = test_alloc(n);
    test_rng r = {6};
    test_fill(&r, x, n, -0.5f, 0.5f);
    const char *full = tmp_path("full.flac");
    ck_assert_int_eq(write_sf(full, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 1, x, (sf_count_t)n), 0);
    FILE *f = fopen(full, "rb");
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc(size);
    ck_assert_uint_eq(fread(bytes, 1, size, f), size);
    fclose(f);
    const char *cut = tmp_path("cut.flac");
    write_bytes(cut, bytes, size / 2);
    expect_load_error(cut, COCHLEA_EFORMAT, "truncated");
    free(bytes);

    /* WAV: header says 2000 samples, the file holds 1000 */
    unsigned char *w = malloc(44 + 2000);
    wav_header(w, 1, 1, 16000, 16, 4000);
    for (size_t i = 0; i < 1000; i++)
        put16(w + 44 + 2 * i, (unsigned)(i * 7));
    const char *tw = tmp_path("trunc.wav");
    write_bytes(tw, w, 44 + 2000);
    expect_load_error(tw, COCHLEA_EFORMAT, "truncated");
    free(w);
    free(x);
}
END_TEST

START_TEST(test_audio_nonfinite)
{
    /* NaN and Inf samples are rejected with the frame and time; never passed on */
    const size_t n = 20000;
    float *x = make_tone(n, 200.0, 0.5, 16000);
    x[12345] = NAN;
    const char *p1 = tmp_path("nan.wav");
    ck_assert_int_eq(write_sf(p1, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 1, x, (sf_count_t)n), 0);
    expect_load_error(p1, COCHLEA_EFORMAT, "frame 12345 (0.772 s) is NaN");
    x[12345] = 0.0f;
    x[17] = INFINITY;
    const char *p2 = tmp_path("inf.wav");
    ck_assert_int_eq(write_sf(p2, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 1, x, (sf_count_t)n), 0);
    expect_load_error(p2, COCHLEA_EFORMAT, "frame 17 (0.001 s) is infinite");
    /* the pull reader keeps failing with the same message after the error */
    cochlea_audio *a;
    ck_assert_int_eq(cochlea_audio_open(p2, NULL, &a), COCHLEA_OK);
    float buf[64];
    size_t got;
    ck_assert_int_eq(cochlea_audio_read(a, buf, 64, &got), COCHLEA_EFORMAT);
    cochlea_clear_error();
    ck_assert_int_eq(cochlea_audio_read(a, buf, 64, &got), COCHLEA_EFORMAT);
    ck_assert(strstr(cochlea_last_error(), "frame 17") != NULL);
    cochlea_audio_close(a);
    free(x);
}
END_TEST

/* ---- STFT ---------------------------------------------------------------------------------- */

START_TEST(test_stft_window)
{
    /* periodic Hann: w[0] = 0, w[N/2] = 1, and every value within the float32 evaluation's
     * error (the rounded step, argument and cosine, a few 1e-7) of the exact formula */
    float w[400];
    stft_hann_window(400, w);
    ck_assert_float_eq(w[0], 0.0f);
    ck_assert_float_eq(w[200], 1.0f);
    for (int i = 0; i < 400; i++) {
        double exact = 0.5 - 0.5 * cos(2.0 * M_PI * i / 400.0);
        ck_assert_msg(fabs(w[i] - exact) <= 4e-7, "w[%d] = %.9g, exact %.9g", i, (double)w[i], exact);
    }
    /* other lengths use the same formula without the torch table */
    float w7[7];
    stft_hann_window(7, w7);
    for (int i = 0; i < 7; i++)
        ck_assert_double_eq_tol(w7[i], 0.5 - 0.5 * cos(2.0 * M_PI * i / 7.0), 4e-7);
}
END_TEST

START_TEST(test_stft_power_matches_dft)
{
    /* the FFT power of a frame equals a direct DFT of the window centred in 512 zeros */
    stft *s;
    ck_assert_int_eq(stft_create(512, 400, 160, &s), COCHLEA_OK);
    ck_assert_int_eq(stft_n_bins(s), 257);
    float span[400];
    test_rng r = {7};
    test_fill(&r, span, 400, -1.0f, 1.0f);
    double p[257];
    stft_power(s, span, p);
    const float *w = stft_window(s);
    for (int k = 0; k < 257; k++) {
        double re = 0, im = 0;
        for (int i = 0; i < 400; i++) {
            int n = 56 + i;
            double v = (double)w[i] * span[i];
            re += v * cos(2.0 * M_PI * k * n / 512.0);
            im -= v * sin(2.0 * M_PI * k * n / 512.0);
        }
        double want = re * re + im * im;
        ck_assert_msg(fabs(p[k] - want) <= 1e-9 * (want + 1.0), "bin %d: %.12g vs %.12g", k, p[k], want);
    }
    stft_free(s);
    ck_assert_int_eq(stft_create(512, 600, 160, &s), COCHLEA_EINVAL);
    ck_assert_int_eq(stft_create(512, 400, 0, &s), COCHLEA_EINVAL);
    ck_assert_int_eq(stft_create(1, 1, 1, &s), COCHLEA_EINVAL);
}
END_TEST

START_TEST(test_stft_frames_and_reflect)
{
    stft *s;
    ck_assert_int_eq(stft_create(512, 400, 160, &s), COCHLEA_OK);
    ck_assert_uint_eq(stft_n_frames(s, 480000), 3001);
    ck_assert_uint_eq(stft_n_frames(s, 257), 2);
    ck_assert_uint_eq(stft_n_frames(s, 256), 0);
    ck_assert_uint_eq(stft_n_frames(s, 0), 0);
    ck_assert_uint_eq(stft_n_frames(s, 319), 2);
    ck_assert_uint_eq(stft_n_frames(s, 320), 3);
    ck_assert_int_eq(stft_frame_start(s, 0), -200);
    ck_assert_int_eq(stft_frame_start(s, 3), 280);
    /* reflect padding: x = 0, 1, 2, ...; frame 0 reads x[200], ..., x[1], x[0], x[1], ...;
     * the last frame of a 1000-sample signal mirrors around x[999] */
    float x[1000], span[400];
    for (int i = 0; i < 1000; i++)
        x[i] = (float)i;
    stft_gather(s, x, 0, 1000, 0, span);
    for (int i = 0; i < 400; i++)
        ck_assert_float_eq(span[i], (float)abs(i - 200));
    stft_gather(s, x, 0, 1000, 6, span); /* samples 760 .. 1159 */
    for (int i = 0; i < 400; i++) {
        int idx = 760 + i;
        ck_assert_float_eq(span[i], (float)(idx <= 999 ? idx : 2 * 999 - idx));
    }
    /* offset buffers: the same frame from x[500..] with x_first = 500 */
    stft_gather(s, x + 500, 500, 1000, 6, span);
    ck_assert_float_eq(span[399], (float)(2 * 999 - 1159));
    stft_free(s);
}
END_TEST

/* ---- the 512-point kernel (fft_r512) ----------------------------------------------------------- */

/* Exact-as-possible |X_k|^2 of the 512-point DFT of the window centred in zeros: long double sums
 * with the twiddle index reduced exactly, (k n) mod 512. */
static void naive_power512(const float *w, int win, const float *x, long double *p)
{
    static long double c[512], sn[512];
    static int init;
    if (!init) {
        for (int j = 0; j < 512; j++) {
            c[j] = cosl(2.0L * 3.14159265358979323846264338327950288L * j / 512.0L);
            sn[j] = sinl(2.0L * 3.14159265358979323846264338327950288L * j / 512.0L);
        }
        init = 1;
    }
    const int left = (512 - win) / 2;
    for (int k = 0; k < 257; k++) {
        long double re = 0, im = 0;
        for (int i = 0; i < win; i++) {
            long double v = (long double)w[i] * (long double)x[i];
            int e = (k * (left + i)) % 512;
            re += v * c[e];
            im -= v * sn[e];
        }
        p[k] = re * re + im * im;
    }
}

/* Frame classes for the kernel tests: 0 noise, 1..3 tones (one on a bin centre), 4 DC, 5 silence,
 * 6 alternating +-1 (Nyquist), 7 a single impulse. */
static void kernel_frame(int kind, int win, test_rng *r, float *x)
{
    for (int i = 0; i < win; i++) {
        switch (kind) {
        case 0: x[i] = test_rng_uniform(r, -1.0f, 1.0f); break;
        case 1: x[i] = (float)(0.5 * sin(2 * M_PI * 440.0 * i / 16000.0 + 0.3)); break;
        case 2: x[i] = (float)(0.9 * cos(2 * M_PI * 37.0 * i / 512.0)); break;
        case 3: x[i] = (float)(0.2 * sin(2 * M_PI * 7900.0 * i / 16000.0)); break;
        case 4: x[i] = -0.75f; break;
        case 5: x[i] = 0.0f; break;
        case 6: x[i] = i % 2 ? 1.0f : -1.0f; break;
        default: x[i] = i == win / 3 ? 1.0f : 0.0f; break;
        }
    }
}

START_TEST(test_fft_r512_matches_dft)
{
    /* every path equals the exact DFT to 1e-9 relative per bin, plus 1e-13 of the frame's energy
     * for bins far below it (a double FFT's rounding is relative to the energy), on noise, tones,
     * DC, silence, Nyquist and an impulse, for windows that start at even and odd positions */
    static const enum fft_r512_path paths[3] = {FFT_R512_SCALAR, FFT_R512_AVX2, FFT_R512_AVX512};
    static const int wins[5] = {400, 399, 401, 512, 1};
    float *x = test_alloc(8 * 512), w[512];
    long double ref[257];
    double *pw = malloc(257 * FFT_R512_BATCH * sizeof(double));
    test_rng r = {21};
    int tested = 0;
    for (int pi = 0; pi < 3; pi++) {
        if (!fft_r512_path_available(paths[pi])) {
            fprintf(stderr, "test_frontend: SKIP fft_r512 path %s (not available on this CPU)\n",
                    fft_r512_path_name(paths[pi]));
            continue;
        }
        tested++;
        for (int wi = 0; wi < 5; wi++) {
            const int win = wins[wi];
            stft_hann_window(win, w);
            if (win == 1)
                w[0] = 1.0f;
            fft_r512 *f;
            ck_assert_int_eq(fft_r512_create(win, w, paths[pi], &f), COCHLEA_OK);
            ck_assert_int_eq(fft_r512_get_path(f), paths[pi]);
            const float *spans[8];
            for (int l = 0; l < 8; l++) {
                kernel_frame(l, win, &r, x + l * 512);
                spans[l] = x + l * 512;
            }
            fft_r512_power(f, spans, 8, pw);
            for (int l = 0; l < 8; l++) {
                naive_power512(w, win, spans[l], ref);
                long double energy = 0;
                for (int k = 0; k < 257; k++)
                    energy += ref[k];
                for (int k = 0; k < 257; k++) {
                    double got = pw[k * FFT_R512_BATCH + l], want = (double)ref[k];
                    ck_assert_msg(fabs(got - want) <= 1e-9 * want + 1e-13 * (double)energy,
                                  "%s, window %d, frame kind %d, bin %d: %.17g vs %.17g", fft_r512_path_name(paths[pi]),
                                  win, l, k, got, want);
                }
                if (l == 5)
                    for (int k = 0; k < 257; k++)
                        ck_assert(pw[k * FFT_R512_BATCH + l] == 0.0); /* silence is exactly zero */
            }
            fft_r512_free(f);
        }
    }
    ck_assert_int_ge(tested, 1);
    /* invalid arguments */
    fft_r512 *f;
    ck_assert_int_eq(fft_r512_create(0, w, FFT_R512_AUTO, &f), COCHLEA_EINVAL);
    ck_assert_int_eq(fft_r512_create(513, w, FFT_R512_AUTO, &f), COCHLEA_EINVAL);
    ck_assert_int_eq(fft_r512_create(400, w, (enum fft_r512_path)99, &f), COCHLEA_EINVAL);
    ck_assert_ptr_null(f);
    free(x);
    free(pw);
}
END_TEST

START_TEST(test_fft_r512_paths_bit_identical)
{
    /* one frame's result does not depend on the path, on the batch size or on its lane: every
     * path and batch of 1..8 frames gives the scalar single-frame bits */
    static const enum fft_r512_path paths[3] = {FFT_R512_SCALAR, FFT_R512_AVX2, FFT_R512_AVX512};
    float w[400];
    stft_hann_window(400, w);
    const size_t n = 160 * 40 + 400;
    float *x = test_alloc(n);
    test_rng r = {22};
    for (size_t i = 0; i < n; i++)
        x[i] = test_rng_uniform(&r, -0.5f, 0.5f) + (float)(0.3 * sin(0.05 * (double)i));
    const int T = 40;
    double *ref = malloc((size_t)T * 257 * sizeof(double)), *pw = malloc(257 * FFT_R512_BATCH * sizeof(double));
    fft_r512 *f;
    ck_assert_int_eq(fft_r512_create(400, w, FFT_R512_SCALAR, &f), COCHLEA_OK);
    for (int t = 0; t < T; t++) {
        const float *sp = x + 160 * t;
        fft_r512_power(f, &sp, 1, pw);
        for (int k = 0; k < 257; k++)
            ref[t * 257 + k] = pw[k * FFT_R512_BATCH];
    }
    fft_r512_free(f);
    for (int pi = 0; pi < 3; pi++) {
        if (!fft_r512_path_available(paths[pi]))
            continue;
        ck_assert_int_eq(fft_r512_create(400, w, paths[pi], &f), COCHLEA_OK);
        for (int batch = 1; batch <= 8; batch++)
            for (int t0 = 0; t0 + batch <= T; t0 += batch) {
                const float *sp[8];
                for (int l = 0; l < batch; l++)
                    sp[l] = x + 160 * (t0 + l);
                fft_r512_power(f, sp, batch, pw);
                for (int l = 0; l < batch; l++)
                    for (int k = 0; k < 257; k++)
                        ck_assert_msg(memcmp(&pw[k * FFT_R512_BATCH + l], &ref[(t0 + l) * 257 + k], sizeof(double)) == 0,
                                      "%s, batch %d, frame %d, bin %d: %.17g vs %.17g", fft_r512_path_name(paths[pi]),
                                      batch, t0 + l, k, pw[k * FFT_R512_BATCH + l], ref[(t0 + l) * 257 + k]);
            }
        fft_r512_free(f);
    }
    free(x);
    free(ref);
    free(pw);
}
END_TEST

START_TEST(test_stft_transforms)
{
    /* stft_power_batch equals stft_power frame by frame on every transform; the kernels agree
     * with FFTW to 1e-9 relative (+1e-13 of the energy); the choice follows the request, the
     * size and COCHLEA_FFT */
    static const enum stft_fft kinds[4] = {STFT_FFT_FFTW, STFT_FFT_SCALAR, STFT_FFT_AVX2, STFT_FFT_AVX512};
    const size_t n = 4000;
    float *x = test_alloc(n), span[8][400];
    test_fill(&(test_rng){23}, x, n, -1.0f, 1.0f);
    double *batch = malloc(257 * STFT_BATCH * sizeof(double)), single[257], fftw[8][257];
    for (int ki = 0; ki < 4; ki++) {
        stft *s;
        int rc = stft_create_fft(512, 400, 160, kinds[ki], &s);
        if (rc == COCHLEA_EUNSUPPORTED) {
            ck_assert(kinds[ki] == STFT_FFT_AVX2 || kinds[ki] == STFT_FFT_AVX512);
            continue;
        }
        ck_assert_int_eq(rc, COCHLEA_OK);
        ck_assert_int_eq(stft_get_fft(s), kinds[ki]);
        const float *sp[8];
        for (int f = 0; f < 8; f++) {
            stft_gather(s, x, 0, n, (size_t)(3 * f), span[f]); /* frames 0 (reflected), 3, ..., 21 */
            sp[f] = span[f];
        }
        for (int nf = 1; nf <= 8; nf++) {
            stft_power_batch(s, sp, nf, batch);
            for (int f = 0; f < nf; f++) {
                stft_power(s, sp[f], single);
                for (int k = 0; k < 257; k++)
                    ck_assert_msg(memcmp(&batch[k * STFT_BATCH + f], &single[k], sizeof(double)) == 0,
                                  "%s: n %d, frame %d, bin %d", stft_fft_name(kinds[ki]), nf, f, k);
                if (kinds[ki] == STFT_FFT_FFTW)
                    memcpy(fftw[f], single, sizeof single);
                double energy = 0;
                for (int k = 0; k < 257; k++)
                    energy += fftw[f][k];
                for (int k = 0; k < 257; k++)
                    ck_assert(fabs(single[k] - fftw[f][k]) <= 1e-9 * fftw[f][k] + 1e-13 * energy);
            }
        }
        stft_free(s);
    }
    stft *s;
    ck_assert_int_eq(stft_create_fft(400, 400, 160, STFT_FFT_SCALAR, &s), COCHLEA_EUNSUPPORTED);
    ck_assert_int_eq(stft_create_fft(512, 400, 160, (enum stft_fft)42, &s), COCHLEA_EINVAL);
    ck_assert_int_eq(stft_create_fft(400, 400, 160, STFT_FFT_AUTO, &s), COCHLEA_OK);
    ck_assert_int_eq(stft_get_fft(s), STFT_FFT_FFTW); /* other sizes: FFTW */
    stft_free(s);
    setenv("COCHLEA_FFT", "scalar", 1);
    ck_assert_int_eq(stft_create(512, 400, 160, &s), COCHLEA_OK);
    ck_assert_int_eq(stft_get_fft(s), STFT_FFT_SCALAR);
    stft_free(s);
    setenv("COCHLEA_FFT", "fftw", 1);
    ck_assert_int_eq(stft_create(512, 400, 160, &s), COCHLEA_OK);
    ck_assert_int_eq(stft_get_fft(s), STFT_FFT_FFTW);
    stft_free(s);
    setenv("COCHLEA_FFT", "fast", 1);
    ck_assert_int_eq(stft_create(512, 400, 160, &s), COCHLEA_EINVAL);
    ck_assert(strstr(cochlea_last_error(), "COCHLEA_FFT='fast'") != NULL);
    unsetenv("COCHLEA_FFT");
    ck_assert_int_eq(stft_create(512, 400, 160, &s), COCHLEA_OK);
    ck_assert_int_eq(stft_get_fft(s), fft_r512_path_available(FFT_R512_AVX512) ? STFT_FFT_AVX512
                                      : fft_r512_path_available(FFT_R512_AVX2)   ? STFT_FFT_AVX2
                                                                                 : STFT_FFT_FFTW);
    stft_free(s);
    free(x);
    free(batch);
}
END_TEST

/* ---- filterbank ------------------------------------------------------------------------------ */

START_TEST(test_mel_scale)
{
    ck_assert_double_eq_tol(fbank_hz_to_mel(1000.0), 15.0, 1e-12);
    ck_assert_double_eq_tol(fbank_hz_to_mel(200.0), 3.0, 1e-12);
    ck_assert_double_eq_tol(fbank_hz_to_mel(6400.0), 42.0, 1e-9); /* 1 kHz * 6.4 = 27 mels up */
    ck_assert_double_eq_tol(fbank_mel_to_hz(42.0), 6400.0, 1e-8);
    for (double hz = 0; hz < 8000; hz += 123.4)
        ck_assert_double_eq_tol(fbank_mel_to_hz(fbank_hz_to_mel(hz)), hz, 1e-8);
}
END_TEST

START_TEST(test_slaney_filterbank)
{
    /* hand-computed entries of librosa.filters.mel(16000, 512, 80): mel points are spaced by
     * mel(8000)/81; filter 0 peaks at f1 and bin 1 (31.25 Hz) lies on its rising edge */
    float *w = test_alloc(257 * 80);
    ck_assert_int_eq(fbank_slaney_melmat(16000, 512, 80, 0.0, 8000.0, w), COCHLEA_OK);
    double step = fbank_hz_to_mel(8000.0) / 81.0;
    double f1 = fbank_mel_to_hz(step), f2 = fbank_mel_to_hz(2 * step);
    double want = fmin(31.25 / f1, (f2 - 31.25) / (f2 - f1)) * 2.0 / f2;
    ck_assert_double_eq_tol(w[1 * 80 + 0], want, 1e-8);
    ck_assert_float_eq(w[0 * 80 + 0], 0.0f); /* bin 0 is at the foot of filter 0 */
    /* every filter is a triangle: nonzero on one run of bins, and its area in Hz is about 1
     * for the wide filters (Slaney normalisation) */
    for (int m = 0; m < 80; m++) {
        int runs = 0, prev = 0;
        double area = 0;
        for (int k = 0; k < 257; k++) {
            float v = w[k * 80 + m];
            ck_assert(v >= 0.0f);
            if (v > 0 && !prev)
                runs++;
            prev = v > 0;
            area += v * 31.25;
        }
        ck_assert_int_eq(runs, 1);
        if (m >= 40)
            ck_assert_msg(fabs(area - 1.0) < 0.02, "filter %d area %g", m, area);
    }
    /* 128 bins, a band limit, and the invalid cases */
    float *w2 = test_alloc(257 * 128);
    ck_assert_int_eq(fbank_slaney_melmat(16000, 512, 128, 0.0, 8000.0, w2), COCHLEA_OK);
    ck_assert_int_eq(fbank_slaney_melmat(16000, 512, 80, 300.0, 3400.0, w), COCHLEA_OK);
    for (int k = 0; k < 257; k++)
        for (int m = 0; m < 80; m++)
            if (k * 31.25 <= 300.0 || k * 31.25 >= 3400.0)
                ck_assert_float_eq(w[k * 80 + m], 0.0f);
    ck_assert_int_eq(fbank_slaney_melmat(16000, 512, 80, 0.0, 9000.0, w), COCHLEA_EINVAL);
    ck_assert_int_eq(fbank_slaney_melmat(16000, 512, 80, 500.0, 400.0, w), COCHLEA_EINVAL);
    ck_assert_int_eq(fbank_slaney_melmat(16000, 512, 80, -1.0, 400.0, w), COCHLEA_EINVAL);
    ck_assert_int_eq(fbank_slaney_melmat(16000, 512, 0, 0.0, 8000.0, w), COCHLEA_EINVAL);
    free(w);
    free(w2);
}
END_TEST

/* Reference log-mel of frame t computed the slow way: reflect-pad by 256, window, direct DFT,
 * dense mel product, ln(max(., 1e-10)). */
static void slow_logmel_frame(const float *x, size_t n, size_t t, const float *melmat, int n_mels, float *out)
{
    float w[400];
    stft_hann_window(400, w);
    double p[257];
    for (int k = 0; k < 257; k++) {
        double re = 0, im = 0;
        for (int i = 0; i < 400; i++) {
            long long idx = (long long)t * 160 + 56 + i - 256; /* padded index - 256 */
            if (idx < 0)
                idx = -idx;
            if (idx >= (long long)n)
                idx = 2 * ((long long)n - 1) - idx;
            double v = (double)w[i] * x[idx];
            re += v * cos(2.0 * M_PI * k * (56 + i) / 512.0);
            im -= v * sin(2.0 * M_PI * k * (56 + i) / 512.0);
        }
        p[k] = re * re + im * im;
    }
    for (int m = 0; m < n_mels; m++) {
        double acc = 0;
        for (int k = 0; k < 257; k++)
            acc += p[k] * melmat[k * n_mels + m];
        out[m] = (float)log(fmax(acc, 1e-10));
    }
}

START_TEST(test_fbank_matches_slow_path)
{
    /* every frame class (left edge, interior, right edge) of a noise + tone signal */
    const size_t n = 2000;
    float *x = make_tone(n, 700.0, 0.3, 16000);
    test_rng r = {8};
    for (size_t i = 0; i < n; i++)
        x[i] += test_rng_uniform(&r, -0.1f, 0.1f);
    cochlea_fbank *fb;
    cochlea_fbank_params p = cochlea_fbank_default_params();
    ck_assert_int_eq(cochlea_fbank_create(&p, &fb), COCHLEA_OK);
    ck_assert_int_eq(cochlea_fbank_n_mels(fb), 80);
    size_t T = cochlea_fbank_n_frames(fb, n);
    ck_assert_uint_eq(T, 13);
    float *feats = test_alloc(T * 80), *mel = test_alloc(257 * 80), ref[80];
    size_t got;
    ck_assert_int_eq(cochlea_fbank_compute(fb, x, n, feats, T, &got), COCHLEA_OK);
    ck_assert_uint_eq(got, T);
    ck_assert_int_eq(fbank_slaney_melmat(16000, 512, 80, 0, 8000, mel), COCHLEA_OK);
    for (size_t t = 0; t < T; t++) {
        slow_logmel_frame(x, n, t, mel, 80, ref);
        test_assert_close(feats + t * 80, ref, 80, 2e-5, 0);
    }
    /* too small an output buffer, too short a signal, non-finite samples */
    ck_assert_int_eq(cochlea_fbank_compute(fb, x, n, feats, T - 1, &got), COCHLEA_ERANGE);
    ck_assert_uint_eq(got, 0);
    ck_assert_int_eq(cochlea_fbank_compute(fb, x, 256, feats, T, &got), COCHLEA_ERANGE);
    ck_assert(strstr(cochlea_last_error(), "at least 257 samples") != NULL);
    ck_assert_int_eq(cochlea_fbank_compute(fb, x, 257, feats, T, &got), COCHLEA_OK);
    ck_assert_uint_eq(got, 2);
    x[1500] = NAN;
    ck_assert_int_eq(cochlea_fbank_compute(fb, x, n, feats, T, &got), COCHLEA_EINVAL);
    ck_assert(strstr(cochlea_last_error(), "sample 1500") != NULL);
    cochlea_fbank_free(fb);
    free(x);
    free(feats);
    free(mel);
}
END_TEST

START_TEST(test_fbank_silence_and_mvn)
{
    /* digital silence is ln(1e-10) in every bin; MVN gives (x - mean) / std in float32 */
    const size_t n = 1600;
    float *x = test_alloc(n);
    float mean[80], std[80];
    for (int m = 0; m < 80; m++) {
        mean[m] = -17.5f + 0.03f * (float)m;
        std[m] = 7.6f - 0.04f * (float)m;
    }
    cochlea_fbank_params p = cochlea_fbank_default_params();
    cochlea_fbank *fb, *fbn;
    ck_assert_int_eq(cochlea_fbank_create(&p, &fb), COCHLEA_OK);
    p.mvn_mean = mean;
    p.mvn_std = std;
    ck_assert_int_eq(cochlea_fbank_create(&p, &fbn), COCHLEA_OK);
    float raw[11 * 80], norm[11 * 80];
    size_t got;
    ck_assert_int_eq(cochlea_fbank_compute(fb, x, n, raw, 11, &got), COCHLEA_OK);
    ck_assert_uint_eq(got, 11);
    for (size_t i = 0; i < 11 * 80; i++)
        ck_assert_float_eq(raw[i], (float)log(1e-10));
    test_fill(&(test_rng){9}, x, n, -1.0f, 1.0f);
    ck_assert_int_eq(cochlea_fbank_compute(fb, x, n, raw, 11, &got), COCHLEA_OK);
    ck_assert_int_eq(cochlea_fbank_compute(fbn, x, n, norm, 11, &got), COCHLEA_OK);
    for (size_t i = 0; i < 11 * 80; i++)
        ck_assert_float_eq(norm[i], (raw[i] - mean[i % 80]) / std[i % 80]);
    cochlea_fbank_free(fb);
    cochlea_fbank_free(fbn);
    /* invalid statistics */
    std[5] = 0.0f;
    ck_assert_int_eq(cochlea_fbank_create(&p, &fb), COCHLEA_EINVAL);
    ck_assert(strstr(cochlea_last_error(), "std[5]") != NULL);
    std[5] = 1.0f;
    mean[7] = NAN;
    ck_assert_int_eq(cochlea_fbank_create(&p, &fb), COCHLEA_EINVAL);
    ck_assert(strstr(cochlea_last_error(), "mean[7]") != NULL);
    p.mvn_std = NULL;
    ck_assert_int_eq(cochlea_fbank_create(&p, &fb), COCHLEA_EINVAL);
    p = cochlea_fbank_default_params();
    p.n_mels = 0;
    ck_assert_int_eq(cochlea_fbank_create(&p, &fb), COCHLEA_EINVAL);
    ck_assert_int_eq(cochlea_fbank_create(NULL, &fb), COCHLEA_EINVAL);
    free(x);
}
END_TEST

START_TEST(test_fbank_model_melmat)
{
    /* a caller's matrix is used as [bin][mel]: a matrix that picks bins 3, 100 and 250 gives
     * the log power of exactly those bins */
    const int nm = 3, picks[3] = {3, 100, 250};
    float *mat = test_alloc(257 * 3);
    for (int m = 0; m < nm; m++)
        mat[picks[m] * nm + m] = 1.0f;
    cochlea_fbank_params p = cochlea_fbank_default_params();
    p.n_mels = nm;
    p.melmat = mat;
    cochlea_fbank *fb;
    ck_assert_int_eq(cochlea_fbank_create(&p, &fb), COCHLEA_OK);
    mat[0] = 99.0f; /* copied at create: later changes do not matter */
    const size_t n = 4000;
    float *x = test_alloc(n);
    test_fill(&(test_rng){10}, x, n, -1.0f, 1.0f);
    float f[26 * 3];
    size_t got;
    ck_assert_int_eq(cochlea_fbank_compute(fb, x, n, f, 26, &got), COCHLEA_OK);
    stft *s;
    ck_assert_int_eq(stft_create(512, 400, 160, &s), COCHLEA_OK);
    float span[400];
    double pw[257];
    for (size_t t = 0; t < got; t++) {
        stft_gather(s, x, 0, n, t, span);
        stft_power(s, span, pw);
        for (int m = 0; m < nm; m++)
            ck_assert_float_eq(f[t * 3 + m], (float)log(fmax(pw[picks[m]], 1e-10)));
    }
    stft_free(s);
    cochlea_fbank_free(fb);
    mat[5] = INFINITY;
    ck_assert_int_eq(cochlea_fbank_create(&p, &fb), COCHLEA_EINVAL);
    ck_assert(strstr(cochlea_last_error(), "not finite") != NULL);
    free(mat);
    free(x);
}
END_TEST

START_TEST(test_fbank_streaming_exact)
{
    /* any push sizes and pull sizes give bit-identical frames to the whole-signal path */
    const size_t n = 16000 * 3 + 77;
    float *x = test_alloc(n);
    test_rng r = {11};
    test_fill(&r, x, n, -1.0f, 1.0f);
    cochlea_fbank_params p = cochlea_fbank_default_params();
    p.n_mels = 128;
    cochlea_fbank *fb;
    ck_assert_int_eq(cochlea_fbank_create(&p, &fb), COCHLEA_OK);
    size_t T = cochlea_fbank_n_frames(fb, n), got;
    float *whole = test_alloc(T * 128), *streamed = test_alloc((T + 1) * 128);
    ck_assert_int_eq(cochlea_fbank_compute(fb, x, n, whole, T, &got), COCHLEA_OK);
    static const int max_push[4] = {1, 159, 1000, 20000};
    for (int trial = 0; trial < 4; trial++) {
        cochlea_fbank_reset(fb);
        size_t pos = 0, frames = 0;
        while (pos < n) {
            size_t k = (size_t)test_rng_int(&r, 0, max_push[trial]);
            if (k > n - pos)
                k = n - pos;
            ck_assert_int_eq(cochlea_fbank_push(fb, x + pos, k), COCHLEA_OK);
            pos += k;
            size_t want = (size_t)test_rng_int(&r, 0, 40);
            ck_assert_int_eq(cochlea_fbank_pull(fb, streamed + frames * 128, want, &got), COCHLEA_OK);
            ck_assert_uint_le(got, want);
            frames += got;
            /* a frame is never emitted before all its samples are in: frame t reads up to
             * sample 160 t + 199, and nothing comes out before 257 samples */
            size_t ready = pos < 257 ? 0 : (pos - 200) / 160 + 1;
            ck_assert_uint_le(frames, ready);
        }
        ck_assert_int_eq(cochlea_fbank_finish(fb), COCHLEA_OK);
        ck_assert_int_eq(cochlea_fbank_push(fb, x, 1), COCHLEA_EINVAL);
        do {
            ck_assert_int_eq(cochlea_fbank_pull(fb, streamed + frames * 128, 7, &got), COCHLEA_OK);
            frames += got;
        } while (got);
        ck_assert_uint_eq(frames, T);
        ck_assert_int_eq(memcmp(whole, streamed, T * 128 * sizeof(float)), 0);
    }
    /* a stream shorter than 257 samples fails at finish, and reset recovers */
    cochlea_fbank_reset(fb);
    ck_assert_int_eq(cochlea_fbank_push(fb, x, 256), COCHLEA_OK);
    ck_assert_int_eq(cochlea_fbank_pull(fb, streamed, 10, &got), COCHLEA_OK);
    ck_assert_uint_eq(got, 0);
    ck_assert_int_eq(cochlea_fbank_finish(fb), COCHLEA_ERANGE);
    cochlea_fbank_reset(fb);
    ck_assert_int_eq(cochlea_fbank_push(fb, x, 257), COCHLEA_OK);
    ck_assert_int_eq(cochlea_fbank_finish(fb), COCHLEA_OK);
    ck_assert_int_eq(cochlea_fbank_pull(fb, streamed, 10, &got), COCHLEA_OK);
    ck_assert_uint_eq(got, 2);
    ck_assert_int_eq(cochlea_fbank_compute(fb, x, 257, whole, 2, &got), COCHLEA_OK);
    ck_assert_int_eq(memcmp(whole, streamed, 2 * 128 * sizeof(float)), 0);
    /* non-finite samples are refused with their stream position */
    cochlea_fbank_reset(fb);
    ck_assert_int_eq(cochlea_fbank_push(fb, x, 1000), COCHLEA_OK);
    x[1003] = NAN;
    ck_assert_int_eq(cochlea_fbank_push(fb, x + 1000, 10), COCHLEA_EINVAL);
    ck_assert(strstr(cochlea_last_error(), "stream sample 1003") != NULL);
    cochlea_fbank_free(fb);
    free(x);
    free(whole);
    free(streamed);
}
END_TEST

START_TEST(test_fbank_batched_exact)
{
    /* the whole-signal path (8 frames per batch) equals frames pulled one at a time, bit for bit,
     * with and without MVN and for 80 and 128 mels; and the scalar kernel (COCHLEA_FFT=scalar)
     * gives the same features as the automatic choice, bit for bit */
    const size_t n = 16000 + 321;
    float *x = test_alloc(n);
    test_fill(&(test_rng){24}, x, n, -1.0f, 1.0f);
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] + (float)(0.4 * sin(2 * M_PI * 1000.0 * (double)i / 16000.0));
    float mean[128], std[128];
    for (int m = 0; m < 128; m++) {
        mean[m] = -10.0f + 0.01f * (float)m;
        std[m] = 3.0f + 0.02f * (float)m;
    }
    for (int trial = 0; trial < 3; trial++) {
        cochlea_fbank_params p = cochlea_fbank_default_params();
        p.n_mels = trial == 1 ? 128 : 80;
        if (trial == 2) {
            p.mvn_mean = mean;
            p.mvn_std = std;
        }
        const size_t nm = (size_t)p.n_mels;
        cochlea_fbank *fb;
        ck_assert_int_eq(cochlea_fbank_create(&p, &fb), COCHLEA_OK);
        size_t T = cochlea_fbank_n_frames(fb, n), got;
        ck_assert_uint_eq(T, 103);
        float *whole = test_alloc(T * nm), *one = test_alloc(T * nm), *scalar = test_alloc(T * nm);
        ck_assert_int_eq(cochlea_fbank_compute(fb, x, n, whole, T, &got), COCHLEA_OK);
        cochlea_fbank_reset(fb);
        ck_assert_int_eq(cochlea_fbank_push(fb, x, n), COCHLEA_OK);
        ck_assert_int_eq(cochlea_fbank_finish(fb), COCHLEA_OK);
        size_t frames = 0;
        do {
            ck_assert_int_eq(cochlea_fbank_pull(fb, one + frames * nm, 1, &got), COCHLEA_OK);
            frames += got;
        } while (got);
        ck_assert_uint_eq(frames, T);
        ck_assert_int_eq(memcmp(whole, one, T * nm * sizeof(float)), 0);
        cochlea_fbank_free(fb);
        setenv("COCHLEA_FFT", "scalar", 1);
        ck_assert_int_eq(cochlea_fbank_create(&p, &fb), COCHLEA_OK);
        unsetenv("COCHLEA_FFT");
        ck_assert_int_eq(cochlea_fbank_compute(fb, x, n, scalar, T, &got), COCHLEA_OK);
        ck_assert_int_eq(memcmp(whole, scalar, T * nm * sizeof(float)), 0);
        /* and the features are not trivially equal: the tone's band stands out */
        ck_assert(whole[40 * nm + 30] != whole[40 * nm + 70]);
        cochlea_fbank_free(fb);
        free(whole);
        free(one);
        free(scalar);
    }
    free(x);
}
END_TEST

struct thread_job {
    const float *x;
    size_t n;
    float *out;
    int rc;
};

static void *fbank_thread(void *arg)
{
    struct thread_job *j = arg;
    cochlea_fbank_params p = cochlea_fbank_default_params();
    for (int rep = 0; rep < 5; rep++) {
        cochlea_fbank *fb;
        size_t got;
        j->rc = cochlea_fbank_create(&p, &fb);
        if (j->rc)
            return NULL;
        j->rc = cochlea_fbank_compute(fb, j->x, j->n, j->out, 1 + j->n / 160, &got);
        cochlea_fbank_free(fb);
        if (j->rc)
            return NULL;
    }
    return NULL;
}

START_TEST(test_fbank_threads)
{
    /* four threads create, use and free their own extractors concurrently (the FFTW planner
     * lock) and all get the single-threaded result */
    const size_t n = 16000;
    float *x = test_alloc(n);
    test_fill(&(test_rng){12}, x, n, -1.0f, 1.0f);
    const size_t T = 1 + n / 160;
    float *ref = test_alloc(T * 80);
    cochlea_fbank_params p = cochlea_fbank_default_params();
    cochlea_fbank *fb;
    size_t got;
    ck_assert_int_eq(cochlea_fbank_create(&p, &fb), COCHLEA_OK);
    ck_assert_int_eq(cochlea_fbank_compute(fb, x, n, ref, T, &got), COCHLEA_OK);
    cochlea_fbank_free(fb);
    pthread_t th[4];
    struct thread_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct thread_job){x, n, test_alloc(T * 80), -1};
        pthread_create(&th[i], NULL, fbank_thread, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(jobs[i].rc, COCHLEA_OK);
        ck_assert_int_eq(memcmp(jobs[i].out, ref, T * 80 * sizeof(float)), 0);
        free(jobs[i].out);
    }
    free(ref);
    free(x);
}
END_TEST

/* A model file image with the frontend keys and tensors; melmat in `mat_type` (F32 or F16);
 * skip = 1 leaves out the n_fft key, skip = 2 gives melmat a wrong shape. */
static void *make_frontend_gguf(const float *mat, const float *mean, const float *std, enum cochlea_type mat_type,
                                int skip, size_t *size)
{
    gguf_writer *w;
    ck_assert_int_eq(gguf_writer_new(&w), COCHLEA_OK);
    gguf_writer_set_str(w, "general.architecture", "owsm_ctc");
    gguf_writer_set_u32(w, "owsm_ctc.sample_rate", 16000);
    if (skip != 1)
        gguf_writer_set_u32(w, "owsm_ctc.n_fft", 512);
    gguf_writer_set_u32(w, "owsm_ctc.win_length", 400);
    gguf_writer_set_u32(w, "owsm_ctc.hop_length", 160);
    gguf_writer_set_u32(w, "owsm_ctc.n_mels", 80);
    gguf_writer_set_f32(w, "owsm_ctc.fmin", 0.0f);
    gguf_writer_set_f32(w, "owsm_ctc.fmax", 8000.0f);
    const int64_t ne_mat[2] = {80, skip == 2 ? 256 : 257}, ne_vec[1] = {80};
    uint16_t *half = NULL;
    if (mat_type == COCHLEA_TYPE_F16) {
        half = malloc(257 * 80 * sizeof *half);
        f32_to_fp16_array(mat, half, 257 * 80);
    }
    ck_assert_int_eq(gguf_writer_add_tensor(w, "frontend.logmel.melmat", mat_type, 2, ne_mat,
                                            half ? (const void *)half : (const void *)mat), COCHLEA_OK);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "normalize.mean", COCHLEA_TYPE_F32, 1, ne_vec, mean), COCHLEA_OK);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "normalize.std", COCHLEA_TYPE_F32, 1, ne_vec, std), COCHLEA_OK);
    void *buf;
    ck_assert_int_eq(gguf_writer_write_memory(w, &buf, size), COCHLEA_OK);
    gguf_writer_free(w);
    free(half);
    return buf;
}

START_TEST(test_fbank_from_model_file)
{
    /* the model's melmat and statistics are used (a filterbank scaled by 1.5 and arbitrary MVN
     * statistics give exactly what the same arrays passed directly give), F16 matrices are
     * converted, and missing keys or wrong shapes are errors naming them */
    float *mat = test_alloc(257 * 80), mean[80], std[80];
    ck_assert_int_eq(fbank_slaney_melmat(16000, 512, 80, 0, 8000, mat), COCHLEA_OK);
    for (int i = 0; i < 257 * 80; i++)
        mat[i] *= 1.5f;
    for (int m = 0; m < 80; m++) {
        mean[m] = -12.0f - 0.1f * (float)m;
        std[m] = 3.0f + 0.05f * (float)m;
    }
    const size_t n = 8000, T = 1 + n / 160;
    float *x = test_alloc(n), *a = test_alloc(T * 80), *b = test_alloc(T * 80);
    test_fill(&(test_rng){13}, x, n, -0.5f, 0.5f);
    for (int variant = 0; variant < 2; variant++) {
        enum cochlea_type type = variant ? COCHLEA_TYPE_F16 : COCHLEA_TYPE_F32;
        size_t size;
        void *img = make_frontend_gguf(mat, mean, std, type, 0, &size);
        gguf_file *f;
        ck_assert_int_eq(gguf_open_memory(img, size, &f), COCHLEA_OK);
        cochlea_fbank_params p;
        float *storage;
        ck_assert_msg(fbank_params_from_gguf(f, &p, &storage) == COCHLEA_OK, "%s", cochlea_last_error());
        ck_assert_int_eq(p.n_mels, 80);
        ck_assert_int_eq(p.hop_length, 160);
        ck_assert_ptr_nonnull(p.melmat);
        ck_assert_ptr_nonnull(p.mvn_mean);
        cochlea_fbank *fa, *fd;
        ck_assert_int_eq(cochlea_fbank_create(&p, &fa), COCHLEA_OK);
        free(storage);
        gguf_close(f);
        free(img);
        cochlea_fbank_params q = cochlea_fbank_default_params();
        float *expect = test_alloc(257 * 80);
        for (int i = 0; i < 257 * 80; i++)
            expect[i] = variant ? fp16_to_f32(f32_to_fp16(mat[i])) : mat[i];
        q.melmat = expect;
        q.mvn_mean = mean;
        q.mvn_std = std;
        ck_assert_int_eq(cochlea_fbank_create(&q, &fd), COCHLEA_OK);
        size_t got;
        ck_assert_int_eq(cochlea_fbank_compute(fa, x, n, a, T, &got), COCHLEA_OK);
        ck_assert_int_eq(cochlea_fbank_compute(fd, x, n, b, T, &got), COCHLEA_OK);
        ck_assert_int_eq(memcmp(a, b, T * 80 * sizeof(float)), 0);
        cochlea_fbank_free(fa);
        cochlea_fbank_free(fd);
        free(expect);
    }
    for (int skip = 1; skip <= 2; skip++) {
        size_t size;
        void *img = make_frontend_gguf(mat, mean, std, COCHLEA_TYPE_F32, skip, &size);
        gguf_file *f;
        ck_assert_int_eq(gguf_open_memory(img, size, &f), COCHLEA_OK);
        cochlea_fbank_params p;
        float *storage = (float *)1;
        ck_assert_int_eq(fbank_params_from_gguf(f, &p, &storage), COCHLEA_EFORMAT);
        ck_assert_ptr_null(storage);
        ck_assert_msg(strstr(cochlea_last_error(), skip == 1 ? "owsm_ctc.n_fft" : "frontend.logmel.melmat") != NULL,
                      "%s", cochlea_last_error());
        gguf_close(f);
        free(img);
    }
    free(mat);
    free(x);
    free(a);
    free(b);
}
END_TEST

/* ---- .npz statistics ------------------------------------------------------------------------ */

/* Bytes of a .npy v1.0 file holding `count` values of `descr` with shape text `shape`. */
static size_t make_npy(unsigned char *out, const char *descr, const char *shape, const void *data, size_t bytes)
{
    char dict[128];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    size_t hlen = (size_t)n + 1;
    while ((10 + hlen) % 64)
        hlen++;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    put16(out + 8, (unsigned)hlen);
    memset(out + 10, ' ', hlen);
    memcpy(out + 10, dict, (size_t)n);
    out[10 + hlen - 1] = '\n';
    memcpy(out + 10 + hlen, data, bytes);
    return 10 + hlen + bytes;
}

static uint32_t test_crc32(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int b = 0; b < 8; b++)
            c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return ~c;
}

/* A stored zip of members (name, bytes); zip64 = 1 writes numpy's zip64 extra fields and
 * records. Returns the size. */
static size_t make_zip(unsigned char *out, int n, const char *const *names, const unsigned char *const *data,
                       const size_t *sizes, int zip64)
{
    size_t pos = 0, offs[8];
    for (int i = 0; i < n; i++) {
        offs[i] = pos;
        unsigned char *h = out + pos;
        size_t nl = strlen(names[i]);
        put32(h, 0x04034b50u);
        put16(h + 4, zip64 ? 45 : 20);
        put16(h + 6, 0);
        put16(h + 8, 0);
        put32(h + 10, 0);
        put32(h + 14, test_crc32(data[i], sizes[i]));
        put32(h + 18, zip64 ? 0xFFFFFFFFu : (uint32_t)sizes[i]);
        put32(h + 22, zip64 ? 0xFFFFFFFFu : (uint32_t)sizes[i]);
        put16(h + 26, (unsigned)nl);
        put16(h + 28, zip64 ? 20 : 0);
        memcpy(h + 30, names[i], nl);
        pos += 30 + nl;
        if (zip64) {
            put16(out + pos, 1);
            put16(out + pos + 2, 16);
            put32(out + pos + 4, (uint32_t)sizes[i]);
            put32(out + pos + 8, 0);
            put32(out + pos + 12, (uint32_t)sizes[i]);
            put32(out + pos + 16, 0);
            pos += 20;
        }
        memcpy(out + pos, data[i], sizes[i]);
        pos += sizes[i];
    }
    size_t cd = pos;
    for (int i = 0; i < n; i++) {
        unsigned char *h = out + pos;
        size_t nl = strlen(names[i]);
        memset(h, 0, 46);
        put32(h, 0x02014b50u);
        put16(h + 4, 45);
        put16(h + 6, 20);
        put32(h + 16, test_crc32(data[i], sizes[i]));
        put32(h + 20, zip64 ? 0xFFFFFFFFu : (uint32_t)sizes[i]);
        put32(h + 24, zip64 ? 0xFFFFFFFFu : (uint32_t)sizes[i]);
        put16(h + 28, (unsigned)nl);
        put16(h + 30, zip64 ? 20 : 0);
        put32(h + 42, (uint32_t)offs[i]);
        memcpy(h + 46, names[i], nl);
        pos += 46 + nl;
        if (zip64) {
            put16(out + pos, 1);
            put16(out + pos + 2, 16);
            put32(out + pos + 4, (uint32_t)sizes[i]);
            put32(out + pos + 8, 0);
            put32(out + pos + 12, (uint32_t)sizes[i]);
            put32(out + pos + 16, 0);
            pos += 20;
        }
    }
    size_t cd_size = pos - cd;
    unsigned char *e = out + pos;
    memset(e, 0, 22);
    put32(e, 0x06054b50u);
    put16(e + 8, (unsigned)n);
    put16(e + 10, (unsigned)n);
    put32(e + 12, (uint32_t)cd_size);
    put32(e + 16, (uint32_t)cd);
    return pos + 22;
}

/* A feats_stats-like archive: count, sum and sum_square for D dims. */
static size_t make_stats(unsigned char *out, int64_t count, const float *sum, const float *sq, int d, int zip64)
{
    static unsigned char m[3][4096];
    char shape[32];
    snprintf(shape, sizeof shape, "(%d,)", d);
    size_t sizes[3] = {
        make_npy(m[0], "<i8", "()", &count, 8),
        make_npy(m[1], "<f4", shape, sum, (size_t)d * 4),
        make_npy(m[2], "<f4", shape, sq, (size_t)d * 4),
    };
    static const char *const names[3] = {"count.npy", "sum.npy", "sum_square.npy"};
    const unsigned char *data[3] = {m[0], m[1], m[2]};
    return make_zip(out, 3, names, data, sizes, zip64);
}

START_TEST(test_stats_npz)
{
    float sum[4] = {-100.0f, 20.0f, 3.5f, 0.0f}, sq[4] = {2100.0f, 80.0f, 10.0f, 0.0f};
    unsigned char *z = malloc(1 << 16);
    float mean[8], std[8];
    int d;
    for (int zip64 = 0; zip64 < 2; zip64++) {
        size_t n = make_stats(z, 10, sum, sq, 4, zip64);
        ck_assert_msg(fbank_stats_parse(z, n, "s.npz", mean, std, 8, &d) == COCHLEA_OK, "%s", cochlea_last_error());
        ck_assert_int_eq(d, 4);
        ck_assert_float_eq(mean[0], -10.0f);
        ck_assert_float_eq(std[0], (float)sqrt(210.0 - 100.0));
        ck_assert_float_eq(mean[1], 2.0f);
        ck_assert_float_eq(std[1], 2.0f);
        ck_assert_float_eq(std[3], (float)sqrt(1e-20)); /* zero variance floored at 1e-20 */
    }
    size_t n = make_stats(z, 10, sum, sq, 4, 1);
    ck_assert_int_eq(fbank_stats_parse(z, n, "s.npz", mean, std, 3, &d), COCHLEA_ERANGE);
    /* corruption: a data byte (CRC), a cut file, the end record missing */
    unsigned char *c = malloc(n);
    memcpy(c, z, n);
    c[100] ^= 0x40;
    ck_assert_int_eq(fbank_stats_parse(c, n, "s.npz", mean, std, 8, &d), COCHLEA_EFORMAT);
    ck_assert_msg(strstr(cochlea_last_error(), "CRC-32") != NULL, "%s", cochlea_last_error());
    ck_assert_int_eq(fbank_stats_parse(z, n - 30, "s.npz", mean, std, 8, &d), COCHLEA_EFORMAT);
    ck_assert_int_eq(fbank_stats_parse(z, 21, "s.npz", mean, std, 8, &d), COCHLEA_EFORMAT);
    for (size_t cut = 0; cut < n; cut += 7) /* every prefix fails cleanly (ASan checks bounds) */
        ck_assert_int_ne(fbank_stats_parse(z, cut, "s.npz", mean, std, 8, &d), COCHLEA_OK);
    /* a compressed member, a missing member, a bad count, mismatched lengths */
    memcpy(c, z, n);
    unsigned char *cdir = NULL;
    for (size_t i = 0; i + 4 <= n; i++)
        if (c[i] == 'P' && c[i + 1] == 'K' && c[i + 2] == 1 && c[i + 3] == 2) {
            cdir = c + i;
            break;
        }
    ck_assert_ptr_nonnull(cdir);
    put16(cdir + 10, 8);
    ck_assert_int_eq(fbank_stats_parse(c, n, "s.npz", mean, std, 8, &d), COCHLEA_EUNSUPPORTED);
    ck_assert(strstr(cochlea_last_error(), "compressed") != NULL);
    {
        static unsigned char m[2][512];
        int64_t cnt = 5;
        size_t sizes[2] = {make_npy(m[0], "<i8", "()", &cnt, 8), make_npy(m[1], "<f4", "(4,)", sum, 16)};
        static const char *const names[2] = {"count.npy", "sum.npy"};
        const unsigned char *data[2] = {m[0], m[1]};
        size_t k = make_zip(c, 2, names, data, sizes, 0);
        ck_assert_int_eq(fbank_stats_parse(c, k, "s.npz", mean, std, 8, &d), COCHLEA_EFORMAT);
        ck_assert(strstr(cochlea_last_error(), "no member 'sum_square.npy'") != NULL);
    }
    n = make_stats(z, 0, sum, sq, 4, 0);
    ck_assert_int_eq(fbank_stats_parse(z, n, "s.npz", mean, std, 8, &d), COCHLEA_EFORMAT);
    ck_assert(strstr(cochlea_last_error(), "count is 0") != NULL);
    free(c);
    free(z);
}
END_TEST

START_TEST(test_npy_parse)
{
    unsigned char b[512];
    npy_array a;
    double v[3] = {1.5, -2.0, 3.25};
    size_t n = make_npy(b, "<f8", "(3,)", v, 24);
    ck_assert_int_eq(npy_parse(b, n, "x.npy", &a), COCHLEA_OK);
    ck_assert_int_eq(a.ndim, 1);
    ck_assert_uint_eq(a.count, 3);
    ck_assert_double_eq(npy_get(&a, 2), 3.25);
    int32_t iv[6] = {1, 2, 3, 4, 5, -6};
    n = make_npy(b, "<i4", "(2, 3)", iv, 24);
    ck_assert_int_eq(npy_parse(b, n, "x.npy", &a), COCHLEA_OK);
    ck_assert_uint_eq(a.shape[1], 3);
    ck_assert_double_eq(npy_get(&a, 5), -6.0);
    /* errors: data size, dtype, magic, header length */
    ck_assert_int_eq(npy_parse(b, n - 1, "x.npy", &a), COCHLEA_EFORMAT);
    n = make_npy(b, ">f4", "(3,)", v, 12);
    ck_assert_int_eq(npy_parse(b, n, "x.npy", &a), COCHLEA_EUNSUPPORTED);
    ck_assert(strstr(cochlea_last_error(), "'>f4'") != NULL);
    n = make_npy(b, "<f4", "(3,)", v, 12);
    b[1] = 'X';
    ck_assert_int_eq(npy_parse(b, n, "x.npy", &a), COCHLEA_EFORMAT);
    b[1] = 'N';
    put16(b + 8, 60000);
    ck_assert_int_eq(npy_parse(b, n, "x.npy", &a), COCHLEA_EFORMAT);
    n = make_npy(b, "<f4", "(18446744073709551615, 2)", v, 12);
    ck_assert_int_eq(npy_parse(b, n, "x.npy", &a), COCHLEA_ERANGE);
}
END_TEST

START_TEST(test_stats_released_file)
{
    /* the released OWSM v3.1 statistics (owsm-ctc.md §1 sanity values), when ../shared is here */
    const char *shared = getenv("COCHLEA_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/owsm/feats_stats.npz", shared ? shared : "");
    if (!shared || access(path, R_OK) != 0) {
        fprintf(stderr, "test_frontend: SKIP released feats_stats.npz check: %s not found (COCHLEA_SHARED unset or "
                        "../shared absent)\n", path);
        return;
    }
    float mean[128], std[128];
    int d;
    ck_assert_msg(cochlea_mvn_stats_load(path, mean, std, 128, &d) == COCHLEA_OK, "%s", cochlea_last_error());
    ck_assert_int_eq(d, 80);
    ck_assert_double_eq_tol(mean[0], -17.5033, 1e-4);
    ck_assert_double_eq_tol(std[0], 7.6125, 1e-4);
    ck_assert_double_eq_tol(mean[79], -20.4279, 1e-4);
    ck_assert_double_eq_tol(std[79], 4.2730, 1e-4);
    /* digital silence normalises to about -0.7255 in bin 0 and -0.608 in bin 79 */
    cochlea_fbank_params p = cochlea_fbank_default_params();
    p.mvn_mean = mean;
    p.mvn_std = std;
    cochlea_fbank *fb;
    ck_assert_int_eq(cochlea_fbank_create(&p, &fb), COCHLEA_OK);
    float x[400] = {0}, f[3 * 80];
    size_t got;
    ck_assert_int_eq(cochlea_fbank_compute(fb, x, 400, f, 3, &got), COCHLEA_OK);
    ck_assert_double_eq_tol(f[0], -0.7255, 1e-3);
    ck_assert_double_eq_tol(f[79], -0.608, 1e-3);
    cochlea_fbank_free(fb);
    ck_assert_int_eq(cochlea_mvn_stats_load(tmp_dir, mean, std, 128, &d), COCHLEA_EIO);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("frontend");
    TCase *tc = tcase_create("audio");
    tcase_add_unchecked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_audio_wav_pcm16_exact);
    tcase_add_test(tc, test_audio_formats_lossless);
    tcase_add_test(tc, test_audio_formats_lossy);
    tcase_add_test(tc, test_audio_resample);
    tcase_add_test(tc, test_audio_channels);
    tcase_add_test(tc, test_audio_pcm16_channels_and_blocks);
    tcase_add_test(tc, test_audio_raw);
    tcase_add_test(tc, test_audio_pull_equals_load);
    tcase_add_test(tc, test_audio_threads);
    tcase_add_test(tc, test_audio_stdin_pipe);
    tcase_add_test(tc, test_audio_stdin_file_and_empty);
    tcase_add_test(tc, test_audio_bad_input);
    tcase_add_test(tc, test_audio_truncated);
    tcase_add_test(tc, test_audio_nonfinite);
    tcase_add_test(tc, test_stats_released_file);
    suite_add_tcase(s, tc);
    TCase *tf = tcase_create("features");
    tcase_set_timeout(tf, 120);
    tcase_add_test(tf, test_stft_window);
    tcase_add_test(tf, test_stft_power_matches_dft);
    tcase_add_test(tf, test_stft_frames_and_reflect);
    tcase_add_test(tf, test_fft_r512_matches_dft);
    tcase_add_test(tf, test_fft_r512_paths_bit_identical);
    tcase_add_test(tf, test_stft_transforms);
    tcase_add_test(tf, test_mel_scale);
    tcase_add_test(tf, test_slaney_filterbank);
    tcase_add_test(tf, test_fbank_matches_slow_path);
    tcase_add_test(tf, test_fbank_silence_and_mvn);
    tcase_add_test(tf, test_fbank_model_melmat);
    tcase_add_test(tf, test_fbank_from_model_file);
    tcase_add_test(tf, test_fbank_streaming_exact);
    tcase_add_test(tf, test_fbank_batched_exact);
    tcase_add_test(tf, test_fbank_threads);
    tcase_add_test(tf, test_stats_npz);
    tcase_add_test(tf, test_npy_parse);
    suite_add_tcase(s, tf);
    return test_run_suite(s);
}
