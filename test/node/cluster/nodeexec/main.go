// Command nodeexec runs in the real-cluster node (the QEMU guest) and runs
// commands for the host test: the host reaches it through a port QEMU
// forwards from its loopback. It is test plumbing, the node's "ssh": POST
// /exec with {"argv": [...], "timeoutSeconds": n} answers {"stdout",
// "stderr", "exit"}.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log"
	"net/http"
	"os/exec"
	"time"
)

type request struct {
	Argv           []string `json:"argv"`
	TimeoutSeconds int      `json:"timeoutSeconds"`
}

type response struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	Exit   int    `json:"exit"`
	Error  string `json:"error,omitempty"`
}

func main() {
	addr := flag.String("listen", ":7070", "address to serve on")
	flag.Parse()
	http.HandleFunc("/exec", func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Argv) == 0 {
			http.Error(w, "want {\"argv\": [...]}", http.StatusBadRequest)
			return
		}
		timeout := time.Duration(req.TimeoutSeconds) * time.Second
		if timeout <= 0 {
			timeout = 2 * time.Minute
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, req.Argv[0], req.Argv[1:]...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.WaitDelay = 5 * time.Second
		err := cmd.Run()
		res := response{Stdout: out.String(), Stderr: errb.String()}
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			res.Exit = ee.ExitCode()
		case err != nil:
			res.Exit, res.Error = -1, err.Error()
		}
		if ctx.Err() != nil {
			res.Error = "timed out after " + timeout.String()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
