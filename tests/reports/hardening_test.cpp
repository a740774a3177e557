// CSV formula injection and control characters (issue 19): one escaping rule for every CSV
// writer, and the same visible \xNN escapes in Markdown and HTML as on the terminal.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "reports/text.hpp"

using namespace dnnplan::reports;

TEST_CASE("CSV cells that a spreadsheet would run as formulas are prefixed with a quote", "[hardening]") {
    struct Case {
        std::string cell, written;
    };
    const std::vector<Case> cases{
        // OWASP: =, +, -, @, tab and carriage return start a formula.
        {"=1+1", "'=1+1"},
        {"+1+1", "'+1+1"},
        {"-2+3", "'-2+3"},
        {"@SUM(A1)", "'@SUM(A1)"},
        {"\tcmd", "'\\tcmd"},
        {"\rcmd", "'\\rcmd"},
        // Quoting still applies after the prefix: =HYPERLINK("a","b") has quotes and a comma.
        {"=HYPERLINK(\"a\",\"b\")", "\"'=HYPERLINK(\"\"a\"\",\"\"b\"\")\""},
        // Numbers stay numbers, ordinary text stays as it is.
        {"-12", "-12"},
        {"-1.5e-07", "-1.5e-07"},
        {"+3", "+3"},
        {"conv1", "conv1"},
        {"a,b", "\"a,b\""},
    };
    for (const auto& c : cases) {
        INFO(c.cell);
        CHECK(csv_field(c.cell) == c.written);
    }
}

TEST_CASE("control characters are shown, not passed on, in every format", "[hardening]") {
    const std::string evil = std::string("a\x1b]0;t\x07") + "b";
    CHECK(csv_field(evil) == "a\\x1b]0;t\\x07b");
    CHECK(terminal_safe(evil) == "a\\x1b]0;t\\x07b");
    CHECK(html_escape(evil) == "a\\x1b]0;t\\x07b");
    // Markdown also escapes its own punctuation ("]", ";" is plain).
    CHECK(markdown_escape(evil) == "a\\x1b\\]0;t\\x07b");
    CHECK(csv_field("line\nbreak") == "line\\nbreak");
}
