/* The message layer without MPI: chunk headers, reassembly (in order, out of
 * order, corrupt), the Hello version check, envelope builders through
 * protobuf-c pack/unpack. The MPI half is tests/mpi/msg_pingpong.c. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/msg/msg.h"

/* A message of total bytes (byte i = i*7+3) cut into chunks of at most
 * limit bytes, as msg_send cuts it: chunks[i] of lens[i] bytes. */
typedef struct {
    unsigned char *data;
    uint32_t count;
    unsigned char **chunks;
    size_t *lens;
} split;

static split split_make(uint64_t total, size_t limit, uint32_t msg_id)
{
    split s;
    s.data = malloc(total);
    for (uint64_t i = 0; i < total; i++)
        s.data[i] = (unsigned char)(i * 7 + 3);
    s.count = msg_chunk_count(total, limit);
    assert_true(s.count > 0);
    s.chunks = calloc(s.count, sizeof *s.chunks);
    s.lens = calloc(s.count, sizeof *s.lens);
    size_t piece = limit - MSG_CHUNK_HEADER_SIZE;
    for (uint32_t i = 0; i < s.count; i++) {
        uint64_t at = (uint64_t)i * piece;
        size_t len = total - at < piece ? total - at : piece;
        msg_chunk_header h = {.msg_id = msg_id, .index = i, .count = s.count, .total = total};
        s.lens[i] = MSG_CHUNK_HEADER_SIZE + len;
        s.chunks[i] = malloc(s.lens[i]);
        msg_chunk_header_encode(&h, s.chunks[i]);
        memcpy(s.chunks[i] + MSG_CHUNK_HEADER_SIZE, s.data + at, len);
    }
    return s;
}

static void split_free(split *s)
{
    for (uint32_t i = 0; i < s->count; i++)
        free(s->chunks[i]);
    free(s->chunks);
    free(s->lens);
    free(s->data);
}

static void test_chunk_count(void **st)
{
    (void)st;
    size_t piece = 1024 - MSG_CHUNK_HEADER_SIZE;
    assert_int_equal(msg_chunk_count(1, 1024), 1);
    assert_int_equal(msg_chunk_count(piece, 1024), 1);
    assert_int_equal(msg_chunk_count(piece + 1, 1024), 2);
    assert_int_equal(msg_chunk_count(5u << 20, 64u << 10), ((5u << 20) + (65536 - 24) - 1) / (65536 - 24));
    assert_int_equal(msg_chunk_count(100, MSG_CHUNK_HEADER_SIZE), 0);
}

static void test_header_roundtrip(void **st)
{
    (void)st;
    msg_chunk_header h = {.msg_id = 0xdeadbeef, .index = 6, .count = 7,
                          .total = MSG_MAX_MESSAGE};
    unsigned char buf[MSG_CHUNK_HEADER_SIZE + 1] = {0};
    msg_chunk_header_encode(&h, buf);
    /* little-endian on the wire, whatever the host */
    assert_memory_equal(buf, "TLCK", 4);
    assert_int_equal(buf[4], 0xef);
    msg_chunk_header d;
    tl_err e;
    assert_int_equal(msg_chunk_header_decode(buf, sizeof buf, &d, &e), 0);
    assert_int_equal(d.msg_id, h.msg_id);
    assert_int_equal(d.index, 6);
    assert_int_equal(d.count, 7);
    assert_true(d.total == MSG_MAX_MESSAGE);
}

static void expect_bad_header(msg_chunk_header h, size_t n, const char *frag)
{
    unsigned char buf[64] = {0};
    msg_chunk_header_encode(&h, buf);
    msg_chunk_header d;
    tl_err e = {0};
    assert_int_equal(msg_chunk_header_decode(buf, n, &d, &e), TL_EFORMAT);
    tu_assert_one_line_error(&e, "chunk", frag);
}

static void test_header_corrupt(void **st)
{
    (void)st;
    msg_chunk_header ok = {.msg_id = 1, .index = 0, .count = 2, .total = 40};
    expect_bad_header(ok, MSG_CHUNK_HEADER_SIZE - 1, "shorter than");
    expect_bad_header(ok, MSG_CHUNK_HEADER_SIZE, "no data");
    msg_chunk_header h = ok;
    h.index = 2;
    expect_bad_header(h, 30, "index 2 of 2");
    h = ok;
    h.count = 0;
    expect_bad_header(h, 30, "index 0 of 0");
    h = ok;
    h.total = 0;
    expect_bad_header(h, 30, "total length 0");
    h = ok;
    h.total = MSG_MAX_MESSAGE + 1;
    expect_bad_header(h, 30, "total length 2147483648");
    h = ok;
    h.total = 1;
    expect_bad_header(h, 30, "2 chunks for 1 bytes");

    unsigned char buf[32] = {0};
    msg_chunk_header_encode(&ok, buf);
    buf[0] ^= 1;
    msg_chunk_header d;
    tl_err e = {0};
    assert_int_equal(msg_chunk_header_decode(buf, sizeof buf, &d, &e), TL_EFORMAT);
    tu_assert_one_line_error(&e, "bad magic");
}

