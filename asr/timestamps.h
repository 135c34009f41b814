/* timestamps.h - token, word and subtitle-segment times from greedy CTC frame decisions
 * (issue 5, owsm-ctc.md §5.6).
 *
 * Input is one argmax decision per kept encoder frame, concatenated over the windows in time
 * order, with each frame's probability and start time. tr_build turns it into a tr_transcript
 * (asr/transcript.h):
 *
 * - tokens: runs of one id are merged (CTC collapse) and blanks dropped. A token starts at its
 *   first frame's time and ends frame_s after its last frame's time; its prob is the mean frame
 *   probability of the run. Pieces of the form <...> are special: they never go into words.
 * - words: a word starts at a U+2581 ("\xe2\x96\x81") in a piece or after a special token; a piece
 *   that is only U+2581 starts a word but adds no text. Characters of scripts written without
 *   spaces (Han, Hiragana, Katakana, Bopomofo, Thai, Lao, Khmer, Myanmar) are one word each,
 *   the token's time divided evenly among its characters (combining marks ride on the character
 *   before them; closing punctuation such as "。" or "," joins the word before it). A word's
 *   prob is the minimum prob of its tokens.
 * - segments: words accumulate greedily; a new segment starts before a word when the silence
 *   since the previous word is >= split_gap, when the previous word ends a sentence (. ? ! 。
 *   ？ ！ … and the like, closing quotes/brackets ignored) and the segment has >= min_chars
 *   characters, or when the word would make the segment longer than max_chars characters or
 *   max_duration seconds.
 * - text: words are joined as SentencePiece's decoder joins the pieces: a space before a word
 *   iff its first piece began with U+2581 (never at the start of a segment or of the text). So
 *   CJK characters are joined without spaces and the whole text equals the engine's
 *   text_nospecial (ctc_ids_to_text with nospecial = 1) for the same ids, except that runs of
 *   several U+2581 become a single space.
 *
 * Frame times for the engine's window layouts (asr.c make_plan): tr_layout_plan mirrors the
 * engine's plan; tr_layout_times gives position p of window w the time
 *   short form (one window, all positions): max(0, (p - 2) * frame_s)
 *   long form: (w * hop - pad) / sample_rate + (p - 2) * frame_s
 * (the legacy 2-frame shift: the position index includes the 2 prefix positions), clamped to
 * [0, duration] and made non-decreasing (with windows that are not a whole number of frames
 * long, e.g. 10 s, the kept frames of neighbouring windows overlap by a fraction of a frame; the
 * overlapping frames get the time of the frame before them). frame_s = hop_length * 8 / sample_rate (0.08 s). */
#ifndef COCHLEA_ASR_TIMESTAMPS_H
#define COCHLEA_ASR_TIMESTAMPS_H

#include <stddef.h>
#include <stdint.h>

#include "asr/transcript.h"

/* Kept frames, in time order. tr_build only reads it; tr_frames_gather fills one with
 * malloc'ed arrays (release with tr_frames_free). */
typedef struct tr_frames {
    int32_t *ids;    /* argmax token id of each frame */
    float *probs;    /* its posterior probability, exp(log-posterior), in [0, 1] */
    double *times;   /* the frame's start time in seconds, non-decreasing */
    size_t n;
    double frame_s;  /* frame duration in seconds (> 0): hop_length * 8 / sample_rate */
    double duration; /* seconds of audio: token ends are clamped to it; 0 = no clamping */
} tr_frames;

void tr_frames_free(tr_frames *f);

/* Segmentation options (tr_default_options gives the defaults in brackets). */
typedef struct tr_options {
    double split_gap;    /* start a segment after a silence of >= this many seconds [0.8]; 0 = never */
    int punct_split;     /* start a segment after sentence-ending punctuation [1] ... */
    size_t min_chars;    /* ... when the segment already has >= this many characters [0] */
    size_t max_chars;    /* at most this many characters per segment [42]; 0 = unlimited */
    double max_duration; /* at most this many seconds per segment [6]; 0 = unlimited */
} tr_options;

tr_options tr_default_options(void);

/* Build *out (zeroed first; release with transcript_free) from frames. pieces[id] is the piece
 * string of every id in [0, vocab); blank is the CTC blank id. out->duration is frames->duration;
 * source, lang, lang_probs, task and the timing fields are left empty for the caller.
 * Errors: COCHLEA_EINVAL (NULL argument, bad options, blank outside the vocabulary, a NULL
 * piece, a non-finite or decreasing time, a probability outside [0, 1]), COCHLEA_ERANGE (a frame
 * id outside [0, vocab)), COCHLEA_ENOMEM. On error *out is left empty. */
int tr_build(const tr_frames *frames, const tr_options *opt, const char *const *pieces, int64_t vocab,
             int32_t blank, tr_transcript *out);

/* ---- the engine's window layouts ------------------------------------------------------------ */

typedef struct tr_layout {
    int sample_rate;        /* 16000 */
    int hop_length;         /* feature hop in samples (160) */
    int64_t window_samples; /* samples per window (480000) */
    int64_t positions;      /* encoder positions per window: 2 prefix + speech frames (376) */
    size_t n_samples;       /* audio length in samples */
    int long_form;          /* 0: one window, every position kept */
    int64_t n_windows;
    int64_t hop, pad;       /* long form: window w covers samples from w * hop - pad */
    int64_t keep0, keep1;   /* positions kept in every window: [keep0, keep1) */
} tr_layout;

/* The layout asr.c's make_plan uses for n_samples of audio: short form when n_samples <=
 * window_samples, otherwise the legacy buffered long form with `context` seconds of context
 * (hop = int(sr * (window_s - 2 * context)), pad = int(sr * context), windows every hop over the
 * audio padded with pad zeros at both ends up to the first short one, keep [int(fps * context),
 * int(fps * window_s) - int(fps * context)) capped at positions). A negative context means the
 * default: min(4, window_s * 4 / 30) s. COCHLEA_EINVAL for bad sizes or a context outside
 * [0, window_s / 2). */
int tr_layout_plan(int sample_rate, int hop_length, int64_t window_samples, int64_t positions, size_t n_samples,
                   double context, tr_layout *out);

/* hop_length * 8 / sample_rate. */
double tr_layout_frame_s(const tr_layout *l);
/* n_samples / sample_rate. */
double tr_layout_duration(const tr_layout *l);
/* Kept frames: n_windows * (keep1 - keep0) (0 if the layout is invalid or that overflows). */
size_t tr_layout_n_kept(const tr_layout *l);

/* times[i] for the i-th kept frame (window-major), i < tr_layout_n_kept(l) = n. */
int tr_layout_times(const tr_layout *l, double *times, size_t n);

/* Gather the kept frames of a run: pos_ids and pos_probs hold every position of every window
 * (n_pos = n_windows * positions, as cochlea_asr_frame_ids returns them); out gets the kept
 * frames' ids, probabilities and times, frame_s and duration (malloc'ed; tr_frames_free). */
int tr_frames_gather(const tr_layout *l, const int32_t *pos_ids, const float *pos_probs, size_t n_pos,
                     tr_frames *out);

/* probs[i] = exp(logpost[i * vocab + ids[i]]) for n positions of log-posteriors [n, vocab] (as
 * cochlea_asr_posteriors returns them). COCHLEA_ERANGE for an id outside [0, vocab). */
int tr_argmax_probs(const float *logpost, const int32_t *ids, size_t n, int64_t vocab, float *probs);

#endif
