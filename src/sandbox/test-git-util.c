/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests of git-util.c against real repositories in a temporary directory: a
 * local repository with a tag and planted hooks, a bare one, and a "remote"
 * cloned through a file:// URL into the clone cache. */

#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "conf.h"
#include "git-util.h"
#include "sha256.h"
#include "tests.h"

/* git from a shell, without the GIT_DIR main() plants for git-util to ignore */
#define SHELL_GIT "env -u GIT_DIR -u GIT_INDEX_FILE git"

static char tmpdir[] = "/tmp/test-git-util-XXXXXX";
static char *repo, *hook_marker;
static char **garbage; /* strings the tests hand around, freed at the end */

static char *keep(char *s) {
        assert_se(s);
        assert_se(strv_push(&garbage, s) >= 0);
        return s;
}

static char *P(const char *fmt, ...) _printf_(1, 2) __attribute__((returns_nonnull));
static char *P(const char *fmt, ...) {
        va_list ap;
        char *s;

        va_start(ap, fmt);
        assert_se(vasprintf(&s, fmt, ap) >= 0);
        va_end(ap);
        return keep(s);
}

/* Runs git through git_run() and wants it to succeed; its stdout, one line. */
static char *git_ok(const char *dir, char *const *argv) {
        char *out = NULL, *err = NULL;
        size_t n;
        int r;

        r = git_run(dir, argv, 0, &out, &err);
        if (r != 0) {
                fprintf(stderr, "git %s in %s failed (%d): %s\n", argv[0], dir, r, strna(err));
                abort();
        }
        free(err);
        n = strlen(out);
        while (n > 0 && out[n - 1] == '\n')
                out[--n] = '\0';
        return keep(out);
}
#define GIT(dir, ...) git_ok((dir), (char *[]) { __VA_ARGS__, NULL })

static void write_file(const char *path, const char *content, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

        assert_se(fd >= 0);
        assert_se(write(fd, content, strlen(content)) == (ssize_t) strlen(content));
        assert_se(fchmod(fd, mode) == 0);
        assert_se(close(fd) == 0);
}

static char *read_file(const char *path) {
        char buf[64 * 1024];
        ssize_t n;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        assert_se(fd >= 0);
        n = read(fd, buf, sizeof buf - 1);
        assert_se(n >= 0);
        buf[n] = '\0';
        assert_se(close(fd) == 0);
        return keep(strdup(buf));
}

/* The whole file, binary too, as a sha256 digest. */
static char *file_digest(const char *path) {
        char hex[SHA256_HEX_SIZE], *data;
        struct stat st;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        assert_se(fd >= 0 && fstat(fd, &st) == 0);
        data = malloc((size_t) st.st_size + 1);
        assert_se(data && read(fd, data, (size_t) st.st_size) == st.st_size);
        sha256_hex(data, (size_t) st.st_size, hex);
        free(data);
        assert_se(close(fd) == 0);
        return keep(strdup(hex));
}

static char *index_of(const char *wt) {
        char *p = GIT(wt, "rev-parse", "--git-path", "index");

        return p[0] == '/' ? p : P("%s/%s", wt, p);
}

static bool exists(const char *path) {
        struct stat st;

        return lstat(path, &st) == 0;
}

static bool branch_exists(const char *dir, const char *branch) {
        char *argv[] = { "rev-parse", "-q", "--verify", P("refs/heads/%s", branch), NULL };
        int r = git_run(dir, argv, 0, NULL, NULL);

        assert_se(IN_SET(r, 0, 1));
        return r == 0;
}

static void commit_file(const char *dir, const char *name, const char *content, const char *message) {
        write_file(P("%s/%s", dir, name), content, 0644);
        GIT(dir, "add", "--", (char *) name);
        GIT(dir, "commit", "-q", "-m", (char *) message);
}

/* The repository every test starts from: main with two commits, tag v1 on
 * the first, and hooks (in .git/hooks and in a configured core.hooksPath)
 * that would leave a marker if git ever ran them. */
