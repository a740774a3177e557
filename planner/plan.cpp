#include "plan.hpp"

#include <cstdio>
#include <map>

namespace dnnplan::planner {

std::string network_fingerprint(const networks::Network& network) {
    // FNV-1a, 64 bit: stable across runs and platforms.
    std::uint64_t hash = 1469598103934665603ULL;
    auto mix = [&](const std::string& text) {
        for (unsigned char c : text) {
            hash ^= c;
            hash *= 1099511628211ULL;
        }
        hash ^= 0xff;
        hash *= 1099511628211ULL;
    };
    for (const auto& layer : network.layers) {
        mix(layer.name);
        mix(networks::to_string(layer.kind));
        for (auto d : layer.output_shape) mix(std::to_string(d));
        mix(std::to_string(layer.params));
    }
    char buffer[17];
    std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(hash));
    return buffer;
}

Plan make_plan(const CostModel& model, const Candidate& candidate, const PlanSources& sources) {
    const networks::Network& network = model.network();
    Plan plan;
    plan.network_name = network.name;
    plan.network_source = sources.network;
    plan.network_fingerprint = network_fingerprint(network);
    plan.cluster_name = model.cluster().name;
    plan.cluster_source = sources.cluster;
    plan.options = model.options();
    plan.strategy = candidate.strategy;
    plan.label = candidate.label;
    for (int a : model.anchors()) plan.layouts.emplace_back(network.layers[a].name, candidate.plan.anchor_layouts[a]);
    plan.scored = candidate.plan;
    plan.pipeline = candidate.pipeline;
    return plan;
}

Json cost_to_json(const CostBreakdown& c) {
    Json j{{"iteration_s", c.iteration_s},
           {"fwd_compute_s", c.fwd_compute_s},
           {"bwd_compute_s", c.bwd_compute_s},
           {"sync_total_s", c.sync_total_s},
           {"sync_exposed_s", c.sync_exposed_s},
           {"sync_contention_s", c.sync_contention_s},
           {"bubble_s", c.bubble_s},
           {"optimizer_step_s", c.optimizer_step_s},
           {"memory",
            {{"weights_bytes", c.weights_bytes},
             {"gradients_bytes", c.gradients_bytes},
             {"optimizer_bytes", c.optimizer_bytes},
             {"activations_bytes", c.activations_bytes},
             {"buffers_bytes", c.buffers_bytes},
             {"total_bytes", c.memory_bytes},
             {"capacity_bytes", c.memory_capacity_bytes}}},
           {"feasible", c.feasible},
           {"reason", c.reason}};
    for (CommKind kind : kAllCommKinds) j[to_string(kind) + "_s"] = c.comm(kind);  // "all_reduce_s", ...
    return j;
}

namespace {
// "recompute": "none" | "selective" | "full"; plans written before the choice existed hold a
// bool (true: the stage's forward redone, now "full").
Recompute recompute_from_json(const SpecNode& pipeline) {
    if (!pipeline.has("recompute")) return Recompute::none;
    if (pipeline.child("recompute").json().is_boolean())
        return pipeline.get_bool_or("recompute", false) ? Recompute::full : Recompute::none;
    const std::string choice = pipeline.get_choice("recompute", {"none", "selective", "full"});
    return choice == "full" ? Recompute::full : choice == "selective" ? Recompute::selective : Recompute::none;
}

// The "pipeline" block: stages as layer-name ranges, or (graph partition) every layer's device.
Json pipeline_to_json(const PipelineSpec& p, const std::vector<networks::Layer>& layers) {
    if (!p.active()) return Json{{"stages", 1}, {"micro_batches", 1}, {"replicas", 1}};  // a plain grid plan
    Json j{{"stages", p.stages},      {"micro_batches", p.micro_batches},  {"replicas", p.replicas},
           {"tensor", p.tensor},      {"schedule", to_string(p.schedule)}, {"zero", p.zero},
           {"recompute", to_string(p.recompute)}, {"sequence_parallel", p.sequence_parallel}};
    if (p.interleave > 1) j["interleave"] = p.interleave;  // stage_ranges then lists the S x V chunks
    if (!p.stage_first.empty() && p.device_of.empty()) {
        Json ranges = Json::array();
        for (std::size_t s = 0; s < p.stage_first.size(); ++s) {
            std::size_t last = s + 1 < p.stage_first.size() ? p.stage_first[s + 1] - 1 : layers.size() - 1;
            ranges.push_back(Json{{"first", layers[p.stage_first[s]].name}, {"last", layers[last].name}});
        }
        j["stage_ranges"] = ranges;
    }
    if (!p.device_of.empty()) j["device_of"] = std::vector<int>(p.device_of.begin() + 1, p.device_of.end());
    return j;
}
}  // namespace

