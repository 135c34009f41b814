/* ctc.h - greedy CTC decoding and detokenisation for OWSM-CTC (owsm-ctc.md §5.6). */
#ifndef COCHLEA_ASR_CTC_H
#define COCHLEA_ASR_CTC_H

#include <stddef.h>
#include <stdint.h>

#include "asr/owsm.h"

/* Greedy CTC over frame argmaxes: merge consecutive repeats, then drop `blank`. Writes at most n
 * ids into out (which may alias frames) and returns how many. */
size_t ctc_collapse(const int32_t *frames, size_t n, int32_t blank, int32_t *out);

/* 1 when the piece has the form <...> (language, task and other special symbols, which
 * text_nospecial drops). */
int ctc_is_special(const char *piece, size_t len);

/* ESPnet's text (nospecial = 0: every piece) or text_nospecial (nospecial = 1: pieces of the form
 * <...> dropped), detokenised as SentencePiece DecodePieces does. *text is malloc'ed. */
int ctc_ids_to_text(const owsm_model *m, const int32_t *ids, size_t n, int nospecial, char **text);

#endif
