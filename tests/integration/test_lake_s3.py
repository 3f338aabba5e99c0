"""The Delta table on S3 (moto_server on 127.0.0.1, one request at a time: moto_serial.py):

- the lake sink writes the same rows to s3:// as to file:// from the same log, compared
  through DuckDB reading the files downloaded from moto and the local ones;
- processes racing appends on one table (sluice-test-delta-committer): exactly one wins
  each version, the others move on, nothing is lost or doubled;
- faults: the server unreachable (a proxy that drops every connection) while the sink is
  SIGKILLed and restarted, then the Delta commits answered with 500: no partial commit is
  ever visible, /ready says why, and afterwards every event is in the table exactly once
  with no unreferenced data file left behind;
- `sluice lake vacuum` on s3://: the window keeps young files, --dry-run deletes nothing,
  --force --retain 0 deletes exactly the removed file and an orphan, and the latest
  version still reads whole through DuckDB;
- `sluice lake optimize` on s3://: one file per date afterwards, the same rows in DuckDB.

Exit 77 (CTest: skipped) when moto is not installed. moto is read directly over HTTP as the
independent check of what is stored."""

import http.client
import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import SLUICE, Checks, Server, event, node_packages  # noqa: E402
from lake_helpers import (check_checkpoints, duckdb, file_path, history,  # noqa: E402
                          replay, sql_str)
from moto_fixture import Moto  # noqa: E402

COMMITTER = os.environ.get("SLUICE_DELTA_COMMITTER") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "sluice-test-delta-committer")
BUCKET = "lake"
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
COLS = ("event_id, epoch_us(timestamp) AS ts, channel, platform, event_type, session_id, "
        "user_id, interaction_value, interaction_text, metadata")
checks = Checks("lake_s3")


class Proxy:
    """A TCP-level HTTP proxy in front of moto. mode(method, path) -> None (forward),
    "drop" (close the connection unanswered, as a server that went away), "lost" (forward,
    then close without the answer) or (status, body)."""

    def __init__(self, moto):
        self.moto = moto
        self.mode = lambda method, path: None
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.running = True
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers = {}
                while True:
                    h = f.readline().decode()
                    if h in ("\r\n", "\n", ""):
                        break
                    k, v = h.split(":", 1)
                    headers[k.strip()] = v.strip()
                n = int(headers.get("Content-Length") or headers.get("content-length") or 0)
                body = f.read(n) if n else None
                act = self.mode(method, path)
                if act == "drop":
                    return
                if act and act != "lost":
                    status, out, rh = act[0], act[1], []
                else:
                    c = http.client.HTTPConnection("127.0.0.1", self.moto.port, timeout=60)
                    c.request(method, path, body=body, headers={
                        k: v for k, v in headers.items() if k.lower() != "connection"})
                    r = c.getresponse()
                    status, out = r.status, r.read()
                    if act == "lost":
                        return
                    rh = [(k, v) for k, v in r.getheaders() if k.lower() not in (
                        "content-length", "connection", "transfer-encoding", "server", "date")]
                    c.close()
                head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in rh)
                head += f"Content-Length: {len(out)}\r\n\r\n"
                conn.sendall(head.encode() + (out if method != "HEAD" else b""))
        except (OSError, ValueError):
            return
        finally:
            conn.close()

    def stop(self):
        self.running = False
        self.sock.close()


def events(n, seed):
    out = []
    days = ["2024-01-15T10:30:00.123456Z", "2024-01-16T00:00:00Z", "2026-11-23T08:00:00.001Z"]
    for i in range(n):
        e = event(timestamp=days[i % 3], session_id=f"s-{seed}-{i % 7}",
                  interaction_value=i * 0.5, metadata={"i": i, "seed": seed})
        if i % 4 == 0:
            e["interaction_text"] = "héllo wörld " * (i % 3)
        out.append(e)
    return out


def post(srv, evs):
    ids = []
    for i in range(0, len(evs), 50):
        status, answer = srv.post(evs[i:i + 50])
        checks.check(status == 200, f"post: {status} {str(answer)[:200]}")
        ids += answer["eventIds"] if status == 200 else []
    return ids


