package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/host/hosttest"
	"github.com/sluice-net/sluice/test/testenv"
)

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestMetricsNeedAnAuthorizedToken: the agent runs on the host network, so
// its /metrics is reachable from anything that reaches the node. Served
// secure, it answers only a token the API server authenticates and
// authorizes for GET /metrics (ClusterRole sluice-metrics-reader, from
// config/rbac): nothing without a token, 403 for another service account.
func TestMetricsNeedAnAuthorizedToken(t *testing.T) {
	h := newHarness(t)
	h.node.AddPF(hosttest.E810(pfA, "ens1f0", 0))
	h.opts.MetricsBindAddress = freeAddr(t)
	h.opts.MetricsSecure = true
	h.opts.HealthProbeBindAddress = freeAddr(t)
	h.start()
	h.waitFor("NodeNetworkState created", func(*sluicev1.NodeNetworkState) error { return nil })

	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(h.env.Config)
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "metrics_reader_role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(raw, &role); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	token := func(sa string) string {
		t.Helper()
		if _, err := cs.CoreV1().ServiceAccounts(h.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := cs.CoreV1().ServiceAccounts(h.ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	scraper, stranger := token("scraper"), token("stranger")
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "scraper-" + h.ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "scraper", Namespace: h.ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.RbacV1().ClusterRoleBindings().Delete(ctx, "scraper-"+h.ns, metav1.DeleteOptions{}) })

	// The agent's serving certificate is self-signed: what is tested here
	// is who may read, not the certificate.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(tok string) (int, string, error) {
		req, err := http.NewRequest(http.MethodGet, "https://"+h.opts.MetricsBindAddress+"/metrics", nil)
		if err != nil {
			return 0, "", err
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	h.eventually("the metrics endpoint serves the authorized scraper", func() error {
		code, body, err := get(scraper)
		if err != nil || code != http.StatusOK || !strings.Contains(body, "controller_runtime_") {
			return fmt.Errorf("status %d, %v, %.200q", code, err, body)
		}
		return nil
	})
	for _, c := range []struct {
		who, token string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		// controller-runtime's filter answers 500 when the TokenReview
		// rejects the token: anything but the metrics will do.
		{"a bad token", "not-a-token", 0},
		{"service account stranger", stranger, http.StatusForbidden},
	} {
		code, body, err := get(c.token)
		if err != nil || (c.want != 0 && code != c.want) || code == http.StatusOK || strings.Contains(body, "controller_runtime_") {
			t.Errorf("GET /metrics with %s: %d %.100q (%v), want %d and no metrics", c.who, code, body, err, c.want)
		}
	}
	resp, err := http.Get("http://" + h.opts.HealthProbeBindAddress + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: %v %v", resp, err)
	}
}
