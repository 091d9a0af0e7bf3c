package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Load reads the file at path and parses it with Parse. A file that cannot
// be read is reported as a plain wrapped error (errors.Is(err,
// fs.ErrNotExist) works); a file that can be read but is wrong as Errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes data, a YAML document, over Default and validates the
// result. filename is only used in error messages.
//
// Keys the file leaves out keep their default; an empty file, or one holding
// only comments, yields Default. Unknown keys are errors, so a typo cannot
// silently leave a default in place. Durations are Go duration strings
// ("90s", "5m", "120h").
//
// On failure Parse returns a nil *Config and an Errors holding every problem
// it found, top to bottom: unknown keys, values of the wrong type and values
// that fail Validate all at once. A YAML syntax error stops decoding, so it
// is reported alone; and yaml.v3 does not decode a mapping that repeats a
// key, so problems inside it show up once the duplicate is gone.
func Parse(filename string, data []byte) (*Config, error) {
	c := Default()
	doc, errs := parseDocument(filename, data)
	if doc == nil && errs != nil {
		return nil, errs
	}
	var idx *index
	if doc != nil {
		idx = newIndex(doc)
		errs = append(errs, decodeStrict(filename, data, c, idx)...)
	}
	errs = append(errs, c.validate(filename, idx)...)
	if len(errs) > 0 {
		return nil, errs.sorted()
	}
	return c, nil
}

// parseDocument reads data into a node tree, which keeps the line of every
// key for later messages. It returns a nil node for an empty document, and
// a nil node with errors when the YAML itself is broken.
func parseDocument(filename string, data []byte) (*yaml.Node, Errors) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		return nil, nil
	case err != nil:
		return nil, Errors{syntaxError(filename, data, err)}
	}
	// A second document would be ignored by the decoder; an admin who wrote
	// one surely expected it to count.
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return &doc, nil
	case err != nil:
		return &doc, Errors{syntaxError(filename, data, err)}
	default:
		if len(extra.Content) == 0 || isEmptyNode(extra.Content[0]) {
			// A stray "---" at the end adds nothing to be confused about.
			return &doc, nil
		}
		return &doc, Errors{{File: filename, Line: extra.Content[0].Line,
			Msg: "a second YAML document starts here; the file must hold exactly one"}}
	}
}

// isEmptyNode reports whether n is what an empty document holds: a null
// that was not even written as "~" or "null".
func isEmptyNode(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" && n.Value == "" && n.Style == 0
}

// syntaxError turns a yaml.v3 parser error ("yaml: line 3: did not find
// expected key") into an Error.
func syntaxError(filename string, data []byte, err error) Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(n); err == nil {
				line, msg = l, after
			}
		}
	}
	// The reader rejects bad bytes without saying where they are; find them
	// ourselves, since "control characters are not allowed" alone does not
	// help anyone fix a file.
	if line == 0 && (strings.Contains(msg, "character") || strings.Contains(msg, "UTF-8")) {
		line = lineOfBadByte(data)
	}
	if name, ok := strings.CutPrefix(msg, "unknown anchor '"); ok && line == 0 {
		name, _ = strings.CutSuffix(name, "' referenced")
		line = lineOfAlias(data, name)
	}
	return Error{File: filename, Line: line, Msg: "syntax error: " + msg}
}

// lineOfBadByte returns the line of the first byte that is invalid UTF-8 or
// a control character YAML forbids, or 0 if there is none.
func lineOfBadByte(data []byte) int {
	line := 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 || r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f {
			return line
		}
		if r == '\n' {
			line++
		}
		i += size
	}
	return 0
}

// lineOfAlias returns the line of the first alias "*name" in data, or 0.
func lineOfAlias(data []byte, name string) int {
	for i, l := range strings.Split(string(data), "\n") {
		for rest := l; ; {
			j := strings.Index(rest, "*"+name)
			if j < 0 {
				break
			}
			rest = rest[j+1+len(name):]
			// An anchor name runs until white space or a flow indicator.
			if rest == "" || strings.ContainsRune(" \t\r,[]{}", rune(rest[0])) {
				return i + 1
			}
		}
	}
	return 0
}

