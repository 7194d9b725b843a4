/* Expansion: the grid's cartesian product in the documented order
 * (sweep.h) or a random search's draws, each trial's id and journal key,
 * and the frozen feature-cache groups. */
#include "common/sweep/sweep.h"
#include "common/sweep/sweep_plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/hash.h"
#include "common/base/rng.h"
#include "common/base/strset.h"
#include "common/base/strbuf.h"

/* Shortest %e that reads back as x (as a float when is_float), without
 * '+': 1e-03, 1.5e-04, 3e00. */
static void num_tag_of(double x, int is_float, char *buf, size_t n)
{
    char t[40];
    for (int p = 0; p < 17; p++) {
        snprintf(t, sizeof t, "%.*e", p, x);
        if (is_float ? strtof(t, NULL) == (float)x : strtod(t, NULL) == x)
            break;
    }
    size_t j = 0;
    for (size_t i = 0; t[i] && j + 1 < n; i++)
        if (t[i] != '+')
            buf[j++] = t[i];
    buf[j] = '\0';
}

static void num_tag(double x, char *buf, size_t n)
{
    num_tag_of(x, 0, buf, n);
}

static void mode_tag(const sweep_mode *m, char *buf, size_t n)
{
    switch (m->kind) {
    case SWEEP_FROZEN: snprintf(buf, n, "frozen"); break;
    case SWEEP_FINE_TUNE: snprintf(buf, n, "ft"); break;
    case SWEEP_FINE_TUNE_AT: snprintf(buf, n, "ft%d", m->fine_tune_at); break;
    case SWEEP_FROZEN_THEN_FINE_TUNE:
        snprintf(buf, n, "frozen%d-ft%d", m->frozen_epochs, m->fine_tune_at);
        break;
    }
}

static void sched_tag(const sweep_sched *sc, char *buf, size_t n)
{
    char f[32];
    switch (sc->kind) {
    case SWEEP_SCHED_CONSTANT: snprintf(buf, n, "const"); break;
    case SWEEP_SCHED_COSINE: snprintf(buf, n, "cosine"); break;
    case SWEEP_SCHED_STEP:
        num_tag(sc->factor, f, sizeof f);
        snprintf(buf, n, "step%dx%s", sc->every_epochs, f);
        break;
    }
}

/* An augmentation and a head as key text. */
static void augment_key(tl_strbuf *b, const data_augment_cfg *a)
{
    tl_strbuf_printf(b, "%d,%a,%a,%a,%a,%a,%a,%a,%a", a->horizontal_flip, (double)a->rotation_range,
                     (double)a->width_shift_range, (double)a->height_shift_range,
                     (double)a->zoom_range[0], (double)a->zoom_range[1],
                     (double)a->brightness_range[0], (double)a->brightness_range[1],
                     (double)a->contrast);
}

static void head_key(tl_strbuf *b, const sweep_head_op *ops, int n)
{
    for (int i = 0; i < n; i++)
        tl_strbuf_printf(b, "%d:%d:%d:%a;", (int)ops[i].kind, ops[i].units, (int)ops[i].act,
                         (double)ops[i].rate);
}

/* Everything outside the trial's own grid values that changes its result. */
static void shared_text(const sweep *s, tl_strbuf *b)
{
    tl_strbuf_printf(b, "train=%s|val=%s|test=%s|split=%a|size=%d|dseed=%llu|seed=%llu|aug=",
                     s->train_dir, s->val_dir ? s->val_dir : "", s->test_dir ? s->test_dir : "",
                     s->validation_split, s->image_size, (unsigned long long)s->data_seed,
                     (unsigned long long)s->seed);
    augment_key(b, &s->augment);
    tl_strbuf_printf(b, "|head=");
    head_key(b, s->head, s->n_head);
    /* only when given: trials without it keep the keys they had */
    const sweep_early_stop *es = &s->early_stop;
    if (es->enabled)
        tl_strbuf_printf(b, "|early_stop=%d,%d,%a,%d", (int)es->monitor, es->patience,
                         es->min_delta, es->restore_best_weights);
}

/* The trial's head when it is not model.head (n 0 when it is). */
static int own_head(const sweep *s, const sweep_trial *t, sweep_head_op *ops)
{
    int n = sweep_trial_head(s, t, ops);
    if (n == s->n_head && !memcmp(ops, s->head, (size_t)n * sizeof *ops))
        return 0;
    return n;
}

static int own_augment(const sweep *s, const sweep_trial *t)
{
    return memcmp(&t->augment, &s->augment, sizeof t->augment) != 0;
}

