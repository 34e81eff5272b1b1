/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The driver of bench/dispatch. Round after round it measures, one after the
 * other on an idle machine:
 *
 *   floor:    git worktree add + a plain bwrap running dispatch-agent, from
 *             just before git is started to the agent's first instruction;
 *   dispatch: POST /api/v1/tasks to makima-api, from just before the request
 *             is written to the first instruction of the agent that the
 *             worker starts for that task (which it reports in its
 *             system/init line, read back through the API once the task is
 *             done).
 *
 * Both end at the same point, measured by the same clock (CLOCK_REALTIME,
 * which the sandbox shares), so they compare directly. A task is posted
 * only when the previous one is done and the worker idle.
 *
 * Usage: dispatch-client SOCKET REPO ROUNDS FLOOR-DIR -- FLOOR-COMMAND…
 * FLOOR-COMMAND is the bwrap command line; "{}" in it stands for the round's
 * worktree. Prints "ROUND FLOOR_NS DISPATCH_NS FLOOR_GIT_NS TASK_ID POSTED_NS"
 * lines on stdout: FLOOR_GIT_NS is the part of the floor git took, POSTED_NS
 * the CLOCK_REALTIME at which the task was posted. */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TASK_TIMEOUT_NS (120ULL * 1000000000ULL)
#define POLL_INTERVAL_NS (10ULL * 1000000ULL)

static const char *socket_path;

