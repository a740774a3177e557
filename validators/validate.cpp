#include "validators/validate.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <optional>
#include <sstream>

#include "common/timeline.hpp"
#include "planner/families.hpp"
#include "planner/plan.hpp"
#include "planner/search.hpp"
#include "reports/text.hpp"
#include "validators/graph_runner.hpp"
#include "validators/pipeline_runner.hpp"

namespace dnnplan::validators {

namespace {
std::shared_ptr<const networks::Network> load_network(const std::string& source, const std::string& data_dir,
                                                      const ImageSize& image) {
    return std::make_shared<networks::Network>(
        load_network_at_image(networks::resolve_network_path(source, data_dir + "/networks"), image));
}
std::shared_ptr<const clusters::Cluster> load_cluster(const std::string& source, const std::string& data_dir) {
    return std::make_shared<clusters::Cluster>(
        clusters::load_cluster_file(clusters::resolve_cluster_path(source, data_dir + "/clusters")));
}

// Bytes this machine can still give (MemAvailable), or 0 when unknown.
double available_memory_bytes() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    double kib = 0;
    std::string unit;
    while (in >> key >> kib >> unit)
        if (key == "MemAvailable:") return kib * 1024.0;
    long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? double(pages) * double(size) : 0;
}

std::string fixed(double v, int digits) {
    std::ostringstream os;
    os << std::fixed << std::setprecision(digits) << v;
    return os.str();
}
}  // namespace

PlanJob load_plan_job(const std::string& file, const std::string& cluster_override, const std::string& data_dir,
                      const ImageSize& image) {
    Json json = load_json_file(file);
    planner::PlanRequest request = planner::parse_plan_request(json, file);
    PlanJob job;
    job.file = file;
    job.label = file.substr(file.find_last_of('/') + 1);
    job.network_file = networks::resolve_network_path(request.network_source, data_dir + "/networks");
    job.network = load_network(request.network_source, data_dir, image);
    job.cluster_source = cluster_override.empty() ? request.cluster_source : cluster_override;
    job.cluster = load_cluster(job.cluster_source, data_dir);
    if (!job.cluster->supports(request.options.dtype))
        throw InputError(file, "/dtype",
                         "cluster " + job.cluster->name + " has no peak rate for " + to_string(request.options.dtype));
    planner::check_request_fits_cluster(request, *job.cluster, file);  // P and processes per node
    job.model = std::make_shared<planner::CostModel>(*job.network, *job.cluster, request.options);
    // Re-scoring a plan's layouts on the calibrated machine is the point of --cluster.
    if (!cluster_override.empty()) request.cluster_name = job.cluster->name;
    std::vector<planner::Layout> layouts = planner::layouts_for(request, *job.model, file);
    job.strategy = request.strategy;
    job.grid = request.label;
    job.pipeline = planner::pipeline_for(request, *job.model, file);
    const bool graph = !job.pipeline.device_of.empty();  // a graph partition (validators/graph_runner.hpp)
    if (std::string why = graph ? graph_unsupported_reason(job.pipeline)
                          : job.pipeline.active() ? pipeline_unsupported_reason(job.pipeline) : "";
        !why.empty())
        throw InputError(file, "/pipeline", why);
    job.scored = score_plan(*job.model, job.pipeline, layouts);
    job.layouts = std::move(layouts);
    return job;
}

planner::ScoredPlan score_plan(const planner::CostModel& model, const planner::PipelineSpec& pipeline,
                               const std::vector<planner::Layout>& layouts) {
    if (!pipeline.device_of.empty()) return planner::score_graph_partition(model, pipeline, layouts).plan;
    if (pipeline.active()) return planner::score_pipeline(model, pipeline, layouts).plan;
    return model.score(layouts);
}

