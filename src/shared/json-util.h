/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* JSON helpers on json-c: strict parsing of untrusted text, a table-driven
 * dispatcher that turns an object's fields into struct members and names the
 * offending field when one is wrong (after sd_json_dispatch), timestamps, and
 * the JSON forms of tasks, contracts and events. */
#pragma once

#include <json-c/json.h>

#include "model.h"

static inline void json_object_putp(json_object **o) {
        if (*o)
                json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_object_putp)

/* Parses exactly one JSON value from buf[0..len): no trailing garbage (white
 * space allowed), nesting at most 64 deep, valid UTF-8. On failure returns
 * -EBADMSG and, if ret_error is not NULL, a short description. */
int json_parse_strict(const char *buf, size_t len, json_object **ret, const char **ret_error);

typedef enum JsonDispatchFlags {
        JSON_MANDATORY = 1 << 0,        /* the field must be present */
        JSON_NULLABLE = 1 << 1,         /* null is accepted (resets the member) */
        JSON_ALLOW_EXTRA = 1 << 2,      /* (table-wide flag) unknown fields are ignored, not an error */
} JsonDispatchFlags;

/* `p` points at the member (userdata + offset). Returns 0 or -EINVAL (bad
 * type or value) / -ENOMEM. */
typedef int (*JsonDispatchCallback)(const char *name, json_object *v, void *p);

typedef struct JsonDispatchField {
        const char *name;
        JsonDispatchCallback callback;
        size_t offset;
        JsonDispatchFlags flags;
} JsonDispatchField;

/* Dispatches the fields of `obj` (must be an object) by the table (ended by
 * an entry with name NULL). Fields not present are left alone. Unknown
 * fields are -EINVAL unless flags has JSON_ALLOW_EXTRA. On -EINVAL,
 * *ret_bad_field (if not NULL) names the field at fault (a static string or
 * a string owned by obj). */
int json_dispatch(json_object *obj, const JsonDispatchField table[], JsonDispatchFlags flags, void *userdata,
                  const char **ret_bad_field);

/* char **: a string (null → NULL with JSON_NULLABLE). */
int json_dispatch_string(const char *name, json_object *v, void *p);
/* char ***: an array of strings, a NULL-terminated vector (null → NULL with
 * JSON_NULLABLE; [] → an empty vector, not NULL). */
int json_dispatch_strv(const char *name, json_object *v, void *p);
/* bool *: true/false only. */
int json_dispatch_bool(const char *name, json_object *v, void *p);
/* int *: an integer that fits; non-negative. */
int json_dispatch_uint(const char *name, json_object *v, void *p);
/* int64_t *: any integer. */
int json_dispatch_int64(const char *name, json_object *v, void *p);
/* double *: any number. */
int json_dispatch_double(const char *name, json_object *v, void *p);
/* TaskState *, ContractPhase *, ContractType *, ContractStatus *: a string from the table. */
int json_dispatch_task_state(const char *name, json_object *v, void *p);
int json_dispatch_contract_phase(const char *name, json_object *v, void *p);
int json_dispatch_contract_type(const char *name, json_object *v, void *p);
int json_dispatch_contract_status(const char *name, json_object *v, void *p);

/* "2026-11-21T12:07:13.123456Z"; 0 → null in JSON. buf must hold 32 bytes. */
#define TIMESTAMP_STRING_MAX 32
char *format_timestamp(char buf[static TIMESTAMP_STRING_MAX], usec_t t);

/* The objects served by the API. Fields as documented in docs/API.md. */
int task_to_json(const Task *t, json_object **ret);
int contract_to_json(const Contract *c, json_object **ret);
/* {"seq":N,"type":"…","created_at":"…","data":<payload parsed, or string if not JSON>} */
int event_to_json(const Event *e, json_object **ret);

/* A JSON array of the strings of l (NULL: an empty array). */
int json_new_strv(char *const *l, json_object **ret);

/* Adds key → string (NULL → null). Returns 0 or -ENOMEM. */
int json_add_string(json_object *o, const char *key, const char *value);
int json_add_timestamp(json_object *o, const char *key, usec_t t);
