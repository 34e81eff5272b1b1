/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The life of a front door connection (api-conn.h): its start, its hand-over
 * to libmicrohttpd with the first request, the checks of each request's
 * framing before libmicrohttpd gets a byte of it, the head and idle
 * deadlines, our own answers to what we refuse, and a lingering close so
 * that the client reads them. Moving the bytes is api-conn-io.c's. */

#include "api-accept.h"
#include "api-conn-internal.h"
#include "json-util.h"
#include "log.h"

/* ---- answers of our own ---- */

int front_answer(unsigned status, const char *code, const char *message, char **ret, size_t *ret_size) {
        _cleanup_json_ json_object *o = NULL;
        json_object *e;
        const char *body;
        size_t len;
        char *s;
        int n;

        o = json_object_new_object();
        e = json_object_new_object();
        if (!o || !e || json_object_object_add(o, "error", e) < 0) {
                json_object_put(e);
                return -ENOMEM;
        }
        if (json_add_string(e, "code", code) < 0 || json_add_string(e, "message", message) < 0)
                return -ENOMEM;
        body = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!body)
                return -ENOMEM;
        n = asprintf(&s,
                     "HTTP/1.1 %u %s\r\n"
                     "Connection: close\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n"
                     "\r\n"
                     "%s\n",
                     status, MHD_get_reason_phrase_for(status), len + 1, body);
        if (n < 0)
                return -ENOMEM;
        *ret = s;
        *ret_size = (size_t) n;
        return 0;
}

/* ---- life and death ---- */

static const HttpLimits *conn_limits(const Conn *c) {
        return &c->listener->limits;
}

static void conn_close_fds(Conn *c) {
        c->io = sd_event_source_disable_unref(c->io);
        c->io_events = 0;
        if (c->fd >= 0)
                (void) close(c->fd);
        c->fd = -EBADF;
        c->client_done = true;
        /* libmicrohttpd reads our EOF and closes its end, then says so (conn_mhd_closed()). */
        c->mhd_io = sd_event_source_disable_unref(c->mhd_io);
        c->mhd_io_events = 0;
        if (c->mhd_fd >= 0)
                (void) close(c->mhd_fd);
        c->mhd_fd = -EBADF;
        c->timer = sd_event_source_disable_unref(c->timer);
}

Conn *conn_free(Conn *c) {
        Listener *l;

        if (!c)
                return NULL;
        l = c->listener;
        if (c->shut_waiting)
                for (Conn **p = &l->shut_waiters; *p; p = &(*p)->shut_next)
                        if (*p == c) {
                                *p = c->shut_next;
                                break;
                        }
        conn_close_fds(c);
        if (c->prev)
                c->prev->next = c->next;
        else
                l->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        l->n_conns--;
        accept_conn_gone(l, c->ip);
        peer_free(c->peer);
        free(c->in);
        free(c->out);
        free(c->answer);
        return mfree(c);
}

void conn_free_dead(Listener *l) {
        while (l->dead) {
                Conn *c = l->dead;

                l->dead = c->dead_next;
                conn_free(c);
        }
}

/* Frees the connection once both the front and libmicrohttpd are done with it. */
static void conn_maybe_free(Conn *c) {
        if (c->client_done && !c->mhd && !c->dead)
                conn_free(c);
}

/* ---- libmicrohttpd's side ---- */

void conn_mhd_started(Conn *c, struct MHD_Connection *connection) {
        c->mhd = connection;
}

void conn_mhd_closed(Conn *c) {
        Listener *l = c->listener;

        c->mhd = NULL;
        /* We are inside MHD_run(), which may still hold on to the connection
         * somewhere up the stack: listener_run() frees it afterwards. */
        if (c->client_done && !c->dead) {
                c->dead = true;
                c->dead_next = l->dead;
                l->dead = c;
        }
}

void conn_request_begin(Conn *c, Request *r) {
        r->conn = c;
        r->seq = c->n_begun++;
}

void conn_request_end(Conn *c, Request *r) {
        if (r->status != 0 && r->seq + 1 > c->n_answered)
                c->n_answered = r->seq + 1;
        r->conn = NULL;
}

const Peer *conn_peer(const Conn *c) {
        return c->peer;
}

