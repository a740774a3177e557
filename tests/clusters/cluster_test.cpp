// Tests of the cluster model: presets load and match their datasheet numbers, every preset number
// carries a source, JSON round trips, and each malformed spec gives its exact diagnostic.
#include "clusters/cluster.hpp"
#include "clusters/link_model.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

using namespace dnnplan;
using namespace dnnplan::clusters;

namespace {

const std::string source_dir = DNNPLAN_SOURCE_DIR;
const std::string clusters_dir = source_dir + "/clusters";
const std::vector<std::string> preset_names{"cori-knl", "dgx-a100", "dgx-h100", "frontera", "stampede2-skx", "summit"};

std::string preset_path(const std::string& name) {
    return clusters_dir + "/" + name + ".json";
}
Cluster preset(const std::string& name) {
    return load_cluster_file(preset_path(name));
}

std::string bad_path(const std::string& what) {
    return source_dir + "/tests/data/bad/cluster_" + what + ".json";
}

// The message of the InputError that loading `path` throws ("" when it loads).
std::string load_error(const std::string& path) {
    try {
        load_cluster_file(path);
    } catch (const InputError& e) {
        return e.what();
    }
    return "";
}

std::string parse_error(const Json& spec) {
    try {
        parse_cluster(spec, "spec.json");
    } catch (const InputError& e) {
        return e.what();
    }
    return "";
}

// Walks a raw spec: numbers inside {"value", "source"} count as sourced, any other number is
// reported by its pointer.
void walk_numbers(const Json& value, const std::string& pointer, int& sourced, std::vector<std::string>& bare) {
    if (value.is_object()) {
        if (value.size() == 2 && value.contains("value") && value.contains("source") && value["value"].is_number() &&
            value["source"].is_string()) {
            ++sourced;
            return;
        }
        for (const auto& [key, child] : value.items())
            walk_numbers(child, pointer + "/" + json_pointer_token(key), sourced, bare);
    } else if (value.is_array()) {
        for (std::size_t i = 0; i < value.size(); ++i)
            walk_numbers(value[i], pointer + "/" + std::to_string(i), sourced, bare);
    } else if (value.is_number()) {
        bare.push_back(pointer);
    }
}

// A small valid spec that tests modify; plain numbers, so it records no sources.
Json tiny_spec() {
    return Json::parse(R"({
      "name": "tiny", "nodes": 4, "devices_per_node": 1,
      "device": {"name": "cpu", "peak_flops": {"fp32": 1e12}, "achievable_fraction": 0.5,
                 "memory_bytes": 1073741824, "memory_bandwidth_Bps": 1e11},
      "inter_node": {"bandwidth_Bps": 1e10, "latency_s": 1e-6, "topology": "crossbar"}})");
}

}  // namespace

TEST_CASE("every preset loads and is named after its file", "[clusters][presets]") {
    for (const auto& name : preset_names) {
        INFO(name);
        Cluster c = preset(name);
        CHECK(c.name == name);
        CHECK_FALSE(c.description.empty());
        CHECK(c.total_devices() == c.nodes * c.devices_per_node);
    }
}

TEST_CASE("the built-in names are the sorted preset stems", "[clusters][presets]") {
    std::vector<std::string> names = builtin_cluster_names(clusters_dir);
    CHECK(std::is_sorted(names.begin(), names.end()));
    for (const auto& name : preset_names) CHECK(std::find(names.begin(), names.end(), name) != names.end());
    CHECK(builtin_cluster_names(source_dir + "/no/such/dir").empty());
}

