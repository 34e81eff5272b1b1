/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A claimed task's life on this worker (see worker-task.h): the heartbeat
 * that keeps its lease, the batched store writes every event goes through,
 * and the verdict when its agent exits. */

#include <inttypes.h>
#include <signal.h>
#include <sys/wait.h>

#include "json-util.h"
#include "log.h"
#include "sandbox-task.h"
#include "worker-journal.h"
#include "worker-manager.h"
#include "worker-task.h"

static const char *const phase_table[_WORKER_TASK_PHASE_MAX] = {
        [WORKER_TASK_PREPARING] = "preparing",
        [WORKER_TASK_AGENT] = "running",
        [WORKER_TASK_FINISHED] = "finishing",
};

static void outcome_done(AgentOutcome *o) {
        free(o->subtype);
        free(o->text);
        free(o->auth_error);
        free(o->last_stderr);
        *o = (AgentOutcome) {};
}

static void batch_clear(WorkerTask *t) {
        event_array_free(t->batch, t->n_batch);
        for (size_t i = 0; i < t->n_batch; i++)
                free(t->batch_summary[i]);
        free(t->batch_summary);
        free(t->batch_priority);
        t->batch = NULL;
        t->batch_summary = NULL;
        t->batch_priority = NULL;
        t->n_batch = t->allocated_batch = t->n_journaled = 0;
}

int worker_task_new(Manager *m, Task *task, const char *token, WorkerTask **ret) {
        WorkerTask *t;

        t = calloc(1, sizeof(WorkerTask));
        if (!t)
                return -ENOMEM;
        *t = (WorkerTask) {
                .manager = m,
                .task = task,
                .prepare_fd = -EBADF,
                .stdin_fd = -EBADF,
                .stdout_fd = -EBADF,
                .stderr_fd = -EBADF,
                .lease_renewed_at = now_usec(),
        };
        (void) snprintf(t->token, sizeof(t->token), "%s", token);
        (void) snprintf(t->id8, sizeof(t->id8), "%s", task->id);
        *ret = t;
        return 0;
}

static void close_agent_io(WorkerTask *t) {
        t->stdin_source = sd_event_source_disable_unref(t->stdin_source);
        t->stdout_source = sd_event_source_disable_unref(t->stdout_source);
        t->stderr_source = sd_event_source_disable_unref(t->stderr_source);
        closep(&t->stdin_fd);
        closep(&t->stdout_fd);
        closep(&t->stderr_fd);
        t->stdin_fd = t->stdout_fd = t->stderr_fd = -EBADF;
}

int worker_task_scratch_make(WorkerTask *t) {
        _cleanup_free_ char *dir = NULL;
        int r;

        worker_task_scratch_remove(t);
        if (asprintf(&dir, "%s/makima-worker-%.8s-XXXXXX", getenv("TMPDIR") ?: "/tmp", t->task->id) < 0)
                return -ENOMEM;
        if (!mkdtemp(dir))
                return -errno;
        r = task_dir_make(dir, &t->manager->agent);
        if (r < 0) {
                (void) rmdir(dir);
                return r;
        }
        t->scratch = TAKE_PTR(dir);
        return 0;
}

void worker_task_scratch_remove(WorkerTask *t) {
        int r;

        if (!t->scratch)
                return;
        r = task_dir_remove(t->scratch, &t->manager->agent);
        if (r < 0)
                log_warning_errno(r, "Task %s: failed to remove %s: %m", t->id8, t->scratch);
        t->scratch = mfree(t->scratch);
}

bool worker_task_child_gone(WorkerTask *t) {
        t->prepare_source = sd_event_source_disable_unref(t->prepare_source);
        t->prepare_pid = 0;
        closep(&t->prepare_fd);
        t->prepare_fd = -EBADF;
        worker_task_scratch_remove(t);
        if (t->lease_lost) {
                worker_task_finish(t, t->task->status, NULL);
                return true;
        }
        if (t->cancel_request_id) {
                worker_task_cancelled(t);
                return true;
        }
        return false;
}

