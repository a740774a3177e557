#include "onnx_import.hpp"

#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>

namespace dnnplan::networks {

namespace {

// Protobuf cannot parse a message of 2 GiB or more, so that is the file limit (a full VGG-16 with
// weights is 528 MB).
constexpr std::int64_t kMaxOnnxFileBytes = (std::int64_t{1} << 31) - 1;
// A graph is walked once per node; this bounds time and memory like the JSON loader's layer cap.
constexpr int kMaxNodes = 100'000;
// When the batch dimension is symbolic, shape inference runs with this concrete batch so that
// Shape -> Gather -> Concat -> Reshape chains fold to numbers; an activation whose first dimension
// is anything else has mixed the batch into the per-sample dimensions.
constexpr std::int64_t kProbeBatch = 7;

// FLOP conventions for the operators the JSON spec has no kind for (networks/README.md, "ONNX").
constexpr int kClipForward = 2, kClipBackward = 1;                // max and min; a mask
constexpr int kHardSigmoidForward = 4, kHardSigmoidBackward = 2;  // a multiply-add and a clamp
constexpr int kPReluForward = 2, kPReluBackward = 2;              // like leaky_relu
constexpr int kBilinearPerOutput = 8;                             // as the JSON upsample

std::string shape_string(const Shape& shape) {
    std::string out = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
    return out + "]";
}

std::int64_t product(const Shape& s, std::size_t from = 0) {
    std::int64_t p = 1;
    for (std::size_t i = from; i < s.size(); ++i) {
        auto r = checked_mul(p, s[i]);
        if (!r) throw std::overflow_error("shape too large");
        p = *r;
    }
    return p;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// One tensor of the graph as the importer sees it.
struct Value {
    bool activation = false;  // depends on the graph input (else: a constant, folded away)
    int layer = -1;           // activation: the layer producing it
    bool has_dims = false;
    Shape dims;  // full dims incl. the batch; -1 where unknown
    int elem_type = 0;
    const onnx::TensorProto* tensor = nullptr;  // initializer or Constant value
    std::set<std::string> sources;              // constant: the trainable initializers it derives from
};

// What the ONNX operator maps to.
enum class OpClass {
    conv,
    conv_transpose,
    gemm,
    matmul,
    binary,
    activation,
    softmax,
    pool,
    global_pool,
    batchnorm,
    instancenorm,
    layernorm,
    concat,
    flatten,
    view,
    movement,
    dropout,
    alias,
    gather,
    resize,
    unary_math,
    reduce,
    shape,
    constant,
    unknown
};

const std::map<std::string, OpClass>& op_classes() {
    static const std::map<std::string, OpClass> table = {
        {"Conv", OpClass::conv},
        {"ConvTranspose", OpClass::conv_transpose},
        {"Gemm", OpClass::gemm},
        {"MatMul", OpClass::matmul},
        {"Add", OpClass::binary},
        {"Sub", OpClass::binary},
        {"Mul", OpClass::binary},
        {"Div", OpClass::binary},
        {"Sum", OpClass::binary},
        {"Max", OpClass::binary},
        {"Min", OpClass::binary},
        {"Pow", OpClass::binary},
        {"Mean", OpClass::binary},
        {"Relu", OpClass::activation},
        {"LeakyRelu", OpClass::activation},
        {"Elu", OpClass::activation},
        {"Sigmoid", OpClass::activation},
        {"Tanh", OpClass::activation},
        {"HardSwish", OpClass::activation},
        {"Gelu", OpClass::activation},
        {"Clip", OpClass::activation},
        {"HardSigmoid", OpClass::activation},
        {"PRelu", OpClass::activation},
        {"Softmax", OpClass::softmax},
        {"LogSoftmax", OpClass::softmax},
        {"MaxPool", OpClass::pool},
        {"AveragePool", OpClass::pool},
        {"GlobalAveragePool", OpClass::global_pool},
        {"GlobalMaxPool", OpClass::global_pool},
        {"BatchNormalization", OpClass::batchnorm},
        {"InstanceNormalization", OpClass::instancenorm},
        {"LayerNormalization", OpClass::layernorm},
        {"Concat", OpClass::concat},
        {"Flatten", OpClass::flatten},
        {"Reshape", OpClass::view},
        {"Transpose", OpClass::view},
        {"Squeeze", OpClass::view},
        {"Unsqueeze", OpClass::view},
        {"Pad", OpClass::movement},
        {"Slice", OpClass::movement},
        {"Split", OpClass::movement},
        {"Expand", OpClass::movement},
        {"Tile", OpClass::movement},
        {"Dropout", OpClass::dropout},
        {"Identity", OpClass::alias},
        {"Cast", OpClass::alias},
        {"Gather", OpClass::gather},
        {"Resize", OpClass::resize},
        {"Upsample", OpClass::resize},
        {"Neg", OpClass::unary_math},
        {"Abs", OpClass::unary_math},
        {"Exp", OpClass::unary_math},
        {"Log", OpClass::unary_math},
        {"Sqrt", OpClass::unary_math},
        {"Reciprocal", OpClass::unary_math},
        {"Erf", OpClass::unary_math},
        {"ReduceMean", OpClass::reduce},
        {"ReduceSum", OpClass::reduce},
        {"ReduceMax", OpClass::reduce},
        {"Shape", OpClass::shape},
        {"Size", OpClass::shape},
        {"Constant", OpClass::constant},
    };
    return table;
}

OpClass classify(const onnx::NodeProto& node) {
    if (!node.domain().empty() && node.domain() != "ai.onnx") return OpClass::unknown;
    auto it = op_classes().find(node.op_type());
    return it == op_classes().end() ? OpClass::unknown : it->second;
}

const onnx::AttributeProto* attribute(const onnx::NodeProto& node, const std::string& name) {
    for (const auto& a : node.attribute())
        if (a.name() == name) return &a;
    return nullptr;
}

class Importer {
public:
    Importer(onnx::ModelProto& model, std::string file, const LoadOptions& options)
        : model_(model), file_(std::move(file)), options_(options) {}

    Network run() {
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

private:
    // ---- diagnostics ---------------------------------------------------------------------------
    // Diagnostics point into the protobuf like a JSON pointer: /graph/node/INDEX, then the node.
    std::string node_location() const { return "/graph/node/" + std::to_string(node_index_); }
    std::string node_label() const {
        const auto& node = model_.graph().node(node_index_);
        std::string name = node.name().empty() ? (node.output_size() ? node.output(0) : std::string()) : node.name();
        return node.op_type() + " node \"" + name + "\"";
    }
    [[noreturn]] void fail_node(const std::string& message) const {
        throw InputError(file_, node_location(), node_label() + ": " + message);
    }
    [[noreturn]] void fail_model(const std::string& message) const { throw InputError(file_, "", message); }

    // ---- model-level checks --------------------------------------------------------------------
    void check_model() {
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
    }

    // One message for every unsupported operator type: how often and where it first appears.
    void reject_unknown_ops() {
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
    void check_graph() {
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

    // ONNX's own shape inference fills value_info; a symbolic batch is pinned to kProbeBatch first.
    void infer_shapes() {
        auto* graph = model_.mutable_graph();
        std::set<std::string> initializers;
        for (const auto& t : graph->initializer()) initializers.insert(t.name());
        for (auto& input : *graph->mutable_input()) {
            if (initializers.count(input.name())) continue;
            if (!input.type().has_tensor_type()) fail_model("graph input \"" + input.name() + "\" is not a tensor");
            auto* shape = input.mutable_type()->mutable_tensor_type()->mutable_shape();
            if (!input.type().tensor_type().has_shape() || shape->dim_size() == 0)
                fail_model("graph input \"" + input.name() + "\" has no shape: the first dimension must be the batch");
            for (int d = 1; d < shape->dim_size(); ++d)
                if (!shape->dim(d).has_dim_value() || shape->dim(d).dim_value() <= 0)
                    fail_model("graph input \"" + input.name() + "\" has a symbolic or unknown dimension " +
                               std::to_string(d) +
                               (shape->dim(d).has_dim_param() ? " (\"" + shape->dim(d).dim_param() + "\")" : "") +
                               ": only the batch dimension (0) may be dynamic");
            auto* batch = shape->mutable_dim(0);
            if (batch->has_dim_value() && batch->dim_value() > 0) {
                batch_ = batch->dim_value();
                static_batch_ = true;
            } else {
                batch->set_dim_value(kProbeBatch);
                batch_ = kProbeBatch;
            }
        }
        // libonnx 1.12 crashes on a node whose input has no type (a Shape fed by an unknown operator,
        // found by fuzzing): type the unknown operators' outputs that can be typed before inference
        // (from graph inputs and initializers), and refuse to infer while any of them stays untyped.
        if (options_.allow_unknown_ops) type_unknown_operators();
        run_shape_inference();
        // libonnx's data propagation stops at Div, Cast and the like; fold those shape computations
        // here into Constant nodes and infer again.
        if (fold_shape_computations()) {
            graph->clear_value_info();
            run_shape_inference();
        }
        // --allow-unknown-ops: ONNX cannot infer what an operator it does not know returns; being
        // elementwise, its outputs get the type of its first input, and inference runs again (once
        // per such operator in a chain).
        if (options_.allow_unknown_ops)
            for (int pass = 0; pass < graph->node_size() && type_unknown_outputs(); ++pass) run_shape_inference();
    }

    // libonnx 1.12 crashes on a node whose input has no type (a Shape fed by an unknown operator,
    // found by fuzzing). So the unknown operators' outputs are typed first, in rounds: inference runs
    // on a copy of the graph without the nodes downstream of a still-untyped unknown output, which
    // types the unknown operators' inputs; their outputs then take their first input's type.
    void type_unknown_operators() {
        const auto& graph = model_.graph();
        for (int round = 0; round <= graph.node_size(); ++round) {
            while (type_unknown_outputs()) {
            }
            std::set<std::string> typed, blocked;
            for (const auto& vi : graph.value_info()) typed.insert(vi.name());
            for (const auto& vi : graph.input()) typed.insert(vi.name());
            for (const auto& t : graph.initializer()) typed.insert(t.name());
            onnx::ModelProto reachable = model_;
            auto* nodes = reachable.mutable_graph()->mutable_node();
            nodes->Clear();
            for (const auto& node : graph.node()) {
                bool reads_blocked = false;
                for (const auto& in : node.input()) reads_blocked = reads_blocked || blocked.count(in) > 0;
                const bool untyped_unknown =
                    classify(node) == OpClass::unknown &&
                    std::any_of(node.output().begin(), node.output().end(),
                                [&](const std::string& out) { return !out.empty() && !typed.count(out); });
                if (reads_blocked || untyped_unknown) {
                    for (const auto& out : node.output()) blocked.insert(out);
                    continue;
                }
                *nodes->Add() = node;
            }
            if (blocked.empty()) return;
            auto* outputs = reachable.mutable_graph()->mutable_output();
            for (int i = outputs->size(); i-- > 0;)
                if (blocked.count(outputs->Get(i).name())) outputs->DeleteSubrange(i, 1);
            std::swap(model_, reachable);
            try {
                run_shape_inference();
            } catch (...) {
                std::swap(model_, reachable);
                throw;
            }
            std::swap(model_, reachable);
            *model_.mutable_graph()->mutable_value_info() = reachable.graph().value_info();
            if (!type_unknown_outputs()) {
                for (int i = 0; i < graph.node_size(); ++i)
                    if (classify(graph.node(i)) == OpClass::unknown && graph.node(i).output_size() > 0 &&
                        blocked.count(graph.node(i).output(0))) {
                        node_index_ = i;
                        fail_node("--allow-unknown-ops: the type of unsupported operator " + graph.node(i).op_type() +
                                  "'s output cannot be inferred from its inputs");
                    }
                return;
            }
        }
    }

    // Gives the first untyped output of an unknown operator its first input's type; true if it did.
    bool type_unknown_outputs() {
        auto* graph = model_.mutable_graph();
        std::unordered_map<std::string, const onnx::ValueInfoProto*> typed;
        for (const auto& vi : graph->value_info()) typed[vi.name()] = &vi;
        for (const auto& vi : graph->input()) typed[vi.name()] = &vi;
        // Initializers are typed by their data type and dims.
        std::vector<onnx::ValueInfoProto> initializer_types;
        initializer_types.reserve(static_cast<std::size_t>(graph->initializer_size()));
        for (const auto& t : graph->initializer()) {
            if (typed.count(t.name())) continue;
            onnx::ValueInfoProto info;
            info.set_name(t.name());
            auto* tensor = info.mutable_type()->mutable_tensor_type();
            tensor->set_elem_type(t.data_type());
            auto* shape = tensor->mutable_shape();
            for (auto d : t.dims()) shape->add_dim()->set_dim_value(d);
            initializer_types.push_back(std::move(info));
        }
        for (const auto& info : initializer_types) typed[info.name()] = &info;
        for (const auto& node : graph->node()) {
            if (classify(node) != OpClass::unknown || node.input_size() == 0) continue;
            auto in = typed.find(node.input(0));
            if (in == typed.end() || !in->second->type().has_tensor_type()) continue;
            for (const auto& out : node.output()) {
                if (out.empty() || typed.count(out)) continue;
                onnx::ValueInfoProto info;
                info.set_name(out);
                *info.mutable_type() = in->second->type();
                *graph->add_value_info() = std::move(info);
                return true;
            }
        }
        return false;
    }

    // libonnx 1.12's shape inference dereferences null pointers on some malformed graphs (found by
    // fuzzing; a crash, not an exception). It runs in a forked child, which sends back the inferred
    // model or the error; a child that dies is reported as a malformed model, never a crash of ours.
    void run_shape_inference() {
        int fds[2];
        if (::pipe(fds) != 0) fail_model("ONNX shape inference: cannot create a pipe");
        const pid_t child = ::fork();
        if (child < 0) {
            ::close(fds[0]);
            ::close(fds[1]);
            fail_model("ONNX shape inference: cannot fork");
        }
        if (child == 0) {
            ::close(fds[0]);
            // A crash here must only end the child (the parent reports it), not run the handlers of a
            // sanitizer or fuzzer inherited from the parent.
            for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) std::signal(sig, SIG_DFL);
            std::string reply;
            try {
                onnx::ShapeInferenceOptions inference(false, 0, true);
                onnx::shape_inference::InferShapes(model_, onnx::OpSchemaRegistry::Instance(), inference);
                reply = "M" + model_.SerializeAsString();
            } catch (const std::exception& e) {
                reply = std::string("E") + e.what();
            } catch (...) {
                reply = "E";
            }
            for (std::size_t sent = 0; sent < reply.size();) {
                const ssize_t n = ::write(fds[1], reply.data() + sent, reply.size() - sent);
                if (n <= 0) break;
                sent += static_cast<std::size_t>(n);
            }
            ::_exit(0);
        }
        ::close(fds[1]);
        std::string reply;
        char buffer[1 << 16];
        for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) != 0;) {
            if (n < 0) {
                if (errno == EINTR) continue;
                break;
            }
            reply.append(buffer, static_cast<std::size_t>(n));
        }
        ::close(fds[0]);
        int status = 0;
        while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
        if (WIFSIGNALED(status) || reply.empty())
            fail_model("ONNX shape inference crashed on this graph (libonnx" +
                       std::string(WIFSIGNALED(status) ? ", signal " + std::to_string(WTERMSIG(status)) : "") +
                       "): the model is malformed");
        if (reply[0] == 'E')
            fail_model("ONNX shape inference failed" + (reply.size() > 1 ? ": " + reply.substr(1) : std::string()));
        if (!model_.ParseFromString(reply.substr(1))) fail_model("ONNX shape inference returned an unreadable model");
    }

    // ---- constant folding of shape computations -----------------------------------------------------
    struct IntTensor {
        Shape dims;
        std::vector<std::int64_t> values;
    };
    static constexpr std::size_t kMaxFoldedElements = 64;  // shapes and indices, never weights

    static std::optional<IntTensor> int_tensor(const onnx::TensorProto& t) {
        IntTensor out;
        out.dims.assign(t.dims().begin(), t.dims().end());
        std::int64_t n = 1;
        for (auto d : out.dims) {
            if (d < 0 || d > static_cast<std::int64_t>(kMaxFoldedElements)) return std::nullopt;
            n *= d;
        }
        if (n > static_cast<std::int64_t>(kMaxFoldedElements)) return std::nullopt;
        if (t.data_type() == onnx::TensorProto::INT64) {
            if (t.int64_data_size() == n) {
                out.values.assign(t.int64_data().begin(), t.int64_data().end());
            } else if (t.raw_data().size() == static_cast<std::size_t>(n) * 8) {
                out.values.resize(n);
                std::memcpy(out.values.data(), t.raw_data().data(), t.raw_data().size());
            } else {
                return std::nullopt;
            }
        } else if (t.data_type() == onnx::TensorProto::INT32) {
            if (t.int32_data_size() == n) {
                out.values.assign(t.int32_data().begin(), t.int32_data().end());
            } else if (t.raw_data().size() == static_cast<std::size_t>(n) * 4) {
                std::vector<std::int32_t> v(n);
                std::memcpy(v.data(), t.raw_data().data(), t.raw_data().size());
                out.values.assign(v.begin(), v.end());
            } else {
                return std::nullopt;
            }
        } else {
            return std::nullopt;
        }
        return out;
    }

    // Evaluates one node of a shape computation, or nullopt when it is not one dnnplan folds.
    std::optional<IntTensor> evaluate(const onnx::NodeProto& node,
                                      const std::unordered_map<std::string, IntTensor>& known) const {
        const std::string& op = node.op_type();
        auto in = [&](int i) -> const IntTensor* {
            if (i >= node.input_size() || node.input(i).empty()) return nullptr;
            auto it = known.find(node.input(i));
            return it == known.end() ? nullptr : &it->second;
        };
        if (op == "Shape" || op == "Size") {
            auto it = inferred_shapes_.find(node.input(0));
            if (it == inferred_shapes_.end()) return std::nullopt;
            for (auto d : it->second)
                if (d < 0) return std::nullopt;
            if (op == "Size") return IntTensor{{}, {product(it->second)}};
            std::int64_t rank = static_cast<std::int64_t>(it->second.size());
            std::int64_t start = int_attr(node, "start", 0), end = int_attr(node, "end", rank);
            if (start < 0) start += rank;
            if (end < 0) end += rank;
            start = std::clamp<std::int64_t>(start, 0, rank);
            end = std::clamp<std::int64_t>(end, start, rank);
            IntTensor out{{end - start}, {it->second.begin() + start, it->second.begin() + end}};
            return out;
        }
        const IntTensor* a = in(0);
        if (!a) return std::nullopt;
        if (op == "Identity" || (op == "Cast" && (int_attr(node, "to", 0) == onnx::TensorProto::INT64 ||
                                                  int_attr(node, "to", 0) == onnx::TensorProto::INT32)))
            return *a;
        if (op == "Unsqueeze" || op == "Squeeze") {
            // Only the scalar <-> [1] and [n] cases shape computations use.
            if (a->values.size() == 1 && op == "Unsqueeze" && a->dims.empty()) return IntTensor{{1}, a->values};
            if (a->values.size() == 1 && op == "Squeeze") return IntTensor{{}, a->values};
            return std::nullopt;
        }
        if (op == "Concat") {
            IntTensor out{{0}, {}};
            for (int i = 0; i < node.input_size(); ++i) {
                const IntTensor* t = in(i);
                if (!t || t->dims.size() > 1) return std::nullopt;
                out.values.insert(out.values.end(), t->values.begin(), t->values.end());
            }
            out.dims[0] = static_cast<std::int64_t>(out.values.size());
            return out;
        }
        if (op == "Gather") {
            const IntTensor* idx = in(1);
            if (!idx || a->dims.size() != 1 || int_attr(node, "axis", 0) != 0) return std::nullopt;
            IntTensor out{idx->dims, {}};
            for (auto i : idx->values) {
                std::int64_t k = i < 0 ? i + a->dims[0] : i;
                if (k < 0 || k >= a->dims[0]) return std::nullopt;
                out.values.push_back(a->values[k]);
            }
            return out;
        }
        if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
            const IntTensor* b = in(1);
            if (!b || (a->values.size() != b->values.size() && a->values.size() != 1 && b->values.size() != 1))
                return std::nullopt;
            IntTensor out = a->values.size() >= b->values.size() ? *a : *b;
            for (std::size_t i = 0; i < out.values.size(); ++i) {
                std::int64_t x = a->values[a->values.size() == 1 ? 0 : i], y = b->values[b->values.size() == 1 ? 0 : i];
                std::optional<std::int64_t> r = op == "Add"   ? checked_add(x, y)
                                                : op == "Sub" ? checked_add(x, -y)
                                                : op == "Mul" ? checked_mul(x, y)
                                                : y != 0 && !(x == INT64_MIN && y == -1)
                                                    ? std::optional<std::int64_t>(x / y)
                                                    : std::nullopt;
                if (!r) return std::nullopt;
                out.values[i] = *r;
            }
            return out;
        }
        return std::nullopt;
    }

    // Replaces every foldable node of a shape computation by a Constant; true if any changed.
    bool fold_shape_computations() {
        inferred_shapes_.clear();
        auto* graph = model_.mutable_graph();
        auto note = [&](const onnx::ValueInfoProto& info) {
            if (!info.type().has_tensor_type() || !info.type().tensor_type().has_shape()) return;
            Shape dims;
            for (const auto& d : info.type().tensor_type().shape().dim())
                dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
            inferred_shapes_[info.name()] = dims;
        };
        for (const auto& vi : graph->value_info()) note(vi);
        for (const auto& vi : graph->input()) note(vi);
        for (const auto& vi : graph->output()) note(vi);
        std::unordered_map<std::string, IntTensor> known;
        for (const auto& t : graph->initializer())
            if (auto v = int_tensor(t)) known[t.name()] = *v;
        bool changed = false;
        for (int i = 0; i < graph->node_size(); ++i) {
            node_index_ = i;
            auto* node = graph->mutable_node(i);
            if (node->output_size() != 1 || node->output(0).empty()) continue;
            if (node->op_type() == "Constant") {
                if (const auto* a = attribute(*node, "value"); a && a->has_t())
                    if (auto v = int_tensor(a->t())) known[node->output(0)] = *v;
                continue;
            }
            if (!node->domain().empty() && node->domain() != "ai.onnx") continue;
            auto v = evaluate(*node, known);
            if (!v || v->values.size() > kMaxFoldedElements) continue;
            known[node->output(0)] = *v;
            // The node becomes `Constant value=<v>` with its name and output.
            onnx::TensorProto t;
            t.set_data_type(onnx::TensorProto::INT64);
            for (auto d : v->dims) t.add_dims(d);
            for (auto x : v->values) t.add_int64_data(x);
            std::string name = node->name(), output = node->output(0);
            node->Clear();
            node->set_name(name);
            node->set_op_type("Constant");
            node->add_output(output);
            auto* attr = node->add_attribute();
            attr->set_name("value");
            attr->set_type(onnx::AttributeProto::TENSOR);
            *attr->mutable_t() = std::move(t);
            changed = true;
        }
        return changed;
    }

    void record_type(const onnx::ValueInfoProto& info) {
        if (!info.type().has_tensor_type()) return;
        const auto& tt = info.type().tensor_type();
        Value v;
        v.elem_type = tt.elem_type();
        if (tt.has_shape()) {
            v.has_dims = true;
            for (const auto& d : tt.shape().dim()) v.dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
        }
        inferred_[info.name()] = std::move(v);
    }

    void collect_inferred_types() {
        const auto& g = model_.graph();
        for (const auto& vi : g.value_info()) record_type(vi);
        for (const auto& vi : g.output()) record_type(vi);
        for (const auto& vi : g.input()) record_type(vi);
        for (const auto& t : g.initializer()) {
            Value v;
            v.elem_type = t.data_type();
            v.has_dims = true;
            v.dims.assign(t.dims().begin(), t.dims().end());
            v.tensor = &t;
            v.sources.insert(t.name());
            values_[t.name()] = v;
            initializer_elements_[t.name()] = product(v.dims);
        }
    }

    // ---- the input layer -----------------------------------------------------------------------
    void create_input() {
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
        requires_grad_.push_back(false);
        used_names_.insert("input");
        Value v = type;
        v.activation = true;
        v.layer = 0;
        values_[inputs[0]] = v;
    }

    // ---- tensors -------------------------------------------------------------------------------
    const Value& value(const std::string& name) const {
        auto it = values_.find(name);
        if (it == values_.end()) fail_node("reads tensor \"" + name + "\", which no earlier node produces");
        return it->second;
    }
    bool present(const onnx::NodeProto& node, int i) const { return i < node.input_size() && !node.input(i).empty(); }

    // The full inferred dims of an output (every dimension known), else the "cannot infer" error.
    Shape output_dims(const std::string& name) const {
        auto it = inferred_.find(name);
        if (it == inferred_.end() || !it->second.has_dims)
            fail_node("ONNX shape inference could not infer the shape of its output \"" + name + "\"");
        for (auto d : it->second.dims)
            if (d < 0)
                fail_node("ONNX shape inference could not infer every dimension of its output \"" + name + "\" (got " +
                          shape_string(it->second.dims) + ", -1 unknown)");
        return it->second.dims;
    }
    Shape per_sample(const Shape& full, const std::string& name) const {
        if (full.empty() || full[0] != batch_)
            fail_node("output \"" + name + "\" has shape " + shape_string(full) +
                      ": its first dimension is not the batch (" +
                      (static_batch_ ? std::to_string(batch_) : "dynamic") +
                      "); operators that mix the batch dimension are not supported");
        return Shape(full.begin() + 1, full.end());
    }
    const Shape& in_shape(int layer) const { return network_.layers[layer].output_shape; }

    std::vector<int> activation_inputs(const onnx::NodeProto& node) const {
        std::vector<int> layers;
        for (int i = 0; i < node.input_size(); ++i)
            if (!node.input(i).empty() && value(node.input(i)).activation) layers.push_back(value(node.input(i)).layer);
        return layers;
    }
    // The activation in slot `i`, or an error.
    int activation_at(const onnx::NodeProto& node, int i, const char* what) const {
        if (!present(node, i) || !value(node.input(i)).activation)
            fail_node(std::string("expected ") + what + " (input " + std::to_string(i) +
                      ") to depend on the graph input");
        return value(node.input(i)).layer;
    }
    // The constant (initializer or folded) in slot `i` with known dims, or an error.
    const Value& constant_at(const onnx::NodeProto& node, int i, const char* what) const {
        if (!present(node, i)) fail_node(std::string("missing ") + what + " (input " + std::to_string(i) + ")");
        const Value& v = value(node.input(i));
        if (v.activation)
            fail_node(std::string(what) + " \"" + node.input(i) +
                      "\" is computed from the graph input; only constant weights are supported");
        if (!v.has_dims) fail_node(std::string("the shape of ") + what + " \"" + node.input(i) + "\" is unknown");
        for (auto d : v.dims)
            if (d < 0) fail_node(std::string("the shape of ") + what + " \"" + node.input(i) + "\" is unknown");
        return v;
    }

    // Trainable parameters a layer owns: the initializers behind its weight inputs, each counted once
    // in the whole graph (a tensor shared by several nodes belongs to its first user).
    std::int64_t claim(const onnx::NodeProto& node, std::initializer_list<int> slots) {
        std::int64_t total = 0;
        for (int i : slots) {
            if (!present(node, i)) continue;
            const Value& v = value(node.input(i));
            if (v.activation) continue;
            for (const auto& name : v.sources) {
                const auto* t = values_.at(name).tensor;
                bool is_float =
                    t && (t->data_type() == onnx::TensorProto::FLOAT || t->data_type() == onnx::TensorProto::FLOAT16 ||
                          t->data_type() == onnx::TensorProto::BFLOAT16 || t->data_type() == onnx::TensorProto::DOUBLE);
                if (!is_float || !claimed_.insert(name).second) continue;
                total += initializer_elements_.at(name);
            }
        }
        return total;
    }

    // ---- layers through the JSON loader --------------------------------------------------------
    // Infers one layer with the JSON loader: a spec whose input has `shape` (or `tokens` tokens),
    // followed by a layernorm so the layer's input requires a gradient as it does inside a network
    // (the importer applies autograd's rule itself), then `spec`, which reads that layer ("x").
    Layer infer_with_spec(Json spec, const Shape& shape, bool tokens = false) {
        Json network{{"name", "onnx-node"}, {"input", Json::object()}, {"layers", Json::array()}};
        if (tokens) {
            network["input"]["tokens"] = shape.at(0);
        } else {
            network["input"]["shape"] = shape;
            if (!spec.contains("inputs")) spec["inputs"] = Json::array({"x"});
            network["layers"].push_back(Json{{"name", "x"}, {"kind", "layernorm"}});
        }
        network["layers"].push_back(std::move(spec));
        try {
            Network n = parse_network(network, file_);
            return n.layers.back();
        } catch (const InputError& e) {
            fail_node(e.message());
        }
    }

    // Adds a layer for `node`'s output `output` reading `inputs`; checks its shape against ONNX's.
    int add_layer(const onnx::NodeProto& node, Layer layer, const std::vector<int>& inputs, int output = 0,
                  bool check_shape = true) {
        const std::string& out_name = node.output(output);
        Shape expected = per_sample(output_dims(out_name), out_name);
        if (check_shape && layer.output_shape != expected)
            fail_node("dnnplan infers the output shape " + shape_string(layer.output_shape) +
                      " but ONNX shape inference gives " + shape_string(expected) +
                      " (per sample); this attribute combination is not supported");
        layer.output_shape = expected;
        layer.output_elements = product(expected);
        std::string base = node.name().empty() ? out_name : node.name();
        if (node.output_size() > 1 && output > 0) base += ":" + std::to_string(output);
        if (base.empty()) base = node.op_type() + "_" + std::to_string(node_index_);
        std::string name = base;
        for (int k = 1; !used_names_.insert(name).second; ++k) name = base + "#" + std::to_string(k);
        layer.name = name;
        layer.inputs = inputs;
        layer.spec_pointer = node_location();
        // Autograd computes an input gradient only for inputs that depend on parameters.
        bool any_requires_grad = false;
        for (int i : inputs) any_requires_grad = any_requires_grad || requires_grad_[i];
        if (!any_requires_grad) layer.bwd_input_flops = 0;
        requires_grad_.push_back(any_requires_grad || layer.params > 0);
        network_.layers.push_back(std::move(layer));
        int index = static_cast<int>(network_.layers.size()) - 1;
        Value v = inferred_.count(out_name) ? inferred_.at(out_name) : Value{};
        v.activation = true;
        v.layer = index;
        values_[out_name] = v;
        return index;
    }

    // A layer the JSON spec has no kind for: elementwise (IR kind activation, named by its op) with
    // the given per-output-element costs, or zero-cost data movement when both are 0.
    Layer elementwise(const std::string& function, std::int64_t elements, std::int64_t forward, std::int64_t backward) {
        Layer l;
        l.kind = LayerKind::activation;
        l.attrs.function = function;
        l.fwd_flops = mul(forward, elements);
        l.bwd_input_flops = mul(backward, elements);
        return l;
    }

    // Checked arithmetic for counts; an overflow is an error at the node.
    std::int64_t mul(std::int64_t a, std::int64_t b) const { return or_fail(checked_mul(a, b)); }
    std::int64_t add(std::int64_t a, std::int64_t b) const { return or_fail(checked_add(a, b)); }
    std::int64_t or_fail(std::optional<std::int64_t> r) const {
        if (!r) fail_node(kCountOverflow);
        return *r;
    }

    // ---- attributes ----------------------------------------------------------------------------
    std::int64_t int_attr(const onnx::NodeProto& node, const std::string& name, std::int64_t fallback) const {
        const auto* a = attribute(node, name);
        return a ? a->i() : fallback;
    }
    float float_attr(const onnx::NodeProto& node, const std::string& name, float fallback) const {
        const auto* a = attribute(node, name);
        return a ? a->f() : fallback;
    }
    std::string string_attr(const onnx::NodeProto& node, const std::string& name, const std::string& fallback) const {
        const auto* a = attribute(node, name);
        return a ? a->s() : fallback;
    }
    std::vector<std::int64_t> ints_attr(const onnx::NodeProto& node, const std::string& name, std::size_t count,
                                        std::int64_t fallback) const {
        const auto* a = attribute(node, name);
        if (!a || a->ints_size() == 0) return std::vector<std::int64_t>(count, fallback);
        std::vector<std::int64_t> v(a->ints().begin(), a->ints().end());
        if (v.size() != count)
            fail_node("attribute \"" + name + "\" has " + std::to_string(v.size()) + " values, expected " +
                      std::to_string(count));
        return v;
    }

    // Window geometry of Conv and pooling along each spatial axis: the symmetric padding to give the
    // JSON layer, and how much to grow its input where ONNX pads unevenly (the output size and the
    // FLOPs depend only on the total padding, so padding the input by the total is exact).
    struct Window {
        std::vector<std::int64_t> kernel, stride, dilation, pad, grow;
    };
    Window window(const onnx::NodeProto& node, const Shape& spatial, std::vector<std::int64_t> kernel) const {
        std::size_t n = spatial.size();
        Window w;
        w.kernel = std::move(kernel);
        w.stride = ints_attr(node, "strides", n, 1);
        w.dilation = ints_attr(node, "dilations", n, 1);
        std::vector<std::int64_t> pads = ints_attr(node, "pads", 2 * n, 0);
        std::string auto_pad = string_attr(node, "auto_pad", "NOTSET");
        for (std::size_t i = 0; i < n; ++i) {
            if (w.stride[i] < 1 || w.dilation[i] < 1 || w.kernel[i] < 1)
                fail_node("kernel, strides and dilations must be positive");
            if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
                std::int64_t out = (spatial[i] + w.stride[i] - 1) / w.stride[i];
                std::int64_t total = std::max<std::int64_t>(
                    0, add(mul(out - 1, w.stride[i]), mul(w.kernel[i] - 1, w.dilation[i])) + 1 - spatial[i]);
                pads[i] = total / 2;
                pads[i + n] = total - total / 2;
            } else if (auto_pad == "VALID") {
                pads[i] = pads[i + n] = 0;
            } else if (auto_pad != "NOTSET") {
                fail_node("unknown auto_pad \"" + auto_pad + "\"");
            }
            if (pads[i] < 0 || pads[i + n] < 0) fail_node("negative pads are not supported");
            if (pads[i] == pads[i + n]) {
                w.pad.push_back(pads[i]);
                w.grow.push_back(0);
            } else {
                w.pad.push_back(0);
                w.grow.push_back(add(pads[i], pads[i + n]));
            }
        }
        return w;
    }