TEST_CASE("Cori KNL matches its datasheet numbers", "[clusters][presets]") {
    Cluster c = preset("cori-knl");
    CHECK(c.nodes == 9688);  // NERSC: 9,688 KNL nodes
    CHECK(c.devices_per_node == 1);
    // 68 cores x 1.4e9 Hz x 64 fp32 FLOP/cycle = 6.0928e12
    CHECK(c.peak_flops(DType::fp32) == Approx(6.0928e12).epsilon(1e-12));
    // half of it: 3.0464e12
    CHECK(c.achievable_flops(DType::fp32) == Approx(3.0464e12).epsilon(1e-12));
    CHECK_FALSE(c.supports(DType::bf16));                       // KNL has no bf16 arithmetic
    CHECK(c.device.memory_bytes == 96LL * 1024 * 1024 * 1024);  // 96 GiB DDR4 (MCDRAM is a cache)
    CHECK(c.inter_node.bandwidth_Bps == Approx(8e9));           // NERSC: ~8 GB/s MPI bandwidth
    CHECK(c.inter_node.latency_s == Approx(3.7e-6));            // NERSC: upper end of 0.25-3.7 us
    CHECK(c.topology.kind == TopologyKind::dragonfly);
    CHECK(c.topology.dragonfly_routers_per_group == 16 * 6);  // 16 Aries per chassis, 6 chassis
    CHECK(c.topology.dragonfly_nodes_per_router == 4);
    // 26 groups x 96 routers x 4 nodes = 9,984 >= 9,688 nodes
    CHECK(c.topology.dragonfly_groups * c.topology.dragonfly_routers_per_group *
              c.topology.dragonfly_nodes_per_router ==
          9984);
    // 3 lanes x 12.5 Gb/s / 8 = 4.6875 GB/s
    CHECK(c.topology.dragonfly_global.bandwidth_Bps == Approx(4.6875e9));
    CHECK(c.intra_node == Link{});  // one device per node: no intra-node link
}

TEST_CASE("Stampede2 SKX and Frontera match their datasheet numbers", "[clusters][presets]") {
    Cluster s = preset("stampede2-skx");
    CHECK(s.nodes == 1736);
    // 48 cores x 1.4e9 Hz (AVX-512 base) x 64 = 4.3008e12
    CHECK(s.peak_flops(DType::fp32) == Approx(4.3008e12).epsilon(1e-12));
    CHECK(s.device.memory_bytes == 192LL * 1024 * 1024 * 1024);
    CHECK(s.inter_node.bandwidth_Bps == Approx(100e9 / 8));  // Omni-Path 100 Gb/s
    CHECK(s.topology.kind == TopologyKind::fat_tree);
    CHECK(s.topology.fat_tree_arity == 28);
    CHECK(s.topology.oversubscription == Approx(28.0 / 20.0));  // 28 nodes, 20 uplinks per leaf

    Cluster f = preset("frontera");
    CHECK(f.nodes == 8008);
    // 56 cores x 1.8e9 Hz (AVX-512 base) x 64 = 6.4512e12
    CHECK(f.peak_flops(DType::fp32) == Approx(6.4512e12).epsilon(1e-12));
    CHECK(f.device.memory_bytes == 192LL * 1024 * 1024 * 1024);
    // 2 sockets x 6 channels x 2933e6 T/s x 8 B = 2.81568e11
    CHECK(f.device.memory_bandwidth_Bps == Approx(2.81568e11).epsilon(1e-12));
    CHECK(f.inter_node.bandwidth_Bps == Approx(100e9 / 8));  // HDR100
    CHECK(f.topology.fat_tree_arity == 44);
    CHECK(f.topology.oversubscription == Approx(22.0 / 18.0).epsilon(1e-15));
}

TEST_CASE("DGX A100 and H100 match their datasheet numbers", "[clusters][presets]") {
    Cluster a = preset("dgx-a100");
    CHECK(a.nodes == 140);
    CHECK(a.total_devices() == 1120);  // 140 x 8
    CHECK(a.peak_flops(DType::fp32) == Approx(19.5e12));
    CHECK(a.peak_flops(DType::fp16) == Approx(312e12));
    CHECK(a.peak_flops(DType::bf16) == Approx(312e12));
    CHECK(a.achievable_flops(DType::bf16) == Approx(0.6 * 312e12));
    CHECK(a.device.memory_bytes == 80LL * 1024 * 1024 * 1024);
    CHECK(a.device.memory_bandwidth_Bps == Approx(2039e9));
    CHECK(a.intra_node.bandwidth_Bps == Approx(600e9 / 2));  // NVLink 600 GB/s both ways
    CHECK(a.inter_node.bandwidth_Bps == Approx(200e9 / 8));  // one HDR 200 Gb/s HCA per GPU
    CHECK(a.topology.oversubscription == 1.0);

    Cluster h = preset("dgx-h100");
    CHECK(h.total_devices() == 127 * 8);
    CHECK(h.peak_flops(DType::fp32) == Approx(67e12));
    CHECK(h.peak_flops(DType::bf16) == Approx(1978.8e12 / 2));  // dense = half the sparse figure
    CHECK(h.device.memory_bandwidth_Bps == Approx(3.35e12));
    CHECK(h.intra_node.bandwidth_Bps == Approx(900e9 / 2));  // NVLink 900 GB/s both ways
    CHECK(h.inter_node.bandwidth_Bps == Approx(400e9 / 8));  // one NDR 400 Gb/s HCA per GPU
    // every preset's fat tree holds its nodes: 32^2 = 1024 >= 127, 20^3 = 8000 >= 140
    CHECK(h.topology.fat_tree_levels == 2);
    CHECK(a.topology.fat_tree_levels == 3);
}

