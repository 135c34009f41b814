/* codec.c - the public SECodec API (cochlea.h): model loading, the model fingerprint, and the
 * encode/decode pipelines (SEANet network + SE quantiser) in bounded-memory chunks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "codec/se_codebook.h"
#include "codec/seanet.h"
#include "cochlea.h"
#include "ctx.h"
#include "error.h"
#include "gguf.h"
#include "tensor.h"

#define CODEC_MIN_CHUNK 1
#define CODEC_MAX_CHUNK (1 << 20)

cochlea_codec_params cochlea_codec_default_params(void)
{
    cochlea_codec_params p;
    memset(&p, 0, sizeof p);
    p.n_threads = 0;
    p.precision = COCHLEA_PRECISION_F32;
    p.chunk_frames = 1000;
    p.overlap_frames = 50;
    return p;
}

/* ---- fingerprint ------------------------------------------------------------------------------ */

/* FNV-1a over 64-bit words (docs/secodec-model.md "Fingerprint"): h = (h ^ w) * 0x100000001b3,
 * starting from 0xcbf29ce484222325, on each 8-byte little-endian word; a tail of fewer than 8
 * bytes is zero-padded; the byte length is mixed in last. */
static uint64_t fp_mix(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    const uint64_t prime = 0x100000001b3ULL;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8); /* x86-64 (the targets) is little-endian */
        h = (h ^ w) * prime;
    }
    if (i < n) {
        uint64_t w = 0;
        memcpy(&w, p + i, n - i);
        h = (h ^ w) * prime;
    }
    return (h ^ (uint64_t)n) * prime;
}

uint64_t codec_fingerprint_begin(void)
{
    return 0xcbf29ce484222325ULL;
}

uint64_t codec_fingerprint_add(uint64_t h, const void *data, size_t n)
{
    return fp_mix(h, data, n);
}

uint64_t codec_fingerprint_add_str(uint64_t h, const char *s)
{
    return fp_mix(h, s, strlen(s) + 1);
}

static int fp_u32(uint64_t *h, uint32_t v)
{
    *h = fp_mix(*h, &v, sizeof v);
    return 0;
}

int codec_fingerprint_file(const gguf_file *f, uint64_t *out)
{
    uint32_t sr = 0, D = 0, L = 0;
    int rc;
    if ((rc = gguf_get_u32(f, "secodec.sample_rate", &sr)) || (rc = gguf_get_u32(f, "secodec.dimension", &D)))
        return rc;
    const gguf_value *strides;
    if ((rc = gguf_get_array(f, "secodec.strides", &strides)))
        return rc;
    uint64_t hop = 1;
    for (uint64_t i = 0; i < strides->n; i++) {
        int64_t s;
        if ((rc = gguf_value_int(strides, i, &s)))
            return rc;
        if (s < 1 || s > 1 << 20 || hop * (uint64_t)s > (1u << 30))
            return err_set(COCHLEA_EFORMAT, "%s: secodec.strides[%llu] = %lld is out of range", gguf_label(f),
                           (unsigned long long)i, (long long)s);
        hop *= (uint64_t)s;
    }
    if (gguf_has_key(f, "secodec.n_levels") && (rc = gguf_get_u32(f, "secodec.n_levels", &L)))
        return rc;
    uint64_t h = codec_fingerprint_begin();
    fp_u32(&h, sr);
    fp_u32(&h, (uint32_t)hop);
    fp_u32(&h, D);
    fp_u32(&h, L);
    if (L > 0) {
        const gguf_value *ks;
        if ((rc = gguf_get_array(f, "secodec.codebook_sizes", &ks)))
            return rc;
        if (ks->n != L)
            return err_set(COCHLEA_EFORMAT, "%s: secodec.codebook_sizes has %llu entries, secodec.n_levels is %u",
                           gguf_label(f), (unsigned long long)ks->n, L);
        for (uint32_t l = 0; l < L; l++) {
            int64_t k;
            if ((rc = gguf_value_int(ks, l, &k)))
                return rc;
            fp_u32(&h, (uint32_t)k);
        }
    }
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const tensor *t = gguf_tensor(f, i);
        if (strncmp(t->name, "decoder.", 8) != 0 && strncmp(t->name, "quantizer.vq.", 13) != 0)
            continue;
        h = fp_mix(h, t->name, strlen(t->name) + 1);
        fp_u32(&h, (uint32_t)t->type);
        h = fp_mix(h, t->ne, sizeof t->ne);
        h = fp_mix(h, t->data, tensor_nbytes(t));
    }
    *out = h;
    return COCHLEA_OK;
}

