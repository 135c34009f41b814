/* cli_util.c - error printing, common options and logging for the cochlea program. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("cochlea: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int cli_lib_error(int code, const char *what)
{
    const char *msg = cochlea_last_error();
    if (!msg || !msg[0])
        msg = cochlea_strerror(code);
    if (what && what[0])
        return cli_error("%s: %s", what, msg);
    return cli_error("%s", msg);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fputs("cochlea: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(run 'cochlea help %s' for usage)\n", cmd);
    return 2;
}

int cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

void cli_print_usage(const cli_command *cmd)
{
    fputs(cmd->usage, stdout);
}

int cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi) {
        cli_usage_error(cmd, "%s expects an integer from %ld to %ld, got '%s'", opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_float(const char *cmd, const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0') {
        cli_usage_error(cmd, "%s expects a number, got '%s'", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Value of an option written "--opt VALUE" or "--opt=VALUE"; NULL if missing (message printed). */
static const char *opt_value(const char *cmd, int argc, char **argv, int *i, const char *eq)
{
    if (eq)
        return eq + 1;
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "option %s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cli_parse_common(cli_common *c, const char *cmd, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
    size_t n = eq ? (size_t)(eq - a) : strlen(a);
#define IS(s) (strlen(s) == n && strncmp(a, s, n) == 0)
    if (IS("-m") || IS("--model")) {
        const char *v = opt_value(cmd, argc, argv, i, eq);
        if (!v)
            return -1;
        c->model = v;
        return 1;
    }
    if (IS("-o") || IS("--output")) {
        const char *v = opt_value(cmd, argc, argv, i, eq);
        if (!v)
            return -1;
        c->output = v;
        return 1;
    }
    if (IS("-t") || IS("--threads")) {
        long t;
        const char *v = opt_value(cmd, argc, argv, i, eq);
        if (!v || cli_parse_int(cmd, "--threads", v, 0, 1024, &t))
            return -1;
        c->threads = (int)t;
        return 1;
    }
    if (IS("-q") || IS("--quiet")) {
        c->quiet = 1;
        return 1;
    }
    if (IS("-v") || IS("--verbose")) {
        c->verbose++;
        return 1;
    }
#undef IS
    return 0;
}

static void log_to_stderr(enum cochlea_log_level level, const char *msg, void *user)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    (void)user;
    fprintf(stderr, "cochlea: %s: %s\n", names[level], msg);
}

void cli_setup_logging(const cli_common *c)
{
    enum cochlea_log_level lvl = COCHLEA_LOG_WARN;
    if (c->quiet)
        lvl = COCHLEA_LOG_ERROR;
    else if (c->verbose >= 2)
        lvl = COCHLEA_LOG_DEBUG;
    else if (c->verbose == 1)
        lvl = COCHLEA_LOG_INFO;
    cochlea_log_set(log_to_stderr, lvl, NULL);
}

int cli_write_npy(const char *path, const float *data, int ndim, const size_t *shape)
{
    return cli_write_npy_typed(path, "<f4", data, sizeof(float), ndim, shape);
}

int cli_write_npy_typed(const char *path, const char *descr, const void *data, size_t elem, int ndim,
                        const size_t *shape)
{
    char dict[256];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%zu%s", shape[i], ndim == 1 ? "," : i + 1 < ndim ? ", " : "");
        count *= shape[i];
    }
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    /* header: magic(6) + version(2) + u16 length + dict padded with spaces to a multiple of 64, '\n' */
    size_t total = 10 + (size_t)n + 1;
    size_t padded = (total + 63) / 64 * 64;
    unsigned char head[320];
    if (padded > sizeof head)
        return cli_error("%s: array header too long", path);
    memset(head, ' ', padded);
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (unsigned char)((padded - 10) & 0xff);
    head[9] = (unsigned char)((padded - 10) >> 8);
    memcpy(head + 10, dict, (size_t)n);
    head[padded - 1] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f)
        return cli_error("%s: cannot create: %s", path, strerror(errno));
    int bad = fwrite(head, 1, padded, f) != padded || (count && fwrite(data, elem, count, f) != count);
    bad |= fclose(f) != 0;
    if (bad) {
        unlink(path);
        return cli_error("%s: write error", path);
    }
    return 0;
}
