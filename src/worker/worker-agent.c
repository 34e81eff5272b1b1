/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent's process: its command line, the spawn into the sandbox with
 * pipes on stdin, stdout and stderr, and what comes back on them: every
 * stdout line is a stream-json event for the store and the journal, every
 * stderr line an event of its own. Reads are batched: the lines of one read
 * go to the store in one transaction. */

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "json-util.h"
#include "log.h"
#include "sandbox.h"
#include "stream-json.h"
#include "worker-manager.h"
#include "worker-task.h"

/* How much one read callback takes before the loop turns to other work. */
#define READ_BUDGET (1024U * 1024U)
/* How much of a bad line is kept in its event. */
#define BAD_LINE_KEEP (64U * 1024U)
/* The agent's exit is looked at after its output (lower priority runs later). */
#define CHILD_PRIORITY 10

#define PERMISSION_REFUSAL "makima grants no permissions interactively"

/* RFC 3629, as the store wants every string. */
static size_t utf8_valid_prefix(const uint8_t *p, size_t len) {
        size_t i = 0;

        while (i < len) {
                uint8_t c = p[i], lo = 0x80, hi = 0xBF;
                size_t n;

                if (c < 0x80) {
                        if (c == 0)
                                return i;
                        i++;
                        continue;
                }
                if (c >= 0xC2 && c <= 0xDF)
                        n = 1;
                else if (c >= 0xE0 && c <= 0xEF) {
                        n = 2;
                        lo = c == 0xE0 ? 0xA0 : 0x80;
                        hi = c == 0xED ? 0x9F : 0xBF;
                } else if (c >= 0xF0 && c <= 0xF4) {
                        n = 3;
                        lo = c == 0xF0 ? 0x90 : 0x80;
                        hi = c == 0xF4 ? 0x8F : 0xBF;
                } else
                        return i;
                if (len - i <= n || p[i + 1] < lo || p[i + 1] > hi)
                        return i;
                for (size_t k = 2; k <= n; k++)
                        if ((p[i + k] & 0xC0) != 0x80)
                                return i;
                i += n + 1;
        }
        return i;
}

static bool utf8_valid(const char *s, size_t len) {
        return utf8_valid_prefix((const uint8_t *) s, len) == len;
}

/* A copy with every byte that is not valid UTF-8 (and NUL) as U+FFFD. */
static char *utf8_sanitize(const char *s, size_t len) {
        char *t = malloc(len * 3 + 1), *o = t;
        size_t i = 0;

        if (!t)
                return NULL;
        while (i < len) {
                size_t k = utf8_valid_prefix((const uint8_t *) s + i, len - i);

                memcpy(o, s + i, k);
                o += k;
                i += k;
                if (i < len) {
                        memcpy(o, "\xef\xbf\xbd", 3);
                        o += 3;
                        i++;
                }
        }
        *o = '\0';
        return t;
}

/* {"line": "<text, sanitized and cut>", "error": "…", "bytes": N} */
static int wrap_line(const char *line, size_t len, const char *error, char **ret_payload, char **ret_text) {
        _cleanup_json_ json_object *o = json_object_new_object();
        _cleanup_free_ char *text = utf8_sanitize(line, MIN(len, BAD_LINE_KEEP));
        const char *s;

        if (!o || !text)
                return -ENOMEM;
        if (json_add_string(o, "line", text) < 0 ||
            (error && json_add_string(o, "error", error) < 0) ||
            (len > BAD_LINE_KEEP && json_object_object_add(o, "bytes", json_object_new_int64((int64_t) len)) < 0))
                return -ENOMEM;
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!s || !(*ret_payload = strdup(s)))
                return -ENOMEM;
        if (ret_text)
                *ret_text = TAKE_PTR(text);
        return 0;
}

static void cut_for_summary(char *s) {
        size_t n = utf8_valid_prefix((const uint8_t *) s, MIN(strlen(s), (size_t) STREAM_JSON_SUMMARY_TEXT_MAX));

        s[n] = '\0';
        for (char *p = s; *p; p++)
                if (*p == '\r' || *p == '\t')
                        *p = ' ';
}

