// Matching names a user typed against the valid ones, for "did you mean ...?" (issue 18, item 3).
// Implemented in common/diagnostics.cpp.
#pragma once

#include <string>
#include <vector>

namespace dnnplan {

// The name in `names` closest to `typed` (a typo, a different case, a prefix or a longer spelling),
// or "" when none is close.
std::string closest_name(const std::string& typed, const std::vector<std::string>& names);
// The name in `names` equal to `typed` ignoring ASCII case, or "".
std::string same_name_ignoring_case(const std::string& typed, const std::vector<std::string>& names);

}  // namespace dnnplan
