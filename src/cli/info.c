/* info.c - `cochlea info`: what a GGUF model file holds (architecture, hyperparameters,
 * tokenizer summary, other keys, tensor table, totals). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gguf.h"

#define CMD "info"
#define MAX_SHOWN 8 /* array elements shown before "..." */

static const char usage[] =
    "usage: cochlea info [options] MODEL.gguf\n"
    "\n"
    "Show what a GGUF model file holds: its architecture and name, the hyperparameters (all\n"
    "<arch>.* keys), a tokenizer summary (model type, vocabulary size, special token ids;\n"
    "long arrays are shown as counts), the other keys, a table of tensors (name, type, shape,\n"
    "bytes) and the total parameters and bytes. The file is fully validated first.\n"
    "\n"
    "  MODEL.gguf         the model file (or -m/--model FILE)\n"
    "  --no-tensors       leave out the tensor table\n"
    "  --ggml-order       print shapes in ggml order (ne[0], the innermost dimension, first)\n"
    "                     instead of PyTorch order (outermost first, as in the checkpoint)\n"
    "  -q, --quiet        print only the one-line summary\n";

static int run(int argc, char **argv);

const cli_command cli_cmd_info = {
    CMD,
    "show a model file's metadata and tensors",
    usage,
    run,
};

/* Format a count with a K/M/B suffix ("1.02 B"), or as is below 1000. */
static void human_count(char *buf, size_t n, uint64_t v)
{
    if (v < 1000)
        snprintf(buf, n, "%" PRIu64, v);
    else if (v < 1000000)
        snprintf(buf, n, "%.2f K", (double)v / 1e3);
    else if (v < 1000000000)
        snprintf(buf, n, "%.2f M", (double)v / 1e6);
    else
        snprintf(buf, n, "%.2f B", (double)v / 1e9);
}

/* Format a byte count as "123 B", "4.0 KiB", "1.5 MiB", "2.25 GiB". */
static void human_bytes(char *buf, size_t n, uint64_t v)
{
    if (v < 1024)
        snprintf(buf, n, "%" PRIu64 " B", v);
    else if (v < 1024 * 1024)
        snprintf(buf, n, "%.1f KiB", (double)v / 1024);
    else if (v < 1024ull * 1024 * 1024)
        snprintf(buf, n, "%.1f MiB", (double)v / (1024.0 * 1024));
    else
        snprintf(buf, n, "%.2f GiB", (double)v / (1024.0 * 1024 * 1024));
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static const char *file_type_name(int64_t id)
{
    switch (id) {
    case 0: return "all f32";
    case 1: return "mostly f16";
    case 7: return "mostly q8_0";
    case 32: return "mostly bf16";
    default: return "other";
    }
}

static void print_kv(const gguf_file *f, int64_t i, int indent)
{
    char buf[1024];
    const gguf_value *v = gguf_kv_value(f, i);
    gguf_value_format(v, MAX_SHOWN, buf, sizeof buf);
    printf("%*s%-40s %s\n", indent, "", gguf_kv_key(f, i), buf);
}

/* The tokenizer section: model, sizes of the big arrays as counts, special ids, other keys. */
static void print_tokenizer(const gguf_file *f)
{
    char buf[1024];
    int any = 0;
    for (int64_t i = 0; i < gguf_n_kv(f); i++)
        any |= starts_with(gguf_kv_key(f, i), "tokenizer.");
    if (!any) {
        printf("\ntokenizer: none\n");
        return;
    }
    printf("\ntokenizer:\n");
    const char *model;
    if (gguf_get_str(f, "tokenizer.ggml.model", &model, NULL) == 0)
        printf("  %-22s %s\n", "model", model);
    const gguf_value *tokens = NULL;
    if (gguf_get_array(f, "tokenizer.ggml.tokens", &tokens) == 0)
        printf("  %-22s %" PRIu64 "\n", "vocabulary size", tokens->n);
    else
        tokens = NULL;
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        const char *key = gguf_kv_key(f, i);
        if (!starts_with(key, "tokenizer.") || strcmp(key, "tokenizer.ggml.model") == 0 ||
            strcmp(key, "tokenizer.ggml.tokens") == 0)
            continue;
        const gguf_value *x = gguf_kv_value(f, i);
        const char *label = key + strlen("tokenizer.");
        if (starts_with(label, "ggml."))
            label += strlen("ggml.");
        if (x->type == GGUF_TYPE_ARRAY && x->n > MAX_SHOWN) {
            printf("  %-22s %" PRIu64 " x %s\n", label, x->n, gguf_type_name(x->arr_type));
        } else if (x->type == GGUF_TYPE_STRING && x->str_len[0] > 64) {
            printf("  %-22s %" PRIu64 " bytes\n", label, x->str_len[0]);
        } else {
            gguf_value_format(x, MAX_SHOWN, buf, sizeof buf);
            printf("  %-22s %s", label, buf);
            /* a special token id: show the token too */
            int64_t id;
            const char *tok;
            if (ends_with(key, "_token_id") && x->type != GGUF_TYPE_ARRAY && tokens &&
                gguf_value_int(x, 0, &id) == 0 && id >= 0 && gguf_value_str(tokens, (uint64_t)id, &tok, NULL) == 0)
                printf(" (%s)", tok);
            printf("\n");
        }
    }
}

