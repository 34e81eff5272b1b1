/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the store's front (store.c, store-lease.c, store-control.c) shares
 * with its backends: the vtable and the Store base every backend embeds,
 * typed column values with the mapping of records to and from them, and the
 * schema migrations. */
#pragma once

#include "store.h"

/* One column value, as bound to a statement or read from a row. The type is
 * kept even for NULL, because PostgreSQL wants every parameter's type. */
typedef enum StoreValueType {
        STORE_VALUE_TEXT,
        STORE_VALUE_INT,
        STORE_VALUE_BOOL,
        STORE_VALUE_DOUBLE,
        _STORE_VALUE_TYPE_MAX,
} StoreValueType;

typedef struct StoreValue {
        StoreValueType type;
        bool null;
        union {
                const char *text;
                int64_t i;
                bool b;
                double d;
        };
} StoreValue;

#define VALUE_TEXT(s) ((StoreValue) { .type = STORE_VALUE_TEXT, .null = !(s), .text = (s) })
#define VALUE_INT(x) ((StoreValue) { .type = STORE_VALUE_INT, .i = (int64_t) (x) })
#define VALUE_BOOL(x) ((StoreValue) { .type = STORE_VALUE_BOOL, .b = (x) })
#define VALUE_DOUBLE(x) ((StoreValue) { .type = STORE_VALUE_DOUBLE, .d = (x) })
/* Timestamps: 0 ("unset") is stored as NULL. */
#define VALUE_USEC(x) ((StoreValue) { .type = STORE_VALUE_INT, .null = (x) == 0, .i = (int64_t) (x) })

/* A parameter array and its length, for the `params, n_params` arguments. */
#define PARAMS(...) (const StoreValue[]) { __VA_ARGS__ }, ELEMENTSOF(((const StoreValue[]) { __VA_ARGS__ }))

/* Called for each result row; a negative return stops the query with it. */
typedef int (*StoreRowFunc)(const StoreValue *row, size_t n_columns, void *userdata);

/* Row callbacks shared by the backends. userdata: */
int store_row_int64(const StoreValue *row, size_t n_columns, void *userdata);     /* int64_t *, NULL → 0 */
int store_row_string(const StoreValue *row, size_t n_columns, void *userdata);    /* char ** */
int store_row_task(const StoreValue *row, size_t n_columns, void *userdata);      /* Task ** */
int store_row_contract(const StoreValue *row, size_t n_columns, void *userdata);  /* Contract ** */
/* "version, status" of a task. */
typedef struct StoreTaskState {
        int64_t version;
        TaskState status;
} StoreTaskState;
int store_row_task_state(const StoreValue *row, size_t n_columns, void *userdata); /* StoreTaskState * */
/* A status column. */
int store_value_task_state(const StoreValue *v, TaskState *ret);
/* "status" of each task of a contract: sets *(bool *) userdata if one is active. */
int store_row_task_active(const StoreValue *row, size_t n_columns, void *userdata);

/* Column lists in the order of the to_values()/from_values() arrays.
 * The first four columns of tasks and contracts are the ones an update does
 * not take from the record (id, created_at) or sets itself (updated_at,
 * version), so an UPDATE can bind the very array an INSERT binds. */
#define TASK_COLUMNS                                                                    \
        "id, created_at, updated_at, version, owner, name, plan, repo, base_branch, "  \
        "target_branch, parent_task_id, contract_id, is_supervisor, autonomous_loop, " \
        "max_iterations, iteration_count, status, error, worktree, branch, session_id, " \
        "cost_usd, started_at, completed_at, max_cost_usd, copy_files, base_commit, admin, " \
        "tasks_max, memory_max, cpu_weight"
#define TASK_N_COLUMNS 31

#define CONTRACT_COLUMNS                                                                \
        "id, created_at, updated_at, version, owner, name, description, type, phase, " \
        "status, autonomous_loop, supervisor_task_id, max_cost_usd"
#define CONTRACT_N_COLUMNS 13

/* The object id column is named after the log (task_id, contract_id). */
#define EVENT_N_COLUMNS 5

#define CONTROL_COLUMNS "id, task_id, kind, payload, created_at, delivered_at, done_at, result"
#define CONTROL_N_COLUMNS 8

#define NOTIFICATION_COLUMNS "id, owner, task_id, contract_id, level, message, created_at, read_at"
#define NOTIFICATION_N_COLUMNS 8

/* A task's row. The values point into the task, except copy_files, stored
 * as JSON text made for the row and owned by `text`. */
