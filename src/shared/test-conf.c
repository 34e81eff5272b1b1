/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests of the makima.conf parser: every key, defaults, drop-ins, lists,
 * quoting, continuations, and that each kind of bad input is an error whose
 * message names the file and line (read back from stderr). */

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "conf.h"
#include "log.h"
#include "tests.h"

static char tmpdir[] = "/tmp/test-conf-XXXXXX";

/* Sends stderr to a memfd until capture_end(), which hands back what was logged. */
static int capture_fd = -EBADF, saved_stderr = -EBADF;

static void capture_begin(void) {
        fflush(stderr);
        capture_fd = memfd_create("stderr", MFD_CLOEXEC);
        assert_se(capture_fd >= 0);
        saved_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        assert_se(saved_stderr >= 0);
        assert_se(dup2(capture_fd, STDERR_FILENO) == STDERR_FILENO);
}

static char *capture_end(void) {
        off_t size;
        char *buf;

        fflush(stderr);
        assert_se(dup2(saved_stderr, STDERR_FILENO) == STDERR_FILENO);
        close(TAKE_FD(saved_stderr));
        size = lseek(capture_fd, 0, SEEK_END);
        assert_se(size >= 0);
        buf = calloc(1, (size_t) size + 1);
        assert_se(buf);
        assert_se(pread(capture_fd, buf, (size_t) size, 0) == size);
        close(TAKE_FD(capture_fd));
        return buf;
}

static int parse_capture(Config *c, const char *name, const char *text, char **ret_log) {
        int r;

        capture_begin();
        r = config_parse_string(c, name, text);
        *ret_log = capture_end();
        return r;
}

/* Parses text into a fresh Config and expects success with nothing logged. */
static void parse_ok(Config *c, const char *text) {
        _cleanup_free_ char *log = NULL;

        assert_se(config_init(c) == 0);
        assert_se(parse_capture(c, "test.conf", text, &log) == 0);
        if (!isempty(log)) {
                fprintf(stderr, "unexpected log output for:\n%s\n---\n%s", text, log);
                abort();
        }
}

/* Expects -EINVAL and a log line containing "file:line:" and each of the given strings. */
static void parse_fail(const char *text, unsigned line, const char *must1, const char *must2) {
        _cleanup_free_ char *log = NULL, *where = NULL;
        Config c;

        assert_se(config_init(&c) == 0);
        assert_se(asprintf(&where, "bad.conf:%u:", line) > 0);
        assert_se(parse_capture(&c, "bad.conf", text, &log) == -EINVAL);
        if (!strstr(log, where) || (must1 && !strstr(log, must1)) || (must2 && !strstr(log, must2))) {
                fprintf(stderr, "for input:\n%s\nexpected '%s', '%s', '%s' in log:\n%s\n", text, where,
                        strna(must1), strna(must2), log);
                abort();
        }
        config_done(&c);
}

static void test_defaults(void) {
        Config c;

        assert_se(config_init(&c) == 0);
        assert_se(c.state_dir == NULL);
        assert_se(c.store_backend == STORE_BACKEND_SQLITE);
        assert_se(c.store_path == NULL);
        assert_se(c.store_url == NULL);
        assert_se(strv_length(c.api_listen) == 0);
        assert_se(c.api_max_body_bytes == 1024 * 1024);
        assert_se(c.api_max_header_bytes == 16 * 1024);
        assert_se(c.api_max_connections == 256);
        assert_se(c.api_max_connections_per_ip == 64);
        assert_se(c.api_connection_timeout == 30 * USEC_PER_SEC);
        assert_se(c.api_request_head_timeout == 10 * USEC_PER_SEC);
        assert_streq(c.api_admin_group, "makima");
        assert_se(c.worker_max_concurrent_tasks == 2);
        assert_se(c.worker_worktree_dir == NULL);
        assert_se(c.worker_poll_interval == 30 * USEC_PER_SEC);
        assert_se(c.worker_lease == 60 * USEC_PER_SEC);
        assert_se(c.worker_store_retry == 30 * USEC_PER_SEC);
        assert_streq(c.agent_command, "claude");
        assert_se(strv_length(c.agent_environment) == 0);
        assert_se(strv_length(c.agent_extra_args) == 0);
        assert_se(c.sandbox_enabled);
        assert_se(c.sandbox_network);
        assert_se(strv_length(c.sandbox_read_only_paths) == 0);
        assert_se(strv_length(c.sandbox_read_write_paths) == 0);
        assert_se(c.loop_default_max_iterations == 10);
        assert_se(c.loop_hard_limit == 50);
        assert_se(c.loop_no_change_threshold == 3);
        assert_se(c.loop_same_error_threshold == 5);
        config_done(&c);
        config_done(&c);        /* twice is harmless */
        config_done(NULL);
}

