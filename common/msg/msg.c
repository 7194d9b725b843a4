/* Envelopes over MPI: pack, send whole or in chunks; probe, receive,
 * reassemble, unpack. The wire format and its tags are described in msg.h. */
#include "common/msg/msg.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base/clock.h"

static size_t chunk_limit = MSG_CHUNK_LIMIT_DEFAULT;
/* ids of chunked messages sent by this process, for the chunk headers */
static uint32_t next_msg_id = 1;

int msg_set_chunk_limit(size_t bytes, tl_err *e)
{
    if (bytes < MSG_CHUNK_LIMIT_MIN || bytes > MSG_CHUNK_LIMIT_MAX)
        return tl_errf(e, TL_EINVAL, "message chunk limit %zu not in %zu..%zu bytes", bytes,
                       MSG_CHUNK_LIMIT_MIN, MSG_CHUNK_LIMIT_MAX);
    chunk_limit = bytes;
    return 0;
}

size_t msg_chunk_limit(void)
{
    return chunk_limit;
}

static int chunk_timeout_ms = MSG_CHUNK_TIMEOUT_DEFAULT_MS;

int msg_set_chunk_timeout(int ms, tl_err *e)
{
    if (ms <= 0)
        return tl_errf(e, TL_EINVAL, "message chunk timeout %d ms: expected > 0", ms);
    chunk_timeout_ms = ms;
    return 0;
}

static int mpi_fail(tl_err *e, int rc, const char *what, int peer)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS)
        strcpy(s, "unknown MPI error");
    return tl_errf(e, TL_EIO, "%s rank %d: %s", what, peer, s);
}

int msg_send(MPI_Comm comm, int dest, const Tlsweep__Envelope *env, tl_err *e)
{
    size_t total = tlsweep__envelope__get_packed_size(env);
    if (total > MSG_MAX_MESSAGE)
        return tl_errf(e, TL_EINVAL, "message to rank %d: %s of %zu bytes is over the %llu-byte "
                       "limit; split it into parts", dest, msg_body_name(env), total,
                       (unsigned long long)MSG_MAX_MESSAGE);
    size_t limit = chunk_limit;
    if (total <= limit) {
        unsigned char *buf = malloc(total ? total : 1);
        if (!buf)
            return tl_errf(e, TL_ENOMEM, "message to rank %d: out of memory for %zu bytes",
                           dest, total);
        tlsweep__envelope__pack(env, buf);
        int rc = MPI_Send(buf, (int)total, MPI_BYTE, dest, MSG_TAG_WHOLE, comm);
        free(buf);
        return rc == MPI_SUCCESS ? 0 : mpi_fail(e, rc, "sending to", dest);
    }

    /* packed once, then sent limit bytes at a time through one chunk buffer */
    unsigned char *buf = malloc(total);
    unsigned char *chunk = malloc(limit);
    if (!buf || !chunk) {
        free(buf);
        free(chunk);
        return tl_errf(e, TL_ENOMEM, "message to rank %d: out of memory for %zu bytes", dest,
                       total);
    }
    tlsweep__envelope__pack(env, buf);
    size_t piece = limit - MSG_CHUNK_HEADER_SIZE;
    msg_chunk_header h = {.msg_id = next_msg_id++, .index = 0,
                          .count = msg_chunk_count(total, limit), .total = total};
    int ret = 0;
    for (size_t at = 0; at < total; at += piece, h.index++) {
        size_t len = total - at < piece ? total - at : piece;
        msg_chunk_header_encode(&h, chunk);
        memcpy(chunk + MSG_CHUNK_HEADER_SIZE, buf + at, len);
        int rc = MPI_Send(chunk, (int)(MSG_CHUNK_HEADER_SIZE + len), MPI_BYTE, dest,
                          MSG_TAG_CHUNK, comm);
        if (rc != MPI_SUCCESS) {
            ret = mpi_fail(e, rc, "sending to", dest);
            break;
        }
    }
    free(chunk);
    free(buf);
    return ret;
}

/* Receives the matched message m (status st) into a malloc'd buffer. */
static int recv_matched(MPI_Message *m, MPI_Status *st, unsigned char **buf, size_t *n,
                        tl_err *e)
{
    int count = 0;
    MPI_Get_count(st, MPI_BYTE, &count);
    if (count < 0 || count == MPI_UNDEFINED)
        return tl_errf(e, TL_EFORMAT, "message from rank %d: size undefined", st->MPI_SOURCE);
    *buf = malloc(count ? (size_t)count : 1);
    if (!*buf)
        return tl_errf(e, TL_ENOMEM, "message from rank %d: out of memory for %d bytes",
                       st->MPI_SOURCE, count);
    int rc = MPI_Mrecv(*buf, count, MPI_BYTE, m, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
        free(*buf);
        *buf = NULL;
        return mpi_fail(e, rc, "receiving from", st->MPI_SOURCE);
    }
    *n = (size_t)count;
    return 0;
}

