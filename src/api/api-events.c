/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Live event streams: GET /api/v1/tasks/{id}/events?follow=1 as Server-Sent
 * Events. The stored events come first, a page at a time as libmicrohttpd
 * asks for more; then the connection is suspended, and a timer polls the
 * store for the followed tasks (SQLite has no cross-process notification)
 * and resumes the streams that have something to send: new events, the
 * "end" event once the task is final, or a keepalive comment. */

#include <time.h>

#include "api-http.h"
#include "api-manager.h"
#include "json-util.h"
#include "log.h"

#define FOLLOW_POLL_INTERVAL (150 * USEC_PER_MSEC)
#define FOLLOW_KEEPALIVE (15 * USEC_PER_SEC)
#define FOLLOW_PAGE 100U
#define FOLLOW_BLOCK_SIZE (16U * 1024U)

typedef struct Follower {
        Manager *manager;
        Suspension suspension;
        char task_id[ID_STRING_MAX];
        int64_t seq;                    /* the last event queued */
        char *buf;                      /* formatted, not yet handed to MHD */
        size_t size, sent, allocated;
        bool more;                      /* the last page was full: read on without waiting */
        bool ended;                     /* "end" is queued, or the task is gone: close once sent */
        bool failing;                   /* the store failed; said once in the log */
        usec_t last_write;              /* CLOCK_MONOTONIC, for the keepalive */
        struct Follower *prev, *next;
} Follower;

static usec_t now_monotonic(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (usec_t) ts.tv_sec * USEC_PER_SEC + (usec_t) ts.tv_nsec / 1000;
}

static int follower_append(Follower *f, const char *s, size_t n) {
        if (f->size + n > f->allocated) {
                size_t a = MAX(f->allocated * 2, f->size + n);
                char *b = realloc(f->buf, a);

                if (!b)
                        return -ENOMEM;
                f->buf = b;
                f->allocated = a;
        }
        memcpy(f->buf + f->size, s, n);
        f->size += n;
        return 0;
}

static int follower_appendf(Follower *f, const char *format, ...) _printf_(2, 3);
static int follower_appendf(Follower *f, const char *format, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;
        int n;

        va_start(ap, format);
        n = vasprintf(&s, format, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        return follower_append(f, s, (size_t) n);
}

/* id: SEQ, event: TYPE, data: the event as served by GET …/events, on one line. */
static int follower_append_event(Follower *f, const Event *e) {
        _cleanup_json_ json_object *o = NULL;
        _cleanup_free_ char *type = NULL;
        const char *data;
        int k;

        k = event_to_json(e, &o);
        if (k < 0)
                return k;
        /* Plain JSON has no raw line breaks; the type is ours to keep that way too. */
        data = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        type = strdup(isempty(e->type) ? "message" : e->type);
        if (!data || !type)
                return -ENOMEM;
        for (char *p = type; *p; p++)
                if ((unsigned char) *p < ' ' || *p == 0x7f)
                        *p = '_';
        return follower_appendf(f, "id: %" PRIi64 "\nevent: %s\ndata: %s\n\n", e->seq, type, data);
}

/* Queues the next page of events after f->seq, and "end" once the task is
 * final and every event is queued. Returns > 0 if something was queued. */
static int follower_fill(Follower *f) {
        _cleanup_(task_freep) Task *t = NULL;
        Store *store = f->manager->store;
        Event *events = NULL;
        size_t n = 0, before = f->size;
        bool final;
        int k;

        /* The status first: whatever was stored before the task ended is read below. */
        k = store_task_get(store, f->task_id, &t);
        if (k == -ENOENT) {
                f->ended = true;        /* deleted: nothing will come any more */
                return 1;
        }
        if (k < 0)
                return k;
        final = task_state_is_final(t->status);

        k = store_event_list(store, EVENT_LOG_TASK, f->task_id, f->seq, FOLLOW_PAGE, &events, &n);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n && k >= 0; i++) {
                k = follower_append_event(f, events + i);
                if (k >= 0)
                        f->seq = events[i].seq;
        }
        event_array_free(events, n);
        if (k < 0)
                return k;

        f->more = n == FOLLOW_PAGE;
        if (final && !f->more) {
                k = follower_appendf(f, "event: end\ndata: {\"status\":\"%s\"}\n\n", task_state_to_string(t->status));
                if (k < 0)
                        return k;
                f->ended = true;
        }
        f->failing = false;
        return f->size > before;
}

static void follower_log_failure(Follower *f, int error) {
        if (f->failing)
                return;
        f->failing = true;
        log_warning_errno(error, "Failed to read the events of task %s for a stream, retrying: %m: %s", f->task_id,
                          strna(store_last_error(f->manager->store)));
}

static int on_follow_timer(sd_event_source *s, uint64_t usec, void *userdata);

