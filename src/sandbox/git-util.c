/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The git operations of git-util.h: the clone cache, a task's own
 * repository, diffs and fingerprints, each a few runs of git in its sandbox
 * (git-run.c), which binds exactly what the operation reads and writes.
 * Files makima reads or writes itself are opened with openat2() and
 * RESOLVE_BENEATH where an agent could have planted a symlink. */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "git-run.h"
#include "git-util.h"
#include "git-util-internal.h"
#include "sandbox-paths.h"
#include "sandbox-task.h"
#include "sha256.h"

/* How deep a chain of borrowed object directories is followed (git's own limit). */
/* Alternates and shallow files are a few lines; more is not one of git's. */
#define ALTERNATES_MAX_BYTES (64U * 1024U)
#define SHALLOW_MAX_BYTES (16U * 1024U * 1024U)
#define ALTERNATES_DEPTH_MAX 5

bool git_repo_is_url(const char *s) {
        static const char *const schemes[] = {
                "https://", "http://", "ssh://", "git://", "file://", "git+ssh://", "ssh+git://",
        };
        const char *colon;
        size_t host;

        if (isempty(s))
                return false;
        for (size_t i = 0; i < ELEMENTSOF(schemes); i++)
                if (startswith(s, schemes[i]))
                        return s[strlen(schemes[i])] != '\0';

        /* scp-like [user@]host:path, as git reads it: a colon before any
         * slash. The host part is kept to plain characters so that no
         * "transport::address" form gets through. */
        colon = strchr(s, ':');
        if (!colon || colon == s || colon[1] == '\0' || colon[1] == ':')
                return false;
        host = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_@[]");
        return s + host == colon;
}

static int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1;; s++) {
                bool end = *s == '\0';

                if (!end && *s != '/')
                        continue;
                *s = '\0';
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                if (end)
                        break;
                *s = '/';
        }
        return 0;
}

