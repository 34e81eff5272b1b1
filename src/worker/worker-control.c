/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Control requests for a running task (pause, resume, interrupt, message,
 * cancel). They are rows in the store: each is marked delivered when the
 * worker acts on it and completed with "ok" or the reason it does not apply;
 * bus signals and notifications only make the worker look sooner. */

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>

#include "json-util.h"
#include "log.h"
#include "stream-json.h"
#include "worker-manager.h"
#include "worker-task.h"

typedef struct ProcEntry {
        pid_t pid, ppid;
} ProcEntry;

static void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

/* Every process's parent, from /proc/<pid>/stat (this kernel may lack
 * /proc/<pid>/task/<tid>/children). */
static int proc_table(ProcEntry **ret, size_t *ret_n) {
        _cleanup_(closedirp) DIR *d = opendir("/proc");
        _cleanup_free_ ProcEntry *table = NULL;
        size_t n = 0, allocated = 0;
        struct dirent *de;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char path[64], buf[512], *paren;
                _cleanup_close_ int fd = -EBADF;
                ssize_t k;
                long ppid;
                char *end;
                long pid = strtol(de->d_name, &end, 10);

                if (*end || pid <= 0)
                        continue;
                (void) snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;       /* gone meanwhile */
                k = read(fd, buf, sizeof(buf) - 1);
                if (k <= 0)
                        continue;
                buf[k] = '\0';
                /* "pid (comm) state ppid …"; comm may hold anything, even ')'. */
                paren = strrchr(buf, ')');
                if (!paren || sscanf(paren + 1, " %*c %ld", &ppid) != 1)
                        continue;
                if (n == allocated) {
                        ProcEntry *t = reallocarray(table, MAX(allocated * 2, 256U), sizeof(ProcEntry));
                        if (!t)
                                return -ENOMEM;
                        table = t;
                        allocated = MAX(allocated * 2, 256U);
                }
                table[n++] = (ProcEntry) { .pid = (pid_t) pid, .ppid = (pid_t) ppid };
        }
        *ret = TAKE_PTR(table);
        *ret_n = n;
        return 0;
}

static bool pid_in(const pid_t *set, size_t n, pid_t pid) {
        for (size_t i = 0; i < n; i++)
                if (set[i] == pid)
                        return true;
        return false;
}

int worker_signal_tree(pid_t root, int sig) {
        _cleanup_free_ pid_t *done = NULL;
        size_t n_done = 0;
        bool found;

        if (root <= 0)
                return -EINVAL;
        if (kill(root, sig) < 0)
                return -errno;
        done = malloc(sizeof(pid_t));
        if (!done)
                return -ENOMEM;
        done[n_done++] = root;

        /* A stopped parent forks no more, so repeating the walk until it
         * finds nobody new catches children born during it. Killing with
         * SIGKILL a stopped tree works the same way. */
        do {
                _cleanup_free_ ProcEntry *table = NULL;
                size_t n;
                int r;

                found = false;
                r = proc_table(&table, &n);
                if (r < 0)
                        return r;
                for (bool more = true; more;) {
                        more = false;
                        for (size_t i = 0; i < n; i++) {
                                pid_t *d;

                                if (!pid_in(done, n_done, table[i].ppid) || pid_in(done, n_done, table[i].pid))
                                        continue;
                                (void) kill(table[i].pid, sig);
                                d = reallocarray(done, n_done + 1, sizeof(pid_t));
                                if (!d)
                                        return -ENOMEM;
                                done = d;
                                done[n_done++] = table[i].pid;
                                found = more = true;
                        }
                }
        } while (found);
        return (int) n_done;
}

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
        /* bwrap's death takes the sandbox's pid namespace with it; the walk
         * also reaches an unsandboxed agent's children. */
        if (t->prepare_pid > 0)
                (void) kill(t->prepare_pid, SIGKILL);
        if (t->pid > 0)
                (void) worker_signal_tree(t->pid, SIGKILL);
        else if (t->prepare_pid <= 0 && t->phase == WORKER_TASK_AGENT) {
                /* Between runs (waiting for a rate limit): nothing to reap. */
                worker_task_cancelled(t);
                return;
        }
        /* Completed (and the status written) when the child is reaped. */
}

int worker_task_agent_stop(WorkerTask *t) {
        return worker_signal_tree(t->pid, SIGSTOP);
}

int worker_task_agent_continue(WorkerTask *t) {
        return worker_signal_tree(t->pid, SIGCONT);
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
