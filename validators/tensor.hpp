// Local blocks of 4-D tensors [B, C, H, W] with their position in the global tensor, and the box
// arithmetic every primitive uses (intersections, balanced block splits, packing).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace dnnplan::validators {

using Index = std::int64_t;
constexpr int kDims = 4;

// A half-open box [lo, hi) of global indices per axis.
struct Box {
    std::array<Index, kDims> lo{0, 0, 0, 0};
    std::array<Index, kDims> hi{0, 0, 0, 0};
    Index extent(int d) const { return std::max<Index>(0, hi[d] - lo[d]); }
    Index volume() const {
        Index v = 1;
        for (int d = 0; d < kDims; ++d) v *= extent(d);
        return v;
    }
    bool empty() const { return volume() == 0; }
    bool operator==(const Box&) const = default;
};

inline Box intersect(const Box& a, const Box& b) {
    Box r;
    for (int d = 0; d < kDims; ++d) {
        r.lo[d] = std::max(a.lo[d], b.lo[d]);
        r.hi[d] = std::max(r.lo[d], std::min(a.hi[d], b.hi[d]));
    }
    return r;
}

// Block k of `parts` balanced blocks of [0, extent): sizes differ by at most one (uneven splits).
inline Index block_begin(Index extent, Index parts, Index k) { return extent * k / parts; }

// A local block: `box` says which global indices it holds; data is row-major over the box.
template <class T>
struct Tensor {
    Box box;
    std::vector<T> data;

    Tensor() = default;
    explicit Tensor(const Box& b, T fill = T{0}) : box(b), data(static_cast<std::size_t>(b.volume()), fill) {}
    Index extent(int d) const { return box.extent(d); }
    // Offset of global index (b, c, h, w), which must lie inside the box.
    Index offset(Index b, Index c, Index h, Index w) const {
        return (((b - box.lo[0]) * extent(1) + (c - box.lo[1])) * extent(2) + (h - box.lo[2])) * extent(3) +
               (w - box.lo[3]);
    }
    T& at(Index b, Index c, Index h, Index w) { return data[static_cast<std::size_t>(offset(b, c, h, w))]; }
    const T& at(Index b, Index c, Index h, Index w) const { return data[static_cast<std::size_t>(offset(b, c, h, w))]; }
};

// Calls f(src_offset, dst_offset, run) for every contiguous run of `region` (global indices)
// inside both boxes. Inner axes that `region`, src and dst all cover whole merge into the run:
// a sequence block [B, S, E, 1] split on E moves runs of E / p elements, not of 1 (one call per
// element cost gpt-pipe's redistributions 5-10 ns an element, 20x their transfer).
template <class F>
void for_each_run(const Box& src, const Box& dst, const Box& region, F&& f) {
    if (region.empty()) return;
    auto off = [](const Box& b, Index i0, Index i1, Index i2, Index i3) {
        return (((i0 - b.lo[0]) * b.extent(1) + (i1 - b.lo[1])) * b.extent(2) + (i2 - b.lo[2])) * b.extent(3) +
               (i3 - b.lo[3]);
    };
    auto whole = [&](int d) {
        return src.lo[d] == region.lo[d] && dst.lo[d] == region.lo[d] && src.hi[d] == region.hi[d] &&
               dst.hi[d] == region.hi[d];
    };
    int merged = 3;  // axes merged..3 form one run, axes below it are looped over
    Index run = region.extent(3);
    while (merged > 0 && whole(merged)) run *= region.extent(--merged);
    auto end = [&](int d) { return d < merged ? region.hi[d] : region.lo[d] + 1; };
    for (Index i0 = region.lo[0]; i0 < end(0); ++i0)
        for (Index i1 = region.lo[1]; i1 < end(1); ++i1)
            for (Index i2 = region.lo[2]; i2 < end(2); ++i2)
                f(off(src, i0, i1, i2, region.lo[3]), off(dst, i0, i1, i2, region.lo[3]), run);
}

// Appends the elements of `region` (inside t.box) to `out` in row-major order.
template <class T>
void pack(const Tensor<T>& t, const Box& region, std::vector<T>& out) {
    Box packed = region;
    std::size_t base = out.size();
    out.resize(base + static_cast<std::size_t>(region.volume()));
    for_each_run(t.box, packed, region, [&](Index s, Index d, Index n) {
        std::copy_n(t.data.begin() + s, n, out.begin() + static_cast<std::ptrdiff_t>(base) + d);
    });
}

// Writes (or adds) a packed region into t.
template <class T>
void unpack(Tensor<T>& t, const Box& region, const T* in, bool add) {
    for_each_run(region, t.box, region, [&](Index s, Index d, Index n) {
        if (add)
            for (Index i = 0; i < n; ++i) t.data[d + i] += in[s + i];
        else
            std::copy_n(in + s, n, t.data.begin() + d);
    });
}

// Copies (or adds) `region` from src to dst, both holding it.
template <class T>
void copy_region(const Tensor<T>& src, Tensor<T>& dst, const Box& region, bool add) {
    for_each_run(src.box, dst.box, region, [&](Index s, Index d, Index n) {
        if (add)
            for (Index i = 0; i < n; ++i) dst.data[d + i] += src.data[s + i];
        else
            std::copy_n(src.data.begin() + s, n, dst.data.begin() + d);
    });
}

}  // namespace dnnplan::validators
