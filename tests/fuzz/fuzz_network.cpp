// libFuzzer harness: the network loader (JSON text -> Network -> totals), and for small networks
// the planner's search on a 4-process cluster. Bad input must end in InputError; any other
// exception, crash, leak or hang is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_common.hpp"
#include "networks/network.hpp"
#include "planner/search.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace dnnplan;
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        networks::Network network = networks::parse_network(parse_json_text(text, "fuzz.json"), "fuzz.json");
        networks::totals(network, network.default_batch, "fuzz.json");
        if (network.layers.size() <= 64) fuzz::check_search(network, fuzz::small_cluster(), 4);
    } catch (const InputError&) {
    }
    return 0;
}
