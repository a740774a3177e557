#include "result_files.hpp"

#include "common/units.hpp"

namespace dnnplan::reports {

namespace {

// Time keys ("iteration_s", "halo_s", ...) that both blocks give as numbers, in the predicted
// block's order.
std::vector<BreakdownPair> common_seconds(const SpecNode& predicted, const SpecNode& other) {
    std::vector<BreakdownPair> out;
    for (const auto& [key, value] : predicted.json().items()) {
        if (key.size() < 3 || key.compare(key.size() - 2, 2, "_s") != 0 || !value.is_number()) continue;
        if (!other.has(key)) continue;
        out.push_back({key, predicted.get_number(key, 0), other.get_number(key, 0)});
    }
    return out;
}

// The "predicted" block and its counterpart ("simulated" or "measured") of one result: their
// iteration times and the breakdown keys they share.
struct BlockPair {
    double predicted_s = 0, other_s = 0;
    std::vector<BreakdownPair> breakdown;
};
BlockPair read_blocks(const SpecNode& node, const std::string& other_key) {
    SpecNode predicted = node.child("predicted"), other = node.child(other_key);
    predicted.expect_object();
    other.expect_object();
    return {predicted.get_number("iteration_s", 0), other.get_number("iteration_s", 0),
            common_seconds(predicted, other)};
}

// "relative_difference": a number, or an object whose "iteration_s" is the number.
std::optional<double> relative(const SpecNode& node, const std::string& key) {
    if (!node.has(key)) return std::nullopt;
    SpecNode value = node.child(key);
    if (value.json().is_null()) return std::nullopt;
    if (value.is_object())
        return value.has("iteration_s") ? std::optional(value.get_number("iteration_s")) : std::nullopt;
    return value.as_number();
}

// The "plan" object naming what a result is about; absent in older files.
std::optional<ResultIdentity> read_identity(const SpecNode& parent) {
    if (!parent.has("plan")) return std::nullopt;
    SpecNode plan = parent.child("plan");
    plan.expect_object();
    ResultIdentity id;
    id.network = plan.get_string("network");
    id.fingerprint = plan.get_string("fingerprint");
    id.cluster = plan.get_string("cluster");
    id.procs = static_cast<std::int64_t>(plan.get_number("procs"));
    id.batch = static_cast<std::int64_t>(plan.get_number("batch"));
    return id;
}

// The simulator's per-link report ("links": {"most_loaded": [...]}); absent in older files.
std::vector<LinkLoad> read_links(const SpecNode& root) {
    std::vector<LinkLoad> out;
    if (!root.has("links")) return out;
    SpecNode links = root.child("links");
    if (!links.has("most_loaded")) return out;
    SpecNode list = links.child("most_loaded");
    list.expect_array();
    for (std::size_t i = 0; i < list.size(); ++i) {
        SpecNode l = list.element(i);
        l.expect_object();
        LinkLoad load;
        load.link = l.get_string("link");
        load.bytes = l.get_number("bytes");
        load.busy_fraction = l.get_number("busy_fraction");
        load.utilisation = l.get_number("utilisation");
        if (l.has("top_senders")) {
            SpecNode by = l.child("top_senders");
            by.expect_array();
            for (std::size_t k = 0; k < by.size(); ++k) {
                SpecNode sender = by.element(k);
                load.senders += (load.senders.empty() ? "" : ", ") + sender.get_string("what") + " " +
                                human_bytes(sender.get_number("bytes"));
            }
        }
        out.push_back(std::move(load));
    }
    return out;
}

}  // namespace

SimulatedResult parse_simulated_result(const Json& json, const std::string& file) {
    SpecNode root(json, file);
    root.expect_object();
    SimulatedResult r;
    r.strategy = root.get_string_or("strategy", "");
    r.grid = root.get_string_or("grid", "");
    BlockPair blocks = read_blocks(root, "simulated");
    r.predicted_s = blocks.predicted_s;
    r.simulated_s = blocks.other_s;
    r.relative_difference = relative(root, "relative_difference");
    r.breakdown = std::move(blocks.breakdown);
    r.plan = read_identity(root);
    r.links = read_links(root);
    return r;
}

namespace {
// Throws at `where` + "/plan/..." when the identity differs from the report's plan.
void check_identity(const std::optional<ResultIdentity>& plan, const std::string& file, const std::string& where,
                    const std::string& network, const std::string& fingerprint, std::int64_t procs,
                    std::int64_t batch, const std::string& cluster) {
    if (!plan) return;
    const ResultIdentity& id = *plan;
    if (id.fingerprint != fingerprint)
        throw InputError(file, where + "/plan/fingerprint",
                         "the result is for network \"" + id.network + "\" (fingerprint " + id.fingerprint +
                             "), not the report's \"" + network + "\" (" + fingerprint + ")");
    if (id.procs != procs)
        throw InputError(file, where + "/plan/procs",
                         "the result is for P = " + std::to_string(id.procs) + ", not the report's P = " +
                             std::to_string(procs));
    if (id.batch != batch)
        throw InputError(file, where + "/plan/batch",
                         "the result is for batch " + std::to_string(id.batch) + ", not the report's batch " +
                             std::to_string(batch));
    if (id.cluster != cluster)
        throw InputError(file, where + "/plan/cluster",
                         "the result is for cluster " + id.cluster + ", not the report's " + cluster);
}

}  // namespace

void check_result_identity(const SimulatedResult& result, const std::string& file, const std::string& network,
                           const std::string& fingerprint, std::int64_t procs, std::int64_t batch,
                           const std::string& cluster) {
    check_identity(result.plan, file, "", network, fingerprint, procs, batch, cluster);
}

void check_result_identity(const MeasuredResult& result, const std::string& file, const std::string& network,
                           const std::string& fingerprint, std::int64_t procs, std::int64_t batch,
                           const std::string& cluster) {
    for (std::size_t i = 0; i < result.plans.size(); ++i)
        check_identity(result.plans[i].plan, file, "/plans/" + std::to_string(i), network, fingerprint, procs, batch,
                       cluster);
}

MeasuredResult parse_measured_result(const Json& json, const std::string& file) {
    SpecNode root(json, file);
    root.expect_object();
    SpecNode plans = root.child("plans");
    plans.expect_array();
    MeasuredResult r;
    for (std::size_t i = 0; i < plans.size(); ++i) {
        SpecNode plan = plans.element(i);
        plan.expect_object();
        MeasuredPlan m;
        m.strategy = plan.get_string("strategy");
        m.grid = plan.get_string_or("grid", "");
        m.plan = read_identity(plan);
        BlockPair blocks = read_blocks(plan, "measured");
        m.predicted_s = blocks.predicted_s;
        m.measured_s = blocks.other_s;
        m.relative_error = relative(plan, "relative_error");
        m.breakdown = std::move(blocks.breakdown);
        r.plans.push_back(std::move(m));
    }
    return r;
}

}  // namespace dnnplan::reports
