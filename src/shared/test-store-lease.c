/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store suite for claims and leases (also raced by forked workers with
 * handles of their own), ping and open errors. Runs on both backends like
 * test-store.c, in a database of its own: claims take the oldest task of
 * the whole table. Control requests, notifications and wake-ups are in
 * test-store-control.c. */

#include <fcntl.h>
#include <libpq-fe.h>
#include <stdarg.h>

#include "conf.h"
#include "test-store-util.h"

#define LEASE (60 * USEC_PER_SEC)

/* ---- helpers ---- */

static Task *get_task(const char *id) {
        Task *t = NULL;

        check_ok(store_task_get(store, id, &t));
        return t;
}

/* How many rows of tasks match `where` for task `id`. */
_printf_(2, 3) static int64_t count_task(const char *id, const char *where, ...) {
        _cleanup_free_ char *cond = NULL, *sql = NULL;
        va_list ap;

        va_start(ap, where);
        check(vasprintf(&cond, where, ap) >= 0);
        va_end(ap);
        sql = xasprintf("SELECT COUNT(*) FROM tasks WHERE id = '%s' AND %s", id, cond);
        return raw_sql(sql);
}

/* The task's events of `type`; the last one's payload in *ret_payload. */
static size_t events_of_type(const char *id, const char *type, char **ret_payload) {
        Event *e = NULL;
        size_t n = 0, found = 0;

        check_ok(store_event_list(store, EVENT_LOG_TASK, id, 0, 0, &e, &n));
        for (size_t i = 0; i < n; i++) {
                if (!streq(e[i].type, type))
                        continue;
                found++;
                if (ret_payload) {
                        free(*ret_payload);
                        *ret_payload = xstrdup(e[i].payload);
                }
        }
        event_array_free(e, n);
        return found;
}

static void expire_lease(const char *id) {
        _cleanup_free_ char *sql = xasprintf("UPDATE tasks SET lease_expires_at = 1 WHERE id = '%s'", id);
        raw_sql(sql);
}

/* ---- open and ping ---- */

static void test_open_full(void) {
        _cleanup_free_ char *missing = NULL;
        char *error = NULL;
        Store *s = NULL;

        check_r(store_open_full(_STORE_BACKEND_MAX, db_path, &s, &error), -EINVAL);
        check_streq(error, strerror(EINVAL));
        error = mfree(error);

        if (backend == STORE_BACKEND_SQLITE) {
                missing = xasprintf("%s/no/such/dir/db", tmp_dir);
                check_r(store_open_full(backend, missing, &s, &error), -ENOENT);
                check(error && strstr(error, missing) && strstr(error, strerror(ENOENT)));
                error = mfree(error);
                check_r(store_open_full(backend, tmp_dir, &s, &error), -EISDIR);
                check(error && strstr(error, tmp_dir));
        } else {
                check_r(store_open_full(backend, "host=/nonexistent-dir dbname=nothing connect_timeout=2", &s, &error),
                        -EIO);
                /* libpq's words: which socket it tried. */
                check(error && strstr(error, "/nonexistent-dir"));
                error = mfree(error);
                check_r(store_open_full(backend, "not a conninfo", &s, &error), -EIO);
                check(error && strlen(error) > 0);
        }
        error = mfree(error);
        check(!s);

        /* Success leaves *ret_error alone; no error pointer at all is fine too. */
        error = (char *) "untouched";
        check_ok(store_open_full(backend, db_path, &s, &error));
        check_streq(error, "untouched");
        s = store_free(s);
        check_r(store_open_full(backend, "", &s, NULL), -EINVAL);
}

static void test_ping(void) {
        int r;

        check_ok(store_ping(store));
        check_r(store_ping(NULL), -EINVAL);
        if (backend != STORE_BACKEND_POSTGRESQL)
                return;

        /* A dropped connection fails at most one ping, then the handle is back. */
        check(raw_sql("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                      "WHERE pid <> pg_backend_pid() AND datname = current_database() "
                      "AND backend_type = 'client backend'") >= 1);
        r = store_ping(store);
        check(IN_SET(r, 0, -EIO));
        check_ok(store_ping(store));
}

