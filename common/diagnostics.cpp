#include "diagnostics.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace dnnplan {

std::string one_line(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (unsigned char c : text) {
        if (c == '\n')
            out += "\\n";
        else if (c == '\t')
            out += "\\t";
        else if (c == '\r')
            out += "\\r";
        else if (c < 0x20 || c == 0x7f) {
            char buffer[8];
            std::snprintf(buffer, sizeof buffer, "\\x%02x", c);
            out += buffer;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

namespace {

// Cuts a string to at most `limit` bytes without splitting a UTF-8 sequence.
std::string truncate_utf8(const std::string& s, std::size_t limit) {
    if (s.size() <= limit) return s;
    std::size_t cut = limit;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
    return s.substr(0, cut) + "...";
}

std::string format_location(const std::string& file, const std::string& location, const std::string& message) {
    // Syntax errors carry "LINE:COL" and are written FILE:LINE:COL; pointers (and option names such
    // as "--hosts") are written "FILE: /ptr".
    const bool position = !location.empty() && location.front() >= '0' && location.front() <= '9';
    std::string line = position           ? file + ":" + location + ": " + message
                       : location.empty() ? file + ": " + message
                                          : file + ": " + location + ": " + message;
    // A message quotes names from the input; a multi-megabyte name must not make a multi-megabyte line.
    constexpr std::size_t kMaxMessageBytes = 4096;
    return one_line(truncate_utf8(line, kMaxMessageBytes));
}

std::string describe_value(const Json& value) {
    if (value.is_string()) {
        return "\"" + truncate_utf8(value.get<std::string>(), 37) + "\"";
    }
    if (value.is_number() || value.is_boolean() || value.is_null()) return value.dump();
    return json_type_name(value);
}
}  // namespace

InputError::InputError(std::string file, std::string location, std::string message)
    : std::runtime_error(format_location(file, location, message)),
      file_(std::move(file)),
      location_(std::move(location)),
      message_(std::move(message)) {}

std::string json_pointer_token(std::string_view key) {
    std::string out;
    for (char c : key) {
        if (c == '~')
            out += "~0";
        else if (c == '/')
            out += "~1";
        else
            out += c;
    }
    return out;
}

std::string read_text_file(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    auto status = fs::status(path, ec);
    if (ec || !fs::exists(status)) {
        // ENOENT is the common case; "File name too long" or "Permission denied" say more.
        if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory)
            throw InputError(path, "", "cannot be read: " + ec.message());
        throw InputError(path, "", "no such file");
    }
    if (fs::is_directory(status)) throw InputError(path, "", "is a directory, expected a file");
    // Devices such as /dev/zero never end; pipes (process substitution) are fine and bounded below.
    if (!fs::is_regular_file(status) && !fs::is_fifo(status))
        throw InputError(path, "", "is not a regular file");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(path, "", "cannot be opened for reading");
    std::string text;
    char buffer[1 << 16];
    while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
        text.append(buffer, static_cast<std::size_t>(in.gcount()));
        if (text.size() > kMaxInputFileBytes)
            throw InputError(path, "", "is larger than " + std::to_string(kMaxInputFileBytes >> 20) +
                                           " MiB, too large for a specification file");
    }
    if (in.bad()) throw InputError(path, "", "read error");
    return text;
}

namespace {
// nlohmann's DOM builder, but a parse error (or a number too large for a double, which Json::parse
// reports without any position) is recorded with its byte offset instead of thrown.
class PositionedDomParser : public nlohmann::detail::json_sax_dom_parser<Json> {
public:
    using nlohmann::detail::json_sax_dom_parser<Json>::json_sax_dom_parser;
    bool parse_error(std::size_t position, const std::string& token, const nlohmann::detail::exception& ex) {
        failed = true;
        byte = position;
        last_token = token;
        out_of_range = ex.id == 406;
        message = ex.what();
        return false;
    }
    bool failed = false;
    bool out_of_range = false;
    std::size_t byte = 0;
    std::string last_token;
    std::string message;
};
}  // namespace

Json parse_json_text(const std::string& text, const std::string& file) {
    Json result;
    PositionedDomParser handler(result, false);
    bool ok = Json::sax_parse(text, &handler) && !handler.failed;
    if (ok) return result;
    // nlohmann reports the offset just past the offending character (syntax errors) or token
    // (numbers); turn it into line:column (1-based) of that character or token's start.
    std::size_t end = handler.byte;
    std::size_t offset = handler.out_of_range ? (end >= handler.last_token.size() ? end - handler.last_token.size() : 0)
                                              : (end == 0 ? 0 : end - 1);
    if (offset > text.size()) offset = text.size();
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < offset; ++i) {
        if (text[i] == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
    }
    std::string what = handler.message;
    std::string detail;
    if (handler.out_of_range) {
        detail = "number " + handler.last_token + " is out of range";
    } else if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
        detail = "syntax error: empty file, expected a JSON document";
    } else if (auto pos = what.find(": syntax error"); pos != std::string::npos) {
        // Keep nlohmann's explanation, drop its "[json.exception...] parse error at ..: " prefix.
        detail = what.substr(pos + 2);
    } else if (auto pos2 = what.rfind(": "); pos2 != std::string::npos) {
        detail = "syntax error: " + what.substr(pos2 + 2);
    } else {
        detail = "syntax error";
    }
    throw InputError(file, std::to_string(line) + ":" + std::to_string(column), detail);
}

