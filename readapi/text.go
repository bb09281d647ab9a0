package readapi

import (
	"strings"
	"unicode/utf8"
)

// textRule is the message of a text parameter validText refuses.
const textRule = "must be valid UTF-8 without NUL characters"

// validText reports whether a client's text may reach a query: PostgreSQL
// text holds neither NUL nor invalid UTF-8, and refuses the whole query
// (a 500) when a parameter does.
func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}
