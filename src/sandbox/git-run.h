/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The git runner under git-util.c (git_run() itself is declared in
 * git-util.h). Like the rest of git-util, it does not log: failures come
 * back as -errno with git's own words in *ret_error. */
#pragma once

#include "git-util.h"
#include "macro.h"

/* How long one run of git may take: on the task's own files, and where it
 * reaches a remote (a clone of a large repository). */
#define GIT_TIMEOUT_SEC 120U
#define GIT_TIMEOUT_NETWORK_SEC 3600U

/* A literal argument vector for git_capture() and friends. */
#define GIT_ARGV(...) ((const char *const[]) { __VA_ARGS__, NULL })

/* A growing, NUL-terminated buffer that keeps at most max bytes (0: any). */
typedef struct GitOutput {
        char *data;
        size_t size, allocated, max;
        bool truncated;
} GitOutput;

void git_output_done(GitOutput *o);
int git_output_append(GitOutput *o, const void *p, size_t n);
/* Takes the data out, without its final newlines. */
char *git_output_line(GitOutput *o);

/* Replaces *ret_error (NULL or allocated) with the message and returns r. */
int git_set_error(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);

/* What one run of git may reach, beyond the system: the sandbox's user,
 * the paths it reads and writes (bound at the same paths), the
 * repositories it trusts though another user owns them, whether it may use
 * the network. */
typedef struct GitJail {
        const GitContext *context;
        bool as_caller;                 /* the caller's own user, not the agent's */
        char *const *read_only;
        char *const *read_write;
        char *const *safe;              /* safe.directory= values */
        bool network;                   /* a fetch: the network, the system's git config and
                                         * the caller's GIT_SSH*, GIT_HTTP_* and the like */
        bool caller_home;               /* the caller's $HOME read-only, for ~/.ssh (ssh URLs) */
} GitJail;

/* The end of a run whose output is one line: r as git_capture() returned it
 * (git's exit status > 0 becomes -EIO); on success the line (without its
 * newline) in *ret_stdout if asked for. Frees out's data either way. */
int git_output_finish(int r, GitOutput *out, char **ret_stdout);

/* Runs git (argv without "git") in dir inside the jail, with extra
 * environment entries ("NAME=value") and returns its exit status; when that
 * is not 0, or git could not run at all (-errno), *ret_error says why.
 * stdout beyond max_stdout (0: no limit) is not read: ret_out->truncated is
 * set and git, stopped by SIGPIPE, counts as successful. git that takes
 * longer than GIT_TIMEOUT_SEC (GIT_TIMEOUT_NETWORK_SEC with the network) is
 * killed: -ETIME. */
int git_capture(const GitJail *jail, const char *dir, const char *const *argv, char *const *env, size_t max_stdout,
                GitOutput *ret_out, char **ret_error);

/* Runs git that must succeed: 0 and its stdout without the final newline,
 * -EIO if it failed, -errno if it could not run. */
int git_out(const GitJail *jail, const char *dir, const char *const *argv, char **ret_stdout, char **ret_error);

/* Asks git a question its exit status answers: 1 yes (with stdout), 0 no
 * (status 1, as "rev-parse --verify -q" says no), or an error. */
int git_probe(const GitJail *jail, const char *dir, const char *const *argv, char **ret_stdout, char **ret_error);
