// Data-service process (see data_service.h).
#include "data_service/data_service.h"

#include <sys/resource.h>

#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <atomic>
#include <mutex>
#include <thread>

#include "common/cli_args.h"
#include "common/config.h"
#include "common/control_channel.h"
#include "common/cpu_sets.h"
#include "common/error.h"
#include "common/job_token.h"
#include "common/logging.h"
#include "common/shm_ring.h"
#include "data_service/batch_producer.h"
#include "proto/control.pb.h"

namespace convoy {

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

struct Stopped {};   // the service is shutting down
struct PeerGone {};  // the worker closed its connection

class DataService {
 public:
  DataService(const Config& cfg, std::string socket, int clients, int threads, int shard, int shards,
              std::string restart_reason)
      : cfg_(cfg), socket_(std::move(socket)), clients_(clients), shard_(shard), shards_(shards),
        restart_reason_(std::move(restart_reason)), token_(job_token_from_env()),
        producer_(cfg, open_datasets(cfg.data), threads) {
    if (token_.empty())
      CONVOY_USER_ERROR("the data service needs the job token in " << kJobTokenEnv
                                                                   << " (convoy launch and convoy worker set it)");
  }

  int run() {
    ControlListener listener(socket_);
    const auto& d = producer_.data();
    std::string splits;
    for (const auto& [name, ds] : d.splits) splits += " " + name + "=" + std::to_string(ds->size());
    spdlog::info("{}serving {} rank(s) on {} with {} decode thread(s); {} classes; splits:{}",
                 shards_ > 1 ? "shard " + std::to_string(shard_) + " of " + std::to_string(shards_) + ": " : "",
                 clients_, control_socket_path(socket_), producer_.decode_threads(), d.class_names.size(), splits);
    std::vector<std::thread> handlers;
    while (!stop_.load()) {
      if (joined_.load() == clients_ && active_.load() == 0) break;
      auto ch = listener.accept(milliseconds(100));
      if (!ch) continue;
      ++active_;
      handlers.emplace_back([this, c = std::move(ch)]() mutable {
        serve(std::move(c));
        --active_;
      });
    }
    stop_ = true;
    for (auto& t : handlers) t.join();
    if (producer_.total_errors() > 0)
      spdlog::warn("skipped {} {} in total", producer_.total_errors(),
                   cfg_.data.kind == DataSpec::Kind::kSegmentationFolder ? "unusable image/mask pair(s)"
                                                                         : "corrupt image(s)");
    if (!fatal_.empty()) {
      spdlog::error("{}", fatal_);
      return 1;
    }
    return 0;
  }

  void stop() { stop_ = true; }

 private:
  // One worker's connection: the handshake, then the batches its Stream
  // requests ask for, until Shutdown or until it goes away.
  void serve(std::unique_ptr<ControlChannel> ch) {
    std::unique_ptr<ShmRing> ring;
    int rank = -1, world = 0;
    try {
      auto check = [&] {
        if (stop_.load()) throw Stopped{};
      };
      if (handshake(*ch, check, &ring, &rank, &world)) produce(*ch, *ring, rank, world, check);
    } catch (const Stopped&) {
      if (ring) ring->fail("the data service was stopped");
    } catch (const PeerGone&) {
      spdlog::debug("rank {} disconnected", rank);
    } catch (const std::exception& e) {
      std::string what = e.what();
      fail_all(what);
    }
    unregister_ring(ring.get());
  }

  // Hello (with this job's token) -> Ready -> Attached. *ring is created and
  // registered once the client proved the token, so a fatal error reaches it
  // during the rest of the handshake. False when the client was refused or
  // left before attaching.
  bool handshake(ControlChannel& ch, const ControlChannel::Check& check, std::unique_ptr<ShmRing>* ring, int* rank,
                 int* world) {
    proto::Envelope msg;
    if (!ch.receive(&msg, seconds(60), check)) return false;
    CONVOY_CHECK(msg.has_hello(), "expected Hello from a worker");
    if (!tokens_equal(msg.hello().job_token(), token_)) {
      // Not one of this job's ranks: refused, and it does not count.
      spdlog::warn("refused a client claiming rank {}: wrong job token; the job goes on", msg.hello().rank());
      proto::Envelope err;
      err.mutable_error()->set_message("refused: wrong job token (CONVOY_JOB_TOKEN must match the job's)");
      ch.send(err);
      return false;
    }
    ++joined_;
    *rank = msg.hello().rank();
    *world = msg.hello().world_size();
    CONVOY_CHECK(*rank >= 0 && *rank < *world, "bad rank " << *rank << " of " << *world);
    *ring = ShmRing::create(ring_name(socket_, *rank), static_cast<uint32_t>(cfg_.data_service.ring_slots),
                            producer_.layout().payload_bytes(), msg.hello().numa_node());
    register_ring(ring->get());
    ch.send(ready_message(**ring, *world));
    if (!ch.receive(&msg, seconds(60), check) || !msg.has_attached()) return false;
    (*ring)->unlink_name();  // mapped on both sides now: nothing can leak in /dev/shm
    spdlog::debug("rank {} attached to {}", *rank, (*ring)->name());
    return true;
  }

