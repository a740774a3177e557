#!/usr/bin/env python3
"""Renders tools/accuracy.sh's results as Markdown for validators/README.md.

Reads DIR/runs.tsv and, per network and family, every round's results document of `dnnplan
validate` (DIR/NET-FAMILY-rR.json; a directory of the single-round script, DIR/NET-FAMILY.json, is
one round). Per plan: the median over the rounds of the rounds' measured times (each already a
median over iterations), their spread ((max - min) / median) and the relative error against that
median. Per network and family: Kendall tau, the best-plan verdict and the median relative error on
those medians, by validate's own rule (validators/validate.cpp, `kendall_tau` and `summarize`).

Why the rule is repeated here and not called: it lives in the validators library, which links MPI
and runs only inside the MPI worker; dnnplan itself does not link it. Rather than an MPI launch to
take medians, this script applies the same rule and checks itself against validate on every round:
each round document's own tau, best plans, ratio and median error must equal what `summarize` below
computes from that document's per-plan times, or the script stops (status 1) naming the field.
"""
import argparse
import csv
import glob
import json
import os
import re
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


# validate's rule (validators/validate.cpp): rel(), kendall_tau() and summarize(), same definitions.
def relative_error(predicted, measured):
    return abs(predicted - measured) / measured if measured > 0 else 0.0


def kendall_tau(a, b):
    """Kendall's tau-a; ties count as neither concordant nor discordant."""
    n = len(a)
    if n < 2:
        return 1.0
    s = 0
    for i in range(n):
        for j in range(i + 1, n):
            d = (a[i] - a[j]) * (b[i] - b[j])
            s += 1 if d > 0 else -1 if d < 0 else 0
    return s / (0.5 * n * (n - 1))


def summarize(labels, predicted, measured):
    """Tau, best plans (the first minimum), their ratio and the median relative error."""
    pb = min(range(len(predicted)), key=lambda k: predicted[k])
    mb = min(range(len(measured)), key=lambda k: measured[k])
    return {"kendall_tau": kendall_tau(predicted, measured), "predicted_best": labels[pb], "measured_best": labels[mb],
            "predicted_best_is_measured_best": pb == mb,
            "predicted_best_over_measured_best": measured[pb] / measured[mb] if measured[mb] > 0 else 1.0,
            "median_relative_error": statistics.median(relative_error(p, m) for p, m in zip(predicted, measured))}


def check_against_validate(path, doc):
    """Stops when this script's rule gives another summary of a round than validate wrote into it."""
    labels = [p["label"] for p in doc["plans"]]
    predicted = [p["predicted"]["iteration_s"] for p in doc["plans"]]
    checks = [("", predicted, "measured"), ("_best", predicted, "measured_best")]
    if "median_relative_error_at_run_speed" in doc:
        checks.append(("_at_run_speed", [p["predicted_at_run_speed"]["iteration_s"] for p in doc["plans"]], "measured"))
    for suffix, predictions, key in checks:
        mine = summarize(labels, predictions, [p[key]["iteration_s"] for p in doc["plans"]])
        for field, value in mine.items():
            theirs = doc[field + suffix]
            same = abs(value - theirs) <= 1e-9 * max(1.0, abs(theirs)) if isinstance(value, float) else value == theirs
            if not same:
                sys.exit(f"accuracy_table.py: {path}: {field + suffix} is {theirs} in validate's document but {value} "
                         "by this script's rule: the two definitions differ (validators/validate.cpp summarize)")


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


