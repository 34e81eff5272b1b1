/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "makima up": the quick start. Runs a private dbus-daemon (when there is
 * one), makima-api on a socket in a state directory and N makima-worker
 * processes in the foreground, without root or systemd, prefixes their
 * output, and takes them all down together: on Ctrl-C or SIGTERM, or when
 * one of them dies. Children are reaped through sd_event child sources. */

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <systemd/sd-event.h>

#include "cli.h"

#define BUS_INTERVAL (20 * USEC_PER_MSEC)
#define BUS_TIMEOUT (10 * USEC_PER_SEC)
#define HEALTH_INTERVAL (100 * USEC_PER_MSEC)
#define HEALTH_TIMEOUT (30 * USEC_PER_SEC)
#define STOP_TIMEOUT (30 * USEC_PER_SEC)
#define WORKERS_MAX 64U

typedef struct Up Up;

typedef struct Child {
        Up *up;
        char *label;                    /* "api", "worker@1" */
        char **argv;
        pid_t pid;
        bool exited;
        sd_event_source *child_source;
        sd_event_source *output_source;
        int output_fd;
        char line[4096];                /* a partial line of its output */
        size_t line_len;
} Child;

struct Up {
        Cli *cli;
        sd_event *event;
        char *state_dir;                /* absolute */
        char *socket_path;
        char *url;                      /* unix:<socket_path> */
        char *config;
        unsigned n_workers;
        char *api_binary;
        char *worker_binary;            /* NULL: none found, run without workers */
        char *bus_binary;               /* NULL: no dbus-daemon, workers poll */
        char *bus_address;              /* MAKIMA_BUS_ADDRESS for the children */
        char *bus_socket;
        Child *bus;                     /* stopped last: the others may still say something on it */
        sd_event_source *bus_timer;
        usec_t bus_deadline;

        Child **children;
        size_t n_children;
        size_t label_width;

        HttpEndpoint *endpoint;
        sd_event_source *health_timer;
        usec_t health_deadline;
        sd_event_source *kill_timer;
        bool ready;
        bool stopping;
        int exit_status;
};

static void help(void) {
        printf("makima up [OPTIONS...]\n\n"
               "Run makima-api and workers in the foreground, on the embedded store in a state\n"
               "directory, without root or systemd. Ctrl-C stops them all.\n\n"
               "A private D-Bus (DIR/bus) carries the API's wake-up signals to the workers when\n"
               "dbus-daemon is installed (busctl --address=$MAKIMA_BUS_ADDRESS shows it); without\n"
               "it they poll the store.\n\n"
               "Agents never run as root: as root, makima up makes the user they run as\n"
               "([Sandbox] User=, default makima-agent) if it is missing.\n\n"
               "Options:\n"
               "     --state-dir=DIR      Keep the store, worktrees and the API socket in DIR\n"
               "                          (default: ./.makima; created if missing)\n"
               "     --workers=N          Run N makima-worker processes (default: 1; 0 for none)\n"
               "     --config=FILE        The configuration for all of them (default: DIR/makima.conf,\n"
               "                          created empty if missing)\n"
               "  -h --help               Show this help\n\n"
               "Environment:\n"
               "  MAKIMA_API_BIN, MAKIMA_WORKER_BIN   The programs to run (default: next to makima,\n"
               "                                      else in " LIBEXECDIR ")\n");
}

static Child *child_free(Child *c) {
        if (!c)
                return NULL;
        sd_event_source_disable_unref(c->child_source);
        sd_event_source_disable_unref(c->output_source);
        if (c->output_fd >= 0)
                close(c->output_fd);
        free(c->label);
        if (c->argv)
                for (char **a = c->argv; *a; a++)
                        free(*a);
        free(c->argv);
        return mfree(c);
}

