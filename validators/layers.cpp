#include "validators/layers.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace dnnplan::validators {

const char* to_string(Op op) {
    switch (op) {
        case Op::fwd_compute:
            return "fwd_compute";
        case Op::bwd_compute:
            return "bwd_compute";
        case Op::all_reduce:
            return "all_reduce";
        case Op::halo:
            return "halo";
        case Op::redistribution:
            return "redistribution";
        case Op::sync:
            return "sync";
        case Op::loss:
            return "loss";
        case Op::optimizer:
            return "optimizer";
        case Op::count:
            break;
    }
    return "?";
}

void settle_waits(OpTimer& timer) {
    for (const OpTimer::BlockingCall& c : timer.blocking) {
        double shortest = c.seconds;
        MPI_Allreduce(&c.seconds, &shortest, 1, MPI_DOUBLE, MPI_MIN, c.comm);
        const double wait = std::max(0.0, c.seconds - shortest);
        timer.seconds[static_cast<int>(c.op)] -= wait;
        timer.waited[static_cast<int>(c.op)] += wait;
    }
    timer.blocking.clear();
}

// ---- Grid ----

Grid::Grid(MPI_Comm comm, const GridShape& shape) : shape_(shape) {
    MPI_Comm_size(comm, &size_);
    if (shape.procs() <= 0 || size_ % shape.procs() != 0)
        throw std::invalid_argument("grid of " + std::to_string(shape.procs()) + " processes does not divide " +
                                    std::to_string(size_) + " ranks");
    dims_ = {size_ / shape.procs(), shape.n, shape.co, shape.ci, shape.h, shape.w};
    int periods[kAxes] = {0, 0, 0, 0, 0, 0};
    // No reordering: rank r keeps its place, so every grid numbers ranks as the planner does.
    MPI_Cart_create(comm, kAxes, dims_.data(), periods, 0, &cart_);
    MPI_Comm_rank(cart_, &rank_);
    // Sub-communicator creation is collective: make the layers' groups here, in the same order everywhere.
    for (unsigned mask : {bit(kCi), bit(kCo), bit(kH), bit(kW), bit(kN) | bit(kH) | bit(kW)}) group(mask);
}

Grid::~Grid() {
    for (auto& [mask, c] : groups_) MPI_Comm_free(&c);
    if (cart_ != MPI_COMM_NULL) MPI_Comm_free(&cart_);
}

std::array<int, kAxes> Grid::coords(int rank) const {
    std::array<int, kAxes> c{};
    for (int a = kAxes - 1; a >= 0; --a) {
        c[a] = rank % dims_[a];
        rank /= dims_[a];
    }
    return c;
}

MPI_Comm Grid::group(unsigned mask) const {
    auto it = groups_.find(mask);
    if (it != groups_.end()) return it->second;
    int remain[kAxes];
    for (int a = 0; a < kAxes; ++a) remain[a] = (mask >> a) & 1u;
    MPI_Comm sub = MPI_COMM_NULL;
    MPI_Cart_sub(cart_, remain, &sub);
    groups_[mask] = sub;
    return sub;
}

Box TensorMap::box(const Grid& grid, int rank) const {
    auto c = grid.coords(rank);
    Box b;
    for (int d = 0; d < kDims; ++d) {
        Index parts = axis[d] == kReplica ? 1 : grid.dim(axis[d]);
        Index k = axis[d] == kReplica ? 0 : c[axis[d]];
        b.lo[d] = block_begin(shape[d], parts, k);
        b.hi[d] = block_begin(shape[d], parts, k + 1);
    }
    return b;
}

std::vector<Box> TensorMap::boxes(const Grid& grid) const {
    std::vector<Box> out;
    for (int r = 0; r < grid.size(); ++r) out.push_back(box(grid, r));
    return out;
}

HaloLine window_halo(int dim, int parts, Index n_in, Index n_out, Index kernel, Index stride, Index pad, Index dil) {
    HaloLine line;
    line.dim = dim;
    for (int j = 0; j < parts; ++j) {
        line.own_lo.push_back(block_begin(n_in, parts, j));
        line.own_hi.push_back(block_begin(n_in, parts, j + 1));
        Index o0 = block_begin(n_out, parts, j), o1 = block_begin(n_out, parts, j + 1);
        line.need_lo.push_back(o0 * stride - pad);
        line.need_hi.push_back(o1 > o0 ? (o1 - 1) * stride - pad + (kernel - 1) * dil + 1 : o0 * stride - pad);
    }
    return line;
}

