/* The append-only journal (common/store/journal.c): records of every size come
 * back in order across reopenings; a tail torn at any byte of the last
 * record, a flipped byte in it or an absurd length field is cut and
 * appending goes on behind the last good record; a flipped byte in the
 * middle is refused with where it is, and cut only on request (repair); a file that is not a journal, or
 * of another version, is refused naming it and is left as it was; scanning
 * never writes. Expected bytes come from a generator, not from the
 * journal's own output. */
#include "testutil.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/store/journal.h"

/* Record i: lens(i) bytes, byte k = (i * 131 + k * 7) & 0xff. */
static size_t rec_len(int i)
{
    static const size_t fixed[] = {0, 1, 7, 8, 9, 0, 255, 4096, 65535, 65536, 65537, 1 << 20};
    int nf = (int)(sizeof fixed / sizeof *fixed);
    return i < nf ? fixed[i] : (size_t)(i * 7919) % 3000;
}

static unsigned char *rec_make(int i, size_t *len)
{
    *len = rec_len(i);
    unsigned char *b = malloc(*len + 1);
    assert_non_null(b);
    for (size_t k = 0; k < *len; k++)
        b[k] = (unsigned char)(i * 131 + k * 7);
    return b;
}

/* A callback context: records seen, checked against the generator (ids[]
 * gives the generator index of each expected record), and where to stop. */
typedef struct {
    const int *ids;
    int n_ids;
    int seen;
    int stop_at; /* return 42 on this record; -1: never */
} check_ctx;

static int check_cb(void *vctx, const void *payload, size_t len)
{
    check_ctx *c = vctx;
    if (c->seen == c->stop_at)
        return 42;
    if (c->seen >= c->n_ids)
        fail_msg("record %d: more records than the %d appended", c->seen, c->n_ids);
    size_t want_len;
    unsigned char *want = rec_make(c->ids[c->seen], &want_len);
    if (len != want_len)
        fail_msg("record %d: %zu bytes, want %zu", c->seen, len, want_len);
    if (len)
        assert_memory_equal(payload, want, len);
    free(want);
    c->seen++;
    return 0;
}

static void append_rec(journal *j, int i)
{
    size_t len;
    unsigned char *b = rec_make(i, &len);
    tl_err e = {0};
    if (journal_append(j, b, len, &e))
        fail_msg("append %d: %s", i, e.msg);
    free(b);
}

/* A new journal at p holding records ids[0..n). */
static void write_journal(const char *p, const int *ids, int n)
{
    unlink(p);
    journal *j;
    size_t dropped = 99;
    tl_err e = {0};
    assert_int_equal(journal_open(&j, p, 0, NULL, NULL, &dropped, &e), 0);
    assert_int_equal(dropped, 0);
    for (int i = 0; i < n; i++)
        append_rec(j, ids[i]);
    assert_int_equal(journal_close(j, &e), 0);
}

/* Opens p expecting records ids[0..n) and `dropped` bytes cut; returns j. */
static journal *open_expect(const char *p, const int *ids, int n, size_t want_dropped)
{
    journal *j = NULL;
    check_ctx c = {ids, n, 0, -1};
    size_t dropped = 99;
    tl_err e = {0};
    if (journal_open(&j, p, 0, check_cb, &c, &dropped, &e))
        fail_msg("open %s: %s", p, e.msg);
    assert_int_equal(c.seen, n);
    assert_int_equal(dropped, want_dropped);
    return j;
}

/* journal_scan of p expects records ids[0..n) and `ignored` bytes after them. */
static void scan_expect(const char *p, const int *ids, int n, size_t want_ignored)
{
    check_ctx c = {ids, n, 0, -1};
    size_t ignored = 99;
    tl_err e = {0};
    if (journal_scan(p, 0, check_cb, &c, &ignored, &e))
        fail_msg("scan %s: %s", p, e.msg);
    assert_int_equal(c.seen, n);
    assert_int_equal(ignored, want_ignored);
}

static size_t file_size(const char *p)
{
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return (size_t)st.st_size;
}

/* Bytes the journal takes for records ids[0..n), header included. */
static size_t journal_bytes(const int *ids, int n)
{
    size_t s = 16;
    for (int i = 0; i < n; i++)
        s += 8 + rec_len(ids[i]);
    return s;
}

