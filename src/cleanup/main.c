/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* makima-cleanup: one cleanup pass (see cleanup.c), run by makima-cleanup.timer
 * or by hand. The skeleton is the shared one; the pass runs once the loop
 * starts and then ends it. */

#include "cleanup.h"
#include "log.h"
#include "service.h"

typedef struct Cleanup {
        const Config *config;
        Store *store;
        SandboxIdentity agent;
        CleanupStats stats;
} Cleanup;

static int on_start(sd_event_source *s, void *userdata) {
        Cleanup *c = userdata;
        int r;

        r = cleanup_run(c->config, c->store, &c->agent, &c->stats);
        log_info("Removed %u worktrees and %u agent homes; %u failures.", c->stats.worktrees_removed,
                 c->stats.homes_removed, c->stats.failures);
        return sd_event_exit(sd_event_source_get_event(s), r < 0 || c->stats.failures > 0 ? EXIT_FAILURE : 0);
}

static int init(sd_event *event, Config *config, void **ret) {
        _cleanup_free_ Cleanup *c = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        c = calloc(1, sizeof(Cleanup));
        if (!c)
                return log_oom();
        c->config = config;
        r = sandbox_identity_init(config, &c->agent);
        if (r < 0)
                return r;
        r = store_open_full(config->store_backend,
                            config->store_backend == STORE_BACKEND_POSTGRESQL ? config->store_url : config->store_path,
                            &c->store, &error);
        if (r < 0) {
                sandbox_identity_done(&c->agent);
                return log_error_errno(r, "Failed to open the store: %s", error ?: strerror(-r));
        }
        r = sd_event_add_defer(event, NULL, on_start, c);
        if (r < 0) {
                store_free(c->store);
                sandbox_identity_done(&c->agent);
                return log_error_errno(r, "Failed to schedule the cleanup: %m");
        }
        *ret = TAKE_PTR(c);
        return 0;
}

static void done(void *userdata) {
        Cleanup *c = userdata;

        if (!c)
                return;
        store_free(c->store);
        sandbox_identity_done(&c->agent);
        free(c);
}

static const ServiceDescription cleanup_service = {
        .name = "makima-cleanup",
        .summary = "Remove the worktrees, branches and agent homes no makima task needs any more.",
        .init = init,
        .done = done,
};

int main(int argc, char *argv[]) {
        return service_main(&cleanup_service, argc, argv);
}
