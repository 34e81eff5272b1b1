/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Where tasks' files live, their directories' owners and modes, and their
 * removal. See sandbox-task.h. */

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "log.h"
#include "sandbox-paths.h"
#include "sandbox-task.h"
#include "sha256.h"

#define TASK_DIR_MODE 02770
#define CACHE_DIR_MODE 02750
/* A task borrows a few object directories: a list longer than this is no list of ours. */
#define BORROWED_LIST_MAX (64 * 1024)

static int join(const char *dir, const char *name, char **ret) {
        return asprintf(ret, "%s/%s", dir, name) < 0 ? -ENOMEM : 0;
}

int task_dirs(const Config *c, TaskDirs *ret) {
        _cleanup_(task_dirs_done) TaskDirs d = {};

        d.worktrees = strdup(c->worker_worktree_dir);
        if (!d.worktrees || join(c->state_dir, "homes", &d.homes) < 0 || join(c->state_dir, "git", &d.gits) < 0 ||
            join(c->state_dir, "repos", &d.repos) < 0)
                return -ENOMEM;
        *ret = d;
        d = (TaskDirs) {};
        return 0;
}

void task_dirs_done(TaskDirs *d) {
        free(d->worktrees);
        free(d->homes);
        free(d->gits);
        free(d->repos);
        *d = (TaskDirs) {};
}

int task_paths(const Config *c, const char *task_id, const char *worktree, TaskPaths *ret) {
        _cleanup_(task_dirs_done) TaskDirs d = {};
        _cleanup_(task_paths_done) TaskPaths p = {};
        int r;

        if (!id_is_valid(task_id))
                return -EINVAL;
        r = task_dirs(c, &d);
        if (r < 0)
                return r;
        if (worktree)
                p.worktree = strdup(worktree);
        else
                r = join(d.worktrees, task_id, &p.worktree);
        if (r < 0 || !p.worktree || join(d.homes, task_id, &p.home) < 0 || join(d.gits, task_id, &p.git_dir) < 0)
                return -ENOMEM;
        *ret = p;
        p = (TaskPaths) {};
        return 0;
}

void task_paths_done(TaskPaths *p) {
        free(p->worktree);
        free(p->home);
        free(p->git_dir);
        *p = (TaskPaths) {};
}

int task_clone_cache(const Config *c, const char *owner, char **ret) {
        char hex[SHA256_HEX_SIZE];

        sha256_hex(strempty(owner), strlen(strempty(owner)), hex);
        return asprintf(ret, "%s/repos/%s", c->state_dir, hex) < 0 ? -ENOMEM : 0;
}

static int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
                *s = '\0';
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* Mode and group of a directory of ours: the agent's group, and, where the
 * agent is a user of its own, set-group-ID (what is made in there is the
 * group's too). Somebody else's directory must be so already. */
static int dir_own(int fd, const SandboxIdentity *agent, mode_t mode) {
        struct stat st;

        if (!agent->separate)
                mode &= ~(mode_t) S_ISGID;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        if (st.st_gid == agent->gid && (st.st_mode & 07777) == mode)
                return 0;
        if (st.st_uid != geteuid())
                return -EPERM;  /* not ours: never change somebody else's */
        if (st.st_gid != agent->gid && fchown(fd, (uid_t) -1, agent->gid) < 0)
                return -errno;
        if (fchmod(fd, mode) < 0)
                return -errno;
        return 0;
}

static int dir_make(const char *path, const SandboxIdentity *agent, mode_t mode, bool parents) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        r = parents ? mkdir_p(path, mode) : (mkdir(path, mode) < 0 && errno != EEXIST ? -errno : 0);
        if (r < 0)
                return r;
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return dir_own(fd, agent, mode);
}

int task_dirs_setup(const Config *c, const SandboxIdentity *agent) {
        _cleanup_(task_dirs_done) TaskDirs d = {};
        int r;

        r = task_dirs(c, &d);
        if (r < 0)
                return log_oom();
        r = mkdir_p(c->state_dir, 0750);
        if (r < 0)
                return log_error_errno(r, "Failed to make the state directory %s: %m", c->state_dir);
        FOREACH_STRING(dir, d.worktrees, d.homes, d.gits, d.repos) {
                r = dir_make(dir, agent, streq(dir, d.repos) ? CACHE_DIR_MODE : TASK_DIR_MODE, true);
                if (r == -EPERM && agent->separate)
                        return log_error_errno(r, "Failed to give %s to the group of %s (the agents' user): %m. "
                                               "Is this process's user a member of that group?", dir, agent->user);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up %s: %m", dir);
        }
        return 0;
}

