/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* makima: the command-line client. Global options, then a noun and a verb
 * ("makima task create …") dispatched to the cli-*.c files; "makima up"
 * runs the services in the foreground; "makima notifications" lists them. */

#include "cli.h"

static void help(void) {
        printf("makima [OPTIONS...] COMMAND ...\n\n"
               "Run fleets of coding agents: contracts, tasks, repositories and tokens through makima-api.\n\n"
               "Contract commands:\n"
               "  contract create [--type=TYPE] [--description=TEXT] [--autonomous-loop]\n"
               "                  [--max-cost=USD] NAME\n"
               "                                Create a contract and print its id\n"
               "  contract list [--status=STATUS]\n"
               "                                List contracts\n"
               "  contract show ID              Show a contract\n"
               "  contract phase ID PHASE       Move a contract to another phase\n"
               "  contract delete ID            Delete a contract\n"
               "  contract events ID [--after=SEQ] [--follow]\n"
               "                                Show a contract's events\n\n"
               "Task commands:\n"
               "  task create [--repo=PATH|URL] [--name=NAME] [--contract=ID]\n"
               "              [--base-branch=BRANCH] [--autonomous-loop] [--max-iterations=N]\n"
               "              [--max-cost=USD] [--tasks-max=N] [--memory-max=BYTES]\n"
               "              [--cpu-weight=WEIGHT] PLAN\n"
               "                                Create a task and print its id\n"
               "  task list [--contract=ID] [--status=STATUS]\n"
               "                                List tasks\n"
               "  task show ID                  Show a task\n"
               "  task events ID [--after=SEQ] [--follow]\n"
               "                                Show a task's events\n"
               "  task watch ID                 Follow a task's events live until it ends\n"
               "  task diff ID                  Show what a task changed in its worktree\n"
               "  task pause ID                 Pause a task's agent\n"
               "  task resume ID [--max-iterations=N]\n"
               "                                Let a paused task's agent go on, or queue a task\n"
               "                                stopped at its iteration limit with a higher one\n"
               "  task interrupt ID             Stop the agent's current turn\n"
               "  task send ID MESSAGE          Send the agent a message\n"
               "  task cancel ID                Cancel a task\n"
               "  task delete ID                Delete a task\n\n"
               "  notifications [--unread]      List your notifications\n\n"
               "Repository commands:\n"
               "  repo grant --owner=NAME PATH  Let NAME's tasks work on a local repository\n"
               "                                (administrators)\n"
               "  repo list [--owner=NAME]      List the granted repositories\n"
               "  repo revoke [--owner=NAME] PATH|ID\n"
               "                                Take a grant back (administrators)\n\n"
               "Token commands (administrators):\n"
               "  token create --owner=NAME [--description=TEXT]\n"
               "                                Mint an API token and print it\n"
               "  token delete ID               Revoke a token\n\n"
               "Quick start:\n"
               "  up [--state-dir=DIR] [--workers=N] [--config=FILE]\n"
               "                                Run makima-api and workers in the foreground\n\n"
               "Options:\n"
               "  -h --help                Show this help (after a command: that command's help)\n"
               "     --version             Show the package version\n"
               "     --json                Print the API's JSON objects instead of tables\n"
               "     --url=URL             The API: unix:PATH or http://HOST:PORT\n"
               "                           (default: $MAKIMA_API_URL, else " DEFAULT_API_URL ")\n\n"
               "Environment:\n"
               "  MAKIMA_API_URL           The API's address, like --url\n"
               "  MAKIMA_API_KEY           A token from 'makima token create', sent as a bearer token\n\n"
               "IDs may be shortened to a unique prefix. See makima(1) for more.\n");
}

