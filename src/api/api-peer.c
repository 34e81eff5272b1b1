/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Peer credentials on Unix sockets (SO_PEERCRED, SO_PEERGROUPS) and the
 * NSS look-ups that decide whether a peer is an administrator. */

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>

#include "api-manager.h"
#include "api-peer.h"
#include "user-util.h"

static bool peer_in_group(int fd, gid_t primary, const char *group) {
        _cleanup_free_ gid_t *groups = NULL;
        socklen_t len = 64 * sizeof(gid_t);
        gid_t gid = (gid_t) -1;

        /* Looked up per connection, not once at start: the group may be made later. */
        if (isempty(group) || group_lookup(group, &gid) < 0)
                return false;
        if (primary == gid)
                return true;

        for (;;) {
                gid_t *g = realloc(groups, len);

                if (!g)
                        return false;
                groups = g;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) >= 0)
                        break;
                if (errno != ERANGE)    /* the kernel has set len to what it needs */
                        return false;
        }
        for (size_t i = 0; i < len / sizeof(gid_t); i++)
                if (groups[i] == gid)
                        return true;
        return false;
}

/* The kernel vouches for the credentials of a Unix socket peer for the whole
 * connection, so they are read once per connection. */
Peer *peer_new(Manager *m, int fd) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        Peer *p;

        p = calloc(1, sizeof(Peer));
        if (!p)
                return NULL;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return p;

        p->admin = (cred.uid == 0 || cred.uid == m->uid ||
                    peer_in_group(fd, cred.gid, m->config->api_admin_group)) &&
                user_name(cred.uid, &p->name) >= 0;
        return p;
}

Peer *peer_free(Peer *p) {
        if (!p)
                return NULL;
        free(p->name);
        return mfree(p);
}
