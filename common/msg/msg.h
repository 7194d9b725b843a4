/* The message layer: protobuf Envelopes (proto/tlsweep.proto) over MPI.
 *
 * An Envelope is packed with protobuf-c and sent as MPI_BYTE on one of two
 * tags:
 *   MSG_TAG_WHOLE  the packed Envelope in one MPI message (size <= chunk limit)
 *   MSG_TAG_CHUNK  one piece of a larger Envelope: a MSG_CHUNK_HEADER_SIZE
 *                  header (message id, chunk index, chunk count, total length)
 *                  then the bytes. A sender sends all chunks of a message
 *                  back to back, and MPI keeps messages between two ranks on
 *                  one tag in order, so a receiver reads chunk 0 from any
 *                  rank and then the rest from that rank.
 * Every MPI message stays at or under the chunk limit (default 64 MiB), far
 * from MPI's int counts; a whole Envelope is at most MSG_MAX_MESSAGE bytes
 * (bulk senders split tensors into parts well under it, see the proto).
 *
 * The layer owns all point-to-point traffic on the communicator it is given
 * (it probes MPI_ANY_TAG): give it a dup of MPI_COMM_WORLD and use another
 * communicator for anything else. Collectives do not interfere.
 *
 * Sends are blocking (MPI_Send per chunk). Two ranks that send each other
 * large (rendezvous) messages at the same time deadlock, as with plain
 * MPI_Send: the coordinator sends small messages and receives the bulk ones.
 *
 * A receiver trusts no length from the wire: a corrupt chunk header, chunks
 * that do not add up, or bytes that protobuf-c cannot unpack give TL_EFORMAT
 * and a one-line message naming the sending rank. After such an error the
 * stream from that rank is out of step; treat it as fatal for that rank.
 *
 * Functions return 0 or a negative TL_E* code and fill the tl_err (may be
 * NULL). Envelopes returned by msg_recv/msg_poll and built by msg_new_* are
 * freed with msg_free. */
#ifndef TLSWEEP_MSG_H
#define TLSWEEP_MSG_H

#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

#include "common/base/err.h"
#include "tlsweep.pb-c.h"

enum {
    MSG_TAG_WHOLE = 0x7401,
    MSG_TAG_CHUNK = 0x7402,
};

#define MSG_CHUNK_HEADER_SIZE 24
#define MSG_CHUNK_LIMIT_DEFAULT ((size_t)64 << 20)
#define MSG_CHUNK_LIMIT_MIN ((size_t)1 << 10)
#define MSG_CHUNK_LIMIT_MAX ((size_t)1 << 30)
/* the largest Envelope, packed: protobuf's own limit is 2 GiB */
#define MSG_MAX_MESSAGE ((uint64_t)INT32_MAX)

/* The largest MPI message this process sends, header included; messages
 * above it are chunked. Between MSG_CHUNK_LIMIT_MIN and _MAX (TL_EINVAL
 * otherwise). Process-wide; tests lower it to exercise chunking. */
int msg_set_chunk_limit(size_t bytes, tl_err *e);
size_t msg_chunk_limit(void);

/* How long a receiver waits for the next chunk of a message whose first
 * chunk came (the sender sends them back to back): past it, msg_recv and
 * msg_poll fail with TL_ETIMEDOUT and a line naming the silent rank, instead of
 * blocking forever on a sender that died or was stopped mid-message.
 * Milliseconds, > 0; process-wide, default MSG_CHUNK_TIMEOUT_DEFAULT_MS. */
#define MSG_CHUNK_TIMEOUT_DEFAULT_MS 60000
int msg_set_chunk_timeout(int ms, tl_err *e);

/* ---- MPI transport -------------------------------------------------------- */

int msg_send(MPI_Comm comm, int dest, const Tlsweep__Envelope *env, tl_err *e);
/* Blocks until an Envelope from source (or MPI_ANY_SOURCE) has arrived
 * whole; *from (may be NULL) is the sender's rank. */
