// The strategy report: SVG that parses as XML, HTML numbers equal to the JSON's and to the
// planner's, escaping of hostile names, the result-file readers, and a reviewed golden report.
#include <catch2/catch.hpp>
#include <cmath>
#include <map>

#include "clusters/cluster.hpp"
#include "common/diagnostics.hpp"
#include "networks/network.hpp"
#include "planner/search.hpp"
#include "reports/candidate_text.hpp"
#include "reports/strategy_report.hpp"
#include "reports/svg_chart.hpp"
#include "reports/text.hpp"
#include "tests/reports/xml_check.hpp"

using namespace dnnplan;
using namespace dnnplan::reports;

namespace {

const std::string kSource = DNNPLAN_SOURCE_DIR;

// Everything a report needs, owning the network and cluster the CostModel refers to.
struct Run {
    networks::Network network;
    clusters::Cluster cluster;
    std::unique_ptr<planner::CostModel> model;
    planner::SearchResult result;
    std::vector<ScalingRun> scaling;

    Run(const std::string& net_file, const std::string& cluster_name, std::int64_t procs) {
        network = networks::load_network_file(net_file);
        cluster = clusters::load_cluster_file(kSource + "/clusters/" + cluster_name + ".json");
        planner::PlannerOptions options;
        options.procs = procs;
        options.batch = network.default_batch;
        options.dtype = network.dtype;
        model = std::make_unique<planner::CostModel>(network, cluster, options);
        result = planner::search(*model);
        for (std::int64_t p : scaling_procs(procs)) {
            planner::PlannerOptions o = options;
            o.procs = p;
            planner::CostModel m(network, cluster, o);
            scaling.push_back({p, planner::search(m)});
        }
    }
    ReportInput input(const std::string& net_source, const std::string& cluster_source) const {
        ReportInput in;
        in.model = model.get();
        in.result = &result;
        in.network_source = net_source;
        in.cluster_source = cluster_source;
        in.scaling = scaling;
        return in;
    }
};

std::vector<std::string> svgs_of(const std::string& html) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while ((at = html.find("<svg", at)) != std::string::npos) {
        std::size_t end = html.find("</svg>", at);
        REQUIRE(end != std::string::npos);
        out.push_back(html.substr(at, end + 6 - at));
        at = end;
    }
    return out;
}

// table id -> rows -> (key, exact value) of every numeric cell, read back from the HTML. Plain
// string scanning: libstdc++'s std::regex recurses per character and overflows the stack on a
// whole report.
std::map<std::string, std::vector<std::vector<std::pair<std::string, double>>>> html_numbers(const std::string& html) {
    std::map<std::string, std::vector<std::vector<std::pair<std::string, double>>>> out;
    auto between = [](const std::string& text, std::size_t from, const std::string& open, const std::string& close,
                      std::size_t& end) -> std::string {
        std::size_t start = text.find(open, from);
        if (start == std::string::npos) return end = std::string::npos, std::string();
        start += open.size();
        end = text.find(close, start);
        if (end == std::string::npos) return std::string();
        std::string inside = text.substr(start, end - start);
        end += close.size();
        return inside;
    };
    const std::string table_open = "<table id=\"t-";
    for (std::size_t at = html.find(table_open); at != std::string::npos; at = html.find(table_open, at)) {
        std::size_t id_end = html.find('"', at + table_open.size());
        std::string id = html.substr(at + table_open.size(), id_end - at - table_open.size());
        std::size_t body_start = html.find('>', id_end) + 1, body_end = html.find("</table>", body_start);
        std::string body = html.substr(body_start, body_end - body_start);
        at = body_end;
        auto& rows = out[id];
        std::size_t end = 0;
        for (std::string row = between(body, 0, "<tr>", "</tr>", end); end != std::string::npos;
             row = between(body, end, "<tr>", "</tr>", end)) {
            if (row.find("<th>") != std::string::npos) continue;
            rows.emplace_back();
            std::size_t cell = 0;
            for (std::string key = between(row, 0, "data-key=\"", "\"", cell); cell != std::string::npos;
                 key = between(row, cell, "data-key=\"", "\"", cell)) {
                std::size_t value_end = 0;
                std::string value = between(row, cell, "data-value=\"", "\"", value_end);
                rows.back().emplace_back(key, std::stod(value));
                cell = value_end;
            }
        }
    }
    return out;
}

