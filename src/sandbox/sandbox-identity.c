/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Who sandboxed processes run as, and the user namespace that makes them
 * that user. See sandbox-identity.h. */

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "log.h"
#include "sandbox-identity.h"
#include "user-util.h"

static int capget_effective(uint64_t *ret) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2] = {};

        if (syscall(SYS_capget, &h, d) < 0)
                return -errno;
        *ret = (uint64_t) d[0].effective | (uint64_t) d[1].effective << 32;
        return 0;
}

static bool have_capability(int cap) {
        uint64_t eff;

        return capget_effective(&eff) >= 0 && (eff & (UINT64_C(1) << cap));
}

bool sandbox_can_switch_users(void) {
        uint64_t eff;

        if (geteuid() == 0)
                return true;
        if (capget_effective(&eff) < 0)
                return false;
        return (eff & (UINT64_C(1) << CAP_SETUID)) && (eff & (UINT64_C(1) << CAP_SETGID));
}

int sandbox_identity_self(SandboxIdentity *ret) {
        _cleanup_free_ char *name = NULL;
        int r;

        r = user_name(geteuid(), &name);
        if (r < 0)
                return r;
        *ret = (SandboxIdentity) {
                .uid = geteuid(),
                .gid = getegid(),
                .user = TAKE_PTR(name),
        };
        return 0;
}

int sandbox_identity_init(const Config *c, SandboxIdentity *ret) {
        _cleanup_(sandbox_identity_done) SandboxIdentity self = {};
        const char *user = c ? c->sandbox_user : NULL;
        uid_t uid;
        gid_t gid;
        int r;

        r = sandbox_identity_self(&self);
        if (r < 0)
                return log_error_errno(r, "Failed to look up this process's own user: %m");

        if (isempty(user)) {
                if (self.uid == 0)
                        return log_error_errno(EPERM, "[Sandbox] User= names nobody and this runs as root: "
                                               "refusing to run agents as root.");
                goto self;
        }

        r = user_lookup(user, &uid, &gid);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                if (self.uid == 0)
                        return log_error_errno(EPERM,
                                               "The user %s ([Sandbox] User=) does not exist and this runs as "
                                               "root: refusing to run agents as root. Create it (systemd-sysusers, "
                                               "or `makima up` does it) or name another user.", user);
                log_debug("The user %s ([Sandbox] User=) does not exist: agents run as %s, the user this runs as.",
                          user, self.user);
                goto self;
        }
        if (uid == 0)
                return log_error_errno(EPERM, "[Sandbox] User=%s is root: refusing to run agents as root.", user);
        if (uid == self.uid)
                goto self;
        if (!sandbox_can_switch_users()) {
                if (self.uid == 0)      /* cannot happen: root can */
                        return log_error_errno(EPERM, "Cannot switch to %s: refusing to run agents as root.", user);
                log_debug("Agents run as %s, the user this runs as: switching to %s ([Sandbox] User=) needs "
                          "root or CAP_SETUID and CAP_SETGID.", self.user, user);
                goto self;
        }

        *ret = (SandboxIdentity) {
                .separate = true,
                .owns_userns = geteuid() == 0 || have_capability(CAP_SYS_ADMIN),
                .uid = uid,
                .gid = gid,
                .user = strdup(user),
        };
        if (!ret->user)
                return log_oom();
        return 0;

self:
        *ret = self;
        self = (SandboxIdentity) {};
        return 0;
}

void sandbox_identity_done(SandboxIdentity *i) {
        if (!i)
                return;
        free(i->user);
        *i = (SandboxIdentity) {};
}