/* A request waiting inside makima-api (an event stream waiting for events,
 * a diff waiting for git) keeps the connection from being idle. */
static bool conn_mhd_waiting(const Conn *c) {
        const union MHD_ConnectionInfo *ci;

        if (!c->mhd)
                return false;
        ci = MHD_get_connection_info(c->mhd, MHD_CONNECTION_INFO_CONNECTION_SUSPENDED);
        return ci && ci->suspended;
}

static int on_mhd_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);

/* The first request head passed: libmicrohttpd gets the connection, over a
 * socket pair of which it has one end and we the other. */
static int conn_add_to_mhd(Conn *c) {
        Listener *l = c->listener;
        int pair[2], k;
        bool added;

        if (l->is_unix) {
                /* Read now, not at accept: a client that never sends a request costs no NSS look-up. */
                c->peer = peer_new(l->manager, c->fd);
                if (!c->peer)
                        return -ENOMEM;
        }
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) < 0)
                return -errno;
        k = sd_event_add_io(l->manager->event, &c->mhd_io, pair[1], EPOLLIN, on_mhd_io, c);
        if (k < 0) {
                (void) close(pair[0]);
                (void) close(pair[1]);
                return k;
        }
        c->mhd_io_events = EPOLLIN;

        l->adding = c;
        added = MHD_add_connection(l->daemon, pair[0], (const struct sockaddr *) &c->addr, c->addr_len) == MHD_YES;
        k = -errno;
        l->adding = NULL;
        if (!added) {
                /* MHD closed its end. */
                c->mhd_io = sd_event_source_disable_unref(c->mhd_io);
                c->mhd_io_events = 0;
                (void) close(pair[1]);
                return k < 0 ? k : -EIO;
        }
        c->mhd_fd = pair[1];
        c->mhd_writable = true;
        /* MHD adds the connection to its epoll set only once it has served it a
         * first time: until then nothing but a run of ours makes it look. */
        listener_kick(l);
        return 0;
}

/* ---- the phases ---- */

static void conn_next_head(Conn *c) {
        c->phase = CONN_HEAD;
        c->head_started = 0;
        http_head_init(&c->head);
}

/* No more of the client's input goes to libmicrohttpd. */
void conn_finish(Conn *c) {
        c->in_size = c->in_checked;
        c->phase = CONN_FINISHING;
}

/* Refuses the request being read: libmicrohttpd ends what it has, and then
 * we answer with the JSON error and close. */
static int conn_refuse(Conn *c, unsigned status, const char *code, const char *message) {
        Listener *l = c->listener;
        int k;

        log_debug("%s: refused a request with %u %s: %s", l->description, status, code, message);
        c->answer = mfree(c->answer);
        k = front_answer(status, code, message, &c->answer, &c->answer_size);
        if (k < 0)
                log_warning_errno(k, "Failed to build an answer: %m");
        c->answer_seq = c->phase == CONN_BODY ? c->n_heads - 1 : c->n_heads;
        conn_finish(c);
        return 1;
}

static void conn_start_closing(Conn *c) {
        c->phase = CONN_CLOSING;
        c->closing_since = conn_now(c);
        c->in_size = c->in_checked = 0;
}

/* A head passed: it goes to libmicrohttpd, then its body. */
static int conn_pass_head(Conn *c) {
        int k;

        if (c->n_heads == 0) {
                k = conn_add_to_mhd(c);
                if (k < 0) {
                        log_warning_errno(k, "%s: failed to hand a connection to libmicrohttpd: %m",
                                          c->listener->description);
                        return conn_refuse(c, 503, "unavailable", "The server cannot take a request now.");
                }
        }
        c->in_checked += c->head.size;
        c->n_heads++;
        switch (c->head.framing) {
        case HTTP_BODY_CHUNKED:
                c->phase = CONN_BODY;
                c->body_chunked = true;
                http_chunked_init(&c->chunked);
                break;
        case HTTP_BODY_LENGTH:
                c->phase = CONN_BODY;
                c->body_chunked = false;
                c->body_left = c->head.content_length;
                break;
        case HTTP_BODY_NONE:
                conn_next_head(c);
                break;
        }
        return 1;
}

