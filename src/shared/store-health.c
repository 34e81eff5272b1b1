/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Whether the store takes writes (store_check_writable(), see store.h): a
 * read tells a store that answers from one that does not, but only a write
 * tells a store whose disk is full. The write is one row of its own table,
 * so that the check needs no room the store's real writes would not also
 * need, and leaves the database the size it was. */

#include "store-internal.h"

typedef struct ProbeSql {
        const char *empty;              /* NULL: the row is rewritten in place */
        const char *update;             /* S1: now; changes the row, or none if there is none */
        const char *insert;             /* S1: now */
} ProbeSql;

static const ProbeSql probe_sql[_STORE_BACKEND_MAX] = {
        /* A page of the WAL, like every SQLite write: with no room left to
         * grow the WAL (or the database, when a checkpoint must) this fails. */
        [STORE_BACKEND_SQLITE] = {
                .update = "UPDATE store_probe SET written_at = ?1",
                .insert = "INSERT INTO store_probe (written_at) VALUES (?1)",
        },
        /* An UPDATE would find room in the table's one page however full the
         * disk is: after TRUNCATE the INSERT must extend a new, empty file. */
        [STORE_BACKEND_POSTGRESQL] = {
                .empty = "TRUNCATE store_probe",
                .insert = "INSERT INTO store_probe (written_at) VALUES ($1)",
        },
};

int store_check_writable(Store *s) {
        _cleanup_(store_rollbackp) Store *txn = NULL;
        const ProbeSql *p;
        usec_t now = now_usec();
        int r;

        if (!s)
                return -EINVAL;
        p = &probe_sql[s->backend];

        r = store_begin(s, &txn);
        if (r < 0)
                return r;
        if (p->empty) {
                r = s->vtable->query(s, p->empty, NULL, 0, NULL, NULL);
                if (r < 0)
                        return r;
        }
        r = p->update ? s->vtable->query(s, p->update, PARAMS(VALUE_USEC(now)), NULL, NULL) : 0;
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
