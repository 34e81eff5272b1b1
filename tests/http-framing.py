#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The HTTP framing attacks of test-api-framing.sh, over raw sockets against
a running makima-api: request smuggling through two Content-Length headers,
Content-Length beside Transfer-Encoding, transfer codings other than
chunked, and every input libmicrohttpd 0.9.75 answers by itself (in HTML)
when nothing stands in front of it. Each must get its status with makima's
JSON error body, and the connection must end there, with nothing answered
after it: alone on a connection, as the second request of a kept-alive
connection, and pipelined behind a good request. Requests that are fine
must still work, chunked, pipelined and with 100-continue.

Usage: http-framing.py PORT TOKEN
Prints one line per check; exits 1 if any failed."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_raw  # noqa: E402

port = int(sys.argv[1])
token = sys.argv[2]
failures = []


def check(name, ok, why=""):
    print("%s: %s%s" % ("ok" if ok else "FAIL", name, "" if ok else ": " + why), flush=True)
    if not ok:
        failures.append(name)


def task(name):
    return json.dumps({"plan": "framing test", "name": name}).encode()


def post(body=None, extra="", path="/api/v1/tasks"):
    """A POST head with our token; with `body` also its Content-Length and the body."""
    head = ("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\n%s" % (path, token, extra)).encode()
    if body is None:
        return head
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


# A whole second request, hidden in the body of the first: if it is ever
# answered (or its task stored), the framing was read two ways.
def smuggled(n):
    return post(task("framing-smuggled-%d" % n))


outer = task("framing-outer")
chunked_outer = http_raw.chunked(outer)

