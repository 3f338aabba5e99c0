"""The Kafka log backend against librdkafka's mock cluster (sluice-kafka-mock): the wire
format read back with kcat (key, value, murmur2 partition), broker failures (no acked event
lost, every other one answered 503 in time), two servers on one topic, and a consumer group
rebalancing after a SIGKILL (sluice-test-consumer)."""

import json
import os
import re
import signal
import subprocess
import threading
import time

from harness import SLUICE, Checks, Server, event

checks = Checks("kafka")
HERE = os.path.dirname(os.path.abspath(__file__))
MOCK = os.environ.get("SLUICE_KAFKA_MOCK") or os.path.join(os.path.dirname(SLUICE),
                                                            "sluice-kafka-mock")
CONSUMER = os.environ.get("SLUICE_TEST_CONSUMER") or os.path.join(os.path.dirname(SLUICE),
                                                                   "sluice-test-consumer")
TOPIC = "analytics-events"
PARTITIONS = 4
TIMEOUT_MS = 3000  # message.timeout.ms for the failure tests
GROUP_OPTS = ["session.timeout.ms=6000", "heartbeat.interval.ms=500"]


class Mock:
    """A running sluice-kafka-mock; .cmd() sends one stdin command and waits for its ok."""

    def __init__(self, brokers=1, partitions=PARTITIONS):
        self.proc = subprocess.Popen([MOCK, "--brokers", str(brokers), "--partitions",
                                      str(partitions), "--topic", TOPIC],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"bootstrap=(\S+)", line)
        if not m:
            raise RuntimeError("mock did not start: " + line)
        self.bootstrap = m.group(1)
        self.uri = f"kafka://{self.bootstrap}/{TOPIC}"

    def cmd(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if answer != "ok":
            raise RuntimeError(f"mock command {text!r}: {answer}")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.stop()


def kafka_server(mock, *extra):
    srv = Server(extra_args=[*(a for o in extra for a in ("--kafka-opt", o))])
    srv.log_uri = mock.uri
    return srv


def kcat(mock):
    out = subprocess.run(["kcat", "-C", "-b", mock.bootstrap, "-t", TOPIC, "-f", "%p %k %s\n",
                          "-e", "-q"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError("kcat failed: " + out.stderr)
    rows = []
    for line in out.stdout.splitlines():
        p, k, v = line.split(" ", 2)
        rows.append((int(p), k, v))
    return rows


def murmur2(data):
    """Kafka's Utils.murmur2 (Java), from its definition: 32-bit ints that wrap."""
    m, r = 0x5bd1e995, 24
    length = len(data)
    h = (0x9747b28c ^ length) & 0xffffffff
    for i in range(length // 4):
        k = int.from_bytes(data[i * 4:i * 4 + 4], "little")
        k = (k * m) & 0xffffffff
        k ^= k >> r
        k = (k * m) & 0xffffffff
        h = (h * m) & 0xffffffff
        h ^= k
    tail = length & ~3
    rest = length % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    h ^= h >> 15
    return h


def kafka_partition(key, n):
    return (murmur2(key.encode()) & 0x7fffffff) % n


def wire_format():
    with Mock() as mock, kafka_server(mock) as srv, Server() as emb:
        sent = [event()]
        status, a = srv.post(sent[0])
        checks.check(status == 200 and a["accepted"] == 1, f"single event: {status} {a}")
        batch = [event() for _ in range(20)]
        status, a = srv.post(batch)
        checks.check(status == 200 and a["accepted"] == 20, f"batch: {status} {a}")
        sent += batch
        # The same event through the embedded log gives the reference set of keys.
        ref = event()
        emb.post(ref)
        ref_keys = list(emb.read_log()[0].keys())

        rows = kcat(mock)
        checks.check(len(rows) == len(sent), f"kcat reads {len(rows)} of {len(sent)} events")
        by_id = {json.loads(v)["event_id"]: (p, k, v) for p, k, v in rows}
        for e in sent:
            got = by_id.get(e["event_id"])
            if not got:
                checks.check(False, f"event {e['event_id']} missing from kafka")
                continue
            p, k, v = got
            doc = json.loads(v)
            checks.check(k == e["session_id"], f"key {k!r} is the session_id {e['session_id']!r}")
            checks.check(list(doc.keys()) == ref_keys, f"value keys {list(doc.keys())}")
            checks.check(p == kafka_partition(k, PARTITIONS),
                         f"key {k} in partition {p}, murmur2 says {kafka_partition(k, PARTITIONS)}")
        # The value is exactly the normalized JSON: sluice log read on Kafka gives the same bytes.
        out = subprocess.run([SLUICE, "log", "read", "--log", mock.uri], capture_output=True,
                             text=True, timeout=60)
        checks.check(out.returncode == 0 and sorted(out.stdout.splitlines()) ==
                     sorted(v for _, _, v in rows), "sluice log read on kafka gives kcat's values")
        status, _, body = srv.request("GET", "/ready")
        checks.check(status == 200, f"ready while the broker is up: {status} {body}")


def post_timed(srv, events, results):
    t0 = time.monotonic()
    try:
        status, a = srv.post(events)
    except OSError as exc:
        status, a = None, str(exc)
    results.append((events, status, a, time.monotonic() - t0))


def failures():
    """Broker errors and a broker down: acked events are all in Kafka, the others got 503,
    and no request took longer than message.timeout.ms plus a margin."""
    with Mock() as mock, kafka_server(mock, f"message.timeout.ms={TIMEOUT_MS}") as srv:
        results = []
        # Retriable produce errors: the idempotent producer retries them, the events land.
        mock.cmd("errors Produce NOT_ENOUGH_REPLICAS 5")
        for _ in range(5):
            post_timed(srv, [event(), event()], results)
        checks.check(all(s == 200 for _, s, _, _ in results),
                     f"retried produce errors: {[s for _, s, _, _ in results]}")
        # The broker down for longer than the message timeout, traffic going on meanwhile.
        mock.cmd("down 1")
        threads = []
        for i in range(8):
            t = threading.Thread(target=post_timed, args=(srv, [event()], results))
            t.start()
            threads.append(t)
            time.sleep(0.1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, _, _ = srv.request("GET", "/ready")
            if status != 200:
                break
            time.sleep(0.2)
        checks.check(status == 503, f"/ready turns 503 while the broker is down: {status}")
        for t in threads:
            t.join(30)
        mock.cmd("up 1")
        # Deliveries succeed again and /ready recovers.
        ok_after = False
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not ok_after:
            r = []
            post_timed(srv, [event()], r)
            results += r
            ok_after = r[0][1] == 200
            if not ok_after:
                time.sleep(0.5)
        checks.check(ok_after, "events are accepted again once the broker is back")
        status, _, _ = srv.request("GET", "/ready")
        checks.check(status == 200, f"/ready is 200 again: {status}")

        # A request waiting on the down broker is answered about a second after
        # message.timeout.ms (sluice caps librdkafka's reconnect backoff at 1 s); 5 s of
        # margin for slow builds (ASan) and loaded machines.
        slow = [(s, round(d, 1)) for _, s, _, d in results if d > TIMEOUT_MS / 1000 + 5]
        checks.check(not slow, f"no request hangs past message.timeout.ms + 5 s: {slow}")
        bad = [s for _, s, _, _ in results if s not in (200, 503)]
        checks.check(not bad, f"every answer is 200 or 503: {bad}")
        refused = sum(1 for _, s, _, _ in results if s == 503)
        checks.check(refused > 0, "some events were refused while the broker was down")
        in_kafka = {json.loads(v)["event_id"] for _, _, v in kcat(mock)}
        acked = [e["event_id"] for evs, s, _, _ in results if s == 200 for e in evs]
        lost = [i for i in acked if i not in in_kafka]
        checks.check(not lost, f"no acknowledged event lost ({len(acked)} acked): {lost[:3]}")


def stop_while_waiting():
    """SIGTERM with no drain time while requests wait for a broker that is down: the server
    waits for the log to settle them (503 once message.timeout.ms passes) and exits 0,
    instead of tearing down connections still suspended (libmicrohttpd aborts on that)."""
    with Mock() as mock:
        srv = Server(extra_args=["--kafka-opt", f"message.timeout.ms={TIMEOUT_MS}",
                                 "--drain-timeout", "0"])
        srv.log_uri = mock.uri
        with srv:
            status, _ = srv.post([event()])
            checks.check(status == 200, f"stop_while_waiting: first event accepted: {status}")
            mock.cmd("down 1")
            results, threads = [], []
            for _ in range(4):
                t = threading.Thread(target=post_timed, args=(srv, [event()], results))
                t.start()
                threads.append(t)
            time.sleep(0.5)
            rc = srv.stop(timeout=60)
            for t in threads:
                t.join(30)
            checks.check(rc == 0, f"exit code {rc} after SIGTERM with requests waiting")
            # A connection not yet read when the server stopped is closed unanswered
            # (status None): the client saw no acknowledgement, which is allowed.
            answered = [st for _, st, _, _ in results if st is not None]
            checks.check(answered and all(st == 503 for st in answered),
                         f"the waiting requests got 503: {[(st, a) for _, st, a, _ in results]}")


def two_servers():
    with Mock() as mock, kafka_server(mock) as a, kafka_server(mock, ) as b:
        sent, results = [], []
        threads = []
        for srv in (a, b):
            for _ in range(4):
                evs = [event() for _ in range(25)]
                sent += evs
                t = threading.Thread(target=post_timed, args=(srv, evs, results))
                t.start()
                threads.append(t)
        for t in threads:
            t.join(60)
        checks.check(all(s == 200 for _, s, _, _ in results),
                     f"both servers accept: {[s for _, s, _, _ in results]}")
        got = {json.loads(v)["event_id"] for _, _, v in kcat(mock)}
        missing = [e["event_id"] for e in sent if e["event_id"] not in got]
        checks.check(not missing and len(got) == len(sent),
                     f"all {len(sent)} events from two servers arrive: {len(got)}, missing {len(missing)}")


class Consumer:
    """A test consumer process; on_change(self) runs after every assign or revoke, under
    a lock shared by all consumers, so a test can judge the group's state at each step."""

    changes = threading.Lock()

    def __init__(self, uri, group, on_change=None):
        self.proc = subprocess.Popen([CONSUMER, uri, group, *GROUP_OPTS], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.assigned = set()
        self.on_change = on_change
        threading.Thread(target=self.pump, daemon=True).start()

    def pump(self):
        for line in self.proc.stdout:
            line = line.strip()
            self.lines.append(line)
            word, _, rest = line.partition(" ")
            if word not in ("assign", "revoke"):
                continue
            with Consumer.changes:
                parts = {int(p) for p in rest.split(",") if p}
                if word == "assign":
                    self.assigned |= parts
                else:
                    self.assigned -= parts
                if self.on_change:
                    self.on_change(self)

    def msgs(self):
        return [(int(l.split()[1]), int(l.split()[2])) for l in self.lines if l.startswith("msg ")]


def wait_for(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def group_rebalance():
    with Mock() as mock, kafka_server(mock) as srv:
        sent = [event() for _ in range(60)]
        srv.post(sent[:30])
        # The split is judged at every assignment change, not by sampling: the mock
        # cluster sometimes rebalances again soon after, which a 100 ms poll can miss.
        consumers, split_seen = [], threading.Event()

        def judge(_):
            if len(consumers) == 2:
                x, y = (c.assigned for c in consumers)
                if x and y and x | y == set(range(PARTITIONS)) and not x & y:
                    split_seen.set()

        a = Consumer(mock.uri, "g-it", judge)
        b = Consumer(mock.uri, "g-it", judge)
        with Consumer.changes:
            consumers += [a, b]
            judge(None)
        try:
            split = split_seen.wait(60)
            checks.check(split, "two consumers split the partitions: {} {}; a: {}; b: {}".format(
                a.assigned, b.assigned,
                [l for l in a.lines if not l.startswith("msg ")][-8:],
                [l for l in b.lines if not l.startswith("msg ")][-8:]))
            wait_for(lambda: len(a.msgs()) + len(b.msgs()) >= 30, 20)
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait()
            srv.post(sent[30:])
            took_over = wait_for(lambda: b.assigned == set(range(PARTITIONS)), 30)
            checks.check(took_over, f"the survivor takes every partition: {b.assigned}")
            wait_for(lambda: len({m for m in a.msgs() + b.msgs()}) >= 60, 20)
        finally:
            b.proc.send_signal(signal.SIGTERM)
            b.proc.wait(30)
        seen = set(a.msgs()) | set(b.msgs())
        offsets = {}
        for p, o in seen:
            offsets.setdefault(p, set()).add(o)
        complete = all(offsets.get(p, set()) == set(range(len(offsets.get(p, ()))))
                       for p in range(PARTITIONS))
        checks.check(len(seen) == 60 and complete,
                     f"every event consumed, offsets without gaps: {len(seen)} of 60")
        # B resumed where A committed: for A's partitions, B's first offset is A's last
        # committed position (at most one uncommitted batch is read twice).
        a_commit = {}
        for l in a.lines:
            if l.startswith("commit "):
                for item in l.split()[1].split(","):
                    p, o = item.split(":")
                    a_commit[int(p)] = int(o)
        b_first = {}
        for p, o in b.msgs():
            b_first.setdefault(p, o)
        resumed = all(b_first.get(p, o) == o for p, o in a_commit.items())
        checks.check(resumed, f"offsets resume where committed: A {a_commit}, B first {b_first}")


wire_format()
failures()
two_servers()
stop_while_waiting()
group_rebalance()
checks.finish()
