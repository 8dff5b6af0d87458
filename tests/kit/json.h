// Strict JSON for tests: a value read from a response that is missing, or of another type
// than the read asks for, FAILS the test, naming the value's path and the call site:
//
//   foo_test.cc:42: JSON $.products[0].counts.held is missing (the object has: delivered,
//   pool) in {"products":[...]}
//
// instead of reading as 0, false or "" (so `EXPECT_EQ(p["counts"]["held"].num(), 0)` cannot
// pass after a rename). The reads are str(), num(), number(), boolean(), size(), items(),
// fields() and keys(). items(n) also asserts the array has exactly n elements, so a loop
// over a list cannot pass by being empty.
//
// Lookups never fail: j["a"]["b"] on an absent "a" is a missing value that remembers its
// path, and only a read of it fails. For a field that may legitimately be absent, ask
// first: has(), missing(), is_null(), is_string(), is_int(), ... never fail.
//
// Values are immutable and share their parsed tree: copying a Json, or a lookup, costs a
// pointer and a path. Thread-safe to read from several threads (gtest's failures are).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kv::testing {

class Json {
 public:
  enum class Type { kMissing, kNull, kBool, kInt, kDouble, kString, kArray, kObject };
  // The caller's file and line, for the failure message. Not std::source_location: Debian's
  // clang 14 (the ASan and fuzz builds) lacks it with libstdc++ 12; both compilers have the
  // builtins.
  struct Where {
    const char* file;
    int line_no;
    static constexpr Where current(const char* f = __builtin_FILE(), int l = __builtin_LINE()) {
      return Where{f, l};
    }
    const char* file_name() const { return file; }
    int line() const { return line_no; }
  };

  Json() = default;  // missing

  // The value of `text`; when it is not one JSON value, a missing value (its reads fail,
  // saying so) and *error says why.
  static Json Parse(std::string_view text, std::string* error = nullptr);

  // --- probes (never fail) ---
  Type type() const;
  bool missing() const { return type() == Type::kMissing; }
  bool is_null() const { return type() == Type::kNull; }
  bool is_bool() const { return type() == Type::kBool; }
  bool is_int() const { return type() == Type::kInt; }
  bool is_double() const { return type() == Type::kDouble; }
  bool is_string() const { return type() == Type::kString; }
  bool is_array() const { return type() == Type::kArray; }
  bool is_object() const { return type() == Type::kObject; }
  // An object with member `key` (of any type, null included).
  bool has(std::string_view key) const;
  // Where this value is in its document: "$", "$.orders[2].keys".
  const std::string& path() const { return path_; }

  // --- lookups (never fail; a missing result remembers its path) ---
  Json operator[](std::string_view key) const;
  Json operator[](size_t i) const;
  Json operator[](int i) const { return (*this)[static_cast<size_t>(i)]; }

  // --- reads (fail the test unless the value exists with this type) ---
  std::string str(Where w = Where::current()) const;          // a string
  int64_t num(Where w = Where::current()) const;              // an integer
  double number(Where w = Where::current()) const;            // an integer or a double
  bool boolean(Where w = Where::current()) const;             // true or false
  size_t size(Where w = Where::current()) const;              // an array's or object's count
  std::vector<Json> items(Where w = Where::current()) const;  // an array's elements
  // An array's elements, which must be exactly `n` (else the test fails and the elements
  // that are there are returned).
  std::vector<Json> items(size_t n, Where w = Where::current()) const;
  std::vector<std::pair<std::string, Json>> fields(Where w = Where::current()) const;
  std::vector<std::string> keys(Where w = Where::current()) const;  // an object's names

  struct Node;

 private:
  Json(std::shared_ptr<const Node> node, std::string path, std::shared_ptr<const std::string> doc,
       std::string why)
      : node_(std::move(node)),
        path_(std::move(path)),
        doc_(std::move(doc)),
        why_(std::move(why)) {}
  // Adds the failure "JSON <path> is missing / is a <type>, want <want>" at `w`; true when
  // the value is there with type `want` (or, for a number read, an int).
  bool Expect(Type want, const Where& w) const;

  std::shared_ptr<const Node> node_;  // null: missing
  std::string path_ = "$";
  std::shared_ptr<const std::string> doc_;  // the parsed text, for failure messages
  std::string why_;                         // why it is missing
};

// A JSON string literal (with quotes) for building request bodies.
std::string Quote(std::string_view s);

}  // namespace kv::testing
