// Tests of the Plan document: plan_to_json -> parse_plan_request -> layouts_for -> score gives the
// same CostBreakdown, the CLI-written fixture reads back, and each hand-edited bad plan
// (tests/data/bad/plan_*.json, made from `dnnplan --net lenet5 --procs 4 --cluster cori-knl --out`)
// gives its exact "FILE: /pointer: message" diagnostic.
#include <catch2/catch.hpp>

#include "planner_test_helpers.hpp"

#include <string>
#include <vector>

#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "planner/pipeline.hpp"
#include "planner/plan.hpp"
#include "planner/search.hpp"

using namespace dnnplan;
using namespace dnnplan::planner;
using namespace dnnplan::planner::test;
using dnnplan::planner::test::check_equal;

namespace {

const std::string kSourceDir = DNNPLAN_SOURCE_DIR;

Plan make_plan(const networks::Network&, const std::string& source, const clusters::Cluster&,
               const std::string& cluster_source, const CostModel& model, const Candidate& c) {
    return planner::make_plan(model, c, {source, cluster_source});
}

std::string bad_path(const std::string& what) { return kSourceDir + "/tests/data/bad/plan_" + what + ".json"; }

// The message of the InputError that reading the plan file `path` against lenet5 on cori-knl
// throws, as `dnnplan plan --net lenet5 --plan FILE` does; "" when it reads.
std::string lenet5_plan_error(const std::string& path) {
    networks::Network net = builtin("lenet5");
    clusters::Cluster cluster = preset("cori-knl");
    try {
        Json json = load_json_file(path);
        PlanRequest request = parse_plan_request(json, path);
        CostModel model(net, cluster, request.options);
        layouts_for(request, model, path);
    } catch (const InputError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("plan JSON round trip gives the same CostBreakdown for every ranked candidate", "[planner][plan]") {
    clusters::Cluster cori = preset("cori-knl");
    clusters::Cluster dgx = preset("dgx-a100");
    struct Case {
        std::string net;
        const clusters::Cluster* cluster;
        std::int64_t procs, batch;
    };
    int round_tripped = 0, rejected = 0;
    // lenet5 at P = 16: the pure model split asks conv1 for 16 parts of its 6 output channels.
    for (const Case& k : {Case{"lenet5", &cori, 4, 64}, Case{"lenet5", &cori, 16, 64}, Case{"alexnet", &cori, 16, 256},
                          Case{"resnet50", &dgx, 16, 64}, Case{"gpt2", &dgx, 8, 16}}) {
        networks::Network net = builtin(k.net);
        PlannerOptions o;
        o.procs = k.procs;
        o.batch = k.batch;
        o.optimizer = k.net == "gpt2" ? Optimizer::adam : Optimizer::sgd;
        o.overlap_sync = k.net != "alexnet";
        CostModel model(net, *k.cluster, o);
        SearchResult result = search(model);
        REQUIRE(!result.ranked.empty());
        for (const Candidate& c : result.ranked) {
            INFO(k.net << ": " << to_string(c.strategy) << " " << c.label);
            Plan plan = make_plan(net, k.net, *k.cluster, k.cluster->name, model, c);
            // Through text, as the CLI writes and reads it.
            std::string text = plan_to_json(plan, model).dump(2);
            PlanRequest request = parse_plan_request(parse_json_text(text, "roundtrip.json"), "roundtrip.json");
            CHECK(request.network_source == k.net);
            CHECK(request.network_fingerprint == network_fingerprint(net));
            CHECK(request.cluster_source == k.cluster->name);
            CHECK(request.options.procs == o.procs);
            CHECK(request.options.batch == o.batch);
            CHECK(request.options.dtype == o.dtype);
            CHECK(request.options.optimizer == o.optimizer);
            CHECK(request.options.overlap_sync == o.overlap_sync);
            CHECK(request.options.roofline == o.roofline);
            CHECK(request.strategy == c.strategy);
            CHECK(request.label == c.label);
            CHECK(request.layouts == plan.layouts);
            CostModel again(net, *k.cluster, request.options);
            // A layout the layer cannot take is rejected on reading, with the score's own reason.
            std::string problem;
            for (int a : model.anchors())
                if (problem.empty() && !model.layout_problem(a, c.plan.anchor_layouts[a]).empty())
                    problem = model.layout_problem(a, c.plan.anchor_layouts[a]);
            if (!problem.empty()) {
                CHECK_FALSE(c.plan.cost.feasible);
                CHECK_THROWS_WITH(layouts_for(request, again, "roundtrip.json"), Catch::Contains(problem));
                ++rejected;
                continue;
            }
            ++round_tripped;
            std::vector<Layout> layouts = layouts_for(request, again, "roundtrip.json");
            for (int a : model.anchors()) CHECK(layouts[a] == c.plan.anchor_layouts[a]);
            // Pipeline, 3-D and graph-partition candidates carry their pipeline block along.
            PipelineSpec spec = pipeline_for(request, again, "roundtrip.json");
            CHECK(spec.active() == c.pipeline.active());
            ScoredPlan rescored = spec.active() ? score_pipeline(again, spec, layouts).plan : again.score(layouts);
            check_equal(rescored.cost, c.plan.cost);
            CHECK(rescored.calls == c.plan.calls);
        }
    }
    CHECK(round_tripped >= 12);
    CHECK(rejected >= 1);
}

TEST_CASE("the plan written by the CLI reads back", "[planner][plan]") {
    // tests/data/planner/lenet5_p4_plan.json: `dnnplan --net lenet5 --procs 4 --cluster cori-knl --out`.
    const std::string path = kSourceDir + "/tests/data/planner/lenet5_p4_plan.json";
    REQUIRE(lenet5_plan_error(path).empty());
    PlanRequest request = parse_plan_request(load_json_file(path), path);
    CHECK(request.network_source == "lenet5");
    CHECK(request.cluster_source == "cori-knl");
    CHECK(request.options.procs == 4);
    CHECK(request.options.batch == 64);  // lenet5's default batch
    CHECK(request.options.dtype == DType::fp32);
    CHECK(request.options.optimizer == Optimizer::sgd);
    CHECK(request.options.overlap_sync);
    CHECK_FALSE(request.options.roofline);
    // Written before the training-software options: the defaults (the dtype's accumulation).
    CHECK_FALSE(request.options.grad_accumulation.has_value());
    CHECK(request.options.mixed_precision_step == MixedPrecisionStep::megatron_lm);
    CHECK(request.options.boundary_send == PipelineBoundarySend::scatter_gather);
    REQUIRE(request.layouts.size() == 5);
    std::vector<std::string> names;
    for (const auto& [name, layout] : request.layouts) {
        names.push_back(name);
        CHECK(layout.procs() == 4);
    }
    CHECK(names == std::vector<std::string>{"conv1", "conv2", "fc1", "fc2", "fc3"});
    CHECK(request.layout_pointers == std::vector<std::string>{"/layouts/0", "/layouts/1", "/layouts/2", "/layouts/3", "/layouts/4"});
    // The fingerprint is a stable FNV-1a digest: the file's matches this build's.
    CHECK(request.network_fingerprint == network_fingerprint(builtin("lenet5")));
    CHECK(request.network_fingerprint == "df4466db94fa9bbc");
    // Re-scoring the file's layouts is a feasible plan on Cori.
    networks::Network net = builtin("lenet5");
    clusters::Cluster cori = preset("cori-knl");
    CostModel model(net, cori, request.options);
    ScoredPlan scored = model.score(layouts_for(request, model, path));
    CHECK(scored.cost.feasible);
    CHECK(scored.cost.iteration_s > 0);
}

TEST_CASE("the training-software options round-trip through the plan file", "[planner][plan]") {
    // gpt2 on 8 A100s in pipelines of T = 2 x S = 2 x R = 2, M = 4, with DeepSpeed's behaviour
    // throughout: every option differs from its default, so a field lost on the way would change
    // the score.
    networks::Network net = builtin("gpt2");
    clusters::Cluster dgx = preset("dgx-a100");
    PlannerOptions o;
    o.procs = 8;
    o.batch = 16;
    o.dtype = DType::fp16;
    o.optimizer = Optimizer::adam;
    o.compute = ComputeModel::per_operation;
    o.grad_accumulation = GradAccumulation::autograd_in_place;
    o.mixed_precision_step = MixedPrecisionStep::deepspeed_zero;
    o.boundary_send = PipelineBoundarySend::deepspeed;
    CostModel model(net, dgx, o);
    PipelineSpec spec;
    spec.tensor = 2;
    spec.stages = 2;
    spec.replicas = 2;
    spec.micro_batches = 4;
    spec.schedule = Schedule::one_f_one_b;
    spec.stage_first = {1, cut_positions(model)[cut_positions(model).size() / 2]};
    REQUIRE(pipeline_problem(model, spec).empty());
    Candidate c;
    c.strategy = Strategy::tp_pp_dp;
    c.pipeline = spec;
    c.plan = score_pipeline(model, spec, tensor_layouts(model, 2)).plan;
    REQUIRE(c.plan.cost.feasible);
    const Json json = plan_to_json(planner::make_plan(model, c, {"gpt2", "dgx-a100"}), model);
    CHECK(json.at("grad_accumulation") == "autograd");
    CHECK(json.at("mixed_precision_step") == "deepspeed");
    CHECK(json.at("boundary_send") == "deepspeed");
    auto rescore = [&](const Json& document) {
        PlanRequest request = parse_plan_request(parse_json_text(document.dump(2), "p.json"), "p.json");
        CostModel again(net, dgx, request.options);
        return std::pair{request.options,
                         score_pipeline(again, pipeline_for(request, again, "p.json"), layouts_for(request, again, "p.json"))
                             .plan.cost};
    };
    const auto [read, cost] = rescore(json);
    CHECK(read.grad_accumulation == o.grad_accumulation);
    CHECK(read.mixed_precision_step == o.mixed_precision_step);
    CHECK(read.boundary_send == o.boundary_send);
    check_equal(cost, c.plan.cost);
    // Without the three fields (a plan written before them): the defaults, another score.
    Json old = json;
    for (const char* key : {"grad_accumulation", "mixed_precision_step", "boundary_send"}) old.erase(key);
    const auto [defaults, default_cost] = rescore(old);
    CHECK_FALSE(defaults.grad_accumulation.has_value());
    CHECK(defaults.mixed_precision_step == MixedPrecisionStep::megatron_lm);
    CHECK(defaults.boundary_send == PipelineBoundarySend::scatter_gather);
    CHECK(default_cost.iteration_s != Approx(c.plan.cost.iteration_s));
}

TEST_CASE("bad plan files give their exact diagnostics", "[planner][plan][bad]") {
    // Each fixture is the CLI's lenet5 P = 4 plan with one hand edit.
    CHECK(lenet5_plan_error(bad_path("other_network")) ==
          bad_path("other_network") +
              ": /network/fingerprint: the plan was made for network \"smallcnn\" (fingerprint 2ac3b14f19ddf8df, "
              "network \"lenet5\" has df4466db94fa9bbc)");
    CHECK(lenet5_plan_error(bad_path("layout_not_dividing_p")) ==
          bad_path("layout_not_dividing_p") +
              ": /layouts/2/layout: layout n2 x co3 uses 6 processes, which does not divide P = 4");
    // conv1 reads one channel: a split of its input channels is impossible (balanced splits allow
    // fc3's 10 outputs in 4 parts, the fixture's other edit: 3, 2, 3, 2).
    CHECK(lenet5_plan_error(bad_path("layout_bad_split")) ==
          bad_path("layout_bad_split") + ": /layouts/0/layout: input channels 1 cannot be split 2 ways");
    CHECK(lenet5_plan_error(bad_path("unknown_layer")) ==
          bad_path("unknown_layer") + ": /layouts/3/name: \"fc4\" is not a layer that takes a layout in network \"lenet5\"");
    CHECK(lenet5_plan_error(bad_path("missing_layout")) ==
          bad_path("missing_layout") + ": /layouts: no layout for layer \"fc3\"");
    CHECK(lenet5_plan_error(bad_path("not_a_plan")) ==
          bad_path("not_a_plan") + ": /: not a dnnplan plan (expected \"format\": \"dnnplan-plan\")");
    CHECK(lenet5_plan_error(bad_path("negative_factor")) ==
          bad_path("negative_factor") + ": /layouts/3/layout/n: must be a positive integer, got -2");
    CHECK(lenet5_plan_error(bad_path("bad_grad_accumulation")) ==
          bad_path("bad_grad_accumulation") +
              ": /grad_accumulation: unknown value \"sometimes\" (valid: in-gemm, autograd or hook)");
}

TEST_CASE("a plan's P must fit the cluster", "[planner][plan][bad]") {
    networks::Network net = builtin("lenet5");
    clusters::Cluster cluster = preset("cori-knl");
    cluster.nodes = 2;  // 2 devices, the plan asks for 4
    const std::string path = kSourceDir + "/tests/data/planner/lenet5_p4_plan.json";
    PlanRequest request = parse_plan_request(load_json_file(path), path);
    CostModel model(net, cluster, request.options);
    try {
        layouts_for(request, model, path);
        FAIL("expected an InputError");
    } catch (const InputError& e) {
        CHECK(std::string(e.what()) == path + ": /procs: P = 4 exceeds the cluster's 2 devices");
    }
}

TEST_CASE("plan_to_json of a plan with nothing scored (no feasible candidate) writes no per-layer rows", "[planner][plan]") {
    // The CLI hands the default Plan to the JSON report when every candidate is infeasible
    // (e.g. `dnnplan --net gpt2 --procs 4 --cluster dgx-a100 --format json`: 180 GiB per process).
    networks::Network net = builtin("lenet5");
    clusters::Cluster cluster = preset("cori-knl");
    PlannerOptions o;
    o.procs = 4;
    o.batch = 64;
    CostModel model(net, cluster, o);
    Plan empty;
    Json json = plan_to_json(empty, model);
    CHECK(json["per_layer"].empty());
    CHECK(json["communication"].empty());
    CHECK(json["layouts"].empty());
}
