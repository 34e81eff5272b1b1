/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Copying CopyFiles= (untracked files such as .env) from a repository into
 * a task's worktree: files, directories and symlinks, each opened beneath
 * its top with openat2(), so a planted symlink cannot lead outside. */

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "git-run.h"
#include "git-util.h"
#include "git-util-internal.h"

int git_copy_fd(int in, int out) {
        char buf[64 * 1024];
        ssize_t n;

        while ((n = read(in, buf, sizeof buf)) != 0) {
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                for (ssize_t done = 0, w; done < n; done += w) {
                        w = write(out, buf + done, (size_t) (n - done));
                        if (w < 0 && errno == EINTR)
                                w = 0;
                        else if (w < 0)
                                return -errno;
                }
        }
        return 0;
}

/* Copies one entry as "cp -a" would, but never over something that exists
 * (a tracked file, or the agent's own edit after a restart), with no set-id
 * bits and nothing for others. Symlinks are copied as symlinks, never followed. */
static int copy_entry(int src_dir, int dst_dir, const char *name, const struct stat *st) {
        /* The group of the worktree is the agent's: what the worker copies
         * in, the agent may use as its owner would. */
        mode_t mode = (st->st_mode & 0770) | ((st->st_mode & 0700) >> 3);

        if (S_ISLNK(st->st_mode)) {
                char target[PATH_MAX + 1];
                ssize_t n = readlinkat(src_dir, name, target, sizeof target - 1);

                if (n < 0)
                        return -errno;
                target[n] = '\0';
                if (symlinkat(target, dst_dir, name) < 0 && errno != EEXIST)
                        return -errno;
        } else if (S_ISREG(st->st_mode)) {
                _cleanup_close_ int in = -EBADF, out = -EBADF;
                int r;

                in = openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
                if (in < 0)
                        return errno == ENOENT ? 0 : -errno;
                out = openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
                if (out < 0)
                        return errno == EEXIST ? 0 : -errno;
                r = git_copy_fd(in, out);
                if (r < 0)
                        return r;
                if (fchmod(out, mode) < 0)
                        return -errno;
        } else if (S_ISDIR(st->st_mode)) {
                _cleanup_(closedirp) DIR *d = NULL;
                _cleanup_close_ int dst = -EBADF;
                int src, r;

                if (mkdirat(dst_dir, name, 0700) >= 0) {
                        if (fchmodat(dst_dir, name, mode, 0) < 0)
                                return -errno;
                } else if (errno != EEXIST)
                        return -errno;
                dst = openat(dst_dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (dst < 0)
                        return -errno;
                src = openat(src_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (src < 0)
                        return -errno;
                d = fdopendir(src);
                if (!d) {
                        r = -errno;
                        (void) close(src);
                        return r;
                }
                for (struct dirent *de; (de = readdir(d));) {
                        struct stat sub;

                        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                                continue;
                        if (fstatat(dirfd(d), de->d_name, &sub, AT_SYMLINK_NOFOLLOW) < 0)
                                return -errno;
                        r = copy_entry(dirfd(d), dst, de->d_name, &sub);
                        if (r < 0)
                                return r;
                }
        }
        /* Sockets, fifos and devices have no place in a worktree. */
        return 0;
}

/* Opens (creating what is missing) the directory rel below top, one
 * component at a time so that every step stays beneath top. */
static int mkdir_beneath(int top, const char *rel) {
        _cleanup_free_ char *p = strdup(rel);
        _cleanup_close_ int fd = -EBADF;

        if (!p)
                return -ENOMEM;
        fd = git_open_beneath(top, ".", O_PATH | O_DIRECTORY);
        for (char *s = p; fd >= 0 && *s;) {
                size_t n = strcspn(s, "/");
                char c = s[n];

                s[n] = '\0';
                if (mkdirat(fd, s, 0770) < 0 && errno != EEXIST)
                        return -errno;
                (void) close(fd);
                fd = git_open_beneath(top, p, O_PATH | O_DIRECTORY);
                s[n] = c;
                s += n + (c == '/');
        }
        return TAKE_FD(fd);
}

static int copy_into_worktree(int src_top, int dst_top, const char *rel, char **ret_error) {
        _cleanup_free_ char *parent = NULL;
        _cleanup_close_ int src = -EBADF, dst = -EBADF;
        const char *slash = strrchr(rel, '/'), *name = slash ? slash + 1 : rel;
        struct stat st;
        int r;

        parent = slash ? strndup(rel, (size_t) (slash - rel)) : strdup(".");
        if (!parent)
                return -ENOMEM;
        src = git_open_beneath(src_top, parent, O_PATH | O_DIRECTORY);
        if (IN_SET(src, -ENOENT, -ENOTDIR))
                return 0;
        if (IN_SET(src, -EXDEV, -ELOOP))
                return git_set_error(ret_error, -EINVAL, "copy file '%s' leads out of the repository", rel);
        if (src < 0)
                return git_set_error(ret_error, src, "cannot open '%s' in the repository: %s", parent, strerror(-src));
        if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : git_set_error(ret_error, -errno, "cannot stat '%s': %m", rel);

        dst = mkdir_beneath(dst_top, slash ? parent : "");
        if (IN_SET(dst, -EXDEV, -ELOOP, -ENOTDIR))
                return git_set_error(ret_error, -EINVAL, "copy file '%s' leads out of the worktree", rel);
        if (dst < 0)
                return git_set_error(ret_error, dst, "cannot create '%s' in the worktree: %s", parent, strerror(-dst));
        r = copy_entry(src, dst, name, &st);
        if (r < 0)
                return git_set_error(ret_error, r, "cannot copy '%s' into the worktree: %s", rel, strerror(-r));
        return 0;
}

int git_copy_files_into(const char *top, const char *worktree, char *const *copy_files, char **ret_error) {
        _cleanup_close_ int src = -EBADF, dst = -EBADF;
        int r;

        src = open(top, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (src < 0)
                return git_set_error(ret_error, -errno, "cannot open '%s': %m", top);
        dst = open(worktree, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dst < 0)
                return git_set_error(ret_error, -errno, "cannot open '%s': %m", worktree);
        for (char *const *f = copy_files; *f; f++) {
                r = copy_into_worktree(src, dst, *f, ret_error);
                if (r < 0)
                        return r;
        }
        return 0;
}