/* The write check leaves one row and the database its size, however often
 * it runs. */
static void test_check_writable(void) {
        int64_t before = -1;

        check_r(store_check_writable(NULL), -EINVAL);
        for (int i = 0; i < 300; i++)
                check_ok(store_check_writable(store));
        check_int(raw_sql("SELECT COUNT(*) FROM store_probe"), 1);
        check(raw_sql("SELECT MAX(written_at) FROM store_probe") > (int64_t) (now_usec() - 60 * USEC_PER_SEC));
        if (backend == STORE_BACKEND_POSTGRESQL)
                before = raw_sql("SELECT pg_relation_size('store_probe')");
        else
                before = raw_sql("SELECT page_count FROM pragma_page_count()");
        for (int i = 0; i < 300; i++)
                check_ok(store_check_writable(store));
        if (backend == STORE_BACKEND_POSTGRESQL)
                check_int(raw_sql("SELECT pg_relation_size('store_probe')"), before);
        else
                check_int(raw_sql("SELECT page_count FROM pragma_page_count()"), before);
        check_int(raw_sql("SELECT COUNT(*) FROM store_probe"), 1);

        /* A row somebody deleted is written again. */
        raw_sql("DELETE FROM store_probe");
        check_ok(store_check_writable(store));
        check_int(raw_sql("SELECT COUNT(*) FROM store_probe"), 1);

        /* A session that holds the table (as pg_dump does) does not hold the
         * check up: it writes the row in place instead of waiting. */
        if (backend == STORE_BACKEND_POSTGRESQL) {
                PGconn *c = PQconnectdb(db_path);
                usec_t t0;

                check(PQstatus(c) == CONNECTION_OK);
                PQclear(PQexec(c, "BEGIN"));
                PQclear(PQexec(c, "LOCK TABLE store_probe IN ACCESS SHARE MODE"));
                t0 = now_usec();
                check_ok(store_check_writable(store));
                check(now_usec() - t0 < 3 * USEC_PER_SEC);
                PQclear(PQexec(c, "COMMIT"));
                PQfinish(c);
                check_int(raw_sql("SELECT COUNT(*) FROM store_probe"), 1);
                check_ok(store_check_writable(store));
        }
}

/* ---- claims ---- */

