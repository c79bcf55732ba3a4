// Package envtest holds the API-server-level tests: the CRDs install, the
// schema (OpenAPI + CEL) accepts good objects and rejects bad ones naming the
// field at fault.
package envtest

import (
	"fmt"
	"os"
	"testing"

	"github.com/sluice-net/sluice/test/testenv"
)

// env is shared by the tests of this package; each test uses its own
// object names or namespace.
var env *testenv.Env

func TestMain(m *testing.M) {
	e, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	env = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
	}
	os.Exit(code)
}
