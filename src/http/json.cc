#include "http/json.h"

#include <cstdio>
#include <unordered_set>

#include "simdjson.h"

namespace kv::http {

void JsonWriter::Separator() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) out_.push_back(',');
    first_.back() = false;
  }
}

JsonWriter& JsonWriter::BeginObject() {
  Separator();
  out_.push_back('{');
  first_.push_back(true);
  return *this;
}
JsonWriter& JsonWriter::EndObject() {
  out_.push_back('}');
  first_.pop_back();
  return *this;
}
JsonWriter& JsonWriter::BeginArray() {
  Separator();
  out_.push_back('[');
  first_.push_back(true);
  return *this;
}
JsonWriter& JsonWriter::EndArray() {
  out_.push_back(']');
  first_.pop_back();
  return *this;
}
JsonWriter& JsonWriter::Key(std::string_view k) {
  Separator();
  AppendJsonString(&out_, k);
  out_.push_back(':');
  after_key_ = true;
  return *this;
}
JsonWriter& JsonWriter::String(std::string_view s) {
  Separator();
  AppendJsonString(&out_, s);
  return *this;
}
JsonWriter& JsonWriter::Int(int64_t v) {
  Separator();
  out_.append(std::to_string(v));
  return *this;
}
JsonWriter& JsonWriter::Bool(bool b) {
  Separator();
  out_.append(b ? "true" : "false");
  return *this;
}
JsonWriter& JsonWriter::Null() {
  Separator();
  out_.append("null");
  return *this;
}

std::optional<JsonProblem> ParseObject(std::string_view body, size_t max_depth,
                                       std::vector<JsonField>* out) {
  thread_local simdjson::dom::parser parser;
  thread_local size_t parser_depth = 0;
  if (parser_depth != max_depth) {
    // Capacity grows on demand in parse(); only the depth is fixed here.
    if (parser.allocate(4096, max_depth) != simdjson::SUCCESS) {
      return JsonProblem{Wire::kBadRequest, "cannot allocate a JSON parser"};
    }
    parser_depth = max_depth;
  }
  simdjson::dom::element doc;
  const simdjson::error_code err = parser.parse(body.data(), body.size(), true).get(doc);
  if (err == simdjson::DEPTH_ERROR) {
    return JsonProblem{Wire::kBadRequest, "JSON nested deeper than " + std::to_string(max_depth)};
  }
  if (err != simdjson::SUCCESS) {
    return JsonProblem{Wire::kBadRequest,
                       std::string("malformed JSON: ") + simdjson::error_message(err)};
  }
  simdjson::dom::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS) {
    return JsonProblem{Wire::kBadRequest, "the body must be a JSON object"};
  }
  std::unordered_set<std::string_view> seen;
  out->clear();
  for (auto [key, value] : obj) {
    if (!seen.insert(key).second) {
      return JsonProblem{Wire::kBadRequest, "duplicate field \"" + std::string(key) + "\""};
    }
    JsonField f;
    f.name = std::string(key);
    switch (value.type()) {
      case simdjson::dom::element_type::NULL_VALUE:
        f.kind = JsonField::Kind::kNull;
        break;
      case simdjson::dom::element_type::BOOL:
        f.kind = JsonField::Kind::kBool;
        if (value.get_bool().get(f.b) != simdjson::SUCCESS) f.kind = JsonField::Kind::kOther;
        break;
      case simdjson::dom::element_type::INT64:
        f.kind = JsonField::Kind::kInt;
        if (value.get_int64().get(f.i) != simdjson::SUCCESS) f.kind = JsonField::Kind::kOther;
        break;
      case simdjson::dom::element_type::STRING: {
        f.kind = JsonField::Kind::kString;
        std::string_view sv;
        if (value.get_string().get(sv) != simdjson::SUCCESS) f.kind = JsonField::Kind::kOther;
        f.s = std::string(sv);
        break;
      }
      default:  // UINT64 beyond int64, DOUBLE, ARRAY, OBJECT
        f.kind = JsonField::Kind::kOther;
        break;
    }
    out->push_back(std::move(f));
  }
  return std::nullopt;
}

const JsonField* Fields::Find(std::string_view name) const {
  for (const JsonField& f : fields_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::optional<JsonProblem> Fields::CheckKnown(
    std::initializer_list<std::string_view> allowed) const {
  for (const JsonField& f : fields_) {
    bool known = false;
    for (std::string_view a : allowed) known = known || a == f.name;
    if (!known) return JsonProblem{Wire::kUnknownField, "unknown field \"" + f.name + "\""};
  }
  return std::nullopt;
}

namespace {

template <typename T>
std::optional<T> Get(const JsonField* f, std::string_view name, bool required, JsonField::Kind want,
                     const char* type_name, std::optional<JsonProblem>* p, T JsonField::*member) {
  if (f == nullptr || f->kind == JsonField::Kind::kNull) {
    if (required && !*p) {
      *p = JsonProblem{Wire::kBadRequest, "missing field \"" + std::string(name) + "\""};
    }
    return std::nullopt;
  }
  if (f->kind != want) {
    if (!*p) {
      *p = JsonProblem{Wire::kBadRequest,
                       "field \"" + std::string(name) + "\" must be " + type_name};
    }
    return std::nullopt;
  }
  return f->*member;
}

}  // namespace

std::optional<std::string> Fields::Str(std::string_view name, bool required,
                                       std::optional<JsonProblem>* p) const {
  return Get<std::string>(Find(name), name, required, JsonField::Kind::kString, "a string", p,
                          &JsonField::s);
}
std::optional<int64_t> Fields::Int(std::string_view name, bool required,
                                   std::optional<JsonProblem>* p) const {
  return Get<int64_t>(Find(name), name, required, JsonField::Kind::kInt, "an integer", p,
                      &JsonField::i);
}
std::optional<bool> Fields::Bool(std::string_view name, bool required,
                                 std::optional<JsonProblem>* p) const {
  return Get<bool>(Find(name), name, required, JsonField::Kind::kBool, "true or false", p,
                   &JsonField::b);
}

}  // namespace kv::http
