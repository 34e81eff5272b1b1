/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "makima task …": create tasks (one agent run each), list and show them,
 * read their events, delete them. Controlling a task's agent is in
 * cli-task-control.c, following it live in cli-watch.c. */

#include <limits.h>

#include "cli.h"
#include "conf.h"
#include "model.h"

/* The show block: the task's members in this order, with "iterations" and
 * "cost" in place of the numbers they are made of (task_display()). */
static const char *const task_keys[] = {
        "id", "name", "owner", "status", "reason", "error", "plan", "repo", "base_branch", "target_branch", "branch",
        "worktree", "copy_files", "contract_id", "parent_task_id", "is_supervisor", "autonomous_loop", "iterations",
        "cost", "tasks_max", "memory_max", "cpu_weight", "session_id", "created_at", "started_at", "updated_at", "completed_at", "version", NULL,
};

void help_task(void) {
        printf("makima task COMMAND ...\n\n"
               "Tasks: one agent working on a plan in its own git worktree.\n\n"
               "Commands:\n"
               "  create [--repo=PATH|URL] [--name=NAME] [--contract=ID] [--base-branch=BRANCH]\n"
               "         [--copy-file=PATH...] [--autonomous-loop] [--max-iterations=N]\n"
               "         [--max-cost=USD] [--tasks-max=N] [--memory-max=BYTES] [--cpu-weight=WEIGHT]\n"
               "         PLAN\n"
               "                           Create a task and print its id\n"
               "  list [--contract=ID] [--status=STATUS]\n"
               "                           List tasks\n"
               "  show ID                  Show a task\n"
               "  events ID [--after=SEQ] [--follow]\n"
               "                           Show a task's events\n"
               "  watch ID                 Follow a task's events live until it ends\n"
               "  diff ID                  Show what the task changed in its worktree\n"
               "  pause ID                 Pause a running task's agent\n"
               "  resume ID [--max-iterations=N]\n"
               "                           Let a paused task's agent go on, or queue a task that\n"
               "                           stopped at its iteration limit again with a higher one\n"
               "  interrupt ID             Stop the agent's current turn; it waits for a message\n"
               "  send ID MESSAGE          Send the agent a message\n"
               "  cancel ID                Cancel a task\n"
               "  delete ID                Delete a task\n\n"
               "Options:\n" CLI_COMMON_HELP);
}

static void help_create(void) {
        printf("makima task create [OPTIONS...] PLAN\n\n"
               "Create a task that works on PLAN and print its id (with --json, the task).\n\n"
               "Options:\n"
               "     --repo=PATH|URL      The git repository to work in; a local path is made absolute\n"
               "     --name=NAME          A short name for lists\n"
               "     --contract=ID        Make the task part of a contract\n"
               "     --base-branch=BRANCH Start the task's branch from BRANCH\n"
               "     --copy-file=PATH     Copy the untracked file PATH of the repository (such as .env)\n"
               "                          into the task's worktree; may be given more than once\n"
               "     --autonomous-loop    Restart the agent until it says the work is done\n"
               "     --max-iterations=N   At most N agent runs in the loop (default: the configured one)\n"
               "     --max-cost=USD       Stop the loop once its agent runs cost more than USD dollars\n"
               "                          (default: the contract's limit, else none)\n"
               "     --tasks-max=N        At most N processes and threads in the agent's sandbox\n"
               "                          (default: [Sandbox] TasksMax=)\n"
               "     --memory-max=BYTES   At most BYTES of memory (K, M, G suffixes allowed; default:\n"
               "                          [Sandbox] MemoryMax=)\n"
               "     --cpu-weight=WEIGHT  The agent's share of the CPU, 1 to 10000 (default:\n"
               "                          [Sandbox] CPUWeight=)\n"
               CLI_COMMON_HELP);
}

static void help_list(void) {
        printf("makima task list [OPTIONS...]\n\n"
               "List the tasks you may see, oldest first.\n\n"
               "Options:\n"
               "     --contract=ID        Only tasks of this contract\n"
               "     --status=STATUS      Only tasks with this status (pending, running, paused, waiting,\n"
               "                          done, failed, interrupted, cancelled, iteration_limit_reached,\n"
               "                          merged)\n"
               CLI_COMMON_HELP);
}

