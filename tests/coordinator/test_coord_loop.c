/* The sweep protocol without mpirun: coord_run and worker_main (or fake
 * workers speaking through the msg API) in one process over an in-memory
 * link of 2 or 3 ends (common/msg/msg_link.h).
 *
 * The harness (the data, the tiny model, sweeps, peers, relays, run()) is
 * coordtest.[ch], shared with test_coord_msgs.c. A run of the grid is
 * bit-identical to any other (1 or 2 workers, interrupted or not).
 *
 * Every wait is bounded: a SIGALRM watchdog per case ends the program
 * (exit 3, naming the case) instead of letting a hang block ctest, and
 * worker threads must leave within a few seconds of coord_run's return. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/base/clock.h"
#include "common/base/fileio.h"
#include "common/store/ckpt.h"
#include "common/store/journal.h"
#include "common/sweep/sweep.h"
#include "common/weights/model_file.h"
#include "coordinator/coordtest.h"
#include "data/imgutil.h"
#include "worker/nn/backend.h"

static char *board_uninterrupted; /* the 1-worker run's leaderboard, for the stop case */

/* A worker that says hello, takes the setup and its first task, and
 * answers the task with a fatal Error, as worker.c does when it cannot
 * serve one. */
#define FAKE_TASK_ERROR "fake worker: /scratch/features.tmp: No space left on device"

static void fake_fails_task(peer *p)
{
    p->rc = -1;
    if (fake_hello(p, 0))
        return;
    Tlsweep__Envelope *env;
    while ((env = fake_recv(p)) && env->body_case != TLSWEEP__ENVELOPE__BODY_TASK)
        msg_free(env);
    if (!env)
        return;
    msg_free(env);
    Tlsweep__Envelope *er = msg_new_error(TL_EIO, FAKE_TASK_ERROR, 1);
    if (!er || msg_link_send(p->l, 0, er, &p->e)) {
        msg_free(er);
        return;
    }
    msg_free(er);
    fake_await_stop(p);
    p->rc = 0;
}

/* A worker that cannot train: every task it gets is answered with a
 * TrialResult FAILED, as worker.c answers a trial whose run failed. */
#define FAKE_TRIAL_ERROR "fake worker: loss is NaN at epoch 1 step 3"

static void fake_fails_trials(peer *p)
{
    p->rc = -1;
    fake_first_trial[0] = '\0';
    if (fake_hello(p, 0))
        return;
    fake_fail_tasks(p, FAKE_TRIAL_ERROR, 0);
}

/* A worker that takes its task and then says nothing, not even to a
 * Stop (a deadlock, a node stuck in I/O); it asks for the stop itself. */
static void fake_hangs(peer *p)
{
    p->rc = -1;
    if (fake_hello(p, 0))
        return;
    Tlsweep__Envelope *env;
    while ((env = fake_recv(p)) && env->body_case != TLSWEEP__ENVELOPE__BODY_TASK)
        msg_free(env);
    if (!env)
        return;
    msg_free(env);
    kill(getpid(), SIGTERM); /* blocked here: another thread takes it to libuv */
    for (double t0 = tl_now(); !atomic_load(&run_over) && tl_now() - t0 < RUN_WATCHDOG_S;)
        nanosleep(&(struct timespec){0, 10000000L}, NULL);
    p->rc = 0;
}

/* A worker built from another protocol version: its Hello says so. */
static void fake_other_protocol(peer *p)
{
    p->rc = -1;
    if (fake_hello(p, 1))
        return;
    fake_await_stop(p);
    p->rc = 0;
}

/* Every trial finished exactly once and reported each epoch exactly once
 * (a resumed trial continues after its checkpoint's epoch). */
static void assert_each_trial_once(const char *out, int starts)
{
    journal_counts jc = scan_journal(out);
    assert_int_equal(jc.starts, starts);
    for (int i = 0; i < N_TRIALS; i++) {
        assert_int_equal(jc.done[i], 1);
        assert_int_equal(jc.other[i], 0);
        for (int ep = 0; ep < EPOCHS; ep++)
            assert_int_equal(jc.epochs[i][ep], 1);
    }
}

/* What a finished run journaled for readers of a live sweep: each trial's
 * training task before its first epoch, on the ranks that trained it,
 * from scratch to its end; the workers with their host, all idle once
 * stopped, none lost. */
