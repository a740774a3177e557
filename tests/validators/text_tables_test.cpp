// validate's and calibrate's text tables keep their columns apart however wide a value is (the
// preliminary accuracy run of 2026-12-07 printed "1569.3/906.33098.0/2029.0" and
// "5.17e+03 us2.67e+03 us"): hand-made results, no MPI communication.
#include <cstdio>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "validators/calibrate.hpp"
#include "validators/validate.hpp"

using namespace dnnplan::validators;
using dnnplan::Json;

namespace {
std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}
// The cells of a table row: runs of two or more spaces separate them.
std::vector<std::string> cells(const std::string& line) {
    std::vector<std::string> out;
    const std::regex gap("  +");
    for (std::sregex_token_iterator it(line.begin(), line.end(), gap, -1), end; it != end; ++it)
        if (!it->str().empty()) out.push_back(it->str());
    return out;
}
// Whitespace-separated words.
std::vector<std::string> words(const std::string& line) {
    std::vector<std::string> out;
    std::istringstream in(line);
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}
Json ops(double fwd, double bwd, double all_reduce, double halo, double redistribution, double sync) {
    return {{"iteration_s", fwd + bwd},   {"fwd_compute_s", fwd}, {"bwd_compute_s", bwd},
            {"all_reduce_s", all_reduce}, {"halo_s", halo},       {"redistribution_s", redistribution},
            {"sync_exposed_s", sync}};
}
Json plan(const std::string& label, const Json& predicted, const Json& measured) {
    return {{"label", label},
            {"predicted", predicted},
            {"measured", measured},
            {"measured_best", measured},
            {"relative_error", 0.25},
            {"relative_error_best", 1.5},
            {"check",
             {{"performed", true}, {"passed", false}, {"output_error", 5.3e-4}, {"gradient_error", 0.39},
              {"loss_error", 5.3e-4}}}};
}
}  // namespace

int main() {
    int failures = 0;
    auto check = [&](bool ok, const std::string& what) {
        if (!ok) {
            std::printf("FAILED: %s\n", what.c_str());
            ++failures;
        }
    };
    // Seconds chosen so that every per-operation cell is 13-14 characters ("1569.3/13208.6"), the
    // width the old fixed 13-column layout ran together; halo zero in both plans.
    Json results = {{"plans", Json::array()}};
    results["plans"].push_back(plan("plan-resnet-small-1.json", ops(1569.3e-6, 3098.0e-6, 1101.4e-6, 0, 120.3e-6, 0),
                                    ops(906.3e-6, 13208.6e-6, 2029.0e-6, 0, 24953.6e-6, 1.4e-6)));
    results["plans"].push_back(plan("gpt-pipe batch = per-layer", ops(1e-3, 2e-3, 3e-3, 0, 0, 0),
                                    ops(1e-3, 2e-3, 3e-3, 0, 0, 0)));
    const std::string text = results_text(results);
    std::printf("%s", text.c_str());
    const std::vector<std::string> lines = lines_of(text);
    auto line = [&](std::size_t k) { return k < lines.size() ? lines[k] : std::string(); };
    for (const std::string& line : lines) check(line.size() <= 120, "line within 120 columns: " + line);

    // The plans table: 7 cells per row under the 7 headers (the label has single spaces only).
    check(cells(line(0)).size() == 7, "plans table header");
    for (std::size_t k = 2; k < 4; ++k) check(cells(line(k)).size() == 7, "7 cells in: " + line(k));
    // 906.3 + 13208.6 = 14114.9 us measured, 25% and 150% as given.
    std::vector<std::string> first = words(line(2));
    first.resize(6);
    check(first == std::vector<std::string>{"plan-resnet-small-1.json", "4667.3", "14114.9", "25%", "14114.9", "150%"},
          "plans row: " + line(2));

    // The per-operation table: the 5 non-zero operations, each "predicted/measured" its own word.
    std::size_t at = 0;
    while (at < lines.size() && lines[at].rfind("per operation", 0) != 0) ++at;
    check(at < lines.size(), "per-operation table present");
    check(cells(line(at + 1)) ==
              std::vector<std::string>{"plan", "fwd comp", "bwd comp", "all-reduce", "redistrib.", "sync exp."},
          "per-operation header without halo: " + line(at + 1));
    check(words(line(at + 3)) == std::vector<std::string>{"plan-resnet-small-1.json", "1569.3/906.3", "3098.0/13208.6",
                                                            "1101.4/2029.0", "120.3/24953.6", "0.0/1.4"},
          "per-operation cells apart: " + line(at + 3));
    check(cells(line(at + 4)).size() == 6, "6 cells in: " + line(at + 4));
    check(line(at + 5) == "(zero in every plan, not shown: halo)", "omitted columns named: " + line(at + 5));

    // calibrate: 5.17 ms measured, 2.67 ms model, spread 150% (a disturbed machine) are plain
    // numbers with a space before each.
    Calibration c;
    c.ranks = 2;
    c.cpu = "test";
    c.point_to_point.push_back({16.0 * (1 << 20), 5170e-6, 1.5, 2670e-6});
    c.all_reduce.push_back({1 << 20, 140e-6, 0.1, 1290e-6});
    const std::string cal = calibration_text(c);
    std::printf("%s", cal.c_str());
    bool found = false;
    for (const std::string& line : lines_of(cal))
        if (line.find("16 MiB") != std::string::npos && line.find("ping") == std::string::npos) {
            found = true;
            // 16 MiB 5170 us 2670 us -48% 150%: model error (2670 - 5170) / 5170 = -48.4%.
            check(words(line) == std::vector<std::string>{"16", "MiB", "5170", "us", "2670", "us", "-48%", "150%"},
                  "ping-pong row apart: " + line);
        }
    check(found, "ping-pong row present");
    check(cal.find("e+") == std::string::npos, "no exponents in the calibration text");
    return failures == 0 ? 0 : 1;
}
