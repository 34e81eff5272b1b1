/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* /api/v1/tasks: create, list, read, change and delete tasks, and read their
 * event logs. Status changes follow the task state machine and are written
 * together with a "status" event; the status of a task a worker holds is the
 * worker's (see api-task-control.c). A task queued here wakes the workers
 * through the bus. */

#include <inttypes.h>

#include "api-bus.h"
#include "api-http.h"
#include "api-manager.h"
#include "conf.h"
#include "json-util.h"
#include "log.h"

#define NAME_MAX_BYTES 256
#define NAME_FROM_PLAN_BYTES 80
#define COPY_FILES_MAX 100
#define COPY_FILE_MAX_BYTES 4096

DEFINE_RESOURCE(task, Task, "task", "/api/v1/tasks");

static int task_item_json(const void *items, size_t i, json_object **ret) {
        return task_to_json(((Task *const *) items)[i], ret);
}

int api_task_load(Request *r, Task **ret) {
        return request_resource_load(r, &task_resource, (void **) ret);
}

static int reply_task(Request *r, unsigned status, const Task *t) {
        return request_resource_reply(r, &task_resource, status, t);
}

/* The first line of the plan that has text, trimmed, cut to at most
 * NAME_FROM_PLAN_BYTES without splitting a UTF-8 sequence. */
static char *name_from_plan(const char *plan) {
        const char *p = plan + strspn(plan, " \t\r\n");
        size_t n = strcspn(p, "\r\n");

        while (n > 0 && strchr(" \t", p[n - 1]))
                n--;
        if (n > NAME_FROM_PLAN_BYTES) {
                n = NAME_FROM_PLAN_BYTES;
                while (n > 0 && ((unsigned char) p[n] & 0xc0) == 0x80)
                        n--;
        }
        return strndup(p, n);
}

static bool text_is_plain(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < ' ' || *s == 0x7f)
                        return false;
        return true;
}

/* What is wrong with a copy_files entry, or NULL. The worker's
 * git_worktree_prepare() takes only paths inside the repository whose every
 * component is a real name; refusing the others here says so to the client
 * instead of failing the task later. */
static const char *copy_file_problem(const char *path) {
        if (isempty(path))
                return "must not be empty";
        if (path[0] == '/')
                return "is absolute; expected a path relative to the repository";
        for (const char *c = path; *c;) {
                size_t n = strcspn(c, "/");

                if (n == 2 && strneq(c, "..", 2))
                        return "leads out of the repository ('..')";
                if (n == 0 || (n == 1 && c[0] == '.'))
                        return "has an empty or '.' component";
                c += n;
                if (*c == '/' && *++c == '\0')
                        return "ends with '/'";
        }
        return NULL;
}

/* Checked on the body itself, before it is dispatched, so that the answer
 * names the entry at fault whatever it is. */
static int task_check_copy_files(Request *r) {
        json_object *a;
        size_t n;

        if (!json_object_object_get_ex(r->body, "copy_files", &a) || !a)
                return 0;
        if (!json_object_is_type(a, json_type_array))
                return request_reply_field(r, "copy_files", "expected an array of paths or null"), -EINVAL;
        n = json_object_array_length(a);
        if (n > COPY_FILES_MAX)
                return request_reply_field(r, "copy_files", "expected at most %d paths, not %zu", COPY_FILES_MAX, n),
                       -EINVAL;
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(a, i);
                const char *problem;
                size_t len;

                if (!json_object_is_type(e, json_type_string))
                        return request_reply_field(r, "copy_files", "entry %zu: expected a string, not %s", i,
                                                   json_type_to_name(json_object_get_type(e))), -EINVAL;
                /* These two are not quoted: too long to read, or cut short by the NUL. */
                len = (size_t) json_object_get_string_len(e);
                if (len > COPY_FILE_MAX_BYTES)
                        return request_reply_field(r, "copy_files", "entry %zu is longer than %d bytes", i,
                                                   COPY_FILE_MAX_BYTES), -EINVAL;
                if (strlen(json_object_get_string(e)) != len)
                        return request_reply_field(r, "copy_files", "entry %zu contains NUL", i), -EINVAL;
                problem = copy_file_problem(json_object_get_string(e));
                if (problem)
                        return request_reply_field(r, "copy_files", "entry %zu '%s' %s", i,
                                                   json_object_get_string(e), problem), -EINVAL;
        }
        return 0;
}

