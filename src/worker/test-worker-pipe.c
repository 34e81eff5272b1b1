/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests of the worker's pipe reader and writer on real pipes: lines split
 * across reads, an empty pipe, end of file without a newline, a line over
 * the limit, a full pipe and a closed one. */

#include <assert.h>
#include <fcntl.h>
#include <signal.h>

#include "macro.h"
#include "worker-pipe.h"

typedef struct Seen {
        char *lines[16];
        bool overlong[16];
        size_t n;
} Seen;

static int collect(const char *line, size_t len, bool overlong, void *userdata) {
        Seen *s = userdata;

        assert(s->n < 16);
        s->lines[s->n] = strndup(line, len);
        assert(s->lines[s->n]);
        s->overlong[s->n++] = overlong;
        return 0;
}

static void seen_done(Seen *s) {
        for (size_t i = 0; i < s->n; i++)
                free(s->lines[i]);
        *s = (Seen) {};
}

static void make_pipe(int p[2]) {
        assert(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
}

static void write_all(int fd, const char *s, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, s, n);
                assert(k > 0);
                s += k;
                n -= (size_t) k;
        }
}

static void test_split(void) {
        LineReader r = {};
        Seen s = {};
        int p[2];

        make_pipe(p);
        assert(line_reader_read(&r, p[0], 1 << 20, collect, &s) == 0);
        assert(s.n == 0);

        write_all(p[1], "one\ntw", 6);
        assert(line_reader_read(&r, p[0], 1 << 20, collect, &s) == 0);
        assert(s.n == 1 && strcmp(s.lines[0], "one") == 0);

        write_all(p[1], "o\n\nthree", 8);
        assert(line_reader_read(&r, p[0], 1 << 20, collect, &s) == 0);
        assert(s.n == 3 && strcmp(s.lines[1], "two") == 0 && strcmp(s.lines[2], "") == 0);

        close(p[1]);
        assert(line_reader_read(&r, p[0], 1 << 20, collect, &s) == 1);
        assert(s.n == 4 && strcmp(s.lines[3], "three") == 0 && !s.overlong[3]);
        /* Once at the end, it stays there. */
        assert(line_reader_read(&r, p[0], 1 << 20, collect, &s) == 1);
        assert(s.n == 4);

        close(p[0]);
        line_reader_done(&r);
        seen_done(&s);
}

static void test_budget(void) {
        LineReader r = {};
        Seen s = {};
        char buf[8192];
        int p[2];

        make_pipe(p);
        memset(buf, 'x', sizeof(buf));
        buf[sizeof(buf) - 1] = '\n';
        write_all(p[1], buf, sizeof(buf));
        write_all(p[1], buf, sizeof(buf));
        /* A budget smaller than what waits: 2 says "call again". */
        assert(line_reader_read(&r, p[0], 100, collect, &s) == 2);
        while (line_reader_read(&r, p[0], 100, collect, &s) == 2)
                ;
        assert(s.n == 2 && strlen(s.lines[0]) == sizeof(buf) - 1);
        close(p[0]);
        close(p[1]);
        line_reader_done(&r);
        seen_done(&s);
}

static void test_overlong(void) {
        LineReader r = {};
        Seen s = {};
        size_t chunk = 1 << 20;
        char *big = malloc(chunk);
        int p[2];
        pid_t pid;

        assert(big);
        memset(big, 'a', chunk);
        make_pipe(p);
        pid = fork();
        assert(pid >= 0);
        if (pid == 0) {
                int flags = fcntl(p[1], F_GETFL);

                assert(fcntl(p[1], F_SETFL, flags & ~O_NONBLOCK) == 0);
                close(p[0]);
                /* 17 MiB of one line, then a short one. */
                for (int i = 0; i < 17; i++)
                        write_all(p[1], big, chunk);
                write_all(p[1], "tail\nshort\n", 11);
                _exit(0);
        }
        close(p[1]);
        for (;;) {
                int k = line_reader_read(&r, p[0], 1 << 20, collect, &s);

                assert(k >= 0);
                if (k == 1)
                        break;
                if (k == 0)
                        (void) usleep(1000);
        }
        assert(s.n == 2);
        assert(s.overlong[0] && strlen(s.lines[0]) == LINE_OVERLONG_HEAD);
        assert(!s.overlong[1] && strcmp(s.lines[1], "short") == 0);
        /* Only about one line's worth was ever kept. */
        assert(r.allocated <= LINE_MAX_BYTES + (1U << 20));
        close(p[0]);
        line_reader_done(&r);
        seen_done(&s);
        free(big);
}

static void test_writer(void) {
        LineWriter w = {};
        char buf[65536];
        size_t total = 0;
        int p[2], k;

        make_pipe(p);
        memset(buf, 'y', sizeof(buf));
        /* More than the pipe holds: the rest waits. */
        assert(line_writer_queue(&w, buf, sizeof(buf)) == 0);
        assert(line_writer_queue(&w, buf, sizeof(buf)) == 0);
        assert(line_writer_flush(&w, p[1]) == 0);
        assert(w.len > 0);
        while ((k = line_writer_flush(&w, p[1])) == 0) {
                ssize_t n = read(p[0], buf, sizeof(buf));
                assert(n > 0);
                total += (size_t) n;
        }
        assert(k == 1 && w.len == 0);
        for (ssize_t n; (n = read(p[0], buf, sizeof(buf))) > 0;)
                total += (size_t) n;
        assert(total == 2 * sizeof(buf));

        close(p[0]);
        assert(line_writer_queue(&w, "x\n", 2) == 0);
        assert(line_writer_flush(&w, p[1]) == -EPIPE);
        close(p[1]);
        line_writer_done(&w);
}

int main(void) {
        (void) signal(SIGPIPE, SIG_IGN);
        test_split();
        test_budget();
        test_overlong();
        test_writer();
        return 0;
}