/* Shape as "[a, b, c]" in PyTorch order (outermost first) or ggml order. */
static void format_shape(char *buf, size_t n, const tensor *t, int ggml_order)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->n_dims && o < n; d++) {
        int k = ggml_order ? d : t->n_dims - 1 - d;
        o += (size_t)snprintf(buf + o, n - o, "%s%" PRId64, d ? ", " : "", t->ne[k]);
    }
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

static void print_tensors(const gguf_file *f, int ggml_order)
{
    int64_t nt = gguf_n_tensors(f);
    int wname = 4;
    for (int64_t i = 0; i < nt; i++) {
        int len = (int)strlen(gguf_tensor(f, i)->name);
        if (len > wname)
            wname = len;
    }
    printf("\ntensors (shape in %s):\n", ggml_order ? "ggml order, ne[0] first" : "PyTorch order, outermost first");
    printf("  %-*s  %-5s  %-22s  %12s\n", wname, "name", "type", "shape", "bytes");
    for (int64_t i = 0; i < nt; i++) {
        const tensor *t = gguf_tensor(f, i);
        char shape[128];
        format_shape(shape, sizeof shape, t, ggml_order);
        printf("  %-*s  %-5s  %-22s  %12zu\n", wname, t->name, type_name(t->type), shape, tensor_nbytes(t));
    }
}

/* "9 tensors, 12.34 K parameters, 45.6 KiB of tensor data (f32 5, q8_0 2, f16 1)" */
static void print_totals(const gguf_file *f, const char *prefix)
{
    static const enum cochlea_type types[] = {COCHLEA_TYPE_F32, COCHLEA_TYPE_F16, COCHLEA_TYPE_BF16,
                                              COCHLEA_TYPE_Q8_0, COCHLEA_TYPE_I8, COCHLEA_TYPE_I16,
                                              COCHLEA_TYPE_I32};
    int64_t counts[sizeof types / sizeof types[0]] = {0};
    uint64_t params = 0, bytes = 0;
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const tensor *t = gguf_tensor(f, i);
        params += (uint64_t)tensor_nelements(t);
        bytes += tensor_nbytes(t);
        for (size_t k = 0; k < sizeof types / sizeof types[0]; k++)
            counts[k] += t->type == types[k];
    }
    char hp[32], hb[32];
    human_count(hp, sizeof hp, params);
    human_bytes(hb, sizeof hb, bytes);
    printf("%s%" PRId64 " tensors, %" PRIu64 " parameters (%s), %" PRIu64 " bytes of tensor data (%s)", prefix,
           gguf_n_tensors(f), params, hp, bytes, hb);
    const char *sep = " [";
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        if (counts[k]) {
            printf("%s%s %" PRId64, sep, type_name(types[k]), counts[k]);
            sep = ", ";
        }
    }
    printf("%s\n", sep[0] == ',' ? "]" : "");
}

