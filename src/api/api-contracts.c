/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* /api/v1/contracts: create, list, read, change, delete contracts, move them
 * through their phases, and read their event logs. Every status or phase
 * change is written together with its event. */

#include "api-http.h"
#include "api-manager.h"
#include "json-util.h"
#include "log.h"

#define NAME_MAX_BYTES 256

DEFINE_RESOURCE(contract, Contract, "contract", "/api/v1/contracts");

static int contract_item_json(const void *items, size_t i, json_object **ret) {
        return contract_to_json(((Contract *const *) items)[i], ret);
}

static int contract_load(Request *r, Contract **ret) {
        return request_resource_load(r, &contract_resource, (void **) ret);
}

static int reply_contract(Request *r, unsigned status, const Contract *c) {
        return request_resource_reply(r, &contract_resource, status, c);
}

int api_contracts_list(Request *r) {
        ContractFilter f = { .status = -1 };
        Contract **contracts = NULL;
        const char *status;
        size_t n = 0;
        int k;

        k = request_query_page(r, &f.limit, &f.offset);
        if (k < 0)
                return k;
        status = request_query(r, "status");
        if (status) {
                f.status = contract_status_from_string(status);
                if (f.status < 0)
                        return request_reply_error(r, 400, "invalid_parameter",
                                                   "query parameter 'status': no contract status '%s'", status);
        }
        if (!r->admin)
                f.owner = r->owner;

        k = store_contract_list(r->manager->store, &f, &contracts, &n);
        if (k < 0)
                return request_reply_store_error(r, k, "contracts", NULL);

        k = request_reply_list(r, "contracts", contracts, n, contract_item_json);
        contract_array_free(contracts, n);
        return k;
}

typedef struct ContractCreate {
        char *owner;
        char *name;
        char *description;
        ContractType type;
        bool autonomous_loop;
        double max_cost_usd;
} ContractCreate;

static void contract_create_done(ContractCreate *c) {
        free(c->owner);
        free(c->name);
        free(c->description);
}

int api_contracts_create(Request *r) {
        static const JsonDispatchField table[] = {
                { "owner",           json_dispatch_string,        offsetof(ContractCreate, owner),           0              },
                { "name",            json_dispatch_string,        offsetof(ContractCreate, name),            JSON_MANDATORY },
                { "description",     json_dispatch_string,        offsetof(ContractCreate, description),     JSON_NULLABLE  },
                { "type",            json_dispatch_contract_type, offsetof(ContractCreate, type),            0              },
                { "autonomous_loop", json_dispatch_bool,          offsetof(ContractCreate, autonomous_loop), 0              },
                { "max_cost_usd",    json_dispatch_double,        offsetof(ContractCreate, max_cost_usd),    JSON_NULLABLE  },
                {}
        };
        _cleanup_(contract_create_done) ContractCreate p = { .type = CONTRACT_TYPE_SPEC };
        _cleanup_(contract_freep) Contract *c = NULL;
        _cleanup_json_ json_object *payload = NULL;
        const char *owner;
        /* Its object_id, set below, is borrowed: the store then makes no copy for us to free. */
        Event event = { .type = (char *) "created" };
        int k;

        k = request_dispatch_body(r, table, &p);
        if (k < 0)
                return k;
        if (isempty(p.name) || strlen(p.name) > NAME_MAX_BYTES)
                return request_reply_field(r, "name", "expected 1 to %d bytes", NAME_MAX_BYTES);
        k = api_check_cost_limit(r, p.max_cost_usd);
        if (k < 0)
                return k;
        k = request_new_owner(r, p.owner, &owner);
        if (k < 0)
                return k;

        c = contract_new();
        if (!c || !(c->owner = strdup(owner)))
                return -ENOMEM;
        c->name = TAKE_PTR(p.name);
        c->description = TAKE_PTR(p.description);
        c->type = p.type;
        c->phase = contract_type_first_phase(p.type);
        c->status = CONTRACT_ACTIVE;
        c->autonomous_loop = p.autonomous_loop;
        c->max_cost_usd = p.max_cost_usd;

        k = store_contract_insert(r->manager->store, c);
        if (k < 0)
                return request_reply_store_error(r, k, "contract", NULL);

        /* The contract exists now; a failure to log its creation must not make
         * the client think it does not (and create it twice). */
        payload = json_object_new_object();
        if (payload &&
            json_add_string(payload, "type", contract_type_to_string(c->type)) >= 0 &&
            json_add_string(payload, "phase", contract_phase_to_string(c->phase)) >= 0 &&
            json_add_string(payload, "owner", c->owner) >= 0) {
                event.payload = (char *) json_object_to_json_string_ext(payload, JSON_C_TO_STRING_PLAIN);
                event.object_id = c->id;
                k = store_event_append(r->manager->store, EVENT_LOG_CONTRACT, c->id, &event, 1);
                if (k < 0)
                        log_warning_errno(k, "Failed to record the creation of contract %s: %m: %s", c->id,
                                          strna(store_last_error(r->manager->store)));
        }

        log_debug("Contract %s created for %s.", c->id, c->owner);
        return reply_contract(r, 201, c);
}

