#pragma once

#include <string>
#include <vector>

namespace densenet::distributed {

/// Checks that `host` (a name or a numeric address) resolves to an address, at once: the
/// TCPStore would otherwise retry an unresolvable name with a warning every half second until
/// dist-timeout runs out. `what` names where the host was given ("--master-addr", "environment
/// variable MASTER_ADDR"). Throws c10::ValueError with one line naming `what`, the host and the
/// resolver's reason.
void check_resolves(const std::string& host, const std::string& what);

/// The network interfaces Gloo's connections use: `ifname` (the dist-ifname key) when it is not
/// empty, else the comma-separated names of the GLOO_SOCKET_IFNAME variable `environment_value`
/// (nullptr when unset), as PyTorch reads it; empty: none named (this host's name is resolved,
/// or loopback for a store on loopback). Throws c10::ValueError naming the interface and where
/// it was given when it does not exist on this machine or has no IP address.
std::vector<std::string> gloo_interfaces(const std::string& ifname, const char* environment_value);

}  // namespace densenet::distributed
