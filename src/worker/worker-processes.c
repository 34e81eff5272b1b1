/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An agent's processes, as one: its cgroup (sandbox-cgroup.h), made with the
 * task's limits before anything of the task runs, joined by every child the
 * worker forks for it (the preparation's git, the agent), signalled, frozen
 * and killed as a whole; what its limits did, as events. Where no cgroup can
 * be had, the process tree under the child, and the worker as the
 * subreaper of whatever a sandbox leaves when its bwrap goes. */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "json-util.h"
#include "log.h"
#include "worker-manager.h"
#include "worker-task.h"

typedef struct ProcEntry {
        pid_t pid, ppid;
} ProcEntry;

/* Every process's parent, from /proc/<pid>/stat (this kernel may lack
 * /proc/<pid>/task/<tid>/children). */
static int proc_table(ProcEntry **ret, size_t *ret_n) {
        _cleanup_(closedirp) DIR *d = opendir("/proc");
        _cleanup_free_ ProcEntry *table = NULL;
        size_t n = 0, allocated = 0;
        struct dirent *de;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char path[64], buf[512], *paren;
                _cleanup_close_ int fd = -EBADF;
                ssize_t k;
                long ppid;
                char *end;
                long pid = strtol(de->d_name, &end, 10);

                if (*end || pid <= 0)
                        continue;
                (void) snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;       /* gone meanwhile */
                k = read(fd, buf, sizeof(buf) - 1);
                if (k <= 0)
                        continue;
                buf[k] = '\0';
                /* "pid (comm) state ppid …"; comm may hold anything, even ')'. */
                paren = strrchr(buf, ')');
                if (!paren || sscanf(paren + 1, " %*c %ld", &ppid) != 1)
                        continue;
                if (n == allocated) {
                        ProcEntry *t = reallocarray(table, MAX(allocated * 2, 256U), sizeof(ProcEntry));
                        if (!t)
                                return -ENOMEM;
                        table = t;
                        allocated = MAX(allocated * 2, 256U);
                }
                table[n++] = (ProcEntry) { .pid = (pid_t) pid, .ppid = (pid_t) ppid };
        }
        *ret = TAKE_PTR(table);
        *ret_n = n;
        return 0;
}

static bool pid_in(const pid_t *set, size_t n, pid_t pid) {
        for (size_t i = 0; i < n; i++)
                if (set[i] == pid)
                        return true;
        return false;
}

int worker_signal_tree(pid_t root, int sig) {
        _cleanup_free_ pid_t *done = NULL;
        size_t n_done = 0;
        bool found;

        if (root <= 0)
                return -EINVAL;
        if (kill(root, sig) < 0)
                return -errno;
        done = malloc(sizeof(pid_t));
        if (!done)
                return -ENOMEM;
        done[n_done++] = root;

        /* A stopped parent forks no more, so repeating the walk until it
         * finds nobody new catches children born during it. Killing with
         * SIGKILL a stopped tree works the same way. */
        do {
                _cleanup_free_ ProcEntry *table = NULL;
                size_t n;
                int r;

                found = false;
                r = proc_table(&table, &n);
                if (r < 0)
                        return r;
                for (bool more = true; more;) {
                        more = false;
                        for (size_t i = 0; i < n; i++) {
                                pid_t *d;

                                if (!pid_in(done, n_done, table[i].ppid) || pid_in(done, n_done, table[i].pid))
                                        continue;
                                (void) kill(table[i].pid, sig);
                                d = reallocarray(done, n_done + 1, sizeof(pid_t));
                                if (!d)
                                        return -ENOMEM;
                                done = d;
                                done[n_done++] = table[i].pid;
                                found = more = true;
                        }
                }
        } while (found);
        return (int) n_done;
}

int worker_task_cgroup_setup(WorkerTask *t) {
        const Config *c = t->manager->config;
        CgroupLimits limits = {
                .tasks_max = t->task->tasks_max > 0 ? (uint64_t) t->task->tasks_max : c->sandbox_tasks_max,
                .memory_max = t->task->memory_max > 0 ? (uint64_t) t->task->memory_max : c->sandbox_memory_max,
                .cpu_weight = t->task->cpu_weight > 0 ? (unsigned) t->task->cpu_weight : c->sandbox_cpu_weight,
        };
        int r;

        t->limits = limits;
        if (!cgroup_root_usable(&t->manager->cgroups))
                return 0;
        r = task_cgroup_new(&t->manager->cgroups, t->task->id, &limits, &t->cgroup);
        if (r < 0)
                return log_error_errno(r, "Task %s: failed to make its cgroup: %m", t->id8);
        return 0;
}

void worker_task_cgroup_release(WorkerTask *t) {
        int r;

        r = task_cgroup_remove(&t->cgroup);
        if (r < 0)
                log_warning_errno(r, "Task %s: failed to remove its cgroup: %m", t->id8);
        task_cgroup_done(&t->cgroup);
}

static bool have_cgroup(const WorkerTask *t) {
        for (size_t h = 0; h < _CGROUP_HIERARCHY_MAX; h++)
                if (t->cgroup.dir[h])
                        return true;
        return false;
}