int api_tasks_list(Request *r) {
        TaskFilter f = { .status = -1 };
        Task **tasks = NULL;
        const char *s;
        size_t n = 0;
        int k;

        k = request_query_page(r, &f.limit, &f.offset);
        if (k < 0)
                return k;
        s = request_query(r, "status");
        if (s) {
                f.status = task_state_from_string(s);
                if (f.status < 0)
                        return request_reply_error(r, 400, "invalid_parameter", "query parameter 'status': no task status '%s'", s);
        }
        f.contract_id = request_query(r, "contract");
        if (f.contract_id && !id_is_valid(f.contract_id))
                return request_reply_error(r, 400, "invalid_parameter", "query parameter 'contract': expected a contract id");
        f.parent_task_id = request_query(r, "parent");
        if (f.parent_task_id && !id_is_valid(f.parent_task_id))
                return request_reply_error(r, 400, "invalid_parameter", "query parameter 'parent': expected a task id");
        if (!r->admin)
                f.owner = r->owner;

        k = store_task_list(r->manager->store, &f, &tasks, &n);
        if (k < 0)
                return request_reply_store_error(r, k, "tasks", NULL);

        k = request_reply_list(r, "tasks", tasks, n, task_item_json);
        task_array_free(tasks, n);
        return k;
}

typedef struct TaskCreate {
        char *owner;
        char *name;
        char *plan;
        char *repo;
        char *base_branch;
        char *target_branch;
        char **copy_files;
        char *parent_task_id;
        char *contract_id;
        bool is_supervisor;
        bool autonomous_loop;
        int max_iterations;
        double max_cost_usd;
        int tasks_max;
        int64_t memory_max;
        int cpu_weight;
} TaskCreate;

static void task_create_done(TaskCreate *c) {
        free(c->owner);
        free(c->name);
        free(c->plan);
        free(c->repo);
        free(c->base_branch);
        free(c->target_branch);
        strv_free(c->copy_files);
        free(c->parent_task_id);
        free(c->contract_id);
}

/* Checks the fields that do not need the store. */
static int task_check_fields(Request *r, const char *name, const char *plan, const char *base_branch,
                             const char *target_branch, int max_iterations, double max_cost_usd) {
        unsigned hard_limit = r->manager->config->loop_hard_limit;

        if (request_has_field(r, "name") && (isempty(name) || strlen(name) > NAME_MAX_BYTES))
                return request_reply_field(r, "name", "expected 1 to %d bytes", NAME_MAX_BYTES), -EINVAL;
        if (request_has_field(r, "plan") && isempty(plan + strspn(plan, " \t\r\n")))
                return request_reply_field(r, "plan", "must not be empty"), -EINVAL;
        if (base_branch && !api_ref_name_is_valid(base_branch))
                return request_reply_field(r, "base_branch", "not a valid branch name"), -EINVAL;
        if (target_branch && !api_ref_name_is_valid(target_branch))
                return request_reply_field(r, "target_branch", "not a valid branch name"), -EINVAL;
        if (request_has_field(r, "max_iterations") && (unsigned) max_iterations > hard_limit)
                return request_reply_field(r, "max_iterations", "must be at most %u (the configured hard limit)", hard_limit), -EINVAL;
        if (request_has_field(r, "max_cost_usd"))
                return api_check_cost_limit(r, max_cost_usd);
        return 0;
}

/* The agent's limits: within what the kernel takes, and for an owner who is
 * no administrator not above the configuration's (the machine is shared). */
