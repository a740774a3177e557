#include "units.hpp"

#include <cmath>
#include <cstdio>

namespace dnnplan {

std::string to_string(DType dtype) {
    switch (dtype) {
        case DType::fp32: return "fp32";
        case DType::fp16: return "fp16";
        case DType::bf16: return "bf16";
    }
    return "fp32";
}

const std::vector<std::string>& dtype_names() {
    static const std::vector<std::string> names{"fp32", "fp16", "bf16"};
    return names;
}

std::optional<DType> parse_dtype(const std::string& name) {
    if (name == "fp32") return DType::fp32;
    if (name == "fp16") return DType::fp16;
    if (name == "bf16") return DType::bf16;
    return std::nullopt;
}

std::int64_t dtype_bytes(DType dtype) { return dtype == DType::fp32 ? 4 : 2; }

namespace {
std::string scaled(double value, const char* const* prefixes, int count, double base, const std::string& unit) {
    double magnitude = std::fabs(value);
    int index = 0;
    while (index + 1 < count && magnitude >= base * 0.9995) {
        magnitude /= base;
        value /= base;
        ++index;
    }
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.1f %s%s", value, prefixes[index], unit.c_str());
    std::string out = buffer;
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}
}  // namespace

std::string human_count(double value, const std::string& unit) {
    if (!std::isfinite(value)) return "n/a";
    if (std::fabs(value) < 10000 && value == std::floor(value)) {
        char buffer[64];
        std::snprintf(buffer, sizeof buffer, "%.0f%s%s", value, unit.empty() ? "" : " ", unit.c_str());
        return buffer;
    }
    static const char* const prefixes[] = {"", "K", "M", "G", "T", "P", "E"};
    return scaled(value, prefixes, 7, 1000.0, unit);
}

std::string human_bytes(double bytes) {
    if (!std::isfinite(bytes)) return "n/a";
    static const char* const prefixes[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    if (std::fabs(bytes) < 1024) {
        char buffer[64];
        std::snprintf(buffer, sizeof buffer, "%.0f B", bytes);
        return buffer;
    }
    return scaled(bytes, prefixes, 7, 1024.0, "B");
}

std::string human_seconds(double seconds) {
    if (!std::isfinite(seconds)) return "n/a";
    char buffer[64];
    double a = std::fabs(seconds);
    if (a == 0)
        std::snprintf(buffer, sizeof buffer, "0 s");
    else if (a < 1e-3)
        std::snprintf(buffer, sizeof buffer, "%.1f us", seconds * 1e6);
    else if (a < 1)
        std::snprintf(buffer, sizeof buffer, "%.2f ms", seconds * 1e3);
    else
        std::snprintf(buffer, sizeof buffer, "%.3f s", seconds);
    return buffer;
}

}  // namespace dnnplan
