/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libmicrohttpd glue: a daemon per listening socket, driven from sd_event
 * through MHD's epoll fd and MHD_get_timeout(), which gets its connections
 * from the front door (api-accept.c, api-conn.c); the life of a request
 * (limits, routing, authentication, body, dispatch). */

#include "api-accept.h"
#include "api-conn.h"
#include "api-http.h"
#include "api-manager.h"
#include "log.h"
#include "sha256.h"

/* ---- routing ---- */

typedef enum RouteFlags {
        ROUTE_PUBLIC = 1 << 0,          /* no authentication */
        ROUTE_ADMIN = 1 << 1,           /* administrators only */
        ROUTE_BODY = 1 << 2,            /* takes a JSON body */
        ROUTE_BODY_OPTIONAL = 1 << 3,   /* takes a JSON body, or none */
} RouteFlags;

typedef struct Route {
        const char *method;
        const char *path;               /* "{id}" matches one id segment */
        RouteHandler handler;
        RouteFlags flags;
        const char *what;               /* the object {id} names, for 404 messages */
        const char *params;             /* query parameters it accepts, space separated */
} Route;

static const Route routes[] = {
        { "GET",    "/api/v1/health",                 api_health_get,       ROUTE_PUBLIC, NULL,       ""                   },
        { "GET",    "/api/v1/contracts",              api_contracts_list,   0,            NULL,       "limit offset status" },
        { "POST",   "/api/v1/contracts",              api_contracts_create, ROUTE_BODY,   NULL,       ""                   },
        { "GET",    "/api/v1/contracts/{id}",         api_contract_get,     0,            "contract", ""                   },
        { "PATCH",  "/api/v1/contracts/{id}",         api_contract_patch,   ROUTE_BODY,   "contract", ""                   },
        { "DELETE", "/api/v1/contracts/{id}",         api_contract_delete,  0,            "contract", "version"            },
        { "POST",   "/api/v1/contracts/{id}/phase",   api_contract_phase,   ROUTE_BODY,   "contract", ""                   },
        { "GET",    "/api/v1/contracts/{id}/events",  api_contract_events,  0,            "contract", "after limit"        },
        { "GET",    "/api/v1/tasks",                  api_tasks_list,       0,            NULL,       "limit offset contract status parent" },
        { "POST",   "/api/v1/tasks",                  api_tasks_create,     ROUTE_BODY,   NULL,       ""                   },
        { "GET",    "/api/v1/tasks/{id}",             api_task_get,         0,            "task",     ""                   },
        { "PATCH",  "/api/v1/tasks/{id}",             api_task_patch,       ROUTE_BODY,   "task",     ""                   },
        { "DELETE", "/api/v1/tasks/{id}",             api_task_delete,      0,            "task",     "version"            },
        { "GET",    "/api/v1/tasks/{id}/events",      api_task_events,      0,            "task",     "after limit follow" },
        { "POST",   "/api/v1/tasks/{id}/pause",       api_task_pause,       0,            "task",     ""                   },
        { "POST",   "/api/v1/tasks/{id}/resume",      api_task_resume,      ROUTE_BODY_OPTIONAL, "task", ""            },
        { "POST",   "/api/v1/tasks/{id}/interrupt",   api_task_interrupt,   0,            "task",     ""                   },
        { "POST",   "/api/v1/tasks/{id}/cancel",      api_task_cancel,      0,            "task",     ""                   },
        { "POST",   "/api/v1/tasks/{id}/send",        api_task_send,        ROUTE_BODY,   "task",     ""                   },
        { "GET",    "/api/v1/tasks/{id}/diff",        api_task_diff,        0,            "task",     "format"             },
        { "GET",    "/api/v1/control-requests/{id}",  api_control_request_get, 0,         "control request", ""            },
        { "GET",    "/api/v1/notifications",          api_notifications_list, 0,          NULL,       "limit unread"       },
        { "POST",   "/api/v1/notifications/{id}/read", api_notification_read, 0,          "notification", ""               },
        { "POST",   "/api/v1/tokens",                 api_tokens_create,    ROUTE_ADMIN | ROUTE_BODY, NULL, ""             },
        { "DELETE", "/api/v1/tokens/{id}",            api_token_delete,     ROUTE_ADMIN,  "token",    ""                   },
        { "GET",    "/api/v1/repos",                  api_repos_list,       0,            NULL,       "limit offset owner" },
        { "POST",   "/api/v1/repos",                  api_repos_grant,      ROUTE_ADMIN | ROUTE_BODY, NULL, ""             },
        { "DELETE", "/api/v1/repos/{id}",             api_repo_revoke,      ROUTE_ADMIN,  "repository grant", ""           },
};

