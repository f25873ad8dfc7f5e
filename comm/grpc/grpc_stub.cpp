// Compiled instead of the gRPC transport when VEIL_WITH_GRPC resolves to OFF.

#include "comm/grpc/grpc_communicator.h"
#include "core/error.h"

namespace veil::comm {

std::unique_ptr<Communicator> connect_grpc(const GrpcOptions& /*options*/) {
  throw NotCompiledError(
      "[connect_grpc] veil was built without the gRPC transport; reconfigure with "
      "-DVEIL_WITH_GRPC=ON (needs libgrpc++-dev, libprotobuf-dev, protobuf-compiler, "
      "protobuf-compiler-grpc)");
}

bool grpc_compiled() {
  return false;
}

void inject_grpc_fault_for_testing(Communicator& /*comm*/, int /*to*/, GrpcFault /*fault*/) {
  throw NotCompiledError(
      "[inject_grpc_fault_for_testing] veil was built without the gRPC transport; reconfigure "
      "with -DVEIL_WITH_GRPC=ON");
}

}  // namespace veil::comm
