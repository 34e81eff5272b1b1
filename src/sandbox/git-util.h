/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Git operations makima needs, each a few runs of the real git (fork +
 * execve, never a shell), synchronous, and every one inside a sandbox of its
 * own (git-run.c): the clone cache for URL repositories, a task's own
 * repository, the diff of a task's worktree against its base, and a
 * fingerprint of its state (to tell progress from none).
 *
 * A task's repository is its own: a git directory under the state directory
 * (sandbox-task.h) whose refs and objects are the task's, borrowing the
 * repository's objects read-only (objects/info/alternates). The repository
 * itself is only ever read; a task's branch never reaches it.
 *
 * No logging: on failure, *ret_error (where offered; NULL or allocated on
 * entry) gets git's own words (its stderr, trimmed to its "fatal:"/"error:"
 * lines) or makima's, and the return value is -errno: -EIO when git itself
 * failed for a reason not named below. git-run.c runs git, git-util.c does
 * the rest. */
#pragma once

#include <stdbool.h>

#include "conf.h"
#include "macro.h"
#include "sandbox-identity.h"

/* How git runs: the configuration (Enabled=, what the sandbox hides), as
 * whom on what agents wrote and on what the caller keeps itself. */
typedef struct GitContext {
        const Config *config;
        const SandboxIdentity *agent;
        const SandboxIdentity *caller;
        const char *bwrap;              /* NULL: bwrap in $PATH */
        char *const *allowed_roots;     /* NULL, or the only (canonical) directories the paths of a
                                         * repository may lie in: its top, where its .git leads, the
                                         * object directories it borrows (-EPERM otherwise) */
        uint64_t memory_max;            /* 0, or the address space each git may use (RLIMIT_AS) */
        const char *scratch_dir;        /* where snapshots go (NULL: $TMPDIR, else /tmp): a directory
                                         * the caller removes after the child that runs git, killed
                                         * or not */
} GitContext;

/* A task's own repository. */
typedef struct GitTaskRepo {
        const char *worktree;
        const char *git_dir;
        char *const *borrowed;          /* object directories, read-only */
} GitTaskRepo;

/* True if s looks like a URL git clones (scheme://…, user@host:path), not a local path. */
bool git_repo_is_url(const char *s) _pure_;

/* For a local path: the repository's top directory (realpath; a bare one's
 * git directory), -ENOENT if it does not exist, -ENOTDIR/-EINVAL ("not a
 * git repository") otherwise. Read as the agent's user, which must be able
 * to: its objects are what a task borrows. git trusts exactly this
 * repository though another user owns it.
 * For a URL: clones it once (a bare mirror, as the caller) into
 * cache_dir/<sha256 of URL>, or fetches into the existing clone; returns
 * that path. The clone keeps the remote's branches under origin/ (bases are
 * looked up there too) and nothing else. Clones and fetches of one URL are
 * serialized by a lock file beside the clone. */
int git_resolve_repo(const GitContext *ctx, const char *repo, const char *cache_dir, char **ret_path,
                     char **ret_error);

/* The branch HEAD points at in the repository (for a task without
 * base_branch; of a clone, the remote's default branch). -ENOENT if HEAD is
 * detached. */
int git_default_branch(const GitContext *ctx, const char *repo_path, char **ret_branch, char **ret_error);

/* The paths git reads for the repository at top (git_resolve_repo()'s
 * answer): top itself, and where its .git file leads (a linked worktree's
 * or --separate-git-dir's git directory, and its common directory). */
int git_repo_paths(const GitContext *ctx, const char *top, char ***ret, char **ret_error);

/* The object directories of a repository (resolved with git_resolve_repo()):
 * its own and those it borrows itself, recursively, canonical. */
int git_repo_object_dirs(const GitContext *ctx, const char *repo_path, char ***ret, char **ret_error);

/* Makes the task's repository: git_dir (which must exist, empty, as the
 * task's worktree must) gets HEAD on a new `branch` at `base` (a branch,
 * tag or commit of repo_path; -ENOENT with "base branch 'x' does not exist"
 * otherwise) and a copy of the base branch under its own name, borrows
 * t->borrowed, and the worktree is checked out. copy_files are paths
 * relative to the repository's top directory of untracked files (e.g.
 * ".env") copied into the worktree if they exist (only for a repository
 * with a work tree; a path escaping it is -EINVAL); copies keep the mode
 * (without set-id bits, group as user), copy symlinks as symlinks and never
 * replace what the worktree already has. A repository made before (a
 * restart) is kept as the agent left it: only its borrowed list is written
 * again. *ret_base_commit (may be NULL) is the commit the branch started
 * from, for a new one; NULL for a kept one. */
int git_task_repo_prepare(const GitContext *ctx, const GitTaskRepo *t, const char *repo_path, const char *base,
                          const char *branch, char *const *copy_files, char **ret_base_commit, char **ret_error);

/* The unified diff of the worktree (committed, staged, unstaged and
 * untracked files) against `base` (a commit id, or a branch of the task's
 * repository; its merge base with HEAD), without touching the task's
 * index or objects (a snapshot in a temporary index and object directory
 * of its own). Binary files show as "Binary files … differ". Nested
 * repositories show as their HEAD and are never entered. At most max_bytes
 * (0: no limit), cut at a line end where possible; *ret_truncated (may be
 * NULL) tells if it was cut. */
int git_worktree_diff(const GitContext *ctx, const GitTaskRepo *t, const char *base, size_t max_bytes, char **ret_diff,
                      bool *ret_truncated, char **ret_error);

/* A fingerprint of the worktree's state, "<HEAD commit id or unborn>:<tree
 * id>": HEAD's commit and the tree the worktree would be as a commit of all
 * of it (ignored files do not count). Equal fingerprints mean no change.
 * Reads without touching the task's index, so it can run while the agent
 * uses git in the worktree. */
int git_worktree_fingerprint(const GitContext *ctx, const GitTaskRepo *t, char **ret_fingerprint, char **ret_error);
