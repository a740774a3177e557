// The published-measurements suite (issue 15, item 7): every run of published_runs.json is scored
// by dnnplan in exactly its published configuration (T x S x R, micro-batch size, schedule,
// recomputation, ZeRO, Megatron-LM's uniform stage split) and its predicted iteration time is
// compared with the measured one. Prints the error table (the one in planner/README.md,
// "Validation against published runs") and fails when a run's error leaves the stated tolerance.
//
// A regression check, not a fit: no constant anywhere was adjusted to approach these numbers
// (common.md). The tolerances below record what the model achieves today, so that a change making
// a prediction worse fails here; they are to be tightened as issue 15's modelling gaps close.
//
// Usage: validate_published [SOURCE_DIR] [--breakdown]   (default: the compiled-in source directory;
// --breakdown adds a table of each prediction's parts, the slowest stage's as the evaluator gives them)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <set>
#include <string>
#include <vector>

#include "clusters/cluster.hpp"
#include "common/diagnostics.hpp"
#include "networks/network.hpp"
#include "planner/cost_model.hpp"
#include "planner/pipeline.hpp"

namespace {

using namespace dnnplan;

// Per-run tolerance on |predicted / published - 1| of the iteration time, and on the mean over the
// scored runs. Set from the model as it stands at this commit (run this program to see the table),
// with headroom of a few points so that unrelated refactoring does not trip it; the goal
// is 5% per run. Calculon (Isaev et al., SC'23) reports 3.65% mean error on the Korthikanti et al.
// runs (/work/shared/references.md, [checked]).
// Since the per-operation compute model, interleaving, the recomputation modes and sequence
// parallelism (this commit): mean 18.6%, max 34.3% (smith22-mtnlg530b-3360gpus) over 21 runs, every
// run predicted too fast (before them: mean 13.2%, max 25.4%, errors of both signs cancelling).
// After issue 15's gaps (NCCL bus bandwidths and the A100 memory-copy rate from public
// micro-benchmarks, Megatron's scatter/gather, sequence-parallel layernorm compute, the
// attention-dropout kernel): mean 16.2%, max 33.4% (smith22-mtnlg530b-3360gpus), still every run
// too fast. Each run's data-parallel gradient reduction as its software did it (grad_reduce: the
// four pure data-parallel Narayanan et al. runs used PyTorch's DDP, overlapped; the others reduce
// after the flush): mean 16.7%, max 33.4%, the four runs 0.9 to 4.0 points further off (the hidden
// all-reduce removes time). With the optimizer step as the software makes it (optimizer_step:
// 52 B per parameter for Megatron-LM, 80 per shard parameter for DeepSpeed ZeRO-1, instead of 28)
// and the gradient accumulation over the micro-batches (grad_accumulation): mean 13.8%, max 30.6%
// (smith22-mtnlg530b-3360gpus). With the A100's kernel launches (0.9 us per kernel, a public
// micro-benchmark): mean 13.7% (13.66), max 30.3%. The tolerances are regression bounds with about
// three points of headroom, not the 5% goal.
constexpr double kRunTolerance = 0.33;
constexpr double kMeanTolerance = 0.16;

// Runs the library cannot score yet, with the reason: the test fails when one of them starts to
// score (so that it joins the error table) and when any other run fails to.
const std::set<std::string> kKnownUnscorable = {};

// A100 dense fp16/bf16 tensor-core peak (NVIDIA A100 datasheet), the MFU denominator of the
// Megatron-LM README table.
constexpr double kA100PeakFlops = 312e12;

struct GptShape {
    double layers = 0, hidden = 0, vocab = 0, sequence = 0;
};

GptShape shape_of(const networks::Network& net) {
    GptShape g;
    g.sequence = static_cast<double>(net.input().output_shape.at(0));
    for (const auto& layer : net.layers) {
        if (layer.kind == networks::LayerKind::attention) g.layers += 1;
        if (layer.kind == networks::LayerKind::embedding) {
            g.vocab = static_cast<double>(layer.attrs.num_embeddings);
            g.hidden = static_cast<double>(layer.attrs.embedding_dim);
        }
    }
    return g;
}

// FLOPs of one iteration by Narayanan et al. (SC'21) Eq. 3: 96 B s l h^2 (1 + s/6h + V/16lh) with
// full recomputation (four passes over the transformer layers, three over the logits); without
// recomputation 72 B s l h^2 (1 + s/6h + V/12lh) (Korthikanti et al. 2022, Section 6, "model FLOPs").
// These convert the papers' own FLOP/s figures to seconds, with the papers' convention.
double paper_flops(const GptShape& g, double batch, bool with_recompute) {
    double base = batch * g.sequence * g.layers * g.hidden * g.hidden;
    double attention = g.sequence / (6 * g.hidden);
    return with_recompute ? 96 * base * (1 + attention + g.vocab / (16 * g.layers * g.hidden))
                          : 72 * base * (1 + attention + g.vocab / (12 * g.layers * g.hidden));
}

// Megatron-LM's stage split: the same number of transformer blocks per stage, the embeddings on
// the first stage, the final layernorm and the output layer on the last.
std::vector<int> uniform_stages(const networks::Network& net, int stages) {
    std::vector<int> block_first;  // index of each block's first layer (its ln_1)
    for (int i = 1; i < static_cast<int>(net.layers.size()); ++i) {
        const std::string& name = net.layers[i].name;
        if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".ln_1") == 0) block_first.push_back(i);
    }
    int blocks = static_cast<int>(block_first.size());
    if (stages < 1 || blocks % stages != 0)
        throw std::runtime_error(std::to_string(blocks) + " blocks do not split into " + std::to_string(stages) +
                                 " equal stages");
    std::vector<int> first{1};
    for (int s = 1; s < stages; ++s) first.push_back(block_first[s * (blocks / stages)]);
    return first;
}

