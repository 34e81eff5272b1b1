/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* How the makima client talks to makima-api: option parsing shared by every
 * command, one call per connection with errors reported in one line, paging
 * through lists, and turning short ids into full ones. */

#include <ctype.h>
#include <math.h>
#include <stdarg.h>

#include "cli.h"
#include "model.h"

/* Generous: a list of 1000 tasks on a busy server still fits. */
#define CLI_TIMEOUT (60 * USEC_PER_SEC)
#define CLI_CONNECT_TIMEOUT (10 * USEC_PER_SEC)
#define CLI_PAGE 1000
#define CLI_FOLLOW_INTERVAL (500 * USEC_PER_MSEC)
/* An id prefix shorter than this is more likely a typo than an id. */
#define CLI_ID_PREFIX_MIN 4

int cli_usage_error(Cli *cli, const char *command, const char *format, ...) {
        va_list ap;

        fprintf(stderr, "%s: ", cli->program);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fprintf(stderr, "\nTry '%s%s%s --help'.\n", cli->program, command ? " " : "", strempty(command));
        cli->usage_error = true;
        return -EINVAL;
}

int cli_common_option(Cli *cli, int c, const char *arg) {
        switch (c) {
        case ARG_JSON:
                cli->json = true;
                return 1;
        case ARG_URL:
                if (free_and_strdup(&cli->url, arg) < 0)
                        return log_oom();
                cli->endpoint = http_endpoint_free(cli->endpoint);
                return 1;
        default:
                return 0;
        }
}

int cli_parse_options(Cli *cli, const char *command, int argc, char *argv[], const struct option *options,
                      const char *short_options, void (*help)(void),
                      int (*handle)(Cli *cli, int c, const char *arg, void *userdata), void *userdata) {
        _cleanup_free_ char *shorts = NULL;
        int c, r;

        /* A leading ':' makes getopt tell a missing value from an unknown option, and keeps it quiet. */
        if (asprintf(&shorts, ":h%s", strempty(short_options)) < 0)
                return log_oom();
        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, shorts, options, NULL)) >= 0) {
                if (c == 'h') {
                        help();
                        return 0;
                }
                if (c == '?') {
                        if (optopt)
                                return cli_usage_error(cli, command, "unknown option '-%c'", optopt);
                        return cli_usage_error(cli, command, "unknown option '%s'", argv[optind - 1]);
                }
                if (c == ':') {
                        if (optopt && optopt < 0x100)
                                return cli_usage_error(cli, command, "option '-%c' needs a value", optopt);
                        return cli_usage_error(cli, command, "option '%s' needs a value", argv[optind - 1]);
                }
                r = cli_common_option(cli, c, optarg);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                if (!handle)
                        return cli_usage_error(cli, command, "unexpected option");
                r = handle(cli, c, optarg, userdata);
                if (r < 0)
                        return r;
        }
        return 1;
}

int cli_endpoint(Cli *cli) {
        int r;

        if (cli->endpoint)
                return 0;
        r = http_endpoint_parse(cli->url, &cli->endpoint);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                cli->usage_error = true;
                return log_error_errno(r, "bad API address '%s': expected unix:/path or http://host:port", cli->url);
        }
        return 0;
}

/* Says why a call failed, from the API's {"error":{"code","message"}} when there is one. */
static int report_http_error(Cli *cli, const HttpResponse *resp, json_object *body, const char *what) {
        json_object *error = NULL;
        const char *code = NULL, *message = NULL;

        if (body && json_object_object_get_ex(body, "error", &error)) {
                code = json_get_string(error, "code");
                message = json_get_string(error, "message");
        }

        /* "No such task." under "task 1234…" says the same thing twice. */
        if (streq_ptr(code, "not_found") && what)
                message = "not found";
        if (resp->status == 401 && !cli->api_key)
                log_error("%s%s%s (set MAKIMA_API_KEY to a token from 'makima token create')",
                          strempty(what), what ? ": " : "", message ?: "authentication required");
        else if (message)
                log_error("%s%s%s", strempty(what), what ? ": " : "", message);
        else
                log_error("%s%sHTTP %u %s", strempty(what), what ? ": " : "", resp->status, resp->reason);
        return -EIO;
}

int cli_report_response(Cli *cli, const HttpResponse *resp, const char *what) {
        _cleanup_json_ json_object *reply = NULL;

        if (resp->body_size > 0)
                (void) json_parse_strict(resp->body, resp->body_size, &reply, NULL);
        return report_http_error(cli, resp, reply, what);
}

int cli_connect(Cli *cli) {
        int r, fd;

        r = cli_endpoint(cli);
        if (r < 0)
                return r;
        fd = http_connect(cli->endpoint, CLI_CONNECT_TIMEOUT);
        if (fd < 0)
                return log_error_errno(fd, "cannot connect to %s: %m (is makima-api running? set MAKIMA_API_URL)",
                                       cli->url);
        return fd;
}

