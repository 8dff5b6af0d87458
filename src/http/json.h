// JSON on the wire: a small writer, and a strict reader for the flat request bodies of the
// API (simdjson's error-code API; no exceptions).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/json_string.h"
#include "http/wire_errors.h"

namespace kv::http {

// Appends JSON text. Keys and strings are escaped (control characters as \uXXXX; UTF-8
// passed through). Not thread-safe; one writer per response.
class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(std::string_view k);
  JsonWriter& String(std::string_view s);
  JsonWriter& Int(int64_t v);
  JsonWriter& Bool(bool b);
  JsonWriter& Null();
  // Shorthands for "key": value.
  JsonWriter& Field(std::string_view k, std::string_view s) { return Key(k).String(s); }
  JsonWriter& Field(std::string_view k, const char* s) { return Key(k).String(s); }
  JsonWriter& Field(std::string_view k, int64_t v) { return Key(k).Int(v); }
  JsonWriter& FieldBool(std::string_view k, bool b) { return Key(k).Bool(b); }
  const std::string& str() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  void Separator();
  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

// JSON string literals: the shared escaper (base/json_string.h).
using ::kv::AppendJsonString;

// One top-level field of a request body.
struct JsonField {
  enum class Kind { kNull, kBool, kInt, kString, kOther };
  std::string name;
  Kind kind = Kind::kNull;
  bool b = false;
  int64_t i = 0;
  std::string s;
};

struct JsonProblem {
  Wire wire;  // Wire::kBadRequest, or Wire::kUnknownField (CheckKnown)
  std::string message;
};

// Parses a body that must be one JSON object. Numbers must be integers that fit int64
// (a fraction, exponent or overflow is reported as Kind::kOther so the caller refuses the
// type); nested arrays/objects are Kind::kOther. Refuses malformed JSON, trailing content,
// duplicate keys and nesting deeper than max_depth. Thread-safe (one parser per thread).
std::optional<JsonProblem> ParseObject(std::string_view body, size_t max_depth,
                                       std::vector<JsonField>* out);

// Typed access to a parsed body against the fields a route accepts.
class Fields {
 public:
  // allowed: every field name the route knows. Unknown names are reported unless
  // ignore_unknown (the payment notify, whose unknown fields are ignored once signed).
  Fields(std::vector<JsonField> fields) : fields_(std::move(fields)) {}
  std::optional<JsonProblem> CheckKnown(std::initializer_list<std::string_view> allowed) const;
  // Each getter: nullopt + no problem when absent and !required; a problem when required and
  // absent or null, or of the wrong type.
  std::optional<std::string> Str(std::string_view name, bool required,
                                 std::optional<JsonProblem>* p) const;
  std::optional<int64_t> Int(std::string_view name, bool required,
                             std::optional<JsonProblem>* p) const;
  std::optional<bool> Bool(std::string_view name, bool required,
                           std::optional<JsonProblem>* p) const;
  bool Has(std::string_view name) const { return Find(name) != nullptr; }

 private:
  const JsonField* Find(std::string_view name) const;
  std::vector<JsonField> fields_;
};

}  // namespace kv::http
