/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What resource handlers use to read a request and answer it: JSON answers
 * and errors, store failures mapped to status codes, query parameters,
 * If-Match, body fields with messages that name the field. */

#include "api-http.h"
#include "api-manager.h"
#include "json-util.h"
#include "log.h"

/* ---- answers ---- */

static void request_log(Request *r, unsigned status) {
        if (log_get_max_level() >= LOG_DEBUG)
                log_debug("%s %s %u%s%s", r->method, r->url, status, r->owner ? " owner=" : "", strempty(r->owner));
}

int request_reply_response(Request *r, unsigned status, struct MHD_Response *response) {
        r->status = status;
        r->queued = MHD_queue_response(r->connection, status, response) == MHD_YES;
        MHD_destroy_response(response);
        request_log(r, status);
        return 0;
}

int request_reply_take(Request *r, unsigned status, const char *content_type, char *body, size_t size,
                       const char *const *headers) {
        struct MHD_Response *response;

        r->status = status;
        response = MHD_create_response_from_buffer(size, body ?: (char *) "",
                                                   body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!response) {
                free(body);
                return -ENOMEM;
        }
        if (content_type && MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES)
                goto fail;
        for (const char *const *h = headers; h && h[0]; h += 2)
                if (h[1] && MHD_add_response_header(response, h[0], h[1]) != MHD_YES)
                        goto fail;
        return request_reply_response(r, status, response);

fail:
        MHD_destroy_response(response);
        return -ENOMEM;
}

static int request_queue(Request *r, unsigned status, json_object *o, const char *header, const char *value) {
        const char *text;
        size_t len = 0;
        char *body = NULL;

        r->status = status;
        if (o) {
                text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
                if (!text)
                        return -ENOMEM;
                body = malloc(len + 1);
                if (!body)
                        return -ENOMEM;
                memcpy(body, text, len);
                body[len++] = '\n';
        }

        return request_reply_take(r, status, o ? "application/json" : NULL, body, len,
                                  (const char *const[]) { header, value, NULL });
}

int request_reply_json(Request *r, unsigned status, json_object *o) {
        return request_queue(r, status, o, NULL, NULL);
}

int request_reply_created(Request *r, json_object *o, const char *collection, const char *id) {
        _cleanup_free_ char *location = NULL;

        if (asprintf(&location, "%s/%s", collection, id) < 0)
                return -ENOMEM;
        return request_queue(r, 201, o, MHD_HTTP_HEADER_LOCATION, location);
}

int request_reply_no_content(Request *r) {
        return request_queue(r, 204, NULL, NULL, NULL);
}

int request_reply_accepted(Request *r, json_object *o, const char *location) {
        return request_queue(r, 202, o, MHD_HTTP_HEADER_LOCATION, location);
}

