/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests of the circuit breaker: each trip with its reason, what resets the
 * streaks, the effective maximum and its hard cap, resuming and restoring,
 * and which trip is reported when several hold at once. */

#include <math.h>

#include "circuit-breaker.h"
#include "tests.h"

/* A gate whose blockers are the given words (none: no arguments but NULL). */
#define GATE(...) (&(CompletionGate) { .blockers = (char *[]) { __VA_ARGS__, NULL } })

/* Records an iteration that must not trip; the outputs stay untouched. */
static void record_ok(CircuitBreaker *b, const char *fp, const CompletionGate *g, double cost) {
        CircuitBreakerTrip trip = (CircuitBreakerTrip) 77;
        char *reason = (char *) "untouched";
        int r;

        r = circuit_breaker_record(b, fp, g, cost, &trip, &reason);
        if (r != 0) {
                fprintf(stderr, "iteration %u tripped (r=%d): %s\n", b->iterations, r, r > 0 ? reason : "-");
                abort();
        }
        assert_se(trip == (CircuitBreakerTrip) 77);
        assert_streq(reason, "untouched");
}

/* Records an iteration that must trip with this trip and reason. */
static void record_trip(CircuitBreaker *b, const char *fp, const CompletionGate *g, double cost,
                        CircuitBreakerTrip expected, const char *expected_reason) {
        _cleanup_free_ char *reason = NULL;
        CircuitBreakerTrip trip;

        assert_se(circuit_breaker_record(b, fp, g, cost, &trip, &reason) == 1);
        if (trip != expected) {
                fprintf(stderr, "tripped with %s, expected %s: %s\n", circuit_breaker_trip_to_string(trip),
                        circuit_breaker_trip_to_string(expected), reason);
                abort();
        }
        assert_streq(reason, expected_reason);
}

static void assert_check(const CircuitBreaker *b, int expected_r, CircuitBreakerTrip expected) {
        _cleanup_free_ char *reason = NULL;
        CircuitBreakerTrip trip = _CIRCUIT_BREAKER_TRIP_INVALID;

        assert_se(circuit_breaker_check(b, &trip, &reason) == expected_r);
        if (expected_r > 0) {
                assert_se(trip == expected);
                assert_se(reason);
        } else
                assert_se(!reason);
}

/* A fresh fingerprint for each call: an iteration that changed the worktree. */
static const char *changed(void) {
        static char buf[32];
        static unsigned n;

        (void) snprintf(buf, sizeof(buf), "commit%u:hash", ++n);
        return buf;
}

static void test_trip_table(void) {
        for (CircuitBreakerTrip t = 0; t < _CIRCUIT_BREAKER_TRIP_MAX; t++) {
                const char *s = circuit_breaker_trip_to_string(t);

                assert_se(s);
                assert_se(circuit_breaker_trip_from_string(s) == t);
        }
        assert_streq(circuit_breaker_trip_to_string(CIRCUIT_BREAKER_NO_PROGRESS), "no_progress");
        assert_se(!circuit_breaker_trip_to_string(_CIRCUIT_BREAKER_TRIP_MAX));
        assert_se(!circuit_breaker_trip_to_string(_CIRCUIT_BREAKER_TRIP_INVALID));
        assert_se(circuit_breaker_trip_from_string("nope") == _CIRCUIT_BREAKER_TRIP_INVALID);
        assert_se(circuit_breaker_trip_from_string(NULL) == _CIRCUIT_BREAKER_TRIP_INVALID);
}