static void test_claim(void) {
        _cleanup_(task_freep) Task *t1 = NULL, *t2 = NULL, *t3 = NULL, *done = NULL, *got = NULL;
        _cleanup_free_ char *payload = NULL;
        char token[LEASE_TOKEN_MAX], token2[LEASE_TOKEN_MAX];
        usec_t before = now_usec();

        tasks_clear();
        check_r(store_task_claim(store, "w1", LEASE, &got, token), 0);
        check(!got);

        /* Claimed by created_at, not by insertion order. */
        t3 = insert_task("lease", "third", TASK_PENDING, 3000);
        done = insert_task("lease", "done", TASK_DONE, 500);
        t1 = insert_task("lease", "first", TASK_PENDING, 1000);
        t2 = task_make("lease", "second");
        t2->created_at = 2000;
        t2->started_at = 42;
        check_ok(store_task_insert(store, t2));

        check_r(store_task_claim(store, "w\"1\\", LEASE, &got, token), 1);
        check_streq(got->id, t1->id);
        check_int(got->status, TASK_RUNNING);
        check_int(got->version, 2);
        check(got->started_at >= before && got->started_at <= now_usec());
        check(got->updated_at >= got->started_at);
        check(id_is_valid(token));
        check_int(count_task(t1->id, "worker_id = 'w\"1\\' AND lease_token = '%s' AND lease_expires_at > %" PRIu64,
                             token, before + LEASE - 1), 1);
        /* The event, in the same transaction; the worker id JSON-quoted. */
        check_int(events_of_type(t1->id, "claimed", &payload), 1);
        check_streq(payload, "{\"worker\":\"w\\\"1\\\\\",\"rescued\":false}");
        got = task_free(got);
        check_ok(store_task_get(store, t1->id, &got));
        check_int(got->version, 2);

        /* A start time already set is kept. */
        got = task_free(got);
        check_r(store_task_claim(store, "w2", LEASE, &got, token2), 1);
        check_streq(got->id, t2->id);
        check_int(got->started_at, 42);
        check(!streq(token, token2));

        /* Held leases and final tasks are not claimable, also not by id. */
        got = task_free(got);
        check_r(store_task_claim_id(store, t1->id, "w3", LEASE, &got, token2), 0);
        check(!got);
        check_r(store_task_claim_id(store, done->id, "w3", LEASE, &got, token2), 0);
        check_r(store_task_claim_id(store, "no-such-task", "w3", LEASE, &got, token2), 0);
        check_r(store_task_claim_id(store, t3->id, "w3", LEASE, &got, token2), 1);
        check_streq(got->id, t3->id);
        got = task_free(got);
        check_r(store_task_claim(store, "w3", LEASE, &got, token2), 0);
        check(!got);
        check_int(count_task(done->id, "status = 'done' AND lease_token IS NULL AND version = 1"), 1);

        /* An interrupted task nobody holds waits for its user: claimable only
         * once a control request (a message, a cancel) is waiting for it. */
        {
                _cleanup_(task_freep) Task *idle = insert_task("lease", "interrupted", TASK_INTERRUPTED, 100);
                ControlRequest message = { .task_id = idle->id, .kind = CONTROL_MESSAGE,
                                           .payload = (char *) "{\"message\":\"go on\"}" };

                check_r(store_task_claim(store, "w4", LEASE, &got, token2), 0);
                check_r(store_task_claim_id(store, idle->id, "w4", LEASE, &got, token2), 0);
                check_ok(store_control_insert(store, &message));
                check_r(store_task_claim(store, "w4", LEASE, &got, token2), 1);
                check_streq(got->id, idle->id);
                check_int(got->status, TASK_RUNNING);
                got = task_free(got);
                free(message.id);
        }

        /* Bad arguments. */
        check_r(store_task_claim(store, "", LEASE, &got, token2), -EINVAL);
        check_r(store_task_claim(store, NULL, LEASE, &got, token2), -EINVAL);
        check_r(store_task_claim(store, "bad \xc3\x28", LEASE, &got, token2), -EINVAL);
        check_r(store_task_claim(store, "w", 0, &got, token2), -EINVAL);
        check_r(store_task_claim(store, "w", USEC_INFINITY, &got, token2), -EINVAL);
        check_r(store_task_claim_id(store, NULL, "w", LEASE, &got, token2), -EINVAL);
        check_r(store_task_claim_id(store, "", "w", LEASE, &got, token2), -EINVAL);
        check_r(store_task_claim(NULL, "w", LEASE, &got, token2), -EINVAL);
}

/* The life of a lease: heartbeats and writes while it is held, refusal
 * once it expired, the rescue by another worker, which the old one cannot
 * disturb any more, and the release. */
