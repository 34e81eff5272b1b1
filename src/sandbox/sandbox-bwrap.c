/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The bwrap command line, piece by piece: namespaces and the user they run
 * as, the read-only system with /etc's private files hidden, the sandbox's
 * own user database, /dev, /proc and the tmpfses, the seccomp filter. See
 * sandbox-bwrap.h. */

#include <fcntl.h>
#include <linux/close_range.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "sandbox-bwrap.h"
#include "sandbox-paths.h"
#include "sandbox-seccomp.h"

/* How deep /etc is searched for what to hide. */
#define ETC_DEPTH_MAX 8
/* What makes a directory's scan out of date: entries made, removed, renamed
 * or changed in mode, and the directory itself going. */
#define ETC_WATCH_MASK                                                                                  \
        (IN_ATTRIB | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | \
         IN_ONLYDIR)

/* What of /proc tells of the host, not of the sandbox: its keyrings (the
 * caller's, with their descriptions), the scheduler's and timers' view of
 * every process, the kernel's memory. Covered where they exist. */
static const char *const proc_hidden[] = {
        "/proc/keys", "/proc/key-users", "/proc/timer_list", "/proc/sched_debug", "/proc/kcore",
        "/proc/kallsyms", "/proc/latency_stats",
};

/* The last scan of /etc, good until its watches say otherwise; one per
 * process (a worker builds every one of its sandboxes in one thread). */
typedef struct EtcCache {
        char **args;
        int inotify_fd;
        int mountinfo_fd;
        bool valid;
} EtcCache;

static EtcCache etc_cache = { .inotify_fd = -EBADF, .mountinfo_fd = -EBADF };

/* The seccomp filter as BPF, compiled by libseccomp once per process (it
 * takes about as long as the rest of a sandbox's command line); every
 * sandbox gets a sealed memfd of its own with a copy. */
static struct {
        void *bpf;
        size_t size;
} seccomp_cache;

static int strv_addv(char ***l, va_list ap) {
        const char *s;
        int r;

        while ((s = va_arg(ap, const char *))) {
                r = strv_extend(l, s);
                if (r < 0)
                        return r;
        }
        return 0;
}

int bwrap_args(Bwrap *b, ...) {
        va_list ap;
        int r;

        va_start(ap, b);
        r = strv_addv(&b->argv, ap);
        va_end(ap);
        return r;
}

static int strv_add(char ***l, ...) {
        va_list ap;
        int r;

        va_start(ap, l);
        r = strv_addv(l, ap);
        va_end(ap);
        return r;
}

