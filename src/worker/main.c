/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* makima-worker: claims tasks and runs each agent in its sandbox. Its own
 * options are --instance and --bwrap; the rest of start-up and shutdown is
 * the shared service skeleton. */

#include <limits.h>

#include "log.h"
#include "service.h"
#include "worker-manager.h"

enum {
        ARG_BWRAP = 0x200,
};

static unsigned arg_instance = 1;
static char *arg_bwrap = NULL;

static int parse_option(int c, const char *arg) {
        unsigned long u;
        char *end;

        switch (c) {
        case 'i':
                errno = 0;
                u = strtoul(arg, &end, 10);
                if (errno != 0 || *end || end == arg || u < 1 || u > UINT_MAX)
                        return log_error_errno(EINVAL, "--instance expects a positive number, not '%s'.", arg);
                arg_instance = (unsigned) u;
                return 0;
        case ARG_BWRAP:
                return free_and_strdup(&arg_bwrap, arg) < 0 ? log_oom() : 0;
        default:
                return -EINVAL;
        }
}

static int init(sd_event *event, Config *config, void **ret) {
        return manager_new(event, config, arg_instance, arg_bwrap, (Manager **) ret);
}

static void done(void *userdata) {
        manager_free(userdata);
        arg_bwrap = mfree(arg_bwrap);
}

static const ServiceDescription worker_service = {
        .name = "makima-worker",
        .summary = "Claim makima tasks and run each agent in a sandbox.",
        .options = (const struct option[]) {
                { "instance", required_argument, NULL, 'i' },
                { "bwrap",    required_argument, NULL, ARG_BWRAP },
                {}
        },
        .short_options = "i:",
        .options_help = "  -i --instance=N       This is worker N (default: 1); the worker id is HOST:N\n"
                        "     --bwrap=PATH       Run sandboxes with this bubblewrap (default: bwrap in $PATH)\n",
        .parse_option = parse_option,
        .init = init,
        .status = (char *(*)(void *)) manager_status,
        .done = done,
};

int main(int argc, char *argv[]) {
        return service_main(&worker_service, argc, argv);
}
