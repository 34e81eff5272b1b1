/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The listening side of makima-api's front door: accepting connections up
 * to [API] MaxConnections= (the rest wait in the backlog), counting them per
 * client address against MaxConnectionsPerIP=, and refusing a client over
 * that limit with a JSON 429. */
#pragma once

#include "api-http.h"

typedef struct IpCount IpCount;

/* Starts accepting on l->fd. */
int accept_start(Listener *l);
/* Stops accepting; the connections' address counts are freed with them
 * (call it once they are all gone). */
void accept_stop(Listener *l);

/* A connection of l ended (or never began): gives back its address count
 * (NULL: none) and makes room for the next connection. */
void accept_conn_gone(Listener *l, IpCount *ip);
