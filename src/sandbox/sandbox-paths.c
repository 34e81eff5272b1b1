/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Finds what the sandbox binds: a worktree's git metadata, an agent's program
 * with its package and interpreter. See sandbox-paths.h. */

#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "conf.h"
#include "sandbox.h"
#include "sandbox-paths.h"

#define DEFAULT_SEARCH_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* How long a chain of #! interpreters is followed. */
#define INTERPRETER_DEPTH_MAX 4

const char *const sandbox_system_dirs[] = {
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt", "/etc", NULL,
};

bool path_is_under(const char *path, const char *dir) {
        const char *rest;

        if (streq(dir, "/"))
                return true;
        rest = startswith(path, dir);
        return rest && IN_SET(*rest, '\0', '/');
}

bool path_in_system(const char *path) {
        for (const char *const *d = sandbox_system_dirs; *d; d++)
                if (path_is_under(path, *d))
                        return true;
        return false;
}

int path_normalize(const char *path, char **ret) {
        _cleanup_free_ char *t = NULL;
        char *w;

        if (!path || path[0] != '/')
                return -EINVAL;
        t = malloc(strlen(path) + 2);
        if (!t)
                return -ENOMEM;
        w = t;
        for (const char *s = path; *s;) {
                size_t n;

                s += strspn(s, "/");
                n = strcspn(s, "/");
                if (n == 2 && s[0] == '.' && s[1] == '.')
                        while (w > t && *--w != '/')
                                ;
                else if (n > 0 && !(n == 1 && s[0] == '.')) {
                        *w++ = '/';
                        memcpy(w, s, n);
                        w += n;
                }
                s += n;
        }
        if (w == t)
                *w++ = '/';
        *w = '\0';
        *ret = TAKE_PTR(t);
        return 0;
}

int path_canonical(const char *path, char **ret) {
        _cleanup_free_ char *normalized = NULL, *parent = NULL, *resolved = NULL;
        const char *last;
        char *t;
        int r;

        if (!path || path[0] != '/')
                return -EINVAL;
        r = path_normalize(path, &normalized);
        if (r < 0)
                return r;
        t = realpath(normalized, NULL);
        if (t) {
                *ret = t;
                return 0;
        }
        if (!IN_SET(errno, ENOENT, ENOTDIR, EACCES))
                return -errno;
        if (streq(normalized, "/"))
                return -errno;
        /* What is not there (or not ours to see) is where its nearest
         * existing parent really is: a link on the way is followed, so that
         * the answer does not depend on whether the rest exists. */
        last = strrchr(normalized, '/') + 1;
        parent = path_dirname(normalized);
        if (!parent)
                return -ENOMEM;
        r = path_canonical(parent, &resolved);
        if (r < 0)
                return r;
        if (asprintf(&t, "%s%s%s", resolved, streq(resolved, "/") ? "" : "/", last) < 0)
                return -ENOMEM;
        *ret = t;
        return 0;
}

int path_open_canonical(const char *path, int flags, mode_t type) {
        return path_open_beneath(AT_FDCWD, path, flags, type);
}

char *path_dirname(const char *path) {
        const char *slash = strrchr(path, '/');

        if (!slash || slash == path)
                return strdup("/");
        return strndup(path, slash - path);
}

int sandbox_find_executable(const char *name, const char *search_path, char **ret) {
        if (isempty(name))
                return -EINVAL;
        if (strchr(name, '/')) {
                struct stat st;

                if (stat(name, &st) < 0)
                        return -errno;
                if (!S_ISREG(st.st_mode) || access(name, X_OK) < 0)
                        return -ENOENT;
                *ret = strdup(name);
                return *ret ? 0 : -ENOMEM;
        }

        search_path = search_path ?: getenv("PATH") ?: DEFAULT_SEARCH_PATH;
        for (const char *s = search_path; *s;) {
                size_t n = strcspn(s, ":");
                _cleanup_free_ char *t = NULL;
                struct stat st;

                /* An empty or relative entry would mean the worker's cwd: never wanted. */
                if (n > 0 && s[0] == '/') {
                        if (asprintf(&t, "%.*s/%s", (int) n, s, name) < 0)
                                return -ENOMEM;
                        if (stat(t, &st) >= 0 && S_ISREG(st.st_mode) && access(t, X_OK) >= 0) {
                                *ret = TAKE_PTR(t);
                                return 0;
                        }
                }
                s += n;
                s += *s == ':';
        }
        return -ENOENT;
}

