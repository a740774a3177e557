// The IR's own operations: lookup, totals, the file loaders' dispatch and the JSON round trip.
// Reading a spec is networks/spec_loader.cpp, per-layer inference networks/infer.cpp.
#include "network.hpp"
#include "common/names.hpp"

#include <algorithm>
#include <filesystem>

#include "onnx_import.hpp"

namespace dnnplan::networks {

std::int64_t input_element_bytes(const Network& network, DType dtype) {
    return network.token_input ? 8 : dtype_bytes(dtype);
}

int Network::find(const std::string& layer_name) const {
    for (std::size_t i = 0; i < layers.size(); ++i)
        if (layers[i].name == layer_name) return static_cast<int>(i);
    return -1;
}

Network load_network_file(const std::string& path, const LoadOptions& options) {
    if (std::filesystem::path(path).extension() == ".onnx") {
        check_input_file(path);  // the common checks (a FIFO, device or directory) before the importer opens it
        return load_onnx_file(path, options);
    }
    Json spec = load_json_file(path);
    return parse_network(spec, path);
}

NetworkTotals totals(const Network& network, std::int64_t batch, const std::string& file) {
    NetworkTotals t;
    auto fail = [&](const Layer& layer) -> std::int64_t {
        throw InputError(file.empty() ? "network " + network.name : file, layer.spec_pointer.empty() ? "/" : layer.spec_pointer,
                         "counts for batch " + std::to_string(batch) + " overflow 64-bit integers");
    };
    auto acc = [&](std::int64_t& total, std::int64_t per_sample, std::int64_t factor, const Layer& layer) {
        auto scaled = checked_mul(per_sample, factor);
        if (!scaled) fail(layer);
        auto sum = checked_add(total, *scaled);
        if (!sum) fail(layer);
        total = *sum;
    };
    // Batch totals: each layer's count exact in 64 bits, summed in double.
    auto acc_batch = [&](double& total, std::int64_t per_sample, std::int64_t factor, const Layer& layer) {
        auto scaled = checked_mul(per_sample, factor);
        if (!scaled) fail(layer);
        total += static_cast<double>(*scaled);
    };
    std::int64_t element_bytes = dtype_bytes(network.dtype);
    for (const auto& layer : network.layers) {
        acc(t.params, layer.params, 1, layer);
        acc_batch(t.fwd_flops, layer.fwd_flops, batch, layer);
        acc_batch(t.bwd_input_flops, layer.bwd_input_flops, batch, layer);
        acc_batch(t.bwd_weight_flops, layer.bwd_weight_flops, batch, layer);
        std::int64_t bytes_per_element =
            layer.kind == LayerKind::input ? input_element_bytes(network, network.dtype) : element_bytes;
        auto per_sample = checked_add(layer.output_elements, layer.saved_elements);
        if (!per_sample) fail(layer);
        auto bytes = checked_mul(*per_sample, bytes_per_element);
        if (!bytes) fail(layer);
        acc_batch(t.activation_bytes, *bytes, batch, layer);
    }
    auto weight_bytes = checked_mul(t.params, element_bytes);
    if (!weight_bytes) fail(network.layers.front());
    t.weight_bytes = *weight_bytes;
    return t;
}

std::vector<std::string> builtin_network_names(const std::string& networks_dir) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(networks_dir, ec))
        if (entry.path().extension() == ".json") names.push_back(entry.path().stem().string());
    std::sort(names.begin(), names.end());
    return names;
}

std::string resolve_network_path(const std::string& name_or_path, const std::string& networks_dir) {
    namespace fs = std::filesystem;
    fs::path p(name_or_path);
    std::error_code ec;  // an unusable path (too long, no permission) is reported when it is read
    if (fs::exists(p, ec) || p.extension() == ".json" || p.extension() == ".onnx" ||
        name_or_path.find('/') != std::string::npos)
        return name_or_path;
    fs::path builtin = fs::path(networks_dir) / (name_or_path + ".json");
    if (fs::exists(builtin, ec)) return builtin.string();
    // Built-in names match in any case ("VGG16"); a near miss gets a suggestion (issue 18, item 3).
    std::vector<std::string> names = builtin_network_names(networks_dir);
    if (std::string same = same_name_ignoring_case(name_or_path, names); !same.empty())
        return (fs::path(networks_dir) / (same + ".json")).string();
    std::string guess = closest_name(name_or_path, names);
    throw InputError(name_or_path, "", "no such file or built-in network (built-ins: " + join_choices(names) + ")" +
                                           (guess.empty() ? std::string() : "; did you mean " + guess + "?"));
}

namespace {
// A batch total as an integer while it fits 64 bits (exact below 2^53), else as a number.
Json count_json(double total) {
    if (total < 9.2e18) return Json(static_cast<std::int64_t>(total));
    return Json(total);
}
}  // namespace

Json to_json(const Network& network, std::int64_t batch) {
    NetworkTotals t = totals(network, batch);
    Json layers = Json::array();
    std::int64_t element_bytes = dtype_bytes(network.dtype);
    for (const auto& layer : network.layers) {
        Json inputs = Json::array();
        for (int i : layer.inputs) inputs.push_back(network.layers[i].name);
        std::int64_t bytes_per_element =
            layer.kind == LayerKind::input ? input_element_bytes(network, network.dtype) : element_bytes;
        Json entry{{"name", layer.name},
                   {"kind", layer.kind == LayerKind::activation ? layer.attrs.function : to_string(layer.kind)},
                   {"inputs", inputs},
                   {"output_shape", layer.output_shape},
                   {"params", layer.params},
                   {"fwd_flops", layer.fwd_flops * batch},
                   {"bwd_input_flops", layer.bwd_input_flops * batch},
                   {"bwd_weight_flops", layer.bwd_weight_flops * batch},
                   {"activation_bytes", (layer.output_elements + layer.saved_elements) * bytes_per_element * batch}};
        layers.push_back(std::move(entry));
    }
    return Json{{"name", network.name},
                {"description", network.description},
                {"dtype", to_string(network.dtype)},
                {"batch", batch},
                {"layers", layers},
                {"totals",
                 {{"params", t.params},
                  {"weight_bytes", t.weight_bytes},
                  {"fwd_flops", count_json(t.fwd_flops)},
                  {"bwd_input_flops", count_json(t.bwd_input_flops)},
                  {"bwd_weight_flops", count_json(t.bwd_weight_flops)},
                  {"activation_bytes", count_json(t.activation_bytes)}}}};
}

}  // namespace dnnplan::networks