static void help_show(void) {
        printf("makima task show [OPTIONS...] ID\n\n"
               "Show a task. ID may be a unique prefix of the id. 'iterations' is the number of agent\n"
               "runs and the most the loop may make (3/10); 'cost' what they cost and the limit;\n"
               "'reason' why a waiting task waits.\n\n"
               "Options:\n" CLI_COMMON_HELP);
}

static void help_events(void) {
        printf("makima task events [OPTIONS...] ID\n\n"
               "Show a task's events, one per line: #SEQ TIME TYPE SUMMARY.\n\n"
               "Options:\n"
               "     --after=SEQ          Only events after sequence number SEQ\n"
               "  -f --follow             Keep showing new events until the task has finished\n"
               "                          (with --json, one object per line)\n"
               CLI_COMMON_HELP);
}

static void help_delete(void) {
        printf("makima task delete [OPTIONS...] ID\n\n"
               "Delete a task and its events (refused while it is running).\n\n"
               "Options:\n" CLI_COMMON_HELP);
}

enum {
        ARG_REPO = _ARG_COMMON_MAX,
        ARG_NAME,
        ARG_CONTRACT,
        ARG_BASE_BRANCH,
        ARG_COPY_FILE,
        ARG_AUTONOMOUS_LOOP,
        ARG_MAX_ITERATIONS,
        ARG_MAX_COST,
        ARG_TASKS_MAX,
        ARG_MEMORY_MAX,
        ARG_CPU_WEIGHT,
        ARG_STATUS,
        ARG_AFTER,
};

typedef struct TaskArgs {
        const char *repo;
        const char *name;
        const char *contract;
        const char *base_branch;
        char **copy_files;
        bool autonomous_loop;
        int64_t max_iterations;         /* -1: not given */
        double max_cost_usd;            /* 0: not given */
        int64_t tasks_max;              /* 0: not given */
        uint64_t memory_max;            /* 0: not given */
        int64_t cpu_weight;             /* 0: not given */
        const char *status;
        int64_t after;
        bool follow;
} TaskArgs;

static void task_args_done(TaskArgs *a) {
        a->copy_files = strv_free(a->copy_files);
}

static int handle_option(Cli *cli, int c, const char *arg, void *userdata) {
        TaskArgs *a = userdata;

        switch (c) {
        case ARG_REPO:
                a->repo = arg;
                return 0;
        case ARG_NAME:
                a->name = arg;
                return 0;
        case ARG_CONTRACT:
                a->contract = arg;
                return 0;
        case ARG_BASE_BRANCH:
                a->base_branch = arg;
                return 0;
        case ARG_COPY_FILE:
                /* Checked by the API, which names the entry at fault. */
                if (strv_extend(&a->copy_files, arg) < 0)
                        return log_oom();
                return 0;
        case ARG_AUTONOMOUS_LOOP:
                a->autonomous_loop = true;
                return 0;
        case ARG_MAX_ITERATIONS:
                if (cli_parse_int64(arg, 1, INT_MAX, &a->max_iterations) < 0)
                        return cli_usage_error(cli, "task create", "--max-iterations expects a positive number, not '%s'", arg);
                return 0;
        case ARG_MAX_COST:
                if (cli_parse_usd(arg, &a->max_cost_usd) < 0)
                        return cli_usage_error(cli, "task create",
                                               "--max-cost expects an amount of US dollars above 0, such as 2.50, not '%s'", arg);
                return 0;
        case ARG_TASKS_MAX:
                if (cli_parse_int64(arg, 1, 4194304, &a->tasks_max) < 0)
                        return cli_usage_error(cli, "task create", "--tasks-max expects a number from 1 to 4194304, not '%s'", arg);
                return 0;
        case ARG_MEMORY_MAX:
                if (config_parse_size(arg, &a->memory_max) < 0 || a->memory_max < (UINT64_C(1) << 20) ||
                    a->memory_max > (UINT64_C(1) << 50))
                        return cli_usage_error(cli, "task create",
                                               "--memory-max expects a size from 1M to 1048576G, such as 2G, not '%s'", arg);
                return 0;
        case ARG_CPU_WEIGHT:
                if (cli_parse_int64(arg, 1, 10000, &a->cpu_weight) < 0)
                        return cli_usage_error(cli, "task create", "--cpu-weight expects a number from 1 to 10000, not '%s'", arg);
                return 0;
        case ARG_STATUS:
                if (task_state_from_string(arg) < 0)
                        return cli_usage_error(cli, "task list", "unknown task status '%s'", arg);
                a->status = arg;
                return 0;
        case 'f':
                a->follow = true;
                return 0;
        case ARG_AFTER:
                if (cli_parse_int64(arg, 0, INT64_MAX, &a->after) < 0)
                        return cli_usage_error(cli, "task events", "--after expects a sequence number, not '%s'", arg);
                return 0;
        }
        return -EINVAL;
}

