#include "validators/runner.hpp"

#include <algorithm>
#include <cmath>
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

std::string unsupported_reason(const networks::Network& network) {
    for (std::size_t i = 1; i < network.layers.size(); ++i) {
        const Layer& l = network.layers[i];
        std::string where = "layer " + l.name + ": ";
        if (l.inputs.size() != 1 || l.inputs[0] != static_cast<int>(i) - 1)
            return where + "the validator runs chains only (each layer reading the previous one)";
        switch (l.kind) {
            case LayerKind::conv2d:
                if (l.attrs.groups != 1) return where + "grouped convolutions are not supported by the validator";
                break;
            case LayerKind::linear:
                if (!l.attrs.tied_to.empty()) return where + "tied weights are not supported by the validator";
                break;
            case LayerKind::maxpool2d:
            case LayerKind::avgpool2d:
                if (l.attrs.padding_h || l.attrs.padding_w || l.attrs.ceil_mode || l.attrs.dilation_h != 1 ||
                    l.attrs.dilation_w != 1)
                    return where + "pooling with padding, dilation or ceil_mode is not supported by the validator";
                break;
            case LayerKind::activation:
                if (l.attrs.function != "relu") return where + "only relu activations are supported by the validator";
                break;
            case LayerKind::flatten:
            case LayerKind::dropout:
                break;  // dropout runs as the identity (inference-free check)
            default:
                return where + to_string(l.kind) + " layers are not supported by the validator";
        }
    }
    if (network.layers.size() < 2 || network.layers.back().kind != LayerKind::linear)
        return "the validator needs a network ending in a linear layer (the logits)";
    if (network.input().output_shape.size() != 3) return "the validator needs an image input [C, H, W]";
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

// How many parts each tensor dimension of a map is cut into: the plan's Dist of the same tensor. A
// per-sample feature vector is one dimension to the planner (the runner keeps a flattened
// tensor's [C, H, W] blocks), so its parts are counted together.
planner::Dist parts_of(const TensorMap& m, const Grid& grid, bool features) {
    auto parts = [&](int d) { return m.axis[d] == kReplica ? 1 : static_cast<int>(grid.dim(m.axis[d])); };
    if (features) return planner::Dist{parts(0), parts(1) * parts(2) * parts(3), 1, 1};
    return planner::Dist{parts(0), parts(1), parts(2), parts(3)};
}

std::string to_text(const planner::Dist& d) {
    return "n" + std::to_string(d.n) + " c" + std::to_string(d.c) + " h" + std::to_string(d.h) + " w" +
           std::to_string(d.w);
}

template <class T>
double median(std::vector<T> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    std::size_t n = v.size();
    return n % 2 ? double(v[n / 2]) : 0.5 * (double(v[n / 2 - 1]) + double(v[n / 2]));
}
}  // namespace

template <class T>
struct NetworkRunner<T>::Stage {
    LayerKind kind = LayerKind::input;
    int index = 0;
    std::string name;
    const Grid* grid = nullptr;
    TensorMap in, out;
    std::unique_ptr<DistConv2d<T>> conv;
    std::unique_ptr<DistLinear<T>> linear;
    std::unique_ptr<DistPool<T>> pool;
    std::optional<Repartition> to_in, back;  // producer's blocks -> this layer's, and the gradient back
    Tensor<T> saved;                         // relu output
    std::vector<T> sync_buffer;
    MPI_Request sync_request = MPI_REQUEST_NULL;
    Shard<T>* shard() { return conv ? &conv->shard : linear ? &linear->shard : nullptr; }
};