static void test_every_key(void) {
        Config c;

        parse_ok(&c,
                 "# every key, set away from its default\n"
                 "[Store]\n"
                 "Backend=postgresql\n"
                 "Path=/srv/makima/db.sqlite\n"
                 "URL=host=db.example dbname=makima user=makima\n"
                 "\n"
                 "[API]\n"
                 "Listen=unix:/run/makima/api.sock\n"
                 "Listen=127.0.0.1:8080\n"
                 "Listen=[::1]:8081\n"
                 "MaxBodyBytes=4M\n"
                 "MaxHeaderBytes=32K\n"
                 "MaxConnections=1000\n"
                 "MaxConnectionsPerIP=0\n"
                 "ConnectionTimeoutSec=45\n"
                 "RequestHeadTimeoutSec=3\n"
                 "AdminGroup=wheel\n"
                 "[Worker]\n"
                 "MaxConcurrentTasks=8\n"
                 "WorktreeDir=/srv/worktrees\n"
                 "PollIntervalSec=5\n"
                 "LeaseSec=120\n"
                 "StoreRetrySec=7\n"
                 "[Agent]\n"
                 "Command=/usr/local/bin/claude\n"
                 "Environment=ANTHROPIC_MODEL=opus DEBUG=1\n"
                 "ExtraArgs=--model opus\n"
                 "[Sandbox]\n"
                 "Enabled=no\n"
                 "Network=false\n"
                 "ReadOnlyPaths=/opt/tools /usr/share/dict\n"
                 "ReadWritePaths=/var/cache/ccache\n"
                 "[AutonomousLoop]\n"
                 "DefaultMaxIterations=20\n"
                 "HardLimit=100\n"
                 "NoChangeThreshold=4\n"
                 "SameErrorThreshold=6\n");

        assert_se(c.store_backend == STORE_BACKEND_POSTGRESQL);
        assert_streq(c.store_path, "/srv/makima/db.sqlite");
        assert_streq(c.store_url, "host=db.example dbname=makima user=makima");
        assert_strv(c.api_listen, "unix:/run/makima/api.sock", "127.0.0.1:8080", "[::1]:8081");
        assert_se(c.api_max_body_bytes == 4 * 1024 * 1024);
        assert_se(c.api_max_header_bytes == 32 * 1024);
        assert_se(c.api_max_connections == 1000);
        assert_se(c.api_max_connections_per_ip == 0);
        assert_se(c.api_connection_timeout == 45 * USEC_PER_SEC);
        assert_se(c.api_request_head_timeout == 3 * USEC_PER_SEC);
        assert_streq(c.api_admin_group, "wheel");
        assert_se(c.worker_max_concurrent_tasks == 8);
        assert_streq(c.worker_worktree_dir, "/srv/worktrees");
        assert_se(c.worker_poll_interval == 5 * USEC_PER_SEC);
        assert_se(c.worker_lease == 120 * USEC_PER_SEC);
        assert_se(c.worker_store_retry == 7 * USEC_PER_SEC);
        assert_streq(c.agent_command, "/usr/local/bin/claude");
        assert_strv(c.agent_environment, "ANTHROPIC_MODEL=opus", "DEBUG=1");
        assert_strv(c.agent_extra_args, "--model", "opus");
        assert_se(!c.sandbox_enabled);
        assert_se(!c.sandbox_network);
        assert_strv(c.sandbox_read_only_paths, "/opt/tools", "/usr/share/dict");
        assert_strv(c.sandbox_read_write_paths, "/var/cache/ccache");
        assert_se(c.loop_default_max_iterations == 20);
        assert_se(c.loop_hard_limit == 100);
        assert_se(c.loop_no_change_threshold == 4);
        assert_se(c.loop_same_error_threshold == 6);
        config_done(&c);
}

static void test_syntax(void) {
        Config c;

        /* Comments of both kinds, blank lines, white space around '=' and the header, CRLF. */
        parse_ok(&c,
                 "; a comment\r\n"
                 "   # an indented comment\r\n"
                 "\r\n"
                 "  [Worker]  \r\n"
                 "  MaxConcurrentTasks   =   7   \r\n"
                 "\t\n"
                 "[Agent]\n"
                 "Command = my agent \n"
                 "Environment=A=x=y\n");
        assert_se(c.worker_max_concurrent_tasks == 7);
        assert_streq(c.agent_command, "my agent");
        assert_strv(c.agent_environment, "A=x=y");     /* only the first '=' splits */
        config_done(&c);

        /* Later assignment wins for scalars; an empty one brings back the default. */
        parse_ok(&c,
                 "[Worker]\nMaxConcurrentTasks=3\nMaxConcurrentTasks=4\nLeaseSec=10\nLeaseSec=\n"
                 "[Agent]\nCommand=foo\nCommand=\n"
                 "[Store]\nBackend=postgresql\nBackend=\nPath=/a\nPath=\n"
                 "[Sandbox]\nEnabled=off\nEnabled=\n"
                 "[API]\nMaxBodyBytes=1\nMaxBodyBytes=\nAdminGroup=x\nAdminGroup=\n");
        assert_se(c.worker_max_concurrent_tasks == 4);
        assert_se(c.worker_lease == 60 * USEC_PER_SEC);
        assert_se(c.worker_store_retry == 30 * USEC_PER_SEC);
        assert_streq(c.agent_command, "claude");
        assert_se(c.store_backend == STORE_BACKEND_SQLITE);
        assert_se(c.store_path == NULL);
        assert_se(c.sandbox_enabled);
        assert_se(c.api_max_body_bytes == 1024 * 1024);
        assert_streq(c.api_admin_group, "makima");
        config_done(&c);

        /* A section may appear twice; its keys keep accumulating. */
        parse_ok(&c, "[API]\nListen=a:1\n[Worker]\n[API]\nListen=b:2\n");
        assert_strv(c.api_listen, "a:1", "b:2");
        config_done(&c);

        /* Every address form makima-api's --listen takes. */
        parse_ok(&c, "[API]\nListen=unix:@abstract\nListen=/run/m.sock\nListen=:8080\nListen=*:8080\n"
                     "Listen=0.0.0.0:65535\nListen=[fe80::1]:1\nListen=localhost:80\n");
        assert_strv(c.api_listen, "unix:@abstract", "/run/m.sock", ":8080", "*:8080", "0.0.0.0:65535",
                    "[fe80::1]:1", "localhost:80");
        config_done(&c);

        /* No text is an error; no name is allowed. */
        assert_se(config_init(&c) == 0);
        assert_se(config_parse_string(&c, "x", NULL) == -EINVAL);
        assert_se(config_parse_string(&c, NULL, "[Worker]\nLeaseSec=3\n") == 0);
        assert_se(c.worker_lease == 3 * USEC_PER_SEC);
        config_done(&c);

        /* Empty text and text without a final newline. */
        parse_ok(&c, "");
        config_done(&c);
        parse_ok(&c, "[Worker]\nLeaseSec=9");
        assert_se(c.worker_lease == 9 * USEC_PER_SEC);
        config_done(&c);
}

