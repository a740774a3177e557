// The cluster model (devices, links, network topology), its JSON spec loader in which every
// number may carry its source, and the lookup of the built-in presets in clusters/*.json.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/diagnostics.hpp"
#include "common/units.hpp"

namespace dnnplan::clusters {

// One direction of a link as one device sees it: bandwidth in bytes per second and the
// small-message (alpha) latency in seconds.
struct Link {
    double bandwidth_Bps = 0;
    double latency_s = 0;
    // The share of bandwidth_Bps (the line rate) that NCCL-style collectives and transfers reach
    // (nccl-tests' bus bandwidth over the line rate); 1 when the preset gives none.
    double efficiency = 1;
    // The share of its full speed at which a non-blocking collective on this link (the overlapped
    // gradient all-reduce) progresses while the process computes: 1 with a progress engine of its
    // own (NCCL on its own stream, the presets); Open MPI without a progress thread advances it only
    // inside MPI calls, so `dnnplan calibrate` measures it (validators/README.md, Calibration).
    double nonblocking_progress = 1;
    // When > 0, replaces nonblocking_progress: the MPI_Test calls, separated by compute, after
    // which a non-blocking all-reduce on this link is complete (Open MPI's libnbc advances its
    // schedule inside MPI calls only, about one step per call: per call, not per unit of time).
    // The validator's runner tests once after each layer's backward (planner::SyncProgress);
    // measured by `dnnplan calibrate`. 0 (every preset): the time-fraction model above.
    double nonblocking_test_calls = 0;
    // One contiguous message between two ranks (a pipeline boundary's send/recv, a graph
    // partition's cut tensor) when measured apart from the collectives: `dnnplan calibrate` fits
    // them to its ping-pong, while bandwidth_Bps and latency_s are fitted to the validator's
    // collective and halo primitives (their packing and two-way traffic included). 0 (every
    // preset): the link's own latency_s and effective bandwidth.
    double message_bandwidth_Bps = 0;
    double message_latency_s = 0;
    // With nonblocking_test_calls: the share of what a call advances that the calling process
    // spends inside it (the copies and the reduction run on its CPU); measured by `dnnplan
    // calibrate`. 0: the calls take no time (every preset).
    double nonblocking_call_share = 0;
    double effective_bandwidth_Bps() const { return bandwidth_Bps * efficiency; }
    bool operator==(const Link&) const = default;
};

enum class TopologyKind { crossbar, fat_tree, torus, dragonfly };

std::string to_string(TopologyKind kind);
// "crossbar", "fat_tree", "torus", "dragonfly": the spellings of the JSON "topology" field.
const std::vector<std::string>& topology_names();

// How the nodes are wired. Only the fields of `kind` are meaningful; the others stay zero/empty.
struct Topology {
    TopologyKind kind = TopologyKind::crossbar;
    // fat_tree: a regular tree of `fat_tree_levels` switch levels with `fat_tree_arity` down-links
    // per switch (it holds arity^levels nodes). `oversubscription` is the ratio of down-link to
    // up-link bandwidth at the leaf switches; higher levels are non-blocking, as in every preset.
    int fat_tree_levels = 0;
    int fat_tree_arity = 0;
    double oversubscription = 1.0;
    // torus: the extent of each dimension; their product equals the node count.
    std::vector<int> torus_dims;
    // dragonfly: groups of all-to-all connected routers, nodes on each router, one global link
    // (bandwidth per direction, latency of that link) between groups.
    int dragonfly_groups = 0;
    int dragonfly_routers_per_group = 0;
    int dragonfly_nodes_per_router = 0;
    Link dragonfly_global{};
    bool operator==(const Topology&) const = default;
};

// How the device's GEMM library tiles a product (NVIDIA, "Matrix Multiplication Background User's
// Guide", sections 2.3 and 3: the output is cut into tile_m x tile_n tiles, one per thread block,
// and the blocks run in waves of `units` at a time). All zero when the spec does not describe it:
// GEMMs then run at peak x achievable_fraction with no quantisation (planner/compute.hpp).
struct GemmTiling {
    int tile_m = 0, tile_n = 0;  // output tile of the library's most efficient kernel
    int units = 0;               // tiles in flight at once: streaming multiprocessors, or cores
    double efficiency = 0;       // share of peak a large, evenly tiled GEMM reaches (a GEMM benchmark)
    bool described() const { return tile_m > 0 && tile_n > 0 && units > 0 && efficiency > 0; }
    bool operator==(const GemmTiling&) const = default;
};

// The validator's CPU kernels (validators/kernels.cpp, runner.cpp, transformer_layers.cpp), each
// direction of each layer kind as the validator runs it, costed on a calibrated CPU by `dnnplan
// calibrate` as seconds per unit of work and per call (planner/compute.hpp defines each unit).
enum class CpuKernel {
    relu_forward, relu_backward, gelu_forward, gelu_backward, layernorm_forward, layernorm_backward,
    batchnorm_forward, batchnorm_backward, add_forward, concat_forward, concat_backward,
    pool_forward, pool_backward, global_pool_forward, global_pool_backward, upsample_forward,
    upsample_backward, embedding_forward, embedding_backward, position_embedding_forward,
    position_embedding_backward, attention_forward, attention_backward, loss,
    lowering_forward, lowering_backward,  // GEMM layers' copies: padding, im2col, col2im, bias
    gemm_call,                            // one BLAS call: per_call_s only
    // A halo message's copies through the validator's primitives (primitives.hpp: the sender packs
    // the strided ghost cells, the receiver unpacks them; a repartition's pieces likewise): per byte
    // and per contiguous run copied, on top of the link's transfer (planner::halo_pack_seconds).
    // Fitted with the link, not with the layers.
    halo_pack,
    // The framework's work around a layer's kernels that no kernel timer sees (the validator's
    // per-layer dispatch, tensor allocations and moves, activation copies): per byte of the pass's
    // activation (the output forward, the input gradient backward) and per kernel the pass
    // launches (planner/compute.cpp, with_dispatch_overhead). `dnnplan calibrate` fits it to the
    // sequential training step's untimed time at two batch sizes; absent, nothing is charged.
    framework,
};
std::string to_string(CpuKernel kernel);
const std::vector<std::string>& cpu_kernel_names();  // the JSON keys of device.cpu_kernels

struct KernelCost {
    double per_unit_s = 0, per_call_s = 0;
    bool operator==(const KernelCost&) const = default;
};

// The unit one process runs on: a GPU, or for CPU clusters the whole node.
struct Device {
    std::string name;
    std::map<DType, double> peak_flops;  // FLOP/s per element type; an absent type is unsupported
    double achievable_fraction = 1.0;    // share of peak that DL kernels reach, in (0, 1]
    std::int64_t memory_bytes = 0;
    // Memory the driver and the framework hold before the model gets any (CUDA context, the
    // framework's reserve): plans must fit in memory_bytes - reserved_bytes.
    std::int64_t reserved_bytes = 0;
    double memory_bandwidth_Bps = 0;
    // The share of memory_bandwidth_Bps that streaming kernels reach (a memory-copy benchmark);
    // 1 when the preset gives none.
    double memory_efficiency = 1;
    // The rate (bytes/s) at which elementwise, pooling and normalisation kernels stream their
    // operands (planner::memory_bound_seconds), when it differs from the copy rate: `dnnplan
    // calibrate` fits it to the validator's own layers (scalar loops reach a fraction of a copy).
    // 0 when not given: memory_bandwidth_Bps x memory_efficiency.
    double elementwise_bandwidth_Bps = 0;
    // The rate (bytes/s) at which GEMMs read and write their operands (planner::gemm_time's memory
    // bound), when it differs from the copy rate: a calibrated CPU's per-sample GEMMs work on
    // cache-resident blocks. 0 when not given: memory_bandwidth_Bps x memory_efficiency.
    double gemm_operand_bandwidth_Bps = 0;
    // GPU time each kernel adds on its stream beyond its own work when the host queues kernels
    // ahead of the device (the gap between back-to-back kernels; planner/compute.cpp counts the
    // kernels of each layer). 0 when not given.
    double kernel_launch_s = 0;
    GemmTiling gemm;  // optional: per-shape GEMM and convolution efficiency (planner/compute.hpp)
    // A calibrated CPU's kernels (empty elsewhere): a layer whose kernels are all here is costed
    // kernel by kernel (planner/compute.cpp, cpu_layer_work), others by the rates above.
    std::map<CpuKernel, KernelCost> cpu_kernels;
    // CPU cores of the device (a CPU cluster's whole node); 0 when not described (GPUs). When set,
    // gemm.units is this count (one convolution block per core) and the node can be shared by
    // several processes (clusters/processes_per_node.hpp).
    int cores = 0;
    std::int64_t usable_memory_bytes() const { return memory_bytes - reserved_bytes; }
    bool operator==(const Device&) const = default;
};

// Where `dnnplan calibrate` measured a cluster spec: the host name and the number of MPI ranks.
// Empty (host "") for presets and hand-written specs; validate compares it with the machine it
// runs on instead of reading the description.
struct MeasuredOn {
    std::string host;
    int ranks = 0;
    // Seconds of the validator's speed reference (validators/speed_reference.hpp: a fixed
    // cache-resident GEMM) per run, the median over the calibration's layer measurements; 0 when not
    // measured. This VM's cores change their compute speed for seconds to minutes at a time, so
    // `validate` times the same kernel between its iterations and predicts at the speed it ran at
    // (at_compute_speed) beside the prediction at the calibration's speed.
    double reference_kernel_s = 0;
    bool empty() const { return host.empty(); }
    bool operator==(const MeasuredOn&) const = default;
};

// This machine's host name as MeasuredOn records it (gethostname; "" if it cannot be read).
std::string local_host_name();

// `device` with every compute cost `slowdown` times as long: the FLOP rates, the elementwise and
// GEMM-operand rates and the calibrated kernels (halo packing included: per-run copies are
// instruction-bound); not the memory-copy bandwidth nor the links. On this VM a cache-resident
// GEMM, a scalar exp loop and a 256 x 256 GEMM changed speed together (per-second medians correlated
// 0.90-0.97 over 80 s on each core) while an 8 MiB memcpy did not (-0.24 to 0.12), 7 Dec 2026.
Device at_compute_speed(Device device, double slowdown);

struct Cluster {
    std::string name;
    std::string description;
    MeasuredOn measured_on;
    std::int64_t nodes = 1;
    int devices_per_node = 1;
    Device device;
    Link intra_node;  // device to device inside a node; all zero when devices_per_node is 1
    Link inter_node;  // per device: node injection bandwidth / devices_per_node, end-to-end latency
    Topology topology;
    // 1 for a cluster as specified; k for the view of it with k processes per node
    // (clusters/processes_per_node.hpp), which is not viewed again.
    int processes_per_node = 1;
    // JSON pointer of every number given as {"value", "source"} -> its source note.
    std::map<std::string, std::string> sources;

