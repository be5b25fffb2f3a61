// parallel_for's pool (parallel.h). One job at a time (the caller's), published as a 64-bit ticket
// (epoch 32 bits | chunk count 16 | next chunk 16): a chunk is claimed by a compare-and-swap on the ticket, so
// a worker that wakes late, or after the job has ended, can claim nothing of it, and one that holds a claim
// keeps the job's fields valid (the caller waits for every claimed chunk before it publishes the next job).
#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include <time.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace alnet {

namespace {

constexpr auto kSpin = std::chrono::microseconds(50);        // an idle worker's spin before it sleeps
constexpr auto kCallerSpin = std::chrono::microseconds(10);  // the caller's spin on chunks left to workers
constexpr int64_t kChunksPerThread = 16;
constexpr double kContendedLimit = 0.3;
constexpr double kMinMeasuredJob = 50e-6;  // seconds: shorter jobs are not measured
constexpr int kSoloJobs = 64;  // about two inferences of the default model
using Clock = std::chrono::steady_clock;
constexpr int64_t kMaxChunks = 0xffff;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

double thread_cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

inline uint64_t make_ticket(uint64_t epoch, uint64_t chunks, uint64_t next) { return epoch << 32 | chunks << 16 | next; }
inline uint32_t epoch_of(uint64_t t) { return static_cast<uint32_t>(t >> 32); }
inline int64_t chunks_of(uint64_t t) { return static_cast<int64_t>(t >> 16 & 0xffff); }
inline int64_t next_of(uint64_t t) { return static_cast<int64_t>(t & 0xffff); }

class Pool {
 public:
  void run(int threads, int64_t count, int64_t grain, ChunkBody body, const void* context) {
    const int64_t chunks = std::min({kMaxChunks, (count + grain - 1) / grain, threads * kChunksPerThread});
    if (threads <= 1 || chunks <= 1 || solo_jobs_left_ > 0) {
      solo_jobs_left_ -= solo_jobs_left_ > 0;
      body(context, 0, count);
      return;
    }
    const auto start = Clock::now();
    const double cpu_start = thread_cpu_seconds();
    grow(threads - 1);
    body_ = body;
    context_ = context;
    count_ = count;
    chunk_items_ = (count + chunks - 1) / chunks;
    done_.store(0, std::memory_order_relaxed);
    const uint32_t epoch = ++epoch_;
    ticket_.store(make_ticket(epoch, static_cast<uint64_t>((count + chunk_items_ - 1) / chunk_items_), 0));
    if (sleepers_.load() > 0) {
      { std::lock_guard<std::mutex> lock(mutex_); }
      wake_.notify_all();
    }
    const int64_t total = claim_all(epoch);
    // Only chunks already claimed remain. Their workers may have been descheduled: after a short spin, sleep until
    // the last one is done instead of spinning on a core they may need.
    const auto spin_end = Clock::now() + kCallerSpin;
    while (done_.load(std::memory_order_acquire) < total && Clock::now() < spin_end)
      for (int i = 0; i < 16; ++i) cpu_relax();
    if (done_.load(std::memory_order_acquire) < total) {
      std::unique_lock<std::mutex> lock(mutex_);
      caller_waits_ = true;
      all_done_.wait(lock, [&] { return done_.load(std::memory_order_acquire) >= total; });
      caller_waits_ = false;
    }
    note_contention(start, cpu_start);
  }

 private:
  // Runs chunks of job epoch until none is left; returns its chunk count.
  int64_t claim_all(uint32_t epoch) {
    uint64_t t = ticket_.load(std::memory_order_acquire);
    while (epoch_of(t) == epoch && next_of(t) < chunks_of(t)) {
      if (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel)) continue;
      const int64_t begin = next_of(t) * chunk_items_;
      body_(context_, begin, std::min(count_, begin + chunk_items_));
      if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == chunks_of(t)) {  // the job's last chunk
        std::lock_guard<std::mutex> lock(mutex_);
        if (caller_waits_) all_done_.notify_one();
      }
      t = ticket_.load(std::memory_order_acquire);
    }
    return chunks_of(t);
  }

  // How much of a job's wall time the caller was not running (descheduled, or asleep waiting for a worker), as a
  // moving average over jobs: high when other processes hold the cores, where extra threads only share the
  // process's slice of them and add waits. Above kContendedLimit the next kSoloJobs jobs run on the calling
  // thread alone; then the workers are tried again.
  void note_contention(Clock::time_point start, double cpu_start) {
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    if (wall < kMinMeasuredJob) return;
    contention_ = 0.8 * contention_ + 0.2 * std::max(0.0, 1.0 - (thread_cpu_seconds() - cpu_start) / wall);
    if (contention_ > kContendedLimit) {
      solo_jobs_left_ = kSoloJobs;
      contention_ = 0;
    }
  }

  // Workers are never joined: the pool lives as long as the process (it is never destroyed, see pool()).
  void grow(int workers) {
    for (; workers_ < workers; ++workers_) std::thread([this] { work(); }).detach();
  }

  void work() {
    uint32_t seen = epoch_of(ticket_.load());
    for (;;) {
      const auto spin_end = Clock::now() + kSpin;
      while (epoch_of(ticket_.load(std::memory_order_acquire)) == seen &&
             Clock::now() < spin_end)
        for (int i = 0; i < 64; ++i) cpu_relax();
      if (epoch_of(ticket_.load()) == seen) {
        std::unique_lock<std::mutex> lock(mutex_);
        ++sleepers_;
        wake_.wait(lock, [&] { return epoch_of(ticket_.load()) != seen; });
        --sleepers_;
      }
      seen = epoch_of(ticket_.load(std::memory_order_acquire));
      claim_all(seen);
    }
  }

  int workers_ = 0;
  std::mutex mutex_;
  std::condition_variable wake_, all_done_;  // workers wait on wake_, the caller on all_done_ (both with mutex_)
  std::atomic<int> sleepers_{0};
  bool caller_waits_ = false;
  std::atomic<uint64_t> ticket_{0};
  uint32_t epoch_ = 0;
  // the current job, valid while one of its chunks is claimed
  ChunkBody body_ = nullptr;
  const void* context_ = nullptr;
  int64_t count_ = 0, chunk_items_ = 1;
  double contention_ = 0;  // see note_contention
  int solo_jobs_left_ = 0;
  std::atomic<int64_t> done_{0};
};

}  // namespace

int parallel_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

namespace {

// This process's pool: a child of fork() (multiprocessing, Ray workers) has none of its parent's threads, so it
// starts a pool of its own; the parent's is left as it was (never destroyed: workers are never joined).
Pool& pool() {
  static pid_t owner = 0;
  static Pool* current = nullptr;
  if (owner != getpid()) {
    owner = getpid();
    current = new Pool;
  }
  return *current;
}

}  // namespace

void parallel_chunks(int64_t count, int64_t grain, ChunkBody body, const void* context) {
  if (count <= 0) return;
  static std::mutex one_job;  // calls from several Python threads (the GIL is released) take turns
  std::unique_lock<std::mutex> lock(one_job);
  pool().run(parallel_threads(), count, std::max<int64_t>(1, grain), body, context);
}

}  // namespace alnet