/* grid.head's item as id text: -hgap_d128r_do2e-01. */
static void head_tag(tl_strbuf *b, const sweep_head_op *ops, int n)
{
    static const char *const acts[] = {"", "r", "r6"};
    char num[40];
    tl_strbuf_printf(b, "-h");
    for (int i = 0; i < n; i++) {
        const char *sep = i ? "_" : "";
        switch (ops[i].kind) {
        case SWEEP_HEAD_GAP: tl_strbuf_printf(b, "%sgap", sep); break;
        case SWEEP_HEAD_FLATTEN: tl_strbuf_printf(b, "%sflat", sep); break;
        case SWEEP_HEAD_DENSE:
            tl_strbuf_printf(b, "%sd%d%s", sep, ops[i].units, acts[(unsigned)ops[i].act < 3 ? ops[i].act : 0]);
            break;
        case SWEEP_HEAD_DROPOUT:
            num_tag_of(ops[i].rate, 1, num, sizeof num);
            tl_strbuf_printf(b, "%sdo%s", sep, num);
            break;
        }
    }
}

/* The id's part for head, dense_units, dropout, augment and image_size:
 * nothing for a value the sweep-wide settings give anyway, so that a file
 * which gains one of these axes keeps the ids of its trials. */
static void axes_tags(const sweep *s, const sweep_trial *t, tl_strbuf *b)
{
    sweep_head_op ops[SWEEP_MAX_HEAD_OPS];
    char num[40];
    int n = own_head(s, t, ops);
    if (n && s->n_heads)
        head_tag(b, ops, n);
    if (n && s->n_dense_units)
        tl_strbuf_printf(b, "-du%d", t->dense_units);
    if (n && s->n_dropouts) {
        num_tag(t->dropout, num, sizeof num);
        tl_strbuf_printf(b, "-do%s", num);
    }
    if (own_augment(s, t)) {
        const char *preset = t->augment_item >= 0 ? s->augments[t->augment_item].preset : NULL;
        if (preset)
            tl_strbuf_printf(b, "-aug%s", preset);
        else /* a mapping: named by its content */
            tl_strbuf_printf(b, "-aug%08x", (unsigned)tl_fnv1a_bytes(TL_FNV1A_OFFSET, &t->augment,
                                                                     sizeof t->augment));
    }
    if (t->image_size != s->image_size)
        tl_strbuf_printf(b, "-sz%d", t->image_size);
}

/* The trial's id from its grid values (b is scratch); an id that does not
 * fit sweep_trial.id is an error rather than a cut that could make two
 * trials one. */
static int trial_id(const sweep *s, sweep_trial *t, tl_strbuf *b, tl_err *e)
{
    char md[48], num[40];
    b->len = 0;
    mode_tag(&t->mode, md, sizeof md);
    num_tag(t->learning_rate, num, sizeof num);
    tl_strbuf_printf(b, "%s-%s-lr%s-%s-b%d", t->backbone, md, num,
                     sweep_optimizer_name(t->optimizer), t->batch_size);
    if (s->n_weight_decays) {
        num_tag(t->weight_decay, num, sizeof num);
        tl_strbuf_printf(b, "-wd%s", num);
    }
    if (s->n_momenta) {
        num_tag(t->momentum, num, sizeof num);
        tl_strbuf_printf(b, "-m%s", num);
    }
    if (s->n_scheds) {
        sched_tag(&t->sched, md, sizeof md);
        tl_strbuf_printf(b, "-%s", md);
    }
    /* fp32, the default, leaves the id as it was before precisions */
    if (t->precision == SWEEP_BF16)
        tl_strbuf_printf(b, "-bf16");
    if (t->label_smoothing != 0) {
        num_tag(t->label_smoothing, num, sizeof num);
        tl_strbuf_printf(b, "-ls%s", num);
    }
    axes_tags(s, t, b);
    if (b->oom)
        return tl_errf(e, TL_ENOMEM, "out of memory expanding the grid");
    if (b->len >= sizeof t->id)
        return tl_errf(e, TL_EINVAL, "%s: grid: trial id '%.60s...' is %zu characters, at most "
                       "%zu (shorter numbers in the grid?)", s->file ? s->file : "sweep",
                       b->s, b->len, sizeof t->id - 1);
    memcpy(t->id, b->s, b->len + 1);
    return 0;
}

/* A trial's journal key: FNV-1a of its whole identity, held in a growable
 * buffer so that no part (a long weights path) pushes another (the
 * epochs) out: the grid point, the shared settings, and the dataset index
 * fingerprint once sweep_bind_data has given one. The text of a trial
 * without a bound dataset hashes as it did before keys had one, and an
 * fp32 trial's as before precisions (old out/ folders resume). */
