/* The atomic write (common/base/fileio.c): a committed file is whole and no .tmp
 * is left; a missing folder fails naming the file; a write that fails
 * midway (a real EFBIG, from RLIMIT_FSIZE), an abort, or a rename that
 * fails leave no .tmp and the previous target as it was. And mkdir -p:
 * parents made, existing folders fine, a file in the way an error. And
 * the removal of stale temporaries: only tl_atomic_open's names. */
#include "testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/fileio.h"

static void assert_file_is(const char *p, const char *want)
{
    size_t n;
    unsigned char *b = tu_read_file(p, &n);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(b, want, n);
    free(b);
}

static void test_commit(void **st)
{
    (void)st;
    const char *p = tu_tmp("a.bin");
    tl_err e = {0};
    tl_atomic_file f;
    for (int round = 0; round < 2; round++) { /* creates, then replaces */
        assert_int_equal(tl_atomic_open(&f, p, &e), 0);
        assert_true(tu_tmp_left(p));
        assert_int_equal(tl_atomic_write(&f, "hello ", 6, &e), 0);
        assert_int_equal(tl_atomic_write(&f, round ? "again" : "world", 5, &e), 0);
        assert_int_equal(tl_atomic_write(&f, NULL, 0, &e), 0);
        assert_int_equal(tl_atomic_commit(&f, &e), 0);
        tl_atomic_abort(&f); /* a no-op after a commit */
        assert_file_is(p, round ? "hello again" : "hello world");
        assert_false(tu_tmp_left(p));
    }
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
}

static void test_missing_dir(void **st)
{
    (void)st;
    const char *p = tu_tmp("no/such/dir.bin");
    tl_err e = {0};
    tl_atomic_file f;
    assert_int_equal(tl_atomic_open(&f, p, &e), TL_EIO);
    tu_assert_one_line_error(&e, p, "open of", ".tmp", strerror(ENOENT));
    tl_atomic_abort(&f); /* harmless after a failed open */
    tl_atomic_file never = TL_ATOMIC_FILE_INIT;
    tl_atomic_abort(&never);
}

/* Writes "new contents" over p in two pieces, stopping after the first
 * with abort: p keeps its old bytes and no .tmp remains. */
static void test_abort_midway(void **st)
{
    (void)st;
    const char *p = tu_tmp("keep.bin");
    tu_write_file(p, "old", 3);
    tl_err e = {0};
    tl_atomic_file f;
    assert_int_equal(tl_atomic_open(&f, p, &e), 0);
    assert_int_equal(tl_atomic_write(&f, "new ", 4, &e), 0);
    tl_atomic_abort(&f);
    tl_atomic_abort(&f); /* twice is harmless */
    assert_file_is(p, "old");
    assert_false(tu_tmp_left(p));
}

/* A real I/O error: with RLIMIT_FSIZE at 4 KiB (and SIGXFSZ ignored), the
 * write past it fails with EFBIG. Later writes and the commit repeat the
 * error, and nothing of the new file remains. */
static void test_write_fails(void **st)
{
    (void)st;
    const char *p = tu_tmp("big.bin");
    tu_write_file(p, "old", 3);
    static unsigned char chunk[3000];
    memset(chunk, 'x', sizeof chunk);
    tl_err e = {0};
    tl_atomic_file f;
    assert_int_equal(tl_atomic_open(&f, p, &e), 0);

    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 4096;
    void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int r1 = tl_atomic_write(&f, chunk, sizeof chunk, &e);
    int r2 = tl_atomic_write(&f, chunk, sizeof chunk, &e);
    int r3 = tl_atomic_write(&f, "y", 1, &e);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_sig);

    assert_int_equal(r1, 0);
    assert_int_equal(r2, TL_EIO);
    tu_assert_one_line_error(&e, p, "write of", ".tmp", strerror(EFBIG));
    assert_int_equal(r3, TL_EIO); /* sticky */
    e = (tl_err){0};
    assert_int_equal(tl_atomic_commit(&f, &e), TL_EIO);
    tu_assert_one_line_error(&e, p, "write of", strerror(EFBIG));
    tl_atomic_abort(&f);
    assert_file_is(p, "old");
    assert_false(tu_tmp_left(p));
}

/* rename onto a non-empty directory fails: the commit reports it, removes
 * the .tmp and leaves the directory alone. */
static void test_rename_fails(void **st)
{
    (void)st;
    const char *p = tu_tmp("adir");
    assert_int_equal(mkdir(p, 0755), 0);
    tu_write_file(tu_tmp("adir/inside"), "in", 2);
    tl_err e = {0};
    tl_atomic_file f;
    assert_int_equal(tl_atomic_open(&f, p, &e), 0);
    assert_int_equal(tl_atomic_write(&f, "data", 4, &e), 0);
    assert_int_equal(tl_atomic_commit(&f, &e), TL_EIO);
    tu_assert_one_line_error(&e, p, "rename of", ".tmp");
    tl_atomic_abort(&f);
    assert_false(tu_tmp_left(p));
    assert_file_is(tu_tmp("adir/inside"), "in");
}

static void assert_is_dir(const char *p)
{
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
}

