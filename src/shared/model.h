/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The task and contract model: states, phases, contract types, their string
 * tables and the state machine that says which changes are allowed; and the
 * plain records (Task, Contract, Event) the store reads and writes. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

typedef enum TaskState {
        TASK_PENDING,
        TASK_RUNNING,
        TASK_PAUSED,
        TASK_WAITING,                   /* rate limited: waits, then continues the same session */
        TASK_DONE,
        TASK_FAILED,
        TASK_INTERRUPTED,
        TASK_CANCELLED,
        TASK_ITERATION_LIMIT_REACHED,
        TASK_MERGED,
        _TASK_STATE_MAX,
        _TASK_STATE_INVALID = -EINVAL,
} TaskState;

typedef enum ContractStatus {
        CONTRACT_ACTIVE,
        CONTRACT_PAUSED,
        CONTRACT_COMPLETED,
        CONTRACT_FAILED,
        CONTRACT_CANCELLED,
        _CONTRACT_STATUS_MAX,
        _CONTRACT_STATUS_INVALID = -EINVAL,
} ContractStatus;

typedef enum ContractPhase {
        PHASE_RESEARCH,
        PHASE_SPECIFY,
        PHASE_PLAN,
        PHASE_EXECUTE,
        PHASE_REVIEW,
        _PHASE_MAX,
        _PHASE_INVALID = -EINVAL,
} ContractPhase;

/* A contract type is an ordered list of phases. */
typedef enum ContractType {
        CONTRACT_TYPE_SPEC,             /* research → specify → plan → execute → review (default) */
        CONTRACT_TYPE_SIMPLE,           /* plan → execute → review */
        CONTRACT_TYPE_EXECUTE,          /* execute → review */
        _CONTRACT_TYPE_MAX,
        _CONTRACT_TYPE_INVALID = -EINVAL,
} ContractType;

const char *task_state_to_string(TaskState s) _pure_;
TaskState task_state_from_string(const char *s) _pure_;
const char *contract_status_to_string(ContractStatus s) _pure_;
ContractStatus contract_status_from_string(const char *s) _pure_;
const char *contract_phase_to_string(ContractPhase p) _pure_;
ContractPhase contract_phase_from_string(const char *s) _pure_;
const char *contract_type_to_string(ContractType t) _pure_;
ContractType contract_type_from_string(const char *s) _pure_;

/* True when a task in `from` may move to `to`. Staying in the same state is
 * not a transition and is refused. */
bool task_state_transition_allowed(TaskState from, TaskState to) _pure_;
/* done, failed, cancelled, iteration_limit_reached, merged: no agent runs. */
bool task_state_is_final(TaskState s) _pure_;
/* An agent process may exist: running, paused, waiting. */
bool task_state_is_active(TaskState s) _pure_;

bool contract_status_transition_allowed(ContractStatus from, ContractStatus to) _pure_;
bool contract_status_is_final(ContractStatus s) _pure_;

/* The type's phases in order; returns how many, writes them to ret (may be NULL). */
size_t contract_type_phases(ContractType t, const ContractPhase **ret);
ContractPhase contract_type_first_phase(ContractType t) _pure_;
/* The phase may be entered from `from` in a contract of type t: the next phase
 * of the type's list, or any earlier one (to revisit). Skipping ahead, staying,
 * or a phase not in the type's list is refused. */
bool contract_phase_transition_allowed(ContractType t, ContractPhase from, ContractPhase to) _pure_;

/* Row ids are random UUIDs in the canonical 36-character text form. */
#define ID_STRING_MAX 37
int id_new(char ret[static ID_STRING_MAX]);
bool id_is_valid(const char *s) _pure_;

typedef struct Task {
        char *id;
        char *owner;
        char *name;
        char *plan;
        char *repo;                     /* local path or git URL */
        char *base_branch;
        char *target_branch;
        char **copy_files;              /* untracked files (".env") copied into the worktree; NULL-terminated,
                                         * relative to the repository; NULL: none */
        char *parent_task_id;
        char *contract_id;
        bool is_supervisor;
        bool autonomous_loop;
        int max_iterations;             /* 0: the configured default */
        int iteration_count;
        TaskState status;
        char *error;
        char *worktree;
        char *branch;
        char *session_id;
        double cost_usd;
        double max_cost_usd;            /* the autonomous loop's budget; 0: none (the contract's, if any) */
        char *base_commit;              /* the commit the task's branch was made from (the worker's) */
        bool admin;                     /* made by an administrator: its repository needs no grant */
        int tasks_max;                  /* the agent's limits; 0: [Sandbox]'s */
        int64_t memory_max;
        int cpu_weight;
        usec_t created_at;              /* µs since the epoch, 0 = unset */
        usec_t updated_at;
        usec_t started_at;
        usec_t completed_at;
        int64_t version;                /* bumped by every write; a stale write is refused */
} Task;

typedef struct Contract {
        char *id;
        char *owner;
        char *name;
        char *description;
        ContractType type;
        ContractPhase phase;
        ContractStatus status;
        bool autonomous_loop;
        char *supervisor_task_id;
        double max_cost_usd;            /* the budget of each of its tasks that has none; 0: none */
        usec_t created_at;
        usec_t updated_at;
        int64_t version;
} Contract;

/* One entry of a task's or contract's event log. seq is gapless from 1 per owner row. */
typedef struct Event {
        char *object_id;                /* task or contract id */
        int64_t seq;
        char *type;                     /* "assistant", "tool_use", "phase", "status", … */
        char *payload;                  /* a JSON document as text */
        usec_t created_at;
} Event;

Task *task_new(void);
Task *task_free(Task *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Task *, task_free);
/* Frees an array of n tasks and the array. */
void task_array_free(Task **a, size_t n);

Contract *contract_new(void);
Contract *contract_free(Contract *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Contract *, contract_free);
void contract_array_free(Contract **a, size_t n);

Event *event_free(Event *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(Event *, event_free);
void event_array_free(Event *a, size_t n);  /* an array of structs, not pointers */

usec_t now_usec(void);
