/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store suite for what a worker hears from the others: control
 * requests, notifications and wake-ups. Runs on both backends like
 * test-store.c, in a database of its own: a wake-up test counts the
 * connections to it. */

#include <poll.h>

#include "test-store-util.h"

/* ---- control requests ---- */

static void test_control(void) {
        _cleanup_(task_freep) Task *t = NULL;
        _cleanup_(control_request_freep) ControlRequest *got = NULL;
        ControlRequest pause = { .kind = CONTROL_PAUSE, .created_at = 2000 };
        ControlRequest message = { .kind = CONTROL_MESSAGE, .payload = (char *) "{\"text\":\"go on, ü\"}",
                                   .created_at = 1000 };
        ControlRequest cancel = { .kind = CONTROL_CANCEL };
        ControlRequest bad = { .kind = CONTROL_RESUME };
        ControlRequest *pending = NULL;
        size_t n = 0;
        usec_t delivered;

        for (ControlKind k = 0; k < _CONTROL_KIND_MAX; k++)
                check_int(control_kind_from_string(control_kind_to_string(k)), k);
        check_streq(control_kind_to_string(CONTROL_INTERRUPT), "interrupt");
        check(!control_kind_to_string(_CONTROL_KIND_MAX));
        check(!control_kind_to_string(-1));
        check_int(control_kind_from_string("cleanup"), -EINVAL);
        check_int(control_kind_from_string(NULL), -EINVAL);

        tasks_clear();
        t = insert_task("control", "controlled", TASK_PENDING, 0);
        pause.task_id = message.task_id = cancel.task_id = t->id;
        check_ok(store_control_insert(store, &pause));
        check_ok(store_control_insert(store, &message));
        check(id_is_valid(pause.id) && id_is_valid(message.id));
        check_int(pause.created_at, 2000);
        usec_t before = now_usec();
        check_ok(store_control_insert(store, &cancel));
        check(cancel.created_at >= before && cancel.created_at <= now_usec());

        /* Refused: no such task, a bad kind, text that is not UTF-8. */
        bad.task_id = (char *) "no-such-task";
        check_r(store_control_insert(store, &bad), -ENOENT);
        check(!bad.id);
        bad.task_id = t->id;
        bad.kind = _CONTROL_KIND_MAX;
        check_r(store_control_insert(store, &bad), -EINVAL);
        bad.kind = CONTROL_RESUME;
        bad.payload = (char *) "\xff";
        check_r(store_control_insert(store, &bad), -EINVAL);
        bad.task_id = NULL;
        bad.payload = NULL;
        check_r(store_control_insert(store, &bad), -EINVAL);

        /* Oldest first. */
        check_ok(store_control_list_pending(store, t->id, &pending, &n));
        check_int(n, 3);
        check_streq(pending[0].id, message.id);
        check_int(pending[0].kind, CONTROL_MESSAGE);
        check_streq(pending[0].payload, message.payload);
        check_streq(pending[0].task_id, t->id);
        check_streq(pending[1].id, pause.id);
        check(!pending[1].payload && !pending[1].result && pending[1].delivered_at == 0);
        check_streq(pending[2].id, cancel.id);
        control_request_array_free(pending, n);

        /* Delivered once, done once: repeats keep the first time and result. */
        check_ok(store_control_mark_delivered(store, pause.id));
        check_ok(store_control_get(store, pause.id, &got));
        delivered = got->delivered_at;
        check(delivered > 0 && got->done_at == 0);
        usleep(1000);
        check_ok(store_control_mark_delivered(store, pause.id));
        check_ok(store_control_complete(store, pause.id, "ok"));
        check_ok(store_control_complete(store, pause.id, "again"));
        got = control_request_free(got);
        check_ok(store_control_get(store, pause.id, &got));
        check_int(got->delivered_at, delivered);
        check(got->done_at >= delivered);
        check_streq(got->result, "ok");
        got = control_request_free(got);
        check_ok(store_control_complete(store, cancel.id, "the agent had already exited"));
        check_ok(store_control_get(store, cancel.id, &got));
        check(got->delivered_at > 0 && got->delivered_at == got->done_at);

        check_ok(store_control_list_pending(store, t->id, &pending, &n));
        check_int(n, 1);
        check_streq(pending[0].id, message.id);
        control_request_array_free(pending, n);

        check_r(store_control_mark_delivered(store, "no-such-request"), -ENOENT);
        check_r(store_control_complete(store, "no-such-request", "ok"), -ENOENT);
        check_r(store_control_complete(store, message.id, NULL), -EINVAL);
        check_r(store_control_complete(store, message.id, ""), -EINVAL);
        got = control_request_free(got);
        check_r(store_control_get(store, "no-such-request", &got), -ENOENT);
        check(!got);
        check_r(store_control_list_pending(store, "", &pending, &n), -EINVAL);

        /* The requests go with their task. */
        check_ok(store_task_delete(store, t->id, -1));
        check_r(store_control_get(store, message.id, &got), -ENOENT);
        check_ok(store_control_list_pending(store, t->id, &pending, &n));
        check_int(n, 0);
        control_request_array_free(pending, n);
        free(pause.id);
        free(message.id);
        free(cancel.id);
}

