/* Checkpoint files: a round trip of tensors and history, and refusals of
 * damaged files (torn at many offsets, a flipped byte, a bad magic, a
 * tensor shorter than its shape), each one line naming the path. The
 * frame is rebuilt here from the format in ckpt.h, not taken from
 * ckpt_write, so that the test checks the layout too. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/store/ckpt.h"
#include "common/base/le.h"
#include "common/base/sha256.h"

static Tlsweep__Tensor *new_tensor(const char *name, int64_t rows, int64_t cols, uint64_t seed)
{
    Tlsweep__Tensor *t = calloc(1, sizeof *t);
    tlsweep__tensor__init(t);
    t->name = strdup(name);
    t->n_shape = 2;
    t->shape = malloc(2 * sizeof *t->shape);
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->n_data = (size_t)(rows * cols);
    t->data = tu_alloc_uniform(t->n_data, seed, -2.0f, 2.0f);
    return t;
}

static Tlsweep__EpochReport *new_report(uint32_t epoch)
{
    Tlsweep__EpochReport *r = calloc(1, sizeof *r);
    tlsweep__epoch_report__init(r);
    r->task_id = 9;
    r->trial_id = strdup("mobilenet_v2-lr1e-03");
    r->epoch = epoch;
    r->loss = 1.0f / (float)epoch;
    r->accuracy = 0.5f + 0.1f * (float)epoch;
    r->val_loss = 1.5f / (float)epoch;
    r->val_accuracy = 0.4f + 0.1f * (float)epoch;
    r->learning_rate = 1e-3;
    r->seconds = 12.5 * epoch;
    return r;
}

/* 3 tensors and 2 epochs of history; free with free_unpacked (all malloc'd). */
static Tlsweep__Checkpoint *new_checkpoint(void)
{
    Tlsweep__Checkpoint *c = calloc(1, sizeof *c);
    tlsweep__checkpoint__init(c);
    c->task_id = 9;
    c->trial_id = strdup("mobilenet_v2-lr1e-03");
    c->epoch = 2;
    c->step = 250;
    c->trial_index = 3;
    c->trial_key = 0x0123456789abcdefull;
    c->best_epoch = 2;
    c->best_value = 0.625;
    c->n_tensors = 3;
    c->tensors = malloc(3 * sizeof *c->tensors);
    c->tensors[0] = new_tensor("weights", 1280, 3, 1);
    c->tensors[1] = new_tensor("best", 1280, 3, 2);
    c->tensors[2] = new_tensor("optim", 2, 3843, 3);
    c->n_history = 2;
    c->history = malloc(2 * sizeof *c->history);
    c->history[0] = new_report(1);
    c->history[1] = new_report(2);
    c->precision = strdup("bf16");
    return c;
}

/* The file as ckpt.h describes it, built here: header, payload, digest. */
static unsigned char *frame(const Tlsweep__Checkpoint *c, size_t *size)
{
    size_t n = tlsweep__checkpoint__get_packed_size(c);
    *size = 24 + n + 32;
    unsigned char *b = malloc(*size);
    memcpy(b, "TLSWEEPC", 8);
    le_put_u32(b + 8, 1);
    le_put_u32(b + 12, 0);
    le_put_u64(b + 16, n);
    tlsweep__checkpoint__pack(c, b + 24);
    sha256(b, 24 + n, b + 24 + n);
    return b;
}

static void assert_same_tensor(const Tlsweep__Tensor *a, const Tlsweep__Tensor *b)
{
    assert_non_null(a);
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->n_shape, b->n_shape);
    assert_memory_equal(a->shape, b->shape, a->n_shape * sizeof *a->shape);
    assert_int_equal(a->n_data, b->n_data);
    assert_memory_equal(a->data, b->data, a->n_data * sizeof *a->data);
    assert_int_equal(a->offset, 0);
}

