#include "clusters/cluster.hpp"
#include "common/names.hpp"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <optional>
#include <stdexcept>
#include <unistd.h>

namespace dnnplan::clusters {

namespace {

constexpr int max_small_int = 1 << 20;  // bound for per-node and per-switch counts: catches typos like 8e9

// The plausible range of each rate, wide enough for any machine past or planned, narrow enough that
// no subnormal, zero or absurd constant (1e-320 FLOP/s) can turn times into nan, inf or 60 digits.
struct Range {
    double min, max;
    const char* unit;
};
constexpr Range kPeakFlops{1e6, 1e18, "FLOP/s"};
constexpr Range kFraction{1e-3, 1, "(a fraction of peak)"};
constexpr Range kMemoryBandwidth{1e6, 1e15, "bytes/s"};
constexpr Range kLinkBandwidth{1e3, 1e15, "bytes/s"};
constexpr Range kLatency{1e-10, 1, "s"};
// A message fit's latency may be 0 (calibrate's fit_message_link refits through the origin when
// the free fit's latency is negative).
constexpr Range kMessageLatency{0, 1, "s"};
constexpr Range kLinkEfficiency{1e-3, 1, "(a fraction of the line rate)"};
constexpr Range kOversubscription{1, 1024, "(1 is full bisection)"};
constexpr Range kProgress{0, 1, "(a fraction of the collective's full speed)"};
constexpr Range kTestCalls{1, 1e6, "(MPI_Test calls)"};  // a collective needs at least one call
constexpr Range kCallShare{0, 1, "(a fraction of the progress a call makes)"};
constexpr Range kKernelSeconds{0, 1, "s"};  // a kernel's time per unit of work or per call

// Reads numbers given plainly or as {"value": X, "source": "..."} and records each source under
// the pointer of the number itself (so "/nodes", never "/nodes/value").
class SourcedReader {
public:
    explicit SourcedReader(std::map<std::string, std::string>& sources) : sources_(sources) {}

    SpecNode value_of(const SpecNode& node) const {
        if (!node.is_object()) return node;
        node.check_keys({"value", "source"});
        SpecNode source = node.child("source");
        std::string note = source.as_string();
        if (note.find_first_not_of(" \t\r\n") == std::string::npos)
            source.fail("must not be empty: say where the number comes from");
        SpecNode value = node.child("value");
        sources_[node.pointer()] = note;
        return value;
    }

