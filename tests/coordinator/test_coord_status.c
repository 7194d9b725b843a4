/* `tlsweep status`'s reader (coordinator/coord_status.c) on journals written
 * record by record with chosen times: two runs (the first stopped), epochs,
 * a failed and a finished trial, a Reset, a record of a kind this build
 * does not know (a later build's, as a rung promotion would be) and a
 * payload that is not protobuf. Counts, states, the best, the times and
 * the ETA are worked out by hand from those records; the JSON is parsed
 * back. Then journals of a live run: trials running from their task
 * records, the workers line, and whether the coordinator is alive (the
 * journal's lock on this machine, the age of the newest record from
 * another). */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/store/journal.h"
#include "common/sweep/sweep.h"
#include "coordinator/coord_status.h"
#include "tlsweep.pb-c.h"

/* 3 trials of 4 epochs that train the backbone (no feature cache) */
static const char sweep_text[] = "name: st\n"
                                 "data: {train_dir: no/such/dir, validation_split: 0.2}\n"
                                 "model: {head: [global_average_pooling]}\n"
                                 "weights: {mobilenet_v2: no/such.tlm}\n"
                                 "grid:\n"
                                 "  backbone: [mobilenet_v2]\n"
                                 "  mode: [fine_tune]\n"
                                 "  learning_rate: [1.0e-2, 1.0e-3, 1.0e-4]\n"
                                 "epochs: 4\n"
                                 "out: o\n";

static char ids[3][128];
static journal *jr;

static void put(Tlsweep__JournalRecord *rec, uint64_t ms)
{
    rec->unix_ms = ms;
    size_t n = tlsweep__journal_record__get_packed_size(rec);
    unsigned char *buf = malloc(n + 1);
    tlsweep__journal_record__pack(rec, buf);
    tl_err e = {0};
    if (journal_append(jr, buf, n, &e))
        fail_msg("%s", e.msg);
    free(buf);
}

/* a Start record of a coordinator on host (NULL: not recorded) */
static void put_start_on(uint32_t ranks, const char *host, const char *file, uint64_t ms)
{
    Tlsweep__JournalStart s = TLSWEEP__JOURNAL_START__INIT;
    s.ranks = ranks;
    s.host = (char *)(host ? host : "");
    s.sweep_file = (char *)(file ? file : "");
    s.pid = host ? 4242 : 0;
    Tlsweep__JournalRecord r = TLSWEEP__JOURNAL_RECORD__INIT;
    r.body_case = TLSWEEP__JOURNAL_RECORD__BODY_START;
    r.start = &s;
    put(&r, ms);
}

static void put_start(uint32_t ranks, uint64_t ms)
{
    put_start_on(ranks, NULL, NULL, ms);
}

static void put_task(int t, int32_t *ranks, size_t n, uint32_t from, uint32_t until, uint64_t ms)
{
    Tlsweep__JournalTask tk = TLSWEEP__JOURNAL_TASK__INIT;
    tk.trial_index = (uint32_t)t;
    tk.trial_id = ids[t];
    tk.ranks = ranks;
    tk.n_ranks = n;
    tk.from_epoch = from;
    tk.until_epoch = until;
    Tlsweep__JournalRecord r = TLSWEEP__JOURNAL_RECORD__INIT;
    r.body_case = TLSWEEP__JOURNAL_RECORD__BODY_TASK;
    r.task = &tk;
    put(&r, ms);
}

/* workers 1..4: 1 and 2 training trials 0 and 1, 3 idle, 4 (on node-b)
 * lost at 300 s; the others heard at heard_ms */
