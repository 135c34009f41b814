/* codec.h - internals of the SECodec pipeline (codec/codec.c) that the CLI and the tests share:
 * the model fingerprint (docs/secodec-model.md), latents of whole files, and writing a model file
 * with new codebooks. The public API is the cochlea_codec_* section of cochlea.h. */
#ifndef COCHLEA_CODEC_CODEC_H
#define COCHLEA_CODEC_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "cochlea.h"
#include "gguf.h"

/* FNV-1a over 64-bit little-endian words, as docs/secodec-model.md "Fingerprint" defines. */
uint64_t codec_fingerprint_begin(void);
uint64_t codec_fingerprint_add(uint64_t h, const void *data, size_t n);

/* The fingerprint of an open "secodec" file (what cochlea_codec_fingerprint returns for it). */
int codec_fingerprint_file(const gguf_file *f, uint64_t *out);

/* The open model file behind a codec (valid while the codec lives). */
const gguf_file *codec_gguf(const cochlea_codec *c);

/* Write `path`: a copy of the model file src (every key and tensor) with its quantiser section
 * replaced by cb (se_codebook_write; nodes stored as nodes_type, F32 or F16) and, when training is
 * not NULL, secodec.training set to it. */
struct se_codebook;
int codec_write_with_codebooks(const gguf_file *src, const struct se_codebook *cb, enum cochlea_type nodes_type,
                               const char *training, const char *path);

#endif
