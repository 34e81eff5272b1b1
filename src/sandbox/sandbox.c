/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What an agent's sandbox holds (the policy; sandbox-bwrap.c is the
 * mechanism): a root of its own in which the system is read-only, /dev,
 * /proc and /tmp are fresh, and the only host state in reach is the task's
 * worktree, its own git directory, the objects it borrows, and its home.
 * See sandbox.h for the interface. */

#include <fcntl.h>
#include <sys/stat.h>

#include "log.h"
#include "sandbox.h"
#include "sandbox-bwrap.h"
#include "sandbox-paths.h"
#include "sandbox-task.h"

typedef struct Builder {
        const SandboxParams *p;
        Bwrap bwrap;
        SandboxProgram program;         /* the agent's, and what it needs */
        char **private_paths;           /* canonical: no bind may be one of these or above them */
        char **shared_dirs;             /* canonical: nor inside these (every task's worktree, home, git) */
} Builder;

static void builder_done(Builder *b) {
        bwrap_done(&b->bwrap);
        sandbox_program_done(&b->program);
        strv_free(b->private_paths);
        strv_free(b->shared_dirs);
}

static int strv_add_canonical(char ***l, const char *path) {
        char *t;
        int r;

        r = path_canonical(path, &t);
        if (r < 0)
                return r;
        return strv_push(l, t);
}

