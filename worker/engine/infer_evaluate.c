/* A written model on class folders: accuracy, loss, per-class counts and
 * the confusion matrix (see infer.h). */
#include "worker/engine/infer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    infer_model *m;
    const data_index *ix;
    infer_eval *r;
    infer_bad_fn bad;
    void *u;
} eval_run;

static int on_rows(void *u, const float *rows, const size_t *items, int n)
{
    eval_run *x = u;
    infer_eval *r = x->r;
    size_t C = infer_width(x->m);
    for (int i = 0; i < n; i++)
        r->labels[i] = r->map[x->ix->items[items[i]].label];
    r->loss_sum += (double)infer_probabilities(x->m, rows, r->labels, n) * n;
    r->seen += n;
    metrics_topk_correct(rows, r->labels, (size_t)n, C, 1, &r->hits, NULL);
    metrics_confusion_add(&r->cm, rows, r->labels, (size_t)n, NULL);
    return 0;
}

static void on_bad(void *u, size_t item, const char *reason)
{
    eval_run *x = u;
    if (x->bad)
        x->bad(x->u, item, reason);
    x->r->bad[x->r->n_bad++] = x->ix->items[item].path;
}

/* "'a', 'b', 'c'" into buf, cut short with "..." when it does not fit. */
static const char *name_list(char *const *names, int n, char *buf, size_t size)
{
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        int w = snprintf(buf + at, size - at, "%s'%s'", i ? ", " : "", names[i]);
        if (w < 0 || (size_t)w >= size - at) {
            snprintf(buf + (size > 4 ? size - 4 : 0), size > 4 ? 4 : size, "...");
            break;
        }
        at += (size_t)w;
    }
    return buf;
}

/* map[folder label] = the model's class of the same name. */
static int map_classes(const model_spec *s, const char *model, const data_index *ix,
                       const char *dir, int *map, tl_err *e)
{
    char a[256], b[256];
    if (s->n_class_names == 0) {
        if (ix->n_classes != s->num_classes)
            return tl_errf(e, TL_EINVAL, "%s has %d class folders, %s has %d unnamed classes",
                           dir, ix->n_classes, model, s->num_classes);
        for (int i = 0; i < ix->n_classes; i++)
            map[i] = i;
        return 0;
    }
    for (int i = 0; i < ix->n_classes; i++) {
        map[i] = -1;
        for (int j = 0; j < s->n_class_names && map[i] < 0; j++)
            if (!strcmp(ix->classes[i], s->class_names[j]))
                map[i] = j;
        if (map[i] < 0)
            return tl_errf(e, TL_EINVAL,
                           "%s: class folder '%s' is not a class of %s (folders: %s; model: %s)",
                           dir, ix->classes[i], model,
                           name_list(ix->classes, ix->n_classes, a, sizeof a),
                           name_list(s->class_names, s->n_class_names, b, sizeof b));
    }
    return 0;
}

/* The figures over everything seen. */
static void finish(infer_eval *r)
{
    int C = r->classes;
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++)
            r->class_total[i] += r->cm.counts[(size_t)i * C + j];
    r->accuracy = r->seen ? (double)r->hits / r->seen : 0.0;
    r->loss = r->seen ? r->loss_sum / r->seen : 0.0;
}

int infer_evaluate(infer_model *m, const data_index *ix, const char *dir, infer_eval *r,
                   infer_bad_fn bad, void *u, tl_err *e)
{
    memset(r, 0, sizeof *r);
    r->classes = (int)infer_width(m);
    r->map = malloc((size_t)ix->n_classes * sizeof *r->map);
    r->labels = malloc((size_t)m->batch * sizeof *r->labels);
    r->bad = malloc(ix->n_items * sizeof *r->bad);
    r->class_total = calloc((size_t)r->classes, sizeof *r->class_total);
    if (!r->map || !r->labels || !r->bad || !r->class_total ||
        metrics_confusion_init(&r->cm, (size_t)r->classes, NULL))
        return tl_errf(e, TL_ENOMEM, "out of memory");
    eval_run x = {m, ix, r, bad, u};
    int rc = map_classes(&m->spec, m->path, ix, dir, r->map, e);
    if (!rc)
        rc = infer_run(m, ix->items, ix->n_items, on_rows, on_bad, &x, e);
    if (rc)
        return rc;
    if (!r->seen)
        return tl_errf(e, TL_EINVAL, "%s: none of the %zu images decodes", dir, ix->n_items);
    finish(r);
    return 0;
}

const char *infer_class_name(const model_spec *s, int i, char *buf, size_t n)
{
    if (i < s->n_class_names)
        return s->class_names[i];
    snprintf(buf, n, "%d", i);
    return buf;
}

void infer_eval_free(infer_eval *r)
{
    if (r->cm.counts)
        metrics_confusion_free(&r->cm);
    free(r->class_total);
    free(r->bad);
    free(r->labels);
    free(r->map);
    memset(r, 0, sizeof *r);
}
