/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store suite for records: contracts, tasks, lists, versions, deletes,
 * tokens, backend failures and concurrent writers of one task. The same
 * checks run against SQLite (a fresh file in a temporary directory) or,
 * when MAKIMA_TEST_PG_URL is set, against the real PostgreSQL server
 * tests/with-postgresql.sh started for us. */

#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "conf.h"
#include "test-store-util.h"

/* ---- records ---- */

static const char tricky[] =
        "Ω ünïcødé 😀 'single' \"double\" back\\slash; DROP TABLE tasks; -- \t tab\nnewline %s %n $1 ?1";

/* Appends the i-th name of a list to s, as in "a,b,c". */
static void name_append(char **s, size_t i, const char *name) {
        char *t = xasprintf("%s%s%s", *s, i > 0 ? "," : "", name);

        free(*s);
        *s = t;
}


static void check_task_list(Store *s, const TaskFilter *f, const char *expected) {
        _cleanup_free_ char *names = xstrdup("");
        Task **a = NULL;
        size_t n = 0;

        check_ok(store_task_list(s, f, &a, &n));
        for (size_t i = 0; i < n; i++)
                name_append(&names, i, a[i]->name);
        check_streq(names, expected);
        task_array_free(a, n);
}

static void check_contract_list(Store *s, const ContractFilter *f, const char *expected) {
        _cleanup_free_ char *names = xstrdup("");
        Contract **a = NULL;
        size_t n = 0;

        check_ok(store_contract_list(s, f, &a, &n));
        for (size_t i = 0; i < n; i++)
                name_append(&names, i, a[i]->name);
        check_streq(names, expected);
        contract_array_free(a, n);
}

/* ---- tests ---- */

static void test_backend_strings(void) {
        check_streq(store_backend_to_string(STORE_BACKEND_SQLITE), "sqlite");
        check_streq(store_backend_to_string(STORE_BACKEND_POSTGRESQL), "postgresql");
        check(!store_backend_to_string(_STORE_BACKEND_MAX));
        check(!store_backend_to_string(-1));
        check_int(store_backend_from_string("sqlite"), STORE_BACKEND_SQLITE);
        check_int(store_backend_from_string("postgresql"), STORE_BACKEND_POSTGRESQL);
        check_int(store_backend_from_string("mysql"), -EINVAL);
        check_int(store_backend_from_string(NULL), -EINVAL);
        check_int(store_backend(store), backend);
}


static void test_contracts(void) {
        _cleanup_(contract_freep) Contract *c = NULL, *d = NULL, *got = NULL, *dup = NULL;
        _cleanup_free_ char *owner = xasprintf("contracts-%s", run);
        _cleanup_free_ char *fixed_id = xasprintf("contract-%s", run);
        usec_t before = now_usec();

        /* Every field set, strings that would break SQL built by hand. */
        c = contract_make(owner, tricky);
        c->description = xstrdup("a plan\nwith 'quotes' and \"more\" and emoji 🎉 and Ünïcode");
        c->type = CONTRACT_TYPE_SIMPLE;
        c->phase = PHASE_EXECUTE;
        c->status = CONTRACT_PAUSED;
        c->autonomous_loop = true;
        c->supervisor_task_id = xstrdup("supervisor-☃");
        c->max_cost_usd = 3.75;
        check_ok(store_contract_insert(store, c));
        check(id_is_valid(c->id));
        check_int(c->version, 1);
        check(c->created_at >= before && c->created_at <= now_usec());
        check(c->updated_at >= before && c->updated_at <= now_usec());
        check_ok(store_contract_get(store, c->id, &got));
        check_contract_equal(c, got);

        /* Our own id and times are kept; NULL strings stay NULL. */
        d = contract_make(NULL, NULL);
        d->id = xstrdup(fixed_id);
        d->created_at = 1234567;
        d->updated_at = 2345678;
        d->version = 99;
        check_ok(store_contract_insert(store, d));
        check_streq(d->id, fixed_id);
        check_int(d->created_at, 1234567);
        check_int(d->updated_at, 2345678);
        check_int(d->version, 1);
        got = contract_free(got);
        check_ok(store_contract_get(store, fixed_id, &got));
        check_contract_equal(d, got);
        check(!got->owner && !got->name && !got->description && !got->supervisor_task_id);
        check_int(got->type, CONTRACT_TYPE_SPEC);
        check_int(got->phase, PHASE_RESEARCH);
        check_int(got->status, CONTRACT_ACTIVE);
        check(!got->autonomous_loop);
        check(got->max_cost_usd == 0.0);

        /* The same id twice. */
        dup = contract_make(owner, "dup");
        dup->id = xstrdup(fixed_id);
        check_r(store_contract_insert(store, dup), -EEXIST);
        check_int(dup->version, 0);
        check_int(dup->created_at, 0);

        got = contract_free(got);
        check_r(store_contract_get(store, "no-such-contract", &got), -ENOENT);
        check(!got);

        /* Bad arguments never reach the database. */
        dup = contract_free(dup);
        dup = contract_make(owner, "bad");
        dup->status = _CONTRACT_STATUS_MAX;
        check_r(store_contract_insert(store, dup), -EINVAL);
        dup->status = CONTRACT_ACTIVE;
        dup->phase = -1;
        check_r(store_contract_insert(store, dup), -EINVAL);
        dup->phase = PHASE_PLAN;
        dup->max_cost_usd = INFINITY;
        check_r(store_contract_insert(store, dup), -EINVAL);
        dup->max_cost_usd = 0;
        free(dup->name);
        dup->name = xstrdup("bad \xc3\x28 utf-8");
        check_r(store_contract_insert(store, dup), -EINVAL);
        check(!dup->id);
        check_r(store_contract_insert(NULL, dup), -EINVAL);
        check_r(store_contract_get(store, "", &got), -EINVAL);
}

