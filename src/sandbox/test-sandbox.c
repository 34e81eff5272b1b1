/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sandbox.c and seccomp.c without running bwrap: the command line built for
 * a fake task layout (what is bound, how, in which order), the environment,
 * the refusals (missing bwrap, paths that would expose the state directory),
 * Enabled=no, and the seccomp filter loaded into a child of this process.
 * tests/test-sandbox.sh proves the same sandbox from inside. */

#include <fcntl.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "conf.h"
#include "log.h"
#include "sandbox.h"
#include "sandbox-seccomp.h"

#define assert_se(expr)                                                                         \
        do {                                                                                    \
                if (!(expr)) {                                                                  \
                        fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #expr); \
                        abort();                                                                \
                }                                                                               \
        } while (0)

static char root[] = "/tmp/test-sandbox-XXXXXX";
static char state[64], repo_git[64], objects[128], wt1[128], wt2[128], home1[128], git1[128], git2[128], extra[64];
static SandboxIdentity self;
static char *borrowed[2] = { objects, NULL };

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");

        assert_se(f);
        assert_se(fputs(text, f) >= 0);
        assert_se(fclose(f) == 0);
}

static void mkdirs(const char *path) {
        char t[1024];

        snprintf(t, sizeof(t), "mkdir -p '%s'", path);
        assert_se(system(t) == 0);
}

/* A repository, and two tasks' own repositories borrowing its objects, as
 * the worker leaves them (sandbox-task.h). */
static void make_layout(void) {
        char p[512], text[512];

        assert_se(mkdtemp(root));
        snprintf(state, sizeof(state), "%s/state", root);
        snprintf(repo_git, sizeof(repo_git), "%s/repo/.git", root);
        snprintf(objects, sizeof(objects), "%s/objects", repo_git);
        snprintf(wt1, sizeof(wt1), "%s/worktrees/t1", state);
        snprintf(wt2, sizeof(wt2), "%s/worktrees/t2", state);
        snprintf(home1, sizeof(home1), "%s/homes/t1", state);
        snprintf(git1, sizeof(git1), "%s/git/t1", state);
        snprintf(git2, sizeof(git2), "%s/git/t2", state);
        snprintf(extra, sizeof(extra), "%s/extra", root);

        for (const char *d[] = { wt1, wt2, home1, extra, objects, NULL }, **i = d; *i; i++)
                mkdirs(*i);
        for (const char *sub[] = { "refs/heads", "logs", "hooks", NULL }, **i = sub; *i; i++) {
                snprintf(p, sizeof(p), "%s/%s", repo_git, *i);
                mkdirs(p);
        }
        snprintf(p, sizeof(p), "%s/config", repo_git);
        write_file(p, "[core]\n");
        for (int t = 1; t <= 2; t++) {
                const char *g = t == 1 ? git1 : git2;

                snprintf(p, sizeof(p), "%s/objects/info", g);
                mkdirs(p);
                snprintf(p, sizeof(p), "%s/refs/heads", g);
                mkdirs(p);
                snprintf(p, sizeof(p), "%s/config", g);
                write_file(p, "[core]\n");
                snprintf(p, sizeof(p), "%s/HEAD", g);
                write_file(p, "ref: refs/heads/makima/t\n");
                snprintf(p, sizeof(p), "%s/objects/info/alternates", g);
                snprintf(text, sizeof(text), "%s\n", objects);
                write_file(p, text);
                snprintf(p, sizeof(p), "%s/.git", t == 1 ? wt1 : wt2);
                snprintf(text, sizeof(text), "gitdir: %s\n", g);
                write_file(p, text);
        }
}

static void config_for_test(Config *c) {
        assert_se(config_init(c) >= 0);
        assert_se((c->state_dir = strdup(state)));
        assert_se(config_finalize(c) >= 0);
}

