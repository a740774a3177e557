// Machine-readable rankings (issue 18, item 2): every candidate of `--format csv` and `--format
// json` names its family and configuration, its time components add up to iteration_s, and the
// JSON follows docs/plan-ranking.schema.json (checked by the small validator below).
#include <catch2/catch.hpp>
#include <cstdlib>
#include <set>
#include <sstream>

#include "clusters/cluster.hpp"
#include "common/diagnostics.hpp"
#include "networks/network.hpp"
#include "planner/plan.hpp"
#include "planner/search.hpp"
#include "reports/plan_report.hpp"

using namespace dnnplan;

namespace {

const std::string kSource = DNNPLAN_SOURCE_DIR;

// The subset of JSON Schema the schema file uses: type (one or a list), enum, required,
// properties, additionalProperties: false, items, minimum and local $ref. Returns the first
// problem as "pointer: what", or "".
std::string schema_problem(const Json& value, const Json& schema, const Json& root, const std::string& at = "") {
    if (schema.contains("$ref")) {
        std::string ref = schema.at("$ref").get<std::string>();
        REQUIRE(ref.rfind("#", 0) == 0);
        return schema_problem(value, root.at(Json::json_pointer(ref.substr(1))), root, at);
    }
    auto type_matches = [&](const std::string& type) {
        if (type == "object") return value.is_object();
        if (type == "array") return value.is_array();
        if (type == "string") return value.is_string();
        if (type == "integer") return value.is_number_integer();
        if (type == "number") return value.is_number();
        if (type == "boolean") return value.is_boolean();
        if (type == "null") return value.is_null();
        FAIL("unknown schema type " << type);
        return false;
    };
    if (schema.contains("type")) {
        const Json& t = schema.at("type");
        bool ok = false;
        if (t.is_string()) ok = type_matches(t.get<std::string>());
        for (const auto& one : t.is_array() ? t : Json::array()) ok = ok || type_matches(one.get<std::string>());
        if (!ok) return at + ": " + value.dump() + " is not of type " + t.dump();
    }
    if (schema.contains("enum")) {
        bool found = false;
        for (const auto& e : schema.at("enum")) found = found || e == value;
        if (!found) return at + ": " + value.dump() + " is not one of " + schema.at("enum").dump();
    }
    if (schema.contains("minimum") && value.is_number() && value.get<double>() < schema.at("minimum").get<double>())
        return at + ": " + value.dump() + " is below the minimum";
    if (value.is_object()) {
        for (const auto& key : schema.value("required", Json::array()))
            if (!value.contains(key.get<std::string>())) return at + ": missing " + key.get<std::string>();
        const Json properties = schema.value("properties", Json::object());
        for (const auto& [key, v] : value.items()) {
            if (properties.contains(key)) {
                std::string p = schema_problem(v, properties.at(key), root, at + "/" + key);
                if (!p.empty()) return p;
            } else if (schema.contains("additionalProperties") && schema.at("additionalProperties") == false) {
                return at + ": unexpected key " + key;
            }
        }
    }
    if (value.is_array() && schema.contains("items"))
        for (std::size_t i = 0; i < value.size(); ++i) {
            std::string p = schema_problem(value[i], schema.at("items"), root, at + "/" + std::to_string(i));
            if (!p.empty()) return p;
        }
    return "";
}

std::vector<std::string> split_csv_line(const std::string& line) {  // no quoted commas in these columns but the last
    std::vector<std::string> out;
    std::string cell;
    bool quoted = false;
    for (char c : line) {
        if (c == '"') quoted = !quoted;
        else if (c == ',' && !quoted) out.push_back(std::exchange(cell, {}));
        else cell += c;
    }
    out.push_back(cell);
    return out;
}

struct Case {
    const char* network;
    const char* cluster;
    std::int64_t procs, batch;
};

}  // namespace

