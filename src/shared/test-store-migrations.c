/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store suite for opening and migrating: open errors, the schema
 * version, databases an older or newer makima left, and concurrent openers
 * of a fresh database. Runs on both backends like test-store.c. */

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "conf.h"
#include "test-store-util.h"

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

static const StoreTest tests[] = {
        { "open_errors", test_open_errors },
        { "migrations", test_migrations },
        { "migration_2", test_migration_2 },
        { "migration_3", test_migration_3 },
        { "concurrent_open", test_concurrent_open },
};

int main(int argc, char *argv[]) {
        return store_test_main(argc, argv, "store-migrations", false, tests, ELEMENTSOF(tests));
}
