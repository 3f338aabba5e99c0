"""Fills an embedded log for bench/lake.sh: posts N realistic events (several channels,
types, three dates, optional fields present or null, small metadata objects; fixed seed)
to a running `sluice serve --roles api` in requests of 1,000. Usage: lake_fill.py PORT N"""

import http.client
import json
import random
import sys
import uuid

port, n = int(sys.argv[1]), int(sys.argv[2])
rnd = random.Random(42)
CHANNELS = [("web", "web-desktop"), ("mobile", "ios"), ("mobile", "android"),
            ("chat", "slack"), ("speech", "alexa"), ("agent", "mcp")]
TYPES = ["page_view", "interaction", "message", "utterance", "tool_call", "error"]
DAYS = ["2026-11-21", "2026-11-22", "2026-11-23"]


def one(i):
    channel, platform = rnd.choice(CHANNELS)
    e = {
        "event_id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
        "timestamp": f"{rnd.choice(DAYS)}T{rnd.randrange(24):02}:{rnd.randrange(60):02}:"
                     f"{rnd.randrange(60):02}.{rnd.randrange(1000):03}Z",
        "channel": channel, "platform": platform, "event_type": rnd.choice(TYPES),
        "event_category": rnd.choice(["navigation", "engagement", "user_action", None]),
        "resource_id": f"/products/{rnd.randrange(2000)}",
        "resource_title": rnd.choice(["Blue kettle", "Checkout", "Help center", None]),
        "session_id": f"sess-{rnd.randrange(50000)}", "user_id": f"user-{rnd.randrange(20000)}",
        "device_id": rnd.choice([f"dev-{rnd.randrange(30000)}", None]),
        "client_version": rnd.choice(["3.2.1", "3.3.0", None]),
        "interaction_value": rnd.choice([None, round(rnd.random() * 100, 3), rnd.randrange(10)]),
        "interaction_text": rnd.choice([None, "search: red shoes", "how do I reset my password"]),
        "metadata": {"referrer": rnd.choice(["newsletter", "search", "direct"]),
                     "viewport": [rnd.choice([390, 1440]), rnd.choice([844, 900])]},
    }
    return {k: v for k, v in e.items() if v is not None}


conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for start in range(0, n, 1000):
    body = json.dumps([one(i) for i in range(start, min(n, start + 1000))])
    conn.request("POST", "/analytics", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    answer = json.loads(r.read())
    if r.status != 200 or answer["rejected"]:
        sys.exit(f"post failed: {r.status} {str(answer)[:300]}")