int worker_task_signal(WorkerTask *t, int sig) {
        int r = 0;

        if (!have_cgroup(t))
                return t->pid > 0 ? worker_signal_tree(t->pid, sig) : 0;

        switch (sig) {
        case SIGSTOP:
                /* Frozen, nothing in there forks or runs until thawed. */
                r = task_cgroup_freeze(&t->cgroup, true);
                if (r != -EOPNOTSUPP)
                        return r;
                break;
        case SIGCONT:
                r = task_cgroup_freeze(&t->cgroup, false);
                if (r < 0 && r != -EOPNOTSUPP)
                        return r;
                break;
        default:
                break;
        }
        /* The direct child too: until it has joined the cgroup (it does so
         * before it runs anything else), only its pid reaches it. */
        if (t->pid > 0)
                (void) kill(t->pid, sig);
        r = task_cgroup_kill(&t->cgroup, sig);
        return r < 0 ? r : 0;
}

int worker_task_limit_events(WorkerTask *t) {
        TaskCgroupEvents e;
        int r;

        if (!have_cgroup(t))
                return 0;
        r = task_cgroup_events(&t->cgroup, &e);
        if (r < 0)
                return 0;
        if (e.oom_kills > t->cgroup_events.oom_kills) {
                _cleanup_free_ char *payload = NULL, *summary = NULL;

                if (asprintf(&payload, "{\"limit\":\"memory\",\"max\":%" PRIu64 ",\"oom_kills\":%" PRIu64 "}",
                             t->limits.memory_max, e.oom_kills) < 0 ||
                    asprintf(&summary, "limit: out of memory (MemoryMax=%" PRIu64 "): the kernel killed %" PRIu64
                                       " process%s", t->limits.memory_max, e.oom_kills, e.oom_kills == 1 ? "" : "es") < 0)
                        return -ENOMEM;
                r = worker_task_add_event(t, "limit", payload, strlen(payload), LOG_WARNING, summary);
                if (r < 0)
                        return r;
        }
        if (e.tasks_refused > t->cgroup_events.tasks_refused) {
                _cleanup_free_ char *payload = NULL, *summary = NULL;

                if (asprintf(&payload, "{\"limit\":\"tasks\",\"max\":%" PRIu64 ",\"refused\":%" PRIu64 "}",
                             t->limits.tasks_max, e.tasks_refused) < 0 ||
                    asprintf(&summary, "limit: TasksMax=%" PRIu64 " reached, %" PRIu64 " fork%s refused",
                             t->limits.tasks_max, e.tasks_refused, e.tasks_refused == 1 ? "" : "s") < 0)
                        return -ENOMEM;
                r = worker_task_add_event(t, "limit", payload, strlen(payload), LOG_WARNING, summary);
                if (r < 0)
                        return r;
        }
        t->cgroup_events = e;
        return 0;
}

char *worker_task_limit_reason(const WorkerTask *t) {
        char *s = NULL;

        if (t->cgroup_events.oom_kills > 0)
                return asprintf(&s, "the agent ran out of memory: [Sandbox] MemoryMax=%" PRIu64 " bytes (the kernel "
                                    "killed %" PRIu64 " of its processes)",
                                t->limits.memory_max, t->cgroup_events.oom_kills) < 0 ? NULL : s;
        if (t->cgroup_events.tasks_refused > 0)
                return asprintf(&s, "the agent hit its process limit: [Sandbox] TasksMax=%" PRIu64 " (%" PRIu64
                                    " forks refused)",
                                t->limits.tasks_max, t->cgroup_events.tasks_refused) < 0 ? NULL : s;
        return NULL;
}

/* Known children: every task's preparation and agent. */
static bool pid_is_known(const Manager *m, pid_t pid) {
        for (size_t i = 0; i < m->n_tasks; i++)
                if (m->tasks[i]->pid == pid || m->tasks[i]->prepare_pid == pid)
                        return true;
        return false;
}

void manager_reap_orphans(Manager *m) {
        _cleanup_free_ ProcEntry *table = NULL;
        pid_t self = getpid();
        size_t n;

        /* What a sandbox left when its bwrap went (its pid namespace's
         * init, which takes the rest with it), now ours: killed and reaped. */
        if (proc_table(&table, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++) {
                if (table[i].ppid != self || pid_is_known(m, table[i].pid))
                        continue;
                log_debug("Killing orphan %i left by a sandbox.", (int) table[i].pid);
                (void) kill(table[i].pid, SIGKILL);
        }
        /* Those that died already; the others at the next sweep. Our own
         * children are the loop's to reap. */
        for (size_t i = 0; i < n; i++)
                if (table[i].ppid == self && !pid_is_known(m, table[i].pid))
                        (void) waitpid(table[i].pid, NULL, WNOHANG);
}

int manager_processes_setup(Manager *m) {
        int r;

        /* A sandbox whose bwrap dies leaves its children to us, not to init. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
                log_warning_errno(errno, "Failed to become a subreaper: %m");
        r = cgroup_root_init(m->config->state_dir, m->instance, &m->cgroups);
        if (r < 0)
                return r;
        /* Before anything is claimed: agents of an earlier life of this worker
         * (killed by SIGKILL, say) must not run beside their successors. */
        r = cgroup_root_kill_stale(&m->cgroups);
        if (r > 0)
                log_notice("Killed what %i agent%s of an earlier run of this worker left.", r, r == 1 ? "" : "s");
        return 0;
}