TEST_CASE("Summit matches its datasheet numbers and TensorFlow's usable V100 memory", "[clusters][presets]") {
    Cluster s = preset("summit");
    CHECK(s.total_devices() == 4608 * 6);
    CHECK(s.peak_flops(DType::fp32) == Approx(15.7e12));
    CHECK(s.peak_flops(DType::fp16) == Approx(125e12));
    CHECK_FALSE(s.supports(DType::bf16));  // Volta has no bf16
    CHECK(s.device.memory_bytes == 1575LL * 1024 * 1024 * 1024 / 100);  // "totalMemory: 15.75GiB"
    // TensorFlow's device on these GPUs: "with 14842 MB memory" (MiB) is what the model may use.
    CHECK(s.device.usable_memory_bytes() == 14842LL * 1024 * 1024);
    CHECK(s.intra_node.bandwidth_Bps == Approx(2 * 25e9));       // two NVLink 2.0 bricks
    CHECK(s.inter_node.bandwidth_Bps == Approx(2 * 100e9 / 8 / 6));  // dual-rail EDR over 6 GPUs
    CHECK(s.topology.fat_tree_levels == 3);
    CHECK(s.topology.oversubscription == 1.0);
    // The CPU and 80 GB presets reserve nothing.
    for (const std::string name : {"cori-knl", "dgx-a100", "dgx-h100", "frontera", "stampede2-skx"})
        CHECK(preset(name).device.reserved_bytes == 0);
}

TEST_CASE("every number in every preset has a source", "[clusters][presets]") {
    for (const auto& name : preset_names) {
        INFO(name);
        Json raw = load_json_file(preset_path(name));
        int sourced = 0;
        std::vector<std::string> bare;
        walk_numbers(raw, "", sourced, bare);
        CHECK(bare.empty());
        for (const auto& pointer : bare) UNSCOPED_INFO("number without a source at " << pointer);
        CHECK(sourced > 10);
        Cluster c = parse_cluster(raw, name);
        // The loader recorded one source per sourced number, under the number's own pointer.
        CHECK(static_cast<int>(c.sources.size()) == sourced);
        CHECK(c.sources.count("/nodes") == 1);
        CHECK(c.sources.count("/device/peak_flops/fp32") == 1);
        for (const auto& [pointer, note] : c.sources) CHECK(note.size() > 20);
    }
}

TEST_CASE("clusters round-trip through JSON", "[clusters][json]") {
    for (const auto& name : preset_names) {
        INFO(name);
        Cluster c = preset(name);
        Json written = to_json(c);
        CHECK(parse_cluster(written, "written.json") == c);
        // Through text as well: doubles must survive printing.
        CHECK(parse_cluster(Json::parse(written.dump(2)), "written.json") == c);
        // And the written form is the preset itself, up to number spelling.
        CHECK(written == load_json_file(preset_path(name)));
    }

    Json torus = tiny_spec();
    torus["nodes"] = 12;
    torus["inter_node"]["topology"] = "torus";
    torus["inter_node"]["torus"] = {{"dims", {2, Json{{"value", 3}, {"source", "made up for a test"}}, 2}}};
    Cluster t = parse_cluster(torus, "torus.json");
    CHECK(t.topology.torus_dims == std::vector<int>{2, 3, 2});
    CHECK(t.sources.at("/inter_node/torus/dims/1") == "made up for a test");
    CHECK(parse_cluster(to_json(t), "t.json") == t);

    Json crossbar = tiny_spec();
    Cluster x = parse_cluster(crossbar, "x.json");
    CHECK(x.sources.empty());
    CHECK(x.topology == Topology{});
    CHECK(parse_cluster(to_json(x), "x.json") == x);
}

