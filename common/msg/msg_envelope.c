/* Building, checking and freeing Envelopes. Everything here is malloc'd the
 * way protobuf-c's unpack allocates, so that one free (free_unpacked) fits
 * both what we build and what we receive. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "common/msg/msg.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TLSWEEP_VERSION
#define TLSWEEP_VERSION "unknown"
#endif

void msg_free(Tlsweep__Envelope *env)
{
    if (env)
        tlsweep__envelope__free_unpacked(env, NULL);
}

static Tlsweep__Envelope *new_envelope(void)
{
    Tlsweep__Envelope *env = malloc(sizeof *env);
    if (env)
        tlsweep__envelope__init(env);
    return env;
}

/* a malloc'd copy, or the shared empty string protobuf-c never frees */
static char *copy_string(const char *s, int *oom)
{
    if (!s || !*s)
        return (char *)protobuf_c_empty_string;
    char *c = strdup(s);
    if (!c)
        *oom = 1;
    return c ? c : (char *)protobuf_c_empty_string;
}

const char *msg_body_name(const Tlsweep__Envelope *env)
{
    switch (env->body_case) {
    case TLSWEEP__ENVELOPE__BODY_HELLO: return "hello";
    case TLSWEEP__ENVELOPE__BODY_TASK: return "task";
    case TLSWEEP__ENVELOPE__BODY_PROGRESS: return "progress";
    case TLSWEEP__ENVELOPE__BODY_EPOCH_REPORT: return "epoch_report";
    case TLSWEEP__ENVELOPE__BODY_TRIAL_RESULT: return "trial_result";
    case TLSWEEP__ENVELOPE__BODY_CHECKPOINT: return "checkpoint";
    case TLSWEEP__ENVELOPE__BODY_FEATURE_CHUNK: return "feature_chunk";
    case TLSWEEP__ENVELOPE__BODY_HEARTBEAT: return "heartbeat";
    case TLSWEEP__ENVELOPE__BODY_STOP: return "stop";
    case TLSWEEP__ENVELOPE__BODY_ERROR: return "error";
    case TLSWEEP__ENVELOPE__BODY_SETUP: return "setup";
    case TLSWEEP__ENVELOPE__BODY__NOT_SET: return "empty envelope";
    default: return "unknown body";
    }
}

/* ---- Hello ------------------------------------------------------------------ */

int msg_new_hello(int rank, Tlsweep__Envelope **out, tl_err *e)
{
    *out = NULL;
    Tlsweep__Envelope *env = new_envelope();
    Tlsweep__Hello *h = malloc(sizeof *h);
    if (!env || !h) {
        free(env);
        free(h);
        return tl_errf(e, TL_ENOMEM, "hello: out of memory");
    }
    tlsweep__hello__init(h);
    env->from_rank = rank;
    env->body_case = TLSWEEP__ENVELOPE__BODY_HELLO;
    env->hello = h;
    h->protocol_version = TLSWEEP__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
    h->rank = rank;

    char host[256];
    if (gethostname(host, sizeof host) != 0)
        strcpy(host, "?");
    host[sizeof host - 1] = '\0';
    int oom = 0;
    h->host = copy_string(host, &oom);
    h->tlsweep_version = copy_string(TLSWEEP_VERSION, &oom);

    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        h->cores = (uint32_t)CPU_COUNT(&set);
    else {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        h->cores = n > 0 ? (uint32_t)n : 1;
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0)
        h->memory_bytes = (uint64_t)pages * (uint64_t)page;
    if (oom) {
        msg_free(env);
        return tl_errf(e, TL_ENOMEM, "hello: out of memory");
    }
    *out = env;
    return 0;
}

