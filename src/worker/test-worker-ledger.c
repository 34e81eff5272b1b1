/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests of the worker's ledger of unstored events on a real file: held
 * counts cleared when stored, held and lost records a next opener finds
 * (and a cleared one it does not), the file's size fixed at open, a slot
 * that is not a record, a full ledger, and the lock against a second
 * worker with the same file. */

#include <fcntl.h>
#include <sys/stat.h>

#include "tests.h"
#include "worker-ledger.h"

#define SLOT_SIZE 512

static char dir[] = "/tmp/test-worker-ledger.XXXXXX";
static char path[sizeof(dir) + 16];

static LedgerEntry entry(const char *id, uint64_t count, const char *reason) {
        LedgerEntry e = { .count = count, .since = 1234567 };

        (void) snprintf(e.task_id, sizeof(e.task_id), "%s", id);
        (void) snprintf(e.reason, sizeof(e.reason), "%s", reason);
        return e;
}

#define ID_A "0b6a1c3e-2f40-4c55-9a1e-5d6f7a8b9c0d"
#define ID_B "1c7b2d4f-3a51-4d66-8b2f-6e7a8b9c0d1e"
#define ID_C "2d8c3e5a-4b62-4e77-9c3a-7f8b9c0d1e2f"

static off_t file_size(void) {
        struct stat st;

        assert_se(stat(path, &st) == 0);
        return st.st_size;
}

static void test_hold_release_lost(void) {
        _cleanup_(ledger_freep) Ledger *l = NULL;
        Ledger *second = NULL;
        LedgerEntry a = entry(ID_A, 3, "the store could not be written: No space left on device");
        LedgerEntry b = entry(ID_B, 5, "the store could not be written: Input/output error");
        LedgerEntry c = entry(ID_C, 2, "the task's lease was lost: another worker owns it now");

        assert_se(ledger_open(path, 4, &l) == 0);
        /* Written out in full at once, so later writes need no new space. */
        assert_se(file_size() == 4 * SLOT_SIZE);
        assert_se(ledger_n_lost(l) == 0);

        /* A second worker with the same file is refused. */
        assert_se(ledger_open(path, 4, &second) < 0);
        assert_se(!second);

        assert_se(ledger_hold(l, &a) == 0);
        a.count = 4;                    /* the same task: its slot again */
        assert_se(ledger_hold(l, &a) == 0);
        assert_se(ledger_hold(l, &b) == 0);
        assert_se(ledger_lost(l, &c) == 0);
        assert_se(ledger_lost(l, &c) == 0); /* the same task's losses add up */
        assert_se(ledger_n_lost(l) == 1);
        assert_se(ledger_lost_entry(l, 0)->count == 4);
        assert_se(file_size() == 4 * SLOT_SIZE);

        /* B's events were stored after all: nothing of it is left. */
        ledger_release(l, ID_B);
        b.count = 0;
        assert_se(ledger_hold(l, &b) == 0);     /* count 0 clears too */

        /* Every slot taken. */
        assert_se(ledger_hold(l, &b) == 0);
        b.count = 1;
        assert_se(ledger_hold(l, &b) == 0);
        {
                LedgerEntry a1 = entry(ID_A, 1, "");

                assert_se(ledger_hold(l, &a1) == 0);
        }
        {
                LedgerEntry d = entry("3e9d4f6b-5c73-4f88-8d4b-8a9c0d1e2f3a", 1, "x"),
                            e = entry("4fae5a7c-6d84-4a99-9e5c-9b0d1e2f3a4b", 1, "y");

                assert_se(ledger_hold(l, &d) == 0);
                assert_se(ledger_hold(l, &e) == -ENOSPC);
                ledger_release(l, d.task_id);
        }
        ledger_release(l, ID_B);

        /* The worker dies holding A's events: the next one finds them lost,
         * and C's loss it had not written yet. */
        l = ledger_free(l);
        assert_se(ledger_open(path, 2, &l) == 0);
        assert_se(file_size() == 4 * SLOT_SIZE);        /* never shrinks */
        assert_se(ledger_n_lost(l) == 2);
        for (size_t i = 0; i < 2; i++) {
                const LedgerEntry *e = ledger_lost_entry(l, i);

                assert_se(e);
                assert_se(e->since == 1234567);
                if (streq(e->task_id, ID_A)) {
                        assert_se(e->count == 1);
                        assert_streq(e->reason, "");
                } else {
                        assert_streq(e->task_id, ID_C);
                        assert_se(e->count == 4);
                        assert_streq(e->reason, "the task's lease was lost: another worker owns it now");
                }
        }
        assert_se(!ledger_lost_entry(l, 2));

        /* Recorded in the store: gone, also for the opener after this one. */
        ledger_lost_done(l, 1);
        ledger_lost_done(l, 0);
        assert_se(ledger_n_lost(l) == 0);
        l = ledger_free(l);
        assert_se(ledger_open(path, 2, &l) == 0);
        assert_se(ledger_n_lost(l) == 0);
}

static void test_garbage_slot(void) {
        _cleanup_(ledger_freep) Ledger *l = NULL;
        LedgerEntry a = entry(ID_A, 7, "the store could not be written: No space left on device");
        _cleanup_close_ int fd = -EBADF;
        char buf[SLOT_SIZE];

        assert_se(ledger_open(path, 4, &l) == 0);
        assert_se(ledger_hold(l, &a) == 0);
        l = ledger_free(l);

        /* Slot 1 holds something that is not a record; slot 0 stays good. */
        fd = open(path, O_RDWR | O_CLOEXEC);
        assert_se(fd >= 0);
        memset(buf, 'x', sizeof(buf));
        assert_se(pwrite(fd, buf, sizeof(buf), SLOT_SIZE) == (ssize_t) sizeof(buf));
        assert_se(ledger_open(path, 4, &l) == 0);
        assert_se(ledger_n_lost(l) == 1);
        assert_se(ledger_lost_entry(l, 0)->count == 7);
        assert_streq(ledger_lost_entry(l, 0)->reason, "the store could not be written: No space left on device");
        assert_se(pread(fd, buf, sizeof(buf), SLOT_SIZE) == (ssize_t) sizeof(buf));
        assert_se(buf[0] == '\0');              /* cleared */
        ledger_lost_done(l, 0);
}

static void test_no_ledger(void) {
        LedgerEntry a = entry(ID_A, 1, "r");

        /* Without a ledger (it could not be opened) every call is harmless. */
        assert_se(ledger_hold(NULL, &a) == -EBADF);
        assert_se(ledger_lost(NULL, &a) == -EBADF);
        ledger_release(NULL, ID_A);
        assert_se(ledger_n_lost(NULL) == 0);
        assert_se(!ledger_lost_entry(NULL, 0));
        ledger_lost_done(NULL, 0);
        assert_se(!ledger_free(NULL));
}

int main(void) {
        assert_se(mkdtemp(dir));
        (void) snprintf(path, sizeof(path), "%s/worker-1", dir);

        test_hold_release_lost();
        assert_se(unlink(path) == 0);
        test_garbage_slot();
        test_no_ledger();

        assert_se(unlink(path) == 0);
        assert_se(rmdir(dir) == 0);
        return 0;
}