    double number(const SpecNode& parent, const std::string& key, const Range& range) const {
        return value_of(parent.child(key)).as_number_within(range.min, range.max, range.unit);
    }
    std::int64_t integer(const SpecNode& parent, const std::string& key, std::int64_t min, std::int64_t max) const {
        return value_of(parent.child(key)).as_int(min, max);
    }
    int small_int(const SpecNode& node, std::int64_t min) const {
        return static_cast<int>(value_of(node).as_int(min, max_small_int));
    }

private:
    std::map<std::string, std::string>& sources_;
};

// The optional point-to-point message figures of a link (Link::message_bandwidth_Bps): both or neither.
void parse_message_cost(const SpecNode& node, const SourcedReader& reader, Link& link) {
    if (node.has("message_bandwidth_Bps") != node.has("message_latency_s"))
        node.fail("message_bandwidth_Bps and message_latency_s go together (one point-to-point message fit)");
    if (!node.has("message_bandwidth_Bps")) return;
    link.message_bandwidth_Bps = reader.number(node, "message_bandwidth_Bps", kLinkBandwidth);
    link.message_latency_s = reader.number(node, "message_latency_s", kMessageLatency);
}

Link parse_link(const SpecNode& node, const SourcedReader& reader) {
    node.check_keys({"bandwidth_Bps", "latency_s", "efficiency", "nonblocking_progress", "nonblocking_test_calls",
                     "message_bandwidth_Bps", "message_latency_s",
                     "nonblocking_call_share"});
    Link link;
    link.bandwidth_Bps = reader.number(node, "bandwidth_Bps", kLinkBandwidth);
    link.latency_s = reader.number(node, "latency_s", kLatency);
    if (node.has("efficiency")) link.efficiency = reader.number(node, "efficiency", kLinkEfficiency);
    if (node.has("nonblocking_progress")) link.nonblocking_progress = reader.number(node, "nonblocking_progress", kProgress);
    if (node.has("nonblocking_test_calls"))
        link.nonblocking_test_calls = reader.number(node, "nonblocking_test_calls", kTestCalls);
    parse_message_cost(node, reader, link);
    if (node.has("nonblocking_call_share"))
        link.nonblocking_call_share = reader.number(node, "nonblocking_call_share", kCallShare);
    return link;
}

std::optional<CpuKernel> parse_cpu_kernel(const std::string& name) {
    const auto& names = cpu_kernel_names();
    const auto at = std::find(names.begin(), names.end(), name);
    if (at == names.end()) return std::nullopt;
    return static_cast<CpuKernel>(at - names.begin());
}

Device parse_device(const SpecNode& node, const SourcedReader& reader) {
    node.check_keys(
        {"name", "peak_flops", "achievable_fraction", "memory_bytes", "reserved_bytes", "memory_bandwidth_Bps",
         "memory_efficiency", "elementwise_bandwidth_Bps", "gemm_operand_bandwidth_Bps", "cores", "gemm",
         "cpu_kernels", "kernel_launch_s"});
    Device device;
    device.name = node.get_string("name");
    if (device.name.empty()) node.child("name").fail("must not be empty");

    SpecNode peaks = node.child("peak_flops");
    peaks.check_keys(dtype_names());
    if (peaks.size() == 0)
        peaks.fail("give the peak FLOP/s of at least one element type (" + join_choices(dtype_names()) + ")");
    for (const auto& dtype_name : dtype_names())
        if (peaks.has(dtype_name)) device.peak_flops[*parse_dtype(dtype_name)] = reader.number(peaks, dtype_name, kPeakFlops);

    device.achievable_fraction = reader.number(node, "achievable_fraction", kFraction);

    device.memory_bytes = reader.integer(node, "memory_bytes", 1, std::numeric_limits<std::int64_t>::max());
    if (node.has("reserved_bytes")) {
        SpecNode reserved = reader.value_of(node.child("reserved_bytes"));
        device.reserved_bytes = reserved.as_int(0, std::numeric_limits<std::int64_t>::max());
        if (device.reserved_bytes >= device.memory_bytes)
            reserved.fail("must be less than memory_bytes (" + std::to_string(device.memory_bytes) + "), got " +
                          std::to_string(device.reserved_bytes) + ": nothing would be left for the model");
    }
    device.memory_bandwidth_Bps = reader.number(node, "memory_bandwidth_Bps", kMemoryBandwidth);
    if (node.has("memory_efficiency"))
        device.memory_efficiency = reader.number(node, "memory_efficiency", kFraction);
    if (node.has("elementwise_bandwidth_Bps"))
        device.elementwise_bandwidth_Bps = reader.number(node, "elementwise_bandwidth_Bps", kMemoryBandwidth);
    if (node.has("gemm_operand_bandwidth_Bps"))
        device.gemm_operand_bandwidth_Bps = reader.number(node, "gemm_operand_bandwidth_Bps", kMemoryBandwidth);
    if (node.has("kernel_launch_s")) device.kernel_launch_s = reader.number(node, "kernel_launch_s", kKernelSeconds);
    if (node.has("cores")) device.cores = reader.small_int(node.child("cores"), 1);
    if (node.has("gemm")) {
        SpecNode gemm = node.child("gemm");
        gemm.check_keys({"tile_m", "tile_n", "units", "efficiency"});
        device.gemm.tile_m = reader.small_int(gemm.child("tile_m"), 1);
        device.gemm.tile_n = reader.small_int(gemm.child("tile_n"), 1);
        // On a CPU the units are the cores: described once, by device.cores.
        if (device.cores > 0 && gemm.has("units"))
            gemm.child("units").fail("is device.cores (" + std::to_string(device.cores) +
                                     ") on a device that gives its cores; leave it out");
        device.gemm.units = device.cores > 0 ? device.cores : reader.small_int(gemm.child("units"), 1);
        device.gemm.efficiency = reader.number(gemm, "efficiency", kFraction);
    }
    if (node.has("cpu_kernels")) {
        SpecNode kernels = node.child("cpu_kernels");
        kernels.check_keys(cpu_kernel_names());
        for (const auto& name : cpu_kernel_names()) {
            if (!kernels.has(name)) continue;
            SpecNode k = kernels.child(name);
            k.check_keys({"per_unit_s", "per_call_s"});
            KernelCost cost;
            if (k.has("per_unit_s")) cost.per_unit_s = reader.number(k, "per_unit_s", kKernelSeconds);
            if (k.has("per_call_s")) cost.per_call_s = reader.number(k, "per_call_s", kKernelSeconds);
            device.cpu_kernels[*parse_cpu_kernel(name)] = cost;
        }
    }
    return device;
}

// Fails on `node` unless `capacity` (nullopt: overflowed, so certainly large enough) >= nodes.
void check_capacity(const SpecNode& node, std::optional<std::int64_t> capacity, const std::string& how,
                    std::int64_t nodes) {
    if (capacity && *capacity < nodes)
        node.fail("holds " + std::to_string(*capacity) + " nodes (" + how + "), but the cluster has " +
                  std::to_string(nodes) + " nodes");
}

Topology parse_topology(const SpecNode& inter, TopologyKind kind, std::int64_t nodes, const SourcedReader& reader) {
    Topology topology;
    topology.kind = kind;
    // A parameter block for another kind is a mistake, not something to ignore silently.
    for (const auto& name : topology_names())
        if (name != "crossbar" && name != to_string(kind) && inter.has(name))
            inter.child(name).fail("\"" + name + "\" parameters do not apply: the topology is \"" + to_string(kind) +
                                   "\"");

    switch (kind) {
        case TopologyKind::crossbar:
            break;
        case TopologyKind::fat_tree: {
            SpecNode tree = inter.child("fat_tree");
            tree.check_keys({"levels", "arity", "oversubscription"});
            topology.fat_tree_levels = reader.small_int(tree.child("levels"), 1);
            topology.fat_tree_arity = reader.small_int(tree.child("arity"), 2);
            if (tree.has("oversubscription"))
                topology.oversubscription = reader.number(tree, "oversubscription", kOversubscription);
            std::optional<std::int64_t> capacity = 1;
            for (int level = 0; level < topology.fat_tree_levels && capacity; ++level)
                capacity = checked_mul(*capacity, topology.fat_tree_arity);
            check_capacity(tree, capacity,
                           "arity " + std::to_string(topology.fat_tree_arity) + " ^ levels " +
                               std::to_string(topology.fat_tree_levels),
                           nodes);
            break;
        }
        case TopologyKind::torus: {
            SpecNode torus = inter.child("torus");
            torus.check_keys({"dims"});
            SpecNode dims = torus.child("dims");
            dims.expect_array("an array of dimension extents");
            if (dims.size() == 0) dims.fail("must list at least one dimension");
            std::optional<std::int64_t> product = 1;
            std::string shown;
            for (std::size_t i = 0; i < dims.size(); ++i) {
                int extent = reader.small_int(dims.element(i), 2);
                topology.torus_dims.push_back(extent);
                if (product) product = checked_mul(*product, extent);
                shown += (i ? " x " : "") + std::to_string(extent);
            }
            // Exactly filled: hop distances and wrap-around links assume every position is a node.
            if (!product || *product != nodes)
                dims.fail("the product of the dimensions is " + (product ? std::to_string(*product) : "too large") +
                          " (" + shown + "), but the cluster has " + std::to_string(nodes) +
                          " nodes; a torus must be exactly filled");
            break;
        }
        case TopologyKind::dragonfly: {
            SpecNode fly = inter.child("dragonfly");
            fly.check_keys({"groups", "routers_per_group", "nodes_per_router", "global_link"});
            topology.dragonfly_groups = reader.small_int(fly.child("groups"), 1);
            topology.dragonfly_routers_per_group = reader.small_int(fly.child("routers_per_group"), 1);
            topology.dragonfly_nodes_per_router = reader.small_int(fly.child("nodes_per_router"), 1);
            topology.dragonfly_global = parse_link(fly.child("global_link"), reader);
            std::optional<std::int64_t> capacity =
                checked_mul(topology.dragonfly_groups, topology.dragonfly_routers_per_group);
            if (capacity) capacity = checked_mul(*capacity, topology.dragonfly_nodes_per_router);
            check_capacity(fly, capacity,
                           "groups " + std::to_string(topology.dragonfly_groups) + " x routers_per_group " +
                               std::to_string(topology.dragonfly_routers_per_group) + " x nodes_per_router " +
                               std::to_string(topology.dragonfly_nodes_per_router),
                           nodes);
            break;
        }
    }
    return topology;
}

Json sourced(const Cluster& cluster, const std::string& pointer, Json value) {
    auto it = cluster.sources.find(pointer);
    if (it == cluster.sources.end()) return value;
    return Json{{"value", std::move(value)}, {"source", it->second}};
}

Json link_json(const Cluster& cluster, const std::string& pointer, const Link& link) {
    Json out{{"bandwidth_Bps", sourced(cluster, pointer + "/bandwidth_Bps", link.bandwidth_Bps)},
             {"latency_s", sourced(cluster, pointer + "/latency_s", link.latency_s)}};
    if (link.efficiency != 1) out["efficiency"] = sourced(cluster, pointer + "/efficiency", link.efficiency);
    if (link.nonblocking_progress != 1)
        out["nonblocking_progress"] = sourced(cluster, pointer + "/nonblocking_progress", link.nonblocking_progress);
    if (link.nonblocking_test_calls > 0)
        out["nonblocking_test_calls"] =
            sourced(cluster, pointer + "/nonblocking_test_calls", link.nonblocking_test_calls);
    if (link.message_bandwidth_Bps > 0) {
        out["message_bandwidth_Bps"] = sourced(cluster, pointer + "/message_bandwidth_Bps", link.message_bandwidth_Bps);
        out["message_latency_s"] = sourced(cluster, pointer + "/message_latency_s", link.message_latency_s);
    }
    if (link.nonblocking_call_share > 0)
        out["nonblocking_call_share"] =
            sourced(cluster, pointer + "/nonblocking_call_share", link.nonblocking_call_share);
    return out;
}

}  // namespace

std::string to_string(TopologyKind kind) {
    switch (kind) {
        case TopologyKind::crossbar:
            return "crossbar";
        case TopologyKind::fat_tree:
            return "fat_tree";
        case TopologyKind::torus:
            return "torus";
        case TopologyKind::dragonfly:
            return "dragonfly";
    }
    return "crossbar";
}

// In CpuKernel's order.
const std::vector<std::string>& cpu_kernel_names() {
    static const std::vector<std::string> names{
        "relu_forward", "relu_backward", "gelu_forward", "gelu_backward", "layernorm_forward",
        "layernorm_backward", "batchnorm_forward", "batchnorm_backward", "add_forward", "concat_forward",
        "concat_backward", "pool_forward", "pool_backward", "global_pool_forward", "global_pool_backward",
        "upsample_forward", "upsample_backward", "embedding_forward", "embedding_backward",
        "position_embedding_forward", "position_embedding_backward", "attention_forward", "attention_backward",
        "loss", "lowering_forward", "lowering_backward", "gemm_call", "halo_pack",
        "framework"};
    return names;
}

std::string to_string(CpuKernel kernel) { return cpu_kernel_names().at(static_cast<std::size_t>(kernel)); }

const std::vector<std::string>& topology_names() {
    static const std::vector<std::string> names{"crossbar", "fat_tree", "torus", "dragonfly"};
    return names;
}

double Cluster::peak_flops(DType dtype) const {
    auto it = device.peak_flops.find(dtype);
    if (it == device.peak_flops.end())
        throw std::out_of_range("cluster " + name + " has no peak FLOP/s for " + to_string(dtype));
    return it->second;
}

double Cluster::achievable_flops(DType dtype) const {
    return peak_flops(dtype) * device.achievable_fraction;
}

void require_dtype(const Cluster& cluster, DType dtype, const std::string& file) {
    if (cluster.supports(dtype)) return;
    std::vector<std::string> given;
    for (const auto& [d, _] : cluster.device.peak_flops) given.push_back(to_string(d));
    throw InputError(file, "/device/peak_flops",
                     "no peak FLOP/s for " + to_string(dtype) + " (given: " + join_choices(given) + ")");
}

Cluster parse_cluster(const Json& spec, const std::string& file) {
    SpecNode root(spec, file);
    root.expect_object("a cluster spec object");
    // Checked before any required field so that a misspelt name is reported as such.
    root.check_keys(
        {"name", "description", "measured_on", "nodes", "devices_per_node", "device", "intra_node", "inter_node"});

    Cluster cluster;
    SourcedReader reader(cluster.sources);
    cluster.name = root.get_string("name");
    if (cluster.name.empty()) root.child("name").fail("must not be empty");
    cluster.description = root.get_string_or("description", "");
    if (root.has("measured_on")) {
        SpecNode measured = root.child("measured_on");
        measured.expect_object("an object {\"host\", \"ranks\"} written by dnnplan calibrate");
        measured.check_keys({"host", "ranks", "reference_kernel_s"});
        cluster.measured_on.host = measured.get_string("host");
        if (cluster.measured_on.host.empty()) measured.child("host").fail("must not be empty");
        cluster.measured_on.ranks = static_cast<int>(measured.get_int("ranks", 1, max_small_int));
        if (measured.has("reference_kernel_s"))
            cluster.measured_on.reference_kernel_s =
                measured.child("reference_kernel_s").as_number_within(1e-9, 1.0, "seconds");
    }
    cluster.nodes = reader.integer(root, "nodes", 1, std::numeric_limits<std::int64_t>::max());
    cluster.devices_per_node = static_cast<int>(reader.integer(root, "devices_per_node", 1, max_small_int));
    if (!checked_mul(cluster.nodes, cluster.devices_per_node))
        root.child("nodes").fail("nodes x devices_per_node does not fit in 64 bits");

    cluster.device = parse_device(root.child("device"), reader);

    if (root.has("intra_node"))
        cluster.intra_node = parse_link(root.child("intra_node"), reader);
    else if (cluster.devices_per_node > 1)
        root.fail("missing required field \"intra_node\" (devices_per_node is " +
                  std::to_string(cluster.devices_per_node) + ")");

    SpecNode inter = root.child("inter_node");
    std::vector<std::string> inter_keys{"bandwidth_Bps", "latency_s", "efficiency", "nonblocking_progress",
                                        "nonblocking_test_calls", "message_bandwidth_Bps", "message_latency_s",
                                        "nonblocking_call_share", "topology"};
    for (const auto& name : topology_names())
        if (name != "crossbar") inter_keys.push_back(name);
    inter.check_keys(inter_keys);
    cluster.inter_node.bandwidth_Bps = reader.number(inter, "bandwidth_Bps", kLinkBandwidth);
    cluster.inter_node.latency_s = reader.number(inter, "latency_s", kLatency);
    if (inter.has("efficiency")) cluster.inter_node.efficiency = reader.number(inter, "efficiency", kLinkEfficiency);
    if (inter.has("nonblocking_progress"))
        cluster.inter_node.nonblocking_progress = reader.number(inter, "nonblocking_progress", kProgress);
    if (inter.has("nonblocking_test_calls"))
        cluster.inter_node.nonblocking_test_calls = reader.number(inter, "nonblocking_test_calls", kTestCalls);
    parse_message_cost(inter, reader, cluster.inter_node);
    if (inter.has("nonblocking_call_share"))
        cluster.inter_node.nonblocking_call_share = reader.number(inter, "nonblocking_call_share", kCallShare);
    std::string kind_name = inter.get_choice("topology", topology_names());
    auto kind = static_cast<TopologyKind>(std::find(topology_names().begin(), topology_names().end(), kind_name) -
                                          topology_names().begin());
    cluster.topology = parse_topology(inter, kind, cluster.nodes, reader);
    return cluster;
}

std::string local_host_name() {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0) return "";
    return name;
}

