// The dnnplan executable: argument wiring over the library, nothing else. Exit status 0 on
// success, 1 when no candidate plan is feasible, 2 on bad input or usage.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <vector>

#include <unistd.h>

#include "cli/commands.hpp"
#include "common/diagnostics.hpp"
#include "common/names.hpp"

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
            // The file is written as a temporary beside it, then renamed: the directory must be writable.
            std::string dir = parent.empty() ? std::string(".") : parent.string();
            if (::access(dir.c_str(), W_OK) != 0)
                return "directory " + one_line(dir) + " is not writable (" + std::strerror(errno) + ")";
            if (fs::exists(path, ec) && ::access(path.c_str(), W_OK) != 0)
                return one_line(path) + " is not writable (" + std::strerror(errno) + ")";
            return "";
        },
        "FILE");
}

CLI::Validator one_of(const std::vector<std::string>& choices,
                      const std::vector<std::pair<std::string, std::string>>& aliases) {
    return CLI::Validator(
        [choices, aliases](std::string& text) -> std::string {
            if (std::string same = same_name_ignoring_case(text, choices); !same.empty()) {
                text = same;
                return "";
            }
            for (const auto& [alias, choice] : aliases)
                if (!same_name_ignoring_case(text, {alias}).empty()) {
                    text = choice;
                    return "";
                }
            std::string guess = closest_name(text, choices);
            return "must be " + join_choices(choices) + ", got " + one_line(text) +
                   (guess.empty() ? "" : " (did you mean " + guess + "?)");
        },
        join_choices(choices));
}

void emit(const std::string& content, const std::string& out_path, const std::string& what) {
    if (out_path.empty()) {
        std::cout << content;
        return;
    }
    write_file_atomically(out_path, content);
    confirm_written(out_path, what);
}

void confirm_written(const std::string& path, const std::string& what) {
    std::cerr << "wrote " << one_line(path) << (what.empty() ? "" : " (" + what + ")") << "\n";
}

// The candidate closest to `typed` (a typo, a prefix or a longer spelling of it), or "".
static std::string closest(const std::string& typed, const std::vector<std::string>& candidates) {
    return closest_name(typed, candidates);
}

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

namespace {
const char* kExitCodes =
    "Exit status: 0 success; 1 no feasible plan (the reasons on stderr, no file written);\n"
    "  2 bad input or usage (one message naming the file, the JSON pointer and what is wrong);\n"
    "  3 a simulation, MPI run or sweep rank stopped (time limit, hang, a rank died).";
}  // namespace

// Examples and exit codes under every --help (issue 18, item 3); each example runs as written
// from the source tree (README.md shows the same commands).
void add_help_footers(CLI::App& app) {
    app.footer(std::string("Examples:\n"
                           "  dnnplan --net vgg16 --procs 512                        rank the strategies\n"
                           "  dnnplan --net vgg16 --procs 512 --out plan.json        ... and save the best plan\n"
                           "  dnnplan --net vgg16 --procs 512 --trace predicted.json ... and its predicted timeline\n"
                           "  dnnplan plan --plan plan.json --cluster dgx-a100       re-score a saved plan elsewhere\n"
                           "  dnnplan simulate --plan plan.json                      replay it in SimGrid\n"
                           "  dnnplan report --net vgg16 --procs 512 --out report.html\n"
                           "  dnnplan sweep --net vgg16,resnet50 --procs 8:4096 --out sweep.html\n"
                           "Subcommand help: dnnplan SUBCOMMAND --help.\n") +
               kExitCodes);
    const std::vector<std::pair<std::string, std::string>> examples{
        {"inspect", "dnnplan inspect --net resnet50 --batch 32"},
        {"networks", "dnnplan networks"},
        {"clusters", "dnnplan clusters"},
        {"plan", "dnnplan plan --net gpt2 --procs 64 --cluster dgx-a100 --out plan.json; dnnplan plan --plan plan.json "
                 "--cluster dgx-h100"},
        {"simulate", "dnnplan simulate --plan plan.json --trace timeline.json --format json --out sim.json"},
        {"report", "dnnplan report --net vgg16 --procs 512 --simulated sim.json --out report.html; dnnplan report "
                   "--plan plan.json --out plan.md"},
        {"sweep", "dnnplan sweep --net vgg16,resnet50 --procs 8:4096 --cluster cori-knl,frontera --out sweep.html"},
        {"validate", "dnnplan validate --plan plan.json --np 4 --cluster this-machine.json"},
        {"calibrate", "dnnplan calibrate --np 2 --out this-machine.json"}};
    for (CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
        for (const auto& [name, example] : examples)
            if (sub->get_name() == name) sub->footer("Example: " + example + "\n" + kExitCodes);
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
    cli::add_help_footers(app);

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
