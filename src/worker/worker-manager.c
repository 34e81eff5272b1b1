/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* makima-worker's manager (see worker-manager.h): claims tasks when it has
 * room, wakes on D-Bus signals and PostgreSQL notifications, polls slowly in
 * case it missed both, keeps systemd's STATUS= current, and on SIGTERM
 * hands its tasks back to the queue. */

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "sandbox-task.h"
#include "worker-journal.h"
#include "worker-manager.h"

/* How long agents get to exit on SIGTERM before SIGKILL. */
#define STOP_TIMEOUT_USEC (5 * USEC_PER_SEC)

static void manager_remove_finished(Manager *m) {
        size_t k = 0;

        for (size_t i = 0; i < m->n_tasks; i++) {
                if (m->tasks[i]->phase == WORKER_TASK_FINISHED)
                        worker_task_free(m->tasks[i]);
                else
                        m->tasks[k++] = m->tasks[i];
        }
        m->n_tasks = k;
}

static size_t manager_n_active(Manager *m) {
        size_t n = 0;

        for (size_t i = 0; i < m->n_tasks; i++)
                if (m->tasks[i]->phase != WORKER_TASK_FINISHED)
                        n++;
        return n;
}

char *manager_status(Manager *m) {
        size_t n = manager_n_active(m), len = 0;
        char *s = NULL;
        FILE *f;

        if (n == 0)
                return strdup(m->stopping ? "stopping" : "idle, waiting for tasks");
        f = open_memstream(&s, &len);
        if (!f)
                return NULL;
        fprintf(f, "%s %zu task%s: ", m->stopping ? "stopping" : "running", n, n == 1 ? "" : "s");
        for (size_t i = 0, k = 0; i < m->n_tasks; i++) {
                WorkerTask *t = m->tasks[i];

                if (t->phase == WORKER_TASK_FINISHED)
                        continue;
                fprintf(f, "%s%s (%s)", k++ > 0 ? ", " : "", t->id8, worker_task_state_string(t));
        }
        if (fclose(f) != 0) {
                free(s);
                return NULL;
        }
        return s;
}

void manager_update_status(Manager *m) {
        _cleanup_free_ char *s = manager_status(m);

        if (!s || streq_ptr(s, m->last_status))
                return;
        (void) sd_notifyf(false, "STATUS=%s", s);
        log_debug("Status: %s", s);
        free(m->last_status);
        m->last_status = TAKE_PTR(s);
}

WorkerTask *manager_find_task(Manager *m, const char *id) {
        for (size_t i = 0; i < m->n_tasks; i++)
                if (m->tasks[i]->phase != WORKER_TASK_FINISHED && streq(m->tasks[i]->task->id, id))
                        return m->tasks[i];
        return NULL;
}

void manager_claim(Manager *m) {
        /* Before a claim that could rescue a task of the records, so that
         * they come first in its log. A store that refuses them would refuse
         * a claim too. */
        if (!m->stopping && manager_write_lost(m) > 0) {
                manager_update_status(m);
                return;
        }
        /* A lease of ours that ran out while the store refused writes makes
         * its task claimable: by us too. Take it back first, or claim later. */
        for (size_t i = 0; i < m->n_tasks; i++) {
                WorkerTask *t = m->tasks[i];
                int r;

                if (t->phase == WORKER_TASK_FINISHED || !worker_task_lease_ran_out(t))
                        continue;
                r = worker_task_lease_reclaim(t);
                if (r < 0 && r != -ENOLCK) {
                        log_debug("Task %s: its lease ran out and is not ours again yet; not claiming meanwhile.", t->id8);
                        manager_update_status(m);
                        return;
                }
        }
        while (!m->stopping && manager_n_active(m) < m->config->worker_max_concurrent_tasks) {
                char token[LEASE_TOKEN_MAX];
                Task *task = NULL;
                WorkerTask *t, **a;
                int r;

                r = store_task_claim(m->store, m->worker_id, m->config->worker_lease, &task, token);
                if (r < 0) {
                        log_warning_errno(r, "Failed to claim a task: %s", store_last_error(m->store));
                        break;
                }
                if (r == 0)
                        break;

                a = reallocarray(m->tasks, m->n_tasks + 1, sizeof(WorkerTask *));
                if (!a || worker_task_new(m, task, token, &t) < 0) {
                        if (a)
                                m->tasks = a;
                        /* The lease runs out and another worker (or we) rescue it. */
                        task_free(task);
                        (void) log_oom();
                        break;
                }
                m->tasks = a;
                m->tasks[m->n_tasks++] = t;
                (void) worker_task_start(t);
        }
        manager_update_status(m);
}

static int on_kick(sd_event_source *s, void *userdata) {
        Manager *m = userdata;

        manager_remove_finished(m);
        manager_claim(m);
        manager_update_status(m);
        return 0;
}

void manager_task_finished(Manager *m) {
        if (m->reap_source)
                (void) sd_event_source_set_enabled(m->reap_source, SD_EVENT_ONESHOT);
}

