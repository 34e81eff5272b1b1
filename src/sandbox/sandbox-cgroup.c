/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Agents' cgroups on the unified hierarchy and, where the controllers are
 * bound to the legacy one (a hybrid system), in its memory, pids, cpu and
 * freezer hierarchies too. See sandbox-cgroup.h. */

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "model.h"
#include "sandbox-cgroup.h"
#include "sha256.h"

/* How long a kill may take to empty a cgroup before we give up on it. */
#define KILL_TIMEOUT_USEC (5 * USEC_PER_SEC)

static const char *const v1_controller[_CGROUP_HIERARCHY_MAX] = {
        [CGROUP_V1_MEMORY] = "memory",
        [CGROUP_V1_PIDS] = "pids",
        [CGROUP_V1_CPU] = "cpu",
        [CGROUP_V1_FREEZER] = "freezer",
};

static int join_path(const char *a, const char *b, char **ret) {
        return asprintf(ret, "%s/%s", a, b[0] == '/' ? b + 1 : b) < 0 ? -ENOMEM : 0;
}

static int write_string(const char *dir, const char *file, const char *value) {
        _cleanup_free_ char *p = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t n = strlen(value);

        if (join_path(dir, file, &p) < 0)
                return -ENOMEM;
        fd = open(p, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (write(fd, value, n) != (ssize_t) n)
                return errno > 0 ? -errno : -EIO;
        return 0;
}

static int read_text(const char *dir, const char *file, char **ret) {
        _cleanup_free_ char *p = NULL, *line = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        char buf[4096];
        size_t n;

        if (join_path(dir, file, &p) < 0)
                return -ENOMEM;
        f = fopen(p, "re");
        if (!f)
                return -errno;
        n = fread(buf, 1, sizeof buf - 1, f);
        if (ferror(f))
                return -EIO;
        buf[n] = '\0';
        *ret = strdup(buf);
        return *ret ? 0 : -ENOMEM;
}

/* "key N" in a flat keyed file (memory.events, pids.events, memory.oom_control). */
static uint64_t keyed_value(const char *text, const char *key) {
        size_t k = strlen(key);

        for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
                if (strneq(p, key, k) && p[k] == ' ')
                        return strtoull(p + k + 1, NULL, 10);
        return 0;
}

/* Whether word is one of the items of list, separated by sep (a line's
 * newline ends the list). */
static bool list_has(const char *list, const char *word, char sep) {
        size_t k = strlen(word);

        for (const char *p = list; p && (p = strstr(p, word)); p += k)
                if ((p == list || p[-1] == sep) && (p[k] == sep || p[k] == '\n' || p[k] == '\0'))
                        return true;
        return false;
}

/* Whether word is one of the space-separated words. */
static bool word_in(const char *words, const char *word) {
        return list_has(words, word, ' ');
}

/* Where each hierarchy is mounted, from mountinfo: the first cgroup2 mount,
 * and the v1 mounts that carry each controller. */
static int find_mounts(char *ret[static _CGROUP_HIERARCHY_MAX]) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        size_t n = 0;

        f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return -errno;
        while (getline(&line, &n, f) > 0) {
                char *fields[16] = {}, *save = NULL, *dash, *fstype, *options, *mnt;
                size_t k = 0;

                dash = strstr(line, " - ");
                if (!dash)
                        continue;
                *dash = '\0';
                for (char *w = strtok_r(line, " ", &save); w && k < ELEMENTSOF(fields); w = strtok_r(NULL, " ", &save))
                        fields[k++] = w;
                if (k < 5)
                        continue;
                mnt = fields[4];
                fstype = strtok_r(dash + 3, " ", &save);
                (void) strtok_r(NULL, " ", &save);      /* source */
                options = strtok_r(NULL, " \n", &save);
                if (!fstype || !options)
                        continue;
                if (streq(fstype, "cgroup2")) {
                        if (!ret[CGROUP_UNIFIED] && !(ret[CGROUP_UNIFIED] = strdup(mnt)))
                                return -ENOMEM;
                        continue;
                }
                if (!streq(fstype, "cgroup"))
                        continue;
                for (size_t h = CGROUP_V1_MEMORY; h < _CGROUP_HIERARCHY_MAX; h++)
                        if (list_has(options, v1_controller[h], ',') && !ret[h] && !(ret[h] = strdup(mnt)))
                                return -ENOMEM;
        }
        return 0;
}

