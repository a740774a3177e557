#include "validators/runner.hpp"

#include "validators/iteration_samples.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <stdexcept>

namespace dnnplan::validators {

using networks::Layer;
using networks::LayerKind;
using planner::Layout;

double hashed_uniform(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d) {
    // splitmix64 over the indices: cheap, well mixed, identical on every rank.
    std::uint64_t x = 0x9E3779B97F4A7C15ull;
    for (std::uint64_t v : {a, b, c, d}) {
        x ^= v + 0x9E3779B97F4A7C15ull + (x << 6) + (x >> 2);
        x += 0x9E3779B97F4A7C15ull;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
        x ^= x >> 31;
    }
    return static_cast<double>(x >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

double input_value(Index b, Index c, Index h, Index w) { return hashed_uniform(0, b * 7919 + c, h, w); }
int label_of(Index b, Index classes) {
    return static_cast<int>((hashed_uniform(3, b, 0, 0) + 1.0) * 0.5 * double(classes)) % int(classes);
}

std::string unsupported_reason(const networks::Network& network, bool tied_weights) {
    for (std::size_t i = 1; i < network.layers.size(); ++i) {
        const Layer& l = network.layers[i];
        const auto& a = l.attrs;
        std::string where = "layer " + l.name + ": ";
        switch (l.kind) {
            case LayerKind::conv2d:
                if (a.groups != 1) return where + "grouped convolutions are not supported by the validator";
                break;
            case LayerKind::conv_transpose2d:
                if (a.kernel_h != a.stride_h || a.kernel_w != a.stride_w || a.padding_h || a.padding_w ||
                    a.output_padding_h || a.output_padding_w || a.dilation_h != 1 || a.dilation_w != 1 || a.groups != 1)
                    return where + "the validator runs transposed convolutions with kernel == stride only";
                break;
            case LayerKind::linear:
                if (!a.tied_to.empty() && !tied_weights)
                    return where + "tied weights are run by the validator in pipeline plans only";
                if (!a.tied_to.empty() && a.bias) return where + "a tied layer with a bias is not run by the validator";
                break;
            case LayerKind::maxpool2d:
            case LayerKind::avgpool2d:
                if (a.dilation_h != 1 || a.dilation_w != 1)
                    return where + "pooling with dilation is not supported by the validator";
                if (a.ceil_mode && l.kind == LayerKind::avgpool2d)
                    return where + "average pooling with ceil_mode is not supported by the validator";
                break;
            case LayerKind::adaptive_avgpool2d:
                if (!planner::is_global_pool(l))
                    return where + "adaptive average pooling to more than 1 x 1 is not supported by the validator";
                break;
            case LayerKind::activation:
                if (a.function != "relu" && a.function != "gelu")
                    return where + "only relu and gelu activations are supported by the validator";
                break;
            case LayerKind::embedding:
                if (l.inputs[0] != 0 || !network.token_input)
                    return where + "the validator runs an embedding of the token input only";
                break;
            case LayerKind::layernorm:
            case LayerKind::position_embedding:
            case LayerKind::attention:
                if (l.output_shape.size() != 2) return where + "the validator runs sequence layers on [S, H] only";
                break;
            case LayerKind::upsample:
                if (a.mode != "nearest") return where + "only nearest upsampling is supported by the validator";
                break;
            case LayerKind::concat:
                if (l.output_shape.size() != 3 || (a.axis != 0 && a.axis != -3))
                    return where + "the validator concatenates image channels only";
                break;
            case LayerKind::batchnorm2d:
            case LayerKind::add:
            case LayerKind::flatten:
            case LayerKind::dropout:
                break;  // dropout runs as the identity (inference-free check)
            default:
                return where + to_string(l.kind) + " layers are not supported by the validator";
        }
        if (l.kind != LayerKind::add && l.kind != LayerKind::concat && l.inputs.size() != 1)
            return where + "only add and concat read several inputs";
    }
    const LayerKind last = network.layers.back().kind;
    if (network.layers.size() < 2 ||
        (last != LayerKind::linear && last != LayerKind::conv2d && last != LayerKind::conv_transpose2d))
        return "the validator needs a network ending in a linear or convolution layer (the logits)";
    if (network.input().output_shape.size() != 3 && !network.token_input)
        return "the validator needs an image input [C, H, W] or a token input";
    return "";
}

namespace {
// Per-sample 4-D view [C, H, W] of a layer's output: images keep theirs, features are [F, 1, 1],
// flatten keeps its input's so the next linear layer reads the blocks of a channel split.
std::array<Index, 3> view_of(const networks::Network& net, int index, std::vector<std::array<Index, 3>>& views) {
    const Layer& l = net.layers[index];
    if (l.kind == LayerKind::flatten || l.kind == LayerKind::dropout || l.kind == LayerKind::activation)
        return views[l.inputs[0]];
    const auto& s = l.output_shape;
    if (s.size() == 3) return {s[0], s[1], s[2]};
    if (s.size() == 2) return {s[0], s[1], 1};  // a sequence [S, E]: the block [B, S, E, 1]
    return {s.back(), 1, 1};
}

// Drops the splits a tensor of these extents cannot take: more parts than elements (planner's
// fit() for followers; balanced blocks otherwise).
TensorMap fit(TensorMap m, const Grid& grid, const std::array<Index, 4>& a, const std::array<Index, 4>* b) {
    for (int d = 1; d < kDims; ++d) {
        if (m.axis[d] == kReplica) continue;
        Index parts = grid.dim(m.axis[d]);
        if (a[d] < parts || (b && (*b)[d] < parts)) m.axis[d] = kReplica;
    }
    return m;
}

// How many parts each tensor dimension of a map is cut into: the plan's Dist of the same tensor,
// `shape` the one the plan's Dist cuts (planner::dist_shape: a flattened tensor keeps its [C, H, W]
// blocks, as the runner does).
planner::Dist parts_of(const TensorMap& m, const Grid& grid, const networks::Shape& shape) {
    auto parts = [&](int d) { return m.axis[d] == kReplica ? 1 : static_cast<int>(grid.dim(m.axis[d])); };
    if (shape.size() == 2) return planner::Dist{parts(0), parts(2), 1, 1};  // [S, E]: c is the hidden axis
    if (shape.size() != 3) return planner::Dist{parts(0), parts(1) * parts(2) * parts(3), 1, 1};
    return planner::Dist{parts(0), parts(1), parts(2), parts(3)};
}

std::string to_text(const planner::Dist& d) {
    // Appended, not `"n" + std::to_string(...)`: GCC 12 warns falsely (-Wrestrict) on that form.
    std::string out = "n";
    for (auto [tag, parts] : {std::pair{"", d.n}, std::pair{" c", d.c}, std::pair{" h", d.h}, std::pair{" w", d.w}})
        out.append(tag).append(std::to_string(parts));
    return out;
}

Box shift_channels(Box b, Index by) {
    b.lo[1] += by;
    b.hi[1] += by;
    return b;
}

template <class T>
void add_into(Tensor<T>& acc, char& has, Tensor<T>&& g) {
    if (!has) {
        acc = std::move(g);
        has = 1;
        return;
    }
    if (!(acc.box == g.box)) throw std::logic_error("gradient blocks of one tensor differ");
    for (std::size_t k = 0; k < g.data.size(); ++k) acc.data[k] += g.data[k];
}
}  // namespace

template <class T>
struct NetworkRunner<T>::Stage {
    LayerKind kind = LayerKind::input;
    int index = 0;
    std::string name;
    std::vector<int> inputs;
    const Grid* grid = nullptr;
    std::vector<TensorMap> in;  // per input: the map it is read in (the plan's wanted dist)
    TensorMap out;
    std::unique_ptr<DistConv2d<T>> conv;
    std::unique_ptr<DistLinear<T>> linear;
    std::unique_ptr<DistPool<T>> pool;
    std::unique_ptr<DistBatchNorm<T>> bn;
    std::unique_ptr<DistGlobalAvgPool<T>> gpool;
    std::unique_ptr<DistUpsample<T>> upsample;
    std::unique_ptr<DistConvTranspose2d<T>> convt;
    std::unique_ptr<DistEmbedding<T>> emb;
    std::unique_ptr<DistPositionEmbedding<T>> pos;
    std::unique_ptr<DistLayerNorm<T>> ln;
    std::unique_ptr<DistAttention<T>> attn;
    // Per input: producer's blocks -> the blocks read here (concat: only the part of its output
    // block each rank holds), and the gradient back; a raw-input read comes from the loader.
    std::vector<std::optional<Repartition>> to_in, back;
    std::vector<Tensor<T>> loaded;
    std::vector<Index> channel_offset;  // concat
    Tensor<T> saved;                    // relu output, gelu input
    bool gelu = false;
    MPI_Comm sync_group = MPI_COMM_NULL;
    MPI_Request sync_request = MPI_REQUEST_NULL;
    Shard<T>* shard() {
        return conv ? &conv->shard : linear ? &linear->shard : bn ? &bn->shard : convt ? &convt->shard
             : emb  ? &emb->shard
             : pos  ? &pos->shard
             : ln   ? &ln->shard
             : attn ? &attn->shard
                    : nullptr;
    }
};

// Anchors choose their layout: their input and output maps are the layer's own.
template <class T>
void NetworkRunner<T>::build_anchor(Stage& st, const Layer& l, const Grid& grid, Index batch,
                                    const std::array<Index, 3>& in_view) {
    const bool first = l.inputs[0] == 0;
    const auto& a = l.attrs;
    switch (l.kind) {
        case LayerKind::conv2d: {
            ConvSpec s;
            s.batch = batch, s.in_channels = in_view[0], s.height = in_view[1], s.width = in_view[2];
            s.out_channels = a.out_channels;
            s.kh = a.kernel_h, s.kw = a.kernel_w, s.sh = a.stride_h, s.sw = a.stride_w;
            s.ph = a.padding_h, s.pw = a.padding_w, s.dh = a.dilation_h, s.dw = a.dilation_w;
            s.bias = a.bias;
            s.input_grad = !first;
            st.conv = std::make_unique<DistConv2d<T>>(grid, s, l.name);
            st.in = {st.conv->in_map()};
            st.out = st.conv->out_map();
            st.sync_group = st.conv->sync_group();
            break;
        }
        case LayerKind::conv_transpose2d: {
            ConvTransposeSpec s;
            s.batch = batch, s.in_channels = in_view[0], s.height = in_view[1], s.width = in_view[2];
            s.out_channels = a.out_channels, s.kh = a.kernel_h, s.kw = a.kernel_w, s.bias = a.bias;
            s.input_grad = !first;
            st.convt = std::make_unique<DistConvTranspose2d<T>>(grid, s, l.name);
            st.in = {st.convt->in_map()};
            st.out = st.convt->out_map();
            st.sync_group = st.convt->sync_group();
            break;
        }
        case LayerKind::linear: {
            LinearSpec s;
            s.batch = batch, s.in_channels = in_view[0], s.height = in_view[1], s.width = in_view[2];
            s.out_features = a.out_features;
            s.bias = a.bias;
            s.input_grad = !first;
            if (network_.layers[l.inputs[0]].output_shape.size() == 2) {  // per token
                s.tokens = in_view[0], s.in_channels = in_view[1], s.height = s.width = 1;
            }
            st.linear = std::make_unique<DistLinear<T>>(grid, s, l.name);
            st.in = {st.linear->in_map()};
            st.out = st.linear->out_map();
            st.sync_group = st.linear->sync_group();
            break;
        }
        case LayerKind::embedding:
            st.emb = std::make_unique<DistEmbedding<T>>(grid, batch, in_view[0], a.num_embeddings, a.embedding_dim,
                                                         l.name);
            st.in = {st.emb->in_map()};
            st.out = st.emb->out_map();
            st.sync_group = st.emb->sync_group();
            break;
        case LayerKind::attention:
            st.attn = std::make_unique<DistAttention<T>>(grid, batch, in_view[0], in_view[1], a.heads, a.causal, a.bias,
                                                          l.name);
            st.in = {st.attn->in_map()};
            st.out = st.attn->out_map();
            st.sync_group = st.attn->sync_group();
            break;
        default:
            throw std::logic_error("layer " + l.name + ": not an anchor the runner knows");
    }
}

template <class T>
void NetworkRunner<T>::build_layer(Stage& st, const Layer& l, const Grid& grid, Index batch,
                                   const std::vector<std::array<Index, 3>>& views, const TensorMap& first_in_out) {
    const auto in_view = views[l.inputs[0]];
    const std::array<Index, 4> in_shape{batch, in_view[0], in_view[1], in_view[2]};
    const bool first = l.inputs[0] == 0;
    const auto& a = l.attrs;
    if (planner::is_anchor_kind(l.kind)) return build_anchor(st, l, grid, batch, in_view);
    // Followers read what their first input delivers, as far as the layer allows (planner/layout.cpp).
    TensorMap m = first ? TensorMap{{kN, kReplica, kReplica, kReplica}, in_shape} : first_in_out;
    m.shape = in_shape;
    auto follow = [&](const std::array<Index, 4>* out_shape) {
        st.in.assign(1, fit(m, grid, in_shape, out_shape));
    };
    switch (l.kind) {
        case LayerKind::maxpool2d:
        case LayerKind::avgpool2d: {
            PoolSpec s;
            s.max = l.kind == LayerKind::maxpool2d;
            s.batch = batch, s.channels = in_view[0], s.height = in_view[1], s.width = in_view[2];
            s.kh = a.kernel_h, s.kw = a.kernel_w, s.sh = a.stride_h, s.sw = a.stride_w;
            s.ph = a.padding_h, s.pw = a.padding_w, s.ceil_mode = a.ceil_mode;
            const std::array<Index, 4> out_shape{batch, s.channels, s.out_height(), s.out_width()};
            follow(&out_shape);
            st.pool = std::make_unique<DistPool<T>>(grid, s, st.in[0], l.name);
            st.out = st.pool->out_map();
            break;
        }
        case LayerKind::adaptive_avgpool2d:  // global (unsupported_reason)
            follow(nullptr);
            st.gpool = std::make_unique<DistGlobalAvgPool<T>>(grid, st.in[0], l.name);
            st.out = st.gpool->out_map();
            break;
        case LayerKind::upsample: {
            const std::array<Index, 4> out_shape{batch, in_view[0], in_view[1] * a.scale, in_view[2] * a.scale};
            follow(&out_shape);
            st.upsample = std::make_unique<DistUpsample<T>>(grid, st.in[0], a.scale, l.name);
            st.out = st.upsample->out_map();
            break;
        }
        case LayerKind::position_embedding:
            follow(nullptr);
            st.pos = std::make_unique<DistPositionEmbedding<T>>(grid, st.in[0], a.num_embeddings, l.name);
            st.out = st.pos->out_map();
            st.sync_group = st.pos->sync_group();
            break;
        case LayerKind::layernorm:
            follow(nullptr);
            st.in[0].axis[2] = kReplica;  // normalises over the whole hidden axis
            st.ln = std::make_unique<DistLayerNorm<T>>(grid, st.in[0], l.name);
            st.out = st.ln->out_map();
            st.sync_group = st.ln->sync_group();
            break;
        case LayerKind::batchnorm2d:
            follow(nullptr);
            st.bn = std::make_unique<DistBatchNorm<T>>(grid, st.in[0], l.name);
            st.out = st.bn->out_map();
            st.sync_group = st.bn->sync_group();
            break;
        case LayerKind::add:
        case LayerKind::concat: {
            // Merges read every input in the first input's dist, fitted to that input's shape.
            st.in.clear();
            Index offset = 0;
            for (int k : l.inputs) {
                const auto v = views[k];
                const std::array<Index, 4> shape{batch, v[0], v[1], v[2]};
                TensorMap mk = m;
                mk.shape = shape;
                st.in.push_back(fit(mk, grid, shape, nullptr));
                st.channel_offset.push_back(offset);
                offset += v[0];
            }
            st.out = st.in[0];
            if (l.kind == LayerKind::concat) st.out.shape[1] = offset;
            break;
        }
        default:  // relu, flatten, dropout: elementwise on whatever arrives
            follow(nullptr);
            st.out = st.in[0];
            break;
    }
}

// The plan's dists of layer i (planner/layout.hpp) against the maps the runner built: the runner
// measures exactly the communication the plan predicts only if it reads and writes every tensor
// as the plan's distribution rules say.
template <class T>
void NetworkRunner<T>::check_against_plan(const Stage& st, const Layout& lay, std::vector<planner::Dist>& planned_out) {
    const auto& layers = network_.layers;
    const Layer& l = layers[st.index];
    const bool first = l.inputs[0] == 0;
    const planner::Dist first_out = first ? planner::loader_dist(lay) : planned_out[l.inputs[0]];
    const planner::LayerDists planned = planner::layer_dists(network_, st.index, lay, first_out);
    planned_out[st.index] = planned.out;
    const planner::Dist have_out = parts_of(st.out, *st.grid, planner::dist_shape(network_, st.index));
    std::string problem;
    if (!(have_out == planned.out))
        problem = "writes " + to_text(have_out) + ", the plan's rules say " + to_text(planned.out);
    for (std::size_t k = 0; k < l.inputs.size() && problem.empty(); ++k) {
        const planner::Dist want = planner::wanted_input_dist(network_, st.index, static_cast<int>(k), lay, first_out);
        const planner::Dist have = parts_of(st.in[k], *st.grid, planner::dist_shape(network_, l.inputs[k]));
        if (!(have == want))
            problem = "reads input " + std::to_string(k) + " in " + to_text(have) + ", the plan's rules say " +
                      to_text(want);
    }
    if (!problem.empty()) throw std::logic_error("layer " + l.name + ": the runner " + problem);
}

// The data loader's block of the network input for input k of `st` (samples counted from the
// segment's first sample).
template <class T>
void NetworkRunner<T>::load_input(Stage& st, std::size_t k) {
    Tensor<T>& x = st.loaded[k];
    const Index o = segment_.sample_offset;
    if (network_.token_input) {  // token ids in [0, vocabulary), exact in float and double
        const Index vocabulary = network_.layers[static_cast<std::size_t>(st.index)].attrs.num_embeddings;
        for (Index b = x.box.lo[0]; b < x.box.hi[0]; ++b)
            for (Index t = x.box.lo[1]; t < x.box.hi[1]; ++t)
                x.at(b, t, 0, 0) = static_cast<T>(
                    static_cast<Index>((hashed_uniform(4, o + b, t, 0) + 1.0) * 0.5 * double(vocabulary)) % vocabulary);
        return;
    }
    for (Index b = x.box.lo[0]; b < x.box.hi[0]; ++b)
        for (Index c = x.box.lo[1]; c < x.box.hi[1]; ++c)
            for (Index h = x.box.lo[2]; h < x.box.hi[2]; ++h)
                for (Index w = x.box.lo[3]; w < x.box.hi[3]; ++w) x.at(b, c, h, w) = static_cast<T>(input_value(o + b, c, h, w));
}

// Each input's redistribution from its producer's blocks to the blocks this layer reads.
template <class T>
void NetworkRunner<T>::connect_inputs(Stage& st) {
    const Layer& l = network_.layers[st.index];
    const Grid& grid = *st.grid;
    st.to_in.resize(l.inputs.size());
    st.back.resize(l.inputs.size());
    st.loaded.resize(l.inputs.size());
    for (std::size_t k = 0; k < l.inputs.size(); ++k) {
        std::vector<Box> want = st.in[k].boxes(grid);
        if (st.kind == LayerKind::concat) {
            // Only the part of input k inside this rank's output block (in input k's channels).
            const std::vector<Box> outs = st.out.boxes(grid);
            for (std::size_t r = 0; r < want.size(); ++r) {
                Box region = shift_channels(outs[r], -st.channel_offset[k]);
                want[r] = intersect(region, Box{{0, 0, 0, 0}, st.in[k].shape});
            }
        }
        if (l.inputs[k] == 0) {
            // The data loader delivers the input block each rank asks for.
            st.loaded[k] = Tensor<T>(want[static_cast<std::size_t>(grid.rank())]);
            load_input(st, k);
            continue;
        }
        const Stage& producer = *stage_of_[l.inputs[k]];
        std::vector<Box> have = producer.out.boxes(*producer.grid);
        if (have != want) {
            st.to_in[k].emplace(have, want, comm_);
            st.back[k].emplace(want, have, comm_);
        }
    }
}

template <class T>
NetworkRunner<T>::NetworkRunner(const networks::Network& network, const std::vector<Layout>& layer_layouts, Index batch,
                                MPI_Comm comm, bool overlap_sync, const Segment& segment)
    : network_(network), comm_(comm), overlap_sync_(overlap_sync), segment_(segment) {
    if (std::string why = unsupported_reason(network, true); !why.empty()) throw std::invalid_argument(why);
    const int p = comm_size(comm);
    const auto& layers = network.layers;
    std::vector<std::array<Index, 3>> views(layers.size());
    views[0] = view_of(network, 0, views);
    stage_of_.assign(layers.size(), nullptr);
    std::vector<planner::Dist> planned_out(layers.size());  // the plan's output dist of every layer
    const int n_layers = static_cast<int>(layers.size());
    if (segment_.last <= 0) segment_.last = n_layers - 1;
    if (segment_.first < 1 || segment_.first > segment_.last || segment_.last >= n_layers)
        throw std::invalid_argument("segment of layers " + std::to_string(segment_.first) + ".." +
                                    std::to_string(segment_.last) + " outside the network");
    for (std::size_t i = 1; i <= static_cast<std::size_t>(segment_.last); ++i) {
        const Layer& l = layers[i];
        views[i] = view_of(network, static_cast<int>(i), views);
        auto st = std::make_unique<Stage>();
        st->kind = l.kind;
        st->index = static_cast<int>(i);
        st->name = l.name;
        st->inputs = l.inputs;
        st->gelu = l.kind == LayerKind::activation && l.attrs.function == "gelu";
        Layout lay = layer_layouts[i];
        if (p % lay.procs() != 0)
            throw std::invalid_argument("layer " + l.name + ": layout " + planner::to_string(lay) +
                                        " does not divide " + std::to_string(p) + " ranks");
        auto& grid = grids_[lay];
        if (!grid) grid = std::make_unique<Grid>(comm, GridShape{lay.n, lay.co, lay.ci, lay.h, lay.w});
        st->grid = grid.get();
        const TensorMap first_in_out = l.inputs[0] == 0 ? TensorMap{} : stage_of_[l.inputs[0]]->out;
        build_layer(*st, l, *grid, batch, views, first_in_out);
        connect_inputs(*st);
        if (Shard<T>* sh = st->shard()) {
            if (st->bn) {  // gamma near 1, beta small
                sh->init([&](Index r, Index) { return 1.0 + 0.2 * hashed_uniform(1, i, r, 0); },
                         [&](Index r) { return 0.1 * hashed_uniform(2, i, r, 0); });
            } else {
                const double scale = std::sqrt(3.0 / double(sh->cols));  // unit-variance outputs for unit inputs
                sh->init([&](Index r, Index c) { return scale * hashed_uniform(1, i, r, c); },
                         [&](Index r) { return 0.1 * hashed_uniform(2, i, r, 0); });
            }
            sh->zero_grad();
        }
        check_against_plan(*st, lay, planned_out);
        stage_of_[i] = st.get();
        stages_.push_back(std::move(st));
    }
    // The one tensor the segment reads from before its first layer (a pipeline cut).
    for (int i = segment_.first; i <= segment_.last; ++i)
        for (int k : layers[static_cast<std::size_t>(i)].inputs)
            if (k > 0 && k < segment_.first) {
                if (boundary_ != 0 && boundary_ != k)
                    throw std::invalid_argument("layers " + std::to_string(segment_.first) + ".." +
                                                std::to_string(segment_.last) + " read more than one earlier tensor");
                boundary_ = k;
            }
    if (segment_.last + 1 < n_layers) return;  // the loss is another segment's
    const Stage& last = *stages_.back();
    logits_shape_ = last.out.shape;
    sequence_logits_ = layers.back().output_shape.size() == 2;  // [B, S, V, 1]: per token
    classes_ = logits_shape_[sequence_logits_ ? 2 : 1];
    Box all{{0, 0, 0, 0}, logits_shape_};
    std::vector<Box> out_boxes = last.out.boxes(*last.grid), everywhere(p, all);
    auto split = [&](int d) { return last.out.axis[d] != kReplica && last.grid->dim(last.out.axis[d]) > 1; };
    if (sequence_logits_ && (split(2) || !split(1))) {
        // Per-token logits whole along the sequence: each rank's loss runs on its own samples and,
        // split over the vocabulary, on its shard (Megatron's vocab-parallel cross-entropy), as the
        // cost model charges it (the local share, no gather of [B, S, V]).
        vocab_group_ = last.grid->group(split(2) ? Grid::bit(static_cast<Axis>(last.out.axis[2])) : 0u);
        batch_group_ = split_group(*last.grid, last.out, {0});
    } else {
        // Otherwise the loss reads the whole batch of logits on every rank; its gradient is sliced
        // back locally.
        gather_logits_ = Repartition(out_boxes, everywhere, comm);
        scatter_logits_ = Repartition(everywhere, out_boxes, comm);
    }
    set_sample_offset(segment_.sample_offset);
}

// One label per sample and output position (a segmentation network's loss is per pixel), counted
// from the segment's first sample; the loader's input blocks likewise.
template <class T>
void NetworkRunner<T>::set_sample_offset(Index offset) {
    segment_.sample_offset = offset;
    for (auto& st : stages_)
        for (std::size_t k = 0; k < st->inputs.size(); ++k)
            if (st->inputs[k] == 0) load_input(*st, k);
    if (classes_ == 0) return;
    const Index per_sample = sequence_logits_ ? logits_shape_[1] : logits_shape_[2] * logits_shape_[3];
    labels_.resize(static_cast<std::size_t>(logits_shape_[0] * per_sample));
    for (Index b = 0; b < static_cast<Index>(labels_.size()); ++b)
        labels_[static_cast<std::size_t>(b)] = label_of(offset * per_sample + b, classes_);
}

template <class T>
NetworkRunner<T>::~NetworkRunner() {
    for (auto& st : stages_)
        if (st->sync_request != MPI_REQUEST_NULL) MPI_Request_free(&st->sync_request);
}

template <class T>
Tensor<T> NetworkRunner<T>::forward_layer(Stage& st, std::vector<const Tensor<T>*>& xs, OpTimer& timer) {
    const Tensor<T>& x = *xs[0];
    if (st.conv) return st.conv->forward(x, timer);
    if (st.convt) return st.convt->forward(x, timer);
    if (st.linear) return st.linear->forward(x, timer);
    if (st.pool) return st.pool->forward(x, timer);
    if (st.bn) return st.bn->forward(x, timer);
    if (st.gpool) return st.gpool->forward(x, timer);
    if (st.upsample) return st.upsample->forward(x, timer);
    if (st.emb) return st.emb->forward(x, timer);
    if (st.pos) return st.pos->forward(x, timer);
    if (st.ln) return st.ln->forward(x, timer);
    if (st.attn) return st.attn->forward(x, timer);
    if (st.kind == LayerKind::add)
        return timer.time(Op::fwd_compute, st.name + " add", [&] {
            Tensor<T> y = x;
            for (std::size_t k = 1; k < xs.size(); ++k) {
                if (!(xs[k]->box == y.box)) throw std::logic_error(st.name + ": residual blocks differ");
                for (std::size_t e = 0; e < y.data.size(); ++e) y.data[e] += xs[k]->data[e];
            }
            return y;
        });
    if (st.kind == LayerKind::concat)
        return timer.time(Op::fwd_compute, st.name + " concat", [&] {
            Tensor<T> y(st.out.box(*st.grid, st.grid->rank()));
            for (std::size_t k = 0; k < xs.size(); ++k) {
                Tensor<T> shifted = *xs[k];
                shifted.box = shift_channels(shifted.box, st.channel_offset[k]);
                copy_region(shifted, y, shifted.box, false);
            }
            return y;
        });
    if (st.kind == LayerKind::activation && st.gelu) {
        st.saved = x;  // GeLU(x) = x Phi(x) (Hendrycks and Gimpel 2016), the exact erf form
        return timer.time(Op::fwd_compute, st.name + " gelu", [&] {
            Tensor<T> y = x;
            for (T& v : y.data) v = v * T(0.5) * (T{1} + std::erf(v / std::sqrt(T{2})));
            return y;
        });
    }
    if (st.kind == LayerKind::activation) {
        Tensor<T> y = x;
        timer.time(Op::fwd_compute, st.name + " relu", [&] {
            for (T& v : y.data) v = std::max(v, T{0});
        });
        st.saved = y;
        return y;
    }
    return x;  // flatten, dropout
}

// The gradients with respect to every input of `st`, in the blocks the inputs were read in.
template <class T>
std::vector<Tensor<T>> NetworkRunner<T>::backward_layer(Stage& st, Tensor<T>&& dy, OpTimer& timer) {
    std::vector<Tensor<T>> dxs(st.inputs.size());
    if (st.conv) dxs[0] = st.conv->backward(dy, timer);
    else if (st.convt) dxs[0] = st.convt->backward(dy, timer);
    else if (st.linear) dxs[0] = st.linear->backward(dy, timer);
    else if (st.pool) dxs[0] = st.pool->backward(dy, timer);
    else if (st.bn) dxs[0] = st.bn->backward(dy, timer);
    else if (st.gpool) dxs[0] = st.gpool->backward(dy, timer);
    else if (st.upsample) dxs[0] = st.upsample->backward(dy, timer);
    else if (st.emb) st.emb->backward(dy, timer);
    else if (st.pos) dxs[0] = st.pos->backward(dy, timer);
    else if (st.ln) dxs[0] = st.ln->backward(dy, timer);
    else if (st.attn) dxs[0] = st.attn->backward(dy, timer);
    else if (st.kind == LayerKind::activation && st.gelu) {
        timer.time(Op::bwd_compute, st.name + " gelu backward", [&] {
            const T inv_sqrt_2pi = T(0.3989422804014327);
            for (std::size_t k = 0; k < dy.data.size(); ++k) {
                const T v = st.saved.data[k];
                dy.data[k] *= T(0.5) * (T{1} + std::erf(v / std::sqrt(T{2}))) + v * inv_sqrt_2pi * std::exp(-v * v / 2);
            }
        });
        dxs[0] = std::move(dy);
    }
    else if (st.kind == LayerKind::add) {
        for (std::size_t k = 1; k < dxs.size(); ++k) dxs[k] = dy;
        dxs[0] = std::move(dy);
    } else if (st.kind == LayerKind::concat) {
        timer.time(Op::bwd_compute, st.name + " concat backward", [&] {
            for (std::size_t k = 0; k < dxs.size(); ++k) {
                const Box region = intersect(shift_channels(dy.box, -st.channel_offset[k]), Box{{0, 0, 0, 0}, st.in[k].shape});
                Tensor<T> g(shift_channels(region, st.channel_offset[k]));
                copy_region(dy, g, g.box, false);
                g.box = region;
                dxs[k] = std::move(g);
            }
        });
    } else if (st.kind == LayerKind::activation) {
        timer.time(Op::bwd_compute, st.name + " relu backward", [&] {
            // A multiply by the mask, not a branch: the branch follows the data, and a predictor
            // that learns a small tensor's pattern (the same data every step) but not a large one
            // made this loop 1 ns per element at batch 4 and 5 at batch 16 (lenet5), which no
            // cost per element can express; real frameworks' kernels do not branch either.
            for (std::size_t k = 0; k < dy.data.size(); ++k) dy.data[k] *= T(st.saved.data[k] > T{0});
        });
        dxs[0] = std::move(dy);
    } else {
        dxs[0] = std::move(dy);
    }
    return dxs;
}

template <class T>
void NetworkRunner<T>::start_sync(Stage& st, OpTimer& timer) {
    Shard<T>* sh = st.shard();
    if (!sh || comm_size(st.sync_group) <= 1) return;
    timer.time(Op::sync, st.name + " gradient all-reduce", [&] {
        // The weight and bias gradients live in one buffer (Shard::grad): one all-reduce per
        // layer, as the plan has it, in place.
        if (overlap_sync_)
            MPI_Iallreduce(MPI_IN_PLACE, sh->grad.data(), static_cast<int>(sh->grad.size()), mpi_type<T>(), MPI_SUM,
                           st.sync_group, &st.sync_request);
        else
            MPI_Allreduce(MPI_IN_PLACE, sh->grad.data(), static_cast<int>(sh->grad.size()), mpi_type<T>(), MPI_SUM,
                          st.sync_group);
    });
}

template <class T>
void NetworkRunner<T>::zero_grad() {
    for (auto& st : stages_)
        if (Shard<T>* sh = st->shard()) sh->zero_grad();
}

template <class T>
Box NetworkRunner<T>::boundary_box() const {
    if (boundary_ == 0) return Box{};
    const Stage& producer = *stage_of_[static_cast<std::size_t>(boundary_)];
    return producer.out.box(*producer.grid, producer.grid->rank());
}

template <class T>
Box NetworkRunner<T>::output_box() const {
    const Stage& last = *stage_of_[static_cast<std::size_t>(segment_.last)];
    return last.out.box(*last.grid, last.grid->rank());
}

template <class T>
Tensor<T> NetworkRunner<T>::forward_segment(Tensor<T> boundary, OpTimer& timer) {
    acts_.assign(network_.layers.size(), Tensor<T>{});
    if (boundary_ != 0) acts_[static_cast<std::size_t>(boundary_)] = std::move(boundary);
    for (auto& st : stages_) {
        if (st->index < segment_.first) continue;
        std::vector<Tensor<T>> moved(st->inputs.size());
        std::vector<const Tensor<T>*> xs(st->inputs.size());
        for (std::size_t k = 0; k < st->inputs.size(); ++k) {
            const Tensor<T>& src = st->inputs[k] == 0 ? st->loaded[k] : acts_[st->inputs[k]];
            if (st->to_in[k]) {
                const Repartition& r = *st->to_in[k];
                auto move = [&] { return r.forward(src); };
                const std::string name = st->name + " redistribution";
                moved[k] = r.is_local() ? timer.time(Op::redistribution, name, move)
                                        : timer.time_blocking(Op::redistribution, name, r.comm(), move);
                xs[k] = &moved[k];
            } else {
                xs[k] = &src;
            }
        }
        acts_[st->index] = forward_layer(*st, xs, timer);
    }
    output_ = std::move(acts_[static_cast<std::size_t>(segment_.last)]);
    acts_.clear();
    return output_;
}

template <class T>
Tensor<T> NetworkRunner<T>::backward_segment(Tensor<T> dy, OpTimer& timer) {
    std::vector<Tensor<T>> grads(network_.layers.size());
    std::vector<char> has_grad(network_.layers.size(), 0);  // the same on every rank
    const auto last = static_cast<std::size_t>(segment_.last);
    if (last + 1 == network_.layers.size()) {
        grads[last] = timer.time(Op::loss, "loss", [&] { return loss_gradient(loss_); });
        if (segment_.loss_scale != 1) {
            loss_ *= segment_.loss_scale;
            for (T& v : grads[last].data) v *= static_cast<T>(segment_.loss_scale);
        }
    } else {
        grads[last] = std::move(dy);
    }
    has_grad[last] = 1;
    for (auto it = stages_.rbegin(); it != stages_.rend(); ++it) {
        Stage& st = **it;
        if (st.index < segment_.first || !has_grad[st.index]) continue;  // feeds nothing the loss reads
        std::vector<Tensor<T>> dxs = backward_layer(st, std::move(grads[st.index]), timer);
        grads[st.index] = Tensor<T>{};
        // Layer i's gradient all-reduce starts as soon as its backward is done (the model's overlap).
        start_sync(st, timer);
        if (overlap_sync_) progress_syncs(timer);
        if (after_backward) after_backward(st.index, timer);
        for (std::size_t k = 0; k < st.inputs.size(); ++k) {
            if (st.inputs[k] == 0) continue;  // the network's input needs no gradient
            Tensor<T> g = std::move(dxs[k]);
            if (st.back[k]) {
                const Repartition& r = *st.back[k];
                auto move = [&] { return r.forward(g); };
                const std::string name = st.name + " redistribution back";
                g = r.is_local() ? timer.time(Op::redistribution, name, move)
                                 : timer.time_blocking(Op::redistribution, name, r.comm(), move);
            }
            add_into(grads[st.inputs[k]], has_grad[st.inputs[k]], std::move(g));
        }
    }
    finish_sync(timer);
    return boundary_ != 0 ? std::move(grads[static_cast<std::size_t>(boundary_)]) : Tensor<T>{};
}

// Poke the outstanding gradient all-reduces: Open MPI progresses non-blocking collectives only
// inside MPI calls, and the overlap the model assumes needs that progress. The calls do the
// transfer's and the reduction's work on this process (libnbc's rounds, the CMA copy): smallcnn's
// batch plan at P = 2 spent 200-450 us per iteration in them (16:33 UTC, load 2.4-2.6), which no
// operation timed before; now sync, as the model charges them (planner::SyncProgress::call_share).
template <class T>
void NetworkRunner<T>::progress_syncs(OpTimer& timer) {
    const bool any = std::any_of(stages_.begin(), stages_.end(),
                                 [](const auto& st) { return st->sync_request != MPI_REQUEST_NULL; });
    if (!any) return;
    timer.time(Op::sync, "gradient all-reduce progress", [&] {
        for (auto& st : stages_)
            if (st->sync_request != MPI_REQUEST_NULL) {
                int done = 0;
                MPI_Test(&st->sync_request, &done, MPI_STATUS_IGNORE);
            }
    });
}

template <class T>
void NetworkRunner<T>::finish_sync(OpTimer& timer) {
    timer.time(Op::sync, "gradient all-reduce wait", [&] {
        for (auto& st : stages_)
            if (st->sync_request != MPI_REQUEST_NULL) MPI_Wait(&st->sync_request, MPI_STATUS_IGNORE);
    });
}

template <class T>
double NetworkRunner<T>::step(OpTimer& timer) {
    zero_grad();
    forward_segment(Tensor<T>{}, timer);
    backward_segment(Tensor<T>{}, timer);
    return loss_;
}

// Softmax cross-entropy on vocabulary shards: per token the maximum and the sum of exponentials are
// all-reduced over the vocabulary split (MAX, then SUM together with the target's logit, which only
// its owner contributes); the mean over tokens is summed over the batch split. The gradient
// softmax - onehot stays on each shard (Shoeybi et al. 2019, section 3: only B x S numbers move).
template <class T>
Tensor<T> NetworkRunner<T>::sharded_loss_gradient(double& loss) {
    const Tensor<T>& z = output_;
    const Index rows = z.extent(0) * z.extent(1), nv = z.extent(2), v0 = z.box.lo[2];
    const Index S = logits_shape_[1], total = logits_shape_[0] * S;
    std::vector<double> peak(static_cast<std::size_t>(rows), -std::numeric_limits<double>::infinity());
    for (Index r = 0; r < rows; ++r)
        for (Index v = 0; v < nv; ++v) peak[r] = std::max(peak[r], double(z.data[r * nv + v]));
    MPI_Allreduce(MPI_IN_PLACE, peak.data(), static_cast<int>(rows), MPI_DOUBLE, MPI_MAX, vocab_group_);
    std::vector<double> sums(static_cast<std::size_t>(2 * rows), 0.0);  // [sum exp | target logit]
    auto label_of = [&](Index r) { return labels_[(z.box.lo[0] + r / S) * S + r % S]; };
    for (Index r = 0; r < rows; ++r) {
        for (Index v = 0; v < nv; ++v) sums[r] += std::exp(double(z.data[r * nv + v]) - peak[r]);
        const Index label = label_of(r);
        if (label >= v0 && label < v0 + nv) sums[rows + r] = double(z.data[r * nv + label - v0]);
    }
    MPI_Allreduce(MPI_IN_PLACE, sums.data(), static_cast<int>(2 * rows), MPI_DOUBLE, MPI_SUM, vocab_group_);
    Tensor<T> dz(z.box);
    double local = 0;
    for (Index r = 0; r < rows; ++r) {
        const double log_sum = peak[r] + std::log(sums[r]);
        local += log_sum - sums[rows + r];
        const Index label = label_of(r);
        for (Index v = 0; v < nv; ++v) {
            const double prob = std::exp(double(z.data[r * nv + v]) - log_sum);
            dz.data[r * nv + v] = static_cast<T>((prob - (v0 + v == label ? 1.0 : 0.0)) / double(total));
        }
    }
    if (comm_size(batch_group_) > 1) MPI_Allreduce(MPI_IN_PLACE, &local, 1, MPI_DOUBLE, MPI_SUM, batch_group_);
    loss = local / double(total);
    return dz;
}

// Mean softmax cross-entropy over every sample and output position, on the gathered logits; the
// gradient sliced back to this rank's block.
template <class T>
Tensor<T> NetworkRunner<T>::loss_gradient(double& loss) {
    if (vocab_group_ != MPI_COMM_NULL) return sharded_loss_gradient(loss);
    Tensor<T> logits = gather_logits_.forward(output_);
    if (sequence_logits_) {  // already [position, class] row-major
        Tensor<T> dlogits(logits.box);
        loss = softmax_cross_entropy(logits.data.data(), labels_, classes_, dlogits.data.data());
        return scatter_logits_.forward(dlogits);
    }
    const Index nb = logits_shape_[0], area = logits_shape_[2] * logits_shape_[3];
    std::vector<T> rows(logits.data.size()), drows(logits.data.size());
    auto row_major = [&](Index b, Index c, Index pos) { return ((b * area + pos) * classes_ + c); };
    for (Index b = 0; b < nb; ++b)
        for (Index c = 0; c < classes_; ++c)
            for (Index pos = 0; pos < area; ++pos)
                rows[row_major(b, c, pos)] = logits.data[(b * classes_ + c) * area + pos];
    loss = softmax_cross_entropy(rows.data(), labels_, classes_, drows.data());
    Tensor<T> dlogits(logits.box);
    for (Index b = 0; b < nb; ++b)
        for (Index c = 0; c < classes_; ++c)
            for (Index pos = 0; pos < area; ++pos)
                dlogits.data[(b * classes_ + c) * area + pos] = drows[row_major(b, c, pos)];
    return scatter_logits_.forward(dlogits);
}

template <class T>
void NetworkRunner<T>::sgd(T learning_rate, OpTimer& timer) {
    timer.time(Op::optimizer, "sgd", [&] {
        for (auto& st : stages_)
            if (Shard<T>* sh = st->shard()) {
                for (std::size_t k = 0; k < sh->weight.size(); ++k) sh->weight[k] -= learning_rate * sh->dweight[k];
                for (std::size_t k = 0; k < sh->bias.size(); ++k) sh->bias[k] -= learning_rate * sh->dbias[k];
            }
    });
}

template <class T>
std::vector<std::pair<int, const Shard<T>*>> NetworkRunner<T>::shards() const {
    std::vector<std::pair<int, const Shard<T>*>> out;
    for (const auto& st : stages_)
        if (const Shard<T>* sh = const_cast<Stage&>(*st).shard()) out.emplace_back(st->index, sh);
    return out;
}

template <class T>
Tensor<T> NetworkRunner<T>::forward_one(int layer, const std::vector<const Tensor<T>*>& xs, OpTimer& timer) {
    Stage& st = *stage_of_[static_cast<std::size_t>(layer)];
    std::vector<const Tensor<T>*> in(xs);
    for (std::size_t k = 0; k < st.inputs.size(); ++k) {
        if (st.to_in[k]) throw std::logic_error("forward_one: layer " + st.name + " needs a redistribution");
        if (st.inputs[k] == 0) in[k] = &st.loaded[k];
    }
    return forward_layer(st, in, timer);
}

template <class T>
std::vector<Tensor<T>> NetworkRunner<T>::backward_one(int layer, Tensor<T>&& dy, OpTimer& timer) {
    std::vector<Tensor<T>> dxs = backward_layer(*stage_of_[static_cast<std::size_t>(layer)], std::move(dy), timer);
    for (std::size_t k = 0; k < dxs.size(); ++k)
        if (network_.layers[static_cast<std::size_t>(layer)].inputs[k] == 0) dxs[k] = Tensor<T>{};
    return dxs;
}

template <class T>
Tensor<T> NetworkRunner<T>::loss_one(const Tensor<T>& logits, double& loss) {
    output_ = logits;
    return loss_gradient(loss);
}

template <class T>
Box NetworkRunner<T>::output_box(int layer) const {
    const Stage& st = *stage_of_[static_cast<std::size_t>(layer)];
    return st.out.box(*st.grid, st.grid->rank());
}

template <class T>
Shard<T>* NetworkRunner<T>::shard_of(int layer) {
    return stage_of_[static_cast<std::size_t>(layer)]->shard();
}

template class NetworkRunner<float>;
template class NetworkRunner<double>;

namespace {
double max_over(MPI_Comm comm, double v) {
    double r = 0;
    MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, MPI_MAX, comm);
    return r;
}

// Relative error of this rank's blocks against the sequential run (max over ranks).
double output_error(const Tensor<double>& mine, const Tensor<double>& reference, MPI_Comm comm) {
    double err = 0, scale = 0;
    for (double v : reference.data) scale = std::max(scale, std::abs(v));
    const Box& b = mine.box;
    for (Index i = b.lo[0]; i < b.hi[0]; ++i)
        for (Index j = b.lo[1]; j < b.hi[1]; ++j)
            for (Index k = b.lo[2]; k < b.hi[2]; ++k)
                for (Index l = b.lo[3]; l < b.hi[3]; ++l)
                    err = std::max(err, std::abs(mine.at(i, j, k, l) - reference.at(i, j, k, l)));
    return max_over(comm, scale > 0 ? err / scale : err);
}

double gradient_error(const NetworkRunner<double>& dist, const NetworkRunner<double>& seq, MPI_Comm comm) {
    auto mine = dist.shards(), ref = seq.shards();
    double worst = 0;
    for (std::size_t s = 0; s < mine.size(); ++s) {
        const Shard<double>& a = *mine[s].second;
        const Shard<double>& r = *ref[s].second;
        double err = 0, scale = 0;
        for (double v : r.dweight) scale = std::max(scale, std::abs(v));
        for (double v : r.dbias) scale = std::max(scale, std::abs(v));
        const Index nc = a.col_hi - a.col_lo;
        for (Index i = a.row_lo; i < a.row_hi; ++i)
            for (Index j = a.col_lo; j < a.col_hi; ++j)
                err = std::max(err,
                               std::abs(a.dweight[(i - a.row_lo) * nc + (j - a.col_lo)] - r.dweight[i * r.cols + j]));
        const Index b0 = a.bias_size > 0 ? 0 : a.row_lo;  // a bias held whole
        for (Index i = b0; i < b0 + Index(a.dbias.size()); ++i)
            err = std::max(err, std::abs(a.dbias[i - b0] - r.dbias[i]));
        worst = std::max(worst, scale > 0 ? err / scale : err);
    }
    return max_over(comm, worst);
}
}  // namespace

RunResult run_plan(const networks::Network& network, const planner::ScoredPlan& scored, Index batch,
                   const RunOptions& options, MPI_Comm comm) {
    if (std::string why = unsupported_reason(network); !why.empty()) throw std::invalid_argument(why);  // untied
    RunResult result;
    std::vector<Layout> layouts(network.layers.size());
    for (std::size_t i = 1; i < network.layers.size(); ++i) layouts[i] = scored.layers[i].layout;
    const int me = comm_rank(comm), p = comm_size(comm);

    if (options.check) {
        // The sequential network: the same code on one process (every layout 1), same weights.
        NetworkRunner<double> dist(network, layouts, batch, comm, options.overlap_sync);
        NetworkRunner<double> seq(network, std::vector<Layout>(network.layers.size()), batch, MPI_COMM_SELF, true);
        OpTimer t;
        t.on_step = options.on_step;
        for (int s = 0; s < std::max(1, options.sgd_steps); ++s) {
            double ld = dist.step(t), ls = seq.step(t);
            if (s == 0) {
                result.output_error = output_error(dist.output(), seq.output(), comm);
                result.gradient_error = gradient_error(dist, seq, comm);
            }
            result.losses.push_back(ld);
            result.reference_losses.push_back(ls);
            result.loss_error =
                std::max(result.loss_error, max_over(comm, std::abs(ld - ls) / std::max(1e-300, std::abs(ls))));
            dist.sgd(options.learning_rate, t);
            seq.sgd(options.learning_rate, t);
        }
        result.checked = true;
    }

    NetworkRunner<float> runner(network, layouts, batch, comm, options.overlap_sync);
    OpTimer timer;
    timer.on_step = options.on_step;
    IterationSamples samples;
    const int total = options.warmup + options.iterations;
    for (int it = 0; it < total; ++it) {
        const bool measured = it >= options.warmup;
        timer.reset();
        timer.trace = options.trace && it == total - 1;
        if (options.on_step) options.on_step("iteration " + std::to_string(it) + " start (barrier)", true);
        MPI_Barrier(comm);
        double t0 = MPI_Wtime();
        // The last iteration's sends go to the ledger (counting costs a branch per MPI call).
        std::optional<SendCounter> counter;
        if (it == total - 1) {
            counter.emplace();
            timer.on_op = [&counter](Op op, const std::string& name) { counter->set_step(static_cast<int>(op), name); };
        }
        runner.step(timer);
        runner.sgd(static_cast<float>(options.learning_rate), timer);
        double t1 = MPI_Wtime();
        timer.on_op = nullptr;
        if (counter) {
            std::vector<SentMessage> sent = counter->messages();
            counter.reset();
            result.ledger = layer_ledger(network, scored.calls, sent, comm);
        }
        if (timer.trace) result.trace_origin = t0;
        if (options.on_step) options.on_step("iteration " + std::to_string(it) + " waits of blocking calls", true);
        settle_waits(timer);
        if (measured) samples.add(t1 - t0, timer, comm);
    }
    samples.summarise(result);
    if (options.trace) {
        // Gather every rank's events of the last iteration on rank 0, times relative to each rank's own
        // exit from the iteration's barrier: Open MPI's MPI_Wtime counts from each process's MPI_Init
        // (ompi_wtime_time_origin), so rank 0's origin on another rank is off by their start-up gap
        // (117 us on resnet-small at P = 2: rank 1's first event was at -115 us).
        const double origin = result.trace_origin;
        std::vector<double> flat;
        std::string names;
        for (const auto& e : timer.events) {
            flat.insert(flat.end(), {e.start - origin, e.end - origin, double(static_cast<int>(e.op))});
            names += e.name + '\n';
        }
        int counts[2] = {static_cast<int>(flat.size()), static_cast<int>(names.size())};
        std::vector<int> all_counts(2 * p);
        MPI_Gather(counts, 2, MPI_INT, all_counts.data(), 2, MPI_INT, 0, comm);
        std::vector<int> fc(p), fd(p), nc(p), nd(p);
        for (int r = 0; r < p; ++r) {
            fc[r] = all_counts[2 * r];
            nc[r] = all_counts[2 * r + 1];
            if (r) {
                fd[r] = fd[r - 1] + fc[r - 1];
                nd[r] = nd[r - 1] + nc[r - 1];
            }
        }
        std::vector<double> all_flat(me == 0 ? static_cast<std::size_t>(fd[p - 1] + fc[p - 1]) : 0);
        std::string all_names(me == 0 ? static_cast<std::size_t>(nd[p - 1] + nc[p - 1]) : 0, '\0');
        MPI_Gatherv(flat.data(), counts[0], MPI_DOUBLE, all_flat.data(), fc.data(), fd.data(), MPI_DOUBLE, 0, comm);
        MPI_Gatherv(names.data(), counts[1], MPI_CHAR, all_names.data(), nc.data(), nd.data(), MPI_CHAR, 0, comm);
        if (me == 0) {
            result.trace.resize(p);
            for (int r = 0; r < p; ++r) {
                std::size_t pos = static_cast<std::size_t>(nd[r]);
                for (int k = 0; k < fc[r] / 3; ++k) {
                    std::size_t nl = all_names.find('\n', pos);
                    TraceEvent e;
                    e.name = all_names.substr(pos, nl - pos);
                    pos = nl + 1;
                    e.start = all_flat[fd[r] + 3 * k];
                    e.end = all_flat[fd[r] + 3 * k + 1];
                    e.op = static_cast<Op>(static_cast<int>(all_flat[fd[r] + 3 * k + 2]));
                    result.trace[r].push_back(e);
                }
            }
        }
    }
    return result;
}

}  // namespace dnnplan::validators
