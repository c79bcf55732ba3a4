// Package host is sluice's only access to the node: PCI sysfs, netlink and
// RDMA. Every program that runs on a node (agent, device plugin, CNI) goes
// through it.
//
// The roots it reads and writes (Paths) are constructor arguments, and the
// kernel side effects it cannot express as plain file reads go through two
// small interfaces (AttrWriter for sysfs writes, Netlink for netlink), so
// tests build a fake node in a temporary directory (see host/hosttest) and
// exercise the same code that runs on a real node.
//
// Discovery (Discover, VF) only reads. Configuration (SetNumVFs, ConfigureVF,
// BindDriver, SetMTU, SetRDMANetnsMode) reads the current state first, does
// nothing when it is already right, and undoes its own partial work when a
// later step fails, so a failed call leaves the device as it was or in a
// state the next call repairs.
//
// Link events (SubscribeLinks) pass a keep function at the subscription;
// the agent and the device plugin keep with a LinkFilter, which knows the
// last discovery's PFs and VFs, so that the veths pods come and go with
// never wake them.
package host