static void put_workers(uint64_t heard_ms, uint64_t ms)
{
    Tlsweep__WorkerSeen w[4];
    Tlsweep__WorkerSeen *pw[4];
    static const Tlsweep__WorkerSeen__State states[4] = {
        TLSWEEP__WORKER_SEEN__STATE__TRAINING, TLSWEEP__WORKER_SEEN__STATE__TRAINING,
        TLSWEEP__WORKER_SEEN__STATE__IDLE, TLSWEEP__WORKER_SEEN__STATE__LOST};
    for (int i = 0; i < 4; i++) {
        tlsweep__worker_seen__init(&w[i]);
        w[i].rank = i + 1;
        w[i].host = (char *)(i == 3 ? "node-b" : "node-a");
        w[i].state = states[i];
        w[i].trial_id = i < 2 ? ids[i] : (char *)"";
        w[i].heard_unix_ms = i == 3 ? 300 * 1000u : heard_ms;
        pw[i] = &w[i];
    }
    Tlsweep__JournalWorkers jw = TLSWEEP__JOURNAL_WORKERS__INIT;
    jw.workers = pw;
    jw.n_workers = 4;
    Tlsweep__JournalRecord r = TLSWEEP__JOURNAL_RECORD__INIT;
    r.body_case = TLSWEEP__JOURNAL_RECORD__BODY_WORKERS;
    r.workers = &jw;
    put(&r, ms);
}

static void put_stop(Tlsweep__JournalStop__Kind kind, const char *msg, uint64_t ms)
{
    Tlsweep__JournalStop s = TLSWEEP__JOURNAL_STOP__INIT;
    s.kind = kind;
    s.message = (char *)msg;
    Tlsweep__JournalRecord r = TLSWEEP__JOURNAL_RECORD__INIT;
    r.body_case = TLSWEEP__JOURNAL_RECORD__BODY_STOP;
    r.stop = &s;
    put(&r, ms);
}

/* the ranks put_epoch records (none: a journal from before groups) */
static int32_t *epoch_ranks;
static size_t n_epoch_ranks;

static void put_epoch(int t, uint32_t epoch, double seconds, float val_acc, uint64_t ms)
{
    Tlsweep__EpochReport er = TLSWEEP__EPOCH_REPORT__INIT;
    er.ranks = epoch_ranks;
    er.n_ranks = n_epoch_ranks;
    er.trial_index = (uint32_t)t;
    er.trial_id = ids[t];
    er.epoch = epoch;
    er.seconds = seconds;
    er.loss = 1.5f;
    er.val_accuracy = val_acc;
    Tlsweep__JournalRecord r = TLSWEEP__JOURNAL_RECORD__INIT;
    r.body_case = TLSWEEP__JOURNAL_RECORD__BODY_EPOCH;
    r.epoch = &er;
    put(&r, ms);
}

/* a result from the task on ranks (none: a journal from before groups) */
static void put_result_on(int t, Tlsweep__TrialResult__Status status, double value,
                          int32_t *ranks, size_t n_ranks, uint64_t ms)
{
    Tlsweep__TrialResult res = TLSWEEP__TRIAL_RESULT__INIT;
    res.trial_index = (uint32_t)t;
    res.trial_id = ids[t];
    res.status = status;
    res.best_value = value;
    res.ranks = ranks;
    res.n_ranks = n_ranks;
    Tlsweep__JournalRecord r = TLSWEEP__JOURNAL_RECORD__INIT;
    r.body_case = TLSWEEP__JOURNAL_RECORD__BODY_RESULT;
    r.result = &res;
    put(&r, ms);
}

static void put_result(int t, Tlsweep__TrialResult__Status status, double value, uint64_t ms)
{
    put_result_on(t, status, value, NULL, 0, ms);
}

static void put_reset(int t, uint64_t ms)
{
    Tlsweep__JournalReset rs = TLSWEEP__JOURNAL_RESET__INIT;
    rs.trial_index = (uint32_t)t;
    rs.trial_id = ids[t];
    Tlsweep__JournalRecord r = TLSWEEP__JOURNAL_RECORD__INIT;
    r.body_case = TLSWEEP__JOURNAL_RECORD__BODY_RESET;
    r.reset = &rs;
    put(&r, ms);
}

