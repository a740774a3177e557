// libFuzzer harness: the plan loader (JSON text -> PlanRequest -> layouts checked against lenet5
// on cori-knl -> exact score).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_common.hpp"
#include "planner/plan.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace dnnplan;
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        planner::PlanRequest request = planner::parse_plan_request(parse_json_text(text, "fuzz.json"), "fuzz.json");
        static const clusters::Cluster cori = fuzz::cori_knl();
        planner::check_request_fits_cluster(request, cori, "fuzz.json");  // as the CLI does first
        planner::CostModel model(fuzz::lenet5(), cori, request.options);
        fuzz::check_costs(model.score(planner::layouts_for(request, model, "fuzz.json")).cost);
    } catch (const InputError&) {
    }
    return 0;
}
