// `dnnplan plan` (also the default command): rank the strategies for a network on a cluster, or
// re-score a saved plan file.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cli/commands.hpp"
#include "clusters/cluster.hpp"
#include "common/diagnostics.hpp"
#include "common/units.hpp"
#include "networks/network.hpp"
#include "planner/plan.hpp"
#include "planner/search.hpp"
#include "reports/candidate_text.hpp"
#include "reports/plan_report.hpp"
#include "reports/text.hpp"

namespace dnnplan::cli {
namespace {

struct PlanOptions {
    PlanningArgs planning;  // --net, --procs, --cluster and the model options shared with report and sweep
    int top = 10;
    std::string format = "text";
    std::string out;
    std::string plan_file;
    int tensor = 0, stages = 0, micro_batches = 0, replicas = 0;  // an explicit pipeline (planner/pipeline.hpp)
    std::string schedule = "1f1b";
    bool zero = false, recompute = false;
    int simulate_top = 0;  // simulate the K best candidates on the cluster's topology and re-rank them
    bool wide = false;               // every column, no width limit
    std::string layers = "collapsed";  // or "all": every layer, repeated blocks too
};

reports::TextOptions text_options(const PlanOptions& o) {
    reports::TextOptions t;
    t.wide = o.wide;
    t.all_layers = o.layers == "all";
    t.width = terminal_width();
    return t;
}

void add_plan_options(CLI::App* app, PlanOptions& o, bool with_plan_file) {
    PlanningArgs& p = o.planning;
    app->add_option("--net", p.net, "network spec file or built-in name (see `dnnplan networks`)");
    app->add_flag("--allow-unknown-ops", p.load.allow_unknown_ops, "ONNX: import unsupported operators as elementwise layers");
    app->add_option("--procs,-p", p.procs, "number of processes P")->check(positive_integer());
    app->add_option("--cluster", p.cluster, "cluster file or preset name (see `dnnplan clusters`)")->capture_default_str();
    add_model_options(app, p);
    app->add_option("--top", o.top, "how many ranked strategies to show")->capture_default_str()->check(positive_integer());
    app->add_option("--format", o.format, "text, json or csv")->capture_default_str()->check(CLI::IsMember({"text", "json", "csv"}));
    app->add_option("--out", o.out, "write the best plan as JSON to this file")->check(output_file());
    if (with_plan_file) app->add_option("--plan", o.plan_file, "re-score a saved (or hand-edited) plan file");
    app->add_option("--stages", o.stages, "score this many pipeline stages (with --micro-batches, --replicas, --tensor)")->check(positive_integer());
    app->add_option("--micro-batches", o.micro_batches, "micro-batches per replica of an explicit pipeline (default 1)")->check(positive_integer());
    app->add_option("--replicas", o.replicas, "data-parallel replicas of an explicit pipeline (default P / (T x S))")->check(positive_integer());
    app->add_option("--tensor", o.tensor, "processes per stage (tensor parallelism) of an explicit pipeline (default 1)")->check(positive_integer());
    app->add_option("--schedule", o.schedule, "gpipe or 1f1b")->capture_default_str()->check(CLI::IsMember({"gpipe", "1f1b"}));
    app->add_flag("--zero", o.zero, "ZeRO stage 1 in an explicit pipeline: optimizer state sharded over the replicas");
    app->add_flag("--recompute", o.recompute, "activation recomputation in an explicit pipeline");
    app->add_option("--simulate-top", o.simulate_top,
                    "simulate the K best candidates on the cluster's own topology (SimGrid) and re-rank them")
        ->check(positive_integer());
    app->add_flag("--wide", o.wide, "text: every column, however wide (default: fit $COLUMNS, else 120 columns)");
    app->add_option("--layers", o.layers, "text: all (every layer) or collapsed (identical numbered blocks once)")
        ->capture_default_str()
        ->check(CLI::IsMember({"all", "collapsed"}));
}

// Prints a scored plan (--format) and, when it is feasible, writes it to --out as JSON; an
// infeasible one exits 1 with its reason on stderr and writes no file.
int emit_scored_plan(const PlanOptions& o, const planner::CostModel& model, const planner::Plan& plan, const std::string& what) {
    std::string json = json_text(planner::plan_to_json(plan, model), 2) + "\n";
    std::cout << (o.format == "json" ? json : reports::scored_plan_text(model, plan, text_options(o)));
    if (!plan.scored.cost.feasible) {
        std::cerr << "dnnplan: " << what << " is infeasible: " << reports::terminal_safe(plan.scored.cost.reason)
                  << (o.out.empty() ? "" : "; " + reports::terminal_safe(o.out) + " was not written") << "\n";
        return 1;
    }
    if (!o.out.empty()) write_file_atomically(o.out, json);
    return 0;
}

int run_plan_file(const PlanOptions& o) {
    Json json = load_json_file(o.plan_file);
    planner::PlanRequest request = planner::parse_plan_request(json, o.plan_file);
    PlanSources sources = load_plan_sources(request, o.plan_file, o.planning.net, "", o.planning.load);
    const networks::Network& network = sources.network;
    const clusters::Cluster& cluster = sources.cluster;
    planner::check_request_fits_cluster(request, cluster, o.plan_file);
    planner::CostModel model(network, cluster, request.options);
    std::vector<planner::Layout> layouts = planner::layouts_for(request, model, o.plan_file);
    planner::Candidate candidate;
    candidate.strategy = request.strategy;
    candidate.label = request.label;
    candidate.pipeline = planner::pipeline_for(request, model, o.plan_file);
    candidate.plan = candidate.pipeline.active() ? planner::score_pipeline(model, candidate.pipeline, layouts).plan
                                                 : model.score(layouts);
    planner::Plan plan = planner::make_plan(model, candidate, {request.network_source, request.cluster_source});
    return emit_scored_plan(o, model, plan, "the plan");
}

// --simulate-top K: the K best feasible candidates replayed on the cluster's own topology, re-ranked
// by simulated iteration, both figures shown (text, after the ranking).
std::string simulated_ranking(const planner::CostModel& model, const planner::SearchResult& result, int k,
                              const PlanningArgs& p) {
    struct Row {
        int analytical_rank;
        std::string label;
        SimulatedPlan sim;
        std::string error;  // why it could not be simulated
    };
    std::vector<Row> rows;
    for (int i = 0; i < result.feasible_count && i < k; ++i) {
        const planner::Candidate& c = result.ranked[i];
        Json doc = planner::plan_to_json(planner::make_plan(model, c, {p.net, p.cluster}), model);
        std::cerr << "simulating candidate " << i + 1 << " of " << std::min(k, result.feasible_count) << ": "
                  << reports::candidate_label(c) << "\n";
        try {
            rows.push_back({i + 1, reports::candidate_label(c), simulate_plan_document(doc, "--simulate-top"), ""});
        } catch (const std::exception& e) {  // one candidate the replay cannot take does not stop the others
            rows.push_back({i + 1, reports::candidate_label(c), {}, e.what()});
        }
    }
    // Simulated ones first, by simulated iteration; those that failed last, in analytical order.
    std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
        if (a.error.empty() != b.error.empty()) return a.error.empty();
        return a.error.empty() && a.sim.simulated_s < b.sim.simulated_s;
    });
    std::string out = "\ncontention-aware ranking (SimGrid replay on " + model.cluster().name +
                      "'s own topology, CM02):\n";
    char line[400];
    std::snprintf(line, sizeof line, "%-4s %-10s %14s %14s %10s  %s\n", "#", "analytical", "predicted", "simulated",
                  "change", "strategy");
    out += line;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const Row& r = rows[i];
        if (!r.error.empty()) {
            out += "-    " + std::to_string(r.analytical_rank) + "  not simulated (" + r.error + "): " + r.label + "\n";
            continue;
        }
        std::snprintf(line, sizeof line, "%-4zu %-10d %14s %14s %+9.1f%%  %s\n", i + 1, r.analytical_rank,
                      human_seconds(r.sim.predicted_s).c_str(), human_seconds(r.sim.simulated_s).c_str(),
                      r.sim.predicted_s > 0 ? 100 * (r.sim.simulated_s / r.sim.predicted_s - 1) : 0.0,
                      r.label.c_str());
        out += line;
    }
    if (!rows.empty() && rows.front().error.empty())
        out += rows.front().analytical_rank == 1
                   ? "the analytical best is also the best simulated\n"
                   : "the best simulated is the analytical #" + std::to_string(rows.front().analytical_rank) + "\n";
    return out;
}