    std::int64_t total_devices() const { return nodes * devices_per_node; }  // fits: checked at load
    bool supports(DType dtype) const { return device.peak_flops.count(dtype) != 0; }
    // Peak and achievable FLOP/s for `dtype`. An unsupported dtype is a programming error here
    // (std::out_of_range); input edges call require_dtype first to report it against the file.
    double peak_flops(DType dtype) const;
    double achievable_flops(DType dtype) const;  // peak * achievable_fraction

    bool operator==(const Cluster&) const = default;
};

// InputError on `file` at /device/peak_flops when the cluster has no peak for `dtype`.
void require_dtype(const Cluster& cluster, DType dtype, const std::string& file);

// Parses and validates a cluster spec; every problem is an InputError naming `file` and the
// JSON pointer. Unknown fields are rejected so that typos are caught.
Cluster parse_cluster(const Json& spec, const std::string& file);
Cluster load_cluster_file(const std::string& path);

// Sorted stems of the *.json files in `clusters_dir`; empty when the directory is missing.
std::vector<std::string> builtin_cluster_names(const std::string& clusters_dir);
// `name_or_path` itself when it exists, ends in .json or contains '/'; otherwise
// clusters_dir/NAME.json, and an InputError listing the built-in names when that is missing.
std::string resolve_cluster_path(const std::string& name_or_path, const std::string& clusters_dir);

// The spec form of a cluster; numbers with a recorded source are written as {"value", "source"},
// so parse_cluster(to_json(c), f) == c.
Json to_json(const Cluster& cluster);

}  // namespace dnnplan::clusters