/* Git's own rule: "scheme://…", or "host:path" with the colon before any slash, is remote. */
static bool repo_is_url(const char *repo) {
        const char *colon = strchr(repo, ':'), *slash = strchr(repo, '/');

        return strstr(repo, "://") || (colon && (!slash || colon < slash));
}

int verb_task_create(Cli *cli, int argc, char *argv[]) {
        static const struct option options[] = {
                CLI_COMMON_OPTIONS,
                { "repo",            required_argument, NULL, ARG_REPO            },
                { "name",            required_argument, NULL, ARG_NAME            },
                { "contract",        required_argument, NULL, ARG_CONTRACT        },
                { "base-branch",     required_argument, NULL, ARG_BASE_BRANCH     },
                { "copy-file",       required_argument, NULL, ARG_COPY_FILE       },
                { "autonomous-loop", no_argument,       NULL, ARG_AUTONOMOUS_LOOP },
                { "max-iterations",  required_argument, NULL, ARG_MAX_ITERATIONS  },
                { "max-cost",        required_argument, NULL, ARG_MAX_COST        },
                { "tasks-max",       required_argument, NULL, ARG_TASKS_MAX       },
                { "memory-max",      required_argument, NULL, ARG_MEMORY_MAX      },
                { "cpu-weight",      required_argument, NULL, ARG_CPU_WEIGHT      },
                {}
        };
        _cleanup_json_ json_object *body = NULL, *reply = NULL, *copy_files = NULL;
        _cleanup_free_ char *repo = NULL, *contract = NULL;
        _cleanup_(task_args_done) TaskArgs a = { .max_iterations = -1 };
        int r;

        r = cli_parse_options(cli, "task create", argc, argv, options, NULL, help_create, handle_option, &a);
        if (r <= 0)
                return r;
        r = cli_want_operands(cli, "task create", argc, argv, 1, "PLAN");
        if (r < 0)
                return r;
        if (isempty(argv[optind]))
                return cli_usage_error(cli, "task create", "the plan must not be empty");

        if (a.repo) {
                if (isempty(a.repo))
                        return cli_usage_error(cli, "task create", "--repo must not be empty");
                if (repo_is_url(a.repo))
                        repo = strdup(a.repo);
                else {
                        /* The worker runs elsewhere, with another working directory: send where the repository really is. */
                        repo = realpath(a.repo, NULL);
                        if (!repo && errno != ENOMEM)
                                return log_error_errno(errno, "--repo %s: %m", a.repo);
                }
                if (!repo)
                        return log_oom();
        }
        if (a.contract) {
                r = cli_resolve_id(cli, "contracts", "contract", a.contract, &contract);
                if (r < 0)
                        return r;
        }

        if (a.copy_files && json_new_strv(a.copy_files, &copy_files) < 0)
                return log_oom();

        body = json_object_new_object();
        if (!body ||
            json_add_string(body, "plan", argv[optind]) < 0 ||
            (a.name && json_add_string(body, "name", a.name) < 0) ||
            (repo && json_add_string(body, "repo", repo) < 0) ||
            (contract && json_add_string(body, "contract_id", contract) < 0) ||
            (a.base_branch && json_add_string(body, "base_branch", a.base_branch) < 0) ||
            (copy_files && json_object_object_add(body, "copy_files", TAKE_PTR(copy_files)) < 0) ||
            (a.autonomous_loop && json_object_object_add(body, "autonomous_loop", json_object_new_boolean(true)) < 0) ||
            (a.max_iterations > 0 &&
             json_object_object_add(body, "max_iterations", json_object_new_int64(a.max_iterations)) < 0) ||
            (a.max_cost_usd > 0 &&
             json_object_object_add(body, "max_cost_usd", json_object_new_double(a.max_cost_usd)) < 0) ||
            (a.tasks_max > 0 && json_object_object_add(body, "tasks_max", json_object_new_int64(a.tasks_max)) < 0) ||
            (a.memory_max > 0 &&
             json_object_object_add(body, "memory_max", json_object_new_int64((int64_t) a.memory_max)) < 0) ||
            (a.cpu_weight > 0 && json_object_object_add(body, "cpu_weight", json_object_new_int64(a.cpu_weight)) < 0))
                return log_oom();

        return cli_create(cli, body, "task create", "/tasks");
}