const GitContext *worker_task_child_git(WorkerTask *t) {
        t->manager->git.scratch_dir = t->scratch;
        return &t->manager->git;
}

WorkerTask *worker_task_free(WorkerTask *t) {
        if (!t)
                return NULL;

        /* Nothing of ours outlives the task: a child still running here
         * (start-up failure, or an exit without shutdown) is killed. */
        if (t->prepare_pid > 0)
                (void) kill(t->prepare_pid, SIGKILL);
        if (t->pid > 0)
                (void) worker_task_signal(t, SIGKILL);
        worker_task_cgroup_release(t);

        sd_event_source_disable_unref(t->heartbeat);
        sd_event_source_disable_unref(t->wait_timer);
        sd_event_source_disable_unref(t->store_retry);
        sd_event_source_disable_unref(t->prepare_source);
        sd_event_source_disable_unref(t->child_source);
        closep(&t->prepare_fd);
        worker_task_scratch_remove(t);
        close_agent_io(t);
        line_reader_done(&t->stdout_reader);
        line_reader_done(&t->stderr_reader);
        line_writer_done(&t->stdin_writer);
        batch_clear(t);
        outcome_done(&t->outcome);
        circuit_breaker_done(&t->breaker);
        free(t->loop_text);
        free(t->cancel_request_id);
        free(t->home);
        free(t->base);
        free(t->repo_path);
        free(t->git_dir);
        strv_free(t->borrowed);
        task_free(t->task);
        return mfree(t);
}

const char *worker_task_state_string(const WorkerTask *t) {
        if (t->phase != WORKER_TASK_FINISHED && worker_task_store_blocked(t))
                return "waiting for the store";
        if (t->phase == WORKER_TASK_AGENT) {
                if (t->task->status == TASK_PAUSED)
                        return "paused";
                if (t->task->status == TASK_INTERRUPTED)
                        return "interrupted";
                if (t->task->status == TASK_WAITING)
                        return "waiting";
        }
        return phase_table[t->phase];
}

int worker_task_add_event(WorkerTask *t, const char *type, const char *payload, size_t payload_len, int priority,
                          const char *summary) {
        _cleanup_free_ char *ty = NULL, *pl = NULL, *su = NULL;

        if (t->n_batch == t->allocated_batch) {
                size_t n = MAX(t->allocated_batch * 2, 16U);
                Event *b = reallocarray(t->batch, n, sizeof(Event));
                if (!b)
                        return -ENOMEM;
                t->batch = b;
                int *p = reallocarray(t->batch_priority, n, sizeof(int));
                if (!p)
                        return -ENOMEM;
                t->batch_priority = p;
                char **s = reallocarray(t->batch_summary, n, sizeof(char *));
                if (!s)
                        return -ENOMEM;
                t->batch_summary = s;
                t->allocated_batch = n;
        }

        ty = strdup(type);
        pl = strndup(payload, payload_len);
        su = strdup(summary);
        if (!ty || !pl || !su)
                return -ENOMEM;
        t->batch[t->n_batch] = (Event) { .type = TAKE_PTR(ty), .payload = TAKE_PTR(pl) };
        t->batch_priority[t->n_batch] = priority;
        t->batch_summary[t->n_batch] = TAKE_PTR(su);
        t->n_batch++;
        return 0;
}

/* The events not in the journal yet: with their seq once stored, without
 * when the store does not take them (so that the journal has them at once,
 * on a disk that may have room). */
static void journal_batch(WorkerTask *t, bool stored) {
        for (size_t i = t->n_journaled; i < t->n_batch; i++)
                worker_journal_event(&(JournalEventInfo) {
                        .task_id = t->task->id,
                        .contract_id = t->task->contract_id,
                        .iteration = t->task->iteration_count,
                        .type = t->batch[i].type,
                        .seq = stored ? t->batch[i].seq : 0,
                        .priority = t->batch_priority[i],
                        .message = t->batch_summary[i],
                });
        t->n_journaled = t->n_batch;
}

