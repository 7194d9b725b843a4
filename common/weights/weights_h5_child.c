/* weights_h5_read: libhdf5 runs in a child process and sends the tensors
 * back through a pipe (frames in weights_h5_int.h). libhdf5 is not safe on
 * damaged files; a crash or a hang there now costs the child, and this
 * process turns it into one line naming the file. Every frame is checked
 * against what it may hold before anything is allocated for it. */
#include "common/weights/weights_h5_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "common/base/strset.h"

/* Longest name in a frame (the walk's names are at most 1 KiB). */
#define NAME_MAX_LEN 4096

/* ---- the child's side: frames out ------------------------------------------------ */

static int write_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static unsigned char *put_le(unsigned char *b, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    return b + bytes;
}

int weights_h5__put_tensor(int fd, const char *layer, const char *wname, const char *tname,
                           int ndim, const int64_t *shape, const float *data, size_t n)
{
    size_t lt = strlen(tname), ll = strlen(layer), lw = strlen(wname);
    if (ndim < 0 || ndim > TSET_MAX_DIMS || lt > NAME_MAX_LEN || ll > NAME_MAX_LEN ||
        lw > NAME_MAX_LEN)
        return -1;
    unsigned char h[8 + 8 * TSET_MAX_DIMS], *p = h;
    *p++ = WEIGHTS_H5__TENSOR;
    *p++ = (unsigned char)ndim;
    p = put_le(p, lt, 2);
    p = put_le(p, ll, 2);
    p = put_le(p, lw, 2);
    for (int i = 0; i < ndim; i++)
        p = put_le(p, (uint64_t)shape[i], 8);
    if (write_all(fd, h, (size_t)(p - h)) || write_all(fd, tname, lt) ||
        write_all(fd, layer, ll) || write_all(fd, wname, lw))
        return -1;
    /* values in this machine's order: parent and child are one program */
    return write_all(fd, data, n * sizeof *data);
}

int weights_h5__put_error(int fd, int code, const char *msg)
{
    size_t n = strnlen(msg, sizeof(((tl_err *)0)->msg) - 1);
    unsigned char h[7], *p = h;
    *p++ = WEIGHTS_H5__ERROR;
    p = put_le(p, (uint32_t)code, 4);
    put_le(p, n, 2);
    return write_all(fd, h, sizeof h) || write_all(fd, msg, n) ? -1 : 0;
}

int weights_h5__put_done(int fd, uint32_t count)
{
    unsigned char h[5];
    h[0] = WEIGHTS_H5__DONE;
    put_le(h + 1, count, 4);
    return write_all(fd, h, sizeof h);
}

typedef struct {
    int fd;
    uint32_t count;
    int broken;
} child_sink;

static int to_pipe(void *u, const char *layer, const char *wname, const char *tname, int ndim,
                   const int64_t *shape, const float *data, size_t n)
{
    child_sink *s = u;
    if (weights_h5__put_tensor(s->fd, layer, wname, tname, ndim, shape, data, n)) {
        s->broken = 1;
        return TL_EIO;
    }
    s->count++;
    return 0;
}

int weights_h5__child_main(int fd, const char *path, uint64_t file_size)
{
    child_sink s = {fd, 0, 0};
    tl_err e = {0, ""};
    int rc = weights_h5__walk(path, file_size, to_pipe, &s, &e);
    if (s.broken)
        return 1;
    if (rc && !e.msg[0])
        tl_errf(&e, rc, "%s: cannot read it (%s)", path, tl_strerror(rc));
    int w = rc ? weights_h5__put_error(fd, rc, e.msg) : weights_h5__put_done(fd, s.count);
    return w ? 1 : 0;
}

/* ---- the parent's side: frames in ------------------------------------------------- */

typedef struct {
    int fd, timeout_ms;
    int timed_out, eof;
    const char *why;   /* what was wrong with the reply, for the message */
} reader;

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Exactly n bytes, each read within timeout_ms of the one before; -1 on
 * the end of the stream (eof), silence (timed_out) or a read error. */
static int get(reader *r, void *p, size_t n)
{
    char *b = p;
    int64_t deadline = now_ms() + r->timeout_ms;
    while (n) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            r->timed_out = 1;
            return -1;
        }
        struct pollfd pf = {r->fd, POLLIN, 0};
        int k = poll(&pf, 1, (int)left);
        if (k < 0 && errno == EINTR)
            continue;
        if (k == 0) {
            r->timed_out = 1;
            return -1;
        }
        if (k < 0)
            return -1;
        ssize_t got = read(r->fd, b, n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            r->eof = got == 0;
            return -1;
        }
        b += got;
        n -= (size_t)got;
        deadline = now_ms() + r->timeout_ms;
    }
    return 0;
}

