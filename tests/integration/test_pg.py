"""The PostgreSQL hot store against a real PostgreSQL 15 started here: migrations are
idempotent (also run concurrently); partitions are created ahead and dropped past
retention; the reference stack's Grafana panel queries run unchanged on a known event set
and return the numbers this test computes itself; a row PostgreSQL refuses lands in
sluice_dead_letters while the rest of its batch commits; a client's retry is stored once;
with PostgreSQL down ingest keeps accepting, /ready and /metrics say so, and everything
arrives once it is back; a graceful stop commits the batch the sink holds; records near
the batch's byte bound are carried over to the next batch, and one over half of it becomes
a dead letter."""

import datetime as dt
import subprocess
import threading
import time
import uuid
from collections import Counter

from harness import SLUICE, Checks, Server, event
from pgfixture import Postgres

checks = Checks("pg")
UTC = dt.timezone.utc


def migrate(pg, *args):
    return subprocess.run([SLUICE, "pg", "migrate", "--pg", pg.uri, *args], capture_output=True,
                          text=True, timeout=120)


def day_name(d):
    return "analytics_events_p" + d.strftime("%Y%m%d")


def partitions(pg):
    return {r[0] for r in pg.query(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'analytics_events'::regclass")}


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def pg_time(t):
    """How psql prints a timestamptz in UTC."""
    s = t.strftime("%Y-%m-%d %H:%M:%S")
    if t.microsecond:
        s += (".%06d" % t.microsecond).rstrip("0")
    return s + "+00"


def wait_rows(pg, n, timeout=60):
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        got = int(pg.value("SELECT count(*) FROM analytics_events", retries=3))
        if got >= n:
            return got
        time.sleep(0.2)
    return got


def test_migrations(pg):
    procs = [subprocess.Popen([SLUICE, "pg", "migrate", "--pg", pg.uri,
                               "--pg-partitions-ahead", "5"], stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    checks.check(all(p.returncode == 0 for p in procs),
                 f"three concurrent migrations succeed: {errs}")
    schema = pg.query("SELECT table_name, column_name, data_type FROM information_schema.columns"
                      " WHERE table_schema = 'public' ORDER BY 1, 2")
    r = migrate(pg)
    checks.check(r.returncode == 0, f"migrating again succeeds: {r.stderr}")
    checks.check(pg.query("SELECT version FROM sluice_migrations ORDER BY 1")
                 == [("1",), ("2",), ("3",)], "each migration is recorded once")
    ff = pg.query("SELECT relname, reloptions::text FROM pg_class WHERE relname LIKE "
                  "'sluice_rollup_%' AND relkind = 'r' ORDER BY 1")
    checks.check(ff == [(t, "{fillfactor=50}") for t in ("sluice_rollup_distinct",
                                                         "sluice_rollup_minute",
                                                         "sluice_rollup_resources")],
                 f"rollup tables leave room for in-place updates: {ff}")
    # A store at version 1 (before the fillfactor and the offsets' log ids) is brought to 3.
    pg.query("DELETE FROM sluice_migrations WHERE version > 1; ALTER TABLE "
             "sluice_rollup_resources RESET (fillfactor); ALTER TABLE sluice_offsets DROP "
             "COLUMN log_id")
    r = migrate(pg)
    checks.check(r.returncode == 0 and pg.value("SELECT max(version) FROM sluice_migrations") == "3"
                 and pg.value("SELECT reloptions::text FROM pg_class WHERE relname = "
                              "'sluice_rollup_resources'") == "{fillfactor=50}",
                 f"a version-1 store migrates to 3: {r.stderr}")
    checks.check(pg.query("SELECT table_name, column_name, data_type FROM "
                          "information_schema.columns WHERE table_schema = 'public' "
                          "ORDER BY 1, 2") == schema, "migrating again changes nothing")
    cols = {r[0] for r in pg.query("SELECT column_name FROM information_schema.columns "
                                   "WHERE table_name = 'analytics_events'")}
    want = {"id", "timestamp", "channel", "platform", "event_type", "event_category",
            "resource_id", "resource_title", "interaction_target", "session_id", "user_id",
            "device_id", "user_agent", "client_version", "interaction_value",
            "interaction_text", "metadata", "created_at", "event_id", "received_at"}
    checks.check(want <= cols, f"analytics_events has the reference columns: {want - cols}")
    today = dt.datetime.now(UTC).date()
    have = partitions(pg)
    ahead = {day_name(today + dt.timedelta(days=k)) for k in range(6)}
    checks.check(ahead <= have, f"partitions today..today+5 exist: missing {ahead - have}")
    r = migrate(pg, "--pg", "postgres://nobody@127.0.0.1:1/none")
    checks.check(r.returncode == 1 and "could not connect" in r.stderr,
                 f"an unreachable server is a clear error: {r.stderr.strip()}")


def test_retention(pg):
    today = dt.datetime.now(UTC).date()
    old, recent = today - dt.timedelta(days=40), today - dt.timedelta(days=10)
    for d in (old, recent):
        nxt = d + dt.timedelta(days=1)
        pg.query(f"CREATE TABLE {day_name(d)} PARTITION OF analytics_events FOR VALUES FROM "
                 f"('{d}') TO ('{nxt}')")
        ts = f"{d} 12:00:00+00"
        pg.query("INSERT INTO analytics_events (event_id, \"timestamp\", received_at, channel,"
                 f" event_type, session_id) VALUES ('old-{d}', '{ts}', '{ts}', 'web', 'x', 's')")
        pg.query(f"INSERT INTO sluice_event_ids VALUES ('old-{d}', '{ts}')")
        pg.query("INSERT INTO sluice_rollup_minute (bucket, channel, event_type, events, "
                 f"value_count) VALUES ('{ts}', 'web', 'x', 1, 0)")
        pg.query("INSERT INTO sluice_rollup_distinct VALUES "
                 f"('{ts}', 'web', 'session_id', array_fill(1::smallint, ARRAY[1024]))")
    r = migrate(pg, "--pg-retention", "30d")
    checks.check(r.returncode == 0, f"retention run succeeds: {r.stderr}")
    have = partitions(pg)
    checks.check(day_name(old) not in have, f"the partition of {old} (40 days) is dropped")
    checks.check(day_name(recent) in have, f"the partition of {recent} (10 days) is kept")
    checks.check(pg.query("SELECT event_id FROM analytics_events ORDER BY 1") ==
                 [(f"old-{recent}",)], "only the kept day's row remains")
    checks.check(pg.query("SELECT event_id FROM sluice_event_ids ORDER BY 1") ==
                 [(f"old-{recent}",)], "dedup ids of the dropped day are gone")
    checks.check(pg.value("SELECT count(*) FROM sluice_rollup_minute") == "1" and
                 pg.value("SELECT count(*) FROM sluice_rollup_distinct") == "1",
                 "rollup rows of the dropped day are gone, the kept day's stay")
    pg.query(f"DROP TABLE {day_name(recent)}; TRUNCATE sluice_event_ids, sluice_rollup_minute,"
             " sluice_rollup_distinct")


# ---- the reference dashboards' queries, verbatim (Grafana macros expanded as Grafana does)

PANELS = {
    "events over time by type": """SELECT
  date_trunc('minute', timestamp) AS time,
  count(*) as value,
  event_type as metric
FROM analytics_events
WHERE timestamp > NOW() - INTERVAL '1 hour'
GROUP BY time, event_type
ORDER BY time""",
    "total events": """SELECT count(*) as "Total Events" FROM analytics_events""",
    "events by type": """SELECT event_type, count(*) FROM analytics_events GROUP BY event_type""",
    "recent events": """SELECT 
  timestamp,
  event_type,
  page_url,
  button_id
FROM analytics_events
ORDER BY timestamp DESC
LIMIT 10""",
    "events by channel": """SELECT
  date_trunc('minute', timestamp) as time,
  channel as metric,
  COUNT(*) as value
FROM analytics_events
WHERE $__timeFilter(timestamp)
GROUP BY time, channel
ORDER BY time""",
    "channel distribution": """SELECT
  channel,
  COUNT(*) as count
FROM analytics_events
WHERE timestamp > NOW() - INTERVAL '1 hour'
GROUP BY channel
ORDER BY count DESC""",
    "top event types": """SELECT
  event_type,
  COUNT(*) as count
FROM analytics_events
WHERE timestamp > NOW() - INTERVAL '1 hour'
GROUP BY event_type
ORDER BY count DESC
LIMIT 10""",
    "total events 1h": """SELECT COUNT(*) as count
FROM analytics_events
WHERE timestamp > NOW() - INTERVAL '1 hour'""",
    "active sessions": """SELECT COUNT(DISTINCT session_id) as count
FROM analytics_events
WHERE timestamp > NOW() - INTERVAL '1 hour'""",
    "unique users": """SELECT COUNT(DISTINCT user_id) as count
FROM analytics_events
WHERE timestamp > NOW() - INTERVAL '1 hour'
  AND user_id IS NOT NULL""",
    "active channels": """SELECT COUNT(DISTINCT channel) as count
FROM analytics_events
WHERE timestamp > NOW() - INTERVAL '1 hour'""",
    "events by category": """SELECT
  time_bucket as time,
  event_category as metric,
  SUM(event_count) as value
FROM analytics_summary
WHERE $__timeFilter(time_bucket)
GROUP BY time_bucket, event_category
ORDER BY time_bucket""",
    "channel and platform": """SELECT
  channel,
  platform,
  COUNT(*) as count,
  COUNT(DISTINCT session_id) as sessions
FROM analytics_events
WHERE timestamp > NOW() - INTERVAL '1 hour'
GROUP BY channel, platform
ORDER BY count DESC
LIMIT 20""",
    "top resources": """SELECT
  channel,
  resource_id,
  resource_title,
  COUNT(*) as count
FROM analytics_events
WHERE timestamp > NOW() - INTERVAL '1 hour'
GROUP BY channel, resource_id, resource_title
ORDER BY count DESC
LIMIT 20""",
}


def known_events(now):
    """A fixed mix: 150 events in the last 50 minutes, 30 from 2 to 3 hours ago."""
    chans = [("web", "web-desktop"), ("web", "web-mobile"), ("mobile", "ios"),
             ("chat", "slack"), ("agent", None)]
    types = ["page_view", "interaction", "message", "error"]
    cats = ["navigation", "user_action", None]
    evs = []
    for i in range(180):
        age = dt.timedelta(minutes=(i * 7) % 50 + 1, milliseconds=i) if i < 150 else \
            dt.timedelta(hours=2, minutes=i - 150, milliseconds=i)
        ch, plat = chans[i % 5 if i % 11 else 0]
        e = event(timestamp=iso(now - age), channel=ch, event_type=types[(i * i) % 4],
                  event_category=cats[i % 3], resource_id=f"/{ch}/page-{i % 4}",
                  resource_title=f"Page {i % 4}", interaction_target=f"btn-{i}",
                  session_id=f"sess-{i % 23}", user_id=None if i % 4 == 0 else f"user-{i % 9}")
        if plat is None:
            e.pop("platform")
        else:
            e["platform"] = plat
        if e["event_category"] is None:
            e.pop("event_category")
        if e["user_id"] is None:
            e.pop("user_id")
        e["_ts"] = now - age
        evs.append(e)
    return evs


def expected(evs, now, lo, hi):
    """Each panel's answer computed here, from the events as sent."""
    recent = [e for e in evs if e["_ts"] > now - dt.timedelta(hours=1)]
    minute = lambda e: pg_time(e["_ts"].replace(second=0, microsecond=0))
    inrange = [e for e in evs if lo <= e["_ts"] <= hi]
    exp = {}
    exp["events over time by type"] = list(
        (m, str(c), t) for (m, t), c in Counter((minute(e), e["event_type"])
                                                 for e in recent).items())
    exp["total events"] = [(str(len(evs)),)]
    exp["events by type"] = list((t, str(c)) for t, c in
                                   Counter(e["event_type"] for e in evs).items())
    top = sorted(evs, key=lambda e: e["_ts"], reverse=True)[:10]
    exp["recent events"] = [(pg_time(e["_ts"]), e["event_type"], e["resource_id"],
                             e["interaction_target"]) for e in top]
    exp["events by channel"] = list(
        (m, ch, str(c)) for (m, ch), c in Counter((minute(e), e["channel"])
                                                   for e in inrange).items())
    exp["channel distribution"] = list((ch, str(c)) for ch, c in
                                         Counter(e["channel"] for e in recent).items())
    exp["top event types"] = list((t, str(c)) for t, c in
                                    Counter(e["event_type"] for e in recent).items())
    exp["total events 1h"] = [(str(len(recent)),)]
    exp["active sessions"] = [(str(len({e["session_id"] for e in recent})),)]
    exp["unique users"] = [(str(len({e["user_id"] for e in recent if "user_id" in e})),)]
    exp["active channels"] = [(str(len({e["channel"] for e in recent})),)]
    exp["events by category"] = list(
        (m, cat, str(c)) for (m, cat), c in Counter((minute(e), e.get("event_category"))
                                                     for e in inrange).items())
    groups = {}
    for e in recent:
        g = groups.setdefault((e["channel"], e.get("platform")), [0, set()])
        g[0] += 1
        g[1].add(e["session_id"])
    exp["channel and platform"] = list((ch, p, str(n), str(len(s)))
                                         for (ch, p), (n, s) in groups.items())
    exp["top resources"] = list(
        (ch, r, t, str(c)) for (ch, r, t), c in
        Counter((e["channel"], e["resource_id"], e["resource_title"]) for e in recent).items())
    return exp


def sort_key(row):
    return tuple("" if v is None else v for v in row)


def test_dashboards(pg, srv):
    now = dt.datetime.now(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as sent: milliseconds
    evs = known_events(now)
    status, body = srv.post([{k: v for k, v in e.items() if k != "_ts"} for e in evs])
    checks.check(status == 200 and body["accepted"] == len(evs), f"known events accepted: {body}")
    got = wait_rows(pg, len(evs))
    checks.check(got == len(evs), f"{len(evs)} rows arrive ({got})")
    lo, hi = now - dt.timedelta(hours=6), now + dt.timedelta(minutes=5)
    # Grafana turns $__timeFilter(col) into col BETWEEN '<from>' AND '<to>'.
    tf = lambda col: f"{col} BETWEEN '{lo.isoformat()}' AND '{hi.isoformat()}'"
    exp = expected(evs, now, lo, hi)
    for name, sql in PANELS.items():
        sql = sql.replace("$__timeFilter(timestamp)", tf("timestamp"))
        sql = sql.replace("$__timeFilter(time_bucket)", tf("time_bucket"))
        rows = pg.query(sql)
        if name in ("recent events",):
            ok = rows == exp[name]
        else:
            if "ORDER BY count DESC" in sql:
                counts = [int(r[-1] if name != "channel and platform" else r[2]) for r in rows]
                checks.check(counts == sorted(counts, reverse=True),
                             f"panel {name!r}: rows ordered by count")
            ok = sorted(rows, key=sort_key) == sorted(exp[name], key=sort_key)
        checks.check(ok and len(rows) > 0, f"panel {name!r}: {rows[:6]} == {exp[name][:6]}")


def test_dead_letters_and_dedup(pg, srv):
    before = int(pg.value("SELECT count(*) FROM analytics_events"))
    now = dt.datetime.now(UTC)
    good = [event(timestamp=iso(now)) for _ in range(20)]
    ancient = event(timestamp="2001-02-03T04:05:06Z")
    future = event(timestamp="2099-12-31T23:59:59Z")
    two_days = event(timestamp=iso(now - dt.timedelta(days=2)))
    batch = good[:10] + [ancient] + good[10:15] + [future] + good[15:] + [two_days]
    status, body = srv.post(batch)
    checks.check(status == 200 and body["accepted"] == len(batch), f"batch accepted: {body}")
    got = wait_rows(pg, before + 21)
    deadline = time.time() + 30
    while time.time() < deadline and pg.value("SELECT count(*) FROM sluice_dead_letters") == "0":
        time.sleep(0.2)
    checks.check(got == before + 21, f"the 21 good rows of the batch commit ({got - before})")
    deadline = time.time() + 30
    while time.time() < deadline and pg.value("SELECT count(*) FROM sluice_dead_letters") == "1":
        time.sleep(0.2)
    dead = pg.query("SELECT error, convert_from(payload, 'UTF8')::json->>'event_id' "
                    "FROM sluice_dead_letters ORDER BY log_partition, log_offset")
    by_id = {d[1]: d[0] for d in dead}
    checks.check(len(dead) == 2 and "no partition" in by_id.get(ancient["event_id"], "") and
                 "2001-02-03" in by_id[ancient["event_id"]] and
                 "2099-12-31" in by_id.get(future["event_id"], ""),
                 f"the 2001 and 2099 events are dead letters with PostgreSQL's reason: {dead}")
    part = day_name((now - dt.timedelta(days=2)).date())
    checks.check(part in partitions(pg), f"a partition for an event 2 days old is made ({part})")

    retry = event(timestamp=iso(now))
    for _ in range(3):
        status, _ = srv.post(retry)
        checks.check(status == 200, "retried event accepted by the api")
        time.sleep(0.3)
    got = wait_rows(pg, before + 22)
    time.sleep(1)
    n = pg.value(f"SELECT count(*) FROM analytics_events WHERE event_id = '{retry['event_id']}'")
    checks.check(n == "1", f"an event a client sent three times is stored once ({n})")
    # A retry inside a batch of new events (one session, so one partition and one batch):
    # the new ones still go in.
    fresh = [event(timestamp=iso(now), session_id=retry["session_id"]) for _ in range(2)]
    status, _ = srv.post([fresh[0], retry, fresh[1]])
    checks.check(status == 200, "a batch holding a retry is accepted")
    got = wait_rows(pg, before + 24)
    time.sleep(1)
    n = pg.value(f"SELECT count(*) FROM analytics_events WHERE event_id = '{retry['event_id']}'")
    checks.check(got == before + 24 and n == "1",
                 f"the batch's two new events are stored and the retry is not ({got - before}, {n})")
    _, _, metrics = srv.request("GET", "/metrics")
    metrics = metrics.decode()
    dup = [line for line in metrics.splitlines() if line.startswith("sluice_pg_duplicates_total")]
    checks.check(dup and int(dup[0].split()[1]) >= 2, f"duplicates are counted: {dup}")


def metric(srv, name):
    _, _, body = srv.request("GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_outage(pg, srv):
    before = int(pg.value("SELECT count(*) FROM analytics_events"))
    pg.stop("fast")
    now = dt.datetime.now(UTC)
    evs = [event(timestamp=iso(now)) for _ in range(300)]
    for i in range(0, 300, 50):
        status, body = srv.post(evs[i:i + 50])
        checks.check(status == 200, f"ingest accepts while PostgreSQL is down ({status})")
    deadline = time.time() + 30
    ready = (200, b"")
    while time.time() < deadline:
        st, _, text = srv.request("GET", "/ready")
        ready = (st, text)
        if st == 503:
            break
        time.sleep(0.2)
    checks.check(ready[0] == 503 and b"postgresql" in ready[1].lower(),
                 f"/ready is 503 and names PostgreSQL: {ready}")
    checks.check(metric(srv, "sluice_pg_up") == 0, "sluice_pg_up is 0 during the outage")
    checks.check((metric(srv, "sluice_pg_failures_total") or 0) > 0, "failures are counted")
    time.sleep(2)
    pg.start()
    got = wait_rows(pg, before + 300, timeout=60)
    checks.check(got == before + 300, f"all 300 events arrive after the outage ({got - before})")
    deadline = time.time() + 30
    while time.time() < deadline and srv.request("GET", "/ready")[0] != 200:
        time.sleep(0.2)
    checks.check(srv.request("GET", "/ready")[0] == 200, "/ready is 200 again")
    checks.check(metric(srv, "sluice_pg_up") == 1, "sluice_pg_up is 1 again")
    # the default two writers, each on a connection of its own
    checks.check(metric(srv, "sluice_pg_writers_up") == 2, "both pg writers are up")
    backends = pg.value("SELECT count(*) FROM pg_stat_activity"
                        " WHERE application_name = 'sluice-pg-sink'")
    checks.check(backends == "2", f"two sink connections ({backends})")


def test_graceful_stop(pg):
    before = int(pg.value("SELECT count(*) FROM analytics_events"))
    srv = Server(extra_args=["--pg", pg.uri, "--pg-linger", "60s"]).start()
    try:
        now = dt.datetime.now(UTC)
        status, _ = srv.post([event(timestamp=iso(now)) for _ in range(40)])
        checks.check(status == 200, "events accepted")
        time.sleep(1.5)
        held = int(pg.value("SELECT count(*) FROM analytics_events")) - before
        checks.check(held == 0, f"the sink holds the batch while it lingers ({held} written)")
        rc = srv.stop()
        checks.check(rc == 0, f"clean exit ({rc})")
        after = int(pg.value("SELECT count(*) FROM analytics_events")) - before
        checks.check(after == 40, f"a graceful stop commits what the sink held ({after})")
    finally:
        srv.kill()
        srv.__exit__(None, None, None)


def test_log_replaced(pg):
    """A new log beside a kept database (var/log wiped, var/pg kept): the offsets stored for
    the old log name it, so the sink reads the new one from its beginning instead of
    skipping as many of its events per partition as it had stored of the old one."""
    now = dt.datetime.now(UTC)
    before = int(pg.value("SELECT count(*) FROM analytics_events"))
    with Server(extra_args=["--pg", pg.uri, "--pg-linger", "50ms"]) as srv:
        status, _ = srv.post([event(timestamp=iso(now)) for _ in range(60)])
        checks.check(status == 200, "the first log takes events")
        wait_rows(pg, before + 60)
    old_ids = pg.query("SELECT DISTINCT log_id FROM sluice_offsets WHERE consumer_group = "
                       "'sluice-pg'")
    checks.check(len(old_ids) == 1 and old_ids[0][0], f"offsets name their log: {old_ids}")
    with Server(extra_args=["--pg", pg.uri, "--pg-linger", "50ms"]) as srv:  # a new log dir
        status, _ = srv.post([event(timestamp=iso(now)) for _ in range(20)])
        checks.check(status == 200, "the new log takes events")
        got = wait_rows(pg, before + 80)
        checks.check(got == before + 80, f"every event of the new log is stored: "
                                         f"{got - before - 60} of 20")
        rows = pg.query("SELECT log_id FROM sluice_offsets WHERE consumer_group = 'sluice-pg' "
                        "AND next_offset > 0 AND log_id IS DISTINCT FROM %s" % repr(old_ids[0][0]))
        checks.check(len(rows) > 0, "the new log's offsets replace the old log's")


def test_large_records(pg):
    """Records near the batch's byte bound: a batch takes what fits and the rest is read
    again for the next one; a record over half the bound is a dead letter, not a stall."""
    before = int(pg.value("SELECT count(*) FROM analytics_events"))
    dead_before = int(pg.value("SELECT count(*) FROM sluice_dead_letters"))
    args = ["--pg", pg.uri, "--pg-batch-bytes", "2M", "--pg-linger", "50ms", "--max-body", "4M",
            "--max-inflated", "4M", "--max-event", "4M"]
    with Server(extra_args=args) as srv:
        now = dt.datetime.now(UTC)
        big = [event(timestamp=iso(now), interaction_text="x" * 600_000) for _ in range(10)]
        huge = event(timestamp=iso(now), interaction_text="y" * 1_500_000)
        for e in big[:5] + [huge] + big[5:]:
            status, _ = srv.post(e)
            checks.check(status == 200, f"a large event is accepted ({status})")
        got = wait_rows(pg, before + 10)
        checks.check(got - before == 10, f"ten 600 kB events stored, 3 per 2 MB batch "
                     f"({got - before})")
        deadline = time.time() + 30
        while time.time() < deadline and \
                int(pg.value("SELECT count(*) FROM sluice_dead_letters")) == dead_before:
            time.sleep(0.2)
        dead = pg.query("SELECT error, length(payload) FROM sluice_dead_letters "
                        f"ORDER BY id OFFSET {dead_before}")
        checks.check(len(dead) == 1 and "over half of --pg-batch-bytes" in dead[0][0] and
                     dead[0][1] == "4096",
                     f"the 1.5 MB event is a dead letter with its start kept: {dead}")


def main():
    with Postgres() as pg:
        test_migrations(pg)
        test_retention(pg)
        with Server(extra_args=["--pg", pg.uri, "--pg-linger", "50ms"]) as srv:
            test_dashboards(pg, srv)
            test_dead_letters_and_dedup(pg, srv)
            test_outage(pg, srv)
        test_graceful_stop(pg)
        test_log_replaced(pg)
        test_large_records(pg)
        r = subprocess.run([SLUICE, "serve", "--roles", "pg-sink", "--listen", "127.0.0.1:0"],
                           capture_output=True, text=True, timeout=60,
                           env={"PATH": "/usr/bin:/bin", "SLUICE_LOG": "file:///nonexistent/x"})
        checks.check(r.returncode != 0 and "--pg" in r.stderr,
                     f"the pg-sink role without --pg is a clear error: {r.stderr.strip()[-200:]}")
    checks.finish()


main()
