// Inline SVG charts for the HTML report: stacked bars, lines and scatter plots. Each function
// returns one standalone <svg> element (valid XML: every label is escaped), drawn with fixed
// sizes and colours so the page needs no script, font or stylesheet from the network and prints.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace dnnplan::reports {

// How numbers are written on axes and in tooltips ("12.3 ms", "1.5 GiB").
using ValueFormat = std::function<std::string(double)>;

struct BarSeries {
    std::string name;            // legend entry ("compute", "all-reduce", ...)
    std::vector<double> values;  // one per category; negative values are drawn as 0
};

// Horizontal stacked bars: one bar per category, one segment per series. An optional limit
// (memory capacity) is drawn as a dashed vertical line.
struct StackedBarChart {
    std::string title;
    std::string value_label;              // axis title ("seconds per iteration")
    std::vector<std::string> categories;  // bar labels, top to bottom
    std::vector<BarSeries> series;
    ValueFormat format;
    double limit = 0;  // 0: none; more than 4 x the longest bar: named at the axis' end, not drawn
    std::string limit_label;
    bool binary_ticks = false;  // byte axes: ticks at 1-2-5 multiples of a power of 1,024
};

struct Point {
    double x = 0, y = 0;
};
struct LineSeries {
    std::string name;
    std::vector<Point> points;  // drawn in order; non-positive values are skipped on log axes
};

// Lines (scaling) or, with lines = false, markers only (scatter). With diagonal, the y = x line
// (perfect agreement) is drawn too.
struct XYChart {
    std::string title;
    std::string x_label, y_label;
    bool log_x = false, log_y = false;
    bool lines = true;
    bool diagonal = false;
    std::vector<LineSeries> series;
    ValueFormat x_format, y_format;
    std::vector<double> x_ticks;  // empty: chosen automatically
};

std::string stacked_bar_svg(const StackedBarChart& chart);
std::string xy_chart_svg(const XYChart& chart);

// The i-th colour of the chart palette (Okabe-Ito, readable by colour-blind readers and in grey).
const std::string& chart_colour(std::size_t index);

}  // namespace dnnplan::reports
