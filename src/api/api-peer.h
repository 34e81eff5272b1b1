/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Who is at the other end of a Unix socket: the kernel's peer credentials,
 * and whether they make the peer an administrator. */
#pragma once

#include <stdbool.h>

#include "macro.h"

typedef struct Manager Manager;

typedef struct Peer {
        bool admin;
        char *name;                     /* the user name, for objects an admin creates */
} Peer;

/* Reads the credentials of the Unix socket `fd`'s peer (they hold for the
 * whole connection). A peer whose credentials cannot be read is no admin.
 * Returns NULL only when out of memory. */
Peer *peer_new(Manager *m, int fd);
Peer *peer_free(Peer *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Peer *, peer_free);
