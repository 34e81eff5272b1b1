/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Whether the store takes writes (store_check_writable(), see store.h): a
 * read tells a store that answers from one that does not, but only a write
 * tells a store whose disk is full. The write is one row of its own table,
 * so that the check needs no room the store's real writes would not also
 * need, and leaves the database the size it was. */

#include "store-internal.h"

/* How long PostgreSQL's check waits for the table's lock (a pg_dump holds
 * a lock that TRUNCATE waits for, for as long as the dump runs). */
#define PG_PROBE_LOCK_TIMEOUT "SET LOCAL lock_timeout = '200ms'"

typedef struct ProbeSql {
        const char *update;             /* S1: now; changes the row in place, or none if there is none */
        const char *insert;             /* S1: now */
} ProbeSql;

static const ProbeSql probe_sql[_STORE_BACKEND_MAX] = {
        [STORE_BACKEND_SQLITE] = {
                .update = "UPDATE store_probe SET written_at = ?1",
                .insert = "INSERT INTO store_probe (written_at) VALUES (?1)",
        },
        [STORE_BACKEND_POSTGRESQL] = {
                .update = "UPDATE store_probe SET written_at = $1",
                .insert = "INSERT INTO store_probe (written_at) VALUES ($1)",
        },
};

/* On SQLite a page of the WAL, like every write: with no room left to grow
 * the WAL (or the database, when a checkpoint must) this fails. */
static int probe_in_place(Store *s, usec_t now) {
        _cleanup_(store_rollbackp) Store *txn = NULL;
        const ProbeSql *p = &probe_sql[s->backend];
        int r;

        r = store_begin(s, &txn);
        if (r < 0)
                return r;
        r = s->vtable->query(s, p->update, PARAMS(VALUE_USEC(now)), NULL, NULL);
        if (r < 0)
                return r;
        /* Nobody deletes the row, but if it is gone the check makes it again. */
        if (r == 0) {
                r = s->vtable->query(s, p->insert, PARAMS(VALUE_USEC(now)), NULL, NULL);
                if (r < 0)
                        return r;
        }
        return store_commit(&txn);
}

/* On PostgreSQL an UPDATE finds room in the table's one page however full
 * the disk is: after TRUNCATE the INSERT must extend a new, empty file. */
static int probe_new_page(Store *s, usec_t now) {
        _cleanup_(store_rollbackp) Store *txn = NULL;
        int r;

        r = store_begin(s, &txn);
        if (r < 0)
                return r;
        r = s->vtable->query(s, PG_PROBE_LOCK_TIMEOUT, NULL, 0, NULL, NULL);
        if (r >= 0)
                r = s->vtable->query(s, "TRUNCATE store_probe", NULL, 0, NULL, NULL);
        if (r >= 0)
                r = s->vtable->query(s, probe_sql[s->backend].insert, PARAMS(VALUE_USEC(now)), NULL, NULL);
        if (r < 0)
                return r;
        return store_commit(&txn);
}

int store_check_writable(Store *s) {
        usec_t now = now_usec();
        int r;

        if (!s)
                return -EINVAL;
        if (s->backend == STORE_BACKEND_POSTGRESQL) {
                r = probe_new_page(s, now);
                if (r != -EAGAIN)
                        return r;
                /* Somebody holds the table: a write in place, without waiting for them. */
        }
        return probe_in_place(s, now);
}
