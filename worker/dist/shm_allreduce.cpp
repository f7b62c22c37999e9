// Shared-memory all-reduce (see shm_allreduce.h for the protocol).
#include "worker/dist/shm_allreduce.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstring>
#include <random>
#include <type_traits>

#include "common/error.h"

namespace convoy {
namespace {

constexpr uint32_t kMagic = 0x43565341;  // "CVSA"
constexpr uint32_t kVersion = 1;
constexpr size_t kPage = 4096;
constexpr int kArrived = 0, kReduced = 1;
// Pauses before a wait sleeps on the futex (tens of microseconds): a peer
// still summing its chunk is worth spinning for, one still computing
// backward is not, and the cores are the ones that compute.
constexpr int kSpins = 1000;

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t) && std::atomic<uint32_t>::is_always_lock_free,
              "futexes need plain 32-bit atomics");

// One rank's words, on a cache line of their own.
struct alignas(64) RankWords {
  std::atomic<uint32_t> seq[2];  // kArrived, kReduced: the last piece done
  std::atomic<uint32_t> gone;    // 1 once this rank destroyed its end
};

size_t header_bytes(int world) { return (sizeof(RankWords) * (world + 1) + kPage - 1) / kPage * kPage; }

bool reached(uint32_t value, uint32_t seq) { return static_cast<int32_t>(value - seq) >= 0; }

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

void futex_wake(std::atomic<uint32_t>* word) {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

// Sleeps while *word == seen, at most 50 ms (the caller checks its deadline).
void futex_wait(std::atomic<uint32_t>* word, uint32_t seen) {
  timespec ts{0, 50 * 1000 * 1000};
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, seen, &ts, nullptr, 0);
}

std::string key(const std::string& name, const std::string& what) { return name + "/" + what; }
std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::string text(const std::vector<uint8_t>& v) { return {v.begin(), v.end()}; }

}  // namespace

struct ShmAllreduce::Header {
  uint32_t magic, version;
  uint32_t world, reserved;
  uint64_t slot_bytes, nonce;
  RankWords* ranks() { return reinterpret_cast<RankWords*>(reinterpret_cast<char*>(this) + sizeof(RankWords)); }
};
static_assert(sizeof(ShmAllreduce::Header) <= sizeof(RankWords), "the header fits one line");

std::shared_ptr<ShmAllreduce> ShmAllreduce::connect(c10d::Store& store, const std::string& name, int rank,
                                                    int world_size, bool local, std::chrono::milliseconds timeout,
                                                    size_t slot_bytes, std::string* why_not) {
  CONVOY_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "rank " << rank << " of " << world_size);
  slot_bytes = std::max<size_t>(kPage, slot_bytes / kPage * kPage);
  const size_t size = header_bytes(world_size) + (world_size + 1) * slot_bytes;
  void* base = nullptr;
  std::string refusal;  // why this rank cannot take part; empty: it can
  if (!local) refusal = "not on rank 0's host";
  if (rank == 0) {
    uint64_t nonce = 0;
    if (refusal.empty()) {
      // The name is the job's: one left by an earlier attempt that died
      // before unlinking it is stale.
      ::shm_unlink(name.c_str());
      int fd = ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
      if (fd < 0) {
        refusal = "cannot create " + name + ": " + detail::errno_text(errno);
      } else {
        // Pages reserved now: a full /dev/shm is a refusal here, not a
        // SIGBUS at the first write.
        int err = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
        if (err == 0) {
          base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
          if (base == MAP_FAILED) err = errno, base = nullptr;
        }
        ::close(fd);
        if (!base) {
          refusal = CONVOY_STR("cannot map " << size << " bytes of " << name << " (is /dev/shm full?): "
                                             << detail::errno_text(err));
          ::shm_unlink(name.c_str());
        } else {
          nonce = std::random_device()() | static_cast<uint64_t>(std::random_device()()) << 32 | 1;
          auto* h = static_cast<Header*>(base);
          h->magic = kMagic;
          h->version = kVersion;
          h->world = static_cast<uint32_t>(world_size);
          h->slot_bytes = slot_bytes;
          h->nonce = nonce;
        }
      }
    }
    store.set(key(name, "nonce"), bytes(std::to_string(nonce)));
  } else {
    const uint64_t nonce = std::stoull(text(store.get(key(name, "nonce"))));
    if (refusal.empty() && nonce == 0) refusal = "rank 0 has no segment";
    if (refusal.empty()) {
      int fd = ::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
      if (fd < 0) {
        refusal = "cannot open " + name + " (another host?): " + detail::errno_text(errno);
      } else {
        struct stat st;
        if (::fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) == size) {
          base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
          if (base == MAP_FAILED) base = nullptr;
        }
        ::close(fd);
        auto* h = static_cast<Header*>(base);
        if (!h || h->magic != kMagic || h->version != kVersion || h->nonce != nonce ||
            h->world != static_cast<uint32_t>(world_size) || h->slot_bytes != slot_bytes) {
          refusal = name + " is not rank 0's segment (another host?)";
          if (base) ::munmap(base, size);
          base = nullptr;
        }
      }
    }
  }
  // From here on, however it ends: rank 0 removes the name (every rank has
  // the segment mapped by the time the votes are in, or never will), and a
  // mapping no ShmAllreduce took over is undone.
  struct Release {
    const std::string& name;
    void*& base;
    size_t size;
    bool owner;
    ~Release() {
      if (owner && base) ::shm_unlink(name.c_str());
      if (base) ::munmap(base, size);
    }
  } release{name, base, size, rank == 0};
  // Every rank says whether it mapped the segment; all of them or none use it.
  store.set(key(name, "rank" + std::to_string(rank)), bytes(refusal.empty() ? "+" : "-" + refusal));
  for (int p = 0; p < world_size; ++p) {
    std::string v = text(store.get(key(name, "rank" + std::to_string(p))));
    if (v == "+") continue;
    if (why_not) *why_not = "rank " + std::to_string(p) + ": " + v.substr(1);
    return nullptr;
  }
  if (rank == 0) ::shm_unlink(name.c_str());
  auto out = std::shared_ptr<ShmAllreduce>(new ShmAllreduce(base, size, rank, world_size, slot_bytes, timeout));
  base = nullptr;  // the ShmAllreduce unmaps it
  return out;
}