/* The timer runs only while a stream is suspended. */
static void follow_timer_arm(Manager *m) {
        int k, enabled = SD_EVENT_OFF;

        if (m->follow_timer) {
                (void) sd_event_source_get_enabled(m->follow_timer, &enabled);
                if (enabled != SD_EVENT_OFF)
                        return;
                k = sd_event_source_set_time_relative(m->follow_timer, FOLLOW_POLL_INTERVAL);
                if (k >= 0)
                        k = sd_event_source_set_enabled(m->follow_timer, SD_EVENT_ONESHOT);
        } else
                k = sd_event_add_time_relative(m->event, &m->follow_timer, CLOCK_MONOTONIC, FOLLOW_POLL_INTERVAL,
                                               FOLLOW_POLL_INTERVAL / 4, on_follow_timer, m);
        if (k < 0)
                log_error_errno(k, "Failed to arm the event stream timer; streams stall: %m");
}

static int on_follow_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        usec_t now = now_monotonic();
        bool waiting = false;
        int k;

        for (Follower *f = m->followers; f; f = f->next) {
                if (!f->suspension.suspended)
                        continue;
                k = follower_fill(f);
                if (k < 0)
                        follower_log_failure(f, k);
                if (f->size == 0 && !f->ended && now >= f->last_write + FOLLOW_KEEPALIVE)
                        /* Proves to both ends that the other is still there; a dead client shows up as a failed write. */
                        (void) follower_appendf(f, ": keepalive\n\n");
                if (f->size > 0 || f->ended)
                        suspension_resume(&f->suspension);
                else
                        waiting = true;
        }
        if (waiting)
                follow_timer_arm(m);
        return 0;
}

/* MHD asks for the next bytes of the body. */
static ssize_t follower_read(void *cls, uint64_t pos, char *out, size_t max) {
        Follower *f = cls;
        size_t n;
        int k;

        if (f->suspension.stopping)
                return MHD_CONTENT_READER_END_WITH_ERROR;

        if (f->sent == f->size) {
                f->sent = f->size = 0;
                if (f->ended)
                        return MHD_CONTENT_READER_END_OF_STREAM;
                if (f->more) {
                        k = follower_fill(f);
                        if (k == -ENOMEM)
                                return MHD_CONTENT_READER_END_WITH_ERROR;
                        if (k < 0)
                                follower_log_failure(f, k);
                }
                if (f->size == 0) {
                        if (f->ended)
                                return MHD_CONTENT_READER_END_OF_STREAM;
                        /* Nothing to send: sleep until the timer finds something. Returning 0
                         * without suspending would make MHD ask again at once, forever. */
                        suspension_suspend(&f->suspension);
                        follow_timer_arm(f->manager);
                        return 0;
                }
        }

        n = MIN(max, f->size - f->sent);
        memcpy(out, f->buf + f->sent, n);
        f->sent += n;
        f->last_write = now_monotonic();
        return (ssize_t) n;
}

static void follower_free(void *cls) {
        Follower *f = cls;
        Manager *m = f->manager;

        suspension_unlink(&f->suspension);
        if (f->prev)
                f->prev->next = f->next;
        else
                m->followers = f->next;
        if (f->next)
                f->next->prev = f->prev;
        m->n_followers--;
        free(f->buf);
        free(f);
}

/* Last-Event-ID (sent by a client that reconnects) wins over after=. */
static int follow_start_seq(Request *r, int64_t *ret) {
        const char *s;
        int64_t after;
        int k;

        k = request_query_int64(r, "after", 0, &after);
        if (k < 0)
                return k;
        s = MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, "Last-Event-ID");
        if (s) {
                s += strspn(s, " \t");
                if (isempty(s) || strlen(s) > 18 || s[strspn(s, "0123456789")] != '\0') {
                        (void) request_reply_error(r, 400, "invalid_header", "Last-Event-ID: expected a sequence number.");
                        return -EINVAL;
                }
                after = (int64_t) strtoll(s, NULL, 10);
        }
        *ret = after;
        return 0;
}

int api_task_events_follow(Request *r, const Task *t) {
        Manager *m = r->manager;
        struct MHD_Response *response;
        Follower *f;
        int64_t after;
        int k;

        k = follow_start_seq(r, &after);
        if (k < 0)
                return k;

        f = calloc(1, sizeof(Follower));
        if (!f)
                return -ENOMEM;
        f->manager = m;
        strncpy(f->task_id, t->id, sizeof(f->task_id) - 1);
        f->seq = after;
        f->more = true;                 /* the stored events first, as MHD asks for them */
        f->last_write = now_monotonic();
        f->next = m->followers;
        if (f->next)
                f->next->prev = f;
        m->followers = f;
        m->n_followers++;
        suspension_link(&f->suspension, r->listener, r->connection);

        /* From here on f belongs to the response: MHD frees it with follower_free(). */
        response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, FOLLOW_BLOCK_SIZE, follower_read, f, follower_free);
        if (!response) {
                follower_free(f);
                return -ENOMEM;
        }
        if (MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream") != MHD_YES ||
            MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") != MHD_YES ||
            /* Proxies that buffer (nginx) would hold the stream back. */
            MHD_add_response_header(response, "X-Accel-Buffering", "no") != MHD_YES) {
                MHD_destroy_response(response);
                return -ENOMEM;
        }
        log_debug("Following the events of task %s after %" PRIi64 " (%zu streams).", t->id, after, m->n_followers);
        return request_reply_response(r, 200, response);
}

void follow_done(Manager *m) {
        m->follow_timer = sd_event_source_disable_unref(m->follow_timer);
}
