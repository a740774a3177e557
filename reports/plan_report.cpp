#include "plan_report.hpp"

#include "reports/candidate_fields.hpp"
#include "reports/candidate_text.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "planner/pipeline.hpp"
#include "text.hpp"

namespace dnnplan::reports {

namespace {
std::string seconds(double s) { return human_seconds(s); }

std::string fixed(double v, const char* format) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, format, v);
    return buffer;
}

std::size_t longest_line(const std::string& text) {
    std::size_t longest = 0, start = 0;
    for (std::size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1)
        longest = std::max(longest, end - start);
    return std::max(longest, text.size() - start);
}

// The training software's behaviour the plan was scored with (planner/software_options.hpp): the
// gradient accumulation always, the 16-bit optimizer step's passes in 16 bits, the boundary sends
// when not Megatron-LM's default.
std::string software(const planner::PlannerOptions& o) {
    std::string out = "; gradient accumulation " +
                      planner::to_string(o.grad_accumulation.value_or(planner::default_grad_accumulation(o.dtype)));
    if (o.dtype != DType::fp32) out += ", optimizer step " + planner::to_string(o.mixed_precision_step);
    if (o.boundary_send != planner::PipelineBoundarySend::scatter_gather)
        out += ", boundary sends " + planner::to_string(o.boundary_send);
    return out;
}

std::string header(const planner::CostModel& model, const TextOptions& t) {
    const auto& o = model.options();
    return wrap("dnnplan: " + terminal_safe(model.network().name) + " on " + terminal_safe(model.cluster().name) +
                    ", P = " + std::to_string(o.procs) +
                    (o.processes_per_node != 1 ? " (" + std::to_string(o.processes_per_node) + " processes per node on " +
                                                     std::to_string(o.procs / o.processes_per_node) +
                                                     (o.procs == o.processes_per_node ? " node)" : " nodes)")
                                               : std::string()) +
                    ", batch " + std::to_string(o.batch) + " (" +
                    to_string(o.dtype) + ", " + planner::to_string(o.optimizer) +
                    (o.optimizer_defaulted && o.optimizer == planner::Optimizer::adam
                         ? std::string(" (default for networks with attention") +
                               (o.dtype == DType::fp32 ? ")" : "; mixed precision: fp32 master weights and moments)")
                         : "") +
                    (o.overlap_sync ? ", gradient sync overlapped" : "") + software(o) + ")",
                t.wide ? 0 : t.width, 2);
}

// A table column: its title, its cells (one per row), and whether it may be left out to fit.
struct TextColumn {
    std::string title;
    std::vector<std::string> cells;
    int drop_order = 0;  // 0: always shown; otherwise left out first when smaller (1 before 2 ...)
};

// Renders the columns, leaving out the droppable ones (lowest drop_order first) until the table
// fits `width` (0: no limit). Returns the table and the titles it left out.
std::string fit_columns(std::vector<TextColumn> columns, int width, std::vector<std::string>& left_out) {
    auto render = [&] {
        TextTable table;
        for (const auto& c : columns) table.header.push_back(c.title);
        std::size_t rows = columns.empty() ? 0 : columns.front().cells.size();
        for (std::size_t r = 0; r < rows; ++r) {
            std::vector<std::string> row;
            for (const auto& c : columns) row.push_back(c.cells[r]);
            table.rows.push_back(std::move(row));
        }
        return table.render();
    };
    std::string out = render();
    while (width > 0 && longest_line(out) > static_cast<std::size_t>(width)) {
        auto next = std::min_element(columns.begin(), columns.end(), [](const TextColumn& x, const TextColumn& y) {
            return (x.drop_order == 0 ? 1 << 30 : x.drop_order) < (y.drop_order == 0 ? 1 << 30 : y.drop_order);
        });
        if (next == columns.end() || next->drop_order == 0) break;
        left_out.push_back(next->title);
        columns.erase(next);
        out = render();
    }
    return out;
}

// The pipeline's stages (planner::score_pipeline, re-scored for the text only) when the candidate
// is a pipeline whose score they reproduce; empty otherwise.
struct FamilyDetails {
    bool have = false;
    double balance = 1, cut_bytes = 0;
    std::vector<planner::StageCost> stages;
};
FamilyDetails family_details(const planner::CostModel& model, planner::Strategy strategy,
                             const planner::PipelineSpec& spec, const planner::ScoredPlan& plan) {
    FamilyDetails out;
    const bool pipeline = strategy == planner::Strategy::pipeline || strategy == planner::Strategy::tp_pp_dp ||
                          (strategy == planner::Strategy::hand_edited && spec.active());
    if (!pipeline || !spec.device_of.empty() || spec.stage_first.empty() || !plan.cost.feasible) return out;
    planner::PipelineScore score = planner::score_pipeline(model, spec, plan.anchor_layouts);
    if (score.plan.cost.iteration_s != plan.cost.iteration_s) return out;  // not the plan shown: say nothing
    out.have = true;
    out.balance = score.balance;
    out.cut_bytes = score.cut_bytes;
    out.stages = std::move(score.stages);
    return out;
}

