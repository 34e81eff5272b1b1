/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Line splitting and buffered writing on non-blocking pipes (see
 * worker-pipe.h). */

#include "worker-pipe.h"
#include "macro.h"

#define READ_CHUNK (64U * 1024U)

static int reader_reserve(LineReader *r, size_t extra) {
        size_t want;
        char *b;

        if (r->allocated - r->len >= extra)
                return 0;
        /* Doubling, but not far past the longest line kept. */
        want = MAX(r->len + extra, MIN(r->allocated * 2, (size_t) LINE_MAX_BYTES + 8 * READ_CHUNK));
        b = realloc(r->buf, want);
        if (!b)
                return -ENOMEM;
        r->buf = b;
        r->allocated = want;
        return 0;
}

/* Passes on every complete line in buf and keeps the rest. */
static int reader_split(LineReader *r, LineCallback cb, void *userdata) {
        size_t start = 0;
        int k;

        while (start < r->len) {
                size_t from = MAX(start, r->scanned);
                char *nl = memchr(r->buf + from, '\n', r->len - from);

                if (!nl) {
                        r->scanned = r->len;
                        break;
                }
                size_t end = (size_t) (nl - r->buf);

                if (r->discarding)
                        r->discarding = false;          /* the tail of an overlong line */
                else {
                        k = cb(r->buf + start, end - start, false, userdata);
                        if (k < 0)
                                return k;
                }
                start = end + 1;
                r->scanned = start;
        }

        if (start > 0) {
                memmove(r->buf, r->buf + start, r->len - start);
                r->len -= start;
                r->scanned -= start;
        }

        /* What is left has no newline; past the limit only its head is kept. */
        if (!r->discarding && r->len > LINE_MAX_BYTES) {
                k = cb(r->buf, LINE_OVERLONG_HEAD, true, userdata);
                if (k < 0)
                        return k;
                r->discarding = true;
        }
        if (r->discarding) {
                r->len = 0;
                r->scanned = 0;
        }
        return 0;
}

int line_reader_read(LineReader *r, int fd, size_t max_bytes, LineCallback cb, void *userdata) {
        size_t total = 0;
        bool empty = false;
        int k;

        if (r->eof)
                return 1;

        while (total < max_bytes) {
                ssize_t n;

                k = reader_reserve(r, READ_CHUNK);
                if (k < 0)
                        return k;
                n = read(fd, r->buf + r->len, r->allocated - r->len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                empty = true;
                                break;
                        }
                        return -errno;
                }
                if (n == 0) {
                        r->eof = true;
                        break;
                }
                r->len += (size_t) n;
                total += (size_t) n;
                /* Split often enough that a flood of short lines does not
                 * grow the buffer far beyond one line. */
                if (r->len >= 4 * READ_CHUNK) {
                        k = reader_split(r, cb, userdata);
                        if (k < 0)
                                return k;
                }
        }

        k = reader_split(r, cb, userdata);
        if (k < 0)
                return k;
        if (!r->eof)
                return empty ? 0 : 2;

        if (r->len > 0 && !r->discarding) {
                k = cb(r->buf, r->len, false, userdata);
                if (k < 0)
                        return k;
        }
        r->len = r->scanned = 0;
        return 1;
}

void line_reader_done(LineReader *r) {
        free(r->buf);
        *r = (LineReader) {};
}

int line_writer_queue(LineWriter *w, const char *data, size_t n) {
        char *b;

        b = realloc(w->buf, w->len + n);
        if (!b)
                return -ENOMEM;
        memcpy(b + w->len, data, n);
        w->buf = b;
        w->len += n;
        return 0;
}

int line_writer_flush(LineWriter *w, int fd) {
        while (w->len > 0) {
                ssize_t n;

                n = write(fd, w->buf, w->len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                memmove(w->buf, w->buf + n, w->len - (size_t) n);
                w->len -= (size_t) n;
        }
        return 1;
}

void line_writer_done(LineWriter *w) {
        free(w->buf);
        *w = (LineWriter) {};
}