/* A task without a name is known by the start of its plan. */
static char *task_title(json_object *t) {
        const char *name = json_get_string(t, "name"), *plan = json_get_string(t, "plan");
        size_t l, cut = 0, w = 0;
        char *s;

        if (!isempty(name))
                return strdup(name);
        if (!plan)
                return strdup("-");
        l = strcspn(plan, "\n");
        while (cut < l && w < 40) {
                cut++;
                while (cut < l && ((unsigned char) plan[cut] & 0xC0) == 0x80)
                        cut++;
                w++;
        }
        if (asprintf(&s, "%.*s%s", (int) cut, plan, cut < l || plan[l] ? "…" : "") < 0)
                return NULL;
        return s;
}

int verb_task_list(Cli *cli, int argc, char *argv[]) {
        static const struct option options[] = {
                CLI_COMMON_OPTIONS,
                { "contract", required_argument, NULL, ARG_CONTRACT },
                { "status",   required_argument, NULL, ARG_STATUS   },
                {}
        };
        _cleanup_json_ json_object *list = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_free_ char *query = NULL, *contract = NULL;
        TaskArgs a = {};
        json_object *tasks;
        int r;

        r = cli_parse_options(cli, "task list", argc, argv, options, NULL, help_list, handle_option, &a);
        if (r <= 0)
                return r;
        r = cli_want_operands(cli, "task list", argc, argv, 0, "");
        if (r < 0)
                return r;
        if (a.contract) {
                r = cli_resolve_id(cli, "contracts", "contract", a.contract, &contract);
                if (r < 0)
                        return r;
        }

        if (asprintf(&query, "%s%s%s%s%s", contract ? "contract=" : "", strempty(contract),
                     contract && a.status ? "&" : "", a.status ? "status=" : "", strempty(a.status)) < 0)
                return log_oom();
        r = cli_list_all(cli, "tasks", query, "task list", &list);
        if (r < 0)
                return r;
        if (cli->json)
                return cli_print_json(list);

        t = table_new(cli, "ID", "STATUS", "ITER", "CONTRACT", "UPDATED", "NAME", NULL);
        if (!t)
                return log_oom();
        (void) json_object_object_get_ex(list, "tasks", &tasks);
        for (size_t i = 0; i < json_object_array_length(tasks); i++) {
                json_object *task = json_object_array_get_idx(tasks, i);
                const char *status = json_get_string(task, "status");
                _cleanup_free_ char *title = NULL, *iter = NULL;
                char id[9], cid[9], updated[64];
                int64_t max = json_get_int(task, "max_iterations", 0);

                title = task_title(task);
                if (!title)
                        return log_oom();
                if (max > 0 ? asprintf(&iter, "%" PRIi64 "/%" PRIi64, json_get_int(task, "iteration_count", 0), max) < 0 :
                              asprintf(&iter, "%" PRIi64, json_get_int(task, "iteration_count", 0)) < 0)
                        return log_oom();
                r = table_add_row(t, 1, cli_status_color(cli, status),
                                  short_id(json_get_string(task, "id"), id), status, iter,
                                  json_get_string(task, "contract_id") ? short_id(json_get_string(task, "contract_id"), cid) : NULL,
                                  format_relative(json_get_string(task, "updated_at"), updated, sizeof(updated)),
                                  title);
                if (r < 0)
                        return log_oom();
        }
        return table_print(t, "No tasks.");
}

static int parse_id_command(Cli *cli, const char *command, int argc, char *argv[], void (*help)(void),
                            TaskArgs *a, char **ret_id) {
        static const struct option options[] = {
                CLI_COMMON_OPTIONS,
                {}
        };
        static const struct option options_events[] = {
                CLI_COMMON_OPTIONS,
                { "after",  required_argument, NULL, ARG_AFTER },
                { "follow", no_argument,       NULL, 'f'       },
                {}
        };

        return cli_parse_id_operands(cli, command, "tasks", "task", argc, argv, a ? options_events : options,
                                     a ? "f" : NULL, help, handle_option, a, 1, "ID", ret_id);
}

