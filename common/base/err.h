/* Error reporting for library code: functions return 0 or a negative TL_E*
 * code and fill a tl_err with one line naming the file/key/tensor and what
 * is wrong. Only main() prints and exits. */
#ifndef TLSWEEP_ERR_H
#define TLSWEEP_ERR_H

#include <stddef.h>

enum {
    TL_OK = 0,
    TL_EINVAL = -1,   /* bad argument or bad input data */
    TL_ENOMEM = -2,
    TL_EIO = -3,      /* open/read/write failed */
    TL_EFORMAT = -4,  /* file is not what it claims to be */
    TL_ESHAPE = -5,   /* tensor shape does not fit */
    TL_ENOTFOUND = -6,
    TL_ESTOPPED = -7, /* stopped on request (a signal, a Stop message): resumable */
    TL_ETIMEDOUT = -8, /* a peer fell silent part way (a message's chunks stopped coming) */
};

typedef struct {
    int code;
    char msg[512];
} tl_err;

/* Fills e (may be NULL) and returns code. */
int tl_errf(tl_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *tl_strerror(int code);

#endif
