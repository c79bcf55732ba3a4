// Command noderun boots the emulated sluice node and runs a shell script in
// it, for exploring by hand what the kernel does (hack/node-run.sh wraps it):
//
//	go run ./test/node/noderun [-pfs 2] [-iommu] [-keep] 'rdma link; ip -br link'
//	go run ./test/node/noderun -f script.sh
//
// The console streams to stdout; the exit status is the script's.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-net/sluice/test/node/vm"
)

func main() {
	pfs := flag.Int("pfs", 1, "number of igb PFs (1 or 2)")
	iommu := flag.Bool("iommu", false, "emulated Intel IOMMU (vfio-pci works)")
	file := flag.String("f", "", "read the script from this file")
	keep := flag.Bool("keep", false, "keep the run directory")
	memory := flag.Int("m", 0, "guest memory in MiB (default: the harness's)")
	timeout := flag.Duration("timeout", 10*time.Minute, "timeout for the whole run")
	mttcg := flag.Bool("mttcg", false, "multi-threaded TCG: each vCPU on its own host thread (see vm.Options.MultiThreadTCG)")
	var env multiFlag
	flag.Var(&env, "e", "KEY=VALUE exported to the script (repeatable)")
	flag.Parse()

	script := strings.Join(flag.Args(), " ")
	if *file != "" {
		b, err := os.ReadFile(*file)
		if err != nil {
			fatal(err)
		}
		script = string(b)
	}
	if strings.TrimSpace(script) == "" {
		fatal(fmt.Errorf("usage: noderun [flags] 'script' | -f script.sh"))
	}
	if err := vm.Available(); err != nil {
		fatal(err)
	}
	envMap := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			fatal(fmt.Errorf("-e %q: want KEY=VALUE", kv))
		}
		envMap[k] = v
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	wd, err := os.Getwd()
	if err != nil {
		fatal(err)
	}
	res, err := vm.Run(ctx, vm.Options{
		Script: script, Env: envMap, PFs: *pfs, IOMMU: *iommu, HostDirs: []string{wd},
		Timeout: *timeout, Console: os.Stdout, MemoryMB: *memory, MultiThreadTCG: *mttcg,
	})
	if res != nil {
		fmt.Fprintf(os.Stderr, "noderun: boot %s, total %s, exit %d, run dir %s\n",
			res.Boot.Round(time.Millisecond), res.Duration.Round(time.Millisecond), res.ExitCode, res.RunDir)
		if !*keep {
			_ = os.RemoveAll(res.RunDir)
		}
	}
	if err != nil {
		fatal(err)
	}
	os.Exit(res.ExitCode)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "noderun:", err)
	os.Exit(2)
}
