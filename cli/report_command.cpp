// `dnnplan report`: the strategy report of one planning run as a self-contained HTML page,
// Markdown, CSV or JSON, with a scaling study and, when given, simulated and measured results.
#include <filesystem>
#include <iostream>

#include "cli/commands.hpp"
#include "common/diagnostics.hpp"
#include "common/units.hpp"
#include "planner/plan.hpp"
#include "planner/search.hpp"
#include "reports/strategy_report.hpp"
#include "reports/candidate_text.hpp"
#include "reports/text.hpp"

namespace dnnplan::cli {
namespace {

struct ReportOptions {
    PlanningArgs planning;
    std::string format;  // "": from --out's extension, else Markdown
    std::string out;
    std::string simulated, measured;
    std::string plan_file;  // --plan: report this saved plan instead of the search's ranking
    int top = 15;
    bool no_scaling = false;
};

std::string format_for(const ReportOptions& o) {
    if (!o.format.empty()) return o.format == "markdown" ? "md" : o.format;
    auto ends = [&](const std::string& suffix) {
        return o.out.size() >= suffix.size() && o.out.compare(o.out.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends(".html") || ends(".htm")) return "html";
    if (ends(".csv")) return "csv";
    if (ends(".json")) return "json";
    return "md";
}

// --plan FILE: the network, cluster and options the saved plan names (the report's --net,
// --procs and model options do not apply and are refused in add_report_command).
PlanningInputs saved_plan_inputs(const ReportOptions& o) {
    planner::PlanRequest request = planner::parse_plan_request(load_json_file(o.plan_file), o.plan_file);
    PlanSources sources = load_plan_sources(request, o.plan_file, "", "", o.planning.load);
    planner::check_request_fits_cluster(request, sources.cluster, o.plan_file);
    PlanningInputs in;
    in.net_path = sources.net_path;
    in.cluster_path = sources.cluster_path;
    in.network = std::move(sources.network);
    in.cluster = std::move(sources.cluster);
    in.options = request.options;
    return in;
}

// The saved plan re-scored (as `plan --plan` does) as the one candidate of the report's ranking.
planner::SearchResult saved_plan_result(const std::string& plan_file, const planner::CostModel& model) {
    planner::PlanRequest request = planner::parse_plan_request(load_json_file(plan_file), plan_file);
    planner::Candidate candidate = planner::rescored_candidate(request, model, plan_file);
    planner::SearchResult result;
    (candidate.plan.cost.feasible ? result.feasible_count : result.infeasible_count) = 1;
    result.ranked.push_back(std::move(candidate));
    return result;
}

int run_report(const ReportOptions& o) {
    std::string format = format_for(o);
    // Result files are read first: a bad one fails before minutes of planning.
    std::optional<reports::SimulatedResult> simulated;
    std::optional<reports::MeasuredResult> measured;
    if (!o.simulated.empty()) simulated = reports::parse_simulated_result(load_json_file(o.simulated), o.simulated);
    if (!o.measured.empty()) measured = reports::parse_measured_result(load_json_file(o.measured), o.measured);

    PlanningInputs in = o.plan_file.empty() ? load_planning_inputs(o.planning) : saved_plan_inputs(o);
    const std::string fingerprint = planner::network_fingerprint(in.network);
    if (simulated)
        reports::check_result_identity(*simulated, o.simulated, in.network.name, fingerprint, in.options.procs,
                                       in.options.batch, in.cluster.name);
    if (measured)
        reports::check_result_identity(*measured, o.measured, in.network.name, fingerprint, in.options.procs,
                                       in.options.batch, in.cluster.name);
    planner::CostModel model(in.network, in.cluster, in.options);
    planner::SearchResult result = o.plan_file.empty() ? planner::search(model) : saved_plan_result(o.plan_file, model);

    reports::ReportInput input;
    input.model = &model;
    input.result = &result;
    input.network_source = o.plan_file.empty() ? o.planning.net : in.net_path;
    input.cluster_source = o.plan_file.empty() ? o.planning.cluster : in.cluster_path;
    input.simulated = simulated;
    input.measured = measured;
    input.chart_top = o.top;
    if (!o.no_scaling && o.plan_file.empty()) {  // a saved plan is fixed to its P
        for (std::int64_t p : reports::scaling_procs(in.options.procs)) {
            if (p == in.options.procs) {
                input.scaling.push_back({p, result});
                continue;
            }
            planner::PlannerOptions options = in.options;
            options.procs = p;
            planner::CostModel scaled(in.network, in.cluster, options);
            input.scaling.push_back({p, planner::search(scaled)});
        }
    }
    reports::StrategyReport report = reports::build_strategy_report(input);
    // Markdown written to a file embeds its charts as SVG files beside it ("report-time.svg", ...).
    std::vector<std::pair<std::string, std::string>> chart_files;
    std::vector<std::pair<std::string, std::string>> chart_writes;  // (path, svg)
    if (format == "md" && !o.out.empty() && result.best()) {
        namespace fs = std::filesystem;
        const fs::path out(o.out);
        for (const auto& chart : reports::report_charts(report)) {
            std::string file = out.stem().string() + "-" + chart.name + ".svg";
            chart_files.push_back({chart.title, file});
            chart_writes.push_back({(out.parent_path() / file).string(), chart.svg});
        }
    }
    std::string text = format == "html"   ? reports::report_html(report)
                       : format == "csv"  ? reports::report_csv(report)
                       : format == "json" ? reports::report_json(report)
                                          : reports::report_markdown(report, chart_files);
    if (!result.best()) {
        // Exit 1 writes no --out file (the report of nothing feasible still goes to stdout).
        if (o.out.empty()) std::cout << text;
        std::cerr << "dnnplan: no feasible plan among " << result.ranked.size() << " candidates"
                  << (o.out.empty() ? "" : "; " + reports::terminal_safe(o.out) + " was not written") << "; the closest:\n";
        for (std::size_t i = 0; i < result.ranked.size() && i < 3; ++i)
            std::cerr << "  " << reports::candidate_label(result.ranked[i]) << ": " << reports::terminal_safe(result.ranked[i].plan.cost.reason)
                      << "\n";
        return 1;
    }
    for (const auto& [path, svg] : chart_writes) {
        write_file_atomically(path, svg);
        confirm_written(path, "chart");
    }
    const std::string kind = format == "html" ? "HTML" : format == "md" ? "Markdown" : format == "csv" ? "CSV" : "JSON";
    emit(text, o.out, kind + ", best: " + reports::candidate_label(*result.best()) + ", " +
                          human_seconds(result.best()->plan.cost.iteration_s) + " per iteration");
    return 0;
}

}  // namespace

Command add_report_command(CLI::App& app) {
    auto o = std::make_shared<ReportOptions>();
    auto* cmd = app.add_subcommand("report", "strategy report: HTML (charts), Markdown, CSV or JSON");
    auto& p = o->planning;
    auto* net = cmd->add_option("--net", p.net, "network spec file or built-in name");
    auto* procs = cmd->add_option("--procs,-p", p.procs, "number of processes P")->check(positive_integer());
    cmd->add_option("--plan", o->plan_file, "report this saved plan (from `dnnplan --out`) instead of a new search")
        ->excludes(net)
        ->excludes(procs);
    cmd->add_option("--cluster", p.cluster, "cluster file or preset name")->capture_default_str();
    add_model_options(cmd, p);
    cmd->add_option("--out", o->out, "write to this file (.html, .md, .csv or .json; default: stdout)")->check(output_file());
    cmd->add_option("--format", o->format, "html, md, csv or json (default: from --out's extension, else md)")
        ->check(CLI::IsMember({"html", "md", "markdown", "csv", "json"}));
    cmd->add_option("--simulated", o->simulated,
                    "JSON of `dnnplan simulate --format json` to show beside the prediction");
    cmd->add_option("--measured", o->measured,
                    "JSON of `dnnplan validate --format json` to show beside the prediction");
    cmd->add_option("--top", o->top, "strategies drawn in the charts")
        ->capture_default_str()
        ->check(integer_within(1, 1000));
    cmd->add_flag("--no-scaling", o->no_scaling, "skip the scaling study (P = 1, 2, 4, ... up to --procs)");
    return {cmd, [o, cmd] {
                if (o->plan_file.empty() && (o->planning.net.empty() || o->planning.procs < 1))
                    throw InputError("dnnplan report", "", "give --net NAME and --procs P, or --plan FILE");
                if (!o->plan_file.empty())
                    for (const char* name : {"--cluster", "--batch", "--dtype", "--optimizer", "--no-overlap", "--roofline",
                                             "--grad-accumulation", "--mixed-precision-step", "--boundary-send"})
                        if (cmd->count(name) > 0)
                            throw InputError("dnnplan report", name,
                                             "does not apply to --plan FILE, which fixes it (report --net ... to change it)");
                return run_report(*o);
            }};
}

}  // namespace dnnplan::cli