std::string read(const std::string& path) { return read_text_file(path); }

}  // namespace

TEST_CASE("every SVG of the vgg16 report parses as XML", "[reports]") {
    Run run(kSource + "/networks/vgg16.json", "cori-knl", 64);
    std::string html = report_html(build_strategy_report(run.input("vgg16", "cori-knl")));
    auto svgs = svgs_of(html);
    // time chart, the best plan's Gantt chart, layout picture, memory chart, scaling time and efficiency
    REQUIRE(svgs.size() == 6);
    for (const auto& svg : svgs) CHECK(test::xml_problem(svg) == "");
    // The checker itself rejects what a browser's XML parser rejects.
    CHECK(test::xml_problem("<svg><text>a < b</text></svg>") != "");
    CHECK(test::xml_problem("<svg><text>AT&T</text></svg>") != "");
    CHECK(test::xml_problem("<svg a=\"1\" a=\"2\"/>") != "");
    CHECK(test::xml_problem("<svg><g></svg>") != "");
    CHECK(test::xml_problem("<svg x=\"&lt;&#39;&#x41;\"><t>&amp;</t><!-- c --></svg>") == "");
    // Nothing is fetched or run: no script, no external reference.
    CHECK(html.find("<script") == std::string::npos);
    CHECK(html.find("http://") == html.find("http://www.w3.org/2000/svg"));
    CHECK(html.find("https://") == std::string::npos);
}

TEST_CASE("numbers in the HTML equal those in the JSON and the planner's", "[reports]") {
    Run run(kSource + "/networks/lenet5.json", "cori-knl", 4);
    StrategyReport report = build_strategy_report(run.input("lenet5", "cori-knl"));
    auto html = html_numbers(report_html(report));
    Json json = Json::parse(report_json(report));

    std::size_t compared = 0;
    for (const auto& [id, table] : json.at("tables").items()) {
        REQUIRE(html.count(id));
        const auto& rows = table.at("rows");
        REQUIRE(html[id].size() == rows.size());
        const ReportTable* t = report.table(id);
        REQUIRE(t);
        // The HTML leaves out a time column that is 0 s in every row (named in a note).
        auto zero_everywhere = [&](const std::string& key) {
            if (t->columns[t->column(key)].unit != Unit::seconds) return false;
            for (const auto& row : rows)
                if (!row.at(key).is_number() || row.at(key).get<double>() != 0) return false;
            return true;
        };
        for (std::size_t r = 0; r < rows.size(); ++r) {
            std::size_t numeric = 0;  // the configuration fields are in CSV and JSON only
            for (const auto& [key, value] : rows[r].items())
                numeric += value.is_number() && !t->columns[t->column(key)].data_only && !zero_everywhere(key);
            CHECK(numeric == html[id][r].size());
            for (const auto& [key, value] : html[id][r]) {
                REQUIRE(rows[r].contains(key));
                CHECK(rows[r].at(key).get<double>() == value);  // exact: the HTML keeps 17 digits
                ++compared;
            }
        }
    }
    CHECK(compared > 100);

    // The ranked table is the planner's ranking, number for number.
    const auto& ranked = json.at("tables").at("ranked").at("rows");
    std::size_t feasible = 0;
    for (const auto& c : run.result.ranked) {
        if (!c.plan.cost.feasible) continue;
        const auto& row = ranked.at(feasible++);
        CHECK(row.at("iteration_s").get<double>() == c.plan.cost.iteration_s);
        CHECK(row.at("halo_s").get<double>() == c.plan.cost.comm(planner::CommKind::halo));
        CHECK(row.at("memory_bytes").get<double>() == c.plan.cost.memory_bytes);
        // The stacked components are the whole iteration: the bar's length is the iteration time.
        double sum = 0;
        for (const char* key :
             {"fwd_compute_s", "bwd_compute_s", "all_reduce_s", "all_gather_s", "reduce_scatter_s", "all_to_all_s",
              "halo_s", "point_to_point_s", "redistribution_s", "sync_contention_s", "sync_exposed_s", "bubble_s",
              "optimizer_step_s"})
            sum += row.at(key).get<double>();
        CHECK(sum == Approx(row.at("iteration_s").get<double>()).epsilon(1e-12));
    }
    CHECK(feasible == ranked.size());
    CHECK(static_cast<int>(feasible) == run.result.feasible_count);

    // Network totals by hand (LeNet-5, batch 64): parameters 6*25+6 + 16*6*25+16 + 400*120+120 +
    // 120*84+84 + 84*10+10 = 156 + 2416 + 48120 + 10164 + 850 = 61706.
    // Forward FLOP per sample: MACs x 2 of conv1 (4704 outputs x 25) 235,200, conv2 (1600 x 150)
    // 480,000, fc1 96,000, fc2 20,160, fc3 1,680; plus one per bias (4704 + 1600 + 120 + 84 + 10),
    // per ReLU output (4704 + 1600 + 120 + 84) and per pooling window element (4704 + 1600):
    // 833,040 + 6,518 + 6,508 + 6,304 = 852,370; x 64 = 54,551,680.
    int found = 0;
    for (const auto& row : json.at("tables").at("inputs").at("rows")) {
        if (row.at("item") == "parameters") {
            CHECK(row.at("value").get<double>() == 61706);
            ++found;
        }
        if (row.at("item") == "forward FLOP") {
            CHECK(row.at("value").get<double>() == 54551680);
            ++found;
        }
        if (row.at("item") == "batch") {
            CHECK(row.at("value").get<double>() == 64);
            ++found;
        }
    }
    CHECK(found == 3);
}

