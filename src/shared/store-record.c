/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Records as rows: one table per record type says which member is which
 * column and how it is stored, and drives the conversion both ways and the
 * argument checks, so both backends store every field the same way. Also
 * the list queries, which both backends run unchanged. */

#include <limits.h>
#include <math.h>
#include <stdio.h>

#include "conf.h"
#include "json-util.h"
#include "store-internal.h"

typedef enum FieldKind {
        FIELD_STRING,                   /* char *, NULL ↔ NULL */
        FIELD_STRV,                     /* char **, a JSON array of strings; NULL ↔ NULL, an empty vector ↔ [] */
        FIELD_BOOL,
        FIELD_INT,                      /* int, not negative */
        FIELD_INT64,
        FIELD_USEC,                     /* usec_t, 0 ↔ NULL */
        FIELD_DOUBLE,                   /* finite */
        FIELD_TASK_STATE,               /* enums as their model.h strings */
        FIELD_CONTRACT_TYPE,
        FIELD_CONTRACT_PHASE,
        FIELD_CONTRACT_STATUS,
        FIELD_CONTROL_KIND,
} FieldKind;

typedef struct Field {
        FieldKind kind;
        size_t offset;
} Field;

#define FIELD(type, kind, member) { kind, offsetof(type, member) }

/* In TASK_COLUMNS order. */
static const Field task_fields[TASK_N_COLUMNS] = {
        FIELD(Task, FIELD_STRING, id),
        FIELD(Task, FIELD_USEC, created_at),
        FIELD(Task, FIELD_USEC, updated_at),
        FIELD(Task, FIELD_INT64, version),
        FIELD(Task, FIELD_STRING, owner),
        FIELD(Task, FIELD_STRING, name),
        FIELD(Task, FIELD_STRING, plan),
        FIELD(Task, FIELD_STRING, repo),
        FIELD(Task, FIELD_STRING, base_branch),
        FIELD(Task, FIELD_STRING, target_branch),
        FIELD(Task, FIELD_STRING, parent_task_id),
        FIELD(Task, FIELD_STRING, contract_id),
        FIELD(Task, FIELD_BOOL, is_supervisor),
        FIELD(Task, FIELD_BOOL, autonomous_loop),
        FIELD(Task, FIELD_INT, max_iterations),
        FIELD(Task, FIELD_INT, iteration_count),
        FIELD(Task, FIELD_TASK_STATE, status),
        FIELD(Task, FIELD_STRING, error),
        FIELD(Task, FIELD_STRING, worktree),
        FIELD(Task, FIELD_STRING, branch),
        FIELD(Task, FIELD_STRING, session_id),
        FIELD(Task, FIELD_DOUBLE, cost_usd),
        FIELD(Task, FIELD_USEC, started_at),
        FIELD(Task, FIELD_USEC, completed_at),
        FIELD(Task, FIELD_DOUBLE, max_cost_usd),
        FIELD(Task, FIELD_STRV, copy_files),
        FIELD(Task, FIELD_STRING, base_commit),
        FIELD(Task, FIELD_BOOL, admin),
        FIELD(Task, FIELD_INT, tasks_max),
        FIELD(Task, FIELD_INT64, memory_max),
        FIELD(Task, FIELD_INT, cpu_weight),
};

/* In CONTRACT_COLUMNS order. */
static const Field contract_fields[CONTRACT_N_COLUMNS] = {
        FIELD(Contract, FIELD_STRING, id),
        FIELD(Contract, FIELD_USEC, created_at),
        FIELD(Contract, FIELD_USEC, updated_at),
        FIELD(Contract, FIELD_INT64, version),
        FIELD(Contract, FIELD_STRING, owner),
        FIELD(Contract, FIELD_STRING, name),
        FIELD(Contract, FIELD_STRING, description),
        FIELD(Contract, FIELD_CONTRACT_TYPE, type),
        FIELD(Contract, FIELD_CONTRACT_PHASE, phase),
        FIELD(Contract, FIELD_CONTRACT_STATUS, status),
        FIELD(Contract, FIELD_BOOL, autonomous_loop),
        FIELD(Contract, FIELD_STRING, supervisor_task_id),
        FIELD(Contract, FIELD_DOUBLE, max_cost_usd),
};