template <class T>
void Shard<T>::init(const std::function<double(Index, Index)>& w, const std::function<double(Index)>& b) {
    const Index nr = row_hi - row_lo, nc = col_hi - col_lo;
    weight.assign(static_cast<std::size_t>(nr * nc), T{0});
    for (Index r = 0; r < nr; ++r)
        for (Index c = 0; c < nc; ++c) weight[r * nc + c] = static_cast<T>(w(row_lo + r, col_lo + c));
    bias.assign(has_bias ? static_cast<std::size_t>(bias_size > 0 ? bias_size : nr) : 0, T{0});
    const Index b0 = bias_size > 0 ? 0 : row_lo;
    for (std::size_t r = 0; r < bias.size(); ++r) bias[r] = static_cast<T>(b(b0 + Index(r)));
    grad.assign(weight.size() + bias.size(), T{0});
    bind(weight.size());
}

template <class T>
void Shard<T>::zero_grad() {
    std::fill(grad.begin(), grad.end(), T{0});
}

namespace {
// A line communicator along `axis`, or MPI_COMM_SELF when the tensor dimension is not split.
MPI_Comm line_comm(const Grid& grid, int axis) {
    return axis == kReplica ? MPI_COMM_SELF : grid.group(Grid::bit(static_cast<Axis>(axis)));
}
int parts(const Grid& grid, int axis) { return axis == kReplica ? 1 : grid.dim(axis); }

template <class T>
void add_bias(Tensor<T>& y, const Shard<T>& shard) {
    if (shard.bias.empty()) return;
    const Index inner = y.extent(2) * y.extent(3);
    for (Index b = 0; b < y.extent(0); ++b)
        for (Index c = 0; c < y.extent(1); ++c) {
            T* p = y.data.data() + (b * y.extent(1) + c) * inner;
            for (Index i = 0; i < inner; ++i) p[i] += shard.bias[c];
        }
}

template <class T>
void allreduce_grads(Shard<T>& shard, MPI_Comm comm) {
    if (comm_size(comm) == 1) return;
    all_sum_reduce(shard.grad, comm);
}
}  // namespace

// ---- WeightedLayer ----

template <class T>
WeightedLayer<T>::WeightedLayer(const Grid& grid, std::string name, Index outputs, Index in_channels, Index area,
                                bool bias)
    : grid_(grid), name_(std::move(name)) {
    auto c = grid.coords(grid.rank());
    shard.rows = outputs;
    shard.cols = in_channels * area;
    shard.row_lo = block_begin(outputs, grid.dim(kCo), c[kCo]);
    shard.row_hi = block_begin(outputs, grid.dim(kCo), c[kCo] + 1);
    shard.col_lo = block_begin(in_channels, grid.dim(kCi), c[kCi]) * area;
    shard.col_hi = block_begin(in_channels, grid.dim(kCi), c[kCi] + 1) * area;
    shard.has_bias = bias;
}
template <class T>
void WeightedLayer<T>::reduce_partial_sums(Tensor<T>& y, OpTimer& timer) {
    if (grid_.dim(kCi) > 1)
        timer.time_blocking(Op::all_reduce, name_ + " partial sums", grid_.group(Grid::bit(kCi)),
                            [&] { all_sum_reduce(y.data, grid_.group(Grid::bit(kCi))); });
}
template <class T>
void WeightedLayer<T>::reduce_input_gradient(Tensor<T>& dx, OpTimer& timer) {
    if (grid_.dim(kCo) > 1)
        timer.time_blocking(Op::all_reduce, name_ + " input gradient", grid_.group(Grid::bit(kCo)),
                            [&] { all_sum_reduce(dx.data, grid_.group(Grid::bit(kCo))); });
}
template <class T>
MPI_Comm WeightedLayer<T>::sync_group() const {
    return grid_.group(Grid::bit(kN) | Grid::bit(kH) | Grid::bit(kW));
}
template <class T>
void WeightedLayer<T>::sync(OpTimer& timer) {
    timer.time(Op::sync, name_ + " gradient all-reduce", [&] { allreduce_grads(shard, sync_group()); });
}

