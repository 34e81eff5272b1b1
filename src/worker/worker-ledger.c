/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ledger file (see worker-ledger.h): fixed slots of SLOT_SIZE bytes,
 * each empty (zeros) or one line of text:
 *
 *   makima-ledger-1 held|lost TASK_ID COUNT SINCE_USEC REASON…
 *
 * Every block of the file is written when it is made, so that overwriting a
 * slot later needs no new block: on a full disk that is what still works
 * (on tmpfs, ext4 and XFS; a copy-on-write file system such as btrfs needs
 * room even to overwrite, and there the ledger can fail with the store). A
 * slot is one aligned write, so a crash leaves it old or new. The file is
 * locked, so two workers with the same instance number cannot share it. */

#include <fcntl.h>
#include <inttypes.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "log.h"
#include "worker-ledger.h"

#define SLOT_SIZE 512
#define MAGIC "makima-ledger-1"

typedef enum SlotState {
        SLOT_FREE,
        SLOT_HELD,
        SLOT_LOST,
} SlotState;

typedef struct Slot {
        SlotState state;
        LedgerEntry entry;
} Slot;

struct Ledger {
        int fd;
        char *path;
        Slot *slots;
        size_t n_slots;
};

Ledger *ledger_free(Ledger *l) {
        if (!l)
                return NULL;
        closep(&l->fd);
        free(l->path);
        free(l->slots);
        return mfree(l);
}

static int slot_parse(const char *buf, Slot *ret) {
        char magic[32], state[8], id[ID_STRING_MAX];
        uint64_t count, since;
        const char *reason;
        int n = 0;

        if (buf[0] == '\0')
                return 0;
        if (memchr(buf, '\0', SLOT_SIZE) == NULL ||
            sscanf(buf, "%31s %7s %36s %" SCNu64 " %" SCNu64 " %n", magic, state, id, &count, &since, &n) != 5 ||
            n == 0 || !streq(magic, MAGIC) || !(streq(state, "held") || streq(state, "lost")) || !id_is_valid(id))
                return -EBADMSG;
        reason = buf + n;
        *ret = (Slot) { .state = SLOT_LOST, .entry = { .count = count, .since = since } };
        memcpy(ret->entry.task_id, id, sizeof(ret->entry.task_id));
        (void) snprintf(ret->entry.reason, sizeof(ret->entry.reason), "%.*s", (int) strcspn(reason, "\n"), reason);
        return 1;
}

/* Writes slot i as it is in memory, and makes sure it is on disk. */
static int slot_write(Ledger *l, size_t i) {
        const Slot *s = &l->slots[i];
        char buf[SLOT_SIZE] = {};
        ssize_t k;

        if (s->state != SLOT_FREE)
                (void) snprintf(buf, sizeof(buf), MAGIC " %s %s %" PRIu64 " %" PRIu64 " %s\n",
                                s->state == SLOT_HELD ? "held" : "lost", s->entry.task_id, s->entry.count,
                                (uint64_t) s->entry.since, s->entry.reason);
        k = pwrite(l->fd, buf, sizeof(buf), (off_t) (i * SLOT_SIZE));
        if (k < 0)
                return -errno;
        if (k != (ssize_t) sizeof(buf))
                return -EIO;
        if (fdatasync(l->fd) < 0)
                return -errno;
        return 0;
}

/* Written out with zeros, not fallocate(): an allocated but unwritten
 * extent may still need a metadata block when it is first written. */
static int extend(Ledger *l, size_t from, size_t to) {
        char zeros[SLOT_SIZE] = {};

        for (size_t i = from; i < to; i++)
                if (pwrite(l->fd, zeros, sizeof(zeros), (off_t) (i * SLOT_SIZE)) != (ssize_t) sizeof(zeros))
                        return errno > 0 ? -errno : -EIO;
        if (fsync(l->fd) < 0)
                return -errno;
        return 0;
}

