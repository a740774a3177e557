// The sequential network both plan runners (pipeline, graph partition) check against: one process,
// every layer, no messages, on the plan's samples. Shared so that the two runners' references
// cannot drift apart.
#pragma once

#include <memory>
#include <vector>

#include "planner/pipeline.hpp"
#include "validators/runner.hpp"

namespace dnnplan::validators {

// The whole batch at once, or, when the network has batch norm and the plan cuts the batch
// (R x M > 1), each of the R x M micro-batches on its own (batch norm's statistics are per
// micro-batch, as GPipe computes them: Huang et al., NeurIPS 2019), the gradients summed with
// weights micro-batch / batch. Without batch norm both are the same function; the whole batch then
// also checks the runners' loss scaling. Micro-batch c is samples [c B / (R M), (c + 1) B / (R M)):
// replica r's micro-batch m is c = r M + m, as the runners number their samples.
struct SequentialReference {
    std::vector<std::unique_ptr<NetworkRunner<double>>> chunks;
    double share = 1;

    SequentialReference(const networks::Network& net, const planner::PipelineSpec& spec, Index batch);
    double step(OpTimer& t);  // the batch's mean loss
    // Layer `layer`'s flattened [weight, bias] gradient of the whole batch.
    std::vector<double> gradient(int layer);
    // The geometry of layer `layer`'s whole (unsplit) weight: rows, cols, bias as the runners hold it.
    const Shard<double>& shard(int layer) { return *chunks[0]->shard_of(layer); }
    // One SGD step with the whole batch's gradients of `weighted` layers on every chunk.
    void sgd(double learning_rate, OpTimer& t, const std::vector<int>& weighted);
    std::vector<int> weighted_layers() const;
};

}  // namespace dnnplan::validators
