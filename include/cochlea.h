/* cochlea.h - the public C API of Cochlea, a C toolchain for open speech foundation models.
 *
 * Conventions (see docs in the repository):
 *  - Every function that can fail returns int: COCHLEA_OK (0) or a negative COCHLEA_E* code.
 *  - cochlea_strerror(code) gives a fixed string; cochlea_last_error() gives the detailed,
 *    thread-local message of the last failure on the calling thread.
 *  - The library never exits, aborts or writes to stdout/stderr; it logs through a callback.
 *  - Every object that is created has a matching *_free function; ownership is documented
 *    at each function.
 */
#ifndef COCHLEA_H
#define COCHLEA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define COCHLEA_API __attribute__((visibility("default")))
#else
#define COCHLEA_API
#endif

/* ---- errors ---------------------------------------------------------------------------- */

enum cochlea_error {
    COCHLEA_OK = 0,
    COCHLEA_EINVAL = -1,       /* invalid argument */
    COCHLEA_EIO = -2,          /* input/output error (missing, unreadable file) */
    COCHLEA_EFORMAT = -3,      /* malformed or corrupt file/stream */
    COCHLEA_ENOMEM = -4,       /* out of memory */
    COCHLEA_EUNSUPPORTED = -5, /* valid but unsupported (type, version, feature) */
    COCHLEA_ERANGE = -6,       /* value out of range, or size arithmetic overflow */
    COCHLEA_EINTERNAL = -7,    /* a backend failed unexpectedly */
    COCHLEA_ECANCELED = -8,    /* stopped by the caller's progress callback */
};

/* A fixed, static description of an error code (never NULL). */
COCHLEA_API const char *cochlea_strerror(int code);

/* The detailed message of the last error raised on this thread ("" if none). The pointer stays
 * valid until the next failing call on the same thread. */
COCHLEA_API const char *cochlea_last_error(void);

/* Clear the calling thread's last error message. */
COCHLEA_API void cochlea_clear_error(void);

/* ---- logging --------------------------------------------------------------------------- */

enum cochlea_log_level {
    COCHLEA_LOG_ERROR = 0,
    COCHLEA_LOG_WARN = 1,
    COCHLEA_LOG_INFO = 2,
    COCHLEA_LOG_DEBUG = 3,
};

/* Receives one complete message (no trailing newline). Called from any library thread. */
typedef void (*cochlea_log_fn)(enum cochlea_log_level level, const char *msg, void *user);

/* Install a log callback (NULL: discard all messages, the default) and the most verbose level
 * it receives. Process-wide; set it before creating models. */
COCHLEA_API void cochlea_log_set(cochlea_log_fn fn, enum cochlea_log_level max_level, void *user);

/* ---- progress ------------------------------------------------------------------------ */

/* Long operations report progress through this callback: `done` of `total` units (for example
 * samples or windows) are finished. Return nonzero to ask the operation to stop early; it then
 * returns COCHLEA_ECANCELED. */
typedef int (*cochlea_progress_fn)(uint64_t done, uint64_t total, void *user);

/* ---- version and system ---------------------------------------------------------------- */

/* Library version string, e.g. "0.1.0". */
COCHLEA_API const char *cochlea_version(void);

/* A one-line description of the compute features found and built in, e.g.
 * "AVX512F=1 AVX512_BF16=1 AMX=0 | BLAS=OpenBLAS 0.3.21 | oneDNN=2.6.3". Static storage. */
COCHLEA_API const char *cochlea_system_info(void);

/* ---- tensor element types (values are ggml/GGUF type ids) ------------------------------ */

enum cochlea_type {
    COCHLEA_TYPE_F32 = 0,
    COCHLEA_TYPE_F16 = 1,
    COCHLEA_TYPE_Q8_0 = 8,
    COCHLEA_TYPE_I8 = 24,
    COCHLEA_TYPE_I16 = 25,
    COCHLEA_TYPE_I32 = 26,
    COCHLEA_TYPE_BF16 = 30,
};

/* Compute precision of a context's matrix products. F32 is the reference path. */
enum cochlea_precision {
    COCHLEA_PRECISION_F32 = 0,  /* fp32 everywhere */
    COCHLEA_PRECISION_BF16 = 1, /* bf16 GEMM inputs, fp32 accumulation (AVX512-BF16/AMX) */
    COCHLEA_PRECISION_INT8 = 2, /* int8 weights and activations where supported, else bf16 */
};

