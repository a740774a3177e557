// `dnnplan plan` (also the default command): rank the strategies for a network on a cluster, or
// re-score a saved plan file.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>

#include "cli/commands.hpp"
#include "clusters/cluster.hpp"
#include "common/diagnostics.hpp"
#include "common/units.hpp"
#include "networks/network.hpp"
#include "planner/plan.hpp"
#include "planner/search.hpp"
#include "reports/candidate_text.hpp"
#include "reports/plan_report.hpp"
#include "reports/predicted_timeline.hpp"
#include "reports/text.hpp"
#include "sweep/sweep.hpp"

namespace dnnplan::cli {
namespace {

struct PlanOptions {
    PlanningArgs planning;  // --net, --procs, --cluster and the model options shared with report and sweep
    int top = 10;
    std::string format = "text";
    std::string out;
    std::string plan_file;
    int tensor = 0, stages = 0, micro_batches = 0, replicas = 0;  // an explicit pipeline (planner/pipeline.hpp)
    int interleave = 0;  // model chunks per device (interleaved 1F1B), 0: not given
    std::string schedule = "1f1b";
    bool zero = false, sequence_parallel = false;
    std::string recompute = "none";
    bool recompute_given = false;  // --recompute on the command line (narrows the search)
    std::int64_t micro_batch_size = 0;  // samples per micro-batch (M = B / (R m))
    int simulate_top = 0;  // simulate the K best candidates on the cluster's topology and re-rank them
    sweep::RunOptions simulate_run;  // under mpirun: --timeout of the shared replays
    bool wide = false;               // every column, no width limit
    std::string layers = "collapsed";  // or "all": every layer, repeated blocks too
    bool cluster_given = false;
    std::string trace;  // --trace: the plan's predicted iteration in the Chrome trace format        // --cluster on the command line (with --plan: re-score there)
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
    add_input_shape_option(app, p.load);
    app->add_option("--procs,-p", p.procs, "number of processes P")->check(positive_integer());
    app->add_option("--cluster", p.cluster, "cluster file or preset name (see `dnnplan clusters`)")->capture_default_str();
    app->add_option("--processes-per-node", p.processes_per_node,
                    "processes sharing each node of a cluster that describes its cores (K divides them; P / K nodes); "
                    "default: searched over 1, the powers of two dividing the cores and the core count")
        ->check(positive_integer());
    add_model_options(app, p);
    app->add_option("--top", o.top, "how many ranked strategies to show")->capture_default_str()->check(positive_integer());
    app->add_option("--format", o.format, "text, json or csv")->capture_default_str()->check(CLI::IsMember({"text", "json", "csv"}));
    app->add_option("--out", o.out, "write the best plan as JSON to this file")->check(output_file());
    if (with_plan_file) app->add_option("--plan", o.plan_file, "re-score a saved (or hand-edited) plan file");
    app->add_option("--stages", o.stages, "score this many pipeline stages (with --micro-batches, --replicas, --tensor)")->check(positive_integer());
    app->add_option("--micro-batches", o.micro_batches, "micro-batches per replica of an explicit pipeline (default 1)")->check(positive_integer());
    app->add_option("--replicas", o.replicas, "data-parallel replicas of an explicit pipeline (default P / (T x S))")->check(positive_integer());
    app->add_option("--tensor", o.tensor, "processes per stage (tensor parallelism) of an explicit pipeline (default 1)")->check(positive_integer());
    app->add_option("--interleave", o.interleave, "model chunks per device of an explicit pipeline: interleaved 1F1B (default 1; micro-batches a multiple of the stages)")->check(positive_integer());
    app->add_option("--schedule", o.schedule, "gpipe or 1f1b")->capture_default_str()->check(CLI::IsMember({"gpipe", "1f1b"}));
    app->add_flag("--zero", o.zero, "ZeRO stage 1 in an explicit pipeline: optimizer state sharded over the replicas");
    app->add_option("--micro-batch-size", o.micro_batch_size,
                    "samples per micro-batch: of an explicit pipeline (sets --micro-batches to B / (R x m)), else "
                    "the search keeps only pipelines of that micro-batch size")
        ->check(positive_integer());
    app->add_option("--recompute", o.recompute,
                    "activation recomputation: none, selective (attention core) or full (one checkpoint per "
                    "transformer layer); of an explicit pipeline, else the search keeps only pipelines with it")
        ->capture_default_str()
        ->check(CLI::IsMember({"none", "selective", "full"}));
    app->add_flag("--sequence-parallel", o.sequence_parallel,
                  "sequence parallelism in the tensor groups (layernorm and dropout split by T): of an explicit "
                  "pipeline, else the search keeps only pipelines with it");
    app->add_option("--simulate-top", o.simulate_top,
                    "simulate the K best candidates on the cluster's own topology (SimGrid) and re-rank them; under "
                    "mpirun -np N the K replays are shared out over the ranks")
        ->check(positive_integer());
    app->add_option("--trace", o.trace,
                    "write the (best) plan's predicted iteration as a Chrome trace (Perfetto, chrome://tracing)")
        ->check(output_file());
    app->add_flag("--wide", o.wide, "text: every column, however wide (default: fit $COLUMNS, else 120 columns)");
    app->add_option("--layers", o.layers, "text: all (every layer) or collapsed (identical numbered blocks once)")
        ->capture_default_str()
        ->check(CLI::IsMember({"all", "collapsed"}));
}

// --trace FILE: the predicted timeline of `candidate` (reports/predicted_timeline.hpp).
void write_predicted_trace(const PlanOptions& o, const planner::CostModel& model, const planner::Candidate& candidate) {
    if (o.trace.empty()) return;
    reports::PredictedTimeline timeline = reports::predicted_timeline(model, candidate);
    if (timeline.events.empty())
        throw InputError("dnnplan", "--trace", "no timeline for this plan: " + timeline.note);
    write_file_atomically(o.trace, json_text(reports::predicted_trace(timeline, reports::candidate_label(candidate))) + "\n");
    confirm_written(o.trace, "predicted timeline, " + std::to_string(timeline.events.size()) + " events, " +
                                 human_seconds(timeline.end_s));
}

// "best: per-layer, 18.6 ms" for the stderr line confirming --out.
std::string written_summary(const planner::Plan& plan) {
    return "plan: " + reports::candidate_label(plan.strategy, plan.label) + ", " + human_seconds(plan.scored.cost.iteration_s) +
           " per iteration";
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
    if (!o.out.empty()) {
        write_file_atomically(o.out, json);
        confirm_written(o.out, written_summary(plan));
    }
    return 0;
}

int run_plan_file(const PlanOptions& o) {
    Json json = load_json_file(o.plan_file);
    planner::PlanRequest request = planner::parse_plan_request(json, o.plan_file);
    // --cluster re-scores the plan's layouts on another cluster, as `simulate --cluster` replays it there.
    const std::string& other_cluster = o.cluster_given ? o.planning.cluster : std::string();
    PlanSources sources = load_plan_sources(request, o.plan_file, o.planning.net, other_cluster, o.planning.load);
    const networks::Network& network = sources.network;
    const clusters::Cluster& cluster = sources.cluster;
    if (!other_cluster.empty()) {
        if (!cluster.supports(request.options.dtype))
            throw InputError(sources.cluster_path, "/device/peak_flops",
                             "no peak rate for the plan's " + to_string(request.options.dtype));
        request.cluster_source = other_cluster;
        request.cluster_name = cluster.name;
        std::cerr << "re-scoring " << reports::terminal_safe(o.plan_file) << " on cluster " << cluster.name
                  << " (--cluster)\n";
    }
    planner::check_request_fits_cluster(request, cluster, o.plan_file);
    planner::CostModel model(network, cluster, request.options);
    planner::Candidate candidate = planner::rescored_candidate(request, model, o.plan_file);
    planner::Plan plan = planner::make_plan(model, candidate, {request.network_source, request.cluster_source});
    int status = emit_scored_plan(o, model, plan, "the plan");
    if (status == 0) write_predicted_trace(o, model, candidate);
    return status;
}

}  // namespace

Json simulate_candidate(const planner::CostModel& model, const planner::Candidate& candidate, const PlanningArgs& p) {
    Json doc = planner::plan_to_json(planner::make_plan(model, candidate, {p.net, p.cluster}), model);
    try {
        SimulatedPlan sim = simulate_plan_document(doc, "--simulate-top");
        return {{"predicted_s", sim.predicted_s}, {"simulated_s", sim.simulated_s}, {"wall_s", sim.wall_s}};
    } catch (const std::exception& e) {  // one candidate the replay cannot take does not stop the others
        return {{"error", e.what()}};
    }
}

namespace {

// --simulate-top K: the K best feasible candidates replayed on the cluster's own topology, re-ranked
// by simulated iteration, both figures shown (text, after the ranking).
// Under mpirun the K replays are spread over the ranks by the sweep runner (the same launch, start-up
// watchdog and fault handling as `sweep`); rank 0 gets every result in candidate order, so the
// table is the serial one. Other ranks return "".
std::string simulated_ranking(const planner::CostModel& model, const planner::SearchResult& result, int k,
                              const PlanningArgs& p, const sweep::Session& session,
                              const sweep::RunOptions& run_options) {
    struct Row {
        int analytical_rank;
        std::string label;
        SimulatedPlan sim;
        std::string error;  // why it could not be simulated
    };
    const int count = std::min(k, result.feasible_count);
    auto replay = [&](std::size_t i) -> std::string {
        const planner::Candidate& c = result.ranked[i];
        // One write per line: under mpirun the ranks share stderr, and a line written in pieces
        // interleaves with another rank's.
        const std::string line = (session.distributed() ? "rank " + std::to_string(session.rank()) + ": " : std::string()) +
                                 "simulating candidate " + std::to_string(i + 1) + " of " + std::to_string(count) +
                                 ": " + reports::candidate_label(c) + "\n";
        std::cerr << line << std::flush;
        return json_text(simulate_candidate(model, c, p));
    };
    sweep::RunOptions options = run_options;
    options.fingerprint = p.net + "|" + p.cluster + "|" + std::to_string(p.procs) + "|" + std::to_string(k) + "|" +
                          std::to_string(count);
    const std::vector<std::string> outcomes = sweep::run(session, static_cast<std::size_t>(count), replay, {}, options);
    if (session.rank() != 0) return "";
    std::vector<Row> rows;
    for (int i = 0; i < count; ++i) {
        const Json outcome = Json::parse(outcomes[static_cast<std::size_t>(i)]);
        Row row{i + 1, reports::candidate_label(result.ranked[i]), {}, ""};
        if (outcome.contains("error"))
            row.error = outcome.at("error").get<std::string>();
        else
            row.sim = {outcome.at("predicted_s").get<double>(), outcome.at("simulated_s").get<double>(),
                       outcome.at("wall_s").get<double>()};
        rows.push_back(row);
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

planner::Recompute parse_recompute(const std::string& name) {
    return name == "full"        ? planner::Recompute::full
           : name == "selective" ? planner::Recompute::selective
                                 : planner::Recompute::none;
}

// Options that only shape an explicit pipeline, or only the search, are refused where they would
// do nothing (issue 18, item 3: never silently ignored).
void check_applicable(const PlanOptions& o, const CLI::App& cmd) {
    bool explicit_pipeline = o.stages > 0 || o.micro_batches > 0 || o.replicas > 0 || o.tensor > 0;
    if (!explicit_pipeline)
        for (const char* name : {"--schedule", "--zero"})
            if (cmd.count(name) > 0)
                throw InputError("dnnplan", name,
                                 "applies to an explicit pipeline only; add --stages S (and --micro-batches, "
                                 "--tensor, --replicas) or leave it out to search every family");
    if (explicit_pipeline)
        for (const char* name : {"--top", "--simulate-top"})
            if (cmd.count(name) > 0)
                throw InputError("dnnplan", name,
                                 "ranks the search's candidates; an explicit pipeline (--stages, --micro-batches, "
                                 "--tensor, --replicas) is one plan");
    if (o.format != "text")
        for (const char* name : {"--wide", "--layers"})
            if (cmd.count(name) > 0)
                std::cerr << "dnnplan: warning: " << name << " shapes the text output only; --format " << o.format
                          << " carries every column and layer\n";
}

// The processes-per-node search, one line per k tried (text output; nothing when only k = 1 was).
std::string placement_text(const std::vector<planner::PlacementTrial>& trials) {
    if (trials.size() < 2) return "";
    std::string out = "\nprocesses per node k (P / k nodes), best plan:\n";
    for (const auto& t : trials) {
        std::string what = t.best_iteration_s > 0 ? human_seconds(t.best_iteration_s) : "none feasible";
        if (t.outcome != planner::PlacementOutcome::searched)
            what = "not searched: " + planner::to_string(t.outcome) +
                   (t.outcome == planner::PlacementOutcome::bounded_out ? " " + human_seconds(t.lower_bound_s) : "");
        char line[160];
        std::snprintf(line, sizeof line, "  k=%-4d %s\n", t.processes_per_node, what.c_str());
        out += line;
    }
    return out;
}

int run_plan(const PlanOptions& o) {
    if (!o.plan_file.empty()) return run_plan_file(o);
    // --simulate-top under mpirun: every rank plans (the search is deterministic), the replays are
    // shared out, rank 0 alone prints and writes.
    if (o.simulate_top > 0 && (o.stages > 0 || o.micro_batches > 0 || o.replicas > 0 || o.tensor > 0))
        throw InputError("dnnplan", "--simulate-top",
                         "re-ranks the search's candidates; an explicit pipeline (--stages, --tensor, --replicas) has "
                         "one: use `dnnplan simulate --plan FILE` on it");
    std::optional<sweep::Session> session;
    if (o.simulate_top > 0) session.emplace(o.simulate_run);
    if (session && session->rank() != 0) std::cout.setstate(std::ios::failbit);
    const bool explicit_pipeline = o.stages > 0 || o.micro_batches > 0 || o.replicas > 0 || o.tensor > 0 ||
                                   o.interleave > 0;
    PlanningArgs p = o.planning;
    p.search_processes_per_node = p.processes_per_node == 0 && !explicit_pipeline;
    PlanningInputs in = load_planning_inputs(p);
    const networks::Network& network = in.network;
    const clusters::Cluster& cluster = in.cluster;
    const planner::PlannerOptions& options = in.options;
    planner::CostModel model(network, cluster, options);
    // Micro-batches belong to an explicit pipeline; alone they would silently start one.
    if (o.micro_batches > 0 && o.stages == 0)
        throw InputError("dnnplan", "--micro-batches",
                         "applies to an explicit pipeline: give --stages S too (--stages 1 for micro-batches without "
                         "pipelining)");
    // --recompute, --sequence-parallel and --micro-batch-size alone narrow the search instead.
    if (explicit_pipeline) {
        planner::PipelineSpec spec;
        spec.tensor = std::max(1, o.tensor);
        spec.stages = std::max(1, o.stages);
        spec.micro_batches = std::max(1, o.micro_batches);
        spec.replicas = o.replicas > 0 ? o.replicas
                                       : static_cast<int>(std::max<std::int64_t>(1, p.procs / (std::int64_t{spec.tensor} * spec.stages)));
        spec.schedule = o.schedule == "gpipe" ? planner::Schedule::gpipe : planner::Schedule::one_f_one_b;
        spec.zero = o.zero;
        spec.recompute = parse_recompute(o.recompute);
        spec.sequence_parallel = o.sequence_parallel;
        if (o.micro_batch_size > 0) {
            const std::int64_t per_replica = options.batch / spec.replicas;
            if (o.micro_batches > 0 || per_replica % o.micro_batch_size != 0 || options.batch % spec.replicas != 0)
                throw InputError("dnnplan", "--micro-batch-size",
                                 std::to_string(o.micro_batch_size) + " samples per micro-batch" +
                                     (o.micro_batches > 0 ? " and --micro-batches both given; give one"
                                                          : " do not divide the per-replica batch " +
                                                                std::to_string(per_replica)));
            spec.micro_batches = static_cast<int>(std::min<std::int64_t>(per_replica / o.micro_batch_size,
                                                                         planner::kMaxMicroBatches + 1));
        }
        spec.interleave = std::max(1, o.interleave);
        planner::PipelineCandidate pc = planner::plan_pipeline(model, spec);
        planner::Candidate candidate;
        candidate.strategy = pc.spec.tensor > 1 ? planner::Strategy::tp_pp_dp : planner::Strategy::pipeline;
        candidate.label = planner::pipeline_label(pc.spec, pc.score);
        candidate.pipeline = pc.spec;
        candidate.plan = std::move(pc.score.plan);
        candidate.processes_per_node = options.processes_per_node;
        planner::Plan plan = planner::make_plan(model, candidate, {p.net, p.cluster});
        int status = emit_scored_plan(o, model, plan, "this pipeline");
        if (status == 0) write_predicted_trace(o, model, candidate);
        return status;
    }
    if (o.simulate_top > 0 && o.format != "text")
        throw InputError("dnnplan", "--simulate-top", "--simulate-top prints a text table; use --format text");
    planner::SearchOptions search_options;
    if (o.recompute_given) search_options.narrowing.recompute = parse_recompute(o.recompute);
    if (o.sequence_parallel) search_options.narrowing.sequence_parallel = true;
    search_options.narrowing.micro_batch_size = o.micro_batch_size;
    planner::PlacementSearch placed;
    if (p.search_processes_per_node) {
        placed = planner::search_processes_per_node(network, cluster, options, search_options);
    } else {
        placed.model = std::make_unique<planner::CostModel>(network, cluster, options);
        placed.result = planner::search(*placed.model, search_options);
    }
    const planner::CostModel& chosen = *placed.model;  // the model of the k the search kept
    const planner::SearchResult& result = placed.result;
    reports::PlanReportInput input{&chosen, &result, o.top, text_options(o)};
    const planner::Candidate* best = result.best();
    planner::Plan plan;
    if (best) plan = planner::make_plan(chosen, *best, {p.net, p.cluster});
    std::string text = o.format == "json"  ? reports::plan_json(input, plan)
                       : o.format == "csv" ? reports::plan_csv(input)
                                           : reports::plan_text(input);
    std::cout << text;
    if (o.format == "text") std::cout << placement_text(placed.trials);
    if (o.simulate_top > 0 && best) std::cout << simulated_ranking(chosen, result, o.simulate_top, p, *session, o.simulate_run);
    if (!best) {
        // The reasons of the closest candidates (ranked: infeasible ones by iteration time).
        std::cerr << "dnnplan: no feasible plan among " << result.ranked.size() << " candidates; the closest:\n";
        for (std::size_t i = 0; i < result.ranked.size() && i < 3; ++i)
            std::cerr << "  " << reports::candidate_label(result.ranked[i]) << ": "
                      << reports::terminal_safe(result.ranked[i].plan.cost.reason) << "\n";
        return 1;
    }
    if (!o.out.empty() && (!session || session->rank() == 0)) {
        write_file_atomically(o.out, json_text(planner::plan_to_json(plan, chosen), 2) + "\n");
        confirm_written(o.out, "best " + written_summary(plan));
    }
    if (!session || session->rank() == 0) write_predicted_trace(o, chosen, *best);
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
                o->cluster_given = cmd->count("--cluster") > 0;
                check_applicable(*o, *cmd);
                o->recompute_given = cmd->count("--recompute") > 0;
                if (!o->plan_file.empty())
                    for (const char* name : {"--procs", "--processes-per-node", "--batch", "--dtype", "--optimizer", "--no-overlap",
                                             "--roofline", "--compute", "--top", "--stages", "--micro-batches", "--replicas",
                                             "--tensor", "--schedule", "--zero", "--recompute", "--micro-batch-size",
                                             "--sequence-parallel", "--interleave", "--grad-accumulation",
                                             "--mixed-precision-step", "--boundary-send"})
                        if (cmd->count(name) > 0)
                            throw InputError("dnnplan", name,
                                             "does not apply to --plan FILE, which fixes it (plan again with --net to "
                                             "change it; --cluster re-scores the plan on another cluster)");
                return run_plan(*o);
            }};
}

Command add_default_plan(CLI::App& app) {
    auto o = std::make_shared<PlanOptions>();
    add_plan_options(&app, *o, false);
    return {&app, [o, &app]() -> int {
                check_applicable(*o, app);
                o->recompute_given = app.count("--recompute") > 0;
                if (!o->planning.net.empty() || o->planning.procs > 0) return run_plan(*o);
                std::cout << app.help();
                return 0;
            }};
}

}  // namespace dnnplan::cli
