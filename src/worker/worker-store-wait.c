/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What a task does while the store does not take its events (its disk is
 * full, or it does not answer): nothing is dropped. The batch is kept, in
 * order, and tried again with a backoff; the agent's output is not read
 * meanwhile, so the agent blocks as soon as its pipe is full; after
 * [Worker] StoreRetrySec= (at most half a lease, so that it never runs on
 * without one) the agent is stopped as a pause stops it, and the task gets
 * the status paused with the reason, written with the events. Its exit and
 * its final status wait until its output is stored. Once the store takes
 * the batch, all of that is undone in order. A lease that ran out meanwhile
 * is taken back if nobody claimed the task. Events that will never be
 * stored (the worker stopped first, the lease was lost) become an
 * events_lost record: see worker-lost.c and worker-ledger.c. */

#include "log.h"
#include "worker-manager.h"
#include "worker-task.h"

#define RETRY_FIRST_USEC (100 * USEC_PER_MSEC)
#define RETRY_MAX_USEC (5 * USEC_PER_SEC)

bool worker_task_store_blocked(const WorkerTask *t) {
        return t->store_failing_since > 0;
}

/* How long the agent runs on after its output was first refused. */
static usec_t stop_after(const WorkerTask *t) {
        const Config *c = t->manager->config;

        return MIN(c->worker_store_retry, c->worker_lease / 2);
}

static void ledger_entry(WorkerTask *t, size_t count, const char *reason, LedgerEntry *ret) {
        *ret = (LedgerEntry) { .count = count, .since = t->store_failing_since ?: now_usec() };
        (void) snprintf(ret->task_id, sizeof(ret->task_id), "%s", t->task->id);
        (void) snprintf(ret->reason, sizeof(ret->reason), "%s", reason);
}

/* The ledger says how many events the task holds, should the worker die
 * with them. */
static void hold_in_ledger(WorkerTask *t) {
        _cleanup_free_ char *reason = NULL;
        LedgerEntry e;
        int r;

        if (!t->manager->ledger || t->n_in_ledger == t->n_batch)
                return;
        if (asprintf(&reason, "the store could not be written: %s", strerror(-t->store_error)) < 0) {
                (void) log_oom();
                return;
        }
        ledger_entry(t, t->n_batch, reason, &e);
        r = ledger_hold(t->manager->ledger, &e);
        if (r < 0)
                log_warning_errno(r, "Task %s: failed to record its %zu unstored events in the ledger: %m", t->id8,
                                  t->n_batch);
        else
                t->n_in_ledger = t->n_batch;
}

static int on_store_retry(sd_event_source *s, uint64_t usec, void *userdata);

static void schedule(WorkerTask *t, usec_t delay) {
        int r;

        if (t->store_retry) {
                r = sd_event_source_set_time_relative(t->store_retry, delay);
                if (r >= 0)
                        r = sd_event_source_set_enabled(t->store_retry, SD_EVENT_ONESHOT);
        } else {
                r = sd_event_add_time_relative(t->manager->event, &t->store_retry, CLOCK_MONOTONIC, delay, 0,
                                               on_store_retry, t);
                if (r >= 0)
                        (void) sd_event_source_set_description(t->store_retry, "store-retry");
        }
        if (r < 0)
                /* The heartbeat tries the batch too (worker_task_process_controls() waits for it). */
                log_error_errno(r, "Task %s: failed to set the timer for the store: %m", t->id8);
}

/* Stopped as a pause stops it, and the reason in the task's status. */
static void stop_agent(WorkerTask *t) {
        _cleanup_free_ char *reason = NULL;
        TaskState to;
        int r;

        r = worker_task_agent_stop(t);
        if (r < 0) {
                log_warning_errno(r, "Task %s: failed to stop the agent while the store does not take writes: %m", t->id8);
                return;
        }
        t->store_stopped = true;
        t->status_before_stop = t->task->status;
        if (asprintf(&reason, "the store cannot be written (%s): the agent is stopped until its output is stored",
                     strerror(-t->store_error)) < 0) {
                (void) log_oom();
                return;
        }
        log_warning("Task %s: the store has not taken its events for %.0f s, stopping the agent until it does.",
                    t->id8, (double) (now_usec() - t->store_failing_since) / USEC_PER_SEC);
        /* An interrupted agent cannot be paused: it keeps its status, with the reason. */
        to = task_state_transition_allowed(t->task->status, TASK_PAUSED) ? TASK_PAUSED : t->task->status;
        if (worker_task_queue_status(t, to, reason) < 0)
                (void) log_oom();
}

