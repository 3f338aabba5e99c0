"""Delta checkpoints of the lake sink (issue 6), end to end: `sluice serve` commits small
batches past several checkpoint intervals; every NNN.checkpoint.parquet it wrote is read by
DuckDB (read_parquet: the nested add / metaData / protocol / txn structs, the partitionValues
map, the partitionColumns list) and must hold exactly the table an independent replay of
the JSON log gives at that version; `_last_checkpoint` names the newest. A copy of the
table whose JSON history before the newest checkpoint is deleted reads (`sluice lake
history`) the same as the full replay. With a zero log retention, the commits and
checkpoints before the newest checkpoint expire and the table still reads: every posted
event once."""

import json
import os
import shutil
import subprocess
import tempfile
import time

from harness import SLUICE, Checks, Server, event, node_packages
from lake_helpers import check_checkpoints, duckdb, file_path, history, replay, sql_str

checks = Checks("checkpoint")
EVERY = 4


def post(srv, n, tag):
    evs = [event(timestamp=f"2024-03-{1 + i % 3:02d}T10:00:00Z", session_id=f"{tag}-{i}")
           for i in range(n)]
    status, answer = srv.post(evs)
    checks.check(status == 200 and answer["accepted"] == n, f"post {tag}: {status} {answer}")


def wait_rows(lake_uri, want, timeout=120):
    deadline = time.time() + timeout
    rows = None
    while time.time() < deadline:
        try:
            h = history(lake_uri)
        except RuntimeError:
            h = []
        rows = int(h[-1]["rows"]) if h and h[-1]["rows"] != "-" else None
        if rows == want:
            return True
        time.sleep(0.2)
    print(f"table has {rows} rows, waited for {want}", flush=True)
    return False


def fill(srv, lake_uri, commits, per, tag, start_rows):
    """One batch per post: `commits` versions of `per` events each."""
    rows = start_rows
    for c in range(commits):
        post(srv, per, f"{tag}{c}")
        rows += per
        checks.check(wait_rows(lake_uri, rows), f"{tag}: {rows} rows in the table")
    return rows


def main():
    node_packages()
    base = tempfile.mkdtemp(prefix="sluice-checkpoint-")
    try:
        table = os.path.join(base, "lake")
        lake_uri = "file://" + table
        args = ["--lake", lake_uri, "--lake-batch-interval", "100ms", "--lake-batch-rows",
                "1000", "--lake-checkpoint-interval", str(EVERY)]
        with Server(log_dir=base, extra_args=args) as srv:
            rows = fill(srv, lake_uri, 3 * EVERY + 1, 3, "a", 0)
            checks.check(srv.stop() == 0, "sluice exits 0")
        versions = replay(table)
        latest = len(versions) - 1
        log = os.path.join(table, "_delta_log")
        cks = check_checkpoints(checks, table, versions, EVERY, "")
        checks.check(len(cks) >= 3, f"at least 3 checkpoints: {cks}")

        # A reader that starts at the checkpoint sees what the full replay sees.
        h_full = history(lake_uri)
        copy = os.path.join(base, "copy")
        shutil.copytree(table, copy)
        for v in range(cks[-1]):
            os.unlink(os.path.join(copy, "_delta_log", "%020d.json" % v))
        h_ck = history("file://" + copy)
        checks.check([x["version"] for x in h_ck] == list(range(cks[-1], latest + 1)),
                     f"history from the checkpoint: versions {[x['version'] for x in h_ck]}")
        for x in h_ck:
            full = h_full[x["version"]]
            checks.check(x["files"] == full["files"] and x["rows"] == full["rows"],
                         f"version {x['version']} from the checkpoint: {x}, full replay {full}")
        checks.check(h_ck and int(h_ck[-1]["rows"]) == rows,
                     f"the table from the checkpoint holds {h_ck[-1]['rows'] if h_ck else '?'} "
                     f"rows, {rows} posted")
        # _last_checkpoint names a checkpoint that is gone: the listing finds the one
        # before it, whose later commits are all there.
        stale = os.path.join(base, "stale")
        shutil.copytree(table, stale)
        for v in range(cks[-2]):
            os.unlink(os.path.join(stale, "_delta_log", "%020d.json" % v))
        os.unlink(os.path.join(stale, "_delta_log", "%020d.checkpoint.parquet" % cks[-1]))
        h_stale = history("file://" + stale)
        checks.check([x["version"] for x in h_stale] == list(range(cks[-2], latest + 1))
                     and h_stale[-1]["rows"] == h_full[-1]["rows"]
                     and h_stale[-1]["files"] == h_full[-1]["files"],
                     f"stale _last_checkpoint: history {h_stale[:1]}..{h_stale[-1:]}")
        # Neither the JSON history nor a checkpoint to start from: refused, naming why.
        os.unlink(os.path.join(copy, "_delta_log", "%020d.checkpoint.parquet" % cks[-1]))
        out = subprocess.run([SLUICE, "lake", "history", "--lake", "file://" + copy],
                             capture_output=True, text=True, timeout=60)
        checks.check(out.returncode != 0 and "missing" in out.stderr,
                     f"history with the JSON history and the checkpoint gone: "
                     f"{out.returncode} {out.stderr[-300:]}")

        # Expiry: with no retention, the log before the newest checkpoint goes; the table
        # still reads, every event once.
        args2 = args + ["--lake-log-retention", "0"]
        with Server(log_dir=base, extra_args=args2) as srv:
            rows = fill(srv, lake_uri, EVERY + 1, 3, "b", rows)
            checks.check(srv.stop() == 0, "sluice (retention 0) exits 0")
        names = sorted(os.listdir(log))
        jsons = sorted(int(n[:20]) for n in names if n.endswith(".json") and len(n) == 25)
        cks2 = sorted(int(n[:20]) for n in names if n.endswith(".checkpoint.parquet"))
        checks.check(len(cks2) == 1 and jsons and jsons[0] == cks2[0]
                     and jsons == list(range(cks2[0], jsons[-1] + 1)),
                     f"after expiry: checkpoints {cks2}, commits {jsons[:3]}..{jsons[-1:]}")
        h = history(lake_uri)
        checks.check(h and int(h[-1]["rows"]) == rows and h[0]["version"] == cks2[0],
                     f"after expiry: history {h[:1]}..{h[-1:]}, {rows} rows posted")
        # DuckDB counts the rows of the files the checkpoint and later commits list
        ck_path = os.path.join(log, "%020d.checkpoint.parquet" % cks2[0])
        res = duckdb([f"SELECT add.path AS p FROM read_parquet({sql_str(ck_path)}) "
                      f"WHERE add IS NOT NULL"])
        paths = {r["p"] for r in res[0]} if isinstance(res[0], list) else set()
        for v in jsons[1:]:
            for line in open(os.path.join(log, "%020d.json" % v), encoding="utf-8"):
                act = json.loads(line)
                if "add" in act:
                    paths.add(act["add"]["path"])
        files = [file_path(table, {"path": p}) for p in sorted(paths)]
        res = duckdb([f"SELECT count(*) AS n, count(DISTINCT session_id) AS s FROM "
                      f"read_parquet([{', '.join(map(sql_str, files))}])"])
        checks.check(isinstance(res[0], list) and int(res[0][0]["n"]) == rows
                     and int(res[0][0]["s"]) == rows,
                     f"after expiry: DuckDB counts {res[0]} in {len(files)} files, {rows} posted")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return checks.finish()


if __name__ == "__main__":
    raise SystemExit(main())
