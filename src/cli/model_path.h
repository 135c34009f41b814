/* model_path.h - where `cochlea transcribe` looks for its default model when no -m is given. */
#ifndef COCHLEA_CLI_MODEL_PATH_H
#define COCHLEA_CLI_MODEL_PATH_H

#include <stddef.h>

/* The file name of the embedded default model (models/ in the source tree,
 * $(pkgdatadir)/models once installed). */
#define MODEL_PATH_DEFAULT_NAME "owsm-ctc-tiny.gguf"
/* The environment variable that names a default model explicitly. */
#define MODEL_PATH_ENV "COCHLEA_MODEL"

#define MODEL_PATH_MAX_TRIED 8

enum model_path_status {
    MODEL_PATH_FOUND = 0,   /* found: the path is in s->path */
    MODEL_PATH_NOT_FOUND,   /* none of s->tried is a regular file */
    MODEL_PATH_ENV_MISSING, /* $COCHLEA_MODEL is set but is not a regular file (s->path: its value) */
};

typedef struct model_path_search {
    char path[4096];                         /* the chosen file (or see enum model_path_status) */
    char tried[MODEL_PATH_MAX_TRIED][4096];  /* every candidate looked at, in order (no duplicates) */
    int n_tried;
} model_path_search;

/* Find the default model named `name` (normally MODEL_PATH_DEFAULT_NAME), first regular file wins:
 *  1. $COCHLEA_MODEL when set and not empty (then nothing else is tried);
 *  2. next to the running program (DIR = the directory of /proc/self/exe):
 *     DIR/models/NAME, DIR/../models/NAME, DIR/../share/cochlea/models/NAME;
 *  3. the compile-time directories COCHLEA_SRC_MODELDIR (the source tree's models/) and
 *     COCHLEA_MODELDIR (the installed $(pkgdatadir)/models), when defined.
 * A candidate longer than s->path is skipped. Returns an enum model_path_status. */
int model_path_find(const char *name, model_path_search *s);

#endif