static uint64_t trial_key(const sweep *s, const sweep_trial *t, const tl_strbuf *shared,
                          tl_strbuf *b)
{
    b->len = 0;
    tl_strbuf_printf(b, "tlsweep-trial-v1|%s|weights=%s|epochs=%d|lr=%a|wd=%a|m=%a|", t->id,
                     t->weights, t->epochs, t->learning_rate, t->weight_decay, t->momentum);
    tl_strbuf_put(b, shared->s, shared->len);
    if (t->precision == SWEEP_BF16)
        tl_strbuf_printf(b, "|precision=bf16");
    if (t->label_smoothing != 0)
        tl_strbuf_printf(b, "|label_smoothing=%a", t->label_smoothing);
    sweep_head_op ops[SWEEP_MAX_HEAD_OPS];
    int n = own_head(s, t, ops);
    if (n) {
        tl_strbuf_printf(b, "|trial_head=");
        head_key(b, ops, n);
    }
    if (own_augment(s, t)) {
        tl_strbuf_printf(b, "|trial_augment=");
        augment_key(b, &t->augment);
    }
    if (t->image_size != s->image_size)
        tl_strbuf_printf(b, "|image_size=%d", t->image_size);
    if (s->data_bound)
        tl_strbuf_printf(b, "|data=%016llx", (unsigned long long)s->data_fingerprint);
    return tl_fnv1a_bytes(TL_FNV1A_OFFSET, b->s, b->len);
}

void sweep_expand_free(sweep *s)
{
    for (int g = 0; s->cache_groups && g < s->n_cache_groups; g++)
        free(s->cache_groups[g].text);
    free(s->cache_groups);
    free(s->trials);
    s->cache_groups = NULL;
    s->trials = NULL;
    s->n_cache_groups = 0;
    s->n_trials = 0;
}

int sweep_bind_data(sweep *s, uint64_t fingerprint, tl_err *e)
{
    s->data_fingerprint = fingerprint;
    s->data_bound = 1;
    return sweep_expand(s, e);
}

/* Scratch for finishing trials: the shared text, the id/key buffer, the
 * cache text, and the ids drawn so far (random search). */
typedef struct {
    tl_strbuf shared, kt, text;
    tl_strset ids;
} expand_buf;

/* A trial whose values are set: its id, key and feature-cache group. */
static int finish_trial(sweep *s, sweep_trial *t, expand_buf *x, tl_err *e)
{
    int rc;
    t->weights = sweep_weights_path(s, t->backbone);
    t->epochs = s->epochs;
    if ((rc = trial_id(s, t, &x->kt, e)))
        return rc;
    t->key = trial_key(s, t, &x->shared, &x->kt);

    t->cache_group = -1;
    sweep_plan plan;
    if ((rc = sweep_trial_plan(s, t, &plan, e)))
        return rc;
    if (!sweep_plan_uses_shared_cache(&plan))
        return 0;
    tl_strbuf *text = &x->text;
    text->len = 0;
    tl_strbuf_printf(text, "%s|%s|%d|%s", t->backbone, t->weights, t->image_size,
                     sweep_backbone_preprocessing(t->backbone));
    /* bf16 features are other features */
    if (t->precision == SWEEP_BF16)
        tl_strbuf_printf(text, "|bf16");
    /* and so are unpooled ones (flatten) beside pooled (global_average_pooling) */
    sweep_head_op ops[SWEEP_MAX_HEAD_OPS];
    int pooled = sweep_head_pooled(ops, sweep_trial_head(s, t, ops));
    if (pooled != sweep_head_pooled(s->head, s->n_head))
        tl_strbuf_printf(text, pooled ? "|pooled" : "|unpooled");
    if (x->kt.oom || text->oom)
        return tl_errf(e, TL_ENOMEM, "out of memory expanding the grid");
    int g = 0;
    while (g < s->n_cache_groups && strcmp(s->cache_groups[g].text, text->s) != 0)
        g++;
    if (g == s->n_cache_groups) {
        if (!(s->cache_groups[g].text = strdup(text->s)))
            return tl_errf(e, TL_ENOMEM, "out of memory expanding the grid");
        s->cache_groups[g].key = tl_fnv1a_str(TL_FNV1A_OFFSET, text->s);
        s->n_cache_groups++;
    }
    s->cache_groups[g].n_trials++;
    t->cache_group = g;
    t->cache_key = s->cache_groups[g].key;
    return 0;
}