template <class T>
NetworkRunner<T>::NetworkRunner(const networks::Network& network, const std::vector<Layout>& layer_layouts, Index batch,
                                MPI_Comm comm, bool overlap_sync)
    : network_(network), comm_(comm), overlap_sync_(overlap_sync) {
    if (std::string why = unsupported_reason(network); !why.empty()) throw std::invalid_argument(why);
    const int p = comm_size(comm);
    const auto& layers = network.layers;
    std::vector<std::array<Index, 3>> views(layers.size());
    views[0] = view_of(network, 0, views);
    TensorMap previous_out;
    std::vector<planner::Dist> planned_out(layers.size());  // the plan's output dist of every layer
    for (std::size_t i = 1; i < layers.size(); ++i) {
        const Layer& l = layers[i];
        views[i] = view_of(network, static_cast<int>(i), views);
        auto st = std::make_unique<Stage>();
        st->kind = l.kind;
        st->index = static_cast<int>(i);
        st->name = l.name;
        Layout lay = layer_layouts[i];
        if (p % lay.procs() != 0)
            throw std::invalid_argument("layer " + l.name + ": layout " + planner::to_string(lay) +
                                        " does not divide " + std::to_string(p) + " ranks");
        auto& grid = grids_[lay];
        if (!grid) grid = std::make_unique<Grid>(comm, GridShape{lay.n, lay.co, lay.ci, lay.h, lay.w});
        st->grid = grid.get();
        const auto in_view = views[l.inputs[0]];
        const std::array<Index, 4> in_shape{batch, in_view[0], in_view[1], in_view[2]};
        const bool first = l.inputs[0] == 0;
        const auto& a = l.attrs;
        switch (l.kind) {
            case LayerKind::conv2d: {
                ConvSpec s;
                s.batch = batch;
                s.in_channels = in_view[0];
                s.height = in_view[1];
                s.width = in_view[2];
                s.out_channels = a.out_channels;
                s.kh = a.kernel_h, s.kw = a.kernel_w, s.sh = a.stride_h, s.sw = a.stride_w;
                s.ph = a.padding_h, s.pw = a.padding_w, s.dh = a.dilation_h, s.dw = a.dilation_w;
                s.bias = a.bias;
                s.input_grad = !first;
                st->conv = std::make_unique<DistConv2d<T>>(*grid, s, l.name);
                st->in = st->conv->in_map();
                st->out = st->conv->out_map();
                break;
            }
            case LayerKind::linear: {
                LinearSpec s;
                s.batch = batch;
                s.in_channels = in_view[0];
                s.height = in_view[1];
                s.width = in_view[2];
                s.out_features = a.out_features;
                s.bias = a.bias;
                s.input_grad = !first;
                st->linear = std::make_unique<DistLinear<T>>(*grid, s, l.name);
                st->in = st->linear->in_map();
                st->out = st->linear->out_map();
                break;
            }
            case LayerKind::maxpool2d:
            case LayerKind::avgpool2d: {
                PoolSpec s;
                s.max = l.kind == LayerKind::maxpool2d;
                s.batch = batch;
                s.channels = in_view[0];
                s.height = in_view[1];
                s.width = in_view[2];
                s.kh = a.kernel_h, s.kw = a.kernel_w, s.sh = a.stride_h, s.sw = a.stride_w;
                const std::array<Index, 4> out_shape{batch, s.channels, s.out_height(), s.out_width()};
                TensorMap m = first ? TensorMap{{kN, kReplica, kReplica, kReplica}, in_shape} : previous_out;
                m = fit(m, *grid, in_shape, &out_shape);
                st->pool = std::make_unique<DistPool<T>>(*grid, s, m, l.name);
                st->in = st->pool->in_map();
                st->out = st->pool->out_map();
                break;
            }
            default: {  // relu, flatten, dropout: elementwise on whatever arrives
                TensorMap m = first ? TensorMap{{kN, kReplica, kReplica, kReplica}, in_shape} : previous_out;
                st->in = fit(m, *grid, in_shape, nullptr);
                st->out = st->in;
                break;
            }
        }
        if (first) {
            // The data loader delivers the input block each rank asks for.
            input_ = Tensor<T>(st->in.box(*grid, grid->rank()));
            for (Index b = input_.box.lo[0]; b < input_.box.hi[0]; ++b)
                for (Index c = input_.box.lo[1]; c < input_.box.hi[1]; ++c)
                    for (Index h = input_.box.lo[2]; h < input_.box.hi[2]; ++h)
                        for (Index w = input_.box.lo[3]; w < input_.box.hi[3]; ++w)
                            input_.at(b, c, h, w) = static_cast<T>(input_value(b, c, h, w));
        } else {
            const Grid& pg = *stages_.back()->grid;
            std::vector<Box> have = previous_out.boxes(pg), want = st->in.boxes(*grid);
            if (have != want) {
                st->to_in.emplace(have, want, comm);
                st->back.emplace(want, have, comm);
            }
        }
        if (Shard<T>* sh = st->shard()) {
            const Index fan_in = sh->cols;
            const double scale = std::sqrt(3.0 / double(fan_in));  // unit-variance outputs for unit inputs
            sh->init([&](Index r, Index c) { return scale * hashed_uniform(1, i, r, c); },
                     [&](Index r) { return 0.1 * hashed_uniform(2, i, r, 0); });
            sh->zero_grad();
        }
        // The runner measures exactly the communication the plan predicts only if it reads and
        // writes every tensor as the plan's distribution rules say (planner/layout.hpp).
        const planner::Dist first_out = first ? planner::loader_dist(lay) : planned_out[l.inputs[0]];
        const planner::LayerDists planned = planner::layer_dists(network, static_cast<int>(i), lay, first_out);
        planned_out[i] = planned.out;
        const bool features_in = layers[l.inputs[0]].output_shape.size() != 3;
        const bool features_out = l.output_shape.size() != 3;
        const planner::Dist have_in = parts_of(st->in, *grid, features_in);
        const planner::Dist have_out = parts_of(st->out, *grid, features_out);
        if (!(have_in == planned.in) || !(have_out == planned.out))
            throw std::logic_error("layer " + l.name + ": the runner reads " + to_text(have_in) + " and writes " +
                                   to_text(have_out) + ", the plan's rules say " + to_text(planned.in) + " and " +
                                   to_text(planned.out));
        previous_out = st->out;
        stages_.push_back(std::move(st));
    }
    // The loss reads the whole batch of logits on every rank; its gradient is sliced back locally.
    const Stage& last = *stages_.back();
    classes_ = last.out.shape[1];
    Box all{{0, 0, 0, 0}, {batch, classes_, 1, 1}};
    std::vector<Box> out_boxes = last.out.boxes(*last.grid), everywhere(p, all);
    gather_logits_ = Repartition(out_boxes, everywhere, comm);
    scatter_logits_ = Repartition(everywhere, out_boxes, comm);
    labels_.resize(static_cast<std::size_t>(batch));
    for (Index b = 0; b < batch; ++b)
        labels_[b] = label_of(b, classes_);
}

