/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "makima repo …": the local repositories an administrator lets an owner
 * name in a task (grant, list, revoke). Owners may list their own grants;
 * only administrators may change them. */

#include <limits.h>

#include "cli.h"

void help_repo(void) {
        printf("makima repo COMMAND ...\n\n"
               "Local repositories granted to owners. An owner's task may name only these (or a\n"
               "directory below one) and https://, http:// and git:// URLs.\n\n"
               "Commands:\n"
               "  grant --owner=NAME PATH  Let NAME's tasks work on the repository at PATH\n"
               "                           (administrators only)\n"
               "  list [--owner=NAME]      List the grants\n"
               "  revoke [--owner=NAME] PATH|ID\n"
               "                           Take a grant back (administrators only)\n\n"
               "Options:\n" CLI_COMMON_HELP);
}

static void help_grant(void) {
        printf("makima repo grant [OPTIONS...] --owner=NAME PATH\n\n"
               "Let the tasks of NAME work on the local repository at PATH, or below it. PATH is\n"
               "made absolute, symbolic links resolved, before it is sent.\n\n"
               "Options:\n"
               "     --owner=NAME         Whom the repository is granted to\n"
               CLI_COMMON_HELP);
}

static void help_list(void) {
        printf("makima repo list [OPTIONS...]\n\n"
               "List the repository grants: an administrator sees all of them, an owner its own.\n\n"
               "Options:\n"
               "     --owner=NAME         Only the grants of NAME\n"
               CLI_COMMON_HELP);
}

static void help_revoke(void) {
        printf("makima repo revoke [OPTIONS...] PATH|ID\n\n"
               "Take back a grant, named by its id (or a unique prefix of it) or by its path.\n"
               "Tasks that run on the repository go on; new ones are refused.\n\n"
               "Options:\n"
               "     --owner=NAME         Whose grant of PATH (needed when PATH is granted to more\n"
               "                          than one owner)\n"
               CLI_COMMON_HELP);
}

enum {
        ARG_OWNER = _ARG_COMMON_MAX,
};

static int handle_option(Cli *cli, int c, const char *arg, void *userdata) {
        const char **owner = userdata;

        switch (c) {
        case ARG_OWNER:
                *owner = arg;
                return 0;
        }
        return -EINVAL;
}

/* Where the repository really is: the worker and the API compare canonical paths. */
static int repo_path_absolute(const char *path, char **ret) {
        char *p;

        p = realpath(path, NULL);
        if (!p)
                return log_error_errno(errno, "%s: %m", path);
        *ret = p;
        return 0;
}

int verb_repo_grant(Cli *cli, int argc, char *argv[]) {
        static const struct option options[] = {
                CLI_COMMON_OPTIONS,
                { "owner", required_argument, NULL, ARG_OWNER },
                {}
        };
        _cleanup_json_ json_object *body = NULL, *reply = NULL;
        _cleanup_free_ char *path = NULL;
        const char *owner = NULL;
        int r;

        r = cli_parse_options(cli, "repo grant", argc, argv, options, NULL, help_grant, handle_option, &owner);
        if (r <= 0)
                return r;
        r = cli_want_operands(cli, "repo grant", argc, argv, 1, "PATH");
        if (r < 0)
                return r;
        if (isempty(owner))
                return cli_usage_error(cli, "repo grant", "--owner=NAME is required");
        if (isempty(argv[optind]))
                return cli_usage_error(cli, "repo grant", "the path must not be empty");
        r = repo_path_absolute(argv[optind], &path);
        if (r < 0)
                return r;

        body = json_object_new_object();
        if (!body || json_add_string(body, "path", path) < 0 || json_add_string(body, "owner", owner) < 0)
                return log_oom();
        r = cli_call(cli, "POST", body, "repo grant", &reply, "/repos");
        if (r < 0)
                return r;
        if (cli->json)
                return cli_print_json(reply);
        printf("%s granted to %s.\n", strna(json_get_string(reply, "path")), strna(json_get_string(reply, "owner")));
        return 0;
}

static int list_grants(Cli *cli, const char *owner, const char *what, json_object **ret) {
        _cleanup_free_ char *query = NULL, *escaped = NULL;

        if (owner) {
                escaped = cli_url_escape(owner);
                if (!escaped || asprintf(&query, "owner=%s", escaped) < 0)
                        return log_oom();
        }
        return cli_list_all(cli, "repos", query, what, ret);
}