def s3_args(moto_or_proxy, prefix):
    return ["--lake", f"s3://{BUCKET}/{prefix}", "--s3-endpoint", moto_or_proxy.endpoint,
            "--s3-path-style"]


def table_rows(lake_args):
    try:
        h = history(lake_args[1], extra=lake_args[2:], env=CREDS)
    except RuntimeError:
        return None
    return int(h[-1]["rows"]) if h and h[-1]["rows"] != "-" else None


def wait_rows(lake_args, want, timeout=60):
    deadline = time.time() + timeout
    rows = None
    while time.time() < deadline:
        rows = table_rows(lake_args)
        if rows == want:
            return True
        time.sleep(0.2)
    print(f"table has {rows} rows, waited for {want}", flush=True)
    return False


def wait_ready(srv, want, timeout=60):
    deadline = time.time() + timeout
    status, body = None, b""
    while time.time() < deadline:
        status, _, body = srv.request("GET", "/ready")
        if status == want:
            return True, body
        time.sleep(0.1)
    return False, body


def table_files(table_dir):
    """The latest version's files as local paths, and every add of every version."""
    versions = replay(table_dir)
    return [file_path(table_dir, a) for a in versions[-1]["files"].values()], versions


def rows_of(paths):
    if not paths:
        return []
    res = duckdb([f"SELECT {COLS} FROM read_parquet([{', '.join(map(sql_str, paths))}])"])[0]
    checks.check(not isinstance(res, dict), f"duckdb: {res}")
    return sorted(json.dumps(r, sort_keys=True) for r in res) if isinstance(res, list) else []


def check_same_as_local(moto, tmp):
    """One log, two sinks one after the other: the second starts on an empty table, so it
    reads the log from its start (the table's txn versions, not the group's offsets)."""
    base = os.path.join(tmp, "same")
    os.makedirs(base)
    s3 = s3_args(moto, "same/events")
    opts = ["--lake-batch-interval", "300ms", "--lake-batch-rows", "100",
            "--lake-checkpoint-interval", "2"]
    with Server(log_dir=base, extra_args=["--roles", "api,lake-sink", *s3, *opts],
                env=CREDS) as srv:
        ids = post(srv, events(240, 1))
        checks.check(wait_rows(s3, 240), "same: 240 events in the s3 table")
        checks.check(srv.stop() == 0, "same: sluice (s3) exits 0")
    local = os.path.join(base, "local")
    with Server(log_dir=base, extra_args=["--roles", "lake-sink", "--lake", "file://" + local,
                                          *opts]) as srv:
        checks.check(wait_rows(["--lake", "file://" + local], 240),
                     "same: 240 events in the local table")
        checks.check(srv.stop() == 0, "same: sluice (file) exits 0")
    down = os.path.join(base, "down")
    moto.download("same/events/", down)
    s3_files, s3_versions = table_files(down)
    local_files, _ = table_files(local)
    s3_rows, local_rows = rows_of(s3_files), rows_of(local_files)
    checks.check(len(s3_rows) == 240 and s3_rows == local_rows,
                 f"same: DuckDB reads the same {len(s3_rows)} rows from moto as the "
                 f"{len(local_rows)} from disk")
    got = sorted(json.loads(r)["event_id"] for r in s3_rows)
    checks.check(got == sorted(ids), "same: the s3 table holds each posted event once")
    h = history(s3[1], extra=s3[2:], env=CREDS)
    checks.check(len(h) == len(s3_versions) and h[-1]["files"] == len(s3_files),
                 f"same: lake history on s3:// agrees with the downloaded log: {h[-1]}")
    # Checkpoints on S3: every one DuckDB reads equals the replay, _last_checkpoint names
    # the newest, and the history above (which starts from it) already agreed.
    check_checkpoints(checks, down, s3_versions, 2, "same: ")
    # The same through the variables instead of the flags.
    h_env = history(s3[1], env=dict(CREDS, SLUICE_S3_ENDPOINT=moto.endpoint,
                                    SLUICE_S3_PATH_STYLE="true", SLUICE_S3_REGION="eu-west-1"))
    checks.check(h_env == h, "same: SLUICE_S3_* variables work as the flags")
    # Nothing but the log and referenced data files (no temporary or orphan objects).
    referenced = {urllib.parse.unquote(a["path"]) for v in s3_versions for a in v["files"].values()}
    stray = [k for k in moto.keys("same/events/")
             if not k.startswith("same/events/_delta_log/") and
             k[len("same/events/"):] not in referenced]
    checks.check(not stray, f"same: no unreferenced object in the bucket: {stray[:5]}")



