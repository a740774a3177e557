#!/usr/bin/env python3
"""Renders tools/accuracy.sh's results as Markdown for validators/README.md.

Reads DIR/runs.tsv and every DIR/NET-FAMILY.json (`dnnplan validate`'s results document). Per
plan it prints the document's figures; per network and family the document's own Kendall tau,
best-plan verdict and median relative error (validate computes them: nothing is recomputed here).
The one figure no single document has is the median over all plans of all documents (at this
number of ranks), taken here from the documents' per-plan relative errors.
"""
import argparse
import csv
import json
import os
import statistics
import sys

FAMILIES = ["layer-parallel", "pipeline", "graph-partition", "tp-pp-dp"]
OPERATIONS = ["fwd_compute_s", "bwd_compute_s", "all_reduce_s", "halo_s", "redistribution_s", "sync_exposed_s"]
WITHIN = 1.05  # the predicted best counts when measured within 5% of the measured best (issue 17, item 5)


def us(seconds):
    return f"{seconds * 1e6:.0f}"


def percent(fraction, digits=1):
    return f"{100 * fraction:.{digits}f}%"


def short_label(label, network):
    label = label[:-5] if label.endswith(".json") else label
    return label[len(network) + 1:] if label.startswith(network + "-") else label


def check_text(plan):
    c = plan["check"]
    if not c.get("performed", False):
        text = "not checked"
    elif c["passed"]:
        text = "ok"
    else:
        text = f"FAILED ({c['output_error']:.0e} / {c['gradient_error']:.0e} / {c['loss_error']:.0e})"
    ledger = plan.get("ledger")
    details = plan.get("pipeline") or plan.get("graph_partition") or {}
    agrees = details.get("ledger", {}).get("agrees") if details else (ledger or {}).get("agrees")
    if agrees is False:
        text += ", ledger differs"
    return text


def verdict(doc, suffix=""):
    if doc.get("predicted_best_is_measured_best" + suffix):
        return "yes"
    ratio = doc["predicted_best_over_measured_best" + suffix]
    return f"{'within 5%' if ratio <= WITHIN else 'no'} (+{percent(ratio - 1)})"


def family_section(net, family, doc, run):
    lines = [f"### {net}: {family}", ""]
    when = ""
    if run:
        when = (f"; run {run['start_utc']}-{run['end_utc']} UTC, load average {run['load_before']} before, "
                f"{run['load_after']} after")
        when += f", waited {run['waited_s']} s for an idle machine" if run["idle"] == "yes" else ", idle wait skipped"
    batch = doc["plans"][0]["batch"] if doc["plans"] else "?"
    lines.append(f"Batch {batch}, cluster `cal-{net}.json`, {doc['ranks']} ranks, {doc['warmup']} warm-up + "
                 f"{doc['iterations']} iterations{when}.")
    lines.append("")
    lines.append("| plan | predicted (us) | measured median (us) | rel. err | measured best (us) | rel. err (best) | "
                 "per operation predicted:measured (us) | check |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for p in doc["plans"]:
        ops = " / ".join(f"{us(p['predicted'][o])}:{us(p['measured'][o])}" for o in OPERATIONS)
        lines.append(f"| {short_label(p['label'], net)} | {us(p['predicted']['iteration_s'])} | "
                     f"{us(p['measured']['iteration_s'])} | {percent(p['relative_error'])} | "
                     f"{us(p['measured_best']['iteration_s'])} | {percent(p['relative_error_best'])} | {ops} | "
                     f"{check_text(p)} |")
    lines.append("")
    lines.append(f"Kendall tau {doc['kendall_tau']:.2f} (best iteration {doc['kendall_tau_best']:.2f}); predicted best "
                 f"`{short_label(doc['predicted_best'], net)}`, measured best `{short_label(doc['measured_best'], net)}`: "
                 f"{verdict(doc)} (best iteration: {verdict(doc, '_best')}); median relative error "
                 f"{percent(doc['median_relative_error'])} (best iteration {percent(doc['median_relative_error_best'])}).")
    lines.append("")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--np", type=int, required=True)
    ap.add_argument("--warmup", type=int, required=True)
    ap.add_argument("--iterations", type=int, required=True)
    ap.add_argument("--idle", default="")
    ap.add_argument("--elapsed", type=int, default=0)
    a = ap.parse_args()
    runs = {}
    with open(os.path.join(a.dir, "runs.tsv")) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            runs[(row["network"], row["family"])] = row
    networks = []
    for net, _ in runs:
        if net not in networks:
            networks.append(net)
    docs = []
    for net in networks:
        for family in FAMILIES:
            path = os.path.join(a.dir, f"{net}-{family}.json")
            if os.path.exists(path):
                with open(path) as f:
                    docs.append((net, family, json.load(f)))
    if not docs:
        sys.exit(f"accuracy_table.py: no results documents in {a.dir}")
    idle_skipped = any(r["idle"] != "yes" for r in runs.values())
    out = [f"## Accuracy at P = {a.np} (tools/accuracy.sh)", ""]
    out.append(f"`tools/accuracy.sh --np {a.np} --warmup {a.warmup} --iterations {a.iterations}`; the script took "
               f"{a.elapsed} s. Each calibration and validation waited for CPUs idle {a.idle} (`/proc/stat`); "
               "load averages (1, 5, 15 min) per run in `runs.tsv`.")
    if idle_skipped:
        out.append("")
        out.append("**The idle wait was skipped (`--idle-timeout 0`): these figures check the machinery only; they "
                   "are not accuracy figures.**")
    out.append("")
    # The summary first: one row per network and family, the documents' own summaries.
    out.append("| network | family | plans | median rel. err | (best iteration) | Kendall tau | predicted best = measured "
               "best? | checks |")
    out.append("|---|---|---|---|---|---|---|---|")
    errors, errors_best, per_family, hits = [], [], {}, 0
    for net, family, doc in docs:
        passed = sum(1 for p in doc["plans"] if p["check"].get("passed", False))
        out.append(f"| {net} | {family} | {len(doc['plans'])} | {percent(doc['median_relative_error'])} | "
                   f"{percent(doc['median_relative_error_best'])} | {doc['kendall_tau']:.2f} | {verdict(doc)} | "
                   f"{passed}/{len(doc['plans'])} ok |")
        errors += [p["relative_error"] for p in doc["plans"]]
        errors_best += [p["relative_error_best"] for p in doc["plans"]]
        per_family.setdefault(family, []).extend(p["relative_error"] for p in doc["plans"])
        hits += doc.get("predicted_best_is_measured_best") or doc["predicted_best_over_measured_best"] <= WITHIN
    out.append("")
    median = statistics.median(errors)
    out.append(f"**Median relative error over all {len(errors)} plans at P = {a.np}: {percent(median)} (best iteration "
               f"{percent(statistics.median(errors_best))}; target <= 10%: {'met' if median <= 0.10 else 'missed'}). "
               "Per family: " + ", ".join(f"{f} {percent(statistics.median(v))} ({len(v)} plans)"
                                          for f, v in per_family.items()) +
               f". The predicted best is the measured best or within 5% of it in {hits} of {len(docs)} "
               "network-family sets.**")
    out.append("")
    for net, family, doc in docs:
        out += family_section(net, family, doc, runs.get((net, family)))
    print("\n".join(out))


if __name__ == "__main__":
    main()
