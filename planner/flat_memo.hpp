// A bounded memo table for the cost model's hot queries: open addressing with linear probing in
// one flat array (a node-based std::unordered_map spent the search's time in cache misses).
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

namespace dnnplan::planner {

// splitmix64's finaliser: spreads keys whose bits differ only in a few places.
inline std::uint64_t mix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// Key: trivially copyable with a defaulted operator==; Hash: std::uint64_t(const Key&).
template <class Key, class Value, class Hash>
class FlatMemo {
public:
    const Value* find(const Key& key) const {
        if (slots_.empty()) return nullptr;
        for (std::size_t i = Hash{}(key)&mask(); slots_[i].used; i = (i + 1) & mask())
            if (slots_[i].key == key) return &slots_[i].value;
        return nullptr;
    }

    // Grows (rehashing) up to kMaxSlots, then starts again empty: memory stays bounded.
    void insert(const Key& key, const Value& value) {
        if (slots_.empty()) slots_.resize(kInitialSlots);
        if ((used_ + 1) * 4 > slots_.size() * 3) {
            std::vector<Slot> old(slots_.size() < kMaxSlots ? slots_.size() * 2 : slots_.size());
            old.swap(slots_);
            used_ = 0;
            if (slots_.size() > old.size())
                for (const Slot& slot : old)
                    if (slot.used) place(slot.key, slot.value);
        }
        place(key, value);
    }

private:
    static constexpr std::size_t kInitialSlots = 1024, kMaxSlots = std::size_t{1} << 18;  // powers of two
    struct Slot {
        Key key{};
        Value value{};
        bool used = false;
    };
    std::size_t mask() const { return slots_.size() - 1; }
    void place(const Key& key, const Value& value) {
        std::size_t i = Hash{}(key)&mask();
        while (slots_[i].used) i = (i + 1) & mask();
        slots_[i] = Slot{key, value, true};
        ++used_;
    }
    std::vector<Slot> slots_;
    std::size_t used_ = 0;
};

}  // namespace dnnplan::planner
