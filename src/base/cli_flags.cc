#include "base/cli_flags.h"

#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace kv {
namespace {

// Longest part of a word echoed back in a message.
constexpr size_t kEchoBytesMax = 64;

// `word` quoted for a message: escaped (no control character reaches the terminal) and
// bounded.
std::string Echo(const std::string& word) {
  const bool cut = word.size() > kEchoBytesMax;
  return absl::StrCat("'", absl::CHexEscape(cut ? word.substr(0, kEchoBytesMax) : word),
                      cut ? "...'" : "'");
}

const FlagSpec* Find(const CliGrammar& g, const std::string& name) {
  for (const FlagSpec& f : g.flags) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

}  // namespace

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

absl::StatusOr<CliFlags> CliFlags::Parse(const std::vector<std::string>& args,
                                         const CliGrammar& grammar) {
  CliFlags out;
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (flags_done || word.size() < 2 || word[0] != '-') {
      if (!grammar.positional) {
        return absl::InvalidArgumentError(absl::StrCat("unexpected argument ", Echo(word)));
      }
      out.positional_.push_back(word);
      continue;
    }
    if (word == "--") {
      flags_done = true;
      continue;
    }
    if (word == "--help" || word == "-h") {
      out.help_ = true;
      return out;
    }
    const size_t eq = word.find('=');
    const std::string name = word.substr(0, eq);
    const FlagSpec* spec = Find(grammar, name);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown option ", Echo(name)));
    }
    std::string value;
    if (!spec->takes_value) {
      if (eq != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(name, " takes no value"));
      }
    } else if (eq != std::string::npos) {
      value = word.substr(eq + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat(name, " needs a value"));
    }
    if (spec->takes_value && value.empty() && !grammar.empty_ok) {
      return absl::InvalidArgumentError(absl::StrCat(name, " needs a non-empty value"));
    }
    if (out.values_.count(name) > 0) {
      if (!grammar.repeat_ok) {
        return absl::InvalidArgumentError(absl::StrCat(name, " is given twice"));
      }
    } else {
      out.given_.push_back(name);
    }
    out.values_[name] = std::move(value);
  }
  return out;
}

bool CliFlags::Has(const std::string& name) const { return values_.count(name) > 0; }

std::string CliFlags::Get(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::string() : it->second;
}

std::string CliFlags::GetOrEnv(const std::string& name, const std::string& env_var,
                               const EnvLookup& env) const {
  std::string v = Get(name);
  if (v.empty()) v = env(env_var).value_or("");
  return v;
}

}  // namespace kv