std::vector<PlanJob> search_jobs(const std::string& net, std::int64_t procs, std::int64_t batch,
                                 const std::string& cluster, const std::vector<std::string>& strategies,
                                 const std::string& data_dir, const ImageSize& image) {
    const std::string network_file = networks::resolve_network_path(net, data_dir + "/networks");
    auto network = load_network(net, data_dir, image);
    auto cl = load_cluster(cluster, data_dir);
    planner::PlannerOptions options;
    options.procs = procs;
    options.batch = batch > 0 ? batch : network->default_batch;
    options.dtype = DType::fp32;
    auto model = std::make_shared<planner::CostModel>(*network, *cl, options);
    // The layer-parallel families of the planner's search (the uniform grids and the per-layer
    // search), not the pipeline and graph-partition families the runner cannot run.
    std::vector<planner::Candidate> found = planner::grid_candidates(*model);
    found.push_back(planner::per_layer_candidate(*model, found));
    // Graph partitions (validators/graph_runner.hpp) when named: not part of "all", whose runs
    // stay the layer-parallel families.
    if (std::find(strategies.begin(), strategies.end(), "graph-partition") != strategies.end())
        for (planner::Candidate& c : planner::graph_partition_candidates(*model)) found.push_back(std::move(c));
    std::stable_sort(found.begin(), found.end(), [](const planner::Candidate& a, const planner::Candidate& b) {
        return a.plan.cost.iteration_s < b.plan.cost.iteration_s;
    });
    auto wanted = [&](planner::Strategy strategy) {
        for (const std::string& name : strategies)
            if (name == "all" || planner::parse_strategy(name) == strategy) return true;
        return false;
    };
    std::vector<PlanJob> jobs;
    for (const planner::Candidate& c : found) {
        if (!c.plan.cost.feasible || !wanted(c.strategy)) continue;
        // The same layouts under another name (per-layer often picks a uniform family) run once.
        const bool graph = !c.pipeline.device_of.empty();
        bool duplicate = false;
        for (PlanJob& earlier : jobs) {
            if (graph || !earlier.pipeline.device_of.empty()) continue;  // a placement, not layouts
            bool same = true;
            for (int a : model->anchors()) same = same && earlier.scored.anchor_layouts[a] == c.plan.anchor_layouts[a];
            if (same) {
                earlier.label += " = " + planner::to_string(c.strategy);
                duplicate = true;
            }
        }
        if (duplicate) continue;
        PlanJob job;
        job.label = network->name + " " + planner::to_string(c.strategy) + (c.label.empty() ? "" : " " + c.label);
        job.network = network;
        job.network_file = network_file;
        job.cluster = cl;
        job.cluster_source = cluster;
        job.model = model;
        job.strategy = c.strategy;
        job.grid = c.label;
        job.scored = graph ? c.plan : model->score(c.plan.anchor_layouts);
        job.layouts = c.plan.anchor_layouts;
        if (graph) job.pipeline = c.pipeline;
        jobs.push_back(std::move(job));
    }
    return jobs;
}

void check_runnable(const PlanJob& job, int ranks) {
    // Plan problems point into the plan file; with --net, network problems point at the network.
    const std::string where = job.file.empty() ? job.network_file : job.file;
    const auto& options = job.model->options();
    if (options.procs != ranks)
        throw InputError(where, "/procs",
                         "the plan is for P = " + std::to_string(options.procs) + " processes but the run has " +
                             std::to_string(ranks) + " ranks (--np)");
    const std::string net_ptr = job.file.empty() ? "" : "/network";
    const bool tied_runs = job.pipeline.active() && job.pipeline.device_of.empty();  // pipeline_runner runs ties
    if (std::string why = unsupported_reason(*job.network, tied_runs); !why.empty()) throw InputError(where, net_ptr, why);
    if (!job.scored.cost.feasible)
        throw InputError(where, job.file.empty() ? "" : "/layouts",
                         "the plan is infeasible: " + job.scored.cost.reason);
    // Each rank holds its shard in fp32 for timing and, for the check, a double copy of its shard
    // and of the whole sequential network: bound it by 4x the model's per-process bytes plus the
    // whole network in double.
    networks::NetworkTotals t = networks::totals(*job.network, options.batch);
    double per_rank = 4 * job.scored.cost.memory_bytes + 2.0 * double(t.activation_bytes + 3 * t.weight_bytes);
    double need = per_rank * ranks, have = available_memory_bytes();
    if (have > 0 && need > 0.8 * have)
        throw InputError(where, net_ptr,
                         "running " + job.label + " on " + std::to_string(ranks) + " ranks needs about " +
                             human_bytes(need) + ", more than 80% of this machine's available " + human_bytes(have));
}