std::string layer_name(const planner::CostModel& model, int layer) {
    const auto& layers = model.network().layers;
    return layer >= 0 && static_cast<std::size_t>(layer) < layers.size() ? terminal_safe(layers[layer].name) : "?";
}

// Per stage: layers, seconds per micro-batch (receives included, and apart), bytes sent on, the
// gradient sync and memory; the peak-memory stage named.
std::string stage_table(const planner::CostModel& model, const planner::PipelineSpec& spec,
                        const std::vector<planner::StageCost>& stages, const TextOptions& t) {
    if (stages.empty()) return "";
    std::size_t peak = 0;
    for (std::size_t s = 1; s < stages.size(); ++s)
        if (stages[s].memory_bytes > stages[peak].memory_bytes) peak = s;
    std::vector<TextColumn> columns{{"stage", {}, 0},          {"layers", {}, 0},        {"count", {}, 3},
                                    {"fwd/micro", {}, 0},      {"bwd/micro", {}, 0},     {"recv fwd", {}, 2},
                                    {"recv bwd", {}, 2},       {"sends/micro", {}, 1},   {"grad sync", {}, 0},
                                    {"memory/proc", {}, 0}};
    for (std::size_t s = 0; s < stages.size(); ++s) {
        const auto& st = stages[s];
        // Interleaved: one row per chunk, "device.chunk" (chunk c of device d is row c S + d).
        const std::string name = spec.interleave > 1 ? std::to_string(s % spec.stages) + "." +
                                                           std::to_string(s / spec.stages)
                                                     : std::to_string(s);
        const std::string cells[] = {name,
                                     layer_name(model, st.first) + " ... " + layer_name(model, st.last),
                                     std::to_string(st.last - st.first + 1),
                                     seconds(st.forward_s),
                                     seconds(st.backward_s),
                                     seconds(st.recv_forward_s),
                                     seconds(st.recv_backward_s),
                                     s + 1 < stages.size() ? human_bytes(st.boundary_bytes) : "-",
                                     seconds(st.sync_s),
                                     human_bytes(st.memory_bytes) + (s == peak ? " (peak)" : "")};
        for (std::size_t c = 0; c < columns.size(); ++c) columns[c].cells.push_back(cells[c]);
    }
    std::vector<std::string> left_out;
    std::string out = "stages (" + std::to_string(spec.tensor) + " processes each, " + std::to_string(spec.replicas) +
                      " replicas; seconds per micro-batch, " + std::to_string(spec.micro_batches) +
                      " micro-batches; fwd/bwd include the receives):\n" +
                      (spec.interleave > 1 ? "(interleaved: rows are device.chunk; memory and sync are the device's)\n" : "");
    out += fit_columns(columns, t.wide ? 0 : t.width, left_out);
    out += "peak memory: stage " + std::to_string(peak % spec.stages) + ", " + human_bytes(stages[peak].memory_bytes) +
           " per process (the memory line above is this stage's)\n";
    return out;
}

// "h.12.attn" -> block "h.", instance 12, rest "attn"; false when the name has no numbered part.
bool split_block_name(const std::string& name, std::string& block, long& instance, std::string& rest) {
    for (std::size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1)) {
        std::size_t end = dot + 1;
        while (end < name.size() && name[end] >= '0' && name[end] <= '9') ++end;
        if (end == dot + 1 || end - dot > 9 || (end < name.size() && name[end] != '.')) continue;
        block = name.substr(0, dot + 1);
        instance = std::stol(name.substr(dot + 1, end - dot - 1));
        rest = end < name.size() ? name.substr(end + 1) : "";
        return true;
    }
    return false;
}

