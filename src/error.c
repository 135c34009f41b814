/* error.c - thread-local error messages, error strings and the log callback. */
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_MSG_MAX 1024

static _Thread_local char err_msg[ERR_MSG_MAX];

static cochlea_log_fn log_fn = NULL;
static void *log_user = NULL;
static enum cochlea_log_level log_max = COCHLEA_LOG_WARN;

const char *cochlea_strerror(int code)
{
    switch (code) {
    case COCHLEA_OK: return "success";
    case COCHLEA_EINVAL: return "invalid argument";
    case COCHLEA_EIO: return "input/output error";
    case COCHLEA_EFORMAT: return "malformed data";
    case COCHLEA_ENOMEM: return "out of memory";
    case COCHLEA_EUNSUPPORTED: return "unsupported";
    case COCHLEA_ERANGE: return "value out of range";
    case COCHLEA_EINTERNAL: return "internal error";
    case COCHLEA_ECANCELED: return "canceled";
    default: return "unknown error";
    }
}

const char *cochlea_last_error(void)
{
    return err_msg;
}

void cochlea_clear_error(void)
{
    err_msg[0] = '\0';
}

int err_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    return code;
}

int err_prefix(int code, const char *fmt, ...)
{
    char prefix[512];
    char old[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err_msg, sizeof old);
    if (old[0])
        snprintf(err_msg, sizeof err_msg, "%s: %s", prefix, old);
    else
        snprintf(err_msg, sizeof err_msg, "%s: %s", prefix, cochlea_strerror(code));
    return code;
}

void cochlea_log_set(cochlea_log_fn fn, enum cochlea_log_level max_level, void *user)
{
    log_fn = fn;
    log_user = user;
    log_max = max_level;
}

int log_enabled(enum cochlea_log_level level)
{
    return log_fn != NULL && level <= log_max;
}

void log_write(enum cochlea_log_level level, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_fn(level, buf, log_user);
}

int mem_grow(void **arr, int64_t *cap, int64_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    int64_t nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    size_t bytes;
    if (size_mul((size_t)nc, elem, &bytes))
        return -1;
    void *p = realloc(*arr, bytes);
    if (!p)
        return -1;
    *arr = p;
    *cap = nc;
    return 0;
}