/* ==== audio: decoding, resampling, log-mel features (frontend/) =========================== */

/* Sample formats of headerless raw input (cochlea_audio_params.raw_format). */
enum cochlea_raw_format {
    COCHLEA_RAW_NONE = 0, /* not raw: the container and codec are detected from the data */
    COCHLEA_RAW_S8,
    COCHLEA_RAW_U8,
    COCHLEA_RAW_S16,
    COCHLEA_RAW_S24,
    COCHLEA_RAW_S32,
    COCHLEA_RAW_F32,
    COCHLEA_RAW_F64,
    COCHLEA_RAW_ULAW,
    COCHLEA_RAW_ALAW,
};

/* How audio is read. Every format libsndfile reads is accepted (WAV incl. WAVE_FORMAT_EXTENSIBLE,
 * FLAC, OGG/Vorbis, Opus, MP3 where the library has it, AIFF, AU, CAF, W64, ...). Integer samples
 * become float in [-1, 1) (int / 2^(bits-1)); float samples pass through unchanged. NaN or Inf
 * samples are rejected (COCHLEA_EFORMAT naming the frame), never silently replaced. */
typedef struct cochlea_audio_params {
    int sample_rate;                    /* output rate in Hz, resampled with soxr HQ (16000) */
    int channel;                        /* -1: average all channels (default); N >= 0: channel N */
    enum cochlea_raw_format raw_format; /* COCHLEA_RAW_NONE (default) or the raw sample format */
    int raw_sample_rate;                /* raw input only: sample rate in Hz */
    int raw_channels;                   /* raw input only: interleaved channels */
    int raw_big_endian;                 /* raw input only: 1 for big-endian samples (default 0) */
} cochlea_audio_params;

COCHLEA_API cochlea_audio_params cochlea_audio_default_params(void);

/* A pull reader: decodes a file block by block and resamples on the fly, so memory use does not
 * grow with the file's length. */
typedef struct cochlea_audio cochlea_audio;

/* Open `path` ("-" reads standard input; a pipe is spooled to an unlinked temporary file first
 * because most containers need seeking). Source sample rates outside [1000, 768000] Hz and more
 * than 256 channels are rejected (COCHLEA_ERANGE). On success *out is owned by the caller and
 * released with cochlea_audio_close. */
COCHLEA_API int cochlea_audio_open(const char *path, const cochlea_audio_params *params, cochlea_audio **out);

/* Read up to `max` mono samples at the output rate into dst. *n_read < max only at the end of the
 * stream; 0 means the stream is finished. A truncated or corrupt file fails here with a message
 * naming the file. */
COCHLEA_API int cochlea_audio_read(cochlea_audio *a, float *dst, size_t max, size_t *n_read);

typedef struct cochlea_audio_info {
    int source_rate;      /* Hz */
    int source_channels;
    int64_t source_frames; /* frames at the source rate, -1 if the container does not say */
    const char *format;   /* container and codec, e.g. "WAV PCM_16" (valid while the reader lives) */
} cochlea_audio_info;

COCHLEA_API void cochlea_audio_get_info(const cochlea_audio *a, cochlea_audio_info *info);
COCHLEA_API void cochlea_audio_close(cochlea_audio *a);

/* Decode and resample a whole file. On success *samples (owned by the caller, released with
 * cochlea_audio_samples_free) holds *n_samples mono samples at params->sample_rate. */
COCHLEA_API int cochlea_audio_load(const char *path, const cochlea_audio_params *params, float **samples,
                                   size_t *n_samples);
COCHLEA_API void cochlea_audio_samples_free(float *samples);

/* Log-mel features as ESPnet's DefaultFrontend + GlobalMVN compute them (owsm-ctc.md §1):
 * STFT (n_fft 512, periodic Hann 400 centred, hop 160, reflect padding n_fft/2), power spectrum,
 * mel filterbank, ln(max(mel, 1e-10)), then (x - mean) / std when MVN statistics are given.
 * A signal of n samples gives 1 + n / hop frames; fewer than n_fft/2 + 1 samples is an error, as it
 * is in torch.stft. Frames are rows of n_mels floats. */
