#include "rescore.hpp"

#include <utility>

namespace dnnplan::planner {

PlanRescorer::PlanRescorer(const CostModel& model, std::vector<Layout> anchor_layouts, CostModel::CallText text)
    : model_(&model), text_(text), layouts_(std::move(anchor_layouts)) {
    const std::size_t n = model.network().layers.size();
    layers_.assign(n, LayerCost{});
    calls_.assign(n, {});
    misfit_.assign(n, 0);
    moved_.assign(n, 0);
    for (int a : model.anchors()) misfit_[a] = !model.layout_problem(a, layouts_[a]).empty();
    for (std::size_t i = 1; i < n; ++i) {
        const int index = static_cast<int>(i);
        CostBreakdown own;  // from zero: the layer's own compute and step seconds
        model.layer_cost(index, model.layout_of(index, layouts_), layers_, calls_[i], own, text_);
        ++layers_costed_;
    }
}

void PlanRescorer::change(int anchor, const Layout& layout) {
    const auto& layers = model_->network().layers;
    changed_anchor_ = anchor;
    replaced_layout_ = layouts_[anchor];
    replaced_misfit_ = misfit_[anchor];
    layouts_[anchor] = layout;
    misfit_[anchor] = !model_->layout_problem(anchor, layout).empty();
    recosted_.clear();
    replaced_layers_.clear();
    replaced_calls_.clear();
    // Layers are in topological order and a segment starts at its anchor: a layer is reached when it
    // is in the anchor's segment (its layout changed) or reads an output whose dist changed (its
    // redistribution); nothing else of another layer enters its cost.
    for (std::size_t i = static_cast<std::size_t>(anchor); i < layers.size(); ++i) {
        moved_[i] = 0;
        bool reached = model_->anchor_of(static_cast<int>(i)) == anchor;
        for (int p : layers[i].inputs) reached = reached || (p >= anchor && moved_[p]);  // earlier: unchanged
        if (!reached) continue;
        recosted_.push_back(static_cast<int>(i));
        replaced_layers_.push_back(layers_[i]);
        replaced_calls_.push_back(std::move(calls_[i]));
        calls_[i].clear();
        CostBreakdown own;
        model_->layer_cost(static_cast<int>(i), model_->layout_of(static_cast<int>(i), layouts_), layers_, calls_[i],
                           own, text_);
        ++layers_costed_;
        moved_[i] = layers_[i].out_dist != replaced_layers_.back().out_dist;
    }
}

void PlanRescorer::undo() {
    layouts_[changed_anchor_] = replaced_layout_;
    misfit_[changed_anchor_] = replaced_misfit_;
    for (std::size_t k = 0; k < recosted_.size(); ++k) {
        layers_[recosted_[k]] = replaced_layers_[k];
        calls_[recosted_[k]] = std::move(replaced_calls_[k]);
    }
    recosted_.clear();
}

ScoredPlan PlanRescorer::layer_plan() const {
    ScoredPlan plan;
    plan.anchor_layouts = layouts_;
    plan.layers = layers_;
    std::size_t call_count = 0;
    for (const auto& calls : calls_) call_count += calls.size();
    plan.calls.reserve(call_count);
    // layer_costs' LayerCost compute and step seconds: each the increment of a running total.
    double forward = 0, backward = 0, step = 0;
    for (std::size_t i = 1; i < plan.layers.size(); ++i) {
        LayerCost& lc = plan.layers[i];
        const double forward_before = forward, backward_before = backward, step_before = step;
        forward += lc.fwd_compute_s;
        backward += lc.bwd_compute_s;
        step += lc.optimizer_step_s;
        lc.fwd_compute_s = forward - forward_before;
        lc.bwd_compute_s = backward - backward_before;
        lc.optimizer_step_s = step - step_before;
        plan.calls.insert(plan.calls.end(), calls_[i].begin(), calls_[i].end());
    }
    // The rest of layer_costs' totals (compute, communication by kind) are not read by the stage
    // evaluation, which replaces them: only the layouts' feasibility.
    for (int a : model_->anchors())
        if (misfit_[a]) {
            plan.cost.set_infeasible(Infeasibility::layout, model_->first_layout_problem(layouts_));
            break;
        }
    return plan;
}

ScoredPlan PlanRescorer::score_with(int anchor, const Layout& layout) {
    change(anchor, layout);
    ScoredPlan plan = layer_plan();
    undo();
    return model_->evaluate_one_stage(std::move(plan));
}

void PlanRescorer::adopt(int anchor, const Layout& layout) {
    change(anchor, layout);
    recosted_.clear();
}

}  // namespace dnnplan::planner
