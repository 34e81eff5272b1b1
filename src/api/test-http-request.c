/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of http-request.c: heads and chunked bodies that pass, whole
 * and byte by byte, and each way one is refused, with its status and code. */

#include <errno.h>

#include "http-request.h"
#include "tests.h"

static const HttpLimits limits = {
        .max_head_bytes = 1024,
        .max_target_bytes = 256,
        .max_body_bytes = 4096,
};

/* Feeds s whole; returns what http_head_feed() returned. */
static int head(const char *s, HttpHead *h, HttpError *e) {
        http_head_init(h);
        return http_head_feed(h, &limits, s, strlen(s), e);
}

/* Feeds s one byte more at a time, as a reader that gets one byte per
 * read; the answer must be the one for the whole input, found no later
 * than the byte that decides it. */
static int head_bytewise(const char *s, HttpHead *h, HttpError *e) {
        size_t n = strlen(s);
        int k = 0;

        http_head_init(h);
        for (size_t i = 1; i <= n && k == 0; i++)
                k = http_head_feed(h, &limits, s, i, e);
        return k;
}

static void test_heads_that_pass(void) {
        HttpHead h, b;
        HttpError e;
        const char *s;

        s = "GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_se(head(s, &h, &e) == 1);
        assert_se(h.size == strlen(s));
        assert_se(h.version == 11 && h.framing == HTTP_BODY_NONE);
        assert_se(head_bytewise(s, &b, &e) == 1 && b.size == h.size);

        /* Bytes after the head (a body, the next request) are not part of it. */
        s = "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length:   12\r\n\r\n{\"plan\":\"x\"}GET / HTTP/1.1\r\n";
        assert_se(head(s, &h, &e) == 1);
        assert_se(h.size == strlen(s) - strlen("{\"plan\":\"x\"}GET / HTTP/1.1\r\n"));
        assert_se(h.framing == HTTP_BODY_LENGTH && h.content_length == 12);

        s = "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ChUnKeD\r\n\r\n";
        assert_se(head(s, &h, &e) == 1 && h.framing == HTTP_BODY_CHUNKED);
        s = "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 000\r\n\r\n";
        assert_se(head(s, &h, &e) == 1 && h.framing == HTTP_BODY_NONE);
        /* HTTP/1.0 needs no Host; empty lines before the request line are skipped. */
        s = "\r\n\r\nGET /a?b=c&d=%20 HTTP/1.0\r\nX-Empty:\r\nX-Obs: caf\xc3\xa9\t!\r\n\r\n";
        assert_se(head(s, &h, &e) == 1 && h.version == 10 && h.size == strlen(s));
        assert_se(head_bytewise(s, &b, &e) == 1 && b.size == h.size);
        /* A request line of exactly the longest target. */
        char line[512];
        snprintf(line, sizeof(line), "GET /%0255d HTTP/1.1\r\nHost: x\r\n\r\n", 0);
        assert_se(head(line, &h, &e) == 1);
}

typedef struct Refusal {
        const char *input;
        size_t size;                    /* the table's inputs may hold NULs */
        unsigned status;
        const char *code;
        const char *message;            /* a part of it */
} Refusal;

#define R(s, ...) { (s), sizeof(s) - 1, __VA_ARGS__ }

