// libFuzzer harness: the cluster loader (JSON text -> Cluster -> JSON -> Cluster round trip) and
// a small search on the loaded cluster.
#include <cstddef>
#include <cstdint>
#include <string>

#include "clusters/cluster.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace dnnplan;
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        clusters::Cluster cluster = clusters::parse_cluster(parse_json_text(text, "fuzz.json"), "fuzz.json");
        // parse(to_json(c)) == c is the loader's documented round trip.
        if (!(clusters::parse_cluster(clusters::to_json(cluster), "round-trip") == cluster)) __builtin_trap();
        if (cluster.supports(DType::fp32) && cluster.total_devices() >= 4)
            fuzz::check_search(fuzz::lenet5(), cluster, 4);
    } catch (const InputError&) {
    }
    return 0;
}
