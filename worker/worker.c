/* The worker loop (see worker.h). Envelopes sent from here are built on
 * the stack, pointing at the worker's own data: packing copies them. */
#include "worker/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/store/ckpt.h"
#include "common/base/clock.h"
#include "common/data/data.h"
#include "common/store/fcache.h"
#include "common/weights/model_file.h"
#include "common/msg/msg.h"
#include "common/sweep/sweep.h"
#include "worker/engine/engine.h"
#include "worker/engine/loader.h"
#include "worker/group/group.h"
#include "worker/nn/backend.h"
#include "worker/trial/trial.h"

enum { EXTRACT_BATCH = 32 };
/* FeatureChunks stay well under the message layer's whole-message limit. */
#define FEATURE_MSG_BYTES ((size_t)64 << 20)

/* A task runs until a Stop arrives: preempted (a signal on the coordinator;
 * the sweep resumes later) or ended (the sweep finished or failed). Either
 * way the task stops at its next step; the worker leaves after it. */
typedef enum { WORKER_GO, WORKER_STOP_PREEMPTED, WORKER_STOP_ENDED } worker_stop;

typedef struct {
    msg_link *l;
    const worker_opts *o;
    int rank;
    uint64_t seq;
    sweep s;
    int have_sweep;
    data_index ix;
    int have_ix;
    /* the extractor of the last cache group asked for */
    int ext_group;
    net ext;
    model_spec ext_spec;
    size_t ext_dim;
    int ext_size;           /* the extractor's input side: its group's trials' image_size */
    /* the weights file of the last trial, kept between trials */
    char wt_path[4096];
    model_spec wt_spec;
    tset wt_ts;
    int have_wt;
    /* the feature cache of the last frozen trial, kept between trials */
    char fc_path[4096];
    fcache fc;
    int have_fc;
    /* the task in progress */
    uint64_t task_id;
    const char *trial_id;
    int trial_index;
    uint64_t trial_key;
    worker_stop stop;     /* whether a Stop arrived, and why */
    /* the trial cannot go on for a reason of the worker's (a checkpoint
     * too large to send): it fails with this line, it is not "stopped" */
    int task_failed;
    tl_err task_err;
    double last_progress, last_sent, last_ckpt;
    int until;                  /* the task's rung end (until_epoch), 0: none */
    double hb_s;          /* a heartbeat at least this often, busy or idle */
    int ready;            /* its Setup succeeded: heartbeats say so */
    unsigned char *model;
    size_t model_len;
    tl_err model_err;     /* why model_done failed (its callback has no tl_err) */
    const Tlsweep__Task *task;       /* TRAIN_TRIAL in progress */
    const trial_result *result;
    group *grp;           /* the task's group of ranks; NULL: alone */
    int leader;           /* this worker reports for the task (alone, or the group's first) */
    int yield_wish;       /* a Stop YIELD arrived during the task */
    int trial_ran;        /* trial_run was called: it left the group itself */
} worker;

static int send_env(worker *w, Tlsweep__Envelope *env, tl_err *e)
{
    env->seq = ++w->seq;
    env->from_rank = w->rank;
    w->last_sent = tl_now();
    return msg_link_send(w->l, 0, env, e);
}

static int send_error(worker *w, int code, const char *message, int fatal)
{
    Tlsweep__Error er = TLSWEEP__ERROR__INIT;
    er.code = code;
    er.message = (char *)message;
    er.task_id = w->task_id;
    er.trial_id = (char *)(w->trial_id ? w->trial_id : "");
    er.fatal = fatal;
    Tlsweep__Envelope env = TLSWEEP__ENVELOPE__INIT;
    env.body_case = TLSWEEP__ENVELOPE__BODY_ERROR;
    env.error = &er;
    return send_env(w, &env, NULL);
}

/* Bad images: one line each, to the coordinator, which prints and lists them. */
static void warn_image(void *ctx, const char *line)
{
    send_error(ctx, TL_EFORMAT, line, 0);
}

static void heartbeat(worker *w)
{
    Tlsweep__Heartbeat hb = TLSWEEP__HEARTBEAT__INIT;
    hb.unix_ms = tl_unix_ms();
    hb.task_id = w->task_id;
    hb.ready = w->ready;
    Tlsweep__Envelope env = TLSWEEP__ENVELOPE__INIT;
    env.body_case = TLSWEEP__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    send_env(w, &env, NULL);
}

/* A heartbeat when one is due: called at every step and batch, it is the
 * heartbeat of a busy worker, so the coordinator can tell a long task from
 * a hung rank (ctx: the worker, for trial_cfg.alive). */
static void heartbeat_due(void *ctx)
{
    worker *w = ctx;
    if (tl_now() - w->last_sent >= w->hb_s)
        heartbeat(w);
}

/* A Stop that arrived while working; other envelopes have no business
 * arriving mid-task and are dropped. */