int verb_repo_list(Cli *cli, int argc, char *argv[]) {
        static const struct option options[] = {
                CLI_COMMON_OPTIONS,
                { "owner", required_argument, NULL, ARG_OWNER },
                {}
        };
        _cleanup_json_ json_object *list = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        const char *owner = NULL;
        json_object *a;
        int r;

        r = cli_parse_options(cli, "repo list", argc, argv, options, NULL, help_list, handle_option, &owner);
        if (r <= 0)
                return r;
        r = cli_want_operands(cli, "repo list", argc, argv, 0, "");
        if (r < 0)
                return r;
        if (owner && isempty(owner))
                return cli_usage_error(cli, "repo list", "--owner must not be empty");

        r = list_grants(cli, owner, "repo list", &list);
        if (r < 0)
                return r;
        if (cli->json)
                return cli_print_json(list);

        t = table_new(cli, "ID", "OWNER", "PATH", "GRANTED", NULL);
        if (!t)
                return log_oom();
        (void) json_object_object_get_ex(list, "repos", &a);
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                json_object *g = json_object_array_get_idx(a, i);
                char id[9], when[64];

                r = table_add_row(t, -1, NULL, short_id(json_get_string(g, "id"), id), json_get_string(g, "owner"),
                                  json_get_string(g, "path"),
                                  format_relative(json_get_string(g, "created_at"), when, sizeof(when)));
                if (r < 0)
                        return log_oom();
        }
        return table_print(t, "No repository grants.");
}

/* The grant of `path` (as given, and as it resolves if it exists) to
 * `owner` (any owner when NULL, which must then be one). */
static int find_grant_by_path(Cli *cli, const char *path, const char *owner, char **ret_id) {
        _cleanup_json_ json_object *list = NULL;
        _cleanup_free_ char *resolved = NULL, *what = NULL;
        const char *found = NULL;
        size_t n_found = 0;
        json_object *a;
        int r;

        resolved = realpath(path, NULL);
        if (asprintf(&what, "repo revoke %s", path) < 0)
                return log_oom();
        r = list_grants(cli, owner, what, &list);
        if (r < 0)
                return r;
        (void) json_object_object_get_ex(list, "repos", &a);
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                json_object *g = json_object_array_get_idx(a, i);
                const char *p = json_get_string(g, "path");

                if (p && (streq(p, path) || streq_ptr(p, resolved))) {
                        found = json_get_string(g, "id");
                        n_found++;
                }
        }
        if (n_found == 0)
                return log_error_errno(ENOENT, "%s: not granted%s%s", path, owner ? " to " : "", strempty(owner));
        if (n_found > 1)
                return cli_usage_error(cli, "repo revoke", "%s is granted to %zu owners: say whose with --owner=NAME",
                                       path, n_found);
        if (!found)
                return log_error_errno(EBADMSG, "the API's grant of %s has no id", path);
        *ret_id = strdup(found);
        return *ret_id ? 0 : log_oom();
}

int verb_repo_revoke(Cli *cli, int argc, char *argv[]) {
        static const struct option options[] = {
                CLI_COMMON_OPTIONS,
                { "owner", required_argument, NULL, ARG_OWNER },
                {}
        };
        _cleanup_free_ char *id = NULL, *what = NULL;
        const char *owner = NULL, *arg;
        int r;

        r = cli_parse_options(cli, "repo revoke", argc, argv, options, NULL, help_revoke, handle_option, &owner);
        if (r <= 0)
                return r;
        r = cli_want_operands(cli, "repo revoke", argc, argv, 1, "PATH|ID");
        if (r < 0)
                return r;
        arg = argv[optind];
        if (isempty(arg))
                return cli_usage_error(cli, "repo revoke", "expected a path or a grant id");

        /* A path has a slash (or is "." or ".."); an id never does. */
        if (strchr(arg, '/') || streq(arg, ".") || streq(arg, ".."))
                r = find_grant_by_path(cli, arg, owner, &id);
        else if (owner)
                return cli_usage_error(cli, "repo revoke", "--owner goes with a path, not with a grant id");
        else
                r = cli_resolve_id(cli, "repos", "grant", arg, &id);
        if (r < 0)
                return r;

        if (asprintf(&what, "grant %s", id) < 0)
                return log_oom();
        r = cli_call(cli, "DELETE", NULL, what, NULL, "/repos/%s", id);
        if (r < 0)
                return r;
        if (!cli->json)
                printf("Grant %.8s revoked.\n", id);
        return 0;
}
