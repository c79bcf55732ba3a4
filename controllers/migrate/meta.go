package migrate

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// lastApplied is kubectl's annotation, which describes the input object
// and must not be copied onto the sluice one.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// objectMeta builds the sluice object's metadata: the input's name,
// labels and annotations (but kubectl's last-applied), in namespace ns
// ("" for a cluster-scoped object).
func objectMeta(in *Object, ns string, c *conv) (metav1.ObjectMeta, error) {
	name := in.U.GetName()
	if name == "" {
		return metav1.ObjectMeta{}, c.refuse("metadata.name", "missing: give the object a name")
	}
	ann := in.U.GetAnnotations()
	delete(ann, lastApplied)
	if len(ann) == 0 {
		ann = nil
	}
	m := metav1.ObjectMeta{Name: name, Namespace: ns, Labels: in.U.GetLabels(), Annotations: ann}
	switch src := in.U.GetNamespace(); {
	case src == ns:
	case ns == "":
		c.add("metadata.namespace", Changed, "", fmt.Sprintf("dropped: the sluice object is cluster-scoped (SNO's lived in %s)", src))
	default:
		c.add("metadata.namespace", Changed, "metadata.namespace", fmt.Sprintf("%s: sluice's operator namespace, where platform objects live", ns))
	}
	return m, nil
}
