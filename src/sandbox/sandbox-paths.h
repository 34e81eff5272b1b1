/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the sandbox has to find on the host before it can bind anything:
 * what an agent's program needs to run, and the path arithmetic. Nothing here logs. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* True if path is dir or lies below it (both canonical). */
bool path_is_under(const char *path, const char *dir);
/* The absolute path with "//", "." and ".." taken out by spelling alone. */
int path_normalize(const char *path, char **ret);
/* realpath() for a path that exists; else its nearest existing parent's,
 * with the rest of the path (normalized) after it. */
int path_canonical(const char *path, char **ret);
char *path_dirname(const char *path);

/* Opens path (relative) beneath dir_fd with flags (O_CLOEXEC added)
 * following no symbolic link on the way, and none at its end: what an agent
 * may have written is opened as what it is, never as what a link it made
 * points to. (dir_fd AT_FDCWD: path may be absolute, see
 * path_open_canonical().) With type (S_IFDIR, S_IFREG; 0: anything but a link), -ENOTDIR
 * or -EISDIR when it is something else (a link, a FIFO, …). */
int path_open_beneath(int dir_fd, const char *path, int flags, mode_t type);
/* The same for an absolute path, canonical already (path_canonical()): a
 * link anywhere on it, put there since, makes it fail (-ELOOP). */
int path_open_canonical(const char *path, int flags, mode_t type);

/* An agent's program and what it needs bound to run. */
typedef struct SandboxProgram {
        char *path;                     /* what to execute */
        char **read_only;               /* to bind at the same path: the file, or its npm package,
                                         * and its #! interpreter's */
        char **path_dirs;               /* to put in front of the agent's $PATH */
} SandboxProgram;

/* Looks name up in the worker's $PATH. A program in the system directories
 * (which are bound anyway) needs nothing; another needs its npm package (npm
 * links bin/claude to lib/node_modules/@anthropic-ai/claude-code/cli.js), or
 * else its file, and the same for the interpreter its #! line names or asks
 * env for, which is looked for beside it first (an nvm prefix has its own
 * node). */
int sandbox_program_find(const char *name, SandboxProgram *ret);
void sandbox_program_done(SandboxProgram *p);

/* The directories bound read-only as the system (NULL-terminated). On
 * merged-/usr systems the top-level ones are symlinks into /usr. */
extern const char *const sandbox_system_dirs[];
bool path_in_system(const char *path);