static void assert_file_bytes(const char *p, const unsigned char *want, size_t n)
{
    size_t got;
    unsigned char *b = tu_read_file(p, &got);
    assert_int_equal(got, n);
    if (n)
        assert_memory_equal(b, want, n);
    free(b);
}

static void test_round_trip(void **st)
{
    (void)st;
    const char *p = tu_tmp("round.journal");
    enum { N = 300 };
    int ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = i;
    write_journal(p, ids, N);
    assert_int_equal(file_size(p), journal_bytes(ids, N));
    /* the header, byte for byte */
    size_t n;
    unsigned char *b = tu_read_file(p, &n);
    assert_memory_equal(b, "TLSWEEPJ\1\0\0\0\0\0\0\0", 16);
    /* the first record is empty: length 0, CRC-32 of nothing is 0 */
    assert_memory_equal(b + 16, "\0\0\0\0\0\0\0\0", 8);
    /* the second is one byte, 0x83: CRC-32 0xa6b33d17 (Python's zlib.crc32) */
    assert_memory_equal(b + 24, "\1\0\0\0\x17\x3d\xb3\xa6\x83", 9);
    free(b);
    journal *j = open_expect(p, ids, N, 0);
    assert_int_equal(journal_close(j, NULL), 0);
    scan_expect(p, ids, N, 0);
    assert_int_equal(journal_close(NULL, NULL), 0);
}

static void test_reopen_appends(void **st)
{
    (void)st;
    const char *p = tu_tmp("reopen.journal");
    int ids[] = {3, 0, 11, 5, 2};
    write_journal(p, ids, 2);
    journal *j = open_expect(p, ids, 2, 0);
    append_rec(j, ids[2]);
    tl_err e = {0};
    assert_int_equal(journal_sync(j, &e), 0);
    append_rec(j, ids[3]);
    assert_int_equal(journal_close(j, &e), 0);
    j = open_expect(p, ids, 4, 0);
    append_rec(j, ids[4]);
    assert_int_equal(journal_close(j, &e), 0);
    scan_expect(p, ids, 5, 0);
}

/* Cuts the last record at every byte offset: the earlier records survive,
 * the file ends where they end, and a record appended next reads back. */
static void torn_at_every_offset(const int *ids, int n)
{
    const char *p = tu_tmp("torn.journal");
    write_journal(p, ids, n);
    size_t full;
    unsigned char *whole = tu_read_file(p, &full);
    size_t good = journal_bytes(ids, n - 1);
    int after[8];
    memcpy(after, ids, (size_t)(n - 1) * sizeof *ids);
    after[n - 1] = 6; /* a 255-byte record */
    for (size_t cut = good; cut <= full; cut++) {
        tu_write_file(p, whole, cut);
        scan_expect(p, ids, cut == full ? n : n - 1, cut == full ? 0 : cut - good);
        assert_int_equal(file_size(p), cut); /* the scan cut nothing */
        if (cut == full) {
            journal_close(open_expect(p, ids, n, 0), NULL);
            continue;
        }
        journal *j = open_expect(p, ids, n - 1, cut - good);
        assert_int_equal(file_size(p), good);
        append_rec(j, after[n - 1]);
        assert_int_equal(journal_close(j, NULL), 0);
        scan_expect(p, after, n, 0);
    }
    free(whole);
}

static void test_torn_tail(void **st)
{
    (void)st;
    int ids[] = {4, 1, 6}; /* last record 255 bytes */
    torn_at_every_offset(ids, 3);
    int ids0[] = {2, 0}; /* last record empty: only its header can tear */
    torn_at_every_offset(ids0, 2);
    int only[] = {2}; /* a lone record of 7 bytes: all that survives is the header */
    torn_at_every_offset(only, 1);
}

/* Flips one byte at `at`; the journal must end before the record holding it
 * (keep records). A flip in the last record is a torn tail, cut at open; one
 * with whole records after it (mid) is refused, naming the byte and the
 * records before it, and the file is left as it was, until JOURNAL_REPAIR
 * cuts it there. Either way appending then goes on behind the good ones. */