static int write_file_at(int dir_fd, const char *name, const char *text) {
        _cleanup_close_ int fd = -EBADF;
        size_t n = strlen(text);

        fd = openat(dir_fd, name, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (write(fd, text, n) != (ssize_t) n)
                return errno > 0 ? -errno : -EIO;
        return 0;
}

/* "INSIDE HOST 1" lines for the agent and the caller (one, if they are one id). */
static int id_map(unsigned agent_inside, unsigned agent, unsigned caller_inside, unsigned caller, char **ret) {
        if (agent == caller)
                return asprintf(ret, "%u %u 1\n", agent_inside, agent) < 0 ? -ENOMEM : 0;
        return asprintf(ret, "%u %u 1\n%u %u 1\n", agent_inside, agent, caller_inside, caller) < 0 ? -ENOMEM : 0;
}

int sandbox_userns_new(const SandboxIdentity *i) {
        _cleanup_free_ char *uid_map = NULL, *gid_map = NULL;
        _cleanup_close_ int proc_fd = -EBADF, ns_fd = -EBADF;
        int ready[2] = { -EBADF, -EBADF }, hold[2] = { -EBADF, -EBADF };
        char path[64], c;
        pid_t pid;
        int r;

        if (!i || !i->separate)
                return -EINVAL;
        /* The caller is mapped too (as SANDBOX_CALLER_UID, not as the
         * namespace's root): bwrap resolves every path it binds (even one
         * handed over as an fd) as the user it runs as, and reaches the
         * caller's directories (root's, the state directory) only through
         * the caller's mapping. No process of the agent's but bwrap's own,
         * before it drops its capabilities, is ever in this namespace
         * outside the sandbox. */
        r = id_map(SANDBOX_UID, i->uid, SANDBOX_CALLER_UID, geteuid(), &uid_map);
        if (r >= 0)
                r = id_map(SANDBOX_GID, i->gid, SANDBOX_CALLER_GID, getegid(), &gid_map);
        if (r < 0)
                return r;
        if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(hold, O_CLOEXEC) < 0) {
                r = -errno;
                goto finish;
        }

        /* The child only makes the namespace and waits while we, outside it
         * and with our capabilities, write its maps and take hold of it. */
        pid = fork();
        if (pid < 0) {
                r = -errno;
                goto finish;
        }
        if (pid == 0) {
                (void) close(ready[0]);
                (void) close(hold[1]);
                /* Where it can be, the namespace is the agent's: bwrap, run as
                 * the agent, may then join it, and every process of the
                 * sandbox is one user, so that each may signal the next
                 * (bwrap's death with its parent is such a signal). */
                if (i->owns_userns && sandbox_identity_become(i) < 0)
                        _exit(EXIT_FAILURE);
                if (unshare(CLONE_NEWUSER) < 0)
                        _exit(EXIT_FAILURE);
                if (write(ready[1], "x", 1) != 1)
                        _exit(EXIT_FAILURE);
                (void) read(hold[0], &c, 1);
                _exit(EXIT_SUCCESS);
        }
        ready[1] = safe_close(ready[1]);
        hold[0] = safe_close(hold[0]);

        if (read(ready[0], &c, 1) != 1) {
                r = -EPROTO;
                goto reap;
        }
        (void) snprintf(path, sizeof path, "/proc/%i", (int) pid);
        proc_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (proc_fd < 0) {
                r = -errno;
                goto reap;
        }
        /* setgroups() stays impossible in there: nobody inside needs it. */
        r = write_file_at(proc_fd, "uid_map", uid_map);
        if (r >= 0)
                r = write_file_at(proc_fd, "setgroups", "deny");
        if (r >= 0)
                r = write_file_at(proc_fd, "gid_map", gid_map);
        if (r >= 0) {
                ns_fd = openat(proc_fd, "ns/user", O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (ns_fd < 0)
                        r = -errno;
        }

reap:
        hold[1] = safe_close(hold[1]);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
finish:
        safe_close(ready[0]);
        safe_close(ready[1]);
        safe_close(hold[0]);
        safe_close(hold[1]);
        if (r < 0)
                return r;
        return TAKE_FD(ns_fd);
}

static int drop_capabilities(void) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2] = {};

        (void) prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        if (syscall(SYS_capset, &h, d) < 0)
                return -errno;
        return 0;
}

int sandbox_identity_prepare_exec(const SandboxIdentity *i) {
        /* bwrap runs as the agent, unprivileged: in the namespace the agent
         * owns it gets what it needs to build the sandbox, and nothing of
         * the caller's (its groups, its capabilities) comes along. */
        if (i->separate && i->owns_userns)
                return sandbox_identity_become(i);
        /* bwrap becomes the agent inside the caller's namespace: the
         * caller's groups stay out. */
        if (i->separate) {
                if (setgroups(0, NULL) < 0)
                        return -errno;
                (void) umask(SANDBOX_SEPARATE_UMASK);
        }
        /* As the caller: root keeps what bwrap expects of root; anybody else
         * with capabilities (the unit's CAP_SETUID) would make bwrap refuse
         * to run. */
        if (getuid() != 0)
                return drop_capabilities();
        return 0;
}

int sandbox_identity_become(const SandboxIdentity *i) {
        if (!i->separate)
                return 0;
        /* The caller's groups (makima: the API's administrators) are not the agent's. */
        if (setgroups(0, NULL) < 0)
                return -errno;
        if (setresgid(i->gid, i->gid, i->gid) < 0)
                return -errno;
        if (setresuid(i->uid, i->uid, i->uid) < 0)
                return -errno;
        (void) umask(SANDBOX_SEPARATE_UMASK);
        /* Leaving root drops them; leaving a user with ambient ones (the
         * unit's CAP_SETUID) may not. bwrap refuses to run with any. */
        (void) drop_capabilities();
        return geteuid() == i->uid ? 0 : -EPERM;
}