struct Row {
    std::string id, config, approximations, status;
    double published_s = 0, predicted_s = 0, error = 0;
    bool scored = false, fits = false;
    planner::CostBreakdown cost;  // the predicted iteration's parts (--breakdown)
};

std::string field(const Json& run, const char* key) { return run.at(key).get<std::string>(); }
int integer(const Json& run, const char* key) { return run.at(key).get<int>(); }

// What this run's configuration needs that dnnplan cannot say: nothing since the interleaved
// schedule, the recomputation modes and sequence parallelism exist (issue 15 item 2); kept as a
// column so that a future gap is named in the table.
std::string approximations_of(const Json& run) {
    std::vector<std::string> notes;
    if (field(run, "recompute") != "none" && field(run, "recompute") != "selective" && field(run, "recompute") != "full")
        notes.push_back("recompute " + field(run, "recompute") + " unknown");
    std::string out;
    for (const auto& n : notes) out += (out.empty() ? "" : "; ") + n;
    return out.empty() ? "-" : out;
}

// The run's grad_reduce: "overlapped" (PyTorch DistributedDataParallel: bucket all-reduces during
// the last micro-batch's backward) or "after_flush" (Megatron-LM's local DDP and DeepSpeed's pipeline
// engine: after the whole schedule, before the optimizer step).
bool overlapped_grad_reduce(const Json& run) {
    const std::string when = field(run, "grad_reduce");
    if (when != "overlapped" && when != "after_flush")
        throw std::runtime_error("grad_reduce \"" + when + "\" is neither \"overlapped\" nor \"after_flush\"");
    return when == "overlapped";
}

// The run's optimizer_step: whose mixed-precision optimizer step (planner/compute.hpp).
planner::MixedPrecisionStep mixed_precision_step_of(const Json& run) {
    const std::string step = field(run, "optimizer_step");
    if (step == "megatron_lm") return planner::MixedPrecisionStep::megatron_lm;
    if (step == "deepspeed_zero") return planner::MixedPrecisionStep::deepspeed_zero;
    throw std::runtime_error("optimizer_step \"" + step + "\" is neither \"megatron_lm\" nor \"deepspeed_zero\"");
}

// The run's grad_accumulation: how its software added the micro-batches' weight gradients.
planner::GradAccumulation grad_accumulation_of(const Json& run) {
    const std::string how = field(run, "grad_accumulation");
    if (how == "autograd_in_place") return planner::GradAccumulation::autograd_in_place;
    if (how == "main_grad_hook") return planner::GradAccumulation::main_grad_hook;
    if (how == "in_gemm") return planner::GradAccumulation::in_gemm;
    throw std::runtime_error("grad_accumulation \"" + how + "\" is not autograd_in_place, main_grad_hook or in_gemm");
}

// The run's boundary_send (absent: Megatron-LM's scatter/gather): how its pipeline engine moved
// stage-boundary tensors (planner/software_options.hpp).
planner::PipelineBoundarySend boundary_send_of(const Json& run) {
    if (!run.contains("boundary_send")) return planner::PipelineBoundarySend::scatter_gather;
    const std::string how = field(run, "boundary_send");
    if (how == "scatter_gather") return planner::PipelineBoundarySend::scatter_gather;
    if (how == "whole_tensor") return planner::PipelineBoundarySend::whole_tensor;
    if (how == "deepspeed") return planner::PipelineBoundarySend::deepspeed;
    throw std::runtime_error("boundary_send \"" + how + "\" is not scatter_gather, whole_tensor or deepspeed");
}