static void test_lists(void) {
        Config c;

        parse_ok(&c,
                 "[API]\n"
                 "Listen=a:1\nListen=b:2\nListen=\nListen=c:3\n"
                 "[Agent]\n"
                 "ExtraArgs=--one\nExtraArgs=--two three\n"
                 "Environment=A=1 B=2\nEnvironment=C=3\nEnvironment=A=9\n"
                 "[Sandbox]\n"
                 "ReadOnlyPaths=/a\nReadOnlyPaths=\n"
                 "ReadWritePaths=/x\nReadWritePaths=/y \"/with space\"\n");
        assert_strv(c.api_listen, "c:3");
        assert_strv(c.agent_extra_args, "--one", "--two", "three");
        /* A later value for a name replaces it in place. */
        assert_strv(c.agent_environment, "A=9", "B=2", "C=3");
        assert_se(strv_length(c.sandbox_read_only_paths) == 0);
        assert_strv(c.sandbox_read_write_paths, "/x", "/y", "/with space");
        config_done(&c);

        parse_ok(&c, "[Agent]\nExtraArgs=a b\nExtraArgs=\nEnvironment=X=1\nEnvironment=\nEnvironment=Y=2\n");
        assert_se(strv_length(c.agent_extra_args) == 0);
        assert_strv(c.agent_environment, "Y=2");
        config_done(&c);

        /* A list holds at most 4096 entries, however they are spread over lines. */
        {
                _cleanup_free_ char *text = NULL;
                size_t n = 0;

                text = malloc(4096 * 3 + 128);
                assert_se(text);
                n += sprintf(text, "[Agent]\nExtraArgs=");
                for (unsigned i = 0; i < 4095; i++)
                        n += sprintf(text + n, "%c%c ", 'a' + i % 26, 'a' + i / 26 % 26);
                n += sprintf(text + n, "\nExtraArgs=last\n");
                parse_ok(&c, text);
                assert_se(strv_length(c.agent_extra_args) == 4096);
                config_done(&c);
                sprintf(text + n, "ExtraArgs=one-too-many\n");
                parse_fail(text, 4, "ExtraArgs", "at most 4096");
        }
}

static void test_quoting(void) {
        Config c;

        parse_ok(&c,
                 "[Agent]\n"
                 "ExtraArgs=--append-system-prompt \"be brief, be right\" 'single \"quoted\"' a\\ b \"x\\\"y\" "
                 "pre\"mid dle\"post '' \\t\\n\n"
                 "Environment=\"GREETING=hello world\" 'PATH=/a b:/c' ESCAPED=\\\"q\\\" EMPTY=\n");
        assert_strv(c.agent_extra_args, "--append-system-prompt", "be brief, be right", "single \"quoted\"", "a b",
                    "x\"y", "premid dlepost", "", "\t\n");
        assert_strv(c.agent_environment, "GREETING=hello world", "PATH=/a b:/c", "ESCAPED=\"q\"", "EMPTY=");
        config_done(&c);
}

static void test_continuation(void) {
        _cleanup_free_ char *log = NULL;
        Config c;

        parse_ok(&c,
                 "[Agent]\n"
                 "ExtraArgs=--one \\\n"
                 "          --two \\\n"
                 "# a comment inside a continuation is skipped\n"
                 "          --three\n"
                 "Environment=A=1\\\n"
                 "B=2\n"
                 "Command=ends-with-escaped-backslash\\\\\n"
                 "[Worker]\n"
                 "MaxConcurrentTasks=\\\n"
                 "5\n");
        assert_strv(c.agent_extra_args, "--one", "--two", "--three");
        /* The backslash becomes a space, so this is two words. */
        assert_strv(c.agent_environment, "A=1", "B=2");
        assert_streq(c.agent_command, "ends-with-escaped-backslash\\\\");
        assert_se(c.worker_max_concurrent_tasks == 5);
        config_done(&c);

        /* "1\" + "0" is "1 0", not a number; reported at the first physical line. */
        parse_fail("[Worker]\nLeaseSec=1\\\n0\n", 2, "LeaseSec", "1 0");

        /* A continuation on the last line just ends the file, also when only comments follow. */
        parse_ok(&c, "[Agent]\nExtraArgs=a \\");
        assert_strv(c.agent_extra_args, "a");
        config_done(&c);
        parse_ok(&c, "[Agent]\nExtraArgs=a \\\nb \\\n# trailing comment\n");
        assert_strv(c.agent_extra_args, "a", "b");
        config_done(&c);

        /* A comment line is never continued. */
        parse_ok(&c, "[Agent]\n# comment \\\nCommand=x\n");
        assert_streq(c.agent_command, "x");
        config_done(&c);

        /* Line numbers keep counting physical lines after a continuation. */
        assert_se(config_init(&c) == 0);
        assert_se(parse_capture(&c, "cont.conf", "[Agent]\nExtraArgs=a \\\n b\n\nBogus=1\n", &log) == 0);
        assert_se(strstr(log, "cont.conf:5: Unknown key 'Bogus' in section [Agent], ignoring."));
        config_done(&c);
}

