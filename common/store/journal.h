/* An append-only journal: a file of opaque records (the caller packs them,
 * typically as protobuf), each checksummed so that a crash mid-append is
 * noticed and cut off on the next open.
 *
 * Layout, integers little-endian:
 *   file header (16 bytes): "TLSWEEPJ" | u32 format version (1) | u32 reserved (0)
 *   then records:           u32 payload length | u32 CRC-32 (zlib) of the payload | payload
 *
 *   journal *j;
 *   size_t dropped;
 *   if ((rc = journal_open(&j, path, 0, replay_one, &state, &dropped, e)))
 *       return rc;
 *   if (dropped) ... log it: a torn tail was cut ...
 *   rc = journal_append(j, buf, len, e);     // one writev() of header + payload
 *   rc = journal_sync(j, e);                 // when the record must survive a crash
 *   rc = journal_close(j, e);
 *
 * A record is durable only after journal_sync (or journal_close).
 *
 * Bad records: the first record whose header is short, whose length is over
 * JOURNAL_MAX_RECORD or runs past the end of the file, or whose CRC does not
 * match ends the journal; records after it are never replayed, because once
 * one length field is not to be trusted there is no way to know where the
 * next record really starts. What journal_open does with the bytes from
 * there depends on what follows:
 *   - nothing whole (a torn tail: a crash tears at most the record being
 *     appended): the file is truncated there and *dropped says how much;
 *   - a whole checksummed record somewhere after it (damage in the middle:
 *     the storage, not a crash): refused, TL_EFORMAT with one line giving
 *     the byte offset and the number of good records before it, unless
 *     flags has JOURNAL_REPAIR, which truncates there as for a torn tail
 *     (the records after the damage are lost; the caller redoes them).
 *
 * Only one writer: journal_open takes an exclusive flock on the file and
 * refuses (TL_EIO) while another open journal holds it (after waiting about
 * a second, in which a journal_lock_held probe lets go). journal_scan takes
 * no lock and never writes, so a reader may follow a live journal.
 */
#ifndef TLSWEEP_JOURNAL_H
#define TLSWEEP_JOURNAL_H

#include <stddef.h>

#include "common/base/err.h"

#define JOURNAL_MAGIC "TLSWEEPJ"
#define JOURNAL_FORMAT_VERSION 1u
#define JOURNAL_HEADER_SIZE 16u
#define JOURNAL_RECORD_HEADER_SIZE 8u
#define JOURNAL_MAX_RECORD (64u << 20) /* 64 MiB of payload */

typedef struct journal journal;

/* Called once per record, in file order. payload is valid only during the
 * call (len may be 0). A nonzero return stops the replay, and the function
 * replaying returns that value unchanged without touching e: the callback
 * reports its own error. */
typedef int (*journal_cb)(void *ctx, const void *payload, size_t len);

/* journal_open's flags: cut damage in the middle too (see above) */
#define JOURNAL_REPAIR 1u
/* journal_scan's flags: damage in the middle is refused as journal_open
 * refuses it (TL_EFORMAT, the same line), after cb saw the records before */
#define JOURNAL_STRICT 2u

/* Opens path for appending, creating it (mode 0644, not its directory) when
 * missing. Existing records are replayed through cb (may be NULL) before it
 * returns. A torn tail (and, with JOURNAL_REPAIR, damage in the middle) is
 * cut off: the file is truncated to the end of the last good record
 * (durably) and *dropped (may be NULL) gets the bytes removed, else 0.
 * Damage in the middle without JOURNAL_REPAIR is TL_EFORMAT; cb has then
 * seen the records before it. A file that is not a journal or has another
 * version is TL_EFORMAT naming path, and is left as it was. A file shorter
 * than the header whose bytes are the start of one (a crash while creating
 * it) is started afresh and counts as dropped. On any failure *j is NULL
 * and nothing is truncated. */
int journal_open(journal **j, const char *path, unsigned flags, journal_cb cb, void *ctx,
                 size_t *dropped, tl_err *e);

/* Appends one record with a single writev() (O_APPEND). len must be at most
 * JOURNAL_MAX_RECORD (TL_EINVAL). If the write fails partway, the partial
 * record is truncated away; if even that fails the journal refuses every
 * later append (TL_EIO) so that no record lands behind a torn one. */
int journal_append(journal *j, const void *payload, size_t len, tl_err *e);

/* fdatasync: every appended record survives a crash once this returns 0. */
int journal_sync(journal *j, tl_err *e);

/* Syncs, closes and frees j (NULL is fine). Returns the first error; j is
 * freed regardless. */
int journal_close(journal *j, tl_err *e);

/* Replays path through cb read-only: no lock, no truncation, no creation.
 * Stops at the first bad record, as journal_open would cut there, and sets
 * *ignored (may be NULL) to the bytes after the last good record: quietly
 * for a torn tail, and for damage in the middle too unless flags has
 * JOURNAL_STRICT. A missing file is TL_EIO; a bad header TL_EFORMAT, both
 * naming path. */
int journal_scan(const char *path, unsigned flags, journal_cb cb, void *ctx, size_t *ignored,
                 tl_err *e);

/* Whether a writer holds path's lock (an open journal, in this process or
 * another on this machine): 1 held, 0 free, -1 with e set when path cannot
 * be opened or tested. Probes with a shared lock released at once: a
 * writer opening meanwhile waits it out instead of failing. flock is
 * reliable only between processes of one machine. */
int journal_lock_held(const char *path, tl_err *e);

#endif
