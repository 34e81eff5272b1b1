/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Repository grants: which local repositories an administrator lets an
 * owner name in a task (tasks by administrators need none). The same
 * statements on both backends. */

#include "store-internal.h"

#define GRANT_COLUMNS "id, path, owner, created_at"
#define GRANT_N_COLUMNS 4

typedef struct GrantSql {
        const char *insert;
        const char *exists;
        const char *list;
        const char *list_owner;
        const char *delete;
} GrantSql;

#define GRANT_SQL(S)                                                                            \
        {                                                                                       \
                .insert = "INSERT INTO repo_grants (" GRANT_COLUMNS ") "                        \
                          "VALUES (" S "1, " S "2, " S "3, " S "4)",                            \
                .exists = "SELECT 1 FROM repo_grants WHERE path = " S "1 AND owner = " S "2",   \
                .list = "SELECT " GRANT_COLUMNS " FROM repo_grants ORDER BY path, owner",       \
                .list_owner = "SELECT " GRANT_COLUMNS " FROM repo_grants WHERE owner = " S "1 " \
                              "ORDER BY path, owner",                                           \
                .delete = "DELETE FROM repo_grants WHERE id = " S "1",                          \
        }

static const GrantSql grant_sql[_STORE_BACKEND_MAX] = {
        [STORE_BACKEND_SQLITE] = GRANT_SQL("?"),
        [STORE_BACKEND_POSTGRESQL] = GRANT_SQL("$"),
};

static const GrantSql *sql(Store *s) {
        return &grant_sql[s->backend];
}

void repo_grant_array_free(RepoGrant *a, size_t n) {
        for (size_t i = 0; a && i < n; i++) {
                free(a[i].id);
                free(a[i].path);
                free(a[i].owner);
        }
        free(a);
}

/* Absolute and spelled one way only: then equal paths are equal strings. */
static bool path_is_normalized(const char *p) {
        if (isempty(p) || p[0] != '/')
                return false;
        if (streq(p, "/"))
                return true;
        for (const char *c = p + 1;; c++) {
                size_t n = strcspn(c, "/");

                if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && strneq(c, "..", 2)))
                        return false;
                c += n;
                if (*c == '\0')
                        return true;
        }
}

int store_repo_grant_insert(Store *s, RepoGrant *g) {
        _cleanup_(store_rollbackp) Store *txn = NULL;
        _cleanup_free_ char *id = NULL;
        usec_t now = now_usec();
        int r;

        if (!s || !g)
                return -EINVAL;
        if (!path_is_normalized(g->path) || !store_key_is_valid(g->path))
                return store_invalid(s, "repository path");
        if (!store_key_is_valid(g->owner))
                return store_invalid(s, "owner");
        r = store_id_make(NULL, &id);
        if (r < 0)
                return r;

        r = store_begin(s, &txn);
        if (r < 0)
                return r;
        r = s->vtable->query(s, sql(s)->exists, PARAMS(VALUE_TEXT(g->path), VALUE_TEXT(g->owner)), NULL, NULL);
        if (r < 0)
                return r;
        if (r > 0)
                return store_error(s, -EEXIST, "%s is granted to %s already", g->path, g->owner);
        r = s->vtable->query(s, sql(s)->insert,
                             PARAMS(VALUE_TEXT(id), VALUE_TEXT(g->path), VALUE_TEXT(g->owner), VALUE_USEC(now)),
                             NULL, NULL);
        if (r < 0)
                return r;
        r = store_commit(&txn);
        if (r < 0)
                return r;
        free_and_replace(g->id, id);
        g->created_at = now;
        return 0;
}

typedef struct GrantList {
        RepoGrant *items;
        size_t n;
} GrantList;

static int grant_row(const StoreValue *row, size_t n_columns, void *userdata) {
        GrantList *l = userdata;
        RepoGrant *a, *g;

        if (n_columns != GRANT_N_COLUMNS)
                return -EBADMSG;
        for (size_t i = 0; i < 3; i++)
                if (row[i].null || row[i].type != STORE_VALUE_TEXT)
                        return -EBADMSG;
        if (row[3].null || row[3].type != STORE_VALUE_INT || row[3].i < 0)
                return -EBADMSG;
        a = reallocarray(l->items, l->n + 1, sizeof(RepoGrant));
        if (!a)
                return -ENOMEM;
        l->items = a;
        g = &l->items[l->n++];
        *g = (RepoGrant) {
                .id = strdup(row[0].text),
                .path = strdup(row[1].text),
                .owner = strdup(row[2].text),
                .created_at = (usec_t) row[3].i,
        };
        return g->id && g->path && g->owner ? 0 : -ENOMEM;
}

int store_repo_grant_list(Store *s, const char *owner, RepoGrant **ret, size_t *ret_n) {
        GrantList l = {};
        int r;

        if (!s || !ret || !ret_n)
                return -EINVAL;
        if (owner && !store_key_is_valid(owner))
                return store_invalid(s, "owner");
        r = s->vtable->query(s, owner ? sql(s)->list_owner : sql(s)->list, PARAMS(VALUE_TEXT(owner)), grant_row, &l);
        if (r < 0) {
                repo_grant_array_free(l.items, l.n);
                return r == -EBADMSG ? store_error(s, r, "Malformed row in table repo_grants") : r;
        }
        *ret = l.items;
        *ret_n = l.n;
        return 0;
}

int store_repo_grant_delete(Store *s, const char *id) {
        _cleanup_(store_rollbackp) Store *txn = NULL;
        int r;

        if (!s)
                return -EINVAL;
        if (!store_key_is_valid(id))
                return store_invalid(s, "grant id");
        r = store_begin(s, &txn);
        if (r < 0)
                return r;
        r = s->vtable->query(s, sql(s)->delete, PARAMS(VALUE_TEXT(id)), NULL, NULL);
        if (r < 0)
                return r;
        if (r == 0)
                return store_error(s, -ENOENT, "Grant %s does not exist", id);
        return store_commit(&txn);
}