static const Refusal refusals[] = {
        /* framing */
        R("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\n", 400, "bad_framing", "more than one Content-Length"),
        R("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", 400, "bad_framing", "more than one Content-Length"),
        R("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n", 400, "bad_framing", "not a number"),
        R("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5 \r\n\r\n", 400, "bad_framing", "not a number"),
        R("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "bad_framing", "not a number"),
        R("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400, "bad_framing", "empty"),
        R("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413, "payload_too_large", "too large"),
        R("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "bad_framing", "both Content-Length and Transfer-Encoding"),
        R("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400, "bad_framing", "both Content-Length and Transfer-Encoding"),
        R("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", 400, "bad_framing", "exactly \"chunked\""),
        R("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400, "bad_framing", "exactly \"chunked\""),
        R("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400, "bad_framing", "exactly \"chunked\""),
        R("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked \r\n\r\n", 400, "bad_framing", "exactly \"chunked\""),
        R("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "bad_framing", "more than one Transfer-Encoding"),
        R("POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "bad_framing", "HTTP/1.0"),
        R("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\n", 400, "bad_request", "Content-Length has whitespace before its colon"),
        R("POST /x HTTP/1.1\r\nHost: x\r\nX: a\r\n Content-Length: 5\r\n\r\n", 400, "bad_request", "obs-fold"),
        /* the request line */
        R("GET /api/v1/health\r\n", 505, "http_version_not_supported", "HTTP/0.9"),
        R("GET /api/v1/health HTTP/0.9\r\n\r\n", 505, "http_version_not_supported", "HTTP/0.9 is not"),
        R("GET / HTTP/2.0\r\n\r\n", 505, "http_version_not_supported", "HTTP/2.0"),
        R("GET / HTTP/1.2\r\n\r\n", 505, "http_version_not_supported", "HTTP/1.2"),
        R("GET / http/1.1\r\n\r\n", 400, "bad_request", "HTTP version"),
        R("GET / HTTP/1.1 \r\n\r\n", 400, "bad_request", "HTTP version"),
        R("GET  / HTTP/1.1\r\n\r\n", 400, "bad_request", "no target"),
        R("GET /a b HTTP/1.1\r\n\r\n", 400, "bad_request", "HTTP version"),
        R("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", 400, "bad_request", "outside ASCII"),
        R("GET /a\tb HTTP/1.1\r\n\r\n", 400, "bad_request", "control character"),
        R("GET /api/v1/health%00x HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request", "%00"),
        R("GARBAGE\r\n\r\n", 400, "bad_request", "not METHOD SP TARGET"),
        R(" GET / HTTP/1.1\r\n\r\n", 400, "bad_request", "not an HTTP request line"),
        R("G\x01T / HTTP/1.1\r\n\r\n", 400, "bad_request", "not an HTTP request line"),
        R("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, "bad_request", "not an HTTP request line"),
        R("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ / HTTP/1.1\r\n\r\n", 400, "bad_request", "method is longer"),
        /* line ends and characters */
        R("GET / HTTP/1.1\nHost: x\n\n", 400, "bad_request", "bare LF"),
        R("GET / HTTP/1.1\r\nHost: x\n\r\n", 400, "bad_request", "bare LF"),
        R("GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400, "bad_request", "control character"),
        R("GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n", 400, "bad_request", "control character"),
        R("GET / HTTP/1.1\r\nHost: x\r\nbroken\r\n\r\n", 400, "bad_request", "not NAME: VALUE"),
        R("GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", 400, "bad_request", "not NAME: VALUE"),
        R("GET / HTTP/1.1\r\nHost: x\r\nX(y): v\r\n\r\n", 400, "bad_request", "not NAME: VALUE"),
        /* Host */
        R("GET / HTTP/1.1\r\n\r\n", 400, "bad_request", "needs a Host"),
        R("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400, "bad_request", "more than one Host"),
        R("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, "bad_request", "more than one Host"),
};

static void test_refusals(void) {
        for (size_t i = 0; i < ELEMENTSOF(refusals); i++) {
                const Refusal *r = refusals + i;
                size_t n = r->size;
                HttpHead h;
                HttpError e = {}, eb = {};
                int k, kb = 0;

                http_head_init(&h);
                k = http_head_feed(&h, &limits, r->input, n, &e);
                if (k != -EBADMSG || e.status != r->status || !streq(e.code, r->code) ||
                    !strcasestr(e.message, r->message)) {
                        fprintf(stderr, "input %zu (%s): got %d %u %s \"%s\"\n", i, r->input, k, e.status, strna(e.code),
                                e.message);
                        abort();
                }
                /* The same answer when the bytes come one at a time. */
                http_head_init(&h);
                for (size_t j = 1; j <= n && kb == 0; j++)
                        kb = http_head_feed(&h, &limits, r->input, j, &eb);
                assert_se(kb == -EBADMSG && eb.status == e.status && streq(eb.code, e.code));
        }
}

static void test_limits(void) {
        char buf[4096];
        HttpHead h;
        HttpError e;
        size_t n;

        /* A target over the limit: 414, whole or before the line has even ended. */
        n = (size_t) snprintf(buf, sizeof(buf), "GET /%0256d HTTP/1.1\r\nHost: x\r\n\r\n", 0);
        assert_se(head(buf, &h, &e) == -EBADMSG && e.status == 414 && streq(e.code, "uri_too_long"));
        memset(buf + 4, 'a', 400);
        http_head_init(&h);
        assert_se(http_head_feed(&h, &limits, buf, 4 + 300, &e) == -EBADMSG && e.status == 414);

        /* Fields over MaxHeaderBytes: 431, before the empty line arrives. */
        n = (size_t) snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ");
        memset(buf + n, 'p', 1100);
        http_head_init(&h);
        assert_se(http_head_feed(&h, &limits, buf, n + 1100, &e) == -EBADMSG && e.status == 431 &&
                  streq(e.code, "headers_too_large"));
        /* A head of exactly the limit passes. */
        n = (size_t) snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ");
        memset(buf + n, 'p', 1024 - n - 4);
        memcpy(buf + 1024 - 4, "\r\n\r\n", 5);
        assert_se(head(buf, &h, &e) == 1 && h.size == 1024);
        buf[n] = 'q';
        memmove(buf + n + 1, buf + n, 1025 - n);
        assert_se(head(buf, &h, &e) == -EBADMSG && e.status == 431);

        /* Endless empty lines before the request line. */
        for (size_t i = 0; i < 600; i++)
                memcpy(buf + 2 * i, "\r\n", 2);
        http_head_init(&h);
        assert_se(http_head_feed(&h, &limits, buf, 1200, &e) == -EBADMSG && e.status == 431);

        /* Counts that bound libmicrohttpd's records. */
        HttpLimits wide = { .max_head_bytes = 64 * 1024, .max_target_bytes = 8192, .max_body_bytes = 1 };
        _cleanup_free_ char *big = malloc(64 * 1024);
        assert_se(big);
        n = (size_t) sprintf(big, "GET / HTTP/1.1\r\nHost: x\r\n");
        for (unsigned i = 0; i < HTTP_FIELDS_MAX; i++)
                n += (size_t) sprintf(big + n, "a:b\r\n");
        memcpy(big + n, "\r\n", 3);
        http_head_init(&h);
        assert_se(http_head_feed(&h, &wide, big, n + 2, &e) == -EBADMSG && e.status == 431 &&
                  strstr(e.message, "more than 100 header fields"));

        n = (size_t) sprintf(big, "GET /?a");
        for (unsigned i = 1; i < HTTP_QUERY_PARAMS_MAX; i++)
                n += (size_t) sprintf(big + n, "&a");
        strcpy(big + n, " HTTP/1.1\r\nHost: x\r\n\r\n");
        http_head_init(&h);
        assert_se(http_head_feed(&h, &wide, big, strlen(big), &e) == 1);
        strcpy(big + n, "&a HTTP/1.1\r\nHost: x\r\n\r\n");
        http_head_init(&h);
        assert_se(http_head_feed(&h, &wide, big, strlen(big), &e) == -EBADMSG && e.status == 400 &&
                  streq(e.code, "invalid_parameter"));

        n = (size_t) sprintf(big, "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1");
        for (unsigned i = 1; i <= HTTP_COOKIES_MAX; i++)
                n += (size_t) sprintf(big + n, "; a=1");
        memcpy(big + n, "\r\n\r\n", 5);
        http_head_init(&h);
        assert_se(http_head_feed(&h, &wide, big, strlen(big), &e) == -EBADMSG && e.status == 431 &&
                  strstr(e.message, "cookies"));
}

/* Feeds a chunked body `step` bytes at a time; returns the final result
 * and sets *ret_used to the bytes it took. */
static int chunked(const char *s, size_t size, size_t step, size_t *ret_used, HttpError *e) {
        HttpChunked c;
        size_t total = 0;
        int k = 0;

        http_chunked_init(&c);
        for (size_t i = 0; i < size && k == 0; i += step) {
                size_t used = 0, n = MIN(step, size - i);

                k = http_chunked_feed(&c, &limits, s + i, n, &used, e);
                if (k < 0)
                        return k;
                assert_se(used <= n);
                assert_se(k == 1 || used == n);
                total += used;
        }
        *ret_used = total;
        return k;
}

static void test_chunked(void) {
        static const char *const good[] = {
                "5\r\nhello\r\n0\r\n\r\n",
                "A;name=value;x=\"q r\"\r\n0123456789\r\n000\r\nX-Trailer: yes\r\nOther:\r\n\r\n",
                "1f\r\n0123456789012345678901234567890\r\n0\r\n\r\n",
                "0\r\n\r\n",
        };
        static const Refusal bad[] = {
                R("zz\r\n", 400, "bad_framing", "size in hexadecimal"),
                R("\r\n", 400, "bad_framing", "size in hexadecimal"),
                R(" 5\r\nhello\r\n0\r\n\r\n", 400, "bad_framing", "size in hexadecimal"),
                R("0x5\r\nhello\r\n0\r\n\r\n", 400, "bad_framing", "other than ';' or CRLF"),
                R("5 \r\nhello\r\n0\r\n\r\n", 400, "bad_framing", "other than ';' or CRLF"),
                R("5\nhello\r\n0\r\n\r\n", 400, "bad_framing", "other than ';' or CRLF"),
                R("5\rhello\r\n0\r\n\r\n", 400, "bad_framing", "does not end with CRLF"),
                R("5\r\nhelloX\r\n0\r\n\r\n", 400, "bad_framing", "not followed by CRLF"),
                R("5\r\nhello\n0\r\n\r\n", 400, "bad_framing", "not followed by CRLF"),
                R("5;a\x01\r\nhello\r\n0\r\n\r\n", 400, "bad_framing", "control character"),
                R("FFFFFFFFFFFFFFFFFF\r\n", 413, "payload_too_large", "larger than 4096"),
                R("1001\r\n", 413, "payload_too_large", "larger than 4096"),
                R("0\r\n X: y\r\n\r\n", 400, "bad_framing", "obs-fold"),
                R("0\r\nX : y\r\n\r\n", 400, "bad_framing", "NAME: VALUE"),
                R("0\r\nX: y\n\r\n", 400, "bad_framing", "control character"),
                R("0\r\n\n", 400, "bad_framing", "NAME: VALUE"),
                R("0\r\n\rX", 400, "bad_framing", "does not end with CRLF"),
        };
        HttpError e;
        size_t used;

        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                for (size_t step = 1; step <= strlen(good[i]); step++) {
                        assert_se(chunked(good[i], strlen(good[i]), step, &used, &e) == 1);
                        assert_se(used == strlen(good[i]));
                }

        /* The body ends where the last chunk's empty line does: what follows is the next request. */
        const char *s = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        for (size_t step = 1; step <= strlen(s); step++) {
                assert_se(chunked(s, strlen(s), step, &used, &e) == 1);
                assert_se(used == strlen("3\r\nabc\r\n0\r\n\r\n"));
        }
        /* Unfinished is not wrong. */
        assert_se(chunked("5\r\nhel", 6, 6, &used, &e) == 0 && used == 6);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                for (size_t step = 1; step <= bad[i].size; step++) {
                        int k = chunked(bad[i].input, bad[i].size, step, &used, &e);

                        if (k != -EBADMSG || e.status != bad[i].status || !streq(e.code, bad[i].code) ||
                            !strcasestr(e.message, bad[i].message)) {
                                fprintf(stderr, "chunked %zu step %zu: got %d %u %s \"%s\"\n", i, step, k, e.status,
                                        strna(e.code), e.message);
                                abort();
                        }
                }

        /* A chunk-size line of endless extensions, and trailers over the head limit. */
        _cleanup_free_ char *big = malloc(4096);
        assert_se(big);
        memcpy(big, "1;", 2);
        memset(big + 2, 'x', 2000);
        assert_se(chunked(big, 2002, 100, &used, &e) == -EBADMSG && e.status == 400 && strstr(e.message, "1024"));
        memcpy(big, "0\r\nX: ", 6);
        memset(big + 6, 'y', 2000);
        assert_se(chunked(big, 2006, 2006, &used, &e) == -EBADMSG && e.status == 431);
}

int main(void) {
        test_heads_that_pass();
        test_refusals();
        test_limits();
        test_chunked();
        return 0;
}