static _Noreturn void die(const char *fmt, ...) {
        va_list ap;

        fputs("dispatch-client: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(EXIT_FAILURE);
}

static uint64_t now_ns(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static void sleep_ns(uint64_t ns) {
        struct timespec ts = { .tv_sec = (time_t) (ns / 1000000000ULL), .tv_nsec = (long) (ns % 1000000000ULL) };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* ---- HTTP/1.1 over makima-api's Unix socket, one keep-alive connection ---- */

static int conn_fd = -1;

static void conn_open(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (strlen(socket_path) >= sizeof(sa.sun_path))
                die("socket path too long: %s", socket_path);
        strcpy(sa.sun_path, socket_path);
        conn_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (conn_fd < 0 || connect(conn_fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                die("cannot connect to %s: %m", socket_path);
}

static void conn_close(void) {
        if (conn_fd >= 0)
                (void) close(conn_fd);
        conn_fd = -1;
}

static bool write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return false;
                p += k;
                n -= (size_t) k;
        }
        return true;
}

/* Reads one answer: its status and body (NUL-terminated, caller frees).
 * False if the connection was closed before a whole answer came. */
static bool read_answer(int *ret_status, char **ret_body) {
        static char buf[1 << 20];
        static size_t have = 0;
        size_t header_len = 0, body_len = 0;
        char *end, *cl, *body;
        int status;

        for (;;) {
                buf[have] = '\0';
                end = strstr(buf, "\r\n\r\n");
                if (end) {
                        header_len = (size_t) (end - buf) + 4;
                        cl = strcasestr(buf, "\r\nContent-Length:");
                        if (!cl || cl > end)
                                die("an answer without Content-Length: %.200s", buf);
                        body_len = strtoul(cl + strlen("\r\nContent-Length:"), NULL, 10);
                        if (header_len + body_len >= sizeof(buf))
                                die("an answer of %zu bytes is too long", body_len);
                        if (have >= header_len + body_len)
                                break;
                }
                if (have >= sizeof(buf) - 1)
                        die("an answer's header is too long");
                ssize_t k = read(conn_fd, buf + have, sizeof(buf) - 1 - have);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        die("cannot read from %s: %m", socket_path);
                if (k == 0) {
                        have = 0;
                        return false;
                }
                have += (size_t) k;
        }
        if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
                die("not an HTTP answer: %.200s", buf);
        body = strndup(buf + header_len, body_len);
        if (!body)
                die("out of memory");
        memmove(buf, buf + header_len + body_len, have - header_len - body_len);
        have -= header_len + body_len;
        *ret_status = status;
        *ret_body = body;
        return true;
}

/* One request; *ret_sent_ns (if not NULL) is CLOCK_REALTIME just before
 * the request is written. A keep-alive connection the server closed
 * meanwhile is reopened once, before anything is timed. */
static int http(const char *method, const char *target, const char *body, uint64_t *ret_sent_ns, char **ret_body) {
        char *request;
        int status, n;

        n = asprintf(&request,
                     "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, target, body ? strlen(body) : 0, body ? body : "");
        if (n < 0)
                die("out of memory");
        for (int attempt = 0;; attempt++) {
                if (conn_fd < 0)
                        conn_open();
                if (ret_sent_ns)
                        *ret_sent_ns = now_ns(CLOCK_REALTIME);
                if (write_all(conn_fd, request, (size_t) n) && read_answer(&status, ret_body))
                        break;
                conn_close();
                if (attempt > 0)
                        die("makima-api closed the connection during %s %s", method, target);
        }
        free(request);
        return status;
}

/* The string value of "key" in a JSON text (no escapes in the values we read). */
static char *json_string_field(const char *json, const char *key) {
        char pattern[64];
        const char *p, *q;

        (void) snprintf(pattern, sizeof(pattern), "\"%s\"", key);
        p = strstr(json, pattern);
        if (!p)
                return NULL;
        p += strlen(pattern);
        p += strspn(p, " :");
        if (*p != '"')
                return NULL;
        q = strchr(++p, '"');
        return q ? strndup(p, (size_t) (q - p)) : NULL;
}

/* ---- one round of each ---- */

static uint64_t run_floor(unsigned round, const char *repo, const char *floor_dir, char **floor_argv,
                          uint64_t *ret_git_ns) {
        char worktree[4096], branch[64], line[64] = "";
        char *argv[256];
        int out[2], status;
        size_t n = 0;
        uint64_t start;
        pid_t pid;

        (void) snprintf(worktree, sizeof(worktree), "%s/floor-%u", floor_dir, round);
        (void) snprintf(branch, sizeof(branch), "bench-floor-%u", round);
        for (char **a = floor_argv; *a && n < sizeof(argv) / sizeof(argv[0]) - 1; a++)
                argv[n++] = strcmp(*a, "{}") == 0 ? worktree : *a;
        argv[n] = NULL;

        start = now_ns(CLOCK_REALTIME);
        pid = fork();
        if (pid < 0)
                die("fork: %m");
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

                (void) dup2(null, STDOUT_FILENO);
                execlp("git", "git", "-C", repo, "worktree", "add", "-q", "--no-track", "-b", branch, worktree, "main",
                       (char *) NULL);
                _exit(127);
        }
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                die("git worktree add %s failed", worktree);
        *ret_git_ns = now_ns(CLOCK_REALTIME) - start;

        if (pipe2(out, O_CLOEXEC) < 0)
                die("pipe: %m");
        pid = fork();
        if (pid < 0)
                die("fork: %m");
        if (pid == 0) {
                (void) dup2(out[1], STDOUT_FILENO);
                execvp(argv[0], argv);
                _exit(127);
        }
        (void) close(out[1]);
        for (size_t have = 0;;) {
                ssize_t k = read(out[0], line + have, sizeof(line) - 1 - have);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                have += (size_t) k;
        }
        (void) close(out[0]);
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                die("the floor's bwrap failed (status %d); run it by hand: %s …", status, argv[0]);
        uint64_t exec_ns = strtoull(line, NULL, 10);
        if (exec_ns < start)
                die("the floor's agent printed no time after the start: '%s'", line);
        return exec_ns - start;
}

static uint64_t run_dispatch(unsigned round, const char *repo, char **ret_id, uint64_t *ret_posted_ns) {
        char *body, *answer, *id, *status = NULL, *target, *p;
        uint64_t posted, deadline, exec_ns;
        int code;

        if (asprintf(&body, "{\"plan\":\"bench/dispatch round %u\",\"repo\":\"%s\",\"name\":\"dispatch-%u\"}", round,
                     repo, round) < 0)
                die("out of memory");
        code = http("POST", "/api/v1/tasks", body, &posted, &answer);
        if (code != 201)
                die("POST /api/v1/tasks answered %d: %.300s", code, answer);
        id = json_string_field(answer, "id");
        if (!id)
                die("no task id in %.300s", answer);
        free(answer);
        free(body);

        /* Until the task is over: the worker is idle again for the next round. */
        if (asprintf(&target, "/api/v1/tasks/%s", id) < 0)
                die("out of memory");
        deadline = now_ns(CLOCK_MONOTONIC) + TASK_TIMEOUT_NS;
        for (;;) {
                sleep_ns(POLL_INTERVAL_NS);
                code = http("GET", target, NULL, NULL, &answer);
                if (code != 200)
                        die("GET %s answered %d: %.300s", target, code, answer);
                free(status);
                status = json_string_field(answer, "status");
                if (status && strcmp(status, "pending") != 0 && strcmp(status, "running") != 0)
                        break;
                free(answer);
                if (now_ns(CLOCK_MONOTONIC) > deadline)
                        die("task %s is still %s after %llu s; is the worker running?", id, status ? status : "?",
                            TASK_TIMEOUT_NS / 1000000000ULL);
        }
        if (strcmp(status, "done") != 0)
                die("task %s ended %s: %.500s", id, status, answer);
        free(answer);
        free(status);
        free(target);

        if (asprintf(&target, "/api/v1/tasks/%s/events?limit=1000", id) < 0)
                die("out of memory");
        code = http("GET", target, NULL, NULL, &answer);
        if (code != 200)
                die("GET %s answered %d: %.300s", target, code, answer);
        p = strstr(answer, "\"bench_exec_realtime_ns\"");
        if (!p)
                die("task %s: the agent's system/init line is not among its events: %.500s", id, answer);
        p += strlen("\"bench_exec_realtime_ns\"");
        p += strspn(p, " :");
        exec_ns = strtoull(p, NULL, 10);
        free(answer);
        free(target);
        if (exec_ns < posted)
                die("task %s: the agent started before the task was posted?", id);
        *ret_id = id;
        *ret_posted_ns = posted;
        return exec_ns - posted;
}

int main(int argc, char **argv) {
        const char *repo, *floor_dir;
        unsigned rounds;

        if (argc < 7 || strcmp(argv[5], "--") != 0)
                die("usage: dispatch-client SOCKET REPO ROUNDS FLOOR-DIR -- FLOOR-COMMAND…");
        socket_path = argv[1];
        repo = argv[2];
        rounds = (unsigned) strtoul(argv[3], NULL, 10);
        floor_dir = argv[4];
        if (strpbrk(repo, "\"\\"))
                die("the repository path must not need JSON escaping: %s", repo);
        if (argc - 6 > 200)
                die("the floor command is too long");

        for (unsigned round = 1; round <= rounds; round++) {
                uint64_t floor_ns, git_ns, dispatch_ns, posted_ns;
                char *id;

                /* Taking turns, so that outside load hits both alike. */
                floor_ns = run_floor(round, repo, floor_dir, argv + 6, &git_ns);
                dispatch_ns = run_dispatch(round, repo, &id, &posted_ns);
                printf("%u %llu %llu %llu %s %llu\n", round, (unsigned long long) floor_ns,
                       (unsigned long long) dispatch_ns, (unsigned long long) git_ns, id,
                       (unsigned long long) posted_ns);
                fflush(stdout);
                free(id);
        }
        conn_close();
        return 0;
}
