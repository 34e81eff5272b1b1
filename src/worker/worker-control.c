/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Control requests for a running task (pause, resume, interrupt, message,
 * cancel). They are rows in the store: each is marked delivered when the
 * worker acts on it and completed with "ok" or the reason it does not apply;
 * bus signals and notifications only make the worker look sooner. */

#include <signal.h>

#include "json-util.h"
#include "log.h"
#include "stream-json.h"
#include "worker-manager.h"
#include "worker-task.h"

static void control_event(WorkerTask *t, const ControlRequest *c, const char *result) {
        _cleanup_json_ json_object *o = json_object_new_object();
        _cleanup_free_ char *summary = NULL;
        const char *s;

        if (!o || json_add_string(o, "id", c->id) < 0 ||
            json_add_string(o, "kind", control_kind_to_string(c->kind)) < 0 ||
            json_add_string(o, "result", result) < 0 ||
            !(s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) ||
            asprintf(&summary, "control %s: %s", control_kind_to_string(c->kind), result) < 0 ||
            worker_task_add_event(t, "control", s, strlen(s), LOG_INFO, summary) < 0)
                (void) log_oom();
}

static void delivered(WorkerTask *t, const ControlRequest *c) {
        Store *s = t->manager->store;
        int r;

        r = store_control_mark_delivered(s, c->id);
        if (r < 0)
                log_warning_errno(r, "Task %s: failed to mark control request %s delivered: %s", t->id8, c->id,
                                  store_last_error(s));
}

/* Done with `result` ("ok" or why it does not apply); also in the task's log. */
static void complete(WorkerTask *t, const ControlRequest *c, const char *result) {
        Store *s = t->manager->store;
        int r;

        if (!c->delivered_at)
                delivered(t, c);
        control_event(t, c, result);
        (void) worker_task_flush(t);
        r = store_control_complete(s, c->id, result);
        if (r < 0)
                log_warning_errno(r, "Task %s: failed to complete control request %s: %s", t->id8, c->id,
                                  store_last_error(s));
        else
                log_info("Task %s: %s: %s", t->id8, control_kind_to_string(c->kind), result);
}

static int message_text(const ControlRequest *c, char **ret) {
        _cleanup_json_ json_object *o = NULL;
        json_object *text;

        if (!c->payload || json_parse_strict(c->payload, strlen(c->payload), &o, NULL) < 0)
                return -EINVAL;
        /* makima-api writes {"message": …}; store.h's example says "text". */
        if ((!json_object_object_get_ex(o, "message", &text) && !json_object_object_get_ex(o, "text", &text)) ||
            !json_object_is_type(text, json_type_string) ||
            json_object_get_string_len(text) == 0)
                return -EINVAL;
        *ret = strdup(json_object_get_string(text));
        return *ret ? 0 : -ENOMEM;
}

void worker_task_cancelled(WorkerTask *t) {
        _cleanup_free_ char *id = TAKE_PTR(t->cancel_request_id);
        ControlRequest c = { .id = id, .kind = CONTROL_CANCEL, .delivered_at = 1 };

        /* The result goes in the log before the final status. */
        if (!t->lease_lost)
                control_event(t, &c, "ok");
        worker_task_finish(t, TASK_CANCELLED, NULL);
        if (!t->lease_lost && store_control_complete(t->manager->store, id, "ok") < 0)
                log_warning("Task %s: failed to complete the cancel request: %s", t->id8,
                            store_last_error(t->manager->store));
}

static void do_cancel(WorkerTask *t, const ControlRequest *c) {
        if (t->cancel_request_id) {
                /* Seen again before the agent died (a second wake-up). */
                if (!streq(t->cancel_request_id, c->id))
                        complete(t, c, "the task is being cancelled already");
                return;
        }
        t->cancel_request_id = strdup(c->id);
        if (!t->cancel_request_id) {
                (void) log_oom();
                return;
        }
        delivered(t, c);
        log_info("Task %s: cancelling.", t->id8);
        /* The whole cgroup, or without one the process tree: bwrap's death
         * takes the sandbox's pid namespace with it, the walk reaches an
         * unsandboxed agent's children. */
        if (t->prepare_pid > 0)
                (void) kill(t->prepare_pid, SIGKILL);
        if (t->pid > 0)
                (void) worker_task_signal(t, SIGKILL);
        else if (t->prepare_pid <= 0 && t->phase == WORKER_TASK_AGENT) {
                /* Between runs (waiting for a rate limit): nothing to reap. */
                worker_task_cancelled(t);
                return;
        }
        /* Completed (and the status written) when the child is reaped. */
}

int worker_task_agent_stop(WorkerTask *t) {
        return worker_task_signal(t, SIGSTOP);
}

int worker_task_agent_continue(WorkerTask *t) {
        return worker_task_signal(t, SIGCONT);
}

static void do_pause(WorkerTask *t, const ControlRequest *c) {
        int r;

        if (t->task->status == TASK_PAUSED) {
                complete(t, c, "the task is paused already");
                return;
        }
        if (!task_state_transition_allowed(t->task->status, TASK_PAUSED)) {
                complete(t, c, t->task->status == TASK_INTERRUPTED
                                       ? "the agent is interrupted and waits for a message; there is nothing to pause"
                                       : "the task cannot be paused in its state");
                return;
        }
        delivered(t, c);
        r = worker_task_agent_stop(t);
        if (r < 0) {
                complete(t, c, "the agent's processes could not be stopped");
                return;
        }
        t->paused = true;
        (void) worker_task_set_status(t, TASK_PAUSED, NULL);
        complete(t, c, "ok");
}

