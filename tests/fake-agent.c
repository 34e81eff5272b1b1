/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A scripted stand-in for the Claude Code CLI that makima-worker runs as
 * [Agent] Command= in tests/test-worker.sh. It speaks the CLI's stream-json
 * protocol with lines shaped like those recorded in
 * tests/fake-anthropic/README.md, and does what "fake:" lines in its prompt
 * say, so each task of a test picks its own behaviour:
 *
 *   fake: write NAME TEXT   write NAME in the cwd (as the Write tool would)
 *   fake: commit MESSAGE    git add -A && git commit (as Bash would)
 *   fake: child             start a child process that sleeps (it must die with us)
 *   fake: wait              read stdin until a user message or an interrupt arrives
 *   fake: sleep SECONDS     be busy without reading stdin
 *   fake: lines N           print N assistant lines at once
 *   fake: steps N BYTES MS  print N assistant lines "step I" (I from 1), each
 *                           padded to about BYTES, MS milliseconds apart; each
 *                           is a blocking write, so a reader that stops
 *                           reading stops us once the pipe is full
 *   fake: garbage           print a line that is not JSON and one on stderr
 *   fake: ratelimit         a rejected rate limit, a second later an allowed one
 *   fake: ask               send a control_request of our own, wait for the answer
 *   fake: 401               fail like the CLI with an invalid API key (exit 1)
 *   fake: exit N            print on stderr and exit N without a result
 *   fake: crash             abort() in the middle of the turn
 *   fake: linger SECONDS    after end of input, wait before exiting
 *   fake: sh COMMAND        run the rest of the line with /bin/sh -c in the cwd, as
 *                           the Bash tool would; its output (stdout and stderr,
 *                           the first 64 KiB) and exit status are the tool result
 *   fake: alloc MIB         allocate and touch MIB MiB of memory, then free it
 *
 * Everything it reads on stdin is logged to $HOME/stdin.log and its
 * arguments to $HOME/args.log, for the test to check. Like the CLI it keeps
 * its session in $HOME/.claude/projects/<cwd>/<session id>.jsonl, takes
 * --resume, answers each later user line with a turn of its own, and exits
 * when stdin closes: 0 if the last turn's result was not an error. */

#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static FILE *stdin_log;
static char session_id[64];
static char cwd[4096];
static int n_results;
static bool last_is_error;
static unsigned linger;
static unsigned counter;

static void emit(json_object *o) {
        fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), stdout);
        fputc('\n', stdout);
        fflush(stdout);
        json_object_put(o);
}

static json_object *base(const char *type) {
        json_object *o = json_object_new_object();
        char uuid[64];

        json_object_object_add(o, "type", json_object_new_string(type));
        json_object_object_add(o, "session_id", json_object_new_string(session_id));
        snprintf(uuid, sizeof(uuid), "fake-%u-%u", (unsigned) getpid(), ++counter);
        json_object_object_add(o, "uuid", json_object_new_string(uuid));
        return o;
}

static void emit_init(void) {
        json_object *o = base("system");

        json_object_object_add(o, "subtype", json_object_new_string("init"));
        json_object_object_add(o, "cwd", json_object_new_string(cwd));
        json_object_object_add(o, "model", json_object_new_string("fake-model"));
        json_object_object_add(o, "permissionMode", json_object_new_string("bypassPermissions"));
        json_object_object_add(o, "claude_code_version", json_object_new_string("2.1.197"));
        emit(o);
}

/* An assistant line with one content block. */
static void emit_assistant(json_object *block, const char *error) {
        json_object *o = base("assistant"), *msg = json_object_new_object(), *content = json_object_new_array();
        char id[32];

        snprintf(id, sizeof(id), "msg_fake_%u", counter);
        json_object_array_add(content, block);
        json_object_object_add(msg, "id", json_object_new_string(id));
        json_object_object_add(msg, "type", json_object_new_string("message"));
        json_object_object_add(msg, "role", json_object_new_string("assistant"));
        json_object_object_add(msg, "model", json_object_new_string(error ? "<synthetic>" : "fake-model"));
        json_object_object_add(msg, "content", content);
        json_object_object_add(o, "message", msg);
        json_object_object_add(o, "parent_tool_use_id", NULL);
        if (error)
                json_object_object_add(o, "error", json_object_new_string(error));
        emit(o);
}

static void emit_text(const char *text, const char *error) {
        json_object *b = json_object_new_object();

        json_object_object_add(b, "type", json_object_new_string("text"));
        json_object_object_add(b, "text", json_object_new_string(text));
        emit_assistant(b, error);
}