std::string layer_table(const planner::CostModel& model, const planner::ScoredPlan& plan,
                        const planner::PipelineSpec& pipeline, const TextOptions& t) {
    const auto& layers = model.network().layers;
    std::vector<int> stage_of;
    if (pipeline.active() && pipeline.device_of.empty() && !pipeline.stage_first.empty()) {
        stage_of.assign(layers.size(), 0);
        for (std::size_t i = 0; i < layers.size(); ++i)
            for (std::size_t s = 0; s < pipeline.stage_first.size(); ++s)
                if (pipeline.stage_first[s] <= static_cast<int>(i)) stage_of[i] = static_cast<int>(s);
    } else if (!pipeline.device_of.empty()) {
        stage_of = pipeline.device_of;
    }
    struct Numeric {
        const char* title;
        double (*field)(const planner::LayerCost&);
        bool bytes;
    };
    const Numeric numeric[] = {
        {"fwd compute", [](const planner::LayerCost& l) { return l.fwd_compute_s; }, false},
        {"bwd compute", [](const planner::LayerCost& l) { return l.bwd_compute_s; }, false},
        {"fwd comm", [](const planner::LayerCost& l) { return l.fwd_comm_s; }, false},
        {"bwd comm", [](const planner::LayerCost& l) { return l.bwd_comm_s; }, false},
        {"grad sync", [](const planner::LayerCost& l) { return l.sync_s; }, false},
        {"activations", [](const planner::LayerCost& l) { return l.activation_bytes; }, true}};
    // Too wide for the terminal: forward and backward summed in one column each.
    const Numeric summed[] = {
        {"compute", [](const planner::LayerCost& l) { return l.fwd_compute_s + l.bwd_compute_s; }, false},
        {"comm", [](const planner::LayerCost& l) { return l.fwd_comm_s + l.bwd_comm_s; }, false},
        {"grad sync", [](const planner::LayerCost& l) { return l.sync_s; }, false},
        {"activations", [](const planner::LayerCost& l) { return l.activation_bytes; }, true}};
    std::vector<std::size_t> shown_layers;
    for (std::size_t i = 1; i < layers.size() && i < plan.layers.size(); ++i) {
        const auto& lc = plan.layers[i];
        if (!model.is_anchor(static_cast<int>(i)) && layers[i].params == 0 && lc.fwd_comm_s + lc.bwd_comm_s == 0)
            continue;  // followers without communication add nothing to read
        shown_layers.push_back(i);
    }
    const bool staged = !stage_of.empty();
    const int width = t.wide ? 0 : t.width;
    auto render = [&](const Numeric* first, const Numeric* last) {
        std::vector<const Numeric*> used;  // columns zero in every row stay out (unless --wide)
        for (const Numeric* n = first; n != last; ++n)
            if (t.wide || std::any_of(shown_layers.begin(), shown_layers.end(),
                                      [&](std::size_t i) { return n->field(plan.layers[i]) != 0; }))
                used.push_back(n);
        std::vector<std::string> header{"layer", "kind"};
        if (staged) header.push_back(pipeline.device_of.empty() ? "stage" : "device");
        header.push_back("layout");
        for (const auto* n : used) header.push_back(n->title);
        std::vector<LayerRow> rows;
        for (std::size_t i : shown_layers) {
            const auto& lc = plan.layers[i];
            const auto& layer = layers[i];
            LayerRow row{terminal_safe(layer.name), {}};
            row.cells.push_back(terminal_safe(layer.kind == networks::LayerKind::activation
                                                  ? layer.attrs.function
                                                  : networks::to_string(layer.kind)));
            if (staged) row.cells.push_back(i < stage_of.size() ? std::to_string(stage_of[i]) : "-");
            row.cells.push_back(model.is_anchor(static_cast<int>(i)) ? planner::to_string(lc.layout) : "(follows)");
            for (const auto* n : used) row.cells.push_back(n->bytes ? human_bytes(n->field(lc)) : seconds(n->field(lc)));
            rows.push_back(std::move(row));
        }
        // The stage is the cell after the kind (cells exclude the name column).
        return render_layer_rows(header, rows, t.all_layers, staged ? 1 : -1, width);
    };
    std::string table = render(std::begin(numeric), std::end(numeric));
    if (width > 0 && longest_line(table) > static_cast<std::size_t>(width))
        table = render(std::begin(summed), std::end(summed)) +
                wrap("(forward and backward summed to fit " + std::to_string(width) +
                         " columns; --wide shows them apart, COLUMNS sets the width)",
                     width, 1);
    return table;
}

// The parts of the iteration that are not zero, which add up to it, and the memory line.
std::string breakdown(const planner::CostBreakdown& c, const FamilyDetails& details, const TextOptions& t) {
    std::string parts;
    for (const auto& component : time_components()) {
        const double v = component.of(c);
        if (v == 0) continue;
        parts += (parts.empty() ? "" : " + ") + component.label + " " + seconds(v);
    }
    std::string out = wrap("  iteration " + seconds(c.iteration_s) + " = " + (parts.empty() ? "0 s" : parts) +
                               (c.sync_total_s > 0 ? "; gradient sync " + seconds(c.sync_total_s) + " in all, " +
                                                         seconds(c.sync_exposed_s) + " of it exposed"
                                                   : std::string()),
                           t.wide ? 0 : t.width, 4);
    std::string where;
    if (details.have && !details.stages.empty()) {
        std::size_t peak = 0;
        for (std::size_t s = 1; s < details.stages.size(); ++s)
            if (details.stages[s].memory_bytes > details.stages[peak].memory_bytes) peak = s;
        where = " (peak: stage " + std::to_string(peak) + ")";
    }
    out += wrap("  memory per process" + where + " " + human_bytes(c.memory_bytes) + " of " +
                    human_bytes(c.memory_capacity_bytes) + " (weights " + human_bytes(c.weights_bytes) + ", gradients " +
                    human_bytes(c.gradients_bytes) + ", optimizer " + human_bytes(c.optimizer_bytes) +
                    ", activations " + human_bytes(c.activations_bytes) + ", buffers " + human_bytes(c.buffers_bytes) +
                    ")",
                t.wide ? 0 : t.width, 4);
    return out;
}

