/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Controlling a task's agent: POST /api/v1/tasks/{id}/pause, /resume,
 * /interrupt, /cancel and /send, and GET /api/v1/control-requests/{id}.
 * While a worker holds the task, a request is a row the worker acts on (it
 * writes the status change itself) and a ControlQueued signal to wake it.
 * A pending task has no agent: it can only be cancelled, here and at once.
 * A task that stopped at its iteration limit has no worker either: resuming
 * it with a higher limit queues it again, here, on the same session. */

#include "api-bus.h"
#include "api-http.h"
#include "api-manager.h"
#include "json-util.h"
#include "log.h"

/* The text of a message is the agent's next user turn; keep it sane. */
#define MESSAGE_MAX_BYTES (256U * 1024U)

static const char *const control_verb[_CONTROL_KIND_MAX] = {
        [CONTROL_PAUSE] = "paused",
        [CONTROL_RESUME] = "resumed",
        [CONTROL_INTERRUPT] = "interrupted",
        [CONTROL_MESSAGE] = "sent a message",
        [CONTROL_CANCEL] = "cancelled",
};

static int control_request_to_json(const ControlRequest *c, json_object **ret) {
        _cleanup_json_ json_object *o = NULL;
        json_object *payload = NULL;
        int k = 0;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        k = k ?: json_add_string(o, "id", c->id);
        k = k ?: json_add_string(o, "task_id", c->task_id);
        k = k ?: json_add_string(o, "kind", control_kind_to_string(c->kind));
        if (k < 0)
                return k;
        if (c->payload && json_parse_strict(c->payload, strlen(c->payload), &payload, NULL) == -ENOMEM)
                return -ENOMEM;
        if (json_object_object_add(o, "payload", payload) < 0) {
                json_object_put(payload);
                return -ENOMEM;
        }
        k = k ?: json_add_timestamp(o, "created_at", c->created_at);
        k = k ?: json_add_timestamp(o, "delivered_at", c->delivered_at);
        k = k ?: json_add_timestamp(o, "done_at", c->done_at);
        k = k ?: json_add_string(o, "result", c->result);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(o);
        return 0;
}

/* A pending task has no worker yet: it is cancelled here, with its "status" event. */
static int cancel_pending(Request *r, Task *t) {
        _cleanup_json_ json_object *o = NULL;
        _cleanup_free_ char *payload = NULL;
        Event event = { .type = (char *) "status" };
        int k;

        k = api_transition_payload(task_state_to_string(t->status), task_state_to_string(TASK_CANCELLED), &payload);
        if (k < 0)
                return k;
        event.payload = payload;
        event.object_id = t->id;        /* borrowed: the store makes no copy for us to free */
        t->status = TASK_CANCELLED;
        t->completed_at = now_usec();

        /* Written at the version read: if a worker claimed it meanwhile, this is
         * refused, and the client asks again, now through the worker. */
        k = store_task_update(r->manager->store, t, &event);
        if (k == -ESTALE)
                return request_reply_error(r, 409, "stale_version",
                                           "The task changed while it was being cancelled (a worker may have started it); retry.");
        if (k < 0)
                return request_reply_store_error(r, k, "task", NULL);
        log_debug("Task %s cancelled before it ran.", t->id);
        k = task_to_json(t, &o);
        if (k < 0)
                return k;
        return request_reply_json(r, 200, o);
}