int api_contract_get(Request *r) {
        return request_resource_get(r, &contract_resource);
}

typedef struct ContractPatch {
        char *name;
        char *description;
        ContractStatus status;
        bool autonomous_loop;
        char *supervisor_task_id;
        double max_cost_usd;
        int64_t version;
} ContractPatch;

static void contract_patch_done(ContractPatch *p) {
        free(p->name);
        free(p->description);
        free(p->supervisor_task_id);
}

/* The supervisor must be a task the caller can see. */
static int check_supervisor(Request *r, const char *id) {
        _cleanup_(task_freep) Task *t = NULL;
        int k;

        if (!id_is_valid(id))
                return request_reply_field(r, "supervisor_task_id", "expected a task id"), -EINVAL;
        k = store_task_get(r->manager->store, id, &t);
        return request_check_reference(r, k, t ? t->owner : NULL, "supervisor_task_id", "task");
}

int api_contract_patch(Request *r) {
        static const JsonDispatchField table[] = {
                { "name",               json_dispatch_string,          offsetof(ContractPatch, name),               0             },
                { "description",        json_dispatch_string,          offsetof(ContractPatch, description),        JSON_NULLABLE },
                { "status",             json_dispatch_contract_status, offsetof(ContractPatch, status),             0             },
                { "autonomous_loop",    json_dispatch_bool,            offsetof(ContractPatch, autonomous_loop),    0             },
                { "supervisor_task_id", json_dispatch_string,          offsetof(ContractPatch, supervisor_task_id), JSON_NULLABLE },
                { "max_cost_usd",       json_dispatch_double,          offsetof(ContractPatch, max_cost_usd),       JSON_NULLABLE },
                { "version",            json_dispatch_int64,           offsetof(ContractPatch, version),            0             },
                {}
        };
        _cleanup_(contract_patch_done) ContractPatch p = { .status = _CONTRACT_STATUS_INVALID, .version = -1 };
        _cleanup_(contract_freep) Contract *c = NULL;
        _cleanup_free_ char *payload = NULL;
        /* Its object_id, set below, is borrowed: the store then makes no copy for us to free. */
        Event event = { .type = (char *) "status" };
        ContractStatus from;
        int k;

        k = request_dispatch_body(r, table, &p);
        if (k < 0)
                return k;
        k = request_check_body_version(r, p.version);
        if (k < 0)
                return k;
        if (request_has_field(r, "name") && (isempty(p.name) || strlen(p.name) > NAME_MAX_BYTES))
                return request_reply_field(r, "name", "expected 1 to %d bytes", NAME_MAX_BYTES);
        k = api_check_cost_limit(r, p.max_cost_usd);
        if (k < 0)
                return k;

        k = request_resource_load_at(r, &contract_resource, p.version, (void **) &c);
        if (k < 0)
                return k;
        if (p.supervisor_task_id) {
                k = check_supervisor(r, p.supervisor_task_id);
                if (k < 0)
                        return k;
        }

        from = c->status;
        if (p.status >= 0 && p.status != from) {
                if (!contract_status_transition_allowed(from, p.status))
                        return request_reply_error(r, 409, "invalid_transition",
                                                   "A contract cannot go from status '%s' to '%s'.",
                                                   contract_status_to_string(from), contract_status_to_string(p.status));
                k = api_transition_payload(contract_status_to_string(from), contract_status_to_string(p.status), &payload);
                if (k < 0)
                        return k;
                event.payload = payload;
                event.object_id = c->id;
                c->status = p.status;
        }
        if (p.name) {
                free(c->name);
                c->name = TAKE_PTR(p.name);
        }
        if (request_has_field(r, "description")) {
                free(c->description);
                c->description = TAKE_PTR(p.description);
        }
        if (request_has_field(r, "autonomous_loop"))
                c->autonomous_loop = p.autonomous_loop;
        if (request_has_field(r, "max_cost_usd"))
                c->max_cost_usd = p.max_cost_usd;
        if (request_has_field(r, "supervisor_task_id")) {
                free(c->supervisor_task_id);
                c->supervisor_task_id = TAKE_PTR(p.supervisor_task_id);
        }

        /* Written at the version just read: a change made since is refused (-ESTALE). */
        k = store_contract_update(r->manager->store, c, payload ? &event : NULL);
        if (k < 0)
                return request_reply_store_error(r, k, "contract", NULL);
        return reply_contract(r, 200, c);
}