static void wake(Manager *m) {
        manager_claim(m);
        for (size_t i = 0; i < m->n_tasks; i++)
                worker_task_process_controls(m->tasks[i]);
        manager_update_status(m);
}

static int on_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        manager_claim(m);
        (void) sd_event_source_set_time_relative(s, m->config->worker_poll_interval);
        return 0;
}

static int on_task_queued(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *id = NULL;

        (void) sd_bus_message_read(message, "s", &id);
        log_debug("TaskQueued(%s)", strna(id));
        manager_claim(m);
        return 0;
}

static int on_control_queued(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *id = NULL, *kind = NULL;
        WorkerTask *t;

        if (sd_bus_message_read(message, "ss", &id, &kind) < 0)
                return 0;
        log_debug("ControlQueued(%s, %s)", id, kind);
        t = manager_find_task(m, id);
        if (t) {
                worker_task_process_controls(t);
                manager_update_status(m);
        }
        return 0;
}

static int bus_setup(Manager *m) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const char *address = getenv("MAKIMA_BUS_ADDRESS");
        int r;

        if (address) {
                r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_address(bus, address);
                if (r >= 0)
                        r = sd_bus_set_bus_client(bus, true);
                if (r >= 0)
                        r = sd_bus_start(bus);
        } else
                r = sd_bus_open_system(&bus);
        if (r < 0)
                return log_warning_errno(r, "Failed to connect to %s, polling every %" PRIu64 " s instead: %m",
                                         address ?: "the system bus", m->config->worker_poll_interval / USEC_PER_SEC);

        r = sd_bus_match_signal(bus, NULL, NULL, MAKIMA_BUS_PATH, MAKIMA_BUS_INTERFACE, "TaskQueued", on_task_queued, m);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, NULL, MAKIMA_BUS_PATH, MAKIMA_BUS_INTERFACE, "ControlQueued",
                                        on_control_queued, m);
        if (r >= 0)
                r = sd_bus_attach_event(bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_warning_errno(r, "Failed to watch makima's bus signals, polling instead: %m");
        m->bus = TAKE_PTR(bus);
        log_debug("Listening for %s signals on %s.", MAKIMA_BUS_INTERFACE, address ?: "the system bus");
        return 0;
}

static int on_listen(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        int r;

        r = store_listen_drain(m->store);
        if (r < 0) {
                /* A broken connection stays readable: stop watching it. */
                log_warning_errno(r, "Lost the store's notifications, polling instead: %s", store_last_error(m->store));
                m->listen_source = sd_event_source_disable_unref(m->listen_source);
                return 0;
        }
        if (r > 0)
                wake(m);
        return 0;
}

static int listen_setup(Manager *m) {
        int fd, r;

        r = store_listen(m->store, &fd);
        if (r == -EOPNOTSUPP)
                return 0;
        if (r < 0)
                return log_warning_errno(r, "Failed to listen for the store's notifications, polling instead: %s",
                                         store_last_error(m->store));
        r = sd_event_add_io(m->event, &m->listen_source, fd, EPOLLIN, on_listen, m);
        if (r < 0)
                return log_warning_errno(r, "Failed to watch the store's notifications: %m");
        return 0;
}

/* Waits (blocking: the loop is done) for the processes of the tasks. */
static void wait_children(Manager *m, usec_t deadline) {
        for (;;) {
                bool alive = false;

                for (size_t i = 0; i < m->n_tasks; i++) {
                        WorkerTask *t = m->tasks[i];
                        pid_t *pids[] = { &t->pid, &t->prepare_pid };

                        for (size_t k = 0; k < ELEMENTSOF(pids); k++) {
                                if (*pids[k] <= 0)
                                        continue;
                                if (waitpid(*pids[k], NULL, deadline == USEC_INFINITY ? 0 : WNOHANG) == 0)
                                        alive = true;
                                else
                                        *pids[k] = 0;
                        }
                }
                if (!alive || now_usec() >= deadline)
                        return;
                (void) nanosleep(&(struct timespec) { .tv_nsec = 20 * 1000 * 1000 }, NULL);
        }
}

/* On SIGTERM: stop the agents and hand every task back to the queue as
 * pending, keeping its session, worktree and branch, so that the next
 * worker to claim it (this one restarted, or another) continues the same
 * session with --resume. A task waiting interrupted for a message stays
 * interrupted. */
