/* owsm_model.c - load and validate an OWSM-CTC GGUF (owsm-ctc.md §6; keys in tests/ref/README.md). */
#include "asr/owsm.h"
#include "asr/ngram.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gemm.h"

#define A "owsm_ctc."

typedef struct loader {
    owsm_model *m;
    const char *label;
} loader;

/* Keep a malloc'ed buffer in the model's owned list (freed with it). */
static int own(owsm_model *m, float *p)
{
    if (mem_grow((void **)&m->owned, &m->cap_owned, m->n_owned + 1, sizeof *m->owned)) {
        free(p);
        return err_set(COCHLEA_ENOMEM, "out of memory");
    }
    m->owned[m->n_owned++] = p;
    return COCHLEA_OK;
}

/* A tensor of exactly n values as an fp32 pointer: the mapped data when it is fp32, else an
 * owned converted copy. */
static int vec_f32(loader *L, const char *name, int64_t n, const float **out)
{
    const tensor *t;
    int64_t ne[1] = {n};
    int rc = gguf_expect_tensor(L->m->file, name, 1, ne, &t);
    if (rc)
        return rc;
    if (t->type == COCHLEA_TYPE_F32) {
        *out = t->data;
        return COCHLEA_OK;
    }
    if (t->type != COCHLEA_TYPE_F16 && t->type != COCHLEA_TYPE_BF16)
        return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' has type %s; vectors must be f32, f16 or bf16", L->label,
                       name, type_name(t->type));
    float *p = malloc((size_t)n * sizeof *p);
    if (!p)
        return err_set(COCHLEA_ENOMEM, "out of memory");
    tensor_row_to_f32(t, 0, p);
    if ((rc = own(L->m, p)))
        return rc;
    *out = p;
    return COCHLEA_OK;
}

/* A matrix usable by gemm_linear: ne = {in, out}, type F32/F16/BF16/Q8_0. */
static int matrix(loader *L, const char *name, int64_t in, int64_t out_, const tensor **out)
{
    int64_t ne[2] = {in, out_};
    int rc = gguf_expect_tensor(L->m->file, name, 2, ne, out);
    if (rc)
        return rc;
    enum cochlea_type ty = (*out)->type;
    if (ty != COCHLEA_TYPE_F32 && ty != COCHLEA_TYPE_F16 && ty != COCHLEA_TYPE_BF16 && ty != COCHLEA_TYPE_Q8_0)
        return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' has type %s; weights must be f32, f16, bf16 or q8_0",
                       L->label, name, type_name(ty));
    return COCHLEA_OK;
}

static int linear(loader *L, const char *prefix, int64_t in, int64_t out, int bias, owsm_linear *lin)
{
    char n[256];
    snprintf(n, sizeof n, "%s.weight", prefix);
    int rc = matrix(L, n, in, out, &lin->w);
    if (rc)
        return rc;
    lin->b = NULL;
    if (bias) {
        snprintf(n, sizeof n, "%s.bias", prefix);
        return vec_f32(L, n, out, &lin->b);
    }
    return COCHLEA_OK;
}

static int norm(loader *L, const char *prefix, int64_t n, owsm_norm *nm)
{
    char s[256];
    snprintf(s, sizeof s, "%s.weight", prefix);
    int rc = vec_f32(L, s, n, &nm->g);
    if (rc)
        return rc;
    snprintf(s, sizeof s, "%s.bias", prefix);
    return vec_f32(L, s, n, &nm->b);
}

/* Depthwise Conv1d [C, 1, K] -> wt[k*C + c] (fp32, owned). */
static int dwconv(loader *L, const char *prefix, int64_t C, int64_t K, owsm_dwconv *dc)
{
    char s[256];
    snprintf(s, sizeof s, "%s.weight", prefix);
    const tensor *t;
    int64_t ne[3] = {K, 1, C};
    int rc = gguf_expect_tensor(L->m->file, s, 3, ne, &t);
    if (rc)
        return rc;
    if (t->type == COCHLEA_TYPE_Q8_0 ? K % 32 != 0 : !(t->type == COCHLEA_TYPE_F32 || t->type == COCHLEA_TYPE_F16 ||
                                                       t->type == COCHLEA_TYPE_BF16))
        return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' has unsupported type %s", L->label, s, type_name(t->type));
    size_t n;
    if (size_mul((size_t)C, (size_t)K, &n))
        return err_set(COCHLEA_ERANGE, "%s: tensor '%s' is too large", L->label, s);
    float *wt = malloc(n * sizeof *wt), *row = malloc((size_t)K * sizeof *row);
    if (!wt || !row) {
        free(wt);
        free(row);
        return err_set(COCHLEA_ENOMEM, "out of memory");
    }
    for (int64_t c = 0; c < C; c++) {
        tensor_row_to_f32(t, c, row); /* rows of K values, one per channel (ne[1] = 1) */
        for (int64_t k = 0; k < K; k++)
            wt[k * C + c] = row[k];
    }
    free(row);
    if ((rc = own(L->m, wt)))
        return rc;
    dc->wt = wt;
    dc->C = C;
    dc->K = K;
    snprintf(s, sizeof s, "%s.bias", prefix);
    return vec_f32(L, s, C, &dc->b);
}