static void test_effective_max(void) {
        CircuitBreakerConfig c = CIRCUIT_BREAKER_CONFIG_DEFAULT;
        CircuitBreaker b;

        circuit_breaker_init(&b, &c, 0, 0);
        assert_se(b.max_iterations == 10 && !b.capped);
        circuit_breaker_done(&b);

        circuit_breaker_init(&b, &c, 4, 0);
        assert_se(b.max_iterations == 4 && !b.capped);
        assert_se(circuit_breaker_set_max_iterations(&b, 50) == 50 && !b.capped);
        assert_se(circuit_breaker_set_max_iterations(&b, 51) == 50 && b.capped);
        assert_se(circuit_breaker_set_max_iterations(&b, 0) == 10 && !b.capped);
        circuit_breaker_done(&b);

        circuit_breaker_init(&b, &c, 80, 0);
        assert_se(b.max_iterations == 50 && b.capped);
        circuit_breaker_done(&b);

        /* a default above the hard limit is capped too */
        c.default_max_iterations = 70;
        circuit_breaker_init(&b, &c, 0, 0);
        assert_se(b.max_iterations == 50 && b.capped);
        circuit_breaker_done(&b);
}

static void test_iteration_limit(void) {
        CircuitBreakerConfig c = CIRCUIT_BREAKER_CONFIG_DEFAULT;
        CircuitBreaker b;

        circuit_breaker_init(&b, &c, 4, 0);
        assert_se(circuit_breaker_set_fingerprint(&b, "start") == 0);
        for (unsigned i = 1; i < 4; i++)
                record_ok(&b, changed(), GATE("blocker %u"), 0);
        record_trip(&b, changed(), NULL, 0, CIRCUIT_BREAKER_ITERATION_LIMIT,
                    "reached the iteration limit of 4 (resume with a higher --max-iterations)");
        assert_se(b.iterations == 4);

        /* resumed with a higher limit, the count goes on */
        assert_se(circuit_breaker_set_max_iterations(&b, 6) == 6);
        assert_check(&b, 0, 0);
        record_ok(&b, changed(), NULL, 0);
        record_trip(&b, changed(), NULL, 0, CIRCUIT_BREAKER_ITERATION_LIMIT,
                    "reached the iteration limit of 6 (resume with a higher --max-iterations)");
        circuit_breaker_done(&b);

        /* the hard limit caps a larger task maximum */
        c.hard_limit = 5;
        circuit_breaker_init(&b, &c, 8, 0);
        for (unsigned i = 1; i < 5; i++)
                record_ok(&b, changed(), NULL, 0);
        record_trip(&b, changed(), NULL, 0, CIRCUIT_BREAKER_ITERATION_LIMIT,
                    "reached the hard iteration limit of 5 ([AutonomousLoop] HardLimit=)");
        circuit_breaker_done(&b);

        /* … and the default maximum applies when the task has none */
        c = CIRCUIT_BREAKER_CONFIG_DEFAULT;
        circuit_breaker_init(&b, &c, 0, 0);
        for (unsigned i = 1; i < 10; i++)
                record_ok(&b, changed(), NULL, 0);
        record_trip(&b, changed(), NULL, 0, CIRCUIT_BREAKER_ITERATION_LIMIT,
                    "reached the iteration limit of 10 (resume with a higher --max-iterations)");
        circuit_breaker_done(&b);
}