def aggregate(net, family, rounds):
    """rounds: [(path, document)] of one network and family. Per plan the median over the rounds of
    the measured times and of the predictions (each round predicts from its own calibration,
    tools/accuracy.sh). A plan that is not in every round (the layer-parallel candidates follow the
    calibration: per-layer may equal batch in one round and not in another) is left out and named."""
    first = rounds[0][1]
    for path, doc in rounds:
        check_against_validate(path, doc)
    in_all = set.intersection(*({p["label"] for p in doc["plans"]} for _, doc in rounds))
    labels = [p["label"] for p in first["plans"] if p["label"] in in_all]
    dropped = sorted({p["label"] for _, doc in rounds for p in doc["plans"]} - in_all)
    plans = []
    for label in labels:
        per_round = [next(p for p in doc["plans"] if p["label"] == label) for _, doc in rounds]
        times = [p["measured"]["iteration_s"] for p in per_round]
        median = statistics.median(times)
        predictions = [p["predicted"]["iteration_s"] for p in per_round]
        predicted = {o: statistics.median(p["predicted"][o] for p in per_round) for o in ["iteration_s"] + OPERATIONS}
        failed = [(r + 1, p) for r, p in enumerate(per_round) if check_text(p) not in ("ok", "not checked")]
        plan = {"label": label, "predicted": predicted["iteration_s"], "rounds": times, "measured": median,
                "predictions": predictions,
                "spread": (max(times) - min(times)) / median if median > 0 else 0.0,
                "error": relative_error(predicted["iteration_s"], median),
                "measured_best": statistics.median(p["measured_best"]["iteration_s"] for p in per_round),
                "ops": {o: (predicted[o], statistics.median(p["measured"][o] for p in per_round)) for o in OPERATIONS},
                "passed": all(p["check"].get("passed", False) for p in per_round),
                "check": f"{check_text(failed[0][1])} (round {failed[0][0]})" if failed else check_text(per_round[0])}
        plan["error_best"] = relative_error(plan["predicted"], plan["measured_best"])
        # At the run's compute speed (validate's speed reference against the calibration's): each
        # round's prediction scaled to the speed that round's validation ran at.
        if all("predicted_at_run_speed" in p for p in per_round):
            plan["slowdowns"] = [p["speed"]["slowdown"] for p in per_round]
            plan["predicted_run"] = statistics.median(p["predicted_at_run_speed"]["iteration_s"] for p in per_round)
            plan["error_run"] = relative_error(plan["predicted_run"], median)
        plan["noise"] = plan["spread"] > plan["error"]
        plans.append(plan)
    predicted = [p["predicted"] for p in plans]
    summary = summarize(labels, predicted, [p["measured"] for p in plans])
    summary_best = summarize(labels, predicted, [p["measured_best"] for p in plans])
    summary_run = summarize(labels, [p["predicted_run"] for p in plans], [p["measured"] for p in plans]) \
        if plans and all("predicted_run" in p for p in plans) else None
    return {"net": net, "family": family, "plans": plans, "summary": summary, "summary_best": summary_best,
            "summary_run": summary_run,
            "rounds": [doc for _, doc in rounds], "batch": first["plans"][0]["batch"] if first["plans"] else "?",
            "dropped": dropped,
            "ranks": first["ranks"], "warmup": first["warmup"], "iterations": first["iterations"]}


def verdict(summary):
    if summary["predicted_best_is_measured_best"]:
        return "yes"
    ratio = summary["predicted_best_over_measured_best"]
    return f"{'within 5%' if ratio <= WITHIN else 'no'} (+{percent(ratio - 1)})"


def runs_text(runs):
    """When the rounds ran; before each the load, the CPU probe, and the CPU time the hypervisor stole."""
    if not runs:
        return ""
    text = f"; rounds run {runs[0]['start_utc']}-{runs[-1]['end_utc']} UTC, load average (1 min) before each " + \
        ", ".join(r["load_before"].split()[0] for r in runs)
    if any(r.get("steal") for r in runs):
        text += ", CPU time stolen by the hypervisor " + ", ".join(r.get("steal") or "?" for r in runs)
    if any(r.get("cpu_probe_ms") for r in runs):
        text += ", CPU probe (ms) " + ", ".join(r.get("cpu_probe_ms") or "?" for r in runs)
    waits = [r["waited_s"] for r in runs if r["idle"] == "yes"]
    return text + (f", waited {', '.join(waits)} s for an idle machine" if len(waits) == len(runs) else
                   ", idle wait skipped")


