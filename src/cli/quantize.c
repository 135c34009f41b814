/* quantize.c - `cochlea quantize`: rewrite a model's weight matrices as q8_0, f16, bf16 or f32
 * (the conversion itself is gguf_quantize in src/gguf_write.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gguf.h"
#include "progress.h"

#define CMD "quantize"
#define MAX_KEEP 64

static const char usage[] =
    "usage: cochlea quantize [options] IN.gguf OUT.gguf [--type q8_0|f16|bf16|f32]\n"
    "\n"
    "Write a copy of a model with its weight matrices stored in another type. Every key is\n"
    "copied and general.file_type is set (llama.cpp ids: 0 f32, 1 f16, 7 q8_0, 32 bf16).\n"
    "  - weight matrices (at least two dimensions larger than 1, name not ending in \"bias\"\n"
    "    and not containing \"norm\") get the target type; with q8_0, matrices whose innermost\n"
    "    dimension (ne[0], the last PyTorch dimension) is not a multiple of 32 get f16 instead\n"
    "    (q8_0 stores blocks of 32 values), e.g. convolution kernels of width 3;\n"
    "  - 1-D tensors, norms, biases and frontend.* constants are stored as f32;\n"
    "  - integer tensors and tensors matching --keep are copied unchanged.\n"
    "The output never replaces the input file.\n"
    "\n"
    "  IN.gguf            the model to read (or -m/--model FILE)\n"
    "  OUT.gguf           the file to write (or -o/--output FILE)\n"
    "  --type T           q8_0 (default), f16, bf16 or f32\n"
    "  --keep PATTERN     keep tensors whose name matches the glob PATTERN as they are\n"
    "                     (repeatable; e.g. --keep 'quantizer.*'; a codec's quantizer.* tensors\n"
    "                     and an OWSM-CTC model's embedded language model lm.* are always kept)\n"
    "  -q, --quiet        no progress bar and no summary\n";

static int run(int argc, char **argv);

const cli_command cli_cmd_quantize = {
    CMD,
    "convert a model's weights to q8_0, f16, bf16 or f32",
    usage,
    run,
};

static void human_bytes(char *buf, size_t n, size_t v)
{
    if (v < 1024)
        snprintf(buf, n, "%zu B", v);
    else if (v < 1024 * 1024)
        snprintf(buf, n, "%.1f KiB", (double)v / 1024);
    else if (v < 1024ull * 1024 * 1024)
        snprintf(buf, n, "%.1f MiB", (double)v / (1024.0 * 1024));
    else
        snprintf(buf, n, "%.2f GiB", (double)v / (1024.0 * 1024 * 1024));
}

static int run(int argc, char **argv)
{
    cli_common c = {0};
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    const char *keep[MAX_KEEP];
    size_t n_keep = 0;
    gguf_quantize_params p = gguf_quantize_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            cli_print_usage(&cli_cmd_quantize);
            return 0;
        }
        int r = cli_parse_common(&c, CMD, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        const char *val = NULL;
        int is_type = strcmp(a, "--type") == 0 || strncmp(a, "--type=", 7) == 0;
        int is_keep = strcmp(a, "--keep") == 0 || strncmp(a, "--keep=", 7) == 0;
        if (is_type || is_keep) {
            if (a[6] == '=')
                val = a + 7;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return cli_usage_error(CMD, "option %s needs a value", a);
        }
        if (is_type) {
            if (type_from_name(val, &p.type) != 0 || gguf_file_type_id(p.type) < 0)
                return cli_usage_error(CMD, "--type must be q8_0, f16, bf16 or f32, got '%s'", val);
        } else if (is_keep) {
            if (n_keep == MAX_KEEP)
                return cli_usage_error(CMD, "at most %d --keep patterns", MAX_KEEP);
            keep[n_keep++] = val;
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            return cli_usage_error(CMD, "unexpected argument '%s'", a);
        }
    }
    const char *in = c.model, *out = c.output;
    int k = 0;
    if (!in && k < npos)
        in = pos[k++];
    if (!out && k < npos)
        out = pos[k++];
    if (k < npos)
        return cli_usage_error(CMD, "unexpected argument '%s'", pos[k]);
    if (!in)
        return cli_usage_error(CMD, "no input model given");
    if (!out)
        return cli_usage_error(CMD, "no output file given");
    cli_setup_logging(&c);
    /* A codec's codebooks and SE graph decide its tokens: converting them would change the tokens
     * and the model fingerprint, so they are kept as they are (only the network is converted). */
    gguf_file *gf;
    if (gguf_open(in, &gf) == COCHLEA_OK) {
        const char *arch;
        if (gguf_has_key(gf, "general.architecture") && gguf_get_str(gf, "general.architecture", &arch, NULL) == 0 &&
            n_keep < MAX_KEEP) {
            /* likewise an OWSM-CTC model's embedded language model (README "Beam search and
             * language model") is data, not a weight: its F16 log-probabilities stay F16 */
            if (strcmp(arch, "secodec") == 0)
                keep[n_keep++] = "quantizer.*";
            else if (strcmp(arch, "owsm_ctc") == 0)
                keep[n_keep++] = "lm.*";
        }
        gguf_close(gf);
    }

    progress pg;
    progress_start(&pg, stderr, "quantize", 0, c.quiet);
    p.keep = keep;
    p.n_keep = n_keep;
    p.progress = progress_callback;
    p.progress_user = &pg;
    gguf_quantize_stats st;
    int rc = gguf_quantize(in, out, &p, &st);
    progress_end(&pg);
    if (rc)
        return cli_lib_error(rc, NULL);
    if (!c.quiet) {
        char hi[32], ho[32];
        human_bytes(hi, sizeof hi, st.in_bytes);
        human_bytes(ho, sizeof ho, st.out_bytes);
        printf("%s (%s) -> %s (%s, %.1f %% of the input)\n", in, hi, out, ho,
               st.in_bytes ? 100.0 * (double)st.out_bytes / (double)st.in_bytes : 100.0);
        printf("%lld tensors: %lld weight matrices -> %s", (long long)st.n_tensors, (long long)st.n_converted,
               type_name(p.type));
        if (st.n_fallback)
            printf(", %lld -> f16 (ne[0] not a multiple of 32)", (long long)st.n_fallback);
        printf(", %lld -> f32 (1-D, norms, biases)", (long long)st.n_f32);
        if (st.n_kept)
            printf(", %lld unchanged (integer or --keep)", (long long)st.n_kept);
        printf("\n");
    }
    return 0;
}
