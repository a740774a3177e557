// Boost.Graph view of a network's layer DAG: construction, cycle detection, topological order.
#pragma once

#include <optional>
#include <vector>

#include <boost/graph/adjacency_list.hpp>

namespace dnnplan::networks {

struct Network;

// Vertices are layer indices; an edge u -> v means layer v reads layer u's output.
using LayerGraph = boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS>;

LayerGraph make_graph(int vertex_count, const std::vector<std::vector<int>>& inputs_of);
LayerGraph make_graph(const Network& network);

// One cycle as a vertex sequence v0 -> v1 -> ... -> v0 (v0 not repeated), or nullopt for a DAG.
std::optional<std::vector<int>> find_cycle(const LayerGraph& graph);

// A topological order (producers before consumers), the smallest index first among the vertices
// that are ready, so it is the identity on a graph whose edges all go forward. The graph must be
// acyclic (boost::not_a_dag otherwise).
std::vector<int> topological_order(const LayerGraph& graph);

}  // namespace dnnplan::networks