// Seconds per iteration the source measured: its time, or its FLOP/s under its convention.
double published_seconds(const Json& run, const GptShape& g) {
    const Json& m = run.at("measured");
    if (m.contains("iteration_s")) return m.at("iteration_s").get<double>();
    double flops = paper_flops(g, integer(run, "global_batch"), field(run, "recompute") == "full");
    return flops / (m.at("tflops_per_gpu").get<double>() * 1e12 * integer(run, "gpus"));
}

// The published figures agree with each other (a check of the data, not of dnnplan): where a
// source gives a time and an MFU, or a time and FLOP/s, the papers' formula links them within 1%.
void check_source_consistency(const Json& run, const GptShape& g, std::vector<std::string>& failures) {
    const Json& m = run.at("measured");
    if (!m.contains("iteration_s")) return;
    double t = m.at("iteration_s").get<double>(), gpus = integer(run, "gpus");
    double batch = integer(run, "global_batch");
    if (m.contains("mfu")) {
        double mfu = paper_flops(g, batch, false) / (t * gpus * kA100PeakFlops);
        if (std::abs(mfu / m.at("mfu").get<double>() - 1) > 0.01)
            failures.push_back(field(run, "id") + ": its time gives MFU " + std::to_string(mfu));
    }
    if (m.contains("tflops_per_gpu")) {
        double tflops = paper_flops(g, batch, field(run, "recompute") == "full") / (t * gpus) / 1e12;
        if (std::abs(tflops / m.at("tflops_per_gpu").get<double>() - 1) > 0.01)
            failures.push_back(field(run, "id") + ": its time gives " + std::to_string(tflops) + " TFLOP/s");
    }
}

Row score_run(const Json& run, const std::string& source_dir, std::vector<std::string>& failures) {
    Row row;
    row.id = field(run, "id");
    int T = integer(run, "tensor"), S = integer(run, "pipeline"), R = integer(run, "data");
    int mbs = integer(run, "micro_batch"), batch = integer(run, "global_batch");
    row.config = std::to_string(T) + "x" + std::to_string(S) + "x" + std::to_string(R) + " mbs " +
                 std::to_string(mbs) + " " + field(run, "recompute") + ", " + field(run, "grad_reduce");
    row.approximations = approximations_of(run);

    networks::Network net =
        networks::load_network_file(source_dir + "/tests/validation/networks/" + field(run, "network") + ".json");
    clusters::Cluster cluster = clusters::load_cluster_file(source_dir + "/clusters/" + field(run, "cluster") + ".json");
    GptShape g = shape_of(net);
    if (g.sequence != integer(run, "sequence"))
        failures.push_back(row.id + ": the network's sequence is not the run's");
    if (std::int64_t{T} * S * R != integer(run, "gpus")) failures.push_back(row.id + ": T x S x R is not gpus");
    check_source_consistency(run, g, failures);
    row.published_s = published_seconds(run, g);

    planner::PlannerOptions options;
    options.procs = integer(run, "gpus");
    options.batch = batch;
    options.dtype = net.dtype;
    options.optimizer = planner::Optimizer::adam;  // Megatron-LM: Adam, mixed precision
    // When the run's software reduced the data-parallel gradients (the run's grad_reduce, with the
    // code cited in its source): PlannerOptions::overlap_sync is exactly that choice for a pipeline
    // (planner/stage_evaluator.cpp stage_syncs: off, each stage's syncs all run after its last
    // backward, every chunk's when interleaved; on, each layer's starts when its last micro-batch's
    // backward is done).
    options.overlap_sync = overlapped_grad_reduce(run);
    options.mixed_precision_step = mixed_precision_step_of(run);
    options.grad_accumulation = grad_accumulation_of(run);
    options.boundary_send = boundary_send_of(run);
    planner::CostModel model(net, cluster, options);

    planner::PipelineSpec spec;
    spec.tensor = T;
    spec.stages = S;
    spec.replicas = R;
    spec.micro_batches = batch / (R * mbs);  // each micro-batch holds exactly `mbs` sequences
    spec.schedule = planner::Schedule::one_f_one_b;
    spec.zero = run.at("distributed_optimizer").get<bool>();
    spec.recompute = field(run, "recompute") == "full"        ? planner::Recompute::full
                     : field(run, "recompute") == "selective" ? planner::Recompute::selective
                                                              : planner::Recompute::none;
    spec.sequence_parallel = run.at("sequence_parallel").get<bool>() && T > 1;
    // Megatron-LM's interleaved schedule: V chunks per device, S x V equal chunks of blocks.
    spec.interleave = std::max(1, integer(run, "interleave"));
    spec.stage_first = uniform_stages(net, S * spec.interleave);
    if (std::string why = planner::pipeline_problem(model, spec); !why.empty())
        throw std::runtime_error("configuration refused: " + why);
    std::vector<planner::Layout> layouts = planner::tensor_layouts(model, T);
    if (layouts.empty()) throw std::runtime_error("no tensor-parallel layouts for T = " + std::to_string(T));
    planner::PipelineScore score = planner::score_pipeline(model, spec, layouts);

    row.predicted_s = score.plan.cost.iteration_s;
    row.cost = score.plan.cost;
    row.fits = score.plan.cost.feasible;
    if (!row.fits && score.plan.cost.infeasibility != planner::Infeasibility::memory)
        throw std::runtime_error("infeasible: " + score.plan.cost.reason);
    row.error = row.predicted_s / row.published_s - 1;
    row.scored = row.predicted_s > 0;
    return row;
}

}  // namespace