static void test_tasks(void) {
        _cleanup_(task_freep) Task *t = NULL, *u = NULL, *got = NULL, *bad = NULL;
        _cleanup_(contract_freep) Contract *c = NULL;
        _cleanup_free_ char *owner = xasprintf("tasks-%s", run);
        _cleanup_free_ char *big = NULL;

        c = contract_make(owner, "tasks");
        check_ok(store_contract_insert(store, c));

        /* A 256 KiB plan: strings are bound, never pasted into SQL. */
        big = malloc(256 * 1024 + 1);
        check(big);
        for (size_t i = 0; i < 256 * 1024; i++)
                big[i] = "abc'\"\\; \n"[i % 9];
        big[256 * 1024] = '\0';

        t = task_make(owner, tricky);
        t->plan = TAKE_PTR(big);
        t->repo = xstrdup("/srv/git/répo.git");
        t->base_branch = xstrdup("main");
        t->target_branch = xstrdup("feature/ünï");
        check(strv_extend(&t->copy_files, ".env") >= 0);
        check(strv_extend(&t->copy_files, tricky) >= 0);
        t->parent_task_id = xstrdup("parent-'x'");
        t->contract_id = xstrdup(c->id);
        t->is_supervisor = true;
        t->autonomous_loop = true;
        t->max_iterations = 42;
        t->iteration_count = 7;
        t->status = TASK_ITERATION_LIMIT_REACHED;
        t->error = xstrdup("error: \"it broke\" 💥");
        t->worktree = xstrdup("/var/lib/makima/worktrees/x y");
        t->branch = xstrdup("makima/task-1");
        t->session_id = xstrdup("0b9f0c1e-session");
        t->cost_usd = 12.345678901234567;
        t->max_cost_usd = 0.1;          /* not exact in binary: must come back bit for bit */
        t->started_at = 1700000000123456;
        t->completed_at = 1700000999654321;
        check_ok(store_task_insert(store, t));
        check(id_is_valid(t->id));
        check_int(t->version, 1);
        check(t->created_at > 0 && t->updated_at > 0);
        check_ok(store_task_get(store, t->id, &got));
        check_task_equal(t, got);

        /* The least a task can be: everything optional NULL or 0. */
        u = task_new();
        check(u);
        check_ok(store_task_insert(store, u));
        got = task_free(got);
        check_ok(store_task_get(store, u->id, &got));
        check_task_equal(u, got);
        check(!got->owner && !got->name && !got->plan && !got->contract_id && !got->session_id);
        check_int(got->started_at, 0);
        check_int(got->completed_at, 0);
        check(got->cost_usd == 0.0);
        check(got->max_cost_usd == 0.0);
        check_int(got->status, TASK_PENDING);

        got = task_free(got);
        check_r(store_task_get(store, "no-such-task", &got), -ENOENT);
        check(!got);

        /* A task of a contract that does not exist. */
        bad = task_make(owner, "orphan");
        bad->contract_id = xstrdup("no-such-contract");
        check_r(store_task_insert(store, bad), -ENOENT);
        check(!bad->id);

        /* Duplicate id; bad enums and numbers. */
        free(bad->contract_id);
        bad->contract_id = NULL;
        bad->id = xstrdup(t->id);
        check_r(store_task_insert(store, bad), -EEXIST);
        free(bad->id);
        bad->id = NULL;
        bad->status = _TASK_STATE_MAX;
        check_r(store_task_insert(store, bad), -EINVAL);
        bad->status = TASK_PENDING;
        bad->cost_usd = NAN;
        check_r(store_task_insert(store, bad), -EINVAL);
        bad->cost_usd = 0;
        bad->max_cost_usd = NAN;
        check_r(store_task_insert(store, bad), -EINVAL);
        bad->max_cost_usd = 0;
        bad->max_iterations = -1;
        check_r(store_task_insert(store, bad), -EINVAL);
        bad->max_iterations = 0;
        bad->started_at = USEC_INFINITY;
        check_r(store_task_insert(store, bad), -EINVAL);
        bad->started_at = 0;
        free(bad->plan);
        bad->plan = xstrdup("overlong \xc0\xaf slash");
        check_r(store_task_insert(store, bad), -EINVAL);
        free(bad->plan);
        bad->plan = xstrdup("surrogate \xed\xa0\x80");
        check_r(store_task_insert(store, bad), -EINVAL);
        check(!bad->id);
}

