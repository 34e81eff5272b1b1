/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Control requests (what the API asks of a task's worker), notifications
 * (what makima tells a user) and the wake-ups that announce new work. The
 * statements are the same on both backends but for the parameter sigil and,
 * on PostgreSQL, the NOTIFY that goes with a new control request. */

#include "store-internal.h"

static const char *const control_kind_table[_CONTROL_KIND_MAX] = {
        [CONTROL_PAUSE] = "pause",
        [CONTROL_RESUME] = "resume",
        [CONTROL_INTERRUPT] = "interrupt",
        [CONTROL_MESSAGE] = "message",
        [CONTROL_CANCEL] = "cancel",
};

const char *control_kind_to_string(ControlKind k) {
        if (k < 0 || k >= _CONTROL_KIND_MAX)
                return NULL;
        return control_kind_table[k];
}

ControlKind control_kind_from_string(const char *s) {
        if (!s)
                return _CONTROL_KIND_INVALID;
        for (size_t i = 0; i < _CONTROL_KIND_MAX; i++)
                if (streq(control_kind_table[i], s))
                        return (ControlKind) i;
        return _CONTROL_KIND_INVALID;
}

ControlRequest *control_request_free(ControlRequest *r) {
        control_request_array_free(r, r ? 1 : 0);
        return NULL;
}

void control_request_array_free(ControlRequest *a, size_t n) {
        for (size_t i = 0; a && i < n; i++) {
                free(a[i].id);
                free(a[i].task_id);
                free(a[i].payload);
                free(a[i].result);
        }
        free(a);
}

void notification_array_free(Notification *a, size_t n) {
        for (size_t i = 0; a && i < n; i++) {
                free(a[i].id);
                free(a[i].owner);
                free(a[i].task_id);
                free(a[i].contract_id);
                free(a[i].level);
                free(a[i].message);
        }
        free(a);
}

typedef struct ControlSql {
        const char *insert;
        const char *list_pending;
        const char *get;
        const char *deliver;
        const char *complete;
        const char *notification_insert;
        const char *notification_list;           /* S1 unread only, S2 limit */
        const char *notification_list_owner;     /* and S3 owner */
        const char *notification_read;
} ControlSql;

#define CONTROL_INSERT(S)                                                                       \
        "INSERT INTO control_requests (" CONTROL_COLUMNS ") "                                   \
        "VALUES (" S "1, " S "2, " S "3, " S "4, " S "5, " S "6, " S "7, " S "8)"

/* A request already done keeps its first result: a worker that restarted
 * may complete it twice. */
#define CONTROL_SQL(S, INSERT)                                                                  \
        {                                                                                       \
                .insert = INSERT,                                                               \
                .list_pending = "SELECT " CONTROL_COLUMNS " FROM control_requests "             \
                                "WHERE task_id = " S "1 AND done_at IS NULL ORDER BY created_at, id", \
                .get = "SELECT " CONTROL_COLUMNS " FROM control_requests WHERE id = " S "1",    \
                .deliver = "UPDATE control_requests SET delivered_at = COALESCE(delivered_at, " S "2) " \
                           "WHERE id = " S "1",                                                 \
                .complete = "UPDATE control_requests SET delivered_at = COALESCE(delivered_at, " S "2), " \
                            "done_at = " S "2, result = " S "3 WHERE id = " S "1 AND done_at IS NULL", \
                .notification_insert = "INSERT INTO notifications (" NOTIFICATION_COLUMNS ") "  \
                                       "VALUES (" S "1, " S "2, " S "3, " S "4, " S "5, " S "6, " S "7, " S "8)", \
                .notification_list = "SELECT " NOTIFICATION_COLUMNS " FROM notifications "      \
                                     "WHERE (NOT " S "1 OR read_at IS NULL) "                   \
                                     "ORDER BY created_at DESC, id DESC LIMIT " S "2",          \
                .notification_list_owner = "SELECT " NOTIFICATION_COLUMNS " FROM notifications " \
                                           "WHERE owner = " S "3 AND (NOT " S "1 OR read_at IS NULL) " \
                                           "ORDER BY created_at DESC, id DESC LIMIT " S "2",    \
                .notification_read = "UPDATE notifications SET read_at = COALESCE(read_at, " S "2) " \
                                     "WHERE id = " S "1",                                       \
        }

static const ControlSql control_sql[_STORE_BACKEND_MAX] = {
        [STORE_BACKEND_SQLITE] = CONTROL_SQL("?", CONTROL_INSERT("?")),
        /* One statement: the wake-up goes out exactly when the row is committed. */
        [STORE_BACKEND_POSTGRESQL] = CONTROL_SQL("$",
                "WITH r AS (" CONTROL_INSERT("$") " RETURNING task_id) "
                "SELECT pg_notify('" STORE_WAKEUP_CHANNEL "', 'control ' || task_id) FROM r"),
};

static const ControlSql *sql(Store *s) {
        return &control_sql[s->backend];
}

/* An UPDATE of one row by id in its own transaction; -ENOENT if there is none. */
static int write_one(Store *s, const char *statement, const char *what, const char *id,
                     const StoreValue *params, size_t n_params) {
        _cleanup_(store_rollbackp) Store *txn = NULL;
        int r;

        r = store_begin(s, &txn);
        if (r < 0)
                return r;
        r = s->vtable->query(s, statement, params, n_params, NULL, NULL);
        if (r < 0)
                return r;
        if (r == 0)
                return store_error(s, -ENOENT, "%s %s does not exist", what, id);
        return store_commit(&txn);
}

/* ---- control requests ---- */

int store_control_insert(Store *s, ControlRequest *r) {
        _cleanup_(store_rollbackp) Store *txn = NULL;
        _cleanup_free_ char *id = NULL;
        StoreValue v[CONTROL_N_COLUMNS];
        ControlRequest row;
        int k;

        if (!s || !r)
                return -EINVAL;
        if (!store_key_is_valid(r->task_id) || control_request_check(r) < 0)
                return store_invalid(s, "control request");
        k = store_id_make(r->id, &id);
        if (k < 0)
                return k;

        row = *r;
        row.id = r->id ?: id;
        row.created_at = r->created_at ?: now_usec();
        control_request_to_values(&row, v);
        k = store_begin(s, &txn);
        if (k < 0)
                return k;
        k = s->vtable->query(s, sql(s)->insert, v, CONTROL_N_COLUMNS, NULL, NULL);
        if (k == -ENOENT)
                return store_error(s, k, "Task %s does not exist", r->task_id);
        if (k < 0)
                return k;
        k = store_commit(&txn);
        if (k < 0)
                return k;

        if (id)
                r->id = TAKE_PTR(id);
        r->created_at = row.created_at;
        return 0;
}

typedef struct ControlList {
        ControlRequest *items;
        size_t n;
} ControlList;

static void control_list_done(ControlList *l) {
        control_request_array_free(l->items, l->n);
}

static int control_row(const StoreValue *row, size_t n_columns, void *userdata) {
        ControlList *l = userdata;
        ControlRequest *a;

        a = reallocarray(l->items, l->n + 1, sizeof(ControlRequest));
        if (!a)
                return -ENOMEM;
        l->items = a;
        /* Counted at once, so that a half-filled request is freed with the rest. */
        return control_request_from_values(row, n_columns, &l->items[l->n++]);
}

int store_control_list_pending(Store *s, const char *task_id, ControlRequest **ret, size_t *ret_n) {
        _cleanup_(control_list_done) ControlList l = {};
        int r;

        if (!s || !ret || !ret_n)
                return -EINVAL;
        if (!store_key_is_valid(task_id))
                return store_invalid(s, "task id");
        r = s->vtable->query(s, sql(s)->list_pending, PARAMS(VALUE_TEXT(task_id)), control_row, &l);
        if (r == -EBADMSG)
                return store_error(s, r, "Malformed control request of task %s", task_id);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(l.items);
        *ret_n = l.n;
        return 0;
}

int store_control_get(Store *s, const char *id, ControlRequest **ret) {
        _cleanup_(control_list_done) ControlList l = {};
        int r;

        if (!s || !ret)
                return -EINVAL;
        if (!store_key_is_valid(id))
                return store_invalid(s, "control request id");
        r = s->vtable->query(s, sql(s)->get, PARAMS(VALUE_TEXT(id)), control_row, &l);
        if (r == -EBADMSG)
                return store_error(s, r, "Malformed control request %s", id);
        if (r < 0)
                return r;
        if (l.n == 0)
                return store_error(s, -ENOENT, "Control request %s does not exist", id);

        *ret = TAKE_PTR(l.items);
        l.n = 0;
        return 0;
}

int store_control_mark_delivered(Store *s, const char *id) {
        if (!s)
                return -EINVAL;
        if (!store_key_is_valid(id))
                return store_invalid(s, "control request id");
        return write_one(s, sql(s)->deliver, "Control request", id, PARAMS(VALUE_TEXT(id), VALUE_USEC(now_usec())));
}

int store_control_complete(Store *s, const char *id, const char *result) {
        _cleanup_(store_rollbackp) Store *txn = NULL;
        int r;

        if (!s)
                return -EINVAL;
        if (!store_key_is_valid(id))
                return store_invalid(s, "control request id");
        if (!store_key_is_valid(result))
                return store_invalid(s, "control request result");

        r = store_begin(s, &txn);
        if (r < 0)
                return r;
        r = s->vtable->query(s, sql(s)->complete, PARAMS(VALUE_TEXT(id), VALUE_USEC(now_usec()), VALUE_TEXT(result)),
                             NULL, NULL);
        if (r < 0)
                return r;
        if (r == 0) {
                /* Done already, or not there at all. */
                r = s->vtable->query(s, sql(s)->get, PARAMS(VALUE_TEXT(id)), NULL, NULL);
                if (r < 0)
                        return r;
                if (r == 0)
                        return store_error(s, -ENOENT, "Control request %s does not exist", id);
        }
        return store_commit(&txn);
}

/* ---- notifications ---- */

static bool level_is_valid(const char *level) {
        return level && (streq(level, "info") || streq(level, "warning") || streq(level, "error"));
}

int store_notification_insert(Store *s, Notification *n) {
        _cleanup_(store_rollbackp) Store *txn = NULL;
        _cleanup_free_ char *id = NULL;
        StoreValue v[NOTIFICATION_N_COLUMNS];
        Notification row;
        int r;

        if (!s || !n)
                return -EINVAL;
        if (!level_is_valid(n->level) || isempty(n->message) || notification_check(n) < 0)
                return store_invalid(s, "notification");
        r = store_id_make(n->id, &id);
        if (r < 0)
                return r;

        row = *n;
        row.id = n->id ?: id;
        row.created_at = n->created_at ?: now_usec();
        notification_to_values(&row, v);
        r = store_begin(s, &txn);
        if (r < 0)
                return r;
        r = s->vtable->query(s, sql(s)->notification_insert, v, NOTIFICATION_N_COLUMNS, NULL, NULL);
        if (r < 0)
                return r;
        r = store_commit(&txn);
        if (r < 0)
                return r;

        if (id)
                n->id = TAKE_PTR(id);
        n->created_at = row.created_at;
        return 0;
}

typedef struct NotificationList {
        Notification *items;
        size_t n;
} NotificationList;

static void notification_list_done(NotificationList *l) {
        notification_array_free(l->items, l->n);
}

static int notification_row(const StoreValue *row, size_t n_columns, void *userdata) {
        NotificationList *l = userdata;
        Notification *a;

        a = reallocarray(l->items, l->n + 1, sizeof(Notification));
        if (!a)
                return -ENOMEM;
        l->items = a;
        return notification_from_values(row, n_columns, &l->items[l->n++]);
}

int store_notification_list(Store *s, const char *owner, bool unread_only, size_t limit, Notification **ret,
                            size_t *ret_n) {
        _cleanup_(notification_list_done) NotificationList l = {};
        int r;

        if (!s || !ret || !ret_n)
                return -EINVAL;
        if (owner && !store_key_is_valid(owner))
                return store_invalid(s, "owner");

        /* As in the other lists, a huge LIMIT is no limit. */
        r = s->vtable->query(s, owner ? sql(s)->notification_list_owner : sql(s)->notification_list,
                             PARAMS(VALUE_BOOL(unread_only),
                                    VALUE_INT(limit == 0 || limit > INT64_MAX ? INT64_MAX : (int64_t) limit),
                                    VALUE_TEXT(owner)),
                             notification_row, &l);
        if (r == -EBADMSG)
                return store_error(s, r, "Malformed row in table notifications");
        if (r < 0)
                return r;

        *ret = TAKE_PTR(l.items);
        *ret_n = l.n;
        return 0;
}

int store_notification_mark_read(Store *s, const char *id) {
        if (!s)
                return -EINVAL;
        if (!store_key_is_valid(id))
                return store_invalid(s, "notification id");
        return write_one(s, sql(s)->notification_read, "Notification", id,
                         PARAMS(VALUE_TEXT(id), VALUE_USEC(now_usec())));
}

/* ---- wake-ups ---- */

int store_listen(Store *s, int *ret_fd) {
        if (!s || !ret_fd)
                return -EINVAL;
        if (!s->vtable->listen)
                return store_error(s, -EOPNOTSUPP, "The %s store has no notifications",
                                   store_backend_to_string(s->backend));
        return s->vtable->listen(s, ret_fd);
}

int store_listen_drain(Store *s) {
        if (!s)
                return -EINVAL;
        if (!s->vtable->listen_drain)
                return store_error(s, -EOPNOTSUPP, "The %s store has no notifications",
                                   store_backend_to_string(s->backend));
        return s->vtable->listen_drain(s);
}
