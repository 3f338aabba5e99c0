"""The lake sink end to end, once per codec (snappy, zstd, none): events posted to
`sluice serve` land in the Delta table, and DuckDB, reading every data file the log lists,
returns exactly the events the log holds, column by column, nulls included, each in the
partition of its UTC date. An independent replay of the Delta log agrees, at every
version, with `sluice lake history`; each add's numRecords is DuckDB's count of its file."""

import datetime
import json
import os
import shutil
import subprocess
import tempfile
import time

from harness import DROP, SLUICE, Checks, Server, event, node_packages, read_log
from lake_helpers import (duckdb, file_path, history, replay, rows_of,
                          sql_str)

checks = Checks("lake")
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
STRING_COLS = ["event_id", "channel", "platform", "event_type", "event_category", "resource_id",
               "resource_title", "interaction_target", "session_id", "user_id", "device_id",
               "user_agent", "client_version", "interaction_text", "metadata"]
CODECS = {"snappy": "SNAPPY", "zstd": "ZSTD", "none": "UNCOMPRESSED"}


def to_us(rfc3339):
    dt = datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    return (dt - EPOCH) // datetime.timedelta(microseconds=1)


def events():
    """Events that exercise every column: nulls, empty and long strings, non-ASCII, numbers
    of every shape, nested metadata, times on several dates (the epoch itself among them)."""
    out = []
    stamps = ["2024-01-15T10:30:00.123456Z", "2024-01-15T23:59:59.999999Z",
              "2024-01-16T00:00:00Z", "2024-02-29T12:00:00.5+02:00",
              "1970-01-01T00:00:00Z", "2026-11-23T08:00:00.001Z"]
    for i in range(240):
        kind = i % 8
        e = event(timestamp=stamps[i % len(stamps)], session_id=f"sess-{i % 17}")
        if kind == 1:  # every optional field absent: nulls
            for f in ["platform", "event_category", "resource_id", "resource_title",
                      "interaction_target", "user_id", "device_id", "client_version",
                      "interaction_value", "metadata"]:
                e[f] = DROP
            e = event(**{k: v for k, v in e.items()})
        elif kind == 2:
            e.update(resource_title="", interaction_text="", interaction_value=3,
                     metadata={})
        elif kind == 3:
            e.update(channel="chat", resource_title="Grüße, 世界 🎉", interaction_value=-0.1,
                     interaction_text="ñ" * 3000, metadata={"ключ": "значение", "n": None})
        elif kind == 4:
            e.update(interaction_value=1e300, metadata={"a": {"b": [1, 2.5, True, None]},
                                                        "x": 0.1})
        elif kind == 5:
            e.update(channel="agent", event_type="tool_call", user_agent="agent/1.0",
                     interaction_text="line1\nline2\t\"quoted\" \\ backslash")
        elif kind == 6:
            e.update(interaction_value=0, metadata={"big": 9007199254740993})
        out.append(e)
    return out


def post_all(srv, evs):
    ids = []
    for i in range(0, len(evs), 40):
        status, answer = srv.post(evs[i:i + 40])
        checks.check(status == 200 and answer["accepted"] == len(evs[i:i + 40]),
                     f"post batch {i}: {status} {str(answer)[:300]}")
        ids += answer["eventIds"]
    return ids


def wait_rows(lake_uri, want, timeout=120):
    deadline = time.time() + timeout
    rows = None
    while time.time() < deadline:
        h = history(lake_uri)
        rows = int(h[-1]["rows"]) if h and h[-1]["rows"] != "-" else None
        if rows == want:
            return True
        time.sleep(0.2)
    print(f"table has {rows} rows, waited for {want}", flush=True)
    return False


