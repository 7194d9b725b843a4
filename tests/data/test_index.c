/* data_index_build on folder trees built per test under /tmp: Keras
 * flow_from_directory rules (sorted classes, extensions in any case, hidden
 * entries, symlinks, nesting), the stratified seeded split, val/test class
 * checks, and every error naming its folder or class. */
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/data/data.h"

static void mkdirs(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s", tu_tmp(rel));
    for (char *c = p + strlen(tu_tmpdir()) + 1;; c++) {
        if (*c == '/' || *c == '\0') {
            char keep = *c;
            *c = '\0';
            assert_true(mkdir(p, 0777) == 0 || errno == EEXIST);
            *c = keep;
            if (!keep)
                break;
        }
    }
}

/* Creates root/rel (and its folders) with n bytes. */
static void put(const char *rel, size_t n)
{
    char d[512];
    snprintf(d, sizeof d, "%s", rel);
    char *slash = strrchr(d, '/');
    if (slash) {
        *slash = '\0';
        mkdirs(d);
    }
    FILE *f = fopen(tu_tmp(rel), "wb");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        fputc((int)(i & 0xff), f);
    assert_int_equal(fclose(f), 0);
}

static void link_to(const char *target, const char *rel)
{
    assert_int_equal(symlink(target, tu_tmp(rel)), 0);
}

/* Path of item i relative to root/<top>/ . */
static const char *rel_item(const data_index *ix, size_t i, const char *top)
{
    const char *pre = tu_tmp(top);
    size_t n = strlen(pre);
    assert_memory_equal(ix->items[i].path, pre, n);
    assert_int_equal(ix->items[i].path[n], '/');
    return ix->items[i].path + n + 1;
}

static data_index_cfg cfg_train(const char *train)
{
    static char t[512];
    snprintf(t, sizeof t, "%s", tu_tmp(train));
    data_index_cfg c = {.train_dir = t};
    return c;
}

static void build_ok(data_index *ix, const data_index_cfg *c)
{
    tl_err e = {0};
    int rc = data_index_build(ix, c, &e);
    if (rc)
        print_error("data_index_build: %s\n", e.msg);
    assert_int_equal(rc, 0);
}

/* Expects failure with a message containing every non-NULL needle. */
static void build_fails(const data_index_cfg *c, const char *n1, const char *n2)
{
    data_index ix;
    tl_err e = {0};
    int rc = data_index_build(&ix, c, &e);
    assert_true(rc < 0);
    assert_int_equal(e.code, rc);
    tu_assert_one_line_error(&e, n1, n2);
    assert_null(ix.items);
    assert_null(ix.classes);
    assert_int_equal(ix.n_items, 0);
}

static void test_classes_sorted(void **st)
{
    (void)st;
    put("t/b/1.jpg", 10);
    put("t/a/2.jpg", 20);
    put("t/a/1.jpg", 30);
    put("t/B/x.jpg", 40);
    put("t/a_x/y.jpg", 50);
    put("t/loose.jpg", 5);  /* not in a class folder: ignored, as Keras */
    data_index ix;
    data_index_cfg c = cfg_train("t/");  /* trailing slash tolerated */
    build_ok(&ix, &c);
    /* strcmp order: uppercase before lowercase, '_' (0x5f) before 'b' */
    const char *want[] = {"B", "a", "a_x", "b"};
    assert_int_equal(ix.n_classes, 4);
    for (int i = 0; i < 4; i++)
        assert_string_equal(ix.classes[i], want[i]);
    assert_int_equal(ix.n_items, 5);
    const char *paths[] = {"B/x.jpg", "a/1.jpg", "a/2.jpg", "a_x/y.jpg", "b/1.jpg"};
    const int labels[] = {0, 1, 1, 2, 3};
    const int64_t bytes[] = {40, 30, 20, 50, 10};
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(rel_item(&ix, i, "t"), paths[i]);
        assert_int_equal(ix.items[i].label, labels[i]);
        assert_int_equal(ix.items[i].bytes, bytes[i]);
        assert_int_equal(ix.split[i], DATA_TRAIN);
    }
    assert_int_equal(data_index_count(&ix, DATA_TRAIN), 5);
    assert_int_equal(data_index_count(&ix, DATA_VAL), 0);
    assert_int_equal(data_index_count(&ix, DATA_TEST), 0);
    data_index_free(&ix);
    assert_null(ix.items);
}