/* One request; the response whatever its status, or a report of why there is none. */
static int cli_send(Cli *cli, const char *method, const char *body_text, const char *full, HttpResponse **ret) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        fd = cli_connect(cli);
        if (fd < 0)
                return fd;
        r = http_exchange(fd, cli->endpoint, method, full, cli->api_key, body_text, CLI_TIMEOUT, ret);
        if (r == -EINVAL && cli->api_key)
                return log_error_errno(r, "MAKIMA_API_KEY contains characters a token cannot have");
        if (r < 0)
                return log_error_errno(r, "%s %s on %s failed: %m", method, full, cli->url);
        return 0;
}

int cli_call_raw(Cli *cli, const char *method, const char *what, HttpResponse **ret, const char *path_format, ...) {
        _cleanup_(http_response_freep) HttpResponse *resp = NULL;
        _cleanup_free_ char *path = NULL, *full = NULL;
        va_list ap;
        int r;

        va_start(ap, path_format);
        r = vasprintf(&path, path_format, ap);
        va_end(ap);
        if (r < 0 || asprintf(&full, "/api/v1%s", path) < 0)
                return log_oom();
        r = cli_send(cli, method, NULL, full, &resp);
        if (r < 0)
                return r;
        if (resp->status / 100 != 2)
                return cli_report_response(cli, resp, what);
        *ret = TAKE_PTR(resp);
        return 0;
}

_printf_(7, 0)
static int cli_callv(Cli *cli, const char *method, json_object *body, const char *what, json_object **ret,
                     unsigned *ret_status, const char *path_format, va_list ap) {
        _cleanup_(http_response_freep) HttpResponse *resp = NULL;
        _cleanup_json_ json_object *reply = NULL;
        _cleanup_free_ char *path = NULL, *full = NULL;
        const char *body_text = NULL, *parse_error = NULL;
        int r;

        if (vasprintf(&path, path_format, ap) < 0 || asprintf(&full, "/api/v1%s", path) < 0)
                return log_oom();
        if (body)
                body_text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);

        r = cli_send(cli, method, body_text, full, &resp);
        if (r < 0)
                return r;

        if (resp->body_size > 0) {
                r = json_parse_strict(resp->body, resp->body_size, &reply, &parse_error);
                if (r < 0 && resp->status / 100 == 2)
                        return log_error_errno(r, "%s %s: the API answered with invalid JSON: %s", method, full,
                                               strna(parse_error));
        }
        if (resp->status / 100 != 2)
                return report_http_error(cli, resp, reply, what);

        if (ret)
                *ret = TAKE_PTR(reply);
        if (ret_status)
                *ret_status = resp->status;
        return 0;
}

int cli_call(Cli *cli, const char *method, json_object *body, const char *what, json_object **ret,
             const char *path_format, ...) {
        va_list ap;
        int r;

        va_start(ap, path_format);
        r = cli_callv(cli, method, body, what, ret, NULL, path_format, ap);
        va_end(ap);
        return r;
}

int cli_call_status(Cli *cli, const char *method, json_object *body, const char *what, json_object **ret,
                    unsigned *ret_status, const char *path_format, ...) {
        va_list ap;
        int r;

        va_start(ap, path_format);
        r = cli_callv(cli, method, body, what, ret, ret_status, path_format, ap);
        va_end(ap);
        return r;
}

int cli_list_all(Cli *cli, const char *collection, const char *query, const char *what, json_object **ret) {
        _cleanup_json_ json_object *all = NULL, *items = NULL;

        items = json_object_new_array();
        if (!items)
                return log_oom();

        for (size_t offset = 0;;) {
                _cleanup_json_ json_object *page = NULL;
                json_object *a;
                size_t n;
                int r;

                r = cli_call(cli, "GET", NULL, what, &page, "/%s?limit=%d&offset=%zu%s%s", collection, CLI_PAGE,
                             offset, isempty(query) ? "" : "&", strempty(query));
                if (r < 0)
                        return r;
                if (!page || !json_object_object_get_ex(page, collection, &a) || !json_object_is_type(a, json_type_array))
                        return log_error_errno(EBADMSG, "the API's list of %s has no \"%s\" array", collection,
                                               collection);
                n = json_object_array_length(a);
                for (size_t i = 0; i < n; i++)
                        if (json_object_array_add(items, json_object_get(json_object_array_get_idx(a, i))) < 0)
                                return log_oom();
                if (n < CLI_PAGE)
                        break;
                offset += n;
        }

        all = json_object_new_object();
        if (!all || json_object_object_add(all, collection, TAKE_PTR(items)) < 0)
                return log_oom();
        *ret = TAKE_PTR(all);
        return 0;
}