static void assert_live_records(const char *out, int n_workers)
{
    journal_counts jc = scan_journal(out);
    for (int i = 0; i < N_TRIALS; i++) {
        assert_true(jc.tasks[i] >= 1);
        assert_int_equal(jc.task_from[i], 0);
        assert_int_equal(jc.task_until[i], 0);
    }
    assert_int_equal(jc.untasked_epochs, 0);
    assert_int_equal(jc.task_ranks_differ, 0);
    /* every Hello in, and the end */
    assert_true(jc.workers_records >= 2);
    assert_int_equal(jc.workers_n, n_workers);
    assert_int_equal(jc.workers_bad, 0);
    assert_int_equal(jc.workers_state[TLSWEEP__WORKER_SEEN__STATE__IDLE], n_workers);
    assert_int_equal(jc.workers_lost_rank, 0);
}

/* A finished run's files: the leaderboard lists every trial as done,
 * results.json says finished, best.tlm is a model, no checkpoint is left. */
static void assert_finished_out(const char *out)
{
    char *b = board(out);
    int lines = 0;
    for (char *q = b; *q; q++)
        lines += *q == '\n';
    assert_int_equal(lines, 1 + N_TRIALS);
    for (int k = 1; k <= N_TRIALS; k++) {
        char rank[8];
        snprintf(rank, sizeof rank, "\n%d,", k);
        char *row = strstr(b, rank);
        assert_non_null(row);
        assert_non_null(strstr(row, ",done,"));
    }
    free(b);
    char *json = read_text(out, "results.json");
    assert_non_null(strstr(json, "\"state\": \"finished\""));
    assert_non_null(strstr(json, "\"model\": \"best.tlm\""));
    /* both frozen trials trained on one extraction of the backbone's features */
    assert_non_null(strstr(json, "\"extractions\": 1,"));
    /* fp32 without grid.precision; the engine the worker was asked for:
     * the sweep gives none, so the process's (TLSWEEP_ENGINE, else auto) */
    assert_null(strstr(json, "\"precision\": \"bf16\""));
    assert_non_null(strstr(json, "\"precision\": \"fp32\""));
    char engine[64];
    snprintf(engine, sizeof engine, "\"engine\": \"%s\"", nn_backend_name(nn_backend_get()));
    assert_non_null(strstr(json, engine));
    free(json);
    char *best = out_path(out, "best.tlm");
    model_spec spec;
    model_spec_init(&spec);
    tset ts;
    tset_init(&ts);
    tl_err e = {0};
    if (model_read(best, &spec, &ts, &e))
        fail_msg("%s", e.msg);
    assert_string_equal(spec.precision, "fp32");
    model_spec_free(&spec);
    tset_free(&ts);
    free(best);
    assert_int_equal(count_checkpoints(out), 0);
}

/* ---- the cases ---------------------------------------------------------------------------- */

/* The grid by one worker, then by two: each trial finishes once, the
 * files are complete, and the leaderboards are the same to the digit. */
static void test_schedule_one_and_two_workers(void **state)
{
    (void)state;
    watchdog("schedule", RUN_WATCHDOG_S);
    char *y1 = write_sweep("one", "out1", weights);
    run_ctx r1 = {.n_peers = 1};
    assert_int_equal(run(y1, &r1), 0);
    assert_int_equal(r1.peers[0].rc, 0);
    assert_int_equal(r1.abandoned, 0);
    assert_each_trial_once("out1", 1);
    assert_finished_out("out1");
    assert_live_records("out1", 1);

    char *y2 = write_sweep("two", "out2", weights);
    run_ctx r2 = {.n_peers = 2, .relayed = 1};
    assert_int_equal(run(y2, &r2), 0);
    assert_int_equal(r2.peers[0].rc, 0);
    assert_int_equal(r2.peers[1].rc, 0);
    /* dynamic scheduling: both ranks trained, each trial once between them */
    printf("trials finished by rank 1: %d, by rank 2: %d\n", r2.relays[0].done_results,
           r2.relays[1].done_results);
    assert_true(r2.relays[0].done_results >= 1);
    assert_true(r2.relays[1].done_results >= 1);
    assert_int_equal(r2.relays[0].done_results + r2.relays[1].done_results, N_TRIALS);
    assert_int_equal(r2.abandoned, 0);
    assert_each_trial_once("out2", 1);
    assert_finished_out("out2");
    assert_live_records("out2", 2);

    char *b1 = board("out1"), *b2 = board("out2");
    printf("%s", b1);
    assert_string_equal(b1, b2);
    free(b2);
    board_uninterrupted = b1;
    free(y1);
    free(y2);
    alarm(0);
}

/* Real workers that cannot read the weights (a torn file): coord_run
 * fails with one line naming the rank and the file, and both workers,
 * the one that failed and the one told to abort, leave. */
