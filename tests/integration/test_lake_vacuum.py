"""`sluice lake vacuum` on a file:// table: the sink writes three versions, the test adds
two that remove files (as OPTIMIZE or a delete would) and ages commits and files, then
checks what vacuum keeps and deletes for a retention window:

- kept: every file a version inside the window (and the version current when it opened)
  references, and any file younger than the window (a batch not committed yet);
- deleted: files only older versions reference, old orphans, old temporary files;
- --dry-run lists exactly that and deletes nothing; under 1 hour needs --force;
- afterwards DuckDB reads every version inside the window whole."""

import json
import os
import shutil
import subprocess
import tempfile
import time

from harness import SLUICE, Checks, Server, event, node_packages
from lake_helpers import duckdb, file_path, history, replay, rows_of, sql_str

checks = Checks("lake_vacuum")
HOUR = 3600


def vacuum(lake, *args):
    p = subprocess.run([SLUICE, "lake", "vacuum", "--lake", lake, *args], capture_output=True,
                       text=True, timeout=120)
    listed = {line.split(" ", 2)[-1] for line in p.stdout.splitlines()
              if line.startswith(("deleted ", "would delete ")) and " files (" not in line}
    return p.returncode, listed, p.stdout + p.stderr


def set_commit_time(table, version, ts_ms):
    path = os.path.join(table, "_delta_log", "%020d.json" % version)
    with open(path) as f:
        actions = [json.loads(line) for line in f if line.strip()]
    for a in actions:
        if "commitInfo" in a:
            a["commitInfo"]["timestamp"] = ts_ms
    with open(path, "w") as f:
        f.write("".join(json.dumps(a) + "\n" for a in actions))


def write_remove(table, version, paths, ts_ms):
    lines = [{"commitInfo": {"timestamp": ts_ms, "operation": "DELETE",
                             "operationParameters": {}, "readVersion": version - 1}}]
    lines += [{"remove": {"path": p, "deletionTimestamp": ts_ms, "dataChange": True}}
              for p in paths]
    with open(os.path.join(table, "_delta_log", "%020d.json" % version), "x") as f:
        f.write("".join(json.dumps(a) + "\n" for a in lines))


def age(path, seconds):
    t = time.time() - seconds
    os.utime(path, (t, t))


def readable(table, version):
    """DuckDB reads every file of the version; its row count equals the stats'."""
    files = replay(table)[version]["files"]
    want = sum(rows_of(a) for a in files.values())
    paths = [file_path(table, a) for a in files.values()]
    res = duckdb([f"SELECT count(*) AS n FROM read_parquet([{', '.join(map(sql_str, paths))}])"])
    got = res[0][0]["n"] if isinstance(res[0], list) else res[0]
    return str(got) == str(want), got, want


def main():
    node_packages()
    base = tempfile.mkdtemp(prefix="sluice-lake-vacuum-")
    try:
        table = os.path.join(base, "lake")
        lake = "file://" + table
        days = ["2024-01-15T10:00:00Z", "2024-01-16T10:00:00Z"]
        with Server(log_dir=base, extra_args=["--roles", "api,lake-sink", "--lake", lake,
                                              "--lake-batch-interval", "200ms"]) as srv:
            for k in range(3):
                evs = [event(timestamp=days[i % 2]) for i in range(40)]
                status, _ = srv.post(evs)
                checks.check(status == 200, f"post {k}: {status}")
                deadline = time.time() + 30
                while len(replay(table)) < k + 2 and time.time() < deadline:
                    time.sleep(0.1)
            checks.check(srv.stop() == 0, "sluice exits 0")
        versions = replay(table)
        checks.check(len(versions) == 4, f"the sink wrote versions 0-3: {len(versions)}")
        added = [sorted(set(versions[v]["files"]) - set(versions[v - 1]["files"]))
                 for v in range(1, 4)]
        now_ms = int(time.time() * 1000)
        for v in range(4):
            set_commit_time(table, v, now_ms - 10 * HOUR * 1000)
        write_remove(table, 4, added[0], now_ms - 3 * HOUR * 1000)  # F1 goes 3 h ago
        write_remove(table, 5, added[1], now_ms - HOUR * 1000 // 2)  # F2 goes 30 min ago
        for a in versions[3]["files"].values():
            age(file_path(table, a), 10 * HOUR)
        part = os.path.dirname(file_path(table, versions[3]["files"][added[0][0]]))
        rel = os.path.relpath(part, table)
        src = file_path(table, versions[3]["files"][added[0][0]])
        orphans = {"old": os.path.join(rel, "part-orphan-old.parquet"),
                   "young": os.path.join(rel, "part-orphan-young.parquet"),
                   "tmp_old": os.path.join(rel, ".sl-tmp-old"),
                   "tmp_young": os.path.join(rel, ".sl-tmp-young")}
        for name, key in orphans.items():
            shutil.copy(src, os.path.join(table, key))
            if name.endswith("old"):
                age(os.path.join(table, key), 10 * HOUR)
        f1 = set(added[0])
        f2 = set(added[1])

        rc, listed, out = vacuum(lake, "--retain", "0")
        checks.check(rc == 2 and "safety minimum" in out and "--force" in out,
                     f"--retain 0 is refused without --force: {rc} {out}")

        # Window of 2 h: opens after version 4 (3 h ago); F1 only versions 1-3 reference.
        want = f1 | {orphans["old"], orphans["tmp_old"]}
        rc, listed, out = vacuum(lake, "--retain", "2", "--dry-run")
        checks.check(rc == 0 and listed == want, f"dry run lists {sorted(listed)}, want "
                                                 f"{sorted(want)}: {out}")
        checks.check(all(os.path.exists(os.path.join(table, k)) for k in want),
                     "the dry run deleted nothing")
        rc, listed, out = vacuum(lake, "--retain", "2")
        checks.check(rc == 0 and listed == want, f"vacuum deleted {sorted(listed)}: {out}")
        checks.check(not any(os.path.exists(os.path.join(table, k)) for k in want),
                     "those files are gone")
        kept = (f2 | set(added[2]) | {orphans["young"], orphans["tmp_young"]})
        checks.check(all(os.path.exists(os.path.join(table, k)) for k in kept),
                     "files of versions in the window and young files stay")
        for v in (4, 5):
            ok, got, n = readable(table, v)
            checks.check(ok, f"version {v} reads whole through DuckDB: {got} rows, want {n}")
        checks.check(len(history(lake)) == 6, "the log is untouched")
        rc, listed, out = vacuum(lake, "--retain", "2")
        checks.check(rc == 0 and not listed, f"a second vacuum finds nothing: {out}")

        # --force 0: only the latest version is kept.
        rc, listed, out = vacuum(lake, "--retain", "0", "--force")
        want = f2 | {orphans["young"], orphans["tmp_young"]}
        checks.check(rc == 0 and listed == want, f"--force --retain 0 deleted {sorted(listed)}, "
                                                 f"want {sorted(want)}: {out}")
        ok, got, n = readable(table, 5)
        checks.check(ok and n > 0, f"the latest version reads whole: {got} rows, want {n}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    checks.finish()


if __name__ == "__main__":
    main()
