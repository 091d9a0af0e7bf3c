package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a configuration file.
//
// Msg starts with the key path it is about (intake.users[1].password_hash)
// whenever there is one, so the message still makes sense when the line is
// unknown.
type Error struct {
	// File is the name the file was parsed under; empty for a Config that
	// was built in code.
	File string
	// Line is 1-based; 0 means unknown, typically because the offending
	// value came from the defaults rather than from the file.
	Line int
	Msg  string
}

// Error formats e as "FILE:LINE: MSG", the form editors and grep understand,
// leaving out what is unknown.
func (e Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file. Parse and Load return it as
// their error so that an admin can fix a file in one pass; use errors.As to
// get at the individual problems.
type Errors []Error

// Error lists the problems one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sorted orders problems top to bottom as they appear in the file; those
// without a line (defaults, cross-field checks) go last, in the order they
// were found.
func (es Errors) sorted() Errors {
	slices.SortStableFunc(es, func(a, b Error) int {
		switch {
		case a.Line == b.Line:
			return 0
		case a.Line == 0:
			return 1
		case b.Line == 0:
			return -1
		}
		return cmp.Compare(a.Line, b.Line)
	})
	return es
}
