/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The parsing half of the HTTP/1.1 client of http-client.h: endpoint URLs,
 * and responses (status line, headers, Content-Length or chunked bodies),
 * whole or, for the chunked bodies of streams, incrementally. The I/O half
 * is http-io.c. */

#include <sys/un.h>

#include "http-client-internal.h"


HttpEndpoint *http_endpoint_free(HttpEndpoint *e) {
        if (!e)
                return NULL;
        free(e->url);
        free(e->unix_path);
        free(e->host);
        free(e->port);
        free(e->path_prefix);
        return mfree(e);
}

static int parse_port(const char *s, size_t n, char **ret) {
        unsigned long v = 0;

        if (n == 0 || n > 5)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned long) (s[i] - '0');
        }
        if (v == 0 || v > 65535)
                return -EINVAL;
        char *p = strndup(s, n);
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

int http_endpoint_parse(const char *url, HttpEndpoint **ret) {
        _cleanup_(http_endpoint_freep) HttpEndpoint *e = NULL;
        const char *s, *host, *host_end, *port = NULL, *path;
        int r;

        if (!url)
                return -EINVAL;

        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->url = strdup(url);
        if (!e->url)
                return -ENOMEM;

        s = startswith(url, "unix:");
        if (s) {
                if (isempty(s) || strlen(s) >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
                        return -EINVAL;
                e->unix_path = strdup(s);
                e->path_prefix = strdup("");
                if (!e->unix_path || !e->path_prefix)
                        return -ENOMEM;
                *ret = TAKE_PTR(e);
                return 0;
        }

        s = startswith(url, "http://");
        if (!s)
                return -EINVAL;

        path = s + strcspn(s, "/?#");
        if (*path && *path != '/')
                return -EINVAL;
        if (memchr(s, '@', (size_t) (path - s)))
                return -EINVAL;         /* credentials in the URL: use MAKIMA_API_KEY */

        if (*s == '[') {
                host = s + 1;
                host_end = memchr(host, ']', (size_t) (path - host));
                if (!host_end)
                        return -EINVAL;
                if (host_end + 1 < path) {
                        if (host_end[1] != ':')
                                return -EINVAL;
                        port = host_end + 2;
                }
        } else {
                host = s;
                host_end = memchr(host, ':', (size_t) (path - host));
                if (host_end)
                        port = host_end + 1;
                else
                        host_end = path;
        }
        if (host_end == host)
                return -EINVAL;
        for (const char *c = host; c < host_end; c++)
                if ((unsigned char) *c <= ' ' || strchr("[]/\\\"'<>", *c))
                        return -EINVAL;

        e->host = strndup(host, (size_t) (host_end - host));
        if (!e->host)
                return -ENOMEM;
        if (port) {
                r = parse_port(port, (size_t) (path - port), &e->port);
                if (r < 0)
                        return r;
        } else {
                e->port = strdup("80");
                if (!e->port)
                        return -ENOMEM;
        }

        if (strpbrk(path, "?#"))
                return -EINVAL;
        for (const char *c = path; *c; c++)
                if ((unsigned char) *c <= ' ' || *c == 0x7f)
                        return -EINVAL;
        e->path_prefix = strndup(path, strlen(path) - (path[0] && path[strlen(path) - 1] == '/'));
        if (!e->path_prefix)
                return -ENOMEM;

        *ret = TAKE_PTR(e);
        return 0;
}

HttpResponse *http_response_free(HttpResponse *r) {
        if (!r)
                return NULL;
        free(r->reason);
        for (size_t i = 0; i < r->n_headers; i++) {
                free(r->headers[i].name);
                free(r->headers[i].value);
        }
        free(r->headers);
        free(r->body);
        return mfree(r);
}

const char *http_response_header(const HttpResponse *r, const char *name) {
        for (size_t i = 0; i < r->n_headers; i++)
                if (strcaseeq(r->headers[i].name, name))
                        return r->headers[i].value;
        return NULL;
}

/* RFC 9110 token characters. */
static bool is_tchar(unsigned char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

/* Field values and reason phrases: HTAB, SP, visible ASCII, obs-text. */
static bool is_field_char(unsigned char c) {
        return c == '\t' || (c >= ' ' && c != 0x7f);
}

/* Finds the line that starts at d[p]. A line ends with CRLF or a bare LF
 * (RFC 9112 lets a recipient accept the latter); a CR anywhere else is an
 * error. Returns 1 with the line's length and the start of the next line, 0
 * if the line is not complete yet. */
static int get_line(const char *d, size_t size, size_t p, size_t *ret_len, size_t *ret_next) {
        const char *lf = memchr(d + p, '\n', size - p);
        size_t len;

        if (!lf)
                return 0;
        len = (size_t) (lf - (d + p));
        if (len > 0 && d[p + len - 1] == '\r')
                len--;
        if (memchr(d + p, '\r', len))
                return -EBADMSG;
        *ret_len = len;
        *ret_next = (size_t) (lf - d) + 1;
        return 1;
}

static int parse_status_line(const char *l, size_t n, HttpResponse *r) {
        /* HTTP/1.x SP 3DIGIT [SP reason] */
        if (n < 12 || !strneq(l, "HTTP/1.", 7) || l[7] < '0' || l[7] > '9' || l[8] != ' ')
                return -EBADMSG;
        if (l[9] < '1' || l[9] > '5' || l[10] < '0' || l[10] > '9' || l[11] < '0' || l[11] > '9')
                return -EBADMSG;
        r->status = (unsigned) ((l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0'));
        if (n > 12 && l[12] != ' ')
                return -EBADMSG;
        for (size_t i = 13; i < n; i++)
                if (!is_field_char((unsigned char) l[i]))
                        return -EBADMSG;
        r->reason = n > 13 ? strndup(l + 13, n - 13) : strdup("");
        return r->reason ? 0 : -ENOMEM;
}

/* Checks one "name: value" line and, if headers is not NULL, stores it. */
static int parse_header_line(const char *l, size_t n, HttpResponse *headers) {
        size_t colon = 0, vs, ve;

        while (colon < n && is_tchar((unsigned char) l[colon]))
                colon++;
        /* No name, a space before the colon, or obs-fold (a line starting with white space). */
        if (colon == 0 || colon >= n || l[colon] != ':')
                return -EBADMSG;
        for (size_t i = colon + 1; i < n; i++)
                if (!is_field_char((unsigned char) l[i]))
                        return -EBADMSG;
        vs = colon + 1;
        while (vs < n && IN_SET(l[vs], ' ', '\t'))
                vs++;
        ve = n;
        while (ve > vs && IN_SET(l[ve - 1], ' ', '\t'))
                ve--;

        if (!headers)
                return 0;
        if (headers->n_headers >= HTTP_HEADERS_MAX)
                return -E2BIG;
        HttpHeader *a = reallocarray(headers->headers, headers->n_headers + 1, sizeof(HttpHeader));
        if (!a)
                return -ENOMEM;
        headers->headers = a;
        a[headers->n_headers] = (HttpHeader) {
                .name = strndup(l, colon),
                .value = strndup(l + vs, ve - vs),
        };
        headers->n_headers++;
        if (!a[headers->n_headers - 1].name || !a[headers->n_headers - 1].value)
                return -ENOMEM;
        return 0;
}

/* Reads header lines from d[*p] up to and including the empty line. With
 * r == NULL (trailers) the lines are checked and dropped. */
static int parse_fields(const char *d, size_t size, size_t *p, HttpResponse *r) {
        size_t q = *p;
        int k;

        for (;;) {
                size_t len, next;

                k = get_line(d, size, q, &len, &next);
                if (k < 0)
                        return k;
                if (k == 0)
                        return size - *p > HTTP_HEADER_BYTES_MAX ? -E2BIG : 0;
                if (next - *p > HTTP_HEADER_BYTES_MAX)
                        return -E2BIG;
                if (len == 0) {
                        q = next;
                        break;
                }
                k = parse_header_line(d + q, len, r);
                if (k < 0)
                        return k;
                q = next;
        }
        *p = q;
        return 1;
}

static int parse_content_length(const HttpResponse *r, uint64_t *ret) {
        bool found = false;
        uint64_t v = 0;

        for (size_t i = 0; i < r->n_headers; i++) {
                const char *s = r->headers[i].value;
                uint64_t w = 0;

                if (!strcaseeq(r->headers[i].name, "Content-Length"))
                        continue;
                if (!*s)
                        return -EBADMSG;
                for (; *s; s++) {
                        if (*s < '0' || *s > '9')
                                return -EBADMSG;
                        if (w > (UINT64_MAX - 9) / 10)
                                return -E2BIG;
                        w = w * 10 + (uint64_t) (*s - '0');
                }
                /* Repeated Content-Length headers must agree, or we could be smuggled a second response. */
                if (found && w != v)
                        return -EBADMSG;
                v = w;
                found = true;
        }
        if (!found)
                return 0;
        *ret = v;
        return 1;
}

/* A chunk-size line: hex digits, then optional white space and extensions. */
static int parse_chunk_size(const char *l, size_t len, uint64_t *ret) {
        uint64_t chunk = 0;
        size_t i = 0;

        for (; i < len; i++) {
                int v;

                if (l[i] >= '0' && l[i] <= '9')
                        v = l[i] - '0';
                else if (l[i] >= 'a' && l[i] <= 'f')
                        v = l[i] - 'a' + 10;
                else if (l[i] >= 'A' && l[i] <= 'F')
                        v = l[i] - 'A' + 10;
                else
                        break;
                if (chunk > HTTP_BODY_BYTES_MAX)
                        return -E2BIG;
                chunk = chunk * 16 + (uint64_t) v;
        }
        if (i == 0)
                return -EBADMSG;
        /* Chunk extensions are allowed and ignored; nothing else may follow the size. */
        while (i < len && IN_SET(l[i], ' ', '\t'))
                i++;
        if (i < len && l[i] != ';')
                return -EBADMSG;
        for (; i < len; i++)
                if (!is_field_char((unsigned char) l[i]))
                        return -EBADMSG;
        if (chunk > HTTP_BODY_BYTES_MAX)
                return -E2BIG;
        *ret = chunk;
        return 0;
}

/* Walks a chunked body starting at d[*p]. With out == NULL it only checks
 * and measures (*ret_size); with out it copies the data there. Returns 1
 * when the body and its trailers are complete, 0 if more bytes are needed. */
static int walk_chunks(const char *d, size_t size, size_t *p, char *out, size_t *ret_size) {
        size_t q = *p, total = 0;
        int k;

        for (;;) {
                size_t len, next;
                uint64_t chunk;

                k = get_line(d, size, q, &len, &next);
                if (k < 0)
                        return k;
                if (k == 0)
                        return size - q > CHUNK_LINE_MAX ? -EBADMSG : 0;
                if (len > CHUNK_LINE_MAX)
                        return -EBADMSG;
                k = parse_chunk_size(d + q, len, &chunk);
                if (k < 0)
                        return k;
                if (chunk > HTTP_BODY_BYTES_MAX - total)
                        return -E2BIG;
                q = next;

                if (chunk == 0) {
                        k = parse_fields(d, size, &q, NULL);
                        if (k <= 0)
                                return k;
                        break;
                }

                if (size - q < chunk)
                        return 0;
                if (out)
                        memcpy(out + total, d + q, chunk);
                total += chunk;
                q += chunk;

                /* The data is followed by CRLF (or a bare LF, as for lines). */
                if (q < size && d[q] == '\r') {
                        if (q + 1 >= size)
                                return 0;
                        if (d[q + 1] != '\n')
                                return -EBADMSG;
                        q += 2;
                } else if (q < size) {
                        if (d[q] != '\n')
                                return -EBADMSG;
                        q++;
                } else
                        return 0;
        }

        *p = q;
        *ret_size = total;
        return 1;
}

enum {
        CHUNK_SIZE,
        CHUNK_DATA,
        CHUNK_DATA_END,
        CHUNK_TRAILER,
        CHUNK_DONE,
};

int http_chunked_decode(HttpChunkDecoder *c, const char *in, size_t size, char *out, size_t *ret_consumed,
                        size_t *ret_out_size) {
        size_t p = 0, o = 0, len, next, n;
        uint64_t chunk;
        int k;

        for (;;)
                switch (c->state) {
                case CHUNK_SIZE:
                        k = get_line(in, size, p, &len, &next);
                        if (k < 0)
                                return k;
                        if (k == 0) {
                                if (size - p > CHUNK_LINE_MAX)
                                        return -EBADMSG;
                                goto more;
                        }
                        if (len > CHUNK_LINE_MAX)
                                return -EBADMSG;
                        k = parse_chunk_size(in + p, len, &chunk);
                        if (k < 0)
                                return k;
                        p = next;
                        c->left = chunk;
                        c->state = chunk == 0 ? CHUNK_TRAILER : CHUNK_DATA;
                        break;

                case CHUNK_DATA:
                        n = (size_t) MIN(c->left, (uint64_t) (size - p));
                        memcpy(out + o, in + p, n);
                        o += n;
                        p += n;
                        c->left -= n;
                        if (c->left > 0)
                                goto more;
                        c->state = CHUNK_DATA_END;
                        break;

                case CHUNK_DATA_END:
                        /* CRLF, or a bare LF, as for lines. */
                        if (p >= size)
                                goto more;
                        if (in[p] == '\r') {
                                if (p + 1 >= size)
                                        goto more;
                                if (in[p + 1] != '\n')
                                        return -EBADMSG;
                                p += 2;
                        } else if (in[p] == '\n')
                                p++;
                        else
                                return -EBADMSG;
                        c->state = CHUNK_SIZE;
                        break;

                case CHUNK_TRAILER:
                        k = get_line(in, size, p, &len, &next);
                        if (k < 0)
                                return k;
                        if (k == 0) {
                                if (size - p > HTTP_HEADER_BYTES_MAX)
                                        return -E2BIG;
                                goto more;
                        }
                        if (next - p > HTTP_HEADER_BYTES_MAX)
                                return -E2BIG;
                        if (len > 0) {
                                k = parse_header_line(in + p, len, NULL);
                                if (k < 0)
                                        return k;
                        } else
                                c->state = CHUNK_DONE;
                        p = next;
                        break;

                case CHUNK_DONE:
                        *ret_consumed = p;
                        *ret_out_size = o;
                        return 1;

                default:
                        return -EINVAL;
                }

more:
        *ret_consumed = p;
        *ret_out_size = o;
        return 0;
}

int http_set_body(HttpResponse *r, const char *src, size_t n) {
        r->body = malloc(n + 1);
        if (!r->body)
                return -ENOMEM;
        if (n > 0)
                memcpy(r->body, src, n);
        r->body[n] = '\0';
        r->body_size = n;
        return 0;
}

/* Parses a response's status line and headers at d[*p]; *p then points at the body. */
int http_parse_head(const char *d, size_t size, bool eof, size_t *p, HttpResponse **ret) {
        _cleanup_(http_response_freep) HttpResponse *r = NULL;
        size_t q = *p, len, next;
        int k;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;

        k = get_line(d, size, q, &len, &next);
        if (k < 0)
                return k;
        if (k == 0) {
                if (size - q > HTTP_HEADER_BYTES_MAX)
                        return -E2BIG;
                /* Fail early on bytes that can never become a status line. */
                if (size - q >= 5 && !strneq(d + q, "HTTP/", 5))
                        return -EBADMSG;
                return eof ? -EBADMSG : 0;
        }
        if (next - q > HTTP_HEADER_BYTES_MAX)
                return -E2BIG;
        k = parse_status_line(d + q, len, r);
        if (k < 0)
                return k;
        q = next;

        k = parse_fields(d, size, &q, r);
        if (k < 0)
                return k;
        if (k == 0)
                return eof ? -EBADMSG : 0;

        if (r->status == 101)
                return -EBADMSG;        /* we never ask for an upgrade */

        *p = q;
        *ret = TAKE_PTR(r);
        return 1;
}

int http_body_framing(const HttpResponse *r, BodyFraming *ret, uint64_t *ret_length) {
        const char *te = NULL;
        uint64_t length = 0;
        int has_length;

        if (r->status < 200 || IN_SET(r->status, 204u, 304u)) {
                *ret = BODY_NONE;
                return 0;
        }
        for (size_t i = 0; i < r->n_headers; i++)
                if (strcaseeq(r->headers[i].name, "Transfer-Encoding")) {
                        if (te)
                                return -EBADMSG;
                        te = r->headers[i].value;
                }
        has_length = parse_content_length(r, &length);
        if (has_length < 0)
                return has_length;

        if (te) {
                /* Only "chunked" is understood, and a message framed two ways is refused outright. */
                if (!strcaseeq(te, "chunked") || has_length)
                        return -EBADMSG;
                *ret = BODY_CHUNKED;
        } else if (has_length) {
                if (length > HTTP_BODY_BYTES_MAX)
                        return -E2BIG;
                *ret = BODY_LENGTH;
                *ret_length = length;
        } else
                *ret = BODY_UNTIL_EOF;
        return 0;
}

/* Parses one response (head and body) at d[*p]. */
static int parse_one(const char *d, size_t size, bool eof, size_t *p, HttpResponse **ret) {
        _cleanup_(http_response_freep) HttpResponse *r = NULL;
        BodyFraming framing;
        size_t q = *p, n, start;
        uint64_t length = 0;
        int k;

        k = http_parse_head(d, size, eof, &q, &r);
        if (k <= 0)
                return k;
        k = http_body_framing(r, &framing, &length);
        if (k < 0)
                return k;

        switch (framing) {
        case BODY_NONE:
                k = http_set_body(r, "", 0);
                if (k < 0)
                        return k;
                break;
        case BODY_CHUNKED:
                start = q;
                k = walk_chunks(d, size, &q, NULL, &n);
                if (k < 0)
                        return k;
                if (k == 0)
                        return eof ? -EBADMSG : 0;
                r->body = malloc(n + 1);
                if (!r->body)
                        return -ENOMEM;
                q = start;
                k = walk_chunks(d, size, &q, r->body, &n);
                if (k <= 0)
                        return k < 0 ? k : -EBADMSG;
                r->body[n] = '\0';
                r->body_size = n;
                break;
        case BODY_LENGTH:
                if (size - q < length)
                        return eof ? -EBADMSG : 0;
                k = http_set_body(r, d + q, length);
                if (k < 0)
                        return k;
                q += length;
                break;
        case BODY_UNTIL_EOF:
                if (size - q > HTTP_BODY_BYTES_MAX)
                        return -E2BIG;
                if (!eof)
                        return 0;
                k = http_set_body(r, d + q, size - q);
                if (k < 0)
                        return k;
                q = size;
                break;
        }

        *p = q;
        *ret = TAKE_PTR(r);
        return 1;
}

int http_response_parse(const void *data, size_t size, bool eof, HttpResponse **ret) {
        const char *d = data;
        size_t p = 0;

        for (unsigned n = 0;; n++) {
                _cleanup_(http_response_freep) HttpResponse *r = NULL;
                int k;

                k = parse_one(d, size, eof, &p, &r);
                if (k <= 0)
                        return k;
                if (r->status >= 200) {
                        *ret = TAKE_PTR(r);
                        return 1;
                }
                if (n >= HTTP_INTERIM_RESPONSES_MAX)
                        return -E2BIG;
        }
}