  // The ring's geometry, the class names and each split's size and steps for
  // a world of `world` ranks.
  proto::Envelope ready_message(const ShmRing& ring, int world) const {
    const auto layout = producer_.layout();
    proto::Envelope ready;
    auto* r = ready.mutable_ready();
    r->set_ring_name(ring.name());
    r->set_slots(ring.slots());
    r->set_slot_bytes(ring.slot_bytes());
    r->set_batch_size(layout.batch());
    for (const auto& f : layout.fields()) {
      auto* field = r->add_fields();
      field->set_name(f.name);
      field->set_dtype(dtype_name(f.dtype));
      for (int64_t d : f.shape) field->add_shape(d);
    }
    for (const auto& c : producer_.data().class_names) r->add_class_names(c);
    r->set_shard(shard_);
    r->set_shards(shards_);
    if (!restart_reason_.empty()) r->set_restart_reason(restart_reason_);
    for (size_t i = 0; i < producer_.data().splits.size(); ++i) {
      auto* s = r->add_splits();
      auto spec = producer_.shard_spec(static_cast<int>(i), world);
      s->set_name(producer_.data().splits[i].first);
      s->set_num_samples(spec.num_samples);
      s->set_steps_per_epoch(steps_per_epoch(spec));
    }
    return ready;
  }

  // Fault injection for the crash tests: CONVOY_FAULT_CRASH_AT="SPLIT:EPOCH:STEP[:once]"
  // (epoch counted from 1) makes this process die of SIGSEGV, with no core
  // file, when it is about to make that batch for rank 0; with ":once" only
  // a first process does (not one convoy launch restarted).
  void crash_if_asked(const std::string& split, uint32_t epoch, uint64_t step, int rank) const {
    static const std::string spec = [] {
      const char* v = std::getenv("CONVOY_FAULT_CRASH_AT");
      return std::string(v ? v : "");
    }();
    if (spec.empty() || rank != 0) return;
    const std::string at = split + ":" + std::to_string(epoch + 1) + ":" + std::to_string(step);
    const bool once = spec.size() > 5 && spec.compare(spec.size() - 5, 5, ":once") == 0;
    if ((once ? spec.substr(0, spec.size() - 5) : spec) != at || (once && !restart_reason_.empty())) return;
    spdlog::warn("CONVOY_FAULT_CRASH_AT={}: crashing now (fault injection)", spec);
    rlimit none{0, 0};
    ::setrlimit(RLIMIT_CORE, &none);
    std::signal(SIGSEGV, SIG_DFL);
    std::raise(SIGSEGV);
  }

  // Each Stream request's steps, one slot each, in order; a full ring blocks
  // (back-pressure) until the rank takes a batch or stops taking them.
  void produce(ControlChannel& ch, ShmRing& ring, int rank, int world, const ControlChannel::Check& check) {
    auto alive = [&] {
      check();
      if (ch.peer_closed()) throw PeerGone{};
    };
    // With several shards a healthy rank may leave this ring full while it
    // waits (up to timeout_s) for another shard to be restarted; the rank
    // reports that itself. Here, "stopped taking batches" is a backstop.
    const int slack = shards_ > 1 ? cfg_.data_service.timeout_s + 10 : 0;
    const auto timeout = seconds(cfg_.data_service.timeout_s + slack);
    proto::Envelope msg;
    for (;;) {
      if (!ch.receive(&msg, std::chrono::hours(24 * 365), check) || msg.has_shutdown()) return;
      CONVOY_CHECK(msg.has_stream(), "expected Stream or Shutdown from rank " << rank);
      const auto& st = msg.stream();
      int split = producer_.split_index(st.split());
      CONVOY_CHECK(split >= 0, "rank " << rank << " asked for unknown split '" << st.split() << "'");
      for (uint64_t step = st.start_step(); step < st.start_step() + st.num_steps(); ++step) {
        uint8_t* slot;
        try {
          slot = ring.acquire_write(timeout, alive);
        } catch (const TimeoutError&) {
          throw TimeoutError(CONVOY_STR("rank " << rank << " stopped taking batches: no free slot in its ring for "
                                                << timeout.count() << " s (" << st.split() << " epoch "
                                                << st.epoch() + 1 << ", step " << step << ")"));
        }
        crash_if_asked(st.split(), st.epoch(), step, rank);
        producer_.fill(split, st.epoch(), step, rank, world, slot, shard_, shards_);
        ring.publish();
      }
    }
  }

