/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Running git: one fork + execve per command, always inside a sandbox of its
 * own (the same bwrap and seccomp filter as an agent's, read-only but for
 * what the command writes, no network but for fetches), as the agent's user
 * wherever it reads what an agent wrote; hooks, fsmonitor and submodules
 * off; a scrubbed environment; stdout and stderr read through pipes without
 * deadlock. Synchronous: the caller waits for git to exit. */

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "conf.h"
#include "git-run.h"
#include "git-util.h"
#include "sandbox-bwrap.h"
#include "sandbox-paths.h"

extern char **environ;

#define GIT_STDERR_MAX (64U * 1024U)
#define GIT_ERROR_LINES 3

/* Every run starts with these. Even inside its sandbox, git runs no hook,
 * no fsmonitor command, and never descends into a nested repository or a
 * submodule, whose config (filters, textconv, …) is the agent's. */
static const char *const git_safety_args[] = {
        "-c", "core.hooksPath=/dev/null",
        "-c", "core.fsmonitor=false",
        "-c", "submodule.recurse=false",
        "-c", "diff.ignoreSubmodules=all",
        "-c", "status.submoduleSummary=false",
        "-c", "fetch.recurseSubmodules=false",
        "-c", "core.alternateRefsCommand=",
};

/* And these where no remote is to be reached: not even a local path. */
static const char *const git_offline_args[] = {
        "-c", "protocol.allow=never",
};

/* The GIT_* variables that only say how to reach remotes, where the
 * administrator's config lives and who commits. Any other (GIT_DIR,
 * GIT_WORK_TREE, GIT_INDEX_FILE, GIT_CONFIG_PARAMETERS, GIT_TRACE, …) could
 * point git at another repository or change what it prints, so it goes. */
static const char *const git_env_keep[] = {
        "GIT_SSH=", "GIT_SSH_COMMAND=", "GIT_SSH_VARIANT=", "GIT_ASKPASS=", "GIT_EXEC_PATH=",
        "GIT_CONFIG_GLOBAL=", "GIT_CONFIG_SYSTEM=", "GIT_CONFIG_NOSYSTEM=",
        "GIT_AUTHOR_", "GIT_COMMITTER_", "GIT_SSL_", "GIT_HTTP_", "GIT_PROXY_",
};

void git_output_done(GitOutput *o) {
        o->data = mfree(o->data);
        o->size = o->allocated = 0;
}

int git_output_append(GitOutput *o, const void *p, size_t n) {
        if (o->max > 0 && n > o->max - o->size) {
                n = o->max - o->size;
                o->truncated = true;
        }
        if (!o->data || o->size + n + 1 > o->allocated) {
                size_t a = MAX(MAX(o->allocated * 2, o->size + n + 1), (size_t) 256);
                char *d = realloc(o->data, a);

                if (!d)
                        return -ENOMEM;
                o->data = d;
                o->allocated = a;
        }
        if (n > 0)
                memcpy(o->data + o->size, p, n);
        o->size += n;
        o->data[o->size] = '\0';
        return 0;
}

int git_set_error(char **ret_error, int r, const char *fmt, ...) {
        va_list ap;
        char *s;

        if (!ret_error)
                return r;
        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        if (!s)
                return -ENOMEM;
        free(*ret_error);
        *ret_error = s;
        return r;
}

/* git's complaint in a line: its "fatal:"/"error:" lines if it printed any
 * (progress and hints around them are noise), else its first lines. */
static char *git_complaint(const char *err, int status) {
        GitOutput o = {};
        unsigned n = 0;

        for (int pass = 0; pass < 2 && n == 0; pass++)
                for (const char *p = strempty(err); *p && n < GIT_ERROR_LINES;) {
                        size_t len = strcspn(p, "\r\n");
                        const char *line = p;

                        p += len + strspn(p + len, "\r\n");
                        while (len > 0 && strchr(" \t", line[len - 1]))
                                len--;
                        if (len == 0 || startswith(line, "hint:"))
                                continue;
                        if (pass == 0 && !startswith(line, "fatal:") && !startswith(line, "error:"))
                                continue;
                        if ((n++ > 0 && git_output_append(&o, "; ", 2) < 0) || git_output_append(&o, line, len) < 0) {
                                git_output_done(&o);
                                return NULL;
                        }
                }
        if (n == 0 && asprintf(&o.data, "git exited with status %i", status) < 0)
                return NULL;
        return o.data;
}