int request_reply_error(Request *r, unsigned status, const char *code, const char *format, ...) {
        _cleanup_json_ json_object *o = NULL;
        _cleanup_free_ char *message = NULL;
        json_object *e;
        va_list ap;
        int k;

        va_start(ap, format);
        k = vasprintf(&message, format, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;

        if (status >= 500)
                log_warning("%s %s: %u %s: %s", strna(r->method), strna(r->url), status, code, message);

        o = json_object_new_object();
        e = json_object_new_object();
        if (!o || !e || json_object_object_add(o, "error", e) < 0) {
                json_object_put(e);
                return -ENOMEM;
        }
        if (json_add_string(e, "code", code) < 0 || json_add_string(e, "message", message) < 0)
                return -ENOMEM;

        return request_queue(r, status, o, r->error_status ? r->error_header : NULL, r->error_header_value);
}

int request_reply_store_error(Request *r, int error, const char *what, const char *busy_message) {
        switch (error) {
        case -ENOENT:
                return request_reply_not_found(r, what);
        case -ESTALE:
                return request_reply_error(r, 409, "stale_version",
                                           "The %s was changed by somebody else; read it again and retry.", what);
        case -EBUSY:
                return request_reply_error(r, 409, "busy", "%s", busy_message ?: "The object is busy.");
        case -ENOSPC:
                /* The write was rolled back: the same request succeeds once there is room. */
                log_warning("%s %s: the store is full, the %s was not written: %s", r->method, r->url, what,
                            strna(store_last_error(r->manager->store)));
                /* Whatever /health found a moment ago, it looks again. */
                r->manager->writable_checked_at = 0;
                return request_reply_error(r, 507, "store_full", API_STORE_FULL_MESSAGE);
        default:
                /* The store's words may name files or servers: they go to the log only. */
                log_warning_errno(error, "%s %s: store failure on the %s: %m: %s", r->method, r->url, what,
                                  strna(store_last_error(r->manager->store)));
                return request_reply_error(r, 500, "internal", "Internal error.");
        }
}

int request_reply_not_found(Request *r, const char *what) {
        return request_reply_error(r, 404, "not_found", "No such %s.", what);
}

int api_transition_payload(const char *from, const char *to, char **ret) {
        _cleanup_json_ json_object *o = NULL;
        char *s;

        o = json_object_new_object();
        if (!o || json_add_string(o, "from", from) < 0 || json_add_string(o, "to", to) < 0)
                return -ENOMEM;
        s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int api_check_cost_limit(Request *r, double max_cost_usd) {
        /* The dispatcher took only finite numbers. */
        if (max_cost_usd < 0)
                return request_reply_field(r, "max_cost_usd",
                                           "expected a non-negative number of US dollars (0 or null: no limit)"), -EINVAL;
        return 0;
}

static int event_item_json(const void *items, size_t i, json_object **ret) {
        return event_to_json((const Event *) items + i, ret);
}

int api_reply_events(Request *r, int log, const char *id) {
        Event *events = NULL;
        size_t n = 0, limit;
        int64_t after;
        int k;

        k = request_query_int64(r, "after", 0, &after);
        if (k < 0)
                return k;
        k = request_query_size(r, "limit", 100, 1, 1000, &limit);
        if (k < 0)
                return k;

        k = store_event_list(r->manager->store, log, id, after, limit, &events, &n);
        if (k < 0)
                return request_reply_store_error(r, k, log == EVENT_LOG_TASK ? "task" : "contract", NULL);

        k = request_reply_list(r, "events", events, n, event_item_json);
        event_array_free(events, n);
        return k;
}

/* ---- query parameters and headers ---- */

const char *request_query(Request *r, const char *name) {
        return MHD_lookup_connection_value(r->connection, MHD_GET_ARGUMENT_KIND, name);
}

static int parse_uint64(const char *s, uint64_t *ret) {
        uint64_t v = 0;

        if (isempty(s) || strlen(s) > 19 || s[strspn(s, "0123456789")] != '\0')
                return -EINVAL;
        for (; *s; s++)
                v = v * 10 + (uint64_t) (*s - '0');
        *ret = v;
        return 0;
}

int request_query_size(Request *r, const char *name, size_t def, size_t min, size_t max, size_t *ret) {
        const char *s = request_query(r, name);
        uint64_t v;

        if (!s) {
                *ret = def;
                return 0;
        }
        if (parse_uint64(s, &v) < 0 || v < min || v > max) {
                (void) request_reply_error(r, 400, "invalid_parameter",
                                           "query parameter '%s': expected an integer from %zu to %zu", name, min, max);
                return -EINVAL;
        }
        *ret = (size_t) v;
        return 0;
}

int request_query_int64(Request *r, const char *name, int64_t def, int64_t *ret) {
        const char *s = request_query(r, name);
        uint64_t v;

        if (!s) {
                *ret = def;
                return 0;
        }
        if (parse_uint64(s, &v) < 0 || v > INT64_MAX) {
                (void) request_reply_error(r, 400, "invalid_parameter",
                                           "query parameter '%s': expected a non-negative integer", name);
                return -EINVAL;
        }
        *ret = (int64_t) v;
        return 0;
}

int request_query_bool(Request *r, const char *name, bool def, bool *ret) {
        const char *s = request_query(r, name);

        if (!s)
                *ret = def;
        else if (streq(s, "1") || streq(s, "true") || streq(s, "yes"))
                *ret = true;
        else if (streq(s, "0") || streq(s, "false") || streq(s, "no"))
                *ret = false;
        else {
                (void) request_reply_error(r, 400, "invalid_parameter", "query parameter '%s': expected 1 or 0", name);
                return -EINVAL;
        }
        return 0;
}

int request_if_match(Request *r, int64_t *ret) {
        _cleanup_free_ char *t = NULL;
        const char *s;
        uint64_t v;
        size_t l;

        s = MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_MATCH);
        if (!s || streq(s, "*")) {
                *ret = -1;
                return 0;
        }
        s = startswith(s, "W/") ?: s;
        l = strlen(s);
        if (l >= 2 && s[0] == '"' && s[l - 1] == '"')
                t = strndup(s + 1, l - 2);
        else
                t = strdup(s);
        if (!t)
                return -ENOMEM;
        if (parse_uint64(t, &v) < 0 || v > INT64_MAX) {
                (void) request_reply_error(r, 400, "invalid_header", "If-Match: expected a version, like \"3\".");
                return -EINVAL;
        }
        *ret = (int64_t) v;
        return 0;
}

int request_check_version(Request *r, int64_t body_version, int64_t current, const char *what) {
        int64_t header_version;
        int k;

        k = request_if_match(r, &header_version);
        if (k < 0)
                return k;
        for (int i = 0; i < 2; i++) {
                int64_t v = i == 0 ? body_version : header_version;

                if (v >= 0 && v != current) {
                        (void) request_reply_error(r, 409, "stale_version",
                                                   "Version %" PRIi64 " of the %s is stale; it is at version %" PRIi64 " now.",
                                                   v, what, current);
                        return -ESTALE;
                }
        }
        return 0;
}

/* ---- body fields ---- */

static int enum_list(const char *(*to_string)(int), int n, char **ret) {
        char *s = NULL;

        for (int i = 0; i < n; i++) {
                char *t;

                if (asprintf(&t, "%s%s%s", strempty(s), s ? ", " : "", to_string(i)) < 0) {
                        free(s);
                        return -ENOMEM;
                }
                free(s);
                s = t;
        }
        *ret = s;
        return 0;
}

#define ENUM_LIST(name, max, ret) enum_list((const char *(*)(int)) name##_to_string, (max), (ret))

/* Says what the field's dispatcher wants, for the 400 message. */
static int field_expectation(const JsonDispatchField *f, char **ret) {
        _cleanup_free_ char *values = NULL;
        const char *what;
        int k = 0;

        if (f->callback == json_dispatch_string)
                what = "a string";
        else if (f->callback == json_dispatch_strv)
                what = "an array of strings";
        else if (f->callback == json_dispatch_bool)
                what = "true or false";
        else if (f->callback == json_dispatch_uint)
                what = "a non-negative integer";
        else if (f->callback == json_dispatch_int64)
                what = "an integer";
        else if (f->callback == json_dispatch_double)
                what = "a number";
        else {
                if (f->callback == json_dispatch_task_state)
                        k = ENUM_LIST(task_state, _TASK_STATE_MAX, &values);
                else if (f->callback == json_dispatch_contract_phase)
                        k = ENUM_LIST(contract_phase, _PHASE_MAX, &values);
                else if (f->callback == json_dispatch_contract_type)
                        k = ENUM_LIST(contract_type, _CONTRACT_TYPE_MAX, &values);
                else if (f->callback == json_dispatch_contract_status)
                        k = ENUM_LIST(contract_status, _CONTRACT_STATUS_MAX, &values);
                else
                        return asprintf(ret, "expected another value") < 0 ? -ENOMEM : 0;
                if (k < 0)
                        return k;
                return asprintf(ret, "expected one of %s", values) < 0 ? -ENOMEM : 0;
        }
        return asprintf(ret, "expected %s%s", what, f->flags & JSON_NULLABLE ? " or null" : "") < 0 ? -ENOMEM : 0;
}

int request_dispatch_body(Request *r, const JsonDispatchField table[], void *userdata) {
        _cleanup_free_ char *expected = NULL;
        const JsonDispatchField *f;
        const char *bad = NULL;
        int k;

        k = json_dispatch(r->body, table, 0, userdata, &bad);
        if (k != -EINVAL)
                return k;
        if (!bad)
                return request_reply_error(r, 400, "invalid_field", "The body does not fit this request."), -EINVAL;

        for (f = table; f->name; f++)
                if (streq(f->name, bad))
                        break;
        if (!f->name)
                (void) request_reply_error(r, 400, "invalid_field", "field '%s' is unknown or cannot be set here", bad);
        else if (!json_object_object_get_ex(r->body, bad, NULL))
                (void) request_reply_error(r, 400, "invalid_field", "field '%s' is required", bad);
        else {
                k = field_expectation(f, &expected);
                if (k < 0)
                        return k;
                (void) request_reply_field(r, bad, "%s", expected);
        }
        return -EINVAL;
}

int request_new_owner(Request *r, const char *requested, const char **ret) {
        if (!requested) {
                *ret = r->owner;
                return 0;
        }
        if (!r->admin) {
                (void) request_reply_field(r, "owner", "only an administrator may set the owner");
                return -EINVAL;
        }
        if (!api_owner_name_is_valid(requested)) {
                (void) request_reply_field(r, "owner",
                                           "expected 1 to 64 characters from A-Z a-z 0-9 . _ @ -, not starting with -");
                return -EINVAL;
        }
        *ret = requested;
        return 0;
}

/* ---- names ---- */

bool api_owner_name_is_valid(const char *s) {
        size_t l = strlen(strempty(s));

        return l >= 1 && l <= 64 && s[0] != '-' &&
                s[strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@-")] == '\0';
}

/* A branch name git would take (git-check-ref-format, roughly) that cannot
 * be read as an option by the programs the worker hands it to. */
bool api_ref_name_is_valid(const char *s) {
        size_t l = strlen(strempty(s));

        if (l == 0 || l > 255 || s[0] == '-' || s[0] == '/' || s[l - 1] == '/' || s[l - 1] == '.')
                return false;
        if (strstr(s, "..") || strstr(s, "//") || strstr(s, "@{") || strstr(s, "/.") || s[0] == '.')
                return false;
        if (l >= 5 && streq(s + l - 5, ".lock"))
                return false;
        for (const char *p = s; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == 0x7f || strchr("~^:?*[\\", *p))
                        return false;
        return true;
}
