/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An incremental parser of Server-Sent Events (the text/event-stream format
 * of the HTML standard): bytes go in as they arrive, in pieces of any size,
 * and each complete event comes out through a callback. The bytes come from
 * the other end of a socket, so lines and events are bounded. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* A line (and so a field) longer than this, or an event's data beyond it, is -E2BIG. */
#define SSE_LINE_MAX (16U * 1024U * 1024U)
#define SSE_DATA_MAX (16U * 1024U * 1024U)

typedef struct SseEvent {
        const char *type;               /* "message" unless the stream names another */
        const char *data;               /* the data lines joined by "\n", NUL-terminated */
        size_t data_size;
        const char *id;                 /* the last event id seen so far ("" if none) */
} SseEvent;

/* Returns 0 to go on, or a negative value that stops the parser and is returned by sse_parser_feed(). */
typedef int (*SseCallback)(const SseEvent *e, void *userdata);

typedef struct SseParser SseParser;

int sse_parser_new(SseParser **ret);
SseParser *sse_parser_free(SseParser *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(SseParser *, sse_parser_free);

/* Parses the next bytes of the stream and calls cb for each event they
 * complete. Returns 0, what cb returned if negative, -E2BIG or -ENOMEM.
 * After an error the parser must not be fed again. An event the stream ends
 * in the middle of is never dispatched. */
int sse_parser_feed(SseParser *p, const void *data, size_t size, SseCallback cb, void *userdata);

/* The last event id (a reconnecting client sends it as Last-Event-ID). */
const char *sse_parser_last_event_id(const SseParser *p);
/* The reconnection time the stream asked for ("retry:"), in ms; -1 if none. */
int64_t sse_parser_retry(const SseParser *p);