typedef struct cochlea_fbank_params {
    int sample_rate;       /* 16000 */
    int n_fft;             /* 512 */
    int win_length;        /* 400 */
    int hop_length;        /* 160 */
    int n_mels;            /* 80 (128 for OWSM-CTC v4) */
    float fmin;            /* 0 Hz; Slaney filterbank only */
    float fmax;            /* 0: sample_rate / 2; Slaney filterbank only */
    const float *melmat;   /* NULL: librosa's Slaney filterbank computed in C. Otherwise a
                              (n_fft/2 + 1) x n_mels row-major matrix (the model's
                              frontend.logmel.melmat); copied at create time */
    const float *mvn_mean; /* n_mels values, or NULL for no normalisation; copied */
    const float *mvn_std;  /* n_mels values (> 0), required with mvn_mean; copied */
} cochlea_fbank_params;

COCHLEA_API cochlea_fbank_params cochlea_fbank_default_params(void);

/* A feature extractor; one per thread (it holds its own FFT plan and buffers). */
typedef struct cochlea_fbank cochlea_fbank;

COCHLEA_API int cochlea_fbank_create(const cochlea_fbank_params *params, cochlea_fbank **out);
COCHLEA_API void cochlea_fbank_free(cochlea_fbank *fb);
COCHLEA_API int cochlea_fbank_n_mels(const cochlea_fbank *fb);
/* Frames produced for n samples: 1 + n / hop, or 0 when n is too short. */
COCHLEA_API size_t cochlea_fbank_n_frames(const cochlea_fbank *fb, size_t n_samples);

/* Whole-signal features: writes *n_frames = cochlea_fbank_n_frames(n) rows into feats, which
 * holds max_frames rows (COCHLEA_ERANGE if too few). Samples must be finite. Independent of any
 * stream in progress. */
COCHLEA_API int cochlea_fbank_compute(cochlea_fbank *fb, const float *samples, size_t n, float *feats,
                                      size_t max_frames, size_t *n_frames);

/* Streaming: push samples in any pieces, pull the frames that are complete, call finish after
 * the last sample, then pull the remaining frames. The frames are bit-identical to
 * cochlea_fbank_compute on the concatenated signal. reset starts a new stream. */
COCHLEA_API void cochlea_fbank_reset(cochlea_fbank *fb);
COCHLEA_API int cochlea_fbank_push(cochlea_fbank *fb, const float *samples, size_t n);
COCHLEA_API int cochlea_fbank_finish(cochlea_fbank *fb);
COCHLEA_API int cochlea_fbank_pull(cochlea_fbank *fb, float *feats, size_t max_frames, size_t *n_frames);

/* Read ESPnet's feats_stats.npz (count, sum, sum_square) and derive GlobalMVN's
 * mean = sum / count and std = sqrt(max(sum_square / count - mean^2, 1e-20)) into mean[] and
 * stddev[], which hold max_mels values; *n_mels receives the statistics' dimension. */
COCHLEA_API int cochlea_mvn_stats_load(const char *npz_path, float *mean, float *stddev, int max_mels,
                                       int *n_mels);

/* ==== end of audio ======================================================================== */

/* ==== models ============================================================================== */
/* A model file (GGUF) opened read-only and memory-mapped: weights are used in place, so loading
 * a 4 GB model costs little memory until it runs. One model can serve many contexts (each with
 * its own threads and buffers) at once. */
typedef struct cochlea_model cochlea_model;
/* Open and validate `path` (every hyperparameter, tensor name, shape and type is checked; a
 * truncated or corrupt file gives COCHLEA_EFORMAT naming the file and the tensor or key). The
 * architecture (general.architecture) must be one this build runs: "owsm_ctc". On success *out
 * is owned by the caller and released with cochlea_model_free, after every context made from
 * it. */
COCHLEA_API int cochlea_model_load(const char *path, cochlea_model **out);
COCHLEA_API void cochlea_model_free(cochlea_model *model);
/* general.architecture of the model, e.g. "owsm_ctc" (static while the model lives). */
COCHLEA_API const char *cochlea_model_arch(const cochlea_model *model);

/* ==== speech recognition and translation with OWSM-CTC (asr/) ============================= */
typedef struct cochlea_asr cochlea_asr;
typedef struct cochlea_asr_params {
    int n_threads;                     /* 0: every online CPU (default) */
    enum cochlea_precision precision;  /* COCHLEA_PRECISION_F32 (default), BF16 or INT8 */
    int batch;                         /* 30-s windows per forward pass (default 1) */
} cochlea_asr_params;
COCHLEA_API cochlea_asr_params cochlea_asr_default_params(void);
/* A recognition context on `model` (an "owsm_ctc" model, else COCHLEA_EINVAL). It owns its
 * threads and buffers (about 0.6 GB per window of batch for the 1B model); use one per thread. */
