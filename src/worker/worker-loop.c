/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The autonomous loop: after each successful run of a looping task's agent,
 * its <COMPLETION_GATE> says whether the task is done; if not, the agent is
 * restarted on the same session (--resume) with a prompt that quotes the
 * gate, under the circuit breaker. Also the wait after a rate limit the CLI
 * gave up on, which is not an iteration. */

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "git-util.h"
#include "json-util.h"
#include "log.h"
#include "worker-manager.h"
#include "worker-task.h"

/* The wait after a rate limit without a reset time: 5 s, doubled for each
 * wait in a row, at most 5 minutes. */
#define RATE_LIMIT_BACKOFF_USEC (5 * USEC_PER_SEC)
#define RATE_LIMIT_BACKOFF_MAX_USEC (300 * USEC_PER_SEC)

static void finish_oom(WorkerTask *t) {
        (void) log_oom();
        worker_task_finish(t, TASK_FAILED, "the worker ran out of memory");
}

static TaskState trip_status(CircuitBreakerTrip trip) {
        return trip == CIRCUIT_BREAKER_ITERATION_LIMIT ? TASK_ITERATION_LIMIT_REACHED : TASK_FAILED;
}

int worker_task_loop_init(WorkerTask *t, const char *fingerprint) {
        const Config *c = t->manager->config;
        Store *s = t->manager->store;
        _cleanup_free_ char *reason = NULL;
        double max_cost = t->task->max_cost_usd;
        bool loop = t->task->autonomous_loop;
        CircuitBreakerTrip trip;
        int r;

        if (t->task->contract_id && (!loop || max_cost <= 0)) {
                _cleanup_(contract_freep) Contract *k = NULL;

                r = store_contract_get(s, t->task->contract_id, &k);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        log_warning_errno(r, "Task %s: failed to read its contract, not looping unless the task "
                                          "says so: %s", t->id8, store_last_error(s));
                else {
                        loop = loop || k->autonomous_loop;
                        if (max_cost <= 0)
                                max_cost = k->max_cost_usd;
                }
        }
        if (!loop)
                return 0;

        t->loop = true;
        circuit_breaker_init(&t->breaker,
                             &(CircuitBreakerConfig) {
                                     .default_max_iterations = c->loop_default_max_iterations,
                                     .hard_limit = c->loop_hard_limit,
                                     .no_change_threshold = c->loop_no_change_threshold,
                                     .same_error_threshold = c->loop_same_error_threshold,
                             },
                             (unsigned) MAX(t->task->max_iterations, 0), max_cost);
        /* A resumed task (or one a restarted worker rescued) goes on counting. */
        circuit_breaker_restore(&t->breaker, (unsigned) MAX(t->task->iteration_count, 0), t->task->cost_usd);
        if (fingerprint && circuit_breaker_set_fingerprint(&t->breaker, fingerprint) < 0)
                return -ENOMEM;

        r = circuit_breaker_check(&t->breaker, &trip, &reason);
        if (r < 0)
                return r;
        if (r > 0) {
                worker_task_finish(t, trip_status(trip), reason);
                return 1;
        }
        log_info("Task %s: autonomous loop, iteration %u of at most %u%s.", t->id8, t->breaker.iterations + 1,
                 t->breaker.max_iterations, t->breaker.capped ? " (capped by the hard limit)" : "");
        return 0;
}

int worker_task_spawn_iteration(WorkerTask *t, const char *prompt) {
        t->task->iteration_count++;
        t->dirty = true;
        return worker_task_spawn(t, prompt);
}

int worker_task_loop_collect(WorkerTask *t, const char *text) {
        size_t n = strlen(text);
        char *p;

        if (!t->loop)
                return 0;
        p = realloc(t->loop_text, t->loop_text_len + n + 2);
        if (!p)
                return -ENOMEM;
        t->loop_text = p;
        memcpy(p + t->loop_text_len, text, n);
        t->loop_text_len += n;
        p[t->loop_text_len++] = '\n';
        p[t->loop_text_len] = '\0';
        return 0;
}

/* {"iteration":N,"max":M,"reason":…,"cost_usd":…,"total_cost_usd":…,"gate":{…}|null}
 * and "iteration 3/10: reason ($0.0123)". */