# (name, bytes, status, code): what each must get, alone on its connection.
bad = [
    ("two different Content-Length headers",
     post(extra="Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(outer), len(outer) + len(smuggled(1))))
     + outer + smuggled(1), 400, "bad_framing"),
    ("two equal Content-Length headers",
     post(extra="Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(outer), len(outer))) + outer,
     400, "bad_framing"),
    ("Content-Length with Transfer-Encoding",
     post(extra="Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(chunked_outer))
     + chunked_outer + smuggled(2), 400, "bad_framing"),
    ("Transfer-Encoding before Content-Length",
     post(extra="Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n") + chunked_outer + smuggled(3),
     400, "bad_framing"),
    ("Transfer-Encoding: xchunked",
     post(extra="Transfer-Encoding: xchunked\r\n\r\n") + chunked_outer + smuggled(4), 400, "bad_framing"),
    ("Transfer-Encoding: chunked, identity",
     post(extra="Transfer-Encoding: chunked, identity\r\n\r\n") + chunked_outer + smuggled(5),
     400, "bad_framing"),
    ("Transfer-Encoding: identity",
     post(extra="Transfer-Encoding: identity\r\n\r\n") + outer, 400, "bad_framing"),
    ("two Transfer-Encoding headers",
     post(extra="Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n") + chunked_outer,
     400, "bad_framing"),
    ("Transfer-Encoding in HTTP/1.0",
     b"POST /api/v1/tasks HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_outer, 400, "bad_framing"),
    ("whitespace before the colon of Content-Length",
     post(extra="Content-Length : %d\r\n\r\n" % len(outer)) + outer + smuggled(6), 400, "bad_request"),
    ("a header folded over two lines",
     post(extra="X-A: a\r\n Content-Length: %d\r\n\r\n" % len(outer)) + outer, 400, "bad_request"),
    ("bare LF line ends", b"GET /api/v1/health HTTP/1.1\nHost: x\n\n", 400, "bad_request"),
    ("no Host in HTTP/1.1", b"GET /api/v1/health HTTP/1.1\r\n\r\n", 400, "bad_request"),
    ("a NUL in a header", http_raw.get("/api/v1/health", extra="X-A: a\0b\r\n"), 400, "bad_request"),
    ("%00 in the path", http_raw.get("/api/v1/health%00/x"), 400, "bad_request"),
    ("not HTTP at all (a TLS ClientHello)", bytes.fromhex("16030100c4010000c00303") + os.urandom(32),
     400, "bad_request"),
    # What libmicrohttpd answers by itself when it parses the bytes.
    ("an HTTP/0.9 request", b"GET /api/v1/health\r\n", 505, "http_version_not_supported"),
    ("version HTTP/0.9", b"GET /api/v1/health HTTP/0.9\r\n\r\n", 505, "http_version_not_supported"),
    ("version HTTP/2.0", b"GET /api/v1/health HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"),
    ("a header line without a colon", http_raw.get("/api/v1/health", extra="no colon here\r\n"),
     400, "bad_request"),
    ("Content-Length that is no number", post(extra="Content-Length: abc\r\n\r\n"), 400, "bad_framing"),
    ("Content-Length that overflows", post(extra="Content-Length: 99999999999999999999999\r\n\r\n"),
     413, "payload_too_large"),
    ("too many headers", http_raw.get("/api/v1/health", extra="X-A: b\r\n" * 2000), 431, "headers_too_large"),
    ("a URL too long for libmicrohttpd", http_raw.get("/api/v1/health?q=" + "a" * 200000), 414, "uri_too_long"),
    ("too many query parameters", http_raw.get("/api/v1/health?" + "a&" * 3000 + "a"), 400, "invalid_parameter"),
    ("a chunk size that is no number", post(extra="Transfer-Encoding: chunked\r\n\r\n") + b"zz\r\n" + outer,
     400, "bad_framing"),
    ("a chunk size that overflows",
     post(extra="Transfer-Encoding: chunked\r\n\r\n") + b"FFFFFFFFFFFFFFFFFFFF\r\n" + outer,
     413, "payload_too_large"),
    ("a chunk not ended by CRLF",
     post(extra="Transfer-Encoding: chunked\r\n\r\n") + b"5\r\n{\"pla!!\r\n0\r\n\r\n", 400, "bad_framing"),
]


def expect_refusal(name, responses, eof, extra, status, code, before=0):
    """`before` good answers, then exactly our error, then the end."""
    finals = [r for r in responses if r.status >= 200]
    if len(finals) != before + 1:
        return check(name, False, "expected %d answer(s), got %r (closed: %s)" % (before + 1, finals, eof))
    for r in finals[:before]:
        if r.status != 200:
            return check(name, False, "the good request got %r" % r)
    r = finals[before]
    if r.status != status or r.error_code() != code:
        return check(name, False, "expected %d %s with a JSON error, got %r" % (status, code, r))
    if not (r.header("Content-Type") or "").startswith("application/json"):
        return check(name, False, "Content-Type is %r" % r.header("Content-Type"))
    if (r.header("Connection") or "").lower() != "close":
        return check(name, False, "no Connection: close")
    if not eof or extra:
        return check(name, False, "the connection was not closed after the error (closed: %s, more: %r)"
                     % (eof, extra[:100]))
    check(name, True)


for name, data, status, code in bad:
    responses, eof, extra = http_raw.exchange(port, data)
    expect_refusal(name, responses, eof, extra, status, code)

    # The second request on a kept-alive connection: libmicrohttpd would parse it by itself.
    s = http_raw.connect(port)
    try:
        s.sendall(http_raw.get("/api/v1/health"))
        first, eof, _ = http_raw.read_responses(s, count=1)
        if len(first) != 1 or first[0].status != 200 or eof:
            check(name + ", after a first request", False, "the first request got %r" % first)
        else:
            responses, eof, extra = http_raw.exchange(port, data, sock=s)
            expect_refusal(name + ", after a first request", responses, eof, extra, status, code)
    finally:
        s.close()

    # Pipelined behind a good request, in the same write.
    responses, eof, extra = http_raw.exchange(port, http_raw.get("/api/v1/health") + data)
    expect_refusal(name + ", pipelined", responses, eof, extra, status, code, before=1)

# What is fine still works.
responses, eof, _ = http_raw.exchange(port, post(extra="Transfer-Encoding: chunked\r\n\r\n")
                                      + http_raw.chunked(task("valid-chunked")), count=1)
check("a chunked body", len(responses) == 1 and responses[0].status == 201 and not eof, repr(responses))

data = (http_raw.get("/api/v1/health") + post(task("valid-pipelined")) + http_raw.get("/api/v1/health")
        + post(extra="Transfer-Encoding: chunked\r\n\r\n") + http_raw.chunked(task("valid-pipelined-chunked"), 3))
responses, eof, _ = http_raw.exchange(port, data, count=4, timeout=5)
check("four pipelined requests", [r.status for r in responses] == [200, 201, 200, 201] and not eof,
      "%r (closed: %s)" % (responses, eof))

s = http_raw.connect(port)
try:
    body = task("valid-continue")
    s.sendall(post(extra="Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)))
    interim, _, _ = http_raw.read_responses(s, timeout=2)
    s.sendall(body)
    final, eof, _ = http_raw.read_responses(s, count=1)
    check("Expect: 100-continue", [r.status for r in interim] == [100] and [r.status for r in final] == [201],
          "%r then %r" % (interim, final))
finally:
    s.close()

# A client that says it has sent all (half-closes) gets its answer, then the end.
s = http_raw.connect(port)
try:
    s.sendall(http_raw.get("/api/v1/health"))
    s.shutdown(http_raw.socket.SHUT_WR)
    responses, eof, _ = http_raw.read_responses(s, timeout=3)
    check("a half-closed client", [r.status for r in responses] == [200] and eof, "%r (closed: %s)" % (responses, eof))
finally:
    s.close()

# Errors makima-api decides itself keep a connection without a body alive, as before.
responses, eof, _ = http_raw.exchange(port, http_raw.get("/api/v1/nothing") + http_raw.get("/api/v1/health"),
                                      count=2)
check("a 404 keeps the connection", [r.status for r in responses] == [404, 200] and not eof
      and responses[0].error_code() == "not_found", repr(responses))

print("%d check(s) failed" % len(failures) if failures else "all checks passed")
sys.exit(1 if failures else 0)
