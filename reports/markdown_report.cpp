// The Markdown form of the strategy report: the same tables as the HTML page, numbers shown the
// same way; the charts are only in the HTML page.
#include "reports/strategy_report.hpp"
#include "reports/text.hpp"

namespace dnnplan::reports {

namespace {

std::string cell_markdown(const Cell& cell, const Column& column) {
    if (cell.empty) return "-";
    if (cell.is_number) return format_cell_number(cell, column);
    // Our own labels contain no Markdown syntax; user strings are escaped (a layer named
    // "<script>" or "a|b" stays text and stays in its cell).
    return cell.user_text ? markdown_escape(cell.text) : cell.text;
}

std::string table_markdown(const ReportTable& t) {
    std::string out = "### " + t.title + "\n\n";
    if (!t.note.empty()) out += t.note + "\n\n";
    if (t.rows.empty()) return out + "(none)\n\n";
    std::string header = "|", rule = "|";
    for (const auto& c : t.columns) {
        if (c.data_only) continue;
        header += " " + c.label + " |";
        rule += c.unit == Unit::none ? " --- |" : " ---: |";
    }
    out += header + "\n" + rule + "\n";
    for (const auto& row : t.rows) {
        std::string line = "|";
        for (std::size_t i = 0; i < row.size() && i < t.columns.size(); ++i)
            if (!t.columns[i].data_only) {
                // Appended piecewise: GCC 12 warns falsely (-Wrestrict, PR 105329) on "literal" + string&&.
                line += ' ';
                line += cell_markdown(row[i], t.columns[i]);
                line += " |";
            }
        out += line + "\n";
    }
    return out + "\n";
}

}  // namespace

std::string report_markdown(const StrategyReport& report,
                            const std::vector<std::pair<std::string, std::string>>& chart_files) {
    std::string out = "# " + markdown_escape(report.title) + "\n\n";
    out += report.best_label.empty() ? "No strategy is feasible.\n\n"
                                     : "Best strategy: **" + report.best_label + "**.\n\n";
    if (chart_files.empty())
        out += "Charts: in the HTML form of this report (`dnnplan report ... --out report.html`).\n\n";
    for (const auto& [title, file] : chart_files) out += "![" + markdown_escape(title) + "](" + file + ")\n\n";
    auto table = [&](const std::string& id) {
        if (const auto* t = report.table(id)) out += table_markdown(*t);
    };
    out += "## Inputs\n\n";
    table("inputs");
    table("cluster_sources");
    out += "## Strategies\n\n";
    table("ranked");
    if (const auto* t = report.table("infeasible"); t && !t->rows.empty()) table("infeasible");
    if (report.table("best_plan_layers")) {
        out += "## Best plan: " + report.best_label + "\n\n";
        table("best_plan_layers");
    }
    out += "## Memory\n\n";
    table("memory");
    if (report.table("scaling")) {
        out += "## Scaling\n\n";
        table("scaling");
    }
    out += "## Predicted, simulated and measured\n\n";
    if (report.table("comparison")) {
        table("comparison");
        table("simulated_breakdown");
        table("simulated_links");
        table("measured_breakdown");
    } else {
        out += "No simulation or measurement given (`--simulated FILE`, `--measured FILE`).\n\n";
    }
    out += "## Formulas and assumptions\n\n";
    for (const auto& paragraph : formulas_and_assumptions()) out += "- " + paragraph + "\n";
    return out;
}

const std::vector<std::string>& formulas_and_assumptions() {
    static const std::vector<std::string> text{
        "Communication follows the alpha-beta model: a message of n bytes costs a + n b (latency a, inverse "
        "bandwidth b of the intra-node or inter-node link). Ring all-gather and reduce-scatter cost (p-1) a + "
        "(p-1)/p n b, ring all-reduce twice that; recursive doubling and halving, Rabenseifner's all-reduce, "
        "binomial trees and hierarchical (intra-node, then inter-node) algorithms are costed too, and each "
        "collective takes the cheapest for its group and size (Thakur, Rabenseifner and Gropp, IJHPCA 2005).",
        "Strategies: P = Pr x Pc processes, Pc splitting the batch and Pr the model (output channels or features) "
        "or the domain (height and width). Per layer with weights W, the integrated grid costs AG(B d_i / Pc, Pr) + "
        "AR(B d_(i-1) / Pc, Pr) + AR(|W_i| / Pr, Pc); Pr = 1 is pure batch, Pc = 1 pure model (Gholami, Azad, Jin, "
        "Keutzer and Buluc, SPAA 2018, arXiv 1712.04432).",
        "Model splits follow Megatron-LM's column (output features, co) and row (input features, ci) splits; "
        "attention splits its heads (Shoeybi et al., arXiv 1909.08053).",
        "Domain splits exchange halos of width floor(kernel/2) x dilation with two neighbours per split dimension, "
        "the input forward and the output gradient backward (ParaDL, Kahira et al., HPDC 2021; DistDL, Hewett and "
        "Grady, arXiv 2006.03108).",
        "Per-layer plans choose each anchor layer's layout by dynamic programming, with the cost of redistributing "
        "a tensor between consecutive layouts (an all-gather or an all-to-all, DistDL's repartition) on the edges; "
        "the chosen assignment is re-scored exactly.",
        "Compute: the local FLOPs divided by the device's peak rate times its achievable fraction (with "
        "--roofline, at least the bytes moved divided by the memory bandwidth).",
        "Iteration time = forward and backward compute + all blocking communication + the slowdown of backward "
        "communication that shares links with the overlapped gradient synchronisation + the exposed part of the "
        "weight-gradient synchronisation (+ the pipeline bubble for pipelines). With overlap, layer i's all-reduce "
        "starts when its backward pass is done, one at a time on the network; what runs past the end of the "
        "backward pass is exposed.",
        "Memory per process: the local shard of weights, gradients and optimizer state (fp32 momentum for SGD, two "
        "fp32 moments for Adam, an fp32 master copy in fp16/bf16), the activations kept for the backward pass and "
        "the largest communication buffer. A plan above the device memory is infeasible.",
        "Assumptions: one process per device, the whole machine to this job (no contention from other jobs), the "
        "same compute rate for every layer kind, costs added layer by layer. The cluster's numbers and their "
        "sources are listed above; the planner's README (planner/README.md) details every formula.",
    };
    return text;
}

}  // namespace dnnplan::reports
