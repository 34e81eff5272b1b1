/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The PostgreSQL backend (libpq): every statement goes through PQexecParams
 * with text parameters. Writes that must be atomic run in a transaction
 * that first locks the row they depend on, so writers on any host serialize
 * on it; concurrent openers serialize their migrations on an advisory lock. */

#include <inttypes.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdio.h>

#include "store-internal.h"

/* Built-in type OIDs (catalog/pg_type_d.h; they never change). */
#define PG_BOOLOID 16
#define PG_INT8OID 20
#define PG_INT2OID 21
#define PG_INT4OID 23
#define PG_TEXTOID 25
#define PG_FLOAT4OID 700
#define PG_FLOAT8OID 701

/* The advisory lock key migrations take: "makima" in ASCII. */
#define PG_MIGRATION_LOCK INT64_C(0x6d616b696d61)

#define PG_PARAMS_MAX 32
#define PG_COLUMNS_MAX 32

/* Per object kind (indexed by EventLog). */
typedef struct PgObject {
        const char *lock;               /* as STORE_OBJECT_VERSION, and locks the row against appenders and writers */
        const char *statements[_STORE_OBJECT_STATEMENT_MAX];
} PgObject;

static const PgObject pg_objects[_EVENT_LOG_MAX] = {
        [EVENT_LOG_TASK] = {
                .statements[STORE_OBJECT_VERSION] = "SELECT version, status FROM tasks WHERE id = $1",
                .lock = "SELECT version, status FROM tasks WHERE id = $1 FOR NO KEY UPDATE",
                .statements[STORE_OBJECT_UPDATE] =
                        "UPDATE tasks SET updated_at = $3, version = version + 1, owner = $5, name = $6, plan = $7, "
                        "repo = $8, base_branch = $9, target_branch = $10, parent_task_id = $11, contract_id = $12, "
                        "is_supervisor = $13, autonomous_loop = $14, max_iterations = $15, iteration_count = $16, "
                        "status = $17, error = $18, worktree = $19, branch = $20, session_id = $21, cost_usd = $22, "
                        "started_at = $23, completed_at = $24, max_cost_usd = $25, copy_files = $26, "
                        "base_commit = $27, admin = $28, tasks_max = $29, memory_max = $30, cpu_weight = $31 "
                        "WHERE id = $1 AND version = $4",
                .statements[STORE_OBJECT_EVENT_LAST] = "SELECT MAX(seq) FROM task_events WHERE task_id = $1",
                .statements[STORE_OBJECT_EVENT_INSERT] =
                        "INSERT INTO task_events (task_id, seq, type, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
        },
        [EVENT_LOG_CONTRACT] = {
                .statements[STORE_OBJECT_VERSION] = "SELECT version FROM contracts WHERE id = $1",
                .lock = "SELECT version FROM contracts WHERE id = $1 FOR NO KEY UPDATE",
                .statements[STORE_OBJECT_UPDATE] =
                        "UPDATE contracts SET updated_at = $3, version = version + 1, owner = $5, name = $6, "
                        "description = $7, type = $8, phase = $9, status = $10, autonomous_loop = $11, "
                        "supervisor_task_id = $12, max_cost_usd = $13 "
                        "WHERE id = $1 AND version = $4",
                .statements[STORE_OBJECT_EVENT_LAST] = "SELECT MAX(seq) FROM contract_events WHERE contract_id = $1",
                .statements[STORE_OBJECT_EVENT_INSERT] =
                        "INSERT INTO contract_events (contract_id, seq, type, payload, created_at) "
                        "VALUES ($1, $2, $3, $4, $5)",
        },
};

typedef struct PgStore {
        Store base;
        PGconn *conn;
        bool in_transaction;
        bool listening;                 /* store_listen() was called */
        bool listen_reset;              /* the connection (and its fd) changed since */
        bool server_closing;            /* the server said FATAL between queries */
} PgStore;

static PgStore *pg_store(Store *s) {
        return (PgStore *) s;
}

