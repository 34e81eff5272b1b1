/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Moving a front door connection's bytes (api-conn-internal.h): from the
 * client into the connection's buffer, checked bytes on to libmicrohttpd
 * over the socket pair, its answers back out to the client, and the EOF it
 * gets once there is no more. */

#include "api-conn-internal.h"

bool conn_reads_client(const Conn *c) {
        if (c->client_eof)
                return false;
        if (c->phase == CONN_CLOSING)
                return true;
        /* Until libmicrohttpd took what we checked, the client waits (TCP holds it back). */
        return IN_SET(c->phase, CONN_HEAD, CONN_BODY) && c->in_checked == 0;
}

/* Returns > 0 if it read, 0 if there was nothing to read, < 0 if the client is gone. */
int conn_read_client(Conn *c) {
        size_t want, room;
        ssize_t n;

        if (!c->client_readable || !conn_reads_client(c))
                return 0;

        if (c->phase == CONN_CLOSING) {
                char buf[4096];

                n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0) {
                        if (!IN_SET(errno, EAGAIN, EINTR))
                                return -errno;
                        c->client_readable = false;
                        return 0;
                }
                if (n == 0 || (c->lingered += (size_t) n) > CONN_LINGER_BYTES)
                        return -ECONNRESET;     /* done lingering */
                return 1;
        }

        /* A head never needs more than the listener's cap (one byte over it is refused). */
        want = c->phase == CONN_HEAD ? c->listener->head_cap - MIN(c->in_size, c->listener->head_cap) : CONN_BODY_READ;
        if (want == 0)
                return 0;
        if (c->in_alloc - c->in_size < MIN(want, (size_t) CONN_IN_MIN)) {
                size_t a = MIN(MAX(MAX(c->in_alloc * 2, (size_t) CONN_IN_MIN), c->in_size + MIN(want, (size_t) CONN_IN_MIN)),
                               c->in_size + want);
                char *b = realloc(c->in, a);

                if (!b)
                        return -ENOMEM;
                c->in = b;
                c->in_alloc = a;
        }
        room = MIN(want, c->in_alloc - c->in_size);
        n = recv(c->fd, c->in + c->in_size, room, MSG_DONTWAIT);
        if (n < 0) {
                if (!IN_SET(errno, EAGAIN, EINTR))
                        return -errno;
                c->client_readable = false;
                return 0;
        }
        if (n == 0)
                c->client_eof = true;
        else {
                c->in_size += (size_t) n;
                c->last_activity = conn_now(c);
                /* A short read emptied the socket: the next bytes come with an
                 * edge of their own, unless the FIN was in with these. */
                if ((size_t) n < room && !c->client_rdhup)
                        c->client_readable = false;
        }
        return 1;
}

int conn_write_mhd(Conn *c) {
        ssize_t n;

        if (c->mhd_fd < 0 || c->mhd_shut || c->in_checked == 0 || !c->mhd_writable)
                return 0;
        c->mhd_wrote_at = c->listener->mhd_runs;
        n = send(c->mhd_fd, c->in, c->in_checked, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
                if (IN_SET(errno, EAGAIN, EINTR)) {
                        c->mhd_writable = false;
                        return 0;
                }
                /* libmicrohttpd closed its end (it answered "Connection: close"): it
                 * takes nothing more, but what it wrote before is still to read. */
                c->mhd_shut = true;
                c->in_size = c->in_checked = 0;
                if (IN_SET(c->phase, CONN_HEAD, CONN_BODY))
                        conn_finish(c);
                return 1;
        }
        if ((size_t) n < c->in_checked)
                c->mhd_writable = false;
        memmove(c->in, c->in + n, c->in_size - (size_t) n);
        c->in_size -= (size_t) n;
        c->in_checked -= (size_t) n;
        return 1;
}

static void conn_mhd_eof(Conn *c) {
        c->mhd_io = sd_event_source_disable_unref(c->mhd_io);
        c->mhd_io_events = 0;
        (void) close(c->mhd_fd);
        c->mhd_fd = -EBADF;
        c->mhd_shut = true;
        c->in_size = c->in_checked = 0;
        if (IN_SET(c->phase, CONN_HEAD, CONN_BODY))
                conn_finish(c);
}

