/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The HTTP/1.1 client described in http-client.h: endpoint parsing, the
 * response parser (status line, headers, Content-Length or chunked bodies)
 * and one-request-per-connection I/O with poll() deadlines. */

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "http-client.h"

/* A chunk-size line longer than this is not a chunk-size line. */
#define CHUNK_LINE_MAX 4096U

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

static int set_body(HttpResponse *r, const char *src, size_t n) {
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
static int parse_head(const char *d, size_t size, bool eof, size_t *p, HttpResponse **ret) {
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

typedef enum BodyFraming {
        BODY_NONE,                      /* interim and bodiless responses end with their head */
        BODY_LENGTH,
        BODY_CHUNKED,
        BODY_UNTIL_EOF,                 /* no framing: the body runs until the server closes */
} BodyFraming;

static int body_framing(const HttpResponse *r, BodyFraming *ret, uint64_t *ret_length) {
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

        k = parse_head(d, size, eof, &q, &r);
        if (k <= 0)
                return k;
        k = body_framing(r, &framing, &length);
        if (k < 0)
                return k;

        switch (framing) {
        case BODY_NONE:
                k = set_body(r, "", 0);
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
                k = set_body(r, d + q, length);
                if (k < 0)
                        return k;
                q += length;
                break;
        case BODY_UNTIL_EOF:
                if (size - q > HTTP_BODY_BYTES_MAX)
                        return -E2BIG;
                if (!eof)
                        return 0;
                k = set_body(r, d + q, size - q);
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

static usec_t now_monotonic(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (usec_t) ts.tv_sec * USEC_PER_SEC + (usec_t) ts.tv_nsec / 1000;
}

/* Waits for `events` on fd until the deadline. Returns 0 or -ETIMEDOUT / -errno. */
static int wait_fd(int fd, short events, usec_t deadline) {
        for (;;) {
                struct pollfd pfd = { .fd = fd, .events = events };
                usec_t n = now_monotonic();
                int k, ms;

                if (deadline != USEC_INFINITY && n >= deadline)
                        return -ETIMEDOUT;
                ms = deadline == USEC_INFINITY ? -1 :
                        (int) MIN((deadline - n + USEC_PER_MSEC - 1) / USEC_PER_MSEC, (usec_t) INT32_MAX);
                k = poll(&pfd, 1, ms);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k > 0)
                        return 0;
        }
}

static usec_t deadline_after(usec_t timeout) {
        return timeout == USEC_INFINITY ? USEC_INFINITY : now_monotonic() + timeout;
}

static int connect_one(int family, const struct sockaddr *sa, socklen_t salen, usec_t deadline) {
        _cleanup_close_ int fd = -EBADF;
        int k, err = 0;
        socklen_t errlen = sizeof(err);

        fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, sa, salen) >= 0)
                return TAKE_FD(fd);
        if (errno != EINPROGRESS)
                return -errno;
        k = wait_fd(fd, POLLOUT, deadline);
        if (k < 0)
                return k;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
                return -errno;
        if (err != 0)
                return -err;
        return TAKE_FD(fd);
}

int http_connect(const HttpEndpoint *e, usec_t timeout) {
        usec_t deadline = deadline_after(timeout);
        struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_STREAM,
                .ai_flags = AI_NUMERICSERV,
        };
        struct addrinfo *ai = NULL;
        int k, fd = -EHOSTUNREACH;

        if (e->unix_path) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                size_t l = strlen(e->unix_path);

                if (l >= sizeof(sa.sun_path))
                        return -ENAMETOOLONG;
                memcpy(sa.sun_path, e->unix_path, l);
                return connect_one(AF_UNIX, (const struct sockaddr *) &sa,
                                   (socklen_t) (offsetof(struct sockaddr_un, sun_path) + l + 1), deadline);
        }

        k = getaddrinfo(e->host, e->port, &hints, &ai);
        if (k == EAI_SYSTEM)
                return -errno;
        if (k == EAI_MEMORY)
                return -ENOMEM;
        if (k != 0)
                /* The name does not resolve: as far as the caller is concerned there is no route to it. */
                return -EHOSTUNREACH;

        for (struct addrinfo *a = ai; a; a = a->ai_next) {
                fd = connect_one(a->ai_family, a->ai_addr, a->ai_addrlen, deadline);
                if (fd >= 0 || fd == -ETIMEDOUT)
                        break;
        }
        freeaddrinfo(ai);
        return fd;
}

