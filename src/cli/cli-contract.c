/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "makima contract …": create, list, show, move through phases, delete, and
 * read the event log of contracts. */

#include "cli.h"
#include "model.h"

static const char *const contract_keys[] = {
        "id", "name", "owner", "type", "phase", "phases", "status", "autonomous_loop", "max_cost_usd", "description",
        "supervisor_task_id", "created_at", "updated_at", "version", NULL,
};

void help_contract(void) {
        printf("makima contract COMMAND ...\n\n"
               "Contracts: goals that move through phases, made of tasks.\n\n"
               "Commands:\n"
               "  create [--type=TYPE] [--description=TEXT] [--autonomous-loop] [--max-cost=USD] NAME\n"
               "                           Create a contract and print its id\n"
               "  list [--status=STATUS]   List contracts\n"
               "  show ID                  Show a contract\n"
               "  phase ID PHASE           Move a contract to another phase\n"
               "  delete ID                Delete a contract\n"
               "  events ID [--after=SEQ] [--follow]\n"
               "                           Show a contract's events\n\n"
               "Options:\n" CLI_COMMON_HELP);
}

static void help_create(void) {
        printf("makima contract create [OPTIONS...] NAME\n\n"
               "Create a contract and print its id (with --json, the contract).\n\n"
               "Options:\n"
               "     --type=TYPE          spec (research, specify, plan, execute, review; the default),\n"
               "                          simple (plan, execute, review) or execute (execute, review)\n"
               "     --description=TEXT   What the contract is for\n"
               "     --autonomous-loop    Its tasks restart their agent until the work is done\n"
               "     --max-cost=USD       The cost limit of the loop of each of its tasks that has\n"
               "                          none of its own, in US dollars\n"
               CLI_COMMON_HELP);
}

static void help_list(void) {
        printf("makima contract list [OPTIONS...]\n\n"
               "List the contracts you may see, oldest first.\n\n"
               "Options:\n"
               "     --status=STATUS      Only contracts with this status (active, paused, completed,\n"
               "                          failed, cancelled)\n"
               CLI_COMMON_HELP);
}

static void help_show(void) {
        printf("makima contract show [OPTIONS...] ID\n\n"
               "Show a contract. ID may be a unique prefix of the id.\n\n"
               "Options:\n" CLI_COMMON_HELP);
}

static void help_phase(void) {
        printf("makima contract phase [OPTIONS...] ID PHASE\n\n"
               "Move a contract to PHASE: the next phase of its type, or an earlier one to revisit it.\n\n"
               "Options:\n" CLI_COMMON_HELP);
}

static void help_delete(void) {
        printf("makima contract delete [OPTIONS...] ID\n\n"
               "Delete a contract (refused while one of its tasks is running).\n\n"
               "Options:\n" CLI_COMMON_HELP);
}

static void help_events(void) {
        printf("makima contract events [OPTIONS...] ID\n\n"
               "Show a contract's events, one per line: #SEQ TIME TYPE SUMMARY.\n\n"
               "Options:\n"
               "     --after=SEQ          Only events after sequence number SEQ\n"
               "  -f --follow             Keep showing new events until the contract is completed\n"
               "                          or cancelled (with --json, one object per line)\n"
               CLI_COMMON_HELP);
}

typedef struct CreateArgs {
        const char *type;
        const char *description;
        bool autonomous_loop;
        double max_cost_usd;            /* 0: not given */
} CreateArgs;

enum {
        ARG_TYPE = _ARG_COMMON_MAX,
        ARG_DESCRIPTION,
        ARG_AUTONOMOUS_LOOP,
        ARG_MAX_COST,
        ARG_STATUS,
        ARG_AFTER,
};

static int handle_create(Cli *cli, int c, const char *arg, void *userdata) {
        CreateArgs *a = userdata;

        switch (c) {
        case ARG_TYPE:
                if (contract_type_from_string(arg) < 0)
                        return cli_usage_error(cli, "contract create",
                                               "unknown contract type '%s' (one of: spec, simple, execute)", arg);
                a->type = arg;
                return 0;
        case ARG_DESCRIPTION:
                a->description = arg;
                return 0;
        case ARG_AUTONOMOUS_LOOP:
                a->autonomous_loop = true;
                return 0;
        case ARG_MAX_COST:
                if (cli_parse_usd(arg, &a->max_cost_usd) < 0)
                        return cli_usage_error(cli, "contract create",
                                               "--max-cost expects an amount of US dollars above 0, such as 2.50, not '%s'", arg);
                return 0;
        }
        return -EINVAL;
}