static int attn(loader *L, const char *prefix, int64_t d, owsm_attn *a)
{
    char s[256];
    int rc;
    snprintf(s, sizeof s, "%s.linear_q", prefix);
    if ((rc = linear(L, s, d, d, 1, &a->q)))
        return rc;
    snprintf(s, sizeof s, "%s.linear_k", prefix);
    if ((rc = linear(L, s, d, d, 1, &a->k)))
        return rc;
    snprintf(s, sizeof s, "%s.linear_v", prefix);
    if ((rc = linear(L, s, d, d, 1, &a->v)))
        return rc;
    snprintf(s, sizeof s, "%s.linear_out", prefix);
    return linear(L, s, d, d, 1, &a->o);
}

static int get_i(loader *L, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    int rc = gguf_get_int(L->m->file, key, lo, hi, out);
    return rc;
}

static int get_flag(loader *L, const char *key, int dflt, int *out)
{
    if (!gguf_has_key(L->m->file, key)) {
        *out = dflt;
        return COCHLEA_OK;
    }
    return gguf_get_bool(L->m->file, key, out);
}

/* Expect a string key to have one of the values this implementation runs. */
static int expect_str(loader *L, const char *key, const char *want, int required)
{
    const char *v;
    if (!gguf_has_key(L->m->file, key))
        return required ? err_set(COCHLEA_EFORMAT, "%s: missing key '%s'", L->label, key) : COCHLEA_OK;
    int rc = gguf_get_str(L->m->file, key, &v, NULL);
    if (rc)
        return rc;
    if (strcmp(v, want) != 0)
        return err_set(COCHLEA_EUNSUPPORTED, "%s: %s is '%s'; only '%s' is implemented", L->label, key, v, want);
    return COCHLEA_OK;
}

/* Mark layers from a 0-based i32 array key. */
static int layer_list(loader *L, const char *key, int which)
{
    owsm_model *m = L->m;
    if (!gguf_has_key(m->file, key))
        return COCHLEA_OK;
    const gguf_value *v;
    int rc = gguf_get_array(m->file, key, &v);
    if (rc)
        return rc;
    for (uint64_t i = 0; i < v->n; i++) {
        int64_t l;
        if ((rc = gguf_value_int(v, i, &l)))
            return rc;
        if (l < 0 || l >= m->hp.n_layer)
            return err_set(COCHLEA_EFORMAT, "%s: %s[%llu] = %lld is not a layer index in [0, %lld)", L->label, key,
                           (unsigned long long)i, (long long)l, (long long)m->hp.n_layer);
        if (which == 0)
            m->layers[l].has_cross = 1;
        else
            m->layers[l].interctc = 1;
    }
    return COCHLEA_OK;
}