/* git must be one of the system's: nothing else is in the sandbox, and a
 * git elsewhere in $PATH would be somebody's to replace. */
static char *find_git(void) {
        _cleanup_free_ char *p = NULL, *real = NULL;

        if (sandbox_find_executable("git", NULL, &p) >= 0 && (real = realpath(p, NULL)) && path_in_system(real))
                return TAKE_PTR(p);
        return strdup("/usr/bin/git");
}

static bool git_env_kept(const char *e) {
        static const char *const proxy[] = {
                "http_proxy=", "https_proxy=", "HTTPS_PROXY=", "HTTP_PROXY=", "ALL_PROXY=", "all_proxy=",
                "NO_PROXY=", "no_proxy=",
        };

        for (size_t i = 0; i < ELEMENTSOF(git_env_keep); i++)
                if (startswith(e, git_env_keep[i]))
                        return true;
        for (size_t i = 0; i < ELEMENTSOF(proxy); i++)
                if (startswith(e, proxy[i]))
                        return true;
        return false;
}

/* The full argv: git, the safety options, safe.directory= for each
 * repository the jail trusts, the command. */
static int git_argv(const GitJail *jail, const char *const *argv, char ***ret) {
        _cleanup_(strv_freep) char **l = NULL;
        _cleanup_free_ char *git = find_git();
        int r;

        if (!git)
                return -ENOMEM;
        r = strv_push(&l, TAKE_PTR(git));
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(git_safety_args); i++)
                r = strv_extend(&l, git_safety_args[i]);
        for (size_t i = 0; r >= 0 && !jail->network && i < ELEMENTSOF(git_offline_args); i++)
                r = strv_extend(&l, git_offline_args[i]);
        for (char *const *s = jail->safe; r >= 0 && s && *s; s++) {
                _cleanup_free_ char *t = NULL;

                if (asprintf(&t, "safe.directory=%s", *s) < 0)
                        return -ENOMEM;
                r = strv_extend(&l, "-c");
                if (r >= 0)
                        r = strv_push(&l, TAKE_PTR(t));
        }
        for (size_t i = 0; r >= 0 && argv[i]; i++)
                r = strv_extend(&l, argv[i]);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