int msg_recv(MPI_Comm comm, int source, Tlsweep__Envelope **env, int *from, tl_err *e);
/* For an event loop: *got = 0 and returns at once when nothing is waiting;
 * else receives one Envelope as msg_recv does (*got = 1). Once the first
 * chunk of a chunked message is there, waits for the rest (the sender is
 * sending them), up to the chunk timeout between two chunks. */
int msg_poll(MPI_Comm comm, Tlsweep__Envelope **env, int *from, int *got, tl_err *e);

/* ---- Hello handshake ------------------------------------------------------ */

/* Hello of this process: protocol version, host name, cores in its affinity
 * mask, physical memory of the node. */
int msg_new_hello(int rank, Tlsweep__Envelope **env, tl_err *e);
/* TL_EINVAL with one line naming rank, host and both versions when the
 * Hello's protocol version is not ours, or when env is not a Hello. */
int msg_hello_check(const Tlsweep__Envelope *env, tl_err *e);

/* ---- building envelopes ---------------------------------------------------- */

/* Each returns a malloc'd Envelope (NULL when out of memory) for msg_free.
 * Strings and arrays are copied. */
Tlsweep__Envelope *msg_new_heartbeat(uint64_t unix_ms, uint64_t task_id, uint64_t rss_bytes);
Tlsweep__Envelope *msg_new_stop(Tlsweep__Stop__Reason reason);
Tlsweep__Envelope *msg_new_error(int code, const char *message, int fatal);
/* features is (n_ids, dim), row-major, complete (offset 0). */
Tlsweep__Envelope *msg_new_feature_chunk(uint64_t task_id, const char *backbone,
                                         const uint32_t *image_ids, size_t n_ids,
                                         const float *features, size_t dim, int last);
/* "hello", "stop", ...: for messages about unexpected envelopes */
const char *msg_body_name(const Tlsweep__Envelope *env);
void msg_free(Tlsweep__Envelope *env);

/* ---- chunking, without MPI (msg_chunk.c) ---------------------------------- */

typedef struct {
    uint32_t msg_id;   /* per sender, to tell one message's chunks from the next */
    uint32_t index;    /* 0 .. count-1 */
    uint32_t count;
    uint64_t total;    /* bytes of the whole packed Envelope */
} msg_chunk_header;

/* Chunks a message of total bytes takes when each MPI message carries at
 * most limit bytes (header included); 0 when limit leaves no room. */
uint32_t msg_chunk_count(uint64_t total, size_t limit);
void msg_chunk_header_encode(const msg_chunk_header *h, unsigned char out[MSG_CHUNK_HEADER_SIZE]);
/* Decodes and checks the header of an n-byte chunk (header + payload):
 * magic, index < count, 0 < total <= MSG_MAX_MESSAGE, a non-empty payload. */
int msg_chunk_header_decode(const unsigned char *chunk, size_t n, msg_chunk_header *h,
                            tl_err *e);

/* Reassembles one message from its chunks, which must come in order. All
 * chunks but the last carry the same payload size p, the last the rest:
 * (count-1)*p < total <= count*p, checked at chunk 0; p is at least
 * MSG_CHUNK_LIMIT_MIN - MSG_CHUNK_HEADER_SIZE when count > 1. The buffer
 * starts at chunk 0's size and doubles as bytes come (at most total), so a
 * header that lies about total cannot make the receiver allocate it. */
typedef struct {
    msg_chunk_header first;
    uint32_t next;        /* index expected next */
    uint64_t piece;       /* payload bytes of every chunk but the last */
    uint64_t have;
    uint64_t cap;         /* bytes allocated: grows with `have`, up to total */
    unsigned char *buf;   /* filled up to `have`; total bytes when done */
} msg_assembly;

void msg_assembly_init(msg_assembly *a);
/* Adds an n-byte chunk from rank `from` (for messages). *done = 1 when the
 * message is complete: a->buf holds a->first.total bytes. */
int msg_assembly_add(msg_assembly *a, const unsigned char *chunk, size_t n, int from,
                     int *done, tl_err *e);
void msg_assembly_free(msg_assembly *a);

#endif