/* The batch will never be stored: the journal has it, and the task's log
 * says how many are missing. */
static void batch_drop(WorkerTask *t, const char *reason) {
        if (t->n_batch > 0) {
                journal_batch(t, false);
                worker_task_events_lost(t, t->n_batch, reason);
        }
        batch_clear(t);
}

/* One try. The store gives each event its seq; the journal shows it, so
 * the store comes first. A failed try leaves the batch as it was. */
static int write_batch(WorkerTask *t) {
        Store *s = t->manager->store;
        int r;

        if (t->dirty)
                r = store_task_update_leased(s, t->task, t->token, t->batch, t->n_batch);
        else
                r = store_event_append_leased(s, t->task->id, t->token, t->batch, t->n_batch);
        if (r == -ENOLCK) {
                /* Perhaps only run out while heartbeats failed: then it is ours again. */
                int k = worker_task_lease_reclaim(t);
                if (k >= 0)
                        r = write_batch(t);
                else if (k != -ENOLCK)
                        r = k;
        }
        return r;
}

/* What trying again cannot change: another owner, or the store refusing
 * the content (a status the state machine does not allow from the row's). */
static bool write_error_is_final(int r) {
        return IN_SET(r, -ENOLCK, -EINVAL);
}

int worker_task_flush(WorkerTask *t) {
        Manager *m = t->manager;
        Store *s = m->store;
        int r;

        if (t->lease_lost) {
                batch_drop(t, "the task's lease was lost: another worker owns it now");
                return -ENOLCK;
        }
        if (t->n_batch == 0 && !t->dirty)
                return 0;

        for (usec_t wait = 100 * USEC_PER_MSEC;; wait = MIN(wait * 2, USEC_PER_SEC)) {
                usec_t now;

                r = write_batch(t);
                /* A stopping worker has no loop left to try again from: it
                 * waits here, until its deadline. */
                now = now_usec();
                if (r >= 0 || write_error_is_final(r) || !m->stopping || now >= m->store_deadline)
                        break;
                if (!worker_task_store_blocked(t))
                        log_warning_errno(r, "Task %s: the store does not take its events, trying again for %.0f s before the "
                                          "worker stops: %s", t->id8, (double) (m->store_deadline - now) / USEC_PER_SEC,
                                          store_last_error(s));
                t->store_failing_since = t->store_failing_since ?: now;
                (void) usleep(MIN(wait, m->store_deadline - now));
        }

        if (r == -ENOLCK) {
                batch_drop(t, "the task's lease was lost: another worker owns it now");
                worker_task_store_reset(t);
                worker_task_lease_lost(t);
                return r;
        }
        if (r == -EINVAL) {
                _cleanup_free_ char *reason = NULL;

                log_error_errno(r, "Task %s: the store refused %zu events: %s", t->id8, t->n_batch, store_last_error(s));
                if (asprintf(&reason, "the store refused them: %s", store_last_error(s)) < 0)
                        reason = NULL;
                batch_drop(t, reason ?: "the store refused them");
                t->dirty = false;
                /* Nothing is held any more: what waited for the batch goes on. */
                if (worker_task_store_blocked(t))
                        worker_task_store_written(t);
                return r;
        }
        if (r < 0) {
                journal_batch(t, false);
                worker_task_store_failed(t, r);
                return r;
        }

        t->dirty = false;
        if (t->n_journaled > 0 && t->n_batch > 0)
                log_info("Task %s: the %zu events journaled while the store did not take them are stored now, "
                         "as seq %" PRIi64 " to %" PRIi64 ".", t->id8, t->n_journaled, t->batch[0].seq,
                         t->batch[t->n_journaled - 1].seq);
        journal_batch(t, true);
        batch_clear(t);
        if (worker_task_store_blocked(t))
                worker_task_store_written(t);
        manager_update_status(m);
        return 0;
}