Json plan_to_json(const Plan& plan, const CostModel& model) {
    const auto& layers = model.network().layers;
    Json layouts = Json::array();
    for (const auto& [name, layout] : plan.layouts)
        layouts.push_back(Json{{"name", name}, {"layout", to_json(layout)}});
    Json per_layer = Json::array();
    // A default Plan (nothing feasible was found) has no scored layers: no rows then.
    for (std::size_t i = 1; i < layers.size() && i < plan.scored.layers.size(); ++i) {
        const LayerCost& lc = plan.scored.layers[i];
        auto dist = [](const Dist& d) { return Json{{"n", d.n}, {"c", d.c}, {"h", d.h}, {"w", d.w}}; };
        per_layer.push_back(Json{{"name", layers[i].name},
                                 {"anchor", layers[model.anchor_of(static_cast<int>(i))].name},
                                 {"layout", to_string(lc.layout)},
                                 {"input_dist", dist(lc.in_dist)},
                                 {"output_dist", dist(lc.out_dist)},
                                 {"fwd_compute_s", lc.fwd_compute_s},
                                 {"bwd_compute_s", lc.bwd_compute_s},
                                 {"fwd_comm_s", lc.fwd_comm_s},
                                 {"bwd_comm_s", lc.bwd_comm_s},
                                 {"sync_s", lc.sync_s},
                                 {"weights_bytes", lc.weight_bytes},
                                 {"activations_bytes", lc.activation_bytes}});
    }
    Json calls = Json::array();
    for (const CommCall& c : plan.scored.calls)
        calls.push_back(Json{{"layer", layers[c.layer].name},
                             {"phase", to_string(c.phase)},
                             {"kind", to_string(c.kind)},
                             {"collective", clusters::to_string(c.collective)},
                             {"algorithm", clusters::to_string(c.algorithm)},
                             {"group_size", c.group.size},
                             {"group_per_node", c.group.per_node},
                             {"bytes", c.bytes},
                             {"seconds", c.seconds},
                             {"what", c.what}});
    return Json{
        {"format", "dnnplan-plan"},
        {"version", 1},
        {"network",
         {{"name", plan.network_name}, {"source", plan.network_source}, {"fingerprint", plan.network_fingerprint}}},
        {"cluster", {{"name", plan.cluster_name}, {"source", plan.cluster_source}}},
        {"procs", plan.options.procs},
        {"processes_per_node", plan.options.processes_per_node},
        {"batch", plan.options.batch},
        {"dtype", to_string(plan.options.dtype)},
        {"optimizer", to_string(plan.options.optimizer)},
        {"overlap_sync", plan.options.overlap_sync},
        {"roofline", plan.options.roofline},
        {"compute", to_string(plan.options.compute)},
        // The training software's behaviour (planner/software_options.hpp), as scored.
        {"grad_accumulation",
         to_string(plan.options.grad_accumulation.value_or(default_grad_accumulation(plan.options.dtype)))},
        {"mixed_precision_step", to_string(plan.options.mixed_precision_step)},
        {"boundary_send", to_string(plan.options.boundary_send)},
        {"strategy", to_string(plan.strategy)},
        {"grid", plan.label},
        {"pipeline", pipeline_to_json(plan.pipeline, layers)},
        {"layouts", layouts},
        {"predicted", cost_to_json(plan.scored.cost)},
        {"per_layer", per_layer},
        {"communication", calls}};
}