static void flip_expect(const char *p, const int *ids, int n, size_t at, int keep, int mid)
{
    write_journal(p, ids, n);
    size_t len;
    unsigned char *b = tu_read_file(p, &len);
    b[at] ^= 0x20;
    tu_write_file(p, b, len);
    size_t good = journal_bytes(ids, keep);
    scan_expect(p, ids, keep, len - good);
    journal *j = NULL;
    if (mid) {
        check_ctx c = {ids, keep, 0, -1};
        tl_err e = {0};
        assert_int_equal(journal_open(&j, p, 0, check_cb, &c, NULL, &e), TL_EFORMAT);
        assert_null(j);
        char where[64], before[64];
        snprintf(where, sizeof where, "at byte %zu of %zu", good, len);
        snprintf(before, sizeof before, "keeps the %d records before it", keep);
        tu_assert_one_line_error(&e, p, where, "--repair", before);
        assert_file_bytes(p, b, len);
        /* a strict scan (tlsweep merge) refuses it with the same line */
        c.seen = 0;
        tl_err se = {0};
        assert_int_equal(journal_scan(p, JOURNAL_STRICT, check_cb, &c, NULL, &se), TL_EFORMAT);
        assert_int_equal(c.seen, keep);
        assert_string_equal(se.msg, e.msg);
        size_t dropped = 0;
        c.seen = 0;
        if (journal_open(&j, p, JOURNAL_REPAIR, check_cb, &c, &dropped, &e))
            fail_msg("repair %s: %s", p, e.msg);
        assert_int_equal(c.seen, keep);
        assert_int_equal(dropped, len - good);
        assert_int_equal(file_size(p), good);
    } else {
        check_ctx c = {ids, keep, 0, -1};
        size_t ignored = 0;
        tl_err se = {0};
        assert_int_equal(journal_scan(p, JOURNAL_STRICT, check_cb, &c, &ignored, &se), 0);
        assert_int_equal(ignored, len - good);
        j = open_expect(p, ids, keep, len - good);
    }
    append_rec(j, 9);
    assert_int_equal(journal_close(j, NULL), 0);
    int after[8];
    memcpy(after, ids, (size_t)keep * sizeof *ids);
    after[keep] = 9;
    scan_expect(p, after, keep + 1, 0);
    free(b);
}

static void test_corrupt_record(void **st)
{
    (void)st;
    const char *p = tu_tmp("flip.journal");
    int ids[] = {2, 6, 3, 7}; /* 7, 255, 8, 4096 bytes */
    size_t r1 = journal_bytes(ids, 1), r3 = journal_bytes(ids, 3);
    flip_expect(p, ids, 4, r3 + 8 + 100, 3, 0); /* payload of the last record: torn */
    flip_expect(p, ids, 4, r3 + 5, 3, 0);       /* its CRC field */
    flip_expect(p, ids, 4, r3 + 1, 3, 0);       /* its length: runs past the end */
    flip_expect(p, ids, 4, r1 + 8 + 17, 1, 1);  /* mid-file payload: refused */
    flip_expect(p, ids, 4, r1 + 2, 1, 1);       /* mid-file length field */
    flip_expect(p, ids, 4, 16 + 8, 0, 1);       /* the very first record */
}

static void test_huge_length(void **st)
{
    (void)st;
    const char *p = tu_tmp("huge.journal");
    int ids[] = {2, 3, 5};
    write_journal(p, ids, 3);
    size_t len;
    unsigned char *b = tu_read_file(p, &len);
    size_t at = journal_bytes(ids, 2);
    /* 0xfffffff0, then exactly one byte over the limit: refused without
     * being allocated or read */
    static const unsigned char lens[][4] = {{0xf0, 0xff, 0xff, 0xff}, {0x01, 0x00, 0x00, 0x04}};
    for (int i = 0; i < 2; i++) {
        memcpy(b + at, lens[i], 4);
        tu_write_file(p, b, len);
        scan_expect(p, ids, 2, len - at);
        journal_close(open_expect(p, ids, 2, len - at), NULL);
        assert_int_equal(file_size(p), at);
    }
    /* and the writer refuses to make one (payload is never read) */
    journal *j = open_expect(p, ids, 2, 0);
    tl_err e = {0};
    assert_int_equal(journal_append(j, b, (size_t)JOURNAL_MAX_RECORD + 1, &e), TL_EINVAL);
    tu_assert_one_line_error(&e, p, "over the 67108864-byte limit");
    assert_int_equal(journal_close(j, NULL), 0);
    assert_int_equal(file_size(p), at);
    free(b);
}