static void test_reassembly(void **st)
{
    (void)st;
    /* exact multiple of the piece, one byte over, one chunk, many chunks */
    const uint64_t totals[] = {1000, 1001, 3 * 1000, 3 * 1000 + 1, 1, 123457};
    for (size_t t = 0; t < sizeof totals / sizeof *totals; t++) {
        split s = split_make(totals[t], 1000 + MSG_CHUNK_HEADER_SIZE, 9);
        msg_assembly a;
        msg_assembly_init(&a);
        tl_err e = {0};
        int done = 0;
        for (uint32_t i = 0; i < s.count; i++) {
            assert_int_equal(msg_assembly_add(&a, s.chunks[i], s.lens[i], 3, &done, &e), 0);
            assert_int_equal(done, i + 1 == s.count);
        }
        assert_true(a.have == totals[t]);
        assert_memory_equal(a.buf, s.data, totals[t]);
        msg_assembly_free(&a);
        split_free(&s);
    }
}

/* Feeds chunks of s in the given order; expects the failure at the last one. */
static void expect_bad_sequence(split *s, const uint32_t *order, size_t n, const char *frag)
{
    msg_assembly a;
    msg_assembly_init(&a);
    tl_err e = {0};
    int done = 0;
    for (size_t k = 0; k + 1 < n; k++)
        assert_int_equal(msg_assembly_add(&a, s->chunks[order[k]], s->lens[order[k]], 2,
                                          &done, &e), 0);
    assert_int_equal(msg_assembly_add(&a, s->chunks[order[n - 1]], s->lens[order[n - 1]], 2,
                                      &done, &e), TL_EFORMAT);
    assert_int_equal(done, 0);
    tu_assert_one_line_error(&e, "rank 2", frag);
    msg_assembly_free(&a);
}

/* A header that claims a 2 GiB message: the receiver holds what came,
 * not what was claimed; and it cannot claim it in millions of tiny chunks. */
static void test_reassembly_bounded(void **st)
{
    (void)st;
    size_t piece = 4096;
    unsigned char *chunk = calloc(1, MSG_CHUNK_HEADER_SIZE + piece);
    msg_chunk_header h = {.msg_id = 9, .index = 0,
                          .count = (uint32_t)((MSG_MAX_MESSAGE + piece - 1) / piece),
                          .total = MSG_MAX_MESSAGE};
    msg_assembly a;
    msg_assembly_init(&a);
    tl_err e = {0};
    int done = 0;
    for (uint32_t i = 0; i < 5; i++) {
        h.index = i;
        msg_chunk_header_encode(&h, chunk);
        assert_int_equal(msg_assembly_add(&a, chunk, MSG_CHUNK_HEADER_SIZE + piece, 4, &done, &e), 0);
        assert_false(done);
        /* doubling: never more than twice what came */
        assert_true(a.cap >= a.have && a.cap <= 2 * a.have);
    }
    assert_true(a.have == 5 * piece);
    msg_assembly_free(&a);

    /* the same 2 GiB in chunks of 100 bytes: refused at chunk 0 */
    h = (msg_chunk_header){.msg_id = 10, .index = 0, .count = (uint32_t)(MSG_MAX_MESSAGE / 100 + 1),
                           .total = MSG_MAX_MESSAGE};
    msg_chunk_header_encode(&h, chunk);
    msg_assembly_init(&a);
    assert_int_equal(msg_assembly_add(&a, chunk, MSG_CHUNK_HEADER_SIZE + 100, 4, &done, &e),
                     TL_EFORMAT);
    tu_assert_one_line_error(&e, "rank 4", "carries 100 bytes", "minimum");
    assert_null(a.buf);
    msg_assembly_free(&a);
    free(chunk);

    /* the wait for the next chunk is bounded, and never 0 */
    assert_int_equal(msg_set_chunk_timeout(0, &e), TL_EINVAL);
    tu_assert_one_line_error(&e, "chunk timeout", "0 ms");
    assert_int_equal(msg_set_chunk_timeout(MSG_CHUNK_TIMEOUT_DEFAULT_MS, &e), 0);
}