// ---- DistConv2d ----

namespace {
// Every sample and channel, the tensor's rows and columns (padding cells outside it).
Box image_box(Index height, Index width) {
    const Index far = Index{1} << 40;
    Box b;
    b.lo = {-far, -far, 0, 0};
    b.hi = {far, far, height, width};
    return b;
}
}  // namespace

template <class T>
DistConv2d<T>::DistConv2d(const Grid& grid, const ConvSpec& spec, std::string name)
    : WeightedLayer<T>(grid, std::move(name), spec.out_channels, spec.in_channels, spec.kh * spec.kw, spec.bias),
      spec_(spec) {
    auto c = grid.coords(grid.rank());
    line_h_ = window_halo(2, grid.dim(kH), spec.height, spec.out_height(), spec.kh, spec.sh, spec.ph, spec.dh);
    line_w_ = window_halo(3, grid.dim(kW), spec.width, spec.out_width(), spec.kw, spec.sw, spec.pw, spec.dw);
    in_box_ = in_map().box(grid, grid.rank());
    halo_h_box_ = detail::with_range(in_box_, 2, line_h_.need_lo[c[kH]], line_h_.need_hi[c[kH]]);
    image_ = image_box(spec.height, spec.width);
}

template <class T>
TensorMap DistConv2d<T>::in_map() const {
    return TensorMap{{kN, kCi, kH, kW}, {spec_.batch, spec_.in_channels, spec_.height, spec_.width}};
}
template <class T>
TensorMap DistConv2d<T>::out_map() const {
    return TensorMap{{kN, kCo, kH, kW}, {spec_.batch, spec_.out_channels, spec_.out_height(), spec_.out_width()}};
}

namespace {
// A halo exchange timed as the cost model splits it: packing, posting, waiting and unpacking are
// halo time (`hop`: Op::halo when the layer's image is split, else the layer's compute, as
// everything on an unsplit image is); copying this rank's own cells into the extended block is
// compute (`local`), as it is when a sequential layer pads its input, where the compute
// calibration measures it. Before, the copy counted as halo under a split only: smallcnn's domain
// plan showed ~2.9 ms of "halo" for ~0.2 ms of messages, and less forward compute than predicted.
// The completion (the wait for the neighbours' messages) is timed as a blocking call over the line:
// a rank that got there before its neighbour posted waits for the neighbour's preceding work, and
// settle_waits() moves that wait out of the halo time, as for the collectives.
template <class T>
Tensor<T> timed_halo_forward(OpTimer& timer, Op hop, const std::string& name, const Tensor<T>& x,
                             const HaloLine& line, MPI_Comm comm, const Box* within = nullptr) {
    HaloInFlight<T> f = timer.time(hop, name + " halo", [&] { return halo_forward_post(x, line, comm, within); });
    timer.time(Op::fwd_compute, name + " halo local copy", [&] { halo_local(x, f); });
    return timer.time_blocking(hop, name + " halo", comm, [&] { return halo_complete(f); });
}
template <class T>
Tensor<T> timed_halo_adjoint(OpTimer& timer, Op hop, const std::string& name, const Tensor<T>& dext,
                             const Box& owned_box, const HaloLine& line, MPI_Comm comm, const Box* within = nullptr) {
    HaloInFlight<T> f =
        timer.time(hop, name + " halo adjoint", [&] { return halo_adjoint_post(dext, owned_box, line, comm, within); });
    timer.time(Op::bwd_compute, name + " halo adjoint local copy", [&] { halo_local(dext, f); });
    return timer.time_blocking(hop, name + " halo adjoint", comm, [&] { return halo_complete(f); });
}
}  // namespace