PlanRequest parse_plan_request(const Json& json, const std::string& file) {
    SpecNode root(json, file);
    root.expect_object("a plan object");
    if (!root.has("format") || root.child("format").json() != "dnnplan-plan")
        root.fail("not a dnnplan plan (expected \"format\": \"dnnplan-plan\")");
    PlanRequest r;
    root.get_int("version", 1, 1);
    SpecNode net = root.child("network");
    r.network_source = net.get_string("source");
    r.network_fingerprint = net.get_string("fingerprint");
    r.network_name = net.get_string_or("name", "");
    r.cluster_name = root.child("cluster").get_string("name");
    r.cluster_source = root.child("cluster").get_string("source");
    r.options.procs = root.get_int("procs", 1, 1 << 22);
    // Plans saved before processes per node was a plan dimension ran one process per device.
    r.options.processes_per_node = static_cast<int>(root.get_int_or("processes_per_node", 1, 1, 1 << 20));
    r.options.batch = root.get_int("batch", 1);
    r.options.dtype = *parse_dtype(root.get_choice("dtype", dtype_names()));
    r.options.optimizer = root.get_choice("optimizer", {"sgd", "adam"}) == "adam" ? Optimizer::adam : Optimizer::sgd;
    r.options.overlap_sync = root.get_bool_or("overlap_sync", true);
    r.options.roofline = root.get_bool_or("roofline", false);
    // Plans saved before the option existed were scored with one rate for every layer.
    r.options.compute = root.has("compute") ? *parse_compute_model(root.get_choice("compute", compute_model_names()))
                                            : ComputeModel::uniform;
    // Plans saved before these were written keep the defaults (the dtype's accumulation).
    if (root.has("grad_accumulation"))
        r.options.grad_accumulation =
            *parse_grad_accumulation(root.get_choice("grad_accumulation", grad_accumulation_names()));
    r.options.mixed_precision_step = *parse_mixed_precision_step(root.get_choice_or(
        "mixed_precision_step", mixed_precision_step_names(), to_string(MixedPrecisionStep::megatron_lm)));
    r.options.boundary_send = *parse_boundary_send(root.get_choice_or(
        "boundary_send", boundary_send_names(), to_string(PipelineBoundarySend::scatter_gather)));
    r.strategy = parse_strategy(root.get_string_or("strategy", "hand-edited")).value_or(Strategy::hand_edited);
    r.label = root.get_string_or("grid", "");
    if (root.has("pipeline")) {
        SpecNode p = root.child("pipeline");
        p.expect_object("a pipeline object");
        r.pipeline.stages = static_cast<int>(p.get_int_or("stages", 1, 1, 1 << 22));
        r.pipeline.micro_batches = static_cast<int>(p.get_int_or("micro_batches", 1, 1, kMaxMicroBatches));
        r.pipeline.replicas = static_cast<int>(p.get_int_or("replicas", 1, 1, 1 << 22));
        r.pipeline.tensor = static_cast<int>(p.get_int_or("tensor", 1, 1, 1 << 22));
        r.pipeline.schedule =
            p.get_choice_or("schedule", {"gpipe", "1f1b"}, "gpipe") == "1f1b" ? Schedule::one_f_one_b : Schedule::gpipe;
        r.pipeline.zero = p.get_bool_or("zero", false);
        r.pipeline.recompute = recompute_from_json(p);
        r.pipeline.sequence_parallel = p.get_bool_or("sequence_parallel", false);
        r.pipeline.interleave = static_cast<int>(p.get_int_or("interleave", 1, 1, 1 << 22));
        if (p.has("stage_ranges")) {
            SpecNode ranges = p.child("stage_ranges");
            ranges.expect_array("an array of {first, last} layer names");
            for (std::size_t i = 0; i < ranges.size(); ++i) {
                SpecNode range = ranges.element(i);
                range.expect_object("a {first, last} object");
                r.stage_ranges.emplace_back(range.get_string("first"), range.get_string("last"));
            }
        }
        if (p.has("device_of")) {
            SpecNode devices = p.child("device_of");
            devices.expect_array("an array of device numbers, one per layer after the input");
            r.pipeline.device_of.push_back(0);
            for (std::size_t i = 0; i < devices.size(); ++i)
                r.pipeline.device_of.push_back(static_cast<int>(devices.element(i).as_int(0, r.pipeline.stages - 1)));
        }
    }
    SpecNode layouts = root.child("layouts");
    layouts.expect_array("an array of {name, layout}");
    for (std::size_t i = 0; i < layouts.size(); ++i) {
        SpecNode entry = layouts.element(i);
        entry.expect_object("a {name, layout} object");
        r.layouts.emplace_back(entry.get_string("name"), layout_from_json(entry.child("layout")));
        r.layout_pointers.push_back(entry.pointer());
    }
    return r;
}