/* Our own cgroup in each hierarchy, from /proc/self/cgroup. */
static int find_own(char *const mounts[static _CGROUP_HIERARCHY_MAX], char *ret[static _CGROUP_HIERARCHY_MAX]) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        size_t n = 0;

        f = fopen("/proc/self/cgroup", "re");
        if (!f)
                return -errno;
        while (getline(&line, &n, f) > 0) {
                char *controllers, *path;

                line[strcspn(line, "\n")] = '\0';
                controllers = strchr(line, ':');
                path = controllers ? strchr(controllers + 1, ':') : NULL;
                if (!path)
                        continue;
                *path++ = '\0';
                controllers++;
                if (isempty(controllers)) {
                        if (mounts[CGROUP_UNIFIED] && !ret[CGROUP_UNIFIED] &&
                            join_path(mounts[CGROUP_UNIFIED], path, &ret[CGROUP_UNIFIED]) < 0)
                                return -ENOMEM;
                        continue;
                }
                for (size_t h = CGROUP_V1_MEMORY; h < _CGROUP_HIERARCHY_MAX; h++)
                        if (list_has(controllers, v1_controller[h], ',') && mounts[h] && !ret[h] &&
                            join_path(mounts[h], path, &ret[h]) < 0)
                                return -ENOMEM;
        }
        return 0;
}


/* Asks for memory, pids and cpu in dir's children; takes what the kernel gives. */
static void enable_controllers(const char *dir) {
        _cleanup_free_ char *available = NULL;

        if (read_text(dir, "cgroup.controllers", &available) < 0)
                return;
        FOREACH_STRING(c, "memory", "pids", "cpu")
                if (word_in(available, c)) {
                        char plus[16];

                        (void) snprintf(plus, sizeof plus, "+%s", c);
                        (void) write_string(dir, "cgroup.subtree_control", plus);
                }
}

static bool delegated_to_us(const char *own) {
        const char *base = strrchr(own, '/');

        base = base ? base + 1 : own;
        return startswith(base, "makima-worker@") && strlen(base) > strlen(".service") &&
               streq(base + strlen(base) - strlen(".service"), ".service");
}

int cgroup_root_init(const char *state_dir, unsigned instance, CgroupRoot *ret) {
        _cleanup_free_ char *name = NULL;
        char hash[SHA256_HEX_SIZE];
        char *mounts[_CGROUP_HIERARCHY_MAX] = {}, *own[_CGROUP_HIERARCHY_MAX] = {};
        CgroupRoot root = {};
        int r;

        *ret = (CgroupRoot) {};
        sha256_hex(state_dir, strlen(state_dir), hash);
        if (asprintf(&name, "makima-worker-%u-%.12s", instance, hash) < 0)
                return log_oom();
        r = find_mounts(mounts);
        if (r >= 0)
                r = find_own(mounts, own);
        if (r == -ENOMEM)
                goto oom;
        if (r < 0)
                log_warning_errno(r, "Cannot find this worker's cgroups, agents run without limits: %m");

        root.delegated = own[CGROUP_UNIFIED] && delegated_to_us(own[CGROUP_UNIFIED]);
        for (size_t h = 0; h < _CGROUP_HIERARCHY_MAX; h++) {
                char *dir = NULL;

                if (!own[h])
                        continue;
                /* On v1, systemd's delegation covers the unified tree only: a
                 * directory of our own below is as good there. */
                if (root.delegated && h == CGROUP_UNIFIED)
                        dir = strdup(own[h]);
                else if (join_path(own[h], name, &dir) < 0)
                        dir = NULL;
                if (!dir)
                        goto oom;
                if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                        log_debug_errno(errno, "Cannot make %s: %m", dir);
                        free(dir);
                        continue;
                }
                root.dir[h] = dir;
        }

        if (root.dir[CGROUP_UNIFIED]) {
                _cleanup_free_ char *available = NULL;

                if (root.delegated) {
                        /* v2 allows controllers below a cgroup only when no process is in it. */
                        _cleanup_free_ char *leaf = NULL;
                        char pid[32];

                        if (join_path(root.dir[CGROUP_UNIFIED], "supervisor", &leaf) < 0)
                                goto oom;
                        (void) mkdir(leaf, 0755);
                        (void) snprintf(pid, sizeof pid, "%i", (int) getpid());
                        r = write_string(leaf, "cgroup.procs", pid);
                        if (r < 0)
                                log_warning_errno(r, "Cannot move into %s: %m", leaf);
                } else
                        enable_controllers(own[CGROUP_UNIFIED]);
                enable_controllers(root.dir[CGROUP_UNIFIED]);
                if (read_text(root.dir[CGROUP_UNIFIED], "cgroup.subtree_control", &available) >= 0) {
                        root.unified_memory = word_in(available, "memory");
                        root.unified_pids = word_in(available, "pids");
                        root.unified_cpu = word_in(available, "cpu");
                }
        }

        if (!cgroup_root_usable(&root))
                log_warning("No cgroup of this worker's can be written: agents run without TasksMax=, MemoryMax= "
                            "and CPUWeight=, and are killed through their pid namespace alone.");
        else if (!(root.unified_memory || root.dir[CGROUP_V1_MEMORY]) || !(root.unified_pids || root.dir[CGROUP_V1_PIDS]))
                log_warning("The cgroup of this worker has no %s%s%s controller: agents run without %s%s%s.",
                            root.unified_memory || root.dir[CGROUP_V1_MEMORY] ? "" : "memory",
                            !(root.unified_memory || root.dir[CGROUP_V1_MEMORY]) &&
                                            !(root.unified_pids || root.dir[CGROUP_V1_PIDS]) ? " and " : "",
                            root.unified_pids || root.dir[CGROUP_V1_PIDS] ? "" : "pids",
                            root.unified_memory || root.dir[CGROUP_V1_MEMORY] ? "" : "MemoryMax=",
                            !(root.unified_memory || root.dir[CGROUP_V1_MEMORY]) &&
                                            !(root.unified_pids || root.dir[CGROUP_V1_PIDS]) ? " and " : "",
                            root.unified_pids || root.dir[CGROUP_V1_PIDS] ? "" : "TasksMax=");
        else
                log_debug("Agents' cgroups below %s.", root.dir[CGROUP_UNIFIED] ?: root.dir[CGROUP_V1_PIDS]);

        for (size_t h = 0; h < _CGROUP_HIERARCHY_MAX; h++) {
                free(mounts[h]);
                free(own[h]);
        }
        *ret = root;
        return 0;

