/* Chunk headers and reassembly: the part of the message layer that needs no
 * MPI, so that unit tests can feed it corrupt input.
 *
 * Header, little-endian, MSG_CHUNK_HEADER_SIZE bytes:
 *   u32 magic "TLCK" | u32 msg_id | u32 index | u32 count | u64 total */
#include "common/base/le.h"
#include "common/msg/msg.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_MAGIC 0x4b434c54u /* "TLCK" read as little-endian */


uint32_t msg_chunk_count(uint64_t total, size_t limit)
{
    if (limit <= MSG_CHUNK_HEADER_SIZE)
        return 0;
    uint64_t piece = limit - MSG_CHUNK_HEADER_SIZE;
    uint64_t count = (total + piece - 1) / piece;
    return count > UINT32_MAX ? 0 : (uint32_t)count;
}

void msg_chunk_header_encode(const msg_chunk_header *h, unsigned char out[MSG_CHUNK_HEADER_SIZE])
{
    le_put_u32(out, CHUNK_MAGIC);
    le_put_u32(out + 4, h->msg_id);
    le_put_u32(out + 8, h->index);
    le_put_u32(out + 12, h->count);
    le_put_u64(out + 16, h->total);
}

int msg_chunk_header_decode(const unsigned char *chunk, size_t n, msg_chunk_header *h,
                            tl_err *e)
{
    if (n < MSG_CHUNK_HEADER_SIZE)
        return tl_errf(e, TL_EFORMAT, "chunk of %zu bytes is shorter than its %d-byte header",
                       n, MSG_CHUNK_HEADER_SIZE);
    uint32_t magic = le_get_u32(chunk);
    if (magic != CHUNK_MAGIC)
        return tl_errf(e, TL_EFORMAT, "chunk header: bad magic 0x%08x", (unsigned)magic);
    h->msg_id = le_get_u32(chunk + 4);
    h->index = le_get_u32(chunk + 8);
    h->count = le_get_u32(chunk + 12);
    h->total = le_get_u64(chunk + 16);
    if (h->count == 0 || h->index >= h->count)
        return tl_errf(e, TL_EFORMAT, "chunk header: index %u of %u chunks",
                       (unsigned)h->index, (unsigned)h->count);
    if (h->total == 0 || h->total > MSG_MAX_MESSAGE)
        return tl_errf(e, TL_EFORMAT, "chunk header: total length %llu not in 1..%llu",
                       (unsigned long long)h->total, (unsigned long long)MSG_MAX_MESSAGE);
    if (h->count > h->total)
        return tl_errf(e, TL_EFORMAT, "chunk header: %u chunks for %llu bytes",
                       (unsigned)h->count, (unsigned long long)h->total);
    if (n == MSG_CHUNK_HEADER_SIZE)
        return tl_errf(e, TL_EFORMAT, "chunk %u of %u carries no data",
                       (unsigned)h->index, (unsigned)h->count);
    return 0;
}

void msg_assembly_init(msg_assembly *a)
{
    memset(a, 0, sizeof *a);
}

void msg_assembly_free(msg_assembly *a)
{
    free(a->buf);
    msg_assembly_init(a);
}

int msg_assembly_add(msg_assembly *a, const unsigned char *chunk, size_t n, int from,
                     int *done, tl_err *e)
{
    msg_chunk_header h;
    tl_err sub;
    *done = 0;
    if (msg_chunk_header_decode(chunk, n, &h, &sub) < 0)
        return tl_errf(e, TL_EFORMAT, "message from rank %d: %s", from, sub.msg);
    uint64_t len = n - MSG_CHUNK_HEADER_SIZE;
    if (!a->buf) {
        if (h.index != 0)
            return tl_errf(e, TL_EFORMAT,
                           "message from rank %d: chunk %u of %u arrived first, expected chunk 0",
                           from, (unsigned)h.index, (unsigned)h.count);
        /* every chunk but the last is len bytes: the count must fit the total */
        if ((uint64_t)(h.count - 1) * len >= h.total || (uint64_t)h.count * len < h.total)
            return tl_errf(e, TL_EFORMAT,
                           "message from rank %d: %u chunks of %llu bytes cannot hold %llu bytes",
                           from, (unsigned)h.count, (unsigned long long)len,
                           (unsigned long long)h.total);
        /* a sender's pieces are at least its smallest chunk limit's: a header
         * cannot claim a message of millions of tiny chunks */
        if (h.count > 1 && len < MSG_CHUNK_LIMIT_MIN - MSG_CHUNK_HEADER_SIZE)
            return tl_errf(e, TL_EFORMAT,
                           "message from rank %d: chunk 0 of %u carries %llu bytes, under the "
                           "%zu-byte minimum of a chunked message",
                           from, (unsigned)h.count, (unsigned long long)len,
                           MSG_CHUNK_LIMIT_MIN - MSG_CHUNK_HEADER_SIZE);
        /* the buffer grows with the bytes that came (doubling), not with
         * what chunk 0 claims: a lying header costs its own bytes, not 2 GiB */
        uint64_t cap = len;
        a->buf = malloc(cap);
        if (!a->buf)
            return tl_errf(e, TL_ENOMEM, "message from rank %d: out of memory for %llu bytes",
                           from, (unsigned long long)cap);
        a->cap = cap;
        a->first = h;
        a->piece = len;
        a->next = 0;
        a->have = 0;
    } else {
        if (h.msg_id != a->first.msg_id || h.count != a->first.count ||
            h.total != a->first.total)
            return tl_errf(e, TL_EFORMAT,
                           "message from rank %d: chunk of message %u (%u chunks, %llu bytes) "
                           "inside message %u (%u chunks, %llu bytes)",
                           from, (unsigned)h.msg_id, (unsigned)h.count,
                           (unsigned long long)h.total, (unsigned)a->first.msg_id,
                           (unsigned)a->first.count, (unsigned long long)a->first.total);
        if (h.index != a->next)
            return tl_errf(e, TL_EFORMAT, "message from rank %d: chunk %u, expected chunk %u",
                           from, (unsigned)h.index, (unsigned)a->next);
    }
    uint64_t want = h.index + 1 < h.count ? a->piece : h.total - a->have;
    if (len != want)
        return tl_errf(e, TL_EFORMAT,
                       "message from rank %d: chunk %u of %u carries %llu bytes, expected %llu",
                       from, (unsigned)h.index, (unsigned)h.count, (unsigned long long)len,
                       (unsigned long long)want);
    if (a->have + len > a->cap) {
        uint64_t cap = a->cap * 2 > a->have + len ? a->cap * 2 : a->have + len;
        if (cap > h.total)
            cap = h.total;
        unsigned char *b = realloc(a->buf, cap);
        if (!b)
            return tl_errf(e, TL_ENOMEM, "message from rank %d: out of memory for %llu bytes",
                           from, (unsigned long long)cap);
        a->buf = b;
        a->cap = cap;
    }
    memcpy(a->buf + a->have, chunk + MSG_CHUNK_HEADER_SIZE, len);
    a->have += len;
    a->next++;
    *done = a->next == h.count;
    return 0;
}
