/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "makima token …": mint and revoke the bearer tokens that let a user in
 * over TCP. Only an administrator may (root, the API's own user, or the
 * makima group, on the Unix socket). */

#include "cli.h"

void help_token(void) {
        printf("makima token COMMAND ...\n\n"
               "API tokens (administrators only).\n\n"
               "Commands:\n"
               "  create --owner=NAME [--description=TEXT]\n"
               "                           Mint a token for NAME and print it\n"
               "  delete ID                Revoke a token\n\n"
               "Options:\n" CLI_COMMON_HELP);
}

static void help_create(void) {
        printf("makima token create [OPTIONS...] --owner=NAME\n\n"
               "Mint a token that acts as NAME and print it. It is shown only this once.\n\n"
               "Options:\n"
               "     --owner=NAME         Whose objects the token creates and sees\n"
               "     --description=TEXT   What the token is for\n"
               CLI_COMMON_HELP);
}

static void help_delete(void) {
        printf("makima token delete [OPTIONS...] ID\n\n"
               "Revoke a token: requests with it are refused from now on. ID is the token's id\n"
               "(shown by 'makima token create --json'), not the token itself.\n\n"
               "Options:\n" CLI_COMMON_HELP);
}

enum {
        ARG_OWNER = _ARG_COMMON_MAX,
        ARG_DESCRIPTION,
};

typedef struct TokenArgs {
        const char *owner;
        const char *description;
} TokenArgs;

static int handle_option(Cli *cli, int c, const char *arg, void *userdata) {
        TokenArgs *a = userdata;

        switch (c) {
        case ARG_OWNER:
                a->owner = arg;
                return 0;
        case ARG_DESCRIPTION:
                a->description = arg;
                return 0;
        }
        return -EINVAL;
}

int verb_token_create(Cli *cli, int argc, char *argv[]) {
        static const struct option options[] = {
                CLI_COMMON_OPTIONS,
                { "owner",       required_argument, NULL, ARG_OWNER       },
                { "description", required_argument, NULL, ARG_DESCRIPTION },
                {}
        };
        _cleanup_json_ json_object *body = NULL, *reply = NULL;
        TokenArgs a = {};
        const char *token;
        int r;

        r = cli_parse_options(cli, "token create", argc, argv, options, NULL, help_create, handle_option, &a);
        if (r <= 0)
                return r;
        r = cli_want_operands(cli, "token create", argc, argv, 0, "");
        if (r < 0)
                return r;
        if (isempty(a.owner))
                return cli_usage_error(cli, "token create", "--owner=NAME is required");

        body = json_object_new_object();
        if (!body ||
            json_add_string(body, "owner", a.owner) < 0 ||
            (a.description && json_add_string(body, "description", a.description) < 0))
                return log_oom();
        r = cli_call(cli, "POST", body, "token create", &reply, "/tokens");
        if (r < 0)
                return r;

        if (cli->json)
                r = cli_print_json(reply);
        else {
                token = json_get_string(reply, "token");
                if (!token)
                        return log_error_errno(EBADMSG, "the API's answer has no token");
                printf("%s\n", token);
                r = fflush(stdout) == 0 ? 0 : -errno;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to print the token: %m");
        /* On stderr, so `KEY=$(makima token create …)` captures only the token. */
        fprintf(stderr, "Store this token now: it cannot be shown again. Use it with MAKIMA_API_KEY=… (token id %s).\n",
                strna(json_get_string(reply, "id")));
        return 0;
}

int verb_token_delete(Cli *cli, int argc, char *argv[]) {
        static const struct option options[] = {
                CLI_COMMON_OPTIONS,
                {}
        };
        _cleanup_free_ char *what = NULL;
        int r;

        r = cli_parse_options(cli, "token delete", argc, argv, options, NULL, help_delete, NULL, NULL);
        if (r <= 0)
                return r;
        r = cli_want_operands(cli, "token delete", argc, argv, 1, "ID");
        if (r < 0)
                return r;
        if (!id_is_valid(argv[optind]))
                return cli_usage_error(cli, "token delete", "'%s' is not a token id", argv[optind]);
        if (asprintf(&what, "token %s", argv[optind]) < 0)
                return log_oom();
        r = cli_call(cli, "DELETE", NULL, what, NULL, "/tokens/%s", argv[optind]);
        if (r < 0)
                return r;
        if (!cli->json)
                printf("Token %.8s revoked.\n", argv[optind]);
        return 0;
}
