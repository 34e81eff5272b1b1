/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* JSON helpers on json-c: a strict front end for untrusted text, the field
 * dispatcher, timestamps, and the JSON forms of tasks, contracts and events. */

#include <limits.h>
#include <math.h>
#include <time.h>

#include "conf.h"
#include "json-util.h"
#include "utf8.h"

#define JSON_DEPTH_MAX 64

/* json-c's strict mode still takes NaN, Infinity, "1.", raw control
 * characters in strings and lone surrogate escapes, and clamps integers that
 * do not fit. So the text is first checked against RFC 8259 here, and json-c
 * only builds the tree from text already known to be good. */
typedef struct JsonScanner {
        const uint8_t *p, *end;
        const char *error;
} JsonScanner;

static bool scan_fail(JsonScanner *s, const char *error) {
        s->error = error;
        return false;
}

static void scan_whitespace(JsonScanner *s) {
        while (s->p < s->end && IN_SET(*s->p, ' ', '\t', '\n', '\r'))
                s->p++;
}

static int hex_value(uint8_t c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static bool scan_u_escape(JsonScanner *s, unsigned *ret) {
        unsigned v = 0;

        /* s->p is at the 'u' */
        if (s->end - s->p < 5)
                return scan_fail(s, "truncated \\u escape");
        for (int i = 1; i <= 4; i++) {
                int h = hex_value(s->p[i]);
                if (h < 0)
                        return scan_fail(s, "invalid \\u escape");
                v = v << 4 | (unsigned) h;
        }
        s->p += 5;
        *ret = v;
        return true;
}

static bool scan_string(JsonScanner *s) {
        s->p++;         /* the opening quote */
        while (s->p < s->end) {
                uint8_t c = *s->p;

                if (c == '"') {
                        s->p++;
                        return true;
                }
                if (c < 0x20)
                        return scan_fail(s, "control character in string");
                if (c != '\\') {
                        s->p++;
                        continue;
                }
                if (++s->p >= s->end)
                        break;
                if (*s->p != '\0' && strchr("\"\\/bfnrt", *s->p)) {
                        s->p++;
                        continue;
                }
                if (*s->p != 'u')
                        return scan_fail(s, "invalid escape in string");

                unsigned u, low;
                if (!scan_u_escape(s, &u))
                        return false;
                if (u >= 0xDC00 && u <= 0xDFFF)
                        return scan_fail(s, "unpaired UTF-16 surrogate");
                if (u >= 0xD800 && u <= 0xDBFF) {
                        if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
                                return scan_fail(s, "unpaired UTF-16 surrogate");
                        s->p++;
                        if (!scan_u_escape(s, &low))
                                return false;
                        if (low < 0xDC00 || low > 0xDFFF)
                                return scan_fail(s, "unpaired UTF-16 surrogate");
                }
        }
        return scan_fail(s, "unterminated string");
}

static size_t scan_digits(JsonScanner *s) {
        const uint8_t *start = s->p;

        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
                s->p++;
        return (size_t) (s->p - start);
}

static bool scan_number(JsonScanner *s) {
        bool negative = false, integer = true;
        const uint8_t *digits;
        size_t n;

        if (*s->p == '-') {
                negative = true;
                s->p++;
        }
        digits = s->p;
        n = scan_digits(s);
        if (n == 0)
                return scan_fail(s, "invalid number");
        if (n > 1 && digits[0] == '0')
                return scan_fail(s, "number with a leading zero");
        if (s->p < s->end && *s->p == '.') {
                s->p++;
                integer = false;
                if (scan_digits(s) == 0)
                        return scan_fail(s, "invalid number");
        }
        if (s->p < s->end && IN_SET(*s->p, 'e', 'E')) {
                s->p++;
                integer = false;
                if (s->p < s->end && IN_SET(*s->p, '+', '-'))
                        s->p++;
                if (scan_digits(s) == 0)
                        return scan_fail(s, "invalid number");
        }

        /* json-c would silently clamp an integer outside int64/uint64; equal-length
         * decimal strings compare like the numbers they spell. */
        if (integer) {
                const char *limit = negative ? "9223372036854775808" : "18446744073709551615";
                size_t k = strlen(limit);

                if (n > k || (n == k && memcmp(digits, limit, k) > 0))
                        return scan_fail(s, "integer out of range");
        }
        return true;
}

static bool scan_literal(JsonScanner *s, const char *word) {
        size_t n = strlen(word);

        if ((size_t) (s->end - s->p) < n || memcmp(s->p, word, n) != 0)
                return scan_fail(s, "invalid literal");
        s->p += n;
        return true;
}

static bool scan_value(JsonScanner *s, unsigned depth);

static bool scan_container(JsonScanner *s, unsigned depth, uint8_t close, bool object) {
        s->p++;         /* the opening bracket */
        scan_whitespace(s);
        if (s->p < s->end && *s->p == close) {
                s->p++;
                return true;
        }
        for (;;) {
                if (object) {
                        if (s->p >= s->end || *s->p != '"')
                                return scan_fail(s, "expected a string key");
                        if (!scan_string(s))
                                return false;
                        scan_whitespace(s);
                        if (s->p >= s->end || *s->p != ':')
                                return scan_fail(s, "expected ':'");
                        s->p++;
                }
                if (!scan_value(s, depth + 1))
                        return false;
                if (s->p >= s->end)
                        return scan_fail(s, "unexpected end of input");
                if (*s->p == close) {
                        s->p++;
                        return true;
                }
                if (*s->p != ',')
                        return scan_fail(s, object ? "expected ',' or '}'" : "expected ',' or ']'");
                s->p++;
                scan_whitespace(s);
        }
}

/* Leaves s->p after the value and the white space that follows it. Depth
 * counts as json-c counts it: every value on the path, leaves included. */
static bool scan_value(JsonScanner *s, unsigned depth) {
        bool ok;

        if (depth > JSON_DEPTH_MAX)
                return scan_fail(s, "nesting too deep");
        scan_whitespace(s);
        if (s->p >= s->end)
                return scan_fail(s, "unexpected end of input");

        switch (*s->p) {
        case '{':
                ok = scan_container(s, depth, '}', true);
                break;
        case '[':
                ok = scan_container(s, depth, ']', false);
                break;
        case '"':
                ok = scan_string(s);
                break;
        case 't':
                ok = scan_literal(s, "true");
                break;
        case 'f':
                ok = scan_literal(s, "false");
                break;
        case 'n':
                ok = scan_literal(s, "null");
                break;
        default:
                if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
                        ok = scan_number(s);
                else
                        ok = scan_fail(s, "unexpected character");
        }
        if (ok)
                scan_whitespace(s);
        return ok;
}

static void json_tokener_freep(struct json_tokener **t) {
        if (*t)
                json_tokener_free(*t);
}

int json_parse_strict(const char *buf, size_t len, json_object **ret, const char **ret_error) {
        _cleanup_(json_tokener_freep) struct json_tokener *tok = NULL;
        _cleanup_json_ json_object *o = NULL;
        JsonScanner s = { .p = (const uint8_t *) buf, .end = (const uint8_t *) buf + len };
        enum json_tokener_error e;
        const char *error = NULL;

        if (len == 0)
                error = "empty input";
        else if (len > INT_MAX)
                error = "input too large";
        else if (memchr(buf, '\0', len))
                error = "NUL byte in input";
        else if (!utf8_is_valid(s.p, len))
                error = "invalid UTF-8";
        else if (!scan_value(&s, 1))
                error = s.error;
        else if (s.p != s.end)
                error = "trailing data after the JSON value";
        if (error) {
                if (ret_error)
                        *ret_error = error;
                return -EBADMSG;
        }

        tok = json_tokener_new_ex(JSON_DEPTH_MAX);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        o = json_tokener_parse_ex(tok, buf, (int) len);
        e = json_tokener_get_error(tok);
        /* A bare number at the very end might go on; a NUL tells json-c it does not. */
        if (e == json_tokener_continue) {
                o = json_tokener_parse_ex(tok, "", 1);
                e = json_tokener_get_error(tok);
        }
        if (e != json_tokener_success) {
                /* The scanner accepted it, so this is json-c running out of memory or disagreeing. */
                if (ret_error)
                        *ret_error = json_tokener_error_desc(e);
                return -EBADMSG;
        }

        /* "null" parses to a NULL object, which is how json-c spells JSON null. */
        if (ret)
                *ret = TAKE_PTR(o);
        return 0;
}

int json_dispatch(json_object *obj, const JsonDispatchField table[], JsonDispatchFlags flags, void *userdata,
                  const char **ret_bad_field) {
        const char *bad = NULL;
        int r = -EINVAL;

        if (!json_object_is_type(obj, json_type_object)) {
                r = -EINVAL;    /* no field to name: the value itself is not an object */
                goto fail;
        }

        json_object_object_foreach(obj, key, v) {
                const JsonDispatchField *f;

                for (f = table; f->name; f++)
                        if (streq(f->name, key))
                                break;
                if (!f->name) {
                        if (flags & JSON_ALLOW_EXTRA)
                                continue;
                        bad = key;
                        r = -EINVAL;
                        goto fail;
                }
                if (!v && !(f->flags & JSON_NULLABLE)) {
                        bad = f->name;
                        r = -EINVAL;
                        goto fail;
                }
                r = f->callback(f->name, v, (uint8_t *) userdata + f->offset);
                if (r < 0) {
                        bad = f->name;
                        goto fail;
                }
        }

        for (const JsonDispatchField *f = table; f->name; f++)
                if ((f->flags & JSON_MANDATORY) && !json_object_object_get_ex(obj, f->name, NULL)) {
                        bad = f->name;
                        r = -EINVAL;
                        goto fail;
                }
        return 0;

fail:
        if (ret_bad_field && r == -EINVAL)
                *ret_bad_field = bad;
        return r;
}

int json_dispatch_string(const char *name, json_object *v, void *p) {
        const char *s;

        if (!v)
                return free_and_strdup(p, NULL);
        if (!json_object_is_type(v, json_type_string))
                return -EINVAL;
        s = json_object_get_string(v);
        /* A \u0000 would cut the C string short behind the caller's back. */
        if (strlen(s) != (size_t) json_object_get_string_len(v))
                return -EINVAL;
        return free_and_strdup(p, s);
}

int json_dispatch_strv(const char *name, json_object *v, void *p) {
        _cleanup_(strv_freep) char **l = NULL;
        char ***ret = p;
        size_t n;

        if (!v) {
                *ret = strv_free(*ret);
                return 0;
        }
        if (!json_object_is_type(v, json_type_array))
                return -EINVAL;
        n = json_object_array_length(v);
        /* Even an empty array gives a vector: [] and null mean different things to a store. */
        l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(v, i);
                const char *s;

                if (!json_object_is_type(e, json_type_string))
                        return -EINVAL;
                s = json_object_get_string(e);
                if (strlen(s) != (size_t) json_object_get_string_len(e))
                        return -EINVAL;
                l[i] = strdup(s);
                if (!l[i])
                        return -ENOMEM;
        }
        strv_free(*ret);
        *ret = TAKE_PTR(l);
        return 0;
}

