/* tokenizer_proto.c - a strict protobuf wire-format reader for SentencePiece's ModelProto
 * (sentencepiece_model.proto): pieces, trainer_spec, normalizer_spec, denormalizer_spec.
 *
 * Every varint, length and fixed-size value is checked against the bytes left in its enclosing
 * message; a truncated or corrupt model gives COCHLEA_EFORMAT naming the field and the offset.
 * Unknown fields are skipped; groups (wire types 3/4) and invalid wire types are rejected, as
 * are known fields sent with the wrong wire type and out-of-range enum values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_internal.h"

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

/* A message being read: bytes [p, end) of tok->blob. */
typedef struct pb_in {
    const tokenizer *tok;
    const uint8_t *p, *end;
    const char *where; /* "ModelProto.pieces[12]" */
} pb_in;

/* One field: its number, wire type, and value (varint/fixed) or bytes (length-delimited). */
typedef struct pb_field {
    uint32_t num;
    int wt;
    uint64_t v;
    size_t off, len; /* PB_LEN: the value's offset in the blob and length */
    size_t at;       /* offset of the tag, for messages */
} pb_field;

static size_t pb_offset(const pb_in *in, const uint8_t *p)
{
    return (size_t)(p - in->tok->blob);
}

/* Read a base-128 varint (at most 10 bytes, the 10th at most 1). */
static int pb_varint(pb_in *in, uint64_t *v, const char *what)
{
    const uint8_t *start = in->p;
    uint64_t r = 0;
    for (int i = 0; i < 10; i++) {
        if (in->p >= in->end)
            return err_set(COCHLEA_EFORMAT, "%s: %s: truncated varint (%s) at offset %zu", in->tok->name,
                           in->where, what, pb_offset(in, start));
        uint8_t b = *in->p++;
        if (i == 9 && b > 1)
            break;
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = r;
            return COCHLEA_OK;
        }
    }
    return err_set(COCHLEA_EFORMAT, "%s: %s: varint (%s) at offset %zu is longer than 64 bits",
                   in->tok->name, in->where, what, pb_offset(in, start));
}

/* Read the next field of the message; returns 1 for a field, 0 at the end, or an error. */
static int pb_next(pb_in *in, pb_field *f)
{
    if (in->p >= in->end)
        return 0;
    f->at = pb_offset(in, in->p);
    uint64_t tag;
    int rc = pb_varint(in, &tag, "field tag");
    if (rc)
        return rc;
    if (tag > UINT32_MAX || (tag >> 3) == 0)
        return err_set(COCHLEA_EFORMAT, "%s: %s: invalid field tag %llu at offset %zu", in->tok->name,
                       in->where, (unsigned long long)tag, f->at);
    f->num = (uint32_t)(tag >> 3);
    f->wt = (int)(tag & 7);
    size_t left;
    switch (f->wt) {
    case PB_VARINT:
        return pb_varint(in, &f->v, "value") ? COCHLEA_EFORMAT : 1;
    case PB_I64:
    case PB_I32: {
        size_t n = f->wt == PB_I64 ? 8 : 4;
        left = (size_t)(in->end - in->p);
        if (left < n)
            return err_set(COCHLEA_EFORMAT,
                           "%s: %s: field %u at offset %zu needs %zu bytes, only %zu left in the message",
                           in->tok->name, in->where, f->num, f->at, n, left);
        f->v = 0;
        for (size_t i = 0; i < n; i++)
            f->v |= (uint64_t)in->p[i] << (8 * i);
        in->p += n;
        return 1;
    }
    case PB_LEN: {
        uint64_t len;
        if (pb_varint(in, &len, "length"))
            return COCHLEA_EFORMAT;
        left = (size_t)(in->end - in->p);
        if (len > left)
            return err_set(COCHLEA_EFORMAT,
                           "%s: %s: field %u at offset %zu has length %llu but only %zu bytes are left "
                           "in the message (truncated or corrupt model)",
                           in->tok->name, in->where, f->num, f->at, (unsigned long long)len, left);
        f->off = pb_offset(in, in->p);
        f->len = (size_t)len;
        in->p += len;
        return 1;
    }
    case 3:
    case 4:
        return err_set(COCHLEA_EFORMAT, "%s: %s: field %u at offset %zu uses the group wire type %d, which "
                       "SentencePiece models never contain", in->tok->name, in->where, f->num, f->at, f->wt);
    default:
        return err_set(COCHLEA_EFORMAT, "%s: %s: field %u at offset %zu has invalid wire type %d",
                       in->tok->name, in->where, f->num, f->at, f->wt);
    }
}

/* Check that a known field came with the wire type its declaration implies. */
static int pb_want(const pb_in *in, const pb_field *f, int wt, const char *name)
{
    if (f->wt == wt)
        return COCHLEA_OK;
    return err_set(COCHLEA_EFORMAT, "%s: %s.%s (field %u) at offset %zu has wire type %d, expected %d",
                   in->tok->name, in->where, name, f->num, f->at, f->wt, wt);
}