/* copy_files one path a line ("-" for none): paths are not a sequence of words. */
static int copy_files_display(json_object *files, json_object **ret) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        FILE *f;

        if (!json_object_is_type(files, json_type_array) || json_object_array_length(files) == 0) {
                *ret = NULL;
                return 0;
        }
        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < json_object_array_length(files); i++) {
                const char *path = json_object_get_string(json_object_array_get_idx(files, i));

                fprintf(f, "%s%s", i > 0 ? "\n" : "", strempty(path));
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = json_object_new_string(text);
        return *ret ? 0 : -ENOMEM;
}

/* The task as `show` prints it: "iterations" ("3/10", or "3/default" while
 * the configured default applies) for iteration_count and max_iterations,
 * "cost" ("$0.0123", "$0.0123 (limit $2.00)") for cost_usd and
 * max_cost_usd, copy_files a path a line, and, for a waiting task, its
 * error as the "reason" it waits (the worker writes "rate limited until …"
 * there). */
static int task_display(json_object *task, json_object **ret) {
        _cleanup_json_ json_object *o = NULL;
        _cleanup_free_ char *iterations = NULL, *cost = NULL;
        bool waiting = streq_ptr(json_get_string(task, "status"), "waiting");
        int64_t count = json_get_int(task, "iteration_count", 0), max = json_get_int(task, "max_iterations", 0);
        char spent[32], limit[32];
        json_object *v;
        double usd = 0, max_usd = 0;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        json_object_object_foreach(task, key, value) {
                if (streq(key, "iteration_count") || streq(key, "max_iterations") || streq(key, "cost_usd") ||
                    streq(key, "max_cost_usd"))
                        continue;
                if (streq(key, "copy_files")) {
                        json_object *files = NULL;

                        if (copy_files_display(value, &files) < 0 || json_object_object_add(o, key, files) < 0) {
                                json_object_put(files);
                                return -ENOMEM;
                        }
                        continue;
                }
                if (json_object_object_add(o, waiting && streq(key, "error") ? "reason" : key, json_object_get(value)) < 0) {
                        json_object_put(value);
                        return -ENOMEM;
                }
        }

        if (json_object_object_get_ex(task, "cost_usd", &v) && v)
                usd = json_object_get_double(v);
        if (json_object_object_get_ex(task, "max_cost_usd", &v) && v)
                max_usd = json_object_get_double(v);
        if ((max > 0 ? asprintf(&iterations, "%" PRIi64 "/%" PRIi64, count, max) :
                       asprintf(&iterations, "%" PRIi64 "/default", count)) < 0)
                return -ENOMEM;
        format_usd(usd, spent, sizeof(spent));
        if ((max_usd > 0 ? asprintf(&cost, "%s (limit %s)", spent, format_usd(max_usd, limit, sizeof(limit))) :
                           asprintf(&cost, "%s", spent)) < 0)
                return -ENOMEM;
        if (json_add_string(o, "iterations", iterations) < 0 || json_add_string(o, "cost", cost) < 0)
                return -ENOMEM;

        *ret = TAKE_PTR(o);
        return 0;
}

int verb_task_show(Cli *cli, int argc, char *argv[]) {
        _cleanup_json_ json_object *reply = NULL, *display = NULL;
        _cleanup_free_ char *id = NULL, *what = NULL;
        int r;

        r = parse_id_command(cli, "task show", argc, argv, help_show, NULL, &id);
        if (r <= 0)
                return r;
        r = cli_get_object(cli, "tasks", "task", id, &reply);
        if (r < 0)
                return r;
        if (cli->json)
                return cli_print_json(reply);
        r = task_display(reply, &display);
        if (r < 0)
                return log_oom();
        return cli_print_object(cli, display, task_keys);
}

int verb_task_events(Cli *cli, int argc, char *argv[]) {
        _cleanup_free_ char *id = NULL, *what = NULL;
        TaskArgs a = {};
        int r;

        r = parse_id_command(cli, "task events", argc, argv, help_events, &a, &id);
        if (r <= 0)
                return r;
        if (asprintf(&what, "task %s", id) < 0)
                return log_oom();
        return cli_show_events(cli, "tasks", id, a.after, a.follow, what);
}

int verb_task_delete(Cli *cli, int argc, char *argv[]) {
        _cleanup_free_ char *id = NULL;
        int r;

        r = parse_id_command(cli, "task delete", argc, argv, help_delete, NULL, &id);
        if (r <= 0)
                return r;
        return cli_delete_object(cli, "tasks", "task", id);
}