static void setup(void) {
        static const char *const hooks[] = {
                ".git/hooks/post-checkout", ".git/hooks/reference-transaction",
                "myhooks/post-checkout", "myhooks/reference-transaction",
        };
        char *hook = P("#!/bin/sh\ntouch '%s'\n", hook_marker);

        GIT(tmpdir, "init", "-q", "-b", "main", "repo");
        commit_file(repo, "README", "hello\n", "first");
        GIT(repo, "tag", "v1");
        assert_se(mkdir(P("%s/src", repo), 0755) == 0);
        commit_file(repo, "src/a.c", "int a;\n", "second");

        /* post-checkout fires on "worktree add", reference-transaction on every ref update. */
        assert_se(mkdir(P("%s/myhooks", repo), 0755) == 0);
        for (size_t i = 0; i < ELEMENTSOF(hooks); i++)
                write_file(P("%s/%s", repo, hooks[i]), hook, 0755);
        write_file(P("%s/.git/info/exclude", repo), "myhooks/\nfsmonitor\n", 0644);
        GIT(repo, "config", "core.hooksPath", "myhooks");
        /* An fsmonitor command runs on status and diff: another way in. */
        write_file(P("%s/fsmonitor", repo), hook, 0755);
        GIT(repo, "config", "core.fsmonitor", P("%s/fsmonitor", repo));

        /* They work: git run without makima's guard does fire them. */
        assert_se(system(P(SHELL_GIT " -C '%s' status >/dev/null 2>&1", repo)) == 0);
        assert_se(exists(hook_marker));
        assert_se(unlink(hook_marker) == 0);
        assert_se(system(P(SHELL_GIT " -c core.fsmonitor=false -C '%s' tag hook-check 2>/dev/null", repo)) == 0);
        assert_se(exists(hook_marker));
        assert_se(unlink(hook_marker) == 0);
        GIT(repo, "tag", "-d", "hook-check");
        assert_se(!exists(hook_marker));
}

static void test_is_url(void) {
        const char *urls[] = {
                "https://github.com/a/b.git", "http://example.com/x", "ssh://git@host:22/x.git",
                "git://host/x", "file:///tmp/x", "git@github.com:a/b.git", "host.example:repo",
                "git+ssh://host/x",
        };
        const char *paths[] = {
                "/tmp/x", "./x", "x", "", "https://", "ext::sh -c touch% /tmp/pwned", "/a:b",
                "a/b:c", ":x", "host:", "~/src/repo", "../up",
        };

        for (size_t i = 0; i < ELEMENTSOF(urls); i++)
                assert_se(git_repo_is_url(urls[i]));
        for (size_t i = 0; i < ELEMENTSOF(paths); i++)
                assert_se(!git_repo_is_url(paths[i]));
        assert_se(!git_repo_is_url(NULL));
}

static void test_run(void) {
        char *out = NULL, *err = NULL;

        /* Hooks are off and the environment's GIT_DIR does not leak in (main() set one). */
        assert_streq(GIT(repo, "config", "core.hooksPath"), "/dev/null");
        assert_streq(GIT(P("%s/src", repo), "rev-parse", "--show-toplevel"), repo);

        assert_se(git_run(repo, (char *[]) { "rev-parse", "--verify", "nope", NULL }, 0, &out, &err) == 128);
        assert_streq(out, "");
        assert_contains(err, "fatal: Needed a single revision");
        out = mfree(out);
        err = mfree(err);

        assert_se(git_run(P("%s/nonexistent", tmpdir), (char *[]) { "status", NULL }, 0, &out, &err) == -ENOENT);
        assert_se(!out && !err);
        assert_se(git_run(repo, (char *[]) { NULL }, 0, NULL, NULL) == -EINVAL);

        /* A limit on stdout cuts it, and git stopped early is no failure. */
        for (unsigned i = 0; i < 200; i++)
                GIT(repo, "commit", "-q", "--allow-empty", "-m", P("filler %u with some text to make the log long", i));
        assert_se(git_run(repo, (char *[]) { "log", NULL }, 1000, &out, NULL) == 0);
        assert_se(strlen(out) == 1000);
        out = mfree(out);
        assert_se(git_run(repo, (char *[]) { "log", "--oneline", NULL }, 0, &out, NULL) == 0);
        assert_se(strlen(out) > 10000);
        out = mfree(out);
}

