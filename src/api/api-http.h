/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The HTTP layer of makima-api: one libmicrohttpd daemon per listening socket
 * driven from sd_event, the per-request state, routing, authentication, and
 * the helpers resource handlers answer with. */
#pragma once

#include <microhttpd.h>
#include <json-c/json.h>

#include <systemd/sd-event.h>

#include "http-request.h"
#include "json-util.h"
#include "macro.h"
#include "model.h"

typedef struct Manager Manager;
typedef struct Listener Listener;
typedef struct Store Store;
typedef struct Conn Conn;
typedef struct IpCount IpCount;

/* A connection we suspended: an event stream waiting for events, or a
 * request waiting for a child process. The listener keeps a list of them,
 * because libmicrohttpd must not be stopped while any is suspended: on the
 * way out each is resumed with `stopping` set, and finishes at once. */
typedef struct Suspension {
        Listener *listener;
        struct MHD_Connection *connection;
        bool suspended;
        bool stopping;
        struct Suspension *prev, *next;
} Suspension;

/* Links s into the listener's list (once, when its owner is made). */
void suspension_link(Suspension *s, Listener *l, struct MHD_Connection *connection);
/* Unlinks it (when its owner is freed); a suspended connection is resumed. */
void suspension_unlink(Suspension *s);
/* Only from an access handler or content reader callback of the connection. */
void suspension_suspend(Suspension *s);
/* Any time: MHD then runs the connection again on its next turn. */
void suspension_resume(Suspension *s);

/* Longest request target (path and query) we read; longer gets 414. */
#define API_URI_MAX 8192U

/* A listening socket. makima-api accepts on it itself (api-accept.c) and
 * hands each connection to its libmicrohttpd daemon only through the front
 * door (api-conn.c), which checks every request's framing first. */
struct Listener {
        Manager *manager;
        int fd;
        bool is_unix;
        char *description;              /* "unix:/run/makima/api.sock", "127.0.0.1:8080" */
        char *unlink_path;              /* a socket file we created, removed at exit */
        struct MHD_Daemon *daemon;
        sd_event_source *io_source;     /* MHD's epoll fd */
        sd_event_source *timer_source;  /* when MHD wants to run next */
        Suspension *suspensions;

        /* The front door. */
        HttpLimits limits;
        size_t head_cap;                /* bytes a request head may take, and one more */
        sd_event_source *accept_source;
        sd_event_source *accept_retry;
        bool accept_full;               /* paused at MaxConnections */
        Conn *conns;
        unsigned n_conns;
        Conn *adding;                   /* the one MHD_add_connection() is adding */
        Conn *dead;                     /* MHD is done with them: freed after MHD_run() */
        Conn *shut_waiters;             /* their EOF for MHD waits for its next run */
        uint64_t mhd_runs;
        IpCount **ip_counts;            /* per client address (TCP) */
        uint64_t ip_key;
        char *refusal;                  /* the answer to a client over MaxConnectionsPerIP */
        size_t refusal_size;
};

