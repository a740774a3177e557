// Malformed network specs: one fixture per failure under tests/data/bad/net_*.json, each
// rejected with the exact one-line diagnostic "FILE: /json/pointer: what is wrong" (or
// "FILE:LINE:COL: ..." for syntax errors), and the loader's limits that keep any input cheap.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/diagnostics.hpp"
#include "networks/network.hpp"

using dnnplan::InputError;
using dnnplan::networks::load_network_file;
using dnnplan::networks::parse_network;
using Json = nlohmann::json;

namespace {

const std::string kBadDir = std::string(DNNPLAN_SOURCE_DIR) + "/tests/data/bad";

// The message after "FILE" for each fixture (the same table is in tests/cli/run_cli_tests.sh).
struct BadCase {
    const char* fixture;
    const char* after_file;
};
const BadCase kBadCases[] = {
    {"net_syntax.json", ":6:3: syntax error while parsing value - unexpected ']'; expected '[', '{', or a literal"},
    {"net_empty.json", ":1:1: syntax error: empty file, expected a JSON document"},
    {"net_not_object.json", ": /: expected a network object, got an array"},
    {"net_number_out_of_range.json", ":3:26: number 1e400 is out of range"},
    {"net_missing_layers.json", ": /: missing required field \"layers\""},
    {"net_unknown_field.json",
     ": /layers/0/kernal: unknown field \"kernal\" (valid fields: out_channels, kernel, stride, padding, dilation, "
     "groups, bias, name, kind or inputs)"},
    {"net_string_for_integer.json", ": /layers/0/out_channels: expected an integer, got \"64\""},
    {"net_unknown_kind.json",
     ": /layers/1/kind: unknown layer kind \"conv3d\" (valid kinds: conv2d, conv_transpose2d, linear, maxpool2d, "
     "avgpool2d, adaptive_avgpool2d, global_avgpool2d, batchnorm2d, layernorm, relu, leaky_relu, elu, gelu, sigmoid, "
     "tanh, silu, hardswish, dropout, flatten, reshape, softmax, add, concat, embedding, position_embedding, "
     "attention or upsample)"},
    {"net_unknown_dtype.json", ": /dtype: unknown value \"fp64\" (valid: fp32, fp16 or bf16)"},
    {"net_unknown_input.json",
     ": /layers/2/inputs/1: no layer named \"conv9\" (layers: input, conv1, conv2 or sum)"},
    {"net_unknown_input_in_block.json",
     ": /layers/0/layers/2/inputs/1: no layer named \"conv3\" (did you mean \"conv1\"?)"},
    {"net_cycle.json", ": /layers/1/inputs/1: reading \"relu2\" makes a cycle: sum -> conv2 -> relu2 -> sum"},
    {"net_reads_itself.json", ": /layers/0/inputs/1: layer \"sum\" reads itself"},
    {"net_linear_after_conv.json",
     ": /layers/1: linear acts on [F] or [S, F]; got [8, 30, 30] from layer \"conv1\" (add a flatten layer first)"},
    {"net_concat_spatial.json",
     ": /layers/2: concat inputs differ outside axis 0: [8, 32, 32] from layer \"a\" and [8, 16, 16] from layer "
     "\"b\""},
    {"net_kernel_too_large.json",
     ": /layers/0: kernel 9 is larger than the padded input height 7 (5 + 2x1 padding)"},
    {"net_kernel_too_large_in_block.json",
     ": /layers/0/layers/0: kernel 3 is larger than the padded input height 1 (1 + 2x0 padding) (in layer "
     "\"down.2.conv\")"},
    {"net_zero_size.json", ": /layers/0/out_channels: must be a positive integer, got 0"},
    {"net_duplicate_key.json", ": /layers/1/kernel: key \"kernel\" appears twice in the same object (keys must be unique)"},
    {"net_negative_size.json", ": /layers/0/kernel/1: must be a positive integer, got -3"},
    {"net_zero_input.json", ": /input/shape/1: must be a positive integer, got 0"},
    {"net_overflow_input.json",
     ": /input/shape: input shape [1000000000, 1000000000, 1000000000] has too many elements for 64-bit counts"},
    {"net_overflow_linear.json", ": /layers/0: counts overflow 64-bit integers (sizes too large)"},
    {"net_overflow_batch.json", ": /layers/0: counts for batch 4000000000000 overflow 64-bit integers"},
    {"net_integer_too_large.json",
     ": /layers/0/out_channels: integer 18446744073709551615 is too large (at most 9223372036854775807)"},
    {"net_duplicate_name.json", ": /layers/2/name: duplicate layer name \"conv1\" (first defined at /layers/0)"},
    {"net_reserved_input_name.json", ": /layers/0/name: the name \"input\" is reserved for the network's input"},
    {"net_add_shapes.json",
     ": /layers/2: add inputs have different shapes: [8, 32, 32] from layer \"conv1\" and [16, 32, 32] from layer "
     "\"conv2\""},
    {"net_groups.json", ": /layers/0: input channels 3 are not divisible by groups 2"},
    {"net_embedding_image.json",
     ": /layers/0: embedding reads the token input ({\"tokens\": S}), got [3, 32, 32] from layer \"input\""},
    {"net_tokens_to_linear.json", ": /layers/0: linear cannot read integer token ids; add an embedding layer first"},
    {"net_repeat_no_name.json", ": /layers/0: missing required field \"name\""},
    {"net_repeat_too_large.json",
     ": /layers/0: repeat block \"outer\" expands to 10000000000 layers, more than the limit of 100000"},
    {"net_too_many_inputs.json",
     ": /layers/0: repeat block \"wide\" expands to 1001000 input references, more than the limit of 1000000"},
    {"net_rank_too_large.json", ": /input/shape: expected at most 16 sizes, got 17"},
    {"net_name_too_long.json",
     ": /layers/0/layers/0/name: layer name \"blockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblock.0.blockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblockblock\" is longer than 256 characters"},
    {"net_repeat_too_deep.json",
     ": /layers/0/layers/0/layers/0/layers/0/layers/0/layers/0/layers/0/layers/0/layers/0/layers/0/layers/0/layers/0/"
     "layers/0/layers/0/layers/0/layers/0/layers/0: repeat blocks nest more than 16 levels deep"},
    {"net_tied_not_embedding.json", ": /layers/2/tied_to: layer \"proj\" is not an embedding of 100 x 32"},
    {"net_reshape_mismatch.json", ": /layers/0/shape: cannot reshape [3, 32, 32] from layer \"input\" to [-1, 7]"},
    {"net_pool_padding.json", ": /layers/0: padding 2 is more than half the kernel size 3"},
};

// The what() of the InputError that loading `path` throws, or a note that it did not throw.
std::string load_error(const std::string& path) {
    try {
        load_network_file(path);
    } catch (const InputError& e) {
        return e.what();
    }
    return "(no error)";
}

std::string parse_error(const Json& spec) {
    try {
        parse_network(spec, "inline.json");
    } catch (const InputError& e) {
        return e.what();
    }
    return "(no error)";
}

// A minimal valid spec around `layers`.
Json spec_with(const Json& layers, const Json& input = Json{{"shape", {4}}}) {
    return Json{{"name", "inline"}, {"input", input}, {"layers", layers}};
}

}  // namespace

