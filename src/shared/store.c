/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store's front: checks arguments, fills in what store.h promises (ids,
 * timestamps, versions, event sequence numbers, written back only on
 * success) and dispatches to the backend. Lists are built here and run
 * unchanged by either backend. */

#include <stdarg.h>
#include <stdio.h>

#include "store-internal.h"

static const char *const store_backend_table[_STORE_BACKEND_MAX] = {
        [STORE_BACKEND_SQLITE] = "sqlite",
        [STORE_BACKEND_POSTGRESQL] = "postgresql",
};

const char *store_backend_to_string(StoreBackend b) {
        if (b < 0 || b >= _STORE_BACKEND_MAX)
                return NULL;
        return store_backend_table[b];
}

StoreBackend store_backend_from_string(const char *s) {
        if (!s)
                return _STORE_BACKEND_INVALID;
        for (size_t i = 0; i < _STORE_BACKEND_MAX; i++)
                if (streq(store_backend_table[i], s))
                        return (StoreBackend) i;
        return _STORE_BACKEND_INVALID;
}

static const StoreVTable *const store_vtables[_STORE_BACKEND_MAX] = {
        [STORE_BACKEND_SQLITE] = &store_sqlite_vtable,
        [STORE_BACKEND_POSTGRESQL] = &store_pg_vtable,
};

int store_error(Store *s, int r, const char *format, ...) {
        va_list ap;
        char *m;

        va_start(ap, format);
        if (vasprintf(&m, format, ap) < 0)
                m = NULL;
        va_end(ap);
        free(s->error);
        s->error = m;
        return r;
}

static int invalid(Store *s, const char *what) {
        if (!s)
                return -EINVAL;
        return store_error(s, -EINVAL, "Invalid argument: %s", what);
}

/* An id or filter value: PostgreSQL refuses text that is not UTF-8. */
static bool key_is_valid(const char *s) {
        return !isempty(s) && store_string_is_valid(s);
}

static bool key_is_valid_or_null(const char *s) {
        return !s || key_is_valid(s);
}

int store_open(StoreBackend backend, const char *path, Store **ret) {
        if (backend < 0 || backend >= _STORE_BACKEND_MAX || isempty(path) || !ret)
                return -EINVAL;
        return store_vtables[backend]->open(path, ret);
}

Store *store_free(Store *s) {
        if (!s)
                return NULL;
        free(s->error);
        s->vtable->free(s);
        return NULL;
}

StoreBackend store_backend(Store *s) {
        return s ? s->backend : _STORE_BACKEND_INVALID;
}

const char *store_last_error(Store *s) {
        return s && s->error ? s->error : "no error";
}

int store_schema_version(Store *s) {
        return s ? s->schema_version : -EINVAL;
}

static int id_make(const char *id, char **ret) {
        char buf[ID_STRING_MAX];
        int r;

        if (id) {
                *ret = NULL;
                return 0;
        }
        r = id_new(buf);
        if (r < 0)
                return r;
        *ret = strdup(buf);
        return *ret ? 0 : -ENOMEM;
}

/* Checks an event about to be written to object_id's log and, when its
 * object_id is NULL, makes the copy that is handed to it on success. */
static int event_prepare(Store *s, const Event *e, const char *object_id, char **ret_object_id) {
        if (isempty(e->type) || !store_string_is_valid(e->type))
                return invalid(s, "event type");
        if (e->payload && !store_string_is_valid(e->payload))
                return invalid(s, "event payload");
        if (e->created_at > INT64_MAX)
                return invalid(s, "event created_at");
        if (e->object_id && !streq(e->object_id, object_id))
                return invalid(s, "event of another object");
        if (e->object_id) {
                *ret_object_id = NULL;
                return 0;
        }
        *ret_object_id = strdup(object_id);
        return *ret_object_id ? 0 : -ENOMEM;
}

static void event_complete(Event *e, char **object_id, int64_t seq, usec_t now) {
        e->seq = seq;
        if (e->created_at == 0)
                e->created_at = now;
        if (!e->object_id)
                e->object_id = TAKE_PTR(*object_id);
}

