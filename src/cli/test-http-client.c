/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests for http-client.c: endpoint URLs, the response parser on good,
 * split, hostile and truncated input, the incremental chunked decoder, and
 * real requests (whole and streamed) over a Unix and a TCP socket to a
 * small server forked by the test. */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "http-client.h"

#define ASSERT(expr)                                                                    \
        do {                                                                            \
                if (!(expr)) {                                                          \
                        fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #expr); \
                        abort();                                                        \
                }                                                                       \
        } while (0)
#define ASSERT_EQ(a, b)                                                                 \
        do {                                                                            \
                long long _a = (long long) (a), _b = (long long) (b);                   \
                if (_a != _b) {                                                         \
                        fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, _a, _b); \
                        abort();                                                        \
                }                                                                       \
        } while (0)

static void test_endpoint(void) {
        _cleanup_(http_endpoint_freep) HttpEndpoint *e = NULL;
        static const char *const bad[] = {
                "", "unix:", "https://example.com", "http://", "http://:80", "http://a:0", "http://a:65536",
                "http://a:", "http://a:8x", "http://user@h:1", "http://[::1", "http://[::1]x", "http://a b",
                "http://h/p?q", "http://h/p#f", "ftp://h", "/run/makima/api.sock", "http://h:1:2",
        };

        ASSERT_EQ(http_endpoint_parse("unix:/run/makima/api.sock", &e), 0);
        ASSERT(streq(e->unix_path, "/run/makima/api.sock"));
        ASSERT(!e->host);
        ASSERT(streq(e->path_prefix, ""));
        e = http_endpoint_free(e);

        ASSERT_EQ(http_endpoint_parse("unix:rel/api.sock", &e), 0);
        ASSERT(streq(e->unix_path, "rel/api.sock"));
        e = http_endpoint_free(e);

        ASSERT_EQ(http_endpoint_parse("http://127.0.0.1:8080", &e), 0);
        ASSERT(streq(e->host, "127.0.0.1"));
        ASSERT(streq(e->port, "8080"));
        ASSERT(streq(e->path_prefix, ""));
        e = http_endpoint_free(e);

        ASSERT_EQ(http_endpoint_parse("http://[::1]:9/makima/", &e), 0);
        ASSERT(streq(e->host, "::1"));
        ASSERT(streq(e->port, "9"));
        ASSERT(streq(e->path_prefix, "/makima"));
        e = http_endpoint_free(e);

        ASSERT_EQ(http_endpoint_parse("http://api.example/", &e), 0);
        ASSERT(streq(e->host, "api.example"));
        ASSERT(streq(e->port, "80"));
        ASSERT(streq(e->path_prefix, ""));
        e = http_endpoint_free(e);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                if (http_endpoint_parse(bad[i], &e) != -EINVAL) {
                        fprintf(stderr, "accepted bad URL \"%s\"\n", bad[i]);
                        abort();
                }
                ASSERT(!e);
        }

        char longpath[200] = "unix:/";
        memset(longpath + 6, 'x', sizeof(longpath) - 7);
        ASSERT_EQ(http_endpoint_parse(longpath, &e), -EINVAL);
}

/* Parses s whole, and checks that every proper prefix asks for more. */
static int parse_all(const char *s, HttpResponse **ret) {
        size_t n = strlen(s);

        for (size_t i = 0; i < n; i++) {
                _cleanup_(http_response_freep) HttpResponse *r = NULL;
                int k = http_response_parse(s, i, false, &r);
                if (k != 0) {
                        /* A prefix may only fail the way the whole does. */
                        int whole = http_response_parse(s, n, true, ret);
                        ASSERT(whole < 0);
                        ASSERT_EQ(k, whole);
                        return k;
                }
                ASSERT(!r);
        }
        return http_response_parse(s, n, true, ret);
}