/* Matches url against a route path; an "{id}" segment is copied to ret_id
 * (empty if it cannot be an id, so it is answered with 404). */
static bool path_match(const char *pattern, const char *url, char ret_id[static ID_STRING_MAX]) {
        for (;;) {
                const char *p = strchrnul(pattern, '/'), *u = strchrnul(url, '/');
                size_t pl = p - pattern, ul = u - url;

                if (pl == 4 && strneq(pattern, "{id}", 4)) {
                        if (ul == 0)
                                return false;
                        if (ul < ID_STRING_MAX) {
                                memcpy(ret_id, url, ul);
                                ret_id[ul] = '\0';
                        } else
                                ret_id[0] = '\0';
                } else if (pl != ul || !strneq(pattern, url, pl))
                        return false;

                if (*p == '\0' || *u == '\0')
                        return *p == *u;
                pattern = p + 1;
                url = u + 1;
        }
}

/* Finds the route; on a path known with other methods returns NULL and the
 * methods it does take in ret_allow. */
static const Route *route_find(const char *method, const char *url, char ret_id[static ID_STRING_MAX],
                               char ret_allow[static 64]) {
        const char *m = streq(method, "HEAD") ? "GET" : method;

        ret_allow[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                if (!path_match(routes[i].path, url, ret_id))
                        continue;
                if (streq(routes[i].method, m))
                        return routes + i;
                if (ret_allow[0])
                        strcat(ret_allow, ", ");
                strcat(ret_allow, routes[i].method);
                if (streq(routes[i].method, "GET"))
                        strcat(ret_allow, ", HEAD");
        }
        return NULL;
}

static bool word_in(const char *word, const char *words) {
        size_t l = strlen(word);

        for (const char *p = words; (p = strstr(p, word)); p += l)
                if ((p == words || p[-1] == ' ') && (p[l] == ' ' || p[l] == '\0'))
                        return true;
        return false;
}

/* ---- suspended connections ---- */

void suspension_link(Suspension *s, Listener *l, struct MHD_Connection *connection) {
        s->listener = l;
        s->connection = connection;
        s->prev = NULL;
        s->next = l->suspensions;
        if (s->next)
                s->next->prev = s;
        l->suspensions = s;
}

void suspension_unlink(Suspension *s) {
        if (!s->listener)
                return;
        suspension_resume(s);
        if (s->prev)
                s->prev->next = s->next;
        else
                s->listener->suspensions = s->next;
        if (s->next)
                s->next->prev = s->prev;
        s->listener = NULL;
        s->prev = s->next = NULL;
}

void suspension_suspend(Suspension *s) {
        if (s->suspended || s->stopping)
                return;
        MHD_suspend_connection(s->connection);
        s->suspended = true;
}

void suspension_resume(Suspension *s) {
        if (!s->suspended)
                return;
        MHD_resume_connection(s->connection);
        s->suspended = false;
        /* Without threads MHD has no wake-up channel of its own: it takes the
         * connection back only when it runs next, so make that soon. */
        listener_kick(s->listener);
}

/* ---- decisions made before the body ---- */

/* Remembers an answer decided in request_start(): it is queued at once when
 * a body follows, else once the request is complete. */
_printf_(4, 5)
static void request_fail(Request *r, unsigned status, const char *code, const char *format, ...) {
        va_list ap;

        r->error_status = status;
        r->error_code = code;
        va_start(ap, format);
        if (vasprintf(&r->error_message, format, ap) < 0)
                r->error_message = NULL;
        va_end(ap);
}