static int status_payload(WorkerTask *t, TaskState from, TaskState to, const char *error, char **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();
        const char *s;

        if (!o)
                return -ENOMEM;
        /* {"from", "to"} as makima-api writes its own status events. */
        if (json_add_string(o, "from", task_state_to_string(from)) < 0 ||
            json_add_string(o, "to", task_state_to_string(to)) < 0 ||
            (error && json_add_string(o, "error", error) < 0) ||
            (error && to == TASK_WAITING && json_add_string(o, "reason", error) < 0) ||
            json_add_string(o, "worker", t->manager->worker_id) < 0)
                return -ENOMEM;
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!s)
                return -ENOMEM;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

int worker_task_queue_status(WorkerTask *t, TaskState status, const char *error) {
        _cleanup_free_ char *payload = NULL, *summary = NULL;
        int r;

        if (status == t->task->status && streq_ptr(error, t->task->error))
                return 0;
        r = status_payload(t, t->task->status, status, error, &payload);
        if (r < 0)
                return r;
        if (asprintf(&summary, "status %s%s%s", task_state_to_string(status), error ? ": " : "", strempty(error)) < 0)
                return -ENOMEM;
        r = worker_task_add_event(t, "status", payload, strlen(payload), status == TASK_FAILED ? LOG_ERR : LOG_INFO,
                                  summary);
        if (r < 0)
                return r;
        r = free_and_strdup(&t->task->error, error);
        if (r < 0)
                return r;
        t->task->status = status;
        if (task_state_is_final(status))
                t->task->completed_at = now_usec();
        t->dirty = true;
        return 0;
}

int worker_task_set_status(WorkerTask *t, TaskState status, const char *error) {
        TaskState old = t->task->status;
        int r;

        r = worker_task_queue_status(t, status, error);
        if (r < 0)
                return log_oom();
        r = worker_task_flush(t);
        /* Refused: the row keeps its status. Otherwise the change is written,
         * or waits in the batch for the store. */
        if (r == -EINVAL)
                t->task->status = old;
        else if (status != old && (r >= 0 || worker_task_store_blocked(t)))
                log_info("Task %s: %s%s%s%s", t->id8, task_state_to_string(status), error ? ": " : "", strempty(error),
                         r < 0 ? " (written once the store takes writes)" : "");
        return r;
}

void worker_task_finish(WorkerTask *t, TaskState status, const char *error) {
        Store *s = t->manager->store;
        int r;

        if (t->phase == WORKER_TASK_FINISHED)
                return;
        if (!t->lease_lost) {
                (void) worker_task_set_status(t, status, error);
                if (worker_task_store_blocked(t) && !t->manager->stopping) {
                        /* The final status waits in the batch, behind the events
                         * before it; the task ends once the store takes them
                         * (worker-store-wait.c), holding its lease meanwhile. */
                        t->finish_pending = true;
                        return;
                }
                if (worker_task_store_blocked(t))
                        log_error("Task %s: %zu events (and the status %s) could not be written before the worker "
                                  "stopped: they are in the journal, and the worker started next records them as "
                                  "lost (events_lost); the task goes on when its lease has run out.",
                                  t->id8, t->n_batch, task_state_to_string(status));
                else if (!t->lease_lost) {
                        r = store_task_release(s, t->task->id, t->token);
                        if (r < 0 && r != -ENOLCK)
                                log_warning_errno(r, "Task %s: failed to release the lease: %s", t->id8,
                                                  store_last_error(s));
                }
        }
        t->finish_pending = false;
        t->phase = WORKER_TASK_FINISHED;
        t->heartbeat = sd_event_source_disable_unref(t->heartbeat);
        t->wait_timer = sd_event_source_disable_unref(t->wait_timer);
        t->store_retry = sd_event_source_disable_unref(t->store_retry);
        manager_task_finished(t->manager);
}

