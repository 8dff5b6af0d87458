// The command line of the offline tools (`keyvend check` / `demo-seed`, keyvend-backup,
// keyvend-preload): one grammar, one set of usage messages, one environment fallback.
// `keyvend serve` has its own, richer parser over the option table (config/config.h).
//
// Grammar, for the flags a command declares:
//   --name=value | --name value   a flag that takes a value (the next word, whatever it is)
//   --name                        a switch (takes no value; --name=x is an error)
//   --help | -h                   help: parsing stops, help() is true
//   --                            ends the flags: every later word is positional
//   other words not starting with '-' (and a lone "-") are positional
// A flag given twice: the last value wins, unless the grammar says repeats are errors.
//
// Pure (no I/O, no real environment unless ProcessEnv is passed): thread-safe, testable.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kv {

// Looks an environment variable up; nullopt = unset (a variable set to "" is "").
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The process's real environment (getenv), for the tools' main().
EnvLookup ProcessEnv();

struct FlagSpec {
  std::string name;         // "--data-dir"
  bool takes_value = true;  // false: a switch ("--json", "--dry-run")
};

struct CliGrammar {
  std::vector<FlagSpec> flags;
  bool positional = false;  // words that are not flags are allowed (else an error)
  bool repeat_ok = true;    // a flag given twice: the last value wins (else an error)
  bool empty_ok = true;     // --name= and --name "" are values (else an error)
};

class CliFlags {
 public:
  // Parses the words after the program (or subcommand) name. InvalidArgument with a
  // one-line message on a usage error, one of:
  //   unknown option '--x'             (also for -x; a --x=v word names only --x)
  //   unexpected argument 'word'       (a positional word where none is taken)
  //   --x needs a value                --x takes no value
  //   --x needs a non-empty value      --x is given twice
  // Words are echoed bounded and escaped.
  static absl::StatusOr<CliFlags> Parse(const std::vector<std::string>& args,
                                        const CliGrammar& grammar);

  bool help() const { return help_; }
  // True when the flag (a value flag or a switch) was given.
  bool Has(const std::string& name) const;
  // The flag's value; "" when it was not given (or given as "").
  std::string Get(const std::string& name) const;
  // The flag's value when given and non-empty, else the environment variable's, else "".
  std::string GetOrEnv(const std::string& name, const std::string& env_var,
                       const EnvLookup& env) const;
  // The flags given, in the order first given.
  const std::vector<std::string>& given() const { return given_; }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  bool help_ = false;
  std::map<std::string, std::string> values_;  // a switch maps to ""
  std::vector<std::string> given_;
  std::vector<std::string> positional_;
};

}  // namespace kv