static void test_worker_error(void **state)
{
    (void)state;
    watchdog("worker error", RUN_WATCHDOG_S);
    char *y = write_sweep("broken", "out_broken", broken_weights);
    run_ctx r = {.n_peers = 2};
    assert_int_equal(run(y, &r), 1);
    tu_assert_one_line_error(&r.e, "rank ", "broken.tlm");
    /* the worker that failed says so too; worker_main returns its code */
    int failed = r.peers[0].rc < 0 ? 0 : 1;
    assert_true(r.peers[failed].rc < 0);
    tu_assert_one_line_error(&r.peers[failed].e, "broken.tlm");
    char *json = read_text("out_broken", "results.json");
    assert_non_null(strstr(json, "\"state\": \"failed\""));
    free(json);
    assert_int_equal(r.abandoned, 0);
    free(y);
    alarm(0);
}

/* A worker answering its task with a fatal Error envelope: coord_run
 * returns 1 with that worker's line, and tells it to stop (ABORT). */
static void test_fake_worker_error(void **state)
{
    (void)state;
    watchdog("fake worker error", FAST_WATCHDOG_S);
    char *y = write_sweep("fake", "out_fake", weights);
    run_ctx r = {.n_peers = 1, .fns = {fake_fails_task}};
    assert_int_equal(run(y, &r), 1);
    tu_assert_one_line_error(&r.e, "rank 1", FAKE_TASK_ERROR);
    assert_int_equal(r.peers[0].rc, 0);
    assert_int_equal(r.peers[0].stop_reason, TLSWEEP__STOP__REASON__ABORT);
    assert_true(r.seconds < LEAVE_S);
    assert_int_equal(r.abandoned, 0);
    free(y);
    alarm(0);
}

/* Rank 2 fails every trial it is given (rank 1 trains the others): the
 * run ends, coord_run returns 1 with one line naming the first failed
 * trial and the worker's reason, and results.json keeps that reason. */
static void test_failed_trial(void **state)
{
    (void)state;
    watchdog("failed trial", RUN_WATCHDOG_S);
    char *y = write_sweep_modes("failtrial", "out_failtrial", weights, "[fine_tune]");
    run_ctx r = {.n_peers = 2, .fns = {NULL, fake_fails_trials}};
    assert_int_equal(run(y, &r), 1);
    assert_int_equal(r.peers[0].rc, 0);
    assert_int_equal(r.peers[1].rc, 0);
    assert_int_equal(r.peers[1].stop_reason, TLSWEEP__STOP__REASON__FINISHED);
    assert_true(fake_first_trial[0]);
    tu_assert_one_line_error(&r.e, "failed", fake_first_trial, FAKE_TRIAL_ERROR);
    char *json = read_text("out_failtrial", "results.json");
    assert_non_null(strstr(json, "\"error\": \"" FAKE_TRIAL_ERROR "\""));
    free(json);
    assert_int_equal(r.abandoned, 0);
    free(y);
    alarm(0);
}

/* results.csv as the second task of a run went out: NULL none in time */
static char *csv_mid_run;

/* Before answering its second task, waits (bounded) for results.csv to
 * list the first, failed, trial: written during the run, not at its end. */
static void read_csv_at_second_task(peer *p, const Tlsweep__Task *t, int nth)
{
    (void)p;
    (void)t;
    if (nth != 1)
        return;
    char *path = out_path("out_csvlive", "results.csv");
    for (double t0 = tl_now(); !csv_mid_run && tl_now() - t0 < LEAVE_S;) {
        unsigned char *text = NULL;
        size_t n;
        tl_err e = {0};
        /* missing until the first write: no test failure off the main thread */
        if (!tl_read_file(path, 1u << 20, &text, &n, &e) && strstr((char *)text, ",failed,")) {
            csv_mid_run = (char *)text;
        } else {
            free(text);
            nanosleep(&(struct timespec){0, 50000000L}, NULL);
        }
    }
    free(path);
}

/* A worker whose trials fail: results.csv exists while the run goes on,
 * its columns as at the end, the trial that ended as failed and the one
 * under way as running. */
