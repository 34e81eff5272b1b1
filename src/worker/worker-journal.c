/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Journal entries for agent events (see worker-journal.h). Entries are sent
 * with sd_journal_sendv(), so a worker started by systemd has them under its
 * own unit (journalctl -u makima-worker@1) through its cgroup. */

#include <inttypes.h>
#include <sys/uio.h>

#include <systemd/sd-journal.h>

#include "log.h"
#include "worker-journal.h"

static bool use_journal = false;
static bool write_failed = false;

void worker_journal_setup(void) {
        const char *e = getenv("MAKIMA_JOURNAL");

        use_journal = !(e && streq(e, "stderr")) && access("/run/systemd/journal/socket", W_OK) >= 0;
        log_debug("Agent events go to %s.", use_journal ? "the journal" : "stderr");
}

static void to_stderr(const JournalEventInfo *info) {
        /* The same line for every event, the short task id first, so that
         * `makima up`'s output can be grepped by task. */
        log_full(info->priority, "%.8s %s", info->task_id, info->message);
}

void worker_journal_event(const JournalEventInfo *info) {
        _cleanup_free_ char *message = NULL, *task = NULL, *contract = NULL, *event = NULL, *seq = NULL,
                            *iteration = NULL, *priority = NULL;
        struct iovec iov[8];
        size_t n = 0;
        int r;

        if (!use_journal) {
                to_stderr(info);
                return;
        }

        if (asprintf(&message, "MESSAGE=%s", info->message) < 0 ||
            asprintf(&task, "MAKIMA_TASK_ID=%s", info->task_id) < 0 ||
            asprintf(&event, "MAKIMA_EVENT=%s", info->type) < 0 ||
            asprintf(&seq, "MAKIMA_SEQ=%" PRIi64, info->seq) < 0 ||
            asprintf(&iteration, "MAKIMA_ITERATION=%i", info->iteration) < 0 ||
            asprintf(&priority, "PRIORITY=%i", info->priority) < 0 ||
            (info->contract_id && asprintf(&contract, "MAKIMA_CONTRACT_ID=%s", info->contract_id) < 0)) {
                (void) log_oom();
                return;
        }

#define ADD(s) iov[n++] = (struct iovec) { .iov_base = (s), .iov_len = strlen(s) }
        ADD(message);
        ADD(task);
        ADD(event);
        ADD(seq);
        ADD(iteration);
        ADD(priority);
        ADD((char *) "SYSLOG_IDENTIFIER=makima-worker");
        if (contract)
                ADD(contract);
#undef ADD

        r = sd_journal_sendv(iov, n);
        if (r < 0) {
                if (!write_failed)
                        log_warning_errno(r, "Failed to write to the journal, agent events go to stderr from now on: %m");
                write_failed = true;
                use_journal = false;
                to_stderr(info);
        }
}
