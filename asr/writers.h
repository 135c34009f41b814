/* writers.h - the output formats of `cochlea transcribe -f txt|srt|vtt|json|tsv`: a tr_transcript
 * (asr/transcript.h) printed to a FILE* the caller owns. The writers never print anything else
 * and allocate nothing.
 *
 * Rules shared by every format:
 *  - Output is always valid UTF-8: each maximal ill-formed subsequence of a string (Unicode's
 *    "maximal subpart" rule: a bad lead byte, a truncated sequence, an overlong form, a surrogate
 *    or a code point above U+10FFFF) is replaced by one U+FFFD.
 *  - Lines end with LF only ("\n"), also in SRT and WebVTT.
 *  - Times are printed from integer milliseconds ms = llround(t * 1000): round half away from
 *    zero on the double product, so 3723.4567 s gives 01:02:03,457 and 2.0625 s gives 2063 ms.
 *    JSON prints the same milliseconds as seconds with 3 decimals; probabilities are printed
 *    with 4 decimals from llround(p * 10000). No number goes through printf's %f, so the output
 *    does not depend on the C locale.
 *
 * Line formats (txt, srt, vtt, tsv) print one segment per line or cue, with its text "cleaned":
 * every run of spaces that contains at least one control character (TAB, CR, LF, any other
 * C0 control, DEL) becomes a single space, and leading and trailing spaces are removed. A
 * segment whose cleaned text is empty (NULL, "", only spaces or controls) is skipped. txt with
 * no segments at all (n_segments == 0) prints the cleaned whole text as one line instead.
 *  - txt: the cleaned text of each segment, one per line.
 *  - srt: SubRip: cues numbered from 1, "HH:MM:SS,mmm --> HH:MM:SS,mmm", the text, then a
 *    blank line (also after the last cue). Hours have at least two digits (more past 99 h).
 *  - vtt: WebVTT: "WEBVTT", a blank line, then cues "HH:MM:SS.mmm --> HH:MM:SS.mmm", the text
 *    and a blank line, without cue identifiers. The text escapes & < > as &amp; &lt; &gt; (so
 *    it never contains "-->").
 *    Cue times, srt and vtt alike: negative times count as 0; a cue starting before the
 *    previous printed cue starts at the previous cue's start (starts never decrease); a cue
 *    whose end is not after its start ends 1 ms after its start.
 *  - tsv: whisper.cpp's layout: the header "start\tend\ttext", then "START\tEND\tTEXT" per
 *    segment with integer milliseconds (negative times count as 0, no other adjustment).
 *  - json: one object, pretty-printed with two-space indentation, one array element per line
 *    (each segment's words nested on their own lines):
 *      source, duration, language, language_probs [{language, prob}], task, text,
 *      segments [{start, end, text, words [{word, start, end, prob}]}],
 *      tokens [{id, piece, start, end, prob}],
 *      timing {wall_s, load_s, rtf, windows}
 *    Strings escape '"', '\\' and control characters (\b \f \n \r \t, other C0 controls and
 *    DEL as \u00XX); everything else, UTF-8 included, is copied. A NULL string, an empty
 *    language or task code, and any NaN or infinite number are written as null. Numbers too
 *    large for 3 or 4 exact decimals (|v| * 10^dec >= 1e15) are printed as whole numbers.
 *    Segment times are the raw times (no cue adjustment). rtf = wall_s / duration (null
 *    unless duration > 0), 4 decimals. Segment words are words[word0 .. word1).
 *
 * Errors (checked before anything is written): NULL transcript or stream or an unknown format
 * give COCHLEA_EINVAL; a count > 0 with a NULL array, or a segment's word range outside the
 * words, gives COCHLEA_EFORMAT; for srt, vtt and tsv a segment time that is not finite or whose
 * magnitude exceeds TR_WRITE_MAX_TIME gives COCHLEA_ERANGE. A failed write gives COCHLEA_EIO
 * (output written so far stays). */
#ifndef COCHLEA_ASR_WRITERS_H
#define COCHLEA_ASR_WRITERS_H

#include <stdio.h>

#include "asr/transcript.h"

enum tr_format {
    TR_FORMAT_TXT = 0,
    TR_FORMAT_SRT,
    TR_FORMAT_VTT,
    TR_FORMAT_JSON,
    TR_FORMAT_TSV,
};

/* Largest |time| in seconds that srt, vtt and tsv accept (about 31 700 years). */
#define TR_WRITE_MAX_TIME 1e12

/* Parse a format name: "txt", "srt", "vtt", "json" or "tsv" (ASCII case ignored). Unknown or
 * NULL names give COCHLEA_EINVAL with a message listing the valid names. */
int tr_format_parse(const char *s, enum tr_format *f);

/* The format's name, which is also its usual file extension ("txt" ...), or NULL if f is not a
 * tr_format. */
const char *tr_format_name(enum tr_format f);

/* Write t to out in format f (rules above). Flushes out before returning COCHLEA_OK. */
int tr_write(const tr_transcript *t, enum tr_format f, FILE *out);

#endif
