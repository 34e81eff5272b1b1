/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The mechanism under every sandbox makima builds: a bwrap command line, its
 * environment and the fds it reads, assembled piece by piece. What goes in
 * (which paths, which network, which program) is the policy's business:
 * sandbox.c for an agent, git-run.c for git. Private to the library. */
#pragma once

#include <stdbool.h>

#include "conf.h"
#include "sandbox.h"
#include "sandbox-identity.h"

/* The sandbox's $PATH, after the directories an agent's interpreter needs. */
#define SANDBOX_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* More would be a command line no sandbox needs. */
#define BWRAP_FDS_MAX 1024

typedef struct Bwrap {
        char **argv;
        char **env;
        int *fds;                       /* O_CLOEXEC here; named by number in argv */
        size_t n_fds;
        SandboxIdentity identity;       /* a copy: who the sandbox runs as */
        char **hidden_dirs;             /* private directories covered with a tmpfs, made
                                         * read-only at the end */
} Bwrap;

/* Finds bwrap (NULL: in $PATH): -ENOPKG if there is none. Starts the
 * command line with the namespaces every sandbox has (user, pid, ipc, uts,
 * cgroup; the network only unless `network`), a hostname, no capabilities,
 * death with the parent and a session of its own; with a separate identity,
 * a user namespace of our own making (sandbox-identity.h). Nothing logs. */
int bwrap_init(Bwrap *b, const char *bwrap, const SandboxIdentity *identity, const char *hostname, bool network);
void bwrap_done(Bwrap *b);

/* Appends arguments, up to a NULL. */
int bwrap_args(Bwrap *b, ...) _sentinel_;
/* Hands fd (taken, closed on failure) to bwrap: "OPTION FD [DEST]". */
int bwrap_fd_arg(Bwrap *b, int fd, const char *option, const char *dest);
/* A memfd holding text, for --ro-bind-data and friends. */
int bwrap_data(Bwrap *b, const char *option, const char *text, const char *dest);
/* Binds what fd (O_PATH or any other, taken) refers to at dest. */
int bwrap_bind_fd(Bwrap *b, int fd, const char *dest, bool read_only);
/* Binds the host's path at the same place. The path is opened here, as the
 * caller, and bwrap gets the fd, which it binds as the canonical path the
 * kernel gives for it (bwrap 0.8 resolves /proc/self/fd/N): what is bound
 * is what was opened, whatever was renamed or linked on the way since. */
int bwrap_bind(Bwrap *b, const char *path, bool read_only);

/* The host's system read-only (sandbox_system_dirs), what in /etc only its
 * owner or group may read hidden, and each of `private` (canonical paths)
 * that lies in the system covered: a directory with an empty tmpfs (made
 * read-only by bwrap_finish(), after the binds inside it), a file with an
 * unreadable one. */
int bwrap_system(Bwrap *b, char *const *private);
/* passwd and group of the sandbox's own: root, the agent (home, shell),
 * nobody. */
int bwrap_user_database(Bwrap *b, const char *home, const char *shell);
/* Fresh /dev, /proc (its /proc/sys read-only, the kernel's keyrings and
 * scheduler tables unreadable), /tmp, /var/tmp and /run. */
int bwrap_api_filesystems(Bwrap *b);
/* The seccomp filter (sandbox-seccomp.h). */
int bwrap_seccomp(Bwrap *b);

/* Sets NAME=VALUE in the environment, replacing an earlier NAME=. */
int bwrap_setenv(Bwrap *b, const char *assignment);
int bwrap_setenvf(Bwrap *b, const char *name, const char *value);

/* Closes the command line: the hidden directories and / read-only, the
 * working directory, "--", the command. Hands everything to *ret. */
int bwrap_finish(Bwrap *b, const char *cwd, char *const *command, SandboxCommand *ret);

/* Whether bwrap can be found (NULL: in $PATH). */
int bwrap_find(const char *bwrap, char **ret);
