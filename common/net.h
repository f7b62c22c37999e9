// TCP and addressing helpers for the rendezvous across hosts: which address
// a process binds (an interface chosen by name, as GLOO_SOCKET_IFNAME does),
// listening and connecting with deadlines, and what "this host" is.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <string>

namespace convoy {

// CONVOY_SOCKET_IFNAME, else GLOO_SOCKET_IFNAME, else "".
std::string socket_ifname_from_env();

// The IPv4 address of interface `ifname` ("eth0"), or "" when it has none.
std::string interface_address(const std::string& ifname);

// What `spec` names, as an address to bind: an interface name (its address),
// an IPv4 address, or a host name (resolved). Throws UserError when it names
// nothing this host has.
std::string bind_address(const std::string& spec);

// The local address this host uses to reach `host` (no packet is sent):
// the right interface to bind when the master is on another host.
std::string local_address_towards(const std::string& host);

// A listening TCP socket on addr:port (port 0: a free one, returned in
// *bound_port). Throws Error naming the address when it cannot bind.
int listen_tcp(const std::string& addr, int port, int* bound_port);

// Connects to host:port, retrying while nobody listens yet or the network is
// unreachable, until `deadline`; then throws TimeoutError naming host:port
// and the last error.
int connect_tcp(const std::string& host, int port, std::chrono::steady_clock::time_point deadline);

// "1.2.3.4:5678" for an IPv4/IPv6 socket address.
std::string sockaddr_text(const sockaddr* sa);

// Names this host as seen by the processes on it: the kernel's boot id and
// the network namespace, hashed to 8 hex digits. Two processes get the same
// value exactly when they share a machine and a network namespace (which is
// what a "host" is in the multi-host test bed).
std::string host_key();

}  // namespace convoy
