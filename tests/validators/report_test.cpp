// Kendall's tau, the --image option and the calibration's link fit on hand-made inputs (no MPI
// communication).
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "validators/calibrate.hpp"
#include "validators/image.hpp"
#include "validators/validate.hpp"

using namespace dnnplan::validators;

int main() {
    int failures = 0;
    auto check = [&](bool ok, const char* what) {
        if (!ok) {
            std::printf("FAILED: %s\n", what);
            ++failures;
        }
    };
    // The calibration's typical step: per entry the median over steps. Entry 0 over {5, 1, 9} is
    // 5 (the fastest, 1, is what the old fit took); entry 1 over {2, 4, 100} is 4 (one
    // interrupted step does not move it). An even count averages the middle two: {1, 3, 5, 7} -> 4.
    {
        const std::vector<double> typical = median_per_layer({{5, 2}, {1, 4}, {9, 100}});
        check(typical.size() == 2 && typical[0] == 5 && typical[1] == 4, "median per layer over three steps");
        check(median_per_layer({{1}, {7}, {3}, {5}}) == std::vector<double>{4}, "median per layer over four steps");
        check(median_per_layer({}).empty(), "median per layer of no steps");
    }
    // Pairs of [1,2,3] vs [1,3,2]: (1,2) and (1,3) concordant, (2,3) discordant: (2 - 1) / 3.
    check(std::abs(kendall_tau({1, 2, 3}, {1, 3, 2}) - 1.0 / 3) < 1e-15, "tau of one swap in three");
    check(kendall_tau({1, 2, 3, 4}, {4, 3, 2, 1}) == -1.0, "tau of a reversed ranking");
    check(kendall_tau({1, 2, 3, 4}, {10, 20, 30, 40}) == 1.0, "tau of the same ranking");
    // A tie in one ranking counts as neither: [1,1,2] vs [1,2,3]: pairs (1,2) tie, (1,3) and (2,3)
    // concordant: 2 / 3.
    check(std::abs(kendall_tau({1, 1, 2}, {1, 2, 3}) - 2.0 / 3) < 1e-15, "tau with a tie");

    // --image: "16" is square, "16x24" is height x width, anything else an error.
    check(parse_image_size("16").height == 16 && parse_image_size("16").width == 16, "--image 16");
    check(parse_image_size("16x24").height == 16 && parse_image_size("16x24").width == 24, "--image 16x24");
    for (const char* bad : {"0", "x16", "16x", "-4", "16x16x3", "abc"}) {
        bool refused = false;
        try {
            parse_image_size(bad);
        } catch (const dnnplan::InputError& e) {
            refused = e.file() == "--image";
        }
        check(refused, (std::string("--image ") + bad + " refused").c_str());
    }
    // LeNet-5 at 16 x 16, by hand: conv1 (5x5, 6 ch) 12x12, pool1 6x6, conv2 (5x5, 16 ch) 2x2,
    // pool2 1x1, so fc1 reads 16 features (400 at 32 x 32) and has 16 * 120 + 120 = 2040 parameters.
    const std::string lenet5 = std::string(DNNPLAN_SOURCE_DIR) + "/networks/lenet5.json";
    dnnplan::networks::Network small = load_network_at_image(lenet5, parse_image_size("16"));
    bool found_fc1 = false;
    for (const auto& layer : small.layers) {
        if (layer.name == "conv2") check(layer.output_shape == dnnplan::networks::Shape{16, 2, 2}, "conv2 at 16x16");
        if (layer.name == "fc1") {
            found_fc1 = true;
            check(layer.params == 2040, "fc1 parameters at 16x16");
        }
    }
    check(found_fc1 && small.layers.front().output_shape == dnnplan::networks::Shape{1, 16, 16}, "input at 16x16");
    // At 12 x 12: conv1 8x8, pool1 4x4, and conv2's 5x5 kernel no longer fits: named.
    std::string message;
    try {
        load_network_at_image(lenet5, parse_image_size("12"));
    } catch (const dnnplan::InputError& e) {
        message = e.message();
    }
    check(message.find("layer conv2") != std::string::npos &&
              message.find("kernel 5 is larger than the padded input height 4") != std::string::npos,
          "--image 12 names conv2 and the reason");

    // The link fit recovers a link from points made with the cost model's own formulas: a halo
    // exchange on 2 ranks is one step, latency + bytes / bandwidth; with 2 us and 1 GB/s, 1 KiB
    // takes 2 + 1.024 = 3.024 us. The refined grid step is 1e5^(1/100)^(1/10) ~ 1.2% in latency.
    Calibration c;
    for (double bytes : {128.0, 1024.0, 8192.0, 65536.0, 524288.0})
        c.primitives.push_back({"halo exchange", dnnplan::planner::CommPattern::halo_exchange, dnnplan::clusters::Collective::all_reduce, 2, bytes, 2e-6 + bytes / 1e9, 0});
    check(std::abs(c.primitives[1].seconds - 3.024e-6) < 1e-15, "hand value of a 1 KiB halo");
    fit_link_to_primitives(c);
    check(std::abs(c.latency_s / 2e-6 - 1) < 0.02, "fitted latency");
    check(std::abs(c.bandwidth_Bps / 1e9 - 1) < 0.02, "fitted bandwidth");
    check(c.primitive_fit_residual < 0.02, "fit residual of exact points");

    // With all-reduces beside the halos and repartitions, the link is fitted to the all-reduces
    // (which send their buffers as they are) and the packing, per byte and per contiguous run, to
    // what is left of the halos and repartitions: a link of 1 us and 5 GB/s, packing 0.5 ns per
    // byte and 5 ns per run. A 1 KiB halo of width-2 columns (128 runs of 8 B) on 2 ranks:
    // transfer 1 + 1024 / 5e9 s = 1.2048 us; one message each way, 2 copies: 2 x 1024 x 0.5 ns +
    // 2 x 128 x 5 ns = 1.024 + 1.28 us; 3.5088 us in all. A repartition all-to-all of a 32 KiB
    // buffer per rank on 2 ranks in runs of 64 B: one 16 KiB message (256 runs) to the other,
    // pairwise 1 + 16384 / 5e9 s = 4.2768 us, packing 2 x 16384 x 0.5 ns + 2 x 256 x 5 ns =
    // 16.384 + 2.56 us; 23.2208 us in all.
    {
        using dnnplan::clusters::Collective;
        using dnnplan::planner::CommPattern;
        const dnnplan::clusters::LinkCost link{5e9, 1e-6};
        const dnnplan::clusters::KernelCost pack{0.5e-9, 5e-9};
        Calibration mixed;
        for (double bytes : {64.0, 4096.0, 65536.0, 1048576.0}) {
            PrimitivePoint q{"all-reduce", CommPattern::collective, Collective::all_reduce, 2, bytes, 0, 0};
            q.seconds = primitive_model(q, link);
            mixed.primitives.push_back(q);
        }
        for (double bytes : {128.0, 1024.0, 8192.0, 65536.0}) {
            PrimitivePoint q{"halo exchange", CommPattern::halo_exchange, Collective::all_reduce, 2, bytes, 0, 0, bytes / 8};
            q.seconds = primitive_model(q, link, pack);
            mixed.primitives.push_back(q);
        }
        for (double bytes : {4096.0, 32768.0, 262144.0}) {
            PrimitivePoint q{"repartition (all-to-all)", CommPattern::collective, Collective::all_to_all, 2, bytes, 0, 0,
                             bytes / 2 / 64};
            q.seconds = primitive_model(q, link, pack);
            mixed.primitives.push_back(q);
        }
        check(std::abs(mixed.primitives[5].seconds / 3.5088e-6 - 1) < 1e-12, "hand value of a packed 1 KiB halo");
        check(std::abs(mixed.primitives[9].seconds / 23.2208e-6 - 1) < 1e-12, "hand value of a packed repartition");
        fit_link_to_primitives(mixed);
        check(std::abs(mixed.latency_s / 1e-6 - 1) < 0.02, "link fitted to the all-reduces: latency");
        check(std::abs(mixed.bandwidth_Bps / 5e9 - 1) < 0.02, "link fitted to the all-reduces: bandwidth");
        const auto& fit = mixed.cpu_kernels.at(dnnplan::clusters::CpuKernel::halo_pack);
        check(std::abs(fit.cost.per_unit_s / 0.5e-9 - 1) < 0.05, "packing per byte");
        check(std::abs(fit.cost.per_call_s / 5e-9 - 1) < 0.05, "packing per run");
        check(fit.points == 7 && mixed.primitive_fit_residual < 0.02, "packed halos and repartitions: points and residual");
    }

    // The fit of the link's nonblocking_test_calls recovers N from points made by hand: an
    // all-reduce needing N = 3.5 calls has 1 - k / 3.5 of itself left after k calls (k = 0..6:
    // 1, 0.714.., 0.428.., 0.142.., 0, 0, 0), the same at every size; a point whose wait exceeds
    // the all-reduce alone (a descheduled peer) counts as 1 left. The grid step is 0.05.
    {
        std::vector<ProgressPoint> points;
        for (double bytes : {65536.0, 1048576.0})
            for (int k = 0; k <= 6; ++k) {
                const double left[] = {1, 2.5 / 3.5, 1.5 / 3.5, 0.5 / 3.5, 0, 0, 0};
                points.push_back({bytes, k, 200e-6, 200e-6 * left[k]});
            }
        check(std::abs(points[2].left() - 1.5 / 3.5) < 1e-12, "hand value: 2 of 3.5 calls leave 3/7");
        TestCallsFit f = fit_test_calls(points);
        check(std::abs(f.test_calls - 3.5) < 0.026 && f.rms_residual < 1e-9, "test calls fitted to exact points");
        points.push_back({65536.0, 0, 30e-6, 900e-6});  // 30x the all-reduce: left() clamps it to 1
        check(points.back().left() == 1 && std::abs(fit_test_calls(points).test_calls - 3.5) < 0.026,
              "a descheduled wait does not move the fit");
        // Every point left whole after 6 calls (no progress in calls at all): N at the grid's top.
        std::vector<ProgressPoint> stuck;
        for (int k = 0; k <= 6; ++k) stuck.push_back({65536.0, k, 30e-6, 30e-6});
        check(fit_test_calls(stuck).test_calls == 64, "no progress per call: the largest N");
        check(fit_test_calls({}).test_calls == 0, "no points: 0 (not measured)");
    }
    // The fit of nonblocking_call_share recovers the share from points made by hand: N = 3.5 calls
    // as above and share 0.4, so after k calls the process pays left + 0.4 (1 - left) of the
    // all-reduce alone (k = 0: 1; k = 2: 3/7 + 0.4 x 4/7 = 0.657..; k >= 4: 0.4). Grid step 1/200.
    {
        std::vector<ProgressPoint> points;
        for (int k = 0; k <= 6; ++k) {
            const double left = k >= 4 ? 0 : 1 - k / 3.5;
            ProgressPoint q{65536.0, k, 200e-6, 200e-6 * left};
            q.paid_s = 200e-6 * (left + 0.4 * (1 - left));
            points.push_back(q);
        }
        check(std::abs(points[2].paid() - (3.0 / 7 + 0.4 * 4.0 / 7)) < 1e-12, "hand value: paid after 2 calls");
        CallShareFit f = fit_call_share(points, 3.5);
        check(std::abs(f.call_share - 0.4) < 0.0026 && f.rms_residual < 1e-9, "call share fitted to exact points");
        check(fit_call_share({}, 3.5).call_share == 0, "no points: 0 (not measured)");
    }

    // The compute fit recovers the validator's kernel costs from per-layer times made by hand for
    // lenet5 at batches 16 and 4 (the unit of each kernel as planner/compute.cpp documents it):
    // sgemm peak 100 GFLOP/s at the GEMM share 0.4, operands at 10 GB/s, 2 us per BLAS call,
    // lowering copies 1 ns forward and 0.5 ns backward per element and 20 ns / 10 ns per row, relu 1 ns + 0.5 us forward and
    // 2 ns + 1 us backward, max pooling 0.5 ns + 0.2 us and 3 ns per window read, the loss 20 ns
    // per logit + 5 us.
    dnnplan::networks::Network lenet = load_network_at_image(lenet5, parse_image_size("32"));
    Calibration fit;
    fit.gemm_flops = 100e9;
    fit.memory_bandwidth_Bps = 40e9;  // the copy rate; the fit finds the operands' own rate
    fit.batch = 16;
    auto gemm = [](double m, double n, double k, double count) {
        return std::max(2 * m * n * k * count / 40e9, (m * k + k * n + m * n) * count * 4 / 10e9);
    };
    auto point = [&](const std::string& name, std::int64_t b, double fwd, double bwd) {
        const int index = lenet.find(name);
        fit.layers.push_back({"lenet5", name, lenet.layers[index].kind, index, fwd, bwd, 0, 0, b});
    };
    const std::string relu1 = lenet.layers[static_cast<std::size_t>(lenet.find("conv1")) + 1].name;
    for (double b : {16.0, 4.0}) {
        const auto batch = static_cast<std::int64_t>(b);
        // conv1 1x32x32 -> 6x28x28, 5x5: per sample W [6 x 25] x col [25 x 784]; copies: the
        // 1024-element padded input, 25 x 784 im2col, 6 x 784 bias; backward the bias gradient
        // and dW only (the first layer's input needs no gradient).
        // Rows copied (one lowering call each): the padding copy along H and along W, 1 channel
        // x 32 rows each: 64 per sample, 20 ns each; no backward rows.
        point("conv1", batch, gemm(6, 784, 25, b) + b * 2e-6 + b * (1024 + 25 * 784 + 6 * 784) * 1e-9 + b * 64 * 20e-9,
              gemm(6, 25, 784, b) + b * 2e-6 + b * 6 * 784 * 0.5e-9);
        point(relu1, batch, b * 4704 * 1e-9 + 0.5e-6, b * 4704 * 2e-9 + 1e-6);
        point("pool1", batch, b * 1176 * 4 * 0.5e-9 + 0.2e-6, b * 1176 * 4 * 3e-9);
        // conv2 6x14x14 -> 16x10x10: W [16 x 150] x col [150 x 100]; backward dW, dcol = W^T dy,
        // col2im and the 1176-element input gradient.
        // Rows: the padding copies 2 x 6 x 14 = 168 per sample each way (the adjoint's copies
        // backward), 20 ns forward and 10 ns backward.
        point("conv2", batch, gemm(16, 100, 150, b) + b * 2e-6 + b * (1176 + 150 * 100 + 1600) * 1e-9 + b * 168 * 20e-9,
              gemm(16, 150, 100, b) + gemm(150, 100, 16, b) + 2 * b * 2e-6 + b * (1600 + 150 * 100 + 1176) * 0.5e-9 +
                  b * 168 * 10e-9);
        // The linear layers' bias copy: one call (row) each way.
        point("fc1", batch, gemm(b, 120, 400, 1) + 2e-6 + b * 120 * 1e-9 + 20e-9,
              gemm(120, 400, b, 1) + gemm(b, 400, 120, 1) + 4e-6 + b * 120 * 0.5e-9 + 10e-9);
        // fc3 84 -> 10, the network's output: its forward carries the loss over b x 10 logits.
        point("fc3", batch, gemm(b, 10, 84, 1) + 2e-6 + b * 10 * 1e-9 + 20e-9 + b * 10 * 20e-9 + 5e-6,
              gemm(10, 84, b, 1) + gemm(b, 84, 10, 1) + 4e-6 + b * 10 * 0.5e-9 + 10e-9);
    }
    fit.copy_row_s = 20e-9;  // as measure_copy_rows would give them
    fit.copy_row_add_s = 10e-9;
    fit_compute_to_layers(fit, {&lenet});
    using dnnplan::clusters::CpuKernel;
    auto cost = [&](CpuKernel k) { return fit.cpu_kernels.count(k) ? fit.cpu_kernels.at(k).cost : dnnplan::clusters::KernelCost{-1, -1}; };
    auto near = [](double got, double want, double tolerance) { return std::abs(got / want - 1) < tolerance; };
    // Kernels a layer runs alone: exact (two sizes, two unknowns).
    check(near(cost(CpuKernel::relu_forward).per_unit_s, 1e-9, 1e-6) &&
              near(cost(CpuKernel::relu_forward).per_call_s, 0.5e-6, 1e-6),
          "fitted relu forward");
    check(near(cost(CpuKernel::relu_backward).per_unit_s, 2e-9, 1e-6) &&
              near(cost(CpuKernel::relu_backward).per_call_s, 1e-6, 1e-6),
          "fitted relu backward");
    check(near(cost(CpuKernel::pool_forward).per_unit_s, 0.5e-9, 1e-6) &&
              near(cost(CpuKernel::pool_forward).per_call_s, 0.2e-6, 1e-6),
          "fitted pool forward");
    check(near(cost(CpuKernel::pool_backward).per_unit_s, 3e-9, 1e-6) && cost(CpuKernel::pool_backward).per_call_s < 1e-12,
          "fitted pool backward (no per-call cost)");
    // The GEMM layers: the two rates on a refined log grid (steps of ~5% and ~6%), the linear
    // costs solved at the best grid point.
    std::printf("lowering per row %g / %g\n", cost(CpuKernel::lowering_forward).per_call_s, cost(CpuKernel::lowering_backward).per_call_s);
    std::printf("GEMM fit: fraction %g operand %g call %g lowering %g / %g loss %g + %g residual %g\n",
                fit.gemm_fraction, fit.gemm_operand_bandwidth_Bps, cost(CpuKernel::gemm_call).per_call_s,
                cost(CpuKernel::lowering_forward).per_unit_s, cost(CpuKernel::lowering_backward).per_unit_s,
                cost(CpuKernel::loss).per_unit_s, cost(CpuKernel::loss).per_call_s, fit.layer_fit_residual);
    check(near(fit.gemm_fraction, 0.4, 0.03), "fitted GEMM share");
    check(near(fit.gemm_operand_bandwidth_Bps, 10e9, 0.04), "fitted operand rate");
    check(near(cost(CpuKernel::gemm_call).per_call_s, 2e-6, 0.05), "fitted BLAS call cost");
    check(near(cost(CpuKernel::lowering_forward).per_unit_s, 1e-9, 0.05), "fitted lowering copy forward");
    check(near(cost(CpuKernel::lowering_backward).per_unit_s, 0.5e-9, 0.05), "fitted lowering copy backward");
    // The rows at the measured row costs (measure_copy_rows), written as the lowering's per call.
    check(cost(CpuKernel::lowering_forward).per_call_s == 20e-9 && cost(CpuKernel::lowering_backward).per_call_s == 10e-9,
          "lowering cost per row: the measured copy rows");
    check(near(cost(CpuKernel::loss).per_unit_s, 20e-9, 0.1) && near(cost(CpuKernel::loss).per_call_s, 5e-6, 0.1),
          "fitted loss beside fc3's GEMM");
    check(fit.layer_fit_points == 24 && fit.layer_fit_residual < 0.03, "compute fit residual of exact points");
    check(fit.cpu_kernels.count(CpuKernel::gelu_forward) == 0, "no gelu in lenet5: no gelu cost written");
    // The framework's untimed work, made by hand at 0.05 ns per byte and 0.2 us per kernel. lenet5's
    // kernels per step (planner/compute.cpp's count): forward one per layer but the flatten (a view)
    // and two for fc3 (its GEMM and the loss): 12; backward conv1 1 (no input gradient), conv2,
    // fc1, fc2 2 each, fc3 3, the relus and pools 1 each: 16; 28 in all. Elements per sample, the
    // outputs forward: 4704 + 4704 + 1176 + 1600 + 1600 + 400 + 400 + 120 + 120 + 84 + 84 + 10 =
    // 15002; the input gradients backward: 1024 + 4704 + 4704 + 1176 + 1600 + 1600 + 400 + 400 +
    // 120 + 120 + 84 + 84 = 16016; 31018 x 4 = 124072 B. Batch 16: 99.2576 + 5.6 = 104.8576 us;
    // batch 4: 24.8144 + 5.6 = 30.4144 us.
    fit.untimed = {{"lenet5", 16, 104.8576e-6, 0}, {"lenet5", 4, 30.4144e-6, 0}};
    fit_framework_overhead(fit, {&lenet});
    check(near(cost(CpuKernel::framework).per_unit_s, 0.05e-9, 1e-6) &&
              near(cost(CpuKernel::framework).per_call_s, 0.2e-6, 1e-6),
          "fitted framework overhead: per byte and per kernel");
    check(near(fit.untimed[0].model_s, 104.8576e-6, 1e-6) && fit.cpu_kernels.at(CpuKernel::framework).points == 2,
          "framework overhead: the step's model time");
    // The layers' fit does not see it: fitted again, the kernels are the same and the framework
    // entry is the fit's own.
    {
        Calibration again = fit;
        fit_compute_to_layers(again, {&lenet});
        check(again.cpu_kernels.at(CpuKernel::relu_forward).cost == fit.cpu_kernels.at(CpuKernel::relu_forward).cost,
              "the layers' fit beside a framework entry");
    }
    // The point-to-point message fit: one-way ping-pong times made by hand from 3 us and 2 GB/s,
    // t = 3e-6 + n / 2e9: 4 KiB 5.048 us, 64 KiB 35.768 us, 1 MiB 527.288 us, 4 MiB 2100.152 us;
    // 512 B (below the 4 KiB eager switch) and 16 MiB are outside the fitted range, so their
    // times (10x too slow here) must not move it. Exact points: latency 3 us, 2 GB/s, residual 0.
    {
        Calibration m;
        for (double bytes : {512.0, 4096.0, 65536.0, 1048576.0, 4194304.0, 16777216.0}) {
            const bool fitted = bytes >= 4096 && bytes <= 4194304;
            m.point_to_point.push_back({bytes, (3e-6 + bytes / 2e9) * (fitted ? 1 : 10), 0, 0});
        }
        check(std::abs(m.point_to_point[3].seconds - 527.288e-6) < 1e-15, "hand value of a 1 MiB message");
        fit_message_link(m);
        check(m.message_fit_points == 4, "message fit: the 4 points in 4 KiB .. 4 MiB");
        check(std::abs(m.message.latency_s / 3e-6 - 1) < 1e-6, "message fit: latency");
        check(std::abs(m.message.bandwidth_Bps / 2e9 - 1) < 1e-9, "message fit: bandwidth");
        check(m.message_fit_residual < 1e-9, "message fit: residual of exact points");
        // 4 KiB in 1 us and 1 MiB in 512 us: the line through both has latency
        // 1 - 4096 x 511 / 1044480 = -1.004 us, so the fit goes through the origin: rows
        // n / t = 4.096e9 and 2.048e9, slope (4.096e9 + 2.048e9) / (4.096e9^2 + 2.048e9^2)
        // = 6.144e9 / 20.97152e18, bandwidth 20.97152e18 / 6.144e9 = 1.024e10 / 3 B/s.
        Calibration z;
        z.point_to_point = {{4096, 1e-6, 0, 0}, {1048576, 512e-6, 0, 0}};
        fit_message_link(z);
        check(z.message.latency_s == 0 && std::abs(z.message.bandwidth_Bps / (1.024e10 / 3) - 1) < 1e-12,
              "message fit: a negative latency refitted through the origin");
        Calibration none;
        none.point_to_point = {{512, 1e-6, 0, 0}, {8192, 4e-6, 0, 0}};
        fit_message_link(none);
        check(none.message.bandwidth_Bps == 0 && none.message_fit_points == 1, "message fit: one point is no fit");
    }
    std::printf("%s\n", failures ? "report tests FAILED" : "report tests ok");
    return failures ? 1 : 0;
}