static void test_errors(void) {
        parse_fail("[Worker]\nMaxConcurrentTasks=abc\n", 2, "MaxConcurrentTasks", "'abc'");
        parse_fail("[Worker]\nMaxConcurrentTasks=0\n", 2, "MaxConcurrentTasks", "'0'");
        parse_fail("[Worker]\nMaxConcurrentTasks=1025\n", 2, "MaxConcurrentTasks", "1..1024");
        parse_fail("[Worker]\nMaxConcurrentTasks=-1\n", 2, "MaxConcurrentTasks", "'-1'");
        parse_fail("[Worker]\nMaxConcurrentTasks=+3\n", 2, "MaxConcurrentTasks", "'+3'");
        parse_fail("[Worker]\nMaxConcurrentTasks=0x10\n", 2, "MaxConcurrentTasks", "'0x10'");
        parse_fail("[Worker]\nMaxConcurrentTasks=99999999999999999999999\n", 2, "MaxConcurrentTasks", "9999");
        parse_fail("[Worker]\nPollIntervalSec=30s\n", 2, "PollIntervalSec", "'30s'");
        parse_fail("[Worker]\nLeaseSec=0\n", 2, "LeaseSec", "'0'");
        parse_fail("[Worker]\nWorktreeDir=relative/dir\n", 2, "WorktreeDir", "relative/dir");
        parse_fail("# x\n\n[Store]\nBackend=mysql\n", 4, "Backend", "'mysql'");
        parse_fail("[Store]\nPath=db.sqlite\n", 2, "Path", "db.sqlite");
        parse_fail("[API]\nListen=nonsense\n", 2, "Listen", "nonsense");
        parse_fail("[API]\nListen=host:0\n", 2, "Listen", "host:0");
        parse_fail("[API]\nListen=host:65536\n", 2, "Listen", "host:65536");
        parse_fail("[API]\nListen=::1:80\n", 2, "Listen", "::1:80");
        parse_fail("[API]\nListen=unix:\n", 2, "Listen", "unix:");
        parse_fail("[API]\nListen=relative.sock\n", 2, "Listen", "relative.sock");
        parse_fail("[API]\nListen=host:\n", 2, "Listen", "host:");
        parse_fail("[API]\nListen=[]:80\n", 2, "Listen", "[]:80");
        parse_fail("[API]\nListen=[::1:80\n", 2, "Listen", "[::1:80");
        parse_fail("[API]\nListen=/with space.sock\n", 2, "Listen", "/with space.sock");
        parse_fail("[API]\nMaxBodyBytes=1X\n", 2, "MaxBodyBytes", "1X");
        parse_fail("[API]\nMaxBodyBytes=2G\n", 2, "MaxBodyBytes", "2G");
        parse_fail("[API]\nMaxHeaderBytes=100\n", 2, "MaxHeaderBytes", "100");
        parse_fail("[API]\nMaxConnections=0\n", 2, "MaxConnections", "'0'");
        parse_fail("[API]\nConnectionTimeoutSec=1.5\n", 2, "ConnectionTimeoutSec", "1.5");
        parse_fail("[API]\nMaxConnectionsPerIP=65537\n", 2, "MaxConnectionsPerIP", "65537");
        parse_fail("[API]\nMaxConnectionsPerIP=-1\n", 2, "MaxConnectionsPerIP", "-1");
        parse_fail("[API]\nRequestHeadTimeoutSec=0\n", 2, "RequestHeadTimeoutSec", "'0'");
        parse_fail("[API]\nRequestHeadTimeoutSec=3601\n", 2, "RequestHeadTimeoutSec", "3601");
        parse_fail("[API]\nRequestHeadTimeoutSec=10s\n", 2, "RequestHeadTimeoutSec", "10s");
        parse_fail("[API]\nAdminGroup=bad group\n", 2, "AdminGroup", "bad group");
        parse_fail("[API]\nAdminGroup=9lives\n", 2, "AdminGroup", "9lives");
        parse_fail("[Agent]\nEnvironment=FOO\n", 2, "Environment", "FOO");
        parse_fail("[Agent]\nEnvironment=1A=x\n", 2, "Environment", "1A=x");
        parse_fail("[Agent]\nEnvironment=A-B=x\n", 2, "Environment", "A-B=x");
        parse_fail("[Agent]\nEnvironment==x\n", 2, "Environment", "=x");
        parse_fail("[Agent]\nEnvironment=OK=1 \"BROKEN=x\n", 2, "Environment", "BROKEN");
        parse_fail("[Agent]\nExtraArgs=\"unterminated\n", 2, "ExtraArgs", "\"unterminated");
        parse_fail("[Agent]\nExtraArgs='unterminated\n", 2, "ExtraArgs", "'unterminated");
        parse_fail("[Agent]\nExtraArgs=bad\\qescape\n", 2, "ExtraArgs", "bad\\qescape");
        parse_fail("[Sandbox]\nEnabled=maybe\n", 2, "Enabled", "maybe");
        parse_fail("[Sandbox]\nReadOnlyPaths=/ok relative\n", 2, "ReadOnlyPaths", "relative");
        parse_fail("[Sandbox]\nReadWritePaths=\"/open\n", 2, "ReadWritePaths", "/open");
        parse_fail("[AutonomousLoop]\nHardLimit=0\n", 2, "HardLimit", "'0'");
        parse_fail("[AutonomousLoop]\nHardLimit=2147483648\n", 2, "HardLimit", "2147483648");
        parse_fail("[AutonomousLoop]\nNoChangeThreshold=x\n", 2, "NoChangeThreshold", "'x'");
        parse_fail("[AutonomousLoop]\nSameErrorThreshold=\"5\"\n", 2, "SameErrorThreshold", "\"5\"");
        parse_fail("[AutonomousLoop]\nDefaultMaxIterations=ten\n", 2, "DefaultMaxIterations", "ten");

        /* Structural errors. */
        parse_fail("MaxConcurrentTasks=3\n", 1, "outside of any section", "MaxConcurrentTasks=3");
        parse_fail("[Worker]\njust some words\n", 2, "just some words", NULL);
        parse_fail("[Worker]\n=5\n", 2, "without a key", "5");
        parse_fail("[Worker\nLeaseSec=1\n", 1, "section header", "[Worker");
        parse_fail("[]\n", 1, "section header", "[]");
        parse_fail("[A]B]\n", 1, "section header", "[A]B]");
        parse_fail("[Worker] trailing\n", 1, "section header", NULL);

        /* The first error stops the parse: later lines are not applied. */
        {
                _cleanup_free_ char *log = NULL;
                Config c;

                assert_se(config_init(&c) == 0);
                assert_se(parse_capture(&c, "x", "[Worker]\nLeaseSec=bad\nMaxConcurrentTasks=9\n", &log) == -EINVAL);
                assert_se(c.worker_max_concurrent_tasks == 2);
                config_done(&c);
        }
}

