package controllers

import (
	"testing"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

func TestEvalCacheReusesOnlyWhatTheMergeReads(t *testing.T) {
	var c evalCache
	withP := NewMerger([]*sluicev1.NetworkNodePolicy{testPolicy("p", 10, 0, nil)})
	empty := NewMerger(nil)
	node := testNode(map[string]string{"a": "b"})

	if r := c.evaluate(withP, "fp1", node); !r.Selected["p"] {
		t.Fatalf("first evaluation: %+v", r)
	}
	// Same fingerprint, same inputs: the cached result, even though this
	// merger (deliberately inconsistent with the fingerprint) would differ.
	vfChurn := testNode(map[string]string{"a": "b"})
	vfChurn.Interfaces[1].NumVfs = 8
	vfChurn.Interfaces[1].VFs = []sluicev1.VFStatus{{VFID: 0, PCIAddress: "0000:3b:00.2", MAC: "aa:bb:cc:dd:ee:ff"}}
	if r := c.evaluate(empty, "fp1", vfChurn); !r.Selected["p"] {
		t.Errorf("VF-level status change missed the cache")
	}
	// Anything the merge reads invalidates the entry.
	relabeled := testNode(map[string]string{"a": "c"})
	if r := c.evaluate(empty, "fp1", relabeled); r.Selected["p"] {
		t.Errorf("label change served from the cache")
	}
	c.evaluate(withP, "fp1", node)
	fewerVFs := testNode(map[string]string{"a": "b"})
	fewerVFs.Interfaces[1].TotalVfs = 4
	if r := c.evaluate(empty, "fp1", fewerVFs); r.Selected["p"] {
		t.Errorf("totalVfs change served from the cache")
	}
	c.evaluate(withP, "fp1", node)
	if r := c.evaluate(empty, "fp2", node); r.Selected["p"] {
		t.Errorf("policy change served from the cache")
	}

	c.evaluate(withP, "fp2", node)
	c.prune(map[string]bool{})
	if len(c.nodes) != 1 {
		t.Errorf("pruned below the slack: %d entries", len(c.nodes))
	}
}

func TestPolicyFingerprint(t *testing.T) {
	a := testPolicy("a", 10, 0, nil)
	b := testPolicy("b", 10, 0, nil)
	fp := policyFingerprint([]*sluicev1.NetworkNodePolicy{a, b})
	if fp != policyFingerprint([]*sluicev1.NetworkNodePolicy{b, a}) {
		t.Errorf("fingerprint depends on list order")
	}
	b2 := b.DeepCopy()
	b2.Generation++
	if fp == policyFingerprint([]*sluicev1.NetworkNodePolicy{a, b2}) {
		t.Errorf("fingerprint ignores the generation")
	}
	b3 := b.DeepCopy()
	b3.Status.MatchedNodes = 7
	b3.ResourceVersion = "99"
	if fp != policyFingerprint([]*sluicev1.NetworkNodePolicy{a, b3}) {
		t.Errorf("a status update changes the fingerprint")
	}
}