static int on_loop_exit(sd_event_source *s, void *userdata) {
        Manager *m = userdata;
        size_t n;

        m->stopping = true;
        /* What the store refuses from here on is tried this long, then left
         * to the ledger (worker_task_flush()). */
        m->store_deadline = now_usec() + m->config->worker_store_retry;
        n = manager_n_active(m);
        if (n == 0)
                return 0;
        (void) sd_notifyf(false, "STATUS=stopping: handing back %zu task%s", n, n == 1 ? "" : "s");
        log_info("Stopping: handing back %zu task%s.", n, n == 1 ? "" : "s");

        for (size_t i = 0; i < m->n_tasks; i++) {
                WorkerTask *t = m->tasks[i];

                t->stopping = true;
                if (t->prepare_pid > 0)
                        (void) kill(t->prepare_pid, SIGTERM);
                if (t->pid > 0) {
                        (void) worker_task_signal(t, SIGCONT);   /* a paused one too */
                        (void) worker_task_signal(t, SIGTERM);
                }
        }
        wait_children(m, now_usec() + STOP_TIMEOUT_USEC);
        for (size_t i = 0; i < m->n_tasks; i++) {
                WorkerTask *t = m->tasks[i];

                if (t->pid > 0) {
                        log_warning("Task %s: the agent did not stop in time, killing it.", t->id8);
                        (void) worker_task_signal(t, SIGKILL);
                }
                if (t->prepare_pid > 0)
                        (void) kill(t->prepare_pid, SIGKILL);
        }
        wait_children(m, USEC_INFINITY);

        for (size_t i = 0; i < m->n_tasks; i++) {
                WorkerTask *t = m->tasks[i];

                if (t->phase == WORKER_TASK_FINISHED)
                        continue;
                if (t->phase == WORKER_TASK_AGENT)
                        worker_task_drain(t);
                worker_task_finish(t, task_state_is_active(t->task->status) ? TASK_PENDING : t->task->status, NULL);
        }
        return 0;
}

int manager_new(sd_event *event, Config *config, unsigned instance, const char *bwrap, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_free_ char *store_error = NULL;
        char host[256];
        sigset_t mask;
        int r;

        m = calloc(1, sizeof(Manager));
        if (!m)
                return log_oom();
        m->event = sd_event_ref(event);
        m->config = config;
        m->instance = instance;
        m->bwrap = bwrap;

        if (gethostname(host, sizeof(host)) < 0)
                return log_error_errno(errno, "Failed to get the host name: %m");
        host[sizeof(host) - 1] = '\0';
        if (asprintf(&m->worker_id, "%s:%u", host, instance) < 0)
                return log_oom();

        /* Who agents run as is settled before anything runs: never root. */
        r = sandbox_identity_init(config, &m->agent);
        if (r < 0)
                return r;
        r = sandbox_identity_self(&m->caller);
        if (r < 0)
                return log_error_errno(r, "Failed to look up this worker's own user: %m");
        m->git = (GitContext) {
                .config = config,
                .agent = &m->agent,
                .caller = &m->caller,
                .bwrap = bwrap,
        };
        r = task_dirs_setup(config, &m->agent);
        if (r < 0)
                return r;
        r = manager_processes_setup(m);
        if (r < 0)
                return r;
        /* Without it the worker still runs; only a stop with events the store
         * refused would go unrecorded (it says so). */
        (void) manager_ledger_setup(m);

        /* Children are reaped through the loop (sd_event_add_child). */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block SIGCHLD: %m");

        r = store_open_full(config->store_backend,
                            config->store_backend == STORE_BACKEND_POSTGRESQL ? config->store_url : config->store_path,
                            &m->store, &store_error);
        if (r < 0)
                return log_error_errno(r, "Failed to open the %s store: %s", store_backend_to_string(config->store_backend),
                                       store_error ?: strerror(-r));

        worker_journal_setup();
        (void) bus_setup(m);
        (void) listen_setup(m);

        r = sd_event_add_time_relative(event, &m->poll_timer, CLOCK_MONOTONIC, config->worker_poll_interval,
                                       USEC_PER_SEC, on_poll, m);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->poll_timer, SD_EVENT_ON);
        if (r >= 0)
                /* The first claim runs in the loop, after READY=1. */
                r = sd_event_add_defer(event, &m->reap_source, on_kick, m);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->reap_source, SD_EVENT_ONESHOT);
        if (r >= 0)
                r = sd_event_add_exit(event, &m->exit_source, on_loop_exit, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the event loop: %m");

        log_info("Worker %s: up to %u tasks at once, agent '%s' as user %s, sandbox %s.", m->worker_id,
                 config->worker_max_concurrent_tasks, config->agent_command, m->agent.user,
                 config->sandbox_enabled ? "on" : "OFF");
        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_tasks; i++)
                worker_task_free(m->tasks[i]);
        free(m->tasks);
        sd_event_source_disable_unref(m->poll_timer);
        sd_event_source_disable_unref(m->reap_source);
        sd_event_source_disable_unref(m->exit_source);
        sd_event_source_disable_unref(m->listen_source);
        sd_event_source_disable_unref(m->lost_timer);
        ledger_free(m->ledger);
        sd_bus_flush_close_unref(m->bus);
        store_free(m->store);
        sd_event_unref(m->event);
        free(m->worker_id);
        cgroup_root_done(&m->cgroups);
        sandbox_identity_done(&m->agent);
        sandbox_identity_done(&m->caller);
        free(m->last_status);
        return mfree(m);
}
