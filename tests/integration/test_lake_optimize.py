"""Compaction of the lake (`sluice lake optimize` and the sink's own): the small files of a
date partition are rewritten into one, in a commit that removes them and adds it with
dataChange=false. DuckDB, reading the files each version lists (an independent replay of
the Delta log), must return every event exactly once, column for column the same, in the
version before the compaction and in the one after; a compaction racing the sink's
appends or another compaction must not lose or double a row."""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse

from harness import SLUICE, Checks, Server, event
from lake_helpers import duckdb, file_path, history, replay, sql_str

checks = Checks("lake_optimize")
DATES = ["2026-11-20", "2026-11-21", "2026-11-22"]
COLS = ("event_id, channel, platform, event_type, event_category, resource_id, resource_title,"
        " interaction_target, session_id, user_id, device_id, user_agent, client_version,"
        " interaction_text, metadata, interaction_value, epoch_us(timestamp) AS ts,"
        " epoch_us(received_at) AS ra")


def optimize(lake_uri, *args):
    return subprocess.run([SLUICE, "lake", "optimize", "--lake", lake_uri, *args],
                          capture_output=True, text=True, timeout=300)


def post_rounds(srv, rounds, per_date=5, pause=0.12, posted=None):
    """Posts `rounds` small batches spread over DATES, pausing so the sink commits often."""
    posted = [] if posted is None else posted
    for i in range(rounds):
        evs = [event(timestamp=f"{d}T{10 + i % 10:02d}:00:00Z",
                     interaction_value=i * 0.5, metadata={"round": i, "d": d})
               for d in DATES for _ in range(per_date)]
        status, answer = srv.post(evs)
        checks.check(status == 200, f"post round {i}: {status} {str(answer)[:200]}")
        posted += answer.get("eventIds", [])
        time.sleep(pause)
    return posted


