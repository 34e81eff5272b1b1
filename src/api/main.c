/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* makima-api: the HTTP/JSON API. Its own option is --listen; the rest of
 * start-up and shutdown is the shared service skeleton. */

#include "api-manager.h"
#include "log.h"
#include "service.h"

static char **arg_listen = NULL;

static int parse_option(int c, const char *arg) {
        if (c != 'l')
                return -EINVAL;
        return strv_extend(&arg_listen, arg) < 0 ? log_oom() : 0;
}

static int init(sd_event *event, Config *config, void **ret) {
        return manager_new(event, config, arg_listen, (Manager **) ret);
}

static void done(void *userdata) {
        manager_free(userdata);
        arg_listen = strv_free(arg_listen);
}

static const ServiceDescription api_service = {
        .name = "makima-api",
        .summary = "The makima HTTP/JSON API.",
        .options = (const struct option[]) { { "listen", required_argument, NULL, 'l' }, {} },
        .short_options = "l:",
        .options_help = "  -l --listen=ADDRESS   Listen on unix:PATH or HOST:PORT when no sockets are\n"
                        "                        passed (repeatable; overrides [API] Listen=)\n",
        .parse_option = parse_option,
        .init = init,
        .status = (char *(*)(void *)) manager_status,
        .done = done,
};

int main(int argc, char *argv[]) {
        return service_main(&api_service, argc, argv);
}
