#include "graph.hpp"

#include <algorithm>

#include <boost/graph/depth_first_search.hpp>
#include <boost/graph/topological_sort.hpp>

#include "network.hpp"

namespace dnnplan::networks {

LayerGraph make_graph(int vertex_count, const std::vector<std::vector<int>>& inputs_of) {
    LayerGraph graph(vertex_count);
    for (int v = 0; v < vertex_count; ++v)
        for (int u : inputs_of[v]) boost::add_edge(u, v, graph);
    return graph;
}

LayerGraph make_graph(const Network& network) {
    std::vector<std::vector<int>> inputs_of;
    inputs_of.reserve(network.layers.size());
    for (const auto& layer : network.layers) inputs_of.push_back(layer.inputs);
    return make_graph(static_cast<int>(network.layers.size()), inputs_of);
}

namespace {
// Records the DFS tree and the first back edge, from which the cycle is read off.
struct CycleRecorder : boost::default_dfs_visitor {
    std::vector<int>* parent;
    std::optional<std::pair<int, int>>* back;
    void tree_edge(LayerGraph::edge_descriptor e, const LayerGraph& g) const {
        (*parent)[boost::target(e, g)] = static_cast<int>(boost::source(e, g));
    }
    void back_edge(LayerGraph::edge_descriptor e, const LayerGraph& g) const {
        if (!*back) *back = std::make_pair(static_cast<int>(boost::source(e, g)), static_cast<int>(boost::target(e, g)));
    }
};
}  // namespace

std::optional<std::vector<int>> find_cycle(const LayerGraph& graph) {
    std::vector<int> parent(boost::num_vertices(graph), -1);
    std::optional<std::pair<int, int>> back;
    CycleRecorder recorder;
    recorder.parent = &parent;
    recorder.back = &back;
    boost::depth_first_search(graph, boost::visitor(recorder));
    if (!back) return std::nullopt;
    // The back edge u -> v closes the tree path v -> ... -> u.
    auto [u, v] = *back;
    std::vector<int> cycle{u};
    for (int w = u; w != v && parent[w] >= 0; w = parent[w]) cycle.push_back(parent[w]);
    std::reverse(cycle.begin(), cycle.end());
    return cycle;
}

std::vector<int> topological_order(const LayerGraph& graph) {
    std::vector<LayerGraph::vertex_descriptor> reversed;
    boost::topological_sort(graph, std::back_inserter(reversed));
    return std::vector<int>(reversed.rbegin(), reversed.rend());
}

}  // namespace dnnplan::networks