static void check_copy_files_column(const char *id, const char *condition) {
        _cleanup_free_ char *sql = xasprintf("SELECT COUNT(*) FROM tasks WHERE id = '%s' AND %s", id, condition);

        check_int(raw_sql(sql), 1);
}

/* copy_files: none (NULL) and an empty list stay apart, any text and any
 * number of entries come back as they went in, and a column that is not a
 * JSON array of strings is a malformed row. */
static void test_copy_files(void) {
        _cleanup_(task_freep) Task *t = NULL, *e = NULL, *got = NULL;
        _cleanup_free_ char *owner = xasprintf("copy-%s", run), *fix = NULL;
        static const char *const bad_columns[] = {
                "'not json'", "'null'", "'\".env\"'", "'{\"a\":1}'", "'[1]'", "'[\".env\", null]'", "'[[\"x\"]]'",
                "'[\"a\\u0000b\"]'", "'[\".env\"] x'", "''",
        };
        Task **list = NULL;
        size_t n = 0;

        /* None. */
        t = task_make(owner, "none");
        check_ok(store_task_insert(store, t));
        check_copy_files_column(t->id, "copy_files IS NULL");
        check_ok(store_task_get(store, t->id, &got));
        check(!got->copy_files);

        /* An empty list. */
        e = task_make(owner, "empty");
        e->copy_files = calloc(1, sizeof(char *));
        check(e->copy_files);
        check_ok(store_task_insert(store, e));
        check_copy_files_column(e->id, "copy_files = '[]'");
        got = task_free(got);
        check_ok(store_task_get(store, e->id, &got));
        check(got->copy_files && !got->copy_files[0]);

        /* Many, with every kind of text JSON escapes, written by an update. */
        for (size_t i = 0; i < 1000; i++) {
                _cleanup_free_ char *f = xasprintf("dir-%zu/ünï \"%zu\" \\ \t\n/😀.env", i, i);

                check(strv_extend(&t->copy_files, f) >= 0);
        }
        check(strv_extend(&t->copy_files, tricky) >= 0);
        check(strv_extend(&t->copy_files, "") >= 0);
        check(strv_extend(&t->copy_files, "a/b") >= 0);
        check_ok(store_task_update(store, t, NULL));
        got = task_free(got);
        check_ok(store_task_get(store, t->id, &got));
        check_task_equal(t, got);
        check_int(strv_length(got->copy_files), 1003);
        /* Stored as JSON text a person can read: no \/ for a slash. */
        check_copy_files_column(t->id, "copy_files LIKE '%\"a/b\"]'");

        /* Lists read it too. */
        check_ok(store_task_list(store, &(TaskFilter) { .owner = owner, .status = -1 }, &list, &n));
        check_int(n, 2);
        check_int(strv_length(list[0]->copy_files), 1003);
        check(list[1]->copy_files && !list[1]->copy_files[0]);
        task_array_free(list, n);

        /* Back to none. */
        t->copy_files = strv_free(t->copy_files);
        check_ok(store_task_update(store, t, NULL));
        check_copy_files_column(t->id, "copy_files IS NULL");
        got = task_free(got);
        check_ok(store_task_get(store, t->id, &got));
        check(!got->copy_files);

        /* Every entry is checked like any string; nothing is written. */
        check(strv_extend(&t->copy_files, "ok") >= 0);
        check(strv_extend(&t->copy_files, "bad \xc3\x28") >= 0);
        check_r(store_task_update(store, t, NULL), -EINVAL);
        check_copy_files_column(t->id, "copy_files IS NULL");
        got = task_free(got);
        got = task_make(owner, "bad");
        got->copy_files = TAKE_PTR(t->copy_files);
        check_r(store_task_insert(store, got), -EINVAL);
        check(!got->id);

        /* What another writer might leave in the column is refused on reading, not half read. */
        for (size_t i = 0; i < ELEMENTSOF(bad_columns); i++) {
                _cleanup_free_ char *sql = xasprintf("UPDATE tasks SET copy_files = %s WHERE id = '%s'",
                                                     bad_columns[i], e->id);
                Task *bad = NULL;

                raw_sql(sql);
                check_r(store_task_get(store, e->id, &bad), -EBADMSG);
                check(!bad);
        }
        /* A good value makes it readable again (and keeps the other tests' lists whole). */
        fix = xasprintf("UPDATE tasks SET copy_files = '[\"ok\"]' WHERE id = '%s'", e->id);
        raw_sql(fix);
        got = task_free(got);
        check_ok(store_task_get(store, e->id, &got));
        check(strv_length(got->copy_files) == 1 && streq(got->copy_files[0], "ok"));
}

