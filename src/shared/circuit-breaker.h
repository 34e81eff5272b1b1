/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The autonomous loop's circuit breaker: counts a task's iterations, the
 * iterations in a row that left the worktree as it was, the iterations in a
 * row that named the same first blocker, and the money spent, and says in
 * words why the loop must stop. Pure bookkeeping: the caller supplies the
 * worktree fingerprints (git_worktree_fingerprint()) and the gates. */
#pragma once

#include "completion-gate.h"
#include "macro.h"

typedef enum CircuitBreakerTrip {
        CIRCUIT_BREAKER_ITERATION_LIMIT,        /* resumable: the task becomes iteration_limit_reached */
        CIRCUIT_BREAKER_NO_PROGRESS,
        CIRCUIT_BREAKER_SAME_BLOCKER,
        CIRCUIT_BREAKER_COST_LIMIT,
        _CIRCUIT_BREAKER_TRIP_MAX,
        _CIRCUIT_BREAKER_TRIP_INVALID = -EINVAL,
} CircuitBreakerTrip;

const char *circuit_breaker_trip_to_string(CircuitBreakerTrip t) _pure_;
CircuitBreakerTrip circuit_breaker_trip_from_string(const char *s) _pure_;

/* [AutonomousLoop] in makima.conf. A 0 turns that check off (the parser
 * refuses 0, so only a caller that means it passes one). */
typedef struct CircuitBreakerConfig {
        unsigned default_max_iterations;        /* DefaultMaxIterations= */
        unsigned hard_limit;                    /* HardLimit=: caps every task's maximum */
        unsigned no_change_threshold;           /* NoChangeThreshold= */
        unsigned same_error_threshold;          /* SameErrorThreshold= */
} CircuitBreakerConfig;

#define CIRCUIT_BREAKER_CONFIG_DEFAULT                  \
        ((CircuitBreakerConfig) {                       \
                .default_max_iterations = 10,           \
                .hard_limit = 50,                       \
                .no_change_threshold = 3,               \
                .same_error_threshold = 5,              \
        })

typedef struct CircuitBreaker {
        CircuitBreakerConfig config;
        unsigned max_iterations;        /* effective: the task's, else the default, capped by the hard limit */
        bool capped;                    /* the task asked for more than the hard limit */
        unsigned iterations;            /* recorded so far (restored ones included) */
        unsigned no_progress;           /* consecutive iterations that did not change the worktree */
        unsigned same_blocker;          /* consecutive iterations whose first blocker was last_blocker */
        char *last_blocker;
        char *last_fingerprint;         /* the worktree as the last iteration left it; NULL: not known */
        double max_cost_usd;            /* 0 (or less, or not finite): no limit */
        double cost_usd;
} CircuitBreaker;

/* Sets up a breaker for a task with no iterations yet. task_max_iterations
 * 0 means the configured default. max_cost_usd is the task's or contract's
 * budget, 0 for none. */
void circuit_breaker_init(CircuitBreaker *b, const CircuitBreakerConfig *c, unsigned task_max_iterations,
                          double max_cost_usd);
void circuit_breaker_done(CircuitBreaker *b);

/* The worktree's fingerprint now. Set it before the first iteration, so
 * that the first iteration's progress is measured against the worktree it
 * started from, and again after a restart. Returns 0 or -ENOMEM. */
int circuit_breaker_set_fingerprint(CircuitBreaker *b, const char *fingerprint);

/* A restarted worker continues a task's count from the stored values
 * (Task.iteration_count, Task.cost_usd). The two streaks are not stored and
 * start again from 0: at worst the loop runs a streak's length more. */
void circuit_breaker_restore(CircuitBreaker *b, unsigned iterations, double cost_usd);

/* Resuming a task that reached its limit with a higher one: recomputes the
 * effective maximum (0: the default; still capped by the hard limit) and
 * returns it. */
unsigned circuit_breaker_set_max_iterations(CircuitBreaker *b, unsigned task_max_iterations);

/* Records one finished iteration: the worktree fingerprint after it (NULL:
 * it could not be taken, which counts as no progress), its gate (NULL when
 * there was none or it was malformed, which ends a same-blocker streak) and
 * what it cost. Progress is a changed worktree (a new commit, or a different
 * status or diff), not output: an agent that only talks makes none.
 * Progress ends the no-progress streak; a different first blocker starts a
 * new same-blocker streak (progress alone does not end one: the agent may
 * be busy without getting past the blocker).
 *
 * A wait for a rate limit is not an iteration: the caller does not record it.
 *
 * Returns 0 to go on, or 1 when the breaker trips, then with the trip
 * (ret_trip may be NULL) and the reason in words (ret_reason may be NULL);
 * -ENOMEM. See circuit_breaker_check() for which trip is reported when
 * several hold. */
int circuit_breaker_record(CircuitBreaker *b, const char *fingerprint, const CompletionGate *gate,
                           double iteration_cost_usd, CircuitBreakerTrip *ret_trip, char **ret_reason);

/* Would the breaker stop the loop before another iteration, e.g. after
 * circuit_breaker_restore()? Same returns as circuit_breaker_record().
 *
 * When several trips hold at once, the most telling wins: the same blocker
 * (it names what the agent is stuck on), then no progress, then the cost
 * limit, and the iteration limit only when nothing else holds, because it
 * is the one a task is resumed from, which is pointless for a stuck agent.
 *
 * Reasons read: "the same blocker 5 times in a row: <first line of it>",
 * "no progress in 3 consecutive iterations (the worktree did not change)",
 * "cost $1.23 exceeded the limit of $1.00", "reached the iteration limit of
 * 4 (resume with a higher --max-iterations)" or, when the hard limit capped
 * the task's maximum, "reached the hard iteration limit of 50 ([AutonomousLoop]
 * HardLimit=)". */
int circuit_breaker_check(const CircuitBreaker *b, CircuitBreakerTrip *ret_trip, char **ret_reason);