/* ---- notifications ---- */

static void test_notifications(void) {
        _cleanup_free_ char *owner = xasprintf("alice-%s", run);
        Notification a[3], other = { .owner = (char *) "bob", .level = (char *) "info", .message = (char *) "hi" };
        Notification bad = { .level = (char *) "fatal", .message = (char *) "no" };
        Notification *got = NULL;
        size_t n = 0;

        raw_sql("DELETE FROM notifications");
        for (int i = 0; i < 3; i++) {
                a[i] = (Notification) {
                        .owner = owner,
                        .task_id = (char *) "some-task",
                        .level = (char *) "warning",
                        .message = (char *) (i == 1 ? "agent is not logged in on worker 1 🔑" : "note"),
                        .created_at = 1000 * (i + 1),
                };
                check_ok(store_notification_insert(store, &a[i]));
                check(id_is_valid(a[i].id));
        }
        check_ok(store_notification_insert(store, &other));
        check(other.created_at > 0);

        check_r(store_notification_insert(store, &bad), -EINVAL);
        bad.level = (char *) "error";
        bad.message = (char *) "";
        check_r(store_notification_insert(store, &bad), -EINVAL);
        bad.message = (char *) "\xc3\x28";
        check_r(store_notification_insert(store, &bad), -EINVAL);
        check(!bad.id);

        /* Newest first. */
        check_ok(store_notification_list(store, owner, false, 0, &got, &n));
        check_int(n, 3);
        check_streq(got[0].id, a[2].id);
        check_streq(got[1].id, a[1].id);
        check_streq(got[1].message, a[1].message);
        check_streq(got[1].task_id, "some-task");
        check(!got[1].contract_id && got[1].read_at == 0);
        check_streq(got[2].id, a[0].id);
        notification_array_free(got, n);

        check_ok(store_notification_list(store, NULL, false, 0, &got, &n));
        check_int(n, 4);
        check_streq(got[0].id, other.id);
        notification_array_free(got, n);
        check_ok(store_notification_list(store, owner, false, 2, &got, &n));
        check_int(n, 2);
        check_streq(got[1].id, a[1].id);
        notification_array_free(got, n);

        check_ok(store_notification_mark_read(store, a[2].id));
        check_ok(store_notification_mark_read(store, a[2].id));
        check_ok(store_notification_list(store, owner, true, 0, &got, &n));
        check_int(n, 2);
        check_streq(got[0].id, a[1].id);
        notification_array_free(got, n);
        check_ok(store_notification_list(store, owner, false, 1, &got, &n));
        check(got[0].read_at > 0);
        notification_array_free(got, n);

        check_r(store_notification_mark_read(store, "no-such-notification"), -ENOENT);
        check_r(store_notification_list(store, "", false, 0, &got, &n), -EINVAL);
        for (int i = 0; i < 3; i++)
                free(a[i].id);
        free(other.id);
}

