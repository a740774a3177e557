// Text building blocks shared by the renderers: aligned tables, CSV quoting, and escaping of
// user-provided strings for terminals, Markdown and HTML.
#pragma once

#include <string>
#include <vector>

namespace dnnplan::reports {

// A table printed with aligned columns; numeric-looking cells are right-aligned.
struct TextTable {
    std::vector<std::string> header;
    std::vector<std::vector<std::string>> rows;
    std::string render() const;
};

// Control characters become \xNN so a crafted name cannot drive the terminal.
std::string terminal_safe(const std::string& text);
// One CSV cell, for every CSV dnnplan writes: control characters escaped as by terminal_safe; a
// text cell starting with =, +, -, @, tab or CR prefixed with ' (OWASP's rule against formula
// injection; a number such as -12 stays a number); RFC 4180 quoting when needed.
std::string csv_field(const std::string& text);
std::string csv_row(const std::vector<std::string>& fields);
// HTML and Markdown escaping; control characters other than newline (and tab in HTML) are shown
// as \xNN, as on the terminal.
std::string html_escape(const std::string& text);
std::string markdown_escape(const std::string& text);

}  // namespace dnnplan::reports