static void emit_tool(const char *name, json_object *input, const char *result) {
        json_object *b = json_object_new_object(), *u = base("user"), *msg = json_object_new_object(),
                    *content = json_object_new_array(), *r = json_object_new_object();
        char id[32];

        snprintf(id, sizeof(id), "toolu_fake_%u", counter);
        json_object_object_add(b, "type", json_object_new_string("tool_use"));
        json_object_object_add(b, "id", json_object_new_string(id));
        json_object_object_add(b, "name", json_object_new_string(name));
        json_object_object_add(b, "input", input);
        emit_assistant(b, NULL);

        json_object_object_add(r, "tool_use_id", json_object_new_string(id));
        json_object_object_add(r, "type", json_object_new_string("tool_result"));
        json_object_object_add(r, "content", json_object_new_string(result));
        json_object_array_add(content, r);
        json_object_object_add(msg, "role", json_object_new_string("user"));
        json_object_object_add(msg, "content", content);
        json_object_object_add(u, "message", msg);
        emit(u);
}

static void emit_result(bool is_error, const char *subtype, const char *text, int api_status) {
        json_object *o = base("result");

        n_results++;
        last_is_error = is_error;
        json_object_object_add(o, "subtype", json_object_new_string(subtype));
        json_object_object_add(o, "is_error", json_object_new_boolean(is_error));
        json_object_object_add(o, "api_error_status", api_status ? json_object_new_int(api_status) : NULL);
        json_object_object_add(o, "duration_ms", json_object_new_int(12));
        json_object_object_add(o, "num_turns", json_object_new_int(1));
        if (text)
                json_object_object_add(o, "result", json_object_new_string(text));
        json_object_object_add(o, "total_cost_usd", json_object_new_double(is_error ? 0 : 0.0125 * n_results));
        json_object_object_add(o, "terminal_reason", json_object_new_string("completed"));
        emit(o);
}

/* The text of a user line's message, or NULL. */
static const char *user_text(json_object *o) {
        json_object *msg, *content;

        if (!json_object_object_get_ex(o, "message", &msg) || !json_object_object_get_ex(msg, "content", &content))
                return NULL;
        return json_object_get_string(content);
}

static const char *type_of(json_object *o) {
        json_object *t;

        return json_object_object_get_ex(o, "type", &t) ? json_object_get_string(t) : "";
}

/* One stdin line, logged; NULL at end of input. */
static json_object *read_line(void) {
        static char *line = NULL;
        static size_t n = 0;
        ssize_t k;

        for (;;) {
                json_object *o;

                k = getline(&line, &n, stdin);
                if (k < 0)
                        return NULL;
                fputs(line, stdin_log);
                fflush(stdin_log);
                if (k <= 1)
                        continue;       /* the CLI ignores empty lines */
                o = json_tokener_parse(line);
                if (!o) {
                        fprintf(stderr, "Error parsing streaming input line: %s", line);
                        exit(1);
                }
                return o;
        }
}

static void interrupted(json_object *req) {
        json_object *o = json_object_new_object(), *resp = json_object_new_object(), *id;

        json_object_object_get_ex(req, "request_id", &id);
        json_object_object_add(resp, "subtype", json_object_new_string("success"));
        json_object_object_add(resp, "request_id", json_object_get(id));
        json_object_object_add(o, "type", json_object_new_string("control_response"));
        json_object_object_add(o, "response", resp);
        emit(o);
        emit_result(true, "error_during_execution", NULL, 0);
}

static void git_commit(const char *message) {
        char cmd[1024];
        int r;

        snprintf(cmd, sizeof(cmd), "git add -A && git -c user.name=agent -c user.email=agent@example.invalid "
                 "commit -q -m '%s'", message);
        r = system(cmd);
        emit_tool("Bash", json_object_new_string(cmd), r == 0 ? "(Bash completed with no output)" : "git failed");
}