static void request_fail_header(Request *r, const char *header, const char *value) {
        r->error_header = header;
        r->error_header_value = strdup(value);
        if (!r->error_header_value)
                r->error_header = NULL;
}

/* ---- authentication ---- */

/* Sets r->owner and r->admin, or decides on 401, 403 or 500. */
static void request_authenticate(Request *r, const Route *route) {
        const char *auth, *token;
        char hash[SHA256_HEX_SIZE];
        int k;

        if (route->flags & ROUTE_PUBLIC)
                return;

        if (r->listener->is_unix) {
                const Peer *p = r->conn ? conn_peer(r->conn) : NULL;

                if (p && p->admin) {
                        r->admin = true;
                        r->owner = p->name;
                        return;
                }
        }

        auth = MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!auth) {
                request_fail_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"makima\"");
                return request_fail(r, 401, "unauthorized", "Authentication required: send Authorization: Bearer TOKEN.");
        }
        token = strncasecmp(auth, "Bearer ", 7) == 0 ? auth + 7 : NULL;
        if (token)
                token += strspn(token, " ");
        if (isempty(token)) {
                request_fail_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"makima\", error=\"invalid_request\"");
                return request_fail(r, 401, "unauthorized", "Only Bearer tokens are accepted.");
        }

        sha256_hex(token, strlen(token), hash);
        k = store_token_lookup(r->manager->store, hash, &r->owner_buf);
        if (k == -ENOENT) {
                request_fail_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"makima\", error=\"invalid_token\"");
                return request_fail(r, 401, "unauthorized", "The token is not valid or has been revoked.");
        }
        if (k < 0) {
                log_warning_errno(k, "Failed to look up a token: %s", strna(store_last_error(r->manager->store)));
                return request_fail(r, 500, "internal", "Internal error.");
        }
        r->owner = r->owner_buf;

        if (route->flags & ROUTE_ADMIN)
                return request_fail(r, 403, "forbidden", "This needs an administrator (root, or group %s on the Unix socket).",
                                    strna(r->manager->config->api_admin_group));
}

/* ---- the life of a request ---- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *connection) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        Listener *l = cls;
        Request *r;

        r = calloc(1, sizeof(Request));
        if (!r)
                return NULL;
        r->listener = l;
        r->manager = l->manager;
        r->connection = connection;
        if (ci && ci->socket_context)
                conn_request_begin(ci->socket_context, r);
        suspension_link(&r->suspension, l, connection);
        return r;
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
        Request *r = *con_cls;

        if (!r)
                return;
        if (r->conn)
                conn_request_end(r->conn, r);
        suspension_unlink(&r->suspension);
        if (r->job_free)
                r->job_free(r->job);
        if (r->body)
                json_object_put(r->body);
        free(r->buf);
        free(r->owner_buf);
        free(r->error_message);
        free(r->error_header_value);
        free(r);
        *con_cls = NULL;
}

typedef struct ParamCheck {
        const char *allowed;
        const char *bad;
} ParamCheck;

static enum MHD_Result check_param(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        ParamCheck *c = cls;

        if (isempty(key) || !word_in(key, c->allowed)) {
                c->bad = strempty(key);
                return MHD_NO;
        }
        return MHD_YES;
}

static bool content_type_is_json(const char *t) {
        const char *p;

        if (!t)
                return false;
        t += strspn(t, " \t");
        if (strncasecmp(t, "application/json", 16) != 0)
                return false;
        p = t + 16;
        p += strspn(p, " \t");
        return *p == '\0' || *p == ';';
}

/* Called once the headers are in. Decides everything that does not need the
 * body; an error is answered at once when a body follows (MHD then closes
 * the connection without reading it), else after the request is complete, so
 * that the connection stays alive. The head's size and framing were checked
 * by the front door before MHD saw it. */