static void test_extensions_and_hidden(void **st)
{
    (void)st;
    put("t/a/x.JPG", 1);
    put("t/a/y.Jpeg", 1);
    put("t/a/z.png", 1);
    put("t/a/w.PNG", 1);
    put("t/a/v.jpeg", 1);
    put("t/a/notes.txt", 1);
    put("t/a/anim.gif", 1);
    put("t/a/jpg", 1);           /* no extension */
    put("t/a/.jpg", 1);          /* hidden */
    put("t/a/.hidden.jpg", 1);
    put("t/a/.cache/c.jpg", 1);  /* hidden folder inside a class */
    put("t/.thumbs/d.jpg", 1);   /* hidden folder: not a class */
    put("t/b/ok.jpg", 0);        /* zero bytes: indexed, counted */
    data_index ix;
    data_index_cfg c = cfg_train("t");
    build_ok(&ix, &c);
    assert_int_equal(ix.n_classes, 2);
    assert_string_equal(ix.classes[0], "a");
    assert_string_equal(ix.classes[1], "b");
    const char *paths[] = {"a/v.jpeg", "a/w.PNG", "a/x.JPG", "a/y.Jpeg", "a/z.png", "b/ok.jpg"};
    assert_int_equal(ix.n_items, 6);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(rel_item(&ix, i, "t"), paths[i]);
    assert_int_equal(data_index_count_empty(&ix, DATA_TRAIN), 1);
    assert_int_equal(ix.items[5].bytes, 0);
    data_index_free(&ix);
}

static void test_symlinks(void **st)
{
    (void)st;
    put("elsewhere/c/1.jpg", 7);
    put("elsewhere/c/2.png", 8);
    put("other/pic.jpg", 9);
    put("t/a/0.jpg", 1);
    mkdirs("t/b");
    link_to("../../other/pic.jpg", "t/b/link.jpg");   /* symlinked file */
    link_to("../../other/gone.jpg", "t/b/dangling.jpg");
    link_to("../elsewhere/c", "t/c");                  /* symlinked class folder */
    link_to("../elsewhere/nothing", "t/d");            /* dangling: not a class */
    data_index ix;
    data_index_cfg c = cfg_train("t");
    build_ok(&ix, &c);
    assert_int_equal(ix.n_classes, 3);
    assert_string_equal(ix.classes[2], "c");
    const char *paths[] = {"a/0.jpg", "b/link.jpg", "c/1.jpg", "c/2.png"};
    const int64_t bytes[] = {1, 9, 7, 8};
    assert_int_equal(ix.n_items, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(rel_item(&ix, i, "t"), paths[i]);
        assert_int_equal(ix.items[i].bytes, bytes[i]);
    }
    data_index_free(&ix);
}

