#include "layout.hpp"

namespace dnnplan::planner {

std::string to_string(const Layout& layout) {
    std::string out;
    auto part = [&](const char* axis, int factor) {
        if (factor == 1) return;
        if (!out.empty()) out += " x ";
        out += axis + std::to_string(factor);
    };
    part("n", layout.n);
    part("co", layout.co);
    part("ci", layout.ci);
    part("h", layout.h);
    part("w", layout.w);
    return out.empty() ? "1" : out;
}

Json to_json(const Layout& layout) {
    return Json{{"n", layout.n}, {"co", layout.co}, {"ci", layout.ci}, {"h", layout.h}, {"w", layout.w}};
}

Layout layout_from_json(const SpecNode& node) {
    node.expect_object("a layout object");
    node.check_keys({"n", "co", "ci", "h", "w"});
    constexpr std::int64_t max_factor = 1 << 22;
    Layout layout;
    layout.n = static_cast<int>(node.get_int_or("n", 1, 1, max_factor));
    layout.co = static_cast<int>(node.get_int_or("co", 1, 1, max_factor));
    layout.ci = static_cast<int>(node.get_int_or("ci", 1, 1, max_factor));
    layout.h = static_cast<int>(node.get_int_or("h", 1, 1, max_factor));
    layout.w = static_cast<int>(node.get_int_or("w", 1, 1, max_factor));
    return layout;
}

}  // namespace dnnplan::planner
