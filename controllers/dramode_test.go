package controllers

import (
	"errors"
	"testing"

	"github.com/go-logr/logr"
)

func TestDRAModeEnabled(t *testing.T) {
	notServed := errors.New("no matches for kind DeviceClass in version resource.k8s.io/v1")
	for _, c := range []struct {
		mode   DRAMode
		served error
		want   bool
	}{
		{DRAAuto, nil, true},
		{DRAAuto, notServed, false},
		{DRAOn, notServed, true},
		{DRAOff, nil, false},
	} {
		if got := c.mode.enabled(c.served, logr.Discard()); got != c.want {
			t.Errorf("%s with served=%v: %v, want %v", c.mode, c.served, got, c.want)
		}
	}
	if _, err := ParseDRAMode("on"); err == nil {
		t.Error(`ParseDRAMode("on") succeeded`)
	}
}