static bool valid_header_text(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < ' ' || *s == 0x7f)
                        return false;
        return true;
}

static int build_request(const HttpEndpoint *e, const char *method, const char *path, const char *bearer,
                         const char *accept, char *const *headers, const char *body, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL, *host = NULL;
        size_t size = 0;
        FILE *f;

        if (!path || path[0] != '/' || strpbrk(path, " #") || !valid_header_text(path))
                return -EINVAL;
        if (!method || !*method || strpbrk(method, " /") || !valid_header_text(method))
                return -EINVAL;
        if (bearer && (!*bearer || !valid_header_text(bearer)))
                return -EINVAL;
        if (accept && (!*accept || !valid_header_text(accept)))
                return -EINVAL;
        for (char *const *h = headers; h && *h; h++)
                if (!strchr(*h, ':') || !valid_header_text(*h))
                        return -EINVAL;

        if (e->unix_path)
                host = strdup("localhost");
        else {
                bool v6 = strchr(e->host, ':'), default_port = streq(e->port, "80");

                /* An IPv6 literal goes back into brackets; the default port is left out. */
                if (asprintf(&host, "%s%s%s%s%s", v6 ? "[" : "", e->host, v6 ? "]" : "",
                             default_port ? "" : ":", default_port ? "" : e->port) < 0)
                        host = NULL;
        }
        if (!host)
                return -ENOMEM;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fprintf(f, "%s %s%s HTTP/1.1\r\n"
                   "Host: %s\r\n"
                   "User-Agent: makima/" PACKAGE_VERSION "\r\n"
                   "Accept: %s\r\n"
                   "Connection: close\r\n",
                method, e->path_prefix, path, host, accept ?: "application/json");
        if (bearer)
                fprintf(f, "Authorization: Bearer %s\r\n", bearer);
        for (char *const *h = headers; h && *h; h++)
                fprintf(f, "%s\r\n", *h);
        if (body)
                fprintf(f, "Content-Type: application/json\r\nContent-Length: %zu\r\n", strlen(body));
        else if (!IN_SET(method[0], 'G', 'H', 'D'))
                fputs("Content-Length: 0\r\n", f);
        fputs("\r\n", f);
        if (body)
                fputs(body, f);
        if (ferror(f)) {
                fclose(f);
                return -ENOMEM;
        }
        if (fclose(f) != 0)
                return -ENOMEM;

        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

/* Sends the whole request. A write error is kept in *ret_write_error rather
 * than returned: the server may have answered early (413, 401) and closed. */
static int send_request(int fd, const char *req, size_t req_size, usec_t deadline, int *ret_write_error) {
        size_t sent = 0;
        int k;

        *ret_write_error = 0;
        while (sent < req_size) {
                ssize_t n = send(fd, req + sent, req_size - sent, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                k = wait_fd(fd, POLLOUT, deadline);
                                if (k < 0)
                                        return k;
                                continue;
                        }
                        *ret_write_error = -errno;
                        return 0;
                }
                sent += (size_t) n;
        }
        return 0;
}

/* Reads what is there into buf (growing it by 64 KiB steps up to max), waiting until the deadline.
 * Returns the bytes read, 0 at EOF, or -errno. */
static ssize_t receive(int fd, char **buf, size_t *size, size_t *allocated, size_t max, usec_t deadline) {
        int k;

        if (*allocated - *size < 16384) {
                size_t want = MAX(*allocated * 2, (size_t) 65536);
                char *b;

                if (want > max)
                        return -E2BIG;
                b = realloc(*buf, want);
                if (!b)
                        return -ENOMEM;
                *buf = b;
                *allocated = want;
        }
        for (;;) {
                ssize_t n = recv(fd, *buf + *size, *allocated - *size, 0);

                if (n >= 0) {
                        *size += (size_t) n;
                        return n;
                }
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return -errno;
                k = wait_fd(fd, POLLIN, deadline);
                if (k < 0)
                        return k;
        }
}