/* Checks what arrived. Returns > 0 if it moved on. */
static int conn_check_input(Conn *c) {
        HttpError e;
        int k, progress = 0;

        while (IN_SET(c->phase, CONN_HEAD, CONN_BODY) && c->in_checked < c->in_size) {
                const char *p = c->in + c->in_checked;
                size_t n = c->in_size - c->in_checked, used = 0;

                if (c->phase == CONN_HEAD) {
                        if (c->head_started == 0)
                                c->head_started = conn_now(c);
                        k = http_head_feed(&c->head, conn_limits(c), p, n, &e);
                        if (k < 0)
                                return conn_refuse(c, e.status, e.code, e.message);
                        if (k == 0)
                                break;
                        progress = conn_pass_head(c);
                } else if (c->body_chunked) {
                        k = http_chunked_feed(&c->chunked, conn_limits(c), p, n, &used, &e);
                        if (k < 0)
                                return conn_refuse(c, e.status, e.code, e.message);
                        c->in_checked += used;
                        if (k > 0)
                                conn_next_head(c);
                        progress = 1;
                } else {
                        uint64_t m = MIN((uint64_t) n, c->body_left);

                        c->in_checked += (size_t) m;
                        c->body_left -= m;
                        if (c->body_left == 0)
                                conn_next_head(c);
                        progress = 1;
                }
        }
        /* The client said all it will: what is unfinished stays unfinished. */
        if (c->client_eof && IN_SET(c->phase, CONN_HEAD, CONN_BODY)) {
                conn_finish(c);
                progress = 1;
        }
        return progress;
}

/* Once libmicrohttpd is done: our answer, if it is the next one the client
 * waits for, and the close. */
static int conn_advance(Conn *c) {
        if (c->phase != CONN_FINISHING)
                return 0;
        if (c->mhd_fd >= 0) {
                if (c->in_checked > 0 || c->mhd_shut || c->shut_waiting)
                        return 0;
                conn_shut_mhd(c);
                return 1;
        }
        if (c->out_start != c->out_end)
                return 0;
        /* libmicrohttpd answered every request before ours and none from it on
         * (an interim 100 Continue may have gone out: a final answer may follow it). */
        if (c->answer && c->n_answered == c->answer_seq) {
                free(c->out);
                c->out = TAKE_PTR(c->answer);
                c->out_start = 0;
                c->out_end = c->answer_size;
        }
        c->answer = mfree(c->answer);
        conn_start_closing(c);
        return 1;
}

static usec_t conn_deadline(const Conn *c) {
        const Config *cfg = c->listener->manager->config;
        usec_t t;

        if (c->phase == CONN_CLOSING)
                return c->closing_since + CONN_LINGER;
        t = c->last_activity + cfg->api_connection_timeout;
        /* The head's clock runs while we wait for the client, not while it
         * waits for libmicrohttpd to take the previous request. */
        if (c->phase == CONN_HEAD && c->head_started > 0 && c->in_checked == 0)
                t = MIN(t, c->head_started + cfg->api_request_head_timeout);
        return t;
}

static void conn_arm_timer(Conn *c) {
        usec_t t = conn_deadline(c);

        /* A later deadline (the client was active) is found when the timer
         * fires, which saves re-arming it on every read. */
        if (!c->timer || t >= c->timer_at)
                return;
        if (sd_event_source_set_time(c->timer, t) < 0 || sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT) < 0)
                return;
        c->timer_at = t;
}

/* One round of work. Returns > 0 if anything moved, 0 if it all waits for
 * the sockets or the clock, < 0 if the client is gone or we are done with it. */
static int conn_step(Conn *c) {
        int k, progress;

        k = conn_read_client(c);
        if (k < 0)
                return k;
        progress = k;
        progress |= conn_check_input(c);
        progress |= conn_write_mhd(c);
        k = conn_read_mhd(c);
        if (k < 0)
                return k;
        progress |= k;
        k = conn_write_client(c);
        if (k < 0)
                return k;
        progress |= k;
        progress |= conn_advance(c);
        return progress;
}

