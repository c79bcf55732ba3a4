package nodeutil

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RDMA traffic between rxe devices, with the perftest and rdmacm tools.

// KernelMajor is the guest kernel's major version: soft-RoCE carries RDMA
// between network namespaces from 7 on.
func KernelMajor(t testing.TB) int {
	rel := strings.TrimSpace(MustRead(t, "/proc/sys/kernel/osrelease"))
	major, _, _ := strings.Cut(rel, ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		t.Fatalf("kernel release %q: %v", rel, err)
	}
	return n
}

// BWResult is one ib_write_bw run.
type BWResult struct {
	Summary string
	Took    time.Duration
	Err     error
}

// WriteBW runs ib_write_bw (200 RDMA writes of 4 KiB, RoCE v2 GIDs of the
// given IPv4 addresses): server on devA in nsA, client on devB in nsB
// connecting its TCP exchange to connect, bounded by timeout.
func WriteBW(t testing.TB, nsA, devA, ipA, nsB, devB, ipB, connect string, port int, timeout time.Duration) BWResult {
	t.Helper()
	WaitRDMAActive(t, devA)
	WaitRDMAActive(t, devB)
	gA, gB := GIDIndex(t, devA, ipA), GIDIndex(t, devB, ipB)
	args := func(dev string, gid int) []string {
		return []string{"ib_write_bw", "-d", dev, "-x", strconv.Itoa(gid), "-n", "200", "-s", "4096", "-F", "-p", strconv.Itoa(port)}
	}
	start := time.Now()
	name, sargs := inNs(nsA, args(devA, gA)...)
	srv := Start(90*time.Second, name, sargs...)
	if err := WaitTCPListenErr(nsA, port, 30*time.Second); err != nil {
		out, serr := srv.WaitOrKill(0)
		t.Fatalf("ib_write_bw server: %v (%v)\n%s", err, serr, out)
	}
	name, cargs := inNs(nsB, append(args(devB, gB), connect)...)
	client, cerr := Exec(timeout, name, cargs...)
	grace := 30 * time.Second
	if cerr != nil {
		grace = 3 * time.Second
	}
	server, serr := srv.WaitOrKill(grace)
	res := BWResult{Took: time.Since(start)}
	switch {
	case cerr != nil:
		res.Err = fmt.Errorf("client: %w\nserver:\n%s", cerr, server)
	case serr != nil:
		res.Err = fmt.Errorf("server: %w\nclient:\n%s", serr, client)
	}
	res.Summary = BWLine(client)
	if res.Summary == "" {
		res.Summary = "no result line"
	}
	return res
}

// inNs prefixes a command with "ip netns exec ns" unless ns is "" (the
// initial namespace).
func inNs(ns string, cmd ...string) (string, []string) {
	if ns == "" {
		return cmd[0], cmd[1:]
	}
	return "ip", append([]string{"netns", "exec", ns}, cmd...)
}

// BWLine is perftest's result line for 4 KiB writes ("#bytes #iterations
// BW peak BW average MsgRate") as "4096 B x N, peak P MB/s, average A
// MB/s", or "" when the output has none.
func BWLine(out string) string {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 5 && f[0] == "4096" {
			return fmt.Sprintf("%s B x %s, peak %s MB/s, average %s MB/s", f[0], f[1], f[2], f[3])
		}
	}
	return ""
}

// RPing runs 3 rping iterations from ipB (nsB) to a server on ipA (nsA),
// the client bounded by timeout.
func RPing(nsA, ipA, nsB, ipB string, port int, timeout time.Duration) (string, error) {
	p := strconv.Itoa(port)
	name, sargs := inNs(nsA, "rping", "-s", "-a", ipA, "-p", p, "-C", "3")
	srv := Start(60*time.Second, name, sargs...)
	var out string
	var err error
	// rdma_cm has no listening socket to wait for: retry the client while
	// the server starts.
	name, cargs := inNs(nsB, "rping", "-c", "-I", ipB, "-a", ipA, "-p", p, "-C", "3", "-v")
	for i := 0; i < 10; i++ {
		out, err = Exec(timeout, name, cargs...)
		if err == nil || !strings.Contains(out, "REJECTED") {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	grace := 20 * time.Second
	if err != nil {
		grace = 3 * time.Second
	}
	server, serr := srv.WaitOrKill(grace)
	if err == nil && serr != nil {
		err = fmt.Errorf("server: %w: %s", serr, server)
	}
	if err == nil && !strings.Contains(out, "rdma-ping-2") {
		err = fmt.Errorf("client output lacks rdma-ping-2")
	}
	return out, err
}