/* <log>_id, seq, type, payload, created_at */
static const Field event_fields[EVENT_N_COLUMNS] = {
        FIELD(Event, FIELD_STRING, object_id),
        FIELD(Event, FIELD_INT64, seq),
        FIELD(Event, FIELD_STRING, type),
        FIELD(Event, FIELD_STRING, payload),
        FIELD(Event, FIELD_USEC, created_at),
};

/* In CONTROL_COLUMNS order. */
static const Field control_fields[CONTROL_N_COLUMNS] = {
        FIELD(ControlRequest, FIELD_STRING, id),
        FIELD(ControlRequest, FIELD_STRING, task_id),
        FIELD(ControlRequest, FIELD_CONTROL_KIND, kind),
        FIELD(ControlRequest, FIELD_STRING, payload),
        FIELD(ControlRequest, FIELD_USEC, created_at),
        FIELD(ControlRequest, FIELD_USEC, delivered_at),
        FIELD(ControlRequest, FIELD_USEC, done_at),
        FIELD(ControlRequest, FIELD_STRING, result),
};

/* In NOTIFICATION_COLUMNS order. */
static const Field notification_fields[NOTIFICATION_N_COLUMNS] = {
        FIELD(Notification, FIELD_STRING, id),
        FIELD(Notification, FIELD_STRING, owner),
        FIELD(Notification, FIELD_STRING, task_id),
        FIELD(Notification, FIELD_STRING, contract_id),
        FIELD(Notification, FIELD_STRING, level),
        FIELD(Notification, FIELD_STRING, message),
        FIELD(Notification, FIELD_USEC, created_at),
        FIELD(Notification, FIELD_USEC, read_at),
};

static const char *enum_to_string(FieldKind kind, int i) {
        switch (kind) {
        case FIELD_TASK_STATE:
                return task_state_to_string(i);
        case FIELD_CONTRACT_TYPE:
                return contract_type_to_string(i);
        case FIELD_CONTRACT_PHASE:
                return contract_phase_to_string(i);
        case FIELD_CONTRACT_STATUS:
                return contract_status_to_string(i);
        case FIELD_CONTROL_KIND:
                return control_kind_to_string(i);
        default:
                return NULL;
        }
}

static int enum_from_string(FieldKind kind, const char *s) {
        switch (kind) {
        case FIELD_TASK_STATE:
                return task_state_from_string(s);
        case FIELD_CONTRACT_TYPE:
                return contract_type_from_string(s);
        case FIELD_CONTRACT_PHASE:
                return contract_phase_from_string(s);
        case FIELD_CONTRACT_STATUS:
                return contract_status_from_string(s);
        case FIELD_CONTROL_KIND:
                return control_kind_from_string(s);
        default:
                return -EINVAL;
        }
}

