package nodeutil

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// PolicyRouting addresses two VFs in the initial namespace and makes each
// address's locally generated traffic leave through its own VF instead of
// loopback: per-source routing tables, the local table moved after them,
// local sources accepted on input, ARP answered only on the owning VF. It
// is how soft-RoCE traffic between two VFs of one node crosses the VFs
// (measured by the probe suite; see docs/emulated-node.md). undo puts
// everything back, also after an error.
func PolicyRouting(devA, ipA, devB, ipB, subnet string, tables [2]int) (undo func(), err error) {
	var steps []func()
	undo = func() {
		for i := len(steps) - 1; i >= 0; i-- {
			steps[i]()
		}
	}
	run := func(args ...string) error {
		out, err := Exec(10*time.Second, args[0], args[1:]...)
		if err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, k := range []string{"all.accept_local=1", "all.rp_filter=0", "all.arp_ignore=1", "all.arp_announce=2",
		devA + ".accept_local=1", devA + ".rp_filter=0", devB + ".accept_local=1", devB + ".rp_filter=0"} {
		name, value, _ := strings.Cut(k, "=")
		path := "/proc/sys/net/ipv4/conf/" + strings.ReplaceAll(name, ".", "/")
		old, err := ReadFile(path)
		if err != nil {
			return undo, err
		}
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			return undo, fmt.Errorf("sysctl %s: %w", path, err)
		}
		steps = append(steps, func() { _ = os.WriteFile(path, []byte(old), 0o644) })
	}
	for i, c := range []struct{ dev, ip string }{{devA, ipA}, {devB, ipB}} {
		table := fmt.Sprint(tables[i])
		if err := run("ip", "addr", "add", c.ip+"/24", "dev", c.dev); err != nil {
			return undo, err
		}
		dev, ip := c.dev, c.ip
		steps = append(steps, func() { _, _ = Exec(10*time.Second, "ip", "addr", "del", ip+"/24", "dev", dev) })
		if err := run("ip", "link", "set", c.dev, "up"); err != nil {
			return undo, err
		}
		if err := run("ip", "route", "add", subnet, "dev", c.dev, "src", c.ip, "table", table); err != nil {
			return undo, err
		}
		steps = append(steps, func() { _, _ = Exec(10*time.Second, "ip", "route", "flush", "table", table) })
		if err := run("ip", "rule", "add", "pref", table, "iif", "lo", "from", c.ip, "lookup", table); err != nil {
			return undo, err
		}
		steps = append(steps, func() { _, _ = Exec(10*time.Second, "ip", "rule", "del", "pref", table) })
	}
	if err := run("ip", "rule", "add", "pref", "1000", "lookup", "local"); err != nil {
		return undo, err
	}
	if err := run("ip", "rule", "del", "pref", "0"); err != nil {
		_, _ = Exec(10*time.Second, "ip", "rule", "del", "pref", "1000")
		return undo, err
	}
	steps = append(steps, func() {
		_, _ = Exec(10*time.Second, "ip", "rule", "add", "pref", "0", "lookup", "local")
		_, _ = Exec(10*time.Second, "ip", "rule", "del", "pref", "1000")
	})
	out, err := Exec(10*time.Second, "ip", "route", "get", ipB, "from", ipA)
	if err != nil || !strings.Contains(out, "dev "+devA) {
		return undo, fmt.Errorf("ip route get %s from %s: %s %v (want dev %s)", ipB, ipA, out, err, devA)
	}
	return undo, nil
}