static void up_done(Up *u) {
        for (size_t i = 0; i < u->n_children; i++)
                child_free(u->children[i]);
        free(u->children);
        sd_event_source_disable_unref(u->health_timer);
        sd_event_source_disable_unref(u->bus_timer);
        sd_event_source_disable_unref(u->kill_timer);
        sd_event_unref(u->event);
        http_endpoint_free(u->endpoint);
        free(u->state_dir);
        free(u->socket_path);
        free(u->url);
        free(u->config);
        free(u->api_binary);
        free(u->worker_binary);
        free(u->bus_binary);
        free(u->bus_address);
        free(u->bus_socket);
}

static void stop(Up *u, int exit_status);

/* Prints complete lines of a child's output with its label in front. */
static void child_flush_line(Child *c, bool partial) {
        Up *u = c->up;
        char *nl;

        while ((nl = memchr(c->line, '\n', c->line_len)) || (partial && c->line_len > 0)) {
                size_t l = nl ? (size_t) (nl - c->line) : c->line_len;

                fprintf(stderr, "%s%-*s |%s %.*s\n", cli_ansi(u->cli, ANSI_GREY), (int) u->label_width, c->label,
                        cli_ansi(u->cli, ANSI_NORMAL), (int) l, c->line);
                l = nl ? l + 1 : l;
                memmove(c->line, c->line + l, c->line_len - l);
                c->line_len -= l;
        }
}

static int child_read_output(Child *c) {
        for (;;) {
                ssize_t n;

                /* A line longer than the buffer is printed in pieces rather than held back. */
                if (c->line_len == sizeof(c->line))
                        child_flush_line(c, true);
                n = read(c->output_fd, c->line + c->line_len, sizeof(c->line) - c->line_len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == EAGAIN ? 0 : -errno;
                }
                if (n == 0) {
                        child_flush_line(c, true);
                        return -EPIPE;
                }
                c->line_len += (size_t) n;
                child_flush_line(c, false);
        }
}

static int on_child_output(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Child *c = userdata;

        if (child_read_output(c) < 0)
                /* EOF (or a broken pipe): nothing more will come from this child. */
                c->output_source = sd_event_source_disable_unref(c->output_source);
        return 0;
}

static bool all_exited(Up *u) {
        for (size_t i = 0; i < u->n_children; i++)
                if (!u->children[i]->exited)
                        return false;
        return true;
}

/* Every child but the bus has exited: the bus may go now. */
static void stop_bus_when_alone(Up *u) {
        for (size_t i = 0; i < u->n_children; i++)
                if (u->children[i] != u->bus && !u->children[i]->exited)
                        return;
        if (u->bus && !u->bus->exited)
                (void) kill(u->bus->pid, SIGTERM);
}

static void describe_exit(const siginfo_t *si, char *buf, size_t size) {
        if (si->si_code == CLD_EXITED)
                snprintf(buf, size, "exited with status %d", si->si_status);
        else
                snprintf(buf, size, "was killed by SIG%s", sigabbrev_np(si->si_status) ?: "?");
}

static int on_child_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Child *c = userdata;
        Up *u = c->up;
        char how[64];

        c->exited = true;
        c->child_source = sd_event_source_disable_unref(c->child_source);
        /* Whatever it wrote last belongs before the news of its end. */
        if (c->output_source) {
                (void) child_read_output(c);
                c->output_source = sd_event_source_disable_unref(c->output_source);
        }
        describe_exit(si, how, sizeof(how));

        if (!u->stopping) {
                log_error("%s (pid %d) %s unexpectedly%s; stopping the rest.", c->label, (int) c->pid, how,
                          u->ready ? "" : " before the API answered");
                stop(u, EXIT_FAILURE);
        } else if (!(si->si_code == CLD_EXITED && si->si_status == 0))
                log_warning("%s %s while stopping.", c->label, how);

        if (u->stopping)
                stop_bus_when_alone(u);
        if (u->stopping && all_exited(u))
                return sd_event_exit(u->event, u->exit_status);
        return 0;
}