static int unpack(const unsigned char *buf, size_t n, int from, Tlsweep__Envelope **env,
                  tl_err *e)
{
    *env = tlsweep__envelope__unpack(NULL, n, buf);
    if (!*env)
        return tl_errf(e, TL_EFORMAT, "message from rank %d: %zu bytes are not an Envelope",
                       from, n);
    return 0;
}

/* The next chunk of a's message from src, probed without blocking (a
 * sender that died or was stopped mid-message would block MPI_Mprobe for
 * good) and given up after the chunk timeout. */
static int await_chunk(MPI_Comm comm, int src, const msg_assembly *a, MPI_Message *m,
                       MPI_Status *st, tl_err *e)
{
    double deadline = tl_now() + chunk_timeout_ms * 1e-3;
    long sleep_ns = 20000L;
    for (;;) {
        int flag = 0;
        int rc = MPI_Improbe(src, MSG_TAG_CHUNK, comm, &flag, m, st);
        if (rc != MPI_SUCCESS)
            return mpi_fail(e, rc, "probing", src);
        if (flag)
            return 0;
        if (tl_now() >= deadline)
            return tl_errf(e, TL_ETIMEDOUT,
                           "message from rank %d: silent for %.0f s after %u of %u chunks "
                           "(%llu of %llu bytes came): the rank stopped mid-message",
                           src, chunk_timeout_ms * 1e-3, (unsigned)a->next, (unsigned)a->first.count,
                           (unsigned long long)a->have, (unsigned long long)a->first.total);
        nanosleep(&(struct timespec){0, sleep_ns}, NULL);
        if (sleep_ns < 2000000L)
            sleep_ns *= 2;
    }
}

/* The message first matched by a probe (m, st): whole, or chunk 0 of a
 * message whose other chunks follow from the same rank. */
static int recv_from_probe(MPI_Comm comm, MPI_Message *m, MPI_Status *st,
                           Tlsweep__Envelope **env, int *from, tl_err *e)
{
    int src = st->MPI_SOURCE;
    unsigned char *buf = NULL;
    size_t n = 0;
    int rc;
    if (from)
        *from = src;
    if (st->MPI_TAG == MSG_TAG_WHOLE) {
        if ((rc = recv_matched(m, st, &buf, &n, e)) < 0)
            return rc;
        rc = unpack(buf, n, src, env, e);
        free(buf);
        return rc;
    }
    if (st->MPI_TAG != MSG_TAG_CHUNK) {
        /* take it off the queue, or every later probe finds it again */
        int tag = st->MPI_TAG;
        if ((rc = recv_matched(m, st, &buf, &n, e)) < 0)
            return rc;
        free(buf);
        return tl_errf(e, TL_EFORMAT, "message from rank %d: tag %d is not a tlsweep message "
                       "tag (%d, %d); dropped %zu bytes", src, tag, MSG_TAG_WHOLE,
                       MSG_TAG_CHUNK, n);
    }

    msg_assembly a;
    msg_assembly_init(&a);
    int done = 0;
    for (;;) {
        if ((rc = recv_matched(m, st, &buf, &n, e)) < 0)
            break;
        rc = msg_assembly_add(&a, buf, n, src, &done, e);
        free(buf);
        if (rc < 0 || done)
            break;
        /* in flight from src: MPI keeps one sender's messages on a tag in order */
        if ((rc = await_chunk(comm, src, &a, m, st, e)) < 0)
            break;
    }
    if (rc == 0)
        rc = unpack(a.buf, a.first.total, src, env, e);
    msg_assembly_free(&a);
    return rc;
}

int msg_recv(MPI_Comm comm, int source, Tlsweep__Envelope **env, int *from, tl_err *e)
{
    *env = NULL;
    MPI_Message m;
    MPI_Status st;
    int rc = MPI_Mprobe(source, MPI_ANY_TAG, comm, &m, &st);
    if (rc != MPI_SUCCESS)
        return mpi_fail(e, rc, "probing", source);
    return recv_from_probe(comm, &m, &st, env, from, e);
}

int msg_poll(MPI_Comm comm, Tlsweep__Envelope **env, int *from, int *got, tl_err *e)
{
    *env = NULL;
    *got = 0;
    MPI_Message m;
    MPI_Status st;
    int flag = 0;
    int rc = MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm, &flag, &m, &st);
    if (rc != MPI_SUCCESS)
        return mpi_fail(e, rc, "probing", MPI_ANY_SOURCE);
    if (!flag)
        return 0;
    rc = recv_from_probe(comm, &m, &st, env, from, e);
    if (rc == 0)
        *got = 1;
    return rc;
}
