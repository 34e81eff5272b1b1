/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* String tables and the state machines for tasks and contracts, ids, and the
 * destructors of the plain records. */

#include <stdio.h>
#include <sys/random.h>
#include <time.h>

#include "conf.h"
#include "model.h"

static const char *const task_state_table[_TASK_STATE_MAX] = {
        [TASK_PENDING] = "pending",
        [TASK_RUNNING] = "running",
        [TASK_PAUSED] = "paused",
        [TASK_WAITING] = "waiting",
        [TASK_DONE] = "done",
        [TASK_FAILED] = "failed",
        [TASK_INTERRUPTED] = "interrupted",
        [TASK_CANCELLED] = "cancelled",
        [TASK_ITERATION_LIMIT_REACHED] = "iteration_limit_reached",
        [TASK_MERGED] = "merged",
};

static const char *const contract_status_table[_CONTRACT_STATUS_MAX] = {
        [CONTRACT_ACTIVE] = "active",
        [CONTRACT_PAUSED] = "paused",
        [CONTRACT_COMPLETED] = "completed",
        [CONTRACT_FAILED] = "failed",
        [CONTRACT_CANCELLED] = "cancelled",
};

static const char *const contract_phase_table[_PHASE_MAX] = {
        [PHASE_RESEARCH] = "research",
        [PHASE_SPECIFY] = "specify",
        [PHASE_PLAN] = "plan",
        [PHASE_EXECUTE] = "execute",
        [PHASE_REVIEW] = "review",
};

static const char *const contract_type_table[_CONTRACT_TYPE_MAX] = {
        [CONTRACT_TYPE_SPEC] = "spec",
        [CONTRACT_TYPE_SIMPLE] = "simple",
        [CONTRACT_TYPE_EXECUTE] = "execute",
};

static const char *table_to_string(const char *const *table, size_t n, int i) {
        if (i < 0 || (size_t) i >= n)
                return NULL;
        return table[i];
}

static int table_from_string(const char *const *table, size_t n, const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (table[i] && streq(table[i], s))
                        return (int) i;
        return -EINVAL;
}

#define DEFINE_STRING_TABLE(name, type, table)                                  \
        const char *name##_to_string(type i) {                                  \
                return table_to_string(table, ELEMENTSOF(table), (int) i);      \
        }                                                                       \
        type name##_from_string(const char *s) {                                \
                return (type) table_from_string(table, ELEMENTSOF(table), s);   \
        }

DEFINE_STRING_TABLE(task_state, TaskState, task_state_table);
DEFINE_STRING_TABLE(contract_status, ContractStatus, contract_status_table);
DEFINE_STRING_TABLE(contract_phase, ContractPhase, contract_phase_table);
DEFINE_STRING_TABLE(contract_type, ContractType, contract_type_table);

#define B(s) (1u << (s))

/* Allowed task transitions, one bit mask of target states per source state.
 *   pending     → running (claimed), failed (cannot even start), cancelled
 *   running     → every state an agent run can end in, paused, waiting,
 *                 and pending (its worker's lease expired and it was rescued)
 *   paused      → running (resumed), cancelled, failed, pending (rescued)
 *   waiting     → running (the rate limit reset), paused, cancelled, failed, pending
 *   interrupted → running (a message continues it), pending, done, failed, cancelled
 *   failed      → pending (retried)
 *   iteration_limit_reached → pending (resumed with a higher limit), cancelled
 *   done        → merged
 *   cancelled, merged: final. */
static const unsigned task_transitions[_TASK_STATE_MAX] = {
        [TASK_PENDING] = B(TASK_RUNNING) | B(TASK_FAILED) | B(TASK_CANCELLED),
        [TASK_RUNNING] = B(TASK_PAUSED) | B(TASK_WAITING) | B(TASK_DONE) | B(TASK_FAILED) | B(TASK_INTERRUPTED) |
                         B(TASK_CANCELLED) | B(TASK_ITERATION_LIMIT_REACHED) | B(TASK_PENDING),
        [TASK_PAUSED] = B(TASK_RUNNING) | B(TASK_CANCELLED) | B(TASK_FAILED) | B(TASK_PENDING),
        [TASK_WAITING] = B(TASK_RUNNING) | B(TASK_PAUSED) | B(TASK_CANCELLED) | B(TASK_FAILED) | B(TASK_PENDING),
        [TASK_INTERRUPTED] = B(TASK_RUNNING) | B(TASK_PENDING) | B(TASK_DONE) | B(TASK_FAILED) | B(TASK_CANCELLED),
        [TASK_FAILED] = B(TASK_PENDING),
        [TASK_ITERATION_LIMIT_REACHED] = B(TASK_PENDING) | B(TASK_CANCELLED),
        [TASK_DONE] = B(TASK_MERGED),
        [TASK_CANCELLED] = 0,
        [TASK_MERGED] = 0,
};

bool task_state_transition_allowed(TaskState from, TaskState to) {
        if (from < 0 || from >= _TASK_STATE_MAX || to < 0 || to >= _TASK_STATE_MAX)
                return false;
        return task_transitions[from] & B(to);
}

bool task_state_is_final(TaskState s) {
        return IN_SET(s, TASK_DONE, TASK_FAILED, TASK_CANCELLED, TASK_ITERATION_LIMIT_REACHED, TASK_MERGED);
}

bool task_state_is_active(TaskState s) {
        return IN_SET(s, TASK_RUNNING, TASK_PAUSED, TASK_WAITING);
}

