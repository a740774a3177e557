// dnnplan-validate: the MPI worker behind `dnnplan validate` and `dnnplan calibrate` (which launch
// it under mpirun). Every rank parses the same arguments and loads the same inputs, so an input
// error is found by all ranks alike; rank 0 reports and writes the outputs.
#include <cblas.h>
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "common/diagnostics.hpp"
#include "validators/calibrate.hpp"
#include "validators/faults.hpp"
#include "validators/graph_runner.hpp"
#include "validators/pipeline_runner.hpp"
#include "validators/validate.hpp"

using namespace dnnplan;
using namespace dnnplan::validators;

namespace {
std::string data_dir() {
    if (const char* env = std::getenv("DNNPLAN_DATA_DIR"); env && *env) return env;
    return DNNPLAN_SOURCE_DIR;
}
std::vector<std::string> split_commas(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream in(s);
    std::string item;
    while (std::getline(in, item, ','))
        if (!item.empty()) out.push_back(item);
    return out;
}
}  // namespace

namespace {
// Every rank must run the same plans (an MPMD launch could hand ranks different files): compare a
// digest of each rank's jobs (network, batch, every layer's layout) with rank 0's, and name the
// ranks that differ before any of them starts communicating.
void check_same_jobs_everywhere(const std::vector<dnnplan::validators::PlanJob>& jobs, int /*me*/, int np) {
    std::uint64_t digest = 1469598103934665603ULL;
    auto mix = [&](const std::string& text) {
        for (unsigned char c : text) digest = (digest ^ c) * 1099511628211ULL;
        digest = (digest ^ 0xff) * 1099511628211ULL;
    };
    for (const auto& job : jobs) {
        mix(job.network->name);
        mix(std::to_string(job.model->options().batch));
        for (const auto& layout : job.scored.anchor_layouts) mix(dnnplan::planner::to_string(layout));
    }
    std::vector<unsigned long long> all(static_cast<std::size_t>(np));
    unsigned long long mine = digest;
    MPI_Allgather(&mine, 1, MPI_UNSIGNED_LONG_LONG, all.data(), 1, MPI_UNSIGNED_LONG_LONG, MPI_COMM_WORLD);
    std::string differing;
    for (int r = 1; r < np; ++r)
        if (all[static_cast<std::size_t>(r)] != all[0])
            differing += (differing.empty() ? "" : ", ") + std::to_string(r);
    if (!differing.empty())
        throw dnnplan::InputError("validate", "",
                                  "rank " + differing +
                                      " was given different plans than rank 0 (every rank must run the "
                                      "same plan files)");
}
}  // namespace

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    // One BLAS thread per rank: the ranks are the parallelism (and share the cores).
    openblas_set_num_threads(1);
    const int me = comm_rank(MPI_COMM_WORLD), np = comm_size(MPI_COMM_WORLD);

    CLI::App app{"dnnplan-validate: MPI worker of `dnnplan validate` and `dnnplan calibrate`"};
    app.require_subcommand(1);
    std::vector<std::string> plans;
    std::string net, cluster, strategies = "all", format = "text", out, trace, status_dir, inject;
    std::int64_t batch = 0, calib_batch = 8;
    std::string image_text;
    RunOptions run;
    bool no_check = false, quick = false;
    double timeout = 120;
    std::string name = "this-machine", report, calib_nets = "lenet5,smallcnn";
    CLI::App* validate = app.add_subcommand("validate", "run plans for real and compare with the cost model");
    validate->add_option("--plan", plans, "plan file (repeat for several)");
    validate->add_option("--net", net,
                         "instead of plan files: every feasible candidate of the search for this network");
    validate->add_option("--batch", batch, "global batch size with --net (default: the network's)");
    validate->add_option("--image", image_text, "input image size N or HxW: the network re-inferred at that size");
    validate->add_option("--strategies", strategies, "with --net: comma-separated strategy names or all");
    validate->add_option("--cluster", cluster,
                         "cluster for the predictions (default: the plan's; with --net: required)");
    validate->add_option("--warmup", run.warmup, "warm-up iterations")->capture_default_str();
    validate->add_option("--iterations", run.iterations, "measured iterations")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    validate->add_option("--sgd-steps", run.sgd_steps, "SGD steps of the loss-sequence check")->capture_default_str();
    validate->add_flag("--no-check", no_check, "skip the comparison with the sequential network");
    validate->add_option("--format", format, "text or json")->check(CLI::IsMember({"text", "json"}));
    validate->add_option("--out", out, "also write the JSON results to this file");
    validate->add_option("--trace", trace, "write the last iteration's timeline (Chrome trace format)");
    for (CLI::App* sub : {validate}) {
        sub->add_option("--timeout", timeout, "seconds a step may take before the run is ended")->capture_default_str();
        sub->add_option("--status-dir", status_dir, "directory for each rank's current step (fault reports)");
        sub->add_option("--inject-fault", inject, "kill:RANK:STEP or hang:RANK:STEP (tests)");
    }
    CLI::App* calibrate_cmd = app.add_subcommand("calibrate", "measure this machine and write a cluster spec");
    calibrate_cmd->add_option("--out", out, "cluster spec to write")->required();
    calibrate_cmd->add_option("--name", name, "the cluster's name")->capture_default_str();
    calibrate_cmd->add_option("--report", report, "also write every measurement as JSON");
    calibrate_cmd->add_flag("--quick", quick, "fewer sizes and repetitions");
    calibrate_cmd->add_option("--networks", calib_nets, "networks whose training step measures the achievable FLOP/s")
        ->capture_default_str();
    calibrate_cmd
        ->add_option("--batch", calib_batch,
                     "global batch of the runs to predict: the training step is timed at batch / ranks")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    calibrate_cmd->add_option("--format", format, "text or json")->check(CLI::IsMember({"text", "json"}));

    int status = 0;
    // Once every rank has the same checked jobs, an error is one rank's (a layer it cannot run with
    // its block, a failed allocation): the others would wait for it in their next message until the
    // watchdog's timeout, so it ends the job at once, naming the rank.
    bool running = false;
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (me == 0) app.exit(e);
        MPI_Finalize();
        return e.get_exit_code() == 0 ? 0 : 2;
    }

    try {
        if (calibrate_cmd->parsed()) {
            CalibrationOptions copts;
            copts.quick = quick;
            copts.batch = std::max<std::int64_t>(1, calib_batch / np);
            std::vector<networks::Network> nets;
            for (const std::string& n : split_commas(calib_nets))
                nets.push_back(
                    networks::load_network_file(networks::resolve_network_path(n, data_dir() + "/networks")));
            for (const auto& n : nets) copts.networks.push_back(&n);
            Calibration c = calibrate(MPI_COMM_WORLD, copts);
            if (me == 0) {
                write_file_atomically(out, json_text(cluster_spec(c, name), 2) + "\n");
                if (!report.empty()) write_file_atomically(report, json_text(calibration_report(c), 2) + "\n");
                std::cout << (format == "json" ? json_text(calibration_report(c), 2) + "\n" : calibration_text(c));
                std::cout << (format == "json" ? "" : "wrote " + out + "\n");
            }
        } else {
            std::vector<PlanJob> jobs;
            if (!net.empty()) {
                if (cluster.empty())
                    throw InputError("--cluster", "", "--net needs --cluster (the cluster the predictions use)");
                jobs = search_jobs(net, np, batch, cluster, split_commas(strategies), data_dir(),
                                   parse_image_size(image_text));
                if (jobs.empty())
                    throw InputError(net, "", "no feasible candidate plan for " + std::to_string(np) + " processes");
            } else {
                if (plans.empty()) throw InputError("validate", "", "give --plan FILE (one or more) or --net NAME");
                for (const std::string& f : plans)
                    jobs.push_back(load_plan_job(f, cluster, data_dir(), parse_image_size(image_text)));
            }
            for (const PlanJob& job : jobs) check_runnable(job, np);
            check_same_jobs_everywhere(jobs, me, np);
            running = true;
            StepMonitor monitor(me, timeout, status_dir, inject);
            run.check = !no_check;
            run.trace = !trace.empty();
            run.on_step = [&monitor](const std::string& s, bool comm) { monitor.enter(s, comm); };
            std::vector<RunResult> results;
            std::vector<PipelineRunResult> pipelines(jobs.size());  // pipeline plans' details and ledgers
            std::vector<GraphRunResult> graphs(jobs.size());  // graph-partition plans' details and ledgers
            for (std::size_t k = 0; k < jobs.size(); ++k) {
                const PlanJob& job = jobs[k];
                if (me == 0) std::cerr << "running " << job.label << " ...\n";
                run.overlap_sync = job.model->options().overlap_sync;
                if (!job.pipeline.device_of.empty()) {
                    graphs[k] = run_graph(*job.model, job.pipeline, job.scored.anchor_layouts, run, MPI_COMM_WORLD);
                    results.push_back(graphs[k].run);
                } else if (job.pipeline.active()) {
                    pipelines[k] = run_pipeline(*job.model, job.pipeline, job.scored.anchor_layouts, run, MPI_COMM_WORLD);
                    results.push_back(pipelines[k].run);
                } else {
                    results.push_back(run_plan(*job.network, job.scored, job.model->options().batch, run, MPI_COMM_WORLD));
                }
            }
            monitor.enter("report", true);
            monitor.finish();
            if (me == 0) {
                Json json = results_json(jobs, results, run, np);
                attach_pipeline_results(json, pipelines);
                attach_graph_results(json, graphs);
                std::cout << (format == "json" ? json_text(json, 2) + "\n"
                                               : results_text(json) + pipeline_text(json) + graph_text(json));
                if (!out.empty()) write_file_atomically(out, json_text(json, 2) + "\n");
                if (!trace.empty()) write_file_atomically(trace, json_text(trace_json(jobs, results)) + "\n");
                status = json["checks_passed"].get<bool>() ? 0 : 1;
            }
            MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
        }
    } catch (const InputError& e) {
        if (me == 0) std::cerr << e.what() << "\n";
        status = 2;
    } catch (const std::exception& e) {
        if (running && np > 1) {
            std::cerr << ("dnnplan-validate: rank " + std::to_string(me) + ": " + e.what() + "\n") << std::flush;
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
        if (me == 0) std::cerr << "dnnplan-validate: " << e.what() << "\n";
        status = 2;
    }
    MPI_Finalize();
    return status;
}