static int task_control_loaded(Request *r, Task *t, ControlKind kind, const char *message) {
        _cleanup_json_ json_object *o = NULL, *payload = NULL, *c = NULL;
        _cleanup_free_ char *location = NULL, *id = NULL;
        ControlRequest request = { .kind = kind };
        int k;

        if (task_state_is_final(t->status))
                return request_reply_error(r, 409, "invalid_transition", "The task is '%s': it cannot be %s any more.",
                                           task_state_to_string(t->status), control_verb[kind]);
        if (t->status == TASK_PENDING) {
                if (kind == CONTROL_CANCEL)
                        return cancel_pending(r, t);
                return request_reply_error(r, 409, "not_running",
                                           "The task is pending: no agent runs it yet, so it cannot be %s. "
                                           "Cancel it, or wait until a worker starts it.", control_verb[kind]);
        }

        /* running, paused, waiting, or interrupted (the agent waits for a message):
         * a worker holds the task and is the one to act. */
        if (message) {
                payload = json_object_new_object();
                if (!payload || json_add_string(payload, "message", message) < 0)
                        return -ENOMEM;
                request.payload = (char *) json_object_to_json_string_ext(payload, JSON_C_TO_STRING_PLAIN);
        }
        /* task_id and payload are borrowed; only the id the store makes is ours to free. */
        request.task_id = t->id;
        k = store_control_insert(r->manager->store, &request);
        if (k < 0)
                return request_reply_store_error(r, k, "task", NULL);
        id = request.id;
        log_debug("Task %s: %s request %s queued.", t->id, control_kind_to_string(kind), id);
        bus_emit_control_queued(r->manager, t->id, kind);

        k = control_request_to_json(&request, &c);
        if (k < 0)
                return k;
        o = json_object_new_object();
        if (!o || json_object_object_add(o, "control_request", TAKE_PTR(c)) < 0)
                return -ENOMEM;
        if (asprintf(&location, "/api/v1/control-requests/%s", id) < 0)
                return -ENOMEM;
        return request_reply_accepted(r, o, location);
}

static int task_control(Request *r, ControlKind kind, const char *message) {
        _cleanup_(task_freep) Task *t = NULL;
        int k;

        k = api_task_load(r, &t);
        if (k < 0)
                return k;
        return task_control_loaded(r, t, kind, message);
}

int api_task_pause(Request *r) {
        return task_control(r, CONTROL_PAUSE, NULL);
}

/* The limit the loop of a task stops at: its own, else the configured
 * default, never above the hard limit (as the worker's circuit breaker
 * computes it). */
static unsigned effective_max_iterations(const Config *c, int task_max_iterations) {
        unsigned m = task_max_iterations > 0 ? (unsigned) task_max_iterations : c->loop_default_max_iterations;

        return MIN(m, c->loop_hard_limit);
}