TEST_CASE("the scaling study: P list and efficiency", "[reports]") {
    CHECK(scaling_procs(1) == std::vector<std::int64_t>{1});
    CHECK(scaling_procs(6) == std::vector<std::int64_t>{1, 2, 4, 6});
    CHECK(scaling_procs(512) == std::vector<std::int64_t>{1, 2, 4, 8, 16, 32, 64, 128, 256, 512});

    Run run(kSource + "/networks/lenet5.json", "cori-knl", 4);
    StrategyReport report = build_strategy_report(run.input("lenet5", "cori-knl"));
    const ReportTable* scaling = report.table("scaling");
    REQUIRE(scaling);
    // At P = 1 every family is the one-process plan: efficiency 1 and the same time T1.
    double t1 = run.scaling[0].result.best()->plan.cost.iteration_s;
    int p = scaling->column("procs"), t = scaling->column("iteration_s"), e = scaling->column("efficiency_fraction");
    for (const auto& row : scaling->rows) {
        double procs = row[p].number, time = row[t].number;
        if (procs == 1) CHECK(time == t1);
        CHECK(row[e].number == Approx(t1 / (procs * time)).epsilon(1e-12));
    }
    // The requested P's best family member is the main ranking's best.
    double best4 = run.result.best()->plan.cost.iteration_s, seen = 1e300;
    for (const auto& row : scaling->rows)
        if (row[p].number == 4) seen = std::min(seen, row[t].number);
    CHECK(seen == best4);
}

