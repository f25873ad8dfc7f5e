# VEIL_WITH_ONNX: ONNX model import and export (models/onnx_import.h, models/onnx_export.h) through
# Debian's libonnx (the protobuf classes of onnx.proto; package libonnx-dev, CMake package ONNX
# with the imported target onnx_proto, which links protobuf::libprotobuf). AUTO turns it on when
# both are found; ON requires them; OFF compiles models/onnx_stub.cpp instead of
# models/onnx_proto.cpp, so reading or writing an ONNX file throws NotCompiledError.
#
# ONNX and protobuf headers are included only by models/onnx_proto.cpp.
set(VEIL_WITH_ONNX "AUTO" CACHE STRING
    "Build ONNX import/export (libonnx): AUTO (when found), ON, OFF")
set_property(CACHE VEIL_WITH_ONNX PROPERTY STRINGS AUTO ON OFF)

set(VEIL_ONNX_ENABLED OFF)
if(VEIL_WITH_ONNX STREQUAL "AUTO" OR VEIL_WITH_ONNX)
  set(_veil_onnx_required "")
  if(NOT VEIL_WITH_ONNX STREQUAL "AUTO")
    set(_veil_onnx_required REQUIRED)
  endif()
  # onnx_proto's interface names protobuf::libprotobuf: find protobuf first.
  if(NOT TARGET protobuf::libprotobuf)
    find_package(Protobuf ${_veil_onnx_required})
  endif()
  find_package(ONNX CONFIG ${_veil_onnx_required})
  if(TARGET protobuf::libprotobuf AND ONNX_FOUND AND TARGET onnx_proto)
    set(VEIL_ONNX_ENABLED ON)
  elseif(_veil_onnx_required)
    message(FATAL_ERROR "VEIL_WITH_ONNX=${VEIL_WITH_ONNX} but libonnx (CMake package ONNX, target "
                        "onnx_proto) or protobuf is missing (Debian: libonnx-dev, "
                        "libprotobuf-dev; scripts/install_deps.sh)")
  endif()
endif()
message(STATUS "veil: VEIL_WITH_ONNX=${VEIL_WITH_ONNX} -> ONNX import/export ${VEIL_ONNX_ENABLED}")

# The source veil_add_library(models ...) leaves out: the stub when libonnx is used, the libonnx
# code otherwise.
if(VEIL_ONNX_ENABLED)
  set(VEIL_ONNX_EXCLUDE "/models/onnx_stub\\.cpp$")
else()
  set(VEIL_ONNX_EXCLUDE "/models/onnx_proto\\.cpp$")
endif()

# veil_onnx_link(<target>): links libonnx's protobuf classes privately into <target> (a no-op
# without ONNX).
function(veil_onnx_link target)
  if(VEIL_ONNX_ENABLED)
    target_link_libraries(${target} PRIVATE onnx_proto protobuf::libprotobuf)
  endif()
endfunction()
