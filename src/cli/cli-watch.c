/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "makima task watch ID": follows the task's Server-Sent Events stream and
 * prints each event as it comes, until the "end" event names the task's
 * final status. A stream that is cut (makima-api restarts, a proxy times
 * out) is picked up again where it stopped, with Last-Event-ID. */

#include <time.h>

#include "cli.h"
#include "sse.h"

/* The API sends a keepalive every 15 s: three missed ones mean the stream is dead. */
#define WATCH_READ_TIMEOUT (45 * USEC_PER_SEC)
#define WATCH_RETRY_MIN (250 * USEC_PER_MSEC)
#define WATCH_RETRY_MAX (5 * USEC_PER_SEC)
#define WATCH_GIVE_UP (60 * USEC_PER_SEC)

typedef struct Watch {
        Cli *cli;
        const char *id;
        const char *what;
        char *last_id;                  /* of the last event received, for Last-Event-ID */
        int64_t last_seq;               /* of the last event printed */
        char *final_status;             /* from "end" */
        bool ended;
} Watch;

static void help_watch(void) {
        printf("makima task watch [OPTIONS...] ID\n\n"
               "Follow the task's events live, one per line (#SEQ TIME TYPE SUMMARY), until the\n"
               "task ends; then print its final status. Exits 0 if the task is done, 1 if it ended\n"
               "otherwise. A dropped connection is resumed where it stopped.\n\n"
               "Options:\n" CLI_COMMON_HELP
               "\nWith --json, each event is one compact JSON object per line, and the last line is\n"
               "{\"status\":\"…\"}.\n");
}

static usec_t now_monotonic(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (usec_t) ts.tv_sec * USEC_PER_SEC + (usec_t) ts.tv_nsec / 1000;
}

static int on_end(Watch *w, const SseEvent *e) {
        _cleanup_json_ json_object *o = NULL;
        const char *status;

        if (json_parse_strict(e->data, e->data_size, &o, NULL) < 0 || !(status = json_get_string(o, "status")))
                return log_error_errno(EBADMSG, "%s: the API ended the stream with no status: %s", w->what, e->data);
        w->final_status = strdup(status);
        if (!w->final_status)
                return log_oom();
        w->ended = true;
        if (w->cli->json && puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) < 0)
                return log_error_errno(EIO, "Failed to write: %m");
        return 0;
}

static int on_event(const SseEvent *e, void *userdata) {
        _cleanup_json_ json_object *o = NULL;
        Watch *w = userdata;
        int64_t seq;
        int r;

        if (w->ended)
                return 0;               /* nothing counts after the end */
        if (streq(e->type, "end"))
                return on_end(w, e);

        r = json_parse_strict(e->data, e->data_size, &o, NULL);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0 || !json_object_is_type(o, json_type_object))
                return log_error_errno(EBADMSG, "%s: the API sent an event that is not a JSON object: %.200s", w->what,
                                       e->data);
        if (free_and_strdup(&w->last_id, e->id) < 0)
                return log_oom();

        /* After a reconnection nothing is shown twice. */
        seq = json_get_int(o, "seq", 0);
        if (seq > 0 && seq <= w->last_seq)
                return 0;
        w->last_seq = MAX(w->last_seq, seq);

        if (w->cli->json)
                r = puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)) < 0 ?
                        -EIO : 0;
        else
                r = cli_print_event(w->cli, o);
        if (r < 0 || fflush(stdout) != 0)
                return log_error_errno(r < 0 ? r : errno, "Failed to show an event: %m");
        return 0;
}

/* One connection. Returns 1 when the stream ended with "end", 0 when it was
 * cut or could not be opened (*ret_error says why; *ret_connected whether a
 * stream was open at all), < 0 when the API refused or output failed
 * (reported). */