static int read_hparams(loader *L)
{
    owsm_hparams *h = &L->m->hp;
    gguf_file *f = L->m->file;
    int64_t v;
    int rc;
#define GI(key, lo, hi, dst)                                                                                           \
    do {                                                                                                               \
        if ((rc = get_i(L, A key, lo, hi, &v)))                                                                        \
            return rc;                                                                                                 \
        dst = v;                                                                                                       \
    } while (0)
    GI("sample_rate", 1000, 768000, h->sample_rate);
    GI("n_fft", 16, 65536, h->n_fft);
    GI("win_length", 1, 65536, h->win_length);
    GI("hop_length", 1, 65536, h->hop_length);
    GI("n_mels", 15, 4096, h->n_mels);
    GI("embedding_length", 1, 1 << 16, h->d);
    GI("block_count", 1, 1024, h->n_layer);
    GI("attention.head_count", 1, 1024, h->n_head);
    GI("feed_forward_length", 1, 1 << 20, h->ffn);
    GI("cgmlp.linear_units", 2, 1 << 20, h->cgmlp_units);
    GI("cgmlp.conv_kernel", 1, 1023, h->cgmlp_kernel);
    GI("merge_conv_kernel", 1, 1023, h->merge_kernel);
    GI("prompt.embedding_length", 1, 1 << 16, h->p_d);
    GI("prompt.block_count", 0, 1024, h->p_layer);
    GI("prompt.attention.head_count", 1, 1024, h->p_head);
    GI("prompt.feed_forward_length", 1, 1 << 20, h->p_ffn);
    GI("vocab_size", 8, 1 << 24, h->vocab);
    GI("blank_id", 0, h->vocab - 1, h->blank_id);
    GI("unk_id", 0, h->vocab - 1, h->unk_id);
    GI("na_id", 0, h->vocab - 1, h->na_id);
    GI("nolang_id", 0, h->vocab - 1, h->nolang_id);
    GI("sos_id", 0, h->vocab - 1, h->sos_id);
    GI("eos_id", 0, h->vocab - 1, h->eos_id);
    GI("sop_id", 0, h->vocab - 1, h->sop_id);
#undef GI
    double x;
    if ((rc = gguf_get_float(f, A "speech_length", &x)))
        return rc;
    if (!(x >= 1.0 && x <= 600.0))
        return err_set(COCHLEA_EFORMAT, "%s: " A "speech_length %g is not in [1, 600] seconds", L->label, x);
    h->speech_length = (float)x;
    h->ln_eps = 1e-12f;
    if (gguf_has_key(f, A "attention.layer_norm_epsilon")) {
        if ((rc = gguf_get_float(f, A "attention.layer_norm_epsilon", &x)))
            return rc;
        h->ln_eps = (float)x;
    }
    if ((rc = get_flag(L, A "use_ffn", 1, &h->use_ffn)) || (rc = get_flag(L, A "macaron_ffn", 1, &h->macaron)) ||
        (rc = get_flag(L, A "interctc_use_conditioning", 1, &h->conditioning)))
        return rc;
    if (!h->use_ffn || !h->macaron)
        return err_set(COCHLEA_EUNSUPPORTED, "%s: only E-Branchformer layers with macaron FFNs are implemented",
                       L->label);
    h->ffn_scale = 0.5f;
    if (gguf_has_key(f, A "ffn_scale")) {
        if ((rc = gguf_get_float(f, A "ffn_scale", &x)))
            return rc;
        h->ffn_scale = (float)x;
    }
    if ((rc = expect_str(L, "general.architecture", "owsm_ctc", 1)) ||
        (rc = expect_str(L, A "input_layer", "conv2d8", 0)) || (rc = expect_str(L, A "pos_enc", "abs_pos", 0)) ||
        (rc = expect_str(L, A "ffn_activation", "swish", 0)) ||
        (rc = expect_str(L, A "cgmlp.activation", "gelu", 0)) ||
        (rc = expect_str(L, A "cgmlp.gate_activation", "identity", 0)) ||
        (rc = expect_str(L, A "prompt.ffn_activation", "relu", 0)) ||
        (rc = expect_str(L, A "normalize", "global_mvn", 0)))
        return rc;
    if (h->d % h->n_head || h->p_d % h->p_head)
        return err_set(COCHLEA_EFORMAT, "%s: embedding sizes %lld/%lld are not multiples of the head counts %lld/%lld",
                       L->label, (long long)h->d, (long long)h->p_d, (long long)h->n_head, (long long)h->p_head);
    if (h->cgmlp_units % 2 || h->cgmlp_kernel % 2 == 0 || h->merge_kernel % 2 == 0)
        return err_set(COCHLEA_EFORMAT, "%s: cgMLP units must be even and conv kernels odd", L->label);
    h->freq_sub = h->n_mels;
    for (int i = 0; i < 3; i++)
        h->freq_sub = (h->freq_sub - 1) / 2;
    double ws = (double)h->sample_rate * h->speech_length;
    h->window_samples = (int64_t)ws;
    if ((double)h->window_samples != ws)
        return err_set(COCHLEA_EFORMAT, "%s: speech_length %g s is not a whole number of samples", L->label,
                       (double)h->speech_length);
    h->window_frames = 1 + h->window_samples / h->hop_length;
    int64_t t = h->window_frames;
    for (int i = 0; i < 3; i++)
        t = (t - 1) / 2;
    h->speech_frames = t;
    h->positions = t + 2;
    if (h->freq_sub < 1 || h->speech_frames < 1)
        return err_set(COCHLEA_EFORMAT, "%s: the input is too small for conv2d8 subsampling", L->label);
    return COCHLEA_OK;
}

/* Column-permuted fp32 copy of W (ne = {K, N}): dst column perm[k] <- src column k. */
static int permute_columns(const tensor *w, const int64_t *perm, tensor *dst)
{
    const int64_t K = w->ne[0], N = w->ne[1];
    int64_t ne[2] = {K, N};
    int rc = tensor_new(dst, COCHLEA_TYPE_F32, 2, ne);
    if (rc)
        return rc;
    float *row = malloc((size_t)K * sizeof *row);
    if (!row) {
        tensor_free(dst);
        return err_set(COCHLEA_ENOMEM, "out of memory");
    }
    for (int64_t n = 0; n < N; n++) {
        tensor_row_to_f32(w, n, row);
        float *o = (float *)dst->data + n * K;
        for (int64_t k = 0; k < K; k++)
            o[perm[k]] = row[k];
    }
    free(row);
    return COCHLEA_OK;
}

