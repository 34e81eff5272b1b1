/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the makima command-line client's files share: the invocation's
 * settings, calling the API with one-line error reports, resolving short
 * ids, and the output helpers of cli-table.c. */
#pragma once

#include <getopt.h>
#include <inttypes.h>
#include <sys/types.h>
#include <json-c/json.h>

#include "http-client.h"
#include "json-util.h"
#include "log.h"

#define DEFAULT_API_URL "unix:" "/run/makima/api.sock"
#define EXIT_USAGE 2

typedef struct Cli {
        const char *program;            /* "makima" */
        char *url;                      /* --url, else $MAKIMA_API_URL, else DEFAULT_API_URL */
        const char *api_key;            /* $MAKIMA_API_KEY */
        bool json;                      /* --json */
        bool color;                     /* stdout is a terminal and NO_COLOR is unset */
        bool usage_error;               /* the failure was the caller's: exit 2 */
        HttpEndpoint *endpoint;         /* parsed from url on first use */
} Cli;

/* Options every command takes; a command's own table starts with these. */
enum {
        ARG_JSON = 0x100,
        ARG_URL,
        ARG_VERSION,
        _ARG_COMMON_MAX,
};
#define CLI_COMMON_OPTIONS                                              \
        { "help",    no_argument,       NULL, 'h'         },            \
        { "json",    no_argument,       NULL, ARG_JSON    },            \
        { "url",     required_argument, NULL, ARG_URL     }

/* The --help lines of the common options. */
#define CLI_COMMON_HELP                                                                         \
        "  -h --help               Show this help\n"                                           \
        "     --json               Print the API's JSON objects instead of tables\n"           \
        "     --url=URL            The API: unix:PATH or http://HOST:PORT\n"                    \
        "                          (default: $MAKIMA_API_URL, else " DEFAULT_API_URL ")\n"

/* Parses a decimal number in [min, max]; -EINVAL or -ERANGE otherwise. */
int cli_parse_int64(const char *s, int64_t min, int64_t max, int64_t *ret);
/* Parses an amount of US dollars, "2.50" or "$2.50", more than 0; -EINVAL or -ERANGE otherwise. */
int cli_parse_usd(const char *s, double *ret);

/* Handles a common option; returns 1 if c was one, 0 if not, < 0 on error. */
int cli_common_option(Cli *cli, int c, const char *arg);

/* Prints "makima: <message>" and "Try 'makima <command> --help'." and
 * returns -EINVAL with cli->usage_error set. */
int cli_usage_error(Cli *cli, const char *command, const char *format, ...) _printf_(3, 4);

/* A command: "contract create", with its handler and its --help text. */
typedef struct Verb {
        const char *noun;
        const char *verb;
        int (*run)(Cli *cli, int argc, char *argv[]);
} Verb;

typedef int (*CliOptionHandler)(Cli *cli, int c, const char *arg, void *userdata);

/* Parses argv for a command with the given options (common ones included by
 * the caller's table). For each option not common calls handle(). Prints
 * the help and returns 0 on --help; returns 1 to go on, < 0 on a usage
 * error. Leaves optind at the first operand. */
int cli_parse_options(Cli *cli, const char *command, int argc, char *argv[], const struct option *options,
                      const char *short_options, void (*help)(void), CliOptionHandler handle, void *userdata);

/* Checks that exactly n operands follow the options; `names` says which for the message. */
int cli_want_operands(Cli *cli, const char *command, int argc, char *argv[], int n, const char *names);

/* ---- cli-api.c ---- */

/* Calls the API: method, a path under /api/v1 (printf-formatted), an optional
 * JSON body. On a 2xx answer returns 0 and the parsed body (NULL when there
 * is none). Otherwise reports one line on stderr — "makima: <what>: <why>",
 * what may be NULL — and returns < 0. */
int cli_call(Cli *cli, const char *method, json_object *body, const char *what, json_object **ret,
             const char *path_format, ...) _printf_(6, 7);
/* The same, and the answer's status (200, 202, …) in ret_status. */
int cli_call_status(Cli *cli, const char *method, json_object *body, const char *what, json_object **ret,
                    unsigned *ret_status, const char *path_format, ...) _printf_(7, 8);
