// A free-list allocator for the simulating child (simulator/README.md, "Scale"): SimGrid allocates
// and frees a handful of small objects per message (the s4u and kernel comm, the network action,
// the max-min variable and its elements), thousands at a time at each time step, and glibc's malloc
// serves these bursts slowly once its per-size cache (7 blocks) is full: _int_malloc,
// malloc_consolidate and unlink_chunk were 10% of a P = 1,024 replay's CPU in perf. Here every block
// of up to 1 KiB freed by the child goes back on an unbounded list of its size and is reused as is,
// which is glibc's own cache with no bound (GLIBC_TUNABLES=glibc.malloc.tcache_count=2000 gave
// the same replay 15-17% less CPU, the same iteration to the last digit).
//
// The global operator new and delete are replaced for the whole program, but the pool serves only
// the thread that enabled it (the child, after the fork; single-threaded); everything else, and
// every block allocated before, goes to malloc and free. A pool block carries a 16-byte header whose
// second word is kMagic: glibc keeps a chunk's size there, which never has the top bit set, so
// delete tells the two apart. Blocks are never given back (the child exits when its run ends).
#include <cstdint>
#include <cstdlib>
#include <new>

// Under AddressSanitizer (tools/sanitize.sh) the pool is off: ASan owns operator new and delete, and
// the header check reads the 16 bytes before a block, which ASan rightly reports.
#if defined(__SANITIZE_ADDRESS__)
#define DNNPLAN_MEMORY_POOL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DNNPLAN_MEMORY_POOL 0
#endif
#endif
#ifndef DNNPLAN_MEMORY_POOL
#define DNNPLAN_MEMORY_POOL 1
#endif

#if DNNPLAN_MEMORY_POOL
namespace dnnplan::simulator {

namespace {

constexpr std::uint64_t kMagic = 0xD15EA5E5F00DCAFEull | (1ull << 63);
constexpr std::size_t kGranule = 16;
constexpr std::size_t kClasses = 64;  // payloads of 16, 32, ..., 1024 bytes
constexpr std::size_t kChunk = std::size_t{1} << 20;

struct Header {
    std::uint64_t size_class;
    std::uint64_t magic;
};
static_assert(sizeof(Header) == 16, "a block's payload stays 16-byte aligned");

struct Pool {
    void* free_list[kClasses] = {};
    char* bump = nullptr;
    char* end = nullptr;
};

thread_local Pool* pool = nullptr;

void* from_pool(Pool& p, std::size_t n) {
    const std::size_t c = n == 0 ? 0 : (n - 1) / kGranule;
    if (void* block = p.free_list[c]) {
        p.free_list[c] = *static_cast<void**>(block);
        return block;
    }
    const std::size_t total = sizeof(Header) + (c + 1) * kGranule;
    if (p.bump == nullptr || static_cast<std::size_t>(p.end - p.bump) < total) {
        p.bump = static_cast<char*>(std::malloc(kChunk));
        if (p.bump == nullptr) return nullptr;
        p.end = p.bump + kChunk;
    }
    auto* header = reinterpret_cast<Header*>(p.bump);
    header->size_class = c;
    header->magic = kMagic;
    p.bump += total;
    return header + 1;
}

void* allocate(std::size_t n) {
    if (pool != nullptr && n <= kClasses * kGranule)
        if (void* block = from_pool(*pool, n)) return block;
    return std::malloc(n == 0 ? 1 : n);
}

void release(void* block) noexcept {
    if (block == nullptr) return;
    const Header* header = static_cast<const Header*>(block) - 1;
    if (header->magic != kMagic) {
        std::free(block);
        return;
    }
    if (pool == nullptr) return;  // a pool block freed by another thread: left alone
    *static_cast<void**>(block) = pool->free_list[header->size_class];
    pool->free_list[header->size_class] = block;
}

}  // namespace

void enable_memory_pool() {
    if (pool == nullptr) pool = new (std::malloc(sizeof(Pool))) Pool{};
}

}  // namespace dnnplan::simulator

using dnnplan::simulator::allocate;
using dnnplan::simulator::release;

void* operator new(std::size_t n) {
    if (void* p = allocate(n)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    if (void* p = allocate(n)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return allocate(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return allocate(n); }
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
#else
namespace dnnplan::simulator {
void enable_memory_pool() {}
}  // namespace dnnplan::simulator
#endif