int verb_contract_create(Cli *cli, int argc, char *argv[]) {
        static const struct option options[] = {
                CLI_COMMON_OPTIONS,
                { "type",            required_argument, NULL, ARG_TYPE            },
                { "description",     required_argument, NULL, ARG_DESCRIPTION     },
                { "autonomous-loop", no_argument,       NULL, ARG_AUTONOMOUS_LOOP },
                { "max-cost",        required_argument, NULL, ARG_MAX_COST        },
                {}
        };
        _cleanup_json_ json_object *body = NULL, *reply = NULL;
        CreateArgs a = {};
        int r;

        r = cli_parse_options(cli, "contract create", argc, argv, options, NULL, help_create, handle_create, &a);
        if (r <= 0)
                return r;
        r = cli_want_operands(cli, "contract create", argc, argv, 1, "NAME");
        if (r < 0)
                return r;

        body = json_object_new_object();
        if (!body ||
            json_add_string(body, "name", argv[optind]) < 0 ||
            (a.type && json_add_string(body, "type", a.type) < 0) ||
            (a.description && json_add_string(body, "description", a.description) < 0) ||
            (a.autonomous_loop && json_object_object_add(body, "autonomous_loop", json_object_new_boolean(true)) < 0) ||
            (a.max_cost_usd > 0 &&
             json_object_object_add(body, "max_cost_usd", json_object_new_double(a.max_cost_usd)) < 0))
                return log_oom();

        return cli_create(cli, body, "contract create", "/contracts");
}

static int handle_status(Cli *cli, int c, const char *arg, void *userdata) {
        if (c != ARG_STATUS)
                return -EINVAL;
        if (contract_status_from_string(arg) < 0)
                return cli_usage_error(cli, "contract list",
                                       "unknown contract status '%s' (one of: active, paused, completed, failed, cancelled)",
                                       arg);
        *(const char **) userdata = arg;
        return 0;
}

int verb_contract_list(Cli *cli, int argc, char *argv[]) {
        static const struct option options[] = {
                CLI_COMMON_OPTIONS,
                { "status", required_argument, NULL, ARG_STATUS },
                {}
        };
        _cleanup_json_ json_object *list = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_free_ char *query = NULL;
        const char *status = NULL;
        json_object *a;
        int r;

        r = cli_parse_options(cli, "contract list", argc, argv, options, NULL, help_list, handle_status, &status);
        if (r <= 0)
                return r;
        r = cli_want_operands(cli, "contract list", argc, argv, 0, "");
        if (r < 0)
                return r;

        if (status && asprintf(&query, "status=%s", status) < 0)
                return log_oom();
        r = cli_list_all(cli, "contracts", query, "contract list", &list);
        if (r < 0)
                return r;
        if (cli->json)
                return cli_print_json(list);

        t = table_new(cli, "ID", "NAME", "TYPE", "PHASE", "STATUS", "UPDATED", NULL);
        if (!t)
                return log_oom();
        (void) json_object_object_get_ex(list, "contracts", &a);
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                json_object *c = json_object_array_get_idx(a, i);
                const char *s = json_get_string(c, "status");
                char id[9], updated[64];

                r = table_add_row(t, 4, cli_status_color(cli, s),
                                  short_id(json_get_string(c, "id"), id), json_get_string(c, "name"),
                                  json_get_string(c, "type"), json_get_string(c, "phase"), s,
                                  format_relative(json_get_string(c, "updated_at"), updated, sizeof(updated)));
                if (r < 0)
                        return log_oom();
        }
        return table_print(t, "No contracts.");
}