/* ---- wake-ups ---- */

static bool readable(int fd, int timeout_msec) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, timeout_msec);

        check(r >= 0);
        return r > 0;
}

/* Waits up to a second for a wake-up and drains it. */
static void check_woken(Store *listener, int fd) {
        int n;

        check(readable(fd, 1000));
        /* Both messages of a transaction may not have arrived at once. */
        for (int i = 0; i < 100; i++) {
                n = store_listen_drain(listener);
                if (n != 0)
                        break;
                (void) readable(fd, 10);
        }
        if (n < 1)
                fail(__FILE__, __LINE__, "drain = %d: %s", n, store_last_error(listener));
}

static void terminate_connections(void) {
        check(raw_sql("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                      "WHERE pid <> pg_backend_pid() AND datname = current_database() "
                      "AND backend_type = 'client backend'") >= 1);
}

static void test_listen(void) {
        _cleanup_(task_freep) Task *t = NULL, *dup = NULL;
        ControlRequest c = { .kind = CONTROL_INTERRUPT };
        Store *listener;
        int fd = -EBADF, r;

        if (backend == STORE_BACKEND_SQLITE) {
                check_r(store_listen(store, &fd), -EOPNOTSUPP);
                check_r(store_listen_drain(store), -EOPNOTSUPP);
                check(fd == -EBADF);
                return;
        }

        listener = open_store();
        check_r(store_listen_drain(listener), -EINVAL);
        check_ok(store_listen(listener, &fd));
        check(fd >= 0);
        check_int(store_listen_drain(listener), 0);
        check(!readable(fd, 0));

        /* Another handle (another connection) inserts: the listener wakes. */
        tasks_clear();
        t = insert_task("control", "wake", TASK_PENDING, 0);
        check_woken(listener, fd);
        c.task_id = t->id;
        check_ok(store_control_insert(store, &c));
        check_woken(listener, fd);
        free(c.id);

        /* A failed insert wakes nobody. */
        dup = task_make("lease", "dup");
        dup->id = xstrdup(t->id);
        check_r(store_task_insert(store, dup), -EEXIST);
        check(!readable(fd, 200));
        check_int(store_listen_drain(listener), 0);

        /* The server drops every connection: the listener hears of it, its
         * drain reopens the connection and asks to listen again. */
        terminate_connections();
        r = store_ping(store);
        check(IN_SET(r, 0, -EIO));
        check(readable(fd, 1000));
        check_r(store_listen_drain(listener), -ECONNRESET);
        check_ok(store_listen(listener, &fd));
        t = task_free(t);
        t = insert_task("control", "wake again", TASK_PENDING, 0);
        check_woken(listener, fd);

        /* The same when another call on the handle reopened it. */
        terminate_connections();
        check(IN_SET(store_ping(listener), 0, -EIO));
        check_ok(store_ping(listener));
        check(IN_SET(store_ping(store), 0, -EIO));
        check_r(store_listen_drain(listener), -ECONNRESET);
        check_ok(store_listen(listener, &fd));
        t = task_free(t);
        t = insert_task("control", "and again", TASK_PENDING, 0);
        check_woken(listener, fd);

        check_r(store_listen(listener, NULL), -EINVAL);
        check_r(store_listen_drain(NULL), -EINVAL);
        store_free(listener);
}

static const StoreTest tests[] = {
        { "control", test_control },
        { "notifications", test_notifications },
        { "listen", test_listen },
};

int main(int argc, char *argv[]) {
        return store_test_main(argc, argv, "store-control", true, tests, ELEMENTSOF(tests));
}