static void do_resume(WorkerTask *t, const ControlRequest *c) {
        if (t->task->status != TASK_PAUSED) {
                complete(t, c, "the task is not paused");
                return;
        }
        delivered(t, c);
        (void) worker_task_agent_continue(t);
        t->paused = false;
        (void) worker_task_set_status(t, TASK_RUNNING, NULL);
        complete(t, c, "ok");
}

static void do_interrupt(WorkerTask *t, const ControlRequest *c) {
        _cleanup_free_ char *line = NULL;
        char id[64];

        if (t->task->status == TASK_INTERRUPTED || t->interrupt_pending) {
                complete(t, c, "the agent is interrupted already");
                return;
        }
        if (!worker_task_stdin_open(t)) {
                complete(t, c, "the agent has finished its turn");
                return;
        }
        delivered(t, c);
        (void) snprintf(id, sizeof(id), "makima-interrupt-%u", ++t->interrupt_counter);
        if (stream_json_interrupt_request(id, &line) < 0 || worker_task_write_stdin(t, line) < 0) {
                complete(t, c, "the interrupt could not be written to the agent");
                return;
        }
        /* The CLI answers with a control_response and ends the turn with a
         * result; that result makes the task `interrupted`. */
        t->interrupt_pending = true;
        complete(t, c, "ok");
}

/* Returns true if the request was handled, false if it waits. */
static bool do_message(WorkerTask *t, const ControlRequest *c) {
        _cleanup_free_ char *text = NULL, *line = NULL;

        if (message_text(c, &text) < 0) {
                complete(t, c, "a message needs a non-empty \"message\"");
                return true;
        }
        /* After the turn's result stdin is closed and the agent is on its
         * way out: the message starts the next run on the same session. */
        if (!worker_task_stdin_open(t))
                return false;
        delivered(t, c);
        if (stream_json_user_message(text, &line) < 0 || worker_task_write_stdin(t, line) < 0) {
                complete(t, c, "the message could not be written to the agent");
                return true;
        }
        if (t->task->status == TASK_INTERRUPTED)
                (void) worker_task_set_status(t, TASK_RUNNING, NULL);
        complete(t, c, "ok");
        return true;
}

void worker_task_process_controls(WorkerTask *t) {
        Store *s = t->manager->store;
        ControlRequest *reqs = NULL;
        size_t n = 0;
        int r;

        /* Requests are rows: while the store does not take the task's events,
         * they wait there (acting on one writes its result). */
        if (t->lease_lost || t->phase == WORKER_TASK_FINISHED || t->stopping || worker_task_store_blocked(t))
                return;
        r = store_control_list_pending(s, t->task->id, &reqs, &n);
        if (r < 0) {
                log_warning_errno(r, "Task %s: failed to read control requests: %s", t->id8, store_last_error(s));
                return;
        }

        for (size_t i = 0; i < n && t->phase != WORKER_TASK_FINISHED && !t->lease_lost; i++) {
                const ControlRequest *c = &reqs[i];

                if (c->kind == CONTROL_CANCEL) {
                        do_cancel(t, c);
                        continue;
                }
                if (t->cancel_request_id) {
                        if (!streq(t->cancel_request_id, c->id))
                                complete(t, c, "the task is being cancelled");
                        continue;
                }
                /* The rest needs the agent: while git prepares, they wait. */
                if (t->phase != WORKER_TASK_AGENT || t->pid <= 0)
                        continue;
                switch (c->kind) {
                case CONTROL_PAUSE:
                        do_pause(t, c);
                        break;
                case CONTROL_RESUME:
                        do_resume(t, c);
                        break;
                case CONTROL_INTERRUPT:
                        do_interrupt(t, c);
                        break;
                case CONTROL_MESSAGE:
                        (void) do_message(t, c);
                        break;
                default:
                        complete(t, c, "unknown request");
                }
        }
        control_request_array_free(reqs, n);
}

int worker_task_take_late_messages(WorkerTask *t, char **ret) {
        Store *s = t->manager->store;
        ControlRequest *reqs = NULL;
        _cleanup_free_ char *joined = NULL;
        size_t n = 0;
        int r;

        r = store_control_list_pending(s, t->task->id, &reqs, &n);
        if (r < 0)
                return log_warning_errno(r, "Task %s: failed to read control requests: %s", t->id8, store_last_error(s));

        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *text = NULL;
                char *j;

                if (reqs[i].kind != CONTROL_MESSAGE)
                        continue;
                if (message_text(&reqs[i], &text) < 0) {
                        complete(t, &reqs[i], "a message needs a non-empty \"message\"");
                        continue;
                }
                if (asprintf(&j, "%s%s%s", strempty(joined), joined ? "\n\n" : "", text) < 0) {
                        control_request_array_free(reqs, n);
                        return -ENOMEM;
                }
                free(joined);
                joined = j;
                complete(t, &reqs[i], "ok (it starts the next run of the session)");
        }
        control_request_array_free(reqs, n);
        if (!joined)
                return 0;
        *ret = TAKE_PTR(joined);
        return 1;
}