def family_section(a, runs):
    net = a["net"]
    lines = [f"### {net}: {a['family']}", ""]
    lines.append(f"Batch {a['batch']}, each round predicted on its own calibration (`cal-{net}-rR.json`), "
                 f"{a['ranks']} ranks, {a['warmup']} warm-up + "
                 f"{a['iterations']} iterations, {len(a['rounds'])} rounds{runs_text(runs)}." +
                 (f" Left out, not in every round: {', '.join(a['dropped'])}." if a["dropped"] else ""))
    lines.append("")
    run = a["summary_run"] is not None
    lines.append("| plan | predicted (us) | measured, median of rounds (us) | rounds (us) | spread | rel. err | "
                 "measured best (us) | rel. err (best) | per operation predicted:measured (us) | check | "
                 "predicted per round (us) |" +
                 (" slowdown per round | predicted at run speed (us) | rel. err at run speed |" if run else ""))
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if run else ""))
    for p in a["plans"]:
        ops = " / ".join(f"{us(pr)}:{us(me)}" for pr, me in p["ops"].values())
        lines.append(f"| {short_label(p['label'], net)} | {us(p['predicted'])} | {us(p['measured'])} | "
                     f"{', '.join(us(t) for t in p['rounds'])} | {percent(p['spread'])} | {percent(p['error'])}"
                     f"{' (noise)' if p['noise'] else ''} | {us(p['measured_best'])} | {percent(p['error_best'])} | "
                     f"{ops} | {p['check']} | {', '.join(us(t) for t in p['predictions'])} |" +
                     (f" {', '.join(f'{x:.2f}' for x in p['slowdowns'])} | {us(p['predicted_run'])} | "
                      f"{percent(p['error_run'])} |" if run else ""))
    lines.append("")
    s, b = a["summary"], a["summary_best"]
    per_round = "; ".join(f"{d['kendall_tau']:.2f} {verdict(d)}" for d in a["rounds"])
    lines.append(f"On the medians: Kendall tau {s['kendall_tau']:.2f} (best iteration {b['kendall_tau']:.2f}); predicted "
                 f"best `{short_label(s['predicted_best'], net)}`, measured best `{short_label(s['measured_best'], net)}`: "
                 f"{verdict(s)} (best iteration: {verdict(b)}); median relative error "
                 f"{percent(s['median_relative_error'])} (best iteration {percent(b['median_relative_error'])}); "
                 f"spread wider than the error in {sum(p['noise'] for p in a['plans'])} of {len(a['plans'])} plans. "
                 f"Each round alone (tau, verdict): {per_round}.")
    if run:
        r = a["summary_run"]
        lines.append("")
        lines.append(f"Predicted at the run's compute speed: median relative error {percent(r['median_relative_error'])}, "
                     f"Kendall tau {r['kendall_tau']:.2f}, predicted best `{short_label(r['predicted_best'], net)}`: "
                     f"{verdict(r)}.")
    lines.append("")
    return lines