TEST_CASE("a calibrated spec records where it was measured, as a typed field", "[clusters][json]") {
    Json spec = tiny_spec();
    CHECK(parse_cluster(spec, "p.json").measured_on.empty());  // presets and hand-written specs
    spec["measured_on"] = {{"host", "node7"}, {"ranks", 2}};
    Cluster c = parse_cluster(spec, "m.json");
    CHECK(c.measured_on == MeasuredOn{"node7", 2});
    CHECK(parse_cluster(to_json(c), "m.json") == c);

    spec["measured_on"] = {{"host", "node7"}, {"ranks", 0}};
    CHECK(parse_error(spec) == "spec.json: /measured_on/ranks: must be a positive integer, got 0");
    spec["measured_on"] = {{"host", ""}, {"ranks", 2}};
    CHECK(parse_error(spec) == "spec.json: /measured_on/host: must not be empty");
    spec["measured_on"] = {{"hots", "node7"}, {"ranks", 2}};
    CHECK(parse_error(spec).starts_with("spec.json: /measured_on/hots: unknown field \"hots\""));
    spec["measured_on"] = "node7";
    CHECK(parse_error(spec).starts_with("spec.json: /measured_on: "));
}

TEST_CASE("a calibrated spec keeps the speed reference's time, a positive number of seconds", "[clusters][json]") {
    Json spec = tiny_spec();
    spec["measured_on"] = {{"host", "node7"}, {"ranks", 2}, {"reference_kernel_s", 7.2e-5}};
    Cluster c = parse_cluster(spec, "m.json");
    CHECK(c.measured_on.reference_kernel_s == 7.2e-5);
    CHECK(parse_cluster(to_json(c), "m.json") == c);
    CHECK_FALSE(to_json(parse_cluster(tiny_spec(), "p.json")).contains("measured_on"));
    spec["measured_on"]["reference_kernel_s"] = 0;
    CHECK(parse_error(spec).starts_with("spec.json: /measured_on/reference_kernel_s: must be between 1e-09 and 1"));
    spec["measured_on"]["reference_kernel_s"] = "fast";
    CHECK(parse_error(spec).starts_with("spec.json: /measured_on/reference_kernel_s: expected a number"));
}

TEST_CASE("at_compute_speed slows every compute cost and no memory copy", "[clusters]") {
    Device d;
    d.peak_flops[DType::fp32] = 1e11;
    d.memory_bandwidth_Bps = 2e10;
    d.memory_efficiency = 0.5;
    d.elementwise_bandwidth_Bps = 4e9;
    d.gemm_operand_bandwidth_Bps = 8e9;
    d.kernel_launch_s = 3e-6;
    d.cpu_kernels[CpuKernel::relu_forward] = {1e-9, 2e-7};
    d.cpu_kernels[CpuKernel::halo_pack] = {5e-11, 6e-9};
    const Device slow = at_compute_speed(d, 1.25);
    // By hand: rates / 1.25, seconds x 1.25.
    CHECK(slow.peak_flops.at(DType::fp32) == Approx(8e10));
    CHECK(slow.elementwise_bandwidth_Bps == Approx(3.2e9));
    CHECK(slow.gemm_operand_bandwidth_Bps == Approx(6.4e9));
    CHECK(slow.kernel_launch_s == Approx(3.75e-6));
    CHECK(slow.cpu_kernels.at(CpuKernel::relu_forward).per_unit_s == Approx(1.25e-9));
    CHECK(slow.cpu_kernels.at(CpuKernel::relu_forward).per_call_s == Approx(2.5e-7));
    CHECK(slow.cpu_kernels.at(CpuKernel::halo_pack).per_call_s == Approx(7.5e-9));
    // The copy rate (memory_bandwidth_Bps x memory_efficiency) is not the cores' speed.
    CHECK(slow.memory_bandwidth_Bps == 2e10);
    CHECK(slow.memory_efficiency == 0.5);
    CHECK(at_compute_speed(d, 1.0) == d);
}

