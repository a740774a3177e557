// Text, JSON and CSV forms of a simulation result, and its Chrome trace.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "common/timeline.hpp"
#include "common/units.hpp"
#include "planner/plan.hpp"
#include "simulator/simulator.hpp"

namespace dnnplan::simulator {

namespace {

struct Row {
    const char* key;    // JSON and CSV
    const char* label;  // text
    double (*field)(const planner::CostBreakdown&);
};
// The breakdown keys the simulation measures (memory is not simulated).
const Row kRows[] = {
    {"iteration_s", "iteration", [](const planner::CostBreakdown& c) { return c.iteration_s; }},
    {"fwd_compute_s", "forward compute", [](const planner::CostBreakdown& c) { return c.fwd_compute_s; }},
    {"bwd_compute_s", "backward compute", [](const planner::CostBreakdown& c) { return c.bwd_compute_s; }},
    {"all_reduce_s", "all-reduce", [](const planner::CostBreakdown& c) { return c.comm(planner::CommKind::all_reduce); }},
    {"all_gather_s", "all-gather", [](const planner::CostBreakdown& c) { return c.comm(planner::CommKind::all_gather); }},
    {"reduce_scatter_s", "reduce-scatter", [](const planner::CostBreakdown& c) { return c.comm(planner::CommKind::reduce_scatter); }},
    {"all_to_all_s", "all-to-all", [](const planner::CostBreakdown& c) { return c.comm(planner::CommKind::all_to_all); }},
    {"halo_s", "halo", [](const planner::CostBreakdown& c) { return c.comm(planner::CommKind::halo); }},
    {"point_to_point_s", "point-to-point", [](const planner::CostBreakdown& c) { return c.comm(planner::CommKind::point_to_point); }},
    {"redistribution_s", "redistribution", [](const planner::CostBreakdown& c) { return c.comm(planner::CommKind::redistribution); }},
    {"sync_total_s", "gradient sync (all)", [](const planner::CostBreakdown& c) { return c.sync_total_s; }},
    {"sync_exposed_s", "exposed grad. sync", [](const planner::CostBreakdown& c) { return c.sync_exposed_s; }},
};

double relative(double simulated, double predicted) {
    if (predicted == 0) return simulated == 0 ? 0.0 : INFINITY;
    return (simulated - predicted) / predicted;
}

std::string percent(double x) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%+.1f%%", 100 * x);
    return buffer;
}

// A part under 1% of the predicted iteration: its relative difference says little (+176286% on a
// few microseconds), so the text gives the difference in time.
bool minor_part(double predicted_part, const planner::CostBreakdown& predicted) {
    return predicted_part < 0.01 * predicted.iteration_s;
}

// The difference column of the text table.
std::string difference_text(double simulated, double predicted_part, const planner::CostBreakdown& predicted) {
    if (minor_part(predicted_part, predicted)) {
        const double d = simulated - predicted_part;
        std::string text(1, d >= 0 ? '+' : '-');  // not "literal" + string&&: GCC 12's false -Wrestrict (PR 105329)
        return text + human_seconds(std::fabs(d));
    }
    const double rel = relative(simulated, predicted_part);
    return std::isfinite(rel) ? percent(rel) : "n/a";
}

// The parts (at least 1% of the iteration) whose simulation differs from the prediction by more
// than 10%, for the agreement verdict: "all-reduce +80.8%".
std::string differing_parts(const SimResult& result, const planner::CostBreakdown& predicted) {
    std::string out;
    for (const Row& row : kRows) {
        const double p = row.field(predicted), rel = relative(row.field(result.simulated), p);
        if (row.field == kRows[0].field || minor_part(p, predicted) || std::fabs(rel) <= 0.10) continue;
        out += (out.empty() ? "" : ", ") + std::string(row.label) + " " + percent(rel);
    }
    return out;
}

// Words of `text` on lines of at most `width` columns, the later lines indented by `indent`.
std::string wrapped(const std::string& text, std::size_t width, std::size_t indent) {
    std::string out, line;
    std::istringstream words(text);
    for (std::string word; words >> word;) {
        if (!line.empty() && line.size() + 1 + word.size() > width) {
            out += line + "\n";
            line = std::string(indent, ' ');
        } else if (!line.empty()) {
            line += " ";
        }
        line += word;
    }
    return out + line + "\n";
}

}  // namespace