/* The "status" event of the resume: {"from":…,"to":…,"max_iterations":N}. */
static int resume_payload(int max_iterations, char **ret) {
        _cleanup_json_ json_object *o = NULL, *n = NULL;
        char *s;

        o = json_object_new_object();
        n = json_object_new_int(max_iterations);
        if (!o || !n ||
            json_add_string(o, "from", task_state_to_string(TASK_ITERATION_LIMIT_REACHED)) < 0 ||
            json_add_string(o, "to", task_state_to_string(TASK_PENDING)) < 0 ||
            json_object_object_add(o, "max_iterations", n) < 0)
                return -ENOMEM;
        TAKE_PTR(n);
        s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* iteration_limit_reached → pending with the higher limit, in one write with
 * its "status" event. The session, worktree, branch and iteration count
 * stay: the worker that claims it goes on where the loop stopped. */
static int resume_with_higher_limit(Request *r, Task *t, bool given, int max_iterations) {
        const Config *c = r->manager->config;
        unsigned hard_limit = c->loop_hard_limit;
        _cleanup_json_ json_object *o = NULL;
        _cleanup_free_ char *payload = NULL;
        /* Its object_id is borrowed: the store then makes no copy for us to free. */
        Event event = { .type = (char *) "status", .object_id = t->id };
        int k;

        if (effective_max_iterations(c, t->max_iterations) >= hard_limit || (unsigned) t->iteration_count >= hard_limit)
                return request_reply_error(r, 409, "hard_limit_reached",
                                           "The task is already at the hard limit of %u iterations ([AutonomousLoop] HardLimit=): "
                                           "it cannot be resumed with a higher one.", hard_limit);
        if (!given)
                return request_reply_field(r, "max_iterations",
                                           "required to resume a task that reached its iteration limit "
                                           "(more than %d, at most %u)", t->iteration_count, hard_limit);
        if (max_iterations <= t->iteration_count || (unsigned) max_iterations > hard_limit)
                return request_reply_field(r, "max_iterations",
                                           "expected more than %d (the iterations it ran) and at most %u (the hard limit)",
                                           t->iteration_count, hard_limit);
        k = request_check_version(r, -1, t->version, "task");
        if (k < 0)
                return k;

        k = resume_payload(max_iterations, &payload);
        if (k < 0)
                return k;
        event.payload = payload;
        t->max_iterations = max_iterations;
        t->status = TASK_PENDING;
        t->error = mfree(t->error);
        t->completed_at = 0;

        /* At the version read: a change made since (by a PATCH, or a second
         * resume) is refused and the client looks again. */
        k = store_task_update(r->manager->store, t, &event);
        if (k < 0)
                return request_reply_store_error(r, k, "task", NULL);
        log_debug("Task %s queued again with at most %d iterations.", t->id, max_iterations);
        bus_emit_task_queued(r->manager, t->id);

        k = task_to_json(t, &o);
        if (k < 0)
                return k;
        return request_reply_json(r, 200, o);
}

int api_task_resume(Request *r) {
        static const JsonDispatchField table[] = {
                { "max_iterations", json_dispatch_uint, 0, 0 },
                {}
        };
        _cleanup_(task_freep) Task *t = NULL;
        int max_iterations = 0, k;
        bool given;

        /* The body is optional: {} and none are the same. */
        given = r->body && json_object_object_get_ex(r->body, "max_iterations", NULL);
        if (r->body) {
                k = request_dispatch_body(r, table, &max_iterations);
                if (k < 0)
                        return k;
        }

        k = api_task_load(r, &t);
        if (k < 0)
                return k;

        switch (t->status) {
        case TASK_ITERATION_LIMIT_REACHED:
                return resume_with_higher_limit(r, t, given, max_iterations);
        case TASK_RUNNING:
        case TASK_PAUSED:
        case TASK_WAITING:
        case TASK_INTERRUPTED:
                /* The worker holds the task and writes its run fields,
                 * max_iterations among them: a limit stored here would be
                 * overwritten. Refused rather than silently lost. */
                if (given)
                        return request_reply_error(r, 409, "task_active",
                                                   "The task is '%s' and its worker holds it: its iteration limit can be "
                                                   "raised only once it has stopped at it (iteration_limit_reached). "
                                                   "Resume it without max_iterations.", task_state_to_string(t->status));
                return task_control_loaded(r, t, CONTROL_RESUME, NULL);
        case TASK_FAILED:
                return request_reply_error(r, 409, "invalid_transition",
                                           "The task is 'failed': there is nothing to resume. To run it again, set its "
                                           "status to 'pending' (PATCH).");
        default:
                return request_reply_error(r, 409, "invalid_transition",
                                           "The task is '%s': there is nothing to resume.", task_state_to_string(t->status));
        }
}

int api_task_interrupt(Request *r) {
        return task_control(r, CONTROL_INTERRUPT, NULL);
}

int api_task_cancel(Request *r) {
        return task_control(r, CONTROL_CANCEL, NULL);
}

int api_task_send(Request *r) {
        static const JsonDispatchField table[] = {
                { "message", json_dispatch_string, 0, JSON_MANDATORY },
                {}
        };
        _cleanup_free_ char *message = NULL;
        int k;

        k = request_dispatch_body(r, table, &message);
        if (k < 0)
                return k;
        if (isempty(message) || isempty(message + strspn(message, " \t\r\n")))
                return request_reply_field(r, "message", "must not be empty");
        if (strlen(message) > MESSAGE_MAX_BYTES)
                return request_reply_field(r, "message", "longer than %u bytes", MESSAGE_MAX_BYTES);
        return task_control(r, CONTROL_MESSAGE, message);
}

int api_control_request_get(Request *r) {
        _cleanup_(task_freep) Task *t = NULL;
        _cleanup_json_ json_object *o = NULL;
        ControlRequest *c = NULL;
        int k;

        k = store_control_get(r->manager->store, r->id, &c);
        if (k < 0)
                return request_reply_store_error(r, k, "control request", NULL);

        /* It is the caller's to see when its task is. */
        k = store_task_get(r->manager->store, c->task_id, &t);
        if (k >= 0 && !request_may_see(r, t->owner))
                k = -ENOENT;
        if (k >= 0)
                k = control_request_to_json(c, &o);
        control_request_array_free(c, 1);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                return request_reply_store_error(r, k, "control request", NULL);
        return request_reply_json(r, 200, o);
}