static void pq_clearp(PGresult **res) {
        if (*res)
                PQclear(*res);
}

static int pg_fail(PgStore *p, const PGresult *res) {
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        int r = -EIO;

        if (!msg)
                msg = res ? PQresultErrorMessage(res) : PQerrorMessage(p->conn);
        if (state) {
                if (streq(state, "23505"))              /* unique_violation */
                        r = -EEXIST;
                else if (streq(state, "23503"))         /* foreign_key_violation */
                        r = -ENOENT;
                else if (streq(state, "53100"))         /* disk_full: nothing was written */
                        r = -ENOSPC;
                else if (streq(state, "55P03"))         /* lock_not_available (lock_timeout) */
                        r = -EAGAIN;
                else if (streq(state, "23502") ||       /* not_null_violation */
                         streq(state, "23514") ||       /* check_violation */
                         startswith(state, "22"))       /* data_exception */
                        r = -EINVAL;
        }
        /* libpq's messages end in a newline. */
        return store_error(&p->base, r, "%.*s", (int) strcspn(msg, "\n"), msg);
}

static void pg_value(const StoreValue *v, const char **ret_text, Oid *ret_type, char buf[static 32]) {
        static const Oid types[_STORE_VALUE_TYPE_MAX] = {
                [STORE_VALUE_TEXT] = PG_TEXTOID,
                [STORE_VALUE_INT] = PG_INT8OID,
                [STORE_VALUE_BOOL] = PG_BOOLOID,
                [STORE_VALUE_DOUBLE] = PG_FLOAT8OID,
        };

        *ret_type = types[v->type];
        if (v->null) {
                *ret_text = NULL;
                return;
        }
        switch (v->type) {
        case STORE_VALUE_TEXT:
                *ret_text = v->text;
                return;
        case STORE_VALUE_INT:
                snprintf(buf, 32, "%" PRIi64, v->i);
                break;
        case STORE_VALUE_BOOL:
                snprintf(buf, 32, "%s", v->b ? "t" : "f");
                break;
        default:
                /* Enough digits to read back the same double. */
                snprintf(buf, 32, "%.17g", v->d);
        }
        *ret_text = buf;
}

static void pg_row(const PGresult *res, int row, StoreValue *v, size_t n) {
        for (size_t i = 0; i < n; i++) {
                const char *t = PQgetvalue(res, row, (int) i);

                if (PQgetisnull(res, row, (int) i)) {
                        v[i] = VALUE_TEXT(NULL);
                        continue;
                }
                switch (PQftype(res, (int) i)) {
                case PG_BOOLOID:
                        v[i] = VALUE_BOOL(t[0] == 't');
                        break;
                case PG_INT2OID:
                case PG_INT4OID:
                case PG_INT8OID:
                        v[i] = VALUE_INT(strtoll(t, NULL, 10));
                        break;
                case PG_FLOAT4OID:
                case PG_FLOAT8OID:
                        v[i] = (StoreValue) { .type = STORE_VALUE_DOUBLE, .d = strtod(t, NULL) };
                        break;
                default:
                        v[i] = VALUE_TEXT(t);
                }
        }
}

/* Reopens a connection the server dropped (restart, failover). A listener's
 * LISTEN and socket went with the old one: LISTEN again at once, so that
 * little is missed, and have the next drain tell the caller to fetch the
 * new fd. */
static void pg_reconnect(PgStore *p) {
        PGresult *res;

        PQreset(p->conn);
        p->server_closing = false;
        if (PQstatus(p->conn) != CONNECTION_OK || !p->listening)
                return;
        p->listen_reset = true;
        /* If this fails, the caller's store_listen() tries again. */
        res = PQexec(p->conn, "LISTEN " STORE_WAKEUP_CHANNEL);
        PQclear(res);
}