/* ---- contracts ---- */

int store_contract_insert(Store *s, Contract *c) {
        _cleanup_free_ char *id = NULL;
        usec_t now = now_usec();
        Contract row;
        int r;

        if (!s || !c)
                return -EINVAL;
        r = contract_check(c);
        if (r < 0)
                return invalid(s, "contract");
        r = id_make(c->id, &id);
        if (r < 0)
                return r;

        row = *c;
        row.id = c->id ?: id;
        row.created_at = c->created_at ?: now;
        row.updated_at = c->updated_at ?: now;
        row.version = 1;
        r = s->vtable->contract_insert(s, &row);
        if (r < 0)
                return r;

        if (id)
                c->id = TAKE_PTR(id);
        c->created_at = row.created_at;
        c->updated_at = row.updated_at;
        c->version = 1;
        return 0;
}

int store_contract_get(Store *s, const char *id, Contract **ret) {
        if (!s || !ret)
                return -EINVAL;
        if (!key_is_valid(id))
                return invalid(s, "contract id");
        return s->vtable->contract_get(s, id, ret);
}

typedef struct ContractList {
        Contract **items;
        size_t n;
} ContractList;

static void contract_list_done(ContractList *l) {
        contract_array_free(l->items, l->n);
}

static int contract_row(const StoreValue *row, size_t n_columns, void *userdata) {
        _cleanup_(contract_freep) Contract *c = NULL;
        ContractList *l = userdata;
        Contract **a;
        int r;

        r = contract_from_values(row, n_columns, &c);
        if (r < 0)
                return r;
        a = reallocarray(l->items, l->n + 1, sizeof(Contract *));
        if (!a)
                return -ENOMEM;
        l->items = a;
        l->items[l->n++] = TAKE_PTR(c);
        return 0;
}

static int list_failed(Store *s, int r, const char *table) {
        if (r == -EBADMSG)
                return store_error(s, r, "Malformed row in table %s", table);
        return r;
}

int store_contract_list(Store *s, const ContractFilter *f, Contract ***ret, size_t *ret_n) {
        static const ContractFilter all = { .status = -1 };
        _cleanup_(contract_list_done) ContractList l = {};
        StoreValue params[STORE_LIST_PARAMS_MAX];
        _cleanup_free_ char *sql = NULL;
        size_t n;
        int r;

        if (!s || !ret || !ret_n)
                return -EINVAL;
        f = f ?: &all;
        if (!key_is_valid_or_null(f->owner))
                return invalid(s, "owner");
        if (f->status < -1 || f->status >= _CONTRACT_STATUS_MAX)
                return invalid(s, "contract status");

        r = store_contract_list_sql(f, s->vtable->sigil, &sql, params, &n);
        if (r < 0)
                return r;
        r = s->vtable->query(s, sql, params, n, contract_row, &l);
        if (r < 0)
                return list_failed(s, r, "contracts");

        *ret = TAKE_PTR(l.items);
        *ret_n = l.n;
        return 0;
}

int store_contract_update(Store *s, Contract *c, Event *event) {
        _cleanup_free_ char *event_object_id = NULL;
        usec_t now = now_usec();
        int64_t seq = 0;
        Contract row;
        int r;

        if (!s || !c)
                return -EINVAL;
        if (!key_is_valid(c->id))
                return invalid(s, "contract id");
        r = contract_check(c);
        if (r < 0)
                return invalid(s, "contract");
        if (event) {
                r = event_prepare(s, event, c->id, &event_object_id);
                if (r < 0)
                        return r;
        }

        row = *c;
        row.updated_at = now;
        r = s->vtable->contract_update(s, &row, event, now, &seq);
        if (r < 0)
                return r;

        c->version++;
        c->updated_at = now;
        if (event)
                event_complete(event, &event_object_id, seq, now);
        return 0;
}

int store_contract_delete(Store *s, const char *id, int64_t version) {
        if (!s)
                return -EINVAL;
        if (!key_is_valid(id))
                return invalid(s, "contract id");
        return s->vtable->contract_delete(s, id, version);
}