TEST_CASE("a link's nonblocking_progress is a sourced fraction, 1 by default", "[clusters][json]") {
    Json spec = tiny_spec();
    CHECK(parse_cluster(spec, "p.json").inter_node.nonblocking_progress == 1);  // the presets' behaviour
    spec["inter_node"]["nonblocking_progress"] = {{"value", 0.25}, {"source", "measured by dnnplan calibrate"}};
    Cluster c = parse_cluster(spec, "m.json");
    CHECK(c.inter_node.nonblocking_progress == 0.25);
    CHECK(c.sources.at("/inter_node/nonblocking_progress") == "measured by dnnplan calibrate");
    CHECK(parse_cluster(to_json(c), "m.json") == c);
    spec["inter_node"]["nonblocking_progress"] = 0;  // no progress at all is a valid measurement
    CHECK(parse_cluster(spec, "m.json").inter_node.nonblocking_progress == 0);
    spec["inter_node"]["nonblocking_progress"] = 1.5;
    CHECK(parse_error(spec).starts_with("spec.json: /inter_node/nonblocking_progress: must be between 0 and 1"));
}

TEST_CASE("a link's nonblocking_test_calls is a sourced count of at least 1, absent by default", "[clusters][json]") {
    Json spec = tiny_spec();
    CHECK(parse_cluster(spec, "p.json").inter_node.nonblocking_test_calls == 0);  // the presets: time-fraction model
    spec["inter_node"]["nonblocking_test_calls"] = {{"value", 3.5}, {"source", "measured by dnnplan calibrate"}};
    const Cluster c = parse_cluster(spec, "m.json");
    CHECK(c.inter_node.nonblocking_test_calls == 3.5);
    CHECK(c.sources.at("/inter_node/nonblocking_test_calls") == "measured by dnnplan calibrate");
    CHECK(parse_cluster(to_json(c), "m.json") == c);  // written back with its source
    spec["inter_node"]["nonblocking_test_calls"] = 0.5;  // a collective needs at least one call
    CHECK(parse_error(spec).starts_with("spec.json: /inter_node/nonblocking_test_calls: must be between 1 and"));
    spec["inter_node"]["nonblocking_test_calls"] = "four";
    CHECK(parse_error(spec).starts_with("spec.json: /inter_node/nonblocking_test_calls: "));
}

TEST_CASE("a link's point-to-point message figures are sourced, optional, both or neither", "[clusters][json]") {
    Json spec = tiny_spec();
    spec["devices_per_node"] = 2;
    spec["intra_node"] = {{"bandwidth_Bps", 1e9}, {"latency_s", 6e-7}, {"efficiency", 0.5}};
    {  // none given: a message pays the link's own figures (the effective bandwidth)
        const clusters::LinkModel links = clusters::LinkModel::of(parse_cluster(spec, "p.json"));
        CHECK(links.intra_message == clusters::LinkCost{5e8, 6e-7});
        CHECK(links.inter_message == clusters::LinkCost{1e10, 1e-6});
        CHECK(links.message_between(0, 1) == links.intra_message);
        CHECK(links.message_between(1, 2) == links.inter_message);  // ranks 1 and 2 on nodes 0 and 1
    }
    spec["intra_node"]["message_bandwidth_Bps"] = {{"value", 2.5e9}, {"source", "ping-pong fit"}};
    spec["intra_node"]["message_latency_s"] = 3e-6;
    const Cluster c = parse_cluster(spec, "m.json");
    CHECK(c.intra_node.message_bandwidth_Bps == 2.5e9);
    CHECK(c.sources.at("/intra_node/message_bandwidth_Bps") == "ping-pong fit");
    CHECK(parse_cluster(to_json(c), "m.json") == c);  // written back with its source
    // The measured figures as they are (no efficiency: a ping-pong is the rate reached); the
    // collectives keep the link's. A 2 MiB boundary: 3 us + 2097152 / 2.5e9 s = 841.86 us.
    const clusters::LinkModel links = clusters::LinkModel::of(c);
    CHECK(links.intra_message == clusters::LinkCost{2.5e9, 3e-6});
    CHECK(links.intra == clusters::LinkCost{5e8, 6e-7});
    CHECK(clusters::point_to_point_seconds(2097152, links.intra_message) == Approx(841.8608e-6).epsilon(1e-12));
    spec["intra_node"].erase("message_latency_s");
    CHECK(parse_error(spec) ==
          "spec.json: /intra_node: message_bandwidth_Bps and message_latency_s go together (one point-to-point "
          "message fit)");
    spec["intra_node"]["message_latency_s"] = 0.0;  // a fit through the origin
    CHECK(parse_cluster(spec, "z.json").intra_node.message_latency_s == 0);
    spec["intra_node"]["message_latency_s"] = 2.0;
    CHECK(parse_error(spec).starts_with("spec.json: /intra_node/message_latency_s: must be between"));
}

