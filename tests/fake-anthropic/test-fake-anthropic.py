#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The fake Anthropic API on its own, over real HTTP: the SSE it streams,
the error statuses and bodies, how it tells main from side requests, the
{{cwd}} placeholder and its request log. test-fake-api.sh then shows that the
real CLI accepts all of it."""

import http.client
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # importing fake-anthropic.py must leave no __pycache__ in the tree

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake-anthropic.py")
TOOLS = [{"name": "Write", "input_schema": {"type": "object"}}]
SYSTEM = [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197"},
          {"type": "text", "text": "You are a Claude agent, built on Anthropic's Claude Agent SDK."},
          {"type": "text", "text": "# Environment\n - Primary working directory: /w/repo\n - Is a git repository: true"}]

SCENARIO = {"steps": [
    {"text": "Writing.", "tool_use": {"name": "Write", "input": {"file_path": "{{cwd}}/a.txt", "content": "x\n"}}},
    {"error": 429, "retry_after": 3, "times": 2},
    {"error": 401},
    {"error": 529},
    {"error": 500, "message": "boom"},
    {"stream_error": "overloaded_error"},
    {"stream_error": "overloaded_error"},
    {"thinking": "hmm", "text": "Plain answer.", "usage": {"input_tokens": 7, "output_tokens": 3}},
    {"tool_use": {"name": "Bash", "input": {"command": "cat {{cwd}}/a.txt"}}},
    {"text": "Needs a cwd: {{cwd}}"},
]}


def parse_sse(raw):
    events = []
    for chunk in raw.decode().split("\n\n"):
        if not chunk.strip():
            continue
        name, data = chunk.split("\n", 1)
        assert name.startswith("event: ") and data.startswith("data: "), chunk
        d = json.loads(data[len("data: "):])
        assert d["type"] == name[len("event: "):], chunk
        events.append(d)
    return events


def fold(events):
    """Rebuilds the message the way the CLI does from the SSE events."""
    msg, partial = None, {}
    for e in events:
        if e["type"] == "message_start":
            msg = e["message"]
        elif e["type"] == "content_block_start":
            msg["content"].append(e["content_block"])
            partial[e["index"]] = ""
        elif e["type"] == "content_block_delta":
            b, d = msg["content"][e["index"]], e["delta"]
            if d["type"] == "text_delta":
                b["text"] += d["text"]
            elif d["type"] == "thinking_delta":
                b["thinking"] += d["thinking"]
            elif d["type"] == "input_json_delta":
                partial[e["index"]] += d["partial_json"]
        elif e["type"] == "content_block_stop":
            b = msg["content"][e["index"]]
            if b["type"] == "tool_use":
                b["input"] = json.loads(partial[e["index"]])
        elif e["type"] == "message_delta":
            msg["stop_reason"] = e["delta"]["stop_reason"]
            msg["usage"].update(e["usage"])
    return msg


class FakeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        d = cls.dir.name
        with open(os.path.join(d, "scenario.json"), "w") as f:
            json.dump(SCENARIO, f)
        cls.log = os.path.join(d, "log.jsonl")
        port_file = os.path.join(d, "port")
        cls.proc = subprocess.Popen([sys.executable, FAKE, "--scenario", os.path.join(d, "scenario.json"),
                                     "--port-file", port_file, "--log", cls.log])
        for _ in range(100):
            if os.path.exists(port_file):
                break
            time.sleep(0.05)
        with open(port_file) as f:
            cls.port = int(f.read())

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait()
        cls.dir.cleanup()

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        c.request(method, path, body=data, headers=headers or {"content-type": "application/json"})
        r = c.getresponse()
        raw = r.read()
        c.close()
        return r, raw

    def messages(self, stream=True, tools=TOOLS, system=SYSTEM, content="hi", **extra):
        body = {"model": "claude-opus-4-8", "max_tokens": 64000, "stream": stream, "tools": tools,
                "system": system, "messages": [{"role": "user", "content": content}], **extra}
        return self.request("POST", "/v1/messages?beta=true", body)

    def log_entries(self):
        with open(self.log) as f:
            return [json.loads(line) for line in f]

    # The steps are consumed in order, so the test runs as one sequence.
    def test_sequence(self):
        # preflight and unknown routes
        r, raw = self.request("HEAD", "/")
        self.assertEqual(r.status, 404)
        r, raw = self.request("GET", "/v1/models")
        self.assertEqual(r.status, 404)
        self.assertEqual(json.loads(raw)["error"]["type"], "not_found_error")
        r, raw = self.request("POST", "/v1/complete", {})
        self.assertEqual(r.status, 404)
        r, raw = self.request("POST", "/v1/messages", b"{not json")
        self.assertEqual(r.status, 400)
        self.assertEqual(json.loads(raw)["error"]["type"], "invalid_request_error")

        # side requests take no step
        r, raw = self.request("POST", "/v1/messages/count_tokens?beta=true", {"messages": []})
        self.assertEqual(r.status, 200)
        self.assertGreater(json.loads(raw)["input_tokens"], 0)
        r, raw = self.messages(tools=[])
        self.assertEqual(fold(parse_sse(raw))["content"], [{"type": "text", "text": "OK"}])
        schema = {"type": "json_schema", "schema": {"type": "object", "properties": {"title": {"type": "string"}},
                                                    "required": ["title"]}}
        r, raw = self.messages(tools=[], output_config={"format": schema})
        self.assertEqual(json.loads(fold(parse_sse(raw))["content"][0]["text"]), {"title": "OK"})
        r, raw = self.messages(model="claude-haiku-4-5-20251001")
        self.assertEqual(fold(parse_sse(raw))["content"][0]["text"], "OK")

        # step 0: text + tool_use, {{cwd}} from the system prompt
        content = [{"type": "text", "text": "<system-reminder>\nctx\n</system-reminder>\n"},
                   {"type": "text", "text": "Write a.txt"}]
        r, raw = self.messages(content=content)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.getheader("content-type").startswith("text/event-stream"))
        events = parse_sse(raw)
        self.assertEqual([e["type"] for e in events][:3], ["message_start", "ping", "content_block_start"])
        self.assertEqual([e["type"] for e in events][-2:], ["message_delta", "message_stop"])
        msg = fold(events)
        self.assertEqual(msg["stop_reason"], "tool_use")
        self.assertEqual(msg["content"][0], {"type": "text", "text": "Writing."})
        tu = msg["content"][1]
        self.assertEqual((tu["type"], tu["name"]), ("tool_use", "Write"))
        self.assertEqual(tu["input"], {"file_path": "/w/repo/a.txt", "content": "x\n"})
        self.assertTrue(tu["id"].startswith("toolu_"))

        # step 1 twice: 429 with retry-after and rate limit headers
        for _ in range(2):
            r, raw = self.messages(content=[{"type": "tool_result", "tool_use_id": tu["id"],
                                             "content": [{"type": "text", "text": "written"}]}])
            self.assertEqual(r.status, 429)
            self.assertEqual(r.getheader("retry-after"), "3")
            self.assertEqual(r.getheader("anthropic-ratelimit-requests-remaining"), "0")
            self.assertEqual(r.getheader("anthropic-ratelimit-unified-status"), "rejected")
            body = json.loads(raw)
            self.assertEqual(body["type"], "error")
            self.assertEqual(body["error"]["type"], "rate_limit_error")
            self.assertTrue(body["request_id"].startswith("req_"))
        # steps 2-4: 401, 529, 500
        for status, kind, message in ((401, "authentication_error", "invalid x-api-key"),
                                      (529, "overloaded_error", "Overloaded"), (500, "api_error", "boom")):
            r, raw = self.messages()
            self.assertEqual(r.status, status)
            self.assertEqual(json.loads(raw)["error"], {"type": kind, "message": message})
        # step 5: an error event inside a 200 stream; step 6: the same without streaming is a status
        r, raw = self.messages()
        events = parse_sse(raw)
        self.assertEqual(r.status, 200)
        self.assertEqual(events[-1], {"type": "error", "error": {"type": "overloaded_error",
                                                                 "message": "overloaded_error"}})
        r, raw = self.messages(stream=False)
        self.assertEqual(r.status, 529)
        # step 7: thinking + text, asked without streaming: one assembled message
        r, raw = self.messages(stream=False)
        msg = json.loads(raw)
        self.assertEqual(msg["content"][0]["type"], "thinking")
        self.assertEqual(msg["content"][0]["thinking"], "hmm")
        self.assertEqual(msg["content"][1], {"type": "text", "text": "Plain answer."})
        self.assertEqual(msg["stop_reason"], "end_turn")
        self.assertEqual(msg["usage"]["input_tokens"], 7)
        self.assertEqual(msg["usage"]["output_tokens"], 3)
        # step 8: the placeholder falls back to --cwd, which this server lacks: a loud 400
        r, raw = self.messages(system="no environment here")
        self.assertEqual(r.status, 400)
        self.assertIn("{{cwd}}", json.loads(raw)["error"]["message"])
        # step 9 with a system prompt string; then exhausted
        r, raw = self.messages(system="Primary working directory: /other\n")
        self.assertEqual(fold(parse_sse(raw))["content"][0]["text"], "Needs a cwd: /other")
        r, raw = self.messages()
        self.assertEqual(fold(parse_sse(raw))["content"][0]["text"], "fake-anthropic: scenario exhausted")

        log = self.log_entries()
        self.assertEqual([x["kind"] for x in log[:5]], ["other", "other", "other", "bad", "count_tokens"])
        side = [x for x in log if x["kind"] == "side"]
        self.assertEqual(len(side), 3)
        self.assertTrue(all(x["step"] is None for x in side))
        main = [x for x in log if x["kind"] == "main"]
        self.assertEqual([x["step"] for x in main], [0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, None])
        self.assertEqual(main[0]["last_user_text"], "Write a.txt")
        self.assertEqual(main[0]["cwd"], "/w/repo")
        self.assertEqual(main[1]["tool_results"], [{"tool_use_id": tu["id"], "is_error": False,
                                                   "content": "written"}])
        self.assertEqual(main[1]["status"], 429)
        self.assertEqual([main[6]["status"], main[7]["status"]], [200, 529])  # stream_error, streamed or not
        self.assertTrue(main[-1]["exhausted"])


class ScenarioValidationTest(unittest.TestCase):
    def run_with(self, scenario):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(scenario, f)
        try:
            return subprocess.run([sys.executable, FAKE, "--scenario", f.name], capture_output=True, text=True,
                                  timeout=10)
        finally:
            os.unlink(f.name)

    def test_bad_scenarios(self):
        for bad in ({"steps": "no"}, [{"txt": "typo"}], [{"comment": "nothing to answer with"}], [42]):
            r = self.run_with(bad)
            self.assertEqual(r.returncode, 2, bad)
            self.assertIn("fake-anthropic:", r.stderr)

    def test_shipped_scenarios_load(self):
        spec = importlib.util.spec_from_file_location("fake_anthropic", FAKE)
        fake = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fake)
        d = os.path.join(HERE, "scenarios")
        names = sorted(os.listdir(d))
        self.assertIn("hello.json", names)
        for name in names:
            self.assertTrue(fake.load_scenario(os.path.join(d, name))["steps"], name)


if __name__ == "__main__":
    unittest.main(verbosity=2)
