#include "diagnostics.hpp"
#include "common/names.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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

namespace {
// The reason open(2) or stat(2) failed, as an InputError on `path`.
[[noreturn]] void fail_to_open(const std::string& path, int error) {
    // ENOENT is the common case; "File name too long" or "Permission denied" say more.
    if (error == ENOENT || error == ENOTDIR) throw InputError(path, "", "no such file");
    throw InputError(path, "", "cannot be read: " + std::string(std::strerror(error)));
}

// Closes a file descriptor when it goes out of scope.
struct FdCloser {
    int fd;
    ~FdCloser() {
        if (fd >= 0) ::close(fd);
    }
};
}  // namespace

void check_regular_file(const std::string& path, int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) fail_to_open(path, errno);
    if (S_ISDIR(st.st_mode)) throw InputError(path, "", "is a directory, expected a file");
    // A FIFO (named pipe, process substitution) can block for ever, a device (/dev/zero) never ends.
    if (S_ISFIFO(st.st_mode)) throw InputError(path, "", "is a FIFO (named pipe), expected a regular file");
    if (!S_ISREG(st.st_mode)) throw InputError(path, "", "is not a regular file");
}

namespace {
// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, before any check could
// look at it; the descriptor is checked with fstat, so no file can be swapped in between.
int open_regular_file(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) fail_to_open(path, errno);
    FdCloser closer{fd};
    check_regular_file(path, fd);
    int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    closer.fd = -1;
    return fd;
}
}  // namespace

void check_input_file(const std::string& path) { ::close(open_regular_file(path)); }

std::string read_file_bytes(const std::string& path, std::size_t max_bytes, const std::string& too_large) {
    int fd = open_regular_file(path);
    FdCloser closer{fd};
    std::string text;
    char buffer[1 << 16];
    for (;;) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EISDIR) throw InputError(path, "", "is a directory, expected a file");
            throw InputError(path, "", "read error: " + std::string(std::strerror(errno)));
        }
        if (n == 0) break;
        text.append(buffer, static_cast<std::size_t>(n));
        if (text.size() > max_bytes) throw InputError(path, "", too_large);
    }
    return text;
}

std::string read_text_file(const std::string& path) {
    return read_file_bytes(path, kMaxInputFileBytes,
                           "is larger than " + std::to_string(kMaxInputFileBytes >> 20) +
                               " MiB, too large for a specification file");
}

namespace {
// nlohmann's DOM builder, but a parse error (or a number too large for a double, which Json::parse
// reports without any position) is recorded with its byte offset instead of thrown, and a key given
// twice in one object (which nlohmann accepts, the last one winning) stops the parse with the
// key's JSON pointer.
class PositionedDomParser : public nlohmann::detail::json_sax_dom_parser<Json> {
    using Base = nlohmann::detail::json_sax_dom_parser<Json>;

public:
    using Base::Base;
    bool parse_error(std::size_t position, const std::string& token, const nlohmann::detail::exception& ex) {
        failed = true;
        byte = position;
        last_token = token;
        out_of_range = ex.id == 406;
        message = ex.what();
        return false;
    }
    // Values: each one advances the index of the array it is in (for its pointer).
    bool null() { return next(), Base::null(); }
    bool boolean(bool v) { return next(), Base::boolean(v); }
    bool number_integer(number_integer_t v) { return next(), Base::number_integer(v); }
    bool number_unsigned(number_unsigned_t v) { return next(), Base::number_unsigned(v); }
    bool number_float(number_float_t v, const string_t& s) { return next(), Base::number_float(v, s); }
    bool string(string_t& v) { return next(), Base::string(v); }
    bool binary(binary_t& v) { return next(), Base::binary(v); }
    bool start_object(std::size_t n) { return open(true), Base::start_object(n); }
    bool end_object() { return frames_.pop_back(), Base::end_object(); }
    bool start_array(std::size_t n) { return open(false), Base::start_array(n); }
    bool end_array() { return frames_.pop_back(), Base::end_array(); }
    bool key(string_t& k) {
        Frame& top = frames_.back();
        top.token = json_pointer_token(k);
        if (!top.keys.insert(k).second) {
            duplicate = true;
            duplicate_key = k;
            for (const Frame& f : frames_) duplicate_pointer += "/" + f.token;
            return false;
        }
        return Base::key(k);
    }

