// Package testenv starts an envtest control plane (kube-apiserver + etcd)
// with sluice's CRDs installed. The binaries come from hack/envtest-bins.sh,
// which builds them from the Go module proxy once and caches them, so tests
// never download anything.
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// RepoRoot is the repository's top directory: the nearest directory above
// the working directory (a test's is its package's) whose go.mod is this
// module's. Source file paths cannot tell: builds use -trimpath.
func RepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		panic(fmt.Sprintf("testenv: working directory: %v", err))
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.HasPrefix(string(b), "module "+module+"\n") {
			return d
		}
		if filepath.Dir(d) == d {
			panic(fmt.Sprintf("testenv: no go.mod of %s above %s", module, dir))
		}
	}
}

// module is this repository's module path.
const module = "github.com/sluice-net/sluice"

// Assets returns the directory holding kube-apiserver and etcd: the
// KUBEBUILDER_ASSETS variable when set, else what hack/envtest-bins.sh
// provides (building the binaries on the first run).
func Assets() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	var out, errb bytes.Buffer
	cmd := exec.Command(filepath.Join(RepoRoot(), "hack", "envtest-bins.sh"))
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("hack/envtest-bins.sh: %w: %s", err, errb.String())
	}
	return strings.TrimSpace(out.String()), nil
}

// NADCRDPath is the NetworkAttachmentDefinition CRD shipped with the
// network-attachment-definition-client module, read from the module cache
// (the CRD belongs to Multus; sluice does not carry a copy).
func NADCRDPath() (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", nadModule)
	cmd.Dir = RepoRoot()
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("locate %s: %w: %s", nadModule, err, errb.String())
	}
	return filepath.Join(strings.TrimSpace(out.String()), "artifacts", "networks-crd.yaml"), nil
}

const nadModule = "github.com/k8snetworkplumbingwg/network-attachment-definition-client"

// Scheme returns a scheme with the core, sluice and NetworkAttachmentDefinition types.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := sluicev1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := nadv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Env is a running control plane.
type Env struct {
	Config *rest.Config
	Client client.Client
	Scheme *runtime.Scheme
	env    *envtest.Environment
}

// Start starts a control plane with sluice's CRDs and the
// NetworkAttachmentDefinition CRD. Call Stop when done (TestMain) or use
// StartT for one test.
func Start() (*Env, error) {
	assets, err := Assets()
	if err != nil {
		return nil, err
	}
	nadCRD, err := NADCRDPath()
	if err != nil {
		return nil, err
	}
	te := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths: []string{
			filepath.Join(RepoRoot(), "config", "crd", "bases"),
			nadCRD,
		},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := te.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest from %s: %w", assets, err)
	}
	s := Scheme()
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		_ = te.Stop()
		return nil, fmt.Errorf("client: %w", err)
	}
	return &Env{Config: cfg, Client: c, Scheme: s, env: te}, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error { return e.env.Stop() }

// StartT starts a control plane for one test and stops it at cleanup.
func StartT(t testing.TB) *Env {
	t.Helper()
	e, err := Start()
	if err != nil {
		t.Fatalf("envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Logf("stop envtest: %v", err)
		}
	})
	return e
}

// Namespace creates a fresh namespace for one test and deletes it at cleanup.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	if err := e.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() { _ = e.Client.Delete(context.Background(), ns) })
	return ns.Name
}

// WriteKubeconfig writes a kubeconfig for the control plane's admin. An
// empty server keeps the API server's own address; a client elsewhere (the
// emulated node reaches the host's loopback at 10.0.2.2) passes its address
// for it, and verification stays on: tls-server-name is "localhost", which
// envtest's serving certificate names.
func (e *Env) WriteKubeconfig(path, server string) error {
	u, err := url.Parse(e.Config.Host)
	if err != nil {
		return fmt.Errorf("parse API server address %q: %w", e.Config.Host, err)
	}
	if server == "" {
		server = "https://" + u.Host
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{
		Server:                   server,
		CertificateAuthorityData: e.Config.CAData,
		TLSServerName:            "localhost",
	}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: e.Config.CertData,
		ClientKeyData:         e.Config.KeyData,
		Token:                 e.Config.BearerToken,
	}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// HostPort is the API server's host:port on the loopback.
func (e *Env) HostPort() string {
	u, err := url.Parse(e.Config.Host)
	if err != nil {
		return e.Config.Host
	}
	return u.Host
}
