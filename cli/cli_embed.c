/* `tlsweep embed --model M.tlm DIR|IMG... -o FILE`: the backbone's
 * globally average-pooled features of every image, the input of the
 * model's head, for use outside tlsweep (nearest neighbours, plots, another
 * classifier). FILE is safetensors (tensor "embeddings" (n, F) with the row
 * paths, and labels when DIR is class folders, in the metadata) or, for a
 * .csv name, CSV. Bad images are skipped with a warning and listed. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/weights/safetensors.h"
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

typedef struct {
    infer_model *m;
    const data_item *items;
    size_t F;
    float *rows;          /* (kept, F) */
    size_t *item;         /* (kept) */
    size_t kept;
    const char **bad;
    size_t n_bad;
} embed_ctx;

static int on_rows(void *u, const float *rows, const size_t *items, int n)
{
    embed_ctx *x = u;
    memcpy(x->rows + x->kept * x->F, rows, (size_t)n * x->F * sizeof *rows);
    memcpy(x->item + x->kept, items, (size_t)n * sizeof *items);
    x->kept += (size_t)n;
    return 0;
}

static void on_bad(void *u, size_t item, const char *reason)
{
    embed_ctx *x = u;
    fprintf(stderr, "tlsweep embed: warning: %s\n", reason);
    x->bad[x->n_bad++] = x->items[item].path;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcasecmp(s + a - b, suffix);
}

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int write_csv(const embed_ctx *x, const char *path, const data_index *ix, tl_err *e)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return tl_errf(e, TL_EINVAL, "%s: path too long", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return tl_errf(e, TL_EIO, "%s: cannot create", tmp);
    fputs("path,label", f);
    for (size_t j = 0; j < x->F; j++)
        fprintf(f, ",f%zu", j);
    fputc('\n', f);
    for (size_t i = 0; i < x->kept; i++) {
        const data_item *it = &x->items[x->item[i]];
        csv_field(f, it->path);
        fputc(',', f);
        if (ix)
            csv_field(f, ix->classes[it->label]);
        const float *r = x->rows + i * x->F;
        for (size_t j = 0; j < x->F; j++)
            fprintf(f, ",%.9g", (double)r[j]);
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) || bad || rename(tmp, path)) {
        remove(tmp);
        return tl_errf(e, TL_EIO, "%s: write failed", path);
    }
    return 0;
}

/* A metadata value: the JSON array of strings, compact. NULL on ENOMEM. */
static char *json_strings(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n && a; i++)
        if (json_array_append_new(a, json_string(v[i]))) {
            json_decref(a);
            return NULL;
        }
    char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return s;
}

static int write_safetensors(const embed_ctx *x, const char *path, const char *model,
                             const data_index *ix, tl_err *e)
{
    const char **paths = malloc((x->kept ? x->kept : 1) * sizeof *paths);
    const char **labels = malloc((x->kept ? x->kept : 1) * sizeof *labels);
    char *jpaths = NULL, *jlabels = NULL, *jbad = NULL;
    int rc = 0;
    if (!paths || !labels) {
        rc = tl_errf(e, TL_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    for (size_t i = 0; i < x->kept; i++) {
        const data_item *it = &x->items[x->item[i]];
        paths[i] = it->path;
        labels[i] = ix ? ix->classes[it->label] : NULL;
    }
    jpaths = json_strings(paths, x->kept);
    jlabels = ix ? json_strings(labels, x->kept) : NULL;
    jbad = x->n_bad ? json_strings(x->bad, x->n_bad) : NULL;
    if (!jpaths || (ix && !jlabels) || (x->n_bad && !jbad)) {
        rc = tl_errf(e, TL_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    const char *meta[10] = {"model", model, "backbone", x->m->spec.backbone, "paths", jpaths};
    size_t nmeta = 3;
    if (jlabels) {
        meta[2 * nmeta] = "labels";
        meta[2 * nmeta++ + 1] = jlabels;
    }
    if (jbad) {
        meta[2 * nmeta] = "skipped";
        meta[2 * nmeta++ + 1] = jbad;
    }
    weights_st_entry t = {"embeddings", x->rows, 2, {x->kept, x->F}};
    rc = weights_st_write_meta(path, &t, 1, meta, nmeta, e);
out:
    free(jbad);
    free(jlabels);
    free(jpaths);
    free(labels);
    free(paths);
    return rc;
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
    embed_ctx x = {.m = &m, .items = items};
    if (infer_open(&m, model, 1, batch, &e)) {
        fprintf(stderr, "tlsweep embed: %s\n", e.msg);
        goto out;
    }
    have_m = 1;
    x.F = infer_width(&m);
    x.rows = malloc(n * x.F * sizeof *x.rows);
    x.item = malloc(n * sizeof *x.item);
    x.bad = malloc(n * sizeof *x.bad);
    if (!x.rows || !x.item || !x.bad) {
        fprintf(stderr, "tlsweep embed: out of memory for %zu x %zu features\n", n, x.F);
        goto out;
    }
    if (infer_run(&m, items, n, on_rows, on_bad, &x, &e)) {
        fprintf(stderr, "tlsweep embed: %s\n", e.msg);
        goto out;
    }
    if (!x.kept) {
        fprintf(stderr, "tlsweep embed: none of the %zu images decodes\n", n);
        goto out;
    }
    const data_index *labelled = is_dir ? &ix : NULL;
    if (ends_with(out, ".csv") ? write_csv(&x, out, labelled, &e)
                               : write_safetensors(&x, out, model, labelled, &e)) {
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
    free(x.bad);
    free(x.item);
    free(x.rows);
    if (have_m)
        infer_close(&m);
    free(own);
    if (is_dir)
        data_index_free(&ix);
    return rc;
}
