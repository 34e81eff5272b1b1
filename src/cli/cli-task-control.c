/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "makima task pause|resume|interrupt|cancel|send|diff": controlling a task's
 * agent through the API's control routes (the worker that runs it acts on
 * the request), resuming a task that stopped at its iteration limit, and
 * showing what the agent changed in its worktree. */

#include <limits.h>

#include "cli.h"
#include "store.h"

static void help_pause(void) {
        printf("makima task pause [OPTIONS...] ID\n\n"
               "Pause the task's agent; 'makima task resume' lets it go on. The worker that runs\n"
               "the task acts on the request; the task's status tells when it has.\n\n"
               "Options:\n" CLI_COMMON_HELP);
}

static void help_resume(void) {
        printf("makima task resume [OPTIONS...] ID\n\n"
               "Let a paused (or waiting, or interrupted) task's agent go on. A task that stopped at\n"
               "its iteration limit (iteration_limit_reached) is queued again with a higher limit,\n"
               "which --max-iterations gives: a worker continues it on the same worktree and agent\n"
               "session.\n\n"
               "Options:\n"
               "     --max-iterations=N   The new limit: more than the iterations the task ran, at\n"
               "                          most the configured hard limit\n"
               CLI_COMMON_HELP);
}

static void help_interrupt(void) {
        printf("makima task interrupt [OPTIONS...] ID\n\n"
               "Stop what the task's agent is doing now, as Esc does in Claude Code: the agent\n"
               "then waits for a message ('makima task send').\n\n"
               "Options:\n" CLI_COMMON_HELP);
}

static void help_cancel(void) {
        printf("makima task cancel [OPTIONS...] ID\n\n"
               "Cancel a task: a pending one at once, a running one by its worker, which stops\n"
               "the agent. A cancelled task does not run again.\n\n"
               "Options:\n" CLI_COMMON_HELP);
}

static void help_send(void) {
        printf("makima task send [OPTIONS...] ID MESSAGE\n\n"
               "Send MESSAGE to the task's agent as the user's next turn.\n\n"
               "Options:\n" CLI_COMMON_HELP);
}

static void help_diff(void) {
        printf("makima task diff [OPTIONS...] ID\n\n"
               "Show what the task changed in its worktree, as a unified diff against the branch\n"
               "it started from: commits, staged and unstaged changes, and new files.\n\n"
               "Options:\n" CLI_COMMON_HELP);
}

static const char *const requested[] = {
        [CONTROL_PAUSE] = "pause requested",
        [CONTROL_RESUME] = "resume requested",
        [CONTROL_INTERRUPT] = "interrupt requested",
        [CONTROL_CANCEL] = "cancel requested",
        [CONTROL_MESSAGE] = "message queued",
};

/* max_iterations: for a resume, the new limit (0: none given). */
static int task_control(Cli *cli, ControlKind kind, const char *id, const char *message, int64_t max_iterations) {
        _cleanup_json_ json_object *body = NULL, *reply = NULL;
        _cleanup_free_ char *what = NULL;
        unsigned status = 0;
        char sid[9];
        int r;

        if (message) {
                body = json_object_new_object();
                if (!body || json_add_string(body, "message", message) < 0)
                        return log_oom();
        }
        if (max_iterations > 0) {
                body = json_object_new_object();
                if (!body || json_object_object_add(body, "max_iterations", json_object_new_int64(max_iterations)) < 0)
                        return log_oom();
        }
        if (asprintf(&what, "task %s", id) < 0)
                return log_oom();
        r = cli_call_status(cli, "POST", body, what, &reply, &status, "/tasks/%s/%s", id,
                            kind == CONTROL_MESSAGE ? "send" : control_kind_to_string(kind));
        if (r < 0)
                return r;
        if (cli->json)
                return cli_print_json(reply);

        /* 200: a pending task, cancelled at once, or one at its iteration limit,
         * queued again; 202: a request its worker will act on. */
        if (status == 200 && kind == CONTROL_RESUME)
                printf("Task %s queued again with at most %" PRIi64 " iterations.\n", short_id(id, sid),
                       json_get_int(reply, "max_iterations", max_iterations));
        else if (status == 200)
                printf("Task %s cancelled.\n", short_id(id, sid));
        else
                printf("Task %s: %s.\n", short_id(id, sid), requested[kind]);
        return 0;
}

