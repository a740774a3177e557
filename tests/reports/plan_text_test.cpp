// The planner's text output (issue 18, item 1): wrapping, collapsed repeated blocks, and a ranking
// that fits its width with the stage table of a pipeline plan.
#include <catch2/catch.hpp>
#include <sstream>

#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "planner/plan.hpp"
#include "planner/search.hpp"
#include "reports/plan_report.hpp"

using namespace dnnplan;
using reports::LayerRow;

namespace {
std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}
}  // namespace

TEST_CASE("wrap keeps lines within the width, numbers with their units", "[reports]") {
    const std::string text = "  iteration 21.819 s = forward compute 5.959 s + point-to-point 12.18 ms + bubble 1.215 s";
    for (int width : {20, 30, 45}) {
        auto lines = lines_of(reports::wrap(text, width, 4));
        REQUIRE(lines.size() > 1);
        CHECK(lines[0].rfind("  iteration", 0) == 0);
        for (std::size_t i = 0; i < lines.size(); ++i) {
            CHECK(lines[i].size() <= static_cast<std::size_t>(width));
            if (i > 0) CHECK(lines[i].rfind("    ", 0) == 0);
            CHECK(lines[i].find(" ms") != 0);  // never a unit alone at a line start
            CHECK(lines[i].back() != ' ');
        }
        // Nothing lost: the words, in order.
        std::string joined;
        for (const auto& l : lines) joined += l.substr(l.find_first_not_of(' ')) + " ";
        CHECK(joined == text.substr(2) + " ");
    }
    CHECK(reports::wrap("short", 120, 2) == "short\n");
    CHECK(reports::wrap("no limit at all", 0, 2) == "no limit at all\n");
}

TEST_CASE("identical numbered blocks collapse into one, others stay", "[reports]") {
    std::vector<LayerRow> rows{{"wte", {"embedding", "1"}}};
    for (int b = 0; b < 4; ++b) {
        rows.push_back({"h." + std::to_string(b) + ".attn", {"attention", "2"}});
        rows.push_back({"h." + std::to_string(b) + ".fc", {"linear", "3"}});
    }
    rows.push_back({"h.4.attn", {"attention", "2"}});
    rows.push_back({"h.4.fc", {"linear", "9"}});  // differs: stays apart
    rows.push_back({"lm_head", {"linear", "4"}});
    auto out = reports::collapse_repeated_blocks(rows);
    REQUIRE(out.size() == 7);
    CHECK(out[0].name == "wte");
    CHECK(out[1].name == "h.0 ... h.3 (x4):");
    CHECK(out[1].cells.empty());
    CHECK(out[2].name == "  attn");
    CHECK(out[2].cells == std::vector<std::string>{"attention", "2"});
    CHECK(out[3].name == "  fc");
    CHECK(out[4].name == "h.4.attn");
    CHECK(out[5].name == "h.4.fc");
    CHECK(out[6].name == "lm_head");
    // A pipeline's stage cell may differ between instances: 6 blocks over stages 0, 0, 1, 1, 2, 2
    // collapse into one group whose stage reads "0-2"; without the stage cell they would not.
    std::vector<LayerRow> staged;
    for (int b = 0; b < 6; ++b) {
        staged.push_back({"h." + std::to_string(b) + ".attn", {"attention", std::to_string(b / 2), "co8"}});
        staged.push_back({"h." + std::to_string(b) + ".fc", {"linear", std::to_string(b / 2), "co8"}});
    }
    auto grouped = reports::collapse_repeated_blocks(staged, 1);
    REQUIRE(grouped.size() == 3);
    CHECK(grouped[0].name == "h.0 ... h.5 (x6):");
    CHECK(grouped[1].cells == std::vector<std::string>{"attention", "0-2", "co8"});
    CHECK(grouped[2].cells == std::vector<std::string>{"linear", "0-2", "co8"});
    CHECK(reports::collapse_repeated_blocks(staged).size() == 3 * 3);  // one group per stage
    // A single instance and names without a number are left as they are.
    std::vector<LayerRow> plain{{"conv1_1", {"a"}}, {"conv1_2", {"a"}}, {"b.0.x", {"a"}}};
    CHECK(reports::collapse_repeated_blocks(plain).size() == 3);
    CHECK(reports::collapse_repeated_blocks(plain)[2].name == "b.0.x");
}

TEST_CASE("the ranking fits its width, a pipeline plan shows its stages", "[reports]") {
    const std::string source = DNNPLAN_SOURCE_DIR;
    networks::Network network = networks::load_network_file(source + "/networks/gpt2.json");
    clusters::Cluster cluster = clusters::load_cluster_file(source + "/clusters/dgx-a100.json");
    planner::PlannerOptions options;
    options.procs = 64;
    options.batch = 512;
    options.dtype = network.dtype;
    planner::CostModel model(network, cluster, options);
    planner::SearchResult result = planner::search(model);
    REQUIRE(result.best());
    for (int width : {100, 120}) {
        reports::PlanReportInput in{&model, &result, 10, {width, false, false}};
        for (const auto& line : lines_of(reports::plan_text(in))) {
            INFO(line);
            CHECK(line.size() <= static_cast<std::size_t>(width));
        }
    }
    reports::PlanReportInput wide{&model, &result, 10, {120, true, true}};
    std::size_t widest = 0;
    for (const auto& line : lines_of(reports::plan_text(wide))) widest = std::max(widest, line.size());
    CHECK(widest > 120);
    // The first pipeline candidate, shown as a scored plan: one stage row per stage (or chunk).
    for (const auto& c : result.ranked) {
        if (c.strategy != planner::Strategy::pipeline && c.strategy != planner::Strategy::tp_pp_dp) continue;
        if (!c.plan.cost.feasible || c.pipeline.stages < 2) continue;
        planner::Plan plan = planner::make_plan(model, c, {"gpt2", "dgx-a100"});
        std::string text = reports::scored_plan_text(model, plan);
        int stage_rows = 0;
        for (const auto& line : lines_of(text))
            if (line.find(" ... ") != std::string::npos && !line.empty() && std::isdigit(static_cast<unsigned char>(line[0])))
                ++stage_rows;
        CHECK(stage_rows == c.pipeline.virtual_stages());  // interleaved: one row per chunk
        CHECK(text.find("peak memory: stage ") != std::string::npos);
        break;
    }
}
