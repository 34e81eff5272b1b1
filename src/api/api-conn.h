/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One client connection of makima-api's front door. libmicrohttpd never
 * reads the client's socket: it serves the connection over a socket pair,
 * and the front passes it only request heads and bodies http-request.c
 * found well framed, and relays its answers back. Whatever it refuses (and
 * whatever takes too long) the front answers itself, with the JSON error
 * every makima error carries, and closes the connection. */
#pragma once

#include <sys/socket.h>

#include "api-http.h"
#include "api-peer.h"

typedef struct IpCount IpCount;

/* Takes the accepted, non-blocking `fd`, and `ip`, the client address's
 * count (NULL on Unix sockets or with no per-IP limit), which the
 * connection gives back when it ends. */
int conn_new(Listener *l, int fd, const struct sockaddr *addr, socklen_t addr_len, IpCount *ip);
/* Ends the connection at once and frees it: only when libmicrohttpd is done
 * with it (after the daemon stopped, or from listener_run()). */
Conn *conn_free(Conn *c);
/* After each MHD_run(): sends the EOFs that waited for it to run (see
 * conn_shut_mhd()), and frees the connections it closed that the front was
 * done with already. */
void conn_mhd_ran(Listener *l);
void conn_free_dead(Listener *l);

/* From api-http.c's libmicrohttpd callbacks: its connection over the pair
 * starts and ends; a request on it begins and ends. None of them frees the
 * connection: one the front is also done with goes on l->dead. */
void conn_mhd_started(Conn *c, struct MHD_Connection *connection);
void conn_mhd_closed(Conn *c);
void conn_request_begin(Conn *c, Request *r);
void conn_request_end(Conn *c, Request *r);

/* The peer of a Unix socket, read when the first request came; NULL on TCP. */
const Peer *conn_peer(const Conn *c);

/* A whole answer of the front's own: the status line, Connection: close,
 * and {"error":{"code":…,"message":…}}. */
int front_answer(unsigned status, const char *code, const char *message, char **ret, size_t *ret_size);