static void test_lists(void) {
        _cleanup_free_ char *o = xasprintf("lists-%s", run), *o2 = xasprintf("lists2-%s", run);
        _cleanup_free_ char *id_a = xasprintf("%s-a", run), *id_b = xasprintf("%s-b", run);
        static const struct {
                const char *name;
                usec_t created_at;
                ContractStatus status;
                bool other_owner;
        } cs[] = {
                { "c0", 1000, CONTRACT_ACTIVE, false },
                { "b", 2000, CONTRACT_PAUSED, false },  /* same created_at as "a": ordered by id */
                { "a", 2000, CONTRACT_ACTIVE, false },
                { "c3", 3000, CONTRACT_COMPLETED, false },
                { "c4", 4000, CONTRACT_ACTIVE, false },
                { "x", 1500, CONTRACT_ACTIVE, true },
        };
        _cleanup_(contract_freep) Contract *k = NULL;
        _cleanup_(task_freep) Task *p = NULL;

        for (size_t i = 0; i < ELEMENTSOF(cs); i++) {
                _cleanup_(contract_freep) Contract *c = contract_make(cs[i].other_owner ? o2 : o, cs[i].name);

                c->created_at = cs[i].created_at;
                c->status = cs[i].status;
                if (streq(cs[i].name, "a"))
                        c->id = xstrdup(id_a);
                else if (streq(cs[i].name, "b"))
                        c->id = xstrdup(id_b);
                check_ok(store_contract_insert(store, c));
        }

        check_contract_list(store, &(ContractFilter) { .owner = o, .status = -1 }, "c0,a,b,c3,c4");
        check_contract_list(store, &(ContractFilter) { .owner = o, .status = CONTRACT_ACTIVE }, "c0,a,c4");
        check_contract_list(store, &(ContractFilter) { .owner = o, .status = -1, .limit = 2, .offset = 1 }, "a,b");
        check_contract_list(store, &(ContractFilter) { .owner = o, .status = -1, .offset = 3 }, "c3,c4");
        check_contract_list(store, &(ContractFilter) { .owner = o, .status = -1, .offset = 10 }, "");
        check_contract_list(store, &(ContractFilter) { .owner = o2, .status = -1 }, "x");
        check_contract_list(store, &(ContractFilter) { .owner = "nobody", .status = CONTRACT_FAILED }, "");

        /* Tasks: P is the parent of t2 and t3; K holds t1, t2 and t4. */
        k = contract_make(o, "K");
        check_ok(store_contract_insert(store, k));
        p = task_make(o, "P");
        p->created_at = 100;
        check_ok(store_task_insert(store, p));
        static const struct {
                const char *name;
                usec_t created_at;
                bool in_k, child_of_p, other_owner;
                TaskState status;
        } ts[] = {
                { "t1", 200, true, false, false, TASK_PENDING },
                { "t2", 300, true, true, false, TASK_RUNNING },
                { "t3", 400, false, true, false, TASK_DONE },
                { "t4", 500, true, false, true, TASK_DONE },
        };
        for (size_t i = 0; i < ELEMENTSOF(ts); i++) {
                _cleanup_(task_freep) Task *t = task_make(ts[i].other_owner ? o2 : o, ts[i].name);

                t->created_at = ts[i].created_at;
                t->status = ts[i].status;
                if (ts[i].in_k)
                        t->contract_id = xstrdup(k->id);
                if (ts[i].child_of_p)
                        t->parent_task_id = xstrdup(p->id);
                check_ok(store_task_insert(store, t));
        }

        check_task_list(store, &(TaskFilter) { .owner = o, .status = -1 }, "P,t1,t2,t3");
        check_task_list(store, &(TaskFilter) { .contract_id = k->id, .status = -1 }, "t1,t2,t4");
        check_task_list(store, &(TaskFilter) { .owner = o, .contract_id = k->id, .status = -1 }, "t1,t2");
        check_task_list(store, &(TaskFilter) { .parent_task_id = p->id, .status = -1 }, "t2,t3");
        check_task_list(store, &(TaskFilter) { .owner = o, .status = TASK_DONE }, "t3");
        check_task_list(store, &(TaskFilter) { .contract_id = k->id, .status = TASK_RUNNING }, "t2");
        check_task_list(store, &(TaskFilter) { .owner = o, .status = -1, .limit = 2, .offset = 1 }, "t1,t2");
        check_task_list(store, &(TaskFilter) { .owner = o, .status = -1, .limit = 1 }, "P");
        check_task_list(store, &(TaskFilter) { .owner = o2, .status = -1 }, "t4");
        check_task_list(store, &(TaskFilter) { .owner = o, .status = TASK_CANCELLED }, "");

        /* No filter at all: everything, this run's rows among them. */
        Task **all = NULL;
        size_t n = 0;
        check_ok(store_task_list(store, NULL, &all, &n));
        check(n >= 5);
        task_array_free(all, n);

        check_r(store_task_list(store, &(TaskFilter) { .status = _TASK_STATE_MAX }, &all, &n), -EINVAL);
        check_r(store_task_list(store, &(TaskFilter) { .status = -2 }, &all, &n), -EINVAL);
        Contract **cl = NULL;
        check_r(store_contract_list(store, &(ContractFilter) { .status = 77 }, &cl, &n), -EINVAL);
        check(!cl);
}