oom:
        for (size_t h = 0; h < _CGROUP_HIERARCHY_MAX; h++) {
                free(mounts[h]);
                free(own[h]);
        }
        cgroup_root_done(&root);
        return log_oom();
}

void cgroup_root_done(CgroupRoot *r) {
        for (size_t h = 0; h < _CGROUP_HIERARCHY_MAX; h++) {
                /* Ours alone (not the unit's, which is systemd's): gone when empty, so that
                 * the state directories of the past do not leave a trail of them. */
                if (r->dir[h] && !(r->delegated && h == CGROUP_UNIFIED))
                        (void) rmdir(r->dir[h]);
                r->dir[h] = mfree(r->dir[h]);
        }
}

bool cgroup_root_usable(const CgroupRoot *r) {
        for (size_t h = 0; h < _CGROUP_HIERARCHY_MAX; h++)
                if (r->dir[h])
                        return true;
        return false;
}

static int task_cgroup_paths(const CgroupRoot *root, const char *name, TaskCgroup *ret) {
        *ret = (TaskCgroup) {};
        for (size_t h = 0; h < _CGROUP_HIERARCHY_MAX; h++) {
                if (!root->dir[h])
                        continue;
                if (join_path(root->dir[h], name, &ret->dir[h]) < 0 ||
                    join_path(ret->dir[h], "cgroup.procs", &ret->procs[h]) < 0) {
                        task_cgroup_done(ret);
                        return -ENOMEM;
                }
        }
        return 0;
}

int cgroup_root_kill_stale(const CgroupRoot *root) {
        int n = 0;

        for (size_t h = 0; h < _CGROUP_HIERARCHY_MAX; h++) {
                _cleanup_(closedirp) DIR *d = NULL;
                struct dirent *de;

                if (!root->dir[h] || !(d = opendir(root->dir[h])))
                        continue;
                while ((de = readdir(d))) {
                        _cleanup_(task_cgroup_done) TaskCgroup c = {};
                        bool empty;

                        if (!startswith(de->d_name, "task-") || de->d_type != DT_DIR)
                                continue;
                        if (task_cgroup_paths(root, de->d_name, &c) < 0)
                                return -ENOMEM;
                        empty = task_cgroup_is_empty(&c);
                        if (!empty)
                                log_notice("Killing what an earlier run of this worker left in %s/%s.", root->dir[h],
                                           de->d_name);
                        (void) task_cgroup_remove(&c);
                        n += !empty;
                }
        }
        return n;
}

