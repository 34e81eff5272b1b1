/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store's front: checks arguments, fills in what store.h promises (ids,
 * timestamps, versions, event sequence numbers, written back only on
 * success) and dispatches to the backend. Lists are built here and run
 * unchanged by either backend. Also the helpers the other front files
 * (store-lease.c, store-control.c) share. */

#include <inttypes.h>
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

int store_invalid(Store *s, const char *what) {
        if (!s)
                return -EINVAL;
        return store_error(s, -EINVAL, "Invalid argument: %s", what);
}

/* PostgreSQL refuses text that is not UTF-8. */
bool store_key_is_valid(const char *s) {
        return !isempty(s) && store_string_is_valid(s);
}

static bool key_is_valid_or_null(const char *s) {
        return !s || store_key_is_valid(s);
}

int store_open_full(StoreBackend backend, const char *path, Store **ret, char **ret_error) {
        _cleanup_free_ char *error = NULL;
        int r;

        if (backend < 0 || backend >= _STORE_BACKEND_MAX || isempty(path) || !ret)
                r = -EINVAL;
        else {
                r = store_vtables[backend]->open(path, ret, ret_error ? &error : NULL);
                if (r >= 0)
                        return r;
        }
        if (ret_error) {
                /* Failures before the backend had words (a bad argument, no memory). */
                if (!error)
                        error = strdup(strerror(-r));
                *ret_error = TAKE_PTR(error);
        }
        return r;
}