static void test_update(void) {
        _cleanup_(task_freep) Task *t = NULL, *stale = NULL, *got = NULL, *gone = NULL;
        _cleanup_(contract_freep) Contract *c = NULL, *cstale = NULL, *cgot = NULL;
        _cleanup_free_ char *owner = xasprintf("update-%s", run);
        Event e = { .type = (char *) "status", .payload = (char *) "{\"status\":\"running\"}" };
        usec_t updated;

        t = task_make(owner, "before");
        t->created_at = 1000;
        t->updated_at = 1000;
        check_ok(store_task_insert(store, t));
        check_ok(store_task_get(store, t->id, &stale));

        /* Every mutable field is written; version and updated_at move. */
        free(t->name);
        t->name = xstrdup("after 'é'");
        t->status = TASK_RUNNING;
        t->iteration_count = 3;
        t->cost_usd = 0.25;
        t->max_cost_usd = 5;
        t->started_at = now_usec();
        t->session_id = xstrdup("sess");
        free(t->owner);
        t->owner = NULL;
        check_ok(store_task_update(store, t, NULL));
        check_int(t->version, 2);
        check(t->updated_at > 1000);
        check_int(t->created_at, 1000);
        check_ok(store_task_get(store, t->id, &got));
        check_task_equal(t, got);

        /* The version we read is gone: refused, row unchanged. */
        free(stale->name);
        stale->name = xstrdup("lost update");
        check_r(store_task_update(store, stale, NULL), -ESTALE);
        check_int(stale->version, 1);
        got = task_free(got);
        check_ok(store_task_get(store, t->id, &got));
        check_streq(got->name, "after 'é'");
        check_int(got->version, 2);

        /* With an event: both or neither. */
        t->status = TASK_DONE;
        updated = t->updated_at;
        check_ok(store_task_update(store, t, &e));
        check_int(t->version, 3);
        check(t->updated_at >= updated);
        check_int(e.seq, 1);
        check_streq(e.object_id, t->id);
        check(e.created_at > 0);
        free(e.object_id);
        e = (Event) { .type = (char *) "status", .payload = (char *) "{}" };
        stale->version = 2;
        check_r(store_task_update(store, stale, &e), -ESTALE);
        check_int(e.seq, 0);
        check(!e.object_id);
        check_int(event_count(store, EVENT_LOG_TASK, t->id), 1);
        check_ok(store_task_update(store, t, &e));
        check_int(e.seq, 2);
        free(e.object_id);
        check_int(event_count(store, EVENT_LOG_TASK, t->id), 2);

        /* An event for another object is a bad argument. */
        e = (Event) { .object_id = (char *) "someone-else", .type = (char *) "x" };
        check_r(store_task_update(store, t, &e), -EINVAL);
        check_int(t->version, 4);

        /* Gone. */
        gone = task_make(owner, "gone");
        gone->id = xstrdup("no-such-task");
        gone->version = 1;
        check_r(store_task_update(store, gone, NULL), -ENOENT);
        e = (Event) { .type = (char *) "x" };
        check_r(store_task_update(store, gone, &e), -ENOENT);
        check_int(gone->version, 1);

        /* Contracts: the same rules. */
        c = contract_make(owner, "contract");
        check_ok(store_contract_insert(store, c));
        check_ok(store_contract_get(store, c->id, &cstale));
        c->phase = PHASE_SPECIFY;
        c->status = CONTRACT_PAUSED;
        c->autonomous_loop = true;
        c->supervisor_task_id = xstrdup(t->id);
        c->max_cost_usd = 1.5;
        e = (Event) { .type = (char *) "phase", .payload = (char *) "{\"phase\":\"specify\"}" };
        check_ok(store_contract_update(store, c, &e));
        check_int(c->version, 2);
        check_int(e.seq, 1);
        free(e.object_id);
        check_ok(store_contract_get(store, c->id, &cgot));
        check_contract_equal(c, cgot);
        /* A limit is lifted by writing 0. */
        c->max_cost_usd = 0;
        check_ok(store_contract_update(store, c, NULL));
        cgot = contract_free(cgot);
        check_ok(store_contract_get(store, c->id, &cgot));
        check(cgot->max_cost_usd == 0.0);
        check_r(store_contract_update(store, cstale, NULL), -ESTALE);
        e = (Event) { .type = (char *) "phase" };
        check_r(store_contract_update(store, cstale, &e), -ESTALE);
        check_int(event_count(store, EVENT_LOG_CONTRACT, c->id), 1);
        free(cstale->id);
        cstale->id = xstrdup("no-such-contract");
        check_r(store_contract_update(store, cstale, NULL), -ENOENT);
}

