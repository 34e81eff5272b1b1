# SPDX-License-Identifier: LGPL-2.1-or-later
"""Raw HTTP/1.1 over sockets, for the integration tests that send what curl
cannot: broken framing, heads that never end, connections from many loopback
source addresses. Python 3 standard library only."""

import json
import socket
import threading
import time


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers          # [(name, value)], as sent
        self.body = body

    def header(self, name):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def error_code(self):
        """The code of makima's JSON error body, or None if the body is not one."""
        try:
            o = json.loads(self.body)
            e = o["error"]
            if isinstance(e["code"], str) and isinstance(e["message"], str) and e["message"]:
                return e["code"]
        except (ValueError, KeyError, TypeError):
            pass
        return None

    def __repr__(self):
        return "%d %s %r" % (self.status, self.reason, self.body[:200])


def _parse_one(buf):
    """One response from the start of buf: (Response, bytes used), or None if incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name, value.strip()))
    r = Response(status, parts[2] if len(parts) > 2 else "", headers, b"")
    start = end + 4
    if 100 <= status < 200 or status in (204, 304):
        return r, start
    length = r.header("Content-Length")
    if length is None:
        raise ValueError("a response without Content-Length: %r" % buf[:300])
    if len(buf) < start + int(length):
        return None
    r.body = buf[start:start + int(length)]
    return r, start + int(length)


def parse_responses(buf):
    """The complete answers at the start of buf: (responses, the bytes after them)."""
    responses = []
    while True:
        one = _parse_one(buf)
        if not one:
            return responses, buf
        responses.append(one[0])
        buf = buf[one[1]:]


def read_responses(sock, count=None, timeout=5.0):
    """Reads answers until the server closes, `count` final answers arrived
    (then it waits no longer), or `timeout` seconds pass. Returns (responses,
    eof, extra): eof is True if the server closed the connection, extra the
    bytes after the last complete answer."""
    responses = []
    buf = b""
    eof = False
    deadline = time.monotonic() + timeout
    while count is None or len([r for r in responses if r.status >= 200]) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            eof = True
            break
        if not data:
            eof = True
            break
        more, buf = parse_responses(buf + data)
        responses += more
    return responses, eof, buf


def connect(port, host="127.0.0.1", source=None, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if source:
        s.bind((source, 0))
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def send_all(sock, data):
    """Sends data from another thread, so that an answer the server sends
    before it read everything is read meanwhile; a server that closes early
    ends the sending quietly."""
    def run():
        try:
            sock.sendall(data)
        except OSError:
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def exchange(port, data, count=None, timeout=5.0, sock=None):
    """Sends data on a new connection (or `sock`) and reads the answers
    (see read_responses). The connection is closed afterwards."""
    s = sock or connect(port)
    try:
        t = send_all(s, data)
        out = read_responses(s, count=count, timeout=timeout)
        t.join(1)
        return out
    finally:
        s.close()


def get(path, host="x", extra=""):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (path, host, extra)).encode()


def chunked(data, size=7):
    """data as a chunked body, in chunks of `size` bytes."""
    out = b""
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        out += b"%x\r\n%s\r\n" % (len(piece), piece)
    return out + b"0\r\n\r\n"
