"""Table-driven bad input over real HTTP: each case gets the right status and a message
that names the field and the rule, and afterwards only the valid events are in the log."""

import gzip
import json
import zlib

from harness import DROP, Checks, Server, event

checks = Checks("bad_input")
accepted_ids = set()   # ids the server acknowledged
refused_ids = set()    # ids that must never reach the log


def bad(**overrides):
    e = event(**overrides)
    refused_ids.add(e["event_id"])
    return e


def good(**overrides):
    return event(**overrides)


def body(obj):
    return json.dumps(obj).encode()


def nested(depth):
    v = "leaf"
    for _ in range(depth):
        v = {"k": v}
    return v


bomb = gzip.compress(b"[" + b" " * (64 << 20) + b"]", 9)  # 64 MiB of blanks, ~64 KiB sent
valid_for_truncation = body(bad())

# (name, body bytes, extra headers, status, substrings the message must contain,
#  expected rejections as [(index, reason)] or None)
CASES = [
    ("malformed json", b'{"channel": "web",', {}, 400, ["malformed JSON"], None),
    ("truncated body", valid_for_truncation[: len(valid_for_truncation) // 2], {}, 400,
     ["malformed JSON"], None),
    ("missing channel", body(bad(channel=DROP)), {}, 400, ['"channel"', "required"], None),
    ("missing event_type", body(bad(event_type=DROP)), {}, 400, ['"event_type"', "required"], None),
    ("missing session_id", body(bad(session_id=DROP)), {}, 400, ['"session_id"', "required"], None),
    ("null channel", body(bad(channel=None)), {}, 400, ['"channel"', "required"], None),
    ("empty event_type", body(bad(event_type="")), {}, 400, ['"event_type"', "required"], None),
    ("channel is a number", body(bad(channel=5)), {}, 400, ['"channel"', "string", "number"], None),
    ("session_id is an object", body(bad(session_id={"a": 1})), {}, 400,
     ['"session_id"', "string", "object"], None),
    ("interaction_value is text", body(bad(interaction_value="high")), {}, 400,
     ['"interaction_value"', "number"], None),
    ("metadata is a string", body(bad(metadata="x")), {}, 400, ['"metadata"', "object"], None),
    ("timestamp not a time", body(bad(timestamp="yesterday")), {}, 400,
     ['"timestamp"', "RFC 3339", "yesterday"], None),
    ("timestamp impossible date", body(bad(timestamp="2026-02-30T10:00:00Z")), {}, 400,
     ['"timestamp"'], None),
    ("channel over 50", body(bad(channel="c" * 51)), {}, 400,
     ['"channel"', "51", "50"], None),
    ("resource_id over 500", body(bad(resource_id="r" * 501)), {}, 400,
     ['"resource_id"', "500"], None),
    ("non-ascii counted in characters", body(bad(channel="é" * 51)), {}, 400,
     ['"channel"', "51"], None),
    ("invalid utf-8", body(bad()).replace(b'"web"', b'"w\xffb"'), {}, 400, ["UTF-8"], None),
    ("nul in string", body(bad(channel="w\u0000b")), {}, 400, ["\\u0000"], None),
    ("duplicate key", b'{"channel":"web","channel":"app","event_type":"x","session_id":"s"}', {},
     400, ['"channel"', "duplicate"], None),
    ("deep nesting", body(bad(metadata=nested(40))), {}, 400, ["nesting"], None),
    ("too many keys", body(bad(metadata={f"k{i}": i for i in range(300)})), {}, 400,
     ["keys"], None),
    ("event over 32 KiB", body(bad(interaction_text="x" * 40000)), {}, 413,
     ["bytes", "32768"], None),
    ("gzip bomb", bomb, {"Content-Encoding": "gzip"}, 413, ["decompressed"], None),
    ("corrupt gzip", b"\x1f\x8b\x08\x00garbage-not-deflate", {"Content-Encoding": "gzip"}, 400,
     ["compressed"], None),
    ("unknown encoding", body(bad()), {"Content-Encoding": "br"}, 415, ["br"], None),
    ("form content type", body(bad()), {"Content-Type": "application/x-www-form-urlencoded"}, 415,
     ["application/x-www-form-urlencoded"], None),
    ("not an object", b'"hello"', {}, 400, ["object"], None),
    ("empty array", b"[]", {}, 400, ["empty"], None),
    ("empty envelope", b'{"batch": []}', {}, 400, ["empty"], None),
    ("envelope with unknown key", body({"batch": [bad()], "x": 1}), {}, 400, ['"x"'], None),
    ("too many events", body([{"channel": "w", "event_type": "e", "session_id": str(i)}
                              for i in range(1001)]), {}, 413, ["1000"], None),
    ("all rejected batch", body([bad(channel=DROP), bad(session_id=7)]), {}, 400,
     ["rejected"], [(0, "missing_field"), (1, "wrong_type")]),
]


def run_case(srv, name, data, headers, want_status, want_words, want_rejections):
    h = {"Content-Type": "application/json"}
    h.update(headers)
    status, answer = srv.post(data, h)
    checks.check(status == want_status, f"{name}: status {status}, want {want_status}: {answer}")
    msg = answer.get("message", "") if isinstance(answer, dict) else ""
    for w in want_words:
        checks.check(w in msg, f"{name}: message {msg!r} lacks {w!r}")
    if isinstance(answer, dict):
        checks.check(answer.get("success") is False, f"{name}: success is not false: {answer}")
    if want_rejections is not None:
        got = [(r["index"], r["reason"]) for r in answer.get("rejected", [])]
        checks.check(got == want_rejections, f"{name}: rejections {got}, want {want_rejections}")


def mixed_batch(srv):
    """Valid events are stored, invalid ones reported by index, in one request."""
    g1, g2 = good(), good(channel="mobile", platform="ios")
    batch = [g1, bad(channel=DROP), g2, bad(channel="z" * 60), 42]
    status, answer = srv.post(body({"batch": batch}))
    checks.check(status == 200, f"mixed batch: status {status}: {answer}")
    checks.check(answer.get("accepted") == 2, f"mixed batch: accepted {answer.get('accepted')}")
    got = [(r["index"], r["reason"]) for r in answer.get("rejected", [])]
    want = [(1, "missing_field"), (3, "too_long"), (4, "not_object")]
    checks.check(got == want, f"mixed batch: rejections {got}, want {want}")
    checks.check(answer.get("eventIds") == [g1["event_id"], g2["event_id"]],
                 f"mixed batch: eventIds {answer.get('eventIds')}")
    for r in answer.get("rejected", []):
        checks.check(bool(r.get("message")), f"mixed batch: rejection without message {r}")
    accepted_ids.update(answer.get("eventIds", []))


def announced_over_limit(srv):
    """A Content-Length over the cap is refused from the headers, before any body is read."""
    status, data = srv.raw_exchange(b"POST /analytics HTTP/1.1\r\nHost: t\r\n"
                                    b"Content-Type: application/json\r\n"
                                    b"Content-Length: 600000\r\n\r\n")
    checks.check(status == 413 and b"600000" in data and b"524288" in data,
                 f"announced body over limit: {status} {data!r}")


def chunked_over_limit(srv):
    """A chunked body (no Content-Length) over the cap is refused with 413 mid-stream."""
    c = srv.conn()
    chunk = b"[" + b" " * 65535
    try:
        c.request("POST", "/analytics", body=iter([chunk] * 10),
                  headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                  encode_chunked=True)
        r = c.getresponse()
        status, data = r.status, r.read()
    finally:
        c.close()
    checks.check(status == 413 and b"limit" in data, f"chunked over limit: {status} {data!r}")


def routes(srv):
    status, _, data = srv.request("GET", "/analytics")
    checks.check(status == 405, f"GET /analytics: status {status}")
    status, _, data = srv.request("GET", "/nope")
    checks.check(status == 404 and b"/nope" in data, f"GET /nope: {status} {data!r}")


def main():
    with Server() as srv:
        for case in CASES:
            run_case(srv, *case)
        mixed_batch(srv)
        announced_over_limit(srv)
        chunked_over_limit(srv)
        routes(srv)
        # A valid event after all that: the server is still healthy and storing.
        e = good()
        status, answer = srv.post(body(e))
        checks.check(status == 200 and answer.get("eventId") == e["event_id"],
                     f"valid event after bad ones: {status} {answer}")
        accepted_ids.add(e["event_id"])
        stored = srv.read_log()
        stored_ids = [s["event_id"] for s in stored]
        checks.check(sorted(stored_ids) == sorted(accepted_ids),
                     f"log holds {len(stored_ids)} events, want exactly the {len(accepted_ids)} accepted")
        checks.check(not (set(stored_ids) & refused_ids), "a refused event reached the log")
        status, _, metrics = srv.request("GET", "/metrics")
        text = metrics.decode()
        checks.check('sluice_events_rejected_total{reason="missing_field"}' in text,
                     "metrics lack rejections by reason")
        checks.check(srv.stop() == 0, "server did not exit 0 on SIGTERM")
    checks.finish()


if __name__ == "__main__":
    main()
