/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The trivial agent of bench/loop: each run reads the clock first thing
 * after its exec (field "bench_exec_realtime_ns" of its system/init line),
 * writes one file in its worktree (progress, for the circuit breaker), ends
 * its turn with a result whose <COMPLETION_GATE> says ready only on the
 * BENCH_LOOP_ITERATIONS-th run, and reads the clock again right before it
 * exits (a line {"type":"bench_exit","realtime_ns":…}). It keeps its session
 * where the Claude Code CLI would, so that makima resumes it. */

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static unsigned long long now_ns(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (unsigned long long) ts.tv_sec * 1000000000ULL + (unsigned long long) ts.tv_nsec;
}

static void mkdir_p(char *path) {
        for (char *s = strchr(path + 1, '/'); s; s = strchr(s + 1, '/')) {
                *s = '\0';
                (void) mkdir(path, 0700);
                *s = '/';
        }
        (void) mkdir(path, 0700);
}

/* <HOME>/.claude/projects/<cwd, non-alphanumerics as '-'>/<session>.jsonl */
static void keep_session(const char *cwd, const char *session) {
        const char *home = getenv("HOME");
        char dir[8192], mangled[4096], path[8300];
        size_t i;
        FILE *f;

        if (!home)
                return;
        for (i = 0; cwd[i] && i < sizeof(mangled) - 1; i++)
                mangled[i] = ((cwd[i] >= 'a' && cwd[i] <= 'z') || (cwd[i] >= 'A' && cwd[i] <= 'Z') ||
                              (cwd[i] >= '0' && cwd[i] <= '9')) ? cwd[i] : '-';
        mangled[i] = '\0';
        (void) snprintf(dir, sizeof(dir), "%s/.claude/projects/%s", home, mangled);
        mkdir_p(dir);
        (void) snprintf(path, sizeof(path), "%s/%s.jsonl", dir, session);
        f = fopen(path, "ae");
        if (f) {
                fputs("{}\n", f);
                fclose(f);
        }
}

int main(int argc, char **argv) {
        unsigned long long exec_ns = now_ns();
        const char *task = getenv("MAKIMA_TASK_ID") ?: "none", *want = getenv("BENCH_LOOP_ITERATIONS");
        char cwd[4096], name[64], *line = NULL;
        unsigned n = want ? (unsigned) strtoul(want, NULL, 10) : 50, k;
        bool resumed = false;
        size_t size = 0;
        int fd;

        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "--resume") == 0)
                        resumed = true;
        if (!getcwd(cwd, sizeof(cwd)))
                strcpy(cwd, "/");

        /* The run's number: the first free iter-<k> file. */
        for (k = 1; k < 100000; k++) {
                (void) snprintf(name, sizeof(name), "iter-%u", k);
                fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                if (fd >= 0 || errno != EEXIST)
                        break;
        }
        if (fd >= 0)
                close(fd);
        keep_session(cwd, task);

        printf("{\"type\":\"system\",\"subtype\":\"init\",\"cwd\":\"%s\",\"session_id\":\"%s\","
               "\"model\":\"bench\",\"permissionMode\":\"bypassPermissions\",\"bench_exec_realtime_ns\":%llu,"
               "\"bench_run\":%u,\"bench_resumed\":%s}\n",
               cwd, task, exec_ns, k, resumed ? "true" : "false");
        fflush(stdout);

        (void) getline(&line, &size, stdin);

        printf("{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"duration_ms\":0,\"num_turns\":1,"
               "\"result\":\"run %u\\n<COMPLETION_GATE>\\nready: %s\\nreason: run %u of %u\\n</COMPLETION_GATE>\","
               "\"session_id\":\"%s\",\"total_cost_usd\":0.001}\n",
               k, k >= n ? "true" : "false", k, n, task);
        fflush(stdout);

        /* The turn is over: the worker closes our stdin, and we exit. */
        while (getline(&line, &size, stdin) > 0)
                ;
        free(line);
        printf("{\"type\":\"bench_exit\",\"realtime_ns\":%llu}\n", now_ns());
        return fflush(stdout) == 0 ? 0 : 1;
}