TEST_CASE("a link's nonblocking_call_share is a sourced fraction, absent by default", "[clusters][json]") {
    Json spec = tiny_spec();
    CHECK(parse_cluster(spec, "p.json").inter_node.nonblocking_call_share == 0);  // the presets: calls are free
    spec["inter_node"]["nonblocking_call_share"] = {{"value", 0.4}, {"source", "measured by dnnplan calibrate"}};
    const Cluster c = parse_cluster(spec, "m.json");
    CHECK(c.inter_node.nonblocking_call_share == 0.4);
    CHECK(c.sources.at("/inter_node/nonblocking_call_share") == "measured by dnnplan calibrate");
    CHECK(parse_cluster(to_json(c), "m.json") == c);  // written back with its source
    spec["inter_node"]["nonblocking_call_share"] = 1.5;
    CHECK(parse_error(spec).starts_with("spec.json: /inter_node/nonblocking_call_share: must be between 0 and 1"));
}

TEST_CASE("a fat tree's oversubscription defaults to non-blocking", "[clusters]") {
    Json spec = tiny_spec();
    spec["inter_node"]["topology"] = "fat_tree";
    spec["inter_node"]["fat_tree"] = {{"levels", 1}, {"arity", 4}};
    Cluster c = parse_cluster(spec, "spec.json");
    CHECK(c.topology.fat_tree_levels == 1);
    CHECK(c.topology.fat_tree_arity == 4);
    CHECK(c.topology.oversubscription == 1.0);
}

TEST_CASE("a missing dtype is reported against the cluster file", "[clusters]") {
    Cluster c = preset("frontera");
    CHECK_NOTHROW(require_dtype(c, DType::fp32, "frontera.json"));
    try {
        require_dtype(c, DType::bf16, "frontera.json");
        FAIL("expected an InputError");
    } catch (const InputError& e) {
        CHECK(std::string(e.what()) == "frontera.json: /device/peak_flops: no peak FLOP/s for bf16 (given: fp32)");
    }
    CHECK_THROWS_AS(c.achievable_flops(DType::fp16), std::out_of_range);
}

