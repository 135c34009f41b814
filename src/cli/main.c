/* main.c - the `cochlea` program: dispatch to one subcommand per file in src/cli/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const cli_command *const commands[] = {
    &cli_cmd_info,
    &cli_cmd_quantize,
    &cli_cmd_features,
    &cli_cmd_tokenize,
    &cli_cmd_transcribe,
    &cli_cmd_codec,
    &cli_cmd_generate,
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
}

static void print_overview(FILE *f)
{
    fprintf(f, "usage: cochlea COMMAND [OPTIONS] [ARGS]\n\n"
               "Open speech foundation models on the CPU.\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-12s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(f, "  %-12s %s\n", "help", "show help for a command (cochlea help COMMAND)");
    fprintf(f, "\ncommon options: -m/--model FILE, -t/--threads N, -o/--output FILE, -q, -v\n"
               "cochlea --version prints the version and the compute features in use.\n");
}

int main(int argc, char **argv)
{
    /* Two settings that libgomp and glibc read before main, so they need one re-exec to take
     * effect; the user's own settings win.
     * - OMP_WAIT_POLICY=passive: oneDNN's OpenMP threads would otherwise spin after each product
     *   and compete with our own pool for the cores (src/gemm.h; measured on the 1B OWSM-CTC
     *   encoder in BF16: attention 4x slower).
     * - GLIBC_TUNABLES: malloc gets transparent huge pages and keeps freed memory for reuse
     *   instead of returning it to the kernel, so the large activation buffers of each window
     *   are not faulted in 4 KiB page by page again (measured: a 60 s transcription with an
     *   11M-parameter model on 2 threads 0.45-0.51 s -> 0.35 s in bf16, 0.53-0.60 -> 0.44-0.55 s
     *   in f32; peak memory +4 %). */
    int reexec = 0;
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        reexec = 1;
    }
    if (!getenv("GLIBC_TUNABLES")) {
        setenv("GLIBC_TUNABLES",
               "glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=68719476736",
               1);
        reexec = 1;
    }
    if (reexec)
        execv("/proc/self/exe", argv); /* returns only on failure: run on with the defaults */
    if (argc < 2) {
        print_overview(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("cochlea %s\n%s\n", cochlea_version(), cochlea_system_info());
        return 0;
    }
    if (cli_is_help(cmd)) {
        print_overview(stdout);
        return 0;
    }
    if (strcmp(cmd, "help") == 0) {
        if (argc < 3) {
            print_overview(stdout);
            return 0;
        }
        const cli_command *c = find_command(argv[2]);
        if (!c)
            return cli_error("unknown command '%s' (run 'cochlea help' for the list)", argv[2]);
        cli_print_usage(c);
        return 0;
    }
    const cli_command *c = find_command(cmd);
    if (!c)
        return cli_error("unknown command '%s' (run 'cochlea help' for the list)", cmd) + 1;
    return c->run(argc - 1, argv + 1);
}
