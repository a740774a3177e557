// `dnnplan sweep`: plan every network x cluster x P and write one row per configuration. Under
// mpirun the configurations are split over the ranks (sweep/sweep.hpp) and rank 0 writes the
// same file the serial sweep writes.
#include <algorithm>
#include <iostream>

#include "cli/commands.hpp"
#include "common/diagnostics.hpp"
#include "planner/search.hpp"
#include "reports/candidate_text.hpp"
#include "reports/sweep_table.hpp"
#include "sweep/sweep.hpp"

namespace dnnplan::cli {
namespace {

struct SweepOptions {
    PlanningArgs planning;  // net, cluster and procs hold the lists
    std::string procs = "";
    std::string format;  // "": from --out's extension, else csv
    std::string out;
    sweep::RunOptions run;  // --timeout, --inject-fault
    int simulate_top = 0;   // replay each configuration's K best candidates (SimGrid)
};

struct Config {
    std::size_t net = 0, cluster = 0;
    std::int64_t procs = 1;
};

int run_sweep_in(const SweepOptions& o, const sweep::Session& session) {
    if (!o.run.inject_fault.empty() && !session.distributed())
        throw InputError("dnnplan", "--inject-fault", "applies only to a sweep under mpirun; this one is serial");
    std::vector<std::string> nets = sweep::split_list(o.planning.net, "--net");
    std::vector<std::string> cluster_names = sweep::split_list(o.planning.cluster, "--cluster");
    std::vector<std::int64_t> procs = sweep::parse_procs(o.procs);
    std::string format = o.format;
    auto ends = [&](const std::string& suffix) {
        return o.out.size() >= suffix.size() && o.out.compare(o.out.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (format.empty()) format = ends(".json") ? "json" : ends(".html") || ends(".htm") ? "html" : ends(".txt") ? "text" : "csv";
    if (o.simulate_top > 0 && format != "json")
        throw InputError("dnnplan", "--simulate-top",
                         "adds each configuration's replays to its JSON row (\"simulated\"); use --format json or a "
                         ".json --out");

    // Every rank loads every input, so a bad file fails identically everywhere before any work.
    std::vector<std::string> net_paths, cluster_paths;
    std::vector<networks::Network> networks;
    std::vector<clusters::Cluster> clusters;
    for (const auto& n : nets) {
        net_paths.push_back(networks::resolve_network_path(n, networks_dir()));
        networks.push_back(networks::load_network_file(net_paths.back()));
    }
    for (const auto& c : cluster_names) {
        cluster_paths.push_back(clusters::resolve_cluster_path(c, clusters_dir()));
        clusters.push_back(clusters::load_cluster_file(cluster_paths.back()));
    }
    std::vector<Config> configs;
    // What every rank must agree on (an MPMD launch could give ranks different lists): the inputs
    // and the options that shape each result.
    sweep::RunOptions run_options = o.run;
    run_options.fingerprint = o.planning.net + "|" + o.planning.cluster + "|" + o.procs + "|" +
                              std::to_string(o.planning.batch) + "|" + o.planning.dtype + "|" + o.planning.optimizer +
                              "|" + std::to_string(o.planning.no_overlap) + std::to_string(o.planning.roofline) + o.planning.compute + "|" +
                              o.planning.grad_accumulation + "|" + o.planning.mixed_precision_step + "|" +
                              o.planning.boundary_send + "|" +
                              format + "|" + std::to_string(o.simulate_top);
    for (std::size_t n = 0; n < nets.size(); ++n)
        for (std::size_t c = 0; c < clusters.size(); ++c)
            for (std::int64_t p : procs) configs.push_back({n, c, p});

    auto evaluate = [&](std::size_t i) -> std::string {
        const Config& config = configs[i];
        const auto& network = networks[config.net];
        const auto& cluster = clusters[config.cluster];
        PlanningArgs args = o.planning;
        args.procs = config.procs;
        planner::PlannerOptions options;
        try {
            options = planner_options(args, network, cluster, net_paths[config.net], cluster_paths[config.cluster]);
        } catch (const InputError& e) {  // this combination cannot be planned; the sweep goes on
            return json_text(reports::invalid_sweep_row(network.name, cluster.name, config.procs, e.message()));
        }
        planner::CostModel model(network, cluster, options);
        planner::SearchResult result = planner::search(model);
        Json row = reports::sweep_row(network.name, cluster.name, config.procs, options, result);
        if (o.simulate_top > 0) {
            // This configuration's K best replayed on the cluster's topology, by this rank (so under
            // mpirun the replays are shared out with the configurations), best simulated first.
            args.net = nets[config.net];
            args.cluster = cluster_names[config.cluster];
            Json simulated = Json::array();
            for (int k = 0; k < result.feasible_count && k < o.simulate_top; ++k) {
                Json replay = simulate_candidate(model, result.ranked[static_cast<std::size_t>(k)], args);
                replay["analytical_rank"] = k + 1;
                replay["strategy"] = reports::candidate_label(result.ranked[static_cast<std::size_t>(k)]);
                simulated.push_back(replay);
            }
            std::stable_sort(simulated.begin(), simulated.end(), [](const Json& a, const Json& b) {
                if (a.contains("error") != b.contains("error")) return !a.contains("error");
                return !a.contains("error") && a.at("simulated_s").get<double>() < b.at("simulated_s").get<double>();
            });
            row["simulated"] = simulated;
        }
        return json_text(row);
    };

    sweep::ProgressBar bar(session.rank() == 0 && sweep::stderr_is_terminal());
    std::vector<std::string> results =
        sweep::run(session, configs.size(), evaluate, [&](std::size_t done, std::size_t total) { bar(done, total); },
                   run_options);
    bar.finish();
    if (session.rank() != 0) return 0;
    std::vector<Json> rows;
    for (const auto& r : results) rows.push_back(Json::parse(r));
    // Nothing could be planned: as for any run with no result, exit 1 with the reasons on stderr and
    // no --out file (a table of nothing but "invalid" rows would read as a successful sweep).
    if (!rows.empty() && std::all_of(rows.begin(), rows.end(), [](const Json& row) {
            return row.contains("status") && row.at("status") == "invalid";
        })) {
        std::cerr << "dnnplan: sweep: every configuration is invalid" << (o.out.empty() ? "" : "; " + o.out + " was not written")
                  << ":\n";
        for (std::size_t i = 0; i < rows.size() && i < 5; ++i)
            std::cerr << "  " << one_line(rows[i].at("network").get<std::string>() + " on " +
                                          rows[i].at("cluster").get<std::string>() + ", P = " +
                                          rows[i].at("procs").dump() + ": " + rows[i].at("reason").get<std::string>())
                      << "\n";
        if (rows.size() > 5) std::cerr << "  ... and " << rows.size() - 5 << " more\n";
        return 1;
    }
    emit(format == "json"   ? reports::sweep_json(rows)
         : format == "html" ? reports::sweep_html(rows)
         : format == "text" ? reports::sweep_text(rows, o.out.empty() ? terminal_width() : 0)
                            : reports::sweep_csv(rows),
         o.out, reports::sweep_summary(rows));
    if (o.out.empty() && format != "text") std::cerr << reports::sweep_summary(rows) << "\n";
    return 0;
}

int run_sweep(const SweepOptions& o) {
    sweep::Session session(o.run);  // MPI_Init only under mpirun, within --timeout
    try {
        return run_sweep_in(o, session);
    } catch (const InputError& e) {
        if (session.rank() == 0) std::cerr << e.what() << "\n";  // once, not once per rank
        return 2;
    }
}

}  // namespace

Command add_sweep_command(CLI::App& app) {
    auto o = std::make_shared<SweepOptions>();
    auto* cmd = app.add_subcommand(
        "sweep", "plan every combination of networks, clusters and process counts (serial, or split under mpirun)");
    auto& p = o->planning;
    cmd->add_option("--net", p.net, "networks, comma-separated (built-in names or files)")->required();
    cmd->add_option("--procs,-p", o->procs, "process counts: 8:4096 (doubling), 8,64,512, or a mix")->required();
    cmd->add_option("--cluster", p.cluster, "clusters, comma-separated (presets or files)")->capture_default_str();
    add_model_options(cmd, p, true);
    cmd->add_option("--out", o->out, "write to this file (default: stdout)")->check(output_file());
    cmd->add_option("--format", o->format,
                    "csv, json, text (a table to read) or html (scaling plots and the table); default: from --out's "
                    "extension (.json, .html, .txt), else csv")
        ->check(CLI::IsMember({"csv", "json", "text", "html"}));
    cmd->add_option("--timeout", o->run.timeout_s,
                    "under mpirun: seconds the start-up (MPI_Init, the inputs' check) may take, and rank 0 waits "
                    "for the other ranks' results, before naming the missing ones and aborting")
        ->capture_default_str()
        ->check(number_within(0.001, 604800, "s"));
    cmd->add_option("--simulate-top", o->simulate_top,
                    "replay each configuration's K best candidates on its cluster's topology (SimGrid), added to the "
                    "JSON rows as \"simulated\", best simulated first; under mpirun shared out with the configurations")
        ->check(integer_within(1, 100));
    cmd->add_option("--inject-fault", o->run.inject_fault, "testing: kill:RANK, hang:RANK or freeze:RANK (stopped before MPI_Init) under mpirun")
        ->check([](const std::string& v) {
            return v.rfind("kill:", 0) == 0 || v.rfind("hang:", 0) == 0 || v.rfind("freeze:", 0) == 0
                       ? std::string()
                       : std::string("expected kill:RANK, hang:RANK or freeze:RANK");
        });
    return {cmd, [o] { return run_sweep(*o); }};
}

}  // namespace dnnplan::cli
