package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sluice-net/sluice/test/node/vm"
)

// The cluster's fixed addresses. The node reaches the host's loopback at
// 10.0.2.2 (QEMU user networking), so the API server advertises that
// address: the kubernetes Service's endpoint, which kube-proxy in the
// guest DNATs pods' in-cluster traffic to.
const (
	ServiceCIDR     = "10.96.0.0/24"
	KubernetesSvcIP = "10.96.0.1"
	PodCIDR         = "10.244.0.0/24"
	hostFromGuest   = "10.0.2.2"
	// KubeletPort is the kubelet's port in the guest.
	KubeletPort = 10250
)

// ControlPlane is etcd, kube-apiserver, kube-scheduler and
// kube-controller-manager running on the host as processes, with a CA of
// their own and real service-account tokens, started and stopped
// explicitly.
type ControlPlane struct {
	Dir     string // certificates, kubeconfigs, logs, etcd data
	APIPort int    // on 127.0.0.1, and at 10.0.2.2 from the guest
	// KubeletFwdPort is the host loopback port QEMU forwards to the
	// kubelet (the API server reaches it for exec, logs and port-forward
	// through an egress proxy).
	KubeletFwdPort int
	// AdminKubeconfig is a system:masters kubeconfig for the host.
	AdminKubeconfig string
	Config          *rest.Config
	Client          kubernetes.Interface

	pki   *pki
	bins  string
	procs []*process
	proxy net.Listener
	wg    sync.WaitGroup
}

type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  string
}

// StartControlPlane starts the control plane with the Kubernetes binaries
// in bins (hack/cluster-bins.sh) and state under dir. kubeletFwdPort is the
// host port that reaches the guest's kubelet.
func StartControlPlane(ctx context.Context, dir, bins string, kubeletFwdPort int) (_ *ControlPlane, err error) {
	c := &ControlPlane{Dir: dir, bins: bins, KubeletFwdPort: kubeletFwdPort}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	if c.pki, err = newPKI(filepath.Join(dir, "pki")); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	ports, err := FreePorts(3)
	if err != nil {
		return nil, err
	}
	c.APIPort = ports[0]
	etcdClient, etcdPeer := ports[1], ports[2]

	p := c.pki
	for _, step := range []error{
		p.issue("apiserver", "kube-apiserver", nil, "127.0.0.1", hostFromGuest, KubernetesSvcIP,
			"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"),
		p.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}),
		p.issue("admin", "sluice-e2e-admin", []string{"system:masters"}),
		p.issue("scheduler", "system:kube-scheduler", nil),
		p.issue("controller-manager", "system:kube-controller-manager", nil),
		p.issue("kubelet", "system:node:"+NodeName, []string{"system:nodes"}),
		p.issue("kube-proxy", "system:kube-proxy", nil),
		p.issue("multus", "multus", nil),
		p.serviceAccountKey(),
	} {
		if step != nil {
			return nil, fmt.Errorf("pki: %w", step)
		}
	}
	local := fmt.Sprintf("https://127.0.0.1:%d", c.APIPort)
	for _, kc := range []struct{ file, user string }{
		{"admin.kubeconfig", "admin"}, {"scheduler.kubeconfig", "scheduler"}, {"controller-manager.kubeconfig", "controller-manager"},
	} {
		b, err := p.kubeconfig(local, kc.user)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, kc.file), b, 0o600); err != nil {
			return nil, err
		}
	}
	c.AdminKubeconfig = filepath.Join(dir, "admin.kubeconfig")

	// The API server reaches the kubelet (exec, logs, port-forward) through
	// an HTTP CONNECT proxy on a unix socket, its "cluster" egress: the
	// node's address is the guest's, which the host cannot route to, and
	// the proxy sends kubelet connections to QEMU's forwarded port.
	sockDir, err := os.MkdirTemp("", "sluice-egress-")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(sockDir, "egress.sock")
	if c.proxy, err = net.Listen("unix", sock); err != nil {
		return nil, err
	}
	c.wg.Add(1)
	go c.serveEgress(sockDir)
	egressCfg := filepath.Join(dir, "egress.yaml")
	if err := os.WriteFile(egressCfg, []byte(fmt.Sprintf(`apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: %s
`, sock)), 0o644); err != nil {
		return nil, err
	}

	etcdData := filepath.Join(dir, "etcd")
	if err := c.start("etcd", filepath.Join(bins, "etcd"),
		"--data-dir", etcdData,
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdClient),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdClient),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeer),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", etcdPeer),
		"--unsafe-no-fsync", "--quota-backend-bytes", "2147483648", "--log-level", "warn",
	); err != nil {
		return nil, err
	}
	if err := c.start("kube-apiserver", filepath.Join(bins, "kube-apiserver"),
		"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", etcdClient),
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(c.APIPort),
		"--advertise-address", hostFromGuest,
		"--tls-cert-file", p.path("apiserver.crt"), "--tls-private-key-file", p.path("apiserver.key"),
		"--client-ca-file", p.CA(),
		"--kubelet-client-certificate", p.path("apiserver-kubelet-client.crt"),
		"--kubelet-client-key", p.path("apiserver-kubelet-client.key"),
		"--service-account-key-file", p.path("sa.pub"),
		"--service-account-signing-key-file", p.path("sa.key"),
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range", ServiceCIDR,
		"--authorization-mode", "Node,RBAC",
		"--enable-admission-plugins", "NodeRestriction",
		"--allow-privileged=true",
		"--egress-selector-config-file", egressCfg,
		"--cert-dir", filepath.Join(dir, "apiserver-certs"),
		"--v=1",
	); err != nil {
		return nil, err
	}
	if c.Config, err = clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig); err != nil {
		return nil, err
	}
	c.Config.QPS, c.Config.Burst = 50, 100
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx, 2*time.Minute); err != nil {
		return nil, err
	}
	if err := c.start("kube-scheduler", filepath.Join(bins, "kube-scheduler"),
		"--kubeconfig", filepath.Join(dir, "scheduler.kubeconfig"),
		"--authentication-kubeconfig", filepath.Join(dir, "scheduler.kubeconfig"),
		"--authorization-kubeconfig", filepath.Join(dir, "scheduler.kubeconfig"),
		"--leader-elect=false", "--secure-port=0", "--v=1",
	); err != nil {
		return nil, err
	}
	if err := c.start("kube-controller-manager", filepath.Join(bins, "kube-controller-manager"),
		"--kubeconfig", filepath.Join(dir, "controller-manager.kubeconfig"),
		"--authentication-kubeconfig", filepath.Join(dir, "controller-manager.kubeconfig"),
		"--authorization-kubeconfig", filepath.Join(dir, "controller-manager.kubeconfig"),
		"--service-account-private-key-file", p.path("sa.key"),
		"--root-ca-file", p.CA(),
		"--use-service-account-credentials",
		"--service-cluster-ip-range", ServiceCIDR,
		"--leader-elect=false", "--secure-port=0", "--v=1",
		// Pods of a NotReady node (a rebooting VM) are not evicted by
		// the node lifecycle controller during the tests' reboots.
		"--node-monitor-grace-period=2m",
	); err != nil {
		return nil, err
	}
	return c, nil
}

