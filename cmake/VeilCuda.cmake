# VEIL_WITH_CUDA: AUTO turns CUDA on when nvcc is found. Architectures default to 80;90, never
# "native" (CI has nvcc but no GPU). The CUDA kernels themselves arrive in a later issue: for now
# the CUDA backend is a stub that throws NotCompiledError-style errors when used, and only a small
# device-query translation unit is compiled with nvcc so the toolchain path stays tested.
set(VEIL_CUDA_ENABLED OFF)
if(VEIL_WITH_CUDA STREQUAL "AUTO")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(VEIL_CUDA_ENABLED ON)
  endif()
elseif(VEIL_WITH_CUDA)
  set(VEIL_CUDA_ENABLED ON)
endif()
if(VEIL_CUDA_ENABLED)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 80 90)
  endif()
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
endif()
message(STATUS "veil: VEIL_WITH_CUDA=${VEIL_WITH_CUDA} -> CUDA backend ${VEIL_CUDA_ENABLED}")
