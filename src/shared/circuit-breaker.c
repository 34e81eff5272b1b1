/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The autonomous loop's circuit breaker: the counting after each iteration
 * and the trip checks with their reasons in words. */

#include <limits.h>
#include <math.h>

#include "circuit-breaker.h"

#define REASON_BLOCKER_MAX 200U         /* bytes of the blocker quoted in a reason */

static const char *const circuit_breaker_trip_table[_CIRCUIT_BREAKER_TRIP_MAX] = {
        [CIRCUIT_BREAKER_ITERATION_LIMIT] = "iteration_limit",
        [CIRCUIT_BREAKER_NO_PROGRESS] = "no_progress",
        [CIRCUIT_BREAKER_SAME_BLOCKER] = "same_blocker",
        [CIRCUIT_BREAKER_COST_LIMIT] = "cost_limit",
};

const char *circuit_breaker_trip_to_string(CircuitBreakerTrip t) {
        if (t < 0 || t >= _CIRCUIT_BREAKER_TRIP_MAX)
                return NULL;
        return circuit_breaker_trip_table[t];
}

CircuitBreakerTrip circuit_breaker_trip_from_string(const char *s) {
        if (!s)
                return _CIRCUIT_BREAKER_TRIP_INVALID;
        for (CircuitBreakerTrip t = 0; t < _CIRCUIT_BREAKER_TRIP_MAX; t++)
                if (streq(circuit_breaker_trip_table[t], s))
                        return t;
        return _CIRCUIT_BREAKER_TRIP_INVALID;
}

static bool cost_limited(const CircuitBreaker *b) {
        return isfinite(b->max_cost_usd) && b->max_cost_usd > 0;
}

unsigned circuit_breaker_set_max_iterations(CircuitBreaker *b, unsigned task_max_iterations) {
        unsigned m = task_max_iterations > 0 ? task_max_iterations : b->config.default_max_iterations;

        b->capped = b->config.hard_limit > 0 && (m == 0 || m > b->config.hard_limit);
        if (b->capped)
                m = b->config.hard_limit;
        b->max_iterations = m;
        return m;
}

void circuit_breaker_init(CircuitBreaker *b, const CircuitBreakerConfig *c, unsigned task_max_iterations,
                          double max_cost_usd) {
        *b = (CircuitBreaker) {
                .config = *c,
                .max_cost_usd = max_cost_usd,
        };
        (void) circuit_breaker_set_max_iterations(b, task_max_iterations);
}

void circuit_breaker_done(CircuitBreaker *b) {
        b->last_blocker = mfree(b->last_blocker);
        b->last_fingerprint = mfree(b->last_fingerprint);
}

int circuit_breaker_set_fingerprint(CircuitBreaker *b, const char *fingerprint) {
        return free_and_strdup(&b->last_fingerprint, fingerprint);
}

void circuit_breaker_restore(CircuitBreaker *b, unsigned iterations, double cost_usd) {
        b->iterations = iterations;
        b->cost_usd = isfinite(cost_usd) && cost_usd > 0 ? cost_usd : 0;
        b->no_progress = 0;
        b->same_blocker = 0;
        b->last_blocker = mfree(b->last_blocker);
}

/* "$1.23" for whole cents, "$0.015" for amounts between them (a limit of
 * $0.015 must not read "$0.01"). */
static void format_money(double x, char buf[static 32]) {
        double cents = x * 100;

        if (fabs(cents - round(cents)) < 1e-6)
                (void) snprintf(buf, 32, "$%.2f", x);
        else
                (void) snprintf(buf, 32, "$%.6g", x);
}

/* As format_money(), with more digits for both when a cost would look equal
 * to its limit ("cost $1.00 exceeded the limit of $1.00"). */
static void format_costs(double cost, double limit, char c[static 32], char l[static 32]) {
        format_money(cost, c);
        format_money(limit, l);
        if (streq(c, l)) {
                (void) snprintf(c, 32, "$%.6g", cost);
                (void) snprintf(l, 32, "$%.6g", limit);
        }
}

