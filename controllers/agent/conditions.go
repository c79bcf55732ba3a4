package agent

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// Condition reasons of a NodeNetworkState.
const (
	// Ready
	ReasonApplied             = "Applied"
	ReasonApplying            = "Applying"
	ReasonWaitingForDrainSlot = "WaitingForDrainSlot"
	ReasonDraining            = "Draining"
	ReasonSyncFailed          = "SyncFailed"
	// Degraded
	ReasonAsSpecified      = "AsSpecified"
	ReasonDriftNotRepaired = "DriftNotRepaired"
)

const (
	metav1ConditionTrue  = metav1.ConditionTrue
	metav1ConditionFalse = metav1.ConditionFalse
)

func (s *syncRun) setReady(status metav1.ConditionStatus, reason, msg string) {
	s.setCondition(sluicev1.ConditionReady, status, reason, msg)
}

func (s *syncRun) setCondition(typ string, status metav1.ConditionStatus, reason, msg string) {
	const maxMessage = 32768 // the API's limit on a condition message
	if len(msg) > maxMessage {
		msg = msg[:maxMessage-3] + "..."
	}
	meta.SetStatusCondition(&s.nns.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: s.gen,
	})
}

func findCondition(cs []metav1.Condition, typ string) *metav1.Condition {
	return meta.FindStatusCondition(cs, typ)
}
