/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The SQLite backend: one database file in WAL mode. Every write runs in a
 * BEGIN IMMEDIATE transaction, so concurrent writers (other handles, other
 * processes) queue on the busy timeout instead of failing half-way, and the
 * fixed statements are prepared once per handle. */

#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store-internal.h"

#define SQLITE_BUSY_TIMEOUT_MSEC 5000
#define SQLITE_COLUMNS_MAX 32

typedef enum SqliteStatement {
        SQL_BEGIN,
        SQL_COMMIT,
        SQL_SCHEMA_VERSION,
        SQL_SCHEMA_VERSION_INSERT,
        SQL_CONTRACT_INSERT,
        SQL_CONTRACT_GET,
        SQL_CONTRACT_UPDATE,
        SQL_CONTRACT_VERSION,
        SQL_CONTRACT_TASK_STATES,
        SQL_CONTRACT_DELETE,
        SQL_TASK_INSERT,
        SQL_TASK_GET,
        SQL_TASK_UPDATE,
        SQL_TASK_STATE,
        SQL_TASK_DELETE,
        SQL_TASK_EVENT_LAST,
        SQL_TASK_EVENT_INSERT,
        SQL_CONTRACT_EVENT_LAST,
        SQL_CONTRACT_EVENT_INSERT,
        SQL_TOKEN_INSERT,
        SQL_TOKEN_LOOKUP,
        SQL_TOKEN_REVOKE,
        SQL_CLAIM_NEXT,
        SQL_CLAIM_ID,
        SQL_CLAIM,
        _SQL_MAX,
} SqliteStatement;

/* Parameters are numbered as in the *_to_values() arrays (store-internal.h). */
static const char *const sqlite_sql[_SQL_MAX] = {
        [SQL_BEGIN] = "BEGIN IMMEDIATE",
        [SQL_COMMIT] = "COMMIT",
        [SQL_SCHEMA_VERSION] = "SELECT MAX(version) FROM schema_version",
        [SQL_SCHEMA_VERSION_INSERT] = "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",

        [SQL_CONTRACT_INSERT] =
                "INSERT INTO contracts (" CONTRACT_COLUMNS ") "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        [SQL_CONTRACT_GET] = "SELECT " CONTRACT_COLUMNS " FROM contracts WHERE id = ?1",
        [SQL_CONTRACT_UPDATE] =
                "UPDATE contracts SET updated_at = ?3, version = version + 1, owner = ?5, name = ?6, "
                "description = ?7, type = ?8, phase = ?9, status = ?10, autonomous_loop = ?11, "
                "supervisor_task_id = ?12, max_cost_usd = ?13 "
                "WHERE id = ?1 AND version = ?4",
        [SQL_CONTRACT_VERSION] = "SELECT version FROM contracts WHERE id = ?1",
        [SQL_CONTRACT_TASK_STATES] = "SELECT status FROM tasks WHERE contract_id = ?1",
        [SQL_CONTRACT_DELETE] = "DELETE FROM contracts WHERE id = ?1",

        [SQL_TASK_INSERT] =
                "INSERT INTO tasks (" TASK_COLUMNS ") "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
                "?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31)",
        [SQL_TASK_GET] = "SELECT " TASK_COLUMNS " FROM tasks WHERE id = ?1",
        [SQL_TASK_UPDATE] =
                "UPDATE tasks SET updated_at = ?3, version = version + 1, owner = ?5, name = ?6, plan = ?7, "
                "repo = ?8, base_branch = ?9, target_branch = ?10, parent_task_id = ?11, contract_id = ?12, "
                "is_supervisor = ?13, autonomous_loop = ?14, max_iterations = ?15, iteration_count = ?16, "
                "status = ?17, error = ?18, worktree = ?19, branch = ?20, session_id = ?21, cost_usd = ?22, "
                "started_at = ?23, completed_at = ?24, max_cost_usd = ?25, copy_files = ?26, base_commit = ?27, "
                "admin = ?28, tasks_max = ?29, memory_max = ?30, cpu_weight = ?31 "
                "WHERE id = ?1 AND version = ?4",
        [SQL_TASK_STATE] = "SELECT version, status FROM tasks WHERE id = ?1",
        [SQL_TASK_DELETE] = "DELETE FROM tasks WHERE id = ?1",

        [SQL_TASK_EVENT_LAST] = "SELECT MAX(seq) FROM task_events WHERE task_id = ?1",
        [SQL_TASK_EVENT_INSERT] =
                "INSERT INTO task_events (task_id, seq, type, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        [SQL_CONTRACT_EVENT_LAST] = "SELECT MAX(seq) FROM contract_events WHERE contract_id = ?1",
        [SQL_CONTRACT_EVENT_INSERT] =
                "INSERT INTO contract_events (contract_id, seq, type, payload, created_at) "
                "VALUES (?1, ?2, ?3, ?4, ?5)",

        [SQL_TOKEN_INSERT] =
                "INSERT INTO api_tokens (id, owner, token_hash, description, created_at) "
                "VALUES (?1, ?2, ?3, ?4, ?5)",
        [SQL_TOKEN_LOOKUP] = "SELECT owner FROM api_tokens WHERE token_hash = ?1 AND revoked_at IS NULL",
        [SQL_TOKEN_REVOKE] = "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",

        /* ?1 now, ?2 the task */
        [SQL_CLAIM_NEXT] =
                "SELECT id, status FROM tasks WHERE " TASK_CLAIMABLE("?1") " ORDER BY created_at, id LIMIT 1",
        [SQL_CLAIM_ID] = "SELECT id, status FROM tasks WHERE id = ?2 AND " TASK_CLAIMABLE("?1"),
        [SQL_CLAIM] =
                "UPDATE tasks SET status = 'running', started_at = COALESCE(started_at, ?2), updated_at = ?2, "
                "version = version + 1, worker_id = ?3, lease_token = ?4, lease_expires_at = ?5 "
                "WHERE id = ?1",
};

