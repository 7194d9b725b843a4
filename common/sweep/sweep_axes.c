/* The axes that change a trial's network and input rather than its
 * training: its head (model.head, grid.head, or grid.dense_units and
 * grid.dropout), grid.augment's presets, and how results name both. */
#include "common/sweep/sweep.h"

#include <stdio.h>
#include <string.h>

int sweep_augment_preset(const char *name, data_augment_cfg *cfg)
{
    data_augment_cfg_default(cfg);
    if (!strcmp(name, "none"))
        return 0;
    int strong = !strcmp(name, "strong");
    if (!strong && strcmp(name, "light"))
        return TL_ENOTFOUND;
    /* light: the geometric jitter of Keras's transfer-learning guide;
     * strong: more of it, and photometric changes too */
    float shift = strong ? 0.2f : 0.1f;
    cfg->horizontal_flip = 1;
    cfg->rotation_range = strong ? 30.0f : 10.0f;
    cfg->width_shift_range = shift;
    cfg->height_shift_range = shift;
    cfg->zoom_range[0] = 1.0f - shift;
    cfg->zoom_range[1] = 1.0f + shift;
    if (strong) {
        cfg->brightness_range[0] = 0.8f;
        cfg->brightness_range[1] = 1.2f;
        cfg->contrast = 0.2f;
    }
    return 0;
}

/* The head of grid.dense_units and grid.dropout: GAP, then Dense(units,
 * relu) when dense_units is given, then Dropout(rate) when rate > 0. */
static int parts_head(const sweep_trial *t, sweep_head_op *ops)
{
    int n = 0;
    ops[n++] = (sweep_head_op){SWEEP_HEAD_GAP, 0, SWEEP_ACT_LINEAR, 0};
    if (t->dense_units > 0)
        ops[n++] = (sweep_head_op){SWEEP_HEAD_DENSE, t->dense_units, SWEEP_ACT_RELU, 0};
    if (t->dropout > 0)
        ops[n++] = (sweep_head_op){SWEEP_HEAD_DROPOUT, 0, SWEEP_ACT_LINEAR, (float)t->dropout};
    return n;
}

int sweep_trial_head(const sweep *s, const sweep_trial *t, sweep_head_op *ops)
{
    if (s->n_dense_units || s->n_dropouts)
        return parts_head(t, ops);
    const sweep_head_op *src = s->head;
    int n = s->n_head;
    if (t->head_item >= 0 && t->head_item < s->n_heads) {
        src = s->heads[t->head_item].op;
        n = s->heads[t->head_item].n;
    }
    if (n > SWEEP_MAX_HEAD_OPS)
        n = SWEEP_MAX_HEAD_OPS;   /* the parser refuses longer heads */
    if (n > 0)
        memcpy(ops, src, (size_t)n * sizeof *ops);
    return n;
}

int sweep_head_pooled(const sweep_head_op *ops, int n)
{
    return n == 0 || ops[0].kind == SWEEP_HEAD_GAP;
}

void sweep_head_str(const sweep_head_op *ops, int n, char *buf, size_t size)
{
    static const char *const acts[] = {"", " relu", " relu6"};
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && len < size; i++) {
        const sweep_head_op *o = &ops[i];
        const char *sep = i ? " > " : "";
        int w;
        if (o->kind == SWEEP_HEAD_DENSE)
            w = snprintf(buf + len, size - len, "%sdense %d%s", sep, o->units,
                         acts[(unsigned)o->act < 3 ? o->act : 0]);
        else if (o->kind == SWEEP_HEAD_DROPOUT)
            w = snprintf(buf + len, size - len, "%sdropout %g", sep, (double)o->rate);
        else
            w = snprintf(buf + len, size - len, "%s%s", sep,
                         o->kind == SWEEP_HEAD_GAP ? "gap" : "flatten");
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

/* Appends " name" and the values to buf at *len, within size. */
static void put(char *buf, size_t size, size_t *len, const char *fmt, double a, double b)
{
    if (*len >= size)
        return;
    int w = snprintf(buf + *len, size - *len, fmt, a, b);
    if (w > 0)
        *len += (size_t)w;
}

void sweep_augment_str(const sweep *s, const sweep_trial *t, char *buf, size_t size)
{
    if (t->augment_item >= 0 && t->augment_item < s->n_augments &&
        s->augments[t->augment_item].preset) {
        snprintf(buf, size, "%s", s->augments[t->augment_item].preset);
        return;
    }
    const data_augment_cfg *a = &t->augment;
    size_t len = 0;
    buf[0] = '\0';
    if (a->horizontal_flip)
        put(buf, size, &len, " flip", 0, 0);
    if (a->rotation_range != 0)
        put(buf, size, &len, " rotation %g", a->rotation_range, 0);
    if (a->width_shift_range != 0 || a->height_shift_range != 0)
        put(buf, size, &len, " shift %g/%g", a->width_shift_range, a->height_shift_range);
    int zoom_off = (a->zoom_range[0] == 0 && a->zoom_range[1] == 0) ||
                   (a->zoom_range[0] == 1 && a->zoom_range[1] == 1);
    if (!zoom_off)
        put(buf, size, &len, " zoom %g-%g", a->zoom_range[0], a->zoom_range[1]);
    if (a->brightness_range[0] != 0 || a->brightness_range[1] != 0)
        put(buf, size, &len, " brightness %g-%g", a->brightness_range[0], a->brightness_range[1]);
    if (a->contrast != 0)
        put(buf, size, &len, " contrast %g", a->contrast, 0);
    if (!len)
        snprintf(buf, size, "none");
    else
        memmove(buf, buf + 1, strlen(buf + 1) + 1);   /* the leading space */
}