static void put_promote(int t, uint32_t rung, uint32_t epochs, uint64_t ms)
{
    Tlsweep__JournalPromote pr = TLSWEEP__JOURNAL_PROMOTE__INIT;
    pr.trial_index = (uint32_t)t;
    pr.trial_id = ids[t];
    pr.rung = rung;
    pr.epochs = epochs;
    Tlsweep__JournalRecord r = TLSWEEP__JOURNAL_RECORD__INIT;
    r.body_case = TLSWEEP__JOURNAL_RECORD__BODY_PROMOTE;
    r.promote = &pr;
    put(&r, ms);
}

static void put_raw(const void *p, size_t n)
{
    tl_err e = {0};
    if (journal_append(jr, p, n, &e))
        fail_msg("%s", e.msg);
}

static const char *out_name = "out";

static const char *out_dir(void)
{
    return tu_tmp(out_name);
}

/* OUT (under the test's folder) with the sweep copy and an open journal
 * (jr, closing the last one): 0, -1 said on stderr */
static int open_out(const char *name)
{
    journal_close(jr, NULL);
    jr = NULL;
    out_name = name;
    const char *out = out_dir();
    mkdir(out, 0755);
    char p[600];
    snprintf(p, sizeof p, "%s/sweep.yaml", out);
    tu_write_file(p, sweep_text, strlen(sweep_text));
    sweep s;
    tl_err e = {0};
    if (sweep_load(&s, p, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    for (int i = 0; i < 3; i++)
        snprintf(ids[i], sizeof ids[i], "%s", s.trials[i].id);
    sweep_free(&s);
    snprintf(p, sizeof p, "%s/journal", out);
    if (journal_open(&jr, p, 0, NULL, NULL, NULL, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    return 0;
}

static int setup(void **state)
{
    if (tu_tmpdir_setup(state))
        return -1;
    return open_out("out");
}

static int teardown(void **state)
{
    journal_close(jr, NULL);
    return tu_tmpdir_teardown(state);
}

#define S 1000u /* ms */

/* coord_status_text's lines (printed for the log), malloc'd */
static char *text_of(const coord_status *st)
{
    tl_strbuf b = TL_STRBUF_INIT;
    coord_status_text(st, &b);
    assert_false(b.oom);
    printf("%s", b.s);
    return b.s;
}

/* Run 1 (3 ranks) stopped, run 2 (2 ranks) running; read at 2030 s. */
static void test_two_runs(void **st_)
{
    (void)st_;
    put_start(3, 1000 * S);
    put_epoch(0, 1, 5.0, 0.25f, 1010 * S);
    put_epoch(0, 2, 5.0, 0.40f, 1030 * S); /* 20 s of wall time since epoch 1 */
    /* a later build's record kind: unix_ms, then oneof field 30 = {1: 1} */
    static const unsigned char future[] = {0x08, 0x01, 0xf2, 0x01, 0x02, 0x08, 0x01};
    put_raw(future, sizeof future);
    static const unsigned char junk[] = {0xff, 0xff, 0xff};
    put_raw(junk, sizeof junk);
    put_epoch(1, 1, 8.0, 0.10f, 1040 * S);
    put_result(1, TLSWEEP__TRIAL_RESULT__STATUS__FAILED, 0, 1041 * S);
    put_stop(TLSWEEP__JOURNAL_STOP__KIND__INTERRUPTED, "", 1050 * S);
    put_start(2, 2000 * S);
    put_epoch(0, 3, 6.0, 0.55f, 2010 * S); /* another run: its own figure, not 980 s */
    put_result(2, TLSWEEP__TRIAL_RESULT__STATUS__DONE, 0.7, 2020 * S);
    tl_err e = {0};
    assert_int_equal(journal_sync(jr, &e), 0);

    coord_status st;
    if (coord_status_read(&st, out_dir(), 2030 * S, &e))
        fail_msg("%s", e.msg);
    assert_string_equal(st.sweep, "st");
    assert_string_equal(st.metric, "val_accuracy");
    assert_int_equal(st.state, COORD_STATUS_RUNNING);
    assert_int_equal(st.runs, 2);
    assert_int_equal(st.ranks, 2);
    assert_int_equal(st.n_trials, 3);
    assert_int_equal(st.records, 11);
    assert_int_equal(st.skipped, 2);
    assert_int_equal(st.ignored, 0);
    assert_string_equal(st.journal_note, "");
    assert_int_equal(st.trials[0].st, COORD_TRIAL_STARTED);
    assert_int_equal(st.trials[0].epoch, 3);
    assert_float_equal(st.trials[0].val_accuracy, 0.55, 1e-6);
    assert_int_equal(st.trials[1].st, COORD_TRIAL_FAILED);
    assert_int_equal(st.trials[2].st, COORD_TRIAL_DONE);
    assert_int_equal(st.n_done, 1);
    assert_int_equal(st.n_started, 1);
    assert_int_equal(st.n_queued, 0);
    assert_int_equal(st.n_failed, 1);
    assert_int_equal(st.best, 2);
    assert_float_equal(st.elapsed_s, 30.0, 1e-9);
    assert_float_equal(st.total_s, 50.0 + 30.0, 1e-9);
    /* epochs 5 + 20 + 6 s (trial 0) and 8 s (trial 1): 9.75 s each; trial 0
     * has 1 epoch left, on 1 worker */
    assert_float_equal(st.eta_s, 9.75, 1e-9);

    char *lines = text_of(&st);
    assert_non_null(strstr(lines, "st: running; run 2 started "));
    assert_non_null(strstr(lines, "trials: 1 done, 1 running, 0 queued, 1 failed, of 3; ETA 10s\n"));
    assert_non_null(strstr(lines, "best: val_accuracy 0.7000 ("));
    assert_non_null(strstr(lines, "epoch 3/4  loss 1.5000"));
    assert_null(strstr(lines, "on ranks")); /* epochs without ranks: nothing said */
    free(lines);

    char *text = coord_status_json(&st);
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fail_msg("not JSON: %s", je.text);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "running");
    json_t *t = json_object_get(j, "trials");
    assert_int_equal(json_integer_value(json_object_get(t, "running")), 1);
    assert_int_equal(json_integer_value(json_object_get(t, "interrupted")), 0);
    assert_int_equal(json_integer_value(json_object_get(t, "failed")), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "best"), "trial")),
                        ids[2]);
    json_t *started = json_object_get(j, "started");
    assert_int_equal(json_array_size(started), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(started, 0), "epoch")), 3);
    assert_float_equal(json_real_value(json_object_get(j, "eta_seconds")), 9.75, 1e-9);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "journal"), "skipped")), 2);
    assert_true(json_is_null(json_object_get(json_object_get(j, "journal"), "note")));
    json_decref(j);
    free(text);
    coord_status_free(&st);
}