TEST_CASE("every bad network fixture fails with its exact message", "[networks][bad]") {
    for (const auto& c : kBadCases) {
        std::string path = kBadDir + "/" + c.fixture;
        INFO(c.fixture);
        CHECK(load_error(path) == path + c.after_file);
    }
}

TEST_CASE("every net_*.json fixture has an expected message", "[networks][bad]") {
    std::set<std::string> listed;
    for (const auto& c : kBadCases) listed.insert(c.fixture);
    std::set<std::string> on_disk;
    for (const auto& entry : std::filesystem::directory_iterator(kBadDir)) {
        std::string name = entry.path().filename().string();
        if (name.rfind("net_", 0) == 0 && entry.path().extension() == ".json") on_disk.insert(name);
    }
    CHECK(listed == on_disk);
}

TEST_CASE("a missing file and a directory are reported on their path", "[networks][bad]") {
    std::string missing = kBadDir + "/net_does_not_exist.json";
    CHECK(load_error(missing) == missing + ": no such file");
    CHECK(load_error(kBadDir) == kBadDir + ": is a directory, expected a file");
    CHECK(load_error("/dev/null/x.json") == "/dev/null/x.json: no such file");
}

TEST_CASE("InputError keeps file, location and message apart", "[networks][bad]") {
    std::string path = kBadDir + "/net_zero_size.json";
    try {
        load_network_file(path);
        FAIL("no error");
    } catch (const InputError& e) {
        CHECK(e.file() == path);
        CHECK(e.location() == "/layers/0/out_channels");
        CHECK(e.message() == "must be a positive integer, got 0");
    }
}

TEST_CASE("a huge repeat fails at once, before expanding anything", "[networks][bad][limits]") {
    auto start = std::chrono::steady_clock::now();
    std::string message = load_error(kBadDir + "/net_repeat_too_large.json");
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(message.find("more than the limit of 100000") != std::string::npos);
    // It only multiplies counts: milliseconds (the old loader took 20 s and 5.7 GB to fail).
    CHECK(seconds < 1.0);
}

TEST_CASE("the layer limit is exact: 100,000 layers load, 100,001 do not", "[networks][limits]") {
    Json relu{{"kind", "relu"}};
    // 99,999 copies of one relu plus one more layer: exactly 100,000 (the input is not counted).
    Json at_limit = spec_with(Json::array({{{"name", "b"}, {"repeat", 99999}, {"layers", {relu}}}, relu}));
    auto network = parse_network(at_limit, "inline.json");
    CHECK(network.layers.size() == 100001);
    CHECK(network.layers.back().name == "relu_0");

    Json over = spec_with(Json::array({{{"name", "b"}, {"repeat", 99999}, {"layers", {relu}}}, relu, relu}));
    CHECK(parse_error(over) == "inline.json: /layers/2: the layers expand to more than the limit of 100000 layers");
}