static void test_unknown(void) {
        _cleanup_free_ char *log = NULL;
        Config c;

        assert_se(config_init(&c) == 0);
        assert_se(parse_capture(&c, "u.conf",
                                "[API]\nFrobnicate=yes\nMaxConnections=12\n"
                                "[Future]\nShiny=1\n"
                                "[Worker]\nmaxconcurrenttasks=5\n",
                                &log) == 0);
        assert_se(strstr(log, "u.conf:2: Unknown key 'Frobnicate' in section [API], ignoring."));
        assert_se(strstr(log, "u.conf:5: Unknown key 'Shiny' in section [Future], ignoring."));
        /* Keys are case-sensitive, as in systemd. */
        assert_se(strstr(log, "u.conf:7: Unknown key 'maxconcurrenttasks' in section [Worker], ignoring."));
        assert_se(c.api_max_connections == 12);
        assert_se(c.worker_max_concurrent_tasks == 2);
        config_done(&c);

        /* Logging below warning level silences it without changing the result. */
        log = mfree(log);
        log_set_max_level(LOG_ERR);
        assert_se(config_init(&c) == 0);
        assert_se(parse_capture(&c, "u.conf", "[API]\nFrobnicate=yes\n", &log) == 0);
        assert_se(isempty(log));
        config_done(&c);
        log_set_max_level(LOG_INFO);
}

static void write_file(const char *dir, const char *name, const char *text) {
        _cleanup_free_ char *p = NULL;
        FILE *f;

        assert_se(asprintf(&p, "%s/%s", dir, name) > 0);
        f = fopen(p, "we");
        assert_se(f);
        assert_se(fputs(text, f) >= 0);
        assert_se(fclose(f) == 0);
}

