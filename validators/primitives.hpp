// DistDL-style communication primitives (Hewett and Grady, "A linear algebraic approach to model
// parallelism in deep learning", 2020) as linear operators with adjoints on MPI communicators:
// broadcast, sum-reduce, all-sum-reduce, halo exchange along one tensor dimension, and
// repartition between two box partitions of the same global tensor. Every rank's local buffer is
// an independent variable; forward and adjoint satisfy <F x, y> = <x, F* y> summed over ranks
// (tests/validators/primitives_test.cpp checks it to 1e-12 in double).
#pragma once

#include <mpi.h>

#include <string>
#include <type_traits>
#include <vector>

#include "validators/tensor.hpp"

namespace dnnplan::validators {

template <class T>
MPI_Datatype mpi_type();
template <>
inline MPI_Datatype mpi_type<double>() {
    return MPI_DOUBLE;
}
template <>
inline MPI_Datatype mpi_type<float>() {
    return MPI_FLOAT;
}

inline int comm_rank(MPI_Comm comm) {
    int r = 0;
    MPI_Comm_rank(comm, &r);
    return r;
}
inline int comm_size(MPI_Comm comm) {
    int s = 1;
    MPI_Comm_size(comm, &s);
    return s;
}

// Broadcast from `root`: y_i = x_root on every rank (x on other ranks is ignored).
template <class T>
void broadcast(std::vector<T>& buf, int root, MPI_Comm comm) {
    MPI_Bcast(buf.data(), static_cast<int>(buf.size()), mpi_type<T>(), root, comm);
}

// Sum-reduce to `root`: y_root = sum_i x_i, zero elsewhere. The adjoint of broadcast.
template <class T>
void sum_reduce(std::vector<T>& buf, int root, MPI_Comm comm) {
    if (comm_rank(comm) == root)
        MPI_Reduce(MPI_IN_PLACE, buf.data(), static_cast<int>(buf.size()), mpi_type<T>(), MPI_SUM, root, comm);
    else {
        MPI_Reduce(buf.data(), nullptr, static_cast<int>(buf.size()), mpi_type<T>(), MPI_SUM, root, comm);
        std::fill(buf.begin(), buf.end(), T{0});
    }
}

// The adjoint of broadcast is sum-reduce, and of sum-reduce broadcast; except that a broadcast's
// adjoint must give zero to the ignored inputs of non-root ranks (sum_reduce does) and a
// sum-reduce's adjoint reads only the root's y (broadcast does).
template <class T>
void broadcast_adjoint(std::vector<T>& buf, int root, MPI_Comm comm) {
    sum_reduce(buf, root, comm);
}
template <class T>
void sum_reduce_adjoint(std::vector<T>& buf, int root, MPI_Comm comm) {
    broadcast(buf, root, comm);
}

// All-sum-reduce: y_i = sum_j x_j on every rank; its own adjoint.
template <class T>
void all_sum_reduce(std::vector<T>& buf, MPI_Comm comm) {
    MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(buf.size()), mpi_type<T>(), MPI_SUM, comm);
}

// Halo exchange along dimension `dim` over a line of ranks (one MPI sub-communicator): rank j owns
// global indices [own_lo[j], own_hi[j]) of that dimension and needs [need_lo[j], need_hi[j]), which
// may reach past the tensor (zero padding) and past its neighbours (any width); block sizes may be
// uneven and halos one-sided (pooling). All other dimensions are equal along the line.
struct HaloLine {
    int dim = 2;
    std::vector<Index> own_lo, own_hi, need_lo, need_hi;
};

namespace detail {
inline Box with_range(Box b, int dim, Index lo, Index hi) {
    b.lo[dim] = lo;
    b.hi[dim] = std::max(lo, hi);
    return b;
}
}  // namespace detail

