/* asr.c - the public model and ASR API (cochlea.h): model files, windows, decoding, results. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asr/ctc.h"
#include "asr/owsm.h"
#include "cochlea.h"
#include "ctx.h"
#include "error.h"
#include "frontend/fbank.h"
#include "gemm.h"
#include "ops.h"

struct cochlea_model {
    char arch[64];
    owsm_model *owsm;
};

struct cochlea_asr {
    const owsm_model *m;
    cochlea_ctx *ctx;
    owsm_work *work;
    int batch;
    cochlea_fbank *fb;
    cochlea_fbank_params fbp;
    float *fb_storage;
    float *feats; /* batch x window_frames x n_mels */
    float *wave;  /* one window of samples */
    /* results of the last run */
    int n_windows;
    int32_t *frame_ids, *kept, *tokens;
    float *frame_probs;
    size_t n_frame_ids, n_tokens;
    char *text, *text_ns;
    float *post, *enc;
    size_t n_post, n_enc;
};

/* ---- models --------------------------------------------------------------------------------- */

int cochlea_model_load(const char *path, cochlea_model **out)
{
    if (!out)
        return err_set(COCHLEA_EINVAL, "cochlea_model_load: out is NULL");
    *out = NULL;
    if (!path)
        return err_set(COCHLEA_EINVAL, "cochlea_model_load: path is NULL");
    gguf_file *f;
    int rc = gguf_open(path, &f);
    if (rc)
        return rc;
    const char *arch;
    if (!gguf_has_key(f, "general.architecture")) {
        gguf_close(f);
        return err_set(COCHLEA_EFORMAT, "%s: no general.architecture key (not a Cochlea/GGUF model file?)", path);
    }
    if ((rc = gguf_get_str(f, "general.architecture", &arch, NULL))) {
        gguf_close(f);
        return rc;
    }
    if (strcmp(arch, "owsm_ctc") != 0) {
        rc = err_set(COCHLEA_EUNSUPPORTED, "%s: architecture '%s' is not one this build runs (owsm_ctc)", path, arch);
        gguf_close(f);
        return rc;
    }
    cochlea_model *m = calloc(1, sizeof *m);
    if (!m) {
        gguf_close(f);
        return err_set(COCHLEA_ENOMEM, "out of memory");
    }
    snprintf(m->arch, sizeof m->arch, "%s", "owsm_ctc");
    if ((rc = owsm_model_load(f, &m->owsm))) { /* owns f from here */
        free(m);
        return rc;
    }
    *out = m;
    return COCHLEA_OK;
}

void cochlea_model_free(cochlea_model *model)
{
    if (!model)
        return;
    owsm_model_free(model->owsm);
    free(model);
}

const char *cochlea_model_arch(const cochlea_model *model)
{
    return model ? model->arch : "";
}

/* ---- contexts ------------------------------------------------------------------------------- */

cochlea_asr_params cochlea_asr_default_params(void)
{
    cochlea_asr_params p = {0, COCHLEA_PRECISION_F32, 1};
    return p;
}

cochlea_asr_options cochlea_asr_default_options(void)
{
    cochlea_asr_options o;
    memset(&o, 0, sizeof o);
    o.context = 4.0f;
    return o;
}

static void clear_results(cochlea_asr *a)
{
    free(a->frame_ids), free(a->frame_probs), free(a->kept), free(a->tokens), free(a->text), free(a->text_ns), free(a->post),
        free(a->enc);
    a->frame_ids = a->kept = a->tokens = NULL;
    a->frame_probs = NULL;
    a->text = a->text_ns = NULL;
    a->post = a->enc = NULL;
    a->n_frame_ids = a->n_tokens = a->n_post = a->n_enc = 0;
    a->n_windows = 0;
}

void cochlea_asr_free(cochlea_asr *a)
{
    if (!a)
        return;
    clear_results(a);
    owsm_work_free(a->work);
    cochlea_fbank_free(a->fb);
    free(a->fb_storage);
    free(a->feats);
    free(a->wave);
    ctx_free(a->ctx);
    free(a);
}