void check_request_fits_cluster(const PlanRequest& request, const clusters::Cluster& cluster, const std::string& file) {
    if (!cluster.supports(request.options.dtype))
        throw InputError(file, "/dtype",
                         "cluster " + cluster.name + " has no peak rate for " + to_string(request.options.dtype));
    const int k = request.options.processes_per_node;
    if (std::string problem = clusters::processes_per_node_problem(cluster, k); !problem.empty())
        throw InputError(file, "/processes_per_node", problem);
    if (request.options.procs % k != 0)
        throw InputError(file, "/processes_per_node",
                         std::to_string(k) + " processes per node do not divide P = " + std::to_string(request.options.procs));
    // k > 1 only on clusters of one device per node (processes_per_node_problem): P / k nodes.
    if (k == 1 ? request.options.procs > cluster.total_devices() : request.options.procs / k > cluster.nodes)
        throw InputError(file, "/procs",
                         "P = " + std::to_string(request.options.procs) + " exceeds the cluster's " +
                             (k == 1 ? std::to_string(cluster.total_devices()) + " devices"
                                     : std::to_string(cluster.nodes) + " nodes x " + std::to_string(k) +
                                           " processes per node"));
}

std::vector<Layout> layouts_for(const PlanRequest& request, const CostModel& model, const std::string& file) {
    const auto& network = model.network();
    if (request.network_fingerprint != network_fingerprint(network))
        throw InputError(file, "/network/fingerprint",
                         "the plan was made for " +
                             (request.network_name.empty()          ? std::string("another network")
                              : request.network_name == network.name ? "another version of network \"" +
                                                                           request.network_name + "\""
                                                                     : "network \"" + request.network_name + "\"") +
                             " (fingerprint " + request.network_fingerprint + ", network \"" + network.name +
                             "\" has " + network_fingerprint(network) + ")");
    if (request.cluster_name != model.cluster().name)
        throw InputError(file, "/cluster/name",
                         "the plan was made for cluster \"" + request.cluster_name + "\", not \"" +
                             model.cluster().name + "\" (loaded from \"" + request.cluster_source + "\")");
    check_request_fits_cluster(request, model.node_cluster(), file);
    std::vector<Layout> layouts(network.layers.size());
    std::map<std::string, std::size_t> given;
    for (std::size_t i = 0; i < request.layouts.size(); ++i) {
        const auto& [name, layout] = request.layouts[i];
        int index = network.find(name);
        if (index < 0 || !model.is_anchor(index))
            throw InputError(file, request.layout_pointers[i] + "/name",
                             "\"" + name + "\" is not a layer that takes a layout in network \"" + network.name + "\"");
        std::int64_t p = request.options.procs;
        if (layout.procs() > p || p % layout.procs() != 0)
            throw InputError(file, request.layout_pointers[i] + "/layout",
                             "layout " + to_string(layout) + " uses " + std::to_string(layout.procs()) +
                                 " processes, which does not divide P = " + std::to_string(p));
        std::string problem = model.layout_problem(index, layout);
        if (!problem.empty()) throw InputError(file, request.layout_pointers[i] + "/layout", problem);
        layouts[index] = layout;
        given[name] = i;
    }
    for (int a : model.anchors())
        if (!given.count(network.layers[a].name))
            throw InputError(file, "/layouts", "no layout for layer \"" + network.layers[a].name + "\"");
    return layouts;
}