static void test_parse_good(void) {
        _cleanup_(http_response_freep) HttpResponse *r = NULL;

        ASSERT_EQ(parse_all("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":true}\n", &r), 1);
        ASSERT_EQ(r->status, 200);
        ASSERT(streq(r->reason, "OK"));
        ASSERT_EQ(r->body_size, 11);
        ASSERT(streq(r->body, "{\"a\":true}\n"));
        ASSERT(streq(http_response_header(r, "content-type"), "application/json"));
        ASSERT(!http_response_header(r, "X-Missing"));
        r = http_response_free(r);

        /* Bare LF line ends, no reason phrase, header value white space trimmed. */
        ASSERT_EQ(parse_all("HTTP/1.0 404\nX-A:   v  w \t\nContent-Length: 2\n\nno", &r), 1);
        ASSERT_EQ(r->status, 404);
        ASSERT(streq(r->reason, ""));
        ASSERT(streq(http_response_header(r, "x-a"), "v  w"));
        ASSERT(streq(r->body, "no"));
        r = http_response_free(r);

        /* Chunked with extensions, upper-case hex, trailers. */
        ASSERT_EQ(parse_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
                            "5;name=value\r\nhello\r\nA \r\n, world!!!\r\n0\r\nX-Trailer: t\r\n\r\n", &r), 1);
        ASSERT(streq(r->body, "hello, world!!!"));
        ASSERT_EQ(r->body_size, 15);
        r = http_response_free(r);

        /* Interim responses are skipped; duplicate equal Content-Length is fine. */
        ASSERT_EQ(parse_all("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nA: b\r\n\r\n"
                            "HTTP/1.1 201 Created\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc", &r), 1);
        ASSERT_EQ(r->status, 201);
        ASSERT(streq(r->body, "abc"));
        r = http_response_free(r);

        /* 204 has no body even if bytes follow. */
        ASSERT_EQ(http_response_parse("HTTP/1.1 204 No Content\r\n\r\ntrailing", 35, false, &r), 1);
        ASSERT_EQ(r->status, 204);
        ASSERT_EQ(r->body_size, 0);
        ASSERT(streq(r->body, ""));
        r = http_response_free(r);

        /* Without framing the body ends at EOF, and not before. */
        const char *s = "HTTP/1.1 500 Internal Server Error\r\nA: b\r\n\r\nsomething broke";
        ASSERT_EQ(http_response_parse(s, strlen(s), false, &r), 0);
        ASSERT(!r);
        ASSERT_EQ(http_response_parse(s, strlen(s), true, &r), 1);
        ASSERT_EQ(r->status, 500);
        ASSERT(streq(r->body, "something broke"));
        r = http_response_free(r);

        /* Content-Length: 0, and bytes after a complete response are ignored. */
        s = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n";
        ASSERT_EQ(http_response_parse(s, strlen(s), false, &r), 1);
        ASSERT_EQ(r->body_size, 0);
        r = http_response_free(r);

        /* A body with a NUL in it keeps its size. */
        static const char nul[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\na\0b";
        ASSERT_EQ(http_response_parse(nul, sizeof(nul) - 1, false, &r), 1);
        ASSERT_EQ(r->body_size, 3);
        ASSERT_EQ(r->body[2], 'b');
}

static void test_parse_bad(void) {
        static const struct {
                const char *text;
                int error;
        } cases[] = {
                { "HTTP/2 200 OK\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 20 OK\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 600 Nope\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 099 Nope\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200OK\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200 O\x01K\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 101 Switching Protocols\r\n\r\n", -EBADMSG },
                { "HTTX/1.1 200 OK\r\n\r\n", -EBADMSG },
                { "<html>hello</html>\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nName : x\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\n: x\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nA: \x7f\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\na", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", -E2BIG },
                { "HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n", -E2BIG },
                { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nBad Trailer\r\n\r\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n", -E2BIG },
                { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4000001\r\n", -E2BIG },
                { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", -EBADMSG },
                { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n", -EBADMSG },
                { "HTTP/1.1 200", -EBADMSG },
                { "", -EBADMSG },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(http_response_freep) HttpResponse *r = NULL;
                int k = parse_all(cases[i].text, &r);

                if (k != cases[i].error) {
                        fprintf(stderr, "case %zu: got %d, expected %d: %s\n", i, k, cases[i].error, cases[i].text);
                        abort();
                }
                ASSERT(!r);
        }
}

static void test_parse_limits(void) {
        _cleanup_(http_response_freep) HttpResponse *r = NULL;
        _cleanup_free_ char *big = NULL;
        size_t n = HTTP_HEADER_BYTES_MAX + 100;

        /* A header section that never ends is refused once it passes the limit, without waiting for EOF. */
        big = malloc(n);
        ASSERT(big);
        memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
        memset(big + 20, 'a', n - 20);
        ASSERT_EQ(http_response_parse(big, n, false, &r), -E2BIG);
        big = mfree(big);

        /* Too many headers. */
        FILE *f = open_memstream(&big, &n);
        ASSERT(f);
        fputs("HTTP/1.1 200 OK\r\n", f);
        for (unsigned i = 0; i <= HTTP_HEADERS_MAX; i++)
                fprintf(f, "X-%u: %u\r\n", i, i);
        fputs("Content-Length: 0\r\n\r\n", f);
        ASSERT_EQ(fclose(f), 0);
        ASSERT_EQ(http_response_parse(big, n, true, &r), -E2BIG);
        big = mfree(big);

        /* Endless interim responses. */
        f = open_memstream(&big, &n);
        ASSERT(f);
        for (unsigned i = 0; i <= HTTP_INTERIM_RESPONSES_MAX + 1; i++)
                fputs("HTTP/1.1 100 Continue\r\n\r\n", f);
        fputs("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", f);
        ASSERT_EQ(fclose(f), 0);
        ASSERT_EQ(http_response_parse(big, n, true, &r), -E2BIG);
}

/* Forks a server for one connection. Returns the accepted connection in the
 * child and -1 in the parent, which gets the child's pid and closes its
 * copy of the listening socket. */
static int fork_accept(int listen_fd, pid_t *ret_pid) {
        pid_t pid = fork();
        ASSERT(pid >= 0);
        if (pid > 0) {
                close(listen_fd);
                *ret_pid = pid;
                return -1;
        }

        int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
                _exit(EXIT_FAILURE);
        return c;
}

/* In the server child: reads into req (at most size bytes) until the end of
 * the request head, and returns where that "\r\n\r\n" starts. */
static char *read_head(int c, char *req, size_t size, size_t *n) {
        char *end;

        while (!(end = memmem(req, *n, "\r\n\r\n", 4))) {
                ssize_t k = read(c, req + *n, size - *n);
                if (k <= 0)
                        _exit(EXIT_FAILURE);
                *n += (size_t) k;
        }
        return end;
}

/* A one-shot server: accepts one connection, reads the request head and its
 * Content-Length body, and answers with a chunked echo of the whole request
 * (or, with `silent`, says nothing until killed). */
static pid_t serve_once(int listen_fd, bool silent) {
        pid_t pid;
        int c = fork_accept(listen_fd, &pid);
        if (c < 0)
                return pid;
        if (silent)
                for (;;)
                        pause();

        char req[8192];
        size_t n = 0;
        /* One byte is kept for the NUL that strcasestr() needs. */
        char *end = read_head(c, req, sizeof(req) - 1, &n);
        req[n] = '\0';
        const char *cl = strcasestr(req, "\r\ncontent-length: ");
        size_t want = (size_t) (end + 4 - req) + (cl ? strtoul(cl + 18, NULL, 10) : 0);
        while (n < want) {
                ssize_t k = read(c, req + n, sizeof(req) - n - 1);
                if (k <= 0)
                        _exit(EXIT_FAILURE);
                n += (size_t) k;
        }

        dprintf(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        /* Several small chunks, written separately, to exercise partial reads. */
        for (size_t i = 0; i < n; i += 7) {
                size_t l = MIN((size_t) 7, n - i);
                dprintf(c, "%zx\r\n", l);
                ASSERT((size_t) write(c, req + i, l) == l);
                dprintf(c, "\r\n");
        }
        dprintf(c, "0\r\n\r\n");
        _exit(EXIT_SUCCESS);
}

/* Makes the temporary directory dir (a mkdtemp() template) and the
 * endpoint of the socket `name` in it. */
static void unix_endpoint(char *dir, const char *name, HttpEndpoint **ret) {
        _cleanup_free_ char *url = NULL;

        ASSERT(mkdtemp(dir));
        ASSERT(asprintf(&url, "unix:%s/%s", dir, name) > 0);
        ASSERT_EQ(http_endpoint_parse(url, ret), 0);
}

/* A listening socket at the endpoint's Unix path. */
static int unix_listen(const HttpEndpoint *e) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int l;

        l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT(l >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", e->unix_path);
        ASSERT_EQ(bind(l, (struct sockaddr *) &sa, sizeof(sa)), 0);
        ASSERT_EQ(listen(l, 1), 0);
        return l;
}

/* A listening socket on a free port of the IPv4 loopback; sa gets the port. */
static int tcp_listen(struct sockaddr_in *sa) {
        socklen_t salen = sizeof(*sa);
        int l;

        l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT(l >= 0);
        sa->sin_port = 0;
        ASSERT_EQ(bind(l, (struct sockaddr *) sa, sizeof(*sa)), 0);
        ASSERT_EQ(getsockname(l, (struct sockaddr *) sa, &salen), 0);
        ASSERT_EQ(listen(l, 1), 0);
        return l;
}

static void wait_ok(pid_t pid) {
        int st;
        ASSERT_EQ(waitpid(pid, &st, 0), pid);
        ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_unix_roundtrip(void) {
        _cleanup_(http_endpoint_freep) HttpEndpoint *e = NULL;
        _cleanup_(http_response_freep) HttpResponse *r = NULL;
        char dir[] = "/tmp/test-http-client-XXXXXX";
        int fd;
        pid_t pid;

        unix_endpoint(dir, "api.sock", &e);

        /* Nobody listening yet. */
        ASSERT_EQ(http_connect(e, 1 * USEC_PER_SEC), -ENOENT);

        pid = serve_once(unix_listen(e), false);

        fd = http_connect(e, 5 * USEC_PER_SEC);
        ASSERT(fd >= 0);
        ASSERT_EQ(http_exchange(fd, e, "POST", "/api/v1/tasks", "s3cret", "{\"plan\":\"x\"}", 5 * USEC_PER_SEC, &r), 0);
        close(fd);
        wait_ok(pid);

        ASSERT_EQ(r->status, 200);
        ASSERT(strneq(r->body, "POST /api/v1/tasks HTTP/1.1\r\n", 29));
        ASSERT(strstr(r->body, "\r\nHost: localhost\r\n"));
        ASSERT(strstr(r->body, "\r\nAuthorization: Bearer s3cret\r\n"));
        ASSERT(strstr(r->body, "\r\nContent-Type: application/json\r\n"));
        ASSERT(strstr(r->body, "\r\nContent-Length: 12\r\n"));
        ASSERT(strstr(r->body, "\r\n\r\n{\"plan\":\"x\"}"));

        /* Header injection through the token or the path is refused before anything is sent. */
        ASSERT_EQ(http_exchange(-1, e, "GET", "/x", "a\r\nX-Evil: 1", NULL, USEC_PER_SEC, &r), -EINVAL);
        ASSERT_EQ(http_exchange(-1, e, "GET", "/x HTTP/1.0\r\n", NULL, NULL, USEC_PER_SEC, &r), -EINVAL);
        ASSERT_EQ(http_exchange(-1, e, "GET", "x", NULL, NULL, USEC_PER_SEC, &r), -EINVAL);

        (void) unlink(e->unix_path);
        ASSERT_EQ(rmdir(dir), 0);
}

static void test_tcp_roundtrip(void) {
        _cleanup_(http_endpoint_freep) HttpEndpoint *e = NULL;
        _cleanup_(http_response_freep) HttpResponse *r = NULL;
        _cleanup_free_ char *url = NULL;
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int l, fd;
        pid_t pid;

        l = tcp_listen(&sa);
        ASSERT(asprintf(&url, "http://127.0.0.1:%u/prefix/", ntohs(sa.sin_port)) > 0);
        ASSERT_EQ(http_endpoint_parse(url, &e), 0);

        pid = serve_once(l, false);
        fd = http_connect(e, 5 * USEC_PER_SEC);
        ASSERT(fd >= 0);
        ASSERT_EQ(http_exchange(fd, e, "GET", "/api/v1/health", NULL, NULL, 5 * USEC_PER_SEC, &r), 0);
        close(fd);
        wait_ok(pid);
        ASSERT(strneq(r->body, "GET /prefix/api/v1/health HTTP/1.1\r\n", 36));
        char host[64];
        snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%u\r\n", ntohs(sa.sin_port));
        ASSERT(strstr(r->body, host));
        ASSERT(!strstr(r->body, "Authorization"));
        ASSERT(!strstr(r->body, "Content-Length"));
        r = http_response_free(r);

        /* A server that accepts but never answers runs into the deadline. */
        l = tcp_listen(&sa);
        e = http_endpoint_free(e);
        url = mfree(url);
        ASSERT(asprintf(&url, "http://localhost:%u", ntohs(sa.sin_port)) > 0);
        ASSERT_EQ(http_endpoint_parse(url, &e), 0);
        pid = serve_once(l, true);
        fd = http_connect(e, 5 * USEC_PER_SEC);
        ASSERT(fd >= 0);
        ASSERT_EQ(http_exchange(fd, e, "DELETE", "/x", NULL, NULL, 200 * USEC_PER_MSEC, &r), -ETIMEDOUT);
        close(fd);
        ASSERT_EQ(kill(pid, SIGKILL), 0);
        ASSERT_EQ(waitpid(pid, NULL, 0), pid);

        /* The port is closed now: refused. */
        ASSERT_EQ(http_connect(e, 5 * USEC_PER_SEC), -ECONNREFUSED);
}

static void test_ipv6_roundtrip(void) {
        _cleanup_(http_endpoint_freep) HttpEndpoint *e = NULL;
        _cleanup_(http_response_freep) HttpResponse *r = NULL;
        _cleanup_free_ char *url = NULL;
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        socklen_t salen = sizeof(sa);
        char host[64];
        int l, fd;
        pid_t pid;

        l = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (l < 0 || bind(l, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                printf("no IPv6 loopback here, skipping the IPv6 round trip\n");
                if (l >= 0)
                        close(l);
                return;
        }
        ASSERT_EQ(getsockname(l, (struct sockaddr *) &sa, &salen), 0);
        ASSERT_EQ(listen(l, 1), 0);
        ASSERT(asprintf(&url, "http://[::1]:%u", ntohs(sa.sin6_port)) > 0);
        ASSERT_EQ(http_endpoint_parse(url, &e), 0);

        pid = serve_once(l, false);
        fd = http_connect(e, 5 * USEC_PER_SEC);
        ASSERT(fd >= 0);
        ASSERT_EQ(http_exchange(fd, e, "PATCH", "/api/v1/tasks/x", "t", "{}", 5 * USEC_PER_SEC, &r), 0);
        close(fd);
        wait_ok(pid);
        snprintf(host, sizeof(host), "\r\nHost: [::1]:%u\r\n", ntohs(sa.sin6_port));
        ASSERT(strneq(r->body, "PATCH /api/v1/tasks/x HTTP/1.1\r\n", 32));
        ASSERT(strstr(r->body, host));
}


/* Decodes `in` fed in pieces of `step` bytes, the way a stream gets it; returns what
 * http_chunked_decode() returned last, and the body in out. */
static int decode_in_steps(const char *in, size_t size, size_t step, char **ret_out, size_t *ret_out_size) {
        HttpChunkDecoder c = {};
        char *out = malloc(size + 1), *pending = malloc(size + 1);
        size_t out_size = 0, pending_size = 0;
        int k = 0;

        ASSERT(out && pending);
        for (size_t i = 0; i < size && k == 0;) {
                size_t n = MIN(step, size - i), consumed, produced;

                memcpy(pending + pending_size, in + i, n);
                pending_size += n;
                i += n;
                k = http_chunked_decode(&c, pending, pending_size, out + out_size, &consumed, &produced);
                if (k < 0)
                        break;
                ASSERT(consumed <= pending_size);
                out_size += produced;
                memmove(pending, pending + consumed, pending_size - consumed);
                pending_size -= consumed;
        }
        free(pending);
        *ret_out = out;
        *ret_out_size = out_size;
        return k;
}

static void test_chunked_decode(void) {
        static const char good[] = "5\r\nhello\r\n1;ext=1\r\n \r\na\nworld, bye\n0\r\nX-Trailer: yes\r\n\r\n";
        static const struct {
                const char *in;
                int want;
        } bad[] = {
                { "x\r\n", -EBADMSG },                  /* not a size */
                { "5 z\r\nhello\r\n", -EBADMSG },       /* junk after the size */
                { "5\r\nhelloX\r\n", -EBADMSG },        /* no line break after the data */
                { "5\r\nhello\rX", -EBADMSG },          /* CR without LF */
                { "0\r\nbad trailer\r\n\r\n", -EBADMSG },
                { "fffffffffffffffff\r\n", -E2BIG },    /* more than any body */
                { "\r\n", -EBADMSG },
        };
        char *out;
        size_t n;

        for (size_t step = 1; step <= sizeof(good); step++) {
                ASSERT_EQ(decode_in_steps(good, sizeof(good) - 1, step, &out, &n), 1);
                ASSERT_EQ(n, 16);
                ASSERT(memcmp(out, "hello world, bye", 16) == 0);
                free(out);
        }
        /* Incomplete: more is needed, and what came so far is decoded. */
        ASSERT_EQ(decode_in_steps(good, 12, 3, &out, &n), 0);
        ASSERT_EQ(n, 5);
        free(out);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                for (size_t step = 1; step <= strlen(bad[i].in); step++) {
                        ASSERT_EQ(decode_in_steps(bad[i].in, strlen(bad[i].in), step, &out, &n), bad[i].want);
                        free(out);
                }

        /* A chunk-size line that never ends is not waited for forever. */
        _cleanup_free_ char *longline = malloc(8192);
        ASSERT(longline);
        memset(longline, '0', 8192);
        ASSERT_EQ(decode_in_steps(longline, 8192, 8192, &out, &n), -EBADMSG);
        free(out);
}

/* Writes the pieces one by one with a pause between them, after reading the request head. */
static pid_t serve_pieces(int listen_fd, const char *const *pieces) {
        pid_t pid;
        int c = fork_accept(listen_fd, &pid);
        if (c < 0)
                return pid;

        char req[8192];
        size_t n = 0;
        (void) read_head(c, req, sizeof(req), &n);
        for (const char *const *p = pieces; *p; p++) {
                if (write(c, *p, strlen(*p)) != (ssize_t) strlen(*p))
                        _exit(EXIT_FAILURE);
                usleep(20 * 1000);
        }
        _exit(EXIT_SUCCESS);
}

/* Opens a stream on a fresh Unix socket served by serve_pieces(). */
static HttpStream *stream_from(const char *const *pieces, const char *method, pid_t *ret_pid, int *ret_error) {
        _cleanup_(http_endpoint_freep) HttpEndpoint *e = NULL;
        char dir[] = "/tmp/test-http-stream-XXXXXX";
        HttpStream *s = NULL;
        int fd;

        unix_endpoint(dir, "s.sock", &e);
        *ret_pid = serve_pieces(unix_listen(e), pieces);
        fd = http_connect(e, 5 * USEC_PER_SEC);
        ASSERT(fd >= 0);
        *ret_error = http_stream_open(fd, e, method, "/events", NULL, "text/event-stream", NULL, 5 * USEC_PER_SEC, &s);
        (void) unlink(e->unix_path);
        ASSERT_EQ(rmdir(dir), 0);
        return s;
}

static void test_streams(void) {
        static const char *const chunked[] = {
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n",
                "Transfer-Encoding: chunked\r\n\r\n6\r\nid: 1\n",
                "\r\n", "4\r\nda", "ta\r\n0\r\n", "\r\n", NULL,
        };
        static const char *const length[] = { "HTTP/1.0 404 Not Found\r\nContent-Length: 9\r\n\r\nnot ", "found", NULL };
        static const char *const until_eof[] = { "HTTP/1.0 200 OK\r\n\r\nall ", "of it", NULL };
        static const char *const cut[] = { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc", NULL };
        static const char *const bad[] = { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", NULL };
        static const char *const no_head[] = { "HTTP/1.1 200 OK\r\nX: y\r\n", NULL };
        _cleanup_free_ char *all = NULL;
        HttpStream *s;
        const char *data;
        size_t n, total = 0;
        char got[64];
        pid_t pid;
        int k, error;

        /* Pieces come out as they arrive; the interim response is skipped. */
        s = stream_from(chunked, "GET", &pid, &error);
        ASSERT_EQ(error, 0);
        ASSERT_EQ(http_stream_response(s)->status, 200);
        ASSERT(streq(http_response_header(http_stream_response(s), "Content-Type"), "text/event-stream"));
        while ((k = http_stream_read(s, 5 * USEC_PER_SEC, &data, &n)) > 0) {
                ASSERT(n > 0 && total + n < sizeof(got));
                memcpy(got + total, data, n);
                total += n;
        }
        ASSERT_EQ(k, 0);
        ASSERT_EQ(total, 10);
        ASSERT(memcmp(got, "id: 1\ndata", 10) == 0);
        http_stream_free(s);
        wait_ok(pid);

        s = stream_from(length, "GET", &pid, &error);
        ASSERT_EQ(error, 0);
        ASSERT_EQ(http_stream_response(s)->status, 404);
        ASSERT_EQ(http_stream_read_all(s, 5 * USEC_PER_SEC, &all, &n), 0);
        ASSERT(streq(all, "not found") && n == 9);
        all = mfree(all);
        http_stream_free(s);
        wait_ok(pid);

        s = stream_from(until_eof, "GET", &pid, &error);
        ASSERT_EQ(error, 0);
        ASSERT_EQ(http_stream_read_all(s, 5 * USEC_PER_SEC, &all, &n), 0);
        ASSERT(streq(all, "all of it"));
        all = mfree(all);
        http_stream_free(s);
        wait_ok(pid);

        /* The connection ends in the middle of a chunk: the data so far, then a reset. */
        s = stream_from(cut, "GET", &pid, &error);
        ASSERT_EQ(error, 0);
        ASSERT_EQ(http_stream_read(s, 5 * USEC_PER_SEC, &data, &n), 1);
        ASSERT(n == 3 && memcmp(data, "abc", 3) == 0);
        ASSERT_EQ(http_stream_read(s, 5 * USEC_PER_SEC, &data, &n), -ECONNRESET);
        http_stream_free(s);
        wait_ok(pid);

        s = stream_from(bad, "GET", &pid, &error);
        ASSERT_EQ(error, 0);
        ASSERT_EQ(http_stream_read(s, 5 * USEC_PER_SEC, &data, &n), -EBADMSG);
        http_stream_free(s);
        wait_ok(pid);

        /* A head that never ends is an error, not a hang. */
        s = stream_from(no_head, "GET", &pid, &error);
        ASSERT(!s);
        ASSERT_EQ(error, -EBADMSG);
        wait_ok(pid);
}

/* The request of a stream: Accept and the extra headers go out; bad ones never do. */
static void test_stream_request(void) {
        _cleanup_(http_endpoint_freep) HttpEndpoint *e = NULL;
        _cleanup_free_ char *body = NULL;
        char dir[] = "/tmp/test-http-stream-XXXXXX";
        char *headers[] = { (char *) "Last-Event-ID: 42", NULL };
        char *evil[] = { (char *) "X: a\r\nY: b", NULL };
        HttpStream *s = NULL;
        size_t n;
        pid_t pid;
        int fd;

        unix_endpoint(dir, "s.sock", &e);
        pid = serve_once(unix_listen(e), false);
        fd = http_connect(e, 5 * USEC_PER_SEC);
        ASSERT(fd >= 0);
        ASSERT_EQ(http_stream_open(fd, e, "GET", "/api/v1/tasks/x/events?follow=1", "tok", "text/event-stream", headers,
                                   5 * USEC_PER_SEC, &s), 0);
        ASSERT_EQ(http_stream_read_all(s, 5 * USEC_PER_SEC, &body, &n), 0);
        http_stream_free(s);
        wait_ok(pid);
        ASSERT(strneq(body, "GET /api/v1/tasks/x/events?follow=1 HTTP/1.1\r\n", 46));
        ASSERT(strstr(body, "\r\nAccept: text/event-stream\r\n"));
        ASSERT(strstr(body, "\r\nLast-Event-ID: 42\r\n"));
        ASSERT(strstr(body, "\r\nAuthorization: Bearer tok\r\n"));

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT(fd >= 0);
        ASSERT_EQ(http_stream_open(fd, e, "GET", "/x", NULL, NULL, evil, USEC_PER_SEC, &s), -EINVAL);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT(fd >= 0);
        ASSERT_EQ(http_stream_open(fd, e, "GET", "/x", NULL, "a\nb", NULL, USEC_PER_SEC, &s), -EINVAL);
        (void) unlink(e->unix_path);
        ASSERT_EQ(rmdir(dir), 0);
}

int main(void) {
        test_endpoint();
        test_parse_good();
        test_parse_bad();
        test_parse_limits();
        test_unix_roundtrip();
        test_tcp_roundtrip();
        test_ipv6_roundtrip();
        test_chunked_decode();
        test_streams();
        test_stream_request();
        printf("all tests passed\n");
        return EXIT_SUCCESS;
}