int cochlea_asr_create(const cochlea_model *model, const cochlea_asr_params *params, cochlea_asr **out)
{
    if (!out)
        return err_set(COCHLEA_EINVAL, "cochlea_asr_create: out is NULL");
    *out = NULL;
    if (!model || !model->owsm)
        return err_set(COCHLEA_EINVAL, "cochlea_asr_create: not an OWSM-CTC model");
    cochlea_asr_params p = params ? *params : cochlea_asr_default_params();
    if (p.n_threads < 0 || p.n_threads > 1024)
        return err_set(COCHLEA_EINVAL, "cochlea_asr_create: thread count %d is not in [0, 1024]", p.n_threads);
    if (p.batch < 1 || p.batch > 256)
        return err_set(COCHLEA_EINVAL, "cochlea_asr_create: batch %d is not in [1, 256]", p.batch);
    if (p.precision != COCHLEA_PRECISION_F32 && p.precision != COCHLEA_PRECISION_BF16 &&
        p.precision != COCHLEA_PRECISION_INT8)
        return err_set(COCHLEA_EINVAL, "cochlea_asr_create: unknown precision %d", (int)p.precision);
    cochlea_asr *a = calloc(1, sizeof *a);
    if (!a)
        return err_set(COCHLEA_ENOMEM, "out of memory");
    a->m = model->owsm;
    a->batch = p.batch;
    const owsm_hparams *hp = &a->m->hp;
    int rc = ctx_create(p.n_threads, p.precision, &a->ctx);
    if (!rc)
        rc = owsm_work_create(a->m, p.batch, &a->work);
    if (!rc)
        rc = owsm_model_prepare(a->ctx, a->m);
    if (!rc)
        rc = fbank_params_from_gguf(a->m->file, &a->fbp, &a->fb_storage);
    if (!rc && a->fbp.n_mels != hp->n_mels)
        rc = err_set(COCHLEA_EFORMAT, "%s: frontend has %d mel bins, the encoder %d", gguf_label(a->m->file),
                     a->fbp.n_mels, hp->n_mels);
    if (!rc)
        rc = cochlea_fbank_create(&a->fbp, &a->fb);
    size_t nf = 0;
    if (!rc && (size_mul((size_t)hp->window_frames * (size_t)hp->n_mels, (size_t)p.batch, &nf) ||
                !(a->feats = malloc(nf * sizeof(float))) ||
                !(a->wave = malloc((size_t)hp->window_samples * sizeof(float)))))
        rc = err_set(COCHLEA_ENOMEM, "out of memory");
    if (rc) {
        cochlea_asr_free(a);
        return rc;
    }
    *out = a;
    return COCHLEA_OK;
}

/* ---- options -------------------------------------------------------------------------------- */

/* "eng" / "<eng>" -> id of "<eng>" */
static int symbol_id(const cochlea_asr *a, const char *s, const char *what, int32_t *id)
{
    char buf[128];
    size_t n = strlen(s);
    if (n == 0 || n > 100)
        return err_set(COCHLEA_EINVAL, "invalid %s '%s'", what, s);
    if (s[0] == '<')
        snprintf(buf, sizeof buf, "%s", s);
    else
        snprintf(buf, sizeof buf, "<%s>", s);
    *id = owsm_token_id(a->m, buf, strlen(buf));
    if (*id < 0)
        return err_set(COCHLEA_EINVAL, "unknown %s '%s': the model has no token %s", what, s, buf);
    return COCHLEA_OK;
}

/* The prompt ids (owsm-ctc.md §4.3): <na> for no prompt; otherwise SentencePiece pieces looked up
 * in the token list (unknown -> <unk>), and any prompt containing <na> becomes [<na>]. */
static int prompt_ids(const cochlea_asr *a, const char *prompt, int32_t **ids, int64_t *n)
{
    const owsm_model *m = a->m;
    *ids = NULL;
    *n = 0;
    int32_t *out;
    if (!prompt || !*prompt) {
        if (!(out = malloc(sizeof *out)))
            return err_set(COCHLEA_ENOMEM, "out of memory");
        out[0] = m->hp.na_id;
        *ids = out, *n = 1;
        return COCHLEA_OK;
    }
    if (!m->tok)
        return err_set(COCHLEA_EUNSUPPORTED, "%s: a text prompt needs the model's SentencePiece model, which it lacks",
                       gguf_label(m->file));
    tokenizer_output to;
    memset(&to, 0, sizeof to);
    int rc = tokenizer_encode(m->tok, prompt, strlen(prompt), &to);
    if (rc)
        return rc;
    if (!(out = malloc((to.n ? to.n : 1) * sizeof *out))) {
        tokenizer_output_free(&to);
        return err_set(COCHLEA_ENOMEM, "out of memory");
    }
    int has_na = to.n == 0;
    for (size_t i = 0; i < to.n; i++) {
        int32_t id = owsm_token_id(m, to.text + to.offs[i], to.offs[i + 1] - to.offs[i]);
        out[i] = id < 0 ? m->hp.unk_id : id;
        has_na |= out[i] == m->hp.na_id;
    }
    *n = (int64_t)to.n;
    tokenizer_output_free(&to);
    if (has_na) {
        out[0] = m->hp.na_id;
        *n = 1;
    }
    *ids = out;
    return COCHLEA_OK;
}

