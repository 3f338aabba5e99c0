"""Medians over the rounds of a bench script, from the runs bench/wrk_row.py recorded
(WRK_RUNS). On this shared VM one run moves by 10-30 % from the next, so the scripts can
repeat their side-by-side runs (ROUNDS=N, interleaved) and report the median of each
server and of each ratio taken within a round.

  rounds.py RUNS_FILE BASE NAME [NAME ...] [--also NAME ...]
ratios are each NAME's requests/s over BASE's in the same round; servers after --also are
listed without one (batches, say, whose requests are not comparable)."""

import json
import statistics
import sys


def main():
    path, base, *rest = sys.argv[1:]
    cut = rest.index("--also") if "--also" in rest else len(rest)
    names, also = rest[:cut], rest[cut + 1:]
    runs = [json.loads(line) for line in open(path)]
    by = {}
    for r in runs:
        by.setdefault(r["name"], {})[r["round"]] = r
    rounds = sorted({r["round"] for r in runs})
    print(f"\nMedians over {len(rounds)} rounds:\n")
    print("| server | requests/s | events/s | p99 ms | server CPU µs/request | "
          f"requests/s / {base}'s, per round | median |")
    print("|---|---|---|---|---|---|---|")
    for name in [base, *names, *also]:
        got = by.get(name, {})
        if not got:
            continue
        med = {k: statistics.median(r[k] for r in got.values())
               for k in ("rps", "events_per_s", "p99", "cpu_us")}
        ratios = [got[k]["rps"] / by[base][k]["rps"] for k in rounds
                  if k in got and k in by.get(base, {}) and name in names]
        ratio_cells = (", ".join(f"{x:.2f}" for x in ratios),
                       f"{statistics.median(ratios):.2f}") if ratios else ("–", "–")
        print(f"| {name} | {med['rps']:,.0f} | {med['events_per_s']:,.0f} | {med['p99']:.2f} "
              f"| {med['cpu_us']:.1f} | {ratio_cells[0]} | {ratio_cells[1]} |")


if __name__ == "__main__":
    main()