static int on_kill_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Up *u = userdata;

        log_warning("Children still running after %llus; killing them.", (unsigned long long) (STOP_TIMEOUT / USEC_PER_SEC));
        for (size_t i = 0; i < u->n_children; i++)
                if (!u->children[i]->exited)
                        (void) kill(u->children[i]->pid, SIGKILL);
        return 0;
}

static void stop(Up *u, int exit_status) {
        int r;

        if (u->stopping)
                return;
        u->stopping = true;
        u->exit_status = exit_status;
        u->health_timer = sd_event_source_disable_unref(u->health_timer);
        u->bus_timer = sd_event_source_disable_unref(u->bus_timer);

        for (size_t i = 0; i < u->n_children; i++)
                if (u->children[i] != u->bus && !u->children[i]->exited)
                        (void) kill(u->children[i]->pid, SIGTERM);
        stop_bus_when_alone(u);
        if (all_exited(u)) {
                (void) sd_event_exit(u->event, exit_status);
                return;
        }
        r = sd_event_add_time_relative(u->event, &u->kill_timer, CLOCK_MONOTONIC, STOP_TIMEOUT, 0, on_kill_timeout, u);
        if (r < 0)
                log_warning_errno(r, "Failed to arm the stop timeout: %m");
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Up *u = userdata;

        if (u->stopping) {
                /* Asked twice: do not make the user wait. */
                log_info("Received %s again; killing the children.", sigabbrev_np((int) si->ssi_signo) ?: "a signal");
                return on_kill_timeout(NULL, 0, u);
        }
        log_info("Received SIG%s; stopping makima.", sigabbrev_np((int) si->ssi_signo) ?: "?");
        stop(u, EXIT_SUCCESS);
        return 0;
}

/* The child's side of the fork: only async-signal-safe calls from here on;
 * argv and the environment were prepared before fork(). */
_noreturn_ static void child_exec(pid_t parent, int output_fd, char **argv) {
        sigset_t none;

        /* A fresh start for signals: our SIGPIPE and the shell's ignored SIGINT must not
         * pass on through exec, nor the mask we block the loop's signals with. */
        for (int sig = 1; sig < _NSIG; sig++) {
                struct sigaction sa = { .sa_handler = SIG_DFL };

                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) sigaction(sig, &sa, NULL);
        }
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
                _exit(EXIT_FAILURE);    /* the parent is already gone: nobody would stop us */
        /* Its own process group: Ctrl-C reaches makima up, which stops the children in order. */
        (void) setpgid(0, 0);
        if (dup2(output_fd, STDOUT_FILENO) < 0 || dup2(output_fd, STDERR_FILENO) < 0)
                _exit(EXIT_FAILURE);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null >= 0)
                (void) dup2(null, STDIN_FILENO);
        execv(argv[0], argv);
        _exit(127);
}

static int spawn(Up *u, const char *label, char **argv) {
        _cleanup_close_ int out_read = -EBADF, out_write = -EBADF;
        Child *c, **a;
        int pipefd[2], r;
        pid_t pid;

        c = calloc(1, sizeof(Child));
        if (!c) {
                for (char **p = argv; *p; p++)
                        free(*p);
                free(argv);
                return log_oom();
        }
        c->up = u;
        c->exited = true;               /* nothing to wait for (or signal) until it is forked */
        c->output_fd = -EBADF;
        c->argv = argv;
        c->label = strdup(label);
        a = reallocarray(u->children, u->n_children + 1, sizeof(Child *));
        if (!a || !c->label) {
                child_free(c);
                return log_oom();
        }
        u->children = a;
        u->children[u->n_children++] = c;
        u->label_width = MAX(u->label_width, strlen(label));

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return log_error_errno(errno, "Failed to create a pipe for %s: %m", label);
        out_read = pipefd[0];
        out_write = pipefd[1];

        pid_t parent = getpid();
        pid = fork();
        if (pid < 0)
                return log_error_errno(errno, "Failed to start %s: %m", label);
        if (pid == 0)
                child_exec(parent, out_write, argv);

        c->pid = pid;
        c->exited = false;
        (void) setpgid(pid, pid);       /* also here, so it holds whichever side runs first */
        close(TAKE_FD(out_write));

        r = sd_event_add_child(u->event, &c->child_source, pid, WEXITED, on_child_exit, c);
        if (r < 0) {
                /* Unwatched, it could never be waited for: end it now (our exit reaps the zombie). */
                (void) kill(pid, SIGKILL);
                c->exited = true;
                return log_error_errno(r, "Failed to watch %s: %m", label);
        }

        r = fcntl(out_read, F_SETFL, O_NONBLOCK) < 0 ? -errno : 0;
        if (r < 0)
                return log_error_errno(r, "Failed to set up the output of %s: %m", label);
        c->output_fd = TAKE_FD(out_read);

        r = sd_event_add_io(u->event, &c->output_source, c->output_fd, EPOLLIN, on_child_output, c);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the output of %s: %m", label);
        log_debug("Started %s as pid %d.", label, (int) pid);
        return 0;
}