/* ---- running -------------------------------------------------------------------------------- */

typedef struct plan {
    size_t n;            /* input samples */
    int64_t n_windows;
    int long_form;
    int64_t pad;         /* zeros before the audio (long form) */
    int64_t hop;         /* window hop in samples (long form) */
    int64_t keep0, keep1; /* kept positions per window [keep0, keep1) */
} plan;

static int make_plan(const cochlea_asr *a, size_t n, float context, plan *p)
{
    const owsm_hparams *hp = &a->m->hp;
    memset(p, 0, sizeof *p);
    p->n = n;
    const int64_t buf = hp->window_samples;
    if ((int64_t)n <= buf) {
        p->n_windows = 1;
        p->keep0 = 0, p->keep1 = hp->positions;
        return COCHLEA_OK;
    }
    if (!(context >= 0.0f) || 2.0 * context >= hp->speech_length)
        return err_set(COCHLEA_EINVAL, "long-form context %g s must be in [0, %g) s", (double)context,
                       (double)hp->speech_length / 2);
    p->long_form = 1;
    p->hop = (int64_t)((double)hp->sample_rate * ((double)hp->speech_length - 2.0 * (double)context));
    p->pad = (int64_t)((double)hp->sample_rate * (double)context);
    if (p->hop <= 0)
        return err_set(COCHLEA_EINVAL, "long-form context %g s leaves no audio per window", (double)context);
    /* windows start every hop over the padded signal; the first short one is the last */
    const int64_t L = (int64_t)n + 2 * p->pad;
    for (int64_t s = 0; s < L; s += p->hop) {
        p->n_windows++;
        if (L - s < buf)
            break;
    }
    const double fps = (double)hp->sample_rate / (double)hp->hop_length / 8.0;
    const int64_t buffer_frames = (int64_t)(fps * (double)hp->speech_length);
    const int64_t cf = (int64_t)(fps * (double)context);
    p->keep0 = cf;
    p->keep1 = cf > 0 ? buffer_frames - cf : buffer_frames;
    if (p->keep1 > hp->positions)
        p->keep1 = hp->positions;
    if (p->keep1 <= p->keep0)
        return err_set(COCHLEA_EINVAL, "long-form context %g s keeps no frames", (double)context);
    return COCHLEA_OK;
}

/* Window w's samples (zero-padded) into dst. */
static void window_samples(const cochlea_asr *a, const plan *p, const float *pcm, int64_t w, float *dst)
{
    const int64_t buf = a->m->hp.window_samples;
    memset(dst, 0, (size_t)buf * sizeof *dst);
    if (!p->long_form) {
        memcpy(dst, pcm, p->n * sizeof *dst);
        return;
    }
    /* padded index j = w*hop + i maps to pcm[j - pad] */
    int64_t j0 = w * p->hop - p->pad;
    int64_t i0 = j0 < 0 ? -j0 : 0;
    int64_t i1 = buf;
    if (j0 + i1 > (int64_t)p->n)
        i1 = (int64_t)p->n - j0;
    if (i1 > i0)
        memcpy(dst + i0, pcm + j0 + i0, (size_t)(i1 - i0) * sizeof *dst);
}

static int resolve_options(const cochlea_asr *a, const cochlea_asr_options *o, int32_t *lang, int32_t *task)
{
    const char *l = o->lang, *t = o->task;
    int rc;
    if (!l || !*l || strcmp(l, "auto") == 0)
        *lang = a->m->hp.nolang_id;
    else if ((rc = symbol_id(a, l, "language", lang)))
        return rc;
    if ((rc = symbol_id(a, t && *t ? t : "asr", "task", task)))
        return rc;
    return COCHLEA_OK;
}

