/* report.html while the sweep runs: results.csv and results.json (state
 * "running", the trials under way with their curves so far) and the page
 * rewritten after every trial that ends and at the first epochs, else
 * every COORD_KEEPALIVE_S (under a minute), news or not: its written time
 * is the page's sign of life. A browser kept open on it shows news on
 * reload, and a reader can tell a live sweep from one whose coordinator
 * is gone. The loop builds the files' text (it reads the coordinator's
 * state); they are written atomically on libuv's thread pool, since their
 * fsyncs took 10-100 ms on a busy machine and longer on a cluster's file
 * system. */
#include "coordinator/coord_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/report/report.h"

typedef struct {
    uv_work_t req;
    coord *c;
    char *json;                 /* results.json's text */
    char *csv;                  /* results.csv's, csv_len bytes */
    size_t csv_len;
    char out[4096];
    int rc;
    tl_err err;
} live_job;

static int epochs_reported(const coord *c)
{
    int n = 0;
    for (size_t i = 0; i < c->s->n_trials; i++)
        n += c->trials[i].epochs_done;
    return n;
}

/* On the pool: results.csv, results.json, then the page from it. */
static void live_work(uv_work_t *req)
{
    live_job *j = req->data;
    char p[4200];
    snprintf(p, sizeof p, "%s/results.csv", j->out);
    j->rc = coord__write_text(p, j->csv, j->csv_len, &j->err);
    snprintf(p, sizeof p, "%s/results.json", j->out);
    if (!j->rc)
        j->rc = coord__write_text(p, j->json, strlen(j->json), &j->err);
    if (!j->rc)
        j->rc = report_write(j->out, &j->err);
}

/* A write that fails does not stop the sweep (the end writes both again,
 * and a failure then is the run's): a warning, as often as the writes. */
static void live_after(uv_work_t *req, int status)
{
    live_job *j = req->data;
    coord *c = j->c;
    (void)status;
    if (j->rc)
        coord_log(c, "warning: the report written during the run: %s", j->err.msg);
    c->live.writing = 0;
    free(j->json);
    free(j->csv);
    free(j);
}

static void queue_live(coord *c)
{
    live_job *j = calloc(1, sizeof *j);
    c->live.mid_run = 1;
    char *json = j ? coord__results_json(c) : NULL;
    char *csv = json ? coord__results_csv(c, &j->csv_len) : NULL;
    c->live.mid_run = 0;
    if (!csv) {
        coord_log(c, "warning: the report written during the run: out of memory");
        free(json);
        free(j);
        return;
    }
    j->req.data = j;
    j->c = c;
    j->json = json;
    j->csv = csv;
    snprintf(j->out, sizeof j->out, "%s", c->out);
    c->live.writing = 1;
    uv_queue_work(&c->loop, &j->req, live_work, live_after);
}

void coord__live_report(coord *c, double now)
{
    if (c->phase != COORD_RUNNING || c->store_failed || c->live.writing)
        return;
    int ended = coord_count(c, TR_DONE) + coord_count(c, TR_FAILED);
    int epochs = epochs_reported(c);
    int trial_ended = ended != c->live.ended;
    /* the first epochs at once; later ones with the keepalive */
    int first_epochs = epochs != c->live.epochs && c->live.at == 0;
    double since = now - (c->live.at > 0 ? c->live.at : c->t0);
    if (!trial_ended && !first_epochs && since < coord__keepalive_s(c))
        return;
    c->live.ended = ended;
    c->live.epochs = epochs;
    c->live.at = now;
    queue_live(c);
}
