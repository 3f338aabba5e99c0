"""The lake sink on the Kafka log (librdkafka's mock cluster, sluice-kafka-mock): events
posted through `--roles api` reach the Delta table exactly once while the separate
`--roles lake-sink` is SIGKILLed and restarted; the restarted consumer gets its partitions
through the group protocol and seeks them to the table's txn versions."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from harness import SLUICE, Checks, Server, event, node_packages
from lake_helpers import duckdb, file_path, history, replay, sql_str

checks = Checks("lake on kafka")
MOCK = os.environ.get("SLUICE_KAFKA_MOCK") or os.path.join(os.path.dirname(SLUICE),
                                                            "sluice-kafka-mock")
GROUP_OPTS = ["session.timeout.ms=6000", "heartbeat.interval.ms=500"]
EVENTS = 3000


def start_mock():
    """sluice-kafka-mock with one broker and 4 partitions; its first line names the
    bootstrap address (as test_kafka.py's Mock reads it)."""
    proc = subprocess.Popen([MOCK, "--brokers", "1", "--partitions", "4", "--topic",
                             "analytics-events"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    m = re.match(r"bootstrap=(\S+)", proc.stdout.readline())
    if not m:
        proc.kill()
        raise RuntimeError("sluice-kafka-mock did not start")
    return proc, f"kafka://{m.group(1)}/analytics-events"


def server(base, log_uri, args):
    srv = Server(log_dir=base, extra_args=[*args, *(a for o in GROUP_OPTS
                                                    for a in ("--kafka-opt", o))])
    srv.log_uri = log_uri
    return srv.start()


def main():
    node_packages()
    base = tempfile.mkdtemp(prefix="sluice-lake-kafka-")
    table = os.path.join(base, "lake")
    lake_uri = "file://" + table
    sink_args = ["--roles", "lake-sink", "--lake", lake_uri, "--lake-batch-interval", "300ms"]
    mock, api, sink = None, None, None
    try:
        mock, log_uri = start_mock()
        api = server(base, log_uri, ["--roles", "api"])
        sink = server(base, log_uri, sink_args)
        ids = []
        for i in range(0, EVENTS, 100):
            status, answer = api.post([event(session_id=f"s-{i + k}") for k in range(100)])
            checks.check(status == 200, f"post {i}: {status} {str(answer)[:200]}")
            ids += answer["eventIds"] if status == 200 else []
            if i in (1000, 2000):
                # Once the sink has committed something, kill it with a batch under way.
                deadline = time.time() + 60
                while time.time() < deadline and int(history(lake_uri)[-1]["rows"]) < i - 500:
                    time.sleep(0.2)
                status, answer = api.post([event() for _ in range(100)])
                ids += answer["eventIds"] if status == 200 else []
                sink.kill()
                print(f"killed the sink at {len(ids)} events posted, table: "
                      f"{history(lake_uri)[-1]}", flush=True)
                sink = server(base, log_uri, sink_args)
        deadline = time.time() + 180
        while time.time() < deadline and history(lake_uri)[-1]["rows"] != str(len(ids)):
            time.sleep(0.5)
        checks.check(sink.stop() == 0, "the lake sink exits 0 on SIGTERM")
        checks.check(api.stop() == 0, "the api exits 0 on SIGTERM")
        versions = replay(table)
        files = versions[-1]["files"]
        print(f"{len(versions)} versions, {len(files)} files", flush=True)
        res = duckdb(["SELECT event_id FROM read_parquet([" +
                      ", ".join(sql_str(file_path(table, a)) for a in files.values()) + "])"])
        got = [r["event_id"] for r in res[0]] if isinstance(res[0], list) else []
        checks.check(len(got) == len(ids) and set(got) == set(ids),
                     f"{len(got)} rows, {len(set(got))} distinct, for {len(ids)} events "
                     f"({len(set(ids) - set(got))} missing) in {len(versions)} versions")
    finally:
        for s in (sink, api):
            if s:
                s.kill()
        if mock:
            mock.send_signal(signal.SIGTERM)
            mock.wait(10)
        shutil.rmtree(base, ignore_errors=True)
    checks.finish()


main()