double kendall_tau(const std::vector<double>& a, const std::vector<double>& b) {
    const std::size_t n = a.size();
    if (n < 2) return 1.0;
    double concordant = 0, discordant = 0;
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = i + 1; j < n; ++j) {
            double s = (a[i] - a[j]) * (b[i] - b[j]);
            if (s > 0)
                ++concordant;
            else if (s < 0)
                ++discordant;
        }
    return (concordant - discordant) / (0.5 * double(n) * double(n - 1));
}

namespace {
// The operations the model predicts and the validator measures, under the model's names.
struct OpPair {
    const char* name;
    Op op;
};
const OpPair kOps[] = {{"fwd_compute_s", Op::fwd_compute},       {"bwd_compute_s", Op::bwd_compute},
                       {"all_reduce_s", Op::all_reduce},         {"halo_s", Op::halo},
                       {"redistribution_s", Op::redistribution}, {"sync_exposed_s", Op::sync}};
double predicted_op(const planner::CostBreakdown& c, Op op) {
    switch (op) {
        case Op::fwd_compute:
            return c.fwd_compute_s;
        case Op::bwd_compute:
            return c.bwd_compute_s;
        case Op::all_reduce:
            return c.comm(planner::CommKind::all_reduce) + c.comm(planner::CommKind::all_gather) + c.comm(planner::CommKind::reduce_scatter) + c.comm(planner::CommKind::all_to_all);
        case Op::halo:
            return c.comm(planner::CommKind::halo);
        case Op::redistribution:
            return c.comm(planner::CommKind::redistribution) + c.comm(planner::CommKind::point_to_point);
        case Op::sync:
            return c.sync_exposed_s;
        default:
            return 0;
    }
}
double rel(double predicted, double measured) { return measured > 0 ? std::abs(predicted - measured) / measured : 0; }

Json predicted_ops(const planner::CostBreakdown& c) {
    Json pred = {{"iteration_s", c.iteration_s}, {"sync_total_s", c.sync_total_s}};
    for (const OpPair& o : kOps) pred[o.name] = predicted_op(c, o.op);
    return pred;
}

// The plan's prediction at the compute speed its run had: the run's speed reference over the
// calibration's (clusters::MeasuredOn::reference_kernel_s); none when either was not timed.
struct RunSpeed {
    double slowdown = 1;
    planner::CostBreakdown cost;
};
std::optional<RunSpeed> at_run_speed(const PlanJob& job, const RunResult& r) {
    const double calibrated = job.cluster->measured_on.reference_kernel_s;
    if (!(calibrated > 0 && r.reference_kernel_s > 0)) return std::nullopt;
    RunSpeed speed;
    speed.slowdown = r.reference_kernel_s / calibrated;
    clusters::Cluster cluster = *job.cluster;
    cluster.device = clusters::at_compute_speed(cluster.device, speed.slowdown);
    const planner::CostModel model(*job.network, cluster, job.model->options());
    speed.cost = score_plan(model, job.pipeline, job.layouts).cost;
    return speed;
}
}  // namespace

namespace {
// Ranking agreement and error summary of one statistic ("median" or "best").
void summarize(Json& out, const std::vector<PlanJob>& jobs, const std::vector<double>& predicted,
               const std::vector<double>& measured, const std::string& suffix) {
    std::vector<double> errors;
    for (std::size_t k = 0; k < predicted.size(); ++k) errors.push_back(rel(predicted[k], measured[k]));
    out["kendall_tau" + suffix] = kendall_tau(predicted, measured);
    if (jobs.empty()) return;
    std::size_t pb = std::min_element(predicted.begin(), predicted.end()) - predicted.begin();
    std::size_t mb = std::min_element(measured.begin(), measured.end()) - measured.begin();
    out["predicted_best" + suffix] = jobs[pb].label;
    out["measured_best" + suffix] = jobs[mb].label;
    out["predicted_best_is_measured_best" + suffix] = pb == mb;
    out["predicted_best_over_measured_best" + suffix] = measured[mb] > 0 ? measured[pb] / measured[mb] : 1.0;
    std::sort(errors.begin(), errors.end());
    std::size_t n = errors.size();
    out["median_relative_error" + suffix] = n % 2 ? errors[n / 2] : 0.5 * (errors[n / 2 - 1] + errors[n / 2]);
}
}  // namespace