/* The grid's axes, outermost first (sweep.h); also the random draws' axis numbers. */
enum {
    AX_BACKBONE, AX_MODE, AX_LR, AX_OPT, AX_BATCH, AX_WD, AX_MOM, AX_SCHED, AX_PREC, AX_LS,
    AX_HEAD, AX_DU, AX_DO, AX_AUG, AX_SIZE, N_AXES
};

/* Each axis's number of values; 1 for one the file leaves out. */
static void axis_lengths(const sweep *s, int *len)
{
    const int n[N_AXES] = {s->n_backbones, s->n_modes, s->n_learning_rates, s->n_optimizers,
                           s->n_batch_sizes, s->n_weight_decays, s->n_momenta, s->n_scheds,
                           s->n_precisions, s->n_label_smoothings, s->n_heads,
                           s->n_dense_units, s->n_dropouts, s->n_augments, s->n_image_sizes};
    for (int a = 0; a < N_AXES; a++)
        len[a] = n[a] > 0 ? n[a] : 1;
}

double sweep_grid_size(const sweep *s)
{
    int len[N_AXES];
    axis_lengths(s, len);
    double total = 1;
    for (int a = 0; a < N_AXES; a++)
        total *= len[a];
    return total;
}

/* The trial at value ix[a] of every axis a; the defaults where the file
 * gives no list. */
static void set_axes(const sweep *s, sweep_trial *t, const int *ix)
{
    t->backbone = s->backbones[ix[AX_BACKBONE]];
    t->mode = s->modes[ix[AX_MODE]];
    t->learning_rate = s->learning_rates[ix[AX_LR]];
    t->optimizer = s->optimizers[ix[AX_OPT]];
    t->batch_size = s->batch_sizes[ix[AX_BATCH]];
    t->weight_decay = s->n_weight_decays ? s->weight_decays[ix[AX_WD]] : 0;
    t->momentum = s->n_momenta ? s->momenta[ix[AX_MOM]] : -1;
    memset(&t->sched, 0, sizeof t->sched);
    if (s->n_scheds)
        t->sched = s->scheds[ix[AX_SCHED]];
    t->precision = s->n_precisions ? s->precisions[ix[AX_PREC]] : SWEEP_FP32;
    t->label_smoothing = s->n_label_smoothings ? s->label_smoothings[ix[AX_LS]] : 0;
    t->head_item = s->n_heads ? ix[AX_HEAD] : -1;
    t->dense_units = s->n_dense_units ? s->dense_units[ix[AX_DU]] : 0;
    t->dropout = s->n_dropouts ? s->dropouts[ix[AX_DO]] : 0;
    t->augment_item = s->n_augments ? ix[AX_AUG] : -1;
    t->augment = s->n_augments ? s->augments[ix[AX_AUG]].cfg : s->augment;
    t->image_size = s->n_image_sizes ? s->image_sizes[ix[AX_SIZE]] : s->image_size;
}

static int expand_grid(sweep *s, expand_buf *x, tl_err *e)
{
    int len[N_AXES], ix[N_AXES];
    axis_lengths(s, len);
    size_t total = (size_t)sweep_grid_size(s);
    for (size_t k = 0; k < total; k++) {
        /* k in mixed radix, the innermost axis the last digit */
        size_t rest = k;
        for (int a = N_AXES - 1; a >= 0; a--) {
            ix[a] = (int)(rest % (size_t)len[a]);
            rest /= (size_t)len[a];
        }
        sweep_trial *t = &s->trials[k];
        t->index = (int)k;
        set_axes(s, t, ix);
        int rc = finish_trial(s, t, x, e);
        if (rc)
            return rc;
    }
    s->n_trials = total;
    return 0;
}

double sweep_draw_u(uint64_t seed, uint64_t k, int attempt, int axis)
{
    uint64_t base = rng_mix(rng_mix(seed, k), (uint64_t)attempt);
    return (double)(rng_hash(base, (uint64_t)axis) >> 11) * 0x1p-53;
}

double sweep_dist_value(const sweep_dist *d, double u)
{
    double v;
    switch (d->kind) {
    case SWEEP_DIST_LOG_UNIFORM: v = exp(log(d->lo) + u * (log(d->hi) - log(d->lo))); break;
    case SWEEP_DIST_INT_UNIFORM: v = d->lo + floor(u * (d->hi - d->lo + 1)); break;
    default: v = d->lo + u * (d->hi - d->lo); break;
    }
    char t[32];
    snprintf(t, sizeof t, "%.5e", v);
    v = strtod(t, NULL);
    return v < d->lo ? d->lo : v > d->hi ? d->hi : v;
}