static pb_in pb_sub(const pb_in *parent, const pb_field *f, const char *where)
{
    pb_in in = {parent->tok, parent->tok->blob + f->off, parent->tok->blob + f->off + f->len, where};
    return in;
}

static float pb_float(uint64_t v)
{
    uint32_t u = (uint32_t)v;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* ModelProto.SentencePiece: piece (1), score (2), type (3). */
static int parse_piece(pb_in *in, tok_piece *sp)
{
    pb_field f;
    int rc;
    while ((rc = pb_next(in, &f)) == 1) {
        switch (f.num) {
        case 1:
            if ((rc = pb_want(in, &f, PB_LEN, "piece")))
                return rc;
            sp->off = f.off; /* an offset into the blob until the pool is built */
            sp->len = f.len;
            break;
        case 2:
            if ((rc = pb_want(in, &f, PB_I32, "score")))
                return rc;
            sp->score = pb_float(f.v);
            break;
        case 3:
            if ((rc = pb_want(in, &f, PB_VARINT, "type")))
                return rc;
            if (f.v < TOKENIZER_PIECE_NORMAL || f.v > TOKENIZER_PIECE_BYTE)
                return err_set(COCHLEA_EFORMAT, "%s: %s.type is %lld, not a piece type (1..6)", in->tok->name,
                               in->where, (long long)(int64_t)f.v);
            sp->type = (uint8_t)f.v;
            break;
        default:
            break;
        }
    }
    return rc;
}

/* TrainerSpec: the fields the encoder and decoder use. */
static int parse_trainer(pb_in *in, tokenizer *tok)
{
    pb_field f;
    int rc;
    while ((rc = pb_next(in, &f)) == 1) {
        tok_span *s = NULL;
        switch (f.num) {
        case 3:
            if ((rc = pb_want(in, &f, PB_VARINT, "model_type")))
                return rc;
            if (f.v < TOKENIZER_MODEL_UNIGRAM || f.v > TOKENIZER_MODEL_CHAR)
                return err_set(COCHLEA_EFORMAT,
                               "%s: %s.model_type is %lld, not unigram (1), bpe (2), word (3) or char (4)",
                               tok->name, in->where, (long long)(int64_t)f.v);
            tok->model_type = (int)f.v;
            break;
        case 4:
            if ((rc = pb_want(in, &f, PB_VARINT, "vocab_size")))
                return rc;
            tok->vocab_size_spec = (int32_t)(uint32_t)f.v;
            break;
        case 24:
            if ((rc = pb_want(in, &f, PB_VARINT, "treat_whitespace_as_suffix")))
                return rc;
            tok->treat_ws_as_suffix = f.v != 0;
            break;
        case 35:
            if ((rc = pb_want(in, &f, PB_VARINT, "byte_fallback")))
                return rc;
            tok->byte_fallback = f.v != 0;
            break;
        case 44:
            s = &tok->unk_surface;
            tok->has_unk_surface = 1;
            break;
        case 45: s = &tok->unk_piece; break;
        case 46: s = &tok->bos_piece; break;
        case 47: s = &tok->eos_piece; break;
        case 48: s = &tok->pad_piece; break;
        default:
            break;
        }
        if (s) {
            if ((rc = pb_want(in, &f, PB_LEN, "string field")))
                return rc;
            s->off = f.off;
            s->len = f.len;
        }
    }
    return rc;
}

/* NormalizerSpec: name (1), precompiled_charsmap (2), add_dummy_prefix (3),
 * remove_extra_whitespaces (4), escape_whitespaces (5). */
static int parse_normalizer(pb_in *in, tok_norm *n)
{
    pb_field f;
    int rc;
    n->present = 1;
    while ((rc = pb_next(in, &f)) == 1) {
        switch (f.num) {
        case 1:
        case 2:
            if ((rc = pb_want(in, &f, PB_LEN, f.num == 1 ? "name" : "precompiled_charsmap")))
                return rc;
            if (f.num == 1)
                n->name = (tok_span){f.off, f.len};
            else
                n->charsmap = (tok_span){f.off, f.len};
            break;
        case 3:
        case 4:
        case 5: {
            static const char *names[] = {"add_dummy_prefix", "remove_extra_whitespaces", "escape_whitespaces"};
            if ((rc = pb_want(in, &f, PB_VARINT, names[f.num - 3])))
                return rc;
            int *dst = f.num == 3 ? &n->add_dummy_prefix : f.num == 4 ? &n->remove_extra_ws : &n->escape_ws;
            *dst = f.v != 0;
            break;
        }
        default:
            break;
        }
    }
    return rc;
}

/* SelfTestData: samples (1), each Sample with input (1) and expected (2). */
static int parse_self_test(pb_in *in, tokenizer *tok)
{
    pb_field f, g;
    int rc;
    while ((rc = pb_next(in, &f)) == 1) {
        if (f.num != 1)
            continue;
        if ((rc = pb_want(in, &f, PB_LEN, "samples")))
            return rc;
        if (tok->n_tests == tok->cap_tests) {
            size_t cap = tok->cap_tests ? tok->cap_tests * 2 : 16, bytes;
            if (size_mul(cap, sizeof *tok->tests, &bytes))
                return err_set(COCHLEA_ENOMEM, "%s: too many self-test samples", tok->name);
            void *p = realloc(tok->tests, bytes);
            if (!p)
                return err_set(COCHLEA_ENOMEM, "%s: out of memory", tok->name);
            tok->tests = p;
            tok->cap_tests = cap;
        }
        struct tok_self_test *t = &tok->tests[tok->n_tests++];
        memset(t, 0, sizeof *t);
        pb_in sub = pb_sub(in, &f, "ModelProto.self_test_data.samples");
        while ((rc = pb_next(&sub, &g)) == 1) {
            if (g.num != 1 && g.num != 2)
                continue;
            if ((rc = pb_want(&sub, &g, PB_LEN, g.num == 1 ? "input" : "expected")))
                return rc;
            *(g.num == 1 ? &t->input : &t->expected) = (tok_span){g.off, g.len};
        }
        if (rc)
            return rc;
    }
    return rc;
}

static void norm_defaults(tok_norm *n)
{
    memset(n, 0, sizeof *n);
    n->add_dummy_prefix = 1;
    n->remove_extra_ws = 1;
    n->escape_ws = 1;
}

int tok_parse_model_proto(tokenizer *tok)
{
    pb_in in = {tok, tok->blob, tok->blob + tok->blob_len, "ModelProto"};
    pb_field f;
    int rc;
    char where[64];

    tok->model_type = TOKENIZER_MODEL_UNIGRAM;
    tok->vocab_size_spec = 8000;
    norm_defaults(&tok->norm);
    norm_defaults(&tok->denorm);
    tok->norm.present = 0;

    while ((rc = pb_next(&in, &f)) == 1) {
        switch (f.num) {
        case 1: {
            if ((rc = pb_want(&in, &f, PB_LEN, "pieces")))
                return rc;
            if (tok->n_pieces == INT32_MAX)
                return err_set(COCHLEA_EFORMAT, "%s: more than %d pieces", tok->name, INT32_MAX);
            if ((size_t)tok->n_pieces == tok->cap_pieces) {
                size_t cap = tok->cap_pieces ? tok->cap_pieces * 2 : 1024, bytes;
                if (size_mul(cap, sizeof(tok_piece), &bytes))
                    return err_set(COCHLEA_ENOMEM, "%s: too many pieces", tok->name);
                tok_piece *p = realloc(tok->pieces, bytes);
                if (!p)
                    return err_set(COCHLEA_ENOMEM, "%s: out of memory for %zu pieces", tok->name, cap);
                tok->pieces = p;
                tok->cap_pieces = cap;
            }
            tok_piece *sp = &tok->pieces[tok->n_pieces];
            memset(sp, 0, sizeof *sp);
            sp->type = TOKENIZER_PIECE_NORMAL;
            snprintf(where, sizeof where, "ModelProto.pieces[%d]", (int)tok->n_pieces);
            pb_in sub = pb_sub(&in, &f, where);
            if ((rc = parse_piece(&sub, sp)))
                return rc;
            tok->n_pieces++;
            break;
        }
        case 2: {
            if ((rc = pb_want(&in, &f, PB_LEN, "trainer_spec")))
                return rc;
            pb_in sub = pb_sub(&in, &f, "ModelProto.trainer_spec");
            if ((rc = parse_trainer(&sub, tok)))
                return rc;
            break;
        }
        case 3:
        case 5: {
            if ((rc = pb_want(&in, &f, PB_LEN, f.num == 3 ? "normalizer_spec" : "denormalizer_spec")))
                return rc;
            pb_in sub = pb_sub(&in, &f, f.num == 3 ? "ModelProto.normalizer_spec" : "ModelProto.denormalizer_spec");
            if ((rc = parse_normalizer(&sub, f.num == 3 ? &tok->norm : &tok->denorm)))
                return rc;
            break;
        }
        case 4: {
            if ((rc = pb_want(&in, &f, PB_LEN, "self_test_data")))
                return rc;
            pb_in sub = pb_sub(&in, &f, "ModelProto.self_test_data");
            if ((rc = parse_self_test(&sub, tok)))
                return rc;
            break;
        }
        default:
            break;
        }
    }
    return rc;
}