/* ---- the codec object ------------------------------------------------------------------------- */

struct cochlea_codec {
    gguf_file *f;
    seanet *net;
    se_codebook *cb; /* NULL for a bare network */
    cochlea_ctx *ctx;
    cochlea_codec_params p;
    int sample_rate, hop, D, L;
    uint64_t fingerprint;
    char quantizer[16];
    /* scratch for one pass: samples, latents, codes */
    float *seg, *z;
    int32_t *codes;
    size_t seg_cap, z_cap, codes_cap;
};

const gguf_file *codec_gguf(const cochlea_codec *c)
{
    return c ? c->f : NULL;
}

int cochlea_codec_load(const char *path, const cochlea_codec_params *params, cochlea_codec **out)
{
    if (!out)
        return err_set(COCHLEA_EINVAL, "cochlea_codec_load: out is NULL");
    *out = NULL;
    if (!path)
        return err_set(COCHLEA_EINVAL, "cochlea_codec_load: path is NULL");
    cochlea_codec_params p = params ? *params : cochlea_codec_default_params();
    if (p.chunk_frames < CODEC_MIN_CHUNK || p.chunk_frames > CODEC_MAX_CHUNK)
        return err_set(COCHLEA_EINVAL, "cochlea_codec_load: chunk_frames %d is outside [%d, %d]", p.chunk_frames,
                       CODEC_MIN_CHUNK, CODEC_MAX_CHUNK);
    if (p.overlap_frames < 0 || p.overlap_frames > CODEC_MAX_CHUNK)
        return err_set(COCHLEA_EINVAL, "cochlea_codec_load: overlap_frames %d is outside [0, %d]", p.overlap_frames,
                       CODEC_MAX_CHUNK);
    if (p.n_threads < 0)
        return err_set(COCHLEA_EINVAL, "cochlea_codec_load: n_threads %d is negative", p.n_threads);
    gguf_file *f;
    int rc = gguf_open(path, &f);
    if (rc)
        return rc;
    const char *arch = NULL;
    if (!gguf_has_key(f, "general.architecture")) {
        rc = err_set(COCHLEA_EFORMAT, "%s: no general.architecture key (not a Cochlea/GGUF model file?)", path);
        goto fail_f;
    }
    if ((rc = gguf_get_str(f, "general.architecture", &arch, NULL)))
        goto fail_f;
    if (strcmp(arch, "secodec") != 0) {
        rc = err_set(COCHLEA_EINVAL, "%s: architecture '%s' is not a codec (expected 'secodec')", path, arch);
        goto fail_f;
    }
    cochlea_codec *c = calloc(1, sizeof *c);
    if (!c) {
        rc = err_set(COCHLEA_ENOMEM, "out of memory");
        goto fail_f;
    }
    c->f = f;
    c->p = p;
    if ((rc = seanet_load(f, &c->net)))
        goto fail;
    c->sample_rate = seanet_get_hparams(c->net)->sample_rate;
    c->hop = seanet_hop(c->net);
    c->D = seanet_dimension(c->net);
    if (gguf_has_key(f, "secodec.n_levels")) {
        if ((rc = se_codebook_load(f, c->D, &c->cb)))
            goto fail;
        if (c->cb) {
            c->L = c->cb->n_levels;
            snprintf(c->quantizer, sizeof c->quantizer, "%s",
                     c->cb->quantizer == SE_QUANTIZER_SE ? "se" : "nearest");
        }
    }
    if ((rc = codec_fingerprint_file(f, &c->fingerprint)))
        goto fail;
    if ((rc = ctx_create(p.n_threads, p.precision, &c->ctx)))
        goto fail;
    *out = c;
    return COCHLEA_OK;
fail:
    cochlea_codec_free(c);
    return rc;
fail_f:
    gguf_close(f);
    return rc;
}

void cochlea_codec_free(cochlea_codec *c)
{
    if (!c)
        return;
    se_codebook_free(c->cb);
    seanet_free(c->net);
    ctx_free(c->ctx);
    gguf_close(c->f);
    free(c->seg);
    free(c->z);
    free(c->codes);
    free(c);
}