Json results_json(const std::vector<PlanJob>& jobs, const std::vector<RunResult>& results, const RunOptions& options,
                  int ranks) {
    Json plans = Json::array();
    std::vector<double> predicted, measured, best, predicted_at_run_speed;
    bool all_passed = true, all_ledgers_agree = true;
    for (std::size_t k = 0; k < jobs.size(); ++k) {
        const PlanJob& job = jobs[k];
        const RunResult& r = results[k];
        const planner::CostBreakdown& c = job.scored.cost;
        Json pred = predicted_ops(c);
        Json meas = {{"iteration_s", r.iteration_s},
                     {"loss_s", r.op_s[static_cast<int>(Op::loss)]},
                     {"optimizer_s", r.op_s[static_cast<int>(Op::optimizer)]}};
        Json meas_best = {{"iteration_s", r.iteration_best_s}};
        Json errs = Json::object();
        for (const OpPair& o : kOps) {
            meas[o.name] = r.op_s[static_cast<int>(o.op)];
            meas_best[o.name] = r.op_best_s[static_cast<int>(o.op)];
            errs[o.name] = rel(predicted_op(c, o.op), r.op_s[static_cast<int>(o.op)]);
        }
        // The waits for the last arriver at blocking collectives and halo exchanges, left out of their op's time.
        meas["all_reduce_wait_s"] = r.op_wait_s[static_cast<int>(Op::all_reduce)];
        meas["redistribution_wait_s"] = r.op_wait_s[static_cast<int>(Op::redistribution)];
        meas["halo_wait_s"] = r.op_wait_s[static_cast<int>(Op::halo)];
        std::string layouts;
        for (int a : job.model->anchors())
            layouts += (layouts.empty() ? "" : ", ") + job.network->layers[a].name + " " +
                       planner::to_string(job.scored.layers[a].layout);
        bool passed = !r.checked || (r.output_error < kValueTolerance && r.gradient_error < kValueTolerance &&
                                     r.loss_error < kLossTolerance);
        // The byte ledger is compared on every run, timing-only runs too, and a difference fails
        // the run (exit 1) as a pipeline's does (validators/README.md, "The byte ledger"); pipeline
        // runs carry theirs in their details (attach_run_details).
        const bool ledger_agrees = r.ledger.is_object() && r.ledger.value("agrees", false);
        if (r.ledger.is_object()) all_ledgers_agree = all_ledgers_agree && ledger_agrees;
        all_passed = all_passed && passed && (ledger_agrees || !r.ledger.is_object());
        Json check = {{"performed", r.checked},
                      {"ledger_agrees", ledger_agrees},
                      {"output_error", r.output_error},
                      {"gradient_error", r.gradient_error},
                      {"loss_error", r.loss_error},
                      {"losses", r.losses},
                      {"reference_losses", r.reference_losses},
                      {"tolerances", {{"values", kValueTolerance}, {"losses", kLossTolerance}}},
                      {"passed", passed}};
        plans.push_back({{"label", job.label},
                         {"plan_file", job.file},
                         {"network", job.network->name},
                         {"input_shape", job.network->layers.front().output_shape},
                         {"procs", job.model->options().procs},
                         {"batch", job.model->options().batch},
                         {"strategy", planner::to_string(job.strategy)},
                         {"grid", job.grid},
                         {"layouts", layouts},
                         {"cluster", job.cluster_source},
                         {"predicted", pred},
                         {"measured", meas},
                         {"measured_best", meas_best},
                         {"relative_error", rel(c.iteration_s, r.iteration_s)},
                         {"relative_error_best", rel(c.iteration_s, r.iteration_best_s)},
                         {"relative_errors", errs},
                         {"iteration_samples_s", r.iteration_samples},
                         {"check", check},
                         // What the result is about, as `simulate --format json` writes it (issue 18, item 4).
                         {"plan",
                          {{"file", job.file},
                           {"network", job.network->name},
                           {"fingerprint", planner::network_fingerprint(*job.network)},
                           {"procs", job.model->options().procs},
                           {"batch", job.model->options().batch},
                           {"cluster", job.cluster->name},
                           {"strategy", planner::to_string(job.strategy)},
                           {"label", job.grid}}},
                         {"ledger", r.ledger}});
        if (const std::optional<RunSpeed> speed = at_run_speed(job, r)) {
            Json& plan = plans.back();
            plan["speed"] = {{"reference_kernel_s", r.reference_kernel_s},
                             {"calibration_reference_kernel_s", job.cluster->measured_on.reference_kernel_s},
                             {"slowdown", speed->slowdown}};
            plan["predicted_at_run_speed"] = predicted_ops(speed->cost);
            plan["relative_error_at_run_speed"] = rel(speed->cost.iteration_s, r.iteration_s);
            predicted_at_run_speed.push_back(speed->cost.iteration_s);
        }
        predicted.push_back(c.iteration_s);
        measured.push_back(r.iteration_s);
        best.push_back(r.iteration_best_s);
    }
    Json out = {{"format", "dnnplan-validation"},   {"version", 1},  {"ranks", ranks}, {"warmup", options.warmup},
                {"iterations", options.iterations}, {"plans", plans}};
    summarize(out, jobs, predicted, measured, "");
    summarize(out, jobs, predicted, best, "_best");
    if (!jobs.empty() && predicted_at_run_speed.size() == jobs.size())
        summarize(out, jobs, predicted_at_run_speed, measured, "_at_run_speed");
    out["checks_passed"] = all_passed;
    out["ledgers_agree"] = all_ledgers_agree;
    return out;
}