ShmAllreduce::ShmAllreduce(void* base, size_t size, int rank, int world, size_t slot_bytes,
                           std::chrono::milliseconds timeout)
    : base_(base), size_(size), header_(static_cast<Header*>(base)), rank_(rank),
      world_(world), slot_bytes_(slot_bytes), timeout_(timeout) {
  thread_ = std::thread([this] { serve(); });
}

ShmAllreduce::~ShmAllreduce() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  abort_ = true;
  cv_.notify_all();
  thread_.join();
  // A peer still waiting for this rank fails now rather than at its timeout.
  RankWords& mine = header_->ranks()[rank_];
  mine.gone.store(1, std::memory_order_release);
  for (auto& w : mine.seq) futex_wake(&w);
  ::munmap(base_, size_);
}

char* ShmAllreduce::slot(int i) const {
  return static_cast<char*>(base_) + header_bytes(world_) + static_cast<size_t>(i) * slot_bytes_;
}

c10::intrusive_ptr<c10::ivalue::Future> ShmAllreduce::allreduce(at::Tensor t) {
  CONVOY_CHECK(t.device().is_cpu() && t.is_contiguous(),
               "shared-memory all-reduce takes contiguous CPU tensors, not " << t.device() << " "
                                                                             << (t.is_contiguous() ? "" : "strided"));
  const auto type = t.scalar_type();
  CONVOY_CHECK(type == at::kFloat || type == at::kDouble || type == at::kBFloat16 || type == at::kHalf,
               "shared-memory all-reduce cannot sum " << type);
  auto future = c10::make_intrusive<c10::ivalue::Future>(c10::ListType::create(c10::TensorType::get()));
  {
    std::lock_guard<std::mutex> lock(mu_);
    CONVOY_CHECK(!stopping_, "shared-memory all-reduce used after shutdown");
    jobs_.push_back({std::move(t), future});
  }
  cv_.notify_one();
  return future;
}

void ShmAllreduce::allreduce_now(const at::Tensor& t) {
  auto future = allreduce(t);
  future->wait();
  if (future->hasError()) std::rethrow_exception(future->exception_ptr());
}

void ShmAllreduce::serve() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    if (!failed_) {
      try {
        reduce(job.tensor);
      } catch (...) {
        failed_ = std::current_exception();
      }
    }
    if (failed_)
      job.future->setError(failed_);
    else
      job.future->markCompleted(c10::IValue(std::vector<at::Tensor>{job.tensor}));
  }
}