static void test_mkdir_p(void **st)
{
    (void)st;
    tl_err e = {0};
    assert_int_equal(tl_mkdir_p(tu_tmp("m/a/b/c"), 0755, &e), 0);
    assert_is_dir(tu_tmp("m/a/b/c"));
    /* again, an existing prefix, doubled and trailing slashes */
    assert_int_equal(tl_mkdir_p(tu_tmp("m/a/b/c"), 0755, &e), 0);
    assert_int_equal(tl_mkdir_p(tu_tmp("m/a//d/"), 0755, &e), 0);
    assert_is_dir(tu_tmp("m/a/d"));
    assert_int_equal(tl_mkdir_p("/", 0755, &e), 0);
    /* the mode, less the umask */
    mode_t old = umask(022);
    assert_int_equal(tl_mkdir_p(tu_tmp("m/private"), 0700, &e), 0);
    umask(old);
    struct stat sb;
    assert_int_equal(stat(tu_tmp("m/private"), &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
}

static void test_mkdir_p_fails(void **st)
{
    (void)st;
    tl_err e = {0};
    /* a file where a folder should be: at the end, and on the way */
    tu_write_file(tu_tmp("f"), "x", 1);
    assert_int_equal(tl_mkdir_p(tu_tmp("f"), 0755, &e), TL_EIO);
    tu_assert_one_line_error(&e, tu_tmp("f"), "exists and is not a folder");
    e = (tl_err){0};
    assert_int_equal(tl_mkdir_p(tu_tmp("f/g/h"), 0755, &e), TL_EIO);
    tu_assert_one_line_error(&e, tu_tmp("f"), "not a folder");
    assert_null(strstr(e.msg, "f/g"));
    /* a parent that cannot be written (root may write anywhere) */
    if (geteuid() != 0) {
        assert_int_equal(mkdir(tu_tmp("ro"), 0555), 0);
        e = (tl_err){0};
        assert_int_equal(tl_mkdir_p(tu_tmp("ro/x/y"), 0755, &e), TL_EIO);
        tu_assert_one_line_error(&e, tu_tmp("ro/x"), "cannot create folder", strerror(EACCES));
        chmod(tu_tmp("ro"), 0755);
    }
    /* a name longer than the file system takes (ENAMETOOLONG, root or not) */
    char name[300];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = 0;
    char deep[4096];
    snprintf(deep, sizeof deep, "%s/%s/x", tu_tmp("m2"), name);
    e = (tl_err){0};
    assert_int_equal(tl_mkdir_p(deep, 0755, &e), TL_EIO);
    tu_assert_one_line_error(&e, "cannot create folder", strerror(ENAMETOOLONG));
    assert_null(strstr(e.msg, "/x:"));
    assert_is_dir(tu_tmp("m2")); /* the parents before it were made */
    e = (tl_err){0};
    assert_int_equal(tl_mkdir_p("", 0755, &e), TL_EINVAL);
    static char longp[8192];
    memset(longp, 'a', sizeof longp - 1);
    e = (tl_err){0};
    assert_int_equal(tl_mkdir_p(longp, 0755, &e), TL_EINVAL);
    tu_assert_one_line_error(&e, "path too long");
}

/* Temporaries of a writer killed mid-write go; everything else stays,
 * names that merely look alike too; an age bound spares fresh ones. */
static void test_remove_stale_tmp(void **st)
{
    (void)st;
    tl_err e = {0};
    assert_int_equal(tl_mkdir_p(tu_tmp("s/sub"), 0755, &e), 0);
    static const char *stale[] = {"s/best.tlm.tmp.4242.1", "s/a.tmp.b.tmp.1.22"};
    static const char *kept[] = {"s/notes.tmp.txt", "s/x.tmp.1", "s/x.tmp.1.",
                                 "s/.tmp.1.2", "s/x.tmp.1.2.bak", "s/sub/deep.tmp.3.4"};
    for (size_t i = 0; i < sizeof stale / sizeof *stale; i++)
        tu_write_file(tu_tmp(stale[i]), "p", 1);
    for (size_t i = 0; i < sizeof kept / sizeof *kept; i++)
        tu_write_file(tu_tmp(kept[i]), "k", 1);
    /* an hour's bound spares the files just written */
    size_t n = 99;
    assert_int_equal(tl_remove_stale_tmp(tu_tmp("s"), 3600, &n, &e), 0);
    assert_int_equal(n, 0);
    assert_int_equal(access(tu_tmp(stale[0]), F_OK), 0);
    assert_int_equal(tl_remove_stale_tmp(tu_tmp("s"), 0, &n, &e), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < sizeof stale / sizeof *stale; i++)
        assert_int_equal(access(tu_tmp(stale[i]), F_OK), -1);
    for (size_t i = 0; i < sizeof kept / sizeof *kept; i++)
        assert_int_equal(access(tu_tmp(kept[i]), F_OK), 0);
    assert_is_dir(tu_tmp("s/sub"));
    /* a folder that is not there has nothing stale */
    assert_int_equal(tl_remove_stale_tmp(tu_tmp("nowhere"), 0, &n, &e), 0);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit),
        cmocka_unit_test(test_missing_dir),
        cmocka_unit_test(test_abort_midway),
        cmocka_unit_test(test_write_fails),
        cmocka_unit_test(test_rename_fails),
        cmocka_unit_test(test_mkdir_p),
        cmocka_unit_test(test_mkdir_p_fails),
        cmocka_unit_test(test_remove_stale_tmp),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
