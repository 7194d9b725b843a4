/* Setup of a run: preflight of the dataset, cache groups with their keys
 * and labels, the coordinator's state, the sweep's copy in out/. */
#include "coordinator/coord_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/base/clock.h"
#include "common/base/fileio.h"
#include "common/base/hash.h"
#include "common/msg/msg.h"
#include "common/store/fcache.h"
#include "common/weights/model_file.h"
#include "common/weights/tensors.h"

/* images per extraction task; a multiple of worker.c's EXTRACT_BATCH (32) */
#define COORD_SHARD_IMAGES 256

/* ---- setup ------------------------------------------------------------------------------- */

int coord_preflight(sweep *s, data_index *ix, tl_err *e)
{
    int rc = sweep_check_host(s, e);
    if (rc)
        return rc;
    for (int i = 0; i < s->n_backbones; i++) {
        const char *w = sweep_weights_path(s, s->backbones[i]);
        if (!w)
            return tl_errf(e, TL_EINVAL, "%s: weights: no file for backbone %s", s->file,
                           s->backbones[i]);
        if (access(w, R_OK) != 0)
            return tl_errf(e, TL_EIO, "%s: weights.%s: %s: %s", s->file, s->backbones[i], w,
                           strerror(errno));
    }
    data_index_cfg dc = {s->train_dir, s->val_dir, s->test_dir,
                         s->val_dir ? 0 : s->validation_split, s->data_seed};
    rc = data_index_build(ix, &dc, e);
    if (!rc && (rc = sweep_bind_data(s, data_index_fingerprint(ix), e)))
        data_index_free(ix);
    return rc;
}

/* The weights file of cache group g (its last trial's), or NULL. */
static const char *group_weights(const sweep *s, int g)
{
    const char *w = NULL;
    for (size_t i = 0; i < s->n_trials; i++)
        if (s->trials[i].cache_group == g)
            w = s->trials[i].weights;
    return w;
}

/* The cache file's key: the group's text plus the weights file's identity
 * (size and modification time), so replacing the weights file is a miss. */
uint64_t coord__cache_key(const sweep *s, int g)
{
    const sweep_cache_group *cg = &s->cache_groups[g];
    char tail[80];
    const char *w = group_weights(s, g);
    struct stat sb;
    memset(&sb, 0, sizeof sb);
    if (w)
        stat(w, &sb);
    /* chained: the text is hashed whole, however long its weights path */
    snprintf(tail, sizeof tail, "|%lld|%lld.%09ld", (long long)sb.st_size,
             (long long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec);
    return tl_fnv1a_str(tl_fnv1a_str(TL_FNV1A_OFFSET, cg->text), tail);
}

/* The group's text names the backbone's Keras preprocessing, but workers
 * run the one the weights file records (an import may choose another:
 * x/255 for the nsfwjs models), so the label people read puts that one in
 * its place. The text itself stays as it is: keys hash it, and since they
 * also hash the weights path and the file's identity they already tell
 * apart weights that preprocess differently. A file that cannot be read
 * keeps the text (the workers report the file). */
/* Length of what follows the preprocessing in a group's text ("|bf16",
 * "|unpooled", "|pooled", in sweep_expand's order). */
static size_t group_tail(const char *text)
{
    static const char *const tails[] = {"|pooled", "|unpooled", "|bf16"};
    size_t n = strlen(text), cut = n;
    for (int i = 0; i < 3; i++) {
        size_t t = strlen(tails[i]);
        if (cut > t && !strncmp(text + cut - t, tails[i], t))
            cut -= t;
    }
    return n - cut;
}

static void group_label(coord *c, int g)
{
    cgroup *cg = &c->groups[g];
    const char *text = c->s->cache_groups[g].text, *w = group_weights(c->s, g);
    size_t n = strlen(text), tail = group_tail(text);
    snprintf(cg->label, sizeof cg->label, "%.*s", (int)(n - tail), text);
    char *bar = strrchr(cg->label, '|');
    if (!w || !bar) {
        snprintf(cg->label, sizeof cg->label, "%s", text);
        return;
    }
    model_spec spec;
    tset ts;
    model_spec_init(&spec);
    tset_init(&ts);
    tl_err e = {0};
    if (model_read(w, &spec, &ts, &e) == 0)
        snprintf(bar + 1, sizeof cg->label - (size_t)(bar + 1 - cg->label), "%s%s",
                 model_preproc_name(spec.preproc), text + n - tail);
    else
        snprintf(cg->label, sizeof cg->label, "%s", text);
    model_spec_free(&spec);
    tset_free(&ts);
}

/* What the log and results name group g by. */
const char *coord_group_label(const coord *c, int g)
{
    return c->groups[g].label[0] ? c->groups[g].label : c->s->cache_groups[g].text;
}

int coord__prepare_groups(coord *c, tl_err *e)
{
    for (int g = 0; g < c->s->n_cache_groups; g++) {
        cgroup *cg = &c->groups[g];
        group_label(c, g);
        fcache_path(cg->path, sizeof cg->path, c->cache_dir, cg->key);
        int needed = 0;
        for (size_t i = 0; i < c->s->n_trials; i++)
            needed |= c->s->trials[i].cache_group == g && c->trials[i].st != TR_DONE &&
                      c->trials[i].st != TR_OTHER;
        if (!needed) {
            cg->state = CG_READY;
            continue;
        }
        fcache fc;
        tl_err fe = {0};
        int rc = fcache_read(cg->path, cg->key, c->fingerprint, &fc, &fe);
        if (rc == 0) {
            fcache_free(&fc);
            cg->state = CG_READY;
            coord_log(c, "features: reusing %s", cg->path);
            continue;
        }
        if (rc != TL_ENOTFOUND && rc != TL_EIO && rc != TL_EFORMAT)
            return tl_errf(e, rc, "%s", fe.msg);
        if (rc == TL_EFORMAT)
            coord_log(c, "warning: %s; computing the features again", fe.msg);
        cg->state = CG_EXTRACTING;
        /* Fixed shards, a multiple of the workers' extraction batch: every
         * image meets the same batch whatever the number of workers, so
         * its features are the same bits in any run (GEMM's blocking
         * follows the matrix shape). */
        size_t shard = COORD_SHARD_IMAGES;
        cg->shard_size = shard;
        cg->n_shards = (c->ix.n_items + shard - 1) / shard;
    }
    return 0;
}

void coord__free_state(coord *c)
{
    for (size_t i = 0; c->trials && i < c->s->n_trials; i++) {
        ctrial *t = &c->trials[i];
        if (t->res)
            tlsweep__trial_result__free_unpacked(t->res, NULL);
        if (t->ckpt.next)
            msg_free(t->ckpt.next);
        for (int k = 0; t->hist && k < t->n_hist; k++)
            free(t->hist[k].ranks);
        free(t->hist);
        free(t->group);
    }
    free(c->trials);
    coord__search_free(c);
    for (int g = 0; c->groups && g < c->s->n_cache_groups; g++) {
        free(c->groups[g].x);
        free(c->groups[g].ok);
    }
    free(c->groups);
    free(c->workers);
    for (size_t i = 0; i < c->n_bad; i++)
        free(c->bad[i]);
    free(c->bad);
    for (int i = 0; i < c->n_queue; i++)
        msg_free(c->queue[i]);
    free(c->queue);
    if (c->have_ix)
        data_index_free(&c->ix);
}

int coord__write_sweep_copy(coord *c, tl_err *e)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/sweep.yaml", c->out);
    tl_atomic_file f = TL_ATOMIC_FILE_INIT;
    int rc = tl_atomic_open(&f, p, e);
    if (!rc)
        rc = tl_atomic_write(&f, c->o->sweep_text, c->o->sweep_len, e);
    if (!rc)
        rc = tl_atomic_commit(&f, e);
    tl_atomic_abort(&f);
    return rc;
}

