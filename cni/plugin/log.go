package plugin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
)

// LogLevel is how much sluice-cni logs, with sriov-cni's level names (the
// configuration's "logLevel", any case): a line is written when its level
// is at or below the configured one.
type LogLevel int

// The levels, from least to most verbose.
const (
	LogPanic LogLevel = iota + 1
	LogError
	LogWarning
	LogInfo
	LogDebug
)

// logLevelNames are the configuration's spellings, indexed by level.
const logLevelNames = "panic error warning info debug"

func (l LogLevel) String() string {
	names := strings.Fields(logLevelNames)
	if l < LogPanic || int(l) > len(names) {
		return fmt.Sprintf("LogLevel(%d)", int(l))
	}
	return names[l-1]
}

// ParseLogLevel reads a "logLevel" value as sriov-cni does (any case).
func ParseLogLevel(s string) (LogLevel, bool) {
	for i, n := range strings.Fields(logLevelNames) {
		if strings.EqualFold(s, n) {
			return LogLevel(i + 1), true
		}
	}
	return 0, false
}

// LogConf is the network configuration's logging, as sriov-cni reads it.
type LogConf struct {
	// LogLevel: panic, error, warning, info or debug. Unset, only warnings
	// and errors are written (info when logFile is set, as sriov-cni).
	LogLevel string `json:"logLevel,omitempty"`
	// LogFile is an absolute path lines are appended to instead of stderr
	// (created with its directory when the first line is written).
	LogFile string `json:"logFile,omitempty"`
}

// validate checks the logging fields of an ADD or CHECK request; the
// other commands log whatever they can (logTo).
func (c *LogConf) validate() error {
	if c.LogLevel != "" {
		if _, ok := ParseLogLevel(c.LogLevel); !ok {
			return invalidConfig("logLevel %q is not a level: use panic, error, warning, info or debug", c.LogLevel)
		}
	}
	if c.LogFile != "" && !filepath.IsAbs(c.LogFile) {
		return invalidConfig("logFile %q is not an absolute path: give a file on the node, e.g. /var/log/sluice-cni.log", c.LogFile)
	}
	return nil
}

// cmdLog writes one command's log lines. The zero configuration (neither
// logLevel nor logFile) writes warnings and errors to stderr as
// "sluice-cni: <message>"; a configured one writes lines with time, level,
// command and attachment, to logFile or stderr. The file is opened at the
// first line written, so a level that writes nothing costs nothing.
type cmdLog struct {
	level LogLevel
	// plain is the unconfigured form.
	plain  bool
	stderr io.Writer
	file   string
	f      *os.File
	// prefix names the command and attachment on configured lines.
	prefix string
}

// newCmdLog is the log of command on the network configuration of args.
// Without "log in the configuration, it reads nothing of it.
func newCmdLog(stderr io.Writer, command string, args *skel.CmdArgs) *cmdLog {
	l := &cmdLog{level: LogWarning, plain: true, stderr: stderr}
	if !containsFold(args.StdinData, []byte(`"log`)) {
		return l
	}
	var c LogConf
	if json.Unmarshal(args.StdinData, &c) != nil || (c.LogLevel == "" && c.LogFile == "") {
		return l
	}
	l.plain, l.level = false, LogInfo
	l.prefix = fmt.Sprintf("sluice-cni %s %s/%s", command, args.ContainerID, args.IfName)
	if c.LogFile != "" && filepath.IsAbs(c.LogFile) {
		l.file = c.LogFile
	}
	if c.LogLevel != "" {
		lv, ok := ParseLogLevel(c.LogLevel)
		if !ok {
			l.printf(LogWarning, "logLevel %q is not a level (panic, error, warning, info or debug): logging at info", c.LogLevel)
		} else {
			l.level = lv
		}
	}
	if c.LogFile != "" && l.file == "" {
		l.printf(LogWarning, "logFile %q is not an absolute path: logging to stderr", c.LogFile)
	}
	return l
}

// containsFold reports whether sub is in b, ASCII letters in any case.
func containsFold(b, sub []byte) bool {
	for i := 0; i+len(sub) <= len(b); i++ {
		if bytes.EqualFold(b[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// enabled reports whether lines of level l are written.
func (l *cmdLog) enabled(lv LogLevel) bool { return l != nil && lv <= l.level }

// printf writes a line of level lv, when enabled.
func (l *cmdLog) printf(lv LogLevel, format string, a ...any) {
	if !l.enabled(lv) {
		return
	}
	if l.plain {
		fmt.Fprintf(l.stderr, "sluice-cni: "+format+"\n", a...)
		return
	}
	line := fmt.Sprintf("%s [%s] %s: %s\n", time.Now().UTC().Format(time.RFC3339Nano), lv, l.prefix, fmt.Sprintf(format, a...))
	_, _ = io.WriteString(l.writer(), line)
}

// writer is the log file, opened (append, created 0600 with its
// directory) at the first line; stderr when there is none or it cannot
// be opened, which is said once on stderr.
func (l *cmdLog) writer() io.Writer {
	if l.file == "" {
		return l.stderr
	}
	if l.f == nil {
		err := os.MkdirAll(filepath.Dir(l.file), 0o755)
		if err == nil {
			l.f, err = os.OpenFile(l.file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		}
		if err != nil {
			fmt.Fprintf(l.stderr, "%s [%s] %s: logFile %s: %v; logging to stderr\n", time.Now().UTC().Format(time.RFC3339Nano), LogWarning, l.prefix, l.file, err)
			l.file = ""
			return l.stderr
		}
	}
	return l.f
}

// close closes the log file, if one was opened.
func (l *cmdLog) close() {
	if l != nil && l.f != nil {
		_ = l.f.Close()
		l.f = nil
	}
}

// logged runs cmd on a copy of p that logs to the network's log (logLevel,
// logFile), and logs its outcome: an error at level error, success at
// info. The copy keeps concurrent commands of one Plugin apart.
func (p *Plugin) logged(command string, args *skel.CmdArgs, cmd func(*Plugin) error) error {
	q := *p
	q.log = newCmdLog(p.Stderr, command, args)
	defer q.log.close()
	if q.log.enabled(LogDebug) {
		q.debugf("netns %s, CNI_ARGS %q, configuration %s", args.Netns, args.Args, bytes.TrimSpace(args.StdinData))
	}
	err := cmd(&q)
	if err != nil {
		q.log.printf(LogError, "%s failed: %v", command, err)
	} else {
		q.log.printf(LogInfo, "%s succeeded", command)
	}
	return err
}

// logf writes a warning: what went wrong or was taken over, while the
// command goes on.
func (p *Plugin) logf(format string, a ...any) { p.logAt(LogWarning, format, a...) }

// infof and debugf write at levels info and debug.
func (p *Plugin) infof(format string, a ...any)  { p.logAt(LogInfo, format, a...) }
func (p *Plugin) debugf(format string, a ...any) { p.logAt(LogDebug, format, a...) }

func (p *Plugin) logAt(lv LogLevel, format string, a ...any) {
	if p.log == nil {
		// Outside a command (Funcs' counting): the unconfigured log.
		if lv <= LogWarning {
			fmt.Fprintf(p.Stderr, "sluice-cni: "+format+"\n", a...)
		}
		return
	}
	p.log.printf(lv, format, a...)
}