int git_open_beneath(int dir_fd, const char *path, int flags) {
        struct open_how how = {
                .flags = (uint64_t) (flags | O_CLOEXEC),
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        long fd;

        fd = syscall(SYS_openat2, dir_fd, path, &how, sizeof how);
        return fd < 0 ? -errno : (int) fd;
}

/* What a repository (the user's, or the agent's) holds, read on the host:
 * a regular file at path, reached through no link at all (path's
 * directories are canonical already), not waited on (a FIFO), not more than
 * max bytes. */
static int read_file(const char *path, size_t max, char **ret) {
        _cleanup_close_ int fd = -EBADF;
        GitOutput o = { .max = max };
        char buf[4096];
        ssize_t n;

        fd = path_open_canonical(path, O_RDONLY | O_NOCTTY | O_NONBLOCK, S_IFREG);
        if (fd < 0)
                return fd == -ENOTDIR || fd == -EISDIR || fd == -ELOOP ? -EBADFD : fd;
        while ((n = read(fd, buf, sizeof buf)) > 0)
                if (git_output_append(&o, buf, (size_t) n) < 0) {
                        git_output_done(&o);
                        return -ENOMEM;
                }
        if (n < 0 || o.truncated || git_output_append(&o, "", 0) < 0) {
                git_output_done(&o);
                return n < 0 ? -errno : o.truncated ? -EFBIG : -ENOMEM;
        }
        *ret = o.data;
        return 0;
}

static int read_first_line(const char *path, char **ret) {
        char *text = NULL;
        int r;

        r = read_file(path, 4096, &text);
        if (r < 0)
                return r;
        text[strcspn(text, "\r\n")] = '\0';
        *ret = text;
        return 0;
}

/* Whether the caller may have git read canonical (a path of a repository's,
 * resolved): with allowed roots (an owner's grants), only in one of them. */
static bool path_allowed(const GitContext *ctx, const char *canonical) {
        if (!ctx->allowed_roots)
                return true;
        for (char *const *a = ctx->allowed_roots; *a; a++)
                if (path_is_under(canonical, *a))
                        return true;
        return false;
}

/* The one answer for a repository that leads out of what is allowed: it
 * says nothing of what lies there, nor whether anything does. */
static int not_allowed(char **ret_error, const char *repo) {
        return git_set_error(ret_error, -EPERM, "'%s' leads beyond the paths granted for it", repo);
}

static int join(const char *dir, const char *rel, char **ret) {
        if (rel[0] == '/')
                return path_normalize(rel, ret);
        _cleanup_free_ char *t = NULL;
        if (asprintf(&t, "%s/%s", dir, rel) < 0)
                return -ENOMEM;
        return path_normalize(t, ret);
}

static bool is_bare_repository(const char *dir) {
        _cleanup_free_ char *head = NULL, *objects = NULL, *refs = NULL;

        if (join(dir, "HEAD", &head) < 0 || join(dir, "objects", &objects) < 0 || join(dir, "refs", &refs) < 0)
                return false;
        return access(head, F_OK) >= 0 && access(objects, F_OK) >= 0 && access(refs, F_OK) >= 0;
}

/* What git discovery would find from dir, done by hand: the nearest
 * directory up that has a .git or is a bare repository. Found on the host
 * because git's sandbox must be given the repository to look into. */
static int find_repository_top(const GitContext *ctx, const char *dir, char **ret, bool *ret_bare) {
        _cleanup_free_ char *d = strdup(dir);

        if (!d)
                return -ENOMEM;
        for (;;) {
                _cleanup_free_ char *dotgit = NULL;

                /* Not up out of what the caller may use: there is no repository. */
                if (!path_allowed(ctx, d))
                        return -EINVAL;

                if (join(d, ".git", &dotgit) < 0)
                        return -ENOMEM;
                if (access(dotgit, F_OK) >= 0) {
                        *ret_bare = false;
                        break;
                }
                if (is_bare_repository(d)) {
                        *ret_bare = true;
                        break;
                }
                if (streq(d, "/"))
                        return -EINVAL;
                char *up = path_dirname(d);
                if (!up)
                        return -ENOMEM;
                free_and_replace(d, up);
        }
        *ret = TAKE_PTR(d);
        return 0;
}

/* The paths git must read for the repository at top: top itself, and where
 * a .git file leads (a linked worktree's or --separate-git-dir's git
 * directory, and its common directory). */
static int repository_paths(const GitContext *ctx, const char *top, char ***ret, char **ret_error) {
        _cleanup_(strv_freep) char **l = NULL;
        _cleanup_free_ char *dotgit = NULL, *line = NULL, *gitdir = NULL, *commondir_file = NULL, *rel = NULL,
                            *common = NULL, *spelled = NULL;
        struct stat st;
        int r;

        if (!path_allowed(ctx, top))
                return not_allowed(ret_error, top);
        r = strv_extend(&l, top);
        if (r < 0 || join(top, ".git", &dotgit) < 0)
                return -ENOMEM;
        if (lstat(dotgit, &st) >= 0 && S_ISREG(st.st_mode) && read_first_line(dotgit, &line) >= 0 &&
            startswith(line, "gitdir: ")) {
                /* Where it leads is checked before anything there is looked at. */
                r = join(top, line + strlen("gitdir: "), &spelled);
                if (r >= 0)
                        r = path_canonical(spelled, &gitdir);
                if (r == -ENOMEM)
                        return r;
                if (r < 0 || !path_allowed(ctx, gitdir))
                        return not_allowed(ret_error, top);
                if (!path_is_under(gitdir, top) && (r = strv_extend(&l, gitdir)) < 0)
                        return r;
                if (join(gitdir, "commondir", &commondir_file) < 0)
                        return -ENOMEM;
                if (read_first_line(commondir_file, &rel) >= 0) {
                        spelled = mfree(spelled);
                        r = join(gitdir, rel, &spelled);
                        if (r >= 0)
                                r = path_canonical(spelled, &common);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0 || !path_allowed(ctx, common))
                                return not_allowed(ret_error, top);
                        if (!path_is_under(common, top) && !path_is_under(common, gitdir) &&
                            (r = strv_extend(&l, common)) < 0)
                                return r;
                }
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* A jail that reads a repository of the user's: its paths, trusted as
 * safe.directory though somebody else owns them. */
typedef struct RepoJail {
        GitJail jail;
        char **paths;
} RepoJail;

static void repo_jail_done(RepoJail *j) {
        strv_free(j->paths);
}

int git_repo_paths(const GitContext *ctx, const char *top, char ***ret, char **ret_error) {
        return repository_paths(ctx, top, ret, ret_error);
}

static int repo_jail(const GitContext *ctx, const char *top, RepoJail *ret, char **ret_error) {
        int r;

        *ret = (RepoJail) {};
        r = repository_paths(ctx, top, &ret->paths, ret_error);
        if (r < 0)
                return r;
        ret->jail = (GitJail) {
                .context = ctx,
                .read_only = ret->paths,
                .safe = ret->paths,
        };
        return 0;
}

static int resolve_local(const GitContext *ctx, const char *repo, char **ret_path, char **ret_error) {
        _cleanup_(repo_jail_done) RepoJail j = {};
        _cleanup_free_ char *real = NULL, *top = NULL, *answer = NULL, *complaint = NULL;
        bool bare = false;
        struct stat st;
        int r;

        real = realpath(repo, NULL);
        if (!real) {
                r = -errno;
                if (r == -ENOENT)
                        return git_set_error(ret_error, r, "repository '%s' does not exist", repo);
                return git_set_error(ret_error, r, "cannot resolve repository '%s': %s", repo, strerror(-r));
        }
        if (stat(real, &st) < 0)
                return git_set_error(ret_error, -errno, "cannot stat repository '%s': %m", repo);
        if (!S_ISDIR(st.st_mode))
                return git_set_error(ret_error, -ENOTDIR, "'%s' is not a git repository", repo);
        r = find_repository_top(ctx, real, &top, &bare);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return git_set_error(ret_error, -EINVAL, "'%s' is not a git repository", repo);

        /* git, in its sandbox as the agent's user, must agree: this also
         * tells early when that user cannot read the repository. */
        r = repo_jail(ctx, top, &j, ret_error);
        if (r < 0)
                return r;
        r = git_out(&j.jail, top, GIT_ARGV("rev-parse", bare ? "--absolute-git-dir" : "--show-toplevel"), &answer,
                    &complaint);
        if (r == -EIO && strstr(strempty(complaint), "not a git repository"))
                return git_set_error(ret_error, -EINVAL, "'%s' is not a git repository", repo);
        if (r == -EIO)
                return git_set_error(ret_error, -EINVAL, "'%s' is not a usable git repository: %s", repo,
                                     strempty(complaint));
        if (r < 0)
                return git_set_error(ret_error, r, "%s", strempty(complaint));
        if (!streq(answer, top))
                return git_set_error(ret_error, -EINVAL, "'%s' is not a usable git repository: git found %s", repo,
                                     answer);
        *ret_path = TAKE_PTR(top);
        return 0;
}

/* The jail of a clone-cache repository: the caller's own, with the network. */
static GitJail cache_jail(const GitContext *ctx, char *const *rw, char *const *ro, bool caller_home) {
        return (GitJail) {
                .context = ctx,
                .as_caller = true,
                .read_write = rw,
                .read_only = ro,
                .network = true,
                .caller_home = caller_home,
        };
}

/* A clone-cache entry is a bare repository whose remote branches stay
 * under refs/remotes/origin/, readable by the agents' group (they borrow
 * its objects), never gc'ed (tasks borrow what it has, reachable or not). */
static int clone_into(const GitJail *jail, const char *dir, const char *url, char **ret_error) {
        _cleanup_free_ char *head = NULL, *ref = NULL;
        int r;

        r = git_out(jail, dir, GIT_ARGV("init", "--bare", "-q", "--shared=0640", "--template=", "."), NULL, ret_error);
        if (r >= 0)
                r = git_out(jail, dir, GIT_ARGV("config", "remote.origin.url", url), NULL, ret_error);
        if (r >= 0)
                r = git_out(jail, dir,
                            GIT_ARGV("config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"), NULL,
                            ret_error);
        if (r >= 0)
                r = git_out(jail, dir, GIT_ARGV("config", "gc.auto", "0"), NULL, ret_error);
        if (r >= 0)
                r = git_out(jail, dir, GIT_ARGV("fetch", "-q", "--prune", "--tags", "origin"), NULL, ret_error);
        if (r < 0)
                return r;

        /* HEAD names the remote's default branch for git_default_branch(). An
         * empty remote has none; then init's default stays. */
        r = git_probe(jail, dir, GIT_ARGV("remote", "set-head", "origin", "--auto"), NULL, NULL);
        if (r <= 0)
                return 0;
        r = git_out(jail, dir, GIT_ARGV("symbolic-ref", "--short", "refs/remotes/origin/HEAD"), &head, ret_error);
        if (r < 0)
                return r;
        if (asprintf(&ref, "refs/heads/%s", startswith(head, "origin/") ?: head) < 0)
                return -ENOMEM;
        return git_out(jail, dir, GIT_ARGV("symbolic-ref", "HEAD", ref), NULL, ret_error);
}

/* What git made in a clone-cache repository, readable by the agents' group
 * (they borrow its objects): git in its sandbox, where that group is not
 * mapped, cannot keep the group's set-group-ID bit on the directories it
 * makes or changes, so their group would be the caller's own. Every file
 * here is the caller's (no agent writes to the cache). */
static int cache_share(int dir_fd, gid_t gid, unsigned depth) {
        _cleanup_(closedirp) DIR *d = NULL;
        int fd, r = 0;

        if (depth > 16)
                return -ELOOP;
        fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                (void) close(fd);
                return -errno;
        }
        for (struct dirent *de; (de = readdir(d));) {
                struct stat st;
                int k = 0;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
                        continue;
                if (st.st_gid != gid && fchownat(dirfd(d), de->d_name, (uid_t) -1, gid, AT_SYMLINK_NOFOLLOW) < 0)
                        k = -errno;
                if (k >= 0 && S_ISDIR(st.st_mode)) {
                        _cleanup_close_ int sub = openat(dirfd(d), de->d_name,
                                                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

                        if (sub < 0 || fchmod(sub, (st.st_mode & 07777) | S_ISGID | S_IRGRP | S_IXGRP) < 0)
                                k = -errno;
                        else
                                k = cache_share(sub, gid, depth + 1);
                } else if (k >= 0 && (st.st_mode & S_IRGRP) == 0 &&
                           fchmodat(dirfd(d), de->d_name, (st.st_mode & 07777) | S_IRGRP, 0) < 0)
                        k = -errno;
                if (k < 0 && r == 0)
                        r = k;
        }
        return r;
}

static int cache_share_path(const GitContext *ctx, const char *path, char **ret_error) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!ctx->agent || !ctx->agent->separate)
                return 0;
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return git_set_error(ret_error, -errno, "cannot open '%s': %m", path);
        r = cache_share(fd, ctx->agent->gid, 0);
        if (r < 0)
                return git_set_error(ret_error, r, "cannot give '%s' to the agents' group: %s", path, strerror(-r));
        return 0;
}

