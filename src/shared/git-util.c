/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The git operations of git-util.h, done by running the real git: one
 * fork + execve per command with hooks off and a scrubbed environment.
 * Files makima copies or hashes itself are opened with openat2() and
 * RESOLVE_BENEATH, so a symlink an agent planted cannot lead it outside. */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "conf.h"
#include "git-util.h"
#include "sha256.h"

extern char **environ;

#define GIT_STDERR_MAX (64U * 1024U)
#define GIT_ERROR_LINES 3
#define GIT_ARGV(...) ((const char *const[]) { __VA_ARGS__, NULL })

/* Every run starts with these: the hooks and fsmonitor command of a
 * repository an agent could write must never run on the host. */
static const char *const git_safety_args[] = {
        "-c", "core.hooksPath=/dev/null",
        "-c", "core.fsmonitor=false",
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

/* A growing, NUL-terminated buffer that keeps at most max bytes (0: any). */
typedef struct GitOutput {
        char *data;
        size_t size, allocated, max;
        bool truncated;
} GitOutput;

static void git_output_done(GitOutput *o) {
        o->data = mfree(o->data);
        o->size = o->allocated = 0;
}

static int git_output_append(GitOutput *o, const void *p, size_t n) {
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

static inline void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

static int set_error(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);
static int set_error(char **ret_error, int r, const char *fmt, ...) {
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

static char *find_git(void) {
        const char *path = getenv("PATH");
        char *p;

        for (const char *d = strempty(path); path && *d;) {
                size_t len = strcspn(d, ":");

                if (asprintf(&p, "%.*s/git", (int) len, len > 0 ? d : ".") < 0)
                        return NULL;
                if (access(p, X_OK) == 0)
                        return p;
                free(p);
                d += len + (d[len] == ':');
        }
        return strdup("/usr/bin/git");
}

static bool git_env_kept(const char *e) {
        if (!startswith(e, "GIT_"))
                return !startswith(e, "LC_ALL=");
        for (size_t i = 0; i < ELEMENTSOF(git_env_keep); i++)
                if (startswith(e, git_env_keep[i]))
                        return true;
        return false;
}

static int git_build_env(char *const *extra, char ***ret) {
        _cleanup_(strv_freep) char **l = NULL;
        int r;

        for (char **e = environ; e && *e; e++)
                if (git_env_kept(*e)) {
                        r = strv_extend(&l, *e);
                        if (r < 0)
                                return r;
                }
        for (char *const *e = extra; e && *e; e++) {
                r = strv_extend(&l, *e);
                if (r < 0)
                        return r;
        }
        r = strv_extend(&l, "GIT_TERMINAL_PROMPT=0");
        if (r < 0)
                return r;
        r = strv_extend(&l, "LC_ALL=C");
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
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

static int safe_close(int fd) {
        if (fd >= 0)
                (void) close(fd);
        return -EBADF;
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
static _noreturn_ void git_child(const char *dir, const char *git, const char **argv, char **envp, int null_fd,
                                 int out_fd, int err_fd, int errno_fd) {
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
        (void) close_range(STDERR_FILENO + 1, ~0U, CLOSE_RANGE_CLOEXEC);
        if (dir && chdir(dir) < 0)
                goto fail;
        execve(git, (char *const *) argv, envp);
fail:
        e = errno;
        (void) !write(errno_fd, &e, sizeof e);
        _exit(127);
}

/* Reads both pipes until git closes them. Once stdout reaches its limit it
 * is closed: git then dies of SIGPIPE instead of producing what nobody reads. */
static int git_read_pipes(int *out_fd, int *err_fd, GitOutput *out, GitOutput *err) {
        char buf[64 * 1024];
        int r;

        while (*out_fd >= 0 || *err_fd >= 0) {
                struct pollfd p[2] = {
                        { .fd = *out_fd, .events = POLLIN },
                        { .fd = *err_fd, .events = POLLIN },
                };

                if (poll(p, ELEMENTSOF(p), -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
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
static int git_exec(const char *dir, const char *const *argv, char *const *extra_env, size_t max_stdout,
                    GitOutput *ret_out, char **ret_stderr) {
        _cleanup_free_ char *git = NULL;
        _cleanup_free_ const char **full = NULL;
        _cleanup_(strv_freep) char **env = NULL;
        _cleanup_close_ int null_fd = -EBADF, out_r = -EBADF, out_w = -EBADF, err_r = -EBADF, err_w = -EBADF,
                            errno_r = -EBADF, errno_w = -EBADF;
        GitOutput out = { .max = max_stdout }, err = { .max = GIT_STDERR_MAX };
        size_t n = 0, argc = 0;
        int status, child_errno, r;
        pid_t pid;

        while (argv[argc])
                argc++;
        full = calloc(argc + ELEMENTSOF(git_safety_args) + 2, sizeof(char *));
        git = find_git();
        if (!full || !git)
                return -ENOMEM;
        full[n++] = "git";
        for (size_t i = 0; i < ELEMENTSOF(git_safety_args); i++)
                full[n++] = git_safety_args[i];
        for (size_t i = 0; i < argc; i++)
                full[n++] = argv[i];
        r = git_build_env(extra_env, &env);
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
                git_child(dir, git, full, env, null_fd, out_w, err_w, errno_w);

        out_w = safe_close(out_w);
        err_w = safe_close(err_w);
        errno_w = safe_close(errno_w);

        r = git_read_pipes(&out_r, &err_r, &out, &err);
        if (r < 0)
                (void) kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        r = r < 0 ? r : -errno;
                        break;
                }
        if (r >= 0 && read(errno_r, &child_errno, sizeof child_errno) == (ssize_t) sizeof child_errno)
                r = -child_errno;
        if (r >= 0 && (!out.data || !err.data))
                r = git_output_append(&out, "", 0) < 0 || git_output_append(&err, "", 0) < 0 ? -ENOMEM : 0;
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

/* Runs git and returns its exit status; when that is not 0, or when git
 * could not run at all (-errno), *ret_error says why. */
static int git_capture(const char *dir, const char *const *argv, char *const *env, size_t max_stdout,
                       GitOutput *ret_out, char **ret_error) {
        _cleanup_free_ char *err = NULL;
        GitOutput out = {};
        int r;

        r = git_exec(dir, argv, env, max_stdout, &out, &err);
        if (r < 0)
                return set_error(ret_error, r, "cannot run git %s: %s", argv[0], strerror(-r));
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

static char *git_output_line(GitOutput *o) {
        while (o->size > 0 && o->data[o->size - 1] == '\n')
                o->data[--o->size] = '\0';
        return TAKE_PTR(o->data);
}

/* Runs git that must succeed: 0 and its stdout without the final newline,
 * -EIO if it failed, -errno if it could not run. */
static int git_out(const char *dir, const char *const *argv, char **ret_stdout, char **ret_error) {
        GitOutput out = {};
        int r;

        r = git_capture(dir, argv, NULL, 0, &out, ret_error);
        if (r != 0) {
                git_output_done(&out);
                return r < 0 ? r : -EIO;
        }
        if (ret_stdout)
                *ret_stdout = git_output_line(&out);
        git_output_done(&out);
        return 0;
}

/* Asks git a question its exit status answers: 1 yes (with stdout), 0 no
 * (status 1, as "rev-parse --verify -q" says it), or an error. */
static int git_probe(const char *dir, const char *const *argv, char **ret_stdout, char **ret_error) {
        _cleanup_free_ char *e = NULL;
        GitOutput out = {};
        int r;

        r = git_capture(dir, argv, NULL, 0, &out, &e);
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

int git_run(const char *dir, char *const *argv, size_t max_stdout, char **ret_stdout, char **ret_stderr) {
        GitOutput out = {};
        int r;

        if (!argv || !argv[0])
                return -EINVAL;
        r = git_exec(dir, (const char *const *) argv, NULL, max_stdout, &out, ret_stderr);
        if (r < 0)
                return r;
        if (ret_stdout)
                *ret_stdout = TAKE_PTR(out.data);
        git_output_done(&out);
        return r;
}

bool git_repo_is_url(const char *s) {
        static const char *const schemes[] = {
                "https://", "http://", "ssh://", "git://", "file://", "git+ssh://", "ssh+git://",
        };
        const char *colon;
        size_t host;

        if (isempty(s))
                return false;
        for (size_t i = 0; i < ELEMENTSOF(schemes); i++)
                if (startswith(s, schemes[i]))
                        return s[strlen(schemes[i])] != '\0';

        /* scp-like [user@]host:path, as git reads it: a colon before any
         * slash. The host part is kept to plain characters so that no
         * "transport::address" form gets through. */
        colon = strchr(s, ':');
        if (!colon || colon == s || colon[1] == '\0' || colon[1] == ':')
                return false;
        host = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_@[]");
        return s + host == colon;
}

static int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1;; s++) {
                bool end = *s == '\0';

                if (!end && *s != '/')
                        continue;
                *s = '\0';
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                if (end)
                        break;
                *s = '/';
        }
        return 0;
}

/* Removes a tree without following any symlink in it. */
static int rm_rf_at(int dir_fd, const char *name) {
        _cleanup_(closedirp) DIR *d = NULL;
        int fd, r = 0;

        if (unlinkat(dir_fd, name, 0) >= 0 || errno == ENOENT)
                return 0;
        if (!IN_SET(errno, EISDIR, EPERM))
                return -errno;
        fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                r = -errno;
                (void) close(fd);
                return r;
        }
        for (struct dirent *de; (de = readdir(d));) {
                int k;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                k = rm_rf_at(dirfd(d), de->d_name);
                if (k < 0 && r == 0)
                        r = k;
        }
        if (unlinkat(dir_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                r = -errno;
        return r;
}

/* Opens path below dir_fd; a symlink leading out of it is -EXDEV. */
static int open_beneath(int dir_fd, const char *path, int flags) {
        struct open_how how = {
                .flags = (uint64_t) (flags | O_CLOEXEC),
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        long fd;

        fd = syscall(SYS_openat2, dir_fd, path, &how, sizeof how);
        return fd < 0 ? -errno : (int) fd;
}

static int resolve_local(const char *repo, char **ret_path, char **ret_error) {
        _cleanup_free_ char *real = NULL, *bare = NULL, *top = NULL, *complaint = NULL;
        struct stat st;
        int r;

        real = realpath(repo, NULL);
        if (!real) {
                r = -errno;
                if (r == -ENOENT)
                        return set_error(ret_error, r, "repository '%s' does not exist", repo);
                return set_error(ret_error, r, "cannot resolve repository '%s': %s", repo, strerror(-r));
        }
        if (stat(real, &st) < 0)
                return set_error(ret_error, -errno, "cannot stat repository '%s': %m", repo);
        if (!S_ISDIR(st.st_mode))
                return set_error(ret_error, -ENOTDIR, "'%s' is not a git repository", repo);

        r = git_out(real, GIT_ARGV("rev-parse", "--is-bare-repository"), &bare, &complaint);
        if (r == -EIO && strstr(complaint, "not a git repository"))
                return set_error(ret_error, -EINVAL, "'%s' is not a git repository", repo);
        if (r == -EIO)
                return set_error(ret_error, -EINVAL, "'%s' is not a usable git repository: %s", repo, complaint);
        if (r < 0)
                return set_error(ret_error, r, "%s", complaint);

        if (streq(bare, "true"))
                r = git_out(real, GIT_ARGV("rev-parse", "--absolute-git-dir"), &top, ret_error);
        else
                r = git_out(real, GIT_ARGV("rev-parse", "--show-toplevel"), &top, ret_error);
        if (r < 0)
                return r == -EIO ? -EINVAL : r;
        *ret_path = TAKE_PTR(top);
        return 0;
}

/* A clone-cache entry is a bare repository whose remote branches stay
 * under refs/remotes/origin/: refs/heads/ is left to the task branches, so
 * fetching (with --prune) never touches a branch a worktree has out. */
static int clone_into(const char *dir, const char *url, char **ret_error) {
        _cleanup_free_ char *head = NULL, *ref = NULL;
        int r;

        r = git_out(dir, GIT_ARGV("init", "--bare", "-q", "."), NULL, ret_error);
        if (r < 0)
                return r;
        r = git_out(dir, GIT_ARGV("config", "remote.origin.url", url), NULL, ret_error);
        if (r < 0)
                return r;
        r = git_out(dir, GIT_ARGV("config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"), NULL,
                    ret_error);
        if (r < 0)
                return r;
        r = git_out(dir, GIT_ARGV("fetch", "-q", "--prune", "--tags", "origin"), NULL, ret_error);
        if (r < 0)
                return r;

        /* HEAD names the remote's default branch for git_default_branch(). An
         * empty remote has none; then init's default stays. */
        r = git_probe(dir, GIT_ARGV("remote", "set-head", "origin", "--auto"), NULL, NULL);
        if (r <= 0)
                return 0;
        r = git_out(dir, GIT_ARGV("symbolic-ref", "--short", "refs/remotes/origin/HEAD"), &head, ret_error);
        if (r < 0)
                return r;
        if (asprintf(&ref, "refs/heads/%s", startswith(head, "origin/") ?: head) < 0)
                return -ENOMEM;
        return git_out(dir, GIT_ARGV("symbolic-ref", "HEAD", ref), NULL, ret_error);
}

static int resolve_url(const char *url, const char *cache_dir, char **ret_path, char **ret_error) {
        _cleanup_free_ char *path = NULL, *lock = NULL, *tmp = NULL;
        _cleanup_close_ int lock_fd = -EBADF;
        char hex[SHA256_HEX_SIZE];
        struct stat st;
        int r;

        if (isempty(cache_dir))
                return set_error(ret_error, -EINVAL, "no clone cache directory for '%s'", url);
        r = mkdir_p(cache_dir, 0755);
        if (r < 0)
                return set_error(ret_error, r, "cannot create '%s': %s", cache_dir, strerror(-r));
        sha256_hex(url, strlen(url), hex);
        if (asprintf(&path, "%s/%s", cache_dir, hex) < 0 || asprintf(&lock, "%s.lock", path) < 0 ||
            asprintf(&tmp, "%s/.%s.XXXXXX", cache_dir, hex) < 0)
                return -ENOMEM;

        /* Workers that want the same repository take turns: two clones would
         * waste the work, two fetches would fight over ref locks. */
        lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (lock_fd < 0)
                return set_error(ret_error, -errno, "cannot open '%s': %m", lock);
        while (flock(lock_fd, LOCK_EX) < 0)
                if (errno != EINTR)
                        return set_error(ret_error, -errno, "cannot lock '%s': %m", lock);

        if (stat(path, &st) >= 0) {
                r = git_out(path, GIT_ARGV("fetch", "-q", "--prune", "--tags", "origin"), NULL, ret_error);
                if (r < 0)
                        return r;
                *ret_path = TAKE_PTR(path);
                return 0;
        }
        if (errno != ENOENT)
                return set_error(ret_error, -errno, "cannot stat '%s': %m", path);

        /* Cloned under a temporary name and renamed when complete, so that a
         * crash never leaves a half clone under the real one. */
        if (!mkdtemp(tmp))
                return set_error(ret_error, -errno, "cannot create a directory in '%s': %m", cache_dir);
        r = chmod(tmp, 0755) < 0 ? -errno : 0;
        if (r >= 0)
                r = clone_into(tmp, url, ret_error);
        if (r >= 0 && rename(tmp, path) < 0)
                r = set_error(ret_error, -errno, "cannot rename '%s' to '%s': %m", tmp, path);
        if (r < 0) {
                (void) rm_rf_at(AT_FDCWD, tmp);
                return r;
        }
        *ret_path = TAKE_PTR(path);
        return 0;
}

int git_resolve_repo(const char *repo, const char *cache_dir, char **ret_path, char **ret_error) {
        if (isempty(repo))
                return set_error(ret_error, -EINVAL, "no repository given");
        if (git_repo_is_url(repo))
                return resolve_url(repo, cache_dir, ret_path, ret_error);
        return resolve_local(repo, ret_path, ret_error);
}

int git_default_branch(const char *repo_path, char **ret_branch, char **ret_error) {
        _cleanup_free_ char *branch = NULL;
        int r;

        r = git_probe(repo_path, GIT_ARGV("symbolic-ref", "--short", "-q", "HEAD"), &branch, ret_error);
        if (r < 0)
                return r;
        if (r == 0 || isempty(branch))
                return set_error(ret_error, -ENOENT, "HEAD of %s is not on a branch", repo_path);
        *ret_branch = TAKE_PTR(branch);
        return 0;
}

/* What git takes for a commit: a branch, tag or commit id; then, for a
 * clone-cache repository whose branches live there, origin/<base>. */
static int resolve_base(const char *dir, const char *base, char **ret_commit, char **ret_error) {
        int r;

        for (unsigned i = 0; i < 2 && !isempty(base) && base[0] != '-'; i++) {
                _cleanup_free_ char *rev = NULL, *commit = NULL;

                if (asprintf(&rev, i == 0 ? "%s^{commit}" : "origin/%s^{commit}", base) < 0)
                        return -ENOMEM;
                r = git_probe(dir, GIT_ARGV("rev-parse", "--verify", "-q", rev), &commit, ret_error);
                if (r < 0)
                        return r;
                if (r > 0) {
                        *ret_commit = TAKE_PTR(commit);
                        return 0;
                }
        }
        return set_error(ret_error, -ENOENT, "base branch '%s' does not exist in %s", strempty(base), dir);
}

/* The path as git records a worktree's: absolute, symlinks resolved (of
 * its parent, when it does not exist yet). */
static int path_canonical(const char *path, char **ret) {
        _cleanup_free_ char *abs = NULL, *cwd = NULL, *parent = NULL;
        char *real, *slash;

        if (path[0] != '/') {
                cwd = getcwd(NULL, 0);
                if (!cwd)
                        return -errno;
        }
        if (asprintf(&abs, "%s/%s", strempty(cwd), path) < 0)
                return -ENOMEM;
        while (strlen(abs) > 1 && abs[strlen(abs) - 1] == '/')
                abs[strlen(abs) - 1] = '\0';

        real = realpath(abs, NULL);
        if (!real && errno == ENOENT && (slash = strrchr(abs, '/')) && slash != abs) {
                *slash = '\0';
                parent = realpath(abs, NULL);
                *slash = '/';
                if (parent && asprintf(&real, "%s%s", streq(parent, "/") ? "" : parent, slash) < 0)
                        return -ENOMEM;
        }
        *ret = real ?: TAKE_PTR(abs);
        return 0;
}

/* Looks path up among the repository's worktrees: 1 with the branch it
 * has out ("" if detached), 0 if it is not one. */
static int worktree_find(const char *repo, const char *path, char **ret_branch, char **ret_error) {
        _cleanup_free_ char *branch = NULL;
        GitOutput out = {};
        bool match = false, found = false;
        int r;

        r = git_capture(repo, GIT_ARGV("worktree", "list", "--porcelain", "-z"), NULL, 0, &out, ret_error);
        if (r != 0) {
                git_output_done(&out);
                return r < 0 ? r : -EIO;
        }
        for (const char *p = out.data; p < out.data + out.size; p += strlen(p) + 1) {
                const char *v;

                if ((v = startswith(p, "worktree "))) {
                        if (match)
                                break;
                        match = found = streq(v, path);
                } else if (match && (v = startswith(p, "branch ")) && free_and_strdup(&branch, v) < 0) {
                        git_output_done(&out);
                        return -ENOMEM;
                }
        }
        git_output_done(&out);
        if (found && ret_branch)
                *ret_branch = branch ? TAKE_PTR(branch) : strdup("");
        if (found && ret_branch && !*ret_branch)
                return -ENOMEM;
        return found;
}

static int copy_fd(int in, int out) {
        char buf[64 * 1024];
        ssize_t n;

        while ((n = read(in, buf, sizeof buf)) != 0) {
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                for (ssize_t done = 0, w; done < n; done += w) {
                        w = write(out, buf + done, (size_t) (n - done));
                        if (w < 0 && errno == EINTR)
                                w = 0;
                        else if (w < 0)
                                return -errno;
                }
        }
        return 0;
}

/* A copy_files entry: relative, and every component a real name. */
static bool path_is_safe_relative(const char *p) {
        if (isempty(p) || p[0] == '/')
                return false;
        for (const char *c = p; *c;) {
                size_t n = strcspn(c, "/");

                if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && strneq(c, "..", 2)))
                        return false;
                c += n + (c[n] == '/');
                if (c[-1] == '/' && *c == '\0')
                        return false;
        }
        return true;
}

/* Copies one entry as "cp -a" would, but never over something that exists
 * (a tracked file, or the agent's own edit after a restart) and with no
 * set-id bits. Symlinks are copied as symlinks, never followed. */
static int copy_entry(int src_dir, int dst_dir, const char *name, const struct stat *st) {
        mode_t mode = st->st_mode & 0777;

        if (S_ISLNK(st->st_mode)) {
                char target[PATH_MAX + 1];
                ssize_t n = readlinkat(src_dir, name, target, sizeof target - 1);

                if (n < 0)
                        return -errno;
                target[n] = '\0';
                if (symlinkat(target, dst_dir, name) < 0 && errno != EEXIST)
                        return -errno;
        } else if (S_ISREG(st->st_mode)) {
                _cleanup_close_ int in = -EBADF, out = -EBADF;
                int r;

                in = openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
                if (in < 0)
                        return errno == ENOENT ? 0 : -errno;
                out = openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
                if (out < 0)
                        return errno == EEXIST ? 0 : -errno;
                r = copy_fd(in, out);
                if (r < 0)
                        return r;
                if (fchmod(out, mode) < 0)
                        return -errno;
        } else if (S_ISDIR(st->st_mode)) {
                _cleanup_(closedirp) DIR *d = NULL;
                _cleanup_close_ int dst = -EBADF;
                int src, r;

                if (mkdirat(dst_dir, name, 0700) >= 0) {
                        if (fchmodat(dst_dir, name, mode, 0) < 0)
                                return -errno;
                } else if (errno != EEXIST)
                        return -errno;
                dst = openat(dst_dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (dst < 0)
                        return -errno;
                src = openat(src_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (src < 0)
                        return -errno;
                d = fdopendir(src);
                if (!d) {
                        r = -errno;
                        (void) close(src);
                        return r;
                }
                for (struct dirent *de; (de = readdir(d));) {
                        struct stat sub;

                        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                                continue;
                        if (fstatat(dirfd(d), de->d_name, &sub, AT_SYMLINK_NOFOLLOW) < 0)
                                return -errno;
                        r = copy_entry(dirfd(d), dst, de->d_name, &sub);
                        if (r < 0)
                                return r;
                }
        }
        /* Sockets, fifos and devices have no place in a worktree. */
        return 0;
}

/* Opens (creating what is missing) the directory rel below top, one
 * component at a time so that every step stays beneath top. */
static int mkdir_beneath(int top, const char *rel) {
        _cleanup_free_ char *p = strdup(rel);
        _cleanup_close_ int fd = -EBADF;

        if (!p)
                return -ENOMEM;
        fd = open_beneath(top, ".", O_PATH | O_DIRECTORY);
        for (char *s = p; fd >= 0 && *s;) {
                size_t n = strcspn(s, "/");
                char c = s[n];

                s[n] = '\0';
                if (mkdirat(fd, s, 0755) < 0 && errno != EEXIST)
                        return -errno;
                (void) close(fd);
                fd = open_beneath(top, p, O_PATH | O_DIRECTORY);
                s[n] = c;
                s += n + (c == '/');
        }
        return TAKE_FD(fd);
}

static int copy_into_worktree(int src_top, int dst_top, const char *rel, char **ret_error) {
        _cleanup_free_ char *parent = NULL;
        _cleanup_close_ int src = -EBADF, dst = -EBADF;
        const char *slash = strrchr(rel, '/'), *name = slash ? slash + 1 : rel;
        struct stat st;
        int r;

        parent = slash ? strndup(rel, (size_t) (slash - rel)) : strdup(".");
        if (!parent)
                return -ENOMEM;
        src = open_beneath(src_top, parent, O_PATH | O_DIRECTORY);
        if (IN_SET(src, -ENOENT, -ENOTDIR))
                return 0;
        if (IN_SET(src, -EXDEV, -ELOOP))
                return set_error(ret_error, -EINVAL, "copy file '%s' leads out of the repository", rel);
        if (src < 0)
                return set_error(ret_error, src, "cannot open '%s' in the repository: %s", parent, strerror(-src));
        if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : set_error(ret_error, -errno, "cannot stat '%s': %m", rel);

        dst = mkdir_beneath(dst_top, slash ? parent : "");
        if (IN_SET(dst, -EXDEV, -ELOOP, -ENOTDIR))
                return set_error(ret_error, -EINVAL, "copy file '%s' leads out of the worktree", rel);
        if (dst < 0)
                return set_error(ret_error, dst, "cannot create '%s' in the worktree: %s", parent, strerror(-dst));
        r = copy_entry(src, dst, name, &st);
        if (r < 0)
                return set_error(ret_error, r, "cannot copy '%s' into the worktree: %s", rel, strerror(-r));
        return 0;
}

static int copy_files_into(const char *repo_path, const char *worktree, char *const *copy_files, char **ret_error) {
        _cleanup_free_ char *top = NULL;
        _cleanup_close_ int src = -EBADF, dst = -EBADF;
        int r;

        /* A bare repository (every clone-cache one) has no files of its own to give. */
        r = git_probe(repo_path, GIT_ARGV("rev-parse", "--is-inside-work-tree"), &top, ret_error);
        if (r < 0 || !streq_ptr(top, "true"))
                return MIN(r, 0);
        top = mfree(top);
        r = git_out(repo_path, GIT_ARGV("rev-parse", "--show-toplevel"), &top, ret_error);
        if (r < 0)
                return r;
        src = open(top, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (src < 0)
                return set_error(ret_error, -errno, "cannot open '%s': %m", top);
        dst = open(worktree, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dst < 0)
                return set_error(ret_error, -errno, "cannot open '%s': %m", worktree);
        for (char *const *f = copy_files; *f; f++) {
                r = copy_into_worktree(src, dst, *f, ret_error);
                if (r < 0)
                        return r;
        }
        return 0;
}

int git_worktree_prepare(const char *repo_path, const char *base, const char *branch, const char *path,
                         char *const *copy_files, char **ret_error) {
        _cleanup_free_ char *canonical = NULL, *ref = NULL, *current = NULL, *commit = NULL;
        int r;

        if (isempty(repo_path) || isempty(path))
                return set_error(ret_error, -EINVAL, "no repository or worktree path given");
        /* git would read a leading dash as an option */
        if (isempty(branch) || branch[0] == '-')
                return set_error(ret_error, -EINVAL, "invalid branch name '%s'", strempty(branch));
        for (char *const *f = copy_files; f && *f; f++)
                if (!path_is_safe_relative(*f))
                        return set_error(ret_error, -EINVAL, "copy file '%s' is not a path inside the repository", *f);
        r = path_canonical(path, &canonical);
        if (r < 0)
                return set_error(ret_error, r, "cannot resolve '%s': %s", path, strerror(-r));
        if (asprintf(&ref, "refs/heads/%s", branch) < 0)
                return -ENOMEM;

        r = worktree_find(repo_path, canonical, &current, ret_error);
        if (r < 0)
                return r;
        if (r > 0 && access(canonical, F_OK) >= 0) {
                /* A restart: the worktree from the previous attempt is kept as the agent left it. */
                if (!streq(current, ref))
                        return set_error(ret_error, -EEXIST, "'%s' is already a worktree of %s, not on branch '%s'",
                                         canonical, repo_path, branch);
        } else {
                /* A registered worktree whose directory is gone would block "worktree add". */
                r = git_out(repo_path, GIT_ARGV("worktree", "prune"), NULL, ret_error);
                if (r < 0)
                        return r;
                r = git_probe(repo_path, GIT_ARGV("rev-parse", "--verify", "-q", ref), NULL, ret_error);
                if (r < 0)
                        return r;
                if (r > 0)
                        /* The branch of an earlier attempt: its commits are the task's work. */
                        r = git_out(repo_path, GIT_ARGV("worktree", "add", canonical, branch), NULL, ret_error);
                else {
                        r = resolve_base(repo_path, base, &commit, ret_error);
                        if (r < 0)
                                return r;
                        r = git_out(repo_path, GIT_ARGV("worktree", "add", "--no-track", "-b", branch, canonical, commit),
                                    NULL, ret_error);
                }
                if (r < 0)
                        return r;
        }

        if (!copy_files || !copy_files[0])
                return 0;
        return copy_files_into(repo_path, canonical, copy_files, ret_error);
}

int git_worktree_remove(const char *repo_path, const char *path, const char *branch, bool delete_branch,
                        char **ret_error) {
        _cleanup_free_ char *canonical = NULL, *ref = NULL;
        int r;

        if (isempty(repo_path) || isempty(path))
                return set_error(ret_error, -EINVAL, "no repository or worktree path given");
        r = path_canonical(path, &canonical);
        if (r < 0)
                return set_error(ret_error, r, "cannot resolve '%s': %s", path, strerror(-r));

        r = worktree_find(repo_path, canonical, NULL, ret_error);
        if (r < 0)
                return r;
        if (r > 0 && access(canonical, F_OK) >= 0) {
                r = git_out(repo_path, GIT_ARGV("worktree", "remove", "--force", canonical), NULL, ret_error);
                if (r < 0)
                        return r;
        }
        r = git_out(repo_path, GIT_ARGV("worktree", "prune"), NULL, ret_error);
        if (r < 0)
                return r;

        if (!delete_branch || isempty(branch))
                return 0;
        if (branch[0] == '-')
                return set_error(ret_error, -EINVAL, "invalid branch name '%s'", branch);
        if (asprintf(&ref, "refs/heads/%s", branch) < 0)
                return -ENOMEM;
        r = git_probe(repo_path, GIT_ARGV("rev-parse", "--verify", "-q", ref), NULL, ret_error);
        if (r <= 0)
                return r;
        return git_out(repo_path, GIT_ARGV("branch", "-D", branch), NULL, ret_error);
}

/* Fills a fresh index file with the worktree's own index, or with HEAD's
 * tree if it has none: a copy keeps the stat data, so that "git add" need
 * not hash every file again. */
static int index_copy(const char *worktree, const char *to, char **ret_error) {
        _cleanup_free_ char *from = NULL, *rel = NULL;
        _cleanup_close_ int in = -EBADF, out = -EBADF;
        int r;

        r = git_out(worktree, GIT_ARGV("rev-parse", "--git-path", "index"), &rel, ret_error);
        if (r < 0)
                return r;
        if (rel[0] != '/' && asprintf(&from, "%s/%s", worktree, rel) < 0)
                return -ENOMEM;
        in = open(from ?: rel, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (in < 0 && errno == ENOENT)
                return 0;
        if (in < 0)
                return set_error(ret_error, -errno, "cannot open '%s': %m", from ?: rel);
        out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (out < 0)
                return set_error(ret_error, -errno, "cannot create '%s': %m", to);
        r = copy_fd(in, out);
        if (r < 0)
                return set_error(ret_error, r, "cannot copy the index: %s", strerror(-r));
        return 1;
}

int git_worktree_diff(const char *worktree, const char *base, size_t max_bytes, char **ret_diff,
                      bool *ret_truncated, char **ret_error) {
        _cleanup_free_ char *commit = NULL, *merge_base = NULL, *tmp = NULL, *index = NULL, *env_index = NULL;
        char *env[2] = {};
        GitOutput out = {};
        int r;

        if (isempty(worktree))
                return set_error(ret_error, -EINVAL, "no worktree given");
        r = resolve_base(worktree, base, &commit, ret_error);
        if (r < 0)
                return r;
        /* Unrelated histories have no merge base: the base itself is the next best. */
        r = git_probe(worktree, GIT_ARGV("merge-base", commit, "HEAD"), &merge_base, ret_error);
        if (r < 0)
                return r;

        if (asprintf(&tmp, "%s/makima-diff-XXXXXX", getenv("TMPDIR") ?: "/tmp") < 0)
                return -ENOMEM;
        if (!mkdtemp(tmp))
                return set_error(ret_error, -errno, "cannot create a temporary directory: %m");
        if (asprintf(&index, "%s/index", tmp) < 0 || asprintf(&env_index, "GIT_INDEX_FILE=%s", index) < 0) {
                r = -ENOMEM;
                goto finish;
        }
        env[0] = env_index;

        r = index_copy(worktree, index, ret_error);
        if (r == 0)
                r = git_capture(worktree, GIT_ARGV("read-tree", "HEAD"), env, 0, NULL, ret_error) != 0 ? -EIO : 0;
        /* Untracked files go in as intent-to-add entries: "git diff" then shows
         * them as new, and nothing is written to the object store. */
        if (r >= 0)
                r = git_capture(worktree, GIT_ARGV("-c", "core.splitIndex=false", "add", "-A", "-N"), env, 0, NULL,
                                ret_error);
        if (r > 0)
                r = -EIO;
        if (r >= 0)
                r = git_capture(worktree,
                                GIT_ARGV("diff", "--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/",
                                         "--dst-prefix=b/", merge_base ?: commit, "--"),
                                env, max_bytes, &out, ret_error);
        if (r > 0)
                r = -EIO;
finish:
        (void) rm_rf_at(AT_FDCWD, tmp);
        if (r < 0) {
                git_output_done(&out);
                return r;
        }

        /* A cut diff ends at a whole line, where one fits. */
        if (out.truncated) {
                char *nl = memrchr(out.data, '\n', out.size);

                if (nl) {
                        out.size = (size_t) (nl - out.data) + 1;
                        out.data[out.size] = '\0';
                }
        }
        if (ret_truncated)
                *ret_truncated = out.truncated;
        *ret_diff = TAKE_PTR(out.data);
        return 0;
}

/* One changed path into the fingerprint: its type and mode, and a hash of
 * its content (of a symlink: its target), or a mark that it is gone. The
 * content is hashed in chunks so that a big file needs no big buffer. */
static int fingerprint_path(int top, const char *path, GitOutput *acc, uint8_t *buf, size_t buf_size) {
        _cleanup_close_ int fd = -EBADF, content = -EBADF;
        GitOutput chunks = {};
        char hex[SHA256_HEX_SIZE] = "", line[128];
        struct stat st;
        ssize_t n;
        int r;

        r = git_output_append(acc, path, strlen(path) + 1);
        if (r < 0)
                return r;
        fd = open_beneath(top, path, O_PATH | O_NOFOLLOW);
        if (fd < 0 || fstat(fd, &st) < 0)
                return git_output_append(acc, "gone\n", 5);

        if (S_ISLNK(st.st_mode)) {
                n = readlinkat(fd, "", (char *) buf, buf_size);
                if (n < 0)
                        return -errno;
                sha256_hex(buf, (size_t) n, hex);
        } else if (S_ISREG(st.st_mode)) {
                content = open_beneath(top, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
                if (content < 0)
                        return git_output_append(acc, "gone\n", 5);
                while ((n = read(content, buf, buf_size)) != 0) {
                        uint8_t digest[SHA256_DIGEST_SIZE];

                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0) {
                                r = -errno;
                                break;
                        }
                        sha256(buf, (size_t) n, digest);
                        r = git_output_append(&chunks, digest, sizeof digest);
                        if (r < 0)
                                break;
                }
                if (r >= 0)
                        sha256_hex(strempty(chunks.data), chunks.size, hex);
                git_output_done(&chunks);
                if (r < 0)
                        return r;
        }
        (void) snprintf(line, sizeof line, "%o %" PRIu64 " %s\n", (unsigned) st.st_mode, (uint64_t) st.st_size, hex);
        return git_output_append(acc, line, strlen(line));
}

int git_worktree_fingerprint(const char *worktree, char **ret_fingerprint, char **ret_error) {
        _cleanup_free_ char *head = NULL, *fingerprint = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_close_ int top = -EBADF;
        GitOutput status = {}, acc = {};
        char hex[SHA256_HEX_SIZE];
        const size_t buf_size = 1024 * 1024;
        int r;

        if (isempty(worktree))
                return set_error(ret_error, -EINVAL, "no worktree given");
        r = git_probe(worktree, GIT_ARGV("rev-parse", "--verify", "-q", "HEAD^{commit}"), &head, ret_error);
        if (r < 0)
                return r;
        /* The agent runs git in the same worktree: no index refresh, no lock to fight over. */
        r = git_capture(worktree,
                        GIT_ARGV("--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=all",
                                 "--no-renames"),
                        NULL, 0, &status, ret_error);
        if (r != 0) {
                git_output_done(&status);
                return r < 0 ? r : -EIO;
        }

        buf = malloc(buf_size);
        top = open(worktree, O_PATH | O_DIRECTORY | O_CLOEXEC);
        r = !buf ? -ENOMEM : top < 0 ? set_error(ret_error, -errno, "cannot open '%s': %m", worktree) : 0;
        if (r >= 0)
                r = git_output_append(&acc, status.data, status.size);
        /* Entries are "XY path" (no renames, so never a second path). */
        for (const char *p = status.data; r >= 0 && p < status.data + status.size; p += strlen(p) + 1)
                if (strlen(p) > 3)
                        r = fingerprint_path(top, p + 3, &acc, buf, buf_size);
        if (r >= 0) {
                sha256_hex(acc.data, acc.size, hex);
                if (asprintf(&fingerprint, "%s:%s", head ?: "unborn", hex) < 0)
                        r = -ENOMEM;
        }
        git_output_done(&status);
        git_output_done(&acc);
        if (r < 0)
                return r;
        *ret_fingerprint = TAKE_PTR(fingerprint);
        return 0;
}