/* Per object kind (indexed by EventLog, then StoreObjectStatement): what
 * the front's shared update and append paths run (store.c). */
static const SqliteStatement sqlite_objects[_EVENT_LOG_MAX][_STORE_OBJECT_STATEMENT_MAX] = {
        [EVENT_LOG_TASK] = { SQL_TASK_STATE, SQL_TASK_UPDATE, SQL_TASK_EVENT_LAST, SQL_TASK_EVENT_INSERT },
        [EVENT_LOG_CONTRACT] = { SQL_CONTRACT_VERSION, SQL_CONTRACT_UPDATE, SQL_CONTRACT_EVENT_LAST,
                                 SQL_CONTRACT_EVENT_INSERT },
};

typedef struct SqliteStore {
        Store base;
        sqlite3 *db;
        sqlite3_stmt *statements[_SQL_MAX];
} SqliteStore;

static SqliteStore *sqlite_store(Store *s) {
        return (SqliteStore *) s;
}

static int sqlite_fail(SqliteStore *q, int rc) {
        int r;

        /* A full disk is SQLITE_FULL when a write of the database or its
         * WAL finds no room, and an I/O error with ENOSPC behind it when
         * growing the shared-memory file does. */
        if ((rc & 0xff) == SQLITE_FULL ||
            ((rc & 0xff) == SQLITE_IOERR && q->db && sqlite3_system_errno(q->db) == ENOSPC))
                return store_error(&q->base, -ENOSPC, "%s", q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));

        switch (rc) {
        case SQLITE_CONSTRAINT_UNIQUE:
        case SQLITE_CONSTRAINT_PRIMARYKEY:
                r = -EEXIST;
                break;
        case SQLITE_CONSTRAINT_FOREIGNKEY:
                r = -ENOENT;
                break;
        case SQLITE_CONSTRAINT_NOTNULL:
        case SQLITE_CONSTRAINT_CHECK:
                r = -EINVAL;
                break;
        case SQLITE_NOMEM:
                r = -ENOMEM;
                break;
        default:
                r = -EIO;
        }
        return store_error(&q->base, r, "%s", q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
}