TEST_CASE("blocks may nest 16 levels deep, not 17", "[networks][limits]") {
    auto nested = [](int depth) {
        Json body = Json::array({{{"kind", "relu"}}});
        for (int d = 0; d < depth; ++d) body = Json::array({{{"name", "b"}, {"repeat", 1}, {"layers", body}}});
        return spec_with(body);
    };
    auto ok = parse_network(nested(16), "inline.json");
    // Sixteen "b.0." prefixes then the relu's default name.
    std::string expected;
    for (int d = 0; d < 16; ++d) expected += "b.0.";
    CHECK(ok.layers.back().name == expected + "relu_0");
    CHECK(parse_error(nested(17)).find("repeat blocks nest more than 16 levels deep") != std::string::npos);
}

TEST_CASE("names from the input cannot break the one-line message", "[networks][bad]") {
    // A layer name with a newline and an escape character, defined twice.
    Json layers = Json::array({{{"name", "a\nb\x1b[31m"}, {"kind", "relu"}}, {{"name", "a\nb\x1b[31m"}, {"kind", "relu"}}});
    std::string message = parse_error(spec_with(layers));
    CHECK(message ==
          "inline.json: /layers/1/name: duplicate layer name \"a\\nb\\x1b[31m\" (first defined at /layers/0)");
    CHECK(message.find('\n') == std::string::npos);
}

TEST_CASE("a long cycle is shortened in the message", "[networks][bad]") {
    // l0 reads l11 (a forward reference); every other layer reads the one before: a 12-layer cycle.
    Json layers = Json::array();
    for (int i = 0; i < 12; ++i) {
        Json l{{"name", "l" + std::to_string(i)}, {"kind", "relu"}};
        if (i == 0) l["inputs"] = {"l11"};
        layers.push_back(l);
    }
    CHECK(parse_error(spec_with(layers)) ==
          "inline.json: /layers/0/inputs/0: reading \"l11\" makes a cycle: l0 -> l1 -> l2 -> l3 -> l4 -> ... (3 more) "
          "-> l8 -> l9 -> l10 -> l11 -> l0");
}

TEST_CASE("other malformed layers", "[networks][bad]") {
    CHECK(parse_error(spec_with(Json::array({{{"name", "x"}}}))) ==
          "inline.json: /layers/0: missing required field \"kind\" (or \"repeat\" for a block)");
    CHECK(parse_error(spec_with(Json::array({{{"kind", "relu"}, {"inputs", "input"}}}))) ==
          "inline.json: /layers/0/inputs: expected an array of layer names, got a string");
    CHECK(parse_error(spec_with(Json::array())) == "inline.json: /layers: expected at least one layer");
    CHECK(parse_error(spec_with(Json::array({{{"kind", "linear"}, {"out_features", 2.5}}}))) ==
          "inline.json: /layers/0/out_features: expected an integer, got 2.5");
    CHECK(parse_error(spec_with(Json::array({{{"kind", "linear"}, {"out_features", 4}, {"tied_to", "linear_0"}}}))) ==
          "inline.json: /layers/0/tied_to: a layer cannot be tied to itself");
    CHECK(parse_error(spec_with(Json::array({{{"name", "b"}, {"repeat", 0}, {"layers", {{{"kind", "relu"}}}}}}))) ==
          "inline.json: /layers/0/repeat: must be a positive integer, got 0");
    // Layer names in messages about an unknown reference of a big network: the closest one.
    Json many = Json::array();
    for (int i = 0; i < 20; ++i) many.push_back({{"name", "block" + std::to_string(i)}, {"kind", "relu"}});
    many.push_back({{"name", "sum"}, {"kind", "add"}, {"inputs", {"block3", "blok7"}}});
    CHECK(parse_error(spec_with(many)) ==
          "inline.json: /layers/20/inputs/1: no layer named \"blok7\" (did you mean \"block7\"?)");
    many.back()["inputs"] = {"block3", "zzz"};
    CHECK(parse_error(spec_with(many)) == "inline.json: /layers/20/inputs/1: no layer named \"zzz\"");
}

TEST_CASE("syntax errors point at line and column, number overflow too", "[networks][bad]") {
    auto syntax = [](const std::string& text) {
        try {
            dnnplan::parse_json_text(text, "t.json");
        } catch (const InputError& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    CHECK(syntax("{\n  \"a\": 1,\n  \"b\" 2\n}") ==
          "t.json:3:7: syntax error while parsing object separator - unexpected number literal; expected ':'");
    CHECK(syntax("  \n ") == "t.json:2:2: syntax error: empty file, expected a JSON document");
    CHECK(syntax("[1, -1e999]") == "t.json:1:5: number -1e999 is out of range");
    CHECK(syntax("{\"a\": 1} x") ==
          "t.json:1:10: syntax error while parsing value - invalid literal; last read: '1} x'; expected end of input");
}
