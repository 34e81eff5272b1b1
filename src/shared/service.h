/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The skeleton every makima service runs in (after postfix's single_server):
 * common options, configuration, logging, the sd_event loop with SIGTERM and
 * SIGINT, the watchdog, READY/STATUS/STOPPING notifications. A service
 * supplies only its hooks. */
#pragma once

#include <getopt.h>

#include <systemd/sd-event.h>

#include "conf.h"

typedef struct ServiceDescription {
        const char *name;               /* program name, used in logs and --help */
        const char *summary;            /* one line for --help */

        /* The service's own options: getopt_long entries (ended by {}), the
         * matching short options, their --help lines, and a callback for each
         * one seen. Option values for long-only options must be >= 0x200. */
        const struct option *options;
        const char *short_options;
        const char *options_help;
        int (*parse_option)(int c, const char *arg);

        /* Builds the service's object after the configuration is loaded and
         * attaches its sources to the loop. */
        int (*init)(sd_event *event, Config *config, void **ret_userdata);
        /* The STATUS= text sent with READY=1 (NULL: none). Returns a new string. */
        char *(*status)(void *userdata);
        /* Frees what init built (userdata is NULL if init did not run or
         * failed), and what parse_option kept; called once, at the end. */
        void (*done)(void *userdata);
} ServiceDescription;

/* Runs the service; returns the process exit status. */
int service_main(const ServiceDescription *d, int argc, char *argv[]);