static int sqlite_bind(SqliteStore *q, sqlite3_stmt *st, const StoreValue *params, size_t n) {
        /* An UPDATE does not use every value of the array it shares with the
         * INSERT; slots past the statement's last one do not exist. */
        size_t max = (size_t) sqlite3_bind_parameter_count(st);

        for (size_t i = 0; i < n && i < max; i++) {
                const StoreValue *v = &params[i];
                int idx = (int) i + 1, rc;

                if (v->null)
                        rc = sqlite3_bind_null(st, idx);
                else
                        switch (v->type) {
                        case STORE_VALUE_TEXT:
                                rc = sqlite3_bind_text(st, idx, v->text, -1, SQLITE_STATIC);
                                break;
                        case STORE_VALUE_INT:
                                rc = sqlite3_bind_int64(st, idx, v->i);
                                break;
                        case STORE_VALUE_BOOL:
                                rc = sqlite3_bind_int(st, idx, v->b);
                                break;
                        case STORE_VALUE_DOUBLE:
                                rc = sqlite3_bind_double(st, idx, v->d);
                                break;
                        default:
                                return -EINVAL;
                        }
                if (rc != SQLITE_OK)
                        return sqlite_fail(q, rc);
        }
        return 0;
}

static void sqlite_row(sqlite3_stmt *st, StoreValue *v, size_t n) {
        for (size_t i = 0; i < n; i++)
                switch (sqlite3_column_type(st, (int) i)) {
                case SQLITE_NULL:
                        v[i] = VALUE_TEXT(NULL);
                        break;
                case SQLITE_INTEGER:
                        v[i] = VALUE_INT(sqlite3_column_int64(st, (int) i));
                        break;
                case SQLITE_FLOAT:
                        v[i] = (StoreValue) { .type = STORE_VALUE_DOUBLE, .d = sqlite3_column_double(st, (int) i) };
                        break;
                default:
                        v[i] = VALUE_TEXT((const char *) sqlite3_column_text(st, (int) i));
                }
}

static void sqlite_finalizep(sqlite3_stmt **st) {
        if (*st)
                (void) sqlite3_finalize(*st);
}

static int sqlite_step_rows(SqliteStore *q, sqlite3_stmt *st, const StoreValue *params, size_t n_params,
                            StoreRowFunc f, void *userdata) {
        size_t n_columns = (size_t) sqlite3_column_count(st);
        StoreValue row[SQLITE_COLUMNS_MAX];
        int r, rows = 0;

        if (n_columns > SQLITE_COLUMNS_MAX)
                return -E2BIG;
        r = sqlite_bind(q, st, params, n_params);
        if (r < 0)
                return r;

        for (;;) {
                int rc = sqlite3_step(st);
                if (rc == SQLITE_DONE)
                        break;
                if (rc != SQLITE_ROW)
                        return sqlite_fail(q, rc);
                rows++;
                if (f) {
                        sqlite_row(st, row, n_columns);
                        r = f(row, n_columns, userdata);
                        if (r < 0)
                                return r;
                }
        }

        return n_columns > 0 ? rows : sqlite3_changes(q->db);
}

/* Binds, steps through every row and leaves the statement reset, also when
 * a row callback stopped it half-way. Returns the number of rows of a
 * query, or of rows changed by anything else. */
static int sqlite_step_all(SqliteStore *q, sqlite3_stmt *st, const StoreValue *params, size_t n_params,
                           StoreRowFunc f, void *userdata) {
        int r;

        r = sqlite_step_rows(q, st, params, n_params, f, userdata);
        (void) sqlite3_reset(st);
        (void) sqlite3_clear_bindings(st);
        return r;
}

static int sqlite_run(SqliteStore *q, SqliteStatement id, const StoreValue *params, size_t n_params,
                      StoreRowFunc f, void *userdata) {
        if (!q->statements[id]) {
                int rc = sqlite3_prepare_v3(q->db, sqlite_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                            &q->statements[id], NULL);
                if (rc != SQLITE_OK)
                        return sqlite_fail(q, rc);
        }
        return sqlite_step_all(q, q->statements[id], params, n_params, f, userdata);
}

static int sqlite_exec(SqliteStore *q, const char *script) {
        int rc = sqlite3_exec(q->db, script, NULL, NULL, NULL);
        return rc == SQLITE_OK ? 0 : sqlite_fail(q, rc);
}

static int sqlite_query(Store *s, const char *sql, const StoreValue *params, size_t n_params, StoreRowFunc f,
                        void *userdata) {
        SqliteStore *q = sqlite_store(s);
        _cleanup_(sqlite_finalizep) sqlite3_stmt *st = NULL;
        int rc;

        rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sqlite_fail(q, rc);
        return sqlite_step_all(q, st, params, n_params, f, userdata);
}

