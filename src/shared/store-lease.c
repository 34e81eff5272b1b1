/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Leases: how a worker claims a task and proves on every later write that
 * the task is still its own. The claim is the backend's (BEGIN IMMEDIATE on
 * SQLite, SKIP LOCKED on PostgreSQL); the writes under a held lease are the
 * same statements on both, run here in the backend's transaction. */

#include "json-util.h"
#include "store-internal.h"

/* A lease is held while its token is the one the claim handed out and it
 * has not expired. An expired lease is refused even when nobody has taken
 * it over yet: from that instant another worker may, and a worker that
 * learns it was too slow stops its agent at once instead of racing the
 * rescuer. So a worker owns its task exactly from a successful claim or
 * heartbeat at T until T + lease_usec, never longer. */
#define LEASE_HELD(S) "id = " S "1 AND lease_token = " S "2 AND lease_expires_at >= " S "3"

typedef struct LeaseSql {
        const char *check;              /* "version, status" if the lease is held; locks the row */
        const char *exists;
        const char *heartbeat;          /* S4: the new expiry */
        const char *reclaim;            /* S4: the new expiry; the token alone, expired or not */
        const char *release;
        const char *update;             /* after check, in its transaction */
} LeaseSql;

/* On PostgreSQL the lock of `check` keeps a claimer (and every other
 * writer and appender of the task) out until we commit; a claim that got
 * there first has changed the token, and the check finds nothing. */
#define LEASE_SQL(S, LOCK)                                                                      \
        {                                                                                       \
                .check = "SELECT version, status FROM tasks WHERE " LEASE_HELD(S) LOCK,         \
                .exists = "SELECT 1 FROM tasks WHERE id = " S "1",                              \
                .heartbeat = "UPDATE tasks SET lease_expires_at = " S "4 WHERE " LEASE_HELD(S), \
                .reclaim = "UPDATE tasks SET lease_expires_at = " S "4 "                        \
                           "WHERE id = " S "1 AND lease_token = " S "2",                        \
                .release = "UPDATE tasks SET worker_id = NULL, lease_token = NULL, "            \
                           "lease_expires_at = NULL WHERE " LEASE_HELD(S),                      \
                .update = "UPDATE tasks SET updated_at = " S "2, version = version + 1, "       \
                          "status = " S "3, error = " S "4, worktree = " S "5, branch = " S "6, " \
                          "session_id = " S "7, cost_usd = " S "8, iteration_count = " S "9, "  \
                          "max_iterations = " S "10, started_at = " S "11, completed_at = " S "12, " \
                          "base_branch = COALESCE(" S "13, base_branch), "                      \
                          "base_commit = COALESCE(" S "14, base_commit) "                       \
                          "WHERE id = " S "1",                                                  \
        }

static const LeaseSql lease_sql[_STORE_BACKEND_MAX] = {
        [STORE_BACKEND_SQLITE] = LEASE_SQL("?", ""),
        [STORE_BACKEND_POSTGRESQL] = LEASE_SQL("$", " FOR NO KEY UPDATE"),
};

static const LeaseSql *sql(Store *s) {
        return &lease_sql[s->backend];
}

/* Now, and the expiry of a lease taken now. */
static int lease_times(Store *s, usec_t lease_usec, usec_t *ret_now, usec_t *ret_expires_at) {
        usec_t now = now_usec();

        if (lease_usec == 0 || lease_usec > INT64_MAX - now)
                return store_invalid(s, "lease duration");
        *ret_now = now;
        *ret_expires_at = now + lease_usec;
        return 0;
}

static int lease_check_args(Store *s, const char *task_id, const char *token) {
        if (!store_key_is_valid(task_id))
                return store_invalid(s, "task id");
        if (!store_key_is_valid(token))
                return store_invalid(s, "lease token");
        return 0;
}

/* A leased write found no row with our lease: say why. Also -ENOLCK when
 * the task is gone, so that a worker needs one test to stop its agent. */
static int lease_lost(Store *s, const char *task_id) {
        int r;

        r = s->vtable->query(s, sql(s)->exists, PARAMS(VALUE_TEXT(task_id)), NULL, NULL);
        if (r < 0)
                return r;
        if (r == 0)
                return store_error(s, -ENOLCK, "Task %s does not exist", task_id);
        return store_error(s, -ENOLCK, "The lease on task %s expired or was taken over", task_id);
}