static int write_limits(const CgroupRoot *root, TaskCgroup *c, const CgroupLimits *l) {
        char tasks[32], memory[32], weight[32], shares[32];
        int r = 0;

        (void) snprintf(tasks, sizeof tasks, "%" PRIu64, l->tasks_max);
        (void) snprintf(memory, sizeof memory, "%" PRIu64, l->memory_max);
        (void) snprintf(weight, sizeof weight, "%u", l->cpu_weight);
        /* v1's cpu.shares: 1024 is the default, as 100 is the weight's. */
        (void) snprintf(shares, sizeof shares, "%u", MAX(2U, l->cpu_weight * 1024U / 100U));

        if (c->dir[CGROUP_UNIFIED]) {
                if (root->unified_pids && r >= 0)
                        r = write_string(c->dir[CGROUP_UNIFIED], "pids.max", tasks);
                if (root->unified_memory && r >= 0) {
                        r = write_string(c->dir[CGROUP_UNIFIED], "memory.max", memory);
                        /* Swap would only let it go on, slower, past its limit. No swap (no file): nothing to do. */
                        if (r >= 0)
                                (void) write_string(c->dir[CGROUP_UNIFIED], "memory.swap.max", "0");
                }
                if (root->unified_cpu && r >= 0)
                        r = write_string(c->dir[CGROUP_UNIFIED], "cpu.weight", weight);
        }
        if (c->dir[CGROUP_V1_PIDS] && !root->unified_pids && r >= 0)
                r = write_string(c->dir[CGROUP_V1_PIDS], "pids.max", tasks);
        if (c->dir[CGROUP_V1_MEMORY] && !root->unified_memory && r >= 0)
                r = write_string(c->dir[CGROUP_V1_MEMORY], "memory.limit_in_bytes", memory);
        /* Memory and swap together, where the kernel accounts swap (swapaccount=1). */
        if (c->dir[CGROUP_V1_MEMORY] && !root->unified_memory && r >= 0)
                (void) write_string(c->dir[CGROUP_V1_MEMORY], "memory.memsw.limit_in_bytes", memory);
        if (c->dir[CGROUP_V1_CPU] && !root->unified_cpu && r >= 0)
                r = write_string(c->dir[CGROUP_V1_CPU], "cpu.shares", shares);
        if (r < 0)
                return r;
        c->limited = (root->unified_pids || c->dir[CGROUP_V1_PIDS]) && (root->unified_memory || c->dir[CGROUP_V1_MEMORY]);
        return 0;
}

int task_cgroup_new(const CgroupRoot *root, const char *task_id, const CgroupLimits *limits, TaskCgroup *ret) {
        _cleanup_(task_cgroup_done) TaskCgroup c = {};
        _cleanup_free_ char *name = NULL;
        int r;

        if (asprintf(&name, "task-%s", task_id) < 0)
                return -ENOMEM;
        r = task_cgroup_paths(root, name, &c);
        if (r < 0)
                return r;
        /* A leftover of the same task (an earlier attempt): nothing of it may stay. */
        (void) task_cgroup_remove(&c);
        for (size_t h = 0; h < _CGROUP_HIERARCHY_MAX; h++)
                if (c.dir[h] && mkdir(c.dir[h], 0755) < 0 && errno != EEXIST) {
                        r = -errno;
                        log_warning_errno(r, "Cannot make %s: %m", c.dir[h]);
                        c.dir[h] = mfree(c.dir[h]);
                        c.procs[h] = mfree(c.procs[h]);
                }
        r = write_limits(root, &c, limits);
        if (r < 0)
                return log_warning_errno(r, "Cannot set the limits of task %s's cgroup: %m", task_id);
        *ret = c;
        c = (TaskCgroup) {};
        return 0;
}

