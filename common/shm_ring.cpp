// Shared-memory batch ring (see shm_ring.h for the protocol).
#include "common/shm_ring.h"

#include <linux/mempolicy.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>

#include <fcntl.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <ctime>

#include "common/error.h"

namespace convoy {

constexpr uint32_t kRingMagic = 0x43565952;  // "CVYR"
constexpr uint32_t kRingVersion = 1;
constexpr size_t kPage = 4096;

struct RingHeader {
  uint32_t magic;
  uint32_t version;
  uint32_t slots;
  uint32_t reserved;
  uint64_t slot_bytes;
  sem_t free_slots;                  // posted by the consumer's release()
  sem_t full_slots;                  // posted by publish() and fail()
  std::atomic<uint64_t> published;   // slots published so far
  std::atomic<uint32_t> failed;      // 1 once fail() was called
  char error[1024];
};
static_assert(sizeof(RingHeader) <= kPage, "RingHeader must fit its page");

namespace {
size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }
}  // namespace

ShmRing::ShmRing(std::string name, bool owner, void* base, size_t size)
    : name_(std::move(name)), owner_(owner), base_(base), size_(size),
      header_(static_cast<RingHeader*>(base)) {
  released_.assign(header_->slots, false);
}

std::unique_ptr<ShmRing> ShmRing::create(const std::string& name, uint32_t slots,
                                         uint64_t payload_bytes, int numa_node) {
  CONVOY_CHECK(slots >= 1, "ring needs at least one slot");
  uint64_t slot_bytes = round_up(sizeof(SlotHeader) + payload_bytes, kPage);
  size_t size = kPage + slots * slot_bytes;
  int fd = CONVOY_SYSCALL(::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600),
                          " (shared memory " << name << ")");
  void* base = MAP_FAILED;
  try {
    CONVOY_SYSCALL(::ftruncate(fd, static_cast<off_t>(size)),
                   " (shared memory " << name << ", " << size << " bytes; is /dev/shm full?)");
    base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CONVOY_CHECK(base != MAP_FAILED, "mmap " << name << ": " << detail::errno_text(errno));
  } catch (...) {
    ::close(fd);
    ::shm_unlink(name.c_str());
    throw;
  }
  ::close(fd);
  if (numa_node >= 0 && numa_node < 64) {
    // Before any page is touched: the slots' pages come from the reader's
    // node (asked for only on a machine of several nodes). Best effort: when
    // the kernel says no, first-touch placement stays, and the rank may read
    // its batches across the interconnect, so say so.
    unsigned long mask = 1ul << numa_node;
    if (::syscall(SYS_mbind, base, size, MPOL_PREFERRED, &mask, 64, 0) != 0)
      spdlog::warn("could not place ring {} on NUMA node {} (mbind: {}); its pages go where they are first written",
                   name, numa_node, detail::errno_text(errno));
  }
  auto* h = new (base) RingHeader();
  h->magic = kRingMagic;
  h->version = kRingVersion;
  h->slots = slots;
  h->slot_bytes = slot_bytes;
  CONVOY_SYSCALL(::sem_init(&h->free_slots, 1, slots));
  CONVOY_SYSCALL(::sem_init(&h->full_slots, 1, 0));
  h->published.store(0);
  h->failed.store(0);
  return std::unique_ptr<ShmRing>(new ShmRing(name, true, base, size));
}

std::unique_ptr<ShmRing> ShmRing::open(const std::string& name) {
  int fd = CONVOY_SYSCALL(::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0),
                          " (shared memory " << name << ")");
  off_t size = ::lseek(fd, 0, SEEK_END);
  void* base = size > 0 ? ::mmap(nullptr, static_cast<size_t>(size), PROT_READ | PROT_WRITE,
                                 MAP_SHARED, fd, 0)
                        : MAP_FAILED;
  int err = errno;
  ::close(fd);
  CONVOY_CHECK(base != MAP_FAILED, "mmap " << name << ": " << detail::errno_text(err));
  auto* h = static_cast<RingHeader*>(base);
  if (h->magic != kRingMagic || h->version != kRingVersion ||
      kPage + h->slots * h->slot_bytes != static_cast<uint64_t>(size)) {
    ::munmap(base, static_cast<size_t>(size));
    throw Error(CONVOY_STR("shared memory " << name << " is not a Convoy ring of version "
                                            << kRingVersion));
  }
  return std::unique_ptr<ShmRing>(new ShmRing(name, false, base, static_cast<size_t>(size)));
}

