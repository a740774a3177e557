#!/usr/bin/env python3
"""Picks, of K calibrations of one network (tools/accuracy.sh --calibrations K), the one whose
measured training step is the median of the K, and copies its cluster spec and report.

Why: on this VM each core's speed switches between two states about 1.5x apart for seconds at a
time (a fixed loop pinned to one core: 8.7-10.8 ms or 15-18 ms, 7 Dec 2026), so one calibration of
2-4 s can land in a slow or a fast stretch, and every prediction made from it moves with it (the
same gpt-pipe attention layer measured 44-64 us in six calibrations run back to back at 17:20 UTC).
The validation already takes the median of its rounds; this takes the median calibration. The
medoid, not a per-constant median: each calibration's constants come from one joint fit and stay
together.

The measured training step of a calibration: the sum over its report's `layers` of forward_s +
backward_s at the report's largest batch per rank (the network's own per-rank batch). With an even
K the lower of the two middle ones is taken.

usage: medoid_calibration.py --out-spec CAL.json --out-report CALREP.json SPEC1 REPORT1 [SPEC2 REPORT2 ...]
Prints one line: the chosen index (1-based), and every calibration's step in microseconds.
"""
import argparse
import json
import shutil
import sys


def step_seconds(report_path):
    with open(report_path) as f:
        report = json.load(f)
    layers = report.get("layers") or []
    if not layers:
        sys.exit(f"medoid_calibration.py: {report_path}: /layers: no per-layer measurements")
    batch = max(layer["batch"] for layer in layers)
    return sum(layer["forward_s"] + layer["backward_s"] for layer in layers if layer["batch"] == batch)


def medoid(steps):
    """The index of the median of `steps` (the lower middle one for an even count)."""
    order = sorted(range(len(steps)), key=lambda i: (steps[i], i))
    return order[(len(steps) - 1) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-spec", required=True)
    ap.add_argument("--out-report", required=True)
    ap.add_argument("pairs", nargs="+")
    a = ap.parse_args()
    if len(a.pairs) % 2:
        sys.exit("medoid_calibration.py: give SPEC REPORT pairs")
    specs, reports = a.pairs[0::2], a.pairs[1::2]
    steps = [step_seconds(r) for r in reports]
    k = medoid(steps)
    shutil.copyfile(specs[k], a.out_spec)
    shutil.copyfile(reports[k], a.out_report)
    print(f"calibration {k + 1} of {len(steps)} (training step " +
          ", ".join(f"{1e6 * s:.0f}" for s in steps) + " us)")


if __name__ == "__main__":
    main()