static void test_round_trip(void **st)
{
    (void)st;
    tl_err e = {0};
    const char *path = tu_tmp("a.ckpt");
    Tlsweep__Checkpoint *c = new_checkpoint();
    assert_int_equal(ckpt_write(path, c, &e), 0);

    /* byte for byte the documented frame */
    size_t want_n, got_n;
    unsigned char *want = frame(c, &want_n), *got = tu_read_file(path, &got_n);
    assert_int_equal(got_n, want_n);
    assert_memory_equal(got, want, want_n);
    free(want);
    free(got);

    Tlsweep__Checkpoint *r;
    assert_int_equal(ckpt_read(path, &r, &e), 0);
    assert_int_equal(r->task_id, 9);
    assert_string_equal(r->trial_id, c->trial_id);
    assert_int_equal(r->epoch, 2);
    assert_int_equal(r->step, 250);
    assert_int_equal(r->trial_index, 3);
    assert_int_equal(r->trial_key, c->trial_key);
    assert_int_equal(r->best_epoch, 2);
    assert_true(r->best_value == 0.625);
    assert_string_equal(r->precision, "bf16");
    assert_int_equal(r->n_tensors, 3);
    for (size_t i = 0; i < 3; i++)
        assert_same_tensor(ckpt_tensor(r, c->tensors[i]->name), c->tensors[i]);
    assert_null(ckpt_tensor(r, "nothing"));
    assert_int_equal(r->n_history, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(r->history[i]->epoch, i + 1);
        assert_true(r->history[i]->val_accuracy == c->history[i]->val_accuracy);
        assert_true(r->history[i]->seconds == c->history[i]->seconds);
        assert_string_equal(r->history[i]->trial_id, c->history[i]->trial_id);
    }
    tlsweep__checkpoint__free_unpacked(r, NULL);

    /* a second write replaces the first whole */
    c->epoch = 3;
    assert_int_equal(ckpt_write(path, c, &e), 0);
    assert_int_equal(ckpt_read(path, &r, &e), 0);
    assert_int_equal(r->epoch, 3);
    tlsweep__checkpoint__free_unpacked(r, NULL);
    tlsweep__checkpoint__free_unpacked(c, NULL);
}

/* A checkpoint written before checkpoints said their precision (the fuzz
 * corpus keeps one) still reads: its precision is empty, which is fp32. */
