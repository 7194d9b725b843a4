/* Pooled backbone features of images, and the file they go to (see
 * infer.h). */
#include "worker/engine/infer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/weights/safetensors.h"

typedef struct {
    const data_item *items;
    infer_embeddings *x;
    infer_bad_fn bad;
    void *u;
} embed_run;

static int on_rows(void *u, const float *rows, const size_t *items, int n)
{
    infer_embeddings *x = ((embed_run *)u)->x;
    memcpy(x->rows + x->kept * x->F, rows, (size_t)n * x->F * sizeof *rows);
    memcpy(x->item + x->kept, items, (size_t)n * sizeof *items);
    x->kept += (size_t)n;
    return 0;
}

static void on_bad(void *u, size_t item, const char *reason)
{
    embed_run *r = u;
    if (r->bad)
        r->bad(r->u, item, reason);
    r->x->bad[r->x->n_bad++] = r->items[item].path;
}

int infer_embed(infer_model *m, const data_item *items, size_t n, infer_embeddings *x,
                infer_bad_fn bad, void *u, tl_err *e)
{
    memset(x, 0, sizeof *x);
    x->F = infer_width(m);
    x->rows = malloc(n * x->F * sizeof *x->rows);
    x->item = malloc(n * sizeof *x->item);
    x->bad = malloc(n * sizeof *x->bad);
    if (!x->rows || !x->item || !x->bad)
        return tl_errf(e, TL_ENOMEM, "out of memory for %zu x %zu features", n, x->F);
    embed_run r = {items, x, bad, u};
    int rc = infer_run(m, items, n, on_rows, on_bad, &r, e);
    if (rc)
        return rc;
    if (!x->kept)
        return tl_errf(e, TL_EINVAL, "none of the %zu images decodes", n);
    return 0;
}

void infer_embeddings_free(infer_embeddings *x)
{
    free(x->bad);
    free(x->item);
    free(x->rows);
    memset(x, 0, sizeof *x);
}

/* ---- the file ------------------------------------------------------------- */

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

static int write_csv(const infer_embeddings *x, const char *path, const data_item *items,
                     const data_index *ix, tl_err *e)
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
        const data_item *it = &items[x->item[i]];
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

static int write_safetensors(const infer_embeddings *x, const char *path, const char *model,
                             const char *backbone, const data_item *items,
                             const data_index *ix, tl_err *e)
{
    const char **paths = calloc(x->kept ? x->kept : 1, sizeof *paths);
    const char **labels = malloc((x->kept ? x->kept : 1) * sizeof *labels);
    char *jpaths = NULL, *jlabels = NULL, *jbad = NULL;
    int rc = 0;
    if (!paths || !labels) {
        rc = tl_errf(e, TL_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    for (size_t i = 0; i < x->kept; i++) {
        const data_item *it = &items[x->item[i]];
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
    const char *meta[10] = {"model", model, "backbone", backbone, "paths", jpaths};
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

int infer_embeddings_write(const infer_embeddings *x, const char *path, const char *model,
                           const char *backbone, const data_item *items, const data_index *ix,
                           tl_err *e)
{
    return ends_with(path, ".csv") ? write_csv(x, path, items, ix, e)
                                   : write_safetensors(x, path, model, backbone, items, ix, e);
}
