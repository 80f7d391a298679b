// Where a data-parallel run connects: the rendezvous host must resolve, and the interfaces
// named for Gloo must exist, each refused at once with one line naming what was given.
#include "densenet/distributed/network.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/expect_error.h"

namespace densenet::distributed {
namespace {

TEST(Network, AHostThatResolvesIsAccepted) {
  check_resolves("127.0.0.1", "MASTER_ADDR");
  check_resolves("localhost", "MASTER_ADDR");
  check_resolves("::1", "MASTER_ADDR");
}

TEST(Network, AHostThatDoesNotResolveIsNamed) {
  // .invalid never resolves (RFC 2606).
  EXPECT_ERROR_CONTAINS(check_resolves("nonexistent.invalid", "--master-addr"),
                        "--master-addr: the host 'nonexistent.invalid' cannot be resolved (");
  try {
    check_resolves("nonexistent.invalid", "--master-addr");
  } catch (const c10::ValueError&) {  // a command-line mistake: the CLI exits 2
  } catch (...) {
    ADD_FAILURE() << "not a c10::ValueError";
  }
}

TEST(Network, InterfacesFromTheKeyOrGlooSocketIfname) {
  EXPECT_EQ(gloo_interfaces("", nullptr), std::vector<std::string>{});
  EXPECT_EQ(gloo_interfaces("lo", nullptr), std::vector<std::string>{"lo"});
  // PyTorch's reading of the variable: comma-separated, one device each.
  EXPECT_EQ(gloo_interfaces("", "lo,,lo"), (std::vector<std::string>{"lo", "lo"}));
  // The key wins: it is given for this run, the variable is the environment's.
  EXPECT_EQ(gloo_interfaces("lo", "nosuchif0"), std::vector<std::string>{"lo"});
}

TEST(Network, AnInterfaceThisMachineLacksIsNamed) {
  EXPECT_ERROR_CONTAINS(gloo_interfaces("nosuchif0", nullptr),
                        "config key 'dist-ifname': 'nosuchif0' is not a network interface of "
                        "this machine");
  EXPECT_ERROR_CONTAINS(gloo_interfaces("", "lo,nosuchif0"),
                        "environment variable GLOO_SOCKET_IFNAME: 'nosuchif0' is not a network "
                        "interface of this machine");
}

}  // namespace
}  // namespace densenet::distributed