/* The same for answers that are not JSON: the whole response on 2xx. */
int cli_call_raw(Cli *cli, const char *method, const char *what, HttpResponse **ret, const char *path_format, ...)
        _printf_(5, 6);

/* Parses cli->url (once); reports a bad one. */
int cli_endpoint(Cli *cli);
/* Connects to the API; reports and returns < 0 when it cannot. */
int cli_connect(Cli *cli);
/* Reports a non-2xx answer in one line, as cli_call() does; returns -EIO. */
int cli_report_response(Cli *cli, const HttpResponse *resp, const char *what);

/* Parses a command that takes the common options and one ID operand, and
 * resolves the ID among `collection` ("tasks"). Returns 1 and the full id to
 * go on, 0 after --help, < 0 on error (reported). */
int cli_parse_id_command(Cli *cli, const char *command, const char *collection, const char *noun, int argc,
                         char *argv[], void (*help)(void), char **ret_id);

/* cli_parse_id_command() with the command's own options (handled by
 * handler) and n operands, named `names` in the usage error; the first is the ID. */
int cli_parse_id_operands(Cli *cli, const char *command, const char *collection, const char *noun, int argc,
                          char *argv[], const struct option options[], const char *short_options, void (*help)(void),
                          CliOptionHandler handler, void *userdata, int n, const char *names, char **ret_id);

/* POSTs body to path and prints the new object's id (or, with --json, the answer). */
int cli_create(Cli *cli, json_object *body, const char *command, const char *path);
/* GETs /collection/id; errors name the object as "noun id". */
int cli_get_object(Cli *cli, const char *collection, const char *noun, const char *id, json_object **ret);
/* DELETEs /collection/id and says so ("Task 1a2b3c4d deleted.") unless --json. */
int cli_delete_object(Cli *cli, const char *collection, const char *noun, const char *id);

/* Calls GET on a list path and collects every page of its "key" array into
 * one {"key":[…]} object (the API's own shape). query is "" or "a=b&c=d". */
int cli_list_all(Cli *cli, const char *collection, const char *query, const char *what, json_object **ret);

/* Turns an id the user typed into a full id: a full id is used as is; a
 * shorter prefix is looked up among the objects of `collection` ("tasks",
 * "contracts") and must match exactly one. Reports and returns < 0 if not. */
int cli_resolve_id(Cli *cli, const char *collection, const char *noun, const char *id, char **ret);

/* Prints every event of /collection/id after `after` (one per line, or one
 * {"events":[…]} object with --json). With follow, keeps printing new ones
 * (with --json one object per line) until the object's status is final. */
int cli_show_events(Cli *cli, const char *collection, const char *id, int64_t after, bool follow, const char *what);

/* URL-encodes s for a query string. */
char *cli_url_escape(const char *s);
/* %-escapes every byte of s but ASCII letters, digits and those in keep, in
 * lower- or uppercase hex. */
char *cli_percent_escape(const char *s, const char *keep, bool lowercase);

/* ---- cli-table.c ---- */

typedef struct Table Table;

Table *table_new(Cli *cli, const char *first_header, ...);   /* headers, ended by NULL */
Table *table_free(Table *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free);
/* Adds a row: one string per column (NULL shows as "-"), and an ANSI color
 * sequence for the column `color_column` (-1: none). */
int table_add_row(Table *t, int color_column, const char *color, ...);
/* Prints the table, or a line saying there is nothing if it has no rows. */
int table_print(Table *t, const char *empty_message);

/* Colors used for task statuses and the like; "" when colors are off. */
const char *cli_status_color(Cli *cli, const char *status);
const char *cli_ansi(Cli *cli, const char *sequence);
#define ANSI_NORMAL "\x1B[0m"
#define ANSI_BOLD "\x1B[1m"
#define ANSI_GREY "\x1B[0;38;5;245m"
#define ANSI_RED "\x1B[0;31m"
#define ANSI_GREEN "\x1B[0;32m"
#define ANSI_YELLOW "\x1B[0;33m"
#define ANSI_BLUE "\x1B[0;34m"
#define ANSI_MAGENTA "\x1B[0;35m"

/* Field accessors that tolerate a missing or null member. */
const char *json_get_string(json_object *o, const char *key);
int64_t json_get_int(json_object *o, const char *key, int64_t def);
bool json_get_bool(json_object *o, const char *key);