static void test_reads_older_file(void **st)
{
    (void)st;
    const char *path = tu_repo_path("tests/fuzz/corpus/ckpt/epoch2.ckpt");
    tl_err e = {0};
    Tlsweep__Checkpoint *r;
    if (ckpt_read(path, &r, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(r->epoch, 2);
    assert_string_equal(r->precision, "");
    tlsweep__checkpoint__free_unpacked(r, NULL);
}

static void expect_refused(const char *path, int code, const char *what)
{
    tl_err e = {0};
    Tlsweep__Checkpoint dummy, *r = &dummy;
    assert_int_equal(ckpt_read(path, &r, &e), code);
    assert_null(r);
    tu_assert_one_line_error(&e, path, what);
}

static void test_truncated(void **st)
{
    (void)st;
    Tlsweep__Checkpoint *c = new_checkpoint();
    size_t n;
    unsigned char *b = frame(c, &n);
    const char *path = tu_tmp("torn.ckpt");
    size_t cuts[] = {0, 5, 8, 12, 20, 23, 24, 25, 1000, n / 2, n - 33, n - 32, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        tu_write_file(path, b, cuts[i]);
        expect_refused(path, TL_EFORMAT, cuts[i] < 8 ? "bad magic" : NULL);
    }
    /* bytes after the digest are refused too */
    unsigned char *longer = malloc(n + 1);
    memcpy(longer, b, n);
    longer[n] = 0;
    tu_write_file(path, longer, n + 1);
    expect_refused(path, TL_EFORMAT, "truncated or torn");
    free(longer);
    expect_refused(tu_tmp("missing.ckpt"), TL_ENOTFOUND, "cannot open");
    free(b);
    tlsweep__checkpoint__free_unpacked(c, NULL);
}

static void test_flipped_byte(void **st)
{
    (void)st;
    Tlsweep__Checkpoint *c = new_checkpoint();
    size_t n;
    unsigned char *b = frame(c, &n);
    const char *path = tu_tmp("flip.ckpt");
    size_t at[] = {24, 100, n / 2, n - 33, n - 1};  /* payload and digest */
    for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
        b[at[i]] ^= 0x10;
        tu_write_file(path, b, n);
        expect_refused(path, TL_EFORMAT, "digest mismatch");
        b[at[i]] ^= 0x10;
    }
    /* header words: version and the reserved word */
    le_put_u32(b + 8, 2);
    tu_write_file(path, b, n);
    expect_refused(path, TL_EFORMAT, "version 2");
    le_put_u32(b + 8, 1);
    le_put_u32(b + 12, 1);
    tu_write_file(path, b, n);
    expect_refused(path, TL_EFORMAT, "reserved");
    free(b);
    tlsweep__checkpoint__free_unpacked(c, NULL);
}

static void test_bad_magic(void **st)
{
    (void)st;
    Tlsweep__Checkpoint *c = new_checkpoint();
    size_t n;
    unsigned char *b = frame(c, &n);
    memcpy(b, "TLSWEEPM", 8);   /* a model file's magic */
    const char *path = tu_tmp("magic.ckpt");
    tu_write_file(path, b, n);
    expect_refused(path, TL_EFORMAT, "bad magic");
    free(b);
    tlsweep__checkpoint__free_unpacked(c, NULL);
}

static void test_tensor_shape_mismatch(void **st)
{
    (void)st;
    tl_err e = {0};
    Tlsweep__Checkpoint *c = new_checkpoint();
    c->tensors[1]->n_data--;        /* "best" one value short */
    const char *path = tu_tmp("shape.ckpt");
    /* not written... */
    assert_int_equal(ckpt_write(path, c, &e), TL_EINVAL);
    tu_assert_one_line_error(&e, path, "'best'", "3839 values", "3840");
    /* ...and refused when some other writer made it (digest intact) */
    size_t n;
    unsigned char *b = frame(c, &n);
    tu_write_file(path, b, n);
    free(b);
    expect_refused(path, TL_EFORMAT, "'best' has 3839 values, its shape says 3840");

    c->tensors[1]->n_data++;
    c->tensors[2]->offset = 6;      /* a slice, as FeatureChunk parts are */
    b = frame(c, &n);
    tu_write_file(path, b, n);
    free(b);
    expect_refused(path, TL_EFORMAT, "'optim' is a slice at offset 6");
    tlsweep__checkpoint__free_unpacked(c, NULL);
}

/* Written as c, read for trial key: refused as not that trial's, why named. */
static void expect_not_trial(Tlsweep__Checkpoint *c, uint64_t key, const char *why)
{
    tl_err e = {0};
    const char *path = tu_tmp("trial.ckpt");
    assert_int_equal(ckpt_write(path, c, &e), 0);
    Tlsweep__Checkpoint *r = (Tlsweep__Checkpoint *)1;
    assert_int_equal(ckpt_read_trial(path, key, "the-trial", &r, &e), TL_EFORMAT);
    assert_null(r);
    tu_assert_one_line_error(&e, path, "not a checkpoint of trial the-trial", why);
}

/* A checkpoint is a trial's to resume from only when its key is the
 * trial's and its tensors and history are whole: a stale one (the sweep
 * or the data changed) is refused, as TL_EFORMAT, like a damaged one. */
static void test_read_trial(void **st)
{
    (void)st;
    tl_err e = {0};
    Tlsweep__Checkpoint *c = new_checkpoint(), *r = NULL;
    const char *path = tu_tmp("trial.ckpt");
    assert_int_equal(ckpt_write(path, c, &e), 0);
    assert_int_equal(ckpt_read_trial(path, c->trial_key, "the-trial", &r, &e), 0);
    assert_int_equal(r->epoch, 2);
    tlsweep__checkpoint__free_unpacked(r, NULL);
    assert_int_equal(ckpt_read_trial(tu_tmp("none.ckpt"), 1, "the-trial", &r, &e), TL_ENOTFOUND);
    assert_null(r);

    expect_not_trial(c, c->trial_key ^ 1, "key differs");
    c->n_history = 1;
    expect_not_trial(c, c->trial_key, "history");
    c->n_history = 2;
    c->epoch = 0;
    c->n_history = 0;
    expect_not_trial(c, c->trial_key, "history");
    c->epoch = 2;
    c->n_history = 2;
    c->n_tensors = 2;   /* no "optim" */
    expect_not_trial(c, c->trial_key, "missing");
    c->n_tensors = 3;
    Tlsweep__Tensor *best = c->tensors[1];
    c->tensors[1] = new_tensor("best", 1280, 2, 4);
    expect_not_trial(c, c->trial_key, "'weights' and 'best' differ");
    tlsweep__tensor__free_unpacked(c->tensors[1], NULL);
    c->tensors[1] = best;
    tlsweep__checkpoint__free_unpacked(c, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_flipped_byte),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_tensor_shape_mismatch),
        cmocka_unit_test(test_read_trial),
        cmocka_unit_test(test_reads_older_file),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
