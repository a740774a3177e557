// Hardening of the shared input and output layer (common/diagnostics) and of the cluster
// constants (issue 19): duplicate JSON keys, inputs that are not regular files, the atomic writer
// against planted symlinks and FIFOs, and rates outside any real machine's range.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <functional>
#include <fstream>
#include <limits>
#include <string>

#include "clusters/cluster.hpp"
#include "common/diagnostics.hpp"

using namespace dnnplan;

namespace {

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const InputError& e) {
        return e.what();
    }
    return "";
}

// A scratch directory, removed at the end of the test.
struct Scratch {
    std::filesystem::path dir;
    Scratch() {
        char name[] = "/tmp/dnnplan-hardening.XXXXXX";
        dir = ::mkdtemp(name);
    }
    ~Scratch() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    std::string operator/(const std::string& name) const { return (dir / name).string(); }
    std::size_t entries() const {
        std::size_t n = 0;
        for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
        return n;
    }
};

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

Json valid_cluster() {
    return Json::parse(R"({"name": "tiny", "nodes": 4, "devices_per_node": 1,
      "device": {"name": "cpu", "peak_flops": {"fp32": 1e12}, "achievable_fraction": 0.5,
                 "memory_bytes": 1073741824, "memory_bandwidth_Bps": 1e11},
      "inter_node": {"bandwidth_Bps": 1e10, "latency_s": 1e-6, "topology": "crossbar"}})");
}

std::string cluster_error(const Json& spec) {
    return error_of([&] { clusters::parse_cluster(spec, "c.json"); });
}

}  // namespace

TEST_CASE("a key given twice is refused with its JSON pointer", "[hardening]") {
    CHECK(error_of([] { parse_json_text(R"({"a": 1, "a": 2})", "f.json"); }) ==
          "f.json: /a: key \"a\" appears twice in the same object (keys must be unique)");
    // Nested in arrays and objects; "~" and "/" in keys are escaped as RFC 6901 says.
    CHECK(error_of([] { parse_json_text(R"({"x": [0, {"y": {"a/b~": 1, "a/b~": 2}}]})", "f.json"); }) ==
          "f.json: /x/1/y/a~1b~0: key \"a/b~\" appears twice in the same object (keys must be unique)");
    // Equal keys in different objects are fine, and the document is unchanged.
    Json ok = parse_json_text(R"({"a": {"k": 1}, "b": {"k": 2}, "c": [{"k": 3}, {"k": 4}]})", "f.json");
    CHECK(ok["c"][1]["k"] == 4);
}

TEST_CASE("inputs that are not regular files are refused at once", "[hardening]") {
    Scratch s;
    REQUIRE(::mkfifo((s / "fifo").c_str(), 0600) == 0);
    // Opening a FIFO for reading would block until a writer came; it must not even wait.
    CHECK(error_of([&] { read_text_file(s / "fifo"); }) == s / "fifo" + ": is a FIFO (named pipe), expected a regular file");
    CHECK(error_of([&] { check_input_file(s / "fifo"); }) == s / "fifo" + ": is a FIFO (named pipe), expected a regular file");
    CHECK(error_of([&] { read_text_file("/dev/null"); }) == "/dev/null: is not a regular file");
    CHECK(error_of([&] { read_text_file(s.dir.string()); }) == s.dir.string() + ": is a directory, expected a file");
    CHECK(error_of([&] { read_text_file(s / "missing"); }) == s / "missing" + ": no such file");
}

TEST_CASE("the atomic writer cannot be redirected or hung", "[hardening]") {
    Scratch s;
    // A symlink at the target is replaced, its target untouched.
    { std::ofstream(s / "victim") << "ORIGINAL"; }
    std::filesystem::create_symlink("victim", s / "out.json");
    write_file_atomically(s / "out.json", "new\n");
    CHECK(slurp(s / "victim") == "ORIGINAL");
    CHECK_FALSE(std::filesystem::is_symlink(s / "out.json"));
    CHECK(slurp(s / "out.json") == "new\n");
    // A FIFO at the target is replaced, never opened.
    REQUIRE(::mkfifo((s / "fifo.json").c_str(), 0600) == 0);
    write_file_atomically(s / "fifo.json", "x");
    CHECK(std::filesystem::is_regular_file(s / "fifo.json"));
    // A name of NAME_MAX (255) bytes works: the temporary name does not grow with it.
    const std::string long_name = std::string(250, 'o') + ".json";
    write_file_atomically(s / long_name, "long");
    CHECK(slurp(s / long_name) == "long");
    // A read-only file stays read-only.
    { std::ofstream(s / "ro.json") << "old"; }
    std::filesystem::permissions(s / "ro.json", std::filesystem::perms::owner_read | std::filesystem::perms::group_read |
                                                    std::filesystem::perms::others_read);
    write_file_atomically(s / "ro.json", "new");
    struct stat st {};
    REQUIRE(::stat((s / "ro.json").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0444);
    // victim, out.json, fifo.json, the long name, ro.json: no temporary file is left.
    CHECK(s.entries() == 5);
    // Failures name the target, not a temporary file.
    CHECK(error_of([&] { write_file_atomically(s / "no/such/dir/x.json", "x"); }) ==
          s / "no/such/dir/x.json" + ": cannot be written: directory " + s / "no/such/dir" + " does not exist");
    CHECK(error_of([&] { write_file_atomically(s.dir.string(), "x"); }) ==
          s.dir.string() + ": is a directory, expected a file to write");
    CHECK(s.entries() == 5);
}

TEST_CASE("cluster rates outside any real machine's range are refused with the range", "[hardening][clusters]") {
    const double subnormal = 1e-320;
    REQUIRE(std::fpclassify(subnormal) == FP_SUBNORMAL);
    Json spec = valid_cluster();
    spec["device"]["achievable_fraction"] = subnormal;
    CHECK(cluster_error(spec).rfind("c.json: /device/achievable_fraction: must be between 0.001 and 1 (a fraction of peak), got ", 0) == 0);
    spec = valid_cluster();
    spec["inter_node"]["bandwidth_Bps"] = subnormal;
    CHECK(cluster_error(spec).rfind("c.json: /inter_node/bandwidth_Bps: must be between 1000 and 1e+15 bytes/s, got ", 0) == 0);
    spec = valid_cluster();
    spec["device"]["peak_flops"]["fp32"] = 1e-300;
    CHECK(cluster_error(spec) == "c.json: /device/peak_flops/fp32: must be between 1e+06 and 1e+18 FLOP/s, got 1e-300");
    spec = valid_cluster();
    spec["device"]["memory_bandwidth_Bps"] = 0;
    CHECK(cluster_error(spec) == "c.json: /device/memory_bandwidth_Bps: must be between 1e+06 and 1e+15 bytes/s, got 0");
    spec = valid_cluster();
    spec["inter_node"]["latency_s"] = 3600;
    CHECK(cluster_error(spec) == "c.json: /inter_node/latency_s: must be between 1e-10 and 1 s, got 3600");
    spec = valid_cluster();
    spec["inter_node"]["latency_s"] = std::numeric_limits<double>::quiet_NaN();  // only possible in memory
    CHECK(cluster_error(spec).rfind("c.json: /inter_node/latency_s: ", 0) == 0);
    // The bounds themselves are accepted.
    spec = valid_cluster();
    spec["device"]["achievable_fraction"] = 0.001;
    spec["inter_node"]["latency_s"] = 1;
    CHECK(cluster_error(spec).empty());
}