#define RECEIVE_MAX (HTTP_HEADER_BYTES_MAX + HTTP_BODY_BYTES_MAX * 2 + 65536)

int http_exchange(int fd, const HttpEndpoint *e, const char *method, const char *path, const char *bearer,
                  const char *body, usec_t timeout, HttpResponse **ret) {
        _cleanup_free_ char *req = NULL, *buf = NULL;
        usec_t deadline = deadline_after(timeout);
        size_t req_size, size = 0, allocated = 0;
        int k, write_error = 0;

        k = build_request(e, method, path, bearer, NULL, NULL, body, &req, &req_size);
        if (k < 0)
                return k;
        k = send_request(fd, req, req_size, deadline, &write_error);
        if (k < 0)
                return k;

        for (;;) {
                _cleanup_(http_response_freep) HttpResponse *r = NULL;
                ssize_t n;

                n = receive(fd, &buf, &size, &allocated, RECEIVE_MAX, deadline);
                if (n == -ETIMEDOUT || n == -E2BIG || n == -ENOMEM)
                        return (int) n;
                if (n < 0) {
                        if (write_error < 0 || size == 0)
                                return write_error < 0 ? write_error : (int) n;
                        /* A reset after part of a response: parse what we have as if it had been closed. */
                        n = 0;
                }

                /* Closed without a byte of answer: report it as the reset it amounts to. */
                if (n == 0 && size == 0)
                        return write_error < 0 ? write_error : -ECONNRESET;
                k = http_response_parse(buf, size, n == 0, &r);
                if (k < 0)
                        return k;
                if (k > 0) {
                        *ret = TAKE_PTR(r);
                        return 0;
                }
        }
}

/* ---- streams ---- */

struct HttpStream {
        int fd;
        HttpResponse *head;
        BodyFraming framing;
        uint64_t left;                  /* BODY_LENGTH: bytes still to come */
        HttpChunkDecoder chunks;
        char *raw;                      /* received, not yet decoded */
        size_t raw_size, raw_allocated;
        char *out;                      /* decoded, handed to the caller */
        size_t out_allocated;
        bool eof, done;
};

HttpStream *http_stream_free(HttpStream *s) {
        if (!s)
                return NULL;
        if (s->fd >= 0)
                (void) close(s->fd);
        http_response_free(s->head);
        free(s->raw);
        free(s->out);
        return mfree(s);
}

const HttpResponse *http_stream_response(const HttpStream *s) {
        return s->head;
}

/* What the raw buffer may hold: one read beyond an incomplete line or head. */
#define STREAM_RAW_MAX (HTTP_HEADER_BYTES_MAX + CHUNK_LINE_MAX + 4 * 65536)

int http_stream_open(int fd, const HttpEndpoint *e, const char *method, const char *path, const char *bearer,
                     const char *accept, char *const *headers, usec_t timeout, HttpStream **ret) {
        _cleanup_(http_stream_freep) HttpStream *s = NULL;
        _cleanup_free_ char *req = NULL;
        usec_t deadline = deadline_after(timeout);
        size_t req_size;
        int k, write_error;

        s = calloc(1, sizeof(HttpStream));
        if (!s) {
                (void) close(fd);
                return -ENOMEM;
        }
        s->fd = fd;

        k = build_request(e, method, path, bearer, accept, headers, NULL, &req, &req_size);
        if (k < 0)
                return k;
        k = send_request(fd, req, req_size, deadline, &write_error);
        if (k < 0)
                return k;

        for (unsigned interim = 0;;) {
                _cleanup_(http_response_freep) HttpResponse *r = NULL;
                size_t p = 0;
                ssize_t n;

                n = receive(fd, &s->raw, &s->raw_size, &s->raw_allocated, STREAM_RAW_MAX, deadline);
                if (n < 0 && (s->raw_size == 0 || n == -ETIMEDOUT || n == -E2BIG || n == -ENOMEM))
                        return write_error < 0 && s->raw_size == 0 ? write_error : (int) n;
                if (n <= 0) {
                        if (s->raw_size == 0)
                                return write_error < 0 ? write_error : -ECONNRESET;
                        s->eof = true;
                }

                /* Every complete head in the buffer: interim ones are dropped. */
                for (;;) {
                        k = parse_head(s->raw, s->raw_size, s->eof, &p, &r);
                        if (k < 0)
                                return k;
                        if (k == 0)
                                break;
                        memmove(s->raw, s->raw + p, s->raw_size - p);
                        s->raw_size -= p;
                        p = 0;
                        if (r->status >= 200)
                                break;
                        if (++interim > HTTP_INTERIM_RESPONSES_MAX)
                                return -E2BIG;
                        r = http_response_free(r);
                }
                if (r) {
                        k = body_framing(r, &s->framing, &s->left);
                        if (k < 0)
                                return k;
                        k = set_body(r, "", 0);
                        if (k < 0)
                                return k;
                        s->head = TAKE_PTR(r);
                        s->done = s->framing == BODY_NONE || (s->framing == BODY_LENGTH && s->left == 0) ||
                                streq(method, "HEAD");
                        *ret = TAKE_PTR(s);
                        return 0;
                }
                if (s->eof)
                        return -EBADMSG;
        }
}

