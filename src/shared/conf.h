/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* makima.conf: systemd-style INI in /etc/makima/makima.conf plus drop-ins in
 * /etc/makima/makima.conf.d/ (*.conf, applied in lexical order after the main
 * file; a later assignment wins, an empty assignment resets a list).
 * Unknown sections and keys are warned about with file:line; bad values are
 * errors with file:line. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* SYSCONFDIR comes from meson (config.h): /etc for a --prefix=/usr build. */
#define MAKIMA_CONF_DIR SYSCONFDIR "/makima"
#define MAKIMA_CONF_FILE MAKIMA_CONF_DIR "/makima.conf"
#define MAKIMA_CONF_DROPIN_DIR MAKIMA_CONF_DIR "/makima.conf.d"
#define MAKIMA_STATE_DIR "/var/lib/makima"
#define MAKIMA_RUNTIME_DIR "/run/makima"

typedef struct Config {
        /* Where state lives: $STATE_DIRECTORY under systemd, else MAKIMA_STATE_DIR;
         * `makima up --state-dir` sets it. Not a config file key. */
        char *state_dir;
        /* The file config_load() read (its drop-ins are FILE.d/), for what must
         * not show it to agents. Not a key either. */
        char *config_file;

        /* [Store] */
        StoreBackend store_backend;     /* Backend=sqlite|postgresql */
        char *store_path;               /* Path= (SQLite file; default <state_dir>/makima.db) */
        char *store_url;                /* URL= (PostgreSQL connection string) */

        /* [API] */
        char **api_listen;              /* Listen= unix:PATH | HOST:PORT, when not socket-activated */
        uint64_t api_max_body_bytes;    /* MaxBodyBytes= (default 1 MiB; accepts K, M, G suffixes) */
        uint64_t api_max_header_bytes;  /* MaxHeaderBytes= (default 16 KiB): request line + headers */
        unsigned api_max_connections;   /* MaxConnections= (default 256): per listening socket */
        unsigned api_max_connections_per_ip;    /* MaxConnectionsPerIP= (default 64; 0: no limit): per TCP socket */
        usec_t api_connection_timeout;  /* ConnectionTimeoutSec= (default 30): idle */
        usec_t api_request_head_timeout;        /* RequestHeadTimeoutSec= (default 10): a whole request head */
        char *api_admin_group;          /* AdminGroup= (default "makima") */

        /* [Worker] */
        unsigned worker_max_concurrent_tasks;   /* MaxConcurrentTasks= (default 2) */
        char *worker_worktree_dir;      /* WorktreeDir= (default <state_dir>/worktrees) */
        usec_t worker_poll_interval;    /* PollIntervalSec= (default 30) */
        usec_t worker_lease;            /* LeaseSec= (default 60) */
        usec_t worker_store_retry;      /* StoreRetrySec= (default 30): an agent whose output the
                                         * store does not take is stopped after this long */

        /* [Agent] */
        char *agent_command;            /* Command= (default "claude") */
        char **agent_environment;       /* Environment= KEY=VALUE …, quoted like systemd */
        char **agent_extra_args;        /* ExtraArgs= words, quoted like a shell */

        /* [Sandbox] */
        bool sandbox_enabled;           /* Enabled= (default yes) */
        bool sandbox_network;           /* Network= (default yes) */
        char **sandbox_read_only_paths; /* ReadOnlyPaths= */
        char **sandbox_read_write_paths;/* ReadWritePaths= */
        char *sandbox_user;             /* User= (default "makima-agent"): who agents run as, where
                                         * the worker can switch users */
        unsigned sandbox_tasks_max;     /* TasksMax= (default 512): processes and threads of an agent */
        uint64_t sandbox_memory_max;    /* MemoryMax= (default 4G) */
        unsigned sandbox_cpu_weight;    /* CPUWeight= (1..10000, default 100) */

        /* [AutonomousLoop] */
        unsigned loop_default_max_iterations;   /* DefaultMaxIterations= (10) */
        unsigned loop_hard_limit;               /* HardLimit= (50) */
        unsigned loop_no_change_threshold;      /* NoChangeThreshold= (3) */
        unsigned loop_same_error_threshold;     /* SameErrorThreshold= (5) */
} Config;

/* Fills c with the built-in defaults. */
int config_init(Config *c);
void config_done(Config *c);

/* Reads `path` (NULL: MAKIMA_CONF_FILE) and then, when path is NULL or
 * `dropins` is true, every *.conf in "<path>.d/". A missing main file is not
 * an error. Errors and warnings are logged with file:line; returns -EINVAL
 * (or another -errno) on the first bad value. */
int config_load(Config *c, const char *path, bool dropins);
/* Parses one file's text; `name` is used in messages. Exposed for tests and the fuzzer. */
int config_parse_string(Config *c, const char *name, const char *text);
/* Fills in the defaults that depend on state_dir (store path, worktree dir). */
int config_finalize(Config *c);

/* Splits a value into words: whitespace separates, "double" and 'single'
 * quotes group, backslash escapes (\n, \t, \\, \", \', \ ). -EINVAL on an
 * unterminated quote or a trailing backslash. Exposed for tests. */
int config_split_words(const char *value, char ***ret);

/* Parses "1024", "64K", "1M", "2G" (binary multiples). */
int config_parse_size(const char *value, uint64_t *ret);
/* yes/no/true/false/on/off/1/0, case-insensitive. */
int config_parse_bool(const char *value, bool *ret);

/* NULL-terminated string vectors used by the config and elsewhere. */
char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
size_t strv_length(char *const *l);
int strv_push(char ***l, char *value);          /* takes ownership of value */
int strv_extend(char ***l, const char *value);  /* copies value */
int strv_extend_all(char ***l, char *const *add); /* copies each of add */
