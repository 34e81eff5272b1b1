/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One journal entry per agent event, with the fields `journalctl
 * MAKIMA_TASK_ID=…` and the web UI filter on; without a journal the same
 * one-line messages go to stderr, prefixed with the short task id. */
#pragma once

#include <stdint.h>

typedef struct JournalEventInfo {
        const char *task_id;
        const char *contract_id;        /* NULL: none */
        int iteration;
        const char *type;               /* the event's type as stored */
        int64_t seq;                    /* the seq the store gave it */
        int priority;                   /* LOG_INFO, LOG_WARNING, LOG_ERR */
        const char *message;            /* one line */
} JournalEventInfo;

/* Decides once where entries go: the journal when its socket exists and
 * $MAKIMA_JOURNAL is not "stderr". */
void worker_journal_setup(void);

/* Writes one entry. A failure to write is not the agent's problem: it is
 * counted and reported once, and the event stays in the store. */
void worker_journal_event(const JournalEventInfo *info);