/* Returns the number of rows of a query, or of rows changed by anything else. */
static int pg_run(PgStore *p, const char *sql, const StoreValue *params, size_t n_params, StoreRowFunc f,
                  void *userdata) {
        _cleanup_(pq_clearp) PGresult *res = NULL;
        const char *values[PG_PARAMS_MAX];
        char buf[PG_PARAMS_MAX][32];
        Oid types[PG_PARAMS_MAX];
        int r;

        if (n_params > PG_PARAMS_MAX)
                return -E2BIG;
        for (size_t i = 0; i < n_params; i++)
                pg_value(&params[i], &values[i], &types[i], buf[i]);

        /* A lost connection (server restart) is reopened, but only between
         * transactions: inside one, the work done so far is gone. */
        if (!p->in_transaction && (PQstatus(p->conn) == CONNECTION_BAD || p->server_closing))
                pg_reconnect(p);

        res = PQexecParams(p->conn, sql, (int) n_params, types, values, NULL, NULL, 0);
        switch (PQresultStatus(res)) {
        case PGRES_COMMAND_OK:
                return atoi(PQcmdTuples(res));
        case PGRES_TUPLES_OK:
                break;
        default:
                return pg_fail(p, res);
        }

        if (f) {
                size_t n_columns = (size_t) PQnfields(res);
                StoreValue row[PG_COLUMNS_MAX];

                if (n_columns > PG_COLUMNS_MAX)
                        return -E2BIG;
                for (int i = 0; i < PQntuples(res); i++) {
                        pg_row(res, i, row, n_columns);
                        r = f(row, n_columns, userdata);
                        if (r < 0)
                                return r;
                }
        }
        return PQntuples(res);
}

/* Statements without parameters; may be several separated by ';'. */
static int pg_exec(PgStore *p, const char *sql) {
        _cleanup_(pq_clearp) PGresult *res = NULL;

        res = PQexec(p->conn, sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
                return pg_fail(p, res);
        return 0;
}

static int pg_query(Store *s, const char *sql, const StoreValue *params, size_t n_params, StoreRowFunc f,
                    void *userdata) {
        return pg_run(pg_store(s), sql, params, n_params, f, userdata);
}

/* A transaction is open while the guard `txn` is set; leaving the scope
 * without pg_commit() rolls it back. */
static void pg_rollbackp(PgStore **txn) {
        if (*txn) {
                PQclear(PQexec((*txn)->conn, "ROLLBACK"));
                (*txn)->in_transaction = false;
        }
}

static int pg_begin(PgStore *p, PgStore **txn) {
        int r;

        if (PQstatus(p->conn) == CONNECTION_BAD || p->server_closing)
                pg_reconnect(p);
        r = pg_exec(p, "BEGIN");
        if (r < 0)
                return r;
        p->in_transaction = true;
        *txn = p;
        return 0;
}

static int pg_commit(PgStore **txn) {
        int r;

        r = pg_exec(*txn, "COMMIT");
        if (r < 0)
                return r;
        (*txn)->in_transaction = false;
        *txn = NULL;
        return 0;
}

static int pg_migrate(PgStore *p) {
        for (;;) {
                _cleanup_(pg_rollbackp) PgStore *txn = NULL;
                const StoreMigration *m = NULL;
                int64_t current;
                int r;

                r = pg_begin(p, &txn);
                if (r < 0)
                        return r;
                /* Held to the end of the transaction: a second opener waits,
                 * then sees this migration done. */
                r = pg_run(p, "SELECT pg_advisory_xact_lock($1)", PARAMS(VALUE_INT(PG_MIGRATION_LOCK)), NULL, NULL);
                if (r < 0)
                        return r;
                r = pg_exec(p, STORE_SCHEMA_VERSION_TABLE);
                if (r < 0)
                        return r;
                r = pg_run(p, "SELECT MAX(version) FROM schema_version", NULL, 0, store_row_int64, &current);
                if (r < 0)
                        return r;
                if (current > store_latest_schema_version())
                        return store_error(&p->base, -EPROTONOSUPPORT,
                                           "Database schema version %" PRIi64 " is newer than this makima knows (%d)",
                                           current, store_latest_schema_version());

                for (size_t i = 0; i < store_n_migrations && !m; i++)
                        if (store_migrations[i].version > current)
                                m = &store_migrations[i];
                if (!m) {
                        p->base.schema_version = (int) current;
                        return pg_commit(&txn);
                }

                r = pg_exec(p, m->sql[STORE_BACKEND_POSTGRESQL]);
                if (r < 0)
                        return r;
                r = pg_run(p, "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
                           PARAMS(VALUE_INT(m->version), VALUE_INT(now_usec())), NULL, NULL);
                if (r < 0)
                        return r;
                r = pg_commit(&txn);
                if (r < 0)
                        return r;
        }
}

/* The store does not log; libpq would print notices such as "relation
 * already exists, skipping" to stderr. Only a FATAL one matters: the
 * server is about to close the connection. */
static void pg_notice_receive(void *userdata, const PGresult *res) {
        PgStore *p = userdata;
        const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);

        if (severity && (streq(severity, "FATAL") || streq(severity, "PANIC")))
                p->server_closing = true;
}

