/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests of model.c: the string tables, the task and contract state machines
 * (each checked against a full matrix written out here as the spec), phase
 * order per contract type, and ids. */

#include "model.h"
#include "tests.h"

static void test_string_tables(void) {
        static const char *const states[_TASK_STATE_MAX] = {
                "pending", "running", "paused", "waiting", "done", "failed", "interrupted", "cancelled",
                "iteration_limit_reached", "merged",
        };
        static const char *const statuses[_CONTRACT_STATUS_MAX] = {
                "active", "paused", "completed", "failed", "cancelled",
        };
        static const char *const phases[_PHASE_MAX] = { "research", "specify", "plan", "execute", "review" };
        static const char *const types[_CONTRACT_TYPE_MAX] = { "spec", "simple", "execute" };
        static const char *const bad[] = { "", "bogus", "Pending", "RUNNING", " active", "review ", "spec\n" };

        for (int i = 0; i < _TASK_STATE_MAX; i++) {
                assert_se(streq(task_state_to_string(i), states[i]));
                assert_se(task_state_from_string(states[i]) == (TaskState) i);
        }
        for (int i = 0; i < _CONTRACT_STATUS_MAX; i++) {
                assert_se(streq(contract_status_to_string(i), statuses[i]));
                assert_se(contract_status_from_string(statuses[i]) == (ContractStatus) i);
        }
        for (int i = 0; i < _PHASE_MAX; i++) {
                assert_se(streq(contract_phase_to_string(i), phases[i]));
                assert_se(contract_phase_from_string(phases[i]) == (ContractPhase) i);
        }
        for (int i = 0; i < _CONTRACT_TYPE_MAX; i++) {
                assert_se(streq(contract_type_to_string(i), types[i]));
                assert_se(contract_type_from_string(types[i]) == (ContractType) i);
        }

        /* Out of range both ways. */
        assert_se(task_state_to_string(_TASK_STATE_MAX) == NULL);
        assert_se(task_state_to_string(_TASK_STATE_INVALID) == NULL);
        assert_se(task_state_to_string(-1) == NULL);
        assert_se(contract_status_to_string(_CONTRACT_STATUS_MAX) == NULL);
        assert_se(contract_status_to_string(_CONTRACT_STATUS_INVALID) == NULL);
        assert_se(contract_phase_to_string(_PHASE_MAX) == NULL);
        assert_se(contract_phase_to_string(_PHASE_INVALID) == NULL);
        assert_se(contract_type_to_string(_CONTRACT_TYPE_MAX) == NULL);
        assert_se(contract_type_to_string(_CONTRACT_TYPE_INVALID) == NULL);

        assert_se(task_state_from_string(NULL) == _TASK_STATE_INVALID);
        assert_se(contract_status_from_string(NULL) == _CONTRACT_STATUS_INVALID);
        assert_se(contract_phase_from_string(NULL) == _PHASE_INVALID);
        assert_se(contract_type_from_string(NULL) == _CONTRACT_TYPE_INVALID);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_se(task_state_from_string(bad[i]) == _TASK_STATE_INVALID);
                assert_se(contract_status_from_string(bad[i]) == _CONTRACT_STATUS_INVALID);
                assert_se(contract_phase_from_string(bad[i]) == _PHASE_INVALID);
                assert_se(contract_type_from_string(bad[i]) == _CONTRACT_TYPE_INVALID);
        }
        /* Names of one table are not accepted by another. */
        assert_se(task_state_from_string("active") == _TASK_STATE_INVALID);
        assert_se(contract_status_from_string("running") == _CONTRACT_STATUS_INVALID);
        assert_se(contract_phase_from_string("simple") == _PHASE_INVALID);
        assert_se(contract_type_from_string("plan") == _CONTRACT_TYPE_INVALID);
}

