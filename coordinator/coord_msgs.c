/* What workers send the coordinator, and the link's timers. */
#include "coordinator/coord_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/clock.h"
#include "common/msg/msg.h"

/* ---- messages -------------------------------------------------------------------------- */

static cworker *worker_of(coord *c, int rank)
{
    for (int w = 0; w < c->n_workers; w++)
        if (c->workers[w].rank == rank)
            return &c->workers[w];
    return NULL;
}

static void on_hello(coord *c, cworker *k, const Tlsweep__Envelope *env)
{
    tl_err e = {0};
    if (msg_hello_check(env, &e)) {
        coord_fail(c, &e);
        return;
    }
    const Tlsweep__Hello *h = env->hello;
    snprintf(k->host, sizeof k->host, "%s", h->host);
    k->threads = h->threads;
    Tlsweep__Setup su = TLSWEEP__SETUP__INIT;
    su.sweep_file = c->s->file;
    su.sweep_text.data = (uint8_t *)c->o->sweep_text;
    su.sweep_text.len = c->o->sweep_len;
    su.out_dir = (char *)c->out;
    su.threads = (uint32_t)(c->s->threads > 0 ? c->s->threads : c->o->threads);
    su.index_items = c->ix.n_items;
    su.index_fingerprint = c->fingerprint;
    Tlsweep__Envelope out = TLSWEEP__ENVELOPE__INIT;
    out.body_case = TLSWEEP__ENVELOPE__BODY_SETUP;
    out.setup = &su;
    out.seq = ++c->seq;
    if (msg_link_send(c->l, k->rank, &out, &e)) {
        coord_fail(c, &e);
        return;
    }
    if (k->state == CW_NEW) /* not one told to stop before its Hello came */
        k->state = CW_IDLE;
    c->hellos++;
    if (c->hellos == c->n_workers)
        coord_log(c, "workers: %d ready (%s%s)", c->n_workers, k->host,
                  c->n_workers > 1 ? ", ..." : "");
}