static void pg_free(Store *s) {
        PgStore *p = pg_store(s);

        if (p->conn)
                PQfinish(p->conn);
        free(p);
}

static int pg_connect(PgStore *p, const char *path) {
        /* `path` is expanded as a connection string or URL; the encoding
         * given after it wins, and PQreset() keeps it. */
        static const char *const keys[] = { "dbname", "client_encoding", NULL };
        const char *values[] = { path, "UTF8", NULL };

        p->conn = PQconnectdbParams(keys, values, /* expand_dbname= */ 1);
        if (!p->conn)
                return -ENOMEM;
        if (PQstatus(p->conn) != CONNECTION_OK)
                return pg_fail(p, NULL);
        (void) PQsetNoticeReceiver(p->conn, pg_notice_receive, p);
        return pg_migrate(p);
}

static int pg_open(const char *path, Store **ret, char **ret_error) {
        _cleanup_(store_freep) Store *s = NULL;
        PgStore *p;
        int r;

        p = calloc(1, sizeof(PgStore));
        if (!p)
                return -ENOMEM;
        p->base.vtable = &store_pg_vtable;
        p->base.backend = STORE_BACKEND_POSTGRESQL;
        s = &p->base;

        r = pg_connect(p, path);
        if (r < 0) {
                if (ret_error)
                        *ret_error = TAKE_PTR(s->error);
                return r;
        }

        *ret = TAKE_PTR(s);
        return 0;
}

static int pg_ping(Store *s) {
        int r;

        r = pg_run(pg_store(s), "SELECT 1", NULL, 0, NULL, NULL);
        return r < 0 ? r : 0;
}

static int pg_run_object(Store *s, EventLog kind, StoreObjectStatement which, const StoreValue *params,
                         size_t n_params, StoreRowFunc f, void *userdata) {
        return pg_run(pg_store(s), pg_objects[kind].statements[which], params, n_params, f, userdata);
}

static int pg_contract_insert(Store *s, const Contract *c) {
        StoreValue v[CONTRACT_N_COLUMNS];
        int r;

        contract_to_values(c, v);
        r = pg_run(pg_store(s),
                   "INSERT INTO contracts (" CONTRACT_COLUMNS ") "
                   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                   v, CONTRACT_N_COLUMNS, NULL, NULL);
        return r < 0 ? r : 0;
}

static int pg_contract_get(Store *s, const char *id, Contract **ret) {
        _cleanup_(contract_freep) Contract *c = NULL;
        int r;

        r = pg_run(pg_store(s), "SELECT " CONTRACT_COLUMNS " FROM contracts WHERE id = $1", PARAMS(VALUE_TEXT(id)),
                   store_row_contract, &c);
        if (r <= 0)
                return r;
        *ret = TAKE_PTR(c);
        return 1;
}