/* The Bash tool: a shell command, its output and exit status as the result. */
static void run_shell(const char *command) {
        static char out[65536 + 64];
        size_t n = 0, k;
        char cmd[8192];
        FILE *p;
        int status;

        snprintf(cmd, sizeof(cmd), "exec 2>&1 </dev/null; %s", command);
        p = popen(cmd, "re");
        if (!p) {
                emit_tool("Bash", json_object_new_string(command), "popen failed");
                return;
        }
        while ((k = fread(out + n, 1, 65536 - n, p)) > 0)
                n += k;
        /* Drain the rest, so the command never blocks on a full pipe. */
        while (fread(cmd, 1, sizeof(cmd), p) > 0)
                ;
        status = pclose(p);
        snprintf(out + n, sizeof(out) - n, "\n[exit %d]", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        emit_tool("Bash", json_object_new_string(command), out);
}

/* Runs the "fake:" lines of a prompt. Returns false if the turn ended early. */
static bool run_directives(const char *prompt) {
        char *copy = strdup(prompt), *save = NULL;

        for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                char *arg;

                if (strncmp(l, "fake: ", 6) != 0)
                        continue;
                l += 6;
                arg = strchr(l, ' ');
                if (arg)
                        *arg++ = '\0';

                if (strcmp(l, "write") == 0 && arg) {
                        char *text = strchr(arg, ' ');
                        FILE *f;

                        if (text)
                                *text++ = '\0';
                        f = fopen(arg, "we");
                        if (f) {
                                fprintf(f, "%s\n", text ? text : "");
                                fclose(f);
                        }
                        json_object *in = json_object_new_object();
                        json_object_object_add(in, "file_path", json_object_new_string(arg));
                        emit_tool("Write", in, f ? "File created successfully" : "Error writing file");
                } else if (strcmp(l, "commit") == 0)
                        git_commit(arg ? arg : "fake agent commit");
                else if (strcmp(l, "child") == 0) {
                        if (fork() == 0) {
                                execl("/bin/sleep", "sleep", "600", (char *) NULL);
                                _exit(127);
                        }
                } else if (strcmp(l, "wait") == 0) {
                        json_object *o;

                        while ((o = read_line())) {
                                if (strcmp(type_of(o), "control_request") == 0) {
                                        interrupted(o);
                                        json_object_put(o);
                                        free(copy);
                                        return false;
                                }
                                if (strcmp(type_of(o), "user") == 0) {
                                        char buf[4096];

                                        snprintf(buf, sizeof(buf), "got: %s", user_text(o) ?: "");
                                        emit_text(buf, NULL);
                                        json_object_put(o);
                                        break;
                                }
                                json_object_put(o);
                        }
                } else if (strcmp(l, "sleep") == 0 && arg)
                        sleep((unsigned) atoi(arg));
                else if (strcmp(l, "lines") == 0 && arg) {
                        long n = atol(arg);

                        setvbuf(stdout, NULL, _IOFBF, 1 << 16);
                        for (long i = 0; i < n; i++)
                                printf("{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_%ld\",\"role\":\"assistant\","
                                       "\"content\":[{\"type\":\"text\",\"text\":\"line %ld\"}]},\"session_id\":\"%s\"}\n",
                                       i, i, session_id);
                        fflush(stdout);
                } else if (strcmp(l, "steps") == 0 && arg) {
                        long n = 0, bytes = 0, ms = 0;

                        if (sscanf(arg, "%ld %ld %ld", &n, &bytes, &ms) < 1)
                                continue;
                        for (long i = 1; i <= n; i++) {
                                char text[64];
                                long pad = bytes - 200;

                                snprintf(text, sizeof(text), "step %ld", i);
                                printf("{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_step_%ld\",\"role\":"
                                       "\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"%s\"}]},"
                                       "\"padding\":\"", i, text);
                                for (long k = 0; k < pad; k++)
                                        putchar('.');
                                printf("\",\"session_id\":\"%s\"}\n", session_id);
                                fflush(stdout);
                                if (ms > 0)
                                        nanosleep(&(struct timespec) { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L },
                                                  NULL);
                        }
                } else if (strcmp(l, "garbage") == 0) {
                        printf("this is not JSON {\n");
                        fflush(stdout);
                        fprintf(stderr, "warning: the fake agent says something on stderr\n");
                } else if (strcmp(l, "ratelimit") == 0) {
                        for (int i = 0; i < 2; i++) {
                                printf("{\"type\":\"rate_limit_event\",\"rate_limit_info\":{\"status\":\"%s\","
                                       "\"resetsAt\":%ld,\"rateLimitType\":\"five_hour\"},\"session_id\":\"%s\"}\n",
                                       i == 0 ? "rejected" : "allowed", (long) time(NULL) + 1, session_id);
                                fflush(stdout);
                                if (i == 0)
                                        sleep(1);
                        }
                } else if (strcmp(l, "ask") == 0) {
                        json_object *o;

                        printf("{\"type\":\"control_request\",\"request_id\":\"fake-ask-1\",\"request\":"
                               "{\"subtype\":\"can_use_tool\",\"tool_name\":\"Bash\",\"input\":{\"command\":\"true\"}}}\n");
                        fflush(stdout);
                        while ((o = read_line())) {
                                bool answer = strcmp(type_of(o), "control_response") == 0;

                                json_object_put(o);
                                if (answer)
                                        break;
                        }
                } else if (strcmp(l, "401") == 0) {
                        printf("{\"type\":\"system\",\"subtype\":\"api_retry\",\"attempt\":1,\"max_retries\":1,"
                               "\"retry_delay_ms\":500,\"error_status\":401,\"error\":\"authentication_failed\","
                               "\"session_id\":\"%s\"}\n", session_id);
                        emit_text("Invalid API key · Fix external API key", "authentication_failed");
                        emit_result(true, "success", "Invalid API key · Fix external API key", 401);
                        exit(1);
                } else if (strcmp(l, "exit") == 0) {
                        emit_text("Something is about to go wrong.", NULL);
                        fprintf(stderr, "fatal: the fake agent gives up\n");
                        exit(arg ? atoi(arg) : 1);
                } else if (strcmp(l, "crash") == 0) {
                        emit_text("About to crash.", NULL);
                        abort();
                } else if (strcmp(l, "linger") == 0 && arg)
                        linger = (unsigned) atoi(arg);
                else if (strcmp(l, "sh") == 0 && arg)
                        run_shell(arg);
                else if (strcmp(l, "alloc") == 0 && arg) {
                        size_t n = (size_t) atol(arg) << 20;
                        char *m = malloc(n);

                        for (size_t i = 0; m && i < n; i += 4096)
                                m[i] = 1;
                        emit_text(m ? "allocated" : "malloc failed", NULL);
                        free(m);
                }
        }
        free(copy);
        return true;
}