void worker_task_lease_lost(WorkerTask *t) {
        if (t->lease_lost)
                return;
        t->lease_lost = true;
        log_error("Task %s: the lease was lost (another worker owns the task now); stopping its agent.", t->id8);
        if (t->prepare_pid > 0)
                (void) kill(t->prepare_pid, SIGKILL);
        if (t->pid > 0) {
                (void) worker_task_signal(t, SIGKILL);
                return;         /* finished when the child is reaped */
        }
        if (t->prepare_pid <= 0)
                worker_task_finish(t, t->task->status, NULL);
}

void worker_task_outcome_reset(WorkerTask *t) {
        outcome_done(&t->outcome);
}

static int on_heartbeat(sd_event_source *s, uint64_t usec, void *userdata) {
        WorkerTask *t = userdata;
        Manager *m = t->manager;
        int r;

        r = store_task_heartbeat(m->store, t->task->id, t->token, m->config->worker_lease);
        if (r == -ENOLCK)
                /* Perhaps only run out while earlier heartbeats failed. */
                r = worker_task_lease_reclaim(t);
        if (r == -ENOLCK) {
                worker_task_lease_lost(t);
                return 0;
        }
        if (r < 0) {
                log_warning_errno(r, "Task %s: heartbeat failed, retrying: %s", t->id8, store_last_error(m->store));
                t->heartbeat_failed = true;
        } else {
                t->lease_renewed_at = now_usec();
                t->heartbeat_failed = false;
        }

        /* One more try of a batch the store refused, should its timer fail. */
        if (worker_task_store_blocked(t))
                (void) worker_task_flush(t);
        /* Rows are the truth; bus signals and notifications are only hints. */
        worker_task_process_controls(t);
        /* What the agent's limits did meanwhile, told as it happens. */
        if (t->phase == WORKER_TASK_AGENT && worker_task_limit_events(t) >= 0)
                (void) worker_task_flush(t);

        if (t->heartbeat) {
                (void) sd_event_source_set_time_relative(t->heartbeat, m->config->worker_lease / 3);
                (void) sd_event_source_set_enabled(t->heartbeat, SD_EVENT_ONESHOT);
        }
        return 0;
}

int worker_task_start(WorkerTask *t) {
        Manager *m = t->manager;
        int r;

        r = sd_event_add_time_relative(m->event, &t->heartbeat, CLOCK_MONOTONIC, m->config->worker_lease / 3,
                                       USEC_PER_SEC, on_heartbeat, t);
        if (r < 0)
                return log_error_errno(r, "Failed to start the heartbeat of task %s: %m", t->id8);
        (void) sd_event_source_set_description(t->heartbeat, "heartbeat");

        log_info("Task %s: claimed (repo %s%s%s).", t->id8, strna(t->task->repo),
                 t->task->session_id ? ", continuing session " : "", strempty(t->task->session_id));
        t->phase = WORKER_TASK_PREPARING;
        r = worker_task_cgroup_setup(t);
        if (r < 0) {
                worker_task_finish(t, TASK_FAILED, "the worker could not make the task's cgroup (its log says why)");
                return r;
        }
        t->claimed_at = now_usec();
        r = worker_task_prepare(t);
        if (r < 0) {
                worker_task_finish(t, TASK_FAILED, "the worker could not start preparing the worktree");
                return r;
        }
        return 0;
}

