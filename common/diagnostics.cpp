#include "diagnostics.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace dnnplan {

namespace {
std::string format_location(const std::string& file, const std::string& location, const std::string& message) {
    // Syntax errors carry "LINE:COL" and are written FILE:LINE:COL; pointers are "FILE: /ptr".
    if (!location.empty() && location.front() != '/') return file + ":" + location + ": " + message;
    if (location.empty()) return file + ": " + message;
    return file + ": " + location + ": " + message;
}

std::string describe_value(const Json& value) {
    if (value.is_string()) {
        std::string s = value.get<std::string>();
        if (s.size() > 40) s = s.substr(0, 37) + "...";
        return "\"" + s + "\"";
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
    if (ec || !fs::exists(status)) throw InputError(path, "", "no such file");
    if (fs::is_directory(status)) throw InputError(path, "", "is a directory, expected a file");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(path, "", "cannot be opened for reading");
    std::ostringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) throw InputError(path, "", "read error");
    return buffer.str();
}

Json parse_json_text(const std::string& text, const std::string& file) {
    try {
        return Json::parse(text);
    } catch (const Json::parse_error& e) {
        // nlohmann reports a byte offset; turn it into line:column (1-based) for editors.
        std::size_t offset = e.byte == 0 ? 0 : e.byte - 1;
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
        std::string what = e.what();
        // Keep nlohmann's explanation, drop its "[json.exception...] parse error at ..: " prefix.
        std::string detail = what;
        if (auto pos = what.find(": syntax error"); pos != std::string::npos)
            detail = what.substr(pos + 2);
        else if (auto pos2 = what.rfind(": "); pos2 != std::string::npos)
            detail = "syntax error: " + what.substr(pos2 + 2);
        if (text.find_first_not_of(" \t\r\n") == std::string::npos) detail = "syntax error: empty file, expected a JSON document";
        throw InputError(file, std::to_string(line) + ":" + std::to_string(column), detail);
    }
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
        if (!(std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e18))
            fail("expected an integer, got " + v.dump());
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