def check_hint(moto, tmp):
    """The command `sluice serve` prints to look at an s3:// lake reaches that lake: run as
    printed, it lists the table's versions."""
    s3 = s3_args(moto, "same/events")
    p = subprocess.Popen([SLUICE, "serve", "--listen", "127.0.0.1:0", "--roles", "lake-sink",
                          "--log", "file://" + os.path.join(tmp, "same", "log"), *s3],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env=dict(os.environ, **CREDS))
    try:
        hint = None
        for line in p.stdout:
            m = re.search(r"\(see it with: (sluice lake history [^)]*)\)", line)
            if m:
                hint = m.group(1)
                break
    finally:
        p.terminate()
        p.wait(timeout=30)
    checks.check(hint and "--s3-endpoint " + moto.endpoint in hint and "--s3-path-style" in hint,
                 f"hint: the printed command names the endpoint: {hint}")
    if not hint:
        return
    out = subprocess.run([SLUICE, *shlex.split(hint)[1:]], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, **CREDS))
    checks.check(out.returncode == 0 and "version" in out.stdout,
                 f"hint: `{hint}` runs: {out.returncode} {out.stdout[:200]} {out.stderr[:300]}")


def vacuum(moto, prefix, *args):
    p = subprocess.run([SLUICE, "lake", "vacuum", *s3_args(moto, prefix), *args],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, **CREDS))
    listed = {line.split(" ", 2)[-1] for line in p.stdout.splitlines()
              if line.startswith(("deleted ", "would delete ")) and " files (" not in line}
    return p.returncode, listed, p.stdout + p.stderr


def check_vacuum(moto, tmp):
    """Vacuum on the table check_same_as_local wrote: a version removing one file is added
    (as a delete would) and an orphan uploaded; moto sets the times, so the window is
    either 1 hour (everything is younger: nothing goes) or 0 with --force."""
    prefix = "same/events"
    down = os.path.join(tmp, "vac0")
    moto.download(prefix + "/", down)
    versions = replay(down)
    latest = versions[-1]["files"]
    gone = sorted(latest)[0]
    now_ms = int(time.time() * 1000)
    commit = [{"commitInfo": {"timestamp": now_ms, "operation": "DELETE",
                              "operationParameters": {}, "readVersion": len(versions) - 1}},
              {"remove": {"path": gone, "deletionTimestamp": now_ms, "dataChange": True}}]
    status, _ = moto.request("PUT", f"/{BUCKET}/{prefix}/_delta_log/%020d.json" % len(versions),
                             "".join(json.dumps(a) + "\n" for a in commit).encode())
    checks.check(status == 200, f"vacuum: remove commit stored: {status}")
    orphan = "event_date=2024-01-15/part-orphan.snappy.parquet"
    status, _ = moto.request("PUT", f"/{BUCKET}/{prefix}/{orphan}", b"PAR1 not committed")
    checks.check(status == 200, f"vacuum: orphan stored: {status}")
    time.sleep(1.1)  # S3 times have whole seconds: be past the orphan's
    before = set(moto.keys(prefix + "/"))

    rc, listed, out = vacuum(moto, prefix, "--retain", "0")
    checks.check(rc == 2 and "--force" in out, f"vacuum: --retain 0 refused: {rc} {out}")
    rc, listed, out = vacuum(moto, prefix, "--retain", "1")
    checks.check(rc == 0 and not listed and set(moto.keys(prefix + "/")) == before,
                 f"vacuum: a 1 h window keeps everything young: {out}")
    want = {urllib.parse.unquote(gone), orphan}
    rc, listed, out = vacuum(moto, prefix, "--retain", "0", "--force", "--dry-run")
    checks.check(rc == 0 and listed == want and set(moto.keys(prefix + "/")) == before,
                 f"vacuum: dry run lists {sorted(listed)} and deletes nothing: {out}")
    rc, listed, out = vacuum(moto, prefix, "--retain", "0", "--force")
    after = set(moto.keys(prefix + "/"))
    checks.check(rc == 0 and listed == want and after == before - {f"{prefix}/{k}" for k in want},
                 f"vacuum: deleted {sorted(listed)} and only those: {out}")
    down = os.path.join(tmp, "vac1")
    moto.download(prefix + "/", down)
    files, _ = table_files(down)
    got = rows_of(files)
    want_rows = sum(json.loads(a["stats"])["numRecords"] for p, a in latest.items() if p != gone)
    checks.check(len(got) == want_rows and want_rows > 0,
                 f"vacuum: the latest version reads whole from moto: {len(got)}/{want_rows}")


