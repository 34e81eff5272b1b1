/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One cleanup pass: removes the worktree (and its makima/ branch) of every
 * task that is gone from the store, cancelled, merged, or belongs to a
 * contract that is completed or cancelled, and the private agent homes of
 * tasks that are gone. Work a person may still want to look at — done and
 * failed tasks of open contracts — is left alone. Idempotent. */

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "git-util.h"
#include "log.h"

/* The git directory a worktree belongs to, from git itself (absolute). */
static int worktree_common_dir(const char *worktree, char **ret) {
        _cleanup_free_ char *out = NULL, *err = NULL;
        char *argv[] = { (char *) "rev-parse", (char *) "--path-format=absolute", (char *) "--git-common-dir", NULL };
        int r;

        r = git_run(worktree, argv, 4096, &out, &err);
        if (r < 0)
                return r;
        if (r != 0)
                return -ENOTDIR;        /* not (any more) a worktree */
        out[strcspn(out, "\n")] = '\0';
        if (isempty(out))
                return -ENOTDIR;
        *ret = TAKE_PTR(out);
        return 0;
}

static int rm_rf_at(int parent_fd, const char *name) {
        _cleanup_close_ int fd = -EBADF;
        DIR *d;
        struct dirent *de;
        int r = 0;

        fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOTDIR || errno == ELOOP)
                        return unlinkat(parent_fd, name, 0) < 0 ? -errno : 0;
                return errno == ENOENT ? 0 : -errno;
        }
        d = fdopendir(fd);
        if (!d)
                return -errno;
        fd = -EBADF;    /* owned by d now */
        while ((de = readdir(d))) {
                int q;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                q = rm_rf_at(dirfd(d), de->d_name);
                if (q < 0 && r == 0)
                        r = q;
        }
        closedir(d);
        if (unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                r = -errno;
        return r;
}

static void remove_worktree(const char *path, const char *branch, CleanupStats *stats) {
        _cleanup_free_ char *common = NULL, *error = NULL;
        int r;

        r = worktree_common_dir(path, &common);
        if (r == -ENOTDIR) {
                /* Not a worktree any more (its repository went away): just the files. */
                r = rm_rf_at(AT_FDCWD, path);
                if (r < 0) {
                        log_warning_errno(r, "Failed to remove %s: %m", path);
                        stats->failures++;
                } else
                        stats->worktrees_removed++;
                return;
        }
        if (r < 0) {
                log_warning_errno(r, "Failed to find the repository of %s: %m", path);
                stats->failures++;
                return;
        }
        r = git_worktree_remove(common, path, branch, !!branch, &error);
        if (r < 0) {
                log_warning_errno(r, "Failed to remove worktree %s: %s", path, error ?: strerror(-r));
                stats->failures++;
                return;
        }
        log_info("Removed worktree %s%s%s.", path, branch ? " and branch " : "", strempty(branch));
        stats->worktrees_removed++;
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

/* The branch makima made for a task: makima/<first 8 characters of the id>. */
static char *task_branch(const char *id) {
        char *b;

        return asprintf(&b, "makima/%.8s", id) < 0 ? NULL : b;
}

static int sweep_worktrees(const Config *config, Store *store, CleanupStats *stats) {
        _cleanup_close_ int dfd = -EBADF;
        DIR *d;
        struct dirent *de;
        int r = 0;

        dfd = open(config->worker_worktree_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return errno == ENOENT ? 0 : log_error_errno(errno, "Failed to open %s: %m",
                                                             config->worker_worktree_dir);
        d = fdopendir(dfd);
        if (!d)
                return log_error_errno(errno, "Failed to read %s: %m", config->worker_worktree_dir);
        dfd = -EBADF;

        while ((de = readdir(d))) {
                _cleanup_(task_freep) Task *t = NULL;
                _cleanup_free_ char *path = NULL, *branch = NULL;
                int q, error = 0;

                if (!id_is_valid(de->d_name))
                        continue;       /* not ours */
                q = store_task_get(store, de->d_name, &t);
                if (q < 0 && q != -ENOENT) {
                        r = log_error_errno(q, "Failed to read task %s: %s", de->d_name, store_last_error(store));
                        break;
                }
                if (t && !task_worktree_unneeded(store, t, &error)) {
                        if (error < 0) {
                                r = log_error_errno(error, "Failed to read the contract of task %s: %s",
                                                    t->id, store_last_error(store));
                                break;
                        }
                        continue;
                }
                if (asprintf(&path, "%s/%s", config->worker_worktree_dir, de->d_name) < 0) {
                        r = log_oom();
                        break;
                }
                branch = t && t->branch ? strdup(t->branch) : task_branch(de->d_name);
                if (!branch) {
                        r = log_oom();
                        break;
                }
                remove_worktree(path, branch, stats);

                if (t && t->worktree) {
                        /* The task stays (its record and events are history); its worktree does not. */
                        t->worktree = mfree(t->worktree);
                        q = store_task_update(store, t, NULL);
                        if (q < 0 && q != -ESTALE && q != -ENOENT)
                                log_warning_errno(q, "Failed to clear the worktree of task %s: %s", t->id,
                                                  store_last_error(store));
                }
        }
        closedir(d);
        return r;
}

static int sweep_homes(const Config *config, Store *store, CleanupStats *stats) {
        _cleanup_free_ char *homes = NULL;
        _cleanup_close_ int dfd = -EBADF;
        DIR *d;
        struct dirent *de;
        int r = 0;

        if (asprintf(&homes, "%s/homes", config->state_dir) < 0)
                return log_oom();
        dfd = open(homes, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return errno == ENOENT ? 0 : log_error_errno(errno, "Failed to open %s: %m", homes);
        d = fdopendir(dfd);
        if (!d)
                return log_error_errno(errno, "Failed to read %s: %m", homes);
        dfd = -EBADF;

        while ((de = readdir(d))) {
                _cleanup_(task_freep) Task *t = NULL;
                int q;

                if (!id_is_valid(de->d_name))
                        continue;
                q = store_task_get(store, de->d_name, &t);
                if (q >= 0)
                        continue;       /* the agent's sessions live here: kept while the task exists */
                if (q != -ENOENT) {
                        r = log_error_errno(q, "Failed to read task %s: %s", de->d_name, store_last_error(store));
                        break;
                }
                q = rm_rf_at(dirfd(d), de->d_name);
                if (q < 0) {
                        log_warning_errno(q, "Failed to remove %s/%s: %m", homes, de->d_name);
                        stats->failures++;
                } else {
                        log_info("Removed the agent home of deleted task %s.", de->d_name);
                        stats->homes_removed++;
                }
        }
        closedir(d);
        return r;
}

int cleanup_run(const Config *config, Store *store, CleanupStats *ret_stats) {
        CleanupStats stats = {};
        int r;

        r = sweep_worktrees(config, store, &stats);
        if (r >= 0)
                r = sweep_homes(config, store, &stats);
        *ret_stats = stats;
        return r;
}