/* A string vector as the JSON text of its column. */
static int strv_to_text(char *const *l, char **ret) {
        _cleanup_json_ json_object *a = NULL;
        char *s;
        int r;

        r = json_new_strv(l, &a);
        if (r < 0)
                return r;
        s = strdup(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int strv_from_text(const char *s, char ***ret) {
        _cleanup_json_ json_object *a = NULL;
        char **l = NULL;
        int r;

        r = json_parse_strict(s, strlen(s), &a, NULL);
        if (r < 0)
                return r == -ENOMEM ? r : -EBADMSG;
        /* A JSON null in the column would come back as NULL, which the column's own NULL says. */
        if (!a)
                return -EBADMSG;
        r = json_dispatch_strv(NULL, a, &l);
        if (r < 0)
                return r == -ENOMEM ? r : -EBADMSG;
        *ret = l;
        return 0;
}

/* Most values point into the record; the text of a string vector is made
 * for it, and handed to *ret_text, which a record with such a field must
 * pass (it has one at most). Records without one pass NULL: then nothing
 * can fail. */
static int record_to_values(const Field *fields, size_t n, const void *record, StoreValue *ret, char **ret_text) {
        _cleanup_free_ char *text = NULL;

        for (size_t i = 0; i < n; i++) {
                const void *p = (const uint8_t *) record + fields[i].offset;
                int r;

                switch (fields[i].kind) {
                case FIELD_STRING:
                        ret[i] = VALUE_TEXT(*(char *const *) p);
                        break;
                case FIELD_STRV:
                        if (!ret_text || text)
                                return -EINVAL;
                        if (*(char **const *) p) {
                                r = strv_to_text(*(char **const *) p, &text);
                                if (r < 0)
                                        return r;
                        }
                        ret[i] = VALUE_TEXT(text);
                        break;
                case FIELD_BOOL:
                        ret[i] = VALUE_BOOL(*(const bool *) p);
                        break;
                case FIELD_INT:
                        ret[i] = VALUE_INT(*(const int *) p);
                        break;
                case FIELD_INT64:
                        ret[i] = VALUE_INT(*(const int64_t *) p);
                        break;
                case FIELD_USEC:
                        ret[i] = VALUE_USEC(*(const usec_t *) p);
                        break;
                case FIELD_DOUBLE:
                        ret[i] = (StoreValue) { .type = STORE_VALUE_DOUBLE, .d = *(const double *) p };
                        break;
                default:
                        ret[i] = VALUE_TEXT(enum_to_string(fields[i].kind, *(const int *) p));
                }
        }
        if (ret_text)
                *ret_text = TAKE_PTR(text);
        return 0;
}

/* Strings are copied; on failure the record holds what was copied so far,
 * for its destructor. */
static int record_from_values(const Field *fields, size_t n, const StoreValue *v, size_t n_values, void *record) {
        if (n_values != n)
                return -EBADMSG;

        for (size_t i = 0; i < n; i++) {
                void *p = (uint8_t *) record + fields[i].offset;
                int e;

                switch (fields[i].kind) {
                case FIELD_STRING:
                        if (v[i].null)
                                break;
                        if (v[i].type != STORE_VALUE_TEXT)
                                return -EBADMSG;
                        *(char **) p = strdup(v[i].text);
                        if (!*(char **) p)
                                return -ENOMEM;
                        break;
                case FIELD_STRV:
                        if (v[i].null)
                                break;
                        if (v[i].type != STORE_VALUE_TEXT)
                                return -EBADMSG;
                        e = strv_from_text(v[i].text, (char ***) p);
                        if (e < 0)
                                return e;
                        break;
                case FIELD_BOOL:
                        /* SQLite has no boolean type: 0/1 integers. */
                        if (v[i].null || !IN_SET(v[i].type, STORE_VALUE_BOOL, STORE_VALUE_INT))
                                return -EBADMSG;
                        *(bool *) p = v[i].type == STORE_VALUE_BOOL ? v[i].b : v[i].i != 0;
                        break;
                case FIELD_INT:
                        if (v[i].null || v[i].type != STORE_VALUE_INT || v[i].i < 0 || v[i].i > INT_MAX)
                                return -EBADMSG;
                        *(int *) p = (int) v[i].i;
                        break;
                case FIELD_INT64:
                        if (v[i].null || v[i].type != STORE_VALUE_INT)
                                return -EBADMSG;
                        *(int64_t *) p = v[i].i;
                        break;
                case FIELD_USEC:
                        if (v[i].null) {
                                *(usec_t *) p = 0;
                                break;
                        }
                        if (v[i].type != STORE_VALUE_INT || v[i].i < 0)
                                return -EBADMSG;
                        *(usec_t *) p = (usec_t) v[i].i;
                        break;
                case FIELD_DOUBLE:
                        /* SQLite may hand back a whole REAL as an integer. */
                        if (v[i].null || !IN_SET(v[i].type, STORE_VALUE_DOUBLE, STORE_VALUE_INT))
                                return -EBADMSG;
                        *(double *) p = v[i].type == STORE_VALUE_DOUBLE ? v[i].d : (double) v[i].i;
                        break;
                default:
                        if (v[i].null || v[i].type != STORE_VALUE_TEXT)
                                return -EBADMSG;
                        e = enum_from_string(fields[i].kind, v[i].text);
                        if (e < 0)
                                return -EBADMSG;
                        *(int *) p = e;
                }
        }

        return 0;
}

bool store_string_is_valid(const char *s) {
        const uint8_t *p = (const uint8_t *) s;

        /* Strict UTF-8 (no overlong forms, no surrogates, at most U+10FFFF):
         * PostgreSQL refuses anything else, so SQLite must too. */
        while (*p) {
                uint32_t c, min;
                size_t len;

                if (*p < 0x80) {
                        p++;
                        continue;
                }
                if ((*p & 0xe0) == 0xc0)
                        len = 2, c = *p & 0x1f, min = 0x80;
                else if ((*p & 0xf0) == 0xe0)
                        len = 3, c = *p & 0x0f, min = 0x800;
                else if ((*p & 0xf8) == 0xf0)
                        len = 4, c = *p & 0x07, min = 0x10000;
                else
                        return false;
                /* A NUL terminator fails the continuation test, so this never reads past it. */
                for (size_t i = 1; i < len; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return false;
                        c = c << 6 | (p[i] & 0x3f);
                }
                if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
                        return false;
                p += len;
        }
        return true;
}

static int record_check(const Field *fields, size_t n, const void *record) {
        for (size_t i = 0; i < n; i++) {
                const void *p = (const uint8_t *) record + fields[i].offset;

                switch (fields[i].kind) {
                case FIELD_STRING:
                        if (*(char *const *) p && !store_string_is_valid(*(char *const *) p))
                                return -EINVAL;
                        break;
                case FIELD_STRV:
                        for (char *const *j = *(char **const *) p; j && *j; j++)
                                if (!store_string_is_valid(*j))
                                        return -EINVAL;
                        break;
                case FIELD_INT:
                        if (*(const int *) p < 0)
                                return -EINVAL;
                        break;
                case FIELD_USEC:
                        if (*(const usec_t *) p > INT64_MAX)
                                return -EINVAL;
                        break;
                case FIELD_DOUBLE:
                        if (!isfinite(*(const double *) p))
                                return -EINVAL;
                        break;
                case FIELD_BOOL:
                case FIELD_INT64:
                        break;
                default:
                        if (!enum_to_string(fields[i].kind, *(const int *) p))
                                return -EINVAL;
                }
        }
        return 0;
}

int task_to_values(const Task *t, TaskValues *ret) {
        *ret = (TaskValues) {};
        return record_to_values(task_fields, TASK_N_COLUMNS, t, ret->v, &ret->text);
}

void task_values_done(TaskValues *v) {
        v->text = mfree(v->text);
}

int task_from_values(const StoreValue *v, size_t n, Task **ret) {
        _cleanup_(task_freep) Task *t = NULL;
        int r;

        t = task_new();
        if (!t)
                return -ENOMEM;
        r = record_from_values(task_fields, TASK_N_COLUMNS, v, n, t);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}

void contract_to_values(const Contract *c, StoreValue ret[static CONTRACT_N_COLUMNS]) {
        (void) record_to_values(contract_fields, CONTRACT_N_COLUMNS, c, ret, NULL);
}

int contract_from_values(const StoreValue *v, size_t n, Contract **ret) {
        _cleanup_(contract_freep) Contract *c = NULL;
        int r;

        c = contract_new();
        if (!c)
                return -ENOMEM;
        r = record_from_values(contract_fields, CONTRACT_N_COLUMNS, v, n, c);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

int event_from_values(const StoreValue *v, size_t n, Event *ret) {
        *ret = (Event) {};
        return record_from_values(event_fields, EVENT_N_COLUMNS, v, n, ret);
}

void control_request_to_values(const ControlRequest *r, StoreValue ret[static CONTROL_N_COLUMNS]) {
        (void) record_to_values(control_fields, CONTROL_N_COLUMNS, r, ret, NULL);
}

int control_request_from_values(const StoreValue *v, size_t n, ControlRequest *ret) {
        *ret = (ControlRequest) {};
        return record_from_values(control_fields, CONTROL_N_COLUMNS, v, n, ret);
}

void notification_to_values(const Notification *n, StoreValue ret[static NOTIFICATION_N_COLUMNS]) {
        (void) record_to_values(notification_fields, NOTIFICATION_N_COLUMNS, n, ret, NULL);
}

int notification_from_values(const StoreValue *v, size_t n, Notification *ret) {
        *ret = (Notification) {};
        return record_from_values(notification_fields, NOTIFICATION_N_COLUMNS, v, n, ret);
}

int task_check(const Task *t) {
        if (t->id && isempty(t->id))
                return -EINVAL;
        return record_check(task_fields, TASK_N_COLUMNS, t);
}

int contract_check(const Contract *c) {
        if (c->id && isempty(c->id))
                return -EINVAL;
        return record_check(contract_fields, CONTRACT_N_COLUMNS, c);
}

int control_request_check(const ControlRequest *r) {
        if (r->id && isempty(r->id))
                return -EINVAL;
        return record_check(control_fields, CONTROL_N_COLUMNS, r);
}

int notification_check(const Notification *n) {
        if (n->id && isempty(n->id))
                return -EINVAL;
        return record_check(notification_fields, NOTIFICATION_N_COLUMNS, n);
}

int store_row_int64(const StoreValue *row, size_t n_columns, void *userdata) {
        int64_t *ret = userdata;

        if (n_columns < 1 || (!row[0].null && row[0].type != STORE_VALUE_INT))
                return -EBADMSG;
        *ret = row[0].null ? 0 : row[0].i;
        return 0;
}

int store_row_string(const StoreValue *row, size_t n_columns, void *userdata) {
        char **ret = userdata;
        char *t;

        if (n_columns < 1 || row[0].null || row[0].type != STORE_VALUE_TEXT)
                return -EBADMSG;
        t = strdup(row[0].text);
        if (!t)
                return -ENOMEM;
        free(*ret);
        *ret = t;
        return 0;
}

int store_row_task(const StoreValue *row, size_t n_columns, void *userdata) {
        Task **ret = userdata;
        Task *t;
        int r;

        r = task_from_values(row, n_columns, &t);
        if (r < 0)
                return r;
        task_free(*ret);
        *ret = t;
        return 0;
}

int store_row_contract(const StoreValue *row, size_t n_columns, void *userdata) {
        Contract **ret = userdata;
        Contract *c;
        int r;

        r = contract_from_values(row, n_columns, &c);
        if (r < 0)
                return r;
        contract_free(*ret);
        *ret = c;
        return 0;
}

int store_value_task_state(const StoreValue *v, TaskState *ret) {
        TaskState s;

        if (v->null || v->type != STORE_VALUE_TEXT)
                return -EBADMSG;
        s = task_state_from_string(v->text);
        if (s < 0)
                return -EBADMSG;
        *ret = s;
        return 0;
}

int store_row_task_state(const StoreValue *row, size_t n_columns, void *userdata) {
        StoreTaskState *ret = userdata;

        if (n_columns < 2 || row[0].null || row[0].type != STORE_VALUE_INT)
                return -EBADMSG;
        ret->version = row[0].i;
        return store_value_task_state(&row[1], &ret->status);
}

int store_row_task_active(const StoreValue *row, size_t n_columns, void *userdata) {
        bool *active = userdata;
        TaskState s;
        int r;

        if (n_columns < 1)
                return -EBADMSG;
        r = store_value_task_state(&row[0], &s);
        if (r < 0)
                return r;
        if (task_state_is_active(s))
                *active = true;
        return 0;
}

/* ---- list queries ---- */

typedef struct ListQuery {
        char sigil;
        char *sql;
        size_t size;
        FILE *f;
        StoreValue *params;
        size_t n_params;
} ListQuery;

static int list_query_begin(ListQuery *q, char sigil, StoreValue *params, const char *select) {
        *q = (ListQuery) { .sigil = sigil, .params = params };
        q->f = open_memstream(&q->sql, &q->size);
        if (!q->f)
                return -ENOMEM;
        if (select)
                fputs(select, q->f);
        return 0;
}

static void list_query_done(ListQuery *q) {
        if (q->f)
                (void) fclose(q->f);
        free(q->sql);
}

static void list_query_where(ListQuery *q, const char *column, StoreValue v) {
        q->params[q->n_params++] = v;
        fprintf(q->f, " %s %s = %c%zu", q->n_params == 1 ? "WHERE" : "AND", column, q->sigil, q->n_params);
}

static int64_t size_to_int64(size_t n) {
        return n > INT64_MAX ? INT64_MAX : (int64_t) n;
}

/* Both backends take a huge LIMIT as "no limit", and it keeps the SQL fixed. */
static int list_query_end(ListQuery *q, const char *order_by, size_t limit, size_t offset, char **ret_sql,
                          size_t *ret_n) {
        q->params[q->n_params++] = VALUE_INT(limit == 0 ? INT64_MAX : size_to_int64(limit));
        q->params[q->n_params++] = VALUE_INT(size_to_int64(offset));
        fprintf(q->f, " ORDER BY %s LIMIT %c%zu OFFSET %c%zu",
                order_by, q->sigil, q->n_params - 1, q->sigil, q->n_params);

        if (fclose(TAKE_PTR(q->f)) != 0)
                return -ENOMEM;
        *ret_sql = TAKE_PTR(q->sql);
        *ret_n = q->n_params;
        return 0;
}

int store_task_list_sql(const TaskFilter *f, char sigil, char **ret_sql, StoreValue *ret_params, size_t *ret_n) {
        _cleanup_(list_query_done) ListQuery q = {};
        int r;

        r = list_query_begin(&q, sigil, ret_params, "SELECT " TASK_COLUMNS " FROM tasks");
        if (r < 0)
                return r;
        if (f->owner)
                list_query_where(&q, "owner", VALUE_TEXT(f->owner));
        if (f->contract_id)
                list_query_where(&q, "contract_id", VALUE_TEXT(f->contract_id));
        if (f->parent_task_id)
                list_query_where(&q, "parent_task_id", VALUE_TEXT(f->parent_task_id));
        if (f->status >= 0)
                list_query_where(&q, "status", VALUE_TEXT(task_state_to_string(f->status)));
        return list_query_end(&q, "created_at, id", f->limit, f->offset, ret_sql, ret_n);
}

int store_contract_list_sql(const ContractFilter *f, char sigil, char **ret_sql, StoreValue *ret_params,
                            size_t *ret_n) {
        _cleanup_(list_query_done) ListQuery q = {};
        int r;

        r = list_query_begin(&q, sigil, ret_params, "SELECT " CONTRACT_COLUMNS " FROM contracts");
        if (r < 0)
                return r;
        if (f->owner)
                list_query_where(&q, "owner", VALUE_TEXT(f->owner));
        if (f->status >= 0)
                list_query_where(&q, "status", VALUE_TEXT(contract_status_to_string(f->status)));
        return list_query_end(&q, "created_at, id", f->limit, f->offset, ret_sql, ret_n);
}

int store_event_list_sql(EventLog log, const char *object_id, int64_t after, size_t limit, char sigil,
                         char **ret_sql, StoreValue *ret_params, size_t *ret_n) {
        _cleanup_(list_query_done) ListQuery q = {};
        const char *column = log == EVENT_LOG_TASK ? "task_id" : "contract_id";
        int r;

        r = list_query_begin(&q, sigil, ret_params, NULL);
        if (r < 0)
                return r;
        fprintf(q.f, "SELECT %s, seq, type, payload, created_at FROM %s",
                column, log == EVENT_LOG_TASK ? "task_events" : "contract_events");
        list_query_where(&q, column, VALUE_TEXT(object_id));
        q.params[q.n_params++] = VALUE_INT(after);
        fprintf(q.f, " AND seq > %c%zu", sigil, q.n_params);
        return list_query_end(&q, "seq", limit, 0, ret_sql, ret_n);
}
