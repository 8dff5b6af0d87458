#include "base/crash_point.h"

#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"

namespace kv::crash {
namespace {

// Set before the threads that pass points start (Arm's contract); read-only afterwards.
Mode g_mode = Mode::kKill;
uint64_t g_at_pass = 1;
std::atomic<uint64_t> g_passes{0};
std::function<void()>* g_power_cut = nullptr;  // leaked: never destroyed while a thread runs

std::string KnownPoints() {
  std::string s;
  for (const Point& p : kPoints) absl::StrAppend(&s, s.empty() ? "" : ", ", p.name);
  return s;
}

constexpr uint64_t kPassMax = 1000000;

}  // namespace

absl::Status Arm(std::string_view spec, Mode mode) {
  std::string_view name = spec;
  uint64_t n = 1;
  if (const size_t colon = spec.find(':'); colon != std::string_view::npos) {
    name = spec.substr(0, colon);
    const std::string_view num = spec.substr(colon + 1);
    const auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
    if (num.empty() || ec != std::errc() || end != num.data() + num.size() || n < 1 ||
        n > kPassMax) {
      return absl::InvalidArgumentError(absl::StrCat(
          "crash point '", std::string(spec), "': the pass after ':' must be 1..", kPassMax));
    }
  }
  const int index = IndexOf(name);
  if (index < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown crash point '", std::string(name), "' (known: ", KnownPoints(), ")"));
  }
  if (mode == Mode::kPower && g_power_cut == nullptr) {
    return absl::FailedPreconditionError("crash mode power needs a power-cut hook");
  }
  g_mode = mode;
  g_at_pass = n;
  g_passes.store(0, std::memory_order_relaxed);
  internal::armed.store(index, std::memory_order_release);
  return absl::OkStatus();
}

absl::Status ArmFromEnv() {
  const char* at = std::getenv("KEYVEND_CRASH_AT");
  if (at == nullptr || *at == '\0') return absl::OkStatus();
  const char* mode_env = std::getenv("KEYVEND_CRASH_MODE");
  const std::string_view mode_name = mode_env == nullptr ? "" : mode_env;
  Mode mode = Mode::kKill;
  if (mode_name == "power") {
    mode = Mode::kPower;
  } else if (!mode_name.empty() && mode_name != "kill") {
    return absl::InvalidArgumentError(
        absl::StrCat("KEYVEND_CRASH_MODE: '", std::string(mode_name), "' is not kill or power"));
  }
  absl::Status s = Arm(at, mode);
  if (!s.ok())
    return absl::Status(s.code(), absl::StrCat("KEYVEND_CRASH_AT: ", std::string(s.message())));
  return s;
}

void SetPowerCutHook(std::function<void()> hook) {
  g_power_cut = new std::function<void()>(std::move(hook));
}

std::string_view Armed() {
  const int i = internal::armed.load(std::memory_order_acquire);
  return i < 0 ? std::string_view() : std::string_view(kPoints[i].name);
}

namespace internal {

void Passed(int index) {
  const uint64_t pass = g_passes.fetch_add(1, std::memory_order_relaxed) + 1;
  if (pass != g_at_pass) return;
  // One line, written with write(2): no stdio lock another thread may hold.
  const std::string line = absl::StrCat("crash point ", kPoints[index].name, ": pass ", pass, ", ",
                                        g_mode == Mode::kPower ? "power" : "kill", "\n");
  [[maybe_unused]] const ssize_t w = ::write(STDERR_FILENO, line.data(), line.size());
  if (g_mode == Mode::kPower) (*g_power_cut)();
  ::kill(::getpid(), SIGKILL);
  ::_exit(137);  // not reached: SIGKILL cannot be caught
}

}  // namespace internal
}  // namespace kv::crash
