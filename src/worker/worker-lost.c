/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Events the store never got are not dropped silently: each loss is an
 * events_lost event in the task's log, {"count", "reason", "since",
 * "worker", "message"}. A loss this worker knows of (its lease was lost
 * with events in hand, the store refused them) and what an earlier worker
 * left in the ledger (it stopped or died holding events the store did not
 * take) are kept in the ledger until the store takes the event: at start,
 * before every claim (so that the record comes before a rescuer's claim),
 * and on a timer while any wait. */

#include <sys/stat.h>

#include "json-util.h"
#include "log.h"
#include "worker-manager.h"

#define LOST_RETRY_USEC (2 * USEC_PER_SEC)
/* Slots for the held and the lost events of every task at once, and what
 * an earlier worker with more tasks left. */
#define LEDGER_SLOTS(max_tasks) (4 * (max_tasks) + 16)

static int lost_payload(Manager *m, const LedgerEntry *e, char **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();
        _cleanup_free_ char *message = NULL;
        const char *s;

        if (!o)
                return -ENOMEM;
        if (asprintf(&message,
                     "%" PRIu64 " event%s of this task %s never stored (%s); makima-worker wrote %s to its journal "
                     "(journalctl MAKIMA_TASK_ID=%s), without a seq",
                     e->count, e->count == 1 ? "" : "s", e->count == 1 ? "was" : "were", e->reason,
                     e->count == 1 ? "it" : "them", e->task_id) < 0)
                return -ENOMEM;
        if (json_object_object_add(o, "count", json_object_new_int64((int64_t) e->count)) < 0 ||
            json_add_string(o, "reason", e->reason) < 0 ||
            json_add_timestamp(o, "since", e->since) < 0 ||
            json_add_string(o, "worker", m->worker_id) < 0 ||
            json_add_string(o, "message", message) < 0)
                return -ENOMEM;
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!s)
                return -ENOMEM;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

/* Appended without a lease: the task may have another owner by now, and
 * the record belongs in its log all the same. */
static int write_one(Manager *m, const LedgerEntry *e) {
        _cleanup_free_ char *payload = NULL;
        Event event = { .type = (char *) "events_lost" };
        int r;

        r = lost_payload(m, e, &payload);
        if (r < 0)
                return r;
        event.payload = payload;
        r = store_event_append(m->store, EVENT_LOG_TASK, e->task_id, &event, 1);
        free(event.object_id);
        if (r == -ENOENT) {
                log_info("Task %.8s: deleted meanwhile; %" PRIu64 " lost events are not recorded.", e->task_id,
                         e->count);
                return 0;
        }
        if (r == -EINVAL) {
                /* It would be refused forever, and hold up every claim. */
                log_error("Task %.8s: the store refuses the record of %" PRIu64 " lost events (%s): %s", e->task_id,
                          e->count, e->reason, store_last_error(m->store));
                return 0;
        }
        if (r < 0)
                return r;
        log_notice("Task %.8s: recorded %" PRIu64 " lost events (%s) as seq %" PRIi64 ".", e->task_id, e->count,
                   e->reason, event.seq);
        return 0;
}

static int on_lost_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) manager_write_lost(userdata);
        return 0;
}

size_t manager_write_lost(Manager *m) {
        size_t i = 0;
        int r;

        while (i < ledger_n_lost(m->ledger)) {
                r = write_one(m, ledger_lost_entry(m->ledger, i));
                if (r < 0) {
                        log_debug_errno(r, "Failed to record lost events, trying again later: %s",
                                        store_last_error(m->store));
                        i++;
                        continue;
                }
                ledger_lost_done(m->ledger, i);
        }
        if (ledger_n_lost(m->ledger) == 0 || m->stopping)
                return ledger_n_lost(m->ledger);
        if (!m->lost_timer) {
                r = sd_event_add_time_relative(m->event, &m->lost_timer, CLOCK_MONOTONIC, LOST_RETRY_USEC, 0,
                                               on_lost_timer, m);
                if (r < 0)
                        log_warning_errno(r, "Failed to set the timer for lost events (they wait for the next claim): %m");
                else
                        (void) sd_event_source_set_description(m->lost_timer, "lost-events");
        } else {
                (void) sd_event_source_set_time_relative(m->lost_timer, LOST_RETRY_USEC);
                (void) sd_event_source_set_enabled(m->lost_timer, SD_EVENT_ONESHOT);
        }
        return ledger_n_lost(m->ledger);
}

void manager_events_lost(Manager *m, const LedgerEntry *e) {
        int r;

        /* At once if the store takes it; else through the ledger, which outlives us. */
        r = write_one(m, e);
        if (r >= 0)
                return;
        r = ledger_lost(m->ledger, e);
        if (r < 0) {
                log_error_errno(r, "Task %.8s: failed to keep the record of %" PRIu64 " lost events anywhere: %m "
                                "(only this log has it)", e->task_id, e->count);
                return;
        }
        (void) manager_write_lost(m);
}

int manager_ledger_setup(Manager *m) {
        _cleanup_free_ char *dir = NULL, *path = NULL;
        size_t n;
        int r;

        if (asprintf(&dir, "%s/ledger", m->config->state_dir) < 0 ||
            asprintf(&path, "%s/worker-%u", dir, m->instance) < 0)
                return log_oom();
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return log_warning_errno(errno, "Failed to create %s, events the store does not take are not recorded "
                                         "if the worker stops with them: %m", dir);
        r = ledger_open(path, LEDGER_SLOTS(m->config->worker_max_concurrent_tasks), &m->ledger);
        if (r < 0)
                return r;
        n = ledger_n_lost(m->ledger);
        if (n > 0)
                log_notice("The ledger %s has %zu record%s of events an earlier worker could not store; they go into "
                           "the tasks' logs as events_lost.", path, n, n == 1 ? "" : "s");
        return 0;
}
