/* beam.h - CTC prefix beam search with an optional token n-gram language model and an insertion
 * bonus (README "Beam search and language model"; tests/ref/ctc_beam.py is the reference and
 * spells out every rule: candidates per position, scores, tie-breaks, the alignment).
 *
 * Positions are fed as log-posterior rows (ctc_cands_add); only the blank and the CTC_TOPK most
 * likely other tokens above CTC_PRUNE of each row are kept, so memory is small however long the
 * audio. ctc_beam_decode then returns the best token sequence and, for timestamps, one decision per
 * position (a token at the positions that emit it, blank elsewhere) whose CTC collapse is that
 * sequence. */
#ifndef COCHLEA_ASR_BEAM_H
#define COCHLEA_ASR_BEAM_H

#include <stddef.h>
#include <stdint.h>

#include "asr/ngram.h"

#define CTC_TOPK 8
#define CTC_PRUNE (-12.0f)

/* Token kinds for the language model: pieces are scored, other symbols in angle brackets are
 * not, language tokens (three lowercase letters in angle brackets, such as <eng>, other than
 * <asr> <unk> <sos> <eos> <sop>) set the context. */
enum { CTC_KIND_PIECE = 0, CTC_KIND_SPECIAL = 1, CTC_KIND_LANG = 2 };
int ctc_token_kind(const char *piece, size_t len);

typedef struct ctc_cands {
    int32_t *ids;  /* n x (CTC_TOPK + 1): blank first, then by decreasing log-posterior */
    float *lp;     /* their log-posteriors */
    uint8_t *cnt;  /* candidates of each position */
    int32_t *argmax;
    size_t n, cap;
} ctc_cands;

void ctc_cands_free(ctc_cands *c);
/* Append n_rows positions (rows of V log-posteriors). */
int ctc_cands_add(ctc_cands *c, const float *rows, size_t n_rows, int64_t V, int32_t blank);

typedef struct ctc_beam_opts {
    int beam;              /* >= 1 */
    float weight, bonus;   /* LM weight (on natural logs) and the per-piece insertion bonus */
    const ngram_lm *lm;    /* may be NULL */
    const uint8_t *kind;   /* [vocab] CTC_KIND_* */
    int64_t vocab;
    int32_t blank, sos, eos;
    int32_t lang;          /* the known language token, or -1 (the first one emitted) */
} ctc_beam_opts;

/* Decode c. *ids (malloc'ed, *n_ids of them) is the result; align[c->n] gets the per-position
 * decisions. */
int ctc_beam_decode(const ctc_cands *c, const ctc_beam_opts *o, int32_t **ids, size_t *n_ids, int32_t *align);

#endif