static void test_no_progress(void) {
        CircuitBreakerConfig c = CIRCUIT_BREAKER_CONFIG_DEFAULT;
        CircuitBreaker b;

        /* The first iteration is measured against the starting worktree; a
         * gate with new words in it is not progress. */
        circuit_breaker_init(&b, &c, 0, 0);
        assert_se(circuit_breaker_set_fingerprint(&b, "base:0") == 0);
        record_ok(&b, "base:0", &(CompletionGate) { .reason = (char *) "thinking" }, 0);
        record_ok(&b, "base:0", &(CompletionGate) { .reason = (char *) "thinking harder" }, 0);
        assert_se(b.no_progress == 2);
        record_trip(&b, "base:0", NULL, 0, CIRCUIT_BREAKER_NO_PROGRESS,
                    "no progress in 3 consecutive iterations (the worktree did not change)");
        circuit_breaker_done(&b);

        /* Progress resets the streak: only three in a row trip. */
        circuit_breaker_init(&b, &c, 0, 0);
        assert_se(circuit_breaker_set_fingerprint(&b, "A") == 0);
        record_ok(&b, "A", NULL, 0);
        record_ok(&b, "A", NULL, 0);
        record_ok(&b, "B", NULL, 0);            /* a commit, or a changed diff */
        assert_se(b.no_progress == 0);
        assert_streq(b.last_fingerprint, "B");
        record_ok(&b, "B", NULL, 0);
        record_ok(&b, "A", NULL, 0);            /* back to an earlier state is a change too */
        record_ok(&b, "A", NULL, 0);
        record_ok(&b, "A", NULL, 0);
        record_trip(&b, "A", NULL, 0, CIRCUIT_BREAKER_NO_PROGRESS,
                    "no progress in 3 consecutive iterations (the worktree did not change)");
        circuit_breaker_done(&b);

        /* Without a starting fingerprint the first one seen is progress; a
         * fingerprint that could not be taken is not. */
        circuit_breaker_init(&b, &c, 0, 0);
        record_ok(&b, "A", NULL, 0);
        assert_se(b.no_progress == 0);
        record_ok(&b, NULL, NULL, 0);
        record_ok(&b, NULL, NULL, 0);
        assert_streq(b.last_fingerprint, "A");
        record_trip(&b, "A", NULL, 0, CIRCUIT_BREAKER_NO_PROGRESS,
                    "no progress in 3 consecutive iterations (the worktree did not change)");
        circuit_breaker_done(&b);

        /* a threshold of 1 reads in the singular */
        c.no_change_threshold = 1;
        circuit_breaker_init(&b, &c, 0, 0);
        assert_se(circuit_breaker_set_fingerprint(&b, "A") == 0);
        record_trip(&b, "A", NULL, 0, CIRCUIT_BREAKER_NO_PROGRESS,
                    "no progress in 1 consecutive iteration (the worktree did not change)");
        circuit_breaker_done(&b);
}

static void test_same_blocker(void) {
        CircuitBreakerConfig c = CIRCUIT_BREAKER_CONFIG_DEFAULT;
        _cleanup_free_ char *long_blocker = NULL, *expected = NULL;
        CircuitBreaker b;

        /* The same first blocker five times trips, even while the worktree changes. */
        circuit_breaker_init(&b, &c, 0, 0);
        for (unsigned i = 1; i < 5; i++)
                record_ok(&b, changed(), GATE("make check fails", i % 2 ? "lint" : "docs"), 0);
        record_trip(&b, changed(), GATE("make check fails"), 0, CIRCUIT_BREAKER_SAME_BLOCKER,
                    "the same blocker 5 times in a row: make check fails");
        circuit_breaker_done(&b);

        /* Different blockers do not trip, however often each comes back. */
        circuit_breaker_init(&b, &c, 0, 0);
        for (unsigned i = 0; i < 9; i++)
                record_ok(&b, changed(), i % 2 ? GATE("a") : GATE("b"), 0);
        circuit_breaker_done(&b);

        /* A different blocker, or none, starts over. */
        circuit_breaker_init(&b, &c, 50, 0);
        for (unsigned i = 0; i < 4; i++)
                record_ok(&b, changed(), GATE("a"), 0);
        record_ok(&b, changed(), GATE("b"), 0);
        assert_se(b.same_blocker == 1);
        for (unsigned i = 0; i < 4; i++)
                record_ok(&b, changed(), GATE("a"), 0);
        record_ok(&b, changed(), NULL, 0);      /* no gate (or a malformed one) */
        assert_se(b.same_blocker == 0 && !b.last_blocker);
        record_ok(&b, changed(), GATE("a"), 0);
        record_ok(&b, changed(), GATE(NULL), 0);        /* a gate with no blockers */
        assert_se(b.same_blocker == 0);
        for (unsigned i = 0; i < 4; i++)
                record_ok(&b, changed(), GATE("a"), 0);
        /* a blocker differing only in case is a different blocker */
        record_ok(&b, changed(), GATE("A"), 0);
        circuit_breaker_done(&b);

        /* Only the first line of a long blocker, cut short, makes the reason. */
        long_blocker = malloc(400);
        assert_se(long_blocker);
        memset(long_blocker, 'x', 300);
        strcpy(long_blocker + 300, "\nsecond line");
        c.same_error_threshold = 2;
        circuit_breaker_init(&b, &c, 0, 0);
        record_ok(&b, changed(), GATE(long_blocker), 0);
        assert_se(asprintf(&expected, "the same blocker 2 times in a row: %.200s…", long_blocker) > 0);
        record_trip(&b, changed(), GATE(long_blocker), 0, CIRCUIT_BREAKER_SAME_BLOCKER, expected);
        circuit_breaker_done(&b);

        circuit_breaker_init(&b, &c, 0, 0);
        record_ok(&b, changed(), GATE("tests fail\nin CI"), 0);
        record_trip(&b, changed(), GATE("tests fail\nin CI"), 0, CIRCUIT_BREAKER_SAME_BLOCKER,
                    "the same blocker 2 times in a row: tests fail…");
        circuit_breaker_done(&b);
}

