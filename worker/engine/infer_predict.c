/* The top classes of each image under a written model (see infer.h). */
#include "worker/engine/infer.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    infer_model *m;
    const data_item *items;
    infer_predictions *p;
    int *order;              /* (classes) scratch */
    infer_bad_fn bad;
    void *u;
    int oom;
} predict_run;

/* The first k of order sorted by row, descending: a selection sort, lowest
 * index first on ties. */
static void top_k(const float *row, size_t C, int k, int *order, int *top, float *prob)
{
    for (size_t j = 0; j < C; j++)
        order[j] = (int)j;
    for (int r = 0; r < k; r++) {
        size_t best = (size_t)r;
        for (size_t j = (size_t)r + 1; j < C; j++)
            if (row[order[j]] > row[order[best]] ||
                (row[order[j]] == row[order[best]] && order[j] < order[best]))
                best = j;
        int t = order[r];
        order[r] = order[best];
        order[best] = t;
        top[r] = order[r];
        prob[r] = row[top[r]];
    }
}

static int on_rows(void *u, const float *rows, const size_t *items, int n)
{
    predict_run *x = u;
    infer_predictions *p = x->p;
    size_t C = infer_width(x->m);
    infer_probabilities(x->m, rows, NULL, n);
    for (int i = 0; i < n; i++)
        top_k(x->m->probs + (size_t)i * C, C, p->k, x->order, p->top + items[i] * (size_t)p->k,
              p->prob + items[i] * (size_t)p->k);
    return 0;
}

static void on_bad(void *u, size_t item, const char *reason)
{
    predict_run *x = u;
    infer_predictions *p = x->p;
    if (x->bad)
        x->bad(x->u, item, reason);
    free(p->error[item]);
    p->error[item] = strdup(infer_reason(reason, x->items[item].path));
    if (!p->error[item])
        x->oom = 1;
    p->failed++;
}

int infer_predict(infer_model *m, const data_item *items, size_t n, int top,
                  infer_predictions *p, infer_bad_fn bad, void *u, tl_err *e)
{
    int C = (int)infer_width(m);
    memset(p, 0, sizeof *p);
    p->n = n;
    p->k = top < C ? top : C;
    p->top = malloc(n * (size_t)p->k * sizeof *p->top);
    p->prob = malloc(n * (size_t)p->k * sizeof *p->prob);
    p->error = calloc(n, sizeof *p->error);
    predict_run x = {m, items, p, malloc((size_t)C * sizeof(int)), bad, u, 0};
    int rc;
    if (!p->top || !p->prob || !p->error || !x.order)
        rc = tl_errf(e, TL_ENOMEM, "out of memory for %zu images", n);
    else if ((rc = infer_run(m, items, n, on_rows, on_bad, &x, e)) || x.oom)
        rc = x.oom ? tl_errf(e, TL_ENOMEM, "out of memory") : rc; /* an error entry was lost */
    free(x.order);
    return rc;
}

void infer_predictions_free(infer_predictions *p)
{
    if (p->error)
        for (size_t i = 0; i < p->n; i++)
            free(p->error[i]);
    free(p->error);
    free(p->prob);
    free(p->top);
    memset(p, 0, sizeof *p);
}
