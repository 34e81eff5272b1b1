/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One cleanup pass: removes the worktree and the task's own repository
 * (its git directory, where its branch lives) of every task that is gone
 * from the store, cancelled, merged, or belongs to a contract that is
 * completed or cancelled, and the private agent homes of tasks that are
 * gone. Work a person may still want to look at — done and failed tasks of
 * open contracts — is left alone. What the agent made is removed as the
 * agents' user (sandbox-task.h); no git runs, and no repository of the
 * user's is touched. Idempotent. */

#include <fcntl.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "log.h"
#include "sandbox-task.h"

static int remove_task_dir(const char *path, const SandboxIdentity *agent, const char *what, unsigned *counter,
                           CleanupStats *stats) {
        int r;

        if (access(path, F_OK) < 0)
                return 0;
        r = task_dir_remove(path, agent);
        if (r < 0) {
                log_warning_errno(r, "Failed to remove %s %s: %m", what, path);
                stats->failures++;
                return r;
        }
        log_info("Removed %s %s.", what, path);
        if (counter)
                (*counter)++;
        return 0;
}

static bool task_worktree_unneeded(Store *store, const Task *t, int *error) {
        _cleanup_(contract_freep) Contract *c = NULL;
        int r;

        if (IN_SET(t->status, TASK_CANCELLED, TASK_MERGED))
                return true;
        if (!t->contract_id || !task_state_is_final(t->status))
                return false;
        r = store_contract_get(store, t->contract_id, &c);
        if (r == -ENOENT)
                return true;
        if (r < 0) {
                *error = r;
                return false;
        }
        return IN_SET(c->status, CONTRACT_COMPLETED, CONTRACT_CANCELLED);
}

/* Every directory entry of dir that is a task id, with the task (NULL if
 * it is gone from the store). */
typedef int (*SweepFunc)(const Config *config, Store *store, const SandboxIdentity *agent, const char *id,
                         Task *t, CleanupStats *stats);

static int sweep(const Config *config, Store *store, const SandboxIdentity *agent, const char *dir, SweepFunc f,
                 CleanupStats *stats) {
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        int r = 0;

        d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : log_error_errno(errno, "Failed to open %s: %m", dir);
        while ((de = readdir(d))) {
                _cleanup_(task_freep) Task *t = NULL;
                int q;

                if (!id_is_valid(de->d_name))
                        continue;       /* not ours */
                q = store_task_get(store, de->d_name, &t);
                if (q < 0 && q != -ENOENT)
                        return log_error_errno(q, "Failed to read task %s: %s", de->d_name, store_last_error(store));
                q = f(config, store, agent, de->d_name, t, stats);
                if (q < 0 && r == 0)
                        r = q;
        }
        return r;
}

/* A worktree no task needs, and the task's repository with it. */
static int sweep_worktree(const Config *config, Store *store, const SandboxIdentity *agent, const char *id, Task *t,
                          CleanupStats *stats) {
        _cleanup_(task_paths_done) TaskPaths paths = {};
        int error = 0, q;

        if (t && !task_worktree_unneeded(store, t, &error)) {
                if (error < 0)
                        return log_error_errno(error, "Failed to read the contract of task %s: %s", t->id,
                                               store_last_error(store));
                return 0;
        }
        q = task_paths(config, id, NULL, &paths);
        if (q < 0)
                return log_oom();
        (void) remove_task_dir(paths.worktree, agent, "worktree", &stats->worktrees_removed, stats);
        (void) remove_task_dir(paths.git_dir, agent, "task repository", NULL, stats);

        if (t && t->worktree) {
                /* The task stays (its record and events are history); its worktree does not. */
                t->worktree = mfree(t->worktree);
                q = store_task_update(store, t, NULL);
                if (q < 0 && q != -ESTALE && q != -ENOENT)
                        log_warning_errno(q, "Failed to clear the worktree of task %s: %s", t->id,
                                          store_last_error(store));
        }
        return 0;
}

/* A task's repository whose worktree went first (an interrupted pass). */
static int sweep_git_dir(const Config *config, Store *store, const SandboxIdentity *agent, const char *id, Task *t,
                         CleanupStats *stats) {
        _cleanup_(task_paths_done) TaskPaths paths = {};
        int error = 0;

        if (t && !task_worktree_unneeded(store, t, &error))
                return error < 0 ? log_error_errno(error, "Failed to read the contract of task %s: %s", t->id,
                                                   store_last_error(store))
                                 : 0;
        if (task_paths(config, id, t ? t->worktree : NULL, &paths) < 0)
                return log_oom();
        if (t && t->worktree && access(paths.worktree, F_OK) >= 0)
                return 0;       /* the worktree sweep's business */
        return remove_task_dir(paths.git_dir, agent, "task repository", NULL, stats);
}

/* The agent's sessions live in its home: kept while the task exists. */
static int sweep_home(const Config *config, Store *store, const SandboxIdentity *agent, const char *id, Task *t,
                      CleanupStats *stats) {
        _cleanup_(task_paths_done) TaskPaths paths = {};

        if (t)
                return 0;
        if (task_paths(config, id, NULL, &paths) < 0)
                return log_oom();
        return remove_task_dir(paths.home, agent, "agent home", &stats->homes_removed, stats);
}

int cleanup_run(const Config *config, Store *store, const SandboxIdentity *agent, CleanupStats *ret_stats) {
        _cleanup_(task_dirs_done) TaskDirs dirs = {};
        CleanupStats stats = {};
        int r;

        r = task_dirs(config, &dirs);
        if (r < 0)
                return log_oom();
        r = sweep(config, store, agent, dirs.worktrees, sweep_worktree, &stats);
        if (r >= 0)
                r = sweep(config, store, agent, dirs.gits, sweep_git_dir, &stats);
        if (r >= 0)
                r = sweep(config, store, agent, dirs.homes, sweep_home, &stats);
        *ret_stats = stats;
        return r;
}
