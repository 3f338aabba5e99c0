"""A real PostgreSQL 15 for tests: initdb into a temporary directory, listen on 127.0.0.1
at a free port (and a private Unix socket directory), stop and restart on demand. Queries
go through psql, so the tests need nothing outside the standard library."""

import os
import pwd
import shutil
import subprocess
import tempfile
import time

from harness import free_port

PG_BIN = os.environ.get("SLUICE_PG_BIN", "/usr/lib/postgresql/15/bin")


def as_server_user():
    """PostgreSQL refuses to run as root: as root, run its programs as user postgres."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


class Postgres:
    """Use as a context manager. .uri is a libpq URI for user "sluice", database "sluice"."""

    def __init__(self, settings=None):
        self.dir = tempfile.mkdtemp(prefix="sluice-pg-")
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.uri = f"postgres://sluice@127.0.0.1:{self.port}/sluice"
        # Small and quick for tests; durability stays on (fsync) because the tests
        # restart the server and expect what it acknowledged to be there.
        self.settings = {"listen_addresses": "127.0.0.1", "port": str(self.port),
                         "unix_socket_directories": self.dir, "max_connections": "20",
                         "shared_buffers": "64MB", "log_min_messages": "warning",
                         "timezone": "UTC"}
        self.settings.update(settings or {})

    def _run(self, *args, check=True):
        r = subprocess.run([*as_server_user(), os.path.join(PG_BIN, args[0]), *args[1:]],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({r.returncode}): {r.stdout.strip()}")
        return r

    def start(self):
        if not os.path.exists(self.data):
            self._run("initdb", "-D", self.data, "-U", "sluice", "--auth=trust", "-E", "UTF8",
                      "--locale=C", "--no-sync")
            with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
                for k, v in self.settings.items():
                    f.write(f"{k} = '{v}'\n")
            self._pg_ctl_start()
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "sluice",
                      "sluice")
        else:
            self._pg_ctl_start()
        return self

    def _pg_ctl_start(self):
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"),
                  "-w", "-t", "60", "start")

    def stop(self, mode="fast"):
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop", check=False)

    def restart(self, mode="fast"):
        self.stop(mode)
        self._pg_ctl_start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def query(self, sql, retries=0):
        """Rows of the last statement of sql, each a tuple of strings (None for NULL)."""
        for attempt in range(retries + 1):
            r = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-At", "-F", "\x1f",
                                "-P", "null=\x1e", "-v", "ON_ERROR_STOP=1", "-d", self.uri,
                                "-c", sql], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
            if r.returncode == 0:
                break
            if attempt == retries:
                raise RuntimeError(f"psql failed: {r.stderr.strip()}\nquery: {sql}")
            time.sleep(0.5)
        rows = []
        for line in r.stdout.split("\n"):
            if line == "":
                continue
            rows.append(tuple(None if v == "\x1e" else v for v in line.split("\x1f")))
        return rows

    def value(self, sql, retries=0):
        rows = self.query(sql, retries)
        return rows[0][0] if rows else None

    def server_log(self):
        try:
            with open(os.path.join(self.dir, "server.log")) as f:
                return f.read()
        except OSError:
            return ""