TEST_CASE("the schema validator rejects what the schema forbids", "[reports]") {
    Json schema = Json::parse(read_text_file(kSource + "/docs/plan-ranking.schema.json"));
    const Json& candidate = schema.at("$defs").at("candidate");
    Json good = Json::object();
    for (const auto& key : candidate.at("required")) good[key.get<std::string>()] = nullptr;
    CHECK_FALSE(schema_problem(good, candidate, schema).empty());  // rank null
    Json bad{{"format", "dnnplan-ranking"}, {"version", 2}};
    CHECK(schema_problem(bad, schema, schema) == ": missing ranked");
    CHECK(schema_problem(Json{{"zero", 3}}, Json{{"properties", candidate.at("properties")}}, schema) ==
          "/zero: 3 is not of type [\"boolean\",\"null\"]");
    CHECK(schema_problem(Json{{"schedule", "zigzag"}}, Json{{"properties", candidate.at("properties")}}, schema) ==
          "/schedule: \"zigzag\" is not one of [\"gpipe\",\"1f1b\",null]");
}

TEST_CASE("every ranked candidate carries its configuration and components that sum to the iteration",
          "[reports]") {
    const Json schema = Json::parse(read_text_file(kSource + "/docs/plan-ranking.schema.json"));
    const Case cases[] = {{"lenet5", "cori-knl", 4, 64},   {"lenet5", "dgx-a100", 16, 256},
                          {"vgg16", "cori-knl", 64, 256},  {"vgg16", "dgx-a100", 32, 256},
                          {"gpt2", "dgx-a100", 64, 512},   {"gpt2", "cori-knl", 16, 64}};
    std::set<std::string> families_seen;
    for (const Case& k : cases) {
        INFO(k.network << " on " << k.cluster << ", P = " << k.procs);
        networks::Network network = networks::load_network_file(kSource + "/networks/" + k.network + ".json");
        clusters::Cluster cluster = clusters::load_cluster_file(kSource + "/clusters/" + k.cluster + ".json");
        planner::PlannerOptions options;
        options.procs = k.procs;
        options.batch = k.batch;
        options.dtype = network.dtype;
        planner::CostModel model(network, cluster, options);
        planner::SearchResult result = planner::search(model);
        REQUIRE(result.best());
        planner::Plan best = planner::make_plan(model, *result.best(), {k.network, k.cluster});
        reports::PlanReportInput input{&model, &result, 10};
        Json json = Json::parse(reports::plan_json(input, best));
        CHECK(schema_problem(json, schema, schema) == "");

        // The CSV: the schema's candidate keys, in order, cost aside.
        std::istringstream csv(reports::plan_csv(input));
        std::string line;
        std::getline(csv, line);
        std::vector<std::string> header = split_csv_line(line);
        CHECK(header == reports::ranking_columns());
        std::set<std::string> schema_keys, header_keys(header.begin(), header.end());
        for (const auto& key : schema.at("$defs").at("candidate").at("required"))
            if (key != "cost") schema_keys.insert(key.get<std::string>());
        CHECK(header_keys == schema_keys);

        const auto& ranked = json.at("ranked");
        REQUIRE(ranked.size() == result.ranked.size());
        for (std::size_t i = 0; i < ranked.size(); ++i) {
            const planner::Candidate& c = result.ranked[i];
            const Json& row = ranked[i];
            INFO("rank " << i + 1 << ": " << c.label);
            families_seen.insert(planner::to_string(c.strategy));
            REQUIRE(std::getline(csv, line));
            std::vector<std::string> cells = split_csv_line(line);
            REQUIRE(cells.size() == header.size());
            // The CSV row says what the JSON entry says.
            for (std::size_t h = 0; h < header.size(); ++h) {
                const Json& v = row.at(header[h]);
                if (v.is_null()) CHECK(cells[h].empty());
                else if (v.is_number()) CHECK(std::strtod(cells[h].c_str(), nullptr) == Approx(v.get<double>()).epsilon(1e-15));
                else if (v.is_boolean()) CHECK(cells[h] == (v.get<bool>() ? "true" : "false"));
            }
            // The configuration, from the candidate's typed fields.
            CHECK(row.at("processes_per_node") == c.processes_per_node);  // every family
            const std::int64_t P = k.procs, B = k.batch;
            if (planner::is_grid(c.strategy)) {
                CHECK(row.at("pr").get<std::int64_t>() * row.at("pc").get<std::int64_t>() == P);
                CHECK(row.at("pr") == c.grid.pr);
                for (const char* key : {"tensor", "stages", "replicas", "micro_batches", "schedule", "zero"})
                    CHECK(row.at(key).is_null());
            } else if (c.strategy == planner::Strategy::pipeline || c.strategy == planner::Strategy::tp_pp_dp ||
                       c.strategy == planner::Strategy::graph_partition) {
                CHECK(row.at("pr").is_null());
                CHECK(row.at("pc").is_null());
                const std::int64_t T = row.at("tensor"), S = row.at("stages"), R = row.at("replicas"),
                                   M = row.at("micro_batches"), b = row.at("micro_batch_size");
                CHECK(T * S * R == P);
                CHECK(R * M * b == B);
                CHECK(S == c.pipeline.stages);
                CHECK(M == c.pipeline.micro_batches);
                CHECK((c.strategy == planner::Strategy::tp_pp_dp) == (T > 1));
                CHECK(row.at("schedule") == planner::to_string(c.pipeline.schedule));
                if (c.strategy == planner::Strategy::graph_partition) {
                    CHECK(row.at("interleave").is_null());
                    CHECK(row.at("zero").is_null());
                } else {
                    CHECK(row.at("zero") == c.pipeline.zero);
                    CHECK(row.at("interleave") == c.pipeline.interleave);
                    CHECK(row.at("recompute") == planner::to_string(c.pipeline.recompute));
                    CHECK(row.at("sequence_parallel") == c.pipeline.sequence_parallel);
                }
            } else {
                for (const char* key : {"pr", "pc", "tensor", "stages", "replicas", "micro_batches", "micro_batch_size",
                                        "schedule", "interleave", "zero", "recompute", "sequence_parallel"})
                    CHECK(row.at(key).is_null());
            }
            // The parts of the breakdown are the whole iteration: compute, the seven kinds, contention,
            // exposed sync and bubble, read from the CostBreakdown and compared with the JSON.
            const auto& cost = c.plan.cost;
            if (!cost.feasible) continue;  // an infeasible plan's numbers are where scoring stopped
            double sum = cost.fwd_compute_s + cost.bwd_compute_s + cost.sync_contention_s + cost.sync_exposed_s +
                         cost.bubble_s + cost.optimizer_step_s;
            double json_sum = 0;
            for (planner::CommKind kind : planner::kAllCommKinds) {
                sum += cost.comm(kind);
                CHECK(row.at(planner::to_string(kind) + "_s").get<double>() == cost.comm(kind));
            }
            for (const char* key : {"fwd_compute_s", "bwd_compute_s", "all_reduce_s", "all_gather_s", "reduce_scatter_s",
                                    "all_to_all_s", "halo_s", "point_to_point_s", "redistribution_s",
                                    "sync_contention_s", "sync_exposed_s", "bubble_s", "optimizer_step_s"})
                json_sum += row.at(key).get<double>();
            CHECK(sum == Approx(cost.iteration_s).epsilon(1e-9));
            CHECK(json_sum == Approx(row.at("iteration_s").get<double>()).epsilon(1e-9));
            // Throughput, from the network's own totals: model FLOPs (forward + backward) per device,
            // hardware FLOPs adding the forward again under full recomputation and the attention
            // cores under selective, both over the iteration.
            const auto totals = networks::totals(network, B);
            double core = 0;
            for (const auto& layer : network.layers) core += static_cast<double>(layer.attention_core_flops) * B;
            const double model_flops = (totals.fwd_flops + totals.bwd_input_flops + totals.bwd_weight_flops) / P;
            const double redone = c.pipeline.recompute == planner::Recompute::full        ? totals.fwd_flops / P
                                  : c.pipeline.recompute == planner::Recompute::selective ? core / P
                                                                                          : 0.0;
            CHECK(row.at("model_flops_per_s_per_device").get<double>() ==
                  Approx(model_flops / cost.iteration_s).epsilon(1e-12));
            CHECK(row.at("hardware_flops_per_s_per_device").get<double>() ==
                  Approx((model_flops + redone) / cost.iteration_s).epsilon(1e-12));
        }
    }
    // The cases cover every family the search ranks.
    for (const char* family : {"batch", "model", "grid-model", "per-layer", "pipeline", "tp-pp-dp", "graph-partition"})
        CHECK(families_seen.count(family));
}