template <class T>
Tensor<T> DistConv2d<T>::forward(const Tensor<T>& x, OpTimer& timer) {
    // Zero padding is part of the halo-extended block, so an unsplit dimension still "exchanges"
    // (locally, on MPI_COMM_SELF); only a real split counts as halo time.
    Op hop = grid_.dim(kH) * grid_.dim(kW) > 1 ? Op::halo : Op::fwd_compute;
    Tensor<T> eh = timed_halo_forward(timer, hop, name_, x, line_h_, grid_.group(Grid::bit(kH)));
    ext_ = timed_halo_forward(timer, hop, name_, eh, line_w_, grid_.group(Grid::bit(kW)), &image_);
    Tensor<T> y(out_map().box(grid_, grid_.rank()));
    const ConvGeometry g{spec_.kh, spec_.kw, spec_.sh, spec_.sw, spec_.dh, spec_.dw};
    timer.time(Op::fwd_compute, name_ + " forward", [&] {
        conv2d_forward(ext_, shard.weight, std::vector<T>{}, shard.row_hi - shard.row_lo, g, y, &cols_);
    });
    this->reduce_partial_sums(y, timer);
    timer.time(Op::fwd_compute, name_ + " bias", [&] { add_bias(y, shard); });
    return y;
}

template <class T>
Tensor<T> DistConv2d<T>::backward(const Tensor<T>& dy, OpTimer& timer) {
    Tensor<T> dext(spec_.input_grad ? ext_.box : Box{});
    const ConvGeometry g{spec_.kh, spec_.kw, spec_.sh, spec_.sw, spec_.dh, spec_.dw};
    timer.time(Op::bwd_compute, name_ + " backward", [&] {
        conv2d_backward(ext_, shard.weight, shard.row_hi - shard.row_lo, g, dy, spec_.input_grad ? &dext : nullptr,
                        shard.dweight.data(), shard.has_bias ? shard.dbias.data() : nullptr, &cols_);
    });
    if (!spec_.input_grad) return Tensor<T>{};
    Op hop = grid_.dim(kH) * grid_.dim(kW) > 1 ? Op::halo : Op::bwd_compute;
    Tensor<T> dh = timed_halo_adjoint(timer, hop, name_, dext, halo_h_box_, line_w_, grid_.group(Grid::bit(kW)), &image_);
    Tensor<T> dx = timed_halo_adjoint(timer, hop, name_, dh, in_box_, line_h_, grid_.group(Grid::bit(kH)));
    this->reduce_input_gradient(dx, timer);
    return dx;
}

// ---- DistLinear ----

template <class T>
DistLinear<T>::DistLinear(const Grid& grid, const LinearSpec& spec, std::string name)
    : WeightedLayer<T>(grid, std::move(name), spec.out_features, spec.in_channels, spec.height * spec.width, spec.bias),
      spec_(spec) {}

template <class T>
TensorMap DistLinear<T>::in_map() const {
    if (spec_.tokens > 0)
        return TensorMap{{kN, kReplica, kCi, kReplica}, {spec_.batch, spec_.tokens, spec_.in_channels, 1}};
    return TensorMap{{kN, kCi, kReplica, kReplica}, {spec_.batch, spec_.in_channels, spec_.height, spec_.width}};
}
template <class T>
TensorMap DistLinear<T>::out_map() const {
    if (spec_.tokens > 0)
        return TensorMap{{kN, kReplica, kCo, kReplica}, {spec_.batch, spec_.tokens, spec_.out_features, 1}};
    return TensorMap{{kN, kCo, kReplica, kReplica}, {spec_.batch, spec_.out_features, 1, 1}};
}

template <class T>
Tensor<T> DistLinear<T>::forward(const Tensor<T>& x, OpTimer& timer) {
    x_ = x;
    Tensor<T> y(out_map().box(grid_, grid_.rank()));
    const Index b = x.extent(0) * (spec_.tokens > 0 ? x.extent(1) : 1), fi = shard.col_hi - shard.col_lo,
                fo = shard.row_hi - shard.row_lo;
    timer.time(Op::fwd_compute, name_ + " forward",
               [&] { linear_forward(x_.data.data(), b, fi, shard.weight, std::vector<T>{}, fo, y.data.data()); });
    this->reduce_partial_sums(y, timer);
    timer.time(Op::fwd_compute, name_ + " bias", [&] {
        if (spec_.tokens == 0) return add_bias(y, shard);
        for (Index r = 0; r < b && !shard.bias.empty(); ++r)
            for (Index o = 0; o < fo; ++o) y.data[r * fo + o] += shard.bias[o];
    });
    return y;
}

