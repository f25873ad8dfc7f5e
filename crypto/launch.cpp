#include "crypto/launch.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "comm/in_process.h"
#include "core/parallel.h"

namespace veil::crypto {

int default_threads_per_party(int world_size) {
  const auto hw = static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, hw / std::max(1, world_size));
}

void launch(const LaunchOptions& options, const std::function<void(Party&)>& fn) {
  VEIL_CHECK(options.world_size >= 2, "[launch] expected world_size >= 2, got {}",
             options.world_size);
  const bool with_dealer = options.party.provider == ProviderKind::kDealer;
  comm::InProcessHub hub(options.world_size, with_dealer, options.device_handover);
  std::mutex mu;
  std::exception_ptr first_error;
  bool failed = false;
  auto fail = [&](comm::Communicator& comm, std::exception_ptr err, const std::string& what) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!failed) {
        failed = true;
        first_error = err;
      }
    }
    comm.abort(what);
  };
  std::vector<std::thread> threads;
  for (int r = 0; r < options.world_size; ++r) {
    threads.emplace_back([&, r] {
      comm::Communicator& comm = hub.communicator(r);
      try {
        core::set_num_threads(options.threads_per_party > 0
                                  ? options.threads_per_party
                                  : default_threads_per_party(options.world_size));
        Party party(comm, options.party_for_rank ? options.party_for_rank(r) : options.party);
        CurrentPartyGuard guard(party);
        fn(party);
        party.finish();
      } catch (const std::exception& e) {
        fail(comm, std::current_exception(), e.what());
      } catch (...) {
        fail(comm, std::current_exception(), "unknown exception");
      }
    });
  }
  if (with_dealer) {
    threads.emplace_back([&] {
      comm::Communicator& comm = hub.communicator(options.world_size);
      try {
        // The dealer idles while parties compute locally: give it a longer leash; an abort still
        // wakes it at once.
        comm.set_timeout(options.party.timeout * 10);
        DealerService(comm).serve();
      } catch (const std::exception& e) {
        fail(comm, std::current_exception(), e.what());
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  if (first_error) {
    std::rethrow_exception(first_error);
  }
}

}  // namespace veil::crypto
