#include "planner/families.hpp"

namespace dnnplan::planner {

using networks::LayerKind;

namespace {
bool spatial_anchor(const networks::Layer& layer) {
    return (layer.kind == LayerKind::conv2d || layer.kind == LayerKind::conv_transpose2d) &&
           layer.output_shape.size() == 3;
}

// The most square h x w = p with w = h or 2h where possible (Gholami splits the image evenly).
std::pair<int, int> square_split(int p) {
    int h = 1;
    for (int d = 1; static_cast<long long>(d) * d <= p; ++d)
        if (p % d == 0) h = d;
    return {h, p / h};
}
}  // namespace

std::vector<Layout> uniform_layouts(const CostModel& model, Strategy strategy, GridShape grid) {
    const auto& layers = model.network().layers;
    std::vector<Layout> layouts(layers.size());
    for (int a : model.anchors()) {
        Layout l;
        l.n = grid.pc;
        const bool domain = strategy == Strategy::domain || strategy == Strategy::grid_domain;
        if (domain && spatial_anchor(layers[a])) {
            auto [h, w] = square_split(grid.pr);
            l.h = h;
            l.w = w;
        } else {
            l.co = grid.pr;
        }
        layouts[a] = l;
    }
    return layouts;
}

std::vector<Candidate> grid_candidates(const CostModel& model, long long* evaluations) {
    std::vector<Candidate> out;
    const int p = static_cast<int>(model.options().procs);
    auto add = [&](Strategy strategy, GridShape grid) {
        Candidate c;
        c.strategy = strategy;
        c.grid = grid;
        if (strategy == Strategy::grid_model || strategy == Strategy::grid_domain)
            c.label = "Pr=" + std::to_string(grid.pr) + " x Pc=" + std::to_string(grid.pc);
        c.plan = model.score(uniform_layouts(model, strategy, grid));
        if (evaluations) *evaluations += static_cast<long long>(model.anchors().size());
        out.push_back(std::move(c));
    };
    add(Strategy::batch, {1, p});
    add(Strategy::model, {p, 1});
    add(Strategy::domain, {p, 1});
    for (int pr = 2; pr < p; ++pr) {
        if (p % pr != 0) continue;
        add(Strategy::grid_model, {pr, p / pr});
        add(Strategy::grid_domain, {pr, p / pr});
    }
    return out;
}

}  // namespace dnnplan::planner
