// The PRG keystream on the GPU (kernels/cuda_prg.h): AES-128-CTR with the T-table cipher of
// kernels/aes128.h, the same function the CPU tests check against OpenSSL.
//
// Launch: the host expands the key and passes the 11 round keys by value inside the kernel's
// parameter struct (no device allocation, nothing left behind in device memory that we own; the
// host copy is wiped after the launch is queued). Each block first builds the four T-tables
// (4 KiB) in shared memory from the S-box definition (one S-box evaluation per thread), then
// every thread encrypts counter blocks in a grid-stride loop. Thread j's block covers output
// bytes [16 j - skip, 16 j - skip + 16), where skip = position mod 16; blocks that lie wholly
// inside [0, nbytes) are stored with the widest store the output address allows (16, 8 or 4
// bytes; the alignment of out + 16 j - skip is the same for every j), the two edge blocks (and
// every block of an oddly aligned output) byte by byte.
#include <cstdint>
#include <string>

#include <cuda_runtime.h>

#include "kernels/aes128.h"
#include "kernels/cuda/arg_checks.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda_backend.h"
#include "kernels/cuda_prg.h"
#include "kernels/error.h"

namespace veil::kernels::cuda {
namespace {

using detail::check_launch;
using detail::use_device;

constexpr int kPrgBlock = 256;  // threads per block; also the number of T-table entries per table

struct KeystreamArgs {
  aes::RoundKeys rk;     // key material: lives only in this launch's parameter buffer
  uint64_t first_block;  // counter block of stream byte position - skip
  uint64_t nblocks;      // counter blocks to encrypt
  int64_t nbytes;        // output bytes
  int skip;              // position mod 16: bytes of the first block before the output starts
  int store_bytes;       // widest aligned store for whole blocks: 16, 8, 4 or 1
  uint8_t* out;
};

__global__ void __launch_bounds__(kPrgBlock) keystream_kernel(const KeystreamArgs args) {
  __shared__ uint32_t te[4][256];
  aes::set_ttable_entries(static_cast<uint8_t>(threadIdx.x), te);
  __syncthreads();

  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  for (uint64_t j = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < args.nblocks;
       j += stride) {
    uint32_t w[4];
    aes::counter_words(aes::Counter128{0, args.first_block + j}, w);
    aes::encrypt_block_words(args.rk, te, w, w);
    aes::store_block(w, static_cast<int64_t>(16 * j) - args.skip, args.nbytes, args.store_bytes,
                     args.out);
  }
}

}  // namespace

void aes128_ctr_keystream(
    const uint8_t* key, uint64_t position, uint8_t* out, int64_t nbytes, int device) {
  if (!checks::keystream(key, position, out, nbytes)) {
    return;
  }
  use_device(device, "aes128_ctr_keystream");

  KeystreamArgs args{};
  aes::expand_key(key, args.rk);
  const int skip = static_cast<int>(position % 16);
  args.first_block = position / 16;
  args.nblocks = (static_cast<uint64_t>(skip) + static_cast<uint64_t>(nbytes) + 15) / 16;
  args.nbytes = nbytes;
  args.skip = skip;
  args.store_bytes = aes::widest_store(out, skip);
  args.out = out;

  // Enough blocks to fill the device (8 resident blocks of 256 threads per SM), each thread
  // looping over several counter blocks so that the per-block table set-up is amortised.
  const uint64_t need = (args.nblocks + kPrgBlock - 1) / kPrgBlock;
  const uint64_t cap = static_cast<uint64_t>(detail::sm_count(device)) * 8;
  const auto grid = static_cast<unsigned>(need < cap ? need : cap);
  keystream_kernel<<<grid, kPrgBlock, 0, cudaStreamPerThread>>>(args);
  const cudaError_t launched = cudaGetLastError();
  aes::secure_wipe(&args.rk, sizeof(args.rk));  // the launch has copied its parameters
  detail::check(
      launched, "aes128_ctr_keystream",
      "(position=" + std::to_string(position) + ", nbytes=" + std::to_string(nbytes) + ")");
}

}  // namespace veil::kernels::cuda