/* Index of the first "a b [c]" run in argv, or -1. */
static int find_args(char **argv, const char *a, const char *b, const char *c) {
        for (int i = 0; argv[i]; i++)
                if (streq(argv[i], a) && (!b || (argv[i + 1] && streq(argv[i + 1], b))) &&
                    (!c || (argv[i + 1] && argv[i + 2] && streq(argv[i + 2], c))))
                        return i;
        return -1;
}

/* "--bind DIR/SUB DIR/SUB", or the same handed over as an fd: "--bind-fd N DIR/SUB". */
static int find_bind(char **argv, const char *option, const char *dir, const char *sub) {
        char p[512], fd_option[32];
        int i;

        snprintf(p, sizeof(p), "%s%s%s", dir, sub ? "/" : "", strempty(sub));
        i = find_args(argv, option, p, p);
        if (i >= 0)
                return i;
        snprintf(fd_option, sizeof(fd_option), "%s-fd", option);
        return find_args(argv, fd_option, NULL, p);
}

static bool endswith(const char *s, const char *suffix) {
        size_t n = strlen(s), m = strlen(suffix);

        return n >= m && streq(s + n - m, suffix);
}

static bool env_has(char **envp, const char *assignment) {
        for (; envp && *envp; envp++)
                if (streq(*envp, assignment))
                        return true;
        return false;
}

static int build(const Config *c, char **command, SandboxCommand *ret) {
        char *environment[] = { (char *) "MAKIMA_TOKEN=task-token", NULL };
        SandboxParams p = {
                .config = c,
                .identity = &self,
                .task_id = "5a8f-task-one",
                .worktree = wt1,
                .home = home1,
                .git_dir = git1,
                .borrowed = borrowed,
                .command = command,
                .environment = environment,
        };

        return sandbox_build(&p, ret);
}

