/* Large files written on libuv's thread pool, at most one write per file
 * in flight and the newest pending: checkpoints, best.tlm, feature caches. */
#include "coordinator/coord_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "common/base/clock.h"
#include "common/msg/msg.h"
#include "common/store/ckpt.h"
#include "common/store/fcache.h"
#include "common/weights/model_file.h"

/* ---- files on the thread pool ---------------------------------------------------------- */

typedef struct {
    uv_work_t req;
    coord *c;
    write_kind kind;
    int index;         /* trial (CKPT, BEST) or cache group (FCACHE) */
    Tlsweep__Envelope *env;
    char path[4096];
    int rc;
    tl_err err;
} write_job;

static void write_work(uv_work_t *req)
{
    write_job *j = req->data;
    switch (j->kind) {
    case WRITE_CKPT:
        j->rc = ckpt_write(j->path, j->env->checkpoint, &j->err);
        break;
    case WRITE_BEST: {
        const Tlsweep__TrialResult *r = j->env->trial_result;
        j->rc = model_write_bytes(j->path, r->model.data, r->model.len, &j->err);
        break;
    }
    case WRITE_FCACHE: {
        cgroup *g = &j->c->groups[j->index];
        j->rc = fcache_write(j->path, g->key, j->c->s->cache_groups[j->index].text,
                             j->c->fingerprint, g->x, g->ok, j->c->ix.n_items, g->dim, &j->err);
        break;
    }
    }
}

void coord__ckpt_path(const coord *c, int i, char *buf, size_t n)
{
    snprintf(buf, n, "%s/checkpoints/%s.ckpt", c->out, c->s->trials[i].id);
}

static void write_after(uv_work_t *req, int status)
{
    (void)status;
    write_job *j = req->data;
    coord *c = j->c;
    c->writes--;
    if (j->kind == WRITE_CKPT) {
        ctrial *t = &c->trials[j->index];
        t->ckpt.writing = 0;
        if (j->rc)
            coord_log(c, "warning: checkpoint of %s not written: %s", c->s->trials[j->index].id,
                      j->err.msg);
        else
            t->ckpt.epoch = j->env->checkpoint->epoch;
        msg_free(j->env);
        if (coord__ckpt_spent(c, j->index)) {
            char p[4096];
            coord__ckpt_path(c, j->index, p, sizeof p);
            unlink(p);
            if (t->ckpt.next) {
                msg_free(t->ckpt.next);
                t->ckpt.next = NULL;
            }
        } else if (t->ckpt.next) {
            Tlsweep__Envelope *next = t->ckpt.next;
            t->ckpt.next = NULL;
            coord__start_ckpt(c, j->index, next);
        }
    } else if (j->kind == WRITE_BEST) {
        c->best_writing = 0;
        if (j->rc) {
            /* not journaled: the re-run trains it again (from its
             * checkpoint, kept) and writes best.tlm then; the results
             * waiting behind it are not recorded either */
            msg_free(j->env);
            for (int q = 0; q < c->n_queue; q++)
                msg_free(c->queue[q]);
            c->n_queue = 0;
            coord__fail_store(c, &j->err);
        } else {
            coord__result_done(c, j->env);
            coord__process_results(c);
        }
    } else {
        cgroup *g = &c->groups[j->index];
        free(g->x);
        free(g->ok);
        g->x = NULL;
        g->ok = NULL;
        if (j->rc) {
            coord__fail_store(c, &j->err);
        } else {
            g->state = CG_READY;
            double secs = tl_now() - g->t0;
            Tlsweep__JournalFeatures jf = TLSWEEP__JOURNAL_FEATURES__INIT;
            jf.cache_key = g->key;
            jf.text = c->s->cache_groups[j->index].text;
            jf.path = g->path;
            jf.images = c->ix.n_items;
            jf.forward_images = g->run_images;
            jf.skipped = g->skipped;
            jf.seconds = secs;
            jf.dim = (uint32_t)g->dim;
            Tlsweep__JournalRecord rec = TLSWEEP__JOURNAL_RECORD__INIT;
            rec.body_case = TLSWEEP__JOURNAL_RECORD__BODY_FEATURES;
            rec.features = &jf;
            tl_err je = {0};
            if (coord__journal_put(c, &rec, 1, &je))
                coord__fail_store(c, &je);
            g->forward_images += g->run_images;
            g->seconds += secs;
            g->extractions++;
            coord_log(c, "features: %s: %zu images through the frozen backbone once (%.1f s, "
                         "%.0f img/s), %zu floats each, cached in %s",
                      coord_group_label(c, j->index), c->ix.n_items, secs,
                      secs > 0 ? c->ix.n_items / secs : 0, g->dim, g->path);
        }
    }
    free(j);
    coord__schedule(c);
    coord__check_finished(c);
}

void coord__queue_write(coord *c, write_kind kind, int index, Tlsweep__Envelope *env, const char *path)
{
    write_job *j = calloc(1, sizeof *j);
    if (!j) {
        coord_failf(c, TL_ENOMEM, "out of memory queueing a file write");
        msg_free(env);
        return;
    }
    j->req.data = j;
    j->c = c;
    j->kind = kind;
    j->index = index;
    j->env = env;
    snprintf(j->path, sizeof j->path, "%s", path);
    c->writes++;
    uv_queue_work(&c->loop, &j->req, write_work, write_after);
}

/* One checkpoint write per trial at a time; a newer one waits (only the
 * newest), so an older write can never land over a newer file. */
void coord__start_ckpt(coord *c, int i, Tlsweep__Envelope *env)
{
    ctrial *t = &c->trials[i];
    if (t->ckpt.writing) {
        if (t->ckpt.next)
            msg_free(t->ckpt.next);
        t->ckpt.next = env;
        return;
    }
    t->ckpt.writing = 1;
    char p[4096];
    coord__ckpt_path(c, i, p, sizeof p);
    coord__queue_write(c, WRITE_CKPT, i, env, p);
}
