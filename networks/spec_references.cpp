// How a spec's layers refer to each other: resolving a reference through the enclosing repeat
// blocks, and the messages for a reference that resolves to nothing or closes a cycle.
#include <algorithm>

#include "networks/spec.hpp"

namespace dnnplan::networks::spec {

namespace {

// Levenshtein distance, giving up (returning limit + 1) once it must exceed `limit`.
std::size_t edit_distance(const std::string& a, const std::string& b, std::size_t limit) {
    if ((a.size() > b.size() ? a.size() - b.size() : b.size() - a.size()) > limit) return limit + 1;
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0], best = row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
            best = std::min(best, row[j]);
        }
        if (best > limit) return limit + 1;
    }
    return row[b.size()];
}

}  // namespace

int resolve_reference(const std::string& ref, const RawLayer& raw, const std::vector<Scope>& scopes,
                      const std::unordered_map<std::string, int>& index) {
    if (ref == "$in") return raw.block_input;
    std::string key;
    for (int s = raw.scope; s >= 0; s = scopes[s].parent) {
        key = scopes[s].prefix;
        key += ref;
        auto it = index.find(key);
        if (it != index.end()) return it->second;
    }
    return -1;
}

std::string unknown_reference(const std::string& ref, const RawLayer& raw, const std::vector<Scope>& scopes,
                              const std::vector<RawLayer>& layers) {
    std::string message = "no layer named \"" + ref + "\"";
    constexpr std::size_t kListAll = 12;
    if (layers.size() + 1 <= kListAll) {
        std::vector<std::string> names{"input"};
        for (const auto& l : layers) names.push_back(l.name);
        return message + " (layers: " + join_choices(names) + ")";
    }
    // Long references are not typos of a name, and would make the search quadratic in their length.
    if (ref.size() > 64) return message;
    const std::size_t limit = std::max<std::size_t>(1, ref.size() / 3);
    std::string best;
    std::size_t best_distance = limit + 1;
    auto consider = [&](const std::string& candidate) {
        std::size_t d = edit_distance(ref, candidate, std::min(limit, best_distance));
        if (d < best_distance) best_distance = d, best = candidate;
    };
    consider("input");
    for (int s = raw.scope; s >= 0; s = scopes[s].parent) {
        const std::string& prefix = scopes[s].prefix;
        for (const auto& l : layers)
            if (l.name.size() > prefix.size() && l.name.compare(0, prefix.size(), prefix) == 0)
                consider(l.name.substr(prefix.size()));
    }
    if (best_distance <= limit) message += " (did you mean \"" + best + "\"?)";
    return message;
}

std::string cycle_path(const std::vector<std::string>& names) {
    constexpr std::size_t kHead = 5, kTail = 4;
    std::string out;
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (names.size() > kHead + kTail + 1 && i == kHead) {
            out += "... (" + std::to_string(names.size() - kHead - kTail) + " more) -> ";
            i = names.size() - kTail;
        }
        out += names[i] + " -> ";
    }
    return out + names.front();
}

}  // namespace dnnplan::networks::spec
