/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A cgroup of its own for every agent: everything the agent starts lives in
 * it, it is killed as a whole, and its limits (TasksMax=, MemoryMax=,
 * CPUWeight=) are the kernel's to enforce.
 *
 * The worker keeps its agents' cgroups under a root of its own: under
 * systemd the cgroup of makima-worker@N.service itself (Delegate=yes; the
 * worker moves into a "supervisor" leaf so that the kernel lets it enable
 * controllers below), anywhere else a "makima-worker-N-<hash>" below its
 * own cgroup, the hash (of the state directory) keeping apart the workers
 * of two makima installations, or of two `makima up`, that share a
 * cgroup. Each task gets "task-<id>" there. On the unified hierarchy (v2)
 * that is one directory; on a hybrid or legacy one the same names in the
 * v1 memory, pids, cpu and freezer hierarchies as well, where the limits
 * then live. What cannot be made (no cgroup file system writable by us) is
 * skipped with a warning: the agent still runs, only unlimited, and is
 * found and killed through the pid namespace instead. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* The hierarchies, each a directory or NULL. */
enum {
        CGROUP_UNIFIED,
        CGROUP_V1_MEMORY,
        CGROUP_V1_PIDS,
        CGROUP_V1_CPU,
        CGROUP_V1_FREEZER,
        _CGROUP_HIERARCHY_MAX,
};

typedef struct CgroupRoot {
        char *dir[_CGROUP_HIERARCHY_MAX];
        bool unified_memory, unified_pids, unified_cpu;  /* controllers task cgroups get on v2 */
        bool delegated;                 /* the root is our unit's own cgroup */
} CgroupRoot;

/* Finds our cgroups and makes (or takes) the root for worker `instance` of
 * the installation with this state directory. Never fails for want of
 * cgroups: ret->dir[] are then NULL. Logs. */
int cgroup_root_init(const char *state_dir, unsigned instance, CgroupRoot *ret);
/* Frees it, removing the root's directories if they are ours and empty. */
void cgroup_root_done(CgroupRoot *r);
/* True if agents get cgroups at all. */
bool cgroup_root_usable(const CgroupRoot *r);
/* Kills and removes what an earlier life of this worker left: every
 * task-* below the root, whatever runs in it. Returns how many there were. */
int cgroup_root_kill_stale(const CgroupRoot *r);

typedef struct CgroupLimits {
        uint64_t tasks_max;
        uint64_t memory_max;
        unsigned cpu_weight;            /* 1..10000, systemd's scale (100: the default) */
} CgroupLimits;

typedef struct TaskCgroup {
        char *dir[_CGROUP_HIERARCHY_MAX];
        char *procs[_CGROUP_HIERARCHY_MAX];     /* their cgroup.procs, for the child to join */
        bool limited;                   /* the limits are in place */
} TaskCgroup;

/* Makes task-<id> (emptying a leftover of that name first) with its limits. */
int task_cgroup_new(const CgroupRoot *root, const char *task_id, const CgroupLimits *limits, TaskCgroup *ret);
/* In a forked child, before it starts anything (async-signal-safe): moves
 * the calling process into the task's cgroups. */
int task_cgroup_join(const TaskCgroup *c);
/* Sends sig to every process in it; SIGKILL kills it as a whole (v2's
 * cgroup.kill, else until none is left). Returns how many were signalled
 * (1 for cgroup.kill), 0 if it was empty. */
int task_cgroup_kill(const TaskCgroup *c, int sig);
/* Freezes (or thaws) every process in it; -EOPNOTSUPP without a freezer. */
int task_cgroup_freeze(const TaskCgroup *c, bool freeze);
bool task_cgroup_is_empty(const TaskCgroup *c);
/* What the limits did so far: processes the OOM killer took, forks refused. */
typedef struct TaskCgroupEvents {
        uint64_t oom_kills;
        uint64_t tasks_refused;
} TaskCgroupEvents;
int task_cgroup_events(const TaskCgroup *c, TaskCgroupEvents *ret);
/* Kills what is left and removes the cgroup. */
int task_cgroup_remove(TaskCgroup *c);
void task_cgroup_done(TaskCgroup *c);