static void test_load(void) {
        _cleanup_free_ char *main_conf = NULL, *dropin_dir = NULL, *missing = NULL, *log = NULL;
        Config c;

        assert_se(asprintf(&main_conf, "%s/makima.conf", tmpdir) > 0);
        assert_se(asprintf(&dropin_dir, "%s/makima.conf.d", tmpdir) > 0);
        assert_se(mkdir(dropin_dir, 0755) == 0);
        write_file(tmpdir, "makima.conf",
                   "[Worker]\nMaxConcurrentTasks=3\nLeaseSec=90\n[API]\nListen=main:1\n[Agent]\nExtraArgs=--main\n");
        /* Applied in byte order: 10 before 20 before 9 ('1' < '2' < '9'), and Z before a. */
        write_file(dropin_dir, "20-later.conf", "[Worker]\nMaxConcurrentTasks=20\n[API]\nListen=twenty:20\n");
        write_file(dropin_dir, "10-first.conf", "[Worker]\nMaxConcurrentTasks=10\nPollIntervalSec=7\n");
        write_file(dropin_dir, "9-last.conf", "[Agent]\nExtraArgs=\nExtraArgs=--nine\n");
        write_file(dropin_dir, "Z-upper.conf", "[Worker]\nMaxConcurrentTasks=99\n");
        write_file(dropin_dir, "a-lower.conf", "[Worker]\nMaxConcurrentTasks=42\n");
        write_file(dropin_dir, "ignored.txt", "[Worker]\nMaxConcurrentTasks=1000\n");
        write_file(dropin_dir, ".hidden.conf", "[Worker]\nMaxConcurrentTasks=1000\n");
        write_file(dropin_dir, "conf", "garbage\n");

        assert_se(config_init(&c) == 0);
        assert_se(config_load(&c, main_conf, true) == 0);
        assert_se(c.worker_max_concurrent_tasks == 42);
        assert_se(c.worker_lease == 90 * USEC_PER_SEC);
        assert_se(c.worker_poll_interval == 7 * USEC_PER_SEC);
        assert_strv(c.api_listen, "main:1", "twenty:20");
        assert_strv(c.agent_extra_args, "--nine");
        config_done(&c);

        /* Without drop-ins only the main file counts. */
        assert_se(config_init(&c) == 0);
        assert_se(config_load(&c, main_conf, false) == 0);
        assert_se(c.worker_max_concurrent_tasks == 3);
        assert_strv(c.agent_extra_args, "--main");
        config_done(&c);

        /* A bad drop-in fails the load, naming the drop-in's path and line. */
        write_file(dropin_dir, "50-bad.conf", "[Worker]\n\nMaxConcurrentTasks=abc\n");
        {
                _cleanup_free_ char *p = NULL, *where = NULL;

                assert_se(asprintf(&p, "%s/50-bad.conf", dropin_dir) > 0);
                assert_se(asprintf(&where, "%s:3: ", p) > 0);
                assert_se(config_init(&c) == 0);
                capture_begin();
                assert_se(config_load(&c, main_conf, true) == -EINVAL);
                log = capture_end();
                assert_se(strstr(log, where) && strstr(log, "MaxConcurrentTasks") && strstr(log, "'abc'"));
                log = mfree(log);
                config_done(&c);
                assert_se(unlink(p) == 0);
        }

        /* A missing main file is fine; its drop-ins are still read. */
        assert_se(asprintf(&missing, "%s/makima.conf.d/../missing.conf", tmpdir) > 0);
        assert_se(config_init(&c) == 0);
        assert_se(config_load(&c, missing, true) == 0);
        assert_se(c.worker_max_concurrent_tasks == 2);
        config_done(&c);
        assert_se(rename(main_conf, missing) == 0);
        assert_se(config_init(&c) == 0);
        assert_se(config_load(&c, main_conf, true) == 0);
        assert_se(c.worker_max_concurrent_tasks == 42);
        assert_se(c.worker_lease == 60 * USEC_PER_SEC);
        config_done(&c);
        assert_se(rename(missing, main_conf) == 0);

        /* An unreadable main file is an error (root reads through permissions, so use a directory). */
        assert_se(config_init(&c) == 0);
        capture_begin();
        assert_se(config_load(&c, dropin_dir, false) == -EISDIR);
        log = capture_end();
        assert_se(strstr(log, dropin_dir) && strstr(log, "Is a directory"));
        log = mfree(log);
        config_done(&c);

        /* /dev/null reads as empty; other devices, FIFOs and files over 4 MiB are refused. */
        assert_se(config_init(&c) == 0);
        assert_se(config_load(&c, "/dev/null", false) == 0);
        assert_se(c.worker_max_concurrent_tasks == 2);
        capture_begin();
        assert_se(config_load(&c, "/dev/zero", false) == -EBADFD);
        log = capture_end();
        assert_se(strstr(log, "/dev/zero"));
        log = mfree(log);
        {
                _cleanup_free_ char *p = NULL;
                int fd;

                assert_se(asprintf(&p, "%s/huge.conf", tmpdir) > 0);
                fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                assert_se(fd >= 0);
                assert_se(ftruncate(fd, 4 * 1024 * 1024 + 1) == 0);
                close(fd);
                capture_begin();
                assert_se(config_load(&c, p, false) == -EFBIG);
                log = capture_end();
                assert_se(strstr(log, p));
                log = mfree(log);
                assert_se(unlink(p) == 0);
        }
        config_done(&c);

        /* So is a file with a NUL byte in it. */
        {
                _cleanup_free_ char *p = NULL;
                int fd;

                assert_se(asprintf(&p, "%s/nul.conf", tmpdir) > 0);
                fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                assert_se(fd >= 0);
                assert_se(write(fd, "[Worker]\n\0LeaseSec=5\n", 21) == 21);
                close(fd);
                assert_se(config_init(&c) == 0);
                capture_begin();
                assert_se(config_load(&c, p, false) == -EINVAL);
                log = capture_end();
                assert_se(strstr(log, p) && strstr(log, "NUL"));
                log = mfree(log);
                config_done(&c);
        }
}