static void test_results_csv_mid_run(void **state)
{
    (void)state;
    watchdog("results.csv mid-run", FAST_WATCHDOG_S);
    char *y = write_sweep_modes("csvlive", "out_csvlive", weights, "[fine_tune]");
    fake_before_answer = read_csv_at_second_task;
    run_ctx r = {.n_peers = 1, .fns = {fake_fails_trials}};
    assert_int_equal(run(y, &r), 1);
    fake_before_answer = NULL;
    assert_non_null(csv_mid_run);
    printf("%s", csv_mid_run);
    char *end = read_text("out_csvlive", "results.csv");
    const char *nl = strchr(end, '\n');
    assert_non_null(nl);
    /* the header of the end's file */
    assert_memory_equal(csv_mid_run, end, (size_t)(nl - end + 1));
    char row[200];
    snprintf(row, sizeof row, ",%s,failed,", fake_first_trial);
    assert_non_null(strstr(csv_mid_run, row));
    assert_non_null(strstr(csv_mid_run, ",running,"));
    assert_null(strstr(end, ",running,"));
    free(end);
    free(csv_mid_run);
    csv_mid_run = NULL;
    free(y);
    alarm(0);
}

/* Rank 2 speaks another protocol version: coord_run fails at its Hello
 * with one line saying so, and both ranks (the real worker too) leave. */
static void test_protocol_mismatch(void **state)
{
    (void)state;
    watchdog("protocol mismatch", FAST_WATCHDOG_S);
    char *y = write_sweep("proto", "out_proto", weights);
    run_ctx r = {.n_peers = 2, .fns = {NULL, fake_other_protocol}};
    assert_int_equal(run(y, &r), 1);
    char other[16];
    snprintf(other, sizeof other, "%d", TLSWEEP__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT + 1);
    tu_assert_one_line_error(&r.e, "rank 2", "protocol version", other);
    assert_int_equal(r.peers[0].rc, 0);
    assert_int_equal(r.peers[1].rc, 0);
    assert_int_equal(r.peers[1].stop_reason, TLSWEEP__STOP__REASON__ABORT);
    assert_true(r.seconds < LEAVE_S);
    assert_int_equal(r.abandoned, 0);
    free(y);
    alarm(0);
}

/* A stop mid-run ends coord_run promptly with COORD_EXIT_INTERRUPTED,
 * what finished journaled and the running trial checkpointed; a second
 * coord_run on the same out/ finishes the rest, every trial once, with
 * the uninterrupted run's leaderboard. */
static void test_stop_and_resume(void **state)
{
    (void)state;
    watchdog("stop and resume", RUN_WATCHDOG_S);
    assert_non_null(board_uninterrupted); /* from test_schedule_one_and_two_workers */
    char *y = write_sweep("stop", "out_stop", weights);
    /* grid order: trial 0 (fine_tune) runs first, after the extraction;
     * the relay raises SIGTERM at its first checkpoint */
    run_ctx r = {.n_peers = 1, .relayed = 1, .stop_at_checkpoint = 1};
    int status = run(y, &r);
    const relay *rl = &r.relays[0];
    assert_true(rl->raised_at > 0);
    assert_int_equal(rl->gate_timeouts, 0);
    assert_int_equal(status, COORD_EXIT_INTERRUPTED);
    assert_int_equal(r.peers[0].rc, 0);
    assert_int_equal(r.abandoned, 0);
    double took = tl_now() - rl->raised_at;
    printf("coord_run returned %.2f s after SIGTERM\n", took);
    assert_true(took < 10.0);

    char *json = read_text("out_stop", "results.json");
    assert_non_null(strstr(json, "\"state\": \"interrupted\""));
    free(json);
    /* trial 0 stopped in its second epoch: epoch 1 journaled and
     * checkpointed, nothing finished */
    journal_counts jc = scan_journal("out_stop");
    for (int i = 0; i < N_TRIALS; i++) {
        assert_int_equal(jc.done[i], 0);
        assert_int_equal(jc.other[i], 0);
        assert_int_equal(jc.epochs[i][0], i == 0);
        assert_int_equal(jc.epochs[i][1], 0);
    }
    assert_int_equal(count_checkpoints("out_stop"), 1);
    /* the checkpoint says the precision that computed it */
    char *cp = out_path("out_stop", "checkpoints/mobilenet_v2-ft-lr1e-02-adam-b8.ckpt");
    Tlsweep__Checkpoint *ck;
    tl_err ce = {0};
    if (ckpt_read(cp, &ck, &ce))
        fail_msg("%s", ce.msg);
    assert_string_equal(ck->precision, "fp32");
    uint32_t ck_epochs = ck->epoch;
    assert_int_equal(ck_epochs, 1);
    tlsweep__checkpoint__free_unpacked(ck, NULL);
    free(cp);

    run_ctx r2 = {.n_peers = 1};
    assert_int_equal(run(y, &r2), 0);
    assert_int_equal(r2.peers[0].rc, 0);
    assert_each_trial_once("out_stop", 2);
    assert_finished_out("out_stop");
    /* the resumed task says where its checkpoint left off */
    journal_counts jr = scan_journal("out_stop");
    assert_int_equal(jr.tasks[0], 2);
    assert_int_equal(jr.task_from[0], ck_epochs);
    assert_int_equal(jr.untasked_epochs, 0);
    assert_int_equal(jr.task_ranks_differ, 0);
    char *b = board("out_stop");
    assert_string_equal(b, board_uninterrupted);
    free(b);
    free(y);
    alarm(0);
}