static void test_reassembly_corrupt(void **st)
{
    (void)st;
    split s = split_make(2500, 1000 + MSG_CHUNK_HEADER_SIZE, 5); /* 1000, 1000, 500 */
    assert_int_equal(s.count, 3);

    expect_bad_sequence(&s, (uint32_t[]){1}, 1, "chunk 1 of 3 arrived first");
    expect_bad_sequence(&s, (uint32_t[]){0, 2}, 2, "chunk 2, expected chunk 1");
    expect_bad_sequence(&s, (uint32_t[]){0, 0}, 2, "chunk 0, expected chunk 1");

    /* a chunk of another message in the middle */
    split other = split_make(2500, 1000 + MSG_CHUNK_HEADER_SIZE, 6);
    msg_assembly a;
    msg_assembly_init(&a);
    tl_err e = {0};
    int done;
    assert_int_equal(msg_assembly_add(&a, s.chunks[0], s.lens[0], 2, &done, &e), 0);
    assert_int_equal(msg_assembly_add(&a, other.chunks[1], other.lens[1], 2, &done, &e),
                     TL_EFORMAT);
    tu_assert_one_line_error(&e, "message 6", "inside message 5");
    msg_assembly_free(&a);
    split_free(&other);

    /* chunk sizes that do not add up: a short middle chunk, a long last one */
    msg_assembly_init(&a);
    assert_int_equal(msg_assembly_add(&a, s.chunks[0], s.lens[0], 2, &done, &e), 0);
    assert_int_equal(msg_assembly_add(&a, s.chunks[1], s.lens[1] - 1, 2, &done, &e), TL_EFORMAT);
    tu_assert_one_line_error(&e, "chunk 1 of 3 carries 999 bytes, expected 1000");
    msg_assembly_free(&a);

    unsigned char *longer = calloc(1, s.lens[2] + 1);
    memcpy(longer, s.chunks[2], s.lens[2]);
    msg_assembly_init(&a);
    assert_int_equal(msg_assembly_add(&a, s.chunks[0], s.lens[0], 2, &done, &e), 0);
    assert_int_equal(msg_assembly_add(&a, s.chunks[1], s.lens[1], 2, &done, &e), 0);
    assert_int_equal(msg_assembly_add(&a, longer, s.lens[2] + 1, 2, &done, &e), TL_EFORMAT);
    tu_assert_one_line_error(&e, "chunk 2 of 3 carries 501 bytes, expected 500");
    msg_assembly_free(&a);
    free(longer);

    /* a count that cannot hold the total with chunk 0's size, both ways:
     * checked before anything is allocated for the total */
    const struct { uint32_t count; uint64_t total; } bad[] = {
        {3, 3001},            /* 3 x 1000 < 3001 */
        {3, 2000},            /* the last chunk would be empty */
        {1000, 2000000000},   /* a huge total with a small count */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        unsigned char c[MSG_CHUNK_HEADER_SIZE + 1000];
        msg_chunk_header h = {.msg_id = 5, .index = 0, .count = bad[i].count,
                              .total = bad[i].total};
        msg_chunk_header_encode(&h, c);
        memset(c + MSG_CHUNK_HEADER_SIZE, 0, 1000);
        msg_assembly_init(&a);
        assert_int_equal(msg_assembly_add(&a, c, sizeof c, 4, &done, &e), TL_EFORMAT);
        tu_assert_one_line_error(&e, "rank 4", "cannot hold");
        assert_null(a.buf);
        msg_assembly_free(&a);
    }
    split_free(&s);
}

/* Packs env and unpacks it again, as the wire does. */
static Tlsweep__Envelope *roundtrip(const Tlsweep__Envelope *env)
{
    size_t n = tlsweep__envelope__get_packed_size(env);
    unsigned char *buf = malloc(n ? n : 1);
    tlsweep__envelope__pack(env, buf);
    Tlsweep__Envelope *back = tlsweep__envelope__unpack(NULL, n, buf);
    free(buf);
    assert_non_null(back);
    return back;
}