static int run(int argc, char **argv)
{
    cli_common c = {0};
    int no_tensors = 0, ggml_order = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            cli_print_usage(&cli_cmd_info);
            return 0;
        }
        int r = cli_parse_common(&c, CMD, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (strcmp(a, "--no-tensors") == 0)
            no_tensors = 1;
        else if (strcmp(a, "--ggml-order") == 0)
            ggml_order = 1;
        else if (a[0] == '-' && a[1] != '\0')
            return cli_usage_error(CMD, "unknown option '%s'", a);
        else if (!path)
            path = a;
        else
            return cli_usage_error(CMD, "unexpected argument '%s' (one model file at a time)", a);
    }
    if (path && c.model)
        return cli_usage_error(CMD, "give the model either as an argument or with -m, not both");
    if (!path)
        path = c.model;
    if (!path)
        return cli_usage_error(CMD, "no model file given");
    cli_setup_logging(&c);

    gguf_file *f;
    int rc = gguf_open(path, &f);
    if (rc)
        return cli_lib_error(rc, NULL);
    if (c.quiet) {
        char prefix[1024];
        snprintf(prefix, sizeof prefix, "%s: ", path);
        print_totals(f, prefix);
        gguf_close(f);
        return 0;
    }

    char hb[32];
    const char *arch = NULL, *name = NULL;
    human_bytes(hb, sizeof hb, gguf_file_size(f));
    printf("file:          %s (GGUF v%" PRIu32 ", %zu bytes = %s, alignment %zu)\n", path, gguf_version(f),
           gguf_file_size(f), hb, gguf_alignment(f));
    if (gguf_get_str(f, "general.architecture", &arch, NULL) == 0)
        printf("architecture:  %s\n", arch);
    else
        printf("architecture:  (general.architecture missing or not a string)\n");
    if (gguf_get_str(f, "general.name", &name, NULL) == 0)
        printf("name:          %s\n", name);
    int64_t ft;
    if (gguf_get_int(f, "general.file_type", 0, INT32_MAX, &ft) == 0)
        printf("file type:     %s (%" PRId64 ")\n", file_type_name(ft), ft);

    char prefix[300] = "";
    if (arch)
        snprintf(prefix, sizeof prefix, "%s.", arch);
    int n_hp = 0;
    for (int64_t i = 0; arch && i < gguf_n_kv(f); i++)
        n_hp += starts_with(gguf_kv_key(f, i), prefix);
    if (arch) {
        printf("\nhyperparameters (%s*):%s\n", prefix, n_hp ? "" : " none");
        for (int64_t i = 0; i < gguf_n_kv(f); i++)
            if (starts_with(gguf_kv_key(f, i), prefix))
                print_kv(f, i, 2);
    }
    print_tokenizer(f);

    int n_other = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t i = 0; i < gguf_n_kv(f); i++) {
            const char *key = gguf_kv_key(f, i);
            if ((arch && starts_with(key, prefix)) || starts_with(key, "tokenizer.") ||
                strcmp(key, "general.architecture") == 0 || strcmp(key, "general.name") == 0 ||
                strcmp(key, "general.file_type") == 0 || strcmp(key, "general.alignment") == 0)
                continue;
            if (pass == 0)
                n_other++;
            else
                print_kv(f, i, 2);
        }
        if (pass == 0 && n_other)
            printf("\nother keys:\n");
    }

    if (!no_tensors && gguf_n_tensors(f) > 0)
        print_tensors(f, ggml_order);
    printf("\n");
    print_totals(f, "total: ");
    gguf_close(f);
    return 0;
}