static int start_workers(Up *u) {
        int r;

        if (!u->worker_binary || u->n_workers == 0)
                return 0;
        for (unsigned i = 1; i <= u->n_workers; i++) {
                char instance[16], label[32];
                char **argv;

                snprintf(instance, sizeof(instance), "%u", i);
                snprintf(label, sizeof(label), "worker@%u", i);
                r = up_make_argv(&argv, u->worker_binary, "--instance", instance, "--state-dir", u->state_dir,
                              "--config", u->config, NULL);
                if (r < 0)
                        return log_oom();
                r = spawn(u, label, argv);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool api_healthy(Up *u) {
        _cleanup_(http_response_freep) HttpResponse *resp = NULL;
        _cleanup_close_ int fd = -EBADF;

        fd = http_connect(u->endpoint, USEC_PER_SEC);
        if (fd < 0)
                return false;
        return http_exchange(fd, u->endpoint, "GET", "/api/v1/health", NULL, NULL, 5 * USEC_PER_SEC, &resp) >= 0 &&
                resp->status == 200;
}

/* The word as a shell reads it back: as it is if it is plain, else in single quotes. */
static char *shell_quote(const char *s) {
        char *q, *p;

        if (s[strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_.:@%+=,-")] == '\0')
                return strdup(s);
        q = malloc(strlen(s) * 4 + 3);
        if (!q)
                return NULL;
        p = q;
        *p++ = '\'';
        for (; *s; s++)
                if (*s == '\'') {
                        memcpy(p, "'\\''", 4);
                        p += 4;
                } else
                        *p++ = *s;
        *p++ = '\'';
        *p = '\0';
        return q;
}

static int on_health_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        _cleanup_free_ char *quoted = NULL;
        Up *u = userdata;
        int r;

        if (!api_healthy(u)) {
                uint64_t t = 0;

                (void) sd_event_now(u->event, CLOCK_MONOTONIC, &t);
                if (t >= u->health_deadline) {
                        log_error("makima-api did not answer on %s within %llus; stopping.", u->url,
                                  (unsigned long long) (HEALTH_TIMEOUT / USEC_PER_SEC));
                        stop(u, EXIT_FAILURE);
                        return 0;
                }
                r = sd_event_source_set_time_relative(s, HEALTH_INTERVAL);
                if (r >= 0)
                        r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
                if (r < 0) {
                        log_error_errno(r, "Failed to rearm the health check: %m");
                        stop(u, EXIT_FAILURE);
                }
                return 0;
        }

        u->ready = true;
        u->health_timer = sd_event_source_disable_unref(u->health_timer);
        /* The API has migrated the store by now, so workers start on a ready schema. */
        r = start_workers(u);
        if (r < 0) {
                stop(u, EXIT_FAILURE);
                return 0;
        }

        quoted = shell_quote(u->url);
        if (!quoted) {
                log_oom();
                stop(u, EXIT_FAILURE);
                return 0;
        }
        printf("makima is up: state in %s, %u worker%s.\n"
               "Point the CLI%s at it with:\n\n"
               "  export MAKIMA_API_URL=%s\n",
               u->state_dir, u->worker_binary ? u->n_workers : 0, (u->worker_binary ? u->n_workers : 0) == 1 ? "" : "s",
               u->bus_address ? " (and busctl --address=\"$MAKIMA_BUS_ADDRESS\")" : "", quoted);
        /* The address is %-escaped: nothing in it that a shell would read otherwise. */
        if (u->bus_address)
                printf("  export MAKIMA_BUS_ADDRESS=%s\n", u->bus_address);
        printf("\nPress Ctrl-C to stop.\n");
        fflush(stdout);
        return 0;
}

/* makima-api, then the health check that starts the workers once it answers. */
static int start_api(Up *u) {
        char **argv, *listen = NULL;
        uint64_t now;
        int r;

        if (asprintf(&listen, "unix:%s", u->socket_path) < 0)
                return log_oom();
        r = up_make_argv(&argv, u->api_binary, "--listen", listen, "--state-dir", u->state_dir, "--config", u->config,
                      NULL);
        free(listen);
        if (r < 0)
                return log_oom();
        r = spawn(u, "api", argv);
        if (r < 0)
                return r;

        r = sd_event_now(u->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return log_error_errno(r, "Failed to read the clock: %m");
        u->health_deadline = now + HEALTH_TIMEOUT;
        r = sd_event_add_time_relative(u->event, &u->health_timer, CLOCK_MONOTONIC, HEALTH_INTERVAL / 2, 0,
                                       on_health_timer, u);
        if (r < 0)
                return log_error_errno(r, "Failed to start the health check: %m");
        return 0;
}

static int on_bus_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Up *u = userdata;
        int r;

        if (up_bus_ready(u->bus_socket)) {
                u->bus_timer = sd_event_source_disable_unref(u->bus_timer);
                r = start_api(u);
                if (r < 0)
                        stop(u, EXIT_FAILURE);
                return 0;
        }
        if (usec >= u->bus_deadline) {
                log_error("dbus-daemon did not listen on %s within %llus; stopping.", u->bus_socket,
                          (unsigned long long) (BUS_TIMEOUT / USEC_PER_SEC));
                stop(u, EXIT_FAILURE);
                return 0;
        }
        r = sd_event_source_set_time_relative(s, BUS_INTERVAL);
        if (r >= 0)
                r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        if (r < 0) {
                log_error_errno(r, "Failed to rearm the bus check: %m");
                stop(u, EXIT_FAILURE);
        }
        return 0;
}

/* The private bus first: the API connects to it when it starts. */
static int start_bus(Up *u) {
        char **argv = NULL;
        uint64_t now;
        int r;

        r = up_bus_prepare(u->state_dir, u->bus_binary, &argv, &u->bus_address, &u->bus_socket);
        if (r == -ENAMETOOLONG)
                return log_error_errno(r, "The state directory's path is too long for the bus socket: %s/bus",
                                       u->state_dir);
        if (r < 0)
                return log_error_errno(r, "Failed to prepare the bus in %s: %m", u->state_dir);
        /* Every child, the API and the workers, finds the bus here. */
        if (setenv("MAKIMA_BUS_ADDRESS", u->bus_address, true) < 0)
                return log_oom();

        r = spawn(u, "bus", argv);
        if (r < 0)
                return r;
        u->bus = u->children[u->n_children - 1];

        r = sd_event_now(u->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return log_error_errno(r, "Failed to read the clock: %m");
        u->bus_deadline = now + BUS_TIMEOUT;
        r = sd_event_add_time_relative(u->event, &u->bus_timer, CLOCK_MONOTONIC, BUS_INTERVAL, 0, on_bus_timer, u);
        if (r < 0)
                return log_error_errno(r, "Failed to start the bus check: %m");
        return 0;
}

enum {
        ARG_STATE_DIR = _ARG_COMMON_MAX,
        ARG_WORKERS,
        ARG_CONFIG,
};

typedef struct UpArgs {
        const char *state_dir;
        const char *config;
        int64_t workers;
} UpArgs;

static int handle_option(Cli *cli, int c, const char *arg, void *userdata) {
        UpArgs *a = userdata;

        switch (c) {
        case ARG_STATE_DIR:
                a->state_dir = arg;
                return 0;
        case ARG_CONFIG:
                a->config = arg;
                return 0;
        case ARG_WORKERS:
                if (cli_parse_int64(arg, 0, WORKERS_MAX, &a->workers) < 0)
                        return cli_usage_error(cli, "up", "--workers expects a number from 0 to %u, not '%s'", WORKERS_MAX, arg);
                return 0;
        }
        return -EINVAL;
}

/* Checks the arguments and prepares the state directory. */
static int up_setup(Up *u, const UpArgs *a) {
        _cleanup_free_ char *conf = NULL, *lock = NULL;
        int r, fd;

        r = up_mkdir_parents(a->state_dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Failed to create the state directory %s: %m", a->state_dir);
        u->state_dir = realpath(a->state_dir, NULL);
        if (!u->state_dir)
                return log_error_errno(errno, "Failed to resolve %s: %m", a->state_dir);

        /* Two of us on one directory would fight over the socket; the lock lives as long as we do. */
        if (asprintf(&lock, "%s/up.lock", u->state_dir) < 0)
                return log_oom();
        fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
                return log_error_errno(errno, "Failed to open %s: %m", lock);
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                r = -errno;
                close(fd);
                if (r == -EWOULDBLOCK)
                        return log_error_errno(r, "Another 'makima up' is running on %s.", u->state_dir);
                return log_error_errno(r, "Failed to lock %s: %m", lock);
        }
        /* fd stays open (and locked) until exit; it is O_CLOEXEC, so children do not hold it. */

        if (asprintf(&u->socket_path, "%s/api.sock", u->state_dir) < 0 || asprintf(&u->url, "unix:%s", u->socket_path) < 0)
                return log_oom();
        r = http_endpoint_parse(u->url, &u->endpoint);
        if (r == -EINVAL)
                return log_error_errno(r, "The state directory's path is too long for a socket: %s", u->socket_path);
        if (r < 0)
                return log_oom();

        if (a->config) {
                u->config = realpath(a->config, NULL);
                if (!u->config)
                        return log_error_errno(errno, "--config %s: %m", a->config);
        } else {
                /* The system's makima.conf is for the system's makima: the quick start keeps to its own
                 * directory, with a file of its own the user can edit. */
                if (asprintf(&conf, "%s/makima.conf", u->state_dir) < 0)
                        return log_oom();
                fd = open(conf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                if (fd >= 0) {
                        static const char text[] =
                                "# makima.conf for 'makima up' in this directory (see makima(1)).\n"
                                "# The store, worktrees and socket live here; add settings below, e.g.\n"
                                "#\n"
                                "# [Worker]\n"
                                "# MaxConcurrentTasks=2\n";
                        ssize_t n = write(fd, text, sizeof(text) - 1);
                        r = n < 0 ? -errno : (size_t) n != sizeof(text) - 1 ? -EIO : 0;
                        close(fd);
                        if (r < 0)
                                return log_error_errno(r, "Failed to write %s: %m", conf);
                } else if (errno != EEXIST)
                        return log_error_errno(errno, "Failed to create %s: %m", conf);
                u->config = TAKE_PTR(conf);
        }

        /* The workers refuse to run an agent as root: as root, they run it as makima-agent. */
        if (u->n_workers > 0) {
                r = up_agent_user(u->config);
                if (r < 0)
                        return r;
        }

        r = up_bus_find(&u->bus_binary);
        if (r == -ENOENT)
                log_warning("dbus-daemon not found: running without a bus; workers wake up by polling the store "
                            "([Worker] PollIntervalSec=).");
        else if (r < 0)
                return log_oom();

        r = up_find_daemon("makima-api", "MAKIMA_API_BIN", "api", &u->api_binary);
        if (r == -ENOENT)
                return log_error_errno(r, "makima-api not found next to makima, in ../api/ or in %s; set MAKIMA_API_BIN.",
                                       LIBEXECDIR);
        if (r < 0)
                return r;
        if (u->n_workers > 0) {
                r = up_find_daemon("makima-worker", "MAKIMA_WORKER_BIN", "worker", &u->worker_binary);
                if (r == -ENOENT)
                        log_warning("makima-worker not found next to makima, in ../worker/ or in %s (set MAKIMA_WORKER_BIN); "
                                    "running without workers: tasks will wait in 'pending'.", LIBEXECDIR);
                else if (r < 0)
                        return r;
        }
        return 0;
}

int verb_up(Cli *cli, int argc, char *argv[]) {
        /* Not the common --json and --url: up serves an API, it does not call one. */
        static const struct option options[] = {
                { "help",      no_argument,       NULL, 'h'           },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "workers",   required_argument, NULL, ARG_WORKERS   },
                { "config",    required_argument, NULL, ARG_CONFIG    },
                {}
        };
        _cleanup_(up_done) Up u = { .cli = cli };
        UpArgs a = { .state_dir = ".makima", .workers = 1 };
        sigset_t mask;
        int r;

        r = cli_parse_options(cli, "up", argc, argv, options, NULL, help, handle_option, &a);
        if (r <= 0)
                return r;
        r = cli_want_operands(cli, "up", argc, argv, 0, "");
        if (r < 0)
                return r;
        u.n_workers = (unsigned) a.workers;

        r = up_setup(&u, &a);
        if (r < 0)
                return r;

        /* Signals and child exits arrive through the loop, never through handlers. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");
        (void) signal(SIGPIPE, SIG_IGN);

        r = sd_event_new(&u.event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        /* A signal and a child exit seen in the same iteration: the signal explains the exit, so it goes first. */
        /* SIGHUP too: a closed terminal is as good as Ctrl-C. */
        static const int stop_signals[] = { SIGTERM, SIGINT, SIGHUP };
        for (size_t i = 0; i < ELEMENTSOF(stop_signals); i++) {
                sd_event_source *s;

                r = sd_event_add_signal(u.event, &s, stop_signals[i], on_signal, &u);
                if (r < 0)
                        return log_error_errno(r, "Failed to watch SIG%s: %m", sigabbrev_np(stop_signals[i]));
                (void) sd_event_source_set_priority(s, SD_EVENT_PRIORITY_IMPORTANT);
                /* The loop owns it from now on and frees it with itself. */
                (void) sd_event_source_set_floating(s, true);
                sd_event_source_unref(s);
        }

        /* Children must not take our supervisor's notification socket or a journal stream meant for us. */
        (void) unsetenv("NOTIFY_SOCKET");
        (void) unsetenv("LISTEN_FDS");
        (void) unsetenv("LISTEN_PID");
        (void) unsetenv("LISTEN_FDNAMES");
        (void) unsetenv("WATCHDOG_USEC");
        (void) unsetenv("WATCHDOG_PID");
        (void) unsetenv("JOURNAL_STREAM");
        /* Our children use our bus, or none: never one the caller happened to point at. */
        (void) unsetenv("MAKIMA_BUS_ADDRESS");

        r = u.bus_binary ? start_bus(&u) : start_api(&u);
        if (r < 0)
                stop(&u, EXIT_FAILURE);

        r = sd_event_loop(u.event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        if (r == EXIT_SUCCESS)
                log_info("Stopped.");
        return r == EXIT_SUCCESS ? 0 : -ECHILD;
}
