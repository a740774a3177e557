// The SVG charts (standalone XML, escaped labels, bars proportional to values) and the shared
// Chrome trace writer.
#include <catch2/catch.hpp>
#include <regex>

#include "common/timeline.hpp"
#include "common/units.hpp"
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

// The tick labels of a chart, in order: the 10 px text elements (bar totals are 10 px too and
// sit at "start"; ticks are "middle" on the value axis, "end" on a y axis).
std::vector<std::string> tick_labels(const std::string& svg, const std::string& anchor) {
    std::regex tick_re("font-size=\"10\" text-anchor=\"" + anchor + "\">([^<]*)<");
    std::vector<std::string> out;
    for (std::sregex_iterator i(svg.begin(), svg.end(), tick_re), end; i != end; ++i) out.push_back((*i)[1]);
    return out;
}

TEST_CASE("chart labels and ticks a person can read (review F-m9)", "[reports]") {
    const std::string gib = "1073741824";
    StackedBarChart bars;
    // GPT-3's bar labels were cut at 32 characters, before "M=": rows 1 and 4 read alike.
    bars.categories = {"tp-pp-dp TP=4 x PP=8 x DP=32, M=24, 1f1b x4 chunks, zero-1, recompute selective",
                       "tp-pp-dp TP=4 x PP=8 x DP=32, M=48, 1f1b x4 chunks, zero-1, recompute selective"};
    bars.series = {{"weights", {0.8 * 1073741824.0, 1.3 * 1073741824.0}}};
    bars.format = [](double v) { return human_bytes(v); };
    bars.binary_ticks = true;
    bars.limit = 96 * 1073741824.0;
    bars.limit_label = "capacity 96.0 GiB";
    std::string svg = stacked_bar_svg(bars);
    CHECK(test::xml_problem(svg) == "");
    CHECK(svg.find("...") == std::string::npos);
    // On lines of at most 40 characters (the first line is exactly 40), broken at spaces.
    CHECK(svg.find(">tp-pp-dp TP=4 x PP=8 x DP=32, M=24, 1f1b<") != std::string::npos);
    CHECK(svg.find(">tp-pp-dp TP=4 x PP=8 x DP=32, M=48, 1f1b<") != std::string::npos);
    CHECK(svg.find(">x4 chunks, zero-1, recompute selective<") != std::string::npos);
    // Byte ticks at binary multiples: the largest bar 1.3 GiB in GiB has 1-2-5 steps of 0.5
    // (1.3 / 5 = 0.26 -> 0.5), the axis ends at the next step, 1.5 GiB.
    CHECK(tick_labels(svg, "middle") == std::vector<std::string>{"0 B", "512.0 MiB", "1.0 GiB", "1.5 GiB"});
    // The 96 GiB capacity is 74 x the largest bar: named at the axis' end, not drawn.
    CHECK(svg.find("capacity 96.0 GiB (off the scale)") != std::string::npos);
    CHECK(svg.find("stroke-dasharray") == std::string::npos);
    bars.limit = 2 * 1073741824.0;  // within 4 x the bars: drawn
    bars.limit_label = "capacity 2.0 GiB";
    svg = stacked_bar_svg(bars);
    CHECK(svg.find("stroke-dasharray") != std::string::npos);
    CHECK(svg.find("off the scale") == std::string::npos);

    // One point near 100 ms against the diagonal: the log axes span 10^-1.25 .. 10^-0.75
    // (0.056 .. 0.178 s, quarter decades around 0.0995 and 0.1005), which hold one power of ten and
    // one 1-2-5 multiple (0.1): the ticks are then 0.06, 0.07, 0.08, 0.09 and 0.1 s.
    XYChart scatter;
    scatter.log_x = scatter.log_y = true;
    scatter.lines = false;
    scatter.diagonal = true;
    scatter.series = {{"simulated", {{0.0995, 0.1005}}}};
    scatter.x_format = scatter.y_format = [](double v) { return human_seconds(v); };
    svg = xy_chart_svg(scatter);
    CHECK(test::xml_problem(svg) == "");
    const std::vector<std::string> expected{"60.00 ms", "70.00 ms", "80.00 ms", "90.00 ms", "100.00 ms"};
    CHECK(tick_labels(svg, "middle") == expected);
    CHECK(tick_labels(svg, "end") == expected);
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