static void test_cost(void) {
        CircuitBreakerConfig c = CIRCUIT_BREAKER_CONFIG_DEFAULT;
        CircuitBreaker b;

        circuit_breaker_init(&b, &c, 0, 1.0);
        record_ok(&b, changed(), NULL, 0.5);
        record_ok(&b, changed(), NULL, 0.5);    /* reaching the limit is not exceeding it */
        record_ok(&b, changed(), NULL, -3);     /* a bogus cost is ignored */
        record_ok(&b, changed(), NULL, NAN);
        record_ok(&b, changed(), NULL, INFINITY);
        assert_se(b.cost_usd == 1.0);
        record_trip(&b, changed(), NULL, 0.23, CIRCUIT_BREAKER_COST_LIMIT, "cost $1.23 exceeded the limit of $1.00");
        circuit_breaker_done(&b);

        /* enough digits to tell the cost from its limit */
        circuit_breaker_init(&b, &c, 0, 1.0);
        record_trip(&b, changed(), NULL, 1.004, CIRCUIT_BREAKER_COST_LIMIT, "cost $1.004 exceeded the limit of $1.00");
        circuit_breaker_done(&b);

        /* a limit between whole cents is shown as it is, not rounded */
        circuit_breaker_init(&b, &c, 0, 0.015);
        record_ok(&b, changed(), NULL, 0.0123);
        record_trip(&b, changed(), NULL, 0.0123, CIRCUIT_BREAKER_COST_LIMIT, "cost $0.0246 exceeded the limit of $0.015");
        circuit_breaker_done(&b);

        /* no limit */
        circuit_breaker_init(&b, &c, 0, 0);
        record_ok(&b, changed(), NULL, 1e9);
        circuit_breaker_done(&b);
        circuit_breaker_init(&b, &c, 0, NAN);
        record_ok(&b, changed(), NULL, 1e9);
        circuit_breaker_done(&b);
}

