/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Controlling a task's agent: POST /api/v1/tasks/{id}/pause, /resume,
 * /interrupt, /cancel and /send, and GET /api/v1/control-requests/{id}.
 * While a worker holds the task, a request is a row the worker acts on (it
 * writes the status change itself) and a ControlQueued signal to wake it.
 * A pending task has no agent: it can only be cancelled, here and at once. */

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

static int task_control(Request *r, ControlKind kind, const char *message) {
        _cleanup_(task_freep) Task *t = NULL;
        _cleanup_json_ json_object *o = NULL, *payload = NULL, *c = NULL;
        _cleanup_free_ char *location = NULL, *id = NULL;
        ControlRequest request = { .kind = kind };
        int k;

        k = api_task_load(r, &t);
        if (k < 0)
                return k;

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

int api_task_pause(Request *r) {
        return task_control(r, CONTROL_PAUSE, NULL);
}

int api_task_resume(Request *r) {
        return task_control(r, CONTROL_RESUME, NULL);
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
