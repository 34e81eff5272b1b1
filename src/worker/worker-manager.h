/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* makima-worker's manager: the store, the worker's identity, the tasks it
 * runs (at most [Worker] MaxConcurrentTasks), and what makes it claim more:
 * its start, D-Bus signals from makima-api, PostgreSQL notifications, a slow
 * poll timer and every task that ends. */
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "conf.h"
#include "git-util.h"
#include "sandbox-cgroup.h"
#include "sandbox-identity.h"
#include "store.h"
#include "worker-ledger.h"
#include "worker-task.h"

#define MAKIMA_BUS_PATH "/org/makima1"
#define MAKIMA_BUS_INTERFACE "org.makima1.Manager"

struct Manager {
        sd_event *event;
        Config *config;
        Store *store;
        unsigned instance;
        const char *bwrap;              /* --bwrap=PATH, else NULL: bwrap in $PATH */
        char *worker_id;                /* "<hostname>:<instance>" */
        SandboxIdentity agent;          /* who agents (and git on what they write) run as */
        SandboxIdentity caller;         /* this worker's own user */
        GitContext git;                 /* how git runs (sandboxed) */
        CgroupRoot cgroups;             /* where the agents' cgroups go */

        sd_bus *bus;
        sd_event_source *listen_source; /* PostgreSQL LISTEN */
        sd_event_source *poll_timer;
        sd_event_source *reap_source;   /* defer: frees finished tasks, claims more */
        sd_event_source *exit_source;

        WorkerTask **tasks;
        size_t n_tasks;
        bool stopping;
        usec_t store_deadline;          /* stopping: writes the store refuses are tried until then */
        char *last_status;

        /* Events the store did not take (worker-lost.c). */
        Ledger *ledger;                 /* NULL: it could not be opened */
        sd_event_source *lost_timer;
};

int manager_new(sd_event *event, Config *config, unsigned instance, const char *bwrap, Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* The STATUS= line: "running 2 tasks: abcd1234 (running), …" or "idle, waiting for tasks". */
char *manager_status(Manager *m);
/* Sends STATUS= if it changed. */
void manager_update_status(Manager *m);
/* Claims tasks while there is room. */
void manager_claim(Manager *m);
/* A task reached FINISHED: free it and claim again, from a defer source
 * (never inside the task's own callbacks). */
void manager_task_finished(Manager *m);
/* worker-processes.c: become the subreaper, find the cgroups, kill what
 * an earlier life of this worker left. */
int manager_processes_setup(Manager *m);
/* Kills and reaps children nobody knows (what a sandbox left). */
void manager_reap_orphans(Manager *m);
/* The running task with this id, or NULL. */
WorkerTask *manager_find_task(Manager *m, const char *id);

/* worker-lost.c */
/* Opens <state_dir>/ledger/worker-<instance>; what an earlier worker left
 * there is lost now and waits to be recorded. */
int manager_ledger_setup(Manager *m);
/* Records a loss as an events_lost event in the task's log, now or, kept in
 * the ledger, as soon as the store takes it. */
void manager_events_lost(Manager *m, const LedgerEntry *e);
/* Writes the ledger's lost records that the store takes now; a timer tries
 * the rest again. Returns how many still wait. */
size_t manager_write_lost(Manager *m);
