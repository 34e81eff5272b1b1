/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests of git-util.c against real repositories in a temporary directory,
 * with every git of makima's in its real sandbox (bwrap): a local
 * repository with a tag, planted hooks, an fsmonitor and filter drivers
 * that would leave a marker if they ever ran; a bare one; a "remote" cloned
 * through a file:// URL into a clone cache; tasks' own repositories made
 * from them. The test's own git (fixtures, checks) runs directly. */

#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "conf.h"
#include "git-util.h"
#include "sandbox-identity.h"
#include "sha256.h"
#include "tests.h"

extern char **environ;

static char tmpdir[] = "/var/tmp/test-git-util-XXXXXX";
static char *repo, *marker;
static char **garbage; /* strings the tests hand around, freed at the end */
static Config config;
static SandboxIdentity self;
static GitContext ctx;

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

/* The test's own git, not makima's: status and stdout (one line, kept). */
static int run_git(const char *dir, char *const *argv, char **ret_out) {
        char *full[64] = { "git", "-C", (char *) dir };
        char buf[65536];
        size_t n = 3, len = 0;
        int p[2], status;
        posix_spawn_file_actions_t fa;
        pid_t pid;
        ssize_t k;

        char *env[256];
        size_t e = 0;

        for (size_t i = 0; argv[i]; i++)
                full[n++] = argv[i];
        full[n] = NULL;
        /* The GIT_DIR the tests plant for makima's git to ignore is not for ours. */
        for (char **i = environ; *i && e < ELEMENTSOF(env) - 1; i++)
                if (!startswith(*i, "GIT_DIR=") && !startswith(*i, "GIT_INDEX_FILE="))
                        env[e++] = *i;
        env[e] = NULL;
        assert_se(pipe2(p, O_CLOEXEC) == 0);
        assert_se(posix_spawn_file_actions_init(&fa) == 0);
        assert_se(posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO) == 0);
        assert_se(posix_spawnp(&pid, "git", &fa, NULL, full, env) == 0);
        posix_spawn_file_actions_destroy(&fa);
        assert_se(close(p[1]) == 0);
        while ((k = read(p[0], buf + len, sizeof buf - 1 - len)) > 0)
                len += (size_t) k;
        assert_se(close(p[0]) == 0);
        buf[len] = '\0';
        while (len > 0 && buf[len - 1] == '\n')
                buf[--len] = '\0';
        assert_se(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
        if (ret_out)
                *ret_out = keep(strdup(buf));
        return WEXITSTATUS(status);
}