static const Verb verbs[] = {
        { "contract", "create", verb_contract_create },
        { "contract", "list",   verb_contract_list   },
        { "contract", "show",   verb_contract_show   },
        { "contract", "phase",  verb_contract_phase  },
        { "contract", "delete", verb_contract_delete },
        { "contract", "events", verb_contract_events },
        { "task",     "create", verb_task_create     },
        { "task",     "list",   verb_task_list       },
        { "task",     "show",   verb_task_show       },
        { "task",     "events", verb_task_events     },
        { "task",     "watch",  verb_task_watch      },
        { "task",     "diff",   verb_task_diff       },
        { "task",     "pause",  verb_task_pause      },
        { "task",     "resume", verb_task_resume     },
        { "task",     "interrupt", verb_task_interrupt },
        { "task",     "send",   verb_task_send       },
        { "task",     "cancel", verb_task_cancel     },
        { "task",     "delete", verb_task_delete     },
        { "repo",     "grant",  verb_repo_grant      },
        { "repo",     "list",   verb_repo_list       },
        { "repo",     "revoke", verb_repo_revoke     },
        { "token",    "create", verb_token_create    },
        { "token",    "delete", verb_token_delete    },
        { "up",       NULL,     verb_up              },
        { "notifications", NULL, verb_notifications  },
};

static const struct {
        const char *noun;
        void (*help)(void);
} nouns[] = {
        { "contract", help_contract },
        { "task",     help_task     },
        { "repo",     help_repo     },
        { "token",    help_token    },
};

/* Parses the options before the noun (or, with noun set, between noun and
 * verb). Returns 1 to go on, 0 when done (help, version), < 0 on error. */
static int parse_global(Cli *cli, const char *noun, void (*noun_help)(void), int argc, char *argv[]) {
        static const struct option options[] = {
                CLI_COMMON_OPTIONS,
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        int c, r;

        /* "+": stop at the first operand, which is the noun or the verb. */
        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        noun_help();
                        return 0;
                case ARG_VERSION:
                        printf("makima %s\n", PACKAGE_VERSION);
                        return 0;
                case ':':
                        return cli_usage_error(cli, noun, "option '%s' needs a value", argv[optind - 1]);
                case '?':
                        if (optopt)
                                return cli_usage_error(cli, noun, "unknown option '-%c'", optopt);
                        return cli_usage_error(cli, noun, "unknown option '%s'", argv[optind - 1]);
                default:
                        r = cli_common_option(cli, c, optarg);
                        if (r < 0)
                                return r;
                }
        return 1;
}

static int dispatch(Cli *cli, int argc, char *argv[]) {
        void (*noun_help)(void) = NULL;
        const char *noun, *verb;
        int r;

        r = parse_global(cli, NULL, help, argc, argv);
        if (r <= 0)
                return r;
        if (optind >= argc)
                return cli_usage_error(cli, NULL, "missing command");
        noun = argv[optind];
        argc -= optind;
        argv += optind;

        /* Commands without verbs. */
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (!verbs[i].verb && streq(verbs[i].noun, noun))
                        return verbs[i].run(cli, argc, argv);

        for (size_t i = 0; i < ELEMENTSOF(nouns); i++)
                if (streq(nouns[i].noun, noun))
                        noun_help = nouns[i].help;
        if (!noun_help)
                return cli_usage_error(cli, NULL, "unknown command '%s'", noun);

        r = parse_global(cli, noun, noun_help, argc, argv);
        if (r <= 0)
                return r;
        if (optind >= argc)
                return cli_usage_error(cli, noun, "missing command: %s what?", noun);
        verb = argv[optind];
        argc -= optind;
        argv += optind;

        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].noun, noun) && streq_ptr(verbs[i].verb, verb))
                        return verbs[i].run(cli, argc, argv);
        return cli_usage_error(cli, noun, "unknown command '%s %s'", noun, verb);
}

int main(int argc, char *argv[]) {
        Cli cli = {
                .program = "makima",
        };
        const char *e;
        int r;

        log_setup("makima");

        e = getenv("MAKIMA_API_URL");
        cli.url = strdup(!isempty(e) ? e : DEFAULT_API_URL);
        if (!cli.url)
                return log_oom(), EXIT_FAILURE;
        e = getenv("MAKIMA_API_KEY");
        cli.api_key = !isempty(e) ? e : NULL;
        e = getenv("TERM");
        cli.color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR") && !streq_ptr(e, "dumb");

        r = dispatch(&cli, argc, argv);

        free(cli.url);
        http_endpoint_free(cli.endpoint);
        if (r < 0)
                return cli.usage_error ? EXIT_USAGE : EXIT_FAILURE;
        return EXIT_SUCCESS;
}
