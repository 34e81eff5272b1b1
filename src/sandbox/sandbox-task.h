/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Where makima keeps the files of its tasks, and who may touch them.
 *
 *   [Worker] WorktreeDir=/<id>   the task's worktree (default <state>/worktrees)
 *   <state>/git/<id>             the task's own git directory: its refs and its objects;
 *                                the repository's objects are borrowed read-only
 *   <state>/homes/<id>           the agent's private home (its sessions)
 *   <state>/repos/<owner>/<url>  per owner, the clones of URL repositories
 *
 * The directories that hold these belong to the caller (the worker's user)
 * and to the agent's group, set-group-ID: what the caller or the agent
 * makes in them is the agent's group's, and the caller, a member, reads
 * (and removes) what the agent wrote. */
#pragma once

#include "conf.h"
#include "sandbox-identity.h"

typedef struct TaskDirs {
        char *worktrees;
        char *homes;
        char *gits;
        char *repos;
} TaskDirs;

int task_dirs(const Config *c, TaskDirs *ret);
void task_dirs_done(TaskDirs *d);

typedef struct TaskPaths {
        char *worktree;                 /* the task's own record's, else the default */
        char *home;
        char *git_dir;
} TaskPaths;

/* worktree: the task's recorded worktree, or NULL for the default one. */
int task_paths(const Config *c, const char *task_id, const char *worktree, TaskPaths *ret);
void task_paths_done(TaskPaths *p);

/* The owner's clone cache: <state>/repos/<hex sha256 of the owner> ("" for
 * objects without one). URL repositories are never shared between owners. */
int task_clone_cache(const Config *c, const char *owner, char **ret);

/* Makes the four holding directories (and the state directory), owned by
 * the caller and the agent's group, set-group-ID, 02770 (the clone caches
 * 02750: the agent reads them, only the caller writes). Logs. */
int task_dirs_setup(const Config *c, const SandboxIdentity *agent);

/* Makes one task's directory (or finds it made), 02770 and of the agent's
 * group, like its parent. The parent must exist. */
int task_dir_make(const char *path, const SandboxIdentity *agent);
/* Makes (or takes, if it is ours) the directory name in dir_fd, which the
 * agent's group may read but not write, as task_dir_make() does. -EPERM if
 * it is somebody else's. */
int task_dir_make_read_only(int dir_fd, const char *name, const SandboxIdentity *agent);

/* Removes one task's directory and all in it. What the agent made is its
 * own, and it may have taken its own rights away (chmod 0): a child process
 * that is the agent's user removes the contents, then the caller the
 * directory itself. A missing directory is not an error. Does not follow
 * symlinks. Does not log. */
int task_dir_remove(const char *path, const SandboxIdentity *agent);

/* Removes a tree without following any symlink in it, giving back write
 * and search rights to directories on the way (its owner may). */
int rm_rf_at(int dir_fd, const char *name);

/* Whether the task may borrow these object directories: never another
 * task's git directory, worktree or home, and of makima's state only the
 * owner's clone cache. -EPERM names the refused path in *ret_error. */
int task_check_borrowed(const Config *c, const char *owner, char *const *dirs, char **ret_error);

/* The object directories a task's git directory borrows (its
 * objects/info/alternates, which the worker wrote), each checked: never
 * another task's git directory, worktree or home, and under the clone
 * caches only the owner's own. -EPERM names the refused path in *ret_error. */
int task_borrowed_objects(const Config *c, const char *git_dir, const char *owner, char ***ret, char **ret_error);
