// ONNX's own shape inference (in a forked child: libonnx crashes on some malformed graphs), with
// the importer's typing of unknown operators' outputs and its constant folding of the shape
// computations libonnx's data propagation leaves open.
#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

#include "networks/onnx/importer.hpp"

namespace dnnplan::networks::onnx_import {

namespace {
// "Nx3xHxW" for a graph input's shape: fixed sizes as numbers, symbolic ones by their names.
std::string shape_hint(const onnx::TensorShapeProto& shape) {
    std::string out;
    for (int d = 0; d < shape.dim_size(); ++d) {
        const auto& dim = shape.dim(d);
        out += d ? "x" : "";
        out += dim.has_dim_value() && dim.dim_value() > 0 ? std::to_string(dim.dim_value())
               : d == 0                                   ? std::string("N")
               : dim.has_dim_param() && !dim.dim_param().empty() ? "<" + dim.dim_param() + ">"
                                                                 : std::string("<?>");
    }
    return out;
}
}  // namespace

// ONNX's own shape inference fills value_info; a symbolic batch is pinned to kProbeBatch first.
void Importer::infer_shapes() {
    auto* graph = model_.mutable_graph();
    std::set<std::string> initializers;
    for (const auto& t : graph->initializer()) initializers.insert(t.name());
    apply_input_shapes(initializers);
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
                           ": only the batch dimension (0) may be dynamic; fix the others with --input-shape " +
                           input.name() + "=" + shape_hint(*shape));
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


// --input-shape NAME=DxDx...: the given sizes replace the input's symbolic dimensions, as
// onnxruntime's and TensorRT's shape options do. Dimension 0 is the batch: a symbolic batch stays
// dynamic (the planner's --batch sets it), a fixed one must be given as it is; every fixed size
// must match, so a shape can only complete a model, never change it.
void Importer::apply_input_shapes(const std::set<std::string>& initializers) {
    auto* graph = model_.mutable_graph();
    std::string inputs;
    for (const auto& input : graph->input())
        if (!initializers.count(input.name())) inputs += (inputs.empty() ? "\"" : ", \"") + input.name() + "\"";
    for (const auto& [name, dims] : options_.input_shapes) {
        // A named copy: clang before 16 cannot capture a structured binding (the fuzz build's compiler).
        const std::string& wanted = name;
        auto it = std::find_if(graph->mutable_input()->begin(), graph->mutable_input()->end(),
                               [&](const onnx::ValueInfoProto& v) { return v.name() == wanted; });
        if (it == graph->mutable_input()->end() || initializers.count(name))
            throw InputError(file_, "", "--input-shape: the model has no graph input \"" + name + "\" (its inputs: " +
                                            inputs + ")");
        if (!it->type().has_tensor_type() || !it->type().tensor_type().has_shape()) continue;  // refused below
        auto* shape = it->mutable_type()->mutable_tensor_type()->mutable_shape();
        const std::string hint = shape_hint(*shape);  // the model's own, before any size is set
        if (static_cast<std::size_t>(shape->dim_size()) != dims.size())
            throw InputError(file_, "", "--input-shape " + name + ": " + std::to_string(dims.size()) +
                                            " dimensions given, but the input has " +
                                            std::to_string(shape->dim_size()) + " (" + hint + ")");
        for (int d = 0; d < shape->dim_size(); ++d) {
            auto* dim = shape->mutable_dim(d);
            const std::int64_t given = dims[static_cast<std::size_t>(d)];
            if (dim->has_dim_value() && dim->dim_value() > 0) {
                if (dim->dim_value() != given)
                    throw InputError(file_, "", "--input-shape " + name + ": dimension " + std::to_string(d) +
                                                    " is fixed at " + std::to_string(dim->dim_value()) +
                                                    " by the model, not " + std::to_string(given) + " (" + hint +
                                                    ")");
            } else if (d > 0) {
                dim->set_dim_value(given);
            }
        }
    }
}

// libonnx 1.12 crashes on a node whose input has no type (a Shape fed by an unknown operator,
// found by fuzzing). So the unknown operators' outputs are typed first, in rounds: inference runs
// on a copy of the graph without the nodes downstream of a still-untyped unknown output, which
// types the unknown operators' inputs; their outputs then take their first input's type.
void Importer::type_unknown_operators() {
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
bool Importer::type_unknown_outputs() {
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
void Importer::run_shape_inference() {
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

// shapes and indices, never weights
std::optional<Importer::IntTensor> Importer::int_tensor(const onnx::TensorProto& t) {
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
std::optional<Importer::IntTensor> Importer::evaluate(const onnx::NodeProto& node,
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
bool Importer::fold_shape_computations() {
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

void Importer::record_type(const onnx::ValueInfoProto& info) {
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

void Importer::collect_inferred_types() {
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

}  // namespace dnnplan::networks::onnx_import
