/* ngram.h - back-off n-gram language model over token ids, for CTC beam search (asr/beam.h).
 *
 * The model scores a token given the tokens before it (README "Beam search and language model";
 * tests/ref/ctc_beam.py is the reference):
 *   ln P(w | h) = logp(h w)                          if the n-gram h w is in the model
 *               = bow(h) + ln P(w | h without its first token)   otherwise
 * with bow(h) = 0 when h is not in the model, and a token that is no unigram getting the unk
 * score (the <unk> unigram, else -99 * ln 10). Values are natural logs, stored as float.
 * Sources: an ARPA file (log10, words mapped to ids by a callback; "<s>", "</s>" and "<unk>"
 * map to the given ids) or arrays (the model file's embedded LM, asr/owsm_model.c).
 * Orders 1..NGRAM_MAX_ORDER, ids 0..NGRAM_MAX_ID. */
#ifndef COCHLEA_ASR_NGRAM_H
#define COCHLEA_ASR_NGRAM_H

#include <stddef.h>
#include <stdint.h>

#define NGRAM_MAX_ORDER 6
#define NGRAM_MAX_ID ((1 << 21) - 2)
#define NGRAM_LN10 2.302585092994045684

typedef struct ngram_lm ngram_lm;

/* Maps an ARPA word (not NUL-terminated) to a token id, or -1 if the vocabulary lacks it. */
typedef int32_t (*ngram_word_fn)(void *user, const char *word, size_t len);

/* An empty model of the given order that expects about n_hint n-grams (ngram_put fills it). */
int ngram_new(int order, size_t n_hint, ngram_lm **out);
/* Add (or replace) the n-gram ids[0..n) with natural-log probability logp and back-off bow. */
int ngram_put(ngram_lm *lm, const int32_t *ids, int n, float logp, float bow);
/* Call after the last ngram_put: sets the unk score (the unigram unk_id if present). */
void ngram_finish(ngram_lm *lm, int32_t unk_id);

/* Parse an ARPA file. N-grams holding a word the vocabulary lacks are left out and counted in
 * *n_skipped (may be NULL); a file with no usable unigram, a malformed line, a count that does
 * not match its \data\ entry or an order above NGRAM_MAX_ORDER is COCHLEA_EFORMAT, naming the
 * file and line. */
int ngram_load_arpa(const char *path, ngram_word_fn lookup, void *user, int32_t sos, int32_t eos, int32_t unk,
                    ngram_lm **out, size_t *n_skipped);

void ngram_free(ngram_lm *lm);
int ngram_order(const ngram_lm *lm);
size_t ngram_count(const ngram_lm *lm, int order); /* n-grams of that order (1..order) */

/* ln P(w | ctx), ctx oldest first (only its last order-1 ids are used). */
double ngram_lnp(const ngram_lm *lm, const int32_t *ctx, int n_ctx, int32_t w);

#endif
