#include "svg_chart.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "text.hpp"

namespace dnnplan::reports {

namespace {

std::string num(double v) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.1f", v);
    return buffer;
}

std::string text_element(double x, double y, const std::string& text, const std::string& anchor = "start",
                         int size = 11, const std::string& extra = "") {
    return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" font-size=\"" + std::to_string(size) + "\" text-anchor=\"" +
           anchor + "\"" + extra + ">" + html_escape(text) + "</text>\n";
}

std::string open_svg(double width, double height, const std::string& title) {
    return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) + "\" height=\"" + num(height) +
           "\" viewBox=\"0 0 " + num(width) + " " + num(height) +
           "\" font-family=\"sans-serif\" role=\"img\">\n<title>" + html_escape(title) + "</title>\n" +
           "<rect x=\"0\" y=\"0\" width=\"" + num(width) + "\" height=\"" + num(height) + "\" fill=\"white\"/>\n" +
           text_element(width / 2, 18, title, "middle", 13, " font-weight=\"bold\"");
}

// Round tick spacing (1, 2 or 5 x 10^k) giving about `count` ticks over [0, max].
std::vector<double> linear_ticks(double lo, double hi, int count = 5) {
    if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return {lo};
    double raw = (hi - lo) / count;
    double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    double step = magnitude;
    for (double m : {1.0, 2.0, 5.0, 10.0})
        if (m * magnitude >= raw) {
            step = m * magnitude;
            break;
        }
    std::vector<double> ticks;
    for (double t = std::ceil(lo / step) * step; t <= hi * (1 + 1e-9); t += step) ticks.push_back(t);
    return ticks;
}

// Powers of ten inside [lo, hi]; with fewer than two, the 1-2-5 multiples too; with fewer than
// two of those (a half-decade axis around one point), every multiple 1..9.
std::vector<double> log_ticks(double lo, double hi) {
    if (!(lo > 0) || !(hi >= lo) || !std::isfinite(hi)) return {};
    auto multiples = [&](std::initializer_list<double> ms) {
        std::vector<double> ticks;
        for (int e = static_cast<int>(std::floor(std::log10(lo))); e <= static_cast<int>(std::ceil(std::log10(hi)));
             ++e)
            for (double m : ms) {
                double t = m * std::pow(10.0, e);
                if (t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9)) ticks.push_back(t);
            }
        return ticks;
    };
    std::vector<double> ticks = multiples({1.0});
    if (ticks.size() < 2) ticks = multiples({1.0, 2.0, 5.0});
    if (ticks.size() < 2) ticks = multiples({1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0});
    return ticks;
}

// Ticks of a byte axis at round binary multiples (16 GiB, 32 GiB, ... rather than 46.6 GiB):
// the 1-2-5 ticks of the values counted in the largest power of 1,024 below `hi`.
std::vector<double> binary_ticks(double lo, double hi) {
    double unit = 1;
    while (hi / unit >= 1024) unit *= 1024;
    std::vector<double> ticks = linear_ticks(lo / unit, hi / unit);
    for (double& t : ticks) t *= unit;
    return ticks;
}

struct Axis {
    double lo = 0, hi = 1;
    bool log = false;
    double pixel_lo = 0, pixel_hi = 1;
    double map(double v) const {
        double f = log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)) : (v - lo) / (hi - lo);
        return pixel_lo + f * (pixel_hi - pixel_lo);
    }
};