/* A transaction is open while the guard `txn` is set; leaving the scope
 * without sqlite_commit() rolls it back. SQLite may already have rolled
 * back on its own after some errors, hence the autocommit test. */
static void sqlite_rollbackp(SqliteStore **txn) {
        if (*txn && !sqlite3_get_autocommit((*txn)->db))
                (void) sqlite3_exec((*txn)->db, "ROLLBACK", NULL, NULL, NULL);
}

static int sqlite_begin(SqliteStore *q, SqliteStore **txn) {
        int r = sqlite_run(q, SQL_BEGIN, NULL, 0, NULL, NULL);
        if (r < 0)
                return r;
        *txn = q;
        return 0;
}

static int sqlite_commit(SqliteStore **txn) {
        int r = sqlite_run(*txn, SQL_COMMIT, NULL, 0, NULL, NULL);
        if (r < 0)
                return r;
        *txn = NULL;
        return 0;
}

/* One write statement in its own transaction: returns the rows changed. */
static int sqlite_write(SqliteStore *q, SqliteStatement id, const StoreValue *params, size_t n_params) {
        _cleanup_(sqlite_rollbackp) SqliteStore *txn = NULL;
        int r, changes;

        r = sqlite_begin(q, &txn);
        if (r < 0)
                return r;
        changes = sqlite_run(q, id, params, n_params, NULL, NULL);
        if (changes < 0)
                return changes;
        r = sqlite_commit(&txn);
        if (r < 0)
                return r;
        return changes;
}

static int sqlite_migrate(SqliteStore *q) {
        for (;;) {
                _cleanup_(sqlite_rollbackp) SqliteStore *txn = NULL;
                const StoreMigration *m = NULL;
                int64_t current;
                int r;

                r = sqlite_begin(q, &txn);
                if (r < 0)
                        return r;
                r = sqlite_exec(q, STORE_SCHEMA_VERSION_TABLE);
                if (r < 0)
                        return r;
                r = sqlite_run(q, SQL_SCHEMA_VERSION, NULL, 0, store_row_int64, &current);
                if (r < 0)
                        return r;
                if (current > store_latest_schema_version())
                        return store_error(&q->base, -EPROTONOSUPPORT,
                                           "Database schema version %" PRIi64 " is newer than this makima knows (%d)",
                                           current, store_latest_schema_version());

                for (size_t i = 0; i < store_n_migrations && !m; i++)
                        if (store_migrations[i].version > current)
                                m = &store_migrations[i];
                if (!m) {
                        q->base.schema_version = (int) current;
                        return sqlite_commit(&txn);
                }

                r = sqlite_exec(q, m->sql[STORE_BACKEND_SQLITE]);
                if (r < 0)
                        return r;
                r = sqlite_run(q, SQL_SCHEMA_VERSION_INSERT, PARAMS(VALUE_INT(m->version), VALUE_INT(now_usec())),
                               NULL, NULL);
                if (r < 0)
                        return r;
                r = sqlite_commit(&txn);
                if (r < 0)
                        return r;
        }
}

static void sqlite_disconnect(SqliteStore *q) {
        for (size_t i = 0; i < _SQL_MAX; i++)
                q->statements[i] = (sqlite3_finalize(q->statements[i]), NULL);
        (void) sqlite3_close(q->db);
        q->db = NULL;
}

static void sqlite_free(Store *s) {
        SqliteStore *q = sqlite_store(s);

        sqlite_disconnect(q);
        free(q);
}

static int sqlite_connect_once(SqliteStore *q, const char *path) {
        int r, rc;

        rc = sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK)
                return sqlite_fail(q, rc);
        (void) sqlite3_extended_result_codes(q->db, 1);
        (void) sqlite3_busy_timeout(q->db, SQLITE_BUSY_TIMEOUT_MSEC);

        r = sqlite_exec(q, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;");
        if (r < 0)
                return r;
        return sqlite_migrate(q);
}

