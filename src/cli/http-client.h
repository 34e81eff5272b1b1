/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A small HTTP/1.1 client for talking to makima-api: endpoints given as
 * "unix:/path" or "http://host:port", one request per connection, a
 * response parser that is strict about what it accepts because the bytes
 * come from the other end of a socket, and responses read as a stream (for
 * Server-Sent Events), their chunked bodies decoded as they arrive. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Where the API listens. */
typedef struct HttpEndpoint {
        char *url;              /* as given, for messages */
        char *unix_path;        /* set for unix:PATH */
        char *host;             /* set for http://HOST:PORT (without the [] of an IPv6 literal) */
        char *port;             /* "80" unless given */
        char *path_prefix;      /* "" or "/prefix" from http://host:port/prefix */
} HttpEndpoint;

HttpEndpoint *http_endpoint_free(HttpEndpoint *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpEndpoint *, http_endpoint_free);

/* Parses "unix:/abs/or/relative/path" or "http://host[:port][/prefix]"
 * (host may be a name, an IPv4 address or a bracketed IPv6 address).
 * Returns -EINVAL for anything else (https included: not supported). */
int http_endpoint_parse(const char *url, HttpEndpoint **ret);

typedef struct HttpHeader {
        char *name;
        char *value;
} HttpHeader;

typedef struct HttpResponse {
        unsigned status;        /* 200, 404, … */
        char *reason;           /* may be empty */
        HttpHeader *headers;
        size_t n_headers;
        char *body;             /* always NUL-terminated (an empty body is "") */
        size_t body_size;       /* without that NUL */
} HttpResponse;

HttpResponse *http_response_free(HttpResponse *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpResponse *, http_response_free);

/* The value of the first header called `name` (case-insensitive), or NULL. */
const char *http_response_header(const HttpResponse *r, const char *name);

/* Limits on what a response may contain; beyond them the parser returns -E2BIG. */
#define HTTP_HEADER_BYTES_MAX (64U * 1024U)
#define HTTP_HEADERS_MAX 128U
#define HTTP_BODY_BYTES_MAX (64U * 1024U * 1024U)
#define HTTP_INTERIM_RESPONSES_MAX 8U

/* Parses a complete response from everything received so far (data[0..size)).
 * eof says the peer has closed its end. Informational (1xx) responses are
 * skipped. Returns 1 and the response when complete, 0 when more bytes are
 * needed (never when eof), -EBADMSG when the bytes are not a valid response
 * (or end early), -E2BIG when a limit is exceeded, -ENOMEM. Called again
 * with more bytes it starts over, which is cheap: only a complete response is
 * copied. */
int http_response_parse(const void *data, size_t size, bool eof, HttpResponse **ret);

/* Connects to the endpoint, waiting at most timeout µs. Returns the socket
 * (O_CLOEXEC, non-blocking) or -errno from the last address tried. */
int http_connect(const HttpEndpoint *e, usec_t timeout);

/* Sends one request on a connected socket and reads the response. path must
 * start with "/" and is appended to the endpoint's prefix. bearer (may be
 * NULL) becomes "Authorization: Bearer …"; body (may be NULL) is sent as
 * application/json with a Content-Length. Returns 0 or -errno: -ETIMEDOUT,
 * -ECONNRESET, -EBADMSG / -E2BIG from the parser, -EINVAL for a bearer token
 * or path that would break the request line or headers. */
int http_exchange(int fd, const HttpEndpoint *e, const char *method, const char *path, const char *bearer,
                  const char *body, usec_t timeout, HttpResponse **ret);

/* ---- streamed bodies ---- */

/* Decodes a chunked body incrementally. Zero-initialize it before the first call. */
typedef struct HttpChunkDecoder {
        unsigned state;
        uint64_t left;                  /* of the current chunk */
} HttpChunkDecoder;

/* Decodes in[0..size), the next bytes of a chunked body (after what earlier
 * calls consumed): the data goes to out, which has room for size bytes.
 * *ret_consumed says how much of in was used; the rest (an incomplete line)
 * must be passed again, followed by more bytes. *ret_out_size says how much
 * data was written. Returns 1 when the last chunk and its trailers are
 * through, 0 when more is needed, -EBADMSG or -E2BIG for bad framing. There
 * is no limit on the total: a stream may run for days. */
int http_chunked_decode(HttpChunkDecoder *c, const char *in, size_t size, char *out, size_t *ret_consumed,
                        size_t *ret_out_size);

typedef struct HttpStream HttpStream;

/* Sends a request like http_exchange(), with "Accept: <accept>" and the
 * extra header lines `headers` ("Name: value", NULL-terminated, may be
 * NULL), and reads the response's head. Takes over fd (closed with the
 * stream, also on failure). The body is then read with http_stream_read(). */
int http_stream_open(int fd, const HttpEndpoint *e, const char *method, const char *path, const char *bearer,
                     const char *accept, char *const *headers, usec_t timeout, HttpStream **ret);
HttpStream *http_stream_free(HttpStream *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpStream *, http_stream_free);

/* The status and headers; its body is empty. */
const HttpResponse *http_stream_response(const HttpStream *s);

/* Waits at most timeout for more of the body. Returns 1 and the next bytes
 * (valid until the next call), 0 at the end of the body, -ETIMEDOUT,
 * -ECONNRESET when the connection ends before the body does, -EBADMSG or
 * -E2BIG for bad framing. */
int http_stream_read(HttpStream *s, usec_t timeout, const char **ret_data, size_t *ret_size);

/* Reads the rest of the body (at most HTTP_BODY_BYTES_MAX, NUL-terminated). */
int http_stream_read_all(HttpStream *s, usec_t timeout, char **ret_body, size_t *ret_size);