namespace {
std::string us(double seconds) { return fixed(seconds * 1e6, 1); }
// A plan's label as the text tables show it: at most 36 characters.
std::string short_label(const Json& plan) {
    std::string label = plan["label"].get<std::string>();
    return label.size() > 36 ? label.substr(0, 36) : label;
}
// The per-operation table: "predicted/measured" per operation the model and the runner share; an
// operation zero (0.0/0.0) in every plan is left out and named below the table (issue 18, item 1).
std::string operations_table(const Json& results) {
    struct Column {
        const char* key;
        const char* title;
    };
    const Column all[] = {{"fwd_compute_s", "fwd comp"},  {"bwd_compute_s", "bwd comp"},
                          {"all_reduce_s", "all-reduce"}, {"halo_s", "halo"},
                          {"redistribution_s", "redistrib."}, {"sync_exposed_s", "sync exp."}};
    std::vector<Column> shown;
    std::string omitted;
    for (const Column& c : all) {
        bool zero = true;
        for (const Json& p : results["plans"])
            zero = zero && us(p["predicted"][c.key].get<double>()) == us(0) && us(p["measured"][c.key].get<double>()) == us(0);
        if (!zero || results["plans"].empty())
            shown.push_back(c);
        else
            omitted += (omitted.empty() ? "" : ", ") + std::string(c.title);
    }
    reports::TextTable table;
    table.header = {"plan"};
    for (const Column& c : shown) table.header.push_back(c.title);
    for (const Json& p : results["plans"]) {
        std::vector<std::string> row = {short_label(p)};
        for (const Column& c : shown)
            row.push_back(us(p["predicted"][c.key].get<double>()) + "/" + us(p["measured"][c.key].get<double>()));
        table.rows.push_back(std::move(row));
    }
    return table.render() + (omitted.empty() ? "" : "(zero in every plan, not shown: " + omitted + ")\n");
}
}  // namespace