  void register_ring(ShmRing* r) {
    std::lock_guard<std::mutex> lock(mu_);
    rings_.push_back(r);
  }
  void unregister_ring(ShmRing* r) {
    std::lock_guard<std::mutex> lock(mu_);
    rings_.erase(std::remove(rings_.begin(), rings_.end(), r), rings_.end());
  }
  // A fatal error: every rank receives it through its ring, and we exit 1.
  void fail_all(const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    if (fatal_.empty()) fatal_ = what;
    for (auto* r : rings_) r->fail("data service: " + what);
    stop_ = true;
  }

  Config cfg_;
  std::string socket_;
  int clients_;
  int shard_, shards_;
  std::string restart_reason_;
  std::string token_;
  BatchProducer producer_;
  std::atomic<bool> stop_{false};
  std::atomic<int> active_{0};
  std::atomic<int> joined_{0};  // clients that presented the job token
  std::mutex mu_;
  std::vector<ShmRing*> rings_;
  std::string fatal_;
};

// Unpinned, the service shares the node with the workers: half the cores.
// Pinned, its CPU set is its own: one thread per CPU.
int default_decode_threads(const Config& cfg, bool pinned) {
  if (cfg.data_service.decode_threads > 0) return cfg.data_service.decode_threads;
  if (pinned) return static_cast<int>(allowed_cpus().size());
  return std::max(1u, std::thread::hardware_concurrency() / 2);
}

}  // namespace

int data_service_main(const std::vector<std::string>& argv) {
  CliArgs args("data-service",
               "usage: convoy data-service CONFIG --socket NAME --clients N [--shard K --shards N]\n"
               "                           [--cpus LIST] [--threads N] [--set field=value ...]\n"
               "Decodes and augments images into shared-memory batches for N local worker ranks; with\n"
               "--shards, only the samples of its shard (sample index modulo the shard count).\n"
               "Normally started by `convoy launch` (or by local rank 0 under mpirun), not by hand.\n"
               "  --cpus LIST  pin the process and its decode threads to these CPUs (e.g. 0-3)\n"
               "example: convoy data-service runs/x/config.pbtxt --socket convoy-abc --clients 2\n");
  args.option("--socket").option("--clients").option("--set", true).option("--threads");
  args.option("--shard").option("--shards").option("--cpus").option("--restart-reason");
  if (!args.parse(argv)) return 0;
  if (args.positional().size() != 1 || !args.has("--socket"))
    CONVOY_USER_ERROR("convoy data-service needs CONFIG and --socket (see convoy data-service --help)");
  Config cfg = load_config(args.positional()[0], args.all("--set"));
  init_logging("data", -1, cfg.log_level);

  // Signals are taken by a dedicated thread, so shutdown is orderly: rings are
  // failed (waking their readers) and unmapped, nothing is left in /dev/shm.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // SIGUSR1 is the ranks' "checkpoint and stop" (Slurm's --signal); some
  // launchers (Open MPI 5's prterun, srun) send it to the whole process
  // group, this service included. The ranks stop it when they are done.
  ::signal(SIGUSR1, SIG_IGN);

  const int shards = args.get_int("--shards", 1), shard = args.get_int("--shard", 0);
  if (shards < 1 || shard < 0 || shard >= shards) CONVOY_USER_ERROR("--shard must be in 0..--shards-1");
  if (args.has("--cpus")) {
    // Before any thread exists, so the decode pool inherits the set.
    CpuList cpus = parse_cpu_list(args.get("--cpus"), "--cpus");
    pin_to(cpus);
    spdlog::debug("pinned to CPUs {}", format_cpu_list(cpus));
  }
  DataService service(cfg, args.get("--socket"), args.get_int("--clients", 1),
                      args.get_int("--threads", default_decode_threads(cfg, args.has("--cpus"))), shard, shards,
                      args.get("--restart-reason"));
  std::atomic<bool> done{false};
  std::thread signals([&] {
    timespec ts{0, 100 * 1000 * 1000};
    while (!done.load()) {
      int sig = sigtimedwait(&set, nullptr, &ts);
      if (sig > 0) {
        spdlog::info("received signal {}, stopping", sig);
        service.stop();
      }
    }
  });
  int rc = service.run();
  done = true;
  signals.join();
  return rc;
}

}  // namespace convoy