int run_plan(const PlanOptions& o) {
    if (!o.plan_file.empty()) return run_plan_file(o);
    const PlanningArgs& p = o.planning;
    PlanningInputs in = load_planning_inputs(p);
    const networks::Network& network = in.network;
    const clusters::Cluster& cluster = in.cluster;
    const planner::PlannerOptions& options = in.options;
    planner::CostModel model(network, cluster, options);
    if (o.stages > 0 || o.micro_batches > 0 || o.replicas > 0 || o.tensor > 0) {
        planner::PipelineSpec spec;
        spec.tensor = std::max(1, o.tensor);
        spec.stages = std::max(1, o.stages);
        spec.micro_batches = std::max(1, o.micro_batches);
        spec.replicas = o.replicas > 0 ? o.replicas
                                       : static_cast<int>(std::max<std::int64_t>(1, p.procs / (std::int64_t{spec.tensor} * spec.stages)));
        spec.schedule = o.schedule == "gpipe" ? planner::Schedule::gpipe : planner::Schedule::one_f_one_b;
        spec.zero = o.zero;
        spec.recompute = o.recompute;
        planner::PipelineCandidate pc = planner::plan_pipeline(model, spec);
        planner::Candidate candidate;
        candidate.strategy = pc.spec.tensor > 1 ? planner::Strategy::tp_pp_dp : planner::Strategy::pipeline;
        candidate.label = planner::pipeline_label(pc.spec, pc.score);
        candidate.pipeline = pc.spec;
        candidate.plan = std::move(pc.score.plan);
        planner::Plan plan = planner::make_plan(model, candidate, {p.net, p.cluster});
        return emit_scored_plan(o, model, plan, "this pipeline");
    }
    if (o.simulate_top > 0 && o.format != "text")
        throw InputError("dnnplan", "--simulate-top", "--simulate-top prints a text table; use --format text");
    planner::SearchResult result = planner::search(model);
    reports::PlanReportInput input{&model, &result, o.top, text_options(o)};
    const planner::Candidate* best = result.best();
    planner::Plan plan;
    if (best) plan = planner::make_plan(model, *best, {p.net, p.cluster});
    std::string text = o.format == "json"  ? reports::plan_json(input, plan)
                       : o.format == "csv" ? reports::plan_csv(input)
                                           : reports::plan_text(input);
    std::cout << text;
    if (o.simulate_top > 0 && best) std::cout << simulated_ranking(model, result, o.simulate_top, p);
    if (!best) {
        // The reasons of the closest candidates (ranked: infeasible ones by iteration time).
        std::cerr << "dnnplan: no feasible plan among " << result.ranked.size() << " candidates; the closest:\n";
        for (std::size_t i = 0; i < result.ranked.size() && i < 3; ++i)
            std::cerr << "  " << reports::candidate_label(result.ranked[i]) << ": "
                      << reports::terminal_safe(result.ranked[i].plan.cost.reason) << "\n";
        return 1;
    }
    if (!o.out.empty()) write_file_atomically(o.out, json_text(planner::plan_to_json(plan, model), 2) + "\n");
    return 0;
}

}  // namespace

