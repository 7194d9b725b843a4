/* msg_link over MPI (msg_send / msg_poll) and over an in-memory pair of
 * queues of packed Envelopes. See msg_link.h. */
#include "common/msg/msg_link.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Sleep bounds while an MPI link waits for a message. */
#define IDLE_SLEEP_MIN_NS 50000L
#define IDLE_SLEEP_MAX_NS 5000000L

typedef struct queued {
    struct queued *next;
    int from;               /* the sender's rank */
    size_t n;
    unsigned char data[]; /* a packed Envelope */
} queued;

/* Messages for one end of a local pair. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* signalled when a message is queued */
    queued *head, *tail;
    void (*notify)(void *ctx);
    void *notify_ctx;
} local_queue;

typedef struct {
    int n;                  /* ends: rank 0 coordinates, 1..n-1 work */
    atomic_int ends;        /* ends not yet freed */
    local_queue to[];       /* to[r]: messages for the end of rank r */
} local_pair;

struct msg_link {
    int rank, size;
    uint64_t seq;           /* of the last Envelope this end sent */
    MPI_Comm comm;          /* MPI links */
    local_pair *pair;       /* local links, else NULL */
};

static int queue_init(local_queue *q)
{
    memset(q, 0, sizeof *q);
    pthread_condattr_t a;
    if (pthread_condattr_init(&a) != 0)
        return -1;
    /* timeouts measured on the clock that does not jump */
    int rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&q->cv, &a);
    pthread_condattr_destroy(&a);
    if (rc != 0)
        return -1;
    if (pthread_mutex_init(&q->mu, NULL) != 0) {
        pthread_cond_destroy(&q->cv);
        return -1;
    }
    return 0;
}

static void queue_destroy(local_queue *q)
{
    for (queued *m = q->head, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
}

int msg_link_mpi(msg_link **l, MPI_Comm comm, tl_err *e)
{
    *l = NULL;
    int rank, size;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &size) != MPI_SUCCESS)
        return tl_errf(e, TL_EINVAL, "message link: not a usable MPI communicator");
    msg_link *k = calloc(1, sizeof *k);
    if (!k)
        return tl_errf(e, TL_ENOMEM, "message link: out of memory");
    k->rank = rank;
    k->size = size;
    k->comm = comm;
    *l = k;
    return 0;
}

static void pair_free(local_pair *p, int queues)
{
    for (int r = 0; r < queues; r++)
        queue_destroy(&p->to[r]);
    free(p);
}

int msg_link_local(msg_link **ends, int n, tl_err *e)
{
    for (int r = 0; r < n; r++)
        ends[r] = NULL;
    if (n < 2)
        return tl_errf(e, TL_EINVAL, "local message link: %d ends, expected 2 or more", n);
    local_pair *p = calloc(1, sizeof *p + (size_t)n * sizeof p->to[0]);
    if (!p)
        return tl_errf(e, TL_ENOMEM, "local message link: out of memory");
    p->n = n;
    for (int r = 0; r < n; r++) {
        if (queue_init(&p->to[r]) != 0) {
            pair_free(p, r);
            return tl_errf(e, TL_ENOMEM, "local message link: cannot create a queue lock");
        }
    }
    for (int r = 0; r < n; r++) {
        if (!(ends[r] = calloc(1, sizeof *ends[r]))) {
            for (int k = 0; k < r; k++) {
                free(ends[k]);
                ends[k] = NULL;
            }
            pair_free(p, n);
            return tl_errf(e, TL_ENOMEM, "local message link: out of memory");
        }
        ends[r]->rank = r;
        ends[r]->size = n;
        ends[r]->comm = MPI_COMM_NULL;
        ends[r]->pair = p;
    }
    atomic_init(&p->ends, n);
    return 0;
}

int msg_link_local_pair(msg_link **coord, msg_link **worker, tl_err *e)
{
    msg_link *ends[2];
    int rc = msg_link_local(ends, 2, e);
    *coord = ends[0];
    *worker = ends[1];
    return rc;
}

int msg_link_rank(const msg_link *l)
{
    return l->rank;
}

int msg_link_size(const msg_link *l)
{
    return l->size;
}

static int local_send(msg_link *l, int dest, const Tlsweep__Envelope *env, tl_err *e)
{
    size_t n = tlsweep__envelope__get_packed_size(env);
    if (n > MSG_MAX_MESSAGE)
        return tl_errf(e, TL_EINVAL, "message to rank %d: %s of %zu bytes is over the %llu-byte "
                       "limit; split it into parts", dest, msg_body_name(env), n,
                       (unsigned long long)MSG_MAX_MESSAGE);
    queued *m = malloc(sizeof *m + (n ? n : 1));
    if (!m)
        return tl_errf(e, TL_ENOMEM, "message to rank %d: out of memory for %zu bytes", dest, n);
    m->next = NULL;
    m->from = l->rank;
    m->n = tlsweep__envelope__pack(env, m->data);

    local_queue *q = &l->pair->to[dest];
    pthread_mutex_lock(&q->mu);
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    void (*fn)(void *) = q->notify;
    void *ctx = q->notify_ctx;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    if (fn)
        fn(ctx);
    return 0;
}