static int iteration_event(WorkerTask *t, const char *reason, double cost, const CompletionGate *gate, int priority) {
        _cleanup_json_ json_object *o = json_object_new_object(), *g = NULL;
        _cleanup_free_ char *summary = NULL;
        unsigned n = (unsigned) MAX(t->task->iteration_count, 0);
        const char *s;
        int r;

        if (!o)
                return -ENOMEM;
        if (gate) {
                r = completion_gate_to_json(gate, &g);
                if (r < 0)
                        return r;
        }
        if (json_object_object_add(o, "iteration", json_object_new_int64(n)) < 0 ||
            json_object_object_add(o, "max", json_object_new_int64(t->breaker.max_iterations)) < 0 ||
            json_add_string(o, "reason", reason) < 0 ||
            json_object_object_add(o, "cost_usd", json_object_new_double(cost)) < 0 ||
            json_object_object_add(o, "total_cost_usd", json_object_new_double(t->task->cost_usd)) < 0 ||
            json_object_object_add(o, "gate", TAKE_PTR(g)) < 0)
                return -ENOMEM;
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!s)
                return -ENOMEM;
        if (asprintf(&summary, "iteration %u/%u: %s ($%.4f)", n, t->breaker.max_iterations, reason, cost) < 0)
                return -ENOMEM;
        return worker_task_add_event(t, "iteration", s, strlen(s), priority, summary);
}

static int continuation_prompt(const CompletionGate *gate, const char *gate_error, char **ret) {
        _cleanup_free_ char *quoted = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&quoted, &size);
        if (!f)
                return -ENOMEM;
        if (gate) {
                fprintf(f, "Your completion gate said you are not done yet");
                if (gate->reason)
                        fprintf(f, ":\n\nreason: %s\n", gate->reason);
                else
                        fprintf(f, ".\n");
                if (gate->progress)
                        fprintf(f, "progress: %s\n", gate->progress);
                if (gate->blockers && gate->blockers[0]) {
                        fprintf(f, "blockers:\n");
                        for (char **b = gate->blockers; *b; b++)
                                fprintf(f, "- %s\n", *b);
                        fprintf(f, "\nGet past these blockers, or find another way to the goal.");
                }
        } else if (gate_error)
                fprintf(f, "Your <COMPLETION_GATE> block could not be read (%s).", gate_error);
        else
                fprintf(f, "Your answer did not end with a <COMPLETION_GATE> block.");
        if (fclose(f) != 0 || !quoted)
                return -ENOMEM;

        if (asprintf(ret,
                     "makima: this is the next iteration of the same task, in the same worktree. %s\n\n"
                     "Continue the work: look at `git status` and `git log` first, make progress, commit it. "
                     "End your answer with a <COMPLETION_GATE> block (ready: true only when the whole task is "
                     "done; else ready: false, with reason, progress and blockers).",
                     quoted) < 0)
                return -ENOMEM;
        return 0;
}

/* After the fingerprint (NULL: none, or it could not be taken): the
 * circuit breaker decides, or the next iteration starts. */
static void iteration_checked(WorkerTask *t, const char *fingerprint) {
        _cleanup_(completion_gate_freep) CompletionGate *gate = NULL;
        _cleanup_free_ char *gate_error = NULL, *reason = NULL, *what = NULL, *prompt = NULL;
        double cost = MAX(t->task->cost_usd - t->cost_base, 0.0);
        CircuitBreakerTrip trip;
        int r;

        r = completion_gate_find(strempty(t->loop_text), t->loop_text_len, &gate, &gate_error);
        if (r == -ENOMEM)
                return finish_oom(t);

        r = circuit_breaker_record(&t->breaker, fingerprint, gate, cost, &trip, &reason);
        if (r < 0)
                return finish_oom(t);
        if (r > 0) {
                if (iteration_event(t, reason, cost, gate, LOG_WARNING) < 0)
                        return finish_oom(t);
                worker_task_finish(t, trip_status(trip), reason);
                return;
        }

        if (gate)
                r = completion_gate_summary(gate, &what) < 0 ? -ENOMEM : 0;
        else if (gate_error)
                r = asprintf(&what, "malformed completion gate (%s)", gate_error);
        else
                r = asprintf(&what, "no completion gate");
        if (r < 0 || !what)
                return finish_oom(t);
        if (asprintf(&reason, "%s, restarting", what) < 0 || iteration_event(t, reason, cost, gate, LOG_INFO) < 0 ||
            continuation_prompt(gate, gate_error, &prompt) < 0)
                return finish_oom(t);

        worker_task_outcome_reset(t);
        r = worker_task_spawn_iteration(t, prompt);
        if (r < 0) {
                worker_task_finish(t, TASK_FAILED, "the worker could not start the agent (its log says why)");
                return;
        }
        if (t->phase == WORKER_TASK_AGENT)
                worker_task_process_controls(t);
}