static int add_bad_line(WorkerTask *t, const char *line, size_t len, const char *error) {
        _cleanup_free_ char *payload = NULL, *text = NULL, *summary = NULL;
        int r;

        r = wrap_line(line, len, error, &payload, &text);
        if (r < 0)
                return r;
        cut_for_summary(text);
        if (asprintf(&summary, "invalid output (%s): %s", error, text) < 0)
                return -ENOMEM;
        return worker_task_add_event(t, "invalid_output", payload, strlen(payload), LOG_ERR, summary);
}

/* The CLI's words when it is not logged in, else NULL. */
static const char *auth_failure(const StreamEvent *e) {
        if (e->type == STREAM_EVENT_ASSISTANT && streq_ptr(e->error, "authentication_failed"))
                return e->text ?: "authentication failed";
        if (e->type != STREAM_EVENT_RESULT || !e->is_error)
                return NULL;
        if (e->api_error_status == 401)
                return e->result ?: "HTTP 401";
        if (e->result && (strstr(e->result, "Not logged in") || strstr(e->result, "Invalid API key")))
                return e->result;
        return NULL;
}

static void stdin_pump(WorkerTask *t);
static int queue_status(WorkerTask *t, TaskState status);

static int on_result(WorkerTask *t, const StreamEvent *e) {
        AgentOutcome *o = &t->outcome;

        o->have_result = true;
        o->is_error = e->is_error;
        o->api_error_status = e->api_error_status;
        if (e->is_error && e->api_error_status == 429)
                o->rate_limited = true;
        if (free_and_strdup(&o->subtype, e->subtype) < 0 || free_and_strdup(&o->text, e->result) < 0)
                return -ENOMEM;
        if (e->result && worker_task_loop_collect(t, e->result) < 0)
                return -ENOMEM;
        /* The CLI counts cost per process; earlier runs are in cost_base. */
        t->task->cost_usd = t->cost_base + MAX(e->total_cost_usd, 0.0);
        t->dirty = true;

        if (t->interrupt_pending) {
                /* The turn we interrupted is over; the CLI waits for a message. */
                t->interrupt_pending = false;
                return queue_status(t, TASK_INTERRUPTED);
        }
        /* The turn is over: end of input lets the CLI exit. A message written
         * during the turn is queued in the CLI, which answers it (with a
         * result of its own) before it acts on the end of its input. */
        t->close_stdin_when_flushed = true;
        stdin_pump(t);
        return 0;
}

static int queue_status(WorkerTask *t, TaskState status) {
        if (!task_state_transition_allowed(t->task->status, status))
                return 0;
        return worker_task_queue_status(t, status, NULL);
}

/* What makima does with an event beyond storing it. */
/* A session id as the CLI makes them (a UUID, or the fake agent's
 * "fake-session-…"): letters, digits, '-' and '_', not starting with '-'. */
static bool session_id_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 128 || s[0] == '-')
                return false;
        return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == n;
}

static int act_on(WorkerTask *t, const StreamEvent *e) {
        const char *auth;
        int r;

        auth = auth_failure(e);
        if (auth && !t->outcome.auth_error) {
                t->outcome.auth_error = strdup(auth);
                if (!t->outcome.auth_error)
                        return -ENOMEM;
        }

        switch (e->type) {
        case STREAM_EVENT_SYSTEM_INIT:
                /* The agent names it: it becomes a file name in its home and an
                 * argument of the next run, so only the CLI's own shape is kept. */
                if (e->session_id && !session_id_is_valid(e->session_id)) {
                        log_warning("Task %s: the agent's session id is not one (%zu bytes); ignoring it.", t->id8,
                                    strlen(e->session_id));
                        return 0;
                }
                if (e->session_id && !streq_ptr(e->session_id, t->task->session_id)) {
                        r = free_and_strdup(&t->task->session_id, e->session_id);
                        if (r < 0)
                                return r;
                        t->dirty = true;
                }
                return 0;

        case STREAM_EVENT_RESULT:
                return on_result(t, e);

        case STREAM_EVENT_RATE_LIMIT:
                /* A rejected limit is a wait, not a failure; the CLI retries,
                 * and if it gives up the worker waits for the reset. */
                if (streq_ptr(e->status, "rejected")) {
                        t->outcome.rate_limited = true;
                        t->outcome.resets_at = e->resets_at;
                }
                if (streq_ptr(e->status, "rejected") && t->task->status == TASK_RUNNING)
                        return queue_status(t, TASK_WAITING);
                if (!streq_ptr(e->status, "rejected") && t->task->status == TASK_WAITING)
                        return queue_status(t, TASK_RUNNING);
                return 0;

        case STREAM_EVENT_ASSISTANT:
                if (streq_ptr(e->error, "rate_limit"))
                        t->outcome.rate_limited = true;
                if (e->text && !e->error && worker_task_loop_collect(t, e->text) < 0)
                        return -ENOMEM;
                /* fall through */
        case STREAM_EVENT_USER:
                if (t->task->status == TASK_WAITING)
                        return queue_status(t, TASK_RUNNING);
                return 0;

        case STREAM_EVENT_CONTROL_REQUEST: {
                _cleanup_free_ char *answer = NULL;

                /* Nobody is there to grant anything; an answer keeps it going. */
                if (!e->request_id)
                        return 0;
                r = stream_json_control_error_response(e->request_id, PERMISSION_REFUSAL, &answer);
                if (r < 0)
                        return r;
                r = worker_task_write_stdin(t, answer);
                if (r < 0 && r != -EPIPE)
                        return r;
                return 0;
        }

        default:
                return 0;
        }
}