/* Decodes what the raw buffer holds into s->out. Returns the bytes decoded, or < 0. */
static int stream_decode(HttpStream *s, size_t *ret_size) {
        size_t consumed = 0, n = 0;
        int k = 0;

        if (s->raw_size > s->out_allocated) {
                char *b = realloc(s->out, s->raw_size);

                if (!b)
                        return -ENOMEM;
                s->out = b;
                s->out_allocated = s->raw_size;
        }

        switch (s->framing) {
        case BODY_CHUNKED:
                k = http_chunked_decode(&s->chunks, s->raw, s->raw_size, s->out, &consumed, &n);
                if (k < 0)
                        return k;
                if (k > 0)
                        s->done = true;
                break;
        case BODY_LENGTH:
                n = consumed = (size_t) MIN(s->left, (uint64_t) s->raw_size);
                memcpy(s->out, s->raw, n);
                s->left -= n;
                s->done = s->left == 0;
                break;
        case BODY_UNTIL_EOF:
                n = consumed = s->raw_size;
                memcpy(s->out, s->raw, n);
                break;
        case BODY_NONE:
                s->done = true;
                break;
        }
        memmove(s->raw, s->raw + consumed, s->raw_size - consumed);
        s->raw_size -= consumed;
        *ret_size = n;
        return 0;
}

int http_stream_read(HttpStream *s, usec_t timeout, const char **ret_data, size_t *ret_size) {
        usec_t deadline = deadline_after(timeout);
        int k;

        for (;;) {
                size_t n = 0;
                ssize_t m;

                if (s->done)
                        return 0;
                if (s->raw_size > 0) {
                        k = stream_decode(s, &n);
                        if (k < 0)
                                return k;
                        if (n > 0) {
                                *ret_data = s->out;
                                *ret_size = n;
                                return 1;
                        }
                        if (s->done)
                                return 0;
                }
                if (s->eof) {
                        if (s->framing == BODY_UNTIL_EOF) {
                                s->done = true;
                                return 0;
                        }
                        return -ECONNRESET;
                }
                m = receive(s->fd, &s->raw, &s->raw_size, &s->raw_allocated, STREAM_RAW_MAX, deadline);
                if (m == 0 || m == -ECONNRESET)
                        s->eof = true;
                else if (m < 0)
                        return (int) m;
        }
}

int http_stream_read_all(HttpStream *s, usec_t timeout, char **ret_body, size_t *ret_size) {
        _cleanup_free_ char *body = NULL;
        size_t size = 0;
        int k;

        body = strdup("");
        if (!body)
                return -ENOMEM;
        for (;;) {
                const char *data;
                size_t n;
                char *b;

                k = http_stream_read(s, timeout, &data, &n);
                if (k < 0)
                        return k;
                if (k == 0)
                        break;
                if (n > HTTP_BODY_BYTES_MAX - size)
                        return -E2BIG;
                b = realloc(body, size + n + 1);
                if (!b)
                        return -ENOMEM;
                body = b;
                memcpy(body + size, data, n);
                size += n;
                body[size] = '\0';
        }
        *ret_body = TAKE_PTR(body);
        *ret_size = size;
        return 0;
}