int msg_hello_check(const Tlsweep__Envelope *env, tl_err *e)
{
    if (!env || env->body_case != TLSWEEP__ENVELOPE__BODY_HELLO || !env->hello)
        return tl_errf(e, TL_EINVAL, "rank %d: first message is %s, expected hello",
                       env ? (int)env->from_rank : -1, env ? msg_body_name(env) : "missing");
    const Tlsweep__Hello *h = env->hello;
    if (h->protocol_version != TLSWEEP__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT)
        return tl_errf(e, TL_EINVAL,
                       "rank %d (host %s, tlsweep %s) speaks protocol version %u, this "
                       "coordinator speaks %d: run the same tlsweep build on every rank",
                       (int)h->rank, h->host && *h->host ? h->host : "?",
                       h->tlsweep_version && *h->tlsweep_version ? h->tlsweep_version : "?",
                       (unsigned)h->protocol_version,
                       TLSWEEP__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
    return 0;
}

/* ---- small bodies ------------------------------------------------------------ */

Tlsweep__Envelope *msg_new_heartbeat(uint64_t unix_ms, uint64_t task_id, uint64_t rss_bytes)
{
    Tlsweep__Envelope *env = new_envelope();
    Tlsweep__Heartbeat *b = malloc(sizeof *b);
    if (!env || !b) {
        free(env);
        free(b);
        return NULL;
    }
    tlsweep__heartbeat__init(b);
    b->unix_ms = unix_ms;
    b->task_id = task_id;
    b->rss_bytes = rss_bytes;
    env->body_case = TLSWEEP__ENVELOPE__BODY_HEARTBEAT;
    env->heartbeat = b;
    return env;
}

Tlsweep__Envelope *msg_new_stop(Tlsweep__Stop__Reason reason)
{
    Tlsweep__Envelope *env = new_envelope();
    Tlsweep__Stop *b = malloc(sizeof *b);
    if (!env || !b) {
        free(env);
        free(b);
        return NULL;
    }
    tlsweep__stop__init(b);
    b->reason = reason;
    env->body_case = TLSWEEP__ENVELOPE__BODY_STOP;
    env->stop = b;
    return env;
}

Tlsweep__Envelope *msg_new_error(int code, const char *message, int fatal)
{
    Tlsweep__Envelope *env = new_envelope();
    Tlsweep__Error *b = malloc(sizeof *b);
    if (!env || !b) {
        free(env);
        free(b);
        return NULL;
    }
    tlsweep__error__init(b);
    env->body_case = TLSWEEP__ENVELOPE__BODY_ERROR;
    env->error = b;
    b->code = code;
    b->fatal = fatal != 0;
    int oom = 0;
    b->message = copy_string(message, &oom);
    if (oom) {
        msg_free(env);
        return NULL;
    }
    return env;
}

Tlsweep__Envelope *msg_new_feature_chunk(uint64_t task_id, const char *backbone,
                                         const uint32_t *image_ids, size_t n_ids,
                                         const float *features, size_t dim, int last)
{
    if (dim && n_ids > SIZE_MAX / sizeof(float) / dim)
        return NULL;
    Tlsweep__Envelope *env = new_envelope();
    Tlsweep__FeatureChunk *b = malloc(sizeof *b);
    Tlsweep__Tensor *t = malloc(sizeof *t);
    int64_t *shape = malloc(2 * sizeof *shape);
    if (!env || !b || !t || !shape) {
        free(env);
        free(b);
        free(t);
        free(shape);
        return NULL;
    }
    tlsweep__feature_chunk__init(b);
    tlsweep__tensor__init(t);
    env->body_case = TLSWEEP__ENVELOPE__BODY_FEATURE_CHUNK;
    env->feature_chunk = b;
    b->task_id = task_id;
    b->last = last != 0;
    b->features = t;
    shape[0] = (int64_t)n_ids;
    shape[1] = (int64_t)dim;
    t->shape = shape;
    t->n_shape = 2;

    int oom = 0;
    b->backbone = copy_string(backbone, &oom);
    t->name = copy_string("features", &oom);
    if (n_ids) {
        b->image_ids = malloc(n_ids * sizeof *b->image_ids);
        if (b->image_ids) {
            memcpy(b->image_ids, image_ids, n_ids * sizeof *b->image_ids);
            b->n_image_ids = n_ids;
        } else
            oom = 1;
    }
    size_t n = n_ids * dim;
    if (n) {
        t->data = malloc(n * sizeof *t->data);
        if (t->data) {
            memcpy(t->data, features, n * sizeof *t->data);
            t->n_data = n;
        } else
            oom = 1;
    }
    if (oom) {
        msg_free(env);
        return NULL;
    }
    return env;
}