static int resolve_url(const GitContext *ctx, const char *url, const char *cache_dir, char **ret_path,
                       char **ret_error) {
        _cleanup_free_ char *path = NULL, *lock = NULL, *tmp = NULL, *local = NULL;
        _cleanup_close_ int lock_fd = -EBADF;
        char hex[SHA256_HEX_SIZE];
        char *rw[2] = {}, *ro[2] = {};
        bool ssh;
        struct stat st;
        GitJail jail;
        int r;

        if (isempty(cache_dir))
                return git_set_error(ret_error, -EINVAL, "no clone cache directory for '%s'", url);
        r = mkdir_p(cache_dir, 0750);
        if (r < 0)
                return git_set_error(ret_error, r, "cannot create '%s': %s", cache_dir, strerror(-r));
        sha256_hex(url, strlen(url), hex);
        if (asprintf(&path, "%s/%s", cache_dir, hex) < 0 || asprintf(&lock, "%s.lock", path) < 0 ||
            asprintf(&tmp, "%s/.%s.XXXXXX", cache_dir, hex) < 0)
                return -ENOMEM;

        /* A file:// URL is a path of this machine: git must see it (read-only). */
        if (startswith(url, "file://")) {
                r = path_normalize(url + strlen("file://"), &local);
                if (r < 0)
                        return git_set_error(ret_error, -EINVAL, "'%s' is not a file:// URL of an absolute path", url);
                ro[0] = local;
        }
        /* ssh needs the caller's keys and known hosts. */
        ssh = startswith(url, "ssh://") || startswith(url, "git+ssh://") || startswith(url, "ssh+git://") ||
              !strstr(url, "://");
        rw[0] = (char *) cache_dir;
        jail = cache_jail(ctx, rw, ro, ssh);

        /* Workers that want the same repository take turns: two clones would
         * waste the work, two fetches would fight over ref locks. */
        lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (lock_fd < 0)
                return git_set_error(ret_error, -errno, "cannot open '%s': %m", lock);
        while (flock(lock_fd, LOCK_EX) < 0)
                if (errno != EINTR)
                        return git_set_error(ret_error, -errno, "cannot lock '%s': %m", lock);

        if (stat(path, &st) >= 0) {
                r = git_out(&jail, path, GIT_ARGV("fetch", "-q", "--prune", "--tags", "origin"), NULL, ret_error);
                if (r >= 0)
                        r = cache_share_path(ctx, path, ret_error);
                if (r < 0)
                        return r;
                *ret_path = TAKE_PTR(path);
                return 0;
        }
        if (errno != ENOENT)
                return git_set_error(ret_error, -errno, "cannot stat '%s': %m", path);

        /* Cloned under a temporary name and renamed when complete, so that a
         * crash never leaves a half clone under the real one. The agents'
         * group reads it (the cache directory is set-group-ID). */
        if (!mkdtemp(tmp))
                return git_set_error(ret_error, -errno, "cannot create a directory in '%s': %m", cache_dir);
        r = chmod(tmp, 02750) < 0 ? -errno : 0;
        if (r >= 0)
                r = clone_into(&jail, tmp, url, ret_error);
        if (r >= 0)
                r = cache_share_path(ctx, tmp, ret_error);
        if (r >= 0 && rename(tmp, path) < 0)
                r = git_set_error(ret_error, -errno, "cannot rename '%s' to '%s': %m", tmp, path);
        if (r < 0) {
                (void) rm_rf_at(AT_FDCWD, tmp);
                return r;
        }
        *ret_path = TAKE_PTR(path);
        return 0;
}