/* A stop while a worker hangs: coord_run waits stop_grace_s for it, then
 * leaves without it (abandoned, for cli_run to MPI_Abort) and returns the
 * interrupted status, instead of waiting forever. */
static void test_stop_with_hung_worker(void **state)
{
    (void)state;
    watchdog("stop with a hung worker", FAST_WATCHDOG_S);
    char *y = write_sweep("hung", "out_hung", weights);
    run_ctx r = {.n_peers = 1, .fns = {fake_hangs}, .stop_grace_s = 2};
    assert_int_equal(run(y, &r), COORD_EXIT_INTERRUPTED);
    assert_int_equal(r.abandoned, 1);
    assert_int_equal(r.peers[0].rc, 0);
    assert_true(r.seconds >= 2.0);
    assert_true(r.seconds < 2.0 + 5.0); /* the grace is checked once a second */
    char *json = read_text("out_hung", "results.json");
    assert_non_null(strstr(json, "\"state\": \"interrupted\""));
    free(json);
    free(y);
    alarm(0);
}


/* ---- setup errors, damaged journals, another sweep, stale temporaries ---------------------- */

/* A run that cannot start fails with one line holding the fragments, at
 * once, and both real workers (waiting for their Setup) are told to stop
 * and leave: before the fix they waited forever. */
static void expect_setup_error(const char *yaml, const char *frag1, const char *frag2)
{
    run_ctx r = {.n_peers = 2};
    assert_int_equal(run(yaml, &r), 1);
    tu_assert_one_line_error(&r.e, frag1, frag2);
    assert_int_equal(r.peers[0].rc, 0);
    assert_int_equal(r.peers[1].rc, 0);
    assert_int_equal(r.abandoned, 0);
    assert_true(r.seconds < LEAVE_S);
}

static void test_setup_errors_stop_workers(void **state)
{
    (void)state;
    watchdog("setup errors", FAST_WATCHDOG_S);
    /* another run holds the journal's lock */
    char *y = write_sweep("locked", "out_locked", weights);
    char *o = iu_path(root, "out_locked");
    mkdir(o, 0755);
    char *jp = out_path("out_locked", "journal");
    journal *held = NULL;
    tl_err e = {0};
    assert_int_equal(journal_open(&held, jp, 0, NULL, NULL, NULL, &e), 0);
    expect_setup_error(y, jp, "another writer");
    journal_close(held, NULL);
    /* a journal that is not one */
    tu_write_file(jp, "not a journal\n", 14);
    expect_setup_error(y, jp, "not a tlsweep journal");
    free(y);
    /* out: under a file, which no permission (not even root's) turns into
     * a folder */
    char *f = iu_path(root, "plainfile");
    tu_write_file(f, "x", 1);
    y = write_sweep("underfile", "plainfile/out", weights);
    expect_setup_error(y, "plainfile", "not a folder");
    free(f);
    free(y);
    free(jp);
    free(o);
    alarm(0);
}

static unsigned char *read_out(const char *out, const char *rel, size_t *n)
{
    char *p = out_path(out, rel);
    unsigned char *b = tu_read_file(p, n);
    free(p);
    return b;
}

/* best.tlm cannot be written (a folder sits on its name; rename fails even
 * for root): the run stops with COORD_EXIT_IO and the line naming best.tlm,
 * and the trial is not journaled as done, its checkpoint kept. Once the
 * name is free, a re-run finishes with the uninterrupted leaderboard, each
 * trial journaled done once, and best.tlm byte for byte the uninterrupted
 * run's. Before the fix the trial was recorded done and best.tlm stayed
 * another trial's model for good. */