COCHLEA_API int cochlea_asr_create(const cochlea_model *model, const cochlea_asr_params *params,
                                   cochlea_asr **out);
COCHLEA_API void cochlea_asr_free(cochlea_asr *asr);

/* What to decode. */
typedef struct cochlea_asr_options {
    /* source language: "eng" or "<eng>"; NULL, "" or "auto" decodes with <nolang> (the model
     * then emits the language it hears as its first label) */
    const char *lang;
    /* "asr" (default, NULL) or a translation target "st_deu" / "<st_deu>" */
    const char *task;
    /* previous-text prompt, tokenised with the model's SentencePiece model; NULL or "": <na> */
    const char *prompt;
    /* audio longer than one window: seconds of context on each side of the legacy ESPnet
     * long-form slicing (owsm-ctc.md §5.6); negative (the default): 4 s for 30 s windows, 2/15 of
     * the window for shorter ones (0.8 s for a 6 s window) */
    float context;
    /* Decoding (README "Beam search and language model"). beam_size 1: greedy CTC (ESPnet's);
     * > 1: CTC prefix beam search with that many prefixes, scored with the token n-gram language
     * model in use (the model file's embedded one, or cochlea_asr_load_lm's) times lm_weight plus
     * insertion_bonus per piece; 0 (default): the embedded LM's beam size when an LM is in use,
     * else 1. lm_weight / insertion_bonus NaN (default): the model's embedded values, else
     * COCHLEA_ASR_LM_WEIGHT / COCHLEA_ASR_LM_BONUS when an LM is in use (bonus 0 without). no_lm:
     * beam search without any language model. Start from cochlea_asr_default_options(). */
    int beam_size;
    float lm_weight, insertion_bonus;
    int no_lm;
    int keep_posteriors; /* keep the CTC log-posteriors (cochlea_asr_posteriors) */
    int keep_encoder;    /* keep the encoder output (cochlea_asr_encoder_output) */
    cochlea_progress_fn progress; /* called after each batch of windows (may be NULL) */
    void *progress_user;
} cochlea_asr_options;
COCHLEA_API cochlea_asr_options cochlea_asr_default_options(void);
#define COCHLEA_ASR_LM_BEAM 8
#define COCHLEA_ASR_LM_WEIGHT 0.5f
#define COCHLEA_ASR_LM_BONUS 1.0f

/* Use the ARPA language model at path (words: the model's pieces, "<s>", "</s>", "<unk>";
 * sentences "<s> <lang> pieces... </s>") instead of the model's embedded one, for the runs of
 * this context; NULL goes back to the embedded one. N-grams with words that are not pieces of the
 * model are left out; COCHLEA_EFORMAT (naming file and line) for a malformed file. */
COCHLEA_API int cochlea_asr_load_lm(cochlea_asr *asr, const char *path);
/* 0: no language model, 1: the model's embedded one, 2: one loaded with cochlea_asr_load_lm. */
COCHLEA_API int cochlea_asr_has_lm(const cochlea_asr *asr);

/* Recognise mono PCM at the model's sample rate (16 kHz; cochlea_audio_* resamples). Audio of
 * at most one window (30 s) is zero-padded to one window and every encoder position is decoded
 * (ESPnet's Speech2TextGreedySearch). Longer audio is cut into overlapping windows with
 * options->context seconds of zero padding at both ends and the middle of each window kept
 * (ESPnet's legacy batch_decode); the first window gets the prompt, the others <na>. Results are
 * read with the getters below and stay valid until the next run or cochlea_asr_free. */
COCHLEA_API int cochlea_asr_run(cochlea_asr *asr, const float *pcm, size_t n_samples,
                                const cochlea_asr_options *options);
/* The same on an audio reader (cochlea_audio_open with the model's sample rate), streamed: the
 * windows are built as the samples are read, so memory does not grow with the file's length
 * (only the per-position results do, about 3 KB per 30 s window, unless posteriors or encoder
 * output are kept). The results equal cochlea_asr_run on the whole signal. */
