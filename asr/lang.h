/* lang.h - OWSM-CTC language codes, translation targets and language identification
 * (owsm-ctc.md §5.1, §5.4, §5.5).
 *
 * The v3.1 token list has <nolang> at id 3, 151 language tokens <abk> ... <zul> at ids 4..154
 * (alphabetical ISO 639-3 codes), <asr> at 155 and 25 translation tasks <st_ara> ... <st_zho> at
 * 156..180. asr_lang_table() is that list in token order, with the ISO 639-1 code (where one
 * exists) and an English name per language.
 *
 * Models with another token list (for example small test models with a dozen languages) are
 * handled through an asr_token_id_fn: every function taking one asks it for the id of "<xxx>" and
 * treats languages/targets it does not know (id < 0) as absent. A NULL lookup means the v3.1
 * layout above. Only languages of the 151-entry table are recognised. "auto"/<nolang> is not a
 * language here: callers map it to <nolang> themselves. */
#ifndef COCHLEA_ASR_LANG_H
#define COCHLEA_ASR_LANG_H

#include <stddef.h>
#include <stdint.h>

#include "asr/transcript.h"

#define ASR_LANG_N 151       /* language tokens */
#define ASR_ST_N 25          /* translation targets */
#define ASR_NOLANG_ID 3      /* v3.1 ids */
#define ASR_LANG_FIRST_ID 4  /* <abk>; table entry i is id 4 + i */
#define ASR_ASR_ID 155
#define ASR_ST_FIRST_ID 156  /* <st_ara>; target i is id 156 + i */

typedef struct asr_lang_info {
    const char *code;  /* ISO 639-3, as in the token list ("eng") */
    const char *code1; /* ISO 639-1 ("en"), or "" when the language has none */
    const char *name;  /* English name ("English"), UTF-8 */
    const char *alias; /* other accepted names, '|'-separated ("" if none) */
} asr_lang_info;

/* The 151 languages in token order (*n = ASR_LANG_N). */
const asr_lang_info *asr_lang_table(size_t *n);
/* Table index of an ISO 639-3 code (exact, lowercase, no <>), or -1. */
int asr_lang_index(const char *code);
/* The 25 translation target codes in token order ("ara" ... "zho"; *n = ASR_ST_N). */
const char *const *asr_st_targets(size_t *n);

/* Id of a token piece such as "<eng>" or "<st_deu>" in the caller's model, or a negative value
 * when the model has no such token. */
typedef int32_t (*asr_token_id_fn)(void *user, const char *piece);
/* An asr_token_id_fn over a cochlea_asr (user is the cochlea_asr *). */
int32_t asr_lang_token_id_asr(void *asr, const char *piece);

/* Parse a language: an ISO 639-3 code ("eng", "<eng>"), an ISO 639-1 code ("en") or an English
 * name or alias ("english", "Mandarin"); ASCII case-insensitive, surrounding blanks ignored.
 * Writes the 3-letter code to code3. Unknown input gives COCHLEA_EINVAL with a message that
 * suggests the nearest codes/names (edit distance, or a name that starts with the input) and says
 * how to list the languages. */
int asr_lang_parse(const char *s, char code3[16]);
/* The same against a model: a language the lookup does not know gives COCHLEA_EINVAL naming it
 * and the model's languages (listed when there are at most 40, else counted). *id (may be NULL)
 * receives the model's token id (4 + index for lookup NULL). */
int asr_lang_parse_in(const char *s, asr_token_id_fn lookup, void *user, char code3[16], int32_t *id);

/* Parse a task: "asr"/"<asr>" -> "asr"; a translation target given as "st_deu", "<st_deu>", or
 * as any language form ("deu", "de", "german", "st_de") -> "st_deu". A language that is not one
 * of the 25 targets gives COCHLEA_EINVAL listing the targets. */
int asr_task_parse(const char *s, char task[32]);
/* The same against a model (*id: the task token's id, may be NULL; the message lists the
 * targets the model has). */
int asr_task_parse_in(const char *s, asr_token_id_fn lookup, void *user, char task[32], int32_t *id);

/* Parse a comma- (or blank-) separated list of languages ("eng,deu, fra") into model token ids,
 * in the given order with duplicates dropped. At most cap ids; an empty list, an unknown or
 * absent language, or more than cap distinct languages gives COCHLEA_EINVAL. */
int asr_lang_parse_list(const char *s, asr_token_id_fn lookup, void *user, int32_t *ids, size_t cap,
                        size_t *n);

/* The languages of the model (all 151 for lookup NULL) in table order: ids[j] its token id and
 * codes[j] its code (pointing into the static table); *n their number. Arrays of ASR_LANG_N. */
void asr_lang_model_set(asr_token_id_fn lookup, void *user, int32_t ids[ASR_LANG_N],
                        const char *codes[ASR_LANG_N], size_t *n);

/* The language list for --list-languages, malloc'ed in *out (caller frees): a header line, then
 * one line per language the model has ("%5d  %-4s %-4s %s\n": token id, ISO 639-3, ISO 639-1
 * or "-", name), then "translation targets (N): ara cat ...\n" with the targets it has. */
int asr_lang_list_format(asr_token_id_fn lookup, void *user, char **out);

/* Language identification from one window's CTC log-posteriors (decoded with <nolang>).
 *
 * logpost: [T, V] row-major log-probabilities (log_softmax of the CTC logits), T positions in
 * encoder order, the 2 prefix positions included. lang_ids[n_lang]: the model's language token
 * ids (distinct, in [0, V)); lang_codes[n_lang] their codes, or NULL when lang_ids are the 151
 * languages in table order. candidates[n_cand]: the token ids to choose among (each must be in
 * lang_ids; duplicates ignored), or NULL for all of lang_ids.
 *
 * Rule (owsm-ctc.md §5.4: the model emits the language token as its first label):
 *  1. The frame is the first t (0 <= t < T) whose argmax over all V tokens (lowest id on ties) is
 *     one of lang_ids, i.e. where greedy CTC emits the language token (*emitted = 1).
 *  2. If no frame's argmax is a language token, it is the frame with the largest probability
 *     mass sum_{l in lang_ids} exp(logpost[t, l]) (the earliest on ties; *emitted = 0).
 *  The frame does not depend on the candidates.
 *  3. At that frame p_c = exp(logpost[t, c]) / sum_{c' in candidates} exp(logpost[t, c']) over
 *     the candidates (so they sum to 1 over the whole candidate set), and the min(k, candidates)
 *     most probable are written to out, most probable first; equal probabilities keep the order
 *     of lang_ids.
 * *n_out: entries written; *frame: the frame used; n_out, frame, emitted may be NULL.
 * Errors: COCHLEA_EINVAL (bad shapes or ids, NaN at the chosen frame, a candidate not in
 * lang_ids), COCHLEA_ERANGE (T*V overflows, or every candidate has probability 0 there). */
int asr_lang_detect(const float *logpost, int64_t T, int64_t V, const int32_t *lang_ids,
                    const char *const *lang_codes, size_t n_lang, const int32_t *candidates, size_t n_cand,
                    tr_lang *out, size_t k, size_t *n_out, int64_t *frame, int *emitted);

#endif