static void test_resolve_local(void) {
        char *path = NULL, *error = NULL, *bare = P("%s/bare.git", tmpdir), *real_tmp = keep(realpath(tmpdir, NULL));

        assert_se(git_resolve_repo(repo, NULL, &path, &error) == 0 && !error);
        assert_streq(path, P("%s/repo", real_tmp));
        path = mfree(path);
        assert_se(git_resolve_repo(P("%s/src/", repo), NULL, &path, &error) == 0);
        assert_streq(path, P("%s/repo", real_tmp));
        path = mfree(path);

        GIT(tmpdir, "init", "-q", "--bare", "bare.git");
        assert_se(git_resolve_repo(bare, NULL, &path, &error) == 0);
        assert_streq(path, P("%s/bare.git", real_tmp));
        path = mfree(path);

        assert_se(git_resolve_repo(P("%s/missing", tmpdir), NULL, &path, &error) == -ENOENT && !path);
        assert_streq(error, P("repository '%s/missing' does not exist", tmpdir));
        error = mfree(error);

        assert_se(mkdir(P("%s/plain", tmpdir), 0755) == 0);
        assert_se(git_resolve_repo(P("%s/plain", tmpdir), NULL, &path, &error) == -EINVAL && !path);
        assert_streq(error, P("'%s/plain' is not a git repository", tmpdir));
        error = mfree(error);

        assert_se(git_resolve_repo(P("%s/README", repo), NULL, &path, &error) == -ENOTDIR);
        assert_streq(error, P("'%s/README' is not a git repository", repo));
        error = mfree(error);
}