int terminal_width() {
    if (const char* columns = std::getenv("COLUMNS")) {
        char* end = nullptr;
        long v = std::strtol(columns, &end, 10);
        if (end != columns && *end == '\0' && v >= 40 && v <= 10000) return static_cast<int>(v);
    } else if (winsize w{}; isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col >= 40) {
        return w.ws_col;
    }
    return 120;
}

Command add_plan_command(CLI::App& app) {
    auto o = std::make_shared<PlanOptions>();
    auto* cmd = app.add_subcommand("plan", "rank the parallelization strategies (the default command), or re-score --plan FILE");
    add_plan_options(cmd, *o, true);
    return {cmd, [o, cmd] {
                // A saved plan fixes these; silently re-scoring with the plan's own would mislead.
                if (!o->plan_file.empty())
                    for (const char* name : {"--procs", "--cluster", "--batch", "--dtype", "--optimizer", "--no-overlap",
                                             "--roofline", "--compute", "--top", "--stages", "--micro-batches", "--replicas",
                                             "--tensor", "--schedule", "--zero", "--recompute"})
                        if (cmd->count(name) > 0)
                            throw InputError("dnnplan", name,
                                             "does not apply to --plan FILE, which fixes it (plan again with --net to "
                                             "change it; simulate --plan FILE --cluster replays on another cluster)");
                return run_plan(*o);
            }};
}

Command add_default_plan(CLI::App& app) {
    auto o = std::make_shared<PlanOptions>();
    add_plan_options(&app, *o, false);
    return {&app, [o, &app]() -> int {
                if (!o->planning.net.empty() || o->planning.procs > 0) return run_plan(*o);
                std::cout << app.help();
                return 0;
            }};
}

}  // namespace dnnplan::cli
