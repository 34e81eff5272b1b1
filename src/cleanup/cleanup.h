/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What makima-cleanup does, one pass at a time: worktrees, task
 * repositories and agent homes that no task needs any more. */
#pragma once

#include "conf.h"
#include "sandbox-identity.h"
#include "store.h"

typedef struct CleanupStats {
        unsigned worktrees_removed;
        unsigned homes_removed;
        unsigned failures;
} CleanupStats;

/* One idempotent pass. What agents made is removed as `agent` (the agents'
 * user). Failures to remove one thing are counted and logged, not fatal;
 * only a store failure returns < 0. */
int cleanup_run(const Config *config, Store *store, const SandboxIdentity *agent, CleanupStats *ret_stats);