int store_open(StoreBackend backend, const char *path, Store **ret) {
        return store_open_full(backend, path, ret, NULL);
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

int store_ping(Store *s) {
        if (!s)
                return -EINVAL;
        return s->vtable->ping(s);
}

int store_begin(Store *s, Store **txn) {
        int r;

        r = s->vtable->begin(s);
        if (r < 0)
                return r;
        *txn = s;
        return 0;
}

int store_commit(Store **txn) {
        int r;

        r = (*txn)->vtable->commit(*txn);
        if (r < 0)
                return r;
        *txn = NULL;
        return 0;
}

void store_rollbackp(Store **txn) {
        if (*txn)
                (*txn)->vtable->rollback(*txn);
}

/* How the words name an object of each kind. */
static const struct {
        const char *name;
        const char *lower;
} store_object_names[_EVENT_LOG_MAX] = {
        [EVENT_LOG_TASK] = { "Task", "task" },
        [EVENT_LOG_CONTRACT] = { "Contract", "contract" },
};

int store_got(Store *s, int r, EventLog kind, const char *id) {
        if (r == -EBADMSG)
                return store_error(s, r, "Malformed %s %s", store_object_names[kind].lower, id);
        if (r < 0)
                return r;
        if (r == 0)
                return store_error(s, -ENOENT, "%s %s does not exist", store_object_names[kind].name, id);
        return 0;
}

int store_id_make(const char *id, char **ret) {
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

void store_event_ids_done(StoreEventIds *ids) {
        for (size_t i = 0; ids->items && i < ids->n; i++)
                free(ids->items[i]);
        free(ids->items);
        *ids = (StoreEventIds) {};
}

static int event_check(Store *s, const Event *e, const char *object_id) {
        if (isempty(e->type) || !store_string_is_valid(e->type))
                return store_invalid(s, "event type");
        if (e->payload && !store_string_is_valid(e->payload))
                return store_invalid(s, "event payload");
        if (e->created_at > INT64_MAX)
                return store_invalid(s, "event created_at");
        if (e->object_id && !streq(e->object_id, object_id))
                return store_invalid(s, "event of another object");
        return 0;
}

int store_events_prepare(Store *s, const Event *events, size_t n, const char *object_id, StoreEventIds *ret_ids) {
        _cleanup_(store_event_ids_done) StoreEventIds ids = {};
        int r;

        if (n == 0) {
                *ret_ids = (StoreEventIds) {};
                return 0;
        }
        ids.items = calloc(n, sizeof(char *));
        if (!ids.items)
                return -ENOMEM;
        ids.n = n;
        for (size_t i = 0; i < n; i++) {
                r = event_check(s, &events[i], object_id);
                if (r < 0)
                        return r;
                if (events[i].object_id)
                        continue;
                ids.items[i] = strdup(object_id);
                if (!ids.items[i])
                        return -ENOMEM;
        }
        *ret_ids = ids;
        ids = (StoreEventIds) {};
        return 0;
}

void store_events_complete(Event *events, size_t n, StoreEventIds *ids, int64_t first_seq, usec_t now) {
        for (size_t i = 0; i < n; i++) {
                Event *e = &events[i];

                e->seq = first_seq + (int64_t) i;
                if (e->created_at == 0)
                        e->created_at = now;
                if (!e->object_id)
                        e->object_id = TAKE_PTR(ids->items[i]);
        }
}

/* Why an UPDATE … WHERE id AND version changed nothing. */
static int object_update_refused(Store *s, EventLog kind, const char *id, int64_t version) {
        int r;

        r = s->vtable->run_object(s, kind, STORE_OBJECT_VERSION, PARAMS(VALUE_TEXT(id)), NULL, NULL);
        if (r < 0)
                return r;
        if (r == 0)
                return store_error(s, -ENOENT, "%s %s does not exist", store_object_names[kind].name, id);
        return store_error(s, -ESTALE, "%s %s was changed since version %" PRIi64, store_object_names[kind].name,
                           id, version);
}

/* The transaction's row lock (PostgreSQL) or BEGIN IMMEDIATE (SQLite)
 * keeps other appenders out: max(seq) cannot move under us. */
int store_object_events_insert(Store *s, EventLog log, const char *object_id, const Event *events, size_t n,
                               usec_t now, int64_t *ret_first_seq) {
        int64_t last;
        int r;

        r = s->vtable->run_object(s, log, STORE_OBJECT_EVENT_LAST, PARAMS(VALUE_TEXT(object_id)), store_row_int64,
                                  &last);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = s->vtable->run_object(s, log, STORE_OBJECT_EVENT_INSERT,
                                          PARAMS(VALUE_TEXT(object_id),
                                                 VALUE_INT(last + 1 + (int64_t) i),
                                                 VALUE_TEXT(events[i].type),
                                                 VALUE_TEXT(events[i].payload),
                                                 VALUE_USEC(events[i].created_at ?: now)),
                                          NULL, NULL);
                if (r < 0)
                        return r;
        }
        *ret_first_seq = last + 1;
        return 0;
}

int store_object_update(Store *s, EventLog kind, const char *id, int64_t version, const StoreValue *v, size_t n,
                        const Event *event, usec_t now, int64_t *ret_seq) {
        _cleanup_(store_rollbackp) Store *txn = NULL;
        int r;

        if (event || s->vtable->update_always_in_transaction) {
                r = store_begin(s, &txn);
                if (r < 0)
                        return r;
        }
        r = s->vtable->run_object(s, kind, STORE_OBJECT_UPDATE, v, n, NULL, NULL);
        if (r < 0)
                return r;
        if (r == 0)
                return object_update_refused(s, kind, id, version);
        if (event) {
                r = store_object_events_insert(s, kind, id, event, 1, now, ret_seq);
                if (r < 0)
                        return r;
        }
        return txn ? store_commit(&txn) : 0;
}

/* ---- contracts and tasks ---- */

/* The fields the front fills in on a record of either kind. */
typedef struct RecordHead {
        char **id;
        usec_t *created_at;
        usec_t *updated_at;
        int64_t *version;
} RecordHead;

/* Room for a copy of a record of either kind, sent to the backend with the
 * front's fields filled in. */
typedef union RecordRow {
        Contract contract;
        Task task;
} RecordRow;

/* What differs between contracts and tasks on the paths they share. */
typedef struct RecordKind {
        const char *what;
        const char *what_id;
        size_t size;
        void (*head)(void *record, RecordHead *ret);
        int (*check)(const void *record);
        int (*insert)(Store *s, const void *row);
        int (*update)(Store *s, const void *row, const Event *event, usec_t now, int64_t *ret_seq);
        int (*delete)(Store *s, const char *id, int64_t version);
} RecordKind;

static int record_insert(Store *s, const RecordKind *k, void *record) {
        _cleanup_free_ char *id = NULL;
        usec_t now = now_usec();
        RecordHead h, row_head;
        RecordRow row;
        int r;

        if (!s || !record)
                return -EINVAL;
        r = k->check(record);
        if (r < 0)
                return store_invalid(s, k->what);
        k->head(record, &h);
        r = store_id_make(*h.id, &id);
        if (r < 0)
                return r;

        memcpy(&row, record, k->size);
        k->head(&row, &row_head);
        *row_head.id = *h.id ?: id;
        *row_head.created_at = *h.created_at ?: now;
        *row_head.updated_at = *h.updated_at ?: now;
        *row_head.version = 1;
        r = k->insert(s, &row);
        if (r < 0)
                return r;

        if (id)
                *h.id = TAKE_PTR(id);
        *h.created_at = *row_head.created_at;
        *h.updated_at = *row_head.updated_at;
        *h.version = 1;
        return 0;
}

static int record_update(Store *s, const RecordKind *k, void *record, Event *event) {
        _cleanup_(store_event_ids_done) StoreEventIds ids = {};
        usec_t now = now_usec();
        RecordHead h, row_head;
        int64_t seq = 0;
        RecordRow row;
        int r;

        if (!s || !record)
                return -EINVAL;
        k->head(record, &h);
        if (!store_key_is_valid(*h.id))
                return store_invalid(s, k->what_id);
        r = k->check(record);
        if (r < 0)
                return store_invalid(s, k->what);
        r = store_events_prepare(s, event, event ? 1 : 0, *h.id, &ids);
        if (r < 0)
                return r;

        memcpy(&row, record, k->size);
        k->head(&row, &row_head);
        *row_head.updated_at = now;
        r = k->update(s, &row, event, now, &seq);
        if (r < 0)
                return r;

        (*h.version)++;
        *h.updated_at = now;
        store_events_complete(event, event ? 1 : 0, &ids, seq, now);
        return 0;
}

static int record_delete(Store *s, const RecordKind *k, const char *id, int64_t version) {
        if (!s)
                return -EINVAL;
        if (!store_key_is_valid(id))
                return store_invalid(s, k->what_id);
        return k->delete(s, id, version);
}

static int list_failed(Store *s, int r, const char *table) {
        if (r == -EBADMSG)
                return store_error(s, r, "Malformed row in table %s", table);
        return r;
}

/* ---- contracts ---- */

static void contract_head(void *record, RecordHead *ret) {
        Contract *c = record;

        *ret = (RecordHead) { &c->id, &c->created_at, &c->updated_at, &c->version };
}

static int contract_check_record(const void *record) {
        return contract_check(record);
}

static int contract_insert_row(Store *s, const void *row) {
        return s->vtable->contract_insert(s, row);
}

static int contract_update_row(Store *s, const void *row, const Event *event, usec_t now, int64_t *ret_seq) {
        return s->vtable->contract_update(s, row, event, now, ret_seq);
}

static int contract_delete_row(Store *s, const char *id, int64_t version) {
        return s->vtable->contract_delete(s, id, version);
}

static const RecordKind contract_kind = {
        .what = "contract",
        .what_id = "contract id",
        .size = sizeof(Contract),
        .head = contract_head,
        .check = contract_check_record,
        .insert = contract_insert_row,
        .update = contract_update_row,
        .delete = contract_delete_row,
};

int store_contract_insert(Store *s, Contract *c) {
        return record_insert(s, &contract_kind, c);
}

int store_contract_get(Store *s, const char *id, Contract **ret) {
        if (!s || !ret)
                return -EINVAL;
        if (!store_key_is_valid(id))
                return store_invalid(s, "contract id");
        return store_got(s, s->vtable->contract_get(s, id, ret), EVENT_LOG_CONTRACT, id);
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
                return store_invalid(s, "owner");
        if (f->status < -1 || f->status >= _CONTRACT_STATUS_MAX)
                return store_invalid(s, "contract status");

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
        return record_update(s, &contract_kind, c, event);
}

int store_contract_delete(Store *s, const char *id, int64_t version) {
        return record_delete(s, &contract_kind, id, version);
}

/* ---- tasks ---- */

static void task_head(void *record, RecordHead *ret) {
        Task *t = record;

        *ret = (RecordHead) { &t->id, &t->created_at, &t->updated_at, &t->version };
}

static int task_check_record(const void *record) {
        return task_check(record);
}

static int task_insert_row(Store *s, const void *row) {
        return s->vtable->task_insert(s, row);
}

static int task_update_row(Store *s, const void *row, const Event *event, usec_t now, int64_t *ret_seq) {
        return s->vtable->task_update(s, row, event, now, ret_seq);
}

static int task_delete_row(Store *s, const char *id, int64_t version) {
        return s->vtable->task_delete(s, id, version);
}

static const RecordKind task_kind = {
        .what = "task",
        .what_id = "task id",
        .size = sizeof(Task),
        .head = task_head,
        .check = task_check_record,
        .insert = task_insert_row,
        .update = task_update_row,
        .delete = task_delete_row,
};

int store_task_insert(Store *s, Task *t) {
        return record_insert(s, &task_kind, t);
}

int store_task_get(Store *s, const char *id, Task **ret) {
        if (!s || !ret)
                return -EINVAL;
        if (!store_key_is_valid(id))
                return store_invalid(s, "task id");
        return store_got(s, s->vtable->task_get(s, id, ret), EVENT_LOG_TASK, id);
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
                return store_invalid(s, "task filter");
        if (f->status < -1 || f->status >= _TASK_STATE_MAX)
                return store_invalid(s, "task status");

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
        return record_update(s, &task_kind, t, event);
}

int store_task_delete(Store *s, const char *id, int64_t version) {
        return record_delete(s, &task_kind, id, version);
}

/* ---- events ---- */

int store_event_append(Store *s, EventLog log, const char *object_id, Event *events, size_t n) {
        _cleanup_(store_event_ids_done) StoreEventIds ids = {};
        _cleanup_(store_rollbackp) Store *txn = NULL;
        usec_t now = now_usec();
        int64_t first;
        int r;

        if (!s || (n > 0 && !events))
                return -EINVAL;
        if (log < 0 || log >= _EVENT_LOG_MAX)
                return store_invalid(s, "event log");
        if (!store_key_is_valid(object_id))
                return store_invalid(s, "object id");
        if (n == 0)
                return 0;
        r = store_events_prepare(s, events, n, object_id, &ids);
        if (r < 0)
                return r;

        r = store_begin(s, &txn);
        if (r < 0)
                return r;
        r = s->vtable->lock(s, log, object_id);
        if (r < 0)
                return r;
        if (r == 0)
                return store_error(s, -ENOENT, "%s %s does not exist", store_object_names[log].name, object_id);
        r = store_object_events_insert(s, log, object_id, events, n, now, &first);
        if (r < 0)
                return r;
        r = store_commit(&txn);
        if (r < 0)
                return r;

        store_events_complete(events, n, &ids, first, now);
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
                return store_invalid(s, "event log");
        if (!store_key_is_valid(object_id))
                return store_invalid(s, "object id");

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
        if (!store_key_is_valid(owner) || !store_key_is_valid(token_hash) ||
            (description && !store_string_is_valid(description)))
                return store_invalid(s, "token");
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
        int r;

        if (!s || !ret_owner)
                return -EINVAL;
        if (!store_key_is_valid(token_hash))
                return store_invalid(s, "token hash");
        r = s->vtable->token_lookup(s, token_hash, ret_owner);
        if (r < 0)
                return r;
        if (r == 0)
                return store_error(s, -ENOENT, "No such token");
        return 0;
}

int store_token_revoke(Store *s, const char *id) {
        int r;

        if (!s)
                return -EINVAL;
        if (!store_key_is_valid(id))
                return store_invalid(s, "token id");
        r = s->vtable->token_revoke(s, id, now_usec());
        if (r < 0)
                return r;
        if (r == 0)
                return store_error(s, -ENOENT, "Token %s does not exist", id);
        return 0;
}