static void test_task_transitions(void) {
        /* The complete matrix: X = allowed. Rows are "from", columns are "to" in enum order:
         *                  pend run paus wait done fail intr canc ilim merg */
        static const char *const m[_TASK_STATE_MAX] = {
                [TASK_PENDING] = " .    X   .    .    .    X    .    X    .    . ",
                [TASK_RUNNING] = " X    .   X    X    X    X    X    X    X    . ",
                [TASK_PAUSED] = " X    X   .    .    .    X    .    X    .    . ",
                [TASK_WAITING] = " X    X   X    .    .    X    .    X    .    . ",
                [TASK_DONE] = " .    .   .    .    .    .    .    .    .    X ",
                [TASK_FAILED] = " X    .   .    .    .    .    .    .    .    . ",
                [TASK_INTERRUPTED] = " X    X   .    .    X    X    .    X    .    . ",
                [TASK_CANCELLED] = " .    .   .    .    .    .    .    .    .    . ",
                [TASK_ITERATION_LIMIT_REACHED] = " X    .   .    .    .    .    .    X    .    . ",
                [TASK_MERGED] = " .    .   .    .    .    .    .    .    .    . ",
        };
        unsigned allowed = 0;

        for (int from = 0; from < _TASK_STATE_MAX; from++) {
                const char *row = m[from];
                int to = 0;

                for (const char *p = row; *p; p++) {
                        if (*p != 'X' && *p != '.')
                                continue;
                        bool expect = *p == 'X';
                        if (task_state_transition_allowed(from, to) != expect) {
                                fprintf(stderr, "task %s → %s: expected %s\n", task_state_to_string(from),
                                        task_state_to_string(to), expect ? "allowed" : "refused");
                                abort();
                        }
                        allowed += expect;
                        to++;
                }
                assert_se(to == _TASK_STATE_MAX);
                /* Staying put is never a transition. */
                assert_se(!task_state_transition_allowed(from, from));
                assert_se(!task_state_transition_allowed(from, _TASK_STATE_MAX));
                assert_se(!task_state_transition_allowed(from, _TASK_STATE_INVALID));
                assert_se(!task_state_transition_allowed(_TASK_STATE_INVALID, from));
                assert_se(!task_state_transition_allowed(_TASK_STATE_MAX, from));
        }
        assert_se(allowed == 29);

        /* A few of the refusals spelled out, the ones a bug would most likely allow. */
        assert_se(!task_state_transition_allowed(TASK_DONE, TASK_RUNNING));
        assert_se(!task_state_transition_allowed(TASK_CANCELLED, TASK_PENDING));
        assert_se(!task_state_transition_allowed(TASK_MERGED, TASK_DONE));
        assert_se(!task_state_transition_allowed(TASK_PENDING, TASK_DONE));
        assert_se(!task_state_transition_allowed(TASK_FAILED, TASK_RUNNING));
        assert_se(!task_state_transition_allowed(TASK_ITERATION_LIMIT_REACHED, TASK_RUNNING));
}

static void test_task_predicates(void) {
        static const struct {
                TaskState s;
                bool final, active;
        } v[] = {
                { TASK_PENDING, false, false },
                { TASK_RUNNING, false, true },
                { TASK_PAUSED, false, true },
                { TASK_WAITING, false, true },
                { TASK_DONE, true, false },
                { TASK_FAILED, true, false },
                { TASK_INTERRUPTED, false, false },
                { TASK_CANCELLED, true, false },
                { TASK_ITERATION_LIMIT_REACHED, true, false },
                { TASK_MERGED, true, false },
        };

        assert_se(ELEMENTSOF(v) == _TASK_STATE_MAX);
        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                assert_se(task_state_is_final(v[i].s) == v[i].final);
                assert_se(task_state_is_active(v[i].s) == v[i].active);
                /* Nothing is both. */
                assert_se(!(task_state_is_final(v[i].s) && task_state_is_active(v[i].s)));
        }
        assert_se(!task_state_is_final(_TASK_STATE_INVALID));
        assert_se(!task_state_is_active(_TASK_STATE_INVALID));
        assert_se(!task_state_is_final(_TASK_STATE_MAX));
        assert_se(!task_state_is_active(_TASK_STATE_MAX));
}

static void test_contract_status(void) {
        /*                      actv paus comp fail canc */
        static const char *const m[_CONTRACT_STATUS_MAX] = {
                [CONTRACT_ACTIVE] = " .    X    X    X    X ",
                [CONTRACT_PAUSED] = " X    .    .    .    X ",
                [CONTRACT_COMPLETED] = " .    .    .    .    . ",
                [CONTRACT_FAILED] = " X    .    .    .    . ",
                [CONTRACT_CANCELLED] = " .    .    .    .    . ",
        };

        for (int from = 0; from < _CONTRACT_STATUS_MAX; from++) {
                int to = 0;

                for (const char *p = m[from]; *p; p++) {
                        if (*p != 'X' && *p != '.')
                                continue;
                        if (contract_status_transition_allowed(from, to) != (*p == 'X')) {
                                fprintf(stderr, "contract %s → %s: expected %s\n", contract_status_to_string(from),
                                        contract_status_to_string(to), *p == 'X' ? "allowed" : "refused");
                                abort();
                        }
                        to++;
                }
                assert_se(to == _CONTRACT_STATUS_MAX);
                assert_se(!contract_status_transition_allowed(from, _CONTRACT_STATUS_INVALID));
                assert_se(!contract_status_transition_allowed(_CONTRACT_STATUS_INVALID, from));
                assert_se(!contract_status_transition_allowed(from, _CONTRACT_STATUS_MAX));
        }

        assert_se(!contract_status_is_final(CONTRACT_ACTIVE));
        assert_se(!contract_status_is_final(CONTRACT_PAUSED));
        assert_se(contract_status_is_final(CONTRACT_COMPLETED));
        assert_se(!contract_status_is_final(CONTRACT_FAILED));        /* it may be reopened */
        assert_se(contract_status_is_final(CONTRACT_CANCELLED));
        assert_se(!contract_status_is_final(_CONTRACT_STATUS_INVALID));
}