static int reason_same_blocker(const CircuitBreaker *b, char **ret) {
        const char *s = b->last_blocker;
        size_t n = strcspn(s, "\r\n"), cut = n;
        bool more = s[n] != '\0';
        char *m;

        if (cut > REASON_BLOCKER_MAX) {
                cut = REASON_BLOCKER_MAX;
                while (cut > 0 && ((unsigned char) s[cut] & 0xC0) == 0x80)
                        cut--;
                more = true;
        }
        if (asprintf(&m, "the same blocker %u times in a row: %.*s%s", b->same_blocker, (int) cut, s,
                     more ? "…" : "") < 0)
                return -ENOMEM;
        *ret = m;
        return 0;
}

int circuit_breaker_check(const CircuitBreaker *b, CircuitBreakerTrip *ret_trip, char **ret_reason) {
        _cleanup_free_ char *reason = NULL;
        CircuitBreakerTrip trip;
        int r;

        if (b->config.same_error_threshold > 0 && b->last_blocker &&
            b->same_blocker >= b->config.same_error_threshold) {
                trip = CIRCUIT_BREAKER_SAME_BLOCKER;
                r = reason_same_blocker(b, &reason);
        } else if (b->config.no_change_threshold > 0 && b->no_progress >= b->config.no_change_threshold) {
                trip = CIRCUIT_BREAKER_NO_PROGRESS;
                r = asprintf(&reason, "no progress in %u consecutive iteration%s (the worktree did not change)",
                             b->no_progress, b->no_progress == 1 ? "" : "s");
        } else if (cost_limited(b) && b->cost_usd > b->max_cost_usd) {
                char c[32], l[32];

                trip = CIRCUIT_BREAKER_COST_LIMIT;
                format_costs(b->cost_usd, b->max_cost_usd, c, l);
                r = asprintf(&reason, "cost %s exceeded the limit of %s", c, l);
        } else if (b->max_iterations > 0 && b->iterations >= b->max_iterations) {
                trip = CIRCUIT_BREAKER_ITERATION_LIMIT;
                if (b->capped)
                        r = asprintf(&reason, "reached the hard iteration limit of %u ([AutonomousLoop] HardLimit=)",
                                     b->max_iterations);
                else
                        r = asprintf(&reason, "reached the iteration limit of %u (resume with a higher --max-iterations)",
                                     b->max_iterations);
        } else
                return 0;
        if (r < 0)
                return -ENOMEM;

        if (ret_trip)
                *ret_trip = trip;
        if (ret_reason)
                *ret_reason = TAKE_PTR(reason);
        return 1;
}

int circuit_breaker_record(CircuitBreaker *b, const char *fingerprint, const CompletionGate *gate,
                           double iteration_cost_usd, CircuitBreakerTrip *ret_trip, char **ret_reason) {
        const char *blocker = completion_gate_first_blocker(gate);
        bool progress = fingerprint && !streq_ptr(fingerprint, b->last_fingerprint);
        bool same = blocker && streq_ptr(blocker, b->last_blocker);
        _cleanup_free_ char *fp = NULL, *bl = NULL;

        /* Copy first, so that running out of memory does not count the iteration half. */
        if (progress) {
                fp = strdup(fingerprint);
                if (!fp)
                        return -ENOMEM;
        }
        if (blocker && !same) {
                bl = strdup(blocker);
                if (!bl)
                        return -ENOMEM;
        }

        if (b->iterations < UINT_MAX)
                b->iterations++;
        if (isfinite(iteration_cost_usd) && iteration_cost_usd > 0)
                b->cost_usd += iteration_cost_usd;

        if (progress) {
                free(b->last_fingerprint);
                b->last_fingerprint = TAKE_PTR(fp);
                b->no_progress = 0;
        } else if (b->no_progress < UINT_MAX)
                b->no_progress++;

        if (!blocker) {
                b->last_blocker = mfree(b->last_blocker);
                b->same_blocker = 0;
        } else if (same) {
                if (b->same_blocker < UINT_MAX)
                        b->same_blocker++;
        } else {
                free(b->last_blocker);
                b->last_blocker = TAKE_PTR(bl);
                b->same_blocker = 1;
        }

        return circuit_breaker_check(b, ret_trip, ret_reason);
}
