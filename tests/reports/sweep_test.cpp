// The sweep's lists and ranges, the serial runner's order, and the sweep table.
#include "sweep/sweep.hpp"

#include <catch2/catch.hpp>

#include "clusters/cluster.hpp"
#include "networks/network.hpp"
#include "reports/sweep_table.hpp"

using namespace dnnplan;

TEST_CASE("process lists and doubling ranges", "[reports][sweep]") {
    using V = std::vector<std::int64_t>;
    CHECK(sweep::parse_procs("8:64") == V{8, 16, 32, 64});
    CHECK(sweep::parse_procs("8:100") == V{8, 16, 32, 64, 100});  // the end is always included
    CHECK(sweep::parse_procs("512,1,8:16,8") == V{1, 8, 16, 512});
    CHECK(sweep::parse_procs("3:3") == V{3});
    CHECK(sweep::parse_procs("8:4096").size() == 10);
    auto message = [](const std::string& text) -> std::string {
        try {
            sweep::parse_procs(text);
        } catch (const InputError& e) {
            return e.what();
        }
        return "";
    };
    CHECK(message("0") == "dnnplan: --procs: \"0\" is not a process count from 1 to 4194304");
    CHECK(message("8:4") == "dnnplan: --procs: range \"8:4\" ends below its start");
    CHECK(message("8,,16") == "dnnplan: --procs: empty item in the list \"8,,16\"");
    CHECK(message("x") != "");
    CHECK(message("-4") != "");
    CHECK(message("99999999999999999999") != "");
    CHECK(sweep::split_list("vgg16,resnet50", "--net") == std::vector<std::string>{"vgg16", "resnet50"});
}

TEST_CASE("the serial runner returns results in configuration order", "[reports][sweep]") {
    sweep::Session session;  // not under mpirun here: rank 0 of 1, no MPI
    REQUIRE(!session.distributed());
    std::vector<std::size_t> progress;
    auto out = sweep::run(
        session, 5, [](std::size_t i) { return "row" + std::to_string(i * i); },
        [&](std::size_t done, std::size_t total) {
            CHECK(total == 5);
            progress.push_back(done);
        });
    CHECK(out == std::vector<std::string>{"row0", "row1", "row4", "row9", "row16"});
    CHECK(progress == std::vector<std::size_t>{1, 2, 3, 4, 5});
}

TEST_CASE("sweep rows: the best plan, pure batch and invalid configurations", "[reports][sweep]") {
    const std::string source = DNNPLAN_SOURCE_DIR;
    networks::Network network = networks::load_network_file(source + "/networks/lenet5.json");
    clusters::Cluster cluster = clusters::load_cluster_file(source + "/clusters/cori-knl.json");
    planner::PlannerOptions options;
    options.procs = 4;
    options.batch = 64;
    planner::CostModel model(network, cluster, options);
    planner::SearchResult result = planner::search(model);
    Json row = reports::sweep_row("lenet5", "cori-knl", 4, options, result);
    CHECK(row.at("status") == "ok");
    CHECK(row.at("iteration_s").get<double>() == result.best()->plan.cost.iteration_s);
    double batch = result.find(planner::Strategy::batch)->plan.cost.iteration_s;
    CHECK(row.at("batch_iteration_s").get<double>() == batch);
    CHECK(row.at("speedup_vs_batch_x").get<double>() == batch / result.best()->plan.cost.iteration_s);
    // The best plan's configuration as named fields (lenet5 at P = 4 is best as a pipeline or a grid).
    const auto* best = result.best();
    if (planner::is_grid(best->strategy)) {
        CHECK(row.at("pr").get<int>() * row.at("pc").get<int>() == 4);
        CHECK(row.at("stages").is_null());
    } else if (best->strategy == planner::Strategy::pipeline) {
        CHECK(row.at("tensor").get<int>() * row.at("stages").get<int>() * row.at("replicas").get<int>() == 4);
        CHECK(row.at("micro_batch_size").get<int>() * row.at("micro_batches").get<int>() * row.at("replicas").get<int>() == 64);
        CHECK(row.at("pr").is_null());
    }
    Json invalid = reports::invalid_sweep_row("lenet5", "dgx-a100", 100000, "P = 100000 exceeds the cluster's devices");
    std::string csv = reports::sweep_csv({row, invalid});
    // Header + 2 rows; every row has one field per column (no commas inside these fields).
    std::size_t lines = 0, at = 0;
    while ((at = csv.find('\n', at)) != std::string::npos) ++lines, ++at;
    CHECK(lines == 3);
    CHECK(csv.find("lenet5,dgx-a100,100000,,,invalid,") != std::string::npos);
    CHECK(Json::parse(reports::sweep_json({row})).at("rows").size() == 1);
}