static void test_resolve_url(void) {
        char *remote = P("%s/remote", tmpdir), *url = P("file://%s", remote), *cache = P("%s/cache/git", tmpdir);
        char *path = NULL, *path2 = NULL, *diff = NULL, *error = NULL, *branch = NULL, hex[SHA256_HEX_SIZE];
        char *first, *second;
        pid_t pids[2];
        int status;

        GIT(tmpdir, "init", "-q", "-b", "trunk", "remote");
        commit_file(remote, "r.txt", "one\n", "remote one");
        first = GIT(remote, "rev-parse", "HEAD");
        GIT(remote, "branch", "feature");

        assert_se(git_resolve_repo(url, NULL, &path, &error) == -EINVAL);
        error = mfree(error);

        sha256_hex(url, strlen(url), hex);
        assert_se(git_resolve_repo(url, cache, &path, &error) == 0 && !error);
        assert_streq(path, P("%s/%s", cache, hex));
        assert_streq(GIT(path, "rev-parse", "--is-bare-repository"), "true");
        assert_streq(GIT(path, "rev-parse", "origin/trunk"), first);
        assert_streq(GIT(path, "rev-parse", "origin/feature"), first);
        /* The remote's default branch, though its branches live under origin/. */
        assert_se(git_default_branch(path, &branch, &error) == 0);
        assert_streq(branch, "trunk");
        branch = mfree(branch);

        /* A second call fetches: new commits and tags arrive, deleted branches go. */
        commit_file(remote, "r.txt", "two\n", "remote two");
        second = GIT(remote, "rev-parse", "HEAD");
        GIT(remote, "tag", "r2");
        GIT(remote, "branch", "-D", "feature");
        assert_se(git_resolve_repo(url, cache, &path2, &error) == 0);
        assert_streq(path2, path);
        assert_streq(GIT(path, "rev-parse", "origin/trunk"), second);
        assert_streq(GIT(path, "rev-parse", "r2^{commit}"), second);
        assert_streq(GIT(path, "branch", "-r", "--list", "origin/feature"), "");
        path2 = mfree(path2);

        /* A worktree of the cached clone takes its base from origin/. */
        assert_se(git_worktree_prepare(path, "trunk", "task-url", P("%s/wt-url", tmpdir), NULL, &error) == 0);
        assert_streq(GIT(P("%s/wt-url", tmpdir), "rev-parse", "HEAD"), second);
        write_file(P("%s/wt-url/r.txt", tmpdir), "three\n", 0644);
        assert_se(git_worktree_diff(P("%s/wt-url", tmpdir), "trunk", 0, &diff, NULL, &error) == 0);
        assert_contains(diff, "-two\n+three\n");
        diff = mfree(diff);
        /* A fetch leaves the task's branch alone. */
        assert_se(git_resolve_repo(url, cache, &path2, &error) == 0);
        path2 = mfree(path2);
        assert_streq(GIT(path, "rev-parse", "task-url"), second);
        assert_se(git_worktree_remove(path, P("%s/wt-url", tmpdir), "task-url", true, &error) == 0);

        /* Two workers at once, on a URL not cloned yet: both get the one clone. */
        for (unsigned i = 0; i < ELEMENTSOF(pids); i++) {
                pids[i] = fork();
                assert_se(pids[i] >= 0);
                if (pids[i] == 0) {
                        char *p = NULL, *e = NULL;
                        int r = git_resolve_repo(P("file://%s/.git", remote), cache, &p, &e);

                        if (r < 0)
                                fprintf(stderr, "concurrent clone: %s\n", strna(e));
                        r = r == 0 && startswith(p, cache) && !streq(p, path) ? 0 : 1;
                        free(p);
                        free(e);
                        _exit(r);
                }
        }
        for (unsigned i = 0; i < ELEMENTSOF(pids); i++)
                assert_se(waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_se(git_resolve_repo(P("file://%s/.git", remote), cache, &path2, &error) == 0);
        assert_streq(GIT(path2, "rev-parse", "origin/trunk"), second);
        path2 = mfree(path2);

        /* A URL that does not clone leaves no half clone behind. */
        assert_se(git_resolve_repo(P("file://%s/nothing-here", tmpdir), cache, &path2, &error) < 0 && !path2);
        assert_contains(error, "nothing-here");
        error = mfree(error);
        assert_se(system(P("test -z \"$(ls -A '%s' | grep '^\\.')\"", cache)) == 0);
        free(path);
}

static void test_default_branch(void) {
        char *branch = NULL, *error = NULL, *detached = P("%s/detached", tmpdir);

        assert_se(git_default_branch(repo, &branch, &error) == 0);
        assert_streq(branch, "main");
        branch = mfree(branch);

        GIT(tmpdir, "clone", "-q", repo, "detached");
        GIT(detached, "checkout", "-q", "--detach", "HEAD");
        assert_se(git_default_branch(detached, &branch, &error) == -ENOENT && !branch);
        assert_contains(error, "not on a branch");
        error = mfree(error);

        assert_se(git_default_branch(P("%s/plain", tmpdir), &branch, &error) < 0 && !branch);
        assert_contains(error, "not a git repository");
        error = mfree(error);
}

static void test_prepare(void) {
        char *error = NULL, *wt1 = P("%s/wt1", tmpdir), *wt2 = P("%s/wt2", tmpdir), *wt3 = P("%s/wt3", tmpdir);
        char *main_id = GIT(repo, "rev-parse", "main"), *v1 = GIT(repo, "rev-parse", "v1^{commit}");
        char *first = GIT(repo, "rev-list", "--max-parents=0", "main"), *old;

        /* From a branch, a tag and a commit id, each on its own new branch. */
        assert_se(git_worktree_prepare(repo, "main", "task-1", wt1, NULL, &error) == 0 && !error);
        assert_streq(GIT(wt1, "rev-parse", "HEAD"), main_id);
        assert_streq(GIT(wt1, "symbolic-ref", "--short", "HEAD"), "task-1");
        assert_se(exists(P("%s/src/a.c", wt1)));
        assert_se(git_worktree_prepare(repo, "v1", "task-2", wt2, NULL, &error) == 0);
        assert_streq(GIT(wt2, "rev-parse", "HEAD"), v1);
        assert_se(!exists(P("%s/src/a.c", wt2)));
        assert_se(git_worktree_prepare(repo, first, "task-3", wt3, NULL, &error) == 0);
        assert_streq(GIT(wt3, "rev-parse", "HEAD"), first);
        /* No tracking setup, whatever the base was. */
        assert_streq(GIT(repo, "config", "--default", "none", "branch.task-1.merge"), "none");

        /* A restart reuses the worktree as the agent left it. */
        write_file(P("%s/README", wt1), "edited by the agent\n", 0644);
        assert_se(git_worktree_prepare(repo, "main", "task-1", wt1, NULL, &error) == 0);
        assert_streq(read_file(P("%s/README", wt1)), "edited by the agent\n");
        assert_se(git_worktree_prepare(repo, "main", "task-1", P("%s/./wt1/", tmpdir), NULL, &error) == 0);

        /* The path is another branch's worktree. */
        assert_se(git_worktree_prepare(repo, "main", "task-9", wt1, NULL, &error) == -EEXIST);
        assert_contains(error, "not on branch 'task-9'");
        error = mfree(error);
        assert_se(!branch_exists(repo, "task-9"));

        /* The branch of an earlier attempt, whose worktree is gone, is taken as it is. */
        GIT(wt3, "commit", "-q", "--allow-empty", "-m", "work of attempt one");
        old = GIT(wt3, "rev-parse", "HEAD");
        GIT(repo, "worktree", "remove", "--force", wt3);
        assert_se(git_worktree_prepare(repo, "main", "task-3", P("%s/wt3-again", tmpdir), NULL, &error) == 0);
        assert_streq(GIT(P("%s/wt3-again", tmpdir), "rev-parse", "HEAD"), old);

        /* A worktree directory deleted behind git's back is made again. */
        assert_se(system(P("rm -rf '%s'", wt2)) == 0);
        assert_se(git_worktree_prepare(repo, "v1", "task-2", wt2, NULL, &error) == 0);
        assert_streq(GIT(wt2, "rev-parse", "HEAD"), v1);

        /* An unknown base: nothing is created. */
        assert_se(git_worktree_prepare(repo, "nope", "task-4", P("%s/wt4", tmpdir), NULL, &error) == -ENOENT);
        assert_streq(error, P("base branch 'nope' does not exist in %s", repo));
        error = mfree(error);
        assert_se(!exists(P("%s/wt4", tmpdir)));
        assert_se(!branch_exists(repo, "task-4"));
        assert_se(git_worktree_prepare(repo, "--help", "task-4", P("%s/wt4", tmpdir), NULL, &error) == -ENOENT);
        error = mfree(error);
        assert_se(git_worktree_prepare(repo, "main", "-b", P("%s/wt4", tmpdir), NULL, &error) == -EINVAL);
        error = mfree(error);

        /* An empty directory (made by the worker beforehand) is fine. */
        assert_se(mkdir(P("%s/wt-empty", tmpdir), 0755) == 0);
        assert_se(git_worktree_prepare(repo, "main", "task-empty", P("%s/wt-empty", tmpdir), NULL, &error) == 0);
        assert_se(exists(P("%s/wt-empty/README", tmpdir)));

        /* A path git refuses: its words come back. */
        assert_se(git_worktree_prepare(repo, "main", "task-5", P("%s/README", repo), NULL, &error) == -EIO);
        assert_streq(error, P("fatal: '%s/README' already exists", keep(realpath(repo, NULL))));
        error = mfree(error);

        assert_se(!exists(hook_marker));
}

/* A worktree on branch task-copy (or task-esc) that wants one file copied. */
static int prepare_copying(const char *wt, const char *file, char **ret_error) {
        char *files[] = { (char *) file, NULL };

        return git_worktree_prepare(repo, "main", strstr(wt, "esc") ? "task-esc" : "task-copy", wt, files, ret_error);
}

static void test_copy_files(void) {
        char *error = NULL, *wt = P("%s/wt-copy", tmpdir), *esc = P("%s/wt-esc", tmpdir);
        char *outside = P("%s/outside", tmpdir);
        char *files[] = { ".env", "conf/local.yml", "secrets", "link-out", "missing", "deep/missing/x", NULL };
        struct stat st;

        write_file(P("%s/.env", repo), "TOKEN=1\n", 0600);
        assert_se(mkdir(P("%s/conf", repo), 0755) == 0);
        write_file(P("%s/conf/local.yml", repo), "local: true\n", 0644);
        assert_se(mkdir(P("%s/secrets", repo), 0750) == 0);
        assert_se(mkdir(P("%s/secrets/a", repo), 0700) == 0);
        write_file(P("%s/secrets/a/b.txt", repo), "nested\n", 0640);
        write_file(P("%s/secrets/run.sh", repo), "#!/bin/sh\n", 0755);
        assert_se(symlink("../../README", P("%s/secrets/a/readme", repo)) == 0);
        assert_se(symlink("/etc/passwd", P("%s/link-out", repo)) == 0);
        assert_se(mkdir(outside, 0755) == 0);
        write_file(P("%s/outside/secret", tmpdir), "host secret\n", 0600);
        assert_se(symlink(outside, P("%s/outdir", repo)) == 0);

        assert_se(git_worktree_prepare(repo, "main", "task-copy", wt, files, &error) == 0 && !error);
        assert_streq(read_file(P("%s/.env", wt)), "TOKEN=1\n");
        assert_se(stat(P("%s/.env", wt), &st) == 0 && (st.st_mode & 0777) == 0600);
        assert_streq(read_file(P("%s/conf/local.yml", wt)), "local: true\n");
        assert_se(stat(P("%s/secrets", wt), &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0750);
        assert_se(stat(P("%s/secrets/a", wt), &st) == 0 && (st.st_mode & 0777) == 0700);
        assert_streq(read_file(P("%s/secrets/a/b.txt", wt)), "nested\n");
        assert_se(stat(P("%s/secrets/a/b.txt", wt), &st) == 0 && (st.st_mode & 0777) == 0640);
        assert_se(stat(P("%s/secrets/run.sh", wt), &st) == 0 && (st.st_mode & 0777) == 0755);
        /* Symlinks are copied as symlinks, never followed. */
        assert_se(lstat(P("%s/link-out", wt), &st) == 0 && S_ISLNK(st.st_mode));
        assert_se(lstat(P("%s/secrets/a/readme", wt), &st) == 0 && S_ISLNK(st.st_mode));
        assert_se(!exists(P("%s/missing", wt)) && !exists(P("%s/deep", wt)));

        /* A restart copies again but never over what is there. */
        write_file(P("%s/.env", wt), "TOKEN=changed by the agent\n", 0600);
        assert_se(unlink(P("%s/conf/local.yml", wt)) == 0);
        assert_se(git_worktree_prepare(repo, "main", "task-copy", wt, files, &error) == 0);
        assert_streq(read_file(P("%s/.env", wt)), "TOKEN=changed by the agent\n");
        assert_streq(read_file(P("%s/conf/local.yml", wt)), "local: true\n");

        /* Escapes: by name before anything is made, through a symlink when met. */
        assert_se(prepare_copying(esc, "../x", &error) == -EINVAL);
        assert_contains(error, "'../x'");
        error = mfree(error);
        assert_se(!exists(esc));
        assert_se(prepare_copying(esc, "/etc/passwd", &error) == -EINVAL);
        error = mfree(error);
        assert_se(prepare_copying(esc, "a/../../x", &error) == -EINVAL);
        error = mfree(error);
        assert_se(prepare_copying(esc, "outdir/secret", &error) == -EINVAL);
        assert_contains(error, "leads out of the repository");
        error = mfree(error);
        assert_se(!exists(P("%s/outdir", esc)) && !exists(P("%s/secret", esc)));

        /* A symlink in the worktree does not lead a copy out of it either. */
        GIT(wt, "commit", "-q", "--allow-empty", "-m", "x");
        assert_se(symlink(outside, P("%s/conf2", wt)) == 0);
        write_file(P("%s/conf2", repo), "", 0644);
        assert_se(unlink(P("%s/conf2", repo)) == 0);
        assert_se(mkdir(P("%s/conf2", repo), 0755) == 0);
        write_file(P("%s/conf2/evil", repo), "evil\n", 0644);
        assert_se(prepare_copying(wt, "conf2/evil", &error) == -EINVAL);
        assert_contains(error, "leads out of the worktree");
        error = mfree(error);
        assert_se(!exists(P("%s/evil", outside)));

        /* Nothing to copy from a bare repository: no error either. */
        assert_se(git_worktree_prepare(P("%s/remote-bare.git", tmpdir), "trunk", "task-bare", P("%s/wt-bare", tmpdir),
                                       files, &error) == 0);
        assert_se(!exists(P("%s/wt-bare/.env", tmpdir)));
        assert_se(!exists(hook_marker));
}

static void test_remove(void) {
        char *error = NULL, *wt1 = P("%s/wt1", tmpdir), *wt2 = P("%s/wt2", tmpdir);

        assert_se(git_worktree_remove(repo, wt1, "task-1", false, &error) == 0 && !error);
        assert_se(!exists(wt1));
        assert_se(branch_exists(repo, "task-1"));
        assert_se(git_worktree_remove(repo, wt1, "task-1", false, &error) == 0);

        /* With the branch, which may be gone already. */
        assert_se(git_worktree_remove(repo, wt2, "task-2", true, &error) == 0);
        assert_se(!exists(wt2));
        assert_se(!branch_exists(repo, "task-2"));
        assert_se(git_worktree_remove(repo, wt2, "task-2", true, &error) == 0);
        assert_se(git_worktree_remove(repo, P("%s/never", tmpdir), "never", true, &error) == 0);

        /* A worktree deleted behind git's back is pruned; its branch can go. */
        assert_se(system(P("rm -rf '%s/wt3-again'", tmpdir)) == 0);
        assert_se(git_worktree_remove(repo, P("%s/wt3-again", tmpdir), "task-3", true, &error) == 0);
        assert_se(!strstr(GIT(repo, "worktree", "list"), "wt3-again"));
        assert_se(!branch_exists(repo, "task-3"));

        /* A branch another worktree has out is not deleted behind its back. */
        assert_se(git_worktree_remove(repo, wt1, "task-copy", true, &error) < 0);
        assert_contains(error, "task-copy");
        error = mfree(error);
        assert_se(git_worktree_remove(P("%s/missing", tmpdir), wt1, "x", true, &error) < 0);
        error = mfree(error);
}

static void test_diff(void) {
        char *error = NULL, *diff = NULL, *wt = P("%s/wt-diff", tmpdir), *status, *index, *objects;
        bool truncated = true;
        size_t full;

        assert_se(git_worktree_prepare(repo, "main", "task-diff", wt, NULL, &error) == 0);
        assert_se(git_worktree_diff(wt, "main", 0, &diff, &truncated, &error) == 0 && !error);
        assert_streq(diff, "");
        assert_se(!truncated);
        diff = mfree(diff);

        write_file(P("%s/committed.txt", wt), "committed line\n", 0644);
        GIT(wt, "add", "committed.txt");
        GIT(wt, "commit", "-q", "-m", "agent commit");
        write_file(P("%s/README", wt), "hello\nstaged line\n", 0644);
        GIT(wt, "add", "README");
        write_file(P("%s/src/a.c", wt), "int a;\nunstaged line\n", 0644);
        write_file(P("%s/untracked.txt", wt), "untracked line\n", 0644);
        assert_se(mkdir(P("%s/newdir", wt), 0755) == 0);
        write_file(P("%s/newdir/deep.txt", wt), "deep untracked line\n", 0644);
        assert_se(write(open(P("%s/blob.bin", wt), O_WRONLY | O_CREAT | O_CLOEXEC, 0644), "\0\1\2\3", 4) == 4);
        /* main moves on: only the task's own changes are its diff. */
        commit_file(repo, "later.txt", "on main after the branch\n", "later on main");

        status = GIT(wt, "status", "--porcelain");
        index = file_digest(index_of(wt));
        /* Intent-to-add entries name the empty blob, which git may write. */
        GIT(wt, "hash-object", "-w", "/dev/null");
        objects = GIT(wt, "count-objects");
        assert_se(git_worktree_diff(wt, "main", 0, &diff, &truncated, &error) == 0);
        assert_se(!truncated);
        assert_contains(diff, "+committed line\n");
        assert_contains(diff, "+staged line\n");
        assert_contains(diff, "+unstaged line\n");
        assert_contains(diff, "diff --git a/untracked.txt b/untracked.txt\nnew file mode 100644\n");
        assert_contains(diff, "+untracked line\n");
        assert_contains(diff, "+deep untracked line\n");
        assert_contains(diff, "Binary files /dev/null and b/blob.bin differ\n");
        assert_se(!strstr(diff, "later.txt"));
        full = strlen(diff);
        diff = mfree(diff);

        /* Nothing of the worktree changed: its index, status, object store (no blob of the untracked files). */
        assert_streq(file_digest(index_of(wt)), index);
        assert_streq(GIT(wt, "status", "--porcelain"), status);
        assert_streq(GIT(wt, "count-objects"), objects);
        assert_streq(GIT(wt, "diff", "--cached", "--name-only"), "README");

        assert_se(git_worktree_diff(wt, "main", 200, &diff, &truncated, &error) == 0);
        assert_se(truncated && strlen(diff) <= 200 && strlen(diff) > 0 && diff[strlen(diff) - 1] == '\n');
        diff = mfree(diff);
        assert_se(git_worktree_diff(wt, "main", full, &diff, &truncated, &error) == 0);
        assert_se(!truncated && strlen(diff) == full);
        diff = mfree(diff);

        /* Against a tag or a commit; an unknown base is named. */
        assert_se(git_worktree_diff(wt, "v1", 0, &diff, NULL, &error) == 0);
        assert_contains(diff, "+int a;\n");
        diff = mfree(diff);
        assert_se(git_worktree_diff(wt, "nope", 0, &diff, &truncated, &error) == -ENOENT && !diff);
        assert_streq(error, P("base branch 'nope' does not exist in %s", wt));
        error = mfree(error);
        assert_se(git_worktree_diff(P("%s/missing", tmpdir), "main", 0, &diff, &truncated, &error) < 0 && !diff);
        error = mfree(error);
}

static char *fingerprint(const char *wt) {
        char *f = NULL, *error = NULL;

        if (git_worktree_fingerprint(wt, &f, &error) < 0) {
                fprintf(stderr, "fingerprint of %s: %s\n", wt, strna(error));
                abort();
        }
        return keep(f);
}

/* A new fingerprint, unlike every one before, and stable while nothing changes. */
static void changed(const char *wt, char **seen, size_t *n) {
        char *f = fingerprint(wt);

        for (size_t i = 0; i < *n; i++)
                assert_se(!streq(f, seen[i]));
        assert_streq(fingerprint(wt), f);
        seen[(*n)++] = f;
}
#define CHANGED() changed(wt, seen, &n)

static void test_fingerprint(void) {
        char *error = NULL, *wt = P("%s/wt-fp", tmpdir), *seen[16];
        size_t n = 0;

        assert_se(git_worktree_prepare(repo, "main", "task-fp", wt, NULL, &error) == 0);
        CHANGED();
        assert_se(startswith(seen[0], GIT(wt, "rev-parse", "HEAD")));

        write_file(P("%s/README", wt), "edit one\n", 0644);
        CHANGED();
        /* Undone, it is as if it never happened. */
        write_file(P("%s/README", wt), "hello\n", 0644);
        assert_streq(fingerprint(wt), seen[0]);
        write_file(P("%s/README", wt), "edit one\n", 0644);
        assert_streq(fingerprint(wt), seen[1]);
        write_file(P("%s/README", wt), "edit two\n", 0644);
        CHANGED();
        write_file(P("%s/new.txt", wt), "new\n", 0644);
        CHANGED();
        write_file(P("%s/new.txt", wt), "new, edited\n", 0644);
        CHANGED();
        assert_se(chmod(P("%s/new.txt", wt), 0755) == 0);
        CHANGED();
        assert_se(symlink("README", P("%s/link", wt)) == 0);
        CHANGED();
        assert_se(unlink(P("%s/link", wt)) == 0 && symlink("new.txt", P("%s/link", wt)) == 0);
        CHANGED();
        assert_se(unlink(P("%s/src/a.c", wt)) == 0);
        CHANGED();
        GIT(wt, "add", "-A");
        GIT(wt, "commit", "-q", "-m", "agent work");
        CHANGED();
        assert_se(!startswith(seen[n - 1], seen[0]));
        assert_se(startswith(seen[n - 1], GIT(wt, "rev-parse", "HEAD")));
        /* An ignored file is no progress. */
        write_file(P("%s/.gitignore", wt), "*.log\n", 0644);
        CHANGED();
        write_file(P("%s/build.log", wt), "noise\n", 0644);
        assert_streq(fingerprint(wt), seen[n - 1]);

        assert_se(git_worktree_fingerprint(P("%s/missing", tmpdir), &seen[0], &error) < 0);
        error = mfree(error);
}

int main(void) {
        char *bare_remote;

        assert_se(mkdtemp(tmpdir));
        repo = P("%s/repo", tmpdir);
        hook_marker = P("%s/hook-ran", tmpdir);

        /* An isolated git: no user or system config, a fixed identity, and a
         * GIT_DIR/GIT_INDEX_FILE that git-util must not pass on. */
        assert_se(setenv("HOME", tmpdir, 1) == 0);
        assert_se(setenv("GIT_CONFIG_NOSYSTEM", "1", 1) == 0);
        assert_se(setenv("GIT_AUTHOR_NAME", "Test", 1) == 0);
        assert_se(setenv("GIT_AUTHOR_EMAIL", "test@example.com", 1) == 0);
        assert_se(setenv("GIT_COMMITTER_NAME", "Test", 1) == 0);
        assert_se(setenv("GIT_COMMITTER_EMAIL", "test@example.com", 1) == 0);
        assert_se(setenv("GIT_DIR", P("%s/nowhere", tmpdir), 1) == 0);
        assert_se(setenv("GIT_INDEX_FILE", P("%s/nowhere/index", tmpdir), 1) == 0);

        setup();
        test_is_url();
        test_run();
        test_resolve_local();
        test_resolve_url();
        bare_remote = P("%s/remote-bare.git", tmpdir);
        GIT(tmpdir, "clone", "-q", "--bare", P("%s/remote", tmpdir), bare_remote);
        test_default_branch();
        test_prepare();
        test_copy_files();
        test_remove();
        test_diff();
        test_fingerprint();
        assert_se(!exists(hook_marker));

        assert_se(system(P("rm -rf '%s'", tmpdir)) == 0);
        strv_free(garbage);
        return 0;
}
