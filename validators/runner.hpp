// The plan runner: executes a network under a plan's per-layer layouts on the ranks of an MPI
// communicator (DistConv2d / DistLinear / DistPool on each layer's grid, repartitions between
// layers whose distributions differ, softmax cross-entropy on the gathered logits, gradient
// all-reduce overlapped with the backward pass as the cost model assumes), checks it against a
// sequential run of the same weights in double precision, and times every operation in fp32.
#pragma once

#include <mpi.h>

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "networks/network.hpp"
#include "planner/cost_model.hpp"
#include "validators/dag_layers.hpp"
#include "validators/transformer_layers.hpp"
#include "validators/layers.hpp"
#include "validators/ledger.hpp"

namespace dnnplan::validators {

// Deterministic values by global index, so every partition of a tensor starts from the same numbers.
double hashed_uniform(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d);  // in [-1, 1)
// The training data: input element (b, c, h, w) of global sample b, and sample b's label.
double input_value(Index b, Index c, Index h, Index w);
int label_of(Index b, Index classes);

// Why `network` cannot be run by the validator ("" when it can): DAGs of conv2d, transposed conv2d
// (kernel == stride), linear, batch norm, relu, max/avg pooling (padded), global average pooling,
// nearest upsampling, residual add, channel concat, flatten and dropout; transformers of token
// and position embeddings, layernorm, attention, gelu and per-token linear layers. A linear layer
// tied to an embedding (`tied_to`, without a bias) only when `tied_weights`: its caller runs the tie
// (the pipeline runner, validators/pipeline_runner.hpp); a NetworkRunner holds the two layers'
// weights apart.
std::string unsupported_reason(const networks::Network& network, bool tied_weights = false);

// A pipeline stage's share of the network (validators/pipeline_runner.hpp): the runner builds
// layers 1..last (those before `first` only for their maps: the boundary tensor's blocks) and runs
// layers first..last on a micro-batch whose first sample is `sample_offset` (the data loader's
// inputs and labels), scaling the loss by `loss_scale` (the micro-batch's share of the batch).
struct Segment {
    int first = 1, last = 0;  // last 0: the whole network
    Index sample_offset = 0;
    double loss_scale = 1;
};

template <class T>
class NetworkRunner {
public:
    // `layer_layouts[i]`: the layout layer i executes under (a follower: its anchor's), as
    // CostModel::score reports it in ScoredPlan::layers[i].layout.
    NetworkRunner(const networks::Network& network, const std::vector<planner::Layout>& layer_layouts, Index batch,
                  MPI_Comm comm, bool overlap_sync, const Segment& segment = {});
    ~NetworkRunner();

    // Segment runs (a pipeline stage): the forward of layers first..last from `boundary` (this rank's
    // block of the one tensor read from before `first`; ignored when first is 1), returning this
    // rank's block of layer last's output; at the network's last layer also the loss (loss()).
    Tensor<T> forward_segment(Tensor<T> boundary, OpTimer& timer);
    // The backward from `dy` (this rank's block of layer last's output gradient; ignored at the
    // network's last layer: the loss gives it), returning the boundary tensor's gradient block
    // (empty when first is 1). Gradients accumulate over calls until zero_grad().
    Tensor<T> backward_segment(Tensor<T> dy, OpTimer& timer);
    Box boundary_box() const;  // this rank's block of the boundary tensor
    Box output_box() const;    // this rank's block of layer last's output
    double loss() const { return loss_; }
    void set_sample_offset(Index offset);  // the micro-batch this runner works on next
    void zero_grad();
    // Called in backward_segment after each layer's backward (its weight gradient complete for
    // this call): the pipeline runner starts the replicas' gradient sync there.
    std::function<void(int layer, OpTimer&)> after_backward;

    // Forward, loss, backward and gradient synchronisation; returns the mean loss.
    double step(OpTimer& timer);
    void sgd(T learning_rate, OpTimer& timer);

    // The final layer's output block on this rank (after step()).
    const Tensor<T>& output() const { return output_; }
    // (layer index, shard) of every layer with weights.
    std::vector<std::pair<int, const Shard<T>*>> shards() const;
    MPI_Comm comm() const { return comm_; }