def unfinished_uploads(moto, prefix):
    status, body = moto.request("GET", f"/{BUCKET}?uploads&prefix={urllib.parse.quote(prefix)}")
    checks.check(status == 200, f"uploads listed: {status}")
    return re.findall(r"<Key>([^<]*)</Key>", body.decode())


def check_vacuum_uploads(moto, tmp):
    """Multipart uploads that a killed writer left unfinished (no object, parts billed) are
    aborted by vacuum once begun before the window; others' uploads outside the table stay.
    moto reports every upload as begun in 2010, so a young upload cannot be shown kept here
    (the window's side is the same code as for files)."""
    prefix = "same/events"
    killed = "event_date=2024-01-15/part-killed.snappy.parquet"
    for key in (f"{prefix}/{killed}", "elsewhere/part.parquet"):
        status, body = moto.request("POST", f"/{BUCKET}/{key}?uploads")
        upload_id = re.search(r"<UploadId>([^<]+)</UploadId>", body.decode()).group(1)
        status, _ = moto.request("PUT", f"/{BUCKET}/{key}?partNumber=1&uploadId={upload_id}",
                                 b"PAR1 part of a killed upload")
        checks.check(status == 200, f"uploads: a part of {key} stored: {status}")
    rc, _, out = vacuum(moto, prefix, "--retain", "1", "--dry-run")
    checks.check(rc == 0 and f"would abort the unfinished upload of {killed}\n" in out
                 and "would abort 1 unfinished uploads" in out
                 and unfinished_uploads(moto, prefix + "/") == [f"{prefix}/{killed}"],
                 f"uploads: the dry run names the killed upload and aborts nothing: {out}")
    rc, _, out = vacuum(moto, prefix, "--retain", "1")
    checks.check(rc == 0 and f"aborted the unfinished upload of {killed}\n" in out,
                 f"uploads: vacuum aborts the killed upload: {out}")
    checks.check(unfinished_uploads(moto, prefix + "/") == [],
                 "uploads: none left under the table")
    checks.check(unfinished_uploads(moto, "elsewhere/") == ["elsewhere/part.parquet"],
                 "uploads: the one outside the table is left alone")


def check_optimize(moto, tmp):
    """Compaction of the table check_vacuum left: the same rows, one file per date."""
    prefix = "same/events"
    before_files, _ = table_files(moto_download(moto, prefix, os.path.join(tmp, "opt0")))
    before_rows = rows_of(before_files)
    p = subprocess.run([SLUICE, "lake", "optimize", *s3_args(moto, prefix)], capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, **CREDS))
    checks.check(p.returncode == 0 and "rewritten into" in p.stdout,
                 f"optimize on s3:// {p.returncode} {p.stdout} {p.stderr}")
    files, versions = table_files(moto_download(moto, prefix, os.path.join(tmp, "opt1")))
    dates = {a["partitionValues"]["event_date"] for a in versions[-1]["files"].values()}
    checks.check(versions[-1]["operation"] == "OPTIMIZE" and len(files) == len(dates)
                 and len(files) < len(before_files) and rows_of(files) == before_rows
                 and len(before_rows) > 0,
                 f"optimize: {len(files)} files (were {len(before_files)}) for {len(dates)} "
                 f"dates hold the same {len(before_rows)} rows")


