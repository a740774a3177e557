// The dnnplan executable: argument wiring over the library, nothing else. Exit status 0 on
// success, 1 when no candidate plan is feasible, 2 on bad input or usage.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <vector>

#include "cli/commands.hpp"
#include "common/diagnostics.hpp"

namespace dnnplan::cli {

std::string data_dir() {
    if (const char* env = std::getenv("DNNPLAN_DATA_DIR"); env && *env) return env;
    return DNNPLAN_SOURCE_DIR;
}
std::string networks_dir() { return data_dir() + "/networks"; }
std::string clusters_dir() { return data_dir() + "/clusters"; }

CLI::Validator positive_integer() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            try {
                std::size_t used = 0;
                long long value = std::stoll(text, &used);
                if (used == text.size() && value >= 1) return "";
            } catch (const std::exception&) {
            }
            return "must be a positive integer, got " + one_line(text);
        },
        "POSITIVE");
}

CLI::Validator integer_within(long long min, long long max) {
    return CLI::Validator(
        [min, max](std::string& text) -> std::string {
            try {
                std::size_t used = 0;
                long long value = std::stoll(text, &used);
                if (used == text.size() && value >= min && value <= max) return "";
            } catch (const std::exception&) {
            }
            return "must be an integer from " + std::to_string(min) + " to " + std::to_string(max) + ", got " +
                   one_line(text);
        },
        "INT in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
}

CLI::Validator number_within(double min, double max, const std::string& unit) {
    return CLI::Validator(
        [min, max, unit](std::string& text) -> std::string {
            errno = 0;
            char* end = nullptr;
            double value = std::strtod(text.c_str(), &end);
            // strtod reads "nan" and "inf": finite numbers only, and the whole text.
            if (!text.empty() && end == text.c_str() + text.size() && errno == 0 && std::isfinite(value) &&
                value >= min && value <= max)
                return "";
            return "must be a number " + describe_range(min, max, unit) + ", got " + one_line(text);
        },
        "NUMBER in [" + format_number(min) + ", " + format_number(max) + "]");
}

CLI::Validator output_file() {
    return CLI::Validator(
        [](std::string& path) -> std::string {
            namespace fs = std::filesystem;
            if (path.empty()) return "the output file name is empty";
            std::error_code ec;
            if (path.back() == '/' || fs::is_directory(path, ec))
                return one_line(path) + " is a directory, expected a file to write";
            // Checked before any work: a run of minutes must not end in "cannot be written".
            fs::path parent = fs::path(path).parent_path();
            if (!parent.empty() && !fs::is_directory(parent, ec))
                return "directory " + one_line(parent.string()) + " does not exist";
            return "";
        },
        "FILE");
}

void emit(const std::string& content, const std::string& out_path) {
    if (out_path.empty())
        std::cout << content;
    else
        write_file_atomically(out_path, content);
}

namespace {
std::size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = up;
        }
    }
    return row[b.size()];
}

// The candidate closest to `typed` (a typo, a prefix or a longer spelling of it), or "".
std::string closest(const std::string& typed, const std::vector<std::string>& candidates) {
    std::string best;
    std::size_t best_distance = std::max<std::size_t>(2, typed.size() / 3) + 1;
    for (const auto& c : candidates) {
        std::size_t d = edit_distance(typed, c);
        if (c.size() >= 2 && typed.size() >= 2 && (typed.find(c) != std::string::npos || c.find(typed) != std::string::npos))
            d = std::min<std::size_t>(d, 1);
        if (d < best_distance) {
            best_distance = d;
            best = c;
        }
    }
    return best;
}
}  // namespace

// CLI11's own message for unexpected arguments lists them in reverse order ("not expected: 64
// --nprocs"); this names the first unknown subcommand or option, suggests the closest valid one and
// points to --help.
std::string explain_unexpected(CLI::App& app, int argc, char** argv) {
    std::vector<std::string> subcommands;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) subcommands.push_back(sub->get_name());
    CLI::App* where = &app;
    std::string command = "dnnplan";
    int first = 1;
    if (argc > 1 && argv[1][0] != '-') {
        std::string word = argv[1];
        if (std::find(subcommands.begin(), subcommands.end(), word) == subcommands.end()) {
            std::string guess = closest(word, subcommands);
            return "unknown subcommand \"" + one_line(word) + "\"" + (guess.empty() ? "" : " (did you mean " + guess + "?)") +
                   "; the subcommands are " + join_choices(subcommands) + " (dnnplan --help)";
        }
        where = app.get_subcommand(word);
        command += " " + word;
        first = 2;
    }
    std::vector<std::string> names;
    for (const CLI::Option* option : where->get_options()) {
        for (const auto& l : option->get_lnames()) names.push_back("--" + l);
        for (const auto& sn : option->get_snames()) names.push_back("-" + sn);
    }
    for (int i = first; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg.size() < 2 || arg[0] != '-' || (arg[1] >= '0' && arg[1] <= '9') || arg[1] == '.') continue;
        std::string name = arg.substr(0, arg.find('='));
        if (std::find(names.begin(), names.end(), name) != names.end()) continue;
        std::string guess = closest(name, names);
        return "unknown option " + one_line(name) + " for " + command +
               (guess.empty() ? "" : " (did you mean " + guess + "?)") + "; see " + command + " --help";
    }
    // No unknown option: a value with no option before it (or an option given two values).
    std::vector<std::string> extra = where->remaining();
    std::string shown = extra.empty() ? std::string("?") : one_line(extra.front());
    return "unexpected argument \"" + shown + "\" (each option takes one value; see " + command + " --help)";
}

}  // namespace dnnplan::cli

int main(int argc, char** argv) {
    using namespace dnnplan;
    CLI::App app{"dnnplan: plan, simulate and validate the parallel training of a deep neural network"};
    app.require_subcommand(0, 1);

    // Subcommands first, the top-level default (plain `dnnplan --net ... --procs ...`) last.
    std::vector<cli::Command> commands{cli::add_inspect_command(app), cli::add_networks_command(app),
                                       cli::add_clusters_command(app), cli::add_plan_command(app), cli::add_simulate_command(app),
                                       cli::add_report_command(app), cli::add_sweep_command(app),
                                       cli::add_validate_command(app), cli::add_calibrate_command(app)};
    cli::Command default_plan = cli::add_default_plan(app);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ExtrasError&) {
        std::cerr << "dnnplan: " << cli::explain_unexpected(app, argc, argv) << "\n";
        return 2;
    } catch (const CLI::ParseError& e) {
        std::cerr << "dnnplan: " << one_line(e.what()) << "\n";
        return 2;
    }

    try {
        for (const auto& command : commands)
            if (command.app->parsed()) return command.run();
        return default_plan.run();
    } catch (const InputError& e) {
        std::cerr << e.what() << "\n";
        return 2;
    } catch (const std::bad_alloc&) {
        std::cerr << "dnnplan: out of memory\n";
        return 2;
    } catch (const std::exception& e) {
        // Anything else is a bug in dnnplan, but still one line and no abort.
        std::cerr << "dnnplan: internal error: " << e.what() << "\n";
        return 2;
    }
}