static void check_stop(worker *w)
{
    heartbeat_due(w);
    for (;;) {
        Tlsweep__Envelope *env = NULL;
        int from = -1, got = 0;
        if (msg_link_poll(w->l, &env, &from, &got, NULL) != 0 || !got)
            return;
        /* a yield is for the trial in progress; one that crossed the end of
         * its trial in flight is for no task */
        if (env->body_case == TLSWEEP__ENVELOPE__BODY_STOP &&
            env->stop->reason == TLSWEEP__STOP__REASON__YIELD)
            w->yield_wish = w->task != NULL;
        else if (env->body_case == TLSWEEP__ENVELOPE__BODY_STOP)
            w->stop = env->stop->reason == TLSWEEP__STOP__REASON__PREEMPTED ? WORKER_STOP_PREEMPTED
                                                                            : WORKER_STOP_ENDED;
        msg_free(env);
    }
}

/* The bytes an Envelope packs to when that is over what one message may
 * carry (MPI counts are ints, protobuf messages are limited), else 0. */
static size_t over_limit(const Tlsweep__Envelope *env)
{
    size_t n = tlsweep__envelope__get_packed_size(env);
    return n > MSG_MAX_MESSAGE ? n : 0;
}


/* ---- setup -------------------------------------------------------------------------- */

static int setup(worker *w, const Tlsweep__Setup *su, tl_err *e)
{
    int rc = sweep_parse(&w->s, su->sweep_file, (const char *)su->sweep_text.data,
                         su->sweep_text.len, e);
    if (rc)
        return rc;
    w->have_sweep = 1;
    /* the coordinator's node can run the sweep; this one may be another */
    if ((rc = sweep_check_host(&w->s, e)))
        return rc;
    const sweep *s = &w->s;
    data_index_cfg dc = {s->train_dir, s->val_dir, s->test_dir,
                         s->val_dir ? 0 : s->validation_split, s->data_seed};
    if ((rc = data_index_build(&w->ix, &dc, e)))
        return rc;
    w->have_ix = 1;
    uint64_t fp = data_index_fingerprint(&w->ix);
    if (w->ix.n_items != su->index_items || fp != su->index_fingerprint) {
        char host[256] = "?";
        gethostname(host, sizeof host - 1);
        return tl_errf(e, TL_EINVAL,
                       "rank %d (%s): %s indexes as %zu images (fingerprint %016llx), the "
                       "coordinator's as %llu (%016llx): the ranks do not see the same files",
                       w->rank, host, s->train_dir, w->ix.n_items, (unsigned long long)fp,
                       (unsigned long long)su->index_items,
                       (unsigned long long)su->index_fingerprint);
    }
    /* the trial keys the coordinator sends hash the same fingerprint */
    if ((rc = sweep_bind_data(&w->s, fp, e)))
        return rc;
    int threads = su->threads ? (int)su->threads : w->o->threads;
    if (threads > 0)
        engine_threads_set(threads);
    /* four heartbeats per timeout: one late one is no alarm */
    if (s->worker_timeout / 4 < w->hb_s)
        w->hb_s = s->worker_timeout / 4;
    w->ready = 1;
    return 0;
}

/* The engine a net of the sweep is built for, process-wide (net_finalize
 * reads it): the file's engine: when it gives one (else TLSWEEP_ENGINE or
 * auto stay), and the precision of the trial or of the cache group, which
 * is always set, being part of what the trial is. */
static void engine_for(const sweep *s, const sweep_trial *t)
{
    if (s->engine_set)
        nn_backend_set((nn_backend)s->engine);
    nn_precision_set((nn_precision)t->precision);
}

/* ---- feature extraction ----------------------------------------------------------------- */

static const sweep_trial *group_trial(const sweep *s, int group)
{
    for (size_t i = 0; i < s->n_trials; i++)
        if (s->trials[i].cache_group == group)
            return &s->trials[i];
    return NULL;
}

static void drop_extractor(worker *w)
{
    if (w->ext_group >= 0) {
        net_free(&w->ext);
        model_spec_free(&w->ext_spec);
        w->ext_group = -1;
    }
}

static int open_extractor(worker *w, int group, tl_err *e)
{
    if (w->ext_group == group)
        return 0;
    drop_extractor(w);
    const sweep_trial *t = group_trial(&w->s, group);
    if (!t)
        return tl_errf(e, TL_EINVAL, "task: no trial uses cache group %d", group);
    tset wts;
    tset_init(&wts);
    model_spec_init(&w->ext_spec);
    engine_for(&w->s, t); /* the group's trials share their precision */
    int rc = model_read(t->weights, &w->ext_spec, &wts, e);
    /* a group's trials share pooling and size (sweep_expand groups by them) */
    sweep_head_op ops[SWEEP_MAX_HEAD_OPS];
    int pooled = sweep_head_pooled(ops, sweep_trial_head(&w->s, t, ops));
    if (!rc)
        rc = trial_extractor_build(&w->ext, &w->ext_spec, &wts, t->weights, t->image_size,
                                   pooled, EXTRACT_BATCH, e);
    tset_free(&wts);
    if (rc) {
        model_spec_free(&w->ext_spec);
        return rc;
    }
    const net_layer *fl = net_last(&w->ext);
    w->ext_dim = (size_t)fl->h * fl->w * fl->c;
    w->ext_size = t->image_size;
    w->ext_group = group;
    return 0;
}