static void request_start(Request *r) {
        const Config *c = r->manager->config;
        const Route *route;
        const char *s;
        char allow[64];
        uint64_t length = 0;
        ParamCheck pc;

        s = MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (s)
                length = strtoull(s, NULL, 10);
        r->has_body = length > 0 ||
                MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);

        route = route_find(r->method, r->url, r->id, allow);
        if (!route && allow[0]) {
                request_fail_header(r, MHD_HTTP_HEADER_ALLOW, allow);
                return request_fail(r, 405, "method_not_allowed", "%s is not allowed here; allowed: %s.", r->method, allow);
        }
        if (!route)
                return request_fail(r, 404, "not_found", "No such resource: %s", r->url);
        r->handler = route->handler;
        r->wants_body = route->flags & (ROUTE_BODY | ROUTE_BODY_OPTIONAL);
        r->body_optional = route->flags & ROUTE_BODY_OPTIONAL;

        request_authenticate(r, route);
        if (r->error_status)
                return;

        pc = (ParamCheck) { .allowed = route->params };
        (void) MHD_get_connection_values(r->connection, MHD_GET_ARGUMENT_KIND, check_param, &pc);
        if (pc.bad)
                return request_fail(r, 400, "invalid_parameter", "Unknown query parameter '%s'.", pc.bad);

        if (route->what && !id_is_valid(r->id))
                return request_fail(r, 404, "not_found", "No such %s.", route->what);

        if (r->has_body && r->wants_body &&
            !content_type_is_json(MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)))
                return request_fail(r, 415, "unsupported_media_type", "The body must be application/json.");
        if (length > c->api_max_body_bytes)
                return request_fail(r, 413, "payload_too_large", "The body is larger than %" PRIu64 " bytes.",
                                    c->api_max_body_bytes);
}

static void request_append_body(Request *r, const char *data, size_t size) {
        uint64_t max = r->manager->config->api_max_body_bytes;

        /* Over the limit we keep reading, to answer 413, but keep nothing. */
        if (r->body_too_large || r->error_status)
                return;
        if (size > max - r->buf_size) {
                r->body_too_large = true;
                r->buf = mfree(r->buf);
                r->buf_size = r->buf_alloc = 0;
                return;
        }
        if (r->buf_size + size + 1 > r->buf_alloc) {
                size_t n = MAX(MAX(r->buf_alloc * 2, r->buf_size + size + 1), (size_t) 1024);
                char *b = realloc(r->buf, MIN(n, (size_t) max + 1));

                if (!b) {
                        r->body_too_large = true;
                        r->buf = mfree(r->buf);
                        r->buf_size = r->buf_alloc = 0;
                        return;
                }
                r->buf = b;
                r->buf_alloc = MIN(n, (size_t) max + 1);
        }
        memcpy(r->buf + r->buf_size, data, size);
        r->buf_size += size;
}

/* Runs a handler (or the continuation of one that waited). Unless it
 * suspended the connection to wait, it must have answered. */
static void request_run(Request *r, RouteHandler handler) {
        int k;

        k = handler(r);
        if (r->status == 0 && r->resume && r->suspension.suspended)
                return;
        r->resume = NULL;
        if (r->status == 0) {
                if (k < 0)
                        log_warning_errno(k, "%s %s failed: %m", r->method, r->url);
                else
                        log_warning("%s %s: the handler gave no answer.", r->method, r->url);
                (void) request_reply_error(r, 500, "internal", "Internal error.");
        }
}

