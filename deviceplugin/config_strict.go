package deviceplugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Strict decoding with field paths. encoding/json's DisallowUnknownFields
// says "unknown field x" without saying where, and a config with a dozen
// pools needs "resourceList[3].selectors.vendor: unknown field (did you
// mean vendors?)". So keys are checked against the target type first,
// walking its json tags, then the values are decoded.

// keyChecker is implemented by types that accept more than one JSON shape
// (a selector object or a list of them).
type keyChecker interface {
	checkKeys(path string, raw json.RawMessage) error
}

var keyCheckerType = reflect.TypeFor[keyChecker]()

// decodeStrict decodes raw into v (a pointer) after checking that every
// object key in raw is one v's type decodes.
func decodeStrict(path string, raw json.RawMessage, v any) error {
	if err := checkKeys(path, raw, reflect.TypeOf(v)); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return valueError(path, err)
	}
	return nil
}

// valueError rewrites json's type errors with the field path.
func valueError(path string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := path
		if te.Field != "" {
			field = joinPath(path, te.Field)
		}
		return fmt.Errorf("%s: got a JSON %s, want %s", field, te.Value, describeType(te.Type))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%s: invalid JSON at byte %d: %w", path, se.Offset, err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

func joinPath(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return `a list of strings, e.g. ["a", "b"]`
		}
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

func checkKeys(path string, raw json.RawMessage, t reflect.Type) error {
	if isNull(raw) {
		return nil
	}
	if reflect.PointerTo(t).Implements(keyCheckerType) {
		return reflect.New(t).Interface().(keyChecker).checkKeys(path, raw)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
		if reflect.PointerTo(t).Implements(keyCheckerType) {
			return reflect.New(t).Interface().(keyChecker).checkKeys(path, raw)
		}
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == reflect.TypeFor[json.RawMessage]() {
			return nil
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("%s: want an object", path)
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			f, ok := lookupField(fields, k)
			if !ok {
				return unknownField(joinPath(path, k), k, fields)
			}
			if f.skip {
				continue
			}
			if err := checkKeys(joinPath(path, f.name), m[k], f.typ); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return nil
		}
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return fmt.Errorf("%s: got %s, want %s", path, jsonKind(raw), describeType(t))
		}
		for i, it := range items {
			if err := checkKeys(fmt.Sprintf("%s[%d]", path, i), it, t.Elem()); err != nil {
				return err
			}
		}
	case reflect.Map:
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("%s: got %s, want an object", path, jsonKind(raw))
		}
		for k, v := range m {
			if err := checkKeys(fmt.Sprintf("%s[%q]", path, k), v, t.Elem()); err != nil {
				return err
			}
		}
	}
	return nil
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

func jsonKind(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return "nothing"
	}
	switch s[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

type jsonField struct {
	name string
	typ  reflect.Type
	// skip: a field the format has but sluice ignores (checked no further).
	skip bool
}

// jsonFields lists the keys a struct decodes, as encoding/json names them,
// flattening embedded structs. A field tagged `sluice:"ignore"` is accepted
// and not checked further.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				out = append(out, jsonFields(ft)...)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, jsonField{name: name, typ: f.Type, skip: f.Tag.Get("sluice") == "ignore"})
	}
	return out
}

// lookupField matches a key as encoding/json does: exactly, else ignoring case.
func lookupField(fields []jsonField, key string) (jsonField, bool) {
	for _, f := range fields {
		if f.name == key {
			return f, true
		}
	}
	for _, f := range fields {
		if strings.EqualFold(f.name, key) {
			return f, true
		}
	}
	return jsonField{}, false
}

func unknownField(path, key string, fields []jsonField) error {
	best, bestD := "", 4
	var known []string
	for _, f := range fields {
		if f.skip {
			continue
		}
		known = append(known, f.name)
		if d := editDistance(strings.ToLower(key), strings.ToLower(f.name)); d < bestD {
			best, bestD = f.name, d
		}
	}
	if best != "" {
		return fmt.Errorf("%s: unknown field: did you mean %q?", path, best)
	}
	return fmt.Errorf("%s: unknown field: remove it; the known fields here are %s", path, strings.Join(known, ", "))
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