std::string best_plan_text(const planner::CostModel& model, planner::Strategy strategy,
                           const planner::PipelineSpec& pipeline, const planner::ScoredPlan& plan,
                           const TextOptions& t) {
    FamilyDetails details = family_details(model, strategy, pipeline, plan);
    std::string out = breakdown(plan.cost, details, t);
    if (!plan.cost.feasible) out += wrap("  infeasible: " + terminal_safe(plan.cost.reason), t.wide ? 0 : t.width, 4);
    if (details.have) out += "\n" + stage_table(model, pipeline, details.stages, t);
    return out + "\n" + layer_table(model, plan, pipeline, t);
}
}  // namespace

std::string short_configuration(const planner::Candidate& c) {
    const auto& p = c.pipeline;
    char buffer[160];
    if (planner::is_grid(c.strategy)) {
        std::snprintf(buffer, sizeof buffer, "Pr=%d x Pc=%d", c.grid.pr, c.grid.pc);
        return buffer;
    }
    if (c.strategy == planner::Strategy::graph_partition) {
        std::snprintf(buffer, sizeof buffer, "k=%d x DP=%d, M=%d", p.stages, p.replicas, p.micro_batches);
        return buffer;
    }
    if (c.strategy == planner::Strategy::pipeline || c.strategy == planner::Strategy::tp_pp_dp ||
        (c.strategy == planner::Strategy::hand_edited && p.active())) {
        // The pipeline family is T = 1 (HyPar-Flow's partitions): its TP is left out.
        const std::string tensor = p.tensor > 1 ? "TP=" + std::to_string(p.tensor) + " x " : "";
        // Short enough for a 120-column ranking: "recompute sel", "SP" (sequence parallelism).
        const std::string interleave = p.interleave > 1 ? " x" + std::to_string(p.interleave) + " chunks" : "";
        const std::string recompute = p.recompute == planner::Recompute::none        ? ""
                                      : p.recompute == planner::Recompute::selective ? ", recompute sel"
                                                                                     : ", recompute full";
        std::snprintf(buffer, sizeof buffer, "%sPP=%d x DP=%d, M=%d, %s%s%s%s%s", tensor.c_str(), p.stages, p.replicas,
                      p.micro_batches, planner::to_string(p.schedule).c_str(), interleave.c_str(),
                      p.zero ? ", zero-1" : "", recompute.c_str(), p.sequence_parallel ? ", SP" : "");
        return buffer;
    }
    return "";  // per-layer: a layout per layer, no one configuration
}

std::string wrap(const std::string& text, int width, int indent) {
    if (width <= 0 || static_cast<int>(text.size()) <= width) return text + "\n";
    std::string out;
    std::size_t at = std::min(text.find_first_not_of(' '), text.size());
    std::string line(at, ' ');  // the text's own indentation stays on its first line
    auto flush = [&] {
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out += line + "\n";
        line = std::string(static_cast<std::size_t>(indent), ' ');
    };
    // A number keeps its unit on its line: "12.18 ms" is one word here.
    auto is_unit = [](const std::string& w) {
        std::size_t letters = 0;
        while (letters < w.size() && std::isalpha(static_cast<unsigned char>(w[letters]))) ++letters;
        return letters > 0 && letters <= 4 && w.find_first_not_of(",;:)", letters) == std::string::npos;
    };
    std::vector<std::string> words;
    while (at < text.size()) {
        std::size_t space = text.find(' ', at);
        std::string word = text.substr(at, space == std::string::npos ? std::string::npos : space - at);
        at = space == std::string::npos ? text.size() : space + 1;
        if (!words.empty() && !words.back().empty() && std::isdigit(static_cast<unsigned char>(words.back().back())) &&
            is_unit(word))
            words.back() += " " + word;
        else
            words.push_back(word);
    }
    for (const std::string& word : words) {
        const bool fresh = line.find_first_not_of(' ') == std::string::npos;
        if (!fresh && static_cast<int>(line.size() + 1 + word.size()) > width) flush();
        line += (line.find_first_not_of(' ') == std::string::npos ? "" : " ") + word;
    }
    if (line.find_first_not_of(' ') != std::string::npos) flush();
    return out;
}