static void test_lease(void) {
        _cleanup_(task_freep) Task *t = NULL, *mine = NULL, *theirs = NULL, *got = NULL;
        _cleanup_free_ char *payload = NULL, *expiry_sql = NULL;
        char token[LEASE_TOKEN_MAX], token2[LEASE_TOKEN_MAX];
        Event e[2] = {
                { .type = (char *) "assistant", .payload = (char *) "{\"text\":\"hi\"}" },
                { .type = (char *) "tool_use", .payload = (char *) "{\"name\":\"Bash\"}" },
        };
        int64_t expiry, version;

        tasks_clear();
        t = insert_task("lease", "leased", TASK_PENDING, 0);
        check_r(store_task_claim(store, "w1", LEASE, &mine, token), 1);

        /* A heartbeat moves the expiry on. */
        expiry_sql = xasprintf("SELECT lease_expires_at FROM tasks WHERE id = '%s'", t->id);
        expiry = raw_sql(expiry_sql);
        usleep(2000);
        check_ok(store_task_heartbeat(store, t->id, token, 2 * LEASE));
        check(raw_sql(expiry_sql) > expiry + (int64_t) LEASE);
        check_int(count_task(t->id, "version = %" PRIi64, mine->version), 1);

        /* Only the worker's fields are written, whatever the version: the
         * API renamed the task meanwhile, and the name stays the API's. */
        check_ok(store_task_get(store, t->id, &got));
        free(got->name);
        got->name = xstrdup("renamed by the api");
        check_ok(store_task_update(store, got, NULL));
        free(mine->name);
        mine->name = xstrdup("the worker's stale name");
        mine->session_id = xstrdup("session-1");
        mine->worktree = xstrdup("/var/lib/makima/worktrees/x");
        mine->branch = xstrdup("makima/x");
        mine->iteration_count = 3;
        mine->max_iterations = 7;
        mine->cost_usd = 0.25;
        check_ok(store_task_update_leased(store, mine, token, e, 2));
        check_int(mine->version, got->version + 1);
        check_int(e[1].seq, e[0].seq + 1);
        check_streq(e[0].object_id, t->id);
        got = task_free(got);
        got = get_task(t->id);
        check_streq(got->name, "renamed by the api");
        check_streq(got->session_id, "session-1");
        check_streq(got->worktree, "/var/lib/makima/worktrees/x");
        check_streq(got->branch, "makima/x");
        check_int(got->iteration_count, 3);
        check_int(got->max_iterations, 7);
        check(got->cost_usd == 0.25);
        check_int(got->version, mine->version);
        check_int(got->updated_at, mine->updated_at);
        free(e[0].object_id);
        free(e[1].object_id);
        e[0] = (Event) { .type = e[0].type, .payload = e[0].payload };
        e[1] = (Event) { .type = e[1].type, .payload = e[1].payload };

        /* The state machine holds: running → merged is refused, nothing written. */
        mine->status = TASK_MERGED;
        check_r(store_task_update_leased(store, mine, token, NULL, 0), -EINVAL);
        check(strstr(store_last_error(store), "running"));
        check_int(count_task(t->id, "status = 'running' AND version = %" PRIi64, mine->version), 1);
        mine->status = TASK_PAUSED;
        check_ok(store_task_update_leased(store, mine, token, NULL, 0));
        mine->status = _TASK_STATE_MAX;
        check_r(store_task_update_leased(store, mine, token, NULL, 0), -EINVAL);
        mine->status = TASK_PAUSED;

        /* Expired: refused even though nobody has taken it over yet. */
        expire_lease(t->id);
        version = mine->version;
        check_r(store_task_heartbeat(store, t->id, token, LEASE), -ENOLCK);
        check_r(store_event_append_leased(store, t->id, token, e, 1), -ENOLCK);
        /* A refused append fills nothing in. */
        check(!e[0].object_id && e[0].seq == 0 && e[0].created_at == 0);

        /* The rescue: paused becomes running, the session and worktree stay. */
        check_r(store_task_claim(store, "w2", LEASE, &theirs, token2), 1);
        check_streq(theirs->id, t->id);
        check_int(theirs->status, TASK_RUNNING);
        check_streq(theirs->session_id, "session-1");
        check_streq(theirs->worktree, "/var/lib/makima/worktrees/x");
        check_int(theirs->started_at, mine->started_at);
        check_int(theirs->version, version + 1);
        check_int(events_of_type(t->id, "claimed", &payload), 2);
        check_streq(payload, "{\"worker\":\"w2\",\"rescued\":true}");

        /* The old worker cannot touch it any more. */
        size_t n_events = event_count(store, EVENT_LOG_TASK, t->id);
        mine->status = TASK_FAILED;
        check_r(store_task_heartbeat(store, t->id, token, LEASE), -ENOLCK);
        check_r(store_task_update_leased(store, mine, token, e, 1), -ENOLCK);
        check(strstr(store_last_error(store), "expired or was taken over"));
        check_r(store_event_append_leased(store, t->id, token, e, 2), -ENOLCK);
        check_r(store_event_append_leased(store, t->id, token, NULL, 0), -ENOLCK);
        check_r(store_task_release(store, t->id, token), -ENOLCK);
        check_int(event_count(store, EVENT_LOG_TASK, t->id), n_events);
        check_int(count_task(t->id, "status = 'running' AND lease_token = '%s' AND version = %" PRIi64, token2,
                             theirs->version), 1);

        /* The new one works on, finishes and lets go. */
        check_ok(store_task_heartbeat(store, t->id, token2, LEASE));
        check_ok(store_event_append_leased(store, t->id, token2, e, 1));
        check_int(e[0].seq, n_events + 1);
        check_ok(store_event_append_leased(store, t->id, token2, NULL, 0));
        theirs->status = TASK_DONE;
        theirs->completed_at = now_usec();
        check_ok(store_task_update_leased(store, theirs, token2, NULL, 0));
        check_ok(store_task_release(store, t->id, token2));
        check_int(count_task(t->id, "worker_id IS NULL AND lease_token IS NULL AND lease_expires_at IS NULL "
                                    "AND status = 'done' AND version = %" PRIi64, theirs->version), 1);
        check_r(store_task_release(store, t->id, token2), -ENOLCK);
        check_r(store_task_heartbeat(store, t->id, token2, LEASE), -ENOLCK);
        got = task_free(got);
        check_r(store_task_claim(store, "w3", LEASE, &got, token), 0);
        free(e[0].object_id);

        /* Bad arguments, and a task that is gone. */
        check_r(store_task_heartbeat(store, t->id, "", LEASE), -EINVAL);
        check_r(store_task_heartbeat(store, t->id, token2, 0), -EINVAL);
        check_r(store_task_heartbeat(store, NULL, token2, LEASE), -EINVAL);
        check_r(store_task_release(store, t->id, NULL), -EINVAL);
        check_r(store_task_update_leased(store, theirs, NULL, NULL, 0), -EINVAL);
        check_r(store_task_update_leased(store, theirs, token2, NULL, 1), -EINVAL);
        check_r(store_event_append_leased(store, t->id, token2, NULL, 1), -EINVAL);
        check_ok(store_task_delete(store, t->id, -1));
        check_r(store_task_heartbeat(store, t->id, token2, LEASE), -ENOLCK);
        check(strstr(store_last_error(store), "does not exist"));
        check_r(store_task_update_leased(store, theirs, token2, NULL, 0), -ENOLCK);
}