/* Takes ownership of fd (closed with the listener, never shut down). */
int listener_new(Manager *m, int fd, bool is_unix, const char *description, Listener **ret);
Listener *listener_free(Listener *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(Listener *, listener_free);
/* Runs MHD on the next turn of the loop; not at once, as we may be inside one of its callbacks. */
void listener_kick(Listener *l);

typedef struct Request Request;
typedef int (*RouteHandler)(Request *r);

typedef struct Request {
        Manager *manager;
        Listener *listener;
        Conn *conn;                     /* the front door's connection it came on */
        uint64_t seq;                   /* its number on that connection, from 0 */
        struct MHD_Connection *connection;
        const char *method;
        const char *url;

        /* The one {id} of the route's path, if any. */
        char id[ID_STRING_MAX];
        RouteHandler handler;

        /* Who is asking. An admin sees every owner's objects. */
        const char *owner;
        char *owner_buf;
        bool admin;

        json_object *body;              /* the parsed body of POST and PATCH, else NULL (also
                                         * when a route that may take one got none) */

        /* A handler that cannot answer at once (it waits for a child) suspends
         * the connection and sets `resume`, called when it is resumed, and
         * `job`, freed with the request. */
        Suspension suspension;
        RouteHandler resume;
        void *job;
        void (*job_free)(void *job);

        /* Internal to api-http.c */
        bool started;
        bool has_body;
        bool wants_body;
        bool body_optional;
        bool body_too_large;
        char *buf;
        size_t buf_size, buf_alloc;
        unsigned error_status;          /* an answer decided before the body was read */
        const char *error_code;
        char *error_message;
        const char *error_header;       /* and a header to send with it */
        char *error_header_value;
        unsigned status;                /* what we answered (0: nothing yet) */
        bool queued;
} Request;

/* The reply helpers queue the answer and return 0; on an error the request
 * gets a generic 500. A handler returns what they return, or a negative errno
 * for a failure it did not answer (then the client gets 500 internal). */
int request_reply_json(Request *r, unsigned status, json_object *o);
/* 201 with Location: <collection>/<id>. */
int request_reply_created(Request *r, json_object *o, const char *collection, const char *id);
int request_reply_no_content(Request *r);
/* 202 with Location: <location>. */
int request_reply_accepted(Request *r, json_object *o, const char *location);
/* Any other body: takes over `body` (malloc'd, may be NULL when size is 0);
 * `headers` (may be NULL) are name, value pairs ended by NULL. */
int request_reply_take(Request *r, unsigned status, const char *content_type, char *body, size_t size,
                       const char *const *headers);
/* Queues a response built by the caller (a stream); the request keeps no reference. */
int request_reply_response(Request *r, unsigned status, struct MHD_Response *response);
int request_reply_error(Request *r, unsigned status, const char *code, const char *format, ...) _printf_(4, 5);
/* 400 invalid_field, the message naming the field. */
#define request_reply_field(r, field, format, ...) \
        request_reply_error((r), 400, "invalid_field", "field '%s': " format, (field), ##__VA_ARGS__)
/* Maps a store failure to an answer: -ENOENT 404, -ESTALE 409 stale_version,
 * -EBUSY 409 busy (with `busy_message`), -ENOSPC 507 store_full, anything
 * else 500 with the store's words logged, not sent. */
#define API_STORE_FULL_MESSAGE \
        "The store is full: there is no room left where it keeps its data, so nothing was written. " \
        "Try again once space has been freed there."
int request_reply_store_error(Request *r, int error, const char *what, const char *busy_message);
/* A 404 for an object that does not exist or that the caller may not see. */
int request_reply_not_found(Request *r, const char *what);

/* Query parameters. Each returns 0 (found or defaulted), or answers 400 and
 * returns -EINVAL. Unknown query parameters are rejected by the router. */
int request_query_size(Request *r, const char *name, size_t def, size_t min, size_t max, size_t *ret);
int request_query_int64(Request *r, const char *name, int64_t def, int64_t *ret);
/* 1/true/yes or 0/false/no. */
int request_query_bool(Request *r, const char *name, bool def, bool *ret);
const char *request_query(Request *r, const char *name);
/* The expected version from "If-Match": "N" (or -1 if none); answers 400 on a bad header. */
int request_if_match(Request *r, int64_t *ret);
/* Compares the version the client read (`body_version` from the body, -1 if
 * absent, and If-Match) with the object's; answers 409 stale_version (or 400)
 * and returns < 0 when they differ. */
int request_check_version(Request *r, int64_t body_version, int64_t current, const char *what);

/* True when the caller may see an object of this owner. */
static inline bool request_may_see(const Request *r, const char *owner) {
        return r->admin || streq_ptr(r->owner, owner);
}

/* api-resource.c: steps the per-resource handlers share. */
/* Checks the result `error` of reading the object of the URL and that the
 * caller may see it (its `owner`); answers the store error or 404 and returns
 * < 0 otherwise. */
int request_check_found(Request *r, int error, const char *owner, const char *what);
/* True when the body has this field (even null). */
bool request_has_field(Request *r, const char *field);
/* A "version" in the body must be positive; answers 400 and returns -EINVAL otherwise. */
int request_check_body_version(Request *r, int64_t version);
typedef int (*RequestToJson)(const void *object, json_object **ret);
typedef int (*RequestItemToJson)(const void *items, size_t i, json_object **ret);
/* Answers `object` as JSON; with status 201 also its Location, collection/id. */
int request_reply_object(Request *r, unsigned status, const void *object, RequestToJson to_json,
                         const char *collection, const char *id);
/* Answers 200 with { key: [ the n items ] }; the caller keeps the items. */
int request_reply_list(Request *r, const char *key, const void *items, size_t n, RequestItemToJson to_json);
/* The ?limit= (default 100, at most 1000) and ?offset= of a list. */
int request_query_page(Request *r, size_t *ret_limit, size_t *ret_offset);
/* Checks the result `error` of reading an object the body names in `field`
 * and that the caller may see it (its `owner`): answers 400 "no such `what`"
 * or the store error and returns < 0 otherwise. */
int request_check_reference(Request *r, int error, const char *owner, const char *field, const char *what);

/* What the generic steps below need to know of a resource (tasks, contracts). */
typedef struct Resource {
        const char *what;               /* "task", as errors name it */
        const char *collection;         /* "/api/v1/tasks", for Location */
        int (*get)(Store *s, const char *id, void **ret);
        int (*delete)(Store *s, const char *id, int64_t version);
        const char *(*id)(const void *object);
        const char *(*owner)(const void *object);
        int64_t (*version)(const void *object);
        void (*free)(void *object);
        RequestToJson to_json;
} Resource;
/* Defines `name`_resource, the Resource of the model's `Type` (with an id,
 * owner and version) through the store's store_`name`_get() and _delete()
 * and json-util's `name`_to_json(). */
#define DEFINE_RESOURCE(name, Type, what_, collection_)                                 \
        static int name##_resource_get(Store *s, const char *id, void **ret) {          \
                return store_##name##_get(s, id, (Type **) ret);                        \
        }                                                                               \
        static const char *name##_resource_id(const void *o) {                          \
                return ((const Type *) o)->id;                                          \
        }                                                                               \
        static const char *name##_resource_owner(const void *o) {                       \
                return ((const Type *) o)->owner;                                       \
        }                                                                               \
        static int64_t name##_resource_version(const void *o) {                         \
                return ((const Type *) o)->version;                                     \
        }                                                                               \
        static void name##_resource_free(void *o) {                                     \
                name##_free(o);                                                         \
        }                                                                               \
        static int name##_resource_json(const void *o, json_object **ret) {             \
                return name##_to_json(o, ret);                                          \
        }                                                                               \
        static const Resource name##_resource = {                                       \
                .what = what_,                                                          \
                .collection = collection_,                                              \
                .get = name##_resource_get,                                             \
                .delete = store_##name##_delete,                                        \
                .id = name##_resource_id,                                               \
                .owner = name##_resource_owner,                                         \
                .version = name##_resource_version,                                     \
                .free = name##_resource_free,                                           \
                .to_json = name##_resource_json,                                        \
        }