static int memfd_with(const char *name, const void *data, size_t n, bool seal, int *ret) {
        _cleanup_close_ int fd = -EBADF;

        fd = memfd_create(name, MFD_CLOEXEC | (seal ? MFD_ALLOW_SEALING : 0));
        if (fd < 0)
                return -errno;
        if (write(fd, data, n) != (ssize_t) n)
                return -EIO;
        /* Sealed, so that nothing holding the fd can change it between now
         * and the moment bwrap reads it. */
        if (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return -errno;
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;
        *ret = TAKE_FD(fd);
        return 0;
}

int bwrap_fd_arg(Bwrap *b, int fd, const char *option, const char *dest) {
        char num[12];

        if (b->n_fds >= BWRAP_FDS_MAX) {
                (void) close(fd);
                return -E2BIG;
        }
        if (b->n_fds % 16 == 0) {
                int *fds = reallocarray(b->fds, b->n_fds + 16, sizeof(int));

                if (!fds) {
                        (void) close(fd);
                        return -ENOMEM;
                }
                b->fds = fds;
        }
        b->fds[b->n_fds++] = fd;
        (void) snprintf(num, sizeof(num), "%i", fd);
        return strv_add(&b->argv, option, num, dest, NULL);
}

int bwrap_data(Bwrap *b, const char *option, const char *text, const char *dest) {
        int fd, r;

        r = memfd_with("makima-sandbox-data", text, strlen(text), false, &fd);
        if (r < 0)
                return r;
        return bwrap_fd_arg(b, fd, option, dest);
}

int bwrap_bind_fd(Bwrap *b, int fd, const char *dest, bool read_only) {
        return bwrap_fd_arg(b, fd, read_only ? "--ro-bind-fd" : "--bind-fd", dest);
}

int bwrap_bind(Bwrap *b, const char *path, bool read_only) {
        int fd;

        fd = open(path, O_PATH | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return bwrap_bind_fd(b, fd, path, read_only);
}

int bwrap_find(const char *bwrap, char **ret) {
        int r;

        r = sandbox_find_executable(bwrap ?: "bwrap", NULL, ret);
        return r == -ENOMEM ? r : r < 0 ? -ENOPKG : 0;
}

int bwrap_init(Bwrap *b, const char *bwrap, const SandboxIdentity *identity, const char *hostname, bool network) {
        _cleanup_free_ char *path = NULL;
        char uid[12], gid[12];
        int r;

        *b = (Bwrap) {};
        r = bwrap_find(bwrap, &path);
        if (r < 0)
                return r;
        b->identity = (SandboxIdentity) {
                .separate = identity->separate,
                .owns_userns = identity->owns_userns,
                .uid = identity->uid,
                .gid = identity->gid,
        };
        (void) snprintf(uid, sizeof(uid), "%u", SANDBOX_UID);
        (void) snprintf(gid, sizeof(gid), "%u", SANDBOX_GID);

        r = strv_add(&b->argv, path,
                     /* The sandbox dies with its parent, and cannot reach its terminal. */
                     "--die-with-parent", "--new-session",
                     "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                     "--hostname", hostname,
                     /* bwrap run by root would keep root's capabilities otherwise. */
                     "--cap-drop", "ALL",
                     NULL);
        if (r >= 0 && !network)
                r = strv_extend(&b->argv, "--unshare-net");
        if (r < 0)
                return r;

        if (!identity->separate)
                return strv_add(&b->argv, "--unshare-user", "--uid", uid, "--gid", gid, NULL);

        /* Our own namespace, where the agent is a user of its own: bwrap joins
         * it and becomes the agent (sandbox-identity.h). */
        r = sandbox_userns_new(identity);
        if (r < 0)
                return r;
        r = bwrap_fd_arg(b, r, "--userns", NULL);
        if (r < 0)
                return r;
        return strv_add(&b->argv, "--uid", uid, "--gid", gid, NULL);
}

void bwrap_done(Bwrap *b) {
        strv_free(b->argv);
        strv_free(b->env);
        strv_free(b->hidden_dirs);
        for (size_t i = 0; i < b->n_fds; i++)
                (void) close(b->fds[i]);
        free(b->fds);
        *b = (Bwrap) {};
}

/* Hides what in /etc only its owner or group may read: the shadow files,
 * TLS keys, database credentials, /etc/makima's tokens. The rule is the one
 * every local user lives under; the agent, whatever its uid, gets no more.
 * The bwrap arguments that do it go to *args; every directory read is
 * watched with inotify_fd (when >= 0), or inotify_fd is closed and set to
 * -EBADF if that fails. */
static int hide_private(char ***args, int *inotify_fd, const char *path, unsigned depth) {
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        int r;

        /* Watched before it is read: a change while we read is not missed. */
        if (*inotify_fd >= 0 && inotify_add_watch(*inotify_fd, path, ETC_WATCH_MASK) < 0)
                *inotify_fd = safe_close(*inotify_fd);
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

int bwrap_system(Bwrap *b, char *const *private) {
        char **hidden = NULL;
        int r;

        for (const char *const *dir = sandbox_system_dirs; *dir; dir++) {
                const char *d = *dir;
                struct stat st;

                if (lstat(d, &st) < 0) {
                        if (errno == ENOENT)
                                continue;
                        return -errno;
                }
                if (S_ISLNK(st.st_mode)) {
                        char target[PATH_MAX];
                        ssize_t n;

                        n = readlink(d, target, sizeof(target) - 1);
                        if (n < 0)
                                return -errno;
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
                return r;
        for (char **i = hidden; i && *i; i++) {
                r = strv_extend(&b->argv, *i);
                if (r < 0)
                        return r;
        }

        /* Wherever the build put them (a prefix under /opt or /usr/local), the
         * state directory, the store and makima's configuration stay out of
         * sight. Outside the system they are not bound at all. */
        for (char *const *p = private; p && *p; p++) {
                struct stat st;

                if (!path_in_system(*p) || stat(*p, &st) < 0)
                        continue;
                if (S_ISDIR(st.st_mode)) {
                        r = strv_add(&b->argv, "--tmpfs", *p, NULL);
                        if (r >= 0)
                                r = strv_extend(&b->hidden_dirs, *p);
                } else
                        r = strv_add(&b->argv, "--ro-bind", "/dev/null", *p, NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The agent gets a passwd entry of its own: ssh and git refuse to work for a
 * uid without one, and the host's list of users is none of its business. */
int bwrap_user_database(Bwrap *b, const char *home, const char *shell) {
        _cleanup_free_ char *passwd = NULL, *group = NULL;
        int r;

        if (asprintf(&passwd,
                     "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                     SANDBOX_USER ":x:%u:%u:makima agent:%s:%s\n"
                     "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                     SANDBOX_UID, SANDBOX_GID, home, shell) < 0)
                return -ENOMEM;
        if (asprintf(&group, "root:x:0:\n" SANDBOX_USER ":x:%u:\nnogroup:x:65534:\n", SANDBOX_GID) < 0)
                return -ENOMEM;

        r = bwrap_data(b, "--ro-bind-data", passwd, "/etc/passwd");
        if (r < 0)
                return r;
        return bwrap_data(b, "--ro-bind-data", group, "/etc/group");
}

int bwrap_api_filesystems(Bwrap *b) {
        int r;

        r = strv_add(&b->argv, "--dev", "/dev", "--proc", "/proc",
                     /* Sysctls are the kernel's, whatever the uid in here maps to. */
                     "--ro-bind", "/proc/sys", "/proc/sys",
                     NULL);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(proc_hidden); i++)
                if (access(proc_hidden[i], F_OK) >= 0) {
                        r = strv_add(&b->argv, "--ro-bind", "/dev/null", proc_hidden[i], NULL);
                        if (r < 0)
                                return r;
                }
        return strv_add(&b->argv, "--tmpfs", "/tmp", "--tmpfs", "/var/tmp", "--tmpfs", "/run", NULL);
}

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
        return memfd_with("makima-seccomp", seccomp_cache.bpf, seccomp_cache.size, true, ret);
}

int bwrap_seccomp(Bwrap *b) {
        int fd, r;

        r = seccomp_fd(&fd);
        if (r < 0)
                return r;
        return bwrap_fd_arg(b, fd, "--seccomp", NULL);
}

int bwrap_setenv(Bwrap *b, const char *assignment) {
        size_t n = strcspn(assignment, "=");

        for (char **i = b->env; i && *i; i++)
                if (strneq(*i, assignment, n) && (*i)[n] == '=')
                        return free_and_strdup(i, assignment);
        return strv_extend(&b->env, assignment);
}

int bwrap_setenvf(Bwrap *b, const char *name, const char *value) {
        _cleanup_free_ char *t = NULL;

        if (asprintf(&t, "%s=%s", name, value) < 0)
                return -ENOMEM;
        return bwrap_setenv(b, t);
}

int bwrap_finish(Bwrap *b, const char *cwd, char *const *command, SandboxCommand *ret) {
        int r;

        for (char **d = b->hidden_dirs; d && *d; d++) {
                r = strv_add(&b->argv, "--remount-ro", *d, NULL);
                if (r < 0)
                        return r;
        }
        /* bwrap's root is a tmpfs the sandbox could write: close it last. */
        r = strv_add(&b->argv, "--remount-ro", "/", NULL);
        if (r >= 0 && cwd)
                r = strv_add(&b->argv, "--chdir", cwd, NULL);
        if (r >= 0)
                r = strv_extend(&b->argv, "--");
        for (char *const *i = command; r >= 0 && i && *i; i++)
                r = strv_extend(&b->argv, *i);
        if (r < 0)
                return r;

        *ret = (SandboxCommand) {
                .argv = TAKE_PTR(b->argv),
                .envp = TAKE_PTR(b->env),
                .fds = TAKE_PTR(b->fds),
                .n_fds = b->n_fds,
                .sandboxed = true,
                .identity = b->identity,
                .parent = getpid(),
        };
        b->n_fds = 0;
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
        int r;

        /* Nothing the caller inherited from whoever started it (an fd on a
         * file of root's, say) reaches the sandbox: every fd above stdio is
         * closed at exec, but for the sandbox's own. */
        if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
                return -errno;
        /* Only here, after fork(): in the caller the fds stay O_CLOEXEC, so no
         * other child inherits another sandbox's files. */
        for (size_t i = 0; i < c->n_fds; i++) {
                int flags = fcntl(c->fds[i], F_GETFD);

                if (flags < 0 || fcntl(c->fds[i], F_SETFD, flags & ~FD_CLOEXEC) < 0)
                        return -errno;
        }
        if (c->sandboxed) {
                r = sandbox_identity_prepare_exec(&c->identity);
                if (r < 0)
                        return r;
                /* bwrap's own --die-with-parent is armed only once it is well
                 * into its set-up; this covers the moments before. */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
                        return -errno;
                if (c->parent > 0 && getppid() != c->parent)
                        return -ESRCH;
        }
        if (c->cwd && chdir(c->cwd) < 0)
                return -errno;
        execve(c->argv[0], c->argv, c->envp);
        return -errno;
}
