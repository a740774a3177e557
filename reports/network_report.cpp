#include "network_report.hpp"

#include "plan_report.hpp"
#include "text.hpp"

namespace dnnplan::reports {

namespace {
using networks::Layer;
using networks::LayerKind;
using networks::Network;

std::string kind_name(const Layer& layer) {
    return layer.kind == LayerKind::activation ? layer.attrs.function : networks::to_string(layer.kind);
}

std::string batched_shape(const networks::Shape& shape, std::int64_t batch) {
    // Appended piecewise: GCC 12 warns falsely (-Wrestrict, PR 105329) on "literal" + string&&.
    std::string out = "[";
    out += std::to_string(batch);
    for (auto d : shape) {
        out += ", ";
        out += std::to_string(d);
    }
    return out + "]";
}

std::int64_t activation_bytes(const Network& network, const Layer& layer, std::int64_t batch) {
    const std::int64_t per_element = layer.kind == LayerKind::input ? networks::input_element_bytes(network, network.dtype)
                                                                    : dtype_bytes(network.dtype);
    return (layer.output_elements + layer.saved_elements) * per_element * batch;
}

std::string join_inputs(const Network& network, const Layer& layer) {
    std::string out;
    for (std::size_t i = 0; i < layer.inputs.size(); ++i) out += (i ? " " : "") + network.layers[layer.inputs[i]].name;
    return out;
}
}  // namespace

std::string network_text(const Network& network, std::int64_t batch, bool all_layers, int width) {
    networks::NetworkTotals t = networks::totals(network, batch);
    std::vector<LayerRow> rows;
    for (const auto& layer : network.layers)
        rows.push_back({terminal_safe(layer.name),
                        {kind_name(layer), batched_shape(layer.output_shape, batch),
                         layer.params ? human_count(static_cast<double>(layer.params)) : "-",
                         human_count(static_cast<double>(layer.fwd_flops) * batch),
                         human_count(static_cast<double>(layer.bwd_input_flops) * batch),
                         human_count(static_cast<double>(layer.bwd_weight_flops) * batch),
                         human_bytes(static_cast<double>(activation_bytes(network, layer, batch)))}});
    std::string out = "network " + terminal_safe(network.name) + " (" + to_string(network.dtype) + ", batch " +
                      std::to_string(batch) + ", " + std::to_string(network.layers.size()) + " layers)\n";
    if (!network.description.empty()) out += wrap(terminal_safe(network.description), width, 0);
    out += '\n';
    out += render_layer_rows({"layer", "kind", "output shape", "params", "fwd FLOPs", "bwd-in FLOPs",
                              "bwd-wt FLOPs", "activations"},
                             std::move(rows), all_layers, -1, width) +
           "\n";
    out += "parameters:        " + human_count(static_cast<double>(t.params)) + " (" + std::to_string(t.params) +
           "), " + human_bytes(static_cast<double>(t.weight_bytes)) + " of weights\n";
    out += "forward:           " + human_count(static_cast<double>(t.fwd_flops), "FLOP") + " (" +
           human_count(static_cast<double>(t.fwd_flops) / batch, "FLOP") + " per sample)\n";
    out += "backward:          " + human_count(static_cast<double>(t.bwd_input_flops + t.bwd_weight_flops), "FLOP") +
           " (input gradient " + human_count(static_cast<double>(t.bwd_input_flops), "FLOP") + ", weight gradient " +
           human_count(static_cast<double>(t.bwd_weight_flops), "FLOP") + ")\n";
    out += "activations:       " + human_bytes(static_cast<double>(t.activation_bytes)) +
           " (every layer's output kept for the backward pass)\n";
    return out;
}

std::string network_csv(const Network& network, std::int64_t batch) {
    std::string out = csv_row({"layer", "kind", "inputs", "output_shape", "params", "fwd_flops", "bwd_input_flops",
                               "bwd_weight_flops", "activation_bytes"});
    for (const auto& layer : network.layers)
        out += csv_row({layer.name, kind_name(layer), join_inputs(network, layer),
                        batched_shape(layer.output_shape, batch), std::to_string(layer.params),
                        std::to_string(layer.fwd_flops * batch), std::to_string(layer.bwd_input_flops * batch),
                        std::to_string(layer.bwd_weight_flops * batch),
                        std::to_string(activation_bytes(network, layer, batch))});
    return out;
}

std::string network_json(const Network& network, std::int64_t batch) {
    return json_text(networks::to_json(network, batch), 2) + "\n";
}

}  // namespace dnnplan::reports
