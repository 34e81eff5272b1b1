/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One claimed task on this worker, from the claim to the final status: its
 * worktree is prepared in a forked child, its agent runs in the sandbox with
 * pipes on stdin/stdout/stderr, every line it prints becomes a store event
 * and a journal entry, and its exit decides the task's status. The split:
 * worker-task.c (life and store writes), worker-prepare.c (git),
 * worker-agent.c (spawn and output), worker-control.c (control requests),
 * worker-store-wait.c (what waits while the store does not take writes). */
#pragma once

#include <sys/types.h>

#include <systemd/sd-event.h>

#include "circuit-breaker.h"
#include "git-util.h"
#include "model.h"
#include "sandbox-cgroup.h"
#include "store.h"
#include "worker-pipe.h"

typedef struct Manager Manager;

typedef enum WorkerTaskPhase {
        WORKER_TASK_PREPARING,          /* git in a forked child */
        WORKER_TASK_AGENT,              /* the agent's process runs */
        WORKER_TASK_FINISHED,           /* nothing runs; the manager frees it */
        _WORKER_TASK_PHASE_MAX,
        _WORKER_TASK_PHASE_INVALID = -EINVAL,
} WorkerTaskPhase;

/* What the last run of the agent said about itself. */
typedef struct AgentOutcome {
        bool have_result;               /* a `result` line arrived */
        bool is_error;
        char *subtype;
        char *text;                     /* result text */
        unsigned api_error_status;
        bool rate_limited;              /* a rejected rate limit, or a 429 the CLI gave up on */
        uint64_t resets_at;             /* when the rejected limit resets, epoch seconds; 0: not known */
        char *auth_error;               /* the CLI's words, when it is not logged in */
        char *last_stderr;              /* the last non-empty stderr line, for the reason */
} AgentOutcome;

typedef struct WorkerTask {
        Manager *manager;
        Task *task;                     /* our copy of the row; run fields are ours to write */
        char token[LEASE_TOKEN_MAX];
        char id8[9];
        WorkerTaskPhase phase;
        sd_event_source *heartbeat;
        CgroupLimits limits;            /* the agent's: the task's own, else [Sandbox]'s */
        TaskCgroup cgroup;              /* where all of it runs; empty without cgroups */
        TaskCgroupEvents cgroup_events; /* what its limits did so far */
        usec_t claimed_at;              /* for the debug log of how long the start took */
        bool seen_output;

        /* prepare */
        pid_t prepare_pid;
        int prepare_fd;
        sd_event_source *prepare_source;
        char *base;                     /* the resolved base branch */
        char *repo_path;                /* the resolved repository */
        char *git_dir;                  /* the task's own git directory; NULL: no repository */
        char **borrowed;                /* the object directories it borrows */
        char *scratch;                  /* the snapshots of the child in prepare_pid (git's), removed
                                         * once it is gone */

        /* the agent */
        char *home;
        pid_t pid;                      /* bwrap's (or the agent's, unsandboxed) */
        bool sandboxed;
        sd_event_source *child_source;
        int stdin_fd, stdout_fd, stderr_fd;
        sd_event_source *stdin_source, *stdout_source, *stderr_source;
        LineReader stdout_reader, stderr_reader;
        LineWriter stdin_writer;
        bool close_stdin_when_flushed;  /* the turn ended: no more input */
        double cost_base;               /* cost of earlier runs: the CLI counts per process */
        AgentOutcome outcome;

        /* The batch of events of one read, written to the store at once;
         * kept, in order, for as long as the store does not take it. */
        Event *batch;
        size_t n_batch, allocated_batch;
        int *batch_priority;
        char **batch_summary;
        size_t n_journaled;             /* the first n_journaled are in the journal already (without seq) */
        bool dirty;                     /* run fields changed: write them with the batch */

        /* While the store does not take the batch (worker-store-wait.c). */
        sd_event_source *store_retry;   /* the next try, or the continuation once it went through */
        usec_t store_failing_since;     /* 0: the last write went through */
        unsigned n_store_retries;       /* for the backoff */
        size_t n_in_ledger;             /* the count the ledger has for the task */
        int store_error;                /* the last failure */
        bool store_stopped;             /* we stopped the agent (SIGSTOP) until the store takes writes */
        TaskState status_before_stop;
        bool exit_pending;              /* the agent exited; decided once its output is stored */
        int exit_code, exit_status;     /* si_code and si_status of that exit */
        bool finish_pending;            /* the final status waits in the batch */
        usec_t lease_renewed_at;        /* the claim or last heartbeat that went through */
        bool heartbeat_failed;          /* one failed since then: the lease may run out */

        /* the autonomous loop (worker-loop.c) */
        bool loop;
        CircuitBreaker breaker;
        char *loop_text;                /* this run's assistant text and result text, for the gate */
        size_t loop_text_len;
        unsigned n_waits;               /* rate-limit waits in a row, for the backoff */
        sd_event_source *wait_timer;
        usec_t exited_at;               /* the last agent's exit, for the debug log of the restart */
        usec_t fingerprint_started;     /* the fingerprint's child (in prepare_pid) started */

        /* control */
        bool interrupt_pending;         /* the next result ends an interrupted turn */
        unsigned interrupt_counter;
        bool paused;
        char *cancel_request_id;        /* set when a cancel is under way */
        bool stopping;                  /* the worker shuts down: hand the task back */
        bool lease_lost;                /* another worker owns it now: write nothing */
} WorkerTask;