Axis make_axis(std::vector<double> values, bool log, double pixel_lo, double pixel_hi, bool from_zero,
               bool binary = false) {
    // An empty chart still gets a valid axis ([1, 10] on a log scale, [0, 1] otherwise).
    Axis axis{log ? 1.0 : 0.0, log ? 10.0 : 1.0, log, pixel_lo, pixel_hi};
    values.erase(std::remove_if(values.begin(), values.end(),
                                [log](double v) { return !std::isfinite(v) || (log && !(v > 0)); }),
                 values.end());
    if (values.empty()) return axis;
    auto [mn, mx] = std::minmax_element(values.begin(), values.end());
    axis.lo = *mn;
    axis.hi = *mx;
    if (log) {
        if (axis.hi <= axis.lo) axis.hi = axis.lo * 10;
        axis.lo = std::pow(10.0, std::floor(std::log10(axis.lo) * 4) / 4);  // quarter-decade margins
        axis.hi = std::pow(10.0, std::ceil(std::log10(axis.hi) * 4) / 4);
    } else {
        if (from_zero) axis.lo = std::min(0.0, axis.lo);
        if (axis.hi <= axis.lo) axis.hi = axis.lo + 1;
        auto ticks = binary ? binary_ticks(axis.lo, axis.hi) : linear_ticks(axis.lo, axis.hi);
        double step = ticks.size() > 1 ? ticks[1] - ticks[0] : axis.hi - axis.lo;
        axis.hi = std::ceil(axis.hi / step - 1e-9) * step;
    }
    return axis;
}

ValueFormat or_default(const ValueFormat& format) {
    if (format) return format;
    return [](double v) {
        char buffer[32];
        std::snprintf(buffer, sizeof buffer, "%g", v);
        return std::string(buffer);
    };
}

std::string legend(const std::vector<std::string>& names, double x, double y, double width, bool markers = false) {
    std::string out;
    double cx = x, cy = y;
    for (std::size_t i = 0; i < names.size(); ++i) {
        double item = 22 + 6.5 * static_cast<double>(names[i].size());
        if (cx + item > x + width && cx > x) {
            cx = x;
            cy += 16;
        }
        if (markers)
            out += "<circle cx=\"" + num(cx + 5) + "\" cy=\"" + num(cy - 4) + "\" r=\"4\" fill=\"" + chart_colour(i) +
                   "\"/>\n";
        else
            out += "<rect x=\"" + num(cx) + "\" y=\"" + num(cy - 9) + "\" width=\"10\" height=\"10\" fill=\"" +
                   chart_colour(i) + "\"/>\n";
        out += text_element(cx + 14, cy, names[i]);
        cx += item;
    }
    return out;
}

}  // namespace

const std::string& chart_colour(std::size_t index) {
    static const std::vector<std::string> palette{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
                                                  "#F0E442", "#000000", "#999999", "#882255", "#44AA99", "#332288"};
    return palette[index % palette.size()];
}

namespace {
// A bar's label on lines of at most `chars` characters, broken at spaces (a pipeline's label is
// 150 characters; cut to one line, GPT-3's ten bars read alike).
std::vector<std::string> label_lines(const std::string& label, std::size_t chars) {
    std::vector<std::string> lines{""};
    std::size_t from = 0;
    while (from < label.size()) {
        std::size_t space = label.find(' ', from);
        std::string word = label.substr(from, space == std::string::npos ? std::string::npos : space - from);
        from = space == std::string::npos ? label.size() : space + 1;
        if (!lines.back().empty() && lines.back().size() + 1 + word.size() > chars) lines.emplace_back();
        lines.back() += (lines.back().empty() ? "" : " ") + word;
    }
    return lines;
}
}  // namespace