    bool failed = false;
    bool out_of_range = false;
    std::size_t byte = 0;
    std::string last_token;
    std::string message;
    bool duplicate = false;
    std::string duplicate_key, duplicate_pointer;

private:
    struct Frame {
        bool object;
        std::set<std::string> keys;  // an object's keys so far
        std::string token;           // the reference token of the value being read
        std::size_t count;           // an array's elements so far
    };
    void open(bool object) {
        next();
        frames_.push_back({object, {}, {}, 0});
    }
    void next() {
        if (!frames_.empty() && !frames_.back().object) frames_.back().token = std::to_string(frames_.back().count++);
    }
    std::vector<Frame> frames_;
};
}  // namespace

Json parse_json_text(const std::string& text, const std::string& file) {
    Json result;
    PositionedDomParser handler(result, false);
    bool ok = Json::sax_parse(text, &handler) && !handler.failed;
    if (ok) return result;
    if (handler.duplicate)
        throw InputError(file, handler.duplicate_pointer,
                         "key \"" + handler.duplicate_key + "\" appears twice in the same object (keys must be unique)");
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

std::string json_text(const Json& value, int indent) {
    return value.dump(indent, ' ', false, Json::error_handler_t::replace);
}

std::string join_choices(const std::vector<std::string>& choices) {
    std::string out;
    for (std::size_t i = 0; i < choices.size(); ++i) {
        if (i > 0) out += (i + 1 == choices.size()) ? " or " : ", ";
        out += choices[i];
    }
    return out;
}

namespace {
std::string lower_ascii(std::string s) {
    for (char& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}
std::size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = up;
        }
    }
    return row[b.size()];
}
}  // namespace

std::string same_name_ignoring_case(const std::string& typed, const std::vector<std::string>& names) {
    for (const auto& n : names)
        if (lower_ascii(n) == lower_ascii(typed)) return n;
    return "";
}

std::string closest_name(const std::string& typed_any_case, const std::vector<std::string>& names) {
    const std::string typed = lower_ascii(typed_any_case);
    std::string best;
    // At most a third of the word may differ (at least 2 edits), so "gpt3" finds "gpt3-175b" via
    // the containment rule below but "xyz" finds nothing.
    std::size_t best_distance = std::max<std::size_t>(2, typed.size() / 3) + 1;
    for (const auto& name : names) {
        const std::string c = lower_ascii(name);
        std::size_t d = edit_distance(typed, c);
        if (c.size() >= 2 && typed.size() >= 2 && (typed.find(c) != std::string::npos || c.find(typed) != std::string::npos))
            d = std::min<std::size_t>(d, 1);
        if (d < best_distance) {
            best_distance = d;
            best = name;
        }
    }
    return best;
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

double SpecNode::as_number_within(double min, double max, const std::string& unit) const {
    if (!value_->is_number()) fail("expected a number, got " + describe_value(*value_));
    double d = value_->get<double>();
    if (!(std::isfinite(d) && d >= min && d <= max))
        fail("must be " + describe_range(min, max, unit) + ", got " + value_->dump());
    return d;
}

std::string format_number(double value) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%g", value);
    return buffer;
}

