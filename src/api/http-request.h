/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The framing of HTTP/1.x requests, as makima-api's front door checks it
 * before libmicrohttpd sees a byte: the request head (request line and
 * header fields) and a chunked body, each fed as it arrives. What passes is
 * a strict subset of what libmicrohttpd 0.9.75 parses the same way and
 * answers itself; everything else gets a status, an error code and a
 * message for a JSON answer. No I/O here, so the fuzzer and the unit tests
 * drive it directly. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fixed limits, besides the configured ones in HttpLimits. They also bound
 * what libmicrohttpd allocates per connection for header records (see
 * HTTP_POOL_RECORDS). */
#define HTTP_METHOD_MAX 32U             /* bytes of a method name */
#define HTTP_FIELDS_MAX 100U            /* header fields of a head, and trailer fields of a body */
#define HTTP_QUERY_PARAMS_MAX 100U      /* name=value pairs in the query */
#define HTTP_COOKIES_MAX 100U           /* cookies in all Cookie fields */
#define HTTP_CHUNK_LINE_MAX 1024U       /* a chunk-size line with its extensions */
/* Records libmicrohttpd keeps per request at most: fields, query
 * parameters, cookies and trailer fields. */
#define HTTP_POOL_RECORDS (HTTP_FIELDS_MAX + HTTP_QUERY_PARAMS_MAX + HTTP_COOKIES_MAX + HTTP_FIELDS_MAX)

typedef struct HttpLimits {
        size_t max_head_bytes;          /* request line and fields as sent, CRLFs included ([API] MaxHeaderBytes=) */
        size_t max_target_bytes;        /* the request target (API_URI_MAX) */
        uint64_t max_body_bytes;        /* a larger chunk is refused at once ([API] MaxBodyBytes=) */
} HttpLimits;

/* The longest request line that can pass: method, target, version. */
#define HTTP_REQUEST_LINE_MAX(l) (HTTP_METHOD_MAX + 1 + (l)->max_target_bytes + 1 + 8)

/* The bytes a head may take before it is refused for its size, whatever
 * the limits: a reader needs to hold no more (and one byte more, to see it). */
static inline size_t http_head_max_bytes(const HttpLimits *l) {
        size_t line = HTTP_REQUEST_LINE_MAX(l) + 2;

        return l->max_head_bytes > line ? l->max_head_bytes : line;
}

/* Why a request is refused: the status, the JSON error code and a message
 * naming what was wrong. */
typedef struct HttpError {
        unsigned status;
        const char *code;
        char message[160];
} HttpError;

typedef enum HttpFraming {
        HTTP_BODY_NONE,
        HTTP_BODY_LENGTH,               /* Content-Length bytes */
        HTTP_BODY_CHUNKED,              /* Transfer-Encoding: chunked */
} HttpFraming;

typedef struct HttpHead {
        /* Where the parser is: lines before `line_start` are checked. */
        size_t line_start;
        size_t scanned;                 /* bytes searched for the end of the current line */
        bool have_request_line;
        unsigned n_fields;
        unsigned n_hosts;
        unsigned n_cookies;
        bool have_length;
        bool have_transfer_encoding;

        /* What it found, once http_head_feed() returned 1. */
        size_t size;                    /* bytes of the head: leading empty lines, request line, fields, empty line */
        unsigned version;               /* 10 or 11 */
        HttpFraming framing;
        uint64_t content_length;
} HttpHead;

/* Begins a head at the next byte. */
void http_head_init(HttpHead *h);

/* Examines buf[0..size), everything received of the head so far (a later
 * call passes the same bytes and more; bytes after the head may follow).
 * Returns 0 when more bytes are needed, 1 when the head is complete
 * (h->size bytes) and acceptable, or -EBADMSG with *ret_error filled in.
 * An error is found as soon as the bytes show it: a request line that
 * cannot be HTTP is refused at its first byte, not at the limit. */
int http_head_feed(HttpHead *h, const HttpLimits *limits, const char *buf, size_t size, HttpError *ret_error);

typedef enum HttpChunkedState {
        HTTP_CHUNK_SIZE,                /* the first digit of a chunk-size */
        HTTP_CHUNK_SIZE_MORE,           /* further digits, or ';' or CR */
        HTTP_CHUNK_EXT,                 /* a chunk extension, up to CR */
        HTTP_CHUNK_SIZE_LF,
        HTTP_CHUNK_DATA,
        HTTP_CHUNK_DATA_CR,
        HTTP_CHUNK_DATA_LF,
        HTTP_CHUNK_TRAILER,             /* the start of a trailer field line, or the final CR */
        HTTP_CHUNK_TRAILER_NAME,
        HTTP_CHUNK_TRAILER_VALUE,
        HTTP_CHUNK_TRAILER_LF,
        HTTP_CHUNK_END_LF,
        HTTP_CHUNK_DONE,
} HttpChunkedState;

typedef struct HttpChunked {
        HttpChunkedState state;
        uint64_t remaining;             /* of the chunk's data, or its size while reading the digits */
        size_t line;                    /* bytes of the current chunk-size line */
        size_t trailer_bytes;
        unsigned trailer_fields;
} HttpChunked;

void http_chunked_init(HttpChunked *c);

/* Checks the next `size` bytes of a chunked body and sets *ret_used to how
 * many of them belong to it: all, or fewer when it ended within them.
 * Returns 0 when the body goes on, 1 when it ended (the last chunk and the
 * trailer section are in), or -EBADMSG with *ret_error filled in (and
 * *ret_used untouched). */
int http_chunked_feed(HttpChunked *c, const HttpLimits *limits, const char *buf, size_t size, size_t *ret_used,
                      HttpError *ret_error);