// The predicted iteration's parts, seconds: where each run's time goes in the model.
void print_breakdown(const std::vector<Row>& rows) {
    std::printf("\n| run | forward | backward | blocking comm | bubble | exposed sync | optimizer step | dnnplan s |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const Row& r : rows)
        if (r.scored)
            std::printf("| %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |\n", r.id.c_str(), r.cost.fwd_compute_s,
                        r.cost.bwd_compute_s, r.cost.blocking_comm_s(), r.cost.bubble_s, r.cost.sync_exposed_s,
                        r.cost.optimizer_step_s, r.cost.iteration_s);
}

int main(int argc, char** argv) {
    std::string source_dir = DNNPLAN_SOURCE_DIR;
    bool breakdown = false;
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--breakdown")
            breakdown = true;
        else
            source_dir = argv[i];
    }
    std::vector<std::string> failures;
    std::vector<Row> rows;
    try {
        Json doc = load_json_file(source_dir + "/tests/validation/published_runs.json");
        for (const Json& run : doc.at("runs")) {
            Row row;
            try {
                row = score_run(run, source_dir, failures);
            } catch (const std::exception& e) {
                row.id = field(run, "id");
                row.status = std::string("not scored: ") + e.what();
            }
            bool known = kKnownUnscorable.count(row.id) > 0;
            if (!row.scored && !known) failures.push_back(row.id + ": " + row.status);
            if (row.scored && known) failures.push_back(row.id + " now scores: move it out of kKnownUnscorable");
            if (row.scored && std::abs(row.error) > kRunTolerance)
                failures.push_back(row.id + ": error " + std::to_string(100 * row.error) + "% outside the tolerance");
            rows.push_back(row);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "validate_published: %s\n", e.what());
        return 2;
    }

    std::printf("| run | T x P x D, micro-batch, recompute, gradient reduction | published s | dnnplan s | error | fits 80 GB | approximated until the option exists |\n");
    std::printf("|---|---|---:|---:|---:|---|---|\n");
    double sum = 0, worst = 0;
    int scored = 0;
    for (const Row& r : rows) {
        if (!r.scored) {
            std::printf("| %s | %s | | | | | %s |\n", r.id.c_str(), r.config.c_str(), r.status.c_str());
            continue;
        }
        std::printf("| %s | %s | %.2f | %.2f | %+.1f%% | %s | %s |\n", r.id.c_str(), r.config.c_str(), r.published_s,
                    r.predicted_s, 100 * r.error, r.fits ? "yes" : "no", r.approximations.c_str());
        sum += std::abs(r.error);
        worst = std::max(worst, std::abs(r.error));
        ++scored;
    }
    std::printf("\n");
    // Per source (the id up to its first '-'), so that a group compares with other tools' figures
    // on the same runs (Calculon's 3.65% is over the korthikanti22 runs).
    std::vector<std::string> groups;
    for (const Row& r : rows)
        if (std::string g = r.id.substr(0, r.id.find('-')); std::find(groups.begin(), groups.end(), g) == groups.end())
            groups.push_back(g);
    for (const std::string& g : groups) {
        double group_sum = 0, group_worst = 0;
        int n = 0;
        for (const Row& r : rows)
            if (r.scored && r.id.compare(0, g.size() + 1, g + "-") == 0) {
                group_sum += std::abs(r.error);
                group_worst = std::max(group_worst, std::abs(r.error));
                ++n;
            }
        if (n > 0)
            std::printf("%s: %d runs, mean |error| %.1f%%, max %.1f%%\n", g.c_str(), n, 100 * group_sum / n,
                        100 * group_worst);
    }
    double mean = scored > 0 ? sum / scored : 0;
    std::printf("%d runs scored: mean |error| %.1f%%, max %.1f%% (tolerances: %.0f%% per run, %.0f%% mean)\n", scored,
                100 * mean, 100 * worst, 100 * kRunTolerance, 100 * kMeanTolerance);
    if (mean > kMeanTolerance) failures.push_back("mean error " + std::to_string(100 * mean) + "% outside the tolerance");
    if (breakdown) print_breakdown(rows);
    for (const auto& f : failures) std::printf("FAIL %s\n", f.c_str());
    return failures.empty() ? 0 : 1;
}