static int git_setenv_all(Bwrap *b, char *const *env) {
        for (char *const *e = env; e && *e; e++) {
                int r = bwrap_setenv(b, *e);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The sandbox one run of git gets: as an agent's, without the agent's
 * program, home, worktree or network; the jail's paths at their own
 * places; no config but the repository's own (and, for fetches, the
 * system's), so that no filter, textconv or credential helper of the
 * caller's runs on what an agent wrote. */
/* Binds path into the jail, or says which path it could not. */
static int jail_bind(Bwrap *b, const char *path, bool read_only, char **ret_complaint) {
        int r;

        r = bwrap_bind(b, path, read_only);
        if (r < 0 && r != -ENOMEM && ret_complaint) {
                free(*ret_complaint);
                if (asprintf(ret_complaint, "cannot open '%s': %s", path, strerror(-r)) < 0)
                        *ret_complaint = NULL;
        }
        return r;
}

static int git_command(const GitJail *jail, const char *dir, const char *const *argv, char *const *extra_env,
                       SandboxCommand *ret, char **ret_complaint) {
        const GitContext *ctx = jail->context;
        const SandboxIdentity *who = jail->as_caller ? ctx->caller : ctx->agent;
        _cleanup_(bwrap_done) Bwrap b = {};
        _cleanup_(strv_freep) char **private = NULL, **full = NULL;
        const char *home = jail->caller_home ? getenv("HOME") : NULL;
        int r;

        r = git_argv(jail, argv, &full);
        if (r < 0)
                return r;
        if (!ctx->config->sandbox_enabled) {
                /* The administrator turned the sandbox off: agents run with all
                 * the worker's rights anyway. */
                _cleanup_(strv_freep) char **env = NULL;

                for (char **e = environ; e && *e; e++)
                        if (!startswith(*e, "GIT_") || git_env_kept(*e)) {
                                r = strv_extend(&env, *e);
                                if (r < 0)
                                        return r;
                        }
                r = strv_extend_all(&env, extra_env);
                if (r >= 0)
                        r = strv_extend(&env, "GIT_TERMINAL_PROMPT=0");
                if (r >= 0)
                        r = strv_extend(&env, "LC_ALL=C");
                if (r < 0)
                        return r;
                *ret = (SandboxCommand) {
                        .argv = TAKE_PTR(full),
                        .envp = TAKE_PTR(env),
                        .cwd = dir ? strdup(dir) : NULL,
                };
                return dir && !ret->cwd ? -ENOMEM : 0;
        }

        if (!who)
                return -EINVAL;
        r = sandbox_private_paths(ctx->config, &private);
        if (r < 0)
                return r;
        r = bwrap_init(&b, ctx->bwrap, who, "makima-git", jail->network);
        if (r >= 0)
                r = bwrap_system(&b, private);
        if (r >= 0)
                r = bwrap_user_database(&b, "/nonexistent", "/usr/sbin/nologin");
        if (r >= 0)
                r = bwrap_api_filesystems(&b);
        if (r < 0)
                return r;
        /* The read-only ones first: a writable path inside one (a task's git
         * directory in the worktree's parent, say) still wins. */
        /* Each opened here and handed over as an fd (bwrap_bind()). */
        for (char *const *p = jail->read_only; p && *p; p++) {
                r = jail_bind(&b, *p, true, ret_complaint);
                if (r < 0)
                        return r;
        }
        if (home && home[0] == '/' && !path_in_system(home) && access(home, F_OK) >= 0) {
                r = jail_bind(&b, home, true, ret_complaint);
                if (r < 0)
                        return r;
        }
        for (char *const *p = jail->read_write; p && *p; p++) {
                r = jail_bind(&b, *p, false, ret_complaint);
                if (r < 0)
                        return r;
        }
        if (jail->network) {
                _cleanup_free_ char *resolv = realpath("/etc/resolv.conf", NULL);

                if (resolv && !path_in_system(resolv)) {
                        r = bwrap_bind(&b, resolv, true);
                        if (r < 0)
                                return r;
                }
        }
        r = bwrap_seccomp(&b);
        if (r < 0)
                return r;

        FOREACH_STRING(e, "PATH=" SANDBOX_DEFAULT_PATH, "LC_ALL=C", "GIT_TERMINAL_PROMPT=0") {
                r = bwrap_setenv(&b, e);
                if (r < 0)
                        return r;
        }
        r = bwrap_setenvf(&b, "HOME", home ?: "/nonexistent");
        /* The system's config only where a remote is reached (its proxy,
         * its CA bundle); for a repository an agent wrote, none. */
        if (r >= 0 && !jail->network)
                r = bwrap_setenv(&b, "GIT_CONFIG_NOSYSTEM=1");
        for (char **e = environ; r >= 0 && jail->network && e && *e; e++)
                if (git_env_kept(*e))
                        r = bwrap_setenv(&b, *e);
        if (r >= 0)
                r = git_setenv_all(&b, extra_env);
        if (r < 0)
                return r;
        return bwrap_finish(&b, dir, full, ret);
}

/* The child's dup2() calls must not clobber each other, so no fd it
 * moves may already sit on 0, 1 or 2. */
static int fd_move_above_stdio(int fd) {
        int n, e;

        if (fd < 0 || fd > STDERR_FILENO)
                return fd;
        n = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
        e = errno;
        (void) close(fd);
        return n < 0 ? -e : n;
}

static int pipe_above_stdio(int *ret_read, int *ret_write) {
        int fds[2];

        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        fds[0] = fd_move_above_stdio(fds[0]);
        fds[1] = fd_move_above_stdio(fds[1]);
        if (fds[0] < 0 || fds[1] < 0) {
                safe_close(fds[0]);
                safe_close(fds[1]);
                return -EMFILE;
        }
        *ret_read = fds[0];
        *ret_write = fds[1];
        return 0;
}

/* Between fork and execve: async-signal-safe calls only. A failure is
 * reported through errno_fd, which execve closes when it succeeds. */
static _noreturn_ void git_child(const SandboxCommand *cmd, uint64_t address_space, int null_fd, int out_fd,
                                 int err_fd, int errno_fd) {
        struct sigaction sa = { .sa_handler = SIG_DFL };
        sigset_t ss;
        int e;

        /* A daemon may ignore SIGPIPE or block signals; git must see neither,
         * so that closing its stdout early stops it. */
        for (int sig = 1; sig < NSIG; sig++)
                (void) sigaction(sig, &sa, NULL);
        (void) sigemptyset(&ss);
        (void) sigprocmask(SIG_SETMASK, &ss, NULL);

        if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 || dup2(err_fd, STDERR_FILENO) < 0)
                goto fail;
        /* Where no cgroup holds it (makima-api's diff), git's memory is
         * bounded here: a worktree of a few hundred MB of short lines would
         * otherwise cost gigabytes. */
        if (address_space > 0 &&
            setrlimit(RLIMIT_AS, &(struct rlimit) { .rlim_cur = address_space, .rlim_max = address_space }) < 0)
                goto fail;
        errno = -sandbox_command_exec(cmd);
fail:
        e = errno;
        (void) !write(errno_fd, &e, sizeof e);
        _exit(127);
}

/* Reads both pipes until git closes them. Once stdout reaches its limit it
 * is closed: git then dies of SIGPIPE instead of producing what nobody reads. */
static uint64_t monotonic_msec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* Reads both pipes to their end; -ETIME once deadline (monotonic ms) has passed. */
static int git_read_pipes(int *out_fd, int *err_fd, GitOutput *out, GitOutput *err, uint64_t deadline) {
        char buf[64 * 1024];
        int r;

        while (*out_fd >= 0 || *err_fd >= 0) {
                struct pollfd p[2] = {
                        { .fd = *out_fd, .events = POLLIN },
                        { .fd = *err_fd, .events = POLLIN },
                };
                uint64_t now = monotonic_msec();
                int k;

                if (now >= deadline)
                        return -ETIME;
                k = poll(p, ELEMENTSOF(p), (int) MIN(deadline - now, (uint64_t) INT_MAX));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        continue;
                for (size_t i = 0; i < ELEMENTSOF(p); i++) {
                        int *fd = i == 0 ? out_fd : err_fd;
                        GitOutput *o = i == 0 ? out : err;
                        ssize_t n;

                        if (*fd < 0 || p[i].revents == 0)
                                continue;
                        n = read(*fd, buf, sizeof buf);
                        if (n < 0 && IN_SET(errno, EINTR, EAGAIN))
                                continue;
                        if (n < 0)
                                return -errno;
                        if (n > 0) {
                                r = git_output_append(o, buf, (size_t) n);
                                if (r < 0)
                                        return r;
                        }
                        if (n == 0 || (i == 0 && o->truncated)) {
                                (void) close(*fd);
                                *fd = -EBADF;
                        }
                }
        }
        return 0;
}

/* Runs git; returns its exit status (128 + signal if killed) or -errno. */
static int git_exec(const GitJail *jail, const char *dir, const char *const *argv, char *const *extra_env,
                    size_t max_stdout, GitOutput *ret_out, char **ret_stderr) {
        _cleanup_(sandbox_command_done) SandboxCommand cmd = {};
        _cleanup_close_ int null_fd = -EBADF, out_r = -EBADF, out_w = -EBADF, err_r = -EBADF, err_w = -EBADF,
                            errno_r = -EBADF, errno_w = -EBADF;
        GitOutput out = { .max = max_stdout }, err = { .max = GIT_STDERR_MAX };
        int status, child_errno, r;
        pid_t pid;

        if (!jail || !jail->context || !jail->context->config)
                return -EINVAL;
        /* A directory that is not there would be bwrap's complaint, not git's. */
        if (dir && access(dir, F_OK) < 0)
                return -errno;
        r = git_command(jail, dir, argv, extra_env, &cmd, ret_stderr);
        if (r < 0)
                return r;

        null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (null_fd < 0)
                return -errno;
        null_fd = fd_move_above_stdio(null_fd);
        if (null_fd < 0)
                return null_fd;
        r = pipe_above_stdio(&out_r, &out_w);
        if (r < 0)
                return r;
        r = pipe_above_stdio(&err_r, &err_w);
        if (r < 0)
                return r;
        r = pipe_above_stdio(&errno_r, &errno_w);
        if (r < 0)
                return r;

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                git_child(&cmd, jail->context->memory_max, null_fd, out_w, err_w, errno_w);

        out_w = safe_close(out_w);
        err_w = safe_close(err_w);
        errno_w = safe_close(errno_w);

        /* git that waits on a FIFO of the agent's, or hashes a sparse file of
         * terabytes, must not hold its caller for ever. */
        r = git_read_pipes(&out_r, &err_r, &out, &err,
                           monotonic_msec() + (jail->network ? GIT_TIMEOUT_NETWORK_SEC : GIT_TIMEOUT_SEC) * 1000);
        if (r < 0)
                (void) kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        r = r < 0 ? r : -errno;
                        break;
                }
        if (r >= 0 && read(errno_r, &child_errno, sizeof child_errno) == (ssize_t) sizeof child_errno)
                r = -child_errno;
        /* No output is "", not NULL. */
        if (r >= 0 && (git_output_append(&out, "", 0) < 0 || git_output_append(&err, "", 0) < 0))
                r = -ENOMEM;
        if (r < 0) {
                git_output_done(&out);
                git_output_done(&err);
                return r;
        }

        if (WIFEXITED(status))
                r = WEXITSTATUS(status);
        else
                r = 128 + WTERMSIG(status);
        /* We closed the pipe: that is how a cut-off git ends, not a failure. */
        if (out.truncated && r == 128 + SIGPIPE)
                r = 0;

        if (ret_out)
                *ret_out = out;
        else
                git_output_done(&out);
        if (ret_stderr)
                *ret_stderr = err.data;
        else
                free(err.data);
        return r;
}

