// Kendall's tau, the --image option and the calibration's link fit on hand-made inputs (no MPI
// communication).
#include <cmath>
#include <cstdio>
#include <string>

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

    // The compute fit recovers its constants from per-layer times computed by hand for lenet5 at
    // batch 16 with sgemm peak 100 GFLOP/s, GEMM share 0.4, operands at 10 GB/s, elementwise and
    // pooling layers at 2 GB/s (the hand calculation of tests/planner/compute_test.cpp, "a
    // calibrated CPU rank"): conv1 155.61 us both ways (operand-bound), relu 301.06 / 451.58 us,
    // pool1 188.16 us both ways, conv2 forward 192.64 us (math-bound), fc1 forward 38.45 us.
    dnnplan::networks::Network lenet = load_network_at_image(lenet5, parse_image_size("32"));
    Calibration fit;
    fit.gemm_flops = 100e9;
    fit.memory_bandwidth_Bps = 40e9;  // the copy rate; the fit finds the operands' own rate
    fit.batch = 16;
    auto point = [&](const std::string& name, double fwd, double bwd) {
        const int index = lenet.find(name);
        fit.layers.push_back({"lenet5", name, lenet.layers[index].kind, index, fwd, bwd, 0, 0});
    };
    point("conv1", 1556056.0 / 10e9, 1556056.0 / 10e9);
    point("relu_0", 602112.0 / 2e9, 903168.0 / 2e9);
    point("pool1", 376320.0 / 2e9, 376320.0 / 2e9);
    point("conv2", 7705600.0 / 40e9, 0);
    point("fc1", 1537920.0 / 40e9, 0);
    fit_compute_to_layers(fit, {&lenet});
    check(std::abs(fit.gemm_fraction / 0.4 - 1) < 0.03, "fitted GEMM share");
    check(std::abs(fit.elementwise_bandwidth_Bps / 2e9 - 1) < 0.03, "fitted elementwise rate");
    check(std::abs(fit.gemm_operand_bandwidth_Bps / 10e9 - 1) < 0.03, "fitted operand rate");
    check(fit.layer_fit_points == 8 && fit.layer_fit_residual < 0.03, "compute fit residual of exact points");
    std::printf("%s\n", failures ? "report tests FAILED" : "report tests ok");
    return failures ? 1 : 0;
}