int cli_resolve_id(Cli *cli, const char *collection, const char *noun, const char *id, char **ret) {
        _cleanup_json_ json_object *list = NULL;
        _cleanup_free_ char *what = NULL;
        const char *found = NULL;
        json_object *a;
        size_t n_found = 0, l = strlen(id);
        char *s;
        int r;

        if (asprintf(&what, "%s %s", noun, id) < 0)
                return log_oom();

        /* Only something that can be the start of a UUID is worth a list call. */
        if (id_is_valid(id) || l < CLI_ID_PREFIX_MIN || l >= ID_STRING_MAX - 1 ||
            strspn(id, "0123456789abcdefABCDEF-") != l) {
                if (isempty(id) || strchr(id, '/') || strchr(id, '?') || strchr(id, '%'))
                        return cli_usage_error(cli, NULL, "'%s' is not a %s id", id, noun);
                s = strdup(id);
                if (!s)
                        return log_oom();
                *ret = s;
                return 0;
        }

        r = cli_list_all(cli, collection, "", what, &list);
        if (r < 0)
                return r;
        (void) json_object_object_get_ex(list, collection, &a);
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                const char *candidate = json_get_string(json_object_array_get_idx(a, i), "id");

                if (candidate && strncasecmp(candidate, id, l) == 0) {
                        found = candidate;
                        n_found++;
                }
        }
        if (n_found == 0)
                return log_error_errno(ENOENT, "%s: not found", what);
        if (n_found > 1)
                return log_error_errno(ENOTUNIQ, "%s: ambiguous, %zu %s ids start with it; give more of the id",
                                       what, n_found, noun);
        s = strdup(found);
        if (!s)
                return log_oom();
        *ret = s;
        return 0;
}

int cli_parse_id_operands(Cli *cli, const char *command, const char *collection, const char *noun, int argc,
                          char *argv[], const struct option options[], const char *short_options, void (*help)(void),
                          CliOptionHandler handler, void *userdata, int n, const char *names, char **ret_id) {
        int r;

        r = cli_parse_options(cli, command, argc, argv, options, short_options, help, handler, userdata);
        if (r <= 0)
                return r;
        r = cli_want_operands(cli, command, argc, argv, n, names);
        if (r < 0)
                return r;
        r = cli_resolve_id(cli, collection, noun, argv[optind], ret_id);
        if (r < 0)
                return r;
        return 1;
}

int cli_parse_id_command(Cli *cli, const char *command, const char *collection, const char *noun, int argc,
                         char *argv[], void (*help)(void), char **ret_id) {
        static const struct option options[] = {
                CLI_COMMON_OPTIONS,
                {}
        };

        return cli_parse_id_operands(cli, command, collection, noun, argc, argv, options, NULL, help, NULL, NULL,
                                     1, "ID", ret_id);
}

int cli_create(Cli *cli, json_object *body, const char *command, const char *path) {
        _cleanup_json_ json_object *reply = NULL;
        int r;

        r = cli_call(cli, "POST", body, command, &reply, "%s", path);
        if (r < 0)
                return r;
        if (cli->json)
                return cli_print_json(reply);
        printf("%s\n", strna(json_get_string(reply, "id")));
        return 0;
}

int cli_get_object(Cli *cli, const char *collection, const char *noun, const char *id, json_object **ret) {
        _cleanup_free_ char *what = NULL;

        if (asprintf(&what, "%s %s", noun, id) < 0)
                return log_oom();
        return cli_call(cli, "GET", NULL, what, ret, "/%s/%s", collection, id);
}

int cli_delete_object(Cli *cli, const char *collection, const char *noun, const char *id) {
        _cleanup_free_ char *what = NULL;
        char sid[9];
        int r;

        if (asprintf(&what, "%s %s", noun, id) < 0)
                return log_oom();
        r = cli_call(cli, "DELETE", NULL, what, NULL, "/%s/%s", collection, id);
        if (r < 0)
                return r;
        if (!cli->json)
                printf("%c%s %s deleted.\n", toupper((unsigned char) noun[0]), noun + 1, short_id(id, sid));
        return 0;
}

char *cli_percent_escape(const char *s, const char *keep, bool lowercase) {
        const char *hex = lowercase ? "0123456789abcdef" : "0123456789ABCDEF";
        char *buf, *p;

        buf = malloc(strlen(s) * 3 + 1);
        if (!buf)
                return NULL;
        p = buf;
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;

                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr(keep, c))
                        *p++ = (char) c;
                else {
                        *p++ = '%';
                        *p++ = hex[c >> 4];
                        *p++ = hex[c & 15];
                }
        }
        *p = '\0';
        return buf;
}

char *cli_url_escape(const char *s) {
        return cli_percent_escape(s, "-._~", false);
}