/* journal_open and journal_scan both refuse p with code and the fragment,
 * and p keeps its bytes. */
static void refuse_expect(const char *p, const void *bytes, size_t n, const char *needle)
{
    tu_write_file(p, bytes, n);
    journal *j = (journal *)&j;
    tl_err e = {0};
    assert_int_equal(journal_open(&j, p, 0, NULL, NULL, NULL, &e), TL_EFORMAT);
    assert_null(j);
    tu_assert_one_line_error(&e, p, needle);
    assert_file_bytes(p, bytes, n);
    memset(&e, 0, sizeof e);
    assert_int_equal(journal_scan(p, 0, NULL, NULL, NULL, &e), TL_EFORMAT);
    tu_assert_one_line_error(&e, p, needle);
    assert_file_bytes(p, bytes, n);
}

static void test_not_a_journal(void **st)
{
    (void)st;
    const char *p = tu_tmp("notes.txt");
    const char *text = "these are notes, not a journal at all\n";
    refuse_expect(p, text, strlen(text), "not a tlsweep journal (no TLSWEEPJ magic)");
    refuse_expect(p, "XY", 2, "no TLSWEEPJ magic");
    refuse_expect(p, "TLSWEEPJ\2\0", 10, "damaged header");
}

static void test_version_mismatch(void **st)
{
    (void)st;
    const char *p = tu_tmp("v2.journal");
    refuse_expect(p, "TLSWEEPJ\2\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 24,
                  "journal format version 2 is not supported (this tlsweep reads 1)");
    refuse_expect(p, "TLSWEEPJ\1\0\0\0\0\0\1\0", 16, "reserved field is 65536");
}

/* A crash while a journal was being created leaves a prefix of the header:
 * opening starts it afresh; an empty file is a journal with no records. */
static void test_fresh(void **st)
{
    (void)st;
    const char *p = tu_tmp("fresh.journal");
    int ids[] = {8};
    size_t sizes[] = {0, 5, 8, 15};
    for (int i = 0; i < 4; i++) {
        tu_write_file(p, "TLSWEEPJ\1\0\0\0\0\0\0\0", sizes[i]);
        scan_expect(p, ids, 0, sizes[i]);
        journal *j = open_expect(p, ids, 0, sizes[i]);
        assert_int_equal(file_size(p), 16);
        append_rec(j, ids[0]);
        assert_int_equal(journal_close(j, NULL), 0);
        scan_expect(p, ids, 1, 0);
    }
}

static void test_scan_does_not_modify(void **st)
{
    (void)st;
    const char *p = tu_tmp("scan.journal");
    int ids[] = {1, 2, 3};
    write_journal(p, ids, 3);
    size_t len;
    unsigned char *b = tu_read_file(p, &len);
    tu_write_file(p, b, len - 2); /* torn */
    struct stat before, after;
    assert_int_equal(stat(p, &before), 0);
    scan_expect(p, ids, 2, len - 2 - journal_bytes(ids, 2));
    assert_int_equal(stat(p, &after), 0);
    assert_file_bytes(p, b, len - 2);
    assert_true(before.st_mtim.tv_sec == after.st_mtim.tv_sec &&
                before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);
    free(b);
    /* nothing is created either */
    const char *missing = tu_tmp("missing.journal");
    tl_err e = {0};
    assert_int_equal(journal_scan(missing, 0, NULL, NULL, NULL, &e), TL_EIO);
    tu_assert_one_line_error(&e, missing, "cannot open");
    assert_int_equal(access(missing, F_OK), -1);
}

/* A callback's nonzero return stops the replay and comes back unchanged;
 * the failed open truncates nothing, even with a torn tail. */
