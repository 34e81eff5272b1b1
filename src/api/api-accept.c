/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The front door's listening side (api-accept.h): accept4() in batches, the
 * connection limits, and the counts of connections per client address, in
 * a small hash table keyed with a random key (so that no client can choose
 * addresses that share a bucket). */

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "api-accept.h"
#include "api-conn.h"
#include "api-manager.h"
#include "log.h"

#define ACCEPT_BATCH 64U                /* connections accepted per turn of the loop */
#define ACCEPT_RETRY (100 * USEC_PER_MSEC)      /* after running out of fds or memory */
#define IP_BUCKETS 1024U

struct IpCount {
        IpCount *next;
        uint8_t addr[16];               /* IPv6, or IPv4 mapped into it */
        unsigned n;
};

/* The address a count is kept for: an IPv4 client and the same client
 * through an IPv4-mapped IPv6 address are one. */
static bool client_address(const struct sockaddr_storage *sa, uint8_t ret[static 16]) {
        if (sa->ss_family == AF_INET) {
                memset(ret, 0, 10);
                ret[10] = ret[11] = 0xff;
                memcpy(ret + 12, &((const struct sockaddr_in *) sa)->sin_addr, 4);
                return true;
        }
        if (sa->ss_family == AF_INET6) {
                memcpy(ret, &((const struct sockaddr_in6 *) sa)->sin6_addr, 16);
                return true;
        }
        return false;
}

static unsigned ip_bucket(const Listener *l, const uint8_t a[static 16]) {
        uint64_t h = UINT64_C(14695981039346656037) ^ l->ip_key;

        for (size_t i = 0; i < 16; i++) {
                h ^= a[i];
                h *= UINT64_C(1099511628211);
        }
        return (unsigned) ((h ^ (h >> 32)) & (IP_BUCKETS - 1));
}

/* Counts one more connection of the address; NULL when it has its limit
 * (then *ret_over) or memory ran out. */
static IpCount *ip_acquire(Listener *l, const uint8_t a[static 16], unsigned limit, bool *ret_over) {
        IpCount **b, *ip;

        *ret_over = false;
        if (!l->ip_counts) {
                l->ip_counts = calloc(IP_BUCKETS, sizeof(IpCount *));
                if (!l->ip_counts)
                        return NULL;
        }
        b = l->ip_counts + ip_bucket(l, a);
        for (ip = *b; ip; ip = ip->next)
                if (memcmp(ip->addr, a, 16) == 0)
                        break;
        if (ip && ip->n >= limit) {
                *ret_over = true;
                return NULL;
        }
        if (!ip) {
                ip = calloc(1, sizeof(IpCount));
                if (!ip)
                        return NULL;
                memcpy(ip->addr, a, 16);
                ip->next = *b;
                *b = ip;
        }
        ip->n++;
        return ip;
}

static void ip_release(Listener *l, IpCount *ip) {
        IpCount **p;

        if (!ip || --ip->n > 0)
                return;
        for (p = l->ip_counts + ip_bucket(l, ip->addr); *p; p = &(*p)->next)
                if (*p == ip) {
                        *p = ip->next;
                        break;
                }
        free(ip);
}

static void accept_pause(Listener *l) {
        if (l->accept_source)
                (void) sd_event_source_set_enabled(l->accept_source, SD_EVENT_OFF);
}

static void accept_resume(Listener *l) {
        if (l->accept_source)
                (void) sd_event_source_set_enabled(l->accept_source, SD_EVENT_ON);
}

void accept_conn_gone(Listener *l, IpCount *ip) {
        ip_release(l, ip);
        if (l->accept_full && l->n_conns < l->manager->config->api_max_connections) {
                l->accept_full = false;
                accept_resume(l);
        }
}

/* The client has its limit: it gets our 429 at once, not a slot. What it
 * sent already is read and dropped first, so that closing does not reset
 * the connection and lose the answer. */
static void refuse_client(Listener *l, int fd) {
        char buf[1024];

        (void) send(fd, l->refusal, l->refusal_size, MSG_NOSIGNAL | MSG_DONTWAIT);
        for (unsigned i = 0; i < 16 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++)
                ;
        (void) shutdown(fd, SHUT_WR);
        (void) close(fd);
}