static void test_symlink_loop(void **st)
{
    (void)st;
    put("t/a/1.jpg", 1);
    put("t/a/sub/2.jpg", 1);
    put("t/b/3.jpg", 1);
    link_to(".", "t/a/self");       /* a -> a */
    link_to("..", "t/a/sub/back");  /* a/sub -> a */
    link_to("..", "t/a/up");        /* a -> t: would pull b into a */
    link_to("loop2", "t/a/loop1");  /* link to link to link: ELOOP, skipped */
    link_to("loop1", "t/a/loop2");
    data_index ix;
    data_index_cfg c = cfg_train("t");
    build_ok(&ix, &c);
    const char *paths[] = {"a/1.jpg", "a/sub/2.jpg", "b/3.jpg"};
    assert_int_equal(ix.n_items, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(rel_item(&ix, i, "t"), paths[i]);
    data_index_free(&ix);
}

static void test_nested(void **st)
{
    (void)st;
    put("t/a/z.jpg", 1);
    put("t/a/sub/x.jpg", 1);
    put("t/a/sub/deeper/y.jpg", 1);
    put("t/a/sub/deeper/.h/q.jpg", 1);
    put("t/b/m/n.png", 1);  /* a class whose images are all nested */
    data_index ix;
    data_index_cfg c = cfg_train("t");
    build_ok(&ix, &c);
    const char *paths[] = {"a/sub/deeper/y.jpg", "a/sub/x.jpg", "a/z.jpg", "b/m/n.png"};
    const int labels[] = {0, 0, 0, 1};
    assert_int_equal(ix.n_items, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(rel_item(&ix, i, "t"), paths[i]);
        assert_int_equal(ix.items[i].label, labels[i]);
    }
    data_index_free(&ix);
}

/* Classes with 10, 20, 7, 2 and 1 images. */
static void make_split_tree(void)
{
    const int n[] = {10, 20, 7, 2, 1};
    for (int c = 0; c < 5; c++)
        for (int i = 0; i < n[c]; i++) {
            char rel[64];
            snprintf(rel, sizeof rel, "t/c%d/%03d.jpg", c, i);
            put(rel, 1);
        }
}

static void val_per_class(const data_index *ix, size_t *nval, size_t *ntrain)
{
    for (int c = 0; c < ix->n_classes; c++)
        nval[c] = ntrain[c] = 0;
    for (size_t i = 0; i < ix->n_items; i++) {
        assert_true(ix->split[i] == DATA_TRAIN || ix->split[i] == DATA_VAL);
        (ix->split[i] == DATA_VAL ? nval : ntrain)[ix->items[i].label]++;
    }
}

static void test_split_stratified(void **st)
{
    (void)st;
    make_split_tree();
    data_index a, b, d;
    data_index_cfg c = cfg_train("t");
    c.validation_split = 0.2;
    c.seed = 42;
    build_ok(&a, &c);
    size_t nval[5], ntrain[5];
    val_per_class(&a, nval, ntrain);
    /* round(n * 0.2): 2, 4, round(1.4) = 1, round(0.4) = 0, 0 */
    const size_t want[] = {2, 4, 1, 0, 0};
    for (int k = 0; k < 5; k++)
        assert_int_equal(nval[k], want[k]);
    assert_int_equal(data_index_count(&a, DATA_VAL), 7);
    assert_int_equal(data_index_count(&a, DATA_TRAIN), 33);

    build_ok(&b, &c);  /* same seed: same split */
    assert_int_equal(a.n_items, b.n_items);
    assert_memory_equal(a.split, b.split, a.n_items);
    data_index_free(&b);

    /* another seed: the same proportions, another choice of images */
    c.seed = 43;
    build_ok(&d, &c);
    val_per_class(&d, nval, ntrain);
    for (int k = 0; k < 5; k++)
        assert_int_equal(nval[k], want[k]);
    assert_true(memcmp(a.split, d.split, a.n_items) != 0);
    data_index_free(&d);
    data_index_free(&a);

    /* a large fraction: classes of >= 2 images keep one train image; the
     * single-image class follows round(1 * 0.9) = 1 */
    c.validation_split = 0.9;
    build_ok(&a, &c);
    val_per_class(&a, nval, ntrain);
    const size_t want9[] = {9, 18, 6, 1, 1};
    for (int k = 0; k < 5; k++)
        assert_int_equal(nval[k], want9[k]);
    assert_true(ntrain[3] == 1);
    data_index_free(&a);

    c.validation_split = 0.0;
    build_ok(&a, &c);
    assert_int_equal(data_index_count(&a, DATA_VAL), 0);
    data_index_free(&a);
}

static void test_val_test_dirs(void **st)
{
    (void)st;
    put("t/a/1.jpg", 1);
    put("t/a/2.jpg", 1);
    put("t/b/1.jpg", 1);
    put("v/a/1.jpg", 1);
    put("v/b/1.jpg", 1);
    put("v/b/2.jpg", 1);
    put("x/a/1.jpg", 1);
    put("x/b/1.jpg", 1);
    put("x/b/2.jpg", 1);
    put("x/b/3.jpg", 1);
    data_index ix;
    data_index_cfg c = cfg_train("t");
    char v[512], x[512];
    snprintf(v, sizeof v, "%s", tu_tmp("v"));
    snprintf(x, sizeof x, "%s", tu_tmp("x"));
    c.val_dir = v;
    c.test_dir = x;
    c.validation_split = 0.5;  /* ignored: val_dir given */
    build_ok(&ix, &c);
    assert_int_equal(data_index_count(&ix, DATA_TRAIN), 3);
    assert_int_equal(data_index_count(&ix, DATA_VAL), 3);
    assert_int_equal(data_index_count(&ix, DATA_TEST), 4);
    for (size_t i = 0; i < ix.n_items; i++) {
        const char *top = ix.split[i] == DATA_TRAIN ? "t" : ix.split[i] == DATA_VAL ? "v" : "x";
        rel_item(&ix, i, top);
    }
    assert_string_equal(rel_item(&ix, 5, "v"), "b/2.jpg");
    assert_int_equal(ix.items[5].label, 1);
    data_index_free(&ix);

    /* val_dir with an extra class, test_dir with a missing one */
    put("v/c/1.jpg", 1);
    build_fails(&c, "'c'", v);
    remove(tu_tmp("v/c/1.jpg"));
    rmdir(tu_tmp("v/c"));
    c.val_dir = NULL;
    remove(tu_tmp("x/b/1.jpg"));
    remove(tu_tmp("x/b/2.jpg"));
    remove(tu_tmp("x/b/3.jpg"));
    rmdir(tu_tmp("x/b"));
    put("x/a/2.jpg", 1);
    build_fails(&c, "lacks class folder 'b'", x);
    c.test_dir = NULL;
    c.val_dir = tu_tmp("nowhere");
    build_fails(&c, "val_dir", c.val_dir);
}

static uint64_t fingerprint_of(const char *train)
{
    data_index ix;
    data_index_cfg c = cfg_train(train);
    build_ok(&ix, &c);
    uint64_t f = data_index_fingerprint(&ix);
    data_index_free(&ix);
    return f;
}

/* Sets rel's modification time to sec seconds after the epoch. */
static void set_mtime(const char *rel, time_t sec)
{
    struct timespec ts[2] = {{sec, 0}, {sec, 0}};
    assert_int_equal(utimensat(AT_FDCWD, tu_tmp(rel), ts, 0), 0);
}

/* The fingerprint names the files as they are: the same tree twice agrees;
 * an image added, removed, rewritten to another size, or rewritten in
 * place at the same size (a new modification time) changes it. */
static void test_fingerprint(void **st)
{
    (void)st;
    put("f/a/1.jpg", 10);
    put("f/a/2.jpg", 20);
    put("f/b/3.jpg", 30);
    set_mtime("f/a/1.jpg", 1000000000);
    uint64_t f0 = fingerprint_of("f");
    assert_true(fingerprint_of("f") == f0);

    put("f/b/4.jpg", 40);
    uint64_t f1 = fingerprint_of("f");
    assert_true(f1 != f0);
    assert_int_equal(unlink(tu_tmp("f/b/4.jpg")), 0);
    assert_true(fingerprint_of("f") == f0);

    assert_int_equal(unlink(tu_tmp("f/a/2.jpg")), 0);
    assert_true(fingerprint_of("f") != f0);
    put("f/a/2.jpg", 20);
    uint64_t f2 = fingerprint_of("f");

    put("f/a/1.jpg", 10);   /* same size, same name, a new time */
    assert_true(fingerprint_of("f") != f2);
    set_mtime("f/a/1.jpg", 1000000000);
    assert_true(fingerprint_of("f") == f2);
    set_mtime("f/a/1.jpg", 1000000001);
    assert_true(fingerprint_of("f") != f2);
}

static void test_errors(void **st)
{
    (void)st;
    data_index_cfg c = cfg_train("missing");
    build_fails(&c, c.train_dir, "train_dir");

    put("file", 1);
    c = cfg_train("file");
    build_fails(&c, c.train_dir, "not a folder");

    mkdirs("empty");
    c = cfg_train("empty");
    build_fails(&c, c.train_dir, "no class folders");

    put("flat/1.jpg", 1);
    put("flat/2.jpg", 1);
    c = cfg_train("flat");
    build_fails(&c, c.train_dir, "2 images lie directly");

    put("one/a/1.jpg", 1);
    c = cfg_train("one");
    build_fails(&c, c.train_dir, "only one class folder ('a')");

    put("hole/a/1.jpg", 1);
    put("hole/b/readme.txt", 1);
    put("hole/c/1.jpg", 1);
    c = cfg_train("hole");
    build_fails(&c, c.train_dir, "class 'b'");

    put("noimg/a/1.txt", 1);
    put("noimg/b/1.gif", 1);
    c = cfg_train("noimg");
    build_fails(&c, c.train_dir, "no .jpg/.jpeg/.png image");

    put("ok/a/1.jpg", 1);
    put("ok/b/1.jpg", 1);
    c = cfg_train("ok");
    const double bad[] = {-0.1, 1.0, 1.5, NAN};
    for (int i = 0; i < 4; i++) {
        c.validation_split = bad[i];
        build_fails(&c, c.train_dir, "validation_split");
    }
    c.train_dir = NULL;
    build_fails(&c, "train_dir", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_classes_sorted, tu_tmpdir_setup, tu_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_extensions_and_hidden, tu_tmpdir_setup, tu_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_symlinks, tu_tmpdir_setup, tu_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_symlink_loop, tu_tmpdir_setup, tu_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_nested, tu_tmpdir_setup, tu_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_split_stratified, tu_tmpdir_setup, tu_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_val_test_dirs, tu_tmpdir_setup, tu_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_fingerprint, tu_tmpdir_setup, tu_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_errors, tu_tmpdir_setup, tu_tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