static void request_finish(Request *r) {
        const char *error = NULL;
        int k;

        if (r->error_status) {
                /* Decided in request_start(): answer it now. */
                (void) request_reply_error(r, r->error_status, r->error_code, "%s", strna(r->error_message));
                return;
        }
        if (r->body_too_large) {
                (void) request_reply_error(r, 413, "payload_too_large", "The body is larger than %" PRIu64 " bytes.",
                                           r->manager->config->api_max_body_bytes);
                return;
        }
        if (r->wants_body && !(r->body_optional && r->buf_size == 0)) {
                if (r->buf_size == 0) {
                        (void) request_reply_error(r, 400, "bad_json", "A JSON object is required as the body.");
                        return;
                }
                k = json_parse_strict(r->buf, r->buf_size, &r->body, &error);
                if (k < 0) {
                        if (k == -ENOMEM)
                                (void) request_reply_error(r, 500, "internal", "Out of memory.");
                        else
                                (void) request_reply_error(r, 400, "bad_json", "Invalid JSON: %s", strna(error));
                        return;
                }
                if (!json_object_is_type(r->body, json_type_object)) {
                        (void) request_reply_error(r, 400, "bad_json", "The body must be a JSON object.");
                        return;
                }
        }

        request_run(r, r->handler);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        Request *r = *con_cls;

        if (!r)
                return MHD_NO;          /* on_uri() ran out of memory: drop the connection */

        if (!r->started) {
                r->started = true;
                r->method = method;
                r->url = url;
                request_start(r);
                if (r->error_status && r->has_body)
                        request_finish(r);
                return r->status == 0 || r->queued ? MHD_YES : MHD_NO;
        }

        if (*upload_data_size > 0) {
                request_append_body(r, upload_data, *upload_data_size);
                *upload_data_size = 0;
                return MHD_YES;
        }

        if (r->resume) {
                /* Called again after the handler suspended the connection. */
                if (r->suspension.suspended)
                        return MHD_YES;
                request_run(r, r->resume);
        } else if (r->status == 0) {
                r->manager->n_requests++;
                request_finish(r);
        }
        return r->queued || r->suspension.suspended ? MHD_YES : MHD_NO;
}

/* ---- the daemons, driven from sd_event ---- */

static void on_mhd_log(void *cls, const char *format, va_list ap) {
        _cleanup_free_ char *m = NULL;

        /* MHD gets its connections as socket pairs (from the front door),
         * cannot tell that they are not TCP, and says so for every answer
         * when it tries TCP_NODELAY and TCP_CORK on them. Nothing is delayed:
         * the front relays at once, with TCP_NODELAY on the client's socket. */
        if (startswith(format, "Setting %s option to %s state failed") ||
            startswith(format, "Failed to push the data from buffers to the network"))
                return;
        if (vasprintf(&m, format, ap) < 0)
                return;
        m[strcspn(m, "\n")] = '\0';
        log_info("libmicrohttpd: %s", m);
}

/* MHD's connections come from the front door: this links each to the
 * front's connection it serves (MHD_add_connection() calls it at once). */
static void on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
        Listener *l = cls;

        if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
                *socket_context = l->adding;
                if (l->adding)
                        conn_mhd_started(l->adding, connection);
        } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
                conn_mhd_closed(*socket_context);
                *socket_context = NULL;
        }
}

/* Lets MHD do what is due, then arms the timer for when it next wants to run:
 * at once when it has work left over. */
static int listener_run(Listener *l) {
        MHD_UNSIGNED_LONG_LONG timeout;
        uint64_t now;
        int k;

        if (MHD_run(l->daemon) != MHD_YES)
                log_debug("MHD_run() failed on %s.", l->description);
        conn_mhd_ran(l);
        conn_free_dead(l);

        if (MHD_get_timeout(l->daemon, &timeout) != MHD_YES)
                return sd_event_source_set_enabled(l->timer_source, SD_EVENT_OFF);

        k = sd_event_now(l->manager->event, CLOCK_MONOTONIC, &now);
        if (k < 0)
                return log_error_errno(k, "Failed to read the clock: %m");
        k = sd_event_source_set_time(l->timer_source, now + (uint64_t) timeout * USEC_PER_MSEC);
        if (k < 0)
                return log_error_errno(k, "Failed to set the HTTP timer: %m");
        return sd_event_source_set_enabled(l->timer_source, SD_EVENT_ONESHOT);
}

void listener_kick(Listener *l) {
        uint64_t now;
        int k;

        if (!l->timer_source)
                return;
        k = sd_event_now(l->manager->event, CLOCK_MONOTONIC, &now);
        if (k >= 0)
                k = sd_event_source_set_time(l->timer_source, now);
        if (k >= 0)
                k = sd_event_source_set_enabled(l->timer_source, SD_EVENT_ONESHOT);
        if (k < 0)
                log_warning_errno(k, "Failed to schedule the HTTP daemon on %s: %m", l->description);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        return listener_run(userdata);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        return listener_run(userdata);
}