def moto_download(moto, prefix, dest):
    moto.download(prefix + "/", dest)
    return dest


def check_races(moto, tmp):
    racers, each = 4, 15
    uri = f"s3://{BUCKET}/race"
    procs = [subprocess.Popen([COMMITTER, "--endpoint", moto.endpoint, uri, str(i), str(each)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=dict(os.environ, **CREDS))
             for i in range(racers)]
    # Every racer holds version 0 before any appends: the first version is contended by all.
    ready = [p.stdout.readline().strip() for p in procs]
    checks.check(all(r == "ready 0" for r in ready), f"races: all start at version 0: {ready}")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    won, conflicts = {}, 0
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=120)
        checks.check(p.returncode == 0, f"races: racer {i} exits {p.returncode}: {err[-300:]}")
        for line in out.splitlines():
            w = line.split()
            if w[0] == "won":
                checks.check(int(w[1]) not in won, f"races: version {w[1]} won twice")
                won[int(w[1])] = (i, int(w[2]))
            elif w[0] == "conflicts":
                conflicts += int(w[1])
    total = racers * each
    checks.check(sorted(won) == list(range(1, total + 1)),
                 f"races: versions 1..{total} each won once: {sorted(won)[:5]}...")
    checks.check(conflicts >= racers - 1, f"races: {conflicts} conflicts (at least {racers - 1})")
    down = os.path.join(tmp, "race")
    moto.download("race/", down)
    versions = replay(down)
    checks.check(len(versions) == total + 1, f"races: {len(versions)} versions in moto")
    adds = {}
    for v in range(1, len(versions)):
        with open(os.path.join(down, "_delta_log", "%020d.json" % v)) as f:
            actions = [json.loads(line) for line in f if line.strip()]
        paths = [a["add"]["path"] for a in actions if "add" in a]
        info = [a["commitInfo"] for a in actions if "commitInfo" in a]
        checks.check(len(paths) == 1 and info and info[0].get("readVersion") == v - 1,
                     f"races: version {v} holds one add read at {v - 1}: {paths} {info}")
        for p in paths:
            checks.check(p not in adds, f"races: {p} committed twice")
            adds[p] = v
        if v in won:
            i, k = won[v]
            checks.check(paths == [f"w{i}/f{k}.parquet"], f"races: version {v} is racer {i}'s")
    want = {f"w{i}/f{k}.parquet" for i in range(racers) for k in range(each)}
    checks.check(set(adds) == want, f"races: every append landed once ({len(adds)}/{len(want)})")