static int claimed_payload(const char *worker_id, bool rescued, char **ret) {
        _cleanup_json_ json_object *w = NULL;
        const char *quoted;
        char *p;

        w = json_object_new_string(worker_id);
        if (!w)
                return -ENOMEM;
        quoted = json_object_to_json_string_ext(w, JSON_C_TO_STRING_PLAIN);
        if (!quoted)
                return -ENOMEM;
        if (asprintf(&p, "{\"worker\":%s,\"rescued\":%s}", quoted, rescued ? "true" : "false") < 0)
                return -ENOMEM;
        *ret = p;
        return 0;
}

static int claim(Store *s, const char *task_id, const char *worker_id, usec_t lease_usec, Task **ret_task,
                 char ret_token[static LEASE_TOKEN_MAX]) {
        _cleanup_(store_rollbackp) Store *txn = NULL;
        _cleanup_(task_freep) Task *t = NULL;
        _cleanup_free_ char *payload = NULL;
        char token[LEASE_TOKEN_MAX];
        StoreClaim c = { .worker_id = worker_id, .token = token };
        TaskState old_status;
        int64_t seq;
        Event e;
        int r;

        if (!s || !ret_task || !ret_token)
                return -EINVAL;
        if (task_id && !store_key_is_valid(task_id))
                return store_invalid(s, "task id");
        if (!store_key_is_valid(worker_id))
                return store_invalid(s, "worker id");
        r = lease_times(s, lease_usec, &c.now, &c.expires_at);
        if (r < 0)
                return r;
        r = id_new(token);
        if (r < 0)
                return r;

        r = store_begin(s, &txn);
        if (r < 0)
                return r;
        r = s->vtable->task_claim(s, task_id, &c, &t, &old_status);
        if (r < 0)
                return r;
        if (r == 0) {
                *ret_task = NULL;
                return 0;
        }

        r = claimed_payload(worker_id, old_status != TASK_PENDING, &payload);
        if (r < 0)
                return r;
        e = (Event) { .type = (char *) "claimed", .payload = payload };
        r = store_object_events_insert(s, EVENT_LOG_TASK, t->id, &e, 1, c.now, &seq);
        if (r < 0)
                return r;
        r = store_commit(&txn);
        if (r < 0)
                return r;

        *ret_task = TAKE_PTR(t);
        memcpy(ret_token, token, LEASE_TOKEN_MAX);
        return 1;
}

int store_task_claim(Store *s, const char *worker_id, usec_t lease_usec, Task **ret_task,
                     char ret_token[static LEASE_TOKEN_MAX]) {
        return claim(s, NULL, worker_id, lease_usec, ret_task, ret_token);
}

int store_task_claim_id(Store *s, const char *task_id, const char *worker_id, usec_t lease_usec, Task **ret_task,
                        char ret_token[static LEASE_TOKEN_MAX]) {
        if (!task_id)
                return s ? store_invalid(s, "task id") : -EINVAL;
        return claim(s, task_id, worker_id, lease_usec, ret_task, ret_token);
}

/* One UPDATE under the lease (heartbeat, release). */
static int lease_write(Store *s, const char *statement, const char *task_id, const char *token, usec_t now,
                       usec_t expires_at) {
        _cleanup_(store_rollbackp) Store *txn = NULL;
        int r;

        r = store_begin(s, &txn);
        if (r < 0)
                return r;
        r = s->vtable->query(s, statement,
                             PARAMS(VALUE_TEXT(task_id), VALUE_TEXT(token), VALUE_USEC(now), VALUE_USEC(expires_at)),
                             NULL, NULL);
        if (r < 0)
                return r;
        if (r == 0)
                return lease_lost(s, task_id);
        return store_commit(&txn);
}

int store_task_heartbeat(Store *s, const char *task_id, const char *token, usec_t lease_usec) {
        usec_t now = 0, expires_at = 0;
        int r;

        if (!s)
                return -EINVAL;
        r = lease_check_args(s, task_id, token);
        if (r < 0)
                return r;
        r = lease_times(s, lease_usec, &now, &expires_at);
        if (r < 0)
                return r;
        return lease_write(s, sql(s)->heartbeat, task_id, token, now, expires_at);
}

/* A claim hands out a new token and a release clears it, so a row that
 * still has ours has not been claimed by anybody since: taking the lease
 * back races with no rescuer. */
int store_task_lease_reclaim(Store *s, const char *task_id, const char *token, usec_t lease_usec) {
        usec_t now = 0, expires_at = 0;
        int r;

        if (!s)
                return -EINVAL;
        r = lease_check_args(s, task_id, token);
        if (r < 0)
                return r;
        r = lease_times(s, lease_usec, &now, &expires_at);
        if (r < 0)
                return r;
        return lease_write(s, sql(s)->reclaim, task_id, token, now, expires_at);
}

