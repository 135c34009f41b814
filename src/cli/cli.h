/* cli.h - shared helpers for the `cochlea` program's subcommands (only src/cli/ prints). */
#ifndef COCHLEA_CLI_H
#define COCHLEA_CLI_H

#include <stdio.h>

#include "cochlea.h"
#include "error.h"

/* Common options every subcommand understands. */
typedef struct cli_common {
    const char *model;  /* -m/--model */
    const char *output; /* -o/--output */
    int threads;        /* -t/--threads (0 = all CPUs) */
    int quiet;          /* -q */
    int verbose;        /* -v (repeatable) */
} cli_common;

/* A subcommand: run(argc, argv) gets argv[0] = the subcommand name; returns the exit code. */
typedef struct cli_command {
    const char *name;
    const char *summary; /* one line for `cochlea help` */
    const char *usage;   /* full help text for `cochlea help NAME` / `cochlea NAME --help` */
    int (*run)(int argc, char **argv);
} cli_command;

/* Print "cochlea: error: <msg>\n" to stderr; returns 1 (the exit code to use). */
int cli_error(const char *fmt, ...) COCHLEA_PRINTF(1, 2);
/* Print "cochlea: error: <what>: <cochlea_last_error() or strerror(code)>"; returns 1. */
int cli_lib_error(int code, const char *what);
/* Print a usage error with a hint to run `cochlea help NAME`; returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) COCHLEA_PRINTF(2, 3);

/* Try to parse one of the common options at argv[*i]; returns 1 if consumed (advancing *i past
 * its value), 0 if not a common option, -1 on a bad value (message printed). */
int cli_parse_common(cli_common *c, const char *cmd, int argc, char **argv, int *i);
/* Whether argv[i] is -h/--help. */
int cli_is_help(const char *arg);
/* Print the usage text of a command to stdout. */
void cli_print_usage(const cli_command *cmd);
/* Install a stderr log callback at the level implied by -q/-v. */
void cli_setup_logging(const cli_common *c);
/* Parse an integer/float option value strictly; return 0 on success, -1 (message printed). */
int cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
int cli_parse_float(const char *cmd, const char *opt, const char *s, double *out);

/* Write a float32 C-order .npy of the given shape; returns 0 or 1 (message printed, file removed). */
int cli_write_npy(const char *path, const float *data, int ndim, const size_t *shape);
/* The same for any element type: descr is numpy's ("<i4", "<f4", ...), elem its size in bytes. */
int cli_write_npy_typed(const char *path, const char *descr, const void *data, size_t elem, int ndim,
                        const size_t *shape);

/* Subcommands (one file each in src/cli/). */
extern const cli_command cli_cmd_info;
extern const cli_command cli_cmd_quantize;
extern const cli_command cli_cmd_features;
extern const cli_command cli_cmd_tokenize;
extern const cli_command cli_cmd_transcribe;
extern const cli_command cli_cmd_codec;
extern const cli_command cli_cmd_generate;

#endif
