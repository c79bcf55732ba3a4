package main

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/sluice-net/sluice/controllers"
)

func TestNodeDRAFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want controllers.DRAMode
		err  string
	}{
		{nil, controllers.DRAAuto, ""},
		{[]string{"--node-dra"}, controllers.DRAOn, ""},
		{[]string{"--node-dra=false"}, controllers.DRAOff, ""},
		{[]string{"--node-dra=auto"}, controllers.DRAAuto, ""},
		{[]string{"--node-dra=yes"}, "", `--node-dra "yes": use auto, true or false`},
	} {
		m := controllers.DRAAuto
		fs := flag.NewFlagSet("operator", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.Var((*draModeFlag)(&m), "node-dra", "")
		err := fs.Parse(c.args)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: error %v, want %q", c.args, err, c.err)
			}
		case err != nil:
			t.Errorf("%v: %v", c.args, err)
		case m != c.want:
			t.Errorf("%v: %q, want %q", c.args, m, c.want)
		}
	}
}
