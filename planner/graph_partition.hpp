// Dataflow-graph partitioning (the compiler-driven strategy, arXiv 1906.08168): the training
// graph's operations are placed on k devices for minimal cut under a balance constraint (METIS
// k-way), and the placement becomes a plan scored like any other: every operation runs on its
// device when its inputs have arrived (point-to-point transfers on the cut edges, stalls from the
// dependencies), M micro-batches in GPipe order, R replicas with a gradient all-reduce.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "planner/cost_model.hpp"
#include "planner/pipeline.hpp"

namespace dnnplan::planner {

// The training dataflow graph of one micro-batch: vertex 2i is layer i's forward operation,
// 2i + 1 its backward (i >= 1; the input, layer 0, is data, not an operation). Edges: forward
// tensors (producer forward -> consumer forward), their gradients (consumer backward -> producer
// backward), and each layer's saved activations (forward -> its own backward).
struct DataflowGraph {
    struct Edge {
        int from = 0, to = 0;
        double bytes = 0;
    };
    std::vector<double> seconds;  // per vertex; 0 for the unused vertices 0 and 1
    std::vector<Edge> edges;
    int layers = 0;  // network layers incl. the input
};
// Vertex weights from `micro_model`'s single-process score (its batch is the micro-batch).
DataflowGraph training_graph(const CostModel& micro_model);

// A placement of the layers (forward and backward of a layer together: they share the weights
// and the saved activations, so the partitioner sees each pair contracted into one vertex).
struct GraphPartition {
    std::vector<int> part;  // per layer; part[0] (the input) is -1
    int parts = 1;
    double balance = 1;    // heaviest part / (total / parts)
    double cut_bytes = 0;  // bytes of the edges between parts (forward tensors and their gradients)
};

// Minimal cut with every part at most (1 + tolerance) x the average weight: METIS k-way (Debian's
// libmetis), the greedy and the min-max topological splits, METIS's and the min-max one refined by boundary moves; the
// smallest cut within the tolerance wins (the most balanced when none is within it, as when one
// layer alone outweighs a part).
GraphPartition partition_graph(const DataflowGraph& graph, int parts, double tolerance);
// The baseline: walk the topological order, start a new part when the current one reaches
// total / parts.
GraphPartition greedy_topological_split(const DataflowGraph& graph, int parts);
// Balance and cut of any placement, by the same definitions.
GraphPartition measure(const DataflowGraph& graph, std::vector<int> part, int parts);

// Scores spec (device_of set, stages = devices per replica, tensor = 1) by list-scheduling the
// dataflow graph's operations for M micro-batches, the transfers and syncs sharing each device's
// links equally (events in time order).
PipelineScore score_graph_partition(const CostModel& model, const PipelineSpec& spec,
                                    const std::vector<Layout>& layouts);

struct GraphPartitionCandidate {
    PipelineSpec spec;
    PipelineScore score;
    GraphPartition partition, greedy;  // METIS's and the greedy split's, on the same graph
};
// k = 2, 4, 8 (at most the layers) dividing P, M a power of two up to 2k, best M per k.
std::vector<GraphPartitionCandidate> search_graph_partitions(const CostModel& model);
std::string graph_partition_label(const GraphPartitionCandidate& candidate);

// What a replay of a graph partition (simulator/) needs, from the same functions
// score_graph_partition() uses: per layer the seconds of its forward and backward operation on
// one micro-batch, every producer -> consumer tensor between two devices (its bytes per
// micro-batch, the link the model charges and the seconds; the gradient travels back with the
// same bytes on the same link), and per layer its weight-gradient sync over the R replicas (the
// clusters::cheapest calls; ZeRO-1: reduce-scatter, then all-gather; none for R = 1). Rank
// dev + k r is device dev of replica r. Throws std::invalid_argument when the spec cannot be
// scored as a graph partition.
struct GraphPartitionProgram {
    std::int64_t micro_batch = 1;               // B / (R M)
    std::vector<double> forward_s, backward_s;  // per layer (index 0, the input, unused)
    struct Transfer {
        int producer = 0, consumer = 0;  // layers, on different devices
        double bytes = 0;                // per micro-batch
        clusters::LinkCost link;
        double seconds = 0;  // clusters::point_to_point_seconds(bytes, link)
        // The receiving device's own time for the message: its copy into the reading operation's
        // input, in step before that operation (receive_copy_seconds). 0 on GPUs and presets.
        double receive_copy_s = 0;
    };
    std::vector<Transfer> transfers;          // by consumer, then its inputs in order
    std::vector<std::vector<CommCall>> sync;  // per layer, in the order run
    std::vector<double> device_optimizer_step_s;  // per device: its layers' update (ZeRO-1: its shard)
};
GraphPartitionProgram graph_partition_program(const CostModel& model, const PipelineSpec& spec,
                                              const std::vector<Layout>& layouts);

// The receiving process's copy of a cut tensor of `bytes` on a calibrated CPU (device.cpu_kernels
// given): Open MPI's shared-memory transport moves a message above its eager limit only inside
// the receiver's MPI calls (the receiver pulls it, one copy into the receive buffer), whether the
// receive was posted early or not, so the receiving CPU spends the copy in step with its work
// (validators/README.md, "Graph-partition plans"): bytes at the device's copy rate. 0 elsewhere:
// NCCL receives on a stream of its own, beside the compute.
double receive_copy_seconds(const clusters::Device& device, double bytes);

}  // namespace dnnplan::planner