/* Weights for the channels-last conv2d8 (see owsm.h). */
static int make_channels_last(loader *L)
{
    owsm_model *m = L->m;
    const int64_t d = m->hp.d, F = m->hp.freq_sub;
    int64_t K = 9 * d > d * F ? 9 * d : d * F;
    int64_t *perm = malloc((size_t)K * sizeof *perm);
    if (!perm)
        return err_set(COCHLEA_ENOMEM, "out of memory");
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++) {
        const int64_t C = i == 0 ? 1 : d;
        tensor v = *m->conv_w[i]; /* [d, C, 3, 3] as rows of 9*C: column (ci*3 + a)*3 + b */
        v.n_dims = 2;
        v.ne[0] = 9 * C, v.ne[1] = d, v.ne[2] = v.ne[3] = 1;
        v.nb[1] = m->conv_w[i]->nb[3];
        v.nb[2] = v.nb[3] = v.nb[1] * (size_t)d;
        for (int64_t ci = 0; ci < C; ci++)
            for (int64_t ab = 0; ab < 9; ab++)
                perm[ci * 9 + ab] = ab * C + ci;
        rc = permute_columns(&v, perm, &m->conv_cl[i]);
        m->conv_cl[i].name = m->conv_w[i]->name;
        /* the file's copy is not read again */
        gguf_release_pages(m->file, m->conv_w[i]->data, tensor_nbytes(m->conv_w[i]));
    }
    if (!rc) {
        for (int64_t c = 0; c < d; c++)
            for (int64_t f = 0; f < F; f++)
                perm[c * F + f] = f * d + c;
        rc = permute_columns(m->embed_out.w, perm, &m->embed_out_cl_w);
        gguf_release_pages(m->file, m->embed_out.w->data, tensor_nbytes(m->embed_out.w));
        m->embed_out_cl_w.name = m->embed_out.w->name;
        m->embed_out_cl.w = &m->embed_out_cl_w;
        m->embed_out_cl.b = m->embed_out.b;
    }
    free(perm);
    return rc;
}

static int read_tokens(loader *L)
{
    owsm_model *m = L->m;
    const gguf_value *v;
    int rc = gguf_get_array(m->file, "tokenizer.ggml.tokens", &v);
    if (rc)
        return rc;
    if (v->arr_type != GGUF_TYPE_STRING || (int64_t)v->n != m->hp.vocab)
        return err_set(COCHLEA_EFORMAT, "%s: tokenizer.ggml.tokens must be %lld strings (the vocabulary), found %llu",
                       L->label, (long long)m->hp.vocab, (unsigned long long)v->n);
    size_t V = (size_t)m->hp.vocab;
    m->tokens = calloc(V, sizeof *m->tokens);
    m->token_len = calloc(V, sizeof *m->token_len);
    m->sorted_ids = calloc(V, sizeof *m->sorted_ids);
    if (!m->tokens || !m->token_len || !m->sorted_ids)
        return err_set(COCHLEA_ENOMEM, "out of memory");
    for (size_t i = 0; i < V; i++) {
        if ((rc = gguf_value_str(v, i, &m->tokens[i], &m->token_len[i])))
            return rc;
        m->sorted_ids[i] = (int32_t)i;
    }
    /* sort ids by piece bytes (bottom-up merge sort: qsort has no context argument) */
    int32_t *tmp = malloc(V * sizeof *tmp);
    if (!tmp)
        return err_set(COCHLEA_ENOMEM, "out of memory");
    for (size_t w = 1; w < V; w *= 2) {
        for (size_t lo = 0; lo < V; lo += 2 * w) {
            size_t mid = lo + w < V ? lo + w : V, hi = lo + 2 * w < V ? lo + 2 * w : V;
            size_t a = lo, b = mid, o = lo;
            while (a < mid && b < hi) {
                const char *pa = m->tokens[m->sorted_ids[a]], *pb = m->tokens[m->sorted_ids[b]];
                size_t la = m->token_len[m->sorted_ids[a]], lb = m->token_len[m->sorted_ids[b]];
                int c = memcmp(pa, pb, la < lb ? la : lb);
                if (c == 0)
                    c = la < lb ? -1 : la > lb;
                tmp[o++] = c <= 0 ? m->sorted_ids[a++] : m->sorted_ids[b++];
            }
            while (a < mid)
                tmp[o++] = m->sorted_ids[a++];
            while (b < hi)
                tmp[o++] = m->sorted_ids[b++];
        }
        memcpy(m->sorted_ids, tmp, V * sizeof *tmp);
    }
    free(tmp);
    if (gguf_has_key(m->file, TOKENIZER_GGUF_KEY)) {
        int64_t k = gguf_find_key(m->file, TOKENIZER_GGUF_KEY);
        const gguf_value *sv = gguf_kv_value(m->file, k);
        char label[1024];
        snprintf(label, sizeof label, "%s:%s", L->label, TOKENIZER_GGUF_KEY);
        if (sv->type == GGUF_TYPE_ARRAY && (sv->arr_type == GGUF_TYPE_U8 || sv->arr_type == GGUF_TYPE_I8))
            rc = tokenizer_load_memory(sv->data, (size_t)sv->n, label, &m->tok);
        else if (sv->type == GGUF_TYPE_STRING)
            rc = tokenizer_load_memory(sv->str[0], (size_t)sv->str_len[0], label, &m->tok);
        else
            rc = err_set(COCHLEA_EFORMAT, "%s: key '%s' must be an array of u8", L->label, TOKENIZER_GGUF_KEY);
        if (rc)
            return rc;
    }
    return COCHLEA_OK;
}

