/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The shared service skeleton described in service.h: what happens between
 * main() and a service's own hooks, the same way in every makima daemon. */

#include <signal.h>
#include <sys/stat.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "service.h"

enum {
        ARG_VERSION = 0x100,
        ARG_CONFIG,
        ARG_STATE_DIR,
};

static const struct option common_options[] = {
        { "help",      no_argument,       NULL, 'h'           },
        { "version",   no_argument,       NULL, ARG_VERSION   },
        { "config",    required_argument, NULL, ARG_CONFIG    },
        { "state-dir", required_argument, NULL, ARG_STATE_DIR },
        { "verbose",   no_argument,       NULL, 'v'           },
};

static void help(const ServiceDescription *d) {
        printf("%s [OPTIONS...]\n\n"
               "%s\n\n"
               "  -h --help             Show this help\n"
               "     --version          Show package version\n"
               "     --config=FILE      Read FILE instead of " MAKIMA_CONF_FILE " and its drop-ins\n"
               "     --state-dir=DIR    Keep state in DIR (default: $STATE_DIRECTORY or " MAKIMA_STATE_DIR ")\n"
               "  -v --verbose          Log debug messages\n"
               "%s",
               d->name, d->summary, strempty(d->options_help));
}

/* Returns 1 to run, 0 to exit successfully (--help, --version), < 0 on error. */
static int parse_argv(const ServiceDescription *d, int argc, char *argv[], char **ret_config, char **ret_state_dir) {
        _cleanup_free_ struct option *options = NULL;
        _cleanup_free_ char *short_options = NULL;
        size_t n_own = 0;
        int c, r;

        while (d->options && d->options[n_own].name)
                n_own++;
        options = calloc(ELEMENTSOF(common_options) + n_own + 1, sizeof(struct option));
        if (asprintf(&short_options, "hv%s", strempty(d->short_options)) < 0 || !options)
                return log_oom();
        memcpy(options, common_options, sizeof(common_options));
        if (n_own > 0)
                memcpy(options + ELEMENTSOF(common_options), d->options, n_own * sizeof(struct option));

        while ((c = getopt_long(argc, argv, short_options, options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help(d);
                        return 0;
                case ARG_VERSION:
                        printf("%s %s\n", d->name, PACKAGE_VERSION);
                        return 0;
                case ARG_CONFIG:
                        r = free_and_strdup(ret_config, optarg);
                        if (r < 0)
                                return log_oom();
                        break;
                case ARG_STATE_DIR:
                        r = free_and_strdup(ret_state_dir, optarg);
                        if (r < 0)
                                return log_oom();
                        break;
                case 'v':
                        log_set_max_level(LOG_DEBUG);
                        break;
                case '?':
                        return -EINVAL;
                default:
                        if (!d->parse_option)
                                return -EINVAL;
                        r = d->parse_option(c, optarg);
                        if (r < 0)
                                return r;
                }

        if (optind < argc)
                return log_error_errno(EINVAL, "%s takes no arguments.", d->name);
        return 1;
}

static int load_config(Config *config, const char *path, const char *state_dir) {
        int r;

        r = config_init(config);
        if (r < 0)
                return log_error_errno(r, "Failed to initialize the configuration: %m");
        if (state_dir) {
                r = free_and_strdup(&config->state_dir, state_dir);
                if (r < 0)
                        return log_oom();
        }
        /* A file named on the command line must exist; the default one need not. */
        if (path && access(path, R_OK) < 0)
                return log_error_errno(errno, "Cannot read %s: %m", path);
        r = config_load(config, path, !path);
        if (r < 0)
                return r;       /* config_load() said what is wrong, with file:line */
        r = config_finalize(config);
        if (r < 0)
                return log_error_errno(r, "Failed to complete the configuration: %m");
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        log_info("Received SIG%s, shutting down.", strna(sigabbrev_np((int) si->ssi_signo)));
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int run(const ServiceDescription *d, int argc, char *argv[], Config *config, void **userdata) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_free_ char *config_path = NULL, *state_dir = NULL, *status = NULL;
        sigset_t mask;
        int r;

        log_setup(d->name);

        r = parse_argv(d, argc, argv, &config_path, &state_dir);
        if (r <= 0)
                return r;

        r = load_config(config, config_path, state_dir);
        if (r < 0)
                return r;

        /* Signals arrive through the loop; the default actions must not run first. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");
        /* A peer that hangs up must cost a write error, not the process. */
        (void) signal(SIGPIPE, SIG_IGN);

        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        r = sd_event_add_signal(event, NULL, SIGTERM, on_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, on_signal, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals: %m");
        r = sd_event_set_watchdog(event, true);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the watchdog: %m");

        r = d->init(event, config, userdata);
        if (r < 0)
                return r;

        status = d->status ? d->status(*userdata) : NULL;
        (void) sd_notifyf(false, "READY=1\nSTATUS=%s", strempty(status));

        r = sd_event_loop(event);
        if (r < 0)
                log_error_errno(r, "Event loop failed: %m");

        (void) sd_notify(false, "STOPPING=1");
        return r;
}

int service_main(const ServiceDescription *d, int argc, char *argv[]) {
        _cleanup_(config_done) Config config = {};
        void *userdata = NULL;
        int r;

        r = run(d, argc, argv, &config, &userdata);
        /* Also when start-up failed half way: done() frees what the options
         * made. The configuration outlives the service's object. */
        if (d->done)
                d->done(userdata);
        return r < 0 ? EXIT_FAILURE : r;
}
