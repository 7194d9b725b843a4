/* A trial's stages from its mode and the feature cache (see sweep_plan.h). */
#include "common/sweep/sweep_plan.h"

#include <string.h>

/* Where a head on features gets them. */
static sweep_features head_features(const sweep_plan_in *in)
{
    if (in->augment)
        return SWEEP_FEATURES_EVERY_EPOCH;
    return in->cache_shared ? SWEEP_FEATURES_SHARED : SWEEP_FEATURES_ONCE;
}

static void add(sweep_plan *p, sweep_stage_kind kind, int first, int last,
                sweep_lr_divisor lr, sweep_features f)
{
    p->stage[p->n++] = (sweep_stage){kind, first, last, lr, f, 0};
}

int sweep_plan_make(sweep_plan *p, const sweep_plan_in *in, tl_err *e)
{
    memset(p, 0, sizeof *p);
    if (in->epochs < 1)
        return tl_errf(e, TL_EINVAL, "plan: need epochs >= 1, got %d", in->epochs);
    switch (in->mode.kind) {
    case SWEEP_FROZEN:
        if (in->cache_allowed)
            add(p, SWEEP_STAGE_HEAD_ON_FEATURES, 1, in->epochs, SWEEP_LR_AS_GIVEN,
                head_features(in));
        else
            add(p, SWEEP_STAGE_WHOLE_NET, 1, in->epochs, SWEEP_LR_AS_GIVEN, SWEEP_FEATURES_NONE);
        break;
    case SWEEP_FINE_TUNE:
    case SWEEP_FINE_TUNE_AT:
        add(p, SWEEP_STAGE_WHOLE_NET, 1, in->epochs, SWEEP_LR_AS_GIVEN, SWEEP_FEATURES_NONE);
        break;
    case SWEEP_FROZEN_THEN_FINE_TUNE: {
        int s1 = in->mode.frozen_epochs;
        if (s1 < 1 || s1 >= in->epochs)
            return tl_errf(e, TL_EINVAL, "plan: %d frozen epochs leave none of %d to fine-tune",
                           s1, in->epochs);
        add(p, SWEEP_STAGE_HEAD_ON_FEATURES, 1, s1, SWEEP_LR_AS_GIVEN, head_features(in));
        add(p, SWEEP_STAGE_WHOLE_NET, s1 + 1, in->epochs, SWEEP_LR_TENTH, SWEEP_FEATURES_NONE);
        break;
    }
    default:
        return tl_errf(e, TL_EINVAL, "plan: unknown mode %d", (int)in->mode.kind);
    }
    if (in->resuming) {
        /* a snapshot past a stage's last epoch skips it; the last stage
         * stays, for the snapshot's own check of its epoch */
        int skip = 0;
        while (skip < p->n - 1 && in->resume_epoch > p->stage[skip].last)
            skip++;
        memmove(p->stage, p->stage + skip, (size_t)(p->n - skip) * sizeof *p->stage);
        p->n -= skip;
        p->stage[0].resume = 1;
    }
    return 0;
}

int sweep_plan_uses_shared_cache(const sweep_plan *p)
{
    for (int i = 0; i < p->n; i++)
        if (p->stage[i].features == SWEEP_FEATURES_SHARED)
            return 1;
    return 0;
}

int sweep_plan_has_whole_net(const sweep_plan *p)
{
    for (int i = 0; i < p->n; i++)
        if (p->stage[i].kind == SWEEP_STAGE_WHOLE_NET)
            return 1;
    return 0;
}

int sweep_plan_own_epochs(const sweep_plan *p)
{
    int n = 0;
    for (int i = 0; i < p->n; i++)
        if (p->stage[i].features != SWEEP_FEATURES_SHARED)
            n += p->stage[i].last - p->stage[i].first + 1;
    return n;
}

int sweep_trial_plan(const sweep *s, const sweep_trial *t, sweep_plan *p, tl_err *e)
{
    sweep_plan_in in = {
        .mode = t->mode,
        .epochs = t->epochs,
        .augment = data_augment_active(&t->augment),
        .cache_allowed = !s->no_feature_cache,
        .cache_shared = !s->no_feature_cache,
    };
    return sweep_plan_make(p, &in, e);
}