static void test_callback_stops(void **st)
{
    (void)st;
    const char *p = tu_tmp("stop.journal");
    int ids[] = {1, 2, 3, 4};
    write_journal(p, ids, 4);
    size_t len;
    unsigned char *b = tu_read_file(p, &len);
    tu_write_file(p, b, len - 1);
    check_ctx c = {ids, 4, 0, 2};
    journal *j = (journal *)&j;
    assert_int_equal(journal_open(&j, p, 0, check_cb, &c, NULL, NULL), 42);
    assert_null(j);
    assert_int_equal(c.seen, 2);
    assert_file_bytes(p, b, len - 1);
    c.seen = 0;
    assert_int_equal(journal_scan(p, 0, check_cb, &c, NULL, NULL), 42);
    free(b);
}

static void test_one_writer(void **st)
{
    (void)st;
    const char *p = tu_tmp("locked.journal");
    int ids[] = {1};
    write_journal(p, ids, 1);
    journal *j = open_expect(p, ids, 1, 0), *j2 = (journal *)&j2;
    tl_err e = {0};
    assert_int_equal(journal_open(&j2, p, 0, NULL, NULL, NULL, &e), TL_EIO);
    assert_null(j2);
    tu_assert_one_line_error(&e, p, "another writer");
    scan_expect(p, ids, 1, 0); /* readers are welcome */
    assert_int_equal(journal_close(j, NULL), 0);
    journal_close(open_expect(p, ids, 1, 0), NULL);
    /* a missing directory is the caller's to make */
    const char *nodir = tu_tmp("no/such/dir.journal");
    assert_int_equal(journal_open(&j2, nodir, 0, NULL, NULL, NULL, &e), TL_EIO);
    tu_assert_one_line_error(&e, nodir, "cannot open");
}

/* A shared lock on its own open of the file, as `tlsweep status` takes to
 * ask whether the writer is alive: the fd, -1 when refused. */
static int lock_shared(const char *p)
{
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    if (flock(fd, LOCK_SH | LOCK_NB) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* closes the fd in *arg (its lock goes with it) after 200 ms */
static void *release_later(void *arg)
{
    usleep(200000);
    close(*(int *)arg);
    return NULL;
}

/* A reader's shared lock that is let go within a second: the writer waits
 * it out and opens. Held for good: refused as another writer is. */
static void test_reader_lock_waited_out(void **st)
{
    (void)st;
    const char *p = tu_tmp("probed.journal");
    int ids[] = {1, 2};
    write_journal(p, ids, 2);
    int fd = lock_shared(p);
    assert_true(fd >= 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, release_later, &fd), 0);
    journal *j = open_expect(p, ids, 2, 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(journal_close(j, NULL), 0);

    fd = lock_shared(p);
    assert_true(fd >= 0);
    tl_err e = {0};
    assert_int_equal(journal_open(&j, p, 0, NULL, NULL, NULL, &e), TL_EIO);
    assert_null(j);
    tu_assert_one_line_error(&e, p, "another writer has it open");
    close(fd);
}

/* journal_lock_held: 1 while a journal is open on the file, 0 once it is
 * closed (and the probe leaves no lock behind: a writer opens at once), -1
 * naming a missing file. */
static void test_lock_held(void **st)
{
    (void)st;
    const char *p = tu_tmp("held.journal");
    int ids[] = {4};
    write_journal(p, ids, 1);
    tl_err e = {0};
    assert_int_equal(journal_lock_held(p, &e), 0);
    journal *j = open_expect(p, ids, 1, 0);
    assert_int_equal(journal_lock_held(p, &e), 1);
    int fd = lock_shared(p);
    assert_int_equal(fd, -1); /* the writer's lock is exclusive */
    assert_int_equal(journal_close(j, NULL), 0);
    assert_int_equal(journal_lock_held(p, &e), 0);
    journal_close(open_expect(p, ids, 1, 0), NULL);
    const char *missing = tu_tmp("no.journal");
    assert_int_equal(journal_lock_held(missing, &e), -1);
    tu_assert_one_line_error(&e, missing, "cannot open");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_reopen_appends),
        cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_corrupt_record),
        cmocka_unit_test(test_huge_length),
        cmocka_unit_test(test_not_a_journal),
        cmocka_unit_test(test_version_mismatch),
        cmocka_unit_test(test_fresh),
        cmocka_unit_test(test_scan_does_not_modify),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_one_writer),
        cmocka_unit_test(test_reader_lock_waited_out),
        cmocka_unit_test(test_lock_held),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