/* The base branch: a worker records the branch it made the worktree from
 * (when the task named none, the repository's); a NULL leaves the row's. */
static void test_lease_base_branch(void) {
        _cleanup_(task_freep) Task *t = NULL, *mine = NULL, *got = NULL;
        char token[LEASE_TOKEN_MAX];

        tasks_clear();
        t = insert_task("lease", "no base branch", TASK_PENDING, 0);
        check_r(store_task_claim(store, "w1", LEASE, &mine, token), 1);
        check(!mine->base_branch);

        /* NULL: nothing to record yet. */
        mine->worktree = xstrdup("/w/x");
        check_ok(store_task_update_leased(store, mine, token, NULL, 0));
        check_int(count_task(t->id, "base_branch IS NULL"), 1);

        mine->base_branch = xstrdup("trunk-ü");
        check_ok(store_task_update_leased(store, mine, token, NULL, 0));
        got = get_task(t->id);
        check_streq(got->base_branch, "trunk-ü");
        check_int(got->version, mine->version);

        /* Changed by the API under the running task: the worktree was made
         * from the worker's branch, so that is the one a diff needs. */
        free(got->base_branch);
        got->base_branch = xstrdup("changed-by-api");
        check_ok(store_task_update(store, got, NULL));
        mine->iteration_count = 1;
        check_ok(store_task_update_leased(store, mine, token, NULL, 0));
        got = task_free(got);
        got = get_task(t->id);
        check_streq(got->base_branch, "trunk-ü");
        check_int(got->iteration_count, 1);

        /* A NULL in a later write keeps it. */
        mine->base_branch = mfree(mine->base_branch);
        check_ok(store_task_update_leased(store, mine, token, NULL, 0));
        check_int(count_task(t->id, "base_branch = 'trunk-ü'"), 1);

        /* Checked like every string. */
        mine->base_branch = xstrdup("bad \xc3\x28");
        check_r(store_task_update_leased(store, mine, token, NULL, 0), -EINVAL);
        check_int(count_task(t->id, "base_branch = 'trunk-ü' AND version = %" PRIi64, mine->version), 1);
}

