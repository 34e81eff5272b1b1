/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store suites' shared harness (see test-store-util.h). */

#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "conf.h"
#include "test-store-util.h"

StoreBackend backend;
char *db_path;
char tmp_dir[] = "/tmp/test-store.XXXXXX";
static bool tmp_dir_made;
char run[ID_STRING_MAX];
const char *current_test = "setup";
Store *store;

void fail(const char *file, int line, const char *format, ...) {
        va_list ap;

        fprintf(stderr, "FAIL %s:%d in %s [%s]: ", file, line, current_test, store_backend_to_string(backend));
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(EXIT_FAILURE);
}

char *xstrdup(const char *s) {
        char *t;

        if (!s)
                return NULL;
        t = strdup(s);
        if (!t)
                fail(__FILE__, __LINE__, "out of memory");
        return t;
}

char *xasprintf(const char *format, ...) {
        va_list ap;
        char *s;

        va_start(ap, format);
        if (vasprintf(&s, format, ap) < 0)
                fail(__FILE__, __LINE__, "out of memory");
        va_end(ap);
        return s;
}

Store *open_store(void) {
        Store *s = NULL;

        check_ok(store_open(backend, db_path, &s));
        return s;
}

int64_t raw_sql(const char *sql) {
        int64_t v = -1;

        if (backend == STORE_BACKEND_SQLITE) {
                sqlite3 *db = NULL;
                sqlite3_stmt *st = NULL;
                int rc;

                check(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
                sqlite3_busy_timeout(db, 5000);
                if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                        fail(__FILE__, __LINE__, "%s: %s", sql, sqlite3_errmsg(db));
                rc = sqlite3_step(st);
                if (rc == SQLITE_ROW)
                        v = sqlite3_column_int64(st, 0);
                else if (rc != SQLITE_DONE)
                        fail(__FILE__, __LINE__, "%s: %s", sql, sqlite3_errmsg(db));
                sqlite3_finalize(st);
                sqlite3_close(db);
        } else {
                PGconn *c = PQconnectdb(db_path);
                PGresult *res;

                check(PQstatus(c) == CONNECTION_OK);
                res = PQexec(c, sql);
                if (PQresultStatus(res) == PGRES_TUPLES_OK) {
                        if (PQntuples(res) > 0)
                                v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
                } else if (PQresultStatus(res) != PGRES_COMMAND_OK)
                        fail(__FILE__, __LINE__, "%s: %s", sql, PQresultErrorMessage(res));
                PQclear(res);
                PQfinish(c);
        }
        return v;
}

void raw_script(const char *path, const char *script) {
        if (backend == STORE_BACKEND_SQLITE) {
                sqlite3 *db = NULL;
                char *error = NULL;

                check(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) == SQLITE_OK);
                if (sqlite3_exec(db, script, NULL, NULL, &error) != SQLITE_OK)
                        fail(__FILE__, __LINE__, "%s: %s", script, strna(error));
                sqlite3_close(db);
        } else {
                PGconn *c = PQconnectdb(path);
                PGresult *res;

                check(PQstatus(c) == CONNECTION_OK);
                /* A simple query: several statements, one transaction. */
                res = PQexec(c, script);
                if (!IN_SET(PQresultStatus(res), PGRES_COMMAND_OK, PGRES_TUPLES_OK))
                        fail(__FILE__, __LINE__, "%s: %s", script, PQresultErrorMessage(res));
                PQclear(res);
                PQfinish(c);
        }
}

Task *task_make(const char *owner, const char *name) {
        Task *t = task_new();

        check(t);
        t->owner = xstrdup(owner);
        t->name = xstrdup(name);
        return t;
}

Contract *contract_make(const char *owner, const char *name) {
        Contract *c = contract_new();

        check(c);
        c->owner = xstrdup(owner);
        c->name = xstrdup(name);
        return c;
}

void tasks_clear(void) {
        raw_sql("DELETE FROM tasks");
}

Task *insert_task(const char *owner, const char *name, TaskState status, usec_t created_at) {
        Task *t = task_make(owner, name);

        t->status = status;
        t->created_at = created_at;
        check_ok(store_task_insert(store, t));
        return t;
}