static void test_best_write_fails(void **state)
{
    (void)state;
    watchdog("best.tlm write fails", RUN_WATCHDOG_S);
    assert_non_null(board_uninterrupted);
    char *y = write_sweep("bestfail", "out_bestfail", weights);
    char *o = iu_path(root, "out_bestfail"), *bp = out_path("out_bestfail", "best.tlm");
    mkdir(o, 0755);
    assert_int_equal(mkdir(bp, 0755), 0);
    run_ctx r = {.n_peers = 1};
    assert_int_equal(run(y, &r), COORD_EXIT_IO);
    tu_assert_one_line_error(&r.e, "best.tlm", "rename");
    assert_int_equal(r.peers[0].rc, 0);
    journal_counts jc = scan_journal("out_bestfail");
    for (int i = 0; i < N_TRIALS; i++)
        assert_int_equal(jc.done[i], 0);
    assert_true(count_checkpoints("out_bestfail") >= 1);
    assert_int_equal(rmdir(bp), 0);

    run_ctx r2 = {.n_peers = 1};
    assert_int_equal(run(y, &r2), 0);
    jc = scan_journal("out_bestfail");
    for (int i = 0; i < N_TRIALS; i++)
        assert_int_equal(jc.done[i], 1);
    assert_finished_out("out_bestfail");
    char *b = board("out_bestfail");
    assert_string_equal(b, board_uninterrupted);
    size_t n1, n2;
    unsigned char *m1 = read_out("out1", "best.tlm", &n1), *m2 = read_out("out_bestfail", "best.tlm", &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(m1, m2, n1);
    free(m1);
    free(m2);
    free(b);
    free(bp);
    free(o);
    free(y);
    alarm(0);
}

/* journal_scan callback: each record appended to the journal ctx, DONE
 * results with their confusion matrix cut to one count. */
static int copy_short_confusion(void *ctx, const void *payload, size_t len)
{
    Tlsweep__JournalRecord *rec = tlsweep__journal_record__unpack(NULL, len, payload);
    assert_non_null(rec);
    if (rec->body_case == TLSWEEP__JOURNAL_RECORD__BODY_RESULT &&
        rec->result->status == TLSWEEP__TRIAL_RESULT__STATUS__DONE) {
        assert_true(rec->result->n_confusion > 1);
        rec->result->n_confusion = 1;
    }
    size_t n = tlsweep__journal_record__get_packed_size(rec);
    unsigned char *buf = malloc(n ? n : 1);
    assert_non_null(buf);
    tlsweep__journal_record__pack(rec, buf);
    tl_err e = {0};
    if (journal_append(ctx, buf, n, &e))
        fail_msg("%s", e.msg);
    free(buf);
    tlsweep__journal_record__free_unpacked(rec, NULL);
    return 0;
}

/* A finished run's journal whose DONE results carry a confusion matrix
 * short of its classes (checksummed: another build wrote them so): the
 * re-run does not believe them, and trains every trial again instead of
 * reading past the matrix when it writes results.json. */
static void test_replayed_result_checked(void **state)
{
    (void)state;
    watchdog("replayed result", RUN_WATCHDOG_S);
    assert_non_null(board_uninterrupted);
    char *y = write_sweep("shortcm", "out_shortcm", weights);
    run_ctx r = {.n_peers = 1};
    assert_int_equal(run(y, &r), 0);
    char *jp = out_path("out_shortcm", "journal");
    char *bad = out_path("out_shortcm", "journal.short");
    journal *j;
    tl_err e = {0};
    unlink(bad);
    assert_int_equal(journal_open(&j, bad, 0, NULL, NULL, NULL, &e), 0);
    assert_int_equal(journal_scan(jp, JOURNAL_STRICT, copy_short_confusion, j, NULL, &e), 0);
    assert_int_equal(journal_close(j, &e), 0);
    assert_int_equal(rename(bad, jp), 0);
    run_ctx r2 = {.n_peers = 1};
    assert_int_equal(run(y, &r2), 0);
    journal_counts jc = scan_journal("out_shortcm");
    for (int i = 0; i < N_TRIALS; i++)
        assert_int_equal(jc.done[i], 2);
    assert_finished_out("out_shortcm");
    char *b = board("out_shortcm");
    assert_string_equal(b, board_uninterrupted);
    free(b);
    free(bad);
    free(jp);
    free(y);
    alarm(0);
}

/* A bit flipped in the middle of a finished run's journal: the re-run is
 * refused with one line giving the byte and `--repair`, nothing changed;
 * with repair it keeps the records before the damage, runs again what
 * they do not record, and ends with the uninterrupted leaderboard. */
static void test_damaged_journal_repair(void **state)
{
    (void)state;
    watchdog("damaged journal", RUN_WATCHDOG_S);
    assert_non_null(board_uninterrupted);
    char *y = write_sweep("flip", "out_flip", weights);
    run_ctx r = {.n_peers = 1};
    assert_int_equal(run(y, &r), 0);
    size_t n;
    unsigned char *j = read_out("out_flip", "journal", &n);
    size_t at = n / 2;
    j[at] ^= 0x04;
    char *jp = out_path("out_flip", "journal");
    tu_write_file(jp, j, n);
    run_ctx r2 = {.n_peers = 1};
    assert_int_equal(run(y, &r2), 1);
    tu_assert_one_line_error(&r2.e, jp, "damaged record at byte", "--repair");
    size_t n2;
    unsigned char *j2 = read_out("out_flip", "journal", &n2);
    assert_int_equal(n2, n);
    assert_memory_equal(j2, j, n);
    free(j2);
    run_ctx r3 = {.n_peers = 1, .repair = 1};
    assert_int_equal(run(y, &r3), 0);
    /* the cut records may have held the best result (best.tlm is its
     * model): the best trial kept, if any, runs again, reset first */
    journal_counts jc = scan_journal("out_flip");
    int again = 0;
    for (int i = 0; i < N_TRIALS; i++) {
        assert_int_equal(jc.done[i], 1 + jc.resets[i]);
        assert_true(jc.resets[i] <= 1);
        again += jc.resets[i];
    }
    assert_true(again <= 1);
    assert_finished_out("out_flip");
    char *b = board("out_flip");
    assert_string_equal(b, board_uninterrupted);
    free(b);
    free(j);
    free(jp);
    free(y);
    alarm(0);
}

/* Another sweep on a finished out/ (out1 of the first case): refused with
 * one line naming --force, nothing written; with --force, trials of the
 * same configuration stay finished but the best runs again, so best.tlm is
 * its model (the same bytes) and the leaderboard is the same; that rerun
 * is journaled before it starts, so when it does not finish (here: it
 * fails) the plain re-run still runs it. Temporaries left by a killed
 * writer go at start; other files stay. */
static void test_other_sweep_and_stale_tmp(void **state)
{
    (void)state;
    watchdog("other sweep", RUN_WATCHDOG_S);
    assert_non_null(board_uninterrupted);
    char *y = write_sweep_modes("another", "out1", weights, "[fine_tune, frozen]");
    size_t n0;
    unsigned char *j0 = read_out("out1", "journal", &n0);
    run_ctx r = {.n_peers = 2};
    assert_int_equal(run(y, &r), 1);
    tu_assert_one_line_error(&r.e, "out1", "another sweep", "one.yaml", "--force");
    assert_int_equal(r.peers[0].rc, 0);
    assert_int_equal(r.peers[1].rc, 0);
    size_t n1;
    unsigned char *j1 = read_out("out1", "journal", &n1);
    assert_int_equal(n1, n0);
    free(j1);
    free(j0);

    static const char *stale[] = {"best.tlm.tmp.4242.1", "checkpoints/t.ckpt.tmp.17.3",
                                  "cache/00ab.features.tmp.99.12"};
    static const char *kept[] = {"notes.tmp.txt", "checkpoints/x.tmp.1"};
    for (int i = 0; i < 3; i++) {
        char *p = out_path("out1", stale[i]);
        tu_write_file(p, "partial", 7);
        free(p);
    }
    for (int i = 0; i < 2; i++) {
        char *p = out_path("out1", kept[i]);
        tu_write_file(p, "mine", 4);
        free(p);
    }
    size_t nb;
    unsigned char *best0 = read_out("out1", "best.tlm", &nb);
    run_ctx r2 = {.n_peers = 1, .force = 1, .fns = {fake_fails_trials}};
    assert_int_equal(run(y, &r2), 1);
    tu_assert_one_line_error(&r2.e, "1 trial failed", FAKE_TRIAL_ERROR);
    run_ctx r3 = {.n_peers = 1};
    assert_int_equal(run(y, &r3), 0);
    journal_counts jc = scan_journal("out1");
    int twice = 0;
    for (int i = 0; i < N_TRIALS; i++) {
        assert_true(jc.done[i] == 1 || jc.done[i] == 2);
        assert_int_equal(jc.resets[i], jc.done[i] - 1);
        twice += jc.done[i] == 2;
    }
    assert_int_equal(twice, 1);
    char *b = board("out1");
    assert_string_equal(b, board_uninterrupted);
    free(b);
    size_t nb2;
    unsigned char *best1 = read_out("out1", "best.tlm", &nb2);
    assert_int_equal(nb, nb2);
    assert_memory_equal(best0, best1, nb);
    free(best0);
    free(best1);
    for (int i = 0; i < 3; i++) {
        char *p = out_path("out1", stale[i]);
        assert_int_equal(access(p, F_OK), -1);
        free(p);
    }
    for (int i = 0; i < 2; i++) {
        char *p = out_path("out1", kept[i]);
        assert_int_equal(access(p, F_OK), 0);
        unlink(p);
        free(p);
    }
    free(y);
    alarm(0);
}

/* grid.precision [fp32, bf16] on the frozen grid: a bf16 trial after each
 * fp32 one, each precision on a feature cache of its own, and the results
 * and best.tlm say which precision trained what. Needs a host that can run
 * bf16 (AVX512_BF16 and oneDNN, sweep_check_host): skipped elsewhere. */
static void test_precision_bf16(void **state)
{
    (void)state;
    watchdog("precision", RUN_WATCHDOG_S);
    /* the mode list's line, then one more grid line */
    char *y = write_sweep_modes("prec", "out_prec", weights, "[frozen]\n  precision: [fp32, bf16]");
    sweep s;
    tl_err e = {0};
    if (sweep_load(&s, y, &e))
        fail_msg("%s", e.msg);
    int cannot = sweep_check_host(&s, &e);
    sweep_free(&s);
    if (cannot) {
        print_message("skipped: %s\n", e.msg);
        free(y);
        alarm(0);
        skip();
    }
    run_ctx r = {.n_peers = 1};
    assert_int_equal(run(y, &r), 0);
    assert_int_equal(r.peers[0].rc, 0);
    assert_each_trial_once("out_prec", 1);

    char *p = out_path("out_prec", "results.json");
    json_error_t je;
    json_t *root = json_load_file(p, 0, &je);
    if (!root)
        fail_msg("%s: %s", p, je.text);
    free(p);
    json_t *trials = json_object_get(root, "trials");
    assert_int_equal(json_array_size(trials), N_TRIALS);
    int bf16 = 0;
    for (size_t i = 0; i < json_array_size(trials); i++) {
        json_t *t = json_array_get(trials, i);
        const char *id = json_string_value(json_object_get(t, "id"));
        const char *prec = json_string_value(json_object_get(t, "precision"));
        size_t n = strlen(id);
        int is_bf16 = n > 5 && !strcmp(id + n - 5, "-bf16");
        assert_string_equal(prec, is_bf16 ? "bf16" : "fp32");
        assert_string_equal(json_string_value(json_object_get(t, "status")), "done");
        bf16 += is_bf16;
    }
    assert_int_equal(bf16, N_TRIALS / 2);
    /* one extraction per precision */
    json_t *fc = json_object_get(root, "feature_caches");
    assert_int_equal(json_array_size(fc), 2);
    for (size_t g = 0; g < 2; g++) {
        json_t *c = json_array_get(fc, g);
        assert_int_equal(json_integer_value(json_object_get(c, "extractions")), 1);
        const char *label = json_string_value(json_object_get(c, "label"));
        size_t n = strlen(label);
        assert_int_equal(n > 5 && !strcmp(label + n - 5, "|bf16"), (int)g);
    }
    /* best.tlm: trained in the precision of the best trial */
    const char *best_id = json_string_value(json_object_get(json_object_get(root, "best"), "trial"));
    size_t nb = strlen(best_id);
    const char *best_prec = nb > 5 && !strcmp(best_id + nb - 5, "-bf16") ? "bf16" : "fp32";
    char *bp = out_path("out_prec", "best.tlm");
    model_spec spec;
    model_spec_init(&spec);
    tset ts;
    tset_init(&ts);
    if (model_read(bp, &spec, &ts, &e))
        fail_msg("%s", e.msg);
    assert_string_equal(spec.precision, best_prec);
    printf("best %s, trained in %s\n", best_id, spec.precision);
    model_spec_free(&spec);
    tset_free(&ts);
    free(bp);
    json_decref(root);
    free(y);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_one_and_two_workers),
        cmocka_unit_test(test_worker_error),
        cmocka_unit_test(test_fake_worker_error),
        cmocka_unit_test(test_failed_trial),
        cmocka_unit_test(test_results_csv_mid_run),
        cmocka_unit_test(test_protocol_mismatch),
        cmocka_unit_test(test_stop_and_resume),
        cmocka_unit_test(test_stop_with_hung_worker),
        cmocka_unit_test(test_setup_errors_stop_workers),
        cmocka_unit_test(test_best_write_fails),
        cmocka_unit_test(test_damaged_journal_repair),
        cmocka_unit_test(test_replayed_result_checked),
        cmocka_unit_test(test_other_sweep_and_stale_tmp),
        cmocka_unit_test(test_precision_bf16),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    free(board_uninterrupted);
    return rc;
}