/* The files to copy into the worktree reach the worker with its claim; they
 * are the API's, so the worker's writes leave them as they are. */
static void test_lease_copy_files(void) {
        _cleanup_(task_freep) Task *t = NULL, *mine = NULL, *got = NULL;
        char token[LEASE_TOKEN_MAX];

        tasks_clear();
        t = task_make("lease", "with files");
        check(strv_extend(&t->copy_files, ".env") >= 0);
        check(strv_extend(&t->copy_files, "config/secrets ü.json") >= 0);
        check_ok(store_task_insert(store, t));
        check_r(store_task_claim(store, "w1", LEASE, &mine, token), 1);
        check_streq(mine->id, t->id);
        check_int(strv_length(mine->copy_files), 2);
        check_streq(mine->copy_files[0], ".env");
        check_streq(mine->copy_files[1], "config/secrets ü.json");

        mine->copy_files = strv_free(mine->copy_files);
        mine->worktree = xstrdup("/w/files");
        check_ok(store_task_update_leased(store, mine, token, NULL, 0));
        got = get_task(t->id);
        check_streq(got->worktree, "/w/files");
        check_int(strv_length(got->copy_files), 2);
        check_streq(got->copy_files[1], "config/secrets ü.json");
}

/* A task that reached its iteration limit is put back to pending with a
 * higher one (what POST …/resume does): the next claim gets the same
 * session, worktree, branch and count, and the new limit. */
static void test_resume_higher_limit(void) {
        _cleanup_(task_freep) Task *t = NULL, *mine = NULL, *got = NULL, *again = NULL;
        char token[LEASE_TOKEN_MAX], token2[LEASE_TOKEN_MAX];
        Event e = { .type = (char *) "iteration",
                    .payload = (char *) "{\"iteration\":4,\"max\":4,\"reason\":\"reached the iteration limit of 4\"}" };

        tasks_clear();
        t = insert_task("lease", "looping", TASK_PENDING, 0);
        t->max_iterations = 4;
        check_ok(store_task_update(store, t, NULL));
        check_r(store_task_claim(store, "w1", LEASE, &mine, token), 1);
        mine->session_id = xstrdup("sess-1");
        mine->worktree = xstrdup("/w/looping");
        mine->branch = xstrdup("makima/looping");
        mine->base_branch = xstrdup("main");
        mine->iteration_count = 4;
        mine->cost_usd = 0.75;
        mine->status = TASK_ITERATION_LIMIT_REACHED;
        mine->error = xstrdup("reached the iteration limit of 4");
        mine->completed_at = now_usec();
        check_ok(store_task_update_leased(store, mine, token, &e, 1));
        free(e.object_id);
        check_ok(store_task_release(store, t->id, token));
        check_r(store_task_claim(store, "w2", LEASE, &again, token2), 0);

        got = get_task(t->id);
        got->max_iterations = 9;
        got->status = TASK_PENDING;
        got->error = mfree(got->error);
        got->completed_at = 0;
        check_ok(store_task_update(store, got, NULL));

        check_r(store_task_claim(store, "w2", LEASE, &again, token2), 1);
        check_streq(again->id, t->id);
        check_int(again->status, TASK_RUNNING);
        check_int(again->max_iterations, 9);
        check_int(again->iteration_count, 4);
        check_streq(again->session_id, "sess-1");
        check_streq(again->worktree, "/w/looping");
        check_streq(again->branch, "makima/looping");
        check_streq(again->base_branch, "main");
        check(again->cost_usd == 0.75);
        check(!again->error);
        check_int(again->completed_at, 0);
}