static void test_delete(void) {
        _cleanup_(task_freep) Task *t = NULL, *got = NULL;
        _cleanup_free_ char *owner = xasprintf("delete-%s", run);
        static const TaskState active[] = { TASK_RUNNING, TASK_PAUSED, TASK_WAITING };

        t = task_make(owner, "busy");
        check_ok(store_task_insert(store, t));
        append_one(store, EVENT_LOG_TASK, t->id, "a", "1");
        append_one(store, EVENT_LOG_TASK, t->id, "b", "2");

        for (size_t i = 0; i < ELEMENTSOF(active); i++) {
                t->status = active[i];
                check_ok(store_task_update(store, t, NULL));
                check_r(store_task_delete(store, t->id, -1), -EBUSY);
                check_r(store_task_delete(store, t->id, t->version), -EBUSY);
                got = task_free(got);
                check_ok(store_task_get(store, t->id, &got));
                check_int(event_count(store, EVENT_LOG_TASK, t->id), 2);
        }

        t->status = TASK_CANCELLED;
        check_ok(store_task_update(store, t, NULL));
        check_r(store_task_delete(store, t->id, t->version - 1), -ESTALE);
        check_r(store_task_delete(store, t->id, t->version + 1), -ESTALE);
        check_ok(store_task_delete(store, t->id, t->version));
        got = task_free(got);
        check_r(store_task_get(store, t->id, &got), -ENOENT);
        check_int(event_count(store, EVENT_LOG_TASK, t->id), 0);
        check_r(store_task_delete(store, t->id, -1), -ENOENT);
        check_r(store_task_delete(store, "", -1), -EINVAL);

        /* Any version. */
        task_free(t);
        t = task_make(owner, "any");
        check_ok(store_task_insert(store, t));
        check_ok(store_task_delete(store, t->id, -1));
}

