/* One link to the other ranks, over MPI or inside one process, so that the
 * coordinator and the worker run the same code in an MPI run and in a
 * single process (two threads).
 *
 * Both transports carry the same bytes: an Envelope is packed with
 * protobuf-c on send and unpacked on receive; nothing is shared between the
 * two ends but those bytes. Every Envelope sent through a link gets the
 * link's rank as from_rank and the next number of this sender's seq
 * (1, 2, ...), whatever the caller put there.
 *
 *   MPI    peers are the ranks of comm, through msg_send / msg_poll
 *          (common/msg/msg.h): chunking, tags and the rules on who sends bulk
 *          data are that layer's. The link does not free comm.
 *   local  n ends in one process (a pair: n = 2): a FIFO of packed buffers
 *          per end (mutex + condition variable), unbounded. The coordinator
 *          end is rank 0, the workers' ranks 1..n-1, size n on all. Each end
 *          is used by one thread; different ends by different threads.
 *
 * Functions return 0 or a negative TL_E* code and fill the tl_err (may be
 * NULL). Received Envelopes are freed with msg_free. */
#ifndef TLSWEEP_MSG_LINK_H
#define TLSWEEP_MSG_LINK_H

#include <mpi.h>

#include "common/base/err.h"
#include "common/msg/msg.h"

typedef struct msg_link msg_link;

/* Over MPI: peers are the ranks of comm (give it a dup of MPI_COMM_WORLD). */
int msg_link_mpi(msg_link **l, MPI_Comm comm, tl_err *e);
/* In one process: on `coord` the other end is rank 1, on `worker` rank 0. */
int msg_link_local_pair(msg_link **coord, msg_link **worker, tl_err *e);
/* In one process, n >= 2 ends: ends[r] is rank r of a link of size n, so a
 * coordinator can drive several worker threads. */
int msg_link_local(msg_link **ends, int n, tl_err *e);

int msg_link_rank(const msg_link *l);
int msg_link_size(const msg_link *l);

/* Sets from_rank and seq on the packed copy; env itself is not changed.
 * TL_EINVAL for a dest that is not another rank of the link. */
int msg_link_send(msg_link *l, int dest, const Tlsweep__Envelope *env, tl_err *e);
/* Non-blocking: *got = 0 and *env = NULL when nothing waits; else *got = 1,
 * *env (free with msg_free) and *from (may be NULL). */
int msg_link_poll(msg_link *l, Tlsweep__Envelope **env, int *from, int *got, tl_err *e);
/* Blocks without burning a core: MPI polls with a sleep that grows from
 * 50 us to 5 ms while idle (Open MPI's blocking receive spins); local waits
 * on the condition variable. timeout_ms < 0 waits forever, 0 polls once. On
 * timeout returns 0 with *env = NULL. */
int msg_link_recv(msg_link *l, Tlsweep__Envelope **env, int *from, int timeout_ms, tl_err *e);

/* Local links: fn(ctx) is called from the sending thread after every
 * message queued for this end (the coordinator passes uv_async_send). Set it
 * before the other end starts sending; fn = NULL turns it off. MPI links:
 * never called. */
void msg_link_set_notify(msg_link *l, void (*fn)(void *ctx), void *ctx);

/* Frees this end; a local link's queues go when all its ends are freed. Any
 * messages still queued are dropped. NULL is fine. */
void msg_link_free(msg_link *l);

#endif