int task_cgroup_join(const TaskCgroup *c) {
        for (size_t h = 0; h < _CGROUP_HIERARCHY_MAX; h++) {
                int fd;

                if (!c->procs[h])
                        continue;
                fd = open(c->procs[h], O_WRONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        return -errno;
                if (write(fd, "0", 1) != 1) {
                        int e = errno;
                        (void) close(fd);
                        return -e;
                }
                (void) close(fd);
        }
        return 0;
}

/* The hierarchy that tracks the task's processes: v2, or any v1 one. */
static const char *tracking_dir(const TaskCgroup *c) {
        FOREACH_STRING(d, c->dir[CGROUP_UNIFIED] ?: "", c->dir[CGROUP_V1_PIDS] ?: "", c->dir[CGROUP_V1_FREEZER] ?: "",
                       c->dir[CGROUP_V1_MEMORY] ?: "", c->dir[CGROUP_V1_CPU] ?: "")
                if (!isempty(d))
                        return d;
        return NULL;
}

static int signal_all(const char *dir, int sig) {
        _cleanup_free_ char *text = NULL;
        int r, n = 0;

        r = read_text(dir, "cgroup.procs", &text);
        if (r < 0)
                return r == -ENOENT ? 0 : r;
        for (char *p = text; *p;) {
                pid_t pid = (pid_t) strtol(p, &p, 10);

                if (pid > 0 && kill(pid, sig) >= 0)
                        n++;
                p += strspn(p, "\n");
                if (pid <= 0)
                        break;
        }
        return n;
}

bool task_cgroup_is_empty(const TaskCgroup *c) {
        _cleanup_free_ char *text = NULL;
        const char *dir = tracking_dir(c);

        if (!dir || read_text(dir, "cgroup.procs", &text) < 0)
                return true;
        return isempty(text);
}

int task_cgroup_kill(const TaskCgroup *c, int sig) {
        const char *dir = tracking_dir(c);
        usec_t deadline;
        int n = 0, r;

        if (!dir)
                return 0;
        if (sig != SIGKILL)
                return signal_all(dir, sig);
        if (c->dir[CGROUP_UNIFIED] && write_string(c->dir[CGROUP_UNIFIED], "cgroup.kill", "1") >= 0)
                return task_cgroup_is_empty(c) ? 0 : 1;

        /* No cgroup.kill: a frozen cgroup forks no more while we go through it. */
        (void) task_cgroup_freeze(c, true);
        deadline = now_usec() + KILL_TIMEOUT_USEC;
        while (!task_cgroup_is_empty(c) && now_usec() < deadline) {
                r = signal_all(dir, SIGKILL);
                if (r < 0)
                        break;
                n += r;
                (void) task_cgroup_freeze(c, false);
                (void) nanosleep(&(struct timespec) { .tv_nsec = 1000 * 1000 }, NULL);
        }
        (void) task_cgroup_freeze(c, false);
        return n;
}

int task_cgroup_freeze(const TaskCgroup *c, bool freeze) {
        if (c->dir[CGROUP_UNIFIED]) {
                int r = write_string(c->dir[CGROUP_UNIFIED], "cgroup.freeze", freeze ? "1" : "0");
                if (r != -ENOENT)
                        return r;
        }
        if (c->dir[CGROUP_V1_FREEZER])
                return write_string(c->dir[CGROUP_V1_FREEZER], "freezer.state", freeze ? "FROZEN" : "THAWED");
        return -EOPNOTSUPP;
}

int task_cgroup_events(const TaskCgroup *c, TaskCgroupEvents *ret) {
        _cleanup_free_ char *mem = NULL, *pids = NULL;

        *ret = (TaskCgroupEvents) {};
        if (c->dir[CGROUP_UNIFIED] && read_text(c->dir[CGROUP_UNIFIED], "memory.events", &mem) >= 0)
                ret->oom_kills = keyed_value(mem, "oom_kill");
        else if (c->dir[CGROUP_V1_MEMORY] && read_text(c->dir[CGROUP_V1_MEMORY], "memory.oom_control", &mem) >= 0)
                ret->oom_kills = keyed_value(mem, "oom_kill");
        if (c->dir[CGROUP_UNIFIED] && read_text(c->dir[CGROUP_UNIFIED], "pids.events", &pids) >= 0)
                ret->tasks_refused = keyed_value(pids, "max");
        else if (c->dir[CGROUP_V1_PIDS] && read_text(c->dir[CGROUP_V1_PIDS], "pids.events", &pids) >= 0)
                ret->tasks_refused = keyed_value(pids, "max");
        return 0;
}

int task_cgroup_remove(TaskCgroup *c) {
        usec_t deadline = now_usec() + KILL_TIMEOUT_USEC;
        int r = 0;

        (void) task_cgroup_kill(c, SIGKILL);
        for (size_t h = 0; h < _CGROUP_HIERARCHY_MAX; h++) {
                if (!c->dir[h])
                        continue;
                /* A killed process leaves its cgroup when it has died, a moment later. */
                while (rmdir(c->dir[h]) < 0) {
                        if (errno == ENOENT)
                                break;
                        if (errno != EBUSY || now_usec() >= deadline) {
                                r = -errno;
                                break;
                        }
                        (void) nanosleep(&(struct timespec) { .tv_nsec = 2 * 1000 * 1000 }, NULL);
                }
        }
        return r;
}

void task_cgroup_done(TaskCgroup *c) {
        for (size_t h = 0; h < _CGROUP_HIERARCHY_MAX; h++) {
                c->dir[h] = mfree(c->dir[h]);
                c->procs[h] = mfree(c->procs[h]);
        }
        c->limited = false;
}