int32_t owsm_token_id(const owsm_model *m, const char *piece, size_t len)
{
    int64_t lo = 0, hi = m->hp.vocab - 1;
    while (lo <= hi) {
        int64_t mid = (lo + hi) / 2;
        int32_t id = m->sorted_ids[mid];
        size_t l = m->token_len[id];
        int c = memcmp(m->tokens[id], piece, l < len ? l : len);
        if (c == 0)
            c = l < len ? -1 : l > len;
        if (c == 0)
            return id;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static int read_tensors(loader *L)
{
    owsm_model *m = L->m;
    const owsm_hparams *h = &m->hp;
    gguf_file *f = m->file;
    int rc;
    char s[256];
    int64_t d = h->d;
    /* conv2d8: conv.0 [d,1,3,3], conv.2/4 [d,d,3,3] */
    for (int i = 0; i < 3; i++) {
        int64_t ne[4] = {3, 3, i == 0 ? 1 : d, d};
        snprintf(s, sizeof s, "encoder.embed.conv.%d.weight", 2 * i);
        if ((rc = gguf_expect_tensor(f, s, 4, ne, &m->conv_w[i])))
            return rc;
        enum cochlea_type ty = m->conv_w[i]->type;
        if (ty != COCHLEA_TYPE_F32 && ty != COCHLEA_TYPE_F16 && ty != COCHLEA_TYPE_BF16)
            return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' has type %s; conv kernels must be f32, f16 or bf16",
                           L->label, s, type_name(ty));
        snprintf(s, sizeof s, "encoder.embed.conv.%d.bias", 2 * i);
        if ((rc = vec_f32(L, s, d, &m->conv_b[i])))
            return rc;
    }
    if ((rc = linear(L, "encoder.embed.out", d * h->freq_sub, d, 1, &m->embed_out)))
        return rc;
    int64_t half = h->cgmlp_units / 2;
    for (int64_t l = 0; l < h->n_layer; l++) {
        owsm_layer *ly = &m->layers[l];
        char p[128];
#define P(name) (snprintf(s, sizeof s, "encoder.encoders.%lld." name, (long long)l), s)
        snprintf(p, sizeof p, "encoder.encoders.%lld.attn", (long long)l);
        if ((rc = attn(L, p, d, &ly->attn)))
            return rc;
        if ((rc = linear(L, P("cgmlp.channel_proj1.0"), d, h->cgmlp_units, 1, &ly->cgmlp_proj1)) ||
            (rc = norm(L, P("cgmlp.csgu.norm"), half, &ly->csgu_norm)) ||
            (rc = dwconv(L, P("cgmlp.csgu.conv"), half, h->cgmlp_kernel, &ly->csgu_conv)) ||
            (rc = linear(L, P("cgmlp.channel_proj2"), half, d, 1, &ly->cgmlp_proj2)) ||
            (rc = linear(L, P("feed_forward.w_1"), d, h->ffn, 1, &ly->ff_w1)) ||
            (rc = linear(L, P("feed_forward.w_2"), h->ffn, d, 1, &ly->ff_w2)) ||
            (rc = linear(L, P("feed_forward_macaron.w_1"), d, h->ffn, 1, &ly->ffm_w1)) ||
            (rc = linear(L, P("feed_forward_macaron.w_2"), h->ffn, d, 1, &ly->ffm_w2)) ||
            (rc = norm(L, P("norm_ff"), d, &ly->norm_ff)) ||
            (rc = norm(L, P("norm_ff_macaron"), d, &ly->norm_ff_macaron)) ||
            (rc = norm(L, P("norm_mha"), d, &ly->norm_mha)) || (rc = norm(L, P("norm_mlp"), d, &ly->norm_mlp)) ||
            (rc = norm(L, P("norm_final"), d, &ly->norm_final)) ||
            (rc = dwconv(L, P("depthwise_conv_fusion"), 2 * d, h->merge_kernel, &ly->fusion_conv)) ||
            (rc = linear(L, P("merge_proj"), 2 * d, d, 1, &ly->merge_proj)))
            return rc;
        if (ly->has_cross) {
            snprintf(p, sizeof p, "encoder.encoders.%lld.cross_attn", (long long)l);
            if ((rc = attn(L, p, d, &ly->cross_attn)) || (rc = norm(L, P("norm_cross_attn"), d, &ly->norm_cross_attn)))
                return rc;
        } else if (gguf_find_tensor(f, P("cross_attn.linear_q.weight")) >= 0) {
            return err_set(COCHLEA_EFORMAT, "%s: layer %lld has cross-attention weights but is not listed in "
                                            "owsm_ctc.cross_attention_layers", L->label, (long long)l);
        }
#undef P
    }
    if ((rc = norm(L, "encoder.after_norm", d, &m->after_norm)) ||
        (rc = linear(L, "ctc.ctc_lo", d, h->vocab, 1, &m->ctc_lo)))
        return rc;
    int any_inter = 0;
    for (int64_t l = 0; l < h->n_layer; l++)
        any_inter |= m->layers[l].interctc;
    if (any_inter && h->conditioning &&
        (rc = linear(L, "encoder.conditioning_layer", h->vocab, d, 1, &m->conditioning)))
        return rc;
    /* prompt encoder and prefix */
    int64_t ne_e[2] = {h->p_d, h->vocab};
    if ((rc = gguf_expect_tensor(f, "embed.weight", 2, ne_e, &m->embed)))
        return rc;
    if (h->p_d != d) {
        if ((rc = linear(L, "embed_proj", h->p_d, d, 1, &m->embed_proj)) ||
            (rc = linear(L, "prompt_proj", h->p_d, d, 1, &m->prompt_proj)))
            return rc;
    }
    for (int64_t l = 0; l < h->p_layer; l++) {
        owsm_prompt_layer *pl = &m->p_layers[l];
        char p[128];
        snprintf(p, sizeof p, "prompt_encoder.encoders.%lld.self_attn", (long long)l);
        if ((rc = attn(L, p, h->p_d, &pl->attn)))
            return rc;
#define P(name) (snprintf(s, sizeof s, "prompt_encoder.encoders.%lld." name, (long long)l), s)
        if ((rc = linear(L, P("feed_forward.w_1"), h->p_d, h->p_ffn, 1, &pl->w1)) ||
            (rc = linear(L, P("feed_forward.w_2"), h->p_ffn, h->p_d, 1, &pl->w2)) ||
            (rc = norm(L, P("norm1"), h->p_d, &pl->norm1)) || (rc = norm(L, P("norm2"), h->p_d, &pl->norm2)))
            return rc;
#undef P
    }
    if ((rc = norm(L, "prompt_encoder.after_norm", h->p_d, &m->p_after_norm)))
        return rc;
    return COCHLEA_OK;
}

/* Entry i of an I16 (read as unsigned) or I32 tensor. */
static int64_t lm_int(const tensor *t, int64_t i)
{
    return t->type == COCHLEA_TYPE_I16 ? (int64_t)((const uint16_t *)t->data)[i] : (int64_t)((const int32_t *)t->data)[i];
}

/* The embedded language model (README "Beam search and language model"): keys owsm_ctc.lm.order,
 * lm.weight, lm.insertion_bonus, lm.beam_size; for each order N tensors lm.N.logp (F16 or F32,
 * log10 probabilities, [count]) and, below the top order, lm.N.bow (back-off weights, log10,
 * [count]), and the n-grams' tokens in one of two layouts (I16 read as unsigned, or I32):
 *   - flat: lm.N.ids, ne = {N, count}, each n-gram's N tokens;
 *   - trie (when lm.1.fanout exists): lm.N.ids, ne = {1, count}, each n-gram's last token, and
 *     below the top order lm.N.fanout [count], how many (N+1)-grams extend each N-gram; the
 *     (N+1)-grams come grouped by the N-gram they extend, in its order, so their first N tokens
 *     are those of that N-gram. */
static int read_lm(loader *L)
{
    owsm_model *m = L->m;
    gguf_file *f = m->file;
    if (!gguf_has_key(f, A "lm.order"))
        return COCHLEA_OK;
    int64_t order, beam;
    double w, b;
    int rc;
    if ((rc = gguf_get_int(f, A "lm.order", 1, NGRAM_MAX_ORDER, &order)) ||
        (rc = gguf_get_int(f, A "lm.beam_size", 1, 1024, &beam)) || (rc = gguf_get_float(f, A "lm.weight", &w)) ||
        (rc = gguf_get_float(f, A "lm.insertion_bonus", &b)))
        return err_prefix(rc, "%s", L->label);
    if (!isfinite(w) || !isfinite(b) || w < 0 || w > 100 || fabs(b) > 100)
        return err_set(COCHLEA_EFORMAT, "%s: LM weight %g / insertion bonus %g out of range", L->label, w, b);
    const int trie = order > 1 && gguf_find_tensor(f, "lm.1.fanout") >= 0;
    const tensor *ids[NGRAM_MAX_ORDER + 1], *lp[NGRAM_MAX_ORDER + 1], *bo[NGRAM_MAX_ORDER + 1];
    const tensor *fan[NGRAM_MAX_ORDER + 1];
    size_t total = 0;
    for (int n = 1; n <= order; n++) {
        char name[64];
        snprintf(name, sizeof name, "lm.%d.ids", n);
        if ((rc = gguf_get_tensor(f, name, &ids[n])))
            return rc;
        const int64_t cnt = ids[n]->ne[1];
        const int width = trie ? 1 : n;
        if ((ids[n]->type != COCHLEA_TYPE_I16 && ids[n]->type != COCHLEA_TYPE_I32) || ids[n]->n_dims > 2 ||
            ids[n]->ne[0] != width)
            return err_set(COCHLEA_EFORMAT, "%s: tensor %s must be I16 or I32 of shape {%d, count}%s", L->label, name,
                           width, trie ? " (the trie layout: lm.1.fanout exists)" : "");
        snprintf(name, sizeof name, "lm.%d.logp", n);
        if ((rc = gguf_get_tensor(f, name, &lp[n])))
            return rc;
        bo[n] = fan[n] = NULL;
        if (n < order) {
            snprintf(name, sizeof name, "lm.%d.bow", n);
            if ((rc = gguf_get_tensor(f, name, &bo[n])))
                return rc;
            if (trie) {
                snprintf(name, sizeof name, "lm.%d.fanout", n);
                if ((rc = gguf_get_tensor(f, name, &fan[n])))
                    return rc;
                if ((fan[n]->type != COCHLEA_TYPE_I16 && fan[n]->type != COCHLEA_TYPE_I32) || fan[n]->n_dims != 1 ||
                    fan[n]->ne[0] != cnt)
                    return err_set(COCHLEA_EFORMAT, "%s: tensor %s must be I16 or I32 of shape {%lld}", L->label, name,
                                   (long long)cnt);
            }
        }
        for (int k = 0; k < 2; k++) {
            const tensor *t = k ? bo[n] : lp[n];
            if (t && ((t->type != COCHLEA_TYPE_F16 && t->type != COCHLEA_TYPE_F32) || t->n_dims != 1 || t->ne[0] != cnt))
                return err_set(COCHLEA_EFORMAT, "%s: tensor lm.%d.%s must be F16 or F32 of shape {%lld}", L->label, n,
                               k ? "bow" : "logp", (long long)cnt);
        }
        total += (size_t)cnt;
    }
    for (int n = 1; trie && n < order; n++) {
        int64_t sum = 0;
        for (int64_t i = 0; i < fan[n]->ne[0]; i++) {
            const int64_t v = lm_int(fan[n], i);
            if (v < 0)
                return err_set(COCHLEA_EFORMAT, "%s: lm.%d.fanout entry %lld is negative", L->label, n, (long long)i);
            sum += v;
        }
        if (sum != ids[n + 1]->ne[1])
            return err_set(COCHLEA_EFORMAT, "%s: lm.%d.fanout adds up to %lld, but there are %lld %d-grams", L->label, n,
                           (long long)sum, (long long)ids[n + 1]->ne[1], n + 1);
    }
    if ((rc = ngram_new((int)order, total, &m->lm)))
        return err_prefix(rc, "%s", L->label);
    /* trie: the previous order's n-grams in full (what the next order's n-grams extend) */
    int32_t *prev = NULL, *cur = NULL;
    for (int n = 1; n <= order && !rc; n++) {
        const int64_t cnt = ids[n]->ne[1];
        if (trie && !(cur = malloc((size_t)(cnt ? cnt : 1) * (size_t)n * sizeof *cur))) {
            rc = err_set(COCHLEA_ENOMEM, "out of memory");
            break;
        }
        int64_t parent = -1, left = 0; /* trie: the n-gram this one extends, and its children still to come */
        for (int64_t i = 0; i < cnt && !rc; i++) {
            int32_t g[NGRAM_MAX_ORDER];
            if (trie && n > 1) {
                while (left == 0)
                    left = lm_int(fan[n - 1], ++parent); /* the sum check keeps parent in range */
                left--;
                memcpy(g, prev + parent * (n - 1), (size_t)(n - 1) * sizeof *g);
            }
            for (int k = trie ? n - 1 : 0; k < n; k++) {
                const int64_t v = lm_int(ids[n], trie ? i : i * n + k);
                if (v < 0 || v >= m->hp.vocab) {
                    rc = err_set(COCHLEA_ERANGE, "%s: lm.%d.ids holds token id %lld outside the vocabulary (%lld)",
                                 L->label, n, (long long)v, (long long)m->hp.vocab);
                    break;
                }
                g[k] = (int32_t)v;
            }
            if (rc)
                break;
            if (trie)
                memcpy(cur + i * n, g, (size_t)n * sizeof *g);
            double p = lp[n]->type == COCHLEA_TYPE_F16 ? fp16_to_f32(((const uint16_t *)lp[n]->data)[i])
                                                        : ((const float *)lp[n]->data)[i];
            double q = 0.0;
            if (bo[n])
                q = bo[n]->type == COCHLEA_TYPE_F16 ? fp16_to_f32(((const uint16_t *)bo[n]->data)[i])
                                                    : ((const float *)bo[n]->data)[i];
            if (!isfinite(p) || !isfinite(q) || p > 1e-3 || p < -1e4 || fabs(q) > 1e4)
                rc = err_set(COCHLEA_EFORMAT, "%s: lm.%d entry %lld: log-probability %g / back-off %g out of range",
                             L->label, n, (long long)i, p, q);
            else if ((rc = ngram_put(m->lm, g, n, (float)(p * NGRAM_LN10), (float)(q * NGRAM_LN10))))
                rc = err_prefix(rc, "%s", L->label);
        }
        free(prev);
        prev = cur;
        cur = NULL;
    }
    free(prev);
    if (rc)
        return rc;
    if (ngram_count(m->lm, 1) == 0)
        return err_set(COCHLEA_EFORMAT, "%s: the embedded language model has no unigram", L->label);
    ngram_finish(m->lm, m->hp.unk_id);
    m->lm_weight = (float)w;
    m->lm_bonus = (float)b;
    m->lm_beam = (int)beam;
    return COCHLEA_OK;
}

int owsm_model_load(gguf_file *f, owsm_model **out)
{
    *out = NULL;
    owsm_model *m = calloc(1, sizeof *m);
    if (!m) {
        gguf_close(f);
        return err_set(COCHLEA_ENOMEM, "out of memory");
    }
    m->file = f;
    loader L = {m, gguf_label(f)};
    int rc = read_hparams(&L);
    if (!rc) {
        m->layers = calloc((size_t)m->hp.n_layer, sizeof *m->layers);
        m->p_layers = calloc((size_t)(m->hp.p_layer ? m->hp.p_layer : 1), sizeof *m->p_layers);
        if (!m->layers || !m->p_layers)
            rc = err_set(COCHLEA_ENOMEM, "out of memory");
    }
    if (!rc)
        rc = layer_list(&L, A "cross_attention_layers", 0);
    if (!rc)
        rc = layer_list(&L, A "interctc_layers", 1);
    if (!rc)
        rc = read_tensors(&L);
    if (!rc)
        rc = make_channels_last(&L);
    if (!rc)
        rc = read_tokens(&L);
    if (!rc)
        rc = read_lm(&L);
    if (rc) {
        owsm_model_free(m);
        return rc;
    }
    *out = m;
    return COCHLEA_OK;
}

void owsm_model_free(owsm_model *m)
{
    if (!m)
        return;
    for (int64_t i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    for (int i = 0; i < 3; i++)
        tensor_free(&m->conv_cl[i]);
    tensor_free(&m->embed_out_cl_w);
    free(m->owned);
    free(m->layers);
    free(m->p_layers);
    free(m->tokens);
    free(m->token_len);
    free(m->sorted_ids);
    tokenizer_free(m->tok);
    ngram_free(m->lm);
    gguf_close(m->file);
    free(m);
}

int owsm_model_prepare(cochlea_ctx *ctx, const owsm_model *m)
{
    const owsm_hparams *hp = &m->hp;
    int rc = 0;
    /* packed precisions never read the mapped fp32 weights again: drop their pages from RSS */
    const int release = ctx->precision != COCHLEA_PRECISION_F32;
#define PREP(t)                                                                                                        \
    do {                                                                                                               \
        if (!rc && (t)) {                                                                                              \
            rc = gemm_prepare(ctx, (t));                                                                               \
            if (!rc && release)                                                                                        \
                gguf_release_pages(m->file, (t)->data, tensor_nbytes(t));                                              \
        }                                                                                                              \
    } while (0)
    for (int i = 0; i < 3; i++)
        PREP(&m->conv_cl[i]);
    PREP(m->embed_out_cl.w);
    for (int64_t l = 0; l < hp->n_layer; l++) {
        const owsm_layer *L = &m->layers[l];
        const owsm_linear *lins[] = {&L->ffm_w1, &L->ffm_w2, &L->ff_w1, &L->ff_w2, &L->attn.q, &L->attn.k,
                                     &L->attn.v, &L->attn.o, &L->cgmlp_proj1, &L->cgmlp_proj2, &L->merge_proj,
                                     &L->cross_attn.q, &L->cross_attn.k, &L->cross_attn.v, &L->cross_attn.o};
        for (size_t i = 0; i < sizeof lins / sizeof *lins; i++)
            PREP(lins[i]->w);
    }
    PREP(m->ctc_lo.w);
    PREP(m->conditioning.w);
#undef PREP
    return rc;
}
