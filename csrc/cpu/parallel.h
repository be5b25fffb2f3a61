// parallel_for: the CPU kernels' thread pool, in place of OpenMP parallel regions.
//
// Why not `#pragma omp parallel for`: a fork-join region ends only when every thread of the team has arrived,
// so on a machine whose cores are shared (a cloud VM, other processes running) one thread the OS has not
// scheduled yet stalls the whole op until it runs, and OpenMP's idle threads spin for milliseconds between
// regions, taking the core from the thread that has work. Here the caller claims chunks too, workers join
// when they are scheduled, and the caller waits only for chunks already being run: a worker that never
// woke up costs nothing. Idle workers spin briefly, then sleep. Where the caller keeps losing its core during
// jobs (other processes hold the cores), it runs jobs alone for a while (parallel.cpp).
#pragma once

#include <cstdint>

namespace alnet {

// How many threads parallel_for uses: OpenMP's max threads (OMP_NUM_THREADS, torch.set_num_threads) where the
// module is built with OpenMP, else 1.
int parallel_threads();

// A chunk's work: body(context, begin, end).
using ChunkBody = void (*)(const void* context, int64_t begin, int64_t end);
void parallel_chunks(int64_t count, int64_t grain, ChunkBody body, const void* context);

// fn(begin, end) over [0, count) in contiguous chunks of at least grain items (about 16 per thread), run by the
// calling thread and the pool's workers; returns when every item is done. fn must not call parallel_for.
// (A plain function pointer, not std::function: headers compiled under an ISA target pragma include this.)
template <typename Fn>
inline void parallel_for(int64_t count, int64_t grain, const Fn& fn) {
  parallel_chunks(count, grain, [](const void* f, int64_t begin, int64_t end) { (*static_cast<const Fn*>(f))(begin, end); },
                  &fn);
}

}  // namespace alnet