static void test_argv(void) {
        _cleanup_(config_done) Config c = {};
        _cleanup_(sandbox_command_done) SandboxCommand cmd = {};
        char *command[] = { (char *) "sh", (char *) "-c", (char *) "true", NULL };
        char p[512], **a;
        int i, last_bind = 0, dashes;

        config_for_test(&c);
        c.sandbox_network = false;
        assert_se(strv_extend(&c.agent_environment, "FOO=1") >= 0);
        assert_se(strv_extend(&c.agent_environment, "MAKIMA_TOKEN=from-config") >= 0);
        assert_se(setenv("LEAK_ME", "1", 1) >= 0);

        assert_se(build(&c, command, &cmd) >= 0);
        a = cmd.argv;
        assert_se(cmd.sandboxed && !cmd.cwd);
        assert_se(strstr(a[0], "bwrap"));

        for (const char *opt[] = { "--die-with-parent", "--new-session", "--unshare-user", "--unshare-pid",
                                   "--unshare-ipc", "--unshare-uts", "--unshare-net", NULL }, **o = opt; *o; o++)
                assert_se(find_args(a, *o, NULL, NULL) >= 0);
        assert_se(find_args(a, "--uid", "1000", NULL) >= 0);
        assert_se(find_args(a, "--hostname", "makima-5a8ftask", NULL) >= 0);
        assert_se(find_args(a, "--ro-bind", "/usr", "/usr") >= 0);
        assert_se(find_args(a, "--ro-bind", "/etc", "/etc") >= 0);
        assert_se(find_args(a, "--dev", "/dev", NULL) >= 0);
        assert_se(find_args(a, "--proc", "/proc", NULL) >= 0);
        assert_se(find_args(a, "--tmpfs", "/tmp", NULL) >= 0);
        assert_se(find_args(a, "--ro-bind-data", NULL, NULL) >= 0);
        if (access("/etc/shadow", F_OK) >= 0)
                assert_se(find_args(a, "--ro-bind", "/dev/null", "/etc/shadow") >= 0);

        /* The task's own git directory writable but for its config and what
         * it borrows; the repository's objects read-only, nothing else of it. */
        i = find_bind(a, "--bind", git1, NULL);
        assert_se(i >= 0);
        assert_se(find_bind(a, "--ro-bind", git1, "config") > i);
        assert_se(find_bind(a, "--ro-bind", git1, "objects/info") > i);
        /* objects/ a mount of its own: the agent cannot rename it, nor its info/ with it. */
        assert_se(find_bind(a, "--bind", git1, "objects") > i);
        assert_se(find_bind(a, "--ro-bind", git1, "objects/info") > find_bind(a, "--bind", git1, "objects"));
        assert_se(find_bind(a, "--ro-bind", objects, NULL) >= 0);
        assert_se(find_bind(a, "--bind", objects, NULL) < 0);
        assert_se(find_bind(a, "--ro-bind", repo_git, NULL) < 0);
        assert_se(find_bind(a, "--bind", wt1, NULL) >= 0);
        assert_se(find_bind(a, "--ro-bind", wt1, ".git") > find_bind(a, "--bind", wt1, NULL));
        assert_se(find_bind(a, "--bind", home1, NULL) >= 0);
        assert_se(find_args(a, "--chdir", wt1, NULL) >= 0);
        /* /proc/sys read-only, the kernel's keyrings hidden. */
        assert_se(find_args(a, "--ro-bind", "/proc/sys", "/proc/sys") > find_args(a, "--proc", "/proc", NULL));
        assert_se(find_args(a, "--ro-bind", "/dev/null", "/proc/keys") > find_args(a, "--proc", "/proc", NULL));
        /* git trusts the worktree (its owner is the worker's user). */
        snprintf(p, sizeof(p), "GIT_CONFIG_VALUE_0=%s", wt1);
        assert_se(env_has(cmd.envp, "GIT_CONFIG_KEY_0=safe.directory") && env_has(cmd.envp, p));

        /* Nothing else of the state directory, of the other task, or of the repository. */
        for (i = 0; a[i]; i++) {
                assert_se(!streq(a[i], state));
                assert_se(!startswith(a[i], wt2));
                assert_se(!startswith(a[i], git2));
                assert_se(!strstr(a[i], "makima.db"));
                assert_se(!strstr(a[i], "/hooks"));
                assert_se(!streq(a[i], repo_git));
                if (streq(a[i], "--bind"))
                        assert_se(!endswith(a[i + 1], "/config") && !startswith(a[i + 1], repo_git));
                if (streq(a[i], "--bind-fd"))
                        assert_se(!endswith(a[i + 2], "/config") && !startswith(a[i + 2], repo_git));
                if (strstr(a[i], "bind") || streq(a[i], "--tmpfs"))
                        last_bind = i;
                if (streq(a[i], "--"))
                        break;
        }
        dashes = i;
        /* The root is made read-only after everything is mounted in it. */
        assert_se(find_args(a, "--remount-ro", "/", NULL) > last_bind);

        /* Every fd bwrap is told of (the seccomp filter's, the data's, the
         * binds') is one of the fds to keep, and nothing else is; all of them
         * are O_CLOEXEC here. */
        i = find_args(a, "--seccomp", NULL, NULL);
        assert_se(i >= 0 && i < dashes);
        {
                size_t named = 0;

                for (int k = 0; k < dashes; k++)
                        if (streq(a[k], "--seccomp") || streq(a[k], "--ro-bind-data") || streq(a[k], "--userns") ||
                            streq(a[k], "--bind-fd") || streq(a[k], "--ro-bind-fd")) {
                                bool found = false;

                                for (size_t f = 0; f < cmd.n_fds; f++)
                                        found = found || atoi(a[k + 1]) == cmd.fds[f];
                                assert_se(found);
                                named++;
                        }
                assert_se(named == cmd.n_fds);
                /* The worktree, its .git, the home, the git directory and its five. */
                assert_se(find_bind(a, "--bind", wt1, NULL) > 0 && find_args(a, "--bind-fd", NULL, wt1) > 0);
        }
        for (size_t k = 0; k < cmd.n_fds; k++)
                assert_se(fcntl(cmd.fds[k], F_GETFD) == FD_CLOEXEC);

        /* The command, looked up outside, after "--". */
        assert_se(a[dashes + 1][0] == '/' && endswith(a[dashes + 1], "/sh"));
        assert_se(streq(a[dashes + 2], "-c") && streq(a[dashes + 3], "true") && !a[dashes + 4]);

        snprintf(p, sizeof(p), "HOME=%s", home1);
        assert_se(env_has(cmd.envp, p));
        assert_se(env_has(cmd.envp, "TERM=dumb"));
        assert_se(env_has(cmd.envp, "FOO=1"));
        assert_se(env_has(cmd.envp, "MAKIMA_TOKEN=task-token"));
        assert_se(!env_has(cmd.envp, "MAKIMA_TOKEN=from-config"));
        assert_se(!env_has(cmd.envp, "LEAK_ME=1"));
        (void) unsetenv("LEAK_ME");
}

