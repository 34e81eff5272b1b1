/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store suite: records, lists, versions, events, tokens, migrations and
 * concurrent writers. The same checks run against SQLite (a fresh file in a
 * temporary directory) or, when MAKIMA_TEST_PG_URL is set, against the real
 * PostgreSQL server tests/with-postgresql.sh started for us. */

#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "conf.h"
#include "test-store-util.h"

/* ---- records ---- */

static const char tricky[] =
        "Ω ünïcødé 😀 'single' \"double\" back\\slash; DROP TABLE tasks; -- \t tab\nnewline %s %n $1 ?1";

static Contract *contract_make(const char *owner, const char *name) {
        Contract *c = contract_new();

        check(c);
        c->owner = xstrdup(owner);
        c->name = xstrdup(name);
        return c;
}

/* Equal vectors; NULL (none) is not the empty vector. */
static void check_strv_equal(char *const *a, char *const *b) {
        if (!a || !b) {
                if (a || b)
                        fail(__FILE__, __LINE__, "string vectors differ: %s vs %s", a ? "a vector" : "NULL",
                             b ? "a vector" : "NULL");
                return;
        }
        check_int(strv_length(a), strv_length(b));
        for (size_t i = 0; a[i]; i++)
                check_streq(a[i], b[i]);
}

static void check_task_equal(const Task *a, const Task *b) {
        check_streq(a->id, b->id);
        check_streq(a->owner, b->owner);
        check_streq(a->name, b->name);
        check_streq(a->plan, b->plan);
        check_streq(a->repo, b->repo);
        check_streq(a->base_branch, b->base_branch);
        check_streq(a->target_branch, b->target_branch);
        check_strv_equal(a->copy_files, b->copy_files);
        check_streq(a->parent_task_id, b->parent_task_id);
        check_streq(a->contract_id, b->contract_id);
        check_int(a->is_supervisor, b->is_supervisor);
        check_int(a->autonomous_loop, b->autonomous_loop);
        check_int(a->max_iterations, b->max_iterations);
        check_int(a->iteration_count, b->iteration_count);
        check_int(a->status, b->status);
        check_streq(a->error, b->error);
        check_streq(a->worktree, b->worktree);
        check_streq(a->branch, b->branch);
        check_streq(a->session_id, b->session_id);
        check(a->cost_usd == b->cost_usd);
        check(a->max_cost_usd == b->max_cost_usd);
        check_int(a->created_at, b->created_at);
        check_int(a->updated_at, b->updated_at);
        check_int(a->started_at, b->started_at);
        check_int(a->completed_at, b->completed_at);
        check_int(a->version, b->version);
}

static void check_contract_equal(const Contract *a, const Contract *b) {
        check_streq(a->id, b->id);
        check_streq(a->owner, b->owner);
        check_streq(a->name, b->name);
        check_streq(a->description, b->description);
        check_int(a->type, b->type);
        check_int(a->phase, b->phase);
        check_int(a->status, b->status);
        check_int(a->autonomous_loop, b->autonomous_loop);
        check_streq(a->supervisor_task_id, b->supervisor_task_id);
        check(a->max_cost_usd == b->max_cost_usd);
        check_int(a->created_at, b->created_at);
        check_int(a->updated_at, b->updated_at);
        check_int(a->version, b->version);
}

/* The names of a list, in order, as "a,b,c". */
static char *task_names(Task **a, size_t n) {
        char *s = xstrdup("");

        for (size_t i = 0; i < n; i++) {
                char *t = xasprintf("%s%s%s", s, i > 0 ? "," : "", a[i]->name);
                free(s);
                s = t;
        }
        return s;
}

static char *contract_names(Contract **a, size_t n) {
        char *s = xstrdup("");

        for (size_t i = 0; i < n; i++) {
                char *t = xasprintf("%s%s%s", s, i > 0 ? "," : "", a[i]->name);
                free(s);
                s = t;
        }
        return s;
}

static void check_task_list(Store *s, const TaskFilter *f, const char *expected) {
        _cleanup_free_ char *names = NULL;
        Task **a = NULL;
        size_t n = 0;

        check_ok(store_task_list(s, f, &a, &n));
        names = task_names(a, n);
        check_streq(names, expected);
        task_array_free(a, n);
}

