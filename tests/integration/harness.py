"""Shared helpers for integration tests: start a real `sluice serve` on 127.0.0.1 with a
free port and a temporary log, talk HTTP to it, read its log back with `sluice log read`.
Standard library only; the binary comes from $SLUICE_BIN (set by CTest)."""

import atexit
import fcntl
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

SLUICE = os.environ.get("SLUICE_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "sluice")


def event(**overrides):
    """A realistic valid event; keyword arguments override or add fields."""
    e = {
        "event_id": str(uuid.uuid4()),
        "timestamp": "2026-11-23T10:15:30.123Z",
        "channel": "web",
        "platform": "web-desktop",
        "event_type": "page_view",
        "event_category": "navigation",
        "resource_id": "https://shop.example.com/products/42",
        "resource_title": "Blue kettle",
        "interaction_target": "nav-products",
        "session_id": "sess-" + uuid.uuid4().hex[:12],
        "user_id": "user-1234",
        "device_id": "dev-9f8e",
        "client_version": "3.2.1",
        "interaction_value": 1.5,
        "metadata": {"referrer": "https://search.example.com", "viewport": [1440, 900]},
    }
    for k, v in overrides.items():
        if v is DROP:
            e.pop(k, None)
        else:
            e[k] = v
    return e


DROP = object()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running `sluice serve`. Use as a context manager; .stop() sends SIGTERM. A server
    given no log_dir makes its own, removed when the context ends or, for one started
    without a context, when the test exits (its process killed first if still running)."""

    def __init__(self, log_dir=None, extra_args=(), env=None):
        self.own_dir = log_dir is None
        self.dir = log_dir or tempfile.mkdtemp(prefix="sluice-it-")
        if self.own_dir:
            atexit.register(self._remove_own_dir)
        self.log_uri = "file://" + os.path.join(self.dir, "log")
        self.extra_args = list(extra_args)
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.port = None
        self.stderr_lines = []

    def start(self, timeout=30):
        args = [SLUICE, "serve", "--listen", "127.0.0.1:0", "--log", self.log_uri,
                *self.extra_args]
        if not any(a == "--lake" or a.startswith("--lake=") for a in self.extra_args):
            # The lake sink (in the default roles) keeps its table beside the log, not in
            # the working directory where every test's sinks would share one.
            args += ["--lake", "file://" + os.path.join(self.dir, "lake")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=self.env, text=True)
        ready = threading.Event()

        def pump():
            for line in self.proc.stderr:
                self.stderr_lines.append(line)
                m = re.search(r'msg="listening" url=http://[^ ]+:(\d+)', line)
                if m:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout) or self.port is None:
            self.kill()
            raise RuntimeError("sluice did not start:\n" + "".join(self.stderr_lines))
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.stop()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _remove_own_dir(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def stop(self, timeout=30):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        if rc != 0:
            time.sleep(0.2)  # let the reader thread collect the last lines
            print(f"sluice exited {rc}; its last stderr lines:\n" +
                  "".join(self.stderr_lines[-15:]), flush=True)
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None):
        """Returns (status, headers dict, body bytes)."""
        c = conn or self.conn()
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            elif isinstance(body, str):
                body = body.encode()
            h = {"Content-Type": "application/json"} if body is not None else {}
            h.update(headers or {})
            c.request(method, path, body=body, headers={k: v for k, v in h.items() if v is not None})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            if conn is None:
                c.close()

    def post(self, body, headers=None, conn=None):
        status, hdrs, data = self.request("POST", "/analytics", body, headers, conn)
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data
        return status, parsed

    def raw_exchange(self, head, body=b""):
        """Sends bytes as they are and reads one answer: (status, body bytes). For requests
        http.client cannot make, such as headers announcing a body that is never sent."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        try:
            s.sendall(head + body)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            head_end = data.index(b"\r\n\r\n") + 4
            status = int(data.split(b" ", 2)[1])
            m = re.search(rb"(?i)content-length: *(\d+)", data[:head_end])
            length = int(m.group(1)) if m else 0
            while len(data) < head_end + length:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return status, data[head_end:head_end + length]
        finally:
            s.close()

    def read_log(self, *args):
        return read_log(self.log_uri, *args)


def read_log(log_uri, *args):
    out = subprocess.run([SLUICE, "log", "read", "--log", log_uri, *args], capture_output=True,
                         text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError("sluice log read failed: " + out.stderr)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


class Checks:
    """Collects failures so a table-driven test reports every failing row, not the first."""

    def __init__(self, name):
        self.name = name
        self.failures = []
        self.passed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failures.append(what)
            print("FAIL:", what, flush=True)

    def finish(self):
        print(f"{self.name}: {self.passed} passed, {len(self.failures)} failed", flush=True)
        sys.exit(1 if self.failures else 0)


NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "node")


def node_packages():
    """The independent readers of tests/node (DuckDB, hyparquet) at the committed lock's
    versions, installed once if `make node-deps` has not (a file lock guards parallel
    tests)."""
    marker = os.path.join(NODE_DIR, "node_modules", "@duckdb", "node-api")
    if os.path.isdir(marker):
        return
    with open(os.path.join(NODE_DIR, "package.json")) as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        if not os.path.isdir(marker):
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                           check=True, stdout=subprocess.DEVNULL, timeout=600)