    // One operation at a time, for runners on one process whose caller drives the order (the
    // graph-partition runner): layer `layer`'s forward on `xs` (per input; the network's input is
    // this runner's own loaded block, its entry unused), its backward (the gradient per input, empty
    // for the network's input), the mean loss over this runner's batch of `logits` with its
    // gradient, and the layer's weights (nullptr when it has none).
    Tensor<T> forward_one(int layer, const std::vector<const Tensor<T>*>& xs, OpTimer& timer);
    std::vector<Tensor<T>> backward_one(int layer, Tensor<T>&& dy, OpTimer& timer);
    Tensor<T> loss_one(const Tensor<T>& logits, double& loss);
    Shard<T>* shard_of(int layer);
    Box output_box(int layer) const;  // the block of layer `layer`'s output this rank holds

private:
    struct Stage;
    void build_layer(Stage& st, const networks::Layer& l, const Grid& grid, Index batch,
                     const std::vector<std::array<Index, 3>>& views, const TensorMap& first_in_out);
    void build_anchor(Stage& st, const networks::Layer& l, const Grid& grid, Index batch,
                      const std::array<Index, 3>& in_view);
    void check_against_plan(const Stage& st, const planner::Layout& lay, std::vector<planner::Dist>& planned_out);
    void connect_inputs(Stage& st);
    Tensor<T> forward_layer(Stage& st, std::vector<const Tensor<T>*>& xs, OpTimer& timer);
    std::vector<Tensor<T>> backward_layer(Stage& st, Tensor<T>&& dy, OpTimer& timer);
    void start_sync(Stage& st, OpTimer& timer);
    void progress_syncs(OpTimer& timer);  // one MPI_Test of every outstanding gradient all-reduce
    Tensor<T> loss_gradient(double& loss);
    void load_input(Stage& st, std::size_t k);
    void finish_sync(OpTimer& timer);
    Tensor<T> sharded_loss_gradient(double& loss);
    const networks::Network& network_;
    MPI_Comm comm_;
    bool overlap_sync_;
    std::map<planner::Layout, std::unique_ptr<Grid>> grids_;
    std::vector<std::unique_ptr<Stage>> stages_;
    std::vector<Stage*> stage_of_;  // by layer index (layer 0, the input, has none)
    Tensor<T> output_;
    std::vector<int> labels_;
    std::array<Index, kDims> logits_shape_{};
    bool sequence_logits_ = false;
    MPI_Comm vocab_group_ = MPI_COMM_NULL, batch_group_ = MPI_COMM_NULL;  // the loss on vocabulary shards
    Index classes_ = 0;
    Repartition gather_logits_, scatter_logits_;
    Segment segment_;
    int boundary_ = 0;  // the layer whose output the segment reads from before `first` (0: none)
    std::vector<Tensor<T>> acts_;
    double loss_ = 0;
};

struct RunOptions {
    int warmup = 2;
    int iterations = 10;
    int sgd_steps = 3;
    double learning_rate = 0.05;
    bool trace = false;
    bool overlap_sync = true;  // gradient all-reduce overlapped with the backward pass (the plan's option)
    std::function<void(const std::string&, bool)> on_step;  // see OpTimer
    bool check = true;  // run the double-precision comparison with the sequential network
};

struct RunResult {
    // Correctness in double: max relative error over the output, every weight/bias gradient, and
    // the loss sequence of `sgd_steps` SGD steps.
    double output_error = 0, gradient_error = 0, loss_error = 0;
    std::vector<double> losses, reference_losses;
    bool checked = false;
    // Timing in fp32: per iteration the slowest rank, then the median over iterations.
    double iteration_s = 0;
    std::array<double, static_cast<int>(Op::count)> op_s{};
    // The fastest iteration and each operation's fastest time: what the machine does when other
    // processes leave it alone (the calibration's statistic too).
    double iteration_best_s = 0;
    std::array<double, static_cast<int>(Op::count)> op_best_s{};
    // Per blocking operation, the slowest rank's wait for its group's last arriver (OpTimer::waited,
    // settle_waits): not in op_s, still in the iteration.
    std::array<double, static_cast<int>(Op::count)> op_wait_s{};
    std::vector<double> iteration_samples;
    // The speed reference's seconds (validators/speed_reference.hpp) timed after every timed
    // iteration, mean over the ranks, median over the iterations: the compute speed the run had.
    double reference_kernel_s = 0;
    // The byte ledger of the last timed iteration against the plan's CommCalls (rank 0 only; see
    // layer_ledger): {"agrees", "entries", "mismatches"}.
    Json ledger;
    std::vector<std::vector<TraceEvent>> trace;  // per rank (rank 0 only), last measured iteration
    double trace_origin = 0;
};

// Sets each pipeline or graph-partition run's details under results["plans"][k][key] and its
// ledger verdict under the plan's check.ledger_agrees; a byte ledger that differs from the plan in
// any run clears the one top-level "ledgers_agree" (which results_json() set from the
// layer-parallel plans) and "checks_passed". `Run` has `details` (null: not such a plan) and
// `ledger_agrees`.
template <class Run>
void attach_run_details(Json& results, const std::string& key, const std::vector<Run>& runs) {
    bool agree = true;
    for (std::size_t k = 0; k < runs.size() && k < results["plans"].size(); ++k) {
        if (runs[k].details.is_null()) continue;
        results["plans"][k][key] = runs[k].details;
        results["plans"][k]["check"]["ledger_agrees"] = runs[k].ledger_agrees;
        agree = agree && runs[k].ledger_agrees;
    }
    results["ledgers_agree"] = results.value("ledgers_agree", true) && agree;
    if (!agree) results["checks_passed"] = false;
}

// Runs the layouts of `scored` (as CostModel::score returned them) on `comm`.
RunResult run_plan(const networks::Network& network, const planner::ScoredPlan& scored, Index batch,
                   const RunOptions& options, MPI_Comm comm);

}  // namespace dnnplan::validators