std::string stacked_bar_svg(const StackedBarChart& chart) {
    ValueFormat format = or_default(chart.format);
    // 11 px sans-serif averages under 6 px a character: 40 characters fit the 250 px label column.
    const double label_width = 250, plot_width = 450, bar_height = 16, gap = 6, top = 36, line_height = 12;
    const std::size_t label_chars = 40;
    const double width = label_width + plot_width + 90;
    std::vector<std::string> names;
    for (const auto& s : chart.series) names.push_back(s.name);
    double legend_rows = 1 + std::floor(static_cast<double>(names.size()) / 5);
    std::vector<std::vector<std::string>> labels;
    std::vector<double> row_top;  // each row as tall as its label
    double plot_height = gap;
    for (const auto& name : chart.categories) {
        labels.push_back(label_lines(name, label_chars));
        row_top.push_back(top + plot_height);
        plot_height += std::max(bar_height, line_height * static_cast<double>(labels.back().size())) + gap;
    }
    double height = top + plot_height + 40 + legend_rows * 16 + 10;

    std::vector<double> totals(chart.categories.size(), 0);
    for (const auto& s : chart.series)
        for (std::size_t i = 0; i < totals.size() && i < s.values.size(); ++i) totals[i] += std::max(0.0, s.values[i]);
    std::vector<double> extent = totals;
    extent.push_back(0);
    // A limit far beyond the bars (96 GiB against bars under 2 GiB) would leave slivers: the axis
    // then stops at the bars and the limit is named at its end.
    const double largest = *std::max_element(extent.begin(), extent.end());
    const bool limit_on_axis = chart.limit > 0 && chart.limit <= 4 * largest;
    if (limit_on_axis) extent.push_back(chart.limit);
    Axis axis = make_axis(extent, false, label_width, label_width + plot_width, true, chart.binary_ticks);

    std::string out = open_svg(width, height, chart.title);
    for (double t : chart.binary_ticks ? binary_ticks(axis.lo, axis.hi) : linear_ticks(axis.lo, axis.hi)) {
        double x = axis.map(t);
        out += "<line x1=\"" + num(x) + "\" y1=\"" + num(top) + "\" x2=\"" + num(x) + "\" y2=\"" +
               num(top + plot_height) + "\" stroke=\"#dddddd\"/>\n";
        out += text_element(x, top + plot_height + 14, format(t), "middle", 10);
    }
    out += text_element(label_width + plot_width / 2, top + plot_height + 30, chart.value_label, "middle");
    for (std::size_t i = 0; i < chart.categories.size(); ++i) {
        const double row = std::max(bar_height, line_height * static_cast<double>(labels[i].size()));
        const double y = row_top[i] + (row - bar_height) / 2;  // the bar centred on its label
        double line_y = row_top[i] + (row - line_height * static_cast<double>(labels[i].size())) / 2 + line_height - 2;
        out += "<g><title>" + html_escape(chart.categories[i]) + "</title>";
        for (const auto& line : labels[i]) {
            out += text_element(label_width - 6, line_y, line, "end");
            line_y += line_height;
        }
        out += "</g>\n";
        double x = axis.map(0);
        for (std::size_t s = 0; s < chart.series.size(); ++s) {
            double v = i < chart.series[s].values.size() ? std::max(0.0, chart.series[s].values[i]) : 0;
            if (v <= 0) continue;
            double w = axis.map(v) - axis.map(0);
            out += "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(std::max(w, 0.5)) + "\" height=\"" +
                   num(bar_height) + "\" fill=\"" + chart_colour(s) + "\"><title>" +
                   html_escape(chart.categories[i] + ": " + chart.series[s].name + " " + format(v)) +
                   "</title></rect>\n";
            x += w;
        }
        out += text_element(x + 4, y + bar_height - 4, format(totals[i]), "start", 10);
    }
    if (limit_on_axis) {
        double x = axis.map(chart.limit);
        out += "<line x1=\"" + num(x) + "\" y1=\"" + num(top) + "\" x2=\"" + num(x) + "\" y2=\"" +
               num(top + plot_height) + "\" stroke=\"#cc0000\" stroke-dasharray=\"4 3\"/>\n";
        out += text_element(x, top - 2, chart.limit_label, "middle", 10);
    } else if (chart.limit > 0) {
        out += text_element(label_width + plot_width, top - 2, chart.limit_label + " (off the scale) \u2192", "end", 10,
                            " fill=\"#cc0000\"");
    }
    out += "<line x1=\"" + num(axis.map(0)) + "\" y1=\"" + num(top) + "\" x2=\"" + num(axis.map(0)) + "\" y2=\"" +
           num(top + plot_height) + "\" stroke=\"black\"/>\n";
    out += legend(names, 10, top + plot_height + 52, width - 20);
    return out + "</svg>\n";
}