static void on_features(coord *c, cworker *k, const Tlsweep__FeatureChunk *f)
{
    int g = f->cache_group;
    if (g < 0 || g >= c->s->n_cache_groups || c->groups[g].state != CG_EXTRACTING) {
        coord_failf(c, TL_EINVAL, "a feature chunk for a cache group not being extracted");
        return;
    }
    cgroup *cg = &c->groups[g];
    const Tlsweep__Tensor *x = f->features;
    size_t n = f->n_image_ids;
    size_t dim = x && x->n_shape == 2 ? (size_t)x->shape[1] : 0;
    if (n && (!x || x->n_data != n * dim || (size_t)x->shape[0] != n || !dim ||
              (cg->dim && dim != cg->dim))) {
        coord_failf(c, TL_EFORMAT, "a feature chunk whose tensor does not match its image ids");
        return;
    }
    if (n && !cg->x) {
        cg->dim = dim;
        cg->x = calloc(c->ix.n_items * dim, sizeof(float));
        cg->ok = calloc(c->ix.n_items, 1);
        if (!cg->x || !cg->ok) {
            coord_failf(c, TL_ENOMEM, "out of memory for the feature cache");
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t id = f->image_ids[i];
        if (id >= c->ix.n_items) {
            coord_failf(c, TL_EFORMAT, "a feature chunk with an image id outside the index");
            return;
        }
        memcpy(cg->x + (size_t)id * dim, x->data + i * dim, dim * sizeof(float));
        cg->ok[id] = 1;
    }
    cg->run_images += n;
    if (!f->last)
        return;
    cg->skipped += f->n_skipped_ids;
    cg->run_images += f->n_skipped_ids;
    coord__task_over(k);
    if (++cg->shards_done == cg->n_shards) {
        if (!cg->x) {
            coord_failf(c, TL_EINVAL, "no image of the dataset decoded");
            return;
        }
        cg->state = CG_WRITING;
        coord__queue_write(c, WRITE_FCACHE, g, NULL, cg->path);
    }
}

static void on_result(coord *c, cworker *k, Tlsweep__Envelope *env)
{
    const Tlsweep__TrialResult *r = env->trial_result;
    coord__task_over(k);
    if (k->kind == CW_TASK_EXTRACT) {
        /* an extraction that stopped on request: the shard is lost */
        msg_free(env);
        return;
    }
    int i = coord__find_trial(c, r->trial_index, r->trial_key);
    if (i < 0) {
        msg_free(env);
        coord_failf(c, TL_EINVAL, "a result for a trial not in this sweep");
        return;
    }
    ctrial *t = &c->trials[i];
    if (r->status == TLSWEEP__TRIAL_RESULT__STATUS__DONE) {
        t->st = TR_FINISHING;
        c->queue[c->n_queue++] = env;
        coord__process_results(c);
        return;
    }
    if (r->status == TLSWEEP__TRIAL_RESULT__STATUS__STOPPED) {
        t->st = TR_PENDING;
        coord_log(c, "stopped %s after %u epoch%s (checkpointed)", r->trial_id, r->epochs_done,
                  r->epochs_done == 1 ? "" : "s");
    } else {
        t->st = TR_FAILED;
        c->n_failed++;
        coord_log(c, "failed %s on rank %d: %s", r->trial_id, k->rank, r->message);
        tl_err je = {0};
        if (coord__journal_result(c, r, &je))
            coord__fail_store(c, &je);
        if (t->res)
            tlsweep__trial_result__free_unpacked(t->res, NULL);
        t->res = coord__copy_result(r); /* its message: results.json and coord_run's line */
    }
    msg_free(env);
}

/* Bad images arrive as warnings; each distinct file is printed and listed once. */
static void on_error(coord *c, cworker *k, const Tlsweep__Error *er)
{
    if (er->fatal) {
        /* the worker's own code (TL_E*) travels in the Error */
        coord_failf(c, er->code < 0 ? er->code : TL_EINVAL, "rank %d (%s): %s", k->rank, k->host,
                    er->message);
        return;
    }
    for (size_t i = 0; i < c->n_bad; i++)
        if (!strcmp(c->bad[i], er->message))
            return;
    if (c->n_bad == c->cap_bad) {
        size_t cap = c->cap_bad ? 2 * c->cap_bad : 16;
        char **b = realloc(c->bad, cap * sizeof *b);
        if (!b)
            return;
        c->bad = b;
        c->cap_bad = cap;
    }
    c->bad[c->n_bad] = strdup(er->message);
    if (c->bad[c->n_bad]) {
        coord_log(c, "warning: %s", er->message);
        c->n_bad++;
    }
}

static void handle(coord *c, Tlsweep__Envelope *env, int from)
{
    cworker *k = worker_of(c, from);
    if (!k) {
        msg_free(env);
        return;
    }
    k->last_heard = tl_now();
    k->silent_warned = 0;
    switch (env->body_case) {
    case TLSWEEP__ENVELOPE__BODY_HELLO:
        on_hello(c, k, env);
        break;
    case TLSWEEP__ENVELOPE__BODY_PROGRESS: {
        const Tlsweep__Progress *p = env->progress;
        if (k->kind == CW_TASK_TRAIN && k->trial >= 0) {
            c->trials[k->trial].step = p->step;
            c->trials[k->trial].steps = p->steps_total;
            c->trials[k->trial].cur_epoch = (int)p->epoch;
        }
        break;
    }
    case TLSWEEP__ENVELOPE__BODY_EPOCH_REPORT: {
        Tlsweep__EpochReport *er = env->epoch_report;
        int i = er->trial_index < c->s->n_trials ? (int)er->trial_index : -1;
        if (i >= 0) {
            coord__keep_epoch(&c->trials[i], er);
            c->trials[i].step = 0;
            Tlsweep__JournalRecord rec = TLSWEEP__JOURNAL_RECORD__INIT;
            rec.body_case = TLSWEEP__JOURNAL_RECORD__BODY_EPOCH;
            rec.epoch = er;
            tl_err je = {0};
            if (coord__journal_put(c, &rec, 1, &je))
                coord__fail_store(c, &je);
        }
        break;
    }
    case TLSWEEP__ENVELOPE__BODY_CHECKPOINT: {
        int i = coord__find_trial(c, env->checkpoint->trial_index, env->checkpoint->trial_key);
        if (i >= 0) {
            coord__start_ckpt(c, i, env);
            return; /* owned by the write now */
        }
        break;
    }
    case TLSWEEP__ENVELOPE__BODY_FEATURE_CHUNK:
        on_features(c, k, env->feature_chunk);
        break;
    case TLSWEEP__ENVELOPE__BODY_TRIAL_RESULT:
        on_result(c, k, env);
        coord__schedule(c);
        coord__check_finished(c);
        return;
    case TLSWEEP__ENVELOPE__BODY_ERROR:
        on_error(c, k, env->error);
        break;
    default:
        break;
    }
    msg_free(env);
    coord__schedule(c);
    coord__check_finished(c);
}

static void drain(coord *c)
{
    for (int n = 0; n < 256 && c->phase != COORD_CLOSING; n++) {
        Tlsweep__Envelope *env = NULL;
        int from = -1, got = 0;
        tl_err e = {0};
        if (msg_link_poll(c->l, &env, &from, &got, &e)) {
            coord_fail(c, &e);
            return;
        }
        if (!got)
            return;
        handle(c, env, from);
    }
}

void coord__on_poll(uv_timer_t *h)
{
    drain(h->data);
}

void coord__on_async(uv_async_t *h)
{
    drain(h->data);
}

void coord__notify(void *ctx)
{
    uv_async_send(ctx);
}

void coord__on_status(uv_timer_t *h)
{
    coord *c = h->data;
    double t = tl_now();
    int hb = c->o->heartbeat_timeout_s > 0 ? c->o->heartbeat_timeout_s : 60;
    for (int w = 0; w < c->n_workers; w++) {
        cworker *k = &c->workers[w];
        if (k->state == CW_STOPPED || k->silent_warned || t - k->last_heard < hb)
            continue;
        k->silent_warned = 1;
        coord_log(c, "warning: rank %d (%s) silent for %.0f s%s", k->rank,
                  k->host[0] ? k->host : "no hello yet", t - k->last_heard,
                  k->state == CW_BUSY || k->state == CW_STOPPING ? " while on a task" : "");
    }
    if (c->phase == COORD_STOPPING) {
        int grace = c->o->stop_grace_s > 0 ? c->o->stop_grace_s : 30;
        if (t - c->stop_time > grace) {
            coord_log(c, "workers did not stop within %d s; leaving without them", grace);
            coord__forget_workers(c);
            c->o->abandoned = 1;
            coord__check_finished(c);
        }
    }
    coord_progress(c, t);
}