// NodeKubeconfig is a kubeconfig with the client key pair user (kubelet,
// kube-proxy, multus) that the guest uses to reach the API server.
func (c *ControlPlane) NodeKubeconfig(user string) ([]byte, error) {
	return c.pki.kubeconfig(fmt.Sprintf("https://%s:%d", hostFromGuest, c.APIPort), user)
}

// CAPEM is the cluster CA certificate.
func (c *ControlPlane) CAPEM() []byte { return c.pki.CAPEM() }

func (c *ControlPlane) start(name, bin string, args ...string) error {
	logPath := filepath.Join(c.Dir, "logs", name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return nil
}

// Exited reports control-plane processes that exited, with their logs'
// last lines.
func (c *ControlPlane) Exited() error {
	var errs []error
	for _, p := range c.procs {
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.log)
			errs = append(errs, fmt.Errorf("%s exited (%v): %s", p.name, p.err, vm.Tail(string(b), 10)))
		default:
		}
	}
	return errors.Join(errs...)
}

func (c *ControlPlane) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && strings.TrimSpace(string(body)) == "ok" {
			return nil
		}
		if perr := c.Exited(); perr != nil {
			return perr
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready after %s: %v", timeout, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Stop ends every process (the API server last but etcd) and the proxy.
func (c *ControlPlane) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	c.procs = nil
	if c.proxy != nil {
		c.proxy.Close()
		c.wg.Wait()
		c.proxy = nil
	}
}

// serveEgress is the API server's HTTP CONNECT proxy: a CONNECT to any
// address's kubelet port goes to the forwarded kubelet port; anything else
// is refused.
func (c *ControlPlane) serveEgress(sockDir string) {
	defer c.wg.Done()
	defer os.RemoveAll(sockDir)
	for {
		conn, err := c.proxy.Accept()
		if err != nil {
			return
		}
		go c.tunnel(conn)
	}
}

func (c *ControlPlane) tunnel(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		fmt.Fprint(conn, "HTTP/1.1 400 Bad Request\r\n\r\n")
		return
	}
	_, port, err := net.SplitHostPort(req.Host)
	if err != nil || port != strconv.Itoa(KubeletPort) {
		fmt.Fprint(conn, "HTTP/1.1 403 Forbidden\r\n\r\nonly the node's kubelet is reachable\n")
		return
	}
	up, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.KubeletFwdPort)), 10*time.Second)
	if err != nil {
		fmt.Fprintf(conn, "HTTP/1.1 502 Bad Gateway\r\n\r\n%v\n", err)
		return
	}
	defer up.Close()
	fmt.Fprint(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(up, br)
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(conn, up)
		done <- struct{}{}
	}()
	<-done
	<-done
}

// FreePorts returns n distinct free TCP ports on the loopback.
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
