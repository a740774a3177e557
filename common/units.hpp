// Plain helpers every module needs: element types, overflow-checked integer arithmetic and
// human-readable number formatting for text output (JSON and CSV keep exact integers).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dnnplan {

enum class DType { fp32, fp16, bf16 };

std::string to_string(DType dtype);
std::optional<DType> parse_dtype(const std::string& name);
const std::vector<std::string>& dtype_names();
std::int64_t dtype_bytes(DType dtype);

// Overflow-checked arithmetic on counts: nullopt when the exact result does not fit 64 bits.
// Inline: shape inference and totals call them for every count of every layer.
// What a layer reports when a count (shape product, FLOPs) overflows 64-bit integers.
inline constexpr const char* kCountOverflow = "counts overflow 64-bit integers (sizes too large)";

inline std::optional<std::int64_t> checked_mul(std::int64_t a, std::int64_t b) {
    std::int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
    return r;
}
inline std::optional<std::int64_t> checked_add(std::int64_t a, std::int64_t b) {
    std::int64_t r;
    if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
    return r;
}

// "138.4 M", "15.5 G" with an optional unit suffix ("15.5 GFLOP", "411.0 MB").
// Exact below 10,000 ("9,216" is shown as "9216").
std::string human_count(double value, const std::string& unit = "");
// Bytes with binary prefixes: "1.5 GiB".
std::string human_bytes(double bytes);
// Seconds with an SI prefix: "12.3 ms", "4.56 s", "850 us".
std::string human_seconds(double seconds);

}  // namespace dnnplan
