#pragma once
// The emulated CUDA device of the test suite (tests/emulated_device/cuda_emulator.cpp): what a
// test can ask of it beyond the kernels::cuda API it implements.
//
// Binaries linked with the emulator (CMake: veil_test_emulated, veil-train-emulated) see one CUDA
// device, "device 0", whose memory is host memory that only the emulator hands out and every
// kernel call checks. Its kernels run the element functions of the real ones
// (kernels/cuda/elementwise_ops.h, kernels/bit_circuit_eval.h, kernels/aes128.h) in host loops.
// It tests what lies above the kernels on machines without a GPU (CI): core's dispatch by device,
// the device paths of the protocols, the staging of device tensors through the transports and the
// `--device cuda` path of the programs. It says nothing about the CUDA kernels themselves, their
// launch geometry, streams or speed: those need a GPU (scripts/gpu_verify.sh).

#include <cstdint>

namespace veil::testing::emulated_device {

/// What the emulated device has done for the calling thread since its last reset_stats() (each
/// party of an in-process session is a thread and sees its own work).
struct Stats {
  uint64_t bytes_to_device = 0;    ///< copy_to_device
  uint64_t bytes_to_host = 0;      ///< copy_to_host
  uint64_t copies_to_device = 0;   ///< copy_to_device calls (each one waits for the stream)
  uint64_t copies_to_host = 0;     ///< copy_to_host calls (each one waits for the stream)
  uint64_t kernel_calls = 0;       ///< kernel API calls that did device work
  uint64_t live_allocations = 0;   ///< device blocks of all threads not yet freed (not reset)
  uint64_t rejected_pointers = 0;  ///< kernel arguments that were not device memory
};

Stats stats();
void reset_stats();

/// The whole process's counts since start (all threads). With VEIL_EMULATED_REPORT=1 in the
/// environment they are printed to stderr at exit: how many kernel calls and host<->device copies
/// a run makes, which is what a GPU run pays per launch and per synchronization.
Stats process_stats();

/// Whether this binary runs on the emulated device (true whenever the emulator is linked).
bool active();

}  // namespace veil::testing::emulated_device
