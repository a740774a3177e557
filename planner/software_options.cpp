#include "planner/software_options.hpp"

#include <array>
#include <utility>

namespace dnnplan::planner {

namespace {
// One table per enum: its values and their names, in the order the names are listed.
template <typename Enum, std::size_t N>
using NameTable = std::array<std::pair<Enum, const char*>, N>;

constexpr NameTable<PipelineBoundarySend, 3> kBoundarySends{{{PipelineBoundarySend::scatter_gather, "scatter-gather"},
                                                             {PipelineBoundarySend::whole_tensor, "whole-tensor"},
                                                             {PipelineBoundarySend::deepspeed, "deepspeed"}}};
constexpr NameTable<GradAccumulation, 3> kAccumulations{{{GradAccumulation::in_gemm, "in-gemm"},
                                                         {GradAccumulation::autograd_in_place, "autograd"},
                                                         {GradAccumulation::main_grad_hook, "hook"}}};
constexpr NameTable<MixedPrecisionStep, 2> kSteps{{{MixedPrecisionStep::megatron_lm, "megatron"},
                                                   {MixedPrecisionStep::deepspeed_zero, "deepspeed"}}};

template <typename Enum, std::size_t N>
std::string name_of(const NameTable<Enum, N>& table, Enum value) {
    for (const auto& [v, name] : table)
        if (v == value) return name;
    return "?";
}
template <typename Enum, std::size_t N>
std::optional<Enum> value_of(const NameTable<Enum, N>& table, const std::string& name) {
    for (const auto& [v, n] : table)
        if (name == n) return v;
    return std::nullopt;
}
template <typename Enum, std::size_t N>
std::vector<std::string> names_of(const NameTable<Enum, N>& table) {
    std::vector<std::string> out;
    for (const auto& entry : table) out.emplace_back(entry.second);
    return out;
}
}  // namespace

std::string to_string(PipelineBoundarySend send) { return name_of(kBoundarySends, send); }
std::optional<PipelineBoundarySend> parse_boundary_send(const std::string& name) { return value_of(kBoundarySends, name); }
const std::vector<std::string>& boundary_send_names() {
    static const std::vector<std::string> names = names_of(kBoundarySends);
    return names;
}

std::string to_string(GradAccumulation accumulation) { return name_of(kAccumulations, accumulation); }
std::optional<GradAccumulation> parse_grad_accumulation(const std::string& name) { return value_of(kAccumulations, name); }
const std::vector<std::string>& grad_accumulation_names() {
    static const std::vector<std::string> names = names_of(kAccumulations);
    return names;
}

std::string to_string(MixedPrecisionStep step) { return name_of(kSteps, step); }
std::optional<MixedPrecisionStep> parse_mixed_precision_step(const std::string& name) { return value_of(kSteps, name); }
const std::vector<std::string>& mixed_precision_step_names() {
    static const std::vector<std::string> names = names_of(kSteps);
    return names;
}

}  // namespace dnnplan::planner
