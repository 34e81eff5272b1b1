/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Builds the bwrap command line an agent runs under: a root of its own in
 * which the system is read-only, /dev, /proc and /tmp are fresh, and the only
 * host state in reach is the task's worktree, the git metadata a commit needs,
 * and the task's home. See sandbox.h for the interface. */

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "log.h"
#include "sandbox.h"
#include "sandbox-paths.h"
#include "sandbox-seccomp.h"

/* The agent's $PATH, after the directories its program's interpreter needs. */
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* How deep /etc is searched for what to hide. */
#define ETC_DEPTH_MAX 8
/* What makes a directory's scan out of date: entries made, removed, renamed
 * or changed in mode, and the directory itself going. */
#define ETC_WATCH_MASK                                                                                  \
        (IN_ATTRIB | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | \
         IN_ONLYDIR)

/* The last scan of /etc, good until its watches say otherwise; one per
 * process (a worker builds every one of its sandboxes in one thread). */
typedef struct EtcCache {
        char **args;
        int inotify_fd;
        int mountinfo_fd;
        bool valid;
} EtcCache;

static EtcCache etc_cache = { .inotify_fd = -EBADF, .mountinfo_fd = -EBADF };

typedef struct Builder {
        const SandboxParams *p;
        char **argv;
        char **env;
        SandboxProgram program;         /* the agent's, and what it needs */
        char **private_paths;           /* canonical: no bind may be one of these or above them */
        char **shared_dirs;             /* canonical: nor inside these (every task's worktree or home) */
        int fds[3];
        size_t n_fds;
} Builder;

static void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

static int safe_close(int fd) {
        if (fd >= 0)
                (void) close(fd);
        return -EBADF;
}

static int strv_add(char ***l, ...) {
        const char *s;
        va_list ap;
        int r = 0;

        va_start(ap, l);
        while ((s = va_arg(ap, const char *))) {
                r = strv_extend(l, s);
                if (r < 0)
                        break;
        }
        va_end(ap);
        return r;
}

