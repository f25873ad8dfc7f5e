#pragma once
// VEIL_HD marks functions that run on both the host and the device. Under nvcc it expands to
// __host__ __device__; under a host compiler it expands to nothing, so the same inline functions
// are ordinary C++ that CPU tests can call (the only way per-element logic is checked on machines
// without a GPU).

#if defined(__CUDACC__)
#define VEIL_HD __host__ __device__
#else
#define VEIL_HD
#endif