int git_resolve_repo(const GitContext *ctx, const char *repo, const char *cache_dir, char **ret_path,
                     char **ret_error) {
        if (isempty(repo))
                return git_set_error(ret_error, -EINVAL, "no repository given");
        if (git_repo_is_url(repo))
                return resolve_url(ctx, repo, cache_dir, ret_path, ret_error);
        return resolve_local(ctx, repo, ret_path, ret_error);
}

int git_default_branch(const GitContext *ctx, const char *repo_path, char **ret_branch, char **ret_error) {
        _cleanup_(repo_jail_done) RepoJail j = {};
        _cleanup_free_ char *branch = NULL;
        int r;

        r = repo_jail(ctx, repo_path, &j, ret_error);
        if (r < 0)
                return r;
        r = git_probe(&j.jail, repo_path, GIT_ARGV("symbolic-ref", "--short", "-q", "HEAD"), &branch, ret_error);
        if (r < 0)
                return r;
        if (r == 0 || isempty(branch))
                return git_set_error(ret_error, -ENOENT, "HEAD of %s is not on a branch", repo_path);
        *ret_branch = TAKE_PTR(branch);
        return 0;
}

static int add_object_dirs(const GitContext *ctx, char ***l, const char *objects, unsigned depth) {
        _cleanup_free_ char *canonical = NULL, *alternates = NULL, *text = NULL;
        char *save = NULL;
        int r;

        r = path_canonical(objects, &canonical);
        if (r < 0)
                return r;
        if (!path_allowed(ctx, canonical))
                return -EPERM;
        for (char **i = *l; i && *i; i++)
                if (streq(*i, canonical))
                        return 0;
        r = strv_extend(l, canonical);
        if (r < 0 || depth >= ALTERNATES_DEPTH_MAX)
                return r;
        if (join(canonical, "info/alternates", &alternates) < 0)
                return -ENOMEM;
        r = read_file(alternates, ALTERNATES_MAX_BYTES, &text);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        for (char *line = strtok_r(text, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
                _cleanup_free_ char *dir = NULL;

                if (isempty(line) || line[0] == '#')
                        continue;
                r = join(canonical, line, &dir);
                if (r < 0)
                        return r;
                r = add_object_dirs(ctx, l, dir, depth + 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

int git_repo_object_dirs(const GitContext *ctx, const char *repo_path, char ***ret, char **ret_error) {
        _cleanup_(repo_jail_done) RepoJail j = {};
        _cleanup_(strv_freep) char **l = NULL;
        _cleanup_free_ char *common = NULL, *objects = NULL;
        int r;

        r = repo_jail(ctx, repo_path, &j, ret_error);
        if (r < 0)
                return r;
        r = git_out(&j.jail, repo_path, GIT_ARGV("rev-parse", "--path-format=absolute", "--git-common-dir"), &common,
                    ret_error);
        if (r < 0)
                return r;
        if (join(common, "objects", &objects) < 0)
                return -ENOMEM;
        r = add_object_dirs(ctx, &l, objects, 0);
        if (r == -EPERM)
                return not_allowed(ret_error, repo_path);
        if (r < 0)
                return git_set_error(ret_error, r, "cannot read the object directories of %s: %s", repo_path,
                                     strerror(-r));
        *ret = TAKE_PTR(l);
        return 0;
}

/* What git takes for a commit: a branch, tag or commit id; then, for a
 * clone-cache repository whose branches live there, origin/<base>. With
 * ret_branch, the branch it names, if it is one (without refs/heads/ or
 * refs/remotes/origin/), else NULL. */
static int resolve_base(const GitJail *jail, const char *dir, const char *base, char **ret_commit, char **ret_branch,
                        char **ret_error) {
        int r;

        for (unsigned i = 0; i < 2 && !isempty(base) && base[0] != '-'; i++) {
                _cleanup_free_ char *rev = NULL, *commit = NULL, *name = NULL, *full = NULL;
                const char *b;

                if (asprintf(&rev, i == 0 ? "%s^{commit}" : "origin/%s^{commit}", base) < 0)
                        return -ENOMEM;
                r = git_probe(jail, dir, GIT_ARGV("rev-parse", "--verify", "-q", rev), &commit, ret_error);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                if (ret_branch) {
                        if (asprintf(&name, i == 0 ? "%s" : "origin/%s", base) < 0)
                                return -ENOMEM;
                        r = git_probe(jail, dir, GIT_ARGV("rev-parse", "--symbolic-full-name", name), &full, NULL);
                        b = r > 0 ? startswith(strempty(full), "refs/heads/") ?: startswith(strempty(full), "refs/remotes/origin/")
                                  : NULL;
                        *ret_branch = isempty(b) ? NULL : strdup(b);
                        if (!isempty(b) && !*ret_branch)
                                return -ENOMEM;
                }
                *ret_commit = TAKE_PTR(commit);
                return 0;
        }
        return git_set_error(ret_error, -ENOENT, "base branch '%s' does not exist in %s", strempty(base), dir);
}

/* A copy_files entry: relative, and every component a real name. */
static bool path_is_safe_relative(const char *p) {
        if (isempty(p) || p[0] == '/')
                return false;
        for (const char *c = p; *c;) {
                size_t n = strcspn(c, "/");

                if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && strneq(c, "..", 2)))
                        return false;
                c += n + (c[n] == '/');
                if (c[-1] == '/' && *c == '\0')
                        return false;
        }
        return true;
}

/* Writes a file the worker owns into a directory of the task's (dir_fd;
 * dir names it in messages): the agent's group may read it, nobody else;
 * replaces what is there. Nothing is followed: the new file is made in the
 * directory itself and renamed over the name. */
static int write_worker_file_at(int dir_fd, const char *dir, const char *name, const char *text, char **ret_error) {
        _cleanup_close_ int fd = -EBADF;
        char tmp[64];
        size_t n = strlen(text);
        int r;

        for (unsigned i = 0;; i++) {
                uint64_t random_bits;

                if (getrandom(&random_bits, sizeof random_bits, 0) != sizeof random_bits)
                        return git_set_error(ret_error, -errno, "cannot get random bytes: %m");
                (void) snprintf(tmp, sizeof tmp, ".%s.makima-%016" PRIx64, name, random_bits);
                fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0640);
                if (fd >= 0)
                        break;
                if (errno != EEXIST || i >= 16)
                        return git_set_error(ret_error, -errno, "cannot create '%s/%s': %m", dir, tmp);
        }
        if (write(fd, text, n) != (ssize_t) n || fchmod(fd, 0640) < 0 || renameat(dir_fd, tmp, dir_fd, name) < 0) {
                r = -errno;
                (void) unlinkat(dir_fd, tmp, 0);
                return git_set_error(ret_error, r ?: -EIO, "cannot write '%s/%s': %s", dir, name, strerror(-r ?: EIO));
        }
        return 0;
}

/* The task's git directory, as itself, and its objects/info, as what it is:
 * a directory, no link followed on the way. */
static int open_task_git(const GitTaskRepo *t, int *ret_git_fd, int *ret_info_fd, char **ret_error) {
        _cleanup_close_ int git_fd = -EBADF;
        int info_fd;

        git_fd = open(t->git_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (git_fd < 0)
                return git_set_error(ret_error, -errno, "cannot open '%s': %m", t->git_dir);
        info_fd = path_open_beneath(git_fd, "objects/info", O_PATH | O_DIRECTORY, S_IFDIR);
        if (info_fd < 0)
                return git_set_error(ret_error, info_fd, "'%s/objects/info' is not the directory makima made: %s",
                                     t->git_dir, strerror(-info_fd));
        *ret_git_fd = TAKE_FD(git_fd);
        *ret_info_fd = info_fd;
        return 0;
}

/* The task's own config: nothing of the repository's (no filter, no
 * textconv, no remote), nothing the agent can change (its sandbox has it
 * read-only). */
static const char task_config[] =
        "[core]\n"
        "\trepositoryformatversion = 0\n"
        "\tfilemode = true\n"
        "\tbare = false\n"
        "\tlogallrefupdates = true\n"
        "[gc]\n"
        "\tauto = 0\n";

/* The files of the task's git directory that git reads as config, each
 * ours and read-only in the agent's sandbox: config.worktree stays empty,
 * so that an agent that could turn extensions.worktreeConfig on would still
 * find nothing of its own there. */
static int write_task_config(int git_fd, const GitTaskRepo *t, char **ret_error) {
        int r;

        r = write_worker_file_at(git_fd, t->git_dir, "config", task_config, ret_error);
        if (r >= 0)
                r = write_worker_file_at(git_fd, t->git_dir, "config.worktree", "", ret_error);
        return r;
}

static int write_borrowed(int info_fd, const GitTaskRepo *t, char **ret_error) {
        _cleanup_free_ char *text = NULL, *dir = NULL;
        size_t len = 1;

        for (char *const *o = t->borrowed; o && *o; o++)
                len += strlen(*o) + 1;
        text = malloc(len);
        if (!text || asprintf(&dir, "%s/objects/info", t->git_dir) < 0)
                return -ENOMEM;
        text[0] = '\0';
        for (char *const *o = t->borrowed; o && *o; o++) {
                strcat(text, *o);
                strcat(text, "\n");
        }
        return write_worker_file_at(info_fd, dir, "alternates", text, ret_error);
}

/* On a restart: the config ours again, the borrowed list true again. */
static int rewrite_task_files(const GitTaskRepo *t, char **ret_error) {
        _cleanup_close_ int git_fd = -EBADF, info_fd = -EBADF;
        int r;

        r = open_task_git(t, &git_fd, &info_fd, ret_error);
        if (r >= 0)
                r = write_task_config(git_fd, t, ret_error);
        if (r >= 0)
                r = write_borrowed(info_fd, t, ret_error);
        return r;
}

/* The same command with --git-dir= and --work-tree= in front, and the git
 * directory as its own common directory: a "commondir" file the agent
 * wrote there (it may write in its git directory) would send git to a
 * config, refs and objects of the agent's making. */
static int task_git(const GitJail *jail, const GitTaskRepo *t, const char *const *argv, char *const *env,
                    size_t max_stdout, GitOutput *out, char **ret_error) {
        _cleanup_free_ char *gd = NULL, *wt = NULL, *common = NULL;
        _cleanup_free_ const char **full = NULL;
        _cleanup_free_ char **all_env = NULL;
        size_t n = 0, k = 0, n_env = 0;

        while (argv[n])
                n++;
        while (env && env[n_env])
                n_env++;
        full = calloc(n + 3, sizeof(char *));
        all_env = calloc(n_env + 2, sizeof(char *));
        if (!full || !all_env || asprintf(&gd, "--git-dir=%s", t->git_dir) < 0 ||
            asprintf(&wt, "--work-tree=%s", t->worktree) < 0 || asprintf(&common, "GIT_COMMON_DIR=%s", t->git_dir) < 0)
                return -ENOMEM;
        full[k++] = gd;
        full[k++] = wt;
        for (size_t i = 0; i < n; i++)
                full[k++] = argv[i];
        for (size_t i = 0; i < n_env; i++)
                all_env[i] = env[i];
        all_env[n_env] = common;
        return git_capture(jail, t->worktree, full, all_env, max_stdout, out, ret_error);
}

static int task_git_out(const GitJail *jail, const GitTaskRepo *t, const char *const *argv, char **ret_stdout,
                        char **ret_error) {
        GitOutput out = {};

        return git_output_finish(task_git(jail, t, argv, NULL, 0, &out, ret_error), &out, ret_stdout);
}

static int task_repo_exists(const GitTaskRepo *t, char **ret_error) {
        _cleanup_free_ char *head = NULL, *dotgit = NULL, *line = NULL, *want = NULL;
        struct stat st;

        if (asprintf(&head, "%s/HEAD", t->git_dir) < 0 || asprintf(&dotgit, "%s/.git", t->worktree) < 0 ||
            asprintf(&want, "gitdir: %s", t->git_dir) < 0)
                return -ENOMEM;
        if (lstat(dotgit, &st) < 0) {
                if (errno != ENOENT)
                        return git_set_error(ret_error, -errno, "cannot stat '%s': %m", dotgit);
                return access(head, F_OK) >= 0 ? git_set_error(ret_error, -EEXIST,
                                                               "'%s' has no .git file, but the task's git directory "
                                                               "%s exists", t->worktree, t->git_dir)
                                                 : 0;
        }
        if (!S_ISREG(st.st_mode) || read_first_line(dotgit, &line) < 0 || !streq(line, want))
                return git_set_error(ret_error, -EEXIST,
                                     "'%s' is a worktree of another repository (made by an older makima?), not of "
                                     "the task's own %s; remove it to start the task afresh", t->worktree, t->git_dir);
        if (access(head, F_OK) < 0)
                return git_set_error(ret_error, -EEXIST, "'%s' names %s, which is not a git directory", dotgit,
                                     t->git_dir);
        return 1;
}

/* A shallow repository's boundary goes with its objects: without it, git
 * would find parents missing. The first borrowed directory is the
 * repository's own objects/. */
static int copy_shallow(int git_fd, const GitTaskRepo *t, char **ret_error) {
        _cleanup_free_ char *common = NULL, *from = NULL, *text = NULL;
        int r;

        if (!t->borrowed || !t->borrowed[0])
                return 0;
        common = path_dirname(t->borrowed[0]);
        if (!common || asprintf(&from, "%s/shallow", common) < 0)
                return -ENOMEM;
        r = read_file(from, SHALLOW_MAX_BYTES, &text);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return git_set_error(ret_error, r, "cannot read '%s': %s", from, strerror(-r));
        return write_worker_file_at(git_fd, t->git_dir, "shallow", text, ret_error);
}

int git_task_repo_prepare(const GitContext *ctx, const GitTaskRepo *t, const char *repo_path, const char *base,
                          const char *branch, char *const *copy_files, char **ret_base_commit, char **ret_error) {
        _cleanup_(repo_jail_done) RepoJail rj = {};
        _cleanup_free_ char *commit = NULL, *base_branch = NULL, *ref = NULL, *base_ref = NULL, *gitfile = NULL,
                            *inside = NULL;
        int r;

        if (isempty(repo_path) || !t || isempty(t->worktree) || isempty(t->git_dir))
                return git_set_error(ret_error, -EINVAL, "no repository, worktree or git directory given");
        /* git would read a leading dash as an option */
        if (isempty(branch) || branch[0] == '-')
                return git_set_error(ret_error, -EINVAL, "invalid branch name '%s'", strempty(branch));
        for (char *const *f = copy_files; f && *f; f++)
                if (!path_is_safe_relative(*f))
                        return git_set_error(ret_error, -EINVAL, "copy file '%s' is not a path inside the repository",
                                             *f);

        r = task_repo_exists(t, ret_error);
        if (r < 0)
                return r;
        if (r > 0) {
                /* A restart: kept as the agent left it. The repository may
                 * have moved its objects since; the list is ours to keep
                 * true, and the config ours to keep as we made it. */
                if (ret_base_commit)
                        *ret_base_commit = NULL;
                return rewrite_task_files(t, ret_error);
        }

        r = repo_jail(ctx, repo_path, &rj, ret_error);
        if (r < 0)
                return r;
        r = resolve_base(&rj.jail, repo_path, base, &commit, &base_branch, ret_error);
        if (r < 0)
                return r;
        if (asprintf(&ref, "refs/heads/%s", branch) < 0 || asprintf(&gitfile, "gitdir: %s\n", t->git_dir) < 0)
                return -ENOMEM;

        {
                char *dirs[] = { (char *) t->worktree, (char *) t->git_dir, NULL };
                GitJail j = { .context = ctx, .read_only = t->borrowed, .read_write = dirs, .safe = dirs };
                _cleanup_close_ int git_fd = -EBADF, info_fd = -EBADF, wt_fd = -EBADF;

                /* objects/ and objects/info are ours, made first: git init
                 * takes them as they are, and the agent's group may write
                 * objects in the one and nothing in the other. */
                git_fd = open(t->git_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (git_fd < 0)
                        return git_set_error(ret_error, -errno, "cannot open '%s': %m", t->git_dir);
                r = mkdirat(git_fd, "objects", 02770) < 0 && errno != EEXIST ? -errno : 0;
                if (r >= 0) {
                        _cleanup_free_ char *objects = NULL;

                        if (asprintf(&objects, "%s/objects", t->git_dir) < 0)
                                return -ENOMEM;
                        r = task_dir_make(objects, ctx->agent);
                }
                if (r >= 0) {
                        _cleanup_close_ int objects_fd = path_open_beneath(git_fd, "objects", O_PATH | O_DIRECTORY,
                                                                           S_IFDIR);

                        r = objects_fd < 0 ? objects_fd : task_dir_make_read_only(objects_fd, "info", ctx->agent);
                }
                if (r < 0)
                        return git_set_error(ret_error, r, "cannot make the objects of '%s': %s", t->git_dir,
                                             strerror(-r));

                /* The agent's user makes the rest, so that what git writes is the agent's. */
                r = git_out(&j, t->git_dir, GIT_ARGV("init", "-q", "--bare", "--template=", "-b", branch, "."), NULL,
                            ret_error);
                if (r < 0)
                        return r;
                git_fd = safe_close(git_fd);
                r = open_task_git(t, &git_fd, &info_fd, ret_error);
                if (r >= 0)
                        r = write_task_config(git_fd, t, ret_error);
                if (r >= 0)
                        r = write_borrowed(info_fd, t, ret_error);
                if (r >= 0)
                        r = copy_shallow(git_fd, t, ret_error);
                if (r >= 0)
                        r = task_git_out(&j, t, GIT_ARGV("update-ref", ref, commit), NULL, ret_error);
                if (r < 0)
                        return r;
                /* The base under its own name, for the agent's `git diff main`.
                 * Only a copy: the agent may move it, the task's record keeps
                 * the commit it started from. */
                if (base_branch && !streq(base_branch, branch)) {
                        if (asprintf(&base_ref, "refs/heads/%s", base_branch) < 0)
                                return -ENOMEM;
                        (void) task_git_out(&j, t, GIT_ARGV("update-ref", base_ref, commit), NULL, NULL);
                }
                wt_fd = open(t->worktree, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (wt_fd < 0)
                        return git_set_error(ret_error, -errno, "cannot open '%s': %m", t->worktree);
                r = write_worker_file_at(wt_fd, t->worktree, ".git", gitfile, ret_error);
                if (r >= 0)
                        r = task_git_out(&j, t, GIT_ARGV("read-tree", "-u", "--reset", "HEAD"), NULL, ret_error);
                if (r < 0)
                        return r;
        }

        if (copy_files && copy_files[0]) {
                /* A bare repository (every clone-cache one) has no files of its own to give. */
                r = git_probe(&rj.jail, repo_path, GIT_ARGV("rev-parse", "--is-inside-work-tree"), &inside, ret_error);
                if (r < 0)
                        return r;
                if (streq_ptr(inside, "true")) {
                        r = git_copy_files_into(repo_path, t->worktree, copy_files, ret_error);
                        if (r < 0)
                                return r;
                }
        }
        if (ret_base_commit)
                *ret_base_commit = TAKE_PTR(commit);
        return 0;
}

/* A snapshot of the worktree, as git would commit all of it: an index of
 * its own in a scratch directory, with an object directory there for the
 * blobs, the task's objects and what it borrows behind it. Never the
 * agent's index: its stat data would let git take a file for unchanged
 * that is not, and a change go missing from the diff the user reviews. */
typedef struct Snapshot {
        char *dir;
        char *env[4];
        char *scratch[2];
        char **read_only;
} Snapshot;

static void snapshot_done(Snapshot *s) {
        if (s->dir)
                (void) rm_rf_at(AT_FDCWD, s->dir);
        free(s->dir);
        for (size_t i = 0; i < ELEMENTSOF(s->env); i++)
                free(s->env[i]);
        strv_free(s->read_only);
        *s = (Snapshot) {};
}

/* "<git_dir>/objects:<borrowed>:…" */
static int alternates_list(const GitTaskRepo *t, char **ret) {
        GitOutput o = {};
        int r;

        r = git_output_append(&o, t->git_dir, strlen(t->git_dir));
        if (r >= 0)
                r = git_output_append(&o, "/objects", strlen("/objects"));
        for (char *const *b = t->borrowed; r >= 0 && b && *b; b++) {
                r = git_output_append(&o, ":", 1);
                if (r >= 0)
                        r = git_output_append(&o, *b, strlen(*b));
        }
        if (r < 0) {
                git_output_done(&o);
                return r;
        }
        *ret = o.data;
        return 0;
}

static int snapshot_take(const GitContext *ctx, const GitTaskRepo *t, Snapshot *s, char **ret_error) {
        _cleanup_free_ char *index = NULL, *objects = NULL, *alternates = NULL;
        int r;

        *s = (Snapshot) {};
        if (asprintf(&s->dir, "%s/makima-git-XXXXXX", ctx->scratch_dir ?: getenv("TMPDIR") ?: "/tmp") < 0)
                return -ENOMEM;
        if (!mkdtemp(s->dir)) {
                s->dir = mfree(s->dir);
                return git_set_error(ret_error, -errno, "cannot create a temporary directory: %m");
        }
        /* The agent's user writes here when git runs as it. */
        r = task_dir_make(s->dir, ctx->agent);
        if (r < 0)
                return git_set_error(ret_error, r, "cannot prepare '%s': %s", s->dir, strerror(-r));
        s->scratch[0] = s->dir;
        if (asprintf(&index, "%s/index", s->dir) < 0 || asprintf(&objects, "%s/objects", s->dir) < 0)
                return -ENOMEM;
        r = mkdir(objects, 02770) < 0 ? -errno : task_dir_make(objects, ctx->agent);
        if (r < 0)
                return git_set_error(ret_error, r, "cannot create '%s': %s", objects, strerror(-r));

        /* Alternates: the task's own objects, then what it borrows. */
        r = alternates_list(t, &alternates);
        if (r < 0)
                return r;
        if (asprintf(&s->env[0], "GIT_INDEX_FILE=%s", index) < 0 ||
            asprintf(&s->env[1], "GIT_OBJECT_DIRECTORY=%s", objects) < 0 ||
            asprintf(&s->env[2], "GIT_ALTERNATE_OBJECT_DIRECTORIES=%s", alternates) < 0)
                return -ENOMEM;

        r = strv_extend(&s->read_only, t->worktree);
        if (r >= 0)
                r = strv_extend(&s->read_only, t->git_dir);
        for (char *const *o = t->borrowed; r >= 0 && o && *o; o++)
                r = strv_extend(&s->read_only, *o);
        if (r < 0)
                return r;

        return 0;
}

/* The jail a snapshot's git runs in: everything of the task read-only, the
 * scratch directory writable. */
static GitJail snapshot_jail(const GitContext *ctx, const GitTaskRepo *t, Snapshot *s, char *const *safe) {
        return (GitJail) {
                .context = ctx,
                .read_only = s->read_only,
                .read_write = s->scratch,
                .safe = safe,
        };
}

/* The start of a diff or a fingerprint: the snapshot, and the jail its git
 * runs in, which trusts (safe) the worktree and the git directory. */
static int snapshot_begin(const GitContext *ctx, const GitTaskRepo *t, Snapshot *s, char *safe[static 3],
                          GitJail *ret_jail, char **ret_error) {
        int r;

        if (!t || isempty(t->worktree) || isempty(t->git_dir))
                return git_set_error(ret_error, -EINVAL, "no worktree given");
        safe[0] = (char *) t->worktree;
        safe[1] = (char *) t->git_dir;
        safe[2] = NULL;
        r = snapshot_take(ctx, t, s, ret_error);
        if (r < 0)
                return r;
        *ret_jail = snapshot_jail(ctx, t, s, safe);
        return 0;
}

/* Fills the snapshot's index with all of the worktree: HEAD's tree (if
 * there is a HEAD), then every file as it is. */
static int snapshot_fill(const GitJail *jail, const GitTaskRepo *t, Snapshot *s, bool have_head, char **ret_error) {
        int r;

        if (have_head) {
                r = task_git(jail, t, GIT_ARGV("read-tree", "HEAD"), s->env, 0, NULL, ret_error);
                if (r != 0)
                        return r < 0 ? r : -EIO;
        }
        /* Nested repositories go in as what their HEAD is, never entered. */
        r = task_git(jail, t, GIT_ARGV("-c", "core.splitIndex=false", "add", "-A", "--ignore-errors", "--", "."), s->env,
                     0, NULL, ret_error);
        return r < 0 ? r : r > 0 ? -EIO : 0;
}

int git_worktree_diff(const GitContext *ctx, const GitTaskRepo *t, const char *base, size_t max_bytes, char **ret_diff,
                      bool *ret_truncated, char **ret_error) {
        _cleanup_free_ char *commit = NULL, *merge_base = NULL;
        _cleanup_(snapshot_done) Snapshot s = {};
        char *safe[3];
        GitOutput out = {};
        GitJail jail;
        int r;

        r = snapshot_begin(ctx, t, &s, safe, &jail, ret_error);
        if (r < 0)
                return r;

        {
                /* Resolved in the task's repository: a commit id, or a branch
                 * of its own (an older task's base). */
                _cleanup_free_ char *rev = NULL, *mb = NULL;

                if (isempty(base) || base[0] == '-' || asprintf(&rev, "%s^{commit}", base) < 0)
                        return git_set_error(ret_error, -ENOENT, "base branch '%s' does not exist in %s",
                                             strempty(base), t->git_dir);
                r = task_git(&jail, t, GIT_ARGV("rev-parse", "--verify", "-q", rev), NULL, 0, &out, ret_error);
                commit = git_output_line(&out);
                git_output_done(&out);
                if (r < 0)
                        return r;
                if (r > 0 || isempty(commit))
                        return git_set_error(ret_error, -ENOENT, "base branch '%s' does not exist in %s",
                                             strempty(base), t->git_dir);
                /* Unrelated histories have no merge base: the base itself is the next best. */
                r = task_git(&jail, t, GIT_ARGV("merge-base", commit, "HEAD"), NULL, 0, &out, NULL);
                mb = git_output_line(&out);
                git_output_done(&out);
                if (r == 0 && !isempty(mb))
                        merge_base = TAKE_PTR(mb);
        }

        r = snapshot_fill(&jail, t, &s, true, ret_error);
        if (r >= 0)
                r = task_git(&jail, t,
                             /* Of a nested repository, the commit it is at: its work
                              * tree is never looked at (--cached compares the
                              * snapshot, not the worktree). */
                             GIT_ARGV("diff", "--cached", "--no-color", "--no-ext-diff", "--no-textconv",
                                      "--ignore-submodules=dirty", "--src-prefix=a/", "--dst-prefix=b/",
                                      merge_base ?: commit, "--"),
                             s.env, max_bytes, &out, ret_error);
        if (r > 0)
                r = -EIO;
        if (r < 0) {
                git_output_done(&out);
                return r;
        }

        /* A cut diff ends at a whole line, where one fits. */
        if (out.truncated) {
                char *nl = memrchr(out.data, '\n', out.size);

                if (nl) {
                        out.size = (size_t) (nl - out.data) + 1;
                        out.data[out.size] = '\0';
                }
        }
        if (ret_truncated)
                *ret_truncated = out.truncated;
        *ret_diff = TAKE_PTR(out.data);
        return 0;
}

int git_worktree_fingerprint(const GitContext *ctx, const GitTaskRepo *t, char **ret_fingerprint, char **ret_error) {
        _cleanup_free_ char *head = NULL, *tree = NULL, *fingerprint = NULL;
        _cleanup_(snapshot_done) Snapshot s = {};
        char *safe[3];
        GitOutput out = {};
        GitJail jail;
        int r;

        r = snapshot_begin(ctx, t, &s, safe, &jail, ret_error);
        if (r < 0)
                return r;

        r = task_git(&jail, t, GIT_ARGV("rev-parse", "--verify", "-q", "HEAD^{commit}"), NULL, 0, &out, ret_error);
        head = git_output_line(&out);
        git_output_done(&out);
        if (r < 0)
                return r;
        if (r > 0)
                head = mfree(head);
        r = snapshot_fill(&jail, t, &s, !!head, ret_error);
        if (r >= 0)
                r = task_git(&jail, t, GIT_ARGV("write-tree"), s.env, 0, &out, ret_error);
        tree = git_output_line(&out);
        git_output_done(&out);
        if (r > 0)
                r = -EIO;
        if (r < 0)
                return r;
        if (asprintf(&fingerprint, "%s:%s", head ?: "unborn", strempty(tree)) < 0)
                return -ENOMEM;
        *ret_fingerprint = TAKE_PTR(fingerprint);
        return 0;
}