static int on_stdout_line(const char *line, size_t len, bool overlong, void *userdata) {
        _cleanup_(stream_event_freep) StreamEvent *e = NULL;
        _cleanup_free_ char *summary = NULL;
        WorkerTask *t = userdata;
        int priority = LOG_INFO, r;

        if (overlong)
                return add_bad_line(t, line, len, "line longer than 16 MiB, dropped");
        while (len > 0 && IN_SET(line[len - 1], '\r', ' ', '\t'))
                len--;
        if (len == 0)
                return 0;

        if (!t->seen_output) {
                t->seen_output = true;
                log_debug("Task %s: first output %.1f ms after the claim.", t->id8,
                          (double) (now_usec() - t->claimed_at) / USEC_PER_MSEC);
        }
        r = stream_json_parse_line_full(line, len, t->task->worktree, &e);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return add_bad_line(t, line, len, "not a JSON object");
        if (!utf8_valid(line, len))
                return add_bad_line(t, line, len, "not valid UTF-8");

        r = stream_event_summary(e, &summary);
        if (r < 0)
                return r;
        if ((e->type == STREAM_EVENT_RESULT && e->is_error) || (e->type == STREAM_EVENT_ASSISTANT && e->error))
                priority = LOG_ERR;
        else if (e->type == STREAM_EVENT_SYSTEM_OTHER && streq_ptr(e->subtype, "api_retry"))
                priority = LOG_WARNING;

        r = worker_task_add_event(t, e->type_string ?: "unknown", line, len, priority, summary);
        if (r < 0)
                return r;
        return act_on(t, e);
}

static int on_stderr_line(const char *line, size_t len, bool overlong, void *userdata) {
        _cleanup_free_ char *payload = NULL, *text = NULL, *summary = NULL;
        WorkerTask *t = userdata;
        int r;

        while (len > 0 && IN_SET(line[len - 1], '\r', ' ', '\t'))
                len--;
        if (len == 0)
                return 0;
        r = wrap_line(line, len, overlong ? "line longer than 16 MiB, dropped" : NULL, &payload, &text);
        if (r < 0)
                return r;
        r = free_and_strdup(&t->outcome.last_stderr, text);
        if (r < 0)
                return r;
        cut_for_summary(text);
        if (asprintf(&summary, "stderr: %s", text) < 0)
                return -ENOMEM;
        return worker_task_add_event(t, "stderr", payload, strlen(payload), LOG_WARNING, summary);
}