/* "2026-11-21T12:07:13.123456Z" → µs since the epoch. */
int parse_timestamp(const char *s, usec_t *ret);
/* "3m ago", "2h ago", "in 5s"; "-" for NULL or an unparsable time. */
char *format_relative(const char *timestamp, char *buf, size_t size);
/* Local time "2026-11-21 13:07:13"; the input itself if it does not parse. */
char *format_local(const char *timestamp, char *buf, size_t size);
/* The first 8 characters of an id. */
char *short_id(const char *id, char buf[static 9]);
/* "$2.50", "$0.0123": cents when they say it all, else four decimals. */
char *format_usd(double usd, char *buf, size_t size);

/* --json output: the object pretty-printed, then a newline. */
int cli_print_json(json_object *o);
/* A "key: value" block of the object's members in the given order (NULL
 * ends the list); timestamps (keys ending in "_at") get a relative time too. */
int cli_print_object(Cli *cli, json_object *o, const char *const *keys);
/* One event per line: "#seq time type summary". */
int cli_print_event(Cli *cli, json_object *event);

/* ---- the commands ---- */

int verb_contract_create(Cli *cli, int argc, char *argv[]);
int verb_contract_list(Cli *cli, int argc, char *argv[]);
int verb_contract_show(Cli *cli, int argc, char *argv[]);
int verb_contract_phase(Cli *cli, int argc, char *argv[]);
int verb_contract_delete(Cli *cli, int argc, char *argv[]);
int verb_contract_events(Cli *cli, int argc, char *argv[]);
void help_contract(void);

int verb_task_create(Cli *cli, int argc, char *argv[]);
int verb_task_list(Cli *cli, int argc, char *argv[]);
int verb_task_show(Cli *cli, int argc, char *argv[]);
int verb_task_events(Cli *cli, int argc, char *argv[]);
int verb_task_delete(Cli *cli, int argc, char *argv[]);
void help_task(void);

int verb_task_pause(Cli *cli, int argc, char *argv[]);
int verb_task_resume(Cli *cli, int argc, char *argv[]);
int verb_task_interrupt(Cli *cli, int argc, char *argv[]);
int verb_task_cancel(Cli *cli, int argc, char *argv[]);
int verb_task_send(Cli *cli, int argc, char *argv[]);
int verb_task_diff(Cli *cli, int argc, char *argv[]);
int verb_task_watch(Cli *cli, int argc, char *argv[]);

int verb_notifications(Cli *cli, int argc, char *argv[]);

int verb_repo_grant(Cli *cli, int argc, char *argv[]);
int verb_repo_list(Cli *cli, int argc, char *argv[]);
int verb_repo_revoke(Cli *cli, int argc, char *argv[]);
void help_repo(void);

int verb_token_create(Cli *cli, int argc, char *argv[]);
int verb_token_delete(Cli *cli, int argc, char *argv[]);
void help_token(void);

int verb_up(Cli *cli, int argc, char *argv[]);

/* cli-up-setup.c: what makima up prepares. */
/* Finds a daemon: $ENV, next to this executable (or in the build tree's
 * src/<subdir>/), else LIBEXECDIR. */
int up_find_daemon(const char *name, const char *env, const char *subdir, char **ret);
/* A NULL-terminated argv of copies of the arguments (ended by NULL). */
int up_make_argv(char ***ret, ...) __attribute__((sentinel));
/* mkdir -p, with `mode` for the last directory only. */
int up_mkdir_parents(const char *path, mode_t mode);
/* Finds dbus-daemon in $PATH; -ENOENT if it is not installed. */
int up_bus_find(char **ret);
/* Writes STATE_DIR/bus.conf for a bus on STATE_DIR/bus (removing a stale
 * socket) and returns the dbus-daemon command line, the bus's address (as
 * for MAKIMA_BUS_ADDRESS) and its socket's path. */
int up_bus_prepare(const char *state_dir, const char *binary, char ***ret_argv, char **ret_address,
                   char **ret_socket);
/* True once the bus accepts connections. */
bool up_bus_ready(const char *socket_path);
/* As root: makes the user agents run as ([Sandbox] User= of the config at
 * config_path, default makima-agent) if it does not exist, with
 * systemd-sysusers, else useradd. Logs; < 0 if it cannot. */
int up_agent_user(const char *config_path);