static void test_phases(void) {
        static const struct {
                ContractType type;
                ContractPhase phases[_PHASE_MAX];
                size_t n;
        } types[] = {
                { CONTRACT_TYPE_SPEC, { PHASE_RESEARCH, PHASE_SPECIFY, PHASE_PLAN, PHASE_EXECUTE, PHASE_REVIEW }, 5 },
                { CONTRACT_TYPE_SIMPLE, { PHASE_PLAN, PHASE_EXECUTE, PHASE_REVIEW }, 3 },
                { CONTRACT_TYPE_EXECUTE, { PHASE_EXECUTE, PHASE_REVIEW }, 2 },
        };

        assert_se(ELEMENTSOF(types) == _CONTRACT_TYPE_MAX);
        for (size_t k = 0; k < ELEMENTSOF(types); k++) {
                ContractType t = types[k].type;
                const ContractPhase *p = NULL;
                int index[_PHASE_MAX];

                assert_se(contract_type_phases(t, &p) == types[k].n);
                assert_se(contract_type_phases(t, NULL) == types[k].n);
                assert_se(memcmp(p, types[k].phases, types[k].n * sizeof(ContractPhase)) == 0);
                assert_se(contract_type_first_phase(t) == types[k].phases[0]);

                for (int i = 0; i < _PHASE_MAX; i++)
                        index[i] = -1;
                for (size_t i = 0; i < types[k].n; i++)
                        index[types[k].phases[i]] = (int) i;

                /* Every pair: the next phase, or any earlier one; not staying, not skipping, not foreign. */
                for (int from = 0; from < _PHASE_MAX; from++)
                        for (int to = 0; to < _PHASE_MAX; to++) {
                                int a = index[from], b = index[to];
                                bool expect = a >= 0 && b >= 0 && (b == a + 1 || b < a);

                                if (contract_phase_transition_allowed(t, from, to) != expect) {
                                        fprintf(stderr, "%s: %s → %s: expected %s\n", contract_type_to_string(t),
                                                contract_phase_to_string(from), contract_phase_to_string(to),
                                                expect ? "allowed" : "refused");
                                        abort();
                                }
                        }
                assert_se(!contract_phase_transition_allowed(t, types[k].phases[0], _PHASE_INVALID));
                assert_se(!contract_phase_transition_allowed(t, _PHASE_INVALID, types[k].phases[0]));
        }

        /* The cases spelled out. */
        assert_se(contract_phase_transition_allowed(CONTRACT_TYPE_SPEC, PHASE_RESEARCH, PHASE_SPECIFY));
        assert_se(!contract_phase_transition_allowed(CONTRACT_TYPE_SPEC, PHASE_RESEARCH, PHASE_PLAN));
        assert_se(!contract_phase_transition_allowed(CONTRACT_TYPE_SPEC, PHASE_SPECIFY, PHASE_REVIEW));
        assert_se(contract_phase_transition_allowed(CONTRACT_TYPE_SPEC, PHASE_REVIEW, PHASE_RESEARCH));
        assert_se(contract_phase_transition_allowed(CONTRACT_TYPE_SPEC, PHASE_EXECUTE, PHASE_PLAN));
        assert_se(!contract_phase_transition_allowed(CONTRACT_TYPE_SPEC, PHASE_PLAN, PHASE_PLAN));
        assert_se(contract_phase_transition_allowed(CONTRACT_TYPE_SIMPLE, PHASE_PLAN, PHASE_EXECUTE));
        assert_se(!contract_phase_transition_allowed(CONTRACT_TYPE_SIMPLE, PHASE_PLAN, PHASE_REVIEW));
        assert_se(!contract_phase_transition_allowed(CONTRACT_TYPE_SIMPLE, PHASE_RESEARCH, PHASE_SPECIFY));
        assert_se(!contract_phase_transition_allowed(CONTRACT_TYPE_SIMPLE, PHASE_REVIEW, PHASE_RESEARCH));
        assert_se(contract_phase_transition_allowed(CONTRACT_TYPE_EXECUTE, PHASE_REVIEW, PHASE_EXECUTE));
        assert_se(!contract_phase_transition_allowed(CONTRACT_TYPE_EXECUTE, PHASE_EXECUTE, PHASE_PLAN));

        /* Unknown types have no phases. */
        assert_se(contract_type_phases(_CONTRACT_TYPE_INVALID, NULL) == 0);
        assert_se(contract_type_phases(_CONTRACT_TYPE_MAX, NULL) == 0);
        assert_se(contract_type_first_phase(_CONTRACT_TYPE_INVALID) == _PHASE_INVALID);
        assert_se(!contract_phase_transition_allowed(_CONTRACT_TYPE_INVALID, PHASE_PLAN, PHASE_EXECUTE));
}