template <class T>
Tensor<T> DistLinear<T>::backward(const Tensor<T>& dy, OpTimer& timer) {
    Tensor<T> dx(x_.box);
    const Index b = x_.extent(0) * (spec_.tokens > 0 ? x_.extent(1) : 1), fi = shard.col_hi - shard.col_lo,
                fo = shard.row_hi - shard.row_lo;
    timer.time(Op::bwd_compute, name_ + " backward", [&] {
        linear_backward(x_.data.data(), b, fi, shard.weight, fo, dy.data.data(), dx.data.data(), shard.dweight.data(),
                        shard.has_bias ? shard.dbias.data() : nullptr);
    });
    if (!spec_.input_grad) return Tensor<T>{};
    this->reduce_input_gradient(dx, timer);
    return dx;
}


// ---- DistPool ----

template <class T>
DistPool<T>::DistPool(const Grid& grid, const PoolSpec& spec, const TensorMap& in, std::string name)
    : grid_(grid), spec_(spec), in_(in), name_(std::move(name)) {
    in_.shape = {spec.batch, spec.channels, spec.height, spec.width};
    auto c = grid.coords(grid.rank());
    line_h_ = window_halo(2, parts(grid, in_.axis[2]), spec.height, spec.out_height(), spec.kh, spec.sh, spec.ph, 1);
    line_w_ = window_halo(3, parts(grid, in_.axis[3]), spec.width, spec.out_width(), spec.kw, spec.sw, spec.pw, 1);
    in_box_ = in_.box(grid, grid.rank());
    int kh_coord = in_.axis[2] == kReplica ? 0 : c[in_.axis[2]];
    halo_h_box_ = detail::with_range(in_box_, 2, line_h_.need_lo[kh_coord], line_h_.need_hi[kh_coord]);
    image_ = image_box(spec.height, spec.width);
}

// Max pooling pads with -inf: the halo exchange fills cells outside the tensor with zeros.
template <class T>
void DistPool<T>::mask_padding(Tensor<T>& ext) const {
    const Box& b = ext.box;
    if (b.lo[2] >= 0 && b.hi[2] <= spec_.height && b.lo[3] >= 0 && b.hi[3] <= spec_.width) return;
    for (Index i = b.lo[0]; i < b.hi[0]; ++i)
        for (Index j = b.lo[1]; j < b.hi[1]; ++j)
            for (Index h = b.lo[2]; h < b.hi[2]; ++h)
                for (Index w = b.lo[3]; w < b.hi[3]; ++w)
                    if (h < 0 || h >= spec_.height || w < 0 || w >= spec_.width)
                        ext.at(i, j, h, w) = -std::numeric_limits<T>::infinity();
}

template <class T>
TensorMap DistPool<T>::out_map() const {
    TensorMap m = in_;
    m.shape = {spec_.batch, spec_.channels, spec_.out_height(), spec_.out_width()};
    return m;
}

template <class T>
Tensor<T> DistPool<T>::forward(const Tensor<T>& x, OpTimer& timer) {
    Op hop = parts(grid_, in_.axis[2]) * parts(grid_, in_.axis[3]) > 1 ? Op::halo : Op::fwd_compute;
    Tensor<T> eh = timed_halo_forward(timer, hop, name_, x, line_h_, line_comm(grid_, in_.axis[2]));
    ext_ = timed_halo_forward(timer, hop, name_, eh, line_w_, line_comm(grid_, in_.axis[3]), &image_);
    Tensor<T> y(out_map().box(grid_, grid_.rank()));
    const ConvGeometry g{spec_.kh, spec_.kw, spec_.sh, spec_.sw, 1, 1};
    timer.time(Op::fwd_compute, name_ + " forward", [&] {
        if (spec_.max) mask_padding(ext_);
        pool_forward(spec_.max, ext_, g, y);
    });
    return y;
}

