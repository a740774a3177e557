#include "pipeline_program.hpp"

#include <stdexcept>

namespace dnnplan::planner {

PipelineProgram pipeline_program(const CostModel& model, const PipelineSpec& spec, const std::vector<Layout>& layouts) {
    std::string problem = pipeline_problem(model, spec);
    if (!problem.empty()) throw std::invalid_argument("pipeline_program: " + problem);
    if (!spec.device_of.empty())
        throw std::invalid_argument("pipeline_program: graph partitions (device_of) have no stage program");
    PipelineProgram out;
    out.micro_batch = model.options().batch / (std::int64_t{spec.replicas} * spec.micro_batches);
    LayerTable c = make_layer_table(model, spec.tensor, out.micro_batch, layouts, spec.sequence_parallel);
    const int L = c.layer_count;
    for (int s = 0; s < spec.virtual_stages(); ++s) {  // chunk c of device d is stages[c S + d]
        PipelineProgram::Stage st;
        st.first = spec.stage_first[s];
        st.last = s + 1 < spec.virtual_stages() ? spec.stage_first[s + 1] - 1 : L - 1;
        if (s > 0) {
            st.recv_bytes = c.boundary_send_bytes[st.first];
            st.recv_gather_bytes = c.boundary_gather_bytes[st.first];
            st.recv_s = c.boundary_seconds(st.first, boundary_link(model, spec, s));  // evaluate_stages()'s recv_f
            if (st.recv_gather_bytes > 0)
                for (Phase phase : {Phase::forward, Phase::backward}) {
                    CommCall call = collective_call(st.first, phase, clusters::Collective::all_gather,
                                                    c.boundary_gather_choice[st.first], c.boundary_gather_group,
                                                    st.recv_gather_bytes,
                                                    phase == Phase::forward ? "received activations"
                                                                            : "received activation gradients");
                    call.kind = CommKind::point_to_point;  // inside recv_s (evaluate_stages())
                    st.recv_gather.push_back(call);
                }
        }
        out.stages.push_back(st);
    }
    out.inner_sync_group = c.sync_group;
    out.sync = replica_sync_calls(model, c, spec.stages, spec.replicas, spec.zero);
    for (const TiedCopy& copy : tied_copies(c, spec)) {  // as evaluate_stages() costs them
        out.sync[copy.layer] = out.sync[copy.embedding];
        for (CommCall& call : out.sync[copy.layer]) call.layer = copy.layer;
        out.inner_sync_group[copy.layer] = out.inner_sync_group[copy.embedding];
        out.tied.push_back({copy, tied_copy_all_reduce(model, spec, copy)});
    }
    const double per_param = accumulation_per_param(model, c, spec);
    out.accumulate_s.assign(static_cast<std::size_t>(L), 0.0);
    for (int i = 1; i < L; ++i) out.accumulate_s[static_cast<std::size_t>(i)] = per_param * c.sum(i, i).params;
    out.micro = std::move(c.plan);
    return out;
}

}  // namespace dnnplan::planner
