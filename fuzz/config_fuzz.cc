// libFuzzer target for the config parser (src/config/config.h): LoadConfig over a config
// file whose text is the input, and over flags and environment variables taken from it.
//
// The file is an in-memory file (memfd, named /proc/self/fd/N), rewritten for every input,
// so no disk I/O. Per input:
//  1. LoadConfig({"--config", FILE}) with the input as the file and no environment;
//  2. LoadConfig(flags, env) where every input line starting with "--" is a flag word and
//     every line "KEYVEND_NAME=VALUE" an environment variable (KEYVEND_CONFIG is never
//     passed, and no --config flag, so nothing but the memfd is ever opened);
//  3. ParseHostPort on every line.
// Checks besides "never crashes": an error is InvalidArgument with a one-line message of
// bounded size (values are quoted as a short escaped prefix, never a whole file); a success
// holds every int option within its range, no control character in any string, a resolved
// master_key_file; and every accepted Config loads again, equal, from flags alone (the
// sources agree on what a value means).
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/config.h"
#include "fuzz_check.h"

namespace kv {
namespace {

// The longest error LoadConfig may produce: a path, a line number, an option name, a
// quoted 64-byte prefix (each byte up to 4 escaped characters) and fixed text.
constexpr size_t kMessageBytesMax = 1024;

std::optional<std::string> NoEnv(const std::string&) { return std::nullopt; }

std::string FlagFor(const OptionSpec& o) {
  std::string f = std::string("--") + o.name;
  for (char& c : f) {
    if (c == '_') c = '-';
  }
  return f;
}

void CheckResult(const absl::StatusOr<Config>& got) {
  if (!got.ok()) {
    FUZZ_CHECK(got.status().code() == absl::StatusCode::kInvalidArgument);
    const std::string_view m(got.status().message().data(), got.status().message().size());
    FUZZ_CHECK(!m.empty() && m.size() <= kMessageBytesMax);
    FUZZ_CHECK(m.find('\n') == std::string_view::npos);
    return;
  }
  const Config& cfg = *got;
  FUZZ_CHECK(!cfg.master_key_file.empty());
  std::vector<std::string> flags;
  for (const OptionSpec& o : ConfigOptions()) {
    std::string value;
    switch (o.type) {
      case OptionType::kInt: {
        const int64_t v = cfg.*std::get<int64_t Config::*>(o.field);
        FUZZ_CHECK(v >= o.min && v <= o.max);
        value = std::to_string(v);
        break;
      }
      case OptionType::kBool:
        value = cfg.*std::get<bool Config::*>(o.field) ? "true" : "false";
        break;
      case OptionType::kString:
        value = cfg.*std::get<std::string Config::*>(o.field);
        for (char c : value) {
          FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
        }
        break;
    }
    flags.push_back(FlagFor(o) + "=" + value);
  }
  const absl::StatusOr<Config> again = LoadConfig(flags, NoEnv);
  if (!again.ok()) {
    std::fprintf(stderr, "re-load from flags: %s\n", std::string(again.status().message()).c_str());
  }
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(*again == cfg);
}

int MemFd() {
  static const int fd = memfd_create("keyvend-fuzz.conf", MFD_CLOEXEC);
  FUZZ_CHECK(fd >= 0);
  return fd;
}

}  // namespace
}  // namespace kv

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kv;  // NOLINT: a fuzz entry point, not library code.
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  // 1. The input as a config file.
  const int fd = MemFd();
  FUZZ_CHECK(ftruncate(fd, 0) == 0);
  FUZZ_CHECK(pwrite(fd, data, size, 0) == static_cast<ssize_t>(size));
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  CheckResult(LoadConfig({"--config", path}, NoEnv));

  // 2. Flags and environment variables from its lines; 3. ParseHostPort on each line.
  std::vector<std::string> flags;
  std::map<std::string, std::string> env;
  size_t pos = 0;
  while (pos <= input.size()) {
    size_t nl = input.find('\n', pos);
    if (nl == std::string_view::npos) nl = input.size();
    const std::string line(input.substr(pos, nl - pos));
    pos = nl + 1;
    std::string host = "untouched";
    int port = -1;
    if (ParseHostPort(line, &host, &port)) {
      FUZZ_CHECK(!host.empty() && port >= 0 && port <= 65535);
    } else {
      FUZZ_CHECK(host == "untouched" && port == -1);
    }
    if (line.rfind("--config", 0) == 0) continue;
    if (line.rfind("--", 0) == 0 ||
        (!flags.empty() && line.rfind("-", 0) != 0 && line.rfind("KEYVEND_", 0) != 0)) {
      flags.push_back(line);  // a flag, or the separate value word after one
    } else if (line.rfind("KEYVEND_", 0) == 0 && line.find('=') != std::string::npos) {
      const std::string name = line.substr(0, line.find('='));
      if (name != "KEYVEND_CONFIG") env[name] = line.substr(line.find('=') + 1);
    }
  }
  CheckResult(LoadConfig(flags, [&env](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  }));
  return 0;
}
