"""Helpers of the lake tests: an independent replay of a Delta table's JSON log (written
here from the Delta protocol, sharing nothing with sluice's reader), DuckDB queries through
tests/integration/lake_duckdb.mjs, and `sluice lake history` parsed."""

import json
import os
import subprocess
import urllib.parse

from harness import SLUICE

HERE = os.path.dirname(os.path.abspath(__file__))


def duckdb(queries):
    """Runs SQL queries in one DuckDB process; returns a list of row lists."""
    out = subprocess.run(["node", os.path.join(HERE, "lake_duckdb.mjs")],
                         input=json.dumps(queries), capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError("duckdb helper failed: " + out.stderr)
    return json.loads(out.stdout)


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def replay(table_dir):
    """Replays _delta_log/*.json: a list, per version, of {path: add} for the active files,
    with the commitInfo operation of each version."""
    log_dir = os.path.join(table_dir, "_delta_log")
    names = sorted(n for n in os.listdir(log_dir) if len(n) == 25 and n.endswith(".json"))
    versions = []
    active = {}
    for i, name in enumerate(names):
        assert int(name[:20]) == i, f"version {i} missing: {name}"
        op = None
        with open(os.path.join(log_dir, name), encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                action = json.loads(line)
                assert len(action) == 1, line
                (kind, body), = action.items()
                if kind == "add":
                    active[body["path"]] = body
                elif kind == "remove":
                    active.pop(body["path"], None)
                elif kind == "commitInfo":
                    op = body.get("operation")
        versions.append({"version": i, "operation": op, "files": dict(active)})
    return versions


def file_path(table_dir, add):
    return os.path.join(table_dir, urllib.parse.unquote(add["path"]))


def rows_of(add):
    return json.loads(add["stats"])["numRecords"]


def history(lake_uri, extra=(), env=None):
    """`sluice lake history` as a list of dicts (the operation is the rest of the line);
    extra: more flags (--s3-endpoint ...), env: variables added (AWS credentials)."""
    out = subprocess.run([SLUICE, "lake", "history", "--lake", lake_uri, *extra],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, **(env or {})))
    if out.returncode != 0:
        raise RuntimeError("sluice lake history failed: " + out.stderr)
    lines = out.stdout.splitlines()
    assert lines[0].split()[0] == "version", lines[0]
    result = []
    for line in lines[1:]:
        parts = line.split(None, 7)
        result.append({
            "version": int(parts[0]), "time": parts[1], "files_added": int(parts[2]),
            "files_removed": int(parts[3]), "rows_added": parts[4], "files": int(parts[5]),
            "rows": parts[6], "operation": parts[7]})
    return result