// Consecutive identical numbered blocks become one title row and one instance. `stage_cell`
// (-1: none) is the index of a cell that may differ between instances (a pipeline's stage): it
// is left out of the comparison and shown as the range the instances span ("0-31"), so that stage
// boundaries do not break the collapse (the per-stage table shows where they fall).
std::vector<LayerRow> collapse_repeated_blocks(const std::vector<LayerRow>& rows, int stage_cell) {
    using Body = std::vector<std::pair<std::string, std::vector<std::string>>>;
    auto comparable = [&](std::vector<std::string> cells) {
        if (stage_cell >= 0 && stage_cell < static_cast<int>(cells.size())) cells[stage_cell].clear();
        return cells;
    };
    std::vector<LayerRow> out;
    std::size_t i = 0;
    while (i < rows.size()) {
        std::string block, rest;
        long first = 0;
        if (!split_block_name(rows[i].name, block, first, rest)) {
            out.push_back(rows[i++]);
            continue;
        }
        // One instance: the consecutive rows of block `block`, number `n`, starting at `at`; their
        // rest names and cells (what must repeat), and where the next instance starts.
        auto instance = [&](std::size_t at, long n, Body& body) {
            body.clear();
            std::string b, r;
            long k = 0;
            while (at < rows.size() && split_block_name(rows[at].name, b, k, r) && b == block && k == n)
                body.emplace_back(r, comparable(rows[at++].cells));
            return at;
        };
        Body reference, next;
        std::size_t end = instance(i, first, reference);
        long last = first;
        for (std::size_t at = end;;) {
            std::size_t after = instance(at, last + 1, next);
            if (next.empty() || next != reference) break;
            ++last;
            end = at = after;
        }
        if (last == first) {
            for (std::size_t r = i; r < end; ++r) out.push_back(rows[r]);
        } else {
            out.push_back({block + std::to_string(first) + " ... " + block + std::to_string(last) + " (x" +
                               std::to_string(last - first + 1) + "):",
                           {}});
            const std::size_t per_instance = reference.size();
            for (std::size_t k = 0; k < per_instance; ++k) {
                LayerRow row{"  " + reference[k].first, rows[i + k].cells};
                if (stage_cell >= 0 && stage_cell < static_cast<int>(row.cells.size())) {
                    const std::string& lo = rows[i + k].cells[stage_cell];
                    const std::string& hi = rows[end - per_instance + k].cells[stage_cell];
                    row.cells[stage_cell] = lo == hi ? lo : lo + "-" + hi;
                }
                out.push_back(std::move(row));
            }
        }
        i = end;
    }
    return out;
}

namespace {
// `name` in pieces of at most `budget` characters (the later ones after a two-space indent),
// each broken after a '/', '.' or '_' where one falls in the piece: the pieces read in order give
// the whole name, so two names never look alike (as a shortened "a/.../Conv" would).
std::vector<std::string> name_pieces(const std::string& name, std::size_t budget) {
    std::vector<std::string> pieces;
    std::size_t from = 0;
    while (from < name.size()) {
        const std::size_t room = pieces.empty() ? budget : budget - 2;
        if (name.size() - from <= room) {
            pieces.push_back(name.substr(from));
            break;
        }
        std::size_t cut = name.find_last_of("/._", from + room - 1);
        cut = cut == std::string::npos || cut < from ? from + room : cut + 1;
        pieces.push_back(name.substr(from, cut - from));
        from = cut;
    }
    for (std::size_t i = 1; i < pieces.size(); ++i) pieces[i] = "  " + pieces[i];
    return pieces;
}
}  // namespace

std::string render_layer_rows(const std::vector<std::string>& header, std::vector<LayerRow> rows, bool all_layers,
                              int stage_cell, int width) {
    std::size_t before = rows.size();
    if (!all_layers) rows = collapse_repeated_blocks(rows, stage_cell);
    // A collapsed block's title row (no cells) spans the line and does not widen the name column.
    std::vector<std::pair<std::size_t, std::string>> titles;  // (table row it precedes, text)
    // Names longer than `budget` (0: no limit) continue on the next lines, the other cells blank.
    // With a budget, a path prefix ("/layer1/layer1.0/") shared by a run of rows is written once
    // as a line above them and the rows show the rest, indented.
    auto build = [&](std::size_t budget) {
        TextTable table;
        table.header = header;
        titles.clear();
        std::vector<std::string> prefix(rows.size());
        if (budget > 0)
            for (std::size_t i = 0; i < rows.size(); ++i) {
                if (rows[i].cells.empty()) continue;
                for (std::size_t j : {i - 1, i + 1}) {
                    if (j >= rows.size() || rows[j].cells.empty()) continue;  // i - 1 wraps past 0
                    const std::string& a = rows[i].name;
                    const std::string& b = rows[j].name;
                    std::size_t n = 0;
                    while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
                    const std::size_t slash = n == 0 ? std::string::npos : a.rfind('/', n - 1);
                    if (slash != std::string::npos && slash > 0 && slash + 1 < a.size() && slash + 1 > prefix[i].size() &&
                        slash + 1 <= static_cast<std::size_t>(width))  // the title line fits too
                        prefix[i] = a.substr(0, slash + 1);
                }
            }
        std::string group;
        for (std::size_t r = 0; r < rows.size(); ++r) {
            const auto& row = rows[r];
            if (row.cells.empty()) {
                titles.emplace_back(table.rows.size(), row.name);
                group.clear();
                continue;
            }
            std::string name = row.name;
            if (!prefix[r].empty()) {
                if (prefix[r] != group) titles.emplace_back(table.rows.size(), prefix[r]);
                name = "  " + name.substr(prefix[r].size());
            }
            group = prefix[r];
            std::vector<std::string> pieces =
                budget > 0 && name.size() > budget ? name_pieces(name, budget) : std::vector<std::string>{name};
            std::vector<std::string> cells{pieces.front()};
            cells.insert(cells.end(), row.cells.begin(), row.cells.end());
            table.rows.push_back(std::move(cells));
            for (std::size_t i = 1; i < pieces.size(); ++i) {
                table.rows.emplace_back(header.size());
                table.rows.back().front() = pieces[i];
            }
        }
        return table.render();
    };
    std::string rendered = build(0);
    if (width > 0 && longest_line(rendered) > static_cast<std::size_t>(width)) {
        // The other columns keep their width; the name column gets what is left (at least 16).
        std::size_t name_column = header.front().size();
        for (const auto& row : rows)
            if (!row.cells.empty()) name_column = std::max(name_column, row.name.size());
        const std::size_t others = longest_line(rendered) - name_column;
        const std::size_t budget = static_cast<std::size_t>(width) > others + 16 ? width - others : 16;
        if (budget < name_column) rendered = build(budget);
    }
    std::string out;
    std::size_t line = 0, start = 0, next_title = 0;
    for (std::size_t end; (end = rendered.find('\n', start)) != std::string::npos; start = end + 1, ++line) {
        while (next_title < titles.size() && line >= 2 && titles[next_title].first == line - 2)
            out += titles[next_title++].second + "\n";
        out += rendered.substr(start, end + 1 - start);
    }
    if (rows.size() < before)
        out += "(" + std::to_string(before) + " rows; identical numbered blocks shown once, `--layers all` lists each)\n";
    return out;
}

