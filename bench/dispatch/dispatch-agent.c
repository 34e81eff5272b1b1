/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The trivial agent of bench/dispatch: it reads the clock first thing after
 * its exec, says so in a stream-json system/init line (field
 * "bench_exec_realtime_ns"), reads the prompt the worker sends and ends its
 * turn with a successful result, the way the Claude Code CLI would.
 *
 * With --print-exec-time it only prints that clock reading as a number: the
 * floor of the benchmark runs it so under a plain bwrap. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
        struct timespec ts;
        unsigned long long ns;
        char cwd[4096], *line = NULL;
        size_t n = 0;

        /* Before anything else: what the benchmark measures ends here. */
        (void) clock_gettime(CLOCK_REALTIME, &ts);
        ns = (unsigned long long) ts.tv_sec * 1000000000ULL + (unsigned long long) ts.tv_nsec;

        if (argc > 1 && strcmp(argv[1], "--print-exec-time") == 0) {
                printf("%llu\n", ns);
                return 0;
        }

        if (!getcwd(cwd, sizeof(cwd)))
                strcpy(cwd, "/");
        /* The worktree path is makima's, it needs no JSON escaping. */
        printf("{\"type\":\"system\",\"subtype\":\"init\",\"cwd\":\"%s\",\"session_id\":\"bench-%d\","
               "\"model\":\"bench\",\"permissionMode\":\"bypassPermissions\",\"bench_exec_realtime_ns\":%llu}\n",
               cwd, (int) getpid(), ns);
        fflush(stdout);

        /* The user message with the task's prompt, as the CLI would wait for it. */
        (void) getline(&line, &n, stdin);
        free(line);

        printf("{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"duration_ms\":0,"
               "\"num_turns\":1,\"result\":\"done\",\"session_id\":\"bench-%d\",\"total_cost_usd\":0}\n",
               (int) getpid());
        return fflush(stdout) == 0 ? 0 : 1;
}