/*   active    → paused, completed, failed, cancelled
 *   paused    → active, cancelled
 *   failed    → active (reopened)
 *   completed, cancelled: final. */
static const unsigned contract_transitions[_CONTRACT_STATUS_MAX] = {
        [CONTRACT_ACTIVE] = B(CONTRACT_PAUSED) | B(CONTRACT_COMPLETED) | B(CONTRACT_FAILED) | B(CONTRACT_CANCELLED),
        [CONTRACT_PAUSED] = B(CONTRACT_ACTIVE) | B(CONTRACT_CANCELLED),
        [CONTRACT_FAILED] = B(CONTRACT_ACTIVE),
        [CONTRACT_COMPLETED] = 0,
        [CONTRACT_CANCELLED] = 0,
};

bool contract_status_transition_allowed(ContractStatus from, ContractStatus to) {
        if (from < 0 || from >= _CONTRACT_STATUS_MAX || to < 0 || to >= _CONTRACT_STATUS_MAX)
                return false;
        return contract_transitions[from] & B(to);
}

bool contract_status_is_final(ContractStatus s) {
        return IN_SET(s, CONTRACT_COMPLETED, CONTRACT_CANCELLED);
}

static const ContractPhase phases_spec[] = { PHASE_RESEARCH, PHASE_SPECIFY, PHASE_PLAN, PHASE_EXECUTE, PHASE_REVIEW };
static const ContractPhase phases_simple[] = { PHASE_PLAN, PHASE_EXECUTE, PHASE_REVIEW };
static const ContractPhase phases_execute[] = { PHASE_EXECUTE, PHASE_REVIEW };

size_t contract_type_phases(ContractType t, const ContractPhase **ret) {
        const ContractPhase *p;
        size_t n;

        switch (t) {
        case CONTRACT_TYPE_SPEC:
                p = phases_spec, n = ELEMENTSOF(phases_spec);
                break;
        case CONTRACT_TYPE_SIMPLE:
                p = phases_simple, n = ELEMENTSOF(phases_simple);
                break;
        case CONTRACT_TYPE_EXECUTE:
                p = phases_execute, n = ELEMENTSOF(phases_execute);
                break;
        default:
                p = NULL, n = 0;
        }
        if (ret)
                *ret = p;
        return n;
}

ContractPhase contract_type_first_phase(ContractType t) {
        const ContractPhase *p;

        if (contract_type_phases(t, &p) == 0)
                return _PHASE_INVALID;
        return p[0];
}

static int phase_index(ContractType t, ContractPhase phase) {
        const ContractPhase *p;
        size_t n = contract_type_phases(t, &p);

        for (size_t i = 0; i < n; i++)
                if (p[i] == phase)
                        return (int) i;
        return -ENOENT;
}

bool contract_phase_transition_allowed(ContractType t, ContractPhase from, ContractPhase to) {
        int a = phase_index(t, from), b = phase_index(t, to);

        if (a < 0 || b < 0 || a == b)
                return false;
        return b == a + 1 || b < a;
}

int id_new(char ret[static ID_STRING_MAX]) {
        uint8_t b[16];
        ssize_t n;

        n = getrandom(b, sizeof(b), 0);
        if (n < 0)
                return -errno;
        if ((size_t) n != sizeof(b))
                return -EIO;
        /* RFC 9562 version 4, variant 10. */
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        snprintf(ret, ID_STRING_MAX,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
        return 0;
}

bool id_is_valid(const char *s) {
        if (!s || strlen(s) != ID_STRING_MAX - 1)
                return false;
        for (size_t i = 0; i < ID_STRING_MAX - 1; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return false;
                } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        }
        return true;
}

Task *task_new(void) {
        Task *t = calloc(1, sizeof(Task));
        if (!t)
                return NULL;
        t->status = TASK_PENDING;
        return t;
}

Task *task_free(Task *t) {
        if (!t)
                return NULL;
        free(t->id);
        free(t->owner);
        free(t->name);
        free(t->plan);
        free(t->repo);
        free(t->base_branch);
        free(t->target_branch);
        strv_free(t->copy_files);
        free(t->base_commit);
        free(t->parent_task_id);
        free(t->contract_id);
        free(t->error);
        free(t->worktree);
        free(t->branch);
        free(t->session_id);
        return mfree(t);
}

void task_array_free(Task **a, size_t n) {
        for (size_t i = 0; a && i < n; i++)
                task_free(a[i]);
        free(a);
}

Contract *contract_new(void) {
        Contract *c = calloc(1, sizeof(Contract));
        if (!c)
                return NULL;
        c->type = CONTRACT_TYPE_SPEC;
        c->phase = contract_type_first_phase(c->type);
        c->status = CONTRACT_ACTIVE;
        return c;
}

Contract *contract_free(Contract *c) {
        if (!c)
                return NULL;
        free(c->id);
        free(c->owner);
        free(c->name);
        free(c->description);
        free(c->supervisor_task_id);
        return mfree(c);
}

void contract_array_free(Contract **a, size_t n) {
        for (size_t i = 0; a && i < n; i++)
                contract_free(a[i]);
        free(a);
}

static void event_clear(Event *e) {
        free(e->object_id);
        free(e->type);
        free(e->payload);
}

Event *event_free(Event *e) {
        if (!e)
                return NULL;
        event_clear(e);
        return mfree(e);
}

void event_array_free(Event *a, size_t n) {
        for (size_t i = 0; a && i < n; i++)
                event_clear(a + i);
        free(a);
}

usec_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (usec_t) ts.tv_sec * USEC_PER_SEC + (usec_t) ts.tv_nsec / 1000;
}
