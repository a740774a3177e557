// libFuzzer harness: the ONNX importer (bytes -> ModelProto -> Network -> totals), and for small
// networks the planner's search on a 4-process cluster. Protobuf and libonnx must never abort:
// every bad input ends in InputError.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_common.hpp"
#include "networks/onnx_import.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace dnnplan;
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    try {
        networks::LoadOptions options;
        options.allow_unknown_ops = size % 2 == 1;  // both paths of the unknown-operator rule
        networks::Network network = networks::parse_onnx_model(bytes, "fuzz.onnx", options);
        networks::totals(network, network.default_batch, "fuzz.onnx");
        if (network.layers.size() <= 64) fuzz::check_search(network, fuzz::small_cluster(), 4);
    } catch (const InputError&) {
    }
    return 0;
}
