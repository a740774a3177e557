#include "graph.hpp"

#include <algorithm>
#include <functional>
#include <queue>

#include <boost/graph/depth_first_search.hpp>
#include <boost/graph/exception.hpp>

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
    // Kahn's algorithm taking the smallest ready index first: the order equals the vertex (file)
    // order wherever the edges allow it, so a spec with one forward reference is only locally
    // reordered (Boost's DFS-based topological_sort may interleave unrelated branches).
    const std::size_t n = boost::num_vertices(graph);
    std::vector<std::size_t> pending(n);
    std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
    for (std::size_t v = 0; v < n; ++v) {
        pending[v] = boost::in_degree(v, graph);
        if (pending[v] == 0) ready.push(static_cast<int>(v));
    }
    std::vector<int> order;
    order.reserve(n);
    while (!ready.empty()) {
        int u = ready.top();
        ready.pop();
        order.push_back(u);
        for (auto [e, end] = boost::out_edges(u, graph); e != end; ++e) {
            auto v = boost::target(*e, graph);
            if (--pending[v] == 0) ready.push(static_cast<int>(v));
        }
    }
    if (order.size() != n) throw boost::not_a_dag();
    return order;
}

}  // namespace dnnplan::networks