int cochlea_codec_sample_rate(const cochlea_codec *c)
{
    return c ? c->sample_rate : 0;
}

int cochlea_codec_hop(const cochlea_codec *c)
{
    return c ? c->hop : 0;
}

int cochlea_codec_dimension(const cochlea_codec *c)
{
    return c ? c->D : 0;
}

int cochlea_codec_n_levels(const cochlea_codec *c)
{
    return c ? c->L : 0;
}

int cochlea_codec_codebook_size(const cochlea_codec *c, int level)
{
    if (!c || !c->cb || level < 0 || level >= c->L)
        return 0;
    return (int)c->cb->levels[level].K;
}

const char *cochlea_codec_quantizer(const cochlea_codec *c)
{
    return c ? c->quantizer : "";
}

uint64_t cochlea_codec_fingerprint(const cochlea_codec *c)
{
    return c ? c->fingerprint : 0;
}

size_t cochlea_codec_n_frames(const cochlea_codec *c, size_t n)
{
    if (!c || c->hop <= 0)
        return 0;
    return n / (size_t)c->hop + (n % (size_t)c->hop != 0);
}

/* Grow a scratch buffer to n elements of size `elem`. */
static int grow(void **buf, size_t *cap, size_t n, size_t elem)
{
    if (n <= *cap)
        return COCHLEA_OK;
    if (elem && n > SIZE_MAX / elem)
        return err_set(COCHLEA_ERANGE, "codec: buffer of %zu elements overflows", n);
    void *p = realloc(*buf, n * elem);
    if (!p)
        return err_set(COCHLEA_ENOMEM, "codec: out of memory (%zu bytes)", n * elem);
    *buf = p;
    *cap = n;
    return COCHLEA_OK;
}

static int check_levels(const cochlea_codec *c, int n_levels, const char *fn)
{
    if (!c->cb || c->L == 0)
        return err_set(COCHLEA_EINVAL, "%s: the model has no codebooks (a bare network: build them with "
                                       "'cochlea codec build-codebook')", fn);
    if (n_levels < 1 || n_levels > c->L)
        return err_set(COCHLEA_EINVAL, "%s: %d levels requested, the model has %d", fn, n_levels, c->L);
    return COCHLEA_OK;
}

/* ---- chunked encoding ------------------------------------------------------------------------- */

/* Where samples come from: a reader or an array. */
typedef struct pcm_source {
    cochlea_audio *reader;
    const float *pcm;
    size_t n, pos;
} pcm_source;

static int source_pull(pcm_source *s, float *dst, size_t max, size_t *got)
{
    if (s->reader)
        return cochlea_audio_read(s->reader, dst, max, got);
    size_t k = s->n - s->pos < max ? s->n - s->pos : max;
    if (k)
        memcpy(dst, s->pcm + s->pos, k * sizeof *dst);
    s->pos += k;
    *got = k;
    return COCHLEA_OK;
}

typedef int (*latent_sink)(cochlea_codec *c, const float *z, size_t n_frames, void *user);

/* The chunk plan (cochlea.h, cochlea_codec_params): output frames [f0, f1) come from one pass
 * over frames [max(0, f0 - m), f1 + m) of input; when at most F + m frames remain, they all go
 * into the current pass. Passes start on frame boundaries, so a pass's frame j is global frame
 * start + j exactly. Hands the latents of each [f0, f1) to `sink`; *n_total gets the sample count. */