COCHLEA_API int cochlea_asr_run_audio(cochlea_asr *asr, cochlea_audio *reader, const cochlea_asr_options *options);
/* Audio samples decoded by the last run (at the model's rate). */
COCHLEA_API size_t cochlea_asr_n_samples(const cochlea_asr *asr);
/* The same on one window of normalised log-mel features (n_frames rows of n_mels floats; n_frames
 * must be the window's frame count, 3001 for 30 s), for parity checks against other frontends. */
COCHLEA_API int cochlea_asr_run_features(cochlea_asr *asr, const float *feats, size_t n_frames, int n_mels,
                                         const cochlea_asr_options *options);

/* Shapes: windows decoded by the last run, encoder positions per window (2 prefix positions + the
 * subsampled frames: 376 for 30 s), vocabulary size, encoder width. */
COCHLEA_API int cochlea_asr_n_windows(const cochlea_asr *asr);
COCHLEA_API int cochlea_asr_n_positions(const cochlea_asr *asr);
COCHLEA_API int cochlea_asr_vocab_size(const cochlea_asr *asr);
COCHLEA_API int cochlea_asr_d_model(const cochlea_asr *asr);
/* Argmax token of every position of every window (windows x positions). */
COCHLEA_API const int32_t *cochlea_asr_frame_ids(const cochlea_asr *asr, size_t *n);
/* The CTC posterior probability of each of those argmax tokens (windows x positions), for
 * confidences and timestamps. */
COCHLEA_API const float *cochlea_asr_frame_probs(const cochlea_asr *asr, size_t *n);
/* The decoded token ids: repeats merged, blanks dropped, <lang>/<task> symbols kept. */
COCHLEA_API const int32_t *cochlea_asr_tokens(const cochlea_asr *asr, size_t *n);
/* ESPnet's `text` (every piece, e.g. "<eng><asr>hello world") and `text_nospecial` (pieces of
 * the form <...> dropped): UTF-8, owned by asr. */
COCHLEA_API const char *cochlea_asr_text(const cochlea_asr *asr);
COCHLEA_API const char *cochlea_asr_text_nospecial(const cochlea_asr *asr);
/* CTC log-posteriors (windows x positions x vocab) or encoder output (windows x positions x d)
 * of the last run, when the options asked to keep them; NULL otherwise. */
COCHLEA_API const float *cochlea_asr_posteriors(const cochlea_asr *asr, size_t *n);
COCHLEA_API const float *cochlea_asr_encoder_output(const cochlea_asr *asr, size_t *n);
/* The piece of a token id (NULL if out of range) and the id of a piece such as "<eng>" (-1). */
COCHLEA_API const char *cochlea_asr_token_piece(const cochlea_asr *asr, int32_t id);
COCHLEA_API int32_t cochlea_asr_token_id(const cochlea_asr *asr, const char *piece);
/* Samples per window at the model's rate (480000) and that rate (16000). */
COCHLEA_API size_t cochlea_asr_window_samples(const cochlea_asr *asr);
COCHLEA_API int cochlea_asr_sample_rate(const cochlea_asr *asr);
/* The log-mel frontend parameters of the model (melmat and MVN pointers valid while asr lives). */
COCHLEA_API cochlea_fbank_params cochlea_asr_fbank_params(const cochlea_asr *asr);


/* ==== neural speech codec: SECodec (codec/) ============================================== */
/* A SECodec model (general.architecture "secodec", docs/secodec-model.md): a SEANet encoder and
 * decoder (secodec.md §1) and up to 32 levels of residual codebooks, built by structural-entropy
 * minimisation (quantizer "se": tokens by the node-game rule of secodec.md §2.7) or converted
 * from a Euclidean RVQ (quantizer "nearest"). A model without codebooks ("bare") can encode
 * latents only (for cochlea codec build-codebook). */