/* The fingerprint is git on what the agent wrote: in a child of its own, in
 * the task's cgroup (its limits, killed with it), so that git that takes
 * long (a FIFO of the agent's, a sparse file of terabytes; each run is cut
 * off after GIT_TIMEOUT_SEC) holds neither the worker's other tasks nor
 * this one's heartbeat and cancel. It prints the fingerprint. */
static _noreturn_ void fingerprint_child(const WorkerTask *t, int fd) {
        _cleanup_free_ char *fingerprint = NULL;
        sigset_t none;

        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        (void) signal(SIGPIPE, SIG_DFL);
        if (task_cgroup_join(&t->cgroup) < 0)
                _exit(EXIT_FAILURE);
        if (git_worktree_fingerprint(worker_task_child_git((WorkerTask *) t),
                                     &(GitTaskRepo) { .worktree = t->task->worktree, .git_dir = t->git_dir,
                                                      .borrowed = t->borrowed },
                                     &fingerprint, NULL) < 0)
                _exit(EXIT_FAILURE);
        if (write(fd, fingerprint, strlen(fingerprint)) != (ssize_t) strlen(fingerprint))
                _exit(EXIT_FAILURE);
        _exit(EXIT_SUCCESS);
}

static int on_fingerprint_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        WorkerTask *t = userdata;
        char buf[256];
        ssize_t n;

        n = read(t->prepare_fd, buf, sizeof buf - 1);
        log_debug("Task %s: worktree fingerprint in %.1f ms%s.", t->id8,
                  (double) (now_usec() - t->fingerprint_started) / USEC_PER_MSEC,
                  si->si_code == CLD_EXITED && si->si_status == 0 ? "" : " (failed)");
        if (worker_task_child_gone(t))
                return 0;
        if (t->stopping || t->phase == WORKER_TASK_FINISHED)
                return 0;       /* handed back by the manager */
        if (si->si_code != CLD_EXITED || si->si_status != 0 || n <= 0)
                n = 0;
        buf[n] = '\0';
        iteration_checked(t, n > 0 ? buf : NULL);
        return 0;
}

void worker_task_loop_iteration_done(WorkerTask *t) {
        _cleanup_(completion_gate_freep) CompletionGate *gate = NULL;
        _cleanup_free_ char *gate_error = NULL;
        double cost = MAX(t->task->cost_usd - t->cost_base, 0.0);
        int p[2], r;
        pid_t pid;

        t->n_waits = 0;
        r = completion_gate_find(strempty(t->loop_text), t->loop_text_len, &gate, &gate_error);
        if (r == -ENOMEM)
                return finish_oom(t);

        if (gate && gate->ready) {
                _cleanup_free_ char *summary = NULL;

                if (completion_gate_summary(gate, &summary) < 0 || iteration_event(t, summary, cost, gate, LOG_INFO) < 0)
                        return finish_oom(t);
                worker_task_finish(t, TASK_DONE, NULL);
                return;
        }

        /* A task without a repository has no fingerprint: its iterations
         * count as no progress. */
        if (!t->git_dir)
                return iteration_checked(t, NULL);
        r = worker_task_scratch_make(t);
        if (r < 0) {
                log_warning_errno(r, "Task %s: failed to make a scratch directory, no fingerprint: %m", t->id8);
                return iteration_checked(t, NULL);
        }
        if (pipe2(p, O_CLOEXEC) < 0) {
                log_warning_errno(errno, "Task %s: failed to make a pipe, no fingerprint: %m", t->id8);
                worker_task_scratch_remove(t);
                return iteration_checked(t, NULL);
        }
        t->fingerprint_started = now_usec();
        pid = fork();
        if (pid < 0) {
                log_warning_errno(errno, "Task %s: failed to fork, no fingerprint: %m", t->id8);
                (void) close(p[0]);
                (void) close(p[1]);
                worker_task_scratch_remove(t);
                return iteration_checked(t, NULL);
        }
        if (pid == 0) {
                (void) close(p[0]);
                fingerprint_child(t, p[1]);
        }
        (void) close(p[1]);
        t->prepare_fd = p[0];
        t->prepare_pid = pid;
        (void) fcntl(t->prepare_fd, F_SETFL, O_NONBLOCK);
        r = sd_event_add_child(t->manager->event, &t->prepare_source, pid, WEXITED, on_fingerprint_exit, t);
        if (r < 0) {
                log_warning_errno(r, "Task %s: failed to watch the fingerprint's child: %m", t->id8);
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                t->prepare_pid = 0;
                closep(&t->prepare_fd);
                t->prepare_fd = -EBADF;
                worker_task_scratch_remove(t);
                return iteration_checked(t, NULL);
        }
}

