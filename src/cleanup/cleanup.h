/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What makima-cleanup does, one pass at a time: worktrees, branches and
 * agent homes that no task needs any more. */
#pragma once

#include "conf.h"
#include "store.h"

typedef struct CleanupStats {
        unsigned worktrees_removed;
        unsigned homes_removed;
        unsigned failures;
} CleanupStats;

/* One idempotent pass. Failures to remove one thing are counted and logged,
 * not fatal; only a store failure returns < 0. */
int cleanup_run(const Config *config, Store *store, CleanupStats *ret_stats);
