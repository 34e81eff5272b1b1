/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* makima-sandbox-run: runs a command in the very sandbox makima-worker gives
 * a task (same bwrap command line, same seccomp filter, same user), for the
 * tests and for an admin who wants to see what an agent sees. */

#include <getopt.h>
#include <inttypes.h>

#include "conf.h"
#include "log.h"
#include "sandbox.h"
#include "sandbox-seccomp.h"
#include "sandbox-task.h"

typedef enum RunMode {
        RUN_SANDBOX,
        RUN_PRINT,
        RUN_SECCOMP_ONLY,
        RUN_LIST_SYSCALLS,
} RunMode;

static void help(void) {
        printf("%s [OPTIONS…] --task-id ID --worktree DIR --home DIR [--git-dir DIR] -- COMMAND [ARGS…]\n\n"
               "Run COMMAND in the sandbox makima-worker runs a task's agent in.\n\n"
               "  -h --help              Show this help\n"
               "     --config FILE       Read FILE instead of " MAKIMA_CONF_FILE "\n"
               "     --state-dir DIR     The state directory (default: $STATE_DIRECTORY or " MAKIMA_STATE_DIR ")\n"
               "     --task-id ID        The task (names the sandbox's host)\n"
               "     --worktree DIR      The task's worktree: read-write, the working directory\n"
               "     --home DIR          The task's private home: read-write, $HOME\n"
               "     --git-dir DIR       The task's own git directory (its config and the objects it\n"
               "                         borrows read-only, the rest read-write)\n"
               "     --read-only PATH    Also bind PATH read-only (repeatable)\n"
               "     --setenv NAME=VALUE Set a variable for this task only (repeatable)\n"
               "     --bwrap PATH        The bwrap to run (default: bwrap in $PATH)\n"
               "     --print             Print the environment and command line instead of running them\n"
               "     --list-syscalls     Print the seccomp deny list\n"
               "Debugging only:\n"
               "     --no-seccomp        Leave the seccomp filter out\n"
               "     --seccomp-only      Run COMMAND here under the seccomp filter alone, without bwrap\n",
               program_invocation_short_name);
}

typedef struct Args {
        RunMode mode;
        const char *config_file;
        const char *state_dir;
        SandboxParams params;
        char **read_only;
        char **environment;
} Args;

static void args_done(Args *a) {
        strv_free(a->read_only);
        strv_free(a->environment);
}

static int parse_argv(int argc, char *argv[], Args *a) {
        enum {
                ARG_CONFIG = 0x100,
                ARG_STATE_DIR,
                ARG_TASK_ID,
                ARG_WORKTREE,
                ARG_HOME,
                ARG_GIT_DIR,
                ARG_READ_ONLY,
                ARG_SETENV,
                ARG_BWRAP,
                ARG_PRINT,
                ARG_LIST_SYSCALLS,
                ARG_NO_SECCOMP,
                ARG_SECCOMP_ONLY,
        };
        static const struct option options[] = {
                { "help",          no_argument,       NULL, 'h'               },
                { "config",        required_argument, NULL, ARG_CONFIG        },
                { "state-dir",     required_argument, NULL, ARG_STATE_DIR     },
                { "task-id",       required_argument, NULL, ARG_TASK_ID       },
                { "worktree",      required_argument, NULL, ARG_WORKTREE      },
                { "home",          required_argument, NULL, ARG_HOME          },
                { "git-dir",       required_argument, NULL, ARG_GIT_DIR       },
                { "read-only",     required_argument, NULL, ARG_READ_ONLY     },
                { "setenv",        required_argument, NULL, ARG_SETENV        },
                { "bwrap",         required_argument, NULL, ARG_BWRAP         },
                { "print",         no_argument,       NULL, ARG_PRINT         },
                { "list-syscalls", no_argument,       NULL, ARG_LIST_SYSCALLS },
                { "no-seccomp",    no_argument,       NULL, ARG_NO_SECCOMP    },
                { "seccomp-only",  no_argument,       NULL, ARG_SECCOMP_ONLY  },
                {}
        };
        SandboxParams *p = &a->params;
        int c, r;

        /* "+": stop at the first non-option, which begins COMMAND. */
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_CONFIG:
                        a->config_file = optarg;
                        break;
                case ARG_STATE_DIR:
                        a->state_dir = optarg;
                        break;
                case ARG_TASK_ID:
                        p->task_id = optarg;
                        break;
                case ARG_WORKTREE:
                        p->worktree = optarg;
                        break;
                case ARG_HOME:
                        p->home = optarg;
                        break;
                case ARG_GIT_DIR:
                        p->git_dir = optarg;
                        break;
                case ARG_READ_ONLY:
                case ARG_SETENV:
                        if (c == ARG_SETENV && !strchr(optarg, '='))
                                return log_error_errno(EINVAL, "--setenv wants NAME=VALUE, not '%s'.", optarg);
                        r = strv_extend(c == ARG_SETENV ? &a->environment : &a->read_only, optarg);
                        if (r < 0)
                                return log_oom();
                        break;
                case ARG_BWRAP:
                        p->bwrap = optarg;
                        break;
                case ARG_PRINT:
                        a->mode = RUN_PRINT;
                        break;
                case ARG_LIST_SYSCALLS:
                        a->mode = RUN_LIST_SYSCALLS;
                        return 1;
                case ARG_NO_SECCOMP:
                        p->no_seccomp = true;
                        break;
                case ARG_SECCOMP_ONLY:
                        a->mode = RUN_SECCOMP_ONLY;
                        break;
                case '?':
                        return -EINVAL;
                default:
                        return log_error_errno(EINVAL, "Unhandled option %d.", c);
                }
        }

        if (optind >= argc)
                return log_error_errno(EINVAL, "No command given; see --help.");
        p->command = argv + optind;
        p->read_only_paths = a->read_only;
        p->environment = a->environment;
        if (a->mode != RUN_SECCOMP_ONLY && (!p->task_id || !p->worktree || !p->home))
                return log_error_errno(EINVAL, "--task-id, --worktree and --home are required.");
        return 1;
}