static int on_wait_over(sd_event_source *s, uint64_t usec, void *userdata) {
        _cleanup_free_ char *prompt = NULL;
        WorkerTask *t = userdata;
        int r;

        t->wait_timer = sd_event_source_disable_unref(t->wait_timer);
        if (t->phase == WORKER_TASK_FINISHED || t->lease_lost || t->stopping)
                return 0;

        (void) worker_task_set_status(t, TASK_RUNNING, NULL);
        if (t->phase == WORKER_TASK_FINISHED || t->lease_lost)
                return 0;
        /* The same session, told only to go on; a run that was refused
         * before the CLI kept a session gets the plan again. */
        if (worker_task_session_exists(t))
                prompt = strdup("makima: the rate limit you ran into is over. Continue where you left off.");
        else
                (void) worker_task_first_prompt(t, &prompt);
        if (!prompt) {
                finish_oom(t);
                return 0;
        }
        worker_task_outcome_reset(t);
        r = worker_task_spawn(t, prompt);
        if (r < 0)
                worker_task_finish(t, TASK_FAILED, "the worker could not start the agent (its log says why)");
        else if (t->phase == WORKER_TASK_AGENT)
                worker_task_process_controls(t);
        return 0;
}

void worker_task_rate_limit_wait(WorkerTask *t) {
        _cleanup_free_ char *why = NULL;
        usec_t now = now_usec(), delay, until;
        const char *source;
        char clock[16];
        struct tm tm;
        time_t tt;
        int r;

        if (t->outcome.resets_at > 0 && t->outcome.resets_at * USEC_PER_SEC > now) {
                /* A second more: the reset is rounded down to seconds. */
                delay = t->outcome.resets_at * USEC_PER_SEC - now + USEC_PER_SEC;
                source = "the reset time the API gave";
        } else {
                delay = MIN(RATE_LIMIT_BACKOFF_USEC << MIN(t->n_waits, 10U), RATE_LIMIT_BACKOFF_MAX_USEC);
                source = "no reset time given, backing off";
        }
        t->n_waits++;
        until = now + delay;
        tt = (time_t) (until / USEC_PER_SEC);
        if (!localtime_r(&tt, &tm) || strftime(clock, sizeof(clock), "%H:%M:%S", &tm) == 0)
                snprintf(clock, sizeof(clock), "?");
        if (asprintf(&why, "rate limited until %s (%s, %.0f s)", clock, source,
                     (double) delay / USEC_PER_SEC) < 0)
                return finish_oom(t);

        r = sd_event_add_time_relative(t->manager->event, &t->wait_timer, CLOCK_MONOTONIC, delay, USEC_PER_MSEC * 10,
                                       on_wait_over, t);
        if (r < 0) {
                log_error_errno(r, "Task %s: failed to set up the rate limit's timer: %m", t->id8);
                worker_task_finish(t, TASK_FAILED, "the worker could not wait for the rate limit");
                return;
        }
        (void) sd_event_source_set_description(t->wait_timer, "rate-limit-wait");
        (void) worker_task_set_status(t, TASK_WAITING, why);
}