static void test_contract_cascade(void) {
        _cleanup_free_ char *owner = xasprintf("cascade-%s", run);
        _cleanup_(contract_freep) Contract *c = NULL, *other = NULL, *got = NULL;
        _cleanup_(task_freep) Task *keep = NULL;
        _cleanup_free_ char *q = NULL;
        Task *tasks[3] = {};

        c = contract_make(owner, "doomed");
        check_ok(store_contract_insert(store, c));
        other = contract_make(owner, "bystander");
        check_ok(store_contract_insert(store, other));
        keep = task_make(owner, "keep");
        keep->contract_id = xstrdup(other->id);
        check_ok(store_task_insert(store, keep));
        append_one(store, EVENT_LOG_TASK, keep->id, "k", NULL);
        append_one(store, EVENT_LOG_CONTRACT, other->id, "k", NULL);

        for (size_t i = 0; i < ELEMENTSOF(tasks); i++) {
                tasks[i] = task_make(owner, "child");
                tasks[i]->contract_id = xstrdup(c->id);
                check_ok(store_task_insert(store, tasks[i]));
                append_one(store, EVENT_LOG_TASK, tasks[i]->id, "out", "{\"n\":1}");
                append_one(store, EVENT_LOG_TASK, tasks[i]->id, "out", "{\"n\":2}");
        }
        append_one(store, EVENT_LOG_CONTRACT, c->id, "phase", "{}");

        /* One running task holds the whole contract. */
        tasks[1]->status = TASK_RUNNING;
        check_ok(store_task_update(store, tasks[1], NULL));
        check_r(store_contract_delete(store, c->id, -1), -EBUSY);
        check_ok(store_contract_get(store, c->id, &got));
        check_task_list(store, &(TaskFilter) { .contract_id = c->id, .status = -1 }, "child,child,child");
        for (size_t i = 0; i < ELEMENTSOF(tasks); i++)
                check_int(event_count(store, EVENT_LOG_TASK, tasks[i]->id), 2);
        check_int(event_count(store, EVENT_LOG_CONTRACT, c->id), 1);

        tasks[1]->status = TASK_DONE;
        check_ok(store_task_update(store, tasks[1], NULL));
        check_r(store_contract_delete(store, c->id, c->version + 1), -ESTALE);
        check_ok(store_contract_delete(store, c->id, c->version));

        got = contract_free(got);
        check_r(store_contract_get(store, c->id, &got), -ENOENT);
        check_task_list(store, &(TaskFilter) { .contract_id = c->id, .status = -1 }, "");
        for (size_t i = 0; i < ELEMENTSOF(tasks); i++) {
                Task *t = NULL;
                check_r(store_task_get(store, tasks[i]->id, &t), -ENOENT);
                check_int(event_count(store, EVENT_LOG_TASK, tasks[i]->id), 0);
        }
        check_int(event_count(store, EVENT_LOG_CONTRACT, c->id), 0);
        q = xasprintf("SELECT COUNT(*) FROM task_events WHERE task_id IN ('%s', '%s', '%s')",
                      tasks[0]->id, tasks[1]->id, tasks[2]->id);
        check_int(raw_sql(q), 0);
        check_r(store_contract_delete(store, c->id, -1), -ENOENT);

        /* The other contract did not notice. */
        check_task_list(store, &(TaskFilter) { .contract_id = other->id, .status = -1 }, "keep");
        check_int(event_count(store, EVENT_LOG_TASK, keep->id), 1);
        check_int(event_count(store, EVENT_LOG_CONTRACT, other->id), 1);

        for (size_t i = 0; i < ELEMENTSOF(tasks); i++)
                task_free(tasks[i]);
}


static void test_tokens(void) {
        _cleanup_free_ char *owner = xasprintf("tokens-%s", run), *hash = xasprintf("hash-%s", run);
        _cleanup_free_ char *hash2 = xasprintf("hash2-%s", run), *who = NULL;
        char id[ID_STRING_MAX], id2[ID_STRING_MAX];

        check_ok(store_token_insert(store, owner, hash, "laptop 'key' ü", id));
        check(id_is_valid(id));
        check_ok(store_token_lookup(store, hash, &who));
        check_streq(who, owner);
        who = mfree(who);

        check_r(store_token_insert(store, "mallory", hash, NULL, id2), -EEXIST);
        check_ok(store_token_insert(store, owner, hash2, NULL, id2));
        check(!streq(id, id2));

        check_ok(store_token_revoke(store, id));
        check_r(store_token_lookup(store, hash, &who), -ENOENT);
        check(!who);
        check_ok(store_token_revoke(store, id));
        /* The other token still works, and a revoked hash cannot come back. */
        check_ok(store_token_lookup(store, hash2, &who));
        check_streq(who, owner);
        check_r(store_token_insert(store, owner, hash, NULL, id2), -EEXIST);

        check_r(store_token_revoke(store, "no-such-token"), -ENOENT);
        check_r(store_token_lookup(store, "no-such-hash", &who), -ENOENT);
        check_r(store_token_insert(store, "", hash, NULL, id2), -EINVAL);
        check_r(store_token_insert(store, owner, NULL, NULL, id2), -EINVAL);
}