std::string plan_text(const PlanReportInput& in) {
    const auto& r = *in.result;
    const TextOptions& t = in.text;
    const int width = t.wide ? 0 : t.width;
    const auto& model = *in.model;
    const auto* batch = r.find(planner::Strategy::batch);
    double batch_time = batch && batch->plan.cost.feasible ? batch->plan.cost.iteration_s : 0;
    // A search narrowed to pipelines (--recompute alone, ...) does not score pure batch at all.
    const std::string no_batch = batch ? "pure batch is infeasible" : "pure batch was not scored";
    std::string out = header(model, t);
    out += wrap(std::to_string(r.ranked.size()) + " strategies scored (" + std::to_string(r.infeasible_count) +
                    " infeasible), " + std::to_string(r.layout_evaluations) + " layer-layout evaluations",
                width, 2);
    if (r.pipeline_configurations + r.pipeline_skipped > 0)
        out += wrap("pipeline search: " + std::to_string(r.pipeline_configurations) + " configurations scored (" +
                        std::to_string(r.pipeline_over_memory) + " over memory), " + std::to_string(r.pipeline_skipped) +
                        " skipped (stages, replicas, tensor groups or micro-batches not dividing P or the batch)",
                    width, 2);
    out += "\n";
    std::vector<const planner::Candidate*> shown;
    for (const auto& c : r.ranked)
        if (c.plan.cost.feasible && static_cast<int>(shown.size()) < in.top) shown.push_back(&c);
    const double model_flops = planner::model_flops_per_device(model);
    std::vector<FamilyDetails> details;
    for (const auto* c : shown) details.push_back(family_details(model, c->strategy, c->pipeline, c->plan));
    std::vector<TextColumn> columns{{"#", {}, 0}, {"strategy", {}, 0}, {"configuration", {}, 0},
                                    {"iteration", {}, 0}, {"compute", {}, 0}};
    for (std::size_t i = 0; i < shown.size(); ++i) {
        const auto& k = shown[i]->plan.cost;
        columns[0].cells.push_back(std::to_string(i + 1));
        columns[1].cells.push_back(planner::to_string(shown[i]->strategy));
        columns[2].cells.push_back(short_configuration(*shown[i]));
        columns[3].cells.push_back(seconds(k.iteration_s));
        columns[4].cells.push_back(seconds(k.fwd_compute_s + k.bwd_compute_s));
    }

    // Columns: the identity, then each time component any shown strategy has (they add up to the
    // iteration), then the rest. Left out first to fit the width: the sync in all, the pipelines'
    // cut and balance, the achieved rate; the communication kinds are then merged into one column.
    std::vector<TextColumn> kinds;
    for (const auto& component : time_components()) {
        if (component.key == "fwd_compute_s" || component.key == "bwd_compute_s") continue;
        const bool any = std::any_of(shown.begin(), shown.end(), [&](const auto* c) { return component.of(c->plan.cost) > 0; });
        if (!any && !t.wide) continue;
        std::string title = component.key == "sync_contention_s" ? "contention"
                            : component.key == "sync_exposed_s"  ? "exp. sync"
                            : component.key == "bubble_s"        ? "bubble"
                            : component.key == "redistribution_s" ? "redistrib."
                                                                  : component.label;
        TextColumn column{title, {}, 0};
        for (const auto* c : shown) column.cells.push_back(seconds(component.of(c->plan.cost)));
        (component.is_comm ? kinds : columns).push_back(std::move(column));
    }
    TextColumn sync_all{"grad sync", {}, 1}, memory{"memory", {}, 0}, rate{"model TFLOP/s", {}, 4},
        hardware_rate{"hw TFLOP/s", {}, 4},
        balance{"balance", {}, 3}, cut{"cut", {}, 2}, speedup{"vs batch", {}, 5};
    bool any_pipeline = false;
    for (std::size_t i = 0; i < shown.size(); ++i) {
        const auto* c = shown[i];
        const auto& k = c->plan.cost;
        sync_all.cells.push_back(seconds(k.sync_total_s));
        memory.cells.push_back(human_bytes(k.memory_bytes));
        rate.cells.push_back(k.iteration_s > 0 ? fixed(model_flops / k.iteration_s / 1e12, "%.3g") : "-");
        const double hardware = throughput(model, *c).hardware_flops_per_s;
        hardware_rate.cells.push_back(k.iteration_s > 0 ? fixed(hardware / 1e12, "%.3g") : "-");
        balance.cells.push_back(details[i].have ? fixed(details[i].balance, "%.2f") : "-");
        cut.cells.push_back(details[i].have ? human_bytes(details[i].cut_bytes) : "-");
        any_pipeline = any_pipeline || details[i].have;
        speedup.cells.push_back(batch_time > 0 ? fixed(batch_time / k.iteration_s, "%.2fx") : "-");
    }
    std::vector<TextColumn> all = {columns[0], columns[1], columns[2], columns[3], columns[4]};
    for (auto& k : kinds) all.push_back(k);
    for (std::size_t i = 5; i < columns.size(); ++i) all.push_back(columns[i]);
    for (auto* c : {&sync_all, &memory, &rate, &hardware_rate}) all.push_back(*c);
    if (any_pipeline || t.wide) {
        all.push_back(balance);
        all.push_back(cut);
    }
    if (batch_time > 0 || t.wide) all.push_back(speedup);
    std::vector<std::string> left_out;
    std::string table = fit_columns(all, width, left_out);
    if (width > 0 && longest_line(table) > static_cast<std::size_t>(width) && kinds.size() > 1) {
        // Still too wide: one communication column, the sum of the kinds and of the contention with
        // the gradient sync (backward transfers slowed by it).
        std::vector<TextColumn> merged = {columns[0], columns[1], columns[2], columns[3], columns[4]};
        TextColumn comm{"comm", {}, 0};
        for (const auto* c : shown)
            comm.cells.push_back(seconds(c->plan.cost.blocking_comm_s() + c->plan.cost.sync_contention_s));
        merged.push_back(comm);
        for (std::size_t i = 5; i < columns.size(); ++i)
            if (columns[i].title != "contention") merged.push_back(columns[i]);
        for (auto* c : {&sync_all, &memory, &rate, &hardware_rate}) merged.push_back(*c);
        if (any_pipeline) {
            merged.push_back(balance);
            merged.push_back(cut);
        }
        if (batch_time > 0) merged.push_back(speedup);
        left_out = {"communication by kind and contention (comm is their sum)"};
        table = fit_columns(merged, width, left_out);
        if (longest_line(table) > static_cast<std::size_t>(width)) {
            // Narrower still: everything but compute in one column.
            // A long 3-D label can leave no room for the compute column either: it goes before
            // non-compute (iteration and the label always stay).
            TextColumn compute = columns[4];
            compute.drop_order = 99;
            std::vector<TextColumn> narrow = {columns[0], columns[1], columns[2], columns[3], compute};
            TextColumn rest{"non-compute", {}, 100};  // the last to go (long pipeline labels)
            for (const auto* c : shown)
                rest.cells.push_back(seconds(c->plan.cost.iteration_s - c->plan.cost.fwd_compute_s -
                                             c->plan.cost.bwd_compute_s));
            narrow.push_back(rest);
            for (auto* c : {&sync_all, &memory, &rate, &hardware_rate}) narrow.push_back(*c);
            if (batch_time > 0) narrow.push_back(speedup);
            left_out = {"the parts of the non-compute time (communication, sync, bubble)"};
            table = fit_columns(narrow, width, left_out);
        }
    }
    out += table;
    if (!left_out.empty()) {
        std::string names;
        for (const auto& n : left_out) names += (names.empty() ? "" : ", ") + n;
        out += wrap("(left out to fit " + std::to_string(width) + " columns: " + names +
                        "; --wide shows every column, COLUMNS sets the width)",
                    width, 1);
    }
    if (batch_time == 0 && !t.wide) out += "(" + no_batch + " here: no \"vs batch\" column)\n";
    if (r.infeasible_count > 0) {
        out += "\ninfeasible (" + std::to_string(r.infeasible_count) + "):\n";
        int listed = 0;
        for (const auto& c : r.ranked)
            if (!c.plan.cost.feasible && listed++ < in.top) {
                const std::string config = short_configuration(c);
                out += wrap("  " + planner::to_string(c.strategy) + (config.empty() ? "" : " " + config) + ": " +
                                terminal_safe(c.plan.cost.reason),
                            width, 4);
            }
        if (listed > in.top) out += "  ... and " + std::to_string(listed - in.top) + " more\n";
    }
    if (const auto* best = r.best()) {
        const std::string config = short_configuration(*best);
        out += "\n" + wrap("best: " + planner::to_string(best->strategy) + (config.empty() ? "" : " " + config) +
                               (batch_time > 0 ? fixed(batch_time / best->plan.cost.iteration_s,
                                                       ", %.2fx faster than pure batch")
                                               : ", " + no_batch),
                           width, 2);
        out += best_plan_text(model, best->strategy, best->pipeline, best->plan, t);
    } else {
        out += "\nno feasible plan\n";
    }
    return out;
}