// A halo exchange in three steps, so that a runner can time them apart: `post` packs the cells
// each neighbour needs and posts the sends and receives (communication); `local` allocates the
// result and copies (or adds) this rank's own cells into it, the same work a sequential layer does
// to pad its input (compute); `complete` waits for the messages and unpacks them (communication,
// including any wait for a late neighbour).
template <class T>
struct HaloInFlight {
    Box result_box;  // forward: the extended block; adjoint: the owned block
    Tensor<T> result;
    bool add = false;  // adjoint: ghost gradients are added into the owned cells
    std::vector<std::vector<T>> sendbuf, recvbuf;
    std::vector<Box> recv_region;
    std::vector<MPI_Request> requests;
};

namespace detail {
// Posts the messages of one exchange: to peer j the cells of `from` inside send_box(j), from peer
// j the cells of the result inside recv_box(j), each cut to `within` when given.
template <class T, class SendBox, class RecvBox>
HaloInFlight<T> post_halo(const Tensor<T>& from, Box result_box, bool add, MPI_Comm comm, const Box* within, int tag,
                          SendBox&& send_box, RecvBox&& recv_box) {
    const int me = comm_rank(comm), p = comm_size(comm);
    HaloInFlight<T> f;
    f.result_box = result_box;
    f.add = add;
    f.sendbuf.resize(static_cast<std::size_t>(p));
    f.recvbuf.resize(static_cast<std::size_t>(p));
    f.recv_region.resize(static_cast<std::size_t>(p));
    f.requests.reserve(static_cast<std::size_t>(2 * p));
    for (int j = 0; j < p; ++j) {
        if (j == me) continue;
        Box to_j = intersect(from.box, send_box(j));
        if (within) to_j = intersect(to_j, *within);
        if (!to_j.empty()) {
            pack(from, to_j, f.sendbuf[j]);
            f.requests.emplace_back();
            MPI_Isend(f.sendbuf[j].data(), static_cast<int>(f.sendbuf[j].size()), mpi_type<T>(), j, tag, comm,
                      &f.requests.back());
        }
        f.recv_region[j] = intersect(result_box, recv_box(j));
        if (within) f.recv_region[j] = intersect(f.recv_region[j], *within);
        if (!f.recv_region[j].empty()) {
            f.recvbuf[j].resize(static_cast<std::size_t>(f.recv_region[j].volume()));
            f.requests.emplace_back();
            MPI_Irecv(f.recvbuf[j].data(), static_cast<int>(f.recvbuf[j].size()), mpi_type<T>(), j, tag, comm,
                      &f.requests.back());
        }
    }
    return f;
}
}  // namespace detail

// Forward: the extended block (owned + ghosts, zeros outside the tensor). `within` (the tensor's
// global box, optional) keeps zero padding that an earlier exchange along another dimension added
// to `owned` out of the messages: only cells of the tensor travel.
template <class T>
HaloInFlight<T> halo_forward_post(const Tensor<T>& owned, const HaloLine& line, MPI_Comm comm,
                                  const Box* within = nullptr) {
    const int me = comm_rank(comm), d = line.dim;
    const Box ext = detail::with_range(owned.box, d, line.need_lo[me], line.need_hi[me]);
    return detail::post_halo(
        owned, ext, false, comm, within, 11,
        [&](int j) { return detail::with_range(owned.box, d, line.need_lo[j], line.need_hi[j]); },
        [&](int j) { return detail::with_range(ext, d, line.own_lo[j], line.own_hi[j]); });
}
// Adjoint: ghost gradients go back to their owners and are added into the bulk; padding drops out
// (with `within`, before it travels).
template <class T>
HaloInFlight<T> halo_adjoint_post(const Tensor<T>& ext_grad, const Box& owned_box, const HaloLine& line,
                                  MPI_Comm comm, const Box* within = nullptr) {
    const int d = line.dim;
    return detail::post_halo(
        ext_grad, owned_box, true, comm, within, 12,
        [&](int j) { return detail::with_range(ext_grad.box, d, line.own_lo[j], line.own_hi[j]); },
        [&](int j) { return detail::with_range(owned_box, d, line.need_lo[j], line.need_hi[j]); });
}
// This rank's own cells into the result (`source`: the tensor given to the post).
template <class T>
void halo_local(const Tensor<T>& source, HaloInFlight<T>& f) {
    f.result = Tensor<T>(f.result_box);
    copy_region(source, f.result, intersect(f.result_box, source.box), f.add);
}
template <class T>
Tensor<T> halo_complete(HaloInFlight<T>& f) {
    MPI_Waitall(static_cast<int>(f.requests.size()), f.requests.data(), MPI_STATUSES_IGNORE);
    for (std::size_t j = 0; j < f.recv_region.size(); ++j)
        if (!f.recvbuf[j].empty()) unpack(f.result, f.recv_region[j], f.recvbuf[j].data(), f.add);
    return std::move(f.result);
}

