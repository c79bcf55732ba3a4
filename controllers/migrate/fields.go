package migrate

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// conv collects the report entries of one input object.
type conv struct {
	object, source string
	entries        []Entry
}

func newConv(in *Object) *conv { return &conv{object: in.Describe(), source: in.Source} }

func (c *conv) add(field string, st Status, target, detail string) {
	c.entries = append(c.entries, Entry{Object: c.object, Source: c.source, Field: field, Status: st, Target: target, Detail: detail})
}

// refuse records field as unsupported and returns the error that keeps
// the object from being converted.
func (c *conv) refuse(field, detail string) error {
	c.add(field, Unsupported, "", detail+" (object not converted)")
	return &FieldError{Object: c.object, Source: c.source, Field: field, Reason: detail}
}

// FieldError is an input object that cannot be converted because of one of
// its fields; Reason says why and what to do.
type FieldError struct {
	Object, Source, Field, Reason string
}

func (e *FieldError) Error() string {
	src := ""
	if e.Source != "" {
		src = " (" + e.Source + ")"
	}
	return fmt.Sprintf("%s%s: %s: %s", e.Object, src, e.Field, e.Reason)
}

// fields reads one JSON object of an unstructured input, remembering
// which keys were read so that the rest can be reported.
type fields struct {
	m    map[string]any
	path string
	seen map[string]bool
}

func newFields(m map[string]any, path string) *fields {
	return &fields{m: m, path: path, seen: map[string]bool{}}
}

func (f *fields) at(key string) string {
	if f.path == "" {
		return key
	}
	return f.path + "." + key
}

func (f *fields) get(key string) (any, bool) {
	f.seen[key] = true
	v, ok := f.m[key]
	if ok && v == nil {
		return nil, false
	}
	return v, ok
}

func (f *fields) str(key string) (string, bool, error) {
	v, ok := f.get(key)
	if !ok {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", true, fmt.Errorf("%s is a %T, not a string", f.at(key), v)
	}
	return s, true, nil
}

func (f *fields) integer(key string) (int64, bool, error) {
	v, ok := f.get(key)
	if !ok {
		return 0, false, nil
	}
	switch n := v.(type) {
	case int64:
		return n, true, nil
	case int:
		return int64(n), true, nil
	case int32:
		return int64(n), true, nil
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return int64(n), true, nil
		}
	}
	return 0, true, fmt.Errorf("%s is %v, not an integer", f.at(key), v)
}

func (f *fields) boolean(key string) (bool, bool, error) {
	v, ok := f.get(key)
	if !ok {
		return false, false, nil
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, true, fmt.Errorf("%s is %v, not true or false", f.at(key), v)
	}
	return b, true, nil
}

func (f *fields) object(key string) (*fields, bool, error) {
	v, ok := f.get(key)
	if !ok {
		return nil, false, nil
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		return nil, true, fmt.Errorf("%s is %v, not an object", f.at(key), v)
	}
	return newFields(m, f.at(key)), true, nil
}

func (f *fields) strings(key string) ([]string, bool, error) {
	v, ok := f.get(key)
	if !ok {
		return nil, false, nil
	}
	l, isList := v.([]any)
	if !isList {
		return nil, true, fmt.Errorf("%s is %v, not a list", f.at(key), v)
	}
	out := make([]string, 0, len(l))
	for i, e := range l {
		s, isStr := e.(string)
		if !isStr {
			return nil, true, fmt.Errorf("%s[%d] is %v, not a string", f.at(key), i, e)
		}
		out = append(out, s)
	}
	return out, true, nil
}

func (f *fields) stringMap(key string) (map[string]string, bool, error) {
	v, ok := f.get(key)
	if !ok {
		return nil, false, nil
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		return nil, true, fmt.Errorf("%s is %v, not an object", f.at(key), v)
	}
	out := make(map[string]string, len(m))
	for k, e := range m {
		s, isStr := e.(string)
		if !isStr {
			return nil, true, fmt.Errorf("%s.%s is %v, not a string", f.at(key), k, e)
		}
		out[k] = s
	}
	return out, true, nil
}

// unread returns the keys not read, sorted.
func (f *fields) unread() []string {
	var out []string
	for k := range f.m {
		if !f.seen[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// reportUnread records every key of f not read as unsupported: it is not a
// field of the version of the incumbent this package follows.
func (c *conv) reportUnread(f *fields, kind string) {
	for _, k := range f.unread() {
		c.add(f.at(k), Unsupported, "", fmt.Sprintf("not a field of %s as of the version this tool follows; not carried over. Check its spelling", kind))
	}
}

func joinMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}
