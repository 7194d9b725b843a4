/* The journal (common/store/journal.h) as a rerun meets it: read-only by
 * `tlsweep status` (journal_scan), then opened for appending, which cuts a
 * bad tail, and each record unpacked as the coordinator's replay does.
 * Every record's CRC-32 is fixed up first, as far as the lengths lead, so
 * that mutations reach the payloads (a bad CRC is the unit tests' case). */
#include "common/store/journal.h"
#include "fuzz_util.h"
#include "tlsweep.pb-c.h"

static int unpack_record(void *ctx, const void *payload, size_t len)
{
    (void)ctx;
    Tlsweep__JournalRecord *r = tlsweep__journal_record__unpack(NULL, len, payload);
    if (r)
        tlsweep__journal_record__free_unpacked(r, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    fuzz_fix_journal_crcs(buf, size);
    int fd = fuzz_memfd(buf, size, path, sizeof path);
    free(buf);
    tl_err e;
    size_t ignored = 0, dropped = 0;
    journal_scan(path, 0, unpack_record, NULL, &ignored, &e);
    journal *j = NULL;
    /* damage in the middle is refused; repair keeps the whole prefix */
    int rc = journal_open(&j, path, 0, unpack_record, NULL, &dropped, &e);
    if (rc != 0)
        rc = journal_open(&j, path, JOURNAL_REPAIR, unpack_record, NULL, &dropped, &e);
    if (rc == 0) {
        /* what is left must be whole: a second scan ignores nothing */
        static const char rec[] = "fuzz";
        if (journal_append(j, rec, sizeof rec, &e) == 0 && journal_close(j, &e) == 0) {
            if (journal_scan(path, JOURNAL_STRICT, NULL, NULL, &ignored, &e) != 0 || ignored != 0)
                abort();
        }
    }
    close(fd);
    return 0;
}