template <class T>
Tensor<T> halo_forward(const Tensor<T>& owned, const HaloLine& line, MPI_Comm comm, const Box* within = nullptr) {
    HaloInFlight<T> f = halo_forward_post(owned, line, comm, within);
    halo_local(owned, f);
    return halo_complete(f);
}
template <class T>
Tensor<T> halo_adjoint(const Tensor<T>& ext_grad, const Box& owned_box, const HaloLine& line, MPI_Comm comm,
                       const Box* within = nullptr) {
    HaloInFlight<T> f = halo_adjoint_post(ext_grad, owned_box, line, comm, within);
    halo_local(ext_grad, f);
    return halo_complete(f);
}

// Repartition: every rank of `comm` holds box src[r] of a global tensor and gets box dst[r].
// Ranks with equal source boxes are replicas; each piece of a destination box is read from one
// holder (the destination rank itself when it holds it, so slicing is local, else the holders in
// turn). Scatter (src: all on one rank) and gather (dst: all on one rank) are special cases; with
// several destination replicas it also broadcasts. The adjoint sends each piece back to the
// holder it was read from and adds (copies read twice sum; unread replicas get zero).
class Repartition {
public:
    Repartition() = default;
    Repartition(std::vector<Box> src, std::vector<Box> dst, MPI_Comm comm);

    const Box& src_box() const { return src_[me_]; }
    const Box& dst_box() const { return dst_[me_]; }
    bool is_local() const { return local_only_; }  // no rank sends anything
    MPI_Comm comm() const { return comm_; }

    template <class T>
    Tensor<T> forward(const Tensor<T>& x) const;
    template <class T>
    Tensor<T> adjoint(const Tensor<T>& y) const;

private:
    struct Piece {
        int peer = 0;
        Box region;
    };
    template <class T>
    void exchange(const Tensor<T>& from, Tensor<T>& to, const std::vector<Piece>& out, const std::vector<Piece>& in,
                  bool add) const;

    // The packed pieces, kept from call to call as a real system's repartition keeps its buffers
    // (DistDL allocates them once per layer; PyTorch's caching allocator reuses them): fresh
    // zero-filled vectors per call cost a fill, and past glibc's trim threshold new pages, 2.5x a
    // 50 KB all-gather's time on 2 ranks of this machine (validators/README.md, Repartitions).
    template <class T>
    std::vector<T>& buffer(bool send) const {
        if constexpr (std::is_same_v<T, float>)
            return send ? float_send_ : float_recv_;
        else
            return send ? double_send_ : double_recv_;
    }
    mutable std::vector<float> float_send_, float_recv_;
    mutable std::vector<double> double_send_, double_recv_;

    std::vector<Box> src_, dst_;
    MPI_Comm comm_ = MPI_COMM_NULL;
    int me_ = 0, p_ = 1;
    std::vector<Piece> sends_, recvs_;  // forward direction
    std::vector<Box> local_;
    bool local_only_ = true;
};