/* Takes ownership of task. */
int worker_task_new(Manager *m, Task *task, const char *token, WorkerTask **ret);
WorkerTask *worker_task_free(WorkerTask *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(WorkerTask *, worker_task_free);

/* Starts the heartbeat and the preparation. On failure the task has been
 * given its final status already. */
int worker_task_start(WorkerTask *t);

/* "preparing", "running", "paused", "interrupted", "finishing". */
const char *worker_task_state_string(const WorkerTask *t);

/* Writes status (and error, when not NULL) with the pending batch and a
 * "status" event, and for a final status completed_at and the release of
 * the lease; then the task is finished. */
int worker_task_set_status(WorkerTask *t, TaskState status, const char *error);
/* The same, without writing yet: the change goes with the next flush. */
int worker_task_queue_status(WorkerTask *t, TaskState status, const char *error);
/* The task ends with `status` (a final one, or `interrupted`/`pending`):
 * status written, lease released, phase FINISHED, the manager told. */
void worker_task_finish(WorkerTask *t, TaskState status, const char *error);
/* The lease is gone: kill what runs, write nothing more. */
void worker_task_lease_lost(WorkerTask *t);

/* Forgets what the last run said about itself (before the next run). */
void worker_task_outcome_reset(WorkerTask *t);

/* Writes what was batched (events and changed run fields). On a failure
 * other than a lost lease or a refusal the batch is kept and tried again
 * (worker-store-wait.c); while the worker stops, until its deadline. */
int worker_task_flush(WorkerTask *t);
/* Adds one event to the batch: type, payload (JSON text), the journal's
 * priority and one-line summary. Takes nothing; copies. */
int worker_task_add_event(WorkerTask *t, const char *type, const char *payload, size_t payload_len, int priority,
                          const char *summary);

/* A scratch directory for the git of the next child (t->scratch), and its
 * removal once the child has been reaped, killed or not. */
int worker_task_scratch_make(WorkerTask *t);
void worker_task_scratch_remove(WorkerTask *t);
/* The child in prepare_pid was reaped (and what it said read): forgets it,
 * its pipe and its scratch directory. Returns true if the task ended
 * meanwhile (its lease lost, or cancelled), which it then has been told. */
bool worker_task_child_gone(WorkerTask *t);
/* In that child: the manager's git context (its own copy, in the child)
 * puts its snapshots there. */
const GitContext *worker_task_child_git(WorkerTask *t);

/* worker-prepare.c: forks the child that prepares the worktree. */
int worker_task_prepare(WorkerTask *t);

/* The agent's process ended (si_code and si_status of its SIGCHLD), its
 * output is read: decide the task's status, or start the next run. */
void worker_task_agent_exited(WorkerTask *t, int code, int status);

/* worker-store-wait.c */
/* The store did not take the batch (error): keep it, stop reading the
 * agent's output, try again later; after StoreRetrySec= stop the agent. */
void worker_task_store_failed(WorkerTask *t, int error);
/* The batch went through after failures: what waited for it goes on. */
void worker_task_store_written(WorkerTask *t);
/* The batch waits for the store. */
bool worker_task_store_blocked(const WorkerTask *t);
/* Nothing waits for the store any more (the lease was lost with the batch). */
void worker_task_store_reset(WorkerTask *t);
/* Our lease has run out by our own count while heartbeats or writes failed. */
bool worker_task_lease_ran_out(const WorkerTask *t);
/* Then takes it back if nobody claimed the task meanwhile: 0 if it did,
 * -ENOLCK if it is another's (or had not run out), or the store's error. */
int worker_task_lease_reclaim(WorkerTask *t);
/* `n` events of the task will never be stored: an events_lost event in its
 * log says so, now or when the store takes writes again (worker-lost.c). */
void worker_task_events_lost(WorkerTask *t, size_t n, const char *reason);

/* worker-agent.c */
/* Spawns the agent with `prompt` as its first user line (and --resume when
 * the task has a session). */
int worker_task_spawn(WorkerTask *t, const char *prompt);
/* Queues a line for the agent's stdin. -EPIPE when stdin is closed. */
int worker_task_write_stdin(WorkerTask *t, const char *line);
bool worker_task_stdin_open(const WorkerTask *t);
/* Reads what the pipes hold now, without blocking (before deciding an exit). */
void worker_task_drain(WorkerTask *t);
/* Lets the agent's output be read again (after the store took the batch). */
void worker_task_read_resume(WorkerTask *t);
/* Stops reading the agent's output, so that it blocks once its pipe is full. */
void worker_task_read_pause(WorkerTask *t);
/* The agent exited: once everything it printed is stored, decide
 * (worker_task_agent_exited()). Called again when the store takes writes. */
void worker_task_exit_continue(WorkerTask *t);
/* The prompt of a run: the plan, or on a restart of a task with a session a
 * request to continue it. */
int worker_task_first_prompt(WorkerTask *t, char **ret);

/* True when the CLI keeps the task's session in the agent's home (so
 * --resume can continue it). */
bool worker_task_session_exists(WorkerTask *t);

/* worker-loop.c */
/* After the worktree is prepared: decides whether the task loops (its own
 * autonomous_loop or its contract's), sets up the breaker from the stored
 * count and cost, and the worktree's fingerprint to measure progress from.
 * Returns 1 when the breaker trips at once (the task has been finished). */
int worker_task_loop_init(WorkerTask *t, const char *fingerprint);
/* Spawns a run that counts as an iteration (iteration_count + 1). */
int worker_task_spawn_iteration(WorkerTask *t, const char *prompt);
/* Keeps an assistant or result text of the running iteration for the gate. */
int worker_task_loop_collect(WorkerTask *t, const char *text);
/* A loop task's agent exited with a successful result: done, the next
 * iteration, or the breaker's verdict. */
void worker_task_loop_iteration_done(WorkerTask *t);
/* The run ended on a rate limit: wait (status waiting), then continue the
 * same session. Not an iteration. */
void worker_task_rate_limit_wait(WorkerTask *t);

/* worker-control.c */
/* Acts on the task's pending control requests (rows are the truth). */
void worker_task_process_controls(WorkerTask *t);
/* A cancel was asked for and what ran is gone: status cancelled, the
 * request done. */
void worker_task_cancelled(WorkerTask *t);
/* worker-processes.c */
/* Sends sig to the process and all its descendants. */
int worker_signal_tree(pid_t root, int sig);
/* Makes the task's cgroup with its limits (before anything of it runs). */
int worker_task_cgroup_setup(WorkerTask *t);
/* Kills what is left in it and removes it. */
void worker_task_cgroup_release(WorkerTask *t);
/* Everything of the task's agent: SIGSTOP and SIGCONT freeze and thaw its
 * cgroup, SIGKILL kills it as a whole; without a cgroup, the process tree. */
int worker_task_signal(WorkerTask *t, int sig);
/* Adds "limit" events for what the cgroup's limits did since last asked. */
int worker_task_limit_events(WorkerTask *t);
/* Why the agent failed, if a limit was hit (allocated), else NULL. */
char *worker_task_limit_reason(const WorkerTask *t);
/* Stops every process of the agent, or lets them go on: what a pause and a
 * resume do, and what waiting for the store does (worker-store-wait.c). */
int worker_task_agent_stop(WorkerTask *t);
int worker_task_agent_continue(WorkerTask *t);
/* Messages that arrived when stdin was already closed (the agent was
 * finishing its turn): they start a new run on the same session. Returns 1
 * and the text, 0 if none. Marks them done. */
int worker_task_take_late_messages(WorkerTask *t, char **ret);
