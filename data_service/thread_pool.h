// A fixed pool of decode threads shared by every rank's producer.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace convoy {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  int size() const { return static_cast<int>(threads_.size()); }
  // Runs fn(0..n-1) on the pool and waits; rethrows the exception of the
  // lowest index that threw (so failures are reported deterministically).
  void parallel_for(size_t n, const std::function<void(size_t)>& fn);

 private:
  void run();
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::queue<std::function<void()>> tasks_;
  bool stop_ = false;
};

}  // namespace convoy
