/* error.h - internal error reporting and logging (design.md: errors and logging). */
#ifndef COCHLEA_ERROR_H
#define COCHLEA_ERROR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "cochlea.h"

#if defined(__GNUC__)
#define COCHLEA_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define COCHLEA_PRINTF(a, b)
/* Grow a realloc'ed array of elem-sized items (capacity doubling from 16) so that it holds at
 * least `need` items; returns 0, or -1 on overflow or allocation failure (array unchanged). */
int mem_grow(void **arr, int64_t *cap, int64_t need, size_t elem);

#endif

/* Record a detailed thread-local message for `code` and return `code`, so callers can write
 * `return err_set(COCHLEA_EFORMAT, "%s: bad magic", path);`. */
int err_set(int code, const char *fmt, ...) COCHLEA_PRINTF(2, 3);

/* Prefix the current thread-local message with "prefix: " (used to add a file name or a
 * caller's context after a lower layer failed). Returns `code`. */
int err_prefix(int code, const char *fmt, ...) COCHLEA_PRINTF(2, 3);

/* Send one message to the installed log callback if `level` is enabled. */
void log_write(enum cochlea_log_level level, const char *fmt, ...) COCHLEA_PRINTF(2, 3);
int log_enabled(enum cochlea_log_level level);

#define LOG_ERROR(...) log_write(COCHLEA_LOG_ERROR, __VA_ARGS__)
#define LOG_WARN(...) log_write(COCHLEA_LOG_WARN, __VA_ARGS__)
#define LOG_INFO(...) log_write(COCHLEA_LOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) log_write(COCHLEA_LOG_DEBUG, __VA_ARGS__)

/* Overflow-checked size arithmetic: return 0 and store the result, or return -1 on overflow. */
static inline int size_mul(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}

static inline int size_add(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a)
        return -1;
    *out = a + b;
    return 0;
}

static inline int u64_mul(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a != 0 && b > UINT64_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}

static inline int u64_add(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b > UINT64_MAX - a)
        return -1;
    *out = a + b;
    return 0;
}

/* Grow a realloc'ed array of elem-sized items (capacity doubling from 16) so that it holds at
 * least `need` items; returns 0, or -1 on overflow or allocation failure (array unchanged). */
int mem_grow(void **arr, int64_t *cap, int64_t need, size_t elem);

#endif
