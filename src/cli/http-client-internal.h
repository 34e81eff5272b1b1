/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the two halves of the HTTP client (http-client.c parses, http-io.c
 * talks) share beyond http-client.h. */
#pragma once

#include "http-client.h"

/* A chunk-size line longer than this is not a chunk-size line. */
#define CHUNK_LINE_MAX 4096U

typedef enum BodyFraming {
        BODY_NONE,                      /* interim and bodiless responses end with their head */
        BODY_LENGTH,
        BODY_CHUNKED,
        BODY_UNTIL_EOF,                 /* no framing: the body runs until the server closes */
} BodyFraming;

/* Parses a response's status line and headers at d[*p]; *p then points at
 * the body. 1 when complete, 0 when more is needed (never at eof), < 0. */
int http_parse_head(const char *d, size_t size, bool eof, size_t *p, HttpResponse **ret);
/* How the response's body is framed; -EBADMSG for conflicting framing. */
int http_body_framing(const HttpResponse *r, BodyFraming *ret, uint64_t *ret_length);
/* Sets the body to a NUL-terminated copy of src[0..n). */
int http_set_body(HttpResponse *r, const char *src, size_t n);
