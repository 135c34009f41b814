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

#ifdef __cplusplus
}
#endif

#endif /* COCHLEA_H */
