// keyvend-preload's input: files of card keys turned into candidate keys and rejected lines
// through the shop's ONE parser and validator (shop/key_import.h ParseKeys), the same code
// the admin import endpoint runs, so a file is judged the same way offline and online.
//
// Files are memory-mapped, never copied; keys are views into the mappings. A large text file
// is parsed in pieces (~2 MB) on several threads: pieces split after a '\n', each parsed with its
// first line number, so the lines and verdicts are exactly those of one pass, except that a
// key repeated in two pieces is found later, by the run's dedupe (preload/dedupe.h), with the
// same reason (duplicate_in_input) and the same "first occurrence stays" rule.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "preload/progress.h"
#include "shop/key_import.h"

namespace kv::preload {

struct InputOptions {
  // The format of every file. Unset: by file name, ".txt" text and ".csv" CSV (either case);
  // any other name is an error. Default: unset.
  std::optional<KeyFormat> format;
  // CSV: the header name of the key column (ParseOptions::csv_column). Default "key".
  std::string csv_column = "key";
  // Threads parsing the pieces of a text file. Default 1.
  int threads = 1;
};

// A key accepted by the parser (trimmed, printable UTF-8, 1..kKeyBytesMax bytes).
struct InputKey {
  uint32_t file = 0;      // index into Inputs::files()
  uint32_t line = 0;      // physical line (CSV: the line its record starts on)
  std::string_view text;  // into the file's mapping or the parser's own storage
};

struct InputFile {
  std::string path;  // as given
  KeyFormat format = KeyFormat::kText;
  uint64_t bytes = 0;
  // Lines the parser refused, in line order: empty, too_long, non_printable, bad_csv_row, and
  // duplicate_in_input for a key repeated within one parsed piece.
  std::vector<RejectedLine> rejected;
};

// The parsed input of a run. Owns the mappings: every InputKey::text is valid while the
// Inputs lives. Not copyable; immutable after ReadInputs, so any thread may read it.
class Inputs {
 public:
  ~Inputs();
  Inputs(const Inputs&) = delete;
  Inputs& operator=(const Inputs&) = delete;

  const std::vector<InputFile>& files() const { return files_; }
  // Accepted keys in input order: by file (command-line order), then by line.
  const std::vector<InputKey>& keys() const { return keys_; }
  uint64_t total_bytes() const;

 private:
  friend absl::StatusOr<std::unique_ptr<Inputs>> ReadInputs(const std::vector<std::string>&,
                                                            const InputOptions&, Progress*);
  Inputs() = default;

  struct Mapping {
    void* addr = nullptr;
    size_t size = 0;
  };
  std::vector<Mapping> mappings_;
  std::vector<InputFile> files_;
  std::vector<InputKey> keys_;
  // Backing text of keys the parser had to rewrite (CSV fields with "" escapes).
  std::deque<std::deque<std::string>> owned_;
};

// The format a file name implies: ".txt" -> kText, ".csv" -> kCsv (case-insensitive);
// InvalidArgument naming the file otherwise.
absl::StatusOr<KeyFormat> FormatForPath(std::string_view path);

// Maps and parses every file in `paths`, in order. `progress` (may be null) shows bytes.
// Errors, each naming the file (never a key's text); nothing is returned then:
//  - InvalidArgument: no files; a name without a known extension (and no opts.format); a CSV
//    without a header or without the key column; not a regular file;
//  - NotFound / PermissionDenied: the file cannot be opened;
//  - ResourceExhausted: more than limits::kPreloadKeysMax accepted keys in all;
//  - other errno-mapped errors of open/fstat/mmap.
absl::StatusOr<std::unique_ptr<Inputs>> ReadInputs(const std::vector<std::string>& paths,
                                                   const InputOptions& opts, Progress* progress);

}  // namespace kv::preload
