#include "kit/json.h"

#include <cstdio>

#include "gtest/gtest.h"
#include "simdjson.h"

namespace kv::testing {

struct Json::Node {
  Type type = Type::kNull;
  bool b = false;
  int64_t i = 0;
  double d = 0;
  std::string s;
  std::vector<std::shared_ptr<const Node>> items;
  std::vector<std::pair<std::string, std::shared_ptr<const Node>>> fields;
};

namespace {

const char* TypeName(Json::Type t) {
  switch (t) {
    case Json::Type::kMissing:
      return "missing";
    case Json::Type::kNull:
      return "null";
    case Json::Type::kBool:
      return "a boolean";
    case Json::Type::kInt:
      return "an integer";
    case Json::Type::kDouble:
      return "a double";
    case Json::Type::kString:
      return "a string";
    case Json::Type::kArray:
      return "an array";
    case Json::Type::kObject:
      return "an object";
  }
  return "?";
}

// Every value is copied out with get() into a local first: iterating
// e.get_array().value_unsafe() would bind to a temporary that dies at once. false when
// simdjson cannot read a value it just parsed (never expected).
bool From(simdjson::dom::element e, Json::Node* n) {
  switch (e.type()) {
    case simdjson::dom::element_type::NULL_VALUE:
      n->type = Json::Type::kNull;
      return true;
    case simdjson::dom::element_type::BOOL:
      n->type = Json::Type::kBool;
      return e.get(n->b) == simdjson::SUCCESS;
    case simdjson::dom::element_type::INT64:
      n->type = Json::Type::kInt;
      return e.get(n->i) == simdjson::SUCCESS;
    case simdjson::dom::element_type::UINT64:  // beyond int64: never expected from keyvend
    case simdjson::dom::element_type::DOUBLE:
      n->type = Json::Type::kDouble;
      return e.get(n->d) == simdjson::SUCCESS;
    case simdjson::dom::element_type::STRING: {
      std::string_view sv;
      if (e.get(sv) != simdjson::SUCCESS) return false;
      n->type = Json::Type::kString;
      n->s = std::string(sv);
      return true;
    }
    case simdjson::dom::element_type::ARRAY: {
      simdjson::dom::array arr;
      if (e.get(arr) != simdjson::SUCCESS) return false;
      n->type = Json::Type::kArray;
      for (simdjson::dom::element c : arr) {
        auto child = std::make_shared<Json::Node>();
        if (!From(c, child.get())) return false;
        n->items.push_back(std::move(child));
      }
      return true;
    }
    case simdjson::dom::element_type::OBJECT: {
      simdjson::dom::object obj;
      if (e.get(obj) != simdjson::SUCCESS) return false;
      n->type = Json::Type::kObject;
      for (simdjson::dom::key_value_pair kv : obj) {
        auto child = std::make_shared<Json::Node>();
        if (!From(kv.value, child.get())) return false;
        n->fields.emplace_back(std::string(kv.key), std::move(child));
      }
      return true;
    }
  }
  return false;
}

std::string Shown(const std::shared_ptr<const std::string>& doc) {
  if (doc == nullptr) return "";
  std::string s = doc->substr(0, 600);
  if (doc->size() > 600) s += "...";
  return " in " + s;
}

}  // namespace

Json Json::Parse(std::string_view text, std::string* error) {
  auto doc = std::make_shared<const std::string>(text);
  simdjson::dom::parser parser;
  simdjson::padded_string padded(text);
  simdjson::dom::element root;
  const auto err = parser.parse(padded).get(root);
  auto node = std::make_shared<Node>();
  if (err != simdjson::SUCCESS || !From(root, node.get())) {
    const std::string why = err != simdjson::SUCCESS ? simdjson::error_message(err) : "unreadable";
    if (error != nullptr) *error = why;
    return Json(nullptr, "$", doc, "the text is not JSON (" + why + ")");
  }
  return Json(std::move(node), "$", std::move(doc), "");
}

Json::Type Json::type() const { return node_ == nullptr ? Type::kMissing : node_->type; }

bool Json::has(std::string_view key) const {
  if (!is_object()) return false;
  for (const auto& [k, v] : node_->fields) {
    if (k == key) return true;
  }
  return false;
}

Json Json::operator[](std::string_view key) const {
  std::string path = path_ + "." + std::string(key);
  if (node_ == nullptr) return Json(nullptr, std::move(path), doc_, why_);
  if (node_->type != Type::kObject) {
    return Json(nullptr, std::move(path), doc_,
                path_ + " is " + TypeName(node_->type) + ", not an object");
  }
  for (const auto& [k, v] : node_->fields) {
    if (k == key) return Json(v, std::move(path), doc_, "");
  }
  std::string names;
  for (const auto& f : node_->fields) names += (names.empty() ? "" : ", ") + f.first;
  return Json(nullptr, std::move(path), doc_,
              "the object has: " + (names.empty() ? "nothing" : names));
}

Json Json::operator[](size_t i) const {
  std::string path = path_ + "[" + std::to_string(i) + "]";
  if (node_ == nullptr) return Json(nullptr, std::move(path), doc_, why_);
  if (node_->type != Type::kArray) {
    return Json(nullptr, std::move(path), doc_,
                path_ + " is " + TypeName(node_->type) + ", not an array");
  }
  if (i >= node_->items.size()) {
    return Json(nullptr, std::move(path), doc_,
                "the array has " + std::to_string(node_->items.size()) + " elements");
  }
  return Json(node_->items[i], std::move(path), doc_, "");
}

bool Json::Expect(Type want, const Where& w) const {
  const Type t = type();
  if (t == want || (want == Type::kDouble && t == Type::kInt)) return true;
  std::string msg = "JSON " + path_;
  if (t == Type::kMissing) {
    msg += " is missing";
    if (!why_.empty()) msg += " (" + why_ + ")";
  } else {
    msg += std::string(" is ") + TypeName(t) + ", want " + TypeName(want);
  }
  ADD_FAILURE_AT(w.file_name(), static_cast<int>(w.line())) << msg << Shown(doc_);
  return false;
}

std::string Json::str(Where w) const { return Expect(Type::kString, w) ? node_->s : std::string(); }
int64_t Json::num(Where w) const { return Expect(Type::kInt, w) ? node_->i : 0; }
double Json::number(Where w) const {
  if (!Expect(Type::kDouble, w)) return 0;
  return node_->type == Type::kInt ? static_cast<double>(node_->i) : node_->d;
}
bool Json::boolean(Where w) const { return Expect(Type::kBool, w) && node_->b; }

size_t Json::size(Where w) const {
  if (is_array()) return node_->items.size();
  if (is_object()) return node_->fields.size();
  Expect(Type::kArray, w);  // the failure: "is missing" or "is a string, want an array"
  return 0;
}

std::vector<Json> Json::items(Where w) const {
  std::vector<Json> out;
  if (!Expect(Type::kArray, w)) return out;
  out.reserve(node_->items.size());
  for (size_t i = 0; i < node_->items.size(); ++i) {
    out.push_back(Json(node_->items[i], path_ + "[" + std::to_string(i) + "]", doc_, ""));
  }
  return out;
}

std::vector<Json> Json::items(size_t n, Where w) const {
  std::vector<Json> out = items(w);
  if (is_array() && out.size() != n) {
    ADD_FAILURE_AT(w.file_name(), static_cast<int>(w.line()))
        << "JSON " << path_ << " has " << out.size() << " elements, want " << n << Shown(doc_);
  }
  return out;
}

std::vector<std::pair<std::string, Json>> Json::fields(Where w) const {
  std::vector<std::pair<std::string, Json>> out;
  if (!Expect(Type::kObject, w)) return out;
  for (const auto& [k, v] : node_->fields) out.emplace_back(k, Json(v, path_ + "." + k, doc_, ""));
  return out;
}

std::vector<std::string> Json::keys(Where w) const {
  std::vector<std::string> out;
  if (!Expect(Type::kObject, w)) return out;
  for (const auto& f : node_->fields) out.push_back(f.first);
  return out;
}

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

}  // namespace kv::testing