static void test_network_and_extra_paths(void) {
        _cleanup_(config_done) Config c = {};
        _cleanup_(sandbox_command_done) SandboxCommand cmd = {};
        char *command[] = { (char *) "true", NULL };

        config_for_test(&c);
        assert_se(c.sandbox_network);
        assert_se(strv_extend(&c.sandbox_read_only_paths, extra) >= 0);
        assert_se(strv_extend(&c.sandbox_read_only_paths, "/nonexistent/path") >= 0);
        assert_se(build(&c, command, &cmd) >= 0);
        assert_se(find_args(cmd.argv, "--unshare-net", NULL, NULL) < 0);
        assert_se(find_bind(cmd.argv, "--ro-bind", extra, NULL) > 0);
        /* A missing path is skipped (with a warning), not an error. */
        assert_se(find_bind(cmd.argv, "--ro-bind", "/nonexistent/path", NULL) < 0);
}

/* Binds that would show the agent the store, the state directory, or other
 * tasks' worktrees and homes are refused. */
static void test_exposure(void) {
        char p[512];
        const char *bad[] = { state, "/", root, wt2, p, NULL };

        snprintf(p, sizeof(p), "%s/homes", state);
        for (const char **b = bad; *b; b++)
                for (int writable = 0; writable <= 1; writable++) {
                        _cleanup_(config_done) Config c = {};
                        SandboxCommand cmd = {};
                        char *command[] = { (char *) "true", NULL };

                        config_for_test(&c);
                        assert_se(strv_extend(writable ? &c.sandbox_read_write_paths : &c.sandbox_read_only_paths,
                                              *b) >= 0);
                        assert_se(build(&c, command, &cmd) == -EPERM);
                }

        _cleanup_(config_done) Config c = {};
        SandboxCommand cmd = {};
        char *command[] = { (char *) "true", NULL };

        config_for_test(&c);
        assert_se(strv_extend(&c.sandbox_read_write_paths, c.store_path) >= 0);
        assert_se(build(&c, command, &cmd) == -EPERM);
        c.sandbox_read_write_paths = strv_free(c.sandbox_read_write_paths);

        /* Nor may the task's own directories hold the state directory. */
        SandboxParams params = { .config = &c, .identity = &self, .task_id = "t", .worktree = root, .home = home1,
                                 .command = command };
        assert_se(sandbox_build(&params, &cmd) == -EPERM);
        params = (SandboxParams) { .config = &c, .identity = &self, .task_id = "t", .worktree = wt1, .home = state,
                                   .command = command };
        assert_se(sandbox_build(&params, &cmd) == -EPERM);
}

