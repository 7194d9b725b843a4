/* The coordinator's failures keep their code: a worker's fatal Error
 * carries its TL_E* to coord_run's tl_err (the exit path), the line is
 * logged once as "error: ...", results.json says the run failed, and the
 * exit status is 1. Also results.csv's header, from the same run. The
 * worker is a thread on a local link that says Hello, takes its Setup and
 * reports a fatal error. (test_coord_loop.c drives real workers.) */
#include "testutil.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "common/msg/msg.h"
#include "common/msg/msg_link.h"
#include "coordinator/coord.h"
#include "data/imgutil.h"

typedef struct {
    msg_link *l;
    int code;          /* the fatal Error's */
    int got_setup, got_stop;
} fake_worker;

static void *fake_main(void *arg)
{
    fake_worker *w = arg;
    Tlsweep__Envelope *env = NULL;
    if (msg_new_hello(1, &env, NULL) || msg_link_send(w->l, 0, env, NULL))
        return NULL;
    msg_free(env);
    /* Setup, maybe a Task, then the Stop that follows the failure */
    for (int waited = 0; waited < 200 && !w->got_stop; waited++) {
        int from = -1;
        env = NULL;
        if (msg_link_recv(w->l, &env, &from, 100, NULL) || !env)
            continue;
        if (env->body_case == TLSWEEP__ENVELOPE__BODY_SETUP && !w->got_setup) {
            w->got_setup = 1;
            Tlsweep__Envelope *er = msg_new_error(w->code, "weights.tlm: bad magic", 1);
            msg_link_send(w->l, 0, er, NULL);
            msg_free(er);
        } else if (env->body_case == TLSWEEP__ENVELOPE__BODY_STOP) {
            w->got_stop = 1;
        }
        msg_free(env);
    }
    return NULL;
}

/* train/{a,b}/{1,2,3}.jpg under the test's scratch folder */
static void write_dataset(void)
{
    uint8_t *pix = iu_pattern(8, 8, 1);
    size_t n = 0;
    uint8_t *jpg = iu_jpeg(pix, 8, 8, TJPF_RGB, TJSAMP_444, 90, 0, 0, &n);
    static const char *const files[] = {"train/a/1.jpg", "train/a/2.jpg", "train/a/3.jpg",
                                        "train/b/1.jpg", "train/b/2.jpg", "train/b/3.jpg"};
    assert_int_equal(mkdir(tu_tmp("train"), 0755), 0);
    assert_int_equal(mkdir(tu_tmp("train/a"), 0755), 0);
    assert_int_equal(mkdir(tu_tmp("train/b"), 0755), 0);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        iu_write(tu_tmp(files[i]), jpg, n);
    free(jpg);
    free(pix);
}

static int count_lines(const char *path, const char *prefix)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += !strncmp(line, prefix, strlen(prefix));
    fclose(f);
    return n;
}

static void test_worker_error_keeps_code(void **st)
{
    (void)st;
    char train[4096], text[8192], log[4096];
    snprintf(train, sizeof train, "%s", tu_tmp("train"));
    write_dataset();
    snprintf(log, sizeof log, "%s", tu_tmp("coord.log"));
    int n = snprintf(text, sizeof text,
                     "name: failing\n"
                     "data: {train_dir: %s, validation_split: 0.5, image_size: 32}\n"
                     "weights: {mobilenet_v2: %s}\n"
                     "grid: {backbone: [mobilenet_v2], mode: [fine_tune], learning_rate: [1e-3]}\n"
                     "epochs: 1\n"
                     "out: %s\n",
                     train, tu_tmp("none.tlm"), tu_tmp("out"));
    sweep s;
    tl_err e = {0};
    assert_int_equal(sweep_parse(&s, "failing.yaml", text, (size_t)n, &e), 0);
    data_index ix;
    data_index_cfg dc = {s.train_dir, NULL, NULL, s.validation_split, s.data_seed};
    assert_int_equal(data_index_build(&ix, &dc, &e), 0);
    assert_int_equal(sweep_bind_data(&s, data_index_fingerprint(&ix), &e), 0);

    msg_link *lc = NULL, *lw = NULL;
    assert_int_equal(msg_link_local_pair(&lc, &lw, &e), 0);
    fake_worker w = {.l = lw, .code = TL_EFORMAT};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fake_main, &w), 0);
    coord_opts o = {.s = &s, .sweep_text = text, .sweep_len = (size_t)n, .index = &ix,
                    .quiet = 1, .stop_grace_s = 5};
    /* the coordinator's log lines go to stdout: into a file for counting */
    fflush(stdout);
    int saved = dup(1), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 1);
    close(fd);
    int status = coord_run(&o, lc, &e);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    pthread_join(th, NULL);

    assert_int_equal(status, 1);
    assert_true(w.got_setup);
    assert_true(w.got_stop);
    assert_int_equal(e.code, TL_EFORMAT);
    tu_assert_one_line_error(&e, "rank 1", "weights.tlm: bad magic");
    assert_int_equal(count_lines(log, "error: "), 1);
    assert_int_equal(count_lines(log, "error: rank 1 ("), 1);
    size_t len = 0;
    char *json = (char *)tu_read_file(tu_tmp("out/results.json"), &len);
    assert_non_null(strstr(json, "\"state\": \"failed\""));
    free(json);
    /* results.csv: one column per name (the select metric's name has its
     * own column, not the header of its value) */
    char *csv = (char *)tu_read_file(tu_tmp("out/results.csv"), &len);
    const char *head = "rank,trial,status,backbone,mode,learning_rate,optimizer,batch_size,"
                       "precision,engine,epochs,best_epoch,select_metric,select_value,val_accuracy,val_loss,"
                       "accuracy,loss,eval_split,eval_accuracy,weight_decay,momentum,label_smoothing,"
                       "head,augment,image_size,stop_reason,stopped_epoch,rung,ranks,seconds\n";
    assert_memory_equal(csv, head, strlen(head));
    const char *row = csv + strlen(head); /* the unfinished trial: no values */
    assert_non_null(strstr(row, ",val_accuracy,,,,,,,,,,0,gap,none,32,,,,,\n"));
    int commas = 0;
    for (const char *q = row; *q && *q != '\n'; q++)
        commas += *q == ',';
    assert_int_equal(commas, 30);
    free(csv);

    msg_link_free(lc);
    msg_link_free(lw);
    data_index_free(&ix);
    sweep_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_error_keeps_code),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
