/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests for the Server-Sent Events parser: the examples of the HTML
 * standard, every way a line may end, input split at every byte, comments,
 * ids, the limits, and a callback that stops the parser. */

#include "sse.h"

#define ASSERT(expr)                                                                    \
        do {                                                                            \
                if (!(expr)) {                                                          \
                        fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #expr); \
                        abort();                                                        \
                }                                                                       \
        } while (0)

/* Events as "type|id|data" lines, appended to a string. */
typedef struct Collected {
        char *text;
        size_t n;
} Collected;

static int collect(const SseEvent *e, void *userdata) {
        Collected *c = userdata;
        char *t;

        ASSERT(e->data[e->data_size] == '\0');
        ASSERT(asprintf(&t, "%s%s|%s|%.*s\n", c->text ?: "", e->type, e->id, (int) e->data_size, e->data) > 0);
        free(c->text);
        c->text = t;
        c->n++;
        return 0;
}

/* Parses `in` split into pieces of `step` bytes; returns the events. */
static char *parse(const char *in, size_t size, size_t step, int *ret, char **ret_last_id) {
        _cleanup_(sse_parser_freep) SseParser *p = NULL;
        Collected c = {};
        int k = 0;

        ASSERT(sse_parser_new(&p) == 0);
        for (size_t i = 0; i < size && k >= 0; i += step)
                k = sse_parser_feed(p, in + i, MIN(step, size - i), collect, &c);
        if (ret)
                *ret = k;
        if (ret_last_id)
                *ret_last_id = strdup(sse_parser_last_event_id(p));
        return c.text ?: strdup("");
}

static void check(const char *in, const char *want) {
        size_t size = strlen(in);

        for (size_t step = 1; step <= size; step++) {
                _cleanup_free_ char *got = NULL;
                int k;

                got = parse(in, size, step, &k, NULL);
                if (k != 0 || !streq(got, want)) {
                        fprintf(stderr, "input %s\nstep %zu: got (%d)\n%s\nwanted\n%s\n", in, step, k, got, want);
                        abort();
                }
        }
}

static void test_standard_examples(void) {
        /* From the HTML standard's "event stream interpretation". */
        check("data: YHOO\ndata: +2\ndata: 10\n\n", "message||YHOO\n+2\n10\n");
        check(": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n",
              "message|1|first event\nmessage||second event\n");
        check("data\n\ndata\ndata\n\ndata:", "message||\nmessage||\n\n");
        check("data:test\n\ndata: test\n\n", "message||test\nmessage||test\n");
}

static void test_fields(void) {
        /* CRLF, LF and CR all end lines; a CRLF split across pieces is one break. */
        check("event: status\r\nid: 7\r\ndata: {\"a\":1}\r\n\r\n", "status|7|{\"a\":1}\n");
        check("event: status\rid: 7\rdata: x\r\r", "status|7|x\n");
        check("id: 3\nevent: end\ndata: {\"status\":\"done\"}\n\n", "end|3|{\"status\":\"done\"}\n");
        /* The type is per event; the id stays. */
        check("id: 1\nevent: a\ndata: x\n\ndata: y\n\n", "a|1|x\nmessage|1|y\n");
        /* An event without data is not dispatched, and forgets its type. */
        check("event: a\n\ndata: z\n\n", "message||z\n");
        /* Comments and unknown fields are ignored; only one space after the colon goes. */
        check(": keepalive\n\nfoo: bar\ndata:  two spaces\n\n", "message|| two spaces\n");
        /* A leading BOM is dropped, once. */
        check("\xef\xbb\xbf" "data: bom\n\n", "message||bom\n");
        check("\xef\xbb" "x: y\ndata: a\n\n", "message||a\n");
        /* An event the stream ends in the middle of is dropped. */
        check("data: complete\n\ndata: incomplete\n", "message||complete\n");
}

static void test_ids_and_retry(void) {
        _cleanup_(sse_parser_freep) SseParser *p = NULL;
        static const char in[] = "retry: 1500\nid: 41\ndata: a\n\nretry: x\nid: 42\n\n";
        _cleanup_free_ char *got = NULL, *last = NULL;

        got = parse(in, sizeof(in) - 1, 5, NULL, &last);
        ASSERT(streq(got, "message|41|a\n"));
        /* An event without data still sets the last event id. */
        ASSERT(streq(last, "42"));

        ASSERT(sse_parser_new(&p) == 0);
        ASSERT(sse_parser_retry(p) == -1);
        ASSERT(sse_parser_feed(p, in, sizeof(in) - 1, NULL, NULL) == 0);
        ASSERT(sse_parser_retry(p) == 1500);
        /* An id with a NUL in it is ignored. */
        ASSERT(sse_parser_feed(p, "id: a\0b\ndata: c\n\n", 17, NULL, NULL) == 0);
        ASSERT(streq(sse_parser_last_event_id(p), "42"));
}

static int stop_at_second(const SseEvent *e, void *userdata) {
        int *n = userdata;

        return ++*n == 2 ? -ECANCELED : 0;
}

static void test_limits_and_errors(void) {
        _cleanup_(sse_parser_freep) SseParser *p = NULL, *q = NULL;
        _cleanup_free_ char *big = NULL;
        int n = 0;

        ASSERT(sse_parser_new(&p) == 0);
        ASSERT(sse_parser_feed(p, "data: 1\n\ndata: 2\n\ndata: 3\n\n", 27, stop_at_second, &n) == -ECANCELED);
        ASSERT(n == 2);
        /* Stopped is stopped. */
        ASSERT(sse_parser_feed(p, "data: 4\n\n", 9, stop_at_second, &n) == -EINVAL);

        big = malloc(SSE_LINE_MAX + 1);
        ASSERT(big);
        memset(big, 'x', SSE_LINE_MAX + 1);
        ASSERT(sse_parser_new(&q) == 0);
        ASSERT(sse_parser_feed(q, "data: ", 6, NULL, NULL) == 0);
        ASSERT(sse_parser_feed(q, big, SSE_LINE_MAX + 1, NULL, NULL) == -E2BIG);
}

int main(void) {
        test_standard_examples();
        test_fields();
        test_ids_and_retry();
        test_limits_and_errors();
        printf("all tests passed\n");
        return EXIT_SUCCESS;
}
