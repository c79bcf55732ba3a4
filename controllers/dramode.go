package controllers

import (
	"fmt"

	"github.com/go-logr/logr"
	resourcev1 "k8s.io/api/resource/v1"
	ctrl "sigs.k8s.io/controller-runtime"
)

// DRAMode is whether the node agents run the DRA kubelet plugin (the
// operator's --node-dra).
type DRAMode string

const (
	// DRAAuto runs it when the cluster serves resource.k8s.io/v1, so that a
	// policy asking for allocation DRA works without another switch.
	DRAAuto DRAMode = "auto"
	// DRAOn always runs it; DRAOff never does (DRA pools are then served
	// by nobody).
	DRAOn  DRAMode = "true"
	DRAOff DRAMode = "false"
)

// ParseDRAMode reads --node-dra.
func ParseDRAMode(s string) (DRAMode, error) {
	switch m := DRAMode(s); m {
	case DRAAuto, DRAOn, DRAOff:
		return m, nil
	case "":
		return DRAAuto, nil
	}
	return "", fmt.Errorf("--node-dra %q: use auto, true or false", s)
}

// enabled decides for the mode, given whether resource.k8s.io/v1 is
// served (served nil), and logs the choice.
func (m DRAMode) enabled(served error, log logr.Logger) bool {
	switch m {
	case DRAOff:
		log.Info("node agents run without the DRA kubelet plugin (--node-dra=false): pools of policies with allocation DRA are served by nobody")
		return false
	case DRAOn:
		if served != nil {
			log.Error(served, "--node-dra=true but resource.k8s.io/v1 is not served: the agents' DRA plugin will publish nothing; enable the API (Kubernetes 1.34 or later)")
		}
		return true
	}
	if served != nil {
		log.Info("resource.k8s.io/v1 is not served: node agents run without the DRA kubelet plugin (--node-dra=auto)", "reason", served.Error())
		return false
	}
	return true
}

// draServed is nil when the API server serves DeviceClasses of
// resource.k8s.io/v1.
func draServed(mgr ctrl.Manager) error {
	gvk := resourcev1.SchemeGroupVersion.WithKind("DeviceClass")
	_, err := mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	return err
}