int store_task_release(Store *s, const char *task_id, const char *token) {
        int r;

        if (!s)
                return -EINVAL;
        r = lease_check_args(s, task_id, token);
        if (r < 0)
                return r;
        return lease_write(s, sql(s)->release, task_id, token, now_usec(), 0);
}

/* Opens a transaction in which the lease is held (and, on PostgreSQL, the
 * task's row locked) until commit; returns the task's version and status. */
static int lease_begin(Store *s, const char *task_id, const char *token, usec_t now, Store **txn,
                       StoreTaskState *ret_state) {
        int r;

        r = store_begin(s, txn);
        if (r < 0)
                return r;
        r = s->vtable->query(s, sql(s)->check, PARAMS(VALUE_TEXT(task_id), VALUE_TEXT(token), VALUE_USEC(now)),
                             store_row_task_state, ret_state);
        if (r == -EBADMSG)
                return store_error(s, r, "Malformed task %s", task_id);
        if (r < 0)
                return r;
        if (r == 0)
                return lease_lost(s, task_id);
        return 0;
}

int store_task_update_leased(Store *s, Task *t, const char *token, Event *events, size_t n_events) {
        _cleanup_(store_event_ids_done) StoreEventIds ids = {};
        _cleanup_(store_rollbackp) Store *txn = NULL;
        usec_t now = now_usec();
        StoreTaskState state;
        int64_t seq = 0;
        int r;

        if (!s || !t || (n_events > 0 && !events))
                return -EINVAL;
        r = lease_check_args(s, t->id, token);
        if (r < 0)
                return r;
        r = task_check(t);
        if (r < 0)
                return store_invalid(s, "task");
        r = store_events_prepare(s, events, n_events, t->id, &ids);
        if (r < 0)
                return r;

        r = lease_begin(s, t->id, token, now, &txn, &state);
        if (r < 0)
                return r;
        /* Checked against the row, not against t: the API may have changed
         * the task since the worker read it. */
        if (t->status != state.status && !task_state_transition_allowed(state.status, t->status))
                return store_error(s, -EINVAL, "Task %s may not go from %s to %s", t->id,
                                   task_state_to_string(state.status), task_state_to_string(t->status));
        r = s->vtable->query(s, sql(s)->update,
                             PARAMS(VALUE_TEXT(t->id),
                                    VALUE_USEC(now),
                                    VALUE_TEXT(task_state_to_string(t->status)),
                                    VALUE_TEXT(t->error),
                                    VALUE_TEXT(t->worktree),
                                    VALUE_TEXT(t->branch),
                                    VALUE_TEXT(t->session_id),
                                    VALUE_DOUBLE(t->cost_usd),
                                    VALUE_INT(t->iteration_count),
                                    VALUE_INT(t->max_iterations),
                                    VALUE_USEC(t->started_at),
                                    VALUE_USEC(t->completed_at),
                                    VALUE_TEXT(t->base_branch),
                                    VALUE_TEXT(t->base_commit)),
                             NULL, NULL);
        if (r < 0)
                return r;
        if (n_events > 0) {
                r = store_object_events_insert(s, EVENT_LOG_TASK, t->id, events, n_events, now, &seq);
                if (r < 0)
                        return r;
        }
        r = store_commit(&txn);
        if (r < 0)
                return r;

        t->version = state.version + 1;
        t->updated_at = now;
        store_events_complete(events, n_events, &ids, seq, now);
        return 0;
}

int store_event_append_leased(Store *s, const char *task_id, const char *token, Event *events, size_t n) {
        _cleanup_(store_event_ids_done) StoreEventIds ids = {};
        _cleanup_(store_rollbackp) Store *txn = NULL;
        usec_t now = now_usec();
        StoreTaskState state;
        int64_t first = 0;
        int r;

        if (!s || (n > 0 && !events))
                return -EINVAL;
        r = lease_check_args(s, task_id, token);
        if (r < 0)
                return r;
        r = store_events_prepare(s, events, n, task_id, &ids);
        if (r < 0)
                return r;

        /* Even with nothing to append: the caller learns the lease is lost. */
        r = lease_begin(s, task_id, token, now, &txn, &state);
        if (r < 0)
                return r;
        if (n > 0) {
                r = store_object_events_insert(s, EVENT_LOG_TASK, task_id, events, n, now, &first);
                if (r < 0)
                        return r;
        }
        r = store_commit(&txn);
        if (r < 0)
                return r;

        store_events_complete(events, n, &ids, first, now);
        return 0;
}
