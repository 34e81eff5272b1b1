/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "makima notifications": what makima has to tell the user that belongs to
 * no single task's log (an agent that is not logged in, …), newest first. */

#include "cli.h"

enum {
        ARG_UNREAD = _ARG_COMMON_MAX,
};

static void help(void) {
        printf("makima notifications [OPTIONS...]\n\n"
               "List your notifications, newest first (administrators: everybody's).\n\n"
               "Options:\n"
               "     --unread             Only those not marked read\n"
               CLI_COMMON_HELP);
}

static int handle_option(Cli *cli, int c, const char *arg, void *userdata) {
        bool *unread = userdata;

        if (c != ARG_UNREAD)
                return -EINVAL;
        *unread = true;
        return 0;
}

static const char *level_color(Cli *cli, const char *level) {
        if (streq_ptr(level, "error"))
                return cli_ansi(cli, ANSI_RED);
        if (streq_ptr(level, "warning"))
                return cli_ansi(cli, ANSI_YELLOW);
        return "";
}

int verb_notifications(Cli *cli, int argc, char *argv[]) {
        static const struct option options[] = {
                CLI_COMMON_OPTIONS,
                { "unread", no_argument, NULL, ARG_UNREAD },
                {}
        };
        _cleanup_json_ json_object *list = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        json_object *items;
        bool unread = false;
        int r;

        r = cli_parse_options(cli, "notifications", argc, argv, options, NULL, help, handle_option, &unread);
        if (r <= 0)
                return r;
        r = cli_want_operands(cli, "notifications", argc, argv, 0, "");
        if (r < 0)
                return r;

        /* The API keeps no pages here: the newest 1000 are plenty to read in a terminal. */
        r = cli_call(cli, "GET", NULL, "notifications", &list, "/notifications?limit=1000%s", unread ? "&unread=1" : "");
        if (r < 0)
                return r;
        if (!list || !json_object_object_get_ex(list, "notifications", &items) ||
            !json_object_is_type(items, json_type_array))
                return log_error_errno(EBADMSG, "the API's list of notifications has no \"notifications\" array");
        if (cli->json)
                return cli_print_json(list);

        t = table_new(cli, "ID", "LEVEL", "CREATED", "READ", "TASK", "MESSAGE", NULL);
        if (!t)
                return log_oom();
        for (size_t i = 0; i < json_object_array_length(items); i++) {
                json_object *n = json_object_array_get_idx(items, i);
                const char *task = json_get_string(n, "task_id"), *read_at = json_get_string(n, "read_at");
                char id[9], tid[9], created[64], read[64];

                r = table_add_row(t, 1, level_color(cli, json_get_string(n, "level")),
                                  short_id(json_get_string(n, "id"), id), json_get_string(n, "level"),
                                  format_relative(json_get_string(n, "created_at"), created, sizeof(created)),
                                  read_at ? format_relative(read_at, read, sizeof(read)) : "no",
                                  task ? short_id(task, tid) : NULL,
                                  json_get_string(n, "message"));
                if (r < 0)
                        return log_oom();
        }
        return table_print(t, unread ? "No unread notifications." : "No notifications.");
}
