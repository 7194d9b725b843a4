/* Envelopes as a worker sends them (common/msg/msg.h), without MPI: the
 * first byte picks
 *   0: the rest is one packed Envelope (MSG_TAG_WHOLE), unpacked as
 *      msg_recv does, then read as the coordinator first reads it;
 *   1: the rest is a stream of MPI messages on MSG_TAG_CHUNK, each a u32
 *      little-endian length and that many bytes, put together with
 *      msg_assembly_add as msg_recv does, and the result unpacked. */
#include "common/msg/msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void read_envelope(const uint8_t *buf, size_t n)
{
    Tlsweep__Envelope *env = tlsweep__envelope__unpack(NULL, n, buf);
    if (!env)
        return;
    tl_err e;
    msg_body_name(env);
    msg_hello_check(env, &e);
    /* what was unpacked packs again (the local link does exactly this) */
    size_t len = tlsweep__envelope__get_packed_size(env);
    uint8_t *out = malloc(len ? len : 1);
    if (!out || tlsweep__envelope__pack(env, out) != len)
        abort();
    free(out);
    tlsweep__envelope__free_unpacked(env, NULL);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void assemble(const uint8_t *p, size_t n)
{
    msg_assembly a;
    msg_assembly_init(&a);
    tl_err e;
    int done = 0;
    while (n >= 4 && !done) {
        size_t k = le32(p);
        p += 4, n -= 4;
        if (k > n)
            k = n;
        if (msg_assembly_add(&a, p, k, 1, &done, &e) < 0)
            break;
        p += k, n -= k;
    }
    if (done) {
        if (a.have != a.first.total)
            abort();
        read_envelope(a.buf, a.first.total);
    }
    msg_assembly_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] == 0)
        read_envelope(data + 1, size - 1);
    else if (data[0] == 1)
        assemble(data + 1, size - 1);
    return 0;
}