static void turn(const char *prompt) {
        char text[512];

        if (!run_directives(prompt))
                return;
        snprintf(text, sizeof(text), "Done: uid=%u, %d turn(s)", (unsigned) getuid(), n_results + 1);
        emit_text(text, NULL);
        emit_result(false, "success", text, 0);
}

/* The CLI's own place for a session, so the worker can tell it exists. */
static void save_session(const char *home) {
        char dir[8192], path[8300], mangled[4096];
        FILE *f;

        snprintf(mangled, sizeof(mangled), "%s", cwd);
        for (char *p = mangled; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
                        *p = '-';
        snprintf(dir, sizeof(dir), "%s/.claude", home);
        mkdir(dir, 0700);
        snprintf(dir, sizeof(dir), "%s/.claude/projects", home);
        mkdir(dir, 0700);
        snprintf(dir, sizeof(dir), "%s/.claude/projects/%s", home, mangled);
        mkdir(dir, 0700);
        snprintf(path, sizeof(path), "%s/%s.jsonl", dir, session_id);
        f = fopen(path, "ae");
        if (f)
                fclose(f);
}

int main(int argc, char *argv[]) {
        const char *home = getenv("HOME") ?: "/tmp";
        char path[4200];
        json_object *o;
        FILE *args;

        if (!getcwd(cwd, sizeof(cwd)))
                return 1;
        snprintf(path, sizeof(path), "%s/stdin.log", home);
        stdin_log = fopen(path, "ae");
        snprintf(path, sizeof(path), "%s/args.log", home);
        args = fopen(path, "ae");
        if (!stdin_log || !args)
                return 1;
        for (int i = 0; i < argc; i++)
                fprintf(args, "%s%s", argv[i], i + 1 < argc ? "\x1f" : "\n");
        fclose(args);

        snprintf(session_id, sizeof(session_id), "fake-session-%.8s-%ld", getenv("MAKIMA_TASK_ID") ?: "none",
                 (long) time(NULL));
        for (int i = 1; i + 1 < argc; i++)
                if (strcmp(argv[i], "--resume") == 0)
                        snprintf(session_id, sizeof(session_id), "%s", argv[i + 1]);
        save_session(home);

        /* Like the CLI: nothing on stdout before the first input line. */
        while ((o = read_line())) {
                if (strcmp(type_of(o), "user") == 0) {
                        emit_init();
                        turn(user_text(o) ?: "");
                } else if (strcmp(type_of(o), "control_request") == 0)
                        interrupted(o);
                json_object_put(o);
        }
        if (linger > 0)
                sleep(linger);
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
        return n_results > 0 && !last_is_error ? 0 : 1;
}