int json_dispatch_bool(const char *name, json_object *v, void *p) {
        if (!v) {
                *(bool *) p = false;
                return 0;
        }
        if (!json_object_is_type(v, json_type_boolean))
                return -EINVAL;
        *(bool *) p = json_object_get_boolean(v);
        return 0;
}

/* json-c keeps integers above INT64_MAX as uint64 and get_int64 clamps them. */
static int json_get_int64(json_object *v, int64_t *ret) {
        int64_t i;

        if (!json_object_is_type(v, json_type_int))
                return -EINVAL;
        i = json_object_get_int64(v);
        if (i == INT64_MAX && json_object_get_uint64(v) > (uint64_t) INT64_MAX)
                return -EINVAL;
        *ret = i;
        return 0;
}

int json_dispatch_uint(const char *name, json_object *v, void *p) {
        int64_t i;

        if (!v) {
                *(int *) p = 0;
                return 0;
        }
        if (json_get_int64(v, &i) < 0 || i < 0 || i > INT_MAX)
                return -EINVAL;
        *(int *) p = (int) i;
        return 0;
}

int json_dispatch_int64(const char *name, json_object *v, void *p) {
        int64_t i;

        if (!v) {
                *(int64_t *) p = 0;
                return 0;
        }
        if (json_get_int64(v, &i) < 0)
                return -EINVAL;
        *(int64_t *) p = i;
        return 0;
}

