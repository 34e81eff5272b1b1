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
 *   -ENOLCK   a leased write by a worker whose lease is not held any more
 *   -ENOSPC   the store's disk is full (SQLITE_FULL; PostgreSQL's SQLSTATE
 *             53100 disk_full): nothing was written, the transaction was
 *             rolled back; the same write succeeds once there is room
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

/* SQLite: `path` is the database file (created with mode 0600, and so are
 * its -wal and -shm files; WAL mode, busy timeout). PostgreSQL: `path` is a
 * libpq connection string or URL. */
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

/* ---- leases: workers claim tasks (the worker issue) ----
 *
 * A worker claims a task under a lease (worker id, a random token, an
 * expiry) and renews it with heartbeats. While the lease is held the worker
 * is the only writer of the task's run state; a worker whose lease expired
 * and was taken over gets -ENOLCK from every leased write, and must stop
 * the agent.
 *
 * A lease is held while its token is the one the claim returned and its
 * expiry has not passed. An expired lease is refused even before another
 * worker took it over (it may, from that instant): a worker owns its task
 * from a successful claim or heartbeat at T until T + lease_usec and never
 * longer, so it must heartbeat well within lease_usec. Expiries are taken
 * from the clock of the host that writes them: with PostgreSQL, keep the
 * workers' clocks in sync (NTP) to well within a lease. -ENOLCK is also the
 * answer when the task does not exist any more. */

#define LEASE_TOKEN_MAX ID_STRING_MAX

/* Claims the oldest claimable task: pending, or one whose lease expired
 * while it was running/paused/waiting (a rescue; the task's session_id and
 * worktree are kept so the agent resumes). Sets status running (started_at
 * if unset), the lease (worker_id, a new token, now + lease_usec), bumps
 * version, appends a "claimed" event {"worker":…, "rescued":bool} in the
 * same transaction. SQLite: BEGIN IMMEDIATE; PostgreSQL: FOR UPDATE SKIP
 * LOCKED. Returns 1 and the task and token, or 0 (ret_task = NULL) if
 * there is nothing to claim. */
int store_task_claim(Store *s, const char *worker_id, usec_t lease_usec, Task **ret_task,
                     char ret_token[static LEASE_TOKEN_MAX]);
/* Claims one specific task (for a resume/retry that must land on the same
 * worker); otherwise as store_task_claim(). 0 if it is not claimable (or
 * does not exist). On PostgreSQL it waits for a concurrent writer of the
 * task instead of skipping it. */
int store_task_claim_id(Store *s, const char *task_id, const char *worker_id, usec_t lease_usec, Task **ret_task,
                        char ret_token[static LEASE_TOKEN_MAX]);
/* Extends the lease to now + lease_usec. -ENOLCK if the lease is not ours any more. */
int store_task_heartbeat(Store *s, const char *task_id, const char *token, usec_t lease_usec);
/* Takes back a lease that expired while the worker could not renew it (its
 * heartbeats failed: the store was full or did not answer) and that nobody
 * has claimed since, which the token proves: a claim hands out a new one
 * and a release clears it. Extends it to now + lease_usec. -ENOLCK if
 * another worker claimed the task meanwhile, or it is gone. The worker must
 * not have let its agent run on unwatched meanwhile (makima-worker stops
 * it after half a lease without a store). */
int store_task_lease_reclaim(Store *s, const char *task_id, const char *token, usec_t lease_usec);
/* Writes the worker-owned run fields of t (status, error, worktree, branch,
 * session_id, cost_usd, iteration_count, max_iterations, started_at,
 * completed_at, and base_branch: the branch the worktree was made from,
 * which the worker resolves when the task names none; NULL leaves the
 * row's) if the lease is still ours, whatever the version (the API may have
 * renamed the task meanwhile); sets t's version and updated_at to the row's
 * new ones. Appends `events` (may be 0) in the same transaction.
 * A change of status must be allowed by the state machine from the row's
 * status (else -EINVAL); the same status is no change. -ENOLCK if the lease
 * is lost. */
int store_task_update_leased(Store *s, Task *t, const char *token, Event *events, size_t n_events);
/* Appends events to the task's log only if the lease is ours (-ENOLCK). */
int store_event_append_leased(Store *s, const char *task_id, const char *token, Event *events, size_t n);
/* Drops the lease (after a final status was written). -ENOLCK if not ours.
 * An active task without a lease is claimable at once: give a task back by
 * writing status pending first, or release only after a final status. */
int store_task_release(Store *s, const char *task_id, const char *token);

/* ---- control requests (pause, resume, interrupt, message, cancel) ----
 * Rows, so none is lost when a worker restarts; bus signals and NOTIFY are
 * only wake-up hints. */

typedef enum ControlKind {
        CONTROL_PAUSE,
        CONTROL_RESUME,
        CONTROL_INTERRUPT,
        CONTROL_MESSAGE,
        CONTROL_CANCEL,
        _CONTROL_KIND_MAX,
        _CONTROL_KIND_INVALID = -EINVAL,
} ControlKind;

const char *control_kind_to_string(ControlKind k) _pure_;
ControlKind control_kind_from_string(const char *s) _pure_;