static void test_hello(void **st)
{
    (void)st;
    Tlsweep__Envelope *env;
    tl_err e = {0};
    assert_int_equal(msg_new_hello(3, &env, &e), 0);
    Tlsweep__Envelope *back = roundtrip(env);
    assert_int_equal(back->body_case, TLSWEEP__ENVELOPE__BODY_HELLO);
    assert_int_equal(back->hello->rank, 3);
    assert_int_equal(back->from_rank, 3);
    assert_true(back->hello->cores >= 1);
    assert_true(back->hello->memory_bytes > (1u << 20));
    assert_true(strlen(back->hello->host) > 0);
    assert_int_equal(msg_hello_check(back, &e), 0);

    /* a newer worker: one line with rank, host and both versions */
    back->hello->protocol_version = TLSWEEP__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT + 1;
    char newer[32], ours[48];
    snprintf(newer, sizeof newer, "version %d,",
             TLSWEEP__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT + 1);
    snprintf(ours, sizeof ours, "coordinator speaks %d",
             TLSWEEP__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
    char host[300];
    snprintf(host, sizeof host, "host %s", back->hello->host);
    assert_int_equal(msg_hello_check(back, &e), TL_EINVAL);
    tu_assert_one_line_error(&e, "rank 3 ", host, newer, ours);
    /* an old worker that predates the field sends nothing: version 0 */
    back->hello->protocol_version = 0;
    assert_int_equal(msg_hello_check(back, &e), TL_EINVAL);
    tu_assert_one_line_error(&e, "rank 3 ", "version 0,", ours);
    msg_free(back);
    msg_free(env);

    /* not a Hello at all */
    env = msg_new_stop(TLSWEEP__STOP__REASON__FINISHED);
    env->from_rank = 2;
    assert_int_equal(msg_hello_check(env, &e), TL_EINVAL);
    tu_assert_one_line_error(&e, "rank 2", "stop", "expected hello");
    msg_free(env);
}

static void test_builders(void **st)
{
    (void)st;
    Tlsweep__Envelope *env = msg_new_heartbeat(1234, 5, 6789);
    Tlsweep__Envelope *back = roundtrip(env);
    assert_int_equal(back->body_case, TLSWEEP__ENVELOPE__BODY_HEARTBEAT);
    assert_int_equal(back->heartbeat->unix_ms, 1234);
    assert_int_equal(back->heartbeat->task_id, 5);
    assert_int_equal(back->heartbeat->rss_bytes, 6789);
    msg_free(back);
    msg_free(env);

    env = msg_new_stop(TLSWEEP__STOP__REASON__PREEMPTED);
    back = roundtrip(env);
    assert_int_equal(back->body_case, TLSWEEP__ENVELOPE__BODY_STOP);
    assert_int_equal(back->stop->reason, TLSWEEP__STOP__REASON__PREEMPTED);
    msg_free(back);
    msg_free(env);

    env = msg_new_error(TL_EIO, "x.jpg: truncated", 0);
    back = roundtrip(env);
    assert_int_equal(back->body_case, TLSWEEP__ENVELOPE__BODY_ERROR);
    assert_int_equal(back->error->code, TL_EIO);
    assert_string_equal(back->error->message, "x.jpg: truncated");
    assert_false(back->error->fatal);
    msg_free(back);
    msg_free(env);
    /* empty strings stay protobuf-c's shared "", which free must skip */
    msg_free(msg_new_error(TL_EIO, "", 1));
    msg_free(msg_new_error(TL_EIO, NULL, 1));

    enum { N = 7, D = 5 };
    uint32_t ids[N];
    float f[N * D];
    for (int i = 0; i < N; i++)
        ids[i] = 100 + i;
    tu_fill_uniform(f, N * D, 42, -1, 1);
    env = msg_new_feature_chunk(9, "mobilenet_v2", ids, N, f, D, 1);
    back = roundtrip(env);
    const Tlsweep__FeatureChunk *c = back->feature_chunk;
    assert_int_equal(back->body_case, TLSWEEP__ENVELOPE__BODY_FEATURE_CHUNK);
    assert_int_equal(c->task_id, 9);
    assert_string_equal(c->backbone, "mobilenet_v2");
    assert_true(c->last);
    assert_int_equal(c->n_image_ids, N);
    assert_memory_equal(c->image_ids, ids, sizeof ids);
    assert_int_equal(c->features->n_shape, 2);
    assert_int_equal(c->features->shape[0], N);
    assert_int_equal(c->features->shape[1], D);
    assert_int_equal(c->features->n_data, N * D);
    assert_memory_equal(c->features->data, f, sizeof f);
    msg_free(back);
    msg_free(env);
    msg_free(NULL);
}

static void test_chunk_limit(void **st)
{
    (void)st;
    tl_err e = {0};
    assert_int_equal(msg_chunk_limit(), MSG_CHUNK_LIMIT_DEFAULT);
    assert_int_equal(msg_set_chunk_limit(1000, &e), TL_EINVAL);
    tu_assert_one_line_error(&e, "chunk limit 1000");
    assert_int_equal(msg_set_chunk_limit(((size_t)1 << 30) + 1, &e), TL_EINVAL);
    assert_int_equal(msg_set_chunk_limit(1024, &e), 0);
    assert_int_equal(msg_chunk_limit(), 1024);
    assert_int_equal(msg_set_chunk_limit(MSG_CHUNK_LIMIT_DEFAULT, &e), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_count),
        cmocka_unit_test(test_header_roundtrip),
        cmocka_unit_test(test_header_corrupt),
        cmocka_unit_test(test_reassembly),
        cmocka_unit_test(test_reassembly_corrupt),
        cmocka_unit_test(test_reassembly_bounded),
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_builders),
        cmocka_unit_test(test_chunk_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