static int task_check_limits(Request *r, int tasks_max, int64_t memory_max, int cpu_weight) {
        const Config *c = r->manager->config;

        if (request_has_field(r, "tasks_max") && tasks_max != 0) {
                if (tasks_max < 1 || tasks_max > 4194304)
                        return request_reply_field(r, "tasks_max", "expected 1 to 4194304"), -EINVAL;
                if (!r->admin && (unsigned) tasks_max > c->sandbox_tasks_max)
                        return request_reply_field(r, "tasks_max", "at most %u ([Sandbox] TasksMax=) for an owner",
                                                   c->sandbox_tasks_max), -EINVAL;
        }
        if (request_has_field(r, "memory_max") && memory_max != 0) {
                if (memory_max < (INT64_C(1) << 20) || memory_max > (INT64_C(1) << 50))
                        return request_reply_field(r, "memory_max", "expected 1 MiB to 1 PiB, in bytes"), -EINVAL;
                if (!r->admin && (uint64_t) memory_max > c->sandbox_memory_max)
                        return request_reply_field(r, "memory_max",
                                                   "at most %" PRIu64 " bytes ([Sandbox] MemoryMax=) for an owner",
                                                   c->sandbox_memory_max), -EINVAL;
        }
        if (request_has_field(r, "cpu_weight") && cpu_weight != 0) {
                if (cpu_weight < 1 || cpu_weight > 10000)
                        return request_reply_field(r, "cpu_weight", "expected 1 to 10000"), -EINVAL;
                if (!r->admin && (unsigned) cpu_weight > c->sandbox_cpu_weight)
                        return request_reply_field(r, "cpu_weight", "at most %u ([Sandbox] CPUWeight=) for an owner",
                                                   c->sandbox_cpu_weight), -EINVAL;
        }
        return 0;
}

int api_tasks_create(Request *r) {
        static const JsonDispatchField table[] = {
                { "owner",           json_dispatch_string, offsetof(TaskCreate, owner),           0              },
                { "name",            json_dispatch_string, offsetof(TaskCreate, name),            0              },
                { "plan",            json_dispatch_string, offsetof(TaskCreate, plan),            JSON_MANDATORY },
                { "repo",            json_dispatch_string, offsetof(TaskCreate, repo),            JSON_NULLABLE  },
                { "base_branch",     json_dispatch_string, offsetof(TaskCreate, base_branch),     JSON_NULLABLE  },
                { "target_branch",   json_dispatch_string, offsetof(TaskCreate, target_branch),   JSON_NULLABLE  },
                { "copy_files",      json_dispatch_strv,   offsetof(TaskCreate, copy_files),      JSON_NULLABLE  },
                { "parent_task_id",  json_dispatch_string, offsetof(TaskCreate, parent_task_id),  JSON_NULLABLE  },
                { "contract_id",     json_dispatch_string, offsetof(TaskCreate, contract_id),     JSON_NULLABLE  },
                { "is_supervisor",   json_dispatch_bool,   offsetof(TaskCreate, is_supervisor),   0              },
                { "autonomous_loop", json_dispatch_bool,   offsetof(TaskCreate, autonomous_loop), 0              },
                { "max_iterations",  json_dispatch_uint,   offsetof(TaskCreate, max_iterations),  0              },
                { "max_cost_usd",    json_dispatch_double, offsetof(TaskCreate, max_cost_usd),    JSON_NULLABLE  },
                { "tasks_max",       json_dispatch_uint,   offsetof(TaskCreate, tasks_max),       JSON_NULLABLE  },
                { "memory_max",      json_dispatch_int64,  offsetof(TaskCreate, memory_max),      JSON_NULLABLE  },
                { "cpu_weight",      json_dispatch_uint,   offsetof(TaskCreate, cpu_weight),      JSON_NULLABLE  },
                {}
        };
        _cleanup_(task_create_done) TaskCreate p = {};
        _cleanup_(contract_freep) Contract *contract = NULL;
        _cleanup_(task_freep) Task *parent = NULL, *t = NULL;
        const char *owner;
        int k;

        k = task_check_copy_files(r);
        if (k < 0)
                return k;
        k = request_dispatch_body(r, table, &p);
        if (k < 0)
                return k;
        k = task_check_fields(r, p.name, p.plan, p.base_branch, p.target_branch, p.max_iterations, p.max_cost_usd);
        if (k < 0)
                return k;
        if (p.repo && (isempty(p.repo) || p.repo[0] == '-' || !text_is_plain(p.repo)))
                return request_reply_field(r, "repo", "expected a path or git URL");
        k = task_check_limits(r, p.tasks_max, p.memory_max, p.cpu_weight);
        if (k < 0)
                return k;
        k = request_new_owner(r, p.owner, &owner);
        if (k < 0)
                return k;

        /* Referenced objects must exist and be the caller's to see; a task
         * belongs to the owner of its contract or parent. */
        if (p.contract_id) {
                k = id_is_valid(p.contract_id) ? store_contract_get(r->manager->store, p.contract_id, &contract) : -ENOENT;
                k = request_check_reference(r, k, contract ? contract->owner : NULL, "contract_id", "contract");
                if (k < 0)
                        return k;
                if (contract_status_is_final(contract->status))
                        return request_reply_field(r, "contract_id", "the contract is %s",
                                                   contract_status_to_string(contract->status));
                if (p.owner && !streq(p.owner, contract->owner))
                        return request_reply_field(r, "owner", "the contract belongs to another owner");
                owner = contract->owner;
        }
        if (p.parent_task_id) {
                k = id_is_valid(p.parent_task_id) ? store_task_get(r->manager->store, p.parent_task_id, &parent) : -ENOENT;
                k = request_check_reference(r, k, parent ? parent->owner : NULL, "parent_task_id", "task");
                if (k < 0)
                        return k;
                if ((p.owner || contract) && !streq(owner, parent->owner))
                        return request_reply_field(r, "parent_task_id", "the task belongs to another owner");
                owner = parent->owner;
        }

        t = task_new();
        if (!t || !(t->owner = strdup(owner)))
                return -ENOMEM;
        t->name = p.name ? TAKE_PTR(p.name) : name_from_plan(p.plan);
        if (!t->name)
                return -ENOMEM;
        t->plan = TAKE_PTR(p.plan);
        t->repo = TAKE_PTR(p.repo);
        t->base_branch = TAKE_PTR(p.base_branch);
        t->target_branch = TAKE_PTR(p.target_branch);
        t->copy_files = TAKE_PTR(p.copy_files);
        t->parent_task_id = TAKE_PTR(p.parent_task_id);
        t->contract_id = TAKE_PTR(p.contract_id);
        t->is_supervisor = p.is_supervisor;
        t->autonomous_loop = request_has_field(r, "autonomous_loop") ? p.autonomous_loop : contract && contract->autonomous_loop;
        t->max_iterations = p.max_iterations;
        t->max_cost_usd = p.max_cost_usd;
        t->tasks_max = p.tasks_max;
        t->memory_max = p.memory_max;
        t->cpu_weight = p.cpu_weight;
        /* Its repository needs no grant: checked now, for the owner it goes to. */
        t->admin = r->admin;
        k = api_repo_check(r, owner, t->repo);
        if (k < 0)
                return k;
        t->status = TASK_PENDING;

        k = store_task_insert(r->manager->store, t);
        if (k < 0)
                return request_reply_store_error(r, k, "task", NULL);
        log_debug("Task %s created for %s.", t->id, t->owner);
        bus_emit_task_queued(r->manager, t->id);
        return reply_task(r, 201, t);
}