int listener_new(Manager *m, int fd, bool is_unix, const char *description, Listener **ret) {
        _cleanup_(listener_freep) Listener *l = NULL;
        const union MHD_DaemonInfo *info;
        int k;

        l = calloc(1, sizeof(Listener));
        if (!l) {
                (void) close(fd);
                return log_oom();
        }
        l->manager = m;
        l->fd = fd;
        l->is_unix = is_unix;
        l->description = strdup(description);
        if (!l->description)
                return log_oom();
        l->limits = (HttpLimits) {
                .max_head_bytes = (size_t) m->config->api_max_header_bytes,
                .max_target_bytes = API_URI_MAX,
                .max_body_bytes = m->config->api_max_body_bytes,
        };
        l->head_cap = http_head_max_bytes(&l->limits) + 1;

        struct MHD_OptionItem options[] = {
                { MHD_OPTION_EXTERNAL_LOGGER, (intptr_t) on_mhd_log, l },
                /* The front door keeps the count, and the time: MHD sees a
                 * connection only once its first request passed, and idles
                 * only where the front says so. */
                { MHD_OPTION_CONNECTION_LIMIT, m->config->api_max_connections, NULL },
                { MHD_OPTION_CONNECTION_TIMEOUT, 0, NULL },
                { MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t) m->connection_memory_limit, NULL },
                { MHD_OPTION_URI_LOG_CALLBACK, (intptr_t) on_uri, l },
                { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t) on_completed, l },
                { MHD_OPTION_NOTIFY_CONNECTION, (intptr_t) on_connection, l },
                { MHD_OPTION_END, 0, NULL },
        };

        /* No internal threads: MHD runs only when our loop calls it, through its
         * epoll fd. No listening socket either: we accept, so that MHD never
         * reads a byte the front door has not checked (and never shuts down
         * the listening socket, which systemd needs intact to activate us again). */
        l->daemon = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME |
                                     MHD_USE_NO_LISTEN_SOCKET,
                                     0, NULL, NULL, on_request, l,
                                     MHD_OPTION_ARRAY, options,
                                     MHD_OPTION_END);
        if (!l->daemon)
                return log_error_errno(EINVAL, "Failed to start the HTTP daemon on %s.", description);

        info = MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info)
                return log_error_errno(EINVAL, "Failed to get the epoll fd of the HTTP daemon.");

        k = sd_event_add_io(m->event, &l->io_source, info->epoll_fd, EPOLLIN, on_io, l);
        if (k < 0)
                return log_error_errno(k, "Failed to watch the HTTP daemon: %m");
        /* Accuracy 1 µs, not sd-event's default of 250 ms: a kick (a new
         * connection from the front door, a resumed one) must run MHD on the
         * next turn, not whenever timers are coalesced. */
        k = sd_event_add_time(m->event, &l->timer_source, CLOCK_MONOTONIC, 0, 1, on_timer, l);
        if (k < 0)
                return log_error_errno(k, "Failed to add the HTTP timer: %m");
        k = listener_run(l);
        if (k < 0)
                return k;
        k = accept_start(l);
        if (k < 0)
                return k;

        *ret = TAKE_PTR(l);
        return 0;
}

Listener *listener_free(Listener *l) {
        if (!l)
                return NULL;

        l->io_source = sd_event_source_disable_unref(l->io_source);
        l->timer_source = sd_event_source_disable_unref(l->timer_source);
        l->accept_source = sd_event_source_disable_unref(l->accept_source);
        if (l->daemon) {
                /* MHD must not stop with a connection suspended: wake every
                 * waiting one, marked to finish at once; stopping then frees them. */
                for (Suspension *s = l->suspensions; s; s = s->next) {
                        s->stopping = true;
                        suspension_resume(s);
                }
                MHD_stop_daemon(l->daemon);
        }
        /* What MHD did not free is not ours to reach any more. */
        while (l->suspensions)
                suspension_unlink(l->suspensions);
        /* MHD has closed its connections (and said so): the front's go now. */
        l->dead = NULL;
        while (l->conns)
                conn_free(l->conns);
        accept_stop(l);
        if (l->fd >= 0)
                (void) close(l->fd);
        if (l->unlink_path)
                (void) unlink(l->unlink_path);
        free(l->unlink_path);
        free(l->description);
        return mfree(l);
}