// The header of the CSV ranking and the keys of each JSON `ranked[]` entry (planner/README.md,
// "Machine-readable rankings"; docs/plan-ranking.schema.json).
std::vector<std::string> ranking_columns() {
    std::vector<std::string> columns{"rank"};
    for (const auto& key : config_keys()) columns.push_back(key);
    for (const char* key : {"label", "feasible", "iteration_s"}) columns.emplace_back(key);
    for (const auto& c : time_components()) columns.push_back(c.key);
    for (const char* key : {"sync_total_s", "memory_bytes", "memory_capacity_bytes", "model_flops_per_s_per_device",
                            "hardware_flops_per_s_per_device", "reason"})
        columns.emplace_back(key);
    return columns;
}

std::string plan_csv(const PlanReportInput& in) {
    std::string out = csv_row(ranking_columns());
    const std::int64_t batch = in.model->options().batch;
    int rank = 0;
    for (const auto& c : in.result->ranked) {
        const auto& k = c.plan.cost;
        std::vector<std::string> row{std::to_string(++rank)};
        for (auto& cell : candidate_config_cells(c, batch)) row.push_back(std::move(cell));
        row.push_back(c.label);
        row.push_back(k.feasible ? "true" : "false");
        row.push_back(fixed(k.iteration_s, "%.17g"));
        for (const auto& component : time_components()) row.push_back(fixed(component.of(k), "%.17g"));
        row.push_back(fixed(k.sync_total_s, "%.17g"));
        row.push_back(fixed(k.memory_bytes, "%.17g"));
        row.push_back(fixed(k.memory_capacity_bytes, "%.17g"));
        const Throughput rate = throughput(*in.model, c);
        row.push_back(fixed(rate.model_flops_per_s, "%.17g"));
        row.push_back(fixed(rate.hardware_flops_per_s, "%.17g"));
        row.push_back(k.reason);
        out += csv_row(row);
    }
    return out;
}