/* Index, trials, groups and workers of sweep s; c->o/s/l set by the caller. */
int coord__state_init(coord *c, const data_index *ix, int n_workers, tl_err *e)
{
    const sweep *s = c->s;
    c->best = -1;
    c->t0 = c->progress.at = tl_now();
    if (ix) {
        c->ix = *ix; /* borrowed: the caller frees it */
    } else {
        data_index_cfg dc = {s->train_dir, s->val_dir, s->test_dir,
                             s->val_dir ? 0 : s->validation_split, s->data_seed};
        int rc = data_index_build(&c->ix, &dc, e);
        if (rc)
            return rc;
        c->have_ix = 1;
    }
    c->fingerprint = data_index_fingerprint(&c->ix);
    /* journal keys hash the dataset: a run on other files is other trials */
    if (ix && (!s->data_bound || s->data_fingerprint != c->fingerprint))
        return tl_errf(e, TL_EINVAL, "%s: the trials' keys are not bound to this dataset index "
                       "(coord_preflight binds them)", s->file ? s->file : "sweep");
    c->n_workers = n_workers;
    c->trials = calloc(s->n_trials, sizeof *c->trials);
    c->groups = calloc((size_t)(s->n_cache_groups ? s->n_cache_groups : 1), sizeof *c->groups);
    c->workers = calloc((size_t)(n_workers > 0 ? n_workers : 1), sizeof *c->workers);
    c->queue = calloc(s->n_trials, sizeof *c->queue);
    if (!c->trials || !c->groups || !c->workers || !c->queue)
        return tl_errf(e, TL_ENOMEM, "coordinator: out of memory");
    /* before any journal coord__replay: feature records are matched by key */
    for (int g = 0; g < s->n_cache_groups; g++)
        c->groups[g].key = coord__cache_key(s, g);
    for (size_t i = 0; i < s->n_trials; i++) {
        c->trials[i].worker = -1;
        c->trials[i].slice = -1;
        c->trials[i].n_hist = s->trials[i].epochs;
        c->trials[i].hist = calloc((size_t)s->trials[i].epochs, sizeof *c->trials[i].hist);
        if (!c->trials[i].hist)
            return tl_errf(e, TL_ENOMEM, "coordinator: out of memory");
    }
    for (int w = 0; w < n_workers; w++) {
        c->workers[w].rank = w + 1;
        c->workers[w].trial = -1;
        c->workers[w].reserved = -1;
        c->workers[w].host_id = w;
        c->workers[w].last_heard = c->t0;
        c->workers[w].jw_state = -1;
    }
    c->n_mine = (int)s->n_trials;
    return coord__search_init(c, e);
}
