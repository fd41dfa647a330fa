// A tiny XML well-formedness checker for tests: one root element, matching
// tags, quoted unique attributes, known entities, no stray '<' or '&'.
// Collects element names and attribute values so tests can look inside.
#pragma once
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace stk::test {

struct XmlElement {
  std::string name;
  std::map<std::string, std::string> attrs;  // values with entities decoded
  std::string text;                          // direct text, entities decoded
};

class XmlCheck {
 public:
  // True if `doc` is well-formed; otherwise error() says where and why.
  bool parse(const std::string& doc) {
    s_ = doc;
    i_ = 0;
    elements_.clear();
    std::vector<size_t> open;  // indexes into elements_
    bool root_seen = false;
    if (s_.compare(0, 5, "<?xml") == 0) {
      size_t e = s_.find("?>");
      if (e == std::string::npos) return fail("unterminated XML declaration");
      i_ = e + 2;
    }
    while (i_ < s_.size()) {
      if (s_[i_] == '<') {
        if (s_.compare(i_, 4, "<!--") == 0) {
          size_t e = s_.find("-->", i_ + 4);
          if (e == std::string::npos) return fail("unterminated comment");
          i_ = e + 3;
        } else if (s_.compare(i_, 2, "</") == 0) {
          i_ += 2;
          std::string name;
          if (!read_name(&name)) return fail("bad closing tag name");
          skip_space();
          if (i_ >= s_.size() || s_[i_] != '>') return fail("closing tag </" + name + " without '>'");
          ++i_;
          if (open.empty() || elements_[open.back()].name != name) {
            return fail("</" + name + "> does not close " + (open.empty() ? "anything" : "<" + elements_[open.back()].name + ">"));
          }
          open.pop_back();
        } else {
          ++i_;
          XmlElement el;
          if (!read_name(&el.name)) return fail("bad tag name");
          if (open.empty() && root_seen) return fail("second root element <" + el.name + ">");
          root_seen = true;
          for (;;) {
            const bool had_space = skip_space();
            if (i_ >= s_.size()) return fail("unterminated tag <" + el.name);
            if (s_[i_] == '>' || s_.compare(i_, 2, "/>") == 0) break;
            if (!had_space) return fail("attributes of <" + el.name + "> need spaces between them");
            std::string an, av;
            if (!read_name(&an)) return fail("bad attribute name in <" + el.name + ">");
            skip_space();
            if (i_ >= s_.size() || s_[i_] != '=') return fail("attribute " + an + " without '='");
            ++i_;
            skip_space();
            if (i_ >= s_.size() || (s_[i_] != '"' && s_[i_] != '\'')) return fail("attribute " + an + " not quoted");
            const char q = s_[i_++];
            size_t e = s_.find(q, i_);
            if (e == std::string::npos) return fail("unterminated attribute " + an);
            if (!decode(s_.substr(i_, e - i_), &av)) return fail("bad entity or '<' in attribute " + an);
            i_ = e + 1;
            if (el.attrs.count(an)) return fail("duplicate attribute " + an + " in <" + el.name + ">");
            el.attrs[an] = av;
          }
          const bool self_closing = s_[i_] == '/';
          i_ += self_closing ? 2 : 1;
          elements_.push_back(el);
          if (!self_closing) open.push_back(elements_.size() - 1);
        }
      } else {
        size_t e = s_.find('<', i_);
        if (e == std::string::npos) e = s_.size();
        std::string text;
        if (!decode(s_.substr(i_, e - i_), &text)) return fail("bad entity in text");
        bool blank = text.find_first_not_of(" \t\r\n") == std::string::npos;
        if (open.empty() && !blank) return fail("text outside the root element");
        if (!open.empty()) elements_[open.back()].text += text;
        i_ = e;
      }
    }
    if (!open.empty()) return fail("<" + elements_[open.back()].name + "> is never closed");
    if (!root_seen) return fail("no root element");
    return true;
  }

  const std::string& error() const { return error_; }
  const std::vector<XmlElement>& elements() const { return elements_; }

  std::vector<const XmlElement*> find(const std::string& name) const {
    std::vector<const XmlElement*> out;
    for (const XmlElement& e : elements_) {
      if (e.name == name) out.push_back(&e);
    }
    return out;
  }

 private:
  bool fail(const std::string& why) {
    error_ = "at byte " + std::to_string(i_) + ": " + why;
    return false;
  }
  bool skip_space() {
    const size_t start = i_;
    while (i_ < s_.size() && std::isspace(uint8_t(s_[i_]))) ++i_;
    return i_ > start;
  }
  bool read_name(std::string* out) {
    const size_t start = i_;
    while (i_ < s_.size() && (std::isalnum(uint8_t(s_[i_])) || s_[i_] == '-' || s_[i_] == '_' || s_[i_] == ':' ||
                              s_[i_] == '.')) {
      ++i_;
    }
    *out = s_.substr(start, i_ - start);
    return !out->empty() && !std::isdigit(uint8_t((*out)[0])) && (*out)[0] != '-';
  }
  static bool decode(const std::string& in, std::string* out) {
    static const std::map<std::string, char> ents = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
    out->clear();
    for (size_t k = 0; k < in.size(); ++k) {
      if (in[k] == '<') return false;
      if (in[k] != '&') {
        *out += in[k];
        continue;
      }
      size_t e = in.find(';', k);
      if (e == std::string::npos) return false;
      const std::string name = in.substr(k + 1, e - k - 1);
      if (!name.empty() && name[0] == '#') {
        if (name.size() < 2) return false;
        *out += '?';
      } else {
        auto it = ents.find(name);
        if (it == ents.end()) return false;
        *out += it->second;
      }
      k = e;
    }
    return true;
  }

  std::string s_;
  size_t i_ = 0;
  std::string error_;
  std::vector<XmlElement> elements_;
};

}  // namespace stk::test