std::string plan_json(const PlanReportInput& in, const planner::Plan& best) {
    Json ranked = Json::array();
    const std::int64_t batch = in.model->options().batch;
    int rank = 0;
    for (const auto& c : in.result->ranked) {
        const auto& k = c.plan.cost;
        Json entry{{"rank", ++rank}};
        entry.update(candidate_config(c, batch));
        entry["label"] = c.label;
        entry["feasible"] = k.feasible;
        entry["iteration_s"] = k.iteration_s;
        for (const auto& component : time_components()) entry[component.key] = component.of(k);
        entry["sync_total_s"] = k.sync_total_s;
        entry["memory_bytes"] = k.memory_bytes;
        entry["memory_capacity_bytes"] = k.memory_capacity_bytes;
        const Throughput rate = throughput(*in.model, c);
        entry["model_flops_per_s_per_device"] = rate.model_flops_per_s;
        entry["hardware_flops_per_s_per_device"] = rate.hardware_flops_per_s;
        entry["reason"] = k.reason;
        entry["cost"] = planner::cost_to_json(k);  // the plan document's breakdown, memory parts included
        ranked.push_back(std::move(entry));
    }
    Json out{{"format", "dnnplan-ranking"},
             {"version", 2},
             {"ranked", ranked},
             {"feasible_count", in.result->feasible_count},
             {"infeasible_count", in.result->infeasible_count},
             {"pipeline_search", {{"configurations", in.result->pipeline_configurations},
                                  {"skipped", in.result->pipeline_skipped},
                                  {"over_memory", in.result->pipeline_over_memory}}},
             // null when nothing is feasible: there is no plan to write.
             {"best", in.result->best() ? planner::plan_to_json(best, *in.model) : Json(nullptr)}};
    return json_text(out, 2) + "\n";
}

std::string scored_plan_text(const planner::CostModel& model, const planner::Plan& plan, const TextOptions& t) {
    planner::Candidate c;
    c.strategy = plan.strategy;
    c.pipeline = plan.pipeline;
    // A Plan keeps no grid shape, only its label: the grid families are named by the label.
    const std::string config = planner::is_grid(plan.strategy) ? "" : short_configuration(c);
    std::string out = header(model, t) +
                      wrap("plan: " + planner::to_string(plan.strategy) +
                               (plan.label.empty() ? (config.empty() ? "" : " " + config) : " " + terminal_safe(plan.label)),
                           t.wide ? 0 : t.width, 2);
    return out + best_plan_text(model, plan.strategy, plan.pipeline, plan.scored, t);
}

}  // namespace dnnplan::reports
