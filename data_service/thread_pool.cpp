// Decode thread pool (see thread_pool.h).
#include "data_service/thread_pool.h"

#include <atomic>
#include <exception>

namespace convoy {

ThreadPool::ThreadPool(int threads) {
  for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { run(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::run() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      task = std::move(tasks_.front());
      tasks_.pop();
    }
    task();
  }
}

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  struct State {
    std::mutex mu;
    std::condition_variable done;
    size_t left;
    std::vector<std::exception_ptr> errors;
  };
  auto st = std::make_shared<State>();
  st->left = n;
  st->errors.resize(n);
  // One task per thread; each claims the next index until none is left, so
  // the threads finish within one item of each other (no tail of chunks).
  auto next = std::make_shared<std::atomic<size_t>>(0);
  size_t tasks = std::min(n, threads_.size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t t = 0; t < tasks; ++t) {
      tasks_.push([st, next, n, &fn] {
        size_t did = 0;
        for (size_t i; (i = next->fetch_add(1)) < n; ++did) {
          try {
            fn(i);
          } catch (...) {
            st->errors[i] = std::current_exception();
          }
        }
        std::lock_guard<std::mutex> l(st->mu);
        st->left -= did;
        if (st->left == 0) st->done.notify_all();
      });
    }
  }
  cv_.notify_all();
  std::unique_lock<std::mutex> lock(st->mu);
  st->done.wait(lock, [&] { return st->left == 0; });
  for (auto& e : st->errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace convoy
