// The ONNX importer's driver: reads the file, checks the model and its graph (opset, operators,
// node validity, one input), runs the phases of networks/onnx/importer.hpp and names the result.
#include <onnx/defs/schema.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "networks/onnx/importer.hpp"
#include "networks/onnx_import.hpp"

namespace dnnplan::networks {

namespace onnx_import {

namespace {

// Protobuf cannot parse a message of 2 GiB or more, so that is the file limit (a full VGG-16 with
// weights is 528 MB).
constexpr std::int64_t kMaxOnnxFileBytes = (std::int64_t{1} << 31) - 1;
// A graph is walked once per node; this bounds time and memory like the JSON loader's layer cap.
constexpr int kMaxNodes = 100'000;

// The offset of the first byte of `s` that is not part of a valid UTF-8 sequence (RFC 3629: no
// overlong forms, no surrogates, at most U+10FFFF), or npos when `s` is valid.
std::size_t invalid_utf8_at(const std::string& s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto b = static_cast<unsigned char>(s[i]);
        std::size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
        if (n == 0 || i + n > s.size()) return i;
        unsigned code = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
        for (std::size_t k = 1; k < n; ++k) {
            const auto c = static_cast<unsigned char>(s[i + k]);
            if ((c >> 6) != 0x2) return i;
            code = (code << 6) | (c & 0x3F);
        }
        const unsigned min = n == 1 ? 0 : n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
        if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return i;
        i += n;
    }
    return std::string::npos;
}

// `s` with every byte outside valid UTF-8 written as \xNN, so a message can show the bad name.
std::string with_bad_bytes_escaped(const std::string& s) {
    std::string out;
    std::size_t i = 0;
    while (i < s.size()) {
        std::size_t bad = invalid_utf8_at(s.substr(i));
        if (bad == std::string::npos) return out + s.substr(i);
        out += s.substr(i, bad);
        char hex[8];
        std::snprintf(hex, sizeof hex, "\\x%02X", static_cast<unsigned char>(s[i + bad]));
        out += hex;
        i += bad + 1;
    }
    return out;
}

}  // namespace

std::int64_t product(const Shape& s, std::size_t from) {
    if (auto elements = checked_elements(s, from)) return *elements;
    throw std::overflow_error("shape too large");
}

Network Importer::run() {
    check_model();
    reject_unknown_ops();
    check_graph();
    infer_shapes();
    collect_inferred_types();
    create_input();
    find_fused_activations();
    const auto& nodes = model_.graph().node();
    for (int i = 0; i < nodes.size(); ++i) {
        node_index_ = i;
        if (auto it = fused_.find(i); it != fused_.end()) {
            if (!it->second.function.empty()) fused_activation(nodes[i], it->second);
            continue;  // an inner node of a fused activation: only the last one emits the layer
        }
        import_node(nodes[i]);
    }
    finish();
    return std::move(network_);
}

std::string Importer::node_label() const {
    const auto& node = model_.graph().node(node_index_);
    std::string name = node.name().empty() ? (node.output_size() ? node.output(0) : std::string()) : node.name();
    return node.op_type() + " node \"" + name + "\"";
}

[[noreturn]] void Importer::fail_node(const std::string& message) const {
    throw InputError(file_, node_location(), node_label() + ": " + message);
}

[[noreturn]] void Importer::fail_model(const std::string& message) const { throw InputError(file_, "", message); }

void Importer::check_model() {
    if (!model_.has_graph() || model_.graph().node_size() == 0)
        fail_model("not an ONNX model (no graph with nodes; is it truncated?)");
    if (model_.ir_version() <= 0) fail_model("not an ONNX model (no IR version)");
    if (model_.graph().node_size() > kMaxNodes)
        fail_model("has " + std::to_string(model_.graph().node_size()) + " nodes, more than the limit of " +
                   std::to_string(kMaxNodes));
    int max = onnx_max_supported_opset();
    bool default_domain = false;
    for (const auto& op : model_.opset_import()) {
        if (op.domain().empty() || op.domain() == "ai.onnx") {
            default_domain = true;
            opset_ = static_cast<int>(op.version());
            if (op.version() > max)
                fail_model("opset " + std::to_string(op.version()) +
                           " is newer than this build supports (ONNX opsets up to " + std::to_string(max) +
                           "); export with opset_version=" + std::to_string(max) + " or lower");
            if (op.version() < 1) fail_model("invalid opset version " + std::to_string(op.version()));
        }
    }
    if (!default_domain) fail_model("the model imports no version of the default ONNX operator set");
    check_names();
}

// Names reach every output (JSON, CSV, HTML, messages), which all need text: a name that is not
// valid UTF-8 is refused here, with the node or tensor it belongs to.
void Importer::check_names() {
    auto bad = [](const std::string& text) { return invalid_utf8_at(text) != std::string::npos; };
    std::string location;  // the node's JSON-pointer-like place, "" for the model's own names
    auto refuse = [&](const std::string& what, const std::string& text) {
        throw InputError(file_, location,
                         what + " \"" + with_bad_bytes_escaped(text) + "\" is not valid UTF-8 (byte " +
                             std::to_string(invalid_utf8_at(text)) + ")");
    };
    const auto& g = model_.graph();
    if (bad(model_.producer_name())) refuse("the producer name", model_.producer_name());
    if (bad(model_.producer_version())) refuse("the producer version", model_.producer_version());
    if (bad(g.name())) refuse("the graph's name", g.name());
    for (const auto& t : g.input())
        if (bad(t.name())) refuse("graph input", t.name());
    for (const auto& t : g.output())
        if (bad(t.name())) refuse("graph output", t.name());
    for (const auto& t : g.initializer())
        if (bad(t.name())) refuse("initializer", t.name());
    for (const auto& t : g.value_info())
        if (bad(t.name())) refuse("value_info tensor", t.name());
    for (int i = 0; i < g.node_size(); ++i) {
        const auto& node = g.node(i);
        location = "/graph/node/" + std::to_string(i);
        const std::string where = "node " + std::to_string(i) + " (" + with_bad_bytes_escaped(node.op_type()) + ")";
        // (An operator type is no name: one that is not UTF-8 is an unknown operator, refused or, with
        // --allow-unknown-ops, imported, its type escaped in the messages.)
        if (bad(node.name())) refuse(where + ": its name", node.name());
        for (const auto& t : node.input())
            if (bad(t)) refuse(where + ": input tensor", t);
        for (const auto& t : node.output())
            if (bad(t)) refuse(where + ": output tensor", t);
    }
}

// One message for every unsupported operator type: how often and where it first appears.
void Importer::reject_unknown_ops() {
    struct Seen {
        int count = 0;
        std::string first;
    };
    std::map<std::string, Seen> unknown;
    // Unknown operators in shape-only subgraphs fold away; only those on the input's path count.
    std::set<std::string> dependent, initializers;
    for (const auto& t : model_.graph().initializer()) initializers.insert(t.name());
    for (const auto& in : model_.graph().input())
        if (!initializers.count(in.name())) dependent.insert(in.name());
    for (const auto& node : model_.graph().node()) {
        bool depends = false;
        for (const auto& in : node.input()) depends = depends || dependent.count(in) > 0;
        if (!depends || node.op_type() == "Shape" || node.op_type() == "Size") continue;
        for (const auto& out : node.output()) dependent.insert(out);
        if (classify(node) != OpClass::unknown) continue;
        std::string type =
            (node.domain().empty() || node.domain() == "ai.onnx" ? "" : node.domain() + ".") + node.op_type();
        Seen& s = unknown[type];
        if (s.count++ == 0) s.first = node.name().empty() && node.output_size() ? node.output(0) : node.name();
    }
    if (unknown.empty()) return;
    std::string list;
    for (const auto& [type, s] : unknown) {
        if (!list.empty()) list += ", ";
        list += type + " x" + std::to_string(s.count) + " (first: \"" + s.first + "\")";
        unknown_summary_ += (unknown_summary_.empty() ? "" : ", ") + type + " x" + std::to_string(s.count);
    }
    if (!options_.allow_unknown_ops)
        fail_model("unsupported ONNX operators: " + list +
                   "; --allow-unknown-ops imports them as elementwise layers without parameters");
}

// libonnx 1.12's shape inference dereferences the types of undefined inputs and trusts node arity,
// so first: every input defined before use (ONNX requires topological order), and every node of
// a known operator valid against its schema (input and output counts, attribute types).
void Importer::check_graph() {
    const auto& g = model_.graph();
    std::set<std::string> defined;
    for (const auto& t : g.initializer()) defined.insert(t.name());
    for (const auto& in : g.input()) defined.insert(in.name());
    for (int i = 0; i < g.node_size(); ++i) {
        node_index_ = i;
        const auto& node = g.node(i);
        for (const auto& in : node.input())
            if (!in.empty() && !defined.count(in))
                fail_node("reads tensor \"" + in + "\", which no earlier node produces");
        if (node.domain().empty() || node.domain() == "ai.onnx") {
            const auto* schema = onnx::OpSchemaRegistry::Schema(node.op_type(), opset_, "");
            if (schema) {
                try {
                    schema->Verify(node);
                } catch (const std::exception& e) {
                    fail_node(std::string("invalid node: ") + e.what());
                }
            } else if (classify(node) != OpClass::unknown) {
                fail_node("operator " + node.op_type() + " does not exist in opset " + std::to_string(opset_));
            }
        }
        for (const auto& out : node.output())
            if (!out.empty()) defined.insert(out);
    }
    for (const auto& out : g.output())
        if (!defined.count(out.name()))
            fail_model("graph output \"" + out.name() + "\" is not produced by any node");
}

void Importer::create_input() {
    const auto& g = model_.graph();
    std::vector<std::string> inputs;
    for (const auto& in : g.input())
        if (!values_.count(in.name())) inputs.push_back(in.name());
    if (inputs.empty()) fail_model("the graph has no input (every input is an initializer)");
    if (inputs.size() > 1)
        fail_model("the graph has " + std::to_string(inputs.size()) + " inputs (" + join_choices(inputs) +
                   "); dnnplan networks have exactly one");
    const Value& type = inferred_.at(inputs[0]);
    Layer input;
    input.name = "input";
    input.kind = LayerKind::input;
    input.spec_pointer = "/graph/input";
    input.output_shape.assign(type.dims.begin() + 1, type.dims.end());
    input.output_elements = product(input.output_shape);
    switch (type.elem_type) {
        case onnx::TensorProto::FLOAT:
            network_.dtype = DType::fp32;
            break;
        case onnx::TensorProto::FLOAT16:
            network_.dtype = DType::fp16;
            break;
        case onnx::TensorProto::BFLOAT16:
            network_.dtype = DType::bf16;
            break;
        case onnx::TensorProto::INT64:
        case onnx::TensorProto::INT32:
            network_.token_input = true;
            break;
        default:
            fail_model("graph input \"" + inputs[0] + "\" has element type " +
                       onnx::TensorProto::DataType_Name(static_cast<onnx::TensorProto::DataType>(type.elem_type)) +
                       " (expected a float tensor, or int64 token ids)");
    }
    if (network_.token_input && input.output_shape.size() != 1)
        fail_model("token input \"" + inputs[0] + "\" must be [batch, sequence], got " + shape_string(type.dims));
    network_.layers.push_back(std::move(input));
    autograd_.add(network_.layers.back());
    used_names_.insert("input");
    Value v = type;
    v.activation = true;
    v.layer = 0;
    values_[inputs[0]] = v;
}

void Importer::finish() {
    std::filesystem::path p(file_);
    network_.name = p.stem().string().empty() ? "onnx-model" : p.stem().string();
    network_.default_batch = default_batch();
    std::string producer =
        model_.producer_name().empty()
            ? std::string("an unknown producer")
            : model_.producer_name() + (model_.producer_version().empty() ? "" : " " + model_.producer_version());
    network_.description = "imported from ONNX (" + producer + ", opset " + std::to_string(opset_) + ", " +
                           std::to_string(model_.graph().node_size()) + " nodes; batch " +
                           (static_batch_ ? "fixed at " + std::to_string(batch_) : std::string("dynamic")) + ")";
    // Said in every output: the name heads every report and plan, the description the inspect text.
    if (!unknown_summary_.empty()) network_.name += " [unknown ops as elementwise: " + unknown_summary_ + "]";
    if (!unknown_summary_.empty())
        network_.description +=
            "; UNSUPPORTED OPERATORS imported as elementwise layers without parameters "
            "(--allow-unknown-ops): " +
            unknown_summary_;
    // Every graph output must come from the layers (a constant output has nothing to train).
    for (const auto& out : model_.graph().output())
        if (!values_.count(out.name()) || !values_.at(out.name()).activation)
            fail_model("graph output \"" + out.name() + "\" does not depend on the graph input");
    totals(network_, network_.default_batch, file_);
}

}  // namespace onnx_import