static int read_pipe(WorkerTask *t, bool is_stdout) {
        LineReader *reader = is_stdout ? &t->stdout_reader : &t->stderr_reader;
        sd_event_source **source = is_stdout ? &t->stdout_source : &t->stderr_source;
        int *fd = is_stdout ? &t->stdout_fd : &t->stderr_fd;
        int r;

        if (*fd < 0)
                return 1;
        r = line_reader_read(reader, *fd, READ_BUDGET, is_stdout ? on_stdout_line : on_stderr_line, t);
        if (r < 0)
                log_error_errno(r, "Task %s: failed to read the agent's %s: %m", t->id8, is_stdout ? "stdout" : "stderr");
        (void) worker_task_flush(t);
        if (r < 0 || r == 1) {
                *source = sd_event_source_disable_unref(*source);
                closep(fd);
                *fd = -EBADF;
        }
        return r;
}

static int on_stdout(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        (void) read_pipe(userdata, true);
        return 0;
}

static int on_stderr(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        (void) read_pipe(userdata, false);
        return 0;
}

void worker_task_drain(WorkerTask *t) {
        /* After the exit everything the sandbox wrote is in the pipes. A
         * writer left outside the sandbox (an unsandboxed agent's daemon)
         * must not keep us here: stop when a pipe is empty. */
        while (read_pipe(t, true) == 2)
                ;
        while (read_pipe(t, false) == 2)
                ;
}

static void close_stdin(WorkerTask *t) {
        t->stdin_source = sd_event_source_disable_unref(t->stdin_source);
        closep(&t->stdin_fd);
        t->stdin_fd = -EBADF;
        line_writer_done(&t->stdin_writer);
}

static void stdin_pump(WorkerTask *t) {
        int r;

        if (t->stdin_fd < 0)
                return;
        r = line_writer_flush(&t->stdin_writer, t->stdin_fd);
        if (r < 0) {
                /* The agent closed its end (it exits): nothing more to say. */
                log_debug_errno(r, "Task %s: the agent's stdin is closed: %m", t->id8);
                close_stdin(t);
                return;
        }
        if (r > 0 && t->close_stdin_when_flushed) {
                close_stdin(t);
                return;
        }
        (void) sd_event_source_set_enabled(t->stdin_source, r == 0 ? SD_EVENT_ON : SD_EVENT_OFF);
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        stdin_pump(userdata);
        return 0;
}

bool worker_task_stdin_open(const WorkerTask *t) {
        return t->stdin_fd >= 0 && !t->close_stdin_when_flushed;
}

int worker_task_write_stdin(WorkerTask *t, const char *line) {
        int r;

        if (!worker_task_stdin_open(t))
                return -EPIPE;
        r = line_writer_queue(&t->stdin_writer, line, strlen(line));
        if (r < 0)
                return r;
        stdin_pump(t);
        return 0;
}

/* Where the CLI keeps a session: <config>/projects/<cwd, every character
 * that is not a letter or digit as '-'>/<session id>.jsonl. */