static void print_quoted(const char *s) {
        if (s[strcspn(s, " \t\n'\"\\$`;&|<>()*?[]{}~#!")] == '\0' && *s) {
                fputs(s, stdout);
                return;
        }
        putchar('\'');
        for (; *s; s++)
                if (*s == '\'')
                        fputs("'\\''", stdout);
                else
                        putchar(*s);
        putchar('\'');
}

/* An administrator's own borrowed directories (another owner's clone cache,
 * say): read as they are, unchecked. */
static int read_alternates(const char *git_dir, char ***ret) {
        _cleanup_free_ char *path = NULL, *line = NULL;
        _cleanup_(strv_freep) char **l = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        size_t n = 0;
        int r;

        if (asprintf(&path, "%s/objects/info/alternates", git_dir) < 0)
                return -ENOMEM;
        f = fopen(path, "re");
        if (!f)
                return errno == ENOENT ? 0 : -errno;
        while (getline(&line, &n, f) > 0) {
                line[strcspn(line, "\r\n")] = '\0';
                if (line[0] != '/')
                        continue;
                r = strv_extend(&l, line);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int run_seccomp_only(char **command) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        r = sandbox_seccomp_export_fd(&fd);
        if (r < 0)
                return log_error_errno(r, "Failed to build the seccomp filter: %m");
        r = sandbox_seccomp_load_fd(fd);
        if (r < 0)
                return log_error_errno(r, "Failed to load the seccomp filter: %m");
        execvp(command[0], command);
        return log_error_errno(errno, "Failed to execute %s: %m", command[0]);
}

static int run(int argc, char *argv[]) {
        _cleanup_(args_done) Args a = {};
        _cleanup_(config_done) Config config = {};
        _cleanup_(sandbox_command_done) SandboxCommand cmd = {};
        _cleanup_(sandbox_identity_done) SandboxIdentity identity = {};
        _cleanup_(strv_freep) char **borrowed = NULL;
        int r;

        r = parse_argv(argc, argv, &a);
        if (r <= 0)
                return r;

        if (a.mode == RUN_LIST_SYSCALLS) {
                const SandboxSyscallRule *rules;
                size_t n;

                rules = sandbox_seccomp_rules(&n);
                for (size_t i = 0; i < n; i++) {
                        printf("%-20s %s", rules[i].name, strerrorname_np(rules[i].error) ?: "?");
                        if (rules[i].arg >= 0 && rules[i].unless)
                                printf("  unless arg%i == 0x%" PRIx64, rules[i].arg, rules[i].match);
                        else if (rules[i].arg >= 0)
                                printf("  if (arg%i & 0x%" PRIx64 ") == 0x%" PRIx64, rules[i].arg, rules[i].mask,
                                       rules[i].match);
                        putchar('\n');
                }
                return 0;
        }
        if (a.mode == RUN_SECCOMP_ONLY)
                return run_seccomp_only(a.params.command);

        r = config_init(&config);
        if (r < 0)
                return log_error_errno(r, "Failed to initialize the configuration: %m");
        r = config_load(&config, a.config_file, /* dropins= */ !a.config_file);
        if (r < 0)
                return r;
        if (a.state_dir) {
                config.state_dir = strdup(a.state_dir);
                if (!config.state_dir)
                        return log_oom();
        }
        r = config_finalize(&config);
        if (r < 0)
                return r;
        r = sandbox_identity_init(&config, &identity);
        if (r < 0)
                return r;
        if (a.params.git_dir) {
                _cleanup_free_ char *error = NULL;

                /* What the task borrows, as the worker wrote it down. */
                r = task_borrowed_objects(&config, a.params.git_dir, NULL, &borrowed, &error);
                if (r == -EPERM)
                        r = read_alternates(a.params.git_dir, &borrowed);
                if (r < 0)
                        return log_error_errno(r, "Failed to read what %s borrows: %s", a.params.git_dir,
                                               error ?: strerror(-r));
        }

        a.params.config = &config;
        a.params.identity = &identity;
        a.params.borrowed = borrowed;
        r = sandbox_build(&a.params, &cmd);
        if (r < 0)
                return r;

        if (a.mode == RUN_PRINT) {
                for (char **e = cmd.envp; e && *e; e++) {
                        print_quoted(*e);
                        putchar(' ');
                }
                if (cmd.cwd)
                        printf("(in %s) ", cmd.cwd);
                for (char **i = cmd.argv; *i; i++) {
                        print_quoted(*i);
                        putchar(i[1] ? ' ' : '\n');
                }
                return 0;
        }

        /* We are the child the worker would fork: exec in place, dying with
         * whoever started us. */
        cmd.parent = getppid();
        (void) fflush(stdout);
        r = sandbox_command_exec(&cmd);
        return log_error_errno(r, "Failed to execute %s: %m", cmd.argv[0]);
}

int main(int argc, char *argv[]) {
        log_setup(program_invocation_short_name);
        return run(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