int ledger_open(const char *path, unsigned n_slots, Ledger **ret) {
        _cleanup_(ledger_freep) Ledger *l = NULL;
        struct stat st;
        size_t have;
        int r;

        l = calloc(1, sizeof(Ledger));
        if (!l)
                return -ENOMEM;
        l->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (l->fd < 0)
                return log_warning_errno(errno, "Failed to open the ledger %s: %m", path);
        if (flock(l->fd, LOCK_EX | LOCK_NB) < 0)
                return log_warning_errno(errno, "The ledger %s is in use (another worker with this instance number?): %m",
                                         path);
        if (fstat(l->fd, &st) < 0)
                return log_warning_errno(errno, "Failed to stat the ledger %s: %m", path);
        l->path = strdup(path);
        if (!l->path)
                return log_oom();

        have = (size_t) st.st_size / SLOT_SIZE;
        l->n_slots = MAX(have, (size_t) n_slots);
        l->slots = calloc(l->n_slots, sizeof(Slot));
        if (!l->slots)
                return log_oom();

        /* What an earlier worker left: whatever it held is lost now. */
        for (size_t i = 0; i < have; i++) {
                char buf[SLOT_SIZE];

                if (pread(l->fd, buf, sizeof(buf), (off_t) (i * SLOT_SIZE)) != (ssize_t) sizeof(buf))
                        return log_warning_errno(errno > 0 ? errno : EIO, "Failed to read the ledger %s: %m", path);
                r = slot_parse(buf, &l->slots[i]);
                if (r < 0) {
                        log_warning("Ledger %s: slot %zu is not a record, clearing it.", path, i);
                        (void) slot_write(l, i);
                }
        }

        if (have < l->n_slots) {
                r = extend(l, have, l->n_slots);
                if (r < 0) {
                        /* Probably the very disk-full this is for: go on with the slots there are. */
                        log_warning_errno(r, "Failed to make room for %zu records in the ledger %s, it has %zu: %m",
                                          l->n_slots, path, have);
                        l->n_slots = have;
                        if (ftruncate(l->fd, (off_t) (have * SLOT_SIZE)) < 0)
                                log_debug_errno(errno, "Failed to cut the ledger %s back: %m", path);
                }
        }

        *ret = TAKE_PTR(l);
        return 0;
}

static ssize_t slot_find(const Ledger *l, SlotState state, const char *task_id) {
        for (size_t i = 0; i < l->n_slots; i++)
                if (l->slots[i].state == state && (!task_id || streq(l->slots[i].entry.task_id, task_id)))
                        return (ssize_t) i;
        return -1;
}

static int slot_set(Ledger *l, SlotState state, const LedgerEntry *e, bool add) {
        ssize_t i;

        i = slot_find(l, state, e->task_id);
        if (i >= 0 && add) {
                l->slots[i].entry.count += e->count;
                return slot_write(l, (size_t) i);
        }
        if (i < 0)
                i = slot_find(l, SLOT_FREE, NULL);
        if (i < 0)
                return -ENOSPC;
        l->slots[i] = (Slot) { .state = state, .entry = *e };
        return slot_write(l, (size_t) i);
}

int ledger_hold(Ledger *l, const LedgerEntry *e) {
        if (!l)
                return -EBADF;
        if (e->count == 0) {
                ledger_release(l, e->task_id);
                return 0;
        }
        return slot_set(l, SLOT_HELD, e, false);
}

void ledger_release(Ledger *l, const char *task_id) {
        ssize_t i;
        int r;

        if (!l)
                return;
        i = slot_find(l, SLOT_HELD, task_id);
        if (i < 0)
                return;
        l->slots[i].state = SLOT_FREE;
        r = slot_write(l, (size_t) i);
        if (r < 0)
                /* Then the next worker reports events as lost that were stored: wrong, but not silent. */
                log_warning_errno(r, "Failed to clear the record of task %s in the ledger %s: %m", task_id, l->path);
}

int ledger_lost(Ledger *l, const LedgerEntry *e) {
        if (!l)
                return -EBADF;
        return slot_set(l, SLOT_LOST, e, true);
}

size_t ledger_n_lost(const Ledger *l) {
        size_t n = 0;

        for (size_t i = 0; l && i < l->n_slots; i++)
                if (l->slots[i].state == SLOT_LOST)
                        n++;
        return n;
}

static ssize_t lost_index(const Ledger *l, size_t k) {
        for (size_t i = 0; i < l->n_slots; i++)
                if (l->slots[i].state == SLOT_LOST && k-- == 0)
                        return (ssize_t) i;
        return -1;
}

const LedgerEntry *ledger_lost_entry(const Ledger *l, size_t k) {
        ssize_t i = l ? lost_index(l, k) : -1;

        return i >= 0 ? &l->slots[i].entry : NULL;
}

void ledger_lost_done(Ledger *l, size_t k) {
        ssize_t i = l ? lost_index(l, k) : -1;
        int r;

        if (i < 0)
                return;
        l->slots[i].state = SLOT_FREE;
        r = slot_write(l, (size_t) i);
        if (r < 0)
                log_warning_errno(r, "Failed to clear a record in the ledger %s (it may be recorded twice): %m", l->path);
}