bool worker_task_session_exists(WorkerTask *t) {
        _cleanup_free_ char *cwd = strdup(t->task->worktree), *path = NULL, *config = NULL;
        const char *dir = NULL;

        if (!cwd || !t->task->session_id || !session_id_is_valid(t->task->session_id))
                return false;
        for (char *p = cwd; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
                        *p = '-';
        for (char **e = t->manager->config->agent_environment; e && *e; e++)
                if (startswith(*e, "CLAUDE_CONFIG_DIR="))
                        dir = *e + strlen("CLAUDE_CONFIG_DIR=");
        if (!dir) {
                if (asprintf(&config, "%s/.claude", t->home) < 0)
                        return false;
                dir = config;
        }
        if (asprintf(&path, "%s/projects/%s/%s.jsonl", dir, cwd, t->task->session_id) < 0)
                return false;
        return access(path, F_OK) >= 0;
}

int worker_task_first_prompt(WorkerTask *t, char **ret) {
        char *p;
        int r;

        /* Messages that waited for the task (sent while it was handed back,
         * or interrupted when its worker stopped) continue its session. */
        if (t->task->session_id) {
                r = worker_task_take_late_messages(t, &p);
                if (r == -ENOMEM)
                        return r;
                if (r > 0) {
                        *ret = p;
                        return 0;
                }
        }
        if (!t->task->session_id) {
                p = strdup(strempty(t->task->plan));
                if (!p)
                        return -ENOMEM;
                *ret = p;
                return 0;
        }
        if (t->loop && asprintf(&p,
                                "makima: this task goes on in the same worktree and conversation (it was resumed, "
                                "e.g. with a higher iteration limit, or its worker restarted). Continue where you "
                                "left off; look at `git status` and `git log` first. End your answer with a "
                                "<COMPLETION_GATE> block. The task is:\n\n%s",
                                strempty(t->task->plan)) < 0)
                return -ENOMEM;
        if (t->loop) {
                *ret = p;
                return 0;
        }
        if (asprintf(&p,
                     "makima restarted you: your previous run on this task stopped before it finished "
                     "(its worker stopped or lost the task). Continue where you left off; look at "
                     "`git status` and `git log` in your working directory first. The task is:\n\n%s",
                     strempty(t->task->plan)) < 0)
                return -ENOMEM;
        *ret = p;
        return 0;
}

static int system_prompt(WorkerTask *t, char **ret) {
        const Task *k = t->task;
        _cleanup_free_ char *where = NULL;

        if (k->branch) {
                if (asprintf(&where,
                             "Your working directory %s is a git worktree of its own, on branch %s made from %s. "
                             "Commit your work there with git as you go (git add, git commit) on this branch; do "
                             "not push, do not switch branches and do not touch other worktrees.",
                             k->worktree, k->branch, strna(t->base)) < 0)
                        return -ENOMEM;
        } else if (asprintf(&where, "Your working directory %s is a scratch directory of its own (no git repository).",
                            k->worktree) < 0)
                return -ENOMEM;

        if (asprintf(ret,
                     "You run unattended as makima task %s%s%s%s. %s Nobody answers questions during the run: "
                     "decide and proceed, and end with a short account of what you did and what is left.%s",
                     k->id, k->name ? " (\"" : "", strempty(k->name), k->name ? "\")" : "", where,
                     t->loop ? " This task runs in a loop: makima restarts you on this conversation until you say "
                               "it is done. End every answer with a block\n<COMPLETION_GATE>\nready: true or false\n"
                               "reason: why\nprogress: what changed in this iteration\nblockers:\n- what stops you, "
                               "if anything\n</COMPLETION_GATE>\nand say ready: true only when the whole task is done."
                             : "") < 0)
                return -ENOMEM;
        return 0;
}

static int agent_argv(WorkerTask *t, bool resume, char ***ret) {
        const Config *c = t->manager->config;
        _cleanup_(strv_freep) char **argv = NULL;
        _cleanup_free_ char *sys = NULL;
        int r;

        r = config_split_words(c->agent_command, &argv);
        if (r < 0)
                return r;
        if (strv_length(argv) == 0)
                return -EINVAL;
        r = system_prompt(t, &sys);
        if (r < 0)
                return r;

        /* --dangerously-skip-permissions: the sandbox is the permission
         * boundary, and nobody is there to answer a prompt. The agent runs
         * as a non-root uid inside it, which the CLI accepts. */
        FOREACH_STRING(a, "-p", "--output-format=stream-json", "--input-format=stream-json", "--verbose",
                    "--dangerously-skip-permissions", "--append-system-prompt", sys) {
                r = strv_extend(&argv, a);
                if (r < 0)
                        return r;
        }
        if (resume) {
                r = strv_extend(&argv, "--resume");
                if (r >= 0)
                        r = strv_extend(&argv, t->task->session_id);
                if (r < 0)
                        return r;
        }
        for (char **i = c->agent_extra_args; i && *i; i++) {
                r = strv_extend(&argv, *i);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(argv);
        return 0;
}

void worker_task_read_pause(WorkerTask *t) {
        if (t->stdout_source)
                (void) sd_event_source_set_enabled(t->stdout_source, SD_EVENT_OFF);
        if (t->stderr_source)
                (void) sd_event_source_set_enabled(t->stderr_source, SD_EVENT_OFF);
}

void worker_task_read_resume(WorkerTask *t) {
        if (t->stdout_source)
                (void) sd_event_source_set_enabled(t->stdout_source, SD_EVENT_ON);
        if (t->stderr_source)
                (void) sd_event_source_set_enabled(t->stderr_source, SD_EVENT_ON);
}

void worker_task_exit_continue(WorkerTask *t) {
        if (!t->exit_pending)
                return;
        /* The agent is gone: what is left is no more than its pipes hold,
         * so it is read even while the store does not take it. */
        worker_task_drain(t);
        /* Its status is decided only once all of that is stored. */
        if (worker_task_store_blocked(t) || t->phase == WORKER_TASK_FINISHED)
                return;
        t->exit_pending = false;
        /* What its limits did, before its exit is judged. */
        (void) worker_task_limit_events(t);
        t->stdout_source = sd_event_source_disable_unref(t->stdout_source);
        t->stderr_source = sd_event_source_disable_unref(t->stderr_source);
        closep(&t->stdout_fd);
        closep(&t->stderr_fd);
        t->stdout_fd = t->stderr_fd = -EBADF;
        close_stdin(t);
        line_reader_done(&t->stdout_reader);
        line_reader_done(&t->stderr_reader);
        worker_task_agent_exited(t, t->exit_code, t->exit_status);
}

static int on_agent_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        WorkerTask *t = userdata;

        t->child_source = sd_event_source_disable_unref(t->child_source);
        t->pid = 0;
        /* Whatever the agent left running (a daemon it started, the
         * sandbox's init) goes with it: the next run starts afresh. */
        (void) worker_task_signal(t, SIGKILL);
        manager_reap_orphans(t->manager);
        t->exit_pending = true;
        t->exit_code = si->si_code;
        t->exit_status = si->si_status;
        worker_task_exit_continue(t);
        return 0;
}

static _noreturn_ void agent_child(const SandboxCommand *cmd, const TaskCgroup *cgroup, int in, int out, int err) {
        sigset_t none;
        int r;

        /* Into the task's cgroup first: nothing of the agent may start
         * outside it, or escape its limits and its kill. */
        r = task_cgroup_join(cgroup);
        if (r < 0) {
                dprintf(err, "makima-worker: cannot join the task's cgroup: %s\n", strerror(-r));
                _exit(127);
        }

        /* The worker blocks and ignores signals the agent must have. */
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        (void) signal(SIGPIPE, SIG_DFL);
        /* Its own session: no terminal, and one group to kill unsandboxed. */
        (void) setsid();
        if (dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 || dup2(err, STDERR_FILENO) < 0)
                _exit(127);
        r = sandbox_command_exec(cmd);
        dprintf(STDERR_FILENO, "makima-worker: cannot execute %s: %s\n", cmd->argv[0], strerror(-r));
        _exit(127);
}

static int make_pipe(int ret_ours[static 1], int ret_theirs[static 1], bool ours_is_write) {
        int p[2];

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        *ret_ours = ours_is_write ? p[1] : p[0];
        *ret_theirs = ours_is_write ? p[0] : p[1];
        if (fcntl(*ret_ours, F_SETFL, O_NONBLOCK) < 0) {
                int r = -errno;
                (void) close(p[0]);
                (void) close(p[1]);
                return r;
        }
        return 0;
}

static int spawn_failed(WorkerTask *t, const char *reason) {
        worker_task_finish(t, TASK_FAILED, reason);
        return 0;
}

/* A missing agent program is the most common set-up mistake: say so in the
 * task's own words rather than as a sandbox failure. Returns 1 if found. */
static int agent_program_check(WorkerTask *t, const char *name) {
        _cleanup_free_ char *path = NULL, *reason = NULL;
        int r;

        r = sandbox_find_executable(name, NULL, &path);
        if (r >= 0)
                return 1;
        if (asprintf(&reason,
                     "the agent program '%s' was not found on worker %u: install Claude Code there or set "
                     "[Agent] Command= (%s)",
                     name, t->manager->instance, strerror(-r)) < 0)
                return log_oom();
        log_error("Task %s: %s", t->id8, reason);
        return spawn_failed(t, reason);
}

int worker_task_spawn(WorkerTask *t, const char *prompt) {
        Manager *m = t->manager;
        _cleanup_(sandbox_command_done) SandboxCommand cmd = {};
        _cleanup_(strv_freep) char **argv = NULL, **env = NULL;
        _cleanup_free_ char *line = NULL, *task_env = NULL;
        _cleanup_close_ int in_theirs = -EBADF, out_theirs = -EBADF, err_theirs = -EBADF;
        bool resume;
        pid_t pid;
        int r;

        resume = worker_task_session_exists(t);
        if (t->task->session_id && !resume)
                log_notice("Task %s: session %s is not in its home (another host ran it?); starting a new session.",
                           t->id8, t->task->session_id);
        r = agent_argv(t, resume, &argv);
        if (r < 0)
                return spawn_failed(t, "[Agent] Command= is empty or not valid");
        r = agent_program_check(t, argv[0]);
        if (r <= 0)
                return r;
        if (asprintf(&task_env, "MAKIMA_TASK_ID=%s", t->task->id) < 0 || strv_push(&env, TAKE_PTR(task_env)) < 0)
                return log_oom();
        r = stream_json_user_message(prompt, &line);
        if (r < 0)
                return log_oom();

        usec_t before = now_usec();
        r = sandbox_build(&(SandboxParams) {
                                  .config = m->config,
                                  .identity = &m->agent,
                                  .task_id = t->task->id,
                                  .worktree = t->task->worktree,
                                  .home = t->home,
                                  .git_dir = t->git_dir,
                                  .borrowed = t->borrowed,
                                  .command = argv,
                                  .environment = env,
                                  .bwrap = m->bwrap,
                          },
                          &cmd);
        log_debug("Task %s: sandbox built in %.1f ms.", t->id8, (double) (now_usec() - before) / USEC_PER_MSEC);
        if (r == -ENOPKG)
                return spawn_failed(t, SANDBOX_BWRAP_MISSING);
        if (r < 0) {
                _cleanup_free_ char *reason = NULL;

                if (asprintf(&reason, "the sandbox could not be built: %s (the worker's log says more)",
                             strerror(-r)) < 0)
                        return log_oom();
                return spawn_failed(t, reason);
        }

        r = make_pipe(&t->stdin_fd, &in_theirs, true);
        if (r >= 0)
                r = make_pipe(&t->stdout_fd, &out_theirs, false);
        if (r >= 0)
                r = make_pipe(&t->stderr_fd, &err_theirs, false);
        if (r < 0)
                return log_error_errno(r, "Task %s: failed to make the agent's pipes: %m", t->id8);

        pid = fork();
        if (pid < 0)
                return log_error_errno(errno, "Task %s: failed to fork the agent: %m", t->id8);
        if (pid == 0)
                agent_child(&cmd, &t->cgroup, in_theirs, out_theirs, err_theirs);
        t->pid = pid;
        t->sandboxed = cmd.sandboxed;
        t->phase = WORKER_TASK_AGENT;
        t->close_stdin_when_flushed = false;
        t->interrupt_pending = false;
        t->cost_base = t->task->cost_usd;
        t->loop_text = mfree(t->loop_text);
        t->loop_text_len = 0;
        if (t->exited_at > 0)
                log_debug("Task %s: next agent forked %.1f ms after the last one exited.", t->id8,
                          (double) (now_usec() - t->exited_at) / USEC_PER_MSEC);

        r = sd_event_add_child(m->event, &t->child_source, pid, WEXITED, on_agent_exit, t);
        if (r >= 0)
                r = sd_event_source_set_priority(t->child_source, CHILD_PRIORITY);
        if (r >= 0)
                r = sd_event_add_io(m->event, &t->stdout_source, t->stdout_fd, EPOLLIN, on_stdout, t);
        if (r >= 0)
                r = sd_event_add_io(m->event, &t->stderr_source, t->stderr_fd, EPOLLIN, on_stderr, t);
        if (r >= 0)
                r = sd_event_add_io(m->event, &t->stdin_source, t->stdin_fd, EPOLLOUT, on_stdin, t);
        if (r >= 0)
                r = sd_event_source_set_enabled(t->stdin_source, SD_EVENT_OFF);
        if (r < 0)
                return log_error_errno(r, "Task %s: failed to watch the agent: %m", t->id8);

        log_info("Task %s: agent started (pid %i%s%s%s).", t->id8, (int) pid, cmd.sandboxed ? ", sandboxed" : "",
                 resume ? ", resuming session " : "", resume ? t->task->session_id : "");
        log_debug("Task %s: agent spawned %.1f ms after the claim.", t->id8,
                  (double) (now_usec() - t->claimed_at) / USEC_PER_MSEC);
        return worker_task_write_stdin(t, line);
}