static void check_contract_list(Store *s, const ContractFilter *f, const char *expected) {
        _cleanup_free_ char *names = NULL;
        Contract **a = NULL;
        size_t n = 0;

        check_ok(store_contract_list(s, f, &a, &n));
        names = contract_names(a, n);
        check_streq(names, expected);
        contract_array_free(a, n);
}

static size_t event_count(Store *s, EventLog log, const char *id) {
        Event *e = NULL;
        size_t n = 0;

        check_ok(store_event_list(s, log, id, 0, 0, &e, &n));
        event_array_free(e, n);
        return n;
}

static void append_one(Store *s, EventLog log, const char *id, const char *type, const char *payload) {
        Event e = { .type = (char *) type, .payload = (char *) payload };

        check_ok(store_event_append(s, log, id, &e, 1));
        free(e.object_id);
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

static void test_open_errors(void) {
        Store *s = NULL;

        check_r(store_open(backend, NULL, &s), -EINVAL);
        check_r(store_open(backend, "", &s), -EINVAL);
        check_r(store_open(_STORE_BACKEND_MAX, db_path, &s), -EINVAL);

        if (backend == STORE_BACKEND_SQLITE) {
                _cleanup_free_ char *missing = xasprintf("%s/no/such/dir/db", tmp_dir);
                _cleanup_free_ char *garbage = xasprintf("%s/garbage", tmp_dir);
                _cleanup_close_ int fd = -EBADF;

                check_r(store_open(backend, missing, &s), -ENOENT);
                check_r(store_open(backend, tmp_dir, &s), -EISDIR);

                fd = open(garbage, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
                check(fd >= 0);
                for (int i = 0; i < 64; i++)
                        check(write(fd, "this is not a database file. ", 29) == 29);
                check_r(store_open(backend, garbage, &s), -EIO);

                check_ok(store_open(backend, ":memory:", &s));
                check_int(store_schema_version(s), store_latest_schema_version());
                s = store_free(s);
        } else
                check_r(store_open(backend, "host=/nonexistent-dir dbname=nothing connect_timeout=2", &s), -EIO);
        check(!s);
}

static void test_migrations(void) {
        _cleanup_free_ char *newer = NULL;
        Store *s = NULL;
        int latest = store_latest_schema_version();

        check_int(store_schema_version(store), latest);
        check_int(raw_sql("SELECT COUNT(*) FROM schema_version"), latest);
        check_int(raw_sql("SELECT MAX(version) FROM schema_version"), latest);

        /* Reopening applies nothing twice. */
        for (int i = 0; i < 2; i++) {
                s = open_store();
                check_int(store_schema_version(s), latest);
                s = store_free(s);
        }
        check_int(raw_sql("SELECT COUNT(*) FROM schema_version"), latest);

        /* A database a newer makima migrated further is refused, not touched. */
        newer = xasprintf("INSERT INTO schema_version (version, applied_at) VALUES (%d, 0)", latest + 1);
        raw_sql(newer);
        check_r(store_open(backend, db_path, &s), -EPROTONOSUPPORT);
        check(!s);
        free(newer);
        newer = xasprintf("DELETE FROM schema_version WHERE version = %d", latest + 1);
        raw_sql(newer);
        s = open_store();
        s = store_free(s);

        if (backend == STORE_BACKEND_SQLITE) {
                _cleanup_free_ char *wal = xasprintf("%s-wal", db_path);
                struct stat st;

                check(stat(db_path, &st) >= 0);
                check_int(st.st_mode & 07777, 0600);
                check(stat(wal, &st) >= 0);
                check_int(st.st_mode & 07777, 0600);
        }
}

/* A database as an older makima left it: migrations 1 to `version` applied
 * and recorded behind the store's back. Its path (a SQLite file or a
 * PostgreSQL conninfo), or NULL when the server was named by a URL, which
 * we cannot point at another database. */
static char *old_database_make(int version) {
        _cleanup_free_ char *path = NULL, *script = NULL;
        char *t;

        check(version >= 1 && (size_t) version < store_n_migrations);
        if (backend == STORE_BACKEND_SQLITE)
                path = xasprintf("%s/v%d.db", tmp_dir, version);
        else {
                if (startswith(db_path, "postgres"))
                        return NULL;
                _cleanup_free_ char *create = xasprintf("CREATE DATABASE \"v%d-%s\"", version, run);
                raw_sql(create);
                path = xasprintf("%s dbname=v%d-%s", db_path, version, run);
        }

        script = xasprintf("BEGIN; %s;", STORE_SCHEMA_VERSION_TABLE);
        for (int i = 0; i < version; i++) {
                check_int(store_migrations[i].version, i + 1);
                t = xasprintf("%s %s; INSERT INTO schema_version (version, applied_at) VALUES (%d, 1);", script,
                              store_migrations[i].sql[backend], i + 1);
                free(script);
                script = t;
        }
        t = xasprintf("%s COMMIT;", script);
        free(script);
        script = t;
        raw_script(path, script);
        return TAKE_PTR(path);
}

/* Each migration was recorded once; then the database goes. */
static void old_database_done(char *path, int version) {
        _cleanup_free_ char *saved = db_path;
        int latest = store_latest_schema_version();

        db_path = path;
        check_int(raw_sql("SELECT COUNT(*) FROM schema_version"), latest);
        check_int(raw_sql("SELECT MAX(version) FROM schema_version"), latest);
        db_path = TAKE_PTR(saved);
        if (backend == STORE_BACKEND_POSTGRESQL) {
                _cleanup_free_ char *drop = xasprintf("DROP DATABASE \"v%d-%s\" WITH (FORCE)", version, run);
                raw_sql(drop);
        }
        free(path);
}

/* A database an older makima made and used, at schema version 1: opening
 * it applies the later migrations once, in place, and every row it had is
 * read with no cost limit. */
static void test_migration_2(void) {
        _cleanup_(task_freep) Task *t = NULL;
        _cleanup_(contract_freep) Contract *c = NULL;
        _cleanup_free_ char *rows = NULL;
        Store *s = NULL;
        char *path;

        check(store_n_migrations >= 2);
        check_int(store_migrations[1].version, 2);
        path = old_database_make(1);
        if (!path)
                return;

        /* What makima 1 left: a contract and a task of it. */
        rows = xasprintf(
                "BEGIN;"
                "INSERT INTO contracts (id, owner, name, type, phase, status, created_at, updated_at) "
                "VALUES ('c-%1$s', 'old', 'old contract', 'spec', 'research', 'active', 1, 1);"
                "INSERT INTO tasks (id, owner, name, contract_id, status, iteration_count, max_iterations, "
                "session_id, cost_usd, created_at, updated_at) "
                "VALUES ('t-%1$s', 'old', 'old task', 'c-%1$s', 'iteration_limit_reached', 10, 10, 'sess', 0.5, 1, 1);"
                "COMMIT;",
                run);
        raw_script(path, rows);

        /* Twice: the second open finds nothing to do. */
        for (int i = 0; i < 2; i++) {
                check_ok(store_open(backend, path, &s));
                check_int(store_schema_version(s), store_latest_schema_version());
                if (i == 0) {
                        _cleanup_free_ char *id = xasprintf("t-%s", run), *cid = xasprintf("c-%s", run);

                        check_ok(store_task_get(s, id, &t));
                        check_streq(t->name, "old task");
                        check_streq(t->session_id, "sess");
                        check_int(t->iteration_count, 10);
                        check(t->cost_usd == 0.5);
                        check(t->max_cost_usd == 0.0);
                        check_ok(store_contract_get(s, cid, &c));
                        check_streq(c->name, "old contract");
                        check(c->max_cost_usd == 0.0);

                        /* The new column is written like any other. */
                        t->max_cost_usd = 2.25;
                        check_ok(store_task_update(s, t, NULL));
                        c->max_cost_usd = 7;
                        check_ok(store_contract_update(s, c, NULL));
                        t = task_free(t);
                        c = contract_free(c);
                        check_ok(store_task_get(s, id, &t));
                        check(t->max_cost_usd == 2.25);
                        check_ok(store_contract_get(s, cid, &c));
                        check(c->max_cost_usd == 7.0);
                }
                s = store_free(s);
        }
        old_database_done(path, 1);
}

/* At schema version 2: migration 3 gives the tasks that exist no files to
 * copy (NULL, not an empty list), and the column then holds them. */
static void test_migration_3(void) {
        _cleanup_(task_freep) Task *t = NULL, *u = NULL;
        _cleanup_free_ char *rows = NULL, *id = xasprintf("t-%s", run);
        Store *s = NULL;
        char *path;

        check(store_n_migrations >= 3);
        check_int(store_migrations[2].version, 3);
        path = old_database_make(2);
        if (!path)
                return;
        rows = xasprintf("INSERT INTO tasks (id, owner, name, repo, status, max_cost_usd, created_at, updated_at) "
                         "VALUES ('%s', 'old', 'old task', '/srv/repo', 'pending', 1.5, 1, 1);",
                         id);
        raw_script(path, rows);

        for (int i = 0; i < 2; i++) {
                check_ok(store_open(backend, path, &s));
                check_int(store_schema_version(s), store_latest_schema_version());
                if (i == 0) {
                        check_ok(store_task_get(s, id, &t));
                        check_streq(t->repo, "/srv/repo");
                        check(t->max_cost_usd == 1.5);
                        check(!t->copy_files);

                        check(strv_extend(&t->copy_files, ".env") >= 0);
                        check(strv_extend(&t->copy_files, "config/ünï.yml") >= 0);
                        check_ok(store_task_update(s, t, NULL));
                        check_ok(store_task_get(s, id, &u));
                        check_task_equal(t, u);
                } else {
                        /* Still there after the second open. */
                        t = task_free(t);
                        check_ok(store_task_get(s, id, &t));
                        check_task_equal(t, u);
                }
                s = store_free(s);
        }
        old_database_done(path, 2);
}

/* Two openers of a database nobody has migrated yet: one migrates, the
 * other waits and finds the work done. */
static void test_concurrent_open(void) {
        _cleanup_free_ char *path = NULL;
        pid_t pids[2];
        Barrier b;

        if (backend == STORE_BACKEND_SQLITE)
                path = xasprintf("%s/fresh.db", tmp_dir);
        else {
                if (startswith(db_path, "postgres"))
                        return; /* a URL: we cannot point it at another database */
                _cleanup_free_ char *create = xasprintf("CREATE DATABASE \"fresh-%s\"", run);
                raw_sql(create);
                /* Of repeated conninfo keywords, the last one wins. */
                path = xasprintf("%s dbname=fresh-%s", db_path, run);
        }

        barrier_init(&b);
        for (size_t i = 0; i < ELEMENTSOF(pids); i++) {
                pids[i] = fork();
                check(pids[i] >= 0);
                if (pids[i] == 0) {
                        Store *s = NULL;

                        barrier_child_wait(&b);
                        if (store_open(backend, path, &s) < 0)
                                _exit(1);
                        _exit(store_schema_version(s) == store_latest_schema_version() ? 0 : 2);
                }
        }
        barrier_release(&b, ELEMENTSOF(pids));
        for (size_t i = 0; i < ELEMENTSOF(pids); i++) {
                int status;
                check(waitpid(pids[i], &status, 0) == pids[i]);
                check(WIFEXITED(status));
                check_int(WEXITSTATUS(status), 0);
        }

        Store *s = NULL;
        check_ok(store_open(backend, path, &s));
        check_int(store_schema_version(s), store_latest_schema_version());
        store_free(s);

        if (backend == STORE_BACKEND_POSTGRESQL) {
                _cleanup_free_ char *drop = xasprintf("DROP DATABASE \"fresh-%s\" WITH (FORCE)", run);
                raw_sql(drop);
        }
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

static void test_events(void) {
        _cleanup_(task_freep) Task *t = NULL;
        _cleanup_(contract_freep) Contract *c = NULL;
        _cleanup_free_ char *owner = xasprintf("events-%s", run);
        Event batch[3] = {
                { .type = (char *) "assistant", .payload = (char *) "{\"text\":\"héllo \\\"wörld\\\" 😀\"}" },
                { .type = (char *) "tool_use", .payload = NULL },
                { .type = (char *) "result", .payload = (char *) "{}", .created_at = 424242 },
        };
        Event more[2] = { { .type = (char *) "a" }, { .type = (char *) "b" } };
        Event *got = NULL;
        size_t n = 0;

        t = task_make(owner, "events");
        check_ok(store_task_insert(store, t));
        c = contract_make(owner, "events");
        check_ok(store_contract_insert(store, c));

        check_ok(store_event_append(store, EVENT_LOG_TASK, t->id, batch, ELEMENTSOF(batch)));
        for (size_t i = 0; i < ELEMENTSOF(batch); i++) {
                check_int(batch[i].seq, i + 1);
                check_streq(batch[i].object_id, t->id);
        }
        check(batch[0].created_at > 0);
        check_int(batch[2].created_at, 424242);
        check_ok(store_event_append(store, EVENT_LOG_TASK, t->id, more, ELEMENTSOF(more)));
        check_int(more[0].seq, 4);
        check_int(more[1].seq, 5);
        check_ok(store_event_append(store, EVENT_LOG_TASK, t->id, NULL, 0));

        check_ok(store_event_list(store, EVENT_LOG_TASK, t->id, 0, 0, &got, &n));
        check_int(n, 5);
        for (size_t i = 0; i < n; i++) {
                check_int(got[i].seq, i + 1);
                check_streq(got[i].object_id, t->id);
        }
        for (size_t i = 0; i < ELEMENTSOF(batch); i++) {
                check_streq(got[i].type, batch[i].type);
                check_streq(got[i].payload, batch[i].payload);
                check_int(got[i].created_at, batch[i].created_at);
        }
        check_streq(got[3].type, "a");
        check_streq(got[4].type, "b");
        event_array_free(got, n);

        check_ok(store_event_list(store, EVENT_LOG_TASK, t->id, 2, 0, &got, &n));
        check_int(n, 3);
        check_int(got[0].seq, 3);
        check_int(got[2].seq, 5);
        event_array_free(got, n);
        check_ok(store_event_list(store, EVENT_LOG_TASK, t->id, 0, 2, &got, &n));
        check_int(n, 2);
        check_int(got[1].seq, 2);
        event_array_free(got, n);
        check_ok(store_event_list(store, EVENT_LOG_TASK, t->id, 3, 1, &got, &n));
        check_int(n, 1);
        check_int(got[0].seq, 4);
        event_array_free(got, n);
        check_ok(store_event_list(store, EVENT_LOG_TASK, t->id, 5, 0, &got, &n));
        check_int(n, 0);
        event_array_free(got, n);

        /* The contract's log is its own sequence. */
        append_one(store, EVENT_LOG_CONTRACT, c->id, "phase", "{\"phase\":\"plan\"}");
        check_ok(store_event_list(store, EVENT_LOG_CONTRACT, c->id, 0, 0, &got, &n));
        check_int(n, 1);
        check_int(got[0].seq, 1);
        check_streq(got[0].payload, "{\"phase\":\"plan\"}");
        event_array_free(got, n);

        /* Nothing is appended where nothing exists, or with a bad event. */
        Event e = { .type = (char *) "x" };
        check_r(store_event_append(store, EVENT_LOG_TASK, "no-such-task", &e, 1), -ENOENT);
        check_r(store_event_append(store, EVENT_LOG_CONTRACT, t->id, &e, 1), -ENOENT);
        check_r(store_event_append(store, EVENT_LOG_TASK, c->id, &e, 1), -ENOENT);
        check_int(e.seq, 0);
        check(!e.object_id);
        e.type = NULL;
        check_r(store_event_append(store, EVENT_LOG_TASK, t->id, &e, 1), -EINVAL);
        e = (Event) { .type = (char *) "x", .object_id = c->id };
        check_r(store_event_append(store, EVENT_LOG_TASK, t->id, &e, 1), -EINVAL);
        e = (Event) { .type = (char *) "x", .payload = (char *) "\xff" };
        check_r(store_event_append(store, EVENT_LOG_TASK, t->id, &e, 1), -EINVAL);
        check_r(store_event_append(store, _EVENT_LOG_MAX, t->id, &e, 1), -EINVAL);
        check_r(store_event_list(store, EVENT_LOG_TASK, "", 0, 0, &got, &n), -EINVAL);
        check_int(event_count(store, EVENT_LOG_TASK, t->id), 5);

        for (size_t i = 0; i < ELEMENTSOF(batch); i++)
                free(batch[i].object_id);
        for (size_t i = 0; i < ELEMENTSOF(more); i++)
                free(more[i].object_id);
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

#define APPENDERS 3
#define APPENDS 40

static void test_concurrent_append(void) {
        _cleanup_(task_freep) Task *t = NULL;
        _cleanup_free_ char *owner = xasprintf("race-%s", run);
        pid_t pids[APPENDERS];
        int codes[APPENDERS];
        Barrier b;
        int64_t last[APPENDERS];
        Event *got = NULL;
        size_t n = 0;

        t = task_make(owner, "appended");
        check_ok(store_task_insert(store, t));

        barrier_init(&b);
        for (int w = 0; w < APPENDERS; w++) {
                pids[w] = fork();
                check(pids[w] >= 0);
                if (pids[w] == 0) {
                        Store *s = NULL;

                        if (store_open(backend, db_path, &s) < 0)
                                _exit(1);
                        barrier_child_wait(&b);
                        /* Alternately one event alone and two in one call. */
                        for (int i = 0; i < APPENDS;) {
                                char payload[2][64];
                                Event e[2] = {
                                        { .type = (char *) "race", .payload = payload[0] },
                                        { .type = (char *) "race", .payload = payload[1] },
                                };
                                size_t k = (i % 3 == 1 && i + 1 < APPENDS) ? 2 : 1;

                                for (size_t j = 0; j < k; j++)
                                        snprintf(payload[j], sizeof(payload[j]), "{\"w\":%d,\"i\":%d}", w, i++);
                                if (store_event_append(s, EVENT_LOG_TASK, t->id, e, k) < 0) {
                                        fprintf(stderr, "append: %s\n", store_last_error(s));
                                        _exit(2);
                                }
                                if (k == 2 && e[1].seq != e[0].seq + 1)
                                        _exit(3);
                                for (size_t j = 0; j < k; j++)
                                        free(e[j].object_id);
                        }
                        store_free(s);
                        _exit(0);
                }
        }
        barrier_release(&b, APPENDERS);
        wait_children(pids, APPENDERS, codes);
        for (int w = 0; w < APPENDERS; w++)
                check_int(codes[w], 0);

        /* Gapless from 1, and each writer's events in its own order. */
        check_ok(store_event_list(store, EVENT_LOG_TASK, t->id, 0, 0, &got, &n));
        check_int(n, APPENDERS * APPENDS);
        for (int w = 0; w < APPENDERS; w++)
                last[w] = -1;
        for (size_t i = 0; i < n; i++) {
                int w, k;

                check_int(got[i].seq, i + 1);
                check(sscanf(got[i].payload, "{\"w\":%d,\"i\":%d}", &w, &k) == 2);
                check(w >= 0 && w < APPENDERS);
                check_int(k, last[w] + 1);
                last[w] = k;
        }
        event_array_free(got, n);
}

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
        { "open_errors", test_open_errors },
        { "migrations", test_migrations },
        { "migration_2", test_migration_2 },
        { "migration_3", test_migration_3 },
        { "concurrent_open", test_concurrent_open },
        { "contracts", test_contracts },
        { "tasks", test_tasks },
        { "copy_files", test_copy_files },
        { "lists", test_lists },
        { "update", test_update },
        { "delete", test_delete },
        { "contract_cascade", test_contract_cascade },
        { "events", test_events },
        { "tokens", test_tokens },
        { "backend_failure", test_backend_failure },
        { "reconnect", test_reconnect },
        { "concurrent_append", test_concurrent_append },
        { "concurrent_update", test_concurrent_update },
};

int main(int argc, char *argv[]) {
        return store_test_main(argc, argv, "store", false, tests, ELEMENTSOF(tests));
}