/* A lease really runs out with time, and an active task without a lease
 * (nobody runs it) is rescued at once. */
/* A lease that ran out while its worker could not reach the store is taken
 * back, unless another worker claimed the task meanwhile. */
static void test_lease_reclaim(void) {
        _cleanup_(task_freep) Task *t = NULL, *got = NULL, *again = NULL;
        char token[LEASE_TOKEN_MAX], token2[LEASE_TOKEN_MAX];
        Event e = { .type = (char *) "assistant", .payload = (char *) "{}" };

        tasks_clear();
        t = insert_task("lease", "reclaimed", TASK_PENDING, 1000);
        check_r(store_task_claim(store, "w1", LEASE, &got, token), 1);
        expire_lease(t->id);
        check_r(store_event_append_leased(store, t->id, token, &e, 1), -ENOLCK);
        check_r(store_task_heartbeat(store, t->id, token, LEASE), -ENOLCK);

        check_ok(store_task_lease_reclaim(store, t->id, token, LEASE));
        check_int(count_task(t->id, "lease_token = '%s' AND lease_expires_at > %" PRIu64, token,
                             now_usec() + LEASE / 2), 1);
        check_ok(store_event_append_leased(store, t->id, token, &e, 1));
        free(e.object_id);
        check_ok(store_task_heartbeat(store, t->id, token, LEASE));
        /* Reclaiming a lease that is still held just renews it. */
        check_ok(store_task_lease_reclaim(store, t->id, token, LEASE));

        /* Once a rescuer claimed it, the old token is worth nothing. */
        expire_lease(t->id);
        check_r(store_task_claim_id(store, t->id, "w2", LEASE, &again, token2), 1);
        check_r(store_task_lease_reclaim(store, t->id, token, LEASE), -ENOLCK);
        check_int(count_task(t->id, "lease_token = '%s' AND worker_id = 'w2'", token2), 1);
        /* Nor after a release. */
        check_ok(store_task_release(store, t->id, token2));
        check_r(store_task_lease_reclaim(store, t->id, token2, LEASE), -ENOLCK);

        check_r(store_task_lease_reclaim(store, "no-such-task", token, LEASE), -ENOLCK);
        check_r(store_task_lease_reclaim(store, t->id, "", LEASE), -EINVAL);
        check_r(store_task_lease_reclaim(store, t->id, token, 0), -EINVAL);
        check_r(store_task_lease_reclaim(NULL, t->id, token, LEASE), -EINVAL);
}

static void test_lease_time(void) {
        _cleanup_(task_freep) Task *t = NULL, *u = NULL, *got = NULL;
        char token[LEASE_TOKEN_MAX], token2[LEASE_TOKEN_MAX];

        tasks_clear();
        t = insert_task("lease", "short", TASK_PENDING, 0);
        /* Long enough for the checks before the sleep on a loaded machine. */
        check_r(store_task_claim(store, "w1", 500 * USEC_PER_MSEC, &got, token), 1);
        check_ok(store_task_heartbeat(store, t->id, token, 500 * USEC_PER_MSEC));
        got = task_free(got);
        check_r(store_task_claim(store, "w2", LEASE, &got, token2), 0);
        usleep(600 * 1000);
        check_r(store_task_heartbeat(store, t->id, token, LEASE), -ENOLCK);
        check_r(store_task_claim(store, "w2", LEASE, &got, token2), 1);
        check_streq(got->id, t->id);

        /* Waiting, and no lease at all. */
        got = task_free(got);
        u = insert_task("lease", "unleased", TASK_WAITING, 0);
        check_r(store_task_claim_id(store, u->id, "w3", LEASE, &got, token), 1);
        check_int(got->status, TASK_RUNNING);
        check_int(events_of_type(u->id, "claimed", NULL), 1);
}

/* ---- claims raced by forked workers, each with a handle of its own ---- */

#define CLAIMERS 4
#define CLAIMED_TASKS 40