/* ---- tasks ---- */

int store_task_insert(Store *s, Task *t) {
        _cleanup_free_ char *id = NULL;
        usec_t now = now_usec();
        Task row;
        int r;

        if (!s || !t)
                return -EINVAL;
        r = task_check(t);
        if (r < 0)
                return invalid(s, "task");
        r = id_make(t->id, &id);
        if (r < 0)
                return r;

        row = *t;
        row.id = t->id ?: id;
        row.created_at = t->created_at ?: now;
        row.updated_at = t->updated_at ?: now;
        row.version = 1;
        r = s->vtable->task_insert(s, &row);
        if (r < 0)
                return r;

        if (id)
                t->id = TAKE_PTR(id);
        t->created_at = row.created_at;
        t->updated_at = row.updated_at;
        t->version = 1;
        return 0;
}

int store_task_get(Store *s, const char *id, Task **ret) {
        if (!s || !ret)
                return -EINVAL;
        if (!key_is_valid(id))
                return invalid(s, "task id");
        return s->vtable->task_get(s, id, ret);
}

typedef struct TaskList {
        Task **items;
        size_t n;
} TaskList;

static void task_list_done(TaskList *l) {
        task_array_free(l->items, l->n);
}

static int task_row(const StoreValue *row, size_t n_columns, void *userdata) {
        _cleanup_(task_freep) Task *t = NULL;
        TaskList *l = userdata;
        Task **a;
        int r;

        r = task_from_values(row, n_columns, &t);
        if (r < 0)
                return r;
        a = reallocarray(l->items, l->n + 1, sizeof(Task *));
        if (!a)
                return -ENOMEM;
        l->items = a;
        l->items[l->n++] = TAKE_PTR(t);
        return 0;
}

int store_task_list(Store *s, const TaskFilter *f, Task ***ret, size_t *ret_n) {
        static const TaskFilter all = { .status = -1 };
        _cleanup_(task_list_done) TaskList l = {};
        StoreValue params[STORE_LIST_PARAMS_MAX];
        _cleanup_free_ char *sql = NULL;
        size_t n;
        int r;

        if (!s || !ret || !ret_n)
                return -EINVAL;
        f = f ?: &all;
        if (!key_is_valid_or_null(f->owner) || !key_is_valid_or_null(f->contract_id) ||
            !key_is_valid_or_null(f->parent_task_id))
                return invalid(s, "task filter");
        if (f->status < -1 || f->status >= _TASK_STATE_MAX)
                return invalid(s, "task status");

        r = store_task_list_sql(f, s->vtable->sigil, &sql, params, &n);
        if (r < 0)
                return r;
        r = s->vtable->query(s, sql, params, n, task_row, &l);
        if (r < 0)
                return list_failed(s, r, "tasks");

        *ret = TAKE_PTR(l.items);
        *ret_n = l.n;
        return 0;
}

int store_task_update(Store *s, Task *t, Event *event) {
        _cleanup_free_ char *event_object_id = NULL;
        usec_t now = now_usec();
        int64_t seq = 0;
        Task row;
        int r;

        if (!s || !t)
                return -EINVAL;
        if (!key_is_valid(t->id))
                return invalid(s, "task id");
        r = task_check(t);
        if (r < 0)
                return invalid(s, "task");
        if (event) {
                r = event_prepare(s, event, t->id, &event_object_id);
                if (r < 0)
                        return r;
        }

        row = *t;
        row.updated_at = now;
        r = s->vtable->task_update(s, &row, event, now, &seq);
        if (r < 0)
                return r;

        t->version++;
        t->updated_at = now;
        if (event)
                event_complete(event, &event_object_id, seq, now);
        return 0;
}

int store_task_delete(Store *s, const char *id, int64_t version) {
        if (!s)
                return -EINVAL;
        if (!key_is_valid(id))
                return invalid(s, "task id");
        return s->vtable->task_delete(s, id, version);
}

/* ---- events ---- */

typedef struct StringArray {
        char **items;
        size_t n;
} StringArray;

