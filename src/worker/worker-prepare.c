/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A task's worktree, prepared in a forked child: git can take long (a clone,
 * a fetch) and meanwhile the worker's loop must keep heartbeating. The child
 * resolves the repository, picks the base branch, makes the worktree on the
 * task's branch, takes the worktree's fingerprint (the autonomous loop's
 * measure of progress) and reports {repo_path, base, branch, worktree,
 * fingerprint, error} as JSON on a pipe; the parent reaps it through the
 * loop. */

#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "git-util.h"
#include "json-util.h"
#include "log.h"
#include "worker-manager.h"
#include "worker-task.h"

/* What the child writes must fit in the pipe: it writes before it exits,
 * and nobody reads until it has. */
#define PREPARE_ERROR_MAX 8192U

typedef struct Prepared {
        char *repo_path;
        char *base;
        char *branch;
        char *worktree;
        char *fingerprint;
        char *error;
} Prepared;

static void prepared_done(Prepared *p) {
        free(p->repo_path);
        free(p->base);
        free(p->branch);
        free(p->worktree);
        free(p->fingerprint);
        free(p->error);
}

static int mkdir_parents(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
                *s = '\0';
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* git's own words when it gave some, else ours. */
static char *reason(const char *git_words, const char *format, ...) _printf_(2, 3);
static char *reason(const char *git_words, const char *format, ...) {
        va_list ap;
        char *s;
        int r;

        if (!isempty(git_words))
                return strndup(git_words, PREPARE_ERROR_MAX);
        va_start(ap, format);
        r = vasprintf(&s, format, ap);
        va_end(ap);
        return r < 0 ? NULL : s;
}

static void prepare(const Task *task, const char *repos_dir, const char *worktree_dir, Prepared *p) {
        _cleanup_free_ char *err = NULL;
        int r;

        if (task->worktree)
                p->worktree = strdup(task->worktree);
        else if (asprintf(&p->worktree, "%s/%s", worktree_dir, task->id) < 0)
                p->worktree = NULL;
        if (!p->worktree)
                goto oom;

        /* A task without a repository gets a scratch directory. */
        if (!task->repo) {
                r = mkdir_parents(p->worktree, 0755);
                if (r < 0)
                        p->error = reason(NULL, "cannot make the working directory %s: %s", p->worktree, strerror(-r));
                return;
        }

        r = git_resolve_repo(task->repo, repos_dir, &p->repo_path, &err);
        if (r == -ENOMEM)
                goto oom;
        if (r < 0) {
                if (r == -ENOENT)
                        p->error = reason(err, "repository %s does not exist", task->repo);
                else
                        p->error = reason(err, "cannot use repository %s: %s", task->repo, strerror(-r));
                return;
        }

        if (task->base_branch)
                p->base = strdup(task->base_branch);
        else {
                err = mfree(err);
                r = git_default_branch(p->repo_path, &p->base, &err);
                if (r == -ENOMEM)
                        goto oom;
                if (r < 0) {
                        p->error = reason(err, "cannot find the default branch of %s: %s", task->repo, strerror(-r));
                        return;
                }
        }
        if (!p->base)
                goto oom;

        if (task->branch)
                p->branch = strdup(task->branch);
        else if (asprintf(&p->branch, "makima/%.8s", task->id) < 0)
                p->branch = NULL;
        if (!p->branch)
                goto oom;

        err = mfree(err);
        r = git_worktree_prepare(p->repo_path, p->base, p->branch, p->worktree, task->copy_files, &err);
        if (r == -ENOMEM)
                goto oom;
        if (r < 0) {
                p->error = reason(err, "cannot make the worktree %s: %s", p->worktree, strerror(-r));
                return;
        }
        /* Only the loop needs it, but here it costs the start nothing the
         * agent waits for: git ran already. Without one, the first
         * iteration counts as no progress. */
        if (task->autonomous_loop || task->contract_id)
                (void) git_worktree_fingerprint(p->worktree, &p->fingerprint, NULL);
        return;

oom:
        p->error = strdup("out of memory while preparing the worktree");
}

static _noreturn_ void prepare_child(const WorkerTask *t, int fd) {
        _cleanup_(prepared_done) Prepared p = {};
        _cleanup_json_ json_object *o = NULL;
        const Manager *m = t->manager;
        const char *s;
        sigset_t none;

        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        (void) signal(SIGPIPE, SIG_DFL);

        prepare(t->task, m->repos_dir, m->config->worker_worktree_dir, &p);

        o = json_object_new_object();
        if (!o || json_add_string(o, "repo_path", p.repo_path) < 0 || json_add_string(o, "base", p.base) < 0 ||
            json_add_string(o, "branch", p.branch) < 0 || json_add_string(o, "worktree", p.worktree) < 0 ||
            json_add_string(o, "fingerprint", p.fingerprint) < 0 || json_add_string(o, "error", p.error) < 0)
                _exit(EXIT_FAILURE);
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!s || write(fd, s, strlen(s)) != (ssize_t) strlen(s))
                _exit(EXIT_FAILURE);
        _exit(EXIT_SUCCESS);
}

