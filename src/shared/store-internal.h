/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the store's front (store.c) shares with its backends: the vtable and
 * the Store base every backend embeds, typed column values with the mapping
 * of records to and from them, and the schema migrations. */
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
        "cost_usd, started_at, completed_at"
#define TASK_N_COLUMNS 24

#define CONTRACT_COLUMNS                                                                \
        "id, created_at, updated_at, version, owner, name, description, type, phase, " \
        "status, autonomous_loop, supervisor_task_id"
#define CONTRACT_N_COLUMNS 12

/* The object id column is named after the log (task_id, contract_id). */
#define EVENT_N_COLUMNS 5

void task_to_values(const Task *t, StoreValue ret[static TASK_N_COLUMNS]);
int task_from_values(const StoreValue *v, size_t n, Task **ret);
void contract_to_values(const Contract *c, StoreValue ret[static CONTRACT_N_COLUMNS]);
int contract_from_values(const StoreValue *v, size_t n, Contract **ret);
/* Fills *ret (an array element); on failure *ret holds whatever was copied. */
int event_from_values(const StoreValue *v, size_t n, Event *ret);

/* Argument checks shared by both backends: enums in range, timestamps that
 * fit in a BIGINT, finite cost, every string valid UTF-8. */
int task_check(const Task *t);
int contract_check(const Contract *c);
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

typedef struct StoreVTable StoreVTable;

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

        int (*open)(const char *path, Store **ret);
        void (*free)(Store *s);

        /* Runs a statement built by the front; returns the number of rows
         * (for a query) or changed rows (otherwise). */
        int (*query)(Store *s, const char *sql, const StoreValue *params, size_t n_params, StoreRowFunc f,
                     void *userdata);

        int (*contract_insert)(Store *s, const Contract *c);
        int (*contract_get)(Store *s, const char *id, Contract **ret);
        int (*contract_update)(Store *s, const Contract *c, const Event *event, usec_t now, int64_t *ret_seq);
        int (*contract_delete)(Store *s, const char *id, int64_t version);

        int (*task_insert)(Store *s, const Task *t);
        int (*task_get)(Store *s, const char *id, Task **ret);
        int (*task_update)(Store *s, const Task *t, const Event *event, usec_t now, int64_t *ret_seq);
        int (*task_delete)(Store *s, const char *id, int64_t version);

        /* Events get created_at = now where theirs is 0; returns the first seq. */
        int (*event_append)(Store *s, EventLog log, const char *object_id, const Event *events, size_t n,
                            usec_t now, int64_t *ret_first_seq);

        int (*token_insert)(Store *s, const char *id, const char *owner, const char *token_hash,
                            const char *description, usec_t now);
        int (*token_lookup)(Store *s, const char *token_hash, char **ret_owner);
        int (*token_revoke)(Store *s, const char *id, usec_t now);
};

extern const StoreVTable store_sqlite_vtable;
extern const StoreVTable store_pg_vtable;

/* Records the words for a failure on s and returns r. */
int store_error(Store *s, int r, const char *format, ...) _printf_(3, 4);

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