#define FOREACH_STRING(x, ...) \
        for (const char *const *x##_i = (const char *const[]) { __VA_ARGS__, NULL }, *x; (x = *x##_i); x##_i++)

/* Refuses a bind (from the configuration, or found by us) that would show
 * the agent the state directory or the store, by being one of them or above
 * them; or other tasks' worktrees and homes, by being anywhere in or above
 * the directories that hold them. */
static int check_exposure(Builder *b, const char *path, const char *what) {
        _cleanup_free_ char *canonical = NULL;
        int r;

        r = path_canonical(path, &canonical);
        if (r < 0)
                return log_error_errno(r, "Failed to resolve %s %s: %m", what, path);
        for (char **i = b->private_paths; i && *i; i++)
                if (path_is_under(*i, canonical))
                        goto refuse;
        for (char **i = b->shared_dirs; i && *i; i++)
                if (path_is_under(*i, canonical) || path_is_under(canonical, *i))
                        goto refuse;
        return 0;

refuse:
        return log_error_errno(EPERM, "%s %s would expose the state directory or other tasks to the agent; refusing.",
                               what, path);
}

static int strv_add_canonical(char ***l, const char *path) {
        char *t;
        int r;

        r = path_canonical(path, &t);
        if (r < 0)
                return r;
        return strv_push(l, t);
}

static int add_protected(Builder *b) {
        const Config *c = b->p->config;
        _cleanup_free_ char *wt_parent = path_dirname(b->p->worktree), *home_parent = path_dirname(b->p->home);
        int r;

        if (!wt_parent || !home_parent)
                return -ENOMEM;
        r = strv_add_canonical(&b->private_paths, c->state_dir);
        if (r >= 0 && c->store_path)
                r = strv_add_canonical(&b->private_paths, c->store_path);
        if (r >= 0)
                r = strv_add_canonical(&b->shared_dirs, c->worker_worktree_dir);
        if (r >= 0)
                r = strv_add_canonical(&b->shared_dirs, wt_parent);
        if (r >= 0)
                r = strv_add_canonical(&b->shared_dirs, home_parent);
        if (r < 0)
                return r;

        /* The task's own directories are bound read-write: they must not
         * hold the state directory or the store either. */
        for (const char *const *d = (const char *const[]) { b->p->worktree, b->p->home, NULL }; *d; d++) {
                _cleanup_free_ char *canonical = NULL;

                r = path_canonical(*d, &canonical);
                if (r < 0)
                        return r;
                for (char **i = b->private_paths; *i; i++)
                        if (path_is_under(*i, canonical))
                                return log_error_errno(EPERM, "%s holds %s; refusing to give it to the agent.", *d, *i);
        }
        return 0;
}

/* Hides what in /etc only its owner or group may read: the shadow files,
 * TLS keys, database credentials, /etc/makima's tokens. When the worker runs
 * as root the agent's uid maps to root outside, so mode bits alone would not
 * keep it out. The rule is the one every local user lives under. The bwrap
 * arguments that do it go to *args; every directory read is watched with
 * inotify_fd (when >= 0), or inotify_fd is closed and set to -EBADF if
 * that fails. */
static int hide_private(char ***args, int *inotify_fd, const char *path, unsigned depth) {
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        int r;

        /* Watched before it is read: a change while we read is not missed. */
        if (*inotify_fd >= 0 && inotify_add_watch(*inotify_fd, path, ETC_WATCH_MASK) < 0) {
                log_debug_errno(errno, "Cannot watch %s, /etc is scanned again for every sandbox: %m", path);
                *inotify_fd = safe_close(*inotify_fd);
        }
        d = opendir(path);
        if (!d)
                return -errno;

        while ((errno = 0, de = readdir(d))) {
                _cleanup_free_ char *child = NULL;
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (asprintf(&child, "%s/%s", path, de->d_name) < 0)
                        return -ENOMEM;

                if (S_ISDIR(st.st_mode)) {
                        if ((st.st_mode & (S_IROTH | S_IXOTH)) != (S_IROTH | S_IXOTH) || streq(child, "/etc/makima"))
                                r = strv_add(args, "--tmpfs", child, "--remount-ro", child, NULL);
                        else if (depth < ETC_DEPTH_MAX)
                                r = hide_private(args, inotify_fd, child, depth + 1);
                        else
                                r = 0;
                } else if (S_ISREG(st.st_mode) && !(st.st_mode & S_IROTH))
                        /* /dev/null on a nodev mount: opening it fails. */
                        r = strv_add(args, "--ro-bind", "/dev/null", child, NULL);
                else
                        r = 0;
                if (r < 0 && r != -EACCES)
                        return r;
        }
        return errno > 0 ? -errno : 0;
}

static int memfd_with(const char *name, const char *text, int *ret) {
        _cleanup_close_ int fd = -EBADF;
        size_t n = strlen(text);

        fd = memfd_create(name, MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (write(fd, text, n) != (ssize_t) n)
                return -EIO;
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;
        *ret = TAKE_FD(fd);
        return 0;
}

/* Adds an fd to hand to bwrap and names it in argv after `option`. */
static int add_fd_arg(Builder *b, int fd, const char *option, const char *dest) {
        char num[12];

        if (b->n_fds >= ELEMENTSOF(b->fds)) {
                (void) close(fd);
                return -E2BIG;
        }
        b->fds[b->n_fds++] = fd;
        (void) snprintf(num, sizeof(num), "%i", fd);
        return strv_add(&b->argv, option, num, dest, NULL);
}

/* Whether anything hide_private() looked at may have changed since: an
 * inotify event on a directory it read (an entry made, removed, renamed or
 * chmod'ed), or a change of the mount table, which inotify does not see. */
static bool etc_cache_valid(void) {
        struct pollfd p[] = {
                { .fd = etc_cache.inotify_fd, .events = POLLIN },
                { .fd = etc_cache.mountinfo_fd, .events = POLLPRI },
        };

        if (!etc_cache.valid || etc_cache.inotify_fd < 0 || etc_cache.mountinfo_fd < 0)
                return false;
        if (poll(p, ELEMENTSOF(p), 0) < 0)
                return false;
        return !(p[0].revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) &&
               !(p[1].revents & (POLLPRI | POLLERR | POLLNVAL));
}

/* The arguments that hide /etc's private files, from the last scan while
 * nothing changed there: a scan stats every file in /etc, a few ms for
 * each start of an agent. Returns a list owned by the cache. */
static int etc_hidden(char ***ret) {
        _cleanup_(strv_freep) char **args = NULL;
        _cleanup_close_ int inotify_fd = -EBADF, mountinfo_fd = -EBADF;
        int r;

        if (etc_cache_valid()) {
                *ret = etc_cache.args;
                return 0;
        }

        /* Opened first: poll() then tells of any mount change after this. */
        mountinfo_fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC | O_NOCTTY);
        inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (mountinfo_fd < 0 || inotify_fd < 0)
                log_debug_errno(errno, "Cannot watch /etc, it is scanned again for every sandbox: %m");
        r = hide_private(&args, &inotify_fd, "/etc", 0);
        if (r < 0)
                return r;

        strv_free(etc_cache.args);
        safe_close(etc_cache.inotify_fd);
        safe_close(etc_cache.mountinfo_fd);
        etc_cache = (EtcCache) {
                .args = TAKE_PTR(args),
                .inotify_fd = TAKE_FD(inotify_fd),
                .mountinfo_fd = TAKE_FD(mountinfo_fd),
                .valid = true,
        };
        *ret = etc_cache.args;
        return 0;
}

/* The seccomp filter as BPF, compiled by libseccomp once per process (it
 * takes about as long as the rest of sandbox_build()); every sandbox gets a
 * sealed memfd of its own with a copy, as the filter never changes. */
static struct {
        void *bpf;
        size_t size;
} seccomp_cache;

static int seccomp_fd(int *ret) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        if (!seccomp_cache.bpf) {
                _cleanup_free_ void *bpf = NULL;
                ssize_t n;

                r = sandbox_seccomp_export_fd(&fd);
                if (r < 0)
                        return r;
                if (fstat(fd, &st) < 0)
                        return -errno;
                if (st.st_size <= 0)
                        return -EBADMSG;
                bpf = malloc((size_t) st.st_size);
                if (!bpf)
                        return -ENOMEM;
                n = pread(fd, bpf, (size_t) st.st_size, 0);
                if (n < 0)
                        return -errno;
                if (n != st.st_size)
                        return -EIO;
                seccomp_cache.bpf = TAKE_PTR(bpf);
                seccomp_cache.size = (size_t) n;
                *ret = TAKE_FD(fd);
                return 0;
        }

        fd = memfd_create("makima-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        if (write(fd, seccomp_cache.bpf, seccomp_cache.size) != (ssize_t) seccomp_cache.size)
                return -EIO;
        /* Sealed, as sandbox_seccomp_export_fd() leaves its own. */
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return -errno;
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;
        *ret = TAKE_FD(fd);
        return 0;
}

static int add_system(Builder *b) {
        char **hidden = NULL;
        int r;

        for (const char *const *dir = sandbox_system_dirs; *dir; dir++) {
                const char *d = *dir;
                struct stat st;

                if (lstat(d, &st) < 0) {
                        if (errno == ENOENT)
                                continue;
                        return log_error_errno(errno, "Failed to stat %s: %m", d);
                }
                if (S_ISLNK(st.st_mode)) {
                        char target[PATH_MAX];
                        ssize_t n;

                        n = readlink(d, target, sizeof(target) - 1);
                        if (n < 0)
                                return log_error_errno(errno, "Failed to read symlink %s: %m", d);
                        target[n] = '\0';
                        r = strv_add(&b->argv, "--symlink", target, d, NULL);
                } else if (S_ISDIR(st.st_mode))
                        r = strv_add(&b->argv, "--ro-bind", d, d, NULL);
                else
                        r = 0;
                if (r < 0)
                        return r;
        }

        r = etc_hidden(&hidden);
        if (r < 0)
                return log_error_errno(r, "Failed to list /etc: %m");
        for (char **i = hidden; i && *i; i++) {
                r = strv_extend(&b->argv, *i);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The agent gets a passwd entry of its own: ssh and git refuse to work for a
 * uid without one, and the host's list of users is none of its business. */
static int add_user_database(Builder *b, const char *shell) {
        _cleanup_free_ char *passwd = NULL, *group = NULL;
        int fd, r;

        if (asprintf(&passwd,
                     "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                     SANDBOX_USER ":x:%u:%u:makima agent:%s:%s\n"
                     "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                     SANDBOX_UID, SANDBOX_GID, b->p->home, shell) < 0)
                return -ENOMEM;
        if (asprintf(&group, "root:x:0:\n" SANDBOX_USER ":x:%u:\nnogroup:x:65534:\n", SANDBOX_GID) < 0)
                return -ENOMEM;

        r = memfd_with("makima-passwd", passwd, &fd);
        if (r < 0)
                return r;
        r = add_fd_arg(b, fd, "--ro-bind-data", "/etc/passwd");
        if (r < 0)
                return r;
        r = memfd_with("makima-group", group, &fd);
        if (r < 0)
                return r;
        return add_fd_arg(b, fd, "--ro-bind-data", "/etc/group");
}

static int add_extra_paths(Builder *b, char **paths, const char *what, bool writable) {
        int r;

        for (char **i = paths; i && *i; i++) {
                r = check_exposure(b, *i, what);
                if (r < 0)
                        return r;
                if (access(*i, F_OK) < 0) {
                        log_warning_errno(errno, "%s %s is not there, skipping: %m", what, *i);
                        continue;
                }
                r = strv_add(&b->argv, writable ? "--bind" : "--ro-bind", *i, *i, NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool exists(const char *dir, const char *name) {
        _cleanup_free_ char *t = NULL;

        if (asprintf(&t, "%s/%s", dir, name) < 0)
                return false;
        return access(t, F_OK) >= 0;
}

/* Adds "OPTION DIR/NAME DIR/NAME" for a bind, "OPTION DIR/NAME" otherwise. */
static int add_sub(Builder *b, const char *option, const char *dir, const char *name) {
        _cleanup_free_ char *t = NULL;

        if (asprintf(&t, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        return strv_add(&b->argv, option, t, strstr(option, "bind") ? t : NULL, NULL);
}

/* The git metadata of a linked worktree (git worktree add). A commit writes
 * the worktree's own directory (HEAD, index) and the repository's objects,
 * refs and logs; everything else of the repository stays read-only, above
 * all hooks/ and config, which run code when the worker's own git next
 * touches the repository. Files that tell git where the repository is
 * (<worktree>/.git, commondir, gitdir) are read-only too, or the agent
 * could point the worker's git at a repository of its own making. */
static int add_git(Builder *b) {
        const SandboxParams *p = b->p;
        _cleanup_(sandbox_git_done) SandboxGit g = {};
        bool hide_others;
        int r;

        r = sandbox_git_find(p->worktree, p->git_dir, &g);
        if (r == -ENOENT && !p->git_dir)
                return 0;
        if (r == -EBADMSG)
                return log_error_errno(r, "%s is not a linked git worktree (see its .git file).", p->worktree);
        if (r < 0)
                return log_error_errno(r, "Failed to find the git directory of %s: %m", p->worktree);
        if (g.dotgit_is_dir) {
                log_notice("%s has a .git directory of its own, not a linked worktree's: it is read-only in the sandbox.",
                           p->worktree);
                return strv_add(&b->argv, "--ro-bind", g.dotgit, g.dotgit, NULL);
        }

        r = check_exposure(b, g.common, "The repository");
        if (r >= 0)
                r = check_exposure(b, g.gitdir, "The worktree's git directory");
        if (r < 0)
                return r;

        r = strv_add(&b->argv, "--ro-bind", g.common, g.common, NULL);
        if (r < 0)
                return r;
        /* Other tasks' worktrees are registered here too. */
        hide_others = exists(g.common, "worktrees");
        if (hide_others) {
                r = add_sub(b, "--tmpfs", g.common, "worktrees");
                if (r < 0)
                        return r;
        }
        FOREACH_STRING(sub, "objects", "refs", "logs")
                if (exists(g.common, sub)) {
                        r = add_sub(b, "--bind", g.common, sub);
                        if (r < 0)
                                return r;
                }
        r = strv_add(&b->argv, "--bind", g.gitdir, g.gitdir, NULL);
        if (r < 0)
                return r;
        FOREACH_STRING(f, "commondir", "gitdir")
                if (exists(g.gitdir, f)) {
                        r = add_sub(b, "--ro-bind", g.gitdir, f);
                        if (r < 0)
                                return r;
                }
        r = strv_add(&b->argv, "--ro-bind", g.dotgit, g.dotgit, NULL);
        if (r < 0)
                return r;
        if (hide_others)
                return add_sub(b, "--remount-ro", g.common, "worktrees");
        return 0;
}

/* The agent's program, and what it needs to run. */
static int add_program(Builder *b) {
        int r;

        r = sandbox_program_find(b->p->command[0], &b->program);
        if (r < 0)
                return log_error_errno(r, "Failed to find the agent's program %s: %m", b->p->command[0]);
        return add_extra_paths(b, b->program.read_only, "The agent's program", false);
}

/* Sets NAME=VALUE in an environment block, replacing an earlier NAME=. */
static int env_put(char ***env, const char *assignment) {
        size_t n = strcspn(assignment, "=");

        for (char **i = *env; i && *i; i++)
                if (strneq(*i, assignment, n) && (*i)[n] == '=')
                        return free_and_strdup(i, assignment);
        return strv_extend(env, assignment);
}

static int env_putf(char ***env, const char *name, const char *value) {
        _cleanup_free_ char *t = NULL;

        if (asprintf(&t, "%s=%s", name, value) < 0)
                return -ENOMEM;
        return env_put(env, t);
}

/* A small, fixed environment: nothing of the worker's leaks in by accident. */
static int build_env(Builder *b, const char *shell) {
        _cleanup_free_ char *path = NULL;
        size_t len = strlen(DEFAULT_PATH) + 1;
        int r;

        for (char **i = b->program.path_dirs; i && *i; i++)
                len += strlen(*i) + 1;
        path = malloc(len);
        if (!path)
                return -ENOMEM;
        path[0] = '\0';
        for (char **i = b->program.path_dirs; i && *i; i++) {
                strcat(path, *i);
                strcat(path, ":");
        }
        strcat(path, DEFAULT_PATH);

        const char *const base[][2] = {
                { "PATH", path },
                { "HOME", b->p->home },
                { "USER", SANDBOX_USER },
                { "LOGNAME", SANDBOX_USER },
                { "SHELL", shell },
                { "LANG", "C.UTF-8" },
                { "TERM", "dumb" },
        };
        for (size_t i = 0; i < ELEMENTSOF(base); i++) {
                r = env_putf(&b->env, base[i][0], base[i][1]);
                if (r < 0)
                        return r;
        }
        for (char **i = b->p->config->agent_environment; i && *i; i++) {
                r = env_put(&b->env, *i);
                if (r < 0)
                        return r;
        }
        for (char **i = b->p->environment; i && *i; i++) {
                r = env_put(&b->env, *i);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int add_command(Builder *b, const char *program) {
        int r;

        r = strv_extend(&b->argv, program);
        for (char **i = b->p->command + 1; r >= 0 && *i; i++)
                r = strv_extend(&b->argv, *i);
        return r;
}

static void builder_done(Builder *b) {
        strv_free(b->argv);
        strv_free(b->env);
        sandbox_program_done(&b->program);
        strv_free(b->private_paths);
        strv_free(b->shared_dirs);
        for (size_t i = 0; i < b->n_fds; i++)
                (void) close(b->fds[i]);
}

static int builder_finish(Builder *b, const char *cwd, SandboxCommand *ret) {
        _cleanup_free_ int *fds = NULL;
        _cleanup_free_ char *c = NULL;

        if (cwd) {
                c = strdup(cwd);
                if (!c)
                        return -ENOMEM;
        }
        if (b->n_fds > 0) {
                fds = calloc(b->n_fds, sizeof(int));
                if (!fds)
                        return -ENOMEM;
                memcpy(fds, b->fds, b->n_fds * sizeof(int));
        }
        *ret = (SandboxCommand) {
                .argv = TAKE_PTR(b->argv),
                .envp = TAKE_PTR(b->env),
                .cwd = TAKE_PTR(c),
                .fds = TAKE_PTR(fds),
                .n_fds = b->n_fds,
                .sandboxed = !cwd,
        };
        b->n_fds = 0;
        return 0;
}

static int check_params(const SandboxParams *p) {
        const char *dirs[] = { p->worktree, p->home };

        if (!p->config || !p->config->state_dir || !p->config->worker_worktree_dir)
                return log_error_errno(EINVAL, "The sandbox needs a finalized configuration.");
        if (isempty(p->task_id))
                return log_error_errno(EINVAL, "The sandbox needs a task id.");
        if (!p->command || isempty(p->command[0]))
                return log_error_errno(EINVAL, "The sandbox needs a command to run.");
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                struct stat st;

                if (!dirs[i] || dirs[i][0] != '/')
                        return log_error_errno(EINVAL, "The sandbox needs absolute worktree and home paths.");
                if (stat(dirs[i], &st) < 0)
                        return log_error_errno(errno, "Failed to stat %s: %m", dirs[i]);
                if (!S_ISDIR(st.st_mode))
                        return log_error_errno(ENOTDIR, "%s is not a directory.", dirs[i]);
        }
        return 0;
}

static int build_unsandboxed(Builder *b, SandboxCommand *ret) {
        _cleanup_free_ char *program = NULL;
        int r;

        log_warning("[Sandbox] Enabled=no: task %s runs unsandboxed, with all the rights of the worker.",
                    b->p->task_id);
        r = sandbox_find_executable(b->p->command[0], NULL, &program);
        if (r < 0)
                return log_error_errno(r, "Failed to find the agent's program '%s': %m", b->p->command[0]);
        r = add_command(b, program);
        if (r < 0)
                return r;
        r = build_env(b, "/bin/sh");
        if (r < 0)
                return r;
        return builder_finish(b, b->p->worktree, ret);
}

int sandbox_build(const SandboxParams *p, SandboxCommand *ret) {
        _cleanup_(builder_done) Builder b = { .p = p };
        _cleanup_free_ char *bwrap = NULL, *resolv = NULL;
        const Config *c = p->config;
        const char *shell = access("/bin/bash", X_OK) >= 0 ? "/bin/bash" : "/bin/sh";
        char hostname[sizeof("makima-") + 8], uid[12], gid[12];
        size_t k;
        int r;

        r = check_params(p);
        if (r < 0)
                return r;
        r = add_protected(&b);
        if (r == -EPERM)
                return r;
        if (r < 0)
                return log_error_errno(r, "Failed to resolve the state directory: %m");

        if (!c->sandbox_enabled)
                return build_unsandboxed(&b, ret);

        r = sandbox_find_executable(p->bwrap ?: "bwrap", NULL, &bwrap);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                log_error("%s", SANDBOX_BWRAP_MISSING);
                return -ENOPKG;
        }

        k = strlen(strcpy(hostname, "makima-"));
        for (const char *s = p->task_id; *s && k < sizeof(hostname) - 1; s++)
                if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9'))
                        hostname[k++] = *s;
        hostname[k] = '\0';
        (void) snprintf(uid, sizeof(uid), "%u", SANDBOX_UID);
        (void) snprintf(gid, sizeof(gid), "%u", SANDBOX_GID);

        r = strv_add(&b.argv, bwrap,
                     /* The agent dies with the worker, and cannot reach its terminal. */
                     "--die-with-parent", "--new-session",
                     "--unshare-user", "--uid", uid, "--gid", gid,
                     "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                     "--hostname", hostname,
                     "--cap-drop", "ALL",
                     NULL);
        if (r >= 0 && !c->sandbox_network)
                r = strv_extend(&b.argv, "--unshare-net");
        if (r < 0)
                return log_oom();

        r = add_system(&b);
        if (r < 0)
                return r;
        r = add_user_database(&b, shell);
        if (r < 0)
                return log_error_errno(r, "Failed to write the sandbox's passwd and group: %m");
        r = strv_add(&b.argv, "--dev", "/dev", "--proc", "/proc",
                     "--tmpfs", "/tmp", "--tmpfs", "/var/tmp", "--tmpfs", "/run", NULL);
        if (r < 0)
                return log_oom();
        /* resolv.conf often points into /run (systemd-resolved's stub). */
        resolv = realpath("/etc/resolv.conf", NULL);
        if (c->sandbox_network && resolv && !path_in_system(resolv)) {
                r = strv_add(&b.argv, "--ro-bind", resolv, resolv, NULL);
                if (r < 0)
                        return log_oom();
        }

        /* Writable extras first: a read-only bind inside one still wins. */
        r = add_extra_paths(&b, c->sandbox_read_write_paths, "ReadWritePaths=", true);
        if (r < 0)
                return r;
        r = add_extra_paths(&b, c->sandbox_read_only_paths, "ReadOnlyPaths=", false);
        if (r < 0)
                return r;
        r = add_extra_paths(&b, p->read_only_paths, "Read-only path", false);
        if (r < 0)
                return r;
        r = add_program(&b);
        if (r < 0)
                return r;

        r = strv_add(&b.argv, "--bind", p->worktree, p->worktree, NULL);
        if (r < 0)
                return log_oom();
        r = add_git(&b);
        if (r < 0)
                return r;
        /* bwrap's root is a tmpfs the agent could write: close it last. */
        r = strv_add(&b.argv, "--bind", p->home, p->home, "--remount-ro", "/", "--chdir", p->worktree, NULL);
        if (r < 0)
                return log_oom();

        if (!p->no_seccomp) {
                int fd = -EBADF;

                r = seccomp_fd(&fd);
                if (r < 0)
                        return log_error_errno(r, "Failed to build the seccomp filter: %m");
                r = add_fd_arg(&b, fd, "--seccomp", NULL);
                if (r < 0)
                        return log_oom();
        } else
                log_warning("The seccomp filter is off for task %s (debugging only).", p->task_id);

        r = strv_extend(&b.argv, "--");
        if (r >= 0)
                r = add_command(&b, b.program.path);
        if (r >= 0)
                r = build_env(&b, shell);
        if (r >= 0)
                r = builder_finish(&b, NULL, ret);
        if (r < 0)
                return log_oom();
        return 0;
}

void sandbox_command_done(SandboxCommand *c) {
        if (!c)
                return;
        strv_free(c->argv);
        strv_free(c->envp);
        free(c->cwd);
        for (size_t i = 0; i < c->n_fds; i++)
                (void) close(c->fds[i]);
        free(c->fds);
        *c = (SandboxCommand) {};
}

int sandbox_command_exec(const SandboxCommand *c) {
        /* Only here, after fork(): in the worker the fds stay O_CLOEXEC, so no
         * other child inherits another task's sandbox files. */
        for (size_t i = 0; i < c->n_fds; i++) {
                int flags = fcntl(c->fds[i], F_GETFD);

                if (flags < 0 || fcntl(c->fds[i], F_SETFD, flags & ~FD_CLOEXEC) < 0)
                        return -errno;
        }
        if (c->cwd && chdir(c->cwd) < 0)
                return -errno;
        execve(c->argv[0], c->argv, c->envp);
        return -errno;
}
