/* transcript.h - a decoded recording with times and confidences: what asr/timestamps.c builds
 * from CTC frame decisions and what asr/writers.c prints (txt, srt, vtt, json, tsv).
 *
 * Times are seconds from the start of the input audio (double). Text is UTF-8. Every array and
 * string is owned by the transcript and released with transcript_free. */
#ifndef COCHLEA_ASR_TRANSCRIPT_H
#define COCHLEA_ASR_TRANSCRIPT_H

#include <stddef.h>
#include <stdint.h>

/* One emitted CTC label (after merging repeats and dropping blanks). */
typedef struct tr_token {
    int32_t id;     /* model token id */
    char *piece;    /* its piece string as in the token list, e.g. "\xe2\x96\x81hello" or "<eng>" */
    double start;   /* time of the first frame of the label's spike */
    double end;     /* end of the last frame of the spike (start + n_frames * frame_s) */
    float prob;     /* mean posterior probability of the label over its spike frames, in [0, 1] */
    int special;    /* 1 for <...> symbols (language, task), which text output omits */
} tr_token;

/* A word: the non-special tokens from one "\xe2\x96\x81"-prefixed piece up to the next; for
 * scripts written without spaces (CJK, Thai...) every character is its own word. */
typedef struct tr_word {
    char *text;     /* detokenised, no leading space */
    double start, end;
    float prob;     /* confidence: the minimum token prob of the word */
    size_t tok0, tok1; /* its tokens [tok0, tok1) in tr_transcript.tokens */
} tr_word;

/* A subtitle segment: consecutive words. */
typedef struct tr_segment {
    char *text;     /* the words joined as the detokeniser joins them */
    double start, end;
    size_t word0, word1; /* its words [word0, word1) */
} tr_segment;

/* A language candidate of language identification. */
typedef struct tr_lang {
    char code[16];  /* ISO 639-3 code as in the model, e.g. "eng" */
    float prob;
} tr_lang;

typedef struct tr_transcript {
    char *source;       /* input name (file path or "-") */
    double duration;    /* seconds of audio */
    char lang[16];      /* decoded or given language code ("" if unknown) */
    const char *lang_source; /* how lang was found (static string): "given", "emitted" (the first
                                language token of the output) or "posteriors" (none emitted: the
                                most probable language at the language position); NULL: unknown */
    tr_lang *lang_probs; /* top candidates, most probable first (may be empty) */
    size_t n_lang_probs;
    char task[32];      /* "asr" or "st_deu" ... */
    char *text;         /* the whole text (text_nospecial) */
    tr_token *tokens;
    size_t n_tokens;
    tr_word *words;
    size_t n_words;
    tr_segment *segments;
    size_t n_segments;
    /* timing stats for JSON/summary */
    double wall_s, load_s;
    int n_windows;
} tr_transcript;

void transcript_free(tr_transcript *t);

#endif