/* Then a rung search's decisions: trial 0 ends its rung (done), is
 * promoted (queued again, no record skipped), and starts its next rung
 * with its next epoch, on a group of two ranks (the status names them). */
static void test_promote(void **st_)
{
    (void)st_;
    put_result(0, TLSWEEP__TRIAL_RESULT__STATUS__DONE, 0.6, 2031 * S);
    put_promote(0, 1, 4, 2032 * S);
    tl_err e = {0};
    assert_int_equal(journal_sync(jr, &e), 0);
    coord_status st;
    if (coord_status_read(&st, out_dir(), 2033 * S, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(st.skipped, 2);
    assert_int_equal(st.trials[0].st, COORD_TRIAL_QUEUED);
    assert_int_equal(st.trials[0].rung, 1);
    assert_int_equal(st.n_queued, 1);
    coord_status_free(&st);
    /* its next rung trained by a group of two */
    int32_t group[2] = {2, 1};
    epoch_ranks = group;
    n_epoch_ranks = 2;
    put_epoch(0, 4, 6.0, 0.6f, 2034 * S);
    epoch_ranks = NULL;
    n_epoch_ranks = 0;
    assert_int_equal(journal_sync(jr, &e), 0);
    if (coord_status_read(&st, out_dir(), 2035 * S, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(st.trials[0].st, COORD_TRIAL_STARTED);
    assert_int_equal(st.trials[0].epoch, 4);
    assert_int_equal(st.n_queued, 0);
    char *lines = text_of(&st);
    assert_non_null(strstr(lines, "epoch 4/4  loss "));
    assert_non_null(strstr(lines, " per epoch)  (rung 1)  on ranks 2,1\n"));
    assert_int_equal(st.trials[0].n_ranks, 2);
    free(lines);
    coord_status_free(&st);
}

/* Then the finished trial is reset (it runs again) and the run fails: the
 * best is gone, the started trial is interrupted, the clock stops at the
 * last record. A torn tail after it is read up to, and said. */
static void test_reset_and_failed(void **st_)
{
    (void)st_;
    put_reset(2, 2040 * S);
    put_stop(TLSWEEP__JOURNAL_STOP__KIND__FAILED, "out/best.tlm: No space left on device",
             2045 * S);
    tl_err e = {0};
    assert_int_equal(journal_sync(jr, &e), 0);
    char p[600];
    snprintf(p, sizeof p, "%s/journal", out_dir());
    FILE *f = fopen(p, "ab");
    assert_non_null(f);
    fputc(0x20, f); /* the first byte of a record header */
    fclose(f);

    coord_status st;
    if (coord_status_read(&st, out_dir(), 9999 * S, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(st.state, COORD_STATUS_FAILED);
    assert_string_equal(st.stop_message, "out/best.tlm: No space left on device");
    assert_int_equal(st.trials[2].st, COORD_TRIAL_QUEUED);
    assert_int_equal(st.best, -1);
    assert_int_equal(st.n_done, 0);
    assert_int_equal(st.n_queued, 1);
    assert_float_equal(st.elapsed_s, 45.0, 1e-9);
    assert_float_equal(st.total_s, 50.0 + 45.0, 1e-9);
    assert_int_equal(st.ignored, 1);
    assert_non_null(strstr(st.journal_note, "journal: the last 1 bytes are not a whole record"));
    assert_non_null(strstr(st.journal_note, "read up to record 16"));
    assert_string_equal(coord_status_trial_name(&st, &st.trials[0]), "interrupted");
    char *lines = text_of(&st);
    assert_non_null(strstr(lines, "st: failed (out/best.tlm: No space left on device); run 2"));
    assert_non_null(strstr(lines, "best: none finished yet\n"));
    assert_non_null(strstr(lines, "  interrupted "));
    assert_null(strstr(lines, "last journal record"));
    free(lines);
    coord_status_free(&st);
}

/* No sweep copy: one line naming it; st is left freed. */
static void test_missing_sweep(void **st_)
{
    (void)st_;
    const char *dir = tu_tmp("nothing");
    mkdir(dir, 0755);
    coord_status st;
    tl_err e = {0};
    assert_int_equal(coord_status_read(&st, dir, 1, &e), TL_EIO);
    assert_non_null(strstr(e.msg, "nothing/sweep.yaml: cannot open"));
    assert_null(st.trials);
}

/* status read at now_ms (failing the test when it cannot be) */
static void read_at(coord_status *st, uint64_t now_ms)
{
    tl_err e = {0};
    assert_int_equal(journal_sync(jr, &e), 0);
    if (coord_status_read(st, out_dir(), now_ms, &e))
        fail_msg("%s", e.msg);
}

static json_t *json_of(const coord_status *st)
{
    char *text = coord_status_json(st);
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fail_msg("not JSON: %s", je.text);
    free(text);
    return j;
}

/* A run on another machine (the lock tells nothing from here) that writes
 * workers records: trials run from their tasks (epoch 0, starting; one to
 * the end of its rung), the workers line names the lost one; fresh records
 * are a running sweep, three minutes of silence a lost one. */
static void test_tasks_and_workers(void **st_)
{
    (void)st_;
    assert_int_equal(open_out("live"), 0);
    put_start_on(5, "elsewhere-node", NULL, 1000 * S);
    int32_t one[1] = {1}, two[1] = {2};
    put_task(0, one, 1, 0, 0, 1001 * S);
    put_task(1, two, 1, 0, 2, 1002 * S);
    put_workers(1003 * S, 1004 * S);
    coord_status st;
    read_at(&st, 1005 * S);
    assert_int_equal(st.state, COORD_STATUS_RUNNING);
    assert_int_equal(st.n_started, 2);
    assert_int_equal(st.n_running, 2);
    assert_int_equal(st.n_queued, 1);
    assert_int_equal(st.trials[1].until_epoch, 2);
    assert_true(st.trials[0].starting);
    char *lines = text_of(&st);
    assert_non_null(strstr(lines, "trials: 0 done, 2 running, 1 queued, 0 failed, of 3"));
    assert_non_null(strstr(lines, "\nworkers: 3 (2 training, 1 idle), last heard 2s ago; lost: "
                                  "rank 4 (node-b) 11m45s ago\n"));
    assert_non_null(strstr(lines, "  running     "));
    assert_non_null(strstr(lines, "  epoch 0/4  starting\n"));
    assert_non_null(strstr(lines, "  epoch 0/4  starting  to epoch 2\n"));
    free(lines);
    json_t *j = json_of(&st);
    json_t *w = json_object_get(j, "workers");
    assert_int_equal(json_array_size(w), 4);
    json_t *w0 = json_array_get(w, 0), *w3 = json_array_get(w, 3);
    assert_string_equal(json_string_value(json_object_get(w0, "state")), "training");
    assert_string_equal(json_string_value(json_object_get(w0, "trial")), ids[0]);
    assert_float_equal(json_real_value(json_object_get(w0, "heard_seconds_ago")), 2.0, 1e-9);
    assert_int_equal(json_integer_value(json_object_get(w3, "rank")), 4);
    assert_string_equal(json_string_value(json_object_get(w3, "host")), "node-b");
    assert_string_equal(json_string_value(json_object_get(w3, "state")), "lost");
    assert_true(json_is_null(json_object_get(json_array_get(w, 2), "trial")));
    json_t *t1 = json_array_get(json_object_get(j, "started"), 1);
    assert_true(json_is_true(json_object_get(t1, "starting")));
    assert_int_equal(json_integer_value(json_object_get(t1, "until_epoch")), 2);
    assert_int_equal(json_integer_value(json_object_get(t1, "epoch")), 0);
    json_decref(j);
    coord_status_free(&st);

    /* its first epoch: no longer starting; the last record at 1010 s */
    put_epoch(0, 1, 5.0, 0.3f, 1010 * S);
    read_at(&st, (1010 + 180) * S);
    assert_int_equal(st.state, COORD_STATUS_RUNNING); /* not past the limit */
    assert_false(st.trials[0].starting);
    assert_int_equal(st.trials[0].epoch, 1);
    coord_status_free(&st);
    read_at(&st, (1010 + 181) * S);
    assert_int_equal(st.state, COORD_STATUS_LOST);
    assert_int_equal(st.n_running, 0);
    assert_float_equal(st.elapsed_s, 10.0, 1e-9); /* to its last record */
    lines = text_of(&st);
    assert_non_null(strstr(lines, "st: lost; run 1 started "));
    assert_non_null(strstr(lines, "trials: 0 done, 2 interrupted, 1 queued, 0 failed, of 3"));
    assert_non_null(strstr(lines, "\nthe coordinator is gone (no journal record for 3m01s, where "
                                  "it writes one a minute), with no Stop record: "
                                  "`tlsweep run SWEEP` (the command that started it) resumes "
                                  "the sweep\n"));
    assert_null(strstr(lines, "last journal record"));
    free(lines);
    j = json_of(&st);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "lost");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "trials"),
                                                        "interrupted")), 2);
    assert_non_null(strstr(json_string_value(json_object_get(j, "lost_reason")), "3m01s"));
    json_decref(j);
    coord_status_free(&st);
}

/* Records after the roster: a result's ranks go idle, a changes-only
 * workers record names one worker, a task's ranks train its trial; the
 * lost worker stays lost whatever names its rank. */
static void test_workers_merged(void **st_)
{
    (void)st_;
    assert_int_equal(open_out("merged"), 0);
    put_start_on(5, "elsewhere-node", NULL, 1000 * S);
    put_workers(1003 * S, 1004 * S);
    int32_t r1[1] = {1};
    put_result_on(0, TLSWEEP__TRIAL_RESULT__STATUS__DONE, 0.5, r1, 1, 1005 * S);
    Tlsweep__WorkerSeen w2 = TLSWEEP__WORKER_SEEN__INIT, *pw[1] = {&w2};
    w2.rank = 2;
    w2.host = "node-a";
    w2.state = TLSWEEP__WORKER_SEEN__STATE__IDLE;
    w2.trial_id = "";
    w2.heard_unix_ms = 1006 * S;
    Tlsweep__JournalWorkers jw = TLSWEEP__JOURNAL_WORKERS__INIT;
    jw.workers = pw;
    jw.n_workers = 1;
    Tlsweep__JournalRecord r = TLSWEEP__JOURNAL_RECORD__INIT;
    r.body_case = TLSWEEP__JOURNAL_RECORD__BODY_WORKERS;
    r.workers = &jw;
    put(&r, 1006 * S);
    int32_t r34[2] = {3, 4};
    put_task(2, r34, 2, 0, 0, 1007 * S);
    coord_status st;
    read_at(&st, 1008 * S);
    assert_int_equal(st.n_workers, 4);
    assert_int_equal(st.workers_records, 2);
    char *lines = text_of(&st);
    assert_non_null(strstr(lines, "\nworkers: 3 (1 training, 2 idle), last heard 2s ago; lost: "
                                  "rank 4 (node-b) 11m48s ago\n"));
    free(lines);
    assert_int_equal(st.workers[2].rank, 3);
    assert_string_equal(st.workers[2].trial, ids[2]);
    assert_string_equal(st.workers[0].trial, "");
    assert_int_equal(st.workers[3].state, TLSWEEP__WORKER_SEEN__STATE__LOST);
    coord_status_free(&st);
}

/* Then a new run: the trial the last run left mid-way is interrupted until
 * this run sends it again; the other runs from its new task; the last
 * run's workers are not this run's. */
static void test_new_run_after_lost(void **st_)
{
    (void)st_;
    put_start_on(3, "elsewhere-node", NULL, 2000 * S);
    int32_t group[2] = {1, 2};
    put_task(1, group, 2, 0, 0, 2001 * S);
    coord_status st;
    read_at(&st, 2002 * S);
    assert_int_equal(st.state, COORD_STATUS_RUNNING);
    assert_string_equal(coord_status_trial_name(&st, &st.trials[0]), "interrupted");
    assert_string_equal(coord_status_trial_name(&st, &st.trials[1]), "running");
    assert_int_equal(st.trials[1].until_epoch, 0);
    char *lines = text_of(&st);
    assert_non_null(strstr(lines, "trials: 0 done, 1 running, 1 interrupted, 1 queued, 0 failed"));
    assert_non_null(strstr(lines, "  epoch 0/4  starting  on ranks 1,2\n"));
    assert_null(strstr(lines, "workers:"));
    free(lines);
    json_t *j = json_of(&st);
    assert_true(json_is_null(json_object_get(j, "workers")));
    assert_string_equal(json_string_value(json_object_get(j, "host")), "elsewhere-node");
    assert_int_equal(json_integer_value(json_object_get(j, "pid")), 4242);
    json_decref(j);
    coord_status_free(&st);
    /* the interrupted one sent again from its checkpoint of epoch 1 */
    put_task(0, group, 1, 1, 0, 2003 * S);
    read_at(&st, 2004 * S);
    assert_int_equal(st.n_running, 2);
    lines = text_of(&st);
    assert_non_null(strstr(lines, "  epoch 1/4  starting\n"));
    assert_null(strstr(lines, "interrupted"));
    free(lines);
    coord_status_free(&st);
}

/* A journal without workers records (an older coordinator) on another
 * machine: hours of silence are not enough to call it lost. */
static void test_old_journal_stays_running(void **st_)
{
    (void)st_;
    assert_int_equal(open_out("old"), 0);
    put_start_on(3, "elsewhere-node", NULL, 1000 * S);
    put_epoch(0, 1, 5.0, 0.3f, 1010 * S);
    coord_status st;
    read_at(&st, 9000 * S);
    assert_int_equal(st.state, COORD_STATUS_RUNNING);
    assert_string_equal(coord_status_trial_name(&st, &st.trials[0]), "running");
    char *lines = text_of(&st);
    assert_non_null(strstr(lines, "st: running; run 1 started "));
    assert_non_null(strstr(lines, " on 3 ranks, "));
    assert_null(strstr(lines, "workers:"));
    free(lines);
    coord_status_free(&st);
}

/* On this machine the journal's lock decides: held by a writer (here an
 * open journal in this process), running however old the records; let go,
 * lost at once, with the sweep file to run again. */
static void test_same_host_lock(void **st_)
{
    (void)st_;
    char host[256] = "";
    assert_int_equal(gethostname(host, sizeof host - 1), 0);
    assert_int_equal(open_out("here"), 0);
    put_start_on(3, host, "sweeps/st.yaml", 1000 * S);
    put_workers(1001 * S, 1002 * S);
    coord_status st;
    read_at(&st, 9000 * S);
    assert_int_equal(st.state, COORD_STATUS_RUNNING);
    coord_status_free(&st);
    tl_err e = {0};
    assert_int_equal(journal_close(jr, &e), 0);
    jr = NULL;
    coord_status_free(&st);
    if (coord_status_read(&st, out_dir(), 1003 * S, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(st.state, COORD_STATUS_LOST);
    char *lines = text_of(&st);
    char want[400];
    snprintf(want, sizeof want, "the coordinator is gone (pid 4242 on %s no longer holds the "
                                "journal's lock), with no Stop record: "
                                "`tlsweep run sweeps/st.yaml` (or the command that started it) "
                                "resumes the sweep\n", host);
    assert_non_null(strstr(lines, want));
    free(lines);
    coord_status_free(&st);
    /* the probe left no lock behind: a coordinator resuming opens it */
    char p[600];
    snprintf(p, sizeof p, "%s/journal", out_dir());
    assert_int_equal(journal_open(&jr, p, 0, NULL, NULL, NULL, &e), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_runs),
        cmocka_unit_test(test_promote),
        cmocka_unit_test(test_reset_and_failed),
        cmocka_unit_test(test_missing_sweep),
        cmocka_unit_test(test_tasks_and_workers),
        cmocka_unit_test(test_new_run_after_lost),
        cmocka_unit_test(test_old_journal_stays_running),
        cmocka_unit_test(test_same_host_lock),
        cmocka_unit_test(test_workers_merged),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