static int encode_chunks(cochlea_codec *c, pcm_source *src, latent_sink sink, void *user, uint64_t *n_total,
                         cochlea_progress_fn progress, void *progress_user)
{
    const size_t hop = (size_t)c->hop, F = (size_t)c->p.chunk_frames, m = (size_t)c->p.overlap_frames;
    const size_t D = (size_t)c->D;
    /* the buffer holds samples [buf0, buf0 + nbuf) of the signal */
    size_t buf0 = 0, nbuf = 0, f0 = 0;
    int rc, eof = 0;
    uint64_t total_hint = 0;
    if (src->reader) {
        cochlea_audio_info info;
        cochlea_audio_get_info(src->reader, &info);
        if (info.source_frames > 0 && info.source_rate > 0)
            total_hint = (uint64_t)((double)info.source_frames * c->sample_rate / info.source_rate);
    } else {
        total_hint = src->n;
    }
    for (;;) {
        /* read until (f0 + F + m) * hop + 1 samples are known, or the end */
        size_t want = (f0 + F + m) * hop + 1;
        while (!eof && buf0 + nbuf < want) {
            if (nbuf == c->seg_cap) { /* grow geometrically, never past (F + 2m) hop + 1 samples */
                size_t need = c->seg_cap ? 2 * c->seg_cap : 65536;
                if (need > want - buf0)
                    need = want - buf0;
                if ((rc = grow((void **)&c->seg, &c->seg_cap, need, sizeof(float))))
                    return rc;
            }
            size_t ask = want - buf0 - nbuf;
            if (ask > c->seg_cap - nbuf)
                ask = c->seg_cap - nbuf;
            size_t got = 0;
            if ((rc = source_pull(src, c->seg + nbuf, ask, &got)))
                return rc;
            if (got == 0)
                eof = 1;
            nbuf += got;
        }
        size_t n_known = buf0 + nbuf;
        size_t T_known = n_known / hop + (n_known % hop != 0);
        if (eof && f0 >= T_known)
            break;
        size_t f1, end;
        if (eof && T_known - f0 <= F + m) {
            f1 = T_known;
            end = n_known;
        } else {
            f1 = f0 + F;
            end = (f1 + m) * hop;
        }
        size_t s0 = f0 > m ? f0 - m : 0, a = s0 * hop;
        size_t len = end - a, Tseg = len / hop + (len % hop != 0);
        if ((rc = grow((void **)&c->z, &c->z_cap, Tseg * D, sizeof(float))))
            return rc;
        if ((rc = seanet_encode(c->ctx, c->net, c->seg + (a - buf0), (int64_t)len, c->z)))
            return rc;
        if ((rc = sink(c, c->z + (f0 - s0) * D, f1 - f0, user)))
            return rc;
        f0 = f1;
        if (progress && progress(f0 * hop < n_known ? f0 * hop : n_known, total_hint > n_known ? total_hint : n_known,
                                 progress_user))
            return err_set(COCHLEA_ECANCELED, "codec: encoding cancelled");
        /* keep samples from (f0 - m) * hop on */
        size_t keep0 = (f0 > m ? f0 - m : 0) * hop;
        if (keep0 > buf0 + nbuf) /* the last frame was partial: nothing is left */
            keep0 = buf0 + nbuf;
        if (keep0 > buf0) {
            memmove(c->seg, c->seg + (keep0 - buf0), (buf0 + nbuf - keep0) * sizeof(float));
            nbuf -= keep0 - buf0;
            buf0 = keep0;
        }
    }
    *n_total = buf0 + nbuf;
    return COCHLEA_OK;
}

typedef struct latents_to_array {
    float *z;
    size_t done;
} latents_to_array;

static int sink_latents(cochlea_codec *c, const float *z, size_t n, void *user)
{
    latents_to_array *a = user;
    memcpy(a->z + a->done * (size_t)c->D, z, n * (size_t)c->D * sizeof(float));
    a->done += n;
    return COCHLEA_OK;
}

int cochlea_codec_encode_latents(cochlea_codec *c, const float *pcm, size_t n, float *z)
{
    if (!c || (!pcm && n) || (!z && n))
        return err_set(COCHLEA_EINVAL, "cochlea_codec_encode_latents: NULL argument");
    pcm_source src = {NULL, pcm, n, 0};
    latents_to_array a = {z, 0};
    uint64_t total;
    return encode_chunks(c, &src, sink_latents, &a, &total, NULL, NULL);
}

typedef struct codes_sink {
    int n_levels, nearest;
    cochlea_codec_codes_fn fn;
    void *user;
    int32_t *out; /* array mode */
    size_t done;
} codes_sink;

static int sink_codes(cochlea_codec *c, const float *z, size_t n, void *user)
{
    codes_sink *s = user;
    int rc = grow((void **)&c->codes, &c->codes_cap, n * (size_t)s->n_levels, sizeof(int32_t));
    if (rc)
        return rc;
    int32_t *dst = s->out ? s->out + s->done * (size_t)s->n_levels : c->codes;
    if ((rc = se_codebook_encode(c->ctx, c->cb, z, (int64_t)n, s->n_levels, s->nearest, dst)))
        return rc;
    s->done += n;
    if (s->fn && (rc = s->fn(dst, n, s->user)))
        return rc;
    return COCHLEA_OK;
}

