// The SVG charts (standalone XML, escaped labels, bars proportional to values) and the shared
// Chrome trace writer.
#include <catch2/catch.hpp>
#include <regex>

#include "common/timeline.hpp"
#include "reports/svg_chart.hpp"
#include "reports/trace.hpp"
#include "tests/reports/xml_check.hpp"

using namespace dnnplan;
using namespace dnnplan::reports;

TEST_CASE("stacked bars are proportional to the values and escape their labels", "[reports]") {
    StackedBarChart chart;
    chart.title = "t <&> \"q\"";
    chart.categories = {"<script>alert(1)</script>", "b"};
    chart.series = {{"s1", {1, 2}}, {"s2", {3, 0}}};
    std::string svg = stacked_bar_svg(chart);
    CHECK(test::xml_problem(svg) == "");
    CHECK(svg.find("<script") == std::string::npos);
    // Widths of the drawn segments: 1, 3 (first bar) and 2 (second): in ratio 1 : 3 : 2.
    std::regex width_re("<rect x=\"[0-9.]+\" y=\"[0-9.]+\" width=\"([0-9.]+)\" height=\"16.0\" fill");
    std::vector<double> widths;
    for (std::sregex_iterator i(svg.begin(), svg.end(), width_re), end; i != end; ++i)
        widths.push_back(std::stod((*i)[1]));
    REQUIRE(widths.size() == 3);
    CHECK(widths[1] / widths[0] == Approx(3).epsilon(0.01));
    CHECK(widths[2] / widths[0] == Approx(2).epsilon(0.01));
}

TEST_CASE("line and scatter charts are XML, with and without log axes", "[reports]") {
    XYChart chart;
    chart.title = "scaling";
    chart.log_x = chart.log_y = true;
    chart.series = {{"a&b", {{1, 10}, {2, 5}, {4, 2.6}, {8, 0}}}, {"empty", {}}};
    CHECK(test::xml_problem(xy_chart_svg(chart)) == "");
    chart.lines = false;
    chart.diagonal = true;
    CHECK(test::xml_problem(xy_chart_svg(chart)) == "");
    chart.log_x = chart.log_y = false;
    chart.series = {};
    CHECK(test::xml_problem(xy_chart_svg(chart)) == "");
    // Nothing to draw on log axes (a scaling study where no P has a feasible plan): an empty,
    // valid chart, not a runaway tick loop.
    chart.log_x = chart.log_y = true;
    chart.series = {{"infeasible everywhere", {}}};
    std::string svg = xy_chart_svg(chart);
    CHECK(test::xml_problem(svg) == "");
    CHECK(svg.size() < 10000);
    StackedBarChart bars;
    bars.series = {{"s", {}}};
    CHECK(test::xml_problem(stacked_bar_svg(bars)) == "");
}

TEST_CASE("Chrome trace: one pid per source, two lanes per rank, microseconds", "[reports]") {
    std::vector<TraceEvent> events{
        {"conv1 forward", "compute", TraceSource::simulated, 0, 0, false, 0.0, 1.5e-3, Json::object()},
        {"conv1 sync", "all_reduce", TraceSource::simulated, 0, 1, true, 1.5e-3, 2.0e-3, Json{{"bytes", 4096}}},
        {"conv1 forward", "compute", TraceSource::measured, 1, 0, false, 0.0, 1.7e-3, Json::object()},
    };
    Json trace = chrome_trace(events, {"batch", "per-layer"});
    const auto& e = trace.at("traceEvents");
    // 2 process names (simulated plan 0 = 2000, measured plan 1 = 3001), 3 thread names, 3 events.
    REQUIRE(e.size() == 8);
    CHECK(e[0].at("args").at("name") == "simulated: batch");
    CHECK(e[0].at("pid") == 2000);
    CHECK(e[1].at("pid") == 3001);
    CHECK(e[1].at("args").at("name") == "measured: per-layer");
    CHECK(e[2].at("args").at("name") == "rank 0");
    CHECK(e[6].at("ts").get<double>() == Approx(1500.0));  // 1.5 ms
    CHECK(e[6].at("dur").get<double>() == Approx(2000.0));
    CHECK(e[6].at("tid") == 3);  // rank 1's gradient-sync lane
    CHECK(e[3].at("args").at("name") == "rank 1 gradient sync");
    CHECK(e[6].at("ph") == "X");

    // Merging a simulated and a measured file keeps every event and each metadata record once.
    Json simulated = chrome_trace({events[0], events[1]});
    Json measured = chrome_trace({events[2]});
    Json merged = merge_chrome_traces({simulated, measured, measured});
    CHECK(merged.at("traceEvents").size() == 5 + 3 + 1);  // the repeated file adds only its complete event
}
