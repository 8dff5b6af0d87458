// The threads that run request handlers (issue 11): a worker per request in progress, never
// per connection. The pool grows on demand up to max_threads (a job never waits while a
// thread could be started) and keeps its threads until it is destroyed; beyond max_threads
// jobs wait in FIFO order.
//
// Thread-safety: Submit from any thread. The destructor runs every queued job, then joins.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "base/mutex.h"

namespace kv::http {

class WorkerPool {
 public:
  explicit WorkerPool(size_t max_threads) : max_threads_(max_threads == 0 ? 1 : max_threads) {}
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Submit(std::function<void()> job);
  // Threads started so far.
  size_t threads() const;

 private:
  void Loop();

  const size_t max_threads_;
  mutable Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> jobs_ ABSL_GUARDED_BY(mu_);
  size_t idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kv::http
