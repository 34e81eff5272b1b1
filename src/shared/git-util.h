/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Git operations makima needs, done by running the real git (fork + execve,
 * never a shell) synchronously: the clone cache for URL repositories, a
 * task's worktree on its own branch, the diff of a worktree against its
 * base, and a fingerprint of a worktree's state (to tell progress from none).
 * Every git run has hooks disabled (-c core.hooksPath=/dev/null) and a clean
 * environment (GIT_TERMINAL_PROMPT=0, no GIT_DIR leaking in). No logging:
 * on failure, *ret_error (where offered) gets git's own words (its stderr,
 * trimmed), and the return value is -errno. */
#pragma once

#include <stdbool.h>

#include "macro.h"

/* True if s looks like a URL git clones (scheme://…, user@host:path), not a local path. */
bool git_repo_is_url(const char *s) _pure_;

/* For a local path: the repository's top directory (realpath), -ENOENT if it
 * does not exist, -ENOTDIR/-EINVAL ("not a git repository") otherwise.
 * For a URL: clones it once (a bare mirror) into cache_dir/<sha256 of URL>,
 * or fetches into the existing clone; returns that path. */
int git_resolve_repo(const char *repo, const char *cache_dir, char **ret_path, char **ret_error);

/* The branch HEAD points at in the repository (for a task without base_branch). */
int git_default_branch(const char *repo_path, char **ret_branch, char **ret_error);

/* Creates (or, if it already exists and is a worktree of repo_path on
 * `branch`, reuses — for restarts) a worktree at `path` on a new branch
 * `branch` from `base`. -ENOENT with "base branch 'x' does not exist" if
 * base is not a branch, tag or commit of the repository. copy_files are
 * paths relative to the repository's top directory of untracked files
 * (e.g. ".env") copied into the worktree if they exist (only for a local
 * repository; a path escaping the repository is -EINVAL). */
int git_worktree_prepare(const char *repo_path, const char *base, const char *branch, const char *path,
                         char *const *copy_files, char **ret_error);

/* Removes the worktree (git worktree remove --force, then prune) and,
 * if delete_branch, the branch. Missing worktree is not an error. */
int git_worktree_remove(const char *repo_path, const char *path, const char *branch, bool delete_branch,
                        char **ret_error);

/* The unified diff of the worktree (committed, staged, unstaged and
 * untracked files) against `base` (its merge base with HEAD), without
 * touching the worktree's index (a temporary index is used). At most
 * max_bytes (0: no limit); *ret_truncated tells if it was cut. */
int git_worktree_diff(const char *worktree, const char *base, size_t max_bytes, char **ret_diff,
                      bool *ret_truncated, char **ret_error);

/* A fingerprint of the worktree's state: HEAD's commit plus a hash of the
 * status and of the content of changed and untracked files. Equal
 * fingerprints mean no change. */
int git_worktree_fingerprint(const char *worktree, char **ret_fingerprint, char **ret_error);

/* Runs git with argv (without "git" itself) in dir, capturing stdout (up to
 * max_stdout bytes, 0: no limit) and stderr. Returns git's exit status
 * (0..255) or -errno if it could not run. Exposed for the others and tests. */
int git_run(const char *dir, char *const *argv, size_t max_stdout, char **ret_stdout, char **ret_stderr);