static int send_features(worker *w, const Tlsweep__Task *t, const uint32_t *ids, size_t n,
                         const float *x, const uint32_t *skipped, size_t n_skipped, int last,
                         tl_err *e)
{
    Tlsweep__Envelope *env = msg_new_feature_chunk(t->task_id, w->ext_spec.backbone, ids, n, x,
                                                   w->ext_dim, last);
    if (!env)
        return tl_errf(e, TL_ENOMEM, "features: out of memory");
    env->feature_chunk->cache_group = t->cache_group;
    if (last) {
        /* borrowed for the send, given back before msg_free */
        env->feature_chunk->skipped_ids = (uint32_t *)skipped;
        env->feature_chunk->n_skipped_ids = n_skipped;
    }
    int rc = send_env(w, env, e);
    env->feature_chunk->skipped_ids = NULL;
    env->feature_chunk->n_skipped_ids = 0;
    msg_free(env);
    return rc;
}

static int extract_task(worker *w, const Tlsweep__Task *t, tl_err *e)
{
    int rc = open_extractor(w, t->cache_group, e);
    if (rc)
        return rc;
    size_t n = t->n_image_ids;
    for (size_t i = 0; i < n; i++)
        if (t->image_ids[i] >= w->ix.n_items)
            return tl_errf(e, TL_EINVAL, "task %llu: image id %u outside the index (%zu images)",
                           (unsigned long long)t->task_id, t->image_ids[i], w->ix.n_items);
    size_t D = w->ext_dim;
    size_t rows_max = FEATURE_MSG_BYTES / (D * sizeof(float));
    if (rows_max < 1)
        rows_max = 1;
    size_t *ids = malloc((n ? n : 1) * sizeof *ids);
    uint32_t *out_ids = malloc((rows_max + EXTRACT_BATCH) * sizeof *out_ids);
    float *out = malloc((rows_max + EXTRACT_BATCH) * D * sizeof *out);
    uint32_t *skipped = malloc((n ? n : 1) * sizeof *skipped);
    if (!ids || !out_ids || !out || !skipped) {
        rc = tl_errf(e, TL_ENOMEM, "features: out of memory for %zu images", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        ids[i] = t->image_ids[i];
    size_t n_skipped = 0, rows = 0;
    loader_cfg lc = {
        .items = w->ix.items,
        .ids = ids,
        .n_ids = n,
        .batch_size = EXTRACT_BATCH,
        .image = {w->ext_size, w->ext_size, (data_preprocess)w->ext_spec.preproc, 0, 0},
        .threads = w->o->loader_threads > 0 ? w->o->loader_threads : 2,
        .warn = warn_image,
        .warn_ctx = w,
    };
    loader *L = NULL;
    if ((rc = loader_open(&L, &lc, e)))
        goto out;
    loader_batch b;
    size_t pos = 0;
    while ((rc = loader_next(L, &b, e)) == 1) {
        net_forward(&w->ext, b.x, b.n, 0);
        const float *f = net_output(&w->ext);
        for (int i = 0; i < b.n; i++, pos++) {
            /* a slot holding a substitute means ids[pos] did not decode */
            if (b.ids[i] != ids[pos]) {
                skipped[n_skipped++] = (uint32_t)ids[pos];
                continue;
            }
            out_ids[rows] = (uint32_t)ids[pos];
            memcpy(out + rows * D, f + (size_t)i * D, D * sizeof(float));
            rows++;
        }
        if (rows >= rows_max) {
            if ((rc = send_features(w, t, out_ids, rows, out, NULL, 0, 0, e)))
                break;
            rows = 0;
        }
        check_stop(w);
        if (w->stop != WORKER_GO) {
            rc = TL_ESTOPPED;
            break;
        }
    }
    loader_close(L);
    if (rc == 0 || rc == 1)
        rc = send_features(w, t, out_ids, rows, out, skipped, n_skipped, 1, e);
    else if (rc == TL_ESTOPPED) {
        /* the coordinator waits for every busy worker's answer before it exits */
        Tlsweep__TrialResult tr = TLSWEEP__TRIAL_RESULT__INIT;
        tr.task_id = t->task_id;
        tr.status = TLSWEEP__TRIAL_RESULT__STATUS__STOPPED;
        tr.message = "features: stopped on request";
        Tlsweep__Envelope env = TLSWEEP__ENVELOPE__INIT;
        env.body_case = TLSWEEP__ENVELOPE__BODY_TRIAL_RESULT;
        env.trial_result = &tr;
        send_env(w, &env, NULL);
        tl_errf(e, TL_ESTOPPED, "features: stopped on request");
    }
out:
    free(ids);
    free(out_ids);
    free(out);
    free(skipped);
    return rc;
}

/* ---- training ------------------------------------------------------------------------- */

/* An epoch's figures as the wire carries them (report and history alike). */
static void epoch_report(Tlsweep__EpochReport *r, const trial_epoch *x)
{
    tlsweep__epoch_report__init(r);
    r->epoch = (uint32_t)x->epoch;
    r->loss = (float)x->loss;
    r->accuracy = (float)x->accuracy;
    r->val_loss = (float)x->val_loss;
    r->val_accuracy = (float)x->val_accuracy;
    r->seconds = x->seconds;
    r->images_per_second = (float)x->images_per_s;
    r->comm_seconds = x->comm_seconds;
}

/* What a callback of the trial answers after a check for a Stop: stop
 * now, yield at the epoch's end, or go on. */
static int stop_answer(worker *w)
{
    check_stop(w);
    return w->stop != WORKER_GO ? 1 : w->yield_wish ? TRIAL_YIELD : 0;
}

/* The task's ranks, leader first: its group, or this rank alone. */
static const int32_t *task_ranks(const worker *w, size_t *n)
{
    *n = w->grp ? w->task->n_group_ranks : 1;
    return w->grp ? w->task->group_ranks : &w->rank;
}

static int epoch_done(void *ctx, const trial_snapshot *sn)
{
    worker *w = ctx;
    if (!w->leader)
        return stop_answer(w);
    Tlsweep__EpochReport er;
    epoch_report(&er, &sn->epochs[sn->epoch - 1]);
    er.ranks = (int32_t *)task_ranks(w, &er.n_ranks);
    er.task_id = w->task_id;
    er.trial_id = (char *)w->trial_id;
    er.trial_index = (uint32_t)w->trial_index;
    Tlsweep__Envelope env = TLSWEEP__ENVELOPE__INIT;
    env.body_case = TLSWEEP__ENVELOPE__BODY_EPOCH_REPORT;
    env.epoch_report = &er;
    if (send_env(w, &env, &w->task_err)) {
        w->task_failed = 1;
        return 1;
    }
    /* epochs of a head on cached features take milliseconds: checkpoints
     * of those come at most every checkpoint_seconds (a resume repeats the
     * epochs since, the same way); a rung's end always checkpoints, it is
     * where a promotion resumes */
    if (sn->epoch != w->until && !sn->yield &&
        tl_now() - w->last_ckpt < w->s.checkpoint_seconds)
        return stop_answer(w);
    w->last_ckpt = tl_now();

    /* the checkpoint: three tensors and the epochs so far */
    int64_t shape_w[1] = {(int64_t)sn->n_weights}, shape_o[1] = {(int64_t)sn->n_optim};
    Tlsweep__Tensor tw = TLSWEEP__TENSOR__INIT, tb = TLSWEEP__TENSOR__INIT,
                    to = TLSWEEP__TENSOR__INIT;
    tw.name = "weights";
    tw.n_shape = 1;
    tw.shape = shape_w;
    tw.n_data = sn->n_weights;
    tw.data = (float *)sn->weights;
    tb = tw;
    tb.name = "best";
    tb.data = (float *)sn->best;
    to.name = "optim";
    to.n_shape = 1;
    to.shape = shape_o;
    to.n_data = sn->n_optim;
    to.data = (float *)sn->optim_state;
    Tlsweep__Tensor *tensors[3] = {&tw, &tb, &to};
    Tlsweep__EpochReport *hist = calloc((size_t)sn->epoch, sizeof *hist);
    Tlsweep__EpochReport **hp = calloc((size_t)sn->epoch, sizeof *hp);
    if (!hist || !hp) {
        free(hist);
        free(hp);
        /* the trial stops here: failed with the reason, not "stopped",
         * which the coordinator takes only after its own Stop */
        w->task_failed = 1;
        tl_errf(&w->task_err, TL_ENOMEM, "trial %s: out of memory for the history of %d "
                "epochs of its checkpoint", w->trial_id, sn->epoch);
        return 1;
    }
    for (int i = 0; i < sn->epoch; i++) {
        epoch_report(&hist[i], &sn->epochs[i]);
        hp[i] = &hist[i];
    }
    Tlsweep__Checkpoint ck = TLSWEEP__CHECKPOINT__INIT;
    ck.task_id = w->task_id;
    ck.trial_id = (char *)w->trial_id;
    ck.trial_index = (uint32_t)w->trial_index;
    ck.trial_key = w->trial_key;
    ck.epoch = (uint32_t)sn->epoch;
    ck.n_tensors = 3;
    ck.tensors = tensors;
    ck.best_epoch = (uint32_t)sn->best_epoch;
    ck.best_value = sn->best_value;
    ck.n_history = (size_t)sn->epoch;
    ck.history = hp;
    ck.precision = (char *)sweep_precision_name(w->s.trials[w->trial_index].precision);
    Tlsweep__Envelope cenv = TLSWEEP__ENVELOPE__INIT;
    cenv.body_case = TLSWEEP__ENVELOPE__BODY_CHECKPOINT;
    cenv.checkpoint = &ck;
    size_t big = over_limit(&cenv);
    int rc;
    if (big) {
        /* a stop here would be retried from scratch for ever: fail instead */
        w->task_failed = 1;
        rc = tl_errf(&w->task_err, TL_EINVAL,
                     "trial %s: its checkpoint is %zu bytes (%.2f GiB), over the %llu-byte "
                     "limit of one message (MPI counts are ints, protobuf's limit)",
                     w->trial_id, big, big / 1073741824.0, (unsigned long long)MSG_MAX_MESSAGE);
    } else if ((rc = send_env(w, &cenv, &w->task_err)) != 0) {
        w->task_failed = 1;
    }
    free(hist);
    free(hp);
    return rc ? 1 : stop_answer(w);
}

static int step_done(void *ctx, int epoch, size_t step, size_t steps, double loss)
{
    worker *w = ctx;
    double t = tl_now();
    if (w->leader && t - w->last_progress >= 1.0) {
        w->last_progress = t;
        Tlsweep__Progress p = TLSWEEP__PROGRESS__INIT;
        p.task_id = w->task_id;
        p.trial_id = (char *)w->trial_id;
        p.epoch = (uint32_t)epoch;
        p.step = step;
        p.steps_total = steps;
        p.loss = (float)loss;
        Tlsweep__Envelope env = TLSWEEP__ENVELOPE__INIT;
        env.body_case = TLSWEEP__ENVELOPE__BODY_PROGRESS;
        env.progress = &p;
        send_env(w, &env, NULL);
    }
    return stop_answer(w); /* a probe: cheap enough for every step */
}

/* The kept model travels only when the trial may be the best: one that
 * cannot beat the best known when its task was sent never will. Ties go
 * to the lower grid index, as the coordinator ranks them. */
static int model_done(void *ctx, const model_spec *spec, const tset *ts)
{
    worker *w = ctx;
    free(w->model);
    w->model = NULL;
    w->model_len = 0;
    const Tlsweep__Task *t = w->task;
    if (t->has_best) {
        double v = w->result->best_value, b = t->best_value;
        int better = v != b ? (t->goal_max ? v > b : v < b) : t->trial_index < t->best_index;
        if (!better)
            return 0;
    }
    return model_write_mem(spec, ts, &w->model, &w->model_len, &w->model_err);
}

/* Of the trial's log only its warnings (bad images) travel: the
 * coordinator prints progress from the reports. */
static void trial_log(void *ctx, const char *line)
{
    if (!strncmp(line, "warning: ", 9))
        warn_image(ctx, line + 9);
}

_Static_assert(SWEEP_MAX_HEAD_OPS == MODEL_MAX_HEAD_OPS, "a sweep head fits a model file");

/* The trial's head (sweep_trial_head) as the model file's ops; *n its length. */
static const model_head_op *head_ops(const sweep *s, const sweep_trial *t, model_head_op *ops,
                                     int *n)
{
    static const model_head_kind kinds[] = {MODEL_HEAD_GAP, MODEL_HEAD_FLATTEN, MODEL_HEAD_DENSE,
                                            MODEL_HEAD_DROPOUT};
    static const model_act acts[] = {MODEL_ACT_LINEAR, MODEL_ACT_RELU, MODEL_ACT_RELU6};
    sweep_head_op h[SWEEP_MAX_HEAD_OPS];
    *n = sweep_trial_head(s, t, h);
    for (int i = 0; i < *n && i < MODEL_MAX_HEAD_OPS; i++)
        ops[i] = (model_head_op){kinds[h[i].kind], h[i].units, acts[h[i].act], h[i].rate};
    return *n ? ops : NULL;
}

/* The optimizer of a grid point; schedules count steps, which need the
 * batches per epoch of the index the trial will build. */
static optim_cfg trial_optim(const worker *w, const sweep_trial *t)
{
    optim_cfg oc = optim_cfg_default((optim_kind)t->optimizer);
    oc.learning_rate = t->learning_rate;
    if (t->momentum >= 0)
        oc.momentum = t->momentum;
    oc.weight_decay = t->weight_decay;
    size_t n_train = data_index_count(&w->ix, DATA_TRAIN);
    int64_t per_epoch = (int64_t)((n_train + (size_t)t->batch_size - 1) / (size_t)t->batch_size);
    if (per_epoch < 1)
        per_epoch = 1;
    if (t->sched.kind == SWEEP_SCHED_COSINE) {
        oc.sched.kind = OPTIM_SCHED_COSINE;
        oc.sched.decay_steps = per_epoch * t->epochs;
    } else if (t->sched.kind == SWEEP_SCHED_STEP) {
        oc.sched.kind = OPTIM_SCHED_STEP;
        oc.sched.every = per_epoch * t->sched.every_epochs;
        oc.sched.factor = t->sched.factor;
    }
    return oc;
}

/* A checkpoint read back as the snapshot trial_run resumes from. */
static int load_resume(const char *path, const sweep_trial *t, Tlsweep__Checkpoint **ck,
                       trial_snapshot *sn, trial_epoch **hist, tl_err *e)
{
    int rc = ckpt_read_trial(path, t->key, t->id, ck, e);
    if (rc)
        return rc;
    Tlsweep__Checkpoint *c = *ck;
    const Tlsweep__Tensor *tw = ckpt_tensor(c, "weights"), *tb = ckpt_tensor(c, "best"),
                          *to = ckpt_tensor(c, "optim");
    *hist = calloc(c->n_history, sizeof **hist);
    if (!*hist)
        return tl_errf(e, TL_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < c->n_history; i++) {
        const Tlsweep__EpochReport *h = c->history[i];
        (*hist)[i] = (trial_epoch){(int)h->epoch, h->loss, h->accuracy, h->val_loss,
                                   h->val_accuracy, h->seconds, h->images_per_second,
                                   h->comm_seconds};
    }
    *sn = (trial_snapshot){(int)c->epoch, tw->data, tb->data, tw->n_data, to->data, to->n_data,
                           *hist, (int)c->best_epoch, c->best_value, 0};
    return 0;
}

static int send_result(worker *w, const sweep_trial *t, const trial_result *r, int status,
                       const char *message, double secs, tl_err *e)
{
    Tlsweep__TrialResult tr = TLSWEEP__TRIAL_RESULT__INIT;
    tr.task_id = w->task_id;
    tr.trial_id = (char *)t->id;
    tr.trial_index = (uint32_t)t->index;
    tr.trial_key = t->key;
    tr.status = (Tlsweep__TrialResult__Status)status;
    tr.message = (char *)(message ? message : "");
    tr.epochs_done = (uint32_t)r->n_epochs;
    tr.best_epoch = (uint32_t)r->best_epoch;
    tr.stopped_epoch = (uint32_t)r->stopped_epoch;
    tr.best_value = r->best_value;
    if (r->best_epoch >= 1 && r->best_epoch <= r->n_epochs) {
        const trial_epoch *x = &r->epochs[r->best_epoch - 1];
        tr.val_loss = (float)x->val_loss;
        tr.val_accuracy = (float)x->val_accuracy;
        tr.loss = (float)x->loss;
        tr.accuracy = (float)x->accuracy;
    }
    tr.num_classes = (uint32_t)r->n_classes;
    tr.n_class_names = (size_t)r->n_classes;
    tr.class_names = r->classes;
    tr.eval_split = (char *)(r->eval_split ? r->eval_split : "");
    tr.eval_loss = (float)r->eval_loss;
    tr.eval_accuracy = (float)r->eval_accuracy;
    tr.backbone_images = r->backbone_images;
    tr.bad_images = r->bad_images;
    tr.seconds = secs;
    tr.engine = (char *)nn_backend_name(nn_backend_get());
    tr.ranks = (int32_t *)task_ranks(w, &tr.n_ranks);
    if (status == TLSWEEP__TRIAL_RESULT__STATUS__DONE && r->confusion) {
        tr.n_confusion = (size_t)r->n_classes * (size_t)r->n_classes;
        tr.confusion = (uint64_t *)r->confusion;
        tr.model.data = w->model;
        tr.model.len = w->model_len;
    }
    Tlsweep__Envelope env = TLSWEEP__ENVELOPE__INIT;
    env.body_case = TLSWEEP__ENVELOPE__BODY_TRIAL_RESULT;
    env.trial_result = &tr;
    size_t big = over_limit(&env);
    tl_err le;
    if (big) {
        /* the model cannot travel: the trial fails, the sweep goes on */
        tl_errf(&le, TL_EINVAL,
                "trial %s: its result with the model is %zu bytes (%.2f GiB), over the "
                "%llu-byte limit of one message (MPI counts are ints, protobuf's limit)",
                t->id, big, big / 1073741824.0, (unsigned long long)MSG_MAX_MESSAGE);
        tr.status = TLSWEEP__TRIAL_RESULT__STATUS__FAILED;
        tr.message = le.msg;
        tr.model.data = NULL;
        tr.model.len = 0;
        tr.n_confusion = 0;
        tr.confusion = NULL;
    }
    return send_env(w, &env, e);
}

static int run_trial_task(worker *w, const Tlsweep__Task *task, tl_err *e)
{
    const sweep *s = &w->s;
    if (task->trial_index >= s->n_trials || s->trials[task->trial_index].key != task->trial_key)
        return tl_errf(e, TL_EINVAL,
                       "task %llu: trial %u (%s) is not this worker's grid point: the "
                       "sweep text differs",
                       (unsigned long long)task->task_id, task->trial_index, task->trial_id);
    const sweep_trial *t = &s->trials[task->trial_index];
    w->trial_id = t->id;
    w->trial_index = t->index;
    w->trial_key = t->key;
    double t0 = tl_now();

    trial_cfg cfg;
    trial_cfg_default(&cfg);
    cfg.weights = t->weights;
    cfg.train_dir = s->train_dir;
    cfg.val_dir = s->val_dir;
    cfg.test_dir = s->test_dir;
    cfg.validation_split = s->validation_split;
    cfg.size = t->image_size;
    trial_cfg_set_mode(&cfg, &t->mode);
    cfg.optim = trial_optim(w, t);
    cfg.batch = t->batch_size;
    cfg.epochs = t->epochs;
    if (task->until_epoch > (uint32_t)t->epochs)
        return tl_errf(e, TL_EINVAL, "task %llu: trial %s trains %d epochs, not until epoch %u",
                       (unsigned long long)task->task_id, t->id, t->epochs, task->until_epoch);
    cfg.until = w->until = (int)task->until_epoch;
    cfg.label_smoothing = (float)t->label_smoothing;
    model_head_op ops[MODEL_MAX_HEAD_OPS];
    cfg.head = head_ops(s, t, ops, &cfg.n_head);
    cfg.seed = s->seed;
    cfg.split_seed = s->data_seed;
    cfg.augment = t->augment;
    cfg.no_cache = s->no_feature_cache;
    cfg.loader_threads = w->o->loader_threads;
    cfg.select_metric = s->metric;
    cfg.select_max = s->goal_max;
    cfg.early_stop = s->early_stop;
    cfg.epoch_done = epoch_done;
    cfg.step_done = step_done;
    cfg.model_done = model_done;
    cfg.alive = heartbeat_due;
    cfg.cb_ctx = w;
    cfg.log = trial_log;
    cfg.log_ctx = w;

    int rc = 0;
    if (!w->have_wt || strcmp(w->wt_path, t->weights)) {
        if (w->have_wt) {
            model_spec_free(&w->wt_spec);
            tset_free(&w->wt_ts);
            w->have_wt = 0;
        }
        model_spec_init(&w->wt_spec);
        tset_init(&w->wt_ts);
        if ((rc = model_read(t->weights, &w->wt_spec, &w->wt_ts, e))) {
            model_spec_free(&w->wt_spec);
            tset_free(&w->wt_ts);
            return rc;
        }
        snprintf(w->wt_path, sizeof w->wt_path, "%s", t->weights);
        w->have_wt = 1;
    }
    cfg.weights_spec = &w->wt_spec;
    cfg.weights_tensors = &w->wt_ts;
    cfg.index = &w->ix;
    trial_features tf;
    if (task->feature_cache && task->feature_cache[0]) {
        if (!w->have_fc || strcmp(w->fc_path, task->feature_cache)) {
            if (w->have_fc)
                fcache_free(&w->fc);
            w->have_fc = 0;
            if ((rc = fcache_read(task->feature_cache, task->cache_key,
                                  data_index_fingerprint(&w->ix), &w->fc, e)))
                return rc;
            snprintf(w->fc_path, sizeof w->fc_path, "%s", task->feature_cache);
            w->have_fc = 1;
        }
        tf = (trial_features){w->fc.x, w->fc.ok, w->fc.n_items, w->fc.dim};
        cfg.features = &tf;
    }
    Tlsweep__Checkpoint *ck = NULL;
    trial_snapshot sn;
    trial_epoch *hist = NULL;
    if (task->resume_from && task->resume_from[0]) {
        if ((rc = load_resume(task->resume_from, t, &ck, &sn, &hist, e)))
            goto out;
        cfg.resume = &sn;
    }
    trial_result r;
    w->last_progress = tl_now();
    w->task = task;
    w->result = &r;
    w->last_ckpt = tl_now();
    w->task_failed = 0;
    /* the trial's own line, never one left over from an earlier task */
    tl_err te = {0};
    w->model_err = te;
    engine_for(s, t);
    cfg.group = w->grp;
    w->trial_ran = 1; /* trial_run leaves the group as its rule says */
    rc = trial_run(&cfg, &r, &te);
    if (w->task_failed) /* trial_run saw a stop; the reason is the worker's */
        rc = tl_errf(&te, w->task_err.code ? w->task_err.code : TL_EINVAL, "%s",
                     w->task_err.msg);
    else if (rc && !te.msg[0]) {
        if (w->model_err.msg[0])
            te = w->model_err;
        else
            tl_errf(&te, rc, "after epoch %d: %s", r.n_epochs, tl_strerror(rc));
    }
    int status = rc == 0 ? TLSWEEP__TRIAL_RESULT__STATUS__DONE
                 : rc == TL_ESTOPPED && r.yielded ? TLSWEEP__TRIAL_RESULT__STATUS__YIELDED
                 : rc == TL_ESTOPPED ? TLSWEEP__TRIAL_RESULT__STATUS__STOPPED
                                     : TLSWEEP__TRIAL_RESULT__STATUS__FAILED;
    int src = send_result(w, t, &r, status, rc ? te.msg : NULL, tl_now() - t0, e);
    trial_result_free(&r);
    /* a failed trial is the coordinator's to report; the worker goes on */
    rc = src;
out:
    if (ck)
        tlsweep__checkpoint__free_unpacked(ck, NULL);
    free(hist);
    free(w->model);
    w->model = NULL;
    w->model_len = 0;
    return rc;
}

/* A TRAIN_TRIAL: its group's communicator first (every member makes it
 * before anything that can fail), then the trial; a member that fails
 * before its trial runs leaves the group with its error (group.h). */
static int train_task(worker *w, const Tlsweep__Task *task, tl_err *e)
{
    int rc = 0;
    w->task = task;
    w->grp = NULL;
    w->leader = 1;
    w->yield_wish = 0;
    w->trial_ran = 0;
    if (task->n_group_ranks > 1 && !w->o->have_world)
        return tl_errf(e, TL_EINVAL, "task %llu: a group of %zu ranks, and this worker is no "
                       "MPI rank", (unsigned long long)task->task_id, task->n_group_ranks);
    if (task->n_group_ranks > 1) {
        if ((rc = group_open(&w->grp, w->o->world, task->group_ranks, (int)task->n_group_ranks,
                             task->group_id, e)))
            return rc;
        w->leader = group_index(w->grp) == 0;
    }
    rc = run_trial_task(w, task, e);
    if (w->grp && !w->trial_ran)
        group_leave(w->grp, GROUP_ERROR);
    group_close(w->grp);
    w->grp = NULL;
    w->leader = 1;
    w->yield_wish = 0;
    w->task = NULL;
    return rc;
}

/* ---- the loop ------------------------------------------------------------------------- */

static int handle_task(worker *w, const Tlsweep__Task *t, tl_err *e)
{
    w->task_id = t->task_id;
    w->trial_id = t->trial_id;
    int rc;
    if (t->kind == TLSWEEP__TASK__KIND__EXTRACT_FEATURES)
        rc = extract_task(w, t, e);
    else if (t->kind == TLSWEEP__TASK__KIND__TRAIN_TRIAL)
        rc = train_task(w, t, e);
    else
        rc = tl_errf(e, TL_EINVAL, "task %llu: unknown kind %d", (unsigned long long)t->task_id,
                     (int)t->kind);
    w->task_id = 0;
    w->trial_id = NULL;
    return rc;
}

int worker_main(msg_link *l, const worker_opts *o, tl_err *e)
{
    worker w;
    memset(&w, 0, sizeof w);
    w.l = l;
    w.o = o;
    w.rank = msg_link_rank(l);
    w.ext_group = -1;
    int hb_ms = o->heartbeat_ms > 0 ? o->heartbeat_ms : 2000;
    w.hb_s = hb_ms * 1e-3;
    tl_err le = {0};
    if (!e)
        e = &le;

    Tlsweep__Envelope *hello = NULL;
    int rc = msg_new_hello(w.rank, &hello, e);
    if (rc)
        return rc;
    hello->hello->threads = (uint32_t)engine_threads_get();
    rc = send_env(&w, hello, e);
    msg_free(hello);
    if (rc)
        return rc;

    for (;;) {
        Tlsweep__Envelope *env = NULL;
        int from = -1;
        if ((rc = msg_link_recv(l, &env, &from, (int)(w.hb_s * 1000), e)))
            break;
        if (!env) {
            heartbeat(&w);
            continue;
        }
        switch (env->body_case) {
        case TLSWEEP__ENVELOPE__BODY_SETUP:
            if ((rc = setup(&w, env->setup, e)))
                send_error(&w, rc, e->msg, 1);
            else
                heartbeat(&w); /* the coordinator's setup allowance ends now */
            break;
        case TLSWEEP__ENVELOPE__BODY_TASK:
            if (!w.have_ix)
                rc = tl_errf(e, TL_EINVAL, "rank %d: a task before the setup", w.rank);
            else
                rc = handle_task(&w, env->task, e);
            if (rc == TL_ESTOPPED)
                rc = 0;
            else if (rc)
                send_error(&w, rc, e->msg, 1);
            break;
        case TLSWEEP__ENVELOPE__BODY_STOP:
            /* a yield for a task already answered ends nothing */
            if (env->stop->reason != TLSWEEP__STOP__REASON__YIELD)
                w.stop = WORKER_STOP_ENDED;
            break;
        default:
            break;
        }
        msg_free(env);
        if (rc || w.stop != WORKER_GO)
            break;
    }
    drop_extractor(&w);
    if (w.have_wt) {
        model_spec_free(&w.wt_spec);
        tset_free(&w.wt_ts);
    }
    if (w.have_fc)
        fcache_free(&w.fc);
    if (w.have_ix)
        data_index_free(&w.ix);
    if (w.have_sweep)
        sweep_free(&w.s);
    return rc;
}