static int pg_contract_update(Store *s, const Contract *c, const Event *event, usec_t now, int64_t *ret_seq) {
        StoreValue v[CONTRACT_N_COLUMNS];

        contract_to_values(c, v);
        return store_object_update(s, EVENT_LOG_CONTRACT, c->id, c->version, v, CONTRACT_N_COLUMNS, event, now,
                                   ret_seq);
}

static int pg_contract_delete(Store *s, const char *id, int64_t version) {
        _cleanup_(pg_rollbackp) PgStore *txn = NULL;
        PgStore *p = pg_store(s);
        bool active = false;
        int64_t current;
        int r;

        r = pg_begin(p, &txn);
        if (r < 0)
                return r;
        /* The contract's row lock keeps new tasks out (their foreign key
         * check waits for it); locking every task of it makes us wait for a
         * change in flight and read its outcome, not the state before. */
        r = pg_run(p, "SELECT version FROM contracts WHERE id = $1 FOR UPDATE", PARAMS(VALUE_TEXT(id)),
                   store_row_int64, &current);
        if (r < 0)
                return r;
        if (r == 0)
                return store_error(s, -ENOENT, "Contract %s does not exist", id);
        if (version >= 0 && current != version)
                return store_error(s, -ESTALE, "Contract %s was changed since version %" PRIi64, id, version);
        r = pg_run(p, "SELECT status FROM tasks WHERE contract_id = $1 FOR UPDATE", PARAMS(VALUE_TEXT(id)),
                   store_row_task_active, &active);
        if (r < 0)
                return r;
        if (active)
                return store_error(s, -EBUSY, "Contract %s has an active task", id);
        /* Its tasks and every event go with it: ON DELETE CASCADE. */
        r = pg_run(p, "DELETE FROM contracts WHERE id = $1", PARAMS(VALUE_TEXT(id)), NULL, NULL);
        if (r < 0)
                return r;
        return pg_commit(&txn);
}

static int pg_task_insert(Store *s, const Task *t) {
        _cleanup_(task_values_done) TaskValues v = {};
        int r;

        r = task_to_values(t, &v);
        if (r < 0)
                return r;
        /* One statement, so the wake-up goes out exactly when the row is
         * committed. */
        r = pg_run(pg_store(s),
                   "WITH t AS (INSERT INTO tasks (" TASK_COLUMNS ") "
                   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, "
                   "$17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31) RETURNING id) "
                   "SELECT pg_notify('" STORE_WAKEUP_CHANNEL "', 'task ' || id) FROM t",
                   v.v, TASK_N_COLUMNS, NULL, NULL);
        if (r == -ENOENT)
                return store_error(s, r, "Contract %s does not exist", t->contract_id);
        return r < 0 ? r : 0;
}

static int pg_task_get(Store *s, const char *id, Task **ret) {
        _cleanup_(task_freep) Task *t = NULL;
        int r;

        r = pg_run(pg_store(s), "SELECT " TASK_COLUMNS " FROM tasks WHERE id = $1", PARAMS(VALUE_TEXT(id)),
                   store_row_task, &t);
        if (r <= 0)
                return r;
        *ret = TAKE_PTR(t);
        return 1;
}

static int pg_task_update(Store *s, const Task *t, const Event *event, usec_t now, int64_t *ret_seq) {
        _cleanup_(task_values_done) TaskValues v = {};
        int r;

        r = task_to_values(t, &v);
        if (r < 0)
                return r;
        return store_object_update(s, EVENT_LOG_TASK, t->id, t->version, v.v, TASK_N_COLUMNS, event, now, ret_seq);
}