Json load_json_file(const std::string& path) { return parse_json_text(read_text_file(path), path); }

std::string join_choices(const std::vector<std::string>& choices) {
    std::string out;
    for (std::size_t i = 0; i < choices.size(); ++i) {
        if (i > 0) out += (i + 1 == choices.size()) ? " or " : ", ";
        out += choices[i];
    }
    return out;
}

std::string json_type_name(const Json& value) {
    switch (value.type()) {
        case Json::value_t::null: return "null";
        case Json::value_t::object: return "an object";
        case Json::value_t::array: return "an array";
        case Json::value_t::string: return "a string";
        case Json::value_t::boolean: return "a boolean";
        case Json::value_t::number_integer:
        case Json::value_t::number_unsigned: return "an integer";
        case Json::value_t::number_float: return "a number";
        default: return "an unsupported value";
    }
}

SpecNode::SpecNode(const Json& value, std::string file, std::string pointer)
    : value_(&value), file_(std::move(file)), pointer_(std::move(pointer)) {}

void SpecNode::fail(const std::string& message) const { throw InputError(file_, pointer_or_root(), message); }

bool SpecNode::has(const std::string& key) const { return value_->is_object() && value_->contains(key); }

SpecNode SpecNode::child(const std::string& key) const {
    expect_object();
    auto it = value_->find(key);
    if (it == value_->end()) fail("missing required field \"" + key + "\"");
    return SpecNode(*it, file_, pointer_ + "/" + json_pointer_token(key));
}

SpecNode SpecNode::element(std::size_t index) const {
    return SpecNode((*value_)[index], file_, pointer_ + "/" + std::to_string(index));
}

void SpecNode::expect_object(std::string_view what) const {
    if (!value_->is_object()) fail("expected " + std::string(what) + ", got " + json_type_name(*value_));
}

void SpecNode::expect_array(std::string_view what) const {
    if (!value_->is_array()) fail("expected " + std::string(what) + ", got " + json_type_name(*value_));
}

void SpecNode::check_keys(const std::vector<std::string>& allowed) const {
    expect_object();
    for (const auto& [key, _] : value_->items()) {
        bool known = false;
        for (const auto& a : allowed) known = known || a == key;
        if (!known)
            SpecNode(*value_, file_, pointer_ + "/" + json_pointer_token(key))
                .fail("unknown field \"" + key + "\" (valid fields: " + join_choices(allowed) + ")");
    }
}

