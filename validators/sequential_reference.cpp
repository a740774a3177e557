#include "validators/sequential_reference.hpp"

#include <algorithm>

namespace dnnplan::validators {

SequentialReference::SequentialReference(const networks::Network& net, const planner::PipelineSpec& spec, Index batch) {
    bool batch_norm = false;
    for (const auto& l : net.layers) batch_norm = batch_norm || l.kind == networks::LayerKind::batchnorm2d;
    const int n = batch_norm ? spec.replicas * spec.micro_batches : 1;
    share = 1.0 / n;
    for (int c = 0; c < n; ++c)
        chunks.push_back(std::make_unique<NetworkRunner<double>>(
            net, std::vector<planner::Layout>(net.layers.size()), batch / n, MPI_COMM_SELF, true,
            Segment{.sample_offset = Index(c) * (batch / n)}));
}

double SequentialReference::step(OpTimer& t) {
    double loss = 0;
    for (auto& c : chunks) loss += share * c->step(t);
    return loss;
}

std::vector<double> SequentialReference::gradient(int layer) {
    std::vector<double> g;
    for (auto& c : chunks) {
        const Shard<double>& sh = *c->shard_of(layer);
        std::vector<double> flat(sh.dweight);
        flat.insert(flat.end(), sh.dbias.begin(), sh.dbias.end());
        if (g.empty()) g.assign(flat.size(), 0.0);
        for (std::size_t e = 0; e < flat.size(); ++e) g[e] += share * flat[e];
    }
    return g;
}

void SequentialReference::sgd(double learning_rate, OpTimer& t, const std::vector<int>& weighted) {
    std::vector<std::vector<double>> totals;
    for (int layer : weighted) totals.push_back(gradient(layer));
    for (auto& c : chunks) {
        for (std::size_t k = 0; k < weighted.size(); ++k) {
            Shard<double>& sh = *c->shard_of(weighted[k]);
            std::copy_n(totals[k].begin(), sh.dweight.size(), sh.dweight.begin());
            std::copy(totals[k].begin() + static_cast<std::ptrdiff_t>(sh.dweight.size()), totals[k].end(), sh.dbias.begin());
        }
        c->sgd(learning_rate, t);
    }
}

std::vector<int> SequentialReference::weighted_layers() const {
    std::vector<int> out;
    for (const auto& [index, shard] : chunks[0]->shards()) out.push_back(index);
    return out;
}

}  // namespace dnnplan::validators
