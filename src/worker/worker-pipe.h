/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The worker's ends of an agent's pipes, all non-blocking: a reader that
 * splits what arrives into lines without a fixed line length, and a writer
 * that keeps what the pipe cannot take yet. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* A line longer than this is not kept: its head is passed on with the
 * `overlong` flag and the rest is dropped up to the next newline. */
#define LINE_MAX_BYTES (16U * 1024U * 1024U)
#define LINE_OVERLONG_HEAD 1024U

typedef struct LineReader {
        char *buf;
        size_t len;                     /* bytes in buf */
        size_t allocated;
        size_t scanned;                 /* buf[0..scanned) holds no newline */
        bool discarding;                /* inside an overlong line */
        bool eof;
} LineReader;

/* Called for each line, without its newline. Returning < 0 stops reading
 * and is returned by line_reader_read(). */
typedef int (*LineCallback)(const char *line, size_t len, bool overlong, void *userdata);

/* Reads at most about max_bytes from fd (then returns, so one busy pipe
 * does not starve the rest of the event loop) and passes on each complete
 * line; at end of file a last line without a newline too. Returns 1 at end
 * of file, 0 when the pipe is empty, 2 when max_bytes were read (there may
 * be more), < 0 on a read error or the callback's error. */
int line_reader_read(LineReader *r, int fd, size_t max_bytes, LineCallback cb, void *userdata);
void line_reader_done(LineReader *r);

typedef struct LineWriter {
        char *buf;
        size_t len;
} LineWriter;

int line_writer_queue(LineWriter *w, const char *data, size_t n);
/* Writes what it can. Returns 1 when nothing is left, 0 when the pipe is
 * full (wait for EPOLLOUT), -EPIPE when the reader is gone. */
int line_writer_flush(LineWriter *w, int fd);
void line_writer_done(LineWriter *w);
