// `--image HxW`: the network re-inferred at a smaller (or larger) input image, so a validation run
// takes seconds. Header-only and free of MPI: dnnplan checks the option before launching mpirun,
// and the worker loads the same network.
#pragma once

#include <cstdint>
#include <string>

#include "common/diagnostics.hpp"
#include "networks/network.hpp"

namespace dnnplan::validators {

struct ImageSize {
    std::int64_t height = 0, width = 0;  // 0: the network's own
    bool given() const { return height > 0; }
};

// "16" (square) or "16x24" (height x width); anything else is an InputError on `--image`.
inline ImageSize parse_image_size(const std::string& text) {
    ImageSize s;
    if (text.empty()) return s;
    auto number = [&](const std::string& part) -> std::int64_t {
        if (part.empty() || part.size() > 6 || part.find_first_not_of("0123456789") != std::string::npos)
            throw InputError("--image", "", "expected N or HxW with positive integers, got \"" + text + "\"");
        std::int64_t v = std::stoll(part);
        if (v < 1) throw InputError("--image", "", "image sizes must be positive, got \"" + text + "\"");
        return v;
    };
    const auto x = text.find_first_of("xX");
    s.height = number(text.substr(0, x));
    s.width = x == std::string::npos ? s.height : number(text.substr(x + 1));
    return s;
}

inline std::string to_string(const ImageSize& s) { return std::to_string(s.height) + "x" + std::to_string(s.width); }

// Loads a network spec (path already resolved) with its input's height and width replaced and the
// layer shapes inferred again. A layer that no longer fits (a kernel larger than its input, a pooling
// window past the image) is an InputError on `--image` naming that layer and what went wrong.
inline networks::Network load_network_at_image(const std::string& path, const ImageSize& image) {
    if (!image.given()) return networks::load_network_file(path);
    Json spec = load_json_file(path);
    if (!spec.is_object() || !spec.contains("input") || !spec["input"].is_object() ||
        !spec["input"].contains("shape") || !spec["input"]["shape"].is_array() || spec["input"]["shape"].size() != 3)
        throw InputError(path, "/input/shape",
                         "--image " + to_string(image) + " needs an image input of shape [C, H, W]");
    spec["input"]["shape"][1] = image.height;
    spec["input"]["shape"][2] = image.width;
    try {
        return networks::parse_network(spec, path);
    } catch (const InputError& e) {
        // Name the layer: the loader's pointer is /layers/N[/...] of the spec.
        std::string where = e.location();
        const std::string prefix = "/layers/";
        if (where.rfind(prefix, 0) == 0 && spec.contains("layers") && spec["layers"].is_array()) {
            const std::string digits = where.substr(prefix.size(), where.find('/', prefix.size()) - prefix.size());
            if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos) {
                const std::size_t i = std::stoul(digits);
                if (i < spec["layers"].size()) {
                    const Json& layer = spec["layers"][i];
                    where = "layer " +
                            (layer.contains("name") && layer["name"].is_string() ? layer["name"].get<std::string>()
                                                                                 : "#" + digits) +
                            " (" + path + ":" + e.location() + ")";
                }
            }
        }
        throw InputError("--image", "",
                         "the network no longer fits a " + to_string(image) + " image: " + where + ": " + e.message());
    }
}

}  // namespace dnnplan::validators