/* Run the windows of a plan (pcm) or one window of given features (feats). */
static int run(cochlea_asr *a, const float *pcm, const plan *p, const float *feats, const cochlea_asr_options *opt)
{
    const owsm_model *m = a->m;
    const owsm_hparams *hp = &m->hp;
    const cochlea_asr_options o = opt ? *opt : cochlea_asr_default_options();
    clear_results(a);
    int32_t lang, task;
    int rc = resolve_options(a, &o, &lang, &task);
    if (rc)
        return rc;
    int32_t *pids = NULL;
    int64_t np = 0;
    if ((rc = prompt_ids(a, o.prompt, &pids, &np)))
        return rc;
    owsm_cond c_first, c_na;
    int have_first = 0, have_na = 0;
    const int prompt_is_na = np == 1 && pids[0] == hp->na_id;
    rc = owsm_cond_build(a->ctx, m, lang, task, pids, np, &c_first);
    have_first = !rc;
    if (!rc && !prompt_is_na && p->n_windows > 1) {
        const int32_t na = hp->na_id;
        rc = owsm_cond_build(a->ctx, m, lang, task, &na, 1, &c_na);
        have_na = !rc;
    }
    free(pids);
    const int64_t W = p->n_windows, T = hp->positions, V = hp->vocab, d = hp->d;
    const size_t wf = (size_t)hp->window_frames * (size_t)hp->n_mels;
    size_t nfi = 0, tmp = 0;
    if (!rc && (size_mul((size_t)W, (size_t)T, &nfi) || !(a->frame_ids = malloc(nfi * sizeof *a->frame_ids)) ||
                !(a->frame_probs = malloc(nfi * sizeof *a->frame_probs)) ||
                !(a->kept = malloc(nfi * sizeof *a->kept))))
        rc = err_set(COCHLEA_ENOMEM, "out of memory for %lld windows", (long long)W);
    if (!rc && o.keep_posteriors) {
        if (size_mul(nfi, (size_t)V, &tmp) || !(a->post = malloc(tmp * sizeof(float))))
            rc = err_set(COCHLEA_ENOMEM, "cannot hold the posteriors of %lld windows (%lld x %lld floats each)",
                         (long long)W, (long long)T, (long long)V);
        a->n_post = tmp;
    }
    if (!rc && o.keep_encoder) {
        if (size_mul(nfi, (size_t)d, &tmp) || !(a->enc = malloc(tmp * sizeof(float))))
            rc = err_set(COCHLEA_ENOMEM, "cannot hold the encoder output of %lld windows", (long long)W);
        a->n_enc = tmp;
    }
    a->n_frame_ids = nfi;
    for (int64_t w0 = 0; !rc && w0 < W; w0 += a->batch) {
        const int B = (int)(W - w0 < a->batch ? W - w0 : a->batch);
        const float *fptr[256];
        const owsm_cond *cptr[256];
        for (int b = 0; b < B && !rc; b++) {
            const int64_t w = w0 + b;
            cptr[b] = (w == 0 || prompt_is_na) ? &c_first : &c_na;
            if (feats) {
                fptr[b] = feats;
                continue;
            }
            window_samples(a, p, pcm, w, a->wave);
            size_t nfr;
            rc = cochlea_fbank_compute(a->fb, a->wave, (size_t)hp->window_samples, a->feats + (size_t)b * wf,
                                       (size_t)hp->window_frames, &nfr);
            fptr[b] = a->feats + (size_t)b * wf;
        }
        if (rc)
            break;
        rc = owsm_encode(a->ctx, m, a->work, fptr, B, cptr, a->enc ? a->enc + (size_t)w0 * T * d : NULL,
                         a->post ? a->post + (size_t)w0 * T * V : NULL, a->frame_ids + (size_t)w0 * T,
                         a->post ? NULL : a->frame_probs + (size_t)w0 * T);
        if (!rc && o.progress && o.progress((uint64_t)(w0 + B), (uint64_t)W, o.progress_user))
            rc = err_set(COCHLEA_ECANCELED, "recognition stopped by the caller after %lld of %lld windows",
                         (long long)(w0 + B), (long long)W);
    }
    if (have_first)
        owsm_cond_free(m, &c_first);
    if (have_na)
        owsm_cond_free(m, &c_na);
    if (rc) {
        clear_results(a);
        return rc;
    }
    a->n_windows = (int)W;
    if (a->post) {
        ops_log_softmax(a->ctx, a->post, V, a->post, V, W * T, V);
        for (size_t i = 0; i < a->n_frame_ids; i++)
            a->frame_probs[i] = expf(a->post[i * (size_t)V + (size_t)a->frame_ids[i]]);
    }
    /* positions that take part in decoding, then greedy CTC */
    size_t nk = 0;
    for (int64_t w = 0; w < W; w++)
        for (int64_t t = p->keep0; t < p->keep1; t++)
            a->kept[nk++] = a->frame_ids[w * T + t];
    a->n_tokens = ctc_collapse(a->kept, nk, hp->blank_id, a->kept);
    a->tokens = a->kept;
    a->kept = NULL;
    if (m->tok) {
        if ((rc = ctc_ids_to_text(m, a->tokens, a->n_tokens, 0, &a->text)) ||
            (rc = ctc_ids_to_text(m, a->tokens, a->n_tokens, 1, &a->text_ns))) {
            clear_results(a);
            return rc;
        }
    }
    return COCHLEA_OK;
}

