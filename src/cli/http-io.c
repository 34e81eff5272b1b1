/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The I/O half of the HTTP/1.1 client of http-client.h: connecting, one
 * request per connection, whole responses and streamed ones, every wait
 * bounded by a poll() deadline. */

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "http-client-internal.h"

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
                        k = http_parse_head(s->raw, s->raw_size, s->eof, &p, &r);
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
                        k = http_body_framing(r, &s->framing, &s->left);
                        if (k < 0)
                                return k;
                        k = http_set_body(r, "", 0);
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
