"""Durability: clients send events and record every acknowledged event_id while the server
is killed with SIGKILL several times and restarted on the same log. Afterwards every
acknowledged event is in the log exactly once, and no event is there twice."""

import http.client
import json
import random
import shutil
import tempfile
import threading
import time
from collections import Counter

from harness import Checks, Server, event

KILLS = 5
CLIENTS = 6

checks = Checks("durability")
acked = set()
acked_lock = threading.Lock()
stop = threading.Event()
current = {"port": None}
errors = Counter()


def client(seed):
    rnd = random.Random(seed)
    conn, port = None, None
    while not stop.is_set():
        if current["port"] != port or conn is None:
            port = current["port"]
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        n = rnd.choice([1, 1, 1, 5, 20])
        events = [event() for _ in range(n)]
        payload = events[0] if n == 1 else events
        try:
            conn.request("POST", "/analytics", body=json.dumps(payload),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            answer = json.loads(r.read())
            if r.status == 200:
                with acked_lock:
                    acked.update(answer["eventIds"])
            else:
                errors[r.status] += 1
        except (OSError, http.client.HTTPException, ValueError):
            errors["connection"] += 1
            conn.close()
            conn = None
            time.sleep(0.01)


def main():
    base = tempfile.mkdtemp(prefix="sluice-durability-")
    try:
        srv = Server(log_dir=base).start()
        current["port"] = srv.port
        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for k in range(KILLS):
            time.sleep(random.uniform(0.5, 1.5))
            before = len(acked)
            srv.kill()  # SIGKILL
            srv = Server(log_dir=base).start()
            current["port"] = srv.port
            print(f"kill {k + 1}: {before} events acknowledged so far", flush=True)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join()
        checks.check(srv.stop() == 0, "server did not exit 0 on SIGTERM")
        stored = [e["event_id"] for e in srv.read_log()]
        counts = Counter(stored)
        missing = acked - counts.keys()
        dupes = [i for i, c in counts.items() if c > 1]
        print(f"acknowledged {len(acked)}, stored {len(stored)}, client errors {dict(errors)}",
              flush=True)
        checks.check(len(acked) > 1000, f"too few events acknowledged to mean anything: {len(acked)}")
        checks.check(not missing, f"{len(missing)} acknowledged events are missing from the log")
        checks.check(not dupes, f"{len(dupes)} events are in the log more than once")
        checks.check(errors["connection"] > 0, "no request was cut by a kill: the test did not bite")
    finally:
        stop.set()
        shutil.rmtree(base, ignore_errors=True)
    checks.finish()


if __name__ == "__main__":
    main()
