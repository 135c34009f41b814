/* audio.h - audio input for the frontend: libsndfile decoding of any container/codec it reads,
 * channel averaging or selection, streaming resampling with libsoxr (HQ), a pull interface and
 * whole-file loading. The public API is the cochlea_audio_* section of cochlea.h; this header
 * adds the limits and helpers other modules and tests share. */
#ifndef COCHLEA_FRONTEND_AUDIO_H
#define COCHLEA_FRONTEND_AUDIO_H

#include <stddef.h>

#include "cochlea.h"

/* Accepted source and output sample rates (Hz) and channel counts. */
#define AUDIO_MIN_RATE 1000
#define AUDIO_MAX_RATE 768000
#define AUDIO_MAX_CHANNELS 256

/* Frames decoded per block: memory use is a few blocks, whatever the file's length. */
#define AUDIO_BLOCK_FRAMES 8192

/* Parse a raw sample format name ("s8", "u8", "s16", "s24", "s32", "f32", "f64", "ulaw",
 * "alaw"); returns COCHLEA_RAW_NONE for an unknown name. */
enum cochlea_raw_format audio_raw_format_from_name(const char *name);

/* Names of the major formats the linked libsndfile reads, comma separated, into buf. */
void audio_supported_formats(char *buf, size_t n);

#endif