static int sqlite_connect(SqliteStore *q, const char *path) {
        bool fresh = false;
        usec_t deadline;

        if (!streq(path, ":memory:")) {
                /* SQLite would create the file 0644 (less umask), and it holds
                 * every agent's output. Its -wal and -shm files take the
                 * database file's mode. */
                _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
                struct stat st;

                if (fd < 0)
                        return store_error(&q->base, -errno, "Failed to open %s: %m", path);
                if (fstat(fd, &st) < 0)
                        return store_error(&q->base, -errno, "Failed to stat %s: %m", path);
                fresh = st.st_size == 0;
        }

        /* Two processes turning the same new, empty file into a WAL database
         * race in ways the busy handler does not cover: the loser of the lock
         * escalation gets SQLITE_BUSY at once (waiting could deadlock), or
         * reads a header half written (SQLITE_NOTADB), or finds the rollback
         * journal already gone (SQLITE_IOERR_DELETE_NOENT). Each is over once
         * the winner is done, so for a fresh file only, start again. */
        deadline = now_usec() + SQLITE_BUSY_TIMEOUT_MSEC * USEC_PER_MSEC;
        for (;;) {
                int r, rc;

                r = sqlite_connect_once(q, path);
                if (r >= 0)
                        return r;
                rc = q->db ? sqlite3_errcode(q->db) : SQLITE_OK;
                if (!fresh || !IN_SET(rc, SQLITE_BUSY, SQLITE_NOTADB, SQLITE_IOERR) || now_usec() > deadline)
                        return r;
                sqlite_disconnect(q);
                q->base.error = mfree(q->base.error);
                (void) usleep(10 * USEC_PER_MSEC);
        }
}

static int sqlite_open(const char *path, Store **ret, char **ret_error) {
        _cleanup_(store_freep) Store *s = NULL;
        SqliteStore *q;
        int r;

        q = calloc(1, sizeof(SqliteStore));
        if (!q)
                return -ENOMEM;
        q->base.vtable = &store_sqlite_vtable;
        q->base.backend = STORE_BACKEND_SQLITE;
        s = &q->base;

        r = sqlite_connect(q, path);
        if (r < 0) {
                if (ret_error)
                        *ret_error = TAKE_PTR(s->error);
                return r;
        }

        *ret = TAKE_PTR(s);
        return 0;
}

static int sqlite_ping(Store *s) {
        int r;

        r = sqlite_query(s, "SELECT 1", NULL, 0, NULL, NULL);
        return r < 0 ? r : 0;
}

/* Through sqlite_run(), so that these statements too are prepared once. */
static int sqlite_run_object(Store *s, EventLog kind, StoreObjectStatement which, const StoreValue *params,
                             size_t n_params, StoreRowFunc f, void *userdata) {
        return sqlite_run(sqlite_store(s), sqlite_objects[kind][which], params, n_params, f, userdata);
}

static int sqlite_contract_insert(Store *s, const Contract *c) {
        StoreValue v[CONTRACT_N_COLUMNS];
        int r;

        contract_to_values(c, v);
        r = sqlite_write(sqlite_store(s), SQL_CONTRACT_INSERT, v, CONTRACT_N_COLUMNS);
        return r < 0 ? r : 0;
}

static int sqlite_contract_get(Store *s, const char *id, Contract **ret) {
        _cleanup_(contract_freep) Contract *c = NULL;
        int r;

        r = sqlite_run(sqlite_store(s), SQL_CONTRACT_GET, PARAMS(VALUE_TEXT(id)), store_row_contract, &c);
        if (r <= 0)
                return r;
        *ret = TAKE_PTR(c);
        return 1;
}

static int sqlite_contract_update(Store *s, const Contract *c, const Event *event, usec_t now, int64_t *ret_seq) {
        StoreValue v[CONTRACT_N_COLUMNS];

        contract_to_values(c, v);
        return store_object_update(s, EVENT_LOG_CONTRACT, c->id, c->version, v, CONTRACT_N_COLUMNS, event,
                                   now, ret_seq);
}

