/* `tlsweep demo`'s run (see demo.h). */
#include "worker/engine/demo.h"

#include <stdlib.h>
#include <string.h>

#include "common/base/clock.h"
#include "worker/engine/synth.h"
#include "worker/net/backbones.h"

int demo_open(demo *d, const demo_cfg *cfg, tl_err *e)
{
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    net *n = &d->n;
    net_init(n, cfg->size, cfg->size, 3, NET_KERAS);
    net_backbone_cfg bc = {.alpha = cfg->alpha};
    int f = net_backbone(n, cfg->backbone, &bc, e);
    net_head_op head[] = {{NET_HEAD_GAP, 0, NET_ACT_NONE, 0},
                          {NET_HEAD_DENSE, 64, NET_ACT_RELU, 0},
                          {NET_HEAD_DROPOUT, 0, NET_ACT_NONE, 0.2f}};
    /* random weights: BN must learn its statistics (with pretrained weights
     * the default keeps them, as Keras advises) */
    net_set_bn_update(n, 1);
    /* and track them quickly, or validation (inference mode) lags far
     * behind training with Keras's momentum 0.999 over a few hundred steps */
    for (int i = 0; i < n->n_layers; i++)
        if (n->layers[i].kind == NET_BN)
            n->layers[i].u.bn.momentum = 0.1f;
    int rc = f;
    if (rc >= 0)
        rc = net_head(n, f, head, 3, cfg->classes, e); /* the classifier's index */
    if (rc >= 0)
        rc = net_finalize(n, cfg->batch, 42, e);
    if (rc < 0) {
        net_free(n);
        memset(d, 0, sizeof *d);
        return rc;
    }
    return 0;
}

int demo_prepare(demo *d, tl_err *e)
{
    const demo_cfg *c = &d->cfg;
    size_t img = (size_t)c->size * c->size * 3;
    d->xtr = malloc((size_t)c->ntrain * img * sizeof(float));
    d->xva = malloc((size_t)c->nval * img * sizeof(float));
    d->ytr = malloc((size_t)c->ntrain * sizeof(int));
    d->yva = malloc((size_t)c->nval * sizeof(int));
    if (!d->xtr || !d->xva || !d->ytr || !d->yva)
        return tl_errf(e, TL_ENOMEM, "out of memory for %d images", c->ntrain);
    synth_images(d->xtr, d->ytr, c->ntrain, c->size, c->classes, 1);
    synth_images(d->xva, d->yva, c->nval, c->size, c->classes, 2);
    optim_cfg oc = optim_cfg_default(OPTIM_ADAM);
    oc.learning_rate = c->lr;
    int rc = train_init(&d->t, &d->n, &oc, 7, e);
    if (rc)
        return rc;
    d->have_train = 1;
    return 0;
}

void demo_epoch(demo *d, demo_epoch_figs *f)
{
    const demo_cfg *c = &d->cfg;
    size_t img = (size_t)c->size * c->size * 3;
    int batch = c->batch;
    double t0 = tl_now(), loss = 0;
    int hits = 0, seen = 0;
    for (int b = 0; b + batch <= c->ntrain; b += batch) {
        int h = 0;
        loss += train_step(&d->t, d->xtr + (size_t)b * img, d->ytr + b, batch, &h) * batch;
        hits += h;
        seen += batch;
    }
    double dt = tl_now() - t0;
    int vh = 0, vs = 0;
    double vloss = 0;
    for (int b = 0; b < c->nval; b += batch) {
        int bs = c->nval - b < batch ? c->nval - b : batch, h = 0;
        vloss += train_eval(&d->t, d->xva + (size_t)b * img, d->yva + b, bs, &h) * bs;
        vh += h;
        vs += bs;
    }
    f->loss = loss / seen;
    f->accuracy = (double)hits / seen;
    f->val_loss = vloss / vs;
    f->val_accuracy = (double)vh / vs;
    f->images_per_s = seen / dt;
}

void demo_close(demo *d)
{
    if (d->have_train)
        train_free(&d->t);
    free(d->xtr);
    free(d->xva);
    free(d->ytr);
    free(d->yva);
    net_free(&d->n);
    memset(d, 0, sizeof *d);
}
