/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The request head and chunked body checks of http-request.h. The rules are
 * RFC 9112's, taken strictly wherever libmicrohttpd 0.9.75 would read the
 * bytes differently from us or answer by itself: CRLF only, no obs-fold,
 * no whitespace before a colon, one Content-Length of digits only, no
 * Transfer-Encoding but exactly "chunked" and never beside Content-Length,
 * one Host in HTTP/1.1, no control characters anywhere. */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http-request.h"
#include "macro.h"

_printf_(4, 5)
static int fail(HttpError *e, unsigned status, const char *code, const char *format, ...) {
        va_list ap;

        e->status = status;
        e->code = code;
        va_start(ap, format);
        (void) vsnprintf(e->message, sizeof(e->message), format, ap);
        va_end(ap);
        return -EBADMSG;
}

/* RFC 9110 token characters. */
static bool is_tchar(unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

/* A field value's bytes: visible ASCII, SP, HTAB and obs-text. */
static bool is_value_char(unsigned char c) {
        return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int hex_value(unsigned char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static bool name_is(const char *name, size_t len, const char *what) {
        return len == strlen(what) && strncasecmp(name, what, len) == 0;
}

/* ---- the head ---- */

void http_head_init(HttpHead *h) {
        *h = (HttpHead) {};
}

static int check_target(const char *t, size_t len, HttpError *e) {
        const char *q = memchr(t, '?', len);
        unsigned params = 1;

        /* libmicrohttpd decodes %00 into a NUL and then reads the path or the
         * value only up to it: what we route would not be what was sent. */
        for (size_t i = 0; i + 2 < len; i++)
                if (t[i] == '%' && t[i + 1] == '0' && t[i + 2] == '0')
                        return fail(e, 400, "bad_request", "The request target contains %%00.");

        if (q) {
                for (const char *p = q + 1; p < t + len; p++)
                        params += *p == '&';
                if (params > HTTP_QUERY_PARAMS_MAX)
                        return fail(e, 400, "invalid_parameter", "The query has more than %u parameters.",
                                    HTTP_QUERY_PARAMS_MAX);
        }
        return 0;
}

/* METHOD SP request-target SP HTTP/1.x */
static int request_line(HttpHead *h, const HttpLimits *l, const char *line, size_t len, HttpError *e) {
        size_t i = 0, t;
        const char *v;
        int k;

        while (i < len && is_tchar(line[i]))
                i++;
        if (i > HTTP_METHOD_MAX)
                return fail(e, 400, "bad_request", "The method is longer than %u bytes.", HTTP_METHOD_MAX);
        if (i == len)
                return fail(e, 400, "bad_request", "The request line is not METHOD SP TARGET SP HTTP/1.1.");
        if (i == 0 || line[i] != ' ')
                return fail(e, 400, "bad_request", "This is not an HTTP request line.");

        t = ++i;
        while (i < len && (unsigned char) line[i] > ' ' && (unsigned char) line[i] < 0x7f)
                i++;
        if (i - t > l->max_target_bytes)
                return fail(e, 414, "uri_too_long", "The request target is longer than %zu bytes.", l->max_target_bytes);
        if (i == t)
                return fail(e, 400, "bad_request", "The request line has no target.");
        if (i == len)
                return fail(e, 505, "http_version_not_supported",
                            "HTTP/0.9 requests (no version in the request line) are not supported: send HTTP/1.1.");
        if (line[i] != ' ')
                return fail(e, 400, "bad_request", "The request target has a space, a control character or a byte "
                            "outside ASCII; percent-encode it.");
        k = check_target(line + t, i - t, e);
        if (k < 0)
                return k;

        v = line + i + 1;
        if (len - i - 1 != 8 || !strneq(v, "HTTP/", 5) || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
            v[7] < '0' || v[7] > '9')
                return fail(e, 400, "bad_request", "The request line does not end in an HTTP version like HTTP/1.1.");
        if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
                return fail(e, 505, "http_version_not_supported", "HTTP/%c.%c is not supported: send HTTP/1.1.", v[5],
                            v[7]);
        h->version = v[7] == '1' ? 11 : 10;
        return 0;
}

static int content_length(HttpHead *h, const char *v, size_t len, HttpError *e) {
        uint64_t n = 0;

        if (h->have_length)
                return fail(e, 400, "bad_framing", "The request has more than one Content-Length.");
        h->have_length = true;
        /* No trailing whitespace either: libmicrohttpd would refuse it by itself. */
        if (len == 0)
                return fail(e, 400, "bad_framing", "Content-Length is empty.");
        for (size_t i = 0; i < len; i++) {
                if (v[i] < '0' || v[i] > '9')
                        return fail(e, 400, "bad_framing", "Content-Length is not a number of bytes.");
                if (n > (UINT64_MAX - 9) / 10)
                        return fail(e, 413, "payload_too_large", "Content-Length is too large.");
                n = n * 10 + (uint64_t) (v[i] - '0');
        }
        h->content_length = n;
        return 0;
}

/* NAME ":" OWS VALUE; the value is what libmicrohttpd keeps (it strips
 * leading whitespace only). */
static int field_line(HttpHead *h, const char *line, size_t len, HttpError *e) {
        const char *value;
        size_t i = 0, n;

        if (line[0] == ' ' || line[0] == '\t')
                return fail(e, 400, "bad_request", "A header field is folded over lines (obs-fold); send it on one line.");
        while (i < len && is_tchar(line[i]))
                i++;
        if (i < len && i > 0 && (line[i] == ' ' || line[i] == '\t'))
                return fail(e, 400, "bad_request", "Header field %.*s has whitespace before its colon.", (int) MIN(i, 64),
                            line);
        if (i == 0 || i == len || line[i] != ':')
                return fail(e, 400, "bad_request", "A header field line is not NAME: VALUE.");
        n = i++;
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
                i++;
        value = line + i;
        for (; i < len; i++)
                if (!is_value_char(line[i]))
                        return fail(e, 400, "bad_request", "Header field %.*s has a control character in its value.",
                                    (int) MIN(n, 64), line);

        if (++h->n_fields > HTTP_FIELDS_MAX)
                return fail(e, 431, "headers_too_large", "The request has more than %u header fields.", HTTP_FIELDS_MAX);

        if (name_is(line, n, "Content-Length"))
                return content_length(h, value, len - (size_t) (value - line), e);
        if (name_is(line, n, "Transfer-Encoding")) {
                if (h->have_transfer_encoding)
                        return fail(e, 400, "bad_framing", "The request has more than one Transfer-Encoding.");
                h->have_transfer_encoding = true;
                if (!name_is(value, len - (size_t) (value - line), "chunked"))
                        return fail(e, 400, "bad_framing", "Transfer-Encoding must be exactly \"chunked\", alone.");
        } else if (name_is(line, n, "Host"))
                h->n_hosts++;
        else if (name_is(line, n, "Cookie")) {
                /* libmicrohttpd takes each cookie apart into a record of its own. */
                h->n_cookies++;
                for (const char *p = value; p < line + len; p++)
                        h->n_cookies += *p == ';';
                if (h->n_cookies > HTTP_COOKIES_MAX)
                        return fail(e, 431, "headers_too_large", "The request has more than %u cookies.", HTTP_COOKIES_MAX);
        }
        return 0;
}

static int head_finish(HttpHead *h, HttpError *e) {
        if (h->have_length && h->have_transfer_encoding)
                return fail(e, 400, "bad_framing", "The request has both Content-Length and Transfer-Encoding.");
        if (h->have_transfer_encoding && h->version == 10)
                return fail(e, 400, "bad_framing", "Transfer-Encoding is not allowed in an HTTP/1.0 request.");
        if (h->n_hosts > 1)
                return fail(e, 400, "bad_request", "The request has more than one Host.");
        if (h->n_hosts == 0 && h->version == 11)
                return fail(e, 400, "bad_request", "An HTTP/1.1 request needs a Host header field.");

        if (h->have_transfer_encoding)
                h->framing = HTTP_BODY_CHUNKED;
        else if (h->content_length > 0)
                h->framing = HTTP_BODY_LENGTH;
        else
                h->framing = HTTP_BODY_NONE;
        return 0;
}

/* What the bytes of an unfinished line already show. */
static int head_check_partial(HttpHead *h, const HttpLimits *l, const char *buf, size_t size, HttpError *e) {
        const char *line = buf + h->line_start;
        size_t len = size - h->line_start;

        if (h->have_request_line) {
                if (size > l->max_head_bytes)
                        return fail(e, 431, "headers_too_large", "The request line and header fields are larger than %zu bytes.",
                                    l->max_head_bytes);
                return 0;
        }

        /* A method, or the CR of an empty line: anything else (a TLS hello, a
         * stray protocol) is refused at its first byte. */
        for (size_t i = 0; i < len && i <= HTTP_METHOD_MAX && line[i] != ' '; i++)
                if (!is_tchar(line[i]) && !(i == 0 && len == 1 && line[i] == '\r'))
                        return fail(e, 400, "bad_request", "This is not an HTTP request line.");
        if (len > HTTP_METHOD_MAX && !memchr(line, ' ', HTTP_METHOD_MAX + 1))
                return fail(e, 400, "bad_request", "The method is longer than %u bytes.", HTTP_METHOD_MAX);
        if (len > HTTP_REQUEST_LINE_MAX(l) + 1)
                return fail(e, 414, "uri_too_long", "The request target is longer than %zu bytes.", l->max_target_bytes);
        if (size > http_head_max_bytes(l))
                return fail(e, 431, "headers_too_large", "The request line and header fields are larger than %zu bytes.",
                            l->max_head_bytes);
        return 0;
}

int http_head_feed(HttpHead *h, const HttpLimits *l, const char *buf, size_t size, HttpError *e) {
        for (;;) {
                const char *lf = h->scanned < size ? memchr(buf + h->scanned, '\n', size - h->scanned) : NULL;
                const char *line = buf + h->line_start;
                size_t len;
                int k;

                if (!lf) {
                        h->scanned = size;
                        return head_check_partial(h, l, buf, size, e);
                }
                len = (size_t) (lf - line);
                h->scanned = h->line_start = (size_t) (lf - buf) + 1;
                /* libmicrohttpd takes a bare LF as a line end and a bare CR as data. */
                if (len == 0 || line[len - 1] != '\r')
                        return fail(e, 400, "bad_request", "A line of the request head ends in a bare LF; end lines with CRLF.");
                len--;

                if (!h->have_request_line) {
                        /* RFC 9112 2.2: empty lines before the request line are ignored. */
                        if (len > 0) {
                                k = request_line(h, l, line, len, e);
                                if (k < 0)
                                        return k;
                                h->have_request_line = true;
                        }
                } else if (len == 0) {
                        h->size = h->line_start;
                        if (h->size > l->max_head_bytes)
                                break;
                        k = head_finish(h, e);
                        return k < 0 ? k : 1;
                } else {
                        k = field_line(h, line, len, e);
                        if (k < 0)
                                return k;
                }
                if (h->line_start > (h->have_request_line ? l->max_head_bytes : http_head_max_bytes(l)))
                        break;
        }
        return fail(e, 431, "headers_too_large", "The request line and header fields are larger than %zu bytes.",
                    l->max_head_bytes);
}

/* ---- a chunked body ---- */

void http_chunked_init(HttpChunked *c) {
        *c = (HttpChunked) {};
}

static int chunk_byte(HttpChunked *c, const HttpLimits *l, unsigned char ch, HttpError *e) {
        int v;

        if (c->state <= HTTP_CHUNK_SIZE_LF && ++c->line > HTTP_CHUNK_LINE_MAX)
                return fail(e, 400, "bad_framing", "A chunk-size line is longer than %u bytes.", HTTP_CHUNK_LINE_MAX);
        if (c->state >= HTTP_CHUNK_TRAILER && ++c->trailer_bytes > l->max_head_bytes)
                return fail(e, 431, "headers_too_large", "The trailer fields are larger than %zu bytes.", l->max_head_bytes);

        switch (c->state) {
        case HTTP_CHUNK_SIZE:
        case HTTP_CHUNK_SIZE_MORE:
                v = hex_value(ch);
                if (v >= 0) {
                        if (c->remaining > (l->max_body_bytes >> 4))
                                return fail(e, 413, "payload_too_large", "A chunk is larger than %" PRIu64 " bytes.",
                                            l->max_body_bytes);
                        c->remaining = c->remaining * 16 + (uint64_t) v;
                        if (c->remaining > l->max_body_bytes)
                                return fail(e, 413, "payload_too_large", "A chunk is larger than %" PRIu64 " bytes.",
                                            l->max_body_bytes);
                        c->state = HTTP_CHUNK_SIZE_MORE;
                } else if (c->state == HTTP_CHUNK_SIZE)
                        return fail(e, 400, "bad_framing", "A chunk does not start with its size in hexadecimal.");
                else if (ch == ';')
                        c->state = HTTP_CHUNK_EXT;
                else if (ch == '\r')
                        c->state = HTTP_CHUNK_SIZE_LF;
                else
                        return fail(e, 400, "bad_framing", "A chunk size is followed by something other than ';' or CRLF.");
                return 0;
        case HTTP_CHUNK_EXT:
                if (ch == '\r')
                        c->state = HTTP_CHUNK_SIZE_LF;
                else if (!is_value_char(ch))
                        return fail(e, 400, "bad_framing", "A chunk extension has a control character.");
                return 0;
        case HTTP_CHUNK_SIZE_LF:
                if (ch != '\n')
                        return fail(e, 400, "bad_framing", "A chunk-size line does not end with CRLF.");
                c->state = c->remaining > 0 ? HTTP_CHUNK_DATA : HTTP_CHUNK_TRAILER;
                return 0;
        case HTTP_CHUNK_DATA_CR:
                if (ch != '\r')
                        return fail(e, 400, "bad_framing", "A chunk's data is not followed by CRLF.");
                c->state = HTTP_CHUNK_DATA_LF;
                return 0;
        case HTTP_CHUNK_DATA_LF:
                if (ch != '\n')
                        return fail(e, 400, "bad_framing", "A chunk's data is not followed by CRLF.");
                c->state = HTTP_CHUNK_SIZE;
                c->line = 0;
                return 0;
        case HTTP_CHUNK_TRAILER:
                if (ch == '\r')
                        c->state = HTTP_CHUNK_END_LF;
                else if (ch == ' ' || ch == '\t')
                        return fail(e, 400, "bad_framing", "A trailer field is folded over lines (obs-fold).");
                else if (!is_tchar(ch))
                        return fail(e, 400, "bad_framing", "A trailer field line is not NAME: VALUE.");
                else if (++c->trailer_fields > HTTP_FIELDS_MAX)
                        return fail(e, 431, "headers_too_large", "The request has more than %u trailer fields.",
                                    HTTP_FIELDS_MAX);
                else
                        c->state = HTTP_CHUNK_TRAILER_NAME;
                return 0;
        case HTTP_CHUNK_TRAILER_NAME:
                if (ch == ':')
                        c->state = HTTP_CHUNK_TRAILER_VALUE;
                else if (!is_tchar(ch))
                        return fail(e, 400, "bad_framing", "A trailer field line is not NAME: VALUE.");
                return 0;
        case HTTP_CHUNK_TRAILER_VALUE:
                if (ch == '\r')
                        c->state = HTTP_CHUNK_TRAILER_LF;
                else if (!is_value_char(ch))
                        return fail(e, 400, "bad_framing", "A trailer field has a control character in its value.");
                return 0;
        case HTTP_CHUNK_TRAILER_LF:
                if (ch != '\n')
                        return fail(e, 400, "bad_framing", "A trailer field line does not end with CRLF.");
                c->state = HTTP_CHUNK_TRAILER;
                return 0;
        case HTTP_CHUNK_END_LF:
                if (ch != '\n')
                        return fail(e, 400, "bad_framing", "The chunked body does not end with CRLF.");
                c->state = HTTP_CHUNK_DONE;
                return 0;
        case HTTP_CHUNK_DATA:
        case HTTP_CHUNK_DONE:
                break;
        }
        return -EINVAL;         /* not reached: the caller handles data and the end */
}

int http_chunked_feed(HttpChunked *c, const HttpLimits *l, const char *buf, size_t size, size_t *ret_used,
                      HttpError *e) {
        size_t i = 0;
        int k;

        while (i < size && c->state != HTTP_CHUNK_DONE) {
                if (c->state == HTTP_CHUNK_DATA) {
                        uint64_t n = MIN(c->remaining, (uint64_t) (size - i));

                        i += (size_t) n;
                        c->remaining -= n;
                        if (c->remaining == 0)
                                c->state = HTTP_CHUNK_DATA_CR;
                        continue;
                }
                k = chunk_byte(c, l, (unsigned char) buf[i], e);
                if (k < 0)
                        return k;
                i++;
        }
        *ret_used = i;
        return c->state == HTTP_CHUNK_DONE;
}