static int notify_owner(WorkerTask *t, const char *message) {
        Store *s = t->manager->store;
        Notification *n;
        int r;

        n = calloc(1, sizeof(Notification));
        if (!n)
                return -ENOMEM;
        n->owner = t->task->owner ? strdup(t->task->owner) : NULL;
        n->task_id = strdup(t->task->id);
        n->contract_id = t->task->contract_id ? strdup(t->task->contract_id) : NULL;
        n->level = strdup("error");
        n->message = strdup(message);
        if (!n->task_id || !n->level || !n->message || (t->task->owner && !n->owner) ||
            (t->task->contract_id && !n->contract_id))
                r = -ENOMEM;
        else
                r = store_notification_insert(s, n);
        if (r < 0)
                log_warning_errno(r, "Task %s: failed to store a notification: %s", t->id8, store_last_error(s));
        notification_array_free(n, 1);
        return r;
}

/* The reason, in words, for a run that did not end well. */
static char *failure_reason(WorkerTask *t, int code, int status) {
        const AgentOutcome *o = &t->outcome;
        const char *detail = o->text ?: o->last_stderr;
        char *s = NULL;
        int r;

        /* bwrap reports its child's death by signal N as exit status 128 + N. */
        if (t->sandboxed && code == CLD_EXITED && status > 128 && status < 128 + 65) {
                code = CLD_KILLED;
                status -= 128;
        }

        if (code == CLD_EXITED && status != 0)
                r = asprintf(&s, "agent exited with status %i%s%s", status, detail ? ": " : "", strempty(detail));
        else if (code == CLD_EXITED && o->have_result)
                r = asprintf(&s, "agent reported an error (%s)%s%s", strna(o->subtype), o->text ? ": " : "",
                             strempty(o->text));
        else if (code == CLD_EXITED)
                r = asprintf(&s, "agent ended without a result");
        else
                r = asprintf(&s, "agent was killed by signal %i (SIG%s)", status, strna(sigabbrev_np(status)));
        return r < 0 ? NULL : s;
}

void worker_task_agent_exited(WorkerTask *t, int code, int status) {
        _cleanup_free_ char *reason = NULL, *late = NULL;
        Manager *m = t->manager;
        int r;

        log_debug("Task %s: agent exited (code %i, status %i).", t->id8, code, status);
        if (t->lease_lost) {
                worker_task_finish(t, t->task->status, NULL);
                return;
        }
        if (t->cancel_request_id) {
                worker_task_cancelled(t);
                return;
        }

        if (t->outcome.auth_error) {
                if (asprintf(&reason, "agent is not logged in on worker %u (%s)", m->instance, t->outcome.auth_error) < 0)
                        goto oom;
                (void) notify_owner(t, reason);
                worker_task_finish(t, TASK_FAILED, reason);
                return;
        }

        /* A message that came after the turn's end continues the session. */
        t->exited_at = now_usec();
        r = worker_task_take_late_messages(t, &late);
        if (r > 0) {
                outcome_done(&t->outcome);
                if (t->task->status != TASK_RUNNING)
                        (void) worker_task_set_status(t, TASK_RUNNING, NULL);
                r = worker_task_spawn_iteration(t, late);
                if (r < 0)
                        worker_task_finish(t, TASK_FAILED, "the worker could not start the agent (its log says why)");
                else if (t->phase == WORKER_TASK_AGENT)
                        worker_task_process_controls(t);
                return;
        }

        if (code == CLD_EXITED && status == 0 && t->outcome.have_result && !t->outcome.is_error) {
                if (t->loop)
                        worker_task_loop_iteration_done(t);
                else
                        worker_task_finish(t, TASK_DONE, NULL);
                return;
        }
        /* A rate limit the CLI gave up on is a wait, not a failure. */
        if (t->outcome.rate_limited && (code == CLD_EXITED || t->outcome.have_result)) {
                worker_task_rate_limit_wait(t);
                return;
        }
        /* A limit the agent hit says more than how it ended. */
        reason = worker_task_limit_reason(t) ?: failure_reason(t, code, status);
        if (!reason)
                goto oom;
        worker_task_finish(t, TASK_FAILED, reason);
        return;

oom:
        (void) log_oom();
        worker_task_finish(t, TASK_FAILED, "the worker ran out of memory");
}
