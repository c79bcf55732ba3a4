package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/sluice-net/sluice/controllers/migrate"
)

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// migrateOptions are the flags of 'sluice migrate'.
type migrateOptions struct {
	files        stringList
	fromCluster  bool
	kubeconfig   string
	snoNamespace string
	configMaps   string
	conv         migrate.Options
	outDir       string
	reportFile   string
	reportFormat string
	rewriteNADs  bool
	apply        bool
}

// migrateCommand binds the flags of 'sluice migrate'.
func migrateCommand(fs *flag.FlagSet) func(ctx context.Context) error {
	o := &migrateOptions{}
	fs.Var(&o.files, "f", "YAML or JSON file, or directory of them (multi-document, Lists too) with SNO objects, device plugin ConfigMaps or NetworkAttachmentDefinitions; '-' is stdin; repeatable")
	fs.BoolVar(&o.fromCluster, "from-cluster", false, "read the SNO objects of --sno-namespace, the device plugin ConfigMaps of --configmaps and (with --rewrite-nads) every NetworkAttachmentDefinition from the cluster")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config or the in-cluster config)")
	fs.StringVar(&o.snoNamespace, "sno-namespace", migrate.DefaultSNONamespace, "namespace sriov-network-operator runs in (openshift-sriov-network-operator on OpenShift); also the namespace of input objects that have none")
	fs.StringVar(&o.configMaps, "configmaps", "kube-system/sriovdp-config,kube-system/rdma-devices", "with --from-cluster: namespace/name of the sriov-network-device-plugin and k8s-rdma-shared-dev-plugin ConfigMaps to check, comma-separated (absent ones are skipped)")
	fs.StringVar(&o.conv.Namespace, "namespace", migrate.DefaultNamespace, "the namespace sluice's operator runs in: the VFNetworks are created there as platform VFNetworks (in any other namespace the admission policy refuses those that set vlan, trust, metaPlugins, logFile or another platform-only field)")
	fs.StringVar(&o.conv.ResourcePrefix, "resource-prefix", migrate.DefaultResourcePrefix, "sluice's resource prefix (the operator's --resource-prefix)")
	fs.StringVar(&o.conv.SNOResourcePrefix, "sno-resource-prefix", migrate.DefaultSNOResourcePrefix, "SNO's resource prefix (its RESOURCE_PREFIX)")
	fs.StringVar(&o.outDir, "o", "", "write each sluice object (and rewritten NetworkAttachmentDefinition) to a file in this directory instead of stdout")
	fs.StringVar(&o.reportFile, "report", "", "write the per-field report to this file instead of stderr")
	fs.StringVar(&o.reportFormat, "report-format", "table", "report format: table or json")
	fs.BoolVar(&o.rewriteNADs, "rewrite-nads", false, "also rewrite NetworkAttachmentDefinitions that call sriov-cni (\"type\": \"sriov\") to call sluice-cni; without --apply the plan is printed with the report")
	fs.BoolVar(&o.apply, "apply", false, "create or update the sluice objects (and, with --rewrite-nads, the NetworkAttachmentDefinitions) in the cluster by server-side apply (field manager sluice-migrate); without it nothing in the cluster changes")
	return func(ctx context.Context) error { return runMigrate(ctx, o, os.Stdout, os.Stderr) }
}

func runMigrate(ctx context.Context, o *migrateOptions, stdout, stderr io.Writer) error {
	if o.reportFormat != "table" && o.reportFormat != "json" {
		return fmt.Errorf("--report-format %q: use table or json", o.reportFormat)
	}
	if len(o.files) == 0 && !o.fromCluster {
		return fmt.Errorf("nothing to read: give -f with files or directories, or --from-cluster")
	}
	o.conv.SNONamespace = o.snoNamespace
	var objs []*migrate.Object
	for _, f := range o.files {
		got, err := readInputs(f)
		if err != nil {
			return err
		}
		objs = append(objs, got...)
	}
	var c client.Client
	if o.fromCluster {
		var err error
		if c, err = migrateClient(o.kubeconfig); err != nil {
			return err
		}
	}
	if o.fromCluster {
		got, notes, err := migrate.ReadCluster(ctx, c, migrate.ClusterInput{SNONamespace: o.snoNamespace, ConfigMaps: splitList(o.configMaps), NADs: o.rewriteNADs})
		for _, n := range notes {
			fmt.Fprintf(stderr, "sluice migrate: %s\n", n)
		}
		if err != nil {
			return err
		}
		objs = append(objs, got...)
	}
	res := migrate.Convert(objs, o.conv, o.rewriteNADs)

	if err := writeObjects(res, o.outDir, stdout); err != nil {
		return err
	}
	if err := writeReport(res, o, stderr); err != nil {
		return err
	}
	if len(res.Errors) > 0 {
		if o.apply {
			return fmt.Errorf("nothing applied: %d input objects cannot be converted (the report says why and how to fix each): %w", len(res.Errors), res.Err())
		}
		return fmt.Errorf("%d input objects cannot be converted: %w", len(res.Errors), res.Err())
	}
	if !o.apply {
		fmt.Fprintf(stderr, "sluice migrate: dry run: nothing changed in the cluster; run with --apply to create the %d objects%s\n", len(res.Objects), nadNote(res, o))
		return nil
	}
	if c == nil {
		var err error
		if c, err = migrateClient(o.kubeconfig); err != nil {
			return err
		}
	}
	return migrate.Apply(ctx, c, res, stderr)
}

