/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The git operations of git-util.h: the clone cache, task worktrees, diffs
 * and fingerprints, each a few runs of git (git-run.c). Files makima copies
 * or hashes itself are opened with openat2() and RESOLVE_BENEATH, so that a
 * symlink an agent planted cannot lead it outside the worktree. */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "git-run.h"
#include "git-util.h"
#include "git-util-internal.h"
#include "sha256.h"

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

/* Removes a tree without following any symlink in it. */
static int rm_rf_at(int dir_fd, const char *name) {
        _cleanup_(closedirp) DIR *d = NULL;
        int fd, r = 0;

        if (unlinkat(dir_fd, name, 0) >= 0 || errno == ENOENT)
                return 0;
        if (!IN_SET(errno, EISDIR, EPERM))
                return -errno;
        fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
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
        if (unlinkat(dir_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                r = -errno;
        return r;
}

/* Opens path below dir_fd; a symlink leading out of it is -EXDEV. */
int git_open_beneath(int dir_fd, const char *path, int flags) {
        struct open_how how = {
                .flags = (uint64_t) (flags | O_CLOEXEC),
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        long fd;

        fd = syscall(SYS_openat2, dir_fd, path, &how, sizeof how);
        return fd < 0 ? -errno : (int) fd;
}

/* The usual repository, one with a work tree, answers both of
 * resolve_local()'s questions in one run of git: 1 and its top directory.
 * 0 for any other (bare, not a repository, an error), which the two
 * questions asked one at a time then tell apart; a bare one also leaves
 * *ret_bare set, as git answered the first question before failing. */
static int toplevel_quick(const char *dir, char **ret_top, bool *ret_bare) {
        _cleanup_free_ char *text = NULL;
        GitOutput out = {};
        const char *top;
        int r;

        r = git_capture(dir, GIT_ARGV("rev-parse", "--is-bare-repository", "--show-toplevel"), NULL, 0, &out, NULL);
        text = git_output_line(&out);
        if (r < 0)
                return r == -ENOMEM ? r : 0;
        *ret_bare = r != 0 && streq_ptr(text, "true");
        top = r == 0 ? startswith(strempty(text), "false\n") : NULL;
        if (isempty(top))
                return 0;
        *ret_top = strdup(top);
        return *ret_top ? 1 : -ENOMEM;
}

static int resolve_local(const char *repo, char **ret_path, char **ret_error) {
        _cleanup_free_ char *real = NULL, *bare = NULL, *top = NULL, *complaint = NULL;
        bool is_bare = false;
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

        r = toplevel_quick(real, &top, &is_bare);
        if (r < 0)
                return r;
        if (r > 0) {
                *ret_path = TAKE_PTR(top);
                return 0;
        }
        if (is_bare) {
                r = git_out(real, GIT_ARGV("rev-parse", "--absolute-git-dir"), &top, ret_error);
                if (r < 0)
                        return r == -EIO ? -EINVAL : r;
                *ret_path = TAKE_PTR(top);
                return 0;
        }

        r = git_out(real, GIT_ARGV("rev-parse", "--is-bare-repository"), &bare, &complaint);
        if (r == -EIO && strstr(complaint, "not a git repository"))
                return git_set_error(ret_error, -EINVAL, "'%s' is not a git repository", repo);
        if (r == -EIO)
                return git_set_error(ret_error, -EINVAL, "'%s' is not a usable git repository: %s", repo, complaint);
        if (r < 0)
                return git_set_error(ret_error, r, "%s", complaint);

        if (streq(bare, "true"))
                r = git_out(real, GIT_ARGV("rev-parse", "--absolute-git-dir"), &top, ret_error);
        else
                r = git_out(real, GIT_ARGV("rev-parse", "--show-toplevel"), &top, ret_error);
        if (r < 0)
                return r == -EIO ? -EINVAL : r;
        *ret_path = TAKE_PTR(top);
        return 0;
}

/* A clone-cache entry is a bare repository whose remote branches stay
 * under refs/remotes/origin/: refs/heads/ is left to the task branches, so
 * fetching (with --prune) never touches a branch a worktree has out. */
static int clone_into(const char *dir, const char *url, char **ret_error) {
        _cleanup_free_ char *head = NULL, *ref = NULL;
        int r;

        r = git_out(dir, GIT_ARGV("init", "--bare", "-q", "."), NULL, ret_error);
        if (r < 0)
                return r;
        r = git_out(dir, GIT_ARGV("config", "remote.origin.url", url), NULL, ret_error);
        if (r < 0)
                return r;
        r = git_out(dir, GIT_ARGV("config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"), NULL,
                    ret_error);
        if (r < 0)
                return r;
        r = git_out(dir, GIT_ARGV("fetch", "-q", "--prune", "--tags", "origin"), NULL, ret_error);
        if (r < 0)
                return r;

        /* HEAD names the remote's default branch for git_default_branch(). An
         * empty remote has none; then init's default stays. */
        r = git_probe(dir, GIT_ARGV("remote", "set-head", "origin", "--auto"), NULL, NULL);
        if (r <= 0)
                return 0;
        r = git_out(dir, GIT_ARGV("symbolic-ref", "--short", "refs/remotes/origin/HEAD"), &head, ret_error);
        if (r < 0)
                return r;
        if (asprintf(&ref, "refs/heads/%s", startswith(head, "origin/") ?: head) < 0)
                return -ENOMEM;
        return git_out(dir, GIT_ARGV("symbolic-ref", "HEAD", ref), NULL, ret_error);
}

static int resolve_url(const char *url, const char *cache_dir, char **ret_path, char **ret_error) {
        _cleanup_free_ char *path = NULL, *lock = NULL, *tmp = NULL;
        _cleanup_close_ int lock_fd = -EBADF;
        char hex[SHA256_HEX_SIZE];
        struct stat st;
        int r;

        if (isempty(cache_dir))
                return git_set_error(ret_error, -EINVAL, "no clone cache directory for '%s'", url);
        r = mkdir_p(cache_dir, 0755);
        if (r < 0)
                return git_set_error(ret_error, r, "cannot create '%s': %s", cache_dir, strerror(-r));
        sha256_hex(url, strlen(url), hex);
        if (asprintf(&path, "%s/%s", cache_dir, hex) < 0 || asprintf(&lock, "%s.lock", path) < 0 ||
            asprintf(&tmp, "%s/.%s.XXXXXX", cache_dir, hex) < 0)
                return -ENOMEM;

        /* Workers that want the same repository take turns: two clones would
         * waste the work, two fetches would fight over ref locks. */
        lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (lock_fd < 0)
                return git_set_error(ret_error, -errno, "cannot open '%s': %m", lock);
        while (flock(lock_fd, LOCK_EX) < 0)
                if (errno != EINTR)
                        return git_set_error(ret_error, -errno, "cannot lock '%s': %m", lock);

        if (stat(path, &st) >= 0) {
                r = git_out(path, GIT_ARGV("fetch", "-q", "--prune", "--tags", "origin"), NULL, ret_error);
                if (r < 0)
                        return r;
                *ret_path = TAKE_PTR(path);
                return 0;
        }
        if (errno != ENOENT)
                return git_set_error(ret_error, -errno, "cannot stat '%s': %m", path);

        /* Cloned under a temporary name and renamed when complete, so that a
         * crash never leaves a half clone under the real one. */
        if (!mkdtemp(tmp))
                return git_set_error(ret_error, -errno, "cannot create a directory in '%s': %m", cache_dir);
        r = chmod(tmp, 0755) < 0 ? -errno : 0;
        if (r >= 0)
                r = clone_into(tmp, url, ret_error);
        if (r >= 0 && rename(tmp, path) < 0)
                r = git_set_error(ret_error, -errno, "cannot rename '%s' to '%s': %m", tmp, path);
        if (r < 0) {
                (void) rm_rf_at(AT_FDCWD, tmp);
                return r;
        }
        *ret_path = TAKE_PTR(path);
        return 0;
}

int git_resolve_repo(const char *repo, const char *cache_dir, char **ret_path, char **ret_error) {
        if (isempty(repo))
                return git_set_error(ret_error, -EINVAL, "no repository given");
        if (git_repo_is_url(repo))
                return resolve_url(repo, cache_dir, ret_path, ret_error);
        return resolve_local(repo, ret_path, ret_error);
}

int git_default_branch(const char *repo_path, char **ret_branch, char **ret_error) {
        _cleanup_free_ char *branch = NULL;
        int r;

        r = git_probe(repo_path, GIT_ARGV("symbolic-ref", "--short", "-q", "HEAD"), &branch, ret_error);
        if (r < 0)
                return r;
        if (r == 0 || isempty(branch))
                return git_set_error(ret_error, -ENOENT, "HEAD of %s is not on a branch", repo_path);
        *ret_branch = TAKE_PTR(branch);
        return 0;
}

/* What git takes for a commit: a branch, tag or commit id; then, for a
 * clone-cache repository whose branches live there, origin/<base>. */
static int resolve_base(const char *dir, const char *base, char **ret_commit, char **ret_error) {
        int r;

        for (unsigned i = 0; i < 2 && !isempty(base) && base[0] != '-'; i++) {
                _cleanup_free_ char *rev = NULL, *commit = NULL;

                if (asprintf(&rev, i == 0 ? "%s^{commit}" : "origin/%s^{commit}", base) < 0)
                        return -ENOMEM;
                r = git_probe(dir, GIT_ARGV("rev-parse", "--verify", "-q", rev), &commit, ret_error);
                if (r < 0)
                        return r;
                if (r > 0) {
                        *ret_commit = TAKE_PTR(commit);
                        return 0;
                }
        }
        return git_set_error(ret_error, -ENOENT, "base branch '%s' does not exist in %s", strempty(base), dir);
}

/* The path as git records a worktree's: absolute, symlinks resolved (of
 * its parent, when it does not exist yet). */
static int path_canonical(const char *path, char **ret) {
        _cleanup_free_ char *abs = NULL, *cwd = NULL, *parent = NULL;
        char *real, *slash;

        if (path[0] != '/') {
                cwd = getcwd(NULL, 0);
                if (!cwd)
                        return -errno;
        }
        if (asprintf(&abs, "%s/%s", strempty(cwd), path) < 0)
                return -ENOMEM;
        while (strlen(abs) > 1 && abs[strlen(abs) - 1] == '/')
                abs[strlen(abs) - 1] = '\0';

        real = realpath(abs, NULL);
        if (!real && errno == ENOENT && (slash = strrchr(abs, '/')) && slash != abs) {
                *slash = '\0';
                parent = realpath(abs, NULL);
                *slash = '/';
                if (parent && asprintf(&real, "%s%s", streq(parent, "/") ? "" : parent, slash) < 0)
                        return -ENOMEM;
        }
        *ret = real ?: TAKE_PTR(abs);
        return 0;
}

/* Looks path up among the repository's worktrees: 1 with the branch it
 * has out ("" if detached), 0 if it is not one. */
static int worktree_find(const char *repo, const char *path, char **ret_branch, char **ret_error) {
        _cleanup_free_ char *branch = NULL;
        GitOutput out = {};
        bool match = false, found = false;
        int r;

        r = git_capture(repo, GIT_ARGV("worktree", "list", "--porcelain", "-z"), NULL, 0, &out, ret_error);
        if (r != 0) {
                git_output_done(&out);
                return r < 0 ? r : -EIO;
        }
        for (const char *p = out.data; p < out.data + out.size; p += strlen(p) + 1) {
                const char *v;

                if ((v = startswith(p, "worktree "))) {
                        if (match)
                                break;
                        match = found = streq(v, path);
                } else if (match && (v = startswith(p, "branch ")) && free_and_strdup(&branch, v) < 0) {
                        git_output_done(&out);
                        return -ENOMEM;
                }
        }
        git_output_done(&out);
        if (found && ret_branch)
                *ret_branch = branch ? TAKE_PTR(branch) : strdup("");
        if (found && ret_branch && !*ret_branch)
                return -ENOMEM;
        return found;
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

/* A new task's worktree in one run of git, for the common case: nothing at
 * path yet, no branch of an earlier attempt, a base git takes as it is.
 * Returns 1 when the worktree was made, 0 when git refused it for any reason
 * (its words are dropped: git_worktree_prepare() then goes the careful way,
 * which gives its own), or -ENOMEM. A refusal leaves nothing behind, but
 * for a path still registered by a worktree deleted behind git's back: then
 * the branch is made before git notices, at the base, and the careful way
 * checks it out as the branch of an earlier attempt, which it is now. So
 * the end is the same either way; only the pruning of other stale worktrees
 * waits for git_worktree_remove() or a careful preparation. */
static int worktree_add_quick(const char *repo_path, const char *base, const char *branch, const char *path) {
        _cleanup_free_ char *rev = NULL;
        struct stat st;
        int r;

        if (isempty(base) || base[0] == '-')
                return 0;
        if (lstat(path, &st) >= 0 || errno != ENOENT)
                return 0;
        /* As resolve_base() asks first: a branch, tag or commit id, as a commit. */
        if (asprintf(&rev, "%s^{commit}", base) < 0)
                return -ENOMEM;
        r = git_capture(repo_path, GIT_ARGV("worktree", "add", "--no-track", "-b", branch, path, rev), NULL, 0, NULL,
                        NULL);
        if (r == -ENOMEM)
                return r;
        return r == 0;
}

int git_worktree_prepare(const char *repo_path, const char *base, const char *branch, const char *path,
                         char *const *copy_files, char **ret_error) {
        _cleanup_free_ char *canonical = NULL, *ref = NULL, *current = NULL, *commit = NULL;
        int r;

        if (isempty(repo_path) || isempty(path))
                return git_set_error(ret_error, -EINVAL, "no repository or worktree path given");
        /* git would read a leading dash as an option */
        if (isempty(branch) || branch[0] == '-')
                return git_set_error(ret_error, -EINVAL, "invalid branch name '%s'", strempty(branch));
        for (char *const *f = copy_files; f && *f; f++)
                if (!path_is_safe_relative(*f))
                        return git_set_error(ret_error, -EINVAL, "copy file '%s' is not a path inside the repository",
                                             *f);
        r = path_canonical(path, &canonical);
        if (r < 0)
                return git_set_error(ret_error, r, "cannot resolve '%s': %s", path, strerror(-r));
        if (asprintf(&ref, "refs/heads/%s", branch) < 0)
                return -ENOMEM;

        r = worktree_add_quick(repo_path, base, branch, canonical);
        if (r < 0)
                return r;
        if (r > 0)
                goto copy;

        r = worktree_find(repo_path, canonical, &current, ret_error);
        if (r < 0)
                return r;
        if (r > 0 && access(canonical, F_OK) >= 0) {
                /* A restart: the worktree from the previous attempt is kept as the agent left it. */
                if (!streq(current, ref))
                        return git_set_error(ret_error, -EEXIST, "'%s' is already a worktree of %s, not on branch '%s'",
                                             canonical, repo_path, branch);
        } else {
                /* A registered worktree whose directory is gone would block "worktree add". */
                r = git_out(repo_path, GIT_ARGV("worktree", "prune"), NULL, ret_error);
                if (r < 0)
                        return r;
                r = git_probe(repo_path, GIT_ARGV("rev-parse", "--verify", "-q", ref), NULL, ret_error);
                if (r < 0)
                        return r;
                if (r > 0)
                        /* The branch of an earlier attempt: its commits are the task's work. */
                        r = git_out(repo_path, GIT_ARGV("worktree", "add", canonical, branch), NULL, ret_error);
                else {
                        r = resolve_base(repo_path, base, &commit, ret_error);
                        if (r < 0)
                                return r;
                        r = git_out(repo_path,
                                    GIT_ARGV("worktree", "add", "--no-track", "-b", branch, canonical, commit), NULL,
                                    ret_error);
                }
                if (r < 0)
                        return r;
        }

copy:
        if (!copy_files || !copy_files[0])
                return 0;
        return git_copy_files_into(repo_path, canonical, copy_files, ret_error);
}

int git_worktree_remove(const char *repo_path, const char *path, const char *branch, bool delete_branch,
                        char **ret_error) {
        _cleanup_free_ char *canonical = NULL, *ref = NULL;
        int r;

        if (isempty(repo_path) || isempty(path))
                return git_set_error(ret_error, -EINVAL, "no repository or worktree path given");
        r = path_canonical(path, &canonical);
        if (r < 0)
                return git_set_error(ret_error, r, "cannot resolve '%s': %s", path, strerror(-r));

        r = worktree_find(repo_path, canonical, NULL, ret_error);
        if (r < 0)
                return r;
        if (r > 0 && access(canonical, F_OK) >= 0) {
                r = git_out(repo_path, GIT_ARGV("worktree", "remove", "--force", canonical), NULL, ret_error);
                if (r < 0)
                        return r;
        }
        r = git_out(repo_path, GIT_ARGV("worktree", "prune"), NULL, ret_error);
        if (r < 0)
                return r;

        if (!delete_branch || isempty(branch))
                return 0;
        if (branch[0] == '-')
                return git_set_error(ret_error, -EINVAL, "invalid branch name '%s'", branch);
        if (asprintf(&ref, "refs/heads/%s", branch) < 0)
                return -ENOMEM;
        r = git_probe(repo_path, GIT_ARGV("rev-parse", "--verify", "-q", ref), NULL, ret_error);
        if (r <= 0)
                return r;
        return git_out(repo_path, GIT_ARGV("branch", "-D", branch), NULL, ret_error);
}

/* Fills a fresh index file with the worktree's own index, or with HEAD's
 * tree if it has none: a copy keeps the stat data, so that "git add" need
 * not hash every file again. */
static int index_copy(const char *worktree, const char *to, char **ret_error) {
        _cleanup_free_ char *from = NULL, *rel = NULL;
        _cleanup_close_ int in = -EBADF, out = -EBADF;
        int r;

        r = git_out(worktree, GIT_ARGV("rev-parse", "--git-path", "index"), &rel, ret_error);
        if (r < 0)
                return r;
        if (rel[0] != '/' && asprintf(&from, "%s/%s", worktree, rel) < 0)
                return -ENOMEM;
        in = open(from ?: rel, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (in < 0 && errno == ENOENT)
                return 0;
        if (in < 0)
                return git_set_error(ret_error, -errno, "cannot open '%s': %m", from ?: rel);
        out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (out < 0)
                return git_set_error(ret_error, -errno, "cannot create '%s': %m", to);
        r = git_copy_fd(in, out);
        if (r < 0)
                return git_set_error(ret_error, r, "cannot copy the index: %s", strerror(-r));
        return 1;
}

int git_worktree_diff(const char *worktree, const char *base, size_t max_bytes, char **ret_diff,
                      bool *ret_truncated, char **ret_error) {
        _cleanup_free_ char *commit = NULL, *merge_base = NULL, *tmp = NULL, *index = NULL, *env_index = NULL;
        char *env[2] = {};
        GitOutput out = {};
        int r;

        if (isempty(worktree))
                return git_set_error(ret_error, -EINVAL, "no worktree given");
        r = resolve_base(worktree, base, &commit, ret_error);
        if (r < 0)
                return r;
        /* Unrelated histories have no merge base: the base itself is the next best. */
        r = git_probe(worktree, GIT_ARGV("merge-base", commit, "HEAD"), &merge_base, ret_error);
        if (r < 0)
                return r;

        if (asprintf(&tmp, "%s/makima-diff-XXXXXX", getenv("TMPDIR") ?: "/tmp") < 0)
                return -ENOMEM;
        if (!mkdtemp(tmp))
                return git_set_error(ret_error, -errno, "cannot create a temporary directory: %m");
        if (asprintf(&index, "%s/index", tmp) < 0 || asprintf(&env_index, "GIT_INDEX_FILE=%s", index) < 0) {
                r = -ENOMEM;
                goto finish;
        }
        env[0] = env_index;

        r = index_copy(worktree, index, ret_error);
        if (r == 0)
                r = git_capture(worktree, GIT_ARGV("read-tree", "HEAD"), env, 0, NULL, ret_error) != 0 ? -EIO : 0;
        /* Untracked files go in as intent-to-add entries: "git diff" then shows
         * them as new, and their content is not written to the object store
         * (a big build artefact would stay there until the next gc). */
        if (r >= 0)
                r = git_capture(worktree, GIT_ARGV("-c", "core.splitIndex=false", "add", "-A", "-N"), env, 0, NULL,
                                ret_error);
        if (r > 0)
                r = -EIO;
        if (r >= 0)
                r = git_capture(worktree,
                                GIT_ARGV("diff", "--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/",
                                         "--dst-prefix=b/", merge_base ?: commit, "--"),
                                env, max_bytes, &out, ret_error);
        if (r > 0)
                r = -EIO;
finish:
        (void) rm_rf_at(AT_FDCWD, tmp);
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

/* One changed path into the fingerprint: its type and mode, and a hash of
 * its content (of a symlink: its target), or a mark that it is gone. The
 * content is hashed in chunks so that a big file needs no big buffer. */
static int fingerprint_path(int top, const char *path, GitOutput *acc, uint8_t *buf, size_t buf_size) {
        _cleanup_close_ int fd = -EBADF, content = -EBADF;
        GitOutput chunks = {};
        char hex[SHA256_HEX_SIZE] = "", line[128];
        struct stat st;
        ssize_t n;
        int r;

        r = git_output_append(acc, path, strlen(path) + 1);
        if (r < 0)
                return r;
        fd = git_open_beneath(top, path, O_PATH | O_NOFOLLOW);
        if (fd < 0 || fstat(fd, &st) < 0)
                return git_output_append(acc, "gone\n", 5);

        if (S_ISLNK(st.st_mode)) {
                n = readlinkat(fd, "", (char *) buf, buf_size);
                if (n < 0)
                        return -errno;
                sha256_hex(buf, (size_t) n, hex);
        } else if (S_ISREG(st.st_mode)) {
                content = git_open_beneath(top, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
                if (content < 0)
                        return git_output_append(acc, "gone\n", 5);
                while ((n = read(content, buf, buf_size)) != 0) {
                        uint8_t digest[SHA256_DIGEST_SIZE];

                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0) {
                                r = -errno;
                                break;
                        }
                        sha256(buf, (size_t) n, digest);
                        r = git_output_append(&chunks, digest, sizeof digest);
                        if (r < 0)
                                break;
                }
                if (r >= 0)
                        sha256_hex(strempty(chunks.data), chunks.size, hex);
                git_output_done(&chunks);
                if (r < 0)
                        return r;
        }
        (void) snprintf(line, sizeof line, "%o %" PRIu64 " %s\n", (unsigned) st.st_mode, (uint64_t) st.st_size, hex);
        return git_output_append(acc, line, strlen(line));
}

int git_worktree_fingerprint(const char *worktree, char **ret_fingerprint, char **ret_error) {
        _cleanup_free_ char *head = NULL, *fingerprint = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_close_ int top = -EBADF;
        GitOutput status = {}, acc = {};
        char hex[SHA256_HEX_SIZE];
        const size_t buf_size = 1024 * 1024;
        int r;

        if (isempty(worktree))
                return git_set_error(ret_error, -EINVAL, "no worktree given");
        r = git_probe(worktree, GIT_ARGV("rev-parse", "--verify", "-q", "HEAD^{commit}"), &head, ret_error);
        if (r < 0)
                return r;
        /* The agent runs git in the same worktree: no index refresh, no lock to fight over. */
        r = git_capture(worktree,
                        GIT_ARGV("--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=all",
                                 "--no-renames"),
                        NULL, 0, &status, ret_error);
        if (r != 0) {
                git_output_done(&status);
                return r < 0 ? r : -EIO;
        }

        buf = malloc(buf_size);
        top = open(worktree, O_PATH | O_DIRECTORY | O_CLOEXEC);
        r = !buf ? -ENOMEM : top < 0 ? git_set_error(ret_error, -errno, "cannot open '%s': %m", worktree) : 0;
        if (r >= 0)
                r = git_output_append(&acc, status.data, status.size);
        /* Entries are "XY path" (no renames, so never a second path). */
        for (const char *p = status.data; r >= 0 && p < status.data + status.size; p += strlen(p) + 1)
                if (strlen(p) > 3)
                        r = fingerprint_path(top, p + 3, &acc, buf, buf_size);
        if (r >= 0) {
                sha256_hex(acc.data, acc.size, hex);
                if (asprintf(&fingerprint, "%s:%s", head ?: "unborn", hex) < 0)
                        r = -ENOMEM;
        }
        git_output_done(&status);
        git_output_done(&acc);
        if (r < 0)
                return r;
        *ret_fingerprint = TAKE_PTR(fingerprint);
        return 0;
}
