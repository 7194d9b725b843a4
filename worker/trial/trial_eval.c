/* Evaluation: the kept model of a trial on its test (or val) split, and a
 * written model file on a folder. */
#include <stdlib.h>
#include <string.h>

#include "worker/net/net_io.h"
#include "worker/trial/trial_int.h"

int trial__evaluate(trial__state *st, const sweep_stage *last, tl_err *e)
{
    trial_result *r = st->r;
    const data_split es = st->es;
    if (r->eval_split) {
        trial__run ev = {.cm = &st->cm};
        if (last->kind == SWEEP_STAGE_HEAD_ON_FEATURES) {
            ev.t = &st->th;
            trial__run_cached(&ev, st->feats[es], st->labels[es], st->F, NULL, st->rows[es],
                              st->cfg->batch, st->xb, st->yb);
        } else {
            ev.t = &st->tf;
            ev.counter = &r->backbone_images;
            int rc = trial__each_batch(&st->im, st->ids[es], st->nids[es], NULL, 0,
                                       trial__run_batch, &ev, e);
            if (rc)
                return rc;
        }
        r->eval_loss = ev.seen ? ev.loss / ev.seen : 0;
        r->eval_accuracy = ev.seen ? (double)ev.hits / ev.seen : 0;
    }
    size_t nc = (size_t)st->im.ix->n_classes;
    memcpy(r->confusion, st->cm.counts, nc * nc * sizeof(int64_t));
    return 0;
}

/* ---- evaluating a written model ------------------------------------------------------- */

typedef struct {
    net *n;
    long hits, seen;
} eval_ctx;

static int eval_batch(void *u, const loader_batch *b)
{
    eval_ctx *x = u;
    net_forward(x->n, b->x, b->n, 0);
    int64_t hits = 0;
    metrics_topk_correct(net_output(x->n), b->labels, (size_t)b->n, (size_t)net_last(x->n)->c, 1,
                         &hits, NULL);
    x->hits += hits;
    x->seen += b->n;
    return 0;
}

int trial_evaluate_file(const char *model_path, const char *dir, int batch, double *accuracy,
                        tl_err *e)
{
    model_spec s;
    tset ts;
    data_index ix = {0};
    net n = {0};
    model_spec_init(&s);
    tset_init(&ts);
    int rc = model_read(model_path, &s, &ts, e);
    if (rc)
        goto out;
    if (s.num_classes < 1) {
        rc = tl_errf(e, TL_EINVAL, "%s: the model has no classifier", model_path);
        goto out;
    }
    data_index_cfg dc = {dir, NULL, NULL, 0, 0};
    if ((rc = data_index_build(&ix, &dc, e)))
        goto out;
    if (ix.n_classes != s.num_classes) {
        rc = tl_errf(e, TL_EINVAL, "%s: %d classes, the model has %d", dir, ix.n_classes,
                     s.num_classes);
        goto out;
    }
    for (int i = 0; i < ix.n_classes && i < s.n_class_names; i++)
        if (strcmp(ix.classes[i], s.class_names[i])) {
            rc = tl_errf(e, TL_EINVAL, "%s: class %d is '%s', the model's is '%s'", dir, i,
                         ix.classes[i], s.class_names[i]);
            goto out;
        }
    if ((rc = net_build_from_spec(&n, &s, batch, e)))
        goto out;
    if ((rc = net_load_tset(&n, &ts, 1, 1, NULL, e)))
        goto out;
    trial_cfg tc;
    trial_cfg_default(&tc);
    tc.batch = batch;
    trial_result r;
    memset(&r, 0, sizeof r);
    trial__images c = {&tc, &ix, {s.width, s.height, (data_preprocess)s.preproc, 0, 0}, &r};
    size_t nid;
    size_t *ids = trial__ids_of(&ix, DATA_TRAIN, &nid);
    if (!ids) {
        rc = tl_errf(e, TL_ENOMEM, "evaluate: out of memory");
        goto out;
    }
    eval_ctx x = {&n, 0, 0};
    rc = trial__each_batch(&c, ids, nid, NULL, 0, eval_batch, &x, e);
    free(ids);
    *accuracy = x.seen ? (double)x.hits / x.seen : 0;
out:
    net_free(&n);
    data_index_free(&ix);
    tset_free(&ts);
    model_spec_free(&s);
    return rc;
}