static int sqlite_contract_delete(Store *s, const char *id, int64_t version) {
        _cleanup_(sqlite_rollbackp) SqliteStore *txn = NULL;
        SqliteStore *q = sqlite_store(s);
        bool active = false;
        int64_t current;
        int r;

        r = sqlite_begin(q, &txn);
        if (r < 0)
                return r;
        r = sqlite_run(q, SQL_CONTRACT_VERSION, PARAMS(VALUE_TEXT(id)), store_row_int64, &current);
        if (r < 0)
                return r;
        if (r == 0)
                return store_error(s, -ENOENT, "Contract %s does not exist", id);
        if (version >= 0 && current != version)
                return store_error(s, -ESTALE, "Contract %s was changed since version %" PRIi64, id, version);
        r = sqlite_run(q, SQL_CONTRACT_TASK_STATES, PARAMS(VALUE_TEXT(id)), store_row_task_active, &active);
        if (r < 0)
                return r;
        if (active)
                return store_error(s, -EBUSY, "Contract %s has an active task", id);
        /* Its tasks and every event go with it: ON DELETE CASCADE. */
        r = sqlite_run(q, SQL_CONTRACT_DELETE, PARAMS(VALUE_TEXT(id)), NULL, NULL);
        if (r < 0)
                return r;
        return sqlite_commit(&txn);
}

static int sqlite_task_insert(Store *s, const Task *t) {
        _cleanup_(task_values_done) TaskValues v = {};
        int r;

        r = task_to_values(t, &v);
        if (r < 0)
                return r;
        r = sqlite_write(sqlite_store(s), SQL_TASK_INSERT, v.v, TASK_N_COLUMNS);
        if (r == -ENOENT)
                return store_error(s, r, "Contract %s does not exist", t->contract_id);
        return r < 0 ? r : 0;
}

static int sqlite_task_get(Store *s, const char *id, Task **ret) {
        _cleanup_(task_freep) Task *t = NULL;
        int r;

        r = sqlite_run(sqlite_store(s), SQL_TASK_GET, PARAMS(VALUE_TEXT(id)), store_row_task, &t);
        if (r <= 0)
                return r;
        *ret = TAKE_PTR(t);
        return 1;
}

static int sqlite_task_update(Store *s, const Task *t, const Event *event, usec_t now, int64_t *ret_seq) {
        _cleanup_(task_values_done) TaskValues v = {};
        int r;

        r = task_to_values(t, &v);
        if (r < 0)
                return r;
        return store_object_update(s, EVENT_LOG_TASK, t->id, t->version, v.v, TASK_N_COLUMNS, event, now,
                                   ret_seq);
}

static int sqlite_task_delete(Store *s, const char *id, int64_t version) {
        _cleanup_(sqlite_rollbackp) SqliteStore *txn = NULL;
        SqliteStore *q = sqlite_store(s);
        StoreTaskState state;
        int r;

        r = sqlite_begin(q, &txn);
        if (r < 0)
                return r;
        r = sqlite_run(q, SQL_TASK_STATE, PARAMS(VALUE_TEXT(id)), store_row_task_state, &state);
        if (r < 0)
                return r;
        if (r == 0)
                return store_error(s, -ENOENT, "Task %s does not exist", id);
        if (version >= 0 && state.version != version)
                return store_error(s, -ESTALE, "Task %s was changed since version %" PRIi64, id, version);
        if (task_state_is_active(state.status))
                return store_error(s, -EBUSY, "Task %s is %s", id, task_state_to_string(state.status));
        r = sqlite_run(q, SQL_TASK_DELETE, PARAMS(VALUE_TEXT(id)), NULL, NULL);
        if (r < 0)
                return r;
        return sqlite_commit(&txn);
}

/* The front's BEGIN IMMEDIATE already keeps every other writer out. */
static int sqlite_lock(Store *s, EventLog log, const char *object_id) {
        return sqlite_run(sqlite_store(s), sqlite_objects[log][STORE_OBJECT_VERSION], PARAMS(VALUE_TEXT(object_id)), NULL, NULL);
}

static int sqlite_token_insert(Store *s, const char *id, const char *owner, const char *token_hash,
                               const char *description, usec_t now) {
        int r;

        r = sqlite_write(sqlite_store(s), SQL_TOKEN_INSERT,
                         PARAMS(VALUE_TEXT(id), VALUE_TEXT(owner), VALUE_TEXT(token_hash),
                                VALUE_TEXT(description), VALUE_USEC(now)));
        return r < 0 ? r : 0;
}

