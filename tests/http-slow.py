#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The slow-client attacks of test-api-slow.sh, over raw sockets against a
running makima-api on 127.0.0.1:PORT. Only outcomes that cannot flake on a
loaded machine are asserted (health is answered at all, within seconds;
connections end by a deadline); bench/slow-clients measures latency.

  one-address PORT PER_IP HEAD_TIMEOUT
        The reported attack: 300 connections from 127.0.0.2, each dripping
        one byte of a request head that never ends. Those over the per-IP
        limit are refused at once (429, JSON) while other addresses are
        served; health is answered meanwhile; a slow but complete head is
        served; every dripping connection is answered 408 (JSON) and closed
        once the head deadline has passed.
  many-addresses PORT COUNT
        COUNT slow connections spread over 127.0.1.1, 127.0.1.2, … (20 each,
        under the per-IP limit) all stay open, and health is answered
        again and again while they drip.

Prints one line per check; exits 1 if any failed."""

import os
import resource
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_raw  # noqa: E402

failures = []
DRIP = 1.0                              # seconds between two bytes of a slow head
HEAD = b"GET /api/v1/health HTTP/1.1\r\nHost: slow\r\n"


def check(name, ok, why=""):
    print("%s: %s%s" % ("ok" if ok else "FAIL", name, "" if ok else ": " + why), flush=True)
    if not ok:
        failures.append(name)


def raise_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n + 256))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Dripper:
    """A connection that sends a request head one byte at a time, forever."""

    def __init__(self, port, source):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((source, 0))
        self.sock.setblocking(False)
        self.sock.connect_ex(("127.0.0.1", port))
        self.sent = 0
        self.data = b""
        self.closed_at = None
        self.opened_at = time.monotonic()

    def drip(self):
        if self.closed_at is not None:
            return
        stream = HEAD + b"X-Slow: " + b"s" * 10000
        try:
            self.sent += self.sock.send(stream[self.sent:self.sent + 1])
        except BlockingIOError:
            pass
        except OSError:
            self.end()

    def read(self):
        try:
            b = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            b = b""
        if b:
            self.data += b
        else:
            self.end()

    def end(self):
        if self.closed_at is None:
            self.closed_at = time.monotonic()

    def answer(self):
        """(status, JSON error code) of what the server said, or None."""
        try:
            rs, _ = http_raw.parse_responses(self.data)
        except ValueError:
            return ("garbage", None)
        if not rs:
            return None
        return (rs[0].status, rs[0].error_code())


def pump(drippers, seconds):
    """Drips and reads for `seconds`: one byte per connection every DRIP seconds."""
    sel = selectors.DefaultSelector()
    for d in drippers:
        if d.closed_at is None:
            sel.register(d.sock, selectors.EVENT_READ, d)
    end = time.monotonic() + seconds
    next_drip = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= next_drip:
            for d in drippers:
                d.drip()
            next_drip = now + DRIP
        timeout = min(end, next_drip) - time.monotonic()
        if timeout <= 0 and time.monotonic() >= end:
            break
        for key, _ in sel.select(max(timeout, 0)):
            d = key.data
            d.read()
            if d.closed_at is not None:
                sel.unregister(d.sock)
        if time.monotonic() >= end:
            break
    sel.close()


def health(port, source="127.0.0.1", timeout=5.0):
    """The status of GET /api/v1/health from `source`, or why there is none."""
    try:
        s = http_raw.connect(port, source=source, timeout=timeout)
    except OSError as e:
        return "no connection (%s)" % e
    try:
        responses, eof, _ = http_raw.exchange(port, http_raw.get("/api/v1/health"), count=1, timeout=timeout, sock=s)
    except OSError as e:
        return "error (%s)" % e
    if not responses:
        return "no answer within %.0f s (closed: %s)" % (timeout, eof)
    return responses[0].status


def one_address(port, per_ip, head_timeout):
    drippers = [Dripper(port, "127.0.0.2") for _ in range(300)]
    pump(drippers, 2.5)

    refused = [d for d in drippers if d.closed_at is not None]
    kept = [d for d in drippers if d.closed_at is None]
    check("connections over MaxConnectionsPerIP=%d from one address are refused" % per_ip,
          len(refused) == 300 - per_ip, "%d of 300 were refused" % len(refused))
    wrong = [d.answer() for d in refused if d.answer() != (429, "too_many_connections")]
    check("they get 429 too_many_connections (JSON)", not wrong, "got %r" % wrong[:3])

    for source in ("127.0.0.1", "127.0.0.3"):
        h = health(port, source)
        check("health from %s is answered while 127.0.0.2 drips" % source, h == 200, "health: %s" % h)

    # A slow head that is complete before the deadline is served.
    s = http_raw.connect(port, source="127.0.0.4")
    try:
        req = http_raw.get("/api/v1/health")
        for i in range(0, len(req), 8):
            s.sendall(req[i:i + 8])
            pump(drippers, 2.0 / (len(req) / 8))
        responses, _, _ = http_raw.read_responses(s, count=1)
        check("a slow head finished in time is served", [r.status for r in responses] == [200], repr(responses))
    finally:
        s.close()

    # The rest drip on; by the head deadline (from their connection) they are answered and closed.
    pump(kept, max(0.0, head_timeout + 3.0 - (time.monotonic() - min(d.opened_at for d in kept))))
    still = [d for d in kept if d.closed_at is None]
    check("dripping connections are closed after RequestHeadTimeoutSec=%d" % head_timeout, not still,
          "%d of %d still open after %.1f s" % (len(still), len(kept),
                                                 time.monotonic() - min(d.opened_at for d in kept)))
    late = [d.closed_at - d.opened_at for d in kept if d.closed_at is not None and
            d.closed_at - d.opened_at < head_timeout - 0.5]
    check("none is closed before the deadline", not late, "closed after %r s" % late[:3])
    wrong = [d.answer() for d in kept if d.answer() != (408, "request_timeout")]
    check("they get 408 request_timeout (JSON)", not wrong, "got %r" % wrong[:3])
    for d in drippers:
        d.sock.close()

    h = health(port, "127.0.0.2")
    check("127.0.0.2 is served again once its connections are gone", h == 200, "health: %s" % h)


def many_addresses(port, count):
    per_address = 20
    drippers = [Dripper(port, "127.0.1.%d" % (1 + i // per_address)) for i in range(count)]
    pump(drippers, 2.0)
    gone = [d for d in drippers if d.closed_at is not None]
    check("%d slow connections over %d addresses are all open" % (count, (count + per_address - 1) // per_address),
          not gone, "%d were closed: %r" % (len(gone), [d.answer() for d in gone[:3]]))
    answers = []
    for _ in range(10):
        answers.append(health(port))
        pump(drippers, 0.2)
    check("health is answered, 10 times, while they drip", answers == [200] * 10, repr(answers))
    gone = [d for d in drippers if d.closed_at is not None]
    check("and they are still open", not gone, "%d were closed" % len(gone))
    for d in drippers:
        d.sock.close()


if __name__ == "__main__":
    raise_fd_limit(2000)
    if sys.argv[1] == "one-address":
        one_address(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        many_addresses(int(sys.argv[2]), int(sys.argv[3]))
    print("%d check(s) failed" % len(failures) if failures else "all checks passed")
    sys.exit(1 if failures else 0)