int cochlea_codec_encode(cochlea_codec *c, const float *pcm, size_t n, int n_levels, int nearest, int32_t *codes)
{
    if (!c || (!pcm && n) || (!codes && n))
        return err_set(COCHLEA_EINVAL, "cochlea_codec_encode: NULL argument");
    int rc = check_levels(c, n_levels, "cochlea_codec_encode");
    if (rc)
        return rc;
    pcm_source src = {NULL, pcm, n, 0};
    codes_sink s = {n_levels, nearest, NULL, NULL, codes, 0};
    uint64_t total;
    return encode_chunks(c, &src, sink_codes, &s, &total, NULL, NULL);
}

int cochlea_codec_encode_audio(cochlea_codec *c, cochlea_audio *reader, int n_levels, int nearest,
                               cochlea_codec_codes_fn on_codes, void *user, uint64_t *n_samples,
                               cochlea_progress_fn progress, void *progress_user)
{
    if (!c || !reader || !on_codes)
        return err_set(COCHLEA_EINVAL, "cochlea_codec_encode_audio: NULL argument");
    int rc = check_levels(c, n_levels, "cochlea_codec_encode_audio");
    if (rc)
        return rc;
    pcm_source src = {reader, NULL, 0, 0};
    codes_sink s = {n_levels, nearest, on_codes, user, NULL, 0};
    uint64_t total = 0;
    rc = encode_chunks(c, &src, sink_codes, &s, &total, progress, progress_user);
    if (n_samples)
        *n_samples = total;
    return rc;
}

/* ---- chunked decoding ------------------------------------------------------------------------- */

typedef struct code_source {
    cochlea_codec_next_codes_fn next;
    void *user;
    const int32_t *codes; /* array mode */
    size_t n, pos;
} code_source;

/* The same plan as encode_chunks over frames: output samples of frames [f0, f1) come from one
 * decoder pass over frames [max(0, f0 - m), f1 + m); samples past n_samples are dropped. */
static int decode_chunks(cochlea_codec *c, code_source *src, int n_levels, uint64_t n_samples,
                         cochlea_codec_pcm_fn on_pcm, void *user, float *out, cochlea_progress_fn progress,
                         void *progress_user)
{
    const size_t hop = (size_t)c->hop, F = (size_t)c->p.chunk_frames, m = (size_t)c->p.overlap_frames;
    const size_t D = (size_t)c->D, L = (size_t)n_levels;
    size_t cap = F + 2 * m + 1, cb0 = 0, ncb = 0, f0 = 0, written = 0;
    int rc = grow((void **)&c->codes, &c->codes_cap, cap * L, sizeof(int32_t));
    if (rc)
        return rc;
    int end = 0;
    uint64_t T_expected = n_samples / hop + (n_samples % hop != 0);
    for (;;) {
        size_t want = f0 + F + m + 1;
        while (!end && cb0 + ncb < want) {
            size_t got = 0, room = want - cb0 - ncb;
            if (src->next) {
                if ((rc = src->next(c->codes + ncb * L, room, &got, src->user)))
                    return rc;
                if (got > room)
                    return err_set(COCHLEA_EINVAL, "codec: the code source returned %zu frames, at most %zu asked",
                                   got, room);
            } else {
                got = src->n - src->pos < room ? src->n - src->pos : room;
                memcpy(c->codes + ncb * L, src->codes + src->pos * L, got * L * sizeof(int32_t));
                src->pos += got;
            }
            if (got == 0)
                end = 1;
            ncb += got;
        }
        size_t T_known = cb0 + ncb;
        if (end && f0 >= T_known)
            break;
        size_t f1 = (end && T_known - f0 <= F + m) ? T_known : f0 + F;
        size_t s0 = f0 > m ? f0 - m : 0, s1 = f1 + m < T_known ? f1 + m : T_known;
        if (end && f1 == T_known)
            s1 = T_known;
        size_t Tseg = s1 - s0;
        if ((rc = grow((void **)&c->z, &c->z_cap, Tseg * D, sizeof(float))) ||
            (rc = grow((void **)&c->seg, &c->seg_cap, Tseg * hop, sizeof(float))))
            return rc;
        if ((rc = se_codebook_decode(c->cb, c->codes + (s0 - cb0) * L, (int64_t)Tseg, n_levels, c->z)))
            return rc;
        if ((rc = seanet_decode(c->ctx, c->net, c->z, (int64_t)Tseg, c->seg)))
            return rc;
        size_t from = f0 * hop, to = f1 * hop;
        if (to > n_samples)
            to = (size_t)n_samples;
        if (to > from) {
            const float *p = c->seg + (f0 - s0) * hop;
            if (out)
                memcpy(out + written, p, (to - from) * sizeof(float));
            else if ((rc = on_pcm(p, to - from, user)))
                return rc;
            written += to - from;
        }
        f0 = f1;
        if (progress && progress(f0, T_expected > f0 ? T_expected : f0, progress_user))
            return err_set(COCHLEA_ECANCELED, "codec: decoding cancelled");
        size_t keep0 = f0 > m ? f0 - m : 0;
        if (keep0 > cb0) {
            memmove(c->codes, c->codes + (keep0 - cb0) * L, (cb0 + ncb - keep0) * L * sizeof(int32_t));
            ncb -= keep0 - cb0;
            cb0 = keep0;
        }
    }
    return COCHLEA_OK;
}