static uint64_t get_le(const unsigned char *b, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

/* get_tensor's and get_frames's answer for a bad or cut reply (TL_E*
 * codes are negative). */
enum { BAD_REPLY = 1 };

/* A name of len bytes into buf (NAME_MAX_LEN + 1): no NUL inside. */
static int get_name(reader *r, char *buf, size_t len)
{
    if (get(r, buf, len))
        return BAD_REPLY;
    buf[len] = 0;
    if (memchr(buf, 0, len)) {
        r->why = "a name with a NUL byte";
        return BAD_REPLY;
    }
    return 0;
}

typedef struct {
    const char *path;
    tset *out;
    tl_strset names;     /* every name in out */
    uint64_t bytes;      /* float32 bytes received */
    uint32_t count;
    tl_err *e;
} receiver;

/* One 'T' frame after its tag: 0, a TL_E* code with e filled (a refused
 * tensor), or BAD_REPLY with r->why/eof/timed_out (a bad or cut reply). */
static int get_tensor(reader *r, receiver *v)
{
    unsigned char h[7 + 8 * TSET_MAX_DIMS];
    if (get(r, h, 7))
        return BAD_REPLY;
    int ndim = h[0];
    size_t lt = (size_t)get_le(h + 1, 2), ll = (size_t)get_le(h + 3, 2),
           lw = (size_t)get_le(h + 5, 2);
    if (ndim > TSET_MAX_DIMS || lt == 0 || lt > NAME_MAX_LEN || ll > NAME_MAX_LEN ||
        lw > NAME_MAX_LEN) {
        r->why = "a tensor header out of range";
        return BAD_REPLY;
    }
    if (get(r, h + 7, 8 * (size_t)ndim))
        return BAD_REPLY;
    int64_t shape[TSET_MAX_DIMS];
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        uint64_t d = get_le(h + 7 + 8 * i, 8);
        /* n * 4 stays within what is left of WEIGHTS_H5_MAX_BYTES */
        if (d > (uint64_t)INT64_MAX || (d && n > (WEIGHTS_H5_MAX_BYTES - v->bytes) / 4 / d)) {
            r->why = "a tensor past the size limit";
            return BAD_REPLY;
        }
        shape[i] = (int64_t)d;
        n *= d;
    }
    if (n * 4 > WEIGHTS_H5_MAX_BYTES - v->bytes) {
        r->why = "a tensor past the size limit";
        return BAD_REPLY;
    }
    char tname[NAME_MAX_LEN + 1], layer[NAME_MAX_LEN + 1], wname[NAME_MAX_LEN + 1];
    if (get_name(r, tname, lt) || get_name(r, layer, ll) || get_name(r, wname, lw))
        return BAD_REPLY;
    float *data = malloc(n ? (size_t)n * sizeof *data : sizeof *data);
    if (!data)
        return tl_errf(v->e, TL_ENOMEM, "%s: layer '%s': dataset '%s': out of memory", v->path,
                       layer, wname);
    if (get(r, data, (size_t)n * sizeof *data)) {
        free(data);
        return BAD_REPLY;
    }
    for (uint64_t k = 0; k < n; k++)
        if (!isfinite(data[k])) {
            free(data);
            r->why = "a non-finite value that the reader had let through";
            return BAD_REPLY;
        }
    int added = tl_strset_add(&v->names, tname);
    if (added <= 0) {
        free(data);
        if (added < 0)
            return tl_errf(v->e, TL_ENOMEM, "%s: layer '%s': dataset '%s': out of memory",
                           v->path, layer, wname);
        return tl_errf(v->e, TL_EINVAL, "%s: layer '%s': dataset '%s': tensor '%s' appears twice",
                       v->path, layer, wname, tname);
    }
    tl_err sub = {0, ""};
    int rc = tset_push_owned(v->out, tname, ndim, shape, data, &sub);
    if (rc)
        return tl_errf(v->e, rc, "%s: layer '%s': dataset '%s': %s", v->path, layer, wname,
                       sub.msg);
    v->bytes += n * 4;
    v->count++;
    return 0;
}

/* Frames until 'D' or 'E' and the end of the stream. 0 (all read), a
 * TL_E* code with e filled (the child's error, or a refused tensor), or
 * BAD_REPLY (r says how). */
static int get_frames(reader *r, receiver *v)
{
    for (;;) {
        unsigned char tag;
        if (get(r, &tag, 1)) {
            if (r->eof)
                r->why = "the reply ended before its last frame";
            return BAD_REPLY;
        }
        int rc;
        if (tag == WEIGHTS_H5__TENSOR) {
            if ((rc = get_tensor(r, v)))
                return rc;
            continue;
        }
        unsigned char h[6];
        if (tag == WEIGHTS_H5__DONE) {
            if (get(r, h, 4))
                return BAD_REPLY;
            if (get_le(h, 4) != v->count) {
                r->why = "a tensor count that does not match the tensors sent";
                return BAD_REPLY;
            }
            rc = 0;
        } else if (tag == WEIGHTS_H5__ERROR) {
            if (get(r, h, 6))
                return BAD_REPLY;
            int code = (int)(int32_t)get_le(h, 4);
            size_t len = (size_t)get_le(h + 4, 2);
            char msg[sizeof v->e->msg];
            if (code >= 0 || code < -63 || len == 0 || len >= sizeof msg) {
                r->why = "an error frame out of range";
                return BAD_REPLY;
            }
            if (get(r, msg, len))
                return BAD_REPLY;
            msg[len] = 0;
            rc = tl_errf(v->e, code, "%s", msg);
        } else {
            r->why = "an unknown frame";
            return BAD_REPLY;
        }
        if (get(r, &tag, 1) == 0 || !r->eof) {
            if (!r->timed_out)
                r->why = "bytes after its last frame";
            return BAD_REPLY;
        }
        return rc;
    }
}