int task_dir_make(const char *path, const SandboxIdentity *agent) {
        return dir_make(path, agent, TASK_DIR_MODE, false);
}

int task_dir_make_read_only(int dir_fd, const char *name, const SandboxIdentity *agent) {
        _cleanup_close_ int fd = -EBADF;

        if (mkdirat(dir_fd, name, CACHE_DIR_MODE) < 0 && errno != EEXIST)
                return -errno;
        fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return dir_own(fd, agent, CACHE_DIR_MODE);
}

/* Removes everything in the directory fd, which it takes; the first error. */
static int rm_fd_contents(int fd) {
        _cleanup_(closedirp) DIR *d = NULL;
        int r = 0;

        d = fdopendir(fd);
        if (!d) {
                r = -errno;
                (void) close(fd);
                return r;
        }
        for (struct dirent *de; (de = readdir(d));) {
                int k;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                k = rm_rf_at(dirfd(d), de->d_name);
                if (k < 0 && r == 0)
                        r = k;
        }
        return r;
}

int rm_rf_at(int dir_fd, const char *name) {
        int fd, r;

        if (unlinkat(dir_fd, name, 0) >= 0 || errno == ENOENT)
                return 0;
        if (!IN_SET(errno, EISDIR, EPERM, EACCES))
                return -errno;
        fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == EACCES && fchmodat(dir_fd, name, 0700, 0) >= 0)
                fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        /* Its owner may have taken away the rights to empty it; its owner may give them back. */
        (void) fchmod(fd, 0700);
        r = rm_fd_contents(fd);
        if (unlinkat(dir_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                r = -errno;
        return r;
}

/* Empties the directory, keeping it. */
static int rm_contents(int fd) {
        int dup_fd;

        dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (dup_fd < 0)
                return -errno;
        return rm_fd_contents(dup_fd);
}

int task_dir_remove(const char *path, const SandboxIdentity *agent) {
        _cleanup_free_ char *parent = path_dirname(path);
        _cleanup_close_ int parent_fd = -EBADF, fd = -EBADF;
        const char *name = strrchr(path, '/');
        int status;
        pid_t pid;

        if (!parent || !name || isempty(name + 1))
                return -EINVAL;
        name++;
        parent_fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (parent_fd < 0)
                return errno == ENOENT ? 0 : -errno;
        fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT)
                        return 0;
                if (errno != ENOTDIR && errno != ELOOP)
                        return -errno;
                return unlinkat(parent_fd, name, 0) < 0 ? -errno : 0;
        }

        if (agent && agent->separate) {
                /* Never the agent's code: ours, as the agent's user, on an fd
                 * opened before, so no path of the agent's making is followed. */
                pid = fork();
                if (pid < 0)
                        return -errno;
                if (pid == 0) {
                        if (sandbox_identity_become(agent) < 0)
                                _exit(EXIT_FAILURE);
                        _exit(rm_contents(fd) < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
                }
                while (waitpid(pid, &status, 0) < 0)
                        if (errno != EINTR)
                                return -errno;
        }
        fd = safe_close(fd);
        /* What is left (ours, or all of it when the agent is no user of its own). */
        return rm_rf_at(parent_fd, name);
}

/* The directories a borrowed one is checked against, canonical. */
typedef struct BorrowRules {
        char *dirs[3];                  /* every task's worktrees, homes, git directories */
        char *state;
        char *cache;                    /* the owner's clone cache */
} BorrowRules;

static void borrow_rules_done(BorrowRules *b) {
        for (size_t i = 0; i < ELEMENTSOF(b->dirs); i++)
                free(b->dirs[i]);
        free(b->state);
        free(b->cache);
}

