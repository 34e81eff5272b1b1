/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A small HTTP/1.1 client for talking to makima-api: endpoints given as
 * "unix:/path" or "http://host:port", one request per connection, and a
 * response parser that is strict about what it accepts because the bytes
 * come from the other end of a socket. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

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