/* Item of a list of n drawn at u. */
static int pick(int n, double u)
{
    int i = (int)(u * n);
    return i < n ? i : n - 1;
}

/* Random trial k, attempt a: every axis drawn from its own counter, so
 * the draw of one axis does not depend on which others the file samples. */
static void draw_trial(const sweep *s, sweep_trial *t, size_t k, int a)
{
    int len[N_AXES], ix[N_AXES];
    double u[N_AXES];
    axis_lengths(s, len);
    for (int ax = 0; ax < N_AXES; ax++) {
        u[ax] = sweep_draw_u(s->search_seed, k, a, ax);
        ix[ax] = pick(len[ax], u[ax]);
    }
    set_axes(s, t, ix);
    /* a sampled axis has a one-element list: its value is the range's */
    if (s->lr_dist.kind)
        t->learning_rate = sweep_dist_value(&s->lr_dist, u[AX_LR]);
    if (s->batch_dist.kind)
        t->batch_size = (int)sweep_dist_value(&s->batch_dist, u[AX_BATCH]);
    if (s->wd_dist.kind)
        t->weight_decay = sweep_dist_value(&s->wd_dist, u[AX_WD]);
    if (s->mom_dist.kind)
        t->momentum = sweep_dist_value(&s->mom_dist, u[AX_MOM]);
    if (s->ls_dist.kind)
        t->label_smoothing = sweep_dist_value(&s->ls_dist, u[AX_LS]);
    if (s->du_dist.kind)
        t->dense_units = (int)sweep_dist_value(&s->du_dist, u[AX_DU]);
    if (s->do_dist.kind)
        t->dropout = sweep_dist_value(&s->do_dist, u[AX_DO]);
}

/* Draws that repeat an earlier trial are drawn again, this many times. */
enum { SWEEP_MAX_REDRAWS = 1000 };

static int expand_random(sweep *s, expand_buf *x, tl_err *e)
{
    for (size_t k = 0; k < (size_t)s->search_trials; k++) {
        sweep_trial *t = &s->trials[k];
        int added = 0;
        for (int a = 0; !added; a++) {
            if (a == SWEEP_MAX_REDRAWS)
                return tl_errf(e, TL_EINVAL, "%s: search.trials: expected at most as many trials as "
                               "the space has distinct configurations (trial %zu repeated an earlier "
                               "one %d times)", s->file ? s->file : "sweep", k + 1, a);
            memset(t, 0, sizeof *t);
            t->index = (int)k;
            draw_trial(s, t, k, a);
            int rc = trial_id(s, t, &x->kt, e);
            if (rc)
                return rc;
            if ((added = tl_strset_add(&x->ids, t->id)) < 0)
                return tl_errf(e, TL_ENOMEM, "out of memory expanding the grid");
        }
        int rc = finish_trial(s, t, x, e);
        if (rc)
            return rc;
        s->n_trials = k + 1;
    }
    return 0;
}

int sweep_expand(sweep *s, tl_err *e)
{
    double total = sweep_grid_size(s);
    if (sweep_draws(s))
        total = s->search_trials;
    if (total < 1 || total > SWEEP_MAX_TRIALS)
        return tl_errf(e, TL_EINVAL, "%s: grid: expected 1 to %d trials, the product of the lists is %.0f",
                       s->file ? s->file : "sweep", SWEEP_MAX_TRIALS, total);
    sweep_expand_free(s);
    s->trials = calloc((size_t)total, sizeof *s->trials);
    /* at most a group per trial */
    s->cache_groups = calloc((size_t)total, sizeof *s->cache_groups);
    expand_buf x = {TL_STRBUF_INIT, TL_STRBUF_INIT, TL_STRBUF_INIT, {0}};
    tl_strset_init(&x.ids);
    shared_text(s, &x.shared);
    int rc;
    if (!s->trials || !s->cache_groups || x.shared.oom)
        rc = tl_errf(e, TL_ENOMEM, "out of memory expanding the grid");
    else if (sweep_draws(s))
        rc = expand_random(s, &x, e);
    else
        rc = expand_grid(s, &x, e);
    if (!rc && x.kt.oom)
        rc = tl_errf(e, TL_ENOMEM, "out of memory expanding the grid");
    tl_strbuf_free(&x.shared);
    tl_strbuf_free(&x.kt);
    tl_strbuf_free(&x.text);
    tl_strset_free(&x.ids);
    return rc;
}
