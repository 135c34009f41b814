/* model_path.c - the default model lookup of `cochlea transcribe` (model_path.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_path.h"

static int is_regular_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Record DIR/NAME as a candidate (skipping a repeat or a path too long for s->path); 1 if it is
 * a regular file (then it is s->path), 0 if not. */
static int try_path(model_path_search *s, const char *dir, const char *name)
{
    char p[sizeof s->path];
    int n = snprintf(p, sizeof p, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof p)
        return 0;
    for (int i = 0; i < s->n_tried; i++)
        if (strcmp(s->tried[i], p) == 0)
            return 0;
    if (s->n_tried < MODEL_PATH_MAX_TRIED)
        memcpy(s->tried[s->n_tried++], p, (size_t)n + 1);
    if (!is_regular_file(p))
        return 0;
    memcpy(s->path, p, (size_t)n + 1);
    return 1;
}

/* The directory of the running program into dir (no trailing slash); 0, or -1 if unknown. The
 * kernel resolves symbolic links in /proc/self/exe, so the lexical parent of dir is its real
 * parent. */
static int program_dir(char *dir, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", dir, cap - 1);
    if (n <= 0 || (size_t)n >= cap - 1)
        return -1;
    dir[n] = '\0';
    char *slash = strrchr(dir, '/');
    if (!slash)
        return -1;
    if (slash == dir)
        slash[1] = '\0'; /* the program is /NAME: DIR is / */
    else
        *slash = '\0';
    return 0;
}

/* A compile-time directory, canonical when it exists (configure's abs_top_srcdir can read
 * "/src/build/../models"), else as given. */
static void compiled_dir(char *out, size_t cap, const char *dir)
{
    char *canon = realpath(dir, NULL);
    snprintf(out, cap, "%s", canon ? canon : dir);
    free(canon);
}

int model_path_find(const char *name, model_path_search *s)
{
    memset(s, 0, sizeof *s);
    const char *env = getenv(MODEL_PATH_ENV);
    if (env && env[0]) {
        snprintf(s->path, sizeof s->path, "%s", env);
        snprintf(s->tried[s->n_tried++], sizeof s->tried[0], "%s", env);
        return is_regular_file(env) ? MODEL_PATH_FOUND : MODEL_PATH_ENV_MISSING;
    }

    char dirs[5][sizeof s->path];
    int n_dirs = 0;
    char exe_dir[sizeof s->path];
    if (program_dir(exe_dir, sizeof exe_dir) == 0) {
        const char *root = strcmp(exe_dir, "/") == 0 ? "" : exe_dir;
        char parent[sizeof s->path];
        snprintf(parent, sizeof parent, "%s", root);
        char *slash = strrchr(parent, '/');
        if (slash)
            *slash = '\0'; /* "" when the program sits in / or /DIR: then PARENT/x is /x */
        /* (a directory too long is cut short here and its file skipped by try_path) */
        snprintf(dirs[n_dirs++], sizeof dirs[0], "%s/models", root);
        snprintf(dirs[n_dirs++], sizeof dirs[0], "%s/models", parent);
        snprintf(dirs[n_dirs++], sizeof dirs[0], "%s/share/cochlea/models", parent);
    }
#ifdef COCHLEA_SRC_MODELDIR
    compiled_dir(dirs[n_dirs++], sizeof dirs[0], COCHLEA_SRC_MODELDIR);
#endif
#ifdef COCHLEA_MODELDIR
    compiled_dir(dirs[n_dirs++], sizeof dirs[0], COCHLEA_MODELDIR);
#endif
    for (int i = 0; i < n_dirs; i++)
        if (try_path(s, dirs[i], name))
            return MODEL_PATH_FOUND;
    s->path[0] = '\0';
    return MODEL_PATH_NOT_FOUND;
}