template <class T>
Tensor<T> DistPool<T>::backward(const Tensor<T>& dy, OpTimer& timer) {
    Tensor<T> dext(ext_.box);
    const ConvGeometry g{spec_.kh, spec_.kw, spec_.sh, spec_.sw, 1, 1};
    timer.time(Op::bwd_compute, name_ + " backward", [&] { pool_backward(spec_.max, ext_, g, dy, dext); });
    Op hop = parts(grid_, in_.axis[2]) * parts(grid_, in_.axis[3]) > 1 ? Op::halo : Op::bwd_compute;
    Tensor<T> dh = timed_halo_adjoint(timer, hop, name_, dext, halo_h_box_, line_w_, line_comm(grid_, in_.axis[3]), &image_);
    return timed_halo_adjoint(timer, hop, name_, dh, in_box_, line_h_, line_comm(grid_, in_.axis[2]));
}

// ---- DistAffine ----

template <class T>
DistAffine<T>::DistAffine(MPI_Comm comm, int pr, int pc, Index batch, Index in, Index out)
    : pr_(pr), pc_(pc), batch_(batch), in_(in), out_(out) {
    int r = comm_rank(comm);
    if (pr * pc != comm_size(comm)) throw std::invalid_argument("affine partition does not match the ranks");
    i_ = r / pc;
    j_ = r % pc;
    MPI_Comm_split(comm, i_, j_, &row_);
    MPI_Comm_split(comm, j_, i_, &col_);
    shard.rows = out;
    shard.cols = in;
    shard.row_lo = block_begin(out, pr, i_);
    shard.row_hi = block_begin(out, pr, i_ + 1);
    shard.col_lo = block_begin(in, pc, j_);
    shard.col_hi = block_begin(in, pc, j_ + 1);
    shard.has_bias = j_ == 0;  // the bias lives on one column only, so the row sum adds it once
}

template <class T>
DistAffine<T>::~DistAffine() {
    MPI_Comm_free(&row_);
    MPI_Comm_free(&col_);
}

template <class T>
Box DistAffine<T>::x_box() const {
    if (i_ != 0) return Box{};
    return Box{{0, shard.col_lo, 0, 0}, {batch_, shard.col_hi, 1, 1}};
}
template <class T>
Box DistAffine<T>::y_box() const {
    if (j_ != 0) return Box{};
    return Box{{0, shard.row_lo, 0, 0}, {batch_, shard.row_hi, 1, 1}};
}

template <class T>
Tensor<T> DistAffine<T>::forward(const Tensor<T>& x) {
    const Index fi = shard.col_hi - shard.col_lo, fo = shard.row_hi - shard.row_lo;
    x_local_ = i_ == 0 ? x.data : std::vector<T>(static_cast<std::size_t>(batch_ * fi));
    broadcast(x_local_, 0, col_);
    std::vector<T> y(static_cast<std::size_t>(batch_ * fo));
    linear_forward(x_local_.data(), batch_, fi, shard.weight, shard.bias, fo, y.data());
    sum_reduce(y, 0, row_);
    Tensor<T> out(y_box());
    if (j_ == 0) out.data = std::move(y);
    return out;
}

template <class T>
Tensor<T> DistAffine<T>::backward(const Tensor<T>& dy) {
    const Index fi = shard.col_hi - shard.col_lo, fo = shard.row_hi - shard.row_lo;
    std::vector<T> g = j_ == 0 ? dy.data : std::vector<T>(static_cast<std::size_t>(batch_ * fo));
    sum_reduce_adjoint(g, 0, row_);
    std::vector<T> dx(static_cast<std::size_t>(batch_ * fi));
    linear_backward(x_local_.data(), batch_, fi, shard.weight, fo, g.data(), dx.data(), shard.dweight.data(),
                    shard.has_bias ? shard.dbias.data() : nullptr);
    broadcast_adjoint(dx, 0, col_);
    Tensor<T> out(x_box());
    if (i_ == 0) out.data = std::move(dx);
    return out;
}

template struct Shard<float>;
template struct Shard<double>;
template class WeightedLayer<float>;
template class WeightedLayer<double>;
template class DistConv2d<float>;
template class DistConv2d<double>;
template class DistLinear<float>;
template class DistLinear<double>;
template class DistPool<float>;
template class DistPool<double>;
template class DistAffine<float>;
template class DistAffine<double>;

}  // namespace dnnplan::validators