static void test_bwrap_missing(void) {
        _cleanup_(config_done) Config c = {};
        SandboxCommand cmd = {};
        char *command[] = { (char *) "true", NULL };
        SandboxParams p = {
                .config = &c, .identity = &self, .task_id = "t", .worktree = wt1, .home = home1, .command = command,
                .bwrap = "/nonexistent/bwrap",
        };
        const char *saved = getenv("PATH");
        char *path = saved ? strdup(saved) : NULL;

        config_for_test(&c);
        assert_se(sandbox_build(&p, &cmd) == -ENOPKG);
        p.bwrap = NULL;
        assert_se(setenv("PATH", "/nonexistent", 1) >= 0);
        command[0] = (char *) "/bin/true";
        assert_se(sandbox_build(&p, &cmd) == -ENOPKG);
        assert_se(path ? setenv("PATH", path, 1) >= 0 : unsetenv("PATH") >= 0);
        free(path);
}

static void test_disabled(void) {
        _cleanup_(config_done) Config c = {};
        _cleanup_(sandbox_command_done) SandboxCommand cmd = {};
        char *command[] = { (char *) "sh", (char *) "-c", (char *) "test \"$PWD\" = \"$1\" && test \"$HOME\" = \"$2\"",
                            (char *) "sh", wt1, home1, NULL };
        int status;
        pid_t pid;

        config_for_test(&c);
        c.sandbox_enabled = false;
        assert_se(build(&c, command, &cmd) >= 0);
        assert_se(!cmd.sandboxed && cmd.n_fds == 0);
        assert_se(streq(cmd.cwd, wt1));
        assert_se(endswith(cmd.argv[0], "/sh") && streq(cmd.argv[1], "-c"));

        /* sandbox_command_exec() as the worker will call it, after fork(). */
        pid = fork();
        assert_se(pid >= 0);
        if (pid == 0) {
                (void) sandbox_command_exec(&cmd);
                _exit(127);
        }
        assert_se(waitpid(pid, &status, 0) == pid);
        assert_se(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A program outside the system directories: its npm package is bound, and the
 * interpreter its #! line asks env for, whose directory joins $PATH. */
static void test_npm_program(void) {
        _cleanup_(config_done) Config c = {};
        _cleanup_(sandbox_command_done) SandboxCommand cmd = {};
        char pkg[512], cli[600], bin[512], node[600], link[600], path_env[600];
        char *command[] = { link, (char *) "--version", NULL };
        int dashes;

        snprintf(pkg, sizeof(pkg), "%s/prefix/lib/node_modules/@acme/agent", root);
        snprintf(bin, sizeof(bin), "%s/prefix/bin", root);
        mkdirs(pkg);
        mkdirs(bin);
        snprintf(cli, sizeof(cli), "%s/cli.js", pkg);
        write_file(cli, "#!/usr/bin/env -S fakenode --flag\n");
        snprintf(node, sizeof(node), "%s/fakenode", bin);
        write_file(node, "#!/bin/sh\n");
        assert_se(chmod(cli, 0755) >= 0 && chmod(node, 0755) >= 0);
        snprintf(link, sizeof(link), "%s/acme-agent", bin);
        assert_se(symlink("../lib/node_modules/@acme/agent/cli.js", link) >= 0);

        config_for_test(&c);
        assert_se(build(&c, command, &cmd) >= 0);
        assert_se(find_bind(cmd.argv, "--ro-bind", pkg, NULL) >= 0);
        assert_se(find_bind(cmd.argv, "--ro-bind", node, NULL) >= 0);
        /* Not the whole prefix. */
        assert_se(find_bind(cmd.argv, "--ro-bind", bin, NULL) < 0);
        dashes = find_args(cmd.argv, "--", NULL, NULL);
        assert_se(dashes > 0 && streq(cmd.argv[dashes + 1], cli) && streq(cmd.argv[dashes + 2], "--version"));
        snprintf(path_env, sizeof(path_env), "PATH=%s:", bin);
        assert_se(startswith(cmd.envp[0], path_env));
}

/* A worktree that is no repository gets no git binds; a task's git
 * directory that is not complete is an error; a borrowed directory that is
 * another task's is refused. */
static void test_other_worktrees(void) {
        _cleanup_(config_done) Config c = {};
        char wt[512], home[512], gd[512], bad_objects[600];
        char *command[] = { (char *) "true", NULL }, *bad[2] = { bad_objects, NULL };
        SandboxParams p = { .config = &c, .identity = &self, .task_id = "t", .worktree = wt, .home = home,
                            .command = command };

        config_for_test(&c);
        snprintf(wt, sizeof(wt), "%s/worktrees/t3", state);
        snprintf(home, sizeof(home), "%s/homes/t3", state);
        snprintf(gd, sizeof(gd), "%s/git/t3", state);
        mkdirs(wt);
        mkdirs(home);
        mkdirs(gd);
        {
                _cleanup_(sandbox_command_done) SandboxCommand cmd = {};

                assert_se(sandbox_build(&p, &cmd) >= 0);
                assert_se(find_bind(cmd.argv, "--ro-bind", objects, NULL) < 0);
                assert_se(find_bind(cmd.argv, "--bind", gd, NULL) < 0);
        }
        {
                SandboxCommand cmd = {};

                p.git_dir = gd;
                assert_se(sandbox_build(&p, &cmd) < 0);
        }
        {
                SandboxCommand cmd = {};

                snprintf(bad_objects, sizeof(bad_objects), "%s/objects", git2);
                p.git_dir = git1;
                p.worktree = wt1;
                p.home = home1;
                p.borrowed = bad;
                assert_se(sandbox_build(&p, &cmd) == -EPERM);
        }
}

static void test_find_executable(void) {
        _cleanup_free_ char *t = NULL;

        assert_se(sandbox_find_executable("sh", "/nonexistent:/usr/bin:/bin", &t) >= 0);
        assert_se(endswith(t, "/sh"));
        t = mfree(t);
        assert_se(sandbox_find_executable("sh", "relative:", &t) == -ENOENT);
        assert_se(sandbox_find_executable("no-such-program-anywhere", NULL, &t) == -ENOENT);
        assert_se(sandbox_find_executable("/etc/passwd", NULL, &t) == -ENOENT);
        assert_se(sandbox_find_executable("", NULL, &t) == -EINVAL);
}

static void test_seccomp_table(void) {
        /* The list, each with its answer. */
        static const struct {
                const char *name;
                int error;
        } required[] = {
                { "ptrace", EPERM }, { "process_vm_readv", EPERM }, { "process_vm_writev", EPERM },
                { "perf_event_open", EPERM }, { "kexec_load", EPERM }, { "kexec_file_load", EPERM },
                { "init_module", EPERM }, { "finit_module", EPERM }, { "delete_module", EPERM },
                { "keyctl", EPERM }, { "add_key", EPERM }, { "request_key", EPERM }, { "mount", EPERM },
                { "umount2", EPERM }, { "pivot_root", EPERM }, { "chroot", EPERM }, { "open_tree", EPERM },
                { "move_mount", EPERM }, { "fsopen", EPERM }, { "fsconfig", EPERM }, { "fsmount", EPERM },
                { "fspick", EPERM }, { "mount_setattr", EPERM }, { "unshare", EPERM }, { "setns", EPERM },
                { "clone", EPERM }, { "bpf", EPERM }, { "userfaultfd", EPERM }, { "ioctl", EPERM },
                { "clone3", ENOSYS },
        };
        const SandboxSyscallRule *rules;
        size_t n;

        rules = sandbox_seccomp_rules(&n);
        for (size_t i = 0; i < ELEMENTSOF(required); i++) {
                bool found = false;

                for (size_t k = 0; k < n; k++)
                        if (streq(rules[k].name, required[i].name)) {
                                assert_se(rules[k].error == required[i].error);
                                found = true;
                        }
                if (!found)
                        fprintf(stderr, "%s is missing from the deny list\n", required[i].name);
                assert_se(found);
        }
}

static int child_under_filter(int fd) {
        char c = ' ';

        if (sandbox_seccomp_load_fd(fd) < 0)
                return 10;
        if (syscall(SYS_unshare, 0) >= 0 || errno != EPERM)
                return 11;
        if (syscall(SYS_clone3, NULL, 0) >= 0 || errno != ENOSYS)
                return 12;
        if (syscall(SYS_ioctl, 0, TIOCSTI | (1UL << 32), &c) >= 0 || errno != EPERM)
                return 13;
        if (syscall(SYS_clone, (unsigned long) (CLONE_NEWUSER | SIGCHLD), NULL, NULL, NULL, NULL) >= 0 || errno != EPERM)
                return 14;
        /* The default is to allow. */
        if (getppid() <= 0 || syscall(SYS_ioctl, -1, TIOCGWINSZ, NULL) >= 0 || errno != EBADF)
                return 15;
        return 0;
}

static void test_seccomp_fd(void) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int status;
        pid_t pid;

        assert_se(sandbox_seccomp_export_fd(&fd) >= 0);
        assert_se(fcntl(fd, F_GETFD) == FD_CLOEXEC);
        assert_se(lseek(fd, 0, SEEK_CUR) == 0);
        assert_se(fstat(fd, &st) >= 0);
        assert_se(st.st_size > 0 && st.st_size % 8 == 0);
        /* Sealed: nobody can change the program before bwrap reads it. */
        assert_se((fcntl(fd, F_GET_SEALS) & (F_SEAL_WRITE | F_SEAL_SEAL)) == (F_SEAL_WRITE | F_SEAL_SEAL));
        assert_se(write(fd, "x", 1) < 0 && errno == EPERM);

        pid = fork();
        assert_se(pid >= 0);
        if (pid == 0)
                _exit(child_under_filter(fd));
        assert_se(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fprintf(stderr, "child under the filter: status %d\n", status);
        assert_se(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* An agent of its own user: bwrap joins a user namespace made for it
 * instead of making one, and the agent is SANDBOX_UID in there. */
static void test_separate_user(void) {
        _cleanup_(config_done) Config c = {};
        _cleanup_(sandbox_identity_done) SandboxIdentity agent = {};
        _cleanup_(sandbox_command_done) SandboxCommand cmd = {};
        char *command[] = { (char *) "true", NULL };
        SandboxParams p = { .config = &c, .task_id = "t", .worktree = wt1, .home = home1, .command = command };

        config_for_test(&c);
        assert_se(sandbox_identity_init(&c, &agent) >= 0);
        if (!agent.separate) {
                printf("skip separate-user: %s is not a user of its own here\n", strna(c.sandbox_user));
                return;
        }
        p.identity = &agent;
        assert_se(sandbox_build(&p, &cmd) >= 0);
        assert_se(find_args(cmd.argv, "--userns", NULL, NULL) >= 0);
        assert_se(find_args(cmd.argv, "--unshare-user", NULL, NULL) < 0);
        assert_se(find_args(cmd.argv, "--uid", "1000", NULL) >= 0);
        assert_se(cmd.identity.separate && cmd.identity.uid == agent.uid && cmd.identity.uid != 0);
}

int main(void) {
        char cmd[300];

        log_setup("test-sandbox");
        make_layout();
        assert_se(sandbox_identity_self(&self) >= 0);

        test_argv();
        test_network_and_extra_paths();
        test_exposure();
        test_bwrap_missing();
        test_disabled();
        test_npm_program();
        test_other_worktrees();
        test_find_executable();
        test_seccomp_table();
        test_seccomp_fd();
        test_separate_user();

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
        assert_se(system(cmd) == 0);
        sandbox_identity_done(&self);
        return 0;
}