def check_codec(codec):
    base = tempfile.mkdtemp(prefix=f"sluice-lake-{codec}-")
    try:
        table = os.path.join(base, "lake")
        lake_uri = "file://" + table
        args = ["--lake", lake_uri, "--lake-codec", codec, "--lake-batch-interval", "300ms",
                "--lake-batch-rows", "100"]
        evs = events()
        with Server(log_dir=base, extra_args=args) as srv:
            ids = post_all(srv, evs[:120])
            checks.check(wait_rows(lake_uri, 120), f"{codec}: first 120 events in the table")
            ids += post_all(srv, evs[120:])
            checks.check(wait_rows(lake_uri, len(evs)), f"{codec}: all events in the table")
            status, _, body = srv.request("GET", "/ready")
            checks.check(status == 200, f"{codec}: /ready {status} {body!r}")
            status, _, body = srv.request("GET", "/metrics")
            checks.check(f"sluice_lake_events_total {len(evs)}".encode() in body,
                         f"{codec}: sluice_lake_events_total in /metrics")
            checks.check(srv.stop() == 0, f"{codec}: sluice exits 0")
            logged = {e["event_id"]: e for e in srv.read_log()}
        checks.check(sorted(logged) == sorted(ids), f"{codec}: the log holds the posted events")

        versions = replay(table)
        latest = versions[-1]["files"]
        files = {p: file_path(table, a) for p, a in latest.items()}
        for p in files:
            checks.check(p.endswith({"snappy": ".snappy.parquet", "zstd": ".zstd.parquet",
                                     "none": ".parquet"}[codec]), f"{codec}: file name {p}")
        cols = ", ".join(["epoch_us(timestamp) AS ts", "epoch_us(received_at) AS ra",
                          "interaction_value"] + STRING_COLS)
        queries = [f"SELECT {cols}, filename FROM read_parquet([{', '.join(map(sql_str, files.values()))}], filename=true)",
                   f"SELECT DISTINCT compression FROM parquet_metadata([{', '.join(map(sql_str, files.values()))}])"]
        all_files = sorted({a["path"]: file_path(table, a) for v in versions
                            for a in v["files"].values()}.items())
        queries += [f"SELECT count(*) AS n FROM read_parquet({sql_str(f)})" for _, f in all_files]
        res = duckdb(queries)
        for r in res:
            checks.check(not (isinstance(r, dict) and "error" in r), f"{codec}: duckdb: {r}")
        rows, compression = res[0], res[1]
        counts = {p: int(r[0]["n"]) for (p, _), r in zip(all_files, res[2:])}
        checks.check([r["compression"] for r in compression] == [CODECS[codec]],
                     f"{codec}: compression {compression}")

        # Column by column, nulls included; each row in the partition of its UTC date.
        by_id = {}
        for r in rows:
            checks.check(r["event_id"] not in by_id, f"{codec}: {r['event_id']} twice")
            by_id[r["event_id"]] = r
        checks.check(sorted(by_id) == sorted(logged), f"{codec}: DuckDB returns the logged ids")
        path_of = {f: p for p, f in files.items()}
        bad = 0
        for eid, want in logged.items():
            got = by_id.get(eid)
            if got is None:
                continue
            diffs = []
            if int(got["ts"]) != to_us(want["timestamp"]):
                diffs.append(("timestamp", got["ts"], want["timestamp"]))
            if int(got["ra"]) != to_us(want["received_at"]):
                diffs.append(("received_at", got["ra"], want["received_at"]))
            if got["interaction_value"] != want["interaction_value"]:
                diffs.append(("interaction_value", got["interaction_value"],
                              want["interaction_value"]))
            for c in STRING_COLS:
                w = want[c]
                if c == "metadata":
                    if json.loads(got[c]) != w:
                        diffs.append((c, got[c], w))
                elif got[c] != w:
                    diffs.append((c, got[c], w))
            add = latest[path_of[got["filename"]]]
            day = (EPOCH + datetime.timedelta(microseconds=to_us(want["timestamp"]))).date()
            if add["partitionValues"] != {"event_date": day.isoformat()}:
                diffs.append(("event_date", add["partitionValues"], day.isoformat()))
            if diffs:
                bad += 1
                if bad <= 5:
                    print(f"{codec}: {eid} differs: {diffs}", flush=True)
        checks.check(bad == 0, f"{codec}: {bad} events differ from the log")

        # The replay against `sluice lake history`, version by version.
        h = history(lake_uri)
        checks.check(len(h) == len(versions) and len(versions) >= 3,
                     f"{codec}: {len(h)} history lines, {len(versions)} versions")
        for v, line in zip(versions, h):
            want_rows = sum(counts[p] for p in v["files"])
            stats_rows = sum(rows_of(a) for a in v["files"].values())
            checks.check(line["version"] == v["version"] and line["files"] == len(v["files"])
                         and line["rows"] == str(want_rows) and stats_rows == want_rows
                         and line["operation"] == v["operation"],
                         f"{codec}: version {v['version']}: history {line}, replay "
                         f"{len(v['files'])} files {want_rows} rows (stats {stats_rows})")
        checks.check(versions[0]["operation"] == "CREATE TABLE" and not versions[0]["files"],
                     f"{codec}: version 0 creates the table")

        # A restart reads the txn versions back: nothing is written twice, even with the
        # group's log offsets moved behind the table (as a kill between the Delta commit
        # and the offset commit leaves them): `log read --group` rewinds the first
        # partition it prints to offset 1.
        before = len(versions)
        rewound = read_log("file://" + os.path.join(base, "log"), "--group", "sluice-lake",
                           "--from-beginning", "--max", "1")
        checks.check(len(rewound) == 1, f"{codec}: group offsets rewound")
        with Server(log_dir=base, extra_args=args) as srv:
            time.sleep(1.5)
            checks.check(srv.stop() == 0, f"{codec}: restarted sluice exits 0")
        checks.check(len(replay(table)) == before, f"{codec}: a restart adds no version")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def check_refusals():
    base = tempfile.mkdtemp(prefix="sluice-lake-refuse-")
    try:
        # A Delta table that is not an event table is refused, not appended to.
        table = os.path.join(base, "other")
        shutil.copytree(os.path.join(os.environ["SLUICE_SHARED_DATA"], "delta-kernel-tests",
                                     "app-txn-no-checkpoint"), table)
        for lake, words in [("file://" + table, "is not an event table"),
                            ("s3://bucket/events", "needs credentials"),
                            ("http://x/y", "is not a file://DIR or s3://BUCKET/PREFIX URI")]:
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            out = subprocess.run([SLUICE, "serve", "--listen", "127.0.0.1:0", "--roles",
                                  "lake-sink", "--log", "file://" + os.path.join(base, "log"),
                                  "--lake", lake], capture_output=True, text=True, timeout=60,
                                 env=env)
            checks.check(out.returncode == 1 and words in out.stderr,
                         f"serve with --lake {lake}: {out.returncode} {out.stderr[-300:]}")
        out = subprocess.run([SLUICE, "serve", "--lake-codec", "lz4"], capture_output=True,
                             text=True, timeout=60)
        checks.check(out.returncode == 2 and "not snappy, zstd or none" in out.stderr,
                     f"--lake-codec lz4: {out.returncode} {out.stderr}")
        out = subprocess.run([SLUICE, "lake", "history", "--lake",
                              "file://" + os.path.join(base, "nothing")],
                             capture_output=True, text=True, timeout=60)
        checks.check(out.returncode == 1 and "no Delta table" in out.stderr,
                     f"history of nothing: {out.returncode} {out.stderr}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def check_commit_failure():
    """A commit that cannot be written abandons the batch, turns /ready to 503 with the
    reason, and is retried: once the obstacle is gone every event lands exactly once. The
    obstacle: a directory squatting on the next version's name (link() finds it taken, and
    re-reading the table fails on it), which stops even root."""
    base = tempfile.mkdtemp(prefix="sluice-lake-fail-")
    try:
        table = os.path.join(base, "lake")
        lake_uri = "file://" + table
        args = ["--lake", lake_uri, "--lake-batch-interval", "200ms"]
        evs = events()[:60]
        with Server(log_dir=base, extra_args=args) as srv:
            ids = post_all(srv, evs[:30])
            checks.check(wait_rows(lake_uri, 30), "failure: first events in the table")
            squat = os.path.join(table, "_delta_log", "%020d.json" % len(replay(table)))
            os.mkdir(squat)
            ids += post_all(srv, evs[30:])
            deadline, status, body = time.time() + 30, 200, b""
            while time.time() < deadline and status == 200:
                status, _, body = srv.request("GET", "/ready")
                time.sleep(0.1)
            checks.check(status == 503 and b"lake-sink" in body and b"commit" in body,
                         f"failure: /ready {status} {body[:300]!r}")
            os.rmdir(squat)
            checks.check(wait_rows(lake_uri, 60), "failure: all events in the table after")
            status, _, body = srv.request("GET", "/ready")
            checks.check(status == 200, f"failure: /ready after recovery {status} {body!r}")
            status, _, body = srv.request("GET", "/metrics")
            checks.check(b"sluice_lake_failures_total 0" not in body,
                         "failure: sluice_lake_failures_total counts the abandoned batches")
            checks.check(srv.stop() == 0, "failure: sluice exits 0")
        files = replay(table)[-1]["files"]
        res = duckdb(["SELECT event_id FROM read_parquet([" +
                      ", ".join(sql_str(file_path(table, a)) for a in files.values()) + "])"])
        got = [r["event_id"] for r in res[0]]
        checks.check(sorted(got) == sorted(ids), f"failure: {len(got)} rows for {len(ids)} events")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def check_log_replaced():
    """A new log beside a kept table (var/log wiped, var/lake kept): the table's offsets
    name the log they count in, so the sink reads the new log from its beginning instead
    of skipping as many of its events per partition as the table held of the old one."""
    base = tempfile.mkdtemp(prefix="sluice-lake-newlog-")
    try:
        table = os.path.join(base, "lake")
        lake_uri = "file://" + table
        args = ["--lake", lake_uri, "--lake-batch-interval", "200ms"]
        evs = events()
        ids = []
        for name, part, total in (("old", evs[:120], 120), ("new", evs[120:160], 160)):
            log_dir = os.path.join(base, name)
            os.mkdir(log_dir)
            with Server(log_dir=log_dir, extra_args=args) as srv:
                ids += post_all(srv, part)
                checks.check(wait_rows(lake_uri, total, timeout=60),
                             f"new log: the {name} log's events all in the table")
        files = replay(table)[-1]["files"]
        res = duckdb(["SELECT event_id FROM read_parquet([" +
                      ", ".join(sql_str(file_path(table, a)) for a in files.values()) + "])"])
        got = [r["event_id"] for r in res[0]]
        checks.check(sorted(got) == sorted(ids),
                     f"new log: {len(got)} rows for {len(ids)} events, each once")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main():
    node_packages()
    check_log_replaced()
    check_commit_failure()
    check_refusals()
    for codec in CODECS:
        check_codec(codec)
    checks.finish()


main()
