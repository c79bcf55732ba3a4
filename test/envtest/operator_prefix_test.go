package envtest

import (
	"context"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/controllers"
)

// The operator's resource prefix, the one its node agents' device plugins
// advertise pools under, is what NetworkAttachmentDefinitions ask for and
// soft-RoCE pools' CDI kind.
func TestOperatorResourcePrefix(t *testing.T) {
	const prefix = "vf.example.com"
	startOperator(t, func(o *controllers.Options) { o.ResourcePrefix = prefix })
	ctx := context.Background()
	ns := env.Namespace(t)

	eventually(t, "the node agents told the prefix", func() error {
		ds, err := getNodeDaemonSet()
		if err != nil {
			return err
		}
		if args := ds.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--resource-prefix="+prefix) {
			return errorf("agent args %q", args)
		}
		return nil
	})

	pool, _ := softRoCEPolicy(t)
	n := &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Name: "net", Namespace: ns}, Spec: sluicev1.VFNetworkSpec{ResourceName: pool}}
	if err := env.Client.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	nad := nadConfig(t, ns, "net", `{"cniVersion":"1.0.0","name":"net","type":"sluice-cni","rdma":true,"softRoCE":{"cdiKind":"`+prefix+"/"+pool+`"}}`)
	if got := nad.Annotations[controllers.NADResourceAnnotation]; got != prefix+"/"+pool {
		t.Errorf("resourceName annotation %q, want %q", got, prefix+"/"+pool)
	}
	got := vfnReady(t, ns, "net", metav1.ConditionTrue, "Rendered")
	if c := meta.FindStatusCondition(got.Status.Conditions, sluicev1.ConditionReady); !strings.Contains(c.Message, prefix+"/"+pool) {
		t.Errorf("Ready message %q does not name the resource", c.Message)
	}
}
