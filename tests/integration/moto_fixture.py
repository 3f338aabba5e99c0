"""moto_server for the S3 tests: started serially (moto_serial.py) on 127.0.0.1 at a free
port, and read directly over HTTP as the independent check of what sluice stored."""

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET

from harness import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class Moto:
    """A moto_server on a free port serving `bucket` (keys() and download() read it); env
    adds settings (INITIAL_NO_AUTH_ACTION_COUNT)."""

    def __init__(self, bucket, env=None):
        self.bucket = bucket
        self.port = free_port()
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "moto_serial.py"), "127.0.0.1", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})))
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("moto_server did not start:\n" + self.log_text())
                time.sleep(0.2)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def log_text(self):
        self.log.seek(0)
        return self.log.read()

    def request(self, method, path, body=None, headers=None):
        """A direct request. moto without authentication takes any signature, but answers
        anonymous object reads with 403, hence the header."""
        h = {"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/"
                              "aws4_request, SignedHeaders=host, Signature=0"}
        h.update(headers or {})
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def keys(self, prefix):
        """Every key of the bucket under prefix, with ListObjectsV2 (pages followed)."""
        out, token = [], None
        while True:
            q = {"list-type": "2", "prefix": prefix}
            if token:
                q["continuation-token"] = token
            status, body = self.request("GET", f"/{self.bucket}?" + urllib.parse.urlencode(q))
            assert status == 200, (status, body[:300])
            root = ET.fromstring(body)
            out += [c.find(S3_NS + "Key").text for c in root.findall(S3_NS + "Contents")]
            t = root.find(S3_NS + "NextContinuationToken")
            if t is None:
                return out
            token = t.text

    def download(self, prefix, dest):
        """Copies every object under prefix into dest (a table as a directory)."""
        for key in self.keys(prefix):
            status, body = self.request("GET", f"/{self.bucket}/" + urllib.parse.quote(key))
            assert status == 200, (key, status)
            path = os.path.join(dest, key[len(prefix):])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(body)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
