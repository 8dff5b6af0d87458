#include "http/worker_pool.h"

#include <pthread.h>

namespace kv::http {

WorkerPool::~WorkerPool() {
  std::vector<std::thread> threads;
  {
    MutexLock l(&mu_);
    stop_ = true;
    threads.swap(threads_);
  }
  cv_.SignalAll();
  for (auto& t : threads) t.join();
}

void WorkerPool::Submit(std::function<void()> job) {
  MutexLock l(&mu_);
  jobs_.push_back(std::move(job));
  if (idle_ >= jobs_.size()) {
    cv_.Signal();
  } else if (threads_.size() < max_threads_) {
    threads_.emplace_back([this] { Loop(); });
  }
}

size_t WorkerPool::threads() const {
  MutexLock l(&mu_);
  return threads_.size();
}

void WorkerPool::Loop() {
  pthread_setname_np(pthread_self(), "kv-worker");  // named in top, perf and gdb
  while (true) {
    std::function<void()> job;
    {
      MutexLock l(&mu_);
      while (jobs_.empty() && !stop_) {
        ++idle_;
        cv_.Wait(&mu_);
        --idle_;
      }
      if (jobs_.empty()) return;  // stopping, nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

}  // namespace kv::http