static int compare_ids(const void *a, const void *b) {
        return strcmp(a, b);
}

static void test_ids(void) {
        enum { N = 10000 };
        char (*ids)[ID_STRING_MAX] = calloc(N, ID_STRING_MAX);

        assert_se(ids);
        for (size_t i = 0; i < N; i++) {
                const char *s = ids[i];

                assert_se(id_new(ids[i]) == 0);
                assert_se(strlen(s) == 36);
                assert_se(id_is_valid(s));
                /* RFC 9562: version 4, variant 10xx. */
                assert_se(s[14] == '4');
                assert_se(strchr("89ab", s[19]));
        }
        qsort(ids, N, ID_STRING_MAX, compare_ids);
        for (size_t i = 1; i < N; i++)
                assert_se(!streq(ids[i - 1], ids[i]));
        free(ids);

        assert_se(id_is_valid("00000000-0000-0000-0000-000000000000"));
        assert_se(id_is_valid("0b7f3c1e-2d4a-4f6b-8c9d-0e1f2a3b4c5d"));
        assert_se(!id_is_valid(NULL));
        assert_se(!id_is_valid(""));
        assert_se(!id_is_valid("0B7F3C1E-2D4A-4F6B-8C9D-0E1F2A3B4C5D"));      /* canonical form is lower case */
        assert_se(!id_is_valid("0b7f3c1e-2d4a-4f6b-8c9d-0e1f2a3b4c5"));
        assert_se(!id_is_valid("0b7f3c1e-2d4a-4f6b-8c9d-0e1f2a3b4c5d0"));
        assert_se(!id_is_valid("0b7f3c1e2d4a-4f6b-8c9d-0e1f2a3b4c5d0"));
        assert_se(!id_is_valid("0b7f3c1e-2d4a-4f6b-8c9d0-e1f2a3b4c5d"));
        assert_se(!id_is_valid("0b7f3c1g-2d4a-4f6b-8c9d-0e1f2a3b4c5d"));
        assert_se(!id_is_valid("0b7f3c1e_2d4a_4f6b_8c9d_0e1f2a3b4c5d"));
        assert_se(!id_is_valid("../../../../../../../../../etc/passwd"));
        assert_se(!id_is_valid("{0b7f3c1e-2d4a-4f6b-8c9d-0e1f2a3b4c}"));
}

static void test_records(void) {
        Task *t = task_new();
        Contract *c = contract_new();
        Event *e = calloc(1, sizeof(Event));
        Task **ta = calloc(2, sizeof(Task *));
        Contract **ca = calloc(1, sizeof(Contract *));
        Event *ea = calloc(2, sizeof(Event));
        usec_t n;

        assert_se(t && c && e && ta && ca && ea);
        assert_se(t->status == TASK_PENDING);
        assert_se(t->max_iterations == 0 && t->version == 0 && !t->name);
        assert_se(c->type == CONTRACT_TYPE_SPEC);
        assert_se(c->phase == PHASE_RESEARCH);
        assert_se(c->status == CONTRACT_ACTIVE);

        t->name = strdup("n");
        t->session_id = strdup("s");
        c->description = strdup("d");
        e->payload = strdup("{}");
        assert_se(task_free(t) == NULL);
        assert_se(contract_free(c) == NULL);
        assert_se(event_free(e) == NULL);
        assert_se(task_free(NULL) == NULL);
        assert_se(contract_free(NULL) == NULL);
        assert_se(event_free(NULL) == NULL);

        ta[0] = task_new();
        ta[1] = NULL;
        task_array_free(ta, 2);
        ca[0] = contract_new();
        contract_array_free(ca, 1);
        ea[1].type = strdup("status");
        event_array_free(ea, 2);
        task_array_free(NULL, 3);
        contract_array_free(NULL, 0);
        event_array_free(NULL, 0);

        /* Wall clock in µs, so surely after 2020 (and not in ms or ns). */
        n = now_usec();
        assert_se(n > UINT64_C(1577836800) * USEC_PER_SEC && n < UINT64_C(4102444800) * USEC_PER_SEC);
}

int main(void) {
        test_string_tables();
        test_task_transitions();
        test_task_predicates();
        test_contract_status();
        test_phases();
        test_ids();
        test_records();
        printf("test-model: ok\n");
        return EXIT_SUCCESS;
}
