// PollUntil: the one way a test waits for something another thread or process makes true
// (never sleep a fixed time instead).
#pragma once

#include <chrono>
#include <thread>

namespace kv::testing {

// Calls `cond` until it returns true or `timeout` has passed, `step` apart; returns its
// last value (true: it held; false: still false at the deadline, checked once more there).
template <typename F>
bool PollUntil(F&& cond, std::chrono::milliseconds timeout,
               std::chrono::milliseconds step = std::chrono::milliseconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return cond();
    std::this_thread::sleep_for(step);
  }
}

}  // namespace kv::testing
