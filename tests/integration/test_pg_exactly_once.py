"""Exactly-once into PostgreSQL under failure: 100,000 events are posted to `sluice serve
--roles api` (1% of them posted twice, as a retrying client would) while a separate `sluice
serve --roles pg-sink` on the same embedded log is killed with SIGKILL at random moments and
restarted, and PostgreSQL itself is restarted once (immediate mode: crash recovery). At the
end analytics_events holds every acknowledged event_id exactly once, the counts per channel
equal what the test sent, and the rollups equal the same aggregates computed from the raw
rows."""

import json
import random
import shutil
import tempfile
import threading
import time
from collections import Counter

from harness import Checks, Server, event
from pgfixture import Postgres

TOTAL = 100_000
BATCH = 250
KILLS = 5
RETRY_SHARE = 0.01

checks = Checks("pg exactly-once")
rnd = random.Random(4)
CHANNELS = ["web", "mobile", "chat", "speech", "agent"]
PLATFORMS = {"web": ["web-desktop", "web-mobile"], "mobile": ["ios", "android"],
             "chat": ["slack", None], "speech": ["alexa"], "agent": [None, "mcp"]}
TYPES = ["page_view", "interaction", "message", "utterance", "error", "conversion"]
CATEGORIES = ["navigation", "user_action", "engagement", None]


def make_event(i):
    ch = rnd.choice(CHANNELS)
    now = time.time()
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - rnd.uniform(0, 600)))
    e = event(timestamp=ts + ".%03dZ" % rnd.randrange(1000), channel=ch,
              platform=rnd.choice(PLATFORMS[ch]), event_type=rnd.choice(TYPES),
              event_category=rnd.choice(CATEGORIES),
              resource_id="/r/%d" % rnd.randrange(40), session_id="s-%d" % rnd.randrange(3000),
              user_id=rnd.choice(["u-%d" % rnd.randrange(800), None]),
              # decimals the sink sums itself (negative, scales 0-3) and ones it leaves
              # to PostgreSQL (over six fraction digits, over twelve integer digits)
              interaction_value=rnd.choice([None, rnd.randrange(100) / 4,
                                            -rnd.randrange(10**6) / 1000, rnd.random(),
                                            rnd.random() * 1e14]),
              metadata={"i": i, "note": "tab\there, newline\nthere, back\\slash"})
    return {k: v for k, v in e.items() if v is not None}


def sketches(table):
    """HyperLogLog registers per minute and channel computed from raw rows, independently
    of the sink's batches: 1024 registers, low 10 bits of hashtextextended pick one, the
    rank of the first set bit of the other 54 bits is its value. Only for minutes and
    channels with at least one non-null id, as the sink keeps no empty sketch (a minute at
    the edge of the events' times can hold a few events, all without a user_id)."""
    per = []
    for what in ("session_id", "user_id"):
        per.append(
            f"SELECT date_trunc('minute', \"timestamp\") AS bucket, channel, '{what}' AS what,"
            f" hashtextextended({what}, 0) & 1023 AS reg, max(55 - length(ltrim(("
            f"(hashtextextended({what}, 0) >> 10) & 18014398509481983)::bit(54)::text, '0')))"
            f" AS rank FROM {table} WHERE {what} IS NOT NULL GROUP BY 1, 2, 3, 4")
    return ("SELECT k.bucket, k.channel, k.what, array_agg(coalesce(s.rank, 0)::smallint "
            "ORDER BY g) FROM (SELECT DISTINCT date_trunc('minute', \"timestamp\") AS bucket, "
            f"channel, w.what FROM {table}, (VALUES ('session_id'), ('user_id')) w(what) "
            "WHERE CASE w.what WHEN 'session_id' THEN session_id ELSE user_id END IS NOT NULL) k "
            "CROSS JOIN generate_series(0, 1023) g LEFT JOIN (" + " UNION ALL ".join(per) +
            ") s ON s.bucket = k.bucket AND s.channel = k.channel AND s.what = k.what "
            "AND s.reg = g GROUP BY 1, 2, 3")


