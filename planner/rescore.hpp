// Scores of plans one anchor's layout away from a kept plan, for the per-layer search's local
// improvement: a trial changes one anchor's layout, so only the layers it reaches are costed
// again (the anchor's segment, and the layers whose inputs' dists it changes: their
// redistributions), the others' LayerCosts and calls are kept, and the layer plan goes through the
// one-stage evaluation as CostModel::score's does. The result equals model.score() of the same
// layouts exactly (the same operations on the same numbers in the same order).
#pragma once

#include <vector>

#include "planner/cost_model.hpp"

namespace dnnplan::planner {

class PlanRescorer {
public:
    // Costs every layer once. Keeps a reference to `model`: never pass a temporary.
    PlanRescorer(const CostModel& model, std::vector<Layout> anchor_layouts,
                 CostModel::CallText text = CostModel::CallText::omitted);

    const std::vector<Layout>& layouts() const { return layouts_; }
    // model.score(layouts() with `anchor` at `layout`, text), the kept plan unchanged.
    ScoredPlan score_with(int anchor, const Layout& layout);
    // Makes `anchor` use `layout` in the kept plan.
    void adopt(int anchor, const Layout& layout);
    // Layers costed since construction (each a layer-layout evaluation), construction included.
    long long layers_costed() const { return layers_costed_; }

private:
    // Sets the anchor's layout and costs again the layers it reaches, logging what they replace.
    void change(int anchor, const Layout& layout);
    void undo();              // back to the plan before the last change()
    ScoredPlan layer_plan() const;  // layer_costs(layouts(), text) as far as the stage evaluation reads it

    const CostModel* model_;
    CostModel::CallText text_;
    std::vector<Layout> layouts_;
    // Per layer: its LayerCost with its own compute and step seconds (layer_costs keeps running-total
    // differences instead: layer_plan() computes those), and its calls.
    std::vector<LayerCost> layers_;
    std::vector<std::vector<CommCall>> calls_;
    std::vector<char> misfit_;  // per anchor: its layout has a layout_problem
    long long layers_costed_ = 0;
    // The last change(): the anchor, what it replaced, and per layer whether its out_dist changed.
    int changed_anchor_ = 0;
    Layout replaced_layout_;
    char replaced_misfit_ = 0;
    std::vector<int> recosted_;
    std::vector<LayerCost> replaced_layers_;
    std::vector<std::vector<CommCall>> replaced_calls_;
    std::vector<char> moved_;
};

}  // namespace dnnplan::planner