static char *git_ok(const char *dir, char *const *argv) {
        char *out;

        if (run_git(dir, argv, &out) != 0) {
                fprintf(stderr, "git %s in %s failed\n", argv[0], dir);
                abort();
        }
        return out;
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

/* The whole file as a sha256 digest. */
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

static bool exists(const char *path) {
        struct stat st;

        return lstat(path, &st) == 0;
}

static void commit_file(const char *dir, const char *name, const char *content, const char *message) {
        write_file(P("%s/%s", dir, name), content, 0644);
        GIT(dir, "add", "--", (char *) name);
        GIT(dir, "commit", "-q", "-m", (char *) message);
}

/* Everything the repository holds, refs and objects, as one digest: it must
 * not change, whatever a task does. */
static char *repository_state(const char *dir) {
        return P("%s|%s", GIT(dir, "for-each-ref", "--format=%(refname) %(objectname)"), GIT(dir, "count-objects", "-v"));
}

/* A marker-leaving program, the hook, fsmonitor and filter every test plants. */
static char *evil_command(void) {
        return P("sh -c 'echo ran >>%s; cat'", marker);
}

/* The repository every test starts from: main with two commits, tag v1 on
 * the first, and everything of the repository's that could make git run a
 * command: hooks (in .git/hooks and a core.hooksPath), an fsmonitor, and
 * a filter driver with the attribute that applies it to every file. */
static void setup(void) {
        static const char *const hooks[] = {
                ".git/hooks/post-checkout", ".git/hooks/reference-transaction",
                "myhooks/post-checkout", "myhooks/reference-transaction",
        };
        char *hook = P("#!/bin/sh\necho ran >>'%s'\n", marker);

        GIT(tmpdir, "init", "-q", "-b", "main", "repo");
        commit_file(repo, "README", "hello\n", "first");
        GIT(repo, "tag", "v1");
        assert_se(mkdir(P("%s/src", repo), 0755) == 0);
        commit_file(repo, "src/a.c", "int a;\n", "second");

        assert_se(mkdir(P("%s/myhooks", repo), 0755) == 0);
        for (size_t i = 0; i < ELEMENTSOF(hooks); i++)
                write_file(P("%s/%s", repo, hooks[i]), hook, 0755);
        write_file(P("%s/.git/info/exclude", repo), "myhooks/\nfsmonitor\n", 0644);
        write_file(P("%s/fsmonitor", repo), hook, 0755);
        /* They work: git run without makima's guard does fire them. */
        GIT(repo, "config", "core.hooksPath", "myhooks");
        assert_se(system(P("git -C '%s' tag hook-check 2>/dev/null", repo)) == 0);
        assert_se(exists(marker) && unlink(marker) == 0);
        GIT(repo, "tag", "-d", "hook-check");
        GIT(repo, "config", "core.fsmonitor", P("%s/fsmonitor", repo));
        GIT(repo, "config", "filter.evil.smudge", evil_command());
        GIT(repo, "config", "filter.evil.clean", evil_command());
        write_file(P("%s/.git/info/attributes", repo), "* filter=evil\n", 0644);
        assert_se(system(P("git -C '%s' status >/dev/null 2>&1", repo)) == 0);
        assert_se(exists(marker) && unlink(marker) == 0);
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

static void test_resolve_local(void) {
        char *path = NULL, *error = NULL, *bare = P("%s/bare.git", tmpdir), *real_tmp = keep(realpath(tmpdir, NULL));

        assert_se(git_resolve_repo(&ctx, repo, NULL, &path, &error) == 0 && !error);
        assert_streq(path, P("%s/repo", real_tmp));
        path = mfree(path);
        assert_se(git_resolve_repo(&ctx, P("%s/src/", repo), NULL, &path, &error) == 0);
        assert_streq(path, P("%s/repo", real_tmp));
        path = mfree(path);

        GIT(tmpdir, "init", "-q", "--bare", "bare.git");
        assert_se(git_resolve_repo(&ctx, bare, NULL, &path, &error) == 0);
        assert_streq(path, P("%s/bare.git", real_tmp));
        path = mfree(path);

        assert_se(git_resolve_repo(&ctx, P("%s/missing", tmpdir), NULL, &path, &error) == -ENOENT && !path);
        assert_streq(error, P("repository '%s/missing' does not exist", tmpdir));
        error = mfree(error);

        assert_se(mkdir(P("%s/plain", tmpdir), 0755) == 0);
        assert_se(git_resolve_repo(&ctx, P("%s/plain", tmpdir), NULL, &path, &error) == -EINVAL && !path);
        assert_streq(error, P("'%s/plain' is not a git repository", tmpdir));
        error = mfree(error);

        assert_se(git_resolve_repo(&ctx, P("%s/README", repo), NULL, &path, &error) == -ENOTDIR);
        assert_streq(error, P("'%s/README' is not a git repository", repo));
        error = mfree(error);
        assert_se(!exists(marker));
}

static void test_resolve_url(void) {
        char *remote = P("%s/remote", tmpdir), *url = P("file://%s", remote), *cache = P("%s/cache/git", tmpdir);
        char *path = NULL, *path2 = NULL, *error = NULL, *branch = NULL, hex[SHA256_HEX_SIZE];
        char *first, *second;
        pid_t pids[2];
        int status;

        GIT(tmpdir, "init", "-q", "-b", "trunk", "remote");
        commit_file(remote, "r.txt", "one\n", "remote one");
        first = GIT(remote, "rev-parse", "HEAD");
        GIT(remote, "branch", "feature");

        assert_se(git_resolve_repo(&ctx, url, NULL, &path, &error) == -EINVAL);
        error = mfree(error);

        sha256_hex(url, strlen(url), hex);
        assert_se(git_resolve_repo(&ctx, url, cache, &path, &error) == 0 && !error);
        assert_streq(path, P("%s/%s", cache, hex));
        assert_streq(GIT(path, "rev-parse", "--is-bare-repository"), "true");
        assert_streq(GIT(path, "rev-parse", "origin/trunk"), first);
        assert_streq(GIT(path, "rev-parse", "origin/feature"), first);
        /* The remote's default branch, though its branches live under origin/. */
        assert_se(git_default_branch(&ctx, path, &branch, &error) == 0);
        assert_streq(branch, "trunk");
        branch = mfree(branch);

        /* A second call fetches: new commits and tags arrive, deleted branches go. */
        commit_file(remote, "r.txt", "two\n", "remote two");
        second = GIT(remote, "rev-parse", "HEAD");
        GIT(remote, "tag", "r2");
        GIT(remote, "branch", "-D", "feature");
        assert_se(git_resolve_repo(&ctx, url, cache, &path2, &error) == 0);
        assert_streq(path2, path);
        assert_streq(GIT(path, "rev-parse", "origin/trunk"), second);
        assert_streq(GIT(path, "rev-parse", "r2^{commit}"), second);
        assert_streq(GIT(path, "branch", "-r", "--list", "origin/feature"), "");
        path2 = mfree(path2);

        /* Two workers at once, on a URL not cloned yet: both get the one clone. */
        for (unsigned i = 0; i < ELEMENTSOF(pids); i++) {
                pids[i] = fork();
                assert_se(pids[i] >= 0);
                if (pids[i] == 0) {
                        char *p = NULL, *e = NULL;
                        int r = git_resolve_repo(&ctx, P("file://%s/.git", remote), cache, &p, &e);

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
        assert_se(git_resolve_repo(&ctx, P("file://%s/.git", remote), cache, &path2, &error) == 0);
        assert_streq(GIT(path2, "rev-parse", "origin/trunk"), second);
        path2 = mfree(path2);

        /* A URL that does not clone leaves no half clone behind. */
        assert_se(git_resolve_repo(&ctx, P("file://%s/nothing-here", tmpdir), cache, &path2, &error) < 0 && !path2);
        assert_contains(error, "nothing-here");
        error = mfree(error);
        assert_se(system(P("test -z \"$(ls -A '%s' | grep '^\\.')\"", cache)) == 0);
        free(path);
}

static void test_default_branch(void) {
        char *branch = NULL, *error = NULL, *detached = P("%s/detached", tmpdir);

        assert_se(git_default_branch(&ctx, repo, &branch, &error) == 0);
        assert_streq(branch, "main");
        branch = mfree(branch);

        GIT(tmpdir, "clone", "-q", repo, "detached");
        GIT(detached, "checkout", "-q", "--detach", "HEAD");
        assert_se(git_default_branch(&ctx, detached, &branch, &error) == -ENOENT && !branch);
        assert_contains(error, "not on a branch");
        error = mfree(error);
}

/* A task's directories, empty, as the worker makes them. */
typedef struct TT {
        char *worktree, *git_dir;
        char **borrowed;
        GitTaskRepo repo;
} TT;

static TT *task(const char *name, const char *from) {
        TT *t = calloc(1, sizeof(TT));
        char *error = NULL;

        assert_se(t);
        t->worktree = P("%s/wt-%s", tmpdir, name);
        t->git_dir = P("%s/git-%s", tmpdir, name);
        (void) mkdir(t->worktree, 0755);
        (void) mkdir(t->git_dir, 0755);
        if (git_repo_object_dirs(&ctx, from, &t->borrowed, &error) < 0) {
                fprintf(stderr, "object dirs of %s: %s\n", from, strna(error));
                abort();
        }
        t->repo = (GitTaskRepo) { .worktree = t->worktree, .git_dir = t->git_dir, .borrowed = t->borrowed };
        return t;
}

static void tt_free(TT *t) {
        strv_free(t->borrowed);
        free(t);
}

static int prepare(TT *t, const char *from, const char *base, const char *branch, char *const *copy,
                   char **ret_base, char **ret_error) {
        return git_task_repo_prepare(&ctx, &t->repo, from, base, branch, copy, ret_base, ret_error);
}

#define TGIT(t, ...) GIT((t)->worktree, __VA_ARGS__)

static void test_prepare(void) {
        char *error = NULL, *base = NULL, *state = repository_state(repo), *objects;
        char *main_id = GIT(repo, "rev-parse", "main"), *v1 = GIT(repo, "rev-parse", "v1^{commit}");
        char *first = GIT(repo, "rev-list", "--max-parents=0", "main");
        TT *t1 = task("1", repo), *t2 = task("2", repo), *t3 = task("3", repo), *t4 = task("4", repo);

        /* The repository's objects, and only that: one borrowed directory. */
        objects = P("%s/.git/objects", keep(realpath(repo, NULL)));
        assert_se(strv_length(t1->borrowed) == 1);
        assert_streq(t1->borrowed[0], objects);

        /* From a branch, a tag and a commit id, each on its own new branch. */
        assert_se(prepare(t1, repo, "main", "task-1", NULL, &base, &error) == 0 && !error);
        assert_streq(base, main_id);
        base = mfree(base);
        assert_streq(TGIT(t1, "rev-parse", "HEAD"), main_id);
        assert_streq(TGIT(t1, "symbolic-ref", "--short", "HEAD"), "task-1");
        assert_streq(TGIT(t1, "rev-parse", "--absolute-git-dir"), t1->git_dir);
        assert_se(exists(P("%s/src/a.c", t1->worktree)));
        assert_streq(read_file(P("%s/README", t1->worktree)), "hello\n");
        /* The base under its own name, for the agent; nothing else of the repository's. */
        assert_streq(TGIT(t1, "rev-parse", "main"), main_id);
        assert_streq(TGIT(t1, "for-each-ref", "--format=%(refname)"), "refs/heads/main\nrefs/heads/task-1");
        assert_streq(read_file(P("%s/objects/info/alternates", t1->git_dir)), P("%s\n", objects));
        assert_streq(TGIT(t1, "status", "--porcelain"), "");

        assert_se(prepare(t2, repo, "v1", "task-2", NULL, &base, &error) == 0);
        assert_streq(base, v1);
        base = mfree(base);
        assert_streq(TGIT(t2, "rev-parse", "HEAD"), v1);
        assert_se(!exists(P("%s/src/a.c", t2->worktree)));
        assert_se(prepare(t3, repo, first, "task-3", NULL, NULL, &error) == 0);
        assert_streq(TGIT(t3, "rev-parse", "HEAD"), first);

        /* The agent's commits are the task's alone. */
        write_file(P("%s/README", t1->worktree), "edited by the agent\n", 0644);
        TGIT(t1, "commit", "-q", "-am", "agent work");
        assert_streq(repository_state(repo), state);
        assert_se(run_git(repo, (char *[]) { "cat-file", "-e", TGIT(t1, "rev-parse", "HEAD"), NULL }, NULL) != 0);

        /* A restart keeps the repository as the agent left it. */
        write_file(P("%s/README", t1->worktree), "edited again\n", 0644);
        assert_se(prepare(t1, repo, "main", "task-1", NULL, &base, &error) == 0 && !base);
        assert_streq(read_file(P("%s/README", t1->worktree)), "edited again\n");
        assert_streq(TGIT(t1, "log", "-1", "--format=%s"), "agent work");

        /* An unknown base, a bad branch name. */
        assert_se(prepare(t4, repo, "nope", "task-4", NULL, NULL, &error) == -ENOENT);
        assert_streq(error, P("base branch 'nope' does not exist in %s", repo));
        error = mfree(error);
        assert_se(!exists(P("%s/HEAD", t4->git_dir)));
        assert_se(prepare(t4, repo, "--help", "task-4", NULL, NULL, &error) == -ENOENT);
        error = mfree(error);
        assert_se(prepare(t4, repo, "main", "-b", NULL, NULL, &error) == -EINVAL);
        error = mfree(error);

        /* A worktree of another repository (an older makima's linked worktree) is refused. */
        write_file(P("%s/.git", t4->worktree), "gitdir: /elsewhere/.git/worktrees/x\n", 0644);
        assert_se(prepare(t4, repo, "main", "task-4", NULL, NULL, &error) == -EEXIST);
        assert_contains(error, "worktree of another repository");
        error = mfree(error);

        /* Nothing of the repository's ran: no hook, no fsmonitor, no filter;
         * and nothing of it changed. */
        assert_se(!exists(marker));
        assert_streq(repository_state(repo), state);
        tt_free(t1);
        tt_free(t2);
        tt_free(t3);
        tt_free(t4);
}

static void test_copy_files(void) {
        char *error = NULL, *outside = P("%s/outside", tmpdir);
        char *files[] = { ".env", "conf/local.yml", "secrets", "link-out", "missing", "deep/missing/x", NULL };
        TT *t = task("copy", repo), *esc = task("esc", repo), *bare = task("bare", P("%s/bare.git", tmpdir));
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

        assert_se(prepare(t, repo, "main", "task-copy", files, NULL, &error) == 0 && !error);
        assert_streq(read_file(P("%s/.env", t->worktree)), "TOKEN=1\n");
        /* The group (the agents') gets the owner's rights, others nothing. */
        assert_se(stat(P("%s/.env", t->worktree), &st) == 0 && (st.st_mode & 0777) == 0660);
        assert_streq(read_file(P("%s/conf/local.yml", t->worktree)), "local: true\n");
        assert_se(stat(P("%s/secrets", t->worktree), &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0770);
        assert_streq(read_file(P("%s/secrets/a/b.txt", t->worktree)), "nested\n");
        assert_se(stat(P("%s/secrets/a/b.txt", t->worktree), &st) == 0 && (st.st_mode & 0777) == 0660);
        assert_se(stat(P("%s/secrets/run.sh", t->worktree), &st) == 0 && (st.st_mode & 0777) == 0770);
        /* Symlinks are copied as symlinks, never followed. */
        assert_se(lstat(P("%s/link-out", t->worktree), &st) == 0 && S_ISLNK(st.st_mode));
        assert_se(lstat(P("%s/secrets/a/readme", t->worktree), &st) == 0 && S_ISLNK(st.st_mode));
        assert_se(!exists(P("%s/missing", t->worktree)) && !exists(P("%s/deep", t->worktree)));

        /* Escapes: by name before anything is made, through a symlink when met. */
        FOREACH_STRING(bad, "../x", "/etc/passwd", "a/../../x") {
                char *one[] = { (char *) bad, NULL };

                assert_se(prepare(esc, repo, "main", "task-esc", one, NULL, &error) == -EINVAL);
                assert_contains(error, bad);
                error = mfree(error);
                assert_se(!exists(P("%s/HEAD", esc->git_dir)));
        }
        {
                char *one[] = { "outdir/secret", NULL };

                assert_se(prepare(esc, repo, "main", "task-esc", one, NULL, &error) == -EINVAL);
                assert_contains(error, "leads out of the repository");
                error = mfree(error);
                assert_se(!exists(P("%s/outdir", esc->worktree)) && !exists(P("%s/secret", esc->worktree)));
        }

        /* Nothing to copy from a bare repository: no error either. */
        GIT(P("%s/bare.git", tmpdir), "fetch", "-q", repo, "main:main");
        assert_se(prepare(bare, P("%s/bare.git", tmpdir), "main", "task-bare", files, NULL, &error) == 0);
        assert_se(!exists(P("%s/.env", bare->worktree)));
        assert_se(!exists(marker));
        tt_free(t);
        tt_free(esc);
        tt_free(bare);
}

/* A nested repository in the worktree with a clean filter on all its files
 * and a change to one, added to the task's index as a gitlink: a git that
 * asked whether the nested repository is dirty would run the filter. The
 * change keeps the size and the nested index is as new as the file (racy),
 * so that such a git must hash the file, through the filter. */
static void plant_nested_repository(const char *worktree, const char *content) {
        char *nested = P("%s/nested", worktree);

        if (!exists(nested)) {
                GIT(worktree, "init", "-q", "nested");
                commit_file(nested, "f", "one\n", "nested");
                GIT(nested, "config", "filter.x.clean", evil_command());
                write_file(P("%s/.gitattributes", nested), "* filter=x\n", 0644);
                GIT(worktree, "-c", "advice.addEmbeddedRepo=false", "add", "nested");
        }
        write_file(P("%s/f", nested), content, 0644);
        assert_se(system(P("touch -r '%s/f' '%s/.git/index'", nested, nested)) == 0);
        /* It works: the worktree's own git, asked, runs it. */
        assert_se(system(P("git -C '%s' status >/dev/null 2>&1", worktree)) == 0);
        assert_se(exists(marker) && unlink(marker) == 0);
        assert_se(system(P("touch -r '%s/f' '%s/.git/index'", nested, nested)) == 0);
}

static void test_diff(void) {
        char *error = NULL, *diff = NULL, *status, *index, *objects, *base = NULL;
        bool truncated = true;
        TT *t = task("diff", repo);
        size_t full;

        assert_se(prepare(t, repo, "main", "task-diff", NULL, &base, &error) == 0);
        assert_se(git_worktree_diff(&ctx, &t->repo, base, 0, &diff, &truncated, &error) == 0 && !error);
        assert_streq(diff, "");
        assert_se(!truncated);
        diff = mfree(diff);

        write_file(P("%s/committed.txt", t->worktree), "committed line\n", 0644);
        TGIT(t, "add", "committed.txt");
        TGIT(t, "commit", "-q", "-m", "agent commit");
        write_file(P("%s/README", t->worktree), "hello\nstaged line\n", 0644);
        TGIT(t, "add", "README");
        write_file(P("%s/src/a.c", t->worktree), "int a;\nunstaged line\n", 0644);
        write_file(P("%s/untracked.txt", t->worktree), "untracked line\n", 0644);
        assert_se(mkdir(P("%s/newdir", t->worktree), 0755) == 0);
        write_file(P("%s/newdir/deep.txt", t->worktree), "deep untracked line\n", 0644);
        assert_se(write(open(P("%s/blob.bin", t->worktree), O_WRONLY | O_CREAT | O_CLOEXEC, 0644), "\0\1\2\3", 4) == 4);
        /* The agent moves its copy of main: the diff is against where it started. */
        TGIT(t, "branch", "-f", "main", "HEAD");
        /* main moves on in the repository: only the task's own changes are its diff. */
        commit_file(repo, "later.txt", "on main after the branch\n", "later on main");

        status = TGIT(t, "status", "--porcelain");
        index = file_digest(P("%s/index", t->git_dir));
        objects = TGIT(t, "count-objects", "-v");
        assert_se(git_worktree_diff(&ctx, &t->repo, base, 0, &diff, &truncated, &error) == 0);
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

        /* Nothing of the task changed: its index, status, object store. */
        assert_streq(file_digest(P("%s/index", t->git_dir)), index);
        assert_streq(TGIT(t, "status", "--porcelain"), status);
        assert_streq(TGIT(t, "count-objects", "-v"), objects);

        assert_se(git_worktree_diff(&ctx, &t->repo, base, 200, &diff, &truncated, &error) == 0);
        assert_se(truncated && strlen(diff) <= 200 && strlen(diff) > 0 && diff[strlen(diff) - 1] == '\n');
        diff = mfree(diff);
        assert_se(git_worktree_diff(&ctx, &t->repo, base, full, &diff, &truncated, &error) == 0);
        assert_se(!truncated && strlen(diff) == full);
        diff = mfree(diff);

        /* Against a branch of the task's own; an unknown base is named. */
        assert_se(git_worktree_diff(&ctx, &t->repo, "task-diff", 0, &diff, NULL, &error) == 0);
        assert_contains(diff, "+staged line\n");
        assert_se(!strstr(diff, "committed line"));
        diff = mfree(diff);
        assert_se(git_worktree_diff(&ctx, &t->repo, "nope", 0, &diff, &truncated, &error) == -ENOENT && !diff);
        assert_streq(error, P("base branch 'nope' does not exist in %s", t->git_dir));
        error = mfree(error);

        /* A nested repository is shown as its HEAD, never entered. */
        plant_nested_repository(t->worktree, "two\n");
        assert_se(git_worktree_diff(&ctx, &t->repo, base, 0, &diff, NULL, &error) == 0);
        assert_contains(diff, "+Subproject commit ");
        diff = mfree(diff);
        assert_se(!exists(marker));
        free(base);
        tt_free(t);
}

static char *fingerprint(const TT *t) {
        char *f = NULL, *error = NULL;

        if (git_worktree_fingerprint(&ctx, &t->repo, &f, &error) < 0) {
                fprintf(stderr, "fingerprint of %s: %s\n", t->worktree, strna(error));
                abort();
        }
        return keep(f);
}

/* A new fingerprint, unlike every one before, and stable while nothing changes. */
static void changed(const TT *t, char **seen, size_t *n) {
        char *f = fingerprint(t);

        for (size_t i = 0; i < *n; i++)
                assert_se(!streq(f, seen[i]));
        assert_streq(fingerprint(t), f);
        seen[(*n)++] = f;
}
#define CHANGED() changed(t, seen, &n)

static void test_fingerprint(void) {
        char *error = NULL, *seen[16], *wt;
        TT *t = task("fp", repo);
        size_t n = 0;

        assert_se(prepare(t, repo, "main", "task-fp", NULL, NULL, &error) == 0);
        wt = t->worktree;
        CHANGED();
        assert_se(startswith(seen[0], TGIT(t, "rev-parse", "HEAD")));

        write_file(P("%s/README", wt), "edit one\n", 0644);
        CHANGED();
        /* Undone, it is as if it never happened. */
        write_file(P("%s/README", wt), "hello\n", 0644);
        assert_streq(fingerprint(t), seen[0]);
        write_file(P("%s/README", wt), "edit one\n", 0644);
        assert_streq(fingerprint(t), seen[1]);
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
        TGIT(t, "add", "-A");
        TGIT(t, "commit", "-q", "-m", "agent work");
        CHANGED();
        assert_se(!startswith(seen[n - 1], seen[0]));
        assert_se(startswith(seen[n - 1], TGIT(t, "rev-parse", "HEAD")));
        /* An ignored file is no progress. */
        write_file(P("%s/.gitignore", wt), "*.log\n", 0644);
        CHANGED();
        write_file(P("%s/build.log", wt), "noise\n", 0644);
        assert_streq(fingerprint(t), seen[n - 1]);
        /* Nor is a nested repository's working tree: it is never entered. */
        plant_nested_repository(wt, "two\n");
        CHANGED();
        plant_nested_repository(wt, "six\n");
        assert_streq(fingerprint(t), seen[n - 1]);
        assert_se(!exists(marker));

        t->repo.worktree = P("%s/missing", tmpdir);
        assert_se(git_worktree_fingerprint(&ctx, &t->repo, &seen[0], &error) < 0);
        error = mfree(error);
        tt_free(t);
}

int main(void) {
        /* Not under /tmp: the sandbox's /tmp is a tmpfs of its own (it works
         * there too, but a path outside tells a bind from a private copy). */
        assert_se(mkdtemp(tmpdir));
        repo = P("%s/repo", tmpdir);
        marker = P("%s/command-ran", tmpdir);

        /* An isolated git for the test's own commands: no user or system
         * config, a fixed identity. GIT_DIR and GIT_INDEX_FILE point
         * nowhere: makima's git must not take them. */
        assert_se(setenv("HOME", tmpdir, 1) == 0);
        assert_se(setenv("GIT_CONFIG_NOSYSTEM", "1", 1) == 0);
        assert_se(setenv("GIT_AUTHOR_NAME", "Test", 1) == 0);
        assert_se(setenv("GIT_AUTHOR_EMAIL", "test@example.com", 1) == 0);
        assert_se(setenv("GIT_COMMITTER_NAME", "Test", 1) == 0);
        assert_se(setenv("GIT_COMMITTER_EMAIL", "test@example.com", 1) == 0);
        assert_se(setenv("GIT_CONFIG_COUNT", "1", 1) == 0);
        assert_se(setenv("GIT_CONFIG_KEY_0", "safe.directory", 1) == 0);
        assert_se(setenv("GIT_CONFIG_VALUE_0", "*", 1) == 0);

        if (system("bwrap --unshare-user --ro-bind / / true 2>/dev/null") != 0) {
                fprintf(stderr, "bwrap cannot make a sandbox here; skipping\n");
                return 77;
        }
        assert_se(config_init(&config) >= 0);
        assert_se(free_and_strdup(&config.state_dir, P("%s/state", tmpdir)) >= 0);
        assert_se(config_finalize(&config) >= 0);
        assert_se(sandbox_identity_self(&self) >= 0);
        ctx = (GitContext) { .config = &config, .agent = &self, .caller = &self };

        setup();
        assert_se(setenv("GIT_DIR", P("%s/nowhere", tmpdir), 1) == 0);
        assert_se(setenv("GIT_INDEX_FILE", P("%s/nowhere/index", tmpdir), 1) == 0);
        test_is_url();
        test_resolve_local();
        test_resolve_url();
        test_default_branch();
        assert_se(unsetenv("GIT_DIR") == 0 && unsetenv("GIT_INDEX_FILE") == 0);
        test_prepare();
        test_copy_files();
        test_diff();
        test_fingerprint();
        assert_se(!exists(marker));

        assert_se(system(P("rm -rf '%s'", tmpdir)) == 0);
        strv_free(garbage);
        sandbox_identity_done(&self);
        config_done(&config);
        return 0;
}