def check_faults(moto, tmp):
    proxy = Proxy(moto)
    base = os.path.join(tmp, "faults")
    os.makedirs(base)
    lake = s3_args(proxy, "faults/events")
    direct = s3_args(moto, "faults/events")
    args = ["--roles", "api,lake-sink", *lake, "--lake-batch-interval", "200ms"]
    ids = []
    srv = Server(log_dir=base, extra_args=args, env=CREDS).start()
    try:
        ids += post(srv, events(60, 2))
        checks.check(wait_rows(direct, 60), "faults: first 60 events in the table")
        before = len(moto.keys("faults/events/_delta_log/"))

        # The server goes away: every request's connection is dropped unanswered.
        proxy.mode = lambda m, p: "drop"
        ids += post(srv, events(60, 3))
        ok, body = wait_ready(srv, 503)
        checks.check(ok and b"lake-sink" in body, f"faults: /ready 503 while S3 is gone: {body!r}")
        checks.check(len(moto.keys("faults/events/_delta_log/")) == before,
                     "faults: no commit while S3 is gone")
        srv.kill()  # SIGKILL mid-outage: the batch in flight is lost from memory only
        proxy.mode = lambda m, p: None
        srv = Server(log_dir=base, extra_args=args, env=CREDS).start()
        checks.check(wait_rows(direct, 120), "faults: after the outage and a SIGKILL, 120 rows")

        # The Delta commits answered with 500 (the data files go in): batches are abandoned.
        fails = {"n": 0}

        def commit_500(method, path):
            if method == "PUT" and "/_delta_log/" in path:
                fails["n"] += 1
                return 500, (b"<Error><Code>InternalError</Code><Message>injected</Message>"
                             b"</Error>")
            return None
        proxy.mode = commit_500
        before = len(moto.keys("faults/events/_delta_log/"))
        ids += post(srv, events(60, 4))
        ok, body = wait_ready(srv, 503)
        checks.check(ok and b"commit" in body, f"faults: /ready 503 names the commit: {body!r}")
        deadline = time.time() + 30
        while fails["n"] < 6 and time.time() < deadline:
            time.sleep(0.1)
        checks.check(fails["n"] >= 6 and
                     len(moto.keys("faults/events/_delta_log/")) == before,
                     f"faults: {fails['n']} refused commits, none visible")
        proxy.mode = lambda m, p: None
        checks.check(wait_rows(direct, 180), "faults: 180 rows once commits go through")

        # A commit stored whose answer is lost, and the store unreadable for a while after
        # (deletes still pass): the sink cannot tell whether it landed, so it keeps the
        # files; once it can read the table it drops the batch it re-read, not doubled.
        lost = {"at": None}

        def lost_answer(method, path):
            if lost["at"] is None and method == "PUT" and "/_delta_log/" in path:
                lost["at"] = time.time()
                return "lost"
            if lost["at"] is not None and time.time() < lost["at"] + 5 and method != "DELETE":
                return "drop"
            return None
        proxy.mode = lost_answer
        ids += post(srv, events(60, 5))
        checks.check(wait_rows(direct, 240, timeout=90), "faults: 240 rows after the lost answer")
        # The commit did land (moto holds it); the sink finds out once it can read again.
        deadline = time.time() + 60
        while time.time() < deadline and not any("already in the table" in line
                                                  for line in srv.stderr_lines):
            time.sleep(0.1)
        checks.check(any("already in the table" in line for line in srv.stderr_lines),
                     "faults: the re-read batch was found already in the table")
        proxy.mode = lambda m, p: None
        checks.check(wait_ready(srv, 200)[0], "faults: /ready 200 again")
        status, _, body = srv.request("GET", "/metrics")
        checks.check(b"sluice_lake_failures_total 0" not in body, "faults: failures counted")
        checks.check(srv.stop() == 0, "faults: sluice exits 0")
    finally:
        srv.kill()
        proxy.stop()
    down = os.path.join(base, "down")
    moto.download("faults/events/", down)
    files, versions = table_files(down)
    got = sorted(json.loads(r)["event_id"] for r in rows_of(files))
    checks.check(got == sorted(ids), f"faults: {len(got)} rows for {len(ids)} events, each once")
    referenced = {urllib.parse.unquote(a["path"]) for v in versions for a in v["files"].values()}
    stray = [k for k in moto.keys("faults/events/")
             if "/_delta_log/" not in k and k[len("faults/events/"):] not in referenced]
    checks.check(not stray, f"faults: abandoned batches left no data file behind: {stray[:5]}")


def main():
    if importlib.util.find_spec("moto") is None:
        print("moto is not installed: skipping the lake-on-S3 test")
        sys.exit(77)
    node_packages()
    tmp = tempfile.mkdtemp(prefix="sluice-lake-s3-")
    moto = Moto(BUCKET)
    try:
        status, _ = moto.request("PUT", f"/{BUCKET}")
        checks.check(status == 200, f"bucket created: {status}")
        check_same_as_local(moto, tmp)
        check_hint(moto, tmp)
        check_vacuum(moto, tmp)
        check_vacuum_uploads(moto, tmp)
        check_optimize(moto, tmp)
        check_races(moto, tmp)
        check_faults(moto, tmp)
    finally:
        moto.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    checks.finish()


if __name__ == "__main__":
    main()