int sandbox_private_paths(const Config *c, char ***ret) {
        _cleanup_(strv_freep) char **l = NULL;
        _cleanup_free_ char *dropins = NULL;
        int r;

        r = strv_add_canonical(&l, c->state_dir);
        if (r >= 0 && c->store_path)
                r = strv_add_canonical(&l, c->store_path);
        if (r >= 0)
                r = strv_add_canonical(&l, MAKIMA_CONF_DIR);
        if (r >= 0 && c->config_file) {
                r = strv_add_canonical(&l, c->config_file);
                if (r >= 0 && asprintf(&dropins, "%s.d", c->config_file) < 0)
                        r = -ENOMEM;
                if (r >= 0)
                        r = strv_add_canonical(&l, dropins);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

/* Refuses a bind (from the configuration, or found by us) that would show
 * the agent the state directory or the store, by being one of them or above
 * them; or other tasks' worktrees, homes and git directories, by being
 * anywhere in or above the directories that hold them. */
static int check_exposure(Builder *b, const char *path, const char *what) {
        _cleanup_free_ char *canonical = NULL;
        int r;

        r = path_canonical(path, &canonical);
        if (r < 0)
                return log_error_errno(r, "Failed to resolve %s %s: %m", what, path);
        for (char **i = b->private_paths; i && *i; i++)
                if (path_is_under(*i, canonical))
                        goto refuse;
        for (char **i = b->shared_dirs; i && *i; i++)
                if (path_is_under(*i, canonical) || path_is_under(canonical, *i))
                        goto refuse;
        return 0;

refuse:
        return log_error_errno(EPERM, "%s %s would expose the state directory or other tasks to the agent; refusing.",
                               what, path);
}

static int add_protected(Builder *b) {
        const SandboxParams *p = b->p;
        _cleanup_(task_dirs_done) TaskDirs dirs = {};
        _cleanup_free_ char *wt_parent = path_dirname(p->worktree), *home_parent = path_dirname(p->home);
        int r;

        if (!wt_parent || !home_parent)
                return -ENOMEM;
        r = sandbox_private_paths(p->config, &b->private_paths);
        if (r < 0)
                return r;
        r = task_dirs(p->config, &dirs);
        if (r < 0)
                return r;
        FOREACH_STRING(d, dirs.worktrees, dirs.homes, dirs.gits, wt_parent, home_parent) {
                r = strv_add_canonical(&b->shared_dirs, d);
                if (r < 0)
                        return r;
        }

        /* The task's own directories are bound read-write: they must not
         * hold the state directory or the store either. */
        FOREACH_STRING(d, p->worktree, p->home, p->git_dir ?: p->home) {
                _cleanup_free_ char *canonical = NULL;

                r = path_canonical(d, &canonical);
                if (r < 0)
                        return r;
                for (char **i = b->private_paths; *i; i++)
                        if (path_is_under(*i, canonical))
                                return log_error_errno(EPERM, "%s holds %s; refusing to give it to the agent.", d, *i);
        }
        return 0;
}

static int add_extra_paths(Builder *b, char **paths, const char *what, bool writable) {
        int r;

        for (char **i = paths; i && *i; i++) {
                r = check_exposure(b, *i, what);
                if (r < 0)
                        return r;
                if (access(*i, F_OK) < 0) {
                        log_warning_errno(errno, "%s %s is not there, skipping: %m", what, *i);
                        continue;
                }
                r = bwrap_bind(&b->bwrap, *i, !writable);
                if (r < 0)
                        return log_error_errno(r, "Failed to open %s %s: %m", what, *i);
        }
        return 0;
}

/* The task's own git directory. A commit writes its HEAD, index, refs, logs
 * and objects; its config (config.worktree too), and the list of object
 * directories it borrows, stay read-only: git outside the agent's sandbox
 * (the worker's, in a sandbox of its own) reads both. The worktree's .git
 * file, which says where the git directory is, is read-only too. The
 * borrowed objects — the repository's — are read-only: nothing of the
 * repository can be changed or deleted from here, and no other task's
 * branch is in reach.
 *
 * The agent may write in its git directory, so each of these is opened
 * here beneath it, as what it is (no symbolic link followed), and given to
 * bwrap as an fd; objects/ is a mount of its own, so that the agent cannot
 * rename it (and its read-only info/ with it) to put something of its own
 * in its place for the next sandbox, the worker or makima-api to find. */
static int add_git(Builder *b) {
        const SandboxParams *p = b->p;
        _cleanup_close_ int git_fd = -EBADF, wt_fd = -EBADF;
        _cleanup_free_ char *objects = NULL, *config = NULL, *config_worktree = NULL, *info = NULL, *dotgit = NULL;
        struct {
                int dir_fd;
                const char *name;
                const char *dest;
                mode_t type;
                bool read_only;
        } binds[6];
        int r;

        if (!p->git_dir)
                return 0;
        if (asprintf(&objects, "%s/objects", p->git_dir) < 0 || asprintf(&config, "%s/config", p->git_dir) < 0 ||
            asprintf(&config_worktree, "%s/config.worktree", p->git_dir) < 0 ||
            asprintf(&info, "%s/objects/info", p->git_dir) < 0 || asprintf(&dotgit, "%s/.git", p->worktree) < 0)
                return log_oom();

        for (char **o = p->borrowed; o && *o; o++) {
                r = check_exposure(b, *o, "The borrowed object directory");
                if (r < 0)
                        return r;
                r = bwrap_bind(&b->bwrap, *o, true);
                if (r < 0)
                        return log_error_errno(r, "Failed to open the borrowed object directory %s: %m", *o);
        }

        git_fd = open(p->git_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (git_fd < 0)
                return log_error_errno(errno, "Failed to open the task's git directory %s: %m", p->git_dir);
        wt_fd = open(p->worktree, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (wt_fd < 0)
                return log_error_errno(errno, "Failed to open the task's worktree %s: %m", p->worktree);
        /* Ours, empty, if the repository predates it. */
        r = openat(git_fd, "config.worktree", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
        if (r >= 0)
                (void) close(r);

        binds[0] = (typeof(binds[0])) { git_fd, ".", p->git_dir, S_IFDIR, false };
        binds[1] = (typeof(binds[0])) { git_fd, "objects", objects, S_IFDIR, false };
        binds[2] = (typeof(binds[0])) { git_fd, "objects/info", info, S_IFDIR, true };
        binds[3] = (typeof(binds[0])) { git_fd, "config", config, S_IFREG, true };
        binds[4] = (typeof(binds[0])) { git_fd, "config.worktree", config_worktree, S_IFREG, true };
        binds[5] = (typeof(binds[0])) { wt_fd, ".git", dotgit, S_IFREG, true };
        for (size_t i = 0; i < ELEMENTSOF(binds); i++) {
                int fd = path_open_beneath(binds[i].dir_fd, binds[i].name, O_PATH, binds[i].type);

                if (fd == -ENOENT)
                        return log_error_errno(fd, "%s is missing: the task's repository is not complete.",
                                               binds[i].dest);
                if (IN_SET(fd, -ENOTDIR, -EISDIR, -ELOOP, -EXDEV))
                        return log_error_errno(fd, "%s is not the %s it was made as: the task's repository has "
                                               "been tampered with; refusing to run it.", binds[i].dest,
                                               binds[i].type == S_IFDIR ? "directory" : "file");
                if (fd < 0)
                        return log_error_errno(fd, "Failed to open %s: %m", binds[i].dest);
                r = bwrap_bind_fd(&b->bwrap, fd, binds[i].dest, binds[i].read_only);
                if (r < 0)
                        return log_oom();
        }
        return 0;
}

/* The task's worktree or home: made by the worker, opened as itself. */
static int bind_task_dir(Builder *b, const char *path) {
        int fd;

        fd = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(errno, "Failed to open %s: %m", path);
        return bwrap_bind_fd(&b->bwrap, fd, path, false) < 0 ? log_oom() : 0;
}

/* The agent's program, and what it needs to run. */
static int add_program(Builder *b) {
        int r;

        r = sandbox_program_find(b->p->command[0], &b->program);
        if (r < 0)
                return log_error_errno(r, "Failed to find the agent's program %s: %m", b->p->command[0]);
        return add_extra_paths(b, b->program.read_only, "The agent's program", false);
}

/* A small, fixed environment: nothing of the worker's leaks in by accident. */
static int build_env(Builder *b, const char *shell) {
        Bwrap *w = &b->bwrap;
        _cleanup_free_ char *path = NULL;
        size_t len = strlen(SANDBOX_DEFAULT_PATH) + 1;
        int r;

        for (char **i = b->program.path_dirs; i && *i; i++)
                len += strlen(*i) + 1;
        path = malloc(len);
        if (!path)
                return -ENOMEM;
        path[0] = '\0';
        for (char **i = b->program.path_dirs; i && *i; i++) {
                strcat(path, *i);
                strcat(path, ":");
        }
        strcat(path, SANDBOX_DEFAULT_PATH);

        const char *const base[][2] = {
                { "PATH", path },
                { "HOME", b->p->home },
                { "USER", SANDBOX_USER },
                { "LOGNAME", SANDBOX_USER },
                { "SHELL", shell },
                { "LANG", "C.UTF-8" },
                { "TERM", "dumb" },
        };
        for (size_t i = 0; i < ELEMENTSOF(base); i++) {
                r = bwrap_setenvf(w, base[i][0], base[i][1]);
                if (r < 0)
                        return r;
        }
        /* The worktree and its git directory belong to the worker's user
         * (the agent owns what it makes in them): git, which refuses a
         * repository somebody else owns, is told that this one is fine. */
        if (b->p->git_dir) {
                r = bwrap_setenv(w, "GIT_CONFIG_COUNT=1");
                if (r >= 0)
                        r = bwrap_setenv(w, "GIT_CONFIG_KEY_0=safe.directory");
                if (r >= 0)
                        r = bwrap_setenvf(w, "GIT_CONFIG_VALUE_0", b->p->worktree);
                if (r < 0)
                        return r;
        }
        for (char **i = b->p->config->agent_environment; i && *i; i++) {
                r = bwrap_setenv(w, *i);
                if (r < 0)
                        return r;
        }
        for (char **i = b->p->environment; i && *i; i++) {
                r = bwrap_setenv(w, *i);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int check_params(const SandboxParams *p) {
        const char *dirs[] = { p->worktree, p->home };

        if (!p->config || !p->config->state_dir || !p->config->worker_worktree_dir)
                return log_error_errno(EINVAL, "The sandbox needs a finalized configuration.");
        if (!p->identity)
                return log_error_errno(EINVAL, "The sandbox needs to know who the agent runs as.");
        if (isempty(p->task_id))
                return log_error_errno(EINVAL, "The sandbox needs a task id.");
        if (!p->command || isempty(p->command[0]))
                return log_error_errno(EINVAL, "The sandbox needs a command to run.");
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                struct stat st;

                if (!dirs[i] || dirs[i][0] != '/')
                        return log_error_errno(EINVAL, "The sandbox needs absolute worktree and home paths.");
                if (stat(dirs[i], &st) < 0)
                        return log_error_errno(errno, "Failed to stat %s: %m", dirs[i]);
                if (!S_ISDIR(st.st_mode))
                        return log_error_errno(ENOTDIR, "%s is not a directory.", dirs[i]);
        }
        if (p->git_dir && p->git_dir[0] != '/')
                return log_error_errno(EINVAL, "The sandbox needs an absolute git directory.");
        return 0;
}

static int build_unsandboxed(Builder *b, SandboxCommand *ret) {
        _cleanup_free_ char *program = NULL, *cwd = NULL;
        _cleanup_(strv_freep) char **argv = NULL;
        int r;

        log_warning("[Sandbox] Enabled=no: task %s runs unsandboxed, with all the rights of the worker.",
                    b->p->task_id);
        r = sandbox_find_executable(b->p->command[0], NULL, &program);
        if (r < 0)
                return log_error_errno(r, "Failed to find the agent's program '%s': %m", b->p->command[0]);
        r = strv_push(&argv, TAKE_PTR(program));
        for (char **i = b->p->command + 1; r >= 0 && *i; i++)
                r = strv_extend(&argv, *i);
        if (r >= 0)
                r = build_env(b, "/bin/sh");
        if (r < 0)
                return log_oom();
        cwd = strdup(b->p->worktree);
        if (!cwd)
                return log_oom();
        *ret = (SandboxCommand) {
                .argv = TAKE_PTR(argv),
                .envp = TAKE_PTR(b->bwrap.env),
                .cwd = TAKE_PTR(cwd),
        };
        return 0;
}

int sandbox_build(const SandboxParams *p, SandboxCommand *ret) {
        _cleanup_(builder_done) Builder b = { .p = p };
        _cleanup_free_ char *resolv = NULL;
        _cleanup_(strv_freep) char **command = NULL;
        const Config *c = p->config;
        const char *shell = access("/bin/bash", X_OK) >= 0 ? "/bin/bash" : "/bin/sh";
        char hostname[sizeof("makima-") + 8];
        size_t k;
        int r;

        r = check_params(p);
        if (r < 0)
                return r;
        r = add_protected(&b);
        if (r == -EPERM)
                return r;
        if (r < 0)
                return log_error_errno(r, "Failed to resolve the state directory: %m");

        if (!c->sandbox_enabled)
                return build_unsandboxed(&b, ret);

        k = strlen(strcpy(hostname, "makima-"));
        for (const char *s = p->task_id; *s && k < sizeof(hostname) - 1; s++)
                if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9'))
                        hostname[k++] = *s;
        hostname[k] = '\0';

        r = bwrap_init(&b.bwrap, p->bwrap, p->identity, hostname, c->sandbox_network);
        if (r == -ENOPKG) {
                log_error("%s", SANDBOX_BWRAP_MISSING);
                return r;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to start the sandbox's command line: %m");

        r = bwrap_system(&b.bwrap, b.private_paths);
        if (r < 0)
                return log_error_errno(r, "Failed to bind the system into the sandbox: %m");
        r = bwrap_user_database(&b.bwrap, p->home, shell);
        if (r < 0)
                return log_error_errno(r, "Failed to write the sandbox's passwd and group: %m");
        r = bwrap_api_filesystems(&b.bwrap);
        if (r < 0)
                return log_oom();
        /* resolv.conf often points into /run (systemd-resolved's stub). */
        resolv = realpath("/etc/resolv.conf", NULL);
        if (c->sandbox_network && resolv && !path_in_system(resolv)) {
                r = bwrap_bind(&b.bwrap, resolv, true);
                if (r < 0)
                        return log_error_errno(r, "Failed to open %s: %m", resolv);
        }

        /* Writable extras first: a read-only bind inside one still wins. */
        r = add_extra_paths(&b, c->sandbox_read_write_paths, "ReadWritePaths=", true);
        if (r < 0)
                return r;
        r = add_extra_paths(&b, c->sandbox_read_only_paths, "ReadOnlyPaths=", false);
        if (r < 0)
                return r;
        r = add_extra_paths(&b, p->read_only_paths, "Read-only path", false);
        if (r < 0)
                return r;
        r = add_program(&b);
        if (r < 0)
                return r;

        r = bind_task_dir(&b, p->worktree);
        if (r < 0)
                return r;
        r = add_git(&b);
        if (r < 0)
                return r;
        r = bind_task_dir(&b, p->home);
        if (r < 0)
                return r;

        if (!p->no_seccomp) {
                r = bwrap_seccomp(&b.bwrap);
                if (r < 0)
                        return log_error_errno(r, "Failed to build the seccomp filter: %m");
        } else
                log_warning("The seccomp filter is off for task %s (debugging only).", p->task_id);

        r = strv_extend(&command, b.program.path);
        for (char **i = p->command + 1; r >= 0 && *i; i++)
                r = strv_extend(&command, *i);
        if (r >= 0)
                r = build_env(&b, shell);
        if (r >= 0)
                r = bwrap_finish(&b.bwrap, p->worktree, command, ret);
        if (r < 0)
                return log_oom();
        return 0;
}
