/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The makima-api manager: opens the store, takes the sockets systemd passed
 * (or opens the --listen / [API] Listen= ones), and starts an HTTP daemon on
 * each. */

#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <systemd/sd-daemon.h>

#include "api-bus.h"
#include "api-manager.h"
#include "log.h"

#define STATUS_INTERVAL (10 * USEC_PER_SEC)

/* A connection MHD serves takes three fds (the client's and a socket pair),
 * so MaxConnections on every socket may need more than the soft limit of
 * 1024: raise it as far as the hard limit allows. We use epoll only, never
 * select(), so fds above 1023 are fine. */
static void raise_fd_limit(Manager *m) {
        uint64_t want = (uint64_t) m->n_listeners * m->config->api_max_connections * 3 + 256;
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
                return;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? want : MIN(want, (uint64_t) rl.rlim_max);
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
                log_warning("Only %llu fds may be open, fewer than the %" PRIu64 " that MaxConnections= may need "
                            "(raise the service's LimitNOFILE=).",
                            (unsigned long long) rl.rlim_cur, want);
}

static int socket_description(int fd, bool is_unix, char **ret) {
        union {
                struct sockaddr sa;
                struct sockaddr_un un;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
        } a = {};
        socklen_t len = sizeof(a);
        char host[INET6_ADDRSTRLEN];
        char *s;
        int r;

        if (getsockname(fd, &a.sa, &len) < 0)
                return -errno;

        if (is_unix) {
                if (len <= offsetof(struct sockaddr_un, sun_path))
                        r = asprintf(&s, "unix:(unnamed)");
                else if (a.un.sun_path[0] == '\0')
                        r = asprintf(&s, "unix:@%.*s", (int) (len - offsetof(struct sockaddr_un, sun_path) - 1),
                                     a.un.sun_path + 1);
                else
                        r = asprintf(&s, "unix:%.*s", (int) sizeof(a.un.sun_path), a.un.sun_path);
        } else if (a.sa.sa_family == AF_INET) {
                inet_ntop(AF_INET, &a.in.sin_addr, host, sizeof(host));
                r = asprintf(&s, "%s:%u", host, ntohs(a.in.sin_port));
        } else if (a.sa.sa_family == AF_INET6) {
                inet_ntop(AF_INET6, &a.in6.sin6_addr, host, sizeof(host));
                r = asprintf(&s, "[%s]:%u", host, ntohs(a.in6.sin6_port));
        } else
                return -EAFNOSUPPORT;
        if (r < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int manager_add_listener(Manager *m, int fd, bool is_unix, char *unlink_path) {
        _cleanup_(listener_freep) Listener *l = NULL;
        _cleanup_free_ char *description = NULL;
        _cleanup_free_ char *path = unlink_path;
        _cleanup_close_ int fd_close = fd;
        Listener **a;
        int r;

        r = socket_description(fd, is_unix, &description);
        if (r < 0)
                return log_error_errno(r, "Failed to get the address of socket %d: %m", fd);

        a = reallocarray(m->listeners, m->n_listeners + 1, sizeof(Listener *));
        if (!a)
                return log_oom();
        m->listeners = a;

        r = listener_new(m, TAKE_FD(fd_close), is_unix, description, &l);
        if (r < 0)
                return r;
        l->unlink_path = TAKE_PTR(path);

        log_info("Listening on %s.", description);
        m->listeners[m->n_listeners++] = TAKE_PTR(l);
        return 0;
}

static int open_unix_socket(const char *path, int *ret_fd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        mode_t old_umask;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return log_error_errno(ENAMETOOLONG, "Socket path too long: %s", path);
        strcpy(sa.sun_path, path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(errno, "Failed to create a socket: %m");

        /* A socket file left behind by a previous run is removed; one somebody
         * still listens on is not ours to take, and neither is any other file. */
        if (lstat(path, &st) >= 0) {
                if (!S_ISSOCK(st.st_mode))
                        return log_error_errno(EEXIST, "%s exists and is not a socket.", path);
                if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) >= 0 || errno == EAGAIN)
                        return log_error_errno(EADDRINUSE, "Another process listens on %s.", path);
                (void) close(fd);
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (fd < 0)
                        return log_error_errno(errno, "Failed to create a socket: %m");
                if (unlink(path) < 0 && errno != ENOENT)
                        return log_error_errno(errno, "Failed to remove stale socket %s: %m", path);
        }

        /* Never let the file exist with wider permissions than 0660, even briefly. */
        old_umask = umask(0117);
        r = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
        umask(old_umask);
        if (r < 0)
                return log_error_errno(errno, "Failed to bind %s: %m", path);
        if (chmod(path, 0660) < 0)
                return log_error_errno(errno, "Failed to set the mode of %s: %m", path);
        if (listen(fd, SOMAXCONN) < 0)
                return log_error_errno(errno, "Failed to listen on %s: %m", path);

        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* HOST:PORT, [V6]:PORT, or :PORT / *:PORT for every address. */
static int open_inet_socket(const char *address, int *ret_fd) {
        struct addrinfo hints = {
                .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_STREAM,
        };
        _cleanup_free_ char *host = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct addrinfo *ai = NULL;
        const char *colon, *port;
        int r, one = 1;

        colon = strrchr(address, ':');
        if (!colon || colon[1] == '\0')
                return log_error_errno(EINVAL, "Listen address \"%s\" is neither unix:PATH nor HOST:PORT.", address);
        port = colon + 1;
        if (address[0] == '[' && colon > address && colon[-1] == ']')
                host = strndup(address + 1, colon - address - 2);
        else
                host = strndup(address, colon - address);
        if (!host)
                return log_oom();

        r = getaddrinfo(isempty(host) || streq(host, "*") ? NULL : host, port, &hints, &ai);
        if (r != 0)
                return log_error_errno(EINVAL, "Cannot resolve listen address \"%s\": %s", address, gai_strerror(r));

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0)
                r = log_error_errno(errno, "Failed to create a socket: %m");
        else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
                r = log_error_errno(errno, "Failed to set SO_REUSEADDR: %m");
        else if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
                r = log_error_errno(errno, "Failed to bind %s: %m", address);
        else if (listen(fd, SOMAXCONN) < 0)
                r = log_error_errno(errno, "Failed to listen on %s: %m", address);
        freeaddrinfo(ai);
        if (r < 0)
                return r;

        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int manager_listen(Manager *m, char **listen) {
        int n, r;

        n = sd_listen_fds(true);
        if (n < 0)
                return log_error_errno(n, "Failed to read the sockets passed by systemd: %m");
        for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++) {
                bool is_unix;

                if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) > 0)
                        is_unix = true;
                else if (sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) > 0)
                        is_unix = false;
                else
                        return log_error_errno(EINVAL, "Passed fd %d is not a listening stream socket.", fd);
                r = manager_add_listener(m, fd, is_unix, NULL);
                if (r < 0)
                        return r;
        }
        if (n > 0)
                return 0;

        if (!listen)
                listen = m->config->api_listen;
        if (strv_length(listen) == 0)
                return log_error_errno(EINVAL, "No sockets passed and nothing to listen on: use --listen or [API] Listen=.");

        for (char **a = listen; *a; a++) {
                const char *path = startswith(*a, "unix:");
                int fd = -EBADF;

                if (!path && (*a)[0] == '/')
                        path = *a;
                if (path) {
                        _cleanup_free_ char *p = strdup(path);

                        if (!p)
                                return log_oom();
                        r = open_unix_socket(path, &fd);
                        if (r < 0)
                                return r;
                        r = manager_add_listener(m, fd, true, TAKE_PTR(p));
                } else {
                        r = open_inet_socket(*a, &fd);
                        if (r < 0)
                                return r;
                        r = manager_add_listener(m, fd, false, NULL);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

char *manager_status(Manager *m) {
        char *s;

        if (m->n_requests == 0)
                return strdup(m->status);
        if (asprintf(&s, "%s; %" PRIu64 " requests served", m->status, m->n_requests) < 0)
                return NULL;
        return s;
}

static int on_status_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        if (m->n_requests != m->n_requests_reported) {
                _cleanup_free_ char *status = manager_status(m);

                if (status)
                        (void) sd_notifyf(false, "STATUS=%s", status);
                m->n_requests_reported = m->n_requests;
        }
        return sd_event_source_set_time_relative(s, STATUS_INTERVAL);
}

static int manager_build_status(Manager *m) {
        _cleanup_free_ char *addresses = NULL;
        const char *store;

        for (size_t i = 0; i < m->n_listeners; i++) {
                char *t;

                if (asprintf(&t, "%s%s%s", strempty(addresses), addresses ? ", " : "",
                             m->listeners[i]->description) < 0)
                        return -ENOMEM;
                free(addresses);
                addresses = t;
        }

        /* A PostgreSQL URL may carry a password: name only the backend. */
        store = store_backend(m->store) == STORE_BACKEND_SQLITE ? m->config->store_path : NULL;
        if (asprintf(&m->status, "Listening on %s; store %s%s%s", strempty(addresses),
                     store_backend_to_string(store_backend(m->store)), store ? ":" : "", strempty(store)) < 0)
                return -ENOMEM;
        return 0;
}

int manager_new(sd_event *event, const Config *config, char **listen, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        const char *where;
        sigset_t mask;
        size_t head;
        int r;

        /* Children (git for diffs) are reaped through the loop, which needs SIGCHLD blocked. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block SIGCHLD: %m");

        m = calloc(1, sizeof(Manager));
        if (!m)
                return log_oom();
        m->event = sd_event_ref(event);
        m->config = config;
        m->uid = getuid();
        /* MHD answers by itself, in HTML, when a request outgrows its per-connection
         * memory pool. The front door lets through only heads within its limits,
         * so make the pool hold the largest: twice the head (MHD starts each
         * request's read buffer at half the pool), the cookies' copy (at most the
         * head again), a record of up to 64 bytes per header field, query
         * parameter, cookie and trailer field, and room for the answer's header. */
        head = http_head_max_bytes(&(HttpLimits) { .max_head_bytes = (size_t) config->api_max_header_bytes,
                                                    .max_target_bytes = API_URI_MAX });
        m->connection_memory_limit = MAX(head * 3 + HTTP_POOL_RECORDS * 64 + 64 * 1024, (size_t) 128 * 1024);

        where = config->store_backend == STORE_BACKEND_SQLITE ? config->store_path : config->store_url;
        r = store_open(config->store_backend, where, &m->store);
        if (r < 0)
                return log_error_errno(r, "Failed to open the %s store%s%s: %m",
                                       store_backend_to_string(config->store_backend),
                                       config->store_backend == STORE_BACKEND_SQLITE ? " " : "",
                                       config->store_backend == STORE_BACKEND_SQLITE ? strempty(where) : "");

        /* Not fatal: only diffs need it. */
        m->git_ok = sandbox_identity_init(config, &m->agent) >= 0 && sandbox_identity_self(&m->caller) >= 0;
        m->git = (GitContext) { .config = config, .agent = &m->agent, .caller = &m->caller };

        r = manager_listen(m, listen);
        if (r < 0)
                return r;
        raise_fd_limit(m);

        r = manager_build_status(m);
        if (r < 0)
                return log_oom();

        r = bus_setup(m);
        if (r < 0)
                return r;

        r = sd_event_add_time_relative(event, &m->status_timer, CLOCK_MONOTONIC, STATUS_INTERVAL, USEC_PER_SEC,
                                       on_status_timer, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the status timer: %m");
        r = sd_event_source_set_enabled(m->status_timer, SD_EVENT_ON);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the status timer: %m");

        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;

        /* The listeners first: their streams and waiting requests end with them. */
        for (size_t i = 0; i < m->n_listeners; i++)
                listener_free(m->listeners[i]);
        free(m->listeners);
        follow_done(m);
        bus_done(m);
        sd_event_source_disable_unref(m->status_timer);
        store_free(m->store);
        sandbox_identity_done(&m->agent);
        sandbox_identity_done(&m->caller);
        free(m->status);
        sd_event_unref(m->event);
        return mfree(m);
}
