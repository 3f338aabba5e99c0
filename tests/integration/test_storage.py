"""Integration test of the storage module (src/storage) against a real S3-protocol server:
moto_server on 127.0.0.1, driven through sluice-storage-tool. Every operation, pagination
over more than 1,000 keys, put-if-absent races between threads and between processes,
multipart uploads, the Parquet writer streaming into an upload, ranged GETs, errors (bad credentials, missing bucket and key) and faults
(errors injected by a proxy in front of moto, the server going away mid-upload). moto is
read directly over HTTP as the independent check of what is stored.

Exit 77 (CTest: skipped) when moto is not installed. moto runs one request at a time
(moto_serial.py): its conditional PUT is atomic only so."""

import http.client
import importlib.util
import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import Checks  # noqa: E402
from moto_fixture import Moto  # noqa: E402

TOOL = os.environ.get("SLUICE_STORAGE_TOOL") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "sluice-storage-tool")
BUCKET = "sluice-test"


class Proxy:
    """An HTTP proxy in front of moto that can answer with injected errors: `fail` is a
    function (method, path) -> None (forward) or (status, body)."""

    def __init__(self, moto):
        proxy = self
        self.fail = lambda method, path: None
        self.seen = []
        self.headers = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def handle_one(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                proxy.seen.append((self.command, self.path))
                proxy.headers.append(dict((k.lower(), v) for k, v in self.headers.items()))
                inj = proxy.fail(self.command, self.path)
                if inj:
                    status, out = inj
                else:
                    hdrs = {k: v for k, v in self.headers.items()
                            if k.lower() not in ("connection", "content-length")}
                    c = http.client.HTTPConnection("127.0.0.1", moto.port, timeout=60)
                    c.request(self.command, self.path, body=body, headers=hdrs)
                    r = c.getresponse()
                    status, out = r.status, r.read()
                    resp_headers = r.getheaders()
                    c.close()
                self.send_response(status)
                if not inj:
                    for k, v in resp_headers:
                        if k.lower() not in ("content-length", "connection", "transfer-encoding",
                                             "server", "date"):
                            self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_one

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def tool(endpoint, *args, stdin=None, env=None, extra=()):
    cmd = [TOOL, "--endpoint", endpoint, "--path-style", *extra, *args]
    e = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    e.pop("AWS_SESSION_TOKEN", None)
    e.update(env or {})
    p = subprocess.run(cmd, input=stdin, capture_output=True, env=e, timeout=300)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def quote_key(key):
    return urllib.parse.quote(key, safe="/~")


def check_operations(t, moto, tmp):
    uri = f"s3://{BUCKET}/tables/events"
    ep = moto.endpoint
    keys = ["_delta_log/00000000000000000000.json", "event_date=2024-01-15/part-0.parquet",
            "odd keys/a b+c%d&e.txt", "unicod\u00e9/\u65e5\u672c.bin"]
    for i, key in enumerate(keys):
        path = os.path.join(tmp, f"in{i}")
        body = os.urandom(100 + i * 37)
        with open(path, "wb") as f:
            f.write(body)
        rc, _, err = tool(ep, uri, "put", key, path)
        t.check(rc == 0, f"put {key!r}: rc {rc} {err}")
        rc, out, err = tool(ep, uri, "get", key)
        t.check(rc == 0 and out == body, f"get {key!r} returns what was put: rc {rc} {err}")
        # Stored under the prefix, as moto itself tells.
        status, raw = moto.request("GET", f"/{BUCKET}/tables/events/{quote_key(key)}")
        t.check(status == 200 and raw == body, f"moto holds {key!r} under the prefix: {status}")
        rc, out, err = tool(ep, uri, "head", key)
        size, mtime = (out.decode().split("\t") + ["", ""])[:2]
        t.check(rc == 0 and int(size) == len(body) and
                abs(int(mtime) / 1000 - time.time()) < 3600, f"head {key!r}: {out!r} {err}")

    # An empty object: stored, read back empty, and no byte range in it.
    empty = os.path.join(tmp, "empty")
    open(empty, "wb").close()
    rc, _, err = tool(ep, uri, "put", "empty", empty)
    rc2, out, err2 = tool(ep, uri, "get", "empty")
    rc3, head, _ = tool(ep, uri, "head", "empty")
    rc4, _, err4 = tool(ep, uri, "get-range", "empty", "0", "1")
    t.check(rc == 0 and rc2 == 0 and out == b"" and head.startswith(b"0\t") and rc4 == 1 and
            "past the end" in err4, f"empty object: {rc} {rc2} {head!r} {rc4} {err} {err2} {err4}")
    rc, _, err = tool(ep, uri, "rm", "empty")

    # Replacing put; ranged GETs.
    data = bytes(range(256)) * 40
    path = os.path.join(tmp, "ranged")
    with open(path, "wb") as f:
        f.write(data)
    rc, _, err = tool(ep, uri, "put", keys[0], path)
    t.check(rc == 0, f"put replaces: {err}")
    for off, ln in [(0, 10), (1000, 4000), (10230, 100), (10239, 1)]:
        rc, out, err = tool(ep, uri, "get-range", keys[0], str(off), str(ln))
        t.check(rc == 0 and out == data[off:off + ln], f"range {off}+{ln}: rc {rc} {err}")
    rc, out, err = tool(ep, uri, "get-range", keys[0], "10240", "5")
    t.check(rc == 1 and "past the end" in err, f"range past the end refused: rc {rc} {err}")

    # put-if-absent: the second write is refused with the distinct code, content unchanged.
    rc, _, err = tool(ep, uri, "put-if-absent", "_delta_log/00000000000000000001.json", path)
    t.check(rc == 0, f"put-if-absent on a free key: {err}")
    other = os.path.join(tmp, "other")
    with open(other, "wb") as f:
        f.write(b"the loser's commit")
    rc, _, err = tool(ep, uri, "put-if-absent", "_delta_log/00000000000000000001.json", other)
    t.check(rc == 3 and "already exists" in err and "412" in err,
            f"put-if-absent on a taken key: rc {rc} {err}")
    rc, out, _ = tool(ep, uri, "get", "_delta_log/00000000000000000001.json")
    t.check(out == data, "the first writer's contents stay")

    # Delete; deleting again is fine; the key is gone.
    rc, _, err = tool(ep, uri, "rm", keys[2])
    t.check(rc == 0, f"rm: {err}")
    rc, _, err = tool(ep, uri, "rm", keys[2])
    t.check(rc == 0, f"rm again: {err}")
    rc, _, err = tool(ep, uri, "get", keys[2])
    t.check(rc == 2 and "404 NoSuchKey" in err, f"get after rm: rc {rc} {err}")
    rc, _, err = tool(ep, uri, "head", keys[2])
    t.check(rc == 2 and "404" in err, f"head after rm: rc {rc} {err}")

    # Listing of the table: every key once, in order, sizes right.
    rc, out, err = tool(ep, uri, "ls")
    listed = [line.split("\t")[0] for line in out.decode().splitlines()]
    want = sorted([k for k in keys if k != keys[2]] + ["_delta_log/00000000000000000001.json"])
    t.check(rc == 0 and listed == want, f"ls: {listed} want {want} {err}")
    rc, out, err = tool(ep, uri, "ls", "_delta_log/", "_delta_log/00000000000000000000.json")
    t.check(out.decode().split("\t")[0] == "_delta_log/00000000000000000001.json" and
            len(out.decode().splitlines()) == 1, f"ls with start-after: {out!r} {err}")

    # Errors: a missing bucket and a missing key are told apart.
    rc, _, err = tool(ep, "s3://no-such-bucket-here/x", "get", "k")
    t.check(rc == 1 and "NoSuchBucket" in err and "bad configuration" in err,
            f"missing bucket: rc {rc} {err}")
    rc, _, err = tool(ep, "s3://no-such-bucket-here/x", "rm", "k")
    t.check(rc == 1 and "NoSuchBucket" in err, f"delete in a missing bucket fails: rc {rc} {err}")
    rc, _, err = tool(ep, uri, "get", "never/written")
    t.check(rc == 2 and "NoSuchKey" in err and "never/written" in err, f"missing key: {err}")
    rc, _, err = tool(ep, uri, "put", "../escape", path)
    t.check(rc == 1 and "invalid storage key" in err, f"bad key refused before sending: {err}")


def check_pagination(t, moto):
    # 1,050 keys written straight into moto, then listed 100 per page by sluice.
    c = http.client.HTTPConnection("127.0.0.1", moto.port, timeout=60)
    want = []
    for i in range(1050):
        key = f"many/k{i:05d}"
        want.append(key)
        c.request("PUT", f"/{BUCKET}/{key}", body=str(i).encode())
        r = c.getresponse()
        r.read()
        if r.status != 200:
            t.check(False, f"seeding {key}: {r.status}")
            return
    c.close()
    before = moto.log_text().count("continuation-token=")
    rc, out, err = tool(moto.endpoint, f"s3://{BUCKET}", "ls", "many/", extra=("--page-keys", "100"))
    lines = out.decode().splitlines()
    listed = [line.split("\t")[0] for line in lines]
    t.check(rc == 0 and listed == sorted(want), f"1,050 keys listed once each, in order: "
            f"{len(listed)} keys, rc {rc} {err}")
    t.check(all(int(line.split("\t")[1]) == len(str(int(line.split("\t")[0][6:]))) for line in lines),
            "listed sizes match")
    pages = moto.log_text().count("continuation-token=") - before
    t.check(pages == 10, f"10 follow-up pages with continuation tokens (saw {pages})")
    rc, out, err = tool(moto.endpoint, f"s3://{BUCKET}/many", "ls", "", "k01000",
                        extra=("--page-keys", "7"))
    listed = [line.split("\t")[0] for line in out.decode().splitlines()]
    t.check(listed == [f"k{i:05d}" for i in range(1001, 1050)],
            f"start-after across small pages: {listed[:3]}... ({len(listed)})")


def check_races(t, moto, tmp):
    uri = f"s3://{BUCKET}/race"
    for v in range(5):
        rc, out, err = tool(moto.endpoint, uri, "race", f"_delta_log/{v:020d}.json", "16")
        t.check(rc == 0 and out.decode().strip() == "won 1 lost 15",
                f"16 threads race on version {v}: {out!r} {err}")
    # Processes started together on one key: exactly one wins, its body is stored.
    key = "_delta_log/proc.json"
    procs = []
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    for i in range(8):
        path = os.path.join(tmp, f"racer{i}")
        with open(path, "wb") as f:
            f.write(f"process {i}".encode())
        procs.append(subprocess.Popen(
            [TOOL, "--endpoint", moto.endpoint, "--path-style", uri, "put-if-absent", key, path],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env))
    rcs = [p.wait(120) for p in procs]
    winners = [i for i, rc in enumerate(rcs) if rc == 0]
    t.check(len(winners) == 1 and sorted(rcs) == [0] + [3] * 7,
            f"8 processes: exactly one wins, the rest are told it exists: {rcs}")
    rc, out, _ = tool(moto.endpoint, uri, "get", key)
    t.check(winners and out == f"process {winners[0]}".encode(), f"the winner's body: {out!r}")


def feed_rest(p):
    """Writes the rest of an upload; the tool may already have failed and exited."""
    try:
        p.stdin.write(os.urandom(6 * 1024 * 1024))
        p.stdin.close()
    except BrokenPipeError:
        pass


def list_uploads(moto):
    status, body = moto.request("GET", f"/{BUCKET}?uploads")
    return re.findall(rb"<Key>([^<]*)</Key>", body)


def check_multipart(t, moto, tmp):
    uri = f"s3://{BUCKET}/mp"
    big = os.path.join(tmp, "big")
    data = os.urandom(12 * 1024 * 1024 + 12345)
    with open(big, "wb") as f:
        f.write(data)
    rc, _, err = tool(moto.endpoint, uri, "upload", "big.bin", big,
                      extra=("--part-size", str(5 * 1024 * 1024)))
    t.check(rc == 0, f"multipart upload of 12 MiB in 5 MiB parts: {err}")
    log = moto.log_text()
    parts = set(re.findall(r"PUT /[^ ]*mp/big\.bin\?partNumber=(\d+)", log))
    t.check(parts == {"1", "2", "3"}, f"three parts sent: {sorted(parts)}")
    status, raw = moto.request("GET", f"/{BUCKET}/mp/big.bin")
    t.check(status == 200 and raw == data, f"moto returns the 12 MiB object whole: {status}")
    rc, out, err = tool(moto.endpoint, uri, "get-range", "big.bin", str(5 * 1024 * 1024 - 3), "6")
    t.check(out == data[5 * 1024 * 1024 - 3:5 * 1024 * 1024 + 3], f"range across parts: {err}")
    t.check(b"mp/big.bin" not in list_uploads(moto), "no multipart upload left open")
    # Under the part size: one PUT, no multipart.
    rc, _, err = tool(moto.endpoint, uri, "upload", "small.bin", "-", stdin=data[:1000])
    t.check(rc == 0 and not re.search(r"small\.bin\?uploads", moto.log_text()),
            f"a small upload is one PUT: {err}")
    status, raw = moto.request("GET", f"/{BUCKET}/mp/small.bin")
    t.check(raw == data[:1000], "small upload stored")


def check_parquet_stream(t, moto, tmp):
    """The Parquet writer streams a 300,000-row file (about 8.5 MB) into an upload on each
    backend: S3 gets it as a multipart upload, and the object is byte for byte the file
    the same rows make on the local disk, a whole Parquet file (magic at both ends, a
    footer that fits)."""
    rc, out_file, err = tool(moto.endpoint, f"file://{tmp}/lake", "parquet", "t/p.parquet",
                             "300000")
    t.check(rc == 0, f"parquet onto file://: {err}")
    rc, out_s3, err = tool(moto.endpoint, f"s3://{BUCKET}/lake", "parquet", "t/p.parquet",
                           "300000", extra=("--part-size", str(5 * 1024 * 1024)))
    t.check(rc == 0 and out_s3 == out_file, f"parquet onto s3://: {out_s3!r} {err}")
    parts = set(re.findall(r"PUT /[^ ]*lake/t/p\.parquet\?partNumber=(\d+)", moto.log_text()))
    t.check(parts == {"1", "2"}, f"the Parquet file went up in two parts: {sorted(parts)}")
    with open(os.path.join(tmp, "lake", "t", "p.parquet"), "rb") as f:
        disk = f.read()
    status, obj = moto.request("GET", f"/{BUCKET}/lake/t/p.parquet")
    footer = int.from_bytes(obj[-8:-4], "little") if len(obj) > 12 else -1
    t.check(status == 200 and obj == disk and obj[:4] == b"PAR1" and obj[-4:] == b"PAR1" and
            0 < footer < len(obj) - 12 and int(out_s3.split()[1]) == len(obj),
            f"S3 object equals the disk file and is whole Parquet: {len(obj)} vs {len(disk)}")


def check_faults(t, moto, tmp):
    proxy = Proxy(moto)
    uri = f"s3://{BUCKET}/faults"
    small = os.path.join(tmp, "small")
    with open(small, "wb") as f:
        f.write(b"x" * 1000)
    try:
        # Transient 503 SlowDown and 500: retried with backoff, then the write lands.
        budget = {"n": 2}

        def flaky(method, path):
            if method == "PUT" and "flaky" in path and budget["n"] > 0:
                budget["n"] -= 1
                return 503, (b"<Error><Code>SlowDown</Code><Message>Please reduce your "
                             b"request rate.</Message></Error>")
            return None
        proxy.fail = flaky
        rc, _, err = tool(proxy.endpoint, uri, "put", "flaky", small)
        puts = [p for m, p in proxy.seen if m == "PUT" and "flaky" in p]
        t.check(rc == 0 and len(puts) == 3, f"two 503s then success: rc {rc}, {len(puts)} tries {err}")

        # A session token is sent and signed.
        proxy.headers.clear()
        rc, _, err = tool(proxy.endpoint, uri, "head", "flaky",
                          env={"AWS_SESSION_TOKEN": "FwoGZXIvYXdzEXAMPLETOKEN"})
        h = proxy.headers[-1] if proxy.headers else {}
        t.check(rc == 0 and h.get("x-amz-security-token") == "FwoGZXIvYXdzEXAMPLETOKEN" and
                "x-amz-security-token" in h.get("authorization", "").split("SignedHeaders=")[-1]
                and re.match(r"[0-9a-f]{64}$", h.get("x-amz-content-sha256", "")),
                f"session token sent and signed, payload hash header present: {h} {err}")

        # Errors that never stop: bounded attempts, a clear message quoting S3's code.
        proxy.fail = lambda m, p: (500, b"<Error><Code>InternalError</Code><Message>We "
                                   b"encountered an internal error.</Message></Error>") \
            if "always" in p else None
        proxy.seen.clear()
        start = time.time()
        rc, _, err = tool(proxy.endpoint, uri, "put", "always", small,
                          extra=("--attempts", "4"))
        tries = len([1 for m, p in proxy.seen if "always" in p])
        t.check(rc == 1 and "500 InternalError" in err and "after 4 attempts" in err and
                tries == 4, f"persistent 500: rc {rc}, {tries} tries, {err}")
        t.check(time.time() - start < 30, "retries stay within their budget")

        # CompleteMultipartUpload refused: the upload is aborted, nothing is visible.
        proxy.fail = lambda m, p: (500, b"<Error><Code>InternalError</Code><Message>boom"
                                   b"</Message></Error>") \
            if m == "POST" and "uploadId=" in p else None
        big = os.path.join(tmp, "big6")
        with open(big, "wb") as f:
            f.write(os.urandom(6 * 1024 * 1024))
        rc, _, err = tool(proxy.endpoint, uri, "upload", "refused.bin", big,
                          extra=("--part-size", str(5 * 1024 * 1024), "--attempts", "2"))
        status, _ = moto.request("HEAD", f"/{BUCKET}/faults/refused.bin")
        t.check(rc == 1 and "InternalError" in err and status == 404,
                f"failed completion leaves nothing visible: rc {rc}, HEAD {status}, {err}")
        aborted = any(m == "DELETE" and "refused.bin?uploadId=" in p for m, p in proxy.seen)
        t.check(aborted and b"faults/refused.bin" not in list_uploads(moto),
                "the failed multipart upload was aborted")

        # The server goes away mid-upload: the stream fails, nothing is visible.
        proxy.fail = lambda m, p: None
        proxy.seen.clear()
        p = subprocess.Popen(
            [TOOL, "--endpoint", proxy.endpoint, "--path-style", "--part-size",
             str(5 * 1024 * 1024), "--attempts", "3", "--budget-ms", "3000", uri, "upload",
             "cut.bin", "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=dict(os.environ, AWS_ACCESS_KEY_ID="testing",
                                             AWS_SECRET_ACCESS_KEY="testing"))
        p.stdin.write(os.urandom(6 * 1024 * 1024))
        p.stdin.flush()
        deadline = time.time() + 60
        while not any("cut.bin?partNumber=1" in q for _, q in proxy.seen) and time.time() < deadline:
            time.sleep(0.05)
        t.check(any("cut.bin?partNumber=1" in q for _, q in proxy.seen), "part 1 went out")
        time.sleep(0.3)
        proxy.stop()
        feed_rest(p)
        rc = p.wait(120)
        err = p.stderr.read().decode()
        status, _ = moto.request("HEAD", f"/{BUCKET}/faults/cut.bin")
        t.check(rc == 1 and "i/o error" in err and status == 404,
                f"server gone mid-upload: rc {rc}, HEAD {status}, {err}")
    finally:
        try:
            proxy.stop()
        except Exception:
            pass


def check_moto_stops(t, tmp):
    """moto itself killed while an upload streams in: the writer fails cleanly, bounded."""
    moto = Moto(BUCKET)
    try:
        moto.request("PUT", f"/{BUCKET}")
        p = subprocess.Popen(
            [TOOL, "--endpoint", moto.endpoint, "--path-style", "--part-size",
             str(5 * 1024 * 1024), "--attempts", "3", "--budget-ms", "3000",
             f"s3://{BUCKET}/x", "upload", "stopped.bin", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"))
        p.stdin.write(os.urandom(6 * 1024 * 1024))
        p.stdin.flush()
        deadline = time.time() + 60
        while "stopped.bin?partNumber=1" not in moto.log_text() and time.time() < deadline:
            time.sleep(0.05)
        moto.proc.send_signal(signal.SIGKILL)
        moto.proc.wait()
        feed_rest(p)
        start = time.time()
        rc = p.wait(120)
        err = p.stderr.read().decode()
        t.check(rc == 1 and "i/o error" in err and time.time() - start < 60,
                f"moto killed mid-upload: rc {rc}, {err.strip()}")
    finally:
        moto.stop()


def check_credentials(t, tmp):
    """moto with authentication on: an IAM user's key works (moto verifies our SigV4
    signatures), a wrong secret or an unknown key gets a clear 403."""
    moto = Moto(BUCKET, env={"INITIAL_NO_AUTH_ACTION_COUNT": "4"})
    try:
        def iam(params):
            body = urllib.parse.urlencode(dict(params, Version="2010-05-08"))
            return moto.request("POST", "/", body=body, headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": "AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/iam/"
                                 "aws4_request, SignedHeaders=host, Signature=0"})
        iam({"Action": "CreateUser", "UserName": "sluice"})
        _, d = iam({"Action": "CreateAccessKey", "UserName": "sluice"})
        ak = re.search(rb"<AccessKeyId>(.*?)</", d).group(1).decode()
        sk = re.search(rb"<SecretAccessKey>(.*?)</", d).group(1).decode()
        policy = ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*",'
                  '"Resource":"*"}]}')
        iam({"Action": "PutUserPolicy", "UserName": "sluice", "PolicyName": "all",
             "PolicyDocument": policy})
        moto.request("PUT", f"/{BUCKET}")
        good = {"AWS_ACCESS_KEY_ID": ak, "AWS_SECRET_ACCESS_KEY": sk}
        path = os.path.join(tmp, "cred")
        with open(path, "wb") as f:
            f.write(b"signed")
        # (Keys of plain characters: moto re-derives the canonical URI from a decoded path,
        # so it cannot verify keys with reserved characters that real S3 accepts.)
        uri = f"s3://{BUCKET}"
        rc, _, err = tool(moto.endpoint, uri, "put", "signed.txt", path, env=good)
        t.check(rc == 0, f"signed put accepted: {err}")
        rc, out, err = tool(moto.endpoint, uri, "get-range", "signed.txt", "1", "3", env=good)
        t.check(rc == 0 and out == b"ign", f"signed ranged get: {err}")
        rc, _, err = tool(moto.endpoint, uri, "put-if-absent", "signed.txt", path, env=good)
        t.check(rc == 3, f"signed conditional put: rc {rc} {err}")
        rc, out, err = tool(moto.endpoint, uri, "ls", "sig", env=good)
        t.check(rc == 0 and out.decode().startswith("signed.txt\t6"), f"signed list: {err}")
        big = os.path.join(tmp, "credbig")
        with open(big, "wb") as f:
            f.write(os.urandom(5 * 1024 * 1024 + 10))
        rc, _, err = tool(moto.endpoint, uri, "upload", "signedbig", big, env=good,
                          extra=("--part-size", str(5 * 1024 * 1024)))
        t.check(rc == 0, f"signed multipart upload: {err}")
        rc, _, err = tool(moto.endpoint, uri, "rm", "signed.txt", env=good)
        t.check(rc == 0, f"signed delete: {err}")
        rc, _, err = tool(moto.endpoint, uri, "get", "signedbig",
                          env={"AWS_ACCESS_KEY_ID": ak, "AWS_SECRET_ACCESS_KEY": "wrong"})
        t.check(rc == 1 and "403 SignatureDoesNotMatch" in err and "bad configuration" in err,
                f"wrong secret: clear 403: {err}")
        rc, _, err = tool(moto.endpoint, uri, "get", "signedbig",
                          env={"AWS_ACCESS_KEY_ID": "AKIANOTAKEY", "AWS_SECRET_ACCESS_KEY": sk})
        t.check(rc == 1 and "403 InvalidAccessKeyId" in err, f"unknown key: clear 403: {err}")
        rc, _, err = tool(moto.endpoint, uri, "get", "signedbig",
                          env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
        t.check(rc == 1 and "AWS_ACCESS_KEY_ID" in err, f"no credentials: {err}")
    finally:
        moto.stop()


def main():
    if importlib.util.find_spec("moto") is None:
        print("moto is not installed: skipping the S3 storage test")
        sys.exit(77)
    t = Checks("test_storage")
    tmp = tempfile.mkdtemp(prefix="sluice-storage-")
    moto = Moto(BUCKET)
    try:
        status, _ = moto.request("PUT", f"/{BUCKET}")
        t.check(status == 200, f"bucket created: {status}")
        check_operations(t, moto, tmp)
        check_pagination(t, moto)
        check_races(t, moto, tmp)
        check_multipart(t, moto, tmp)
        check_parquet_stream(t, moto, tmp)
        check_faults(t, moto, tmp)
    finally:
        moto.stop()
    check_moto_stops(t, tmp)
    check_credentials(t, tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    t.finish()


if __name__ == "__main__":
    main()