std::string results_text(const Json& results) {
    std::ostringstream os;
    // Columns as wide as their widest cell (reports::TextTable), so that no value runs into the next.
    reports::TextTable plans;
    const bool at_run_speed = results.contains("median_relative_error_at_run_speed");
    plans.header = {"plan", "predicted us", "measured us", "rel.err", "best us", "rel.err"};
    if (at_run_speed) plans.header.insert(plans.header.end(), {"slowdown", "at run speed us", "rel.err"});
    plans.header.push_back("check (output / gradients / losses)");
    for (const Json& p : results["plans"]) {
        std::string check = "not run";
        const Json& c = p["check"];
        if (c["performed"].get<bool>()) {
            std::ostringstream e;
            e << std::scientific << std::setprecision(1) << c["output_error"].get<double>() << " / "
              << c["gradient_error"].get<double>() << " / " << c["loss_error"].get<double>();
            check = (c["passed"].get<bool>() ? "ok " : "FAILED ") + e.str();
        }
        std::vector<std::string> row = {short_label(p), us(p["predicted"]["iteration_s"].get<double>()),
                                        us(p["measured"]["iteration_s"].get<double>()),
                                        fixed(100 * p["relative_error"].get<double>(), 0) + "%",
                                        us(p["measured_best"]["iteration_s"].get<double>()),
                                        fixed(100 * p["relative_error_best"].get<double>(), 0) + "%"};
        if (at_run_speed)
            row.insert(row.end(), {fixed(p["speed"]["slowdown"].get<double>(), 2),
                                   us(p["predicted_at_run_speed"]["iteration_s"].get<double>()),
                                   fixed(100 * p["relative_error_at_run_speed"].get<double>(), 0) + "%"});
        row.push_back(check);
        plans.rows.push_back(std::move(row));
    }
    os << plans.render();
    os << "\nper operation, predicted / measured (us):\n" << operations_table(results);
    for (const Json& p : results["plans"])
        if (p.contains("ledger") && p["ledger"].is_object() && !p["ledger"].value("agrees", false)) {
            os << "\nbyte ledger of " << p["label"].get<std::string>() << " differs from the plan:\n";
            for (const Json& m : p["ledger"]["mismatches"]) os << "  " << m.get<std::string>() << "\n";
        }
    for (const std::string suffix : {"", "_best", "_at_run_speed"}) {
        if (!results.contains("median_relative_error" + suffix)) continue;
        os << "\n"
           << (suffix.empty()         ? "median iteration"
               : suffix == "_best"    ? "best iteration"
                                      : "median iteration, predicted at the run's compute speed")
           << ": median relative error "
           << fixed(100 * results["median_relative_error" + suffix].get<double>(), 1) << "%, Kendall tau "
           << fixed(results["kendall_tau" + suffix].get<double>(), 2) << ", predicted best "
           << results["predicted_best" + suffix].get<std::string>() << ", measured best "
           << results["measured_best" + suffix].get<std::string>() << " ("
           << (results["predicted_best_is_measured_best" + suffix].get<bool>()
                   ? std::string("the same")
                   : "predicted best measured " +
                         fixed(100 * (results["predicted_best_over_measured_best" + suffix].get<double>() - 1), 1) +
                         "% slower")
           << ")\n";
    }
    return os.str();
}

Json trace_json(const std::vector<PlanJob>& jobs, const std::vector<RunResult>& results) {
    // The shared timeline convention of common/timeline.hpp: source "measured", one pid per plan,
    // per rank a lane for compute and blocking communication and one for gradient synchronisation.
    std::vector<dnnplan::TraceEvent> events;
    std::vector<std::string> labels;
    for (std::size_t k = 0; k < jobs.size(); ++k) {
        labels.push_back(jobs[k].label + ", P = " + std::to_string(jobs[k].model->options().procs));
        for (std::size_t r = 0; r < results[k].trace.size(); ++r)
            for (const TraceEvent& e : results[k].trace[r]) {
                dnnplan::TraceEvent t;  // the file format, not the runner's own TraceEvent
                t.name = e.name;
                bool compute = e.op == Op::fwd_compute || e.op == Op::bwd_compute || e.op == Op::optimizer;
                t.category = compute ? "compute" : to_string(e.op);
                t.source = TraceSource::measured;
                t.plan = static_cast<int>(k);
                t.rank = static_cast<int>(r);
                t.sync_lane = e.op == Op::sync;
                t.start_s = e.start;
                t.duration_s = e.end - e.start;
                events.push_back(std::move(t));
            }
    }
    return dnnplan::chrome_trace(events, labels);
}

}  // namespace dnnplan::validators
