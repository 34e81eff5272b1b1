#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A scripted fake of the Anthropic Messages API, for driving the real Claude
Code CLI offline in tests.

Each "main" request (the agent's own turn) is answered by the next step of a
scenario file; the CLI's small side requests are answered with a short text
without consuming a step. Every request is logged as one JSON line so a test
can assert on what the agent sent (its prompt, its tool results, its history).
See README.md beside this file for the scenario format and what the real CLI
does. Python 3 standard library only.
"""

import argparse
import copy
import http.server
import itertools
import json
import os
import re
import sys
import threading
import time

SYSTEM_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>\s*", re.S)
PRIMARY_CWD = re.compile(r"Primary working directory: *(\S[^\n]*)")
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
ERROR_MESSAGES = {
    401: "invalid x-api-key",
    429: "Number of request tokens has exceeded your per-minute rate limit",
    500: "Internal server error",
    529: "Overloaded",
}

DEFAULT_SIDE_TEXT = "OK"
DEFAULT_EXHAUSTED_TEXT = "fake-anthropic: scenario exhausted"


class ScenarioError(Exception):
    pass


def load_scenario(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, list):
        data = {"steps": data}
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise ScenarioError(f"{path}: expected a list of steps or an object with 'steps'")
    for i, step in enumerate(data["steps"]):
        if not isinstance(step, dict):
            raise ScenarioError(f"{path}: step {i} is not an object")
        known = {"text", "thinking", "tool_use", "error", "message", "retry_after", "headers",
                 "times", "stream_error", "delay", "usage", "stop_reason", "comment"}
        unknown = set(step) - known
        if unknown:
            raise ScenarioError(f"{path}: step {i} has unknown keys {sorted(unknown)}")
        if not any(k in step for k in ("text", "tool_use", "error", "stream_error")):
            raise ScenarioError(f"{path}: step {i} has none of text, tool_use, error, stream_error")
    return data


def text_of(content):
    """The text of a message's content (a string or a list of blocks), with the
    CLI's injected <system-reminder> blocks removed."""
    if isinstance(content, str):
        parts = [content]
    elif isinstance(content, list):
        parts = [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
    else:
        parts = []
    return "".join(SYSTEM_REMINDER.sub("", p) for p in parts).strip()


def tool_results_of(content):
    out = []
    if not isinstance(content, list):
        return out
    for b in content:
        if not isinstance(b, dict) or b.get("type") != "tool_result":
            continue
        c = b.get("content")
        if isinstance(c, list):
            c = "".join(x.get("text", "") for x in c if isinstance(x, dict))
        out.append({"tool_use_id": b.get("tool_use_id"),
                    "is_error": bool(b.get("is_error", False)),
                    "content": SYSTEM_REMINDER.sub("", c or "")[:4000]})
    return out


def system_text(body):
    s = body.get("system")
    if isinstance(s, str):
        return s
    if isinstance(s, list):
        return "\n".join(b.get("text", "") for b in s if isinstance(b, dict))
    return ""


def classify(path, body):
    """'main' for the agent's own turns, 'side' for everything else the CLI
    asks (titles, summaries, quota probes, haiku helpers). A main request is
    the one that offers the agent its tools with a full output budget; side
    requests come without tools, with a small max_tokens or on a haiku
    model."""
    if "/count_tokens" in path:
        return "count_tokens"
    tools = body.get("tools") or []
    model = str(body.get("model", ""))
    max_tokens = body.get("max_tokens") or 0
    if not tools or "haiku" in model or max_tokens < 1024:
        return "side"
    return "main"


def side_purpose(body):
    """The first words of a side request's own instructions (after the billing
    header and the SDK's one-line identity), to tell side requests apart in
    the log."""
    s = body.get("system")
    blocks = [s] if isinstance(s, str) else [b.get("text", "") for b in s or [] if isinstance(b, dict)]
    for t in blocks:
        if t.startswith("x-anthropic-billing-header") or t.startswith("You are a Claude agent"):
            continue
        return t[:160]
    return ""


def from_schema(schema, text):
    """A value satisfying a (simple) JSON schema, for side requests that ask
    for structured output such as the session title."""
    t = schema.get("type")
    if t == "object":
        props = schema.get("properties") or {}
        return {k: from_schema(props.get(k) or {}, text) for k in schema.get("required", list(props))}
    if t == "array":
        return []
    if t in ("integer", "number"):
        return 0
    if t == "boolean":
        return False
    if "enum" in schema:
        return schema["enum"][0]
    return text


def substitute(value, env):
    if isinstance(value, str):
        def repl(m):
            key = m.group(1)
            if env.get(key) is None:
                raise ScenarioError(f"placeholder {{{{{key}}}}} has no value in this request")
            return env[key]
        return PLACEHOLDER.sub(repl, value)
    if isinstance(value, list):
        return [substitute(v, env) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, env) for k, v in value.items()}
    return value


def stream_error_status(step):
    err = step["stream_error"]
    kind = err if isinstance(err, str) else err.get("type")
    return {v: k for k, v in ERROR_TYPES.items()}.get(kind, 500)


def sse(event, data):
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def chunks(s, n):
    return [s[i:i + n] for i in range(0, len(s), n)] or [""]


class Fake:
    def __init__(self, scenario, log_path, cwd, dump_dir):
        self.scenario = scenario
        self.dump_dir = dump_dir
        self.steps = scenario["steps"]
        self.cwd = cwd
        self.lock = threading.Lock()
        self.index = 0          # next step
        self.used = 0           # how often the current step answered ("times")
        self.seq = itertools.count(1)
        self.log_file = open(log_path, "a", encoding="utf-8") if log_path else None

    def log(self, entry):
        if not self.log_file:
            return
        with self.lock:
            self.log_file.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self.log_file.flush()

    def next_step(self):
        """Returns (index, step) of the step answering this main request, or
        (None, None) when the scenario is exhausted."""
        with self.lock:
            if self.index >= len(self.steps):
                return None, None
            i, step = self.index, self.steps[self.index]
            times = step.get("times", 1)
            self.used += 1
            if times != "always" and self.used >= int(times):
                self.index += 1
                self.used = 0
            return i, step


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-anthropic/1"
    fake = None  # set in main()

    def log_message(self, fmt, *args):
        pass

    # ---- plumbing ----

    def read_body(self):
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def send_json(self, status, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_fake_{self.n}")
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error_body(self, status, message=None, headers=None, error_type=None):
        self.send_json(status, {
            "type": "error",
            "error": {"type": error_type or ERROR_TYPES.get(status, "api_error"),
                      "message": message or ERROR_MESSAGES.get(status, f"HTTP {status}")},
            "request_id": f"req_fake_{self.n}",
        }, headers)

    def send_stream(self, events):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", f"req_fake_{self.n}")
        # No content-length: the stream ends when the connection does.
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        for e in events:
            self.wfile.write(e)
            self.wfile.flush()

    # ---- responses ----

    def message_events(self, body, step, env):
        model = body.get("model", "claude-fake")
        usage = {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0}
        usage.update(step.get("usage") or {})
        ev = [sse("message_start", {"type": "message_start", "message": {
            "id": f"msg_fake_{self.n}", "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": dict(usage, output_tokens=1)}})]
        ev.append(sse("ping", {"type": "ping"}))
        blocks = []
        if step.get("thinking"):
            blocks.append(("thinking", step["thinking"]))
        if step.get("text"):
            blocks.append(("text", substitute(step["text"], env)))
        tool_uses = step.get("tool_use") or []
        if isinstance(tool_uses, dict):
            tool_uses = [tool_uses]
        for j, tu in enumerate(tool_uses):
            blocks.append(("tool_use", {"id": tu.get("id") or f"toolu_fake_{self.n}_{j}",
                                        "name": tu["name"],
                                        "input": substitute(tu.get("input", {}), env)}))
        for idx, (kind, val) in enumerate(blocks):
            if kind == "thinking":
                ev.append(sse("content_block_start", {"type": "content_block_start", "index": idx,
                              "content_block": {"type": "thinking", "thinking": "", "signature": ""}}))
                for c in chunks(val, 40):
                    ev.append(sse("content_block_delta", {"type": "content_block_delta", "index": idx,
                                  "delta": {"type": "thinking_delta", "thinking": c}}))
                ev.append(sse("content_block_delta", {"type": "content_block_delta", "index": idx,
                              "delta": {"type": "signature_delta", "signature": "ZmFrZQ=="}}))
            elif kind == "text":
                ev.append(sse("content_block_start", {"type": "content_block_start", "index": idx,
                              "content_block": {"type": "text", "text": ""}}))
                for c in chunks(val, 40):
                    ev.append(sse("content_block_delta", {"type": "content_block_delta", "index": idx,
                                  "delta": {"type": "text_delta", "text": c}}))
            else:
                ev.append(sse("content_block_start", {"type": "content_block_start", "index": idx,
                              "content_block": {"type": "tool_use", "id": val["id"], "name": val["name"],
                                                "input": {}}}))
                # Split the input JSON like the real API does, so the CLI's
                # partial-JSON accumulation is exercised.
                for c in chunks(json.dumps(val["input"]), 24):
                    ev.append(sse("content_block_delta", {"type": "content_block_delta", "index": idx,
                                  "delta": {"type": "input_json_delta", "partial_json": c}}))
            ev.append(sse("content_block_stop", {"type": "content_block_stop", "index": idx}))
        stop = step.get("stop_reason") or ("tool_use" if tool_uses else "end_turn")
        ev.append(sse("message_delta", {"type": "message_delta",
                                        "delta": {"stop_reason": stop, "stop_sequence": None},
                                        "usage": {"output_tokens": usage["output_tokens"]}}))
        ev.append(sse("message_stop", {"type": "message_stop"}))
        return ev, [k if k != "tool_use" else "tool_use " + v["name"] for k, v in blocks]

    def respond_error(self, step):
        status = int(step["error"])
        headers = {}
        if status == 429:
            ra = step.get("retry_after", 1)
            reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + float(ra)))
            headers.update({
                "retry-after": ra,
                "anthropic-ratelimit-requests-limit": 50,
                "anthropic-ratelimit-requests-remaining": 0,
                "anthropic-ratelimit-requests-reset": reset,
                "anthropic-ratelimit-tokens-limit": 40000,
                "anthropic-ratelimit-tokens-remaining": 0,
                "anthropic-ratelimit-tokens-reset": reset,
                "anthropic-ratelimit-unified-status": "rejected",
                "anthropic-ratelimit-unified-reset": int(time.time() + float(ra)),
            })
        elif status == 529 or status >= 500:
            headers["x-should-retry"] = "true"
        headers.update(step.get("headers") or {})
        self.send_error_body(status, step.get("message"), headers)

    def respond_stream_error(self, body, step):
        err = step["stream_error"]
        if isinstance(err, str):
            err = {"type": err, "message": err}
        if not body.get("stream"):
            # The CLI falls back to a non-streaming request after a stream
            # fails; the real API reports the same failure as a status there.
            return self.send_error_body(stream_error_status(step), err.get("message"), error_type=err.get("type"))
        model = body.get("model", "claude-fake")
        ev = [sse("message_start", {"type": "message_start", "message": {
            "id": f"msg_fake_{self.n}", "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 1}}}),
            sse("error", {"type": "error", "error": err})]
        self.send_stream(ev)

    # ---- dispatch ----

    def do_POST(self):
        fake = self.fake
        self.n = next(fake.seq)
        raw = self.read_body()
        path = self.path.split("?", 1)[0]
        if fake.dump_dir:
            with open(os.path.join(fake.dump_dir, f"{self.n:04d}.json"), "wb") as f:
                f.write(raw)
        entry = {"n": self.n, "time": round(time.time(), 3), "method": "POST", "path": self.path}
        if path not in ("/v1/messages", "/v1/messages/count_tokens"):
            entry.update(kind="other", status=404)
            fake.log(entry)
            return self.send_error_body(404, f"no route for {path}")
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError as e:
            entry.update(kind="bad", status=400, error=str(e))
            fake.log(entry)
            return self.send_error_body(400, f"request body is not JSON: {e}")

        kind = classify(path, body)
        messages = body.get("messages") or []
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        last = users[-1].get("content") if users else None
        m = PRIMARY_CWD.search(system_text(body))
        cwd = m.group(1).strip() if m else fake.cwd
        entry.update(kind=kind, model=body.get("model"), max_tokens=body.get("max_tokens"),
                     stream=bool(body.get("stream")), ntools=len(body.get("tools") or []),
                     nmessages=len(messages), cwd=cwd,
                     session_id=self.headers.get("x-claude-code-session-id"),
                     api_key=self.headers.get("x-api-key"),
                     last_user_text=text_of(last),
                     tool_results=tool_results_of(last),
                     user_texts=[t for t in (text_of(u.get("content")) for u in users) if t])

        if kind == "count_tokens":
            entry["status"] = 200
            fake.log(entry)
            return self.send_json(200, {"input_tokens": max(1, len(raw) // 4)})
        if kind == "side":
            text = fake.scenario.get("side_text", DEFAULT_SIDE_TEXT)
            fmt = (body.get("output_config") or {}).get("format") or {}
            if fmt.get("type") == "json_schema":
                text = json.dumps(from_schema(fmt.get("schema") or {}, text))
            step = {"text": text}
            entry.update(step=None, system_head=side_purpose(body))
        else:
            i, step = fake.next_step()
            entry["step"] = i
            if step is None:
                entry["exhausted"] = True
                step = {"text": fake.scenario.get("exhausted_text", DEFAULT_EXHAUSTED_TEXT)}

        # The request is logged before any delay, so a test can act (e.g.
        # interrupt) while the agent waits for the answer.
        delay = float(step.get("delay") or 0)
        entry["delay"] = delay
        if "error" in step:
            entry.update(status=int(step["error"]), response=f"error {step['error']}")
            fake.log(entry)
            time.sleep(delay)
            return self.respond_error(step)
        if "stream_error" in step:
            entry.update(status=200 if body.get("stream") else stream_error_status(step),
                         response="stream_error")
            fake.log(entry)
            time.sleep(delay)
            return self.respond_stream_error(body, step)
        env = {"cwd": cwd, "session_id": entry["session_id"]}
        try:
            events, blocks = self.message_events(body, step, env)
        except ScenarioError as e:
            entry.update(status=400, error=str(e))
            fake.log(entry)
            return self.send_error_body(400, f"fake-anthropic: {e}")
        entry.update(status=200, response=" ".join(blocks) or "empty")
        fake.log(entry)
        time.sleep(delay)
        if not body.get("stream"):
            # Non-streaming callers (the CLI's fallback after a broken
            # stream) get the assembled message.
            return self.send_json(200, assemble(events))
        self.send_stream(events)

    def do_other(self):
        self.n = next(self.fake.seq)
        self.read_body()
        self.fake.log({"n": self.n, "time": round(time.time(), 3), "method": self.command,
                       "path": self.path, "kind": "other", "status": 404})
        self.send_error_body(404, f"no route for {self.command} {self.path}")

    do_GET = do_HEAD = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = do_other

    def handle_one_request(self):
        # The CLI drops connections it no longer wants (an interrupt, a
        # timeout); that is not the fixture's failure.
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def assemble(events):
    """Folds an SSE event list back into one Messages API response object."""
    msg = None
    for raw in events:
        kind, data = raw.decode().split("\n", 1)
        d = json.loads(data[len("data: "):])
        t = d["type"]
        if t == "message_start":
            msg = copy.deepcopy(d["message"])
        elif t == "content_block_start":
            b = dict(d["content_block"])
            if b["type"] == "tool_use":
                b["_json"] = ""
            msg["content"].append(b)
        elif t == "content_block_delta":
            b, delta = msg["content"][d["index"]], d["delta"]
            if delta["type"] == "text_delta":
                b["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                b["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                b["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                b["_json"] += delta["partial_json"]
        elif t == "content_block_stop":
            b = msg["content"][d["index"]]
            if "_json" in b:
                b["input"] = json.loads(b.pop("_json") or "{}")
        elif t == "message_delta":
            msg.update(d["delta"])
            msg["usage"].update(d["usage"])
    return msg


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", required=True, help="scenario JSON file")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    p.add_argument("--port-file", help="write the port here once listening")
    p.add_argument("--log", help="append one JSON line per request here")
    p.add_argument("--dump-dir", help="save each request body here as NNNN.json (debugging)")
    p.add_argument("--cwd", help="value of {{cwd}} when the request's system prompt names none")
    args = p.parse_args()

    try:
        scenario = load_scenario(args.scenario)
    except (OSError, ValueError, ScenarioError) as e:
        print(f"fake-anthropic: {e}", file=sys.stderr)
        return 2

    Handler.fake = Fake(scenario, args.log, args.cwd, args.dump_dir)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{server.server_address[1]}\n")
        os.rename(tmp, args.port_file)  # readers never see a half-written file
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
