/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store: makima's single source of truth. One interface, two backends
 * (SQLite, the embedded default, and PostgreSQL through libpq) with the same
 * schema and the same behaviour. Versioned migrations are applied on open,
 * each in a transaction.
 *
 * A Store handle is used by one thread at a time. Functions return 0 (or a
 * positive count) on success and a negative errno on failure; the store never
 * logs: store_last_error() gives the backend's words for the last failure.
 *
 * Errors with a meaning callers act on:
 *   -ENOENT   no such row (or, for token lookups, no such token)
 *   -ESTALE   the row's version is not the one the caller read (optimistic
 *             locking): the caller re-reads and tries again, or answers 409
 *   -EBUSY    delete refused: a task of it is active (running/paused/waiting)
 *   -EEXIST   a unique key already exists
 *   -EINVAL   a bad argument (e.g. an enum out of range)
 *   -EIO      the backend failed; see store_last_error()
 */
#pragma once

#include "model.h"

typedef enum StoreBackend {
        STORE_BACKEND_SQLITE,
        STORE_BACKEND_POSTGRESQL,
        _STORE_BACKEND_MAX,
        _STORE_BACKEND_INVALID = -EINVAL,
} StoreBackend;

const char *store_backend_to_string(StoreBackend b) _pure_;
StoreBackend store_backend_from_string(const char *s) _pure_;

typedef struct Store Store;

/* SQLite: `path` is the database file (created with its directory's
 * permissions; WAL mode, busy timeout). PostgreSQL: `path` is a libpq
 * connection string or URL. */
int store_open(StoreBackend backend, const char *path, Store **ret);
Store *store_free(Store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Store *, store_free);

StoreBackend store_backend(Store *s);
const char *store_last_error(Store *s);
/* The highest migration applied. */
int store_schema_version(Store *s);

/* ---- contracts ---- */

typedef struct ContractFilter {
        const char *owner;              /* NULL: every owner */
        int status;                     /* a ContractStatus, or -1 for any */
        size_t limit;                   /* 0: no limit */
        size_t offset;
} ContractFilter;

/* Inserts c. If c->id is NULL a new id is made. Sets created_at, updated_at
 * (now, unless already set) and version = 1 on c. */
int store_contract_insert(Store *s, Contract *c);
int store_contract_get(Store *s, const char *id, Contract **ret);
/* Ordered by created_at, then id. */
int store_contract_list(Store *s, const ContractFilter *f, Contract ***ret, size_t *ret_n);
/* Writes every mutable field of c where the row's version is still
 * c->version; on success bumps c->version and c->updated_at. If `event` is
 * not NULL it is appended to the contract's event log in the same
 * transaction (its seq and created_at are filled in). */
int store_contract_update(Store *s, Contract *c, Event *event);
/* Deletes the contract, its tasks and all their events. `version` < 0: any.
 * -EBUSY if one of its tasks is active. */
int store_contract_delete(Store *s, const char *id, int64_t version);

/* ---- tasks ---- */

typedef struct TaskFilter {
        const char *owner;              /* NULL: every owner */
        const char *contract_id;        /* NULL: any */
        const char *parent_task_id;     /* NULL: any */
        int status;                     /* a TaskState, or -1 for any */
        size_t limit;                   /* 0: no limit */
        size_t offset;
} TaskFilter;

int store_task_insert(Store *s, Task *t);
int store_task_get(Store *s, const char *id, Task **ret);
int store_task_list(Store *s, const TaskFilter *f, Task ***ret, size_t *ret_n);
int store_task_update(Store *s, Task *t, Event *event);
/* Deletes the task and its events. -EBUSY if it is active. */
int store_task_delete(Store *s, const char *id, int64_t version);

/* ---- events ---- */

typedef enum EventLog {
        EVENT_LOG_TASK,
        EVENT_LOG_CONTRACT,
        _EVENT_LOG_MAX,
        _EVENT_LOG_INVALID = -EINVAL,
} EventLog;

/* Appends n events to the log of object_id in one transaction, with gapless
 * sequence numbers following the last one; fills in each event's seq,
 * object_id (if NULL) and created_at (if 0). -ENOENT if the object does not exist. */
int store_event_append(Store *s, EventLog log, const char *object_id, Event *events, size_t n);
/* Events with seq > after, in order, at most `limit` (0: no limit). */
int store_event_list(Store *s, EventLog log, const char *object_id, int64_t after, size_t limit,
                     Event **ret, size_t *ret_n);

/* ---- API tokens (only hashes are stored) ---- */

/* Stores a token's hash for owner; returns the new token row's id in ret_id. */
int store_token_insert(Store *s, const char *owner, const char *token_hash, const char *description,
                       char ret_id[static ID_STRING_MAX]);
/* Finds the owner of a token by its hash. -ENOENT if unknown or revoked. */
int store_token_lookup(Store *s, const char *token_hash, char **ret_owner);
int store_token_revoke(Store *s, const char *id);