static int read_result(int fd, Prepared *ret) {
        _cleanup_json_ json_object *o = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, allocated = 0;
        Prepared p = {};
        int r;

        for (;;) {
                ssize_t n;

                if (allocated - len < 4096) {
                        char *b = realloc(buf, allocated + 16384);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                        allocated += 16384;
                }
                n = read(fd, buf + len, allocated - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno != EAGAIN)
                        return -errno;
                if (n <= 0)
                        break;
                len += (size_t) n;
        }
        r = json_parse_strict(buf ?: "", len, &o, NULL);
        if (r < 0)
                return r;

        const JsonDispatchField table[] = {
                { "repo_path", json_dispatch_string, offsetof(Prepared, repo_path), JSON_NULLABLE },
                { "base",      json_dispatch_string, offsetof(Prepared, base),      JSON_NULLABLE },
                { "branch",    json_dispatch_string, offsetof(Prepared, branch),    JSON_NULLABLE },
                { "worktree",  json_dispatch_string, offsetof(Prepared, worktree),  JSON_NULLABLE },
                { "fingerprint", json_dispatch_string, offsetof(Prepared, fingerprint), JSON_NULLABLE },
                { "error",     json_dispatch_string, offsetof(Prepared, error),     JSON_NULLABLE },
                {}
        };
        r = json_dispatch(o, table, 0, &p, NULL);
        if (r < 0) {
                prepared_done(&p);
                return r;
        }
        *ret = p;
        return 0;
}

static int make_home(WorkerTask *t) {
        int r;

        if (asprintf(&t->home, "%s/%s", t->manager->homes_dir, t->task->id) < 0)
                return -ENOMEM;
        r = mkdir_parents(t->home, 0700);
        if (r < 0)
                return r;
        /* An existing home keeps the agent's sessions; it stays ours alone. */
        if (chmod(t->home, 0700) < 0)
                return -errno;
        return 0;
}

static void prepared(WorkerTask *t, Prepared *p) {
        _cleanup_free_ char *prompt = NULL;
        int r;

        if (p->error) {
                worker_task_finish(t, TASK_FAILED, p->error);
                return;
        }

        log_debug("Task %s: worktree ready %.1f ms after the claim.", t->id8,
                  (double) (now_usec() - t->claimed_at) / USEC_PER_MSEC);
        if (free_and_strdup(&t->task->worktree, p->worktree) < 0 ||
            free_and_strdup(&t->task->branch, p->branch) < 0)
                goto oom;
        /* The branch the worktree was made from, for the diff and the merge. */
        if (!t->task->base_branch && p->base && free_and_strdup(&t->task->base_branch, p->base) < 0)
                goto oom;
        t->base = TAKE_PTR(p->base);
        t->repo_path = TAKE_PTR(p->repo_path);
        /* Written with the agent's first events, after the spawn: the start
         * does not wait for the store. A worker that dies meanwhile loses
         * nothing, the next one finds the same worktree and branch. */
        t->dirty = true;

        r = make_home(t);
        if (r == -ENOMEM)
                goto oom;
        if (r < 0) {
                _cleanup_free_ char *why = NULL;

                if (asprintf(&why, "cannot make the agent's home %s: %s", strna(t->home), strerror(-r)) < 0)
                        goto oom;
                worker_task_finish(t, TASK_FAILED, why);
                return;
        }

        r = worker_task_loop_init(t, p->fingerprint);
        if (r == -ENOMEM)
                goto oom;
        if (r != 0)
                return;
        r = worker_task_first_prompt(t, &prompt);
        if (r < 0)
                goto oom;
        r = worker_task_spawn_iteration(t, prompt);
        if (r < 0) {
                worker_task_finish(t, TASK_FAILED, "the worker could not start the agent (its log says why)");
                return;
        }
        /* Requests that came while git ran (a message, a pause) apply now. */
        if (t->phase == WORKER_TASK_AGENT)
                worker_task_process_controls(t);
        return;

oom:
        (void) log_oom();
        worker_task_finish(t, TASK_FAILED, "the worker ran out of memory");
}

static int on_prepare_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        _cleanup_(prepared_done) Prepared p = {};
        WorkerTask *t = userdata;
        int r;

        t->prepare_source = sd_event_source_disable_unref(t->prepare_source);
        t->prepare_pid = 0;
        r = read_result(t->prepare_fd, &p);
        closep(&t->prepare_fd);
        t->prepare_fd = -EBADF;

        if (t->lease_lost) {
                worker_task_finish(t, t->task->status, NULL);
                return 0;
        }
        if (t->cancel_request_id) {
                worker_task_cancelled(t);
                return 0;
        }
        if (r < 0 || si->si_code != CLD_EXITED || si->si_status != 0) {
                _cleanup_free_ char *why = NULL;

                if (si->si_code == CLD_EXITED)
                        r = asprintf(&why, "preparing the worktree failed (exit status %i)", si->si_status);
                else
                        r = asprintf(&why, "preparing the worktree was killed by signal %i", si->si_status);
                worker_task_finish(t, TASK_FAILED, r < 0 ? "preparing the worktree failed" : why);
                return 0;
        }
        prepared(t, &p);
        return 0;
}

int worker_task_prepare(WorkerTask *t) {
        Manager *m = t->manager;
        int p[2], r;
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0)
                return log_error_errno(errno, "Task %s: failed to make a pipe: %m", t->id8);
        pid = fork();
        if (pid < 0) {
                r = -errno;
                (void) close(p[0]);
                (void) close(p[1]);
                return log_error_errno(r, "Task %s: failed to fork: %m", t->id8);
        }
        if (pid == 0) {
                (void) close(p[0]);
                prepare_child(t, p[1]);
        }
        (void) close(p[1]);
        t->prepare_fd = p[0];
        t->prepare_pid = pid;
        if (fcntl(t->prepare_fd, F_SETFL, O_NONBLOCK) < 0)
                return log_error_errno(errno, "Task %s: failed to set up a pipe: %m", t->id8);

        r = sd_event_add_child(m->event, &t->prepare_source, pid, WEXITED, on_prepare_exit, t);
        if (r < 0)
                return log_error_errno(r, "Task %s: failed to watch the preparation: %m", t->id8);
        return 0;
}