    // The 2-D view of an N-d tensor [C, *spatial] for the JSON conv and pooling layers: the last two
    // spatial axes (1-D gets height 1); leading spatial axes (3-D and up) are handled by the caller.
    static std::pair<std::int64_t, std::int64_t> hw(const std::vector<std::int64_t>& v, std::int64_t one) {
        if (v.size() == 1) return {one, v[0]};
        return {v[v.size() - 2], v[v.size() - 1]};
    }

    // A Window on the 2-D view: the last two axes' geometry, and the product of the leading axes'
    // kernel sizes (a 3-D window folds its depth into the channels or the window length).
    struct PlanarWindow {
        std::int64_t kh, kw, sh, sw, dh, dw, ph, pw, gh, gw, ih, iw, folded_kernel = 1;
    };
    PlanarWindow planar(const Window& w, const Shape& spatial) const {
        PlanarWindow p{};
        p.folded_kernel = 1;
        for (std::size_t i = 0; i + 2 < spatial.size(); ++i) p.folded_kernel = mul(p.folded_kernel, w.kernel[i]);
        std::tie(p.kh, p.kw) = hw(w.kernel, 1);
        std::tie(p.sh, p.sw) = hw(w.stride, 1);
        std::tie(p.dh, p.dw) = hw(w.dilation, 1);
        std::tie(p.ph, p.pw) = hw(w.pad, 0);
        std::tie(p.gh, p.gw) = hw(w.grow, 0);
        std::tie(p.ih, p.iw) = hw(spatial, 1);
        return p;
    }