std::int64_t SpecNode::as_int(std::int64_t min, std::int64_t max) const {
    const Json& v = *value_;
    std::int64_t result = 0;
    if (v.is_number_unsigned()) {
        auto u = v.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            fail("integer " + v.dump() + " is too large (at most " + std::to_string(max) + ")");
        result = static_cast<std::int64_t>(u);
    } else if (v.is_number_integer()) {
        result = v.get<std::int64_t>();
    } else if (v.is_number_float()) {
        double d = v.get<double>();
        if (!(std::isfinite(d) && d == std::floor(d))) fail("expected an integer, got " + v.dump());
        if (d >= 9.0e18) fail("integer " + v.dump() + " is too large (at most " + std::to_string(max) + ")");
        if (d <= -9.0e18) fail("integer " + v.dump() + " is too small (at least " + std::to_string(min) + ")");
        result = static_cast<std::int64_t>(d);
    } else {
        fail("expected an integer, got " + describe_value(v));
    }
    if (result < min) {
        if (min == 1) fail("must be a positive integer, got " + std::to_string(result));
        if (min == 0) fail("must be a non-negative integer, got " + std::to_string(result));
        fail("must be at least " + std::to_string(min) + ", got " + std::to_string(result));
    }
    if (result > max) fail("must be at most " + std::to_string(max) + ", got " + std::to_string(result));
    return result;
}

double SpecNode::as_number(double min, double max) const {
    if (!value_->is_number()) fail("expected a number, got " + describe_value(*value_));
    double d = value_->get<double>();
    if (!std::isfinite(d)) fail("expected a finite number");
    if (d < min) fail("must be at least " + Json(min).dump() + ", got " + value_->dump());
    if (d > max) fail("must be at most " + Json(max).dump() + ", got " + value_->dump());
    return d;
}

double SpecNode::as_positive_number() const {
    double d = as_number();
    if (!(d > 0)) fail("must be a positive number, got " + value_->dump());
    return d;
}

std::string SpecNode::as_string() const {
    if (!value_->is_string()) fail("expected a string, got " + describe_value(*value_));
    return value_->get<std::string>();
}

bool SpecNode::as_bool() const {
    if (!value_->is_boolean()) fail("expected true or false, got " + describe_value(*value_));
    return value_->get<bool>();
}

std::int64_t SpecNode::get_int(const std::string& key, std::int64_t min, std::int64_t max) const {
    return child(key).as_int(min, max);
}

std::int64_t SpecNode::get_int_or(const std::string& key, std::int64_t fallback, std::int64_t min,
                                  std::int64_t max) const {
    return has(key) ? child(key).as_int(min, max) : fallback;
}

double SpecNode::get_number(const std::string& key, double min, double max) const {
    return child(key).as_number(min, max);
}

double SpecNode::get_number_or(const std::string& key, double fallback, double min, double max) const {
    return has(key) ? child(key).as_number(min, max) : fallback;
}

std::string SpecNode::get_string(const std::string& key) const { return child(key).as_string(); }

std::string SpecNode::get_string_or(const std::string& key, const std::string& fallback) const {
    return has(key) ? child(key).as_string() : fallback;
}

bool SpecNode::get_bool_or(const std::string& key, bool fallback) const {
    return has(key) ? child(key).as_bool() : fallback;
}

std::string SpecNode::get_choice(const std::string& key, const std::vector<std::string>& choices) const {
    SpecNode node = child(key);
    std::string value = node.as_string();
    for (const auto& c : choices)
        if (c == value) return value;
    node.fail("unknown value \"" + value + "\" (valid: " + join_choices(choices) + ")");
}

std::string SpecNode::get_choice_or(const std::string& key, const std::vector<std::string>& choices,
                                    const std::string& fallback) const {
    return has(key) ? get_choice(key, choices) : fallback;
}

}  // namespace dnnplan

#include <cstdio>
#include <unistd.h>

namespace dnnplan {
void write_file_atomically(const std::string& path, const std::string& content) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_directory(path, ec)) throw InputError(path, "", "is a directory, expected a file to write");
    std::string temp = path + ".tmp." + std::to_string(::getpid());
    {
        std::ofstream out(temp, std::ios::binary | std::ios::trunc);
        if (!out) throw InputError(path, "", "cannot be written (cannot create " + temp + ")");
        out << content;
        out.flush();
        if (!out) {
            out.close();
            fs::remove(temp, ec);
            throw InputError(path, "", "write failed (disk full?)");
        }
    }
    fs::rename(temp, path, ec);
    if (ec) {
        fs::remove(temp, ec);
        throw InputError(path, "", "cannot be written: " + ec.message());
    }
}
}  // namespace dnnplan
