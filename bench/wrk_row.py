"""One markdown table row from a `wrk --latency` output, for the bench scripts.

  wrk_row.py ceiling NAME WRK_OUT CPU_TICKS HWM_KB                  (a reference that stores nothing)
  wrk_row.py ingest  NAME WRK_OUT CPU_TICKS BATCH HWM_KB ANON_KB    (bench/ingest.sh)
  wrk_row.py kafka   NAME WRK_OUT CPU_TICKS MOCK_TICKS              (bench/kafka.sh)
CPU_TICKS is the server's user+system clock ticks over the run (from /proc/PID/stat),
MOCK_TICKS the same for the Kafka mock cluster both servers produce to.
With WRK_ROUND=K the row's name says "(round K)"; with WRK_RUNS=FILE the run's figures
are also appended to FILE as a JSON line (under the plain name) for bench/rounds.py."""

import json
import os
import re
import sys


def parse(path):
    text = open(path).read()

    def latency_ms(pct):
        m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)" % pct, text, re.M)
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "requests": int(re.search(r"(\d+) requests in", text).group(1)),
        "p50": latency_ms(50),
        "p99": latency_ms(99),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def main():
    kind, plain_name, path, ticks = sys.argv[1:5]
    w = parse(path)
    rnd = os.environ.get("WRK_ROUND")
    name = f"{plain_name} (round {rnd})" if rnd else plain_name
    cpu_us = int(ticks) / os.sysconf("SC_CLK_TCK") * 1e6 / max(w["requests"], 1)
    if kind == "ceiling":
        hwm = int(sys.argv[5])
        print(f"| {name} | 1 | {w['rps']:,.0f} | – | {w['p50']:.2f} | {w['p99']:.2f} "
              f"| {cpu_us:.1f} | {hwm / 1024:.1f} | {w['non2xx']} |")
    elif kind == "ingest":
        batch, hwm, anon = (int(a) for a in sys.argv[5:8])
        print(f"| {name} | {batch} | {w['rps']:,.0f} | {w['rps'] * batch:,.0f} | {w['p50']:.2f} "
              f"| {w['p99']:.2f} | {cpu_us:.1f} | {hwm / 1024:.1f} ({anon / 1024:.1f} anonymous) "
              f"| {w['non2xx']} |")
    elif kind == "kafka":
        mock_us = int(sys.argv[5]) / os.sysconf("SC_CLK_TCK") * 1e6 / max(w["requests"], 1)
        print(f"| {name} | {w['rps']:,.0f} | {w['p50']:.2f} | {w['p99']:.2f} | {cpu_us:.0f} "
              f"| {w['non2xx']} | {mock_us:.1f} |")
    else:
        sys.exit(f"wrk_row.py: unknown kind {kind!r}")
    if os.environ.get("WRK_RUNS"):
        batch = int(sys.argv[5]) if kind == "ingest" else 1
        with open(os.environ["WRK_RUNS"], "a") as f:
            f.write(json.dumps({"round": int(rnd or 1), "name": plain_name,
                                "rps": w["rps"], "events_per_s": w["rps"] * batch,
                                "p99": w["p99"], "cpu_us": cpu_us}) + "\n")


if __name__ == "__main__":
    main()