void worker_task_store_failed(WorkerTask *t, int error) {
        Manager *m = t->manager;
        usec_t now = now_usec(), delay, stop_at;

        t->store_error = error;
        if (!worker_task_store_blocked(t)) {
                t->store_failing_since = now;
                t->n_store_retries = 0;
                log_warning_errno(error, "Task %s: the store does not take its events (%m: %s); keeping %zu events, "
                                  "not reading the agent's output until it does.", t->id8, store_last_error(m->store),
                                  t->n_batch);
        } else
                log_debug_errno(error, "Task %s: the store still does not take its %zu events: %m", t->id8, t->n_batch);

        /* Backpressure: what the agent prints stays in its pipe, and then in the agent. */
        worker_task_read_pause(t);

        stop_at = t->store_failing_since + stop_after(t);
        if (t->pid > 0 && !t->store_stopped && !t->paused && now >= stop_at && !m->stopping)
                stop_agent(t);
        hold_in_ledger(t);

        if (!m->stopping) {
                delay = MIN(RETRY_FIRST_USEC << MIN(t->n_store_retries, 10U), RETRY_MAX_USEC);
                t->n_store_retries++;
                if (t->pid > 0 && !t->store_stopped && !t->paused && stop_at > now)
                        delay = MIN(delay, stop_at - now);
                schedule(t, delay);
        }
        manager_update_status(m);
}

void worker_task_store_reset(WorkerTask *t) {
        t->store_failing_since = 0;
        t->n_store_retries = 0;
        t->n_in_ledger = 0;
        ledger_release(t->manager->ledger, t->task->id);
        if (t->store_retry)
                (void) sd_event_source_set_enabled(t->store_retry, SD_EVENT_OFF);
}

void worker_task_store_written(WorkerTask *t) {
        log_info("Task %s: the store takes its events again, after %.1f s.", t->id8,
                 (double) (now_usec() - t->store_failing_since) / USEC_PER_SEC);
        worker_task_store_reset(t);
        /* What waited goes on from the loop, not from inside whoever flushed. */
        if (!t->manager->stopping)
                schedule(t, 0);
}

/* The batch is stored: undo what waiting for the store did, in order. */
static void store_resume(WorkerTask *t) {
        if (t->store_stopped) {
                TaskState back = t->task->status;

                t->store_stopped = false;
                if (t->pid > 0)
                        (void) worker_task_agent_continue(t);
                if (back == TASK_PAUSED)
                        back = task_state_transition_allowed(TASK_PAUSED, t->status_before_stop) ? t->status_before_stop
                                                                                                 : TASK_RUNNING;
                log_info("Task %s: the agent continues.", t->id8);
                if (worker_task_queue_status(t, back, NULL) < 0)
                        (void) log_oom();
                if (worker_task_flush(t) < 0)
                        return;         /* the next retry comes back here */
        }
        if (t->exit_pending) {
                worker_task_exit_continue(t);
                return;
        }
        if (t->finish_pending) {
                worker_task_finish(t, t->task->status, t->task->error);
                return;
        }
        worker_task_read_resume(t);
        worker_task_process_controls(t);
}

static int on_store_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        WorkerTask *t = userdata;

        if (t->phase == WORKER_TASK_FINISHED)
                return 0;
        if (worker_task_store_blocked(t)) {
                /* Either it fails and comes back later, or the continuation is scheduled. */
                (void) worker_task_flush(t);
                return 0;
        }
        store_resume(t);
        return 0;
}

/* A lease is lost, not run out, unless we failed to renew it and its time
 * is over by our own count: a rescuer can only have come after that. */
bool worker_task_lease_ran_out(const WorkerTask *t) {
        return (t->heartbeat_failed || worker_task_store_blocked(t)) && !t->lease_lost &&
                now_usec() >= t->lease_renewed_at + t->manager->config->worker_lease;
}

int worker_task_lease_reclaim(WorkerTask *t) {
        Manager *m = t->manager;
        usec_t now = now_usec();
        int r;

        if (!worker_task_lease_ran_out(t))
                return -ENOLCK;
        r = store_task_lease_reclaim(m->store, t->task->id, t->token, m->config->worker_lease);
        if (r < 0) {
                if (r != -ENOLCK)
                        log_debug_errno(r, "Task %s: failed to take the lease back: %m", t->id8);
                return r;
        }
        log_notice("Task %s: its lease ran out while the store did not take writes; nobody claimed the task "
                   "meanwhile, so it holds it again.", t->id8);
        t->lease_renewed_at = now;
        t->heartbeat_failed = false;
        return 0;
}

void worker_task_events_lost(WorkerTask *t, size_t n, const char *reason) {
        LedgerEntry e;

        log_error("Task %s: %zu events will never be stored (%s); they are in the journal, and an events_lost "
                  "event in the task's log says so.", t->id8, n, reason);
        ledger_entry(t, n, reason, &e);
        manager_events_lost(t->manager, &e);
}