def load_rounds(directory, net, family):
    """[(path, document)] of the rounds, in round order; the single-round layout is one round."""
    found = []
    for path in glob.glob(os.path.join(directory, f"{net}-{family}-r*.json")):
        m = re.fullmatch(re.escape(f"{net}-{family}-r") + r"([0-9]+)\.json", os.path.basename(path))
        if m:
            found.append((int(m.group(1)), path))
    single = os.path.join(directory, f"{net}-{family}.json")
    paths = [path for _, path in sorted(found)] or ([single] if os.path.exists(single) else [])
    rounds = []
    for path in paths:
        with open(path) as f:
            rounds.append((path, json.load(f)))
    return rounds


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--np", type=int, required=True)
    ap.add_argument("--warmup", type=int, required=True)
    ap.add_argument("--iterations", type=int, required=True)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--idle", default="")
    ap.add_argument("--elapsed", type=int, default=0)
    a = ap.parse_args()
    runs = {}
    with open(os.path.join(a.dir, "runs.tsv")) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            runs.setdefault((row["network"], row["family"]), []).append(row)
    networks = []
    for net, _ in runs:
        if net not in networks:
            networks.append(net)
    sets = []
    for net in networks:
        for family in FAMILIES:
            rounds = load_rounds(a.dir, net, family)
            if rounds:
                sets.append(aggregate(net, family, rounds))
    if not sets:
        sys.exit(f"accuracy_table.py: no results documents in {a.dir}")
    idle_skipped = any(r["idle"] != "yes" for rows in runs.values() for r in rows)
    out = [f"## Accuracy at P = {a.np} (tools/accuracy.sh)", ""]
    out.append(f"`tools/accuracy.sh --np {a.np} --warmup {a.warmup} --iterations {a.iterations} --repeats {a.repeats}`; "
               f"the script took {a.elapsed} s. Each calibration and validation waited for CPUs idle {a.idle} "
               "(`/proc/stat`); load averages (1, 5, 15 min) and the CPU time stolen by the hypervisor per run in "
               "`runs.tsv` with a CPU probe before each. Every round starts with its own calibration and predicts from it. Per plan, "
               "the measured time is the median of the rounds' measured times (each a median over iterations), the "
               "predicted time the median of the rounds' predictions, the spread is (max - min) / median over the rounds, and Kendall tau and the verdict "
               "are those medians' (as `dnnplan validate` computes them).")
    if idle_skipped:
        out.append("")
        out.append("**The idle wait was skipped (`--idle-timeout 0`): these figures check the machinery only; they "
                   "are not accuracy figures.**")
    out.append("")
    out.append("| network | family | plans | rounds | median rel. err | (best iteration) | Kendall tau | predicted best = "
               "measured best? | spread > error | checks |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    plans, per_family, hits = [], {}, 0
    for s in sets:
        passed = sum(1 for p in s["plans"] if p["passed"])
        summary = s["summary"]
        out.append(f"| {s['net']} | {s['family']} | {len(s['plans'])} | {len(s['rounds'])} | "
                   f"{percent(summary['median_relative_error'])} | {percent(s['summary_best']['median_relative_error'])} | "
                   f"{summary['kendall_tau']:.2f} | {verdict(summary)} | {sum(p['noise'] for p in s['plans'])} | "
                   f"{passed}/{len(s['plans'])} ok |")
        plans += s["plans"]
        per_family.setdefault(s["family"], []).extend(p["error"] for p in s["plans"])
        hits += summary["predicted_best_is_measured_best"] or summary["predicted_best_over_measured_best"] <= WITHIN
    out.append("")
    if all(s["summary_run"] is not None for s in sets):
        # The same plans predicted at the compute speed each round's validation ran at.
        runs_family = {}
        for s in sets:
            runs_family.setdefault(s["family"], []).extend(p["error_run"] for p in s["plans"])
        run_hits = sum(s["summary_run"]["predicted_best_is_measured_best"] or
                       s["summary_run"]["predicted_best_over_measured_best"] <= WITHIN for s in sets)
        run_median = statistics.median(p["error_run"] for p in plans)
        slowdowns = [x for p in plans for x in p["slowdowns"]]
        out.append(f"**Predicted at the run's compute speed** (each round's prediction with its calibration's compute "
                   f"costs scaled by the slowdown of the speed reference timed between the validation's iterations "
                   f"against the calibration's; slowdowns {min(slowdowns):.2f}-{max(slowdowns):.2f}, median "
                   f"{statistics.median(slowdowns):.2f}): median relative error {percent(run_median)} over {len(plans)} plans "
                   f"(target <= 10%: {'met' if run_median <= 0.10 else 'missed'}). Per family: " +
                   ", ".join(f"{f} {percent(statistics.median(v))}" for f, v in runs_family.items()) +
                   f". The predicted best is the measured best or within 5% of it in {run_hits} of {len(sets)} sets.")
        out.append("")
    median = statistics.median(p["error"] for p in plans)
    noisy = sum(p["noise"] for p in plans)
    out.append(f"**Median relative error over all {len(plans)} plans at P = {a.np}: {percent(median)} (best iteration "
               f"{percent(statistics.median(p['error_best'] for p in plans))}; target <= 10%: "
               f"{'met' if median <= 0.10 else 'missed'}). Per family: " +
               ", ".join(f"{f} {percent(statistics.median(v))} ({len(v)} plans)" for f, v in per_family.items()) +
               f". The predicted best is the measured best or within 5% of it in {hits} of {len(sets)} "
               f"network-family sets. Median spread over the rounds {percent(statistics.median(p['spread'] for p in plans))}; "
               f"{noisy} of {len(plans)} plans have a spread wider than their error (their error is noise at this "
               "number of rounds).**")
    out.append("")
    for s in sets:
        out += family_section(s, runs.get((s["net"], s["family"]), []))
    print("\n".join(out))


if __name__ == "__main__":
    main()