static int sqlite_token_lookup(Store *s, const char *token_hash, char **ret_owner) {
        _cleanup_free_ char *owner = NULL;
        int r;

        r = sqlite_run(sqlite_store(s), SQL_TOKEN_LOOKUP, PARAMS(VALUE_TEXT(token_hash)), store_row_string, &owner);
        if (r <= 0)
                return r;
        *ret_owner = TAKE_PTR(owner);
        return 1;
}

static int sqlite_token_revoke(Store *s, const char *id, usec_t now) {
        int r;

        r = sqlite_write(sqlite_store(s), SQL_TOKEN_REVOKE, PARAMS(VALUE_TEXT(id), VALUE_USEC(now)));
        return r;
}

static int sqlite_txn_begin(Store *s) {
        int r;

        r = sqlite_run(sqlite_store(s), SQL_BEGIN, NULL, 0, NULL, NULL);
        return r < 0 ? r : 0;
}

static int sqlite_txn_commit(Store *s) {
        int r;

        r = sqlite_run(sqlite_store(s), SQL_COMMIT, NULL, 0, NULL, NULL);
        return r < 0 ? r : 0;
}

static void sqlite_txn_rollback(Store *s) {
        SqliteStore *q = sqlite_store(s);

        sqlite_rollbackp(&q);
}

typedef struct SqliteClaimable {
        char *id;
        TaskState status;
} SqliteClaimable;

static void sqlite_claimable_done(SqliteClaimable *c) {
        free(c->id);
}

/* "id, status" */
static int sqlite_row_claimable(const StoreValue *row, size_t n_columns, void *userdata) {
        SqliteClaimable *c = userdata;
        int r;

        if (n_columns != 2)
                return -EBADMSG;
        r = store_value_task_state(&row[1], &c->status);
        if (r < 0)
                return r;
        return store_row_string(row, n_columns, &c->id);
}

/* The front's BEGIN IMMEDIATE makes us the only writer: what we select
 * cannot be claimed by anyone else before our UPDATE. */
static int sqlite_task_claim(Store *s, const char *task_id, const StoreClaim *c, Task **ret_task,
                             TaskState *ret_old_status) {
        _cleanup_(sqlite_claimable_done) SqliteClaimable found = {};
        _cleanup_(task_freep) Task *t = NULL;
        SqliteStore *q = sqlite_store(s);
        int r;

        if (task_id)
                r = sqlite_run(q, SQL_CLAIM_ID, PARAMS(VALUE_USEC(c->now), VALUE_TEXT(task_id)),
                               sqlite_row_claimable, &found);
        else
                r = sqlite_run(q, SQL_CLAIM_NEXT, PARAMS(VALUE_USEC(c->now)), sqlite_row_claimable, &found);
        if (r == -EBADMSG)
                return store_error(s, r, "Malformed task status");
        if (r <= 0)
                return r;

        r = sqlite_run(q, SQL_CLAIM,
                       PARAMS(VALUE_TEXT(found.id), VALUE_USEC(c->now), VALUE_TEXT(c->worker_id),
                              VALUE_TEXT(c->token), VALUE_USEC(c->expires_at)),
                       NULL, NULL);
        if (r < 0)
                return r;
        r = store_got(s, sqlite_task_get(s, found.id, &t), EVENT_LOG_TASK, found.id);
        if (r < 0)
                return r;

        *ret_task = TAKE_PTR(t);
        *ret_old_status = found.status;
        return 1;
}

const StoreVTable store_sqlite_vtable = {
        .sigil = '?',
        .open = sqlite_open,
        .free = sqlite_free,
        .ping = sqlite_ping,
        .begin = sqlite_txn_begin,
        .commit = sqlite_txn_commit,
        .rollback = sqlite_txn_rollback,
        .query = sqlite_query,
        .run_object = sqlite_run_object,
        .update_always_in_transaction = true,
        .contract_insert = sqlite_contract_insert,
        .contract_get = sqlite_contract_get,
        .contract_update = sqlite_contract_update,
        .contract_delete = sqlite_contract_delete,
        .task_insert = sqlite_task_insert,
        .task_get = sqlite_task_get,
        .task_update = sqlite_task_update,
        .task_delete = sqlite_task_delete,
        .token_insert = sqlite_token_insert,
        .token_lookup = sqlite_token_lookup,
        .token_revoke = sqlite_token_revoke,
        .lock = sqlite_lock,
        .task_claim = sqlite_task_claim,
};