static void string_array_done(StringArray *a) {
        for (size_t i = 0; a->items && i < a->n; i++)
                free(a->items[i]);
        free(a->items);
}

int store_event_append(Store *s, EventLog log, const char *object_id, Event *events, size_t n) {
        _cleanup_(string_array_done) StringArray ids = {};
        usec_t now = now_usec();
        int64_t first;
        int r;

        if (!s || (n > 0 && !events))
                return -EINVAL;
        if (log < 0 || log >= _EVENT_LOG_MAX)
                return invalid(s, "event log");
        if (!key_is_valid(object_id))
                return invalid(s, "object id");
        if (n == 0)
                return 0;

        ids.items = calloc(n, sizeof(char *));
        if (!ids.items)
                return -ENOMEM;
        ids.n = n;
        for (size_t i = 0; i < n; i++) {
                r = event_prepare(s, &events[i], object_id, &ids.items[i]);
                if (r < 0)
                        return r;
        }

        r = s->vtable->event_append(s, log, object_id, events, n, now, &first);
        if (r < 0)
                return r;

        for (size_t i = 0; i < n; i++)
                event_complete(&events[i], &ids.items[i], first + (int64_t) i, now);
        return 0;
}

typedef struct EventList {
        Event *items;
        size_t n;
} EventList;

static void event_list_done(EventList *l) {
        event_array_free(l->items, l->n);
}

static int event_row(const StoreValue *row, size_t n_columns, void *userdata) {
        EventList *l = userdata;
        Event *a;

        a = reallocarray(l->items, l->n + 1, sizeof(Event));
        if (!a)
                return -ENOMEM;
        l->items = a;
        /* Counted at once, so that a half-filled event is freed with the rest. */
        return event_from_values(row, n_columns, &l->items[l->n++]);
}

/* A log of a row that does not exist reads as empty: the hot path (streams
 * polling for new events) should not pay for a second query. */
int store_event_list(Store *s, EventLog log, const char *object_id, int64_t after, size_t limit,
                     Event **ret, size_t *ret_n) {
        _cleanup_(event_list_done) EventList l = {};
        StoreValue params[STORE_LIST_PARAMS_MAX];
        _cleanup_free_ char *sql = NULL;
        size_t n;
        int r;

        if (!s || !ret || !ret_n)
                return -EINVAL;
        if (log < 0 || log >= _EVENT_LOG_MAX)
                return invalid(s, "event log");
        if (!key_is_valid(object_id))
                return invalid(s, "object id");

        r = store_event_list_sql(log, object_id, after, limit, s->vtable->sigil, &sql, params, &n);
        if (r < 0)
                return r;
        r = s->vtable->query(s, sql, params, n, event_row, &l);
        if (r < 0)
                return list_failed(s, r, "events");

        *ret = TAKE_PTR(l.items);
        *ret_n = l.n;
        return 0;
}

/* ---- API tokens ---- */

int store_token_insert(Store *s, const char *owner, const char *token_hash, const char *description,
                       char ret_id[static ID_STRING_MAX]) {
        char id[ID_STRING_MAX];
        int r;

        if (!s || !ret_id)
                return -EINVAL;
        if (!key_is_valid(owner) || !key_is_valid(token_hash) ||
            (description && !store_string_is_valid(description)))
                return invalid(s, "token");
        r = id_new(id);
        if (r < 0)
                return r;
        r = s->vtable->token_insert(s, id, owner, token_hash, description, now_usec());
        if (r < 0)
                return r;
        memcpy(ret_id, id, ID_STRING_MAX);
        return 0;
}

int store_token_lookup(Store *s, const char *token_hash, char **ret_owner) {
        if (!s || !ret_owner)
                return -EINVAL;
        if (!key_is_valid(token_hash))
                return invalid(s, "token hash");
        return s->vtable->token_lookup(s, token_hash, ret_owner);
}

int store_token_revoke(Store *s, const char *id) {
        if (!s)
                return -EINVAL;
        if (!key_is_valid(id))
                return invalid(s, "token id");
        return s->vtable->token_revoke(s, id, now_usec());
}