TEST_CASE("each malformed cluster file gives its exact message", "[clusters][errors]") {
    struct Case {
        std::string fixture;
        std::string message;  // after "FILE: "
    };
    const std::vector<Case> cases{
        {"bad_topology",
         "/inter_node/topology: unknown value \"hypercube\" (valid: crossbar, fat_tree, torus or dragonfly)"},
        {"negative_bandwidth", "/inter_node/bandwidth_Bps: must be between 1000 and 1e+15 bytes/s, got -12.5"},
        {"missing_device", "/: missing required field \"device\""},
        {"fraction_too_large", "/device/achievable_fraction: must be between 0.001 and 1 (a fraction of peak), got 1.5"},
        {"mistyped_field",
         "/devices_per_nod: unknown field \"devices_per_nod\" (valid fields: name, description, measured_on, nodes, "
         "devices_per_node, device, intra_node or inter_node)"},
        {"string_number", "/device/memory_bandwidth_Bps: expected a number, got \"100 GB/s\""},
        {"string_integer", "/nodes: expected an integer, got \"four\""},
        {"torus_mismatch",
         "/inter_node/torus/dims: the product of the dimensions is 12 (2 x 2 x 3), but the cluster has 16 nodes; "
         "a torus must be exactly filled"},
        {"missing_source", "/nodes: missing required field \"source\""},
        {"negative_sourced_latency", "/inter_node/latency_s/value: must be between 1e-10 and 1 s, got -2e-06"},
        {"dragonfly_too_small",
         "/inter_node/dragonfly: holds 96 nodes (groups 2 x routers_per_group 12 x nodes_per_router 4), but the "
         "cluster has 100 nodes"},
        {"fat_tree_too_small",
         "/inter_node/fat_tree: holds 400 nodes (arity 20 ^ levels 2), but the cluster has 500 nodes"},
        {"oversubscription_below_one",
         "/inter_node/fat_tree/oversubscription: must be between 1 and 1024 (1 is full bisection), got 0.5"},
        {"unknown_dtype", "/device/peak_flops/fp64: unknown field \"fp64\" (valid fields: fp32, fp16 or bf16)"},
        {"no_peak", "/device/peak_flops: give the peak FLOP/s of at least one element type (fp32, fp16 or bf16)"},
        {"missing_intra_node", "/: missing required field \"intra_node\" (devices_per_node is 8)"},
        {"wrong_topology_parameters",
         "/inter_node/torus: \"torus\" parameters do not apply: the topology is \"fat_tree\""},
        {"zero_memory", "/device/memory_bytes: must be a positive integer, got 0"},
        {"reserved_too_large",
         "/device/reserved_bytes: must be less than memory_bytes (1000), got 1000: nothing would be left for the model"},
        {"zero_nodes", "/nodes: must be a positive integer, got 0"},
        {"not_object", "/: expected a cluster spec object, got an array"},
    };
    for (const auto& c : cases) {
        INFO(c.fixture);
        CHECK(load_error(bad_path(c.fixture)) == bad_path(c.fixture) + ": " + c.message);
    }
}

TEST_CASE("a syntax error is reported as FILE:LINE:COL", "[clusters][errors]") {
    // Line 3 is `  "nodes": 4,,`: the second comma is column 14.
    std::string path = bad_path("syntax_error");
    CHECK(load_error(path) ==
          path + ":3:14: syntax error while parsing object key - unexpected ','; expected string literal");
    CHECK(load_error(bad_path("no_such_fixture")) == bad_path("no_such_fixture") + ": no such file");
}

TEST_CASE("inline spec mistakes name their pointer", "[clusters][errors]") {
    Json spec = tiny_spec();
    spec["nodes"] = {{"value", 4}, {"source", "  "}};
    CHECK(parse_error(spec) == "spec.json: /nodes/source: must not be empty: say where the number comes from");

    spec = tiny_spec();
    spec["nodes"] = {{"value", 4}, {"source", "s"}, {"unit", "nodes"}};
    CHECK(parse_error(spec) == "spec.json: /nodes/unit: unknown field \"unit\" (valid fields: value or source)");

    spec = tiny_spec();
    spec["device"]["achievable_fraction"] = 0;
    CHECK(parse_error(spec) ==
          "spec.json: /device/achievable_fraction: must be between 0.001 and 1 (a fraction of peak), got 0");

    spec = tiny_spec();
    spec["name"] = "";
    CHECK(parse_error(spec) == "spec.json: /name: must not be empty");

    spec = tiny_spec();
    spec["inter_node"]["topology"] = "torus";
    spec["inter_node"]["torus"] = {{"dims", {4, 1}}};
    CHECK(parse_error(spec) == "spec.json: /inter_node/torus/dims/1: must be at least 2, got 1");

    spec = tiny_spec();
    spec["inter_node"]["topology"] = "fat_tree";
    spec["inter_node"]["fat_tree"] = {{"levels", 0}, {"arity", 4}};
    CHECK(parse_error(spec) == "spec.json: /inter_node/fat_tree/levels: must be a positive integer, got 0");

    spec = tiny_spec();
    spec["inter_node"]["topology"] = "dragonfly";
    CHECK(parse_error(spec) == "spec.json: /inter_node: missing required field \"dragonfly\"");

    spec = tiny_spec();
    spec["device"]["memory_bytes"] = 1.5;
    CHECK(parse_error(spec) == "spec.json: /device/memory_bytes: expected an integer, got 1.5");
}

