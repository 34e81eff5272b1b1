/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What api-conn.c (a connection's life: phases, deadlines, answers) and
 * api-conn-io.c (moving its bytes) share: the connection itself. */
#pragma once

#include <sys/socket.h>

#include "api-conn.h"
#include "api-manager.h"

#define CONN_IN_MIN 1024U               /* the input buffer's first size: a slow client costs little */
#define CONN_BODY_READ (16U * 1024U)    /* bytes of a body read at once */
#define CONN_OUT_SIZE (16U * 1024U)     /* bytes of libmicrohttpd's output relayed at once */
#define CONN_RUN_MAX 64U                /* rounds of work per wake-up, so that one busy client cannot starve the rest */
/* After our last byte we read and drop what the client still sends, so that
 * closing with unread data does not reset the connection (and lose our
 * answer on its way), but not for long. */
#define CONN_LINGER (2 * USEC_PER_SEC)
#define CONN_LINGER_BYTES (256U * 1024U)

typedef enum ConnPhase {
        CONN_HEAD,                      /* reading a request head, of which libmicrohttpd has nothing yet */
        CONN_BODY,                      /* passing a body on as it arrives */
        CONN_FINISHING,                 /* no more input for libmicrohttpd: it ends what it has, then we answer, or not */
        CONN_CLOSING,                   /* all is said: drop what the client still sends, then close */
} ConnPhase;

struct Conn {
        Listener *listener;
        Conn *prev, *next;
        Conn *dead_next;
        bool dead;                      /* on l->dead */
        IpCount *ip;
        struct sockaddr_storage addr;
        socklen_t addr_len;

        int fd;                         /* the client's socket */
        sd_event_source *io;            /* edge-triggered */
        uint32_t io_events;             /* what io waits for; 0: off */
        bool client_readable;           /* as far as we know: no read said EAGAIN since its last event */
        bool client_rdhup;              /* its FIN is in: read on after short reads, to see the EOF */
        bool client_writable;
        bool client_eof;
        bool fin_sent;
        bool client_done;               /* fd is closed */

        int mhd_fd;                     /* our end of the pair: -EBADF before the first request and after its EOF */
        sd_event_source *mhd_io;        /* level-triggered */
        uint32_t mhd_io_events;
        bool mhd_readable;
        bool mhd_writable;
        bool mhd_shut;                  /* libmicrohttpd gets no more input (we sent our EOF, or it closed) */
        uint64_t mhd_wrote_at;          /* l->mhd_runs when we last wrote to it */
        bool shut_waiting;              /* on l->shut_waiters */
        Conn *shut_next;
        struct MHD_Connection *mhd;     /* libmicrohttpd's connection over the pair, while it lives */
        Peer *peer;

        sd_event_source *timer;
        usec_t timer_at;                /* what it is armed for; USEC_INFINITY: off */

        ConnPhase phase;
        HttpHead head;
        usec_t head_started;            /* of the head being read; 0: none begun */
        bool body_chunked;
        uint64_t body_left;             /* of a Content-Length body */
        HttpChunked chunked;

        /* From the client: [0, in_checked) checked and on their way to
         * libmicrohttpd, then bytes not checked yet. */
        char *in;
        size_t in_size, in_alloc, in_checked;
        /* To the client: libmicrohttpd's bytes, or at the very end ours. */
        char *out;
        size_t out_start, out_end;

        uint64_t n_heads;               /* request heads given to libmicrohttpd */
        uint64_t n_begun;               /* requests libmicrohttpd began */
        uint64_t n_answered;            /* it answered every request below this number */

        /* Our answer to request number answer_seq (counting from 0), sent if
         * libmicrohttpd answered every one before it and none from it on. */
        char *answer;
        size_t answer_size;
        uint64_t answer_seq;

        usec_t last_activity;
        usec_t closing_since;
        size_t lingered;
};

static inline usec_t conn_now(const Conn *c) {
        usec_t t = 0;

        (void) sd_event_now(c->listener->manager->event, CLOCK_MONOTONIC, &t);
        return t;
}

/* api-conn.c: no more of the client's input goes to libmicrohttpd. */
void conn_finish(Conn *c);

/* api-conn-io.c. Each returns > 0 if it moved something, 0 if it waits for
 * its socket (or has nothing to do), < 0 if the client is gone. */
bool conn_reads_client(const Conn *c);
int conn_read_client(Conn *c);
int conn_write_mhd(Conn *c);
int conn_read_mhd(Conn *c);
int conn_write_client(Conn *c);
/* Sends libmicrohttpd our EOF, now or after its next run. */
void conn_shut_mhd(Conn *c);
/* Waits for `want` (EPOLLIN, EPOLLOUT) on s, with `flags` (EPOLLET…); 0: not at all. */
void conn_set_events(sd_event_source *s, uint32_t *current, uint32_t want, uint32_t flags);
