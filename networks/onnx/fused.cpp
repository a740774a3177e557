// Exporters write GELU (before opset 20) as x * 0.5 * (1 + erf(x / sqrt 2)), i.e.
// Div -> Erf -> Add -> Mul(x, .) -> Mul(., 0.5), and SiLU as Mul(x, Sigmoid(x)). Each chain whose
// inner results feed nothing else becomes one gelu or silu layer, with the JSON costs of those.
#include "networks/onnx/importer.hpp"

namespace dnnplan::networks::onnx_import {

void Importer::find_fused_activations() {
    const auto& nodes = model_.graph().node();
    std::unordered_map<std::string, int> producer;
    std::unordered_map<std::string, std::vector<int>> consumers;
    for (int i = 0; i < nodes.size(); ++i) {
        for (const auto& out : nodes[i].output()) producer[out] = i;
        for (const auto& in : nodes[i].input()) consumers[in].push_back(i);
    }
    for (const auto& out : model_.graph().output()) consumers[out.name()].push_back(-1);
    // The single node reading `tensor` if it is of type `op`, else -1.
    auto only_reader = [&](const std::string& tensor, const char* op) {
        auto it = consumers.find(tensor);
        if (it == consumers.end() || it->second.size() != 1 || it->second[0] < 0) return -1;
        return nodes[it->second[0]].op_type() == op ? it->second[0] : -1;
    };
    // The input of binary `node` other than `tensor` (or "" when `tensor` is not one of them).
    auto other = [&](const onnx::NodeProto& node, const std::string& tensor) -> std::string {
        if (node.input_size() != 2) return "";
        if (node.input(0) == tensor) return node.input(1);
        if (node.input(1) == tensor) return node.input(0);
        return "";
    };
    auto is_initializer_or_constant = [&](const std::string& tensor) {
        if (values_.count(tensor) && values_.at(tensor).tensor) return true;
        auto it = producer.find(tensor);
        return it != producer.end() && nodes[it->second].op_type() == "Constant";
    };
    auto claim_chain = [&](std::vector<int> chain, const char* function, const std::string& x) {
        for (int i : chain)
            if (fused_.count(i)) return;
        for (std::size_t k = 0; k + 1 < chain.size(); ++k) fused_[chain[k]] = Fused{"", x};
        fused_[chain.back()] = Fused{function, x};
    };
    for (int e = 0; e < nodes.size(); ++e) {
        const auto& node = nodes[e];
        if (node.op_type() == "Erf" && node.input_size() == 1 && producer.count(node.input(0))) {
            int d = producer.at(node.input(0));
            const auto& div = nodes[d];
            if (div.op_type() != "Div" || div.input_size() != 2 || !is_initializer_or_constant(div.input(1)) ||
                only_reader(div.output(0), "Erf") != e)
                continue;
            const std::string& x = div.input(0);
            int a = only_reader(node.output(0), "Add");
            if (a < 0 || !is_initializer_or_constant(other(nodes[a], node.output(0)))) continue;
            int m1 = only_reader(nodes[a].output(0), "Mul");
            if (m1 < 0 || other(nodes[m1], nodes[a].output(0)) != x) continue;
            int m2 = only_reader(nodes[m1].output(0), "Mul");
            if (m2 < 0 || !is_initializer_or_constant(other(nodes[m2], nodes[m1].output(0)))) continue;
            claim_chain({d, e, a, m1, m2}, "gelu", x);
        } else if (node.op_type() == "Sigmoid" && node.input_size() == 1) {
            int m = only_reader(node.output(0), "Mul");
            if (m >= 0 && other(nodes[m], node.output(0)) == node.input(0))
                claim_chain({e, m}, "silu", node.input(0));
        }
    }
}

void Importer::fused_activation(const onnx::NodeProto& node, const Fused& fused) {
    const Value& x = value(fused.input);
    if (!x.activation) {
        Value v = inferred_.count(node.output(0)) ? inferred_.at(node.output(0)) : Value{};
        v.sources = x.sources;
        values_[node.output(0)] = v;
        return;
    }
    const Shape& in = in_shape(x.layer);
    if (in.empty()) fail_node(fused.function + " of a per-sample scalar is not supported");
    Layer layer = infer_activation(fused.function, in);
    add_layer(node, std::move(layer), {x.layer});
}

}  // namespace dnnplan::networks::onnx_import
