"""The pg sink on the Kafka log (librdkafka's mock cluster) into a real PostgreSQL: events
posted to sluice arrive once; records another producer puts on the topic (kcat) are read as
untrusted: one without event_id (as the reference API writes them) is stored under an id
made from its partition and offset, one that is not JSON becomes a dead letter with the
parser's reason; after the sink is killed with SIGKILL and restarted, it resumes from its
offsets in PostgreSQL and nothing is lost or doubled."""

import datetime as dt
import json
import os
import re
import subprocess
import time

from harness import SLUICE, Checks, Server, event
from pgfixture import Postgres

checks = Checks("pg on kafka")
MOCK = os.environ.get("SLUICE_KAFKA_MOCK") or os.path.join(os.path.dirname(SLUICE),
                                                            "sluice-kafka-mock")


class Mock:
    """sluice-kafka-mock with one broker and a 4-partition topic (test_kafka.py drives the
    same tool with failure injection; this test needs only its address)."""

    def __enter__(self):
        self.proc = subprocess.Popen([MOCK, "--brokers", "1", "--partitions", "4", "--topic",
                                      "analytics-events"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        m = re.match(r"bootstrap=(\S+)", self.proc.stdout.readline())
        if not m:
            self.proc.kill()
            raise RuntimeError("sluice-kafka-mock did not start")
        self.bootstrap = m.group(1)
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(10)


def kafka_server(mock, extra):
    srv = Server(extra_args=extra)
    srv.log_uri = f"kafka://{mock.bootstrap}/analytics-events"
    return srv


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def wait_for(pg, sql, want, timeout=60):
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        got = pg.value(sql, retries=3)
        if got == want:
            break
        time.sleep(0.2)
    return got


def main():
    with Postgres() as pg, Mock() as mock:
        # a killed member leaves the group after 6 s, not librdkafka's default 45 s
        extra = ["--pg", pg.uri, "--pg-linger", "50ms", "--kafka-opt", "session.timeout.ms=6000",
                 "--kafka-opt", "heartbeat.interval.ms=500"]
        srv = kafka_server(mock, extra).start()
        sent = []
        now = dt.datetime.now(dt.timezone.utc)
        for _ in range(4):
            batch = [event(timestamp=iso(now)) for _ in range(50)]
            status, body = srv.post(batch)
            checks.check(status == 200, f"posted to the kafka log ({status})")
            sent += [e["event_id"] for e in batch]
        got = wait_for(pg, "SELECT count(*) FROM analytics_events", "200")
        checks.check(got == "200", f"200 posted events stored ({got})")

        # Not RFC 3339 but a time PostgreSQL reads: the sink cannot carry it in the ids'
        # binary COPY, so the statement inserts the batch's ids.
        foreign = {"timestamp": now.strftime("%Y-%m-%d %H:%M:%S.%f+00"), "channel": "web",
                   "event_type": "page_view", "session_id": "ref-session", "page": "/home"}
        lines = json.dumps(foreign) + "\n" + "this is not json\n"
        r = subprocess.run(["kcat", "-P", "-b", mock.bootstrap, "-t", "analytics-events",
                            "-k", "ref-session"], input=lines, text=True, capture_output=True,
                           timeout=60)
        checks.check(r.returncode == 0, f"kcat produced two foreign records: {r.stderr}")
        got = wait_for(pg, "SELECT count(*) FROM sluice_dead_letters", "1")
        checks.check(got == "1", f"the record that is not JSON is a dead letter ({got})")
        dead = pg.query("SELECT error, convert_from(payload, 'UTF8') FROM sluice_dead_letters")
        checks.check(dead and dead[0][0].startswith("record is not JSON") and
                     dead[0][1] == "this is not json",
                     f"the dead letter keeps the parser's reason and the bytes: {dead}")
        ids = pg.query("SELECT event_id FROM analytics_events WHERE session_id = 'ref-session'")
        checks.check(len(ids) == 1 and ids[0][0].startswith("sluice:"),
                     f"the foreign event without event_id is stored once, id from its "
                     f"position: {ids}")
        ts = pg.value("SELECT \"timestamp\" = %s::timestamptz FROM analytics_events"
                      " WHERE session_id = 'ref-session'" % repr(foreign["timestamp"]))
        checks.check(ts == "t", f"the foreign event's time is PostgreSQL's reading ({ts})")
        # Every stored id, by binary COPY or by the statement, carries its row's time.
        off = pg.value("SELECT count(*) FROM analytics_events a JOIN sluice_event_ids i"
                       " USING (event_id) WHERE i.\"timestamp\" = a.\"timestamp\"")
        checks.check(off == "201", f"the 201 ids have their rows' times ({off})")

        srv.kill()
        srv = kafka_server(mock, extra).start()
        batch = [event(timestamp=iso(now)) for _ in range(100)]
        status, _ = srv.post(batch)
        checks.check(status == 200, "posted after the restart")
        sent += [e["event_id"] for e in batch]
        got = wait_for(pg, "SELECT count(*) FROM analytics_events", "301")
        checks.check(got == "301", f"after a SIGKILL and a restart: 301 rows ({got})")
        stored = {r[0] for r in pg.query("SELECT event_id FROM analytics_events")}
        checks.check(set(sent) <= stored and
                     pg.value("SELECT count(DISTINCT event_id) FROM analytics_events") == "301",
                     "every posted event once, no duplicates")
        checks.check(pg.value("SELECT count(*) FROM sluice_dead_letters") == "1",
                     "the dead letter is not written twice")
        checks.check(srv.stop() == 0, "clean stop")
    checks.finish()


main()