/* Reads the object of the URL, answering 404 when it does not exist or the
 * caller may not see it; the caller frees it with res->free. */
int request_resource_load(Request *r, const Resource *res, void **ret);
/* The same, for a change written at `version` (the body's, or -1 for any):
 * also answers 409 when the object is at another one. */
int request_resource_load_at(Request *r, const Resource *res, int64_t version, void **ret);
/* Answers the object as JSON; with status 201 also its Location. */
int request_resource_reply(Request *r, const Resource *res, unsigned status, const void *object);
/* GET of the object of the URL. */
int request_resource_get(Request *r, const Resource *res);
/* DELETE of the object of the URL, at the ?version= if given; `busy_message`
 * answers the store's -EBUSY. */
int request_resource_delete(Request *r, const Resource *res, const char *busy_message);

/* Dispatches r->body by the table; answers 400 (naming the field) on a bad
 * or unknown field and returns -EINVAL. */
int request_dispatch_body(Request *r, const JsonDispatchField table[], void *userdata);
/* The owner new objects of this request belong to: `requested` (the body's
 * "owner", may be NULL) for an admin, else the caller. Answers 400 for a
 * non-admin naming an owner, or a bad name. */
int request_new_owner(Request *r, const char *requested, const char **ret);

/* The resource handlers, one file per resource. */
int api_health_get(Request *r);
int api_contracts_list(Request *r);
int api_contracts_create(Request *r);
int api_contract_get(Request *r);
int api_contract_patch(Request *r);
int api_contract_delete(Request *r);
int api_contract_phase(Request *r);
int api_contract_events(Request *r);
int api_tasks_list(Request *r);
int api_tasks_create(Request *r);
int api_task_get(Request *r);
int api_task_patch(Request *r);
int api_task_delete(Request *r);
int api_task_events(Request *r);
int api_task_pause(Request *r);
int api_task_resume(Request *r);
int api_task_interrupt(Request *r);
int api_task_cancel(Request *r);
int api_task_send(Request *r);
int api_task_diff(Request *r);
int api_control_request_get(Request *r);
int api_notifications_list(Request *r);
int api_notification_read(Request *r);
int api_tokens_create(Request *r);
int api_token_delete(Request *r);
int api_repos_list(Request *r);
int api_repos_grant(Request *r);
int api_repo_revoke(Request *r);

/* Answers 403 (or 400) and returns < 0 unless owner may name repo in a task
 * (api-repos.c): administrators may name anything; owners the granted
 * local repositories and anonymous URLs. */
int api_repo_check(Request *r, const char *owner, const char *repo);

/* Shared by the resources: the task of the URL (answering 404 when it does
 * not exist or the caller may not see it), the {"events":[…]} answer, the
 * payload of a "status" or "phase" event, and string checks. */
int api_task_load(Request *r, Task **ret);
int api_reply_events(Request *r, int log, const char *id);
/* The event stream of a task (api-events.c): ?follow=1 on its events. */
int api_task_events_follow(Request *r, const Task *t);
int api_transition_payload(const char *from, const char *to, char **ret);
/* A "max_cost_usd" the body gave: 0 (or null, which dispatches as 0) for
 * no limit, else a positive number. Answers 400 naming the field and
 * returns -EINVAL otherwise. */
int api_check_cost_limit(Request *r, double max_cost_usd);
bool api_ref_name_is_valid(const char *s);
bool api_owner_name_is_valid(const char *s);
