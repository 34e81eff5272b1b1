/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A task's worktree and its own repository, prepared in a forked child: git
 * can take long (a clone, a fetch) and meanwhile the worker's loop must keep
 * heartbeating. The child checks the repository against the owner's grants,
 * resolves it, picks the base branch, makes the task's own git directory
 * (the repository's objects borrowed read-only) and worktree on the task's
 * branch, takes the worktree's fingerprint (the autonomous loop's measure of
 * progress) and reports {repo_path, base, base_commit, branch, worktree,
 * borrowed, fingerprint, error} as JSON on a pipe; the parent reaps it
 * through the loop. Every git command runs in a sandbox of its own. */

#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "git-util.h"
#include "json-util.h"
#include "log.h"
#include "sandbox-paths.h"
#include "sandbox-task.h"
#include "worker-manager.h"
#include "worker-task.h"

/* What the child writes must fit in the pipe: it writes before it exits,
 * and nobody reads until it has. */
#define PREPARE_ERROR_MAX 8192U

typedef struct Prepared {
        char *repo_path;
        char *base;
        char *base_commit;
        char *branch;
        char *worktree;
        char **borrowed;
        char *fingerprint;
        char *error;
} Prepared;

static void prepared_done(Prepared *p) {
        free(p->repo_path);
        free(p->base);
        free(p->base_commit);
        free(p->branch);
        free(p->worktree);
        strv_free(p->borrowed);
        free(p->fingerprint);
        free(p->error);
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

/* The grants, canonical (those that exist). */
static int grants_canonical(char *const *grants, char ***ret) {
        _cleanup_(strv_freep) char **l = NULL;
        int r;

        for (char *const *g = grants; g && *g; g++) {
                char *granted = realpath(*g, NULL);

                if (!granted) {
                        if (errno == ENOMEM)
                                return -ENOMEM;
                        continue;
                }
                r = strv_push(&l, granted);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* Whether every one of paths lies, canonical, in a grant. */
static int paths_granted(char *const *paths, char *const *granted) {
        for (char *const *p = paths; p && *p; p++) {
                _cleanup_free_ char *canonical = realpath(*p, NULL);
                bool ok = false;

                if (!canonical)
                        return errno == ENOMEM ? -ENOMEM : 0;
                for (char *const *g = granted; g && *g && !ok; g++)
                        ok = path_is_under(canonical, *g);
                if (!ok)
                        return 0;
        }
        return 1;
}

/* A task not made by an administrator names only a repository granted to
 * its owner: every path its git will read (the repository's top, where its
 * .git file leads, the object directories it borrows) is, canonical, a
 * granted one or lies below one. Asked of the paths as they are now, so a
 * link swapped in after the API's check leads nowhere new; and the path
 * resolved here is the one used from here on. */
/* The one answer for a repository that reaches beyond its grants: it says
 * nothing of what lies there, nor whether anything does. */
static void beyond_grants(Prepared *p, const Task *task) {
        p->error = reason(NULL, "the repository %s reaches beyond what is granted to %s (its top, its git "
                          "directory or the objects it borrows): refused", task->repo, strna(task->owner));
}

static void prepare(const Manager *m, const Task *task, char *const *grants, Prepared *p) {
        GitContext gctx = m->git;
        const GitContext *ctx = &gctx;
        _cleanup_(task_paths_done) TaskPaths paths = {};
        _cleanup_free_ char *err = NULL, *cache = NULL, *canonical = NULL;
        _cleanup_(strv_freep) char **granted = NULL, **repo_paths = NULL;
        const char *repo = task->repo;
        bool check_grants = task->repo && !git_repo_is_url(task->repo) && !task->admin;
        int r;

        /* Before anything is made for it. */
        if (check_grants) {
                r = grants_canonical(grants, &granted);
                if (r < 0)
                        goto oom;
                canonical = realpath(task->repo, NULL);
                if (!canonical && errno == ENOMEM)
                        goto oom;
                r = canonical ? paths_granted((char *[]) { canonical, NULL }, granted) : 0;
                if (r < 0)
                        goto oom;
                if (r == 0) {
                        p->error = reason(NULL, "the repository %s is not granted to %s (makima repo grant)",
                                          task->repo, strna(task->owner));
                        return;
                }
                repo = canonical;
                /* Nothing out of the grants is read, nor bound for git, from here on. */
                gctx.allowed_roots = granted;
        }

        r = task_paths(m->config, task->id, task->worktree, &paths);
        if (r < 0)
                goto oom;
        p->worktree = strdup(paths.worktree);
        if (!p->worktree)
                goto oom;
        r = task_dir_make(paths.worktree, &m->agent);
        if (r < 0) {
                p->error = reason(NULL, "cannot make the working directory %s: %s", p->worktree, strerror(-r));
                return;
        }
        /* A task without a repository gets a scratch directory. */
        if (!task->repo)
                return;

        /* URL repositories are cloned into a cache of the owner's own. */
        r = task_clone_cache(m->config, task->owner, &cache);
        if (r < 0)
                goto oom;
        if (git_repo_is_url(task->repo)) {
                r = task_dir_make(cache, &m->agent);
                if (r < 0) {
                        p->error = reason(NULL, "cannot make the clone cache %s: %s", cache, strerror(-r));
                        return;
                }
        }
        r = git_resolve_repo(ctx, repo, cache, &p->repo_path, &err);
        if (r == -ENOMEM)
                goto oom;
        if (r == -EPERM && check_grants)
                return beyond_grants(p, task);
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
                r = git_default_branch(ctx, p->repo_path, &p->base, &err);
                if (r == -ENOMEM)
                        goto oom;
                if (r == -EPERM && check_grants)
                        return beyond_grants(p, task);
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

        /* What the task's repository borrows: the repository's objects, and
         * whatever those borrow — but never another task's, nor anything
         * of makima's state but the owner's own clone cache. */
        err = mfree(err);
        r = git_repo_object_dirs(ctx, p->repo_path, &p->borrowed, &err);
        if (r == -ENOMEM)
                goto oom;
        if (r == -EPERM && check_grants)
                return beyond_grants(p, task);
        if (r < 0) {
                p->error = reason(err, "cannot read the objects of %s: %s", task->repo, strerror(-r));
                return;
        }
        err = mfree(err);
        r = task_check_borrowed(m->config, task->owner, p->borrowed, &err);
        if (r == -ENOMEM)
                goto oom;
        if (r < 0) {
                p->error = reason(err, "cannot use repository %s: %s", task->repo, strerror(-r));
                return;
        }
        /* Checked as they were found (allowed_roots); once more, all of
         * them, as they are now. */
        if (check_grants) {
                err = mfree(err);
                r = git_repo_paths(ctx, p->repo_path, &repo_paths, &err);
                if (r == -EPERM)
                        return beyond_grants(p, task);
                if (r >= 0)
                        r = strv_extend_all(&repo_paths, p->borrowed);
                if (r >= 0)
                        r = paths_granted(repo_paths, granted);
                if (r < 0)
                        goto oom;
                if (r == 0)
                        return beyond_grants(p, task);
        }

        r = task_dir_make(paths.git_dir, &m->agent);
        if (r < 0) {
                p->error = reason(NULL, "cannot make the task's git directory %s: %s", paths.git_dir, strerror(-r));
                return;
        }
        err = mfree(err);
        r = git_task_repo_prepare(ctx,
                                  &(GitTaskRepo) { .worktree = p->worktree, .git_dir = paths.git_dir,
                                                   .borrowed = p->borrowed },
                                  p->repo_path, p->base, p->branch, task->copy_files, &p->base_commit, &err);
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
                (void) git_worktree_fingerprint(ctx,
                                                &(GitTaskRepo) { .worktree = p->worktree, .git_dir = paths.git_dir,
                                                                 .borrowed = p->borrowed },
                                                &p->fingerprint, NULL);
        return;

oom:
        p->error = strdup("out of memory while preparing the worktree");
}

static _noreturn_ void prepare_child(const WorkerTask *t, char *const *grants, int fd) {
        _cleanup_(prepared_done) Prepared p = {};
        _cleanup_json_ json_object *o = NULL;
        json_object *borrowed = NULL;
        const char *s;
        sigset_t none;

        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        (void) signal(SIGPIPE, SIG_DFL);

        /* git runs on the repository and what the agent wrote: within the
         * task's limits, and killed with it; its snapshots where the worker
         * removes them, whatever becomes of us. */
        (void) worker_task_child_git((WorkerTask *) t);
        if (task_cgroup_join(&t->cgroup) < 0)
                p.error = strdup("the worker could not move the preparation into the task's cgroup");
        else
                prepare(t->manager, t->task, grants, &p);

        o = json_object_new_object();
        if (!o || json_add_string(o, "repo_path", p.repo_path) < 0 || json_add_string(o, "base", p.base) < 0 ||
            json_add_string(o, "base_commit", p.base_commit) < 0 || json_add_string(o, "branch", p.branch) < 0 ||
            json_add_string(o, "worktree", p.worktree) < 0 || json_add_string(o, "fingerprint", p.fingerprint) < 0 ||
            json_add_string(o, "error", p.error) < 0 || json_new_strv(p.borrowed, &borrowed) < 0 ||
            json_object_object_add(o, "borrowed", borrowed) < 0)
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
                { "base_commit", json_dispatch_string, offsetof(Prepared, base_commit), JSON_NULLABLE },
                { "borrowed",  json_dispatch_strv,   offsetof(Prepared, borrowed),  JSON_NULLABLE },
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

/* The agent's home, and where its own git directory is. An existing home
 * keeps the agent's sessions. */
static int make_home(WorkerTask *t) {
        _cleanup_(task_paths_done) TaskPaths paths = {};
        int r;

        r = task_paths(t->manager->config, t->task->id, t->task->worktree, &paths);
        if (r < 0)
                return r;
        t->home = TAKE_PTR(paths.home);
        if (t->task->repo)
                t->git_dir = TAKE_PTR(paths.git_dir);
        return task_dir_make(t->home, &t->manager->agent);
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
        /* The branch the worktree was made from, for the diff and the merge;
         * the commit, which the agent cannot move. */
        if (!t->task->base_branch && p->base && free_and_strdup(&t->task->base_branch, p->base) < 0)
                goto oom;
        if (p->base_commit && free_and_strdup(&t->task->base_commit, p->base_commit) < 0)
                goto oom;
        t->base = TAKE_PTR(p->base);
        t->repo_path = TAKE_PTR(p->repo_path);
        t->borrowed = TAKE_PTR(p->borrowed);
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

        r = read_result(t->prepare_fd, &p);
        if (worker_task_child_gone(t))
                return 0;
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

/* The paths of the repositories granted to the task's owner, read here:
 * the child must not use the store. */
static int task_grants(WorkerTask *t, char ***ret) {
        _cleanup_(strv_freep) char **l = NULL;
        RepoGrant *g = NULL;
        size_t n = 0;
        int r;

        *ret = NULL;
        if (!t->task->repo || t->task->admin || git_repo_is_url(t->task->repo) || !t->task->owner)
                return 0;
        r = store_repo_grant_list(t->manager->store, t->task->owner, &g, &n);
        if (r < 0)
                return log_error_errno(r, "Task %s: failed to read the grants of %s: %s", t->id8, t->task->owner,
                                       store_last_error(t->manager->store));
        for (size_t i = 0; i < n && r >= 0; i++)
                r = strv_extend(&l, g[i].path);
        repo_grant_array_free(g, n);
        if (r < 0)
                return log_oom();
        *ret = TAKE_PTR(l);
        return 0;
}

int worker_task_prepare(WorkerTask *t) {
        _cleanup_(strv_freep) char **grants = NULL;
        Manager *m = t->manager;
        int p[2], r;
        pid_t pid;

        r = task_grants(t, &grants);
        if (r < 0)
                return r;

        r = worker_task_scratch_make(t);
        if (r < 0)
                return log_error_errno(r, "Task %s: failed to make a scratch directory: %m", t->id8);
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
                prepare_child(t, grants, p[1]);
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
