// Input diagnostics shared by every loader: one error type that names the file, the JSON
// pointer (or line:column) and the problem, and a reader that carries that context along.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace dnnplan {

using Json = nlohmann::json;

// Every user-facing input problem. what() is the one line the CLI prints:
// "FILE: /json/pointer: message" or "FILE:LINE:COL: message" for syntax errors.
class InputError : public std::runtime_error {
public:
    InputError(std::string file, std::string location, std::string message);
    const std::string& file() const { return file_; }
    const std::string& location() const { return location_; }
    const std::string& message() const { return message_; }

private:
    std::string file_;
    std::string location_;
    std::string message_;
};

// `text` made safe to print as one terminal line: newlines, tabs and other control characters
// (terminal escape sequences) become visible escapes. Names taken from the input (file paths,
// layer names, JSON keys) go through it before they reach a message or a text report.
std::string one_line(const std::string& text);

// Escapes one reference token of a JSON pointer (RFC 6901: '~' -> "~0", '/' -> "~1").
std::string json_pointer_token(std::string_view key);

// Every input file is read here, so every loader refuses the same things at once: a missing or
// unreadable file, a directory, a FIFO (which could block for ever), a device (which may never
// end), a socket. `fd` is an open descriptor of `path`; anything but a regular file is an InputError.
void check_regular_file(const std::string& path, int fd);
// For files another library reads (SimGrid platforms, ONNX): the checks of read_file_bytes, at once.
void check_input_file(const std::string& path);
// Reads a whole regular file of at most `max_bytes` (else InputError(path, too_large)), opening
// it without blocking and checking the open descriptor with check_regular_file.
std::string read_file_bytes(const std::string& path, std::size_t max_bytes, const std::string& too_large);

// Reads a whole text file (read_file_bytes); one larger than kMaxInputFileBytes is an InputError
// (no input may take unbounded time or memory).
constexpr std::size_t kMaxInputFileBytes = std::size_t{64} << 20;
std::string read_text_file(const std::string& path);

// Parses JSON text; a syntax error becomes "FILE:LINE:COL: syntax error: ...", a key given twice
// in one object "FILE: /pointer/key: duplicate key \"key\" ..." (the last would silently win).
Json parse_json_text(const std::string& text, const std::string& file);

// Reads and parses a JSON file.
Json load_json_file(const std::string& path);

// A JSON value with the file and pointer it came from, for reading specs with exact diagnostics.
class SpecNode {
public:
    SpecNode(const Json& value, std::string file, std::string pointer = "");

    const Json& json() const { return *value_; }
    const std::string& file() const { return file_; }
    const std::string& pointer() const { return pointer_; }
    std::string pointer_or_root() const { return pointer_.empty() ? "/" : pointer_; }

    [[noreturn]] void fail(const std::string& message) const;

    bool is_object() const { return value_->is_object(); }
    bool is_array() const { return value_->is_array(); }
    bool has(const std::string& key) const;
    SpecNode child(const std::string& key) const;  // requires presence
    SpecNode element(std::size_t index) const;
    std::size_t size() const { return value_->size(); }

    void expect_object(std::string_view what = "an object") const;
    void expect_array(std::string_view what = "an array") const;
    // Rejects keys not in `allowed`, naming the valid ones (typos in hand-written specs).
    void check_keys(const std::vector<std::string>& allowed) const;

    // Typed reads of this node.
    std::int64_t as_int(std::int64_t min = std::numeric_limits<std::int64_t>::min(),
                        std::int64_t max = std::numeric_limits<std::int64_t>::max()) const;
    double as_number(double min = -std::numeric_limits<double>::infinity(),
                     double max = std::numeric_limits<double>::infinity()) const;
    double as_positive_number() const;
    // A finite number in [min, max]; anything else (NaN, a subnormal, zero, a negative or an absurd
    // value) fails with the allowed range and `unit`: "must be between 1e+06 and 1e+18 FLOP/s, got 0".
    double as_number_within(double min, double max, const std::string& unit) const;
    std::string as_string() const;
    bool as_bool() const;

    // Typed reads of a member: required, or with a default.
    std::int64_t get_int(const std::string& key, std::int64_t min = std::numeric_limits<std::int64_t>::min(),
                         std::int64_t max = std::numeric_limits<std::int64_t>::max()) const;
    std::int64_t get_int_or(const std::string& key, std::int64_t fallback,
                            std::int64_t min = std::numeric_limits<std::int64_t>::min(),
                            std::int64_t max = std::numeric_limits<std::int64_t>::max()) const;
    double get_number(const std::string& key, double min = -std::numeric_limits<double>::infinity(),
                      double max = std::numeric_limits<double>::infinity()) const;
    double get_number_or(const std::string& key, double fallback,
                         double min = -std::numeric_limits<double>::infinity(),
                         double max = std::numeric_limits<double>::infinity()) const;
    std::string get_string(const std::string& key) const;
    std::string get_string_or(const std::string& key, const std::string& fallback) const;
    bool get_bool_or(const std::string& key, bool fallback) const;
    // One of `choices`; an unknown value lists the valid ones.
    std::string get_choice(const std::string& key, const std::vector<std::string>& choices) const;
    std::string get_choice_or(const std::string& key, const std::vector<std::string>& choices,
                              const std::string& fallback) const;

private:
    const Json* value_;
    std::string file_;
    std::string pointer_;
};

// "between 1e+06 and 1e+18 FLOP/s": a range written readably (%g, never 300 digits).
std::string describe_range(double min, double max, const std::string& unit = "");
// A number written readably (%g): 1e+06, 0.001, 1797693134862315708... never.
std::string format_number(double value);

// JSON text for output: like Json::dump, but a string that is not valid UTF-8 (a name from an ONNX
// file, a file path) has its bad bytes replaced by U+FFFD instead of throwing mid-output.
std::string json_text(const Json& value, int indent = -1);

// "a, b or c" for messages that list valid choices.
std::string join_choices(const std::vector<std::string>& choices);

// A short description of a JSON value's type for "expected X, got Y" messages.
std::string json_type_name(const Json& value);

}  // namespace dnnplan

namespace dnnplan {
// Writes a whole file or nothing: a temporary file with a random name, created exclusively
// (O_EXCL | O_NOFOLLOW) in the target's directory, renamed over the target once complete. An
// interrupted or failed run leaves the previous file intact; a symlink or FIFO planted at the
// target or at a guessed temporary name is never followed or opened; a replaced file keeps its
// permissions. Paths under /dev/ and /proc/ (/dev/stdout, /dev/null) are written in place, never
// replaced. Every output file of dnnplan is written here. Failure is an InputError on `path`.
void write_file_atomically(const std::string& path, const std::string& content);
}  // namespace dnnplan