static int borrow_rules(const Config *c, const char *owner, BorrowRules *ret) {
        _cleanup_(task_dirs_done) TaskDirs d = {};
        _cleanup_free_ char *cache = NULL;
        BorrowRules b = {};
        int r;

        r = task_dirs(c, &d);
        if (r >= 0)
                r = task_clone_cache(c, owner, &cache);
        if (r >= 0)
                r = path_canonical(d.worktrees, &b.dirs[0]);
        if (r >= 0)
                r = path_canonical(d.homes, &b.dirs[1]);
        if (r >= 0)
                r = path_canonical(d.gits, &b.dirs[2]);
        if (r >= 0)
                r = path_canonical(c->state_dir, &b.state);
        if (r >= 0)
                r = path_canonical(cache, &b.cache);
        if (r < 0) {
                borrow_rules_done(&b);
                return r;
        }
        *ret = b;
        return 0;
}

static bool borrow_allowed(const BorrowRules *b, const char *canonical) {
        /* Objects are files of a file system, not the kernel's views: a
         * repository's alternates naming /proc would bind the host's. */
        FOREACH_STRING(pseudo, "/proc", "/sys", "/dev", "/run")
                if (path_is_under(canonical, pseudo))
                        return false;
        if (streq(canonical, "/"))
                return false;
        for (size_t i = 0; i < ELEMENTSOF(b->dirs); i++)
                if (path_is_under(canonical, b->dirs[i]) || path_is_under(b->dirs[i], canonical))
                        return false;
        /* Of makima's own state, only the owner's clone cache. */
        if ((path_is_under(canonical, b->state) || path_is_under(b->state, canonical)) &&
            !path_is_under(canonical, b->cache))
                return false;
        return true;
}

int task_check_borrowed(const Config *c, const char *owner, char *const *dirs, char **ret_error) {
        _cleanup_(borrow_rules_done) BorrowRules b = {};
        int r;

        r = borrow_rules(c, owner, &b);
        if (r < 0)
                return r;
        for (char *const *d = dirs; d && *d; d++) {
                _cleanup_free_ char *canonical = NULL;

                r = path_canonical(*d, &canonical);
                if (r < 0)
                        return r;
                if (!borrow_allowed(&b, canonical)) {
                        if (ret_error) {
                                free(*ret_error);
                                if (asprintf(ret_error, "the object directory %s is not the task's to borrow", *d) < 0)
                                        *ret_error = NULL;
                        }
                        return -EPERM;
                }
        }
        return 0;
}

int task_borrowed_objects(const Config *c, const char *git_dir, const char *owner, char ***ret, char **ret_error) {
        _cleanup_free_ char *path = NULL, *line = NULL;
        _cleanup_(strv_freep) char **l = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_close_ int git_fd = -EBADF;
        struct stat st;
        size_t n = 0;
        int fd, r;

        r = join(git_dir, "objects/info/alternates", &path);
        if (r < 0)
                return r;
        /* The worker wrote it, in a directory the agent cannot write nor
         * rename; opened all the same as what it is, a regular file reached
         * through no link, and without waiting (a FIFO would hold us). */
        git_fd = open(git_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (git_fd < 0)
                return -errno;
        fd = path_open_beneath(git_fd, "objects/info/alternates", O_RDONLY | O_NONBLOCK | O_NOCTTY, S_IFREG);
        if (fd == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        if (fd < 0) {
                if (ret_error && asprintf(ret_error, "%s is not the file makima wrote", path) < 0)
                        *ret_error = NULL;
                return fd == -ENOMEM ? fd : -EBADMSG;
        }
        if (fstat(fd, &st) < 0 || st.st_size > BORROWED_LIST_MAX) {
                (void) close(fd);
                if (ret_error && asprintf(ret_error, "%s is too large", path) < 0)
                        *ret_error = NULL;
                return -EBADMSG;
        }
        f = fdopen(fd, "re");
        if (!f) {
                r = -errno;
                (void) close(fd);
                return r;
        }
        while (getline(&line, &n, f) > 0) {
                _cleanup_free_ char *canonical = NULL;

                line[strcspn(line, "\r\n")] = '\0';
                if (isempty(line) || line[0] == '#')
                        continue;
                if (line[0] != '/') {
                        if (ret_error && asprintf(ret_error, "%s names a relative path", path) < 0)
                                *ret_error = NULL;
                        return -EBADMSG;
                }
                r = path_canonical(line, &canonical);
                if (r >= 0)
                        r = strv_push(&l, TAKE_PTR(canonical));
                if (r < 0)
                        return r;
        }
        if (ferror(f))
                return -EIO;
        r = task_check_borrowed(c, owner, l, ret_error);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}