Device at_compute_speed(Device device, double slowdown) {
    for (auto& [dtype, flops] : device.peak_flops) flops /= slowdown;
    device.elementwise_bandwidth_Bps /= slowdown;  // 0 (not given) stays 0
    device.gemm_operand_bandwidth_Bps /= slowdown;
    device.kernel_launch_s *= slowdown;
    for (auto& [kernel, cost] : device.cpu_kernels) {
        cost.per_unit_s *= slowdown;
        cost.per_call_s *= slowdown;
    }
    return device;
}

Cluster load_cluster_file(const std::string& path) {
    return parse_cluster(load_json_file(path), path);
}

std::vector<std::string> builtin_cluster_names(const std::string& clusters_dir) {
    namespace fs = std::filesystem;
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(clusters_dir, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code file_ec;
        if (it->path().extension() == ".json" && it->is_regular_file(file_ec))
            names.push_back(it->path().stem().string());
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::string resolve_cluster_path(const std::string& name_or_path, const std::string& clusters_dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    bool looks_like_path =
        name_or_path.find('/') != std::string::npos || (name_or_path.size() >= 5 && name_or_path.ends_with(".json"));
    if (looks_like_path || fs::exists(name_or_path, ec)) return name_or_path;
    fs::path candidate = fs::path(clusters_dir) / (name_or_path + ".json");
    if (fs::exists(candidate, ec)) return candidate.string();
    std::vector<std::string> names = builtin_cluster_names(clusters_dir);
    if (names.empty()) throw InputError(name_or_path, "", "no such file, and no built-in clusters in " + clusters_dir);
    // Preset names match in any case ("DGX-A100"); a near miss gets a suggestion (issue 18, item 3).
    if (std::string same = same_name_ignoring_case(name_or_path, names); !same.empty())
        return (fs::path(clusters_dir) / (same + ".json")).string();
    std::string guess = closest_name(name_or_path, names);
    throw InputError(name_or_path, "", "no such file or built-in cluster (built-in: " + join_choices(names) + ")" +
                                           (guess.empty() ? std::string() : "; did you mean " + guess + "?"));
}

Json to_json(const Cluster& cluster) {
    const Cluster& c = cluster;
    Json peaks = Json::object();
    for (const auto& [dtype, flops] : c.device.peak_flops)
        peaks[to_string(dtype)] = sourced(c, "/device/peak_flops/" + to_string(dtype), flops);

    Json out = Json::object();
    out["name"] = c.name;
    out["description"] = c.description;
    if (!c.measured_on.empty()) {
        out["measured_on"] = Json{{"host", c.measured_on.host}, {"ranks", c.measured_on.ranks}};
        if (c.measured_on.reference_kernel_s > 0)
            out["measured_on"]["reference_kernel_s"] = c.measured_on.reference_kernel_s;
    }
    out["nodes"] = sourced(c, "/nodes", c.nodes);
    out["devices_per_node"] = sourced(c, "/devices_per_node", c.devices_per_node);
    out["device"] =
        Json{{"name", c.device.name},
             {"peak_flops", peaks},
             {"achievable_fraction", sourced(c, "/device/achievable_fraction", c.device.achievable_fraction)},
             {"memory_bytes", sourced(c, "/device/memory_bytes", c.device.memory_bytes)},
             {"memory_bandwidth_Bps", sourced(c, "/device/memory_bandwidth_Bps", c.device.memory_bandwidth_Bps)}};
    if (c.device.reserved_bytes > 0)
        out["device"]["reserved_bytes"] = sourced(c, "/device/reserved_bytes", c.device.reserved_bytes);
    if (c.device.memory_efficiency != 1)
        out["device"]["memory_efficiency"] = sourced(c, "/device/memory_efficiency", c.device.memory_efficiency);
    if (c.device.elementwise_bandwidth_Bps > 0)
        out["device"]["elementwise_bandwidth_Bps"] =
            sourced(c, "/device/elementwise_bandwidth_Bps", c.device.elementwise_bandwidth_Bps);
    if (c.device.gemm_operand_bandwidth_Bps > 0)
        out["device"]["gemm_operand_bandwidth_Bps"] =
            sourced(c, "/device/gemm_operand_bandwidth_Bps", c.device.gemm_operand_bandwidth_Bps);
    if (c.device.kernel_launch_s > 0)
        out["device"]["kernel_launch_s"] = sourced(c, "/device/kernel_launch_s", c.device.kernel_launch_s);
    if (c.device.cores > 0) out["device"]["cores"] = sourced(c, "/device/cores", c.device.cores);
    for (const auto& [kernel, cost] : c.device.cpu_kernels) {
        const std::string at = "/device/cpu_kernels/" + to_string(kernel);
        out["device"]["cpu_kernels"][to_string(kernel)] =
            Json{{"per_unit_s", sourced(c, at + "/per_unit_s", cost.per_unit_s)},
                 {"per_call_s", sourced(c, at + "/per_call_s", cost.per_call_s)}};
    }
    if (c.device.gemm.described()) {
        out["device"]["gemm"] = Json{{"tile_m", sourced(c, "/device/gemm/tile_m", c.device.gemm.tile_m)},
                                     {"tile_n", sourced(c, "/device/gemm/tile_n", c.device.gemm.tile_n)},
                                     {"efficiency", sourced(c, "/device/gemm/efficiency", c.device.gemm.efficiency)}};
        if (c.device.cores == 0) out["device"]["gemm"]["units"] = sourced(c, "/device/gemm/units", c.device.gemm.units);
    }
    // A zero intra-node link means "not given" (one device per node); writing it would not parse.
    if (!(c.intra_node == Link{})) out["intra_node"] = link_json(c, "/intra_node", c.intra_node);

    Json inter = link_json(c, "/inter_node", c.inter_node);
    inter["topology"] = to_string(c.topology.kind);
    const Topology& t = c.topology;
    switch (t.kind) {
        case TopologyKind::crossbar:
            break;
        case TopologyKind::fat_tree:
            inter["fat_tree"] =
                Json{{"levels", sourced(c, "/inter_node/fat_tree/levels", t.fat_tree_levels)},
                     {"arity", sourced(c, "/inter_node/fat_tree/arity", t.fat_tree_arity)},
                     {"oversubscription", sourced(c, "/inter_node/fat_tree/oversubscription", t.oversubscription)}};
            break;
        case TopologyKind::torus: {
            Json dims = Json::array();
            for (std::size_t i = 0; i < t.torus_dims.size(); ++i)
                dims.push_back(sourced(c, "/inter_node/torus/dims/" + std::to_string(i), t.torus_dims[i]));
            inter["torus"] = Json{{"dims", dims}};
            break;
        }
        case TopologyKind::dragonfly:
            inter["dragonfly"] =
                Json{{"groups", sourced(c, "/inter_node/dragonfly/groups", t.dragonfly_groups)},
                     {"routers_per_group",
                      sourced(c, "/inter_node/dragonfly/routers_per_group", t.dragonfly_routers_per_group)},
                     {"nodes_per_router",
                      sourced(c, "/inter_node/dragonfly/nodes_per_router", t.dragonfly_nodes_per_router)},
                     {"global_link", link_json(c, "/inter_node/dragonfly/global_link", t.dragonfly_global)}};
            break;
    }
    out["inter_node"] = inter;
    return out;
}

}  // namespace dnnplan::clusters