def main():
    log_dir = tempfile.mkdtemp(prefix="sluice-pg-eo-")
    sent = {}          # event_id -> channel, every event the api acknowledged
    posted = [0]       # log records acknowledged (retries included)
    done = threading.Event()
    failures = []
    with Postgres() as pg, Server(log_dir=log_dir, extra_args=["--roles", "api"]) as api:
        sink_args = ["--roles", "pg-sink", "--pg", pg.uri, "--pg-linger", "50ms",
                     "--pg-batch-rows", "2000"]

        def producer():
            try:
                conn = api.conn()
                i = 0
                while i < TOTAL:
                    batch = [make_event(i + k) for k in range(min(BATCH, TOTAL - i))]
                    retries = [b for b in batch if rnd.random() < RETRY_SHARE]
                    status, body = api.post(batch + retries, conn=conn)
                    if status != 200 or body.get("accepted") != len(batch) + len(retries):
                        failures.append(f"post answered {status}: {body}")
                        return
                    for b in batch:
                        sent[b["event_id"]] = b["channel"]
                    posted[0] += len(batch) + len(retries)
                    i += len(batch)
                    time.sleep(0.01)
            finally:
                done.set()

        t = threading.Thread(target=producer)
        t.start()
        sink = Server(log_dir=log_dir, extra_args=sink_args).start()
        kills = 0
        restarted_pg = False
        while not done.is_set() or kills < KILLS:
            time.sleep(rnd.uniform(0.3, 2.0))
            if kills == 2 and not restarted_pg:
                pg.restart("immediate")
                restarted_pg = True
                continue
            sink.kill()
            kills += 1
            sink = Server(log_dir=log_dir, extra_args=sink_args).start()
        t.join()
        checks.check(not failures, f"every post accepted: {failures[:3]}")
        checks.check(kills >= KILLS and restarted_pg,
                     f"the sink was killed {kills} times and PostgreSQL restarted once")

        deadline = time.time() + 300
        stored = -1
        while time.time() < deadline:
            stored = int(pg.value("SELECT coalesce(sum(next_offset), 0) FROM sluice_offsets",
                                  retries=5))
            if stored >= posted[0]:
                break
            time.sleep(0.5)
        checks.check(stored == posted[0],
                     f"sluice_offsets reached the end of the log: {stored} of {posted[0]}")
        rc = sink.stop()
        checks.check(rc == 0, f"the last sink stopped cleanly (exit {rc})")

        total, distinct = pg.query("SELECT count(*), count(DISTINCT event_id) "
                                   "FROM analytics_events")[0]
        checks.check(int(total) == TOTAL and int(distinct) == TOTAL,
                     f"{TOTAL} rows, each event_id once: {total} rows, {distinct} distinct")
        ids = {r[0] for r in pg.query("SELECT event_id FROM analytics_events")}
        checks.check(ids == set(sent), f"stored ids are the sent ids: "
                     f"{len(set(sent) - ids)} missing, {len(ids - set(sent))} unknown")
        by_channel = dict(pg.query("SELECT channel, count(*) FROM analytics_events "
                                   "GROUP BY channel"))
        want = Counter(sent.values())
        checks.check({k: int(v) for k, v in by_channel.items()} == dict(want),
                     f"rows per channel {by_channel} == sent {dict(want)}")
        meta = pg.value("SELECT encode(convert_to(metadata->>'note', 'UTF8'), 'hex') "
                        "FROM analytics_events LIMIT 1")
        meta = bytes.fromhex(meta).decode()
        checks.check(meta == "tab\there, newline\nthere, back\\slash",
                     f"escaped text survives COPY: {meta!r}")
        dead = pg.value("SELECT count(*) FROM sluice_dead_letters")
        checks.check(dead == "0", f"no dead letters: {dead}")

        # The rollups against the raw rows, both directions of the difference (sums as
        # texts, so their scale counts too).
        minute = ("SELECT date_trunc('minute', \"timestamp\") b, channel, platform, event_type,"
                  " event_category, count(*), sum(interaction_value)::text,"
                  " count(interaction_value)"
                  " FROM analytics_events GROUP BY 1, 2, 3, 4, 5")
        rollup = ("SELECT bucket, channel, platform, event_type, event_category, events,"
                  " value_sum::text, value_count FROM sluice_rollup_minute")
        for name, a, b in [
                ("minute counts", minute, rollup),
                ("resources", "SELECT date_trunc('minute', \"timestamp\"), channel, resource_id,"
                 " count(*) FROM analytics_events GROUP BY 1, 2, 3",
                 "SELECT bucket, channel, resource_id, events FROM sluice_rollup_resources"),
                ("distinct sketches", sketches("analytics_events"),
                 "SELECT bucket, channel, what, regs FROM sluice_rollup_distinct")]:
            diff = pg.value(f"SELECT (SELECT count(*) FROM (({a}) EXCEPT ALL ({b})) x) + "
                            f"(SELECT count(*) FROM (({b}) EXCEPT ALL ({a})) y)")
            rows = pg.value(f"SELECT count(*) FROM ({b}) z")
            checks.check(diff == "0" and int(rows) > 0,
                         f"rollup {name} equals the raw rows' aggregate ({rows} rows, "
                         f"{diff} differ)")
        for what in ("session_id", "user_id"):
            est, exact = pg.query(
                "SELECT sluice_hll_count(sluice_hll_merge(regs)), (SELECT count(DISTINCT "
                f"{what}) FROM analytics_events) FROM sluice_rollup_distinct "
                f"WHERE what = '{what}'")[0]
            checks.check(abs(int(est) - int(exact)) <= 0.1 * int(exact),
                         f"merged {what} sketches estimate {est}, exact {exact} (within 10%)")
    shutil.rmtree(log_dir, ignore_errors=True)
    checks.finish()


main()
