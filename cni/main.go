// Command sluice-cni is the sluice CNI plugin. It is a separate, small
// binary because the container runtime starts it once per pod attachment.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "sluice-cni: not built yet")
	os.Exit(1)
}