int git_capture(const GitJail *jail, const char *dir, const char *const *argv, char *const *env, size_t max_stdout,
                GitOutput *ret_out, char **ret_error) {
        _cleanup_free_ char *err = NULL;
        GitOutput out = {};
        int r;

        r = git_exec(jail, dir, argv, env, max_stdout, &out, &err);
        if (r == -ENOPKG)
                return git_set_error(ret_error, r, "%s", SANDBOX_BWRAP_MISSING);
        if (r == -ETIME)
                return git_set_error(ret_error, r, "git %s took longer than %u s and was stopped", argv[0],
                                     jail->network ? GIT_TIMEOUT_NETWORK_SEC : GIT_TIMEOUT_SEC);
        if (r < 0)
                return git_set_error(ret_error, r, "cannot run git %s: %s", argv[0], err ?: strerror(-r));
        if (r > 0 && ret_error) {
                char *c = git_complaint(err, r);

                if (!c) {
                        git_output_done(&out);
                        return -ENOMEM;
                }
                free(*ret_error);
                *ret_error = c;
        }
        if (ret_out)
                *ret_out = out;
        else
                git_output_done(&out);
        return r;
}

char *git_output_line(GitOutput *o) {
        while (o->size > 0 && o->data[o->size - 1] == '\n')
                o->data[--o->size] = '\0';
        return TAKE_PTR(o->data);
}

int git_output_finish(int r, GitOutput *out, char **ret_stdout) {
        if (r == 0 && ret_stdout)
                *ret_stdout = git_output_line(out);
        git_output_done(out);
        return r < 0 ? r : r > 0 ? -EIO : 0;
}

int git_out(const GitJail *jail, const char *dir, const char *const *argv, char **ret_stdout, char **ret_error) {
        GitOutput out = {};

        return git_output_finish(git_capture(jail, dir, argv, NULL, 0, &out, ret_error), &out, ret_stdout);
}

int git_probe(const GitJail *jail, const char *dir, const char *const *argv, char **ret_stdout, char **ret_error) {
        _cleanup_free_ char *e = NULL;
        GitOutput out = {};
        int r;

        r = git_capture(jail, dir, argv, NULL, 0, &out, &e);
        if (r == 0 && ret_stdout)
                *ret_stdout = git_output_line(&out);
        git_output_done(&out);
        if (r == 0)
                return 1;
        if (r == 1)
                return 0;
        if (ret_error) {
                free(*ret_error);
                *ret_error = TAKE_PTR(e);
        }
        return r < 0 ? r : -EIO;
}