/* Equal vectors; NULL (none) is not the empty vector. */
void check_strv_equal(char *const *a, char *const *b) {
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

void check_task_equal(const Task *a, const Task *b) {
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

void check_contract_equal(const Contract *a, const Contract *b) {
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


size_t event_count(Store *s, EventLog log, const char *id) {
        Event *e = NULL;
        size_t n = 0;

        check_ok(store_event_list(s, log, id, 0, 0, &e, &n));
        event_array_free(e, n);
        return n;
}

void append_one(Store *s, EventLog log, const char *id, const char *type, const char *payload) {
        Event e = { .type = (char *) type, .payload = (char *) payload };

        check_ok(store_event_append(s, log, id, &e, 1));
        free(e.object_id);
}


void barrier_init(Barrier *b) {
        store = store_free(store);
        check(pipe2(b->ready, O_CLOEXEC) >= 0);
        check(pipe2(b->go, O_CLOEXEC) >= 0);
        fflush(NULL);
}

void barrier_child_wait(Barrier *b) {
        char c = 'r';

        close(b->ready[0]);
        close(b->go[1]);
        (void) write(b->ready[1], &c, 1);
        (void) read(b->go[0], &c, 1);
}

void barrier_release(Barrier *b, size_t n_children) {
        char c;

        close(b->ready[1]);
        close(b->go[0]);
        /* A child that died early closes its end: read() then returns 0. */
        for (size_t i = 0; i < n_children; i++)
                if (read(b->ready[0], &c, 1) != 1)
                        break;
        close(b->go[1]);
        close(b->ready[0]);
        store = open_store();
}

void wait_children(pid_t *pids, size_t n, int *ret_codes) {
        for (size_t i = 0; i < n; i++) {
                int status;

                check(waitpid(pids[i], &status, 0) == pids[i]);
                check(WIFEXITED(status));
                ret_codes[i] = WEXITSTATUS(status);
        }
}

/* The conninfo (or URL) `base` with another database name, as a conninfo
 * string: every keyword it sets, quoted, then dbname, which wins. */
static char *conninfo_with_dbname(const char *base, const char *dbname) {
        PQconninfoOption *opts;
        char *err = NULL, *s = xstrdup("");

        opts = PQconninfoParse(base, &err);
        if (!opts)
                fail(__FILE__, __LINE__, "%s: %s", base, strna(err));
        for (PQconninfoOption *o = opts; o->keyword; o++) {
                _cleanup_free_ char *quoted = NULL;
                char *t;

                if (!o->val || streq(o->keyword, "dbname"))
                        continue;
                quoted = calloc(strlen(o->val) * 2 + 1, 1);
                check(quoted);
                for (char *p = o->val, *q = quoted; *p; p++) {
                        if (IN_SET(*p, '\'', '\\'))
                                *q++ = '\\';
                        *q++ = *p;
                }
                t = xasprintf("%s%s='%s' ", s, o->keyword, quoted);
                free(s);
                s = t;
        }
        PQconninfoFree(opts);

        char *t = xasprintf("%sdbname='%s'", s, dbname);
        free(s);
        return t;
}

static char *pg_base_url, *pg_own_database;

static void drop_own_database(void) {
        _cleanup_free_ char *drop = NULL;

        if (!pg_own_database)
                return;
        free(db_path);
        db_path = TAKE_PTR(pg_base_url);
        drop = xasprintf("DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", pg_own_database);
        (void) raw_sql(drop);
        pg_own_database = mfree(pg_own_database);
        db_path = mfree(db_path);
}

/* A database of this run's own, so that a suite may look at (and empty)
 * whole tables even on a server others use. */
static void pg_make_own_database(const char *suite) {
        _cleanup_free_ char *create = NULL;

        pg_own_database = xasprintf("%s-%s", suite, run);
        create = xasprintf("CREATE DATABASE \"%s\"", pg_own_database);
        (void) raw_sql(create);
        pg_base_url = db_path;
        db_path = conninfo_with_dbname(pg_base_url, pg_own_database);
        check(atexit(drop_own_database) == 0);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) remove(path);
        return 0;
}

static void cleanup_tmp_dir(void) {
        if (tmp_dir_made)
                (void) nftw(tmp_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int store_test_main(int argc, char *argv[], const char *suite, bool own_database, const StoreTest *tests,
                    size_t n_tests) {
        const char *url = getenv("MAKIMA_TEST_PG_URL");

        check_ok(id_new(run));
        if (!isempty(url)) {
                backend = STORE_BACKEND_POSTGRESQL;
                db_path = xstrdup(url);
                if (own_database)
                        pg_make_own_database(suite);
        } else {
                backend = STORE_BACKEND_SQLITE;
                check(mkdtemp(tmp_dir));
                tmp_dir_made = true;
                check(atexit(cleanup_tmp_dir) == 0);
                db_path = xasprintf("%s/makima.db", tmp_dir);
        }

        printf("%s suite on %s\n", suite, store_backend_to_string(backend));
        store = open_store();
        for (size_t i = 0; i < n_tests; i++) {
                if (argc > 1 && !streq(argv[1], tests[i].name))
                        continue;
                current_test = tests[i].name;
                printf("%s...\n", tests[i].name);
                fflush(stdout);
                tests[i].run();
        }
        store = store_free(store);
        if (!pg_own_database)
                db_path = mfree(db_path);
        printf("all %s tests passed\n", suite);
        return EXIT_SUCCESS;
}