static void test_concurrent_claim(void) {
        Task *tasks[CLAIMED_TASKS] = {};
        int claimed[CLAIMED_TASKS] = {}, codes[CLAIMERS], fds[2];
        pid_t pids[CLAIMERS];
        char line[128];
        FILE *f;
        Barrier b;

        tasks_clear();
        /* Half pending, half rescues of leases that expired. */
        for (int i = 0; i < CLAIMED_TASKS; i++) {
                char name[16];

                snprintf(name, sizeof(name), "race-%d", i);
                tasks[i] = insert_task("lease", name, TASK_PENDING, 1000 + i);
                if (i % 2 == 1) {
                        _cleanup_free_ char *sql = xasprintf(
                                "UPDATE tasks SET status = 'running', worker_id = 'dead', lease_token = 'old', "
                                "lease_expires_at = 1 WHERE id = '%s'", tasks[i]->id);
                        raw_sql(sql);
                }
        }

        check(pipe2(fds, O_CLOEXEC) >= 0);
        barrier_init(&b);
        for (int w = 0; w < CLAIMERS; w++) {
                pids[w] = fork();
                check(pids[w] >= 0);
                if (pids[w] == 0) {
                        char worker[16], token[LEASE_TOKEN_MAX];
                        Store *s = NULL;
                        Task *t = NULL;
                        int r;

                        close(fds[0]);
                        snprintf(worker, sizeof(worker), "worker-%d", w);
                        if (store_open(backend, db_path, &s) < 0)
                                _exit(1);
                        barrier_child_wait(&b);
                        while ((r = store_task_claim(s, worker, LEASE, &t, token)) > 0) {
                                char out[128];
                                int n = snprintf(out, sizeof(out), "%s %s\n", t->id, worker);

                                /* A line is written at once (< PIPE_BUF). */
                                if (write(fds[1], out, n) != n)
                                        _exit(3);
                                if (store_task_heartbeat(s, t->id, token, LEASE) < 0)
                                        _exit(4);
                                t = task_free(t);
                        }
                        if (r < 0)
                                fprintf(stderr, "claim: %s\n", store_last_error(s));
                        store_free(s);
                        _exit(r < 0 ? 2 : 0);
                }
        }
        close(fds[1]);
        barrier_release(&b, CLAIMERS);

        f = fdopen(fds[0], "r");
        check(f);
        while (fgets(line, sizeof(line), f)) {
                char id[ID_STRING_MAX], worker[16];
                int i;

                check(sscanf(line, "%36s %15s", id, worker) == 2);
                for (i = 0; i < CLAIMED_TASKS; i++)
                        if (streq(tasks[i]->id, id))
                                break;
                check(i < CLAIMED_TASKS);
                claimed[i]++;
                /* The row says the same worker holds it. */
                check_int(count_task(id, "worker_id = '%s' AND status = 'running'", worker), 1);
        }
        fclose(f);
        wait_children(pids, CLAIMERS, codes);
        for (int w = 0; w < CLAIMERS; w++)
                check_int(codes[w], 0);

        /* Every task exactly once, with exactly one claim in its log. */
        for (int i = 0; i < CLAIMED_TASKS; i++) {
                _cleanup_free_ char *payload = NULL;

                check_int(claimed[i], 1);
                check_int(events_of_type(tasks[i]->id, "claimed", &payload), 1);
                check(strstr(payload, i % 2 == 1 ? "\"rescued\":true" : "\"rescued\":false"));
                task_free(tasks[i]);
        }
}

static const StoreTest tests[] = {
        { "open_full", test_open_full },
        { "ping", test_ping },
        { "check_writable", test_check_writable },
        { "claim", test_claim },
        { "lease", test_lease },
        { "lease_base_branch", test_lease_base_branch },
        { "lease_copy_files", test_lease_copy_files },
        { "resume_higher_limit", test_resume_higher_limit },
        { "lease_reclaim", test_lease_reclaim },
        { "lease_time", test_lease_time },
        { "concurrent_claim", test_concurrent_claim },
};

int main(int argc, char *argv[]) {
        return store_test_main(argc, argv, "store-lease", true, tests, ELEMENTSOF(tests));
}