std::string xy_chart_svg(const XYChart& chart) {
    ValueFormat xf = or_default(chart.x_format), yf = or_default(chart.y_format);
    const double left = 80, plot_width = 460, top = 36, plot_height = 260, width = left + plot_width + 30;
    std::vector<std::string> names;
    std::vector<double> xs, ys;
    for (const auto& s : chart.series) {
        names.push_back(s.name);
        for (const auto& p : s.points) {
            if ((chart.log_x && !(p.x > 0)) || (chart.log_y && !(p.y > 0))) continue;
            xs.push_back(p.x);
            ys.push_back(p.y);
        }
    }
    if (chart.diagonal) {  // same range on both axes so y = x is the diagonal
        std::vector<double> both = xs;
        both.insert(both.end(), ys.begin(), ys.end());
        xs = ys = both;
    }
    double legend_rows = 1 + std::floor(static_cast<double>(names.size()) / 5);
    double height = top + plot_height + 44 + legend_rows * 16 + 10;
    Axis ax = make_axis(xs, chart.log_x, left, left + plot_width, !chart.log_x && !chart.diagonal);
    Axis ay = make_axis(ys, chart.log_y, top + plot_height, top, !chart.log_y && !chart.diagonal);

    std::string out = open_svg(width, height, chart.title);
    std::vector<double> x_ticks = chart.x_ticks;
    if (x_ticks.empty()) x_ticks = chart.log_x ? log_ticks(ax.lo, ax.hi) : linear_ticks(ax.lo, ax.hi);
    for (double t : x_ticks) {
        if (t < ax.lo * (1 - 1e-9) || t > ax.hi * (1 + 1e-9)) continue;
        double x = ax.map(t);
        out += "<line x1=\"" + num(x) + "\" y1=\"" + num(top) + "\" x2=\"" + num(x) + "\" y2=\"" +
               num(top + plot_height) + "\" stroke=\"#dddddd\"/>\n";
        out += text_element(x, top + plot_height + 14, xf(t), "middle", 10);
    }
    for (double t : chart.log_y ? log_ticks(ay.lo, ay.hi) : linear_ticks(ay.lo, ay.hi)) {
        double y = ay.map(t);
        out += "<line x1=\"" + num(left) + "\" y1=\"" + num(y) + "\" x2=\"" + num(left + plot_width) + "\" y2=\"" +
               num(y) + "\" stroke=\"#dddddd\"/>\n";
        out += text_element(left - 4, y + 3, yf(t), "end", 10);
    }
    out += "<rect x=\"" + num(left) + "\" y=\"" + num(top) + "\" width=\"" + num(plot_width) + "\" height=\"" +
           num(plot_height) + "\" fill=\"none\" stroke=\"black\"/>\n";
    out += text_element(left + plot_width / 2, top + plot_height + 30, chart.x_label, "middle");
    out += text_element(14, top + plot_height / 2, chart.y_label, "middle", 11,
                        " transform=\"rotate(-90 14 " + num(top + plot_height / 2) + ")\"");
    if (chart.diagonal)
        out += "<line x1=\"" + num(ax.map(ax.lo)) + "\" y1=\"" + num(ay.map(ay.lo)) + "\" x2=\"" + num(ax.map(ax.hi)) +
               "\" y2=\"" + num(ay.map(ay.hi)) + "\" stroke=\"#888888\" stroke-dasharray=\"4 3\"/>\n";
    for (std::size_t s = 0; s < chart.series.size(); ++s) {
        std::string path;
        for (const auto& p : chart.series[s].points) {
            if ((chart.log_x && !(p.x > 0)) || (chart.log_y && !(p.y > 0))) continue;
            std::string point = num(ax.map(p.x)) + "," + num(ay.map(p.y));
            path += (path.empty() ? "" : " ") + point;
            out += "<circle cx=\"" + num(ax.map(p.x)) + "\" cy=\"" + num(ay.map(p.y)) + "\" r=\"3\" fill=\"" +
                   chart_colour(s) + "\"><title>" +
                   html_escape(chart.series[s].name + ": " + xf(p.x) + ", " + yf(p.y)) + "</title></circle>\n";
        }
        if (chart.lines && path.find(' ') != std::string::npos)
            out += "<polyline points=\"" + path + "\" fill=\"none\" stroke=\"" + chart_colour(s) +
                   "\" stroke-width=\"1.5\"/>\n";
    }
    out += legend(names, 10, top + plot_height + 50, width - 20, true);
    return out + "</svg>\n";
}

}  // namespace dnnplan::reports
