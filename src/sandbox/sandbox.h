/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sandbox every agent runs in: builds the bwrap command line, its
 * environment and the fds it reads (seccomp BPF, passwd, group, the user
 * namespace) from the configuration and one task's paths, and execs it in a
 * forked child.
 *
 * Use, one start of an agent at a time:
 *
 *         r = sandbox_build(&params, &cmd);       (logs why it fails)
 *         if (r == -ENOPKG) → fail the task with SANDBOX_BWRAP_MISSING
 *         pid = fork();
 *         child: join the task's cgroup, dup2() the agent's pipes onto 0, 1, 2
 *                (keep cmd.fds open), sandbox_command_exec(&cmd); _exit(127);
 *         parent: sandbox_command_done(&cmd);
 *
 * What an agent sees: the system read-only, fresh /dev, /proc and /tmp, its
 * worktree and home read-write, its task's own git directory (read-write but
 * for its config and where its objects come from) and the repository's
 * objects read-only. Nothing else of the host's state. Its processes are
 * [Sandbox] User= (sandbox-identity.h), never host root. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "conf.h"
#include "sandbox-identity.h"

/* sandbox_build() returns -ENOPKG when bwrap cannot be found; this is the
 * reason to give the task. */
#define SANDBOX_BWRAP_MISSING "bwrap not found: install bubblewrap or set [Sandbox] Enabled=no"

typedef struct SandboxParams {
        const Config *config;           /* [Sandbox], [Agent] Environment=; state_dir and
                                         * worker_worktree_dir must be set (config_finalize()) */
        const SandboxIdentity *identity; /* who the agent runs as (sandbox_identity_init()) */
        const char *task_id;            /* names the host: makima-<first 8 characters> */
        const char *worktree;           /* read-write at the same path (sessions are keyed by
                                         * the cwd); the cwd */
        const char *home;               /* the task's private home, under the state directory;
                                         * read-write at the same path, $HOME */
        const char *git_dir;            /* the task's own git directory (sandbox-task.h); NULL: the
                                         * worktree is no repository */
        char **borrowed;                /* the object directories it borrows, read-only */
        char **command;                 /* the agent's argv; argv[0] is looked up in the worker's
                                         * $PATH, and where it lives outside the system
                                         * directories its file (or npm package) is bound
                                         * read-only */
        char **environment;             /* KEY=VALUE for this task only (its own token, …); they
                                         * win over [Agent] Environment= */
        char **read_only_paths;         /* more read-only binds, beside [Sandbox] ReadOnlyPaths= */
        const char *bwrap;              /* NULL: "bwrap" in $PATH */
        bool no_seccomp;                /* debugging only (makima-sandbox-run --no-seccomp) */
} SandboxParams;

typedef struct SandboxCommand {
        char **argv;                    /* argv[0] is an absolute path, for execve() */
        char **envp;
        char *cwd;                      /* NULL when bwrap changes directory itself */
        int *fds;                       /* O_CLOEXEC here; named by number in argv, so they must
                                         * stay open under the same numbers in the child */
        size_t n_fds;
        bool sandboxed;                 /* false with [Sandbox] Enabled=no */
        SandboxIdentity identity;       /* its user; .user is not set */
        pid_t parent;                   /* who built it: the child dies with it */
} SandboxCommand;

/* Builds the command for one start of one task's agent (the fds are read by
 * bwrap, so a SandboxCommand is good for one spawn). With Enabled=no it is
 * the agent's own command line, and a warning is logged on every call.
 * Returns -ENOPKG if bwrap is missing (give the task SANDBOX_BWRAP_MISSING),
 * -EPERM if a configured path would expose the state directory or another
 * task, or another -errno; each is logged. */
int sandbox_build(const SandboxParams *p, SandboxCommand *ret);
void sandbox_command_done(SandboxCommand *c);

/* In the forked child only: makes the fds inheritable, drops what the
 * sandbox's user must not have (sandbox_identity_prepare_exec()), arranges
 * to die with the parent, changes directory if needed and execs. Only
 * async-signal-safe calls, so it is fine after fork() in a threaded process.
 * Returns -errno only on failure. */
int sandbox_command_exec(const SandboxCommand *c);

/* Looks name up in the colon-separated search path (NULL: $PATH, or a default
 * if that is unset); a name with a slash is taken as it is. -ENOENT if there
 * is no executable regular file by that name. */
int sandbox_find_executable(const char *name, const char *search_path, char **ret);

/* The paths an agent must never see, canonical: the state directory, the
 * store, makima's configuration (MAKIMA_CONF_DIR and the file read). */
int sandbox_private_paths(const Config *c, char ***ret);