static int pg_task_delete(Store *s, const char *id, int64_t version) {
        _cleanup_(pg_rollbackp) PgStore *txn = NULL;
        PgStore *p = pg_store(s);
        StoreTaskState state;
        int r;

        r = pg_begin(p, &txn);
        if (r < 0)
                return r;
        r = pg_run(p, "SELECT version, status FROM tasks WHERE id = $1 FOR UPDATE", PARAMS(VALUE_TEXT(id)),
                   store_row_task_state, &state);
        if (r < 0)
                return r;
        if (r == 0)
                return store_error(s, -ENOENT, "Task %s does not exist", id);
        if (version >= 0 && state.version != version)
                return store_error(s, -ESTALE, "Task %s was changed since version %" PRIi64, id, version);
        if (task_state_is_active(state.status))
                return store_error(s, -EBUSY, "Task %s is %s", id, task_state_to_string(state.status));
        r = pg_run(p, "DELETE FROM tasks WHERE id = $1", PARAMS(VALUE_TEXT(id)), NULL, NULL);
        if (r < 0)
                return r;
        return pg_commit(&txn);
}

static int pg_lock(Store *s, EventLog log, const char *object_id) {
        return pg_run(pg_store(s), pg_objects[log].lock, PARAMS(VALUE_TEXT(object_id)), NULL, NULL);
}

static int pg_token_insert(Store *s, const char *id, const char *owner, const char *token_hash,
                           const char *description, usec_t now) {
        int r;

        r = pg_run(pg_store(s),
                   "INSERT INTO api_tokens (id, owner, token_hash, description, created_at) VALUES ($1, $2, $3, $4, $5)",
                   PARAMS(VALUE_TEXT(id), VALUE_TEXT(owner), VALUE_TEXT(token_hash), VALUE_TEXT(description),
                          VALUE_USEC(now)),
                   NULL, NULL);
        return r < 0 ? r : 0;
}

static int pg_token_lookup(Store *s, const char *token_hash, char **ret_owner) {
        _cleanup_free_ char *owner = NULL;
        int r;

        r = pg_run(pg_store(s), "SELECT owner FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
                   PARAMS(VALUE_TEXT(token_hash)), store_row_string, &owner);
        if (r <= 0)
                return r;
        *ret_owner = TAKE_PTR(owner);
        return 1;
}

static int pg_token_revoke(Store *s, const char *id, usec_t now) {
        int r;

        r = pg_run(pg_store(s), "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
                   PARAMS(VALUE_TEXT(id), VALUE_USEC(now)), NULL, NULL);
        return r;
}

static int pg_txn_begin(Store *s) {
        PgStore *txn;

        return pg_begin(pg_store(s), &txn);
}

static int pg_txn_commit(Store *s) {
        PgStore *txn = pg_store(s);

        return pg_commit(&txn);
}

static void pg_txn_rollback(Store *s) {
        PgStore *txn = pg_store(s);

        if (txn->in_transaction)
                pg_rollbackp(&txn);
}

typedef struct PgClaimed {
        Task *task;
        TaskState old_status;
} PgClaimed;

/* TASK_COLUMNS, then the status the task had. */
static int pg_row_claimed(const StoreValue *row, size_t n_columns, void *userdata) {
        PgClaimed *c = userdata;
        int r;

        if (n_columns != TASK_N_COLUMNS + 1)
                return -EBADMSG;
        r = store_value_task_state(&row[TASK_N_COLUMNS], &c->old_status);
        if (r < 0)
                return r;
        return store_row_task(row, TASK_N_COLUMNS, &c->task);
}

/* The CTE locks the row it picks, skipping rows other claimers hold, so
 * workers on many hosts claim different tasks without waiting on each
 * other; it also hands out the status before the UPDATE. Its columns are
 * renamed so that RETURNING's plain names are the task's. A specific task
 * is waited for instead: a lock on it is no proof it is not claimable. */
#define PG_CLAIM(WHERE, LOCK)                                                                   \
        "WITH c AS (SELECT id AS claimed_id, status AS old_status FROM tasks "                  \
        "WHERE " WHERE TASK_CLAIMABLE("$1") " ORDER BY created_at, id LIMIT 1 " LOCK ") "       \
        "UPDATE tasks SET status = 'running', started_at = COALESCE(started_at, $1), "         \
        "updated_at = $1, version = version + 1, worker_id = $2, lease_token = $3, "            \
        "lease_expires_at = $4 FROM c WHERE tasks.id = c.claimed_id "                           \
        "RETURNING " TASK_COLUMNS ", c.old_status"