static int control_verb(Cli *cli, ControlKind kind, void (*help)(void), int argc, char *argv[]) {
        _cleanup_free_ char *id = NULL, *command = NULL;
        int r;

        if (asprintf(&command, "task %s", control_kind_to_string(kind)) < 0)
                return log_oom();
        r = cli_parse_id_command(cli, command, "tasks", "task", argc, argv, help, &id);
        if (r <= 0)
                return r;
        return task_control(cli, kind, id, NULL, 0);
}

int verb_task_pause(Cli *cli, int argc, char *argv[]) {
        return control_verb(cli, CONTROL_PAUSE, help_pause, argc, argv);
}

enum {
        ARG_MAX_ITERATIONS = _ARG_COMMON_MAX,
};

static int handle_resume(Cli *cli, int c, const char *arg, void *userdata) {
        int64_t *max_iterations = userdata;

        if (c != ARG_MAX_ITERATIONS)
                return -EINVAL;
        if (cli_parse_int64(arg, 1, INT_MAX, max_iterations) < 0)
                return cli_usage_error(cli, "task resume", "--max-iterations expects a positive number, not '%s'", arg);
        return 0;
}

int verb_task_resume(Cli *cli, int argc, char *argv[]) {
        static const struct option options[] = {
                CLI_COMMON_OPTIONS,
                { "max-iterations", required_argument, NULL, ARG_MAX_ITERATIONS },
                {}
        };
        _cleanup_free_ char *id = NULL;
        int64_t max_iterations = 0;
        int r;

        r = cli_parse_options(cli, "task resume", argc, argv, options, NULL, help_resume, handle_resume,
                              &max_iterations);
        if (r <= 0)
                return r;
        r = cli_want_operands(cli, "task resume", argc, argv, 1, "ID");
        if (r < 0)
                return r;
        r = cli_resolve_id(cli, "tasks", "task", argv[optind], &id);
        if (r < 0)
                return r;
        return task_control(cli, CONTROL_RESUME, id, NULL, max_iterations);
}

int verb_task_interrupt(Cli *cli, int argc, char *argv[]) {
        return control_verb(cli, CONTROL_INTERRUPT, help_interrupt, argc, argv);
}

int verb_task_cancel(Cli *cli, int argc, char *argv[]) {
        return control_verb(cli, CONTROL_CANCEL, help_cancel, argc, argv);
}

int verb_task_send(Cli *cli, int argc, char *argv[]) {
        static const struct option options[] = {
                CLI_COMMON_OPTIONS,
                {}
        };
        _cleanup_free_ char *id = NULL;
        const char *message;
        int r;

        r = cli_parse_options(cli, "task send", argc, argv, options, NULL, help_send, NULL, NULL);
        if (r <= 0)
                return r;
        r = cli_want_operands(cli, "task send", argc, argv, 2, "ID and MESSAGE");
        if (r < 0)
                return r;
        message = argv[optind + 1];
        if (isempty(message + strspn(message, " \t\r\n")))
                return cli_usage_error(cli, "task send", "the message must not be empty");
        r = cli_resolve_id(cli, "tasks", "task", argv[optind], &id);
        if (r < 0)
                return r;
        return task_control(cli, CONTROL_MESSAGE, id, message, 0);
}

int verb_task_diff(Cli *cli, int argc, char *argv[]) {
        _cleanup_(http_response_freep) HttpResponse *resp = NULL;
        _cleanup_json_ json_object *reply = NULL;
        _cleanup_free_ char *id = NULL, *what = NULL;
        const char *truncated;
        int r;

        r = cli_parse_id_command(cli, "task diff", "tasks", "task", argc, argv, help_diff, &id);
        if (r <= 0)
                return r;
        if (asprintf(&what, "task %s", id) < 0)
                return log_oom();

        if (cli->json) {
                r = cli_call(cli, "GET", NULL, what, &reply, "/tasks/%s/diff?format=json", id);
                if (r < 0)
                        return r;
                return cli_print_json(reply);
        }

        r = cli_call_raw(cli, "GET", what, &resp, "/tasks/%s/diff", id);
        if (r < 0)
                return r;
        if (fwrite(resp->body, 1, resp->body_size, stdout) != resp->body_size || fflush(stdout) != 0)
                return log_error_errno(errno, "Failed to write the diff: %m");
        truncated = http_response_header(resp, "Makima-Diff-Truncated");
        if (streq_ptr(truncated, "1"))
                log_warning("The diff is too large and was cut short.");
        return 0;
}