// decodeStrict decodes data over c, rejecting unknown keys, and converts
// every complaint of the decoder into an Error with a line and a key path.
// yaml.v3 keeps decoding after such complaints, so c holds every value that
// was fine and the caller can still validate it.
func decodeStrict(filename string, data []byte, c *Config, idx *index) Errors {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(c)
	var errs Errors
	var te *yaml.TypeError
	switch {
	case err == nil || errors.Is(err, io.EOF):
	case errors.As(err, &te):
		for _, s := range te.Errors {
			if strings.Contains(s, ": mapping key ") && strings.Contains(s, " already defined at line ") {
				continue // idx.duplicates has them all
			}
			errs = append(errs, idx.convert(s))
		}
	default:
		// Not a problem with one value (excessive aliasing, for one).
		errs = append(errs, Error{Msg: strings.TrimPrefix(err.Error(), "yaml: ")})
	}
	errs = append(errs, idx.duplicates...)
	for i := range errs {
		errs[i].File = filename
	}
	return errs
}

// index locates keys and values of one document, so that problems found
// after decoding can be reported at the line they come from.
type index struct {
	// lines holds the line of every key path ("intake.users[1].name"): the
	// line of the key for mapping entries, of the item for list items.
	lines map[string]int
	// keys names the path of each key by its line and text, because yaml.v3
	// reports an unknown key only as "line N: field x not found in type T".
	keys map[lineKey]string
	// values lists the value nodes on each line with their paths, because
	// yaml.v3 reports a bad value only by its line, tag and text.
	values map[int][]located
	// duplicates holds every repeated key. yaml.v3 reports them only in the
	// first mapping that has any, and does not decode that mapping further,
	// so the index finds them itself.
	duplicates Errors
}

type lineKey struct {
	line int
	key  string
}

type located struct {
	path string
	node *yaml.Node
}

func newIndex(doc *yaml.Node) *index {
	idx := &index{
		lines:  make(map[string]int),
		keys:   make(map[lineKey]string),
		values: make(map[int][]located),
	}
	root := doc
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		root = doc.Content[0]
	}
	idx.add("", root)
	return idx
}

// add records n, found at path, and everything under it. Aliases are not
// followed: their targets are recorded where they are defined, and following
// them would let a small file expand into a huge walk.
func (idx *index) add(path string, n *yaml.Node) {
	idx.values[n.Line] = append(idx.values[n.Line], located{path, n})
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if first, dup := idx.lines[p]; !dup {
				idx.lines[p] = k.Line
			} else if k.Kind == yaml.ScalarNode {
				msg := "duplicate key " + quoteShort(k.Value)
				if path != "" {
					msg += " in " + path
				}
				idx.duplicates = append(idx.duplicates, Error{Line: k.Line,
					Msg: msg + " (first set at line " + strconv.Itoa(first) + ")"})
			}
			lk := lineKey{k.Line, k.Value}
			if _, dup := idx.keys[lk]; !dup {
				idx.keys[lk] = p
			}
			idx.add(p, v)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			idx.lines[p] = item.Line
			idx.add(p, item)
		}
	}
}

// line returns the line of the first of paths present in the file, or 0 if
// none is: then the value came from the defaults.
func (idx *index) line(paths ...string) int {
	if idx == nil {
		return 0
	}
	for _, p := range paths {
		if l, ok := idx.lines[p]; ok {
			return l
		}
	}
	return 0
}

// convert rewrites one of yaml.v3's TypeError lines in the words of this
// file: which key, in which section, and what was expected.
func (idx *index) convert(s string) Error {
	line := 0
	msg := s
	if rest, ok := strings.CutPrefix(s, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(n); err == nil {
				line, msg = l, after
			}
		}
	}
	if rest, ok := strings.CutPrefix(msg, "field "); ok {
		if i := strings.LastIndex(rest, " not found in type "); i >= 0 {
			return Error{Line: line, Msg: idx.unknownKey(line, rest[:i])}
		}
	}
	if rest, ok := strings.CutPrefix(msg, "cannot unmarshal "); ok {
		if m, ok := idx.badValue(line, rest); ok {
			return Error{Line: line, Msg: m}
		}
	}
	return Error{Line: line, Msg: msg}
}

// unknownKey words the complaint about key, found at line, naming the
// section it is in and the known key it most likely meant.
func (idx *index) unknownKey(line int, key string) string {
	msg := "unknown key " + quoteShort(key)
	p, ok := idx.keys[lineKey{line, key}]
	if !ok {
		return msg
	}
	parent := parentPath(p)
	if parent != "" {
		msg += " in " + parent
	}
	if t := typeAt(parent); t != nil && t.Kind() == reflect.Struct {
		if s := closest(key, yamlKeys(t)); s != "" {
			msg += "; did you mean " + strconv.Quote(s) + "?"
		}
	}
	return msg
}