TEST_CASE("hostile network, layer and result names are shown as text", "[reports]") {
    Run run(kSource + "/tests/data/reports/evil_net.json", "cori-knl", 2);
    ReportInput in = run.input("tests/data/reports/evil_net.json", "cori-knl");
    in.measured = parse_measured_result(load_json_file(kSource + "/tests/data/reports/measured.json"), "measured.json");
    StrategyReport report = build_strategy_report(in);
    std::string html = report_html(report);
    CHECK(html.find("<script") == std::string::npos);
    CHECK(html.find("<img") == std::string::npos);
    CHECK(html.find("<b>evil") == std::string::npos);
    CHECK(html.find("<i>x</i>") == std::string::npos);
    CHECK(html.find("&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
    CHECK(html.find("&lt;b&gt;evil&lt;/b&gt; &amp; &quot;net&quot;") != std::string::npos);
    for (const auto& svg : svgs_of(html)) CHECK(test::xml_problem(svg) == "");

    std::string md = report_markdown(report);
    CHECK(md.find("<script>") == std::string::npos);
    CHECK(md.find("\\<script\\>alert(1)\\</script\\>") != std::string::npos);
    // A '|' in a name must not open a new table column.
    CHECK(md.find("fc\\|\\*pipe\\*") != std::string::npos);
    CHECK(md.find("\\[link\\](http://example.com)") != std::string::npos);  // no link: its brackets are escaped
}

TEST_CASE("simulated and measured result files are read tolerantly, errors name the pointer", "[reports]") {
    SimulatedResult s =
        parse_simulated_result(load_json_file(kSource + "/tests/data/reports/simulated.json"), "sim.json");
    CHECK(s.strategy == "batch");
    CHECK(s.predicted_s == 0.002);
    CHECK(s.simulated_s == 0.0025);
    CHECK(s.relative_difference == 0.25);
    // iteration, fwd compute and all-reduce are in both blocks; "feasible" and "events" are not times.
    REQUIRE(s.breakdown.size() == 3);

    MeasuredResult m =
        parse_measured_result(load_json_file(kSource + "/tests/data/reports/measured.json"), "meas.json");
    REQUIRE(m.plans.size() == 3);
    CHECK(m.plans[0].measured_s == 0.003);
    CHECK(m.plans[0].relative_error == 0.5);
    CHECK(m.plans[1].grid == "Pr=2 x Pc=2");
    CHECK(m.plans[1].relative_error == -0.25);  // given as {"iteration_s": ...}
    CHECK(!m.plans[2].relative_error);

    auto message = [](const std::string& file, bool simulated) -> std::string {
        try {
            Json j = load_json_file(kSource + "/tests/data/reports/" + file);
            if (simulated)
                parse_simulated_result(j, file);
            else
                parse_measured_result(j, file);
        } catch (const InputError& e) {
            return e.what();
        }
        return "";
    };
    CHECK(message("bad_measured.json", false) ==
          "bad_measured.json: /plans/0/measured: missing required field \"iteration_s\"");
    CHECK(message("bad_simulated.json", true) ==
          "bad_simulated.json: /simulated/iteration_s: expected a number, got \"fast\"");

    // Beside the prediction: one row per strategy, simulated and measured merged on "batch".
    Run run(kSource + "/networks/lenet5.json", "cori-knl", 4);
    ReportInput in = run.input("lenet5", "cori-knl");
    in.simulated = s;
    in.measured = m;
    StrategyReport report = build_strategy_report(in);
    const ReportTable* c = report.table("comparison");
    REQUIRE(c);
    REQUIRE(c->rows.size() == 3);
    CHECK(c->rows[0][0].text == "batch");
    CHECK(c->rows[0][c->column("simulated_s")].number == 0.0025);
    CHECK(c->rows[0][c->column("measured_s")].number == 0.003);
    CHECK(c->rows[1][c->column("simulated_s")].empty);
    std::string html = report_html(report);
    auto svgs = svgs_of(html);
    REQUIRE(svgs.size() == 7);  // plus the predicted-against-measured scatter
    CHECK(test::xml_problem(svgs.back()) == "");
}

TEST_CASE("the Inputs table shows each value in its unit (F-m9)", "[reports]") {
    Run run(kSource + "/networks/lenet5.json", "cori-knl", 4);
    std::string md = report_markdown(build_strategy_report(run.input("lenet5", "cori-knl")));
    // LeNet-5 at batch 64: forward FLOP 54,551,680 (hand sum in the test above) -> 54.6 M;
    // parameters 61,706 -> 61.7 K. cori-knl.json: peak 68 x 1.4 GHz x 64 = 6.0928e12 FLOP/s ->
    // 6.1 T; memory 103,079,215,104 B = 96 x 2^30 -> 96.0 GiB; Aries 8e9 B/s -> 8.0 G;
    // MCDRAM 4e11 B/s -> 400.0 G; achievable fraction 0.5 -> 50.0%.
    CHECK(md.find("| parameters | 61.7 K |") != std::string::npos);
    CHECK(md.find("| forward FLOP | 54.6 MFLOP |") != std::string::npos);
    CHECK(md.find("| batch | 64 |") != std::string::npos);
    CHECK(md.find("| peak rate (fp32) | 6.1 TFLOP/s |") != std::string::npos);
    CHECK(md.find("| device memory | 96.0 GiB |") != std::string::npos);
    CHECK(md.find("| memory bandwidth | 400.0 GB/s |") != std::string::npos);
    CHECK(md.find("| inter-node bandwidth per device | 8.0 GB/s |") != std::string::npos);
    CHECK(md.find("| achievable fraction of peak | 50.0% |") != std::string::npos);
    // One device per node: no intra-node link to show (it read "0 B/s").
    const std::size_t from = md.find("### Inputs");
    REQUIRE(from != std::string::npos);
    const std::string inputs = md.substr(from, md.find("### ", from + 4) - from);
    CHECK(inputs.find("intra-node") == std::string::npos);
    CHECK(inputs.find("6092800000000") == std::string::npos);
    CHECK(inputs.find("| FLOP") == std::string::npos);  // no unit column beside the units
    // JSON keeps the exact number and its unit.
    Json json = Json::parse(report_json(build_strategy_report(run.input("lenet5", "cori-knl"))));
    bool peak = false;
    for (const auto& row : json.at("tables").at("inputs").at("rows"))
        if (row.at("item") == "peak rate (fp32)") {
            peak = row.at("value").get<double>() == 6.0928e12 && row.at("unit") == "FLOP/s";
        }
    CHECK(peak);
    // Eight GPUs per node: the intra-node link is shown.
    Run dgx(kSource + "/networks/lenet5.json", "dgx-a100", 8);
    CHECK(report_markdown(build_strategy_report(dgx.input("lenet5", "dgx-a100"))).find("| intra-node bandwidth |") !=
          std::string::npos);
}

TEST_CASE("the lenet5 report equals the reviewed golden file", "[reports]") {
    // Regenerate after a reviewed change of the cost model with:
    //   build/dnnplan report --net lenet5 --procs 4 --out tests/data/reports/lenet5_cori-knl_p4.md
    Run run(kSource + "/networks/lenet5.json", "cori-knl", 4);
    std::string md = report_markdown(build_strategy_report(run.input("lenet5", "cori-knl")));
    CHECK(md == read(kSource + "/tests/data/reports/lenet5_cori-knl_p4.md"));
}

TEST_CASE("CSV and JSON carry every table with units in the column names", "[reports]") {
    Run run(kSource + "/networks/lenet5.json", "cori-knl", 4);
    StrategyReport report = build_strategy_report(run.input("lenet5", "cori-knl"));
    std::string csv = report_csv(report);
    Json json = Json::parse(report_json(report));
    for (const auto& t : report.tables) {
        CHECK(json.at("tables").contains(t.id));
        CHECK(csv.find("\n" + t.id + ",") != std::string::npos);
    }
    CHECK(csv.find("table,rank,strategy,pr,pc,family,tensor,stages,replicas,micro_batches,micro_batch_size,schedule,"
                   "interleave,zero,recompute,sequence_parallel,processes_per_node,iteration_s,") != std::string::npos);
    // The best plan's time is in the CSV with all its digits.
    const auto* best = run.result.best();
    char exact[40];
    std::snprintf(exact, sizeof exact, "%.17g", best->plan.cost.iteration_s);
    std::string strategy = candidate_label(*best);
    CHECK(csv.find("ranked,1," + csv_field(strategy) + ",") != std::string::npos);
    CHECK(csv.find(std::string(",") + exact + ",") != std::string::npos);
}

TEST_CASE("value formats", "[reports]") {
    CHECK(format_value(0.5, Unit::fraction) == "50.0%");
    CHECK(format_value(0.00001234, Unit::fraction) == "0.0012%");
    CHECK(format_value(2.5, Unit::ratio) == "2.50x");
    CHECK(format_value(61706, Unit::count) == "61706");
    CHECK(format_value(3.7e-6, Unit::none) == "3.7e-06");
}

TEST_CASE("the inputs table lists the training-software options of the plan's options", "[reports]") {
    // The rows come from PlannerOptions' enums: an explicit choice by its name, an unset gradient
    // accumulation as the dtype's default (planner::default_grad_accumulation: 16-bit -> the
    // main_grad hook, fp32 -> in the GEMM), fp32 with no mixed-precision step to name.
    networks::Network network = networks::load_network_file(kSource + "/networks/lenet5.json");
    clusters::Cluster cluster = clusters::load_cluster_file(kSource + "/clusters/dgx-a100.json");
    auto rows_of = [&](const planner::PlannerOptions& options, std::string* md, std::string* html, std::string* csv) {
        planner::CostModel model(network, cluster, options);
        planner::SearchResult result = planner::search(model);
        ReportInput in;
        in.model = &model;
        in.result = &result;
        in.network_source = "lenet5";
        in.cluster_source = "dgx-a100";
        StrategyReport report = build_strategy_report(in);
        *md = report_markdown(report);
        *html = report_html(report);
        *csv = report_csv(report);
        std::map<std::string, std::string> rows;
        const Json json = Json::parse(report_json(report));
        for (const auto& row : json.at("tables").at("inputs").at("rows"))
            if (row.at("value").is_string()) rows[row.at("item").get<std::string>()] = row.at("value").get<std::string>();
        return rows;
    };
    planner::PlannerOptions options;
    options.procs = 2;
    options.batch = 64;
    options.dtype = DType::fp16;
    options.grad_accumulation = planner::GradAccumulation::autograd_in_place;
    options.mixed_precision_step = planner::MixedPrecisionStep::deepspeed_zero;
    options.boundary_send = planner::PipelineBoundarySend::deepspeed;
    std::string md, html, csv;
    auto rows = rows_of(options, &md, &html, &csv);
    CHECK(rows["gradient accumulation"] == "autograd");
    CHECK(rows["mixed-precision optimizer step"] == "deepspeed");
    CHECK(rows["pipeline boundary sends"] == "deepspeed");
    CHECK(md.find("| gradient accumulation | autograd |") != std::string::npos);
    CHECK(md.find("| mixed-precision optimizer step | deepspeed |") != std::string::npos);
    CHECK(md.find("| pipeline boundary sends | deepspeed |") != std::string::npos);
    CHECK(csv.find("inputs,gradient accumulation,autograd,") != std::string::npos);
    CHECK(csv.find("inputs,pipeline boundary sends,deepspeed,") != std::string::npos);
    CHECK(html.find(">mixed-precision optimizer step<") != std::string::npos);

    options.grad_accumulation.reset();
    options.mixed_precision_step = planner::MixedPrecisionStep::megatron_lm;
    options.boundary_send = planner::PipelineBoundarySend::whole_tensor;
    rows = rows_of(options, &md, &html, &csv);
    CHECK(rows["gradient accumulation"] == "hook (default for fp16)");
    CHECK(rows["mixed-precision optimizer step"] == "megatron");
    CHECK(rows["pipeline boundary sends"] == "whole-tensor");

    options.dtype = DType::fp32;
    options.boundary_send = planner::PipelineBoundarySend::scatter_gather;
    rows = rows_of(options, &md, &html, &csv);
    CHECK(rows["gradient accumulation"] == "in-gemm (default for fp32)");
    CHECK(rows["mixed-precision optimizer step"] == "not used (fp32: one fused pass)");
    CHECK(rows["pipeline boundary sends"] == "scatter-gather");
}