    // The node's ONNX output shape after checking that its last two axes are the 2-D layer's, and
    // the number of 2-D planes (the leading spatial axes) each costing one 2-D layer.
    std::pair<Shape, std::int64_t> planes_of(const onnx::NodeProto& node, const Layer& layer) const {
        Shape out = per_sample(output_dims(node.output(0)), node.output(0));
        std::size_t tail = std::min<std::size_t>(2, out.size() - 1);
        if (Shape(out.end() - tail, out.end()) != Shape(layer.output_shape.end() - tail, layer.output_shape.end()))
            fail_node("dnnplan infers the output shape " + shape_string(layer.output_shape) +
                      " but ONNX shape inference gives " + shape_string(out));
        std::int64_t planes = product(Shape(out.begin() + 1, out.end() - tail));
        return {out, planes};
    }

    // ---- operators -----------------------------------------------------------------------------
    // ---- fused activations -----------------------------------------------------------------------
    // Exporters write GELU (before opset 20) as x * 0.5 * (1 + erf(x / sqrt 2)), i.e.
    // Div -> Erf -> Add -> Mul(x, .) -> Mul(., 0.5), and SiLU as Mul(x, Sigmoid(x)). Each chain whose
    // inner results feed nothing else becomes one gelu or silu layer, with the JSON costs of those.
    struct Fused {
        std::string function;  // on the chain's last node: the activation; empty on inner nodes
        std::string input;     // the chain's input tensor x
    };
    void find_fused_activations() {
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

    void fused_activation(const onnx::NodeProto& node, const Fused& fused) {
        const Value& x = value(fused.input);
        if (!x.activation) {
            Value v = inferred_.count(node.output(0)) ? inferred_.at(node.output(0)) : Value{};
            v.sources = x.sources;
            values_[node.output(0)] = v;
            return;
        }
        const Shape& in = in_shape(x.layer);
        if (in.empty()) fail_node(fused.function + " of a per-sample scalar is not supported");
        Layer layer = infer_with_spec(Json{{"kind", fused.function}}, in);
        add_layer(node, std::move(layer), {x.layer});
    }

    void import_node(const onnx::NodeProto& node) {
        if (node.output_size() == 0) return;  // nothing reads what it does
        OpClass cls = classify(node);
        if (cls == OpClass::constant) return constant_node(node);
        bool any_activation = false;
        for (int i = 0; i < node.input_size(); ++i)
            if (!node.input(i).empty() && value(node.input(i)).activation) any_activation = true;
        // Shape-only subgraphs fold: a node of constants (or reading only a shape) has no layer.
        if (!any_activation || cls == OpClass::shape) return fold(node);
        switch (cls) {
            case OpClass::conv:
                return conv(node);
            case OpClass::conv_transpose:
                return conv_transpose(node);
            case OpClass::gemm:
                return gemm(node);
            case OpClass::matmul:
                return matmul(node);
            case OpClass::binary:
                return binary(node);
            case OpClass::activation:
                return activation(node);
            case OpClass::softmax:
                return softmax(node);
            case OpClass::pool:
                return pool(node);
            case OpClass::global_pool:
                return global_pool(node);
            case OpClass::batchnorm:
            case OpClass::instancenorm:
                return batchnorm(node);
            case OpClass::layernorm:
                return layernorm(node);
            case OpClass::concat:
                return concat(node);
            case OpClass::flatten:
                return flatten(node);
            case OpClass::view:
                return view(node);
            case OpClass::movement:
                return movement(node);
            case OpClass::dropout:
                return dropout(node);
            case OpClass::alias:
                return alias(node);
            case OpClass::gather:
                return gather(node);
            case OpClass::resize:
                return resize(node);
            case OpClass::unary_math:
                return unary_math(node);
            case OpClass::reduce:
                return reduce(node);
            case OpClass::unknown:
                return unknown(node);
            case OpClass::shape:
            case OpClass::constant:
                break;
        }
    }

    void constant_node(const onnx::NodeProto& node) {
        for (const auto& out : node.output()) {
            Value v = inferred_.count(out) ? inferred_.at(out) : Value{};
            if (const auto* a = attribute(node, "value"); a && a->has_t()) {
                v.tensor = &a->t();
                v.has_dims = true;
                v.dims.assign(a->t().dims().begin(), a->t().dims().end());
            }
            values_[out] = v;
        }
    }

    void fold(const onnx::NodeProto& node) {
        std::set<std::string> sources;
        if (classify(node) != OpClass::shape)
            for (int i = 0; i < node.input_size(); ++i)
                if (!node.input(i).empty()) {
                    const Value& in = value(node.input(i));
                    sources.insert(in.sources.begin(), in.sources.end());
                }
        for (const auto& out : node.output()) {
            if (out.empty()) continue;
            Value v = inferred_.count(out) ? inferred_.at(out) : Value{};
            v.sources = sources;
            values_[out] = v;
        }
    }

    void conv(const onnx::NodeProto& node) {
        int x = activation_at(node, 0, "the data");
        const Value& weight = constant_at(node, 1, "the weight");
        const Shape& in = in_shape(x);
        if (in.size() < 2 || weight.dims.size() != in.size() + 1)
            fail_node("weight " + shape_string(weight.dims) + " does not fit the per-sample input " + shape_string(in));
        std::int64_t groups = int_attr(node, "group", 1);
        Shape spatial(in.begin() + 1, in.end());
        Window w = window(node, spatial, std::vector<std::int64_t>(weight.dims.begin() + 2, weight.dims.end()));
        // Leading spatial axes of a 3-D conv fold into the channels: a [Cin*kd, H, W] conv2d has the
        // weights of the [Cin, D, H, W] conv3d, and each of its OD output planes costs one conv2d.
        const PlanarWindow p = planar(w, spatial);
        Json spec{{"kind", "conv2d"},
                  {"out_channels", weight.dims[0]},
                  {"kernel", {p.kh, p.kw}},
                  {"stride", {p.sh, p.sw}},
                  {"padding", {p.ph, p.pw}},
                  {"dilation", {p.dh, p.dw}},
                  {"groups", groups},
                  {"bias", present(node, 2)}};
        Layer layer = infer_with_spec(spec, {mul(in[0], p.folded_kernel), add(p.ih, p.gh), add(p.iw, p.gw)});
        auto [out, planes] = planes_of(node, layer);
        layer.fwd_flops = mul(layer.fwd_flops, planes);
        layer.bwd_input_flops = mul(layer.bwd_input_flops, planes);
        layer.bwd_weight_flops = mul(layer.bwd_weight_flops, planes);
        layer.output_shape = out;
        layer.params = claim(node, {1, 2});
        add_layer(node, std::move(layer), {x});
    }

    void conv_transpose(const onnx::NodeProto& node) {
        int x = activation_at(node, 0, "the data");
        const Value& weight = constant_at(node, 1, "the weight");
        const Shape& in = in_shape(x);
        if (in.size() != 3 && in.size() != 2)
            fail_node("only 1-D and 2-D ConvTranspose are supported, got the per-sample input " + shape_string(in));
        if (weight.dims.size() != in.size() + 1)
            fail_node("weight " + shape_string(weight.dims) + " does not fit the per-sample input " + shape_string(in));
        std::int64_t groups = int_attr(node, "group", 1);
        Shape spatial(in.begin() + 1, in.end());
        Window w = window(node, spatial, std::vector<std::int64_t>(weight.dims.begin() + 2, weight.dims.end()));
        for (auto g : w.grow)
            if (g) fail_node("uneven ConvTranspose padding is not supported");
        auto op = ints_attr(node, "output_padding", spatial.size(), 0);
        auto [kh, kw] = hw(w.kernel, 1);
        auto [sh, sw] = hw(w.stride, 1);
        auto [dh, dw] = hw(w.dilation, 1);
        auto [ph, pw] = hw(w.pad, 0);
        auto [oph, opw] = hw(op, 0);
        auto [ih, iw] = hw(spatial, 1);
        Json spec{{"kind", "conv_transpose2d"}, {"out_channels", weight.dims[1] * groups},
                  {"kernel", {kh, kw}},         {"stride", {sh, sw}},
                  {"padding", {ph, pw}},        {"output_padding", {oph, opw}},
                  {"dilation", {dh, dw}},       {"groups", groups},
                  {"bias", present(node, 2)}};
        Layer layer = infer_with_spec(spec, {in[0], ih, iw});
        if (in.size() == 2) layer.output_shape = {layer.output_shape[0], layer.output_shape[2]};
        layer.params = claim(node, {1, 2});
        add_layer(node, std::move(layer), {x});
    }

    // A linear layer on [F] or [rows..., F] (rows folded into one sequence axis for the JSON layer).
    Layer linear(const Shape& in, std::int64_t out_features, bool bias) {
        if (in.empty()) fail_node("a linear layer needs an input with at least one dimension");
        Shape view = in.size() == 1 ? in : Shape{product(Shape(in.begin(), in.end() - 1)), in.back()};
        return infer_with_spec(Json{{"kind", "linear"}, {"out_features", out_features}, {"bias", bias}}, view);
    }

    // A product of two activations (attention scores): 2 FLOPs per multiply-add, both operands get
    // a gradient of the same cost, no weight.
    void activation_matmul(const onnx::NodeProto& node, const std::vector<int>& inputs, std::int64_t k,
                           std::int64_t params) {
        Shape out = per_sample(output_dims(node.output(0)), node.output(0));
        std::int64_t elements = product(out);
        Layer layer =
            elementwise("matmul", elements, mul(2, k), mul(mul(2, k), static_cast<std::int64_t>(inputs.size())));
        layer.params = params;
        if (params > 0) layer.bwd_weight_flops = mul(mul(2, k), elements);
        add_layer(node, std::move(layer), inputs, 0, false);
    }

    void gemm(const onnx::NodeProto& node) {
        if (int_attr(node, "transA", 0) != 0) fail_node("Gemm with transA=1 is not supported");
        int x = activation_at(node, 0, "A");
        const Shape& in = in_shape(x);
        if (present(node, 1) && value(node.input(1)).activation) {
            return activation_matmul(node, activation_inputs(node), in.empty() ? 1 : in.back(), claim(node, {2}));
        }
        const Value& b = constant_at(node, 1, "B");
        if (b.dims.size() != 2) fail_node("B must be a matrix, got " + shape_string(b.dims));
        std::int64_t out_features = int_attr(node, "transB", 0) ? b.dims[0] : b.dims[1];
        bool bias = present(node, 2) && float_attr(node, "beta", 1.0f) != 0.0f;
        if (bias && value(node.input(2)).activation)
            fail_node("a bias C computed from the graph input is not supported");
        Layer layer = linear(in, out_features, bias);
        layer.params = claim(node, {1, bias ? 2 : 1});
        add_layer(node, std::move(layer), {x});
    }

    void matmul(const onnx::NodeProto& node) {
        if (!present(node, 0) || !present(node, 1)) fail_node("MatMul needs two inputs");
        const Value& a = value(node.input(0));
        const Value& b = value(node.input(1));
        if (a.activation && !b.activation && b.has_dims && b.dims.size() == 2) {
            constant_at(node, 1, "the weight");
            Layer layer = linear(in_shape(a.layer), b.dims[1], false);
            layer.params = claim(node, {1});
            return void(add_layer(node, std::move(layer), {a.layer}));
        }
        std::int64_t k = 1;
        if (a.activation)
            k = in_shape(a.layer).empty() ? 1 : in_shape(a.layer).back();
        else if (a.has_dims && !a.dims.empty())
            k = a.dims.back();
        activation_matmul(node, activation_inputs(node), k, claim(node, {0, 1}));
    }

    void binary(const onnx::NodeProto& node) {
        const std::string& op = node.op_type();
        std::vector<int> inputs = activation_inputs(node);
        bool all_activations = static_cast<int>(inputs.size()) == node.input_size();
        bool same_shape = true;
        for (int i : inputs) same_shape = same_shape && in_shape(i) == in_shape(inputs[0]);
        Shape out = per_sample(output_dims(node.output(0)), node.output(0));
        if ((op == "Add" || op == "Sub" || op == "Sum") && all_activations && inputs.size() >= 2 && same_shape &&
            in_shape(inputs[0]) == out && !out.empty()) {
            Json refs = Json::array();
            for (std::size_t i = 0; i < inputs.size(); ++i) refs.push_back("x");
            Layer layer = infer_with_spec(Json{{"kind", "add"}, {"inputs", refs}}, out);
            return void(add_layer(node, std::move(layer), inputs));
        }
        // Broadcast or with a constant: one FLOP per output element and operand pair; Add and Sub
        // pass the gradient through like the JSON add, the others cost one FLOP per element for each
        // operand that needs a gradient.
        std::int64_t elements = product(out);
        std::int64_t operands = node.input_size();
        bool pass_through = op == "Add" || op == "Sub" || op == "Sum";
        Layer layer = elementwise(lower(op), elements, std::max<std::int64_t>(1, operands - 1),
                                  pass_through ? 0 : static_cast<std::int64_t>(inputs.size()));
        layer.params = 0;
        for (int i = 0; i < node.input_size(); ++i) {
            // A float initializer operand (a learned scale, bias or position table) is a parameter.
            if (!present(node, i) || value(node.input(i)).activation || !values_.count(node.input(i)) ||
                !values_.at(node.input(i)).tensor || !values_.at(node.input(i)).sources.count(node.input(i)))
                continue;
            layer.params += claim(node, {i});
        }
        if (layer.params > 0) layer.bwd_weight_flops = elements;
        add_layer(node, std::move(layer), inputs, 0, false);
    }

    void activation(const onnx::NodeProto& node) {
        const std::string& op = node.op_type();
        int x = activation_at(node, 0, "the data");
        const Shape& in = in_shape(x);
        static const std::map<std::string, std::string> json_kinds = {
            {"Relu", "relu"}, {"LeakyRelu", "leaky_relu"}, {"Elu", "elu"},   {"Sigmoid", "sigmoid"},
            {"Tanh", "tanh"}, {"HardSwish", "hardswish"},  {"Gelu", "gelu"},
        };
        if (auto it = json_kinds.find(op); it != json_kinds.end() && !in.empty()) {
            Layer layer = infer_with_spec(Json{{"kind", it->second}}, in);
            return void(add_layer(node, std::move(layer), {x}));
        }
        std::int64_t elements = product(in);
        Layer layer;
        if (op == "Clip") {
            layer = elementwise("clip", elements, kClipForward, kClipBackward);
        } else if (op == "HardSigmoid") {
            layer = elementwise("hardsigmoid", elements, kHardSigmoidForward, kHardSigmoidBackward);
        } else if (op == "PRelu") {
            layer = elementwise("prelu", elements, kPReluForward, kPReluBackward);
            layer.params = claim(node, {1});
            if (layer.params > 0) layer.bwd_weight_flops = elements;
        } else {
            // A rank-0 per-sample tensor (a scalar per sample) has no JSON layer; one FLOP per element.
            layer = elementwise(lower(op), elements, 1, 1);
        }
        layer.output_shape = in;
        add_layer(node, std::move(layer), {x});
    }

    void unary_math(const onnx::NodeProto& node) {
        int x = activation_at(node, 0, "the data");
        Layer layer = elementwise(lower(node.op_type()), product(in_shape(x)), 1, 1);
        layer.output_shape = in_shape(x);
        add_layer(node, std::move(layer), {x});
    }

    void reduce(const onnx::NodeProto& node) {
        // One FLOP per input element forward; the gradient broadcasts back to every input element.
        int x = activation_at(node, 0, "the data");
        std::int64_t elements = product(in_shape(x));
        Layer layer = elementwise(lower(node.op_type()), 1, elements, elements);
        add_layer(node, std::move(layer), {x}, 0, false);
    }

    std::int64_t sample_axis(std::int64_t axis, std::size_t full_rank) const {
        std::int64_t r = static_cast<std::int64_t>(full_rank);
        std::int64_t a = axis < 0 ? axis + r : axis;
        if (a < 0 || a >= r)
            fail_node("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(r));
        if (a == 0) fail_node("axis 0 is the batch dimension; operators across the batch are not supported");
        return a - 1;
    }

    void softmax(const onnx::NodeProto& node) {
        int x = activation_at(node, 0, "the data");
        const Shape& in = in_shape(x);
        std::int64_t axis = sample_axis(int_attr(node, "axis", opset_ >= 13 ? -1 : 1), in.size() + 1);
        Layer layer = infer_with_spec(Json{{"kind", "softmax"}, {"axis", axis}}, in);
        add_layer(node, std::move(layer), {x});
    }

    void pool(const onnx::NodeProto& node) {
        bool is_max = node.op_type() == "MaxPool";
        int x = activation_at(node, 0, "the data");
        const Shape& in = in_shape(x);
        if (in.size() < 2) fail_node("pooling needs a [C, spatial...] input, got " + shape_string(in));
        Shape spatial(in.begin() + 1, in.end());
        const auto* k = attribute(node, "kernel_shape");
        if (!k || static_cast<std::size_t>(k->ints_size()) != spatial.size())
            fail_node("kernel_shape must give one size per spatial axis");
        Window w = window(node, spatial, std::vector<std::int64_t>(k->ints().begin(), k->ints().end()));
        // Leading axes of a 3-D pool: every output plane costs one 2-D pool, each of whose windows is
        // kd times longer.
        const PlanarWindow p = planar(w, spatial);
        Json spec{{"kind", is_max ? "maxpool2d" : "avgpool2d"},
                  {"kernel", {p.kh, p.kw}},
                  {"stride", {p.sh, p.sw}},
                  {"padding", {p.ph, p.pw}},
                  {"ceil_mode", int_attr(node, "ceil_mode", 0) != 0}};
        if (is_max)
            spec["dilation"] = {p.dh, p.dw};
        else if (p.dh != 1 || p.dw != 1)
            fail_node("dilated average pooling is not supported");
        Layer layer = infer_with_spec(spec, {in[0], p.ih + p.gh, p.iw + p.gw});
        auto [out, planes] = planes_of(node, layer);
        layer.fwd_flops = mul(layer.fwd_flops, mul(planes, p.folded_kernel));
        layer.bwd_input_flops = mul(layer.bwd_input_flops, mul(planes, is_max ? 1 : p.folded_kernel));
        layer.output_shape = out;
        add_layer(node, std::move(layer), {x});
    }

    void global_pool(const onnx::NodeProto& node) {
        int x = activation_at(node, 0, "the data");
        const Shape& in = in_shape(x);
        if (in.size() < 2) fail_node("global pooling needs a [C, spatial...] input, got " + shape_string(in));
        // Every spatial position is in the one window: the [C, positions, 1] view has the same counts.
        std::int64_t positions = product(in, 1);
        Json spec = node.op_type() == "GlobalMaxPool"
                        ? Json{{"kind", "maxpool2d"}, {"kernel", {positions, 1}}, {"stride", {positions, 1}}}
                        : Json{{"kind", "global_avgpool2d"}};
        Layer layer = infer_with_spec(spec, {in[0], positions, 1});
        layer.output_shape = per_sample(output_dims(node.output(0)), node.output(0));
        add_layer(node, std::move(layer), {x});
    }

    void batchnorm(const onnx::NodeProto& node) {
        int x = activation_at(node, 0, "the data");
        const Shape& in = in_shape(x);
        if (in.empty()) fail_node("normalization needs a [C, ...] input");
        // The same per-element costs for every rank: view [C, spatial...] as [C, positions, 1].
        Layer layer = infer_with_spec(Json{{"kind", "batchnorm2d"}}, {in[0], product(in, 1), 1});
        layer.output_shape = in;
        layer.params = claim(node, {1, 2});  // scale and bias; running mean and variance are not trained
        add_layer(node, std::move(layer), {x});
        // Training-mode outputs (running and saved statistics) are not activations.
        for (int i = 1; i < node.output_size(); ++i)
            if (!node.output(i).empty()) values_[node.output(i)] = Value{};
    }

    void layernorm(const onnx::NodeProto& node) {
        int x = activation_at(node, 0, "the data");
        const Shape& in = in_shape(x);
        std::int64_t axis = sample_axis(int_attr(node, "axis", -1), in.size() + 1);
        // Normalized over the trailing axes: the [rows, features] view has the same counts.
        std::int64_t features = product(in, static_cast<std::size_t>(axis));
        std::int64_t rows = product(Shape(in.begin(), in.begin() + axis));
        Layer layer = infer_with_spec(Json{{"kind", "layernorm"}}, rows == 1 ? Shape{features} : Shape{rows, features});
        layer.output_shape = in;
        layer.params = claim(node, {1, 2});
        add_layer(node, std::move(layer), {x});
        for (int i = 1; i < node.output_size(); ++i)
            if (!node.output(i).empty()) values_[node.output(i)] = Value{};
    }

    void concat(const onnx::NodeProto& node) {
        std::vector<int> inputs = activation_inputs(node);
        Shape out = per_sample(output_dims(node.output(0)), node.output(0));
        std::int64_t axis = sample_axis(int_attr(node, "axis", 0), out.size() + 1);
        // Concatenation moves data only (no FLOPs), as the JSON concat.
        Layer layer;
        layer.kind = LayerKind::concat;
        layer.attrs.axis = axis;
        add_layer(node, std::move(layer), inputs, 0, false);
    }

    void flatten(const onnx::NodeProto& node) {
        int x = activation_at(node, 0, "the data");
        const Shape& in = in_shape(x);
        std::int64_t axis = int_attr(node, "axis", 1);
        if (axis < 0) axis += static_cast<std::int64_t>(in.size()) + 1;
        if (axis == 1 && !in.empty()) return void(add_layer(node, infer_with_spec(Json{{"kind", "flatten"}}, in), {x}));
        return view(node);
    }

    // Same elements, new shape (Reshape, Transpose, Squeeze, Unsqueeze, Flatten not at axis 1).
    void view(const onnx::NodeProto& node) {
        int x = activation_at(node, 0, "the data");
        if (node.op_type() == "Transpose") {
            const auto* perm = attribute(node, "perm");
            if (perm && perm->ints_size() > 0 && perm->ints(0) != 0)
                fail_node("the permutation moves the batch dimension");
        }
        Shape out = per_sample(output_dims(node.output(0)), node.output(0));
        if (out.empty() || in_shape(x).empty()) {
            Layer layer;
            layer.kind = LayerKind::reshape;
            layer.attrs.target_shape = out;
            return void(add_layer(node, std::move(layer), {x}, 0, false));
        }
        Layer layer = infer_with_spec(Json{{"kind", "reshape"}, {"shape", out}}, in_shape(x));
        add_layer(node, std::move(layer), {x});
    }

    // Pad, Slice, Split, Expand, Tile, Gather of an activation: data movement without FLOPs; one
    // layer per output, shaped by ONNX's inference.
    void movement(const onnx::NodeProto& node) {
        int x = activation_at(node, 0, "the data");
        for (int i = 0; i < node.output_size(); ++i) {
            if (node.output(i).empty()) continue;
            Layer layer = elementwise(lower(node.op_type()), 0, 0, 0);
            add_layer(node, std::move(layer), {x}, i, false);
        }
    }

    void dropout(const onnx::NodeProto& node) {
        int x = activation_at(node, 0, "the data");
        double p = float_attr(node, "ratio", 0.5f);
        if (present(node, 1)) {
            const Value& ratio = value(node.input(1));
            if (const auto* t = ratio.tensor; t && t->data_type() == onnx::TensorProto::FLOAT) {
                if (t->float_data_size() == 1)
                    p = t->float_data(0);
                else if (t->raw_data().size() == sizeof(float)) {
                    float f;
                    std::memcpy(&f, t->raw_data().data(), sizeof f);
                    p = f;
                }
            }
        }
        if (!(p >= 0.0 && p <= 1.0)) fail_node("dropout ratio " + std::to_string(p) + " is outside [0, 1]");
        const Shape& in = in_shape(x);
        if (in.empty()) fail_node("dropout of a per-sample scalar is not supported");
        Layer layer = infer_with_spec(Json{{"kind", "dropout"}, {"p", p}}, in);
        add_layer(node, std::move(layer), {x});
        // The mask output, if read, stands for the dropout layer.
        for (int i = 1; i < node.output_size(); ++i)
            if (!node.output(i).empty()) values_[node.output(i)] = values_.at(node.output(0));
    }

    void alias(const onnx::NodeProto& node) {
        Value v = value(node.input(0));
        values_[node.output(0)] = v;
    }

    void gather(const onnx::NodeProto& node) {
        if (!present(node, 0) || !present(node, 1)) fail_node("Gather needs data and indices");
        const Value& data = value(node.input(0));
        const Value& indices = value(node.input(1));
        if (data.activation) return movement(node);
        // A table of rows indexed by token ids: an embedding.
        const Value& table = constant_at(node, 0, "the embedding table");
        if (table.dims.size() != 2 || int_attr(node, "axis", 0) != 0)
            fail_node("only Gather of rows of a 2-D table (an embedding) is supported for a constant table");
        std::int64_t tokens = product(in_shape(indices.layer));
        Layer layer = infer_with_spec(
            Json{{"kind", "embedding"}, {"num_embeddings", table.dims[0]}, {"dim", table.dims[1]}}, {tokens}, true);
        layer.params = claim(node, {0});
        add_layer(node, std::move(layer), {indices.layer}, 0, false);
    }

    void resize(const onnx::NodeProto& node) {
        int x = activation_at(node, 0, "the data");
        const Shape& in = in_shape(x);
        Shape out = per_sample(output_dims(node.output(0)), node.output(0));
        std::string mode = string_attr(node, "mode", "nearest");
        bool linear = mode == "linear" || mode == "bilinear";
        if (!linear && mode != "nearest") fail_node("Resize mode \"" + mode + "\" is not supported");
        if (in.size() == 3 && out.size() == 3 && out[0] == in[0] && out[1] % in[1] == 0 &&
            out[1] / in[1] == out[2] / in[2] && out[2] % in[2] == 0) {
            Layer layer = infer_with_spec(
                Json{{"kind", "upsample"}, {"scale", out[1] / in[1]}, {"mode", linear ? "bilinear" : "nearest"}}, in);
            return void(add_layer(node, std::move(layer), {x}));
        }
        // Any other scale: the JSON upsample's per-output-element costs.
        std::int64_t outputs = product(out);
        Layer layer;
        layer.kind = LayerKind::upsample;
        layer.attrs.mode = linear ? "bilinear" : "nearest";
        layer.fwd_flops = linear ? mul(kBilinearPerOutput, outputs) : 0;
        layer.bwd_input_flops = linear ? mul(kBilinearPerOutput, outputs) : outputs;
        add_layer(node, std::move(layer), {x}, 0, false);
    }

    void unknown(const onnx::NodeProto& node) {
        // --allow-unknown-ops: elementwise, one FLOP per output element each way, no parameters.
        std::vector<int> inputs = activation_inputs(node);
        std::string type = (node.domain().empty() ? "" : node.domain() + ".") + node.op_type();
        for (int i = 0; i < node.output_size(); ++i) {
            if (node.output(i).empty()) continue;
            Shape out = per_sample(output_dims(node.output(i)), node.output(i));
            Layer layer = elementwise("unknown:" + type, product(out), 1, 1);
            add_layer(node, std::move(layer), inputs, i, false);
        }
    }

    void finish() {
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
    std::int64_t default_batch() const { return static_batch_ ? batch_ : 1; }

    onnx::ModelProto& model_;
    std::string file_;
    LoadOptions options_;
    Network network_;
    int opset_ = 0;
    int node_index_ = 0;
    std::int64_t batch_ = 1;
    bool static_batch_ = false;
    std::string unknown_summary_;
    std::unordered_map<std::string, Value> inferred_;  // ONNX's inferred types by tensor name
    std::unordered_map<std::string, Value> values_;    // tensors seen so far
    std::unordered_map<std::string, std::int64_t> initializer_elements_;
    std::set<std::string> claimed_;
    std::set<std::string> used_names_;
    std::vector<bool> requires_grad_;
    std::map<int, Fused> fused_;                              // node index -> its part in a fused activation
    std::unordered_map<std::string, Shape> inferred_shapes_;  // while folding shape computations
};

}  // namespace

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
    namespace fs = std::filesystem;
    std::error_code ec;
    auto status = fs::status(path, ec);
    if (ec || !fs::exists(status))
        throw InputError(path, "",
                         ec && ec != std::errc::no_such_file_or_directory ? "cannot be read: " + ec.message()
                                                                          : std::string("no such file"));
    if (fs::is_directory(status)) throw InputError(path, "", "is a directory, expected a file");
    if (!fs::is_regular_file(status)) throw InputError(path, "", "is not a regular file");
    auto size = fs::file_size(path, ec);
    if (ec) throw InputError(path, "", "cannot be read: " + ec.message());
    if (static_cast<std::int64_t>(size) > kMaxOnnxFileBytes)
        throw InputError(path, "", "is larger than 2 GiB, protobuf's limit for one ONNX message");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(path, "", "cannot be opened for reading");
    std::string bytes(size, '\0');
    if (!in.read(bytes.data(), static_cast<std::streamsize>(size))) throw InputError(path, "", "read error");
    return parse_onnx_model(bytes, path, options);
}

}  // namespace dnnplan::networks