def wait_rows(lake_uri, want, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        h = history(lake_uri)
        if h and h[-1]["rows"] == str(want):
            return True
        time.sleep(0.2)
    return False


def rows_of_version(table, version):
    """Every row of the files `version` lists, read by DuckDB, sorted by event_id."""
    files = [file_path(table, a) for a in version["files"].values()]
    if not files:
        return []
    res = duckdb([f"SELECT {COLS} FROM read_parquet([{', '.join(map(sql_str, files))}])"
                  " ORDER BY event_id"])[0]
    checks.check(not isinstance(res, dict), f"duckdb: {res}")
    return res if isinstance(res, list) else []


def actions(table, version):
    name = os.path.join(table, "_delta_log", f"{version:020d}.json")
    with open(name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def files_per_date(version):
    out = {}
    for a in version["files"].values():
        d = a["partitionValues"]["event_date"]
        out[d] = out.get(d, 0) + 1
    return out


def check_manual(base):
    """Compaction of a stopped table: one partition, then all, then nothing left to do."""
    table = os.path.join(base, "lake")
    lake_uri = "file://" + table
    args = ["--lake", lake_uri, "--lake-batch-interval", "100ms", "--lake-batch-rows", "30",
            "--lake-auto-optimize-files", "0"]
    with Server(log_dir=base, extra_args=args) as srv:
        posted = post_rounds(srv, 12)
        checks.check(wait_rows(lake_uri, len(posted)), "manual: every event in the table")
        checks.check(srv.stop() == 0, "manual: sluice exits 0")
    before = replay(table)[-1]
    per_date = files_per_date(before)
    checks.check(all(per_date.get(d, 0) >= 3 for d in DATES), f"manual: small files {per_date}")
    want = rows_of_version(table, before)
    checks.check(sorted(r["event_id"] for r in want) == sorted(posted),
                 "manual: DuckDB reads the posted events before compaction")

    out = optimize(lake_uri, "--partition", DATES[1])
    checks.check(out.returncode == 0 and "1 partitions" in out.stdout,
                 f"manual: optimize one partition: {out.returncode} {out.stdout} {out.stderr}")
    versions = replay(table)
    one = versions[-1]
    checks.check(one["operation"] == "OPTIMIZE" and files_per_date(one) ==
                 {**per_date, DATES[1]: 1}, f"manual: only {DATES[1]} compacted: "
                 f"{files_per_date(one)}")
    acts = actions(table, one["version"])
    removes = [a["remove"] for a in acts if "remove" in a]
    adds = [a["add"] for a in acts if "add" in a]
    info = [a["commitInfo"] for a in acts if "commitInfo" in a][0]
    checks.check(len(removes) == per_date[DATES[1]] and len(adds) == 1
                 and all(not r["dataChange"] for r in removes + adds)
                 and all(r["partitionValues"] == {"event_date": DATES[1]} for r in removes + adds)
                 and not info["isBlindAppend"] and info["readVersion"] == before["version"],
                 f"manual: the OPTIMIZE commit's actions {info} {adds}")
    checks.check(json.loads(adds[0]["stats"])["numRecords"] == 5 * 12,
                 f"manual: numRecords of the new file {adds[0]['stats'][:80]}")

    # On a terminal (script(1) gives it one) the run shows its progress.
    small = sum(n for d, n in per_date.items() if d != DATES[1])
    out = subprocess.run(["script", "-qec", f"{SLUICE} lake optimize --lake {lake_uri}",
                          "/dev/null"], capture_output=True, text=True, timeout=300)
    checks.check(out.returncode == 0 and "2 partitions" in out.stdout
                 and f"{small} of {small} small files rewritten" in out.stdout,
                 f"manual: optimize all, on a terminal: {out.returncode} {out.stdout!r}")
    versions = replay(table)
    after = versions[-1]
    checks.check(files_per_date(after) == {d: 1 for d in DATES},
                 f"manual: one file per date {files_per_date(after)}")
    checks.check(rows_of_version(table, after) == want,
                 "manual: the compacted version holds the same rows, column for column")
    checks.check(rows_of_version(table, before) == want,
                 "manual: the version before the compaction still reads the same")
    h = history(lake_uri)
    checks.check(h[-1]["operation"] == "OPTIMIZE" and h[-1]["rows"] == str(len(posted))
                 and h[-1]["files"] == len(DATES), f"manual: history {h[-1]}")

    out = optimize(lake_uri)
    checks.check(out.returncode == 0 and "nothing to compact" in out.stdout
                 and len(replay(table)) == len(versions),
                 f"manual: a second run has nothing to do: {out.stdout} {out.stderr}")

    out = optimize(lake_uri, "--partition", "2026-1-2")
    checks.check(out.returncode != 0 and "is not a date" in out.stderr,
                 f"manual: a bad --partition is refused: {out.returncode} {out.stderr}")
    empty = tempfile.mkdtemp(prefix="sluice-notable-")
    out = optimize("file://" + empty)
    checks.check(out.returncode != 0 and out.stderr.startswith("sluice lake optimize: "),
                 f"manual: no table: {out.returncode} {out.stderr}")
    shutil.rmtree(empty, ignore_errors=True)


def check_concurrent(base):
    """Compactions while the sink appends, two of them at once among them."""
    table = os.path.join(base, "lake")
    lake_uri = "file://" + table
    args = ["--lake", lake_uri, "--lake-batch-interval", "100ms", "--lake-batch-rows", "30",
            "--lake-auto-optimize-files", "0"]
    posted = []
    with Server(log_dir=base, extra_args=args) as srv:
        poster = threading.Thread(target=post_rounds, args=(srv, 40),
                                  kwargs={"per_date": 2, "pause": 0.1, "posted": posted})
        poster.start()
        outcomes = []
        time.sleep(1.0)
        for _ in range(2):
            outcomes.append(optimize(lake_uri))
            time.sleep(0.5)
        pair = [subprocess.Popen([SLUICE, "lake", "optimize", "--lake", lake_uri],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
        for p in pair:
            out, err = p.communicate(timeout=300)
            outcomes.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
        poster.join()
        checks.check(wait_rows(lake_uri, len(posted)), "concurrent: every event in the table")
        checks.check(srv.stop() == 0, "concurrent: sluice exits 0")
    for o in outcomes:
        checks.check(o.returncode == 0 or "another writer removed" in o.stderr,
                     f"concurrent: optimize {o.returncode} {o.stdout} {o.stderr}")
    versions = replay(table)
    compactions = [v for v in versions if v["operation"] == "OPTIMIZE"]
    checks.check(len(compactions) >= 2, f"concurrent: {len(compactions)} OPTIMIZE versions")
    for v in compactions:
        prev = versions[v["version"] - 1]
        ids_prev = [r["event_id"] for r in rows_of_version(table, prev)]
        ids = [r["event_id"] for r in rows_of_version(table, v)]
        checks.check(len(ids) == len(set(ids)) and sorted(ids) == sorted(ids_prev),
                     f"concurrent: version {v['version']} holds the rows of the one before, "
                     f"once each ({len(ids)} rows, {len(set(ids))} distinct, {len(ids_prev)} "
                     "before)")
    final = [r["event_id"] for r in rows_of_version(table, versions[-1])]
    checks.check(sorted(final) == sorted(posted),
                 f"concurrent: the latest version holds every posted event once "
                 f"({len(final)} rows, {len(set(final))} distinct, {len(posted)} posted)")


def check_auto(base):
    """The sink compacts on its own every N commits."""
    table = os.path.join(base, "lake")
    lake_uri = "file://" + table
    args = ["--lake", lake_uri, "--lake-batch-interval", "100ms", "--lake-batch-rows", "30",
            "--lake-auto-optimize-files", "5"]
    with Server(log_dir=base, extra_args=args) as srv:
        posted = post_rounds(srv, 16, per_date=2)
        checks.check(wait_rows(lake_uri, len(posted)), "auto: every event in the table")
        status, _, body = srv.request("GET", "/metrics")
        line = [x for x in body.decode().splitlines()
                if x.startswith("sluice_lake_compactions_total ")]
        checks.check(status == 200 and line and int(line[0].split()[1]) >= 1,
                     f"auto: compactions in /metrics: {line}")
        checks.check(srv.stop() == 0, "auto: sluice exits 0")
    versions = replay(table)
    checks.check(any(v["operation"] == "OPTIMIZE" for v in versions),
                 "auto: the sink committed an OPTIMIZE version")
    final = [r["event_id"] for r in rows_of_version(table, versions[-1])]
    checks.check(sorted(final) == sorted(posted), "auto: every posted event once")
    checks.check(max(files_per_date(versions[-1]).values()) < 16,
                 f"auto: files per date stay few: {files_per_date(versions[-1])}")
    # The sink's checkpoints after a compaction carry its removes as tombstones: DuckDB
    # finds in the newest one every file added before it and no longer active, and only those.
    log_dir = os.path.join(table, "_delta_log")
    cks = sorted(n for n in os.listdir(log_dir) if n.endswith(".checkpoint.parquet"))
    checks.check(bool(cks), "auto: the sink wrote a checkpoint")
    if cks:
        v = int(cks[-1][:20])
        ever = {p for ver in versions[:v + 1] for p in ver["files"]}
        want = sorted(urllib.parse.unquote(p) for p in ever - set(versions[v]["files"]))
        res = duckdb([f"SELECT remove.path AS p, remove.dataChange AS dc FROM read_parquet("
                      f"{sql_str(os.path.join(log_dir, cks[-1]))}) WHERE remove IS NOT NULL "
                      "ORDER BY p"])[0]
        got = sorted(r["p"] for r in res) if isinstance(res, list) else res
        checks.check(want and got == want and all(r["dc"] is False for r in res),
                     f"auto: checkpoint {v} holds {len(got)} tombstones, the log removed "
                     f"{len(want)}")


def main():
    for check in (check_manual, check_concurrent, check_auto):
        base = tempfile.mkdtemp(prefix="sluice-optimize-")
        try:
            check(base)
        finally:
            shutil.rmtree(base, ignore_errors=True)
    checks.finish()


if __name__ == "__main__":
    main()