TEST_CASE("cluster names resolve to preset files", "[clusters][paths]") {
    CHECK(resolve_cluster_path("dgx-a100", clusters_dir) == clusters_dir + "/dgx-a100.json");
    CHECK(resolve_cluster_path("my.json", clusters_dir) == "my.json");        // a path, even if missing
    CHECK(resolve_cluster_path("some/where", clusters_dir) == "some/where");  // has a slash: a path
    CHECK(resolve_cluster_path(preset_path("frontera"), clusters_dir) == preset_path("frontera"));

    namespace fs = std::filesystem;
    fs::path dir = fs::temp_directory_path() / "dnnplan_cluster_test_presets";
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::ofstream(dir / "beta.json") << "{}";
    std::ofstream(dir / "alpha.json") << "{}";
    std::ofstream(dir / "notes.txt") << "not a preset";
    CHECK(builtin_cluster_names(dir.string()) == std::vector<std::string>{"alpha", "beta"});
    try {
        resolve_cluster_path("gamma", dir.string());
        FAIL("expected an InputError");
    } catch (const InputError& e) {
        CHECK(std::string(e.what()) == "gamma: no such file or built-in cluster (built-in: alpha or beta)");
    }
    fs::remove_all(dir);
}

TEST_CASE("the README's complete example is a valid spec", "[clusters][docs]") {
    std::string text = read_text_file(clusters_dir + "/README.md");
    auto begin = text.find("```json\n");
    REQUIRE(begin != std::string::npos);
    begin += 8;
    auto end = text.find("```", begin);
    REQUIRE(end != std::string::npos);
    Cluster c = parse_cluster(parse_json_text(text.substr(begin, end - begin), "README.md"), "README.md");
    CHECK(c.name == "lab-a100");
    CHECK(c.total_devices() == 32);  // 4 nodes x 8 GPUs
    CHECK(c.sources.size() == 3);    // devices_per_node, fp32, achievable_fraction
    CHECK(c.topology.fat_tree_arity == 20);
}

TEST_CASE("a calibrated CPU's kernel costs load, round-trip and name their pointer when wrong", "[clusters][json]") {
    Json spec = tiny_spec();
    CHECK(parse_cluster(spec, "old.json").device.cpu_kernels.empty());  // specs without them: the rates
    spec["device"]["cpu_kernels"] = {
        {"gelu_forward", {{"per_unit_s", {{"value", 6e-9}, {"source", "measured by dnnplan calibrate on this machine"}}},
                          {"per_call_s", 1e-6}}},
        {"gemm_call", {{"per_call_s", 2e-6}}}};
    Cluster c = parse_cluster(spec, "cal.json");
    CHECK(c.device.cpu_kernels.at(CpuKernel::gelu_forward) == KernelCost{6e-9, 1e-6});
    CHECK(c.device.cpu_kernels.at(CpuKernel::gemm_call) == KernelCost{0, 2e-6});  // per_unit_s defaults to 0
    CHECK(c.sources.at("/device/cpu_kernels/gelu_forward/per_unit_s") == "measured by dnnplan calibrate on this machine");
    CHECK(parse_cluster(to_json(c), "cal.json") == c);
    CHECK(to_string(CpuKernel::lowering_backward) == "lowering_backward");

    spec["device"]["cpu_kernels"]["gelu_fwd"] = {{"per_unit_s", 1e-9}};
    CHECK(parse_error(spec).starts_with("spec.json: /device/cpu_kernels/gelu_fwd: unknown field \"gelu_fwd\""));
    spec["device"]["cpu_kernels"].erase("gelu_fwd");
    spec["device"]["cpu_kernels"]["loss"] = {{"per_unit_s", -1e-9}};
    CHECK(parse_error(spec) == "spec.json: /device/cpu_kernels/loss/per_unit_s: must be between 0 and 1 s, got -1e-09");
    spec["device"]["cpu_kernels"]["loss"] = {{"per_element_s", 1e-9}};
    CHECK(parse_error(spec).starts_with("spec.json: /device/cpu_kernels/loss/per_element_s: unknown field"));
}
