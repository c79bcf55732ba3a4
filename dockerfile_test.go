package main

import (
	"os"
	"regexp"
	"testing"

	goversion "go/version"

	"golang.org/x/mod/modfile"
)

// TestDockerfilePinsGo: the image is built by the Go release it names, a
// full release (a floating 1.26 tag builds with whatever 1.26.x is newest
// that day), and one that go.mod's go directive accepts.
func TestDockerfilePinsGo(t *testing.T) {
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)$`).FindSubmatch(df)
	if m == nil {
		t.Fatal("Dockerfile: no ARG GO_VERSION=")
	}
	v := string(m[1])
	if !regexp.MustCompile(`^1\.\d+\.\d+$`).MatchString(v) {
		t.Fatalf("Dockerfile: GO_VERSION=%s is not a full release (1.N.P)", v)
	}
	gm, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.ParseLax("go.mod", gm, nil)
	if err != nil {
		t.Fatal(err)
	}
	if goversion.Compare("go"+v, "go"+f.Go.Version) < 0 {
		t.Errorf("Dockerfile: GO_VERSION=%s is older than go.mod's go %s", v, f.Go.Version)
	}
}