inline Repartition::Repartition(std::vector<Box> src, std::vector<Box> dst, MPI_Comm comm)
    : src_(std::move(src)), dst_(std::move(dst)), comm_(comm), me_(comm_rank(comm)), p_(comm_size(comm)) {
    for (int q = 0; q < p_; ++q) {
        for (int s = 0; s < p_; ++s) {
            // One representative per distinct source box: its first holder.
            bool first = true;
            for (int e = 0; e < s; ++e)
                if (src_[e] == src_[s]) first = false;
            if (!first) continue;
            Box piece = intersect(src_[s], dst_[q]);
            if (piece.empty()) continue;
            std::vector<int> holders;
            for (int h = 0; h < p_; ++h)
                if (src_[h] == src_[s]) holders.push_back(h);
            int from = std::find(holders.begin(), holders.end(), q) != holders.end()
                           ? q
                           : holders[static_cast<std::size_t>(q) % holders.size()];
            if (from != q) local_only_ = false;
            if (from == me_ && q == me_)
                local_.push_back(piece);
            else if (from == me_)
                sends_.push_back({q, piece});
            else if (q == me_)
                recvs_.push_back({from, piece});
        }
    }
}

template <class T>
void Repartition::exchange(const Tensor<T>& from, Tensor<T>& to, const std::vector<Piece>& out,
                           const std::vector<Piece>& in, bool add) const {
    std::vector<int> scount(p_, 0), sdispl(p_, 0), rcount(p_, 0), rdispl(p_, 0);
    for (const Piece& pc : out) scount[pc.peer] += static_cast<int>(pc.region.volume());
    for (const Piece& pc : in) rcount[pc.peer] += static_cast<int>(pc.region.volume());
    for (int r = 1; r < p_; ++r) {
        sdispl[r] = sdispl[r - 1] + scount[r - 1];
        rdispl[r] = rdispl[r - 1] + rcount[r - 1];
    }
    std::vector<T>& sendbuf = buffer<T>(true);
    std::vector<T>& recvbuf = buffer<T>(false);
    // Grows only (new elements are filled once); every cell sent or unpacked is written first.
    const auto sends = static_cast<std::size_t>(sdispl[p_ - 1] + scount[p_ - 1]);
    const auto receives = static_cast<std::size_t>(rdispl[p_ - 1] + rcount[p_ - 1]);
    if (sendbuf.size() < sends) sendbuf.resize(sends);
    if (recvbuf.size() < receives) recvbuf.resize(receives);
    // At most one piece per peer and direction (a rank holds one box), so a peer's data is one
    // piece, packed straight into its place in the send buffer (row-major over the piece, as pack()).
    for (const Piece& pc : out) {
        T* to_peer = sendbuf.data() + sdispl[pc.peer];
        for_each_run(from.box, pc.region, pc.region,
                     [&](Index s, Index d, Index n) { std::copy_n(from.data.data() + s, n, to_peer + d); });
    }
    if (!local_only_)
        MPI_Alltoallv(sendbuf.data(), scount.data(), sdispl.data(), mpi_type<T>(), recvbuf.data(), rcount.data(),
                      rdispl.data(), mpi_type<T>(), comm_);
    for (const Piece& pc : in) unpack(to, pc.region, recvbuf.data() + rdispl[pc.peer], add);
}

template <class T>
Tensor<T> Repartition::forward(const Tensor<T>& x) const {
    Tensor<T> y(dst_[me_]);
    for (const Box& b : local_) copy_region(x, y, b, false);
    exchange(x, y, sends_, recvs_, false);
    return y;
}

template <class T>
Tensor<T> Repartition::adjoint(const Tensor<T>& y) const {
    Tensor<T> x(src_[me_]);
    for (const Box& b : local_) copy_region(y, x, b, true);
    exchange(y, x, recvs_, sends_, true);
    return x;
}

}  // namespace dnnplan::validators
