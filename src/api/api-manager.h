/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The makima-api manager: the configuration it runs with, the store, the
 * listening sockets (inherited from systemd or opened from --listen) and
 * their HTTP daemons, the event streams being followed, and the bus. */
#pragma once

#include "git-util.h"
#include "sandbox-identity.h"
#include <sys/types.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "api-http.h"
#include "conf.h"
#include "store.h"

typedef struct Manager {
        sd_event *event;
        const Config *config;
        Store *store;

        Listener **listeners;
        size_t n_listeners;

        uid_t uid;                      /* our own uid: a peer with it is admin */
        size_t connection_memory_limit; /* for MHD, derived from MaxHeaderBytes */

        uint64_t n_requests;
        uint64_t n_requests_reported;
        char *status;                   /* "Listening on …; store …" */
        sd_event_source *status_timer;

        /* Event streams (api-events.c): polled on a timer while there are any. */
        struct Follower *followers;
        size_t n_followers;
        sd_event_source *follow_timer;

        sd_bus *bus;                    /* NULL: not on a bus */

        /* How git runs for diffs: sandboxed, as the agents' user where this
         * process can switch to it. git_ok is false when it may not run at
         * all (root, and no such user): diffs are refused then. */
        SandboxIdentity agent, caller;
        GitContext git;
        bool git_ok;
        /* The last write check of /api/v1/health (api-health.c), kept a
         * moment so that a flood of health checks is not a flood of writes. */
        usec_t writable_checked_at;
        int writable;                   /* 0, or the -errno of store_check_writable() */
} Manager;

/* `listen` (may be NULL) overrides [API] Listen= when not socket-activated. */
int manager_new(sd_event *event, const Config *config, char **listen, Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Stops the event stream timer (api-events.c); the streams end with their listeners. */
void follow_done(Manager *m);

/* "Listening on …; store …" plus the request count. */
char *manager_status(Manager *m);