void ShmAllreduce::reduce(const at::Tensor& t) {
  const size_t n = static_cast<size_t>(t.numel());
  const size_t piece = slot_bytes_ / t.element_size();
  auto run = [&](auto* data) {
    for (size_t done = 0; done < n; done += piece) reduce_piece(data + done, std::min(piece, n - done));
  };
  switch (t.scalar_type()) {
    case at::kFloat: return run(t.data_ptr<float>());
    case at::kDouble: return run(t.data_ptr<double>());
    case at::kBFloat16: return run(t.data_ptr<c10::BFloat16>());
    case at::kHalf: return run(t.data_ptr<c10::Half>());
    default: CONVOY_CHECK(false, "shared-memory all-reduce cannot sum " << t.scalar_type());
  }
}

template <class T>
void ShmAllreduce::reduce_piece(T* data, size_t n) {
  const uint32_t s = ++seq_;
  // Chunk boundaries on 64-byte multiples (the last chunk takes the rest).
  constexpr size_t kAlign = 64 / sizeof(T) > 0 ? 64 / sizeof(T) : 1;
  auto begin = [&](int c) { return c >= world_ ? n : n * c / world_ / kAlign * kAlign; };
  auto* mine = reinterpret_cast<T*>(slot(rank_));
  auto* result = reinterpret_cast<T*>(slot(world_));

  for (int c = 0; c < world_; ++c)
    if (c != rank_) std::memcpy(mine + begin(c), data + begin(c), (begin(c + 1) - begin(c)) * sizeof(T));
  publish(kArrived, s);
  wait_all(kArrived, s, "its gradients");

  // Rank order, this rank's share read from its own buffer: the same sum
  // on every rank whichever sums it. Half types add in float, rounded once.
  using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const size_t b = begin(rank_), e = begin(rank_ + 1);
  std::vector<const T*> from(world_);
  for (int p = 0; p < world_; ++p) from[p] = p == rank_ ? data : reinterpret_cast<const T*>(slot(p));
  if (world_ == 2) {
    const T* a = from[0];  // one of the two is `data`, written below
    const T* c = from[1];
    for (size_t i = b; i < e; ++i) {
      const T sum = static_cast<T>(static_cast<Acc>(a[i]) + static_cast<Acc>(c[i]));
      result[i] = sum;
      data[i] = sum;
    }
  } else {
    constexpr size_t kBlock = 1024;
    Acc acc[kBlock];
    for (size_t i0 = b; i0 < e; i0 += kBlock) {
      const size_t m = std::min(kBlock, e - i0);
      for (size_t i = 0; i < m; ++i) acc[i] = static_cast<Acc>(from[0][i0 + i]);
      for (int p = 1; p < world_; ++p)
        for (size_t i = 0; i < m; ++i) acc[i] += static_cast<Acc>(from[p][i0 + i]);
      for (size_t i = 0; i < m; ++i) result[i0 + i] = data[i0 + i] = static_cast<T>(acc[i]);
    }
  }
  publish(kReduced, s);
  wait_all(kReduced, s, "its sum");

  for (int c = 0; c < world_; ++c)
    if (c != rank_) std::memcpy(data + begin(c), result + begin(c), (begin(c + 1) - begin(c)) * sizeof(T));
}

void ShmAllreduce::publish(int field, uint32_t seq) {
  auto& word = header_->ranks()[rank_].seq[field];
  word.store(seq, std::memory_order_release);
  futex_wake(&word);
}

void ShmAllreduce::wait_all(int field, uint32_t seq, const char* what) {
  const auto start = std::chrono::steady_clock::now();
  RankWords* ranks = header_->ranks();
  for (int p = 0; p < world_; ++p) {
    auto& word = ranks[p].seq[field];
    for (int spin = 0; !reached(word.load(std::memory_order_acquire), seq); ++spin) {
      if (spin < kSpins) {
        cpu_relax();
        continue;
      }
      const uint32_t seen = word.load(std::memory_order_acquire);
      if (reached(seen, seq)) break;
      if (abort_) throw Error("shared-memory all-reduce: shut down while waiting");
      if (ranks[p].gone.load(std::memory_order_acquire))
        throw Error(CONVOY_STR("shared-memory all-reduce: rank " << p << " left before sending " << what));
      if (std::chrono::steady_clock::now() - start >= timeout_) {
        std::string late;
        for (int q = 0; q < world_; ++q)
          if (!reached(ranks[q].seq[field].load(), seq)) late += (late.empty() ? "" : ", ") + std::to_string(q);
        throw TimeoutError(CONVOY_STR("shared-memory all-reduce timed out after "
                                      << timeout_.count() / 1000.0 << " s: rank(s) " << late << " never sent "
                                      << what << " (piece " << seq << ")"));
      }
      futex_wait(&word, seen);
    }
  }
}

}  // namespace convoy