/* Waits for the child (killing it first when kill_it), at most a few
 * seconds after it was killed or closed its end. The wait status, or -1
 * when there is none to be had (SIGCHLD ignored, say). */
static int reap(pid_t pid, int kill_it)
{
    if (kill_it)
        kill(pid, SIGKILL);
    int st;
    for (int i = 0; i < 500; i++) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            return st;
        if (w < 0 && errno != EINTR)
            return -1;
        if (i == 250)
            kill(pid, SIGKILL);   /* closed the pipe but will not exit */
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

/* Messages quote names from the file: keep them one line. */
static void one_line(tl_err *e)
{
    if (e)
        for (char *p = e->msg; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
}

static void child_run(int fd, const char *path, uint64_t size, weights_h5__child_fn child)
{
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);   /* no orphan left hanging in libhdf5 */
#endif
    /* the parent's handlers (Ctrl-C, Slurm's signals) are not the child's */
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], SIG_DFL);
    _exit(child(fd, path, size));
}

int weights_h5__read_isolated(const char *path, tset *out, weights_h5__child_fn child,
                              int timeout_ms, tl_err *e)
{
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tl_errf(e, TL_EIO, "%s: cannot open: %s", path, strerror(errno));
    int st_rc = fstat(fd, &sb);
    close(fd);
    if (st_rc != 0)
        return tl_errf(e, TL_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return tl_errf(e, TL_EIO, "%s: cannot open: not a regular file", path);

    int p[2];
    if (pipe(p) != 0)
        return tl_errf(e, TL_EIO, "%s: cannot start the process that reads it: pipe: %s", path,
                       strerror(errno));
    fcntl(p[0], F_SETFD, FD_CLOEXEC);
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(p[0]);
        close(p[1]);
        return tl_errf(e, TL_EIO, "%s: cannot start the process that reads it: fork: %s", path,
                       strerror(err));
    }
    if (pid == 0) {
        close(p[0]);
        child_run(p[1], path, (uint64_t)sb.st_size, child);
    }
    close(p[1]);

    size_t start = out->n;
    reader r = {p[0], timeout_ms, 0, 0, NULL};
    receiver v = {path, out, {0}, 0, 0, e};
    tl_strset_init(&v.names);
    int rc = 0;
    for (size_t i = 0; i < out->n && !rc; i++)
        if (tl_strset_add(&v.names, out->v[i].name) < 0)
            rc = tl_errf(e, TL_ENOMEM, "%s: out of memory", path);
    if (!rc)
        rc = get_frames(&r, &v);
    tl_strset_free(&v.names);
    close(p[0]);
    /* The child is killed unless it ended its stream (it then exits on its
     * own). Killed by a signal after the end of its stream, or by one other
     * than our SIGKILL, it crashed (or the OOM killer took it). A reply
     * refused on its content (a repeated name, a bound) is our decision: the
     * child, still writing into the closed pipe, may die of SIGPIPE
     * meanwhile, which is no crash of libhdf5. */
    int refused = rc != 0 && rc != BAD_REPLY;
    int st = reap(pid, rc != 0 || !r.eof);
    int crashed = !refused && st != -1 && WIFSIGNALED(st) &&
                  (r.eof || WTERMSIG(st) != SIGKILL);
    int status = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : 0;
    if (crashed)
        rc = tl_errf(e, TL_EIO,
                     "%s: libhdf5 crashed reading it (signal %d, %s): the file is damaged", path,
                     WTERMSIG(st), strsignal(WTERMSIG(st)));
    else if (refused)
        ; /* e has the line */
    else if (r.timed_out)
        rc = tl_errf(e, TL_EIO,
                     "%s: the process reading it with libhdf5 sent nothing for %g s and was "
                     "killed: the file may be damaged",
                     path, timeout_ms / 1000.0);
    else if (rc == BAD_REPLY && status != 0)
        rc = tl_errf(e, TL_EIO, "%s: the process reading it with libhdf5 exited with status %d",
                     path, status);
    else if (rc == BAD_REPLY)
        rc = tl_errf(e, TL_EIO, "%s: the process reading it with libhdf5 sent a bad reply (%s)",
                     path, r.why ? r.why : "a read error");
    else if (rc == 0 && status != 0)
        rc = tl_errf(e, TL_EIO, "%s: the process reading it with libhdf5 exited with status %d",
                     path, status);
    if (rc) {
        for (size_t i = start; i < out->n; i++) {
            free(out->v[i].name);
            free(out->v[i].data);
        }
        out->n = start;
        one_line(e);
    }
    return rc;
}

int weights_h5_read(const char *path, tset *out, tl_err *e)
{
    return weights_h5__read_isolated(path, out, weights_h5__child_main, WEIGHTS_H5_TIMEOUT_MS, e);
}