static int watch_once(Watch *w, bool *ret_connected, int *ret_error) {
        _cleanup_(http_stream_freep) HttpStream *s = NULL;
        _cleanup_(sse_parser_freep) SseParser *parser = NULL;
        _cleanup_free_ char *path = NULL, *header = NULL;
        char *headers[2] = {};
        const HttpResponse *head;
        int fd, r;

        *ret_connected = false;
        if (asprintf(&path, "/api/v1/tasks/%s/events?follow=1", w->id) < 0)
                return log_oom();
        if (!isempty(w->last_id)) {
                if (asprintf(&header, "Last-Event-ID: %s", w->last_id) < 0)
                        return log_oom();
                headers[0] = header;
        }

        fd = http_connect(w->cli->endpoint, 10 * USEC_PER_SEC);
        if (fd < 0) {
                *ret_error = fd;
                return 0;
        }
        r = http_stream_open(fd, w->cli->endpoint, "GET", path, w->cli->api_key, "text/event-stream", headers,
                             60 * USEC_PER_SEC, &s);
        if (r == -EINVAL && w->cli->api_key)
                return log_error_errno(r, "MAKIMA_API_KEY contains characters a token cannot have");
        if (r < 0) {
                *ret_error = r;
                return 0;
        }

        head = http_stream_response(s);
        if (head->status != 200) {
                _cleanup_free_ char *body = NULL;
                HttpResponse with_body = *head;

                r = http_stream_read_all(s, 60 * USEC_PER_SEC, &body, &with_body.body_size);
                if (r < 0)
                        return log_error_errno(r, "%s: reading the API's answer failed: %m", w->what);
                with_body.body = body;
                return cli_report_response(w->cli, &with_body, w->what);
        }
        *ret_connected = true;

        r = sse_parser_new(&parser);
        if (r < 0)
                return log_oom();
        for (;;) {
                const char *data;
                size_t n;

                r = http_stream_read(s, WATCH_READ_TIMEOUT, &data, &n);
                if (r <= 0) {
                        /* Ended or cut without "end": the stream is to be picked up again. */
                        *ret_error = r < 0 ? r : -ECONNRESET;
                        return 0;
                }
                r = sse_parser_feed(parser, data, n, on_event, w);
                if (r == -E2BIG) {
                        *ret_error = r;
                        return 0;
                }
                if (r < 0)
                        return r;
                if (w->ended)
                        return 1;
        }
}

int verb_task_watch(Cli *cli, int argc, char *argv[]) {
        _cleanup_free_ char *id = NULL, *what = NULL;
        Watch w = { .cli = cli };
        usec_t failing_since, delay = WATCH_RETRY_MIN;
        bool ever_connected = false;
        char sid[9];
        int r;

        r = cli_parse_id_command(cli, "task watch", "tasks", "task", argc, argv, help_watch, &id);
        if (r <= 0)
                return r;
        r = cli_endpoint(cli);
        if (r < 0)
                return r;
        if (asprintf(&what, "task %s", id) < 0)
                return log_oom();
        w.id = id;
        w.what = what;

        failing_since = now_monotonic();
        for (;;) {
                bool connected = false;
                int error = 0;

                r = watch_once(&w, &connected, &error);
                if (r != 0)
                        break;
                if (!ever_connected && !connected) {
                        /* The API is not there at all: say so at once, as every command does. */
                        r = log_error_errno(error, "cannot follow %s on %s: %m (is makima-api running? set MAKIMA_API_URL)",
                                            what, cli->url);
                        break;
                }
                if (connected) {
                        ever_connected = true;
                        failing_since = now_monotonic();
                        delay = WATCH_RETRY_MIN;
                        log_warning("The event stream of %s was cut (%s); reconnecting.", what, strerror(-error));
                } else if (now_monotonic() - failing_since > WATCH_GIVE_UP) {
                        r = log_error_errno(error, "%s: gave up reconnecting after %llu s: %m", what,
                                            (unsigned long long) (WATCH_GIVE_UP / USEC_PER_SEC));
                        break;
                }
                (void) usleep(delay);
                delay = MIN(delay * 2, WATCH_RETRY_MAX);
        }

        if (r > 0) {
                if (!cli->json)
                        printf("Task %s ended: %s%s%s.\n", short_id(id, sid),
                               cli_status_color(cli, w.final_status), w.final_status,
                               cli_ansi(cli, ANSI_NORMAL));
                /* Done is success; every other end (failed, cancelled, …) is not, without more words. */
                r = streq(w.final_status, "done") ? 0 : -ECANCELED;
        }
        free(w.last_id);
        free(w.final_status);
        return r;
}
