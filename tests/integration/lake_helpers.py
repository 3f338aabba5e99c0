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


def check_checkpoint_file(checks, table, version, versions):
    """DuckDB reads checkpoint `version` of the table in directory `table`; its actions must
    equal `versions` (replay's answer) at that version. Failures go to `checks`."""
    path = os.path.join(table, "_delta_log", "%020d.checkpoint.parquet" % version)
    q = f"read_parquet({sql_str(path)})"
    res = duckdb([
        f"SELECT add.path AS path, add.size AS size, add.modificationTime AS mtime, "
        f"add.dataChange AS dc, add.stats AS stats, "
        f"to_json(add.partitionValues)::VARCHAR AS pv FROM {q} WHERE add IS NOT NULL",
        f"SELECT metaData.id AS id, metaData.schemaString AS schema, metaData.format.provider "
        f"AS provider, to_json(metaData.partitionColumns)::VARCHAR AS pcs FROM {q} "
        f"WHERE metaData IS NOT NULL",
        f"SELECT protocol.minReaderVersion AS r, protocol.minWriterVersion AS w FROM {q} "
        f"WHERE protocol IS NOT NULL",
        f"SELECT txn.appId AS app, txn.version AS v FROM {q} WHERE txn IS NOT NULL",
        f"SELECT count(*) AS n FROM {q} WHERE remove IS NOT NULL",
        f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {q})",
    ])
    for r in res:
        checks.check(not (isinstance(r, dict) and "error" in r), f"checkpoint {version}: {r}")
    if any(isinstance(r, dict) for r in res):
        return
    adds, meta, proto, txns, removes, types = res
    want = versions[version]["files"]
    got = {a["path"]: a for a in adds}
    checks.check(sorted(got) == sorted(want),
                 f"checkpoint {version}: {len(got)} adds, the replay has {len(want)} files")
    for p, a in got.items():
        w = want.get(p)
        if not w:
            continue
        checks.check(int(a["size"]) == w["size"] and int(a["mtime"]) == w["modificationTime"]
                     and json.loads(a["pv"]) == w["partitionValues"]
                     and json.loads(a["stats"]) == json.loads(w["stats"])
                     and json.loads(a["stats"])["numRecords"] == rows_of(w)
                     and a["dc"] is False,
                     f"checkpoint {version}: add {p}: {a} against {w}")
    # the replay's metaData and protocol (the first commit's), and the txns at the version
    log0 = os.path.join(table, "_delta_log", "%020d.json" % 0)
    md = pr = None
    if os.path.exists(log0):
        for line in open(log0, encoding="utf-8"):
            act = json.loads(line)
            md = act.get("metaData", md)
            pr = act.get("protocol", pr)
    if md:
        checks.check(len(meta) == 1 and meta[0]["id"] == md["id"]
                     and meta[0]["schema"] == md["schemaString"]
                     and meta[0]["provider"] == "parquet"
                     and json.loads(meta[0]["pcs"]) == md["partitionColumns"],
                     f"checkpoint {version}: metaData {meta}")
        checks.check(len(proto) == 1 and int(proto[0]["r"]) == pr["minReaderVersion"]
                     and int(proto[0]["w"]) == pr["minWriterVersion"],
                     f"checkpoint {version}: protocol {proto}")
    want_txn = {}
    for v in range(version + 1):
        name = os.path.join(table, "_delta_log", "%020d.json" % v)
        for line in open(name, encoding="utf-8"):
            act = json.loads(line)
            if "txn" in act:
                want_txn[act["txn"]["appId"]] = act["txn"]["version"]
    checks.check({t["app"]: int(t["v"]) for t in txns} == want_txn,
                 f"checkpoint {version}: txns {txns}, the log's {want_txn}")
    checks.check(int(removes[0]["n"]) == 0, f"checkpoint {version}: remove rows {removes}")
    tmap = {t["column_name"]: t["column_type"] for t in types}
    checks.check("partitionValues MAP(VARCHAR, VARCHAR)" in tmap.get("add", "")
                 and "partitionColumns VARCHAR[]" in tmap.get("metaData", "")
                 and set(tmap) == {"txn", "add", "remove", "metaData", "protocol"},
                 f"checkpoint {version}: DuckDB sees the schema {tmap}")


def check_checkpoints(checks, table, versions, every, label):
    """The checkpoints of the table in directory `table`, whose replay is `versions`: one
    every `every` versions and at least one, `_last_checkpoint` naming the newest, each
    equal to the replay (check_checkpoint_file). Returns their versions."""
    log = os.path.join(table, "_delta_log")
    cks = sorted(int(n[:20]) for n in os.listdir(log) if n.endswith(".checkpoint.parquet"))
    checks.check(cks and cks == list(range(every, len(versions), every)),
                 f"{label}checkpoints {cks} for versions 0..{len(versions) - 1} every {every}")
    with open(os.path.join(log, "_last_checkpoint"), encoding="utf-8") as f:
        last = json.load(f)
    checks.check(cks and last["version"] == cks[-1], f"{label}_last_checkpoint {last}")
    for v in cks:
        check_checkpoint_file(checks, table, v, versions)
    return cks