/* A backend failure is -EIO with the database's own words. */
static void test_backend_failure(void) {
        char *who = NULL;

        raw_sql("ALTER TABLE api_tokens RENAME TO api_tokens_away");
        check_r(store_token_lookup(store, "anything", &who), -EIO);
        check(strstr(store_last_error(store), "api_tokens"));
        raw_sql("ALTER TABLE api_tokens_away RENAME TO api_tokens");
        check_r(store_token_lookup(store, "anything", &who), -ENOENT);
}

/* PostgreSQL: a connection the server dropped (restart, failover) costs one
 * failed call; the handle then reconnects by itself. */
static void test_reconnect(void) {
        _cleanup_(task_freep) Task *t = NULL, *got = NULL;
        _cleanup_free_ char *owner = xasprintf("reconnect-%s", run);
        int r;

        if (backend != STORE_BACKEND_POSTGRESQL)
                return;

        t = task_make(owner, "survivor");
        check_ok(store_task_insert(store, t));
        check(raw_sql("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                      "WHERE pid <> pg_backend_pid() AND datname = current_database() "
                      "AND backend_type = 'client backend'") >= 1);
        r = store_task_get(store, t->id, &got);
        check(IN_SET(r, 0, -EIO));
        got = task_free(got);
        check_ok(store_task_get(store, t->id, &got));
        check_streq(got->name, "survivor");
}

/* ---- concurrency: separate handles in separate processes ---- */

static void test_concurrent_update(void) {
        _cleanup_(task_freep) Task *t = NULL, *got = NULL;
        _cleanup_free_ char *owner = xasprintf("race-%s", run);

        t = task_make(owner, "contended");
        check_ok(store_task_insert(store, t));

        for (int round = 0; round < 5; round++) {
                pid_t pids[2];
                int codes[2], winners = 0;
                Barrier b;

                barrier_init(&b);
                for (int w = 0; w < 2; w++) {
                        pids[w] = fork();
                        check(pids[w] >= 0);
                        if (pids[w] == 0) {
                                Store *s = NULL;
                                Task *mine = NULL;
                                char name[32];
                                Event e = { .type = (char *) "rename", .payload = name };
                                int r;

                                if (store_open(backend, db_path, &s) < 0 || store_task_get(s, t->id, &mine) < 0)
                                        _exit(1);
                                barrier_child_wait(&b);
                                snprintf(name, sizeof(name), "winner-%d", w);
                                free(mine->name);
                                mine->name = strdup(name);
                                r = store_task_update(s, mine, &e);
                                if (r < 0 && r != -ESTALE)
                                        fprintf(stderr, "update: %s\n", store_last_error(s));
                                _exit(r == 0 ? 0 : r == -ESTALE ? 10 : 2);
                        }
                }
                barrier_release(&b, 2);
                wait_children(pids, 2, codes);

                for (int w = 0; w < 2; w++) {
                        check(IN_SET(codes[w], 0, 10));
                        winners += codes[w] == 0;
                }
                check_int(winners, 1);

                got = task_free(got);
                check_ok(store_task_get(store, t->id, &got));
                check_int(got->version, round + 2);
                check_streq(got->name, codes[0] == 0 ? "winner-0" : "winner-1");
                check_int(event_count(store, EVENT_LOG_TASK, t->id), round + 1);
        }
}

/* ---- main ---- */

static const StoreTest tests[] = {
        { "backend_strings", test_backend_strings },
        { "contracts", test_contracts },
        { "tasks", test_tasks },
        { "copy_files", test_copy_files },
        { "lists", test_lists },
        { "update", test_update },
        { "delete", test_delete },
        { "contract_cascade", test_contract_cascade },
        { "tokens", test_tokens },
        { "backend_failure", test_backend_failure },
        { "reconnect", test_reconnect },
        { "concurrent_update", test_concurrent_update },
};

int main(int argc, char *argv[]) {
        return store_test_main(argc, argv, "store", false, tests, ELEMENTSOF(tests));
}