int cochlea_codec_decode(cochlea_codec *c, const int32_t *codes, size_t n_frames, int n_levels, float *pcm,
                         size_t n_samples)
{
    if (!c || (!codes && n_frames) || (!pcm && n_samples))
        return err_set(COCHLEA_EINVAL, "cochlea_codec_decode: NULL argument");
    int rc = check_levels(c, n_levels, "cochlea_codec_decode");
    if (rc)
        return rc;
    if (n_samples > n_frames * (size_t)c->hop)
        return err_set(COCHLEA_EINVAL, "cochlea_codec_decode: %zu samples asked from %zu frames (at most %zu)",
                       n_samples, n_frames, n_frames * (size_t)c->hop);
    code_source src = {NULL, NULL, codes, n_frames, 0};
    return decode_chunks(c, &src, n_levels, n_samples, NULL, NULL, pcm, NULL, NULL);
}

int cochlea_codec_decode_stream(cochlea_codec *c, int n_levels, uint64_t n_samples,
                                cochlea_codec_next_codes_fn next_codes, cochlea_codec_pcm_fn on_pcm, void *user,
                                cochlea_progress_fn progress, void *progress_user)
{
    if (!c || !next_codes || !on_pcm)
        return err_set(COCHLEA_EINVAL, "cochlea_codec_decode_stream: NULL argument");
    int rc = check_levels(c, n_levels, "cochlea_codec_decode_stream");
    if (rc)
        return rc;
    code_source src = {next_codes, user, NULL, 0, 0};
    return decode_chunks(c, &src, n_levels, n_samples, on_pcm, user, NULL, progress, progress_user);
}

/* ---- model files with new codebooks ------------------------------------------------------------ */

/* Keys of the quantiser section, replaced when new codebooks are written. */
static int is_quantizer_key(const char *k)
{
    return strcmp(k, "secodec.n_levels") == 0 || strcmp(k, "secodec.codebook_sizes") == 0 ||
           strcmp(k, "secodec.quantizer") == 0 || strncmp(k, "secodec.se.", 11) == 0 ||
           strcmp(k, "secodec.codebooks_frozen") == 0;
}

int codec_write_with_codebooks(const gguf_file *src, const se_codebook *cb, enum cochlea_type nodes_type,
                               const char *training, const char *path)
{
    gguf_writer *w;
    int rc = gguf_writer_new(&w);
    if (rc)
        return rc;
    for (int64_t i = 0; i < gguf_n_kv(src) && !rc; i++) {
        const char *k = gguf_kv_key(src, i);
        if (is_quantizer_key(k) || (training && strcmp(k, "secodec.training") == 0))
            continue;
        if (strcmp(k, "general.alignment") == 0) {
            uint32_t a;
            if (!(rc = gguf_get_u32(src, k, &a)))
                rc = gguf_writer_set_alignment(w, a);
        } else {
            rc = gguf_writer_set_value(w, k, gguf_kv_value(src, i));
        }
    }
    if (!rc && training)
        rc = gguf_writer_set_str(w, "secodec.training", training);
    for (int64_t i = 0; i < gguf_n_tensors(src) && !rc; i++) {
        const tensor *t = gguf_tensor(src, i);
        if (strncmp(t->name, "quantizer.", 10) == 0)
            continue;
        rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
    }
    if (!rc)
        rc = se_codebook_write(cb, w, nodes_type);
    if (!rc)
        rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    return rc;
}