typedef struct ControlRequest {
        char *id;
        char *task_id;
        ControlKind kind;
        char *payload;                  /* JSON text, e.g. {"message":"…"} for a message; may be NULL */
        usec_t created_at;
        usec_t delivered_at;            /* the worker saw it */
        usec_t done_at;                 /* the worker acted on it */
        char *result;                   /* "ok" or the reason it could not be done */
} ControlRequest;

ControlRequest *control_request_free(ControlRequest *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(ControlRequest *, control_request_free);
void control_request_array_free(ControlRequest *a, size_t n);

/* Inserts r (id and created_at filled in if unset). On PostgreSQL also
 * NOTIFYs channel "makima" with payload "control <task_id>". -ENOENT if the
 * task does not exist; deleting a task deletes its requests. */
int store_control_insert(Store *s, ControlRequest *r);
/* The task's requests not yet done, oldest first. */
int store_control_list_pending(Store *s, const char *task_id, ControlRequest **ret, size_t *ret_n);
/* Free *ret with control_request_free(). */
int store_control_get(Store *s, const char *id, ControlRequest **ret);
/* Sets delivered_at once (a repeat keeps the first time). -ENOENT if unknown. */
int store_control_mark_delivered(Store *s, const char *id);
/* Sets done_at and result (and delivered_at if unset). A request already
 * done keeps its first result and the call succeeds: a restarted worker may
 * act on a request twice. -ENOENT if unknown. */
int store_control_complete(Store *s, const char *id, const char *result);

/* ---- notifications (for the user: "agent is not logged in on worker 1") ---- */

typedef struct Notification {
        char *id;
        char *owner;
        char *task_id;
        char *contract_id;
        char *level;                    /* "info", "warning", "error" */
        char *message;
        usec_t created_at;
        usec_t read_at;
} Notification;

void notification_array_free(Notification *a, size_t n);

/* Inserts n (id and created_at filled in if unset). -EINVAL unless level is
 * one of the three above and message is not empty. */
int store_notification_insert(Store *s, Notification *n);
/* owner NULL: all; newest first; limit 0: no limit. */
int store_notification_list(Store *s, const char *owner, bool unread_only, size_t limit, Notification **ret,
                            size_t *ret_n);
/* Sets read_at once. -ENOENT if unknown. */
int store_notification_mark_read(Store *s, const char *id);

/* ---- repository grants: the local repositories an owner may name ---- */

typedef struct RepoGrant {
        char *id;
        char *path;                     /* absolute, normalized (no "//", "." or "..") */
        char *owner;
        usec_t created_at;
} RepoGrant;

void repo_grant_array_free(RepoGrant *a, size_t n);

/* Grants owner the repository at path (id and created_at filled in).
 * -EEXIST if that grant is there already, -EINVAL for a path that is not
 * absolute and normalized. */
int store_repo_grant_insert(Store *s, RepoGrant *g);
/* owner NULL: every owner's; by path, then owner. */
int store_repo_grant_list(Store *s, const char *owner, RepoGrant **ret, size_t *ret_n);
/* -ENOENT if unknown. */
int store_repo_grant_delete(Store *s, const char *id);

/* ---- wake-ups ----
 * On PostgreSQL, store_task_insert() and store_control_insert() NOTIFY the
 * channel "makima" ("task <id>" / "control <task_id>"). A listener calls
 * store_listen(), watches the returned fd for POLLIN and then calls
 * store_listen_drain(). On SQLite both return -EOPNOTSUPP (same host: the
 * D-Bus signal wakes workers).
 *
 * Listen on a handle of its own: notifications that arrive while the handle
 * runs other statements are queued by libpq and do not make the fd readable
 * (the next drain counts them). Wake-ups are hints: whoever listens also
 * looks for work on a timer, and drains then too. */
int store_listen(Store *s, int *ret_fd);
/* Consumes pending notifications; returns how many arrived (0: none).
 * -ECONNRESET: the connection was lost and has been reopened (here or by
 * another call on the handle), so the fd changed and notifications may have
 * been missed: call store_listen() again, watch the new fd, look for work.
 * -EIO: the server cannot be reached now; call store_listen() again later. */
int store_listen_drain(Store *s);

/* ---- health and open errors ---- */
/* A cheap round trip to the backend. */
int store_ping(Store *s);
/* Whether the store takes a write now: writes and commits the one row of
 * the table store_probe. 0, or -ENOSPC when the disk is full, or another
 * -errno (see store_last_error()). It never grows the database: SQLite
 * rewrites the row in place (one page in the WAL, checkpointed as usual);
 * PostgreSQL empties the table and inserts the row again, so that the write
 * needs a new page of the table's files just like a table that grows (the
 * emptied file is cut to nothing at commit); if another session holds the
 * table (a pg_dump does, for as long as it runs) it does not wait more than
 * 200 ms for it but rewrites the row in place. Each call is a committed
 * transaction: callers that may be asked often (an unauthenticated health
 * check) should not call it more than about once a second. */
int store_check_writable(Store *s);
/* Like store_open(), and on failure *ret_error (if not NULL) gets the
 * backend's words (e.g. PostgreSQL's connection error; strerror() where it
 * had none), for the caller to free. */
int store_open_full(StoreBackend backend, const char *path, Store **ret, char **ret_error);