template <class T>
NetworkRunner<T>::~NetworkRunner() {
    for (auto& st : stages_)
        if (st->sync_request != MPI_REQUEST_NULL) MPI_Request_free(&st->sync_request);
}

template <class T>
double NetworkRunner<T>::step(OpTimer& timer) {
    for (auto& st : stages_)
        if (Shard<T>* sh = st->shard()) sh->zero_grad();
    Tensor<T> x = input_;
    for (auto& st : stages_) {
        if (st->to_in)
            x = timer.time(Op::redistribution, st->name + " redistribution", [&] { return st->to_in->forward(x); });
        if (st->conv)
            x = st->conv->forward(x, timer);
        else if (st->linear)
            x = st->linear->forward(x, timer);
        else if (st->pool)
            x = st->pool->forward(x, timer);
        else if (st->kind == LayerKind::activation) {
            timer.time(Op::fwd_compute, st->name + " relu", [&] {
                for (T& v : x.data) v = std::max(v, T{0});
            });
            st->saved = x;
        }
    }
    output_ = x;
    double loss = 0;
    Tensor<T> dy = timer.time(Op::loss, "loss", [&] {
        Tensor<T> logits = gather_logits_.forward(output_);
        Tensor<T> dlogits(logits.box);
        loss = softmax_cross_entropy(logits.data.data(), labels_, classes_, dlogits.data.data());
        return scatter_logits_.forward(dlogits);
    });
    for (auto it = stages_.rbegin(); it != stages_.rend(); ++it) {
        Stage& st = **it;
        Tensor<T> dx;
        if (st.conv)
            dx = st.conv->backward(dy, timer);
        else if (st.linear)
            dx = st.linear->backward(dy, timer);
        else if (st.pool)
            dx = st.pool->backward(dy, timer);
        else if (st.kind == LayerKind::activation) {
            timer.time(Op::bwd_compute, st.name + " relu backward", [&] {
                for (std::size_t k = 0; k < dy.data.size(); ++k)
                    if (!(st.saved.data[k] > T{0})) dy.data[k] = T{0};
            });
            dx = std::move(dy);
        } else {
            dx = std::move(dy);
        }
        // Layer i's gradient all-reduce starts as soon as its backward is done (the model's overlap).
        if (Shard<T>* sh = st.shard()) {
            MPI_Comm group = st.conv ? st.conv->sync_group() : st.linear->sync_group();
            if (comm_size(group) > 1) {
                st.sync_buffer.assign(sh->dweight.begin(), sh->dweight.end());
                st.sync_buffer.insert(st.sync_buffer.end(), sh->dbias.begin(), sh->dbias.end());
                timer.time(Op::sync, st.name + " gradient all-reduce", [&] {
                    if (overlap_sync_)
                        MPI_Iallreduce(MPI_IN_PLACE, st.sync_buffer.data(), static_cast<int>(st.sync_buffer.size()),
                                       mpi_type<T>(), MPI_SUM, group, &st.sync_request);
                    else
                        MPI_Allreduce(MPI_IN_PLACE, st.sync_buffer.data(), static_cast<int>(st.sync_buffer.size()),
                                      mpi_type<T>(), MPI_SUM, group);
                });
            }
        }
        // Poke the outstanding gradient all-reduces: Open MPI progresses non-blocking collectives
        // only inside MPI calls, and the overlap the model assumes needs that progress.
        if (overlap_sync_)
            for (auto& other : stages_)
                if (other->sync_request != MPI_REQUEST_NULL) {
                    int done = 0;
                    MPI_Test(&other->sync_request, &done, MPI_STATUS_IGNORE);
                }
        if (st.index == 1) break;  // the network's input needs no gradient
        dy = st.back ? timer.time(Op::redistribution, st.name + " redistribution back",
                                  [&] { return st.back->forward(dx); })
                     : std::move(dx);
    }
    timer.time(Op::sync, "gradient all-reduce wait", [&] {
        for (auto& st : stages_) {
            if (st->sync_buffer.empty()) continue;
            if (st->sync_request != MPI_REQUEST_NULL) MPI_Wait(&st->sync_request, MPI_STATUS_IGNORE);
            if (!st->sync_buffer.empty()) {
                Shard<T>* sh = st->shard();
                std::copy_n(st->sync_buffer.begin(), sh->dweight.size(), sh->dweight.begin());
                std::copy(st->sync_buffer.begin() + static_cast<std::ptrdiff_t>(sh->dweight.size()),
                          st->sync_buffer.end(), sh->dbias.begin());
                st->sync_buffer.clear();
            }
        }
    });
    return loss;
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
        for (Index i = a.row_lo; i < a.row_lo + Index(a.dbias.size()); ++i)
            err = std::max(err, std::abs(a.dbias[i - a.row_lo] - r.dbias[i]));
        worst = std::max(worst, scale > 0 ? err / scale : err);
    }
    return max_over(comm, worst);
}
}  // namespace