typedef struct TaskValues {
        StoreValue v[TASK_N_COLUMNS];
        char *text;
} TaskValues;
int task_to_values(const Task *t, TaskValues *ret);
void task_values_done(TaskValues *v);
int task_from_values(const StoreValue *v, size_t n, Task **ret);
void contract_to_values(const Contract *c, StoreValue ret[static CONTRACT_N_COLUMNS]);
int contract_from_values(const StoreValue *v, size_t n, Contract **ret);
/* These fill *ret (an array element); on failure *ret holds whatever was copied. */
int event_from_values(const StoreValue *v, size_t n, Event *ret);
void control_request_to_values(const ControlRequest *r, StoreValue ret[static CONTROL_N_COLUMNS]);
int control_request_from_values(const StoreValue *v, size_t n, ControlRequest *ret);
void notification_to_values(const Notification *n, StoreValue ret[static NOTIFICATION_N_COLUMNS]);
int notification_from_values(const StoreValue *v, size_t n, Notification *ret);

/* Argument checks shared by both backends: enums in range, timestamps that
 * fit in a BIGINT, finite cost, every string valid UTF-8. */
int task_check(const Task *t);
int contract_check(const Contract *c);
int control_request_check(const ControlRequest *r);
int notification_check(const Notification *n);
bool store_string_is_valid(const char *s);

/* The list queries are the same on both backends except for the parameter
 * sigil ('?' makes SQLite's ?NNN, '$' PostgreSQL's $N), so they are built
 * once. ret_params must hold 8 values. */
#define STORE_LIST_PARAMS_MAX 8
int store_task_list_sql(const TaskFilter *f, char sigil, char **ret_sql, StoreValue *ret_params, size_t *ret_n);
int store_contract_list_sql(const ContractFilter *f, char sigil, char **ret_sql, StoreValue *ret_params,
                            size_t *ret_n);
int store_event_list_sql(EventLog log, const char *object_id, int64_t after, size_t limit, char sigil,
                         char **ret_sql, StoreValue *ret_params, size_t *ret_n);

/* The PostgreSQL channel of wake-ups (store.h). */
#define STORE_WAKEUP_CHANNEL "makima"

/* What a claim writes: the lease and the time it was taken. */
typedef struct StoreClaim {
        const char *worker_id;
        const char *token;
        usec_t now;
        usec_t expires_at;
} StoreClaim;

/* The tasks a claim may take: pending ones, active ones whose lease
 * expired (or that have none: nobody runs them), and interrupted ones
 * nobody holds that have a control request waiting (a message sent to a
 * task whose worker stopped meanwhile must still reach an agent). The IN
 * term lets both planners look only at unfinished tasks through the index
 * tasks_status, however many finished ones there are. NOW is the parameter
 * with the time. */
#define TASK_CLAIMABLE(NOW)                                                             \
        "status IN ('pending', 'running', 'paused', 'waiting', 'interrupted') AND "     \
        "(status = 'pending' OR lease_expires_at IS NULL OR lease_expires_at < " NOW ") AND " \
        "(status <> 'interrupted' OR EXISTS (SELECT 1 FROM control_requests r "         \
        "WHERE r.task_id = tasks.id AND r.done_at IS NULL))"

typedef struct StoreVTable StoreVTable;

/* The statements every backend has per object kind, with which the front
 * writes updates and appends to logs the same way on both (store.c). */
typedef enum StoreObjectStatement {
        STORE_OBJECT_VERSION,           /* id: first column the version */
        STORE_OBJECT_UPDATE,            /* the *_to_values() row, WHERE id and version */
        STORE_OBJECT_EVENT_LAST,        /* id: MAX(seq) of its log */
        STORE_OBJECT_EVENT_INSERT,      /* id, seq, type, payload, created_at */
        _STORE_OBJECT_STATEMENT_MAX,
} StoreObjectStatement;

struct Store {
        const StoreVTable *vtable;
        StoreBackend backend;
        int schema_version;
        char *error;
};

/* The front has checked the arguments and filled in what store.h promises
 * (ids, timestamps) before it calls a backend; the backends only talk to
 * their database. Records passed to insert/update hold the row as it is to
 * be written: for updates, `version` is the one the caller read and
 * `updated_at` the new time. */
struct StoreVTable {
        char sigil;

        /* On failure *ret_error (if not NULL) gets the words the handle
         * recorded, or NULL if there were none. */
        int (*open)(const char *path, Store **ret, char **ret_error);
        void (*free)(Store *s);
        /* A cheap round trip to the database. */
        int (*ping)(Store *s);

        /* A transaction for the statements the front runs itself (leases,
         * control requests). SQLite: BEGIN IMMEDIATE, so it is the only
         * writer from the start. rollback is a no-op outside one. */
        int (*begin)(Store *s);
        int (*commit)(Store *s);
        void (*rollback)(Store *s);

        /* Runs a statement built by the front; returns the number of rows
         * (for a query) or changed rows (otherwise). */
        int (*query)(Store *s, const char *sql, const StoreValue *params, size_t n_params, StoreRowFunc f,
                     void *userdata);

        /* The gets and token_lookup return the rows found (0 or 1), the
         * token calls the rows changed; the front says what none means. */
        int (*contract_insert)(Store *s, const Contract *c);
        int (*contract_get)(Store *s, const char *id, Contract **ret);
        int (*contract_update)(Store *s, const Contract *c, const Event *event, usec_t now, int64_t *ret_seq);
        int (*contract_delete)(Store *s, const char *id, int64_t version);