static int on_accept_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Listener *l = userdata;

        if (!l->accept_full)
                accept_resume(l);
        return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Listener *l = userdata;
        const Config *cfg = l->manager->config;

        for (unsigned i = 0; i < ACCEPT_BATCH; i++) {
                struct sockaddr_storage sa;
                socklen_t len = sizeof(sa);
                IpCount *ip = NULL;
                uint8_t a[16];
                int cfd, k;

                if (l->n_conns >= cfg->api_max_connections) {
                        /* The rest wait in the backlog until a connection ends. */
                        l->accept_full = true;
                        accept_pause(l);
                        return 0;
                }
                cfd = accept4(l->fd, (struct sockaddr *) &sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (IN_SET(errno, EAGAIN, EWOULDBLOCK, EINTR))
                                return 0;
                        if (IN_SET(errno, ECONNABORTED, EPROTO, EPERM, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET,
                                   EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH))
                                continue;       /* that client's problem, not ours */
                        /* Out of fds or memory: the socket stays readable, so pause rather than spin. */
                        log_warning_errno(errno, "Failed to accept a connection on %s, pausing: %m", l->description);
                        accept_pause(l);
                        if (sd_event_source_set_time_relative(l->accept_retry, ACCEPT_RETRY) >= 0)
                                (void) sd_event_source_set_enabled(l->accept_retry, SD_EVENT_ONESHOT);
                        return 0;
                }

                if (!l->is_unix) {
                        int one = 1;

                        /* We write what libmicrohttpd wrote as it comes: no waiting for more. */
                        (void) setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                        if (cfg->api_max_connections_per_ip > 0 && client_address(&sa, a)) {
                                bool over;

                                ip = ip_acquire(l, a, cfg->api_max_connections_per_ip, &over);
                                if (!ip) {
                                        if (over)
                                                refuse_client(l, cfd);
                                        else
                                                (void) close(cfd);
                                        continue;
                                }
                        }
                }

                k = conn_new(l, cfd, (struct sockaddr *) &sa, len, ip);
                if (k < 0)
                        log_warning_errno(k, "Failed to take a connection on %s: %m", l->description);
        }
        return 0;
}

int accept_start(Listener *l) {
        Manager *m = l->manager;
        _cleanup_free_ char *message = NULL;
        int k;

        if (getrandom(&l->ip_key, sizeof(l->ip_key), GRND_NONBLOCK) != sizeof(l->ip_key))
                l->ip_key = (uint64_t) time(NULL) ^ ((uint64_t) getpid() << 32) ^ (uint64_t) (uintptr_t) l;

        if (asprintf(&message, "Too many connections from your address (at most %u at a time).",
                     m->config->api_max_connections_per_ip) < 0)
                return log_oom();
        k = front_answer(429, "too_many_connections", message, &l->refusal, &l->refusal_size);
        if (k < 0)
                return log_oom();

        /* Sockets systemd passes may be blocking: accept4() must never wait. */
        k = fcntl(l->fd, F_GETFL);
        if (k < 0 || (!(k & O_NONBLOCK) && fcntl(l->fd, F_SETFL, k | O_NONBLOCK) < 0))
                return log_error_errno(errno, "Failed to make %s non-blocking: %m", l->description);

        k = sd_event_add_io(m->event, &l->accept_source, l->fd, EPOLLIN, on_accept, l);
        if (k < 0)
                return log_error_errno(k, "Failed to watch %s: %m", l->description);
        k = sd_event_add_time(m->event, &l->accept_retry, CLOCK_MONOTONIC, USEC_INFINITY, 10 * USEC_PER_MSEC,
                              on_accept_retry, l);
        if (k < 0)
                return log_error_errno(k, "Failed to add a timer: %m");
        return 0;
}

void accept_stop(Listener *l) {
        l->accept_source = sd_event_source_disable_unref(l->accept_source);
        l->accept_retry = sd_event_source_disable_unref(l->accept_retry);
        if (l->ip_counts)
                for (size_t i = 0; i < IP_BUCKETS; i++)
                        while (l->ip_counts[i]) {
                                IpCount *ip = l->ip_counts[i];

                                l->ip_counts[i] = ip->next;
                                free(ip);
                        }
        l->ip_counts = mfree(l->ip_counts);
        l->refusal = mfree(l->refusal);
}
