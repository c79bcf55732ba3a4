package drainslot

import (
	"slices"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	if got := Names(3); !slices.Equal(got, []string{"sluice-drain-0", "sluice-drain-1", "sluice-drain-2"}) {
		t.Errorf("Names(3) = %q", got)
	}
}

func TestValidate(t *testing.T) {
	for _, n := range []int{1, Max} {
		if err := Validate(n); err != nil {
			t.Errorf("Validate(%d): %v", n, err)
		}
	}
	for n, want := range map[int]string{0: "at least one node", -1: "at least one node", Max + 1: "lower --max-unavailable"} {
		if err := Validate(n); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(%d) = %v, want an error saying %q", n, err, want)
		}
	}
}
