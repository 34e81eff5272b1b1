#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""bench/slow-clients: the latency of GET /api/v1/health on makima-api at
127.0.0.1:PORT, without and then with SLOW connections open that each drip
one byte of a request head that never ends, measured in the same run.

Usage: slow.py PORT SLOW ADDRESSES DRIP_SEC REQUESTS
  SLOW connections come from ADDRESSES loopback addresses (127.0.2.1, …),
  each sending one more header byte every DRIP_SEC seconds (from another
  process, so that the measuring one only measures). REQUESTS health
  requests are timed each way, one after the other, each on a connection
  of its own: connect, send, read the whole answer.
Prints the figures; the last line is machine-readable:
  RESULT p50_ms p99_ms max_ms p50_ms p99_ms max_ms slow_open failed"""

import multiprocessing
import os
import resource
import selectors
import socket
import sys
import time

HEAD = b"GET /api/v1/health HTTP/1.1\r\nHost: slow\r\nX-Slow: "
REQUEST = b"GET /api/v1/health HTTP/1.1\r\nHost: bench\r\n\r\n"


def raise_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n + 256))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def drippers(port, slow, addresses, drip, ready, stop, report):
    """The slow connections, until `stop`; says on `ready` how many opened,
    on `report` how many were still open at the end."""
    raise_fd_limit(slow)
    socks = []
    for i in range(slow):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.2.%d" % (1 + i % addresses), 0))
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
    sent = 0
    closed = set()
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)

    def drip_once():
        nonlocal sent
        byte = (HEAD + b"s" * 100000)[sent:sent + 1]
        for s in socks:
            if s in closed:
                continue
            try:
                s.send(byte)
            except OSError:
                closed.add(s)
        sent += 1

    drip_once()
    drip_once()
    ready.put(len(socks) - len(closed))
    next_drip = time.monotonic() + drip
    while not stop.is_set():
        for key, _ in sel.select(min(0.1, max(0.0, next_drip - time.monotonic()))):
            try:
                data = key.fileobj.recv(4096)
            except OSError:
                data = b""
            if not data:
                closed.add(key.fileobj)
                sel.unregister(key.fileobj)
        if time.monotonic() >= next_drip:
            drip_once()
            next_drip += drip
    report.put(len(socks) - len(closed))
    for s in socks:
        s.close()


def health(port):
    """One timed request on a new connection: seconds, or None if it failed."""
    t0 = time.perf_counter()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(REQUEST)
        data = b""
        while True:
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                head = data[:end].decode("latin-1").lower()
                length = int(head.split("content-length:")[1].split("\r\n")[0])
                if len(data) >= end + 4 + length:
                    break
            b = s.recv(65536)
            if not b:
                return None
            data += b
        s.close()
        if not data.startswith(b"HTTP/1.1 200 "):
            return None
    except (OSError, ValueError, IndexError):
        return None
    return time.perf_counter() - t0


def measure(port, n):
    times, failed = [], 0
    for _ in range(n):
        t = health(port)
        if t is None:
            failed += 1
        else:
            times.append(t * 1000)
    times.sort()
    if not times:
        return (float("nan"),) * 3, failed

    def pct(p):
        return times[min(len(times) - 1, max(0, int(p * len(times) + 0.999999) - 1))]
    return (pct(0.50), pct(0.99), times[-1]), failed


def main():
    port, slow, addresses, drip, n = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]),
                                      int(sys.argv[5]))
    measure(port, min(200, n))          # warm-up
    without, failed0 = measure(port, n)

    ready, report = multiprocessing.Queue(), multiprocessing.Queue()
    stop = multiprocessing.Event()
    p = multiprocessing.Process(target=drippers, args=(port, slow, addresses, drip, ready, stop, report))
    p.start()
    opened = ready.get(timeout=120)
    time.sleep(min(2.0, drip * 2))      # a few drips in, every connection has sent bytes
    with_slow, failed1 = measure(port, n)
    stop.set()
    still_open = report.get(timeout=60)
    p.join(10)

    print("health, %d requests each way, one new connection per request" % n)
    print("%-44s %9s %9s %9s" % ("", "p50 ms", "p99 ms", "max ms"))
    print("%-44s %9.3f %9.3f %9.3f" % (("without slow connections",) + without))
    print("%-44s %9.3f %9.3f %9.3f" % (("with %d slow connections open" % slow,) + with_slow))
    print("%d slow connections from %d addresses, one header byte every %g s each; %d opened, %d still open at the end"
          % (slow, addresses, drip, opened, still_open))
    if failed0 or failed1:
        print("failed requests: %d without, %d with the slow connections" % (failed0, failed1))
    print("RESULT %.3f %.3f %.3f %.3f %.3f %.3f %d %d" % (without + with_slow + (still_open, failed0 + failed1)))


if __name__ == "__main__":
    main()
