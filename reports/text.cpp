#include "text.hpp"

#include "common/diagnostics.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace dnnplan::reports {

namespace {
bool looks_numeric(const std::string& cell) {
    if (cell.empty()) return false;
    char c = cell.front();
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.';
}
}  // namespace

std::string TextTable::render() const {
    std::vector<std::size_t> width(header.size(), 0);
    auto widen = [&](const std::vector<std::string>& row) {
        for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
    };
    widen(header);
    for (const auto& row : rows) widen(row);
    std::string out;
    auto emit = [&](const std::vector<std::string>& row, bool is_header) {
        std::string line;
        for (std::size_t i = 0; i < width.size(); ++i) {
            std::string cell = i < row.size() ? row[i] : "";
            std::string pad(width[i] - std::min(width[i], cell.size()), ' ');
            bool right = !is_header && i > 0 && looks_numeric(cell);
            line += right ? pad + cell : cell + pad;
            if (i + 1 < width.size()) line += "  ";
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out += line + "\n";
    };
    emit(header, true);
    std::size_t total = 0;
    for (auto w : width) total += w + 2;
    out += std::string(total > 2 ? total - 2 : 0, '-') + "\n";
    for (const auto& row : rows) emit(row, false);
    return out;
}

std::string terminal_safe(const std::string& text) { return one_line(text); }

namespace {
// A number as the program writes one ("-12", "3.5e-07", "-inf"): strtod reads all of it.
bool is_number(const std::string& text) {
    if (text.empty()) return false;
    char* end = nullptr;
    std::strtod(text.c_str(), &end);
    return end == text.c_str() + text.size() && text.find_first_of(" \t\r\n") == std::string::npos;
}
}  // namespace

std::string csv_field(const std::string& text) {
    // OWASP's rule against formula injection: a text cell that a spreadsheet would run as a formula
    // (=, +, -, @, tab, CR first) gets a leading single quote; numbers stay numbers.
    const bool formula = !text.empty() && std::string("=+-@\t\r").find(text.front()) != std::string::npos && !is_number(text);
    // Control characters (terminal escapes, newlines) become visible \xNN, \n, as on the terminal.
    std::string cell = one_line(text);
    if (formula) cell.insert(cell.begin(), '\'');
    if (cell.find_first_of(",\"") == std::string::npos) return cell;
    std::string out = "\"";
    for (char c : cell) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

std::string csv_row(const std::vector<std::string>& fields) {
    std::string out;
    for (std::size_t i = 0; i < fields.size(); ++i) {
        if (i) out += ',';
        out += csv_field(fields[i]);
    }
    return out + "\n";
}

std::string html_escape(const std::string& text) {
    std::string out;
    for (char c : text) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&#39;";
                break;
            case '\n':
            case '\t':
                out += c;
                break;
            default:
                // Other control characters (ESC, BEL, ...) are shown, not passed on: \xNN.
                out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? one_line(std::string(1, c)) : std::string(1, c);
        }
    }
    return out;
}

std::string markdown_escape(const std::string& text) {
    // Only what can start markup where it stands (GFM): emphasis, code, links, table pipes, HTML,
    // and a heading, list or numbered-list marker at the start; "cori-knl" and "(x)" stay as typed.
    std::string out;
    bool digits_so_far = true;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        bool escape = std::string("\\`*_[]|<>&").find(c) != std::string::npos ||
                      (i == 0 && std::string("#+-").find(c) != std::string::npos) ||
                      ((c == '.' || c == ')') && digits_so_far && i > 0 && (i + 1 == text.size() || text[i + 1] == ' '));
        digits_so_far = digits_so_far && c >= '0' && c <= '9';
        if (escape) out += '\\';
        if (c == '\n' || c == '\r') {
            out += ' ';
            continue;
        }
        // Other control characters (ESC, BEL, ...) become \xNN, as on the terminal.
        out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? one_line(std::string(1, c)) : std::string(1, c);
    }
    return out;
}

}  // namespace dnnplan::reports
