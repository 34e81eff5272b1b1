/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store suite for the task and contract event logs: appends, lists
 * and their errors, and forked appenders with handles of their own racing
 * on one log. Runs on both backends like test-store.c. */

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "conf.h"
#include "test-store-util.h"

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

static const StoreTest tests[] = {
        { "events", test_events },
        { "concurrent_append", test_concurrent_append },
};

int main(int argc, char *argv[]) {
        return store_test_main(argc, argv, "store-events", false, tests, ELEMENTSOF(tests));
}