/* Parses options for the commands that take only IDs (and PHASE). */
static int parse_id_command(Cli *cli, const char *command, int argc, char *argv[], void (*help)(void), int n,
                            const char *names, char **ret_id) {
        static const struct option options[] = {
                CLI_COMMON_OPTIONS,
                {}
        };

        return cli_parse_id_operands(cli, command, "contracts", "contract", argc, argv, options, NULL, help, NULL, NULL,
                                     n, names, ret_id);
}

int verb_contract_show(Cli *cli, int argc, char *argv[]) {
        _cleanup_json_ json_object *reply = NULL;
        json_object *limit = NULL;
        _cleanup_free_ char *id = NULL, *what = NULL;
        int r;

        r = parse_id_command(cli, "contract show", argc, argv, help_show, 1, "ID", &id);
        if (r <= 0)
                return r;
        r = cli_get_object(cli, "contracts", "contract", id, &reply);
        if (r < 0)
                return r;
        if (cli->json)
                return cli_print_json(reply);
        /* A limit reads as money; none stays null ("-"). */
        if (json_object_object_get_ex(reply, "max_cost_usd", &limit) && limit) {
                char usd[32];

                if (json_add_string(reply, "max_cost_usd", format_usd(json_object_get_double(limit), usd, sizeof(usd))) < 0)
                        return log_oom();
        }
        return cli_print_object(cli, reply, contract_keys);
}

int verb_contract_phase(Cli *cli, int argc, char *argv[]) {
        _cleanup_json_ json_object *body = NULL, *reply = NULL;
        _cleanup_free_ char *id = NULL, *what = NULL;
        const char *phase;
        char sid[9];
        int r;

        r = parse_id_command(cli, "contract phase", argc, argv, help_phase, 2, "ID and PHASE", &id);
        if (r <= 0)
                return r;
        phase = argv[optind + 1];
        if (contract_phase_from_string(phase) < 0)
                return cli_usage_error(cli, "contract phase",
                                       "unknown phase '%s' (one of: research, specify, plan, execute, review)", phase);

        body = json_object_new_object();
        if (!body || json_add_string(body, "phase", phase) < 0)
                return log_oom();
        if (asprintf(&what, "contract %s", id) < 0)
                return log_oom();
        r = cli_call(cli, "POST", body, what, &reply, "/contracts/%s/phase", id);
        if (r < 0)
                return r;
        if (cli->json)
                return cli_print_json(reply);
        printf("Contract %s is in phase %s.\n", short_id(id, sid), strna(json_get_string(reply, "phase")));
        return 0;
}

int verb_contract_delete(Cli *cli, int argc, char *argv[]) {
        _cleanup_free_ char *id = NULL;
        int r;

        r = parse_id_command(cli, "contract delete", argc, argv, help_delete, 1, "ID", &id);
        if (r <= 0)
                return r;
        return cli_delete_object(cli, "contracts", "contract", id);
}

typedef struct EventsArgs {
        int64_t after;
        bool follow;
} EventsArgs;

static int handle_events(Cli *cli, int c, const char *arg, void *userdata) {
        EventsArgs *a = userdata;

        if (c == 'f') {
                a->follow = true;
                return 0;
        }
        if (c != ARG_AFTER)
                return -EINVAL;
        if (cli_parse_int64(arg, 0, INT64_MAX, &a->after) < 0)
                return cli_usage_error(cli, "contract events", "--after expects a sequence number, not '%s'", arg);
        return 0;
}

int verb_contract_events(Cli *cli, int argc, char *argv[]) {
        static const struct option options[] = {
                CLI_COMMON_OPTIONS,
                { "after",  required_argument, NULL, ARG_AFTER },
                { "follow", no_argument,       NULL, 'f'       },
                {}
        };
        _cleanup_free_ char *id = NULL, *what = NULL;
        EventsArgs a = {};
        int r;

        r = cli_parse_options(cli, "contract events", argc, argv, options, "f", help_events, handle_events, &a);
        if (r <= 0)
                return r;
        r = cli_want_operands(cli, "contract events", argc, argv, 1, "ID");
        if (r < 0)
                return r;
        r = cli_resolve_id(cli, "contracts", "contract", argv[optind], &id);
        if (r < 0)
                return r;
        if (asprintf(&what, "contract %s", id) < 0)
                return log_oom();
        return cli_show_events(cli, "contracts", id, a.after, a.follow, what);
}
