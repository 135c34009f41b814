/* asr.c - the public model and ASR API (cochlea.h): model files, windows, decoding, results. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asr/beam.h"
#include "asr/ctc.h"
#include "asr/ngram.h"
#include "asr/owsm.h"
#include "asr/timestamps.h"
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
    size_t n_samples; /* audio samples of the last run */
    /* beam search: token kinds, a language model loaded with cochlea_asr_load_lm (replaces the
     * model's), one batch of log-posteriors when they are not kept, the candidates of a run */
    uint8_t *kind;
    ngram_lm *user_lm;
    float *bpost;
    size_t bpost_n;
    ctc_cands cands;
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
    o.context = -1.0f;
    o.lm_weight = NAN;
    o.insertion_bonus = NAN;
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
    ctc_cands_free(&a->cands);
}

void cochlea_asr_free(cochlea_asr *a)
{
    if (!a)
        return;
    clear_results(a);
    owsm_work_free(a->work);
    free(a->kind);
    free(a->bpost);
    ngram_free(a->user_lm);
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
    if (!rc && !(a->kind = malloc((size_t)hp->vocab)))
        rc = err_set(COCHLEA_ENOMEM, "out of memory");
    for (int64_t v = 0; !rc && v < hp->vocab; v++)
        a->kind[v] = (uint8_t)ctc_token_kind(a->m->tokens[v], a->m->token_len[v]);
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

/* The window plan of n samples: the same arithmetic the timestamps use (tr_layout_plan), so the
 * engine's windows and the transcript's frame times cannot drift apart. */
static int make_plan(const cochlea_asr *a, size_t n, float context, plan *p)
{
    const owsm_hparams *hp = &a->m->hp;
    memset(p, 0, sizeof *p);
    tr_layout l;
    int rc = tr_layout_plan(hp->sample_rate, hp->hop_length, hp->window_samples, hp->positions, n, (double)context,
                            &l);
    if (rc)
        return rc;
    p->n = n;
    p->n_windows = l.n_windows;
    p->long_form = l.long_form;
    p->pad = l.pad;
    p->hop = l.hop;
    p->keep0 = l.keep0;
    p->keep1 = l.keep1;
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

static int32_t lm_word_id(void *user, const char *w, size_t len)
{
    return owsm_token_id((const owsm_model *)user, w, len);
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

/* The beam search settings of a run (bo->beam 1: greedy). */
static int beam_setup(const cochlea_asr *a, const cochlea_asr_options *o, int32_t lang, int32_t task,
                      ctc_beam_opts *bo)
{
    const owsm_model *m = a->m;
    const ngram_lm *lm = o->no_lm ? NULL : (a->user_lm ? a->user_lm : m->lm);
    if (o->beam_size < 0 || o->beam_size > 1024)
        return err_set(COCHLEA_EINVAL, "beam size %d is not in [0, 1024]", o->beam_size);
    memset(bo, 0, sizeof *bo);
    bo->beam = o->beam_size ? o->beam_size : lm ? (lm == m->lm ? m->lm_beam : COCHLEA_ASR_LM_BEAM) : 1;
    bo->lm = lm;
    bo->weight = !isnan(o->lm_weight) ? o->lm_weight : m->lm ? m->lm_weight : COCHLEA_ASR_LM_WEIGHT;
    bo->bonus = !isnan(o->insertion_bonus) ? o->insertion_bonus
                : !lm                      ? 0.0f
                : m->lm                    ? m->lm_bonus
                                           : COCHLEA_ASR_LM_BONUS;
    if (!isfinite(bo->weight) || bo->weight < 0 || bo->weight > 100)
        return err_set(COCHLEA_EINVAL, "LM weight %g is not in [0, 100]", (double)bo->weight);
    if (!isfinite(bo->bonus) || fabsf(bo->bonus) > 100)
        return err_set(COCHLEA_EINVAL, "insertion bonus %g is not in [-100, 100]", (double)bo->bonus);
    bo->kind = a->kind;
    bo->vocab = m->hp.vocab;
    bo->blank = m->hp.blank_id;
    bo->sos = m->hp.sos_id;
    bo->eos = m->hp.eos_id;
    bo->lang = lang == m->hp.nolang_id ? -1 : lang;
    /* translation: the LM context is the target language */
    const char *tp = m->tokens[task];
    if (m->token_len[task] == 8 && !memcmp(tp, "<st_", 4)) {
        char piece[6] = {'<', tp[4], tp[5], tp[6], '>', 0};
        int32_t id = owsm_token_id(m, piece, 5);
        bo->lang = id >= 0 && a->kind[id] == CTC_KIND_LANG ? id : -1;
    }
    return COCHLEA_OK;
}

int cochlea_asr_load_lm(cochlea_asr *a, const char *path)
{
    if (!a)
        return err_set(COCHLEA_EINVAL, "cochlea_asr_load_lm: asr is NULL");
    ngram_lm *lm = NULL;
    if (path) {
        const owsm_hparams *hp = &a->m->hp;
        int rc = ngram_load_arpa(path, lm_word_id, (void *)a->m, hp->sos_id, hp->eos_id, hp->unk_id, &lm, NULL);
        if (rc)
            return rc;
    }
    ngram_free(a->user_lm);
    a->user_lm = lm;
    return COCHLEA_OK;
}

int cochlea_asr_has_lm(const cochlea_asr *a)
{
    return a ? (a->user_lm ? 2 : a->m->lm ? 1 : 0) : 0;
}

/* Where run() takes its windows from: a whole signal in memory (a plan), one window of
 * features, or an audio reader streamed with bounded memory (owsm-ctc.md §5.6 windows built as
 * the samples arrive; only about one window of samples is held). */
enum { FEED_PCM, FEED_FEATS, FEED_READER };

typedef struct feeder {
    int mode;
    plan p;              /* keep0/keep1, long_form, hop, pad; n_windows when known in advance */
    const float *pcm;    /* FEED_PCM */
    const float *feats;  /* FEED_FEATS */
    cochlea_audio *rd;   /* FEED_READER */
    int64_t next_w;      /* windows handed out so far */
    /* FEED_READER: samples of the zero-padded signal [buf0, buf0 + len) */
    float *buf;
    size_t cap, len;
    int64_t buf0;
    int eof, finished;
    int64_t L;           /* padded length, known at eof */
    size_t n_read;       /* audio samples read */
} feeder;

static int feed_grow(feeder *f, size_t need)
{
    if (need <= f->cap)
        return COCHLEA_OK;
    size_t cap = f->cap ? f->cap : 65536;
    while (cap < need)
        cap *= 2;
    float *nb = realloc(f->buf, cap * sizeof *nb);
    if (!nb)
        return err_set(COCHLEA_ENOMEM, "out of memory for the audio window buffer");
    f->buf = nb, f->cap = cap;
    return COCHLEA_OK;
}

/* Read audio until len >= want or the end; at the end append the trailing zeros (long form). */
static int feed_fill(const cochlea_asr *a, feeder *f, size_t want)
{
    int rc;
    while (!f->eof && f->len < want) {
        size_t chunk = want - f->len < 65536 ? 65536 : want - f->len, got = 0;
        if ((rc = feed_grow(f, f->len + chunk)) || (rc = cochlea_audio_read(f->rd, f->buf + f->len, chunk, &got)))
            return rc;
        for (size_t i = 0; i < got; i++)
            if (!isfinite(f->buf[f->len + i]))
                return err_set(COCHLEA_EINVAL, "audio sample %zu is not finite", f->n_read + i);
        f->len += got, f->n_read += got;
        if (got < chunk) {
            f->eof = 1;
            if (f->p.long_form) {
                if ((rc = feed_grow(f, f->len + (size_t)f->p.pad)))
                    return rc;
                memset(f->buf + f->len, 0, (size_t)f->p.pad * sizeof(float));
                f->len += (size_t)f->p.pad;
            }
            f->L = f->buf0 + (int64_t)f->len;
        }
    }
    (void)a;
    return COCHLEA_OK;
}

/* Start streaming: read one window and a sample more to choose short or long form. */
static int feed_open_reader(const cochlea_asr *a, cochlea_audio *rd, float context, feeder *f)
{
    const int64_t buf = a->m->hp.window_samples;
    memset(f, 0, sizeof *f);
    f->mode = FEED_READER;
    f->rd = rd;
    int rc = feed_fill(a, f, (size_t)buf + 1);
    if (rc)
        return rc;
    if (f->eof && (int64_t)f->n_read <= buf) /* short form: one padded window */
        return make_plan(a, f->n_read, context, &f->p);
    /* long form: the plan of any longer signal, then prepend the leading zeros */
    if ((rc = make_plan(a, (size_t)buf + 1, context, &f->p)))
        return rc;
    f->p.n_windows = 0; /* unknown until the end */
    const size_t pad = (size_t)f->p.pad;
    if ((rc = feed_grow(f, f->len + pad)))
        return rc;
    memmove(f->buf + pad, f->buf, f->len * sizeof(float));
    memset(f->buf, 0, pad * sizeof(float));
    f->len += pad;
    if (f->eof) { /* the whole file came with the first read: add the trailing zeros now */
        if ((rc = feed_grow(f, f->len + pad)))
            return rc;
        memset(f->buf + f->len, 0, pad * sizeof(float));
        f->len += pad;
        f->L = (int64_t)f->len;
    }
    return COCHLEA_OK;
}

/* The next window's samples into dst; *got = 0 when there are no more windows. */
static int feed_next(const cochlea_asr *a, feeder *f, float *dst, int *got)
{
    const int64_t buf = a->m->hp.window_samples;
    *got = 0;
    if (f->mode == FEED_FEATS) {
        *got = f->next_w == 0;
        f->next_w += *got;
        return COCHLEA_OK;
    }
    if (f->mode == FEED_PCM) {
        if (f->next_w >= f->p.n_windows)
            return COCHLEA_OK;
        window_samples(a, &f->p, f->pcm, f->next_w++, dst);
        *got = 1;
        return COCHLEA_OK;
    }
    if (f->finished)
        return COCHLEA_OK;
    if (!f->p.long_form) {
        memset(dst, 0, (size_t)buf * sizeof *dst);
        memcpy(dst, f->buf, f->n_read * sizeof *dst);
        f->finished = 1;
        f->next_w++;
        *got = 1;
        return COCHLEA_OK;
    }
    /* window at padded sample s = next_w * hop: python's `for s in range(0, L, hop)`, the first
     * window shorter than buf zero-padded and last */
    const int64_t s = f->next_w * f->p.hop;
    if (s > f->buf0) {
        size_t drop = (size_t)(s - f->buf0) < f->len ? (size_t)(s - f->buf0) : f->len;
        memmove(f->buf, f->buf + drop, (f->len - drop) * sizeof(float));
        f->len -= drop;
        f->buf0 += (int64_t)drop;
    }
    int rc = feed_fill(a, f, (size_t)buf);
    if (rc)
        return rc;
    if (f->eof && s >= f->L) {
        f->finished = 1;
        return COCHLEA_OK;
    }
    size_t have = f->len < (size_t)buf ? f->len : (size_t)buf;
    memcpy(dst, f->buf, have * sizeof *dst);
    if (have < (size_t)buf) {
        memset(dst + have, 0, ((size_t)buf - have) * sizeof *dst);
        f->finished = 1;
    } else if (f->eof && s + f->p.hop >= f->L) {
        f->finished = 1;
    }
    f->next_w++;
    *got = 1;
    return COCHLEA_OK;
}

/* Make room for `windows` windows of per-position results. */
static int grow_results(cochlea_asr *a, int64_t windows, int keep_post, int keep_enc, int64_t *cap)
{
    const owsm_hparams *hp = &a->m->hp;
    if (windows <= *cap)
        return COCHLEA_OK;
    int64_t nc = *cap ? *cap : 4;
    while (nc < windows)
        nc *= 2;
    size_t n, np = 0, ne = 0;
    if (size_mul((size_t)nc, (size_t)hp->positions, &n) ||
        (keep_post && size_mul(n, (size_t)hp->vocab, &np)) || (keep_enc && size_mul(n, (size_t)hp->d, &ne)))
        return err_set(COCHLEA_ERANGE, "results of %lld windows overflow", (long long)nc);
    int32_t *ids = realloc(a->frame_ids, n * sizeof *ids);
    if (ids)
        a->frame_ids = ids;
    float *pr = ids ? realloc(a->frame_probs, n * sizeof *pr) : NULL;
    if (pr)
        a->frame_probs = pr;
    float *po = pr && keep_post ? realloc(a->post, np * sizeof *po) : NULL;
    if (po)
        a->post = po;
    float *en = pr && keep_enc && (!keep_post || po) ? realloc(a->enc, ne * sizeof *en) : NULL;
    if (en)
        a->enc = en;
    if (!ids || !pr || (keep_post && !po) || (keep_enc && !en))
        return err_set(COCHLEA_ENOMEM, "out of memory for the results of %lld windows%s", (long long)nc,
                       keep_post ? " (posteriors kept)" : "");
    *cap = nc;
    return COCHLEA_OK;
}

/* Run every window a feeder gives. total_est: expected windows for progress (0: unknown). */
static int run(cochlea_asr *a, feeder *f, int64_t total_est, const cochlea_asr_options *opt)
{
    const owsm_model *m = a->m;
    const owsm_hparams *hp = &m->hp;
    const cochlea_asr_options o = opt ? *opt : cochlea_asr_default_options();
    clear_results(a);
    int32_t lang, task;
    int rc = resolve_options(a, &o, &lang, &task);
    if (rc)
        return rc;
    ctc_beam_opts bo;
    if ((rc = beam_setup(a, &o, lang, task, &bo)))
        return rc;
    const int beam = bo.beam > 1;
    int32_t *pids = NULL;
    int64_t np = 0;
    if ((rc = prompt_ids(a, o.prompt, &pids, &np)))
        return rc;
    owsm_cond c_first, c_na;
    int have_first = 0, have_na = 0;
    const int prompt_is_na = np == 1 && pids[0] == hp->na_id;
    rc = owsm_cond_build(a->ctx, m, lang, task, pids, np, &c_first);
    have_first = !rc;
    if (!rc && !prompt_is_na && f->mode != FEED_FEATS && (f->p.long_form || f->p.n_windows > 1)) {
        const int32_t na = hp->na_id;
        rc = owsm_cond_build(a->ctx, m, lang, task, &na, 1, &c_na);
        have_na = !rc;
    }
    free(pids);
    const int64_t T = hp->positions, V = hp->vocab, d = hp->d;
    const size_t wf = (size_t)hp->window_frames * (size_t)hp->n_mels;
    int64_t W = 0, cap = 0;
    for (int more = 1; !rc && more;) {
        const float *fptr[256];
        const owsm_cond *cptr[256];
        int B = 0;
        while (B < a->batch && !rc) {
            int got;
            if ((rc = feed_next(a, f, a->wave, &got)) || !got) {
                more = 0;
                break;
            }
            const int64_t w = W + B;
            cptr[B] = (w == 0 || prompt_is_na) ? &c_first : &c_na;
            if (f->mode == FEED_FEATS) {
                fptr[B] = f->feats;
            } else {
                size_t nfr;
                rc = cochlea_fbank_compute(a->fb, a->wave, (size_t)hp->window_samples, a->feats + (size_t)B * wf,
                                           (size_t)hp->window_frames, &nfr);
                fptr[B] = a->feats + (size_t)B * wf;
            }
            B++;
        }
        if (rc || B == 0)
            break;
        if ((rc = grow_results(a, W + B, o.keep_posteriors, o.keep_encoder, &cap)))
            break;
        /* beam search without kept posteriors: this batch's log-posteriors in a->bpost */
        float *bp = NULL;
        if (beam && !a->post) {
            size_t need = (size_t)a->batch * (size_t)T * (size_t)V;
            if (a->bpost_n < need) {
                free(a->bpost);
                a->bpost_n = 0;
                if (!(a->bpost = malloc(need * sizeof *a->bpost))) {
                    rc = err_set(COCHLEA_ENOMEM, "out of memory (log-posteriors of %d windows for beam search)",
                                 a->batch);
                    break;
                }
                a->bpost_n = need;
            }
            bp = a->bpost;
        }
        rc = owsm_encode(a->ctx, m, a->work, fptr, B, cptr, a->enc ? a->enc + (size_t)W * T * d : NULL,
                         a->post ? a->post + (size_t)W * T * V : bp, a->frame_ids + (size_t)W * T,
                         a->post || bp ? NULL : a->frame_probs + (size_t)W * T);
        if (!rc && bp) {
            ops_log_softmax(a->ctx, bp, V, bp, V, (int64_t)B * T, V);
            for (int64_t i = 0; i < (int64_t)B * T; i++)
                a->frame_probs[W * T + i] = expf(bp[i * V + a->frame_ids[W * T + i]]);
            for (int64_t b = 0; !rc && b < B; b++)
                rc = ctc_cands_add(&a->cands, bp + ((size_t)b * T + (size_t)f->p.keep0) * (size_t)V,
                                   (size_t)(f->p.keep1 - f->p.keep0), V, hp->blank_id);
        }
        W += B;
        int64_t total = total_est > W ? total_est : W;
        if (!rc && o.progress && o.progress((uint64_t)W, (uint64_t)(more ? total : W), o.progress_user))
            rc = err_set(COCHLEA_ECANCELED, "recognition stopped by the caller after %lld windows", (long long)W);
    }
    if (have_first)
        owsm_cond_free(m, &c_first);
    if (have_na)
        owsm_cond_free(m, &c_na);
    if (!rc && W == 0)
        rc = err_set(COCHLEA_EINTERNAL, "no window to decode");
    size_t nfi = (size_t)W * (size_t)T;
    if (!rc && !(a->kept = malloc(nfi * sizeof *a->kept)))
        rc = err_set(COCHLEA_ENOMEM, "out of memory");
    if (rc) {
        clear_results(a);
        return rc;
    }
    a->n_windows = (int)W;
    a->n_frame_ids = nfi;
    a->n_post = a->post ? nfi * (size_t)V : 0;
    a->n_enc = a->enc ? nfi * (size_t)d : 0;
    if (a->post) {
        ops_log_softmax(a->ctx, a->post, V, a->post, V, W * T, V);
        for (size_t i = 0; i < a->n_frame_ids; i++)
            a->frame_probs[i] = expf(a->post[i * (size_t)V + (size_t)a->frame_ids[i]]);
    }
    /* positions that take part in decoding, then greedy CTC or the beam search */
    size_t nk = 0;
    for (int64_t w = 0; w < W; w++)
        for (int64_t t = f->p.keep0; t < f->p.keep1; t++)
            a->kept[nk++] = a->frame_ids[w * T + t];
    if (beam) {
        for (int64_t w = 0; !rc && a->post && w < W; w++)
            rc = ctc_cands_add(&a->cands, a->post + ((size_t)w * T + (size_t)f->p.keep0) * (size_t)V,
                               (size_t)(f->p.keep1 - f->p.keep0), V, hp->blank_id);
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if (!rc && a->cands.n != nk)
            rc = err_set(COCHLEA_EINTERNAL, "beam search: %zu positions, %zu kept", a->cands.n, nk);
        if (!rc)
            rc = ctc_beam_decode(&a->cands, &bo, &ids, &n_ids, a->kept);
        if (rc) {
            clear_results(a);
            return rc;
        }
        /* the search's alignment replaces the argmax decisions of the kept positions */
        size_t k = 0;
        const int K1 = CTC_TOPK + 1;
        for (int64_t w = 0; w < W; w++)
            for (int64_t t = f->p.keep0; t < f->p.keep1; t++, k++) {
                const int32_t id = a->kept[k];
                a->frame_ids[w * T + t] = id;
                for (int j = 0; j < a->cands.cnt[k]; j++)
                    if (a->cands.ids[k * K1 + j] == id) {
                        a->frame_probs[w * T + t] = expf(a->cands.lp[k * K1 + j]);
                        break;
                    }
            }
        free(a->kept);
        a->kept = NULL;
        a->tokens = ids;
        a->n_tokens = n_ids;
        ctc_cands_free(&a->cands);
    } else {
        a->n_tokens = ctc_collapse(a->kept, nk, hp->blank_id, a->kept);
        a->tokens = a->kept;
        a->kept = NULL;
    }
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
    feeder f;
    memset(&f, 0, sizeof f);
    f.mode = FEED_PCM;
    f.pcm = pcm;
    int rc = make_plan(a, n, o ? o->context : -1.0f, &f.p);
    if (rc)
        return rc;
    a->n_samples = n;
    return run(a, &f, f.p.n_windows, o);
}

int cochlea_asr_run_audio(cochlea_asr *a, cochlea_audio *reader, const cochlea_asr_options *o)
{
    if (!a || !reader)
        return err_set(COCHLEA_EINVAL, "cochlea_asr_run_audio: NULL argument");
    feeder f;
    int rc = feed_open_reader(a, reader, o ? o->context : -1.0f, &f);
    int64_t est = 0;
    if (!rc && f.p.long_form) {
        /* expected windows from the container's length, for progress only */
        cochlea_audio_info info;
        cochlea_audio_get_info(reader, &info);
        plan pe;
        if (info.source_frames > 0 && info.source_rate > 0 &&
            make_plan(a, (size_t)((double)info.source_frames * a->m->hp.sample_rate / info.source_rate),
                      o ? o->context : -1.0f, &pe) == COCHLEA_OK)
            est = pe.n_windows;
        cochlea_clear_error();
    }
    if (!rc)
        rc = run(a, &f, f.p.long_form ? est : 1, o);
    a->n_samples = f.n_read;
    free(f.buf);
    return rc;
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
    feeder f;
    memset(&f, 0, sizeof f);
    f.mode = FEED_FEATS;
    f.feats = feats;
    f.p.n_windows = 1;
    f.p.keep1 = hp->positions;
    a->n_samples = (size_t)hp->window_samples;
    return run(a, &f, 1, o);
}

size_t cochlea_asr_n_samples(const cochlea_asr *a) { return a ? a->n_samples : 0; }

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
