#include "simulator/message_link.hpp"

#include <simgrid/kernel/resource/NetworkModelIntf.hpp>
#include <simgrid/s4u.hpp>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

namespace dnnplan::simulator {

namespace sg4 = simgrid::s4u;

MessageFactors message_factors(const clusters::LinkModel& links, int rank_a, int rank_b) {
    const clusters::LinkCost& built = links.between(rank_a, rank_b);
    const clusters::LinkCost& message = links.message_between(rank_a, rank_b);
    // A built route's latency is the link's latency_s (> 0, the spec's range): the ratio is defined.
    return {message.latency_s / built.latency_s, message.bandwidth_Bps / built.bandwidth_Bps};
}

namespace {

struct FlowKey {
    const sg4::Host* from = nullptr;
    const sg4::Host* to = nullptr;
    std::uint64_t bytes = 0;
    bool operator==(const FlowKey&) const = default;
};
struct FlowKeyHash {
    std::size_t operator()(const FlowKey& k) const {
        const auto a = reinterpret_cast<std::uintptr_t>(k.from), b = reinterpret_cast<std::uintptr_t>(k.to);
        return std::hash<std::uint64_t>{}((a * 0x9E3779B97F4A7C15ULL) ^ (b * 0xC2B2AE3D27D4EB4FULL) ^ k.bytes);
    }
};

}  // namespace

struct MessageLinks::State {
    clusters::LinkModel links;
    std::vector<sg4::Host*> hosts;
    struct Announced {
        int count = 0;
        MessageFactors factors;
    };
    std::unordered_map<FlowKey, Announced, FlowKeyHash> announced;
    // The flow whose bandwidth factor was just asked for: SimGrid 3.32's CM02 asks for a flow's
    // bandwidth factor, then at once for its latency factor (NetworkCm02Model::comm_action_set_bounds).
    FlowKey current;
    MessageFactors current_factors;

    double bandwidth_factor(double size, const sg4::Host* src, const sg4::Host* dst) {
        current = FlowKey{src, dst, static_cast<std::uint64_t>(size)};
        current_factors = MessageFactors{};
        auto it = announced.find(current);
        if (it != announced.end()) {
            current_factors = it->second.factors;
            if (--it->second.count == 0) announced.erase(it);
        }
        return current_factors.bandwidth;
    }
    double latency_factor(double size, const sg4::Host* src, const sg4::Host* dst) {
        if (!(current == FlowKey{src, dst, static_cast<std::uint64_t>(size)}))
            throw std::logic_error("message link: SimGrid asked for a latency factor before the flow's bandwidth factor");
        const double factor = current_factors.latency;
        current = FlowKey{};
        current_factors = MessageFactors{};
        return factor;
    }
};

MessageLinks::MessageLinks(std::unique_ptr<State> state) : state_(std::move(state)) {}
MessageLinks::~MessageLinks() = default;

std::unique_ptr<MessageLinks> MessageLinks::install(const clusters::Cluster& cluster,
                                                    const std::vector<sg4::Host*>& hosts,
                                                    const PlatformOptions& options) {
    const clusters::LinkModel links = clusters::LinkModel::of(cluster);
    if (links.intra_message == links.intra && links.inter_message == links.inter) return nullptr;
    if (options.network_model != NetworkModel::cm02 || !options.platform_file.empty()) return nullptr;
    auto state = std::make_unique<State>();
    state->links = links;
    state->hosts = hosts;
    State* s = state.get();
    using Links = std::vector<sg4::Link*>;
    using Zones = std::unordered_set<sg4::NetZone*>;
    auto* network = sg4::Engine::get_instance()->get_netzone_root()->get_network_model();
    network->set_bw_factor_cb([s](double size, const sg4::Host* src, const sg4::Host* dst, const Links&, const Zones&) {
        return s->bandwidth_factor(size, src, dst);
    });
    network->set_lat_factor_cb([s](double size, const sg4::Host* src, const sg4::Host* dst, const Links&, const Zones&) {
        return s->latency_factor(size, src, dst);
    });
    return std::unique_ptr<MessageLinks>(new MessageLinks(std::move(state)));
}

void MessageLinks::expect(int from, int to, std::uint64_t bytes) {
    State& s = *state_;
    auto& entry = s.announced[FlowKey{s.hosts[from], s.hosts[to], bytes}];
    if (entry.count++ == 0) entry.factors = message_factors(s.links, from, to);
}

}  // namespace dnnplan::simulator