func nadNote(res *migrate.Result, o *migrateOptions) string {
	if !o.rewriteNADs {
		return ""
	}
	return fmt.Sprintf(" and rewrite the %d NetworkAttachmentDefinitions", len(res.NADs))
}

// readInputs reads a file, every .yaml, .yml and .json file under a
// directory, or stdin for "-".
func readInputs(path string) ([]*migrate.Object, error) {
	if path == "-" {
		return migrate.Decode(os.Stdin, "stdin")
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("-f %s: %w", path, err)
	}
	var files []string
	if info.IsDir() {
		err := filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch strings.ToLower(filepath.Ext(p)) {
			case ".yaml", ".yml", ".json":
				if !d.IsDir() {
					files = append(files, p)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("-f %s: %w", path, err)
		}
	} else {
		files = []string{path}
	}
	var out []*migrate.Object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("-f %s: %w", f, err)
		}
		got, err := migrate.DecodeBytes(b, f)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

func migrateClient(kubeconfig string) (client.Client, error) {
	var (
		cfg *rest.Config
		err error
	)
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = ctrl.GetConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("load the cluster's config (give --kubeconfig, or read files with -f instead): %w", err)
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return nil, fmt.Errorf("connect to the cluster: %w", err)
	}
	return c, nil
}

// writeObjects writes the sluice objects and rewritten NADs as YAML
// documents to w, or one file each into dir.
func writeObjects(res *migrate.Result, dir string, w io.Writer) error {
	all := append([]*unstructured.Unstructured{}, res.Objects...)
	for _, n := range res.NADs {
		all = append(all, n.Object)
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("-o %s: %w", dir, err)
		}
	}
	for i, u := range all {
		b, err := yaml.Marshal(u.Object)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		if dir == "" {
			if i > 0 {
				fmt.Fprintln(w, "---")
			}
			if _, err := w.Write(b); err != nil {
				return fmt.Errorf("write objects: %w", err)
			}
			continue
		}
		name := strings.ToLower(u.GetKind())
		if ns := u.GetNamespace(); ns != "" {
			name += "-" + ns
		}
		p := filepath.Join(dir, name+"-"+u.GetName()+".yaml")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return fmt.Errorf("-o: %w", err)
		}
	}
	return nil
}

func writeReport(res *migrate.Result, o *migrateOptions, stderr io.Writer) (err error) {
	w := stderr
	if o.reportFile != "" {
		f, err := os.Create(o.reportFile)
		if err != nil {
			return fmt.Errorf("--report: %w", err)
		}
		defer func() {
			if cerr := f.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("--report: %w", cerr)
			}
		}()
		w = f
	}
	if o.reportFormat == "json" {
		return res.Report.WriteJSON(w)
	}
	if err := res.Report.WriteTable(w); err != nil {
		return err
	}
	return writeNADPlan(res.NADs, w)
}

// writeNADPlan shows each NetworkAttachmentDefinition rewrite as removed
// and added lines.
func writeNADPlan(nads []*migrate.NADRewrite, w io.Writer) error {
	for _, n := range nads {
		fmt.Fprintf(w, "\nNetworkAttachmentDefinition %s/%s:\n", n.Object.GetNamespace(), n.Object.GetName())
		if n.AnnotationBefore != n.AnnotationAfter {
			fmt.Fprintf(w, "- %s: %s\n+ %s: %s\n", migrate.NADResourceAnnotation, n.AnnotationBefore, migrate.NADResourceAnnotation, n.AnnotationAfter)
		}
		before := n.Before
		var b bytes.Buffer
		if json.Indent(&b, []byte(before), "", "  ") == nil {
			before = b.String()
		}
		for _, l := range strings.Split(strings.TrimSpace(before), "\n") {
			fmt.Fprintf(w, "- %s\n", l)
		}
		for _, l := range strings.Split(n.After, "\n") {
			if _, err := fmt.Fprintf(w, "+ %s\n", l); err != nil {
				return fmt.Errorf("write plan: %w", err)
			}
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}