std::string describe_range(double min, double max, const std::string& unit) {
    return "between " + format_number(min) + " and " + format_number(max) + (unit.empty() ? "" : " " + unit);
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

namespace dnnplan {
namespace {
// 16 random letters and digits: the name of a temporary file nobody can predict.
std::string random_suffix() {
    static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static std::mt19937_64 generator = [] {
        std::random_device device;
        std::seed_seq seed{device(), device(), device(), device(), static_cast<unsigned>(::getpid())};
        return std::mt19937_64(seed);
    }();
    std::uniform_int_distribution<std::size_t> pick(0, sizeof kAlphabet - 2);
    std::string out(16, 'x');
    for (char& c : out) c = kAlphabet[pick(generator)];
    return out;
}

[[noreturn]] void fail_to_write(const std::string& path, const std::string& temp, int error) {
    if (!temp.empty()) ::unlink(temp.c_str());
    if (error == ENOSPC || error == EDQUOT || error == EFBIG) throw InputError(path, "", "write failed (disk full?)");
    throw InputError(path, "", "write failed: " + std::string(std::strerror(error)));
}

// Writes all of `content` to `fd`; a failure removes `temp` (when not empty) and names `path`.
void write_all(int fd, const std::string& content, const std::string& path, const std::string& temp) {
    for (std::size_t done = 0; done < content.size();) {
        ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail_to_write(path, temp, errno);
        done += static_cast<std::size_t>(n);
    }
}
}  // namespace

void write_file_atomically(const std::string& path, const std::string& content) {
    namespace fs = std::filesystem;
    if (path.empty()) throw InputError("dnnplan", "", "the output file name is empty");
    // /dev/stdout, /dev/null, /proc/self/fd/N: system files, written in place, never replaced.
    if (path.rfind("/dev/", 0) == 0 || path.rfind("/proc/", 0) == 0) {
        int fd = ::open(path.c_str(), O_WRONLY | O_NOCTTY | O_CLOEXEC | O_APPEND);
        if (fd < 0) throw InputError(path, "", "cannot be written: " + std::string(std::strerror(errno)));
        FdCloser closer{fd};
        write_all(fd, content, path, "");
        return;
    }
    struct stat existing {};
    const bool exists = ::lstat(path.c_str(), &existing) == 0;
    if ((exists && S_ISDIR(existing.st_mode)) || path.back() == '/')
        throw InputError(path, "", "is a directory, expected a file to write");
    const fs::path parent = fs::path(path).parent_path();
    const std::string dir = parent.empty() ? "." : parent.string();
    // A random name, created exclusively (O_EXCL: never an existing file, FIFO or symlink, which
    // O_NOFOLLOW refuses too) in the target's directory, so the rename below is atomic. Its short
    // fixed length keeps it within NAME_MAX whatever the target's name.
    std::string temp;
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
        temp = (parent.empty() ? std::string() : dir + "/") + ".dnnplan-" + random_suffix() + ".tmp";
        fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        int error = errno;
        if (error == ENOENT || error == ENOTDIR)
            throw InputError(path, "", "cannot be written: directory " + dir + " does not exist");
        if (error == EACCES || error == EPERM || error == EROFS)
            throw InputError(path, "", "cannot be written: cannot create a file in directory " + dir + " (" +
                                           std::strerror(error) + ")");
        throw InputError(path, "", "cannot be written: " + std::string(std::strerror(error)));
    }
    FdCloser closer{fd};
    write_all(fd, content, path, temp);
    // Replacing a file keeps its permissions (a read-only file stays read-only).
    if (exists && S_ISREG(existing.st_mode)) ::fchmod(fd, existing.st_mode & 07777);
    if (::fsync(fd) != 0 && errno != EINVAL) fail_to_write(path, temp, errno);
    closer.fd = -1;
    if (::close(fd) != 0) fail_to_write(path, temp, errno);
    // rename replaces the directory entry itself: a symlink or FIFO planted at `path` is replaced,
    // never followed or opened.
    if (::rename(temp.c_str(), path.c_str()) != 0) {
        int error = errno;
        ::unlink(temp.c_str());
        throw InputError(path, "", "cannot be written: " + std::string(std::strerror(error)));
    }
}
}  // namespace dnnplan
