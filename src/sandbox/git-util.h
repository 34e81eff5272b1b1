/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Git operations makima needs, done by running the real git (fork + execve,
 * never a shell) synchronously: the clone cache for URL repositories, a
 * task's worktree on its own branch, the diff of a worktree against its
 * base, and a fingerprint of a worktree's state (to tell progress from none).
 * Every git run has hooks disabled (-c core.hooksPath=/dev/null) and a clean
 * environment (GIT_TERMINAL_PROMPT=0, no GIT_DIR leaking in). No logging:
 * on failure, *ret_error (where offered; NULL or allocated on entry) gets
 * git's own words (its stderr, trimmed to its "fatal:"/"error:" lines) or
 * makima's, and the return value is -errno: -EIO when git itself failed for
 * a reason not named below. git-run.c runs git, git-util.c does the rest. */
#pragma once

#include <stdbool.h>

#include "macro.h"

/* True if s looks like a URL git clones (scheme://…, user@host:path), not a local path. */
bool git_repo_is_url(const char *s) _pure_;

/* For a local path: the repository's top directory (realpath), -ENOENT if it
 * does not exist, -ENOTDIR/-EINVAL ("not a git repository") otherwise.
 * For a URL: clones it once (a bare mirror) into cache_dir/<sha256 of URL>,
 * or fetches into the existing clone; returns that path. The clone keeps
 * the remote's branches under origin/ (bases are looked up there too) and
 * its refs/heads/ for task branches, so a fetch never moves those. Clones
 * and fetches of one URL are serialized by a lock file beside the clone. */
int git_resolve_repo(const char *repo, const char *cache_dir, char **ret_path, char **ret_error);

/* The branch HEAD points at in the repository (for a task without
 * base_branch; of a clone, the remote's default branch). -ENOENT if HEAD is
 * detached. */
int git_default_branch(const char *repo_path, char **ret_branch, char **ret_error);

/* Creates (or, if it already exists and is a worktree of repo_path on
 * `branch`, reuses — for restarts) a worktree at `path` on a new branch
 * `branch` from `base`. -ENOENT with "base branch 'x' does not exist" if
 * base is not a branch, tag or commit of the repository. copy_files are
 * paths relative to the repository's top directory of untracked files
 * (e.g. ".env") copied into the worktree if they exist (only for a local
 * repository; a path escaping the repository is -EINVAL). Copies keep the
 * mode (without set-id bits), copy symlinks as symlinks and never replace
 * what the worktree already has, so a restart keeps the agent's edits. A
 * branch left by an earlier attempt is checked out as it is, not reset. */
int git_worktree_prepare(const char *repo_path, const char *base, const char *branch, const char *path,
                         char *const *copy_files, char **ret_error);

/* Removes the worktree (git worktree remove --force, then prune) and,
 * if delete_branch, the branch. Missing worktree is not an error. */
int git_worktree_remove(const char *repo_path, const char *path, const char *branch, bool delete_branch,
                        char **ret_error);

/* The unified diff of the worktree (committed, staged, unstaged and
 * untracked files) against `base` (its merge base with HEAD), without
 * touching the worktree's index (a temporary index is used, in which
 * untracked files are intent-to-add entries). Binary files show as "Binary
 * files … differ". At most max_bytes (0: no limit), cut at a line end where
 * possible; *ret_truncated (may be NULL) tells if it was cut. */
int git_worktree_diff(const char *worktree, const char *base, size_t max_bytes, char **ret_diff,
                      bool *ret_truncated, char **ret_error);

/* A fingerprint of the worktree's state, "<HEAD commit id or unborn>:<sha256>":
 * HEAD's commit plus a hash of the status and of the mode and content of
 * changed and untracked files (ignored files do not count). Equal
 * fingerprints mean no change. Reads without taking git's index lock, so
 * it can run while the agent uses git in the worktree. */
int git_worktree_fingerprint(const char *worktree, char **ret_fingerprint, char **ret_error);

/* Runs git with argv (without "git" itself) in dir, capturing stdout (up to
 * max_stdout bytes, 0: no limit) and stderr. Returns git's exit status
 * (0..255; 128 + signal if it was killed) or -errno if it could not run
 * (-ENOENT for a missing dir). Output beyond max_stdout is not read: git
 * dies of SIGPIPE, which then counts as 0. *ret_stdout and *ret_stderr are
 * strings whenever it returns >= 0. Exposed for the others and tests. */
int git_run(const char *dir, char *const *argv, size_t max_stdout, char **ret_stdout, char **ret_stderr);