int json_dispatch_double(const char *name, json_object *v, void *p) {
        double d;

        if (!v) {
                *(double *) p = 0;
                return 0;
        }
        if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
                return -EINVAL;
        d = json_object_get_double(v);
        /* 1e400 is valid JSON but not a number we can store. */
        if (!isfinite(d))
                return -EINVAL;
        *(double *) p = d;
        return 0;
}

#define DEFINE_JSON_DISPATCH_ENUM(name, type, from_string, invalid)     \
        int name(const char *field, json_object *v, void *p) {          \
                type t;                                                 \
                                                                        \
                if (!v) {                                               \
                        *(type *) p = invalid;                          \
                        return 0;                                       \
                }                                                       \
                if (!json_object_is_type(v, json_type_string))          \
                        return -EINVAL;                                 \
                t = from_string(json_object_get_string(v));             \
                if (t < 0)                                              \
                        return -EINVAL;                                 \
                *(type *) p = t;                                        \
                return 0;                                               \
        }

DEFINE_JSON_DISPATCH_ENUM(json_dispatch_task_state, TaskState, task_state_from_string, _TASK_STATE_INVALID);
DEFINE_JSON_DISPATCH_ENUM(json_dispatch_contract_phase, ContractPhase, contract_phase_from_string, _PHASE_INVALID);
DEFINE_JSON_DISPATCH_ENUM(json_dispatch_contract_type, ContractType, contract_type_from_string,
                          _CONTRACT_TYPE_INVALID);