std::string verdict(const SimResult& result, const planner::CostBreakdown& predicted) {
    const double rel = relative(result.simulated.iteration_s, predicted.iteration_s);
    const double blocking = result.simulated.blocking_comm_s() - predicted.blocking_comm_s();
    const double sync = result.simulated.sync_exposed_s - predicted.sync_exposed_s;
    char buffer[1024];
    if (std::fabs(rel) <= 0.01) {
        const std::string parts = differing_parts(result, predicted);
        std::snprintf(buffer, sizeof buffer,
                      "agreement: the simulated iteration is within 1%% of the analytical prediction (%s) on this %s "
                      "platform%s%s",
                      percent(rel).c_str(), result.platform_kind.c_str(),
                      parts.empty() ? "" : "; some of its parts differ more: ", parts.c_str());
    } else if (rel > 0) {
        std::snprintf(buffer, sizeof buffer,
                      "slowdown: the simulated iteration is %s longer than the analytical prediction on this %s "
                      "platform: messages share links (contention) or cross extra hops that the alpha-beta model "
                      "does not see (%s more in blocking communication, %s more exposed gradient synchronisation)",
                      percent(rel).c_str(), result.platform_kind.c_str(), human_seconds(blocking).c_str(),
                      human_seconds(sync).c_str());
    } else {
        std::snprintf(buffer, sizeof buffer,
                      "speed-up: the simulated iteration is %s shorter than the analytical prediction on this %s "
                      "platform: ranks move on as soon as their own messages are done instead of in lockstep, or "
                      "routes are shorter than the model's worst case",
                      percent(rel).c_str(), result.platform_kind.c_str());
    }
    return buffer;
}

Json result_to_json(const SimResult& result, const planner::CostBreakdown& predicted, const SimOptions& options) {
    Json simulated = Json::object();
    Json differences = Json::object();
    for (const Row& row : kRows) {
        simulated[row.key] = row.field(result.simulated);
        differences[row.key] = relative(row.field(result.simulated), row.field(predicted));
        if (!std::isfinite(differences[row.key].get<double>())) differences[row.key] = nullptr;
    }
    // Pipelines: the critical rank's time waiting for a neighbour stage that had not sent yet.
    simulated["bubble_s"] = result.simulated.bubble_s;
    simulated["critical_rank"] = result.critical_rank;
    simulated["messages"] = result.messages;
    simulated["wall_s"] = result.wall_s;
    simulated["messages_per_wall_s"] = result.wall_s > 0 ? result.messages / result.wall_s : 0.0;
    simulated["cpu_s"] = result.cpu_s;
    simulated["peak_rss_bytes"] = result.peak_rss_bytes;
    simulated["ranks"] = result.ranks;
    simulated["actors"] = result.actors;
    simulated["reduction"] = result.reduction.empty() ? Json(nullptr) : Json(result.reduction);
    double rel = relative(result.simulated.iteration_s, predicted.iteration_s);
    return Json{{"predicted", planner::cost_to_json(predicted)},
                {"simulated", simulated},
                {"relative_difference", std::isfinite(rel) ? Json(rel) : Json(nullptr)},
                {"relative_difference_by_kind", differences},
                {"verdict", verdict(result, predicted)},
                {"platform",
                 {{"kind", result.platform_kind},
                  {"summary", result.platform_summary},
                  {"hosts", result.platform_hosts},
                  {"link_bandwidth_Bps", result.link_bandwidth_Bps},
                  {"link_latency_s", result.link_latency_s},
                  {"topology_option", options.platform.topology},
                  {"file", options.platform.platform_file},
                  {"rank_mapping", result.rank_mapping}}},
                {"network_model", to_string(options.platform.network_model)},
                {"links", result.links}};
}