        int (*task_insert)(Store *s, const Task *t);
        int (*task_get)(Store *s, const char *id, Task **ret);
        int (*task_update)(Store *s, const Task *t, const Event *event, usec_t now, int64_t *ret_seq);
        int (*task_delete)(Store *s, const char *id, int64_t version);

        int (*token_insert)(Store *s, const char *id, const char *owner, const char *token_hash,
                            const char *description, usec_t now);
        int (*token_lookup)(Store *s, const char *token_hash, char **ret_owner);
        int (*token_revoke)(Store *s, const char *id, usec_t now);

        /* Runs one of the statements each backend has per object kind, for
         * the paths the front shares (see StoreObjectStatement). */
        int (*run_object)(Store *s, EventLog kind, StoreObjectStatement which, const StoreValue *params,
                          size_t n_params, StoreRowFunc f, void *userdata);
        /* SQLite writes every update in a transaction of its own;
         * PostgreSQL only one that also appends an event, since the UPDATE
         * alone is atomic there and its row lock keeps appenders out. */
        bool update_always_in_transaction;

        /* Inside the front's transaction: finds the row of the log's owner
         * and keeps other appenders away from its log until the end of the
         * transaction (PostgreSQL: a row lock; SQLite: BEGIN IMMEDIATE did
         * it already). Returns the rows found. */
        int (*lock)(Store *s, EventLog log, const char *object_id);
        /* Inside the front's transaction: claims task_id, or the oldest
         * claimable task if it is NULL (see TASK_CLAIMABLE). Returns 1 with
         * the task as claimed and the status it had, or 0. */
        int (*task_claim)(Store *s, const char *task_id, const StoreClaim *c, Task **ret_task,
                          TaskState *ret_old_status);

        /* NULL where the backend has no notifications. */
        int (*listen)(Store *s, int *ret_fd);
        int (*listen_drain)(Store *s);
};

extern const StoreVTable store_sqlite_vtable;
extern const StoreVTable store_pg_vtable;

/* Records the words for a failure on s and returns r. */
int store_error(Store *s, int r, const char *format, ...) _printf_(3, 4);

/* ---- what the front's files share (store.c) ---- */

/* -EINVAL, with "Invalid argument: <what>" as the words. */
int store_invalid(Store *s, const char *what);
/* An id or filter value: not empty, and text PostgreSQL takes (UTF-8). */
bool store_key_is_valid(const char *s);
/* What a backend's contract_get or task_get returned (-errno, or the
 * rows found) as the front returns it: 0, or -errno with the words. */
int store_got(Store *s, int r, EventLog kind, const char *id);
/* A new id in *ret if `id` is NULL, else *ret = NULL. */
int store_id_make(const char *id, char **ret);

/* A backend's update of the row `v` (n columns) of object `id` read at
 * `version`, with `event` (if not NULL) appended in the same transaction. */
int store_object_update(Store *s, EventLog kind, const char *id, int64_t version, const StoreValue *v, size_t n,
                        const Event *event, usec_t now, int64_t *ret_seq);
/* Inside the front's transaction, which holds the row lock of the log's
 * owner (PostgreSQL) or is the only writer (SQLite). Events get
 * created_at = now where theirs is 0; returns the first seq. */
int store_object_events_insert(Store *s, EventLog log, const char *object_id, const Event *events, size_t n,
                               usec_t now, int64_t *ret_first_seq);

/* A transaction is open while the guard is set; leaving its scope without
 * store_commit() rolls it back. */
int store_begin(Store *s, Store **txn);
int store_commit(Store **txn);
void store_rollbackp(Store **txn);

/* Events about to be written to object_id's log: checked, with copies of
 * object_id for those that have none, handed to them on success by
 * store_events_complete(). */
typedef struct StoreEventIds {
        char **items;
        size_t n;
} StoreEventIds;
void store_event_ids_done(StoreEventIds *ids);
int store_events_prepare(Store *s, const Event *events, size_t n, const char *object_id, StoreEventIds *ret_ids);
void store_events_complete(Event *events, size_t n, StoreEventIds *ids, int64_t first_seq, usec_t now);

/* ---- schema ---- */

typedef struct StoreMigration {
        int version;
        const char *sql[_STORE_BACKEND_MAX];
} StoreMigration;

extern const StoreMigration store_migrations[];
extern const size_t store_n_migrations;

/* Created (if missing) in the transaction of each migration, before it. */
#define STORE_SCHEMA_VERSION_TABLE                                                      \
        "CREATE TABLE IF NOT EXISTS schema_version ("                                   \
        " version INTEGER PRIMARY KEY NOT NULL,"                                        \
        " applied_at BIGINT NOT NULL)"

static inline int store_latest_schema_version(void) {
        return store_migrations[store_n_migrations - 1].version;
}