RunResult run_plan(const networks::Network& network, const planner::ScoredPlan& scored, Index batch,
                   const RunOptions& options, MPI_Comm comm) {
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
    std::vector<double> iters;
    std::vector<std::array<double, static_cast<int>(Op::count)>> ops;
    const int total = options.warmup + options.iterations;
    for (int it = 0; it < total; ++it) {
        const bool measured = it >= options.warmup;
        timer.reset();
        timer.trace = options.trace && it == total - 1;
        if (options.on_step) options.on_step("iteration " + std::to_string(it) + " start (barrier)", true);
        MPI_Barrier(comm);
        double t0 = MPI_Wtime();
        runner.step(timer);
        runner.sgd(static_cast<float>(options.learning_rate), timer);
        double t1 = MPI_Wtime();
        if (timer.trace) result.trace_origin = t0;
        if (!measured) continue;
        double local = t1 - t0, slowest = 0;
        MPI_Allreduce(&local, &slowest, 1, MPI_DOUBLE, MPI_MAX, comm);
        iters.push_back(slowest);
        std::array<double, static_cast<int>(Op::count)> worst{};
        MPI_Allreduce(timer.seconds.data(), worst.data(), static_cast<int>(Op::count), MPI_DOUBLE, MPI_MAX, comm);
        ops.push_back(worst);
    }
    result.iteration_samples = iters;
    result.iteration_s = median(iters);
    result.iteration_best_s = iters.empty() ? 0 : *std::min_element(iters.begin(), iters.end());
    for (int o = 0; o < static_cast<int>(Op::count); ++o) {
        std::vector<double> v;
        for (const auto& a : ops) v.push_back(a[o]);
        result.op_s[o] = median(v);
        result.op_best_s[o] = v.empty() ? 0 : *std::min_element(v.begin(), v.end());
    }
    if (options.trace) {
        // Gather every rank's events of the last iteration on rank 0, times relative to rank 0's start.
        double origin = result.trace_origin;
        MPI_Bcast(&origin, 1, MPI_DOUBLE, 0, comm);
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