/* Fetches the events after *after, page by page (by sequence number, which stays stable while
 * events are added). Each goes to `items` if it is not NULL, else to stdout: one line, or with
 * --json one compact object per line. */
static int fetch_events(Cli *cli, const char *collection, const char *id, int64_t *after, const char *what,
                        json_object *items) {
        for (;;) {
                _cleanup_json_ json_object *page = NULL;
                json_object *a;
                size_t n;
                int r;

                r = cli_call(cli, "GET", NULL, what, &page, "/%s/%s/events?after=%" PRIi64 "&limit=%d",
                             collection, id, *after, CLI_PAGE);
                if (r < 0)
                        return r;
                if (!page || !json_object_object_get_ex(page, "events", &a) || !json_object_is_type(a, json_type_array))
                        return log_error_errno(EBADMSG, "the API's list of events has no \"events\" array");
                n = json_object_array_length(a);
                for (size_t i = 0; i < n; i++) {
                        json_object *e = json_object_array_get_idx(a, i);

                        *after = MAX(*after, json_get_int(e, "seq", *after));
                        if (items)
                                r = json_object_array_add(items, json_object_get(e));
                        else if (cli->json)
                                r = puts(json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN |
                                                                        JSON_C_TO_STRING_NOSLASHESCAPE)) < 0 ? -EIO : 0;
                        else
                                r = cli_print_event(cli, e);
                        if (r < 0)
                                return log_error_errno(r, "Failed to show an event: %m");
                }
                if (fflush(stdout) != 0)
                        return log_error_errno(errno, "Failed to write the events: %m");
                if (n < CLI_PAGE)
                        return 0;
        }
}

/* True once the task or contract has a final status: no more events will come. */
static int object_finished(Cli *cli, const char *collection, const char *id, const char *what) {
        _cleanup_json_ json_object *o = NULL;
        const char *status;
        int r;

        r = cli_call(cli, "GET", NULL, what, &o, "/%s/%s", collection, id);
        if (r < 0)
                return r;
        status = json_get_string(o, "status");
        if (!status)
                return log_error_errno(EBADMSG, "the API's %s has no status", what);
        if (streq(collection, "tasks"))
                return task_state_is_final(task_state_from_string(status));
        return contract_status_is_final(contract_status_from_string(status));
}

int cli_show_events(Cli *cli, const char *collection, const char *id, int64_t after, bool follow, const char *what) {
        _cleanup_json_ json_object *all = NULL, *items = NULL;
        int r;

        if (!follow) {
                /* --json without --follow prints the API's own shape, {"events":[…]}, with every page. */
                if (cli->json) {
                        items = json_object_new_array();
                        if (!items)
                                return log_oom();
                }
                r = fetch_events(cli, collection, id, &after, what, items);
                if (r < 0 || !cli->json)
                        return r;
                all = json_object_new_object();
                if (!all || json_object_object_add(all, "events", TAKE_PTR(items)) < 0)
                        return log_oom();
                return cli_print_json(all);
        }

        for (;;) {
                /* Status first, then events: whatever was written before the end is still shown. */
                int finished = object_finished(cli, collection, id, what);
                if (finished < 0)
                        return finished;
                r = fetch_events(cli, collection, id, &after, what, NULL);
                if (r < 0)
                        return r;
                if (finished)
                        return 0;
                (void) usleep(CLI_FOLLOW_INTERVAL);
        }
}

int cli_parse_int64(const char *s, int64_t min, int64_t max, int64_t *ret) {
        char *end = NULL;
        long long v;

        if (isempty(s) || !strchr("0123456789-+", s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (*end != '\0')
                return -EINVAL;
        if (v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int cli_parse_usd(const char *s, double *ret) {
        const char *p;
        char *end = NULL;
        double v;

        if (!s)
                return -EINVAL;
        if (*s == '$')
                s++;
        /* Plain decimals only: strtod() would also take "inf", "nan", "0x1p3" and "1e9". */
        p = s + strspn(s, "0123456789");
        if (*p == '.')
                p += 1 + strspn(p + 1, "0123456789");
        if (p == s || *p != '\0' || streq(s, "."))
                return -EINVAL;
        errno = 0;
        v = strtod(s, &end);
        if (errno == ERANGE || *end != '\0' || !isfinite(v))
                return -ERANGE;
        if (v <= 0)
                return -ERANGE;
        *ret = v;
        return 0;
}

int cli_want_operands(Cli *cli, const char *command, int argc, char *argv[], int n, const char *names) {
        if (argc - optind < n)
                return cli_usage_error(cli, command, "missing %s", names);
        if (argc - optind > n)
                return cli_usage_error(cli, command, "unexpected argument '%s'", argv[optind + n]);
        return 0;
}
