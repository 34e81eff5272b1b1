/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes what the API does with a request body: strict parsing, then the
 * dispatcher with a task-create table and a contract table (every callback
 * type), then the JSON forms of the results; the input is also an event
 * payload, as stored events are shown back. */

#include "json-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Like POST /tasks: unknown fields are an error. */
static const JsonDispatchField task_create_table[] = {
        { "name", json_dispatch_string, offsetof(Task, name), JSON_MANDATORY },
        { "plan", json_dispatch_string, offsetof(Task, plan), JSON_MANDATORY },
        { "repo", json_dispatch_string, offsetof(Task, repo), 0 },
        { "base_branch", json_dispatch_string, offsetof(Task, base_branch), JSON_NULLABLE },
        { "target_branch", json_dispatch_string, offsetof(Task, target_branch), JSON_NULLABLE },
        { "contract_id", json_dispatch_string, offsetof(Task, contract_id), JSON_NULLABLE },
        { "parent_task_id", json_dispatch_string, offsetof(Task, parent_task_id), JSON_NULLABLE },
        { "max_iterations", json_dispatch_uint, offsetof(Task, max_iterations), JSON_NULLABLE },
        { "autonomous_loop", json_dispatch_bool, offsetof(Task, autonomous_loop), 0 },
        { "is_supervisor", json_dispatch_bool, offsetof(Task, is_supervisor), 0 },
        { "status", json_dispatch_task_state, offsetof(Task, status), 0 },
        { "cost_usd", json_dispatch_double, offsetof(Task, cost_usd), 0 },
        { "version", json_dispatch_int64, offsetof(Task, version), 0 },
        {}
};

static const JsonDispatchField contract_table[] = {
        { "name", json_dispatch_string, offsetof(Contract, name), JSON_MANDATORY },
        { "description", json_dispatch_string, offsetof(Contract, description), JSON_NULLABLE },
        { "type", json_dispatch_contract_type, offsetof(Contract, type), 0 },
        { "phase", json_dispatch_contract_phase, offsetof(Contract, phase), 0 },
        { "status", json_dispatch_contract_status, offsetof(Contract, status), 0 },
        { "autonomous_loop", json_dispatch_bool, offsetof(Contract, autonomous_loop), 0 },
        { "version", json_dispatch_int64, offsetof(Contract, version), 0 },
        {}
};

static void task_body(json_object *o) {
        _cleanup_(task_freep) Task *t = task_new();
        _cleanup_json_ json_object *out = NULL;
        const char *bad = NULL;

        if (!t)
                return;
        if (json_dispatch(o, task_create_table, 0, t, &bad) < 0) {
                /* The name must be readable: the API puts it in its error message. */
                if (bad)
                        (void) strlen(bad);
                return;
        }
        if (task_to_json(t, &out) >= 0)
                (void) json_object_to_json_string(out);
}

static void contract_body(json_object *o) {
        _cleanup_(contract_freep) Contract *c = contract_new();
        _cleanup_json_ json_object *out = NULL;
        const char *bad = NULL;

        if (!c)
                return;
        if (json_dispatch(o, contract_table, JSON_ALLOW_EXTRA, c, &bad) < 0) {
                if (bad)
                        (void) strlen(bad);
                return;
        }
        if (contract_to_json(c, &out) >= 0)
                (void) json_object_to_json_string(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_json_ json_object *o = NULL, *ev = NULL;
        _cleanup_free_ char *payload = NULL;
        const char *error = NULL;

        if (json_parse_strict((const char *) data, size, &o, &error) >= 0) {
                task_body(o);
                contract_body(o);
        } else
                (void) strlen(error);

        payload = strndup((const char *) data, size);
        if (payload) {
                Event e = { .seq = 1, .type = (char *) "fuzz", .payload = payload, .created_at = 1 };

                if (event_to_json(&e, &ev) >= 0)
                        (void) json_object_to_json_string(ev);
        }
        return 0;
}