PipelineSpec pipeline_for(const PlanRequest& request, const CostModel& model, const std::string& file) {
    PipelineSpec spec = request.pipeline;
    const auto& layers = model.network().layers;
    if (!spec.active() && request.stage_ranges.empty()) {
        // No pipeline: one stage of all P processes, i.e. the plain plan.
        spec.tensor = static_cast<int>(request.options.procs);
        spec.stage_first = {1};
        return spec;
    }
    const int n = static_cast<int>(layers.size());
    if (!spec.device_of.empty() && static_cast<int>(spec.device_of.size()) != n)
        throw InputError(
            file, "/pipeline/device_of",
            std::to_string(spec.device_of.size() - 1) + " devices for " + std::to_string(n - 1) + " layers");
    if (spec.device_of.empty()) {
        if (request.stage_ranges.empty() && spec.stages == 1)
            spec.stage_first = {1};
        else if (static_cast<int>(request.stage_ranges.size()) != spec.virtual_stages())
            throw InputError(file, "/pipeline/stage_ranges",
                             std::to_string(request.stage_ranges.size()) + " ranges for " +
                                 std::to_string(spec.virtual_stages()) + " stages" +
                                 (spec.interleave > 1 ? " (stages x interleave)" : ""));
        int expected = 1;
        for (std::size_t s = 0; s < request.stage_ranges.size(); ++s) {
            const auto& [first, last] = request.stage_ranges[s];
            std::string where = "/pipeline/stage_ranges/" + std::to_string(s);
            int f = model.network().find(first), l = model.network().find(last);
            if (f < 1) throw InputError(file, where + "/first", "no layer \"" + first + "\" (after the input)");
            if (l < 1) throw InputError(file, where + "/last", "no layer \"" + last + "\" (after the input)");
            if (f != expected)
                throw InputError(file, where + "/first",
                                 "stage " + std::to_string(s) + " must start at layer \"" + layers[expected].name +
                                     "\", right after the previous stage");
            if (l < f) throw InputError(file, where + "/last", "the stage ends before it starts");
            spec.stage_first.push_back(f);
            expected = l + 1;
        }
        if (!request.stage_ranges.empty() && expected != n)
            throw InputError(file, "/pipeline/stage_ranges",
                             "the last stage must end at layer \"" + layers[n - 1].name + "\"");
    }
    std::string problem = pipeline_problem(model, spec);
    if (!problem.empty()) throw InputError(file, "/pipeline", problem);
    return spec;
}

Candidate rescored_candidate(const PlanRequest& request, const CostModel& model, const std::string& file) {
    std::vector<Layout> layouts = layouts_for(request, model, file);
    Candidate candidate;
    candidate.strategy = request.strategy;
    candidate.label = request.label;
    candidate.pipeline = pipeline_for(request, model, file);
    candidate.processes_per_node = request.options.processes_per_node;
    if (!candidate.pipeline.active()) {
        candidate.plan = model.score(layouts);
        return candidate;
    }
    PipelineScore score = score_pipeline(model, candidate.pipeline, layouts);
    // Graph partitions (a device per layer) keep their saved label: theirs names the placement.
    if (candidate.pipeline.device_of.empty()) candidate.label = pipeline_label(candidate.pipeline, score);
    candidate.plan = std::move(score.plan);
    return candidate;
}

}  // namespace dnnplan::planner