/* The npm package directory a file lies in, or NULL. */
static char *npm_package_root(const char *path) {
        const char *m = NULL, *s, *end;

        for (s = path; (s = strstr(s, "/node_modules/")); s++)
                m = s;
        if (!m)
                return NULL;
        s = m + strlen("/node_modules/");
        end = s + strcspn(s, "/");
        if (*s == '@' && *end == '/')
                end = end + 1 + strcspn(end + 1, "/");
        if (*end != '/')
                return NULL;
        return strndup(path, end - path);
}

/* The program a "#!/usr/bin/env node" or "#!/path/to/interp arg" line runs,
 * or NULL if there is no such line. */
static int shebang_program(const char *path, char **ret) {
        _cleanup_close_ int fd = -EBADF;
        char buf[256], *word, *save;
        ssize_t n;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return -errno;
        buf[n] = '\0';
        *ret = NULL;
        if (!startswith(buf, "#!"))
                return 0;
        buf[strcspn(buf, "\n")] = '\0';

        word = strtok_r(buf + 2, " \t", &save);
        if (word && streq(strrchr(word, '/') ? strrchr(word, '/') + 1 : word, "env"))
                /* env's own options (-S …) and NAME=VALUE come before the program. */
                do
                        word = strtok_r(NULL, " \t", &save);
                while (word && (word[0] == '-' || strchr(word, '=')));
        if (!word)
                return 0;
        *ret = strdup(word);
        return *ret ? 0 : -ENOMEM;
}

static int program_find(SandboxProgram *p, const char *name, const char *first_dir, unsigned depth, char **ret) {
        _cleanup_free_ char *found = NULL, *real = NULL, *root = NULL, *interp = NULL, *search = NULL;
        int r;

        if (first_dir && asprintf(&search, "%s:%s", first_dir, getenv("PATH") ?: DEFAULT_SEARCH_PATH) < 0)
                return -ENOMEM;
        r = sandbox_find_executable(name, search, &found);
        if (r < 0)
                return r;
        real = realpath(found, NULL);
        if (!real)
                return -errno;
        if (path_in_system(real)) {
                *ret = TAKE_PTR(found);
                return 0;
        }

        root = npm_package_root(real);
        r = strv_extend(&p->read_only, root ?: real);
        if (r < 0)
                return r;

        r = shebang_program(real, &interp);
        if (r < 0)
                return r;
        if (interp && depth < INTERPRETER_DEPTH_MAX) {
                _cleanup_free_ char *found_dir = path_dirname(found), *interp_path = NULL, *interp_dir = NULL;

                if (!found_dir)
                        return -ENOMEM;
                r = program_find(p, interp, found_dir, depth + 1, &interp_path);
                if (r < 0)
                        return r;
                /* "#!/usr/bin/env node" looks node up in the agent's $PATH. */
                interp_dir = path_dirname(interp_path);
                if (!interp_dir)
                        return -ENOMEM;
                if (!strchr(interp, '/') && !path_in_system(interp_dir)) {
                        r = strv_push(&p->path_dirs, TAKE_PTR(interp_dir));
                        if (r < 0)
                                return r;
                }
        }

        *ret = TAKE_PTR(real);
        return 0;
}

int sandbox_program_find(const char *name, SandboxProgram *ret) {
        _cleanup_(sandbox_program_done) SandboxProgram p = {};
        int r;

        r = program_find(&p, name, NULL, 0, &p.path);
        if (r < 0)
                return r;
        *ret = p;
        p = (SandboxProgram) {};
        return 0;
}

void sandbox_program_done(SandboxProgram *p) {
        free(p->path);
        strv_free(p->read_only);
        strv_free(p->path_dirs);
        *p = (SandboxProgram) {};
}

int path_open_beneath(int dir_fd, const char *path, int flags, mode_t type) {
        struct open_how how = {
                .flags = (uint64_t) (flags | O_NOFOLLOW | O_CLOEXEC),
                .resolve = (dir_fd == AT_FDCWD ? 0 : RESOLVE_BENEATH) | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        struct stat st;
        long fd;

        fd = syscall(SYS_openat2, dir_fd, path, &how, sizeof how);
        if (fd < 0)
                return -errno;
        if (fstat((int) fd, &st) < 0) {
                int r = -errno;

                (void) close((int) fd);
                return r;
        }
        if (S_ISLNK(st.st_mode) || (type != 0 && (st.st_mode & S_IFMT) != type)) {
                (void) close((int) fd);
                return S_ISDIR(st.st_mode) ? -EISDIR : -ENOTDIR;
        }
        return (int) fd;
}