// badValue words "TAG `VALUE` into TYPE" (the rest of a "cannot unmarshal"
// complaint at line) by finding the value node it is about.
func (idx *index) badValue(line int, rest string) (string, bool) {
	tag, rest, _ := strings.Cut(rest, " ")
	text := ""
	if v, ok := strings.CutPrefix(rest, "`"); ok {
		text, _, _ = strings.Cut(v, "`")
		// yaml.v3 shortens long values to 7 characters and "...".
		text = strings.TrimSuffix(text, "...")
	}
	cands := idx.values[line]
	for i, l := range cands {
		if l.node.ShortTag() != tag || !strings.HasPrefix(l.node.Value, text) {
			continue
		}
		// Two bad values on one line (a flow mapping) are reported in
		// order; each node answers for one complaint only.
		idx.values[line] = append(cands[:i:i], cands[i+1:]...)
		return describeBadValue(l.path, l.node), true
	}
	return "", false
}

// describeBadValue says what the key at path wants and what it got instead.
func describeBadValue(path string, n *yaml.Node) string {
	got := "a list"
	switch n.Kind {
	case yaml.MappingNode:
		got = "a mapping"
	case yaml.ScalarNode:
		got = quoteShort(n.Value)
		if n.ShortTag() != "!!str" {
			// A number or boolean reads better as written.
			got = got[1 : len(got)-1]
		}
	case yaml.AliasNode:
		got = "an alias"
	}
	if path == "" {
		return "the file must be a mapping of keys to values, like \"listen: 127.0.0.1:2525\"; got " + got
	}
	t := typeAt(path)
	if t == nil {
		return fmt.Sprintf("%s: cannot use %s", path, got)
	}
	want := "a value"
	hint := ""
	switch {
	case t == reflect.TypeFor[time.Duration]():
		want = `a duration such as "90s", "5m" or "120h"`
		if n.Kind == yaml.ScalarNode {
			if _, err := strconv.ParseFloat(n.Value, 64); err == nil {
				hint = fmt.Sprintf(" (a unit is required: \"%ss\" means seconds)", n.Value)
			} else if d, ok := strings.CutSuffix(n.Value, "d"); ok {
				if _, err := strconv.ParseFloat(d, 64); err == nil {
					hint = ` (there is no "d" unit; write days in hours, e.g. "120h")`
				}
			}
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		want = "a whole number"
	case t.Kind() == reflect.Bool:
		want = "true or false"
	case t.Kind() == reflect.String:
		want = "a single value"
	case t.Kind() == reflect.Slice:
		want = "a list"
	case t.Kind() == reflect.Struct:
		want = "a mapping of keys to values"
	}
	return fmt.Sprintf("%s: want %s, got %s%s", path, want, got, hint)
}

// quoteShort quotes s for a message, shortened so that a value pasted in
// the wrong place cannot flood the output.
func quoteShort(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max]) + "…"
	}
	return strconv.Quote(s)
}

// parentPath strips the last key or index from a path:
// "intake.users[1].name" -> "intake.users[1]", "intake" -> "".
func parentPath(p string) string {
	if i := strings.LastIndexAny(p, ".["); i >= 0 {
		return p[:i]
	}
	return ""
}

// typeAt returns the Go type the key path decodes into, or nil when the
// path does not exist in Config.
func typeAt(path string) reflect.Type {
	t := reflect.TypeFor[Config]()
	for path != "" {
		var seg string
		if path[0] == '[' {
			end := strings.IndexByte(path, ']')
			if end < 0 || t.Kind() != reflect.Slice {
				return nil
			}
			t, path = t.Elem(), path[end+1:]
			continue
		}
		path = strings.TrimPrefix(path, ".")
		end := strings.IndexAny(path, ".[")
		if end < 0 {
			end = len(path)
		}
		seg, path = path[:end], path[end:]
		f, ok := fieldByKey(t, seg)
		if !ok {
			return nil
		}
		t = f.Type
	}
	return t
}

// fieldByKey finds the field of struct type t decoded from key.
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for f := range t.Fields() {
		if yamlKey(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// yamlKeys lists the keys a struct type accepts, in declaration order.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		if k := yamlKey(f); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

func yamlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

// closest returns the candidate a mistyped key most likely meant: one within
// a small edit distance, or one the key is a prefix of ("pass" for
// "password_hash"). It returns "" when nothing is close, because a wild
// guess is worse than none.
func closest(key string, candidates []string) string {
	best, bestDist := "", len(key)/3+2
	for _, c := range candidates {
		if d := editDistance(key, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best != "" {
		return best
	}
	for _, c := range candidates {
		if len(key) >= 3 && strings.HasPrefix(c, key) {
			return c
		}
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b, in bytes: keys
// are ASCII.
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