DEFINE_JSON_DISPATCH_ENUM(json_dispatch_contract_status, ContractStatus, contract_status_from_string,
                          _CONTRACT_STATUS_INVALID);

/* NULL for 0 ("not set"), so json_add_string() turns it into null. */
char *format_timestamp(char buf[static TIMESTAMP_STRING_MAX], usec_t t) {
        time_t sec;
        struct tm tm;
        size_t n;

        if (t == 0)
                return NULL;
        sec = (time_t) (t / USEC_PER_SEC);
        if (!gmtime_r(&sec, &tm))
                return NULL;
        n = strftime(buf, TIMESTAMP_STRING_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
        if (n == 0)
                return NULL;
        if ((size_t) snprintf(buf + n, TIMESTAMP_STRING_MAX - n, ".%06uZ", (unsigned) (t % USEC_PER_SEC)) >=
            TIMESTAMP_STRING_MAX - n)
                return NULL;
        return buf;
}

/* Adds v (NULL: JSON null) under key; takes v in every case. */
static int json_add(json_object *o, const char *key, json_object *v) {
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

/* For values that are never null: a NULL from json-c is a failed allocation. */
static int json_add_new(json_object *o, const char *key, json_object *v) {
        if (!v)
                return -ENOMEM;
        return json_add(o, key, v);
}

int json_add_string(json_object *o, const char *key, const char *value) {
        if (!value)
                return json_add(o, key, NULL);
        return json_add_new(o, key, json_object_new_string(value));
}

int json_add_timestamp(json_object *o, const char *key, usec_t t) {
        char buf[TIMESTAMP_STRING_MAX];

        return json_add_string(o, key, format_timestamp(buf, t));
}

/* "max_cost_usd": null when there is no limit (0), like max_iterations. */
static int json_add_cost_limit(json_object *o, double max_cost_usd) {
        if (max_cost_usd <= 0)
                return json_add(o, "max_cost_usd", NULL);
        return json_add_new(o, "max_cost_usd", json_object_new_double(max_cost_usd));
}

int json_new_strv(char *const *l, json_object **ret) {
        _cleanup_json_ json_object *a = NULL;

        a = json_object_new_array_ext((int) MIN(strv_length(l), (size_t) INT_MAX));
        if (!a)
                return -ENOMEM;
        for (char *const *i = l; i && *i; i++) {
                json_object *s = json_object_new_string(*i);

                if (!s || json_object_array_add(a, s) < 0) {
                        json_object_put(s);
                        return -ENOMEM;
                }
        }
        *ret = TAKE_PTR(a);
        return 0;
}

/* "copy_files": an array in any case, so clients need not tell null from []. */
static int json_add_strv(json_object *o, const char *key, char *const *l) {
        json_object *a;
        int r;

        r = json_new_strv(l, &a);
        if (r < 0)
                return r;
        return json_add(o, key, a);
}

/* A limit of the agent's: null for the configuration's. */
static int json_add_limit(json_object *o, const char *key, int64_t v) {
        return v > 0 ? json_add_new(o, key, json_object_new_int64(v)) : json_add(o, key, NULL);
}

int task_to_json(const Task *t, json_object **ret) {
        _cleanup_json_ json_object *o = NULL;
        int r = 0;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;

        /* Each step runs only while the previous ones succeeded; r keeps the first failure. */
        r = r ?: json_add_string(o, "id", t->id);
        r = r ?: json_add_string(o, "owner", t->owner);
        r = r ?: json_add_string(o, "name", t->name);
        r = r ?: json_add_string(o, "plan", t->plan);
        r = r ?: json_add_string(o, "repo", t->repo);
        r = r ?: json_add_string(o, "base_branch", t->base_branch);
        r = r ?: json_add_string(o, "target_branch", t->target_branch);
        r = r ?: json_add_strv(o, "copy_files", t->copy_files);
        r = r ?: json_add_string(o, "parent_task_id", t->parent_task_id);
        r = r ?: json_add_string(o, "contract_id", t->contract_id);
        r = r ?: json_add_new(o, "is_supervisor", json_object_new_boolean(t->is_supervisor));
        r = r ?: json_add_new(o, "autonomous_loop", json_object_new_boolean(t->autonomous_loop));
        r = r ?: (t->max_iterations > 0 ? json_add_new(o, "max_iterations", json_object_new_int(t->max_iterations))
                                        : json_add(o, "max_iterations", NULL));
        r = r ?: json_add_new(o, "iteration_count", json_object_new_int(t->iteration_count));
        r = r ?: json_add_string(o, "status", task_state_to_string(t->status));
        r = r ?: json_add_string(o, "error", t->error);
        r = r ?: json_add_string(o, "worktree", t->worktree);
        r = r ?: json_add_string(o, "branch", t->branch);
        r = r ?: json_add_string(o, "session_id", t->session_id);
        r = r ?: json_add_new(o, "cost_usd", json_object_new_double(t->cost_usd));
        r = r ?: json_add_cost_limit(o, t->max_cost_usd);
        r = r ?: json_add_string(o, "base_commit", t->base_commit);
        r = r ?: json_add_limit(o, "tasks_max", t->tasks_max);
        r = r ?: json_add_limit(o, "memory_max", t->memory_max);
        r = r ?: json_add_limit(o, "cpu_weight", t->cpu_weight);
        r = r ?: json_add_timestamp(o, "created_at", t->created_at);
        r = r ?: json_add_timestamp(o, "updated_at", t->updated_at);
        r = r ?: json_add_timestamp(o, "started_at", t->started_at);
        r = r ?: json_add_timestamp(o, "completed_at", t->completed_at);
        r = r ?: json_add_new(o, "version", json_object_new_int64(t->version));
        if (r < 0)
                return r;

        *ret = TAKE_PTR(o);
        return 0;
}

int contract_to_json(const Contract *c, json_object **ret) {
        _cleanup_json_ json_object *o = NULL, *phases = NULL;
        const ContractPhase *p;
        size_t n;
        int r = 0;

        phases = json_object_new_array();
        if (!phases)
                return -ENOMEM;
        n = contract_type_phases(c->type, &p);
        for (size_t i = 0; i < n; i++) {
                json_object *s = json_object_new_string(contract_phase_to_string(p[i]));
                if (!s || json_object_array_add(phases, s) < 0) {
                        json_object_put(s);
                        return -ENOMEM;
                }
        }

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        r = r ?: json_add_string(o, "id", c->id);
        r = r ?: json_add_string(o, "owner", c->owner);
        r = r ?: json_add_string(o, "name", c->name);
        r = r ?: json_add_string(o, "description", c->description);
        r = r ?: json_add_string(o, "type", contract_type_to_string(c->type));
        r = r ?: json_add_string(o, "phase", contract_phase_to_string(c->phase));
        r = r ?: json_add_string(o, "status", contract_status_to_string(c->status));
        r = r ?: json_add_new(o, "autonomous_loop", json_object_new_boolean(c->autonomous_loop));
        r = r ?: json_add_string(o, "supervisor_task_id", c->supervisor_task_id);
        r = r ?: json_add_cost_limit(o, c->max_cost_usd);
        r = r ?: json_add(o, "phases", TAKE_PTR(phases));
        r = r ?: json_add_timestamp(o, "created_at", c->created_at);
        r = r ?: json_add_timestamp(o, "updated_at", c->updated_at);
        r = r ?: json_add_new(o, "version", json_object_new_int64(c->version));
        if (r < 0)
                return r;

        *ret = TAKE_PTR(o);
        return 0;
}

int event_to_json(const Event *e, json_object **ret) {
        _cleanup_json_ json_object *o = NULL;
        json_object *data = NULL;
        int r = 0;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        r = r ?: json_add_new(o, "seq", json_object_new_int64(e->seq));
        r = r ?: json_add_string(o, "type", e->type);
        r = r ?: json_add_timestamp(o, "created_at", e->created_at);
        if (r < 0)
                return r;

        /* The payload is meant to be JSON; anything else is still shown, as a string. */
        if (e->payload) {
                r = json_parse_strict(e->payload, strlen(e->payload), &data, NULL);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        data = json_object_new_string(e->payload);
                        if (!data)
                                return -ENOMEM;
                }
        }
        r = json_add(o, "data", data);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(o);
        return 0;
}
