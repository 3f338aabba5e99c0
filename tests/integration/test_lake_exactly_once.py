"""Exactly-once into the lake under failure: 100,000 events are posted to `sluice serve
--roles api` while a separate `sluice serve --roles lake-sink` on the same embedded log is
killed with SIGKILL at random moments, several times, and restarted. At the end the table's
latest version holds each acknowledged event exactly once, and every version the log ever
had is readable by DuckDB with the row count its adds state."""

import json
import os
import random
import shutil
import tempfile
import threading
import time

from harness import Checks, Server, event, node_packages
from lake_helpers import (duckdb, file_path, history, replay, rows_of,
                          sql_str)

EVENTS = 100_000
PER_REQUEST = 500
KILLS = 6
STAMPS = ["2026-11-21T08:00:00.250Z", "2026-11-22T12:30:00Z", "2026-11-23T23:59:59.999Z"]

checks = Checks("lake exactly-once")


def poster(srv, acked, done):
    rnd = random.Random(7)
    conn = srv.conn()
    for i in range(0, EVENTS, PER_REQUEST):
        evs = [event(timestamp=STAMPS[(i + k) % 3], session_id=f"s-{rnd.randrange(5000)}")
               for k in range(PER_REQUEST)]
        status, answer = srv.post(evs, conn=conn)
        if status != 200 or answer["accepted"] != PER_REQUEST:
            checks.check(False, f"post {i}: {status} {str(answer)[:200]}")
            break
        acked.extend(answer["eventIds"])
        time.sleep(0.05)  # events flow for a while, so the kills land mid-stream
    conn.close()
    done.set()


def main():
    node_packages()
    base = tempfile.mkdtemp(prefix="sluice-lake-once-")
    table = os.path.join(base, "lake")
    lake_uri = "file://" + table
    sink_args = ["--roles", "lake-sink", "--lake", lake_uri, "--lake-batch-interval", "300ms",
                 "--lake-batch-rows", "4000"]
    api = sink = None
    try:
        api = Server(log_dir=base, extra_args=["--roles", "api"]).start()
        sink = Server(log_dir=base, extra_args=sink_args).start()
        acked, done = [], threading.Event()
        t = threading.Thread(target=poster, args=(api, acked, done))
        t.start()
        rnd = random.Random()
        for k in range(KILLS):
            time.sleep(rnd.uniform(0.5, 3.0))
            sink.kill()  # SIGKILL
            print(f"kill {k + 1}: {len(acked)} events acknowledged, table at version "
                  f"{history(lake_uri)[-1]['version']}", flush=True)
            sink = Server(log_dir=base, extra_args=sink_args).start()
        t.join()
        checks.check(len(acked) == EVENTS, f"{len(acked)} of {EVENTS} events acknowledged")
        deadline = time.time() + 300
        while time.time() < deadline and history(lake_uri)[-1]["rows"] != str(len(acked)):
            time.sleep(0.5)
        checks.check(sink.stop() == 0, "the lake sink exits 0 on SIGTERM")
        checks.check(api.stop() == 0, "the api exits 0 on SIGTERM")

        versions = replay(table)
        latest = versions[-1]["files"]
        print(f"{len(versions)} versions, {len(latest)} files at the latest", flush=True)
        every = sorted({a["path"]: file_path(table, a) for v in versions
                        for a in v["files"].values()}.values())
        on_disk = sum(len([n for n in files if n.endswith(".parquet")])
                      for _, _, files in os.walk(table))
        print(f"{len(every)} files ever committed, {on_disk} on disk (the rest were written "
              f"by a killed sink and never committed)", flush=True)
        lst = "[" + ", ".join(sql_str(f) for f in latest_paths(table, latest)) + "]"
        queries = [
            f"SELECT event_id FROM read_parquet({lst})",
            f"SELECT count(*) AS n FROM (SELECT event_id FROM read_parquet({lst}) "
            f"GROUP BY event_id HAVING count(*) > 1)",
            # Every file ever committed, read whole (not only its footer).
            "SELECT count(*) AS n, count(event_id) AS ids, sum(length(metadata)) AS m, "
            "sum(epoch_us(timestamp)) AS ts FROM read_parquet([" +
            ", ".join(sql_str(f) for f in every) + "])",
        ]
        for v in versions[1:]:
            files = latest_paths(table, v["files"])
            queries.append("SELECT count(*) AS n FROM read_parquet([" +
                           ", ".join(sql_str(f) for f in files) + "])" if files else
                           "SELECT 0 AS n")
        res = duckdb(queries)
        errors = [r for r in res if isinstance(r, dict)]
        checks.check(not errors, f"DuckDB read every version: {errors[:3]}")
        if not errors:
            ids = [r["event_id"] for r in res[0]]
            checks.check(len(ids) == len(acked) and set(ids) == set(acked),
                         f"latest version holds {len(ids)} rows, {len(set(ids))} distinct, "
                         f"for {len(acked)} acknowledged events "
                         f"({len(set(acked) - set(ids))} missing)")
            checks.check(int(res[1][0]["n"]) == 0, f"{res[1][0]['n']} event ids twice or more")
            whole = res[2][0]
            checks.check(int(whole["n"]) == int(whole["ids"]) and int(whole["n"]) > 0,
                         f"every committed file read whole: {whole}")
            for v, r in zip(versions[1:], res[3:]):
                want = sum(rows_of(a) for a in v["files"].values())
                checks.check(int(r[0]["n"]) == want,
                             f"version {v['version']}: DuckDB reads {r[0]['n']} rows, its adds "
                             f"say {want}")
        h = history(lake_uri)
        checks.check([x["rows"] for x in h] ==
                     [str(sum(rows_of(a) for a in v["files"].values())) for v in versions],
                     "sluice lake history matches the replay at every version")
    finally:
        for s in (sink, api):
            if s:
                s.kill()
        shutil.rmtree(base, ignore_errors=True)
    checks.finish()


def latest_paths(table, files):
    return sorted(file_path(table, a) for a in files.values())


main()