/* Does what can be done now, then waits for what it needs next. */
static void conn_run(Conn *c) {
        unsigned i;

        for (i = 0; i < CONN_RUN_MAX; i++) {
                int k = conn_step(c);

                if (k < 0) {
                        conn_close_fds(c);
                        return;
                }
                if (k == 0)
                        break;
        }
        if (i == CONN_RUN_MAX) {
                /* Work is left, and no new edge will tell: taking the client's
                 * socket out of epoll and back in makes it report it again. */
                conn_set_events(c->io, &c->io_events, 0, 0);
        }
        conn_set_events(c->io, &c->io_events,
                        (conn_reads_client(c) ? EPOLLIN : 0) | (c->out_start != c->out_end ? EPOLLOUT : 0),
                        EPOLLRDHUP | EPOLLET);
        conn_set_events(c->mhd_io, &c->mhd_io_events,
                        (c->out_end - c->out_start < CONN_OUT_SIZE ? EPOLLIN : 0) |
                        (c->in_checked > 0 && !c->mhd_shut ? EPOLLOUT : 0), 0);
        conn_arm_timer(c);
}

/* ---- events ---- */

static int on_client_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Conn *c = userdata;

        if (revents & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                c->client_readable = true;
        if (revents & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                c->client_rdhup = true;
        if (revents & (EPOLLOUT | EPOLLHUP | EPOLLERR))
                c->client_writable = true;
        conn_run(c);
        conn_maybe_free(c);
        return 0;
}

static int on_mhd_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Conn *c = userdata;

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                c->mhd_readable = true;
        if (revents & (EPOLLOUT | EPOLLHUP | EPOLLERR))
                c->mhd_writable = true;
        conn_run(c);
        conn_maybe_free(c);
        return 0;
}

static int on_conn_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Conn *c = userdata;
        const Config *cfg = c->listener->manager->config;
        usec_t now;

        c->timer_at = USEC_INFINITY;
        /* The loop may have been busy past the deadline (a slow store) with
         * bytes waiting on the sockets: they count first. */
        conn_run(c);
        if (c->client_done) {
                conn_maybe_free(c);
                return 0;
        }
        now = conn_now(c);
        if (c->phase == CONN_CLOSING) {
                if (now >= c->closing_since + CONN_LINGER)
                        conn_close_fds(c);
        } else if (c->phase == CONN_HEAD && c->head_started > 0 && c->in_checked == 0 &&
                   now >= c->head_started + cfg->api_request_head_timeout) {
                if (c->in_size > 0)
                        (void) conn_refuse(c, 408, "request_timeout", "The request head did not arrive in time.");
                else
                        conn_close_fds(c);      /* it said nothing: there is nothing to answer */
        } else if (now >= c->last_activity + cfg->api_connection_timeout) {
                if (conn_mhd_waiting(c))
                        c->last_activity = now;
                else
                        conn_close_fds(c);
        }
        if (!c->client_done)
                conn_run(c);
        conn_maybe_free(c);
        return 0;
}

int conn_new(Listener *l, int fd, const struct sockaddr *addr, socklen_t addr_len, IpCount *ip) {
        Manager *m = l->manager;
        Conn *c;
        int k;

        c = calloc(1, sizeof(Conn));
        if (!c) {
                (void) close(fd);
                accept_conn_gone(l, ip);
                return -ENOMEM;
        }
        c->listener = l;
        c->fd = fd;
        c->mhd_fd = -EBADF;
        c->ip = ip;
        c->addr_len = MIN(addr_len, (socklen_t) sizeof(c->addr));
        memcpy(&c->addr, addr, c->addr_len);
        c->timer_at = USEC_INFINITY;
        http_head_init(&c->head);
        /* The first head's clock runs from the connection on. */
        c->head_started = c->last_activity = conn_now(c);

        c->next = l->conns;
        if (c->next)
                c->next->prev = c;
        l->conns = c;
        l->n_conns++;

        k = sd_event_add_io(m->event, &c->io, fd, EPOLLIN | EPOLLRDHUP | EPOLLET, on_client_io, c);
        if (k >= 0)
                k = sd_event_add_time(m->event, &c->timer, CLOCK_MONOTONIC, USEC_INFINITY, 50 * USEC_PER_MSEC,
                                      on_conn_timer, c);
        if (k < 0) {
                conn_free(c);
                return k;
        }
        c->io_events = EPOLLIN;
        /* A first request may be in already: look before any edge says so. */
        c->client_readable = c->client_writable = true;
        conn_arm_timer(c);
        return 0;
}