static void test_finalize(void) {
        Config c;

        assert_se(unsetenv("STATE_DIRECTORY") == 0);
        assert_se(config_init(&c) == 0);
        assert_se(config_finalize(&c) == 0);
        assert_streq(c.state_dir, "/var/lib/makima");
        assert_streq(c.store_path, "/var/lib/makima/makima.db");
        assert_streq(c.worker_worktree_dir, "/var/lib/makima/worktrees");
        config_done(&c);

        assert_se(setenv("STATE_DIRECTORY", "/var/lib/first:/var/lib/second", 1) == 0);
        assert_se(config_init(&c) == 0);
        assert_se(config_finalize(&c) == 0);
        assert_streq(c.state_dir, "/var/lib/first");
        assert_streq(c.store_path, "/var/lib/first/makima.db");
        assert_streq(c.worker_worktree_dir, "/var/lib/first/worktrees");
        config_done(&c);

        assert_se(setenv("STATE_DIRECTORY", "/srv/only", 1) == 0);
        parse_ok(&c, "[Store]\nPath=/data/m.db\n[Worker]\nWorktreeDir=/data/wt\n");
        assert_se(config_finalize(&c) == 0);
        assert_streq(c.state_dir, "/srv/only");
        assert_streq(c.store_path, "/data/m.db");
        assert_streq(c.worker_worktree_dir, "/data/wt");
        config_done(&c);

        /* A state_dir set by the program (makima up --state-dir) wins over the environment. */
        assert_se(config_init(&c) == 0);
        c.state_dir = strdup("/home/u/.local/state/makima");
        assert_se(c.state_dir);
        assert_se(config_finalize(&c) == 0);
        assert_streq(c.store_path, "/home/u/.local/state/makima/makima.db");
        config_done(&c);

        assert_se(setenv("STATE_DIRECTORY", "", 1) == 0);
        assert_se(config_init(&c) == 0);
        assert_se(config_finalize(&c) == 0);
        assert_streq(c.state_dir, "/var/lib/makima");
        config_done(&c);
        assert_se(unsetenv("STATE_DIRECTORY") == 0);

        log_set_max_level(-1);
        parse_ok(&c, "[Store]\nBackend=postgresql\n");
        assert_se(config_finalize(&c) == -EINVAL);
        config_done(&c);
        parse_ok(&c, "[Store]\nBackend=postgresql\nURL=postgresql:///makima\n");
        assert_se(config_finalize(&c) == 0);
        config_done(&c);

        parse_ok(&c, "[AutonomousLoop]\nDefaultMaxIterations=51\n");
        assert_se(config_finalize(&c) == -EINVAL);
        config_done(&c);
        parse_ok(&c, "[AutonomousLoop]\nDefaultMaxIterations=51\nHardLimit=51\n");
        assert_se(config_finalize(&c) == 0);
        config_done(&c);
        parse_ok(&c, "[AutonomousLoop]\nHardLimit=9\n");
        assert_se(config_finalize(&c) == -EINVAL);
        config_done(&c);
        log_set_max_level(LOG_INFO);
}

static const char *const all_keys[] = {
        "Backend", "Path", "URL",
        "Listen", "MaxBodyBytes", "MaxHeaderBytes", "MaxConnections", "MaxConnectionsPerIP", "ConnectionTimeoutSec",
        "RequestHeadTimeoutSec", "AdminGroup",
        "MaxConcurrentTasks", "WorktreeDir", "PollIntervalSec", "LeaseSec", "StoreRetrySec",
        "Command", "Environment", "ExtraArgs",
        "Enabled", "Network", "ReadOnlyPaths", "ReadWritePaths", "User", "TasksMax", "MemoryMax", "CPUWeight",
        "DefaultMaxIterations", "HardLimit", "NoChangeThreshold", "SameErrorThreshold",
};

/* The source tree, found from this file's name as the compiler saw it (relative
 * to the build directory, where meson test runs us). */
static char *source_file(const char *relative) {
        const char *me = __FILE__, *tail = strstr(me, "src/shared/test-conf.c");
        char *p;

        assert_se(tail);
        assert_se(asprintf(&p, "%.*s%s", (int) (tail - me), me, relative) > 0);
        return p;
}

static char *read_source_file(const char *relative) {
        _cleanup_free_ char *path = source_file(relative);
        char *text = NULL;
        size_t n = 0;
        FILE *f;

        f = fopen(path, "re");
        if (!f) {
                fprintf(stderr, "Cannot open %s (run from the build directory, as meson test does): %m\n", path);
                abort();
        }
        assert_se(getdelim(&text, &n, '\0', f) > 0);
        fclose(f);
        return text;
}

static void assert_config_equal(const Config *a, const Config *b) {
#define STRV_EQ(x, y) (strv_length(x) == strv_length(y))      /* the defaults are all empty lists */
        assert_se(a->store_backend == b->store_backend);
        assert_se(streq_ptr(a->store_path, b->store_path) && streq_ptr(a->store_url, b->store_url));
        assert_se(STRV_EQ(a->api_listen, b->api_listen));
        assert_se(a->api_max_body_bytes == b->api_max_body_bytes);
        assert_se(a->api_max_header_bytes == b->api_max_header_bytes);
        assert_se(a->api_max_connections == b->api_max_connections);
        assert_se(a->api_max_connections_per_ip == b->api_max_connections_per_ip);
        assert_se(a->api_connection_timeout == b->api_connection_timeout);
        assert_se(a->api_request_head_timeout == b->api_request_head_timeout);
        assert_se(streq_ptr(a->api_admin_group, b->api_admin_group));
        assert_se(a->worker_max_concurrent_tasks == b->worker_max_concurrent_tasks);
        assert_se(streq_ptr(a->worker_worktree_dir, b->worker_worktree_dir));
        assert_se(a->worker_poll_interval == b->worker_poll_interval);
        assert_se(a->worker_lease == b->worker_lease);
        assert_se(streq_ptr(a->agent_command, b->agent_command));
        assert_se(STRV_EQ(a->agent_environment, b->agent_environment));
        assert_se(STRV_EQ(a->agent_extra_args, b->agent_extra_args));
        assert_se(a->sandbox_enabled == b->sandbox_enabled && a->sandbox_network == b->sandbox_network);
        assert_se(STRV_EQ(a->sandbox_read_only_paths, b->sandbox_read_only_paths));
        assert_se(STRV_EQ(a->sandbox_read_write_paths, b->sandbox_read_write_paths));
        assert_se(a->loop_default_max_iterations == b->loop_default_max_iterations);
        assert_se(a->loop_hard_limit == b->loop_hard_limit);
        assert_se(a->loop_no_change_threshold == b->loop_no_change_threshold);
        assert_se(a->loop_same_error_threshold == b->loop_same_error_threshold);
#undef STRV_EQ
}