using onnx_import::Importer;
using onnx_import::kMaxOnnxFileBytes;

int onnx_max_supported_opset() {
    const auto& map = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
    auto it = map.find(onnx::ONNX_DOMAIN);
    return it == map.end() ? 0 : it->second.second;
}

Network parse_onnx_model(const std::string& bytes, const std::string& file, const LoadOptions& options) {
    onnx::ModelProto model;
    if (bytes.empty()) throw InputError(file, "", "is empty, not an ONNX model");
    if (!model.ParseFromString(bytes))
        throw InputError(file, "", "cannot be parsed as an ONNX model (truncated, corrupt or not ONNX)");
    try {
        return Importer(model, file, options).run();
    } catch (const InputError&) {
        throw;
    } catch (const std::exception& e) {
        // Sizes whose products overflow, or a malformed graph libonnx rejects.
        throw InputError(file, "", std::string("cannot import the model: ") + e.what());
    }
}

Network load_onnx_file(const std::string& path, const LoadOptions& options) {
    // read_file_bytes refuses what is not a regular file (a FIFO would block, a device never end).
    std::string bytes = read_file_bytes(path, static_cast<std::size_t>(kMaxOnnxFileBytes),
                                        "is larger than 2 GiB, protobuf's limit for one ONNX message");
    return parse_onnx_model(bytes, path, options);
}

}  // namespace dnnplan::networks