int api_task_get(Request *r) {
        return request_resource_get(r, &task_resource);
}

typedef struct TaskPatch {
        char *name;
        char *plan;
        char *base_branch;
        char *target_branch;
        char **copy_files;
        bool autonomous_loop;
        int max_iterations;
        double max_cost_usd;
        TaskState status;
        char *error;
        int64_t version;
} TaskPatch;

static void task_patch_done(TaskPatch *p) {
        free(p->name);
        free(p->plan);
        free(p->base_branch);
        free(p->target_branch);
        strv_free(p->copy_files);
        free(p->error);
}

static void replace(char **field, char **value) {
        free(*field);
        *field = TAKE_PTR(*value);
}

int api_task_patch(Request *r) {
        static const JsonDispatchField table[] = {
                { "name",            json_dispatch_string,     offsetof(TaskPatch, name),            0             },
                { "plan",            json_dispatch_string,     offsetof(TaskPatch, plan),            0             },
                { "base_branch",     json_dispatch_string,     offsetof(TaskPatch, base_branch),     JSON_NULLABLE },
                { "target_branch",   json_dispatch_string,     offsetof(TaskPatch, target_branch),   JSON_NULLABLE },
                { "copy_files",      json_dispatch_strv,       offsetof(TaskPatch, copy_files),      JSON_NULLABLE },
                { "autonomous_loop", json_dispatch_bool,       offsetof(TaskPatch, autonomous_loop), 0             },
                { "max_iterations",  json_dispatch_uint,       offsetof(TaskPatch, max_iterations),  0             },
                { "max_cost_usd",    json_dispatch_double,     offsetof(TaskPatch, max_cost_usd),    JSON_NULLABLE },
                { "status",          json_dispatch_task_state, offsetof(TaskPatch, status),          0             },
                { "error",           json_dispatch_string,     offsetof(TaskPatch, error),           JSON_NULLABLE },
                { "version",         json_dispatch_int64,      offsetof(TaskPatch, version),         0             },
                {}
        };
        _cleanup_(task_patch_done) TaskPatch p = { .status = _TASK_STATE_INVALID, .version = -1 };
        _cleanup_(task_freep) Task *t = NULL;
        _cleanup_free_ char *payload = NULL;
        /* Its object_id, set below, is borrowed: the store then makes no copy for us to free. */
        Event event = { .type = (char *) "status" };
        TaskState from;
        int k;

        k = task_check_copy_files(r);
        if (k < 0)
                return k;
        k = request_dispatch_body(r, table, &p);
        if (k < 0)
                return k;
        k = request_check_body_version(r, p.version);
        if (k < 0)
                return k;
        k = task_check_fields(r, p.name, p.plan, p.base_branch, p.target_branch, p.max_iterations, p.max_cost_usd);
        if (k < 0)
                return k;

        k = request_resource_load_at(r, &task_resource, p.version, (void **) &t);
        if (k < 0)
                return k;

        from = t->status;
        /* The worker copies the files when it makes the worktree, at its
         * claim: later, a change would do nothing. */
        if (request_has_field(r, "copy_files") && from != TASK_PENDING)
                return request_reply_error(r, 409, "not_pending",
                                           "The task is %s; its copy_files can change only while it is pending.",
                                           task_state_to_string(from));
        if (p.status >= 0 && p.status != from) {
                /* A worker holds an active task and alone writes its status:
                 * the client asks it through a control request instead. */
                if (task_state_is_active(from))
                        return request_reply_error(r, 409, "task_active",
                                                   "The task is %s and its worker owns its status; use POST /api/v1/tasks/%s/cancel "
                                                   "(or pause, resume, interrupt).", task_state_to_string(from), t->id);
                if (task_state_is_active(p.status))
                        return request_reply_error(r, 409, "invalid_transition",
                                                   "Only a worker sets a task '%s'; set it 'pending' to queue it.",
                                                   task_state_to_string(p.status));
                if (!task_state_transition_allowed(from, p.status))
                        return request_reply_error(r, 409, "invalid_transition", "A task cannot go from status '%s' to '%s'.",
                                                   task_state_to_string(from), task_state_to_string(p.status));
                k = api_transition_payload(task_state_to_string(from), task_state_to_string(p.status), &payload);
                if (k < 0)
                        return k;
                event.payload = payload;
                event.object_id = t->id;
                t->status = p.status;
                if (task_state_is_final(p.status))
                        t->completed_at = now_usec();
        }
        if (p.name)
                replace(&t->name, &p.name);
        if (p.plan)
                replace(&t->plan, &p.plan);
        if (request_has_field(r, "base_branch"))
                replace(&t->base_branch, &p.base_branch);
        if (request_has_field(r, "target_branch"))
                replace(&t->target_branch, &p.target_branch);
        if (request_has_field(r, "copy_files")) {
                strv_free(t->copy_files);
                t->copy_files = TAKE_PTR(p.copy_files);
        }
        if (request_has_field(r, "error"))
                replace(&t->error, &p.error);
        if (request_has_field(r, "autonomous_loop"))
                t->autonomous_loop = p.autonomous_loop;
        if (request_has_field(r, "max_iterations"))
                t->max_iterations = p.max_iterations;
        if (request_has_field(r, "max_cost_usd"))
                t->max_cost_usd = p.max_cost_usd;

        /* Written at the version just read: a change made since is refused (-ESTALE). */
        k = store_task_update(r->manager->store, t, payload ? &event : NULL);
        if (k < 0)
                return request_reply_store_error(r, k, "task", NULL);
        if (payload && t->status == TASK_PENDING)
                bus_emit_task_queued(r->manager, t->id);
        return reply_task(r, 200, t);
}

int api_task_delete(Request *r) {
        return request_resource_delete(r, &task_resource, "The task is running; cancel it first.");
}

int api_task_events(Request *r) {
        _cleanup_(task_freep) Task *t = NULL;
        bool follow;
        int k;

        k = request_query_bool(r, "follow", false, &follow);
        if (k < 0)
                return k;
        k = api_task_load(r, &t);
        if (k < 0)
                return k;
        if (follow)
                return api_task_events_follow(r, t);
        return api_reply_events(r, EVENT_LOG_TASK, t->id);
}