ShmRing::~ShmRing() {
  if (owner_) unlink_name();
  ::munmap(base_, size_);
}

void ShmRing::unlink_name() {
  if (unlinked_) return;
  unlinked_ = true;
  ::shm_unlink(name_.c_str());
}

uint32_t ShmRing::slots() const { return header_->slots; }
uint64_t ShmRing::slot_bytes() const { return header_->slot_bytes; }

uint8_t* ShmRing::slot(uint32_t i) const {
  return static_cast<uint8_t*>(base_) + kPage + i * header_->slot_bytes;
}

void ShmRing::wait(void* sem_ptr, std::chrono::milliseconds timeout, const Check& check,
                   const char* what) {
  auto* sem = static_cast<sem_t*>(sem_ptr);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    timespec ts;
    ::clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec += 1;
      ts.tv_nsec -= 1000000000L;
    }
    if (::sem_timedwait(sem, &ts) == 0) return;
    int err = errno;
    CONVOY_CHECK(err == ETIMEDOUT || err == EINTR,
                 "sem_timedwait on ring " << name_ << ": " << detail::errno_text(err));
    if (check) check();
    if (std::chrono::steady_clock::now() >= deadline)
      throw TimeoutError(CONVOY_STR("ring " << name_ << ": no " << what << " after "
                                            << timeout.count() / 1000.0 << " s"));
  }
}

uint8_t* ShmRing::acquire_write(std::chrono::milliseconds timeout, const Check& check) {
  wait(&header_->free_slots, timeout, check, "free slot (the consumer stopped reading)");
  uint8_t* p = slot(static_cast<uint32_t>(write_count_ % header_->slots));
  std::memset(p, 0, sizeof(SlotHeader));
  return p;
}

void ShmRing::publish() {
  ++write_count_;
  header_->published.store(write_count_, std::memory_order_release);
  CONVOY_SYSCALL(::sem_post(&header_->full_slots));
}

void ShmRing::fail(const std::string& message) {
  std::strncpy(header_->error, message.c_str(), sizeof header_->error - 1);
  header_->error[sizeof header_->error - 1] = '\0';
  header_->failed.store(1, std::memory_order_release);
  ::sem_post(&header_->full_slots);
}

ShmRing::ReadSlot ShmRing::acquire_read(std::chrono::milliseconds timeout, const Check& check) {
  auto checked = [&] {
    if (read_count_ >= header_->published.load(std::memory_order_acquire) &&
        header_->failed.load(std::memory_order_acquire))
      throw Error(header_->error);
    if (check) check();
  };
  wait(&header_->full_slots, timeout, checked, "batch from the producer");
  if (read_count_ >= header_->published.load(std::memory_order_acquire)) {
    // Woken by fail(), not by a batch.
    throw Error(header_->failed.load() ? header_->error : "ring woken without a batch");
  }
  uint32_t index = static_cast<uint32_t>(read_count_ % header_->slots);
  ++read_count_;
  return {index, slot(index)};
}

uint64_t ShmRing::queued() const {
  uint64_t published = header_->published.load();
  return published > read_count_ ? published - read_count_ : 0;
}

void ShmRing::release(uint32_t index) {
  std::lock_guard<std::mutex> lock(release_mu_);
  CONVOY_CHECK(index < released_.size() && !released_[index], "slot " << index << " released twice");
  released_[index] = true;
  while (released_[release_count_ % header_->slots]) {
    released_[release_count_ % header_->slots] = false;
    ++release_count_;
    CONVOY_SYSCALL(::sem_post(&header_->free_slots));
  }
}

}  // namespace convoy