int api_contract_delete(Request *r) {
        return request_resource_delete(r, &contract_resource, "A task of this contract is running; cancel it first.");
}

typedef struct PhaseChange {
        ContractPhase phase;
        int64_t version;
} PhaseChange;

int api_contract_phase(Request *r) {
        static const JsonDispatchField table[] = {
                { "phase",   json_dispatch_contract_phase, offsetof(PhaseChange, phase),   JSON_MANDATORY },
                { "version", json_dispatch_int64,          offsetof(PhaseChange, version), 0              },
                {}
        };
        PhaseChange p = { .phase = _PHASE_INVALID, .version = -1 };
        _cleanup_(contract_freep) Contract *c = NULL;
        _cleanup_free_ char *payload = NULL;
        Event event = { .type = (char *) "phase" };
        int k;

        k = request_dispatch_body(r, table, &p);
        if (k < 0)
                return k;
        k = request_check_body_version(r, p.version);
        if (k < 0)
                return k;

        k = request_resource_load_at(r, &contract_resource, p.version, (void **) &c);
        if (k < 0)
                return k;

        if (contract_status_is_final(c->status))
                return request_reply_error(r, 409, "invalid_transition", "The contract is %s; its phase cannot change.",
                                           contract_status_to_string(c->status));
        if (!contract_phase_transition_allowed(c->type, c->phase, p.phase))
                return request_reply_error(r, 409, "invalid_transition",
                                           "A contract of type '%s' cannot go from phase '%s' to '%s'.",
                                           contract_type_to_string(c->type), contract_phase_to_string(c->phase),
                                           contract_phase_to_string(p.phase));

        k = api_transition_payload(contract_phase_to_string(c->phase), contract_phase_to_string(p.phase), &payload);
        if (k < 0)
                return k;
        event.payload = payload;
        event.object_id = c->id;
        c->phase = p.phase;

        k = store_contract_update(r->manager->store, c, &event);
        if (k < 0)
                return request_reply_store_error(r, k, "contract", NULL);
        return reply_contract(r, 200, c);
}

int api_contract_events(Request *r) {
        _cleanup_(contract_freep) Contract *c = NULL;
        int k;

        k = contract_load(r, &c);
        if (k < 0)
                return k;
        return api_reply_events(r, EVENT_LOG_CONTRACT, c->id);
}
