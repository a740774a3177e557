// Layouts and the distribution rules of DESIGN.md section 3a: how one layer's work is split over
// its processes (a factor of the layer's process count per tensor axis: batch is Gholami's Pc;
// channels/features and the spatial axes are Pr, model or domain; the input-feature axis is the
// reduction, Megatron's row split), how its input and output tensors are then distributed, and
// what a follower layer inherits. The cost model, the pipeline family and the validators' runner
// all take their distributions from here.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "clusters/collectives.hpp"
#include "common/diagnostics.hpp"
#include "networks/network.hpp"

namespace dnnplan::planner {

struct Layout {
    int n = 1;   // batch (data parallelism)
    int co = 1;  // output channels / features / attention heads (model, column split)
    int ci = 1;  // input channels / features: the reduction axis (row split, partial sums)
    int h = 1;   // height (domain)
    int w = 1;   // width (domain)

    std::int64_t procs() const { return std::int64_t{n} * co * ci * h * w; }
    int model() const { return co * ci; }
    int domain() const { return h * w; }
    bool operator==(const Layout&) const = default;
    auto operator<=>(const Layout&) const = default;
};

// How a tensor [B, C, H, W] (or [B, S, H] with c = hidden, or [B, F]) is split; the processes
// beyond n*c*h*w hold replicas.
struct Dist {
    int n = 1, c = 1, h = 1, w = 1;
    std::int64_t parts() const { return std::int64_t{n} * c * h * w; }
    bool operator==(const Dist&) const = default;
};

// Balanced splits, as DistDL and the validators cut (validators/tensor.hpp, block_begin): an axis of
// `extent` cut into `parts` has parts of floor or ceil(extent / parts) elements; the busiest process
// holds the ceiling, and it is the one a step waits for, so costs take the largest part.
inline std::int64_t largest_part(std::int64_t extent, std::int64_t parts) { return (extent + parts - 1) / parts; }
// The extents a Dist's c, h and w split for a per-sample shape: [C, H, W] images; the last axis
// (features, hidden) of anything else, unsplit spatially.
std::array<std::int64_t, 3> split_extents(const networks::Shape& shape);
// The per-sample shape a Dist of layer `index`'s output splits: its output shape, except that a
// flatten (and the dropout or activation after it) keeps the [C, H, W] (or [S, H]) of the tensor it
// was flattened from, so the split factors, which axes they cut and their balanced blocks survive
// flattening: a linear layer reading it splits its input features by those channels (ci over C),
// as the validators' runner reads the blocks (validators/runner.cpp, view_of).
const networks::Shape& dist_shape(const networks::Network& network, int index);
// Samples on the busiest process when a batch of `batch` is split `n` ways.
inline double local_batch(std::int64_t batch, int n) { return static_cast<double>(largest_part(batch, n)); }
// The fraction of a per-sample tensor of `shape` the busiest process holds under `d` (its c, h and
// w splits; the batch apart): 1 / (c h w) when the splits divide the extents.
double largest_share(const networks::Shape& shape, const Dist& d);
// The same over the whole batch as well: what one process sends or holds of a batch tensor.
double largest_share(const networks::Shape& shape, std::int64_t batch, const Dist& d);
// The fraction of an anchor's per-sample work (FLOPs) on its busiest process under `layout`:
// output channels / features / heads by co, the reduction by ci, output rows and columns by h, w.
double anchor_work_share(const networks::Layer& layer, const networks::Shape& input_shape, const Layout& layout);

// Layers that choose a layout (convolution, linear, attention, embedding); every other layer
// follows the distribution of its first input (elementwise layers fuse with their producer).
bool is_anchor_kind(networks::LayerKind kind);

// An average pool to one value per channel (global, or adaptive to 1 x 1): under a spatial split
// each process pools its own tile and the partial sums are all-reduced (DESIGN.md section 3a).
bool is_global_pool(const networks::Layer& layer);

// The raw input (layer 0): the data loader delivers it split by the consumer's batch factor.
inline Dist loader_dist(const Layout& layout) { return Dist{layout.n, 1, 1, 1}; }

// The dists layer `index` reads its first input in and writes its output in, under its segment
// anchor's `layout`, when its first input arrives as `first_input_out` (ignored by anchors).
struct LayerDists {
    Dist in, out;
};
LayerDists layer_dists(const networks::Network& network, int index, const Layout& layout, const Dist& first_input_out);
// The dist layer `index` needs input `input_index` in (merges read every input in the first
// input's dist); equals layer_dists().in for input 0.
Dist wanted_input_dist(const networks::Network& network, int index, int input_index, const Layout& layout,
                       const Dist& first_input_out);

// The processes that exchange data when a tensor moves from `from` to `to` (DistDL's
// repartition): a shard of `to` needs the shards of `from` that meet it (at most the product over
// the tensor axes n, c, h, w of what one chunk meets along the axis: f / t when t divides f), and a
// shard of `from` feeds shards of `to` likewise; the group is the larger set, placed where its ranks are in that side's
// grid (w innermost, then h, c and n; replicas outermost) on nodes of `devices_per_node` (of equal sets, the one spread
// over more nodes).
// With balanced (uneven) splits the count along an axis is taken over the actual blocks of the
// tensor's `shape` (per sample) and `batch`.
clusters::GroupPlacement exchange_group(const Dist& from, const Dist& to, int devices_per_node);
clusters::GroupPlacement exchange_group(const Dist& from, const Dist& to, const networks::Shape& shape,
                                        std::int64_t batch, int devices_per_node);

// The most blocks of a balanced `f`-way split of [0, extent) that one block of a balanced `t`-way
// split meets (the count along one axis of the exchange group; extent >= 1).
std::int64_t most_blocks_met(std::int64_t extent, std::int64_t f, std::int64_t t);

// The busiest senders of a repartition from `from` to `to` when each side holds one block per
// process (from.parts() == to.parts() == procs), placed in their grids' rank order (w innermost,
// then h, c, n; the validators' runner and MPI_Cart_create without reordering): a process sends its
// block but for the part of it that its own block of `to` holds, to every process whose `to` block
// meets it. `share`: the most any process sends, as a fraction of the whole-batch tensor of `shape`
// (per sample) and `batch`; `peers`: the most peers any process sends to. An all-to-all over
// peers + 1 processes of share (peers + 1) / peers charges that busiest process exactly (a
// repartition whose blocks nest or transpose gives the exchange group's own all-to-all; one whose
// processes keep nothing, e.g. n2 x co2 read as ci4, sends whole blocks to more peers).
struct ExchangeLoad {
    double share = 0;
    int peers = 0;
};
ExchangeLoad busiest_sender(const Dist& from, const Dist& to, const networks::Shape& shape, std::int64_t batch,
                            std::int64_t procs);
// busiest_sender() visits every process: the cost model uses it up to this many processes (the
// scales the validator runs and its byte ledger checks; at P = 512 the layout search's ~50,000
// pairs of distributions per layer made it 8x slower), and the exchange group's all-to-all beyond.
inline constexpr std::int64_t kBusiestSenderMaxProcs = 32;

// The elements of one contiguous run of a repartition's pieces from `from` to `to` of a tensor of
// per-sample `shape` and `batch` (row-major [B, C, H, W] blocks, as validators/tensor.hpp packs
// them): innermost first, an axis neither side splits is whole in every piece and joins the run;
// the first axis either side splits ends it with the piece's extent along it, that of the finer
// side's largest block (the blocks nest when one count divides the other); when that axis is the
// channels and `channel_piece` > 0, the pieces' channels instead (a channel concat's moved channels,
// which are not blocks of a balanced split). Packing copies message elements / run_elements runs
// (planner::halo_pack_seconds); every redistribution path counts its runs here.
double run_elements(const Dist& from, const Dist& to, const networks::Shape& shape, std::int64_t batch,
                    std::int64_t channel_piece = 0);

// The busiest process's share of a layer's parameters (a count): anchors' weights over co x ci
// (their output and input axes, balanced), their biases over co only (whole on every ci shard;
// attention's output-projection bias whole on every head shard); batch norm and position
// embeddings over the channels (hidden units) they read split; everything else whole.
double local_parameters(const networks::Layer& layer, const networks::Shape& input_shape, const Layout& layout,
                        const Dist& in);

// A channel concat (layer `index`) whose inputs arrive split `parts` ways by channels: each input
// comes as a balanced split of its own channels, the output is a balanced split of all of them, so
// block j of input k is moved to the processes whose output blocks hold it (DistDL's repartition;
// the validators' runner). The busiest process's channels (per sample and pixel of its tile):
// sent forward, and backward the gradients of those it received, sent back.
struct ConcatExchange {
    std::int64_t forward_channels = 0, backward_channels = 0;
};
ConcatExchange concat_exchange(const networks::Network& network, int index, int parts);

// "n64 x co8", "n512" (batch only), "1" for a single process.
std::string to_string(const Layout& layout);
Json to_json(const Layout& layout);
// Reads {"n": .., "co": .., "ci": .., "h": .., "w": ..}; missing factors are 1.
Layout layout_from_json(const SpecNode& node);

}  // namespace dnnplan::planner