int msg_link_send(msg_link *l, int dest, const Tlsweep__Envelope *env, tl_err *e)
{
    if (dest < 0 || dest >= l->size || dest == l->rank)
        return tl_errf(e, TL_EINVAL, "message from rank %d: destination rank %d is not another "
                       "rank of the link (size %d)", l->rank, dest, l->size);
    /* a shallow copy: pack reads the header fields from it, the body from env's */
    Tlsweep__Envelope out = *env;
    out.seq = l->seq + 1;
    out.from_rank = l->rank;
    int rc = l->pair ? local_send(l, dest, &out, e) : msg_send(l->comm, dest, &out, e);
    if (rc == 0)
        l->seq++;
    return rc;
}

/* Takes the oldest message off q (locked by the caller) and unpacks it. */
static int local_take(local_queue *q, Tlsweep__Envelope **env, int *from, tl_err *e)
{
    queued *m = q->head;
    q->head = m->next;
    if (!q->head)
        q->tail = NULL;
    int peer = m->from;
    if (from)
        *from = peer;
    *env = tlsweep__envelope__unpack(NULL, m->n, m->data);
    size_t n = m->n;
    free(m);
    if (!*env)
        return tl_errf(e, TL_EFORMAT, "message from rank %d: %zu bytes are not an Envelope",
                       peer, n);
    return 0;
}

static void deadline_after(struct timespec *t, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_sec += ms / 1000;
    t->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static int local_recv(msg_link *l, Tlsweep__Envelope **env, int *from, int timeout_ms,
                      tl_err *e)
{
    local_queue *q = &l->pair->to[l->rank];
    struct timespec deadline;
    if (timeout_ms > 0)
        deadline_after(&deadline, timeout_ms);
    pthread_mutex_lock(&q->mu);
    while (!q->head && timeout_ms != 0) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&q->cv, &q->mu);
        } else if (pthread_cond_timedwait(&q->cv, &q->mu, &deadline) == ETIMEDOUT) {
            break;
        }
    }
    int rc = q->head ? local_take(q, env, from, e) : 0;
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int msg_link_poll(msg_link *l, Tlsweep__Envelope **env, int *from, int *got, tl_err *e)
{
    *env = NULL;
    *got = 0;
    if (!l->pair)
        return msg_poll(l->comm, env, from, got, e);
    int rc = local_recv(l, env, from, 0, e);
    *got = *env != NULL;
    return rc;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int mpi_recv(msg_link *l, Tlsweep__Envelope **env, int *from, int timeout_ms, tl_err *e)
{
    double deadline = now_s() + timeout_ms * 1e-3;
    long sleep_ns = IDLE_SLEEP_MIN_NS;
    for (;;) {
        int got = 0;
        int rc = msg_poll(l->comm, env, from, &got, e);
        if (rc < 0 || got)
            return rc;
        double left = deadline - now_s();
        if (timeout_ms >= 0 && left <= 0)
            return 0;
        long ns = sleep_ns;
        if (timeout_ms >= 0 && left * 1e9 < (double)ns)
            ns = (long)(left * 1e9) + 1;
        nanosleep(&(struct timespec){ns / 1000000000L, ns % 1000000000L}, NULL);
        sleep_ns = sleep_ns * 2 > IDLE_SLEEP_MAX_NS ? IDLE_SLEEP_MAX_NS : sleep_ns * 2;
    }
}

int msg_link_recv(msg_link *l, Tlsweep__Envelope **env, int *from, int timeout_ms, tl_err *e)
{
    *env = NULL;
    return l->pair ? local_recv(l, env, from, timeout_ms, e)
                   : mpi_recv(l, env, from, timeout_ms, e);
}

void msg_link_set_notify(msg_link *l, void (*fn)(void *ctx), void *ctx)
{
    if (!l->pair)
        return;
    local_queue *q = &l->pair->to[l->rank];
    pthread_mutex_lock(&q->mu);
    q->notify = fn;
    q->notify_ctx = ctx;
    pthread_mutex_unlock(&q->mu);
}

void msg_link_free(msg_link *l)
{
    if (!l)
        return;
    local_pair *p = l->pair;
    free(l);
    if (p && atomic_fetch_sub(&p->ends, 1) == 1)
        pair_free(p, p->n);
}
