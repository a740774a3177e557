// A strict XML well-formedness checker for the tests (elements, attributes, character and entity
// references, comments), written independently of the renderers it checks: the report's SVG must
// parse as XML, and no test dependency beyond Catch2 is needed for that.
#pragma once

#include <cctype>
#include <functional>
#include <set>
#include <string>

namespace dnnplan::test {

// "" when `text` is one well-formed XML element (surrounding whitespace allowed), else the problem
// and its offset.
inline std::string xml_problem(const std::string& text) {
    std::size_t i = 0;
    auto fail = [&](const std::string& what) { return what + " at offset " + std::to_string(i); };
    auto name_start = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':'; };
    auto name_char = [&](char c) {
        return name_start(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.';
    };
    auto space = [&] {
        while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    };
    auto name = [&]() -> std::string {
        std::size_t start = i;
        if (i >= text.size() || !name_start(text[i])) return "";
        while (i < text.size() && name_char(text[i])) ++i;
        return text.substr(start, i - start);
    };
    // At '&': a predefined entity or a character reference.
    auto reference = [&]() -> bool {
        std::size_t end = text.find(';', i);
        if (end == std::string::npos || end - i > 10) return false;
        std::string ref = text.substr(i + 1, end - i - 1);
        static const std::set<std::string> predefined{"amp", "lt", "gt", "quot", "apos"};
        bool ok = predefined.count(ref) != 0;
        if (!ok && ref.size() > 1 && ref[0] == '#') {
            bool hex = ref[1] == 'x';
            std::string digits = ref.substr(hex ? 2 : 1);
            ok = !digits.empty();
            for (char c : digits)
                ok = ok &&
                     (hex ? std::isxdigit(static_cast<unsigned char>(c)) : std::isdigit(static_cast<unsigned char>(c)));
        }
        if (ok) i = end + 1;
        return ok;
    };
    std::string problem;
    // Recursive descent over elements; depth is bounded by the report's structure.
    std::function<bool()> element = [&]() -> bool {
        if (i >= text.size() || text[i] != '<') return problem = fail("expected '<'"), false;
        ++i;
        std::string tag = name();
        if (tag.empty()) return problem = fail("bad element name"), false;
        std::set<std::string> attributes;
        while (true) {
            std::size_t before = i;
            space();
            if (i >= text.size()) return problem = fail("unterminated start tag"), false;
            if (text.compare(i, 2, "/>") == 0) {
                i += 2;
                return true;
            }
            if (text[i] == '>') {
                ++i;
                break;
            }
            if (i == before) return problem = fail("attributes must be separated by space"), false;
            std::string attribute = name();
            if (attribute.empty()) return problem = fail("bad attribute name"), false;
            if (!attributes.insert(attribute).second) return problem = fail("duplicate attribute " + attribute), false;
            space();
            if (i >= text.size() || text[i] != '=') return problem = fail("expected '='"), false;
            ++i;
            space();
            if (i >= text.size() || (text[i] != '"' && text[i] != '\'')) return problem = fail("unquoted value"), false;
            char quote = text[i++];
            while (i < text.size() && text[i] != quote) {
                if (text[i] == '<') return problem = fail("'<' in attribute value"), false;
                if (text[i] == '&') {
                    if (!reference()) return problem = fail("bad reference"), false;
                } else {
                    ++i;
                }
            }
            if (i >= text.size()) return problem = fail("unterminated attribute value"), false;
            ++i;
        }
        while (true) {  // content
            if (i >= text.size()) return problem = fail("unclosed <" + tag + ">"), false;
            if (text.compare(i, 4, "<!--") == 0) {
                std::size_t end = text.find("-->", i + 4);
                if (end == std::string::npos) return problem = fail("unterminated comment"), false;
                i = end + 3;
            } else if (text.compare(i, 2, "</") == 0) {
                i += 2;
                std::string closing = name();
                if (closing != tag) return problem = fail("</" + closing + "> closes <" + tag + ">"), false;
                space();
                if (i >= text.size() || text[i] != '>') return problem = fail("bad end tag"), false;
                ++i;
                return true;
            } else if (text[i] == '<') {
                if (!element()) return false;
            } else if (text[i] == '&') {
                if (!reference()) return problem = fail("bad reference"), false;
            } else {
                ++i;
            }
        }
    };
    space();
    if (!element()) return problem;
    space();
    if (i != text.size()) return fail("text after the root element");
    return "";
}

}  // namespace dnnplan::test
