/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the store suites share: the backend under test (SQLite in a
 * temporary directory, or the PostgreSQL server tests/with-postgresql.sh
 * started and named in MAKIMA_TEST_PG_URL), checks that say what failed and
 * the store's words for it, raw SQL behind the store's back, and forked
 * children released together. */
#pragma once

#include <inttypes.h>
#include <sys/types.h>

#include "store-internal.h"

extern StoreBackend backend;
extern char *db_path;                   /* SQLite file or PostgreSQL conninfo */
extern char tmp_dir[];                  /* SQLite only */
extern char run[ID_STRING_MAX];         /* makes this run's rows its own on a reused database */
extern const char *current_test;
extern Store *store;                    /* the suite's handle, for store_last_error() in failure messages */

_printf_(3, 4) _noreturn_ void fail(const char *file, int line, const char *format, ...);

#define check(expr)                                                             \
        do {                                                                    \
                if (!(expr))                                                    \
                        fail(__FILE__, __LINE__, "%s", #expr);                  \
        } while (0)

/* A call that must return `expected` (a negative errno, or 0). */
#define check_r(call, expected)                                                 \
        do {                                                                    \
                int _r = (call), _e = (expected);                               \
                if (_r != _e)                                                   \
                        fail(__FILE__, __LINE__, "%s = %d (%s), expected %d (%s); store says: %s", \
                             #call, _r, strerror(_r < 0 ? -_r : 0), _e, strerror(-_e), \
                             store_last_error(store));                          \
        } while (0)
#define check_ok(call) check_r(call, 0)

#define check_streq(a, b)                                                       \
        do {                                                                    \
                const char *_a = (a), *_b = (b);                                \
                if (!streq_ptr(_a, _b))                                         \
                        fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"",  \
                             #a, #b, strna(_a), strna(_b));                     \
        } while (0)

#define check_int(a, b)                                                         \
        do {                                                                    \
                int64_t _a = (int64_t) (a), _b = (int64_t) (b);                 \
                if (_a != _b)                                                   \
                        fail(__FILE__, __LINE__, "%s == %s: %" PRIi64 " != %" PRIi64, #a, #b, _a, _b); \
        } while (0)

char *xstrdup(const char *s);
_printf_(1, 2) char *xasprintf(const char *format, ...);

Store *open_store(void);
/* Runs one statement on a connection of our own; returns the first column
 * of the first row as an integer, or -1 without rows. */
int64_t raw_sql(const char *sql);

/* Runs a script of several statements on the database at `path` (a SQLite
 * file, created if missing, or a PostgreSQL conninfo), behind the store's
 * back: how a test makes a database as an older makima left it. */
void raw_script(const char *path, const char *script);

Task *task_make(const char *owner, const char *name);
Contract *contract_make(const char *owner, const char *name);
/* Starts a test on an empty tasks table (events and control requests go with it). */
void tasks_clear(void);
/* Inserts a task of task_make() with `status` and `created_at` (0: now). */
Task *insert_task(const char *owner, const char *name, TaskState status, usec_t created_at);
/* Field by field; string vectors: NULL (none) is not the empty vector. */
void check_strv_equal(char *const *a, char *const *b);
void check_task_equal(const Task *a, const Task *b);
void check_contract_equal(const Contract *a, const Contract *b);
/* The length of a log, and one event appended to it. */
size_t event_count(Store *s, EventLog log, const char *id);
void append_one(Store *s, EventLog log, const char *id, const char *type, const char *payload);

/* Holds forked children until all of them are ready, then lets them go at
 * once. barrier_init() closes `store` (SQLite forbids a child to touch a
 * connection it inherited, and its locking bookkeeping is per process);
 * barrier_release() opens it again. */
typedef struct Barrier {
        int ready[2];
        int go[2];
} Barrier;

void barrier_init(Barrier *b);
void barrier_child_wait(Barrier *b);
void barrier_release(Barrier *b, size_t n_children);
/* Reaps the children; each must have exited (not been killed). */
void wait_children(pid_t *pids, size_t n, int *ret_codes);

typedef struct StoreTest {
        const char *name;
        void (*run)(void);
} StoreTest;

/* Runs every test, or only the one named by argv[1]. With own_database, a
 * PostgreSQL suite runs in a database created for this run and dropped at
 * exit (on SQLite every run has its own file anyway). */
int store_test_main(int argc, char *argv[], const char *suite, bool own_database, const StoreTest *tests,
                    size_t n_tests);