static void test_order(void) {
        CircuitBreakerConfig c = {
                .default_max_iterations = 3,
                .hard_limit = 50,
                .no_change_threshold = 3,
                .same_error_threshold = 3,
        };
        CircuitBreaker b;

        /* All four hold at the third iteration: the same blocker is named. */
        circuit_breaker_init(&b, &c, 0, 0.1);
        assert_se(circuit_breaker_set_fingerprint(&b, "A") == 0);
        record_ok(&b, "A", GATE("stuck"), 0.05);
        record_ok(&b, "A", GATE("stuck"), 0.05);
        record_trip(&b, "A", GATE("stuck"), 0.05, CIRCUIT_BREAKER_SAME_BLOCKER,
                    "the same blocker 3 times in a row: stuck");
        circuit_breaker_done(&b);

        /* without the blocker: no progress */
        circuit_breaker_init(&b, &c, 0, 0.1);
        assert_se(circuit_breaker_set_fingerprint(&b, "A") == 0);
        record_ok(&b, "A", NULL, 0.05);
        record_ok(&b, "A", NULL, 0.05);
        record_trip(&b, "A", NULL, 0.05, CIRCUIT_BREAKER_NO_PROGRESS,
                    "no progress in 3 consecutive iterations (the worktree did not change)");
        circuit_breaker_done(&b);

        /* with progress too: the cost */
        circuit_breaker_init(&b, &c, 0, 0.1);
        record_ok(&b, changed(), NULL, 0.05);
        record_ok(&b, changed(), NULL, 0.05);
        record_trip(&b, changed(), NULL, 0.05, CIRCUIT_BREAKER_COST_LIMIT, "cost $0.15 exceeded the limit of $0.10");
        circuit_breaker_done(&b);

        /* and only then the iteration limit */
        circuit_breaker_init(&b, &c, 0, 0.1);
        record_ok(&b, changed(), NULL, 0.01);
        record_ok(&b, changed(), NULL, 0.01);
        record_trip(&b, changed(), NULL, 0.01, CIRCUIT_BREAKER_ITERATION_LIMIT,
                    "reached the iteration limit of 3 (resume with a higher --max-iterations)");
        circuit_breaker_done(&b);
}

static void test_restore(void) {
        CircuitBreakerConfig c = CIRCUIT_BREAKER_CONFIG_DEFAULT;
        CircuitBreaker b;

        /* A restarted worker continues the count and the spending. */
        circuit_breaker_init(&b, &c, 10, 2.0);
        assert_se(circuit_breaker_set_fingerprint(&b, "A") == 0);
        record_ok(&b, "A", GATE("x"), 0);
        record_ok(&b, "A", GATE("x"), 0);
        circuit_breaker_restore(&b, 9, 1.5);
        assert_se(b.iterations == 9 && b.cost_usd == 1.5);
        assert_se(b.no_progress == 0 && b.same_blocker == 0 && !b.last_blocker);
        assert_streq(b.last_fingerprint, "A");
        assert_check(&b, 0, 0);
        record_trip(&b, changed(), NULL, 0, CIRCUIT_BREAKER_ITERATION_LIMIT,
                    "reached the iteration limit of 10 (resume with a higher --max-iterations)");
        circuit_breaker_done(&b);

        /* A task restored at its limit trips before running again; so does one over budget. */
        circuit_breaker_init(&b, &c, 10, 2.0);
        circuit_breaker_restore(&b, 10, 0);
        assert_check(&b, 1, CIRCUIT_BREAKER_ITERATION_LIMIT);
        circuit_breaker_restore(&b, 3, 2.5);
        assert_check(&b, 1, CIRCUIT_BREAKER_COST_LIMIT);
        circuit_breaker_restore(&b, 3, NAN);
        assert_se(b.cost_usd == 0);
        assert_check(&b, 0, 0);
        /* the outputs may be NULL */
        circuit_breaker_restore(&b, 10, 0);
        assert_se(circuit_breaker_check(&b, NULL, NULL) == 1);
        assert_se(circuit_breaker_record(&b, "B", NULL, 0, NULL, NULL) == 1);
        circuit_breaker_done(&b);
        circuit_breaker_done(&b);       /* twice is harmless */
}

static void test_disabled(void) {
        CircuitBreakerConfig c = { 0 };
        CircuitBreaker b;

        /* every check off: nothing trips */
        circuit_breaker_init(&b, &c, 0, 0);
        assert_se(b.max_iterations == 0);
        for (unsigned i = 0; i < 100; i++)
                record_ok(&b, "same", GATE("same"), 1);
        circuit_breaker_done(&b);
}

int main(void) {
        test_trip_table();
        test_effective_max();
        test_iteration_limit();
        test_no_progress();
        test_same_blocker();
        test_cost();
        test_order();
        test_restore();
        test_disabled();
        return EXIT_SUCCESS;
}
