#pragma once
// The PRG keystream on the GPU: AES-128-CTR bit for bit as crypto::Prg (libgcrypt) produces it,
// so shares and masks drawn on either device agree. Byte i of the stream of key k is byte i mod 16
// of AES_k(i / 16), the block index a 128-bit big-endian counter starting at 0. Device pointers;
// stream = the calling thread's per-thread default stream. Stub without CUDA: NotCompiledError.
// The cipher itself (key schedule, T-table rounds, counter blocks) is kernels/aes128.h, whose host
// path the CPU tests check against OpenSSL.

#include <cstdint>

namespace veil::kernels::cuda {

/// Writes keystream bytes [position, position + nbytes) of the AES-128 key `key` (16 bytes, host
/// memory) to device memory `out`. Any position and length (no alignment needed); out needs no
/// alignment either (16-, 8- and 4-byte aligned outputs take wide stores). The key is expanded on
/// the host; the round keys travel to the device only as the kernel's by-value argument and the
/// host copy is wiped after the launch. Asynchronous on the calling thread's stream; nbytes == 0
/// does nothing.
/// Cost: one launch; about 200 shared-memory table lookups per 16 bytes (T-table AES), memory
/// bound only on small draws. Errors: veil::Error for nbytes < 0, position + nbytes > 2^64 - 1 or
/// a null key/out (checked before any device work); CudaError for a bad device or a failed launch;
/// NotCompiledError without CUDA.
/// Security: table-based AES is not constant time; it expands a party's own seeds on its own
/// device. The key and round keys never appear in messages.
/// Source: FIPS-197 (AES), NIST SP 800-38A §6.5 (CTR mode); OpenSSL's 128-bit counter increment.
void aes128_ctr_keystream(
    const uint8_t* key, uint64_t position, uint8_t* out, int64_t nbytes, int device);

}  // namespace veil::kernels::cuda
