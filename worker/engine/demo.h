/* The engine smoke run behind `tlsweep demo`: one backbone with a fresh
 * head (GlobalAveragePooling, Dense 64 ReLU, Dropout 0.2), random weights,
 * trained with Adam on synth_images' separable task, epoch by epoch. It
 * exercises the engine end to end before real data and a sweep exist. */
#ifndef TLSWEEP_DEMO_H
#define TLSWEEP_DEMO_H

#include "common/base/err.h"
#include "worker/engine/train.h"
#include "worker/net/net.h"

typedef struct {
    const char *backbone;
    int size;          /* input side, >= 8 */
    float alpha;       /* MobileNetV2 width multiplier */
    int epochs;
    int batch;
    int ntrain, nval;  /* synthetic images; ntrain >= batch */
    int classes;       /* <= 9 (synth_images) */
    double lr;
} demo_cfg;

#define DEMO_CFG_DEFAULT {"mobilenet_v2", 32, 0.35f, 3, 32, 512, 128, 4, 1e-3}

typedef struct {
    double loss, accuracy;          /* over the epoch's training steps */
    double val_loss, val_accuracy;  /* inference mode, after the epoch */
    double images_per_s;            /* training throughput */
} demo_epoch_figs;

typedef struct {
    demo_cfg cfg;
    net n;             /* built by demo_open: layers, weights, arena for the summary */
    float *xtr, *xva;  /* (ntrain | nval, size, size, 3) */
    int *ytr, *yva;
    train_ctx t;
    int have_train;
} demo;

/* Builds and plans the net. On error d is closed. */
int demo_open(demo *d, const demo_cfg *cfg, tl_err *e);
/* The synthetic images and the trainer; TL_ENOMEM names the image count. */
int demo_prepare(demo *d, tl_err *e);
/* One epoch: every full training batch, then the validation images. */
void demo_epoch(demo *d, demo_epoch_figs *f);
void demo_close(demo *d);

#endif