typedef struct cochlea_codec cochlea_codec;
typedef struct cochlea_codec_params {
    int n_threads;                    /* 0: every online CPU (default) */
    enum cochlea_precision precision; /* matrix products: COCHLEA_PRECISION_F32 (default) or BF16 */
    /* Long signals run through the network in chunks so memory stays bounded: each pass covers
     * chunk_frames frames (default 1000 = 20 s at 50 Hz) plus overlap_frames on each side (default
     * 50 = 1 s) that are computed and thrown away, so chunk seams are close to whole-signal
     * results. A signal of at most chunk_frames + overlap_frames frames is one pass, exactly the
     * whole-signal computation. */
    int chunk_frames;
    int overlap_frames;
} cochlea_codec_params;
COCHLEA_API cochlea_codec_params cochlea_codec_default_params(void);
/* Open and validate a codec model file. On success *out is owned by the caller. */
COCHLEA_API int cochlea_codec_load(const char *path, const cochlea_codec_params *params, cochlea_codec **out);
COCHLEA_API void cochlea_codec_free(cochlea_codec *codec);
/* Sample rate (16000), samples per frame (hop, 320), latent width D, levels (0: bare network),
 * codebook size K_l of level l (0 for a bad level), and "se", "nearest" or "" (bare). */
COCHLEA_API int cochlea_codec_sample_rate(const cochlea_codec *codec);
COCHLEA_API int cochlea_codec_hop(const cochlea_codec *codec);
COCHLEA_API int cochlea_codec_dimension(const cochlea_codec *codec);
COCHLEA_API int cochlea_codec_n_levels(const cochlea_codec *codec);
COCHLEA_API int cochlea_codec_codebook_size(const cochlea_codec *codec, int level);
COCHLEA_API const char *cochlea_codec_quantizer(const cochlea_codec *codec);
/* 64-bit fingerprint of everything decoding depends on (decoder weights, codebooks, their
 * shapes and hyperparameters): a .sec file records it and decoding with another model is
 * refused. */
COCHLEA_API uint64_t cochlea_codec_fingerprint(const cochlea_codec *codec);
/* Frames for n samples: ceil(n / hop). */
COCHLEA_API size_t cochlea_codec_n_frames(const cochlea_codec *codec, size_t n_samples);

/* Encoder latents of mono PCM at the codec's rate: z holds n_frames x D floats. */
COCHLEA_API int cochlea_codec_encode_latents(cochlea_codec *codec, const float *pcm, size_t n_samples, float *z);
/* Tokens of the first n_levels levels (1..cochlea_codec_n_levels): codes holds n_frames x
 * n_levels int32, time-major (the levels of frame 0, then frame 1, ...). nearest = 1 uses the
 * nearest codeword at every level instead of the model's rule (for comparison). */
COCHLEA_API int cochlea_codec_encode(cochlea_codec *codec, const float *pcm, size_t n_samples, int n_levels,
                                     int nearest, int32_t *codes);
/* Audio from tokens: codes as cochlea_codec_encode writes them (n_frames x n_levels, levels
 * 0..n_levels-1, each < K_l; COCHLEA_ERANGE otherwise); pcm receives n_samples samples, at most
 * n_frames * hop (the signal is cut to the original length). */
COCHLEA_API int cochlea_codec_decode(cochlea_codec *codec, const int32_t *codes, size_t n_frames, int n_levels,
                                     float *pcm, size_t n_samples);

/* Streaming, for signals of any length in bounded memory. Encoding pulls audio from `reader`
 * (opened at the codec's rate) and hands each finished run of frames' codes to `on_codes`
 * (codes n_frames x n_levels); the total sample count is stored in *n_samples. Decoding pulls
 * codes with `next_codes` (it fills up to max_frames frames and sets *n_frames; 0 means the end)
 * and hands audio to `on_pcm`, n_samples in all. A callback returning nonzero stops the run with
 * that code. The results equal the whole-signal functions above. */
typedef int (*cochlea_codec_codes_fn)(const int32_t *codes, size_t n_frames, void *user);
typedef int (*cochlea_codec_next_codes_fn)(int32_t *codes, size_t max_frames, size_t *n_frames, void *user);
typedef int (*cochlea_codec_pcm_fn)(const float *pcm, size_t n, void *user);
COCHLEA_API int cochlea_codec_encode_audio(cochlea_codec *codec, cochlea_audio *reader, int n_levels, int nearest,
                                           cochlea_codec_codes_fn on_codes, void *user, uint64_t *n_samples,
                                           cochlea_progress_fn progress, void *progress_user);
COCHLEA_API int cochlea_codec_decode_stream(cochlea_codec *codec, int n_levels, uint64_t n_samples,
                                            cochlea_codec_next_codes_fn next_codes, cochlea_codec_pcm_fn on_pcm,
                                            void *user, cochlea_progress_fn progress, void *progress_user);

#ifdef __cplusplus
}
#endif

#endif /* COCHLEA_H */