/* data/makima.conf lists every key commented out with its default: with the
 * keys uncommented it must parse, silently, to exactly the built-in defaults. */
static void test_default_file(void) {
        _cleanup_free_ char *text = read_source_file("data/makima.conf"), *uncommented = NULL;
        Config defaults, c;
        size_t k = 0;

        assert_se(config_init(&defaults) == 0);
        parse_ok(&c, text);
        assert_config_equal(&c, &defaults);
        config_done(&c);

        uncommented = malloc(strlen(text) + 1);
        assert_se(uncommented);
        for (const char *p = text; *p; ) {
                size_t n = strcspn(p, "\n");

                if (p[0] == '#' && p[1] >= 'A' && p[1] <= 'Z' && memchr(p, '=', n))
                        p++, n--;       /* "#Key=value" → "Key=value" */
                memcpy(uncommented + k, p, n);
                k += n;
                p += n;
                if (*p == '\n')
                        uncommented[k++] = *p++;
        }
        uncommented[k] = '\0';
        parse_ok(&c, uncommented);
        assert_config_equal(&c, &defaults);
        config_done(&c);

        for (size_t i = 0; i < ELEMENTSOF(all_keys); i++) {
                _cleanup_free_ char *line = NULL;

                assert_se(asprintf(&line, "\n%s=", all_keys[i]) > 0);
                if (!strstr(uncommented, line)) {
                        fprintf(stderr, "data/makima.conf lacks %s=\n", all_keys[i]);
                        abort();
                }
        }
        config_done(&defaults);
}

/* man/makima.conf.5 documents every key, and its example is a valid drop-in. */
static void test_man_page(void) {
        _cleanup_free_ char *man = read_source_file("man/makima.conf.5"), *example = NULL;
        const char *start, *end;
        size_t k = 0;
        Config c;

        for (size_t i = 0; i < ELEMENTSOF(all_keys); i++) {
                _cleanup_free_ char *entry = NULL;

                assert_se(asprintf(&entry, "\n.BI %s= ", all_keys[i]) > 0);
                if (!strstr(man, entry)) {
                        fprintf(stderr, "man/makima.conf.5 has no entry for %s=\n", all_keys[i]);
                        abort();
                }
        }

        start = strstr(man, "\n.EX\n");
        end = start ? strstr(start, "\n.EE\n") : NULL;
        assert_se(start && end);
        start += strlen("\n.EX\n");
        example = malloc((size_t) (end - start) + 2);
        assert_se(example);
        /* Undo the roff escapes the example uses. */
        for (const char *p = start; p < end; p++) {
                if (p[0] == '\\' && p[1] == '-')
                        example[k++] = '-', p++;
                else if (p[0] == '\\' && p[1] == 'e')
                        example[k++] = '\\', p++;
                else
                        example[k++] = *p;
        }
        example[k++] = '\n';
        example[k] = '\0';
        parse_ok(&c, example);
        assert_se(c.store_backend == STORE_BACKEND_POSTGRESQL);
        assert_se(strv_length(c.api_listen) == 2);
        assert_strv(c.agent_environment, "ANTHROPIC_MODEL=claude-opus-4", "HTTPS_PROXY=http://proxy.example.org:3128");
        assert_strv(c.agent_extra_args, "--append-system-prompt", "Keep commits small.");
        assert_se(config_finalize(&c) == 0);
        config_done(&c);
}

static int rm_rf(const char *path) {
        char *argv[] = { (char *) "rm", (char *) "-rf", (char *) path, NULL };
        pid_t pid = fork();
        int status;

        if (pid == 0) {
                execvp(argv[0], argv);
                _exit(127);
        }
        if (pid < 0 || waitpid(pid, &status, 0) < 0)
                return -errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

int main(void) {
        /* Plain "program: message" lines on stderr, whatever started us. */
        (void) unsetenv("JOURNAL_STREAM");
        log_setup("test-conf");
        log_set_max_level(LOG_INFO);
        assert_se(mkdtemp(tmpdir));

        test_defaults();
        test_every_key();
        test_syntax();
        test_lists();
        test_quoting();
        test_continuation();
        test_errors();
        test_unknown();
        test_load();
        test_finalize();
        test_default_file();
        test_man_page();

        assert_se(rm_rf(tmpdir) == 0);
        printf("test-conf: ok\n");
        return EXIT_SUCCESS;
}