static int pg_task_claim(Store *s, const char *task_id, const StoreClaim *c, Task **ret_task,
                         TaskState *ret_old_status) {
        PgClaimed claimed = {};
        int r;

        r = pg_run(pg_store(s),
                   task_id ? PG_CLAIM("id = $5 AND ", "FOR UPDATE") : PG_CLAIM("", "FOR UPDATE SKIP LOCKED"),
                   PARAMS(VALUE_USEC(c->now), VALUE_TEXT(c->worker_id), VALUE_TEXT(c->token),
                          VALUE_USEC(c->expires_at), VALUE_TEXT(task_id)),
                   pg_row_claimed, &claimed);
        if (r <= 0) {
                task_free(claimed.task);
                return r == -EBADMSG ? store_error(s, r, "Malformed claimed task") : r;
        }

        *ret_task = claimed.task;
        *ret_old_status = claimed.old_status;
        return 1;
}

/* LISTEN on the handle's own connection: notifications arrive on its
 * socket, also while the handle runs other statements (libpq then queues
 * them, and the socket does not become readable for those). */
static int pg_listen(Store *s, int *ret_fd) {
        PgStore *p = pg_store(s);
        int r, fd;

        if (p->in_transaction)
                return store_error(s, -EBUSY, "Cannot listen inside a transaction");
        if (PQstatus(p->conn) == CONNECTION_BAD || p->server_closing)
                pg_reconnect(p);
        r = pg_exec(p, "LISTEN " STORE_WAKEUP_CHANNEL);
        if (r < 0)
                return r;
        fd = PQsocket(p->conn);
        if (fd < 0)
                return pg_fail(p, NULL);

        p->listening = true;
        p->listen_reset = false;
        *ret_fd = fd;
        return 0;
}

static int pg_listen_drain(Store *s) {
        PgStore *p = pg_store(s);
        bool read_ok;
        int n = 0;

        if (!p->listening)
                return store_error(s, -EINVAL, "Not listening: call store_listen() first");

        /* PQnotifies() parses what PQconsumeInput() read, notices included. */
        read_ok = PQconsumeInput(p->conn) != 0;
        for (PGnotify *m; (m = PQnotifies(p->conn)); PQfreemem(m))
                if (streq(m->relname, STORE_WAKEUP_CHANNEL) && n < INT_MAX)
                        n++;

        /* A server that drops the connection sends a FATAL error, then
         * closes it; the close may only come with a later read, but the
         * FATAL (handed to the notice receiver) is enough to know. */
        if (!read_ok || PQstatus(p->conn) == CONNECTION_BAD || p->server_closing) {
                pg_reconnect(p);
                if (PQstatus(p->conn) != CONNECTION_OK)
                        return pg_fail(p, NULL);
        }
        /* What did arrive is not lost: the caller looks for work anyway. */
        if (p->listen_reset) {
                p->listen_reset = false;
                return store_error(s, -ECONNRESET,
                                   "The connection to the server was reopened: listen again and look for work");
        }
        return n;
}

const StoreVTable store_pg_vtable = {
        .sigil = '$',
        .open = pg_open,
        .free = pg_free,
        .ping = pg_ping,
        .begin = pg_txn_begin,
        .commit = pg_txn_commit,
        .rollback = pg_txn_rollback,
        .query = pg_query,
        .run_object = pg_run_object,
        .contract_insert = pg_contract_insert,
        .contract_get = pg_contract_get,
        .contract_update = pg_contract_update,
        .contract_delete = pg_contract_delete,
        .task_insert = pg_task_insert,
        .task_get = pg_task_get,
        .task_update = pg_task_update,
        .task_delete = pg_task_delete,
        .token_insert = pg_token_insert,
        .token_lookup = pg_token_lookup,
        .token_revoke = pg_token_revoke,
        .lock = pg_lock,
        .task_claim = pg_task_claim,
        .listen = pg_listen,
        .listen_drain = pg_listen_drain,
};