namespace {
// The most loaded links as a table: bytes, busy fraction, utilisation and who sent the bytes.
std::string links_text(const SimResult& result) {
    if (!result.links.is_object() || result.links.at("most_loaded").empty()) return "";
    std::ostringstream out;
    char line[512];
    out << "\nmost loaded links (" << result.links.at("links_used").get<std::int64_t>() << " links used):\n";
    // Who sent the bytes goes on the lines under each link, wrapped to 120 columns (the terminal
    // width the other tables keep; JSON has every sender whole).
    constexpr std::size_t kWidth = 120;
    int name_width = 28;
    for (const Json& l : result.links.at("most_loaded"))
        name_width = std::max(name_width, static_cast<int>(l.at("link").get<std::string>().size()));
    std::snprintf(line, sizeof line, "%-*s %12s %8s %8s\n", name_width, "link", "bytes", "busy", "util.");
    out << line;
    for (const Json& l : result.links.at("most_loaded")) {
        std::snprintf(line, sizeof line, "%-*s %12s %7.1f%% %7.1f%%\n", name_width,
                      l.at("link").get<std::string>().c_str(), human_bytes(l.at("bytes").get<double>()).c_str(),
                      100 * l.at("busy_fraction").get<double>(), 100 * l.at("utilisation").get<double>());
        out << line;
        const std::string lead = "    sent by: ", indent(lead.size(), ' ');
        std::string row = lead;
        bool first = true;
        for (const Json& by : l.at("top_senders")) {
            const std::string sender = by.at("what").get<std::string>() + " " + human_bytes(by.at("bytes").get<double>());
            if (!first && row.size() + 2 + sender.size() > kWidth) {
                out << row << ",\n";
                row = indent;
            } else if (!first) {
                row += ", ";
            }
            row += sender;
            first = false;
        }
        if (!first) out << row << "\n";
    }
    out << "\n";  // the table ends here (the notes after it are prose)
    return out.str();
}
}  // namespace

std::string result_text(const SimResult& result, const planner::CostBreakdown& predicted, const SimOptions& options) {
    std::ostringstream out;
    constexpr std::size_t kWidth = 120;  // as the links table below
    out << wrapped("platform: " + result.platform_summary, kWidth, 4);
    out << "network model: " << to_string(options.platform.network_model) << "\n\n";
    char line[256];
    std::snprintf(line, sizeof line, "%-20s %14s %14s %12s\n", "", "predicted", "simulated", "difference");
    out << line;
    for (const Row& row : kRows) {
        double p = row.field(predicted), s = row.field(result.simulated);
        if (p == 0 && s == 0) continue;
        std::snprintf(line, sizeof line, "%-20s %14s %14s %12s\n", row.label, human_seconds(p).c_str(),
                      human_seconds(s).c_str(), difference_text(s, p, predicted).c_str());
        out << line;
    }
    out << "(difference: relative, or in time for a part under 1% of the predicted iteration)\n";
    if (result.simulated.bubble_s > 0) {
        // Pipelines and graph partitions: the prediction's rows are its slowest stage's (busiest
        // device's), the simulation's the critical rank's.
        std::snprintf(line, sizeof line,
                      "pipeline: rows are the critical rank %d's (the prediction's: its slowest stage's or busiest "
                      "device's); it waited %s for other stages or devices (bubble)\n",
                      result.critical_rank, human_seconds(result.simulated.bubble_s).c_str());
        out << wrapped(line, kWidth, 2);
    }
    out << "\n" << wrapped(verdict(result, predicted), kWidth, 2);
    std::snprintf(line, sizeof line,
                  "%lld messages simulated in %.3f s of wall time (%.0f per second), %.3f s of CPU, %s peak memory\n",
                  static_cast<long long>(result.messages), result.wall_s,
                  result.wall_s > 0 ? result.messages / result.wall_s : 0.0, result.cpu_s,
                  human_bytes(result.peak_rss_bytes).c_str());
    out << line;
    out << links_text(result);
    if (!result.reduction.empty()) out << "reduced replay (" << result.actors << " actors for " << result.ranks
                                       << " ranks): " << result.reduction << "\n";
    return out.str();
}

std::string result_csv(const SimResult& result, const planner::CostBreakdown& predicted) {
    std::ostringstream out;
    out.precision(17);
    out << "key,predicted,simulated,relative_difference\n";
    for (const Row& row : kRows) {
        double p = row.field(predicted), s = row.field(result.simulated);
        double rel = relative(s, p);
        out << row.key << "," << p << "," << s << ",";
        if (std::isfinite(rel)) out << rel;
        out << "\n";
    }
    return out.str();
}

Json chrome_trace(const SimResult& result) {
    // The shared timeline convention (common/timeline.hpp): source "simulated", rank r's main stream
    // on tid 2r and its gradient-synchronisation stream on tid 2r + 1, microseconds.
    std::vector<TraceEvent> events;
    events.reserve(result.slices.size());
    for (const Slice& s : result.slices) {
        TraceEvent e;
        e.name = s.name;
        e.category = s.cat;
        e.source = TraceSource::simulated;
        e.rank = s.rank;
        e.sync_lane = s.track == 1;
        e.start_s = s.start_s;
        e.duration_s = s.duration_s;
        events.push_back(std::move(e));
    }
    return dnnplan::chrome_trace(events);
}

}  // namespace dnnplan::simulator
