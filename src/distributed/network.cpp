#include "densenet/distributed/network.h"

#include <c10/util/Exception.h>

#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace densenet::distributed {
namespace {

bool has_ip_address(const std::string& interface) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return true;  // cannot tell: Gloo's own lookup will say
  const std::unique_ptr<ifaddrs, void (*)(ifaddrs*)> owner(list, freeifaddrs);
  for (const ifaddrs* entry = list; entry != nullptr; entry = entry->ifa_next) {
    if (entry->ifa_addr == nullptr || interface != entry->ifa_name) continue;
    const int family = entry->ifa_addr->sa_family;
    if (family == AF_INET || family == AF_INET6) return true;
  }
  return false;
}

void check_interface(const std::string& interface, const std::string& what) {
  TORCH_CHECK_VALUE(if_nametoindex(interface.c_str()) != 0, what, ": '", interface,
                    "' is not a network interface of this machine (ip -brief address lists "
                    "them)");
  TORCH_CHECK_VALUE(has_ip_address(interface), what, ": '", interface,
                    "' has no IP address: Gloo connects over the interface's address");
}

}  // namespace

void check_resolves(const std::string& host, const std::string& what) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const int error = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (result != nullptr) freeaddrinfo(result);
  TORCH_CHECK_VALUE(error == 0, what, ": the host '", host, "' cannot be resolved (",
                    error == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(error),
                    "): give the address or name of rank 0's machine");
}

std::vector<std::string> gloo_interfaces(const std::string& ifname, const char* environment_value) {
  std::vector<std::string> names;
  if (!ifname.empty()) {
    check_interface(ifname, "config key 'dist-ifname'");
    return {ifname};
  }
  if (environment_value == nullptr) return names;
  // PyTorch's reading: a comma-separated list, one Gloo device per interface.
  const std::string text = environment_value;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string name = text.substr(start, end - start);
    if (!name.empty()) {
      check_interface(name, "environment variable GLOO_SOCKET_IFNAME");
      names.push_back(name);
    }
    start = end + 1;
  }
  return names;
}

}  // namespace densenet::distributed
