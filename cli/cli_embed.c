/* `tlsweep embed --model M.tlm DIR|IMG... -o FILE`: the backbone's
 * globally average-pooled features of every image, the input of the
 * model's head, for use outside tlsweep (nearest neighbours, plots, another
 * classifier). FILE is safetensors (tensor "embeddings" (n, F) with the row
 * paths, and labels when DIR is class folders, in the metadata) or, for a
 * .csv name, CSV. Bad images are skipped with a warning and listed. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "worker/engine/infer.h"
#include "worker/engine/engine.h"

#define EMBED_BATCH_DEFAULT 32

static void usage(FILE *f)
{
    fprintf(f, "usage: tlsweep embed --model M.tlm -o FILE [--batch N] DIR|IMG...\n"
               "  DIR holds one folder per class; FILE is safetensors, or CSV when it ends "
               "in .csv\n");
}

static void on_bad(void *u, size_t item, const char *reason)
{
    (void)u;
    (void)item;
    fprintf(stderr, "tlsweep embed: warning: %s\n", reason);
}

int cli_embed(int argc, char **argv)
{
    const char *model = NULL, *out = NULL;
    int batch = EMBED_BATCH_DEFAULT;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"output", required_argument, 0, 'o'},
        {"batch", required_argument, 0, 'b'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:b:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'o': out = optarg; break;
        case 'b':
            if ((batch = infer_parse_batch(optarg)) < 0) {
                fprintf(stderr, "tlsweep embed: --batch needs an integer in [1, 4096]\n");
                return 2;
            }
            break;
        default: usage(c == 'h' ? stdout : stderr); return c == 'h' ? 0 : 2;
        }
    }
    if (!model || !out || optind >= argc) {
        usage(stderr);
        return 2;
    }
    int n_in = argc - optind;
    struct stat st;
    int is_dir = stat(argv[optind], &st) == 0 && S_ISDIR(st.st_mode);
    for (int i = 1; i < n_in && !is_dir; i++)
        if (stat(argv[optind + i], &st) == 0 && S_ISDIR(st.st_mode)) {
            fprintf(stderr, "tlsweep embed: %s: a directory must be the only input\n",
                    argv[optind + i]);
            return 2;
        }
    if (is_dir && n_in > 1) {
        fprintf(stderr, "tlsweep embed: %s: a directory must be the only input\n",
                argv[optind]);
        return 2;
    }
    engine_threads_set(engine_threads_default());

    tl_err e = {0};
    data_index ix;
    data_item *own = NULL;
    const data_item *items;
    size_t n;
    if (is_dir) {
        data_index_cfg dc = {argv[optind], NULL, NULL, 0, 0};
        if (data_index_build(&ix, &dc, &e)) {
            fprintf(stderr, "tlsweep embed: %s\n", e.msg);
            return 1;
        }
        items = ix.items;
        n = ix.n_items;
    } else {
        n = (size_t)n_in;
        if (!(own = calloc(n, sizeof *own))) {
            fprintf(stderr, "tlsweep embed: out of memory\n");
            return 1;
        }
        for (size_t i = 0; i < n; i++)
            own[i].path = argv[optind + (int)i];
        items = own;
    }
    if ((size_t)batch > n)
        batch = (int)n;
    int rc = 1;
    infer_model m;
    int have_m = 0;
    infer_embeddings x = {0};
    if (infer_open(&m, model, 1, batch, &e)) {
        fprintf(stderr, "tlsweep embed: %s\n", e.msg);
        goto out;
    }
    have_m = 1;
    if (infer_embed(&m, items, n, &x, on_bad, NULL, &e) ||
        infer_embeddings_write(&x, out, model, m.spec.backbone, items, is_dir ? &ix : NULL, &e)) {
        fprintf(stderr, "tlsweep embed: %s\n", e.msg);
        goto out;
    }
    printf("embed: %zu images x %zu features (%s, global average pooled) to %s", x.kept, x.F,
           m.spec.backbone, out);
    if (x.n_bad)
        printf(", %zu bad images skipped", x.n_bad);
    printf("\n");
    rc = 0;
out:
    infer_embeddings_free(&x);
    if (have_m)
        infer_close(&m);
    free(own);
    if (is_dir)
        data_index_free(&ix);
    return rc;
}
