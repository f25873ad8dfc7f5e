# VEIL_WITH_GRPC: the gRPC transport (comm/grpc/). AUTO turns it on when gRPC's CMake package
# (gRPC::grpc++), protobuf, protoc and grpc_cpp_plugin are all found (Debian: libgrpc++-dev,
# libprotobuf-dev, protobuf-compiler, protobuf-compiler-grpc). ON requires them; OFF compiles
# comm/grpc/grpc_stub.cpp instead, whose connect_grpc() throws NotCompiledError.
set(VEIL_WITH_GRPC "AUTO" CACHE STRING "Build the gRPC transport: AUTO (when gRPC is found), ON, OFF")
set_property(CACHE VEIL_WITH_GRPC PROPERTY STRINGS AUTO ON OFF)

set(VEIL_GRPC_ENABLED OFF)
if(VEIL_WITH_GRPC STREQUAL "AUTO" OR VEIL_WITH_GRPC)
  set(_veil_grpc_required "")
  if(NOT VEIL_WITH_GRPC STREQUAL "AUTO")
    set(_veil_grpc_required REQUIRED)
  endif()
  find_package(Protobuf ${_veil_grpc_required})
  find_package(gRPC CONFIG ${_veil_grpc_required})
  find_program(VEIL_PROTOC protoc)
  find_program(VEIL_GRPC_CPP_PLUGIN grpc_cpp_plugin)
  if(Protobuf_FOUND AND gRPC_FOUND AND TARGET gRPC::grpc++ AND VEIL_PROTOC AND VEIL_GRPC_CPP_PLUGIN)
    set(VEIL_GRPC_ENABLED ON)
  elseif(_veil_grpc_required)
    message(FATAL_ERROR "VEIL_WITH_GRPC=${VEIL_WITH_GRPC} but gRPC++, protobuf, protoc or "
                        "grpc_cpp_plugin is missing (Debian: scripts/install_deps.sh)")
  endif()
endif()
message(STATUS "veil: VEIL_WITH_GRPC=${VEIL_WITH_GRPC} -> gRPC transport ${VEIL_GRPC_ENABLED}")

# veil_grpc_generate(<target> <proto>): generates <name>.pb.{h,cc} and <name>.grpc.pb.{h,cc} into
# the build directory (include them as "comm/grpc/<name>.pb.h") and builds them as the static
# library <target>, without veil's warning flags (generated code is not ours to fix).
function(veil_grpc_generate target proto)
  get_filename_component(_name "${proto}" NAME_WE)
  get_filename_component(_dir "${proto}" DIRECTORY)
  set(_out "${PROJECT_BINARY_DIR}/generated")
  file(RELATIVE_PATH _rel "${PROJECT_SOURCE_DIR}" "${_dir}")
  set(_gen "${_out}/${_rel}")
  set(_srcs "${_gen}/${_name}.pb.cc" "${_gen}/${_name}.grpc.pb.cc")
  set(_hdrs "${_gen}/${_name}.pb.h" "${_gen}/${_name}.grpc.pb.h")
  add_custom_command(
    OUTPUT ${_srcs} ${_hdrs}
    COMMAND ${CMAKE_COMMAND} -E make_directory "${_gen}"
    COMMAND ${VEIL_PROTOC} --proto_path=${PROJECT_SOURCE_DIR} --cpp_out=${_out}
            --grpc_out=${_out} --plugin=protoc-gen-grpc=${VEIL_GRPC_CPP_PLUGIN} "${proto}"
    DEPENDS "${proto}" ${VEIL_PROTOC} ${VEIL_GRPC_CPP_PLUGIN}
    COMMENT "protoc: generating ${_rel}/${_name}.pb and .grpc.pb sources"
    VERBATIM)
  add_library(${target} STATIC ${_srcs} ${_hdrs})
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${_out}>)
  target_link_libraries(${target} PUBLIC gRPC::grpc++ protobuf::libprotobuf)
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  install(TARGETS ${target} EXPORT veilTargets)
endfunction()