int conn_read_mhd(Conn *c) {
        ssize_t n;

        if (c->mhd_fd < 0 || !c->mhd_readable)
                return 0;
        if (!c->out) {
                c->out = malloc(CONN_OUT_SIZE);
                if (!c->out)
                        return -ENOMEM;
        }
        if (c->out_start == c->out_end)
                c->out_start = c->out_end = 0;
        if (c->out_end == CONN_OUT_SIZE)
                return 0;
        n = recv(c->mhd_fd, c->out + c->out_end, CONN_OUT_SIZE - c->out_end, MSG_DONTWAIT);
        if (n < 0 && IN_SET(errno, EAGAIN, EINTR)) {
                c->mhd_readable = false;
                return 0;
        }
        if (n <= 0)
                conn_mhd_eof(c);
        else {
                /* Level-triggered: should more come, its source says so. */
                if ((size_t) n < CONN_OUT_SIZE - c->out_end)
                        c->mhd_readable = false;
                c->out_end += (size_t) n;
        }
        return 1;
}

int conn_write_client(Conn *c) {
        ssize_t n;

        if (c->out_start == c->out_end) {
                if (c->phase != CONN_CLOSING)
                        return 0;
                if (c->client_eof)
                        return -ECONNRESET;     /* nothing left to say, and nobody left to hear it */
                if (c->fin_sent)
                        return 0;
                /* Everything is out: the client sees our FIN after the last byte. */
                (void) shutdown(c->fd, SHUT_WR);
                c->fin_sent = true;
                return 1;
        }
        if (!c->client_writable)
                return 0;
        n = send(c->fd, c->out + c->out_start, c->out_end - c->out_start, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
                if (!IN_SET(errno, EAGAIN, EINTR))
                        return -errno;
                c->client_writable = false;
                return 0;
        }
        if ((size_t) n < c->out_end - c->out_start)
                c->client_writable = false;
        c->out_start += (size_t) n;
        c->last_activity = conn_now(c);
        return 1;
}

/* Sends libmicrohttpd our EOF, once it has run since our last write.
 * It waits for its sockets edge-triggered and takes a short read to mean
 * that nothing is left, so an EOF that arrives together with the last bytes
 * would never be seen; after it has collected that event, the EOF is an
 * event of its own. */
void conn_shut_mhd(Conn *c) {
        Listener *l = c->listener;

        if (l->mhd_runs > c->mhd_wrote_at) {
                (void) shutdown(c->mhd_fd, SHUT_WR);
                c->mhd_shut = true;
                return;
        }
        c->shut_waiting = true;
        c->shut_next = l->shut_waiters;
        l->shut_waiters = c;
}

void conn_mhd_ran(Listener *l) {
        l->mhd_runs++;
        while (l->shut_waiters) {
                Conn *c = l->shut_waiters;

                l->shut_waiters = c->shut_next;
                c->shut_waiting = false;
                if (c->mhd_fd >= 0 && !c->mhd_shut) {
                        (void) shutdown(c->mhd_fd, SHUT_WR);
                        c->mhd_shut = true;
                }
        }
}

/* The client's socket is edge-triggered: with a thousand slow clients ready
 * at once, level-triggered sources would be reported again by every
 * epoll_wait() of sd-event, which dispatches one source per turn. The
 * readable and writable flags keep what an edge said until a read or write
 * says EAGAIN (or comes up short), so no edge is lost and no call is made in
 * vain. The pair's end is level-triggered: it is ready only while an answer
 * is on its way. */
void conn_set_events(sd_event_source *s, uint32_t *current, uint32_t want, uint32_t flags) {
        if (!s || want == *current)
                return;
        if (want == 0)
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        else {
                (void) sd_event_source_set_io_events(s, want | flags);
                if (*current == 0)
                        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        }
        *current = want;
}