int cochlea_asr_run(cochlea_asr *a, const float *pcm, size_t n, const cochlea_asr_options *o)
{
    if (!a || (!pcm && n))
        return err_set(COCHLEA_EINVAL, "cochlea_asr_run: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (!isfinite(pcm[i]))
            return err_set(COCHLEA_EINVAL, "cochlea_asr_run: sample %zu is not finite", i);
    plan p;
    int rc = make_plan(a, n, o ? o->context : 4.0f, &p);
    if (rc)
        return rc;
    return run(a, pcm, &p, NULL, o);
}

int cochlea_asr_run_features(cochlea_asr *a, const float *feats, size_t n_frames, int n_mels,
                             const cochlea_asr_options *o)
{
    if (!a || !feats)
        return err_set(COCHLEA_EINVAL, "cochlea_asr_run_features: NULL argument");
    const owsm_hparams *hp = &a->m->hp;
    if (n_mels != hp->n_mels || n_frames != (size_t)hp->window_frames)
        return err_set(COCHLEA_EINVAL, "features are %zu x %d; this model takes one window of %lld x %d", n_frames,
                       n_mels, (long long)hp->window_frames, hp->n_mels);
    for (size_t i = 0; i < n_frames * (size_t)n_mels; i++)
        if (!isfinite(feats[i]))
            return err_set(COCHLEA_EINVAL, "feature value %zu is not finite", i);
    plan p;
    memset(&p, 0, sizeof p);
    p.n_windows = 1;
    p.keep1 = hp->positions;
    return run(a, NULL, &p, feats, o);
}

/* ---- results -------------------------------------------------------------------------------- */

int cochlea_asr_n_windows(const cochlea_asr *a) { return a ? a->n_windows : 0; }
int cochlea_asr_n_positions(const cochlea_asr *a) { return a ? (int)a->m->hp.positions : 0; }
int cochlea_asr_vocab_size(const cochlea_asr *a) { return a ? (int)a->m->hp.vocab : 0; }
int cochlea_asr_d_model(const cochlea_asr *a) { return a ? (int)a->m->hp.d : 0; }
size_t cochlea_asr_window_samples(const cochlea_asr *a) { return a ? (size_t)a->m->hp.window_samples : 0; }
int cochlea_asr_sample_rate(const cochlea_asr *a) { return a ? a->m->hp.sample_rate : 0; }

const int32_t *cochlea_asr_frame_ids(const cochlea_asr *a, size_t *n)
{
    if (n)
        *n = a ? a->n_frame_ids : 0;
    return a ? a->frame_ids : NULL;
}

const float *cochlea_asr_frame_probs(const cochlea_asr *a, size_t *n)
{
    if (n)
        *n = a ? a->n_frame_ids : 0;
    return a ? a->frame_probs : NULL;
}

const int32_t *cochlea_asr_tokens(const cochlea_asr *a, size_t *n)
{
    if (n)
        *n = a ? a->n_tokens : 0;
    return a ? a->tokens : NULL;
}

const char *cochlea_asr_text(const cochlea_asr *a) { return a && a->text ? a->text : ""; }
const char *cochlea_asr_text_nospecial(const cochlea_asr *a) { return a && a->text_ns ? a->text_ns : ""; }

const float *cochlea_asr_posteriors(const cochlea_asr *a, size_t *n)
{
    if (n)
        *n = a ? a->n_post : 0;
    return a ? a->post : NULL;
}

const float *cochlea_asr_encoder_output(const cochlea_asr *a, size_t *n)
{
    if (n)
        *n = a ? a->n_enc : 0;
    return a ? a->enc : NULL;
}

const char *cochlea_asr_token_piece(const cochlea_asr *a, int32_t id)
{
    if (!a || id < 0 || id >= a->m->hp.vocab)
        return NULL;
    return a->m->tokens[id];
}

int32_t cochlea_asr_token_id(const cochlea_asr *a, const char *piece)
{
    if (!a || !piece)
        return -1;
    return owsm_token_id(a->m, piece, strlen(piece));
}

cochlea_fbank_params cochlea_asr_fbank_params(const cochlea_asr *a)
{
    return a ? a->fbp : cochlea_fbank_default_params();
}
